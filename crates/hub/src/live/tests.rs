//! Unit tests for live events: the bus's snapshot/stream alignment under concurrent publishing,
//! the replay ring's bounds, the live state's rules, and the wire form.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use serde_json::{Value, json};
use tokio::sync::broadcast::error::TryRecvError;
use warden_core::Status;
use warden_store::checks::CheckRow;

use super::{Filter, Live, LiveOptions, LiveState, encode_event, encode_snapshot};
use crate::bus::{Bus, BusOptions, Event, EventKind, OutputStream, SamplePoint, Start};

fn options(replay_events: usize) -> BusOptions {
    BusOptions {
        live_capacity: 1_024,
        recorder_capacity: 1_024,
        replay_events,
        replay_bytes: usize::MAX,
        first_seq: 1,
    }
}

/// A bus whose recorder side is drained (publish waits for room there).
fn bus(options: BusOptions) -> Bus {
    let (bus, mut recorder) = Bus::with_options(options);
    tokio::spawn(async move { while recorder.recv().await.is_some() {} });
    bus
}

fn check_row(id: i64, name: &str) -> CheckRow {
    CheckRow {
        id,
        name: name.to_string(),
        kind: "noop".to_string(),
        spec: "{}".to_string(),
        status: None,
        status_since: None,
        last_run_id: None,
        last_run_at: None,
        summary: None,
    }
}

fn finished(run_id: i64, check_id: i64, status: Status, at: i64) -> EventKind {
    EventKind::RunFinished {
        run_id,
        check_id: Some(check_id),
        check: Some(format!("c{check_id}")),
        status,
        summary: format!("run {run_id}"),
        exit_code: None,
        duration_ms: 1,
        finished_at: at,
        samples: Vec::new(),
        reason: None,
        stored: false,
    }
}

fn line(run_id: i64, text: &str) -> EventKind {
    EventKind::OutputLine {
        run_id,
        line_no: 0,
        stream: OutputStream::Stdout,
        at: 5,
        line: text.to_string(),
        record: true,
    }
}

/// The property the endpoint rests on, through the same steps a connection takes (join the
/// fan-out's batches, then take the start from the bus): a snapshot at S is exactly the fold of
/// events 1..=S, and the batches then yield S+1, S+2, … with nothing missing or repeated, while
/// several tasks publish as fast as they can.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn snapshot_and_stream_line_up_while_publishers_race() {
    let bus = bus(options(200_000));
    let live = Live::new(LiveOptions::default());
    let fan_out = tokio::spawn(live.clone().fan_out(bus.clone()));
    let rows: Vec<CheckRow> = (1..=20)
        .map(|id| check_row(id, &format!("c{id}")))
        .collect();
    bus.seed(LiveState::from_rows(&rows, &[]));
    const ROUNDS: i64 = 20_000;
    let finished_publishers = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let publishers: Vec<_> = (0..4i64)
        .map(|publisher| {
            let bus = bus.clone();
            let finished_publishers = Arc::clone(&finished_publishers);
            tokio::spawn(async move {
                // Each publisher owns five checks; run ids grow per check.
                let mut log = Vec::new();
                for round in 0..ROUNDS {
                    let check_id = 1 + publisher * 5 + round % 5;
                    let run_id = round * 10 + publisher;
                    let status = if round % 3 == 0 {
                        Status::Crit
                    } else {
                        Status::Ok
                    };
                    let seq = bus.publish(finished(run_id, check_id, status, round)).await;
                    log.push((seq, check_id, run_id));
                    if round % 50 == 0 {
                        tokio::task::yield_now().await;
                    }
                }
                finished_publishers.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                log
            })
        })
        .collect();
    let publishing = || finished_publishers.load(std::sync::atomic::Ordering::SeqCst) < 4;
    let mut snapshots = Vec::new();
    while publishing() {
        let (start, batches) = live.join(&bus, None, &Filter::default());
        let Start::Snapshot { snapshot, too_old } = start else {
            panic!("a start without since is a snapshot");
        };
        assert!(!too_old);
        let mut expected = snapshot.seq + 1;
        // Read a few events (as many as arrive before the publishers finish).
        'reading: while expected <= snapshot.seq + 20 {
            match batches.try_recv() {
                Ok(batch) => {
                    for (event, _) in &batch.events {
                        if event.seq < expected {
                            assert!(
                                event.seq <= snapshot.seq,
                                "seq {} delivered twice",
                                event.seq
                            );
                            continue;
                        }
                        assert_eq!(event.seq, expected, "gap after the snapshot");
                        expected += 1;
                    }
                }
                Err(TryRecvError::Empty) if publishing() => tokio::task::yield_now().await,
                Err(TryRecvError::Empty) => break 'reading,
                // This task was not scheduled for a while: a real connection closes here.
                Err(TryRecvError::Lagged(_)) => break 'reading,
                Err(TryRecvError::Closed) => panic!("the fan-out ended"),
            }
        }
        snapshots.push(snapshot);
        tokio::task::yield_now().await;
    }
    live.close_all();
    let _ = fan_out.await;
    let mut log = Vec::new();
    for publisher in publishers {
        log.extend(publisher.await.unwrap_or_default());
    }
    let total = 4 * ROUNDS as u64;
    assert_eq!(log.len() as u64, total);
    log.sort_unstable();
    let seqs: Vec<u64> = log.iter().map(|(seq, _, _)| *seq).collect();
    assert_eq!(seqs, (1..=total).collect::<Vec<u64>>());
    let midstream = snapshots
        .iter()
        .filter(|snapshot| snapshot.seq > 0 && snapshot.seq < total)
        .count();
    assert!(
        midstream >= 10,
        "only {midstream} snapshots were taken while events flowed"
    );
    // The fold of every event up to each snapshot's seq, computed independently (snapshots in
    // seq order, events folded as we go).
    snapshots.sort_by_key(|snapshot| snapshot.seq);
    let mut latest: HashMap<i64, i64> = HashMap::new();
    let mut folded = log.iter().peekable();
    for snapshot in &snapshots {
        while let Some((_, check_id, run_id)) = folded.next_if(|(seq, _, _)| *seq <= snapshot.seq) {
            latest.insert(*check_id, *run_id);
        }
        for check in &snapshot.checks {
            assert_eq!(
                check.last_run_id,
                latest.get(&check.id).copied(),
                "snapshot at {} disagrees with the events before it for check {}",
                snapshot.seq,
                check.name
            );
        }
    }
}

/// A connection filtered to one check is handed only the batches that hold one of its events
/// (others are never woken for the rest), gets each of its events once and in order, and once
/// its queue is empty it is settled up to the fan-out's position (so its resume point moves past
/// batches it never saw).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn filtered_subscriptions_get_only_batches_with_their_checks() {
    let bus = bus(options(100_000));
    let live = Live::new(LiveOptions::default());
    let fan_out = tokio::spawn(live.clone().fan_out(bus.clone()));
    let rows: Vec<CheckRow> = (1..=3).map(|id| check_row(id, &format!("c{id}"))).collect();
    bus.seed(LiveState::from_rows(&rows, &[]));
    let only_c2 = Filter::parse(Some("c2"), None).unwrap_or_else(|e| panic!("{e:?}"));
    let (start, subscription) = live.join(&bus, None, &only_c2);
    let Start::Snapshot { snapshot, .. } = start else {
        panic!("a start without since is a snapshot");
    };
    let (_, everything) = live.join(&bus, None, &Filter::default());
    let mut published_c2 = Vec::new();
    let mut last = snapshot.seq;
    for round in 0..3_000i64 {
        let check_id = if round % 100 == 7 {
            2
        } else {
            1 + 2 * (round % 2)
        };
        last = bus
            .publish(finished(round, check_id, Status::Ok, round))
            .await;
        if check_id == 2 {
            published_c2.push(last);
        }
        if round % 500 == 0 {
            tokio::task::yield_now().await;
        }
    }
    // The unfiltered subscription sees every event: wait for the last one to be dispatched.
    let mut seen_all = snapshot.seq;
    while seen_all < last {
        let batch = everything.recv().await.unwrap_or_else(|e| panic!("{e}"));
        for (event, _) in &batch.events {
            if event.seq <= seen_all {
                continue;
            }
            assert_eq!(event.seq, seen_all + 1, "gap in the unfiltered stream");
            seen_all = event.seq;
        }
    }
    // The fan-out marks its position after handing the batch out, so the unfiltered stream may
    // show the last event a moment before the filtered subscription counts as settled.
    tokio::time::timeout(Duration::from_secs(10), async {
        while subscription.dispatched.load(Ordering::Acquire) < last {
            tokio::task::yield_now().await;
        }
    })
    .await
    .unwrap_or_else(|_| panic!("the fan-out never reached seq {last}"));
    let mut got_c2 = Vec::new();
    let mut batches = 0;
    while let Ok(batch) = subscription.try_recv() {
        batches += 1;
        let mine: Vec<u64> = batch
            .events
            .iter()
            .filter(|(event, _)| event.check.as_deref() == Some("c2"))
            .map(|(event, _)| event.seq)
            .collect();
        assert!(
            !mine.is_empty(),
            "a batch without c2 was handed to a c2-only subscription"
        );
        got_c2.extend(mine);
    }
    assert_eq!(got_c2, published_c2, "c2's events, each once, in order");
    assert!(batches <= published_c2.len());
    assert_eq!(subscription.settled_through(), Some(last));
    drop(subscription);
    live.close_all();
    let _ = fan_out.await;
    assert!(
        matches!(
            everything.recv().await,
            Err(tokio::sync::broadcast::error::RecvError::Closed)
        ),
        "the fan-out's end closes subscriptions"
    );
}

#[tokio::test]
async fn resume_gets_exactly_the_events_after_since_then_live_ones() {
    let bus = bus(options(1_000));
    for n in 0..100 {
        bus.publish(line(1, &format!("{n}"))).await;
    }
    let mut live = bus.subscribe();
    let Start::Resume { since, missed } = bus.start_from(Some(40)) else {
        panic!("since 40 is in the ring");
    };
    assert_eq!(since, 40);
    let seqs: Vec<u64> = missed.iter().map(|event| event.seq).collect();
    assert_eq!(seqs, (41..=100).collect::<Vec<u64>>());
    bus.publish(line(1, "next")).await;
    assert_eq!(live.recv().await.map(|event| event.seq).ok(), Some(101));

    // Resuming at the very last event: nothing missed, the next one live.
    let Start::Resume { missed, .. } = bus.start_from(Some(101)) else {
        panic!("since = last is a resume");
    };
    assert!(missed.is_empty());
}

#[tokio::test]
async fn since_older_than_the_ring_gets_a_fresh_snapshot() {
    let bus = bus(options(10));
    for n in 0..30 {
        bus.publish(line(1, &format!("{n}"))).await;
    }
    // The ring holds 21..=30: since 20 is the oldest that can resume.
    match bus.start_from(Some(20)) {
        Start::Resume { missed, .. } => {
            assert_eq!(missed.first().map(|event| event.seq), Some(21));
            assert_eq!(missed.len(), 10);
        }
        Start::Snapshot { .. } => panic!("since 20 can resume from 21..=30"),
    }
    for since in [0, 5, 19] {
        match bus.start_from(Some(since)) {
            Start::Snapshot { snapshot, too_old } => {
                assert!(too_old, "since {since}");
                assert_eq!(snapshot.seq, 30);
            }
            Start::Resume { .. } => panic!("since {since} is older than the ring"),
        }
    }
}

#[tokio::test]
async fn a_since_from_an_earlier_hub_run_is_too_old_not_a_resume() {
    // This run started numbering at 5,000 (see `first_seq_now`); a client of the previous run
    // saw up to 4,321.
    let bus = bus(BusOptions {
        first_seq: 5_000,
        ..options(1_000)
    });
    for n in 0..10 {
        bus.publish(line(1, &format!("{n}"))).await;
    }
    match bus.start_from(Some(4_321)) {
        Start::Snapshot { too_old, snapshot } => {
            assert!(too_old);
            assert_eq!(snapshot.seq, 5_009);
        }
        Start::Resume { .. } => panic!("events of another run must never be replayed"),
    }
    assert!(super::first_seq_now() > 1_000 * 1_700_000_000_000);
}

#[tokio::test]
async fn the_replay_ring_is_bounded_by_bytes_too() {
    let bus = bus(BusOptions {
        replay_bytes: 100 * 1024,
        ..options(1_000_000)
    });
    let long = "x".repeat(10 * 1024);
    for _ in 0..100 {
        bus.publish(line(1, &long)).await;
    }
    // ~20 KiB counted per event (kept + wire form): about five fit.
    let Start::Resume { missed, .. } = bus.start_from(Some(99)) else {
        panic!("the newest events stay");
    };
    assert_eq!(missed.len(), 1);
    let Start::Snapshot { too_old, .. } = bus.start_from(Some(80)) else {
        panic!("old events left the ring");
    };
    assert!(too_old);
}

#[test]
fn live_state_follows_runs_and_statuses_as_the_store_does() {
    let mut rows = vec![check_row(1, "web"), check_row(2, "db")];
    rows[1].status = Some("ok".to_string());
    rows[1].status_since = Some(100);
    rows[1].last_run_id = Some(50);
    let mut state = LiveState::from_rows(&rows, &[]);
    let name = state.apply(
        &EventKind::RunQueued {
            run_id: 60,
            check_id: Some(1),
            check: Some("web".to_string()),
        },
        1_000,
    );
    assert_eq!(name.as_deref(), Some("web"));
    state.apply(
        &EventKind::RunStarted {
            run_id: 60,
            check_id: Some(1),
            check: Some("web".to_string()),
            attempt: 1,
            worker: "local".to_string(),
        },
        1_010,
    );
    // Output lines carry no check: the runs in flight name it.
    assert_eq!(state.apply(&line(60, "hi"), 1_020).as_deref(), Some("web"));
    assert_eq!(state.apply(&line(999, "?"), 1_020), None);
    let snapshot = state.snapshot(7);
    assert_eq!(snapshot.running.len(), 1);
    let run = &snapshot.running[0];
    assert_eq!(
        (run.state, run.queued_at, run.started_at, run.attempt),
        ("started", Some(1_000), Some(1_010), Some(1))
    );

    state.apply(&finished(60, 1, Status::Ok, 2_000), 2_000);
    // Same status again: status_since stays; a change moves it.
    state.apply(&finished(51, 2, Status::Ok, 2_100), 2_100);
    state.apply(&finished(52, 2, Status::Crit, 2_200), 2_200);
    state.apply(&finished(53, 2, Status::Crit, 2_300), 2_300);
    // An older run finishing late does not overwrite a newer result.
    state.apply(&finished(40, 2, Status::Ok, 2_400), 2_400);
    let snapshot = state.snapshot(8);
    assert!(snapshot.running.is_empty());
    let by_name: HashMap<&str, _> = snapshot
        .checks
        .iter()
        .map(|check| (&*check.name, check.as_ref()))
        .collect();
    let web = by_name["web"];
    assert_eq!(
        (web.status, web.last_run_id, web.status_since),
        (Some(Status::Ok), Some(60), Some(2_000))
    );
    let db = by_name["db"];
    assert_eq!(
        (db.status, db.last_run_id, db.last_run_at, db.status_since),
        (Some(Status::Crit), Some(53), Some(2_300), Some(2_200))
    );
    assert_eq!(db.summary.as_deref(), Some("run 53"));
}

fn event(seq: u64, kind: EventKind, check: Option<&str>) -> Event {
    Event {
        seq,
        kind,
        published_us: 1_700_000_000_123_456,
        check: check.map(Arc::from),
        wire: std::sync::OnceLock::new(),
    }
}

fn parse(text: &str) -> Value {
    serde_json::from_str(text).unwrap_or_else(|error| panic!("{error}: {text}"))
}

#[test]
fn events_on_the_wire() {
    let queued = event(
        7,
        EventKind::RunQueued {
            run_id: 3,
            check_id: Some(1),
            check: Some("web".to_string()),
        },
        Some("web"),
    );
    assert_eq!(
        parse(&encode_event(&queued)),
        json!({"type": "event", "seq": 7, "ts_us": 1_700_000_000_123_456i64, "kind": "run_queued",
               "run_id": 3, "check_id": 1, "check": "web"})
    );
    let output = event(8, line(3, "hello"), Some("web"));
    assert_eq!(
        parse(&encode_event(&output)),
        json!({"type": "event", "seq": 8, "ts_us": 1_700_000_000_123_456i64, "kind": "output_line",
               "run_id": 3, "check": "web", "line_no": 0, "stream": "stdout", "at": 5,
               "line": "hello", "recorded": true})
    );
    let done = event(
        9,
        EventKind::RunFinished {
            run_id: 3,
            check_id: Some(1),
            check: Some("web".to_string()),
            status: Status::Warn,
            summary: "slow".to_string(),
            exit_code: Some(1),
            duration_ms: 12,
            finished_at: 99,
            samples: vec![SamplePoint {
                series: "web.time".to_string(),
                labels: r#"{"code":"200"}"#.to_string(),
                ts: 99,
                value: 0.25,
            }],
            reason: Some("timeout"),
            stored: true,
        },
        Some("web"),
    );
    assert_eq!(
        parse(&encode_event(&done)),
        json!({"type": "event", "seq": 9, "ts_us": 1_700_000_000_123_456i64, "kind": "run_finished",
               "run_id": 3, "check_id": 1, "check": "web", "status": "warn", "summary": "slow",
               "reason": "timeout", "exit_code": 1, "duration_ms": 12, "finished_at": 99,
               "samples": [{"series": "web.time", "labels": {"code": "200"}, "ts": 99, "value": 0.25}]})
    );
    let started = event(
        10,
        EventKind::RunStarted {
            run_id: 3,
            check_id: None,
            check: None,
            attempt: 2,
            worker: "local".to_string(),
        },
        None,
    );
    assert_eq!(parse(&encode_event(&started))["kind"], json!("run_started"));
    // Every kind's name is one a filter accepts.
    for sample in [&queued, &output, &done, &started] {
        assert!(EventKind::NAMES.contains(&sample.kind.name()));
        assert!(
            Filter::parse(None, Some(sample.kind.name())).is_ok(),
            "{}",
            sample.kind.name()
        );
    }
}

#[test]
fn filters_by_kind_and_check() {
    assert!(Filter::parse(None, Some("run_finished,bogus")).is_err());
    let filter = Filter::parse(Some("web, db,"), Some("run_finished,output_line"))
        .unwrap_or_else(|error| panic!("{}", error.message));
    let web_line = event(1, line(3, "x"), Some("web"));
    let other_line = event(2, line(4, "x"), Some("cache"));
    let unknown_line = event(3, line(5, "x"), None);
    let web_queued = event(
        4,
        EventKind::RunQueued {
            run_id: 3,
            check_id: Some(1),
            check: Some("web".to_string()),
        },
        Some("web"),
    );
    assert!(filter.wants(&web_line));
    assert!(!filter.wants(&other_line));
    assert!(!filter.wants(&unknown_line));
    assert!(!filter.wants(&web_queued));
    assert!(Filter::default().wants(&unknown_line));
}

#[test]
fn snapshots_on_the_wire_are_sorted_and_filtered() {
    let mut rows = vec![check_row(2, "web"), check_row(1, "api"), check_row(3, "db")];
    rows[0].status = Some("crit".to_string());
    rows[0].summary = Some("down".to_string());
    rows[0].last_run_id = Some(9);
    rows[0].last_run_at = Some(900);
    rows[0].status_since = Some(800);
    let mut state = LiveState::from_rows(&rows, &[]);
    state.apply(
        &EventKind::RunQueued {
            run_id: 10,
            check_id: Some(3),
            check: Some("db".to_string()),
        },
        1_000,
    );
    let snapshot = state.snapshot(42);
    let all = parse(&encode_snapshot(&snapshot, &Filter::default(), None));
    let names: Vec<&str> = all["checks"]
        .as_array()
        .map(|checks| checks.iter().filter_map(|c| c["name"].as_str()).collect())
        .unwrap_or_default();
    assert_eq!(names, ["api", "db", "web"]);
    assert_eq!(all["type"], "snapshot");
    assert_eq!(all["seq"], 42);
    assert!(all.get("reason").is_none());
    assert_eq!(
        all["checks"][2],
        json!({"name": "web", "kind": "noop", "status": "crit", "summary": "down",
               "last_run_id": 9, "last_run_at": 900, "status_since": 800})
    );
    assert_eq!(
        all["running"],
        json!([{"run_id": 10, "check_id": 3, "check": "db", "state": "queued", "attempt": null,
                "worker": null, "queued_at": 1_000, "started_at": null}])
    );
    let web_only =
        Filter::parse(Some("web"), None).unwrap_or_else(|error| panic!("{}", error.message));
    let filtered = parse(&encode_snapshot(
        &snapshot,
        &web_only,
        Some("since is too old"),
    ));
    assert_eq!(filtered["reason"], "since is too old");
    assert_eq!(filtered["checks"].as_array().map(Vec::len), Some(1));
    assert_eq!(filtered["running"], json!([]));
}

/// A cancelled run leaves the runs in flight (it never gets a `RunFinished`).
#[test]
fn a_cancelled_run_leaves_the_runs_in_flight() {
    let rows = vec![check_row(1, "web")];
    let mut state = LiveState::from_rows(&rows, &[]);
    for run_id in [70, 71] {
        state.apply(
            &EventKind::RunQueued {
                run_id,
                check_id: Some(1),
                check: Some("web".to_string()),
            },
            1_000,
        );
    }
    assert_eq!(state.snapshot(1).running.len(), 2);
    let name = state.apply(
        &EventKind::RunCancelled {
            run_id: 70,
            check_id: Some(1),
            was: "queued".to_string(),
        },
        1_100,
    );
    assert_eq!(name.as_deref(), Some("web"));
    let left: Vec<i64> = state
        .snapshot(2)
        .running
        .iter()
        .map(|run| run.run_id)
        .collect();
    assert_eq!(left, [71]);
}
