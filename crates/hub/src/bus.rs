//! The one in-process event bus. Every event gets the next sequence number. The recorder is a
//! privileged subscriber fed through a bounded channel with back-pressure (results must reach
//! the store); live subscribers get a bounded broadcast and, when slow, are told how many events
//! they missed instead of slowing anyone down.

use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use tokio::sync::{broadcast, mpsc};

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
    },
}

impl EventKind {
    pub fn name(&self) -> &'static str {
        match self {
            EventKind::RunQueued { .. } => "run_queued",
            EventKind::RunStarted { .. } => "run_started",
            EventKind::OutputLine { .. } => "output_line",
            EventKind::RunFinished { .. } => "run_finished",
        }
    }

    pub fn run_id(&self) -> i64 {
        match self {
            EventKind::RunQueued { run_id, .. }
            | EventKind::RunStarted { run_id, .. }
            | EventKind::OutputLine { run_id, .. }
            | EventKind::RunFinished { run_id, .. } => *run_id,
        }
    }
}

/// An event with its bus sequence number.
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    pub seq: u64,
    pub kind: EventKind,
}

/// Counters for `/metrics` and tests.
#[derive(Debug, Default)]
pub struct BusStats {
    pub published: AtomicU64,
}

/// The bus handle; cheap to clone.
#[derive(Clone)]
pub struct Bus {
    inner: Arc<BusInner>,
}

struct BusInner {
    next_seq: Mutex<u64>,
    live: broadcast::Sender<Arc<Event>>,
    recorder: mpsc::Sender<Arc<Event>>,
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
    pub fn new(
        live_capacity: usize,
        recorder_capacity: usize,
    ) -> (Bus, mpsc::Receiver<Arc<Event>>) {
        let (live, _) = broadcast::channel(live_capacity.max(1));
        let (recorder, recorder_rx) = mpsc::channel(recorder_capacity.max(1));
        let bus = Bus {
            inner: Arc::new(BusInner {
                next_seq: Mutex::new(1),
                live,
                recorder,
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
        let event = {
            let mut next = self
                .inner
                .next_seq
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner());
            let event = Arc::new(Event { seq: *next, kind });
            *next += 1;
            // Under the lock, so live subscribers see sequence numbers in order.
            let _ = self.inner.live.send(Arc::clone(&event));
            event
        };
        self.inner.stats.published.fetch_add(1, Ordering::Relaxed);
        let seq = event.seq;
        if self.inner.recorder.send(event).await.is_err() {
            tracing::warn!(seq, "recorder is gone; event not recorded");
        }
        seq
    }

    /// A live subscription starting after the current last event.
    pub fn subscribe(&self) -> broadcast::Receiver<Arc<Event>> {
        self.inner.live.subscribe()
    }

    /// The sequence number the next event will get.
    pub fn next_seq(&self) -> u64 {
        *self
            .inner
            .next_seq
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    pub fn published(&self) -> u64 {
        self.inner.stats.published.load(Ordering::Relaxed)
    }
}
