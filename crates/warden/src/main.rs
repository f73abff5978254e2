//! The `warden` binary: command-line parsing and wiring only.
//!
//! Exit codes: 0 success; 1 runtime failure (store, port, I/O); 2 invalid config or usage.

mod cli;

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context as _;
use clap::Parser as _;
use warden_core::config::{Config, ConfigErrors, parse_config};
use warden_hub::CancellationToken;
use warden_hub::{Hub, HubOptions};

use crate::cli::{Cli, Command, ConfigCommand, LogFormat, ServeArgs};

/// Errors the binary maps to exit codes.
enum Failure {
    /// Bad config or usage: exit 2.
    Config(String),
    /// Anything else: exit 1.
    Runtime(anyhow::Error),
}

impl From<anyhow::Error> for Failure {
    fn from(error: anyhow::Error) -> Failure {
        Failure::Runtime(error)
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging(cli.log_format, &cli.log_level);
    let outcome = match cli.command {
        Command::Up(args) => serve(args, None),
        Command::Hub(args) => {
            let config = args.config.clone();
            serve(args, config)
        }
        Command::Config {
            command: ConfigCommand::Check { file },
        } => config_check(&file),
    };
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(Failure::Config(message)) => {
            eprintln!("{message}");
            ExitCode::from(2)
        }
        Err(Failure::Runtime(error)) => {
            eprintln!("error: {error:#}");
            ExitCode::from(1)
        }
    }
}

fn init_logging(format: LogFormat, level: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("WARDEN_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(level));
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(ansi)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Human => builder.init(),
        LogFormat::Json => builder.json().flatten_event(true).init(),
    }
}

/// Reads and validates a config file; errors come back as `FILE:LINE:COL: ...` lines.
fn load_config(file: &Path) -> Result<Config, Failure> {
    let text = std::fs::read_to_string(file).map_err(|error| {
        Failure::Config(format!("{}: cannot read config: {error}", file.display()))
    })?;
    let env = |name: &str| std::env::var(name).ok();
    parse_config(&file.display().to_string(), &text, &env).map_err(|errors: ConfigErrors| {
        let count = errors.0.len();
        Failure::Config(format!(
            "{errors}\n{count} error{} in {}",
            if count == 1 { "" } else { "s" },
            file.display()
        ))
    })
}

fn config_check(file: &Path) -> Result<(), Failure> {
    let config = load_config(file)?;
    println!(
        "{}: ok ({} check{})",
        file.display(),
        config.checks.len(),
        if config.checks.len() == 1 { "" } else { "s" }
    );
    Ok(())
}

fn serve(args: ServeArgs, config_file: Option<PathBuf>) -> Result<(), Failure> {
    let mut config = match &config_file {
        Some(file) => load_config(file)?,
        None => Config::default(),
    };
    if let Some(data) = args.data {
        config.hub.data = data;
    }
    if let Some(listen) = args.listen {
        config.hub.listen = listen;
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("warden")
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(async move {
        let mut hub = Hub::start(HubOptions::new(config))
            .await
            .map_err(anyhow::Error::from)?;
        let addr = hub.local_addr().map_err(anyhow::Error::from)?;
        let mut out = std::io::stdout().lock();
        if let Some(token) = hub.take_new_admin_token() {
            let _ = writeln!(out, "admin token (shown once, keep it safe): {token}");
        }
        let _ = writeln!(out, "warden hub listening on http://{addr}");
        let _ = out.flush();
        drop(out);
        let shutdown = CancellationToken::new();
        let signals = shutdown.clone();
        let signal_task = tokio::spawn(async move {
            wait_for_signal().await;
            tracing::info!("shutdown signal received; draining");
            signals.cancel();
        });
        let served = hub.serve(shutdown).await;
        signal_task.abort();
        served.map_err(|error| Failure::Runtime(error.into()))
    })
}

async fn wait_for_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let terminate = async {
        match signal(SignalKind::terminate()) {
            Ok(mut stream) => {
                stream.recv().await;
            }
            Err(error) => {
                tracing::warn!(%error, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        () = terminate => {}
    }
}
