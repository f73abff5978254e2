//! The HTTP API under `/api/v1`: health, and the worker-facing queue endpoints (enqueue, lease,
//! heartbeat, complete, fail, cancel, get) that local and remote workers speak.

use axum::extract::rejection::JsonRejection;
use axum::extract::{DefaultBodyLimit, FromRequest, Path, Request, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};
use warden_store::queue::{self, Completion, FailOutcome, NewRun, RunRow};

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
        .nest("/api/v1/queue", queue_routes)
        .fallback(not_found)
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
    caller
        .require(Role::Agent)
        .or_else(|_| caller.require(Role::Operator))?;
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
        .write(move |conn| queue::lease(conn, &body.worker, body.limit, body.lease_ms, now))
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
    caller
        .require(Role::Agent)
        .or_else(|_| caller.require(Role::Operator))?;
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
    caller
        .require(Role::Agent)
        .or_else(|_| caller.require(Role::Operator))?;
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
    caller
        .require(Role::Agent)
        .or_else(|_| caller.require(Role::Operator))?;
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
    json!({
        "id": run.id,
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
