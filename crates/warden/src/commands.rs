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

use crate::Failure;
use crate::cli::{ChecksArgs, HubArgs, LogsArgs, RunArgs, RunsArgs, StatusArg};

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

pub(crate) fn logs(hub: &HubArgs, args: &LogsArgs) -> Result<(), Failure> {
    let client = client(hub)?;
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

/// The client for `--url` and `--token`; a missing token or a bad URL is a usage error.
fn client(hub: &HubArgs) -> Result<Client, Failure> {
    let token = match hub.token.as_deref() {
        Some(token) if !token.is_empty() => token,
        _ => {
            return Err(Failure::Config(
                "error: no token: pass --token or set WARDEN_TOKEN".to_string(),
            ));
        }
    };
    Client::new(&hub.url, token).map_err(|error| Failure::Config(format!("error: {error}")))
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
