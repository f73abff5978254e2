//! warden's nouns as plain types: config, durations, statuses, cron, perfdata. No I/O besides
//! the time zone database.

pub mod alerting;
pub mod conditions;
pub mod config;
pub mod cron;
pub mod duration;
pub mod perfdata;
pub mod status;

pub use status::Status;

#[cfg(test)]
mod tests;
