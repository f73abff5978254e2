//! API tokens (stored as BLAKE3 hashes only) and the small key/value `meta` table.

use rusqlite::{Connection, OptionalExtension, params};

use crate::StoreError;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenRow {
    pub id: i64,
    pub name: String,
    pub role: String,
    pub created_at: i64,
    pub expires_at: Option<i64>,
    pub revoked_at: Option<i64>,
}

pub fn insert(
    conn: &Connection,
    name: &str,
    role: &str,
    hash: &[u8; 32],
    now: i64,
    expires_at: Option<i64>,
) -> Result<i64, StoreError> {
    Ok(conn
        .prepare_cached(
            "INSERT INTO tokens (name, role, hash, created_at, expires_at) VALUES (?1, ?2, ?3, ?4, ?5) RETURNING id",
        )?
        .query_row(params![name, role, hash.as_slice(), now, expires_at], |row| row.get(0))?)
}

/// The live (not revoked, not expired) token with this hash, with its stored hash for a
/// constant-time comparison by the caller.
pub fn find_live(
    conn: &Connection,
    hash: &[u8; 32],
    now: i64,
) -> Result<Option<(TokenRow, Vec<u8>)>, StoreError> {
    Ok(conn
        .prepare_cached(
            "SELECT id, name, role, created_at, expires_at, revoked_at, hash FROM tokens
             WHERE hash = ?1 AND revoked_at IS NULL AND (expires_at IS NULL OR expires_at > ?2)",
        )?
        .query_row(params![hash.as_slice(), now], |row| {
            Ok((
                TokenRow {
                    id: row.get(0)?,
                    name: row.get(1)?,
                    role: row.get(2)?,
                    created_at: row.get(3)?,
                    expires_at: row.get(4)?,
                    revoked_at: row.get(5)?,
                },
                row.get(6)?,
            ))
        })
        .optional()?)
}

fn token_from_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<TokenRow> {
    Ok(TokenRow {
        id: row.get(0)?,
        name: row.get(1)?,
        role: row.get(2)?,
        created_at: row.get(3)?,
        expires_at: row.get(4)?,
        revoked_at: row.get(5)?,
    })
}

/// Every token ever made (revoked and expired ones too), newest first, `limit` from
/// `before_id` down.
pub fn list(
    conn: &Connection,
    before_id: Option<i64>,
    limit: usize,
) -> Result<Vec<TokenRow>, StoreError> {
    let mut statement = conn.prepare_cached(
        "SELECT id, name, role, created_at, expires_at, revoked_at FROM tokens
         WHERE id < ?1 ORDER BY id DESC LIMIT ?2 + 0",
    )?;
    let rows = statement.query_map(
        params![
            before_id.unwrap_or(i64::MAX),
            i64::try_from(limit).unwrap_or(i64::MAX)
        ],
        token_from_row,
    )?;
    Ok(rows.collect::<Result<Vec<_>, _>>()?)
}

pub fn get(conn: &Connection, id: i64) -> Result<Option<TokenRow>, StoreError> {
    Ok(conn
        .prepare_cached(
            "SELECT id, name, role, created_at, expires_at, revoked_at FROM tokens WHERE id = ?1",
        )?
        .query_row([id], token_from_row)
        .optional()?)
}

/// Revokes a token; revoking twice keeps the first time. `None` when there is no such token.
pub fn revoke(conn: &Connection, id: i64, now: i64) -> Result<Option<TokenRow>, StoreError> {
    conn.prepare_cached("UPDATE tokens SET revoked_at = ?2 WHERE id = ?1 AND revoked_at IS NULL")?
        .execute(params![id, now])?;
    get(conn, id)
}

pub fn count(conn: &Connection) -> Result<u64, StoreError> {
    Ok(conn
        .prepare_cached("SELECT count(*) FROM tokens")?
        .query_row([], |row| row.get(0))?)
}

pub fn meta_get(conn: &Connection, key: &str) -> Result<Option<String>, StoreError> {
    Ok(conn
        .prepare_cached("SELECT value FROM meta WHERE key = ?1")?
        .query_row([key], |row| row.get(0))
        .optional()?)
}

pub fn meta_set(conn: &Connection, key: &str, value: &str) -> Result<(), StoreError> {
    conn.prepare_cached(
        "INSERT INTO meta (key, value) VALUES (?1, ?2) ON CONFLICT (key) DO UPDATE SET value = ?2",
    )?
    .execute(params![key, value])?;
    Ok(())
}
