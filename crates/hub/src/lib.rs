//! warden's hub: opens the store, syncs config, serves the HTTP API and (as later issues land)
//! schedules and runs checks. `Hub::start` does everything that can fail at startup, so the
//! binary can report it as one clear line before serving.

pub mod alerting;
mod api;
mod auth;
mod badge;
pub mod bus;
pub mod defaults;
mod error;
pub mod heartbeat;
mod live;
mod metrics;
mod openapi;
mod query;
pub mod recorder;
pub mod scheduler;
mod status_page;
mod ui;
mod users;
pub mod worker;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::net::TcpListener;
use tokio::sync::{Notify, watch};
use tokio_util::task::TaskTracker;
use warden_core::config::Config;
use warden_store::{Store, StoreError, StoreOptions};

pub use auth::{Role, generate_token, hash_token};
use bus::{Bus, EventKind};
use scheduler::{DueSlot, ScheduledCheck, Scheduler, SlotOutcome, SlotSink, SystemClock};
pub use tokio_util::sync::CancellationToken;
use worker::{WorkerOptions, WorkerPool};

/// Why the hub could not start or stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum HubError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("cannot listen on {addr}")]
    Listen {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("server error: {0}")]
    Serve(std::io::Error),
    #[error("internal error: {0}")]
    Internal(String),
    #[error("{0}")]
    Notifier(String),
}

/// How to start a hub.
#[derive(Debug, Clone)]
pub struct HubOptions {
    pub config: Config,
    /// How long shutdown may take before in-flight requests and runs are abandoned.
    pub shutdown_grace: Duration,
    pub worker: WorkerOptions,
}

impl HubOptions {
    pub fn new(config: Config) -> HubOptions {
        HubOptions {
            config,
            shutdown_grace: Duration::from_secs(10),
            worker: WorkerOptions::default(),
        }
    }
}

/// Shared state of a running hub, handed to request handlers.
#[derive(Clone)]
pub(crate) struct AppState {
    pub(crate) store: Store,
    pub(crate) started: Instant,
    pub(crate) bus: Bus,
    /// Wakes the local worker pool when something was enqueued.
    pub(crate) wake: Arc<Notify>,
    /// The highest event sequence number the recorder has committed.
    pub(crate) recorded: watch::Receiver<u64>,
    pub(crate) heartbeats: heartbeat::Heartbeats,
    /// Base URL for links users follow (ping URLs).
    pub(crate) public_url: Arc<str>,
    /// Live event subscribers (`/api/v1/events`).
    pub(crate) live: live::Live,
    /// What the API shows of each configured check's definition, by name (parsed once).
    pub(crate) catalog: Arc<std::collections::HashMap<String, api::CheckMeta>>,
    /// The local pool's runs in progress (so a cancel stops them at once).
    pub(crate) runs_in_flight: worker::RunsInFlight,
    pub(crate) metrics: metrics::Metrics,
    /// Serve `/metrics` without a token (`[hub] metrics_public`).
    pub(crate) metrics_public: bool,
    /// Notifiers, rules and the alerter's control channel (incidents, silences, tests).
    pub(crate) alerting: alerting::Alerting,
    /// Checks whose badges are public (`badge = true`).
    pub(crate) badges: Arc<std::collections::BTreeSet<String>>,
    /// The public status page (`[status_page]`), if configured.
    pub(crate) status_page: Option<Arc<warden_core::config::StatusPageConfig>>,
}

/// A hub that has opened its store and bound its port, ready to serve.
pub struct Hub {
    listener: TcpListener,
    state: AppState,
    checks: Vec<ScheduledCheck>,
    worker: WorkerOptions,
    recorder_events: tokio::sync::mpsc::Receiver<Arc<bus::Event>>,
    alerter: alerting::AlerterParts,
    recorded: watch::Sender<u64>,
    admin_token: Option<String>,
    data_dir: PathBuf,
    shutdown_grace: Duration,
    tracker: TaskTracker,
}

impl std::fmt::Debug for Hub {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Hub")
            .field("data_dir", &self.data_dir)
            .finish()
    }
}

impl Hub {
    /// Opens the store (creating it and an admin token on first start), syncs the configured
    /// checks and binds the listen address. Nothing is served until [`Hub::serve`].
    pub async fn start(options: HubOptions) -> Result<Hub, HubError> {
        let config = options.config;
        // Bind first: a busy port must fail before anything (like the admin token) is created.
        let listener = TcpListener::bind(config.hub.listen)
            .await
            .map_err(|source| HubError::Listen {
                addr: config.hub.listen,
                source,
            })?;
        let data_dir = config.hub.data.clone();
        let open_dir = data_dir.clone();
        let store =
            tokio::task::spawn_blocking(move || Store::open(&open_dir, StoreOptions::default()))
                .await
                .map_err(|error| HubError::Internal(error.to_string()))??;
        let checks = config.checks.clone();
        let report = store
            .write(move |conn| {
                let report = warden_store::checks::sync(conn, &checks, warden_store::now_ms())?;
                // Runs that kept their check's status are written to its row in lots; a crash
                // can leave the row behind its latest run (never its status).
                warden_store::checks::repair_last_runs(conn)?;
                Ok(report)
            })
            .await?;
        tracing::info!(
            added = report.added.len(),
            changed = report.changed.len(),
            removed = report.removed.len(),
            unchanged = report.unchanged,
            "checks synced from config"
        );
        let admin_token = auth::ensure_admin_token(&store).await?;
        let stored = store.read(warden_store::checks::list).await?;
        let ids: std::collections::HashMap<String, i64> =
            stored.into_iter().map(|row| (row.name, row.id)).collect();
        let configured: Vec<(i64, warden_core::config::CheckConfig)> = config
            .checks
            .iter()
            .filter_map(|check| ids.get(&check.name).map(|id| (*id, check.clone())))
            .collect();
        let heartbeat_rows = store
            .write(|conn| warden_store::heartbeats::ensure(conn, heartbeat::new_ping_key))
            .await?;
        let heartbeats = heartbeat::Heartbeats::new(&configured, &heartbeat_rows);
        let catalog = Arc::new(
            configured
                .iter()
                .map(|(_, check)| (check.name.clone(), api::CheckMeta::of(check)))
                .collect::<std::collections::HashMap<_, _>>(),
        );
        // Heartbeats are pushed, never scheduled.
        let checks = configured
            .into_iter()
            .filter(|(_, check)| {
                !matches!(check.kind, warden_core::config::CheckKind::Heartbeat(_))
            })
            .map(|(check_id, config)| ScheduledCheck { check_id, config })
            .collect();
        let public_url: Arc<str> = Arc::from(
            config
                .hub
                .public_url
                .clone()
                .unwrap_or_else(|| {
                    format!("http://{}", listener_addr(&listener, config.hub.listen))
                })
                .as_str(),
        );
        let live_options = live::LiveOptions::from_env();
        let (bus, recorder_events) = Bus::with_options(live_options.bus_options());
        live::seed(&bus, &store).await?;
        let alerter_events = bus
            .attach_alerter(8_192)
            .ok_or_else(|| HubError::Internal("the alerter's bus tap is taken".to_string()))?;
        let (alerting, alerter) =
            alerting::Alerting::new(&config, Arc::clone(&public_url), alerter_events)
                .map_err(HubError::Notifier)?;
        let metrics = metrics::Metrics::new(
            store.clone(),
            bus.clone(),
            &store.read(warden_store::checks::list).await?,
            Arc::clone(alerting.stats()),
        );
        let (recorded, recorded_rx) = watch::channel(0u64);
        Ok(Hub {
            listener,
            state: AppState {
                store,
                started: Instant::now(),
                bus,
                wake: Arc::new(Notify::new()),
                recorded: recorded_rx,
                heartbeats,
                public_url,
                live: live::Live::new(live_options),
                catalog,
                runs_in_flight: worker::RunsInFlight::default(),
                metrics,
                metrics_public: config.hub.metrics_public,
                alerting,
                badges: Arc::new(config.badges.clone()),
                status_page: config.status_page.clone().map(Arc::new),
            },
            checks,
            worker: options.worker,
            recorder_events,
            alerter,
            recorded,
            admin_token,
            data_dir,
            shutdown_grace: options.shutdown_grace,
            tracker: TaskTracker::new(),
        })
    }

    /// The address actually bound (useful with port 0).
    pub fn local_addr(&self) -> Result<SocketAddr, HubError> {
        self.listener.local_addr().map_err(HubError::Serve)
    }

    /// The admin token created on this start, if the database was new. Shown once, never stored.
    pub fn take_new_admin_token(&mut self) -> Option<String> {
        self.admin_token.take()
    }

    pub fn store(&self) -> &Store {
        &self.state.store
    }

    /// Serves until `shutdown` fires, then drains in order: stop taking requests and
    /// scheduling, stop leasing, let in-flight runs finish (bounded by the shutdown grace, then
    /// they are killed and their leases expire), flush the recorder and the store.
    pub async fn serve(self, shutdown: CancellationToken) -> Result<(), HubError> {
        let addr = self.local_addr()?;
        let Hub {
            listener,
            state,
            checks,
            worker,
            recorder_events,
            alerter,
            recorded,
            data_dir,
            shutdown_grace,
            tracker,
            ..
        } = self;
        let recorder = tokio::spawn(recorder::run_observed(
            state.store.clone(),
            recorder_events,
            recorder::RecorderOptions::default(),
            recorded,
            Some(state.metrics.clone()),
        ));
        let stop_work = CancellationToken::new();
        let abort_runs = CancellationToken::new();
        // Subscribed before anything runs, so the metrics miss no event.
        tracker.spawn(state.metrics.clone().follow(
            state.bus.subscribe(),
            state.store.clone(),
            stop_work.clone(),
        ));
        let pool = WorkerPool::with_runs(
            state.store.clone(),
            state.bus.clone(),
            Arc::clone(&state.wake),
            worker,
            state.runs_in_flight.clone(),
        )
        .with_specs(Arc::new(
            checks
                .iter()
                .filter_map(|check| {
                    let (spec, _) = warden_store::checks::canonical_spec(&check.config).ok()?;
                    Some((check.check_id, Arc::from(spec)))
                })
                .collect(),
        ));
        let handoff = pool.handoff();
        tracker.spawn(pool.run(stop_work.clone(), abort_runs.clone()));
        let sink = StoreSink {
            store: state.store.clone(),
            bus: state.bus.clone(),
            wake: Arc::clone(&state.wake),
            handoff,
        };
        let check_count = checks.len();
        tracker.spawn(Scheduler::new(SystemClock, sink, &checks).run(stop_work.clone()));
        // The scheduler keeps what it needs; the parsed configs would otherwise live as long as
        // the hub (megabytes at 10,000 checks).
        drop(checks);
        tracker.spawn(state.live.clone().fan_out(state.bus.clone()));
        tracker.spawn(query::rollup_loop(state.store.clone(), stop_work.clone()));
        state.alerting.spawn(
            alerter,
            &tracker,
            state.store.clone(),
            state.bus.clone(),
            stop_work.clone(),
        );
        tracker.spawn(state.heartbeats.clone().monitor(
            state.store.clone(),
            state.bus.clone(),
            stop_work.clone(),
        ));
        let app = api::router(state.clone())
            .into_make_service_with_connect_info::<std::net::SocketAddr>();
        tracing::info!(%addr, data = %data_dir.display(), checks = check_count, "hub listening");
        let server_shutdown = shutdown.clone();
        // No Nagle: live events are small frames, and Nagle plus the client's delayed ACK holds
        // them back ~40 ms.
        let listener = axum::serve::ListenerExt::tap_io(listener, |tcp| {
            if let Err(error) = tcp.set_nodelay(true) {
                tracing::debug!(%error, "cannot set TCP_NODELAY");
            }
        });
        let server = axum::serve(listener, app).with_graceful_shutdown(async move {
            server_shutdown.cancelled().await;
        });
        let mut server = Box::pin(server.into_future());
        let result = tokio::select! {
            result = &mut server => result.map_err(HubError::Serve),
            () = shutdown.cancelled() => {
                match tokio::time::timeout(shutdown_grace, &mut server).await {
                    Ok(result) => result.map_err(HubError::Serve),
                    Err(_) => {
                        tracing::warn!(grace = ?shutdown_grace, "in-flight requests did not finish in time; closing");
                        Ok(())
                    }
                }
            }
        };
        drop(server);
        state.live.close_all();
        stop_work.cancel();
        tracker.close();
        if tokio::time::timeout(shutdown_grace, tracker.wait())
            .await
            .is_err()
        {
            tracing::warn!(grace = ?shutdown_grace, "runs still going at the end of the grace; killing them (their leases will expire and they will be retried)");
            abort_runs.cancel();
            tracker.wait().await;
        }
        let store = state.store.clone();
        drop(state);
        if tokio::time::timeout(Duration::from_secs(10), recorder)
            .await
            .is_err()
        {
            tracing::error!("the recorder did not finish; some events may not be stored");
        }
        store.close().await;
        tracing::info!("hub stopped; store flushed");
        result
    }
}

/// The bound address, with an unspecified IP (0.0.0.0) shown as loopback.
fn listener_addr(listener: &TcpListener, configured: SocketAddr) -> SocketAddr {
    let mut addr = listener.local_addr().unwrap_or(configured);
    if addr.ip().is_unspecified() {
        addr.set_ip(std::net::Ipv4Addr::LOCALHOST.into());
    }
    addr
}

/// Enqueues due slots in the store and, in the same write, leases what the local pool has room
/// for; announces them, then hands the leases to the pool (or wakes it).
struct StoreSink {
    store: Store,
    bus: Bus,
    wake: Arc<Notify>,
    handoff: worker::Handoff,
}

impl SlotSink for StoreSink {
    async fn fire(&mut self, slots: Vec<DueSlot>) {
        let names: Vec<(i64, Arc<str>)> = slots
            .iter()
            .map(|slot| (slot.check_id, Arc::clone(&slot.name)))
            .collect();
        let handoff = self.handoff.clone();
        let outcomes = self
            .store
            .write(move |conn| {
                let now = warden_store::now_ms();
                handoff.enqueue_and_lease(conn, &slots, now)
            })
            .await;
        let (outcomes, leases, inserted, held) = match outcomes {
            Ok(written) => written,
            Err(error) => {
                tracing::error!(%error, "cannot enqueue due checks");
                return;
            }
        };
        let mut events = Vec::with_capacity(outcomes.len() + inserted);
        let mut enqueued = 0;
        for ((check_id, name), outcome) in names.iter().zip(outcomes) {
            match outcome {
                SlotOutcome::Enqueued(run_id) => {
                    enqueued += 1;
                    events.push(EventKind::RunQueued {
                        run_id,
                        check_id: Some(*check_id),
                        check: Some(name.to_string()),
                    });
                }
                SlotOutcome::Skipped => {
                    tracing::debug!(check = %name, "slot skipped: previous run still going")
                }
                SlotOutcome::Duplicate(run_id) => {
                    tracing::debug!(check = %name, run_id, "slot already enqueued")
                }
            }
        }
        // The runs enqueued already leased to the pool start now: announced with their
        // `RunQueued`, in one burst, so the pool does not announce them again.
        let names: std::collections::HashMap<i64, &Arc<str>> =
            names.iter().map(|(id, name)| (*id, name)).collect();
        for lease in leases.iter().take(inserted) {
            events.push(EventKind::RunStarted {
                run_id: lease.run_id,
                check_id: lease.check_id,
                check: lease
                    .check_id
                    .and_then(|id| names.get(&id))
                    .map(|name| name.to_string()),
                attempt: lease.attempt,
                worker: self.handoff.owner().to_string(),
            });
        }
        self.bus.publish_all(events).await;
        // After the announcements, so a run's `RunStarted` never comes before its `RunQueued`.
        let handed = leases.len();
        if !self.handoff.give(leases, inserted, held) {
            tracing::warn!(handed, "the local pool has stopped; its leases will expire");
        }
        if enqueued > handed {
            self.wake.notify_one();
        }
    }
}

#[cfg(test)]
mod tests;
