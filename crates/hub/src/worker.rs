//! The hub's local worker pool: leases runs from the queue (as many as it has free slots),
//! executes them, heartbeats long runs in one batched write, and reports results through the
//! queue's fencing. Results and output go on the bus; the recorder stores them.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::{Notify, Semaphore, mpsc};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use warden_core::Status;
use warden_core::config::{CheckConfig, CheckKind};
use warden_exec::check::{CheckOutcome, judge};
use warden_exec::host::{HostSampler, judge_host};
use warden_exec::probe::judge::ProbeOutcome;
use warden_exec::probe::{self, FailureReason, Observation};
use warden_exec::{ProcessSpec, Stream};
use warden_store::queue::{self, Completion, Lease};
use warden_store::{Store, StoreError};

use crate::bus::{Bus, EventKind, OutputStream, SamplePoint};

/// How the pool behaves.
#[derive(Debug, Clone)]
pub struct WorkerOptions {
    /// Runs at once, of every kind (in-process probes mostly wait on the network).
    pub concurrency: usize,
    /// Of those, processes (`exec` checks) at once: bounded by what the machine can spawn. The
    /// pool's process runner has this many threads; the other leased exec runs wait in its queue.
    pub process_concurrency: usize,
    /// Lease length; heartbeats extend it every third of it.
    pub lease: Duration,
    /// Poll interval when idle and not woken (runs that become due by time, retries).
    pub idle_poll: Duration,
    /// Output kept per run.
    pub output_cap: usize,
    /// Grace between SIGTERM and SIGKILL for timed-out checks.
    pub kill_grace: Duration,
    /// The name leases are held under.
    pub owner: String,
}

impl Default for WorkerOptions {
    fn default() -> Self {
        let cores = std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(2);
        WorkerOptions {
            concurrency: 256,
            process_concurrency: 4 * cores,
            lease: Duration::from_secs(30),
            idle_poll: Duration::from_millis(500),
            output_cap: warden_exec::DEFAULT_OUTPUT_CAP,
            kill_grace: Duration::from_secs(5),
            owner: format!("hub-{}", std::process::id()),
        }
    }
}

/// The run kinds the local pool executes; other kinds are left for workers that run them.
pub const LOCAL_KINDS: &[&str] = &["check"];

pub(crate) struct InFlight {
    fence: i64,
    cancel: CancellationToken,
}

/// The local pool's runs in progress, by run id; shared so a cancel through the API stops the
/// process at once instead of at the next lease heartbeat.
#[derive(Clone, Default)]
pub(crate) struct RunsInFlight(Arc<Mutex<HashMap<i64, InFlight>>>);

impl RunsInFlight {
    /// Stops a local run if it is running here; true when it was.
    pub(crate) fn cancel(&self, run_id: i64) -> bool {
        match self.0.lock() {
            Ok(map) => map
                .get(&run_id)
                .map(|entry| entry.cancel.cancel())
                .is_some(),
            Err(_) => false,
        }
    }
}

/// The configured checks' definitions (`checks.spec`) by check id, for the runs the
/// scheduler enqueues without a copy of them (`queue::CHECK_SPEC_PAYLOAD`).
pub(crate) type CheckSpecs = Arc<HashMap<i64, Arc<str>>>;

/// The configured checks' definitions parsed, by check id, with the text they were parsed from.
type ParsedSpecs = Arc<HashMap<i64, (Arc<str>, Arc<CheckConfig>)>>;

/// Host samplers by check id: each keeps the previous counters its rates come from.
type HostSamplers = Arc<Mutex<HashMap<String, Arc<Mutex<HostSampler>>>>>;

/// The local pool.
pub struct WorkerPool {
    store: Store,
    bus: Bus,
    wake: Arc<Notify>,
    options: WorkerOptions,
    in_flight: Arc<Mutex<HashMap<i64, InFlight>>>,
    hosts: HostSamplers,
    /// Runs the `exec` checks' processes (see [`WorkerPool::start_exec`]).
    processes: warden_exec::Runner,
    /// Free run slots.
    slots: Arc<Semaphore>,
    /// Leases taken for the pool by someone else's write (the scheduler's enqueue).
    handed: mpsc::UnboundedReceiver<Handed>,
    hand: mpsc::UnboundedSender<Handed>,
    specs: CheckSpecs,
    parsed: ParsedSpecs,
}

/// Lets the scheduler lease for the local pool in the same write that enqueues due slots, and
/// hand the leases straight over: one write and no wake-up instead of two writes and a wake-up.
/// The runs are in the queue, leased and fenced as if the pool had leased them itself.
#[derive(Clone)]
pub(crate) struct Handoff {
    hand: mpsc::UnboundedSender<Handed>,
    specs: CheckSpecs,
    slots: Arc<Semaphore>,
    owner: Arc<str>,
    lease_ms: i64,
}

impl Handoff {
    /// Enqueues due slots (inside the caller's write), those the pool has room for already
    /// leased to it, then leases other due runs with the room left.
    pub(crate) fn enqueue_and_lease(
        &self,
        conn: &warden_store::Connection,
        slots: &[crate::scheduler::DueSlot],
        now: i64,
    ) -> Result<(Vec<crate::scheduler::SlotOutcome>, Vec<Lease>, usize, Slots), StoreError> {
        // The free slots are taken now, so the pool's own leasing cannot count them too (its
        // runs would then wait for slots one at a time, each freed slot a wake-up).
        let mut held = Slots::take_free(&self.slots);
        let room = held.count();
        let leasing = crate::scheduler::Leasing {
            to: queue::LeaseTo {
                owner: &self.owner,
                lease_until: now.saturating_add(self.lease_ms.max(1)),
            },
            room,
        };
        let (outcomes, mut leases) =
            crate::scheduler::enqueue_slots_leasing(conn, slots, now, Some(leasing))?;
        let specs = &self.specs;
        for lease in &mut leases {
            queue::resolve_payload(conn, lease, &|check_id| {
                specs.get(&check_id).map(|spec| spec.to_string())
            })?;
        }
        let inserted = leases.len();
        let more = self.lease_up_to(conn, room.saturating_sub(inserted), now)?;
        leases.extend(more);
        held.keep(leases.len());
        Ok((outcomes, leases, inserted, held))
    }

    /// Leases up to `free` due runs of the kinds the pool runs, in the pool's name.
    fn lease_up_to(
        &self,
        conn: &warden_store::Connection,
        free: usize,
        now: i64,
    ) -> Result<Vec<Lease>, StoreError> {
        let specs = &self.specs;
        queue::lease_kinds_with_specs(
            conn,
            &self.owner,
            LOCAL_KINDS,
            free,
            self.lease_ms,
            now + crate::scheduler::EARLY_MS,
            &|check_id| specs.get(&check_id).map(|spec| spec.to_string()),
        )
    }

    /// Gives the pool leases taken for it; false when the pool has stopped (the leases then
    /// expire and go back to the queue).
    pub(crate) fn give(&self, leases: Vec<Lease>, announced: usize, slots: Slots) -> bool {
        leases.is_empty()
            || self
                .hand
                .send(Handed {
                    leases,
                    announced,
                    slots,
                })
                .is_ok()
    }

    /// The name runs leased for the pool are held under (`RunStarted.worker`).
    pub(crate) fn owner(&self) -> &str {
        &self.owner
    }
}

/// Leases handed to the pool; the first `announced` of them were announced (`RunStarted`) by
/// whoever took them, in the same burst as their `RunQueued`. `slots` holds a run slot for
/// each (or fewer, should some have been taken meanwhile: the rest wait for theirs).
pub(crate) struct Handed {
    leases: Vec<Lease>,
    announced: usize,
    slots: Slots,
}

/// Run slots held together (one permit of the pool's semaphore each), handed out one per run.
#[derive(Default)]
pub(crate) struct Slots(Option<tokio::sync::OwnedSemaphorePermit>);

impl Slots {
    /// Every slot free now (none if none is).
    fn take_free(semaphore: &Arc<Semaphore>) -> Slots {
        let free = u32::try_from(semaphore.available_permits()).unwrap_or(u32::MAX);
        Slots(
            (free > 0)
                .then(|| Arc::clone(semaphore).try_acquire_many_owned(free).ok())
                .flatten(),
        )
    }

    fn count(&self) -> usize {
        self.0.as_ref().map_or(0, |held| held.num_permits())
    }

    fn add(&mut self, more: Slots) {
        match (&mut self.0, more.0) {
            (Some(held), Some(more)) => held.merge(more),
            (none @ None, more) => *none = more,
            (_, None) => {}
        }
    }

    /// Frees all but `n`.
    fn keep(&mut self, n: usize) {
        let extra = self.count().saturating_sub(n);
        if extra > 0 {
            drop(self.0.as_mut().and_then(|held| held.split(extra)));
        }
    }

    /// One slot, if any is held.
    fn one(&mut self) -> Option<tokio::sync::OwnedSemaphorePermit> {
        self.0
            .as_mut()
            .filter(|held| held.num_permits() > 0)
            .and_then(|held| held.split(1))
    }
}

/// A finished attempt on its way to the store.
struct Finished {
    run_id: i64,
    fence: i64,
    check_id: Option<i64>,
    check: Option<String>,
    completion: Completion,
    outcome: Judged,
    duration_ms: i64,
    finished_at: i64,
    samples: Vec<SamplePoint>,
}

impl WorkerPool {
    pub fn new(store: Store, bus: Bus, wake: Arc<Notify>, options: WorkerOptions) -> WorkerPool {
        WorkerPool::with_runs(store, bus, wake, options, RunsInFlight::default())
    }

    pub(crate) fn with_runs(
        store: Store,
        bus: Bus,
        wake: Arc<Notify>,
        options: WorkerOptions,
        runs: RunsInFlight,
    ) -> WorkerPool {
        let (hand, handed) = mpsc::unbounded_channel();
        WorkerPool {
            store,
            bus,
            wake,
            in_flight: runs.0,
            hosts: Arc::default(),
            processes: warden_exec::Runner::new(options.process_concurrency.max(1)),
            slots: Arc::new(Semaphore::new(options.concurrency.max(1))),
            handed,
            hand,
            specs: CheckSpecs::default(),
            parsed: Arc::default(),
            options,
        }
    }

    /// The definitions of the configured checks, so leasing their runs reads none from the
    /// store, and their runs' payloads are not parsed again for each run.
    pub(crate) fn with_specs(mut self, specs: CheckSpecs) -> WorkerPool {
        self.parsed = Arc::new(
            specs
                .iter()
                .filter_map(|(&check_id, spec)| {
                    let config = serde_json::from_str::<CheckConfig>(spec).ok()?;
                    Some((check_id, (Arc::clone(spec), Arc::new(config))))
                })
                .collect(),
        );
        self.specs = specs;
        self
    }

    /// A lease's check definition: the one parsed at start when the payload is that check's
    /// configured definition (nearly every run), else parsed from the payload.
    fn config_of(&self, lease: &Lease) -> Result<Arc<CheckConfig>, serde_json::Error> {
        let known = lease
            .check_id
            .and_then(|check_id| self.parsed.get(&check_id))
            .filter(|(spec, _)| **spec == *lease.payload);
        match known {
            Some((_, config)) => Ok(Arc::clone(config)),
            None => serde_json::from_str(&lease.payload).map(Arc::new),
        }
    }

    /// A handle for leasing on the pool's behalf (see [`Handoff`]).
    pub(crate) fn handoff(&self) -> Handoff {
        Handoff {
            hand: self.hand.clone(),
            specs: Arc::clone(&self.specs),
            slots: Arc::clone(&self.slots),
            owner: Arc::from(self.options.owner.as_str()),
            lease_ms: i64::try_from(self.options.lease.as_millis()).unwrap_or(30_000),
        }
    }

    /// Leases and runs work until `stop` fires; then stops leasing and waits for in-flight runs
    /// (a run still going when `abort` fires is killed; its lease expires and it is retried).
    pub async fn run(mut self, stop: CancellationToken, abort: CancellationToken) {
        let slots = Arc::clone(&self.slots);
        let runs = TaskTracker::new();
        let heartbeats = tokio::spawn(heartbeat_loop(
            self.store.clone(),
            Arc::clone(&self.in_flight),
            self.options.lease,
            stop.clone(),
        ));
        let (completions, finished) = mpsc::channel(COMPLETIONS);
        let concurrency = self.options.concurrency.max(1);
        let held = Arc::clone(&self.slots);
        let completer = tokio::spawn(complete_loop(
            self.store.clone(),
            self.bus.clone(),
            finished,
            move || concurrency.saturating_sub(held.available_permits()),
        ));
        let handoff = self.handoff();
        let mut handed = std::mem::replace(&mut self.handed, mpsc::unbounded_channel().1);
        loop {
            // Leases handed over by the scheduler first; then wait for a free slot (or more
            // handed leases) before leasing.
            while let Ok(Handed {
                leases,
                announced,
                slots: held,
            }) = handed.try_recv()
            {
                self.start(leases, announced, held, &slots, &runs, &abort, &completions)
                    .await;
            }
            let first = tokio::select! {
                () = stop.cancelled() => break,
                Some(Handed { leases, announced, slots: held }) = handed.recv() => {
                    self.start(leases, announced, held, &slots, &runs, &abort, &completions).await;
                    continue;
                }
                permit = Arc::clone(&slots).acquire_owned() => match permit { Ok(p) => p, Err(_) => break },
            };
            // A busy pool refills in lots: a slot freed by one finished run would otherwise be
            // one lease write per run (at ~1,500 exec runs a second, most of the writer's
            // work). The leases already held cover the pause; an idle pool leases at once.
            let busy = self
                .options
                .concurrency
                .saturating_sub(slots.available_permits() + 1);
            // A lot is at most a quarter of the pool: a pool of under 8 slots leases at once.
            let lease_batch = (self.options.concurrency / 4).clamp(1, LEASE_BATCH);
            let mut lingered = Duration::ZERO;
            while busy > 0
                && slots.available_permits() + 1 < lease_batch
                && lingered < LEASE_LINGER_MAX
            {
                tokio::select! {
                    () = stop.cancelled() => break,
                    () = tokio::time::sleep(LEASE_LINGER) => {}
                }
                lingered += LEASE_LINGER;
            }
            if stop.is_cancelled() {
                break;
            }
            // Every free slot is taken before the lease, for the same reason as the scheduler's.
            let mut held = Slots(Some(first));
            held.add(Slots::take_free(&slots));
            let free = held.count();
            let handoff = handoff.clone();
            let leased = self
                .store
                .write(move |conn| handoff.lease_up_to(conn, free, warden_store::now_ms()))
                .await;
            let leases = match leased {
                Ok(leases) => leases,
                Err(StoreError::Closed) => break,
                Err(error) => {
                    tracing::error!(%error, "cannot lease runs");
                    Vec::new()
                }
            };
            if leases.is_empty() {
                drop(held);
                tokio::select! {
                    () = stop.cancelled() => break,
                    Some(Handed { leases, announced, slots: held }) = handed.recv() => {
                        self.start(leases, announced, held, &slots, &runs, &abort, &completions).await;
                    }
                    () = self.wake.notified() => {}
                    () = tokio::time::sleep(self.options.idle_poll) => {}
                }
                continue;
            }
            held.keep(leases.len());
            self.start(leases, 0, held, &slots, &runs, &abort, &completions)
                .await;
        }
        // Leases handed over but not started expire and go back to the queue.
        handed.close();
        runs.close();
        runs.wait().await;
        drop(completions);
        let _ = completer.await;
        heartbeats.abort();
    }

    /// Starts the leased runs, each holding a run slot (from `held`, else waited for):
    /// announces them all at once (`RunStarted`; the first `announced` were announced already),
    /// then finishes the trivial ones (`noop`) on the spot, hands `exec` runs to the process
    /// runner and gives every other one a task of its own.
    #[allow(clippy::too_many_arguments)]
    async fn start(
        &self,
        leases: Vec<Lease>,
        announced: usize,
        mut held: Slots,
        slots: &Arc<Semaphore>,
        runs: &TaskTracker,
        abort: &CancellationToken,
        completions: &mpsc::Sender<Finished>,
    ) {
        let mut starting = Vec::with_capacity(leases.len());
        for lease in leases {
            let permit = match held.one() {
                Some(permit) => permit,
                None => match Arc::clone(slots).acquire_owned().await {
                    Ok(permit) => permit,
                    // Closed: the pool is stopping; the rest of the leases expire.
                    Err(_) => break,
                },
            };
            let config = self.config_of(&lease);
            starting.push((lease, config, permit));
        }
        self.bus
            .publish_all(
                starting
                    .iter()
                    .skip(announced)
                    .map(|(lease, config, _)| EventKind::RunStarted {
                        run_id: lease.run_id,
                        check_id: lease.check_id,
                        check: config.as_ref().ok().map(|c| c.name.clone()),
                        attempt: lease.attempt,
                        worker: self.options.owner.clone(),
                    })
                    .collect::<Vec<_>>(),
            )
            .await;
        for (lease, config, permit) in starting {
            let started = Instant::now();
            if let Ok(config) = &config
                && lease.kind == "check"
                && matches!(config.kind, CheckKind::Noop)
            {
                let outcome = Judged::plain(Status::Ok, "ok");
                let finished = finished(
                    &lease,
                    Some(config.name.clone()),
                    outcome,
                    started.elapsed(),
                );
                drop(permit);
                report(completions, finished).await;
                continue;
            }
            let cancel = abort.child_token();
            if let Ok(mut map) = self.in_flight.lock() {
                map.insert(
                    lease.run_id,
                    InFlight {
                        fence: lease.fence,
                        cancel: cancel.clone(),
                    },
                );
            }
            if let Ok(config) = &config
                && lease.kind == "check"
                && let CheckKind::Exec(exec) = &config.kind
            {
                let spec = exec_spec(exec, config.timeout, &self.options);
                let (name, timeout) = (config.name.clone(), config.timeout);
                self.start_exec(
                    spec,
                    lease,
                    name,
                    timeout,
                    cancel,
                    permit,
                    runs,
                    completions,
                );
                continue;
            }
            let job = RunJob {
                in_flight: Arc::clone(&self.in_flight),
                hosts: Arc::clone(&self.hosts),
                completions: completions.clone(),
            };
            runs.spawn(async move {
                job.execute(lease, config, started, cancel).await;
                drop(permit);
            });
        }
    }

    /// Hands an `exec` run to the process runner, with no task of its own: the runner's thread
    /// judges the result and gives it to the completer. Its output lines are published by a
    /// task started at its first line, and all of them are out before its result.
    #[allow(clippy::too_many_arguments)]
    fn start_exec(
        &self,
        spec: ProcessSpec,
        lease: Lease,
        name: String,
        timeout: Duration,
        cancel: CancellationToken,
        permit: tokio::sync::OwnedSemaphorePermit,
        runs: &TaskTracker,
        completions: &mpsc::Sender<Finished>,
    ) {
        let run_id = lease.run_id;
        let (line_tx, line_rx) = mpsc::channel(256);
        // Set when a task publishes the lines; the result waits for it to finish.
        let forwarding: Arc<Mutex<Option<tokio::sync::oneshot::Receiver<()>>>> = Arc::default();
        let first_line = {
            let forwarding = Arc::clone(&forwarding);
            let bus = self.bus.clone();
            let cap = self.options.output_cap;
            let runtime = tokio::runtime::Handle::current();
            warden_exec::FirstLine(Box::new(move || {
                let (done, finished) = tokio::sync::oneshot::channel();
                if let Ok(mut slot) = forwarding.lock() {
                    *slot = Some(finished);
                }
                runtime.spawn(async move {
                    forward_lines(bus, run_id, line_rx, cap).await;
                    let _ = done.send(());
                });
            }))
        };
        let in_flight = Arc::clone(&self.in_flight);
        let completions = completions.clone();
        // Keeps the pool's shutdown waiting for this run, as a task of its own would.
        let tracked = runs.token();
        let then = move |result: warden_exec::ProcessResult| {
            let forwarder = forwarding.lock().ok().and_then(|mut slot| slot.take());
            if let Some(finished) = forwarder {
                // On the runner's thread, outside the runtime: waiting here is allowed.
                let _ = finished.blocking_recv();
            }
            let outcome = judge(&result, timeout).map(Judged::from);
            if let Some(outcome) = settle(&in_flight, run_id, outcome) {
                // The process's own time: not the wait for one of the runner's threads.
                let finished = finished(&lease, Some(name), outcome, result.duration);
                if completions.blocking_send(finished).is_err() {
                    tracing::warn!(
                        run_id,
                        "the pool stopped before this result could be recorded"
                    );
                }
            }
            drop(permit);
            drop(tracked);
        };
        if !self
            .processes
            .start(spec, Some(line_tx), Some(first_line), cancel, then)
        {
            // Only while the pool itself is being dropped; the lease expires and the run is
            // retried.
            tracing::warn!(run_id, "the process runner has stopped; run not started");
        }
    }
}

/// A run is over: it leaves the runs in flight. `None` (cancelled, nothing to report) is
/// logged here.
fn settle(
    in_flight: &Mutex<HashMap<i64, InFlight>>,
    run_id: i64,
    outcome: Option<Judged>,
) -> Option<Judged> {
    if let Ok(mut map) = in_flight.lock() {
        map.remove(&run_id);
    }
    if outcome.is_none() {
        tracing::info!(run_id, "run cancelled; nothing reported");
    }
    outcome
}

/// Hands a finished attempt to the completer (waiting for room).
async fn report(completions: &mpsc::Sender<Finished>, finished: Finished) {
    let run_id = finished.run_id;
    if completions.send(finished).await.is_err() {
        tracing::warn!(
            run_id,
            "the pool stopped before this result could be recorded"
        );
    }
}

/// A run's `result` column: details beyond its status and summary.
#[derive(serde::Serialize)]
struct RunResult<'a> {
    duration_ms: i64,
    timed_out: bool,
    reason: Option<&'static str>,
    notes: &'a [String],
    perfdata: Vec<PerfValue<'a>>,
}

#[derive(serde::Serialize)]
struct PerfValue<'a> {
    series: &'a str,
    value: f64,
}

/// A judged attempt in the shape the completer writes.
fn finished(lease: &Lease, check: Option<String>, outcome: Judged, took: Duration) -> Finished {
    let finished_at = warden_store::now_ms();
    let duration_ms = i64::try_from(took.as_millis()).unwrap_or(i64::MAX);
    let samples = samples_of(check.as_deref().unwrap_or("run"), &outcome, finished_at);
    let result = RunResult {
        duration_ms,
        timed_out: outcome.timed_out,
        reason: outcome.reason,
        notes: &outcome.notes,
        perfdata: samples
            .iter()
            .map(|s| PerfValue {
                series: &s.series,
                value: s.value,
            })
            .collect(),
    };
    let completion = Completion {
        status: Some(outcome.status.as_str().to_string()),
        exit_code: outcome.exit_code,
        summary: Some(outcome.summary.clone()),
        // Plain numbers, strings and lists: serialising cannot fail.
        result: serde_json::to_string(&result).ok(),
    };
    Finished {
        run_id: lease.run_id,
        fence: lease.fence,
        check_id: lease.check_id,
        check,
        completion,
        outcome,
        duration_ms,
        finished_at,
        samples,
    }
}

/// A busy pool leases when this many slots are free (at most a quarter of its slots), checking
/// every [`LEASE_LINGER`], or after [`LEASE_LINGER_MAX`]: at ~1,800 exec runs a second that is
/// a lot of ~36 leases every 20 ms rather than one of ~9 every 5 ms, for a quarter of the
/// writes. The runs leased already cover the pause (the pool holds up to 256, its processes run
/// 4 × cores at once).
const LEASE_BATCH: usize = 64;
const LEASE_LINGER: Duration = Duration::from_millis(5);
const LEASE_LINGER_MAX: Duration = Duration::from_millis(20);
/// With other runs still going, the completer waits this long for their results to write them
/// together; a lone run (`warden run --wait`) is written at once. It waits another step, up to
/// [`COMPLETE_LINGER_MAX`] in all, while each step brings at least [`COMPLETE_LINGER_MORE`]
/// results (over 1,600 a second): only a saturated pool's results wait longer than one step.
const COMPLETE_LINGER: Duration = Duration::from_millis(5);
const COMPLETE_LINGER_MAX: Duration = Duration::from_millis(20);
const COMPLETE_LINGER_MORE: usize = 8;

/// Finished attempts waiting for the completer; a full channel makes runs wait to report.
const COMPLETIONS: usize = 4_096;
/// Most attempts completed in one write.
const COMPLETE_BATCH: usize = 512;

/// How long a check's latest run that kept its status may wait to be written to its row
/// (`checks.last_run_id`, `last_run_at`, `summary`). Live views, the API and `/metrics` show
/// it at once from the bus; the row catches up within this, at shutdown, or after a crash
/// from the runs themselves (`checks::repair_last_runs` at start). Each check in the lot is one
/// update, so the lot's interval is what the updates are spread over: 30 s turns a check
/// running every 10 s into one update every third run.
const LAST_RUNS_EVERY: Duration = Duration::from_secs(30);

/// A check's latest run that kept its status, not written to its row yet.
struct PendingLastRun {
    run_id: i64,
    status: Status,
    summary: String,
    at: i64,
}

/// Writes finished attempts, everything waiting in one write: each result through the queue's
/// fencing, and with it the run's samples and, when the run changes it, the check's status;
/// then announces them (`RunFinished`, already stored). An attempt whose fence no longer holds
/// is not announced. A run that keeps its check's status is written to the check's row later,
/// with every other such run, at most every [`LAST_RUNS_EVERY`]: at a thousand runs a second
/// one row per run was a random page written per run.
async fn complete_loop(
    store: Store,
    bus: Bus,
    mut finished: mpsc::Receiver<Finished>,
    running: impl Fn() -> usize,
) {
    let series_ids = crate::recorder::SeriesIds::default();
    let mut batch = Vec::with_capacity(COMPLETE_BATCH);
    let mut pending: HashMap<i64, PendingLastRun> = HashMap::new();
    // The status this loop last wrote to each check's row: a result with the same status skips
    // even the (matching-nothing) update. Only this loop writes the statuses of the runs it
    // completes; should another path change one, the next lot of last runs (which writes the
    // status too, guarded by the run id) sets it right.
    let mut written: Arc<HashMap<i64, Status>> = Arc::default();
    let mut last_flush = Instant::now();
    loop {
        let flush_at = last_flush + LAST_RUNS_EVERY;
        // Cancel safety: `recv_many` is cancel-safe (nothing is lost when the sleep wins).
        let received = tokio::select! {
            received = finished.recv_many(&mut batch, COMPLETE_BATCH) => received,
            () = tokio::time::sleep_until(flush_at.into()), if !pending.is_empty() => usize::MAX,
        };
        if received == 0 {
            break;
        }
        // Linger for the results of the runs still going, in steps, for as long as they come
        // fast: fewer, larger writes (each write rewrites the queue's few hot index pages,
        // whatever its size). Results coming slowly are written after one step.
        let mut lingered = Duration::ZERO;
        while received != usize::MAX
            && batch.len() < COMPLETE_BATCH
            && running() > batch.len()
            && lingered < COMPLETE_LINGER_MAX
        {
            let before = batch.len();
            tokio::time::sleep(COMPLETE_LINGER).await;
            lingered += COMPLETE_LINGER;
            while batch.len() < COMPLETE_BATCH {
                match finished.try_recv() {
                    Ok(item) => batch.push(item),
                    Err(_) => break,
                }
            }
            if batch.len() - before < COMPLETE_LINGER_MORE {
                break;
            }
        }
        let flush: Vec<warden_store::checks::LastRun> = if last_flush.elapsed() >= LAST_RUNS_EVERY {
            last_flush = Instant::now();
            pending
                .drain()
                .map(|(check_id, run)| last_run(check_id, run))
                .collect()
        } else {
            Vec::new()
        };
        let taken = std::mem::take(&mut batch);
        let cache = Arc::clone(&series_ids);
        let known = Arc::clone(&written);
        let outcome = store
            .write(move |conn| {
                let mut points = Vec::new();
                let mut accepted = Vec::with_capacity(taken.len());
                let mut kept = Vec::new();
                for item in taken {
                    // A refused result is this attempt's alone: the others still go in.
                    match queue::complete(
                        conn,
                        item.run_id,
                        item.fence,
                        &item.completion,
                        item.finished_at,
                    ) {
                        Ok(()) => {}
                        Err(error @ (StoreError::StaleLease { .. } | StoreError::WrongState { .. } | StoreError::RunNotFound(_))) => {
                            tracing::warn!(run_id = item.run_id, %error, "result refused; another attempt owns this run");
                            continue;
                        }
                        Err(error) => return Err(error),
                    }
                    match item.check_id {
                        Some(check_id) if known.get(&check_id) == Some(&item.outcome.status) => {
                            kept.push(true);
                        }
                        Some(check_id) => {
                            let changed = warden_store::checks::record_status_if_changed(
                                conn,
                                check_id,
                                item.run_id,
                                item.outcome.status.as_str(),
                                &item.outcome.summary,
                                item.finished_at,
                            )?;
                            kept.push(!changed);
                        }
                        None => kept.push(false),
                    }
                    crate::recorder::resolve_samples(conn, &cache, &item.samples, &mut points)?;
                    accepted.push(item);
                }
                warden_store::samples::insert(conn, &points)?;
                warden_store::checks::record_last_runs(conn, &flush)?;
                Ok((accepted, kept))
            })
            .await;
        let accepted = match outcome {
            Ok((accepted, kept)) => {
                let statuses = Arc::make_mut(&mut written);
                for (item, kept) in accepted.iter().zip(kept) {
                    let Some(check_id) = item.check_id else {
                        continue;
                    };
                    // Written now, or found already so in the row: the row has this status.
                    statuses.insert(check_id, item.outcome.status);
                    if !kept {
                        pending.remove(&check_id);
                        continue;
                    }
                    let newer = pending
                        .get(&check_id)
                        .is_none_or(|run| run.run_id < item.run_id);
                    if newer {
                        pending.insert(
                            check_id,
                            PendingLastRun {
                                run_id: item.run_id,
                                status: item.outcome.status,
                                summary: item.outcome.summary.clone(),
                                at: item.finished_at,
                            },
                        );
                    }
                }
                accepted
            }
            Err(error) => {
                // The runs stay leased; their leases expire and they are retried. Last runs
                // that were to be written in it are written by their checks' next runs (or
                // restored at the next start).
                tracing::error!(%error, "cannot record finished runs");
                if let Ok(mut ids) = series_ids.lock() {
                    ids.clear();
                }
                continue;
            }
        };
        bus.publish_all(accepted.into_iter().map(|item| EventKind::RunFinished {
            run_id: item.run_id,
            check_id: item.check_id,
            check: item.check,
            status: item.outcome.status,
            summary: item.outcome.summary,
            exit_code: item.outcome.exit_code,
            duration_ms: item.duration_ms,
            finished_at: item.finished_at,
            samples: item.samples,
            reason: item.outcome.reason,
            stored: true,
        }))
        .await;
    }
    if pending.is_empty() {
        return;
    }
    let flush: Vec<_> = pending
        .drain()
        .map(|(check_id, run)| last_run(check_id, run))
        .collect();
    if let Err(error) = store
        .write(move |conn| warden_store::checks::record_last_runs(conn, &flush))
        .await
    {
        tracing::warn!(%error, "cannot record the checks' last runs; they are restored at the next start");
    }
}

fn last_run(check_id: i64, run: PendingLastRun) -> warden_store::checks::LastRun {
    warden_store::checks::LastRun {
        check_id,
        run_id: run.run_id,
        status: run.status.as_str().to_string(),
        summary: run.summary,
        at: run.at,
    }
}

/// Extends every in-flight lease every third of the lease length, in one write. A run whose
/// lease was lost (expired and taken, or cancelled) is told to stop.
async fn heartbeat_loop(
    store: Store,
    in_flight: Arc<Mutex<HashMap<i64, InFlight>>>,
    lease: Duration,
    stop: CancellationToken,
) {
    let every = (lease / 3).max(Duration::from_millis(100));
    loop {
        tokio::select! {
            () = stop.cancelled() => return,
            () = tokio::time::sleep(every) => {}
        }
        let held: Vec<(i64, i64)> = match in_flight.lock() {
            Ok(map) => map
                .iter()
                .map(|(run_id, entry)| (*run_id, entry.fence))
                .collect(),
            Err(_) => continue,
        };
        if held.is_empty() {
            continue;
        }
        let lease_ms = i64::try_from(lease.as_millis()).unwrap_or(30_000);
        let lost = store
            .write(move |conn| {
                let until = warden_store::now_ms() + lease_ms;
                let mut lost = Vec::new();
                for (run_id, fence) in held {
                    if let Err(error) = queue::heartbeat(conn, run_id, fence, until) {
                        lost.push((run_id, error.to_string()));
                    }
                }
                Ok(lost)
            })
            .await
            .unwrap_or_default();
        for (run_id, reason) in lost {
            tracing::warn!(run_id, %reason, "lease lost; stopping the run");
            if let Ok(map) = in_flight.lock()
                && let Some(entry) = map.get(&run_id)
            {
                entry.cancel.cancel();
            }
        }
    }
}

struct RunJob {
    in_flight: Arc<Mutex<HashMap<i64, InFlight>>>,
    hosts: HostSamplers,
    completions: mpsc::Sender<Finished>,
}

/// A finished run's result in one shape for every kind.
struct Judged {
    status: Status,
    summary: String,
    exit_code: Option<i64>,
    /// label → value; the series is `<check>.<label>`.
    samples: Vec<(String, f64)>,
    notes: Vec<String>,
    timed_out: bool,
    /// Why a probe failed (`dns`, `connect`, `tls`, `timeout`, `http`, `condition`).
    reason: Option<&'static str>,
}

impl Judged {
    fn plain(status: Status, summary: impl Into<String>) -> Judged {
        Judged::from(CheckOutcome::plain(status, summary))
    }
}

impl From<CheckOutcome> for Judged {
    fn from(outcome: CheckOutcome) -> Judged {
        Judged {
            status: outcome.status,
            summary: outcome.summary,
            exit_code: outcome.exit_code,
            samples: outcome
                .perfdata
                .iter()
                .filter_map(|item| item.value.map(|value| (item.label.clone(), value)))
                .collect(),
            notes: outcome.notes,
            timed_out: outcome.timed_out,
            reason: outcome.timed_out.then_some("timeout"),
        }
    }
}

impl From<ProbeOutcome> for Judged {
    fn from(outcome: ProbeOutcome) -> Judged {
        Judged {
            status: outcome.status,
            summary: outcome.summary,
            exit_code: None,
            samples: outcome.samples,
            notes: outcome.notes,
            timed_out: outcome.reason == Some(FailureReason::Timeout),
            reason: outcome.reason.map(FailureReason::as_str),
        }
    }
}

impl RunJob {
    /// Runs an announced attempt (`RunStarted` is out) and reports its result.
    async fn execute(
        self,
        lease: Lease,
        config: Result<Arc<CheckConfig>, serde_json::Error>,
        started: Instant,
        cancel: CancellationToken,
    ) {
        let run_id = lease.run_id;
        let check_name = config.as_ref().ok().map(|c| c.name.clone());
        let outcome = match (&config, lease.kind.as_str()) {
            (Ok(config), "check") => self.run_check(config, cancel).await,
            (Err(error), "check") => Some(Judged::plain(
                Status::Unknown,
                format!("the run's check definition is unreadable: {error}"),
            )),
            (_, other) => Some(Judged::plain(
                Status::Unknown,
                format!("the local worker does not run `{other}` runs"),
            )),
        };
        let Some(outcome) = settle(&self.in_flight, run_id, outcome) else {
            return;
        };
        report(
            &self.completions,
            finished(&lease, check_name, outcome, started.elapsed()),
        )
        .await;
    }

    async fn run_check(&self, config: &CheckConfig, cancel: CancellationToken) -> Option<Judged> {
        let timeout = config.timeout;
        let probed = |observation: Observation, conditions: &[String]| {
            (!cancel.is_cancelled()).then(|| judge_probe(observation, conditions))
        };
        match &config.kind {
            CheckKind::Noop => Some(Judged::plain(Status::Ok, "ok")),
            CheckKind::Http(http) => probed(
                probe::http::probe_http(http, timeout, &cancel).await,
                &http.conditions,
            )
            .map(Judged::from),
            CheckKind::Tcp(tcp) => {
                let mut outcome = probed(
                    probe::tcp::probe_tcp(tcp, timeout, &cancel).await,
                    &tcp.conditions,
                )?;
                if let Some(expected) = &tcp.expect
                    && outcome.sample("expect_matched") == Some(0.0)
                {
                    outcome.worsen(
                        Status::Crit,
                        FailureReason::Condition,
                        format!("expected {expected:?} was not received"),
                    );
                }
                Some(outcome.into())
            }
            CheckKind::Dns(dns) => {
                let mut outcome = probed(
                    probe::dns::probe_dns(dns, timeout, &cancel).await,
                    &dns.conditions,
                )?;
                if !dns.expect.is_empty() && outcome.sample("expect_matched") == Some(0.0) {
                    let summary = format!(
                        "expected answers {} not all present; {}",
                        dns.expect.join(", "),
                        outcome.summary
                    );
                    outcome.worsen(Status::Crit, FailureReason::Condition, summary);
                }
                Some(outcome.into())
            }
            CheckKind::Icmp(icmp) => {
                let mut outcome = probed(
                    probe::icmp::probe_icmp(icmp, timeout, &cancel).await,
                    &icmp.conditions,
                )?;
                if let Some(loss) = outcome.sample("loss_percent") {
                    let summary = outcome.summary.clone();
                    if loss >= icmp.crit_loss {
                        outcome.worsen(
                            Status::Crit,
                            FailureReason::Connect,
                            format!("{loss:.0}% loss (crit at {}%): {summary}", icmp.crit_loss),
                        );
                    } else if loss >= icmp.warn_loss {
                        outcome.worsen(
                            Status::Warn,
                            FailureReason::Connect,
                            format!("{loss:.0}% loss (warn at {}%): {summary}", icmp.warn_loss),
                        );
                    }
                }
                Some(outcome.into())
            }
            CheckKind::Tls(tls) => {
                let mut outcome = probed(
                    probe::tls::probe_tls(tls, timeout, &cancel).await,
                    &tls.conditions,
                )?;
                if let Some(days) = outcome.sample("cert_expiry_days") {
                    let summary = outcome.summary.clone();
                    if days < tls.crit_days {
                        outcome.worsen(
                            Status::Crit,
                            FailureReason::Tls,
                            format!(
                                "certificate expires in {days:.1} days (crit under {}): {summary}",
                                tls.crit_days
                            ),
                        );
                    } else if days < tls.warn_days {
                        outcome.worsen(
                            Status::Warn,
                            FailureReason::Tls,
                            format!(
                                "certificate expires in {days:.1} days (warn under {}): {summary}",
                                tls.warn_days
                            ),
                        );
                    }
                }
                Some(outcome.into())
            }
            CheckKind::Host(host) => {
                let sampler = match self.hosts.lock() {
                    Ok(mut samplers) => Arc::clone(
                        samplers
                            .entry(config.name.clone())
                            .or_insert_with(|| Arc::new(Mutex::new(HostSampler::new()))),
                    ),
                    Err(_) => {
                        return Some(Judged::plain(Status::Unknown, "host sampler unavailable"));
                    }
                };
                let host = host.clone();
                let sampled = tokio::task::spawn_blocking(move || {
                    let sample = match sampler.lock() {
                        Ok(mut sampler) => sampler.sample(),
                        Err(poisoned) => poisoned.into_inner().sample(),
                    };
                    let (status, summary) = judge_host(&sample, &host);
                    (sample, status, summary)
                })
                .await;
                Some(match sampled {
                    Ok((sample, status, summary)) => Judged {
                        status,
                        summary,
                        exit_code: None,
                        samples: sample.values,
                        notes: sample.notes,
                        timed_out: false,
                        reason: None,
                    },
                    Err(error) => {
                        Judged::plain(Status::Unknown, format!("host sampling failed: {error}"))
                    }
                })
            }
            CheckKind::Heartbeat(_) => Some(Judged::plain(
                Status::Unknown,
                "heartbeat checks are pushed by the job they watch; they are never run",
            )),
            // Never here: `WorkerPool::start` hands exec runs to the process runner, whose
            // thread reports them (`WorkerPool::start_exec`). Nothing reported; were it ever
            // reached, the lease would expire and the run be retried.
            CheckKind::Exec(_) => None,
        }
    }
}

/// The process an `exec` check runs.
fn exec_spec(
    exec: &warden_core::config::ExecCheck,
    timeout: Duration,
    options: &WorkerOptions,
) -> ProcessSpec {
    ProcessSpec {
        command: exec.command.clone(),
        env: exec
            .env
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect(),
        clean_env: exec.clean_env,
        cwd: exec.cwd.clone(),
        timeout,
        kill_grace: options.kill_grace,
        output_cap: options.output_cap,
        ..ProcessSpec::default()
    }
}

/// Publishes a run's output lines as they come; lines past the cap are shown live, not stored.
async fn forward_lines(
    bus: Bus,
    run_id: i64,
    mut lines: mpsc::Receiver<warden_exec::OutputLine>,
    cap: usize,
) {
    let mut line_no = 0u64;
    let mut kept = 0usize;
    while let Some(line) = lines.recv().await {
        kept = kept.saturating_add(line.line.len() + 1);
        let at = line
            .at
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
            .unwrap_or(0);
        bus.publish(EventKind::OutputLine {
            run_id,
            line_no,
            stream: match line.stream {
                Stream::Stdout => OutputStream::Stdout,
                Stream::Stderr => OutputStream::Stderr,
            },
            at,
            line: line.line,
            record: kept <= cap,
        })
        .await;
        line_no += 1;
    }
}

/// A run's values as samples of series `<check>.<label>`, in base units.
fn samples_of(check: &str, outcome: &Judged, ts: i64) -> Vec<SamplePoint> {
    outcome
        .samples
        .iter()
        .map(|(label, value)| SamplePoint {
            series: format!("{check}.{label}"),
            labels: "{}".to_string(),
            ts,
            value: *value,
        })
        .collect()
}

fn judge_probe(observation: Observation, conditions: &[String]) -> ProbeOutcome {
    probe::judge::judge(observation, conditions)
}
