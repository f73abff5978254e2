//! Alerting through the API: incidents (list, one with its timeline, acknowledge), silences
//! (one-off maintenance windows) and notifier tests: wire types, calls and human renderers.

use reqwest::Method;
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::client::{Client, REQUEST_TIMEOUT};
use crate::error::ClientError;
use crate::render::{one_line, relative_time, table, utc_timestamp};

/// An incident (`GET /api/v1/incidents`, `GET /api/v1/incidents/{id}`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Incident {
    pub id: i64,
    pub rule: String,
    /// The check's name, or the series for a series rule.
    pub subject: String,
    pub check: Option<String>,
    /// `critical`, `warning` or `info`.
    pub severity: String,
    /// `open`, `notified`, `acknowledged` or `resolved`.
    pub state: String,
    pub status: Option<String>,
    pub summary: String,
    pub opened_at: i64,
    pub notified_at: Option<i64>,
    pub acknowledged_at: Option<i64>,
    pub acknowledged_by: Option<String>,
    pub ack_note: Option<String>,
    pub resolved_at: Option<i64>,
    #[serde(default)]
    pub held: bool,
    /// Only from `GET /api/v1/incidents/{id}`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub timeline: Vec<TimelineEntry>,
    /// Fields this client does not model, kept so `--json` prints what the hub sent.
    #[serde(flatten)]
    pub extra: serde_json::Map<String, serde_json::Value>,
}

/// One line of an incident's timeline.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TimelineEntry {
    pub at: i64,
    /// `opened`, `held`, `released`, `delivered`, `attempt_failed`, `delivery_failed`,
    /// `repeat`, `acknowledged`, `resolved`.
    pub kind: String,
    pub notifier: Option<String>,
    pub detail: String,
}

/// One page of incidents, newest first.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct IncidentPage {
    pub incidents: Vec<Incident>,
    pub next_before: Option<i64>,
}

/// A one-off maintenance window.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Silence {
    pub id: i64,
    /// A glob over check names.
    pub checks: String,
    pub note: String,
    pub created_by: String,
    pub starts_at: i64,
    pub ends_at: i64,
    #[serde(flatten)]
    pub extra: serde_json::Map<String, serde_json::Value>,
}

/// What a notifier test did (`POST /api/v1/notifiers/{name}/test`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NotifierTest {
    pub notifier: String,
    pub kind: String,
    pub delivered: bool,
    pub error: Option<String>,
    pub duration_ms: u64,
}

#[derive(Deserialize)]
struct SilencesBody {
    silences: Vec<Silence>,
}

impl Client {
    /// `GET /api/v1/incidents`: a page, newest first (only open ones with `open_only`).
    pub async fn incidents(
        &self,
        open_only: bool,
        limit: Option<u32>,
        before: Option<i64>,
    ) -> Result<IncidentPage, ClientError> {
        let mut query = Vec::new();
        if open_only {
            query.push(("open", "true".to_string()));
        }
        if let Some(limit) = limit {
            query.push(("limit", limit.to_string()));
        }
        if let Some(before) = before {
            query.push(("before", before.to_string()));
        }
        let url = self.endpoint(&["incidents"], &query);
        self.call_with(Method::GET, url, None, REQUEST_TIMEOUT)
            .await
    }

    /// `GET /api/v1/incidents/{id}`, with its timeline.
    pub async fn incident(&self, id: i64) -> Result<Incident, ClientError> {
        let url = self.endpoint(&["incidents", &id.to_string()], &[]);
        self.call_with(Method::GET, url, None, REQUEST_TIMEOUT)
            .await
    }

    /// `POST /api/v1/incidents/{id}/ack`: stops re-notification; the hub records who and the note.
    pub async fn acknowledge(&self, id: i64, note: &str) -> Result<Incident, ClientError> {
        let url = self.endpoint(&["incidents", &id.to_string(), "ack"], &[]);
        let body = json!({ "note": note });
        self.call_with(Method::POST, url, Some(&body), REQUEST_TIMEOUT)
            .await
    }

    /// `GET /api/v1/silences` (also the ones that are over with `all`).
    pub async fn silences(&self, all: bool) -> Result<Vec<Silence>, ClientError> {
        let query = if all {
            vec![("all", "true".to_string())]
        } else {
            Vec::new()
        };
        let url = self.endpoint(&["silences"], &query);
        let body: SilencesBody = self
            .call_with(Method::GET, url, None, REQUEST_TIMEOUT)
            .await?;
        Ok(body.silences)
    }

    /// `POST /api/v1/silences`: holds notifications of the checks matching `checks` (a glob)
    /// from now for `duration` (e.g. `2h`).
    pub async fn create_silence(
        &self,
        checks: &str,
        duration: &str,
        note: &str,
    ) -> Result<Silence, ClientError> {
        let url = self.endpoint(&["silences"], &[]);
        let body = json!({ "checks": checks, "duration": duration, "note": note });
        self.call_with(Method::POST, url, Some(&body), REQUEST_TIMEOUT)
            .await
    }

    /// `DELETE /api/v1/silences/{id}`: ends a silence now.
    pub async fn delete_silence(&self, id: i64) -> Result<serde_json::Value, ClientError> {
        let url = self.endpoint(&["silences", &id.to_string()], &[]);
        self.call_with(Method::DELETE, url, None, REQUEST_TIMEOUT)
            .await
    }

    /// `POST /api/v1/notifiers/{name}/test`: the hub sends a test message and says how it went.
    pub async fn test_notifier(&self, name: &str) -> Result<NotifierTest, ClientError> {
        let url = self.endpoint(&["notifiers", name, "test"], &[]);
        self.call_with(Method::POST, url, None, REQUEST_TIMEOUT)
            .await
    }
}

/// `ID  STATE  SEVERITY  RULE  SUBJECT  OPENED  SUMMARY`; `no incidents` when none.
pub fn render_incidents(incidents: &[Incident], now_ms: i64) -> String {
    if incidents.is_empty() {
        return "no incidents\n".to_string();
    }
    let rows: Vec<Vec<String>> = incidents
        .iter()
        .map(|incident| {
            vec![
                incident.id.to_string(),
                incident.state.to_uppercase(),
                incident.severity.clone(),
                one_line(&incident.rule),
                one_line(&incident.subject),
                relative_time(incident.opened_at, now_ms),
                one_line(&incident.summary),
            ]
        })
        .collect();
    table(
        &[
            "ID", "STATE", "SEVERITY", "RULE", "SUBJECT", "OPENED", "SUMMARY",
        ],
        &rows,
    )
}

/// One incident: its fields, then its timeline in UTC.
pub fn render_incident(incident: &Incident, now_ms: i64) -> String {
    let mut out = format!(
        "incident {}: {} on {} ({}, {})\n",
        incident.id, incident.rule, incident.subject, incident.state, incident.severity
    );
    out.push_str(&format!("summary:  {}\n", one_line(&incident.summary)));
    out.push_str(&format!(
        "opened:   {} ({})\n",
        utc_timestamp(incident.opened_at),
        relative_time(incident.opened_at, now_ms)
    ));
    if let Some(at) = incident.acknowledged_at {
        out.push_str(&format!(
            "acked:    {} by {}{}\n",
            utc_timestamp(at),
            incident.acknowledged_by.as_deref().unwrap_or("?"),
            incident
                .ack_note
                .as_deref()
                .filter(|note| !note.is_empty())
                .map(|note| format!(": {}", one_line(note)))
                .unwrap_or_default()
        ));
    }
    if let Some(at) = incident.resolved_at {
        out.push_str(&format!("resolved: {}\n", utc_timestamp(at)));
    }
    if !incident.timeline.is_empty() {
        out.push_str("timeline:\n");
        for entry in &incident.timeline {
            let notifier = entry
                .notifier
                .as_deref()
                .map(|name| format!(" [{name}]"))
                .unwrap_or_default();
            out.push_str(&format!(
                "  {}  {}{}  {}\n",
                utc_timestamp(entry.at),
                entry.kind,
                notifier,
                one_line(&entry.detail)
            ));
        }
    }
    out
}

/// `ID  CHECKS  UNTIL  BY  NOTE`; `no silences` when none.
pub fn render_silences(silences: &[Silence], now_ms: i64) -> String {
    if silences.is_empty() {
        return "no silences\n".to_string();
    }
    let rows: Vec<Vec<String>> = silences
        .iter()
        .map(|silence| {
            vec![
                silence.id.to_string(),
                one_line(&silence.checks),
                if silence.ends_at > now_ms {
                    format!(
                        "{} (in {})",
                        utc_timestamp(silence.ends_at),
                        crate::render::short_duration(
                            u64::try_from(silence.ends_at - now_ms).unwrap_or(0)
                        )
                    )
                } else {
                    format!("{} (over)", utc_timestamp(silence.ends_at))
                },
                one_line(&silence.created_by),
                one_line(&silence.note),
            ]
        })
        .collect();
    table(&["ID", "CHECKS", "UNTIL", "BY", "NOTE"], &rows)
}

/// `delivered to ops (webhook) in 12ms` / `NOT delivered to ops (webhook): HTTP 503`.
pub fn render_notifier_test(test: &NotifierTest) -> String {
    if test.delivered {
        format!(
            "delivered to {} ({}) in {}ms\n",
            test.notifier, test.kind, test.duration_ms
        )
    } else {
        format!(
            "NOT delivered to {} ({}): {}\n",
            test.notifier,
            test.kind,
            test.error.as_deref().unwrap_or("unknown error")
        )
    }
}
