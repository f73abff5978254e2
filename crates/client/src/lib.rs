//! Typed async client for the hub's HTTP API (`/api/v1`), and the CLI's human rendering.
//!
//! The wire types mirror the API's JSON: unknown fields are ignored so an older client keeps
//! working against a newer hub. Times are milliseconds since the Unix epoch (UTC).

pub mod alerting;
mod client;
mod error;
mod follow;
pub mod render;
mod types;

pub use crate::client::Client;
pub use crate::error::ClientError;
pub use crate::follow::FollowSink;
pub use crate::types::{
    Check, CheckFilter, Heartbeat, OutputLine, OutputStream, Run, RunFilter, RunPage, RunState,
    SeriesBody, Status,
};

#[cfg(test)]
mod tests;
