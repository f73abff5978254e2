//! Live events at `/api/v1/events` against a real hub flooding its bus (hundreds of `noop`
//! checks every second): snapshot then stream with no gap and no duplicate, resume with `since=`,
//! a fresh snapshot when `since` left the replay ring, auth and bad requests refused before the
//! upgrade, a slow client closed without slowing a fast one, pings both ways, and shutdown.

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use serde_json::Value;
use tokio::net::{TcpSocket, TcpStream};
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::{self, Message};

use crate::harness::{Hub, temp_dir, warden_bin};

type Ws = WebSocketStream<TcpStream>;

/// Nothing here waits this long unless the hub is broken; it only turns a hang into a failure.
const HANG: Duration = Duration::from_secs(60);

/// Starts `warden up` on `checks` noop checks every second, with extra environment.
fn start_flooding_hub(dir: &Path, checks: usize, env: &[(&str, &str)]) -> Hub {
    let mut config = String::new();
    for i in 0..checks {
        config.push_str(&format!(
            "[[check]]\nname = \"noop-{i}\"\nkind = \"noop\"\nevery = \"1s\"\n\n"
        ));
    }
    let path = dir.join("warden.toml");
    std::fs::write(&path, config).unwrap_or_else(|e| panic!("{e}"));
    let mut command = Command::new(warden_bin());
    command
        .arg("up")
        .arg("--data")
        .arg(dir.join("data"))
        .args(["--listen", "127.0.0.1:0", "--config"])
        .arg(&path)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for (name, value) in env {
        command.env(name, value);
    }
    let mut child = command.spawn().unwrap_or_else(|e| panic!("spawn: {e}"));
    let stdout = child.stdout.take().unwrap_or_else(|| panic!("stdout"));
    let stderr = child.stderr.take().unwrap_or_else(|| panic!("stderr"));
    let (err_tx, err_rx) = std::sync::mpsc::channel::<String>();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            let _ = err_tx.send(line);
        }
    });
    let mut new_token = None;
    for line in BufReader::new(stdout).lines().map_while(Result::ok) {
        if let Some(token) = line.strip_prefix("admin token (shown once, keep it safe): ") {
            new_token = Some(token.to_string());
        }
        if let Some(url) = line.strip_prefix("warden hub listening on ") {
            return Hub {
                child,
                url: url.to_string(),
                new_token,
                stderr: err_rx,
            };
        }
    }
    let _ = child.kill();
    let _ = child.wait();
    panic!(
        "warden did not start; stderr:\n{}",
        err_rx.try_iter().collect::<Vec<_>>().join("\n")
    );
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap_or_else(|e| panic!("{e}"))
}

fn token(hub: &Hub) -> String {
    hub.new_token.clone().unwrap_or_default()
}

/// Opens `/api/v1/events?QUERY`, with the token as a bearer header when given; a small receive
/// buffer makes a client that stops reading fill up fast.
async fn try_connect(
    hub: &Hub,
    query: &str,
    bearer: Option<&str>,
    small_receive_buffer: bool,
) -> Result<Ws, tungstenite::Error> {
    let address = hub.url.trim_start_matches("http://").to_string();
    let url = format!("ws://{address}/api/v1/events?{query}");
    let mut request = url.into_client_request()?;
    if let Some(token) = bearer {
        let value = format!("Bearer {token}")
            .parse()
            .unwrap_or_else(|e| panic!("{e}"));
        request.headers_mut().insert("authorization", value);
    }
    let socket = TcpSocket::new_v4().unwrap_or_else(|e| panic!("{e}"));
    if small_receive_buffer {
        socket
            .set_recv_buffer_size(4096)
            .unwrap_or_else(|e| panic!("{e}"));
    }
    let addr = address.parse().unwrap_or_else(|e| panic!("{address}: {e}"));
    let stream = socket.connect(addr).await.map_err(tungstenite::Error::Io)?;
    let (ws, _) = tokio_tungstenite::client_async(request, stream).await?;
    Ok(ws)
}

async fn connect(hub: &Hub, query: &str) -> Ws {
    try_connect(hub, query, Some(&token(hub)), false)
        .await
        .unwrap_or_else(|e| panic!("connect ?{query}: {e}"))
}

/// The HTTP status a refused upgrade answered with.
async fn refused(hub: &Hub, query: &str, bearer: Option<&str>) -> u16 {
    match try_connect(hub, query, bearer, false).await {
        Ok(_) => panic!("?{query} was accepted"),
        Err(tungstenite::Error::Http(response)) => response.status().as_u16(),
        Err(other) => panic!("?{query}: unexpected error {other}"),
    }
}

/// The next message of any kind.
async fn next_message(ws: &mut Ws) -> Message {
    match tokio::time::timeout(HANG, ws.next()).await {
        Ok(Some(Ok(message))) => message,
        Ok(Some(Err(error))) => panic!("websocket error: {error}"),
        Ok(None) => panic!("websocket ended"),
        Err(_) => panic!("nothing from the hub within {HANG:?}"),
    }
}

/// The next JSON message, skipping pings and pongs.
async fn next_json(ws: &mut Ws) -> Value {
    loop {
        match next_message(ws).await {
            Message::Text(text) => {
                return serde_json::from_str(text.as_str())
                    .unwrap_or_else(|e| panic!("{e}: {}", text.as_str()));
            }
            Message::Ping(_) | Message::Pong(_) => continue,
            other => panic!("expected JSON, got {other:?}"),
        }
    }
}

fn seq(message: &Value) -> u64 {
    message["seq"]
        .as_u64()
        .unwrap_or_else(|| panic!("no seq in {message}"))
}

/// Reads `count` events and asserts they are exactly `after+1, after+2, …`; returns the last.
async fn read_contiguous(ws: &mut Ws, after: u64, count: usize) -> u64 {
    let mut last = after;
    for _ in 0..count {
        let event = next_json(ws).await;
        assert_eq!(event["type"], "event", "{event}");
        assert_eq!(seq(&event), last + 1, "gap or duplicate: {event}");
        assert!(event["ts_us"].as_i64().is_some_and(|ts| ts > 0), "{event}");
        assert!(event["kind"].is_string(), "{event}");
        last += 1;
    }
    last
}

/// Reads until an event with seq beyond `target` arrives (any filter); returns its seq.
async fn read_past(ws: &mut Ws, target: u64) -> u64 {
    loop {
        let event = next_json(ws).await;
        if seq(&event) > target {
            return seq(&event);
        }
    }
}

/// Waits for a hub log line containing `needle`; returns it.
fn wait_for_log(hub: &Hub, needle: &str) -> String {
    let deadline = Instant::now() + HANG;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match hub.stderr.recv_timeout(left) {
            Ok(line) if line.contains(needle) => return line,
            Ok(_) => {}
            Err(_) => panic!("the hub never logged `{needle}`"),
        }
    }
}

#[test]
fn live_events_snapshot_then_stream_exactly_and_resume() {
    let dir = temp_dir();
    let hub = start_flooding_hub(dir.path(), 300, &[("WARDEN_LIVE_REPLAY", "3000")]);
    let bearer = token(&hub);
    runtime().block_on(async {
        // Refused before the upgrade.
        assert_eq!(refused(&hub, "", None).await, 401);
        assert_eq!(
            refused(&hub, "token=wdn_0000", None).await,
            401,
            "a bad ?token="
        );
        assert_eq!(refused(&hub, "", Some("wdn_0000")).await, 401);
        assert_eq!(
            refused(&hub, "since=99999999999999999", Some(&bearer)).await,
            400
        );
        assert_eq!(refused(&hub, "kinds=bogus", Some(&bearer)).await, 400);
        assert_eq!(refused(&hub, "colour=red", Some(&bearer)).await, 400);

        // Snapshot then every later event, 25 times over while the flood runs.
        let mut last = 0;
        for round in 0..25 {
            let query = if round % 2 == 0 {
                String::new()
            } else {
                format!("token={bearer}") // browsers: the token in the query
            };
            let mut ws = if round % 2 == 0 {
                connect(&hub, "").await
            } else {
                try_connect(&hub, &query, None, false)
                    .await
                    .unwrap_or_else(|e| panic!("{e}"))
            };
            let snapshot = next_json(&mut ws).await;
            assert_eq!(snapshot["type"], "snapshot", "{snapshot}");
            assert!(snapshot.get("reason").is_none());
            let checks = snapshot["checks"].as_array().cloned().unwrap_or_default();
            assert_eq!(
                checks.len(),
                300,
                "every configured check is in the snapshot"
            );
            assert!(
                checks
                    .iter()
                    .all(|c| c["kind"] == "noop" && c["name"].is_string())
            );
            assert!(snapshot["running"].is_array());
            let start = seq(&snapshot);
            assert!(start >= last, "snapshots move forward");
            last = read_contiguous(&mut ws, start, 300).await;
        }

        // Resume after a disconnect: the flood goes on meanwhile (an observer sees it move).
        let mut observer = connect(&hub, "kinds=run_finished").await;
        let _ = next_json(&mut observer).await;
        read_past(&mut observer, last + 500).await;
        let mut resumed = connect(&hub, &format!("since={last}")).await;
        let marker = next_json(&mut resumed).await;
        assert_eq!(marker["type"], "resume", "{marker}");
        assert_eq!(seq(&marker), last);
        let resumed_to = read_contiguous(&mut resumed, last, 1_500).await;
        drop(resumed);
        // Resuming at the newest seq seen continues without a gap too.
        let mut again = connect(&hub, &format!("since={resumed_to}")).await;
        let marker = next_json(&mut again).await;
        assert_eq!(marker["type"], "resume", "{marker}");
        read_contiguous(&mut again, resumed_to, 100).await;
        drop(again);

        // Once the ring (3,000 events) has moved past it, the same `since` gets a snapshot.
        read_past(&mut observer, last + 3_500).await;
        let mut stale = connect(&hub, &format!("since={last}")).await;
        let fresh = next_json(&mut stale).await;
        assert_eq!(fresh["type"], "snapshot", "{fresh}");
        assert_eq!(fresh["reason"], "since is too old");
        assert!(seq(&fresh) > last + 3_000);
        read_contiguous(&mut stale, seq(&fresh), 200).await;
        drop(stale);
        // Far in the past (before this hub even started numbering): a snapshot too.
        let mut ancient = connect(&hub, "since=0").await;
        let fresh = next_json(&mut ancient).await;
        assert_eq!(fresh["type"], "snapshot", "{fresh}");
        assert_eq!(fresh["reason"], "since is too old");
        drop(ancient);

        // Filters: only the named checks and kinds; seq numbers stay global and increasing.
        let mut filtered = connect(&hub, "checks=noop-1,noop-2&kinds=run_finished").await;
        let snapshot = next_json(&mut filtered).await;
        let names: BTreeSet<String> = snapshot["checks"]
            .as_array()
            .cloned()
            .unwrap_or_default()
            .iter()
            .filter_map(|c| c["name"].as_str().map(str::to_string))
            .collect();
        assert_eq!(names, BTreeSet::from(["noop-1".into(), "noop-2".into()]));
        let mut previous = seq(&snapshot);
        for _ in 0..6 {
            let event = next_json(&mut filtered).await;
            assert_eq!(event["kind"], "run_finished", "{event}");
            assert!(
                event["check"] == "noop-1" || event["check"] == "noop-2",
                "{event}"
            );
            assert_eq!(event["status"], "ok");
            assert!(seq(&event) > previous);
            previous = seq(&event);
        }
    });
}

#[test]
fn a_slow_client_is_closed_and_a_fast_one_misses_nothing() {
    let dir = temp_dir();
    let hub = start_flooding_hub(dir.path(), 300, &[("WARDEN_LIVE_BUFFER", "64")]);
    runtime().block_on(async {
        let mut fast = connect(&hub, "").await;
        let fast_start = seq(&next_json(&mut fast).await);
        // The slow client reads nothing after the handshake.
        let mut slow = try_connect(&hub, "", Some(&token(&hub)), true)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        // The fast one reads on its own task all along, checking every seq, until it is past
        // the target it is given.
        let (target_tx, target_rx) = tokio::sync::watch::channel(u64::MAX);
        let fast_reader = tokio::spawn(async move {
            let mut last = fast_start;
            while last <= *target_rx.borrow() {
                let event = next_json(&mut fast).await;
                assert_eq!(seq(&event), last + 1, "the fast client saw a gap: {event}");
                last += 1;
            }
            last
        });
        // (This thread only drives the slow client, which is not reading.)
        let line = wait_for_log(&hub, "live client too slow");
        assert!(line.contains("since="), "{line}");

        // Now the slow client reads what was queued for it: the snapshot, then events without a
        // gap, then a close frame naming the last of them.
        let snapshot = next_json(&mut slow).await;
        assert_eq!(snapshot["type"], "snapshot");
        let mut last = seq(&snapshot);
        let close = loop {
            match next_message(&mut slow).await {
                Message::Text(text) => {
                    let event: Value =
                        serde_json::from_str(text.as_str()).unwrap_or_else(|e| panic!("{e}"));
                    assert_eq!(seq(&event), last + 1, "gap before the close: {event}");
                    last += 1;
                }
                Message::Ping(_) | Message::Pong(_) => {}
                Message::Close(frame) => break frame,
                other => panic!("unexpected {other:?}"),
            }
        };
        let frame = close.unwrap_or_else(|| panic!("a close without a code"));
        assert_eq!(u16::from(frame.code), 4000, "{frame:?}");
        let reason = frame.reason.as_str().to_string();
        assert!(reason.starts_with("too slow: "), "{reason}");
        assert!(
            reason.ends_with(&format!("events behind; reconnect with since={last}")),
            "the reason names the last event sent: {reason} (last {last})"
        );
        // The fast client goes on, gap-free, well past where the slow one was cut off.
        let _ = target_tx.send(last + 500);
        let fast_last = fast_reader.await.unwrap_or_else(|e| panic!("{e}"));
        assert!(fast_last > last + 500);

        // And it can pick up exactly where it was cut off.
        let mut back = connect(&hub, &format!("since={last}")).await;
        let marker = next_json(&mut back).await;
        assert_eq!(marker["type"], "resume", "{marker}");
        read_contiguous(&mut back, last, 500).await;
    });
}

#[test]
fn pings_both_ways_and_a_silent_client_is_closed_then_shutdown_says_going_away() {
    let dir = temp_dir();
    let hub = start_flooding_hub(dir.path(), 20, &[("WARDEN_LIVE_PING_MS", "200")]);
    runtime().block_on(async {
        // A client that never reads never answers the hub's pings.
        let mut silent = connect(&hub, "checks=none-such").await;
        // One that reads answers them (tungstenite does), and its own pings are answered.
        let mut talker = connect(&hub, "checks=none-such").await;
        assert_eq!(next_json(&mut talker).await["type"], "snapshot");
        talker
            .send(Message::Ping(b"are you there".to_vec().into()))
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        let mut pings = 0;
        let mut pong = false;
        while pings < 10 || !pong {
            match next_message(&mut talker).await {
                Message::Ping(_) => pings += 1,
                Message::Pong(payload) => {
                    assert_eq!(&payload[..], b"are you there");
                    pong = true;
                }
                other => panic!("unexpected {other:?} on a client that answers pings"),
            }
        }
        // Ten intervals on, the reader is still open; the silent one was closed meanwhile.
        let line = wait_for_log(&hub, "did not answer pings");
        assert!(line.contains("closing"), "{line}");
        assert_eq!(next_json(&mut silent).await["type"], "snapshot");
        let frame = loop {
            match next_message(&mut silent).await {
                Message::Ping(_) => {}
                Message::Close(frame) => break frame,
                other => panic!("unexpected {other:?}"),
            }
        };
        let frame = frame.unwrap_or_else(|| panic!("a close without a code"));
        assert_eq!(u16::from(frame.code), 4001, "{frame:?}");

        // Shutdown: the reader is told the hub is going away, with where to resume.
        hub.signal("TERM");
        let frame = loop {
            match next_message(&mut talker).await {
                Message::Ping(_) | Message::Pong(_) => {}
                Message::Close(frame) => break frame,
                other => panic!("unexpected {other:?}"),
            }
        };
        let frame = frame.unwrap_or_else(|| panic!("a close without a code"));
        assert_eq!(u16::from(frame.code), 1001, "{frame:?}");
        assert!(frame.reason.as_str().contains("since="), "{frame:?}");
    });
}
