//! The HTTP API under `/api/v1`: health, and the worker-facing queue endpoints (enqueue, lease,
//! heartbeat, complete, fail, cancel, get) that local and remote workers speak.

use axum::extract::rejection::JsonRejection;
use axum::extract::{DefaultBodyLimit, FromRequest, Path, Query, Request, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};
use warden_core::config::{CheckConfig, Schedule};
use warden_core::duration::HumanDuration;
use warden_store::checks::CheckRow;
use warden_store::heartbeats::HeartbeatRow;
use warden_store::queue::{self, Completion, FailOutcome, NewRun, RunFilter, RunRow};

use crate::bus::EventKind;

use crate::AppState;
use crate::auth::{Caller, Role};
use crate::error::{ApiError, ErrorCode};

/// Largest request body the queue endpoints accept.
const QUEUE_BODY_LIMIT: usize = 256 * 1024;

pub(crate) fn router(state: AppState) -> Router {
    let queue_routes = Router::new()
        .route("/runs", post(enqueue))
        .route("/runs/{id}", get(get_run))
        .route("/lease", post(lease))
        .route("/runs/{id}/heartbeat", post(heartbeat))
        .route("/runs/{id}/complete", post(complete))
        .route("/runs/{id}/fail", post(fail))
        .route("/runs/{id}/cancel", post(cancel))
        .layer(DefaultBodyLimit::max(QUEUE_BODY_LIMIT));
    Router::new()
        .route("/api/v1/health", get(health))
        .route("/api/v1/checks", get(list_checks))
        .route("/api/v1/checks/{name}", get(get_check))
        .route(
            "/api/v1/checks/{name}/run",
            post(run_check).layer(DefaultBodyLimit::max(1024)),
        )
        .route("/api/v1/runs", get(list_runs))
        .route("/api/v1/runs/{id}/cancel", post(cancel))
        .route("/api/v1/checks/{name}/uptime", get(crate::query::uptime))
        .route("/api/v1/series", get(crate::query::list_series))
        .route("/api/v1/series/{*name}", get(crate::query::query_series))
        .route(
            "/api/v1/tokens",
            get(crate::query::list_tokens)
                .post(crate::query::create_token)
                .layer(DefaultBodyLimit::max(4096)),
        )
        .route(
            "/api/v1/tokens/{id}",
            axum::routing::delete(crate::query::revoke_token),
        )
        .route("/api/v1/runs/{id}", get(get_run_waiting))
        .route("/api/v1/runs/{id}/output", get(run_output))
        .route("/api/v1/events", get(crate::live::events))
        .nest("/api/v1/queue", queue_routes)
        .route(
            "/ping/{key}",
            get(crate::heartbeat::ping)
                .post(crate::heartbeat::ping)
                .layer(DefaultBodyLimit::disable()),
        )
        .route(
            "/ping/{key}/{action}",
            get(crate::heartbeat::ping_action)
                .post(crate::heartbeat::ping_action)
                .layer(DefaultBodyLimit::disable()),
        )
        .route("/metrics", get(crate::metrics::metrics))
        .merge(crate::alerting::api::routes())
        .fallback(not_found)
        .layer(axum::middleware::from_fn_with_state(
            state.metrics.clone(),
            crate::metrics::track_api,
        ))
        .with_state(state)
}

async fn not_found() -> ApiError {
    ApiError::not_found("no such endpoint")
}

async fn health(State(state): State<AppState>) -> Json<Value> {
    Json(json!({
        "status": "ok",
        "version": env!("CARGO_PKG_VERSION"),
        "schema": warden_store::SCHEMA_VERSION,
        "uptime_seconds": state.started.elapsed().as_secs(),
    }))
}

/// `Json<T>` whose rejections are API errors naming the problem (and the field, when serde can).
pub(crate) struct JsonBody<T>(pub(crate) T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for JsonBody<T> {
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &S) -> Result<Self, ApiError> {
        match Json::<T>::from_request(request, state).await {
            Ok(Json(value)) => Ok(JsonBody(value)),
            Err(rejection) => Err(json_rejection(rejection)),
        }
    }
}

/// `Query<T>` whose rejections are API errors naming the bad parameter.
pub(crate) struct QueryParams<T>(pub(crate) T);

impl<T: DeserializeOwned, S: Send + Sync> axum::extract::FromRequestParts<S> for QueryParams<T> {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        state: &S,
    ) -> Result<Self, ApiError> {
        match Query::<T>::from_request_parts(parts, state).await {
            Ok(Query(value)) => Ok(QueryParams(value)),
            Err(rejection) => Err(ApiError::bad_request(format!(
                "bad query: {}",
                rejection.body_text()
            ))),
        }
    }
}

fn json_rejection(rejection: JsonRejection) -> ApiError {
    match rejection {
        JsonRejection::JsonDataError(error) => {
            ApiError::bad_request(format!("invalid request body: {}", error.body_text()))
        }
        JsonRejection::JsonSyntaxError(error) => {
            ApiError::bad_request(format!("malformed JSON: {}", error.body_text()))
        }
        JsonRejection::MissingJsonContentType(_) => {
            ApiError::bad_request("expected `Content-Type: application/json`")
        }
        JsonRejection::BytesRejection(error) => {
            if error.status() == StatusCode::PAYLOAD_TOO_LARGE {
                ApiError::new(ErrorCode::PayloadTooLarge, "request body too large")
            } else {
                ApiError::bad_request(format!("cannot read request body: {}", error.body_text()))
            }
        }
        other => ApiError::bad_request(other.body_text()),
    }
}

fn parse_run_id(text: &str) -> Result<i64, ApiError> {
    text.parse::<i64>()
        .ok()
        .filter(|id| *id > 0)
        .ok_or_else(|| {
            ApiError::bad_request(format!("`{text}` is not a run id (a positive integer)"))
        })
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct EnqueueBody {
    kind: String,
    #[serde(default)]
    payload: Option<Value>,
    #[serde(default)]
    priority: i64,
    /// Absolute due time (ms since epoch); default now.
    #[serde(default)]
    run_at: Option<i64>,
    #[serde(default = "default_attempts")]
    max_attempts: u32,
    #[serde(default)]
    dedup_key: Option<String>,
}

fn default_attempts() -> u32 {
    3
}

async fn enqueue(
    State(state): State<AppState>,
    caller: Caller,
    JsonBody(body): JsonBody<EnqueueBody>,
) -> Result<impl IntoResponse, ApiError> {
    caller.require(Role::Operator)?;
    if body.kind.is_empty() || body.kind.len() > 64 {
        return Err(ApiError::bad_request("kind: must be 1-64 characters"));
    }
    if !(1..=100).contains(&body.max_attempts) {
        return Err(ApiError::bad_request(
            "max_attempts: must be between 1 and 100",
        ));
    }
    if body
        .dedup_key
        .as_ref()
        .is_some_and(|key| key.is_empty() || key.len() > 512)
    {
        return Err(ApiError::bad_request("dedup_key: must be 1-512 characters"));
    }
    let now = warden_store::now_ms();
    let run = NewRun {
        check_id: None,
        kind: body.kind,
        payload: body.payload.unwrap_or_else(|| json!({})).to_string(),
        priority: body.priority,
        run_at: body.run_at.unwrap_or(now),
        max_attempts: body.max_attempts,
        dedup_key: body.dedup_key,
        concurrency_key: None,
    };
    let enqueued = state
        .store
        .write(move |conn| queue::enqueue(conn, &run, now))
        .await?;
    let status = if enqueued.deduplicated {
        StatusCode::OK
    } else {
        StatusCode::CREATED
    };
    Ok((
        status,
        Json(json!({ "run_id": enqueued.run_id, "deduplicated": enqueued.deduplicated })),
    ))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct LeaseBody {
    worker: String,
    /// Only runs of these kinds (all when absent).
    #[serde(default)]
    kinds: Vec<String>,
    #[serde(default = "default_limit")]
    limit: usize,
    #[serde(default = "default_lease_ms")]
    lease_ms: i64,
}

fn default_limit() -> usize {
    1
}

fn default_lease_ms() -> i64 {
    30_000
}

async fn lease(
    State(state): State<AppState>,
    caller: Caller,
    JsonBody(body): JsonBody<LeaseBody>,
) -> Result<Json<Value>, ApiError> {
    caller.require_worker()?;
    if body.worker.is_empty() || body.worker.len() > 128 {
        return Err(ApiError::bad_request("worker: must be 1-128 characters"));
    }
    if !(1..=1_000).contains(&body.limit) {
        return Err(ApiError::bad_request("limit: must be between 1 and 1000"));
    }
    if !(100..=3_600_000).contains(&body.lease_ms) {
        return Err(ApiError::bad_request(
            "lease_ms: must be between 100 and 3600000",
        ));
    }
    let now = warden_store::now_ms();
    let leases = state
        .store
        .write(move |conn| {
            let kinds: Vec<&str> = body.kinds.iter().map(String::as_str).collect();
            queue::lease_kinds(conn, &body.worker, &kinds, body.limit, body.lease_ms, now)
        })
        .await?;
    let leases: Vec<Value> = leases
        .into_iter()
        .map(|lease| {
            json!({
                "run_id": lease.run_id,
                "fence": lease.fence,
                "attempt": lease.attempt,
                "max_attempts": lease.max_attempts,
                "kind": lease.kind,
                "payload": serde_json::from_str::<Value>(&lease.payload).unwrap_or(Value::Null),
                "lease_until": lease.lease_until,
            })
        })
        .collect();
    Ok(Json(json!({ "leases": leases })))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct HeartbeatBody {
    fence: i64,
    #[serde(default = "default_lease_ms")]
    lease_ms: i64,
}

async fn heartbeat(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    JsonBody(body): JsonBody<HeartbeatBody>,
) -> Result<Json<Value>, ApiError> {
    caller.require_worker()?;
    let run_id = parse_run_id(&id)?;
    if !(100..=3_600_000).contains(&body.lease_ms) {
        return Err(ApiError::bad_request(
            "lease_ms: must be between 100 and 3600000",
        ));
    }
    let until = warden_store::now_ms().saturating_add(body.lease_ms);
    state
        .store
        .write(move |conn| queue::heartbeat(conn, run_id, body.fence, until))
        .await?;
    Ok(Json(json!({ "run_id": run_id, "lease_until": until })))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CompleteBody {
    fence: i64,
    #[serde(default)]
    status: Option<String>,
    #[serde(default)]
    exit_code: Option<i64>,
    #[serde(default)]
    summary: Option<String>,
    #[serde(default)]
    result: Option<Value>,
}

async fn complete(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    JsonBody(body): JsonBody<CompleteBody>,
) -> Result<Json<Value>, ApiError> {
    caller.require_worker()?;
    let run_id = parse_run_id(&id)?;
    if let Some(status) = &body.status
        && warden_core::Status::parse(status).is_none()
    {
        return Err(ApiError::bad_request(
            "status: must be one of ok, warn, crit, unknown",
        ));
    }
    let completion = Completion {
        status: body.status,
        exit_code: body.exit_code,
        summary: body.summary,
        result: body.result.map(|value| value.to_string()),
    };
    let now = warden_store::now_ms();
    state
        .store
        .write(move |conn| queue::complete(conn, run_id, body.fence, &completion, now))
        .await?;
    Ok(Json(json!({ "run_id": run_id, "state": "completed" })))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FailBody {
    fence: i64,
    error: String,
    #[serde(default = "default_retry")]
    retry: bool,
}

fn default_retry() -> bool {
    true
}

async fn fail(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    JsonBody(body): JsonBody<FailBody>,
) -> Result<Json<Value>, ApiError> {
    caller.require_worker()?;
    let run_id = parse_run_id(&id)?;
    let now = warden_store::now_ms();
    let mut random = [0u8; 8];
    let _ = getrandom::fill(&mut random);
    let outcome = state
        .store
        .write(move |conn| {
            let attempt = queue::get(conn, run_id)?
                .map(|run| run.attempts)
                .unwrap_or(1);
            let delay = body
                .retry
                .then(|| queue::backoff_delay(attempt, 1_000, 300_000, u64::from_le_bytes(random)));
            queue::fail(conn, run_id, body.fence, &body.error, now, delay)
        })
        .await?;
    Ok(Json(match outcome {
        FailOutcome::Retrying { run_at } => {
            json!({ "run_id": run_id, "state": "queued", "run_at": run_at })
        }
        FailOutcome::Dead => json!({ "run_id": run_id, "state": "dead" }),
    }))
}

async fn cancel(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    caller.require(Role::Operator)?;
    let run_id = parse_run_id(&id)?;
    let now = warden_store::now_ms();
    let previous = state
        .store
        .write(move |conn| queue::cancel(conn, run_id, now))
        .await?;
    // A run this hub's pool is running stops now, not at its next lease heartbeat.
    state.runs_in_flight.cancel(run_id);
    Ok(Json(
        json!({ "run_id": run_id, "state": "cancelled", "was": previous.as_str() }),
    ))
}

async fn get_run(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    caller.require(Role::Viewer)?;
    let run_id = parse_run_id(&id)?;
    let run = state
        .store
        .read(move |conn| queue::get(conn, run_id))
        .await?
        .ok_or_else(|| ApiError::not_found(format!("run {run_id} not found")))?;
    Ok(Json(run_json(&run)))
}

pub(crate) fn run_json(run: &RunRow) -> Value {
    let check = serde_json::from_str::<Value>(&run.payload)
        .ok()
        .and_then(|payload| {
            payload
                .get("name")
                .and_then(Value::as_str)
                .map(str::to_string)
        })
        .filter(|_| run.kind == "check" || run.kind == "ping");
    json!({
        "id": run.id,
        "check": check,
        "check_id": run.check_id,
        "kind": run.kind,
        "payload": serde_json::from_str::<Value>(&run.payload).unwrap_or(Value::Null),
        "state": run.state.as_str(),
        "priority": run.priority,
        "run_at": run.run_at,
        "attempts": run.attempts,
        "max_attempts": run.max_attempts,
        "dedup_key": run.dedup_key,
        "lease_owner": run.lease_owner,
        "lease_until": run.lease_until,
        "fence": run.fence,
        "enqueued_at": run.enqueued_at,
        "started_at": run.started_at,
        "finished_at": run.finished_at,
        "status": run.status,
        "exit_code": run.exit_code,
        "summary": run.summary,
        "result": run.result.as_deref().and_then(|text| serde_json::from_str::<Value>(text).ok()),
        "last_error": run.last_error,
    })
}

/// What the API shows of a check's definition, computed once at start.
#[derive(Debug, Clone)]
pub(crate) struct CheckMeta {
    pub(crate) schedule: String,
    pub(crate) labels: std::collections::BTreeMap<String, String>,
}

impl CheckMeta {
    pub(crate) fn of(config: &CheckConfig) -> CheckMeta {
        let schedule = match (&config.kind, &config.schedule) {
            (warden_core::config::CheckKind::Heartbeat(_), Schedule::Every(every)) => {
                format!("ping every {}", HumanDuration(*every))
            }
            (_, Schedule::Every(every)) => format!("every {}", HumanDuration(*every)),
            (
                _,
                Schedule::Cron {
                    expr,
                    timezone: Some(zone),
                },
            ) => format!("cron {expr} ({zone})"),
            (
                _,
                Schedule::Cron {
                    expr,
                    timezone: None,
                },
            ) => format!("cron {expr}"),
        };
        CheckMeta {
            schedule,
            labels: config.labels.clone(),
        }
    }
}

/// A check as the API shows it; borrowed from the row and the catalog, serialized directly.
#[derive(serde::Serialize)]
pub(crate) struct CheckView<'a> {
    name: &'a str,
    kind: &'a str,
    schedule: &'a str,
    labels: Option<&'a std::collections::BTreeMap<String, String>>,
    status: Option<&'a str>,
    status_since: Option<i64>,
    last_run_id: Option<i64>,
    last_run_at: Option<i64>,
    summary: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    heartbeat: Option<HeartbeatView<'a>>,
}

#[derive(serde::Serialize)]
pub(crate) struct HeartbeatView<'a> {
    state: &'a str,
    ping_url: String,
    last_ping_at: Option<i64>,
    last_success_at: Option<i64>,
    started_at: Option<i64>,
    pings: i64,
}

fn check_view<'a>(
    state: &'a AppState,
    row: &'a CheckRow,
    heartbeat: Option<&'a HeartbeatRow>,
) -> CheckView<'a> {
    let meta = state.catalog.get(&row.name);
    CheckView {
        name: &row.name,
        kind: &row.kind,
        schedule: meta.map(|m| m.schedule.as_str()).unwrap_or("unknown"),
        labels: meta.map(|m| &m.labels),
        status: row.status.as_deref(),
        status_since: row.status_since,
        last_run_id: row.last_run_id,
        last_run_at: row.last_run_at,
        summary: row.summary.as_deref(),
        heartbeat: heartbeat.map(|heartbeat| HeartbeatView {
            state: &heartbeat.state,
            ping_url: format!("{}/ping/{}", state.public_url, heartbeat.ping_key),
            last_ping_at: heartbeat.last_ping_at,
            last_success_at: heartbeat.last_success_at,
            started_at: heartbeat.started_at,
            pings: heartbeat.pings,
        }),
    }
}

/// Heartbeat rows by check id; they carry the ping key, so only operators and admins see them.
async fn heartbeat_rows(
    state: &AppState,
    caller: &Caller,
) -> Result<std::collections::HashMap<i64, HeartbeatRow>, ApiError> {
    if caller.require(Role::Operator).is_err() {
        return Ok(std::collections::HashMap::new());
    }
    let rows = state.store.read(warden_store::heartbeats::list).await?;
    Ok(rows.into_iter().map(|row| (row.check_id, row)).collect())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CheckQuery {
    #[serde(default)]
    status: Option<String>,
    /// Name substring.
    #[serde(default)]
    filter: Option<String>,
    #[serde(default)]
    kind: Option<String>,
    /// `key=value`: checks with this label.
    #[serde(default)]
    label: Option<String>,
    #[serde(default)]
    limit: Option<usize>,
    /// A check name: the page starts after it.
    #[serde(default)]
    after: Option<String>,
}

/// `GET /api/v1/checks`: by name, filtered, paginated (`next_after` names the next page).
async fn list_checks(
    State(state): State<AppState>,
    caller: Caller,
    QueryParams(query): QueryParams<CheckQuery>,
) -> Result<axum::response::Response, ApiError> {
    caller.require(Role::Viewer)?;
    if let Some(status) = &query.status
        && status != "pending"
        && warden_core::Status::parse(status).is_none()
    {
        return Err(ApiError::bad_request(
            "status: must be one of ok, warn, crit, unknown, pending",
        ));
    }
    let label = match query.label.as_deref() {
        None => None,
        Some(text) => match text.split_once('=') {
            Some((key, value)) if !key.is_empty() => Some((key.to_string(), value.to_string())),
            _ => return Err(ApiError::bad_request("label: expected `key=value`")),
        },
    };
    let limit = query.limit.unwrap_or(1_000);
    if !(1..=10_000).contains(&limit) {
        return Err(ApiError::bad_request("limit: must be between 1 and 10000"));
    }
    // Without a label filter SQL pages exactly (one extra row says whether there is more);
    // labels live in the config catalog, so with one every candidate is read and filtered here.
    let listing = warden_store::checks::CheckListing {
        after: query.after.clone(),
        status: query.status.clone(),
        kind: query.kind.clone(),
        name_contains: query.filter.clone(),
        limit: if label.is_some() {
            usize::MAX
        } else {
            limit + 1
        },
    };
    let rows = state
        .store
        .read(move |conn| warden_store::checks::list_status(conn, &listing))
        .await?;
    let heartbeats = heartbeat_rows(&state, &caller).await?;
    let mut checks: Vec<CheckView<'_>> = Vec::with_capacity(limit.min(rows.len()));
    let mut next_after = None;
    for row in rows.iter().filter(|row| {
        label.as_ref().is_none_or(|(key, value)| {
            state
                .catalog
                .get(&row.name)
                .is_some_and(|meta| meta.labels.get(key) == Some(value))
        })
    }) {
        if checks.len() == limit {
            next_after = checks.last().map(|c| c.name.to_string());
            break;
        }
        checks.push(check_view(&state, row, heartbeats.get(&row.id)));
    }
    #[derive(serde::Serialize)]
    struct Page<'a> {
        checks: Vec<CheckView<'a>>,
        next_after: Option<String>,
    }
    let bytes = serde_json::to_vec(&Page { checks, next_after }).map_err(|error| {
        tracing::error!(%error, "cannot encode the checks");
        ApiError::new(ErrorCode::Internal, "internal error; see the hub's log")
    })?;
    Ok((
        [(axum::http::header::CONTENT_TYPE, "application/json")],
        bytes,
    )
        .into_response())
}

async fn get_check(
    State(state): State<AppState>,
    caller: Caller,
    Path(name): Path<String>,
) -> Result<Json<Value>, ApiError> {
    caller.require(Role::Viewer)?;
    let lookup = name.clone();
    let row = state
        .store
        .read(move |conn| warden_store::checks::get_by_name(conn, &lookup))
        .await?
        .ok_or_else(|| ApiError::not_found(format!("check `{name}` not found")))?;
    let heartbeats = heartbeat_rows(&state, &caller).await?;
    Ok(Json(
        serde_json::to_value(check_view(&state, &row, heartbeats.get(&row.id)))
            .unwrap_or(Value::Null),
    ))
}

/// Forces a run of a check now, ahead of scheduled runs; the overlap policy does not apply.
async fn run_check(
    State(state): State<AppState>,
    caller: Caller,
    Path(name): Path<String>,
) -> Result<impl IntoResponse, ApiError> {
    caller.require(Role::Operator)?;
    let lookup = name.clone();
    let enqueued = state
        .store
        .write(move |conn| {
            let Some(row) = warden_store::checks::get_by_name(conn, &lookup)? else {
                return Ok(None);
            };
            if row.kind == "heartbeat" {
                return Ok(Some(Err(row.name)));
            }
            let now = warden_store::now_ms();
            let run = NewRun {
                check_id: Some(row.id),
                kind: "check".to_string(),
                payload: row.spec.clone(),
                priority: 10,
                run_at: now,
                max_attempts: crate::scheduler::CHECK_RUN_ATTEMPTS,
                dedup_key: None,
                concurrency_key: None,
            };
            Ok(Some(Ok((queue::enqueue(conn, &run, now)?.run_id, row.id))))
        })
        .await?;
    let (run_id, check_id) = match enqueued {
        None => return Err(ApiError::not_found(format!("check `{name}` not found"))),
        Some(Err(name)) => {
            return Err(ApiError::new(
                ErrorCode::Conflict,
                format!(
                    "`{name}` is a heartbeat check: the job it watches pings it; it cannot be run"
                ),
            ));
        }
        Some(Ok(ids)) => ids,
    };
    state.wake.notify_one();
    state
        .bus
        .publish(EventKind::RunQueued {
            run_id,
            check_id: Some(check_id),
            check: Some(name),
        })
        .await;
    Ok((StatusCode::CREATED, Json(json!({ "run_id": run_id }))))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RunsQuery {
    #[serde(default)]
    check: Option<String>,
    #[serde(default)]
    state: Option<String>,
    #[serde(default)]
    limit: Option<usize>,
    #[serde(default)]
    before: Option<i64>,
}

async fn list_runs(
    State(state): State<AppState>,
    caller: Caller,
    QueryParams(query): QueryParams<RunsQuery>,
) -> Result<Json<Value>, ApiError> {
    caller.require(Role::Viewer)?;
    let limit = query.limit.unwrap_or(50);
    if !(1..=1_000).contains(&limit) {
        return Err(ApiError::bad_request("limit: must be between 1 and 1000"));
    }
    let run_state = match query.state.as_deref() {
        None => None,
        Some(text) => Some(queue::RunState::parse(text).ok_or_else(|| {
            ApiError::bad_request(
                "state: must be one of queued, leased, completed, dead, cancelled",
            )
        })?),
    };
    let check = query.check.clone();
    let runs = state
        .store
        .read(move |conn| {
            let check_id = match &check {
                Some(name) => match warden_store::checks::get_by_name(conn, name)? {
                    Some(row) => Some(row.id),
                    None => return Ok(None),
                },
                None => None,
            };
            let filter = RunFilter {
                check_id,
                state: run_state,
                before_id: query.before,
                limit,
            };
            Ok(Some(queue::list(conn, &filter)?))
        })
        .await?;
    let Some(runs) = runs else {
        return Err(ApiError::not_found(format!(
            "check `{}` not found",
            query.check.unwrap_or_default()
        )));
    };
    let next_before = if runs.len() == limit {
        runs.last().map(|run| run.id)
    } else {
        None
    };
    Ok(Json(
        json!({ "runs": runs.iter().map(run_json).collect::<Vec<_>>(), "next_before": next_before }),
    ))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RunQuery {
    #[serde(default)]
    wait_ms: Option<u64>,
}

/// A run; with `wait_ms`, answers as soon as it is finished (and recorded) or when the wait ends.
async fn get_run_waiting(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    QueryParams(query): QueryParams<RunQuery>,
) -> Result<Json<Value>, ApiError> {
    caller.require(Role::Viewer)?;
    let run_id = parse_run_id(&id)?;
    let wait = std::time::Duration::from_millis(query.wait_ms.unwrap_or(0).min(120_000));
    // Subscribe before reading, so a finish between the read and the wait is not missed.
    let mut live = state.bus.subscribe();
    let read = |store: warden_store::Store| async move {
        store.read(move |conn| queue::get(conn, run_id)).await
    };
    let mut run = read(state.store.clone())
        .await?
        .ok_or_else(|| ApiError::not_found(format!("run {run_id} not found")))?;
    if !run.state.is_final() && !wait.is_zero() {
        let deadline = tokio::time::Instant::now() + wait;
        let finished_seq = loop {
            match tokio::time::timeout_at(deadline, live.recv()).await {
                Ok(Ok(event)) => {
                    if let EventKind::RunFinished {
                        run_id: finished, ..
                    } = &event.kind
                        && *finished == run_id
                    {
                        break Some(event.seq);
                    }
                }
                // Missed events: the store says whether it finished meanwhile.
                Ok(Err(tokio::sync::broadcast::error::RecvError::Lagged(_))) => {
                    if let Some(now) = read(state.store.clone()).await?
                        && now.state.is_final()
                    {
                        break None;
                    }
                }
                Ok(Err(tokio::sync::broadcast::error::RecvError::Closed)) | Err(_) => break None,
            }
        };
        if let Some(seq) = finished_seq {
            // Wait (briefly) until the recorder stored the run's output and status too.
            let mut recorded = state.recorded.clone();
            let _ = tokio::time::timeout(
                std::time::Duration::from_secs(2),
                recorded.wait_for(|flushed| *flushed >= seq),
            )
            .await;
        }
        run = read(state.store.clone())
            .await?
            .ok_or_else(|| ApiError::not_found(format!("run {run_id} not found")))?;
    }
    Ok(Json(run_json(&run)))
}

async fn run_output(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    caller.require(Role::Viewer)?;
    let run_id = parse_run_id(&id)?;
    let lines = state
        .store
        .read(move |conn| {
            if queue::get(conn, run_id)?.is_none() {
                return Ok(None);
            }
            let mut statement = conn.prepare_cached(
                "SELECT seq, at, stream, line FROM run_output WHERE run_id = ?1 ORDER BY seq",
            )?;
            let rows = statement.query_map([run_id], |row| {
                Ok(json!({
                    "seq": row.get::<_, i64>(0)?,
                    "at": row.get::<_, i64>(1)?,
                    "stream": row.get::<_, String>(2)?,
                    "line": row.get::<_, String>(3)?,
                }))
            })?;
            Ok(Some(rows.collect::<Result<Vec<_>, _>>()?))
        })
        .await?
        .ok_or_else(|| ApiError::not_found(format!("run {run_id} not found")))?;
    Ok(Json(json!({ "run_id": run_id, "lines": lines })))
}
