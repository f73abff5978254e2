//! The HTTP API under `/api/v1`: health, checks, runs and the worker-facing queue endpoints
//! (enqueue, lease, heartbeat, complete, fail, cancel, get) that local and remote workers speak;
//! [`routes`] lists every route of the hub, each with its OpenAPI operation.

use axum::extract::rejection::JsonRejection;
use axum::extract::{DefaultBodyLimit, FromRequest, FromRequestParts, Path, Query, Request, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::{Json, Router};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::UtoipaMethodRouterExt;
use utoipa_axum::routes;
use warden_core::config::{CheckConfig, Schedule};
use warden_core::duration::HumanDuration;
use warden_store::checks::CheckRow;
use warden_store::heartbeats::HeartbeatRow;
use warden_store::queue::{self, Completion, FailOutcome, NewRun, RunFilter, RunRow};

use crate::AppState;
use crate::auth::{Caller, Role};
use crate::bus::EventKind;
use crate::error::{ApiError, ErrorBody, ErrorCode};
use crate::openapi::{DocumentedRouter, OpenApiJson};

/// Largest request body the queue endpoints accept.
const QUEUE_BODY_LIMIT: usize = 256 * 1024;

/// Every route the hub serves, each with its OpenAPI operation: the only list there is.
pub(crate) fn routes() -> DocumentedRouter {
    let queue_routes = DocumentedRouter::new()
        .routes(routes!(enqueue))
        .routes(routes!(get_run))
        .routes(routes!(lease))
        .routes(routes!(heartbeat))
        .routes(routes!(complete))
        .routes(routes!(fail))
        .routes(routes!(queue_cancel))
        .layer(DefaultBodyLimit::max(QUEUE_BODY_LIMIT));
    DocumentedRouter::new()
        .routes(routes!(health))
        .routes(routes!(crate::openapi::openapi_json))
        .routes(routes!(list_checks))
        .routes(routes!(get_check))
        .routes(routes!(run_check).layer(DefaultBodyLimit::max(1024)))
        .routes(routes!(list_runs))
        .routes(routes!(cancel))
        .routes(routes!(crate::query::uptime))
        .routes(routes!(crate::query::list_series))
        .routes(routes!(crate::query::query_series))
        .routes(
            routes!(crate::query::list_tokens, crate::query::create_token)
                .layer(DefaultBodyLimit::max(4096)),
        )
        .routes(routes!(crate::query::revoke_token))
        .routes(routes!(get_run_waiting))
        .routes(routes!(run_output))
        .routes(routes!(events))
        .nest("/api/v1/queue", queue_routes)
        .routes(routes!(crate::heartbeat::ping).layer(DefaultBodyLimit::disable()))
        .routes(routes!(crate::heartbeat::ping_action).layer(DefaultBodyLimit::disable()))
        .routes(routes!(crate::metrics::metrics))
        .merge(crate::alerting::api::routes())
        .routes(
            routes!(crate::users::list_users, crate::users::create_user)
                .layer(DefaultBodyLimit::max(4096)),
        )
        .routes(routes!(crate::users::remove_user))
        .routes(routes!(crate::users::list_sessions))
        .routes(routes!(crate::users::revoke_session))
}

pub(crate) fn router(state: AppState) -> Router {
    let (router, document) = routes().into_parts();
    router
        .merge(crate::ui::router())
        .merge(crate::badge::router())
        .merge(crate::status_page::router())
        .fallback(not_found)
        .layer(axum::middleware::from_fn_with_state(
            state.metrics.clone(),
            crate::metrics::track_api,
        ))
        .layer(axum::Extension(OpenApiJson::new(&document)))
        .layer(crate::ui::compression())
        .with_state(state)
}

async fn not_found() -> ApiError {
    ApiError::not_found("no such endpoint")
}

#[derive(Serialize, ToSchema)]
pub(crate) struct Health {
    /// Always `ok`: the hub answers.
    status: &'static str,
    /// The hub's version.
    version: &'static str,
    /// The store's schema version.
    schema: i64,
    uptime_seconds: u64,
}

/// Whether the hub is up; no token needed.
#[utoipa::path(
    get,
    path = "/api/v1/health",
    tag = "meta",
    summary = "Health",
    responses((status = 200, description = "The hub is up", body = Health))
)]
async fn health(State(state): State<AppState>) -> Json<Health> {
    Json(Health {
        status: "ok",
        version: env!("CARGO_PKG_VERSION"),
        schema: warden_store::SCHEMA_VERSION,
        uptime_seconds: state.started.elapsed().as_secs(),
    })
}

/// `GET /api/v1/events`, served by `crate::live`; documented here so that module stays the
/// protocol's and this one the routes'.
#[utoipa::path(
    get,
    path = "/api/v1/events",
    tag = "live",
    operation_id = "events",
    summary = "Live events (WebSocket)",
    description = "Upgrades to a WebSocket that sends a snapshot of the current state tagged \
                   with a bus sequence number, then every later event (see the hub's `live` \
                   module for the messages and close codes). Every refusal happens before the \
                   upgrade, as a plain HTTP error.",
    params(
        ("token" = Option<String>, Query, description = "The token, for clients that cannot send `Authorization`"),
        ("checks" = Option<String>, Query, description = "Only these checks, comma-separated"),
        ("kinds" = Option<String>, Query, description = "Only these event kinds, comma-separated (e.g. `run_finished,output_line`)"),
        ("since" = Option<u64>, Query, description = "Resume after this sequence number"),
    ),
    responses(
        (status = 101, description = "Switching protocols: the WebSocket is open"),
        (status = 400, description = "A bad or unknown query parameter, or not a WebSocket upgrade", body = ErrorBody),
        crate::openapi::AuthErrors,
    ),
    security(("bearer" = ["viewer"]), ("query_token" = ["viewer"]))
)]
async fn events(state: State<AppState>, request: Request) -> Response {
    crate::live::events(state, request).await
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

impl<T: DeserializeOwned, S: Send + Sync> FromRequestParts<S> for QueryParams<T> {
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

/// `Path<T>` whose rejections (a segment that is not UTF-8 once percent-decoded) are API errors.
pub(crate) struct PathParam<T>(pub(crate) T);

impl<T: DeserializeOwned + Send, S: Send + Sync> FromRequestParts<S> for PathParam<T> {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        state: &S,
    ) -> Result<Self, ApiError> {
        match Path::<T>::from_request_parts(parts, state).await {
            Ok(Path(value)) => Ok(PathParam(value)),
            // A route template that does not fit its handler: a bug, not the caller's fault.
            Err(rejection) if rejection.status().is_server_error() => {
                tracing::error!(error = %rejection.body_text(), "path parameters do not fit the handler");
                Err(ApiError::new(
                    ErrorCode::Internal,
                    "internal error; see the hub's log",
                ))
            }
            Err(rejection) => Err(ApiError::bad_request(format!(
                "bad path: {}",
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

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct EnqueueBody {
    /// What kind of run (workers lease by kind), 1-64 characters.
    #[schema(min_length = 1, max_length = 64)]
    kind: String,
    /// Anything the worker needs; `{}` when absent.
    #[serde(default)]
    payload: Option<Value>,
    /// Higher runs first.
    #[serde(default)]
    priority: i64,
    /// Absolute due time (ms since epoch); default now.
    #[serde(default)]
    run_at: Option<i64>,
    /// 1-100 (default 3).
    #[serde(default = "default_attempts")]
    #[schema(minimum = 1, maximum = 100, default = 3)]
    max_attempts: u32,
    /// A second enqueue with the same key answers the first run (200, `deduplicated`).
    #[serde(default)]
    #[schema(min_length = 1, max_length = 512)]
    dedup_key: Option<String>,
}

fn default_attempts() -> u32 {
    3
}

#[derive(Serialize, ToSchema)]
pub(crate) struct Enqueued {
    run_id: i64,
    /// True when a run with the same `dedup_key` already existed (and is the one answered).
    deduplicated: bool,
}

#[utoipa::path(
    post,
    path = "/runs",
    tag = "queue",
    operation_id = "enqueue",
    summary = "Enqueue a run",
    request_body = EnqueueBody,
    responses(
        (status = 201, description = "Queued", body = Enqueued),
        (status = 200, description = "A run with this `dedup_key` exists; that one is answered", body = Enqueued),
        (status = 400, description = "Malformed JSON, a wrong or unknown field, or a value out of range", body = ErrorBody),
        crate::openapi::AuthErrors,
        (status = 413, description = "The request body is too large", body = ErrorBody),
    ),
    security(("bearer" = ["operator"]))
)]
async fn enqueue(
    State(state): State<AppState>,
    caller: Caller,
    JsonBody(body): JsonBody<EnqueueBody>,
) -> Result<(StatusCode, Json<Enqueued>), ApiError> {
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
        Json(Enqueued {
            run_id: enqueued.run_id,
            deduplicated: enqueued.deduplicated,
        }),
    ))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct LeaseBody {
    /// Who leases (1-128 characters); recorded as the lease owner.
    #[schema(min_length = 1, max_length = 128)]
    worker: String,
    /// Only runs of these kinds (all when absent).
    #[serde(default)]
    kinds: Vec<String>,
    /// At most this many runs (1-1000, default 1).
    #[serde(default = "default_limit")]
    #[schema(minimum = 1, maximum = 1000, default = 1)]
    limit: usize,
    /// How long the lease lasts without a heartbeat (100-3600000 ms, default 30000).
    #[serde(default = "default_lease_ms")]
    #[schema(minimum = 100, maximum = 3_600_000, default = 30_000)]
    lease_ms: i64,
}

fn default_limit() -> usize {
    1
}

fn default_lease_ms() -> i64 {
    30_000
}

#[derive(Serialize, ToSchema)]
pub(crate) struct Leases {
    leases: Vec<Lease>,
}

/// One leased run: do it, heartbeat it with `fence`, then complete or fail it.
#[derive(Serialize, ToSchema)]
pub(crate) struct Lease {
    run_id: i64,
    /// Proves the lease in heartbeat, complete and fail; a newer lease of the run has a higher one.
    fence: i64,
    attempt: u32,
    max_attempts: u32,
    kind: String,
    payload: Value,
    /// When the lease expires unless heartbeated (ms since epoch).
    lease_until: i64,
}

#[utoipa::path(
    post,
    path = "/lease",
    tag = "queue",
    operation_id = "lease",
    summary = "Lease due runs",
    request_body = LeaseBody,
    responses(
        (status = 200, description = "The runs leased (possibly none)", body = Leases),
        (status = 400, description = "Malformed JSON, a wrong or unknown field, or a value out of range", body = ErrorBody),
        crate::openapi::AuthErrors,
        (status = 413, description = "The request body is too large", body = ErrorBody),
    ),
    security(("bearer" = ["agent"]), ("bearer" = ["operator"]))
)]
async fn lease(
    State(state): State<AppState>,
    caller: Caller,
    JsonBody(body): JsonBody<LeaseBody>,
) -> Result<Json<Leases>, ApiError> {
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
    let leases = leases
        .into_iter()
        .map(|lease| Lease {
            run_id: lease.run_id,
            fence: lease.fence,
            attempt: lease.attempt,
            max_attempts: lease.max_attempts,
            kind: lease.kind,
            payload: serde_json::from_str::<Value>(&lease.payload).unwrap_or(Value::Null),
            lease_until: lease.lease_until,
        })
        .collect();
    Ok(Json(Leases { leases }))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct HeartbeatBody {
    /// The fence of the lease.
    fence: i64,
    /// The lease's new length from now (100-3600000 ms, default 30000).
    #[serde(default = "default_lease_ms")]
    #[schema(minimum = 100, maximum = 3_600_000, default = 30_000)]
    lease_ms: i64,
}

#[derive(Serialize, ToSchema)]
pub(crate) struct LeaseExtended {
    run_id: i64,
    lease_until: i64,
}

#[utoipa::path(
    post,
    path = "/runs/{id}/heartbeat",
    tag = "queue",
    operation_id = "heartbeat_lease",
    summary = "Extend a lease",
    params(("id" = i64, Path, description = "A run id (a positive integer)", minimum = 1)),
    request_body = HeartbeatBody,
    responses(
        (status = 200, description = "The lease is extended", body = LeaseExtended),
        (status = 400, description = "A bad run id, malformed JSON, a wrong or unknown field, or a value out of range", body = ErrorBody),
        crate::openapi::AuthErrors,
        (status = 404, description = "No such run", body = ErrorBody),
        (status = 409, description = "The lease is not this fence's any more (expired and re-leased, or the run was cancelled)", body = ErrorBody),
        (status = 413, description = "The request body is too large", body = ErrorBody),
    ),
    security(("bearer" = ["agent"]), ("bearer" = ["operator"]))
)]
async fn heartbeat(
    State(state): State<AppState>,
    caller: Caller,
    PathParam(id): PathParam<String>,
    JsonBody(body): JsonBody<HeartbeatBody>,
) -> Result<Json<LeaseExtended>, ApiError> {
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
    Ok(Json(LeaseExtended {
        run_id,
        lease_until: until,
    }))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct CompleteBody {
    /// The fence of the lease.
    fence: i64,
    /// For check runs: `ok`, `warn`, `crit` or `unknown`.
    #[serde(default)]
    status: Option<String>,
    #[serde(default)]
    exit_code: Option<i64>,
    #[serde(default)]
    summary: Option<String>,
    /// Anything the run produced, kept as JSON.
    #[serde(default)]
    result: Option<Value>,
}

#[derive(Serialize, ToSchema)]
pub(crate) struct RunStateChanged {
    run_id: i64,
    /// The run's state now: `completed`, `queued` (retrying), `dead` or `cancelled`.
    state: &'static str,
    /// When a retried run is due again (ms since epoch); only for `queued`.
    #[serde(skip_serializing_if = "Option::is_none")]
    run_at: Option<i64>,
    /// The state the run was in before a cancel; only for `cancelled`.
    #[serde(skip_serializing_if = "Option::is_none")]
    was: Option<&'static str>,
}

#[utoipa::path(
    post,
    path = "/runs/{id}/complete",
    tag = "queue",
    operation_id = "complete_run",
    summary = "Complete a leased run",
    params(("id" = i64, Path, description = "A run id (a positive integer)", minimum = 1)),
    request_body = CompleteBody,
    responses(
        (status = 200, description = "The run is completed", body = RunStateChanged),
        (status = 400, description = "A bad run id, malformed JSON, a wrong or unknown field, or a bad status", body = ErrorBody),
        crate::openapi::AuthErrors,
        (status = 404, description = "No such run", body = ErrorBody),
        (status = 409, description = "The lease is not this fence's any more, or the run is not leased", body = ErrorBody),
        (status = 413, description = "The request body is too large", body = ErrorBody),
    ),
    security(("bearer" = ["agent"]), ("bearer" = ["operator"]))
)]
async fn complete(
    State(state): State<AppState>,
    caller: Caller,
    PathParam(id): PathParam<String>,
    JsonBody(body): JsonBody<CompleteBody>,
) -> Result<Json<RunStateChanged>, ApiError> {
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
    Ok(Json(RunStateChanged {
        run_id,
        state: "completed",
        run_at: None,
        was: None,
    }))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct FailBody {
    /// The fence of the lease.
    fence: i64,
    /// Why the attempt failed.
    error: String,
    /// Retry with backoff while attempts remain (default true); false makes the run dead now.
    #[serde(default = "default_retry")]
    #[schema(default = true)]
    retry: bool,
}

fn default_retry() -> bool {
    true
}

#[utoipa::path(
    post,
    path = "/runs/{id}/fail",
    tag = "queue",
    operation_id = "fail_run",
    summary = "Fail a leased run's attempt",
    params(("id" = i64, Path, description = "A run id (a positive integer)", minimum = 1)),
    request_body = FailBody,
    responses(
        (status = 200, description = "Queued again (`run_at`) or dead", body = RunStateChanged),
        (status = 400, description = "A bad run id, malformed JSON, or a wrong or unknown field", body = ErrorBody),
        crate::openapi::AuthErrors,
        (status = 404, description = "No such run", body = ErrorBody),
        (status = 409, description = "The lease is not this fence's any more, or the run is not leased", body = ErrorBody),
        (status = 413, description = "The request body is too large", body = ErrorBody),
    ),
    security(("bearer" = ["agent"]), ("bearer" = ["operator"]))
)]
async fn fail(
    State(state): State<AppState>,
    caller: Caller,
    PathParam(id): PathParam<String>,
    JsonBody(body): JsonBody<FailBody>,
) -> Result<Json<RunStateChanged>, ApiError> {
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
    let (state, run_at) = match outcome {
        FailOutcome::Retrying { run_at } => ("queued", Some(run_at)),
        FailOutcome::Dead => ("dead", None),
    };
    Ok(Json(RunStateChanged {
        run_id,
        state,
        run_at,
        was: None,
    }))
}

#[utoipa::path(
    post,
    path = "/api/v1/runs/{id}/cancel",
    tag = "runs",
    operation_id = "cancel_run",
    summary = "Cancel a run",
    description = "Cancels a queued or leased run; a run this hub is running stops at once.",
    params(("id" = i64, Path, description = "A run id (a positive integer)", minimum = 1)),
    responses(
        (status = 200, description = "Cancelled; `was` is the state it had", body = RunStateChanged),
        (status = 400, description = "A bad run id", body = ErrorBody),
        crate::openapi::AuthErrors,
        (status = 404, description = "No such run", body = ErrorBody),
        (status = 409, description = "The run is already finished", body = ErrorBody),
    ),
    security(("bearer" = ["operator"]))
)]
async fn cancel(
    State(state): State<AppState>,
    caller: Caller,
    PathParam(id): PathParam<String>,
) -> Result<Json<RunStateChanged>, ApiError> {
    caller.require(Role::Operator)?;
    let run_id = parse_run_id(&id)?;
    let now = warden_store::now_ms();
    let (previous, check_id) = state
        .store
        .write(move |conn| {
            let previous = queue::cancel(conn, run_id, now)?;
            let check_id = queue::get(conn, run_id)?.and_then(|run| run.check_id);
            Ok((previous, check_id))
        })
        .await?;
    // A run this hub's pool is running stops now, not at its next lease heartbeat.
    state.runs_in_flight.cancel(run_id);
    // Live views drop it from the runs in flight (a cancelled run gets no `RunFinished`).
    state
        .bus
        .publish(EventKind::RunCancelled {
            run_id,
            check_id,
            was: previous.as_str().to_string(),
        })
        .await;
    Ok(Json(RunStateChanged {
        run_id,
        state: "cancelled",
        run_at: None,
        was: Some(previous.as_str()),
    }))
}

/// The queue protocol's cancel: the same as `POST /api/v1/runs/{id}/cancel`.
#[utoipa::path(
    post,
    path = "/runs/{id}/cancel",
    tag = "queue",
    operation_id = "queue_cancel_run",
    summary = "Cancel a run",
    params(("id" = i64, Path, description = "A run id (a positive integer)", minimum = 1)),
    responses(
        (status = 200, description = "Cancelled; `was` is the state it had", body = RunStateChanged),
        (status = 400, description = "A bad run id", body = ErrorBody),
        crate::openapi::AuthErrors,
        (status = 404, description = "No such run", body = ErrorBody),
        (status = 409, description = "The run is already finished", body = ErrorBody),
    ),
    security(("bearer" = ["operator"]))
)]
async fn queue_cancel(
    state: State<AppState>,
    caller: Caller,
    id: PathParam<String>,
) -> Result<Json<RunStateChanged>, ApiError> {
    cancel(state, caller, id).await
}

#[utoipa::path(
    get,
    path = "/runs/{id}",
    tag = "queue",
    operation_id = "queue_get_run",
    summary = "A run",
    params(("id" = i64, Path, description = "A run id (a positive integer)", minimum = 1)),
    responses(
        (status = 200, description = "The run", body = RunView),
        (status = 400, description = "A bad run id", body = ErrorBody),
        crate::openapi::AuthErrors,
        (status = 404, description = "No such run", body = ErrorBody),
    ),
    security(("bearer" = ["viewer"]))
)]
async fn get_run(
    State(state): State<AppState>,
    caller: Caller,
    PathParam(id): PathParam<String>,
) -> Result<Json<RunView>, ApiError> {
    caller.require(Role::Viewer)?;
    let run_id = parse_run_id(&id)?;
    let run = state
        .store
        .read(move |conn| queue::get(conn, run_id))
        .await?
        .ok_or_else(|| ApiError::not_found(format!("run {run_id} not found")))?;
    Ok(Json(RunView::of(&run)))
}

/// A run (of a check, a ping, or an ad-hoc job) as the API shows it. Times are ms since epoch.
#[derive(Serialize, ToSchema)]
pub(crate) struct RunView {
    id: i64,
    /// The check's name, for runs of checks and pings.
    check: Option<String>,
    check_id: Option<i64>,
    kind: String,
    payload: Value,
    /// `queued`, `leased`, `completed`, `dead` or `cancelled`.
    state: &'static str,
    priority: i64,
    run_at: i64,
    attempts: u32,
    max_attempts: u32,
    dedup_key: Option<String>,
    lease_owner: Option<String>,
    lease_until: Option<i64>,
    fence: i64,
    enqueued_at: i64,
    started_at: Option<i64>,
    finished_at: Option<i64>,
    /// For checks: `ok`, `warn`, `crit` or `unknown`.
    status: Option<String>,
    exit_code: Option<i64>,
    summary: Option<String>,
    result: Option<Value>,
    last_error: Option<String>,
}

impl RunView {
    pub(crate) fn of(run: &RunRow) -> RunView {
        let payload = serde_json::from_str::<Value>(&run.payload).unwrap_or(Value::Null);
        let check = payload
            .get("name")
            .and_then(Value::as_str)
            .map(str::to_string)
            .filter(|_| run.kind == "check" || run.kind == "ping");
        RunView {
            id: run.id,
            check,
            check_id: run.check_id,
            kind: run.kind.clone(),
            payload,
            state: run.state.as_str(),
            priority: run.priority,
            run_at: run.run_at,
            attempts: run.attempts,
            max_attempts: run.max_attempts,
            dedup_key: run.dedup_key.clone(),
            lease_owner: run.lease_owner.clone(),
            lease_until: run.lease_until,
            fence: run.fence,
            enqueued_at: run.enqueued_at,
            started_at: run.started_at,
            finished_at: run.finished_at,
            status: run.status.clone(),
            exit_code: run.exit_code,
            summary: run.summary.clone(),
            result: run
                .result
                .as_deref()
                .and_then(|text| serde_json::from_str::<Value>(text).ok()),
            last_error: run.last_error.clone(),
        }
    }
}

/// What the API shows of a check's definition, computed once at start.
#[derive(Debug, Clone)]
pub(crate) struct CheckMeta {
    pub(crate) schedule: String,
    pub(crate) labels: std::collections::BTreeMap<String, String>,
    pub(crate) links: Vec<LinkView>,
}

/// A named link on a check's page (`links` in its config).
#[derive(Debug, Clone, Serialize, ToSchema)]
pub(crate) struct LinkView {
    name: String,
    url: String,
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
            links: config
                .links
                .iter()
                .map(|link| LinkView {
                    name: link.name.clone(),
                    url: link.url.clone(),
                })
                .collect(),
        }
    }
}

/// A check as the API shows it; borrowed from the row and the catalog, serialized directly.
#[derive(Serialize, ToSchema)]
pub(crate) struct CheckView<'a> {
    name: &'a str,
    /// `exec`, `http`, `tcp`, `icmp`, `heartbeat`, `noop`, ...
    kind: &'a str,
    /// The schedule in words, e.g. `every 30s` or `cron 0 3 * * * (Europe/Paris)`.
    schedule: &'a str,
    labels: Option<&'a std::collections::BTreeMap<String, String>>,
    /// Links from the check's config (its CI job, its logs, a runbook).
    links: &'a [LinkView],
    /// `ok`, `warn`, `crit` or `unknown`; null until the first result.
    status: Option<&'a str>,
    /// Since when the status holds (ms since epoch).
    status_since: Option<i64>,
    last_run_id: Option<i64>,
    last_run_at: Option<i64>,
    summary: Option<&'a str>,
    /// Heartbeat checks only, and only for operators and admins (it holds the ping URL).
    #[serde(skip_serializing_if = "Option::is_none")]
    heartbeat: Option<HeartbeatView<'a>>,
}

#[derive(Serialize, ToSchema)]
pub(crate) struct HeartbeatView<'a> {
    /// `new`, `up`, `started`, `late` or `down`.
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
        links: meta.map(|m| m.links.as_slice()).unwrap_or(&[]),
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

#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(crate) struct CheckQuery {
    /// Only checks with this status: `ok`, `warn`, `crit`, `unknown` or `pending` (no result yet).
    #[serde(default)]
    status: Option<String>,
    /// Name substring.
    #[serde(default)]
    filter: Option<String>,
    /// Only checks of this kind.
    #[serde(default)]
    kind: Option<String>,
    /// `key=value`: checks with this label.
    #[serde(default)]
    label: Option<String>,
    /// Page size, 1-10000 (default 1000).
    #[serde(default)]
    #[param(minimum = 1, maximum = 10_000)]
    limit: Option<usize>,
    /// A check name: the page starts after it.
    #[serde(default)]
    after: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub(crate) struct ChecksPage<'a> {
    checks: Vec<CheckView<'a>>,
    /// Pass as `after` for the next page; null on the last.
    next_after: Option<String>,
}

/// `GET /api/v1/checks`: by name, filtered, paginated (`next_after` names the next page).
#[utoipa::path(
    get,
    path = "/api/v1/checks",
    tag = "checks",
    operation_id = "list_checks",
    summary = "List checks with their status",
    params(CheckQuery),
    responses(
        (status = 200, description = "A page of checks, by name", body = ChecksPage),
        (status = 400, description = "A bad or unknown query parameter", body = ErrorBody),
        crate::openapi::AuthErrors,
    ),
    security(("bearer" = ["viewer"]))
)]
async fn list_checks(
    State(state): State<AppState>,
    caller: Caller,
    QueryParams(query): QueryParams<CheckQuery>,
) -> Result<Response, ApiError> {
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
    let mut rows = state
        .store
        .read(move |conn| warden_store::checks::list_status(conn, &listing))
        .await?;
    state.bus.freshen(&mut rows);
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
    let bytes = serde_json::to_vec(&ChecksPage { checks, next_after }).map_err(|error| {
        tracing::error!(%error, "cannot encode the checks");
        ApiError::new(ErrorCode::Internal, "internal error; see the hub's log")
    })?;
    Ok((
        [(axum::http::header::CONTENT_TYPE, "application/json")],
        bytes,
    )
        .into_response())
}

#[utoipa::path(
    get,
    path = "/api/v1/checks/{name}",
    tag = "checks",
    operation_id = "get_check",
    summary = "A check with its status",
    params(("name" = String, Path, description = "The check's name")),
    responses(
        (status = 200, description = "The check", body = CheckView),
        (status = 400, description = "A name that is not UTF-8", body = ErrorBody),
        crate::openapi::AuthErrors,
        (status = 404, description = "No such check", body = ErrorBody),
    ),
    security(("bearer" = ["viewer"]))
)]
async fn get_check(
    State(state): State<AppState>,
    caller: Caller,
    PathParam(name): PathParam<String>,
) -> Result<Json<Value>, ApiError> {
    caller.require(Role::Viewer)?;
    let lookup = name.clone();
    let mut row = state
        .store
        .read(move |conn| warden_store::checks::get_by_name(conn, &lookup))
        .await?
        .ok_or_else(|| ApiError::not_found(format!("check `{name}` not found")))?;
    state.bus.freshen(std::slice::from_mut(&mut row));
    let heartbeats = heartbeat_rows(&state, &caller).await?;
    Ok(Json(
        serde_json::to_value(check_view(&state, &row, heartbeats.get(&row.id)))
            .unwrap_or(Value::Null),
    ))
}

#[derive(Serialize, ToSchema)]
pub(crate) struct RunQueued {
    run_id: i64,
}

/// Forces a run of a check now, ahead of scheduled runs; the overlap policy does not apply.
#[utoipa::path(
    post,
    path = "/api/v1/checks/{name}/run",
    tag = "checks",
    operation_id = "run_check",
    summary = "Run a check now",
    description = "Queues a run of the check ahead of scheduled runs; the overlap policy does \
                   not apply. Any request body is ignored.",
    params(("name" = String, Path, description = "The check's name")),
    responses(
        (status = 201, description = "Queued", body = RunQueued),
        (status = 400, description = "A name that is not UTF-8", body = ErrorBody),
        crate::openapi::AuthErrors,
        (status = 404, description = "No such check", body = ErrorBody),
        (status = 409, description = "A heartbeat check: the job it watches pings it, it cannot be run", body = ErrorBody),
    ),
    security(("bearer" = ["operator"]))
)]
async fn run_check(
    State(state): State<AppState>,
    caller: Caller,
    PathParam(name): PathParam<String>,
) -> Result<(StatusCode, Json<RunQueued>), ApiError> {
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
    Ok((StatusCode::CREATED, Json(RunQueued { run_id })))
}

#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(crate) struct RunsQuery {
    /// Only runs of this check.
    #[serde(default)]
    check: Option<String>,
    /// Only runs in this state: `queued`, `leased`, `completed`, `dead` or `cancelled`.
    #[serde(default)]
    state: Option<String>,
    /// Page size, 1-1000 (default 50).
    #[serde(default)]
    #[param(minimum = 1, maximum = 1000)]
    limit: Option<usize>,
    /// A run id: the page starts below it (newest first).
    #[serde(default)]
    before: Option<i64>,
}

#[derive(Serialize, ToSchema)]
pub(crate) struct RunsPage {
    runs: Vec<RunView>,
    /// Pass as `before` for the next page; null on the last.
    next_before: Option<i64>,
}

#[utoipa::path(
    get,
    path = "/api/v1/runs",
    tag = "runs",
    operation_id = "list_runs",
    summary = "List runs, newest first",
    params(RunsQuery),
    responses(
        (status = 200, description = "A page of runs", body = RunsPage),
        (status = 400, description = "A bad or unknown query parameter", body = ErrorBody),
        crate::openapi::AuthErrors,
        (status = 404, description = "No such check (`check`)", body = ErrorBody),
    ),
    security(("bearer" = ["viewer"]))
)]
async fn list_runs(
    State(state): State<AppState>,
    caller: Caller,
    QueryParams(query): QueryParams<RunsQuery>,
) -> Result<Json<RunsPage>, ApiError> {
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
    Ok(Json(RunsPage {
        runs: runs.iter().map(RunView::of).collect(),
        next_before,
    }))
}

#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(crate) struct RunQuery {
    /// Wait up to this long (ms, at most 120000) for the run to finish and be recorded.
    #[serde(default)]
    wait_ms: Option<u64>,
}

/// A run; with `wait_ms`, answers as soon as it is finished (and recorded) or when the wait ends.
#[utoipa::path(
    get,
    path = "/api/v1/runs/{id}",
    tag = "runs",
    operation_id = "get_run",
    summary = "A run, optionally waiting for it to finish",
    params(("id" = i64, Path, description = "A run id (a positive integer)", minimum = 1), RunQuery),
    responses(
        (status = 200, description = "The run (finished, or as it is when the wait ends)", body = RunView),
        (status = 400, description = "A bad run id or query parameter", body = ErrorBody),
        crate::openapi::AuthErrors,
        (status = 404, description = "No such run", body = ErrorBody),
    ),
    security(("bearer" = ["viewer"]))
)]
async fn get_run_waiting(
    State(state): State<AppState>,
    caller: Caller,
    PathParam(id): PathParam<String>,
    QueryParams(query): QueryParams<RunQuery>,
) -> Result<Json<RunView>, ApiError> {
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
    Ok(Json(RunView::of(&run)))
}

#[derive(Serialize, ToSchema)]
pub(crate) struct RunOutput {
    run_id: i64,
    lines: Vec<OutputLine>,
}

/// One line a run printed.
#[derive(Serialize, ToSchema)]
pub(crate) struct OutputLine {
    seq: i64,
    /// When it was printed (ms since epoch).
    at: i64,
    /// `stdout` or `stderr`.
    stream: String,
    line: String,
}

#[utoipa::path(
    get,
    path = "/api/v1/runs/{id}/output",
    tag = "runs",
    operation_id = "run_output",
    summary = "The lines a run printed, in order",
    params(("id" = i64, Path, description = "A run id (a positive integer)", minimum = 1)),
    responses(
        (status = 200, description = "The output", body = RunOutput),
        (status = 400, description = "A bad run id", body = ErrorBody),
        crate::openapi::AuthErrors,
        (status = 404, description = "No such run", body = ErrorBody),
    ),
    security(("bearer" = ["viewer"]))
)]
async fn run_output(
    State(state): State<AppState>,
    caller: Caller,
    PathParam(id): PathParam<String>,
) -> Result<Json<RunOutput>, ApiError> {
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
                Ok(OutputLine {
                    seq: row.get::<_, i64>(0)?,
                    at: row.get::<_, i64>(1)?,
                    stream: row.get::<_, String>(2)?,
                    line: row.get::<_, String>(3)?,
                })
            })?;
            Ok(Some(rows.collect::<Result<Vec<_>, _>>()?))
        })
        .await?
        .ok_or_else(|| ApiError::not_found(format!("run {run_id} not found")))?;
    Ok(Json(RunOutput { run_id, lines }))
}
