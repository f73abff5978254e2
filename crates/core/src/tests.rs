//! Unit tests for core: config errors (table-driven snapshots), durations, interpolation, cron.

use std::time::Duration;

use expect_test::{Expect, expect};

use crate::config::{CheckKind, Overlap, Schedule, parse_config};
use crate::cron::CronSchedule;
use crate::duration::{HumanDuration, parse_duration};

fn env(name: &str) -> Option<String> {
    match name {
        "HOME_DIR" => Some("/home/w".to_string()),
        "PORT" => Some("9000".to_string()),
        _ => None,
    }
}

/// Parses `text` as `warden.toml` and renders either the errors or a short summary.
fn check(text: &str, expect: &Expect) {
    let rendered = match parse_config("warden.toml", text, &env) {
        Ok(config) => {
            let mut out = format!(
                "ok listen={} data={}\n",
                config.hub.listen,
                config.hub.data.display()
            );
            for check in &config.checks {
                let schedule = match &check.schedule {
                    Schedule::Every(every) => format!("every {}", HumanDuration(*every)),
                    Schedule::Cron { expr, timezone } => format!("cron {expr:?} tz={timezone:?}"),
                };
                let detail = match &check.kind {
                    CheckKind::Exec(exec) => format!(
                        "{:?} env={:?} cwd={:?} clean={}",
                        exec.command, exec.env, exec.cwd, exec.clean_env
                    ),
                    CheckKind::Noop => String::new(),
                    other => serde_json::to_string(other).unwrap_or_default(),
                };
                let detail = if check.links.is_empty() {
                    detail
                } else {
                    let links: Vec<String> = check
                        .links
                        .iter()
                        .map(|link| format!("{}={}", link.name, link.url))
                        .collect();
                    format!("{detail} links=[{}]", links.join(" "))
                };
                out.push_str(&format!(
                    "{} {} {} timeout={} overlap={} {}\n",
                    check.name,
                    check.kind_name(),
                    schedule,
                    HumanDuration(check.timeout),
                    check.overlap.as_str(),
                    detail
                ));
            }
            out
        }
        Err(errors) => format!("{errors}\n"),
    };
    expect.assert_eq(&rendered);
}

#[test]
fn valid_config() {
    check(
        r#"
[hub]
listen = "0.0.0.0:${PORT}"
data = "${HOME_DIR}/data"

[[check]]
name = "disk"
kind = "exec"
command = ["check_disk", "-w", "10%", "-p", "${HOME_DIR}"]
every = "1h30m"
timeout = "250ms"
env = { LANG = "C" }
cwd = "/tmp"
clean_env = true

[[check]]
name = "nightly"
kind = "noop"
cron = "0 3 * * *"
timezone = "Europe/Paris"
overlap = "queue"
labels = { team = "ops" }

[[check]]
name = "dollar"
kind = "exec"
command = ["sh", "-c", "echo $$ $${LITERAL} ${UNSET:-fallback}"]
every = "30s"
"#,
        &expect![[r#"
            ok listen=0.0.0.0:9000 data=/home/w/data
            disk exec every 1h30m timeout=250ms overlap=skip ["check_disk", "-w", "10%", "-p", "/home/w"] env={"LANG": "C"} cwd=Some("/tmp") clean=true
            nightly noop cron "0 3 * * *" tz=Some("Europe/Paris") timeout=10s overlap=queue 
            dollar exec every 30s timeout=10s overlap=skip ["sh", "-c", "echo $$ ${LITERAL} fallback"] env={} cwd=None clean=false
        "#]],
    );
}

#[test]
fn probe_and_heartbeat_configs() {
    check(
        r#"
[hub]
public_url = "https://warden.example.org/"

[[check]]
name = "site"
kind = "http"
url = "https://example.org/health"
every = "30s"
conditions = ["[STATUS] == 200", "[BODY].status == UP", "[RESPONSE_TIME] < 500"]

[[check]]
name = "api"
kind = "http"
url = "http://127.0.0.1:${PORT}/x"
method = "post"
headers = { "X-Token" = "t" }
body = '{"a":1}'
bearer_token = "secret"
follow_redirects = false
verify_tls = false
http_version = "2"
every = "1m"

[[check]]
name = "db-port"
kind = "tcp"
host = "10.0.0.5"
port = 5432
every = "10s"
links = [{ name = "runbook", url = "https://wiki.example/db" }]

[[check]]
name = "resolver"
kind = "dns"
query = "example.org"
record = "aaaa"
server = "127.0.0.1:5353"
expect = ["::1"]
every = "1m"

[[check]]
name = "gw"
kind = "icmp"
host = "192.0.2.1"
count = 5
every = "1m"

[[check]]
name = "cert"
kind = "tls"
host = "example.org"
every = "1h"
warn_days = 30

[[check]]
name = "this-host"
kind = "host"
every = "30s"
disk_crit = 90

[[check]]
name = "nightly-backup"
kind = "heartbeat"
period = "1d"
grace = "30m"

[[check]]
name = "weekly"
kind = "heartbeat"
cron = "0 3 * * 1"
timezone = "Europe/Paris"
"#,
        &expect![[r#"
            ok listen=127.0.0.1:7878 data=./warden-data
            site http every 30s timeout=10s overlap=skip {"kind":"http","url":"https://example.org/health","method":"GET","headers":{},"body":null,"auth":null,"follow_redirects":true,"verify_tls":true,"client_cert":null,"http_version":"auto","conditions":["[STATUS] == 200","[BODY].status == UP","[RESPONSE_TIME] < 500"]}
            api http every 1m timeout=10s overlap=skip {"kind":"http","url":"http://127.0.0.1:9000/x","method":"POST","headers":{"X-Token":"t"},"body":"{\"a\":1}","auth":{"bearer":{"token":"secret"}},"follow_redirects":false,"verify_tls":false,"client_cert":null,"http_version":"http2","conditions":["[STATUS] < 400"]}
            db-port tcp every 10s timeout=10s overlap=skip {"kind":"tcp","host":"10.0.0.5","port":5432,"send":null,"expect":null,"conditions":["[CONNECTED] == true"]} links=[runbook=https://wiki.example/db]
            resolver dns every 1m timeout=10s overlap=skip {"kind":"dns","query":"example.org","record":"AAAA","server":"127.0.0.1:5353","expect":["::1"],"conditions":["[DNS_RCODE] == NOERROR"]}
            gw icmp every 1m timeout=10s overlap=skip {"kind":"icmp","host":"192.0.2.1","count":5,"interval":200,"warn_loss":20.0,"crit_loss":100.0,"conditions":[]}
            cert tls every 1h timeout=10s overlap=skip {"kind":"tls","host":"example.org","port":443,"server_name":null,"warn_days":30.0,"crit_days":7.0,"conditions":[]}
            this-host host every 30s timeout=10s overlap=skip {"kind":"host","disk_warn":85.0,"disk_crit":90.0,"memory_warn":90.0,"memory_crit":97.0}
            nightly-backup heartbeat every 1d timeout=10s overlap=allow {"kind":"heartbeat","grace":1800000}
            weekly heartbeat cron "0 3 * * 1" tz=Some("Europe/Paris") timeout=10s overlap=allow {"kind":"heartbeat","grace":3600000}
        "#]],
    );
}

#[test]
fn bad_probe_configs() {
    check(
        r#"
[[check]]
name = "a"
kind = "http"
url = "ftp://example.org"
every = "30s"
conditions = ["[STATUS] == 200", "[STATU] == 200", "[STATUS] 200"]

[[check]]
name = "b"
kind = "tcp"
host = "db"
port = 70000
every = "10s"

[[check]]
name = "c"
kind = "dns"
query = "example.org"
record = "MXX"
server = "localhost"
every = "1m"

[[check]]
name = "d"
kind = "heartbeat"
every = "1d"

[[check]]
name = "e"
kind = "http"
url = "https://x"
every = "1m"
basic_auth = { username = "u" }
client_cert = "c.pem"
http_version = "3"

[[check]]
name = "f"
kind = "host"
every = "1m"
disk_warn = 120
conditions = ["[STATUS] == 200"]

[[check]]
name = "g"
kind = "icmp"
every = "1m"
count = 0
links = [{ name = "x", url = "ftp://nope" }, "CI"]
"#,
        &expect![[r#"
            warden.toml:5:7: check[0].url: `ftp://example.org` is not an http:// or https:// URL with a host
            warden.toml:7:35: check[0].conditions[1]: unknown placeholder `[STATU]`
            warden.toml:7:52: check[0].conditions[2]: missing operator: expected `==`, `!=`, `<`, `<=`, `>` or `>=` with a space on each side
            warden.toml:13:8: check[1].port: must be a whole number from 1 to 65535
            warden.toml:20:10: check[2].record: unknown record type `MXX`, expected one of: A, AAAA, CNAME, MX, NS, TXT, SOA, PTR, SRV, CAA
            warden.toml:21:10: check[2].server: `localhost` is not IP or IP:PORT, e.g. `1.1.1.1` or `127.0.0.1:5353`
            warden.toml:24:1: check[3]: a heartbeat needs `period = "1d"` or `cron = "0 3 * * *"`: when pings are expected
            warden.toml:27:1: check[3].every: unknown key `every`; expected one of: name, kind, period, cron, timezone, grace, labels, links, badge
            warden.toml:29:1: check[4]: `client_cert` and `client_key` go together: give both PEM files
            warden.toml:34:14: check[4].basic_auth: expected `{ username = "...", password = "..." }`
            warden.toml:36:16: check[4].http_version: unknown HTTP version `3`, expected one of: auto, 1.1, 2
            warden.toml:42:13: check[5].disk_warn: must be a percentage from 0 to 100
            warden.toml:43:1: check[5].conditions: unknown key `conditions`; expected one of: name, kind, every, cron, timezone, timeout, overlap, labels, links, badge, disk_warn, disk_crit, memory_warn, memory_crit
            warden.toml:45:1: check[6]: a `icmp` check needs `host = "..."`
            warden.toml:49:9: check[6].count: must be a whole number from 1 to 100
            warden.toml:50:10: check[6].links[0]: expected `{ name = "...", url = "https://..." }` with an http(s) URL
            warden.toml:50:46: check[6].links[1]: expected a table of strings, found string
        "#]],
    );
}

#[test]
fn empty_config_is_valid() {
    check(
        "",
        &expect![[r#"
        ok listen=127.0.0.1:7878 data=./warden-data
    "#]],
    );
}

#[test]
fn bad_configs() {
    // Each case: a config with one kind of mistake, and the exact message with its position.
    let cases: &[(&str, &str, Expect)] = &[
        (
            "syntax error",
            "[[check]\nname = \"a\"\n",
            expect![[r#"
                warden.toml:1:9: TOML syntax error: unclosed array table, expected `]`
            "#]],
        ),
        (
            "unterminated string",
            "[hub]\nlisten = \"127.0.0.1:1\n",
            expect![[r#"
                warden.toml:2:22: TOML syntax error: invalid basic string, expected `"`
            "#]],
        ),
        (
            "unknown top-level key",
            "chekc = 1\n",
            expect![[r#"
                warden.toml:1:1: chekc: unknown key `chekc` (did you mean `check`?); expected one of: hub, check, rule, notifier, maintenance, status_page
            "#]],
        ),
        (
            "unknown check key",
            "[[check]]\nname = \"a\"\nkind = \"exec\"\ncommand = [\"true\"]\nevrey = \"5s\"\nevery = \"5s\"\n",
            expect![[r#"
                warden.toml:5:1: check[0].evrey: unknown key `evrey` (did you mean `every`?); expected one of: name, kind, every, cron, timezone, timeout, overlap, labels, links, badge, command, env, cwd, clean_env
            "#]],
        ),
        (
            "bad duration unit",
            "[[check]]\nname = \"a\"\nkind = \"noop\"\nevery = \"5 minutes\"\n",
            expect![[r#"
                warden.toml:4:9: check[0].every: `5 minutes` has an unknown unit ` minutes`: use ms, s, m, h, d or w
            "#]],
        ),
        (
            "duration without unit",
            "[[check]]\nname = \"a\"\nkind = \"noop\"\nevery = 30\n",
            expect![[r#"
                warden.toml:4:9: check[0].every: a duration needs a unit and quotes, e.g. "30s"
            "#]],
        ),
        (
            "zero interval",
            "[[check]]\nname = \"a\"\nkind = \"noop\"\nevery = \"0s\"\n",
            expect![[r#"
                warden.toml:4:9: check[0].every: must be greater than zero
            "#]],
        ),
        (
            "duplicate name",
            "[[check]]\nname = \"a\"\nkind = \"noop\"\nevery = \"1s\"\n\n[[check]]\nname = \"a\"\nkind = \"noop\"\nevery = \"2s\"\n",
            expect![[r#"
                warden.toml:7:8: check[1].name: duplicate check name `a` (first used by check[0])
            "#]],
        ),
        (
            "exec without command",
            "[[check]]\nname = \"a\"\nkind = \"exec\"\nevery = \"1s\"\n",
            expect![[r#"
                warden.toml:1:1: check[0]: an exec check needs `command = ["prog", "arg", ...]`
            "#]],
        ),
        (
            "exec command as a string",
            "[[check]]\nname = \"a\"\nkind = \"exec\"\nevery = \"1s\"\ncommand = \"check_disk -w 10%\"\n",
            expect![[r#"
                warden.toml:5:11: check[0].command: expected an array of strings, e.g. `command = ["check_disk", "-w", "10%"]`; to use a shell write `["sh", "-c", "..."]`
            "#]],
        ),
        (
            "empty command",
            "[[check]]\nname = \"a\"\nkind = \"exec\"\nevery = \"1s\"\ncommand = []\n",
            expect![[r#"
                warden.toml:5:11: check[0].command: must name a program: `command = ["prog", "arg", ...]`
            "#]],
        ),
        (
            "unset env var",
            "[[check]]\nname = \"a\"\nkind = \"exec\"\nevery = \"1s\"\ncommand = [\"x\", \"${NOPE}\"]\n",
            expect![[r#"
                warden.toml:5:17: check[0].command[1]: environment variable `NOPE` is not set (write `${NOPE:-default}` to allow that)
            "#]],
        ),
        (
            "cron with 6 bad fields",
            "[[check]]\nname = \"a\"\nkind = \"noop\"\ncron = \"61 25 * * * *\"\n",
            expect![[r#"
                warden.toml:4:8: check[0].cron: `61 25 * * * *` has 6 fields; cron takes 5: minute hour day-of-month month day-of-week
            "#]],
        ),
        (
            "cron field out of range",
            "[[check]]\nname = \"a\"\nkind = \"noop\"\ncron = \"61 * * * *\"\n",
            expect![[r#"
                warden.toml:4:8: check[0].cron: `61 * * * *` is not a valid cron expression: Component error: Number out of bounds.
            "#]],
        ),
        (
            "every and cron together",
            "[[check]]\nname = \"a\"\nkind = \"noop\"\nevery = \"1m\"\ncron = \"* * * * *\"\n",
            expect![[r#"
                warden.toml:5:8: check[0].cron: `every` and `cron` are exclusive: give one
            "#]],
        ),
        (
            "no schedule",
            "[[check]]\nname = \"a\"\nkind = \"noop\"\n",
            expect![[r#"
                warden.toml:1:1: check[0]: missing schedule: give `every = "30s"` or `cron = "*/5 * * * *"`
            "#]],
        ),
        (
            "unknown time zone",
            "[[check]]\nname = \"a\"\nkind = \"noop\"\ncron = \"0 3 * * *\"\ntimezone = \"Mars/Olympus\"\n",
            expect![[r#"
                warden.toml:5:12: check[0].timezone: unknown time zone `Mars/Olympus`: use an IANA name like `Europe/Paris` or `UTC`
            "#]],
        ),
        (
            "unknown kind",
            "[[check]]\nname = \"a\"\nkind = \"ftp\"\nevery = \"1s\"\n",
            expect![[r#"
                warden.toml:3:8: check[0].kind: unknown check kind `ftp`, expected one of: exec, http, tcp, dns, icmp, tls, host, heartbeat, noop
            "#]],
        ),
        (
            "missing name and kind",
            "[[check]]\nevery = \"1s\"\n",
            expect![[r#"
                warden.toml:1:1: check[0]: missing key `name`
                warden.toml:1:1: check[0]: missing key `kind`
            "#]],
        ),
        (
            "bad name",
            "[[check]]\nname = \"has space\"\nkind = \"noop\"\nevery = \"1s\"\n",
            expect![[r#"
                warden.toml:2:8: check[0].name: `has space` is not a valid check name: use 1-100 letters, digits, `-`, `_`, `.` or `/`
            "#]],
        ),
        (
            "bad listen address",
            "[hub]\nlisten = \"localhost\"\n",
            expect![[r#"
                warden.toml:2:10: hub.listen: `localhost` is not a socket address: expected IP:PORT, e.g. `127.0.0.1:7878`
            "#]],
        ),
        (
            "wrong type",
            "[hub]\ndata = 5\n",
            expect![[r#"
                warden.toml:2:8: hub.data: expected a string, found integer
            "#]],
        ),
        (
            "bad overlap",
            "[[check]]\nname = \"a\"\nkind = \"noop\"\nevery = \"1s\"\noverlap = \"never\"\n",
            expect![[r#"
                warden.toml:5:11: check[0].overlap: unknown overlap policy `never`, expected one of: skip, queue, allow
            "#]],
        ),
        (
            "timezone with every",
            "[[check]]\nname = \"a\"\nkind = \"noop\"\nevery = \"1s\"\ntimezone = \"UTC\"\n",
            expect![[r#"
                warden.toml:5:12: check[0].timezone: `timezone` only applies to `cron` schedules
            "#]],
        ),
        (
            "hub is not a table",
            "hub = \"x\"\n",
            expect![[r#"
                warden.toml:1:7: hub: expected a table `[hub]`, found string
            "#]],
        ),
        (
            "unterminated interpolation",
            "[hub]\ndata = \"${HOME_DIR\"\n",
            expect![[r#"
                warden.toml:2:8: hub.data: unterminated `${`: write `${VAR}`, or `$${` for a literal
            "#]],
        ),
        (
            "column counts characters, not bytes",
            "[[check]]\nname = \"é\"\nkind = \"noop\"\nevery = \"1s\"\nlabels = { \"ü\" = 1 }\n",
            expect![[r#"
                warden.toml:2:8: check[0].name: `é` is not a valid check name: use 1-100 letters, digits, `-`, `_`, `.` or `/`
                warden.toml:5:18: check[0].labels.ü: expected a string, found integer
            "#]],
        ),
    ];
    assert!(
        cases.len() >= 15,
        "the issue asks for at least 15 bad configs"
    );
    for (what, text, expect) in cases {
        eprintln!("case: {what}");
        check(text, expect);
    }
}

#[test]
fn every_error_is_reported_at_once_in_file_order() {
    check(
        "[hub]\nlisten = \"nope\"\nbogus = 1\n\n[[check]]\nname = \"a\"\nkind = \"noop\"\nevery = \"1x\"\n\n[[check]]\nname = \"b\"\nkind = \"exec\"\nevery = \"1s\"\n",
        &expect![[r#"
            warden.toml:2:10: hub.listen: `nope` is not a socket address: expected IP:PORT, e.g. `127.0.0.1:7878`
            warden.toml:3:1: hub.bogus: unknown key `bogus`; expected one of: listen, data, public_url, metrics_public
            warden.toml:8:9: check[0].every: `1x` has an unknown unit `x`: use ms, s, m, h, d or w
            warden.toml:10:1: check[1]: an exec check needs `command = ["prog", "arg", ...]`
        "#]],
    );
}

#[test]
fn durations() {
    let cases = [
        ("250ms", Some(Duration::from_millis(250))),
        ("30s", Some(Duration::from_secs(30))),
        ("5m", Some(Duration::from_secs(300))),
        ("1h30m", Some(Duration::from_secs(5400))),
        ("1d", Some(Duration::from_secs(86_400))),
        ("1w2d", Some(Duration::from_secs(9 * 86_400))),
        ("1m30s500ms", Some(Duration::from_millis(90_500))),
        (" 10s ", Some(Duration::from_secs(10))),
        ("", None),
        ("10", None),
        ("s", None),
        ("1.5h", None),
        ("-5s", None),
        ("10 s", None),
        ("99999999999999999999s", None),
        ("999999999999999w", None),
    ];
    for (text, want) in cases {
        assert_eq!(parse_duration(text).ok(), want, "{text:?}");
    }
    for text in ["250ms", "30s", "1h30m", "1d", "1m30s500ms"] {
        let parsed = parse_duration(text).unwrap_or_default();
        assert_eq!(HumanDuration(parsed).to_string(), text);
    }
}

#[test]
fn cron_next_in_zone() {
    let schedule =
        CronSchedule::parse("30 2 * * *", Some("Europe/Paris")).map_err(|e| e.to_string());
    let schedule = schedule.unwrap_or_else(|e| panic!("{e}"));
    let start: jiff::Timestamp = "2026-03-28T12:00:00Z"
        .parse()
        .unwrap_or_else(|e| panic!("{e}"));
    // 2026-03-29 02:30 does not exist in Paris (clocks jump 02:00 -> 03:00).
    let first = schedule.next_after(start).map(|t| t.to_string());
    let second = schedule
        .next_after(start)
        .and_then(|t| schedule.next_after(t))
        .map(|t| t.to_string());
    // 02:30 does not exist that night: like Vixie cron, the slot runs at the first instant after
    // the gap, 03:00 CEST (01:00Z), once.
    assert_eq!(first.as_deref(), Some("2026-03-29T01:00:00Z"));
    assert_eq!(second.as_deref(), Some("2026-03-30T00:30:00Z"));
}

#[test]
fn overlap_default_is_skip() {
    assert_eq!(Overlap::default(), Overlap::Skip);
}

/// Parses `text` and renders its rules, notifiers and maintenance windows (or the errors).
fn check_alerting(text: &str, expect: &Expect) {
    use crate::config::{NotifierKind, RuleCondition};
    let rendered = match parse_config("warden.toml", text, &env) {
        Ok(config) => {
            let mut out = String::new();
            for rule in &config.rules {
                let condition = match &rule.condition {
                    RuleCondition::Status(status) => format!(
                        "status checks={:?} match={:?} trigger={:?} success={} on_warn={}",
                        status.checks.names,
                        status.checks.labels,
                        status.trigger,
                        status.success_threshold,
                        status.on_warn
                    ),
                    RuleCondition::Series(series) => format!(
                        "series `{}` for={} {}/{}",
                        series.expr,
                        HumanDuration(series.for_duration),
                        series.aggregate.as_str(),
                        HumanDuration(series.over)
                    ),
                };
                out.push_str(&format!(
                    "rule {} {condition} severity={} labels={:?} message={:?} resolved={} repeat={:?} notify={:?}\n",
                    rule.name,
                    rule.severity.as_str(),
                    rule.labels,
                    rule.message,
                    rule.send_on_resolved,
                    rule.repeat.map(|r| HumanDuration(r).to_string()),
                    rule.notify
                ));
            }
            for notifier in &config.notifiers {
                let detail = match &notifier.kind {
                    NotifierKind::Email(email) => format!("{email:?}"),
                    other => format!("{other:?}"),
                };
                out.push_str(&format!(
                    "notifier {} {} default={} match={:?} rate={:?} attempts={} backoff={} timeout={} {detail}\n",
                    notifier.name,
                    notifier.kind.name(),
                    notifier.default,
                    notifier.match_labels,
                    notifier
                        .rate_limit
                        .map(|r| format!("{}/{}", r.count, HumanDuration(r.per))),
                    notifier.max_attempts,
                    HumanDuration(notifier.backoff),
                    HumanDuration(notifier.timeout),
                ));
            }
            for window in &config.maintenance {
                out.push_str(&format!(
                    "maintenance {} checks={:?} match={:?} cron={:?} tz={:?} duration={}\n",
                    window.name,
                    window.checks.names,
                    window.checks.labels,
                    window.cron,
                    window.timezone,
                    HumanDuration(window.duration)
                ));
            }
            out
        }
        Err(errors) => format!("{errors}\n"),
    };
    expect.assert_eq(&rendered);
}

#[test]
fn alerting_configs() {
    check_alerting(
        r#"
[[notifier]]
name = "ops"
kind = "webhook"
url = "https://hooks.example/warden/"
headers = { "X-Team" = "ops" }
secret = "${HOME_DIR}"
body = '{"text": "{{check}} is {{status}}", "n": 1}'
default = true
rate_limit = "10/1m"
max_attempts = 3
backoff = "100ms"

[[notifier]]
name = "chat"
kind = "slack"
url = "https://hooks.slack.com/services/T/B/X"
match = { team = "web" }

[[notifier]]
name = "phone"
kind = "ntfy"
topic = "alerts"

[[notifier]]
name = "tg"
kind = "telegram"
bot_token = "123:abc"
chat_id = -1001

[[notifier]]
name = "pd"
kind = "pagerduty"
routing_key = "R0UT1NG"

[[notifier]]
name = "am"
kind = "alertmanager"
url = "http://127.0.0.1:9093"

[[notifier]]
name = "mail"
kind = "email"
host = "smtp.example.org"
username = "u"
password = "p"
from = "warden@example.org"
to = ["ops@example.org"]

[[rule]]
name = "web-down"
checks = ["web-*"]
failure_threshold = 3
success_threshold = 2
send_on_resolved = true
repeat = "1h"
notify = ["ops"]

[[rule]]
name = "flappy"
match = { team = "web" }
window = "3 of 5"
severity = "warning"
message = "{{check}} is {{status}} since {{since}}: {{summary}} ({{url}})"

[[rule]]
name = "cpu"
expr = "host.cpu.total > 90"
for = "5m"
aggregate = "avg"
over = "2m"
labels = { team = "infra" }

[[rule]]
name = "late-job"
checks = ["nightly-backup"]
on = "late"
send_on_resolved = false

[[maintenance]]
name = "saturday"
checks = ["web*"]
cron = "0 2 * * 6"
timezone = "Europe/Paris"
duration = "2h"
"#,
        &expect![[r#"
            rule web-down status checks=["web-*"] match={} trigger=Consecutive(3) success=2 on_warn=false severity=critical labels={} message=None resolved=true repeat=Some("1h") notify=["ops"]
            rule flappy status checks=[] match={"team": "web"} trigger=Window { failures: 3, runs: 5 } success=1 on_warn=false severity=warning labels={} message=Some("{{check}} is {{status}} since {{since}}: {{summary}} ({{url}})") resolved=true repeat=None notify=[]
            rule cpu series `host.cpu.total > 90` for=5m avg/2m severity=critical labels={"team": "infra"} message=None resolved=true repeat=None notify=[]
            rule late-job status checks=["nightly-backup"] match={} trigger=Consecutive(2) success=1 on_warn=true severity=critical labels={} message=None resolved=false repeat=None notify=[]
            notifier ops webhook default=true match={} rate=Some("10/1m") attempts=3 backoff=100ms timeout=10s Webhook { url: "https://hooks.example/warden", headers: {"X-Team": "ops"}, secret: Some("/home/w"), body: Some("{\"text\": \"{{check}} is {{status}}\", \"n\": 1}") }
            notifier chat slack default=false match={"team": "web"} rate=None attempts=5 backoff=2s timeout=10s Slack { url: "https://hooks.slack.com/services/T/B/X" }
            notifier phone ntfy default=false match={} rate=None attempts=5 backoff=2s timeout=10s Ntfy { url: "https://ntfy.sh", topic: "alerts", token: None }
            notifier tg telegram default=false match={} rate=None attempts=5 backoff=2s timeout=10s Telegram { url: "https://api.telegram.org", bot_token: "123:abc", chat_id: "-1001" }
            notifier pd pagerduty default=false match={} rate=None attempts=5 backoff=2s timeout=10s PagerDuty { url: "https://events.pagerduty.com/v2/enqueue", routing_key: "R0UT1NG" }
            notifier am alertmanager default=false match={} rate=None attempts=5 backoff=2s timeout=10s Alertmanager { url: "http://127.0.0.1:9093" }
            notifier mail email default=false match={} rate=None attempts=5 backoff=2s timeout=10s EmailNotifier { host: "smtp.example.org", port: 587, tls: Starttls, username: Some("u"), password: Some("p"), from: "warden@example.org", to: ["ops@example.org"], ca_file: None }
            maintenance saturday checks=["web*"] match={} cron="0 2 * * 6" tz=Some("Europe/Paris") duration=2h
        "#]],
    );
}

#[test]
fn bad_alerting_configs() {
    check_alerting(
        r#"
[[notifier]]
name = "ops"
kind = "pager"

[[notifier]]
name = "hook"
kind = "webhook"
url = "hooks.example"
body = '{"text": {{check}}}'
rate_limit = "10 per minute"

[[notifier]]
name = "hook"
kind = "gotify"
url = "https://gotify.example"

[[notifier]]
name = "mail"
kind = "email"
host = "smtp"
username = "u"
to = []
tls = "ssl"

[[rule]]
name = "a"
failure_threshold = 3

[[rule]]
name = "b"
checks = ["x"]
failure_threshold = 3
window = "3 of 5"
message = "{{check}} {{nope}}"
notify = ["ops", "nobody"]

[[rule]]
name = "c"
checks = ["x"]
window = "6 of 5"
on = "sometimes"
severity = "page"

[[rule]]
name = "d"
expr = "host.cpu.total >> 90"
failure_threshold = 2

[[rule]]
name = "e"
expr = "host.cpu.total > 90"
aggregate = "avg"

[[maintenance]]
name = "m"
cron = "0 2 * *"
duration = "0s"
"#,
        &expect![[r#"
            warden.toml:4:8: notifier[0].kind: unknown notifier kind `pager`, expected one of: webhook, slack, discord, teams, ntfy, gotify, telegram, pagerduty, alertmanager, email
            warden.toml:9:7: notifier[1].url: `hooks.example` is not an http:// or https:// URL with a host
            warden.toml:10:8: notifier[1].body: the body template is not JSON once filled in: expected value at line 1 column 10; put placeholders inside strings, e.g. `{"text": "{{check}} is {{status}}"}`
            warden.toml:11:14: notifier[1].rate_limit: `10 per minute` is not a rate: expected `COUNT/DURATION`, e.g. `10/1m`
            warden.toml:13:1: notifier[2]: notifier kind `gotify` needs `token = "..."`
            warden.toml:18:1: notifier[3]: notifier kind `email` needs `from = "..."`
            warden.toml:18:1: notifier[3]: `username` and `password` go together: give both
            warden.toml:23:6: notifier[3].to: needs at least one address
            warden.toml:24:7: notifier[3].tls: unknown tls mode `ssl`, expected one of: starttls, tls, none
            warden.toml:26:1: rule[0]: a rule needs `checks = ["web-*"]` or `match = { label = "value" }` (a status rule), or `expr = "SERIES > N"` (a series rule)
            warden.toml:34:10: rule[1].window: `failure_threshold` and `window` are exclusive: give one
            warden.toml:35:11: rule[1].message: unknown placeholder `{{nope}}`; expected one of: check, status, summary, value, since, url, rule, severity, incident, event, state
            warden.toml:36:18: rule[1].notify[1]: no notifier named `nobody`; configured: ops, hook, hook, mail
            warden.toml:41:10: rule[2].window: `6 of 5`: need 1 <= N <= M <= 100 in `N of M`
            warden.toml:42:6: rule[2].on: unknown `on` value `sometimes`, expected one of: crit (crit and unknown fail), warn (warn too), late (a heartbeat's late, which is warn)
            warden.toml:43:12: rule[2].severity: unknown severity `page`, expected one of: critical, warning, info
            warden.toml:47:8: rule[3].expr: unknown operator `>>`: expected one of >, >=, <, <=, ==, !=
            warden.toml:48:1: rule[3].failure_threshold: unknown key `failure_threshold`; expected one of: name, severity, labels, message, send_on_resolved, repeat, notify, checks, match, expr, for, aggregate, over
            warden.toml:53:13: rule[4].aggregate: an aggregate needs the window it is taken over: `over = "5m"`
            warden.toml:55:1: maintenance[0]: a maintenance window needs `checks = ["web-*"]` (or `["*"]` for all) or `match = { label = "value" }`
            warden.toml:57:8: maintenance[0].cron: `0 2 * *` has 4 fields; cron takes 5: minute hour day-of-month month day-of-week
            warden.toml:58:12: maintenance[0].duration: must be greater than zero
        "#]],
    );
}

#[test]
fn globs_windows_rates_and_templates() {
    use crate::alerting::{
        glob_match, parse_rate, parse_window, render_template, validate_template,
    };
    let globs = [
        ("web-*", "web-1", true),
        ("web-*", "web-", true),
        ("web-*", "api-1", false),
        ("*", "", true),
        ("w?b", "web", true),
        ("w?b", "wb", false),
        ("*-db-*", "eu-db-1", true),
        ("*-db-*", "eu-db", false),
        ("a*b*c", "aXbYbZc", true),
        ("exact", "exact", true),
        ("exact", "exactly", false),
    ];
    for (glob, text, want) in globs {
        assert_eq!(glob_match(glob, text), want, "{glob} vs {text}");
    }
    assert_eq!(parse_window("3 of 5"), Ok((3, 5)));
    assert!(parse_window("0 of 5").is_err());
    assert!(parse_window("5 of 3").is_err());
    assert!(parse_window("3/5").is_err());
    assert_eq!(parse_rate("10/1m"), Ok((10, Duration::from_secs(60))));
    assert!(parse_rate("0/1m").is_err());
    assert!(parse_rate("10").is_err());
    assert!(validate_template("{{check}} is {{ status }}").is_ok());
    assert!(validate_template("{{check").is_err());
    let rendered = render_template(
        "{{check}} is {{ status }}{{unknown}}!",
        &|name| match name {
            "check" => Some("web".to_string()),
            "status" => Some("crit".to_string()),
            _ => None,
        },
        &|text| text.to_uppercase(),
    );
    assert_eq!(rendered, "WEB is CRIT!");
}
