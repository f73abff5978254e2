//! Alerting config as plain types: `[[rule]]` (on a check's status or on a series),
//! `[[notifier]]` (where incidents go) and `[[maintenance]]` (recurring windows that hold
//! notifications). Parsed and validated in `walk/alerting.rs`.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use crate::alerting::{SeriesExpr, glob_match};

/// The name of the rule every check without a status rule gets.
pub const DEFAULT_RULE: &str = "default";
/// The default rule's (and a status rule's default) consecutive failures before it fires.
pub const DEFAULT_FAILURE_THRESHOLD: u32 = 2;
/// A notifier's default delivery attempts before a notification is recorded as failed.
pub const DEFAULT_MAX_ATTEMPTS: u32 = 5;
/// A notifier's default delay before the first retry (doubled on each later one).
pub const DEFAULT_BACKOFF: Duration = Duration::from_secs(2);
/// A notifier's default time allowed for one delivery attempt.
pub const DEFAULT_NOTIFY_TIMEOUT: Duration = Duration::from_secs(10);

/// One `[[rule]]`.
#[derive(Debug, Clone, PartialEq)]
pub struct RuleConfig {
    pub name: String,
    pub condition: RuleCondition,
    pub severity: Severity,
    /// Added to the incident's labels (which also hold the check's labels, `rule`, `check`
    /// and `severity`); notifiers with `match` route on them.
    pub labels: BTreeMap<String, String>,
    /// A message template (`{{check}}`, `{{status}}`, `{{summary}}`, `{{value}}`, `{{since}}`,
    /// `{{url}}`, `{{rule}}`, `{{severity}}`); a built-in one when absent.
    pub message: Option<String>,
    pub send_on_resolved: bool,
    /// Notify again this often while the incident is open and not acknowledged.
    pub repeat: Option<Duration>,
    /// Notifiers by name. Empty: notifiers whose `match` fits the incident, else the
    /// `default = true` ones.
    pub notify: Vec<String>,
}

impl RuleConfig {
    /// The rule a check with no status rule gets: 2 failures open, 1 success resolves,
    /// notify the `default = true` notifiers.
    pub fn default_rule() -> RuleConfig {
        RuleConfig {
            name: DEFAULT_RULE.to_string(),
            condition: RuleCondition::Status(StatusRule {
                checks: CheckSelector::default(),
                trigger: Trigger::Consecutive(DEFAULT_FAILURE_THRESHOLD),
                success_threshold: 1,
                on_warn: false,
            }),
            severity: Severity::Critical,
            labels: BTreeMap::new(),
            message: None,
            send_on_resolved: true,
            repeat: None,
            notify: Vec::new(),
        }
    }
}

/// What a rule watches.
#[derive(Debug, Clone, PartialEq)]
pub enum RuleCondition {
    /// A check's status over its runs.
    Status(StatusRule),
    /// A metric series' value (`expr = "host.cpu.total > 90"`).
    Series(SeriesRule),
}

#[derive(Debug, Clone, PartialEq)]
pub struct StatusRule {
    pub checks: CheckSelector,
    pub trigger: Trigger,
    /// Consecutive successes that resolve the incident.
    pub success_threshold: u32,
    /// Whether `warn` counts as a failure (`on = "warn"`, or `on = "late"` for heartbeats,
    /// whose late state is `warn`). `crit` and `unknown` always do.
    pub on_warn: bool,
}

/// When a status rule fires.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Trigger {
    /// `failure_threshold = N`: N failures in a row.
    Consecutive(u32),
    /// `window = "N of M"`: N failures among the last M runs (flap damping).
    Window { failures: u32, runs: u32 },
}

#[derive(Debug, Clone, PartialEq)]
pub struct SeriesRule {
    pub expr: SeriesExpr,
    /// The condition must hold this long before the rule fires.
    pub for_duration: Duration,
    pub aggregate: Aggregate,
    /// The window the aggregate is taken over (zero with `last`).
    pub over: Duration,
    /// Only samples from these checks (all checks when empty).
    pub checks: CheckSelector,
}

/// How a series rule folds the recent values.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Aggregate {
    Last,
    Avg,
    Max,
    Min,
}

impl Aggregate {
    pub fn as_str(self) -> &'static str {
        match self {
            Aggregate::Last => "last",
            Aggregate::Avg => "avg",
            Aggregate::Max => "max",
            Aggregate::Min => "min",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Severity {
    Critical,
    Warning,
    Info,
}

impl Severity {
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Critical => "critical",
            Severity::Warning => "warning",
            Severity::Info => "info",
        }
    }

    pub fn parse(text: &str) -> Option<Severity> {
        match text {
            "critical" => Some(Severity::Critical),
            "warning" => Some(Severity::Warning),
            "info" => Some(Severity::Info),
            _ => None,
        }
    }
}

/// Which checks a rule or window applies to: any name glob matches (all names when none),
/// and every label matches (when any).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct CheckSelector {
    pub names: Vec<String>,
    pub labels: BTreeMap<String, String>,
}

impl CheckSelector {
    pub fn matches(&self, name: &str, labels: &BTreeMap<String, String>) -> bool {
        let name_ok = self.names.is_empty() || self.names.iter().any(|glob| glob_match(glob, name));
        let labels_ok = self
            .labels
            .iter()
            .all(|(key, value)| labels.get(key) == Some(value));
        name_ok && labels_ok
    }

    /// True when it selects every check.
    pub fn is_everything(&self) -> bool {
        self.labels.is_empty() && self.names.iter().all(|glob| glob == "*")
    }
}

/// One `[[notifier]]`.
#[derive(Debug, Clone, PartialEq)]
pub struct NotifierConfig {
    pub name: String,
    pub kind: NotifierKind,
    /// Gets the incidents of rules that name no notifier and match none (and the default rule's).
    pub default: bool,
    /// Gets every incident whose labels include all of these.
    pub match_labels: BTreeMap<String, String>,
    pub rate_limit: Option<RateLimit>,
    pub max_attempts: u32,
    pub backoff: Duration,
    pub timeout: Duration,
}

/// At most `count` notifications per `per`; more wait for their turn (never dropped).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimit {
    pub count: u32,
    pub per: Duration,
}

#[derive(Debug, Clone, PartialEq)]
pub enum NotifierKind {
    /// JSON POST, optionally templated, with custom headers and an HMAC signature.
    Webhook {
        url: String,
        headers: BTreeMap<String, String>,
        /// Signs the body: `X-Warden-Signature: sha256=<hex HMAC-SHA256>`.
        secret: Option<String>,
        /// A JSON template; placeholders are replaced by JSON-escaped text.
        body: Option<String>,
    },
    Slack {
        url: String,
    },
    Discord {
        url: String,
    },
    Teams {
        url: String,
    },
    Ntfy {
        /// The server (`https://ntfy.sh` by default).
        url: String,
        topic: String,
        token: Option<String>,
    },
    Gotify {
        url: String,
        token: String,
    },
    Telegram {
        /// The Bot API base (`https://api.telegram.org` by default).
        url: String,
        bot_token: String,
        chat_id: String,
    },
    PagerDuty {
        /// Events v2 endpoint (`https://events.pagerduty.com/v2/enqueue` by default).
        url: String,
        routing_key: String,
    },
    Alertmanager {
        /// The Alertmanager's base URL; alerts go to `<url>/api/v2/alerts`.
        url: String,
    },
    Email(EmailNotifier),
}

impl NotifierKind {
    pub fn name(&self) -> &'static str {
        match self {
            NotifierKind::Webhook { .. } => "webhook",
            NotifierKind::Slack { .. } => "slack",
            NotifierKind::Discord { .. } => "discord",
            NotifierKind::Teams { .. } => "teams",
            NotifierKind::Ntfy { .. } => "ntfy",
            NotifierKind::Gotify { .. } => "gotify",
            NotifierKind::Telegram { .. } => "telegram",
            NotifierKind::PagerDuty { .. } => "pagerduty",
            NotifierKind::Alertmanager { .. } => "alertmanager",
            NotifierKind::Email(_) => "email",
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct EmailNotifier {
    pub host: String,
    pub port: u16,
    pub tls: SmtpTls,
    pub username: Option<String>,
    pub password: Option<String>,
    pub from: String,
    pub to: Vec<String>,
    /// Extra PEM root certificates to trust (a private CA).
    pub ca_file: Option<PathBuf>,
}

/// How an SMTP connection is secured.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SmtpTls {
    /// Plain connection upgraded with STARTTLS, which is required (port 587).
    Starttls,
    /// TLS from the first byte (port 465).
    Tls,
    /// No TLS (a local relay).
    None,
}

impl SmtpTls {
    pub fn as_str(self) -> &'static str {
        match self {
            SmtpTls::Starttls => "starttls",
            SmtpTls::Tls => "tls",
            SmtpTls::None => "none",
        }
    }
}

/// One `[[maintenance]]`: every `cron` fire opens a window of `duration` during which the
/// selected checks still run and record, but their notifications are held.
#[derive(Debug, Clone, PartialEq)]
pub struct MaintenanceConfig {
    pub name: String,
    pub checks: CheckSelector,
    pub cron: String,
    pub timezone: Option<String>,
    pub duration: Duration,
}
