//! Web UI sessions: rows keyed by a hash of the cookie's secret, made from an API token or from a
//! user's password (exactly one of the two; revoking the token or removing the user ends its
//! sessions), with a sliding expiry.

use rusqlite::{Connection, OptionalExtension, params};

use crate::StoreError;

/// Who a session belongs to: the token or the user it was made from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Owner {
    Token(i64),
    User(i64),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionRow {
    pub id: i64,
    /// The token the session was made from (a token session).
    pub token_id: Option<i64>,
    /// The user who signed in (a user session).
    pub user_id: Option<i64>,
    /// The token's name or the user's name.
    pub name: String,
    /// The role of the token or user the session was made from.
    pub role: String,
    pub csrf: String,
    pub created_at: i64,
    pub expires_at: i64,
    pub last_seen_at: i64,
    pub revoked_at: Option<i64>,
}

impl SessionRow {
    pub fn owner(&self) -> Owner {
        match (self.token_id, self.user_id) {
            (Some(token_id), _) => Owner::Token(token_id),
            // The table's CHECK makes exactly one of the two present.
            (None, Some(user_id)) => Owner::User(user_id),
            (None, None) => Owner::Token(0),
        }
    }
}

/// What a new session is made of.
#[derive(Debug, Clone)]
pub struct NewSession<'a> {
    /// The token or the user it was made from.
    pub owner: Owner,
    pub hash: &'a [u8; 32],
    pub csrf: &'a str,
    pub now: i64,
    pub expires_at: i64,
}

pub fn insert(conn: &Connection, session: &NewSession<'_>) -> Result<i64, StoreError> {
    let (token_id, user_id) = match session.owner {
        Owner::Token(token_id) => (Some(token_id), None),
        Owner::User(user_id) => (None, Some(user_id)),
    };
    Ok(conn
        .prepare_cached(
            "INSERT INTO sessions (token_id, user_id, hash, csrf, created_at, expires_at, last_seen_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?5) RETURNING id",
        )?
        .query_row(
            params![
                token_id,
                user_id,
                session.hash.as_slice(),
                session.csrf,
                session.now,
                session.expires_at
            ],
            |row| row.get(0),
        )?)
}

const COLUMNS: &str = "s.id, s.token_id, s.user_id, coalesce(t.name, u.name, ''), \
                       coalesce(t.role, u.role, ''), s.csrf, s.created_at, s.expires_at, \
                       s.last_seen_at, s.revoked_at";

/// Sessions with their token or user.
const FROM: &str = "sessions s LEFT JOIN tokens t ON t.id = s.token_id \
                    LEFT JOIN users u ON u.id = s.user_id";

/// The SQL condition for a live session at `now` (a statement parameter such as `?2`): neither
/// revoked nor expired, and its token live or its user not removed.
fn live_condition(now: &str) -> String {
    format!(
        "s.revoked_at IS NULL AND s.expires_at > {now}
         AND ((s.token_id IS NOT NULL AND t.revoked_at IS NULL
               AND (t.expires_at IS NULL OR t.expires_at > {now}))
              OR (s.user_id IS NOT NULL AND u.id IS NOT NULL AND u.removed_at IS NULL))"
    )
}

fn session_from_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<SessionRow> {
    Ok(SessionRow {
        id: row.get(0)?,
        token_id: row.get(1)?,
        user_id: row.get(2)?,
        name: row.get(3)?,
        role: row.get(4)?,
        csrf: row.get(5)?,
        created_at: row.get(6)?,
        expires_at: row.get(7)?,
        last_seen_at: row.get(8)?,
        revoked_at: row.get(9)?,
    })
}

/// The live session with this hash (not revoked, not expired, and its token live or its user
/// not removed), with the stored hash for a constant-time comparison by the caller.
pub fn find_live(
    conn: &Connection,
    hash: &[u8; 32],
    now: i64,
) -> Result<Option<(SessionRow, Vec<u8>)>, StoreError> {
    let sql = format!(
        "SELECT {COLUMNS}, s.hash FROM {FROM} WHERE s.hash = ?1 AND {}",
        live_condition("?2")
    );
    Ok(conn
        .prepare_cached(&sql)?
        .query_row(params![hash.as_slice(), now], |row| {
            Ok((session_from_row(row)?, row.get(10)?))
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

/// Revokes a live session if it belongs to `owner` (any owner when `None`); returns the
/// session as it is now, or `None` when there is no such live session of that owner (so a
/// caller cannot tell someone else's session from a missing one).
pub fn revoke_live(
    conn: &Connection,
    id: i64,
    owner: Option<Owner>,
    now: i64,
) -> Result<Option<SessionRow>, StoreError> {
    let Some(session) = get_live(conn, id, now)? else {
        return Ok(None);
    };
    if owner.is_some_and(|owner| owner != session.owner()) {
        return Ok(None);
    }
    conn.prepare_cached(
        "UPDATE sessions SET revoked_at = ?2 WHERE id = ?1 AND revoked_at IS NULL",
    )?
    .execute(params![id, now])?;
    Ok(Some(SessionRow {
        revoked_at: Some(now),
        ..session
    }))
}

/// The live session with this id.
pub fn get_live(conn: &Connection, id: i64, now: i64) -> Result<Option<SessionRow>, StoreError> {
    let sql = format!(
        "SELECT {COLUMNS} FROM {FROM} WHERE s.id = ?1 AND {}",
        live_condition("?2")
    );
    Ok(conn
        .prepare_cached(&sql)?
        .query_row(params![id, now], session_from_row)
        .optional()?)
}

/// Revokes every session of a user; returns how many were live.
pub fn revoke_for_user(conn: &Connection, user_id: i64, now: i64) -> Result<usize, StoreError> {
    Ok(conn
        .prepare_cached(
            "UPDATE sessions SET revoked_at = ?2
             WHERE user_id = ?1 AND revoked_at IS NULL AND expires_at > ?2",
        )?
        .execute(params![user_id, now])?)
}

/// Live sessions at `now` (see [`find_live`]), newest first.
pub fn list_live(conn: &Connection, now: i64) -> Result<Vec<SessionRow>, StoreError> {
    list_live_of(conn, now, None)
}

/// Live sessions at `now` of one owner (every owner when `None`), newest first.
pub fn list_live_of(
    conn: &Connection,
    now: i64,
    owner: Option<Owner>,
) -> Result<Vec<SessionRow>, StoreError> {
    let (token_id, user_id) = match owner {
        None => (None, None),
        Some(Owner::Token(id)) => (Some(id), None),
        Some(Owner::User(id)) => (None, Some(id)),
    };
    let sql = format!(
        "SELECT {COLUMNS} FROM {FROM} WHERE {}
           AND (?2 IS NULL OR s.token_id = ?2) AND (?3 IS NULL OR s.user_id = ?3)
         ORDER BY s.id DESC",
        live_condition("?1")
    );
    let mut statement = conn.prepare_cached(&sql)?;
    let rows = statement.query_map(params![now, token_id, user_id], session_from_row)?;
    Ok(rows.collect::<Result<Vec<_>, _>>()?)
}
