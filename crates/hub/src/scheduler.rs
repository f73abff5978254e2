//! The scheduler: the next due time of every check in a min-heap, sleeping until the earliest.
//!
//! - `every` slots are aligned: `k * interval + splay`, with a per-check splay derived from its
//!   name, so 10,000 checks on one interval spread over it and a restart computes the same slots.
//! - `cron` slots come from `CronSchedule` in the check's zone (DST-correct).
//! - After each firing the next slot is computed after *now*, so a wall-clock jump forward
//!   (suspend/resume, NTP step) runs each overdue check once, not once per missed slot; a jump
//!   backward is noticed (wall vs monotonic time) and every due time is recomputed.
//! - Each slot carries a dedup key (`slot:<slot_ms>:<check_id>`): on start an `every` check's
//!   latest slot is due at once, and if a previous process already enqueued it, the store
//!   refuses the duplicate, so a restart never runs a slot twice.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio_util::sync::CancellationToken;
use warden_core::config::{CheckConfig, Overlap, Schedule};
use warden_core::cron::CronSchedule;
use warden_store::queue::{self, NewRun};
use warden_store::{Connection, StoreError};

/// A wall-clock difference from monotonic time beyond this is a clock jump.
const JUMP_THRESHOLD_MS: i64 = 2_000;

/// Slots due within this many milliseconds go out together with the one due now, so checks
/// spread by splay over neighbouring milliseconds cost one wake-up and one enqueue write, not
/// one each. A slot therefore starts up to this early; workers lease with the same horizon.
/// This is the bound for `cron` slots, whose minute users read: see [`every_early_ms`] for
/// `every` slots.
pub const EARLY_MS: i64 = 4;
/// The most an `every` slot may start early (see [`every_early_ms`]).
pub const EVERY_EARLY_MAX_MS: i64 = 100;

/// How early an `every` slot may go out with one due before it: 1 % of its interval, at most
/// [`EVERY_EARLY_MAX_MS`], at least [`EARLY_MS`]. The splay already puts the slot at an
/// arbitrary point of the interval, so starting it a hundredth of the interval early changes
/// nothing a user sees, and at 1,000 slots a second it turns ~250 wake-ups and writes a second
/// into ~10 for checks every 10 s or more (measured in docs/benchmarks.md, scenario A: each
/// wake-up and write has a cost of its own, shared by the runs that go out with it).
pub fn every_early_ms(interval_ms: i64) -> i64 {
    (interval_ms / 100).clamp(EARLY_MS, EVERY_EARLY_MAX_MS)
}
/// Longest single sleep, so a backward jump is noticed even with no check due for hours.
const MAX_SLEEP: Duration = Duration::from_secs(30);
/// With `overlap = "queue"`, at most this many runs of a check are live (one running, one waiting).
pub const QUEUE_OVERLAP_LIMIT: u64 = 2;
/// Attempts for a scheduled check run: a second one only when a worker died holding the first.
pub const CHECK_RUN_ATTEMPTS: u32 = 2;

/// Wall-clock time in milliseconds since the Unix epoch.
pub trait WallClock: Send + Sync + 'static {
    fn now_ms(&self) -> i64;
}

/// The system's clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl WallClock for SystemClock {
    fn now_ms(&self) -> i64 {
        warden_store::now_ms()
    }
}

/// A check as the scheduler knows it.
#[derive(Debug, Clone)]
pub struct ScheduledCheck {
    pub check_id: i64,
    pub config: CheckConfig,
}

/// A slot that came due.
#[derive(Debug, Clone, PartialEq)]
pub struct DueSlot {
    pub check_id: i64,
    pub name: Arc<str>,
    pub slot_ms: i64,
    pub overlap: Overlap,
}

impl DueSlot {
    /// `slot:<slot_ms>:<check_id>`: time first, so each new key lands at the end of the
    /// dedup index instead of on a random page of it (one 4 KiB WAL frame less per run).
    pub fn dedup_key(&self) -> String {
        format!("slot:{}:{}", self.slot_ms, self.check_id)
    }
}

/// Where due slots go (the store in production, a recorder in tests).
pub trait SlotSink: Send + 'static {
    fn fire(&mut self, slots: Vec<DueSlot>) -> impl Future<Output = ()> + Send;
}

/// Counters for metrics and tests.
#[derive(Debug, Default)]
pub struct SchedulerStats {
    pub fired: AtomicU64,
    pub jumps: AtomicU64,
}

enum Compiled {
    Every { interval_ms: i64, splay_ms: i64 },
    Cron(Box<CronSchedule>),
}

struct Entry {
    check_id: i64,
    name: Arc<str>,
    overlap: Overlap,
    compiled: Compiled,
    /// How early a slot may go out together with an earlier one.
    early_ms: i64,
}

/// The deterministic offset of a check's `every` slots within its interval.
pub fn splay_ms(name: &str, interval_ms: i64) -> i64 {
    if interval_ms <= 1 {
        return 0;
    }
    let hash = blake3::hash(name.as_bytes());
    let mut first = [0u8; 8];
    first.copy_from_slice(&hash.as_bytes()[..8]);
    (u64::from_le_bytes(first) % interval_ms as u64) as i64
}

impl Entry {
    fn new(check: &ScheduledCheck) -> Result<Entry, String> {
        let compiled = match &check.config.schedule {
            Schedule::Every(every) => {
                let interval_ms = i64::try_from(every.as_millis()).unwrap_or(i64::MAX).max(1);
                Compiled::Every {
                    interval_ms,
                    splay_ms: splay_ms(&check.config.name, interval_ms),
                }
            }
            Schedule::Cron { expr, timezone } => {
                Compiled::Cron(Box::new(CronSchedule::parse(expr, timezone.as_deref())?))
            }
        };
        let early_ms = match &compiled {
            Compiled::Every { interval_ms, .. } => every_early_ms(*interval_ms),
            Compiled::Cron(_) => EARLY_MS,
        };
        Ok(Entry {
            check_id: check.check_id,
            name: Arc::from(check.config.name.as_str()),
            overlap: check.config.overlap,
            compiled,
            early_ms,
        })
    }

    /// The first slot strictly after `after_ms`.
    fn next_after(&self, after_ms: i64) -> Option<i64> {
        match &self.compiled {
            Compiled::Every {
                interval_ms,
                splay_ms,
            } => {
                let k = (after_ms - splay_ms).div_euclid(*interval_ms) + 1;
                Some(k * interval_ms + splay_ms)
            }
            Compiled::Cron(cron) => cron.next_after_ms(after_ms),
        }
    }

    /// The first slot to run on start: an `every` check's latest slot (at or before now), so it
    /// runs at once unless a previous process already ran it; a cron check's next slot.
    fn first_due(&self, now_ms: i64) -> Option<i64> {
        match &self.compiled {
            Compiled::Every { interval_ms, .. } => self.next_after(now_ms - interval_ms),
            Compiled::Cron(_) => self.next_after(now_ms),
        }
    }
}

/// The scheduler; `run` consumes it.
pub struct Scheduler<C: WallClock, S: SlotSink> {
    clock: C,
    sink: S,
    entries: Vec<Entry>,
    heap: BinaryHeap<Reverse<(i64, usize)>>,
    stats: Arc<SchedulerStats>,
}

impl<C: WallClock, S: SlotSink> Scheduler<C, S> {
    /// Builds the schedule. A check whose schedule cannot be compiled is logged and left out.
    pub fn new(clock: C, sink: S, checks: &[ScheduledCheck]) -> Scheduler<C, S> {
        let now = clock.now_ms();
        let mut entries = Vec::with_capacity(checks.len());
        let mut heap = BinaryHeap::with_capacity(checks.len());
        for check in checks {
            match Entry::new(check) {
                Ok(entry) => {
                    if let Some(due) = entry.first_due(now) {
                        heap.push(Reverse((due, entries.len())));
                    }
                    entries.push(entry);
                }
                Err(error) => {
                    tracing::error!(check = %check.config.name, %error, "check not scheduled")
                }
            }
        }
        Scheduler {
            clock,
            sink,
            entries,
            heap,
            stats: Arc::new(SchedulerStats::default()),
        }
    }

    pub fn stats(&self) -> Arc<SchedulerStats> {
        Arc::clone(&self.stats)
    }

    /// The earliest due time, if any check is scheduled.
    pub fn next_due(&self) -> Option<i64> {
        self.heap.peek().map(|Reverse((due, _))| *due)
    }

    /// Runs until `cancel` fires.
    ///
    /// # Cancel safety
    /// Meant to run as its own task; cancellation is through the token.
    pub async fn run(mut self, cancel: CancellationToken) {
        let mut last_wall = self.clock.now_ms();
        let mut last_mono = tokio::time::Instant::now();
        loop {
            let now = self.clock.now_ms();
            let mono_elapsed = i64::try_from(last_mono.elapsed().as_millis()).unwrap_or(i64::MAX);
            let drift = (now - last_wall) - mono_elapsed;
            if drift < -JUMP_THRESHOLD_MS {
                self.stats.jumps.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(
                    jump_ms = drift,
                    "wall clock jumped backward; rescheduling every check"
                );
                self.reschedule_all(now);
            } else if drift > JUMP_THRESHOLD_MS {
                self.stats.jumps.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(
                    jump_ms = drift,
                    "wall clock jumped forward; each overdue check runs once"
                );
            }
            last_wall = now;
            last_mono = tokio::time::Instant::now();

            let due = self.pop_due(now);
            if !due.is_empty() {
                self.stats
                    .fired
                    .fetch_add(due.len() as u64, Ordering::Relaxed);
                self.sink.fire(due).await;
                continue;
            }
            let wait = match self.next_due() {
                Some(due) => {
                    Duration::from_millis(u64::try_from(due - now).unwrap_or(0)).min(MAX_SLEEP)
                }
                None => MAX_SLEEP,
            };
            tokio::select! {
                () = cancel.cancelled() => return,
                () = tokio::time::sleep(wait) => {}
            }
        }
    }

    /// Takes every slot due at or before now, or a little after (each entry's `early_ms`),
    /// once one is due now.
    fn pop_due(&mut self, now: i64) -> Vec<DueSlot> {
        let mut due = Vec::new();
        if self.next_due().is_none_or(|first| first > now) {
            return due;
        }
        // Slots inside the widest window but outside their own go back afterwards.
        let mut not_yet = Vec::new();
        while let Some(Reverse((slot_ms, index))) = self.heap.peek().copied() {
            if slot_ms > now + EVERY_EARLY_MAX_MS.max(EARLY_MS) {
                break;
            }
            self.heap.pop();
            let Some(entry) = self.entries.get(index) else {
                continue;
            };
            if slot_ms > now + entry.early_ms {
                not_yet.push(Reverse((slot_ms, index)));
                continue;
            }
            due.push(DueSlot {
                check_id: entry.check_id,
                name: Arc::clone(&entry.name),
                slot_ms,
                overlap: entry.overlap,
            });
            // After now, not after the slot: missed slots collapse into this one run.
            if let Some(next) = entry.next_after(now.max(slot_ms)) {
                self.heap.push(Reverse((next, index)));
            }
        }
        self.heap.extend(not_yet);
        due
    }

    fn reschedule_all(&mut self, now: i64) {
        self.heap.clear();
        for (index, entry) in self.entries.iter().enumerate() {
            if let Some(next) = entry.next_after(now) {
                self.heap.push(Reverse((next, index)));
            }
        }
    }
}

/// What became of a due slot.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SlotOutcome {
    Enqueued(i64),
    /// Already enqueued by an earlier process: not run twice.
    Duplicate(i64),
    /// Dropped by the check's overlap policy.
    Skipped,
}

/// Enqueues due slots in one transaction, applying each check's overlap policy.
pub fn enqueue_slots(
    conn: &Connection,
    slots: &[DueSlot],
    now: i64,
) -> Result<Vec<SlotOutcome>, StoreError> {
    enqueue_slots_leasing(conn, slots, now, None).map(|(outcomes, _)| outcomes)
}

/// A worker taking up to `room` of the runs being enqueued at once ([`enqueue_slots_leasing`]).
#[derive(Debug, Clone, Copy)]
pub struct Leasing<'a> {
    pub to: queue::LeaseTo<'a>,
    pub room: usize,
}

/// [`enqueue_slots`], enqueuing up to `leasing.room` of the runs already leased to its worker
/// (`queue::enqueue_leased`: one insert per run instead of an insert and a lease). Runs of
/// checks with `overlap = "queue"` are always queued (their concurrency key keeps them one at a
/// time). Returns the outcomes, one per slot, and the leases taken.
pub fn enqueue_slots_leasing(
    conn: &Connection,
    slots: &[DueSlot],
    now: i64,
    leasing: Option<Leasing<'_>>,
) -> Result<(Vec<SlotOutcome>, Vec<queue::Lease>), StoreError> {
    let mut leases = Vec::new();
    let mut outcomes = Vec::with_capacity(slots.len());
    for slot in slots {
        let live_limit = match slot.overlap {
            Overlap::Skip => Some(1),
            Overlap::Queue => Some(QUEUE_OVERLAP_LIMIT),
            Overlap::Allow => None,
        };
        let run = NewRun {
            check_id: Some(slot.check_id),
            kind: "check".to_string(),
            // The worker runs the check's definition as stored (`checks.spec`).
            payload: queue::CHECK_SPEC_PAYLOAD.to_string(),
            priority: 0,
            run_at: slot.slot_ms.min(now),
            max_attempts: CHECK_RUN_ATTEMPTS,
            dedup_key: Some(slot.dedup_key()),
            concurrency_key: (slot.overlap == Overlap::Queue)
                .then(|| format!("check:{}", slot.check_id)),
        };
        let lease_to = leasing
            .filter(|leasing| run.concurrency_key.is_none() && leases.len() < leasing.room)
            .map(|leasing| leasing.to);
        outcomes.push(
            match queue::enqueue_slot(conn, &run, live_limit, lease_to, now)? {
                queue::Slot::Added { run_id, lease } => {
                    leases.extend(lease);
                    SlotOutcome::Enqueued(run_id)
                }
                queue::Slot::Duplicate(run_id) => SlotOutcome::Duplicate(run_id),
                queue::Slot::Skipped => SlotOutcome::Skipped,
            },
        );
    }
    Ok((outcomes, leases))
}
