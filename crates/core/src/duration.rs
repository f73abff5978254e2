//! Human durations as written in config and on the command line: `250ms`, `30s`, `5m`, `1h30m`, `2d`.

use std::fmt;
use std::time::Duration;

/// Why a duration did not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DurationError {
    #[error("empty duration")]
    Empty,
    #[error(
        "`{0}` is not a duration: expected a number followed by a unit (ms, s, m, h, d, w), e.g. `30s` or `1h30m`"
    )]
    Malformed(String),
    #[error("`{text}` has an unknown unit `{unit}`: use ms, s, m, h, d or w")]
    UnknownUnit { text: String, unit: String },
    #[error("`{0}` is too long")]
    Overflow(String),
}

/// Parses `250ms`, `30s`, `5m`, `1h30m`, `2d`, `1w`. Parts must be whole numbers; a bare
/// number without unit is rejected so `timeout = 30` cannot silently mean 30 ms or 30 s.
pub fn parse_duration(text: &str) -> Result<Duration, DurationError> {
    let trimmed = text.trim();
    if trimmed.is_empty() {
        return Err(DurationError::Empty);
    }
    let mut total_ms: u64 = 0;
    let mut rest = trimmed;
    while !rest.is_empty() {
        let digits_end = rest
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(rest.len());
        if digits_end == 0 {
            return Err(DurationError::Malformed(trimmed.to_string()));
        }
        let (digits, after_digits) = rest.split_at(digits_end);
        let unit_end = after_digits
            .find(|c: char| c.is_ascii_digit())
            .unwrap_or(after_digits.len());
        let (unit, after_unit) = after_digits.split_at(unit_end);
        let number: u64 = digits
            .parse()
            .map_err(|_| DurationError::Overflow(trimmed.to_string()))?;
        let unit_ms: u64 = match unit {
            "ms" => 1,
            "s" => 1_000,
            "m" => 60_000,
            "h" => 3_600_000,
            "d" => 86_400_000,
            "w" => 604_800_000,
            "" => return Err(DurationError::Malformed(trimmed.to_string())),
            other => {
                return Err(DurationError::UnknownUnit {
                    text: trimmed.to_string(),
                    unit: other.to_string(),
                });
            }
        };
        let part = number
            .checked_mul(unit_ms)
            .ok_or_else(|| DurationError::Overflow(trimmed.to_string()))?;
        total_ms = total_ms
            .checked_add(part)
            .ok_or_else(|| DurationError::Overflow(trimmed.to_string()))?;
        rest = after_unit;
    }
    Ok(Duration::from_millis(total_ms))
}

/// Displays a duration the way config writes it (`1h30m`, `250ms`, `0s`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HumanDuration(pub Duration);

impl fmt::Display for HumanDuration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut ms = self.0.as_millis();
        if ms == 0 {
            return f.write_str("0s");
        }
        for (unit, size) in [
            ("d", 86_400_000u128),
            ("h", 3_600_000),
            ("m", 60_000),
            ("s", 1_000),
            ("ms", 1),
        ] {
            if ms >= size {
                write!(f, "{}{unit}", ms / size)?;
                ms %= size;
            }
        }
        Ok(())
    }
}
