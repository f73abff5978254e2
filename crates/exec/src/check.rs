//! A check run's outcome from a process result, by the Nagios plugin conventions: exit 0/1/2/3
//! is ok/warn/crit/unknown; anything else, a signal, a timeout or a spawn failure is unknown with
//! the reason; the first line before `|` is the summary; perfdata becomes samples in base units.

use std::time::Duration;

use warden_core::Status;
use warden_core::duration::HumanDuration;
use warden_core::perfdata::{self, PerfItem};

use crate::{Outcome, ProcessResult};

/// What a check run concluded.
#[derive(Debug, Clone, PartialEq)]
pub struct CheckOutcome {
    pub status: Status,
    pub summary: String,
    pub exit_code: Option<i64>,
    pub perfdata: Vec<PerfItem>,
    /// Malformed perfdata items, skipped, as notes for the run.
    pub notes: Vec<String>,
    /// Set when the process was killed at its timeout.
    pub timed_out: bool,
}

impl CheckOutcome {
    /// An outcome with only a status and a summary (no exit code, perfdata or notes).
    pub fn plain(status: Status, summary: impl Into<String>) -> CheckOutcome {
        CheckOutcome {
            status,
            summary: summary.into(),
            exit_code: None,
            perfdata: Vec::new(),
            notes: Vec::new(),
            timed_out: false,
        }
    }
}

/// Judges a finished process. Returns `None` when the run was cancelled (nothing to report).
pub fn judge(result: &ProcessResult, timeout: Duration) -> Option<CheckOutcome> {
    let parsed = perfdata::parse_output(&result.stdout);
    let notes: Vec<String> = parsed.problems.iter().map(ToString::to_string).collect();
    let summary_or = |fallback: String| {
        if parsed.summary.is_empty() {
            fallback
        } else {
            parsed.summary.clone()
        }
    };
    let outcome = match &result.outcome {
        Outcome::Exited(code) => match Status::from_exit_code(*code) {
            Some(status) => CheckOutcome {
                status,
                summary: summary_or(
                    first_line(&result.stderr)
                        .unwrap_or_else(|| format!("exit code {code}, no output")),
                ),
                exit_code: Some(i64::from(*code)),
                perfdata: parsed.perfdata,
                notes,
                timed_out: false,
            },
            None => CheckOutcome {
                status: Status::Unknown,
                summary: format!(
                    "exit code {code} is not a plugin status (0-3): {}",
                    summary_or(
                        first_line(&result.stderr).unwrap_or_else(|| "no output".to_string())
                    )
                ),
                exit_code: Some(i64::from(*code)),
                perfdata: parsed.perfdata,
                notes,
                timed_out: false,
            },
        },
        Outcome::Signaled(signal) => CheckOutcome {
            notes,
            ..CheckOutcome::plain(Status::Unknown, format!("killed by signal {signal}"))
        },
        Outcome::TimedOut => CheckOutcome {
            notes,
            timed_out: true,
            ..CheckOutcome::plain(
                Status::Unknown,
                format!(
                    "timed out after {}; the process group was killed",
                    HumanDuration(timeout)
                ),
            )
        },
        Outcome::SpawnFailed(message) => CheckOutcome {
            notes,
            ..CheckOutcome::plain(Status::Unknown, message.clone())
        },
        Outcome::Cancelled => return None,
    };
    Some(outcome)
}

fn first_line(text: &str) -> Option<String> {
    text.lines()
        .map(str::trim)
        .find(|line| !line.is_empty())
        .map(str::to_string)
}
