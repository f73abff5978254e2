//! Signalling the child's whole process group, and a guard that kills it on drop.

use std::io;

/// Sends `signal` to every process in group `pgid`.
///
/// Returns `Ok(true)` if at least one process got it, `Ok(false)` if the group no longer exists
/// (ESRCH). Refuses group ids 0 and 1 and negative ones: `kill(0, ..)` would hit our own group
/// and `kill(-1, ..)` every process we may signal.
pub(crate) fn signal_group(pgid: i32, signal: libc::c_int) -> io::Result<bool> {
    if pgid <= 1 {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("refusing to signal process group {pgid}"),
        ));
    }
    if kill(-pgid, signal) == 0 {
        return Ok(true);
    }
    let err = io::Error::last_os_error();
    if err.raw_os_error() == Some(libc::ESRCH) {
        Ok(false)
    } else {
        Err(err)
    }
}

/// kill(2).
#[allow(unsafe_code)]
fn kill(pid: libc::pid_t, signal: libc::c_int) -> libc::c_int {
    // SAFETY: kill(2) takes two plain integers and reads or writes no memory of ours; it has no
    // preconditions beyond valid arguments, and a bad pid or signal only makes it fail with
    // an errno (read through `io::Error::last_os_error`).
    unsafe { libc::kill(pid, signal) }
}

/// Kills a process group with SIGKILL when dropped, unless disarmed first. Held for the whole
/// run so that dropping the run's future cannot leave the group running.
#[derive(Debug)]
pub(crate) struct GroupGuard {
    pgid: Option<i32>,
}

impl GroupGuard {
    /// A guard for the group led by the child with this pid (`process_group(0)` makes the
    /// group id equal the child's pid). `None` (no usable pid) guards nothing.
    pub(crate) fn new(pid: Option<u32>) -> Self {
        let pgid = pid
            .and_then(|pid| i32::try_from(pid).ok())
            .filter(|&pgid| pgid > 1);
        Self { pgid }
    }

    /// The group's id, if it guards one.
    pub(crate) fn pgid(&self) -> Option<i32> {
        self.pgid
    }

    /// Sends `signal` to the group; failures are logged, not returned (there is nothing more
    /// a caller could do).
    pub(crate) fn signal(&self, signal: libc::c_int) {
        let Some(pgid) = self.pgid else { return };
        match signal_group(pgid, signal) {
            Ok(true) => tracing::debug!(pgid, signal, "signalled process group"),
            Ok(false) => tracing::trace!(pgid, signal, "process group already gone"),
            Err(err) => tracing::warn!(pgid, signal, %err, "cannot signal process group"),
        }
    }

    /// The final SIGKILL has been sent: do not signal the group again on drop (after its
    /// members are gone the id may, in principle, be recycled).
    pub(crate) fn disarm(&mut self) {
        self.pgid = None;
    }
}

impl Drop for GroupGuard {
    fn drop(&mut self) {
        if let Some(pgid) = self.pgid {
            // Best effort: a drop cannot report failure.
            let _ = signal_group(pgid, libc::SIGKILL);
        }
    }
}
