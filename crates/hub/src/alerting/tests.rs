//! Alerting unit tests: rule evaluation over run sequences (table-driven, made-up clock),
//! every notifier against a real local receiver capturing the exact request, retries and final
//! failures through the delivery worker with a real store, and email through a real SMTP
//! server with STARTTLS (aiosmtpd).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use expect_test::{Expect, expect};
use warden_core::Status;
use warden_core::config::{Config, parse_config};
use warden_store::alerting::SilenceRow;

use super::engine::{Action, CheckInfo, Engine, RunResult, SampleIn};
use super::maintenance::Maintenance;

/// 2026-01-03T00:00:00Z, a Saturday.
const BASE_MS: i64 = 1_767_398_400_000;

fn config(text: &str) -> Config {
    parse_config("warden.toml", text, &|_| None).unwrap_or_else(|errors| panic!("{errors}"))
}

fn engine(config: &Config) -> Engine {
    let checks: HashMap<Arc<str>, CheckInfo> = config
        .checks
        .iter()
        .map(|check| {
            (
                Arc::from(check.name.as_str()),
                CheckInfo {
                    labels: check.labels.clone(),
                },
            )
        })
        .collect();
    Engine::new(
        &config.rules,
        &config.notifiers,
        checks,
        Maintenance::new(&config.maintenance),
    )
}

/// One step of a script: at a time (seconds after [`BASE_MS`]), something happens.
enum Step {
    /// A run of a check finished with a status.
    Run(&'static str, Status),
    /// Several runs, one every 10 s from the step's time.
    Runs(&'static str, &'static [Status]),
    /// A sample of a series (from check `host`).
    Sample(&'static str, f64),
    /// The alerter's clock tick.
    Tick,
    /// An operator acknowledges incident #N.
    Ack(i64),
    /// A one-off silence of a glob until a time (seconds).
    Silence(&'static str, i64),
}

use Status::{Crit, Ok as Good, Unknown, Warn};

/// Runs a script and renders every action, giving incidents store-like ids (#1, #2, ...).
fn evaluate(config_text: &str, script: &[(i64, Step)]) -> String {
    let config = config(config_text);
    let mut engine = engine(&config);
    let mut next_id = 1;
    let mut out = String::new();
    for (seconds, step) in script {
        let at = BASE_MS + seconds * 1_000;
        // (time, actions) per evaluation, so each line shows when it happened.
        let mut batches: Vec<(i64, Vec<Action>)> = Vec::new();
        match step {
            Step::Run(check, status) => {
                let mut actions = Vec::new();
                engine.on_run(&run(check, *status, at), &mut actions);
                batches.push((at, actions));
            }
            Step::Runs(check, statuses) => {
                for (index, status) in statuses.iter().enumerate() {
                    let at = at + index as i64 * 10_000;
                    let mut actions = Vec::new();
                    engine.on_run(&run(check, *status, at), &mut actions);
                    render(&mut engine, &mut next_id, at, actions, &mut out);
                }
            }
            Step::Sample(series, value) => {
                let mut actions = Vec::new();
                engine.on_sample(
                    &SampleIn {
                        check_id: Some(9),
                        check: "host",
                        series,
                        labels: "{}",
                        ts: at,
                        value: *value,
                    },
                    &mut actions,
                );
                batches.push((at, actions));
            }
            Step::Tick => {
                let mut actions = Vec::new();
                engine.tick(at, &mut actions);
                batches.push((at, actions));
            }
            Step::Ack(id) => engine.acknowledge(*id),
            Step::Silence(glob, until) => engine.maintenance.set_silences(vec![SilenceRow {
                id: 1,
                checks: glob.to_string(),
                note: String::new(),
                created_by: "test".to_string(),
                starts_at: at,
                ends_at: BASE_MS + until * 1_000,
                created_at: at,
                deleted_at: None,
            }]),
        }
        for (at, actions) in batches {
            render(&mut engine, &mut next_id, at, actions, &mut out);
        }
    }
    if out.is_empty() {
        out.push_str("silent\n");
    }
    out
}

/// Appends one line per action; an opened incident gets the next id, as the store would give.
fn render(engine: &mut Engine, next_id: &mut i64, at: i64, actions: Vec<Action>, out: &mut String) {
    for action in actions {
        let line = match action {
            Action::Open(opening) => {
                let id = *next_id;
                *next_id += 1;
                engine.assign_id(&opening.key, id);
                format!(
                    "open #{id} {} {} {} `{}` notify={:?}{}",
                    opening.rule,
                    opening.key.1,
                    opening.status,
                    opening.summary,
                    opening.notify,
                    opening
                        .held_by
                        .map(|by| format!(" held by {by}"))
                        .unwrap_or_default()
                )
            }
            Action::Resolve {
                id,
                status,
                notify,
                was_held,
                ..
            } => format!(
                "resolve #{} {status} notify={notify:?}{}",
                id.unwrap_or(0),
                if was_held { " (was held: dropped)" } else { "" }
            ),
            Action::Repeat {
                id, count, notify, ..
            } => format!("repeat #{} n={count} notify={notify:?}", id.unwrap_or(0)),
            Action::Release { id, .. } => format!("release #{}", id.unwrap_or(0)),
        };
        let at = (at - BASE_MS) / 1_000;
        out.push_str(&format!("t={at}s {line}\n"));
    }
}

fn run(check: &str, status: Status, at: i64) -> RunResult<'_> {
    RunResult {
        check_id: Some(1),
        check,
        status,
        summary: match status {
            Good => "fine",
            Warn => "slow",
            Crit => "down",
            Unknown => "no answer",
        },
        at,
    }
}

const CHECKS: &str = r#"
[[notifier]]
name = "ops"
kind = "webhook"
url = "http://127.0.0.1:9/hook"
default = true

[[notifier]]
name = "web-team"
kind = "slack"
url = "http://127.0.0.1:9/slack"
match = { team = "web" }

[[check]]
name = "web-1"
kind = "noop"
every = "10s"
labels = { team = "web" }

[[check]]
name = "db"
kind = "noop"
every = "10s"

[[check]]
name = "backup"
kind = "heartbeat"
period = "1h"
"#;

/// What a case is about, its config, its script and the actions expected.
type Case<'a> = (&'a str, &'a str, &'a [(i64, Step)], Expect);

#[test]
fn rule_evaluation_over_run_sequences() {
    let flappy = format!(
        "{CHECKS}\n[[rule]]\nname = \"web-down\"\nchecks = [\"web-*\"]\nwindow = \"3 of 5\"\nsuccess_threshold = 2\nnotify = [\"ops\"]\n"
    );
    let consecutive = format!(
        "{CHECKS}\n[[rule]]\nname = \"web-down\"\nchecks = [\"web-*\"]\nfailure_threshold = 3\nsend_on_resolved = false\n"
    );
    let cases: &[Case<'_>] = &[
        (
            "flapping (ok/crit alternating) stays silent under 3 of 5",
            &flappy,
            &[(
                0,
                Step::Runs(
                    "web-1",
                    &[
                        Good, Crit, Good, Crit, Good, Crit, Good, Crit, Good, Crit, Good, Crit,
                        Good, Crit,
                    ],
                ),
            )],
            expect![[r#"
                silent
            "#]],
        ),
        (
            "a real outage opens exactly one incident; recovery (2 successes) resolves it",
            &flappy,
            &[
                (
                    0,
                    Step::Runs("web-1", &[Good, Crit, Crit, Crit, Crit, Crit, Crit, Crit]),
                ),
                (100, Step::Runs("web-1", &[Good, Crit, Good, Good, Good])),
            ],
            expect![[r#"
                t=30s open #1 web-down web-1 crit `down` notify=["ops", "web-team"]
                t=130s resolve #1 ok notify=["ops", "web-team"]
            "#]],
        ),
        (
            "mostly failing (2 of every 3 runs) is no flap: it opens under 3 of 5",
            &flappy,
            &[(
                0,
                Step::Runs("web-1", &[Crit, Crit, Good, Crit, Crit, Good, Crit]),
            )],
            expect![[r#"
                t=40s open #1 web-down web-1 crit `down` notify=["ops", "web-team"]
            "#]],
        ),
        (
            "failure_threshold counts failures in a row; warn is no failure by default",
            &consecutive,
            &[(
                0,
                Step::Runs(
                    "web-1",
                    &[Crit, Crit, Good, Crit, Warn, Crit, Crit, Unknown, Good],
                ),
            )],
            expect![[r#"
                t=70s open #1 web-down web-1 unknown `no answer` notify=["web-team"]
                t=80s resolve #1 ok notify=[]
            "#]],
        ),
        (
            "a check without a rule gets the default rule: 2 failures, 1 success, default notifiers",
            CHECKS,
            &[(
                0,
                Step::Runs("db", &[Crit, Good, Crit, Crit, Crit, Good, Good]),
            )],
            expect![[r#"
                t=30s open #1 default db crit `down` notify=["ops"]
                t=50s resolve #1 ok notify=["ops"]
            "#]],
        ),
        (
            "the default rule ignores a late heartbeat (warn) and opens on down (crit)",
            CHECKS,
            &[(0, Step::Runs("backup", &[Warn, Warn, Warn, Crit, Crit]))],
            expect![[r#"
                t=40s open #1 default backup crit `down` notify=["ops"]
            "#]],
        ),
        (
            "`on = \"late\"` opens on a late heartbeat",
            &format!(
                "{CHECKS}\n[[rule]]\nname = \"late\"\nchecks = [\"backup\"]\non = \"late\"\nfailure_threshold = 1\nnotify = [\"ops\"]\n"
            ),
            &[(0, Step::Runs("backup", &[Good, Warn, Good]))],
            expect![[r#"
                t=10s open #1 late backup warn `slow` notify=["ops"]
                t=20s resolve #1 ok notify=["ops"]
            "#]],
        ),
        (
            "repeat re-notifies on the clock until acknowledged",
            &format!(
                "{CHECKS}\n[[rule]]\nname = \"web-down\"\nchecks = [\"web-1\"]\nfailure_threshold = 1\nrepeat = \"1h\"\nnotify = [\"ops\"]\n"
            ),
            &[
                (0, Step::Run("web-1", Crit)),
                (1_800, Step::Tick),
                (3_599, Step::Tick),
                (3_600, Step::Tick),
                (3_601, Step::Tick),
                (7_200, Step::Tick),
                (7_300, Step::Ack(1)),
                (10_800, Step::Tick),
                (20_000, Step::Run("web-1", Good)),
            ],
            expect![[r#"
                t=0s open #1 web-down web-1 crit `down` notify=["ops", "web-team"]
                t=3600s repeat #1 n=1 notify=["ops", "web-team"]
                t=7200s repeat #1 n=2 notify=["ops", "web-team"]
                t=20000s resolve #1 ok notify=["ops", "web-team"]
            "#]],
        ),
        (
            "a maintenance window holds the notifications, then releases them if still open",
            &format!(
                "{CHECKS}\n[[rule]]\nname = \"web-down\"\nchecks = [\"web-1\"]\nfailure_threshold = 1\nrepeat = \"30m\"\nnotify = [\"ops\"]\n\n[[maintenance]]\nname = \"nightly\"\nchecks = [\"web*\"]\ncron = \"0 2 * * *\"\ntimezone = \"UTC\"\nduration = \"2h\"\n"
            ),
            &[
                // 02:30 UTC: inside the 02:00-04:00 window.
                (9_000, Step::Run("web-1", Crit)),
                (12_000, Step::Tick),
                (14_399, Step::Tick),
                (14_400, Step::Tick),
                (14_401, Step::Tick),
                (16_200, Step::Tick),
                (20_000, Step::Run("web-1", Good)),
                // 01:33 the next night, before its window: notified at once; the repeat due
                // at 02:03 waits for the window's end at 04:00.
                (92_000, Step::Run("web-1", Crit)),
                (93_800, Step::Tick),
                (97_000, Step::Tick),
                (100_800, Step::Tick),
            ],
            expect![[r#"
                t=9000s open #1 web-down web-1 crit `down` notify=["ops", "web-team"] held by maintenance nightly
                t=14400s release #1
                t=16200s repeat #1 n=1 notify=["ops", "web-team"]
                t=20000s resolve #1 ok notify=["ops", "web-team"]
                t=92000s open #2 web-down web-1 crit `down` notify=["ops", "web-team"]
                t=100800s repeat #2 n=1 notify=["ops", "web-team"]
            "#]],
        ),
        (
            "an incident that resolves inside the window is never notified",
            &format!(
                "{CHECKS}\n[[rule]]\nname = \"web-down\"\nchecks = [\"web-1\"]\nfailure_threshold = 1\nnotify = [\"ops\"]\n"
            ),
            &[
                (0, Step::Silence("web*", 7_200)),
                (60, Step::Run("web-1", Crit)),
                (120, Step::Tick),
                (180, Step::Run("web-1", Good)),
                (7_300, Step::Tick),
                (7_400, Step::Run("web-1", Crit)),
            ],
            expect![[r#"
                t=60s open #1 web-down web-1 crit `down` notify=["ops", "web-team"] held by silence 1
                t=180s resolve #1 ok notify=[] (was held: dropped)
                t=7400s open #2 web-down web-1 crit `down` notify=["ops", "web-team"]
            "#]],
        ),
        (
            "a series rule fires after `for` on its window's average and resolves when it drops",
            &format!(
                "{CHECKS}\n[[rule]]\nname = \"cpu\"\nexpr = \"host.cpu.total > 90\"\nfor = \"1m\"\naggregate = \"avg\"\nover = \"30s\"\nnotify = [\"ops\"]\n"
            ),
            &[
                (0, Step::Sample("host.cpu.total", 50.0)),
                (10, Step::Sample("host.cpu.total", 99.0)),
                (20, Step::Sample("host.cpu.total", 99.0)),
                (30, Step::Sample("host.cpu.total", 99.0)),
                (40, Step::Sample("host.cpu.total", 99.0)),
                (50, Step::Sample("host.cpu.total", 99.0)),
                (60, Step::Sample("host.cpu.total", 99.0)),
                (70, Step::Sample("host.cpu.total", 99.0)),
                (80, Step::Sample("host.cpu.total", 99.0)),
                (90, Step::Sample("host.cpu.total", 99.0)),
                (100, Step::Sample("host.cpu.total", 60.0)),
                (110, Step::Sample("host.cpu.total", 60.0)),
                (120, Step::Sample("host.cpu.total", 60.0)),
                (130, Step::Sample("host.other", 100.0)),
            ],
            expect![[r#"
                t=90s open #1 cpu host.cpu.total firing `avg of host.cpu.total is 99 (> 90)` notify=["ops"]
                t=100s resolve #1 ok notify=["ops"]
            "#]],
        ),
    ];
    for (what, config_text, script, expect) in cases {
        eprintln!("case: {what}");
        expect.assert_eq(&evaluate(config_text, script));
    }
}

/// A request a receiver got.
#[derive(Debug, Clone)]
struct Captured {
    method: String,
    path_and_query: String,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Captured {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(key, _)| key.eq_ignore_ascii_case(name))
            .map(|(_, value)| value.as_str())
    }

    /// `METHOD /path?query`, the interesting headers, then the body (pretty JSON when it is).
    fn render(&self, headers: &[&str]) -> String {
        let mut out = format!("{} {}\n", self.method, self.path_and_query);
        for name in headers {
            if let Some(value) = self.header(name) {
                out.push_str(&format!("{name}: {value}\n"));
            }
        }
        out.push('\n');
        match serde_json::from_slice::<serde_json::Value>(&self.body) {
            Ok(json) => out.push_str(&serde_json::to_string_pretty(&json).unwrap_or_default()),
            Err(_) => out.push_str(&String::from_utf8_lossy(&self.body)),
        }
        out.push('\n');
        out
    }
}

/// A local HTTP receiver: records every request; answers 503 to the first `fail_first`
/// requests (all of them when `None`), 200 afterwards.
struct Receiver {
    url: String,
    captured: Arc<Mutex<Vec<Captured>>>,
    _server: tokio::task::JoinHandle<()>,
}

impl Receiver {
    async fn start(fail_first: Option<usize>) -> Receiver {
        use axum::body::Bytes;
        use axum::http::{HeaderMap, Method, StatusCode, Uri};
        let captured: Arc<Mutex<Vec<Captured>>> = Arc::default();
        let seen = Arc::clone(&captured);
        let app = axum::Router::new().fallback(
            move |method: Method, uri: Uri, headers: HeaderMap, body: Bytes| {
                let seen = Arc::clone(&seen);
                async move {
                    let mut list = seen.lock().unwrap_or_else(|e| e.into_inner());
                    list.push(Captured {
                        method: method.to_string(),
                        path_and_query: uri
                            .path_and_query()
                            .map(|pq| pq.to_string())
                            .unwrap_or_default(),
                        headers: headers
                            .iter()
                            .map(|(k, v)| (k.to_string(), v.to_str().unwrap_or("?").to_string()))
                            .collect(),
                        body: body.to_vec(),
                    });
                    let failing = fail_first.is_none_or(|n| list.len() <= n);
                    if failing {
                        (StatusCode::SERVICE_UNAVAILABLE, "try later")
                    } else {
                        (StatusCode::OK, "ok")
                    }
                }
            },
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        let addr = listener.local_addr().unwrap_or_else(|e| panic!("{e}"));
        let server = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Receiver {
            url: format!("http://{addr}"),
            captured,
            _server: server,
        }
    }

    fn requests(&self) -> Vec<Captured> {
        self.captured
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }
}

/// A fixed notice: incident 7 of rule `web-down` on `web-1`, opened 2023-11-14T22:13:20Z.
fn notice(event: &str) -> super::notify::Notice {
    let resolved = event == "resolved";
    super::notify::Notice {
        incident_id: Some(7),
        event: event.to_string(),
        rule: "web-down".to_string(),
        subject: "web-1".to_string(),
        check: Some("web-1".to_string()),
        status: if resolved { "ok" } else { "crit" }.to_string(),
        severity: "critical".to_string(),
        summary: if resolved {
            "HTTP 200"
        } else {
            "HTTP 503 from /health"
        }
        .to_string(),
        value: None,
        since_ms: 1_700_000_000_000,
        resolved_at_ms: resolved.then_some(1_700_000_600_000),
        url: "http://warden.test/api/v1/incidents/7".to_string(),
        labels: [
            ("check".to_string(), "web-1".to_string()),
            ("rule".to_string(), "web-down".to_string()),
            ("severity".to_string(), "critical".to_string()),
            ("team".to_string(), "web".to_string()),
        ]
        .into_iter()
        .collect(),
        text: if resolved {
            "web-1 is ok: HTTP 200"
        } else {
            "web-1 is crit: HTTP 503 from /health"
        }
        .to_string(),
        at_ms: 1_700_000_060_000,
    }
}

/// The first notifier of a config whose `[[notifier]]` text says `@URL@` for the receiver.
fn notifier_for(text: &str, url: &str) -> super::notify::Notifier {
    let config = config(&text.replace("@URL@", url));
    let notifier = config
        .notifiers
        .first()
        .unwrap_or_else(|| panic!("no notifier in {text}"));
    let http = super::notify::http_client().unwrap_or_else(|e| panic!("{e}"));
    super::notify::Notifier::build(notifier, http).unwrap_or_else(|e| panic!("{e}"))
}

/// Sends `event` through the notifier configured by `text` to a fresh receiver; returns the
/// one request it got.
async fn deliver(text: &str, event: &str) -> Captured {
    let receiver = Receiver::start(Some(0)).await;
    let notifier = notifier_for(text, &receiver.url);
    notifier
        .send(&notice(event))
        .await
        .unwrap_or_else(|e| panic!("send: {e}"));
    let mut requests = receiver.requests();
    assert_eq!(requests.len(), 1, "{requests:?}");
    requests.remove(0)
}

#[tokio::test]
async fn each_notifier_sends_its_providers_documented_payload() {
    let cases: &[(&str, &str, &[&str], Expect)] = &[
        (
            "[[notifier]]\nname = \"hook\"\nkind = \"webhook\"\nurl = \"@URL@/warden\"\nheaders = { \"X-Team\" = \"ops\" }\nsecret = \"s3cret\"\n",
            "opened",
            &["content-type", "x-team", "x-warden-signature"],
            expect![[r#"
                POST /warden
                content-type: application/json
                x-team: ops
                x-warden-signature: sha256=cc0121d7ca35d6b57815be89f97261aaf86dac06ee4741353de44070802389da

                {
                  "event": "opened",
                  "incident": {
                    "check": "web-1",
                    "id": 7,
                    "labels": {
                      "check": "web-1",
                      "rule": "web-down",
                      "severity": "critical",
                      "team": "web"
                    },
                    "resolved_at": null,
                    "rule": "web-down",
                    "severity": "critical",
                    "since": "2023-11-14T22:13:20Z",
                    "status": "crit",
                    "subject": "web-1",
                    "summary": "HTTP 503 from /health",
                    "url": "http://warden.test/api/v1/incidents/7",
                    "value": null
                  },
                  "message": "web-1 is crit: HTTP 503 from /health",
                  "sent_at": "2023-11-14T22:14:20Z",
                  "state": "firing",
                  "title": "[CRITICAL] web-down: web-1",
                  "version": "1"
                }
            "#]],
        ),
        (
            "[[notifier]]\nname = \"hook\"\nkind = \"webhook\"\nurl = \"@URL@/t\"\nbody = '{\"text\": \"{{check}} is {{status}} since {{since}}\", \"link\": \"{{url}}\"}'\n",
            "opened",
            &["content-type"],
            expect![[r#"
                POST /t
                content-type: application/json

                {
                  "link": "http://warden.test/api/v1/incidents/7",
                  "text": "web-1 is crit since 2023-11-14T22:13:20Z"
                }
            "#]],
        ),
        (
            "[[notifier]]\nname = \"chat\"\nkind = \"slack\"\nurl = \"@URL@/services/T0/B0/X0\"\n",
            "opened",
            &["content-type"],
            expect![[r#"
                POST /services/T0/B0/X0
                content-type: application/json

                {
                  "blocks": [
                    {
                      "text": {
                        "text": "[CRITICAL] web-down: web-1",
                        "type": "plain_text"
                      },
                      "type": "header"
                    },
                    {
                      "text": {
                        "text": "web-1 is crit: HTTP 503 from /health",
                        "type": "mrkdwn"
                      },
                      "type": "section"
                    },
                    {
                      "elements": [
                        {
                          "text": "since 2023-11-14T22:13:20Z · <http://warden.test/api/v1/incidents/7|incident>",
                          "type": "mrkdwn"
                        }
                      ],
                      "type": "context"
                    }
                  ],
                  "text": "[CRITICAL] web-down: web-1\nweb-1 is crit: HTTP 503 from /health"
                }
            "#]],
        ),
        (
            "[[notifier]]\nname = \"chat\"\nkind = \"discord\"\nurl = \"@URL@/api/webhooks/1/abc\"\n",
            "resolved",
            &["content-type"],
            expect![[r#"
                POST /api/webhooks/1/abc
                content-type: application/json

                {
                  "content": "[RESOLVED] web-down: web-1",
                  "embeds": [
                    {
                      "color": 3061894,
                      "description": "web-1 is ok: HTTP 200",
                      "fields": [
                        {
                          "inline": true,
                          "name": "status",
                          "value": "ok"
                        },
                        {
                          "inline": true,
                          "name": "severity",
                          "value": "critical"
                        }
                      ],
                      "timestamp": "2023-11-14T22:14:20Z",
                      "title": "[RESOLVED] web-down: web-1",
                      "url": "http://warden.test/api/v1/incidents/7"
                    }
                  ]
                }
            "#]],
        ),
        (
            "[[notifier]]\nname = \"chat\"\nkind = \"teams\"\nurl = \"@URL@/webhookb2/x\"\n",
            "opened",
            &["content-type"],
            expect![[r#"
                POST /webhookb2/x
                content-type: application/json

                {
                  "@context": "https://schema.org/extensions",
                  "@type": "MessageCard",
                  "potentialAction": [
                    {
                      "@type": "OpenUri",
                      "name": "Open incident",
                      "targets": [
                        {
                          "os": "default",
                          "uri": "http://warden.test/api/v1/incidents/7"
                        }
                      ]
                    }
                  ],
                  "sections": [
                    {
                      "facts": [
                        {
                          "name": "Rule",
                          "value": "web-down"
                        },
                        {
                          "name": "Subject",
                          "value": "web-1"
                        },
                        {
                          "name": "Status",
                          "value": "crit"
                        },
                        {
                          "name": "Severity",
                          "value": "critical"
                        },
                        {
                          "name": "Since",
                          "value": "2023-11-14T22:13:20Z"
                        }
                      ]
                    }
                  ],
                  "summary": "[CRITICAL] web-down: web-1",
                  "text": "web-1 is crit: HTTP 503 from /health",
                  "themeColor": "D70000",
                  "title": "[CRITICAL] web-down: web-1"
                }
            "#]],
        ),
        (
            "[[notifier]]\nname = \"phone\"\nkind = \"ntfy\"\nurl = \"@URL@\"\ntopic = \"alerts\"\ntoken = \"tk_1\"\n",
            "opened",
            &["title", "priority", "tags", "click", "authorization"],
            expect![[r#"
                POST /alerts
                title: [CRITICAL] web-down: web-1
                priority: 5
                tags: rotating_light
                click: http://warden.test/api/v1/incidents/7
                authorization: Bearer tk_1

                web-1 is crit: HTTP 503 from /health
            "#]],
        ),
        (
            "[[notifier]]\nname = \"phone\"\nkind = \"gotify\"\nurl = \"@URL@\"\ntoken = \"AppToken\"\n",
            "opened",
            &["content-type"],
            expect![[r#"
                POST /message?token=AppToken
                content-type: application/json

                {
                  "message": "web-1 is crit: HTTP 503 from /health",
                  "priority": 8,
                  "title": "[CRITICAL] web-down: web-1"
                }
            "#]],
        ),
        (
            "[[notifier]]\nname = \"tg\"\nkind = \"telegram\"\nurl = \"@URL@\"\nbot_token = \"123:ABC\"\nchat_id = -1001\n",
            "opened",
            &["content-type"],
            expect![[r#"
                POST /bot123:ABC/sendMessage
                content-type: application/json

                {
                  "chat_id": "-1001",
                  "disable_web_page_preview": true,
                  "text": "[CRITICAL] web-down: web-1\nweb-1 is crit: HTTP 503 from /health"
                }
            "#]],
        ),
        (
            "[[notifier]]\nname = \"pd\"\nkind = \"pagerduty\"\nurl = \"@URL@/v2/enqueue\"\nrouting_key = \"R0UT1NG\"\n",
            "opened",
            &["content-type"],
            expect![[r#"
                POST /v2/enqueue
                content-type: application/json

                {
                  "dedup_key": "warden/web-down/7",
                  "event_action": "trigger",
                  "links": [
                    {
                      "href": "http://warden.test/api/v1/incidents/7",
                      "text": "warden incident"
                    }
                  ],
                  "payload": {
                    "class": "crit",
                    "component": "web-1",
                    "custom_details": {
                      "labels": {
                        "check": "web-1",
                        "rule": "web-down",
                        "severity": "critical",
                        "team": "web"
                      },
                      "summary": "HTTP 503 from /health",
                      "value": null
                    },
                    "group": "web-down",
                    "severity": "critical",
                    "source": "web-1",
                    "summary": "[CRITICAL] web-down: web-1: web-1 is crit: HTTP 503 from /health",
                    "timestamp": "2023-11-14T22:13:20Z"
                  },
                  "routing_key": "R0UT1NG"
                }
            "#]],
        ),
        (
            "[[notifier]]\nname = \"pd\"\nkind = \"pagerduty\"\nurl = \"@URL@/v2/enqueue\"\nrouting_key = \"R0UT1NG\"\n",
            "resolved",
            &["content-type"],
            expect![[r#"
                POST /v2/enqueue
                content-type: application/json

                {
                  "dedup_key": "warden/web-down/7",
                  "event_action": "resolve",
                  "routing_key": "R0UT1NG"
                }
            "#]],
        ),
        (
            "[[notifier]]\nname = \"am\"\nkind = \"alertmanager\"\nurl = \"@URL@\"\n",
            "resolved",
            &["content-type"],
            expect![[r#"
                POST /api/v2/alerts
                content-type: application/json

                [
                  {
                    "annotations": {
                      "description": "web-1 is ok: HTTP 200",
                      "summary": "HTTP 200"
                    },
                    "endsAt": "2023-11-14T22:23:20Z",
                    "generatorURL": "http://warden.test/api/v1/incidents/7",
                    "labels": {
                      "alertname": "web-down",
                      "check": "web-1",
                      "rule": "web-down",
                      "severity": "critical",
                      "team": "web"
                    },
                    "startsAt": "2023-11-14T22:13:20Z"
                  }
                ]
            "#]],
        ),
    ];
    for (text, event, headers, expect) in cases {
        let request = deliver(text, event).await;
        expect.assert_eq(&request.render(headers));
    }
}

#[tokio::test]
async fn a_signed_webhook_verifies_with_the_secret() {
    let request = deliver(
        "[[notifier]]\nname = \"hook\"\nkind = \"webhook\"\nurl = \"@URL@/warden\"\nsecret = \"s3cret\"\n",
        "opened",
    )
    .await;
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, b"s3cret");
    let signature = request
        .header("x-warden-signature")
        .and_then(|value| value.strip_prefix("sha256="))
        .and_then(|hex_text| hex::decode(hex_text).ok())
        .unwrap_or_default();
    assert!(ring::hmac::verify(&key, &request.body, &signature).is_ok());
    // Any change to the body breaks it.
    let mut tampered = request.body.clone();
    tampered.push(b' ');
    assert!(ring::hmac::verify(&key, &tampered, &signature).is_err());
}

/// A real store with one open incident and its `opened` notification queued for `notifier`,
/// and the delivery worker running against it (its bus events are drained).
struct DeliveryFixture {
    _dir: tempfile::TempDir,
    store: warden_store::Store,
    alerting: super::Alerting,
    incident_id: i64,
    stop: tokio_util::sync::CancellationToken,
    worker: tokio::task::JoinHandle<()>,
}

impl DeliveryFixture {
    async fn start(notifier_text: &str, url: &str) -> DeliveryFixture {
        use warden_store::alerting as rows;
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let store = warden_store::Store::open(dir.path(), warden_store::StoreOptions::default())
            .unwrap_or_else(|e| panic!("{e}"));
        let config = config(&notifier_text.replace("@URL@", url));
        let name = config.notifiers[0].name.clone();
        let (bus, mut recorder_rx) = crate::bus::Bus::new(64, 64);
        tokio::spawn(async move { while recorder_rx.recv().await.is_some() {} });
        let (_tap_tx, tap_rx) = tokio::sync::mpsc::channel(1);
        let (alerting, _parts) =
            super::Alerting::new(&config, Arc::from("http://warden.test"), tap_rx)
                .unwrap_or_else(|e| panic!("{e}"));
        let incident_id = store
            .write(move |conn| {
                let id = rows::open_incident(
                    conn,
                    &rows::NewIncident {
                        rule: "web-down".to_string(),
                        subject: "web-1".to_string(),
                        check_id: None,
                        check_name: Some("web-1".to_string()),
                        severity: "critical".to_string(),
                        labels: "{}".to_string(),
                        status: Some("crit".to_string()),
                        summary: "down".to_string(),
                        value: None,
                        message: "web-1 is crit: down".to_string(),
                        held: false,
                    },
                    warden_store::now_ms(),
                )?
                .unwrap_or_else(|id| id);
                rows::queue_delivery(
                    conn,
                    Some(id),
                    &name,
                    "opened",
                    false,
                    warden_store::now_ms(),
                )?;
                Ok(id)
            })
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        let stop = tokio_util::sync::CancellationToken::new();
        let worker = tokio::spawn(super::delivery::run(
            alerting.clone(),
            store.clone(),
            bus,
            stop.clone(),
        ));
        DeliveryFixture {
            _dir: dir,
            store,
            alerting,
            incident_id,
            stop,
            worker,
        }
    }

    /// Waits (bounded) until the notification is sent or failed for good; returns its state.
    async fn settled(&self) -> warden_store::alerting::DeliveryRow {
        let id = self.incident_id;
        for _ in 0..400 {
            let rows = self
                .store
                .read(move |conn| warden_store::alerting::deliveries_of(conn, id))
                .await
                .unwrap_or_default();
            if let Some(row) = rows.first()
                && (row.state == "sent" || row.state == "failed")
            {
                return row.clone();
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        panic!("the notification did not settle");
    }

    async fn timeline(&self) -> Vec<String> {
        let id = self.incident_id;
        self.store
            .read(move |conn| warden_store::alerting::incident_events(conn, id))
            .await
            .unwrap_or_default()
            .into_iter()
            .map(|event| format!("{} {}", event.kind, event.detail))
            .collect()
    }

    async fn stop(self) {
        self.stop.cancel();
        let _ = self.worker.await;
        self.store.close().await;
    }
}

#[tokio::test]
async fn a_receiver_failing_twice_then_succeeding_gets_the_notification_once() {
    let receiver = Receiver::start(Some(2)).await;
    let fixture = DeliveryFixture::start(
        "[[notifier]]\nname = \"ops\"\nkind = \"webhook\"\nurl = \"@URL@/hook\"\nbackoff = \"20ms\"\n",
        &receiver.url,
    )
    .await;
    let row = fixture.settled().await;
    assert_eq!((row.state.as_str(), row.attempts), ("sent", 3));
    // Three requests reached the receiver, two refused: delivered exactly once.
    let requests = receiver.requests();
    assert_eq!(requests.len(), 3);
    // Each attempt carries the same incident and event (only `sent_at` moves).
    let incidents: Vec<serde_json::Value> = requests
        .iter()
        .map(|r| {
            let body: serde_json::Value = serde_json::from_slice(&r.body).unwrap_or_default();
            serde_json::json!([body["event"], body["incident"]])
        })
        .collect();
    assert!(
        incidents.iter().all(|i| *i == incidents[0]),
        "{incidents:?}"
    );
    assert_eq!(
        incidents[0][1]["id"],
        serde_json::json!(fixture.incident_id)
    );
    assert_eq!(
        fixture.timeline().await,
        [
            "opened down",
            "attempt_failed opened attempt 1 failed: HTTP 503: try later",
            "attempt_failed opened attempt 2 failed: HTTP 503: try later",
            "delivered opened (attempt 3)",
        ]
    );
    let stats = fixture.alerting.stats();
    assert_eq!(
        stats
            .notifications_sent
            .load(std::sync::atomic::Ordering::Relaxed),
        1
    );
    assert_eq!(
        stats
            .notification_attempts_failed
            .load(std::sync::atomic::Ordering::Relaxed),
        2
    );
    assert_eq!(
        stats
            .notifications_failed
            .load(std::sync::atomic::Ordering::Relaxed),
        0
    );
    let incident = fixture
        .store
        .read({
            let id = fixture.incident_id;
            move |conn| warden_store::alerting::get_incident(conn, id)
        })
        .await
        .ok()
        .flatten();
    assert_eq!(incident.map(|i| i.state), Some("notified".to_string()));
    fixture.stop().await;
}

#[tokio::test]
async fn a_receiver_that_always_fails_is_recorded_and_counted() {
    let receiver = Receiver::start(None).await;
    let fixture = DeliveryFixture::start(
        "[[notifier]]\nname = \"ops\"\nkind = \"webhook\"\nurl = \"@URL@/hook\"\nbackoff = \"10ms\"\nmax_attempts = 3\n",
        &receiver.url,
    )
    .await;
    let row = fixture.settled().await;
    assert_eq!((row.state.as_str(), row.attempts), ("failed", 3));
    assert_eq!(row.last_error.as_deref(), Some("HTTP 503: try later"));
    assert_eq!(receiver.requests().len(), 3);
    assert_eq!(
        fixture.timeline().await.last().map(String::as_str),
        Some("delivery_failed opened not delivered after 3 attempts: HTTP 503: try later")
    );
    let stats = fixture.alerting.stats();
    assert_eq!(
        stats
            .notifications_failed
            .load(std::sync::atomic::Ordering::Relaxed),
        1
    );
    assert_eq!(
        stats
            .notifications_sent
            .load(std::sync::atomic::Ordering::Relaxed),
        0
    );
    let counters = fixture.alerting.counters("ops");
    assert_eq!(
        counters.map(|c| c.failed.load(std::sync::atomic::Ordering::Relaxed)),
        Some(1)
    );
    fixture.stop().await;
}

#[tokio::test]
async fn an_unreachable_receiver_fails_with_the_reason() {
    // A port nobody listens on (bound, then closed).
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .unwrap_or_else(|e| panic!("{e}"));
    let fixture = DeliveryFixture::start(
        "[[notifier]]\nname = \"ops\"\nkind = \"slack\"\nurl = \"@URL@/x\"\nbackoff = \"10ms\"\nmax_attempts = 2\n",
        &format!("http://127.0.0.1:{port}"),
    )
    .await;
    let row = fixture.settled().await;
    assert_eq!(row.state, "failed");
    assert!(
        row.last_error
            .as_deref()
            .is_some_and(|error| error.contains("refused")),
        "{row:?}"
    );
    fixture.stop().await;
}

#[test]
fn the_token_bucket_spaces_notifications_out() {
    use super::delivery::TokenBucket;
    use warden_core::config::RateLimit;
    let mut bucket = TokenBucket::new(
        RateLimit {
            count: 2,
            per: Duration::from_secs(60),
        },
        0,
    );
    assert_eq!(bucket.take(0), Ok(()));
    assert_eq!(bucket.take(0), Ok(()));
    // Empty: the next token comes after 30 s.
    assert_eq!(bucket.take(1_000), Err(30_000));
    assert_eq!(bucket.take(30_000), Ok(()));
    assert_eq!(
        super::delivery::retry_delay_ms(Duration::from_secs(2), 1),
        2_000
    );
    assert_eq!(
        super::delivery::retry_delay_ms(Duration::from_secs(2), 4),
        16_000
    );
    assert_eq!(
        super::delivery::retry_delay_ms(Duration::from_secs(2), 30),
        600_000
    );
}

/// `python3 -m aiosmtpd` must be installed in CI (`.ci/run` installs it); elsewhere the test
/// says so and skips.
fn aiosmtpd_present() -> bool {
    let present = std::process::Command::new("python3")
        .args(["-c", "import aiosmtpd"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .is_ok_and(|status| status.success());
    if present {
        return true;
    }
    assert!(
        std::env::var("WARDEN_REQUIRE_SERVICES").as_deref() != Ok("1"),
        "aiosmtpd is not installed but WARDEN_REQUIRE_SERVICES=1"
    );
    eprintln!("SKIPPED: aiosmtpd is not installed; python3 -m pip install aiosmtpd");
    false
}

/// A CA and a `localhost` server certificate it signed, as PEM files in `dir`.
fn write_pki(
    dir: &std::path::Path,
) -> (std::path::PathBuf, std::path::PathBuf, std::path::PathBuf) {
    use rcgen::{
        BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair,
        KeyUsagePurpose,
    };
    let mut ca_params =
        CertificateParams::new(Vec::<String>::new()).unwrap_or_else(|e| panic!("{e}"));
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(DnType::CommonName, "warden test CA");
    ca_params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    let ca_key = KeyPair::generate().unwrap_or_else(|e| panic!("{e}"));
    let ca = CertifiedIssuer::self_signed(ca_params, ca_key).unwrap_or_else(|e| panic!("{e}"));
    let mut params =
        CertificateParams::new(vec!["localhost".to_string()]).unwrap_or_else(|e| panic!("{e}"));
    params
        .distinguished_name
        .push(DnType::CommonName, "localhost");
    let key = KeyPair::generate().unwrap_or_else(|e| panic!("{e}"));
    let certificate = params
        .signed_by(&key, &*ca)
        .unwrap_or_else(|e| panic!("{e}"));
    let paths = (
        dir.join("ca.pem"),
        dir.join("cert.pem"),
        dir.join("key.pem"),
    );
    for (path, text) in [
        (&paths.0, ca.pem()),
        (&paths.1, certificate.pem()),
        (&paths.2, key.serialize_pem()),
    ] {
        std::fs::write(path, text).unwrap_or_else(|e| panic!("{e}"));
    }
    paths
}

#[tokio::test]
async fn email_goes_through_a_real_smtp_server_with_starttls() {
    use std::io::BufRead as _;
    if !aiosmtpd_present() {
        return;
    }
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let (ca, cert, key) = write_pki(dir.path());
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .unwrap_or_else(|e| panic!("{e}"));
    // The default handler prints each message between marker lines; STARTTLS is required
    // once a certificate is given.
    let mut server = std::process::Command::new("python3")
        .args([
            "-u",
            "-m",
            "aiosmtpd",
            "-n",
            "-l",
            &format!("127.0.0.1:{port}"),
        ])
        .arg("--tlscert")
        .arg(&cert)
        .arg("--tlskey")
        .arg(&key)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("aiosmtpd: {e}"));
    let stdout = server.stdout.take().unwrap_or_else(|| panic!("stdout"));
    let (lines_tx, lines_rx) = std::sync::mpsc::channel::<String>();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stdout)
            .lines()
            .map_while(Result::ok)
        {
            if lines_tx.send(line).is_err() {
                break;
            }
        }
    });
    let mut listening = false;
    for _ in 0..200 {
        if tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_ok()
        {
            listening = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(listening, "aiosmtpd did not listen on {port}");
    let text = format!(
        "[[notifier]]\nname = \"mail\"\nkind = \"email\"\nhost = \"localhost\"\nport = {port}\ntls = \"starttls\"\nfrom = \"warden@example.org\"\nto = [\"ops@example.org\", \"oncall@example.org\"]\nca_file = \"{}\"\n",
        ca.display()
    );
    let notifier = notifier_for(&text, "");
    let sent = notifier.send(&notice("opened")).await;
    // Without the CA the certificate is refused: TLS is really checked.
    let untrusted = notifier_for(&text.replace("ca_file", "# ca_file"), "");
    let refused = untrusted.send(&notice("opened")).await;
    let mut message = Vec::new();
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while std::time::Instant::now() < deadline {
        match lines_rx.recv_timeout(Duration::from_millis(100)) {
            Ok(line) if line.contains("END MESSAGE") => break,
            Ok(line) => message.push(line),
            Err(_) => {}
        }
    }
    let _ = server.kill();
    let _ = server.wait();
    sent.unwrap_or_else(|e| panic!("send: {e}"));
    assert!(refused.is_err(), "an untrusted certificate was accepted");
    let has = |wanted: &str| message.iter().any(|line| line.trim_end() == wanted);
    assert!(has("Subject: [CRITICAL] web-down: web-1"), "{message:#?}");
    assert!(has("From: warden@example.org"), "{message:#?}");
    assert!(
        has("To: ops@example.org, oncall@example.org"),
        "{message:#?}"
    );
    assert!(has("web-1 is crit: HTTP 503 from /health"), "{message:#?}");
    assert!(
        has("incident: http://warden.test/api/v1/incidents/7"),
        "{message:#?}"
    );
}

#[tokio::test]
async fn a_rate_limited_notifier_spaces_notifications_out_and_drops_none() {
    let receiver = Receiver::start(Some(0)).await;
    let fixture = DeliveryFixture::start(
        "[[notifier]]\nname = \"ops\"\nkind = \"webhook\"\nurl = \"@URL@/hook\"\nrate_limit = \"2/1s\"\n",
        &receiver.url,
    )
    .await;
    let id = fixture.incident_id;
    let started = std::time::Instant::now();
    fixture
        .store
        .write(move |conn| {
            for event in ["repeat-1", "repeat-2", "repeat-3"] {
                warden_store::alerting::queue_delivery(
                    conn,
                    Some(id),
                    "ops",
                    event,
                    false,
                    warden_store::now_ms(),
                )?;
            }
            Ok(())
        })
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    fixture.alerting.wake_delivery();
    for _ in 0..200 {
        if receiver.requests().len() == 4 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    let requests = receiver.requests();
    assert_eq!(requests.len(), 4, "every notification arrives");
    // Two at once, then one every half second: the fourth no sooner than ~1 s in.
    assert!(
        started.elapsed() >= Duration::from_millis(900),
        "{:?}",
        started.elapsed()
    );
    let events: Vec<String> = requests
        .iter()
        .map(|r| {
            let body: serde_json::Value = serde_json::from_slice(&r.body).unwrap_or_default();
            body["event"].as_str().unwrap_or("").to_string()
        })
        .collect();
    // The first two go out together (the burst the limit allows), so either may land first.
    assert!(events[..2].contains(&"opened".to_string()), "{events:?}");
    let mut sorted = events.clone();
    sorted.sort();
    assert_eq!(sorted, ["opened", "repeat", "repeat", "repeat"]);
    fixture.stop().await;
}
