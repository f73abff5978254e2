//! What to run: [`ProcessSpec`], its defaults and its validation.

use std::path::PathBuf;
use std::time::Duration;

/// The `PATH` a [`ProcessSpec::clean_env`] run starts from (before [`ProcessSpec::env`]).
pub const CLEAN_PATH: &str = "/usr/local/bin:/usr/bin:/bin";

/// Default [`ProcessSpec::output_cap`]: 64 KiB of combined stdout and stderr.
pub const DEFAULT_OUTPUT_CAP: usize = 64 * 1024;

/// A command to run as a check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProcessSpec {
    /// argv; `argv[0]` is looked up in `PATH` (the child's `PATH` if `env`/`clean_env` set one).
    /// Empty is an error.
    pub command: Vec<String>,
    /// Variables added to (or replacing ones in) the environment.
    pub env: Vec<(String, String)>,
    /// If true, the child starts from an empty environment except `PATH=`[`CLEAN_PATH`], plus
    /// `env`.
    pub clean_env: bool,
    /// Working directory of the child; `None` inherits ours. Must exist and be a directory.
    pub cwd: Option<PathBuf>,
    /// How long the child may run before its group is killed ([`crate::Outcome::TimedOut`]).
    pub timeout: Duration,
    /// After the timeout (or cancellation) the group gets SIGTERM, then SIGKILL after this grace.
    pub kill_grace: Duration,
    /// Most bytes of combined stdout and stderr kept in the result. Output beyond it is counted
    /// in [`crate::ProcessResult::truncated_bytes`] and a marker line
    /// `[output truncated: N bytes dropped]` is appended once, at the end of stdout.
    pub output_cap: usize,
    /// After the main child exits, how long to keep reading its pipes for output still in
    /// flight before killing the rest of the group. Bounded so that a grandchild holding the
    /// pipes open cannot hang the run. Default 250 ms.
    pub drain_timeout: Duration,
}

impl Default for ProcessSpec {
    fn default() -> Self {
        Self {
            command: Vec::new(),
            env: Vec::new(),
            clean_env: false,
            cwd: None,
            timeout: Duration::from_secs(60),
            kill_grace: Duration::from_secs(5),
            output_cap: DEFAULT_OUTPUT_CAP,
            drain_timeout: Duration::from_millis(250),
        }
    }
}

/// Why a [`ProcessSpec`] cannot be run.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SpecError {
    /// `command` is empty (or its program name is).
    #[error("empty command")]
    EmptyCommand,
    /// `cwd` does not exist or cannot be looked at.
    #[error("working directory `{path}` does not exist: {reason}")]
    CwdMissing {
        /// The configured directory.
        path: PathBuf,
        /// The OS error.
        reason: String,
    },
    /// `cwd` exists but is not a directory.
    #[error("working directory `{0}` is not a directory")]
    CwdNotDirectory(PathBuf),
}

impl ProcessSpec {
    /// A spec running `command` with the defaults: inherited environment, 60 s timeout, 5 s
    /// kill grace, 64 KiB output cap.
    pub fn new<I, S>(command: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        Self {
            command: command.into_iter().map(Into::into).collect(),
            ..Self::default()
        }
    }

    /// Checks what can be checked before spawning: a non-empty command and an existing `cwd`.
    ///
    /// Looks at the file system with one `stat`, which is quick enough to do from async code
    /// (spawning itself is a blocking fork/exec too).
    pub fn validate(&self) -> Result<(), SpecError> {
        match self.command.first() {
            Some(program) if !program.is_empty() => {}
            _ => return Err(SpecError::EmptyCommand),
        }
        if let Some(cwd) = &self.cwd {
            match std::fs::metadata(cwd) {
                Ok(meta) if meta.is_dir() => {}
                Ok(_) => return Err(SpecError::CwdNotDirectory(cwd.clone())),
                Err(err) => {
                    return Err(SpecError::CwdMissing {
                        path: cwd.clone(),
                        reason: os_error_text(&err),
                    });
                }
            }
        }
        Ok(())
    }

    /// The program name (`argv[0]`), or `""` for an empty command.
    pub fn program(&self) -> &str {
        self.command.first().map_or("", String::as_str)
    }
}

/// An I/O error's text without std's ` (os error N)` suffix: "No such file or directory".
pub(crate) fn os_error_text(err: &std::io::Error) -> String {
    let text = err.to_string();
    match text.rfind(" (os error ") {
        Some(at) if text.ends_with(')') => text[..at].to_owned(),
        _ => text,
    }
}
