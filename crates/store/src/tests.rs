//! Store unit tests: the queue's property test on a fake clock, fencing, dedup, open-time
//! refusals, check sync and sample ranges. All against real SQLite files.

use std::collections::{BTreeMap, BTreeSet};

use proptest::prelude::*;
use rusqlite::Connection;

use crate::queue::{self, Completion, FailOutcome, NewRun, RunState};
use crate::{Store, StoreError, StoreOptions, checks, samples};

fn memory_db() -> Connection {
    let mut conn = Connection::open_in_memory().unwrap_or_else(|e| panic!("{e}"));
    crate::migrations::migrate(&mut conn).unwrap_or_else(|e| panic!("{e}"));
    conn
}

/// Configures one `noop` check named `a`; its id.
fn one_noop_check(conn: &Connection) -> i64 {
    let text = "[[check]]\nname = \"a\"\nkind = \"noop\"\nevery = \"1s\"\n";
    let config = warden_core::config::parse_config("t.toml", text, &|_| None)
        .unwrap_or_else(|e| panic!("{e}"));
    checks::sync(conn, &config.checks, 1).unwrap_or_else(|e| panic!("{e}"));
    checks::get_by_name(conn, "a")
        .unwrap_or_else(|e| panic!("{e}"))
        .unwrap_or_else(|| panic!("check a"))
        .id
}

fn new_run(priority: i64, max_attempts: u32, dedup_key: Option<String>) -> NewRun {
    NewRun {
        check_id: None,
        kind: "job".to_string(),
        payload: "{}".to_string(),
        priority,
        run_at: 0,
        max_attempts,
        dedup_key,
        concurrency_key: None,
    }
}

#[test]
fn lease_complete_and_stale_fence() {
    let conn = memory_db();
    let first = queue::enqueue(&conn, &new_run(0, 3, None), 0).unwrap_or_else(|e| panic!("{e}"));
    let leases = queue::lease(&conn, "w1", 10, 1_000, 0).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(leases.len(), 1);
    assert_eq!(leases[0].run_id, first.run_id);
    assert_eq!(leases[0].attempt, 1);
    // Not due again while leased.
    assert!(
        queue::lease(&conn, "w2", 10, 1_000, 500)
            .unwrap_or_default()
            .is_empty()
    );
    // Expired: w2 takes it over with a new fence; w1's late completion is refused.
    let taken = queue::lease(&conn, "w2", 10, 1_000, 1_000).unwrap_or_default();
    assert_eq!(taken.len(), 1);
    assert!(taken[0].fence > leases[0].fence);
    let late = queue::complete(
        &conn,
        first.run_id,
        leases[0].fence,
        &Completion::default(),
        1_100,
    );
    assert!(
        matches!(late, Err(StoreError::StaleLease { .. })),
        "{late:?}"
    );
    let late_beat = queue::heartbeat(&conn, first.run_id, leases[0].fence, 5_000);
    assert!(
        matches!(late_beat, Err(StoreError::StaleLease { .. })),
        "{late_beat:?}"
    );
    queue::complete(
        &conn,
        first.run_id,
        taken[0].fence,
        &Completion {
            status: Some("ok".into()),
            ..Completion::default()
        },
        1_200,
    )
    .unwrap_or_else(|e| panic!("{e}"));
    // Completing twice is refused too.
    assert!(
        queue::complete(
            &conn,
            first.run_id,
            taken[0].fence,
            &Completion::default(),
            1_300
        )
        .is_err()
    );
    let row = queue::get(&conn, first.run_id)
        .unwrap_or_default()
        .unwrap_or_else(|| panic!("run gone"));
    assert_eq!(row.state, RunState::Completed);
    assert_eq!(row.attempts, 2);
    assert_eq!(row.status.as_deref(), Some("ok"));
}

#[test]
fn dedup_key_enqueues_once() {
    let conn = memory_db();
    let a = queue::enqueue(&conn, &new_run(0, 1, Some("check:7:1000".into())), 0)
        .unwrap_or_else(|e| panic!("{e}"));
    let b = queue::enqueue(&conn, &new_run(0, 1, Some("check:7:1000".into())), 0)
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(!a.deduplicated);
    assert!(b.deduplicated);
    assert_eq!(a.run_id, b.run_id);
    let count: i64 = conn
        .query_row("SELECT count(*) FROM runs", [], |r| r.get(0))
        .unwrap_or(-1);
    assert_eq!(count, 1);
}

#[test]
fn priority_then_due_time_order() {
    let conn = memory_db();
    let mut low = new_run(0, 1, None);
    low.run_at = 10;
    let low = queue::enqueue(&conn, &low, 0).unwrap_or_else(|e| panic!("{e}"));
    let high = queue::enqueue(&conn, &new_run(5, 1, None), 0).unwrap_or_else(|e| panic!("{e}"));
    let mut future = new_run(9, 1, None);
    future.run_at = 1_000;
    queue::enqueue(&conn, &future, 0).unwrap_or_else(|e| panic!("{e}"));
    let leased: Vec<i64> = queue::lease(&conn, "w", 10, 100, 20)
        .unwrap_or_default()
        .iter()
        .map(|l| l.run_id)
        .collect();
    assert_eq!(leased, vec![high.run_id, low.run_id]);
}

#[test]
fn fail_retries_with_backoff_then_dead_letters() {
    let conn = memory_db();
    let run = queue::enqueue(&conn, &new_run(0, 2, None), 0).unwrap_or_else(|e| panic!("{e}"));
    let lease = queue::lease(&conn, "w", 1, 1_000, 0)
        .unwrap_or_default()
        .remove(0);
    let outcome = queue::fail(&conn, run.run_id, lease.fence, "boom", 10, Some(500))
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(outcome, FailOutcome::Retrying { run_at: 510 });
    assert!(
        queue::lease(&conn, "w", 1, 1_000, 509)
            .unwrap_or_default()
            .is_empty(),
        "leased before its backoff"
    );
    let lease = queue::lease(&conn, "w", 1, 1_000, 510)
        .unwrap_or_default()
        .remove(0);
    assert_eq!(lease.attempt, 2);
    let outcome = queue::fail(&conn, run.run_id, lease.fence, "boom again", 600, Some(500))
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(outcome, FailOutcome::Dead);
    let row = queue::get(&conn, run.run_id)
        .unwrap_or_default()
        .unwrap_or_else(|| panic!("run gone"));
    assert_eq!(row.state, RunState::Dead);
    assert_eq!(row.last_error.as_deref(), Some("boom again"));
}

#[test]
fn expired_lease_on_last_attempt_is_dead_lettered() {
    let conn = memory_db();
    let run = queue::enqueue(&conn, &new_run(0, 1, None), 0).unwrap_or_else(|e| panic!("{e}"));
    queue::lease(&conn, "w", 1, 100, 0).unwrap_or_default();
    assert_eq!(queue::reclaim_expired(&conn, 100).unwrap_or(0), 1);
    let row = queue::get(&conn, run.run_id)
        .unwrap_or_default()
        .unwrap_or_else(|| panic!("run gone"));
    assert_eq!(row.state, RunState::Dead);
    assert!(
        row.last_error
            .unwrap_or_default()
            .contains("lease expired (held by w)")
    );
}

#[test]
fn cancel_stops_a_leased_run() {
    let conn = memory_db();
    let run = queue::enqueue(&conn, &new_run(0, 1, None), 0).unwrap_or_else(|e| panic!("{e}"));
    let lease = queue::lease(&conn, "w", 1, 1_000, 0)
        .unwrap_or_default()
        .remove(0);
    assert_eq!(
        queue::cancel(&conn, run.run_id, 5).ok(),
        Some(RunState::Leased)
    );
    let beat = queue::heartbeat(&conn, run.run_id, lease.fence, 2_000);
    assert!(
        matches!(beat, Err(StoreError::WrongState { .. })),
        "{beat:?}"
    );
    assert!(queue::complete(&conn, run.run_id, lease.fence, &Completion::default(), 6).is_err());
    assert!(matches!(
        queue::cancel(&conn, run.run_id, 7),
        Err(StoreError::WrongState { .. })
    ));
    assert!(matches!(
        queue::cancel(&conn, 999, 7),
        Err(StoreError::RunNotFound(999))
    ));
}

#[test]
fn backoff_is_exponential_jittered_and_capped() {
    for attempt in 1..=10u32 {
        for random in [0u64, 1, 7, u64::MAX / 3, u64::MAX] {
            let delay = queue::backoff_delay(attempt, 1_000, 60_000, random);
            let ceiling = (1_000u64 << (attempt - 1)).min(60_000);
            assert!(
                delay >= ceiling / 2 && delay <= ceiling,
                "attempt {attempt}: {delay} not in [{}, {ceiling}]",
                ceiling / 2
            );
        }
    }
}

#[derive(Debug, Clone)]
enum Op {
    Enqueue {
        priority: i64,
        max_attempts: u32,
        dedup: Option<u8>,
    },
    Lease {
        worker: usize,
        limit: usize,
    },
    Heartbeat {
        worker: usize,
        pick: usize,
    },
    Complete {
        worker: usize,
        pick: usize,
    },
    Fail {
        worker: usize,
        pick: usize,
        retry: bool,
    },
    Crash {
        worker: usize,
    },
    Cancel {
        pick: usize,
    },
    StaleComplete {
        pick: usize,
    },
    Advance {
        ms: i64,
    },
}

fn op_strategy() -> impl Strategy<Value = Op> {
    prop_oneof![
        3 => (0i64..3, 1u32..4, proptest::option::of(0u8..4)).prop_map(|(priority, max_attempts, dedup)| Op::Enqueue { priority, max_attempts, dedup }),
        3 => (0usize..3, 1usize..4).prop_map(|(worker, limit)| Op::Lease { worker, limit }),
        1 => (0usize..3, 0usize..8).prop_map(|(worker, pick)| Op::Heartbeat { worker, pick }),
        3 => (0usize..3, 0usize..8).prop_map(|(worker, pick)| Op::Complete { worker, pick }),
        2 => (0usize..3, 0usize..8, any::<bool>()).prop_map(|(worker, pick, retry)| Op::Fail { worker, pick, retry }),
        1 => (0usize..3).prop_map(|worker| Op::Crash { worker }),
        1 => (0usize..16).prop_map(|pick| Op::Cancel { pick }),
        1 => (0usize..32).prop_map(|pick| Op::StaleComplete { pick }),
        2 => (0i64..1_500).prop_map(|ms| Op::Advance { ms }),
    ]
}

const LEASE_MS: i64 = 1_000;

#[derive(Debug, Clone, Copy)]
struct Held {
    run_id: i64,
    fence: i64,
    until: i64,
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    /// Interleaves every queue operation, worker crashes and clock moves, and checks that a run
    /// is never held by two live workers, one attempt never gets two results, stale results are
    /// refused, attempts never exceed the maximum, and every run ends completed, cancelled or dead.
    #[test]
    fn queue_state_machine(ops in proptest::collection::vec(op_strategy(), 1..120)) {
        let conn = memory_db();
        let mut now: i64 = 0;
        let mut workers: Vec<Vec<Held>> = vec![Vec::new(); 3];
        let mut issued: Vec<(i64, i64)> = Vec::new();
        let mut latest_fence: BTreeMap<i64, i64> = BTreeMap::new();
        let mut runs: BTreeSet<i64> = BTreeSet::new();
        let mut completed: BTreeSet<i64> = BTreeSet::new();

        for op in ops {
            match op {
                Op::Enqueue { priority, max_attempts, dedup } => {
                    let key = dedup.map(|k| format!("slot-{k}"));
                    let enqueued = queue::enqueue(&conn, &new_run(priority, max_attempts, key), now).map_err(|e| TestCaseError::fail(e.to_string()))?;
                    runs.insert(enqueued.run_id);
                }
                Op::Lease { worker, limit } => {
                    let leases = queue::lease(&conn, &format!("w{worker}"), limit, LEASE_MS, now).map_err(|e| TestCaseError::fail(e.to_string()))?;
                    for lease in leases {
                        for (other, held) in workers.iter().enumerate() {
                            for h in held.iter().filter(|h| h.run_id == lease.run_id) {
                                prop_assert!(h.until <= now, "run {} leased to w{worker} while w{other} holds it until {} (now {now})", lease.run_id, h.until);
                            }
                        }
                        prop_assert!(lease.fence > latest_fence.get(&lease.run_id).copied().unwrap_or(0));
                        prop_assert!(!completed.contains(&lease.run_id));
                        latest_fence.insert(lease.run_id, lease.fence);
                        issued.push((lease.run_id, lease.fence));
                        workers[worker].push(Held { run_id: lease.run_id, fence: lease.fence, until: lease.lease_until });
                    }
                }
                Op::Heartbeat { worker, pick } => {
                    if workers[worker].is_empty() { continue; }
                    let index = pick % workers[worker].len();
                    let held = workers[worker][index];
                    let until = now + LEASE_MS;
                    if queue::heartbeat(&conn, held.run_id, held.fence, until).is_ok() {
                        prop_assert_eq!(latest_fence.get(&held.run_id).copied(), Some(held.fence));
                        workers[worker][index].until = until;
                    } else {
                        workers[worker].remove(index);
                    }
                }
                Op::Complete { worker, pick } => {
                    if workers[worker].is_empty() { continue; }
                    let index = pick % workers[worker].len();
                    let held = workers[worker].remove(index);
                    if queue::complete(&conn, held.run_id, held.fence, &Completion::default(), now).is_ok() {
                        prop_assert_eq!(latest_fence.get(&held.run_id).copied(), Some(held.fence), "a stale fence completed run {}", held.run_id);
                        prop_assert!(completed.insert(held.run_id), "run {} completed twice", held.run_id);
                    }
                }
                Op::Fail { worker, pick, retry } => {
                    if workers[worker].is_empty() { continue; }
                    let index = pick % workers[worker].len();
                    let held = workers[worker].remove(index);
                    let delay = retry.then(|| queue::backoff_delay(1, 100, 1_000, held.fence as u64));
                    if queue::fail(&conn, held.run_id, held.fence, "failed", now, delay).is_ok() {
                        prop_assert_eq!(latest_fence.get(&held.run_id).copied(), Some(held.fence));
                    }
                }
                Op::Crash { worker } => workers[worker].clear(),
                Op::Cancel { pick } => {
                    if runs.is_empty() { continue; }
                    let run_id = *runs.iter().nth(pick % runs.len()).unwrap_or(&0);
                    let _ = queue::cancel(&conn, run_id, now);
                }
                Op::StaleComplete { pick } => {
                    if issued.is_empty() { continue; }
                    let (run_id, fence) = issued[pick % issued.len()];
                    if latest_fence.get(&run_id).copied() != Some(fence) {
                        let result = queue::complete(&conn, run_id, fence, &Completion::default(), now);
                        prop_assert!(result.is_err(), "stale fence {fence} for run {run_id} was accepted");
                    }
                }
                Op::Advance { ms } => now += ms,
            }
            let over: i64 = conn.query_row("SELECT count(*) FROM runs WHERE attempts > max_attempts", [], |r| r.get(0)).map_err(|e| TestCaseError::fail(e.to_string()))?;
            prop_assert_eq!(over, 0, "attempts exceeded the maximum");
        }

        // Drain: every worker gone, time moves on, a fresh worker finishes what is left.
        for _ in 0..20 {
            now += 10 * LEASE_MS;
            let leases = queue::lease(&conn, "drain", 1_000, LEASE_MS, now).map_err(|e| TestCaseError::fail(e.to_string()))?;
            for lease in leases {
                queue::complete(&conn, lease.run_id, lease.fence, &Completion::default(), now).map_err(|e| TestCaseError::fail(e.to_string()))?;
            }
        }
        let mut statement = conn.prepare("SELECT state, count(*) FROM runs GROUP BY state").map_err(|e| TestCaseError::fail(e.to_string()))?;
        let states: Vec<(String, i64)> = statement.query_map([], |r| Ok((r.get(0)?, r.get(1)?))).map_err(|e| TestCaseError::fail(e.to_string()))?
            .collect::<Result<_, _>>().map_err(|e| TestCaseError::fail(e.to_string()))?;
        for (state, count) in states {
            prop_assert!(matches!(state.as_str(), "completed" | "cancelled" | "dead"), "{count} runs left {state}");
        }
    }
}

fn temp_dir() -> tempfile::TempDir {
    tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"))
}

#[test]
fn refuses_a_file_that_is_not_sqlite_and_leaves_it_untouched() {
    let dir = temp_dir();
    let path = dir.path().join(crate::DATABASE_FILE);
    let garbage = b"this is not a database, it is a shopping list\n".repeat(200);
    std::fs::write(&path, &garbage).unwrap_or_else(|e| panic!("{e}"));
    let error = Store::open(dir.path(), StoreOptions::default())
        .err()
        .map(|e| e.to_string());
    assert_eq!(
        error,
        Some(format!(
            "{} is not a warden database (not SQLite, or corrupt); it was left untouched",
            path.display()
        ))
    );
    assert_eq!(std::fs::read(&path).unwrap_or_default(), garbage);
}

#[test]
fn refuses_a_database_from_a_newer_schema() {
    let dir = temp_dir();
    let path = dir.path().join(crate::DATABASE_FILE);
    {
        let conn = Connection::open(&path).unwrap_or_else(|e| panic!("{e}"));
        conn.execute_batch("CREATE TABLE future (x); PRAGMA user_version = 99;")
            .unwrap_or_else(|e| panic!("{e}"));
    }
    let before = std::fs::read(&path).unwrap_or_default();
    let error = Store::open(dir.path(), StoreOptions::default())
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
    assert!(
        error.contains(&format!(
            "schema 99, this build knows {}",
            crate::SCHEMA_VERSION
        )),
        "{error}"
    );
    let conn = Connection::open(&path).unwrap_or_else(|e| panic!("{e}"));
    let version: i64 = conn
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .unwrap_or(0);
    assert_eq!(version, 99);
    let tables: i64 = conn
        .query_row(
            "SELECT count(*) FROM sqlite_master WHERE name = 'runs'",
            [],
            |r| r.get(0),
        )
        .unwrap_or(-1);
    assert_eq!(tables, 0, "migrations ran on a newer database");
    drop(conn);
    assert_eq!(std::fs::read(&path).unwrap_or_default().len(), before.len());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writer_batches_concurrent_writes_and_survives_a_failing_op() {
    let dir = temp_dir();
    let store = Store::open(dir.path(), StoreOptions::default()).unwrap_or_else(|e| panic!("{e}"));
    let mut tasks = Vec::new();
    for i in 0..200 {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            if i == 100 {
                // Writes something, then fails: its write must be rolled back alone.
                return store
                    .write(|conn| {
                        queue::enqueue(conn, &new_run(0, 1, Some("poison".into())), 0)?;
                        Err::<i64, _>(StoreError::Invalid("refused".into()))
                    })
                    .await
                    .map(|_| 0);
            }
            store
                .write(move |conn| Ok(queue::enqueue(conn, &new_run(0, 1, None), i)?.run_id))
                .await
        }));
    }
    let mut ok = 0;
    for task in tasks {
        if let Ok(Ok(_)) = task.await {
            ok += 1;
        }
    }
    assert_eq!(ok, 199);
    let (runs, poison): (i64, i64) = store
        .read(|conn| {
            Ok((
                conn.query_row("SELECT count(*) FROM runs", [], |r| r.get(0))?,
                conn.query_row(
                    "SELECT count(*) FROM runs WHERE dedup_key = 'poison'",
                    [],
                    |r| r.get(0),
                )?,
            ))
        })
        .await
        .unwrap_or((-1, -1));
    assert_eq!((runs, poison), (199, 0));
    let stats = store.writer_stats();
    assert_eq!(stats.operations, 200);
    assert!(stats.transactions <= 200);
    // A failing write alone in its transaction (no savepoint) is rolled back whole too.
    let alone = store
        .write(|conn| {
            queue::enqueue(conn, &new_run(0, 1, Some("alone".into())), 0)?;
            Err::<i64, _>(StoreError::Invalid("refused".into()))
        })
        .await;
    assert!(matches!(alone, Err(StoreError::Invalid(_))), "{alone:?}");
    let after = store
        .write(|conn| Ok(queue::enqueue(conn, &new_run(0, 1, Some("after".into())), 0)?.run_id))
        .await;
    assert!(after.is_ok(), "{after:?}");
    let keys: Vec<String> = store
        .read(|conn| {
            let mut statement = conn.prepare(
                "SELECT dedup_key FROM runs WHERE dedup_key IN ('alone', 'after') ORDER BY id",
            )?;
            let keys = statement
                .query_map([], |r| r.get(0))?
                .collect::<Result<Vec<String>, _>>()?;
            Ok(keys)
        })
        .await
        .unwrap_or_default();
    assert_eq!(keys, vec!["after".to_string()]);
    store.close().await;
    assert!(matches!(
        store.write(|_| Ok(())).await,
        Err(StoreError::Closed)
    ));
}

#[test]
fn check_sync_rewrites_only_what_changed() {
    let conn = memory_db();
    let text = "[[check]]\nname = \"a\"\nkind = \"noop\"\nevery = \"1s\"\n[[check]]\nname = \"b\"\nkind = \"noop\"\nevery = \"1s\"\n";
    let config = warden_core::config::parse_config("t.toml", text, &|_| None)
        .unwrap_or_else(|e| panic!("{e}"));
    let first = checks::sync(&conn, &config.checks, 1).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(first.added, vec!["a", "b"]);
    let again = checks::sync(&conn, &config.checks, 2).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        (again.added.len(), again.changed.len(), again.unchanged),
        (0, 0, 2)
    );
    let updated: i64 = conn
        .query_row("SELECT max(updated_at) FROM checks", [], |r| r.get(0))
        .unwrap_or(-1);
    assert_eq!(updated, 1, "an unchanged config rewrote rows");
    let text2 = "[[check]]\nname = \"a\"\nkind = \"noop\"\nevery = \"2s\"\n";
    let config2 = warden_core::config::parse_config("t.toml", text2, &|_| None)
        .unwrap_or_else(|e| panic!("{e}"));
    let third = checks::sync(&conn, &config2.checks, 3).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        (third.changed, third.removed),
        (vec!["a".to_string()], vec!["b".to_string()])
    );
    let names: Vec<String> = checks::list(&conn)
        .unwrap_or_default()
        .into_iter()
        .map(|c| c.name)
        .collect();
    assert_eq!(names, vec!["a"]);
}

#[test]
fn a_run_without_its_own_payload_runs_its_checks_definition() {
    let conn = memory_db();
    let text = "[[check]]\nname = \"a\"\nkind = \"noop\"\nevery = \"1s\"\n";
    let config = warden_core::config::parse_config("t.toml", text, &|_| None)
        .unwrap_or_else(|e| panic!("{e}"));
    checks::sync(&conn, &config.checks, 1).unwrap_or_else(|e| panic!("{e}"));
    let check = checks::get_by_name(&conn, "a")
        .unwrap_or_else(|e| panic!("{e}"))
        .unwrap_or_else(|| panic!("check a"));
    let run = NewRun {
        check_id: Some(check.id),
        kind: "check".to_string(),
        payload: queue::CHECK_SPEC_PAYLOAD.to_string(),
        ..new_run(0, 1, None)
    };
    let enqueued = queue::enqueue(&conn, &run, 1).unwrap_or_else(|e| panic!("{e}"));
    // Nothing of the definition is stored with the run...
    let stored: String = conn
        .query_row(
            "SELECT payload FROM runs WHERE id = ?1",
            [enqueued.run_id],
            |r| r.get(0),
        )
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(stored, "");
    // ...yet reading and leasing it show the check's definition.
    let row = queue::get(&conn, enqueued.run_id)
        .unwrap_or_else(|e| panic!("{e}"))
        .unwrap_or_else(|| panic!("run"));
    assert_eq!(row.payload, check.spec);
    let leases = queue::lease(&conn, "w", 10, 1_000, 2).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(leases.len(), 1);
    assert_eq!(leases[0].payload, check.spec);
    assert!(
        leases[0].payload.contains("\"noop\""),
        "{}",
        leases[0].payload
    );
    // A run of a check that is gone shows an empty object.
    conn.execute("DELETE FROM checks", [])
        .unwrap_or_else(|e| panic!("{e}"));
    let row = queue::get(&conn, enqueued.run_id)
        .unwrap_or_else(|e| panic!("{e}"))
        .unwrap_or_else(|| panic!("run"));
    assert_eq!(row.payload, "{}");
}

#[test]
fn sample_ranges_cross_buckets_in_order() {
    let conn = memory_db();
    let cpu = samples::resolve_series(&conn, "host.cpu", "{}").unwrap_or_else(|e| panic!("{e}"));
    let mem = samples::resolve_series(&conn, "host.mem", "{}").unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        samples::resolve_series(&conn, "host.cpu", "{}").ok(),
        Some(cpu)
    );
    let mut batch = Vec::new();
    for i in 0..300i64 {
        batch.push(samples::Sample {
            series_id: cpu,
            ts: i * 1_000,
            value: i as f64,
        });
        batch.push(samples::Sample {
            series_id: mem,
            ts: i * 1_000,
            value: -(i as f64),
        });
    }
    batch.push(samples::Sample {
        series_id: cpu,
        ts: 5,
        value: f64::NAN,
    });
    assert_eq!(samples::insert(&conn, &batch).ok(), Some(600));
    let got = samples::range(&conn, cpu, 59_000, 121_000).unwrap_or_default();
    let expected: Vec<(i64, f64)> = (59..=121).map(|i| (i * 1_000, i as f64)).collect();
    assert_eq!(got, expected);
    assert!(
        samples::range(&conn, cpu, 10, 5)
            .unwrap_or_default()
            .is_empty()
    );
}

#[test]
fn a_concurrency_key_leases_one_run_at_a_time_oldest_first() {
    let conn = memory_db();
    let mut serial = new_run(0, 1, None);
    serial.concurrency_key = Some("check:1".into());
    let first = queue::enqueue(&conn, &serial, 0).unwrap_or_else(|e| panic!("{e}"));
    let second = queue::enqueue(&conn, &serial, 0).unwrap_or_else(|e| panic!("{e}"));
    let free = queue::enqueue(&conn, &new_run(0, 1, None), 0).unwrap_or_else(|e| panic!("{e}"));
    let leased: Vec<i64> = queue::lease(&conn, "w", 10, 1_000, 0)
        .unwrap_or_default()
        .iter()
        .map(|l| l.run_id)
        .collect();
    assert_eq!(
        leased,
        vec![first.run_id, free.run_id],
        "both serial runs were leased at once"
    );
    assert!(
        queue::lease(&conn, "w", 10, 1_000, 1)
            .unwrap_or_default()
            .is_empty(),
        "second leased while the first runs"
    );
    let fence = queue::get(&conn, first.run_id)
        .ok()
        .flatten()
        .map(|r| r.fence)
        .unwrap_or(0);
    queue::complete(&conn, first.run_id, fence, &Completion::default(), 2)
        .unwrap_or_else(|e| panic!("{e}"));
    let next: Vec<i64> = queue::lease(&conn, "w", 10, 1_000, 3)
        .unwrap_or_default()
        .iter()
        .map(|l| l.run_id)
        .collect();
    assert_eq!(next, vec![second.run_id]);
    assert_eq!(
        queue::live_runs_of_check(&conn, 1).ok(),
        Some(0),
        "check_id is unset on these runs"
    );
}

#[test]
fn a_worker_leases_only_the_kinds_it_runs() {
    let conn = memory_db();
    let job = queue::enqueue(&conn, &new_run(0, 1, None), 0).unwrap_or_else(|e| panic!("{e}"));
    let mut check = new_run(0, 1, None);
    check.kind = "check".into();
    let check = queue::enqueue(&conn, &check, 0).unwrap_or_else(|e| panic!("{e}"));
    let only_checks: Vec<i64> = queue::lease_kinds(&conn, "local", &["check"], 10, 1_000, 0)
        .unwrap_or_default()
        .iter()
        .map(|l| l.run_id)
        .collect();
    assert_eq!(only_checks, vec![check.run_id]);
    let rest: Vec<i64> = queue::lease_kinds(&conn, "any", &[], 10, 1_000, 0)
        .unwrap_or_default()
        .iter()
        .map(|l| l.run_id)
        .collect();
    assert_eq!(rest, vec![job.run_id]);
}

/// Range queries give the same points from rollups as from raw samples, for every aggregate,
/// across minutes rolled and not rolled yet.
#[test]
fn series_queries_agree_between_rollups_and_raw_samples() {
    use crate::samples::{Aggregate, Sample};
    let conn = memory_db();
    let id =
        samples::resolve_series(&conn, "web.response_time", "{}").unwrap_or_else(|e| panic!("{e}"));
    // 10 minutes, a sample every 7 s, values that make every aggregate differ.
    let base = 1_700_000_040_000i64; // a minute boundary
    let points: Vec<Sample> = (0..86)
        .map(|i| Sample {
            series_id: id,
            ts: base + i * 7_000,
            value: ((i * 37) % 11) as f64,
        })
        .collect();
    samples::insert(&conn, &points).unwrap_or_else(|e| panic!("{e}"));
    let from = base;
    let to = base + 10 * 60_000 - 1;
    let step = 120_000;
    // Expected, computed here from the raw points.
    let expect = |aggregate: Aggregate| -> Vec<(i64, f64)> {
        let mut slots: BTreeMap<i64, Vec<f64>> = BTreeMap::new();
        for p in &points {
            slots
                .entry(from + (p.ts - from) / step * step)
                .or_default()
                .push(p.value);
        }
        slots
            .into_iter()
            .map(|(slot, values)| {
                let value = match aggregate {
                    Aggregate::Avg => values.iter().sum::<f64>() / values.len() as f64,
                    Aggregate::Min => values.iter().copied().fold(f64::INFINITY, f64::min),
                    Aggregate::Max => values.iter().copied().fold(f64::NEG_INFINITY, f64::max),
                    Aggregate::Last => values.last().copied().unwrap_or(f64::NAN),
                };
                (slot, value)
            })
            .collect()
    };
    let all = [
        Aggregate::Avg,
        Aggregate::Min,
        Aggregate::Max,
        Aggregate::Last,
    ];
    for aggregate in all {
        let raw =
            samples::query(&conn, id, from, to, step, aggregate).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(raw, expect(aggregate), "raw {aggregate:?}");
    }
    // Roll the first 6 minutes up, then ask again: same answers.
    let rolled = samples::roll_up(&conn, base / 60_000 + 5, 100).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(rolled, 6);
    let rows: i64 = conn
        .query_row("SELECT count(*) FROM samples_1m", [], |r| r.get(0))
        .unwrap_or(0);
    assert_eq!(rows, 6);
    for aggregate in all {
        let mixed =
            samples::query(&conn, id, from, to, step, aggregate).unwrap_or_else(|e| panic!("{e}"));
        let expected = expect(aggregate);
        assert_eq!(mixed.len(), expected.len());
        for ((ts, value), (ets, evalue)) in mixed.iter().zip(&expected) {
            assert_eq!(ts, ets);
            assert!(
                (value - evalue).abs() < 1e-9,
                "{aggregate:?} at {ts}: {value} vs {evalue}"
            );
        }
    }
    // Nothing more to roll until time moves on; a second call rolls the rest.
    assert_eq!(
        samples::roll_up(&conn, base / 60_000 + 5, 100).unwrap_or(-1),
        0
    );
    assert_eq!(
        samples::roll_up(&conn, base / 60_000 + 9, 2).unwrap_or(-1),
        2
    );
    assert_eq!(
        samples::roll_up(&conn, base / 60_000 + 9, 100).unwrap_or(-1),
        2
    );
}

#[test]
fn tokens_list_and_revoke() {
    use crate::tokens;
    let conn = memory_db();
    let a =
        tokens::insert(&conn, "a", "viewer", &[1; 32], 10, None).unwrap_or_else(|e| panic!("{e}"));
    let b = tokens::insert(&conn, "b", "admin", &[2; 32], 20, Some(100))
        .unwrap_or_else(|e| panic!("{e}"));
    let listed: Vec<i64> = tokens::list(&conn, None, 10)
        .unwrap_or_else(|e| panic!("{e}"))
        .iter()
        .map(|t| t.id)
        .collect();
    assert_eq!(listed, [b, a]);
    assert!(
        tokens::find_live(&conn, &[1; 32], 50)
            .unwrap_or(None)
            .is_some()
    );
    let revoked = tokens::revoke(&conn, a, 60)
        .unwrap_or(None)
        .map(|t| t.revoked_at);
    assert_eq!(revoked, Some(Some(60)));
    // Revoking again keeps the first time; a revoked or expired token no longer authenticates.
    let again = tokens::revoke(&conn, a, 70)
        .unwrap_or(None)
        .map(|t| t.revoked_at);
    assert_eq!(again, Some(Some(60)));
    assert!(
        tokens::find_live(&conn, &[1; 32], 80)
            .unwrap_or(None)
            .is_none()
    );
    assert!(
        tokens::find_live(&conn, &[2; 32], 100)
            .unwrap_or(None)
            .is_none()
    );
    assert!(tokens::revoke(&conn, 999, 1).unwrap_or(None).is_none());
}

#[test]
fn incidents_deliveries_and_silences() {
    use crate::alerting::{self, AckRefused, AttemptOutcome, NewIncident};
    let conn = crate::open_in_memory().unwrap_or_else(|e| panic!("{e}"));
    let new = NewIncident {
        rule: "web-down".to_string(),
        subject: "web-1".to_string(),
        check_id: Some(1),
        check_name: Some("web-1".to_string()),
        severity: "critical".to_string(),
        labels: "{}".to_string(),
        status: Some("crit".to_string()),
        summary: "HTTP 500".to_string(),
        value: None,
        message: "web-1 is crit".to_string(),
        held: false,
    };
    let id = alerting::open_incident(&conn, &new, 1_000)
        .unwrap_or_else(|e| panic!("{e}"))
        .unwrap_or_else(|id| panic!("already open: {id}"));
    // One open incident per rule and subject.
    assert_eq!(
        alerting::open_incident(&conn, &new, 1_001).ok(),
        Some(Err(id))
    );
    // The same notification is never queued twice.
    let first = alerting::queue_delivery(&conn, Some(id), "ops", "opened", true, 1_000)
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(first.is_some());
    let again = alerting::queue_delivery(&conn, Some(id), "ops", "opened", false, 1_000)
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(again, None);
    // Held until released.
    assert!(
        alerting::due_deliveries(&conn, 5_000, 10)
            .unwrap_or_default()
            .is_empty()
    );
    assert_eq!(alerting::release_held(&conn, id, 2_000).ok(), Some(1));
    let due = alerting::due_deliveries(&conn, 5_000, 10).unwrap_or_default();
    assert_eq!(due.len(), 1);
    let retry = AttemptOutcome::Retry {
        error: "HTTP 503".to_string(),
        next_at: 2_500,
    };
    alerting::record_attempt(&conn, &due[0], 1, &retry, 2_000).unwrap_or_else(|e| panic!("{e}"));
    assert!(
        alerting::due_deliveries(&conn, 2_400, 10)
            .unwrap_or_default()
            .is_empty()
    );
    let due = alerting::due_deliveries(&conn, 2_500, 10).unwrap_or_default();
    alerting::record_attempt(&conn, &due[0], 2, &AttemptOutcome::Sent, 2_600)
        .unwrap_or_else(|e| panic!("{e}"));
    let incident = alerting::get_incident(&conn, id).ok().flatten();
    assert_eq!(
        incident.as_ref().map(|i| i.state.as_str()),
        Some("notified")
    );
    assert_eq!(incident.and_then(|i| i.notified_at), Some(2_600));
    let acked = alerting::acknowledge(&conn, id, "alice", "looking", 3_000)
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(acked.map(|i| i.state), Ok("acknowledged".to_string()));
    assert_eq!(
        alerting::resolve_incident(&conn, id, "ok", "ok again", 4_000).ok(),
        Some(true)
    );
    assert_eq!(
        alerting::resolve_incident(&conn, id, "ok", "ok again", 4_001).ok(),
        Some(false)
    );
    assert_eq!(
        alerting::acknowledge(&conn, id, "bob", "", 5_000)
            .ok()
            .map(|r| r.err()),
        Some(Some(AckRefused::Resolved))
    );
    assert_eq!(
        alerting::acknowledge(&conn, 99, "bob", "", 5_000)
            .ok()
            .map(|r| r.err()),
        Some(Some(AckRefused::NotFound))
    );
    let timeline: Vec<String> = alerting::incident_events(&conn, id)
        .unwrap_or_default()
        .into_iter()
        .map(|event| format!("{} {} {}", event.at, event.kind, event.detail))
        .collect();
    assert_eq!(
        timeline,
        [
            "1000 opened HTTP 500",
            "2000 attempt_failed opened attempt 1 failed: HTTP 503",
            "2600 delivered opened (attempt 2)",
            "3000 acknowledged by alice: looking",
            "4000 resolved ok: ok again",
        ]
    );
    // A new incident may open once the old one is resolved.
    assert!(matches!(
        alerting::open_incident(&conn, &new, 6_000),
        Ok(Ok(_))
    ));
    let silence = alerting::insert_silence(&conn, "web*", "deploy", "admin", 0, 10_000, 0)
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        alerting::list_silences(&conn, false, 5_000)
            .unwrap_or_default()
            .len(),
        1
    );
    assert_eq!(
        alerting::list_silences(&conn, false, 10_000)
            .unwrap_or_default()
            .len(),
        0
    );
    assert_eq!(
        alerting::delete_silence(&conn, silence.id, 1).ok(),
        Some(true)
    );
    assert_eq!(
        alerting::delete_silence(&conn, silence.id, 1).ok(),
        Some(false)
    );
}

#[test]
fn sessions_expire_slide_and_die_with_their_token() {
    use crate::{sessions, tokens};
    let conn = memory_db();
    fn ok<T>(result: Result<T, StoreError>) -> T {
        result.unwrap_or_else(|e| panic!("{e}"))
    }
    let token_id = ok(tokens::insert(&conn, "admin", "admin", &[1; 32], 0, None));
    let hash = [7u8; 32];
    let new = sessions::NewSession {
        owner: sessions::Owner::Token(token_id),
        hash: &hash,
        csrf: "c",
        now: 0,
        expires_at: 100,
    };
    let id = ok(sessions::insert(&conn, &new));
    let found = ok(sessions::find_live(&conn, &hash, 99)).map(|(row, _)| (row.id, row.role));
    assert_eq!(found, Some((id, "admin".to_string())));
    assert_eq!(ok(sessions::find_live(&conn, &hash, 100)), None, "expired");
    assert_eq!(ok(sessions::find_live(&conn, &[8; 32], 1)), None, "unknown");
    // Sliding: a touch moves the expiry forward, never back.
    ok(sessions::touch(&conn, id, 50, 150));
    ok(sessions::touch(&conn, id, 60, 120));
    assert!(ok(sessions::find_live(&conn, &hash, 149)).is_some());
    assert_eq!(ok(sessions::list_live(&conn, 1)).len(), 1);
    // Revoking the token ends the session.
    ok(tokens::revoke(&conn, token_id, 70));
    assert_eq!(ok(sessions::find_live(&conn, &hash, 71)), None);
    // Revoking the session itself: gone from the live list; unknown ids say so.
    assert!(ok(sessions::revoke(&conn, id, 80)));
    assert!(!ok(sessions::revoke(&conn, id + 1, 80)));
    assert!(ok(sessions::list_live(&conn, 81)).is_empty());
}

/// The hot queue statements are planned once: SQLite re-plans a statement on every execution
/// when a bound value can change its plan (a bare `LIMIT ?` does), which cost the writer more
/// than the statements themselves.
#[test]
fn lease_statements_are_not_replanned_per_execution() {
    let conn = memory_db();
    for i in 0..5i64 {
        queue::enqueue(&conn, &new_run(0, 2, Some(format!("k{i}"))), 1)
            .unwrap_or_else(|e| panic!("{e}"));
        queue::lease_kinds(&conn, "w", &["check"], 3 + i as usize, 1_000, 10 + i)
            .unwrap_or_else(|e| panic!("{e}"));
        queue::lease_kinds(&conn, "w", &[], 2 + i as usize, 1_000, 10 + i)
            .unwrap_or_else(|e| panic!("{e}"));
    }
    for sql in [queue::LEASE_SQL_KINDS, queue::LEASE_SQL_ANY_KIND] {
        let statement = conn.prepare_cached(sql).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            statement.get_status(rusqlite::StatementStatus::RePrepare),
            0,
            "re-planned: {sql}"
        );
    }
}

#[test]
fn a_run_enqueued_leased_is_fenced_like_a_leased_one_and_keeps_dedup() {
    let conn = memory_db();
    let to = queue::LeaseTo {
        owner: "pool",
        lease_until: 1_000,
    };
    let run = new_run(0, 2, Some("slot:1".to_string()));
    let (enqueued, lease) =
        queue::enqueue_leased(&conn, &run, to, 10).unwrap_or_else(|e| panic!("{e}"));
    let lease = lease.unwrap_or_else(|| panic!("no lease"));
    assert!(!enqueued.deduplicated);
    assert_eq!(
        (lease.run_id, lease.fence, lease.attempt),
        (enqueued.run_id, 1, 1)
    );
    let row = queue::get(&conn, enqueued.run_id)
        .unwrap_or_else(|e| panic!("{e}"))
        .unwrap_or_else(|| panic!("run"));
    assert_eq!(row.state, RunState::Leased);
    assert_eq!(
        (
            row.lease_owner.as_deref(),
            row.lease_until,
            row.started_at,
            row.attempts
        ),
        (Some("pool"), Some(1_000), Some(10), 1)
    );
    // Nobody else can lease it, a second enqueue of the slot adds nothing and gets no lease.
    assert!(
        queue::lease(&conn, "other", 10, 1_000, 20)
            .unwrap_or_default()
            .is_empty()
    );
    let (again, none) =
        queue::enqueue_leased(&conn, &run, to, 11).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        (again.run_id, again.deduplicated, none),
        (enqueued.run_id, true, None)
    );
    // An old fence is refused; the lease's own completes it.
    assert!(matches!(
        queue::complete(&conn, lease.run_id, 0, &Completion::default(), 30),
        Err(StoreError::StaleLease { .. })
    ));
    queue::complete(&conn, lease.run_id, lease.fence, &Completion::default(), 30)
        .unwrap_or_else(|e| panic!("{e}"));
    // Expired, it is reclaimed and retried like any lease.
    let (second, lease2) = queue::enqueue_leased(&conn, &new_run(0, 2, None), to, 40)
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(lease2.is_some());
    let retried = queue::lease(&conn, "other", 10, 1_000, 1_001).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(retried.len(), 1);
    assert_eq!(
        (retried[0].run_id, retried[0].fence, retried[0].attempt),
        (second.run_id, 2, 2)
    );
    // A run with a concurrency key is refused: it must be queued to be kept one at a time.
    let keyed = NewRun {
        concurrency_key: Some("check:1".to_string()),
        ..new_run(0, 1, None)
    };
    assert!(matches!(
        queue::enqueue_leased(&conn, &keyed, to, 50),
        Err(StoreError::Invalid(_))
    ));
}

#[test]
fn a_status_is_written_when_it_changes_and_last_runs_catch_up_in_lots() {
    let conn = memory_db();
    let id = one_noop_check(&conn);
    let row = |conn: &Connection| {
        let row = checks::get_by_name(conn, "a")
            .unwrap_or_else(|e| panic!("{e}"))
            .unwrap_or_else(|| panic!("check a"));
        (
            row.status,
            row.status_since,
            row.last_run_id,
            row.last_run_at,
            row.summary,
        )
    };
    let some = |text: &str| Some(text.to_string());
    // The first result is a change; the same status again writes nothing.
    assert!(checks::record_status_if_changed(&conn, id, 10, "ok", "fine", 100).unwrap_or(false));
    assert!(
        !checks::record_status_if_changed(&conn, id, 11, "ok", "fine too", 110).unwrap_or(true)
    );
    assert_eq!(
        row(&conn),
        (some("ok"), Some(100), Some(10), Some(100), some("fine"))
    );
    // A change is written at once, status_since moves.
    assert!(checks::record_status_if_changed(&conn, id, 12, "crit", "down", 120).unwrap_or(false));
    assert_eq!(
        row(&conn),
        (some("crit"), Some(120), Some(12), Some(120), some("down"))
    );
    // A lot of last runs never goes back past a later run, and keeps status_since.
    let stale = checks::LastRun {
        check_id: id,
        run_id: 11,
        status: "ok".to_string(),
        summary: "fine too".to_string(),
        at: 110,
    };
    checks::record_last_runs(&conn, &[stale]).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        row(&conn),
        (some("crit"), Some(120), Some(12), Some(120), some("down"))
    );
    let later = checks::LastRun {
        check_id: id,
        run_id: 13,
        status: "crit".to_string(),
        summary: "still down".to_string(),
        at: 130,
    };
    checks::record_last_runs(&conn, &[later]).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        row(&conn),
        (
            some("crit"),
            Some(120),
            Some(13),
            Some(130),
            some("still down")
        )
    );
}

#[test]
fn last_runs_lost_in_a_crash_are_restored_from_the_runs() {
    let conn = memory_db();
    let id = one_noop_check(&conn);
    let finish = |at: i64, summary: &str| {
        let run = NewRun {
            check_id: Some(id),
            ..new_run(0, 1, None)
        };
        let enqueued = queue::enqueue(&conn, &run, at).unwrap_or_else(|e| panic!("{e}"));
        let lease = queue::lease(&conn, "w", 1, 1_000, at).unwrap_or_else(|e| panic!("{e}"));
        let completion = Completion {
            status: Some("ok".to_string()),
            summary: Some(summary.to_string()),
            ..Completion::default()
        };
        queue::complete(&conn, enqueued.run_id, lease[0].fence, &completion, at + 1)
            .unwrap_or_else(|e| panic!("{e}"));
        enqueued.run_id
    };
    let first = finish(100, "first");
    assert!(
        checks::record_status_if_changed(&conn, id, first, "ok", "first", 101).unwrap_or(false)
    );
    // Two more runs kept the status; their lot was never written (a crash).
    finish(200, "second");
    let third = finish(300, "third");
    // A leased run, not finished yet, is not a last run.
    queue::enqueue(
        &conn,
        &NewRun {
            check_id: Some(id),
            ..new_run(0, 1, None)
        },
        400,
    )
    .unwrap_or_else(|e| panic!("{e}"));
    queue::lease(&conn, "w", 1, 1_000, 400).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(checks::repair_last_runs(&conn).unwrap_or(0), 1);
    let row = checks::get_by_name(&conn, "a")
        .unwrap_or_else(|e| panic!("{e}"))
        .unwrap_or_else(|| panic!("check a"));
    assert_eq!(
        (
            row.status.as_deref(),
            row.status_since,
            row.last_run_id,
            row.last_run_at,
            row.summary.as_deref()
        ),
        (Some("ok"), Some(101), Some(third), Some(301), Some("third"))
    );
    // Nothing left to repair.
    assert_eq!(checks::repair_last_runs(&conn).unwrap_or(9), 0);
}

#[test]
fn rolling_up_in_slices_gives_the_rows_of_rolling_up_at_once() {
    use crate::samples::{Rolled, Sample};
    let base = 1_700_000_040_000i64; // a minute boundary
    let minute = base / 60_000;
    // 10 series over 3 minutes, a sample every 13 s each, values that make every column differ.
    let fill = |conn: &Connection| {
        let mut points = Vec::new();
        for n in 0..10 {
            let id = samples::resolve_series(conn, &format!("s{n}"), "{}")
                .unwrap_or_else(|e| panic!("{e}"));
            for i in 0..14 {
                points.push(Sample {
                    series_id: id,
                    ts: base + i * 13_000 + n,
                    value: ((i * 31 + n * 7) % 17) as f64,
                });
            }
        }
        samples::insert(conn, &points).unwrap_or_else(|e| panic!("{e}"));
    };
    /// A `samples_1m` row: series, minute, count, sum, min, max, last, last_ts.
    type RollupRow = (i64, i64, i64, f64, f64, f64, f64, i64);
    let rows = |conn: &Connection| -> Vec<RollupRow> {
        let mut statement = conn
            .prepare("SELECT series_id, minute, count, sum, min, max, last, last_ts FROM samples_1m ORDER BY minute, series_id")
            .unwrap_or_else(|e| panic!("{e}"));
        statement
            .query_map([], |r| {
                Ok((
                    r.get(0)?,
                    r.get(1)?,
                    r.get(2)?,
                    r.get(3)?,
                    r.get(4)?,
                    r.get(5)?,
                    r.get(6)?,
                    r.get(7)?,
                ))
            })
            .unwrap_or_else(|e| panic!("{e}"))
            .collect::<Result<_, _>>()
            .unwrap_or_else(|e| panic!("{e}"))
    };
    let whole = memory_db();
    fill(&whole);
    assert_eq!(samples::roll_up(&whole, minute + 1, 100).unwrap_or(-1), 2);

    let sliced = memory_db();
    fill(&sliced);
    // Slices of 4 series: 3 steps for a minute's 10, the last one marks the minute rolled.
    let mut steps = Vec::new();
    let mut after = 0;
    loop {
        let step =
            samples::roll_up_step(&sliced, minute + 1, after, 4).unwrap_or_else(|e| panic!("{e}"));
        steps.push(step);
        match step {
            Rolled::Slice { next_after } => after = next_after,
            Rolled::Minute(_) => after = 0,
            Rolled::Nothing => break,
        }
        // Until its last slice, a minute reads as not rolled (queries take it raw).
        let marked = crate::tokens::meta_get(&sliced, "rollup_1m_done")
            .unwrap_or_default()
            .and_then(|text| text.parse::<i64>().ok());
        match step {
            Rolled::Slice { .. } if steps.len() <= 3 => assert_eq!(marked, None),
            Rolled::Slice { .. } => assert_eq!(marked, Some(minute)),
            Rolled::Minute(done) => assert_eq!(marked, Some(done)),
            Rolled::Nothing => {}
        }
    }
    assert_eq!(
        steps,
        [
            Rolled::Slice { next_after: 4 },
            Rolled::Slice { next_after: 8 },
            Rolled::Minute(minute),
            Rolled::Slice { next_after: 4 },
            Rolled::Slice { next_after: 8 },
            Rolled::Minute(minute + 1),
            Rolled::Nothing,
        ]
    );
    assert_eq!(rows(&sliced), rows(&whole));
    assert_eq!(rows(&whole).len(), 20);
    // A slice rolled again (a restart in the middle of a minute) changes nothing.
    crate::tokens::meta_set(&sliced, "rollup_1m_done", &minute.to_string())
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        samples::roll_up_step(&sliced, minute + 1, 0, 4).unwrap_or(Rolled::Nothing),
        Rolled::Slice { next_after: 4 }
    );
    assert_eq!(rows(&sliced), rows(&whole));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_large_log_is_cut_back_in_a_quiet_moment_and_nothing_is_lost() {
    let dir = temp_dir();
    let options = StoreOptions {
        wal_cut_bytes: 256 << 10,
        ..StoreOptions::default()
    };
    let store = Store::open(dir.path(), options).unwrap_or_else(|e| panic!("{e}"));
    let wal = std::path::PathBuf::from(format!("{}-wal", store.path().display()));
    let wal_len = || std::fs::metadata(&wal).map(|m| m.len()).unwrap_or(0);
    // One transaction of ~2 MB: the log grows past the bound, and the writer, which no longer
    // cuts the log when it restarts, leaves the file at that size.
    store
        .write(|conn| {
            conn.execute_batch(
                "CREATE TABLE filler (x BLOB);
                 WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 2000)
                 INSERT INTO filler SELECT randomblob(1000) FROM n;",
            )?;
            Ok(())
        })
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(
        wal_len() > 1 << 20,
        "the log holds the write: {} bytes",
        wal_len()
    );
    // Quiet from now on: within a few checkpoint passes the file is cut back to nothing.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while wal_len() > 0 {
        assert!(
            std::time::Instant::now() < deadline,
            "the log was not cut back: {} bytes",
            wal_len()
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let (rows, bytes): (i64, i64) = store
        .read(|conn| {
            Ok(
                conn.query_row("SELECT count(*), sum(length(x)) FROM filler", [], |row| {
                    Ok((row.get(0)?, row.get(1)?))
                })?,
            )
        })
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!((rows, bytes), (2000, 2_000_000));
}

#[test]
fn an_end_ping_stores_the_checks_status_and_the_jobs_duration_with_its_run() {
    let conn = memory_db();
    let text = "[[check]]\nname = \"backup\"\nkind = \"heartbeat\"\nperiod = \"1h\"\n";
    let config = warden_core::config::parse_config("t.toml", text, &|_| None)
        .unwrap_or_else(|e| panic!("{e}"));
    checks::sync(&conn, &config.checks, 1).unwrap_or_else(|e| panic!("{e}"));
    let mut keys = 0;
    let rows = crate::heartbeats::ensure(&conn, || {
        keys += 1;
        Some(format!("key-{keys}"))
    })
    .unwrap_or_else(|e| panic!("{e}"));
    let check_id = rows[0].check_id;
    let ping = |kind, at| crate::heartbeats::Ping {
        check_id,
        check_name: "backup".into(),
        kind,
        rid: None,
        body: String::new(),
        meta: "{}".into(),
        at,
    };
    let row = |conn: &Connection| {
        checks::get_by_name(conn, "backup")
            .unwrap_or_else(|e| panic!("{e}"))
            .unwrap_or_else(|| panic!("check backup"))
    };
    // A start sets no status.
    crate::heartbeats::record_ping(&conn, &ping(crate::heartbeats::PingKind::Start, 10_000))
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(row(&conn).status, None);
    // Its end (exit code 3, 2.5 s later): status, run and duration, all in that one call.
    let end =
        crate::heartbeats::record_ping(&conn, &ping(crate::heartbeats::PingKind::Exit(3), 12_500))
            .unwrap_or_else(|e| panic!("{e}"));
    let stored = row(&conn);
    assert_eq!(stored.status.as_deref(), Some("crit"));
    assert_eq!(stored.last_run_id, Some(end.run_id));
    assert_eq!(stored.last_run_at, Some(12_500));
    assert_eq!(stored.summary.as_deref(), Some(end.summary.as_str()));
    let series = samples::find_series(&conn, "backup.duration", "{}")
        .unwrap_or_else(|e| panic!("{e}"))
        .unwrap_or_else(|| panic!("no backup.duration series"));
    let value: f64 = conn
        .query_row(
            "SELECT value FROM samples WHERE series_id = ?1 AND ts = 12500",
            [series],
            |r| r.get(0),
        )
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(value, 2.5);
    // An end with no start: status ok, no duration sample of its own.
    crate::heartbeats::record_ping(&conn, &ping(crate::heartbeats::PingKind::Success, 20_000))
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(row(&conn).status.as_deref(), Some("ok"));
    let samples: i64 = conn
        .query_row(
            "SELECT count(*) FROM samples WHERE series_id = ?1",
            [series],
            |r| r.get(0),
        )
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(samples, 1);
}
