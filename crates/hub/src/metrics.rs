//! Prometheus exposition at `/metrics`: the hub's own health (queue, runs, bus, recorder, store
//! writer, API latency, heartbeat pings) and what the checks produce (status, timing, failures and
//! every value of their last run), in the classic text format (`text/plain; version=0.0.4`) that
//! every Prometheus and `promtool check metrics` read.
//!
//! Everything is kept in memory. Counters and histograms are bumped where things happen (the
//! recorder, the API middleware [`track_api`], the ping handler, and [`Metrics::follow`], a live
//! bus subscriber); the per-check gauges are kept by that same subscriber, seeded from the store at
//! start (so statuses survive a restart) and reloaded from it whenever the subscriber falls
//! behind the bus. Bus and store-writer counters and the queue depth are read at scrape time.
//!
//! Cardinality is bounded: labels are check names, check kinds, route templates (never raw
//! paths), fixed reason/status sets, and at most [`MAX_SERIES_PER_CHECK`] series per check.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use axum::extract::{MatchedPath, Request, State};
use axum::http::StatusCode;
use axum::http::header::CONTENT_TYPE;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{
    DescriptorEncoder, EncodeLabelSet, MetricEncoder, NoLabelSet, prometheus_text,
};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;
use tokio::sync::broadcast;
use tokio::sync::broadcast::error::RecvError;
use tokio_util::sync::CancellationToken;
use warden_core::Status;
use warden_core::config::CheckKind;
use warden_store::checks::CheckRow;
use warden_store::{Store, WriterStats};

use crate::AppState;
use crate::auth::{Caller, Role};
use crate::bus::{Bus, Event, EventKind, SamplePoint};
use crate::error::{ApiError, ErrorCode};

/// Most distinct `series` values `warden_check_value` keeps per check; a run's values beyond it
/// are dropped and counted in `warden_check_series_dropped_total`.
pub const MAX_SERIES_PER_CHECK: usize = 200;

/// Least time between two reloads of the check table caused by events of unknown checks.
const UNKNOWN_CHECK_RELOAD_EVERY: Duration = Duration::from_secs(5);

/// Run durations, seconds.
const RUN_DURATION_BUCKETS: [f64; 15] = [
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0,
];

/// API latencies, seconds (long polls wait up to two minutes).
const API_DURATION_BUCKETS: [f64; 16] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
    120.0,
];

/// Events per recorder batch (the recorder takes at most 2,000 by default).
const RECORDER_BATCH_BUCKETS: [f64; 12] = [
    1.0, 2.0, 5.0, 10.0, 20.0, 50.0, 100.0, 200.0, 500.0, 1000.0, 2000.0, 5000.0,
];

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct KindLabels {
    kind: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct FinishedLabels {
    kind: &'static str,
    status: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ApiLabels {
    route: String,
    status_class: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct PingLabels {
    kind: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct QueueLabels {
    state: &'static str,
}

fn run_duration_histogram() -> Histogram {
    Histogram::new(RUN_DURATION_BUCKETS)
}

fn api_duration_histogram() -> Histogram {
    Histogram::new(API_DURATION_BUCKETS)
}

/// The hub's metrics; cheap to clone.
#[derive(Clone)]
pub(crate) struct Metrics {
    inner: Arc<Inner>,
}

impl fmt::Debug for Metrics {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

struct Inner {
    registry: Registry,
    runs_started: Family<KindLabels, Counter>,
    runs_finished: Family<FinishedLabels, Counter>,
    run_duration: Family<KindLabels, Histogram>,
    recorder_batches: Counter,
    recorder_failed_batches: Counter,
    recorder_batch_events: Histogram,
    api_duration: Family<ApiLabels, Histogram>,
    pings: Family<PingLabels, Counter>,
    queue_depth: Family<QueueLabels, Gauge>,
    live_connections: Gauge,
    checks: Arc<Mutex<CheckTable>>,
    last_unknown_reload: Mutex<Option<Instant>>,
}

impl Metrics {
    /// Metrics for a hub with this store and bus, its check table seeded from `checks` (the
    /// store's configured checks with their latest status).
    pub(crate) fn new(
        store: Store,
        bus: Bus,
        checks: &[CheckRow],
        alerts: Arc<crate::alerting::AlertStats>,
    ) -> Metrics {
        let mut registry = Registry::default();
        let runs_started = Family::<KindLabels, Counter>::default();
        registry.register(
            "warden_runs_started",
            "Runs started, by check kind (`none` for runs of no check)",
            runs_started.clone(),
        );
        let runs_finished = Family::<FinishedLabels, Counter>::default();
        registry.register(
            "warden_runs_finished",
            "Runs finished, by check kind and status (ok, warn, crit, unknown)",
            runs_finished.clone(),
        );
        let run_duration = Family::<KindLabels, Histogram>::new_with_constructor(
            run_duration_histogram as fn() -> Histogram,
        );
        registry.register(
            "warden_run_duration_seconds",
            "Duration of finished runs in seconds, by check kind",
            run_duration.clone(),
        );
        let recorder_batches = Counter::default();
        registry.register(
            "warden_recorder_batches",
            "Batches of bus events the recorder wrote to the store (one store operation each)",
            recorder_batches.clone(),
        );
        let recorder_failed_batches = Counter::default();
        registry.register(
            "warden_recorder_failed_batches",
            "Recorder batches the store refused (their events are not stored; see the log)",
            recorder_failed_batches.clone(),
        );
        let recorder_batch_events = Histogram::new(RECORDER_BATCH_BUCKETS);
        registry.register(
            "warden_recorder_batch_events",
            "Bus events per recorder batch",
            recorder_batch_events.clone(),
        );
        let api_duration = Family::<ApiLabels, Histogram>::new_with_constructor(
            api_duration_histogram as fn() -> Histogram,
        );
        registry.register(
            "warden_api_request_duration_seconds",
            "HTTP request latency in seconds until the response head, by route template \
             (`unmatched` for unknown paths) and status class",
            api_duration.clone(),
        );
        let pings = Family::<PingLabels, Counter>::default();
        registry.register(
            "warden_heartbeat_pings",
            "Heartbeat pings received for known checks, by kind (success, fail, start, log)",
            pings.clone(),
        );
        let queue_depth = Family::<QueueLabels, Gauge>::default();
        registry.register(
            "warden_queue_depth",
            "Runs in the durable queue, by state (queued, leased); read at scrape time",
            queue_depth.clone(),
        );
        let live_connections = Gauge::default();
        registry.register(
            "warden_live_connections",
            "Open live-event WebSocket connections (/api/v1/events); read at scrape time",
            live_connections.clone(),
        );
        registry.register_collector(Box::new(HubCollector {
            bus,
            store,
            alerts,
            started: Instant::now(),
            start_time_seconds: unix_seconds(SystemTime::now()),
        }));
        let mut table = CheckTable::default();
        table.reload(checks);
        let checks = Arc::new(Mutex::new(table));
        registry.register_collector(Box::new(ChecksCollector {
            table: Arc::clone(&checks),
        }));
        Metrics {
            inner: Arc::new(Inner {
                registry,
                runs_started,
                runs_finished,
                run_duration,
                recorder_batches,
                recorder_failed_batches,
                recorder_batch_events,
                api_duration,
                pings,
                queue_depth,
                live_connections,
                checks,
                last_unknown_reload: Mutex::new(None),
            }),
        }
    }

    /// Counts a recorder batch of `events` events; `stored` is false when the store refused it.
    pub(crate) fn recorder_batch(&self, events: usize, stored: bool) {
        self.inner.recorder_batches.inc();
        if !stored {
            self.inner.recorder_failed_batches.inc();
        }
        self.inner.recorder_batch_events.observe(events as f64);
    }

    /// Counts a heartbeat ping of `kind` (`PingKind::as_str`).
    pub(crate) fn ping_received(&self, kind: &'static str) {
        self.inner.pings.get_or_create(&PingLabels { kind }).inc();
    }

    fn api_request(&self, route: String, status: StatusCode, took: Duration) {
        let status_class = match status.as_u16() {
            100..=199 => "1xx",
            200..=299 => "2xx",
            300..=399 => "3xx",
            400..=499 => "4xx",
            _ => "5xx",
        };
        self.inner
            .api_duration
            .get_or_create(&ApiLabels {
                route,
                status_class,
            })
            .observe(took.as_secs_f64());
    }

    /// Keeps run counters and the check table current from the live bus until `stop` fires (or
    /// the bus closes). When it falls behind the bus, or hears of a check it does not know, it
    /// reloads the check table from the store.
    pub(crate) async fn follow(
        self,
        mut live: broadcast::Receiver<Arc<Event>>,
        store: Store,
        stop: CancellationToken,
    ) {
        let mut lag = LagState::default();
        loop {
            let received = tokio::select! {
                () = stop.cancelled() => return,
                // Cancel safe: a broadcast receive that is dropped loses no event.
                received = live.recv() => received,
            };
            match received {
                Ok(event) => {
                    let due = lag.pending.is_some_and(|_| {
                        lag.last_reload
                            .is_none_or(|at| at.elapsed() >= LAG_RELOAD_EVERY)
                    });
                    if self.observe(&event.kind) || due {
                        self.reload(&store).await;
                        lag.settled();
                    }
                }
                Err(RecvError::Lagged(missed)) => {
                    // Under a flood, reload at most every few seconds: a reload reads every
                    // check, and doing it per lag would only make the next lag worse.
                    *lag.pending.get_or_insert(0) += missed;
                    if lag
                        .last_reload
                        .is_none_or(|at| at.elapsed() >= LAG_RELOAD_EVERY)
                    {
                        tracing::warn!(
                            missed = lag.pending.unwrap_or(missed),
                            "metrics fell behind the bus; reloading check statuses from the store"
                        );
                        self.reload(&store).await;
                        lag.settled();
                    }
                }
                Err(RecvError::Closed) => return,
            }
        }
    }

    async fn reload(&self, store: &Store) {
        match store.read(warden_store::checks::list).await {
            Ok(rows) => {
                if let Ok(mut table) = self.inner.checks.lock() {
                    table.reload(&rows);
                }
            }
            Err(error) => tracing::warn!(%error, "cannot reload check statuses for metrics"),
        }
    }

    fn kind_of(&self, check: Option<&str>) -> &'static str {
        let Some(name) = check else {
            return "none";
        };
        self.inner
            .checks
            .lock()
            .ok()
            .and_then(|table| table.checks.get(name).map(|entry| entry.kind))
            .unwrap_or("unknown")
    }

    /// Applies one event; true when it named a check the table does not know and a reload is
    /// due.
    fn observe(&self, event: &EventKind) -> bool {
        match event {
            EventKind::RunStarted { check, .. } => {
                let kind = self.kind_of(check.as_deref());
                self.inner
                    .runs_started
                    .get_or_create(&KindLabels { kind })
                    .inc();
                false
            }
            EventKind::RunFinished {
                run_id,
                check,
                status,
                duration_ms,
                finished_at,
                samples,
                reason,
                ..
            } => {
                let finished = FinishedRun {
                    run_id: *run_id,
                    status: *status,
                    duration_ms: *duration_ms,
                    finished_at: *finished_at,
                    samples,
                    reason: *reason,
                };
                // The check's kind and its new values in one look-up.
                let (kind, known) = match check.as_deref() {
                    None => ("none", true),
                    Some(name) => match self.inner.checks.lock() {
                        Ok(mut table) => match table.record(name, &finished) {
                            Some(kind) => (kind, true),
                            None => ("unknown", false),
                        },
                        Err(_) => ("unknown", true),
                    },
                };
                self.inner
                    .runs_finished
                    .get_or_create(&FinishedLabels {
                        kind,
                        status: status.as_str(),
                    })
                    .inc();
                self.inner
                    .run_duration
                    .get_or_create(&KindLabels { kind })
                    .observe(*duration_ms as f64 / 1000.0);
                !known && self.unknown_reload_due()
            }
            EventKind::RunQueued { .. }
            | EventKind::RunCancelled { .. }
            | EventKind::OutputLine { .. }
            | EventKind::IncidentOpened { .. }
            | EventKind::IncidentAcknowledged { .. }
            | EventKind::IncidentResolved { .. }
            | EventKind::NotificationSent { .. }
            | EventKind::NotificationFailed { .. } => false,
        }
    }

    fn unknown_reload_due(&self) -> bool {
        let Ok(mut last) = self.inner.last_unknown_reload.lock() else {
            return false;
        };
        let due = last.is_none_or(|at| at.elapsed() >= UNKNOWN_CHECK_RELOAD_EVERY);
        if due {
            *last = Some(Instant::now());
        }
        due
    }

    /// Reads the queue depth from the store for the next scrape; on failure the gauge is left
    /// out (an absent series, not a stale one).
    async fn refresh_queue_depth(&self, store: &Store) {
        match store.read(warden_store::queue::depth).await {
            Ok(depth) => {
                let set = |state: &'static str, value: u64| {
                    self.inner
                        .queue_depth
                        .get_or_create(&QueueLabels { state })
                        .set(i64::try_from(value).unwrap_or(i64::MAX));
                };
                set("queued", depth.queued);
                set("leased", depth.leased);
            }
            Err(error) => {
                tracing::warn!(%error, "cannot read the queue depth for /metrics");
                self.inner.queue_depth.clear();
            }
        }
    }

    /// Everything in the text format.
    fn render(&self) -> Result<String, fmt::Error> {
        let mut body = String::with_capacity(32 * 1024);
        prometheus_text::encode(&mut body, &self.inner.registry)?;
        Ok(body)
    }
}

/// `GET /metrics`: needs a viewer token unless `[hub] metrics_public = true`.
#[utoipa::path(
    get,
    path = "/metrics",
    tag = "metrics",
    operation_id = "metrics",
    summary = "Prometheus metrics",
    description = "The Prometheus text exposition (format 0.0.4). Needs a viewer token unless \
                   the hub is configured with `[hub] metrics_public = true`.",
    responses(
        (status = 200, description = "The exposition", content_type = "text/plain; version=0.0.4; charset=utf-8", body = String),
        (status = 401, description = "No token, or an invalid, expired or revoked one (unless metrics are public)", body = crate::error::ErrorBody),
        (status = 403, description = "The token's role is not allowed (unless metrics are public)", body = crate::error::ErrorBody),
        (status = 500, description = "Internal error (the hub's log says why)", body = crate::error::ErrorBody),
        (status = 503, description = "The hub is shutting down", body = crate::error::ErrorBody),
    ),
    security((), ("bearer" = ["viewer"]))
)]
pub(crate) async fn metrics(
    State(state): State<AppState>,
    caller: Result<Caller, ApiError>,
) -> Result<Response, ApiError> {
    if !state.metrics_public {
        caller?.require(Role::Viewer)?;
    }
    state.metrics.refresh_queue_depth(&state.store).await;
    state
        .metrics
        .inner
        .live_connections
        .set(i64::try_from(state.live.connections()).unwrap_or(i64::MAX));
    let body = state.metrics.render().map_err(|_| {
        tracing::error!("cannot encode the metrics");
        ApiError::new(ErrorCode::Internal, "cannot encode the metrics")
    })?;
    Ok(([(CONTENT_TYPE, prometheus_text::CONTENT_TYPE)], body).into_response())
}

/// Middleware: observes each request's latency (until the response head) under its route
/// template, e.g. `/api/v1/checks/{name}`, never the raw path.
pub(crate) async fn track_api(
    State(metrics): State<Metrics>,
    request: Request,
    next: Next,
) -> Response {
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or("unmatched", MatchedPath::as_str)
        .to_string();
    let started = Instant::now();
    let response = next.run(request).await;
    metrics.api_request(route, response.status(), started.elapsed());
    response
}

/// Shortest time between two reloads caused by falling behind the bus.
const LAG_RELOAD_EVERY: Duration = Duration::from_secs(5);

/// Events missed since the last reload, and when that was.
#[derive(Default)]
struct LagState {
    pending: Option<u64>,
    last_reload: Option<Instant>,
}

impl LagState {
    fn settled(&mut self) {
        self.pending = None;
        self.last_reload = Some(Instant::now());
    }
}

/// What the check table needs of a `RunFinished`.
struct FinishedRun<'a> {
    run_id: i64,
    status: Status,
    duration_ms: i64,
    finished_at: i64,
    samples: &'a [SamplePoint],
    reason: Option<&'static str>,
}

/// The latest state of every configured check.
#[derive(Debug, Default)]
struct CheckTable {
    /// By name; hashed, not ordered: every run looks its check up, and at 10,000 checks an
    /// ordered map's look-up was a dozen cache misses. Scrapes sort.
    checks: HashMap<String, CheckEntry>,
    /// Series names (without the check prefix) once each, shared by every check's values.
    names: std::collections::HashSet<Arc<str>>,
}

#[derive(Debug, Default)]
struct CheckEntry {
    kind: &'static str,
    status: Option<Status>,
    last_run_id: Option<i64>,
    last_run_at_ms: Option<i64>,
    /// Of the last run; unknown after a restart until the next run.
    duration_seconds: Option<f64>,
    /// The last run's values by series name (without the `<check>.` prefix), sorted by name.
    /// Names are shared across checks ([`CheckTable::names`]): at 10,000 checks a map of
    /// owned strings per check was megabytes.
    values: Vec<(Arc<str>, f64)>,
    failures: BTreeMap<&'static str, u64>,
    series_dropped: u64,
}

impl CheckTable {
    /// Makes the table hold exactly `rows` (removed checks disappear), taking each status from
    /// the store unless the table already saw a later run of that check.
    fn reload(&mut self, rows: &[CheckRow]) {
        let mut old = std::mem::take(&mut self.checks);
        for row in rows {
            let mut entry = old.remove(&row.name).unwrap_or_default();
            entry.kind = CheckKind::static_name(&row.kind).unwrap_or("unknown");
            if row.last_run_id >= entry.last_run_id {
                entry.status = row.status.as_deref().and_then(Status::parse);
                entry.last_run_id = row.last_run_id;
                entry.last_run_at_ms = row.last_run_at;
            }
            self.checks.insert(row.name.clone(), entry);
        }
    }

    /// Records a finished run of `name`; its kind, or `None` when the check is not in the table.
    fn record(&mut self, name: &str, run: &FinishedRun<'_>) -> Option<&'static str> {
        let entry = self.checks.get_mut(name)?;
        let kind = entry.kind;
        if let Some(reason) = failure_reason(run.status, run.reason) {
            *entry.failures.entry(reason).or_default() += 1;
        }
        // Like the store: a run older than the latest recorded one does not set the status.
        if entry.last_run_id.is_some_and(|last| last > run.run_id) {
            return Some(kind);
        }
        entry.status = Some(run.status);
        entry.last_run_id = Some(run.run_id);
        entry.last_run_at_ms = Some(run.finished_at);
        entry.duration_seconds = Some(run.duration_ms as f64 / 1000.0);
        if run.samples.is_empty() && entry.values.is_empty() {
            return Some(kind);
        }
        entry.values.clear();
        let prefix = format!("{name}.");
        for point in run.samples {
            let series = point.series.strip_prefix(&prefix).unwrap_or(&point.series);
            if let Some(slot) = entry
                .values
                .iter_mut()
                .find(|(known, _)| &**known == series)
            {
                slot.1 = point.value;
                continue;
            }
            if entry.values.len() >= MAX_SERIES_PER_CHECK {
                entry.series_dropped += 1;
                continue;
            }
            let shared = match self.names.get(series) {
                Some(shared) => Arc::clone(shared),
                None => {
                    let shared: Arc<str> = Arc::from(series);
                    self.names.insert(Arc::clone(&shared));
                    shared
                }
            };
            entry.values.push((shared, point.value));
        }
        entry.values.sort_by(|a, b| a.0.cmp(&b.0));
        entry.values.shrink_to_fit();
        Some(kind)
    }
}

/// The `reason` label of a failed run, or `None` when the run did not fail. A run fails when it
/// is crit or unknown, or warn with a probe failure reason; the reason is the probe's (`dns`,
/// `connect`, `tls`, `timeout`, `http`, `condition`) or `status` when the check itself reported
/// the status (an exec plugin's exit code, a heartbeat that is down).
fn failure_reason(status: Status, reason: Option<&'static str>) -> Option<&'static str> {
    match (status, reason) {
        (Status::Ok, _) | (Status::Warn, None) => None,
        (_, Some(reason)) => Some(reason),
        (Status::Crit | Status::Unknown, None) => Some("status"),
    }
}

/// The hub-wide values read at scrape time: build, uptime, bus and store writer.
#[derive(Debug)]
struct HubCollector {
    bus: Bus,
    store: Store,
    alerts: Arc<crate::alerting::AlertStats>,
    started: Instant,
    start_time_seconds: f64,
}

impl Collector for HubCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> fmt::Result {
        let mut build = encoder.encode_descriptor(
            "warden_build_info",
            "Always 1; the labels say which warden this is.",
            None,
            MetricType::Gauge,
        )?;
        build
            .encode_family(&[("version", env!("CARGO_PKG_VERSION"))])?
            .encode_gauge(&1i64)?;
        gauge(
            &mut encoder,
            "warden_start_time_seconds",
            "When the hub started, in seconds since the Unix epoch.",
            self.start_time_seconds,
        )?;
        gauge(
            &mut encoder,
            "warden_uptime_seconds",
            "Seconds since the hub started.",
            self.started.elapsed().as_secs_f64(),
        )?;
        counter(
            &mut encoder,
            "warden_bus_events_published",
            "Events published on the in-process bus.",
            self.bus.published(),
        )?;
        counter(
            &mut encoder,
            "warden_bus_subscriber_lagged_events",
            "Events pushed out of the live buffer before every live subscriber (WebSocket, \
             waiting API calls, this exporter) had seen them; each lagging subscriber is told \
             how many it missed.",
            self.bus.lagged(),
        )?;
        let stats = self.store.writer_stats();
        counter(
            &mut encoder,
            "warden_store_write_operations",
            "Write operations the store's single writer has run.",
            stats.operations,
        )?;
        counter(
            &mut encoder,
            "warden_store_failed_commits",
            "Write transactions that failed to begin or commit.",
            stats.failed_commits,
        )?;
        gauge(
            &mut encoder,
            "warden_store_write_batch_max_operations",
            "Most operations folded into one write transaction so far.",
            stats.largest_batch as f64,
        )?;
        writer_batches(&mut encoder, &stats)?;
        let alerts = &self.alerts;
        let read =
            |value: &std::sync::atomic::AtomicU64| value.load(std::sync::atomic::Ordering::Relaxed);
        for (name, help, value) in [
            (
                "warden_incidents_opened",
                "Incidents the alerter opened.",
                read(&alerts.incidents_opened),
            ),
            (
                "warden_incidents_resolved",
                "Incidents the alerter resolved.",
                read(&alerts.incidents_resolved),
            ),
            (
                "warden_notifications_sent",
                "Notifications delivered to a notifier.",
                read(&alerts.notifications_sent),
            ),
            (
                "warden_notifications_failed",
                "Notifications that failed every attempt (recorded on their incident; never \
                 dropped silently).",
                read(&alerts.notifications_failed),
            ),
            (
                "warden_notification_attempts_failed",
                "Delivery attempts that failed, retries included.",
                read(&alerts.notification_attempts_failed),
            ),
            (
                "warden_alerter_runs_evaluated",
                "Finished runs the alerter evaluated rules on.",
                read(&alerts.runs_evaluated),
            ),
        ] {
            counter(&mut encoder, name, help, value)?;
        }
        let mut metric = encoder.encode_descriptor(
            "warden_alerter_evaluation_seconds",
            "Time the alerter spent evaluating rules (store writes excluded).",
            None,
            MetricType::Counter,
        )?;
        metric.encode_counter::<NoLabelSet, _, u64>(
            &(read(&alerts.evaluation_nanos) as f64 / 1e9),
            None,
        )
    }
}

/// `warden_store_write_batch_operations`: operations per transaction (group commit).
fn writer_batches(encoder: &mut DescriptorEncoder, stats: &WriterStats) -> fmt::Result {
    let buckets: Vec<(f64, u64)> = WriterStats::BATCH_SIZE_BOUNDS
        .iter()
        .zip(stats.batch_sizes)
        .map(|(bound, count)| (*bound as f64, count))
        .collect();
    // The counters are read one by one while the writer runs: never let +Inf fall below a bucket.
    let count = stats.transactions.max(stats.batch_sizes.iter().sum());
    let mut metric = encoder.encode_descriptor(
        "warden_store_write_batch_operations",
        "Operations per store write transaction (the writer folds waiting operations into one \
         commit).",
        None,
        MetricType::Histogram,
    )?;
    metric.encode_histogram::<NoLabelSet>(stats.operations as f64, count, &buckets, None)
}

/// Per-check values, from the check table.
#[derive(Debug)]
struct ChecksCollector {
    table: Arc<Mutex<CheckTable>>,
}

impl Collector for ChecksCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> fmt::Result {
        let Ok(table) = self.table.lock() else {
            return Ok(());
        };
        let checks: BTreeMap<&String, &CheckEntry> = table.checks.iter().collect();
        let checks = &checks;
        let with_status = || {
            checks
                .iter()
                .filter_map(|(name, entry)| entry.status.map(|status| (name, entry, status)))
        };
        if with_status().next().is_some() {
            let mut metric = encoder.encode_descriptor(
                "warden_check_status",
                "Latest status of each check in Nagios numbering: 0 ok, 1 warn, 2 crit, \
                 3 unknown. Absent before the check's first result.",
                None,
                MetricType::Gauge,
            )?;
            for (name, entry, status) in with_status() {
                metric
                    .encode_family(&[("check", name.as_str()), ("kind", entry.kind)])?
                    .encode_gauge(&i64::from(status.exit_code()))?;
            }
            let mut metric = encoder.encode_descriptor(
                "warden_check_up",
                "1 when the check's latest status is ok or warn, 0 when crit or unknown.",
                None,
                MetricType::Gauge,
            )?;
            for (name, _, status) in with_status() {
                let up = matches!(status, Status::Ok | Status::Warn);
                metric
                    .encode_family(&[("check", name.as_str())])?
                    .encode_gauge(&i64::from(up))?;
            }
        }
        per_check(
            &mut encoder,
            "warden_check_last_run_timestamp_seconds",
            "When the check's latest run finished, in seconds since the Unix epoch.",
            checks,
            |entry| entry.last_run_at_ms.map(|ms| ms as f64 / 1000.0),
        )?;
        per_check(
            &mut encoder,
            "warden_check_duration_seconds",
            "Duration of the check's latest run in seconds (absent after a restart until it runs \
             again).",
            checks,
            |entry| entry.duration_seconds,
        )?;
        if checks.values().any(|entry| !entry.failures.is_empty()) {
            let mut metric = encoder.encode_descriptor(
                "warden_check_failures",
                "Failed runs since the hub started, by reason: the probe's (dns, connect, tls, \
                 timeout, http, condition), or status when the check itself reported crit or \
                 unknown.",
                None,
                MetricType::Counter,
            )?;
            for (name, entry) in checks {
                for (reason, count) in &entry.failures {
                    metric
                        .encode_family(&[("check", name.as_str()), ("reason", reason)])?
                        .encode_counter::<NoLabelSet, _, u64>(count, None)?;
                }
            }
        }
        if checks.values().any(|entry| !entry.values.is_empty()) {
            let help = format!(
                "Values the check's latest run produced (perfdata, probe timings, host \
                 metrics) in base units, by series name without the `<check>.` prefix; at most \
                 {MAX_SERIES_PER_CHECK} series per check."
            );
            let mut metric =
                encoder.encode_descriptor("warden_check_value", &help, None, MetricType::Gauge)?;
            for (name, entry) in checks {
                for (series, value) in &entry.values {
                    let labels = [("check", name.as_str()), ("series", &**series)];
                    let mut sample = metric.encode_family(&labels)?;
                    number(&mut sample, *value)?;
                }
            }
        }
        if checks.values().any(|entry| entry.series_dropped > 0) {
            let help = format!(
                "Values not exposed because the check produced more than {MAX_SERIES_PER_CHECK} \
                 series."
            );
            let mut metric = encoder.encode_descriptor(
                "warden_check_series_dropped",
                &help,
                None,
                MetricType::Counter,
            )?;
            for (name, entry) in checks.iter().filter(|(_, entry)| entry.series_dropped > 0) {
                metric
                    .encode_family(&[("check", name.as_str())])?
                    .encode_counter::<NoLabelSet, _, u64>(&entry.series_dropped, None)?;
            }
        }
        Ok(())
    }
}

/// A `{check}` gauge family with one sample per check that has a value; nothing when none has.
fn per_check(
    encoder: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    checks: &BTreeMap<&String, &CheckEntry>,
    value: impl Fn(&CheckEntry) -> Option<f64>,
) -> fmt::Result {
    if !checks.values().any(|entry| value(entry).is_some()) {
        return Ok(());
    }
    let mut metric = encoder.encode_descriptor(name, help, None, MetricType::Gauge)?;
    for (check, entry) in checks {
        if let Some(value) = value(entry) {
            let labels = [("check", check.as_str())];
            let mut sample = metric.encode_family(&labels)?;
            number(&mut sample, value)?;
        }
    }
    Ok(())
}

fn gauge(encoder: &mut DescriptorEncoder, name: &str, help: &str, value: f64) -> fmt::Result {
    let mut metric = encoder.encode_descriptor(name, help, None, MetricType::Gauge)?;
    number(&mut metric, value)
}

fn counter(encoder: &mut DescriptorEncoder, name: &str, help: &str, value: u64) -> fmt::Result {
    let mut metric = encoder.encode_descriptor(name, help, None, MetricType::Counter)?;
    metric.encode_counter::<NoLabelSet, _, u64>(&value, None)
}

/// A gauge value; whole numbers print as integers (`2048`, not `2048.0`), as Go clients do.
fn number(metric: &mut MetricEncoder, value: f64) -> fmt::Result {
    const EXACT: f64 = 9_007_199_254_740_992.0; // 2^53
    if value.fract() == 0.0 && value.abs() < EXACT {
        metric.encode_gauge(&(value as i64))
    } else {
        metric.encode_gauge(&value)
    }
}

fn unix_seconds(at: SystemTime) -> f64 {
    at.duration_since(UNIX_EPOCH)
        .map(|since| since.as_secs_f64())
        .unwrap_or(0.0)
}
