//! Unit tests: renderer snapshots, time formatting, wire decoding, URLs, errors, and the
//! client against a one-shot fake HTTP server.

use expect_test::{Expect, expect};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpListener;

use crate::client::{api_error, parse_base_url};
use crate::render::{
    TABLE_WIDTH, relative_time, render_checks, render_output, render_run, render_runs,
    short_duration, utc_timestamp,
};
use crate::{
    Check, CheckFilter, Client, ClientError, OutputLine, OutputStream, Run, RunFilter, RunState,
    Status,
};

/// 2023-11-14T22:13:20Z
const NOW_MS: i64 = 1_700_000_000_000;

fn check_named(
    name: &str,
    status: Option<Status>,
    ago_ms: Option<i64>,
    summary: Option<&str>,
) -> Check {
    Check {
        name: name.to_string(),
        kind: "command".to_string(),
        schedule: "every 30s".to_string(),
        status,
        status_since: ago_ms.map(|ago| NOW_MS - ago),
        last_run_id: ago_ms.map(|_| 7),
        last_run_at: ago_ms.map(|ago| NOW_MS - ago),
        summary: summary.map(str::to_string),
        heartbeat: None,
        extra: serde_json::Map::new(),
    }
}

fn run_with(id: i64, check: Option<&str>, state: RunState) -> Run {
    Run {
        id,
        check: check.map(str::to_string),
        kind: "command".to_string(),
        state,
        attempts: 0,
        max_attempts: 3,
        enqueued_at: NOW_MS - 60_000,
        started_at: None,
        finished_at: None,
        status: None,
        exit_code: None,
        summary: None,
        last_error: None,
        extra: serde_json::Map::new(),
    }
}

fn finished(
    mut run: Run,
    started_ago_ms: i64,
    duration_ms: i64,
    status: Status,
    summary: &str,
) -> Run {
    run.attempts = 1;
    run.started_at = Some(NOW_MS - started_ago_ms);
    run.finished_at = Some(NOW_MS - started_ago_ms + duration_ms);
    run.status = Some(status);
    run.exit_code = Some(match status {
        Status::Ok => 0,
        Status::Warn => 1,
        Status::Crit => 2,
        Status::Unknown => 3,
    });
    run.summary = Some(summary.to_string());
    run
}

fn check_render(rendered: &str, expect: &Expect) {
    for line in rendered.lines() {
        assert_eq!(line, line.trim_end(), "trailing spaces in {line:?}");
    }
    expect.assert_eq(rendered);
}

// ---- render_checks ----

#[test]
fn checks_empty() {
    check_render(
        &render_checks(&[], NOW_MS),
        &expect![[r#"
        no checks
    "#]],
    );
}

#[test]
fn checks_table() {
    let checks = [
        check_named(
            "disk",
            Some(Status::Ok),
            Some(5_000),
            Some("DISK OK - free space: / 12 GB (40%)"),
        ),
        check_named(
            "http-frontend",
            Some(Status::Crit),
            Some(3 * 60_000 + 12_000),
            Some("connection refused"),
        ),
        check_named(
            "load",
            Some(Status::Warn),
            Some(2 * 3_600_000),
            Some("load average: 4.1, 3.9, 3.2"),
        ),
        check_named("backup", Some(Status::Unknown), Some(3 * 86_400_000), None),
        check_named("new-check", None, None, None),
        check_named("skewed-clock", Some(Status::Ok), Some(-120_000), Some("")),
        check_named("fresh", Some(Status::Ok), Some(300), Some("ok")),
    ];
    check_render(
        &render_checks(&checks, NOW_MS),
        &expect![[r#"
        NAME           STATUS   LAST RUN  SUMMARY
        disk           OK       5s ago    DISK OK - free space: / 12 GB (40%)
        http-frontend  CRIT     3m ago    connection refused
        load           WARN     2h ago    load average: 4.1, 3.9, 3.2
        backup         UNKNOWN  3d ago
        new-check      PENDING  never
        skewed-clock   OK       in 2m
        fresh          OK       just now  ok
    "#]],
    );
}

#[test]
fn checks_long_summary_is_truncated_to_the_table_width() {
    let long = "CRITICAL - 17 of 20 replicas are lagging behind the primary by more than 30 seconds; worst: db-replica-07 (412s)";
    let checks = [check_named(
        "replication",
        Some(Status::Crit),
        Some(10_000),
        Some(long),
    )];
    let rendered = render_checks(&checks, NOW_MS);
    check_render(
        &rendered,
        &expect![[r#"
        NAME         STATUS  LAST RUN  SUMMARY
        replication  CRIT    10s ago   CRITICAL - 17 of 20 replicas are lagging behind the primary by more…
    "#]],
    );
    for line in rendered.lines() {
        assert!(
            unicode_width::UnicodeWidthStr::width(line) <= TABLE_WIDTH,
            "{line}"
        );
    }
}

#[test]
fn checks_unicode_and_control_characters() {
    let checks = [
        check_named(
            "ディスク",
            Some(Status::Ok),
            Some(1_000),
            Some("空き容量 40% ✅"),
        ),
        check_named(
            "café",
            Some(Status::Warn),
            Some(61_000),
            Some("line one\nline two\twith tab \u{1b}[31mred"),
        ),
        check_named(
            "emoji-🚀",
            Some(Status::Crit),
            Some(59_000),
            Some(&"宽".repeat(60)),
        ),
    ];
    let rendered = render_checks(&checks, NOW_MS);
    check_render(
        &rendered,
        &expect![[r#"
        NAME      STATUS  LAST RUN  SUMMARY
        ディスク  OK      1s ago    空き容量 40% ✅
        café      WARN    1m ago    line one line two with tab  [31mred
        emoji-🚀  CRIT    59s ago   宽宽宽宽宽宽宽宽宽宽宽宽宽宽宽宽宽宽宽宽宽宽宽宽宽宽宽宽宽宽宽宽宽宽宽…
    "#]],
    );
    for line in rendered.lines() {
        assert!(
            unicode_width::UnicodeWidthStr::width(line) <= TABLE_WIDTH,
            "{line}"
        );
    }
}

#[test]
fn checks_very_long_name_keeps_a_minimum_summary() {
    let name = "a-check-with-a-really-quite-extraordinarily-long-name-that-someone-generated-from-a-template";
    let checks = [check_named(
        name,
        Some(Status::Ok),
        Some(5_000),
        Some("everything is fine and dandy today"),
    )];
    check_render(
        &render_checks(&checks, NOW_MS),
        &expect![[r#"
        NAME                                                                                          STATUS  LAST RUN  SUMMARY
        a-check-with-a-really-quite-extraordinarily-long-name-that-someone-generated-from-a-template  OK      5s ago    everythin…
    "#]],
    );
}

// ---- render_runs ----

#[test]
fn runs_empty() {
    check_render(
        &render_runs(&[], NOW_MS),
        &expect![[r#"
        no runs
    "#]],
    );
}

#[test]
fn runs_table() {
    let mut leased = run_with(105, Some("http-frontend"), RunState::Leased);
    leased.attempts = 2;
    leased.started_at = Some(NOW_MS - 4_000);
    let mut dead = run_with(103, Some("backup"), RunState::Dead);
    dead.attempts = 3;
    dead.started_at = Some(NOW_MS - 7_200_000);
    dead.finished_at = Some(NOW_MS - 7_200_000 + 3_723_000);
    dead.last_error = Some("lease expired: worker stopped heartbeating".to_string());
    let runs = [
        run_with(106, Some("disk"), RunState::Queued),
        leased,
        finished(
            run_with(104, Some("disk"), RunState::Completed),
            65_000,
            12,
            Status::Ok,
            "DISK OK",
        ),
        dead,
        finished(
            run_with(102, None, RunState::Completed),
            3 * 60_000,
            1_234,
            Status::Warn,
            "ad-hoc job: 2 warnings",
        ),
        finished(
            run_with(101, Some("load"), RunState::Completed),
            86_400_000 * 2,
            184_000,
            Status::Crit,
            "load average: 12.0",
        ),
        run_with(100, Some("disk"), RunState::Cancelled),
    ];
    check_render(
        &render_runs(&runs, NOW_MS),
        &expect![[r#"
        ID   CHECK          STATE      STATUS  STARTED  DURATION  SUMMARY
        106  disk           queued     -       -        -
        105  http-frontend  leased     -       4s ago   -
        104  disk           completed  OK      1m ago   12ms      DISK OK
        103  backup         dead       -       2h ago   1h2m      lease expired: worker stopped heartbeating
        102  -              completed  WARN    3m ago   1.2s      ad-hoc job: 2 warnings
        101  load           completed  CRIT    2d ago   3m4s      load average: 12.0
        100  disk           cancelled  -       -        -
    "#]],
    );
}

#[test]
fn runs_long_summary_and_unicode() {
    let runs = [
        finished(
            run_with(9, Some("日本語チェック"), RunState::Completed),
            2_000,
            59_999,
            Status::Ok,
            &"x".repeat(120),
        ),
        finished(
            run_with(10, Some("sms"), RunState::Completed),
            2_000,
            250,
            Status::Warn,
            "envoyé: 3 — reçu: 2 📨📨",
        ),
    ];
    let rendered = render_runs(&runs, NOW_MS);
    check_render(
        &rendered,
        &expect![[r#"
        ID  CHECK           STATE      STATUS  STARTED  DURATION  SUMMARY
        9   日本語チェック  completed  OK      2s ago   59.9s     xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx…
        10  sms             completed  WARN    2s ago   250ms     envoyé: 3 — reçu: 2 📨📨
    "#]],
    );
    for line in rendered.lines() {
        assert!(
            unicode_width::UnicodeWidthStr::width(line) <= TABLE_WIDTH,
            "{line}"
        );
    }
}

// ---- render_run ----

#[test]
fn run_completed() {
    let run = finished(
        run_with(42, Some("disk"), RunState::Completed),
        5_000,
        1_234,
        Status::Crit,
        "DISK CRITICAL - / 98% used",
    );
    check_render(
        &render_run(&run),
        &expect![[r#"
        run:       42
        check:     disk
        kind:      command
        state:     completed
        status:    CRIT
        exit code: 2
        attempts:  1/3
        enqueued:  2023-11-14T22:12:20.000Z
        started:   2023-11-14T22:13:15.000Z
        finished:  2023-11-14T22:13:16.234Z
        duration:  1.2s
        summary:   DISK CRITICAL - / 98% used
    "#]],
    );
}

#[test]
fn run_queued_with_null_fields() {
    let run = run_with(7, None, RunState::Queued);
    check_render(
        &render_run(&run),
        &expect![[r#"
        run:      7
        kind:     command
        state:    queued
        status:   -
        attempts: 0/3
        enqueued: 2023-11-14T22:12:20.000Z
    "#]],
    );
}

#[test]
fn run_dead_with_error_and_unicode() {
    let mut run = run_with(8, Some("sauvegarde-été"), RunState::Dead);
    run.attempts = 3;
    run.started_at = Some(NOW_MS - 10_000);
    run.last_error =
        Some("command not found: /usr/lib/nagios/plugins/check_ü\nsecond line".to_string());
    check_render(
        &render_run(&run),
        &expect![[r#"
        run:        8
        check:      sauvegarde-été
        kind:       command
        state:      dead
        status:     -
        attempts:   3/3
        enqueued:   2023-11-14T22:12:20.000Z
        started:    2023-11-14T22:13:10.000Z
        last error: command not found: /usr/lib/nagios/plugins/check_ü second line
    "#]],
    );
}

// ---- render_output ----

#[test]
fn output_empty() {
    assert_eq!(render_output(&[]), "");
}

#[test]
fn output_lines_in_order() {
    let line = |seq: i64, stream: OutputStream, text: &str| OutputLine {
        seq,
        at: NOW_MS + seq,
        stream,
        line: text.to_string(),
    };
    let lines = [
        line(1, OutputStream::Stdout, "checking / ..."),
        line(2, OutputStream::Stderr, "warning: /mnt not mounted"),
        line(3, OutputStream::Stdout, ""),
        line(4, OutputStream::Stdout, "  indented, ünïcödé 日本 🚀  "),
        line(5, OutputStream::Stdout, "DISK OK | /=12GB;15;18;0;20"),
    ];
    expect![[r#"
        checking / ...
        warning: /mnt not mounted

          indented, ünïcödé 日本 🚀  
        DISK OK | /=12GB;15;18;0;20
    "#]]
    .assert_eq(&render_output(&lines));
}

// ---- time formatting ----

#[test]
fn relative_times() {
    let cases: Vec<String> = [
        0,
        999,
        -999,
        1_000,
        59_999,
        60_000,
        3_599_999,
        3_600_000,
        86_399_999,
        86_400_000,
        400 * 86_400_000,
        -1_000,
        -90_000,
        -7_200_000,
    ]
    .iter()
    .map(|ago: &i64| format!("{ago} -> {}", relative_time(NOW_MS - ago, NOW_MS)))
    .collect();
    expect![[r#"
        0 -> just now
        999 -> just now
        -999 -> just now
        1000 -> 1s ago
        59999 -> 59s ago
        60000 -> 1m ago
        3599999 -> 59m ago
        3600000 -> 1h ago
        86399999 -> 23h ago
        86400000 -> 1d ago
        34560000000 -> 400d ago
        -1000 -> in 1s
        -90000 -> in 1m
        -7200000 -> in 2h"#]]
    .assert_eq(&cases.join("\n"));
    // Extremes do not overflow.
    relative_time(i64::MIN, i64::MAX);
    relative_time(i64::MAX, i64::MIN);
}

#[test]
fn short_durations() {
    let cases: Vec<String> = [
        0,
        12,
        999,
        1_000,
        1_234,
        1_299,
        59_999,
        60_000,
        184_000,
        3_599_999,
        3_600_000,
        3_723_000,
        86_399_999,
        86_400_000,
        2 * 86_400_000 + 3 * 3_600_000 + 59_000,
        u64::MAX,
    ]
    .iter()
    .map(|ms: &u64| format!("{ms} -> {}", short_duration(*ms)))
    .collect();
    expect![[r#"
        0 -> 0ms
        12 -> 12ms
        999 -> 999ms
        1000 -> 1.0s
        1234 -> 1.2s
        1299 -> 1.2s
        59999 -> 59.9s
        60000 -> 1m0s
        184000 -> 3m4s
        3599999 -> 59m59s
        3600000 -> 1h0m
        3723000 -> 1h2m
        86399999 -> 23h59m
        86400000 -> 1d0h
        183659000 -> 2d3h
        18446744073709551615 -> 213503982334d14h"#]]
    .assert_eq(&cases.join("\n"));
}

#[test]
fn utc_timestamps() {
    let cases: Vec<String> = [
        0,
        -1,
        NOW_MS,
        951_782_400_000,
        951_868_799_999,
        4_102_444_800_000,
    ]
    .iter()
    .map(|ms: &i64| format!("{ms} -> {}", utc_timestamp(*ms)))
    .collect();
    expect![[r#"
        0 -> 1970-01-01T00:00:00.000Z
        -1 -> 1969-12-31T23:59:59.999Z
        1700000000000 -> 2023-11-14T22:13:20.000Z
        951782400000 -> 2000-02-29T00:00:00.000Z
        951868799999 -> 2000-02-29T23:59:59.999Z
        4102444800000 -> 2100-01-01T00:00:00.000Z"#]]
    .assert_eq(&cases.join("\n"));
}

// ---- wire decoding ----

#[test]
fn decode_check_with_nulls_and_unknown_fields() {
    let json = r#"{"name": "disk", "kind": "command", "schedule": "cron 0 3 * * * (Europe/Paris)",
        "status": null, "status_since": null, "last_run_id": null, "last_run_at": null,
        "summary": null, "added_later": {"nested": [1, 2]}}"#;
    let check: Check = serde_json::from_str(json).unwrap();
    assert_eq!(check.status, None);
    assert_eq!(check.schedule, "cron 0 3 * * * (Europe/Paris)");
    // Optional keys may also be missing altogether.
    let check: Check = serde_json::from_str(
        r#"{"name": "x", "kind": "http", "schedule": "every 30s", "status": "crit"}"#,
    )
    .unwrap();
    assert_eq!(check.status, Some(Status::Crit));
    assert_eq!(check.summary, None);
}

#[test]
fn decode_run_keeps_unknown_fields_for_json_output() {
    let json = r#"{"id": 42, "check": "disk", "kind": "command", "state": "completed",
        "attempts": 1, "max_attempts": 3, "enqueued_at": 1700000000000,
        "started_at": 1700000000100, "finished_at": 1700000001334, "status": "warn",
        "exit_code": 1, "summary": "DISK WARNING", "last_error": null,
        "fence": 4, "lease_expires_at": null, "payload": {"command": ["check_disk"]}}"#;
    let run: Run = serde_json::from_str(json).unwrap();
    expect![[r#"
        {
          "id": 42,
          "check": "disk",
          "kind": "command",
          "state": "completed",
          "attempts": 1,
          "max_attempts": 3,
          "enqueued_at": 1700000000000,
          "started_at": 1700000000100,
          "finished_at": 1700000001334,
          "status": "warn",
          "exit_code": 1,
          "summary": "DISK WARNING",
          "last_error": null,
          "fence": 4,
          "lease_expires_at": null,
          "payload": {
            "command": [
              "check_disk"
            ]
          }
        }"#]]
    .assert_eq(&serde_json::to_string_pretty(&run).unwrap());
    assert!(run.state.is_final());
    assert!(!RunState::Leased.is_final());
    assert!(serde_json::from_str::<Run>(&json.replace("\"warn\"", "\"sideways\"")).is_err());
}

// ---- URLs and errors ----

#[test]
fn base_urls() {
    let cases: Vec<String> = [
        "http://127.0.0.1:7878",
        "http://127.0.0.1:7878/",
        "http://hub.internal/warden/",
        "http://[::1]:7878?x=1#frag",
        "127.0.0.1:7878",
        "localhost:7878",
        "https://hub.example.com",
        "ftp://hub.example.com",
        "http://",
        "http://exa mple.com",
    ]
    .iter()
    .map(|text| match parse_base_url(text) {
        Ok(url) => format!("{text} -> {url}"),
        Err(error) => format!("{text} -> error: {error}"),
    })
    .collect();
    expect![[r#"
        http://127.0.0.1:7878 -> http://127.0.0.1:7878/
        http://127.0.0.1:7878/ -> http://127.0.0.1:7878/
        http://hub.internal/warden/ -> http://hub.internal/warden/
        http://[::1]:7878?x=1#frag -> http://[::1]:7878/
        127.0.0.1:7878 -> error: `127.0.0.1:7878` is not a usable hub URL: expected http://HOST:PORT, e.g. http://127.0.0.1:7878
        localhost:7878 -> error: `localhost:7878` is not a usable hub URL: expected http://HOST:PORT, e.g. http://127.0.0.1:7878
        https://hub.example.com -> error: `https://hub.example.com` is not a usable hub URL: https is not supported yet; use http://
        ftp://hub.example.com -> error: `ftp://hub.example.com` is not a usable hub URL: expected http://HOST:PORT, e.g. http://127.0.0.1:7878
        http:// -> error: `http://` is not a usable hub URL: empty host
        http://exa mple.com -> error: `http://exa mple.com` is not a usable hub URL: invalid international domain name"#]]
    .assert_eq(&cases.join("\n"));
}

#[test]
fn endpoints_encode_segments_and_keep_a_prefix() {
    let client = Client::new("http://hub.internal/warden", "t").unwrap();
    let urls = [
        client.endpoint(&["checks"], &[]),
        client.endpoint(&["checks", "a/b c?d#é"], &[]),
        client.endpoint(
            &["checks"],
            &[
                ("filter", "a&b =é".to_string()),
                ("status", "crit".to_string()),
            ],
        ),
        Client::new("http://127.0.0.1:7878/", "t")
            .unwrap()
            .endpoint(&["runs", "42"], &[("wait_ms", "30000".to_string())]),
    ];
    expect![[r#"
        http://hub.internal/warden/api/v1/checks
        http://hub.internal/warden/api/v1/checks/a%2Fb%20c%3Fd%23%C3%A9
        http://hub.internal/warden/api/v1/checks?filter=a%26b+%3D%C3%A9&status=crit
        http://127.0.0.1:7878/api/v1/runs/42?wait_ms=30000"#]]
    .assert_eq(&urls.map(|url| url.to_string()).join("\n"));
}

#[test]
fn invalid_tokens() {
    let errors = ["", "abc\ndef"].map(|token| {
        Client::new("http://127.0.0.1:7878", token)
            .unwrap_err()
            .to_string()
    });
    expect![[r#"
        invalid token: the token is empty
        invalid token: it contains characters not allowed in an HTTP header"#]]
    .assert_eq(&errors.join("\n"));
}

#[test]
fn api_errors() {
    let cases = [
        api_error(
            404,
            br#"{"error": {"code": "not_found", "message": "no check named `dsik`"}}"#,
        ),
        api_error(502, b"\n<html><body>Bad Gateway</body></html>\n"),
        api_error(500, b""),
        api_error(413, "x".repeat(500).as_bytes()),
    ];
    let rendered: Vec<String> = cases
        .iter()
        .map(|error| match error {
            ClientError::Api {
                status,
                code,
                message,
            } => format!("{status} {code}: {message}"),
            other => format!("not an api error: {other:?}"),
        })
        .collect();
    expect![[r#"
        404 not_found: no check named `dsik`
        502 unexpected: the hub answered HTTP 502: <html><body>Bad Gateway</body></html>
        500 unexpected: the hub answered HTTP 500
        413 unexpected: the hub answered HTTP 413: xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"#]]
    .assert_eq(&rendered.join("\n"));
    assert_eq!(cases[0].to_string(), "no check named `dsik`");
    assert_eq!(cases[0].api_code(), Some("not_found"));
}

// ---- against a fake hub ----

/// Accepts one connection, reads the request head, answers `status` with `body`, and returns
/// the request head (lowercased header names are left as the client sent them).
async fn serve_once(listener: TcpListener, status: &str, body: &str) -> String {
    let (mut stream, _) = listener.accept().await.unwrap();
    let mut request = Vec::new();
    let mut buffer = [0u8; 4096];
    while !request.windows(4).any(|window| window == b"\r\n\r\n") {
        let read = stream.read(&mut buffer).await.unwrap();
        assert!(
            read > 0,
            "connection closed before the end of the request head"
        );
        request.extend_from_slice(&buffer[..read]);
    }
    let response = format!(
        "HTTP/1.1 {status}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(response.as_bytes()).await.unwrap();
    stream.shutdown().await.unwrap();
    String::from_utf8(request).unwrap()
}

/// The request line and the headers a test cares about, in a stable order.
fn request_summary(head: &str) -> String {
    let mut lines = head.lines();
    let mut out = vec![lines.next().unwrap().to_string()];
    let mut headers: Vec<String> = lines
        .filter(|line| {
            let lower = line.to_ascii_lowercase();
            lower.starts_with("authorization:") || lower.starts_with("user-agent:")
        })
        .map(|line| line.to_ascii_lowercase())
        .collect();
    headers.sort();
    out.extend(headers);
    out.join("\n")
}

async fn fake_hub() -> (TcpListener, Client) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    (listener, Client::new(&url, "wdn_secret").unwrap())
}

#[tokio::test]
async fn checks_call_sends_token_and_query() {
    let (listener, client) = fake_hub().await;
    let filter = CheckFilter {
        status: Some(Status::Crit),
        filter: Some("web".to_string()),
        kind: None,
        label: None,
    };
    let body = r#"{"checks": [{"name": "web", "kind": "http", "schedule": "every 30s", "status": "crit",
        "status_since": 1, "last_run_id": 3, "last_run_at": 2, "summary": "down", "extra": true}]}"#;
    let (head, checks) = tokio::join!(serve_once(listener, "200 OK", body), client.checks(&filter));
    expect![[r#"
        GET /api/v1/checks?status=crit&filter=web HTTP/1.1
        authorization: bearer wdn_secret
        user-agent: warden/0.1.0"#]]
    .assert_eq(&request_summary(&head));
    let checks = checks.unwrap();
    assert_eq!(checks.len(), 1);
    assert_eq!(checks[0].last_run_id, Some(3));
}

#[tokio::test]
async fn run_check_posts_and_returns_the_id() {
    let (listener, client) = fake_hub().await;
    let (head, id) = tokio::join!(
        serve_once(listener, "201 Created", r#"{"run_id": 57}"#),
        client.run_check("disk /root")
    );
    expect![[r#"
        POST /api/v1/checks/disk%20%2Froot/run HTTP/1.1
        authorization: bearer wdn_secret
        user-agent: warden/0.1.0"#]]
    .assert_eq(&request_summary(&head));
    assert_eq!(id.unwrap(), 57);
}

#[tokio::test]
async fn runs_output_and_wait_calls() {
    let (listener, client) = fake_hub().await;
    let filter = RunFilter {
        check: Some("disk".to_string()),
        limit: Some(20),
        before: Some(100),
    };
    let (head, page) = tokio::join!(
        serve_once(listener, "200 OK", r#"{"runs": [], "next_before": null}"#),
        client.runs(&filter)
    );
    assert_eq!(
        head.lines().next().unwrap(),
        "GET /api/v1/runs?check=disk&limit=20&before=100 HTTP/1.1"
    );
    assert_eq!(page.unwrap().next_before, None);

    let (listener, client) = fake_hub().await;
    let (head, lines) = tokio::join!(
        serve_once(
            listener,
            "200 OK",
            r#"{"run_id": 5, "lines": [{"seq": 1, "at": 2, "stream": "stderr", "line": "oops"}]}"#
        ),
        client.output(5)
    );
    assert_eq!(
        head.lines().next().unwrap(),
        "GET /api/v1/runs/5/output HTTP/1.1"
    );
    assert_eq!(lines.unwrap()[0].stream, OutputStream::Stderr);

    let (listener, client) = fake_hub().await;
    let run = r#"{"id": 5, "check": null, "kind": "command", "state": "leased", "attempts": 1,
        "max_attempts": 1, "enqueued_at": 0, "started_at": 1, "finished_at": null, "status": null,
        "exit_code": null, "summary": null, "last_error": null}"#;
    let (head, run) = tokio::join!(
        serve_once(listener, "200 OK", run),
        client.run(5, Some(std::time::Duration::from_millis(1_500)))
    );
    assert_eq!(
        head.lines().next().unwrap(),
        "GET /api/v1/runs/5?wait_ms=1500 HTTP/1.1"
    );
    assert_eq!(run.unwrap().state, RunState::Leased);
}

#[tokio::test]
async fn api_and_decode_errors() {
    let (listener, client) = fake_hub().await;
    let (_, error) = tokio::join!(
        serve_once(
            listener,
            "404 Not Found",
            r#"{"error": {"code": "not_found", "message": "no check named `dsik`"}}"#
        ),
        client.check("dsik")
    );
    let error = error.unwrap_err();
    assert!(
        matches!(&error, ClientError::Api { status: 404, code, .. } if code == "not_found"),
        "{error:?}"
    );
    assert_eq!(error.to_string(), "no check named `dsik`");

    let (listener, client) = fake_hub().await;
    let all = CheckFilter::default();
    let (_, error) = tokio::join!(
        serve_once(listener, "200 OK", r#"{"checks": 3}"#),
        client.checks(&all)
    );
    expect![[r#"unexpected answer from the hub: /api/v1/checks: invalid type: integer `3`, expected a sequence at line 1 column 12"#]]
        .assert_eq(&error.unwrap_err().to_string());
}

#[tokio::test]
async fn connection_refused_is_a_connect_error() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    drop(listener);
    let client = Client::new(&url, "t").unwrap();
    let error = client.run_check("disk").await.unwrap_err();
    let ClientError::Connect {
        url: reported,
        message,
    } = &error
    else {
        panic!("expected a connect error, got {error:?}");
    };
    assert_eq!(reported, &url);
    assert!(
        error
            .to_string()
            .starts_with(&format!("cannot reach the hub at {url}: ")),
        "{error}"
    );
    assert!(message.contains("refused"), "{message}");
}

fn incident(id: i64, state: &str, summary: &str) -> crate::alerting::Incident {
    crate::alerting::Incident {
        id,
        rule: "web-down".to_string(),
        subject: "web-1".to_string(),
        check: Some("web-1".to_string()),
        severity: "critical".to_string(),
        state: state.to_string(),
        status: Some("crit".to_string()),
        summary: summary.to_string(),
        opened_at: NOW_MS - 300_000,
        notified_at: Some(NOW_MS - 299_000),
        acknowledged_at: None,
        acknowledged_by: None,
        ack_note: None,
        resolved_at: None,
        held: false,
        timeline: Vec::new(),
        extra: serde_json::Map::new(),
    }
}

#[test]
fn incidents_table_and_detail() {
    use crate::alerting::{TimelineEntry, render_incident, render_incidents};
    check_render(
        &render_incidents(&[], NOW_MS),
        &expect![[r#"
            no incidents
        "#]],
    );
    check_render(
        &render_incidents(
            &[
                incident(12, "acknowledged", "CRITICAL - upstream down"),
                incident(7, "resolved", "HTTP 503\nfrom /health"),
            ],
            NOW_MS,
        ),
        &expect![[r#"
            ID  STATE         SEVERITY  RULE      SUBJECT  OPENED  SUMMARY
            12  ACKNOWLEDGED  critical  web-down  web-1    5m ago  CRITICAL - upstream down
            7   RESOLVED      critical  web-down  web-1    5m ago  HTTP 503 from /health
        "#]],
    );
    let mut detail = incident(12, "acknowledged", "CRITICAL - upstream down");
    detail.acknowledged_at = Some(NOW_MS - 60_000);
    detail.acknowledged_by = Some("admin (token 1)".to_string());
    detail.ack_note = Some("on it".to_string());
    detail.timeline = vec![
        TimelineEntry {
            at: NOW_MS - 300_000,
            kind: "opened".to_string(),
            notifier: None,
            detail: "CRITICAL - upstream down".to_string(),
        },
        TimelineEntry {
            at: NOW_MS - 299_000,
            kind: "delivered".to_string(),
            notifier: Some("ops".to_string()),
            detail: "opened (attempt 1)".to_string(),
        },
    ];
    check_render(
        &render_incident(&detail, NOW_MS),
        &expect![[r#"
            incident 12: web-down on web-1 (acknowledged, critical)
            summary:  CRITICAL - upstream down
            opened:   2023-11-14T22:08:20.000Z (5m ago)
            acked:    2023-11-14T22:12:20.000Z by admin (token 1): on it
            timeline:
              2023-11-14T22:08:20.000Z  opened  CRITICAL - upstream down
              2023-11-14T22:08:21.000Z  delivered [ops]  opened (attempt 1)
        "#]],
    );
}

#[test]
fn silences_and_notifier_tests() {
    use crate::alerting::{NotifierTest, Silence, render_notifier_test, render_silences};
    let silence = Silence {
        id: 3,
        checks: "web*".to_string(),
        note: "deploy".to_string(),
        created_by: "admin (token 1)".to_string(),
        starts_at: NOW_MS,
        ends_at: NOW_MS + 7_200_000,
        extra: serde_json::Map::new(),
    };
    check_render(
        &render_silences(&[silence], NOW_MS),
        &expect![[r#"
            ID  CHECKS  UNTIL                               BY               NOTE
            3   web*    2023-11-15T00:13:20.000Z (in 2h0m)  admin (token 1)  deploy
        "#]],
    );
    let mut test = NotifierTest {
        notifier: "ops".to_string(),
        kind: "webhook".to_string(),
        delivered: true,
        error: None,
        duration_ms: 12,
    };
    assert_eq!(
        render_notifier_test(&test),
        "delivered to ops (webhook) in 12ms\n"
    );
    test.delivered = false;
    test.error = Some("HTTP 503".to_string());
    assert_eq!(
        render_notifier_test(&test),
        "NOT delivered to ops (webhook): HTTP 503\n"
    );
}

#[tokio::test]
async fn acknowledge_posts_the_note() {
    let (listener, client) = fake_hub().await;
    let body = serde_json::to_string(&incident(12, "acknowledged", "down")).unwrap();
    let (head, acked) = tokio::join!(
        serve_once(listener, "200 OK", &body),
        client.acknowledge(12, "on it")
    );
    expect![[r#"
        POST /api/v1/incidents/12/ack HTTP/1.1
        authorization: bearer wdn_secret
        user-agent: warden/0.1.0"#]]
    .assert_eq(&request_summary(&head));
    assert_eq!(acked.unwrap().state, "acknowledged");
}
