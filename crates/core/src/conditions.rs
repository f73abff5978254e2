//! Gatus-style conditions (`[STATUS] == 200`, `[BODY].data[0].id == 7`, `len([BODY]) > 0`, ...)
//! that judge a probe's result. Parsing happens when the config is read (a bad condition is a
//! config error); evaluation runs against the [`Facts`] a probe observed.
//!
//! The syntax and semantics follow Gatus's documentation so that condition lists pasted from a
//! Gatus config keep working:
//!
//! - a condition is `<left> <operator> <right>`; the operator (`==`, `!=`, `<=`, `>=`, `>`,
//!   `<`, looked for in that order) needs a space on each side;
//! - `==` and `!=` compare as integers when both sides parse as Go integers (`0x1F`, `1_000`),
//!   else as strings; `pat(glob)` and `any(a, b)` work with them only;
//! - `<`, `<=`, `>`, `>=` compare numbers: Go durations (`48h`, `1h30m`) count as milliseconds,
//!   integers and floats as themselves, and any other observed text as `0` (as Gatus does);
//! - `len(...)` is the element count of a JSON array, else the length in characters of the text
//!   (minified JSON for objects); `has(...)` says whether a JSON path exists (and is not null).
//!
//! Where warden is stricter than Gatus it fails at parse time rather than silently comparing
//! something meaningless: unknown placeholders, unbalanced brackets, a non-numeric literal
//! next to `<`, or `7d` (Go durations have no days).

use std::borrow::Cow;
use std::cell::OnceCell;
use std::cmp::Ordering;
use std::fmt;
use std::time::Duration;

use serde_json::Value;

/// What a probe observed, as the placeholders conditions refer to.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Facts {
    /// `[STATUS]`: the HTTP status code.
    pub status: Option<u16>,
    /// `[RESPONSE_TIME]`: milliseconds, as Gatus compares it (`[RESPONSE_TIME] < 500`).
    pub response_time: Option<Duration>,
    /// `[BODY]`: the response body (HTTP), or what a TCP probe received.
    pub body: Option<String>,
    /// `[CONNECTED]`: whether a connection was made (or, for ICMP, any reply came back).
    pub connected: bool,
    /// `[IP]`: the address the probe talked to.
    pub ip: Option<String>,
    /// `[DNS_RCODE]`: the DNS response code by name (`NOERROR`, `NXDOMAIN`, `SERVFAIL`, ...).
    pub dns_rcode: Option<String>,
    /// `[CERTIFICATE_EXPIRATION]`: time left until the leaf certificate's notAfter, in
    /// milliseconds; negative when it has already expired.
    pub certificate_expiration_ms: Option<i64>,
}

/// A placeholder a condition can refer to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Placeholder {
    /// `[STATUS]`
    Status,
    /// `[RESPONSE_TIME]`
    ResponseTime,
    /// `[BODY]`, with or without a JSON path
    Body,
    /// `[CONNECTED]`
    Connected,
    /// `[IP]`
    Ip,
    /// `[DNS_RCODE]`
    DnsRcode,
    /// `[CERTIFICATE_EXPIRATION]`
    CertificateExpiration,
}

impl Placeholder {
    /// The placeholder as written in a condition, e.g. `[STATUS]`.
    pub fn as_str(self) -> &'static str {
        match self {
            Placeholder::Status => "[STATUS]",
            Placeholder::ResponseTime => "[RESPONSE_TIME]",
            Placeholder::Body => "[BODY]",
            Placeholder::Connected => "[CONNECTED]",
            Placeholder::Ip => "[IP]",
            Placeholder::DnsRcode => "[DNS_RCODE]",
            Placeholder::CertificateExpiration => "[CERTIFICATE_EXPIRATION]",
        }
    }
}

impl fmt::Display for Placeholder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why a condition did not parse: a one-line message and where in the condition it applies.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{message}{}", at_column(.column))]
pub struct ConditionError {
    pub message: String,
    /// 1-based character column in the condition, 0 when the problem has no single place.
    pub column: usize,
}

fn at_column(column: &usize) -> String {
    if *column == 0 {
        String::new()
    } else {
        format!(" (column {column})")
    }
}

/// The outcome of evaluating one condition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Evaluation {
    pub ok: bool,
    /// The condition with observed values substituted, e.g. `[STATUS] (503) == 200`.
    pub shown: String,
}

/// One parsed condition.
#[derive(Debug, Clone, PartialEq)]
pub struct Condition {
    text: String,
    left: Operand,
    operator: Operator,
    right: Operand,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Operator {
    Equal,
    NotEqual,
    Less,
    LessOrEqual,
    Greater,
    GreaterOrEqual,
}

impl Operator {
    fn as_str(self) -> &'static str {
        match self {
            Operator::Equal => "==",
            Operator::NotEqual => "!=",
            Operator::Less => "<",
            Operator::LessOrEqual => "<=",
            Operator::Greater => ">",
            Operator::GreaterOrEqual => ">=",
        }
    }

    fn is_ordering(self) -> bool {
        !matches!(self, Operator::Equal | Operator::NotEqual)
    }
}

/// Gatus looks for the operators in this order, so `a == b < c` compares `a` with `b < c`.
const OPERATORS: [Operator; 6] = [
    Operator::Equal,
    Operator::NotEqual,
    Operator::LessOrEqual,
    Operator::GreaterOrEqual,
    Operator::Greater,
    Operator::Less,
];

/// One side of a condition; `text` is the side as written (trimmed).
#[derive(Debug, Clone, PartialEq)]
enum Operand {
    Literal {
        text: String,
    },
    Value {
        text: String,
        function: Option<Function>,
        source: Source,
    },
    Pattern {
        text: String,
        glob: Glob,
    },
    Any {
        text: String,
        options: Vec<String>,
    },
}

impl Operand {
    fn text(&self) -> &str {
        match self {
            Operand::Literal { text }
            | Operand::Value { text, .. }
            | Operand::Pattern { text, .. }
            | Operand::Any { text, .. } => text,
        }
    }

    fn function_name(&self) -> Option<&'static str> {
        match self {
            Operand::Pattern { .. } => Some("pat()"),
            Operand::Any { .. } => Some("any()"),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Function {
    Len,
    Has,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Source {
    Status,
    ResponseTime,
    /// The body; an empty path is the whole body as text.
    Body(Vec<PathSegment>),
    Connected,
    Ip,
    DnsRcode,
    CertificateExpiration,
}

impl Source {
    fn placeholder(&self) -> Placeholder {
        match self {
            Source::Status => Placeholder::Status,
            Source::ResponseTime => Placeholder::ResponseTime,
            Source::Body(_) => Placeholder::Body,
            Source::Connected => Placeholder::Connected,
            Source::Ip => Placeholder::Ip,
            Source::DnsRcode => Placeholder::DnsRcode,
            Source::CertificateExpiration => Placeholder::CertificateExpiration,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum PathSegment {
    Key(String),
    Index(usize),
}

impl Condition {
    /// Parses one condition; the error is a one-line message saying what is wrong and where
    /// (character column within the condition string is welcome), e.g. "unknown placeholder
    /// `[STATU]`".
    pub fn parse(text: &str) -> Result<Condition, ConditionError> {
        Parser { text }.condition()
    }

    /// The original text.
    pub fn text(&self) -> &str {
        &self.text
    }

    /// Placeholders this condition refers to (so callers know e.g. whether [CONNECTED] is used).
    pub fn uses(&self, placeholder: Placeholder) -> bool {
        [&self.left, &self.right].into_iter().any(|operand| {
            matches!(operand, Operand::Value { source, .. } if source.placeholder() == placeholder)
        })
    }

    pub fn evaluate(&self, facts: &Facts) -> Evaluation {
        self.evaluate_observed(&Observed::new(facts))
    }

    fn evaluate_observed(&self, observed: &Observed<'_>) -> Evaluation {
        let left = observed.resolve(&self.left);
        let right = observed.resolve(&self.right);
        let ok = match (&left, &right) {
            (Resolved::Missing(_), _) | (_, Resolved::Missing(_)) => false,
            (Resolved::Text(left_text), Resolved::Text(right_text)) => {
                self.compare(left_text, right_text)
            }
        };
        let shown = format!(
            "{} {} {}",
            show(&self.left, &left),
            self.operator.as_str(),
            show(&self.right, &right)
        );
        Evaluation { ok, shown }
    }

    fn compare(&self, left: &str, right: &str) -> bool {
        let ordering = || number_of(left).compare(number_of(right));
        match self.operator {
            Operator::Equal => equal(&self.left, left, &self.right, right),
            Operator::NotEqual => !equal(&self.left, left, &self.right, right),
            Operator::Less => ordering() == Some(Ordering::Less),
            Operator::LessOrEqual => {
                matches!(ordering(), Some(Ordering::Less | Ordering::Equal))
            }
            Operator::Greater => ordering() == Some(Ordering::Greater),
            Operator::GreaterOrEqual => {
                matches!(ordering(), Some(Ordering::Greater | Ordering::Equal))
            }
        }
    }
}

impl fmt::Display for Condition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

/// Evaluates all; returns the failed ones' `shown` texts in order (empty = all hold).
pub fn evaluate_all(conditions: &[Condition], facts: &Facts) -> Vec<String> {
    let observed = Observed::new(facts);
    conditions
        .iter()
        .map(|condition| condition.evaluate_observed(&observed))
        .filter(|evaluation| !evaluation.ok)
        .map(|evaluation| evaluation.shown)
        .collect()
}

// ---------------------------------------------------------------------------------------------
// Parsing

struct Parser<'t> {
    text: &'t str,
}

impl Parser<'_> {
    /// An error at `offset` (a byte offset into the condition), or with no column.
    fn error(&self, offset: Option<usize>, message: impl Into<String>) -> ConditionError {
        let column = offset
            .and_then(|offset| self.text.get(..offset))
            .map_or(0, |before| before.chars().count() + 1);
        ConditionError {
            message: message.into(),
            column,
        }
    }

    fn condition(&self) -> Result<Condition, ConditionError> {
        let text = self.text;
        if text.trim().is_empty() {
            return Err(self.error(None, "empty condition"));
        }
        let (operator, at) = self.find_operator()?;
        let symbol = operator.as_str();
        let right_start = at + symbol.len();
        let (left, left_at) = self.operand(0, text.get(..at).unwrap_or(""), at, || {
            format!("missing left-hand side before `{symbol}`")
        })?;
        let right_side = text.get(right_start..).unwrap_or("");
        let (right, right_at) = self.operand(right_start, right_side, at, || {
            format!("missing right-hand side after `{symbol}`")
        })?;

        let left_function = left.function_name();
        let right_function = right.function_name();
        if let (Some(_), Some(function)) = (left_function, right_function) {
            return Err(self.error(
                Some(right_at),
                format!("`{function}` can only be used on one side of a comparison"),
            ));
        }
        if operator.is_ordering() {
            for (operand, operand_at) in [(&left, left_at), (&right, right_at)] {
                if let Some(function) = operand.function_name() {
                    return Err(self.error(
                        Some(operand_at),
                        format!("`{function}` only works with `==` and `!=`, not `{symbol}`"),
                    ));
                }
                if let Operand::Literal { text } = operand
                    && let Some(message) = not_a_number_message(text, symbol)
                {
                    return Err(self.error(Some(operand_at), message));
                }
            }
        }
        Ok(Condition {
            text: text.to_string(),
            left,
            operator,
            right,
        })
    }

    /// Finds the operator Gatus would use and its byte offset.
    fn find_operator(&self) -> Result<(Operator, usize), ConditionError> {
        // Padding lets a condition that starts or ends with an operator be reported as missing
        // a side rather than as missing an operator.
        let padded = format!(" {} ", self.text);
        for operator in OPERATORS {
            let spaced = format!(" {} ", operator.as_str());
            let Some(found) = padded.find(&spaced) else {
                continue;
            };
            // `found` points at the space before the symbol in `padded`, which is the symbol's
            // offset in the unpadded text.
            let after = found + spaced.len() - 1;
            if let Some(again) = padded.get(after..).and_then(|rest| rest.find(&spaced)) {
                return Err(self.error(
                    Some(after + again),
                    format!("more than one `{}` in the condition", operator.as_str()),
                ));
            }
            return Ok((operator, found));
        }
        for operator in OPERATORS {
            if let Some(found) = self.text.find(operator.as_str()) {
                return Err(self.error(
                    Some(found),
                    format!(
                        "operator `{}` needs a space on each side",
                        operator.as_str()
                    ),
                ));
            }
        }
        Err(self.error(
            None,
            "missing operator: expected `==`, `!=`, `<`, `<=`, `>` or `>=` with a space on each side",
        ))
    }

    /// Parses one side, which starts at byte `start`; an empty side is reported at the
    /// operator. Also returns where the trimmed side starts.
    fn operand(
        &self,
        start: usize,
        side: &str,
        operator_at: usize,
        empty_message: impl FnOnce() -> String,
    ) -> Result<(Operand, usize), ConditionError> {
        let trimmed_front = side.trim_start();
        let at = start + (side.len() - trimmed_front.len());
        let text = trimmed_front.trim_end();
        if text.is_empty() {
            return Err(self.error(Some(operator_at), empty_message()));
        }
        self.operand_text(text, at).map(|operand| (operand, at))
    }

    fn operand_text(&self, text: &str, at: usize) -> Result<Operand, ConditionError> {
        for (prefix, function) in [("len(", Function::Len), ("has(", Function::Has)] {
            if let Some(rest) = text.strip_prefix(prefix) {
                let name = &prefix[..3];
                let inner_at = at + prefix.len();
                let close = matching_parenthesis(rest).ok_or_else(|| {
                    self.error(Some(inner_at - 1), format!("unclosed `(` after `{name}`"))
                })?;
                let inner = rest[..close].trim();
                let after = &rest[close + 1..];
                let after_trimmed = after.trim_start();
                if !after_trimmed.is_empty() {
                    let after_at = inner_at + close + 1 + (after.len() - after_trimmed.len());
                    return Err(self.error(
                        Some(after_at),
                        format!("unexpected `{after_trimmed}` after `{name}(...)`"),
                    ));
                }
                let inner_at = inner_at + (rest.len() - rest.trim_start().len());
                if inner.is_empty() {
                    return Err(self.error(
                        Some(at),
                        format!("`{name}()` needs a placeholder, e.g. `{name}([BODY].data)`"),
                    ));
                }
                if !starts_placeholder(inner) {
                    return Err(self.error(
                        Some(inner_at),
                        format!(
                            "`{name}()` takes a placeholder, e.g. `{name}([BODY].data)`, not `{inner}`"
                        ),
                    ));
                }
                let source = self.placeholder(inner, inner_at)?;
                return Ok(Operand::Value {
                    text: text.to_string(),
                    function: Some(function),
                    source,
                });
            }
        }
        if let Some(rest) = text.strip_prefix("pat(") {
            let Some(inner) = rest.strip_suffix(')') else {
                return Err(self.error(Some(at + 3), "unclosed `(` after `pat`"));
            };
            // Gatus drops path separators from both the pattern and the value before matching.
            let glob = Glob::compile(&inner.replace('/', "")).map_err(|reason| {
                self.error(Some(at), format!("invalid pattern in `pat()`: {reason}"))
            })?;
            return Ok(Operand::Pattern {
                text: text.to_string(),
                glob,
            });
        }
        if let Some(rest) = text.strip_prefix("any(") {
            let Some(inner) = rest.strip_suffix(')') else {
                return Err(self.error(Some(at + 3), "unclosed `(` after `any`"));
            };
            if inner.trim().is_empty() {
                return Err(self.error(Some(at), "`any()` needs at least one value"));
            }
            let options = inner
                .split(',')
                .map(|option| option.trim().to_string())
                .collect();
            return Ok(Operand::Any {
                text: text.to_string(),
                options,
            });
        }
        if starts_placeholder(text) {
            let source = self.placeholder(text, at)?;
            return Ok(Operand::Value {
                text: text.to_string(),
                function: None,
                source,
            });
        }
        self.check_balanced(text, at)?;
        Ok(Operand::Literal {
            text: text.to_string(),
        })
    }

    /// Parses `[NAME]` plus, for `[BODY]`, a JSON path.
    fn placeholder(&self, text: &str, at: usize) -> Result<Source, ConditionError> {
        let Some(close) = text.find(']') else {
            return Err(self.error(Some(at), "unclosed `[`"));
        };
        let name = &text[..=close];
        let rest = &text[close + 1..];
        let rest_at = at + close + 1;
        let source = match name.to_ascii_uppercase().as_str() {
            "[STATUS]" => Source::Status,
            "[RESPONSE_TIME]" => Source::ResponseTime,
            "[BODY]" => return self.json_path(rest, rest_at).map(Source::Body),
            "[CONNECTED]" => Source::Connected,
            "[IP]" => Source::Ip,
            "[DNS_RCODE]" => Source::DnsRcode,
            "[CERTIFICATE_EXPIRATION]" => Source::CertificateExpiration,
            "[DOMAIN_EXPIRATION]" => {
                return Err(self.error(Some(at), "[DOMAIN_EXPIRATION] is not supported"));
            }
            "[CONTEXT]" => {
                return Err(self.error(
                    Some(at),
                    "[CONTEXT] is not supported (it only exists in Gatus suites)",
                ));
            }
            _ => return Err(self.error(Some(at), format!("unknown placeholder `{name}`"))),
        };
        if !rest.is_empty() {
            return Err(self.error(
                Some(rest_at),
                format!("unexpected `{rest}` after `{name}` (only [BODY] takes a JSON path)"),
            ));
        }
        Ok(source)
    }

    /// Parses `.key`, `[index]` segments (`.data[0].id`, `[0]`, `.a[1][2]`).
    fn json_path(&self, path: &str, at: usize) -> Result<Vec<PathSegment>, ConditionError> {
        let mut segments = Vec::new();
        let mut position = 0;
        while position < path.len() {
            let rest = &path[position..];
            if let Some(key_and_more) = rest.strip_prefix('.') {
                let key_end = key_and_more
                    .find(['.', '[', ']'])
                    .unwrap_or(key_and_more.len());
                let key = &key_and_more[..key_end];
                if key.is_empty() {
                    return Err(self.error(Some(at + position), "empty key in JSON path"));
                }
                segments.push(PathSegment::Key(key.to_string()));
                position += 1 + key_end;
            } else if let Some(index_and_more) = rest.strip_prefix('[') {
                let Some(close) = index_and_more.find(']') else {
                    return Err(self.error(Some(at + position), "unclosed `[` in JSON path"));
                };
                let index = &index_and_more[..close];
                let parsed = if index.bytes().all(|byte| byte.is_ascii_digit()) {
                    index.parse::<usize>().ok()
                } else {
                    None
                };
                let Some(parsed) = parsed else {
                    return Err(self.error(
                        Some(at + position + 1),
                        format!("invalid array index `{index}`: expected a number such as `0`"),
                    ));
                };
                segments.push(PathSegment::Index(parsed));
                position += close + 2;
            } else if rest.starts_with(']') {
                return Err(self.error(Some(at + position), "unexpected `]` in JSON path"));
            } else {
                let after = if position == 0 {
                    "after `[BODY]`"
                } else {
                    "in JSON path"
                };
                return Err(self.error(
                    Some(at + position),
                    format!("unexpected `{rest}` {after}: path segments start with `.` or `[`"),
                ));
            }
        }
        Ok(segments)
    }

    /// A literal may contain brackets and parentheses only in balanced pairs: an unbalanced one
    /// is almost always a mistyped placeholder or function.
    fn check_balanced(&self, text: &str, at: usize) -> Result<(), ConditionError> {
        let mut open: Vec<(char, usize)> = Vec::new();
        for (offset, character) in text.char_indices() {
            match character {
                '(' | '[' => open.push((character, offset)),
                ')' | ']' => {
                    let expected = if character == ')' { '(' } else { '[' };
                    match open.pop() {
                        Some((opener, _)) if opener == expected => {}
                        _ => {
                            return Err(
                                self.error(Some(at + offset), format!("unbalanced `{character}`"))
                            );
                        }
                    }
                }
                _ => {}
            }
        }
        match open.pop() {
            Some((opener, offset)) => {
                Err(self.error(Some(at + offset), format!("unclosed `{opener}`")))
            }
            None => Ok(()),
        }
    }
}

/// Whether `text` is meant as a placeholder: `[` then a letter or `_` (so `[]` and `[1,2]` stay
/// literals).
fn starts_placeholder(text: &str) -> bool {
    let mut characters = text.chars();
    characters.next() == Some('[')
        && characters
            .next()
            .is_some_and(|character| character.is_ascii_alphabetic() || character == '_')
}

/// The byte offset of the `)` closing an already opened `(`, counting nested pairs.
fn matching_parenthesis(text: &str) -> Option<usize> {
    let mut depth = 0usize;
    for (offset, character) in text.char_indices() {
        match character {
            '(' => depth += 1,
            ')' if depth == 0 => return Some(offset),
            ')' => depth -= 1,
            _ => {}
        }
    }
    None
}

/// Why a literal cannot be one side of `<`, `<=`, `>`, `>=`, if it cannot.
fn not_a_number_message(text: &str, symbol: &str) -> Option<String> {
    if numeric_literal(text).is_some() {
        return None;
    }
    if let Some(days) = text
        .strip_suffix('d')
        .and_then(|days| days.parse::<u64>().ok())
    {
        let hours = days.saturating_mul(24);
        return Some(format!(
            "`{text}` is not a valid duration: Go durations have no days, write `{hours}h`"
        ));
    }
    Some(format!(
        "`{text}` next to `{symbol}` must be a number or a duration such as `500`, `48h` or `1h30m`"
    ))
}

// ---------------------------------------------------------------------------------------------
// Evaluation

/// The facts plus the body parsed as JSON, lazily and at most once.
struct Observed<'f> {
    facts: &'f Facts,
    json: OnceCell<Result<Value, &'static str>>,
}

/// A resolved side: its text, or why it has none (shown in parentheses; the condition fails).
enum Resolved<'a> {
    Text(Cow<'a, str>),
    Missing(&'static str),
}

const NO_BODY: &str = "no body";
const NOT_JSON: &str = "body is not JSON";
const MISSING: &str = "missing";
const NULL: &str = "null";

impl<'f> Observed<'f> {
    fn new(facts: &'f Facts) -> Self {
        Observed {
            facts,
            json: OnceCell::new(),
        }
    }

    fn body(&self) -> &'f str {
        self.facts.body.as_deref().unwrap_or("").trim()
    }

    fn json(&self) -> Result<&Value, &'static str> {
        self.json
            .get_or_init(|| {
                let body = self.body();
                if body.is_empty() {
                    return Err(NO_BODY);
                }
                serde_json::from_str(body).map_err(|_| NOT_JSON)
            })
            .as_ref()
            .map_err(|reason| *reason)
    }

    fn resolve<'s>(&'s self, operand: &'s Operand) -> Resolved<'s> {
        let (function, source) = match operand {
            Operand::Value {
                function, source, ..
            } => (*function, source),
            other => return Resolved::Text(Cow::Borrowed(other.text())),
        };
        if let Source::Body(path) = source {
            return self.resolve_body(function, path);
        }
        let facts = self.facts;
        let text: Cow<'s, str> = match source {
            Source::Status => Cow::Owned(facts.status.unwrap_or(0).to_string()),
            Source::ResponseTime => Cow::Owned(
                facts
                    .response_time
                    .map_or(0, |elapsed| elapsed.as_millis())
                    .to_string(),
            ),
            Source::Connected => Cow::Borrowed(if facts.connected { "true" } else { "false" }),
            Source::Ip => Cow::Borrowed(facts.ip.as_deref().unwrap_or("")),
            Source::DnsRcode => Cow::Borrowed(facts.dns_rcode.as_deref().unwrap_or("")),
            Source::CertificateExpiration => {
                Cow::Owned(facts.certificate_expiration_ms.unwrap_or(0).to_string())
            }
            Source::Body(_) => Cow::Borrowed(""),
        };
        Resolved::Text(match function {
            None => text,
            Some(Function::Len) => Cow::Owned(text.chars().count().to_string()),
            Some(Function::Has) => Cow::Borrowed(bool_text(!text.is_empty())),
        })
    }

    fn resolve_body(&self, function: Option<Function>, path: &[PathSegment]) -> Resolved<'_> {
        if path.is_empty() {
            let body = self.body();
            return Resolved::Text(match function {
                None => Cow::Borrowed(body),
                Some(Function::Has) => Cow::Borrowed(bool_text(!body.is_empty())),
                Some(Function::Len) => {
                    let length = match self.json() {
                        Ok(Value::Array(items)) => items.len(),
                        _ => body.chars().count(),
                    };
                    Cow::Owned(length.to_string())
                }
            });
        }
        let found = self.json().and_then(|root| walk(root, path).ok_or(MISSING));
        match (function, found) {
            (Some(Function::Has), found) => {
                let exists = matches!(found, Ok(value) if !value.is_null());
                Resolved::Text(Cow::Borrowed(bool_text(exists)))
            }
            (_, Err(reason)) => Resolved::Missing(reason),
            (Some(Function::Len), Ok(Value::Null)) => Resolved::Missing(NULL),
            (Some(Function::Len), Ok(value)) => {
                let length = match value {
                    Value::Array(items) => items.len(),
                    other => json_text(other).chars().count(),
                };
                Resolved::Text(Cow::Owned(length.to_string()))
            }
            (None, Ok(value)) => Resolved::Text(json_text(value)),
        }
    }
}

fn walk<'v>(root: &'v Value, path: &[PathSegment]) -> Option<&'v Value> {
    path.iter().try_fold(root, |value, segment| match segment {
        PathSegment::Key(key) => value.as_object()?.get(key),
        PathSegment::Index(index) => value.as_array()?.get(*index),
    })
}

fn bool_text(value: bool) -> &'static str {
    if value { "true" } else { "false" }
}

/// A JSON value as conditions compare it: strings bare, numbers without a useless `.0`,
/// objects and arrays as minified JSON.
fn json_text(value: &Value) -> Cow<'_, str> {
    match value {
        Value::String(text) => Cow::Borrowed(text),
        Value::Null => Cow::Borrowed("null"),
        Value::Bool(flag) => Cow::Borrowed(bool_text(*flag)),
        Value::Number(number) => Cow::Owned(match number.as_f64() {
            Some(float) if !number.is_i64() && !number.is_u64() => {
                if float.fract() == 0.0 && float.abs() < 1e21 {
                    format!("{float:.0}")
                } else {
                    format!("{float}")
                }
            }
            _ => number.to_string(),
        }),
        Value::Array(_) | Value::Object(_) => Cow::Owned(value.to_string()),
    }
}

/// `==` as Gatus does it: a pattern or any-of on one side, else integers when both sides are
/// integers, else exact text.
fn equal(left: &Operand, left_text: &str, right: &Operand, right_text: &str) -> bool {
    match (left, right) {
        (Operand::Pattern { glob, .. }, _) => glob.matches(&right_text.replace('/', "")),
        (_, Operand::Pattern { glob, .. }) => glob.matches(&left_text.replace('/', "")),
        (Operand::Any { options, .. }, _) => options
            .iter()
            .any(|option| equal_values(option, right_text)),
        (_, Operand::Any { options, .. }) => {
            options.iter().any(|option| equal_values(left_text, option))
        }
        _ => equal_values(left_text, right_text),
    }
}

fn equal_values(left: &str, right: &str) -> bool {
    match (go_int(left), go_int(right)) {
        (Some(left), Some(right)) => left == right,
        _ => left == right,
    }
}

/// A side of `<`, `<=`, `>`, `>=`.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Number {
    Int(i64),
    Float(f64),
}

impl Number {
    fn compare(self, other: Number) -> Option<Ordering> {
        match (self, other) {
            (Number::Int(left), Number::Int(right)) => Some(left.cmp(&right)),
            (left, right) => left.as_f64().partial_cmp(&right.as_f64()),
        }
    }

    fn as_f64(self) -> f64 {
        match self {
            Number::Int(value) => value as f64,
            Number::Float(value) => value,
        }
    }
}

/// A literal as a number, if it is one (durations in milliseconds).
fn numeric_literal(text: &str) -> Option<Number> {
    if let Some(nanos) = go_duration_nanos(text).filter(|nanos| *nanos != 0) {
        return Some(Number::Int(nanos / 1_000_000));
    }
    if let Some(value) = go_int(text) {
        return Some(Number::Int(value));
    }
    decimal_float(text).map(Number::Float)
}

/// An observed value as a number; text that is not one counts as 0, as in Gatus.
fn number_of(text: &str) -> Number {
    numeric_literal(text).unwrap_or(Number::Int(0))
}

/// A finite decimal float (`1.5`, `-2e3`); not `inf` or `NaN`.
fn decimal_float(text: &str) -> Option<f64> {
    let plausible = !text.is_empty()
        && text.bytes().any(|byte| byte.is_ascii_digit())
        && text
            .bytes()
            .all(|byte| byte.is_ascii_digit() || b"+-.eE".contains(&byte));
    if !plausible {
        return None;
    }
    text.parse::<f64>().ok().filter(|value| value.is_finite())
}

/// Integers as Go's `strconv.ParseInt(text, 0, 64)` reads them: optional sign, `0x`/`0o`/`0b`
/// prefixes, a leading `0` for octal, and `_` between digits.
fn go_int(text: &str) -> Option<i64> {
    let (negative, unsigned) = match text.as_bytes().first()? {
        b'-' => (true, &text[1..]),
        b'+' => (false, &text[1..]),
        _ => (false, text),
    };
    let lower = unsigned.to_ascii_lowercase();
    let (radix, digits, prefixed) = if unsigned.len() >= 3 && lower.starts_with("0x") {
        (16, &unsigned[2..], true)
    } else if unsigned.len() >= 3 && lower.starts_with("0o") {
        (8, &unsigned[2..], true)
    } else if unsigned.len() >= 3 && lower.starts_with("0b") {
        (2, &unsigned[2..], true)
    } else if unsigned.len() >= 2 && unsigned.starts_with('0') {
        (8, &unsigned[1..], true)
    } else {
        (10, unsigned, false)
    };
    if digits.is_empty() {
        return None;
    }
    if !underscores_ok(digits, prefixed) {
        return None;
    }
    let cleaned: String = digits
        .chars()
        .filter(|character| *character != '_')
        .collect();
    if cleaned.is_empty() || !cleaned.chars().all(|character| character.is_digit(radix)) {
        return None;
    }
    let magnitude = u64::from_str_radix(&cleaned, radix).ok()?;
    if negative {
        0i64.checked_sub_unsigned(magnitude)
    } else {
        i64::try_from(magnitude).ok()
    }
}

/// `_` may only sit between digits, or right after a base prefix.
fn underscores_ok(digits: &str, prefixed: bool) -> bool {
    let bytes = digits.as_bytes();
    bytes.iter().enumerate().all(|(index, byte)| {
        if *byte != b'_' {
            return true;
        }
        let before_ok = if index == 0 {
            prefixed
        } else {
            bytes[index - 1] != b'_'
        };
        let after_ok = bytes.get(index + 1).is_some_and(|next| *next != b'_');
        before_ok && after_ok
    })
}

/// A Go duration (`time.ParseDuration`): `300ms`, `-1.5h`, `2h45m`; units ns, us (µs, μs), ms,
/// s, m, h. In nanoseconds, `None` if malformed or out of range.
fn go_duration_nanos(text: &str) -> Option<i64> {
    let (negative, mut rest) = match text.as_bytes().first()? {
        b'-' => (true, &text[1..]),
        b'+' => (false, &text[1..]),
        _ => (false, text),
    };
    if rest == "0" {
        return Some(0);
    }
    if rest.is_empty() {
        return None;
    }
    let limit: u128 = 1 << 63;
    let mut total: u128 = 0;
    while !rest.is_empty() {
        let whole_end = rest
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(rest.len());
        let whole = &rest[..whole_end];
        rest = &rest[whole_end..];
        let mut fraction = "";
        if let Some(after_dot) = rest.strip_prefix('.') {
            let fraction_end = after_dot
                .find(|c: char| !c.is_ascii_digit())
                .unwrap_or(after_dot.len());
            fraction = &after_dot[..fraction_end];
            rest = &after_dot[fraction_end..];
        }
        if whole.is_empty() && fraction.is_empty() {
            return None;
        }
        let unit_end = rest
            .find(|c: char| c == '.' || c.is_ascii_digit())
            .unwrap_or(rest.len());
        let unit: u128 = match &rest[..unit_end] {
            "ns" => 1,
            "us" | "\u{b5}s" | "\u{3bc}s" => 1_000,
            "ms" => 1_000_000,
            "s" => 1_000_000_000,
            "m" => 60_000_000_000,
            "h" => 3_600_000_000_000,
            _ => return None,
        };
        rest = &rest[unit_end..];
        let whole_value: u128 = if whole.is_empty() {
            0
        } else {
            whole.parse().ok()?
        };
        let mut part = whole_value.checked_mul(unit)?;
        if !fraction.is_empty() {
            // Enough digits for nanosecond precision of an hour; the rest cannot matter.
            let kept = &fraction[..fraction.len().min(18)];
            let numerator: u128 = kept.parse().ok()?;
            let denominator = 10u128.pow(u32::try_from(kept.len()).ok()?);
            part = part.checked_add(numerator.checked_mul(unit)? / denominator)?;
        }
        total = total.checked_add(part)?;
        if total > limit {
            return None;
        }
    }
    if negative {
        i64::try_from(-(i128::try_from(total).ok()?)).ok()
    } else {
        i64::try_from(total).ok()
    }
}

/// Milliseconds as a short Go-style duration: `48h`, `1h30m`, `1h0m15s`, `45s`, `-2h`.
fn format_millis(millis: i64) -> String {
    let seconds = millis / 1_000;
    if seconds == 0 {
        return "0s".to_string();
    }
    let sign = if seconds < 0 { "-" } else { "" };
    let magnitude = seconds.unsigned_abs();
    let (hours, minutes, seconds) = (magnitude / 3_600, magnitude / 60 % 60, magnitude % 60);
    let mut text = sign.to_string();
    if hours > 0 {
        text.push_str(&format!("{hours}h"));
    }
    if minutes > 0 || (hours > 0 && seconds > 0) {
        text.push_str(&format!("{minutes}m"));
    }
    if seconds > 0 {
        text.push_str(&format!("{seconds}s"));
    }
    text
}

/// Longest substituted value shown, in characters.
const SHOWN_VALUE_LIMIT: usize = 60;

/// One side as shown in an evaluation: literals as written, placeholders followed by the value
/// in parentheses.
fn show(operand: &Operand, resolved: &Resolved<'_>) -> String {
    let Operand::Value {
        text,
        function,
        source,
    } = operand
    else {
        return operand.text().to_string();
    };
    let value = match resolved {
        Resolved::Missing(reason) => return format!("{text} ({reason})"),
        Resolved::Text(value) => value,
    };
    if *source == Source::CertificateExpiration
        && function.is_none()
        && let Ok(millis) = value.parse::<i64>()
    {
        return format!("{text} ({})", format_millis(millis));
    }
    format!("{text} ({})", shorten(value))
}

/// Caps `value` at [`SHOWN_VALUE_LIMIT`] characters and escapes control characters so the
/// shown condition stays on one short line.
fn shorten(value: &str) -> String {
    let mut shown = String::new();
    for (count, character) in value.chars().enumerate() {
        if count == SHOWN_VALUE_LIMIT {
            shown.push('…');
            break;
        }
        if character.is_control() {
            shown.extend(character.escape_default());
        } else {
            shown.push(character);
        }
    }
    shown
}

// ---------------------------------------------------------------------------------------------
// Patterns

/// A `pat()` glob, matched like Go's `filepath.Match` (which Gatus uses) once `/` is removed:
/// `*` any run of characters, `?` one character, `[a-z]`/`[^0-9]` classes, `\` escapes.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Glob {
    tokens: Vec<GlobToken>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum GlobToken {
    Literal(char),
    AnyOne,
    AnyRun,
    Class {
        negated: bool,
        ranges: Vec<(char, char)>,
    },
}

impl Glob {
    fn compile(pattern: &str) -> Result<Glob, String> {
        let mut tokens = Vec::new();
        let mut characters = pattern.chars().peekable();
        while let Some(character) = characters.next() {
            let token = match character {
                '*' => GlobToken::AnyRun,
                '?' => GlobToken::AnyOne,
                '\\' => GlobToken::Literal(
                    characters
                        .next()
                        .ok_or_else(|| "trailing `\\`".to_string())?,
                ),
                '[' => {
                    let negated = characters.next_if_eq(&'^').is_some();
                    let mut ranges = Vec::new();
                    loop {
                        match characters.next() {
                            None => return Err("unclosed `[`".to_string()),
                            Some(']') if !ranges.is_empty() => break,
                            Some(first) => {
                                let low = class_char(first, &mut characters)?;
                                let high = if characters.next_if_eq(&'-').is_some() {
                                    let next = characters
                                        .next()
                                        .ok_or_else(|| "unclosed `[`".to_string())?;
                                    class_char(next, &mut characters)?
                                } else {
                                    low
                                };
                                ranges.push((low, high));
                            }
                        }
                    }
                    GlobToken::Class { negated, ranges }
                }
                other => GlobToken::Literal(other),
            };
            tokens.push(token);
        }
        Ok(Glob { tokens })
    }

    fn matches(&self, text: &str) -> bool {
        let characters: Vec<char> = text.chars().collect();
        // Classic wildcard matching with one backtrack point for the last `*`: linear in
        // practice, O(n·m) at worst.
        let (mut token_index, mut char_index) = (0, 0);
        let mut backtrack: Option<(usize, usize)> = None;
        while char_index < characters.len() {
            match self.tokens.get(token_index) {
                Some(GlobToken::AnyRun) => {
                    backtrack = Some((token_index, char_index));
                    token_index += 1;
                    continue;
                }
                Some(token) if token.matches_one(characters[char_index]) => {
                    token_index += 1;
                    char_index += 1;
                    continue;
                }
                _ => {}
            }
            match backtrack {
                Some((star, start)) => {
                    token_index = star + 1;
                    char_index = start + 1;
                    backtrack = Some((star, start + 1));
                }
                None => return false,
            }
        }
        self.tokens[token_index.min(self.tokens.len())..]
            .iter()
            .all(|token| *token == GlobToken::AnyRun)
    }
}

impl GlobToken {
    fn matches_one(&self, character: char) -> bool {
        match self {
            GlobToken::Literal(expected) => *expected == character,
            GlobToken::AnyOne => true,
            GlobToken::AnyRun => false,
            GlobToken::Class { negated, ranges } => {
                let inside = ranges
                    .iter()
                    .any(|(low, high)| (*low..=*high).contains(&character));
                inside != *negated
            }
        }
    }
}

/// One character of a `[...]` class, after `\` escapes; `-` and `]` must be escaped.
fn class_char(
    character: char,
    rest: &mut std::iter::Peekable<std::str::Chars<'_>>,
) -> Result<char, String> {
    match character {
        '\\' => rest.next().ok_or_else(|| "trailing `\\`".to_string()),
        '-' | ']' => Err(format!("`{character}` must be escaped inside `[...]`")),
        other => Ok(other),
    }
}

#[cfg(test)]
mod tests;
