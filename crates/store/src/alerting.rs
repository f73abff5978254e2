//! Alerting rows: incidents (one open per rule and subject) with their timeline, durable
//! notification deliveries (deduplicated by key, retried with a due time) and one-off
//! silences. Free functions over a `&Connection` with an explicit `now`, like the queue.

use rusqlite::{Connection, OptionalExtension, params};

use crate::StoreError;

/// An incident as stored.
#[derive(Debug, Clone, PartialEq)]
pub struct IncidentRow {
    pub id: i64,
    pub rule: String,
    pub subject: String,
    pub check_id: Option<i64>,
    pub check_name: Option<String>,
    pub severity: String,
    /// Canonical JSON object.
    pub labels: String,
    /// `open`, `notified`, `acknowledged` or `resolved`.
    pub state: String,
    pub status: Option<String>,
    pub summary: String,
    pub value: Option<f64>,
    pub message: String,
    pub opened_at: i64,
    pub notified_at: Option<i64>,
    pub acknowledged_at: Option<i64>,
    pub acknowledged_by: Option<String>,
    pub ack_note: Option<String>,
    pub resolved_at: Option<i64>,
    pub resolved_status: Option<String>,
    pub resolved_summary: Option<String>,
    pub held: bool,
}

/// What opening an incident needs.
#[derive(Debug, Clone, PartialEq)]
pub struct NewIncident {
    pub rule: String,
    pub subject: String,
    pub check_id: Option<i64>,
    pub check_name: Option<String>,
    pub severity: String,
    pub labels: String,
    pub status: Option<String>,
    pub summary: String,
    pub value: Option<f64>,
    pub message: String,
    pub held: bool,
}

/// One line of an incident's timeline.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IncidentEvent {
    pub id: i64,
    pub incident_id: i64,
    pub at: i64,
    pub kind: String,
    pub notifier: Option<String>,
    pub detail: String,
}

/// A notification to deliver, with what the sender needs to know about its incident.
#[derive(Debug, Clone, PartialEq)]
pub struct DeliveryRow {
    pub id: i64,
    pub incident_id: Option<i64>,
    pub notifier: String,
    /// `opened`, `repeat-N`, `resolved` or `test`.
    pub event: String,
    pub dedup_key: String,
    pub state: String,
    pub attempts: u32,
    pub next_at: i64,
    pub created_at: i64,
    pub sent_at: Option<i64>,
    pub last_error: Option<String>,
}

/// A one-off maintenance window.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SilenceRow {
    pub id: i64,
    /// A glob over check names.
    pub checks: String,
    pub note: String,
    pub created_by: String,
    pub starts_at: i64,
    pub ends_at: i64,
    pub created_at: i64,
    pub deleted_at: Option<i64>,
}

const INCIDENT_COLUMNS: &str = "id, rule, subject, check_id, check_name, severity, labels, state, \
    status, summary, value, message, opened_at, notified_at, acknowledged_at, acknowledged_by, \
    ack_note, resolved_at, resolved_status, resolved_summary, held";

fn incident_from_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<IncidentRow> {
    Ok(IncidentRow {
        id: row.get(0)?,
        rule: row.get(1)?,
        subject: row.get(2)?,
        check_id: row.get(3)?,
        check_name: row.get(4)?,
        severity: row.get(5)?,
        labels: row.get(6)?,
        state: row.get(7)?,
        status: row.get(8)?,
        summary: row.get(9)?,
        value: row.get(10)?,
        message: row.get(11)?,
        opened_at: row.get(12)?,
        notified_at: row.get(13)?,
        acknowledged_at: row.get(14)?,
        acknowledged_by: row.get(15)?,
        ack_note: row.get(16)?,
        resolved_at: row.get(17)?,
        resolved_status: row.get(18)?,
        resolved_summary: row.get(19)?,
        held: row.get::<_, i64>(20)? != 0,
    })
}

/// Opens an incident; `Err(id)` when one is already open for the same rule and subject.
pub fn open_incident(
    conn: &Connection,
    incident: &NewIncident,
    now: i64,
) -> Result<Result<i64, i64>, StoreError> {
    let existing: Option<i64> = conn
        .prepare_cached(
            "SELECT id FROM incidents WHERE rule = ?1 AND subject = ?2 AND resolved_at IS NULL",
        )?
        .query_row(params![incident.rule, incident.subject], |row| row.get(0))
        .optional()?;
    if let Some(id) = existing {
        return Ok(Err(id));
    }
    let id: i64 = conn
        .prepare_cached(
            "INSERT INTO incidents (rule, subject, check_id, check_name, severity, labels, state,
                status, summary, value, message, opened_at, held)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, 'open', ?7, ?8, ?9, ?10, ?11, ?12) RETURNING id",
        )?
        .query_row(
            params![
                incident.rule,
                incident.subject,
                incident.check_id,
                incident.check_name,
                incident.severity,
                incident.labels,
                incident.status,
                incident.summary,
                incident.value,
                incident.message,
                now,
                i64::from(incident.held),
            ],
            |row| row.get(0),
        )?;
    add_event(conn, id, now, "opened", None, &incident.summary)?;
    Ok(Ok(id))
}

/// Marks an open incident resolved; false when it was not open.
pub fn resolve_incident(
    conn: &Connection,
    id: i64,
    status: &str,
    summary: &str,
    now: i64,
) -> Result<bool, StoreError> {
    let changed = conn
        .prepare_cached(
            "UPDATE incidents SET state = 'resolved', resolved_at = ?2, resolved_status = ?3,
                resolved_summary = ?4 WHERE id = ?1 AND resolved_at IS NULL",
        )?
        .execute(params![id, now, status, summary])?;
    if changed == 0 {
        return Ok(false);
    }
    add_event(
        conn,
        id,
        now,
        "resolved",
        None,
        &format!("{status}: {summary}"),
    )?;
    Ok(true)
}

/// Sets or clears the incident's `held` flag.
pub fn set_held(conn: &Connection, id: i64, held: bool) -> Result<(), StoreError> {
    conn.prepare_cached("UPDATE incidents SET held = ?2 WHERE id = ?1")?
        .execute(params![id, i64::from(held)])?;
    Ok(())
}

/// Why an acknowledgement was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AckRefused {
    NotFound,
    Resolved,
}

/// Acknowledges an open incident (again, if already acknowledged: the latest note wins).
pub fn acknowledge(
    conn: &Connection,
    id: i64,
    by: &str,
    note: &str,
    now: i64,
) -> Result<Result<IncidentRow, AckRefused>, StoreError> {
    let Some(incident) = get_incident(conn, id)? else {
        return Ok(Err(AckRefused::NotFound));
    };
    if incident.resolved_at.is_some() {
        return Ok(Err(AckRefused::Resolved));
    }
    conn.prepare_cached(
        "UPDATE incidents SET state = 'acknowledged', acknowledged_at = ?2, acknowledged_by = ?3,
            ack_note = ?4 WHERE id = ?1",
    )?
    .execute(params![id, now, by, note])?;
    let detail = if note.is_empty() {
        format!("by {by}")
    } else {
        format!("by {by}: {note}")
    };
    add_event(conn, id, now, "acknowledged", None, &detail)?;
    get_incident(conn, id)?
        .map(Ok)
        .ok_or(StoreError::Invalid(format!("incident {id} vanished")))
}

pub fn add_event(
    conn: &Connection,
    incident_id: i64,
    at: i64,
    kind: &str,
    notifier: Option<&str>,
    detail: &str,
) -> Result<(), StoreError> {
    conn.prepare_cached(
        "INSERT INTO incident_events (incident_id, at, kind, notifier, detail) VALUES (?1, ?2, ?3, ?4, ?5)",
    )?
    .execute(params![incident_id, at, kind, notifier, detail])?;
    Ok(())
}

pub fn get_incident(conn: &Connection, id: i64) -> Result<Option<IncidentRow>, StoreError> {
    Ok(conn
        .prepare_cached(&format!(
            "SELECT {INCIDENT_COLUMNS} FROM incidents WHERE id = ?1"
        ))?
        .query_row([id], incident_from_row)
        .optional()?)
}

/// Every incident not resolved yet, oldest first.
pub fn open_incidents(conn: &Connection) -> Result<Vec<IncidentRow>, StoreError> {
    let mut statement = conn.prepare_cached(&format!(
        "SELECT {INCIDENT_COLUMNS} FROM incidents WHERE resolved_at IS NULL ORDER BY id"
    ))?;
    let rows = statement.query_map([], incident_from_row)?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// A page of incidents, newest first: only open ones with `open_only`, ids below `before_id`.
pub fn list_incidents(
    conn: &Connection,
    open_only: bool,
    before_id: Option<i64>,
    limit: usize,
) -> Result<Vec<IncidentRow>, StoreError> {
    let mut statement = conn.prepare_cached(&format!(
        "SELECT {INCIDENT_COLUMNS} FROM incidents
         WHERE (?1 = 0 OR resolved_at IS NULL) AND id < ?2 ORDER BY id DESC LIMIT ?3 + 0"
    ))?;
    let rows = statement.query_map(
        params![
            i64::from(open_only),
            before_id.unwrap_or(i64::MAX),
            i64::try_from(limit).unwrap_or(i64::MAX)
        ],
        incident_from_row,
    )?;
    Ok(rows.collect::<Result<_, _>>()?)
}

pub fn incident_events(
    conn: &Connection,
    incident_id: i64,
) -> Result<Vec<IncidentEvent>, StoreError> {
    let mut statement = conn.prepare_cached(
        "SELECT id, incident_id, at, kind, notifier, detail FROM incident_events
         WHERE incident_id = ?1 ORDER BY id",
    )?;
    let rows = statement.query_map([incident_id], |row| {
        Ok(IncidentEvent {
            id: row.get(0)?,
            incident_id: row.get(1)?,
            at: row.get(2)?,
            kind: row.get(3)?,
            notifier: row.get(4)?,
            detail: row.get(5)?,
        })
    })?;
    Ok(rows.collect::<Result<_, _>>()?)
}

const DELIVERY_COLUMNS: &str = "id, incident_id, notifier, event, dedup_key, state, attempts, \
    next_at, created_at, sent_at, last_error";

fn delivery_from_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<DeliveryRow> {
    Ok(DeliveryRow {
        id: row.get(0)?,
        incident_id: row.get(1)?,
        notifier: row.get(2)?,
        event: row.get(3)?,
        dedup_key: row.get(4)?,
        state: row.get(5)?,
        attempts: row.get(6)?,
        next_at: row.get(7)?,
        created_at: row.get(8)?,
        sent_at: row.get(9)?,
        last_error: row.get(10)?,
    })
}

/// Queues a notification (`held` or `pending`); `None` when one with the same dedup key
/// (notifier, incident, event) exists already: the same notification is never queued twice.
pub fn queue_delivery(
    conn: &Connection,
    incident_id: Option<i64>,
    notifier: &str,
    event: &str,
    held: bool,
    now: i64,
) -> Result<Option<i64>, StoreError> {
    let dedup_key = match incident_id {
        Some(id) => format!("{notifier}/{id}/{event}"),
        None => format!("{notifier}/-/{event}/{now}"),
    };
    let state = if held { "held" } else { "pending" };
    let id = conn
        .prepare_cached(
            "INSERT INTO deliveries (incident_id, notifier, event, dedup_key, state, next_at, created_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?6) ON CONFLICT (dedup_key) DO NOTHING RETURNING id",
        )?
        .query_row(
            params![incident_id, notifier, event, dedup_key, state, now],
            |row| row.get(0),
        )
        .optional()?;
    Ok(id)
}

/// Moves an incident's held notifications to pending; returns how many.
pub fn release_held(conn: &Connection, incident_id: i64, now: i64) -> Result<usize, StoreError> {
    Ok(conn
        .prepare_cached(
            "UPDATE deliveries SET state = 'pending', next_at = ?2 WHERE incident_id = ?1 AND state = 'held'",
        )?
        .execute(params![incident_id, now])?)
}

/// Drops an incident's held notifications (it resolved inside the window); returns how many.
pub fn drop_held(conn: &Connection, incident_id: i64) -> Result<usize, StoreError> {
    Ok(conn
        .prepare_cached(
            "UPDATE deliveries SET state = 'dropped' WHERE incident_id = ?1 AND state = 'held'",
        )?
        .execute([incident_id])?)
}

/// Pending deliveries due by `now`, earliest first.
pub fn due_deliveries(
    conn: &Connection,
    now: i64,
    limit: usize,
) -> Result<Vec<DeliveryRow>, StoreError> {
    let mut statement = conn.prepare_cached(&format!(
        "SELECT {DELIVERY_COLUMNS} FROM deliveries WHERE state = 'pending' AND next_at <= ?1
         ORDER BY next_at, id LIMIT ?2 + 0"
    ))?;
    let rows = statement.query_map(
        params![now, i64::try_from(limit).unwrap_or(i64::MAX)],
        delivery_from_row,
    )?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// When the next pending delivery is due, if any.
pub fn next_due(conn: &Connection) -> Result<Option<i64>, StoreError> {
    Ok(conn
        .prepare_cached("SELECT min(next_at) FROM deliveries WHERE state = 'pending'")?
        .query_row([], |row| row.get(0))?)
}

pub fn deliveries_of(conn: &Connection, incident_id: i64) -> Result<Vec<DeliveryRow>, StoreError> {
    let mut statement = conn.prepare_cached(&format!(
        "SELECT {DELIVERY_COLUMNS} FROM deliveries WHERE incident_id = ?1 ORDER BY id"
    ))?;
    let rows = statement.query_map([incident_id], delivery_from_row)?;
    Ok(rows.collect::<Result<_, _>>()?)
}

pub fn get_delivery(conn: &Connection, id: i64) -> Result<Option<DeliveryRow>, StoreError> {
    Ok(conn
        .prepare_cached(&format!(
            "SELECT {DELIVERY_COLUMNS} FROM deliveries WHERE id = ?1"
        ))?
        .query_row([id], delivery_from_row)
        .optional()?)
}

/// What became of one delivery attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AttemptOutcome {
    Sent,
    /// Failed; tried again at `next_at`.
    Retry {
        error: String,
        next_at: i64,
    },
    /// Failed for the last time.
    Failed {
        error: String,
    },
}

/// Records an attempt on the delivery and on its incident's timeline; a sent `opened` (or
/// repeat) notification marks the incident notified.
pub fn record_attempt(
    conn: &Connection,
    delivery: &DeliveryRow,
    attempts: u32,
    outcome: &AttemptOutcome,
    now: i64,
) -> Result<(), StoreError> {
    let (state, next_at, error, sent_at) = match outcome {
        AttemptOutcome::Sent => ("sent", delivery.next_at, None, Some(now)),
        AttemptOutcome::Retry { error, next_at } => ("pending", *next_at, Some(error), None),
        AttemptOutcome::Failed { error } => ("failed", delivery.next_at, Some(error), None),
    };
    conn.prepare_cached(
        "UPDATE deliveries SET state = ?2, attempts = ?3, next_at = ?4, last_error = coalesce(?5, last_error),
            sent_at = ?6 WHERE id = ?1",
    )?
    .execute(params![delivery.id, state, attempts, next_at, error, sent_at])?;
    let Some(incident_id) = delivery.incident_id else {
        return Ok(());
    };
    let notifier = Some(delivery.notifier.as_str());
    match outcome {
        AttemptOutcome::Sent => {
            let detail = format!("{} (attempt {attempts})", delivery.event);
            add_event(conn, incident_id, now, "delivered", notifier, &detail)?;
            if delivery.event != "resolved" {
                conn.prepare_cached(
                    "UPDATE incidents SET notified_at = coalesce(notified_at, ?2),
                        state = CASE WHEN state = 'open' THEN 'notified' ELSE state END
                     WHERE id = ?1",
                )?
                .execute(params![incident_id, now])?;
            }
        }
        AttemptOutcome::Retry { error, .. } => {
            let detail = format!("{} attempt {attempts} failed: {error}", delivery.event);
            add_event(conn, incident_id, now, "attempt_failed", notifier, &detail)?;
        }
        AttemptOutcome::Failed { error } => {
            let detail = format!(
                "{} not delivered after {attempts} attempts: {error}",
                delivery.event
            );
            add_event(conn, incident_id, now, "delivery_failed", notifier, &detail)?;
        }
    }
    Ok(())
}

/// Moves a pending delivery's due time (rate limited).
pub fn postpone(conn: &Connection, id: i64, next_at: i64) -> Result<(), StoreError> {
    conn.prepare_cached("UPDATE deliveries SET next_at = ?2 WHERE id = ?1 AND state = 'pending'")?
        .execute(params![id, next_at])?;
    Ok(())
}

pub fn insert_silence(
    conn: &Connection,
    checks: &str,
    note: &str,
    created_by: &str,
    starts_at: i64,
    ends_at: i64,
    now: i64,
) -> Result<SilenceRow, StoreError> {
    let id: i64 = conn
        .prepare_cached(
            "INSERT INTO silences (checks, note, created_by, starts_at, ends_at, created_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6) RETURNING id",
        )?
        .query_row(
            params![checks, note, created_by, starts_at, ends_at, now],
            |row| row.get(0),
        )?;
    Ok(SilenceRow {
        id,
        checks: checks.to_string(),
        note: note.to_string(),
        created_by: created_by.to_string(),
        starts_at,
        ends_at,
        created_at: now,
        deleted_at: None,
    })
}

/// Silences not deleted and not over by `now` (all not deleted with `include_expired`).
pub fn list_silences(
    conn: &Connection,
    include_expired: bool,
    now: i64,
) -> Result<Vec<SilenceRow>, StoreError> {
    let mut statement = conn.prepare_cached(
        "SELECT id, checks, note, created_by, starts_at, ends_at, created_at, deleted_at FROM silences
         WHERE deleted_at IS NULL AND (?1 = 1 OR ends_at > ?2) ORDER BY id",
    )?;
    let rows = statement.query_map(params![i64::from(include_expired), now], |row| {
        Ok(SilenceRow {
            id: row.get(0)?,
            checks: row.get(1)?,
            note: row.get(2)?,
            created_by: row.get(3)?,
            starts_at: row.get(4)?,
            ends_at: row.get(5)?,
            created_at: row.get(6)?,
            deleted_at: row.get(7)?,
        })
    })?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// Ends a silence now; false when there is no such (undeleted) silence.
pub fn delete_silence(conn: &Connection, id: i64, now: i64) -> Result<bool, StoreError> {
    Ok(conn
        .prepare_cached("UPDATE silences SET deleted_at = ?2 WHERE id = ?1 AND deleted_at IS NULL")?
        .execute(params![id, now])?
        > 0)
}
