//! Whole-system tests: the real `warden` binary, real SQLite files, real sockets.

mod foundation;
mod harness;
