//! `GET /api/v1/openapi.json` through a real hub: served without a token as an OpenAPI 3.1
//! document, then schemathesis drives every operation with generated (valid and invalid) input
//! and the admin token, and every answer must be as documented: never a 5xx, and a status,
//! content type and body schema the document lists for that operation.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::harness::{Api, Hub, temp_dir};

/// Examples per operation (and phase); `WARDEN_SCHEMATHESIS_EXAMPLES` raises it for a deeper run.
const DEFAULT_EXAMPLES: &str = "25";
/// A bound on one schemathesis run (it usually takes well under a minute).
const RUN_LIMIT: Duration = Duration::from_secs(300);

/// How to run schemathesis here: `schemathesis`, `st` or the Python module; `None` (after
/// saying so) when it is not installed, which CI (`WARDEN_REQUIRE_SERVICES=1`) does not allow.
fn schemathesis() -> Option<Vec<String>> {
    let candidates: [&[&str]; 3] = [
        &["schemathesis"],
        &["st"],
        &["python3", "-m", "schemathesis.cli"],
    ];
    for candidate in candidates {
        let output = Command::new(candidate[0])
            .args(&candidate[1..])
            .arg("--version")
            .stdin(Stdio::null())
            .output();
        // `st` is also the name of a terminal: make sure this one is schemathesis.
        if let Ok(output) = output
            && output.status.success()
            && String::from_utf8_lossy(&output.stdout).contains(", version ")
        {
            return Some(candidate.iter().map(|part| part.to_string()).collect());
        }
    }
    assert!(
        std::env::var("WARDEN_REQUIRE_SERVICES").as_deref() != Ok("1"),
        "schemathesis is not installed but WARDEN_REQUIRE_SERVICES=1"
    );
    eprintln!("SKIPPED: schemathesis not installed (pip install schemathesis)");
    None
}

/// Runs schemathesis in `dir` (its `.hypothesis` folder lands there) with `args`, bounded in
/// time; returns whether it passed and everything it printed.
fn run_schemathesis(command: &[String], dir: &Path, args: &[&str]) -> (bool, String) {
    let log_path = dir.join("schemathesis.log");
    let log = std::fs::File::create(&log_path).unwrap_or_else(|e| panic!("log: {e}"));
    let log_err = log.try_clone().unwrap_or_else(|e| panic!("log: {e}"));
    let mut child = Command::new(&command[0])
        .args(&command[1..])
        .args(args)
        .current_dir(dir)
        .env("NO_COLOR", "1")
        .stdin(Stdio::null())
        .stdout(log)
        .stderr(log_err)
        .spawn()
        .unwrap_or_else(|e| panic!("spawn schemathesis: {e}"));
    let deadline = Instant::now() + RUN_LIMIT;
    let status = loop {
        if let Some(status) = child.try_wait().unwrap_or_else(|e| panic!("wait: {e}")) {
            break Some(status);
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let printed = std::fs::read_to_string(&log_path).unwrap_or_default();
    match status {
        Some(status) => (status.success(), printed),
        None => (
            false,
            format!("{printed}\n[killed: still running after {RUN_LIMIT:?}]"),
        ),
    }
}

#[test]
fn openapi_document_is_served_and_every_operation_answers_as_documented() {
    let dir = temp_dir();
    let config = dir.path().join("warden.toml");
    std::fs::write(
        &config,
        "[[check]]\nname = \"web\"\nkind = \"noop\"\nevery = \"1h\"\n\n\
         [[check]]\nname = \"job\"\nkind = \"heartbeat\"\nperiod = \"1h\"\n",
    )
    .unwrap_or_else(|e| panic!("config: {e}"));
    let config = config.display().to_string();
    let data = dir.path().join("data");
    let hub = Hub::start(&data, &["--config", &config]);
    let token = hub
        .new_token
        .clone()
        .unwrap_or_else(|| panic!("no admin token printed"));

    // The document, without a token.
    let response = reqwest::blocking::get(format!("{}/api/v1/openapi.json", hub.url))
        .unwrap_or_else(|e| panic!("GET openapi.json: {e}"));
    assert_eq!(response.status().as_u16(), 200);
    assert_eq!(
        response
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok()),
        Some("application/json")
    );
    let document: Value = response
        .json()
        .unwrap_or_else(|e| panic!("openapi.json is not JSON: {e}"));
    assert_eq!(document["openapi"], "3.1.0");
    let paths = document["paths"]
        .as_object()
        .unwrap_or_else(|| panic!("no paths: {document}"));
    for path in [
        "/api/v1/health",
        "/api/v1/openapi.json",
        "/api/v1/checks",
        "/api/v1/runs/{id}",
        "/api/v1/queue/lease",
        "/api/v1/series/{name}",
        "/api/v1/incidents/{id}/ack",
        "/api/v1/events",
        "/ping/{key}/{action}",
        "/metrics",
    ] {
        assert!(paths.contains_key(path), "{path} missing from the document");
    }
    assert!(
        document["components"]["schemas"]["ErrorBody"].is_object(),
        "no ErrorBody schema"
    );

    let Some(schemathesis) = schemathesis() else {
        return;
    };
    let api = Api::new(&hub.url, &token);
    let (status, job) = api
        .get("/api/v1/checks/job")
        .unwrap_or_else(|e| panic!("GET job: {e}"));
    assert_eq!(status, 200, "{job}");
    let ping_key = job["heartbeat"]["ping_url"]
        .as_str()
        .and_then(|url| url.rsplit('/').next())
        .unwrap_or_else(|| panic!("no ping url: {job}"))
        .to_string();
    // Known values where random ones would only meet 404s or stall: the real ping key (so
    // pings are recorded), a check that exists, and no long waits on runs that nothing executes
    // (schemathesis enqueues runs of made-up kinds).
    std::fs::write(
        dir.path().join("schemathesis.toml"),
        format!(
            "[[operations]]\ninclude-operation-id = \"get_run\"\n\
             parameters = {{ \"query.wait_ms\" = 0 }}\n\n\
             [[operations]]\ninclude-tag = \"heartbeats\"\n\
             parameters = {{ \"path.key\" = \"{ping_key}\" }}\n\n\
             [[operations]]\ninclude-operation-id-regex = \"^(get_check|check_uptime|run_check)$\"\n\
             parameters = {{ \"path.name\" = \"web\" }}\n"
        ),
    )
    .unwrap_or_else(|e| panic!("schemathesis.toml: {e}"));
    let examples = std::env::var("WARDEN_SCHEMATHESIS_EXAMPLES")
        .unwrap_or_else(|_| DEFAULT_EXAMPLES.to_string());
    let document_url = format!("{}/api/v1/openapi.json", hub.url);
    let authorization = format!("Authorization: Bearer {token}");
    let common = [
        "--config-file",
        "schemathesis.toml",
        "run",
        document_url.as_str(),
        "-H",
        authorization.as_str(),
        "--checks",
        "not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance",
        "--max-examples",
        examples.as_str(),
        "--seed",
        "1",
        "--request-timeout",
        "20",
        "--no-color",
    ];
    // Everything but revoking tokens first (it could revoke the token the run itself uses),
    // then that alone.
    for only_revoke in [false, true] {
        let mut args = common.to_vec();
        args.extend(if only_revoke {
            ["--include-operation-id", "revoke_token"]
        } else {
            ["--exclude-operation-id", "revoke_token"]
        });
        let (passed, printed) = run_schemathesis(&schemathesis, dir.path(), &args);
        assert!(
            passed,
            "schemathesis found answers that are not as documented:\n{printed}\n\nhub stderr:\n{}",
            hub.stderr_lines().join("\n")
        );
    }

    // Still up, and nothing panicked.
    let (status, _) = Api::new(&hub.url, &token)
        .get("/api/v1/health")
        .unwrap_or_else(|e| panic!("health: {e}"));
    assert_eq!(status, 200);
    let panics: Vec<String> = hub
        .stderr_lines()
        .into_iter()
        .filter(|line| line.contains("panicked"))
        .collect();
    assert!(
        panics.is_empty(),
        "the hub panicked:\n{}",
        panics.join("\n")
    );
}
