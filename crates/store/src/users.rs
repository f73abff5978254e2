//! Users who sign in to the web UI with a password: a name, a role and the password's Argon2id
//! PHC string (made and checked by the hub; the store only keeps it). Removing a user keeps its
//! row, which its sessions name, drops the hash, revokes its sessions and frees the name.

use rusqlite::{Connection, OptionalExtension, params};

use crate::StoreError;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserRow {
    pub id: i64,
    pub name: String,
    pub role: String,
    pub created_at: i64,
}

fn user_from_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<UserRow> {
    Ok(UserRow {
        id: row.get(0)?,
        name: row.get(1)?,
        role: row.get(2)?,
        created_at: row.get(3)?,
    })
}

/// Adds a user; `None` when a (not removed) user already has this name.
pub fn insert(
    conn: &Connection,
    name: &str,
    role: &str,
    password_hash: &str,
    now: i64,
) -> Result<Option<UserRow>, StoreError> {
    if find(conn, name)?.is_some() {
        return Ok(None);
    }
    let id: i64 = conn
        .prepare_cached(
            "INSERT INTO users (name, role, hash, created_at) VALUES (?1, ?2, ?3, ?4) RETURNING id",
        )?
        .query_row(params![name, role, password_hash, now], |row| row.get(0))?;
    Ok(Some(UserRow {
        id,
        name: name.to_string(),
        role: role.to_string(),
        created_at: now,
    }))
}

/// The user with this name (not removed) and its password hash.
pub fn find(conn: &Connection, name: &str) -> Result<Option<(UserRow, String)>, StoreError> {
    Ok(conn
        .prepare_cached(
            "SELECT id, name, role, created_at, hash FROM users
             WHERE name = ?1 AND removed_at IS NULL",
        )?
        .query_row([name], |row| Ok((user_from_row(row)?, row.get(4)?)))
        .optional()?)
}

/// Every user not removed, by name.
pub fn list(conn: &Connection) -> Result<Vec<UserRow>, StoreError> {
    let mut statement = conn.prepare_cached(
        "SELECT id, name, role, created_at FROM users WHERE removed_at IS NULL ORDER BY name",
    )?;
    let rows = statement.query_map([], user_from_row)?;
    Ok(rows.collect::<Result<Vec<_>, _>>()?)
}

/// What removing a user did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Removed {
    pub user: UserRow,
    /// Live sessions of the user, now revoked.
    pub sessions_revoked: usize,
}

/// Removes a user and revokes its sessions; `None` when there is no such user.
pub fn remove(conn: &Connection, name: &str, now: i64) -> Result<Option<Removed>, StoreError> {
    let Some((user, _)) = find(conn, name)? else {
        return Ok(None);
    };
    conn.prepare_cached("UPDATE users SET removed_at = ?2, hash = '' WHERE id = ?1")?
        .execute(params![user.id, now])?;
    let sessions_revoked = crate::sessions::revoke_for_user(conn, user.id, now)?;
    Ok(Some(Removed {
        user,
        sessions_revoked,
    }))
}

#[cfg(test)]
mod tests {
    use rusqlite::Connection;

    use super::*;
    use crate::sessions::{self, NewSession, Owner};

    fn memory_db() -> Connection {
        crate::open_in_memory().unwrap_or_else(|e| panic!("{e}"))
    }

    fn ok<T>(result: Result<T, StoreError>) -> T {
        result.unwrap_or_else(|e| panic!("{e}"))
    }

    fn user_session(conn: &Connection, user_id: i64, hash: &[u8; 32], now: i64) -> i64 {
        ok(sessions::insert(
            conn,
            &NewSession {
                owner: Owner::User(user_id),
                hash,
                csrf: "c",
                now,
                expires_at: now + 100,
            },
        ))
    }

    #[test]
    fn users_are_added_once_listed_by_name_and_found_with_their_hash() {
        let conn = memory_db();
        let bob = ok(insert(&conn, "bob", "viewer", "$argon2id$bob", 5))
            .unwrap_or_else(|| panic!("bob is new"));
        assert_eq!(bob.name, "bob");
        assert_eq!(
            ok(insert(&conn, "bob", "admin", "$argon2id$other", 6)),
            None
        );
        ok(insert(&conn, "alice", "admin", "$argon2id$alice", 7));
        let names: Vec<(String, String)> = ok(list(&conn))
            .into_iter()
            .map(|user| (user.name, user.role))
            .collect();
        assert_eq!(
            names,
            [
                ("alice".to_string(), "admin".to_string()),
                ("bob".to_string(), "viewer".to_string())
            ]
        );
        let (found, hash) = ok(find(&conn, "bob")).unwrap_or_else(|| panic!("bob"));
        assert_eq!((found, hash.as_str()), (bob, "$argon2id$bob"));
        assert_eq!(ok(find(&conn, "carol")), None);
    }

    #[test]
    fn removing_a_user_revokes_its_sessions_drops_its_hash_and_frees_the_name() {
        let conn = memory_db();
        let bob = ok(insert(&conn, "bob", "operator", "$argon2id$bob", 0))
            .unwrap_or_else(|| panic!("bob is new"));
        let alice = ok(insert(&conn, "alice", "admin", "$argon2id$alice", 0))
            .unwrap_or_else(|| panic!("alice is new"));
        let first = user_session(&conn, bob.id, &[1; 32], 0);
        let second = user_session(&conn, bob.id, &[2; 32], 1);
        let hers = user_session(&conn, alice.id, &[3; 32], 2);
        // A user session carries the user's name and role.
        let (row, _) =
            ok(sessions::find_live(&conn, &[1; 32], 10)).unwrap_or_else(|| panic!("live"));
        assert_eq!(
            (row.id, row.name.as_str(), row.role.as_str(), row.owner()),
            (first, "bob", "operator", Owner::User(bob.id))
        );
        let of_bob: Vec<i64> = ok(sessions::list_live_of(&conn, 10, Some(Owner::User(bob.id))))
            .iter()
            .map(|row| row.id)
            .collect();
        assert_eq!(of_bob, [second, first]);

        let removed = ok(remove(&conn, "bob", 20)).unwrap_or_else(|| panic!("removed"));
        assert_eq!((removed.user.id, removed.sessions_revoked), (bob.id, 2));
        assert_eq!(ok(sessions::find_live(&conn, &[1; 32], 21)), None);
        assert_eq!(ok(sessions::find_live(&conn, &[2; 32], 21)), None);
        let left: Vec<i64> = ok(sessions::list_live(&conn, 21))
            .iter()
            .map(|row| row.id)
            .collect();
        assert_eq!(left, [hers], "alice's session is untouched");
        assert_eq!(ok(find(&conn, "bob")), None);
        assert_eq!(ok(remove(&conn, "bob", 22)), None, "removed once");
        let stored: String = conn
            .query_row("SELECT hash FROM users WHERE id = ?1", [bob.id], |row| {
                row.get(0)
            })
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(stored, "", "a removed user's hash is dropped");
        // The name can be taken again, by a new user with new sessions only.
        let again = ok(insert(&conn, "bob", "viewer", "$argon2id$new", 30))
            .unwrap_or_else(|| panic!("the name is free"));
        assert_ne!(again.id, bob.id);
        assert_eq!(ok(sessions::find_live(&conn, &[1; 32], 31)), None);
    }

    #[test]
    fn sessions_of_a_token_and_of_a_user_are_kept_apart() {
        let conn = memory_db();
        let token_id = ok(crate::tokens::insert(
            &conn, "ci", "viewer", &[9; 32], 0, None,
        ));
        let user = ok(insert(&conn, "bob", "viewer", "h", 0)).unwrap_or_else(|| panic!("bob"));
        let by_token = ok(sessions::insert(
            &conn,
            &NewSession {
                owner: Owner::Token(token_id),
                hash: &[4; 32],
                csrf: "c",
                now: 0,
                expires_at: 100,
            },
        ));
        let by_user = user_session(&conn, user.id, &[5; 32], 0);
        let of = |owner| -> Vec<i64> {
            ok(sessions::list_live_of(&conn, 1, Some(owner)))
                .iter()
                .map(|row| row.id)
                .collect()
        };
        assert_eq!(of(Owner::Token(token_id)), [by_token]);
        assert_eq!(of(Owner::User(user.id)), [by_user]);
        // Someone else's session cannot be revoked (and looks missing); the admin's can.
        assert_eq!(
            ok(sessions::revoke_live(
                &conn,
                by_user,
                Some(Owner::Token(token_id)),
                2
            )),
            None
        );
        let revoked = ok(sessions::revoke_live(
            &conn,
            by_user,
            Some(Owner::User(user.id)),
            2,
        ))
        .unwrap_or_else(|| panic!("own session"));
        assert_eq!(revoked.revoked_at, Some(2));
        assert_eq!(ok(sessions::revoke_live(&conn, by_user, None, 3)), None);
        assert!(ok(sessions::revoke_live(&conn, by_token, None, 3)).is_some());
        assert!(ok(sessions::list_live(&conn, 4)).is_empty());
        // A session names a token or a user, never both nor neither.
        let both = conn.execute(
            "INSERT INTO sessions (token_id, user_id, hash, csrf, created_at, expires_at, last_seen_at)
             VALUES (?1, ?2, x'00', 'c', 0, 1, 0)",
            params![token_id, user.id],
        );
        assert!(both.is_err());
    }

    #[test]
    fn the_migration_keeps_existing_token_sessions() {
        let mut conn = Connection::open_in_memory().unwrap_or_else(|e| panic!("{e}"));
        // Schema 5 with a session, then the rest of the migrations.
        for (index, sql) in [
            include_str!("../migrations/0001_init.sql"),
            include_str!("../migrations/0002_heartbeats.sql"),
            include_str!("../migrations/0003_alerting.sql"),
            include_str!("../migrations/0004_rollups.sql"),
            include_str!("../migrations/0005_sessions.sql"),
        ]
        .iter()
        .enumerate()
        {
            conn.execute_batch(sql).unwrap_or_else(|e| panic!("{e}"));
            conn.execute_batch(&format!("PRAGMA user_version = {}", index + 1))
                .unwrap_or_else(|e| panic!("{e}"));
        }
        let token_id = ok(crate::tokens::insert(
            &conn, "admin", "admin", &[1; 32], 0, None,
        ));
        conn.execute(
            "INSERT INTO sessions (token_id, hash, csrf, created_at, expires_at, last_seen_at)
             VALUES (?1, ?2, 'c', 0, 100, 0)",
            params![token_id, [6u8; 32].as_slice()],
        )
        .unwrap_or_else(|e| panic!("{e}"));
        ok(crate::migrations::migrate(&mut conn));
        let (row, _) =
            ok(sessions::find_live(&conn, &[6; 32], 1)).unwrap_or_else(|| panic!("kept"));
        assert_eq!(
            (row.owner(), row.name.as_str(), row.role.as_str()),
            (Owner::Token(token_id), "admin", "admin")
        );
    }
}
