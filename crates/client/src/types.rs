//! Wire types of the hub's API, as the client reads them (unknown fields ignored).

use serde::{Deserialize, Serialize};

/// A check or run status, in Nagios terms.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Ok,
    Warn,
    Crit,
    Unknown,
}

impl Status {
    /// The value the API uses, e.g. in `?status=crit`.
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Ok => "ok",
            Status::Warn => "warn",
            Status::Crit => "crit",
            Status::Unknown => "unknown",
        }
    }
}

/// Where a run is in the queue.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RunState {
    Queued,
    Leased,
    /// A heartbeat's `/start` ping waiting for its end.
    Started,
    Completed,
    Dead,
    Cancelled,
}

impl RunState {
    pub fn as_str(self) -> &'static str {
        match self {
            RunState::Queued => "queued",
            RunState::Leased => "leased",
            RunState::Started => "started",
            RunState::Completed => "completed",
            RunState::Dead => "dead",
            RunState::Cancelled => "cancelled",
        }
    }

    /// True once the run will not change any more (completed, dead or cancelled).
    pub fn is_final(self) -> bool {
        matches!(
            self,
            RunState::Completed | RunState::Dead | RunState::Cancelled
        )
    }
}

/// A configured check and its latest status (`GET /api/v1/checks`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Check {
    pub name: String,
    pub kind: String,
    /// Human form, e.g. `every 30s` or `cron 0 3 * * * (Europe/Paris)`.
    pub schedule: String,
    /// `None` until the check has a result.
    pub status: Option<Status>,
    pub status_since: Option<i64>,
    pub last_run_id: Option<i64>,
    pub last_run_at: Option<i64>,
    pub summary: Option<String>,
    /// Heartbeat checks only (and only shown to operators and admins: it holds the ping key).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub heartbeat: Option<Heartbeat>,
    /// Fields this client does not model, kept so `--json` prints what the hub sent.
    #[serde(flatten)]
    pub extra: serde_json::Map<String, serde_json::Value>,
}

/// Where a heartbeat check stands and where its job pings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Heartbeat {
    /// `new`, `up`, `started`, `late` or `down`.
    pub state: String,
    pub ping_url: String,
    pub last_ping_at: Option<i64>,
    #[serde(flatten)]
    pub extra: serde_json::Map<String, serde_json::Value>,
}

/// One run of a check (or an ad-hoc job) in the queue (`GET /api/v1/runs/{id}`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Run {
    pub id: i64,
    /// `None` for a run that belongs to no configured check.
    pub check: Option<String>,
    pub kind: String,
    pub state: RunState,
    pub attempts: u32,
    pub max_attempts: u32,
    pub enqueued_at: i64,
    pub started_at: Option<i64>,
    pub finished_at: Option<i64>,
    pub status: Option<Status>,
    pub exit_code: Option<i32>,
    pub summary: Option<String>,
    pub last_error: Option<String>,
    /// Fields this client does not model (`result`, `payload`, lease details), kept so
    /// `--json` prints what the hub sent.
    #[serde(flatten)]
    pub extra: serde_json::Map<String, serde_json::Value>,
}

/// One page of runs, newest first; pass `next_before` as [`RunFilter::before`] for the next.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunPage {
    pub runs: Vec<Run>,
    pub next_before: Option<i64>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OutputStream {
    Stdout,
    Stderr,
    /// A heartbeat ping's request body.
    Body,
}

/// One line a run printed (`GET /api/v1/runs/{id}/output`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OutputLine {
    pub seq: i64,
    pub at: i64,
    pub stream: OutputStream,
    pub line: String,
}

/// Query for [`crate::Client::checks`]; the default lists every check.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CheckFilter {
    /// Only checks whose latest status is this.
    pub status: Option<Status>,
    /// Only checks matching this substring (`?filter=`; the hub matches it against names).
    pub filter: Option<String>,
    /// Only checks of this kind (`exec`, `http`, ...).
    pub kind: Option<String>,
    /// Only checks with this label, as `key=value`.
    pub label: Option<String>,
}

/// One series over a range (`GET /api/v1/series/{name}`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SeriesBody {
    pub name: String,
    pub from: i64,
    pub to: i64,
    pub step_ms: i64,
    pub aggregate: String,
    /// `[time ms, value]`, oldest first, one per step that has data.
    pub points: Vec<(i64, f64)>,
}

/// Query for [`crate::Client::runs`]; the default is the hub's default page of all runs.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RunFilter {
    /// Only runs of this check.
    pub check: Option<String>,
    /// Page size.
    pub limit: Option<u32>,
    /// Only runs with an id below this (from [`RunPage::next_before`]).
    pub before: Option<i64>,
}

/// `{"checks": [...]}`
#[derive(Deserialize)]
pub(crate) struct ChecksBody {
    pub(crate) checks: Vec<Check>,
}

/// `{"run_id": 42}`
#[derive(Deserialize)]
pub(crate) struct RunCreatedBody {
    pub(crate) run_id: i64,
}

/// `{"run_id": 42, "lines": [...]}`
#[derive(Deserialize)]
pub(crate) struct OutputBody {
    pub(crate) lines: Vec<OutputLine>,
}

/// `{"error": {"code": "...", "message": "..."}}`
#[derive(Deserialize)]
pub(crate) struct ErrorBody {
    pub(crate) error: ErrorDetail,
}

#[derive(Deserialize)]
pub(crate) struct ErrorDetail {
    pub(crate) code: String,
    pub(crate) message: String,
}
