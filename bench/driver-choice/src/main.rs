//! Measures rusqlite (sync, one connection) vs sqlx (async SqlitePool, max 1 connection) throughput on warden's SQLite workloads; run with `CARGO_TARGET_DIR=/root/.cache/driver-choice-target cargo run --release` in bench/driver-choice.
//!
//! Both drivers use the same bundled SQLite, the same pragmas
//! (journal_mode=WAL, synchronous=NORMAL) and the same schema; every workload
//! runs on a fresh database file in its own temp dir and checks the row count
//! it wrote before its number is reported.

use std::path::Path;
use std::time::{Duration, Instant};

use rusqlite::{Connection, params};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous};

const SCHEMA: &str = "
CREATE TABLE samples (bucket INTEGER NOT NULL, series_id INTEGER NOT NULL, ts INTEGER NOT NULL, value REAL NOT NULL, PRIMARY KEY (bucket, series_id, ts)) STRICT, WITHOUT ROWID;
CREATE TABLE runs (id INTEGER PRIMARY KEY, kind TEXT NOT NULL, payload TEXT NOT NULL, state TEXT NOT NULL, priority INTEGER NOT NULL, run_at INTEGER NOT NULL, fence INTEGER NOT NULL DEFAULT 0);
CREATE INDEX runs_ready ON runs (priority DESC, run_at, id) WHERE state = 'queued';
";

const INSERT_SAMPLE: &str = "INSERT INTO samples (bucket, series_id, ts, value) VALUES (?1, ?2, ?3, ?4)";
const INSERT_RUN: &str =
    "INSERT INTO runs (kind, payload, state, priority, run_at) VALUES ('check', ?1, 'queued', ?2, ?3)";
const POINT_READ: &str = "SELECT state FROM runs WHERE id = ?1";
const CLAIM: &str = "UPDATE runs SET state='leased', fence=fence+1 WHERE id IN (SELECT id FROM runs WHERE state='queued' ORDER BY priority DESC, run_at, id LIMIT 1) RETURNING id, fence";

const SAMPLE_ROWS: i64 = 1_000_000;
const SERIES: i64 = 1000;
const BATCH: i64 = 10_000;
const RUN_ROWS: i64 = 20_000;
const READS: usize = 100_000;
const CLAIMS: i64 = 20_000;
const T0: i64 = 1_700_000_000_000; // ms epoch base

/// Deterministic splitmix64 so both drivers see identical data and ids.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
}

/// Row i of the samples workload: 1000 series interleaved, one point per series per second.
fn sample(i: i64) -> (i64, i64, i64, f64) {
    let series = i % SERIES;
    let ts = T0 + (i / SERIES) * 1000;
    (ts / 60_000, series, ts, (i % 977) as f64 * 0.25)
}

/// The `runs` rows (payload, priority, run_at) used by workloads 2-4.
fn run_rows() -> Vec<(String, i64, i64)> {
    let mut rng = Rng(42);
    (0..RUN_ROWS)
        .map(|i| {
            let payload = format!("{{\"target\":\"host-{i}\",\"check\":\"http\"}}");
            let priority = (rng.next() % 10) as i64;
            let run_at = T0 + (rng.next() % 3_600_000) as i64;
            (payload, priority, run_at)
        })
        .collect()
}

// ---------------------------------------------------------------- rusqlite

fn r_open(path: &Path) -> Connection {
    let conn = Connection::open(path).expect("rusqlite: open database");
    let mode: String = conn
        .query_row("PRAGMA journal_mode=WAL", [], |r| r.get(0))
        .expect("rusqlite: set journal_mode");
    assert_eq!(mode, "wal", "rusqlite: journal_mode not WAL");
    conn.execute_batch("PRAGMA synchronous=NORMAL;").expect("rusqlite: set synchronous");
    let sync: i64 = conn.query_row("PRAGMA synchronous", [], |r| r.get(0)).expect("rusqlite: read synchronous");
    assert_eq!(sync, 1, "rusqlite: synchronous not NORMAL");
    conn.execute_batch(SCHEMA).expect("rusqlite: create schema");
    conn
}

fn r_count(conn: &Connection, sql: &str) -> i64 {
    conn.query_row(sql, [], |r| r.get(0)).unwrap_or_else(|e| panic!("rusqlite: {sql}: {e}"))
}

fn r_insert_runs(conn: &mut Connection, rows: &[(String, i64, i64)], one_tx_each: bool) {
    if one_tx_each {
        for (payload, priority, run_at) in rows {
            let tx = conn.transaction().expect("rusqlite: begin");
            tx.prepare_cached(INSERT_RUN)
                .expect("rusqlite: prepare insert run")
                .execute(params![payload, priority, run_at])
                .expect("rusqlite: insert run");
            tx.commit().expect("rusqlite: commit");
        }
    } else {
        let tx = conn.transaction().expect("rusqlite: begin");
        {
            let mut stmt = tx.prepare_cached(INSERT_RUN).expect("rusqlite: prepare insert run");
            for (payload, priority, run_at) in rows {
                stmt.execute(params![payload, priority, run_at]).expect("rusqlite: insert run");
            }
        }
        tx.commit().expect("rusqlite: commit");
    }
}

fn r_batched_inserts(dir: &Path) -> Duration {
    let mut conn = r_open(&dir.join("w1.db"));
    let start = Instant::now();
    let mut i = 0;
    while i < SAMPLE_ROWS {
        let tx = conn.transaction().expect("rusqlite: begin");
        {
            let mut stmt = tx.prepare_cached(INSERT_SAMPLE).expect("rusqlite: prepare insert sample");
            for j in i..i + BATCH {
                let (bucket, series, ts, value) = sample(j);
                stmt.execute(params![bucket, series, ts, value]).expect("rusqlite: insert sample");
            }
        }
        tx.commit().expect("rusqlite: commit");
        i += BATCH;
    }
    let elapsed = start.elapsed();
    assert_eq!(r_count(&conn, "SELECT count(*) FROM samples"), SAMPLE_ROWS, "rusqlite: samples row count");
    elapsed
}

fn r_single_tx(dir: &Path, rows: &[(String, i64, i64)]) -> Duration {
    let mut conn = r_open(&dir.join("w2.db"));
    let start = Instant::now();
    r_insert_runs(&mut conn, rows, true);
    let elapsed = start.elapsed();
    assert_eq!(r_count(&conn, "SELECT count(*) FROM runs"), RUN_ROWS, "rusqlite: runs row count");
    elapsed
}

fn r_point_reads(dir: &Path, rows: &[(String, i64, i64)], ids: &[i64]) -> Duration {
    let mut conn = r_open(&dir.join("w3.db"));
    r_insert_runs(&mut conn, rows, false);
    assert_eq!(r_count(&conn, "SELECT count(*) FROM runs"), RUN_ROWS, "rusqlite: runs row count before reads");
    let start = Instant::now();
    let mut found = 0usize;
    {
        let mut stmt = conn.prepare_cached(POINT_READ).expect("rusqlite: prepare point read");
        for id in ids {
            let state: String = stmt.query_row([id], |r| r.get(0)).expect("rusqlite: point read");
            found += usize::from(state == "queued");
        }
    }
    let elapsed = start.elapsed();
    assert_eq!(found, ids.len(), "rusqlite: point reads returned wrong rows");
    elapsed
}

fn r_claims(dir: &Path, rows: &[(String, i64, i64)]) -> Duration {
    let mut conn = r_open(&dir.join("w4.db"));
    r_insert_runs(&mut conn, rows, false);
    let start = Instant::now();
    let mut seen = vec![false; RUN_ROWS as usize + 1];
    for _ in 0..CLAIMS {
        let tx = conn.transaction().expect("rusqlite: begin");
        let (id, fence): (i64, i64) = tx
            .prepare_cached(CLAIM)
            .expect("rusqlite: prepare claim")
            .query_row([], |r| Ok((r.get(0)?, r.get(1)?)))
            .expect("rusqlite: claim returned no row");
        tx.commit().expect("rusqlite: commit");
        assert_eq!(fence, 1, "rusqlite: row {id} claimed twice");
        assert!(!std::mem::replace(&mut seen[id as usize], true), "rusqlite: id {id} claimed twice");
    }
    let elapsed = start.elapsed();
    assert_eq!(r_count(&conn, "SELECT count(*) FROM runs WHERE state='leased' AND fence=1"), CLAIMS, "rusqlite: leased count");
    assert_eq!(r_count(&conn, "SELECT count(*) FROM runs WHERE state='queued'"), RUN_ROWS - CLAIMS, "rusqlite: queued left");
    elapsed
}

// ---------------------------------------------------------------- sqlx

async fn s_open(path: &Path) -> SqlitePool {
    let opts = SqliteConnectOptions::new()
        .filename(path)
        .create_if_missing(true)
        .journal_mode(SqliteJournalMode::Wal)
        .synchronous(SqliteSynchronous::Normal);
    let pool = SqlitePoolOptions::new()
        .max_connections(1)
        .connect_with(opts)
        .await
        .expect("sqlx: open pool");
    let mode: String = sqlx::query_scalar("PRAGMA journal_mode").fetch_one(&pool).await.expect("sqlx: read journal_mode");
    assert_eq!(mode, "wal", "sqlx: journal_mode not WAL");
    let sync: i64 = sqlx::query_scalar("PRAGMA synchronous").fetch_one(&pool).await.expect("sqlx: read synchronous");
    assert_eq!(sync, 1, "sqlx: synchronous not NORMAL");
    sqlx::raw_sql(SCHEMA).execute(&pool).await.expect("sqlx: create schema");
    pool
}

async fn s_count(pool: &SqlitePool, sql: &str) -> i64 {
    sqlx::query_scalar(sql).fetch_one(pool).await.unwrap_or_else(|e| panic!("sqlx: {sql}: {e}"))
}

async fn s_insert_runs(pool: &SqlitePool, rows: &[(String, i64, i64)], one_tx_each: bool) {
    if one_tx_each {
        for (payload, priority, run_at) in rows {
            let mut tx = pool.begin().await.expect("sqlx: begin");
            sqlx::query(INSERT_RUN)
                .bind(payload)
                .bind(priority)
                .bind(run_at)
                .execute(&mut *tx)
                .await
                .expect("sqlx: insert run");
            tx.commit().await.expect("sqlx: commit");
        }
    } else {
        let mut tx = pool.begin().await.expect("sqlx: begin");
        for (payload, priority, run_at) in rows {
            sqlx::query(INSERT_RUN)
                .bind(payload)
                .bind(priority)
                .bind(run_at)
                .execute(&mut *tx)
                .await
                .expect("sqlx: insert run");
        }
        tx.commit().await.expect("sqlx: commit");
    }
}

async fn s_batched_inserts(dir: &Path) -> Duration {
    let pool = s_open(&dir.join("w1.db")).await;
    let start = Instant::now();
    let mut i = 0;
    while i < SAMPLE_ROWS {
        let mut tx = pool.begin().await.expect("sqlx: begin");
        for j in i..i + BATCH {
            let (bucket, series, ts, value) = sample(j);
            sqlx::query(INSERT_SAMPLE)
                .bind(bucket)
                .bind(series)
                .bind(ts)
                .bind(value)
                .execute(&mut *tx)
                .await
                .expect("sqlx: insert sample");
        }
        tx.commit().await.expect("sqlx: commit");
        i += BATCH;
    }
    let elapsed = start.elapsed();
    assert_eq!(s_count(&pool, "SELECT count(*) FROM samples").await, SAMPLE_ROWS, "sqlx: samples row count");
    pool.close().await;
    elapsed
}

async fn s_single_tx(dir: &Path, rows: &[(String, i64, i64)]) -> Duration {
    let pool = s_open(&dir.join("w2.db")).await;
    let start = Instant::now();
    s_insert_runs(&pool, rows, true).await;
    let elapsed = start.elapsed();
    assert_eq!(s_count(&pool, "SELECT count(*) FROM runs").await, RUN_ROWS, "sqlx: runs row count");
    pool.close().await;
    elapsed
}

async fn s_point_reads(dir: &Path, rows: &[(String, i64, i64)], ids: &[i64]) -> Duration {
    let pool = s_open(&dir.join("w3.db")).await;
    s_insert_runs(&pool, rows, false).await;
    assert_eq!(s_count(&pool, "SELECT count(*) FROM runs").await, RUN_ROWS, "sqlx: runs row count before reads");
    let start = Instant::now();
    let mut found = 0usize;
    for id in ids {
        let state: String = sqlx::query_scalar(POINT_READ).bind(id).fetch_one(&pool).await.expect("sqlx: point read");
        found += usize::from(state == "queued");
    }
    let elapsed = start.elapsed();
    assert_eq!(found, ids.len(), "sqlx: point reads returned wrong rows");
    pool.close().await;
    elapsed
}

async fn s_claims(dir: &Path, rows: &[(String, i64, i64)]) -> Duration {
    let pool = s_open(&dir.join("w4.db")).await;
    s_insert_runs(&pool, rows, false).await;
    let start = Instant::now();
    let mut seen = vec![false; RUN_ROWS as usize + 1];
    for _ in 0..CLAIMS {
        let mut tx = pool.begin().await.expect("sqlx: begin");
        let (id, fence): (i64, i64) = sqlx::query_as(CLAIM).fetch_one(&mut *tx).await.expect("sqlx: claim returned no row");
        tx.commit().await.expect("sqlx: commit");
        assert_eq!(fence, 1, "sqlx: row {id} claimed twice");
        assert!(!std::mem::replace(&mut seen[id as usize], true), "sqlx: id {id} claimed twice");
    }
    let elapsed = start.elapsed();
    assert_eq!(s_count(&pool, "SELECT count(*) FROM runs WHERE state='leased' AND fence=1").await, CLAIMS, "sqlx: leased count");
    assert_eq!(s_count(&pool, "SELECT count(*) FROM runs WHERE state='queued'").await, RUN_ROWS - CLAIMS, "sqlx: queued left");
    pool.close().await;
    elapsed
}

// ---------------------------------------------------------------- report

fn fmt_rate(n: f64) -> String {
    let s = format!("{:.0}", n);
    let mut out = String::new();
    for (k, c) in s.chars().enumerate() {
        if k > 0 && (s.len() - k) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}

fn tmp() -> tempfile::TempDir {
    tempfile::tempdir().expect("create temp dir")
}

#[tokio::main(flavor = "multi_thread")]
async fn main() {
    let cpus = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0);
    let cpu_model = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| s.lines().find(|l| l.starts_with("model name")).and_then(|l| l.split(':').nth(1)).map(|m| m.trim().to_string()))
        .unwrap_or_else(|| "unknown".into());
    let r_ver = rusqlite::version();
    let s_ver: String = {
        let d = tmp();
        let pool = s_open(&d.path().join("v.db")).await;
        let v = sqlx::query_scalar("SELECT sqlite_version()").fetch_one(&pool).await.expect("sqlx: sqlite_version");
        pool.close().await;
        v
    };
    println!("machine: nproc={cpus}, cpu={cpu_model}");
    println!("SQLite: rusqlite links {r_ver}, sqlx links {s_ver}");
    println!();

    let rows = run_rows();
    let mut rng = Rng(7);
    let ids: Vec<i64> = (0..READS).map(|_| (rng.next() % RUN_ROWS as u64) as i64 + 1).collect();

    // (name, unit, operations, rusqlite time, sqlx time); drivers alternate first/second to spread drift.
    let mut results: Vec<(&str, &str, f64, Duration, Duration)> = Vec::new();

    let (d1, d2) = (tmp(), tmp());
    let r = r_batched_inserts(d1.path());
    let s = s_batched_inserts(d2.path()).await;
    results.push(("1. batched inserts (1M samples, 10k/tx)", "rows/s", SAMPLE_ROWS as f64, r, s));

    let (d1, d2) = (tmp(), tmp());
    let s = s_single_tx(d2.path(), &rows).await;
    let r = r_single_tx(d1.path(), &rows);
    results.push(("2. one row per tx (20k runs)", "rows/s", RUN_ROWS as f64, r, s));

    let (d1, d2) = (tmp(), tmp());
    let r = r_point_reads(d1.path(), &rows, &ids);
    let s = s_point_reads(d2.path(), &rows, &ids).await;
    results.push(("3. point reads (100k by id)", "reads/s", READS as f64, r, s));

    let (d1, d2) = (tmp(), tmp());
    let s = s_claims(d2.path(), &rows).await;
    let r = r_claims(d1.path(), &rows);
    results.push(("4. queue claim (20k, 1/tx)", "claims/s", CLAIMS as f64, r, s));

    println!("| workload | rusqlite | sqlx | sqlx/rusqlite ratio |");
    println!("|---|---:|---:|---:|");
    for (name, unit, ops, r, s) in &results {
        let (rr, sr) = (ops / r.as_secs_f64(), ops / s.as_secs_f64());
        println!(
            "| {name} | {} {unit} ({:.2} s) | {} {unit} ({:.2} s) | {:.2} |",
            fmt_rate(rr),
            r.as_secs_f64(),
            fmt_rate(sr),
            s.as_secs_f64(),
            sr / rr
        );
    }
    println!();
    println!("ratio = sqlx throughput / rusqlite throughput (below 1.00 means sqlx is slower); all row counts verified.");
}
