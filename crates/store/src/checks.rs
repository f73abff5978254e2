//! Check definitions synced from config by name, and each check's latest status.

use rusqlite::{Connection, OptionalExtension, params};
use warden_core::config::CheckConfig;

use crate::StoreError;

/// What a sync changed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SyncReport {
    pub added: Vec<String>,
    pub changed: Vec<String>,
    pub removed: Vec<String>,
    pub unchanged: usize,
}

/// A stored check with its latest status.
#[derive(Debug, Clone, PartialEq)]
pub struct CheckRow {
    pub id: i64,
    pub name: String,
    pub kind: String,
    /// The canonical JSON of the check's config.
    pub spec: String,
    pub status: Option<String>,
    pub status_since: Option<i64>,
    pub last_run_id: Option<i64>,
    pub last_run_at: Option<i64>,
    pub summary: Option<String>,
}

/// The canonical text of a check definition and its BLAKE3 hash.
pub fn canonical_spec(check: &CheckConfig) -> Result<(String, [u8; 32]), StoreError> {
    let spec = serde_json::to_string(check)
        .map_err(|error| StoreError::Invalid(format!("check `{}`: {error}", check.name)))?;
    let hash = *blake3::hash(spec.as_bytes()).as_bytes();
    Ok((spec, hash))
}

/// Makes the stored definitions match `checks`: new names are added, changed ones rewritten,
/// unchanged ones (same hash) not touched, and names no longer configured marked removed
/// (their history stays).
pub fn sync(conn: &Connection, checks: &[CheckConfig], now: i64) -> Result<SyncReport, StoreError> {
    let mut report = SyncReport::default();
    let mut seen = std::collections::BTreeSet::new();
    for check in checks {
        let (spec, hash) = canonical_spec(check)?;
        seen.insert(check.name.clone());
        let existing: Option<(Vec<u8>, Option<i64>)> = conn
            .prepare_cached("SELECT hash, removed_at FROM checks WHERE name = ?1")?
            .query_row([&check.name], |row| Ok((row.get(0)?, row.get(1)?)))
            .optional()?;
        match existing {
            None => {
                conn.prepare_cached(
                    "INSERT INTO checks (name, kind, spec, hash, created_at, updated_at) VALUES (?1, ?2, ?3, ?4, ?5, ?5)",
                )?
                .execute(params![check.name, check.kind_name(), spec, hash.as_slice(), now])?;
                report.added.push(check.name.clone());
            }
            Some((old_hash, removed_at)) if old_hash != hash.as_slice() || removed_at.is_some() => {
                conn.prepare_cached(
                    "UPDATE checks SET kind = ?2, spec = ?3, hash = ?4, updated_at = ?5, removed_at = NULL WHERE name = ?1",
                )?
                .execute(params![check.name, check.kind_name(), spec, hash.as_slice(), now])?;
                report.changed.push(check.name.clone());
            }
            Some(_) => report.unchanged += 1,
        }
    }
    let live: Vec<String> = conn
        .prepare_cached("SELECT name FROM checks WHERE removed_at IS NULL")?
        .query_map([], |row| row.get(0))?
        .collect::<Result<_, _>>()?;
    for name in live {
        if !seen.contains(&name) {
            conn.prepare_cached("UPDATE checks SET removed_at = ?2 WHERE name = ?1")?
                .execute(params![name, now])?;
            report.removed.push(name);
        }
    }
    Ok(report)
}

const CHECK_COLUMNS: &str =
    "id, name, kind, spec, status, status_since, last_run_id, last_run_at, summary";

fn check_from_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<CheckRow> {
    Ok(CheckRow {
        id: row.get(0)?,
        name: row.get(1)?,
        kind: row.get(2)?,
        spec: row.get(3)?,
        status: row.get(4)?,
        status_since: row.get(5)?,
        last_run_id: row.get(6)?,
        last_run_at: row.get(7)?,
        summary: row.get(8)?,
    })
}

/// Configured (not removed) checks, by name.
pub fn list(conn: &Connection) -> Result<Vec<CheckRow>, StoreError> {
    let mut statement = conn.prepare_cached(&format!(
        "SELECT {CHECK_COLUMNS} FROM checks WHERE removed_at IS NULL ORDER BY name"
    ))?;
    let rows = statement.query_map([], check_from_row)?;
    Ok(rows.collect::<Result<Vec<_>, _>>()?)
}

/// What a listing of checks asks for; `None` fields do not filter.
#[derive(Debug, Clone, Default)]
pub struct CheckListing {
    /// Names after this one (the page cursor).
    pub after: Option<String>,
    /// A status name, or `pending` for checks without a result yet.
    pub status: Option<String>,
    pub kind: Option<String>,
    /// A substring of the name.
    pub name_contains: Option<String>,
    pub limit: usize,
}

/// Configured checks with their latest status, by name, filtered and limited in SQL, without
/// their definitions (`spec` is empty): what listings need, at a fraction of the reading.
pub fn list_status(conn: &Connection, listing: &CheckListing) -> Result<Vec<CheckRow>, StoreError> {
    let mut statement = conn.prepare_cached(
        "SELECT id, name, kind, '', status, status_since, last_run_id, last_run_at, summary
         FROM checks
         WHERE removed_at IS NULL AND name > ?1
           AND (?2 IS NULL OR (?2 = 'pending' AND status IS NULL) OR status = ?2)
           AND (?3 IS NULL OR kind = ?3)
           AND (?4 IS NULL OR instr(name, ?4) > 0)
         ORDER BY name LIMIT ?5 + 0",
    )?;
    let rows = statement.query_map(
        params![
            listing.after.as_deref().unwrap_or(""),
            listing.status,
            listing.kind,
            listing.name_contains,
            i64::try_from(listing.limit).unwrap_or(i64::MAX)
        ],
        check_from_row,
    )?;
    Ok(rows.collect::<Result<Vec<_>, _>>()?)
}

pub fn get_by_name(conn: &Connection, name: &str) -> Result<Option<CheckRow>, StoreError> {
    Ok(conn
        .prepare_cached(&format!(
            "SELECT {CHECK_COLUMNS} FROM checks WHERE name = ?1 AND removed_at IS NULL"
        ))?
        .query_row([name], check_from_row)
        .optional()?)
}

/// Records a finished run as the check's latest status; `status_since` moves only on a change.
pub fn record_status(
    conn: &Connection,
    check_id: i64,
    run_id: i64,
    status: &str,
    summary: &str,
    at: i64,
) -> Result<(), StoreError> {
    conn.prepare_cached(
        "UPDATE checks SET
            status_since = CASE WHEN status IS ?3 THEN status_since ELSE ?5 END,
            status = ?3, summary = ?4, last_run_id = ?2, last_run_at = ?5
         WHERE id = ?1 AND (last_run_id IS NULL OR last_run_id <= ?2)",
    )?
    .execute(params![check_id, run_id, status, summary, at])?;
    Ok(())
}

/// [`record_status`] only when the run changes the check's status (or it had none): true when
/// it wrote. A run that keeps the status dirties no page; its run id, time and summary are
/// written later, many at once ([`record_last_runs`]), and [`repair_last_runs`] restores them
/// after a crash from the runs themselves.
pub fn record_status_if_changed(
    conn: &Connection,
    check_id: i64,
    run_id: i64,
    status: &str,
    summary: &str,
    at: i64,
) -> Result<bool, StoreError> {
    let changed = conn
        .prepare_cached(
            "UPDATE checks SET status_since = ?5, status = ?3, summary = ?4, last_run_id = ?2,
                 last_run_at = ?5
             WHERE id = ?1 AND (last_run_id IS NULL OR last_run_id <= ?2) AND status IS NOT ?3",
        )?
        .execute(params![check_id, run_id, status, summary, at])?;
    Ok(changed > 0)
}

/// A check's latest run that kept its status, waiting to be written ([`record_last_runs`]).
#[derive(Debug, Clone, PartialEq)]
pub struct LastRun {
    pub check_id: i64,
    pub run_id: i64,
    pub status: String,
    pub summary: String,
    pub at: i64,
}

/// Writes each check's latest run (never over a later one); the status is written too, so a
/// check whose status changed in between keeps the later status (guarded by the run id).
pub fn record_last_runs(conn: &Connection, runs: &[LastRun]) -> Result<(), StoreError> {
    for run in runs {
        record_status(
            conn,
            run.check_id,
            run.run_id,
            &run.status,
            &run.summary,
            run.at,
        )?;
    }
    Ok(())
}

/// Brings every check's last run, time and summary up to its latest finished run with a
/// status (status changes are written at once, so only those can lag behind after a crash).
pub fn repair_last_runs(conn: &Connection) -> Result<usize, StoreError> {
    let changed = conn.execute(
        "UPDATE checks SET (last_run_id, last_run_at, summary) = (
             SELECT r.id, r.finished_at, r.summary FROM runs AS r
             WHERE r.check_id = checks.id AND r.status IS NOT NULL AND r.finished_at IS NOT NULL
             ORDER BY r.id DESC LIMIT 1)
         WHERE removed_at IS NULL AND status IS NOT NULL AND (
             SELECT r.status FROM runs AS r
             WHERE r.check_id = checks.id AND r.status IS NOT NULL AND r.finished_at IS NOT NULL
               AND r.id > coalesce(checks.last_run_id, 0)
             ORDER BY r.id DESC LIMIT 1) = status",
        [],
    )?;
    Ok(changed)
}

/// A check's availability over `[from, to]` from its finished runs: (runs with a status, runs
/// that were up — ok or warn).
pub fn uptime(
    conn: &Connection,
    check_id: i64,
    from: i64,
    to: i64,
) -> Result<(i64, i64), StoreError> {
    Ok(conn
        .prepare_cached(
            "SELECT count(*), coalesce(sum(status IN ('ok', 'warn')), 0) FROM runs
             WHERE check_id = ?1 AND state = 'completed' AND status IS NOT NULL
               AND finished_at BETWEEN ?2 AND ?3",
        )?
        .query_row(params![check_id, from, to], |row| {
            Ok((row.get(0)?, row.get(1)?))
        })?)
}
