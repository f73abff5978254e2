//! Alerting: the alerter (rules → incidents), the delivery worker (incidents → notifiers) and
//! their API. The alerter reads every `RunFinished` losslessly from its own bounded bus tap
//! (back-pressure like the recorder's), evaluates the rules in [`engine`], keeps incidents and
//! their timeline in the store and queues notifications in the durable `deliveries` table; the
//! delivery worker sends them with a per-notifier rate limit and retries with backoff, and
//! records every attempt. Incidents and notifications are bus events too, for live clients.

pub(crate) mod alerter;
pub(crate) mod api;
#[doc(hidden)]
pub mod bench;
pub(crate) mod delivery;
pub(crate) mod engine;
pub(crate) mod maintenance;
pub(crate) mod notify;

#[cfg(test)]
mod tests;

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use tokio::sync::{Notify, mpsc};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use warden_core::config::{Config, RuleConfig};
use warden_store::Store;
use warden_store::alerting::IncidentRow;

use crate::bus::{Bus, Event};
use engine::{CheckInfo, Engine};
use maintenance::Maintenance;
use notify::{DEFAULT_MESSAGE, Notice, Notifier};

/// Alerting counters, for `/metrics` (`warden_alert_*`) and tests.
#[derive(Debug, Default)]
pub struct AlertStats {
    /// `RunFinished` events evaluated.
    pub runs_evaluated: AtomicU64,
    /// Samples evaluated against series rules.
    pub samples_evaluated: AtomicU64,
    /// Nanoseconds spent evaluating rules (the alerter's CPU, store writes excluded).
    pub evaluation_nanos: AtomicU64,
    pub incidents_opened: AtomicU64,
    pub incidents_resolved: AtomicU64,
    /// Notifications delivered.
    pub notifications_sent: AtomicU64,
    /// Delivery attempts that failed (each retry counts).
    pub notification_attempts_failed: AtomicU64,
    /// Notifications that failed for good after every attempt.
    pub notifications_failed: AtomicU64,
}

/// Per notifier: delivered and finally failed notifications.
#[derive(Debug, Default)]
pub(crate) struct NotifierCounters {
    pub(crate) sent: AtomicU64,
    pub(crate) failed: AtomicU64,
}

/// What the API tells the alerter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Control {
    /// Stop re-notifying this incident.
    Acknowledged(i64),
    /// A silence was added or deleted: reload them.
    SilencesChanged,
}

/// The alerting side shared with request handlers; cheap to clone.
#[derive(Clone)]
pub(crate) struct Alerting {
    inner: Arc<Inner>,
}

struct Inner {
    /// In config order.
    notifiers: Vec<Arc<Notifier>>,
    counters: HashMap<String, NotifierCounters>,
    rules: HashMap<String, RuleConfig>,
    control: mpsc::Sender<Control>,
    stats: Arc<AlertStats>,
    public_url: Arc<str>,
    /// Wakes the delivery worker when something was queued.
    wake_delivery: Notify,
}

impl std::fmt::Debug for Alerting {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Alerting").finish_non_exhaustive()
    }
}

/// What the alerter task takes when the hub starts serving.
pub(crate) struct AlerterParts {
    engine: Engine,
    events: mpsc::Receiver<Arc<Event>>,
    control: mpsc::Receiver<Control>,
}

impl Alerting {
    /// Builds the notifiers (an unusable one, such as an unreadable `ca_file`, is an error) and
    /// the rule engine for `config`; `events` is the alerter's bus tap.
    pub(crate) fn new(
        config: &Config,
        public_url: Arc<str>,
        events: mpsc::Receiver<Arc<Event>>,
    ) -> Result<(Alerting, AlerterParts), String> {
        let http = notify::http_client()?;
        let mut notifiers = Vec::new();
        let mut counters = HashMap::new();
        for notifier in &config.notifiers {
            let built = Notifier::build(notifier, http.clone())
                .map_err(|error| format!("notifier `{}`: {error}", notifier.name))?;
            notifiers.push(Arc::new(built));
            counters.insert(notifier.name.clone(), NotifierCounters::default());
        }
        let checks: HashMap<Arc<str>, CheckInfo> = config
            .checks
            .iter()
            .map(|check| {
                (
                    Arc::from(check.name.as_str()),
                    CheckInfo {
                        labels: check.labels.clone(),
                    },
                )
            })
            .collect();
        let engine = Engine::new(
            &config.rules,
            &config.notifiers,
            checks,
            Maintenance::new(&config.maintenance),
        );
        let mut rules: HashMap<String, RuleConfig> = config
            .rules
            .iter()
            .map(|rule| (rule.name.clone(), rule.clone()))
            .collect();
        rules
            .entry(warden_core::config::DEFAULT_RULE.to_string())
            .or_insert_with(RuleConfig::default_rule);
        let (control_tx, control_rx) = mpsc::channel(256);
        let alerting = Alerting {
            inner: Arc::new(Inner {
                notifiers,
                counters,
                rules,
                control: control_tx,
                stats: Arc::new(AlertStats::default()),
                public_url,
                wake_delivery: Notify::new(),
            }),
        };
        Ok((
            alerting,
            AlerterParts {
                engine,
                events,
                control: control_rx,
            },
        ))
    }

    /// Starts the alerter and the delivery worker; both stop when `stop` fires (the alerter
    /// after evaluating what is already queued, the worker after its sends in flight).
    pub(crate) fn spawn(
        &self,
        parts: AlerterParts,
        tracker: &TaskTracker,
        store: Store,
        bus: Bus,
        stop: CancellationToken,
    ) {
        tracker.spawn(alerter::run(
            self.clone(),
            parts.engine,
            store.clone(),
            bus.clone(),
            parts.events,
            parts.control,
            stop.clone(),
        ));
        tracker.spawn(delivery::run(self.clone(), store, bus, stop));
    }

    pub fn stats(&self) -> &Arc<AlertStats> {
        &self.inner.stats
    }

    pub(crate) fn notifiers(&self) -> &[Arc<Notifier>] {
        &self.inner.notifiers
    }

    pub(crate) fn notifier(&self, name: &str) -> Option<&Arc<Notifier>> {
        self.inner
            .notifiers
            .iter()
            .find(|notifier| notifier.config.name == name)
    }

    pub(crate) fn counters(&self, name: &str) -> Option<&NotifierCounters> {
        self.inner.counters.get(name)
    }

    pub(crate) fn public_url(&self) -> &str {
        &self.inner.public_url
    }

    pub(crate) fn wake_delivery(&self) {
        self.inner.wake_delivery.notify_one();
    }

    /// Tells the alerter something changed; waits for room (the channel is small and the
    /// alerter reads it promptly).
    pub(crate) async fn control(&self, message: Control) {
        if self.inner.control.send(message).await.is_err() {
            tracing::debug!(?message, "alerter is not running");
        }
    }

    pub(crate) fn count(&self, counter: fn(&AlertStats) -> &AtomicU64) {
        counter(&self.inner.stats).fetch_add(1, Ordering::Relaxed);
    }

    /// The link to an incident in notifications.
    pub(crate) fn incident_url(&self, id: i64) -> String {
        format!("{}/api/v1/incidents/{id}", self.inner.public_url)
    }

    /// The notice for `event` (`opened`, `repeat-N`, `resolved`) of a stored incident.
    pub(crate) fn notice(&self, incident: &IncidentRow, event: &str, now: i64) -> Notice {
        let resolved = event == "resolved";
        let event_name = if event.starts_with("repeat") {
            "repeat"
        } else {
            event
        };
        let labels = serde_json::from_str(&incident.labels).unwrap_or_default();
        let (status, summary) = if resolved {
            (
                incident
                    .resolved_status
                    .clone()
                    .unwrap_or_else(|| "ok".to_string()),
                incident
                    .resolved_summary
                    .clone()
                    .unwrap_or_else(|| incident.summary.clone()),
            )
        } else {
            (
                incident.status.clone().unwrap_or_default(),
                incident.summary.clone(),
            )
        };
        let mut notice = Notice {
            incident_id: Some(incident.id),
            event: event_name.to_string(),
            rule: incident.rule.clone(),
            subject: incident.subject.clone(),
            check: incident.check_name.clone(),
            status,
            severity: incident.severity.clone(),
            summary,
            value: incident.value,
            since_ms: incident.opened_at,
            resolved_at_ms: incident.resolved_at,
            url: self.incident_url(incident.id),
            labels,
            text: String::new(),
            at_ms: now,
        };
        let template = self
            .inner
            .rules
            .get(&incident.rule)
            .and_then(|rule| rule.message.clone())
            .unwrap_or_else(|| DEFAULT_MESSAGE.to_string());
        notice.text = notice.render(&template);
        notice
    }

    /// The message stored with an incident when it opens (its link is not known yet).
    pub(crate) fn opening_message(&self, rule: &str, notice: &Notice) -> String {
        let template = self
            .inner
            .rules
            .get(rule)
            .and_then(|rule| rule.message.clone())
            .unwrap_or_else(|| DEFAULT_MESSAGE.to_string());
        notice.render(&template)
    }
}

/// The live wire fields of an alerting event (the WebSocket's `event` message).
pub(crate) fn wire_fields(kind: &crate::bus::EventKind) -> serde_json::Value {
    use crate::bus::EventKind;
    use serde_json::json;
    match kind {
        EventKind::IncidentOpened {
            incident_id,
            rule,
            subject,
            check,
            severity,
            status,
            summary,
            held,
        } => json!({
            "incident_id": incident_id, "rule": rule, "subject": subject, "check": check,
            "severity": severity, "status": status, "summary": summary, "held": held,
        }),
        EventKind::IncidentAcknowledged {
            incident_id,
            by,
            note,
        } => json!({ "incident_id": incident_id, "by": by, "note": note }),
        EventKind::IncidentResolved {
            incident_id,
            rule,
            subject,
            status,
            summary,
        } => json!({
            "incident_id": incident_id, "rule": rule, "subject": subject, "status": status,
            "summary": summary,
        }),
        EventKind::NotificationSent {
            incident_id,
            notifier,
            event,
            attempts,
        } => json!({
            "incident_id": incident_id, "notifier": notifier, "event": event, "attempts": attempts,
        }),
        EventKind::NotificationFailed {
            incident_id,
            notifier,
            event,
            attempts,
            error,
            will_retry,
        } => json!({
            "incident_id": incident_id, "notifier": notifier, "event": event, "attempts": attempts,
            "error": error, "will_retry": will_retry,
        }),
        _ => json!({}),
    }
}
