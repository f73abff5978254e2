//! Checks run by themselves: real monitoring-plugins through a real hub, timeouts that kill the
//! whole process tree, the default host checks of `warden up`, and the CLI against it all.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::harness::{Api, Hub, temp_dir, warden_bin};

const PLUGINS: &str = "/usr/lib/nagios/plugins";

/// The plugins must be here in CI; elsewhere a test without them says so and skips.
fn plugins_present() -> bool {
    if Path::new(PLUGINS).join("check_dummy").is_file() {
        return true;
    }
    assert!(
        std::env::var("WARDEN_REQUIRE_SERVICES").as_deref() != Ok("1"),
        "monitoring-plugins-basic is not installed but WARDEN_REQUIRE_SERVICES=1"
    );
    eprintln!(
        "SKIPPED: monitoring-plugins-basic is not installed ({PLUGINS}); apt-get install monitoring-plugins-basic"
    );
    false
}

/// Polls `probe` until it returns Some, failing after `within`.
pub fn wait_for<T>(within: Duration, what: &str, mut probe: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + within;
    loop {
        if let Some(value) = probe() {
            return value;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn checks_by_name(api: &Api) -> Vec<(String, Value)> {
    let (_, body) = api.get("/api/v1/checks").unwrap_or_else(|e| panic!("{e}"));
    body["checks"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .into_iter()
        .map(|check| {
            (
                check["name"].as_str().unwrap_or_default().to_string(),
                check,
            )
        })
        .collect()
}

/// Waits until every named check has a recorded status; returns them by name.
fn wait_for_statuses(api: &Api, names: &[&str]) -> std::collections::BTreeMap<String, Value> {
    wait_for(Duration::from_secs(60), "every check to report", || {
        let checks: std::collections::BTreeMap<String, Value> =
            checks_by_name(api).into_iter().collect();
        names
            .iter()
            .all(|name| checks.get(*name).is_some_and(|c| !c["status"].is_null()))
            .then_some(checks)
    })
}

fn write_config(dir: &Path, body: &str) -> String {
    let path = dir.join("warden.toml");
    std::fs::write(&path, body).unwrap_or_else(|e| panic!("{e}"));
    path.display().to_string()
}

/// The samples the hub should derive from a plugin's first output line, computed here
/// independently: `<check>.<label>` in base units (bytes, seconds).
fn expected_samples(check: &str, first_line: &str) -> Vec<(String, f64)> {
    let perfdata = first_line.split_once('|').map(|(_, p)| p).unwrap_or("");
    perfdata
        .split_whitespace()
        .filter_map(|item| {
            let (label, rest) = item.split_once('=')?;
            let value = rest.split(';').next()?;
            let unit_at = value
                .find(|c: char| !(c.is_ascii_digit() || c == '.' || c == '-'))
                .unwrap_or(value.len());
            let (number, unit) = value.split_at(unit_at);
            let number: f64 = number.parse().ok()?;
            let factor = match unit {
                "" | "%" | "c" | "B" | "s" => 1.0,
                "ms" => 1e-3,
                "KB" => 1024.0,
                "MB" => 1024.0 * 1024.0,
                "GB" => 1024.0 * 1024.0 * 1024.0,
                other => panic!("unit {other} not covered by this test"),
            };
            Some((
                format!("{check}.{}", label.trim_matches('\'')),
                number * factor,
            ))
        })
        .collect()
}

fn run_samples(api: &Api, run_id: i64) -> (Vec<(String, f64)>, Vec<String>) {
    let (_, run) = api
        .get(&format!("/api/v1/runs/{run_id}"))
        .unwrap_or_else(|e| panic!("{e}"));
    let samples = run["result"]["perfdata"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .iter()
        .map(|s| {
            (
                s["series"].as_str().unwrap_or_default().to_string(),
                s["value"].as_f64().unwrap_or(f64::NAN),
            )
        })
        .collect();
    let (_, output) = api
        .get(&format!("/api/v1/runs/{run_id}/output"))
        .unwrap_or_else(|e| panic!("{e}"));
    let lines = output["lines"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .iter()
        .map(|l| l["line"].as_str().unwrap_or_default().to_string())
        .collect();
    (samples, lines)
}

#[test]
fn real_plugins_run_by_themselves_through_a_real_hub() {
    if !plugins_present() {
        return;
    }
    let dir = temp_dir();
    let open = std::net::TcpListener::bind("127.0.0.1:0").unwrap_or_else(|e| panic!("{e}"));
    let open_port = open.local_addr().map(|a| a.port()).unwrap_or(0);
    let closed_port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .unwrap_or(1);
    let config = write_config(
        dir.path(),
        &format!(
            r#"
[[check]]
name = "dummy-ok"
kind = "exec"
command = ["{PLUGINS}/check_dummy", "0", "all good"]
every = "1h"

[[check]]
name = "dummy-warn"
kind = "exec"
command = ["{PLUGINS}/check_dummy", "1", "getting full"]
every = "1h"

[[check]]
name = "dummy-crit"
kind = "exec"
command = ["{PLUGINS}/check_dummy", "2", "on fire"]
every = "1h"

[[check]]
name = "dummy-unknown"
kind = "exec"
command = ["{PLUGINS}/check_dummy", "3", "who knows"]
every = "1h"

[[check]]
name = "tcp-open"
kind = "exec"
command = ["{PLUGINS}/check_tcp", "-H", "127.0.0.1", "-p", "{open_port}"]
every = "1h"

[[check]]
name = "tcp-closed"
kind = "exec"
command = ["{PLUGINS}/check_tcp", "-H", "127.0.0.1", "-p", "{closed_port}"]
every = "1h"

[[check]]
name = "disk"
kind = "exec"
command = ["{PLUGINS}/check_disk", "-w", "1%", "-c", "0%", "-p", "/"]
every = "1h"

[[check]]
name = "load"
kind = "exec"
command = ["{PLUGINS}/check_load", "-w", "500,500,500", "-c", "900,900,900"]
every = "1h"
"#
        ),
    );
    let hub = Hub::start(&dir.path().join("data"), &["--config", &config]);
    let api = Api::new(&hub.url, hub.new_token.as_deref().unwrap_or_default());
    let names = [
        "dummy-ok",
        "dummy-warn",
        "dummy-crit",
        "dummy-unknown",
        "tcp-open",
        "tcp-closed",
        "disk",
        "load",
    ];
    // No one asks them to run: the scheduler runs each check's current slot at start.
    let checks = wait_for_statuses(&api, &names);
    let status_and_summary = |name: &str| {
        let check = &checks[name];
        (
            check["status"].as_str().unwrap_or_default().to_string(),
            check["summary"].as_str().unwrap_or_default().to_string(),
        )
    };
    assert_eq!(
        status_and_summary("dummy-ok"),
        ("ok".into(), "OK: all good".into())
    );
    assert_eq!(
        status_and_summary("dummy-warn"),
        ("warn".into(), "WARNING: getting full".into())
    );
    assert_eq!(
        status_and_summary("dummy-crit"),
        ("crit".into(), "CRITICAL: on fire".into())
    );
    assert_eq!(
        status_and_summary("dummy-unknown"),
        ("unknown".into(), "UNKNOWN: who knows".into())
    );
    let (status, summary) = status_and_summary("tcp-open");
    assert_eq!(status, "ok");
    assert!(
        summary.starts_with("TCP OK - ")
            && summary.ends_with(&format!("on 127.0.0.1 port {open_port}")),
        "{summary}"
    );
    assert_eq!(
        status_and_summary("tcp-closed"),
        (
            "crit".into(),
            format!("connect to address 127.0.0.1 and port {closed_port}: Connection refused")
        )
    );
    assert_eq!(status_and_summary("disk").0, "ok");
    assert_eq!(status_and_summary("load").0, "ok");

    // Samples: exactly what the plugin printed, parsed independently here, in base units.
    for name in ["disk", "load", "tcp-open"] {
        let run_id = checks[name]["last_run_id"].as_i64().unwrap_or(0);
        let (samples, lines) = run_samples(&api, run_id);
        let first = lines.first().cloned().unwrap_or_default();
        let expected = expected_samples(name, &first);
        assert!(!expected.is_empty(), "{name} printed no perfdata: {first}");
        assert_eq!(
            samples.len(),
            expected.len(),
            "{name}: {samples:?} vs {expected:?}"
        );
        for ((series, value), (want_series, want_value)) in samples.iter().zip(&expected) {
            assert_eq!(series, want_series);
            assert!(
                (value - want_value).abs() <= want_value.abs() * 1e-9,
                "{series}: {value} != {want_value}"
            );
        }
    }
    let load_series: Vec<String> =
        run_samples(&api, checks["load"]["last_run_id"].as_i64().unwrap_or(0))
            .0
            .into_iter()
            .map(|(s, _)| s)
            .collect();
    assert_eq!(load_series, ["load.load1", "load.load5", "load.load15"]);
    drop(open);
}

#[test]
fn a_timed_out_check_is_killed_with_every_descendant() {
    let dir = temp_dir();
    let pids = dir.path().display().to_string();
    let config = write_config(
        dir.path(),
        &format!(
            r#"
[[check]]
name = "hangs"
kind = "exec"
command = ["sh", "-c", "sh -c 'sleep 300 & echo $! > {pids}/grandchild.pid; wait' & echo $! > {pids}/child.pid; echo started; wait"]
every = "1h"
timeout = "1s"
"#
        ),
    );
    let hub = Hub::start(&dir.path().join("data"), &["--config", &config]);
    let api = Api::new(&hub.url, hub.new_token.as_deref().unwrap_or_default());
    let checks = wait_for_statuses(&api, &["hangs"]);
    assert_eq!(checks["hangs"]["status"], "unknown");
    assert_eq!(
        checks["hangs"]["summary"],
        "timed out after 1s; the process group was killed"
    );
    for file in ["child.pid", "grandchild.pid"] {
        let pid: u32 = std::fs::read_to_string(dir.path().join(file))
            .unwrap_or_default()
            .trim()
            .parse()
            .unwrap_or(0);
        assert!(pid > 0, "{file} not written");
        wait_for(
            Duration::from_secs(10),
            &format!("{file} ({pid}) to be gone"),
            || {
                let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
                // Gone, or a zombie waiting for init to reap it: either way no longer running.
                (stat.is_empty()
                    || stat
                        .split(") ")
                        .nth(1)
                        .is_some_and(|rest| rest.starts_with('Z')))
                .then_some(())
            },
        );
    }
    let run_id = checks["hangs"]["last_run_id"].as_i64().unwrap_or(0);
    let (_, lines) = run_samples(&api, run_id);
    assert_eq!(lines, ["started"], "output before the kill is kept");
}

#[test]
fn up_with_no_config_watches_this_host() {
    let dir = temp_dir();
    let hub = Hub::start(&dir.path().join("data"), &[]);
    let api = Api::new(&hub.url, hub.new_token.as_deref().unwrap_or_default());
    let checks = wait_for_statuses(&api, &["host.disk", "host.load", "host.swap"]);
    for name in ["host.disk", "host.load", "host.swap"] {
        let summary = checks[name]["summary"].as_str().unwrap_or_default();
        assert!(
            !summary.is_empty() && !summary.contains("cannot run"),
            "{name}: {summary}"
        );
        assert_ne!(checks[name]["status"], "unknown", "{name}: {summary}");
    }
    let run_id = checks["host.load"]["last_run_id"].as_i64().unwrap_or(0);
    let series: Vec<String> = run_samples(&api, run_id)
        .0
        .into_iter()
        .map(|(s, _)| s)
        .collect();
    assert_eq!(
        series,
        ["host.load.load1", "host.load.load5", "host.load.load15"]
    );

    // The builtin host check: series in base units, cross-checked against /proc.
    let checks = wait_for_statuses(&api, &["host"]);
    assert_ne!(checks["host"]["status"], "unknown", "{}", checks["host"]);
    let run_id = checks["host"]["last_run_id"].as_i64().unwrap_or(0);
    let samples: std::collections::BTreeMap<String, f64> =
        run_samples(&api, run_id).0.into_iter().collect();
    let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
    let mem_total_kb: f64 = meminfo
        .lines()
        .find_map(|line| line.strip_prefix("MemTotal:"))
        .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0.0);
    assert_eq!(
        samples.get("host.mem.total"),
        Some(&(mem_total_kb * 1024.0))
    );
    for series in [
        "host.cpu.total",
        "host.mem.used_percent",
        "host.load.1",
        "host.uptime",
        "host.procs",
        "host.disk.root.used_percent",
    ] {
        assert!(
            samples.contains_key(series),
            "{series} missing: {samples:?}"
        );
    }
    let summary = checks["host"]["summary"].as_str().unwrap_or_default();
    assert!(summary.contains("mem"), "{summary}");
}

fn cli(hub: &Hub, args: &[&str]) -> (Option<i32>, String, String) {
    let output = Command::new(warden_bin())
        .args(args)
        .env("WARDEN_URL", &hub.url)
        .env("WARDEN_TOKEN", hub.new_token.as_deref().unwrap_or_default())
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("{e}"));
    (
        output.status.code(),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

#[test]
fn the_cli_lists_runs_and_waits_for_results() {
    let dir = temp_dir();
    let config = write_config(
        dir.path(),
        r#"
[[check]]
name = "fine"
kind = "exec"
command = ["sh", "-c", "echo 'FINE - all quiet|latency=25ms;100;200;0; size=2KB'; echo 'second line'"]
every = "1h"

[[check]]
name = "broken"
kind = "exec"
command = ["sh", "-c", "echo 'BROKEN - disk on fire'; echo 'details on stderr' >&2; exit 2"]
every = "1h"
"#,
    );
    let hub = Hub::start(&dir.path().join("data"), &["--config", &config]);
    let api = Api::new(&hub.url, hub.new_token.as_deref().unwrap_or_default());
    wait_for_statuses(&api, &["fine", "broken"]);

    // `warden checks`: a human table, and JSON for scripts.
    let (code, stdout, stderr) = cli(&hub, &["checks"]);
    assert_eq!(code, Some(0), "{stderr}");
    let header = stdout.lines().next().unwrap_or_default();
    assert!(
        header.starts_with("NAME") && header.contains("STATUS") && header.contains("SUMMARY"),
        "{stdout}"
    );
    let row = |name: &str| {
        stdout
            .lines()
            .find(|l| l.starts_with(name))
            .unwrap_or_default()
            .to_string()
    };
    assert!(
        row("broken").contains("CRIT") && row("broken").contains("BROKEN - disk on fire"),
        "{stdout}"
    );
    assert!(
        row("fine").contains("OK") && row("fine").contains("FINE - all quiet"),
        "{stdout}"
    );
    let (code, stdout, _) = cli(&hub, &["checks", "--json", "--status", "crit"]);
    assert_eq!(code, Some(0));
    let parsed: Value = serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("{e}: {stdout}"));
    let names: Vec<&str> = parsed
        .as_array()
        .map(|a| a.iter().filter_map(|c| c["name"].as_str()).collect())
        .unwrap_or_default();
    assert_eq!(names, ["broken"], "{stdout}");

    // `warden run NAME --wait` prints the result and exits with its Nagios code.
    let (code, stdout, stderr) = cli(&hub, &["run", "broken", "--wait"]);
    assert_eq!(code, Some(2), "{stdout}{stderr}");
    assert!(stdout.contains("BROKEN - disk on fire"), "{stdout}");
    let (code, stdout, _) = cli(&hub, &["run", "fine", "--wait", "--json"]);
    assert_eq!(code, Some(0));
    let run: Value = serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("{e}: {stdout}"));
    assert_eq!(run["status"], "ok");
    assert_eq!(run["summary"], "FINE - all quiet");
    let run_id = run["id"].as_i64().unwrap_or(0);
    let perfdata: Vec<(String, f64)> = run["result"]["perfdata"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .iter()
        .map(|s| {
            (
                s["series"].as_str().unwrap_or_default().to_string(),
                s["value"].as_f64().unwrap_or(0.0),
            )
        })
        .collect();
    assert_eq!(
        perfdata,
        [
            ("fine.latency".to_string(), 0.025),
            ("fine.size".to_string(), 2048.0)
        ]
    );

    // `warden logs RUN` prints the run's output, stdout and stderr in order, right after --wait.
    let (code, stdout, _) = cli(&hub, &["logs", &run_id.to_string()]);
    assert_eq!(code, Some(0));
    assert_eq!(
        stdout,
        "FINE - all quiet|latency=25ms;100;200;0; size=2KB\nsecond line\n"
    );

    // `warden runs --check NAME`: newest first, the forced run on top.
    let (code, stdout, _) = cli(&hub, &["runs", "--check", "fine", "--json"]);
    assert_eq!(code, Some(0));
    let page: Value = serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("{e}: {stdout}"));
    let runs = page["runs"]
        .as_array()
        .cloned()
        .or_else(|| page.as_array().cloned())
        .unwrap_or_default();
    assert_eq!(runs.len(), 2, "{stdout}");
    assert_eq!(runs[0]["id"].as_i64(), Some(run_id));

    // Bad query parameters are a 400 naming the problem, never a 500.
    for (path, needle) in [
        ("/api/v1/runs?limit=abc", "limit"),
        ("/api/v1/runs?limit=0", "limit: must be between 1 and 1000"),
        ("/api/v1/runs?bogus=1", "unknown field `bogus`"),
        ("/api/v1/runs?state=sideways", "state: must be one of"),
        ("/api/v1/checks?status=purple", "status: must be one of"),
        ("/api/v1/runs/abc", "`abc` is not a run id"),
        ("/api/v1/runs/999999", "run 999999 not found"),
    ] {
        let (status, body) = api.get(path).unwrap_or_else(|e| panic!("{e}"));
        let message = body["error"]["message"].as_str().unwrap_or_default();
        assert!(status == 400 || status == 404, "{path}: {status} {body}");
        assert!(message.contains(needle), "{path}: {message}");
    }

    // Errors: an unknown check and a bad token are clear, with documented exit codes.
    let (code, _, stderr) = cli(&hub, &["run", "nope"]);
    assert_eq!(code, Some(1));
    assert_eq!(stderr.trim(), "error: check `nope` not found");
    let (code, _, stderr) = cli(&hub, &["run", "nope", "--wait"]);
    assert_eq!(code, Some(3), "no result is UNKNOWN to Nagios: {stderr}");
    let output = Command::new(warden_bin())
        .args(["checks", "--url", &hub.url, "--token", "wdn_wrong"])
        .env_remove("WARDEN_TOKEN")
        .output()
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(output.status.code(), Some(1));
    assert_eq!(
        String::from_utf8_lossy(&output.stderr).trim(),
        "error: invalid, expired or revoked token"
    );
}

/// A check whose runs keep its status: its row in the store is written only when the status
/// changes (its last runs follow in lots), yet the API shows every run as its last at once, and
/// a hub killed with SIGKILL shows the latest run again after its restart.
#[test]
fn a_steady_check_shows_every_run_at_once_and_again_after_a_crash() {
    let dir = temp_dir();
    let config = write_config(
        dir.path(),
        r#"
[[check]]
name = "steady"
kind = "exec"
command = ["sh", "-c", "echo \"OK - pid $$\""]
every = "1h"
"#,
    );
    let data = dir.path().join("data");
    let mut hub = Hub::start(&data, &["--config", &config]);
    let token = hub.new_token.clone().unwrap_or_default();
    let api = Api::new(&hub.url, &token);
    // The slot due at start runs first; then three runs by hand, each ok with its own summary.
    wait_for(Duration::from_secs(30), "the first run", || {
        let (_, check) = api.get("/api/v1/checks/steady").ok()?;
        check["last_run_id"].as_i64()
    });
    let listed = |api: &Api| {
        let (_, body) = api.get("/api/v1/checks").unwrap_or_else(|e| panic!("{e}"));
        body["checks"]
            .as_array()
            .and_then(|checks| checks.iter().find(|c| c["name"] == "steady").cloned())
            .unwrap_or(Value::Null)
    };
    let mut summaries = Vec::new();
    let mut last = (0, String::new());
    for _ in 0..3 {
        let (code, stdout, stderr) = cli(&hub, &["run", "steady", "--wait", "--json"]);
        assert_eq!(code, Some(0), "{stdout}{stderr}");
        let run: Value = serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("{e}: {stdout}"));
        let id = run["id"].as_i64().unwrap_or(0);
        let summary = run["summary"].as_str().unwrap_or_default().to_string();
        assert!(summary.starts_with("OK - pid "), "{summary}");
        // The run is on the bus as soon as it is stored (a moment after `--wait` may have
        // read it); the stored row would lag by up to 30 s.
        let shown = |check: &Value| {
            (
                check["status"].as_str().map(str::to_string),
                check["last_run_id"].as_i64(),
                check["summary"].as_str().map(str::to_string),
            )
        };
        let expected = (Some("ok".to_string()), Some(id), Some(summary.clone()));
        wait_for(Duration::from_secs(1), "the run shown as the last", || {
            let (_, one) = api.get("/api/v1/checks/steady").ok()?;
            (shown(&one) == expected && shown(&listed(&api)) == expected).then_some(())
        });
        summaries.push(summary.clone());
        last = (id, summary);
    }
    summaries.dedup();
    assert_eq!(summaries.len(), 3, "each run printed its own pid");

    hub.signal("KILL");
    assert_eq!(hub.wait_exit(Duration::from_secs(10)), None);
    let hub = Hub::start(&data, &["--config", &config]);
    let api = Api::new(&hub.url, &token);
    for check in [
        api.get("/api/v1/checks/steady")
            .unwrap_or_else(|e| panic!("{e}"))
            .1,
        listed(&api),
    ] {
        assert_eq!(
            (
                check["status"].as_str(),
                check["last_run_id"].as_i64(),
                check["summary"].as_str()
            ),
            (Some("ok"), Some(last.0), Some(last.1.as_str())),
            "{check}"
        );
    }
    drop(hub);
}
