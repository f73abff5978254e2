//! Alerting endpoints under `/api/v1`: incidents (list, get with timeline, acknowledge),
//! silences (one-off maintenance windows: list, create, delete) and notifiers (list with their
//! counters, send a test message).

use std::sync::atomic::Ordering;
use std::time::Instant;

use axum::extract::{DefaultBodyLimit, Path, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{Value, json};
use warden_store::alerting::{self as rows, AckRefused, IncidentRow, SilenceRow};

use super::Control;
use super::notify::Notice;
use crate::AppState;
use crate::api::{JsonBody, QueryParams};
use crate::auth::{Caller, Role};
use crate::bus::EventKind;
use crate::error::{ApiError, ErrorCode};

/// Largest body these endpoints accept.
const BODY_LIMIT: usize = 16 * 1024;
/// Longest note kept with an acknowledgement or a silence.
const MAX_NOTE: usize = 2_000;

pub(crate) fn routes() -> Router<AppState> {
    Router::new()
        .route("/api/v1/incidents", get(list_incidents))
        .route("/api/v1/incidents/{id}", get(get_incident))
        .route("/api/v1/incidents/{id}/ack", post(acknowledge))
        .route("/api/v1/silences", get(list_silences).post(create_silence))
        .route(
            "/api/v1/silences/{id}",
            axum::routing::delete(delete_silence),
        )
        .route("/api/v1/alerting", get(alerting_stats))
        .route("/api/v1/notifiers", get(list_notifiers))
        .route("/api/v1/notifiers/{name}/test", post(test_notifier))
        .layer(DefaultBodyLimit::max(BODY_LIMIT))
}

fn parse_id(text: &str, what: &str) -> Result<i64, ApiError> {
    text.parse::<i64>()
        .ok()
        .filter(|id| *id > 0)
        .ok_or_else(|| {
            ApiError::bad_request(format!("`{text}` is not {what} id (a positive integer)"))
        })
}

pub(crate) fn incident_json(incident: &IncidentRow, url: String) -> Value {
    json!({
        "id": incident.id,
        "rule": incident.rule,
        "subject": incident.subject,
        "check": incident.check_name,
        "severity": incident.severity,
        "state": incident.state,
        "status": incident.status,
        "summary": incident.summary,
        "value": incident.value,
        "message": incident.message,
        "labels": serde_json::from_str::<Value>(&incident.labels).unwrap_or_else(|_| json!({})),
        "opened_at": incident.opened_at,
        "notified_at": incident.notified_at,
        "acknowledged_at": incident.acknowledged_at,
        "acknowledged_by": incident.acknowledged_by,
        "ack_note": incident.ack_note,
        "resolved_at": incident.resolved_at,
        "resolved_status": incident.resolved_status,
        "resolved_summary": incident.resolved_summary,
        "held": incident.held,
        "url": url,
    })
}

fn silence_json(silence: &SilenceRow) -> Value {
    json!({
        "id": silence.id,
        "checks": silence.checks,
        "note": silence.note,
        "created_by": silence.created_by,
        "starts_at": silence.starts_at,
        "ends_at": silence.ends_at,
        "created_at": silence.created_at,
    })
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct IncidentsQuery {
    #[serde(default)]
    open: Option<bool>,
    #[serde(default)]
    limit: Option<usize>,
    #[serde(default)]
    before: Option<i64>,
}

async fn list_incidents(
    State(state): State<AppState>,
    caller: Caller,
    QueryParams(query): QueryParams<IncidentsQuery>,
) -> Result<Json<Value>, ApiError> {
    caller.require(Role::Viewer)?;
    let limit = query.limit.unwrap_or(50);
    if !(1..=1_000).contains(&limit) {
        return Err(ApiError::bad_request("limit: must be between 1 and 1000"));
    }
    let open_only = query.open.unwrap_or(false);
    let before = query.before;
    let incidents = state
        .store
        .read(move |conn| rows::list_incidents(conn, open_only, before, limit))
        .await?;
    let next_before = if incidents.len() == limit {
        incidents.last().map(|incident| incident.id)
    } else {
        None
    };
    let list: Vec<Value> = incidents
        .iter()
        .map(|incident| incident_json(incident, state.alerting.incident_url(incident.id)))
        .collect();
    Ok(Json(
        json!({ "incidents": list, "next_before": next_before }),
    ))
}

async fn get_incident(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    caller.require(Role::Viewer)?;
    let id = parse_id(&id, "an incident")?;
    let found = state
        .store
        .read(move |conn| {
            let Some(incident) = rows::get_incident(conn, id)? else {
                return Ok(None);
            };
            let timeline = rows::incident_events(conn, id)?;
            let deliveries = rows::deliveries_of(conn, id)?;
            Ok(Some((incident, timeline, deliveries)))
        })
        .await?;
    let Some((incident, timeline, deliveries)) = found else {
        return Err(ApiError::not_found(format!("incident {id} not found")));
    };
    let mut body = incident_json(&incident, state.alerting.incident_url(id));
    if let Some(object) = body.as_object_mut() {
        object.insert(
            "timeline".to_string(),
            timeline
                .iter()
                .map(|event| {
                    json!({
                        "at": event.at,
                        "kind": event.kind,
                        "notifier": event.notifier,
                        "detail": event.detail,
                    })
                })
                .collect(),
        );
        object.insert(
            "deliveries".to_string(),
            deliveries
                .iter()
                .map(|delivery| {
                    json!({
                        "id": delivery.id,
                        "notifier": delivery.notifier,
                        "event": delivery.event,
                        "state": delivery.state,
                        "attempts": delivery.attempts,
                        "created_at": delivery.created_at,
                        "sent_at": delivery.sent_at,
                        "last_error": delivery.last_error,
                    })
                })
                .collect(),
        );
    }
    Ok(Json(body))
}

/// Who the caller is, for the record: the token's name and id.
async fn caller_name(state: &AppState, caller: &Caller) -> String {
    let token_id = caller.token_id;
    let name = state
        .store
        .read(move |conn| {
            use warden_store::params;
            let mut statement = conn.prepare_cached("SELECT name FROM tokens WHERE id = ?1")?;
            let mut found = statement.query(params![token_id])?;
            Ok(match found.next()? {
                Some(row) => Some(row.get::<_, String>(0)?),
                None => None,
            })
        })
        .await
        .ok()
        .flatten();
    match name {
        Some(name) => format!("{name} (token {token_id})"),
        None => format!("token {token_id}"),
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AckBody {
    #[serde(default)]
    note: String,
}

async fn acknowledge(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    body: axum::body::Bytes,
) -> Result<Json<Value>, ApiError> {
    caller.require(Role::Operator)?;
    let id = parse_id(&id, "an incident")?;
    // The body is optional: `{"note": "..."}`.
    let note = if body.iter().all(u8::is_ascii_whitespace) {
        String::new()
    } else {
        serde_json::from_slice::<AckBody>(&body)
            .map_err(|error| ApiError::bad_request(format!("invalid request body: {error}")))?
            .note
    };
    if note.chars().count() > MAX_NOTE {
        return Err(ApiError::bad_request(format!(
            "note: at most {MAX_NOTE} characters"
        )));
    }
    let by = caller_name(&state, &caller).await;
    let (record_by, record_note) = (by.clone(), note.clone());
    let now = warden_store::now_ms();
    let acknowledged = state
        .store
        .write(move |conn| rows::acknowledge(conn, id, &record_by, &record_note, now))
        .await?;
    let incident = match acknowledged {
        Ok(incident) => incident,
        Err(AckRefused::NotFound) => {
            return Err(ApiError::not_found(format!("incident {id} not found")));
        }
        Err(AckRefused::Resolved) => {
            return Err(ApiError::new(
                ErrorCode::Conflict,
                format!("incident {id} is already resolved"),
            ));
        }
    };
    state.alerting.control(Control::Acknowledged(id)).await;
    state
        .bus
        .publish(EventKind::IncidentAcknowledged {
            incident_id: id,
            by,
            note,
        })
        .await;
    Ok(Json(incident_json(
        &incident,
        state.alerting.incident_url(id),
    )))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SilencesQuery {
    /// Also the ones that are over.
    #[serde(default)]
    all: Option<bool>,
}

async fn list_silences(
    State(state): State<AppState>,
    caller: Caller,
    QueryParams(query): QueryParams<SilencesQuery>,
) -> Result<Json<Value>, ApiError> {
    caller.require(Role::Viewer)?;
    let all = query.all.unwrap_or(false);
    let now = warden_store::now_ms();
    let silences = state
        .store
        .read(move |conn| rows::list_silences(conn, all, now))
        .await?;
    Ok(Json(
        json!({ "silences": silences.iter().map(silence_json).collect::<Vec<_>>() }),
    ))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SilenceBody {
    /// A glob over check names, e.g. `web*`.
    checks: String,
    /// How long, e.g. `2h` (from `starts_at`, or now).
    #[serde(default)]
    duration: Option<String>,
    /// Absolute end (ms since epoch), instead of `duration`.
    #[serde(default)]
    ends_at: Option<i64>,
    #[serde(default)]
    starts_at: Option<i64>,
    #[serde(default)]
    note: String,
}

async fn create_silence(
    State(state): State<AppState>,
    caller: Caller,
    JsonBody(body): JsonBody<SilenceBody>,
) -> Result<impl IntoResponse, ApiError> {
    caller.require(Role::Operator)?;
    if body.checks.is_empty() || body.checks.len() > 200 {
        return Err(ApiError::bad_request(
            "checks: must be 1-200 characters (a name or a glob such as `web*`)",
        ));
    }
    if body.note.chars().count() > MAX_NOTE {
        return Err(ApiError::bad_request(format!(
            "note: at most {MAX_NOTE} characters"
        )));
    }
    let now = warden_store::now_ms();
    let starts_at = body.starts_at.unwrap_or(now);
    let ends_at = match (&body.duration, body.ends_at) {
        (Some(_), Some(_)) => {
            return Err(ApiError::bad_request(
                "give `duration` or `ends_at`, not both",
            ));
        }
        (Some(text), None) => {
            let duration = warden_core::duration::parse_duration(text)
                .map_err(|error| ApiError::bad_request(format!("duration: {error}")))?;
            if duration.is_zero() {
                return Err(ApiError::bad_request("duration: must be greater than zero"));
            }
            starts_at.saturating_add(i64::try_from(duration.as_millis()).unwrap_or(i64::MAX))
        }
        (None, Some(ends_at)) => ends_at,
        (None, None) => {
            return Err(ApiError::bad_request(
                "give `duration` (e.g. \"2h\") or `ends_at`",
            ));
        }
    };
    if ends_at <= starts_at || ends_at <= now {
        return Err(ApiError::bad_request(
            "the silence must end after it starts and in the future",
        ));
    }
    let by = caller_name(&state, &caller).await;
    let silence = state
        .store
        .write(move |conn| {
            rows::insert_silence(conn, &body.checks, &body.note, &by, starts_at, ends_at, now)
        })
        .await?;
    state.alerting.control(Control::SilencesChanged).await;
    Ok((StatusCode::CREATED, Json(silence_json(&silence))))
}

async fn delete_silence(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    caller.require(Role::Operator)?;
    let id = parse_id(&id, "a silence")?;
    let now = warden_store::now_ms();
    let deleted = state
        .store
        .write(move |conn| rows::delete_silence(conn, id, now))
        .await?;
    if !deleted {
        return Err(ApiError::not_found(format!("silence {id} not found")));
    }
    state.alerting.control(Control::SilencesChanged).await;
    Ok(Json(json!({ "id": id, "deleted": true })))
}

/// The alerter's counters (what `/metrics` exports as `warden_alert_*`).
async fn alerting_stats(
    State(state): State<AppState>,
    caller: Caller,
) -> Result<Json<Value>, ApiError> {
    caller.require(Role::Viewer)?;
    let stats = state.alerting.stats();
    let load = |counter: &std::sync::atomic::AtomicU64| counter.load(Ordering::Relaxed);
    Ok(Json(json!({
        "runs_evaluated": load(&stats.runs_evaluated),
        "samples_evaluated": load(&stats.samples_evaluated),
        "evaluation_nanos": load(&stats.evaluation_nanos),
        "incidents_opened": load(&stats.incidents_opened),
        "incidents_resolved": load(&stats.incidents_resolved),
        "notifications_sent": load(&stats.notifications_sent),
        "notification_attempts_failed": load(&stats.notification_attempts_failed),
        "notifications_failed": load(&stats.notifications_failed),
    })))
}

async fn list_notifiers(
    State(state): State<AppState>,
    caller: Caller,
) -> Result<Json<Value>, ApiError> {
    caller.require(Role::Viewer)?;
    let list: Vec<Value> = state
        .alerting
        .notifiers()
        .iter()
        .map(|notifier| {
            let counters = state.alerting.counters(&notifier.config.name);
            json!({
                "name": notifier.config.name,
                "kind": notifier.config.kind.name(),
                "default": notifier.config.default,
                "sent": counters.map_or(0, |c| c.sent.load(Ordering::Relaxed)),
                "failed": counters.map_or(0, |c| c.failed.load(Ordering::Relaxed)),
            })
        })
        .collect();
    Ok(Json(json!({ "notifiers": list })))
}

/// Sends a test notice through one notifier, once, and says how it went.
async fn test_notifier(
    State(state): State<AppState>,
    caller: Caller,
    Path(name): Path<String>,
) -> Result<Json<Value>, ApiError> {
    caller.require(Role::Operator)?;
    let Some(notifier) = state.alerting.notifier(&name).cloned() else {
        return Err(ApiError::not_found(format!("notifier `{name}` not found")));
    };
    let now = warden_store::now_ms();
    let mut notice = Notice {
        incident_id: None,
        event: "test".to_string(),
        rule: "test".to_string(),
        subject: name.clone(),
        check: None,
        status: "ok".to_string(),
        severity: "info".to_string(),
        summary: "a test notification from warden".to_string(),
        value: None,
        since_ms: now,
        resolved_at_ms: None,
        url: state.alerting.public_url().to_string(),
        labels: std::collections::BTreeMap::new(),
        text: String::new(),
        at_ms: now,
    };
    notice.text = format!(
        "This is a test notification from warden to `{name}`: if you can read it, the notifier works."
    );
    let started = Instant::now();
    let outcome = notifier.send(&notice).await;
    let duration_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
    Ok(Json(json!({
        "notifier": name,
        "kind": notifier.config.kind.name(),
        "delivered": outcome.is_ok(),
        "error": outcome.err(),
        "duration_ms": duration_ms,
    })))
}
