//! Web UI sessions: rows keyed by a hash of the cookie's secret, tied to the API token they were
//! exchanged for (revoking the token ends its sessions), with a sliding expiry.

use rusqlite::{Connection, OptionalExtension, params};

use crate::StoreError;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionRow {
    pub id: i64,
    pub token_id: i64,
    /// The role of the token the session was made from.
    pub role: String,
    pub csrf: String,
    pub created_at: i64,
    pub expires_at: i64,
    pub last_seen_at: i64,
    pub revoked_at: Option<i64>,
}

/// What a new session is made of.
#[derive(Debug, Clone)]
pub struct NewSession<'a> {
    pub token_id: i64,
    pub hash: &'a [u8; 32],
    pub csrf: &'a str,
    pub now: i64,
    pub expires_at: i64,
}

pub fn insert(conn: &Connection, session: &NewSession<'_>) -> Result<i64, StoreError> {
    Ok(conn
        .prepare_cached(
            "INSERT INTO sessions (token_id, hash, csrf, created_at, expires_at, last_seen_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?4) RETURNING id",
        )?
        .query_row(
            params![
                session.token_id,
                session.hash.as_slice(),
                session.csrf,
                session.now,
                session.expires_at
            ],
            |row| row.get(0),
        )?)
}

const COLUMNS: &str = "s.id, s.token_id, t.role, s.csrf, s.created_at, s.expires_at, \
                       s.last_seen_at, s.revoked_at";

fn session_from_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<SessionRow> {
    Ok(SessionRow {
        id: row.get(0)?,
        token_id: row.get(1)?,
        role: row.get(2)?,
        csrf: row.get(3)?,
        created_at: row.get(4)?,
        expires_at: row.get(5)?,
        last_seen_at: row.get(6)?,
        revoked_at: row.get(7)?,
    })
}

/// The live session with this hash (not revoked, not expired, and its token live too), with the
/// stored hash for a constant-time comparison by the caller.
pub fn find_live(
    conn: &Connection,
    hash: &[u8; 32],
    now: i64,
) -> Result<Option<(SessionRow, Vec<u8>)>, StoreError> {
    let sql = format!(
        "SELECT {COLUMNS}, s.hash FROM sessions s JOIN tokens t ON t.id = s.token_id
         WHERE s.hash = ?1 AND s.revoked_at IS NULL AND s.expires_at > ?2
           AND t.revoked_at IS NULL AND (t.expires_at IS NULL OR t.expires_at > ?2)"
    );
    Ok(conn
        .prepare_cached(&sql)?
        .query_row(params![hash.as_slice(), now], |row| {
            Ok((session_from_row(row)?, row.get(8)?))
        })
        .optional()?)
}

/// Slides a live session's expiry: seen at `now`, expires at `expires_at`.
pub fn touch(conn: &Connection, id: i64, now: i64, expires_at: i64) -> Result<(), StoreError> {
    conn.prepare_cached(
        "UPDATE sessions SET last_seen_at = ?2, expires_at = max(expires_at, ?3)
         WHERE id = ?1 AND revoked_at IS NULL",
    )?
    .execute(params![id, now, expires_at])?;
    Ok(())
}

/// Revokes a session; revoking twice keeps the first time. False when there is no such session.
pub fn revoke(conn: &Connection, id: i64, now: i64) -> Result<bool, StoreError> {
    conn.prepare_cached(
        "UPDATE sessions SET revoked_at = ?2 WHERE id = ?1 AND revoked_at IS NULL",
    )?
    .execute(params![id, now])?;
    Ok(conn
        .prepare_cached("SELECT 1 FROM sessions WHERE id = ?1")?
        .query_row([id], |_| Ok(()))
        .optional()?
        .is_some())
}

/// Sessions not revoked and not expired at `now`, newest first.
pub fn list_live(conn: &Connection, now: i64) -> Result<Vec<SessionRow>, StoreError> {
    let sql = format!(
        "SELECT {COLUMNS} FROM sessions s JOIN tokens t ON t.id = s.token_id
         WHERE s.revoked_at IS NULL AND s.expires_at > ?1 ORDER BY s.id DESC"
    );
    let mut statement = conn.prepare_cached(&sql)?;
    let rows = statement.query_map([now], session_from_row)?;
    Ok(rows.collect::<Result<Vec<_>, _>>()?)
}
