//! Read-side API for history: series (list; range query with step and aggregate, read from the
//! per-minute rollups for long ranges), a check's uptime, and API tokens (admin). Also the
//! rollup task that keeps `samples_1m` current.

use std::time::Duration;

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use serde::Deserialize;
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;
use warden_core::duration::parse_duration;
use warden_store::Store;
use warden_store::samples::{self, Aggregate, BUCKET_MS};

use crate::AppState;
use crate::api::{JsonBody, QueryParams};
use crate::auth::{Caller, Role, generate_token, hash_token};
use crate::error::ApiError;

/// Most points one range query returns.
const MAX_POINTS: i64 = 10_000;

/// Rolls finished minutes up every 30 s, a minute's grace after each minute ends (samples
/// carry their run's finish time and arrive a little after it).
pub(crate) async fn rollup_loop(store: Store, stop: CancellationToken) {
    loop {
        let upto = (warden_store::now_ms() - 10_000).div_euclid(BUCKET_MS) - 1;
        let rolled = store
            .write(move |conn| samples::roll_up(conn, upto, 60))
            .await;
        let wait = match rolled {
            // More to catch up on: go again soon.
            Ok(60) => Duration::from_millis(100),
            Ok(_) => Duration::from_secs(30),
            Err(error) => {
                tracing::warn!(%error, "cannot roll samples up");
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
        }
        (None, None) => to.saturating_sub(i64::try_from(default.as_millis()).unwrap_or(0)),
    };
    if from >= to {
        return Err(ApiError::bad_request("from: must be before to"));
    }
    Ok((from, to))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct SeriesListQuery {
    #[serde(default)]
    prefix: Option<String>,
    #[serde(default)]
    after: Option<String>,
    #[serde(default)]
    limit: Option<usize>,
}

/// `GET /api/v1/series`: series names (optionally by prefix), paginated by name.
pub(crate) async fn list_series(
    State(state): State<AppState>,
    caller: Caller,
    QueryParams(query): QueryParams<SeriesListQuery>,
) -> Result<Json<Value>, ApiError> {
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
    let series: Vec<Value> = rows
        .iter()
        .map(|row| {
            json!({
                "name": row.name,
                "labels": serde_json::from_str::<Value>(&row.labels).unwrap_or(Value::Null),
            })
        })
        .collect();
    Ok(Json(json!({ "series": series, "next_after": next_after })))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct SeriesQuery {
    #[serde(default)]
    from: Option<i64>,
    #[serde(default)]
    to: Option<i64>,
    #[serde(default)]
    since: Option<String>,
    /// A duration (`1m`); default: the range over `points`.
    #[serde(default)]
    step: Option<String>,
    #[serde(default)]
    points: Option<i64>,
    #[serde(default)]
    agg: Option<String>,
}

/// `GET /api/v1/series/{name}`: one series over a range, one point per step.
pub(crate) async fn query_series(
    State(state): State<AppState>,
    caller: Caller,
    Path(name): Path<String>,
    QueryParams(query): QueryParams<SeriesQuery>,
) -> Result<Json<Value>, ApiError> {
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
    Ok(Json(json!({
        "name": name,
        "from": from,
        "to": to,
        "step_ms": step_ms,
        "aggregate": aggregate_name,
        "points": points.iter().map(|(ts, value)| json!([ts, value])).collect::<Vec<_>>(),
    })))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct UptimeQuery {
    #[serde(default)]
    from: Option<i64>,
    #[serde(default)]
    to: Option<i64>,
    #[serde(default)]
    since: Option<String>,
}

/// `GET /api/v1/checks/{name}/uptime`: share of runs up (ok or warn) and the mean response time
/// over a range (default the last 24 h).
pub(crate) async fn uptime(
    State(state): State<AppState>,
    caller: Caller,
    Path(name): Path<String>,
    QueryParams(query): QueryParams<UptimeQuery>,
) -> Result<Json<Value>, ApiError> {
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
    Ok(Json(json!({
        "check": name,
        "from": from,
        "to": to,
        "runs": runs,
        "up": up,
        "uptime_percent": (runs > 0).then(|| 100.0 * up as f64 / runs as f64),
        "mean_response_time_ms": mean.map(|seconds| seconds * 1000.0),
    })))
}

fn token_json(row: &warden_store::tokens::TokenRow, now: i64) -> Value {
    let state = if row.revoked_at.is_some() {
        "revoked"
    } else if row.expires_at.is_some_and(|at| at <= now) {
        "expired"
    } else {
        "live"
    };
    json!({
        "id": row.id,
        "name": row.name,
        "role": row.role,
        "created_at": row.created_at,
        "expires_at": row.expires_at,
        "revoked_at": row.revoked_at,
        "state": state,
    })
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct TokensQuery {
    #[serde(default)]
    before: Option<i64>,
    #[serde(default)]
    limit: Option<usize>,
}

/// `GET /api/v1/tokens` (admin): every token, newest first; never the secret.
pub(crate) async fn list_tokens(
    State(state): State<AppState>,
    caller: Caller,
    QueryParams(query): QueryParams<TokensQuery>,
) -> Result<Json<Value>, ApiError> {
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
    Ok(Json(json!({
        "tokens": rows.iter().map(|row| token_json(row, now)).collect::<Vec<_>>(),
        "next_before": next_before,
    })))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct NewToken {
    name: String,
    role: String,
    /// A duration (`30d`); no expiry when absent.
    #[serde(default)]
    expires_in: Option<String>,
}

/// `POST /api/v1/tokens` (admin): a new token, its secret in this answer only.
pub(crate) async fn create_token(
    State(state): State<AppState>,
    caller: Caller,
    JsonBody(body): JsonBody<NewToken>,
) -> Result<impl IntoResponse, ApiError> {
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
        Json(json!({
            "id": id,
            "name": name,
            "role": role_name,
            "created_at": now,
            "expires_at": expires_at,
            "token": secret,
        })),
    ))
}

/// `DELETE /api/v1/tokens/{id}` (admin): revokes a token at once.
pub(crate) async fn revoke_token(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
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
    Ok(Json(token_json(&row, now)))
}
