//! Alerting endpoints under `/api/v1`: incidents (list, get with timeline, acknowledge),
//! silences (one-off maintenance windows: list, create, delete) and notifiers (list with their
//! counters, send a test message).

use std::sync::atomic::Ordering;
use std::time::Instant;

use axum::Json;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::routes;
use warden_store::alerting::{self as rows, AckRefused, IncidentRow, SilenceRow};

use super::Control;
use super::notify::Notice;
use crate::AppState;
use crate::api::{JsonBody, PathParam, QueryParams};
use crate::auth::{Caller, Role};
use crate::bus::EventKind;
use crate::error::{ApiError, ErrorBody, ErrorCode};
use crate::openapi::DocumentedRouter;

/// Largest body these endpoints accept.
const BODY_LIMIT: usize = 16 * 1024;
/// Longest note kept with an acknowledgement or a silence.
const MAX_NOTE: usize = 2_000;

pub(crate) fn routes() -> DocumentedRouter {
    DocumentedRouter::new()
        .routes(routes!(list_incidents))
        .routes(routes!(get_incident))
        .routes(routes!(acknowledge))
        .routes(routes!(list_silences, create_silence))
        .routes(routes!(delete_silence))
        .routes(routes!(alerting_stats))
        .routes(routes!(list_notifiers))
        .routes(routes!(test_notifier))
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

/// An incident as the API shows it. Times are ms since epoch.
#[derive(Serialize, ToSchema)]
pub(crate) struct IncidentView {
    id: i64,
    rule: String,
    /// What the incident is about: a check's name, or a series.
    subject: String,
    check: Option<String>,
    severity: String,
    /// `open`, `notified`, `acknowledged` or `resolved`.
    state: String,
    status: Option<String>,
    summary: String,
    value: Option<f64>,
    message: String,
    labels: Value,
    opened_at: i64,
    notified_at: Option<i64>,
    acknowledged_at: Option<i64>,
    acknowledged_by: Option<String>,
    ack_note: Option<String>,
    resolved_at: Option<i64>,
    resolved_status: Option<String>,
    resolved_summary: Option<String>,
    /// Notifications are held (a maintenance window or silence).
    held: bool,
    url: String,
    /// Only from `GET /api/v1/incidents/{id}`.
    #[serde(skip_serializing_if = "Option::is_none")]
    timeline: Option<Vec<TimelineEntry>>,
    /// Only from `GET /api/v1/incidents/{id}`.
    #[serde(skip_serializing_if = "Option::is_none")]
    deliveries: Option<Vec<DeliveryView>>,
}

/// One line of an incident's timeline.
#[derive(Serialize, ToSchema)]
pub(crate) struct TimelineEntry {
    at: i64,
    kind: String,
    notifier: Option<String>,
    detail: String,
}

/// One notification of an incident.
#[derive(Serialize, ToSchema)]
pub(crate) struct DeliveryView {
    id: i64,
    notifier: String,
    /// `opened`, `repeat-N`, `resolved` or `test`.
    event: String,
    /// `held`, `pending`, `sent`, `failed` or `dropped`.
    state: String,
    attempts: u32,
    created_at: i64,
    sent_at: Option<i64>,
    last_error: Option<String>,
}

impl IncidentView {
    pub(crate) fn of(incident: &IncidentRow, url: String) -> IncidentView {
        IncidentView {
            id: incident.id,
            rule: incident.rule.clone(),
            subject: incident.subject.clone(),
            check: incident.check_name.clone(),
            severity: incident.severity.clone(),
            state: incident.state.clone(),
            status: incident.status.clone(),
            summary: incident.summary.clone(),
            value: incident.value,
            message: incident.message.clone(),
            labels: serde_json::from_str::<Value>(&incident.labels).unwrap_or_else(|_| json!({})),
            opened_at: incident.opened_at,
            notified_at: incident.notified_at,
            acknowledged_at: incident.acknowledged_at,
            acknowledged_by: incident.acknowledged_by.clone(),
            ack_note: incident.ack_note.clone(),
            resolved_at: incident.resolved_at,
            resolved_status: incident.resolved_status.clone(),
            resolved_summary: incident.resolved_summary.clone(),
            held: incident.held,
            url,
            timeline: None,
            deliveries: None,
        }
    }
}

/// A one-off maintenance window. Times are ms since epoch.
#[derive(Serialize, ToSchema)]
pub(crate) struct SilenceView {
    id: i64,
    /// A glob over check names.
    checks: String,
    note: String,
    created_by: String,
    starts_at: i64,
    ends_at: i64,
    created_at: i64,
}

impl SilenceView {
    fn of(silence: &SilenceRow) -> SilenceView {
        SilenceView {
            id: silence.id,
            checks: silence.checks.clone(),
            note: silence.note.clone(),
            created_by: silence.created_by.clone(),
            starts_at: silence.starts_at,
            ends_at: silence.ends_at,
            created_at: silence.created_at,
        }
    }
}

#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(crate) struct IncidentsQuery {
    /// Only incidents not resolved yet.
    #[serde(default)]
    open: Option<bool>,
    /// Page size, 1-1000 (default 50).
    #[serde(default)]
    #[param(minimum = 1, maximum = 1000)]
    limit: Option<usize>,
    /// An incident id: the page starts below it (newest first).
    #[serde(default)]
    before: Option<i64>,
}

#[derive(Serialize, ToSchema)]
pub(crate) struct IncidentsPage {
    incidents: Vec<IncidentView>,
    /// Pass as `before` for the next page; null on the last.
    next_before: Option<i64>,
}

#[utoipa::path(
    get,
    path = "/api/v1/incidents",
    tag = "alerting",
    operation_id = "list_incidents",
    summary = "List incidents, newest first",
    params(IncidentsQuery),
    responses(
        (status = 200, description = "A page of incidents", body = IncidentsPage),
        (status = 400, description = "A bad or unknown query parameter", body = ErrorBody),
        crate::openapi::AuthErrors,
    ),
    security(("bearer" = ["viewer"]))
)]
async fn list_incidents(
    State(state): State<AppState>,
    caller: Caller,
    QueryParams(query): QueryParams<IncidentsQuery>,
) -> Result<Json<IncidentsPage>, ApiError> {
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
    let incidents = incidents
        .iter()
        .map(|incident| IncidentView::of(incident, state.alerting.incident_url(incident.id)))
        .collect();
    Ok(Json(IncidentsPage {
        incidents,
        next_before,
    }))
}

#[utoipa::path(
    get,
    path = "/api/v1/incidents/{id}",
    tag = "alerting",
    operation_id = "get_incident",
    summary = "An incident with its timeline and notifications",
    params(("id" = i64, Path, description = "An incident id (a positive integer)", minimum = 1)),
    responses(
        (status = 200, description = "The incident", body = IncidentView),
        (status = 400, description = "A bad incident id", body = ErrorBody),
        crate::openapi::AuthErrors,
        (status = 404, description = "No such incident", body = ErrorBody),
    ),
    security(("bearer" = ["viewer"]))
)]
async fn get_incident(
    State(state): State<AppState>,
    caller: Caller,
    PathParam(id): PathParam<String>,
) -> Result<Json<IncidentView>, ApiError> {
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
    let mut view = IncidentView::of(&incident, state.alerting.incident_url(id));
    view.timeline = Some(
        timeline
            .into_iter()
            .map(|event| TimelineEntry {
                at: event.at,
                kind: event.kind,
                notifier: event.notifier,
                detail: event.detail,
            })
            .collect(),
    );
    view.deliveries = Some(
        deliveries
            .into_iter()
            .map(|delivery| DeliveryView {
                id: delivery.id,
                notifier: delivery.notifier,
                event: delivery.event,
                state: delivery.state,
                attempts: delivery.attempts,
                created_at: delivery.created_at,
                sent_at: delivery.sent_at,
                last_error: delivery.last_error,
            })
            .collect(),
    );
    Ok(Json(view))
}

/// Who the caller is, for the record: the user's name, or the token's name and id.
async fn caller_name(state: &AppState, caller: &Caller) -> String {
    let (sql, id) = match caller.user_id {
        Some(user_id) => ("SELECT name FROM users WHERE id = ?1", user_id),
        None => ("SELECT name FROM tokens WHERE id = ?1", caller.token_id),
    };
    let name = state
        .store
        .read(move |conn| {
            use warden_store::OptionalExtension;
            Ok(conn
                .prepare_cached(sql)?
                .query_row([id], |row| row.get::<_, String>(0))
                .optional()?)
        })
        .await
        .ok()
        .flatten();
    match (caller.user_id, name) {
        (Some(_), Some(name)) => name,
        (Some(user_id), None) => format!("user {user_id}"),
        (None, Some(name)) => format!("{name} (token {id})"),
        (None, None) => format!("token {id}"),
    }
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct AckBody {
    /// Kept with the acknowledgement (at most 2000 characters).
    #[serde(default)]
    #[schema(max_length = 2000)]
    note: String,
}

#[utoipa::path(
    post,
    path = "/api/v1/incidents/{id}/ack",
    tag = "alerting",
    operation_id = "acknowledge_incident",
    summary = "Acknowledge an incident",
    description = "Stops re-notification; the hub records who and the note. The body is optional.",
    params(("id" = i64, Path, description = "An incident id (a positive integer)", minimum = 1)),
    request_body(content = Option<AckBody>, description = "Optional: a note"),
    responses(
        (status = 200, description = "The incident, acknowledged", body = IncidentView),
        (status = 400, description = "A bad incident id, malformed JSON, an unknown field, or a note too long", body = ErrorBody),
        crate::openapi::AuthErrors,
        (status = 404, description = "No such incident", body = ErrorBody),
        (status = 409, description = "The incident is already resolved", body = ErrorBody),
        (status = 413, description = "The request body is too large", body = ErrorBody),
    ),
    security(("bearer" = ["operator"]))
)]
async fn acknowledge(
    State(state): State<AppState>,
    caller: Caller,
    PathParam(id): PathParam<String>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<IncidentView>, ApiError> {
    caller.require(Role::Operator)?;
    let id = parse_id(&id, "an incident")?;
    let body = body.map_err(|rejection| {
        if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
            ApiError::new(ErrorCode::PayloadTooLarge, "request body too large")
        } else {
            ApiError::bad_request(format!(
                "cannot read request body: {}",
                rejection.body_text()
            ))
        }
    })?;
    // The body is optional: `{"note": "..."}`, or nothing (or `null`).
    let note = if body.iter().all(u8::is_ascii_whitespace) {
        String::new()
    } else {
        serde_json::from_slice::<Option<AckBody>>(&body)
            .map_err(|error| ApiError::bad_request(format!("invalid request body: {error}")))?
            .map(|body| body.note)
            .unwrap_or_default()
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
    Ok(Json(IncidentView::of(
        &incident,
        state.alerting.incident_url(id),
    )))
}

#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(crate) struct SilencesQuery {
    /// Also the ones that are over.
    #[serde(default)]
    all: Option<bool>,
}

#[derive(Serialize, ToSchema)]
pub(crate) struct Silences {
    silences: Vec<SilenceView>,
}

#[utoipa::path(
    get,
    path = "/api/v1/silences",
    tag = "alerting",
    operation_id = "list_silences",
    summary = "List silences",
    params(SilencesQuery),
    responses(
        (status = 200, description = "Current and future silences (all with `all`)", body = Silences),
        (status = 400, description = "A bad or unknown query parameter", body = ErrorBody),
        crate::openapi::AuthErrors,
    ),
    security(("bearer" = ["viewer"]))
)]
async fn list_silences(
    State(state): State<AppState>,
    caller: Caller,
    QueryParams(query): QueryParams<SilencesQuery>,
) -> Result<Json<Silences>, ApiError> {
    caller.require(Role::Viewer)?;
    let all = query.all.unwrap_or(false);
    let now = warden_store::now_ms();
    let silences = state
        .store
        .read(move |conn| rows::list_silences(conn, all, now))
        .await?;
    Ok(Json(Silences {
        silences: silences.iter().map(SilenceView::of).collect(),
    }))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct SilenceBody {
    /// A glob over check names, e.g. `web*` (1-200 characters).
    #[schema(min_length = 1, max_length = 200)]
    checks: String,
    /// How long, e.g. `2h` (from `starts_at`, or now).
    #[serde(default)]
    duration: Option<String>,
    /// Absolute end (ms since epoch), instead of `duration`.
    #[serde(default)]
    #[schema(minimum = 0, maximum = 253_402_300_799_999_i64)]
    ends_at: Option<i64>,
    /// When it starts (ms since epoch); default now.
    #[serde(default)]
    #[schema(minimum = 0, maximum = 253_402_300_799_999_i64)]
    starts_at: Option<i64>,
    /// At most 2000 characters.
    #[serde(default)]
    #[schema(max_length = 2000)]
    note: String,
}

#[utoipa::path(
    post,
    path = "/api/v1/silences",
    tag = "alerting",
    operation_id = "create_silence",
    summary = "Create a silence",
    description = "Holds the notifications of the checks matching `checks` from `starts_at` \
                   (default now) for `duration` or until `ends_at`.",
    request_body = SilenceBody,
    responses(
        (status = 201, description = "The silence", body = SilenceView),
        (status = 400, description = "Malformed JSON, a wrong or unknown field, or a bad glob, duration or time", body = ErrorBody),
        crate::openapi::AuthErrors,
        (status = 413, description = "The request body is too large", body = ErrorBody),
    ),
    security(("bearer" = ["operator"]))
)]
async fn create_silence(
    State(state): State<AppState>,
    caller: Caller,
    JsonBody(body): JsonBody<SilenceBody>,
) -> Result<(StatusCode, Json<SilenceView>), ApiError> {
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
    for (name, time) in [("starts_at", body.starts_at), ("ends_at", body.ends_at)] {
        if time.is_some_and(|time| !(0..=crate::query::MAX_TIME_MS).contains(&time)) {
            return Err(ApiError::bad_request(format!(
                "{name}: must be a time in ms since the epoch, between 0 and {}",
                crate::query::MAX_TIME_MS
            )));
        }
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
            starts_at
                .saturating_add(i64::try_from(duration.as_millis()).unwrap_or(i64::MAX))
                .min(crate::query::MAX_TIME_MS)
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
    Ok((StatusCode::CREATED, Json(SilenceView::of(&silence))))
}

#[derive(Serialize, ToSchema)]
pub(crate) struct SilenceDeleted {
    id: i64,
    /// Always true.
    deleted: bool,
}

#[utoipa::path(
    delete,
    path = "/api/v1/silences/{id}",
    tag = "alerting",
    operation_id = "delete_silence",
    summary = "End a silence now",
    params(("id" = i64, Path, description = "A silence id (a positive integer)", minimum = 1)),
    responses(
        (status = 200, description = "Ended", body = SilenceDeleted),
        (status = 400, description = "A bad silence id", body = ErrorBody),
        crate::openapi::AuthErrors,
        (status = 404, description = "No such silence", body = ErrorBody),
    ),
    security(("bearer" = ["operator"]))
)]
async fn delete_silence(
    State(state): State<AppState>,
    caller: Caller,
    PathParam(id): PathParam<String>,
) -> Result<Json<SilenceDeleted>, ApiError> {
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
    Ok(Json(SilenceDeleted { id, deleted: true }))
}

/// The alerter's counters since the hub started.
#[derive(Serialize, ToSchema)]
pub(crate) struct AlertingStats {
    runs_evaluated: u64,
    samples_evaluated: u64,
    evaluation_nanos: u64,
    incidents_opened: u64,
    incidents_resolved: u64,
    notifications_sent: u64,
    /// Delivery attempts that failed (each retry counts).
    notification_attempts_failed: u64,
    /// Notifications given up on.
    notifications_failed: u64,
}

/// The alerter's counters (what `/metrics` exports as `warden_alert_*`).
#[utoipa::path(
    get,
    path = "/api/v1/alerting",
    tag = "alerting",
    operation_id = "alerting_stats",
    summary = "The alerter's counters",
    responses(
        (status = 200, description = "Counters since the hub started", body = AlertingStats),
        crate::openapi::AuthErrors,
    ),
    security(("bearer" = ["viewer"]))
)]
async fn alerting_stats(
    State(state): State<AppState>,
    caller: Caller,
) -> Result<Json<AlertingStats>, ApiError> {
    caller.require(Role::Viewer)?;
    let stats = state.alerting.stats();
    let load = |counter: &std::sync::atomic::AtomicU64| counter.load(Ordering::Relaxed);
    Ok(Json(AlertingStats {
        runs_evaluated: load(&stats.runs_evaluated),
        samples_evaluated: load(&stats.samples_evaluated),
        evaluation_nanos: load(&stats.evaluation_nanos),
        incidents_opened: load(&stats.incidents_opened),
        incidents_resolved: load(&stats.incidents_resolved),
        notifications_sent: load(&stats.notifications_sent),
        notification_attempts_failed: load(&stats.notification_attempts_failed),
        notifications_failed: load(&stats.notifications_failed),
    }))
}

#[derive(Serialize, ToSchema)]
pub(crate) struct Notifiers {
    notifiers: Vec<NotifierView>,
}

/// A configured notifier and its counters since the hub started.
#[derive(Serialize, ToSchema)]
pub(crate) struct NotifierView {
    name: String,
    /// `webhook`, `slack`, `email`, ...
    kind: &'static str,
    /// Gets the incidents of rules that name no notifier.
    default: bool,
    sent: u64,
    failed: u64,
}

#[utoipa::path(
    get,
    path = "/api/v1/notifiers",
    tag = "alerting",
    operation_id = "list_notifiers",
    summary = "List notifiers",
    responses(
        (status = 200, description = "The configured notifiers", body = Notifiers),
        crate::openapi::AuthErrors,
    ),
    security(("bearer" = ["viewer"]))
)]
async fn list_notifiers(
    State(state): State<AppState>,
    caller: Caller,
) -> Result<Json<Notifiers>, ApiError> {
    caller.require(Role::Viewer)?;
    let notifiers = state
        .alerting
        .notifiers()
        .iter()
        .map(|notifier| {
            let counters = state.alerting.counters(&notifier.config.name);
            NotifierView {
                name: notifier.config.name.clone(),
                kind: notifier.config.kind.name(),
                default: notifier.config.default,
                sent: counters.map_or(0, |c| c.sent.load(Ordering::Relaxed)),
                failed: counters.map_or(0, |c| c.failed.load(Ordering::Relaxed)),
            }
        })
        .collect();
    Ok(Json(Notifiers { notifiers }))
}

/// How a test notification went.
#[derive(Serialize, ToSchema)]
pub(crate) struct NotifierTest {
    notifier: String,
    kind: &'static str,
    delivered: bool,
    /// Why it was not delivered.
    error: Option<String>,
    duration_ms: u64,
}

/// Sends a test notice through one notifier, once, and says how it went.
#[utoipa::path(
    post,
    path = "/api/v1/notifiers/{name}/test",
    tag = "alerting",
    operation_id = "test_notifier",
    summary = "Send a test notification",
    description = "Sends one test message through the notifier now and says how it went (a \
                   failed delivery is still a 200: `delivered` is false, `error` says why). \
                   Any request body is ignored.",
    params(("name" = String, Path, description = "The notifier's name")),
    responses(
        (status = 200, description = "What happened", body = NotifierTest),
        (status = 400, description = "A name that is not UTF-8", body = ErrorBody),
        crate::openapi::AuthErrors,
        (status = 404, description = "No such notifier", body = ErrorBody),
    ),
    security(("bearer" = ["operator"]))
)]
async fn test_notifier(
    State(state): State<AppState>,
    caller: Caller,
    PathParam(name): PathParam<String>,
) -> Result<Json<NotifierTest>, ApiError> {
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
    Ok(Json(NotifierTest {
        notifier: name,
        kind: notifier.config.kind.name(),
        delivered: outcome.is_ok(),
        error: outcome.err(),
        duration_ms,
    }))
}
