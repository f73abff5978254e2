//! Human output for the CLI: aligned tables, relative times, short durations. Pure functions
//! of their input (and `now_ms`), so they are snapshot-tested.

use std::fmt::Write as _;

use unicode_width::{UnicodeWidthChar as _, UnicodeWidthStr as _};

use crate::types::{Check, OutputLine, Run, Status};

/// Tables are fitted to this many terminal columns by truncating the last (summary) column.
pub const TABLE_WIDTH: usize = 100;
/// The summary column keeps at least this many columns even when the others are wide.
const MIN_SUMMARY_WIDTH: usize = 10;
/// Spaces between columns.
const GAP: usize = 2;

/// `NAME  STATUS  LAST RUN  SUMMARY`, one row per check; `no checks` for an empty list.
pub fn render_checks(checks: &[Check], now_ms: i64) -> String {
    if checks.is_empty() {
        return "no checks\n".to_string();
    }
    let rows: Vec<Vec<String>> = checks
        .iter()
        .map(|check| {
            vec![
                one_line(&check.name),
                status_label(check.status, "PENDING"),
                match check.last_run_at {
                    Some(at) => relative_time(at, now_ms),
                    None => "never".to_string(),
                },
                one_line(check.summary.as_deref().unwrap_or("")),
            ]
        })
        .collect();
    table(&["NAME", "STATUS", "LAST RUN", "SUMMARY"], &rows)
}

/// `NAME  STATE  LAST PING  PING URL` for the heartbeat checks; `no heartbeat checks` when none.
pub fn render_ping_urls(checks: &[Check], now_ms: i64) -> String {
    let rows: Vec<Vec<String>> = checks
        .iter()
        .filter_map(|check| {
            let heartbeat = check.heartbeat.as_ref()?;
            Some(vec![
                one_line(&check.name),
                heartbeat.state.to_uppercase(),
                match heartbeat.last_ping_at {
                    Some(at) => relative_time(at, now_ms),
                    None => "never".to_string(),
                },
                heartbeat.ping_url.clone(),
            ])
        })
        .collect();
    if rows.is_empty() {
        return "no heartbeat checks (or the token may not see ping URLs: it needs the operator role)\n"
            .to_string();
    }
    table(&["NAME", "STATE", "LAST PING", "PING URL"], &rows)
}

/// `ID  CHECK  STATE  STATUS  STARTED  DURATION  SUMMARY`; a run without a summary shows its
/// last error (why it died) instead. `no runs` for an empty list.
pub fn render_runs(runs: &[Run], now_ms: i64) -> String {
    if runs.is_empty() {
        return "no runs\n".to_string();
    }
    let rows: Vec<Vec<String>> = runs
        .iter()
        .map(|run| {
            vec![
                run.id.to_string(),
                one_line(run.check.as_deref().unwrap_or("-")),
                run.state.as_str().to_string(),
                status_label(run.status, "-"),
                match run.started_at {
                    Some(at) => relative_time(at, now_ms),
                    None => "-".to_string(),
                },
                run_duration(run).unwrap_or_else(|| "-".to_string()),
                one_line(
                    run.summary
                        .as_deref()
                        .or(run.last_error.as_deref())
                        .unwrap_or(""),
                ),
            ]
        })
        .collect();
    table(
        &[
            "ID", "CHECK", "STATE", "STATUS", "STARTED", "DURATION", "SUMMARY",
        ],
        &rows,
    )
}

/// One run as aligned `key: value` lines; absent values are left out, times are UTC.
pub fn render_run(run: &Run) -> String {
    let mut fields: Vec<(&str, String)> = vec![("run", run.id.to_string())];
    if let Some(check) = &run.check {
        fields.push(("check", one_line(check)));
    }
    fields.push(("kind", one_line(&run.kind)));
    fields.push(("state", run.state.as_str().to_string()));
    fields.push(("status", status_label(run.status, "-")));
    if let Some(code) = run.exit_code {
        fields.push(("exit code", code.to_string()));
    }
    fields.push(("attempts", format!("{}/{}", run.attempts, run.max_attempts)));
    fields.push(("enqueued", utc_timestamp(run.enqueued_at)));
    if let Some(at) = run.started_at {
        fields.push(("started", utc_timestamp(at)));
    }
    if let Some(at) = run.finished_at {
        fields.push(("finished", utc_timestamp(at)));
    }
    if let Some(duration) = run_duration(run) {
        fields.push(("duration", duration));
    }
    if let Some(summary) = &run.summary {
        fields.push(("summary", one_line(summary)));
    }
    if let Some(error) = &run.last_error {
        fields.push(("last error", one_line(error)));
    }
    let key_width = fields
        .iter()
        .map(|(key, _)| key.len() + 1)
        .max()
        .unwrap_or(0);
    let mut out = String::new();
    for (key, value) in fields {
        let label = format!("{key}:");
        let _ = writeln!(out, "{label:<key_width$} {value}");
    }
    out
}

/// The run's output lines as printed, stdout and stderr interleaved in order.
pub fn render_output(lines: &[OutputLine]) -> String {
    let mut out = String::new();
    for line in lines {
        out.push_str(&line.line);
        out.push('\n');
    }
    out
}

/// `5s ago`, `3m ago`, `2h ago`, `4d ago`; `just now` within a second either way (clocks
/// differ a little between hub and client); `in 3m` for a time clearly in the future.
pub fn relative_time(at_ms: i64, now_ms: i64) -> String {
    let delta_ms = now_ms.saturating_sub(at_ms);
    if delta_ms.unsigned_abs() < 1_000 {
        return "just now".to_string();
    }
    let seconds = delta_ms.unsigned_abs() / 1_000;
    let amount = match seconds {
        0..60 => format!("{seconds}s"),
        60..3_600 => format!("{}m", seconds / 60),
        3_600..86_400 => format!("{}h", seconds / 3_600),
        _ => format!("{}d", seconds / 86_400),
    };
    if delta_ms > 0 {
        format!("{amount} ago")
    } else {
        format!("in {amount}")
    }
}

/// `12ms`, `1.2s`, `59.9s`, `3m4s`, `1h2m`, `2d3h`: two units at most, rounded down.
pub fn short_duration(ms: u64) -> String {
    const SECOND: u64 = 1_000;
    const MINUTE: u64 = 60 * SECOND;
    const HOUR: u64 = 60 * MINUTE;
    const DAY: u64 = 24 * HOUR;
    match ms {
        0..SECOND => format!("{ms}ms"),
        SECOND..MINUTE => format!("{}.{}s", ms / SECOND, ms % SECOND / 100),
        MINUTE..HOUR => format!("{}m{}s", ms / MINUTE, ms % MINUTE / SECOND),
        HOUR..DAY => format!("{}h{}m", ms / HOUR, ms % HOUR / MINUTE),
        _ => format!("{}d{}h", ms / DAY, ms % DAY / HOUR),
    }
}

/// `2025-01-02T03:04:05.678Z` for milliseconds since the Unix epoch.
pub fn utc_timestamp(ms: i64) -> String {
    let days = ms.div_euclid(86_400_000);
    let ms_of_day = ms.rem_euclid(86_400_000);
    let (year, month, day) = civil_from_days(days);
    let hour = ms_of_day / 3_600_000;
    let minute = ms_of_day % 3_600_000 / 60_000;
    let second = ms_of_day % 60_000 / 1_000;
    let millis = ms_of_day % 1_000;
    format!("{year:04}-{month:02}-{day:02}T{hour:02}:{minute:02}:{second:02}.{millis:03}Z")
}

/// Days since 1970-01-01 to a proleptic Gregorian date (Howard Hinnant's algorithm).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let day_of_era = z.rem_euclid(146_097);
    let year_of_era =
        (day_of_era - day_of_era / 1_460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let month_index = (5 * day_of_year + 2) / 153;
    let day = (day_of_year - (153 * month_index + 2) / 5 + 1) as u32;
    let month = if month_index < 10 {
        month_index + 3
    } else {
        month_index - 9
    } as u32;
    let year = year_of_era + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

fn run_duration(run: &Run) -> Option<String> {
    let (started, finished) = (run.started_at?, run.finished_at?);
    Some(short_duration(
        u64::try_from(finished.saturating_sub(started)).unwrap_or(0),
    ))
}

fn status_label(status: Option<Status>, absent: &str) -> String {
    match status {
        Some(status) => status.as_str().to_ascii_uppercase(),
        None => absent.to_string(),
    }
}

/// Control characters (newlines, tabs, terminal escapes) become spaces so a cell stays on one
/// line and cannot drive the terminal.
pub(crate) fn one_line(text: &str) -> String {
    text.chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect::<String>()
        .trim()
        .to_string()
}

/// Left-aligned columns by display width (wide CJK and emoji count as two); the last column
/// is truncated with `…` so lines fit [`TABLE_WIDTH`]; no trailing spaces.
pub(crate) fn table(headers: &[&str], rows: &[Vec<String>]) -> String {
    let last = headers.len() - 1;
    let mut widths: Vec<usize> = headers.iter().map(|header| header.width()).collect();
    for row in rows {
        debug_assert_eq!(row.len(), headers.len());
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.width());
        }
    }
    let fixed: usize = widths[..last].iter().map(|width| width + GAP).sum();
    let last_width = TABLE_WIDTH.saturating_sub(fixed).max(MIN_SUMMARY_WIDTH);
    let mut out = String::new();
    let header_row: Vec<String> = headers.iter().map(|header| header.to_string()).collect();
    for row in std::iter::once(&header_row).chain(rows) {
        let mut line = String::new();
        for (index, cell) in row.iter().enumerate() {
            if index == last {
                line.push_str(&truncate(cell, last_width));
            } else {
                line.push_str(cell);
                let padding = widths[index] - cell.width() + GAP;
                line.extend(std::iter::repeat_n(' ', padding));
            }
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

/// At most `max` display columns, ending in `…` (after no space) when something was cut.
fn truncate(text: &str, max: usize) -> String {
    if text.width() <= max {
        return text.to_string();
    }
    let budget = max.saturating_sub(1);
    let mut out = String::new();
    let mut used = 0;
    for c in text.chars() {
        let width = c.width().unwrap_or(0);
        if used + width > budget {
            break;
        }
        out.push(c);
        used += width;
    }
    out.truncate(out.trim_end().len());
    out.push('…');
    out
}
