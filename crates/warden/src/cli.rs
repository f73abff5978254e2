//! Command-line definitions (clap).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};

/// warden runs, watches and alerts: checks, pipelines and streams on one hub with agents.
#[derive(Debug, Parser)]
#[command(name = "warden", version, about, long_about = None)]
#[command(
    after_help = "Exit codes: 0 success, 1 runtime failure (store, port, I/O, hub unreachable or \
        refusing), 2 invalid config or usage; `run --wait` exits with the result's Nagios code."
)]
pub struct Cli {
    /// Log output format (logs go to stderr).
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Human)]
    pub log_format: LogFormat,
    /// Log filter, e.g. `info`, `debug`, `warden_hub=debug`; WARDEN_LOG overrides it.
    #[arg(long, global = true, default_value = "info")]
    pub log_level: String,
    #[command(flatten)]
    pub hub: HubArgs,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    Human,
    Json,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Start everything on this machine with zero config: hub, local worker, embedded SQLite.
    Up(ServeArgs),
    /// Start a hub from a config file.
    Hub(ServeArgs),
    /// Work with config files.
    Config {
        #[command(subcommand)]
        command: ConfigCommand,
    },
    /// List checks with their latest status.
    #[command(after_help = CLIENT_EXIT_CODES)]
    Checks(ChecksArgs),
    /// List recent runs, newest first.
    #[command(after_help = CLIENT_EXIT_CODES)]
    Runs(RunsArgs),
    /// Run a check now; with --wait, wait for the result and exit with its Nagios code.
    #[command(after_help = RUN_EXIT_CODES)]
    Run(RunArgs),
    /// Print the output lines of a run.
    #[command(after_help = CLIENT_EXIT_CODES)]
    Logs(LogsArgs),
    /// One line on the hub and its checks, then the problems.
    #[command(after_help = STATUS_EXIT_CODES)]
    Status,
    /// Cancel a queued or running run.
    #[command(after_help = CLIENT_EXIT_CODES)]
    Cancel(CancelArgs),
    /// Print a series' points over a range (e.g. `warden series web.response_time --since 1h`).
    #[command(after_help = CLIENT_EXIT_CODES)]
    Series(SeriesArgs),
    /// A check's uptime (share of runs ok or warn) and mean response time.
    #[command(after_help = CLIENT_EXIT_CODES)]
    Uptime(UptimeArgs),
    /// Manage API tokens (needs an admin token).
    #[command(after_help = CLIENT_EXIT_CODES)]
    Tokens {
        #[command(subcommand)]
        command: TokensCommand,
    },
    /// Manage the users who sign in to the web UI with a password (needs an admin token).
    #[command(after_help = CLIENT_EXIT_CODES)]
    Users {
        #[command(subcommand)]
        command: crate::commands::UsersCommand,
    },
    /// List incidents (rules that fired), or show one with its timeline.
    #[command(after_help = CLIENT_EXIT_CODES)]
    Incidents(crate::commands::IncidentsArgs),
    /// Acknowledge an incident: it stops re-notifying; who and the note are recorded.
    #[command(after_help = CLIENT_EXIT_CODES)]
    Ack(crate::commands::AckArgs),
    /// Hold the notifications of some checks for a while (they still run and record).
    #[command(after_help = CLIENT_EXIT_CODES)]
    Silence(crate::commands::SilenceArgs),
    /// Notifiers: `warden notify test NAME` sends a test message (exit 1 if not delivered).
    Notify {
        #[command(subcommand)]
        command: crate::commands::NotifyCommand,
    },
}

const CLIENT_EXIT_CODES: &str = "Exit codes: 0 success; 1 error talking to the hub (unreachable, \
    or it refused the request); 2 usage (bad flags, no token).";

const STATUS_EXIT_CODES: &str = "Exit codes, as a Nagios plugin: the worst status among the \
    checks, 0 OK, 1 WARN, 2 CRIT, 3 UNKNOWN; also 3 when the hub cannot be asked. Checks not run \
    yet count as OK. Bad flags exit 2.";

const RUN_EXIT_CODES: &str = "Exit codes without --wait: 0 the run is queued (its id is printed); \
    1 error talking to the hub; 2 usage (bad flags, no token).\n\
    Exit codes with --wait, as a Nagios plugin: the result's code, 0 OK, 1 WARN, 2 CRIT, 3 UNKNOWN; \
    also 3 when no result could be obtained (hub unreachable or refusing, no token, timeout, run \
    dead or cancelled). Bad flags still exit 2.";

/// How to reach the hub: for the commands that talk to one. Flags win over the environment,
/// which wins over `~/.config/warden/cli.toml` (`url = "..."`, `token = "..."`).
#[derive(Debug, Args)]
pub struct HubArgs {
    /// The hub's URL [default: cli.toml's `url`, else http://127.0.0.1:7878].
    #[arg(long, global = true, env = "WARDEN_URL", help_heading = "Hub")]
    pub url: Option<String>,
    /// API token (`warden up` prints the admin token once, at first start).
    #[arg(
        long,
        global = true,
        env = "WARDEN_TOKEN",
        hide_env_values = true,
        help_heading = "Hub"
    )]
    pub token: Option<String>,
    /// Print JSON instead of tables.
    #[arg(long, global = true, help_heading = "Hub")]
    pub json: bool,
}

/// A check status, as a filter.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum StatusArg {
    Ok,
    Warn,
    Crit,
    Unknown,
}

#[derive(Debug, Args)]
pub struct ChecksArgs {
    /// Only checks whose latest status is this.
    #[arg(long, value_enum)]
    pub status: Option<StatusArg>,
    /// Only checks whose name contains this text.
    #[arg(long, value_name = "TEXT")]
    pub filter: Option<String>,
    /// Only checks of this kind (exec, http, tcp, dns, icmp, tls, host, heartbeat).
    #[arg(long)]
    pub kind: Option<String>,
    /// Only checks with this label, as KEY=VALUE.
    #[arg(long, value_name = "KEY=VALUE")]
    pub label: Option<String>,
    /// List the heartbeat checks with the URL their jobs ping (needs an operator token).
    #[arg(long)]
    pub show_ping_urls: bool,
}

#[derive(Debug, Args)]
pub struct CancelArgs {
    /// The run's id (see `warden runs`).
    pub run_id: i64,
}

#[derive(Debug, Args)]
pub struct SeriesArgs {
    /// The series, e.g. `web.response_time` (`<check>.<label>`).
    pub name: String,
    /// How far back, e.g. `1h`, `24h`, `30d`.
    #[arg(long, default_value = "1h")]
    pub since: String,
    /// One point per step (default: the range over 300 points).
    #[arg(long)]
    pub step: Option<String>,
    /// How points within a step are combined.
    #[arg(long, default_value = "avg", value_parser = ["avg", "min", "max", "last"])]
    pub agg: String,
}

#[derive(Debug, Args)]
pub struct UptimeArgs {
    /// The check.
    pub name: String,
    /// How far back, e.g. `24h`, `30d`.
    #[arg(long, default_value = "24h")]
    pub since: String,
}

#[derive(Debug, Subcommand)]
pub enum TokensCommand {
    /// Make a token; its secret is printed once.
    Create {
        /// A name saying who or what uses it.
        #[arg(long)]
        name: String,
        /// admin, operator (run/cancel/ack), viewer (read), agent, ping (heartbeats only).
        #[arg(long, value_parser = ["admin", "operator", "viewer", "agent", "ping"])]
        role: String,
        /// Expire after this long, e.g. `30d` (never, by default).
        #[arg(long)]
        expires: Option<String>,
    },
    /// List tokens (never their secrets).
    List,
    /// Revoke a token at once.
    Revoke {
        /// The token's id (see `warden tokens list`).
        id: i64,
    },
}

#[derive(Debug, Args)]
pub struct RunsArgs {
    /// Only runs of this check.
    #[arg(long, value_name = "NAME")]
    pub check: Option<String>,
    /// How many runs to list.
    #[arg(long, default_value_t = 20, value_parser = clap::value_parser!(u32).range(1..))]
    pub limit: u32,
    /// Only runs older than this run id (for the next page).
    #[arg(long, value_name = "RUN_ID")]
    pub before: Option<i64>,
}

#[derive(Debug, Args)]
pub struct RunArgs {
    /// The check to run.
    pub name: String,
    /// Wait for the result, print it and exit with its Nagios code.
    #[arg(long)]
    pub wait: bool,
    /// How long --wait waits for the result, e.g. `90s` or `5m`.
    #[arg(long, default_value = "60s", value_parser = parse_duration_arg, requires = "wait")]
    pub timeout: Duration,
}

#[derive(Debug, Args)]
pub struct LogsArgs {
    /// The run's id (see `warden runs`).
    pub run_id: i64,
    /// Keep printing lines as the run writes them, until it ends (reconnects by itself).
    #[arg(long, short = 'f')]
    pub follow: bool,
}

fn parse_duration_arg(text: &str) -> Result<Duration, String> {
    warden_core::duration::parse_duration(text).map_err(|error| error.to_string())
}

#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Config file (TOML). `up` runs without one.
    #[arg(long, short = 'c', env = "WARDEN_CONFIG")]
    pub config: Option<PathBuf>,
    /// Data folder for the embedded database [default: ./warden-data, or [hub].data].
    #[arg(long)]
    pub data: Option<PathBuf>,
    /// Address to serve on [default: 127.0.0.1:7878, or [hub].listen].
    #[arg(long)]
    pub listen: Option<SocketAddr>,
}

#[derive(Debug, Subcommand)]
pub enum ConfigCommand {
    /// Validate a config file: exit 0 when valid, 2 with every error (FILE:LINE:COL) otherwise.
    Check {
        /// The config file.
        file: PathBuf,
    },
}
