//! Whole-system tests: the real `warden` binary, real SQLite files, real sockets.

mod alerting;
mod api;
mod checks;
mod foundation;
mod harness;
mod heartbeats;
mod live;
mod metrics;
mod openapi;
mod probes;
mod ui;
mod users;
