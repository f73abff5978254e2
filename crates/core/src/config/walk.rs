//! Walks the spanned TOML tree, interpolates `${ENV}` and collects every validation error.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::ops::Range;
use std::path::PathBuf;
use std::time::Duration;

use toml::Spanned;
use toml::de::{DeTable, DeValue};

use super::{
    CheckConfig, CheckKind, Config, ConfigError, ConfigErrors, DEFAULT_TIMEOUT, ExecCheck,
    HubConfig, Overlap, Schedule,
};
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

const TOP_KEYS: &[&str] = &["hub", "check"];
const HUB_KEYS: &[&str] = &["listen", "data"];
const CHECK_COMMON_KEYS: &[&str] = &[
    "name", "kind", "every", "cron", "timezone", "timeout", "overlap", "labels",
];
const EXEC_KEYS: &[&str] = &["command", "env", "cwd", "clean_env"];
const KINDS: &[&str] = &["exec", "noop"];

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
            _ => &[],
        };
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
        let kind = match kind_name.as_deref() {
            Some("exec") => self.exec(table, span, path).map(CheckKind::Exec),
            Some("noop") => Some(CheckKind::Noop),
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
            (None, Some((_, cron_value))) => {
                let expr = self.string(cron_value, &format!("{path}.cron"))?;
                let timezone = match timezone {
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
        let clean_env = match get(table, "clean_env") {
            Some((_, value)) => match value.get_ref() {
                DeValue::Boolean(flag) => Some(*flag),
                other => {
                    self.error(
                        value.span(),
                        &format!("{path}.clean_env"),
                        format!("expected true or false, found {}", other.type_str()),
                    );
                    None
                }
            },
            None => Some(false),
        };
        Some(ExecCheck {
            command: command?,
            env: env?,
            cwd: cwd?,
            clean_env: clean_env?,
        })
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
