//! The API as one door: every endpoint's role requirements as a table against a real hub,
//! malformed input answered 4xx (never 500) with nothing changed, tokens made, listed, expired
//! and revoked, series queried, and the CLI on top of it all.

use std::process::{Command, Stdio};
use std::time::Duration;

use serde_json::{Value, json};

use crate::checks::wait_for;
use crate::harness::{Api, Hub, temp_dir, warden_bin};

/// A request body with its content type.
type Body = Option<(&'static str, Vec<u8>)>;

struct Raw {
    url: String,
    client: reqwest::blocking::Client,
}

impl Raw {
    fn new(url: &str) -> Raw {
        Raw {
            url: url.to_string(),
            // No connection reuse: a hub that refuses a huge body early closes that connection.
            client: reqwest::blocking::Client::builder()
                .timeout(Duration::from_secs(30))
                .pool_max_idle_per_host(0)
                .build()
                .unwrap_or_else(|e| panic!("{e}")),
        }
    }

    /// Sends a request with an optional token and raw body; returns status and body text.
    fn send(&self, method: &str, path: &str, token: Option<&str>, body: Body) -> (u16, String) {
        let method =
            reqwest::Method::from_bytes(method.as_bytes()).unwrap_or_else(|e| panic!("{e}"));
        let mut request = self.client.request(method, format!("{}{path}", self.url));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        if let Some((content_type, bytes)) = body {
            request = request.header("content-type", content_type).body(bytes);
        }
        let response = request.send().unwrap_or_else(|e| panic!("{path}: {e}"));
        let status = response.status().as_u16();
        (status, response.text().unwrap_or_default())
    }

    /// A huge body through curl, which reads an early answer (413) while still sending; a
    /// client that only reads after sending may see the connection closed instead.
    fn send_huge(&self, method: &str, path: &str, token: &str, body: Body) -> (u16, String) {
        let dir = temp_dir();
        let file = dir.path().join("body");
        let (content_type, bytes) = body.unwrap_or(("application/json", Vec::new()));
        std::fs::write(&file, bytes).unwrap_or_else(|e| panic!("{e}"));
        let out = dir.path().join("answer");
        let output = Command::new("curl")
            .args(["-sS", "-X", method, "-o"])
            .arg(&out)
            .args(["-w", "%{http_code}", "-H"])
            .arg(format!("content-type: {content_type}"))
            .arg("-H")
            .arg(format!("authorization: Bearer {token}"))
            .arg("--data-binary")
            .arg(format!("@{}", file.display()))
            .arg(format!("{}{path}", self.url))
            .output()
            .unwrap_or_else(|e| panic!("curl: {e}"));
        let status = String::from_utf8_lossy(&output.stdout)
            .trim()
            .parse()
            .unwrap_or(0);
        (status, std::fs::read_to_string(&out).unwrap_or_default())
    }
}

fn make_token(api: &Api, name: &str, role: &str, expires_in: Option<&str>) -> (i64, String) {
    let (status, body) = api
        .post(
            "/api/v1/tokens",
            &json!({ "name": name, "role": role, "expires_in": expires_in }),
        )
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(status, 201, "{body}");
    (
        body["id"].as_i64().unwrap_or(0),
        body["token"].as_str().unwrap_or_default().to_string(),
    )
}

/// A hub with three exec checks; `slow` sleeps for `sleep_seconds` (unique per test, so a test
/// can find its own process).
fn start(sleep_seconds: &str) -> (tempfile::TempDir, Hub, Api) {
    let dir = temp_dir();
    let config = dir.path().join("warden.toml");
    std::fs::write(
        &config,
        format!(
            r#"
[[check]]
name = "web"
kind = "exec"
command = ["sh", "-c", "echo 'OK - fine|response_time=0.25s;1;2 size=2KB'"]
every = "1h"
labels = {{ team = "web" }}
links = [{{ name = "logs", url = "https://logs.example/web" }}]

[[check]]
name = "db"
kind = "exec"
command = ["sh", "-c", "echo 'DB CRITICAL - down'; exit 2"]
every = "1h"
labels = {{ team = "data" }}

[[check]]
name = "slow"
kind = "exec"
command = ["sleep", "{sleep_seconds}"]
every = "1h"
timeout = "60s"
"#
        ),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let config = config.display().to_string();
    let hub = Hub::start(&dir.path().join("data"), &["--config", &config]);
    let api = Api::new(&hub.url, hub.new_token.as_deref().unwrap_or_default());
    (dir, hub, api)
}

fn count_rows(api: &Api, path: &str, field: &str) -> usize {
    let (_, body) = api.get(path).unwrap_or_else(|e| panic!("{e}"));
    body[field].as_array().map(Vec::len).unwrap_or(0)
}

#[test]
fn every_endpoint_enforces_its_role() {
    let (_dir, hub, api) = start("31.11");
    let raw = Raw::new(&hub.url);
    let admin = api.token.clone();
    let (_, operator) = make_token(&api, "ops", "operator", None);
    let (_, viewer) = make_token(&api, "dash", "viewer", None);
    let (_, agent) = make_token(&api, "box-1", "agent", None);
    let (_, ping) = make_token(&api, "cron", "ping", None);
    // A finished run to read.
    let run_id = wait_for(Duration::from_secs(30), "web to run", || {
        let (_, body) = api.get("/api/v1/checks/web").ok()?;
        body["last_run_id"].as_i64()
    });
    let (_, victim) = make_token(&api, "victim", "viewer", None);
    let _ = victim;

    // (method, path, body, lowest role that may: open/viewer/operator/admin/worker)
    let json_body = |v: Value| Some(("application/json", v.to_string().into_bytes()));
    let endpoints: Vec<(&str, String, Body, &str)> = vec![
        ("GET", "/api/v1/health".into(), None, "open"),
        ("GET", "/api/v1/checks".into(), None, "viewer"),
        ("GET", "/api/v1/checks/web".into(), None, "viewer"),
        ("GET", "/api/v1/checks/web/uptime".into(), None, "viewer"),
        ("POST", "/api/v1/checks/web/run".into(), None, "operator"),
        ("GET", "/api/v1/runs".into(), None, "viewer"),
        ("GET", format!("/api/v1/runs/{run_id}"), None, "viewer"),
        (
            "GET",
            format!("/api/v1/runs/{run_id}/output"),
            None,
            "viewer",
        ),
        ("GET", "/api/v1/series".into(), None, "viewer"),
        (
            "GET",
            "/api/v1/series/web.response_time".into(),
            None,
            "viewer",
        ),
        ("GET", "/api/v1/tokens".into(), None, "admin"),
        (
            "POST",
            "/api/v1/tokens".into(),
            json_body(json!({"name": "x", "role": "viewer"})),
            "admin",
        ),
        (
            "POST",
            "/api/v1/queue/runs".into(),
            json_body(json!({"kind": "job"})),
            "operator",
        ),
        (
            "POST",
            "/api/v1/queue/lease".into(),
            json_body(json!({"worker": "w", "kinds": ["nothing-here"]})),
            "worker",
        ),
    ];
    let tokens: [(&str, Option<&str>); 6] = [
        ("none", None),
        ("ping", Some(&ping)),
        ("agent", Some(&agent)),
        ("viewer", Some(&viewer)),
        ("operator", Some(&operator)),
        ("admin", Some(&admin)),
    ];
    let allowed = |need: &str, who: &str| -> bool {
        match need {
            "open" => true,
            "viewer" => matches!(who, "viewer" | "operator" | "admin"),
            "operator" => matches!(who, "operator" | "admin"),
            "admin" => who == "admin",
            "worker" => matches!(who, "agent" | "operator" | "admin"),
            _ => false,
        }
    };
    let mut table = Vec::new();
    for (method, path, body, need) in &endpoints {
        for (who, token) in &tokens {
            let (status, text) = raw.send(method, path, *token, body.clone());
            let expected_ok = allowed(need, who);
            let good = if expected_ok {
                (200..300).contains(&status)
            } else if token.is_none() {
                status == 401
            } else {
                status == 403
            };
            if !good {
                table.push(format!("{method} {path} as {who}: {status} {text}"));
            }
            if !(200..300).contains(&status) {
                let error: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
                assert!(
                    error["error"]["code"].is_string() && error["error"]["message"].is_string(),
                    "{method} {path} as {who}: not a typed error: {text}"
                );
            }
        }
    }
    assert!(
        table.is_empty(),
        "role matrix broken:\n{}",
        table.join("\n")
    );

    // A revoked token and an expired one are refused at once.
    let (id, short_lived) = make_token(&api, "temp", "viewer", Some("1s"));
    assert_eq!(
        raw.send("GET", "/api/v1/checks", Some(&short_lived), None)
            .0,
        200
    );
    // Refused once its second is over (waiting on the answer, not on a guess of the time).
    let (status, text) = wait_for(Duration::from_secs(10), "the token to expire", || {
        let (status, text) = raw.send("GET", "/api/v1/checks", Some(&short_lived), None);
        (status != 200).then_some((status, text))
    });
    assert_eq!(status, 401, "{text}");
    assert!(text.contains("expired"), "{text}");
    let (status, body) = api.get("/api/v1/tokens").unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(status, 200);
    let listed = body["tokens"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .into_iter()
        .find(|t| t["id"] == id)
        .unwrap_or(Value::Null);
    assert_eq!(listed["state"], "expired");
    assert!(listed.get("token").is_none(), "secrets are never listed");
    let (status, _) = raw.send(
        "DELETE",
        &format!("/api/v1/tokens/{id}"),
        Some(&admin),
        None,
    );
    assert_eq!(status, 200);
    let (status, _) = raw.send("GET", "/api/v1/checks", Some(&operator), None);
    assert_eq!(status, 200);
    let ops_id = body["tokens"]
        .as_array()
        .and_then(|t| t.iter().find(|t| t["name"] == "ops"))
        .and_then(|t| t["id"].as_i64())
        .unwrap_or(0);
    let (status, _) = raw.send(
        "DELETE",
        &format!("/api/v1/tokens/{ops_id}"),
        Some(&admin),
        None,
    );
    assert_eq!(status, 200);
    let (status, text) = raw.send("GET", "/api/v1/checks", Some(&operator), None);
    assert_eq!(status, 401, "{text}");
    let (status, text) = raw.send("DELETE", "/api/v1/tokens/999999", Some(&admin), None);
    assert_eq!(status, 404, "{text}");
    assert!(text.contains("token 999999 not found"), "{text}");
    drop(hub);
}

#[test]
fn malformed_input_is_refused_and_changes_nothing() {
    let (_dir, hub, api) = start("31.22");
    let raw = Raw::new(&hub.url);
    let admin = api.token.clone();
    wait_for(Duration::from_secs(30), "web to run", || {
        let (_, body) = api.get("/api/v1/checks/web").ok()?;
        body["last_run_id"].as_i64()
    });
    let runs_before = count_rows(&api, "/api/v1/runs?limit=1000", "runs");
    let tokens_before = count_rows(&api, "/api/v1/tokens", "tokens");
    let json = |text: &str| Some(("application/json", text.as_bytes().to_vec()));
    let huge = Some(("application/json", {
        let mut body = b"{\"name\":\"".to_vec();
        body.extend(std::iter::repeat_n(b'a', 3 * 1024 * 1024));
        body.extend(b"\",\"role\":\"viewer\"}");
        body
    }));
    let cases: Vec<(&str, &str, Body, u16, &str)> = vec![
        ("POST", "/api/v1/tokens", json("{"), 400, "malformed JSON"),
        (
            "POST",
            "/api/v1/tokens",
            json("[]"),
            400,
            "invalid request body",
        ),
        (
            "POST",
            "/api/v1/tokens",
            json(r#"{"name": 7, "role": "viewer"}"#),
            400,
            "name",
        ),
        (
            "POST",
            "/api/v1/tokens",
            json(r#"{"name": "x", "role": "root"}"#),
            400,
            "role: must be one of",
        ),
        (
            "POST",
            "/api/v1/tokens",
            json(r#"{"name": "x", "role": "viewer", "extra": 1}"#),
            400,
            "unknown field `extra`",
        ),
        (
            "POST",
            "/api/v1/tokens",
            json(r#"{"name": "", "role": "viewer"}"#),
            400,
            "name: must be 1-100",
        ),
        (
            "POST",
            "/api/v1/tokens",
            json(r#"{"name": "x", "role": "viewer", "expires_in": "soon"}"#),
            400,
            "expires_in",
        ),
        (
            "POST",
            "/api/v1/tokens",
            Some(("text/plain", b"{}".to_vec())),
            400,
            "Content-Type",
        ),
        ("POST", "/api/v1/tokens", huge, 413, "too large"),
        ("DELETE", "/api/v1/tokens/abc", None, 400, "not a token id"),
        ("GET", "/api/v1/runs/abc", None, 400, "not a run id"),
        ("GET", "/api/v1/runs/0", None, 400, "not a run id"),
        (
            "GET",
            "/api/v1/runs/99999999",
            None,
            404,
            "run 99999999 not found",
        ),
        (
            "GET",
            "/api/v1/runs/99999999/output",
            None,
            404,
            "run 99999999 not found",
        ),
        (
            "POST",
            "/api/v1/runs/99999999/cancel",
            None,
            404,
            "not found",
        ),
        ("GET", "/api/v1/runs?limit=0", None, 400, "limit"),
        ("GET", "/api/v1/runs?limit=abc", None, 400, "bad query"),
        ("GET", "/api/v1/runs?state=sleeping", None, 400, "state"),
        (
            "GET",
            "/api/v1/runs?check=nope",
            None,
            404,
            "check `nope` not found",
        ),
        ("GET", "/api/v1/runs?bogus=1", None, 400, "unknown field"),
        ("GET", "/api/v1/checks?status=fine", None, 400, "status"),
        ("GET", "/api/v1/checks?label=nokey", None, 400, "label"),
        (
            "GET",
            "/api/v1/checks/nope",
            None,
            404,
            "check `nope` not found",
        ),
        (
            "POST",
            "/api/v1/checks/nope/run",
            None,
            404,
            "check `nope` not found",
        ),
        (
            "GET",
            "/api/v1/checks/nope/uptime",
            None,
            404,
            "check `nope` not found",
        ),
        (
            "GET",
            "/api/v1/checks/web/uptime?since=forever",
            None,
            400,
            "since",
        ),
        (
            "GET",
            "/api/v1/series/nope.x",
            None,
            404,
            "series `nope.x` not found",
        ),
        (
            "GET",
            "/api/v1/series/web.response_time?agg=median",
            None,
            400,
            "agg",
        ),
        (
            "GET",
            "/api/v1/series/web.response_time?step=1ms&since=30d",
            None,
            400,
            "too small",
        ),
        (
            "GET",
            "/api/v1/series/web.response_time?from=10&to=5",
            None,
            400,
            "from",
        ),
        (
            "GET",
            "/api/v1/series/web.response_time?points=0",
            None,
            400,
            "points",
        ),
        ("GET", "/api/v1/series?limit=5000", None, 400, "limit"),
        (
            "POST",
            "/api/v1/queue/runs",
            json(r#"{"kind": ""}"#),
            400,
            "kind",
        ),
        (
            "POST",
            "/api/v1/queue/lease",
            json(r#"{"worker": "w", "limit": 0}"#),
            400,
            "limit",
        ),
        // Extreme times once overflowed into a panic (found by schemathesis, it/openapi.rs).
        (
            "GET",
            "/api/v1/series/web.response_time?from=-9223372036854775808",
            None,
            400,
            "from: must be a time",
        ),
        (
            "GET",
            "/api/v1/checks/web/uptime?to=9223372036854775807",
            None,
            400,
            "to: must be a time",
        ),
        (
            "POST",
            "/api/v1/silences",
            json(r#"{"checks": "web", "duration": "1h", "starts_at": 9223372036854775807}"#),
            400,
            "starts_at: must be a time",
        ),
        ("GET", "/api/v1/checks/%FF", None, 400, "bad path"),
        (
            "POST",
            "/api/v1/incidents/1/ack",
            json(&format!(r#"{{"note": "{}"}}"#, "x".repeat(20_000))),
            413,
            "too large",
        ),
        ("GET", "/api/v1/nothing-here", None, 404, "no such endpoint"),
    ];
    let mut wrong = Vec::new();
    for (method, path, body, expected, needle) in cases {
        let huge = body
            .as_ref()
            .is_some_and(|(_, bytes)| bytes.len() > 1024 * 1024);
        let (status, text) = if huge {
            raw.send_huge(method, path, &admin, body)
        } else {
            raw.send(method, path, Some(&admin), body)
        };
        let error: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
        let message = error["error"]["message"].as_str().unwrap_or_default();
        if status != expected || !message.contains(needle) {
            wrong.push(format!(
                "{method} {path}: {status} (want {expected} containing {needle:?}): {text}"
            ));
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
    assert_eq!(
        count_rows(&api, "/api/v1/runs?limit=1000", "runs"),
        runs_before
    );
    assert_eq!(count_rows(&api, "/api/v1/tokens", "tokens"), tokens_before);
    drop(hub);
}

fn cli(hub: &Hub, token: &str, args: &[&str], extra_env: &[(&str, &str)]) -> (i32, String, String) {
    let mut command = Command::new(warden_bin());
    command
        .args(args)
        .env("WARDEN_URL", &hub.url)
        .env("WARDEN_TOKEN", token)
        .env("WARDEN_CLI_CONFIG", "/nonexistent/cli.toml")
        .stdin(Stdio::null());
    for (key, value) in extra_env {
        command.env(key, value);
    }
    let output = command.output().unwrap_or_else(|e| panic!("{e}"));
    (
        output.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

#[test]
fn the_cli_does_what_the_api_does() {
    let (dir, hub, api) = start("31.4159");
    let admin = api.token.clone();
    wait_for(Duration::from_secs(30), "web, db and slow to start", || {
        let (_, body) = api.get("/api/v1/checks?status=pending").ok()?;
        let pending = body["checks"].as_array()?.len();
        let (_, runs) = api.get("/api/v1/runs?state=leased").ok()?;
        (pending == 1 && runs["runs"].as_array()?.len() == 1).then_some(())
    });

    // status: one line, the problems, and the worst status as the exit code.
    let (code, out, _) = cli(&hub, &admin, &["status"], &[]);
    assert_eq!(code, 2, "{out}");
    assert!(
        out.starts_with("3 checks: 1 ok, 0 warn, 1 crit, 0 unknown, 1 pending\n"),
        "{out}"
    );
    assert!(
        out.contains("db") && out.contains("DB CRITICAL - down"),
        "{out}"
    );
    assert!(!out.lines().skip(1).any(|l| l.starts_with("web ")), "{out}");
    let (code, out, _) = cli(&hub, &admin, &["--json", "status"], &[]);
    assert_eq!(code, 2);
    let parsed: Value = serde_json::from_str(&out).unwrap_or(Value::Null);
    assert_eq!(
        (parsed["checks"].as_i64(), parsed["crit"].as_i64()),
        (Some(3), Some(1))
    );

    // checks filters by kind and label.
    let (code, out, _) = cli(
        &hub,
        &admin,
        &["--json", "checks", "--label", "team=web"],
        &[],
    );
    assert_eq!(code, 0);
    let names: Vec<String> = serde_json::from_str::<Vec<Value>>(&out)
        .unwrap_or_default()
        .iter()
        .map(|c| c["name"].as_str().unwrap_or_default().to_string())
        .collect();
    assert_eq!(names, ["web"]);
    let (_, web) = api
        .get("/api/v1/checks/web")
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        web["links"],
        json!([{ "name": "logs", "url": "https://logs.example/web" }])
    );
    assert_eq!(web["labels"], json!({ "team": "web" }));

    // cancel the sleeping run.
    let (_, leased) = api
        .get("/api/v1/runs?state=leased")
        .unwrap_or_else(|e| panic!("{e}"));
    let slow_run = leased["runs"][0]["id"].as_i64().unwrap_or(0);
    let (code, out, err) = cli(&hub, &admin, &["cancel", &slow_run.to_string()], &[]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(out, format!("run {slow_run} cancelled (it was leased)\n"));
    let (_, run) = api
        .get(&format!("/api/v1/runs/{slow_run}"))
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(run["state"], "cancelled");
    // The process stops now, well before the lease heartbeat (10 s) would notice.
    wait_for(
        Duration::from_secs(5),
        "the cancelled process to be gone",
        || {
            let found = Command::new("pgrep")
                .args(["-f", "sleep 31.4159"])
                .output()
                .map(|o| o.status.success())
                .unwrap_or(true);
            (!found).then_some(())
        },
    );
    let (code, _, err) = cli(&hub, &admin, &["cancel", &slow_run.to_string()], &[]);
    assert_eq!(code, 1, "cancelling twice is refused: {err}");
    // Live views drop the cancelled run from the runs in flight.
    let running = live_running(&hub, &admin);
    assert!(!running.contains(&slow_run), "{running:?}");

    // series: the perfdata the web check produced.
    let (code, out, err) = cli(
        &hub,
        &admin,
        &["--json", "series", "web.size", "--since", "1h"],
        &[],
    );
    assert_eq!(code, 0, "{err}");
    let body: Value = serde_json::from_str(&out).unwrap_or(Value::Null);
    assert_eq!(body["points"][0][1], 2048.0, "{body}");
    let (code, out, _) = cli(
        &hub,
        &admin,
        &["series", "web.response_time", "--agg", "max"],
        &[],
    );
    assert_eq!(code, 0);
    assert!(out.starts_with("web.response_time (max per "), "{out}");
    assert!(
        out.lines().nth(1).is_some_and(|l| l.ends_with("  0.25")),
        "{out}"
    );

    // uptime.
    let (code, out, _) = cli(&hub, &admin, &["uptime", "db"], &[]);
    assert_eq!(code, 0);
    assert_eq!(out, "db over the last 24h: 0.000% up (0 of 1 runs)\n");

    // tokens: create (secret shown once), list (never secrets), revoke; then it is refused.
    let (code, out, err) = cli(
        &hub,
        &admin,
        &[
            "--json",
            "tokens",
            "create",
            "--name",
            "grafana",
            "--role",
            "viewer",
            "--expires",
            "30d",
        ],
        &[],
    );
    assert_eq!(code, 0, "{err}");
    let created: Value = serde_json::from_str(&out).unwrap_or(Value::Null);
    let secret = created["token"].as_str().unwrap_or_default().to_string();
    assert!(
        secret.starts_with("wdn_") && secret.len() == 68,
        "{created}"
    );
    let (code, out, _) = cli(&hub, &admin, &["tokens", "list"], &[]);
    assert_eq!(code, 0);
    assert!(
        out.lines()
            .any(|l| l.contains("grafana") && l.contains("viewer") && l.contains("live")),
        "{out}"
    );
    assert!(!out.contains(&secret));
    let (code, _, err) = cli(&hub, &secret, &["tokens", "list"], &[]);
    assert_eq!(code, 1, "a viewer may not list tokens");
    assert!(err.contains("needs the admin role"), "{err}");
    let id = created["id"].as_i64().unwrap_or(0).to_string();
    let (code, out, _) = cli(&hub, &admin, &["tokens", "revoke", &id], &[]);
    assert_eq!((code, out), (0, format!("token {id} revoked\n")));
    let (code, _, err) = cli(&hub, &secret, &["checks"], &[]);
    assert_eq!(code, 1);
    assert!(err.contains("invalid, expired or revoked token"), "{err}");

    // cli.toml gives url and token when neither flag nor env does; env wins over it.
    let config = dir.path().join("cli.toml");
    std::fs::write(
        &config,
        format!("url = \"{}\"\ntoken = \"{admin}\"\n", hub.url),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let output = Command::new(warden_bin())
        .args(["--json", "checks"])
        .env_remove("WARDEN_URL")
        .env_remove("WARDEN_TOKEN")
        .env("WARDEN_CLI_CONFIG", &config)
        .output()
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        output.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let output = Command::new(warden_bin())
        .args(["checks"])
        .env_remove("WARDEN_URL")
        .env("WARDEN_TOKEN", "wdn_bad")
        .env("WARDEN_CLI_CONFIG", &config)
        .output()
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(output.status.code(), Some(1));
    std::fs::write(&config, "url = 7\n").unwrap_or_else(|e| panic!("{e}"));
    let output = Command::new(warden_bin())
        .args(["checks"])
        .env_remove("WARDEN_URL")
        .env_remove("WARDEN_TOKEN")
        .env("WARDEN_CLI_CONFIG", &config)
        .output()
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(output.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&output.stderr).contains("cli.toml"),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    drop(hub);
}

#[test]
fn logs_follow_prints_stored_then_live_lines_until_the_run_ends() {
    use std::io::BufRead as _;
    let dir = temp_dir();
    let config = dir.path().join("warden.toml");
    std::fs::write(
        &config,
        r#"
[[check]]
name = "chatty"
kind = "exec"
command = ["sh", "-c", "for i in 1 2 3 4; do echo \"line $i\"; sleep 0.5; done; echo \"line 5\"; echo \"line 6\""]
every = "1h"
"#,
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let config = config.display().to_string();
    let hub = Hub::start(&dir.path().join("data"), &["--config", &config]);
    let api = Api::new(&hub.url, hub.new_token.as_deref().unwrap_or_default());
    // Let the start-up run finish, then start one to follow.
    wait_for(Duration::from_secs(30), "the first run", || {
        let (_, body) = api.get("/api/v1/checks/chatty").ok()?;
        body["status"].as_str().map(|_| ())
    });
    let (status, body) = api
        .post("/api/v1/checks/chatty/run", &json!({}))
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(status, 201, "{body}");
    let run_id = body["run_id"].as_i64().unwrap_or(0);
    let mut child = Command::new(warden_bin())
        .args(["logs", &run_id.to_string(), "--follow"])
        .env("WARDEN_URL", &hub.url)
        .env("WARDEN_TOKEN", &api.token)
        .env("WARDEN_CLI_CONFIG", "/nonexistent/cli.toml")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("{e}"));
    let stdout = child.stdout.take().unwrap_or_else(|| panic!("stdout"));
    let mut lines = std::io::BufReader::new(stdout).lines();
    let first = lines.next().and_then(Result::ok).unwrap_or_default();
    assert_eq!(first, "line 1");
    // Live: the run is still going when its first line is on our screen.
    let (_, run) = api
        .get(&format!("/api/v1/runs/{run_id}"))
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(
        run["state"] == "leased" || run["state"] == "queued",
        "the run ended before its first line was followed: {run}"
    );
    // Lines 5 and 6 come out as the process exits: they are followed too, before the end.
    let rest: Vec<String> = lines.map_while(Result::ok).collect();
    assert_eq!(rest, ["line 2", "line 3", "line 4", "line 5", "line 6"]);
    let output = child.wait_with_output().unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(output.status.code(), Some(0));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains(&format!("run {run_id} completed: ok")),
        "{stderr}"
    );
    drop(hub);
}

/// The run ids in flight according to a fresh live snapshot (`/api/v1/events`).
fn live_running(hub: &Hub, token: &str) -> Vec<i64> {
    use futures_util::StreamExt as _;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap_or_else(|e| panic!("{e}"));
    runtime.block_on(async {
        let address = hub.url.trim_start_matches("http://");
        let url = format!("ws://{address}/api/v1/events?token={token}");
        let (mut socket, _) = tokio_tungstenite::connect_async(url)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        loop {
            let message = tokio::time::timeout(Duration::from_secs(10), socket.next())
                .await
                .unwrap_or_else(|_| panic!("no snapshot within 10 s"));
            let Some(Ok(tokio_tungstenite::tungstenite::Message::Text(text))) = message else {
                continue;
            };
            let snapshot: Value = serde_json::from_str(text.as_str()).unwrap_or(Value::Null);
            assert_eq!(snapshot["type"], "snapshot", "{snapshot}");
            return snapshot["running"]
                .as_array()
                .cloned()
                .unwrap_or_default()
                .iter()
                .filter_map(|run| run["run_id"].as_i64())
                .collect();
        }
    })
}
