//! The commands that talk to a hub over its HTTP API: `checks`, `runs`, `run`, `logs`.
//!
//! Each builds a small current-thread runtime, makes one or a few calls with
//! `warden_client::Client`, and prints a table (or JSON with `--json`) on stdout.

use std::future::Future;
use std::io::Write as _;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::Context as _;
use serde::Serialize;
use warden_client::render::{
    render_checks, render_output, render_ping_urls, render_run, render_runs,
};
use warden_client::{CheckFilter, Client, ClientError, Run, RunFilter, RunState, Status};
use warden_core::duration::HumanDuration;

mod alerting;
mod users;

pub(crate) use alerting::{
    AckArgs, IncidentsArgs, NotifyCommand, SilenceArgs, ack, incidents, notify, silence,
};
pub(crate) use users::{UsersCommand, users};

use crate::Failure;
use crate::cli::{
    CancelArgs, ChecksArgs, HubArgs, LogsArgs, RunArgs, RunsArgs, SeriesArgs, StatusArg,
    TokensCommand, UptimeArgs,
};

/// Longest single waiting call; the wait loop asks again until its own timeout.
const MAX_WAIT_PER_CALL: Duration = Duration::from_secs(30);
/// Shortest time between two waiting calls, in case a hub answers early without a result.
const MIN_POLL_INTERVAL: Duration = Duration::from_millis(250);
/// Nagios' UNKNOWN, also used when `run --wait` cannot obtain a result.
const NAGIOS_UNKNOWN: u8 = 3;

pub(crate) fn checks(hub: &HubArgs, args: &ChecksArgs) -> Result<(), Failure> {
    let client = client(hub)?;
    let filter = CheckFilter {
        status: args.status.map(status_from_arg),
        filter: args.filter.clone(),
        kind: args.kind.clone(),
        label: args.label.clone(),
    };
    let checks = block_on(client.checks(&filter))?.map_err(hub_failure)?;
    if hub.json {
        return print_json(&checks);
    }
    if args.show_ping_urls {
        return print(&render_ping_urls(&checks, now_ms()));
    }
    print(&render_checks(&checks, now_ms()))
}

pub(crate) fn runs(hub: &HubArgs, args: &RunsArgs) -> Result<(), Failure> {
    let client = client(hub)?;
    let filter = RunFilter {
        check: args.check.clone(),
        limit: Some(args.limit),
        before: args.before,
    };
    let page = block_on(client.runs(&filter))?.map_err(hub_failure)?;
    if hub.json {
        return print_json(&page);
    }
    print(&render_runs(&page.runs, now_ms()))?;
    if let Some(before) = page.next_before {
        eprintln!("older runs: add --before {before}");
    }
    Ok(())
}

/// Prints each line as it comes (a JSON object per line with `--json`).
struct PrintLines {
    json: bool,
    failed: Option<Failure>,
}

impl warden_client::FollowSink for PrintLines {
    fn line(&mut self, line: &warden_client::OutputLine) {
        if self.failed.is_some() {
            return;
        }
        let text = if self.json {
            match serde_json::to_string(line) {
                Ok(text) => format!("{text}\n"),
                Err(_) => return,
            }
        } else {
            format!("{}\n", line.line)
        };
        if let Err(failure) = print(&text) {
            self.failed = Some(failure);
        }
    }
}

pub(crate) fn logs(hub: &HubArgs, args: &LogsArgs) -> Result<(), Failure> {
    let client = client(hub)?;
    if args.follow {
        let mut sink = PrintLines {
            json: hub.json,
            failed: None,
        };
        let run = block_on(client.follow(args.run_id, &mut sink, Duration::from_secs(60)))?
            .map_err(hub_failure)?;
        if let Some(failure) = sink.failed {
            return Err(failure);
        }
        if !hub.json {
            eprintln!(
                "run {} {}{}",
                run.id,
                run.state.as_str(),
                run.status
                    .map(|status| format!(": {}", status.as_str()))
                    .unwrap_or_default()
            );
        }
        return Ok(());
    }
    let lines = block_on(client.output(args.run_id))?.map_err(hub_failure)?;
    if hub.json {
        return print_json(&lines);
    }
    print(&render_output(&lines))
}

pub(crate) fn run(hub: &HubArgs, args: &RunArgs) -> Result<(), Failure> {
    if !args.wait {
        let client = client(hub)?;
        let run_id = block_on(client.run_check(&args.name))?.map_err(hub_failure)?;
        if hub.json {
            return print_json(&serde_json::json!({ "run_id": run_id }));
        }
        return print(&format!("{run_id}\n"));
    }
    // As a Nagios plugin: failing to get a result is UNKNOWN (3), never 1 (WARN) or 2 (CRIT).
    match run_and_wait(hub, args) {
        Ok(0) => Ok(()),
        Ok(code) => Err(Failure::Exit(code)),
        Err(failure) => {
            failure.report();
            Err(Failure::Exit(NAGIOS_UNKNOWN))
        }
    }
}

/// Queues a run, waits for it, prints it; returns the Nagios exit code of its result.
fn run_and_wait(hub: &HubArgs, args: &RunArgs) -> Result<u8, Failure> {
    let client = client(hub)?;
    let run = block_on(async {
        let run_id = client.run_check(&args.name).await?;
        wait_for_final(&client, run_id, args.timeout).await
    })?
    .map_err(hub_failure)?;
    if hub.json {
        print_json(&run)?;
    } else {
        print(&render_run(&run))?;
    }
    if !run.state.is_final() {
        return Err(Failure::Runtime(anyhow::anyhow!(
            "run {} did not finish within {} (it is {})",
            run.id,
            HumanDuration(args.timeout),
            run.state.as_str()
        )));
    }
    Ok(nagios_code(&run))
}

/// Asks the hub for the run, waiting up to [`MAX_WAIT_PER_CALL`] per call, until the run is
/// final or `timeout` has passed; returns the last state seen.
async fn wait_for_final(
    client: &Client,
    run_id: i64,
    timeout: Duration,
) -> Result<Run, ClientError> {
    let deadline = Instant::now() + timeout;
    loop {
        let asked_at = Instant::now();
        let remaining = deadline.saturating_duration_since(asked_at);
        let run = client
            .run(run_id, Some(remaining.min(MAX_WAIT_PER_CALL)))
            .await?;
        if run.state.is_final() || Instant::now() >= deadline {
            return Ok(run);
        }
        // A hub that answers early without a result (one that ignores `wait_ms`) must not
        // make this loop spin.
        let elapsed = asked_at.elapsed();
        if elapsed < MIN_POLL_INTERVAL {
            tokio::time::sleep(MIN_POLL_INTERVAL - elapsed).await;
        }
    }
}

/// ok 0, warn 1, crit 2, unknown 3; a run that died, was cancelled or has no status: 3.
fn nagios_code(run: &Run) -> u8 {
    let status = match (run.state, run.status) {
        (RunState::Completed, Some(status)) => status,
        _ => return NAGIOS_UNKNOWN,
    };
    let status = match status {
        Status::Ok => warden_core::status::Status::Ok,
        Status::Warn => warden_core::status::Status::Warn,
        Status::Crit => warden_core::status::Status::Crit,
        Status::Unknown => warden_core::status::Status::Unknown,
    };
    u8::try_from(status.exit_code()).unwrap_or(NAGIOS_UNKNOWN)
}

/// `warden status`: a one-line summary, then the problems; exits with the worst status's
/// Nagios code (3 when the hub cannot be asked).
pub(crate) fn status(hub: &HubArgs) -> Result<(), Failure> {
    let checks = match client(hub)
        .and_then(|client| block_on(client.checks(&CheckFilter::default()))?.map_err(hub_failure))
    {
        Ok(checks) => checks,
        Err(failure) => {
            failure.report();
            return Err(Failure::Exit(NAGIOS_UNKNOWN));
        }
    };
    let count = |status: Option<Status>| checks.iter().filter(|c| c.status == status).count();
    let (ok, warn, crit, unknown, pending) = (
        count(Some(Status::Ok)),
        count(Some(Status::Warn)),
        count(Some(Status::Crit)),
        count(Some(Status::Unknown)),
        count(None),
    );
    let worst = if crit > 0 {
        2
    } else if unknown > 0 {
        3
    } else if warn > 0 {
        1
    } else {
        0
    };
    if hub.json {
        print_json(&serde_json::json!({
            "checks": checks.len(), "ok": ok, "warn": warn, "crit": crit,
            "unknown": unknown, "pending": pending,
            "problems": checks.iter().filter(|c| matches!(c.status, Some(Status::Warn | Status::Crit | Status::Unknown))).collect::<Vec<_>>(),
        }))?;
    } else {
        let mut text = format!(
            "{} checks: {ok} ok, {warn} warn, {crit} crit, {unknown} unknown, {pending} pending\n",
            checks.len()
        );
        let problems: Vec<_> = checks
            .iter()
            .filter(|c| {
                matches!(
                    c.status,
                    Some(Status::Crit | Status::Unknown | Status::Warn)
                )
            })
            .cloned()
            .collect();
        if !problems.is_empty() {
            text.push('\n');
            text.push_str(&render_checks(&problems, now_ms()));
        }
        print(&text)?;
    }
    if worst == 0 {
        Ok(())
    } else {
        Err(Failure::Exit(worst))
    }
}

pub(crate) fn cancel(hub: &HubArgs, args: &CancelArgs) -> Result<(), Failure> {
    let client = client(hub)?;
    let answer = block_on(client.cancel(args.run_id))?.map_err(hub_failure)?;
    if hub.json {
        return print_json(&answer);
    }
    print(&format!(
        "run {} cancelled (it was {})\n",
        args.run_id,
        answer["was"].as_str().unwrap_or("unknown")
    ))
}

pub(crate) fn series(hub: &HubArgs, args: &SeriesArgs) -> Result<(), Failure> {
    let client = client(hub)?;
    let body = block_on(client.series(&args.name, &args.since, args.step.as_deref(), &args.agg))?
        .map_err(hub_failure)?;
    if hub.json {
        return print_json(&body);
    }
    if body.points.is_empty() {
        return print(&format!(
            "no points for {} in the last {}\n",
            body.name, args.since
        ));
    }
    let mut text = format!(
        "{} ({} per {})\n",
        body.name,
        body.aggregate,
        HumanDuration(Duration::from_millis(
            u64::try_from(body.step_ms).unwrap_or(0)
        ))
    );
    for (ts, value) in &body.points {
        text.push_str(&format!(
            "{}  {}\n",
            warden_client::render::utc_timestamp(*ts),
            format_value(*value)
        ));
    }
    print(&text)
}

/// Up to 6 significant digits, without trailing zeros.
fn format_value(value: f64) -> String {
    if value.fract() == 0.0 && value.abs() < 1e15 {
        return format!("{value:.0}");
    }
    let text = format!("{value:.6}");
    text.trim_end_matches('0').trim_end_matches('.').to_string()
}

pub(crate) fn uptime(hub: &HubArgs, args: &UptimeArgs) -> Result<(), Failure> {
    let client = client(hub)?;
    let body = block_on(client.uptime(&args.name, &args.since))?.map_err(hub_failure)?;
    if hub.json {
        return print_json(&body);
    }
    let percent = body["uptime_percent"]
        .as_f64()
        .map(|p| format!("{p:.3}%"))
        .unwrap_or_else(|| "no runs".to_string());
    let mean = body["mean_response_time_ms"]
        .as_f64()
        .map(|ms| format!(", mean response time {ms:.1} ms"))
        .unwrap_or_default();
    print(&format!(
        "{} over the last {}: {percent} up ({} of {} runs){mean}\n",
        args.name,
        args.since,
        body["up"].as_i64().unwrap_or(0),
        body["runs"].as_i64().unwrap_or(0)
    ))
}

pub(crate) fn tokens(hub: &HubArgs, command: &TokensCommand) -> Result<(), Failure> {
    let client = client(hub)?;
    match command {
        TokensCommand::Create {
            name,
            role,
            expires,
        } => {
            let body = block_on(client.create_token(name, role, expires.as_deref()))?
                .map_err(hub_failure)?;
            if hub.json {
                return print_json(&body);
            }
            print(&format!(
                "token {} ({}, {}) created; its secret is shown once:\n{}\n",
                body["id"],
                body["name"].as_str().unwrap_or_default(),
                body["role"].as_str().unwrap_or_default(),
                body["token"].as_str().unwrap_or_default()
            ))
        }
        TokensCommand::List => {
            let body = block_on(client.tokens())?.map_err(hub_failure)?;
            if hub.json {
                return print_json(&body);
            }
            let tokens = body["tokens"].as_array().cloned().unwrap_or_default();
            let mut text = format!(
                "{:<6}  {:<24}  {:<9}  {:<8}  EXPIRES\n",
                "ID", "NAME", "ROLE", "STATE"
            );
            for token in &tokens {
                text.push_str(&format!(
                    "{:<6}  {:<24}  {:<9}  {:<8}  {}\n",
                    token["id"],
                    token["name"].as_str().unwrap_or_default(),
                    token["role"].as_str().unwrap_or_default(),
                    token["state"].as_str().unwrap_or_default(),
                    token["expires_at"]
                        .as_i64()
                        .map(warden_client::render::utc_timestamp)
                        .unwrap_or_else(|| "never".to_string())
                ));
            }
            print(&text)
        }
        TokensCommand::Revoke { id } => {
            let body = block_on(client.revoke_token(*id))?.map_err(hub_failure)?;
            if hub.json {
                return print_json(&body);
            }
            print(&format!("token {id} revoked\n"))
        }
    }
}

/// What `~/.config/warden/cli.toml` may hold.
#[derive(Debug, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct CliFile {
    url: Option<String>,
    token: Option<String>,
}

/// The CLI config file: `$WARDEN_CLI_CONFIG`, else `$XDG_CONFIG_HOME/warden/cli.toml`, else
/// `~/.config/warden/cli.toml`. A missing file is no error; a broken one is.
fn cli_file() -> Result<CliFile, Failure> {
    let path = match std::env::var_os("WARDEN_CLI_CONFIG") {
        Some(path) => std::path::PathBuf::from(path),
        None => match std::env::var_os("XDG_CONFIG_HOME").filter(|v| !v.is_empty()) {
            Some(dir) => std::path::PathBuf::from(dir).join("warden/cli.toml"),
            None => match std::env::var_os("HOME") {
                Some(home) => std::path::PathBuf::from(home).join(".config/warden/cli.toml"),
                None => return Ok(CliFile::default()),
            },
        },
    };
    let text = match std::fs::read_to_string(&path) {
        Ok(text) => text,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
            return Ok(CliFile::default());
        }
        Err(error) => {
            return Err(Failure::Config(format!(
                "error: cannot read {}: {error}",
                path.display()
            )));
        }
    };
    toml::from_str(&text).map_err(|error| {
        Failure::Config(format!(
            "error: {}: {}",
            path.display(),
            error.message().trim()
        ))
    })
}

/// The client for `--url` and `--token` (flags, then env, then cli.toml); a missing token or a
/// bad URL is a usage error.
fn client(hub: &HubArgs) -> Result<Client, Failure> {
    let file = if hub.url.is_none() || hub.token.is_none() {
        cli_file()?
    } else {
        CliFile::default()
    };
    let url = hub
        .url
        .clone()
        .or(file.url)
        .unwrap_or_else(|| "http://127.0.0.1:7878".to_string());
    let token = match hub.token.clone().or(file.token) {
        Some(token) if !token.is_empty() => token,
        _ => {
            return Err(Failure::Config(
                "error: no token: pass --token, set WARDEN_TOKEN, or put `token = \"...\"` in ~/.config/warden/cli.toml".to_string(),
            ));
        }
    };
    Client::new(&url, &token).map_err(|error| Failure::Config(format!("error: {error}")))
}

/// An error talking to the hub; for an API error the message is the hub's own.
fn hub_failure(error: ClientError) -> Failure {
    Failure::Runtime(error.into())
}

fn block_on<F: Future>(future: F) -> Result<F::Output, Failure> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    Ok(runtime.block_on(future))
}

fn status_from_arg(status: StatusArg) -> Status {
    match status {
        StatusArg::Ok => Status::Ok,
        StatusArg::Warn => Status::Warn,
        StatusArg::Crit => Status::Crit,
        StatusArg::Unknown => Status::Unknown,
    }
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |since| {
            i64::try_from(since.as_millis()).unwrap_or(i64::MAX)
        })
}

fn print_json<T: Serialize>(value: &T) -> Result<(), Failure> {
    let mut text = serde_json::to_string_pretty(value).context("cannot encode JSON")?;
    text.push('\n');
    print(&text)
}

/// Writes to stdout; a closed pipe (`warden runs | head`) is not an error.
fn print(text: &str) -> Result<(), Failure> {
    let mut stdout = std::io::stdout().lock();
    match stdout
        .write_all(text.as_bytes())
        .and_then(|()| stdout.flush())
    {
        Err(error) if error.kind() != std::io::ErrorKind::BrokenPipe => Err(Failure::Runtime(
            anyhow::Error::new(error).context("cannot write to stdout"),
        )),
        _ => Ok(()),
    }
}
