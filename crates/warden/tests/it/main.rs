//! Whole-system tests: the real `warden` binary, real SQLite files, real sockets.

mod checks;
mod foundation;
mod harness;
mod heartbeats;
mod probes;
