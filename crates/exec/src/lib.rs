//! Runs one command as a check, Nagios plugin style: own process group, stdin from `/dev/null`,
//! a timeout that kills the whole group (SIGTERM, grace, SIGKILL), output kept up to a cap and
//! streamed line by line while the command runs.
//!
//! The entry point is [`run_process`]; describe the command with a [`ProcessSpec`].
//!
//! # How the process group is cleaned up
//!
//! Every run ends with a SIGKILL to the child's process group, whatever the outcome, so
//! background processes the check left behind (`sleep 300 &`) do not outlive it:
//!
//! - **Normal exit**: once the main child has exited, the remaining output is read with a short,
//!   bounded drain ([`ProcessSpec::drain_timeout`]) instead of waiting for end-of-file, because a
//!   grandchild still in the group may hold the pipes open forever. Then the group is SIGKILLed
//!   and the pipes are drained once more (again bounded) to pick up what was written meanwhile.
//! - **Timeout or cancellation**: SIGTERM to the group, up to [`ProcessSpec::kill_grace`] for the
//!   main child to exit and the pipes to close, then SIGKILL to the group, reap, bounded drain.
//! - **Future dropped**: a guard SIGKILLs the group, and the thread watching the run reaps the
//!   main child (see the cancel safety notes on [`run_process`]).
//!
//! The group id is the main child's pid. Once the main child has been reaped, that id stays
//! reserved for as long as any member of the group exists; if none is left, the final SIGKILL
//! finds no group (ESRCH, ignored). Only if the group emptied *and* the kernel recycled the id
//! for a new group within the short drain window could the SIGKILL reach a stranger, which
//! Linux's sequential pid allocation makes practically impossible. After the final SIGKILL
//! nothing is signalled again.
//!
//! Killed grandchildren are reparented and reaped by init (or a subreaper); until then they
//! are zombies, which still count as group members for `kill(2)` but hold no resources, so
//! the run does not wait for them.
//!
//! A process that leaves the group (`setsid`, `setpgid`) is out of reach of all of this; if it
//! holds the pipes, the bounded drains still keep it from hanging the run.

pub mod check;
mod group;
pub mod host;
mod output;
pub mod probe;
mod process;
mod spec;

pub use output::{FirstLine, MAX_LINE_BYTES, OutputLine, Stream};
pub use process::{Outcome, ProcessResult, Runner, run_process};
pub use spec::{CLEAN_PATH, DEFAULT_OUTPUT_CAP, ProcessSpec, SpecError};

#[cfg(test)]
mod tests;
