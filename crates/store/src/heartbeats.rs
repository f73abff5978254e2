//! Heartbeat checks: each has a secret ping key and a state (`new`, `up`, `started`, `late`,
//! `down`). A ping is stored as a run of kind `ping`: a `/start` opens a run in state
//! `started`; the end (success, fail, exit code) closes the start it pairs with (same `rid`, or
//! the latest start without one) so the run's duration is the job's; an end with nothing to pair
//! is a run of its own. `/log` is kept as a run without a status and changes nothing.

use rusqlite::{Connection, OptionalExtension, params};

use crate::StoreError;

/// A heartbeat check's stored state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HeartbeatRow {
    pub check_id: i64,
    pub name: String,
    pub ping_key: String,
    pub state: String,
    pub last_ping_at: Option<i64>,
    pub last_success_at: Option<i64>,
    pub started_at: Option<i64>,
    pub pings: i64,
}

/// What a ping says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PingKind {
    Success,
    Fail,
    Start,
    Log,
    /// `/ping/<key>/<code>`: 0 is success, anything else a failure.
    Exit(u8),
}

impl PingKind {
    pub fn as_str(self) -> &'static str {
        match self {
            PingKind::Success => "success",
            PingKind::Fail => "fail",
            PingKind::Start => "start",
            PingKind::Log => "log",
            PingKind::Exit(0) => "success",
            PingKind::Exit(_) => "fail",
        }
    }

    /// The state the heartbeat moves to, or `None` for `/log`.
    pub fn next_state(self) -> Option<&'static str> {
        match self {
            PingKind::Success | PingKind::Exit(0) => Some("up"),
            PingKind::Fail | PingKind::Exit(_) => Some("down"),
            PingKind::Start => Some("started"),
            PingKind::Log => None,
        }
    }

    /// The run status it records: ok, crit, or none (start, log).
    pub fn status(self) -> Option<&'static str> {
        match self {
            PingKind::Success | PingKind::Exit(0) => Some("ok"),
            PingKind::Fail | PingKind::Exit(_) => Some("crit"),
            PingKind::Start | PingKind::Log => None,
        }
    }
}

/// One received ping.
#[derive(Debug, Clone)]
pub struct Ping {
    pub check_id: i64,
    pub check_name: String,
    pub kind: PingKind,
    /// A run id chosen by the client (a UUID), pairing a start with its end.
    pub rid: Option<String>,
    /// The request body as text, already cut to the body limit (with a marker when cut).
    pub body: String,
    /// JSON with the request's details (method, remote address, user agent, body size).
    pub meta: String,
    pub at: i64,
}

/// What storing a ping did.
#[derive(Debug, Clone, PartialEq)]
pub struct PingRecorded {
    pub run_id: i64,
    /// The status recorded, if the ping carries one.
    pub status: Option<&'static str>,
    pub summary: String,
    /// When the run started: the paired start's time, else the ping's.
    pub started_at: i64,
    /// The job's duration sample, stored with the run, when the ping closed an earlier start:
    /// series name (`<check>.duration`) and seconds.
    pub duration: Option<(String, f64)>,
    /// The heartbeat's state after the ping.
    pub state: String,
    pub last_success_at: Option<i64>,
    pub started_open: Option<i64>,
}

const COLUMNS: &str = "h.check_id, c.name, h.ping_key, h.state, h.last_ping_at, h.last_success_at, h.started_at, h.pings";

fn from_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<HeartbeatRow> {
    Ok(HeartbeatRow {
        check_id: row.get(0)?,
        name: row.get(1)?,
        ping_key: row.get(2)?,
        state: row.get(3)?,
        last_ping_at: row.get(4)?,
        last_success_at: row.get(5)?,
        started_at: row.get(6)?,
        pings: row.get(7)?,
    })
}

/// Gives every configured heartbeat check a ping key (once; keys never change) and returns all
/// configured heartbeats.
pub fn ensure(
    conn: &Connection,
    mut new_key: impl FnMut() -> Option<String>,
) -> Result<Vec<HeartbeatRow>, StoreError> {
    let missing: Vec<i64> = conn
        .prepare_cached(
            "SELECT c.id FROM checks c LEFT JOIN heartbeats h ON h.check_id = c.id
             WHERE c.kind = 'heartbeat' AND c.removed_at IS NULL AND h.check_id IS NULL",
        )?
        .query_map([], |row| row.get(0))?
        .collect::<Result<_, _>>()?;
    for check_id in missing {
        let key = new_key().ok_or_else(|| {
            StoreError::Invalid("the OS random source failed: cannot make a ping key".to_string())
        })?;
        conn.prepare_cached("INSERT INTO heartbeats (check_id, ping_key) VALUES (?1, ?2)")?
            .execute(params![check_id, key])?;
    }
    list(conn)
}

/// Configured heartbeat checks with their keys and state.
pub fn list(conn: &Connection) -> Result<Vec<HeartbeatRow>, StoreError> {
    let mut statement = conn.prepare_cached(&format!(
        "SELECT {COLUMNS} FROM heartbeats h JOIN checks c ON c.id = h.check_id
         WHERE c.kind = 'heartbeat' AND c.removed_at IS NULL ORDER BY c.name"
    ))?;
    let rows = statement.query_map([], from_row)?;
    Ok(rows.collect::<Result<Vec<_>, _>>()?)
}

pub fn get(conn: &Connection, check_id: i64) -> Result<Option<HeartbeatRow>, StoreError> {
    Ok(conn
        .prepare_cached(&format!(
            "SELECT {COLUMNS} FROM heartbeats h JOIN checks c ON c.id = h.check_id WHERE h.check_id = ?1"
        ))?
        .query_row([check_id], from_row)
        .optional()?)
}

/// The body as output lines of a run (a trailing newline adds no empty line).
fn insert_output(conn: &Connection, run_id: i64, at: i64, body: &str) -> Result<(), StoreError> {
    if body.is_empty() {
        return Ok(());
    }
    let mut statement = conn.prepare_cached(
        "INSERT OR REPLACE INTO run_output (run_id, seq, at, stream, line) VALUES (?1, ?2, ?3, 'body', ?4)",
    )?;
    for (seq, line) in body
        .strip_suffix('\n')
        .unwrap_or(body)
        .split('\n')
        .enumerate()
    {
        statement.execute(params![run_id, seq as i64, at, line.trim_end_matches('\r')])?;
    }
    Ok(())
}

fn ping_summary(kind: PingKind, duration_ms: Option<i64>) -> String {
    let base = match kind {
        PingKind::Success | PingKind::Exit(0) => "success ping".to_string(),
        PingKind::Fail => "fail ping".to_string(),
        PingKind::Exit(code) => format!("exit code {code}"),
        PingKind::Start => "started".to_string(),
        PingKind::Log => "log".to_string(),
    };
    match duration_ms {
        Some(ms) => format!("{base}; the job ran {:.1} s", ms as f64 / 1000.0),
        None => base,
    }
}

/// Stores one ping: pairs an end with its start, writes the run and its body, moves the state;
/// an end (success, fail, exit code) also sets the check's latest status and, when it closes a
/// start, adds the job's duration as a sample of series `<check>.duration` (seconds).
pub fn record_ping(conn: &Connection, ping: &Ping) -> Result<PingRecorded, StoreError> {
    let dedup = ping
        .rid
        .as_ref()
        .map(|rid| format!("rid:{}:{rid}", ping.check_id));
    let status = ping.kind.status();
    let payload = serde_json::json!({ "name": ping.check_name }).to_string();
    let (run_id, started_at, summary) = match ping.kind {
        PingKind::Start => {
            // A new start with the same rid replaces an unfinished one.
            if let Some(key) = &dedup {
                conn.prepare_cached(
                    "UPDATE runs SET dedup_key = NULL, state = 'completed', finished_at = ?2,
                         summary = 'started again before it finished'
                     WHERE dedup_key = ?1 AND state = 'started'",
                )?
                .execute(params![key, ping.at])?;
                conn.prepare_cached("UPDATE runs SET dedup_key = NULL WHERE dedup_key = ?1")?
                    .execute(params![key])?;
            }
            let summary = ping_summary(ping.kind, None);
            conn.prepare_cached(
                "INSERT INTO runs (check_id, kind, payload, state, run_at, max_attempts, dedup_key, enqueued_at, started_at, summary, result)
                 VALUES (?1, 'ping', ?6, 'started', ?2, 1, ?3, ?2, ?2, ?4, ?5)",
            )?
            .execute(params![ping.check_id, ping.at, dedup, summary, ping.meta, payload])?;
            (conn.last_insert_rowid(), ping.at, summary)
        }
        PingKind::Log => {
            let summary = ping_summary(ping.kind, None);
            conn.prepare_cached(
                "INSERT INTO runs (check_id, kind, payload, state, run_at, max_attempts, enqueued_at, started_at, finished_at, summary, result)
                 VALUES (?1, 'ping', ?5, 'completed', ?2, 1, ?2, ?2, ?2, ?3, ?4)",
            )?
            .execute(params![ping.check_id, ping.at, summary, ping.meta, payload])?;
            (conn.last_insert_rowid(), ping.at, summary)
        }
        PingKind::Success | PingKind::Fail | PingKind::Exit(_) => {
            let open: Option<(i64, i64)> = match &dedup {
                Some(key) => conn
                    .prepare_cached(
                        "SELECT id, started_at FROM runs WHERE dedup_key = ?1 AND state = 'started'",
                    )?
                    .query_row([key], |row| Ok((row.get(0)?, row.get(1)?)))
                    .optional()?,
                None => conn
                    .prepare_cached(
                        "SELECT id, started_at FROM runs WHERE check_id = ?1 AND state = 'started'
                             AND dedup_key IS NULL ORDER BY id DESC LIMIT 1",
                    )?
                    .query_row([ping.check_id], |row| Ok((row.get(0)?, row.get(1)?)))
                    .optional()?,
            };
            let exit_code = match ping.kind {
                PingKind::Exit(code) => Some(i64::from(code)),
                _ => None,
            };
            match open {
                Some((run_id, started_at)) => {
                    let summary = ping_summary(ping.kind, Some(ping.at - started_at));
                    conn.prepare_cached(
                        "UPDATE runs SET state = 'completed', finished_at = ?2, status = ?3, exit_code = ?4,
                             summary = ?5, result = ?6, dedup_key = NULL
                         WHERE id = ?1",
                    )?
                    .execute(params![run_id, ping.at, status, exit_code, summary, ping.meta])?;
                    (run_id, started_at, summary)
                }
                None => {
                    let summary = ping_summary(ping.kind, None);
                    conn.prepare_cached(
                        "INSERT INTO runs (check_id, kind, payload, state, run_at, max_attempts, enqueued_at, started_at,
                             finished_at, status, exit_code, summary, result)
                         VALUES (?1, 'ping', ?7, 'completed', ?2, 1, ?2, ?2, ?2, ?3, ?4, ?5, ?6)",
                    )?
                    .execute(params![ping.check_id, ping.at, status, exit_code, summary, ping.meta, payload])?;
                    (conn.last_insert_rowid(), ping.at, summary)
                }
            }
        }
    };
    insert_output(conn, run_id, ping.at, &ping.body)?;
    let mut duration = None;
    if let Some(status) = status {
        // The end of a job: the check's latest status and the job's duration go in the same
        // transaction as the run, so a ping is one write and nothing is left for the recorder.
        crate::checks::record_status(conn, ping.check_id, run_id, status, &summary, ping.at)?;
        if started_at < ping.at {
            let series = format!("{}.duration", ping.check_name);
            let seconds = (ping.at - started_at) as f64 / 1000.0;
            let series_id = crate::samples::resolve_series(conn, &series, "{}")?;
            crate::samples::insert(
                conn,
                &[crate::samples::Sample {
                    series_id,
                    ts: ping.at,
                    value: seconds,
                }],
            )?;
            duration = Some((series, seconds));
        }
    }
    let row: (String, Option<i64>, Option<i64>) = match ping.kind.next_state() {
        Some(state) => {
            let success = status == Some("ok");
            let started = ping.kind == PingKind::Start;
            conn.prepare_cached(
                "UPDATE heartbeats SET state = ?2, last_ping_at = ?3, pings = pings + 1,
                     last_success_at = CASE WHEN ?4 THEN ?3 ELSE last_success_at END,
                     started_at = CASE WHEN ?5 THEN ?3 ELSE NULL END
                 WHERE check_id = ?1
                 RETURNING state, last_success_at, started_at",
            )?
            .query_row(
                params![ping.check_id, state, ping.at, success, started],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
            )?
        }
        None => conn
            .prepare_cached(
                "UPDATE heartbeats SET last_ping_at = ?2, pings = pings + 1 WHERE check_id = ?1
                 RETURNING state, last_success_at, started_at",
            )?
            .query_row(params![ping.check_id, ping.at], |r| {
                Ok((r.get(0)?, r.get(1)?, r.get(2)?))
            })?,
    };
    Ok(PingRecorded {
        run_id,
        status,
        summary,
        started_at,
        duration,
        state: row.0,
        last_success_at: row.1,
        started_open: row.2,
    })
}

/// A heartbeat found overdue by the monitor.
#[derive(Debug, Clone)]
pub struct Overdue<'a> {
    pub check_id: i64,
    pub check_name: &'a str,
    /// The last ping the monitor knew of; a different one in the store means a ping won.
    pub expect_last_ping: Option<i64>,
    /// `late` or `down`.
    pub state: &'a str,
    pub status: &'a str,
    pub summary: &'a str,
    pub now: i64,
}

/// Moves a heartbeat to `late` or `down` when nothing arrived since `expect_last_ping`
/// (compare-and-set, so a ping that raced the timer wins) and records it as a finished run.
/// Returns the run id, or `None` when a ping arrived meanwhile.
pub fn overdue(conn: &Connection, overdue: &Overdue<'_>) -> Result<Option<i64>, StoreError> {
    let Overdue {
        check_id,
        check_name,
        expect_last_ping,
        state,
        status,
        summary,
        now,
    } = *overdue;
    let changed = conn
        .prepare_cached(
            "UPDATE heartbeats SET state = ?2 WHERE check_id = ?1 AND last_ping_at IS ?3 AND state != ?2",
        )?
        .execute(params![check_id, state, expect_last_ping])?;
    if changed == 0 {
        return Ok(None);
    }
    if state == "down" {
        // Starts that never finished are over.
        conn.prepare_cached(
            "UPDATE runs SET state = 'completed', finished_at = ?2, status = 'crit',
                 summary = 'started, never finished', dedup_key = NULL
             WHERE check_id = ?1 AND state = 'started'",
        )?
        .execute(params![check_id, now])?;
        conn.prepare_cached("UPDATE heartbeats SET started_at = NULL WHERE check_id = ?1")?
            .execute([check_id])?;
    }
    conn.prepare_cached(
        "INSERT INTO runs (check_id, kind, payload, state, run_at, max_attempts, enqueued_at, started_at,
             finished_at, status, summary, result)
         VALUES (?1, 'ping', ?5, 'completed', ?2, 1, ?2, ?2, ?2, ?3, ?4, '{\"overdue\":true}')",
    )?
    .execute(params![check_id, now, status, summary, serde_json::json!({ "name": check_name }).to_string()])?;
    Ok(Some(conn.last_insert_rowid()))
}
