//! The outcome of a check run, in Nagios terms.

use std::fmt;

/// A check run's status. Ordered by severity for "worst of" computations,
/// except that `Unknown` sorts between `Warn` and `Crit` as Nagios does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Status {
    Ok,
    Warn,
    Crit,
    Unknown,
}

impl Status {
    /// Maps a Nagios plugin exit code; anything outside 0..=3 is `None`.
    pub fn from_exit_code(code: i32) -> Option<Status> {
        match code {
            0 => Some(Status::Ok),
            1 => Some(Status::Warn),
            2 => Some(Status::Crit),
            3 => Some(Status::Unknown),
            _ => None,
        }
    }

    /// The Nagios exit code for this status.
    pub fn exit_code(self) -> i32 {
        match self {
            Status::Ok => 0,
            Status::Warn => 1,
            Status::Crit => 2,
            Status::Unknown => 3,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Status::Ok => "ok",
            Status::Warn => "warn",
            Status::Crit => "crit",
            Status::Unknown => "unknown",
        }
    }

    pub fn parse(text: &str) -> Option<Status> {
        match text {
            "ok" => Some(Status::Ok),
            "warn" => Some(Status::Warn),
            "crit" => Some(Status::Crit),
            "unknown" => Some(Status::Unknown),
            _ => None,
        }
    }
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}
