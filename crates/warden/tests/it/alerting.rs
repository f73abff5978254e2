//! Alerting end to end: a real hub runs an exec check that turns crit; a real webhook receiver
//! gets the incident with the right fields, live clients see it, the CLI lists and
//! acknowledges it, and when the check turns ok the resolution arrives. Silences hold
//! notifications and release them; `warden notify test` reports delivery and failure.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::path::Path;
use std::sync::mpsc;
use std::time::Duration;

use futures_util::StreamExt;
use serde_json::Value;
use tokio_tungstenite::tungstenite::Message;

use crate::checks::wait_for;
use crate::harness::{Api, Hub, run_warden, temp_dir};

/// One request a receiver got.
#[derive(Debug)]
struct Received {
    path: String,
    headers: Vec<(String, String)>,
    body: Value,
}

/// A minimal HTTP/1.1 webhook receiver on a thread: answers 200 to everything and passes each
/// request on.
fn webhook_receiver() -> (String, mpsc::Receiver<Received>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap_or_else(|e| panic!("{e}"));
    let url = format!(
        "http://{}",
        listener.local_addr().unwrap_or_else(|e| panic!("{e}"))
    );
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let _ = stream.set_read_timeout(Some(Duration::from_secs(10)));
            let mut reader = BufReader::new(match stream.try_clone() {
                Ok(clone) => clone,
                Err(_) => continue,
            });
            let mut request_line = String::new();
            if reader.read_line(&mut request_line).is_err() {
                continue;
            }
            let path = request_line
                .split_whitespace()
                .nth(1)
                .unwrap_or("")
                .to_string();
            let mut headers = Vec::new();
            let mut length = 0usize;
            loop {
                let mut line = String::new();
                if reader.read_line(&mut line).is_err() || line.trim().is_empty() {
                    break;
                }
                if let Some((name, value)) = line.trim_end().split_once(':') {
                    let (name, value) =
                        (name.trim().to_ascii_lowercase(), value.trim().to_string());
                    if name == "content-length" {
                        length = value.parse().unwrap_or(0);
                    }
                    headers.push((name, value));
                }
            }
            let mut body = vec![0u8; length];
            if reader.read_exact(&mut body).is_err() {
                continue;
            }
            let _ = stream
                .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\nconnection: close\r\n\r\nok");
            let body = serde_json::from_slice(&body).unwrap_or(Value::Null);
            if tx
                .send(Received {
                    path,
                    headers,
                    body,
                })
                .is_err()
            {
                break;
            }
        }
    });
    (url, rx)
}

/// Live events of the alerting kinds, read on a thread of their own.
fn live_alerting_events(hub: &Hub, token: &str) -> mpsc::Receiver<Value> {
    let address = hub.url.trim_start_matches("http://").to_string();
    let url = format!(
        "ws://{address}/api/v1/events?token={token}&kinds=incident_opened,incident_acknowledged,incident_resolved,notification_sent,notification_failed"
    );
    let (tx, rx) = mpsc::channel();
    let (ready_tx, ready_rx) = mpsc::channel();
    std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap_or_else(|e| panic!("{e}"));
        runtime.block_on(async move {
            let (mut ws, _) = tokio_tungstenite::connect_async(url)
                .await
                .unwrap_or_else(|e| panic!("websocket: {e}"));
            let _ = ready_tx.send(());
            while let Ok(Some(Ok(message))) =
                tokio::time::timeout(Duration::from_secs(120), ws.next()).await
            {
                if let Message::Text(text) = message {
                    let value: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
                    if value["type"] == "event" && tx.send(value).is_err() {
                        break;
                    }
                }
            }
        });
    });
    ready_rx
        .recv_timeout(Duration::from_secs(30))
        .unwrap_or_else(|e| panic!("websocket did not connect: {e}"));
    rx
}

fn write_config(dir: &Path, body: &str) -> String {
    let path = dir.join("warden.toml");
    std::fs::write(&path, body).unwrap_or_else(|e| panic!("{e}"));
    path.display().to_string()
}

/// An exec check `web-1` every second: crit while `flag` exists, ok otherwise.
fn flag_check(flag: &Path) -> String {
    format!(
        r#"
[[check]]
name = "web-1"
kind = "exec"
every = "1s"
labels = {{ team = "web" }}
command = ["sh", "-c", "if [ -e '{}' ]; then echo 'CRITICAL - upstream down'; exit 2; fi; echo 'OK - fine'"]
"#,
        flag.display()
    )
}

fn next_request(rx: &mpsc::Receiver<Received>, what: &str) -> Received {
    rx.recv_timeout(Duration::from_secs(60))
        .unwrap_or_else(|_| panic!("the receiver got no {what}"))
}

fn next_live(rx: &mpsc::Receiver<Value>, kind: &str) -> Value {
    loop {
        let event = rx
            .recv_timeout(Duration::from_secs(60))
            .unwrap_or_else(|_| panic!("no live {kind} event"));
        if event["kind"] == kind {
            return event;
        }
    }
}

/// Waits until the alerter has evaluated `runs` more finished runs than it had when called: by
/// then whatever it would page for has been decided and queued as a delivery.
fn wait_for_evaluations(api: &Api, runs: u64) {
    let evaluated = || {
        api.get("/api/v1/alerting")
            .ok()
            .and_then(|(_, body)| body["runs_evaluated"].as_u64())
    };
    let start = wait_for(Duration::from_secs(30), "the alerter's counters", evaluated);
    wait_for(Duration::from_secs(30), "more runs evaluated", || {
        evaluated().filter(|n| *n >= start + runs)
    });
}

fn cli(hub: &Hub, token: &str, args: &[&str]) -> (Option<i32>, String, String) {
    let mut all = vec!["--url", hub.url.as_str(), "--token", token];
    all.extend_from_slice(args);
    run_warden(&all)
}

#[test]
fn an_outage_pages_once_with_the_right_fields_and_its_recovery_resolves() {
    let dir = temp_dir();
    let flag = dir.path().join("down");
    let (receiver_url, requests) = webhook_receiver();
    let config = write_config(
        dir.path(),
        &format!(
            r#"
[[notifier]]
name = "ops"
kind = "webhook"
url = "{receiver_url}/warden"
secret = "s3cret"
headers = {{ "X-Team" = "ops" }}

[[rule]]
name = "web-down"
checks = ["web-*"]
failure_threshold = 2
success_threshold = 1
send_on_resolved = true
notify = ["ops"]
message = "{{{{check}}}} is {{{{status}}}}: {{{{summary}}}}"
{}"#,
            flag_check(&flag)
        ),
    );
    let hub = Hub::start(&dir.path().join("data"), &["--config", &config]);
    let token = hub.new_token.clone().unwrap_or_default();
    let api = Api::new(&hub.url, &token);
    let live = live_alerting_events(&hub, &token);
    // Healthy first: no incident.
    wait_for(Duration::from_secs(30), "web-1 to be ok", || {
        let (_, check) = api.get("/api/v1/checks/web-1").ok()?;
        (check["status"] == "ok").then_some(())
    });
    std::fs::write(&flag, b"").unwrap_or_else(|e| panic!("{e}"));

    let opened = next_request(&requests, "incident");
    assert_eq!(opened.path, "/warden");
    assert!(
        opened
            .headers
            .iter()
            .any(|(name, value)| name == "x-warden-signature" && value.starts_with("sha256=")),
        "{:?}",
        opened.headers
    );
    assert!(
        opened
            .headers
            .contains(&("x-team".to_string(), "ops".to_string()))
    );
    let body = &opened.body;
    assert_eq!(body["event"], "opened");
    assert_eq!(body["state"], "firing");
    assert_eq!(body["message"], "web-1 is crit: CRITICAL - upstream down");
    assert_eq!(body["title"], "[CRITICAL] web-down: web-1");
    let incident = &body["incident"];
    assert_eq!(incident["rule"], "web-down");
    assert_eq!(incident["check"], "web-1");
    assert_eq!(incident["status"], "crit");
    assert_eq!(incident["severity"], "critical");
    assert_eq!(incident["summary"], "CRITICAL - upstream down");
    assert_eq!(incident["labels"]["team"], "web");
    let id = incident["id"].as_i64().unwrap_or_else(|| panic!("{body}"));
    assert_eq!(
        incident["url"],
        format!("{}/api/v1/incidents/{id}", hub.url).as_str()
    );

    // Live clients saw it open and get delivered.
    let live_opened = next_live(&live, "incident_opened");
    assert_eq!(live_opened["incident_id"], id);
    assert_eq!(live_opened["check"], "web-1");
    let live_sent = next_live(&live, "notification_sent");
    assert_eq!(live_sent["notifier"], "ops");

    // The CLI lists it and acknowledges it; the API shows who and the note.
    let (code, out, err) = cli(&hub, &token, &["incidents", "--open"]);
    assert_eq!(code, Some(0), "{err}");
    assert!(out.contains("web-down") && out.contains("web-1"), "{out}");
    let (code, out, err) = cli(&hub, &token, &["ack", &id.to_string(), "--note", "on it"]);
    assert_eq!(code, Some(0), "{err}");
    assert!(
        out.contains(&format!("acknowledged incident {id}")),
        "{out}"
    );
    let (_, detail) = api
        .get(&format!("/api/v1/incidents/{id}"))
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(detail["state"], "acknowledged");
    assert_eq!(detail["ack_note"], "on it");
    assert!(
        detail["acknowledged_by"]
            .as_str()
            .is_some_and(|by| by.starts_with("admin")),
        "{detail}"
    );
    assert_eq!(next_live(&live, "incident_acknowledged")["note"], "on it");
    // Still failing: one incident, one page (two more crit runs evaluated, no new delivery).
    wait_for_evaluations(&api, 2);
    let (_, detail) = api
        .get(&format!("/api/v1/incidents/{id}"))
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        detail["deliveries"].as_array().map(Vec::len),
        Some(1),
        "{detail}"
    );
    assert!(
        requests.try_recv().is_err(),
        "a second page while still down"
    );

    std::fs::remove_file(&flag).unwrap_or_else(|e| panic!("{e}"));
    let resolved = next_request(&requests, "resolution");
    assert_eq!(resolved.body["event"], "resolved");
    assert_eq!(resolved.body["state"], "resolved");
    assert_eq!(resolved.body["incident"]["id"], id);
    assert_eq!(resolved.body["incident"]["status"], "ok");
    assert_eq!(resolved.body["incident"]["summary"], "OK - fine");
    assert_eq!(next_live(&live, "incident_resolved")["incident_id"], id);

    let detail = wait_for(
        Duration::from_secs(30),
        "the resolve to be delivered",
        || {
            let (_, detail) = api.get(&format!("/api/v1/incidents/{id}")).ok()?;
            let deliveries = detail["deliveries"].as_array()?;
            (deliveries.len() == 2 && deliveries.iter().all(|d| d["state"] == "sent"))
                .then_some(detail)
        },
    );
    assert_eq!(detail["state"], "resolved");
    let kinds: Vec<&str> = detail["timeline"]
        .as_array()
        .map(|timeline| timeline.iter().filter_map(|e| e["kind"].as_str()).collect())
        .unwrap_or_default();
    assert_eq!(
        kinds,
        [
            "opened",
            "delivered",
            "acknowledged",
            "resolved",
            "delivered"
        ]
    );
    let (code, out, _) = cli(&hub, &token, &["incidents", &id.to_string()]);
    assert_eq!(code, Some(0));
    assert!(
        out.contains("acknowledged") && out.contains("on it"),
        "{out}"
    );
    // Not found is a typed error naming the incident.
    let (code, _, err) = cli(&hub, &token, &["ack", "999999"]);
    assert_eq!(code, Some(1));
    assert!(err.contains("incident 999999 not found"), "{err}");
}

#[test]
fn a_silence_holds_the_page_until_it_ends() {
    let dir = temp_dir();
    let flag = dir.path().join("down");
    let (receiver_url, requests) = webhook_receiver();
    let config = write_config(
        dir.path(),
        &format!(
            r#"
[[notifier]]
name = "ops"
kind = "slack"
url = "{receiver_url}/slack"
default = true
{}"#,
            flag_check(&flag)
        ),
    );
    let hub = Hub::start(&dir.path().join("data"), &["--config", &config]);
    let token = hub.new_token.clone().unwrap_or_default();
    let api = Api::new(&hub.url, &token);
    let (code, out, err) = cli(
        &hub,
        &token,
        &[
            "silence", "--check", "web*", "--for", "2h", "--note", "deploy",
        ],
    );
    assert_eq!(code, Some(0), "{err}");
    assert!(out.contains("web*") && out.contains("deploy"), "{out}");
    std::fs::write(&flag, b"").unwrap_or_else(|e| panic!("{e}"));
    // The default rule opens the incident (2 failures), held: it records, nobody is paged.
    let incident = wait_for(Duration::from_secs(30), "a held incident", || {
        let (_, page) = api.get("/api/v1/incidents?open=true").ok()?;
        page["incidents"].as_array()?.first().cloned()
    });
    assert_eq!(incident["rule"], "default");
    assert_eq!(incident["held"], true);
    wait_for_evaluations(&api, 2);
    assert!(requests.try_recv().is_err(), "paged during the silence");
    // Ending the silence releases the page of the incident still open.
    let (_, silences) = api
        .get("/api/v1/silences")
        .unwrap_or_else(|e| panic!("{e}"));
    let silence_id = silences["silences"][0]["id"].as_i64().unwrap_or_default();
    let (code, _, err) = cli(
        &hub,
        &token,
        &["silence", "--delete", &silence_id.to_string()],
    );
    assert_eq!(code, Some(0), "{err}");
    let page = next_request(&requests, "released page");
    assert_eq!(page.path, "/slack");
    assert!(
        page.body["text"]
            .as_str()
            .is_some_and(|text| text.contains("web-1 is crit")),
        "{:?}",
        page.body
    );
    let id = incident["id"].as_i64().unwrap_or_default();
    let (_, detail) = api
        .get(&format!("/api/v1/incidents/{id}"))
        .unwrap_or_else(|e| panic!("{e}"));
    let kinds: Vec<&str> = detail["timeline"]
        .as_array()
        .map(|timeline| timeline.iter().filter_map(|e| e["kind"].as_str()).collect())
        .unwrap_or_default();
    assert_eq!(kinds[..3], ["opened", "held", "released"]);
}

#[test]
fn notify_test_reports_delivery_and_failure() {
    let dir = temp_dir();
    let (receiver_url, requests) = webhook_receiver();
    // A port nobody listens on.
    let closed = TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .unwrap_or_else(|e| panic!("{e}"));
    let config = write_config(
        dir.path(),
        &format!(
            r#"
[[notifier]]
name = "chat"
kind = "discord"
url = "{receiver_url}/api/webhooks/1/x"

[[notifier]]
name = "broken"
kind = "webhook"
url = "http://{closed}/hook"
timeout = "2s"
"#
        ),
    );
    let hub = Hub::start(&dir.path().join("data"), &["--config", &config]);
    let token = hub.new_token.clone().unwrap_or_default();
    let (code, out, err) = cli(&hub, &token, &["notify", "test", "chat"]);
    assert_eq!(code, Some(0), "{err}");
    assert!(out.starts_with("delivered to chat (discord)"), "{out}");
    let request = next_request(&requests, "test message");
    assert_eq!(request.path, "/api/webhooks/1/x");
    assert_eq!(request.body["content"], "[TEST] test: chat");
    let (code, out, _) = cli(&hub, &token, &["notify", "test", "broken"]);
    assert_eq!(code, Some(1));
    assert!(
        out.starts_with("NOT delivered to broken (webhook):"),
        "{out}"
    );
    let (code, _, err) = cli(&hub, &token, &["notify", "test", "nope"]);
    assert_eq!(code, Some(1));
    assert!(err.contains("notifier `nope` not found"), "{err}");
    let (code, out, _) = cli(&hub, &token, &["--json", "notify", "test", "chat"]);
    assert_eq!(code, Some(0));
    let json: Value = serde_json::from_str(&out).unwrap_or(Value::Null);
    assert_eq!(json["delivered"], true);
}

#[test]
fn a_page_queued_before_a_restart_is_sent_after_it() {
    let dir = temp_dir();
    let flag = dir.path().join("down");
    std::fs::write(&flag, b"").unwrap_or_else(|e| panic!("{e}"));
    // The receiver's port is free now; it starts listening only after the restart.
    let port = TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .unwrap_or_else(|e| panic!("{e}"));
    let config = write_config(
        dir.path(),
        &format!(
            r#"
[[notifier]]
name = "ops"
kind = "webhook"
url = "http://127.0.0.1:{port}/warden"
default = true
backoff = "1s"
max_attempts = 10
{}"#,
            flag_check(&flag)
        ),
    );
    let data = dir.path().join("data");
    let mut hub = Hub::start(&data, &["--config", &config]);
    let token = hub.new_token.clone().unwrap_or_default();
    let api = Api::new(&hub.url, &token);
    let id = wait_for(Duration::from_secs(30), "a failed first attempt", || {
        let (_, page) = api.get("/api/v1/incidents?open=true").ok()?;
        let id = page["incidents"].as_array()?.first()?["id"].as_i64()?;
        let (_, detail) = api.get(&format!("/api/v1/incidents/{id}")).ok()?;
        (detail["deliveries"][0]["attempts"].as_i64()? >= 1).then_some(id)
    });
    hub.signal("TERM");
    assert_eq!(hub.wait_exit(Duration::from_secs(30)), Some(0));
    drop(hub);
    let listener = TcpListener::bind(("127.0.0.1", port)).unwrap_or_else(|e| panic!("{e}"));
    let (tx, requests) = mpsc::channel::<Value>();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let mut reader = BufReader::new(match stream.try_clone() {
                Ok(clone) => clone,
                Err(_) => continue,
            });
            let mut length = 0usize;
            loop {
                let mut line = String::new();
                if reader.read_line(&mut line).is_err() || line.trim().is_empty() {
                    break;
                }
                if let Some(value) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                    length = value.trim().parse().unwrap_or(0);
                }
            }
            let mut body = vec![0u8; length];
            let _ = reader.read_exact(&mut body);
            let _ = stream
                .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\nconnection: close\r\n\r\nok");
            let _ = tx.send(serde_json::from_slice(&body).unwrap_or(Value::Null));
        }
    });
    let hub = Hub::start(&data, &["--config", &config]);
    let page = requests
        .recv_timeout(Duration::from_secs(60))
        .unwrap_or_else(|_| panic!("the queued page was lost in the restart"));
    assert_eq!(page["event"], "opened");
    assert_eq!(page["incident"]["id"], id);
    // Still the same incident: the restart neither lost it nor opened a second one.
    let api = Api::new(&hub.url, &token);
    wait_for_evaluations(&api, 2);
    let (_, open) = api
        .get("/api/v1/incidents?open=true")
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(open["incidents"].as_array().map(Vec::len), Some(1));
    assert!(requests.try_recv().is_err(), "paged twice");
}
