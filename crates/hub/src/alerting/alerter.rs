//! The alerter task: reads the bus tap (every `RunFinished`, never dropped), feeds the engine,
//! and carries out its actions in the store (incidents, timeline, queued deliveries) in one
//! write per batch, then announces them on the bus and wakes the delivery worker. A clock tick
//! each second drives `repeat` and the release of held notifications.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use warden_store::Store;
use warden_store::alerting::{self as rows, NewIncident};

use super::engine::{Action, Engine, IncidentKey, RunResult, SampleIn};
use super::notify::Notice;
use super::{Alerting, Control};
use crate::bus::{Bus, Event, EventKind};

/// Most events evaluated before their actions are written.
const MAX_BATCH: usize = 1_024;

#[allow(clippy::too_many_arguments)] // reason: the task's whole context, passed once
pub(crate) async fn run(
    alerting: Alerting,
    mut engine: Engine,
    store: Store,
    bus: Bus,
    mut events: mpsc::Receiver<Arc<Event>>,
    mut control: mpsc::Receiver<Control>,
    stop: CancellationToken,
) {
    restore(&alerting, &mut engine, &store).await;
    reload_silences(&mut engine, &store).await;
    let mut cx = Cx {
        alerting,
        store,
        bus,
    };
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut batch: Vec<Arc<Event>> = Vec::with_capacity(MAX_BATCH);
    loop {
        // Every arm is cancel-safe: `recv` and `tick` lose nothing when another arm wins.
        tokio::select! {
            biased;
            received = events.recv() => {
                let Some(first) = received else { break };
                batch.push(first);
                while batch.len() < MAX_BATCH {
                    match events.try_recv() {
                        Ok(event) => batch.push(event),
                        Err(_) => break,
                    }
                }
                let actions = cx.evaluate(&mut engine, &batch);
                batch.clear();
                cx.execute(&mut engine, actions).await;
            }
            Some(message) = control.recv() => match message {
                Control::Acknowledged(id) => engine.acknowledge(id),
                Control::SilencesChanged => {
                    reload_silences(&mut engine, &cx.store).await;
                    let mut actions = Vec::new();
                    engine.tick(warden_store::now_ms(), &mut actions);
                    cx.execute(&mut engine, actions).await;
                }
            },
            _ = tick.tick() => {
                let mut actions = Vec::new();
                engine.tick(warden_store::now_ms(), &mut actions);
                cx.execute(&mut engine, actions).await;
            }
            () = stop.cancelled() => {
                // Evaluate what is already queued, then stop (publishers see a closed tap).
                while let Ok(event) = events.try_recv() {
                    batch.push(event);
                }
                let actions = cx.evaluate(&mut engine, &batch);
                cx.execute(&mut engine, actions).await;
                break;
            }
        }
    }
    tracing::debug!(open = engine.open_count(), "alerter stopped");
}

/// Incidents left open by a previous run: tracked again, or resolved when their rule is gone.
async fn restore(alerting: &Alerting, engine: &mut Engine, store: &Store) {
    let open = match store.read(rows::open_incidents).await {
        Ok(open) => open,
        Err(error) => {
            tracing::error!(%error, "cannot read open incidents; they will not resolve by themselves");
            return;
        }
    };
    let mut orphans = Vec::new();
    for incident in open {
        match engine.rule_index(&incident.rule) {
            Some(rule) => engine.restore(rule, &incident),
            None => orphans.push(incident.id),
        }
    }
    if orphans.is_empty() {
        return;
    }
    let now = warden_store::now_ms();
    let count = orphans.len();
    let written = store
        .write(move |conn| {
            for id in orphans {
                rows::resolve_incident(
                    conn,
                    id,
                    "unknown",
                    "its rule is no longer configured",
                    now,
                )?;
                rows::drop_held(conn, id)?;
            }
            Ok(())
        })
        .await;
    match written {
        Ok(()) => tracing::info!(count, "resolved incidents whose rule is gone"),
        Err(error) => tracing::error!(%error, "cannot resolve incidents whose rule is gone"),
    }
    alerting.wake_delivery();
}

async fn reload_silences(engine: &mut Engine, store: &Store) {
    let now = warden_store::now_ms();
    match store
        .read(move |conn| rows::list_silences(conn, false, now))
        .await
    {
        Ok(silences) => engine.maintenance.set_silences(silences),
        Err(error) => tracing::error!(%error, "cannot read silences"),
    }
}

struct Cx {
    alerting: Alerting,
    store: Store,
    bus: Bus,
}

/// What one action became in the store.
enum Done {
    Opened {
        key: IncidentKey,
        id: i64,
        event: EventKind,
    },
    Event(EventKind),
    Nothing,
}

impl Cx {
    fn evaluate(&self, engine: &mut Engine, batch: &[Arc<Event>]) -> Vec<Action> {
        let started = Instant::now();
        let mut actions = Vec::new();
        let mut runs = 0u64;
        let mut samples_seen = 0u64;
        for event in batch {
            let EventKind::RunFinished {
                check_id,
                check: Some(check),
                status,
                summary,
                finished_at,
                samples,
                ..
            } = &event.kind
            else {
                continue;
            };
            runs += 1;
            engine.on_run(
                &RunResult {
                    check_id: *check_id,
                    check,
                    status: *status,
                    summary,
                    at: *finished_at,
                },
                &mut actions,
            );
            for sample in samples {
                samples_seen += 1;
                engine.on_sample(
                    &SampleIn {
                        check_id: *check_id,
                        check,
                        series: &sample.series,
                        labels: &sample.labels,
                        ts: sample.ts,
                        value: sample.value,
                    },
                    &mut actions,
                );
            }
        }
        let stats = self.alerting.stats();
        stats.runs_evaluated.fetch_add(runs, Ordering::Relaxed);
        stats
            .samples_evaluated
            .fetch_add(samples_seen, Ordering::Relaxed);
        stats.evaluation_nanos.fetch_add(
            u64::try_from(started.elapsed().as_nanos()).unwrap_or(u64::MAX),
            Ordering::Relaxed,
        );
        actions
    }

    /// Writes every action in one store operation, then announces them.
    async fn execute(&mut self, engine: &mut Engine, actions: Vec<Action>) {
        if actions.is_empty() {
            return;
        }
        let now = warden_store::now_ms();
        // Everything the write needs, resolved against the engine beforehand.
        let planned: Vec<(Action, Option<i64>, String)> = actions
            .into_iter()
            .map(|action| {
                let (id, message) = match &action {
                    Action::Open(opening) => {
                        let notice = Notice {
                            incident_id: None,
                            event: "opened".to_string(),
                            rule: opening.rule.to_string(),
                            subject: opening.key.1.to_string(),
                            check: opening.check.as_deref().map(str::to_string),
                            status: opening.status.clone(),
                            severity: opening.severity.to_string(),
                            summary: opening.summary.clone(),
                            value: opening.value,
                            since_ms: opening.at,
                            resolved_at_ms: None,
                            url: String::new(),
                            labels: opening.labels.clone(),
                            text: String::new(),
                            at_ms: now,
                        };
                        (None, self.alerting.opening_message(&opening.rule, &notice))
                    }
                    Action::Resolve { id, .. }
                    | Action::Repeat { id, .. }
                    | Action::Release { id, .. } => (*id, String::new()),
                };
                (action, id, message)
            })
            .collect();
        let rule_names: Vec<String> = planned
            .iter()
            .map(|(action, _, _)| engine.rule_name(action_rule(action)).to_string())
            .collect();
        let written = self
            .store
            .write(move |conn| {
                let mut done = Vec::with_capacity(planned.len());
                for ((action, id, message), rule) in planned.into_iter().zip(rule_names) {
                    done.push(apply(conn, action, id, message, &rule)?);
                }
                Ok(done)
            })
            .await;
        let done = match written {
            Ok(done) => done,
            Err(error) => {
                tracing::error!(%error, "cannot record incidents; they will be missing from the store");
                return;
            }
        };
        let mut queued = false;
        for item in done {
            match item {
                Done::Opened { key, id, event } => {
                    engine.assign_id(&key, id);
                    self.alerting.count(|stats| &stats.incidents_opened);
                    queued = true;
                    self.bus.publish(event).await;
                }
                Done::Event(event) => {
                    if matches!(event, EventKind::IncidentResolved { .. }) {
                        self.alerting.count(|stats| &stats.incidents_resolved);
                    }
                    queued = true;
                    self.bus.publish(event).await;
                }
                Done::Nothing => {}
            }
        }
        if queued {
            self.alerting.wake_delivery();
        }
    }
}

fn action_rule(action: &Action) -> usize {
    match action {
        Action::Open(opening) => opening.key.0,
        Action::Resolve { key, .. } | Action::Repeat { key, .. } | Action::Release { key, .. } => {
            key.0
        }
    }
}

/// One action against the store, inside the alerter's write.
fn apply(
    conn: &warden_store::Connection,
    action: Action,
    id: Option<i64>,
    message: String,
    rule: &str,
) -> Result<Done, warden_store::StoreError> {
    match action {
        Action::Open(opening) => {
            let held = opening.held_by.is_some();
            let labels =
                serde_json::to_string(&opening.labels).unwrap_or_else(|_| "{}".to_string());
            let opened = rows::open_incident(
                conn,
                &NewIncident {
                    rule: opening.rule.to_string(),
                    subject: opening.key.1.to_string(),
                    check_id: opening.check_id,
                    check_name: opening.check.as_deref().map(str::to_string),
                    severity: opening.severity.to_string(),
                    labels,
                    status: Some(opening.status.clone()),
                    summary: opening.summary.clone(),
                    value: opening.value,
                    message,
                    held,
                },
                opening.at,
            )?;
            let id = match opened {
                Ok(id) => id,
                // Already open (restored after a restart): keep tracking that one.
                Err(existing) => {
                    return Ok(Done::Opened {
                        key: opening.key.clone(),
                        id: existing,
                        event: EventKind::IncidentOpened {
                            incident_id: existing,
                            rule: opening.rule.to_string(),
                            subject: opening.key_subject(),
                            check: opening.check.as_deref().map(str::to_string),
                            severity: opening.severity,
                            status: opening.status.clone(),
                            summary: opening.summary.clone(),
                            held,
                        },
                    });
                }
            };
            if let Some(window) = &opening.held_by {
                rows::add_event(
                    conn,
                    id,
                    opening.at,
                    "held",
                    None,
                    &format!("notifications held by {window}"),
                )?;
            }
            if opening.notify.is_empty() {
                rows::add_event(
                    conn,
                    id,
                    opening.at,
                    "unrouted",
                    None,
                    "no notifier: name one in the rule's `notify`, or mark one `default = true`",
                )?;
            }
            for notifier in &opening.notify {
                rows::queue_delivery(conn, Some(id), notifier, "opened", held, opening.at)?;
            }
            Ok(Done::Opened {
                key: opening.key.clone(),
                id,
                event: EventKind::IncidentOpened {
                    incident_id: id,
                    rule: opening.rule.to_string(),
                    subject: opening.key_subject(),
                    check: opening.check.as_deref().map(str::to_string),
                    severity: opening.severity,
                    status: opening.status.clone(),
                    summary: opening.summary.clone(),
                    held,
                },
            })
        }
        Action::Resolve {
            key,
            at,
            status,
            summary,
            notify,
            was_held,
            ..
        } => {
            let Some(id) = id else {
                return Ok(Done::Nothing);
            };
            if !rows::resolve_incident(conn, id, &status, &summary, at)? {
                return Ok(Done::Nothing);
            }
            if was_held {
                rows::drop_held(conn, id)?;
            }
            for notifier in &notify {
                rows::queue_delivery(conn, Some(id), notifier, "resolved", false, at)?;
            }
            Ok(Done::Event(EventKind::IncidentResolved {
                incident_id: id,
                rule: rule.to_string(),
                subject: key.1.to_string(),
                status,
                summary,
            }))
        }
        Action::Repeat {
            at, count, notify, ..
        } => {
            let Some(id) = id else {
                return Ok(Done::Nothing);
            };
            rows::add_event(
                conn,
                id,
                at,
                "repeat",
                None,
                &format!("re-notification {count}"),
            )?;
            for notifier in &notify {
                rows::queue_delivery(
                    conn,
                    Some(id),
                    notifier,
                    &format!("repeat-{count}"),
                    false,
                    at,
                )?;
            }
            Ok(Done::Nothing)
        }
        Action::Release { at, .. } => {
            let Some(id) = id else {
                return Ok(Done::Nothing);
            };
            rows::set_held(conn, id, false)?;
            let released = rows::release_held(conn, id, at)?;
            rows::add_event(
                conn,
                id,
                at,
                "released",
                None,
                &format!("maintenance over; {released} held notification(s) sent"),
            )?;
            Ok(Done::Nothing)
        }
    }
}
