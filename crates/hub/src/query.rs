//! Read-side API for history: series (list; range query with step and aggregate, read from the
//! per-minute rollups for long ranges), a check's uptime, and API tokens (admin). Also the
//! rollup task that keeps `samples_1m` current.

use std::time::Duration;

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use tokio_util::sync::CancellationToken;
use utoipa::{IntoParams, ToSchema};
use warden_core::duration::parse_duration;
use warden_store::Store;
use warden_store::samples::{self, Aggregate, BUCKET_MS};

use crate::AppState;
use crate::api::{JsonBody, PathParam, QueryParams};
use crate::auth::{Caller, Role, generate_token, hash_token};
use crate::error::{ApiError, ErrorBody};

/// Most points one range query returns.
const MAX_POINTS: i64 = 10_000;
/// The latest time a range may name: 9999-12-31T23:59:59.999Z. With times in `0..=MAX_TIME_MS`
/// every difference and step computed from them fits an `i64`.
pub(crate) const MAX_TIME_MS: i64 = 253_402_300_799_999;

/// Series rolled up per write (see `samples::roll_up_step`).
const ROLLUP_SERIES_PER_WRITE: i64 = 4_096;

/// Rolls finished minutes up every 30 s, a minute's grace after each minute ends (samples
/// carry their run's finish time and arrive a little after it), a slice of series per write.
pub(crate) async fn rollup_loop(store: Store, stop: CancellationToken) {
    let mut after = 0;
    loop {
        let upto = (warden_store::now_ms() - 10_000).div_euclid(BUCKET_MS) - 1;
        let from = after;
        let rolled = store
            .write(move |conn| samples::roll_up_step(conn, upto, from, ROLLUP_SERIES_PER_WRITE))
            .await;
        let wait = match rolled {
            // More of this minute, or more minutes: go on soon, letting other writes in.
            Ok(samples::Rolled::Slice { next_after }) => {
                after = next_after;
                Duration::from_millis(5)
            }
            Ok(samples::Rolled::Minute(_)) => {
                after = 0;
                Duration::from_millis(5)
            }
            Ok(samples::Rolled::Nothing) => Duration::from_secs(30),
            Err(error) => {
                tracing::warn!(%error, "cannot roll samples up");
                after = 0;
                Duration::from_secs(30)
            }
        };
        tokio::select! {
            () = stop.cancelled() => return,
            () = tokio::time::sleep(wait) => {}
        }
    }
}

/// `from`/`to` (ms since epoch) or `since` (a duration back from now), defaulting to the last
/// `default`.
fn time_range(
    from: Option<i64>,
    to: Option<i64>,
    since: Option<&str>,
    default: Duration,
) -> Result<(i64, i64), ApiError> {
    for (name, time) in [("from", from), ("to", to)] {
        if time.is_some_and(|time| !(0..=MAX_TIME_MS).contains(&time)) {
            return Err(ApiError::bad_request(format!(
                "{name}: must be a time in ms since the epoch, between 0 and {MAX_TIME_MS}"
            )));
        }
    }
    let to = to.unwrap_or_else(warden_store::now_ms);
    let from = match (from, since) {
        (Some(_), Some(_)) => {
            return Err(ApiError::bad_request("from, since: give one, not both"));
        }
        (Some(from), None) => from,
        (None, Some(since)) => {
            let back = parse_duration(since)
                .map_err(|error| ApiError::bad_request(format!("since: {error}")))?;
            to.saturating_sub(i64::try_from(back.as_millis()).unwrap_or(i64::MAX))
                .max(0)
        }
        (None, None) => to
            .saturating_sub(i64::try_from(default.as_millis()).unwrap_or(0))
            .max(0),
    };
    if from >= to {
        return Err(ApiError::bad_request("from: must be before to"));
    }
    Ok((from, to))
}

#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(crate) struct SeriesListQuery {
    /// Only series whose name starts with this.
    #[serde(default)]
    prefix: Option<String>,
    /// A series name: the page starts after it.
    #[serde(default)]
    after: Option<String>,
    /// Page size, 1-1000 (default 100).
    #[serde(default)]
    #[param(minimum = 1, maximum = 1000)]
    limit: Option<usize>,
}

#[derive(Serialize, ToSchema)]
pub(crate) struct SeriesPage {
    series: Vec<SeriesName>,
    /// Pass as `after` for the next page; null on the last.
    next_after: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub(crate) struct SeriesName {
    /// `<check>.<label>` from perfdata, e.g. `web.response_time`.
    name: String,
    labels: Value,
}

/// `GET /api/v1/series`: series names (optionally by prefix), paginated by name.
#[utoipa::path(
    get,
    path = "/api/v1/series",
    tag = "series",
    operation_id = "list_series",
    summary = "List series by name",
    params(SeriesListQuery),
    responses(
        (status = 200, description = "A page of series", body = SeriesPage),
        (status = 400, description = "A bad or unknown query parameter", body = ErrorBody),
        crate::openapi::AuthErrors,
    ),
    security(("bearer" = ["viewer"]))
)]
pub(crate) async fn list_series(
    State(state): State<AppState>,
    caller: Caller,
    QueryParams(query): QueryParams<SeriesListQuery>,
) -> Result<Json<SeriesPage>, ApiError> {
    caller.require(Role::Viewer)?;
    let limit = query.limit.unwrap_or(100);
    if !(1..=1_000).contains(&limit) {
        return Err(ApiError::bad_request("limit: must be between 1 and 1000"));
    }
    let rows = state
        .store
        .read(move |conn| {
            samples::list_series(
                conn,
                query.prefix.as_deref().unwrap_or(""),
                query.after.as_deref(),
                limit,
            )
        })
        .await?;
    let next_after = (rows.len() == limit)
        .then(|| rows.last().map(|row| row.name.clone()))
        .flatten();
    let series = rows
        .iter()
        .map(|row| SeriesName {
            name: row.name.clone(),
            labels: serde_json::from_str::<Value>(&row.labels).unwrap_or(Value::Null),
        })
        .collect();
    Ok(Json(SeriesPage { series, next_after }))
}

#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(crate) struct SeriesQuery {
    /// Start of the range (ms since epoch); give this or `since`.
    #[serde(default)]
    #[param(minimum = 0, maximum = 253_402_300_799_999_i64)]
    from: Option<i64>,
    /// End of the range (ms since epoch); default now.
    #[serde(default)]
    #[param(minimum = 0, maximum = 253_402_300_799_999_i64)]
    to: Option<i64>,
    /// A duration back from `to`, e.g. `6h`; default `1h`.
    #[serde(default)]
    since: Option<String>,
    /// A duration (`1m`); default: the range over `points`.
    #[serde(default)]
    step: Option<String>,
    /// How many points (1-10000, default 300); instead of `step`.
    #[serde(default)]
    #[param(minimum = 1, maximum = 10_000)]
    points: Option<i64>,
    /// `avg` (default), `min`, `max` or `last`.
    #[serde(default)]
    agg: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub(crate) struct SeriesPoints {
    name: String,
    from: i64,
    to: i64,
    step_ms: i64,
    aggregate: String,
    /// `[ms since epoch, value]` pairs, one per step that has samples.
    #[schema(value_type = Vec<Vec<f64>>)]
    points: Vec<(i64, f64)>,
}

/// `GET /api/v1/series/{name}`: one series over a range, one point per step.
#[utoipa::path(
    get,
    path = "/api/v1/series/{*name}",
    tag = "series",
    operation_id = "query_series",
    summary = "One series over a range",
    params(("name" = String, Path, description = "The series name (it may contain `/`)"), SeriesQuery),
    responses(
        (status = 200, description = "One point per step", body = SeriesPoints),
        (status = 400, description = "A bad or unknown query parameter, or a range with too many points", body = ErrorBody),
        crate::openapi::AuthErrors,
        (status = 404, description = "No such series", body = ErrorBody),
    ),
    security(("bearer" = ["viewer"]))
)]
pub(crate) async fn query_series(
    State(state): State<AppState>,
    caller: Caller,
    PathParam(name): PathParam<String>,
    QueryParams(query): QueryParams<SeriesQuery>,
) -> Result<Json<SeriesPoints>, ApiError> {
    caller.require(Role::Viewer)?;
    let (from, to) = time_range(
        query.from,
        query.to,
        query.since.as_deref(),
        Duration::from_secs(3600),
    )?;
    let aggregate_name = query.agg.as_deref().unwrap_or("avg");
    let aggregate = Aggregate::parse(aggregate_name)
        .ok_or_else(|| ApiError::bad_request("agg: must be one of avg, min, max, last"))?;
    let step_ms = match (&query.step, query.points) {
        (Some(_), Some(_)) => {
            return Err(ApiError::bad_request("step, points: give one, not both"));
        }
        (Some(step), None) => {
            let step = parse_duration(step)
                .map_err(|error| ApiError::bad_request(format!("step: {error}")))?;
            i64::try_from(step.as_millis()).unwrap_or(i64::MAX)
        }
        (None, points) => {
            let points = points.unwrap_or(300);
            if !(1..=MAX_POINTS).contains(&points) {
                return Err(ApiError::bad_request(format!(
                    "points: must be between 1 and {MAX_POINTS}"
                )));
            }
            ((to - from) + points - 1) / points
        }
    }
    .max(1);
    if (to - from) / step_ms > MAX_POINTS {
        return Err(ApiError::bad_request(format!(
            "step: too small for the range (more than {MAX_POINTS} points)"
        )));
    }
    let lookup = name.clone();
    let points = state
        .store
        .read(move |conn| {
            let Some(series_id) = samples::find_series(conn, &lookup, "{}")? else {
                return Ok(None);
            };
            samples::query(conn, series_id, from, to, step_ms, aggregate).map(Some)
        })
        .await?
        .ok_or_else(|| ApiError::not_found(format!("series `{name}` not found")))?;
    Ok(Json(SeriesPoints {
        name,
        from,
        to,
        step_ms,
        aggregate: aggregate_name.to_string(),
        points,
    }))
}

#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(crate) struct UptimeQuery {
    /// Start of the range (ms since epoch); give this or `since`.
    #[serde(default)]
    #[param(minimum = 0, maximum = 253_402_300_799_999_i64)]
    from: Option<i64>,
    /// End of the range (ms since epoch); default now.
    #[serde(default)]
    #[param(minimum = 0, maximum = 253_402_300_799_999_i64)]
    to: Option<i64>,
    /// A duration back from `to`, e.g. `7d`; default `24h`.
    #[serde(default)]
    since: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub(crate) struct Uptime {
    check: String,
    from: i64,
    to: i64,
    /// Finished runs in the range.
    runs: i64,
    /// Of them, ok or warn.
    up: i64,
    /// `100 * up / runs`; null without runs.
    uptime_percent: Option<f64>,
    /// Mean of the check's `response_time` series; null without samples.
    mean_response_time_ms: Option<f64>,
}

/// `GET /api/v1/checks/{name}/uptime`: share of runs up (ok or warn) and the mean response time
/// over a range (default the last 24 h).
#[utoipa::path(
    get,
    path = "/api/v1/checks/{name}/uptime",
    tag = "checks",
    operation_id = "check_uptime",
    summary = "A check's uptime over a range",
    params(("name" = String, Path, description = "The check's name"), UptimeQuery),
    responses(
        (status = 200, description = "Uptime and mean response time", body = Uptime),
        (status = 400, description = "A bad or unknown query parameter", body = ErrorBody),
        crate::openapi::AuthErrors,
        (status = 404, description = "No such check", body = ErrorBody),
    ),
    security(("bearer" = ["viewer"]))
)]
pub(crate) async fn uptime(
    State(state): State<AppState>,
    caller: Caller,
    PathParam(name): PathParam<String>,
    QueryParams(query): QueryParams<UptimeQuery>,
) -> Result<Json<Uptime>, ApiError> {
    caller.require(Role::Viewer)?;
    let (from, to) = time_range(
        query.from,
        query.to,
        query.since.as_deref(),
        Duration::from_secs(86_400),
    )?;
    let lookup = name.clone();
    let found = state
        .store
        .read(move |conn| {
            let Some(check) = warden_store::checks::get_by_name(conn, &lookup)? else {
                return Ok(None);
            };
            let (runs, up) = warden_store::checks::uptime(conn, check.id, from, to)?;
            let series = format!("{lookup}.response_time");
            let mean = match samples::find_series(conn, &series, "{}")? {
                Some(id) => samples::query(conn, id, from, to, to - from + 1, Aggregate::Avg)?
                    .first()
                    .map(|(_, value)| *value),
                None => None,
            };
            Ok(Some((runs, up, mean)))
        })
        .await?;
    let Some((runs, up, mean)) = found else {
        return Err(ApiError::not_found(format!("check `{name}` not found")));
    };
    Ok(Json(Uptime {
        check: name,
        from,
        to,
        runs,
        up,
        uptime_percent: (runs > 0).then(|| 100.0 * up as f64 / runs as f64),
        mean_response_time_ms: mean.map(|seconds| seconds * 1000.0),
    }))
}

/// A token as the API shows it: never the secret.
#[derive(Serialize, ToSchema)]
pub(crate) struct TokenView {
    id: i64,
    name: String,
    /// `admin`, `operator`, `viewer`, `agent` or `ping`.
    role: String,
    created_at: i64,
    expires_at: Option<i64>,
    revoked_at: Option<i64>,
    /// `live`, `expired` or `revoked`.
    state: &'static str,
}

impl TokenView {
    fn of(row: &warden_store::tokens::TokenRow, now: i64) -> TokenView {
        let state = if row.revoked_at.is_some() {
            "revoked"
        } else if row.expires_at.is_some_and(|at| at <= now) {
            "expired"
        } else {
            "live"
        };
        TokenView {
            id: row.id,
            name: row.name.clone(),
            role: row.role.clone(),
            created_at: row.created_at,
            expires_at: row.expires_at,
            revoked_at: row.revoked_at,
            state,
        }
    }
}

#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(crate) struct TokensQuery {
    /// A token id: the page starts below it (newest first).
    #[serde(default)]
    before: Option<i64>,
    /// Page size, 1-1000 (default 100).
    #[serde(default)]
    #[param(minimum = 1, maximum = 1000)]
    limit: Option<usize>,
}

#[derive(Serialize, ToSchema)]
pub(crate) struct TokensPage {
    tokens: Vec<TokenView>,
    /// Pass as `before` for the next page; null on the last.
    next_before: Option<i64>,
}

/// `GET /api/v1/tokens` (admin): every token, newest first; never the secret.
#[utoipa::path(
    get,
    path = "/api/v1/tokens",
    tag = "tokens",
    operation_id = "list_tokens",
    summary = "List tokens, newest first",
    params(TokensQuery),
    responses(
        (status = 200, description = "A page of tokens (never their secrets)", body = TokensPage),
        (status = 400, description = "A bad or unknown query parameter", body = ErrorBody),
        crate::openapi::AuthErrors,
    ),
    security(("bearer" = ["admin"]))
)]
pub(crate) async fn list_tokens(
    State(state): State<AppState>,
    caller: Caller,
    QueryParams(query): QueryParams<TokensQuery>,
) -> Result<Json<TokensPage>, ApiError> {
    caller.require(Role::Admin)?;
    let limit = query.limit.unwrap_or(100);
    if !(1..=1_000).contains(&limit) {
        return Err(ApiError::bad_request("limit: must be between 1 and 1000"));
    }
    let rows = state
        .store
        .read(move |conn| warden_store::tokens::list(conn, query.before, limit))
        .await?;
    let now = warden_store::now_ms();
    let next_before = (rows.len() == limit)
        .then(|| rows.last().map(|row| row.id))
        .flatten();
    Ok(Json(TokensPage {
        tokens: rows.iter().map(|row| TokenView::of(row, now)).collect(),
        next_before,
    }))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct NewToken {
    /// 1-100 characters (trimmed).
    #[schema(min_length = 1, max_length = 100)]
    name: String,
    /// `admin`, `operator`, `viewer`, `agent` or `ping`.
    role: String,
    /// A duration (`30d`); no expiry when absent.
    #[serde(default)]
    expires_in: Option<String>,
}

/// A new token: the only answer that holds its secret.
#[derive(Serialize, ToSchema)]
pub(crate) struct CreatedToken {
    id: i64,
    name: String,
    role: &'static str,
    created_at: i64,
    expires_at: Option<i64>,
    /// The secret (`wdn_` + 64 hex digits), shown this once.
    token: String,
}

/// `POST /api/v1/tokens` (admin): a new token, its secret in this answer only.
#[utoipa::path(
    post,
    path = "/api/v1/tokens",
    tag = "tokens",
    operation_id = "create_token",
    summary = "Create a token",
    request_body = NewToken,
    responses(
        (status = 201, description = "The new token with its secret, shown once", body = CreatedToken),
        (status = 400, description = "Malformed JSON, a wrong or unknown field, or a bad name, role or duration", body = ErrorBody),
        crate::openapi::AuthErrors,
        (status = 413, description = "The request body is too large", body = ErrorBody),
    ),
    security(("bearer" = ["admin"]))
)]
pub(crate) async fn create_token(
    State(state): State<AppState>,
    caller: Caller,
    JsonBody(body): JsonBody<NewToken>,
) -> Result<(StatusCode, Json<CreatedToken>), ApiError> {
    caller.require(Role::Admin)?;
    let name = body.name.trim().to_string();
    if name.is_empty() || name.chars().count() > 100 {
        return Err(ApiError::bad_request("name: must be 1-100 characters"));
    }
    let role = Role::parse(&body.role).ok_or_else(|| {
        ApiError::bad_request("role: must be one of admin, operator, viewer, agent, ping")
    })?;
    let now = warden_store::now_ms();
    let expires_at = match body.expires_in.as_deref() {
        None => None,
        Some(text) => {
            let within = parse_duration(text)
                .map_err(|error| ApiError::bad_request(format!("expires_in: {error}")))?;
            if within.is_zero() {
                return Err(ApiError::bad_request(
                    "expires_in: must be greater than zero",
                ));
            }
            Some(now.saturating_add(i64::try_from(within.as_millis()).unwrap_or(i64::MAX)))
        }
    };
    let secret = generate_token().map_err(|error| {
        tracing::error!(%error, "cannot make a token");
        ApiError::new(crate::error::ErrorCode::Internal, "cannot make a token")
    })?;
    let hash = hash_token(&secret);
    let role_name = role.as_str();
    let stored_name = name.clone();
    let id = state
        .store
        .write(move |conn| {
            warden_store::tokens::insert(conn, &stored_name, role_name, &hash, now, expires_at)
        })
        .await?;
    Ok((
        StatusCode::CREATED,
        Json(CreatedToken {
            id,
            name,
            role: role_name,
            created_at: now,
            expires_at,
            token: secret,
        }),
    ))
}

/// `DELETE /api/v1/tokens/{id}` (admin): revokes a token at once.
#[utoipa::path(
    delete,
    path = "/api/v1/tokens/{id}",
    tag = "tokens",
    operation_id = "revoke_token",
    summary = "Revoke a token",
    params(("id" = i64, Path, description = "A token id (a positive integer)", minimum = 1)),
    responses(
        (status = 200, description = "The token, now revoked", body = TokenView),
        (status = 400, description = "A bad token id", body = ErrorBody),
        crate::openapi::AuthErrors,
        (status = 404, description = "No such token", body = ErrorBody),
    ),
    security(("bearer" = ["admin"]))
)]
pub(crate) async fn revoke_token(
    State(state): State<AppState>,
    caller: Caller,
    PathParam(id): PathParam<String>,
) -> Result<Json<TokenView>, ApiError> {
    caller.require(Role::Admin)?;
    let id = id
        .parse::<i64>()
        .ok()
        .filter(|id| *id > 0)
        .ok_or_else(|| ApiError::bad_request(format!("`{id}` is not a token id")))?;
    let now = warden_store::now_ms();
    let row = state
        .store
        .write(move |conn| warden_store::tokens::revoke(conn, id, now))
        .await?
        .ok_or_else(|| ApiError::not_found(format!("token {id} not found")))?;
    Ok(Json(TokenView::of(&row, now)))
}
