//! `cargo bench -p warden-store`: the queue cycle (enqueue → lease → complete) with 1, 4 and 16
//! concurrent workers, and batched sample ingest, each beside the bare database doing the
//! equivalent writes in a plain rusqlite loop in the same run. Real files, real schema and indexes.
//!
//! Also: a series range query over 1,000,000 samples returning 500 points, from the per-minute
//! rollups, beside the same query over the raw samples in the same run.
//!
//! Options (env): WARDEN_BENCH_RUNS (default 200000), WARDEN_BENCH_SAMPLES (default 2000000),
//! WARDEN_BENCH_ONLY (letters: Q queue, S samples, R range query).

use std::time::{Duration, Instant};

use rusqlite::{Connection, params};
use warden_store::queue::{self, Completion, NewRun};
use warden_store::samples::{self, BUCKET_MS, Sample};
use warden_store::{Store, StoreOptions};

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn main() {
    // `cargo bench` passes `--bench`; `cargo test --benches` would pass nothing: run tiny then.
    let quick = !std::env::args().any(|a| a == "--bench");
    let runs = if quick {
        2_000
    } else {
        env_usize("WARDEN_BENCH_RUNS", 200_000)
    };
    let sample_count = if quick {
        20_000
    } else {
        env_usize("WARDEN_BENCH_SAMPLES", 2_000_000)
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap_or_else(|e| panic!("runtime: {e}"));

    println!(
        "machine: {} cores, {}",
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(0),
        cpu_model()
    );
    let only = std::env::var("WARDEN_BENCH_ONLY").unwrap_or_default();
    let wanted = |letter: char| only.is_empty() || only.contains(letter);
    if wanted('R') {
        range_query(if quick { 20_000 } else { 1_000_000 });
    }
    if !wanted('Q') && !wanted('S') {
        return;
    }
    println!();
    println!("## queue cycle: enqueue -> lease -> complete, {runs} runs");
    let bare = bare_queue_cycle(runs);
    println!(
        "{:<44} {:>12.0} runs/s",
        "bare rusqlite loop (same SQL, 256/commit)", bare
    );
    for workers in [1usize, 4, 16] {
        let rate = runtime.block_on(store_queue_cycle(runs, workers));
        println!(
            "{:<44} {:>12.0} runs/s  ({:.0}% of bare)",
            format!("warden store, {workers} worker(s)"),
            rate,
            100.0 * rate / bare
        );
    }
    println!();
    println!("## sample ingest, {sample_count} samples over 1000 series");
    let bare_plain = bare_samples(sample_count, false);
    println!(
        "{:<44} {:>12.0} samples/s",
        "bare rusqlite, table without index", bare_plain
    );
    let bare_keyed = bare_samples(sample_count, true);
    println!(
        "{:<44} {:>12.0} samples/s",
        "bare rusqlite, warden's keyed samples table", bare_keyed
    );
    let rate = runtime.block_on(store_samples(sample_count));
    println!(
        "{:<44} {:>12.0} samples/s  ({:.0}% of bare keyed, {:.0}% of no index)",
        "warden store (10,000/commit via writer)",
        rate,
        100.0 * rate / bare_keyed,
        100.0 * rate / bare_plain
    );
}

/// One series with `count` samples, one per second; query its whole range as 500 points, 50
/// times, from rollups and from raw samples.
fn range_query(count: usize) {
    let dir = temp();
    let mut conn = bare_connection(dir.path());
    warden_store::migrate_for_bench(&mut conn).unwrap_or_else(|e| panic!("{e}"));
    let id =
        samples::resolve_series(&conn, "web.response_time", "{}").unwrap_or_else(|e| panic!("{e}"));
    let start = 1_700_000_000_000i64;
    let step_in = 1_000i64;
    for chunk in (0..count as i64).collect::<Vec<_>>().chunks(50_000) {
        conn.execute_batch("BEGIN")
            .unwrap_or_else(|e| panic!("{e}"));
        let batch: Vec<Sample> = chunk
            .iter()
            .map(|i| Sample {
                series_id: id,
                ts: start + i * step_in,
                value: (i % 1000) as f64 / 10.0,
            })
            .collect();
        samples::insert(&conn, &batch).unwrap_or_else(|e| panic!("{e}"));
        conn.execute_batch("COMMIT")
            .unwrap_or_else(|e| panic!("{e}"));
    }
    let from = start;
    let to = start + count as i64 * step_in;
    let step = (to - from) / 500 + 1;
    let time = |label: &str| {
        let mut times = Vec::new();
        let mut points = 0;
        for _ in 0..50 {
            let began = Instant::now();
            points = samples::query(&conn, id, from, to, step, samples::Aggregate::Avg)
                .unwrap_or_else(|e| panic!("{e}"))
                .len();
            times.push(began.elapsed().as_secs_f64() * 1000.0);
        }
        times.sort_by(|a, b| a.total_cmp(b));
        println!(
            "{label:<44} p50 {:>7.1} ms  p99 {:>7.1} ms  ({points} points)",
            times[times.len() / 2],
            times[times.len() * 99 / 100]
        );
        times[times.len() / 2]
    };
    println!();
    println!("## series range query: {count} samples (1/s), whole range as 500 points, avg");
    let raw = time("raw samples (no rollups yet)");
    let began = Instant::now();
    let upto = to.div_euclid(BUCKET_MS);
    while samples::roll_up(&conn, upto, 10_000).unwrap_or_else(|e| panic!("{e}")) > 0 {}
    println!(
        "{:<44} {:>7.1} s",
        "rolling everything up, once",
        began.elapsed().as_secs_f64()
    );
    let rolled = time("per-minute rollups");
    println!("{:<44} {:>7.1}x faster", "rollups vs raw", raw / rolled);
}

fn cpu_model() -> String {
    std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|text| {
            text.lines()
                .find(|l| l.starts_with("model name"))
                .map(|l| l.split(':').nth(1).unwrap_or("").trim().to_string())
        })
        .unwrap_or_else(|| "unknown cpu".to_string())
}

fn temp() -> tempfile::TempDir {
    tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"))
}

fn bare_connection(dir: &std::path::Path) -> Connection {
    let conn = Connection::open(dir.join("bare.db")).unwrap_or_else(|e| panic!("{e}"));
    conn.execute_batch("PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL; PRAGMA wal_autocheckpoint = 4000; PRAGMA cache_size = -65536;")
        .unwrap_or_else(|e| panic!("{e}"));
    conn
}

/// The same schema and statements as the queue, without the writer, async or fencing logic.
fn bare_queue_cycle(runs: usize) -> f64 {
    let dir = temp();
    let conn = bare_connection(dir.path());
    conn.execute_batch(
        "CREATE TABLE runs (id INTEGER PRIMARY KEY, kind TEXT NOT NULL, payload TEXT NOT NULL, state TEXT NOT NULL,
            priority INTEGER NOT NULL, run_at INTEGER NOT NULL, attempts INTEGER NOT NULL DEFAULT 0, fence INTEGER NOT NULL DEFAULT 0,
            lease_owner TEXT, lease_until INTEGER, finished_at INTEGER, status TEXT);
         CREATE INDEX runs_ready ON runs (priority DESC, run_at, id) WHERE state = 'queued';
         CREATE INDEX runs_leased ON runs (lease_until) WHERE state = 'leased';",
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let started = Instant::now();
    let batch = 256;
    let mut done = 0;
    while done < runs {
        let n = batch.min(runs - done);
        let tx = conn
            .unchecked_transaction()
            .unwrap_or_else(|e| panic!("{e}"));
        let mut ids = Vec::with_capacity(n);
        {
            let mut insert = tx
                .prepare_cached("INSERT INTO runs (kind, payload, state, priority, run_at) VALUES ('job', '{}', 'queued', 0, 0) RETURNING id")
                .unwrap_or_else(|e| panic!("{e}"));
            for _ in 0..n {
                ids.push(
                    insert
                        .query_row([], |r| r.get::<_, i64>(0))
                        .unwrap_or_else(|e| panic!("{e}")),
                );
            }
            let mut lease = tx
                .prepare_cached("UPDATE runs SET state = 'leased', lease_owner = 'w', lease_until = 1, fence = fence + 1, attempts = attempts + 1 WHERE id = ?1")
                .unwrap_or_else(|e| panic!("{e}"));
            for id in &ids {
                lease.execute([id]).unwrap_or_else(|e| panic!("{e}"));
            }
        }
        tx.commit().unwrap_or_else(|e| panic!("{e}"));
        let tx = conn
            .unchecked_transaction()
            .unwrap_or_else(|e| panic!("{e}"));
        {
            let mut complete = tx
                .prepare_cached("UPDATE runs SET state = 'completed', finished_at = 2, status = 'ok', lease_owner = NULL, lease_until = NULL WHERE id = ?1 AND fence = 1")
                .unwrap_or_else(|e| panic!("{e}"));
            for id in &ids {
                complete.execute([id]).unwrap_or_else(|e| panic!("{e}"));
            }
        }
        tx.commit().unwrap_or_else(|e| panic!("{e}"));
        done += n;
    }
    runs as f64 / started.elapsed().as_secs_f64()
}

/// A producer enqueues in batches while `workers` tasks lease up to 64 and complete them in one
/// write each; the writer folds concurrent operations into shared commits.
async fn store_queue_cycle(runs: usize, workers: usize) -> f64 {
    let dir = temp();
    let store = Store::open(dir.path(), StoreOptions::default()).unwrap_or_else(|e| panic!("{e}"));
    let started = Instant::now();
    let producer = {
        let store = store.clone();
        tokio::spawn(async move {
            let mut left = runs;
            while left > 0 {
                let n = left.min(512);
                left -= n;
                store
                    .write(move |conn| {
                        let now = warden_store::now_ms();
                        for _ in 0..n {
                            let run = NewRun {
                                check_id: None,
                                kind: "job".to_string(),
                                payload: "{}".to_string(),
                                priority: 0,
                                run_at: 0,
                                max_attempts: 3,
                                dedup_key: None,
                                concurrency_key: None,
                            };
                            queue::enqueue(conn, &run, now)?;
                        }
                        Ok(())
                    })
                    .await
                    .unwrap_or_else(|e| panic!("{e}"));
            }
        })
    };
    let completed = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let mut tasks = Vec::new();
    for worker in 0..workers {
        let store = store.clone();
        let completed = completed.clone();
        tasks.push(tokio::spawn(async move {
            let owner = format!("w{worker}");
            while completed.load(std::sync::atomic::Ordering::Relaxed) < runs {
                let owner = owner.clone();
                let leases = store
                    .write(move |conn| {
                        queue::lease(conn, &owner, 64, 30_000, warden_store::now_ms())
                    })
                    .await
                    .unwrap_or_else(|e| panic!("{e}"));
                if leases.is_empty() {
                    tokio::time::sleep(Duration::from_micros(200)).await;
                    continue;
                }
                let n = leases.len();
                store
                    .write(move |conn| {
                        let now = warden_store::now_ms();
                        let done = Completion {
                            status: Some("ok".to_string()),
                            ..Completion::default()
                        };
                        for lease in &leases {
                            queue::complete(conn, lease.run_id, lease.fence, &done, now)?;
                        }
                        Ok(())
                    })
                    .await
                    .unwrap_or_else(|e| panic!("{e}"));
                completed.fetch_add(n, std::sync::atomic::Ordering::Relaxed);
            }
        }));
    }
    let _ = producer.await;
    for task in tasks {
        let _ = task.await;
    }
    let elapsed = started.elapsed();
    store.close().await;
    runs as f64 / elapsed.as_secs_f64()
}

/// 1000 series sampled in time order (as a recorder sees them), 10,000 rows per commit.
fn sample_batches(count: usize) -> Vec<Vec<Sample>> {
    let series = 1_000i64;
    let base = 1_780_000_000_000i64;
    let mut batches = Vec::new();
    let mut batch = Vec::with_capacity(10_000);
    for i in 0..count as i64 {
        batch.push(Sample {
            series_id: 1 + i % series,
            ts: base + (i / series) * 1_000,
            value: i as f64,
        });
        if batch.len() == 10_000 {
            batches.push(std::mem::take(&mut batch));
        }
    }
    if !batch.is_empty() {
        batches.push(batch);
    }
    batches
}

fn bare_samples(count: usize, keyed: bool) -> f64 {
    let dir = temp();
    let conn = bare_connection(dir.path());
    let schema = if keyed {
        "CREATE TABLE samples (bucket INTEGER NOT NULL, series_id INTEGER NOT NULL, ts INTEGER NOT NULL, value REAL NOT NULL,
            PRIMARY KEY (bucket, series_id, ts)) STRICT, WITHOUT ROWID;"
    } else {
        "CREATE TABLE samples (bucket INTEGER NOT NULL, series_id INTEGER NOT NULL, ts INTEGER NOT NULL, value REAL NOT NULL) STRICT;"
    };
    conn.execute_batch(schema).unwrap_or_else(|e| panic!("{e}"));
    let batches = sample_batches(count);
    let started = Instant::now();
    for batch in &batches {
        let tx = conn
            .unchecked_transaction()
            .unwrap_or_else(|e| panic!("{e}"));
        {
            let mut insert = tx
                .prepare_cached(
                    "INSERT INTO samples (bucket, series_id, ts, value) VALUES (?1, ?2, ?3, ?4)",
                )
                .unwrap_or_else(|e| panic!("{e}"));
            for s in batch {
                insert
                    .execute(params![s.ts / BUCKET_MS, s.series_id, s.ts, s.value])
                    .unwrap_or_else(|e| panic!("{e}"));
            }
        }
        tx.commit().unwrap_or_else(|e| panic!("{e}"));
    }
    count as f64 / started.elapsed().as_secs_f64()
}

async fn store_samples(count: usize) -> f64 {
    let dir = temp();
    let store = Store::open(dir.path(), StoreOptions::default()).unwrap_or_else(|e| panic!("{e}"));
    let batches = sample_batches(count);
    let started = Instant::now();
    let mut pending = Vec::new();
    for batch in batches {
        let store = store.clone();
        pending.push(tokio::spawn(async move {
            store.write(move |conn| samples::insert(conn, &batch)).await
        }));
        if pending.len() >= 4 {
            let _ = pending.remove(0).await;
        }
    }
    for task in pending {
        let _ = task.await;
    }
    let elapsed = started.elapsed();
    store.close().await;
    count as f64 / elapsed.as_secs_f64()
}
