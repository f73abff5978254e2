//! Command-line definitions (clap).

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

/// warden runs, watches and alerts: checks, pipelines and streams on one hub with agents.
#[derive(Debug, Parser)]
#[command(name = "warden", version, about, long_about = None)]
#[command(
    after_help = "Exit codes: 0 success, 1 runtime failure (store, port, I/O), 2 invalid config or usage."
)]
pub struct Cli {
    /// Log output format (logs go to stderr).
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Human)]
    pub log_format: LogFormat,
    /// Log filter, e.g. `info`, `debug`, `warden_hub=debug`; WARDEN_LOG overrides it.
    #[arg(long, global = true, default_value = "info")]
    pub log_level: String,
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
