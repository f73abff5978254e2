//! Live events over WebSocket at `/api/v1/events`: a snapshot of the current state tagged with a
//! bus sequence number, then every later event, exactly (no gap, no duplicate); `since=` resumes
//! from the bus's replay ring. The state the snapshot copies ([`LiveState`]) is kept by the bus
//! under the lock that numbers events, which is what makes the two line up.
//!
//! Protocol (server → client, one JSON text message each):
//! - `{"type":"snapshot","seq":S,"checks":[..],"running":[..]}` (with `"reason":"since is too
//!   old"` when a `since=` could not be honoured), then events with seq S+1, S+2, …
//! - or `{"type":"resume","seq":since}`, then events with seq since+1, since+2, …
//! - `{"type":"event","seq":N,"ts_us":T,"kind":"run_finished",…fields of that kind}`.
//!
//! Query parameters: `token` (for browsers, which cannot set headers on a WebSocket),
//! `checks=a,b`, `kinds=run_finished,output_line`, `since=N`. Filters drop events (and snapshot
//! entries) but sequence numbers stay global, so a filtered client sees gaps and can still resume.
//!
//! Close codes: 4000 too slow (or the hub itself fell behind), 4001 no answer to pings, 1001 hub
//! shutting down;
//! each reason ends with `since=<seq>`: everything the client asked for up to that seq was sent
//! before the close frame.

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::ws::{CloseFrame, Message, Utf8Bytes, WebSocket, WebSocketUpgrade};
use axum::extract::{ConnectInfo, FromRequestParts, Query, Request, State};
use axum::http::header::AUTHORIZATION;
use axum::response::{IntoResponse, Response};
use futures_util::stream::SplitSink;
use futures_util::{SinkExt, StreamExt};
use serde::Serialize;
use tokio::sync::{broadcast, mpsc};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use warden_core::Status;
use warden_store::Store;
use warden_store::checks::CheckRow;
use warden_store::queue::{RunFilter, RunRow, RunState};

use crate::AppState;
use crate::auth::{Caller, Role};
use crate::bus::{Bus, BusOptions, Event, EventKind, Start};
use crate::error::ApiError;

/// Close code: the client fell too far behind (its buffer filled or it lagged the bus).
pub const CLOSE_TOO_SLOW: u16 = 4000;
/// Close code: the client did not answer pings.
pub const CLOSE_NO_PONG: u16 = 4001;
/// Close code: the hub is shutting down (standard "going away").
pub const CLOSE_GOING_AWAY: u16 = 1001;

/// Runs in flight kept for snapshots at most; beyond it the oldest (lowest run id) are dropped.
/// Runs that end without an event (cancelled, lease lost for good) would otherwise stay forever.
const MAX_RUNNING: usize = 50_000;
/// Messages handed from the connection to its writer at once (the rest wait in the backlog).
const HANDOFF: usize = 64;
/// What the writer keeps before writing to the socket (tungstenite's write buffer).
const WRITE_BUFFER: usize = 32 * 1024;
/// Batches a connection may fall behind before it is closed as too slow.
const BATCHES: usize = 4_096;
/// While events keep coming, connections are woken at most once per this interval (they then
/// take everything that arrived): a bound on wake-ups, not a delay when events are sparse. It
/// grows with the connections the last batch woke (each wake-up costs a task poll): 1 ms up to
/// 200 of them, 5 µs per connection beyond, at most 10 ms.
fn fanout_interval(woken: usize) -> Duration {
    let micros = u64::try_from(woken.saturating_mul(5)).unwrap_or(u64::MAX);
    Duration::from_micros(micros.clamp(1_000, 10_000))
}

/// How live connections behave. Read from the environment at hub start
/// (`WARDEN_LIVE_REPLAY`, `WARDEN_LIVE_BUFFER`, `WARDEN_LIVE_PING_MS`).
#[derive(Debug, Clone, Copy)]
pub struct LiveOptions {
    /// Events kept for resuming clients.
    pub replay_events: usize,
    /// Upper bound on the replay ring's (estimated) memory.
    pub replay_bytes: usize,
    /// Events one connection may have waiting for its socket before it is closed as too slow.
    pub buffer: usize,
    /// Server pings this often; a client silent for two intervals is closed.
    pub ping_interval: Duration,
    /// After a close is decided, how long the queued messages and close frame may take to go.
    pub drain_grace: Duration,
}

impl Default for LiveOptions {
    fn default() -> Self {
        LiveOptions {
            replay_events: 16_384,
            // Minutes of events on a small hub; on one running 10,000 http checks (~1,000
            // events a second, a third carrying seven samples) about 4 s, which is what a
            // reconnecting page needs (a client resuming from further back gets a snapshot),
            // instead of the 16 s (~9 MB) a 16 MiB bound kept there.
            replay_bytes: 2 * 1024 * 1024,
            buffer: 8_192,
            ping_interval: Duration::from_secs(20),
            drain_grace: Duration::from_secs(10),
        }
    }
}

impl LiveOptions {
    /// Defaults, overridden by `WARDEN_LIVE_REPLAY` (events), `WARDEN_LIVE_BUFFER` (events) and
    /// `WARDEN_LIVE_PING_MS`; an unreadable value is reported and ignored.
    pub fn from_env() -> LiveOptions {
        let mut options = LiveOptions::default();
        let read = |name: &str| -> Option<u64> {
            let text = std::env::var(name).ok()?;
            match text.trim().parse::<u64>() {
                Ok(value) => Some(value),
                Err(_) => {
                    tracing::warn!(variable = name, value = %text, "not a whole number; using the default");
                    None
                }
            }
        };
        if let Some(events) = read("WARDEN_LIVE_REPLAY") {
            options.replay_events = usize::try_from(events).unwrap_or(usize::MAX);
        }
        if let Some(events) = read("WARDEN_LIVE_BUFFER") {
            options.buffer = usize::try_from(events).unwrap_or(usize::MAX).max(1);
        }
        if let Some(ms) = read("WARDEN_LIVE_PING_MS") {
            options.ping_interval = Duration::from_millis(ms.max(10));
        }
        options
    }

    /// The hub's bus: live buffer, recorder channel, this replay ring, and a first sequence
    /// number that grows across restarts (see [`first_seq_now`]).
    pub fn bus_options(&self) -> BusOptions {
        BusOptions {
            live_capacity: 4_096,
            recorder_capacity: 8_192,
            replay_events: self.replay_events,
            replay_bytes: self.replay_bytes,
            first_seq: first_seq_now(),
        }
    }
}

/// A first sequence number above every number an earlier run of the hub could have given out
/// (wall-clock ms × 1,000: holds while the hub averages under a million events a second), so a
/// client resuming across a restart gets a fresh snapshot, never someone else's events.
pub fn first_seq_now() -> u64 {
    let ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|elapsed| u64::try_from(elapsed.as_millis()).unwrap_or(u64::MAX / 2_000))
        .unwrap_or(0);
    ms.saturating_mul(1_000).max(1)
}

/// The live endpoint's shared handle (in `AppState`).
#[derive(Debug, Clone)]
pub(crate) struct Live {
    pub(crate) options: LiveOptions,
    closing: CancellationToken,
    connections: Arc<AtomicUsize>,
    /// Who gets which batches: connections register here, the fan-out delivers from here.
    registry: Arc<Mutex<Registry>>,
    /// The seq of the last event the fan-out has delivered to every mailbox that wanted it.
    dispatched: Arc<AtomicU64>,
}

/// Events in seq order, contiguous with the batch before unless `lost` says otherwise, each
/// with its check's [`check_key`].
#[derive(Debug)]
pub(crate) struct Batch {
    events: Vec<(Arc<Event>, Option<u64>)>,
    /// Events the fan-out itself missed (it fell behind the replay ring) just before this batch;
    /// every connection gets such a batch and closes so its client resumes.
    lost: u64,
}

/// A fixed hash of a check name: connections compare these before comparing names.
fn check_key(name: &str) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    name.hash(&mut hasher);
    hasher.finish()
}

/// The connections by what they want. A connection filtered to some checks is only handed the
/// batches holding an event of one of them (and only woken then); the others get every batch.
#[derive(Debug, Default)]
struct Registry {
    next_id: u64,
    /// Every batch goes to these.
    everything: Vec<Arc<Mailbox>>,
    /// Batches with an event of the check with this [`check_key`] go to these.
    by_check: HashMap<u64, Vec<Arc<Mailbox>>>,
}

/// One connection's queue of batches, filled by the fan-out.
#[derive(Debug)]
struct Mailbox {
    id: u64,
    check_keys: Vec<u64>,
    queue: Mutex<MailboxQueue>,
    notify: tokio::sync::Notify,
    /// The last dispatch that handed this mailbox a batch (one batch per dispatch, however many
    /// of its checks the batch holds).
    last_dispatch: AtomicU64,
}

#[derive(Debug, Default)]
struct MailboxQueue {
    batches: VecDeque<Arc<Batch>>,
    /// More than [`BATCHES`] batches waited: the connection lagged.
    overflowed: bool,
    closed: bool,
}

impl Mailbox {
    fn push(&self, batch: &Arc<Batch>) {
        if let Ok(mut queue) = self.queue.lock() {
            if queue.batches.len() >= BATCHES {
                queue.overflowed = true;
                queue.batches.clear();
            } else if !queue.overflowed {
                queue.batches.push_back(Arc::clone(batch));
            }
        }
        self.notify.notify_one();
    }

    fn close(&self) {
        if let Ok(mut queue) = self.queue.lock() {
            queue.closed = true;
        }
        self.notify.notify_one();
    }

    fn try_recv(&self) -> Result<Arc<Batch>, broadcast::error::TryRecvError> {
        let Ok(mut queue) = self.queue.lock() else {
            return Err(broadcast::error::TryRecvError::Closed);
        };
        if queue.overflowed {
            queue.overflowed = false;
            return Err(broadcast::error::TryRecvError::Lagged(BATCHES as u64));
        }
        match queue.batches.pop_front() {
            Some(batch) => Ok(batch),
            None if queue.closed => Err(broadcast::error::TryRecvError::Closed),
            None => Err(broadcast::error::TryRecvError::Empty),
        }
    }
}

/// A connection's place in the fan-out: its batches, in order. Leaves the registry when dropped.
#[derive(Debug)]
pub(crate) struct Subscription {
    mailbox: Arc<Mailbox>,
    registry: Arc<Mutex<Registry>>,
    dispatched: Arc<AtomicU64>,
}

impl Subscription {
    /// The next batch, if one waits.
    #[cfg(test)]
    pub(crate) fn try_recv(&self) -> Result<Arc<Batch>, broadcast::error::TryRecvError> {
        self.mailbox.try_recv()
    }

    /// The next batch.
    ///
    /// # Cancel safety
    /// Cancel-safe: a batch is only taken when the future completes.
    pub(crate) async fn recv(&self) -> Result<Arc<Batch>, broadcast::error::RecvError> {
        loop {
            match self.mailbox.try_recv() {
                Ok(batch) => return Ok(batch),
                Err(broadcast::error::TryRecvError::Lagged(n)) => {
                    return Err(broadcast::error::RecvError::Lagged(n));
                }
                Err(broadcast::error::TryRecvError::Closed) => {
                    return Err(broadcast::error::RecvError::Closed);
                }
                // `notify_one` keeps a permit when nobody waits, so a push between the look
                // and this wait still wakes it.
                Err(broadcast::error::TryRecvError::Empty) => self.mailbox.notify.notified().await,
            }
        }
    }

    /// A seq up to which every event this subscription wants has been handed to it, read
    /// before looking at the queue: when the queue is then empty, nothing it wants at or below
    /// this seq is still on its way.
    fn settled_through(&self) -> Option<u64> {
        let dispatched = self.dispatched.load(Ordering::Acquire);
        let empty = self
            .mailbox
            .queue
            .lock()
            .map(|queue| queue.batches.is_empty() && !queue.overflowed)
            .unwrap_or(false);
        empty.then_some(dispatched)
    }
}

impl Drop for Subscription {
    fn drop(&mut self) {
        let Ok(mut registry) = self.registry.lock() else {
            return;
        };
        let id = self.mailbox.id;
        if self.mailbox.check_keys.is_empty() {
            registry.everything.retain(|mailbox| mailbox.id != id);
        } else {
            for key in &self.mailbox.check_keys {
                if let Some(list) = registry.by_check.get_mut(key) {
                    list.retain(|mailbox| mailbox.id != id);
                    if list.is_empty() {
                        registry.by_check.remove(key);
                    }
                }
            }
        }
    }
}

impl Live {
    pub(crate) fn new(options: LiveOptions) -> Live {
        Live {
            options,
            closing: CancellationToken::new(),
            connections: Arc::default(),
            registry: Arc::default(),
            dispatched: Arc::default(),
        }
    }

    /// The fan-out: the bus's only live waiter for all connections. A publish wakes this one
    /// task; it gathers what arrived into one batch, at most once per [`fanout_interval`] while
    /// events keep coming, and hands the batch to the connections that want some of it (looked
    /// up by check), waking only those: a connection does one wake-up and one shared read per
    /// batch it cares about instead of one per event. Subscribes to the bus before returning
    /// the future (so no batch can miss an event published after the hub starts serving); runs
    /// until [`Live::close_all`].
    pub(crate) fn fan_out(self, bus: Bus) -> impl Future<Output = ()> + Send + 'static {
        let (mut through, mut events) = bus.subscribe_after();
        self.dispatched.store(through, Ordering::Release);
        async move {
            let mut dispatch = 0u64;
            loop {
                // Cancel safety: `recv` and `cancelled` are cancel-safe.
                let received = tokio::select! {
                    received = events.recv() => received,
                    () = self.closing.cancelled() => break,
                };
                let mut batch = Vec::new();
                let mut lost = 0;
                let mut received = match received {
                    Ok(event) => Ok(event),
                    Err(broadcast::error::RecvError::Lagged(n)) => {
                        Err(broadcast::error::TryRecvError::Lagged(n))
                    }
                    Err(broadcast::error::RecvError::Closed) => break,
                };
                loop {
                    match received {
                        Ok(event) if event.seq <= through => {}
                        Ok(event) => {
                            through = event.seq;
                            let key = event.check.as_deref().map(check_key);
                            batch.push((event, key));
                        }
                        // Starved for a while: the ring has what the buffer dropped.
                        Err(broadcast::error::TryRecvError::Lagged(_)) => {
                            match bus.replay_after(through) {
                                Some(missed) => {
                                    for event in missed {
                                        through = event.seq;
                                        let key = event.check.as_deref().map(check_key);
                                        batch.push((event, key));
                                    }
                                }
                                None => {
                                    // Connections see the loss and close; clients resume.
                                    tracing::warn!(
                                        through,
                                        "live fan-out fell behind the replay ring"
                                    );
                                    let last = bus.next_seq() - 1;
                                    lost += last.saturating_sub(through);
                                    through = last;
                                }
                            }
                        }
                        Err(broadcast::error::TryRecvError::Empty) => break,
                        Err(broadcast::error::TryRecvError::Closed) => break,
                    }
                    received = events.try_recv();
                }
                let mut woken = 0;
                if !batch.is_empty() || lost > 0 {
                    dispatch += 1;
                    woken = self.dispatch(
                        Arc::new(Batch {
                            events: batch,
                            lost,
                        }),
                        dispatch,
                    );
                }
                self.dispatched.store(through, Ordering::Release);
                tokio::time::sleep(fanout_interval(woken)).await;
            }
            self.close_mailboxes();
        }
    }

    /// Hands a batch to every mailbox that wants some of it; returns how many.
    fn dispatch(&self, batch: Arc<Batch>, dispatch: u64) -> usize {
        let Ok(registry) = self.registry.lock() else {
            return 0;
        };
        let mut woken = 0;
        for mailbox in &registry.everything {
            mailbox.push(&batch);
            woken += 1;
        }
        if registry.by_check.is_empty() {
            return woken;
        }
        let mut deliver = |mailbox: &Arc<Mailbox>| {
            if mailbox.last_dispatch.swap(dispatch, Ordering::Relaxed) != dispatch {
                mailbox.push(&batch);
                woken += 1;
            }
        };
        if batch.lost > 0 {
            registry.by_check.values().flatten().for_each(&mut deliver);
        } else {
            for (_, key) in &batch.events {
                if let Some(list) = key.and_then(|key| registry.by_check.get(&key)) {
                    list.iter().for_each(&mut deliver);
                }
            }
        }
        woken
    }

    /// Tells every subscription the fan-out has ended.
    fn close_mailboxes(&self) {
        if let Ok(registry) = self.registry.lock() {
            registry
                .everything
                .iter()
                .chain(registry.by_check.values().flatten())
                .for_each(|mailbox| mailbox.close());
        }
    }

    /// Where a new connection starts, and its batches. The subscription first, then the start:
    /// the batches delivered after it hold every wanted event after the fan-out's position,
    /// which is at or before the start's seq, so they cover everything after the start (the
    /// connection skips what the start already covers) and nothing between the two is lost.
    pub(crate) fn join(
        &self,
        bus: &Bus,
        since: Option<u64>,
        filter: &Filter,
    ) -> (Start, Subscription) {
        let subscription = self.subscribe(filter);
        (bus.start_from(since), subscription)
    }

    fn subscribe(&self, filter: &Filter) -> Subscription {
        let mut registry = match self.registry.lock() {
            Ok(registry) => registry,
            Err(poisoned) => poisoned.into_inner(),
        };
        registry.next_id += 1;
        let mut check_keys = filter.check_keys.clone();
        check_keys.dedup();
        // A filter naming no check at all wants nothing keyed; it still needs closes and losses,
        // which only come with batches: it listens to everything (and its filter drops it all).
        let by_check = filter.checks.is_some() && !check_keys.is_empty();
        let mailbox = Arc::new(Mailbox {
            id: registry.next_id,
            check_keys: if by_check { check_keys } else { Vec::new() },
            queue: Mutex::default(),
            notify: tokio::sync::Notify::new(),
            last_dispatch: AtomicU64::new(0),
        });
        if by_check {
            for key in &mailbox.check_keys {
                registry
                    .by_check
                    .entry(*key)
                    .or_default()
                    .push(Arc::clone(&mailbox));
            }
        } else {
            registry.everything.push(Arc::clone(&mailbox));
        }
        Subscription {
            mailbox,
            registry: Arc::clone(&self.registry),
            dispatched: Arc::clone(&self.dispatched),
        }
    }

    /// Tells every connection to close with 1001 (the hub is shutting down).
    pub(crate) fn close_all(&self) {
        self.closing.cancel();
    }

    /// Open connections.
    pub(crate) fn connections(&self) -> usize {
        self.connections.load(Ordering::Relaxed)
    }
}

// ---------------------------------------------------------------------------------------------
// The state a snapshot copies.

/// A check as live subscribers see it (mirrors the `checks` table's latest-status columns).
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct CheckLive {
    pub(crate) id: i64,
    pub(crate) name: Arc<str>,
    pub(crate) kind: Arc<str>,
    pub(crate) status: Option<Status>,
    pub(crate) summary: Option<String>,
    pub(crate) last_run_id: Option<i64>,
    pub(crate) last_run_at: Option<i64>,
    pub(crate) status_since: Option<i64>,
}

/// A run that is queued, leased or started.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct RunLive {
    pub(crate) run_id: i64,
    pub(crate) check_id: Option<i64>,
    pub(crate) check: Option<Arc<str>>,
    /// `queued`, `leased` or `started`.
    pub(crate) state: &'static str,
    pub(crate) attempt: Option<u32>,
    pub(crate) worker: Option<String>,
    pub(crate) queued_at: Option<i64>,
    pub(crate) started_at: Option<i64>,
}

/// Current state, changed by every published event under the bus lock. Entries are `Arc`s so
/// a snapshot under the lock copies pointers, not strings.
#[derive(Debug, Default)]
pub(crate) struct LiveState {
    checks: HashMap<i64, Arc<CheckLive>>,
    running: BTreeMap<i64, Arc<RunLive>>,
}

/// The state as of `seq`.
#[derive(Debug, Clone)]
pub(crate) struct Snapshot {
    pub(crate) seq: u64,
    pub(crate) checks: Vec<Arc<CheckLive>>,
    pub(crate) running: Vec<Arc<RunLive>>,
}

impl LiveState {
    /// State from the store: configured checks with their latest status, and unfinished runs.
    pub(crate) fn from_rows(checks: &[CheckRow], runs: &[RunRow]) -> LiveState {
        let mut state = LiveState::default();
        for row in checks {
            state.checks.insert(
                row.id,
                Arc::new(CheckLive {
                    id: row.id,
                    name: Arc::from(row.name.as_str()),
                    kind: Arc::from(row.kind.as_str()),
                    status: row.status.as_deref().and_then(Status::parse),
                    summary: row.summary.clone(),
                    last_run_id: row.last_run_id,
                    last_run_at: row.last_run_at,
                    status_since: row.status_since,
                }),
            );
        }
        for run in runs {
            let state_name = match run.state {
                RunState::Queued => "queued",
                RunState::Leased => "leased",
                RunState::Started => "started",
                RunState::Completed | RunState::Dead | RunState::Cancelled => continue,
            };
            let from_payload = (run.kind == "check" || run.kind == "ping")
                .then(|| serde_json::from_str::<serde_json::Value>(&run.payload).ok())
                .flatten()
                .and_then(|payload| payload.get("name")?.as_str().map(Arc::<str>::from));
            let check = state.check_name(run.check_id, None).or(from_payload);
            state.track(RunLive {
                run_id: run.id,
                check_id: run.check_id,
                check,
                state: state_name,
                attempt: Some(run.attempts).filter(|n| *n > 0),
                worker: run.lease_owner.clone(),
                queued_at: Some(run.enqueued_at),
                started_at: run.started_at,
            });
        }
        state
    }

    /// Applies one event (published at `at_ms`); returns the check it concerns, if known.
    pub(crate) fn apply(&mut self, kind: &EventKind, at_ms: i64) -> Option<Arc<str>> {
        match kind {
            EventKind::RunQueued {
                run_id,
                check_id,
                check,
            } => {
                let name = self.check_name(*check_id, check.as_deref());
                self.track(RunLive {
                    run_id: *run_id,
                    check_id: *check_id,
                    check: name.clone(),
                    state: "queued",
                    attempt: None,
                    worker: None,
                    queued_at: Some(at_ms),
                    started_at: None,
                });
                name
            }
            EventKind::RunStarted {
                run_id,
                check_id,
                check,
                attempt,
                worker,
            } => {
                let name = self.check_name(*check_id, check.as_deref());
                let queued_at = self.running.get(run_id).and_then(|run| run.queued_at);
                self.track(RunLive {
                    run_id: *run_id,
                    check_id: *check_id,
                    check: name.clone(),
                    state: "started",
                    attempt: Some(*attempt),
                    worker: Some(worker.clone()),
                    queued_at,
                    started_at: Some(at_ms),
                });
                name
            }
            EventKind::OutputLine { run_id, .. } => {
                self.running.get(run_id).and_then(|run| run.check.clone())
            }
            EventKind::RunCancelled {
                run_id, check_id, ..
            } => {
                let tracked = self
                    .running
                    .remove(run_id)
                    .and_then(|run| run.check.clone());
                tracked.or_else(|| self.check_name(*check_id, None))
            }
            EventKind::RunFinished {
                run_id,
                check_id,
                check,
                status,
                summary,
                finished_at,
                ..
            } => {
                self.running.remove(run_id);
                let entry = check_id.and_then(|id| self.checks.get_mut(&id));
                let name = match (&entry, check) {
                    (Some(entry), _) => Some(Arc::clone(&entry.name)),
                    (None, given) => given.as_deref().map(Arc::from),
                };
                if let Some(entry) = entry
                    && entry.last_run_id.is_none_or(|last| last <= *run_id)
                {
                    // As `checks::record_status`: `status_since` moves only on a change.
                    let status_since = if entry.status == Some(*status) {
                        entry.status_since
                    } else {
                        Some(*finished_at)
                    };
                    *entry = Arc::new(CheckLive {
                        id: entry.id,
                        name: Arc::clone(&entry.name),
                        kind: Arc::clone(&entry.kind),
                        status: Some(*status),
                        summary: Some(summary.clone()),
                        last_run_id: Some(*run_id),
                        last_run_at: Some(*finished_at),
                        status_since,
                    });
                }
                name
            }
            // Alerting events change no live state; an incident names its check.
            EventKind::IncidentOpened { check, .. } => check.as_deref().map(Arc::from),
            EventKind::IncidentAcknowledged { .. }
            | EventKind::IncidentResolved { .. }
            | EventKind::NotificationSent { .. }
            | EventKind::NotificationFailed { .. } => None,
        }
    }

    /// Takes the latest run's id, time and summary from the live state where it is newer than
    /// the row's (the status is written to the row as it changes, so the row has it).
    pub(crate) fn freshen(&self, row: &mut CheckRow) {
        let Some(live) = self.checks.get(&row.id) else {
            return;
        };
        if live.last_run_id > row.last_run_id {
            row.last_run_id = live.last_run_id;
            row.last_run_at = live.last_run_at;
            row.summary.clone_from(&live.summary);
        }
    }

    /// Copies the state (pointers only) as of `seq`.
    pub(crate) fn snapshot(&self, seq: u64) -> Snapshot {
        Snapshot {
            seq,
            checks: self.checks.values().cloned().collect(),
            running: self.running.values().cloned().collect(),
        }
    }

    /// The check's name: the event's own when it carries one (a fresh copy is cheaper than the
    /// cache misses of looking the check up among thousands, three times per run), else the
    /// known check's.
    fn check_name(&self, check_id: Option<i64>, given: Option<&str>) -> Option<Arc<str>> {
        given.map(Arc::from).or_else(|| {
            check_id
                .and_then(|id| self.checks.get(&id))
                .map(|check| Arc::clone(&check.name))
        })
    }

    fn track(&mut self, run: RunLive) {
        self.running.insert(run.run_id, Arc::new(run));
        while self.running.len() > MAX_RUNNING {
            self.running.pop_first();
        }
    }
}

/// Loads the live state from the store into the bus; call before anything publishes.
pub(crate) async fn seed(bus: &Bus, store: &Store) -> Result<(), warden_store::StoreError> {
    let (checks, runs) = store
        .read(|conn| {
            let checks = warden_store::checks::list(conn)?;
            let mut runs = Vec::new();
            for state in [RunState::Queued, RunState::Leased, RunState::Started] {
                runs.extend(warden_store::queue::list(
                    conn,
                    &RunFilter {
                        check_id: None,
                        state: Some(state),
                        before_id: None,
                        limit: 10_000,
                    },
                )?);
            }
            Ok((checks, runs))
        })
        .await?;
    bus.seed(LiveState::from_rows(&checks, &runs));
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Wire form.

#[derive(Serialize)]
struct WireEvent<'a> {
    #[serde(rename = "type")]
    message: &'static str,
    seq: u64,
    ts_us: i64,
    kind: &'static str,
    #[serde(flatten)]
    fields: WireFields<'a>,
}

/// Each kind's fields; the kind's name comes from [`EventKind::name`]. A new kind is one variant
/// here and one arm in [`encode_event`] (and one in [`LiveState::apply`] if it changes state).
#[derive(Serialize)]
#[serde(untagged)]
enum WireFields<'a> {
    RunQueued {
        run_id: i64,
        check_id: Option<i64>,
        check: Option<&'a str>,
    },
    RunCancelled {
        run_id: i64,
        check_id: Option<i64>,
        check: Option<&'a str>,
        was: &'a str,
    },
    RunStarted {
        run_id: i64,
        check_id: Option<i64>,
        check: Option<&'a str>,
        attempt: u32,
        worker: &'a str,
    },
    OutputLine {
        run_id: i64,
        check: Option<&'a str>,
        line_no: u64,
        stream: &'static str,
        at: i64,
        line: &'a str,
        /// False beyond the kept-output cap: shown live, not stored.
        recorded: bool,
    },
    RunFinished {
        run_id: i64,
        check_id: Option<i64>,
        check: Option<&'a str>,
        status: &'static str,
        summary: &'a str,
        reason: Option<&'static str>,
        exit_code: Option<i64>,
        duration_ms: i64,
        finished_at: i64,
        samples: Vec<WireSample<'a>>,
    },
    /// Incidents and notifications: their fields as `alerting::wire_fields` writes them.
    Alerting(serde_json::Value),
}

#[derive(Serialize)]
struct WireSample<'a> {
    series: &'a str,
    labels: serde_json::Value,
    ts: i64,
    value: f64,
}

/// The event as one JSON text message.
pub(crate) fn encode_event(event: &Event) -> String {
    let check = event.check.as_deref();
    let fields = match &event.kind {
        EventKind::RunQueued {
            run_id, check_id, ..
        } => WireFields::RunQueued {
            run_id: *run_id,
            check_id: *check_id,
            check,
        },
        EventKind::RunCancelled {
            run_id,
            check_id,
            was,
        } => WireFields::RunCancelled {
            run_id: *run_id,
            check_id: *check_id,
            check,
            was,
        },
        EventKind::RunStarted {
            run_id,
            check_id,
            attempt,
            worker,
            ..
        } => WireFields::RunStarted {
            run_id: *run_id,
            check_id: *check_id,
            check,
            attempt: *attempt,
            worker,
        },
        EventKind::OutputLine {
            run_id,
            line_no,
            stream,
            at,
            line,
            record,
        } => WireFields::OutputLine {
            run_id: *run_id,
            check,
            line_no: *line_no,
            stream: stream.as_str(),
            at: *at,
            line,
            recorded: *record,
        },
        EventKind::RunFinished {
            run_id,
            check_id,
            status,
            summary,
            reason,
            exit_code,
            duration_ms,
            finished_at,
            samples,
            ..
        } => WireFields::RunFinished {
            run_id: *run_id,
            check_id: *check_id,
            check,
            status: status.as_str(),
            summary,
            reason: *reason,
            exit_code: *exit_code,
            duration_ms: *duration_ms,
            finished_at: *finished_at,
            samples: samples
                .iter()
                .map(|point| WireSample {
                    series: &point.series,
                    labels: serde_json::from_str(&point.labels)
                        .unwrap_or_else(|_| serde_json::Value::String(point.labels.clone())),
                    ts: point.ts,
                    value: point.value,
                })
                .collect(),
        },
        EventKind::IncidentOpened { .. }
        | EventKind::IncidentAcknowledged { .. }
        | EventKind::IncidentResolved { .. }
        | EventKind::NotificationSent { .. }
        | EventKind::NotificationFailed { .. } => {
            WireFields::Alerting(crate::alerting::wire_fields(&event.kind))
        }
    };
    let wire = WireEvent {
        message: "event",
        seq: event.seq,
        ts_us: event.published_us,
        kind: event.kind.name(),
        fields,
    };
    serde_json::to_string(&wire).unwrap_or_else(|error| {
        // Only non-finite floats can fail, and serde_json writes those as null.
        tracing::error!(%error, seq = event.seq, "cannot encode an event");
        format!(
            r#"{{"type":"event","seq":{},"kind":"{}"}}"#,
            event.seq,
            event.kind.name()
        )
    })
}

/// The event's wire form, encoded once for all connections.
fn wire(event: &Event) -> Utf8Bytes {
    event
        .wire
        .get_or_init(|| Utf8Bytes::from(encode_event(event)))
        .clone()
}

#[derive(Serialize)]
struct WireSnapshot<'a> {
    #[serde(rename = "type")]
    message: &'static str,
    seq: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    reason: Option<&'static str>,
    checks: Vec<WireCheck<'a>>,
    running: Vec<WireRun<'a>>,
}

#[derive(Serialize)]
struct WireCheck<'a> {
    name: &'a str,
    kind: &'a str,
    status: Option<&'static str>,
    summary: Option<&'a str>,
    last_run_id: Option<i64>,
    last_run_at: Option<i64>,
    status_since: Option<i64>,
}

#[derive(Serialize)]
struct WireRun<'a> {
    run_id: i64,
    check_id: Option<i64>,
    check: Option<&'a str>,
    state: &'static str,
    attempt: Option<u32>,
    worker: Option<&'a str>,
    queued_at: Option<i64>,
    started_at: Option<i64>,
}

/// The snapshot message: checks by name and runs by id, both through the filter.
pub(crate) fn encode_snapshot(
    snapshot: &Snapshot,
    filter: &Filter,
    reason: Option<&'static str>,
) -> String {
    let mut checks: Vec<&CheckLive> = snapshot
        .checks
        .iter()
        .map(Arc::as_ref)
        .filter(|check| filter.wants_check(Some(&check.name)))
        .collect();
    checks.sort_by(|a, b| a.name.cmp(&b.name));
    let wire = WireSnapshot {
        message: "snapshot",
        seq: snapshot.seq,
        reason,
        checks: checks
            .into_iter()
            .map(|check| WireCheck {
                name: &check.name,
                kind: &check.kind,
                status: check.status.map(Status::as_str),
                summary: check.summary.as_deref(),
                last_run_id: check.last_run_id,
                last_run_at: check.last_run_at,
                status_since: check.status_since,
            })
            .collect(),
        running: snapshot
            .running
            .iter()
            .filter(|run| filter.wants_check(run.check.as_deref()))
            .map(|run| WireRun {
                run_id: run.run_id,
                check_id: run.check_id,
                check: run.check.as_deref(),
                state: run.state,
                attempt: run.attempt,
                worker: run.worker.as_deref(),
                queued_at: run.queued_at,
                started_at: run.started_at,
            })
            .collect(),
    };
    serde_json::to_string(&wire).unwrap_or_else(|error| {
        tracing::error!(%error, "cannot encode a snapshot");
        format!(
            r#"{{"type":"snapshot","seq":{},"checks":[],"running":[]}}"#,
            snapshot.seq
        )
    })
}

// ---------------------------------------------------------------------------------------------
// The request.

/// Which events a connection wants.
#[derive(Debug, Clone, Default)]
pub(crate) struct Filter {
    /// Check names; events that concern no check (or another) are dropped.
    checks: Option<HashSet<String>>,
    /// Their [`check_key`]s, sorted: most events are turned away by a look-up here.
    check_keys: Vec<u64>,
    kinds: Option<Vec<&'static str>>,
}

impl Filter {
    /// From `checks=a,b` and `kinds=x,y` (comma-separated, empty entries ignored).
    pub(crate) fn parse(checks: Option<&str>, kinds: Option<&str>) -> Result<Filter, ApiError> {
        let checks = checks.map(|list| {
            list.split(',')
                .map(str::trim)
                .filter(|name| !name.is_empty())
                .map(str::to_string)
                .collect::<HashSet<String>>()
        });
        let kinds = match kinds {
            None => None,
            Some(list) => {
                let mut wanted = Vec::new();
                for name in list.split(',').map(str::trim).filter(|n| !n.is_empty()) {
                    let Some(known) = EventKind::NAMES.iter().find(|known| **known == name) else {
                        return Err(ApiError::bad_request(format!(
                            "kinds: `{name}` is not an event kind (one of {})",
                            EventKind::NAMES.join(", ")
                        )));
                    };
                    wanted.push(*known);
                }
                Some(wanted)
            }
        };
        let mut check_keys: Vec<u64> = checks
            .iter()
            .flatten()
            .map(|name| check_key(name))
            .collect();
        check_keys.sort_unstable();
        Ok(Filter {
            checks,
            check_keys,
            kinds,
        })
    }

    /// [`Filter::wants`] for an event whose check has the [`check_key`] `key`.
    fn wants_keyed(&self, event: &Event, key: Option<u64>) -> bool {
        if self.checks.is_some()
            && key.is_none_or(|key| self.check_keys.binary_search(&key).is_err())
        {
            return false;
        }
        self.wants(event)
    }

    fn wants_check(&self, check: Option<&str>) -> bool {
        match &self.checks {
            None => true,
            Some(names) => check.is_some_and(|name| names.contains(name)),
        }
    }

    pub(crate) fn wants(&self, event: &Event) -> bool {
        self.kinds
            .as_ref()
            .is_none_or(|kinds| kinds.contains(&event.kind.name()))
            && self.wants_check(event.check.as_deref())
    }
}

/// `GET /api/v1/events`: authenticates (header or `?token=`), validates the query, then upgrades
/// to a WebSocket. Every refusal happens before the upgrade, as a plain HTTP error.
pub(crate) async fn events(State(state): State<AppState>, request: Request) -> Response {
    match prepare(&state, request).await {
        Ok(response) => response,
        Err(error) => error.into_response(),
    }
}

async fn prepare(state: &AppState, request: Request) -> Result<Response, ApiError> {
    let (mut parts, _body) = request.into_parts();
    let pairs: Vec<(String, String)> = Query::<Vec<(String, String)>>::try_from_uri(&parts.uri)
        .map(|Query(pairs)| pairs)
        .map_err(|rejection| {
            ApiError::bad_request(format!("bad query: {}", rejection.body_text()))
        })?;
    let mut token = None;
    let mut checks = None;
    let mut kinds = None;
    let mut since = None;
    for (key, value) in &pairs {
        match key.as_str() {
            "token" => token = Some(value.as_str()),
            "checks" => checks = Some(value.as_str()),
            "kinds" => kinds = Some(value.as_str()),
            "since" => since = Some(value.as_str()),
            other => {
                return Err(ApiError::bad_request(format!(
                    "unknown query parameter `{other}` (expected token, checks, kinds, since)"
                )));
            }
        }
    }
    // `?token=` for browsers (no headers on a WebSocket); otherwise whatever the `Caller`
    // extractor accepts (a bearer header, or the web UI's session).
    let caller = match token {
        Some(token) if !parts.headers.contains_key(AUTHORIZATION) => {
            crate::auth::caller_for_token(state, token).await?
        }
        _ => Caller::from_request_parts(&mut parts, state).await?,
    };
    caller.require(Role::Viewer)?;
    let filter = Filter::parse(checks, kinds)?;
    let since = match since {
        None => None,
        Some(text) => Some(text.trim().parse::<u64>().map_err(|_| {
            ApiError::bad_request(format!("since: `{text}` is not a sequence number"))
        })?),
    };
    let last = state.bus.next_seq().saturating_sub(1);
    if let Some(since) = since
        && since > last
    {
        return Err(ApiError::bad_request(format!(
            "since: {since} is in the future (the last event is {last})"
        )));
    }
    let peer = parts
        .extensions
        .get::<ConnectInfo<SocketAddr>>()
        .map(|ConnectInfo(addr)| *addr);
    let upgrade = WebSocketUpgrade::from_request_parts(&mut parts, state)
        .await
        .map_err(|rejection| {
            ApiError::bad_request(format!(
                "this endpoint speaks WebSocket: {}",
                rejection.body_text()
            ))
        })?;
    let bus = state.bus.clone();
    let live = state.live.clone();
    Ok(upgrade
        .write_buffer_size(WRITE_BUFFER)
        .max_write_buffer_size(4 * WRITE_BUFFER + 16 * 1024 * 1024)
        .max_message_size(64 * 1024)
        .on_upgrade(move |socket| async move {
            let _counted = Counted::new(&live.connections);
            let (start, batches) = live.join(&bus, since, &filter);
            let connection = Connection {
                bus,
                filter: Arc::new(filter),
                options: live.options,
                peer,
            };
            connection
                .serve(socket, start, batches, live.closing.clone())
                .await;
        }))
}

/// Counts a connection while it lives (however its task ends).
struct Counted(Arc<AtomicUsize>);

impl Counted {
    fn new(counter: &Arc<AtomicUsize>) -> Counted {
        counter.fetch_add(1, Ordering::Relaxed);
        Counted(Arc::clone(counter))
    }
}

impl Drop for Counted {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

// ---------------------------------------------------------------------------------------------
// One connection.

/// What waits to be written, in order.
enum Outbound {
    Text(Utf8Bytes),
    /// From the replay ring (a resume); does not count against the buffer.
    Replayed(Arc<Event>),
    Live(Arc<Event>),
    Ping,
    Close(Option<(u16, String)>),
}

impl Outbound {
    fn into_message(self) -> Message {
        match self {
            Outbound::Text(text) => Message::Text(text),
            Outbound::Replayed(event) | Outbound::Live(event) => Message::Text(wire(&event)),
            Outbound::Ping => Message::Ping(Bytes::new()),
            Outbound::Close(None) => Message::Close(None),
            Outbound::Close(Some((code, reason))) => Message::Close(Some(CloseFrame {
                code,
                reason: Utf8Bytes::from(reason),
            })),
        }
    }
}

struct Connection {
    bus: Bus,
    filter: Arc<Filter>,
    options: LiveOptions,
    peer: Option<SocketAddr>,
}

/// The per-connection pump state: the backlog between the bus and the writer.
struct Pump {
    backlog: VecDeque<Outbound>,
    /// Live events in the backlog (bounded by the buffer option).
    live_waiting: usize,
    /// Every wanted event with seq ≤ this is in the backlog or already handed to the writer.
    through: u64,
    /// A batch being taken, and how far.
    pending: Option<(Arc<Batch>, usize)>,
}

enum Ended {
    /// The client closed or went away.
    ClientGone,
    /// The close frame (and everything before it) was written.
    Closed,
    /// The drain grace ran out before the close frame could be written.
    GraceExpired,
}

impl Connection {
    async fn serve(
        self,
        socket: WebSocket,
        start: Start,
        batches: Subscription,
        closing: CancellationToken,
    ) {
        let (sink, mut stream) = socket.split();
        let (handoff, handoff_rx) = mpsc::channel::<Message>(HANDOFF);
        let writer = write_loop(sink, handoff_rx);
        tokio::pin!(writer);
        let mut live = Some(batches);
        let mut pump = Pump {
            backlog: VecDeque::new(),
            live_waiting: 0,
            through: 0,
            pending: None,
        };
        match start {
            Start::Snapshot { snapshot, too_old } => {
                pump.through = snapshot.seq;
                let filter = Arc::clone(&self.filter);
                let reason = too_old.then_some("since is too old");
                // Thousands of checks take milliseconds to encode: off the async threads.
                let encoded = tokio::task::spawn_blocking(move || {
                    encode_snapshot(&snapshot, &filter, reason)
                })
                .await;
                let Ok(text) = encoded else {
                    // Only when the runtime is shutting down.
                    return;
                };
                pump.backlog
                    .push_back(Outbound::Text(Utf8Bytes::from(text)));
            }
            Start::Resume { since, missed } => {
                pump.through = since;
                pump.backlog
                    .push_back(Outbound::Text(Utf8Bytes::from(format!(
                        r#"{{"type":"resume","seq":{since}}}"#
                    ))));
                for event in missed {
                    if event.seq != pump.through + 1 {
                        tracing::error!(
                            seq = event.seq,
                            expected = pump.through + 1,
                            "replay out of order"
                        );
                        break;
                    }
                    pump.through = event.seq;
                    if self.filter.wants(&event) {
                        pump.backlog.push_back(Outbound::Replayed(event));
                    }
                }
            }
        }
        let period = self.options.ping_interval;
        let mut ping = tokio::time::interval_at(Instant::now() + period, period);
        ping.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut last_heard = Instant::now();
        let mut deadline: Option<Instant> = None;
        let mut reading = true;
        // Registered once (a child token, so connections do not share one lock every turn).
        let shutdown = closing.child_token().cancelled_owned();
        tokio::pin!(shutdown);
        let ended = loop {
            // Biased, in this order: the writer writes, the backlog moves to the writer, and only
            // then more is taken from the bus, a hand-off at a time. A burst on the bus waits in
            // the bus's buffer while the socket takes it; the backlog fills only when the socket
            // does not.
            tokio::select! {
                biased;
                // Cancel safety: the writer is polled by reference, never dropped mid-write.
                written = &mut writer => {
                    break match written {
                        Ok(()) => Ended::Closed,
                        Err(_) => Ended::ClientGone,
                    };
                }
                () = sleep_until(deadline) => break Ended::GraceExpired,
                // Cancel safety: polled by reference.
                () = &mut shutdown, if deadline.is_none() => {
                    let reason = format!("hub is shutting down; reconnect with since={}", pump.through);
                    deadline = Some(self.start_close(&mut pump, &mut live, CLOSE_GOING_AWAY, reason));
                }
                // Cancel safety: `next` on a stream is cancel-safe.
                frame = stream.next(), if reading => match frame {
                    Some(Ok(Message::Close(_))) => {
                        // tungstenite queued the reply; a close of ours makes the writer flush it.
                        reading = false;
                        live = None;
                        pump.backlog.clear();
                        pump.backlog.push_back(Outbound::Close(None));
                        deadline = Some(Instant::now() + self.options.drain_grace);
                    }
                    Some(Ok(_)) => last_heard = Instant::now(),
                    Some(Err(_)) | None => break Ended::ClientGone,
                },
                // Cancel safety: one sender, so losing a place in the queue changes nothing.
                permit = handoff.reserve(), if !pump.backlog.is_empty() => {
                    let Ok(permit) = permit else { break Ended::ClientGone };
                    pump.hand_off(permit);
                    while !pump.backlog.is_empty() {
                        let Ok(permit) = handoff.try_reserve() else { break };
                        pump.hand_off(permit);
                    }
                }
                // Cancel safety: `tick` is cancel-safe.
                _ = ping.tick(), if deadline.is_none() => {
                    if last_heard.elapsed() >= 2 * period {
                        let reason = format!(
                            "no answer to pings for {}s; reconnect with since={}",
                            last_heard.elapsed().as_secs(),
                            pump.through
                        );
                        tracing::info!(peer = ?self.peer, "live client did not answer pings; closing");
                        deadline = Some(self.start_close(&mut pump, &mut live, CLOSE_NO_PONG, reason));
                    } else {
                        pump.backlog.push_back(Outbound::Ping);
                    }
                }
                // Cancel safety: `Subscription::recv` is cancel-safe.
                batch = recv_batch(&mut live), if pump.pending.is_none() => match batch {
                    Ok(batch) => pump.pending = Some((batch, 0)),
                    Err(broadcast::error::RecvError::Lagged(_)) => {
                        let close = self.too_slow(&pump);
                        deadline = Some(self.start_close(&mut pump, &mut live, close.0, close.1));
                    }
                    Err(broadcast::error::RecvError::Closed) => {
                        let reason = format!("hub is shutting down; reconnect with since={}", pump.through);
                        deadline = Some(self.start_close(&mut pump, &mut live, CLOSE_GOING_AWAY, reason));
                    }
                },
                // A hand-off's worth at a time, so the writer runs in between.
                () = std::future::ready(()), if live.is_some() && pump.pending.is_some() => {
                    if let Some((code, reason)) = self.take(&mut pump) {
                        deadline = Some(self.start_close(&mut pump, &mut live, code, reason));
                    } else if pump.pending.is_none()
                        && let Some(settled) = live.as_ref().and_then(Subscription::settled_through)
                    {
                        // Batches without any wanted event never come here: move past them.
                        pump.through = pump.through.max(settled);
                    }
                }
            }
        };
        if let Ended::GraceExpired = ended {
            tracing::info!(peer = ?self.peer, "live client did not take its close frame in time; dropping it");
        }
    }

    /// Takes from the pending batch: skips what the start already covers, checks every seq
    /// follows the one before, queues what the filter wants; returns a close to start when the
    /// connection cannot keep up.
    fn take(&self, pump: &mut Pump) -> Option<(u16, String)> {
        let (batch, mut index) = pump.pending.take()?;
        if batch.lost > 0 && index == 0 {
            // Only when the fan-out itself fell behind the replay ring.
            tracing::info!(peer = ?self.peer, since = pump.through, "live events lost to this client; closing");
            return Some((
                CLOSE_TOO_SLOW,
                format!(
                    "the hub fell behind: {} events lost; reconnect with since={}",
                    batch.lost, pump.through
                ),
            ));
        }
        // At most a hand-off's worth of wanted events per call (so the writer runs in between),
        // and a bounded number in all (so a connection with a narrow filter yields now and then).
        let mut wanted_budget = HANDOFF;
        let mut budget = 4_096usize;
        while let Some((event, key)) = batch.events.get(index) {
            if wanted_budget == 0 || budget == 0 {
                pump.pending = Some((batch, index));
                return None;
            }
            index += 1;
            budget -= 1;
            if event.seq <= pump.through {
                continue;
            }
            if self.filter.wants_keyed(event, *key) {
                if pump.live_waiting >= self.options.buffer {
                    return Some(self.too_slow(pump));
                }
                pump.backlog.push_back(Outbound::Live(Arc::clone(event)));
                pump.live_waiting += 1;
                wanted_budget -= 1;
            }
            pump.through = event.seq;
        }
        None
    }

    fn too_slow(&self, pump: &Pump) -> (u16, String) {
        let behind = self
            .bus
            .next_seq()
            .saturating_sub(1)
            .saturating_sub(pump.through);
        tracing::info!(peer = ?self.peer, behind, since = pump.through, "live client too slow; closing");
        (
            CLOSE_TOO_SLOW,
            format!(
                "too slow: {behind} events behind; reconnect with since={}",
                pump.through
            ),
        )
    }

    /// Stops taking events and queues the close frame after everything already queued; returns
    /// the deadline for it to be written.
    fn start_close(
        &self,
        pump: &mut Pump,
        live: &mut Option<Subscription>,
        code: u16,
        reason: String,
    ) -> Instant {
        *live = None;
        pump.pending = None;
        pump.backlog
            .push_back(Outbound::Close(Some((code, reason))));
        Instant::now() + self.options.drain_grace
    }
}

impl Pump {
    fn hand_off(&mut self, permit: mpsc::Permit<'_, Message>) {
        let Some(item) = self.backlog.pop_front() else {
            return;
        };
        if let Outbound::Live(_) = item {
            self.live_waiting -= 1;
        }
        permit.send(item.into_message());
    }
}

/// The next batch, or never when the subscription has been dropped.
///
/// # Cancel safety
/// Cancel-safe: [`Subscription::recv`] is.
async fn recv_batch(
    live: &mut Option<Subscription>,
) -> Result<Arc<Batch>, broadcast::error::RecvError> {
    match live {
        Some(subscription) => subscription.recv().await,
        None => std::future::pending().await,
    }
}

async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(deadline) => tokio::time::sleep_until(deadline).await,
        None => std::future::pending().await,
    }
}

/// Writes what it is handed, many messages per flush; ends after writing a close frame (`Ok`)
/// or when the socket fails (`Err`).
async fn write_loop(
    mut sink: SplitSink<WebSocket, Message>,
    mut handoff: mpsc::Receiver<Message>,
) -> Result<(), axum::Error> {
    while let Some(first) = handoff.recv().await {
        let mut closed = matches!(first, Message::Close(_));
        sink.feed(first).await?;
        while !closed {
            let Ok(message) = handoff.try_recv() else {
                break;
            };
            closed = matches!(message, Message::Close(_));
            sink.feed(message).await?;
        }
        sink.flush().await?;
        if closed {
            return Ok(());
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests;
