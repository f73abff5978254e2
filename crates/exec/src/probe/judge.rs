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
    let failed = evaluate_all(&parsed, &facts);
    if let Some(error) = &error
        && !(about_connection && failed.is_empty())
    {
        // The transport failure is the story; the conditions it broke are a note.
        if !failed.is_empty() {
            notes.push(format!("failed conditions: {}", failed.join("; ")));
        }
        return ProbeOutcome {
            status: Status::Crit,
            summary: format!("{}: {}", error.reason.as_str(), error.message),
            reason: Some(error.reason),
            samples,
            notes,
        };
    }
    if !failed.is_empty() {
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

#[cfg(test)]
mod tests {
    use warden_core::Status;
    use warden_core::conditions::Facts;

    use super::judge;
    use crate::probe::{FailureReason, Observation, ProbeError};

    fn observation(
        connected: bool,
        status: Option<u16>,
        error: Option<FailureReason>,
    ) -> Observation {
        Observation {
            facts: Facts {
                connected,
                status,
                body: Some(r#"{"status":"UP"}"#.to_string()),
                ..Facts::default()
            },
            error: error.map(|reason| ProbeError {
                reason,
                message: "connection refused".to_string(),
            }),
            samples: vec![("connect_time".to_string(), 0.001)],
            summary: "HTTP 200 OK in 1 ms, 15 B".to_string(),
            notes: Vec::new(),
        }
    }

    #[test]
    fn conditions_and_transport_failures_decide_together() {
        type Case = (
            &'static str,
            Observation,
            &'static [&'static str],
            Status,
            &'static str,
            Option<FailureReason>,
        );
        let cases: Vec<Case> = vec![
            (
                "all hold",
                observation(true, Some(200), None),
                &["[STATUS] == 200", "[BODY].status == UP"],
                Status::Ok,
                "HTTP 200 OK in 1 ms, 15 B",
                None,
            ),
            (
                "a condition fails",
                observation(true, Some(503), None),
                &["[STATUS] == 200", "[BODY].status == UP"],
                Status::Crit,
                "[STATUS] (503) == 200",
                Some(FailureReason::Condition),
            ),
            (
                "two fail, in order",
                observation(true, Some(503), None),
                &["[STATUS] == 200", "[BODY].status == DOWN"],
                Status::Crit,
                "[STATUS] (503) == 200; [BODY].status (UP) == DOWN",
                Some(FailureReason::Condition),
            ),
            (
                "transport failure wins over conditions",
                observation(false, None, Some(FailureReason::Connect)),
                &["[STATUS] == 200"],
                Status::Crit,
                "connect: connection refused",
                Some(FailureReason::Connect),
            ),
            (
                "transport failure with a failed [CONNECTED] condition keeps its reason",
                observation(false, None, Some(FailureReason::Connect)),
                &["[CONNECTED] == true"],
                Status::Crit,
                "connect: connection refused",
                Some(FailureReason::Connect),
            ),
            (
                "a failure the conditions expect",
                observation(false, None, Some(FailureReason::Connect)),
                &["[CONNECTED] == false"],
                Status::Ok,
                "connect: connection refused (as the conditions expect)",
                None,
            ),
            (
                "a condition that no longer parses",
                observation(true, Some(200), None),
                &["[STATU] == 200"],
                Status::Unknown,
                "condition `[STATU] == 200` is invalid: unknown placeholder `[STATU]`",
                None,
            ),
        ];
        for (name, observation, conditions, status, summary, reason) in &cases {
            let conditions: Vec<String> = conditions.iter().map(ToString::to_string).collect();
            let outcome = judge(observation.clone(), &conditions);
            assert_eq!(
                (outcome.status, outcome.summary.as_str(), outcome.reason),
                (*status, *summary, *reason),
                "{name}"
            );
            assert_eq!(outcome.samples.len(), 1, "{name}: samples kept");
        }
    }
}
