//! Small pure pieces of alerting shared by config validation and the hub's alerter: name
//! globs, series expressions (`host.cpu.total > 90`), message templates (`{{check}}`), the
//! `N of M` window and `N/5m` rate limits.

use std::fmt;
use std::time::Duration;

use crate::duration::parse_duration;

/// The placeholders a message or webhook body template may use.
pub const TEMPLATE_PLACEHOLDERS: &[&str] = &[
    "check", "status", "summary", "value", "since", "url", "rule", "severity", "incident", "event",
    "state",
];

/// `*` matches any run of characters (also none), `?` exactly one; everything else literally.
pub fn glob_match(glob: &str, text: &str) -> bool {
    let pattern: Vec<char> = glob.chars().collect();
    let text: Vec<char> = text.chars().collect();
    let (mut p, mut t) = (0, 0);
    // Where the last `*` was, and the text position it is currently standing for.
    let mut star: Option<(usize, usize)> = None;
    while t < text.len() {
        match pattern.get(p) {
            Some('*') => {
                star = Some((p, t));
                p += 1;
            }
            Some('?') => {
                p += 1;
                t += 1;
            }
            Some(c) if *c == text[t] => {
                p += 1;
                t += 1;
            }
            _ => match star {
                Some((star_p, star_t)) => {
                    p = star_p + 1;
                    t = star_t + 1;
                    star = Some((star_p, star_t + 1));
                }
                None => return false,
            },
        }
    }
    pattern[p..].iter().all(|c| *c == '*')
}

/// A comparison in a series rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CompareOp {
    Gt,
    Ge,
    Lt,
    Le,
    Eq,
    Ne,
}

impl CompareOp {
    pub fn as_str(self) -> &'static str {
        match self {
            CompareOp::Gt => ">",
            CompareOp::Ge => ">=",
            CompareOp::Lt => "<",
            CompareOp::Le => "<=",
            CompareOp::Eq => "==",
            CompareOp::Ne => "!=",
        }
    }

    pub fn holds(self, left: f64, right: f64) -> bool {
        match self {
            CompareOp::Gt => left > right,
            CompareOp::Ge => left >= right,
            CompareOp::Lt => left < right,
            CompareOp::Le => left <= right,
            CompareOp::Eq => left == right,
            CompareOp::Ne => left != right,
        }
    }
}

/// `SERIES OP NUMBER`, e.g. `host.cpu.total > 90`; the series may be a glob (`disk.*`).
#[derive(Debug, Clone, PartialEq)]
pub struct SeriesExpr {
    pub series: String,
    pub op: CompareOp,
    pub threshold: f64,
}

impl SeriesExpr {
    pub fn parse(text: &str) -> Result<SeriesExpr, String> {
        let parts: Vec<&str> = text.split_whitespace().collect();
        let [series, op, number] = parts.as_slice() else {
            return Err(format!(
                "`{text}` is not a series expression: expected `SERIES OP NUMBER` with spaces, e.g. `host.cpu.total > 90`"
            ));
        };
        let op = match *op {
            ">" => CompareOp::Gt,
            ">=" => CompareOp::Ge,
            "<" => CompareOp::Lt,
            "<=" => CompareOp::Le,
            "==" => CompareOp::Eq,
            "!=" => CompareOp::Ne,
            other => {
                return Err(format!(
                    "unknown operator `{other}`: expected one of >, >=, <, <=, ==, !="
                ));
            }
        };
        let valid_series = series
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-' | '/' | '*' | '?'));
        if !valid_series {
            return Err(format!(
                "`{series}` is not a series name: use letters, digits, `.`, `_`, `-`, `/` and globs `*`, `?`"
            ));
        }
        let threshold = number
            .parse::<f64>()
            .ok()
            .filter(|n| n.is_finite())
            .ok_or_else(|| format!("`{number}` is not a number"))?;
        Ok(SeriesExpr {
            series: (*series).to_string(),
            op,
            threshold,
        })
    }

    pub fn holds(&self, value: f64) -> bool {
        self.op.holds(value, self.threshold)
    }
}

impl fmt::Display for SeriesExpr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {} {}", self.series, self.op.as_str(), self.threshold)
    }
}

/// Checks a template's `{{placeholder}}`s; the error names the first unknown or unclosed one.
pub fn validate_template(template: &str) -> Result<(), String> {
    let mut rest = template;
    while let Some(start) = rest.find("{{") {
        let after = &rest[start + 2..];
        let Some(end) = after.find("}}") else {
            return Err("unclosed `{{`: placeholders look like `{{check}}`".to_string());
        };
        let name = after[..end].trim();
        if !TEMPLATE_PLACEHOLDERS.contains(&name) {
            return Err(format!(
                "unknown placeholder `{{{{{name}}}}}`; expected one of: {}",
                TEMPLATE_PLACEHOLDERS.join(", ")
            ));
        }
        rest = &after[end + 2..];
    }
    Ok(())
}

/// Replaces each `{{name}}` by `lookup(name)` passed through `escape`; unknown names become
/// empty text.
pub fn render_template(
    template: &str,
    lookup: &dyn Fn(&str) -> Option<String>,
    escape: &dyn Fn(&str) -> String,
) -> String {
    let mut out = String::with_capacity(template.len() + 64);
    let mut rest = template;
    while let Some(start) = rest.find("{{") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let Some(end) = after.find("}}") else {
            out.push_str(&rest[start..]);
            return out;
        };
        if let Some(value) = lookup(after[..end].trim()) {
            out.push_str(&escape(&value));
        }
        rest = &after[end + 2..];
    }
    out.push_str(rest);
    out
}

/// `N of M` (flap damping): 1 <= N <= M <= 100.
pub fn parse_window(text: &str) -> Result<(u32, u32), String> {
    let malformed = || format!("`{text}` is not a window: expected `N of M`, e.g. `3 of 5`");
    let (failures, runs) = text.split_once(" of ").ok_or_else(malformed)?;
    let failures: u32 = failures.trim().parse().map_err(|_| malformed())?;
    let runs: u32 = runs.trim().parse().map_err(|_| malformed())?;
    if failures == 0 || failures > runs || runs > 100 {
        return Err(format!("`{text}`: need 1 <= N <= M <= 100 in `N of M`"));
    }
    Ok((failures, runs))
}

/// `N/DURATION`, e.g. `10/1m`: at most N in any DURATION.
pub fn parse_rate(text: &str) -> Result<(u32, Duration), String> {
    let malformed = || format!("`{text}` is not a rate: expected `COUNT/DURATION`, e.g. `10/1m`");
    let (count, per) = text.split_once('/').ok_or_else(malformed)?;
    let count: u32 = count.trim().parse().map_err(|_| malformed())?;
    let per = parse_duration(per).map_err(|error| error.to_string())?;
    if count == 0 || per.is_zero() {
        return Err(format!(
            "`{text}`: the count and the duration must be above zero"
        ));
    }
    Ok((count, per))
}
