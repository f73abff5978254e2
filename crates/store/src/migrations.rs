//! Embedded schema migrations, tracked in `PRAGMA user_version`.

use rusqlite::Connection;

use crate::StoreError;

/// Each entry is one schema version; index 0 is version 1.
const MIGRATIONS: &[&str] = &[
    include_str!("../migrations/0001_init.sql"),
    include_str!("../migrations/0002_heartbeats.sql"),
    include_str!("../migrations/0003_alerting.sql"),
    include_str!("../migrations/0004_rollups.sql"),
    include_str!("../migrations/0005_sessions.sql"),
    include_str!("../migrations/0006_users.sql"),
];

/// The schema version this build writes.
pub const SCHEMA_VERSION: i64 = MIGRATIONS.len() as i64;

/// Applies the missing migrations. A database written by a newer schema is refused untouched.
pub fn migrate(conn: &mut Connection) -> Result<(), StoreError> {
    let found: i64 = conn.query_row("PRAGMA user_version", [], |row| row.get(0))?;
    if found > SCHEMA_VERSION {
        return Err(StoreError::SchemaTooNew {
            found,
            supported: SCHEMA_VERSION,
        });
    }
    for (index, sql) in MIGRATIONS
        .iter()
        .enumerate()
        .skip(usize::try_from(found).unwrap_or(0))
    {
        let version = index as i64 + 1;
        let tx = conn.transaction()?;
        tx.execute_batch(sql)?;
        tx.execute_batch(&format!("PRAGMA user_version = {version}"))?;
        tx.commit()?;
        tracing::info!(version, "applied schema migration");
    }
    Ok(())
}
