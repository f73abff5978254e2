//! Walks the spanned TOML tree, interpolates `${ENV}` and collects every validation error.

mod alerting;
mod public;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::ops::Range;
use std::path::PathBuf;
use std::time::Duration;

use toml::Spanned;
use toml::de::{DeTable, DeValue};

use super::{
    CheckConfig, CheckKind, ClientCert, Config, ConfigError, ConfigErrors, DEFAULT_TIMEOUT,
    DnsCheck, ExecCheck, HeartbeatCheck, HostCheck, HttpAuth, HttpCheck, HttpVersion, HubConfig,
    IcmpCheck, Link, Overlap, Schedule, TcpCheck, TlsCheck,
};
use crate::conditions::Condition;
use crate::cron::CronSchedule;
use crate::duration::parse_duration;

/// Looks up an environment variable; passed in so `core` does no I/O and tests control it.
pub type EnvLookup<'a> = &'a dyn Fn(&str) -> Option<String>;

/// Parses and validates a config file's text. `file` is only used in messages.
pub fn parse_config(file: &str, text: &str, env: EnvLookup<'_>) -> Result<Config, ConfigErrors> {
    let mut cx = Cx {
        file,
        text,
        env,
        errors: Vec::new(),
    };
    let (document, syntax_errors) = DeTable::parse_recoverable(text);
    for error in &syntax_errors {
        let span = error.span().unwrap_or(0..0);
        let message = error.message().trim().trim_end_matches('.').to_string();
        cx.error(span, "", format!("TOML syntax error: {message}"));
    }
    let config = if syntax_errors.is_empty() {
        Some(cx.document(document.get_ref()))
    } else {
        None
    };
    if !cx.errors.is_empty() {
        cx.errors.sort_by_key(|e| (e.line, e.col));
        return Err(ConfigErrors(cx.errors));
    }
    config.ok_or_else(|| ConfigErrors(Vec::new()))
}

struct Cx<'a> {
    file: &'a str,
    text: &'a str,
    env: EnvLookup<'a>,
    errors: Vec<ConfigError>,
}

type Value<'i> = Spanned<DeValue<'i>>;

const TOP_KEYS: &[&str] = &[
    "hub",
    "check",
    "rule",
    "notifier",
    "maintenance",
    "status_page",
];
const HUB_KEYS: &[&str] = &["listen", "data", "public_url", "metrics_public"];
const CHECK_COMMON_KEYS: &[&str] = &[
    "name", "kind", "every", "cron", "timezone", "timeout", "overlap", "labels", "links", "badge",
];
const EXEC_KEYS: &[&str] = &["command", "env", "cwd", "clean_env"];
const HTTP_KEYS: &[&str] = &[
    "url",
    "method",
    "headers",
    "body",
    "basic_auth",
    "bearer_token",
    "follow_redirects",
    "verify_tls",
    "client_cert",
    "client_key",
    "http_version",
    "conditions",
];
const TCP_KEYS: &[&str] = &["host", "port", "send", "expect", "conditions"];
const DNS_KEYS: &[&str] = &["query", "record", "server", "expect", "conditions"];
const ICMP_KEYS: &[&str] = &[
    "host",
    "count",
    "interval",
    "warn_loss",
    "crit_loss",
    "conditions",
];
const TLS_KEYS: &[&str] = &[
    "host",
    "port",
    "server_name",
    "warn_days",
    "crit_days",
    "conditions",
];
const HOST_KEYS: &[&str] = &["disk_warn", "disk_crit", "memory_warn", "memory_crit"];
/// Heartbeats are pushed, so they take `period` (or `cron`) and `grace` instead of `every`.
const HEARTBEAT_KEYS: &[&str] = &[
    "name", "kind", "period", "cron", "timezone", "grace", "labels", "links", "badge",
];
const KINDS: &[&str] = CheckKind::NAMES;
const DNS_RECORDS: &[&str] = &[
    "A", "AAAA", "CNAME", "MX", "NS", "TXT", "SOA", "PTR", "SRV", "CAA",
];
/// A heartbeat's default grace, as healthchecks.io's.
const DEFAULT_GRACE: Duration = Duration::from_secs(3600);

impl Cx<'_> {
    fn error(&mut self, span: Range<usize>, path: &str, message: String) {
        let (line, col) = line_col(self.text, span.start);
        self.errors.push(ConfigError {
            file: self.file.to_string(),
            line,
            col,
            path: path.to_string(),
            message,
        });
    }

    fn document(&mut self, root: &DeTable<'_>) -> Config {
        self.unknown_keys(root, "", TOP_KEYS);
        let mut config = Config::default();
        if let Some((_, hub)) = get(root, "hub") {
            match hub.get_ref() {
                DeValue::Table(table) => config.hub = self.hub(table),
                other => self.error(
                    hub.span(),
                    "hub",
                    format!("expected a table `[hub]`, found {}", other.type_str()),
                ),
            }
        }
        if let Some((_, checks)) = get(root, "check") {
            match checks.get_ref() {
                DeValue::Array(array) => {
                    let mut names: BTreeMap<String, usize> = BTreeMap::new();
                    for (index, item) in array.iter().enumerate() {
                        let path = format!("check[{index}]");
                        let DeValue::Table(table) = item.get_ref() else {
                            self.error(
                                item.span(),
                                &path,
                                format!(
                                    "expected a table `[[check]]`, found {}",
                                    item.get_ref().type_str()
                                ),
                            );
                            continue;
                        };
                        // `badge` is read for every check, so its error shows beside the others.
                        let badge = self.optional_bool(table, "badge", &path, false);
                        if let Some(check) = self.check(table, item.span(), &path) {
                            if let Some(first) = names.get(&check.name) {
                                let name_span = get(table, "name")
                                    .map(|(_, v)| v.span())
                                    .unwrap_or(item.span());
                                self.error(
                                    name_span,
                                    &format!("{path}.name"),
                                    format!(
                                        "duplicate check name `{}` (first used by check[{first}])",
                                        check.name
                                    ),
                                );
                            } else {
                                names.insert(check.name.clone(), index);
                                if badge == Some(true) {
                                    config.badges.insert(check.name.clone());
                                }
                                config.checks.push(check);
                            }
                        }
                    }
                }
                other => self.error(
                    checks.span(),
                    "check",
                    format!(
                        "expected an array of tables `[[check]]`, found {}",
                        other.type_str()
                    ),
                ),
            }
        }
        config.status_page = self.status_page_in(root);
        let mut notify_refs = Vec::new();
        config.rules = self.named_tables(
            root,
            "rule",
            |cx, table, span, path| cx.rule(table, span, path, &mut notify_refs),
            |rule| &rule.name,
        );
        config.notifiers =
            self.named_tables(root, "notifier", Self::notifier, |notifier| &notifier.name);
        config.maintenance = self.named_tables(root, "maintenance", Self::maintenance, |window| {
            &window.name
        });
        // Names of every `[[notifier]]`, valid or not: a broken one has its own error already.
        let written: Vec<String> = match get(root, "notifier").map(|(_, v)| v.get_ref()) {
            Some(DeValue::Array(items)) => items
                .iter()
                .filter_map(|item| match item.get_ref() {
                    DeValue::Table(table) => match get(table, "name").map(|(_, v)| v.get_ref()) {
                        Some(DeValue::String(name)) => Some(name.to_string()),
                        _ => None,
                    },
                    _ => None,
                })
                .collect(),
            _ => Vec::new(),
        };
        for reference in notify_refs {
            if !written.contains(&reference.name) {
                let known: Vec<&str> = written.iter().map(String::as_str).collect();
                self.error(
                    reference.span,
                    &reference.path,
                    format!(
                        "no notifier named `{}`; configured: {}",
                        reference.name,
                        if known.is_empty() {
                            "none".to_string()
                        } else {
                            known.join(", ")
                        }
                    ),
                );
            }
        }
        config
    }

    fn hub(&mut self, table: &DeTable<'_>) -> HubConfig {
        self.unknown_keys(table, "hub", HUB_KEYS);
        let mut hub = HubConfig::default();
        if let Some((_, value)) = get(table, "listen")
            && let Some(text) = self.string(value, "hub.listen")
        {
            match text.parse::<SocketAddr>() {
                Ok(addr) => hub.listen = addr,
                Err(_) => self.error(
                    value.span(),
                    "hub.listen",
                    format!(
                        "`{text}` is not a socket address: expected IP:PORT, e.g. `127.0.0.1:7878`"
                    ),
                ),
            }
        }
        if let Some((_, value)) = get(table, "data")
            && let Some(text) = self.string(value, "hub.data")
        {
            if text.is_empty() {
                self.error(value.span(), "hub.data", "must not be empty".to_string());
            } else {
                hub.data = PathBuf::from(text);
            }
        }
        if let Some((_, value)) = get(table, "public_url")
            && let Some(text) = self.string(value, "hub.public_url")
        {
            if text.starts_with("http://") || text.starts_with("https://") {
                hub.public_url = Some(text.trim_end_matches('/').to_string());
            } else {
                self.error(
                    value.span(),
                    "hub.public_url",
                    format!("`{text}` is not an http:// or https:// URL"),
                );
            }
        }
        if let Some(flag) = self.optional_bool(table, "metrics_public", "hub", false) {
            hub.metrics_public = flag;
        }
        hub
    }

    fn check(
        &mut self,
        table: &DeTable<'_>,
        span: Range<usize>,
        path: &str,
    ) -> Option<CheckConfig> {
        let errors_before = self.errors.len();
        let name = match get(table, "name") {
            Some((_, value)) => self.string(value, &format!("{path}.name")).and_then(|name| {
                if valid_name(&name) {
                    Some(name)
                } else {
                    self.error(
                        value.span(),
                        &format!("{path}.name"),
                        format!("`{name}` is not a valid check name: use 1-100 letters, digits, `-`, `_`, `.` or `/`"),
                    );
                    None
                }
            }),
            None => {
                self.error(span.clone(), path, "missing key `name`".to_string());
                None
            }
        };
        let kind_name = match get(table, "kind") {
            Some((_, value)) => self
                .string(value, &format!("{path}.kind"))
                .and_then(|kind| {
                    if KINDS.contains(&kind.as_str()) {
                        Some(kind)
                    } else {
                        self.error(
                            value.span(),
                            &format!("{path}.kind"),
                            format!(
                                "unknown check kind `{kind}`, expected one of: {}",
                                KINDS.join(", ")
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
            Some("exec") => EXEC_KEYS,
            Some("http") => HTTP_KEYS,
            Some("tcp") => TCP_KEYS,
            Some("dns") => DNS_KEYS,
            Some("icmp") => ICMP_KEYS,
            Some("tls") => TLS_KEYS,
            Some("host") => HOST_KEYS,
            _ => &[],
        };
        if kind_name.as_deref() == Some("heartbeat") {
            self.unknown_keys(table, path, HEARTBEAT_KEYS);
            let heartbeat = self.heartbeat(table, span, path);
            let links = self.links(table, path);
            let labels = match get(table, "labels") {
                Some((_, value)) => self.string_map(value, &format!("{path}.labels")),
                None => Some(BTreeMap::new()),
            };
            if self.errors.len() != errors_before {
                return None;
            }
            let (schedule, heartbeat) = heartbeat?;
            return Some(CheckConfig {
                name: name?,
                schedule,
                timeout: DEFAULT_TIMEOUT,
                overlap: Overlap::Allow,
                labels: labels?,
                links: links?,
                kind: CheckKind::Heartbeat(heartbeat),
            });
        }
        if kind_name.is_some() {
            let allowed: Vec<&str> = CHECK_COMMON_KEYS.iter().chain(kind_keys).copied().collect();
            self.unknown_keys(table, path, &allowed);
        }

        let schedule = self.schedule(table, span.clone(), path);
        let timeout = match get(table, "timeout") {
            Some((_, value)) => self.positive_duration(value, &format!("{path}.timeout")),
            None => Some(DEFAULT_TIMEOUT),
        };
        let overlap = match get(table, "overlap") {
            Some((_, value)) => self.string(value, &format!("{path}.overlap")).and_then(|text| {
                match text.as_str() {
                    "skip" => Some(Overlap::Skip),
                    "queue" => Some(Overlap::Queue),
                    "allow" => Some(Overlap::Allow),
                    other => {
                        self.error(
                            value.span(),
                            &format!("{path}.overlap"),
                            format!("unknown overlap policy `{other}`, expected one of: skip, queue, allow"),
                        );
                        None
                    }
                }
            }),
            None => Some(Overlap::default()),
        };
        let labels = match get(table, "labels") {
            Some((_, value)) => self.string_map(value, &format!("{path}.labels")),
            None => Some(BTreeMap::new()),
        };
        let links = self.links(table, path);
        let kind = match kind_name.as_deref() {
            Some("exec") => self.exec(table, span, path).map(CheckKind::Exec),
            Some("noop") => Some(CheckKind::Noop),
            Some("http") => self.http(table, span, path).map(CheckKind::Http),
            Some("tcp") => self.tcp(table, span, path).map(CheckKind::Tcp),
            Some("dns") => self.dns(table, span, path).map(CheckKind::Dns),
            Some("icmp") => self.icmp(table, span, path).map(CheckKind::Icmp),
            Some("tls") => self.tls(table, span, path).map(CheckKind::Tls),
            Some("host") => self.host(table, path).map(CheckKind::Host),
            _ => None,
        };
        if self.errors.len() != errors_before {
            return None;
        }
        Some(CheckConfig {
            name: name?,
            schedule: schedule?,
            timeout: timeout?,
            overlap: overlap?,
            labels: labels?,
            links: links?,
            kind: kind?,
        })
    }

    fn schedule(
        &mut self,
        table: &DeTable<'_>,
        span: Range<usize>,
        path: &str,
    ) -> Option<Schedule> {
        let every = get(table, "every");
        let cron = get(table, "cron");
        let timezone = get(table, "timezone");
        match (every, cron) {
            (Some(_), Some((_, cron_value))) => {
                self.error(
                    cron_value.span(),
                    &format!("{path}.cron"),
                    "`every` and `cron` are exclusive: give one".to_string(),
                );
                None
            }
            (None, None) => {
                self.error(
                    span,
                    path,
                    "missing schedule: give `every = \"30s\"` or `cron = \"*/5 * * * *\"`"
                        .to_string(),
                );
                None
            }
            (Some((_, every_value)), None) => {
                if let Some((_, tz_value)) = timezone {
                    self.error(
                        tz_value.span(),
                        &format!("{path}.timezone"),
                        "`timezone` only applies to `cron` schedules".to_string(),
                    );
                }
                self.positive_duration(every_value, &format!("{path}.every"))
                    .map(Schedule::Every)
            }
            (None, Some(_)) => self.cron_schedule(table, path),
        }
    }

    fn exec(&mut self, table: &DeTable<'_>, span: Range<usize>, path: &str) -> Option<ExecCheck> {
        let command = match get(table, "command") {
            Some((_, value)) => {
                let key = format!("{path}.command");
                match value.get_ref() {
                    DeValue::Array(items) => {
                        let mut command = Vec::new();
                        let mut ok = true;
                        for (index, item) in items.iter().enumerate() {
                            match self.string(item, &format!("{key}[{index}]")) {
                                Some(arg) => command.push(arg),
                                None => ok = false,
                            }
                        }
                        if ok && command.first().is_none_or(|program| program.is_empty()) {
                            self.error(
                                value.span(),
                                &key,
                                "must name a program: `command = [\"prog\", \"arg\", ...]`"
                                    .to_string(),
                            );
                            ok = false;
                        }
                        ok.then_some(command)
                    }
                    DeValue::String(_) => {
                        self.error(
                            value.span(),
                            &key,
                            "expected an array of strings, e.g. `command = [\"check_disk\", \"-w\", \"10%\"]`; to use a shell write `[\"sh\", \"-c\", \"...\"]`".to_string(),
                        );
                        None
                    }
                    other => {
                        self.error(
                            value.span(),
                            &key,
                            format!("expected an array of strings, found {}", other.type_str()),
                        );
                        None
                    }
                }
            }
            None => {
                self.error(
                    span,
                    path,
                    "an exec check needs `command = [\"prog\", \"arg\", ...]`".to_string(),
                );
                None
            }
        };
        let env = match get(table, "env") {
            Some((_, value)) => self.string_map(value, &format!("{path}.env")),
            None => Some(BTreeMap::new()),
        };
        let cwd = match get(table, "cwd") {
            Some((_, value)) => self
                .string(value, &format!("{path}.cwd"))
                .map(|cwd| Some(PathBuf::from(cwd))),
            None => Some(None),
        };
        let clean_env = self.optional_bool(table, "clean_env", path, false);
        Some(ExecCheck {
            command: command?,
            env: env?,
            cwd: cwd?,
            clean_env: clean_env?,
        })
    }

    fn heartbeat(
        &mut self,
        table: &DeTable<'_>,
        span: Range<usize>,
        path: &str,
    ) -> Option<(Schedule, HeartbeatCheck)> {
        let period = get(table, "period");
        let cron = get(table, "cron");
        let schedule = match (period, cron) {
            (Some(_), Some((_, cron_value))) => {
                self.error(
                    cron_value.span(),
                    &format!("{path}.cron"),
                    "`period` and `cron` are exclusive: give one".to_string(),
                );
                None
            }
            (None, None) => {
                self.error(
                    span,
                    path,
                    "a heartbeat needs `period = \"1d\"` or `cron = \"0 3 * * *\"`: when pings are expected"
                        .to_string(),
                );
                None
            }
            (Some((_, value)), None) => {
                if let Some((_, tz_value)) = get(table, "timezone") {
                    self.error(
                        tz_value.span(),
                        &format!("{path}.timezone"),
                        "`timezone` only applies to `cron` schedules".to_string(),
                    );
                }
                self.positive_duration(value, &format!("{path}.period"))
                    .map(Schedule::Every)
            }
            (None, Some(_)) => self.cron_schedule(table, path),
        };
        let grace = match get(table, "grace") {
            Some((_, value)) => self.positive_duration(value, &format!("{path}.grace")),
            None => Some(DEFAULT_GRACE),
        };
        Some((schedule?, HeartbeatCheck { grace: grace? }))
    }

    fn http(&mut self, table: &DeTable<'_>, span: Range<usize>, path: &str) -> Option<HttpCheck> {
        let url = match get(table, "url") {
            Some((_, value)) => self.string(value, &format!("{path}.url")).and_then(|url| {
                let lower = url.to_ascii_lowercase();
                let rest = lower
                    .strip_prefix("http://")
                    .or_else(|| lower.strip_prefix("https://"));
                match rest {
                    Some(rest) if !rest.is_empty() && !rest.starts_with('/') => Some(url),
                    _ => {
                        self.error(
                            value.span(),
                            &format!("{path}.url"),
                            format!("`{url}` is not an http:// or https:// URL with a host"),
                        );
                        None
                    }
                }
            }),
            None => {
                self.error(
                    span.clone(),
                    path,
                    "an http check needs `url = \"https://...\"`".to_string(),
                );
                None
            }
        };
        let method = match get(table, "method") {
            Some((_, value)) => self.string(value, &format!("{path}.method")).and_then(|m| {
                let upper = m.to_ascii_uppercase();
                if !upper.is_empty() && upper.bytes().all(|b| b.is_ascii_uppercase()) {
                    Some(upper)
                } else {
                    self.error(
                        value.span(),
                        &format!("{path}.method"),
                        format!("`{m}` is not an HTTP method, e.g. GET, POST, HEAD"),
                    );
                    None
                }
            }),
            None => Some("GET".to_string()),
        };
        let headers = match get(table, "headers") {
            Some((_, value)) => self.string_map(value, &format!("{path}.headers")),
            None => Some(BTreeMap::new()),
        };
        let body = self.optional_string(table, "body", path);
        let basic = match get(table, "basic_auth") {
            Some((_, value)) => {
                let key = format!("{path}.basic_auth");
                self.string_map(value, &key).and_then(|map| {
                    match (map.get("username"), map.get("password"), map.len()) {
                        (Some(username), Some(password), 2) => Some(Some(HttpAuth::Basic {
                            username: username.clone(),
                            password: password.clone(),
                        })),
                        _ => {
                            self.error(
                                value.span(),
                                &key,
                                "expected `{ username = \"...\", password = \"...\" }`".to_string(),
                            );
                            None
                        }
                    }
                })
            }
            None => Some(None),
        };
        let bearer = self
            .optional_string(table, "bearer_token", path)
            .map(|token| token.map(|token| HttpAuth::Bearer { token }));
        let auth = match (basic, bearer) {
            (Some(Some(_)), Some(Some(_))) => {
                let span = get(table, "bearer_token")
                    .map(|(_, v)| v.span())
                    .unwrap_or(span.clone());
                self.error(
                    span,
                    &format!("{path}.bearer_token"),
                    "`basic_auth` and `bearer_token` are exclusive: give one".to_string(),
                );
                None
            }
            (Some(basic), Some(bearer)) => Some(basic.or(bearer)),
            _ => None,
        };
        let follow_redirects = self.optional_bool(table, "follow_redirects", path, true);
        let verify_tls = self.optional_bool(table, "verify_tls", path, true);
        let cert = self.optional_string(table, "client_cert", path);
        let key = self.optional_string(table, "client_key", path);
        let client_cert = match (cert, key) {
            (Some(Some(cert)), Some(Some(key))) => Some(Some(ClientCert {
                cert: PathBuf::from(cert),
                key: PathBuf::from(key),
            })),
            (Some(None), Some(None)) => Some(None),
            (Some(_), Some(_)) => {
                self.error(
                    span.clone(),
                    path,
                    "`client_cert` and `client_key` go together: give both PEM files".to_string(),
                );
                None
            }
            _ => None,
        };
        let http_version = match get(table, "http_version") {
            Some((_, value)) => self
                .string(value, &format!("{path}.http_version"))
                .and_then(|v| match v.as_str() {
                    "auto" => Some(HttpVersion::Auto),
                    "1.1" | "http1" | "http/1.1" => Some(HttpVersion::Http1),
                    "2" | "http2" | "h2" => Some(HttpVersion::Http2),
                    other => {
                        self.error(
                            value.span(),
                            &format!("{path}.http_version"),
                            format!(
                                "unknown HTTP version `{other}`, expected one of: auto, 1.1, 2"
                            ),
                        );
                        None
                    }
                }),
            None => Some(HttpVersion::Auto),
        };
        let conditions = self.conditions(table, path, &["[STATUS] < 400"]);
        Some(HttpCheck {
            url: url?,
            method: method?,
            headers: headers?,
            body: body?,
            auth: auth?,
            follow_redirects: follow_redirects?,
            verify_tls: verify_tls?,
            client_cert: client_cert?,
            http_version: http_version?,
            conditions: conditions?,
        })
    }

    fn tcp(&mut self, table: &DeTable<'_>, span: Range<usize>, path: &str) -> Option<TcpCheck> {
        let host = self.required_host(table, span.clone(), path, "tcp");
        let port = match get(table, "port") {
            Some((_, value)) => self.port(value, &format!("{path}.port")),
            None => {
                self.error(span, path, "a tcp check needs `port = 1234`".to_string());
                None
            }
        };
        let send = self.optional_string(table, "send", path);
        let expect = self.optional_string(table, "expect", path);
        let conditions = self.conditions(table, path, &["[CONNECTED] == true"]);
        Some(TcpCheck {
            host: host?,
            port: port?,
            send: send?,
            expect: expect?,
            conditions: conditions?,
        })
    }

    fn dns(&mut self, table: &DeTable<'_>, span: Range<usize>, path: &str) -> Option<DnsCheck> {
        let query = match get(table, "query") {
            Some((_, value)) => self.string(value, &format!("{path}.query")).and_then(|q| {
                if q.is_empty() || q.len() > 253 || q.contains(char::is_whitespace) {
                    self.error(
                        value.span(),
                        &format!("{path}.query"),
                        format!("`{q}` is not a domain name"),
                    );
                    None
                } else {
                    Some(q)
                }
            }),
            None => {
                self.error(
                    span,
                    path,
                    "a dns check needs `query = \"example.org\"`".to_string(),
                );
                None
            }
        };
        let record = match get(table, "record") {
            Some((_, value)) => self.string(value, &format!("{path}.record")).and_then(|r| {
                let upper = r.to_ascii_uppercase();
                if DNS_RECORDS.contains(&upper.as_str()) {
                    Some(upper)
                } else {
                    self.error(
                        value.span(),
                        &format!("{path}.record"),
                        format!(
                            "unknown record type `{r}`, expected one of: {}",
                            DNS_RECORDS.join(", ")
                        ),
                    );
                    None
                }
            }),
            None => Some("A".to_string()),
        };
        let server = match get(table, "server") {
            Some((_, value)) => self.string(value, &format!("{path}.server")).and_then(|server| {
                let ok = server.parse::<std::net::IpAddr>().is_ok()
                    || server.parse::<SocketAddr>().is_ok();
                if ok {
                    Some(Some(server))
                } else {
                    self.error(
                        value.span(),
                        &format!("{path}.server"),
                        format!("`{server}` is not IP or IP:PORT, e.g. `1.1.1.1` or `127.0.0.1:5353`"),
                    );
                    None
                }
            }),
            None => Some(None),
        };
        let expect = match get(table, "expect") {
            Some((_, value)) => self.string_list(value, &format!("{path}.expect")),
            None => Some(Vec::new()),
        };
        let conditions = self.conditions(table, path, &["[DNS_RCODE] == NOERROR"]);
        Some(DnsCheck {
            query: query?,
            record: record?,
            server: server?,
            expect: expect?,
            conditions: conditions?,
        })
    }

    fn icmp(&mut self, table: &DeTable<'_>, span: Range<usize>, path: &str) -> Option<IcmpCheck> {
        let host = self.required_host(table, span, path, "icmp");
        let count = match get(table, "count") {
            Some((_, value)) => self.integer_in(value, &format!("{path}.count"), 1, 100),
            None => Some(3),
        };
        let interval = match get(table, "interval") {
            Some((_, value)) => self.positive_duration(value, &format!("{path}.interval")),
            None => Some(Duration::from_millis(200)),
        };
        let warn_loss = self.optional_percent(table, "warn_loss", path, 20.0);
        let crit_loss = self.optional_percent(table, "crit_loss", path, 100.0);
        let conditions = self.conditions(table, path, &[]);
        Some(IcmpCheck {
            host: host?,
            count: u32::try_from(count?).ok()?,
            interval: interval?,
            warn_loss: warn_loss?,
            crit_loss: crit_loss?,
            conditions: conditions?,
        })
    }

    fn tls(&mut self, table: &DeTable<'_>, span: Range<usize>, path: &str) -> Option<TlsCheck> {
        let host = self.required_host(table, span, path, "tls");
        let port = match get(table, "port") {
            Some((_, value)) => self.port(value, &format!("{path}.port")),
            None => Some(443),
        };
        let server_name = self.optional_string(table, "server_name", path);
        let warn_days = self.optional_number(table, "warn_days", path, 14.0);
        let crit_days = self.optional_number(table, "crit_days", path, 7.0);
        let conditions = self.conditions(table, path, &[]);
        Some(TlsCheck {
            host: host?,
            port: port?,
            server_name: server_name?,
            warn_days: warn_days?,
            crit_days: crit_days?,
            conditions: conditions?,
        })
    }

    fn host(&mut self, table: &DeTable<'_>, path: &str) -> Option<HostCheck> {
        let defaults = HostCheck::default();
        Some(HostCheck {
            disk_warn: self.optional_percent(table, "disk_warn", path, defaults.disk_warn)?,
            disk_crit: self.optional_percent(table, "disk_crit", path, defaults.disk_crit)?,
            memory_warn: self.optional_percent(table, "memory_warn", path, defaults.memory_warn)?,
            memory_crit: self.optional_percent(table, "memory_crit", path, defaults.memory_crit)?,
        })
    }

    /// `cron` + optional `timezone`, validated.
    fn cron_schedule(&mut self, table: &DeTable<'_>, path: &str) -> Option<Schedule> {
        let (_, cron_value) = get(table, "cron")?;
        let expr = self.string(cron_value, &format!("{path}.cron"))?;
        let timezone = match get(table, "timezone") {
            Some((_, tz_value)) => {
                let tz = self.string(tz_value, &format!("{path}.timezone"))?;
                if let Err(message) = CronSchedule::zone(Some(&tz)) {
                    self.error(tz_value.span(), &format!("{path}.timezone"), message);
                    return None;
                }
                Some(tz)
            }
            None => None,
        };
        match CronSchedule::parse(&expr, None) {
            Ok(_) => Some(Schedule::Cron { expr, timezone }),
            Err(message) => {
                self.error(cron_value.span(), &format!("{path}.cron"), message);
                None
            }
        }
    }

    /// `links = [{ name = "CI", url = "https://..." }, ...]`.
    fn links(&mut self, table: &DeTable<'_>, path: &str) -> Option<Vec<Link>> {
        let Some((_, value)) = get(table, "links") else {
            return Some(Vec::new());
        };
        let key = format!("{path}.links");
        let items = self.array(value, &key, "`{ name = \"...\", url = \"https://...\" }`")?;
        let mut links = Vec::new();
        let mut ok = true;
        for (index, item) in items.iter().enumerate() {
            let item_key = format!("{key}[{index}]");
            let link = self.string_map(item, &item_key).and_then(|map| {
                match (map.get("name"), map.get("url"), map.len()) {
                    (Some(name), Some(url), 2)
                        if !name.is_empty()
                            && (url.starts_with("http://") || url.starts_with("https://")) =>
                    {
                        Some(Link {
                            name: name.clone(),
                            url: url.clone(),
                        })
                    }
                    _ => {
                        self.error(
                            item.span(),
                            &item_key,
                            "expected `{ name = \"...\", url = \"https://...\" }` with an http(s) URL"
                                .to_string(),
                        );
                        None
                    }
                }
            });
            match link {
                Some(link) => links.push(link),
                None => ok = false,
            }
        }
        ok.then_some(links)
    }

    /// `conditions = [...]`, each parsed (errors point into the string), or the defaults.
    fn conditions(
        &mut self,
        table: &DeTable<'_>,
        path: &str,
        defaults: &[&str],
    ) -> Option<Vec<String>> {
        let Some((_, value)) = get(table, "conditions") else {
            return Some(defaults.iter().map(ToString::to_string).collect());
        };
        let key = format!("{path}.conditions");
        let items = self.array(value, &key, "strings, e.g. `[\"[STATUS] == 200\"]`")?;
        let mut out = Vec::new();
        let mut ok = true;
        for (index, item) in items.iter().enumerate() {
            let item_key = format!("{key}[{index}]");
            let Some(text) = self.string(item, &item_key) else {
                ok = false;
                continue;
            };
            match Condition::parse(&text) {
                Ok(_) => out.push(text),
                Err(error) => {
                    // Point at the offending character inside the quoted string when known
                    // (+1 for the opening quote; exact for strings without escapes).
                    let mut at = item.span();
                    if error.column > 0 {
                        let offset = text
                            .char_indices()
                            .nth(error.column - 1)
                            .map(|(i, _)| i)
                            .unwrap_or(text.len());
                        at.start = (at.start + 1 + offset).min(at.end);
                    }
                    self.error(at, &item_key, error.message.clone());
                    ok = false;
                }
            }
        }
        ok.then_some(out)
    }

    fn required_host(
        &mut self,
        table: &DeTable<'_>,
        span: Range<usize>,
        path: &str,
        kind: &str,
    ) -> Option<String> {
        match get(table, "host") {
            Some((_, value)) => self
                .string(value, &format!("{path}.host"))
                .and_then(|host| {
                    if host.is_empty() || host.contains(char::is_whitespace) || host.contains('/') {
                        self.error(
                            value.span(),
                            &format!("{path}.host"),
                            format!("`{host}` is not a host name or IP address"),
                        );
                        None
                    } else {
                        Some(host)
                    }
                }),
            None => {
                self.error(
                    span,
                    path,
                    format!("a `{kind}` check needs `host = \"...\"`"),
                );
                None
            }
        }
    }

    fn port(&mut self, value: &Value<'_>, path: &str) -> Option<u16> {
        self.integer_in(value, path, 1, 65535)
            .and_then(|port| u16::try_from(port).ok())
    }

    fn integer_in(&mut self, value: &Value<'_>, path: &str, min: i64, max: i64) -> Option<i64> {
        match value.get_ref() {
            DeValue::Integer(int) => match i64::from_str_radix(int.as_str(), int.radix()) {
                Ok(n) if (min..=max).contains(&n) => Some(n),
                _ => {
                    self.error(
                        value.span(),
                        path,
                        format!("must be a whole number from {min} to {max}"),
                    );
                    None
                }
            },
            other => {
                self.error(
                    value.span(),
                    path,
                    format!("expected a whole number, found {}", other.type_str()),
                );
                None
            }
        }
    }

    fn optional_number(
        &mut self,
        table: &DeTable<'_>,
        key: &str,
        path: &str,
        default: f64,
    ) -> Option<f64> {
        let Some((_, value)) = get(table, key) else {
            return Some(default);
        };
        let number = match value.get_ref() {
            DeValue::Integer(int) => i64::from_str_radix(int.as_str(), int.radix())
                .ok()
                .map(|n| n as f64),
            DeValue::Float(float) => float.as_str().parse::<f64>().ok(),
            _ => None,
        };
        match number {
            Some(n) if n.is_finite() => Some(n),
            _ => {
                self.error(
                    value.span(),
                    &format!("{path}.{key}"),
                    format!("expected a number, found {}", value.get_ref().type_str()),
                );
                None
            }
        }
    }

    fn optional_percent(
        &mut self,
        table: &DeTable<'_>,
        key: &str,
        path: &str,
        default: f64,
    ) -> Option<f64> {
        let number = self.optional_number(table, key, path, default)?;
        if (0.0..=100.0).contains(&number) {
            Some(number)
        } else {
            let span = get(table, key).map(|(_, v)| v.span()).unwrap_or(0..0);
            self.error(
                span,
                &format!("{path}.{key}"),
                "must be a percentage from 0 to 100".to_string(),
            );
            None
        }
    }

    fn optional_string(
        &mut self,
        table: &DeTable<'_>,
        key: &str,
        path: &str,
    ) -> Option<Option<String>> {
        match get(table, key) {
            Some((_, value)) => self.string(value, &format!("{path}.{key}")).map(Some),
            None => Some(None),
        }
    }

    fn optional_bool(
        &mut self,
        table: &DeTable<'_>,
        key: &str,
        path: &str,
        default: bool,
    ) -> Option<bool> {
        match get(table, key) {
            Some((_, value)) => match value.get_ref() {
                DeValue::Boolean(flag) => Some(*flag),
                other => {
                    self.error(
                        value.span(),
                        &format!("{path}.{key}"),
                        format!("expected true or false, found {}", other.type_str()),
                    );
                    None
                }
            },
            None => Some(default),
        }
    }

    /// The items of an array, or an error "expected an array of {what}, found ...".
    fn array<'v, 'i>(
        &mut self,
        value: &'v Value<'i>,
        path: &str,
        what: &str,
    ) -> Option<&'v [Value<'i>]> {
        match value.get_ref() {
            DeValue::Array(items) => Some(&items[..]),
            other => {
                self.error(
                    value.span(),
                    path,
                    format!("expected an array of {what}, found {}", other.type_str()),
                );
                None
            }
        }
    }

    fn string_list(&mut self, value: &Value<'_>, path: &str) -> Option<Vec<String>> {
        let items = self.array(value, path, "strings")?;
        let mut out = Vec::new();
        let mut ok = true;
        for (index, item) in items.iter().enumerate() {
            match self.string(item, &format!("{path}[{index}]")) {
                Some(text) => out.push(text),
                None => ok = false,
            }
        }
        ok.then_some(out)
    }

    /// A string value, `${ENV}`-interpolated.
    fn string(&mut self, value: &Value<'_>, path: &str) -> Option<String> {
        match value.get_ref() {
            DeValue::String(text) => match interpolate(text, self.env) {
                Ok(text) => Some(text),
                Err(message) => {
                    self.error(value.span(), path, message);
                    None
                }
            },
            other => {
                self.error(
                    value.span(),
                    path,
                    format!("expected a string, found {}", other.type_str()),
                );
                None
            }
        }
    }

    fn string_map(&mut self, value: &Value<'_>, path: &str) -> Option<BTreeMap<String, String>> {
        let DeValue::Table(table) = value.get_ref() else {
            self.error(
                value.span(),
                path,
                format!(
                    "expected a table of strings, found {}",
                    value.get_ref().type_str()
                ),
            );
            return None;
        };
        let mut map = BTreeMap::new();
        let mut ok = true;
        for (key, item) in table.iter() {
            match self.string(item, &format!("{path}.{}", key.get_ref())) {
                Some(text) => {
                    map.insert(key.get_ref().to_string(), text);
                }
                None => ok = false,
            }
        }
        ok.then_some(map)
    }

    fn positive_duration(&mut self, value: &Value<'_>, path: &str) -> Option<Duration> {
        if let DeValue::Integer(_) | DeValue::Float(_) = value.get_ref() {
            self.error(
                value.span(),
                path,
                "a duration needs a unit and quotes, e.g. \"30s\"".to_string(),
            );
            return None;
        }
        let text = self.string(value, path)?;
        match parse_duration(&text) {
            Ok(duration) if duration.is_zero() => {
                self.error(value.span(), path, "must be greater than zero".to_string());
                None
            }
            Ok(duration) => Some(duration),
            Err(error) => {
                self.error(value.span(), path, error.to_string());
                None
            }
        }
    }

    fn unknown_keys(&mut self, table: &DeTable<'_>, path: &str, allowed: &[&str]) {
        for (key, _) in table.iter() {
            let name = key.get_ref().as_ref();
            if allowed.contains(&name) {
                continue;
            }
            let full = if path.is_empty() {
                name.to_string()
            } else {
                format!("{path}.{name}")
            };
            let hint = match closest(name, allowed) {
                Some(near) => format!(" (did you mean `{near}`?)"),
                None => String::new(),
            };
            self.error(
                key.span(),
                &full,
                format!(
                    "unknown key `{name}`{hint}; expected one of: {}",
                    allowed.join(", ")
                ),
            );
        }
    }
}

fn get<'t, 'i>(
    table: &'t DeTable<'i>,
    key: &str,
) -> Option<(&'t Spanned<std::borrow::Cow<'i, str>>, &'t Value<'i>)> {
    table
        .iter()
        .find(|(name, _)| name.get_ref().as_ref() == key)
}

fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 100
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '/'))
}

/// Replaces `${VAR}` and `${VAR:-default}`; `$${` stands for a literal `${`.
pub(crate) fn interpolate(text: &str, env: EnvLookup<'_>) -> Result<String, String> {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(start) = rest.find('$') {
        out.push_str(&rest[..start]);
        let after = &rest[start..];
        if let Some(tail) = after.strip_prefix("$${") {
            out.push_str("${");
            rest = tail;
            continue;
        }
        let Some(body_and_tail) = after.strip_prefix("${") else {
            out.push('$');
            rest = &after[1..];
            continue;
        };
        let Some(end) = body_and_tail.find('}') else {
            return Err("unterminated `${`: write `${VAR}`, or `$${` for a literal".to_string());
        };
        let body = &body_and_tail[..end];
        let (name, default) = match body.split_once(":-") {
            Some((name, default)) => (name, Some(default)),
            None => (body, None),
        };
        if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
            return Err(format!("`${{{body}}}` is not a valid variable reference"));
        }
        match (env(name), default) {
            (Some(value), _) => out.push_str(&value),
            (None, Some(default)) => out.push_str(default),
            (None, None) => {
                return Err(format!(
                    "environment variable `{name}` is not set (write `${{{name}:-default}}` to allow that)"
                ));
            }
        }
        rest = &body_and_tail[end + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

/// 1-based line and character column of a byte offset.
fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let offset = offset.min(text.len());
    let before = text.get(..offset).unwrap_or(text);
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map(|i| i + 1).unwrap_or(0);
    let col = before
        .get(line_start..)
        .map(|s| s.chars().count())
        .unwrap_or(0)
        + 1;
    (line, col)
}

/// The allowed key nearest to a misspelt one, if it is close.
fn closest<'a>(name: &str, allowed: &[&'a str]) -> Option<&'a str> {
    allowed
        .iter()
        .map(|candidate| (edit_distance(name, candidate), *candidate))
        .filter(|(distance, candidate)| *distance <= 2.max(candidate.len() / 3))
        .min_by_key(|(distance, _)| *distance)
        .map(|(_, candidate)| candidate)
}

fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut previous: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut current = vec![i + 1];
        for (j, cb) in b.iter().enumerate() {
            let substitution = previous[j] + usize::from(ca != *cb);
            current.push(substitution.min(previous[j + 1] + 1).min(current[j] + 1));
        }
        previous = current;
    }
    previous.last().copied().unwrap_or(0)
}
