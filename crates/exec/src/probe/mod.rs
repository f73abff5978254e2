//! In-process probes (http, tcp, dns, icmp, tls): each is time-bounded and cancellation-safe,
//! observes [`Facts`] for the check's conditions, and records timings as samples.

pub mod dns;
pub mod http;
pub mod icmp;
pub mod tcp;
#[cfg(test)]
mod tests_http;
#[cfg(test)]
mod tests_net;
pub mod tls;
mod tlsconf;

use warden_core::conditions::Facts;

pub mod judge;

/// Why a probe failed, as a stable machine-readable word (API field, `/metrics` label).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FailureReason {
    /// The name did not resolve.
    Dns,
    /// The TCP connection (or ICMP socket) failed.
    Connect,
    /// The TLS handshake or certificate verification failed.
    Tls,
    /// The probe ran out of time.
    Timeout,
    /// The HTTP exchange failed (protocol error, bad response, redirect loop...).
    Http,
    /// Every step worked but a condition did not hold.
    Condition,
}

impl FailureReason {
    pub fn as_str(self) -> &'static str {
        match self {
            FailureReason::Dns => "dns",
            FailureReason::Connect => "connect",
            FailureReason::Tls => "tls",
            FailureReason::Timeout => "timeout",
            FailureReason::Http => "http",
            FailureReason::Condition => "condition",
        }
    }
}

/// A transport-level failure: its reason and a one-line human text.
#[derive(Debug, Clone, PartialEq)]
pub struct ProbeError {
    pub reason: FailureReason,
    pub message: String,
}

/// Everything one probe run observed, before the conditions judge it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Observation {
    /// The placeholders' values for the conditions.
    pub facts: Facts,
    /// Set when the probe could not complete (the facts then hold what was seen before).
    pub error: Option<ProbeError>,
    /// Numbers worth keeping as series, label → value in base units (seconds, bytes, days,
    /// percent). The check name is prefixed later: label `connect_time` becomes series
    /// `<check>.connect_time`.
    pub samples: Vec<(String, f64)>,
    /// A short human line of what happened, used as the summary when every condition holds,
    /// e.g. `HTTP 200 in 12 ms (1.2 kB)`.
    pub summary: String,
    /// Anything else worth showing on the run (a skipped step, a fallback taken).
    pub notes: Vec<String>,
}
