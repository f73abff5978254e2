//! Parses Nagios plugin output (summary, long text and performance data) for `exec` checks.
//!
//! The format is the Nagios plugin convention
//! (<https://nagios-plugins.org/doc/guidelines.html#AEN200>):
//!
//! ```text
//! SUMMARY | 'label'=value[UOM];[warn];[crit];[min];[max] ...
//! long text line
//! long text line | more perfdata
//! more perfdata
//! ```
//!
//! The input is untrusted, so nothing here panics: a malformed perfdata item is skipped and
//! reported as a [`PerfProblem`], and the items around it still parse.

use std::fmt;

#[cfg(test)]
mod tests;

/// Parsed plugin output.
#[derive(Debug, Clone, PartialEq)]
pub struct PluginOutput {
    /// Text before the first `|` on the first line, trimmed.
    pub summary: String,
    /// The lines after the first, with their perfdata parts removed, joined by `'\n'`.
    /// Trailing whitespace of each line and blank lines at the start and end are dropped.
    pub long_text: String,
    /// Items from the first line after `|` and from the perfdata part of later lines.
    pub perfdata: Vec<PerfItem>,
    /// Malformed items, skipped, each with the raw item text and a reason.
    pub problems: Vec<PerfProblem>,
}

/// One performance data item, converted to base units.
#[derive(Debug, Clone, PartialEq)]
pub struct PerfItem {
    /// The label, unquoted, with `''` unescaped to `'`.
    pub label: String,
    /// `None` when the plugin reported `U` (unknown). In base units.
    pub value: Option<f64>,
    pub unit: Unit,
    /// Warning range, in base units.
    pub warn: Option<Range>,
    /// Critical range, in base units.
    pub crit: Option<Range>,
    /// Minimum possible value, in base units.
    pub min: Option<f64>,
    /// Maximum possible value, in base units.
    pub max: Option<f64>,
}

/// The base unit of a perfdata item after conversion: `ms` and `us` become seconds, `KB` to
/// `TB` become bytes.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Unit {
    None,
    Seconds,
    Percent,
    Bytes,
    Counter,
}

/// A Nagios threshold range. `start` may be `f64::NEG_INFINITY` (`~`) and `end` may be
/// `f64::INFINITY` (`10:`).
#[derive(Debug, Clone, PartialEq)]
pub struct Range {
    pub start: f64,
    pub end: f64,
    /// Written with a leading `@`: alert when the value is inside `[start, end]` rather than
    /// outside it.
    pub inside: bool,
}

impl Range {
    /// Whether `value` should raise this threshold's alert. Without `@` a value outside
    /// `[start, end]` alerts; with `@` a value inside it (bounds included) alerts.
    /// A NaN value never alerts.
    pub fn alerts(&self, value: f64) -> bool {
        let within = self.start <= value && value <= self.end;
        if self.inside {
            return within;
        }
        !within && !value.is_nan()
    }
}

/// A perfdata item that could not be parsed and was skipped.
#[derive(Debug, Clone, PartialEq)]
pub struct PerfProblem {
    /// The raw text of the item, as the plugin wrote it.
    pub item: String,
    /// Why it was rejected, in words.
    pub reason: String,
}

impl fmt::Display for PerfProblem {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            formatter,
            "bad perfdata item '{}': {}",
            self.item, self.reason
        )
    }
}

/// Parses a whole plugin output: summary, long text and perfdata.
///
/// On lines 2..n, text before the first `|` is long text; once a `|` has been seen there, the
/// rest of that line and all following lines are perfdata (the Nagios 3 convention). Each line's
/// perfdata is parsed on its own, so an unterminated quote only spoils the rest of its line.
pub fn parse_output(text: &str) -> PluginOutput {
    let mut lines = text.split('\n');
    let first_line = lines.next().unwrap_or("");
    let (summary_text, first_line_perfdata) = match first_line.split_once('|') {
        Some((summary_text, perfdata_text)) => (summary_text, Some(perfdata_text)),
        None => (first_line, None),
    };

    let mut output = PluginOutput {
        summary: summary_text.trim().to_string(),
        long_text: String::new(),
        perfdata: Vec::new(),
        problems: Vec::new(),
    };
    if let Some(perfdata_text) = first_line_perfdata {
        output.add_perfdata(perfdata_text);
    }

    let mut long_text_lines: Vec<&str> = Vec::new();
    let mut in_perfdata = false;
    for line in lines {
        if in_perfdata {
            output.add_perfdata(line);
            continue;
        }
        match line.split_once('|') {
            Some((long_text_part, perfdata_text)) => {
                in_perfdata = true;
                long_text_lines.push(long_text_part.trim_end());
                output.add_perfdata(perfdata_text);
            }
            None => long_text_lines.push(line.trim_end()),
        }
    }
    output.long_text = long_text_lines.join("\n").trim_matches('\n').to_string();
    output
}

impl PluginOutput {
    fn add_perfdata(&mut self, perfdata_text: &str) {
        let (items, problems) = parse_perfdata(perfdata_text);
        self.perfdata.extend(items);
        self.problems.extend(problems);
    }
}

/// Parses one perfdata string (the part after `|`), which may hold many items separated by
/// whitespace. Malformed items are skipped and returned as problems.
pub fn parse_perfdata(text: &str) -> (Vec<PerfItem>, Vec<PerfProblem>) {
    let mut items = Vec::new();
    let mut problems = Vec::new();
    let mut remaining = text;
    loop {
        remaining = remaining.trim_start_matches(is_separator);
        if remaining.is_empty() {
            break;
        }
        let (item_text, after_item) = split_off_item(remaining);
        match parse_item(item_text) {
            Ok(item) => items.push(item),
            Err(reason) => problems.push(PerfProblem {
                item: item_text.to_string(),
                reason,
            }),
        }
        remaining = after_item;
    }
    (items, problems)
}

/// Items are separated by runs of ASCII whitespace (spaces, tabs, and line breaks when perfdata
/// spans lines).
fn is_separator(character: char) -> bool {
    character.is_ascii_whitespace()
}

/// Splits `text` (which starts with a non-separator) into its first item and the rest.
/// An item ends at the next separator, except that a quoted label may contain separators.
/// An unterminated quote makes the whole rest of the text the item.
fn split_off_item(text: &str) -> (&str, &str) {
    let search_from = match text.strip_prefix('\'') {
        Some(after_open_quote) => match find_closing_quote(after_open_quote) {
            // One byte for each quote; both are ASCII, so these are char boundaries.
            Some(close_position) => 1 + close_position + 1,
            None => return (text.trim_end_matches(is_separator), ""),
        },
        None => 0,
    };
    let tail = text.get(search_from..).unwrap_or("");
    let item_end = match tail.find(is_separator) {
        Some(offset) => search_from + offset,
        None => text.len(),
    };
    text.split_at_checked(item_end).unwrap_or((text, ""))
}

/// Byte position in `quoted_text` (the text after an opening quote) of the closing quote,
/// skipping `''` escapes.
fn find_closing_quote(quoted_text: &str) -> Option<usize> {
    let mut characters = quoted_text.char_indices().peekable();
    while let Some((position, character)) = characters.next() {
        if character != '\'' {
            continue;
        }
        if let Some((_, '\'')) = characters.peek() {
            characters.next();
            continue;
        }
        return Some(position);
    }
    None
}

fn parse_item(item_text: &str) -> Result<PerfItem, String> {
    let (label, data) = split_label(item_text)?;

    let field_count = data.split(';').count();
    if field_count > 5 {
        return Err(format!(
            "too many ';'-separated fields ({field_count}; at most 5: value;warn;crit;min;max)"
        ));
    }
    let mut fields = data.split(';');
    let value_field = fields.next().unwrap_or("");
    let warn_field = fields.next().unwrap_or("");
    let crit_field = fields.next().unwrap_or("");
    let min_field = fields.next().unwrap_or("");
    let max_field = fields.next().unwrap_or("");

    let (raw_value, unit_text) = split_value_and_unit(value_field)?;
    let (unit, conversion) = match unit_and_conversion(unit_text) {
        Some(unit_and_conversion) => unit_and_conversion,
        // The unit after 'U' is ignored when it is not one we know: there is no value to
        // convert, so an odd unit there harms nothing.
        None if raw_value.is_none() => (Unit::None, Conversion::IDENTITY),
        None => return Err(format!("unknown unit '{unit_text}'")),
    };
    let value = match raw_value {
        Some(raw_value) => Some(
            conversion
                .apply(raw_value)
                .map_err(|reason| format!("value: {reason}"))?,
        ),
        None => None,
    };
    let warn = parse_range(warn_field, conversion).map_err(|reason| format!("warn: {reason}"))?;
    let crit = parse_range(crit_field, conversion).map_err(|reason| format!("crit: {reason}"))?;
    let min =
        parse_optional_number(min_field, conversion).map_err(|reason| format!("min: {reason}"))?;
    let max =
        parse_optional_number(max_field, conversion).map_err(|reason| format!("max: {reason}"))?;

    Ok(PerfItem {
        label,
        value,
        unit,
        warn,
        crit,
        min,
        max,
    })
}

/// Splits an item into its (unquoted, unescaped) label and the text after `=`.
fn split_label(item_text: &str) -> Result<(String, &str), String> {
    let (label, data) = match item_text.strip_prefix('\'') {
        Some(after_open_quote) => {
            let Some(close_position) = find_closing_quote(after_open_quote) else {
                return Err("unterminated quote in label".to_string());
            };
            let (quoted_label, closing_quote_and_rest) = after_open_quote
                .split_at_checked(close_position)
                .unwrap_or((after_open_quote, ""));
            let after_close = closing_quote_and_rest.strip_prefix('\'').unwrap_or("");
            let Some(data) = after_close.strip_prefix('=') else {
                return Err("expected '=' right after the quoted label".to_string());
            };
            (quoted_label.replace("''", "'"), data)
        }
        None => {
            let Some((label, data)) = item_text.split_once('=') else {
                return Err("missing '=' between label and value".to_string());
            };
            if label.contains('\'') {
                return Err("single quote in an unquoted label".to_string());
            }
            (label.to_string(), data)
        }
    };
    if label.is_empty() {
        return Err("empty label".to_string());
    }
    Ok((label, data))
}

/// Splits the value field into the number (`None` for `U`) and the unit text after it.
fn split_value_and_unit(value_field: &str) -> Result<(Option<f64>, &str), String> {
    if value_field.is_empty() {
        return Err("missing value".to_string());
    }
    if let Some(unit_text) = value_field.strip_prefix('U') {
        return Ok((None, unit_text));
    }
    let number_length = number_prefix_length(value_field);
    let (number_text, unit_text) = value_field
        .split_at_checked(number_length)
        .unwrap_or((value_field, ""));
    if number_text.is_empty() {
        return Err(format!("value: '{value_field}' is not a number"));
    }
    let number = parse_number(number_text).map_err(|reason| format!("value: {reason}"))?;
    Ok((Some(number), unit_text))
}

/// How to bring a number in some unit to the base unit: multiply, then divide.
///
/// Two exact steps rather than one factor, because `1e-3` and `1e-6` are not exact in binary
/// while dividing by `1000.0` rounds once, correctly; multiplying by a power of 1024 is exact.
#[derive(Debug, Clone, Copy)]
struct Conversion {
    multiplier: f64,
    divisor: f64,
}

impl Conversion {
    const IDENTITY: Conversion = Conversion::multiply(1.0);

    const fn multiply(multiplier: f64) -> Conversion {
        Conversion {
            multiplier,
            divisor: 1.0,
        }
    }

    const fn divide(divisor: f64) -> Conversion {
        Conversion {
            multiplier: 1.0,
            divisor,
        }
    }

    /// Converts to base units, refusing a finite number that overflows doing so.
    /// Infinite range bounds stay infinite.
    fn apply(self, number: f64) -> Result<f64, String> {
        let converted = number * self.multiplier / self.divisor;
        if number.is_finite() && !converted.is_finite() {
            return Err(format!(
                "{number:e} is out of range once converted to base units"
            ));
        }
        Ok(converted)
    }
}

/// The base unit for `unit_text` and how to convert to it.
///
/// Byte multiples are binary (1 KB = 1024 B), as the Nagios plugins compute them (check_disk,
/// check_swap and friends divide by 1024). Units are case-sensitive as the guidelines say, but
/// the all-lowercase `kb`, `mb`, `gb` and `tb` that real plugins emit are accepted too.
fn unit_and_conversion(unit_text: &str) -> Option<(Unit, Conversion)> {
    const KIBI: f64 = 1024.0;
    let unit_and_conversion = match unit_text {
        "" => (Unit::None, Conversion::IDENTITY),
        "s" => (Unit::Seconds, Conversion::IDENTITY),
        "ms" => (Unit::Seconds, Conversion::divide(1e3)),
        "us" => (Unit::Seconds, Conversion::divide(1e6)),
        "%" => (Unit::Percent, Conversion::IDENTITY),
        "B" => (Unit::Bytes, Conversion::IDENTITY),
        "KB" | "kb" => (Unit::Bytes, Conversion::multiply(KIBI)),
        "MB" | "mb" => (Unit::Bytes, Conversion::multiply(KIBI * KIBI)),
        "GB" | "gb" => (Unit::Bytes, Conversion::multiply(KIBI * KIBI * KIBI)),
        "TB" | "tb" => (Unit::Bytes, Conversion::multiply(KIBI * KIBI * KIBI * KIBI)),
        "c" => (Unit::Counter, Conversion::IDENTITY),
        _ => return None,
    };
    Some(unit_and_conversion)
}

/// Parses a warn or crit field: empty is `None`, otherwise `[@]start:end` in Nagios range
/// syntax, converted with the value's unit.
fn parse_range(text: &str, conversion: Conversion) -> Result<Option<Range>, String> {
    if text.is_empty() {
        return Ok(None);
    }
    let (inside, body) = match text.strip_prefix('@') {
        Some(body) => (true, body),
        None => (false, text),
    };
    if body.is_empty() {
        return Err(format!("empty range in '{text}'"));
    }
    let (start, end) = match body.split_once(':') {
        // A bare number is the end, with start 0.
        None => (0.0, parse_number(body)?),
        Some((start_text, end_text)) => {
            let start = match start_text {
                "~" => f64::NEG_INFINITY,
                // Like the monitoring plugins' strtod, an omitted start is 0.
                "" => 0.0,
                _ => parse_number(start_text)?,
            };
            let end = match end_text {
                "" => f64::INFINITY,
                _ => parse_number(end_text)?,
            };
            (start, end)
        }
    };
    if start > end {
        if !body.contains(':') {
            return Err(format!(
                "range '{text}' means 0:{body}, which starts after it ends"
            ));
        }
        return Err(format!("range '{text}' starts after it ends"));
    }
    Ok(Some(Range {
        start: conversion.apply(start)?,
        end: conversion.apply(end)?,
        inside,
    }))
}

/// Parses a min or max field: empty is `None`, otherwise a plain number converted with the value's unit.
fn parse_optional_number(text: &str, conversion: Conversion) -> Result<Option<f64>, String> {
    if text.is_empty() {
        return Ok(None);
    }
    let number = parse_number(text)?;
    Ok(Some(conversion.apply(number)?))
}

/// Length in bytes of the longest prefix of `text` shaped like a number: an optional sign,
/// digits and dots, then an exponent (`e`, optional sign, digits) when one follows.
/// Everything it counts is ASCII, so the length is a char boundary.
fn number_prefix_length(text: &str) -> usize {
    let bytes = text.as_bytes();
    let mut position = 0;
    if let Some(b'-' | b'+') = bytes.first() {
        position = 1;
    }
    let mantissa_start = position;
    while let Some(b'0'..=b'9' | b'.') = bytes.get(position) {
        position += 1;
    }
    if position == mantissa_start {
        return position;
    }
    if let Some(b'e' | b'E') = bytes.get(position) {
        let mut exponent_end = position + 1;
        if let Some(b'-' | b'+') = bytes.get(exponent_end) {
            exponent_end += 1;
        }
        if let Some(b'0'..=b'9') = bytes.get(exponent_end) {
            while let Some(b'0'..=b'9') = bytes.get(exponent_end) {
                exponent_end += 1;
            }
            position = exponent_end;
        }
    }
    position
}

/// Parses a whole string as a finite decimal number such as `10`, `-1.5`, `.5` or `1e3`.
/// Rejects `inf`, `nan` and anything else `f64::from_str` would take beyond plain decimals.
fn parse_number(text: &str) -> Result<f64, String> {
    if text.is_empty() || number_prefix_length(text) != text.len() {
        return Err(format!("'{text}' is not a number"));
    }
    let Ok(number) = text.parse::<f64>() else {
        return Err(format!("'{text}' is not a number"));
    };
    if !number.is_finite() {
        return Err(format!("'{text}' is out of range"));
    }
    Ok(number)
}
