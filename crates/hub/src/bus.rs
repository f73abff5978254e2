//! The one in-process event bus. Every event gets the next sequence number. The recorder is a
//! privileged subscriber fed through a bounded channel with back-pressure (results must reach
//! the store); live subscribers get a bounded broadcast and, when slow, are told how many events
//! they missed instead of slowing anyone down.
//!
//! Under the same lock that numbers events the bus also keeps the live state (latest status per
//! check, runs in flight: [`LiveState`]) and a bounded replay ring of the latest events, so a new
//! live subscriber gets a copy of the state as of sequence S and a receiver whose first event is
//! exactly S+1 (or, resuming, the ring's events after its `since` and then the receiver).

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};

use axum::extract::ws::Utf8Bytes;
use tokio::sync::{broadcast, mpsc};

use crate::live::{LiveState, Snapshot};

/// Which stream an output line came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OutputStream {
    Stdout,
    Stderr,
}

impl OutputStream {
    pub fn as_str(self) -> &'static str {
        match self {
            OutputStream::Stdout => "stdout",
            OutputStream::Stderr => "stderr",
        }
    }
}

/// One metric sample produced by a run.
#[derive(Debug, Clone, PartialEq)]
pub struct SamplePoint {
    /// Series name, e.g. `disk.root` (`<check>.<label>`).
    pub series: String,
    /// Canonical JSON object of labels (`{}` when none).
    pub labels: String,
    pub ts: i64,
    pub value: f64,
}

/// What happened.
#[derive(Debug, Clone, PartialEq)]
pub enum EventKind {
    RunQueued {
        run_id: i64,
        check_id: Option<i64>,
        check: Option<String>,
    },
    /// A queued or running run was cancelled (it gets no `RunFinished`).
    RunCancelled {
        run_id: i64,
        check_id: Option<i64>,
        /// The state it was in: `queued`, `leased` or `started`.
        was: String,
    },
    RunStarted {
        run_id: i64,
        check_id: Option<i64>,
        check: Option<String>,
        attempt: u32,
        worker: String,
    },
    OutputLine {
        run_id: i64,
        /// Line number within the run's attempt, from 0.
        line_no: u64,
        stream: OutputStream,
        at: i64,
        line: String,
        /// False beyond the kept-output cap: shown live, not stored.
        record: bool,
    },
    RunFinished {
        run_id: i64,
        check_id: Option<i64>,
        check: Option<String>,
        status: warden_core::Status,
        summary: String,
        exit_code: Option<i64>,
        duration_ms: i64,
        finished_at: i64,
        samples: Vec<SamplePoint>,
        /// Why a probe failed (`dns`, `connect`, `tls`, `timeout`, `http`, `condition`); `None`
        /// when nothing failed or the run's kind names no reasons.
        reason: Option<&'static str>,
        /// The check's status and the samples were written with the run's result (the local
        /// worker and the ping handler do that in one write); otherwise the recorder writes
        /// them.
        stored: bool,
    },
    /// A rule fired (alerting).
    IncidentOpened {
        incident_id: i64,
        rule: String,
        /// The check's name, or the series key for a series rule.
        subject: String,
        check: Option<String>,
        severity: &'static str,
        status: String,
        summary: String,
        /// Notifications held by a maintenance window.
        held: bool,
    },
    IncidentAcknowledged {
        incident_id: i64,
        by: String,
        note: String,
    },
    IncidentResolved {
        incident_id: i64,
        rule: String,
        subject: String,
        status: String,
        summary: String,
    },
    /// A notification was delivered (`event`: opened, repeat-N, resolved).
    NotificationSent {
        incident_id: Option<i64>,
        notifier: String,
        event: String,
        attempts: u32,
    },
    /// A delivery attempt failed; `will_retry` false means for good (recorded and counted).
    NotificationFailed {
        incident_id: Option<i64>,
        notifier: String,
        event: String,
        attempts: u32,
        error: String,
        will_retry: bool,
    },
}

impl EventKind {
    /// Every kind's [`name`](EventKind::name), for validating subscription filters.
    pub const NAMES: &'static [&'static str] = &[
        "run_queued",
        "run_started",
        "output_line",
        "run_finished",
        "run_cancelled",
        "incident_opened",
        "incident_acknowledged",
        "incident_resolved",
        "notification_sent",
        "notification_failed",
    ];

    pub fn name(&self) -> &'static str {
        match self {
            EventKind::RunQueued { .. } => "run_queued",
            EventKind::RunStarted { .. } => "run_started",
            EventKind::OutputLine { .. } => "output_line",
            EventKind::RunFinished { .. } => "run_finished",
            EventKind::RunCancelled { .. } => "run_cancelled",
            EventKind::IncidentOpened { .. } => "incident_opened",
            EventKind::IncidentAcknowledged { .. } => "incident_acknowledged",
            EventKind::IncidentResolved { .. } => "incident_resolved",
            EventKind::NotificationSent { .. } => "notification_sent",
            EventKind::NotificationFailed { .. } => "notification_failed",
        }
    }

    /// The run the event is about; `None` for alerting events.
    pub fn run_id(&self) -> Option<i64> {
        match self {
            EventKind::RunQueued { run_id, .. }
            | EventKind::RunStarted { run_id, .. }
            | EventKind::OutputLine { run_id, .. }
            | EventKind::RunFinished { run_id, .. }
            | EventKind::RunCancelled { run_id, .. } => Some(*run_id),
            EventKind::IncidentOpened { .. }
            | EventKind::IncidentAcknowledged { .. }
            | EventKind::IncidentResolved { .. }
            | EventKind::NotificationSent { .. }
            | EventKind::NotificationFailed { .. } => None,
        }
    }
}

/// An event with its bus sequence number.
#[derive(Debug, Clone)]
pub struct Event {
    pub seq: u64,
    pub kind: EventKind,
    /// When the bus numbered it: microseconds since the Unix epoch.
    pub published_us: i64,
    /// The check it concerns, when known: the run's check, also for output lines (resolved from
    /// the runs in flight).
    pub check: Option<Arc<str>>,
    /// The live wire form, encoded once by the first connection that sends it.
    pub(crate) wire: OnceLock<Utf8Bytes>,
}

impl PartialEq for Event {
    fn eq(&self, other: &Event) -> bool {
        self.seq == other.seq
            && self.kind == other.kind
            && self.published_us == other.published_us
            && self.check == other.check
    }
}

impl Event {
    /// Rough memory held by the event (and its wire form), for the replay ring's byte bound.
    fn approx_bytes(&self) -> usize {
        let strings = match &self.kind {
            EventKind::RunQueued { check, .. } => check.as_ref().map_or(0, String::len),
            EventKind::RunStarted { check, worker, .. } => {
                check.as_ref().map_or(0, String::len) + worker.len()
            }
            EventKind::OutputLine { line, .. } => line.len(),
            EventKind::RunCancelled { was, .. } => was.len(),
            EventKind::RunFinished {
                check,
                summary,
                samples,
                ..
            } => {
                check.as_ref().map_or(0, String::len)
                    + summary.len()
                    + samples
                        .iter()
                        .map(|point| 64 + point.series.len() + point.labels.len())
                        .sum::<usize>()
            }
            EventKind::IncidentOpened {
                rule,
                subject,
                summary,
                ..
            } => rule.len() + subject.len() + summary.len() + 64,
            EventKind::IncidentAcknowledged { by, note, .. } => by.len() + note.len(),
            EventKind::IncidentResolved {
                rule,
                subject,
                summary,
                ..
            } => rule.len() + subject.len() + summary.len(),
            EventKind::NotificationSent {
                notifier, event, ..
            } => notifier.len() + event.len(),
            EventKind::NotificationFailed {
                notifier,
                event,
                error,
                ..
            } => notifier.len() + event.len() + error.len(),
        };
        // The struct and its allocation, then the strings twice (kept, and in the wire form).
        256 + 2 * strings
    }
}

/// How a bus buffers.
#[derive(Debug, Clone, Copy)]
pub struct BusOptions {
    /// Events a live subscriber may fall behind before it is told it lagged.
    pub live_capacity: usize,
    /// Events waiting for the recorder before publishers wait.
    pub recorder_capacity: usize,
    /// Latest events kept for subscribers resuming with `since` (0: none).
    pub replay_events: usize,
    /// Upper bound on the replay ring's estimated memory.
    pub replay_bytes: usize,
    /// The first event's sequence number.
    pub first_seq: u64,
}

/// Where a live subscription starts.
#[derive(Debug)]
pub(crate) enum Start {
    /// The state as of `snapshot.seq`; `too_old` when a `since` could not be served from the
    /// replay ring.
    Snapshot { snapshot: Snapshot, too_old: bool },
    /// Every event after `since` up to the subscription point, in order.
    Resume { since: u64, missed: Vec<Arc<Event>> },
}

/// Counters for `/metrics` and tests.
#[derive(Debug, Default)]
pub struct BusStats {
    pub published: AtomicU64,
    /// Events pushed out of the live buffer before every live subscriber had seen them.
    pub lagged: AtomicU64,
}

/// The bus handle; cheap to clone.
#[derive(Clone)]
pub struct Bus {
    inner: Arc<BusInner>,
}

/// Everything that changes with each event, under one lock.
struct BusState {
    next_seq: u64,
    live_state: LiveState,
    replay: VecDeque<Arc<Event>>,
    replay_bytes: usize,
}

struct BusInner {
    state: Mutex<BusState>,
    options: BusOptions,
    live: broadcast::Sender<Arc<Event>>,
    /// Slots in the live buffer (tokio rounds the capacity up to a power of two).
    live_slots: usize,
    recorder: mpsc::Sender<Arc<Event>>,
    /// The alerter's lossless tap (every `RunFinished`, with back-pressure), once attached.
    alerter: OnceLock<mpsc::Sender<Arc<Event>>>,
    stats: BusStats,
}

impl std::fmt::Debug for Bus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Bus").finish_non_exhaustive()
    }
}

impl Bus {
    /// A bus whose live subscribers each buffer `live_capacity` events, and the receiver the
    /// recorder reads (bounded at `recorder_capacity`).
    /// Its replay ring keeps the latest 65,536 events (at most 64 MiB); numbering starts at 1.
    pub fn new(
        live_capacity: usize,
        recorder_capacity: usize,
    ) -> (Bus, mpsc::Receiver<Arc<Event>>) {
        Bus::with_options(BusOptions {
            live_capacity,
            recorder_capacity,
            replay_events: 65_536,
            replay_bytes: 64 * 1024 * 1024,
            first_seq: 1,
        })
    }

    /// A bus buffering as `options` say, and the receiver the recorder reads.
    pub fn with_options(options: BusOptions) -> (Bus, mpsc::Receiver<Arc<Event>>) {
        let live_capacity = options.live_capacity;
        let (live, _) = broadcast::channel(live_capacity.max(1));
        let (recorder, recorder_rx) = mpsc::channel(options.recorder_capacity.max(1));
        let bus = Bus {
            inner: Arc::new(BusInner {
                state: Mutex::new(BusState {
                    next_seq: options.first_seq,
                    live_state: LiveState::default(),
                    replay: VecDeque::new(),
                    replay_bytes: 0,
                }),
                options,
                live,
                live_slots: live_capacity.max(1).next_power_of_two(),
                recorder,
                alerter: OnceLock::new(),
                stats: BusStats::default(),
            }),
        };
        (bus, recorder_rx)
    }

    /// Numbers the event and hands it to live subscribers (never waits) and to the recorder
    /// (waits for room: back-pressure, never loss). Returns the sequence number.
    ///
    /// # Cancel safety
    /// If dropped while waiting for the recorder, the event was already numbered and shown live
    /// but may not be recorded.
    pub async fn publish(&self, kind: EventKind) -> u64 {
        self.publish_all(std::iter::once(kind)).await
    }

    /// Publishes several events as one: numbered one after the other under one lock, then
    /// handed to the alerter and the recorder together, so their tasks wake once for the lot
    /// rather than once per event. Returns the last sequence number (the one before the first
    /// when there was nothing to publish).
    ///
    /// # Cancel safety
    /// As [`Bus::publish`]: every event is numbered and shown live before the first wait.
    pub async fn publish_all(&self, kinds: impl IntoIterator<Item = EventKind>) -> u64 {
        let events: Vec<Arc<Event>> = {
            let mut state = self.inner.lock_state();
            let published_us = now_us();
            let mut events = Vec::new();
            for kind in kinds {
                let check = state.live_state.apply(&kind, published_us / 1_000);
                let event = Arc::new(Event {
                    seq: state.next_seq,
                    kind,
                    published_us,
                    check,
                    wire: OnceLock::new(),
                });
                state.next_seq += 1;
                state.remember(&event, &self.inner.options);
                // A full buffer means this send evicts an event some subscriber has not seen.
                if self.inner.live.len() >= self.inner.live_slots {
                    self.inner.stats.lagged.fetch_add(1, Ordering::Relaxed);
                }
                // Under the lock, so live subscribers see sequence numbers in order.
                let _ = self.inner.live.send(Arc::clone(&event));
                events.push(event);
            }
            if events.is_empty() {
                return state.next_seq - 1;
            }
            events
        };
        self.inner
            .stats
            .published
            .fetch_add(events.len() as u64, Ordering::Relaxed);
        let last = events.last().map_or(0, |event| event.seq);
        if let Some(alerter) = self.inner.alerter.get() {
            let finished: Vec<&Arc<Event>> = events
                .iter()
                .filter(|event| matches!(event.kind, EventKind::RunFinished { .. }))
                .collect();
            if !finished.is_empty() && !send_all(alerter, finished.into_iter()).await {
                tracing::debug!(last, "alerter is gone; runs not evaluated");
            }
        }
        if !send_all(&self.inner.recorder, events.iter()).await {
            tracing::warn!(last, "recorder is gone; events not recorded");
        }
        last
    }

    /// The alerter's tap: every later `RunFinished`, through a channel bounded at `capacity`
    /// (publishers wait for room, as for the recorder). `None` if one is attached already.
    pub(crate) fn attach_alerter(&self, capacity: usize) -> Option<mpsc::Receiver<Arc<Event>>> {
        let (sender, receiver) = mpsc::channel(capacity.max(1));
        self.inner.alerter.set(sender).ok()?;
        Some(receiver)
    }

    /// A live subscription starting after the current last event.
    pub fn subscribe(&self) -> broadcast::Receiver<Arc<Event>> {
        self.inner.live.subscribe()
    }

    /// Where a live subscriber starts, under the numbering lock: either a copy of the live state
    /// as of the last event, or (when `since` is given and every event after it is still in the
    /// replay ring) those events. The copy is pointers only (`Arc`s), so the lock is held for
    /// microseconds. The subscriber's later events must come from a stream it joined *before*
    /// this call (so that stream holds everything after the start; it skips what is older).
    pub(crate) fn start_from(&self, since: Option<u64>) -> Start {
        Bus::start(&self.inner.lock_state(), since)
    }

    /// The last sequence number given out and a receiver of every event after it.
    pub(crate) fn subscribe_after(&self) -> (u64, broadcast::Receiver<Arc<Event>>) {
        let state = self.inner.lock_state();
        (state.next_seq - 1, self.inner.live.subscribe())
    }

    /// The replay ring's events after `seq`, when it still holds the one right after it.
    pub(crate) fn replay_after(&self, seq: u64) -> Option<Vec<Arc<Event>>> {
        let state = self.inner.lock_state();
        match Bus::start(&state, Some(seq)) {
            Start::Resume { missed, .. } => Some(missed),
            Start::Snapshot { .. } => None,
        }
    }

    fn start(state: &BusState, since: Option<u64>) -> Start {
        let last = state.next_seq - 1;
        let oldest = state
            .replay
            .front()
            .map_or(state.next_seq, |event| event.seq);
        match since {
            Some(since) if since <= last && since.saturating_add(1) >= oldest => {
                let skip = usize::try_from(since + 1 - oldest).unwrap_or(usize::MAX);
                Start::Resume {
                    since,
                    missed: state.replay.range(skip..).cloned().collect(),
                }
            }
            Some(_) => Start::Snapshot {
                snapshot: state.live_state.snapshot(last),
                too_old: true,
            },
            None => Start::Snapshot {
                snapshot: state.live_state.snapshot(last),
                too_old: false,
            },
        }
    }

    /// Replaces the live state (at start, from the store, before anything is published).
    pub(crate) fn seed(&self, live_state: LiveState) {
        let mut state = self.inner.lock_state();
        debug_assert_eq!(
            state.next_seq, self.inner.options.first_seq,
            "seed the live state before publishing"
        );
        state.live_state = live_state;
    }

    /// Brings stored check rows up to the live state's latest run where it is newer: a run that
    /// keeps its check's status reaches the check's row only later (see `worker`), but it is on
    /// the bus as soon as it is stored.
    pub(crate) fn freshen(&self, rows: &mut [warden_store::checks::CheckRow]) {
        let state = self.inner.lock_state();
        for row in rows {
            state.live_state.freshen(row);
        }
    }

    /// The sequence number the next event will get.
    pub fn next_seq(&self) -> u64 {
        self.inner.lock_state().next_seq
    }

    pub fn published(&self) -> u64 {
        self.inner.stats.published.load(Ordering::Relaxed)
    }

    /// Events live subscribers missed because they were too slow (see [`BusStats::lagged`]).
    pub fn lagged(&self) -> u64 {
        self.inner.stats.lagged.load(Ordering::Relaxed)
    }
}

impl BusInner {
    fn lock_state(&self) -> MutexGuard<'_, BusState> {
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

impl BusState {
    /// Keeps the event in the replay ring, dropping the oldest beyond the count or byte bound.
    fn remember(&mut self, event: &Arc<Event>, options: &BusOptions) {
        if options.replay_events == 0 {
            return;
        }
        self.replay_bytes += event.approx_bytes();
        self.replay.push_back(Arc::clone(event));
        while self.replay.len() > options.replay_events
            || (self.replay_bytes > options.replay_bytes && self.replay.len() > 1)
        {
            let Some(old) = self.replay.pop_front() else {
                break;
            };
            self.replay_bytes -= old.approx_bytes();
        }
    }
}

/// Sends every event in order, waiting for room as needed (as many permits at once as the
/// channel can give, so a waiting receiver is woken once per lot); false when it is closed.
async fn send_all<'a>(
    channel: &mpsc::Sender<Arc<Event>>,
    events: impl ExactSizeIterator<Item = &'a Arc<Event>>,
) -> bool {
    let mut events = events.peekable();
    while events.peek().is_some() {
        let want = events.len().min(channel.max_capacity()).max(1);
        let Ok(permits) = channel.reserve_many(want).await else {
            return false;
        };
        for (permit, event) in permits.zip(events.by_ref()) {
            permit.send(Arc::clone(event));
        }
    }
    true
}

/// Wall-clock microseconds since the Unix epoch.
fn now_us() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|elapsed| i64::try_from(elapsed.as_micros()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}
