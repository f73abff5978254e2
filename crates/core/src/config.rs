//! warden.toml: parsing, `${ENV}` interpolation and validation that reports every error at once
//! as `FILE:LINE:COL: key.path: message`.

mod alerting;
mod walk;

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};

pub use alerting::*;
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
    pub rules: Vec<RuleConfig>,
    pub notifiers: Vec<NotifierConfig>,
    pub maintenance: Vec<MaintenanceConfig>,
    /// Names of the checks with `badge = true`: their status badges are served without a token.
    /// Kept beside the checks, not in them, so turning a badge on or off does not change a
    /// check's definition (nor its stored hash).
    pub badges: BTreeSet<String>,
    /// `[status_page]`: a public page with some checks' status, when present.
    pub status_page: Option<StatusPageConfig>,
}

/// `[status_page]`: what the public status page (`/status`) shows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatusPageConfig {
    pub title: String,
    /// Configured checks' names, in the order given.
    pub checks: Vec<String>,
}

/// The status page's title when the config gives none.
pub const DEFAULT_STATUS_PAGE_TITLE: &str = "Status";

#[derive(Debug, Clone, PartialEq)]
pub struct HubConfig {
    pub listen: SocketAddr,
    pub data: PathBuf,
    /// The hub's address as users reach it (for ping URLs and links); `http://<listen>` when
    /// absent.
    pub public_url: Option<String>,
    /// Serve `/metrics` without a token (default: a viewer token is needed).
    pub metrics_public: bool,
}

impl Default for HubConfig {
    fn default() -> Self {
        HubConfig {
            listen: SocketAddr::from(([127, 0, 0, 1], 7878)),
            data: PathBuf::from(DEFAULT_DATA),
            public_url: None,
            metrics_public: false,
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
    /// Links shown on the check's page (its CI job, its logs, a runbook).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub links: Vec<Link>,
    pub kind: CheckKind,
}

/// A named link on a check's page.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Link {
    pub name: String,
    pub url: String,
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
    /// An HTTP(S) request judged by conditions.
    Http(HttpCheck),
    /// A TCP connection, optionally sending and expecting data.
    Tcp(TcpCheck),
    /// A DNS query.
    Dns(DnsCheck),
    /// ICMP echo.
    Icmp(IcmpCheck),
    /// A TLS handshake: chain, hostname, expiry, protocol.
    Tls(TlsCheck),
    /// This machine's CPU, memory, disks, load, network, temperatures.
    Host(HostCheck),
    /// Pushed by the watched job (dead-man's switch); never scheduled.
    Heartbeat(HeartbeatCheck),
}

impl CheckKind {
    /// Every kind's [`name`](CheckKind::name).
    pub const NAMES: &'static [&'static str] = &[
        "exec",
        "http",
        "tcp",
        "dns",
        "icmp",
        "tls",
        "host",
        "heartbeat",
        "noop",
    ];

    /// The kind named `text` as its static name, if there is one.
    pub fn static_name(text: &str) -> Option<&'static str> {
        CheckKind::NAMES.iter().copied().find(|name| *name == text)
    }

    pub fn name(&self) -> &'static str {
        match self {
            CheckKind::Exec(_) => "exec",
            CheckKind::Noop => "noop",
            CheckKind::Http(_) => "http",
            CheckKind::Tcp(_) => "tcp",
            CheckKind::Dns(_) => "dns",
            CheckKind::Icmp(_) => "icmp",
            CheckKind::Tls(_) => "tls",
            CheckKind::Host(_) => "host",
            CheckKind::Heartbeat(_) => "heartbeat",
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

/// HTTP method, URL, headers, body, auth, redirects, TLS options and conditions.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HttpCheck {
    pub url: String,
    /// Upper-case method, `GET` by default.
    pub method: String,
    pub headers: BTreeMap<String, String>,
    pub body: Option<String>,
    pub auth: Option<HttpAuth>,
    /// Follow 3xx redirects (up to 10); on by default.
    pub follow_redirects: bool,
    /// Verify the server's certificate chain and name; on by default.
    pub verify_tls: bool,
    /// A client certificate (PEM chain and PEM private key) for mutual TLS.
    pub client_cert: Option<ClientCert>,
    pub http_version: HttpVersion,
    /// Gatus-style conditions; `["[STATUS] < 400"]` when the config gives none.
    pub conditions: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum HttpAuth {
    Basic { username: String, password: String },
    Bearer { token: String },
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ClientCert {
    pub cert: PathBuf,
    pub key: PathBuf,
}

/// Which HTTP version to speak.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum HttpVersion {
    /// HTTP/2 when the server offers it over TLS (ALPN), HTTP/1.1 otherwise.
    #[default]
    Auto,
    /// HTTP/1.1 only.
    Http1,
    /// HTTP/2 only (over TLS by ALPN, over cleartext by prior knowledge).
    Http2,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TcpCheck {
    pub host: String,
    pub port: u16,
    /// Sent once connected.
    pub send: Option<String>,
    /// Must appear in what the server sends back (read until seen, closed or timed out).
    pub expect: Option<String>,
    /// `["[CONNECTED] == true"]` when the config gives none.
    pub conditions: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DnsCheck {
    /// The name asked for.
    pub query: String,
    /// Record type: A, AAAA, CNAME, MX, NS, TXT, SOA, PTR, SRV, CAA.
    pub record: String,
    /// `IP` or `IP:PORT` of the server to ask; the system's resolver when absent.
    pub server: Option<String>,
    /// Answers that must all be present (rdata as text, e.g. `93.184.215.14`).
    pub expect: Vec<String>,
    /// `["[DNS_RCODE] == NOERROR"]` when the config gives none.
    pub conditions: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct IcmpCheck {
    pub host: String,
    /// Echo requests sent (default 3).
    pub count: u32,
    #[serde(with = "millis")]
    pub interval: Duration,
    /// Loss percent at which the check warns / fails (defaults 20 and 100).
    pub warn_loss: f64,
    pub crit_loss: f64,
    pub conditions: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TlsCheck {
    pub host: String,
    pub port: u16,
    /// The name to verify the certificate against (SNI); `host` when absent.
    pub server_name: Option<String>,
    /// Days left at which the check warns / fails (defaults 14 and 7).
    pub warn_days: f64,
    pub crit_days: f64,
    pub conditions: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HostCheck {
    /// Percent used of a mount at which the check warns / fails (defaults 85 and 95).
    pub disk_warn: f64,
    pub disk_crit: f64,
    /// Percent of memory used (excluding cache) at which the check warns / fails (90, 97).
    pub memory_warn: f64,
    pub memory_crit: f64,
}

impl Default for HostCheck {
    fn default() -> Self {
        HostCheck {
            disk_warn: 85.0,
            disk_crit: 95.0,
            memory_warn: 90.0,
            memory_crit: 97.0,
        }
    }
}

/// A heartbeat's expected rhythm lives in the check's `schedule` (`period` maps to
/// [`Schedule::Every`]); this holds the grace after a missed ping before it is down.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HeartbeatCheck {
    #[serde(with = "millis")]
    pub grace: Duration,
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

#[cfg(test)]
mod tests;
