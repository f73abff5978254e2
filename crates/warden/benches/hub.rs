//! `cargo bench -p warden --bench hub`: whole-hub figures with real `warden` processes.
//!
//! A. 10,000 `noop` checks every 10 s: scheduling lateness (enqueue time − slot time) p50/p99
//!    and the hub process's CPU over a steady minute (all of it: scheduler, queue, worker,
//!    events, recorder, store).
//! B. `/bin/true` exec checks end to end (due → recorded): completed runs/s, beside this
//!    machine's bare spawn-and-reap rate of `/bin/true` at the same concurrency, in the same run.
//! C. `warden run NAME --wait` for a check that takes ~0 s: latency p50/p99 per invocation,
//!    beside `warden --version` (the CLI's own start-up) in the same run.
//!
//! D. HTTP probes: `http` checks every 1 s against another warden process's health endpoint
//!    (a real Rust server on this machine), a new connection per probe: probes/s sustained and
//!    the probing hub's CPU per 1,000 probes.
//! E. Scale: 10,000 `http` checks every 30 s for WARDEN_BENCH_SCALE_S (300): share of the
//!    scheduled runs that ran, scheduling lateness p99, hub RSS and CPU.
//! F. Heartbeat ingest: `wrk` against `/ping/<key>` (SQLite, every ping stored), beside `wrk`
//!    against the same hub's `/api/v1/health` in the same run.
//!
//! Sizes (env): WARDEN_BENCH_CHECKS (10000), WARDEN_BENCH_STEADY_S (60), WARDEN_BENCH_EXEC_S (30),
//! WARDEN_BENCH_HTTP_CHECKS (6000), WARDEN_BENCH_SCALE_S (300);
//! WARDEN_BENCH_ONLY=AB runs only the named scenarios.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

fn env_u64(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn warden() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_warden"))
}

struct Hub {
    child: Child,
    url: String,
    token: String,
}

impl Drop for Hub {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start_hub(dir: &Path, config: &str, extra_env: &[(&str, &str)]) -> Hub {
    let path = dir.join("warden.toml");
    std::fs::write(&path, config).unwrap_or_else(|e| panic!("{e}"));
    let mut command = Command::new(warden());
    command
        .args(["--log-level", "warn", "hub", "--config"])
        .arg(&path)
        .arg("--data")
        .arg(dir.join("data"))
        .args(["--listen", "127.0.0.1:0"])
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit());
    for (k, v) in extra_env {
        command.env(k, v);
    }
    let mut child = command.spawn().unwrap_or_else(|e| panic!("{e}"));
    let stdout = child.stdout.take().unwrap_or_else(|| panic!("stdout"));
    let mut token = String::new();
    let mut url = String::new();
    for line in BufReader::new(stdout).lines().map_while(Result::ok) {
        if let Some(t) = line.strip_prefix("admin token (shown once, keep it safe): ") {
            token = t.to_string();
        }
        if let Some(u) = line.strip_prefix("warden hub listening on ") {
            url = u.to_string();
            break;
        }
    }
    Hub { child, url, token }
}

fn cpu_ticks(pid: u32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let fields: Vec<&str> = stat
        .rsplit_once(") ")
        .map(|(_, rest)| rest.split_whitespace().collect())
        .unwrap_or_default();
    // After the command: state is field 0, utime 11, stime 12 (fields 14 and 15 of stat(5)).
    fields
        .get(11)
        .and_then(|v| v.parse::<u64>().ok())
        .unwrap_or(0)
        + fields
            .get(12)
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(0)
}

fn clock_ticks_per_second() -> f64 {
    Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8_lossy(&o.stdout).trim().parse().ok())
        .unwrap_or(100.0)
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

fn client() -> reqwest::blocking::Client {
    reqwest::blocking::Client::builder()
        .timeout(Duration::from_secs(60))
        .build()
        .unwrap_or_else(|e| panic!("{e}"))
}

fn get(hub: &Hub, path: &str) -> Value {
    client()
        .get(format!("{}{path}", hub.url))
        .bearer_auth(&hub.token)
        .send()
        .and_then(|r| r.json())
        .unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// Runs newest first, paging back until `stop` says enough.
fn runs_since(hub: &Hub, state: &str, since_ms: i64, field: &str) -> Vec<Value> {
    let mut all = Vec::new();
    let mut before: Option<i64> = None;
    loop {
        let mut path = format!("/api/v1/runs?limit=1000&state={state}");
        if let Some(id) = before {
            path.push_str(&format!("&before={id}"));
        }
        let page = get(hub, &path);
        let runs = page["runs"].as_array().cloned().unwrap_or_default();
        let mut older = false;
        for run in &runs {
            if run[field].as_i64().unwrap_or(0) >= since_ms {
                all.push(run.clone());
            } else {
                older = true;
            }
        }
        before = page["next_before"].as_i64();
        if older || before.is_none() {
            return all;
        }
    }
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let index = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[index.min(sorted.len() - 1)]
}

fn main() {
    let quick = !std::env::args().any(|a| a == "--bench");
    if quick {
        println!("run with `cargo bench -p warden --bench hub`");
        return;
    }
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|t| {
            t.lines()
                .find(|l| l.starts_with("model name"))
                .map(|l| l.split(':').nth(1).unwrap_or("").trim().to_string())
        })
        .unwrap_or_default();
    println!(
        "machine: {} cores, {cpu}",
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(0)
    );
    let only = std::env::var("WARDEN_BENCH_ONLY").unwrap_or_default();
    if only.is_empty() || only.contains('A') {
        scheduling();
    }
    if only.is_empty() || only.contains('B') {
        exec_throughput();
    }
    if only.is_empty() || only.contains('C') {
        run_wait_latency();
    }
    if only.is_empty() || only.contains('D') {
        http_probe_throughput();
    }
    if only.is_empty() || only.contains('E') {
        http_scale();
    }
    if only.is_empty() || only.contains('F') {
        heartbeat_ingest();
    }
}

/// VmRSS and VmHWM (peak) of a process, in MiB.
fn rss_mib(pid: u32) -> (f64, f64) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|rest| {
                rest.trim()
                    .trim_end_matches("kB")
                    .trim()
                    .parse::<f64>()
                    .ok()
            })
            .unwrap_or(0.0)
            / 1024.0
    };
    (field("VmRSS:"), field("VmHWM:"))
}

/// A target server: another warden hub with no checks, answering `/api/v1/health`.
fn target_server() -> (tempfile::TempDir, Hub) {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let hub = start_hub(dir.path(), "", &[]);
    (dir, hub)
}

fn http_checks(count: u64, every: &str, url: &str) -> String {
    let mut config = String::new();
    for i in 0..count {
        config.push_str(&format!(
            "[[check]]\nname = \"http-{i}\"\nkind = \"http\"\nurl = \"{url}\"\nevery = \"{every}\"\nconditions = [\"[STATUS] == 200\", \"[BODY].status == ok\"]\n\n"
        ));
    }
    config
}

fn http_probe_throughput() {
    let checks = env_u64("WARDEN_BENCH_HTTP_CHECKS", 6_000);
    let seconds = env_u64("WARDEN_BENCH_EXEC_S", 30);
    let (_target_dir, target) = target_server();
    let url = format!("{}/api/v1/health", target.url);
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let hub = start_hub(dir.path(), &http_checks(checks, "1s", &url), &[]);
    std::thread::sleep(Duration::from_secs(10));
    let t0 = now_ms();
    let ticks0 = cpu_ticks(hub.child.id());
    let target0 = cpu_ticks(target.child.id());
    std::thread::sleep(Duration::from_secs(seconds));
    let ticks1 = cpu_ticks(hub.child.id());
    let target1 = cpu_ticks(target.child.id());
    let t1 = now_ms();
    let runs = runs_since(&hub, "completed", t0, "finished_at");
    let done: Vec<&Value> = runs
        .iter()
        .filter(|r| r["finished_at"].as_i64().unwrap_or(0) < t1)
        .collect();
    let ok = done.iter().filter(|r| r["status"] == "ok").count();
    let window = (t1 - t0) as f64 / 1000.0;
    let rate = done.len() as f64 / window;
    let hub_cpu = (ticks1 - ticks0) as f64 / clock_ticks_per_second();
    let target_cpu = (target1 - target0) as f64 / clock_ticks_per_second();
    println!();
    println!(
        "## D. HTTP probes: {checks} http checks every 1s against a local warden's /api/v1/health, new connection each, {seconds}s"
    );
    println!("probes completed: {rate:.0}/s ({ok} of {} ok)", done.len());
    println!(
        "probing hub CPU: {:.0}% of one core = {:.0} ms CPU per 1,000 probes (scheduler, queue, probe, recorder, store); target server: {:.0}% of one core",
        100.0 * hub_cpu / window,
        1000.0 * hub_cpu / done.len().max(1) as f64 * 1000.0 / 1000.0,
        100.0 * target_cpu / window
    );
}

fn http_scale() {
    let checks = env_u64("WARDEN_BENCH_CHECKS", 10_000);
    let seconds = env_u64("WARDEN_BENCH_SCALE_S", 300);
    let (_target_dir, target) = target_server();
    let url = format!("{}/api/v1/health", target.url);
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let hub = start_hub(dir.path(), &http_checks(checks, "30s", &url), &[]);
    // Past the start-up burst (every check's current slot at once).
    std::thread::sleep(Duration::from_secs(35));
    let t0 = now_ms();
    let ticks0 = cpu_ticks(hub.child.id());
    let mut peak_rss: f64 = 0.0;
    let deadline = Instant::now() + Duration::from_secs(seconds);
    while Instant::now() < deadline {
        std::thread::sleep(Duration::from_secs(5));
        peak_rss = peak_rss.max(rss_mib(hub.child.id()).0);
    }
    let ticks1 = cpu_ticks(hub.child.id());
    let t1 = now_ms();
    let (rss, hwm) = rss_mib(hub.child.id());
    let runs = runs_since(&hub, "completed", t0, "run_at");
    let mut lateness: Vec<f64> = runs
        .iter()
        .filter(|r| r["run_at"].as_i64().unwrap_or(0) < t1 - 10_000)
        .map(|r| {
            (r["enqueued_at"].as_i64().unwrap_or(0) - r["run_at"].as_i64().unwrap_or(0)) as f64
        })
        .collect();
    lateness.sort_by(|a, b| a.total_cmp(b));
    let ok = runs.iter().filter(|r| r["status"] == "ok").count();
    let expected = checks as f64 * ((t1 - 10_000 - t0) as f64 / 30_000.0);
    let cpu =
        (ticks1 - ticks0) as f64 / clock_ticks_per_second() / ((t1 - t0) as f64 / 1000.0) * 100.0;
    println!();
    println!("## E. {checks} http checks every 30s, {seconds}s");
    println!(
        "scheduled runs that ran: {} of ~{expected:.0} ({:.1}%), {ok} ok",
        lateness.len(),
        100.0 * lateness.len() as f64 / expected
    );
    println!(
        "scheduling lateness (enqueued - slot, ms): p50 {:.0}  p99 {:.0}  max {:.0}",
        percentile(&lateness, 0.5),
        percentile(&lateness, 0.99),
        lateness.last().copied().unwrap_or(f64::NAN)
    );
    println!(
        "hub RSS: {rss:.1} MiB at the end, {peak_rss:.1} MiB highest sampled, {hwm:.1} MiB peak (VmHWM, includes start-up); CPU {cpu:.1}% of one core"
    );
}

/// Runs `wrk` and returns (requests/s, p99 ms).
fn wrk(url: &str, seconds: u64) -> Option<(f64, f64)> {
    let output = Command::new("wrk")
        .args(["-t2", "-c64", &format!("-d{seconds}s"), "--latency", url])
        .output()
        .ok()?;
    let text = String::from_utf8_lossy(&output.stdout).into_owned();
    let rate = text
        .lines()
        .find_map(|l| l.strip_prefix("Requests/sec:"))
        .and_then(|v| v.trim().parse::<f64>().ok())?;
    let p99 = text
        .lines()
        .find_map(|l| l.trim().strip_prefix("99%"))
        .map(str::trim)
        .and_then(|v| {
            let (number, unit) = v.split_at(v.find(|c: char| c.is_ascii_alphabetic())?);
            let number: f64 = number.parse().ok()?;
            Some(match unit {
                "us" => number / 1000.0,
                "ms" => number,
                "s" => number * 1000.0,
                _ => return None,
            })
        })?;
    Some((rate, p99))
}

fn heartbeat_ingest() {
    if Command::new("wrk").arg("--version").output().is_err() {
        println!("\n## F. heartbeat ingest: SKIPPED (wrk is not installed: apt-get install wrk)");
        return;
    }
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let mut config = String::new();
    for i in 0..100 {
        config.push_str(&format!(
            "[[check]]\nname = \"job-{i}\"\nkind = \"heartbeat\"\nperiod = \"1h\"\n\n"
        ));
    }
    let hub = start_hub(dir.path(), &config, &[]);
    let check = get(&hub, "/api/v1/checks/job-7");
    let ping = check["heartbeat"]["ping_url"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let seconds = 10;
    let health = wrk(&format!("{}/api/v1/health", hub.url), seconds);
    let ticks0 = cpu_ticks(hub.child.id());
    let pings = wrk(&ping, seconds);
    let ticks1 = cpu_ticks(hub.child.id());
    let stored = get(&hub, "/api/v1/checks/job-7")["heartbeat"]["pings"]
        .as_i64()
        .unwrap_or(0);
    println!();
    println!("## F. heartbeat ingest with wrk (2 threads, 64 connections, {seconds}s each)");
    if let Some((rate, p99)) = health {
        println!("GET /api/v1/health: {rate:.0} req/s, p99 {p99:.2} ms");
    }
    if let Some((rate, p99)) = pings {
        println!(
            "GET /ping/<key>: {rate:.0} pings/s, p99 {p99:.2} ms; {stored} pings stored; hub CPU {:.0}% of one core",
            (ticks1 - ticks0) as f64 / clock_ticks_per_second() / seconds as f64 * 100.0
        );
    }
}

fn scheduling() {
    let checks = env_u64("WARDEN_BENCH_CHECKS", 10_000);
    let steady = env_u64("WARDEN_BENCH_STEADY_S", 60);
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let mut config = String::new();
    for i in 0..checks {
        config.push_str(&format!(
            "[[check]]\nname = \"noop-{i}\"\nkind = \"noop\"\nevery = \"10s\"\n\n"
        ));
    }
    let hub = start_hub(dir.path(), &config, &[]);
    // Warm up past the start-up burst (every check's current slot runs at once).
    std::thread::sleep(Duration::from_secs(15));
    let t0 = now_ms();
    let ticks0 = cpu_ticks(hub.child.id());
    std::thread::sleep(Duration::from_secs(steady));
    let ticks1 = cpu_ticks(hub.child.id());
    let t1 = now_ms();
    let cpu =
        (ticks1 - ticks0) as f64 / clock_ticks_per_second() / ((t1 - t0) as f64 / 1000.0) * 100.0;
    let runs = runs_since(&hub, "completed", t0, "enqueued_at");
    let mut lateness: Vec<f64> = runs
        .iter()
        .filter(|r| r["enqueued_at"].as_i64().unwrap_or(0) < t1)
        .map(|r| {
            (r["enqueued_at"].as_i64().unwrap_or(0) - r["run_at"].as_i64().unwrap_or(0)) as f64
        })
        .collect();
    lateness.sort_by(|a, b| a.total_cmp(b));
    let expected = checks as f64 * (t1 - t0) as f64 / 10_000.0;
    println!();
    println!("## A. {checks} noop checks every 10s, steady {steady}s");
    println!(
        "runs scheduled and recorded in the window: {} (expected ~{:.0}, {:.1}%)",
        lateness.len(),
        expected,
        100.0 * lateness.len() as f64 / expected
    );
    println!(
        "scheduling lateness (enqueued - slot, ms): p50 {:.0}  p99 {:.0}  max {:.0}",
        percentile(&lateness, 0.5),
        percentile(&lateness, 0.99),
        lateness.last().copied().unwrap_or(f64::NAN)
    );
    println!(
        "hub CPU for all of it (scheduler, queue, worker, events, recorder, store): {cpu:.1}% of one core"
    );
}

fn exec_throughput() {
    let seconds = env_u64("WARDEN_BENCH_EXEC_S", 30);
    let concurrency = 4 * std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(2);
    // Bare: spawn and reap /bin/true from `concurrency` threads.
    let bare_seconds = 10;
    let started = Instant::now();
    let mut threads = Vec::new();
    for _ in 0..concurrency {
        threads.push(std::thread::spawn(move || {
            let mut n = 0u64;
            while started.elapsed() < Duration::from_secs(bare_seconds) {
                let _ = Command::new("/bin/true")
                    .stdin(Stdio::null())
                    .stdout(Stdio::null())
                    .stderr(Stdio::null())
                    .status();
                n += 1;
            }
            n
        }));
    }
    let spawned: u64 = threads.into_iter().map(|t| t.join().unwrap_or(0)).sum();
    let bare = spawned as f64 / started.elapsed().as_secs_f64();

    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let checks = (bare * 1.5) as u64; // more demand than the machine can spawn
    let mut config = String::new();
    for i in 0..checks {
        config.push_str(&format!("[[check]]\nname = \"true-{i}\"\nkind = \"exec\"\ncommand = [\"/bin/true\"]\nevery = \"1s\"\n\n"));
    }
    let hub = start_hub(dir.path(), &config, &[]);
    std::thread::sleep(Duration::from_secs(10));
    let t0 = now_ms();
    std::thread::sleep(Duration::from_secs(seconds));
    let t1 = now_ms();
    let runs = runs_since(&hub, "completed", t0, "finished_at");
    let done = runs
        .iter()
        .filter(|r| r["finished_at"].as_i64().unwrap_or(0) < t1)
        .count();
    let ok = runs.iter().filter(|r| r["status"] == "ok").count();
    let rate = done as f64 / ((t1 - t0) as f64 / 1000.0);
    println!();
    println!(
        "## B. /bin/true exec checks end to end ({checks} checks every 1s, {concurrency} at once), {seconds}s"
    );
    println!("bare spawn-and-reap of /bin/true, {concurrency} threads: {bare:.0}/s");
    println!(
        "warden, due -> recorded: {rate:.0} runs/s ({:.0}% of bare); {ok} of {} ok",
        100.0 * rate / bare,
        runs.len()
    );
    drop(hub);
}

fn run_wait_latency() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let hub = start_hub(
        dir.path(),
        "[[check]]\nname = \"zero\"\nkind = \"exec\"\ncommand = [\"/bin/true\"]\nevery = \"1h\"\n",
        &[],
    );
    std::thread::sleep(Duration::from_secs(2));
    let time = |args: &[&str]| {
        let started = Instant::now();
        let status = Command::new(warden())
            .args(args)
            .env("WARDEN_URL", &hub.url)
            .env("WARDEN_TOKEN", &hub.token)
            .stdout(Stdio::null())
            .status()
            .unwrap_or_else(|e| panic!("{e}"));
        (started.elapsed().as_secs_f64() * 1000.0, status.code())
    };
    let mut baseline: Vec<f64> = (0..100).map(|_| time(&["--version"]).0).collect();
    let mut latency = Vec::new();
    for _ in 0..300 {
        let (ms, code) = time(&["run", "zero", "--wait"]);
        assert_eq!(code, Some(0));
        latency.push(ms);
    }
    baseline.sort_by(|a, b| a.total_cmp(b));
    latency.sort_by(|a, b| a.total_cmp(b));
    println!();
    println!("## C. `warden run zero --wait` (a /bin/true check), 300 runs, one after another");
    println!(
        "`warden --version` (CLI start-up alone): p50 {:.1} ms  p99 {:.1} ms",
        percentile(&baseline, 0.5),
        percentile(&baseline, 0.99)
    );
    println!(
        "`warden run zero --wait`: p50 {:.1} ms  p99 {:.1} ms  max {:.1} ms",
        percentile(&latency, 0.5),
        percentile(&latency, 0.99),
        latency.last().copied().unwrap_or(f64::NAN)
    );
}
