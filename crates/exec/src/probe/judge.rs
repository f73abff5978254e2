//! Turns a probe's [`Observation`] into a check outcome: the conditions decide, a transport
//! failure is crit with its reason (unless the conditions are about `[CONNECTED]` and hold),
//! and kind-specific thresholds (TLS days, ICMP loss, expected text) can lower the status.

use warden_core::Status;
use warden_core::conditions::{Condition, Placeholder, evaluate_all};

use super::{FailureReason, Observation};

/// A judged probe run.
#[derive(Debug, Clone, PartialEq)]
pub struct ProbeOutcome {
    pub status: Status,
    pub summary: String,
    /// Why it failed, when it did.
    pub reason: Option<FailureReason>,
    pub samples: Vec<(String, f64)>,
    pub notes: Vec<String>,
}

impl ProbeOutcome {
    /// Lowers the status to `status` (never raises it) with a reason and a summary.
    pub fn worsen(&mut self, status: Status, reason: FailureReason, summary: String) {
        if severity(status) > severity(self.status) {
            self.status = status;
            self.reason = Some(reason);
            self.summary = summary;
        }
    }

    /// A sample's value by label.
    pub fn sample(&self, label: &str) -> Option<f64> {
        self.samples
            .iter()
            .find(|(name, _)| name == label)
            .map(|(_, value)| *value)
    }
}

fn severity(status: Status) -> u8 {
    match status {
        Status::Ok => 0,
        Status::Warn => 1,
        Status::Unknown => 2,
        Status::Crit => 3,
    }
}

/// Judges an observation with the check's conditions (texts validated when the config was
/// read; one that no longer parses makes the run unknown).
pub fn judge(observation: Observation, conditions: &[String]) -> ProbeOutcome {
    let Observation {
        facts,
        error,
        samples,
        summary,
        mut notes,
    } = observation;
    let mut parsed = Vec::with_capacity(conditions.len());
    for text in conditions {
        match Condition::parse(text) {
            Ok(condition) => parsed.push(condition),
            Err(error) => {
                return ProbeOutcome {
                    status: Status::Unknown,
                    summary: format!("condition `{text}` is invalid: {}", error.message),
                    reason: None,
                    samples,
                    notes,
                };
            }
        }
    }
    let about_connection = parsed.iter().any(|c| c.uses(Placeholder::Connected));
    if let Some(error) = &error
        && !about_connection
    {
        return ProbeOutcome {
            status: Status::Crit,
            summary: format!("{}: {}", error.reason.as_str(), error.message),
            reason: Some(error.reason),
            samples,
            notes,
        };
    }
    let failed = evaluate_all(&parsed, &facts);
    if !failed.is_empty() {
        if let Some(error) = &error {
            notes.push(format!("{}: {}", error.reason.as_str(), error.message));
        }
        return ProbeOutcome {
            status: Status::Crit,
            summary: failed.join("; "),
            reason: Some(FailureReason::Condition),
            samples,
            notes,
        };
    }
    let summary = match &error {
        // The conditions expected the failure (e.g. `[CONNECTED] == false`).
        Some(error) => format!(
            "{}: {} (as the conditions expect)",
            error.reason.as_str(),
            error.message
        ),
        None => summary,
    };
    ProbeOutcome {
        status: Status::Ok,
        summary,
        reason: None,
        samples,
        notes,
    }
}
