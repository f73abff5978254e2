//! warden.toml: parsing, `${ENV}` interpolation and validation that reports every error at once
//! as `FILE:LINE:COL: key.path: message`.

mod walk;

use std::collections::BTreeMap;
use std::fmt;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};

pub use walk::parse_config;

/// Where the hub listens by default.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:7878";
/// Where the hub keeps its data by default, relative to the working directory.
pub const DEFAULT_DATA: &str = "./warden-data";
/// A check's default timeout.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);

/// A validated configuration.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Config {
    pub hub: HubConfig,
    pub checks: Vec<CheckConfig>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct HubConfig {
    pub listen: SocketAddr,
    pub data: PathBuf,
}

impl Default for HubConfig {
    fn default() -> Self {
        HubConfig {
            listen: SocketAddr::from(([127, 0, 0, 1], 7878)),
            data: PathBuf::from(DEFAULT_DATA),
        }
    }
}

/// One `[[check]]`. Serialises to the canonical form the store hashes to notice changes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CheckConfig {
    pub name: String,
    pub schedule: Schedule,
    #[serde(with = "millis")]
    pub timeout: Duration,
    pub overlap: Overlap,
    pub labels: BTreeMap<String, String>,
    pub kind: CheckKind,
}

impl CheckConfig {
    pub fn kind_name(&self) -> &'static str {
        self.kind.name()
    }
}

/// When a check runs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Schedule {
    /// Every interval, with a per-check splay.
    Every(#[serde(with = "millis")] Duration),
    /// A five-field cron expression, evaluated in `timezone` (the system's zone when absent).
    Cron {
        expr: String,
        timezone: Option<String>,
    },
}

/// What to do when a check is due while its previous run is still going.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum Overlap {
    /// Drop the new slot (default).
    #[default]
    Skip,
    /// Enqueue it; it runs after the current one.
    Queue,
    /// Run both at once.
    Allow,
}

impl Overlap {
    pub fn as_str(self) -> &'static str {
        match self {
            Overlap::Skip => "skip",
            Overlap::Queue => "queue",
            Overlap::Allow => "allow",
        }
    }
}

/// Kind-specific settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum CheckKind {
    /// A command following the Nagios plugin conventions.
    Exec(ExecCheck),
    /// A builtin that does nothing and succeeds; for benchmarks and smoke tests.
    Noop,
}

impl CheckKind {
    pub fn name(&self) -> &'static str {
        match self {
            CheckKind::Exec(_) => "exec",
            CheckKind::Noop => "noop",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ExecCheck {
    pub command: Vec<String>,
    pub env: BTreeMap<String, String>,
    pub cwd: Option<PathBuf>,
    pub clean_env: bool,
}

/// One problem found in a config file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    pub file: String,
    /// 1-based line; 0 when the error has no position.
    pub line: usize,
    /// 1-based column in characters.
    pub col: usize,
    /// The key path, e.g. `check[3].every`; empty for document-level errors.
    pub path: String,
    pub message: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}:{}: ", self.file, self.line, self.col)?;
        if !self.path.is_empty() {
            write!(f, "{}: ", self.path)?;
        }
        f.write_str(&self.message)
    }
}

/// Every problem found in a config file, in file order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigErrors(pub Vec<ConfigError>);

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (index, error) in self.0.iter().enumerate() {
            if index > 0 {
                f.write_str("\n")?;
            }
            write!(f, "{error}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigErrors {}

mod millis {
    use serde::{Deserialize, Deserializer, Serializer};
    use std::time::Duration;

    pub fn serialize<S: Serializer>(duration: &Duration, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_u64(u64::try_from(duration.as_millis()).unwrap_or(u64::MAX))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Duration, D::Error> {
        u64::deserialize(deserializer).map(Duration::from_millis)
    }
}
