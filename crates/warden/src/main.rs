//! The `warden` binary: command-line parsing and wiring only.
//!
//! Exit codes: 0 success; 1 runtime failure (store, port, I/O, hub unreachable or refusing);
//! 2 invalid config or usage; `run --wait` exits with the Nagios code of the result.

mod cli;
mod commands;

use std::io::Write as _;
use std::path::Path;
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
    /// Already reported (or nothing to say): exit with this code.
    Exit(u8),
}

impl Failure {
    /// Prints the failure on stderr; returns its exit code.
    fn report(self) -> u8 {
        match self {
            Failure::Config(message) => {
                eprintln!("{message}");
                2
            }
            Failure::Runtime(error) => {
                eprintln!("error: {error:#}");
                1
            }
            Failure::Exit(code) => code,
        }
    }
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
        Command::Up(args) => serve(args, Mode::Up),
        Command::Hub(args) => serve(args, Mode::Hub),
        Command::Config {
            command: ConfigCommand::Check { file },
        } => config_check(&file),
        Command::Checks(args) => commands::checks(&cli.hub, &args),
        Command::Runs(args) => commands::runs(&cli.hub, &args),
        Command::Run(args) => commands::run(&cli.hub, &args),
        Command::Logs(args) => commands::logs(&cli.hub, &args),
        Command::Status => commands::status(&cli.hub),
        Command::Cancel(args) => commands::cancel(&cli.hub, &args),
        Command::Series(args) => commands::series(&cli.hub, &args),
        Command::Uptime(args) => commands::uptime(&cli.hub, &args),
        Command::Tokens { command } => commands::tokens(&cli.hub, &command),
        Command::Users { command } => commands::users(&cli.hub, &command),
        Command::Incidents(args) => commands::incidents(&cli.hub, &args),
        Command::Ack(args) => commands::ack(&cli.hub, &args),
        Command::Silence(args) => commands::silence(&cli.hub, &args),
        Command::Notify { command } => commands::notify(&cli.hub, &command),
    };
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(failure) => ExitCode::from(failure.report()),
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

/// `up` watches this host when given no config; `hub` needs a config file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    Up,
    Hub,
}

fn serve(args: ServeArgs, mode: Mode) -> Result<(), Failure> {
    let mut config = match (&args.config, mode) {
        (Some(file), _) => load_config(file)?,
        (None, Mode::Up) => Config {
            checks: warden_hub::defaults::host_checks(
                std::thread::available_parallelism()
                    .map(|n| n.get())
                    .unwrap_or(1),
            ),
            ..Config::default()
        },
        (None, Mode::Hub) => {
            return Err(Failure::Config(
                "warden hub needs a config file: --config FILE (or WARDEN_CONFIG); `warden up` runs without one".to_string(),
            ));
        }
    };
    if let Some(data) = args.data {
        config.hub.data = data;
    }
    if let Some(listen) = args.listen {
        config.hub.listen = listen;
    }
    limit_malloc_arenas();
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
        let trimmer = tokio::spawn(return_freed_memory());
        let served = hub.serve(shutdown).await;
        trimmer.abort();
        signal_task.abort();
        served.map_err(|error| Failure::Runtime(error.into()))
    })
}

/// How often freed heap memory is handed back to the system.
const TRIM_EVERY: std::time::Duration = std::time::Duration::from_secs(5);

/// glibc keeps memory freed in the middle of its heap (after the start-up burst: every check's
/// first run at once) until the pages happen to empty from the top, so a hub's resident size
/// stayed at its start-up peak: about 12 MB more than it used at 10,000 http checks
/// (docs/benchmarks.md, scenario E). `malloc_trim` releases the free pages wherever they are;
/// every 5 s it costs well under a millisecond of CPU, and what piles up in between (the
/// resident size rises by megabytes between trims under load) stays small.
async fn return_freed_memory() {
    loop {
        tokio::time::sleep(TRIM_EVERY).await;
        #[cfg(all(target_os = "linux", target_env = "gnu"))]
        {
            // SAFETY: malloc_trim only walks glibc's own arenas under their locks and returns
            // free pages to the kernel; it takes no pointer of ours.
            #[allow(unsafe_code)]
            let _ = tokio::task::spawn_blocking(|| unsafe { libc::malloc_trim(0) }).await;
        }
    }
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

/// glibc gives each thread that allocates its own malloc arena (up to 8 per core), and each
/// keeps freed memory for reuse: across the runtime's workers, the store's threads and the
/// blocking pool that held about a fifth of the hub's resident memory at 10,000 checks for no
/// measurable speed (docs/benchmarks.md, scenario E). Two arenas, before any thread starts,
/// unless `MALLOC_ARENA_MAX` says otherwise.
fn limit_malloc_arenas() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    if std::env::var_os("MALLOC_ARENA_MAX").is_none() {
        // SAFETY: mallopt only sets an allocator parameter; called before the runtime starts
        // its threads. A refusal (return 0) leaves glibc's default, which is harmless.
        #[allow(unsafe_code)]
        unsafe {
            libc::mallopt(libc::M_ARENA_MAX, 2);
        }
    }
}
