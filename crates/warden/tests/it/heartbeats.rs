//! Heartbeats driven by real `curl` commands as a cron user writes them, through a real hub:
//! success, `/start` then `/$?` with `rid=`, `/fail`, `/log`, bodies kept (and cut), grace
//! running out to late and down and back to up, and bad input that changes nothing.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use serde_json::Value;

use crate::checks::wait_for;
use crate::harness::{Api, Hub, temp_dir, warden_bin};

/// `curl` must be here in CI; elsewhere the test says so and skips.
fn curl_present() -> bool {
    let found = Command::new("curl")
        .arg("--version")
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !found {
        assert!(
            std::env::var("WARDEN_REQUIRE_SERVICES").as_deref() != Ok("1"),
            "curl is not installed but WARDEN_REQUIRE_SERVICES=1"
        );
        eprintln!("SKIPPED: curl is not installed; apt-get install curl");
    }
    found
}

/// Runs a shell line (as a crontab entry would) and returns its exit code and stdout.
fn sh(line: &str) -> (i32, String) {
    let output = Command::new("sh")
        .arg("-c")
        .arg(line)
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("sh: {e}"));
    (
        output.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&output.stdout).into_owned(),
    )
}

fn check(api: &Api, name: &str) -> Value {
    let (status, body) = api
        .get(&format!("/api/v1/checks/{name}"))
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(status, 200, "{body}");
    body
}

fn runs_of(api: &Api, name: &str) -> Vec<Value> {
    let (status, body) = api
        .get(&format!("/api/v1/runs?check={name}&limit=100"))
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(status, 200, "{body}");
    body["runs"].as_array().cloned().unwrap_or_default()
}

fn output_of(api: &Api, run_id: i64) -> Vec<String> {
    let (_, body) = api
        .get(&format!("/api/v1/runs/{run_id}/output"))
        .unwrap_or_else(|e| panic!("{e}"));
    body["lines"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .iter()
        .map(|line| line["line"].as_str().unwrap_or_default().to_string())
        .collect()
}

fn rss_kb(pid: i32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|status| {
            status
                .lines()
                .find_map(|line| line.strip_prefix("VmRSS:"))
                .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
        })
        .unwrap_or(0)
}

fn start(dir: &Path) -> (Hub, Api) {
    let config = dir.join("warden.toml");
    std::fs::write(
        &config,
        r#"
[[check]]
name = "backup"
kind = "heartbeat"
period = "2s"
grace = "1s"

[[check]]
name = "nightly"
kind = "heartbeat"
cron = "0 3 * * *"
timezone = "Europe/Paris"
grace = "30m"
"#,
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let config = config.display().to_string();
    let hub = Hub::start(&dir.join("data"), &["--config", &config]);
    let api = Api::new(&hub.url, hub.new_token.as_deref().unwrap_or_default());
    (hub, api)
}

#[test]
fn heartbeats_follow_curl_pings_through_grace_to_down_and_back() {
    if !curl_present() {
        return;
    }
    let dir = temp_dir();
    let (hub, api) = start(dir.path());

    // The ping URL, as `warden checks --show-ping-urls` shows it.
    let output = Command::new(warden_bin())
        .args(["checks", "--show-ping-urls"])
        .env("WARDEN_URL", &hub.url)
        .env("WARDEN_TOKEN", &api.token)
        .output()
        .unwrap_or_else(|e| panic!("{e}"));
    let table = String::from_utf8_lossy(&output.stdout).into_owned();
    let backup = check(&api, "backup");
    let url = backup["heartbeat"]["ping_url"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    assert!(url.starts_with(&format!("{}/ping/", hub.url)), "{backup}");
    assert!(
        table
            .lines()
            .any(|line| line.starts_with("backup") && line.contains("NEW") && line.contains(&url)),
        "{table}"
    );
    assert_eq!(backup["heartbeat"]["state"], "new");
    assert_eq!(backup["status"], Value::Null);

    // A success ping, as a crontab line writes it; every answer advertises the body limit.
    let (code, _) = sh(&format!("curl -fsS -m 10 --retry 5 -o /dev/null {url}"));
    assert_eq!(code, 0);
    let (code, headers) = sh(&format!("curl -sS -m 10 -o /dev/null -D - {url}"));
    assert_eq!(code, 0);
    assert!(
        headers
            .to_ascii_lowercase()
            .contains("ping-body-limit: 100000"),
        "{headers}"
    );
    let backup = check(&api, "backup");
    assert_eq!(backup["heartbeat"]["state"], "up", "{backup}");
    wait_for(Duration::from_secs(10), "status ok", || {
        (check(&api, "backup")["status"] == "ok").then_some(())
    });

    // No more pings: late (warn) after the period, down (crit) after the grace, in that order.
    wait_for(Duration::from_secs(30), "down", || {
        (check(&api, "backup")["heartbeat"]["state"] == "down").then_some(())
    });
    let statuses: Vec<String> = runs_of(&api, "backup")
        .iter()
        .rev()
        .map(|run| run["status"].as_str().unwrap_or("-").to_string())
        .collect();
    assert_eq!(statuses, ["ok", "ok", "warn", "crit"], "{statuses:?}");
    let newest = &runs_of(&api, "backup")[0];
    assert!(
        newest["summary"]
            .as_str()
            .unwrap_or_default()
            .starts_with("down: no ping for"),
        "{newest}"
    );
    wait_for(Duration::from_secs(10), "status crit", || {
        (check(&api, "backup")["status"] == "crit").then_some(())
    });

    // A wrapped job: `/start?rid=` then `/$?` with the same rid; it failed with exit code 3.
    let rid = "5f0b7a52-3c4e-4d8a-9a59-1f2e3d4c5b6a";
    let (code, _) = sh(&format!(
        "curl -fsS -m 10 -o /dev/null '{url}/start?rid={rid}'; \
         printf 'backing up\\nERROR: disk full\\n' > {dir}/log; (exit 3); \
         curl -fsS -m 10 -o /dev/null --data-binary @{dir}/log \"{url}/$??rid={rid}\"",
        dir = dir.path().display()
    ));
    assert_eq!(code, 0);
    let run = &runs_of(&api, "backup")[0];
    assert_eq!(run["status"], "crit", "{run}");
    assert_eq!(run["exit_code"], 3, "{run}");
    assert_eq!(run["state"], "completed", "{run}");
    let started = run["started_at"].as_i64().unwrap_or(0);
    let finished = run["finished_at"].as_i64().unwrap_or(0);
    assert!(started > 0 && finished >= started, "{run}");
    assert_eq!(run["result"]["rid"], rid);
    let run_id = run["id"].as_i64().unwrap_or(0);
    assert_eq!(output_of(&api, run_id), ["backing up", "ERROR: disk full"]);
    assert_eq!(check(&api, "backup")["heartbeat"]["state"], "down");
    // The answer came after the check's status and the job's duration were stored.
    let stored = check(&api, "backup");
    assert_eq!(stored["status"], "crit", "{stored}");
    assert_eq!(stored["last_run_id"], run_id, "{stored}");
    let (code, duration) = api
        .get("/api/v1/series/backup.duration?since=1m&step=10ms&agg=last")
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(code, 200, "{duration}");
    let points = duration["points"].as_array().cloned().unwrap_or_default();
    let expected = (finished - started) as f64 / 1000.0;
    assert!(
        points
            .iter()
            .any(|p| (p[1].as_f64().unwrap_or(-1.0) - expected).abs() < 1e-9),
        "expected a duration sample of {expected} s: {duration}"
    );

    // `/log` is kept and changes nothing; then success brings it back up.
    let (code, _) = sh(&format!(
        "echo 'still here' | curl -fsS -m 10 -o /dev/null --data-binary @- {url}/log"
    ));
    assert_eq!(code, 0);
    let log_run = &runs_of(&api, "backup")[0];
    assert_eq!(log_run["status"], Value::Null, "{log_run}");
    assert_eq!(
        output_of(&api, log_run["id"].as_i64().unwrap_or(0)),
        ["still here"]
    );
    assert_eq!(check(&api, "backup")["heartbeat"]["state"], "down");
    let (code, _) = sh(&format!("curl -fsS -m 10 -o /dev/null -X POST {url}/0"));
    assert_eq!(code, 0);
    assert_eq!(check(&api, "backup")["heartbeat"]["state"], "up");
    wait_for(Duration::from_secs(10), "status ok again", || {
        (check(&api, "backup")["status"] == "ok").then_some(())
    });

    // `/fail` is down at once; HEAD works like GET.
    let (code, _) = sh(&format!("curl -fsS -m 10 -o /dev/null {url}/fail"));
    assert_eq!(code, 0);
    assert_eq!(check(&api, "backup")["heartbeat"]["state"], "down");
    let (code, _) = sh(&format!("curl -fsS -m 10 -I -o /dev/null {url}"));
    assert_eq!(code, 0);
    assert_eq!(check(&api, "backup")["heartbeat"]["state"], "up");

    // The cron heartbeat still waits for its first ping.
    assert_eq!(check(&api, "nightly")["heartbeat"]["state"], "new");
    drop(hub);
}

#[test]
fn bad_pings_are_refused_and_change_nothing() {
    if !curl_present() {
        return;
    }
    let dir = temp_dir();
    let (hub, api) = start(dir.path());
    let url = check(&api, "nightly")["heartbeat"]["ping_url"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let runs_before = runs_of(&api, "nightly").len();

    // Unknown keys, bad exit codes, bad rids: 404/400 and nothing stored.
    let client = reqwest::blocking::Client::new();
    let unknown = format!("{}/ping/00000000-0000-4000-8000-000000000000", hub.url);
    for _ in 0..1_000 {
        let response = client
            .post(&unknown)
            .body("x")
            .send()
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(response.status().as_u16(), 404);
    }
    for (path, expected) in [
        (format!("{url}/256"), 404),
        (format!("{url}/-1"), 404),
        (format!("{url}/nope"), 404),
        (format!("{url}?rid=not-a-uuid"), 400),
    ] {
        let response = client.get(&path).send().unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(response.status().as_u16(), expected, "{path}");
        assert_eq!(
            response
                .headers()
                .get("ping-body-limit")
                .and_then(|v| v.to_str().ok()),
            Some("100000"),
            "{path}"
        );
    }
    assert_eq!(runs_of(&api, "nightly").len(), runs_before);
    let (_, all) = api
        .get("/api/v1/runs?limit=1000")
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(all["runs"].as_array().map(Vec::len), Some(0), "{all}");

    // A 10 MB body, ten times: each is cut at the limit with a marker, memory stays bounded.
    let big = dir.path().join("big");
    std::fs::write(&big, vec![b'a'; 10 * 1024 * 1024]).unwrap_or_else(|e| panic!("{e}"));
    let rss_before = rss_kb(hub.pid());
    for _ in 0..10 {
        let (code, _) = sh(&format!(
            "curl -fsS -m 30 -o /dev/null --data-binary @{} {url}/log",
            big.display()
        ));
        assert_eq!(code, 0);
    }
    let rss_after = rss_kb(hub.pid());
    assert!(
        rss_after < rss_before + 64 * 1024,
        "RSS grew from {rss_before} kB to {rss_after} kB"
    );
    let run = &runs_of(&api, "nightly")[0];
    assert_eq!(run["result"]["body_bytes"], 10 * 1024 * 1024);
    let lines = output_of(&api, run["id"].as_i64().unwrap_or(0));
    assert_eq!(lines[0].len(), 100_000);
    assert_eq!(
        lines[1],
        format!(
            "[... {} more bytes cut: the ping body limit is 100000 bytes]",
            10 * 1024 * 1024 - 100_000
        )
    );

    // A body that is not UTF-8 is kept with replacement characters, and flagged.
    let response = client
        .post(&url)
        .body(vec![b'o', b'k', 0xff, 0xfe, b'!'])
        .send()
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(response.status().as_u16(), 200);
    let run = &runs_of(&api, "nightly")[0];
    assert_eq!(run["result"]["body_utf8"], false);
    assert_eq!(
        output_of(&api, run["id"].as_i64().unwrap_or(0)),
        ["ok\u{fffd}\u{fffd}!"]
    );
    drop(hub);
}
