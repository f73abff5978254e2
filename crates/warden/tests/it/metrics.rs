//! `/metrics` through a real hub: exec checks (ok with perfdata, crit, timing out) and an http
//! check against the hub's own health endpoint, scraped and handed to the real `promtool check
//! metrics`; tokens; `metrics_public`; statuses seeded from the store after a restart and removed
//! checks gone.

use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::harness::{Api, Hub, temp_dir};

/// `promtool` must be here in CI; elsewhere the test says so and skips.
fn promtool_present() -> bool {
    let found = Command::new("promtool")
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !found {
        assert!(
            std::env::var("WARDEN_REQUIRE_SERVICES").as_deref() != Ok("1"),
            "promtool is not installed but WARDEN_REQUIRE_SERVICES=1"
        );
        eprintln!("SKIPPED: promtool not installed (apt-get install prometheus)");
    }
    found
}

/// Pipes an exposition to `promtool check metrics`; returns (success, everything it printed).
fn promtool_check(body: &str) -> (bool, String) {
    let mut child = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("promtool: {e}"));
    if let Some(mut stdin) = child.stdin.take() {
        stdin
            .write_all(body.as_bytes())
            .unwrap_or_else(|e| panic!("promtool stdin: {e}"));
    }
    let output = child
        .wait_with_output()
        .unwrap_or_else(|e| panic!("promtool: {e}"));
    let printed = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    (output.status.success(), printed)
}

/// GET `/metrics`, with a bearer token when given: (status, content type, body).
fn scrape(url: &str, token: Option<&str>) -> (u16, String, String) {
    let client = reqwest::blocking::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap_or_else(|e| panic!("client: {e}"));
    let mut request = client.get(format!("{url}/metrics"));
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    let response = request
        .send()
        .unwrap_or_else(|e| panic!("GET /metrics: {e}"));
    let status = response.status().as_u16();
    let content_type = response
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string();
    let body = response.text().unwrap_or_default();
    (status, content_type, body)
}

/// Scrapes until every expected line is in the body (the exporter follows the bus, so it may be
/// a moment behind the store); fails showing what is missing and the last body.
fn scrape_until(url: &str, token: Option<&str>, expected: &[&str]) -> String {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (status, _, body) = scrape(url, token);
        let missing: Vec<&str> = expected
            .iter()
            .copied()
            .filter(|line| !body.lines().any(|l| l == *line))
            .collect();
        if status == 200 && missing.is_empty() {
            return body;
        }
        assert!(
            Instant::now() < deadline,
            "/metrics ({status}) lacks {missing:#?}; body:\n{body}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .map(|addr| addr.port())
        .unwrap_or_else(|e| panic!("free port: {e}"))
}

/// Waits until every named check has a stored status.
fn wait_for_statuses(api: &Api, names: &[&str]) {
    crate::checks::wait_for(Duration::from_secs(60), "every check to report", || {
        let (_, body) = api.get("/api/v1/checks").ok()?;
        let checks = body["checks"].as_array()?.clone();
        names
            .iter()
            .all(|name| {
                checks
                    .iter()
                    .any(|c| c["name"] == *name && !c["status"].is_null())
            })
            .then_some(())
    });
}

fn checks_config(port: u16, hub_section: &str, with_odd: bool) -> String {
    let odd = if with_odd {
        // A perfdata label with a double quote and a backslash: escaped in the label value.
        r#"
[[check]]
name = "odd"
kind = "exec"
command = ["sh", "-c", "printf '%s\\n' 'OK - odd|a\"b\\c=1'"]
every = "1h"
"#
    } else {
        ""
    };
    format!(
        r#"{hub_section}
[[check]]
name = "site"
kind = "exec"
command = ["sh", "-c", 'echo "OK - fine|load=0.5;1;2 size=2KB"']
every = "1h"

[[check]]
name = "broken"
kind = "exec"
command = ["sh", "-c", 'echo "CRITICAL - on fire"; exit 2']
every = "1h"

[[check]]
name = "slow"
kind = "exec"
command = ["sleep", "30"]
every = "1h"
timeout = "1s"

[[check]]
name = "self"
kind = "http"
url = "http://127.0.0.1:{port}/api/v1/health"
every = "1h"
{odd}"#
    )
}

fn write_config(dir: &Path, name: &str, body: &str) -> String {
    let path = dir.join(name);
    std::fs::write(&path, body).unwrap_or_else(|e| panic!("{e}"));
    path.display().to_string()
}

#[test]
fn metrics_expose_hub_health_and_check_results_that_promtool_accepts() {
    if !promtool_present() {
        return;
    }
    let dir = temp_dir();
    let data = dir.path().join("data");
    let port = free_port();
    let listen = format!("127.0.0.1:{port}");
    let config = write_config(dir.path(), "warden.toml", &checks_config(port, "", true));
    let mut hub = Hub::start_on(&data, &listen, &["--config", &config]);
    let token = hub.new_token.clone().unwrap_or_default();
    let api = Api::new(&hub.url, &token);
    wait_for_statuses(&api, &["site", "broken", "slow", "self", "odd"]);
    // A route with a parameter: counted under its template, never the raw path.
    let (status, _) = api
        .get("/api/v1/checks/site")
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(status, 200);

    let body = scrape_until(
        &hub.url,
        Some(&token),
        &[
            r#"warden_check_status{check="site",kind="exec"} 0"#,
            r#"warden_check_status{check="broken",kind="exec"} 2"#,
            r#"warden_check_status{check="slow",kind="exec"} 3"#,
            r#"warden_check_status{check="self",kind="http"} 0"#,
            r#"warden_check_up{check="site"} 1"#,
            r#"warden_check_up{check="broken"} 0"#,
            r#"warden_check_value{check="site",series="load"} 0.5"#,
            r#"warden_check_value{check="site",series="size"} 2048"#,
            r#"warden_check_value{check="odd",series="a\"b\\c"} 1"#,
            r#"warden_check_failures_total{check="slow",reason="timeout"} 1"#,
            r#"warden_check_failures_total{check="broken",reason="status"} 1"#,
            r#"warden_runs_finished_total{kind="exec",status="crit"} 1"#,
            "# TYPE warden_check_status gauge",
            "# TYPE warden_runs_started_total counter",
            "# TYPE warden_api_request_duration_seconds histogram",
            "# TYPE warden_store_write_batch_operations histogram",
            &format!(
                r#"warden_build_info{{version="{}"}} 1"#,
                env!("CARGO_PKG_VERSION")
            ),
        ],
    );
    let has_prefix = |prefix: &str| body.lines().any(|line| line.starts_with(prefix));
    for prefix in [
        r#"warden_queue_depth{state="queued"} "#,
        r#"warden_queue_depth{state="leased"} "#,
        r#"warden_check_value{check="self",series=""#,
        r#"warden_check_last_run_timestamp_seconds{check="slow"} "#,
        r#"warden_check_duration_seconds{check="slow"} "#,
        r#"warden_api_request_duration_seconds_bucket{route="/api/v1/checks/{name}",status_class="2xx",le=""#,
        // The http check's own request, without a token.
        r#"warden_api_request_duration_seconds_count{route="/api/v1/health",status_class="2xx"} "#,
        "warden_bus_events_published_total ",
        "warden_live_connections 0",
        "warden_recorder_batches_total ",
        "warden_store_write_operations_total ",
        "warden_uptime_seconds ",
        "warden_incidents_opened_total ",
        "warden_notifications_failed_total 0",
        "warden_alerter_evaluation_seconds_total ",
    ] {
        assert!(
            has_prefix(prefix),
            "no line starts with {prefix}; body:\n{body}"
        );
    }
    assert!(
        !body.contains(r#"route="/api/v1/checks/site""#),
        "a raw path became a label:\n{body}"
    );
    // The timed-out run took about its timeout.
    let slow_duration: f64 = body
        .lines()
        .find_map(|line| line.strip_prefix(r#"warden_check_duration_seconds{check="slow"} "#))
        .and_then(|value| value.parse().ok())
        .unwrap_or(-1.0);
    assert!(
        (0.9..10.0).contains(&slow_duration),
        "slow took {slow_duration}s"
    );

    let (_, content_type, _) = scrape(&hub.url, Some(&token));
    assert!(
        content_type.starts_with("text/plain; version=0.0.4"),
        "{content_type}"
    );
    let (ok, printed) = promtool_check(&body);
    assert!(
        ok && printed.trim().is_empty(),
        "promtool check metrics complained:\n{printed}\nbody:\n{body}"
    );

    // A token is needed by default.
    let (status, _, _) = scrape(&hub.url, None);
    assert_eq!(status, 401);
    let (status, _, _) = scrape(&hub.url, Some("wdn_not-a-token"));
    assert_eq!(status, 401);

    // Restart with `metrics_public` and without `odd`: no token needed, statuses are there at
    // once (seeded from the store, the hourly checks do not run again), `odd` is gone.
    hub.signal("TERM");
    assert_eq!(hub.wait_exit(Duration::from_secs(30)), Some(0));
    drop(hub);
    let public = write_config(
        dir.path(),
        "public.toml",
        &checks_config(port, "[hub]\nmetrics_public = true\n", false),
    );
    let hub = Hub::start_on(&data, &listen, &["--config", &public]);
    let (status, _, body) = scrape(&hub.url, None);
    assert_eq!(status, 200, "{body}");
    for line in [
        r#"warden_check_status{check="site",kind="exec"} 0"#,
        r#"warden_check_status{check="broken",kind="exec"} 2"#,
        r#"warden_check_status{check="slow",kind="exec"} 3"#,
        r#"warden_check_status{check="self",kind="http"} 0"#,
    ] {
        assert!(
            body.lines().any(|l| l == line),
            "after a restart, no {line}; body:\n{body}"
        );
    }
    assert!(
        !body.contains(r#"check="odd""#),
        "a removed check is still exposed:\n{body}"
    );
    let (ok, printed) = promtool_check(&body);
    assert!(
        ok && printed.trim().is_empty(),
        "promtool check metrics complained after the restart:\n{printed}\nbody:\n{body}"
    );
}
