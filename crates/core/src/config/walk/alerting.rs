//! Walks `[[rule]]`, `[[notifier]]` and `[[maintenance]]` in the same style as checks: every
//! error at once, each with its position and key path.

use std::collections::BTreeMap;
use std::ops::Range;
use std::path::PathBuf;
use std::time::Duration;

use toml::de::{DeTable, DeValue};

use super::{Cx, Value, get, valid_name};
use crate::alerting::{SeriesExpr, parse_rate, parse_window, validate_template};
use crate::config::alerting::{
    Aggregate, CheckSelector, DEFAULT_BACKOFF, DEFAULT_FAILURE_THRESHOLD, DEFAULT_MAX_ATTEMPTS,
    DEFAULT_NOTIFY_TIMEOUT, EmailNotifier, MaintenanceConfig, NotifierConfig, NotifierKind,
    RateLimit, RuleCondition, RuleConfig, SeriesRule, Severity, SmtpTls, StatusRule, Trigger,
};
use crate::cron::CronSchedule;

const RULE_COMMON_KEYS: &[&str] = &[
    "name",
    "severity",
    "labels",
    "message",
    "send_on_resolved",
    "repeat",
    "notify",
    "checks",
    "match",
];
const RULE_STATUS_KEYS: &[&str] = &["failure_threshold", "window", "success_threshold", "on"];
const RULE_SERIES_KEYS: &[&str] = &["expr", "for", "aggregate", "over"];
const NOTIFIER_COMMON_KEYS: &[&str] = &[
    "name",
    "kind",
    "default",
    "match",
    "rate_limit",
    "max_attempts",
    "backoff",
    "timeout",
];
const NOTIFIER_KINDS: &[&str] = &[
    "webhook",
    "slack",
    "discord",
    "teams",
    "ntfy",
    "gotify",
    "telegram",
    "pagerduty",
    "alertmanager",
    "email",
];
const MAINTENANCE_KEYS: &[&str] = &["name", "checks", "match", "cron", "timezone", "duration"];

/// A rule's `notify` entry, checked against the notifiers once all are read.
pub(super) struct NotifyRef {
    pub(super) name: String,
    pub(super) span: Range<usize>,
    pub(super) path: String,
}

impl Cx<'_> {
    /// `[[rule]]`, `[[notifier]]` or `[[maintenance]]`: an array of tables, each read by
    /// `item`, names unique.
    pub(super) fn named_tables<T>(
        &mut self,
        root: &DeTable<'_>,
        key: &str,
        mut item: impl FnMut(&mut Self, &DeTable<'_>, Range<usize>, &str) -> Option<T>,
        name_of: impl Fn(&T) -> &str,
    ) -> Vec<T> {
        let mut out = Vec::new();
        let Some((_, value)) = get(root, key) else {
            return out;
        };
        let DeValue::Array(array) = value.get_ref() else {
            self.error(
                value.span(),
                key,
                format!(
                    "expected an array of tables `[[{key}]]`, found {}",
                    value.get_ref().type_str()
                ),
            );
            return out;
        };
        let mut names: BTreeMap<String, usize> = BTreeMap::new();
        for (index, entry) in array.iter().enumerate() {
            let path = format!("{key}[{index}]");
            let DeValue::Table(table) = entry.get_ref() else {
                self.error(
                    entry.span(),
                    &path,
                    format!(
                        "expected a table `[[{key}]]`, found {}",
                        entry.get_ref().type_str()
                    ),
                );
                continue;
            };
            let Some(parsed) = item(self, table, entry.span(), &path) else {
                continue;
            };
            let name = name_of(&parsed).to_string();
            if let Some(first) = names.get(&name) {
                let span = get(table, "name")
                    .map(|(_, v)| v.span())
                    .unwrap_or(entry.span());
                self.error(
                    span,
                    &format!("{path}.name"),
                    format!("duplicate {key} name `{name}` (first used by {key}[{first}])"),
                );
            } else {
                names.insert(name, index);
                out.push(parsed);
            }
        }
        out
    }

    fn item_name(
        &mut self,
        table: &DeTable<'_>,
        span: Range<usize>,
        path: &str,
        what: &str,
    ) -> Option<String> {
        match get(table, "name") {
            Some((_, value)) => self.string(value, &format!("{path}.name")).and_then(|name| {
                if valid_name(&name) {
                    Some(name)
                } else {
                    self.error(
                        value.span(),
                        &format!("{path}.name"),
                        format!("`{name}` is not a valid {what} name: use 1-100 letters, digits, `-`, `_`, `.` or `/`"),
                    );
                    None
                }
            }),
            None => {
                self.error(span, path, "missing key `name`".to_string());
                None
            }
        }
    }

    /// `checks = ["web-*"]` and `match = { team = "ops" }`.
    fn selector(&mut self, table: &DeTable<'_>, path: &str) -> Option<CheckSelector> {
        let names = match get(table, "checks") {
            Some((_, value)) => self.string_list(value, &format!("{path}.checks")),
            None => Some(Vec::new()),
        };
        let labels = match get(table, "match") {
            Some((_, value)) => self.string_map(value, &format!("{path}.match")),
            None => Some(BTreeMap::new()),
        };
        Some(CheckSelector {
            names: names?,
            labels: labels?,
        })
    }

    fn whole_number(
        &mut self,
        table: &DeTable<'_>,
        key: &str,
        path: &str,
        min: i64,
        max: i64,
        default: u32,
    ) -> Option<u32> {
        match get(table, key) {
            Some((_, value)) => self
                .integer_in(value, &format!("{path}.{key}"), min, max)
                .and_then(|n| u32::try_from(n).ok()),
            None => Some(default),
        }
    }

    fn optional_positive_duration(
        &mut self,
        table: &DeTable<'_>,
        key: &str,
        path: &str,
    ) -> Option<Option<Duration>> {
        match get(table, key) {
            Some((_, value)) => self
                .positive_duration(value, &format!("{path}.{key}"))
                .map(Some),
            None => Some(None),
        }
    }

    pub(super) fn rule(
        &mut self,
        table: &DeTable<'_>,
        span: Range<usize>,
        path: &str,
        refs: &mut Vec<NotifyRef>,
    ) -> Option<RuleConfig> {
        let errors_before = self.errors.len();
        let name = self.item_name(table, span.clone(), path, "rule");
        let is_series = get(table, "expr").is_some();
        let kind_keys = if is_series {
            RULE_SERIES_KEYS
        } else {
            RULE_STATUS_KEYS
        };
        let allowed: Vec<&str> = RULE_COMMON_KEYS.iter().chain(kind_keys).copied().collect();
        self.unknown_keys(table, path, &allowed);
        let checks = self.selector(table, path);
        let condition = if is_series {
            self.series_rule(table, path, checks)
        } else {
            self.status_rule(table, span, path, checks)
        };
        let severity = match get(table, "severity") {
            Some((_, value)) => self.string(value, &format!("{path}.severity")).and_then(|text| {
                let parsed = Severity::parse(&text);
                if parsed.is_none() {
                    self.error(
                        value.span(),
                        &format!("{path}.severity"),
                        format!("unknown severity `{text}`, expected one of: critical, warning, info"),
                    );
                }
                parsed
            }),
            None => Some(Severity::Critical),
        };
        let labels = match get(table, "labels") {
            Some((_, value)) => self.string_map(value, &format!("{path}.labels")),
            None => Some(BTreeMap::new()),
        };
        let message = match get(table, "message") {
            Some((_, value)) => self.template(value, &format!("{path}.message")).map(Some),
            None => Some(None),
        };
        let send_on_resolved = self.optional_bool(table, "send_on_resolved", path, true);
        let repeat = self.optional_positive_duration(table, "repeat", path);
        let notify = match get(table, "notify") {
            Some((_, value)) => {
                let list = self.string_list(value, &format!("{path}.notify"));
                if let (Some(list), DeValue::Array(items)) = (&list, value.get_ref()) {
                    for (index, (name, item)) in list.iter().zip(items.iter()).enumerate() {
                        refs.push(NotifyRef {
                            name: name.clone(),
                            span: item.span(),
                            path: format!("{path}.notify[{index}]"),
                        });
                    }
                }
                list
            }
            None => Some(Vec::new()),
        };
        if self.errors.len() != errors_before {
            return None;
        }
        Some(RuleConfig {
            name: name?,
            condition: condition?,
            severity: severity?,
            labels: labels?,
            message: message?,
            send_on_resolved: send_on_resolved?,
            repeat: repeat?,
            notify: notify?,
        })
    }

    fn status_rule(
        &mut self,
        table: &DeTable<'_>,
        span: Range<usize>,
        path: &str,
        checks: Option<CheckSelector>,
    ) -> Option<RuleCondition> {
        if get(table, "checks").is_none() && get(table, "match").is_none() {
            self.error(
                span,
                path,
                "a rule needs `checks = [\"web-*\"]` or `match = { label = \"value\" }` (a status rule), or `expr = \"SERIES > N\"` (a series rule)".to_string(),
            );
            return None;
        }
        let trigger = match (get(table, "failure_threshold"), get(table, "window")) {
            (Some(_), Some((_, window))) => {
                self.error(
                    window.span(),
                    &format!("{path}.window"),
                    "`failure_threshold` and `window` are exclusive: give one".to_string(),
                );
                None
            }
            (Some((_, value)), None) => self
                .integer_in(value, &format!("{path}.failure_threshold"), 1, 100)
                .and_then(|n| u32::try_from(n).ok())
                .map(Trigger::Consecutive),
            (None, Some((_, value))) => {
                self.string(value, &format!("{path}.window"))
                    .and_then(|text| match parse_window(&text) {
                        Ok((failures, runs)) => Some(Trigger::Window { failures, runs }),
                        Err(message) => {
                            self.error(value.span(), &format!("{path}.window"), message);
                            None
                        }
                    })
            }
            (None, None) => Some(Trigger::Consecutive(DEFAULT_FAILURE_THRESHOLD)),
        };
        let success_threshold = self.whole_number(table, "success_threshold", path, 1, 100, 1);
        let on_warn = match get(table, "on") {
            Some((_, value)) => self.string(value, &format!("{path}.on")).and_then(|text| {
                match text.as_str() {
                    "crit" => Some(false),
                    "warn" | "late" => Some(true),
                    other => {
                        self.error(
                            value.span(),
                            &format!("{path}.on"),
                            format!("unknown `on` value `{other}`, expected one of: crit (crit and unknown fail), warn (warn too), late (a heartbeat's late, which is warn)"),
                        );
                        None
                    }
                }
            }),
            None => Some(false),
        };
        Some(RuleCondition::Status(StatusRule {
            checks: checks?,
            trigger: trigger?,
            success_threshold: success_threshold?,
            on_warn: on_warn?,
        }))
    }

    fn series_rule(
        &mut self,
        table: &DeTable<'_>,
        path: &str,
        checks: Option<CheckSelector>,
    ) -> Option<RuleCondition> {
        let expr = get(table, "expr").and_then(|(_, value)| {
            let text = self.string(value, &format!("{path}.expr"))?;
            match SeriesExpr::parse(&text) {
                Ok(expr) => Some(expr),
                Err(message) => {
                    self.error(value.span(), &format!("{path}.expr"), message);
                    None
                }
            }
        });
        let for_duration = match get(table, "for") {
            Some((_, value)) => self.duration_or_zero(value, &format!("{path}.for")),
            None => Some(Duration::ZERO),
        };
        let aggregate = match get(table, "aggregate") {
            Some((_, value)) => self
                .string(value, &format!("{path}.aggregate"))
                .and_then(|text| match text.as_str() {
                    "last" => Some(Aggregate::Last),
                    "avg" => Some(Aggregate::Avg),
                    "max" => Some(Aggregate::Max),
                    "min" => Some(Aggregate::Min),
                    other => {
                        self.error(
                            value.span(),
                            &format!("{path}.aggregate"),
                            format!(
                                "unknown aggregate `{other}`, expected one of: last, avg, max, min"
                            ),
                        );
                        None
                    }
                }),
            None => Some(Aggregate::Last),
        };
        let over = self.optional_positive_duration(table, "over", path);
        let (aggregate, over) = (aggregate?, over?);
        let over = match (aggregate, over) {
            (Aggregate::Last, Some(_)) => {
                let span = get(table, "over").map(|(_, v)| v.span()).unwrap_or(0..0);
                self.error(
                    span,
                    &format!("{path}.over"),
                    "`over` needs `aggregate = \"avg\"`, `\"max\"` or `\"min\"`".to_string(),
                );
                return None;
            }
            (Aggregate::Last, None) => Duration::ZERO,
            (_, Some(over)) => over,
            (_, None) => {
                let span = get(table, "aggregate")
                    .map(|(_, v)| v.span())
                    .unwrap_or(0..0);
                self.error(
                    span,
                    &format!("{path}.aggregate"),
                    "an aggregate needs the window it is taken over: `over = \"5m\"`".to_string(),
                );
                return None;
            }
        };
        Some(RuleCondition::Series(SeriesRule {
            expr: expr?,
            for_duration: for_duration?,
            aggregate,
            over,
            checks: checks?,
        }))
    }

    /// A duration where `0s` is allowed (`for = "0s"`).
    fn duration_or_zero(&mut self, value: &Value<'_>, path: &str) -> Option<Duration> {
        if let DeValue::Integer(_) | DeValue::Float(_) = value.get_ref() {
            self.error(
                value.span(),
                path,
                "a duration needs a unit and quotes, e.g. \"5m\"".to_string(),
            );
            return None;
        }
        let text = self.string(value, path)?;
        match crate::duration::parse_duration(&text) {
            Ok(duration) => Some(duration),
            Err(error) => {
                self.error(value.span(), path, error.to_string());
                None
            }
        }
    }

    fn template(&mut self, value: &Value<'_>, path: &str) -> Option<String> {
        let text = self.string(value, path)?;
        match validate_template(&text) {
            Ok(()) => Some(text),
            Err(message) => {
                self.error(value.span(), path, message);
                None
            }
        }
    }

    /// An http(s) URL with a host, trailing `/` removed.
    fn http_url(&mut self, value: &Value<'_>, path: &str) -> Option<String> {
        let url = self.string(value, path)?;
        let lower = url.to_ascii_lowercase();
        let rest = lower
            .strip_prefix("http://")
            .or_else(|| lower.strip_prefix("https://"));
        match rest {
            Some(rest) if !rest.is_empty() && !rest.starts_with('/') => {
                Some(url.trim_end_matches('/').to_string())
            }
            _ => {
                self.error(
                    value.span(),
                    path,
                    format!("`{url}` is not an http:// or https:// URL with a host"),
                );
                None
            }
        }
    }

    fn required_url(
        &mut self,
        table: &DeTable<'_>,
        span: &Range<usize>,
        path: &str,
        kind: &str,
    ) -> Option<String> {
        match get(table, "url") {
            Some((_, value)) => self.http_url(value, &format!("{path}.url")),
            None => {
                self.error(
                    span.clone(),
                    path,
                    format!("notifier kind `{kind}` needs `url = \"https://...\"`"),
                );
                None
            }
        }
    }

    fn url_or(&mut self, table: &DeTable<'_>, path: &str, default: &str) -> Option<String> {
        match get(table, "url") {
            Some((_, value)) => self.http_url(value, &format!("{path}.url")),
            None => Some(default.to_string()),
        }
    }

    fn required_string(
        &mut self,
        table: &DeTable<'_>,
        key: &str,
        span: &Range<usize>,
        path: &str,
        kind: &str,
    ) -> Option<String> {
        match get(table, key) {
            Some((_, value)) => self
                .string(value, &format!("{path}.{key}"))
                .and_then(|text| {
                    if text.is_empty() {
                        self.error(
                            value.span(),
                            &format!("{path}.{key}"),
                            "must not be empty".to_string(),
                        );
                        None
                    } else {
                        Some(text)
                    }
                }),
            None => {
                self.error(
                    span.clone(),
                    path,
                    format!("notifier kind `{kind}` needs `{key} = \"...\"`"),
                );
                None
            }
        }
    }

    pub(super) fn notifier(
        &mut self,
        table: &DeTable<'_>,
        span: Range<usize>,
        path: &str,
    ) -> Option<NotifierConfig> {
        let errors_before = self.errors.len();
        let name = self.item_name(table, span.clone(), path, "notifier");
        let kind_name = match get(table, "kind") {
            Some((_, value)) => self
                .string(value, &format!("{path}.kind"))
                .and_then(|kind| {
                    if NOTIFIER_KINDS.contains(&kind.as_str()) {
                        Some(kind)
                    } else {
                        self.error(
                            value.span(),
                            &format!("{path}.kind"),
                            format!(
                                "unknown notifier kind `{kind}`, expected one of: {}",
                                NOTIFIER_KINDS.join(", ")
                            ),
                        );
                        None
                    }
                }),
            None => {
                self.error(span.clone(), path, "missing key `kind`".to_string());
                None
            }
        };
        let kind_keys: &[&str] = match kind_name.as_deref() {
            Some("webhook") => &["url", "headers", "secret", "body"],
            Some("slack" | "discord" | "teams" | "alertmanager") => &["url"],
            Some("ntfy") => &["url", "topic", "token"],
            Some("gotify") => &["url", "token"],
            Some("telegram") => &["url", "bot_token", "chat_id"],
            Some("pagerduty") => &["url", "routing_key"],
            Some("email") => &[
                "host", "port", "tls", "username", "password", "from", "to", "ca_file",
            ],
            _ => &[],
        };
        if kind_name.is_some() {
            let allowed: Vec<&str> = NOTIFIER_COMMON_KEYS
                .iter()
                .chain(kind_keys)
                .copied()
                .collect();
            self.unknown_keys(table, path, &allowed);
        }
        let kind = match kind_name.as_deref() {
            Some("webhook") => self.webhook(table, &span, path),
            Some("slack") => self
                .required_url(table, &span, path, "slack")
                .map(|url| NotifierKind::Slack { url }),
            Some("discord") => self
                .required_url(table, &span, path, "discord")
                .map(|url| NotifierKind::Discord { url }),
            Some("teams") => self
                .required_url(table, &span, path, "teams")
                .map(|url| NotifierKind::Teams { url }),
            Some("alertmanager") => self
                .required_url(table, &span, path, "alertmanager")
                .map(|url| NotifierKind::Alertmanager { url }),
            Some("ntfy") => {
                let url = self.url_or(table, path, "https://ntfy.sh");
                let topic = self.required_string(table, "topic", &span, path, "ntfy");
                let token = self.optional_string(table, "token", path);
                Some(NotifierKind::Ntfy {
                    url: url?,
                    topic: topic?,
                    token: token?,
                })
            }
            Some("gotify") => {
                let url = self.required_url(table, &span, path, "gotify");
                let token = self.required_string(table, "token", &span, path, "gotify");
                Some(NotifierKind::Gotify {
                    url: url?,
                    token: token?,
                })
            }
            Some("telegram") => {
                let url = self.url_or(table, path, "https://api.telegram.org");
                let bot_token = self.required_string(table, "bot_token", &span, path, "telegram");
                let chat_id = match get(table, "chat_id") {
                    // Chat ids are numbers (negative for groups) or `@channel` names.
                    Some((_, value)) => match value.get_ref() {
                        DeValue::Integer(int) => i64::from_str_radix(int.as_str(), int.radix())
                            .ok()
                            .map(|n| n.to_string()),
                        _ => self.string(value, &format!("{path}.chat_id")),
                    },
                    None => {
                        self.error(
                            span.clone(),
                            path,
                            "notifier kind `telegram` needs `chat_id`".to_string(),
                        );
                        None
                    }
                };
                Some(NotifierKind::Telegram {
                    url: url?,
                    bot_token: bot_token?,
                    chat_id: chat_id?,
                })
            }
            Some("pagerduty") => {
                let url = self.url_or(table, path, "https://events.pagerduty.com/v2/enqueue");
                let routing_key =
                    self.required_string(table, "routing_key", &span, path, "pagerduty");
                Some(NotifierKind::PagerDuty {
                    url: url?,
                    routing_key: routing_key?,
                })
            }
            Some("email") => self.email(table, &span, path).map(NotifierKind::Email),
            _ => None,
        };
        let default = self.optional_bool(table, "default", path, false);
        let match_labels = match get(table, "match") {
            Some((_, value)) => self.string_map(value, &format!("{path}.match")),
            None => Some(BTreeMap::new()),
        };
        let rate_limit = match get(table, "rate_limit") {
            Some((_, value)) => {
                self.string(value, &format!("{path}.rate_limit"))
                    .and_then(|text| match parse_rate(&text) {
                        Ok((count, per)) => Some(Some(RateLimit { count, per })),
                        Err(message) => {
                            self.error(value.span(), &format!("{path}.rate_limit"), message);
                            None
                        }
                    })
            }
            None => Some(None),
        };
        let max_attempts =
            self.whole_number(table, "max_attempts", path, 1, 20, DEFAULT_MAX_ATTEMPTS);
        let backoff = self
            .optional_positive_duration(table, "backoff", path)
            .map(|backoff| backoff.unwrap_or(DEFAULT_BACKOFF));
        let timeout = self
            .optional_positive_duration(table, "timeout", path)
            .map(|timeout| timeout.unwrap_or(DEFAULT_NOTIFY_TIMEOUT));
        if self.errors.len() != errors_before {
            return None;
        }
        Some(NotifierConfig {
            name: name?,
            kind: kind?,
            default: default?,
            match_labels: match_labels?,
            rate_limit: rate_limit?,
            max_attempts: max_attempts?,
            backoff: backoff?,
            timeout: timeout?,
        })
    }

    fn webhook(
        &mut self,
        table: &DeTable<'_>,
        span: &Range<usize>,
        path: &str,
    ) -> Option<NotifierKind> {
        let url = self.required_url(table, span, path, "webhook");
        let headers = match get(table, "headers") {
            Some((_, value)) => self.string_map(value, &format!("{path}.headers")),
            None => Some(BTreeMap::new()),
        };
        let secret = self.optional_string(table, "secret", path);
        let body = match get(table, "body") {
            Some((_, value)) => self.template(value, &format!("{path}.body")).and_then(|body| {
                // The template must stay JSON whatever text the placeholders bring.
                let sample = crate::alerting::render_template(&body, &|_| Some("x\"y".to_string()), &|text| {
                    let quoted = serde_json::Value::String(text.to_string()).to_string();
                    quoted[1..quoted.len() - 1].to_string()
                });
                match serde_json::from_str::<serde_json::Value>(&sample) {
                    Ok(_) => Some(Some(body)),
                    Err(error) => {
                        self.error(
                            value.span(),
                            &format!("{path}.body"),
                            format!("the body template is not JSON once filled in: {error}; put placeholders inside strings, e.g. `{{\"text\": \"{{{{check}}}} is {{{{status}}}}\"}}`"),
                        );
                        None
                    }
                }
            }),
            None => Some(None),
        };
        Some(NotifierKind::Webhook {
            url: url?,
            headers: headers?,
            secret: secret?,
            body: body?,
        })
    }

    fn email(
        &mut self,
        table: &DeTable<'_>,
        span: &Range<usize>,
        path: &str,
    ) -> Option<EmailNotifier> {
        let host = self.required_string(table, "host", span, path, "email");
        let tls = match get(table, "tls") {
            Some((_, value)) => {
                self.string(value, &format!("{path}.tls"))
                    .and_then(|text| match text.as_str() {
                        "starttls" => Some(SmtpTls::Starttls),
                        "tls" => Some(SmtpTls::Tls),
                        "none" => Some(SmtpTls::None),
                        other => {
                            self.error(
                            value.span(),
                            &format!("{path}.tls"),
                            format!(
                                "unknown tls mode `{other}`, expected one of: starttls, tls, none"
                            ),
                        );
                            None
                        }
                    })
            }
            None => Some(SmtpTls::Starttls),
        };
        let default_port = match tls {
            Some(SmtpTls::Tls) => 465,
            Some(SmtpTls::None) => 25,
            _ => 587,
        };
        let port = match get(table, "port") {
            Some((_, value)) => self.port(value, &format!("{path}.port")),
            None => Some(default_port),
        };
        let username = self.optional_string(table, "username", path);
        let password = self.optional_string(table, "password", path);
        let from = self.required_string(table, "from", span, path, "email");
        let to = match get(table, "to") {
            Some((_, value)) => self
                .string_list(value, &format!("{path}.to"))
                .and_then(|to| {
                    if to.is_empty() {
                        self.error(
                            value.span(),
                            &format!("{path}.to"),
                            "needs at least one address".to_string(),
                        );
                        None
                    } else {
                        Some(to)
                    }
                }),
            None => {
                self.error(
                    span.clone(),
                    path,
                    "notifier kind `email` needs `to = [\"ops@example.org\"]`".to_string(),
                );
                None
            }
        };
        let ca_file = self
            .optional_string(table, "ca_file", path)
            .map(|file| file.map(PathBuf::from));
        let (username, password) = (username?, password?);
        if username.is_some() != password.is_some() {
            self.error(
                span.clone(),
                path,
                "`username` and `password` go together: give both".to_string(),
            );
            return None;
        }
        Some(EmailNotifier {
            host: host?,
            port: port?,
            tls: tls?,
            username,
            password,
            from: from?,
            to: to?,
            ca_file: ca_file?,
        })
    }

    pub(super) fn maintenance(
        &mut self,
        table: &DeTable<'_>,
        span: Range<usize>,
        path: &str,
    ) -> Option<MaintenanceConfig> {
        let errors_before = self.errors.len();
        self.unknown_keys(table, path, MAINTENANCE_KEYS);
        let name = self.item_name(table, span.clone(), path, "maintenance");
        if get(table, "checks").is_none() && get(table, "match").is_none() {
            self.error(
                span.clone(),
                path,
                "a maintenance window needs `checks = [\"web-*\"]` (or `[\"*\"]` for all) or `match = { label = \"value\" }`".to_string(),
            );
        }
        let checks = self.selector(table, path);
        let cron = match get(table, "cron") {
            Some(_) => match self.cron_schedule(table, path) {
                Some(crate::config::Schedule::Cron { expr, timezone }) => Some((expr, timezone)),
                _ => None,
            },
            None => {
                self.error(
                    span.clone(),
                    path,
                    "a maintenance window needs `cron = \"0 2 * * 6\"`: when it starts".to_string(),
                );
                None
            }
        };
        let duration = match get(table, "duration") {
            Some((_, value)) => self.positive_duration(value, &format!("{path}.duration")),
            None => {
                self.error(
                    span,
                    path,
                    "a maintenance window needs `duration = \"2h\"`".to_string(),
                );
                None
            }
        };
        if self.errors.len() != errors_before {
            return None;
        }
        let (cron, timezone) = cron?;
        // Validated above; parsing again here keeps the window's zone honest.
        CronSchedule::parse(&cron, timezone.as_deref()).ok()?;
        Some(MaintenanceConfig {
            name: name?,
            checks: checks?,
            cron,
            timezone,
            duration: duration?,
        })
    }
}
