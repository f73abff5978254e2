//! `cargo bench -p warden --bench hub`: whole-hub figures with real `warden` processes.
//!
//! A. 10,000 `noop` checks every 10 s: scheduling lateness (enqueue time − slot time) p50/p99
//!    and the hub process's CPU over a steady minute (all of it: scheduler, queue, worker,
//!    events, recorder, store).
//! B. `/bin/true` exec checks end to end (due → recorded): completed runs/s, beside this
//!    machine's bare spawn-and-reap rate of `/bin/true` at the same concurrency, in the same
//!    run: warden's windows alternate with the bare loop's (the hub stopped with SIGSTOP
//!    meanwhile), each compared with the bare windows either side of it.
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
//! G. Live fan-out: WARDEN_BENCH_LIVE_CLIENTS (1000) WebSocket subscribers on one hub running
//!    WARDEN_BENCH_LIVE_CHECKS (100) exec checks every 1 s that print WARDEN_BENCH_LIVE_LINES
//!    (100) lines each (~10,000 events/s): delivery latency (hub publish time in each event's
//!    `ts_us` → client receipt) p50/p99, hub CPU, too-slow closes; each client following one
//!    check, then unfiltered at a tenth of the events, a tenth of the clients, and full scale.
//!    WARDEN_BENCH_LIVE_S (20) per round; WARDEN_BENCH_LIVE_ROUNDS=13 runs only those rounds.
//! H. Alerting CPU: the rule engine in-process on 10,000 checks each finishing every 10 s (one
//!    sample each) plus 1,000 series rules, over 10 simulated minutes (CPU per simulated second);
//!    then a real hub with 10,000 `noop` checks every 10 s and 1,000 series rules: the alerter's
//!    evaluation time over a steady minute (its own counter) beside the hub's whole CPU.
//! I. Page latency: WARDEN_BENCH_PAGES (300) heartbeat checks, a rule firing on one failure
//!    and a webhook receiver in the bench: from sending `/ping/<key>/fail` (which records the
//!    crit result) to the receiver holding the incident, one at a time; p50/p99/max.
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

/// CPU ticks of process `pid` itself (all its threads) and of its reaped children:
/// utime + stime and cutime + cstime (fields 14–17 of stat(5)).
fn cpu_and_children_ticks(pid: &str) -> (u64, u64) {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let fields: Vec<u64> = stat
        .rsplit_once(") ")
        .map(|(_, rest)| {
            rest.split_whitespace()
                .skip(11)
                .take(4)
                .map(|v| v.parse().unwrap_or(0))
                .collect()
        })
        .unwrap_or_default();
    match fields[..] {
        [utime, stime, cutime, cstime] => (utime + stime, cutime + cstime),
        _ => (0, 0),
    }
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
    if only.is_empty() || only.contains('J') {
        checks_listing();
    }
    if only.is_empty() || only.contains('G') {
        live_fanout();
    }
    if only.is_empty() || only.contains('H') {
        alerting_cpu();
    }
    if only.is_empty() || only.contains('I') {
        page_latency();
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
        hub_cpu * 1_000_000.0 / done.len().max(1) as f64,
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
    wrk_with(url, seconds, 64, None)
}

/// `wrk` with a connection count and an optional bearer token.
fn wrk_with(url: &str, seconds: u64, connections: u32, token: Option<&str>) -> Option<(f64, f64)> {
    let mut command = Command::new("wrk");
    command.args([
        // wrk needs at least one connection per thread.
        &format!("-t{}", connections.clamp(1, 2)),
        &format!("-c{connections}"),
        &format!("-d{seconds}s"),
        "--latency",
    ]);
    if let Some(token) = token {
        command.args(["-H", &format!("Authorization: Bearer {token}")]);
    }
    let output = command.arg(url).output().ok()?;
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
    let seconds = env_u64("WARDEN_BENCH_EXEC_S", 10);
    let rounds = env_u64("WARDEN_BENCH_EXEC_ROUNDS", 3);
    let concurrency = 4 * std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(2);
    // This shared machine's speed drifts by tens of percent within minutes, so warden's windows
    // and the bare loop's alternate: bare, warden, bare, warden, ..., bare. While the bare loop
    // runs, the hub is stopped (SIGSTOP: it keeps its memory and uses no CPU); each warden
    // window is compared with the mean of the bare windows either side of it.
    let first_bare = bare_spawn_rate(concurrency, 5);
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let checks = (first_bare * 1.5) as u64; // more demand than the machine can spawn
    let mut config = String::new();
    for i in 0..checks {
        config.push_str(&format!("[[check]]\nname = \"true-{i}\"\nkind = \"exec\"\ncommand = [\"/bin/true\"]\nevery = \"1s\"\n\n"));
    }
    let hub = start_hub(dir.path(), &config, &[]);
    std::thread::sleep(Duration::from_secs(10));
    let pid = hub.child.id().to_string();
    let signal = |name: &str| {
        let status = Command::new("kill").args([name, &pid]).status();
        assert!(
            status.is_ok_and(|s| s.success()),
            "kill {name} {pid} failed"
        );
    };
    let mut bare = vec![first_bare];
    let mut windows = Vec::new();
    // CPU ticks over each window: the hub's own and its reaped children's (the checks);
    // the bare loop's own (this process: its spawning threads) and its children's.
    let mut hub_cpu = Vec::new();
    let mut bare_cpu = Vec::new();
    for round in 0..rounds {
        if round > 0 {
            // The catch-up after a stop (every overdue check once) settles first.
            std::thread::sleep(Duration::from_secs(3));
        }
        let before = cpu_and_children_ticks(&pid);
        let t0 = now_ms();
        std::thread::sleep(Duration::from_secs(seconds));
        let t1 = now_ms();
        let after = cpu_and_children_ticks(&pid);
        hub_cpu.push((after.0 - before.0, after.1 - before.1));
        windows.push((t0, t1));
        signal("-STOP");
        std::thread::sleep(Duration::from_millis(500));
        let before = cpu_and_children_ticks("self");
        let rate = bare_spawn_rate(concurrency, 5);
        let after = cpu_and_children_ticks("self");
        bare_cpu.push((after.0 - before.0, after.1 - before.1, rate * 5.0));
        bare.push(rate);
        signal("-CONT");
    }
    let mut rates = Vec::new();
    let mut done_per_window = Vec::new();
    let mut ok = 0;
    let mut recorded = 0;
    for &(t0, t1) in &windows {
        let runs = runs_since(&hub, "completed", t0, "finished_at");
        let done = runs
            .iter()
            .filter(|r| r["finished_at"].as_i64().unwrap_or(0) < t1)
            .count();
        ok += runs.iter().filter(|r| r["status"] == "ok").count();
        recorded += runs.len();
        done_per_window.push(done);
        rates.push(done as f64 / ((t1 - t0) as f64 / 1000.0));
    }
    drop(hub);
    println!();
    println!(
        "## B. /bin/true exec checks end to end ({checks} checks every 1s, {concurrency} at once), {rounds} windows of {seconds}s between bare windows of 5s"
    );
    let mut shares = Vec::new();
    for (i, rate) in rates.iter().enumerate() {
        let baseline = (bare[i] + bare[i + 1]) / 2.0;
        let share = 100.0 * rate / baseline;
        shares.push(share);
        println!(
            "window {}: warden {rate:.0} runs/s, bare {:.0}/s and {:.0}/s either side: {share:.0}% of bare",
            i + 1,
            bare[i],
            bare[i + 1]
        );
    }
    // CPU per run, which the machine's drifting speed moves less than rates: what the hub adds
    // to each spawn, beside what the bare loop's own threads spend on one.
    let us_per_tick = 1e6 / clock_ticks_per_second();
    let per = |ticks: u64, n: f64| ticks as f64 * us_per_tick / n.max(1.0);
    let hub_us: u64 = hub_cpu.iter().map(|c| c.0).sum();
    let hub_children_us: u64 = hub_cpu.iter().map(|c| c.1).sum();
    let runs_done = done_per_window.iter().sum::<usize>() as f64;
    let bare_spawns: f64 = bare_cpu.iter().map(|c| c.2).sum();
    let bare_us: u64 = bare_cpu.iter().map(|c| c.0).sum();
    let bare_children_us: u64 = bare_cpu.iter().map(|c| c.1).sum();
    println!(
        "CPU per run: hub {:.0} us, its checks {:.0} us; bare loop {:.0} us per spawn, its children {:.0} us (bare windows after the first)",
        per(hub_us, runs_done),
        per(hub_children_us, runs_done),
        per(bare_us, bare_spawns),
        per(bare_children_us, bare_spawns),
    );
    let total_rate: f64 = rates.iter().sum::<f64>() / rates.len().max(1) as f64;
    let total_bare: f64 = bare.iter().sum::<f64>() / bare.len().max(1) as f64;
    shares.sort_by(|a, b| a.total_cmp(b));
    println!(
        "warden, due -> recorded: {total_rate:.0} runs/s, bare {total_bare:.0}/s: {:.0}% of bare overall, median window {:.0}%; {ok} of {recorded} ok",
        100.0 * total_rate / total_bare,
        percentile(&shares, 0.5)
    );
}

/// Spawns and reaps `/bin/true` from `threads` threads for `seconds`: spawns a second.
fn bare_spawn_rate(threads: usize, seconds: u64) -> f64 {
    let started = Instant::now();
    let workers: Vec<_> = (0..threads)
        .map(|_| {
            std::thread::spawn(move || {
                let mut n = 0u64;
                while started.elapsed() < Duration::from_secs(seconds) {
                    let _ = Command::new("/bin/true")
                        .stdin(Stdio::null())
                        .stdout(Stdio::null())
                        .stderr(Stdio::null())
                        .status();
                    n += 1;
                }
                n
            })
        })
        .collect();
    let spawned: u64 = workers.into_iter().map(|t| t.join().unwrap_or(0)).sum();
    spawned as f64 / started.elapsed().as_secs_f64()
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

// ---------------------------------------------------------------------------------------------
// G. Live fan-out.

/// What the bench's subscribers saw, shared by all of them.
struct FanoutStats {
    measuring: std::sync::atomic::AtomicBool,
    delivered: std::sync::atomic::AtomicU64,
    gaps: std::sync::atomic::AtomicU64,
    closed_slow: std::sync::atomic::AtomicU64,
    closed_other: std::sync::atomic::AtomicU64,
    max_seq: std::sync::atomic::AtomicU64,
    /// Delivery latency (client receipt − hub publish), 10 µs buckets up to 2 s, then overflow.
    latency: Vec<std::sync::atomic::AtomicU64>,
}

const LATENCY_BUCKET_US: i64 = 10;
const LATENCY_BUCKETS: usize = 200_000;

impl FanoutStats {
    fn new() -> FanoutStats {
        FanoutStats {
            measuring: Default::default(),
            delivered: Default::default(),
            gaps: Default::default(),
            closed_slow: Default::default(),
            closed_other: Default::default(),
            max_seq: Default::default(),
            latency: (0..=LATENCY_BUCKETS).map(|_| Default::default()).collect(),
        }
    }

    fn record(&self, latency_us: i64) {
        use std::sync::atomic::Ordering::Relaxed;
        let bucket = usize::try_from(latency_us.max(0) / LATENCY_BUCKET_US)
            .unwrap_or(LATENCY_BUCKETS)
            .min(LATENCY_BUCKETS);
        self.latency[bucket].fetch_add(1, Relaxed);
        self.delivered.fetch_add(1, Relaxed);
    }

    /// The latency (ms) below which `p` of the recorded deliveries fall.
    fn latency_ms(&self, p: f64) -> f64 {
        use std::sync::atomic::Ordering::Relaxed;
        let counts: Vec<u64> = self.latency.iter().map(|c| c.load(Relaxed)).collect();
        let total: u64 = counts.iter().sum();
        if total == 0 {
            return f64::NAN;
        }
        let wanted = ((total as f64) * p).ceil().max(1.0) as u64;
        let mut seen = 0;
        for (bucket, count) in counts.iter().enumerate() {
            seen += count;
            if seen >= wanted {
                return ((bucket as i64 + 1) * LATENCY_BUCKET_US) as f64 / 1000.0;
            }
        }
        f64::INFINITY
    }
}

/// A number after `"key":` in a JSON text (the hub writes `"seq":N,"ts_us":T` near the front).
fn json_number(text: &str, key: &str) -> Option<i64> {
    let at = text.find(key)? + key.len();
    let digits: String = text[at..]
        .chars()
        .take_while(|c| c.is_ascii_digit())
        .collect();
    digits.parse().ok()
}

fn now_us() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_micros() as i64)
        .unwrap_or(0)
}

/// One subscriber: reads until told to stop, timing every event and checking seq continuity
/// (unfiltered streams only).
async fn fanout_subscriber(
    url: String,
    token: String,
    contiguous: bool,
    stats: std::sync::Arc<FanoutStats>,
    mut stop: tokio::sync::watch::Receiver<bool>,
    connected: tokio::sync::mpsc::Sender<()>,
) {
    use futures_util::StreamExt;
    use std::sync::atomic::Ordering::Relaxed;
    use tokio_tungstenite::tungstenite::Message;
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;
    let Ok(mut request) = url.into_client_request() else {
        return;
    };
    if let Ok(value) = format!("Bearer {token}").parse() {
        request.headers_mut().insert("authorization", value);
    }
    let Ok((mut ws, _)) = tokio_tungstenite::connect_async(request).await else {
        stats.closed_other.fetch_add(1, Relaxed);
        let _ = connected.send(()).await;
        return;
    };
    let _ = connected.send(()).await;
    drop(connected);
    let mut last: Option<i64> = None;
    loop {
        let message = tokio::select! {
            message = ws.next() => message,
            _ = stop.changed() => return,
        };
        match message {
            Some(Ok(Message::Text(text))) => {
                let text = text.as_str();
                let Some(seq) = json_number(text, "\"seq\":") else {
                    continue;
                };
                stats.max_seq.fetch_max(seq as u64, Relaxed);
                if let Some(ts) = json_number(text, "\"ts_us\":") {
                    if stats.measuring.load(Relaxed) {
                        stats.record(now_us() - ts);
                    }
                    if contiguous && last.is_some_and(|last| seq != last + 1) {
                        stats.gaps.fetch_add(1, Relaxed);
                    }
                }
                last = Some(seq);
            }
            Some(Ok(Message::Close(frame))) => {
                if frame.is_some_and(|f| u16::from(f.code) == 4000) {
                    stats.closed_slow.fetch_add(1, Relaxed);
                } else {
                    stats.closed_other.fetch_add(1, Relaxed);
                }
                return;
            }
            Some(Ok(_)) => {}
            Some(Err(_)) | None => {
                stats.closed_other.fetch_add(1, Relaxed);
                return;
            }
        }
    }
}

/// The event source: `checks` exec checks every second, each printing `lines` lines (a run
/// publishes lines + 3 events: queued, started, the lines, finished). Noop checks would need
/// ~3,300 runs/s for 10,000 events/s, beyond the run queue's rate on this machine (scenario A).
fn printing_checks(checks: usize, lines: usize) -> String {
    let mut config = String::new();
    for i in 0..checks {
        config.push_str(&format!(
            "[[check]]\nname = \"print-{i}\"\nkind = \"exec\"\ncommand = [\"/usr/bin/seq\", \"1\", \"{lines}\"]\nevery = \"1s\"\n\n"
        ));
    }
    config
}

/// One fan-out round: `clients` subscribers (the i-th with `queries[i % len]`) on a hub running
/// [`printing_checks`].
fn fanout_round(clients: usize, checks: usize, lines: usize, queries: &[String], seconds: u64) {
    use std::sync::atomic::Ordering::Relaxed;
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let hub = start_hub(
        dir.path(),
        &printing_checks(checks, lines),
        &[("WARDEN_LOG", "warn,warden_hub::live=info")],
    );
    // Past the start-up burst (every check's current slot at once).
    std::thread::sleep(Duration::from_secs(10));
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap_or_else(|e| panic!("{e}"));
    let stats = std::sync::Arc::new(FanoutStats::new());
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let address = hub.url.trim_start_matches("http://").to_string();
    let query = |i: usize| {
        queries
            .get(i % queries.len().max(1))
            .cloned()
            .unwrap_or_default()
    };
    let connect_started = Instant::now();
    let tasks = runtime.block_on(async {
        let (connected_tx, mut connected_rx) = tokio::sync::mpsc::channel(clients.max(1));
        let mut tasks = Vec::new();
        for i in 0..clients {
            let query = query(i);
            tasks.push(tokio::spawn(fanout_subscriber(
                format!("ws://{address}/api/v1/events?{query}"),
                hub.token.clone(),
                query.is_empty(),
                std::sync::Arc::clone(&stats),
                stop_rx.clone(),
                connected_tx.clone(),
            )));
            // A few at a time: each gets a snapshot of every check first.
            if tasks.len() % 50 == 0 {
                for _ in 0..50 {
                    let _ = connected_rx.recv().await;
                }
            }
        }
        drop(connected_tx);
        while connected_rx.recv().await.is_some() {}
        tasks
    });
    let connect_s = connect_started.elapsed().as_secs_f64();
    std::thread::sleep(Duration::from_secs(5));
    let seq0 = stats.max_seq.load(Relaxed);
    let hub0 = cpu_ticks(hub.child.id());
    let self0 = cpu_ticks(std::process::id());
    let closed0 = stats.closed_slow.load(Relaxed) + stats.closed_other.load(Relaxed);
    let t0 = Instant::now();
    stats.measuring.store(true, Relaxed);
    std::thread::sleep(Duration::from_secs(seconds));
    stats.measuring.store(false, Relaxed);
    let window = t0.elapsed().as_secs_f64();
    let hub1 = cpu_ticks(hub.child.id());
    let self1 = cpu_ticks(std::process::id());
    let seq1 = stats.max_seq.load(Relaxed);
    let _ = stop_tx.send(true);
    runtime.block_on(async {
        for task in tasks {
            let _ = task.await;
        }
    });
    let tick = clock_ticks_per_second();
    let published = (seq1 - seq0) as f64 / window;
    let delivered = stats.delivered.load(Relaxed) as f64 / window;
    let slow = stats.closed_slow.load(Relaxed);
    let other = stats.closed_other.load(Relaxed);
    println!();
    println!(
        "### {clients} subscribers{}; {checks} exec checks every 1s printing {lines} lines each; {seconds}s",
        if query(0).is_empty() {
            " (unfiltered)".to_string()
        } else {
            format!(" each with its own filter, e.g. `?{}`", query(0))
        }
    );
    println!(
        "connected in {connect_s:.1}s; events published: {published:.0}/s; delivered to clients: {delivered:.0}/s ({:.0} per subscriber per s)",
        delivered / clients.max(1) as f64
    );
    println!(
        "delivery latency (publish -> client receipt): p50 {:.2} ms  p99 {:.2} ms  p99.9 {:.2} ms",
        stats.latency_ms(0.5),
        stats.latency_ms(0.99),
        stats.latency_ms(0.999)
    );
    println!(
        "hub CPU {:.0}% of one core; bench clients' CPU {:.0}% of one core (same 2 cores)",
        100.0 * (hub1 - hub0) as f64 / tick / window,
        100.0 * (self1 - self0) as f64 / tick / window
    );
    println!(
        "closed as too slow (4000): {slow}; other closes/errors: {other} ({} during the window); seq gaps seen by unfiltered clients: {}",
        slow + other - closed0,
        stats.gaps.load(Relaxed)
    );
}

fn live_fanout() {
    let clients = env_u64("WARDEN_BENCH_LIVE_CLIENTS", 1_000) as usize;
    let checks = env_u64("WARDEN_BENCH_LIVE_CHECKS", 100) as usize;
    let lines = env_u64("WARDEN_BENCH_LIVE_LINES", 100) as usize;
    let seconds = env_u64("WARDEN_BENCH_LIVE_S", 20);
    println!();
    println!("## G. Live fan-out over WebSocket (/api/v1/events)");
    // Each subscriber follows one check (all its kinds, like `warden logs -f`): the hub still
    // hands every event to every connection to filter.
    let one_check: Vec<String> = (0..checks).map(|i| format!("checks=print-{i}")).collect();
    let rounds = std::env::var("WARDEN_BENCH_LIVE_ROUNDS").unwrap_or_else(|_| "1234".into());
    if rounds.contains('1') {
        fanout_round(clients, checks, lines, &one_check, seconds);
    }
    // Unfiltered: a tenth of the events to every client, every event to a tenth of the clients,
    // then everything to everyone.
    let everything = [String::new()];
    if rounds.contains('2') {
        fanout_round(clients, checks / 10, lines, &everything, seconds);
    }
    if rounds.contains('3') {
        fanout_round(clients / 10, checks, lines, &everything, seconds);
    }
    if rounds.contains('4') {
        fanout_round(clients, checks, lines, &everything, seconds);
    }
}

/// J. `GET /api/v1/checks` on a hub with 10,000 checks and 10 M samples of history, with `wrk`,
/// beside the same hub's health endpoint in the same run.
fn checks_listing() {
    if Command::new("wrk").arg("--version").output().is_err() {
        println!("\n## J. checks listing: SKIPPED (wrk is not installed: apt-get install wrk)");
        return;
    }
    let checks = env_u64("WARDEN_BENCH_CHECKS", 10_000);
    let samples_total = env_u64("WARDEN_BENCH_HISTORY", 10_000_000);
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let mut config = String::new();
    for i in 0..checks {
        config.push_str(&format!(
            "[[check]]\nname = \"svc-{i}\"\nkind = \"noop\"\nevery = \"1h\"\nlabels = {{ team = \"t{}\" }}\n\n",
            i % 10
        ));
    }
    // History first, written straight into the store the hub will open.
    let parsed = warden_core::config::parse_config("bench.toml", &config, &|_| None)
        .unwrap_or_else(|e| panic!("{e}"));
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap_or_else(|e| panic!("{e}"));
    let filled = Instant::now();
    runtime.block_on(async {
        let store = warden_store::Store::open(
            &dir.path().join("data"),
            warden_store::StoreOptions::default(),
        )
        .unwrap_or_else(|e| panic!("{e}"));
        let checks_config = parsed.checks.clone();
        store
            .write(move |conn| {
                warden_store::checks::sync(conn, &checks_config, warden_store::now_ms())
            })
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        let series_count = 1_000i64;
        let ids: Vec<i64> = store
            .write(move |conn| {
                (0..series_count)
                    .map(|i| {
                        warden_store::samples::resolve_series(
                            conn,
                            &format!("svc-{i}.response_time"),
                            "{}",
                        )
                    })
                    .collect::<Result<Vec<_>, _>>()
            })
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        let start = warden_store::now_ms() - samples_total as i64 / series_count * 10_000;
        let per_batch = 50_000u64;
        let mut written = 0u64;
        while written < samples_total {
            let ids = ids.clone();
            let first = written;
            store
                .write(move |conn| {
                    let batch: Vec<warden_store::samples::Sample> = (first..first + per_batch)
                        .map(|n| warden_store::samples::Sample {
                            series_id: ids[(n % series_count as u64) as usize],
                            ts: start + (n / series_count as u64) as i64 * 10_000,
                            value: (n % 997) as f64,
                        })
                        .collect();
                    warden_store::samples::insert(conn, &batch)
                })
                .await
                .unwrap_or_else(|e| panic!("{e}"));
            written += per_batch;
        }
        store.close().await;
    });
    let fill_seconds = filled.elapsed().as_secs_f64();
    let path = dir.path().join("warden.toml");
    std::fs::write(&path, &config).unwrap_or_else(|e| panic!("{e}"));
    let hub = start_hub(dir.path(), &config, &[]);
    // The first start made the admin token; a later start prints none: make one for the run.
    let token = if hub.token.is_empty() {
        panic!("no admin token: the store was opened before the hub made one")
    } else {
        hub.token.clone()
    };
    std::thread::sleep(Duration::from_secs(3));
    let seconds = 10;
    let health = wrk_with(&format!("{}/api/v1/health", hub.url), seconds, 16, None);
    let page = wrk_with(
        &format!("{}/api/v1/checks", hub.url),
        seconds,
        16,
        Some(&token),
    );
    let all = wrk_with(
        &format!("{}/api/v1/checks?limit=10000", hub.url),
        seconds,
        16,
        Some(&token),
    );
    let label = wrk_with(
        &format!("{}/api/v1/checks?label=team%3Dt3&status=ok", hub.url),
        seconds,
        16,
        Some(&token),
    );
    let page_one = wrk_with(
        &format!("{}/api/v1/checks", hub.url),
        seconds,
        1,
        Some(&token),
    );
    let health_one = wrk_with(&format!("{}/api/v1/health", hub.url), seconds, 1, None);
    println!();
    println!(
        "## J. GET /api/v1/checks: {checks} checks, {samples_total} samples of history (filled in {fill_seconds:.0}s), wrk 2 threads 16 connections {seconds}s each"
    );
    for (what, figures) in [
        ("GET /api/v1/health", health),
        ("GET /api/v1/checks (default page, 1,000)", page),
        ("GET /api/v1/checks?limit=10000 (all)", all),
        ("GET /api/v1/checks?label=team=t3&status=ok", label),
        ("GET /api/v1/health, 1 connection", health_one),
        ("GET /api/v1/checks (default page), 1 connection", page_one),
    ] {
        if let Some((rate, p99)) = figures {
            println!("{what}: {rate:.0} req/s, p99 {p99:.2} ms");
        }
    }
}

/// H: what rule evaluation costs, in-process and inside a real hub.
fn alerting_cpu() {
    println!();
    println!("## H. alerting CPU");
    match warden_hub::alerting::bench::synthetic_evaluation(10_000, 1_000, 600) {
        Ok(report) => println!(
            "engine in-process: {} runs + {} samples over {}s simulated, {} actions: {:.3}s of CPU = {:.3}% of one core",
            report.runs,
            report.samples,
            report.simulated.as_secs(),
            report.actions,
            report.elapsed.as_secs_f64(),
            100.0 * report.elapsed.as_secs_f64() / report.simulated.as_secs_f64()
        ),
        Err(error) => println!("engine in-process: cannot build the config: {error}"),
    }
    let checks = env_u64("WARDEN_BENCH_CHECKS", 10_000);
    let steady = env_u64("WARDEN_BENCH_STEADY_S", 60);
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let mut config = String::from(
        "[[notifier]]\nname = \"ops\"\nkind = \"webhook\"\nurl = \"http://127.0.0.1:9/x\"\ndefault = true\n\n",
    );
    for i in 0..checks {
        config.push_str(&format!(
            "[[check]]\nname = \"noop-{i}\"\nkind = \"noop\"\nevery = \"10s\"\n\n"
        ));
    }
    for j in 0..1_000 {
        config.push_str(&format!(
            "[[rule]]\nname = \"series-{j}\"\nexpr = \"noop-{j}.value > 90\"\nfor = \"1m\"\n\n"
        ));
    }
    let hub = start_hub(dir.path(), &config, &[]);
    std::thread::sleep(Duration::from_secs(15));
    let before = get(&hub, "/api/v1/alerting");
    let t0 = now_ms();
    let ticks0 = cpu_ticks(hub.child.id());
    std::thread::sleep(Duration::from_secs(steady));
    let ticks1 = cpu_ticks(hub.child.id());
    let t1 = now_ms();
    let after = get(&hub, "/api/v1/alerting");
    let wall = (t1 - t0) as f64 / 1000.0;
    let delta = |key: &str| after[key].as_u64().unwrap_or(0) - before[key].as_u64().unwrap_or(0);
    let nanos = delta("evaluation_nanos") as f64;
    let hub_cpu = (ticks1 - ticks0) as f64 / clock_ticks_per_second() / wall * 100.0;
    println!(
        "real hub, {checks} noop checks every 10s + 1,000 series rules, steady {steady}s: {} runs evaluated, alerter {:.3}% of one core ({:.1} us per run); whole hub {hub_cpu:.1}%",
        delta("runs_evaluated"),
        100.0 * nanos / 1e9 / wall,
        nanos / 1e3 / delta("runs_evaluated").max(1) as f64
    );
}

/// A webhook receiver on a thread: answers 200, reports (receipt ms, body) of each request.
fn page_receiver() -> (String, std::sync::mpsc::Receiver<(i64, Value)>) {
    use std::io::{Read as _, Write as _};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap_or_else(|e| panic!("{e}"));
    let url = format!(
        "http://{}",
        listener.local_addr().unwrap_or_else(|e| panic!("{e}"))
    );
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let tx = tx.clone();
            // A thread per connection: the hub keeps connections alive between pages.
            std::thread::spawn(move || {
                let Ok(clone) = stream.try_clone() else {
                    return;
                };
                let mut reader = BufReader::new(clone);
                loop {
                    let mut line = String::new();
                    if reader.read_line(&mut line).map_or(true, |n| n == 0) {
                        return;
                    }
                    let mut length = 0usize;
                    loop {
                        let mut header = String::new();
                        if reader.read_line(&mut header).is_err() || header.trim().is_empty() {
                            break;
                        }
                        if let Some((name, value)) = header.split_once(':')
                            && name.trim().eq_ignore_ascii_case("content-length")
                        {
                            length = value.trim().parse().unwrap_or(0);
                        }
                    }
                    let mut body = vec![0u8; length];
                    if reader.read_exact(&mut body).is_err() {
                        return;
                    }
                    let at = now_ms();
                    if stream
                        .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok")
                        .is_err()
                    {
                        return;
                    }
                    let body = serde_json::from_slice(&body).unwrap_or(Value::Null);
                    if tx.send((at, body)).is_err() {
                        return;
                    }
                }
            });
        }
    });
    (url, rx)
}

/// I: from a recorded crit result to the webhook receiver holding the incident.
fn page_latency() {
    let pages = env_u64("WARDEN_BENCH_PAGES", 300);
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let (receiver, received) = page_receiver();
    let mut config = format!(
        "[[notifier]]\nname = \"ops\"\nkind = \"webhook\"\nurl = \"{receiver}/page\"\n\n[[rule]]\nname = \"job-failed\"\nchecks = [\"job-*\"]\nfailure_threshold = 1\nnotify = [\"ops\"]\n\n"
    );
    for i in 0..pages {
        config.push_str(&format!(
            "[[check]]\nname = \"job-{i}\"\nkind = \"heartbeat\"\nperiod = \"1h\"\n\n"
        ));
    }
    let hub = start_hub(dir.path(), &config, &[]);
    let checks = get(&hub, "/api/v1/checks");
    let ping_urls: std::collections::HashMap<String, String> = checks["checks"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .iter()
        .filter_map(|check| {
            Some((
                check["name"].as_str()?.to_string(),
                check["heartbeat"]["ping_url"].as_str()?.to_string(),
            ))
        })
        .collect();
    let http = client();
    let mut latencies = Vec::new();
    for i in 0..pages {
        let name = format!("job-{i}");
        let Some(url) = ping_urls.get(&name) else {
            continue;
        };
        let sent = now_ms();
        if http.get(format!("{url}/fail")).send().is_err() {
            continue;
        }
        // The incident's page, then its resolution once the job pings success again.
        loop {
            let Ok((at, body)) = received.recv_timeout(Duration::from_secs(10)) else {
                println!("no page for {name} within 10s");
                break;
            };
            if body["incident"]["subject"] == name.as_str() && body["event"] == "opened" {
                latencies.push((at - sent) as f64);
                break;
            }
        }
        let _ = http.get(url).send();
        while let Ok((_, body)) = received.recv_timeout(Duration::from_secs(10)) {
            if body["incident"]["subject"] == name.as_str() && body["event"] == "resolved" {
                break;
            }
        }
    }
    latencies.sort_by(|a, b| a.total_cmp(b));
    println!();
    println!(
        "## I. page latency, {} incidents one at a time",
        latencies.len()
    );
    println!(
        "fail ping sent -> webhook received (ms): p50 {:.0}  p99 {:.0}  max {:.0}",
        percentile(&latencies, 0.5),
        percentile(&latencies, 0.99),
        latencies.last().copied().unwrap_or(f64::NAN)
    );
}
