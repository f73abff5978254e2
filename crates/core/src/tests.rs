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
                warden.toml:1:1: chekc: unknown key `chekc` (did you mean `check`?); expected one of: hub, check
            "#]],
        ),
        (
            "unknown check key",
            "[[check]]\nname = \"a\"\nkind = \"exec\"\ncommand = [\"true\"]\nevrey = \"5s\"\nevery = \"5s\"\n",
            expect![[r#"
                warden.toml:5:1: check[0].evrey: unknown key `evrey` (did you mean `every`?); expected one of: name, kind, every, cron, timezone, timeout, overlap, labels, command, env, cwd, clean_env
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
                warden.toml:3:8: check[0].kind: unknown check kind `ftp`, expected one of: exec, noop
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
            warden.toml:3:1: hub.bogus: unknown key `bogus`; expected one of: listen, data
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
