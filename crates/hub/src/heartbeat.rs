//! Heartbeat checks (dead-man's switches), healthchecks.io-compatible: `/ping/<key>` and its
//! `/start`, `/fail`, `/log`, `/<exit-code>` variants, `?rid=` pairing, the body kept as the
//! run's output. A monitor sleeps until the earliest deadline (no scan of all heartbeats) and
//! marks a heartbeat `late` when its expected ping is overdue and `down` when the grace ran out
//! too, each as a finished run on the bus like any other check result.

use std::collections::{BTreeSet, HashMap};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use axum::body::Body;
use axum::extract::rejection::QueryRejection;
use axum::extract::{ConnectInfo, Path, Query, Request, State};
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use warden_core::Status;
use warden_core::config::{CheckConfig, CheckKind, Schedule};
use warden_core::cron::CronSchedule;
use warden_core::duration::HumanDuration;
use warden_store::Store;
use warden_store::heartbeats::{self, HeartbeatRow, Ping, PingKind};

use crate::AppState;
use crate::bus::{Bus, EventKind, SamplePoint};

/// Most body bytes kept per ping; advertised in every response's `Ping-Body-Limit` header.
pub const PING_BODY_LIMIT: usize = 100_000;

/// When a heartbeat expects its next ping.
#[derive(Debug, Clone)]
pub enum Rhythm {
    Every(i64),
    Cron(Box<CronSchedule>),
}

impl Rhythm {
    /// The expected time of the next ping after one at `at`.
    fn expected_after(&self, at: i64) -> Option<i64> {
        match self {
            Rhythm::Every(period) => Some(at.saturating_add(*period)),
            Rhythm::Cron(cron) => cron.next_after_ms(at),
        }
    }

    fn describe(&self) -> String {
        match self {
            Rhythm::Every(period) => format!(
                "every {}",
                HumanDuration(Duration::from_millis(u64::try_from(*period).unwrap_or(0)))
            ),
            Rhythm::Cron(_) => "on its cron schedule".to_string(),
        }
    }
}

/// One heartbeat's state as the monitor sees it.
#[derive(Debug, Clone)]
pub struct Entry {
    pub check_id: i64,
    pub name: Arc<str>,
    pub rhythm: Rhythm,
    pub grace_ms: i64,
    pub state: String,
    pub last_ping_at: Option<i64>,
    pub last_success_at: Option<i64>,
    pub started_at: Option<i64>,
}

/// The next thing that happens to a heartbeat if no ping comes: when, the state it moves to,
/// its status and the summary.
#[derive(Debug, Clone, PartialEq)]
pub struct Transition {
    pub at: i64,
    pub state: &'static str,
    pub status: Status,
    pub summary: String,
}

fn ago(ms: i64) -> HumanDuration {
    // Whole seconds read better than milliseconds here.
    HumanDuration(Duration::from_secs(
        u64::try_from(ms.max(0) / 1000).unwrap_or(0),
    ))
}

/// The state machine: `new` and `down` wait for a ping; `up` becomes `late` when the expected
/// ping is overdue, `late` becomes `down` after the grace; `started` becomes `down` when no end
/// ping came within the grace.
pub fn next_transition(entry: &Entry) -> Option<Transition> {
    let grace = HumanDuration(Duration::from_millis(
        u64::try_from(entry.grace_ms).unwrap_or(0),
    ));
    match entry.state.as_str() {
        "up" | "late" => {
            let last = entry.last_success_at?;
            let expected = entry.rhythm.expected_after(last)?;
            if entry.state == "up" {
                Some(Transition {
                    at: expected,
                    state: "late",
                    status: Status::Warn,
                    summary: format!(
                        "late: no ping for {} (expected {}; down after a grace of {grace})",
                        ago(expected - last),
                        entry.rhythm.describe()
                    ),
                })
            } else {
                let at = expected.saturating_add(entry.grace_ms);
                Some(Transition {
                    at,
                    state: "down",
                    status: Status::Crit,
                    summary: format!(
                        "down: no ping for {} (expected {}, grace {grace})",
                        ago(at - last),
                        entry.rhythm.describe()
                    ),
                })
            }
        }
        "started" => {
            let started = entry.started_at?;
            Some(Transition {
                at: started.saturating_add(entry.grace_ms),
                state: "down",
                status: Status::Crit,
                summary: format!("down: started {grace} ago and never finished (grace {grace})"),
            })
        }
        _ => None,
    }
}

#[derive(Default)]
struct Table {
    entries: HashMap<i64, Entry>,
    /// (due, check id) of every heartbeat with a pending transition.
    due: BTreeSet<(i64, i64)>,
    due_of: HashMap<i64, i64>,
}

impl Table {
    /// Recomputes one entry's deadline; true when it became the earliest.
    fn reschedule(&mut self, check_id: i64) -> bool {
        if let Some(old) = self.due_of.remove(&check_id) {
            self.due.remove(&(old, check_id));
        }
        let Some(next) = self.entries.get(&check_id).and_then(next_transition) else {
            return false;
        };
        self.due.insert((next.at, check_id));
        self.due_of.insert(check_id, next.at);
        self.due.first() == Some(&(next.at, check_id))
    }
}

/// The hub's heartbeats: keys → checks, and the monitor's deadlines.
#[derive(Clone)]
pub struct Heartbeats {
    inner: Arc<Inner>,
}

struct Inner {
    by_key: RwLock<HashMap<String, i64>>,
    table: Mutex<Table>,
    wake: Notify,
}

impl Heartbeats {
    /// Builds the set from the configured checks and their stored rows (keys and state).
    pub fn new(checks: &[(i64, CheckConfig)], rows: &[HeartbeatRow]) -> Heartbeats {
        let mut by_key = HashMap::new();
        let mut table = Table::default();
        let rows: HashMap<i64, &HeartbeatRow> =
            rows.iter().map(|row| (row.check_id, row)).collect();
        for (check_id, config) in checks {
            let CheckKind::Heartbeat(heartbeat) = &config.kind else {
                continue;
            };
            let Some(row) = rows.get(check_id) else {
                continue;
            };
            let rhythm = match &config.schedule {
                Schedule::Every(period) => {
                    Rhythm::Every(i64::try_from(period.as_millis()).unwrap_or(i64::MAX))
                }
                Schedule::Cron { expr, timezone } => {
                    match CronSchedule::parse(expr, timezone.as_deref()) {
                        Ok(cron) => Rhythm::Cron(Box::new(cron)),
                        Err(error) => {
                            tracing::error!(check = %config.name, %error, "bad heartbeat cron");
                            continue;
                        }
                    }
                }
            };
            by_key.insert(row.ping_key.clone(), *check_id);
            table.entries.insert(
                *check_id,
                Entry {
                    check_id: *check_id,
                    name: Arc::from(config.name.as_str()),
                    rhythm,
                    grace_ms: i64::try_from(heartbeat.grace.as_millis()).unwrap_or(i64::MAX),
                    state: row.state.clone(),
                    last_ping_at: row.last_ping_at,
                    last_success_at: row.last_success_at,
                    started_at: row.started_at,
                },
            );
            table.reschedule(*check_id);
        }
        Heartbeats {
            inner: Arc::new(Inner {
                by_key: RwLock::new(by_key),
                table: Mutex::new(table),
                wake: Notify::new(),
            }),
        }
    }

    fn check_of(&self, key: &str) -> Option<(i64, Arc<str>)> {
        let check_id = *self.inner.by_key.read().ok()?.get(key)?;
        let table = self.inner.table.lock().ok()?;
        let name = Arc::clone(&table.entries.get(&check_id)?.name);
        Some((check_id, name))
    }

    fn update(&self, check_id: i64, update: impl FnOnce(&mut Entry)) {
        let earliest = match self.inner.table.lock() {
            Ok(mut table) => {
                if let Some(entry) = table.entries.get_mut(&check_id) {
                    update(entry);
                }
                table.reschedule(check_id)
            }
            Err(_) => false,
        };
        if earliest {
            self.inner.wake.notify_one();
        }
    }

    /// Sleeps until the earliest deadline and applies it; runs until `stop`.
    pub async fn monitor(self, store: Store, bus: Bus, stop: CancellationToken) {
        loop {
            let first = self
                .inner
                .table
                .lock()
                .ok()
                .and_then(|table| table.due.first().copied());
            let now = warden_store::now_ms();
            match first {
                Some((due, check_id)) if due <= now => {
                    self.fire(&store, &bus, check_id, now).await;
                }
                Some((due, _)) => {
                    let wait = Duration::from_millis(u64::try_from(due - now).unwrap_or(0));
                    tokio::select! {
                        () = stop.cancelled() => return,
                        () = self.inner.wake.notified() => {}
                        // Wall-clock based: re-checked at least every minute so a clock step
                        // or a suspend does not leave a deadline sleeping far too long.
                        () = tokio::time::sleep(wait.min(Duration::from_secs(60))) => {}
                    }
                }
                None => {
                    tokio::select! {
                        () = stop.cancelled() => return,
                        () = self.inner.wake.notified() => {}
                    }
                }
            }
        }
    }

    async fn fire(&self, store: &Store, bus: &Bus, check_id: i64, now: i64) {
        let planned = self.inner.table.lock().ok().and_then(|table| {
            let entry = table.entries.get(&check_id)?;
            Some((
                next_transition(entry)?,
                entry.last_ping_at,
                Arc::clone(&entry.name),
            ))
        });
        let Some((transition, last_ping, name)) = planned else {
            self.update(check_id, |_| {});
            return;
        };
        let (state, status, summary) = (
            transition.state,
            transition.status,
            transition.summary.clone(),
        );
        let write_name = Arc::clone(&name);
        let written = store
            .write(move |conn| {
                let run = heartbeats::overdue(
                    conn,
                    &heartbeats::Overdue {
                        check_id,
                        check_name: &write_name,
                        expect_last_ping: last_ping,
                        state,
                        status: status.as_str(),
                        summary: &summary,
                        now,
                    },
                )?;
                let row = heartbeats::get(conn, check_id)?;
                Ok((run, row))
            })
            .await;
        match written {
            Ok((run, row)) => {
                self.update(check_id, |entry| match &row {
                    Some(row) => {
                        entry.state = row.state.clone();
                        entry.last_ping_at = row.last_ping_at;
                        entry.last_success_at = row.last_success_at;
                        entry.started_at = row.started_at;
                    }
                    None => entry.state = "new".to_string(),
                });
                if let Some(run_id) = run {
                    tracing::info!(check = %name, state, "heartbeat overdue");
                    bus.publish(EventKind::RunFinished {
                        run_id,
                        check_id: Some(check_id),
                        check: Some(name.to_string()),
                        status,
                        summary: transition.summary,
                        exit_code: None,
                        duration_ms: 0,
                        finished_at: now,
                        samples: Vec::new(),
                        reason: None,
                        stored: false,
                    })
                    .await;
                }
            }
            Err(error) => {
                tracing::error!(check = %name, %error, "cannot record an overdue heartbeat; retrying");
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        }
    }
}

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct PingQuery {
    /// A run id (a UUID) pairing a `start` ping with its end ping.
    #[serde(default)]
    rid: Option<String>,
}

fn ping_response(status: StatusCode, text: &'static str) -> Response {
    let mut response = (status, text).into_response();
    response
        .headers_mut()
        .insert("Ping-Body-Limit", HeaderValue::from(PING_BODY_LIMIT));
    response
}

/// `/ping/<key>`: a success ping.
#[utoipa::path(
    method(get, post),
    path = "/ping/{key}",
    tag = "heartbeats",
    operation_id = "ping",
    summary = "Ping: the job succeeded",
    description = "healthchecks.io-compatible; no token: the key is the secret. Any body is kept \
                   as the run's output (up to the `Ping-Body-Limit` bytes). Answers are plain \
                   text.",
    params(("key" = String, Path, description = "The heartbeat's ping key (a UUID)"), PingQuery),
    request_body(content = Option<String>, content_type = "text/plain", description = "Optional: the job's output (POST)"),
    responses(
        (status = 200, description = "Recorded", content_type = "text/plain", body = String, example = "OK"),
        (status = 400, description = "A bad query (`rid` not a UUID)", content_type = "text/plain", body = String),
        (status = 404, description = "No heartbeat has this key", content_type = "text/plain", body = String, example = "not found"),
        (status = 503, description = "The ping could not be stored", content_type = "text/plain", body = String),
    )
)]
pub(crate) async fn ping(
    State(state): State<AppState>,
    Path(key): Path<String>,
    query: Result<Query<PingQuery>, QueryRejection>,
    request: Request,
) -> Response {
    receive(state, key, None, query, request).await
}

/// `/ping/<key>/<action>`: `start`, `fail`, `log` or an exit code 0-255.
#[utoipa::path(
    method(get, post),
    path = "/ping/{key}/{action}",
    tag = "heartbeats",
    operation_id = "ping_action",
    summary = "Ping: the job started, failed, logged or exited with a code",
    description = "healthchecks.io-compatible; no token: the key is the secret. Any body is kept \
                   as the run's output (up to the `Ping-Body-Limit` bytes). Answers are plain \
                   text.",
    params(
        ("key" = String, Path, description = "The heartbeat's ping key (a UUID)"),
        ("action" = String, Path, description = "`start`, `fail`, `log`, or an exit code 0-255 (0 is success)"),
        PingQuery,
    ),
    request_body(content = Option<String>, content_type = "text/plain", description = "Optional: the job's output (POST)"),
    responses(
        (status = 200, description = "Recorded", content_type = "text/plain", body = String, example = "OK"),
        (status = 400, description = "A bad query (`rid` not a UUID)", content_type = "text/plain", body = String),
        (status = 404, description = "No heartbeat has this key, or no such action", content_type = "text/plain", body = String, example = "not found"),
        (status = 503, description = "The ping could not be stored", content_type = "text/plain", body = String),
    )
)]
pub(crate) async fn ping_action(
    State(state): State<AppState>,
    Path((key, action)): Path<(String, String)>,
    query: Result<Query<PingQuery>, QueryRejection>,
    request: Request,
) -> Response {
    receive(state, key, Some(action), query, request).await
}

async fn receive(
    state: AppState,
    key: String,
    action: Option<String>,
    query: Result<Query<PingQuery>, QueryRejection>,
    request: Request,
) -> Response {
    // Unknown keys cost one map lookup and touch nothing else.
    let Some((check_id, name)) = state.heartbeats.check_of(&key) else {
        return ping_response(StatusCode::NOT_FOUND, "not found");
    };
    let kind = match action.as_deref() {
        None => PingKind::Success,
        Some("start") => PingKind::Start,
        Some("fail") => PingKind::Fail,
        Some("log") => PingKind::Log,
        Some(code) if (1..=3).contains(&code.len()) && code.bytes().all(|b| b.is_ascii_digit()) => {
            match code.parse::<u8>() {
                Ok(code) => PingKind::Exit(code),
                Err(_) => return ping_response(StatusCode::NOT_FOUND, "not found"),
            }
        }
        Some(_) => return ping_response(StatusCode::NOT_FOUND, "not found"),
    };
    let Ok(Query(query)) = query else {
        return ping_response(StatusCode::BAD_REQUEST, "invalid query");
    };
    state.metrics.ping_received(kind.as_str());
    let remote = request
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|ConnectInfo(addr)| addr.ip().to_string());
    let method = request.method().as_str().to_string();
    let user_agent = request
        .headers()
        .get("user-agent")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let body = request.into_body();
    let rid = match query.rid {
        Some(rid) if rid.is_empty() => None,
        Some(rid) => match uuid::Uuid::try_parse(&rid) {
            Ok(uuid) => Some(uuid.hyphenated().to_string()),
            Err(_) => return ping_response(StatusCode::BAD_REQUEST, "invalid uuid"),
        },
        None => None,
    };
    let (kept, total) = read_capped(body, PING_BODY_LIMIT).await;
    let mut text = String::from_utf8_lossy(&kept).into_owned();
    if total > kept.len() {
        text.push_str(&format!(
            "\n[... {} more bytes cut: the ping body limit is {PING_BODY_LIMIT} bytes]",
            total - kept.len()
        ));
    }
    let meta = serde_json::json!({
        "ping": kind.as_str(),
        "exit_code": match kind { PingKind::Exit(code) => Some(code), _ => None },
        "rid": rid,
        "method": method,
        "remote": remote,
        "user_agent": user_agent,
        "body_bytes": total,
        "body_utf8": std::str::from_utf8(&kept).is_ok(),
    })
    .to_string();
    let at = warden_store::now_ms();
    let ping = Ping {
        check_id,
        check_name: name.to_string(),
        kind,
        rid,
        body: text,
        meta,
        at,
    };
    let recorded = state
        .store
        .write(move |conn| heartbeats::record_ping(conn, &ping))
        .await;
    let recorded = match recorded {
        Ok(recorded) => recorded,
        Err(error) => {
            tracing::error!(check = %name, %error, "cannot store a ping");
            return ping_response(StatusCode::SERVICE_UNAVAILABLE, "cannot store the ping");
        }
    };
    state.heartbeats.update(check_id, |entry| {
        entry.state = recorded.state.clone();
        entry.last_ping_at = Some(at);
        entry.last_success_at = recorded.last_success_at;
        entry.started_at = recorded.started_open;
    });
    match kind {
        PingKind::Start => {
            state
                .bus
                .publish(EventKind::RunStarted {
                    run_id: recorded.run_id,
                    check_id: Some(check_id),
                    check: Some(name.to_string()),
                    attempt: 1,
                    worker: "ping".to_string(),
                })
                .await;
        }
        PingKind::Log => {}
        _ => {
            let status = if recorded.status == Some("ok") {
                Status::Ok
            } else {
                Status::Crit
            };
            let duration_ms = at - recorded.started_at;
            // The sample `record_ping` stored, shown live as it is.
            let samples = recorded
                .duration
                .map(|(series, value)| SamplePoint {
                    series,
                    labels: "{}".to_string(),
                    ts: at,
                    value,
                })
                .into_iter()
                .collect();
            state
                .bus
                .publish(EventKind::RunFinished {
                    run_id: recorded.run_id,
                    check_id: Some(check_id),
                    check: Some(name.to_string()),
                    status,
                    summary: recorded.summary,
                    exit_code: match kind {
                        PingKind::Exit(code) => Some(i64::from(code)),
                        _ => None,
                    },
                    duration_ms,
                    finished_at: at,
                    samples,
                    reason: None,
                    // `record_ping` wrote the status and the sample with the run.
                    stored: true,
                })
                .await;
        }
    }
    ping_response(StatusCode::OK, "OK")
}

/// Reads a body keeping at most `cap` bytes; the rest is read and counted, never held.
async fn read_capped(body: Body, cap: usize) -> (Vec<u8>, usize) {
    use http_body_util::BodyExt;
    let mut body = body;
    let mut kept = Vec::new();
    let mut total = 0usize;
    while let Some(frame) = body.frame().await {
        let Ok(frame) = frame else { break };
        if let Ok(data) = frame.into_data() {
            total = total.saturating_add(data.len());
            if kept.len() < cap {
                let room = cap - kept.len();
                kept.extend_from_slice(&data[..data.len().min(room)]);
            }
        }
    }
    (kept, total)
}

/// A new ping key: a random UUID, as healthchecks.io's; `None` when the OS has no randomness
/// (never a guessable key).
pub fn new_ping_key() -> Option<String> {
    let mut bytes = [0u8; 16];
    getrandom::fill(&mut bytes).ok()?;
    Some(
        uuid::Builder::from_random_bytes(bytes)
            .into_uuid()
            .hyphenated()
            .to_string(),
    )
}

#[cfg(test)]
pub(crate) fn entry_for_tests(rhythm: Rhythm, grace_ms: i64) -> Entry {
    Entry {
        check_id: 1,
        name: Arc::from("job"),
        rhythm,
        grace_ms,
        state: "new".to_string(),
        last_ping_at: None,
        last_success_at: None,
        started_at: None,
    }
}
