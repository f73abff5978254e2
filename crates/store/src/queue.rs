//! The durable run queue: enqueue (with dedup keys), lease with a deadline and a fencing
//! token, heartbeat, complete, fail with backoff or dead-letter, cancel, reclaim expired leases.
//!
//! Every function takes the connection (the writer's transaction) and `now` in milliseconds,
//! so the same code serves the hub, the benchmarks and the property test with a fake clock.

use rusqlite::{Connection, OptionalExtension, params};

use crate::StoreError;

/// Where a run is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RunState {
    Queued,
    Leased,
    /// A heartbeat's `/start` waiting for its end ping (never leased).
    Started,
    Completed,
    Dead,
    Cancelled,
}

impl RunState {
    pub fn as_str(self) -> &'static str {
        match self {
            RunState::Queued => "queued",
            RunState::Leased => "leased",
            RunState::Started => "started",
            RunState::Completed => "completed",
            RunState::Dead => "dead",
            RunState::Cancelled => "cancelled",
        }
    }

    pub fn parse(text: &str) -> Option<RunState> {
        match text {
            "queued" => Some(RunState::Queued),
            "leased" => Some(RunState::Leased),
            "started" => Some(RunState::Started),
            "completed" => Some(RunState::Completed),
            "dead" => Some(RunState::Dead),
            "cancelled" => Some(RunState::Cancelled),
            _ => None,
        }
    }

    pub fn is_final(self) -> bool {
        matches!(
            self,
            RunState::Completed | RunState::Dead | RunState::Cancelled
        )
    }
}

/// The payload of a `check` run that runs its check's current definition (`checks.spec`)
/// rather than a copy of it. The scheduler enqueues its runs so: a copy per run made each row
/// several times larger, and every byte of it was written twice (WAL, then database) at
/// thousands of runs a second. Leases and reads of such a run show the check's definition as
/// its payload, so workers and API clients see the same thing either way.
pub const CHECK_SPEC_PAYLOAD: &str = "";

/// A run to enqueue.
#[derive(Debug, Clone, PartialEq)]
pub struct NewRun {
    pub check_id: Option<i64>,
    /// What the worker should do with it: `check`, `job`, ...
    pub kind: String,
    /// JSON given to the worker ([`CHECK_SPEC_PAYLOAD`]: the check's definition).
    pub payload: String,
    /// Higher runs first among runs that are due.
    pub priority: i64,
    /// Not leased before this time.
    pub run_at: i64,
    pub max_attempts: u32,
    /// A second enqueue with the same key returns the first run instead of adding one.
    pub dedup_key: Option<String>,
    /// Runs with the same key are leased one at a time, oldest first.
    pub concurrency_key: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Enqueued {
    pub run_id: i64,
    pub deduplicated: bool,
}

/// A run handed to a worker. `fence` must accompany every later call about it.
#[derive(Debug, Clone, PartialEq)]
pub struct Lease {
    pub run_id: i64,
    pub fence: i64,
    pub attempt: u32,
    pub max_attempts: u32,
    pub check_id: Option<i64>,
    pub kind: String,
    pub payload: String,
    pub lease_until: i64,
}

/// The result a worker reports.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Completion {
    pub status: Option<String>,
    pub exit_code: Option<i64>,
    pub summary: Option<String>,
    /// JSON with kind-specific details.
    pub result: Option<String>,
}

/// What became of a failed attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailOutcome {
    /// Queued again, not before `run_at`.
    Retrying { run_at: i64 },
    /// Out of attempts: dead-lettered.
    Dead,
}

/// One run as stored.
#[derive(Debug, Clone, PartialEq)]
pub struct RunRow {
    pub id: i64,
    pub check_id: Option<i64>,
    pub kind: String,
    pub payload: String,
    pub state: RunState,
    pub priority: i64,
    pub run_at: i64,
    pub attempts: u32,
    pub max_attempts: u32,
    pub dedup_key: Option<String>,
    pub lease_owner: Option<String>,
    pub lease_until: Option<i64>,
    pub fence: i64,
    pub enqueued_at: i64,
    pub started_at: Option<i64>,
    pub finished_at: Option<i64>,
    pub status: Option<String>,
    pub exit_code: Option<i64>,
    pub summary: Option<String>,
    pub result: Option<String>,
    pub last_error: Option<String>,
}

/// Exponential backoff with full jitter: a delay drawn in `[base*2^(attempt-1) / 2, base*2^(attempt-1)]`,
/// capped at `max_ms`. `random` is any random u64 (the caller owns randomness).
pub fn backoff_delay(attempt: u32, base_ms: u64, max_ms: u64, random: u64) -> u64 {
    let exponent = attempt.saturating_sub(1).min(32);
    let ceiling = base_ms.saturating_mul(1u64 << exponent).min(max_ms).max(1);
    let half = ceiling / 2;
    half + random % (ceiling - half + 1)
}

/// The run holding `run`'s dedup key, if it has one and a run holds it.
fn run_with_dedup_key(conn: &Connection, run: &NewRun) -> Result<Option<i64>, StoreError> {
    let Some(key) = &run.dedup_key else {
        return Ok(None);
    };
    Ok(conn
        .prepare_cached("SELECT id FROM runs WHERE dedup_key = ?1")?
        .query_row([key], |row| row.get(0))
        .optional()?)
}

/// What every enqueue refuses.
fn validate(run: &NewRun) -> Result<(), StoreError> {
    if run.max_attempts == 0 {
        return Err(StoreError::Invalid(
            "max_attempts must be at least 1".to_string(),
        ));
    }
    if run.kind.is_empty() {
        return Err(StoreError::Invalid("kind must not be empty".to_string()));
    }
    Ok(())
}

pub fn enqueue(conn: &Connection, run: &NewRun, now: i64) -> Result<Enqueued, StoreError> {
    validate(run)?;
    let inserted: Option<i64> = conn
        .prepare_cached(
            "INSERT INTO runs (check_id, kind, payload, state, priority, run_at, max_attempts, dedup_key, concurrency_key, enqueued_at)
             VALUES (?1, ?2, ?3, 'queued', ?4, ?5, ?6, ?7, ?9, ?8)
             ON CONFLICT (dedup_key) WHERE dedup_key IS NOT NULL DO NOTHING
             RETURNING id",
        )?
        .query_row(
            params![
                run.check_id,
                run.kind,
                run.payload,
                run.priority,
                run.run_at,
                run.max_attempts,
                run.dedup_key,
                now,
                run.concurrency_key
            ],
            |row| row.get(0),
        )
        .optional()?;
    if let Some(run_id) = inserted {
        return Ok(Enqueued {
            run_id,
            deduplicated: false,
        });
    }
    let existing = run_with_dedup_key(conn, run)?.ok_or(rusqlite::Error::QueryReturnedNoRows)?;
    Ok(Enqueued {
        run_id: existing,
        deduplicated: true,
    })
}

/// Who a run is leased to as it is enqueued ([`enqueue_leased`]).
#[derive(Debug, Clone, Copy)]
pub struct LeaseTo<'a> {
    pub owner: &'a str,
    pub lease_until: i64,
}

/// Enqueues `run` already leased to `to` (its first attempt, fence 1), for a worker that takes
/// it at once: one insert instead of an insert and a lease, and the run never enters the
/// ready index. A run with a dedup key that is taken is not added (as [`enqueue`]) and gets no
/// lease. Runs with a concurrency key must go through [`enqueue`] and [`lease`], which keep
/// them one at a time.
pub fn enqueue_leased(
    conn: &Connection,
    run: &NewRun,
    to: LeaseTo<'_>,
    now: i64,
) -> Result<(Enqueued, Option<Lease>), StoreError> {
    match enqueue_slot(conn, run, None, Some(to), now)? {
        Slot::Added { run_id, lease } => Ok((
            Enqueued {
                run_id,
                deduplicated: false,
            },
            lease,
        )),
        Slot::Duplicate(run_id) => Ok((
            Enqueued {
                run_id,
                deduplicated: true,
            },
            None,
        )),
        // Without a limit nothing is skipped.
        Slot::Skipped => Err(StoreError::Invalid("the run was not enqueued".to_string())),
    }
}

/// What became of a run offered by [`enqueue_slot`].
#[derive(Debug, Clone, PartialEq)]
pub enum Slot {
    /// Added (queued, or leased when a lease was asked for and it has no concurrency key).
    Added { run_id: i64, lease: Option<Lease> },
    /// A run with the same dedup key exists already.
    Duplicate(i64),
    /// Its check already had `live_limit` runs queued or leased.
    Skipped,
}

/// Enqueues a scheduled run: unless its check already has `live_limit` runs
/// queued or leased (`None`: no limit), and, when `lease_to` is given and the run has no
/// concurrency key, already leased to that worker (its first attempt, fence 1; see
/// [`enqueue_leased`]). A taken dedup key adds nothing (as [`enqueue`]).
pub fn enqueue_slot(
    conn: &Connection,
    run: &NewRun,
    live_limit: Option<u64>,
    lease_to: Option<LeaseTo<'_>>,
    now: i64,
) -> Result<Slot, StoreError> {
    validate(run)?;
    let lease_to = match lease_to {
        Some(_) if run.concurrency_key.is_some() => {
            return Err(StoreError::Invalid(
                "a run with a concurrency key cannot be enqueued leased".to_string(),
            ));
        }
        other => other,
    };
    // Counted first in a statement of its own: the same test inside the insert (an
    // `INSERT … SELECT … WHERE (SELECT count(*) FROM runs …)`) reads the table it writes, and
    // SQLite then stages every row in a temporary table (measured: a third more writer time).
    if let (Some(limit), Some(check_id)) = (live_limit, run.check_id)
        && live_runs_of_check(conn, check_id)? >= limit
    {
        return Ok(Slot::Skipped);
    }
    let (state, owner, until, taken, started) = match lease_to {
        Some(to) => ("leased", Some(to.owner), Some(to.lease_until), 1, Some(now)),
        None => ("queued", None, None, 0, None),
    };
    // `OR IGNORE` rather than `ON CONFLICT (dedup_key) DO NOTHING`: the same for the dedup key
    // (the only constraint these rows can break; every other column is ours and checked above),
    // but a statement that cannot abort half-way needs no statement journal, which copied every
    // page each insert touched (at 1,000 inserts a second, a twelfth of the writer's time).
    let inserted: Option<i64> = conn
        .prepare_cached(
            "INSERT OR IGNORE INTO runs (check_id, kind, payload, state, priority, run_at, max_attempts,
                               dedup_key, concurrency_key, enqueued_at, lease_owner, lease_until,
                               fence, attempts, started_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?13, ?14)
             RETURNING id",
        )?
        .query_row(
            params![
                run.check_id,
                run.kind,
                run.payload,
                state,
                run.priority,
                run.run_at,
                run.max_attempts,
                run.dedup_key,
                run.concurrency_key,
                now,
                owner,
                until,
                taken,
                started,
            ],
            |row| row.get(0),
        )
        .optional()?;
    if let Some(run_id) = inserted {
        let lease = lease_to.map(|to| Lease {
            run_id,
            fence: 1,
            attempt: 1,
            max_attempts: run.max_attempts,
            check_id: run.check_id,
            kind: run.kind.clone(),
            payload: run.payload.clone(),
            lease_until: to.lease_until,
        });
        return Ok(Slot::Added { run_id, lease });
    }
    if let Some(existing) = run_with_dedup_key(conn, run)? {
        return Ok(Slot::Duplicate(existing));
    }
    Ok(Slot::Skipped)
}

/// Returns runs whose lease expired to the queue (or dead-letters them when out of attempts).
pub fn reclaim_expired(conn: &Connection, now: i64) -> Result<usize, StoreError> {
    let changed = conn
        .prepare_cached(
            "UPDATE runs SET
                state = CASE WHEN attempts >= max_attempts THEN 'dead' ELSE 'queued' END,
                finished_at = CASE WHEN attempts >= max_attempts THEN ?1 ELSE NULL END,
                last_error = 'lease expired (held by ' || coalesce(lease_owner, '?') || ')',
                run_at = ?1, lease_owner = NULL, lease_until = NULL
             WHERE state = 'leased' AND lease_until <= ?1",
        )?
        .execute([now])?;
    Ok(changed)
}

/// Leases up to `limit` due runs to `owner` until `now + lease_ms`, highest priority first,
/// then oldest due. Expired leases are reclaimed first. Each lease gets a new fencing token.
pub fn lease(
    conn: &Connection,
    owner: &str,
    limit: usize,
    lease_ms: i64,
    now: i64,
) -> Result<Vec<Lease>, StoreError> {
    lease_kinds(conn, owner, &[], limit, lease_ms, now)
}

macro_rules! lease_sql {
    ($kinds:literal) => {
        concat!(
            "UPDATE runs SET state = 'leased', lease_owner = ?1, lease_until = ?2, fence = fence + 1,
                 attempts = attempts + 1, started_at = ?3
             WHERE id IN (SELECT id FROM runs AS r WHERE state = 'queued' AND run_at <= ?3 AND ",
            $kinds,
            "
                            AND (concurrency_key IS NULL OR (
                                NOT EXISTS (SELECT 1 FROM runs AS l WHERE l.state = 'leased' AND l.concurrency_key = r.concurrency_key)
                                AND id = (SELECT min(q.id) FROM runs AS q WHERE q.state = 'queued' AND q.concurrency_key = r.concurrency_key)))
                          ORDER BY priority DESC, run_at, id LIMIT ?4 + 0)
             RETURNING id, fence, attempts, max_attempts, check_id, kind, payload, priority, run_at"
        )
    };
}
/// Leases due runs of any kind.
pub(crate) const LEASE_SQL_ANY_KIND: &str = lease_sql!("1");
/// Leases due runs of the kinds in `?5` (a JSON array).
pub(crate) const LEASE_SQL_KINDS: &str = lease_sql!("kind IN (SELECT value FROM json_each(?5))");

/// [`lease`], restricted to runs of the given kinds (all kinds when `kinds` is empty), so a
/// worker only takes what it can run.
pub fn lease_kinds(
    conn: &Connection,
    owner: &str,
    kinds: &[&str],
    limit: usize,
    lease_ms: i64,
    now: i64,
) -> Result<Vec<Lease>, StoreError> {
    lease_kinds_with_specs(conn, owner, kinds, limit, lease_ms, now, &|_| None)
}

/// [`lease_kinds`] for a worker that already holds check definitions: `known` gives a
/// check's definition for runs enqueued with [`CHECK_SPEC_PAYLOAD`], and only checks it does
/// not know are read from the store (at thousands of runs a second those reads were random
/// page reads of the `checks` table).
pub fn lease_kinds_with_specs(
    conn: &Connection,
    owner: &str,
    kinds: &[&str],
    limit: usize,
    lease_ms: i64,
    now: i64,
    known: &dyn Fn(i64) -> Option<String>,
) -> Result<Vec<Lease>, StoreError> {
    if limit == 0 {
        return Ok(Vec::new());
    }
    reclaim_expired(conn, now)?;
    let lease_until = now.saturating_add(lease_ms.max(1));
    let kinds_json =
        serde_json::to_string(kinds).map_err(|error| StoreError::Invalid(error.to_string()))?;
    // Two fixed statements rather than one with `?5 IS NULL OR …`: SQLite re-plans a statement
    // on every execution when a bound value can change its plan, and that one could.
    let sql = if kinds.is_empty() {
        LEASE_SQL_ANY_KIND
    } else {
        LEASE_SQL_KINDS
    };
    let mut statement = conn.prepare_cached(sql)?;
    let limit = limit as i64;
    let bound: &[&dyn rusqlite::ToSql] = if kinds.is_empty() {
        &[&owner, &lease_until, &now, &limit]
    } else {
        &[&owner, &lease_until, &now, &limit, &kinds_json]
    };
    let rows = statement.query_map(bound, |row| {
        Ok((
            Lease {
                run_id: row.get(0)?,
                fence: row.get(1)?,
                attempt: row.get(2)?,
                max_attempts: row.get(3)?,
                check_id: row.get(4)?,
                kind: row.get(5)?,
                payload: row.get(6)?,
                lease_until,
            },
            row.get::<_, i64>(7)?,
            row.get::<_, i64>(8)?,
        ))
    })?;
    let mut leases = rows.collect::<Result<Vec<_>, _>>()?;
    drop(statement);
    for (lease, _, _) in &mut leases {
        resolve_payload(conn, lease, known)?;
    }
    // RETURNING order is unspecified: restore the queue's order.
    leases.sort_by(|a, b| {
        b.1.cmp(&a.1)
            .then(a.2.cmp(&b.2))
            .then(a.0.run_id.cmp(&b.0.run_id))
    });
    Ok(leases.into_iter().map(|(lease, _, _)| lease).collect())
}

/// Gives a lease of a run enqueued with [`CHECK_SPEC_PAYLOAD`] its check's definition as its
/// payload: from `known` when it has it, else from the store.
pub fn resolve_payload(
    conn: &Connection,
    lease: &mut Lease,
    known: &dyn Fn(i64) -> Option<String>,
) -> Result<(), StoreError> {
    if lease.payload == CHECK_SPEC_PAYLOAD
        && let Some(check_id) = lease.check_id
    {
        lease.payload = match known(check_id) {
            Some(spec) => spec,
            None => check_spec(conn, check_id)?,
        };
    }
    Ok(())
}

/// A check's definition, for a run enqueued with [`CHECK_SPEC_PAYLOAD`] (`{}` if the check
/// is gone: the worker then reports it unreadable).
fn check_spec(conn: &Connection, check_id: i64) -> Result<String, StoreError> {
    Ok(conn
        .prepare_cached("SELECT spec FROM checks WHERE id = ?1")?
        .query_row([check_id], |row| row.get(0))
        .optional()?
        .unwrap_or_else(|| "{}".to_string()))
}

/// Why a fenced update matched nothing.
fn fence_error(conn: &Connection, run_id: i64, fence: i64) -> StoreError {
    let state: Option<String> = conn
        .prepare_cached("SELECT state FROM runs WHERE id = ?1")
        .and_then(|mut s| s.query_row([run_id], |row| row.get(0)).optional())
        .unwrap_or(None);
    match state {
        None => StoreError::RunNotFound(run_id),
        Some(state) if state == "cancelled" => StoreError::WrongState {
            run_id,
            state,
            expected: "leased",
        },
        Some(_) => StoreError::StaleLease { run_id, fence },
    }
}

/// Extends a held lease to `lease_until`. Fails with `StaleLease` when the fence no longer holds
/// (the lease expired and went elsewhere) and `WrongState` when the run was cancelled.
pub fn heartbeat(
    conn: &Connection,
    run_id: i64,
    fence: i64,
    lease_until: i64,
) -> Result<(), StoreError> {
    let changed = conn
        .prepare_cached(
            "UPDATE runs SET lease_until = ?3 WHERE id = ?1 AND fence = ?2 AND state = 'leased'",
        )?
        .execute(params![run_id, fence, lease_until])?;
    if changed == 1 {
        Ok(())
    } else {
        Err(fence_error(conn, run_id, fence))
    }
}

/// Records the result of a held lease. A stale fence is refused, so one attempt has one result.
pub fn complete(
    conn: &Connection,
    run_id: i64,
    fence: i64,
    completion: &Completion,
    now: i64,
) -> Result<(), StoreError> {
    let changed = conn
        .prepare_cached(
            "UPDATE runs SET state = 'completed', finished_at = ?3, status = ?4, exit_code = ?5, summary = ?6,
                 result = ?7, lease_owner = NULL, lease_until = NULL
             WHERE id = ?1 AND fence = ?2 AND state = 'leased'",
        )?
        .execute(params![
            run_id,
            fence,
            now,
            completion.status,
            completion.exit_code,
            completion.summary,
            completion.result
        ])?;
    if changed == 1 {
        Ok(())
    } else {
        Err(fence_error(conn, run_id, fence))
    }
}

/// Records a failed attempt: queued again after `retry_delay_ms`, or dead-lettered when it was
/// the last attempt (or `retry_delay_ms` is `None`: not retryable).
pub fn fail(
    conn: &Connection,
    run_id: i64,
    fence: i64,
    error: &str,
    now: i64,
    retry_delay_ms: Option<u64>,
) -> Result<FailOutcome, StoreError> {
    let held: Option<(u32, u32)> = conn
        .prepare_cached("SELECT attempts, max_attempts FROM runs WHERE id = ?1 AND fence = ?2 AND state = 'leased'")?
        .query_row(params![run_id, fence], |row| Ok((row.get(0)?, row.get(1)?)))
        .optional()?;
    let Some((attempts, max_attempts)) = held else {
        return Err(fence_error(conn, run_id, fence));
    };
    match retry_delay_ms {
        Some(delay) if attempts < max_attempts => {
            let run_at = now.saturating_add(i64::try_from(delay).unwrap_or(i64::MAX));
            conn.prepare_cached(
                "UPDATE runs SET state = 'queued', run_at = ?2, last_error = ?3, lease_owner = NULL, lease_until = NULL
                 WHERE id = ?1",
            )?
            .execute(params![run_id, run_at, error])?;
            Ok(FailOutcome::Retrying { run_at })
        }
        _ => {
            conn.prepare_cached(
                "UPDATE runs SET state = 'dead', finished_at = ?2, last_error = ?3, lease_owner = NULL, lease_until = NULL
                 WHERE id = ?1",
            )?
            .execute(params![run_id, now, error])?;
            Ok(FailOutcome::Dead)
        }
    }
}

/// Cancels a queued or leased run; a worker holding it learns on its next heartbeat or result.
/// Returns the state it was in. A finished run is left as it is (`WrongState`).
pub fn cancel(conn: &Connection, run_id: i64, now: i64) -> Result<RunState, StoreError> {
    let state: Option<String> = conn
        .prepare_cached("SELECT state FROM runs WHERE id = ?1")?
        .query_row([run_id], |row| row.get(0))
        .optional()?;
    let Some(state) = state else {
        return Err(StoreError::RunNotFound(run_id));
    };
    let previous = RunState::parse(&state)
        .ok_or_else(|| StoreError::Invalid(format!("unknown run state {state}")))?;
    if previous.is_final() {
        return Err(StoreError::WrongState {
            run_id,
            state,
            expected: "queued or leased",
        });
    }
    conn.prepare_cached(
        "UPDATE runs SET state = 'cancelled', finished_at = ?2, lease_owner = NULL, lease_until = NULL WHERE id = ?1",
    )?
    .execute(params![run_id, now])?;
    Ok(previous)
}

/// The columns [`run_from_row`] reads; a run enqueued with [`CHECK_SPEC_PAYLOAD`] shows its
/// check's definition as its payload.
const RUN_COLUMNS: &str = "id, check_id, kind,
    CASE WHEN payload = '' AND check_id IS NOT NULL
         THEN coalesce((SELECT c.spec FROM checks AS c WHERE c.id = runs.check_id), '{}')
         ELSE payload END,
    state, priority, run_at, attempts, max_attempts, dedup_key,
    lease_owner, lease_until, fence, enqueued_at, started_at, finished_at, status, exit_code, summary, result, last_error";

fn run_from_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<RunRow> {
    let state: String = row.get(4)?;
    Ok(RunRow {
        id: row.get(0)?,
        check_id: row.get(1)?,
        kind: row.get(2)?,
        payload: row.get(3)?,
        state: RunState::parse(&state).unwrap_or(RunState::Dead),
        priority: row.get(5)?,
        run_at: row.get(6)?,
        attempts: row.get(7)?,
        max_attempts: row.get(8)?,
        dedup_key: row.get(9)?,
        lease_owner: row.get(10)?,
        lease_until: row.get(11)?,
        fence: row.get(12)?,
        enqueued_at: row.get(13)?,
        started_at: row.get(14)?,
        finished_at: row.get(15)?,
        status: row.get(16)?,
        exit_code: row.get(17)?,
        summary: row.get(18)?,
        result: row.get(19)?,
        last_error: row.get(20)?,
    })
}

pub fn get(conn: &Connection, run_id: i64) -> Result<Option<RunRow>, StoreError> {
    Ok(conn
        .prepare_cached(&format!("SELECT {RUN_COLUMNS} FROM runs WHERE id = ?1"))?
        .query_row([run_id], run_from_row)
        .optional()?)
}

/// Filters for [`list`]. `before_id` is the pagination cursor (runs are listed newest first).
#[derive(Debug, Clone, Default)]
pub struct RunFilter {
    pub check_id: Option<i64>,
    pub state: Option<RunState>,
    pub before_id: Option<i64>,
    pub limit: usize,
}

pub fn list(conn: &Connection, filter: &RunFilter) -> Result<Vec<RunRow>, StoreError> {
    let mut statement = conn.prepare_cached(&format!(
        "SELECT {RUN_COLUMNS} FROM runs
         WHERE (?1 IS NULL OR check_id = ?1) AND (?2 IS NULL OR state = ?2) AND (?3 IS NULL OR id < ?3)
         ORDER BY id DESC LIMIT ?4 + 0"
    ))?;
    let rows = statement.query_map(
        params![
            filter.check_id,
            filter.state.map(RunState::as_str),
            filter.before_id,
            filter.limit.clamp(1, 10_000) as i64
        ],
        run_from_row,
    )?;
    Ok(rows.collect::<Result<Vec<_>, _>>()?)
}

/// How many runs of a check are queued or leased.
pub fn live_runs_of_check(conn: &Connection, check_id: i64) -> Result<u64, StoreError> {
    Ok(conn
        .prepare_cached(
            "SELECT count(*) FROM runs WHERE check_id = ?1 AND state IN ('queued', 'leased')",
        )?
        .query_row([check_id], |row| row.get(0))?)
}

/// How many runs are in each live state.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct QueueDepth {
    pub queued: u64,
    pub leased: u64,
}

pub fn depth(conn: &Connection) -> Result<QueueDepth, StoreError> {
    let queued: u64 = conn
        .prepare_cached("SELECT count(*) FROM runs WHERE state = 'queued'")?
        .query_row([], |row| row.get(0))?;
    let leased: u64 = conn
        .prepare_cached("SELECT count(*) FROM runs WHERE state = 'leased'")?
        .query_row([], |row| row.get(0))?;
    Ok(QueueDepth { queued, leased })
}
