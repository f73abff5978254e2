//! The delivery worker: sends the queued notifications (durable rows, so a restart loses
//! none) with a token-bucket rate limit per notifier, retries a failed attempt with exponential
//! backoff, and records every attempt on the incident's timeline. A notification that fails
//! its last attempt is recorded as failed and counted; nothing is dropped silently.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use warden_core::config::RateLimit;
use warden_store::Store;
use warden_store::alerting::{self as rows, AttemptOutcome, DeliveryRow};

use super::Alerting;
use crate::bus::{Bus, EventKind};

/// Deliveries read per pass.
const BATCH: usize = 256;
/// Longest wait between passes when nothing wakes the worker.
const IDLE_POLL: Duration = Duration::from_millis(500);
/// Cap on a retry's delay.
const MAX_BACKOFF_MS: i64 = 10 * 60 * 1_000;

/// A token bucket: `count` notifications per `per`, refilled continuously.
#[derive(Debug, Clone)]
pub(crate) struct TokenBucket {
    capacity: f64,
    tokens: f64,
    per_ms: f64,
    updated_ms: i64,
}

impl TokenBucket {
    pub(crate) fn new(limit: RateLimit, now: i64) -> TokenBucket {
        let capacity = f64::from(limit.count.max(1));
        TokenBucket {
            capacity,
            tokens: capacity,
            per_ms: limit.per.as_millis() as f64 / capacity,
            updated_ms: now,
        }
    }

    /// Takes a token, or says when the next one is there.
    pub(crate) fn take(&mut self, now: i64) -> Result<(), i64> {
        let elapsed = now.saturating_sub(self.updated_ms).max(0) as f64;
        self.tokens = (self.tokens + elapsed / self.per_ms).min(self.capacity);
        self.updated_ms = now;
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            return Ok(());
        }
        let wait = ((1.0 - self.tokens) * self.per_ms).ceil() as i64;
        Err(now + wait.max(1))
    }
}

/// The delay before retry `attempt` (1-based): `backoff * 2^(attempt-1)`, capped at 10 min.
pub(crate) fn retry_delay_ms(backoff: Duration, attempt: u32) -> i64 {
    let base = i64::try_from(backoff.as_millis()).unwrap_or(i64::MAX);
    let factor = 1i64 << attempt.saturating_sub(1).min(20);
    base.saturating_mul(factor).min(MAX_BACKOFF_MS)
}

pub(crate) async fn run(alerting: Alerting, store: Store, bus: Bus, stop: CancellationToken) {
    let in_flight: Arc<Mutex<HashSet<i64>>> = Arc::default();
    // Sends whose outcome is written; they leave `in_flight` only at the start of the next
    // pass, before its read: a read begun while an outcome was being written can still show
    // that delivery as pending, and must find it in flight (else it would be sent twice).
    let settled: Arc<Mutex<Vec<i64>>> = Arc::default();
    let mut buckets: HashMap<String, TokenBucket> = HashMap::new();
    let sends = TaskTracker::new();
    loop {
        if let (Ok(mut done), Ok(mut set)) = (settled.lock(), in_flight.lock()) {
            for id in done.drain(..) {
                set.remove(&id);
            }
        }
        let now = warden_store::now_ms();
        let due = match store
            .read(move |conn| rows::due_deliveries(conn, now, BATCH))
            .await
        {
            Ok(due) => due,
            Err(error) => {
                tracing::error!(%error, "cannot read queued notifications");
                Vec::new()
            }
        };
        for delivery in due {
            let busy = in_flight
                .lock()
                .map(|set| set.contains(&delivery.id))
                .unwrap_or(true);
            if busy {
                continue;
            }
            let Some(notifier) = alerting.notifier(&delivery.notifier).cloned() else {
                let error = format!("no notifier named `{}` is configured", delivery.notifier);
                let outcome = AttemptOutcome::Failed { error };
                finish(
                    &alerting,
                    &store,
                    &bus,
                    &delivery,
                    outcome,
                    delivery.attempts + 1,
                )
                .await;
                continue;
            };
            if let Some(limit) = notifier.config.rate_limit {
                let bucket = buckets
                    .entry(delivery.notifier.clone())
                    .or_insert_with(|| TokenBucket::new(limit, now));
                if let Err(next_at) = bucket.take(now) {
                    let id = delivery.id;
                    if let Err(error) = store
                        .write(move |conn| rows::postpone(conn, id, next_at))
                        .await
                    {
                        tracing::error!(%error, "cannot postpone a rate-limited notification");
                    }
                    continue;
                }
            }
            if let Ok(mut set) = in_flight.lock() {
                set.insert(delivery.id);
            }
            let (alerting, store, bus, settled) = (
                alerting.clone(),
                store.clone(),
                bus.clone(),
                Arc::clone(&settled),
            );
            sends.spawn(async move {
                let id = delivery.id;
                let result = attempt(&alerting, &store, &notifier, &delivery).await;
                let attempts = delivery.attempts + 1;
                let outcome = match result {
                    Ok(()) => AttemptOutcome::Sent,
                    Err(error) if attempts < notifier.config.max_attempts => {
                        AttemptOutcome::Retry {
                            error,
                            next_at: warden_store::now_ms()
                                + retry_delay_ms(notifier.config.backoff, attempts),
                        }
                    }
                    Err(error) => AttemptOutcome::Failed { error },
                };
                finish(&alerting, &store, &bus, &delivery, outcome, attempts).await;
                if let Ok(mut done) = settled.lock() {
                    done.push(id);
                }
                alerting.wake_delivery();
            });
        }
        let next_due = store.read(rows::next_due).await.ok().flatten();
        let wait = match next_due {
            Some(at) => {
                let until = at - warden_store::now_ms();
                Duration::from_millis(u64::try_from(until.clamp(20, 500)).unwrap_or(500))
            }
            None => IDLE_POLL,
        };
        // `notified` and `sleep` are cancel-safe; a wake between passes is kept by `Notify`.
        tokio::select! {
            () = alerting.inner.wake_delivery.notified() => {}
            () = tokio::time::sleep(wait) => {}
            () = stop.cancelled() => break,
        }
    }
    sends.close();
    if tokio::time::timeout(Duration::from_secs(5), sends.wait())
        .await
        .is_err()
    {
        tracing::warn!(
            "notifications still being sent at shutdown; they will be retried at the next start"
        );
    }
}

/// One attempt: the notice from the stored incident, sent once.
async fn attempt(
    alerting: &Alerting,
    store: &Store,
    notifier: &super::notify::Notifier,
    delivery: &DeliveryRow,
) -> Result<(), String> {
    let Some(incident_id) = delivery.incident_id else {
        return Err("a notification without an incident".to_string());
    };
    let incident = store
        .read(move |conn| rows::get_incident(conn, incident_id))
        .await
        .map_err(|error| format!("cannot read incident {incident_id}: {error}"))?
        .ok_or_else(|| format!("incident {incident_id} is gone"))?;
    let notice = alerting.notice(&incident, &delivery.event, warden_store::now_ms());
    notifier.send(&notice).await
}

/// Records the attempt's outcome on the delivery and the incident, counts it and announces it.
async fn finish(
    alerting: &Alerting,
    store: &Store,
    bus: &Bus,
    delivery: &DeliveryRow,
    recorded: AttemptOutcome,
    attempts: u32,
) {
    let now = warden_store::now_ms();
    let row = delivery.clone();
    let to_write = recorded.clone();
    if let Err(error) = store
        .write(move |conn| rows::record_attempt(conn, &row, attempts, &to_write, now))
        .await
    {
        tracing::error!(%error, notifier = %delivery.notifier, "cannot record a notification attempt");
    }
    let counters = alerting.counters(&delivery.notifier);
    let event = match recorded {
        AttemptOutcome::Sent => {
            alerting.count(|stats| &stats.notifications_sent);
            if let Some(counters) = counters {
                counters.sent.fetch_add(1, Ordering::Relaxed);
            }
            tracing::info!(notifier = %delivery.notifier, incident = ?delivery.incident_id, event = %delivery.event, attempts, "notification delivered");
            EventKind::NotificationSent {
                incident_id: delivery.incident_id,
                notifier: delivery.notifier.clone(),
                event: delivery.event.clone(),
                attempts,
            }
        }
        AttemptOutcome::Retry { error, next_at } => {
            alerting.count(|stats| &stats.notification_attempts_failed);
            tracing::warn!(notifier = %delivery.notifier, incident = ?delivery.incident_id, %error, attempt = attempts, retry_in_ms = next_at - now, "notification attempt failed; retrying");
            EventKind::NotificationFailed {
                incident_id: delivery.incident_id,
                notifier: delivery.notifier.clone(),
                event: delivery.event.clone(),
                attempts,
                error,
                will_retry: true,
            }
        }
        AttemptOutcome::Failed { error } => {
            alerting.count(|stats| &stats.notification_attempts_failed);
            alerting.count(|stats| &stats.notifications_failed);
            if let Some(counters) = counters {
                counters.failed.fetch_add(1, Ordering::Relaxed);
            }
            tracing::error!(notifier = %delivery.notifier, incident = ?delivery.incident_id, %error, attempts, "notification failed for good");
            EventKind::NotificationFailed {
                incident_id: delivery.incident_id,
                notifier: delivery.notifier.clone(),
                event: delivery.event.clone(),
                attempts,
                error,
                will_retry: false,
            }
        }
    };
    bus.publish(event).await;
}
