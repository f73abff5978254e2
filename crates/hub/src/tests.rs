//! Hub unit tests: the scheduler on tokio's paused clock (splay, cron across DST, clock jumps,
//! restarts), overlap policies against a real schema, the bus's lag reporting, and what the
//! local pool reports of an exec run.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio_util::sync::CancellationToken;
use warden_core::config::{CheckConfig, CheckKind, Overlap, Schedule};
use warden_store::Connection;
use warden_store::queue::{self, Completion};

use crate::bus::{Bus, EventKind, OutputStream};
use crate::scheduler::{
    DueSlot, ScheduledCheck, Scheduler, SlotOutcome, SlotSink, WallClock, enqueue_slots, splay_ms,
};

/// Wall time that follows tokio's (paused) clock, plus a jump offset the test can move.
#[derive(Clone)]
struct TestClock {
    base_ms: i64,
    start: tokio::time::Instant,
    offset_ms: Arc<AtomicI64>,
}

impl TestClock {
    fn new(base_ms: i64) -> TestClock {
        TestClock {
            base_ms,
            start: tokio::time::Instant::now(),
            offset_ms: Arc::new(AtomicI64::new(0)),
        }
    }

    fn jump(&self, ms: i64) {
        self.offset_ms.fetch_add(ms, Ordering::SeqCst);
    }
}

impl WallClock for TestClock {
    fn now_ms(&self) -> i64 {
        self.base_ms
            + self.start.elapsed().as_millis() as i64
            + self.offset_ms.load(Ordering::SeqCst)
    }
}

/// Fired slots: (check name, slot, wall time when fired).
type Fired = Arc<Mutex<Vec<(String, i64, i64)>>>;

struct RecordingSink {
    clock: TestClock,
    fired: Fired,
}

impl SlotSink for RecordingSink {
    async fn fire(&mut self, slots: Vec<DueSlot>) {
        let now = self.clock.now_ms();
        let mut fired = self.fired.lock().unwrap_or_else(|e| e.into_inner());
        for slot in slots {
            fired.push((slot.name.to_string(), slot.slot_ms, now));
        }
    }
}

fn check(id: i64, name: &str, schedule: Schedule, overlap: Overlap) -> ScheduledCheck {
    ScheduledCheck {
        check_id: id,
        config: CheckConfig {
            name: name.to_string(),
            schedule,
            timeout: Duration::from_secs(10),
            overlap,
            labels: BTreeMap::new(),
            links: Vec::new(),
            kind: CheckKind::Noop,
        },
    }
}

fn every(name: &str, id: i64, seconds: u64) -> ScheduledCheck {
    check(
        id,
        name,
        Schedule::Every(Duration::from_secs(seconds)),
        Overlap::Skip,
    )
}

/// Runs a scheduler over `checks` for `span` of paused time; returns what fired.
async fn run_for(
    clock: TestClock,
    checks: Vec<ScheduledCheck>,
    span: Duration,
) -> Vec<(String, i64, i64)> {
    let fired: Fired = Arc::default();
    let sink = RecordingSink {
        clock: clock.clone(),
        fired: Arc::clone(&fired),
    };
    let scheduler = Scheduler::new(clock, sink, &checks);
    let cancel = CancellationToken::new();
    let task = tokio::spawn(scheduler.run(cancel.clone()));
    tokio::time::sleep(span).await;
    cancel.cancel();
    let _ = task.await;
    fired.lock().unwrap_or_else(|e| e.into_inner()).clone()
}

fn slots_of(fired: &[(String, i64, i64)], name: &str) -> Vec<i64> {
    fired
        .iter()
        .filter(|(n, _, _)| n == name)
        .map(|(_, slot, _)| *slot)
        .collect()
}

const BASE: i64 = 1_800_000_000_000; // a multiple of 10 s

#[tokio::test(start_paused = true)]
async fn every_slots_are_aligned_splayed_and_on_time() {
    let checks: Vec<ScheduledCheck> = (0..1_000)
        .map(|i| every(&format!("c{i}"), i + 1, 10))
        .collect();
    let clock = TestClock::new(BASE + 3_000);
    let fired = run_for(clock, checks, Duration::from_millis(35_500)).await;
    let mut per_second = [0usize; 10];
    for i in 0..1_000 {
        let name = format!("c{i}");
        let splay = splay_ms(&name, 10_000);
        let slots = slots_of(&fired, &name);
        assert!(slots.len() >= 4, "{name}: {slots:?}");
        // The first slot is the latest one at or before the start; then every 10 s exactly.
        assert!(
            slots[0] <= BASE + 3_000 && slots[0] > BASE + 3_000 - 10_000,
            "{name}: first slot {}",
            slots[0]
        );
        for pair in slots.windows(2) {
            assert_eq!(pair[1] - pair[0], 10_000, "{name}: {slots:?}");
        }
        for slot in &slots {
            assert_eq!(slot.rem_euclid(10_000), splay, "{name}: slot off its splay");
        }
        per_second[(splay / 1_000) as usize] += 1;
    }
    // On the paused clock every later slot fires at its time, or up to 1 % of the interval
    // (at most EVERY_EARLY_MAX_MS) before it together with a slot due then.
    let early = crate::scheduler::every_early_ms(10_000);
    assert_eq!(early, crate::scheduler::EVERY_EARLY_MAX_MS);
    for (name, slot, at) in &fired {
        if *slot > BASE + 3_000 {
            assert!(
                *at <= *slot && *at >= slot - early,
                "{name} fired at {at} for slot {slot}"
            );
        }
    }
    // 1,000 checks on one interval spread over it: no second of the 10 holds more than 15 %.
    assert!(
        per_second.iter().all(|n| *n <= 150),
        "splay bunches up: {per_second:?}"
    );
}

#[tokio::test(start_paused = true)]
async fn cron_follows_the_zone_across_both_dst_changes() {
    let cron = |name: &str, id| {
        check(
            id,
            name,
            Schedule::Cron {
                expr: "30 2 * * *".into(),
                timezone: Some("Europe/Paris".into()),
            },
            Overlap::Skip,
        )
    };
    // Spring: 2026-03-29 02:30 does not exist in Paris.
    let start: jiff::Timestamp = "2026-03-27T12:00:00Z"
        .parse()
        .unwrap_or_else(|e| panic!("{e}"));
    let fired = run_for(
        TestClock::new(start.as_millisecond()),
        vec![cron("spring", 1)],
        Duration::from_secs(4 * 86_400),
    )
    .await;
    let spring: Vec<String> = slots_of(&fired, "spring")
        .iter()
        .map(|ms| ts(*ms))
        .collect();
    assert_eq!(
        spring,
        [
            "2026-03-28T01:30:00Z",
            "2026-03-29T01:00:00Z",
            "2026-03-30T00:30:00Z",
            "2026-03-31T00:30:00Z"
        ]
    );
    // Autumn: 2026-10-25 02:30 happens twice in Paris; the check runs once that night.
    let start: jiff::Timestamp = "2026-10-23T12:00:00Z"
        .parse()
        .unwrap_or_else(|e| panic!("{e}"));
    let fired = run_for(
        TestClock::new(start.as_millisecond()),
        vec![cron("autumn", 2)],
        Duration::from_secs(4 * 86_400),
    )
    .await;
    let autumn: Vec<String> = slots_of(&fired, "autumn")
        .iter()
        .map(|ms| ts(*ms))
        .collect();
    assert_eq!(
        autumn,
        [
            "2026-10-24T00:30:00Z",
            "2026-10-25T00:30:00Z",
            "2026-10-26T01:30:00Z",
            "2026-10-27T01:30:00Z"
        ]
    );
}

fn ts(ms: i64) -> String {
    jiff::Timestamp::from_millisecond(ms)
        .map(|t| t.to_string())
        .unwrap_or_default()
}

#[tokio::test(start_paused = true)]
async fn a_forward_clock_jump_runs_each_overdue_check_once() {
    let clock = TestClock::new(BASE);
    let checks = vec![every("a", 1, 10), every("b", 2, 10)];
    let fired: Fired = Arc::default();
    let sink = RecordingSink {
        clock: clock.clone(),
        fired: Arc::clone(&fired),
    };
    let scheduler = Scheduler::new(clock.clone(), sink, &checks);
    let stats = scheduler.stats();
    let cancel = CancellationToken::new();
    let task = tokio::spawn(scheduler.run(cancel.clone()));
    tokio::time::sleep(Duration::from_secs(25)).await;
    let before_jump = fired.lock().unwrap_or_else(|e| e.into_inner()).len();
    let jump_at = clock.now_ms();
    clock.jump(3_600_000); // suspend for an hour, resume
    tokio::time::sleep(Duration::from_secs(25)).await;
    cancel.cancel();
    let _ = task.await;
    let fired = fired.lock().unwrap_or_else(|e| e.into_inner()).clone();
    assert_eq!(stats.jumps.load(Ordering::SeqCst), 1);
    for name in ["a", "b"] {
        let after: Vec<i64> = fired[before_jump..]
            .iter()
            .filter(|(n, _, _)| n == name)
            .map(|(_, slot, _)| *slot)
            .collect();
        let catch_up: Vec<&i64> = after
            .iter()
            .filter(|slot| **slot <= jump_at + 10_000)
            .collect();
        assert_eq!(
            catch_up.len(),
            1,
            "{name}: one catch-up run expected, got {after:?}"
        );
        let resumed: Vec<&i64> = after
            .iter()
            .filter(|slot| **slot > jump_at + 10_000)
            .collect();
        assert!(
            resumed.iter().all(|slot| **slot >= jump_at + 3_600_000),
            "{name}: replayed a missed slot: {after:?}"
        );
        assert!(
            resumed.len() >= 2,
            "{name}: did not resume its cadence: {after:?}"
        );
    }
}

#[tokio::test(start_paused = true)]
async fn a_backward_clock_jump_does_not_stall_checks() {
    let clock = TestClock::new(BASE);
    let fired: Fired = Arc::default();
    let sink = RecordingSink {
        clock: clock.clone(),
        fired: Arc::clone(&fired),
    };
    let scheduler = Scheduler::new(clock.clone(), sink, &[every("a", 1, 10)]);
    let cancel = CancellationToken::new();
    let task = tokio::spawn(scheduler.run(cancel.clone()));
    tokio::time::sleep(Duration::from_secs(15)).await;
    clock.jump(-3_600_000);
    let jumped_at = tokio::time::Instant::now();
    tokio::time::sleep(Duration::from_secs(45)).await;
    cancel.cancel();
    let _ = task.await;
    let fired = fired.lock().unwrap_or_else(|e| e.into_inner()).clone();
    let after = fired.iter().filter(|(_, slot, _)| *slot < BASE).count();
    // Without noticing the jump it would sleep an hour; it keeps firing every 10 s instead.
    assert!(
        after >= 3,
        "fired {after} times in the 45 s after the jump: {fired:?}"
    );
    let _ = jumped_at;
}

/// A sink that enqueues into a real (in-memory) store schema, synchronously.
struct StoreSink {
    conn: Arc<Mutex<Connection>>,
    clock: TestClock,
    outcomes: Arc<Mutex<Vec<(i64, SlotOutcome)>>>,
}

impl SlotSink for StoreSink {
    async fn fire(&mut self, slots: Vec<DueSlot>) {
        let conn = self.conn.lock().unwrap_or_else(|e| e.into_inner());
        let outcomes =
            enqueue_slots(&conn, &slots, self.clock.now_ms()).unwrap_or_else(|e| panic!("{e}"));
        let mut seen = self.outcomes.lock().unwrap_or_else(|e| e.into_inner());
        for (slot, outcome) in slots.iter().zip(outcomes) {
            seen.push((slot.slot_ms, outcome));
        }
    }
}

#[tokio::test(start_paused = true)]
async fn a_restart_never_runs_a_slot_twice() {
    let conn = Arc::new(Mutex::new(
        warden_store::open_in_memory().unwrap_or_else(|e| panic!("{e}")),
    ));
    let checks = vec![check(
        1,
        "a",
        Schedule::Every(Duration::from_secs(10)),
        Overlap::Allow,
    )];
    let outcomes: Arc<Mutex<Vec<(i64, SlotOutcome)>>> = Arc::default();
    let clock = TestClock::new(BASE + 4_000);
    for _life in 0..3 {
        // Each "process" lives 12 s, then a new one starts on the same database at once.
        let sink = StoreSink {
            conn: Arc::clone(&conn),
            clock: clock.clone(),
            outcomes: Arc::clone(&outcomes),
        };
        let scheduler = Scheduler::new(clock.clone(), sink, &checks);
        let cancel = CancellationToken::new();
        let task = tokio::spawn(scheduler.run(cancel.clone()));
        tokio::time::sleep(Duration::from_secs(12)).await;
        cancel.cancel();
        let _ = task.await;
    }
    let outcomes = outcomes.lock().unwrap_or_else(|e| e.into_inner()).clone();
    assert!(
        outcomes
            .iter()
            .any(|(_, o)| matches!(o, SlotOutcome::Duplicate(_))),
        "restarts re-fired no slot: {outcomes:?}"
    );
    let conn = conn.lock().unwrap_or_else(|e| e.into_inner());
    let mut statement = conn
        .prepare("SELECT dedup_key, count(*) FROM runs GROUP BY dedup_key")
        .unwrap_or_else(|e| panic!("{e}"));
    let rows: Vec<(String, i64)> = statement
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .and_then(|rows| rows.collect())
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(rows.len() >= 4, "{rows:?}");
    assert!(
        rows.iter().all(|(_, n)| *n == 1),
        "a slot ran twice: {rows:?}"
    );
}

fn slot(check_id: i64, slot_ms: i64, overlap: Overlap) -> DueSlot {
    DueSlot {
        check_id,
        name: Arc::from("c"),
        slot_ms,
        overlap,
    }
}

fn finish_all(conn: &Connection, now: i64) {
    for lease in queue::lease(conn, "w", 100, 1_000, now).unwrap_or_default() {
        queue::complete(conn, lease.run_id, lease.fence, &Completion::default(), now)
            .unwrap_or_else(|e| panic!("{e}"));
    }
}

#[test]
fn overlap_policies() {
    let conn = warden_store::open_in_memory().unwrap_or_else(|e| panic!("{e}"));
    let kinds = |outcomes: Vec<SlotOutcome>| -> Vec<&'static str> {
        outcomes
            .into_iter()
            .map(|o| match o {
                SlotOutcome::Enqueued(_) => "enqueued",
                SlotOutcome::Duplicate(_) => "duplicate",
                SlotOutcome::Skipped => "skipped",
            })
            .collect()
    };
    let fire = |check_id: i64, slot_ms: i64, overlap: Overlap| {
        kinds(
            enqueue_slots(&conn, &[slot(check_id, slot_ms, overlap)], slot_ms)
                .unwrap_or_else(|e| panic!("{e}")),
        )
    };
    // skip: a slot due while the previous run is live is dropped.
    assert_eq!(fire(1, 10, Overlap::Skip), ["enqueued"]);
    assert_eq!(fire(1, 20, Overlap::Skip), ["skipped"]);
    assert_eq!(fire(1, 10, Overlap::Skip), ["skipped"]);
    finish_all(&conn, 25);
    assert_eq!(fire(1, 30, Overlap::Skip), ["enqueued"]);
    finish_all(&conn, 35);
    assert_eq!(
        fire(1, 10, Overlap::Skip),
        ["duplicate"],
        "a finished slot is never enqueued again"
    );
    // queue: one waits behind the running one (more are dropped), and they run one at a time.
    assert_eq!(fire(2, 10, Overlap::Queue), ["enqueued"]);
    assert_eq!(fire(2, 20, Overlap::Queue), ["enqueued"]);
    assert_eq!(fire(2, 30, Overlap::Queue), ["skipped"]);
    let first = queue::lease(&conn, "w", 10, 1_000, 40).unwrap_or_default();
    assert_eq!(first.len(), 1, "queued runs of one check ran at once");
    queue::complete(
        &conn,
        first[0].run_id,
        first[0].fence,
        &Completion::default(),
        41,
    )
    .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        queue::lease(&conn, "w", 10, 1_000, 42)
            .unwrap_or_default()
            .len(),
        1
    );
    // allow: every slot is enqueued and they may run together.
    assert_eq!(fire(3, 10, Overlap::Allow), ["enqueued"]);
    assert_eq!(fire(3, 20, Overlap::Allow), ["enqueued"]);
    assert_eq!(fire(3, 30, Overlap::Allow), ["enqueued"]);
    assert_eq!(
        queue::lease(&conn, "w", 10, 1_000, 50)
            .unwrap_or_default()
            .len(),
        3
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_subscriber_that_never_reads_does_not_stall_recording_and_learns_its_lag() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let store = warden_store::Store::open(dir.path(), warden_store::StoreOptions::default())
        .unwrap_or_else(|e| panic!("{e}"));
    let (bus, events) = Bus::new(16, 64);
    let (flushed_tx, mut flushed) = tokio::sync::watch::channel(0u64);
    let recorder = tokio::spawn(crate::recorder::run(
        store.clone(),
        events,
        crate::recorder::RecorderOptions::default(),
        flushed_tx,
    ));
    let mut sleeper = bus.subscribe();
    let mut last = 0;
    for line_no in 0..1_000u64 {
        last = bus
            .publish(EventKind::OutputLine {
                run_id: 7,
                line_no,
                stream: OutputStream::Stdout,
                at: 0,
                line: format!("line {line_no}"),
                record: true,
            })
            .await;
    }
    assert_eq!(last, 1_000);
    let reached = tokio::time::timeout(
        Duration::from_secs(30),
        flushed.wait_for(|seq| *seq >= last),
    )
    .await;
    assert!(
        reached.is_ok(),
        "the recorder stalled behind a subscriber that never reads"
    );
    let stored: i64 = store
        .read(|conn| {
            Ok(conn.query_row(
                "SELECT count(*) FROM run_output WHERE run_id = 7",
                [],
                |r| r.get(0),
            )?)
        })
        .await
        .unwrap_or(-1);
    assert_eq!(stored, 1_000);
    match sleeper.recv().await {
        Err(tokio::sync::broadcast::error::RecvError::Lagged(missed)) => {
            assert_eq!(missed, 1_000 - 16)
        }
        other => panic!("expected a lag report, got {other:?}"),
    }
    // After the report it resumes with the oldest event still buffered.
    let next = sleeper.recv().await.map(|e| e.seq).unwrap_or(0);
    assert_eq!(next, 1_000 - 16 + 1);
    drop(bus);
    let _ = recorder.await;
}

/// The heartbeat state machine, walked through pings and the clock (pure: times are inputs).
#[test]
fn heartbeat_transitions() {
    use crate::heartbeat::{Rhythm, entry_for_tests, next_transition};
    use warden_core::Status;

    const H: i64 = 3_600_000;
    let mut entry = entry_for_tests(Rhythm::Every(24 * H), 30 * 60_000);
    // New: nothing is expected until the first ping.
    assert_eq!(next_transition(&entry), None);

    // Up after a success ping at t=1000h: late at +1d, then down after the grace.
    let t = 1000 * H;
    entry.state = "up".to_string();
    entry.last_ping_at = Some(t);
    entry.last_success_at = Some(t);
    let late = next_transition(&entry).expect("up has a deadline");
    assert_eq!(
        (late.at, late.state, late.status),
        (t + 24 * H, "late", Status::Warn)
    );
    assert_eq!(
        late.summary,
        "late: no ping for 1d (expected every 1d; down after a grace of 30m)"
    );
    entry.state = "late".to_string();
    let down = next_transition(&entry).expect("late has a deadline");
    assert_eq!(
        (down.at, down.state, down.status),
        (t + 24 * H + 30 * 60_000, "down", Status::Crit)
    );
    assert_eq!(
        down.summary,
        "down: no ping for 1d30m (expected every 1d, grace 30m)"
    );
    // Down waits for a ping; a fail ping's down too.
    entry.state = "down".to_string();
    assert_eq!(next_transition(&entry), None);

    // Started: down when no end ping came within the grace.
    entry.state = "started".to_string();
    entry.started_at = Some(t + 5 * H);
    let stuck = next_transition(&entry).expect("started has a deadline");
    assert_eq!(
        (stuck.at, stuck.state, stuck.status),
        (t + 5 * H + 30 * 60_000, "down", Status::Crit)
    );
    assert_eq!(
        stuck.summary,
        "down: started 30m ago and never finished (grace 30m)"
    );
}

/// A cron heartbeat expects its ping at the next slot after the last one, in its zone.
#[test]
fn heartbeat_cron_deadline() {
    use crate::heartbeat::{Rhythm, entry_for_tests, next_transition};
    use warden_core::cron::CronSchedule;

    let cron = CronSchedule::parse("0 3 * * *", Some("Europe/Paris")).expect("valid cron");
    let mut entry = entry_for_tests(Rhythm::Cron(Box::new(cron)), 60_000);
    // Pinged 2026-03-28 03:00:05 Paris (02:00:05 UTC); the next 03:00 is after the spring
    // forward, 2026-03-29 03:00 CEST = 01:00 UTC.
    let ping = jiff::Timestamp::from_second(1_774_663_205)
        .expect("valid")
        .as_millisecond();
    entry.state = "up".to_string();
    entry.last_ping_at = Some(ping);
    entry.last_success_at = Some(ping);
    let late = next_transition(&entry).expect("deadline");
    let expected = "2026-03-29T01:00:00Z"
        .parse::<jiff::Timestamp>()
        .expect("valid")
        .as_millisecond();
    assert_eq!(late.at, expected);
    entry.state = "late".to_string();
    assert_eq!(
        next_transition(&entry).map(|t| t.at),
        Some(expected + 60_000)
    );
}

/// A store, a bus whose recorder side is drained, and a live subscription to it.
fn pool_fixture() -> (
    tempfile::TempDir,
    warden_store::Store,
    Bus,
    tokio::sync::broadcast::Receiver<Arc<crate::bus::Event>>,
    tokio::task::JoinHandle<()>,
) {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let store = warden_store::Store::open(dir.path(), warden_store::StoreOptions::default())
        .unwrap_or_else(|e| panic!("{e}"));
    let (bus, mut recorder_events) = Bus::new(4_096, 1_024);
    let drain = tokio::spawn(async move { while recorder_events.recv().await.is_some() {} });
    let events = bus.subscribe();
    (dir, store, bus, events, drain)
}

/// Enqueues `runs` runs of an `exec` check running `script` with `sh -c`.
async fn enqueue_exec_runs(store: &warden_store::Store, script: &str, runs: usize) {
    let config = CheckConfig {
        name: "script".to_string(),
        schedule: Schedule::Every(Duration::from_secs(60)),
        timeout: Duration::from_secs(10),
        overlap: Overlap::Allow,
        labels: BTreeMap::new(),
        links: Vec::new(),
        kind: CheckKind::Exec(warden_core::config::ExecCheck {
            command: vec!["sh".into(), "-c".into(), script.into()],
            env: BTreeMap::new(),
            cwd: None,
            clean_env: false,
        }),
    };
    let payload = serde_json::to_string(&config).unwrap_or_else(|e| panic!("{e}"));
    store
        .write(move |conn| {
            for _ in 0..runs {
                queue::enqueue(
                    conn,
                    &queue::NewRun {
                        check_id: None,
                        kind: "check".to_string(),
                        payload: payload.clone(),
                        priority: 0,
                        run_at: 0,
                        max_attempts: 1,
                        dedup_key: None,
                        concurrency_key: None,
                    },
                    warden_store::now_ms(),
                )?;
            }
            Ok(())
        })
        .await
        .unwrap_or_else(|e| panic!("{e}"));
}

/// The `duration_ms` of the next `runs` runs to finish, each asserted ok.
async fn finished_durations(
    events: &mut tokio::sync::broadcast::Receiver<Arc<crate::bus::Event>>,
    runs: usize,
) -> Vec<i64> {
    let mut durations = Vec::new();
    while durations.len() < runs {
        let event = tokio::time::timeout(Duration::from_secs(30), events.recv())
            .await
            .unwrap_or_else(|_| panic!("no result after 30 s; got {durations:?}"))
            .unwrap_or_else(|e| panic!("{e}"));
        if let EventKind::RunFinished {
            duration_ms,
            status,
            ..
        } = &event.kind
        {
            assert_eq!(*status, warden_core::Status::Ok);
            durations.push(*duration_ms);
        }
    }
    durations
}

/// A run's duration is its process's: under load exec runs wait for one of the pool's process
/// threads, and that wait is not part of it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_exec_runs_duration_leaves_out_its_wait_for_a_process_thread() {
    use crate::worker::{WorkerOptions, WorkerPool};
    let (_dir, store, bus, mut events, drain) = pool_fixture();
    let runs = 3;
    enqueue_exec_runs(&store, "sleep 0.3", runs).await;
    // One process at a time: the runs are leased together and wait their turn.
    let options = WorkerOptions {
        process_concurrency: 1,
        ..WorkerOptions::default()
    };
    let pool = WorkerPool::new(store.clone(), bus.clone(), Arc::default(), options);
    let (stop, abort) = (CancellationToken::new(), CancellationToken::new());
    let running = tokio::spawn(pool.run(stop.clone(), abort));
    let started = std::time::Instant::now();
    let durations = finished_durations(&mut events, runs).await;
    // They ran one after another...
    assert!(started.elapsed() >= Duration::from_millis(900));
    // ...and each took its own 0.3 s, the last one included.
    for duration in &durations {
        assert!((300..900).contains(duration), "{durations:?}");
    }
    stop.cancel();
    let _ = running.await;
    drop(bus);
    let _ = drain.await;
}

/// Many more runs than the pool has slots all run: each finished run gives its slot back, and
/// the pool leases again with the slots it holds, in lots.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pool_with_few_slots_runs_many_more_runs_than_it_has_slots() {
    use crate::worker::{WorkerOptions, WorkerPool};
    let (_dir, store, bus, mut events, drain) = pool_fixture();
    let runs = 200;
    enqueue_exec_runs(&store, "exit 0", runs).await;
    let options = WorkerOptions {
        concurrency: 8,
        process_concurrency: 2,
        ..WorkerOptions::default()
    };
    let pool = WorkerPool::new(store.clone(), bus.clone(), Arc::default(), options);
    let (stop, abort) = (CancellationToken::new(), CancellationToken::new());
    let running = tokio::spawn(pool.run(stop.clone(), abort));
    assert_eq!(finished_durations(&mut events, runs).await.len(), runs);
    let left: i64 = store
        .read(|conn| {
            Ok(conn.query_row(
                "SELECT count(*) FROM runs WHERE state != 'completed'",
                [],
                |r| r.get(0),
            )?)
        })
        .await
        .unwrap_or(-1);
    assert_eq!(left, 0);
    stop.cancel();
    let _ = running.await;
    drop(bus);
    let _ = drain.await;
}
