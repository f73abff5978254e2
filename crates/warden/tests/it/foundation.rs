//! Foundation: `up` and its health endpoint, config check, crash safety of the queue,
//! refusals of bad data folders and busy ports, graceful shutdown.

use std::collections::BTreeMap;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::harness::{Api, Hub, error_lines, run_warden, temp_dir, warden_bin};

#[test]
fn up_serves_health_without_auth_and_prints_the_token_once() {
    let dir = temp_dir();
    let data = dir.path().join("data");
    let mut hub = Hub::start(&data, &[]);
    let token = hub.new_token.clone().unwrap_or_default();
    assert!(
        token.starts_with("wdn_") && token.len() == 68,
        "token: {token:?}"
    );
    let health: Value = reqwest::blocking::get(format!("{}/api/v1/health", hub.url))
        .and_then(|r| r.json())
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(health["status"], "ok");
    // Only a hash is stored: the token text is nowhere in the data folder.
    for entry in std::fs::read_dir(&data)
        .unwrap_or_else(|e| panic!("{e}"))
        .flatten()
    {
        let bytes = std::fs::read(entry.path()).unwrap_or_default();
        assert!(
            !bytes.windows(token.len()).any(|w| w == token.as_bytes()),
            "token stored in {:?}",
            entry.path()
        );
    }
    // Endpoints other than health refuse without a token, and accept the printed one.
    let anonymous = Api::new(&hub.url, "wdn_nope");
    let (status, body) = anonymous
        .get("/api/v1/queue/runs/1")
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (401, Some("unauthorized"))
    );
    hub.signal("TERM");
    assert_eq!(hub.wait_exit(Duration::from_secs(30)), Some(0));

    let mut again = Hub::start(&data, &[]);
    assert_eq!(again.new_token, None, "the admin token was printed twice");
    let api = Api::new(&again.url, &token);
    let (status, _) = api
        .post("/api/v1/queue/runs", &json!({"kind": "job"}))
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(status, 201);
    again.signal("INT");
    assert_eq!(again.wait_exit(Duration::from_secs(30)), Some(0));
}

#[test]
fn config_check_reports_every_error_with_position_and_exit_2() {
    let dir = temp_dir();
    let good = dir.path().join("good.toml");
    std::fs::write(
        &good,
        "[[check]]\nname = \"load\"\nkind = \"exec\"\ncommand = [\"true\"]\nevery = \"30s\"\n",
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let (code, stdout, _) = run_warden(&["config", "check", good.to_str().unwrap_or_default()]);
    assert_eq!(code, Some(0));
    assert!(stdout.contains("ok (1 check)"), "{stdout}");

    let bad = dir.path().join("bad.toml");
    std::fs::write(&bad, "[[check]]\nname = \"load\"\nkind = \"exec\"\nevery = \"30 s\"\n\n[hub]\nlisten = \"nowhere\"\n").unwrap_or_else(|e| panic!("{e}"));
    let path = bad.to_str().unwrap_or_default();
    let (code, stdout, stderr) = run_warden(&["config", "check", path]);
    assert_eq!(code, Some(2));
    assert_eq!(stdout, "");
    let expected = format!(
        "{path}:1:1: check[0]: an exec check needs `command = [\"prog\", \"arg\", ...]`\n\
         {path}:4:9: check[0].every: `30 s` has an unknown unit ` s`: use ms, s, m, h, d or w\n\
         {path}:7:10: hub.listen: `nowhere` is not a socket address: expected IP:PORT, e.g. `127.0.0.1:7878`\n\
         3 errors in {path}\n"
    );
    assert_eq!(stderr, expected);

    let (code, _, stderr) = run_warden(&["config", "check", "/nonexistent/warden.toml"]);
    assert_eq!(code, Some(2));
    assert!(
        stderr.starts_with("/nonexistent/warden.toml: cannot read config: No such file"),
        "{stderr}"
    );
}

#[test]
fn a_data_file_that_is_not_sqlite_is_refused_untouched() {
    let dir = temp_dir();
    let data = dir.path().join("data");
    std::fs::create_dir_all(&data).unwrap_or_else(|e| panic!("{e}"));
    let db = data.join("warden.db");
    let garbage: Vec<u8> = (0..10_000u32).map(|i| (i * 7 % 251) as u8).collect();
    std::fs::write(&db, &garbage).unwrap_or_else(|e| panic!("{e}"));
    let (code, _, stderr) = run_warden(&[
        "up",
        "--data",
        data.to_str().unwrap_or_default(),
        "--listen",
        "127.0.0.1:0",
    ]);
    assert_eq!(code, Some(1), "{stderr}");
    assert_eq!(
        error_lines(&stderr),
        vec![format!(
            "error: {} is not a warden database (not SQLite, or corrupt); it was left untouched",
            db.display()
        )]
    );
    assert!(!stderr.contains("panicked"));
    assert_eq!(
        std::fs::read(&db).unwrap_or_default(),
        garbage,
        "the file was modified"
    );
    let names: Vec<String> = std::fs::read_dir(&data)
        .unwrap_or_else(|e| panic!("{e}"))
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(names, vec!["warden.db"], "files were created beside it");
}

#[test]
fn a_data_folder_without_write_permission_is_refused() {
    let dir = temp_dir();
    let data = dir.path().join("readonly");
    std::fs::create_dir_all(&data).unwrap_or_else(|e| panic!("{e}"));
    std::fs::set_permissions(&data, std::fs::Permissions::from_mode(0o555))
        .unwrap_or_else(|e| panic!("{e}"));
    // Root ignores permission bits: run the binary as `nobody` then, from a copy it may execute.
    let running_as_root = std::fs::metadata("/proc/self")
        .map(|m| m.uid() == 0)
        .unwrap_or(false);
    let mut command;
    if running_as_root {
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755))
            .unwrap_or_else(|e| panic!("{e}"));
        let copy = dir.path().join("warden");
        std::fs::copy(warden_bin(), &copy).unwrap_or_else(|e| panic!("{e}"));
        std::fs::set_permissions(&copy, std::fs::Permissions::from_mode(0o755))
            .unwrap_or_else(|e| panic!("{e}"));
        command = Command::new(&copy);
        command.uid(65534).gid(65534);
    } else {
        command = Command::new(warden_bin());
    }
    let output = command
        .args([
            "up",
            "--data",
            data.to_str().unwrap_or_default(),
            "--listen",
            "127.0.0.1:0",
        ])
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("{e}"));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert_eq!(
        error_lines(&stderr),
        vec![format!(
            "error: data folder {} is not writable: Permission denied (os error 13)",
            data.display()
        )]
    );
    assert_eq!(std::fs::read_dir(&data).map(|d| d.count()).unwrap_or(99), 0);
}

#[test]
fn a_port_in_use_is_refused() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap_or_else(|e| panic!("{e}"));
    let addr = taken
        .local_addr()
        .unwrap_or_else(|e| panic!("{e}"))
        .to_string();
    let dir = temp_dir();
    let data = dir.path().join("data");
    let (code, stdout, stderr) = run_warden(&[
        "up",
        "--data",
        data.to_str().unwrap_or_default(),
        "--listen",
        &addr,
    ]);
    assert_eq!(code, Some(1), "{stderr}");
    assert_eq!(
        error_lines(&stderr),
        vec![format!(
            "error: cannot listen on {addr}: Address already in use (os error 98)"
        )]
    );
    assert!(
        !stdout.contains("admin token"),
        "a token was shown for a hub that never served"
    );
    // The first successful start still shows the admin token.
    let hub = Hub::start(&data, &[]);
    assert!(
        hub.new_token.is_some(),
        "the admin token was created by the failed start and never shown"
    );
}

/// Records what the hub acknowledged, so the crash test can check none of it was lost.
#[derive(Default)]
struct Acked {
    enqueued: Vec<i64>,
    completed: Vec<i64>,
    /// Leased and never finished: run id -> (fence, lease_until).
    held: BTreeMap<i64, (i64, i64)>,
}

#[test]
fn sigkill_mid_stream_loses_nothing_acknowledged_and_leases_come_back() {
    let dir = temp_dir();
    let data = dir.path().join("data");
    let hub = Hub::start(&data, &[]);
    let token = hub.new_token.clone().unwrap_or_default();
    let acked = Arc::new(Mutex::new(Acked::default()));

    // Some leases that are never finished: they must come back after their deadline.
    let api = Api::new(&hub.url, &token);
    for i in 0..20 {
        let (status, body) = api
            .post(
                "/api/v1/queue/runs",
                &json!({"kind": "job", "payload": {"i": i}, "priority": 10}),
            )
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(status, 201);
        acked
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .enqueued
            .push(body["run_id"].as_i64().unwrap_or(0));
    }
    let (_, leased) = api
        .post(
            "/api/v1/queue/lease",
            &json!({"worker": "doomed", "limit": 20, "lease_ms": 2000}),
        )
        .unwrap_or_else(|e| panic!("{e}"));
    let leases = leased["leases"].as_array().cloned().unwrap_or_default();
    assert_eq!(leases.len(), 20);
    for lease in &leases {
        let id = lease["run_id"].as_i64().unwrap_or(0);
        let fence = lease["fence"].as_i64().unwrap_or(0);
        let until = lease["lease_until"].as_i64().unwrap_or(0);
        acked
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .held
            .insert(id, (fence, until));
    }

    // Workers enqueue, lease and complete in a loop while the hub is killed under them.
    let mut workers = Vec::new();
    for worker in 0..4 {
        let url = hub.url.clone();
        let token = token.clone();
        let acked = Arc::clone(&acked);
        workers.push(std::thread::spawn(move || {
            let api = Api::new(&url, &token);
            for i in 0..10_000 {
                let Ok((201, body)) = api.post(
                    "/api/v1/queue/runs",
                    &json!({"kind": "job", "payload": {"w": worker, "i": i}}),
                ) else {
                    return;
                };
                acked
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .enqueued
                    .push(body["run_id"].as_i64().unwrap_or(0));
                let Ok((200, body)) = api.post(
                    "/api/v1/queue/lease",
                    &json!({"worker": format!("w{worker}"), "limit": 1, "lease_ms": 60000}),
                ) else {
                    return;
                };
                for lease in body["leases"].as_array().cloned().unwrap_or_default() {
                    let id = lease["run_id"].as_i64().unwrap_or(0);
                    let fence = lease["fence"].as_i64().unwrap_or(0);
                    let path = format!("/api/v1/queue/runs/{id}/complete");
                    match api.post(
                        &path,
                        &json!({"fence": fence, "status": "ok", "summary": "done"}),
                    ) {
                        Ok((200, _)) => acked
                            .lock()
                            .unwrap_or_else(|e| e.into_inner())
                            .completed
                            .push(id),
                        _ => return,
                    }
                }
            }
        }));
    }
    let started = Instant::now();
    while acked
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .completed
        .len()
        < 200
    {
        assert!(
            started.elapsed() < Duration::from_secs(120),
            "workers made no progress"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    let mut hub = hub;
    hub.signal("KILL");
    assert_eq!(
        hub.wait_exit(Duration::from_secs(30)),
        None,
        "SIGKILL leaves no exit code"
    );
    for worker in workers {
        let _ = worker.join();
    }
    drop(hub);

    let acked = Arc::try_unwrap(acked)
        .ok()
        .map(|m| m.into_inner().unwrap_or_else(|e| e.into_inner()))
        .unwrap_or_default();
    let restarted = Hub::start(&data, &[]);
    let api = Api::new(&restarted.url, &token);
    for id in &acked.enqueued {
        let (status, body) = api
            .get(&format!("/api/v1/queue/runs/{id}"))
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(status, 200, "acknowledged run {id} lost: {body}");
    }
    for id in &acked.completed {
        let (_, body) = api
            .get(&format!("/api/v1/queue/runs/{id}"))
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            body["state"], "completed",
            "acknowledged completion of run {id} lost: {body}"
        );
        assert_eq!(body["summary"], "done");
    }

    // The abandoned leases come back, each only after its deadline, and the old fences are refused.
    let mut returned: BTreeMap<i64, i64> = BTreeMap::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    while returned.len() < acked.held.len() {
        assert!(
            Instant::now() < deadline,
            "only {} of {} leases came back",
            returned.len(),
            acked.held.len()
        );
        let before = now_ms();
        let (_, body) = api
            .post(
                "/api/v1/queue/lease",
                &json!({"worker": "rescuer", "limit": 100, "lease_ms": 60000}),
            )
            .unwrap_or_else(|e| panic!("{e}"));
        for lease in body["leases"].as_array().cloned().unwrap_or_default() {
            let id = lease["run_id"].as_i64().unwrap_or(0);
            if let Some((old_fence, until)) = acked.held.get(&id) {
                assert!(
                    now_ms() >= *until,
                    "run {id} re-leased before its lease deadline"
                );
                let _ = before;
                assert!(lease["fence"].as_i64().unwrap_or(0) > *old_fence);
                assert_eq!(lease["attempt"], 2);
                returned.insert(id, lease["fence"].as_i64().unwrap_or(0));
            }
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    for (id, (old_fence, _)) in &acked.held {
        let (status, body) = api
            .post(
                &format!("/api/v1/queue/runs/{id}/complete"),
                &json!({"fence": old_fence}),
            )
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(status, 409, "a stale completion was accepted: {body}");
        let new_fence = returned.get(id).copied().unwrap_or(0);
        let (status, _) = api
            .post(
                &format!("/api/v1/queue/runs/{id}/complete"),
                &json!({"fence": new_fence, "status": "ok"}),
            )
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(status, 200);
    }
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}
