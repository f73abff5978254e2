//! Running one process to completion: [`run_process`], [`Runner`], and what a run returns.
//!
//! Each process is started and watched by one of a [`Runner`]'s threads, which waits in
//! poll(2) on the child's two pipes and, for a child that outlives its first 10 ms or its pipes,
//! a pidfd (see [`Pidfd`]). The alternatives, both measured in
//! docs/benchmarks.md (scenario B, session 7), cost more per run:
//! - `tokio::process` registers both pipes and a pidfd with the runtime's epoll for every child;
//! - tokio's blocking pool wakes an idle thread for every run, and the run's task after it.

use std::collections::VecDeque;
use std::io::{self, Read};
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::process::{Child, ChildStderr, ChildStdout, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, AtomicI32, Ordering};
use std::sync::{Arc, Condvar, Mutex, OnceLock};
use std::time::{Duration, Instant};

use rustix::event::{PollFd, PollFlags, Timespec};
use rustix::io::Errno;
use rustix::process::{Pid, PidfdFlags};
use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;

use crate::group::{GroupGuard, signal_group};
use crate::output::{Collector, FirstLine, LineSplitter, OutputLine, Stream};
use crate::spec::{CLEAN_PATH, ProcessSpec, SpecError, os_error_text};

/// After the final SIGKILL, how long to wait at most for the main child to be reaped. SIGKILL
/// cannot be caught, so this only matters for a process stuck in the kernel (say, on a dead
/// NFS mount); the run must end anyway. A thread of its own reaps the child later.
const REAP_LIMIT: Duration = Duration::from_secs(5);

/// Size of each read from a pipe.
const READ_CHUNK: usize = 8 * 1024;

/// Longest single wait in poll(2): how soon a fired cancellation token, or a caller that
/// dropped the future, is noticed by the watching thread.
const WATCH_EVERY: Duration = Duration::from_millis(50);

/// How long a child runs before it gets a pidfd (see [`Pidfd`]): how late, at most, the exit
/// of a child whose grandchild holds its pipes is noticed.
const PIDFD_AFTER: Duration = Duration::from_millis(10);

/// Without a pidfd (Linux before 5.3), how often the main child is asked whether it exited.
const NO_PIDFD_EVERY: Duration = Duration::from_millis(5);

/// How a run ended.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Outcome {
    /// The main child exited normally with this code.
    Exited(i32),
    /// The main child was killed by this signal, not by us.
    Signaled(i32),
    /// The timeout passed and we killed the group.
    TimedOut,
    /// The process could not be started (or, in practice never, could not be waited for).
    /// The message names the program and the reason, e.g.
    /// "cannot run `nosuch`: No such file or directory".
    SpawnFailed(String),
    /// The cancellation token fired; the group was killed as on a timeout.
    Cancelled,
}

/// What a run produced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProcessResult {
    /// How it ended.
    pub outcome: Outcome,
    /// Kept stdout (lossy UTF-8), plus the truncation marker line at its end if
    /// `truncated_bytes > 0`.
    pub stdout: String,
    /// Kept stderr (lossy UTF-8). Shares [`ProcessSpec::output_cap`] with stdout: the kept
    /// output is the first `output_cap` bytes of both, in the order they were read.
    pub stderr: String,
    /// Bytes of (lossily decoded) output produced beyond the cap and not kept.
    pub truncated_bytes: u64,
    /// Lines not delivered on the line channel because it was full or closed.
    pub dropped_lines: u64,
    /// Time from the call until the run was over (group killed, pipes drained).
    pub duration: Duration,
    /// The main child's pid (also its process group id); `None` if it never started.
    pub pid: Option<u32>,
}

impl ProcessResult {
    /// The exit code for [`Outcome::Exited`], else `None`.
    pub fn exit_code(&self) -> Option<i32> {
        match self.outcome {
            Outcome::Exited(code) => Some(code),
            _ => None,
        }
    }
}

/// Runs `spec` to completion and returns how it ended and what it printed.
///
/// Each line of stdout and stderr is sent on `lines` as soon as it is read, with the time it
/// was read, also beyond the output cap (the cap only limits what is kept in the result). The
/// send never waits: if the channel is full or closed, the line is dropped from the stream and
/// counted in [`ProcessResult::dropped_lines`], so a slow consumer never slows the child down.
/// Lines of one stream arrive in order; lines of stdout and stderr are interleaved roughly in
/// the order they were read.
///
/// The child runs in a new process group with stdin from `/dev/null`. However the run ends,
/// the whole group is SIGKILLed at the end; see the crate documentation for the sequence and
/// for why pipes are drained with a bounded wait rather than to end-of-file. A fired `cancel`
/// is noticed within [`WATCH_EVERY`] (50 ms); a run cancelled while it waits for a thread is
/// never started.
///
/// Runs on a [`Runner`] shared by the whole process, of 4 × cores threads: at most that many
/// such runs at once, the others wait their turn. Use a [`Runner`] of your own for another bound.
///
/// Errors never panic: a spec that fails [`ProcessSpec::validate`] or a program that cannot be
/// started gives [`Outcome::SpawnFailed`]. A token that is already cancelled gives
/// [`Outcome::Cancelled`] without starting anything.
///
/// # Cancel safety
///
/// Dropping the returned future before it completes does not leave processes behind: a guard
/// held by the future SIGKILLs the whole process group when dropped, and the watching thread
/// then reaps the main child and stops. Output not yet returned is lost, and there is no
/// SIGTERM grace in that case. To stop a run gracefully (SIGTERM, grace, SIGKILL) and still
/// get its result, fire `cancel` instead.
pub async fn run_process(
    spec: &ProcessSpec,
    lines: Option<mpsc::Sender<OutputLine>>,
    cancel: CancellationToken,
) -> ProcessResult {
    static DEFAULT: OnceLock<Runner> = OnceLock::new();
    DEFAULT
        .get_or_init(|| {
            Runner::new(4 * std::thread::available_parallelism().map_or(2, |n| n.get()))
        })
        .run(spec, lines, cancel)
        .await
}

/// A fixed set of threads that start and watch processes: at most that many run at once, and
/// the rest wait their turn in its queue.
///
/// Each thread takes the next run from the queue as soon as it is done with one, so under a
/// steady load no thread sleeps between runs and handing a run over costs no wake-up. Watching
/// from a thread with `poll(2)` costs the hub less per run than `tokio::process`, whose every
/// child registers two pipes and a pidfd with the runtime (measured in docs/benchmarks.md,
/// scenario B, session 7).
///
/// Cheap to clone; the threads stop when the last clone is dropped and the queue is empty.
#[derive(Clone, Debug)]
pub struct Runner {
    handle: Arc<RunnerHandle>,
}

#[derive(Debug)]
struct RunnerHandle {
    queue: Arc<Queue>,
}

#[derive(Debug, Default)]
struct Queue {
    state: Mutex<QueueState>,
    ready: Condvar,
}

#[derive(Default)]
struct QueueState {
    jobs: VecDeque<Job>,
    /// Threads waiting for a job (a push wakes one only if there is one).
    idle: usize,
    closed: bool,
}

impl std::fmt::Debug for QueueState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("QueueState")
            .field("jobs", &self.jobs.len())
            .field("idle", &self.idle)
            .field("closed", &self.closed)
            .finish()
    }
}

type Job = Box<dyn FnOnce() + Send>;

impl Runner {
    /// A runner with `threads` threads (at least one), started now.
    pub fn new(threads: usize) -> Runner {
        let queue = Arc::new(Queue::default());
        for n in 0..threads.max(1) {
            let queue = Arc::clone(&queue);
            let spawned = std::thread::Builder::new()
                .name(format!("warden-exec-{n}"))
                .spawn(move || queue.work());
            if let Err(err) = spawned {
                // Fewer threads than asked for; with none at all, runs wait forever, so say so.
                tracing::error!(%err, "cannot start a process runner thread");
            }
        }
        Runner {
            handle: Arc::new(RunnerHandle { queue }),
        }
    }

    /// Runs `spec` to completion on one of the runner's threads; see [`run_process`].
    pub async fn run(
        &self,
        spec: &ProcessSpec,
        lines: Option<mpsc::Sender<OutputLine>>,
        cancel: CancellationToken,
    ) -> ProcessResult {
        let called = Instant::now();
        let collector = Collector::new(spec.output_cap, lines);
        // Refused at once rather than after a wait for a thread (the job asks again).
        if let Some(outcome) = refusal(spec, &cancel) {
            return finish(outcome, collector, called, None);
        }
        let failed = |why: &str| {
            let message = format!("cannot run `{}`: {why}", spec.program());
            let collector = Collector::new(spec.output_cap, None);
            finish(Outcome::SpawnFailed(message), collector, called, None)
        };
        let shared = Arc::new(Shared::default());
        let mut abandon = Abandon {
            shared: Arc::clone(&shared),
            armed: true,
        };
        let (done, result) = oneshot::channel();
        let then = move |result| {
            let _ = done.send(result);
        };
        if !self.submit(spec.clone(), collector, cancel, shared, then) {
            abandon.armed = false;
            return failed("the process runner has stopped");
        }
        let result = result.await;
        abandon.armed = false;
        // Err: the job was dropped unrun (the runner is gone) or its thread panicked.
        result.unwrap_or_else(|_| failed("the process runner failed"))
    }

    /// Starts `spec` on one of the runner's threads and returns at once: `then` gets the result
    /// on that thread, when the run is over. Lines go to `lines` as in [`run_process`];
    /// `first_line` is called there just before the first one. A spec that fails
    /// [`ProcessSpec::validate`] gives [`Outcome::SpawnFailed`], and a run whose `cancel` fires
    /// before a thread takes it is never started ([`Outcome::Cancelled`]).
    ///
    /// For a caller that needs no task of its own per run: nothing wakes it when a run ends.
    /// Returns false, without calling `then`, if the runner has stopped.
    pub fn start(
        &self,
        spec: ProcessSpec,
        lines: Option<mpsc::Sender<OutputLine>>,
        first_line: Option<FirstLine>,
        cancel: CancellationToken,
        then: impl FnOnce(ProcessResult) + Send + 'static,
    ) -> bool {
        let collector = Collector::new(spec.output_cap, lines).on_first_line(first_line);
        self.submit(spec, collector, cancel, Arc::default(), then)
    }

    /// Queues the run; the thread that takes it hands the result to `then`, unless `shared`
    /// says the caller went away meanwhile. False if the runner has stopped.
    fn submit(
        &self,
        spec: ProcessSpec,
        collector: Collector,
        cancel: CancellationToken,
        shared: Arc<Shared>,
        then: impl FnOnce(ProcessResult) + Send + 'static,
    ) -> bool {
        let job: Job = Box::new(move || {
            // Dropped while it waited (`run`'s future): nobody wants it.
            if shared.abandoned.load(Ordering::SeqCst) {
                return;
            }
            let started = Instant::now();
            let result = match refusal(&spec, &cancel) {
                Some(outcome) => finish(outcome, collector, started, None),
                None => watch(&spec, collector, &cancel, &shared, started),
            };
            then(result);
        });
        self.handle.queue.push(job)
    }
}

/// Why a run is not to be started: a spec that fails [`ProcessSpec::validate`], or a token
/// already cancelled.
fn refusal(spec: &ProcessSpec, cancel: &CancellationToken) -> Option<Outcome> {
    if let Err(err) = spec.validate() {
        let message = match err {
            SpecError::EmptyCommand => "cannot run an empty command".to_owned(),
            other => format!("cannot run `{}`: {other}", spec.program()),
        };
        return Some(Outcome::SpawnFailed(message));
    }
    cancel.is_cancelled().then_some(Outcome::Cancelled)
}

impl Drop for RunnerHandle {
    fn drop(&mut self) {
        let mut state = lock(&self.queue.state);
        state.closed = true;
        drop(state);
        self.queue.ready.notify_all();
    }
}

/// Locks a mutex whose data stays consistent even if a holder panicked (a queue of jobs).
fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl Queue {
    /// Adds a job; false once the runner has stopped.
    fn push(&self, job: Job) -> bool {
        let mut state = lock(&self.state);
        if state.closed {
            return false;
        }
        state.jobs.push_back(job);
        let wake = state.idle > 0;
        drop(state);
        if wake {
            self.ready.notify_one();
        }
        true
    }

    /// A runner thread: jobs one after another until the runner is dropped and none is left.
    fn work(&self) {
        loop {
            let mut state = lock(&self.state);
            let job = loop {
                if let Some(job) = state.jobs.pop_front() {
                    break job;
                }
                if state.closed {
                    return;
                }
                state.idle += 1;
                state = self
                    .ready
                    .wait(state)
                    .unwrap_or_else(std::sync::PoisonError::into_inner);
                state.idle -= 1;
            };
            drop(state);
            // A job that panics must not take the thread with it; its caller sees the dropped
            // result channel.
            let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(job));
        }
    }
}

/// What the future and the watching thread share.
#[derive(Debug, Default)]
struct Shared {
    /// The child's process group while it may be signalled; 0 before the spawn and after the
    /// final SIGKILL.
    pgid: AtomicI32,
    /// The future was dropped: nobody wants the result.
    abandoned: AtomicBool,
}

/// Held by the future: if it is dropped mid-run, the group is SIGKILLed at once and the
/// watching thread told to stop.
struct Abandon {
    shared: Arc<Shared>,
    armed: bool,
}

impl Drop for Abandon {
    fn drop(&mut self) {
        if !self.armed {
            return;
        }
        // Flag first, then look at the group: the watcher stores the group before it looks at
        // the flag, so one of the two always sees the other and the group is killed.
        self.shared.abandoned.store(true, Ordering::SeqCst);
        let pgid = self.shared.pgid.load(Ordering::SeqCst);
        if pgid > 1 {
            // Best effort: a drop cannot report failure.
            let _ = signal_group(pgid, libc::SIGKILL);
        }
    }
}

/// The watching thread's whole run: spawn, watch, kill, drain.
fn watch(
    spec: &ProcessSpec,
    collector: Collector,
    cancel: &CancellationToken,
    shared: &Shared,
    started: Instant,
) -> ProcessResult {
    let mut child = match build_command(spec).spawn() {
        Ok(child) => child,
        Err(err) => {
            let message = format!("cannot run `{}`: {}", spec.program(), os_error_text(&err));
            tracing::debug!(%message, "spawn failed");
            return finish(Outcome::SpawnFailed(message), collector, started, None);
        }
    };
    let pid = child.id();
    let guard = GroupGuard::new(Some(pid));
    shared
        .pgid
        .store(guard.pgid().unwrap_or(0), Ordering::SeqCst);
    tracing::debug!(pid, program = spec.program(), "spawned");
    let stdout = child.stdout.take();
    let stderr = child.stderr.take();
    let mut run = Run {
        child,
        pid: i32::try_from(pid).ok().and_then(Pid::from_raw),
        pidfd: Pidfd::NotYet,
        spawned: Instant::now(),
        reaped: false,
        guard,
        stdout: Pipe::new(Stream::Stdout, stdout),
        stderr: Pipe::new(Stream::Stderr, stderr),
        buf: vec![0; READ_CHUNK].into_boxed_slice(),
        collector,
        cancel,
        shared,
    };
    let outcome = run.drive(spec, started);
    // Every path ends with the final SIGKILL to the group (sent in `drive`).
    shared.pgid.store(0, Ordering::SeqCst);
    let Run {
        child,
        reaped,
        mut guard,
        collector,
        ..
    } = run;
    guard.disarm();
    if !reaped {
        reap_in_background(child);
    }
    finish(outcome, collector, started, Some(pid))
}

/// Waits for a child that outlived [`REAP_LIMIT`] on a thread of its own, so it does not stay
/// a zombie.
fn reap_in_background(mut child: Child) {
    let spawned = std::thread::Builder::new()
        .name("warden-reap".to_owned())
        .spawn(move || {
            let _ = child.wait();
        });
    if let Err(err) = spawned {
        tracing::warn!(%err, "cannot start a thread to reap a stuck child");
    }
}

fn finish(
    outcome: Outcome,
    collector: Collector,
    started: Instant,
    pid: Option<u32>,
) -> ProcessResult {
    let (stdout, stderr, truncated_bytes, dropped_lines) = collector.into_parts();
    ProcessResult {
        outcome,
        stdout,
        stderr,
        truncated_bytes,
        dropped_lines,
        duration: started.elapsed(),
        pid,
    }
}

fn build_command(spec: &ProcessSpec) -> Command {
    // `validate` has checked that the command is not empty.
    let (program, args) = spec
        .command
        .split_first()
        .map_or(("", &[][..]), |(p, a)| (p.as_str(), a));
    let mut command = Command::new(program);
    command
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0);
    if spec.clean_env {
        command.env_clear().env("PATH", CLEAN_PATH);
    }
    command.envs(spec.env.iter().map(|(k, v)| (k, v)));
    if let Some(cwd) = &spec.cwd {
        command.current_dir(cwd);
    }
    command
}

/// How the running phase ended.
enum Ended {
    /// The main child exited (and has been reaped).
    Exited(io::Result<ExitStatus>),
    /// We must kill the group, and the run ends with this outcome.
    Kill(Outcome),
}

/// What one wait in poll(2) found ready.
#[derive(Debug, Default, Clone, Copy)]
struct Ready {
    stdout: bool,
    stderr: bool,
    /// The pidfd is readable: the main child has exited.
    child: bool,
}

/// The main child's pidfd, opened only for a child that outlives [`PIDFD_AFTER`] or its pipes.
///
/// Most checks exit at once, and their pipes' end-of-file then says so: a `wait4(WNOHANG)`
/// reaps them. A pidfd costs the watching thread two system calls and the child's exit the
/// kernel's pidfd bookkeeping (together ~1-2 % of `/bin/true` checks a second, measured with
/// `cargo bench -p warden-exec --bench runner`, `WARDEN_BENCH_RUNNER_PIPED=0,1`).
enum Pidfd {
    NotYet,
    Open(OwnedFd),
    /// Reaped, or the kernel has none (Linux before 5.3): asked every [`NO_PIDFD_EVERY`].
    None,
}

/// A started run's state, owned by the watching thread.
struct Run<'a> {
    child: Child,
    pid: Option<Pid>,
    /// Says when the main child exits even while a grandchild holds the pipes; opened only
    /// when needed (see [`Run::wants_pidfd`]).
    pidfd: Pidfd,
    spawned: Instant,
    reaped: bool,
    guard: GroupGuard,
    stdout: Pipe<ChildStdout>,
    stderr: Pipe<ChildStderr>,
    /// One read buffer for both pipes (they are read one at a time).
    buf: Box<[u8]>,
    collector: Collector,
    cancel: &'a CancellationToken,
    shared: &'a Shared,
}

impl Run<'_> {
    fn drive(&mut self, spec: &ProcessSpec, started: Instant) -> Outcome {
        let deadline = started.checked_add(spec.timeout);
        let ended = loop {
            let ready = self.wait(deadline, true);
            // In this order, as a biased select: an exit wins over a timeout passing at the same
            // time, and a child flooding its pipes cannot starve the timer or the token.
            if let Some(exited) = self.check_exit(ready) {
                // What the same wait found on the pipes too: usually their end-of-file, as the
                // child's exit closed them, so the drain below has nothing left to wait for.
                self.read_ready(ready);
                break Ended::Exited(exited);
            }
            if self.cancel.is_cancelled() || self.shared.abandoned.load(Ordering::SeqCst) {
                break Ended::Kill(Outcome::Cancelled);
            }
            if passed(deadline) {
                break Ended::Kill(Outcome::TimedOut);
            }
            let open = self.pipes_open();
            self.read_ready(ready);
            // Without a pidfd, a pipe's end-of-file is the usual sign of the child's exit.
            if matches!(self.pidfd, Pidfd::NotYet)
                && self.pipes_open() < open
                && let Some(exited) = self.exit_seen()
            {
                break Ended::Exited(exited);
            }
        };

        let outcome = match ended {
            Ended::Exited(Ok(status)) => {
                tracing::debug!(%status, "main child exited");
                // Output still in the pipes is read with a bounded wait: a grandchild in the
                // group may hold them open indefinitely. Then the rest of the group goes.
                self.drain(spec.drain_timeout);
                self.guard.signal(libc::SIGKILL);
                exit_outcome(status)
            }
            Ended::Exited(Err(err)) => {
                tracing::warn!(%err, "cannot wait for main child");
                self.guard.signal(libc::SIGKILL);
                Outcome::SpawnFailed(format!(
                    "cannot wait for `{}`: {}",
                    spec.program(),
                    os_error_text(&err)
                ))
            }
            Ended::Kill(outcome) => {
                tracing::debug!(?outcome, "stopping process group");
                // Nobody waits for an abandoned run's result: no grace for it.
                let grace = if self.shared.abandoned.load(Ordering::SeqCst) {
                    Duration::ZERO
                } else {
                    spec.kill_grace
                };
                self.terminate(grace);
                outcome
            }
        };
        // Pick up what was written before the group died; end-of-file normally comes at once
        // now, unless a process that left the group holds a pipe.
        self.drain(spec.drain_timeout);
        self.stdout.close(&mut self.collector);
        self.stderr.close(&mut self.collector);
        outcome
    }

    /// SIGTERM to the group; up to `grace` for the main child to exit and the pipes to close;
    /// SIGKILL to the group; reap the main child (bounded).
    fn terminate(&mut self, grace: Duration) {
        self.open_pidfd();
        self.guard.signal(libc::SIGTERM);
        let grace_deadline = Instant::now().checked_add(grace);
        // Until the main child is reaped and the pipes are closed, or the grace is over.
        while !(passed(grace_deadline) || self.reaped && self.pipes_closed()) {
            let ready = self.wait(grace_deadline, true);
            let _ = self.check_exit(ready);
            self.read_ready(ready);
        }
        self.guard.signal(libc::SIGKILL);
        let reap_deadline = Instant::now().checked_add(REAP_LIMIT);
        while !self.reaped {
            if passed(reap_deadline) {
                tracing::warn!("main child not reaped after SIGKILL; reaping it in the background");
                break;
            }
            let ready = self.wait(reap_deadline, true);
            let _ = self.check_exit(ready);
            self.read_ready(ready);
        }
    }

    /// Reads until both pipes are at end-of-file or `limit` has passed.
    fn drain(&mut self, limit: Duration) {
        let deadline = Instant::now().checked_add(limit);
        // The timer first: a process writing without pause must not keep us here.
        while !self.pipes_closed() && !passed(deadline) {
            let ready = self.wait(deadline, false);
            self.read_ready(ready);
        }
    }

    /// Waits in poll(2) until a pipe has data or closes, the main child exits (if
    /// `watch_child`), `deadline` passes, or [`WATCH_EVERY`] has gone by.
    fn wait(&mut self, deadline: Option<Instant>, watch_child: bool) -> Ready {
        let watch_child = watch_child && !self.reaped;
        if watch_child && self.wants_pidfd() {
            self.open_pidfd();
        }
        let mut limit = deadline
            .map_or(WATCH_EVERY, |d| d.saturating_duration_since(Instant::now()))
            .min(WATCH_EVERY);
        let (pidfd, ask) = match &self.pidfd {
            Pidfd::Open(fd) if watch_child => (Some(fd), false),
            Pidfd::NotYet if watch_child => {
                // Until the pidfd is opened, at the latest at `PIDFD_AFTER`.
                let left = PIDFD_AFTER.saturating_sub(self.spawned.elapsed());
                limit = limit.min(left);
                (None, false)
            }
            Pidfd::None if watch_child => {
                limit = limit.min(NO_PIDFD_EVERY);
                (None, true)
            }
            _ => (None, false),
        };
        let mut fds: Vec<PollFd<'_>> = Vec::with_capacity(3);
        let mut which: Vec<u8> = Vec::with_capacity(3);
        if let Some(src) = &self.stdout.src {
            fds.push(PollFd::from_borrowed_fd(src.as_fd(), PollFlags::IN));
            which.push(0);
        }
        if let Some(src) = &self.stderr.src {
            fds.push(PollFd::from_borrowed_fd(src.as_fd(), PollFlags::IN));
            which.push(1);
        }
        if let Some(fd) = pidfd {
            fds.push(PollFd::from_borrowed_fd(fd.as_fd(), PollFlags::IN));
            which.push(2);
        }
        let timeout = Timespec {
            tv_sec: i64::try_from(limit.as_secs()).unwrap_or(i64::MAX),
            tv_nsec: i64::from(limit.subsec_nanos()),
        };
        let mut ready = Ready::default();
        match rustix::event::poll(&mut fds, Some(&timeout)) {
            Ok(_) => {}
            Err(Errno::INTR) => return ready,
            Err(err) => {
                // Not expected (EINVAL, ENOMEM); wait out the interval rather than spin.
                tracing::warn!(%err, "poll failed");
                std::thread::sleep(limit);
                return ready;
            }
        }
        for (fd, which) in fds.iter().zip(which) {
            if fd.revents().is_empty() {
                continue;
            }
            match which {
                0 => ready.stdout = true,
                1 => ready.stderr = true,
                _ => ready.child = true,
            }
        }
        if ask {
            // No pidfd: ask every time.
            ready.child = true;
        }
        ready
    }

    /// Reaps the main child after a pipe of its closed, if it has exited. A child closes its
    /// pipes a few microseconds before it can be reaped, and their end-of-file often wakes this
    /// thread in between (onto the exiting child's CPU: the wake-up comes from its exit). When
    /// both are closed, yielding once lets it finish, rather than a pidfd and another sleep.
    fn exit_seen(&mut self) -> Option<io::Result<ExitStatus>> {
        let asked = Ready {
            child: true,
            ..Ready::default()
        };
        let exited = self.check_exit(asked);
        if exited.is_some() || !self.pipes_closed() {
            return exited;
        }
        std::thread::yield_now();
        self.check_exit(asked)
    }

    /// A pidfd is opened once the child has run [`PIDFD_AFTER`] or closed both pipes (then
    /// only a pidfd can say when it exits), if it was not reaped first.
    fn wants_pidfd(&self) -> bool {
        matches!(self.pidfd, Pidfd::NotYet)
            && (self.pipes_closed() || self.spawned.elapsed() >= PIDFD_AFTER)
    }

    fn open_pidfd(&mut self) {
        if !matches!(self.pidfd, Pidfd::NotYet) || self.reaped {
            return;
        }
        self.pidfd = match self
            .pid
            .and_then(|pid| rustix::process::pidfd_open(pid, PidfdFlags::empty()).ok())
        {
            Some(fd) => Pidfd::Open(fd),
            None => Pidfd::None,
        };
    }

    /// Reaps the main child if it has exited; `None` while it runs (or once it is reaped).
    fn check_exit(&mut self, ready: Ready) -> Option<io::Result<ExitStatus>> {
        if self.reaped || !ready.child {
            return None;
        }
        match self.child.try_wait() {
            Ok(Some(status)) => {
                self.reaped = true;
                self.pidfd = Pidfd::None;
                Some(Ok(status))
            }
            Ok(None) => None,
            Err(err) => {
                // Not ours to wait for any more (ECHILD): nothing will ever say it exited.
                self.reaped = true;
                self.pidfd = Pidfd::None;
                Some(Err(err))
            }
        }
    }

    /// One read from each pipe that poll(2) found ready.
    fn read_ready(&mut self, ready: Ready) {
        if ready.stdout {
            self.stdout.read_once(&mut self.buf, &mut self.collector);
        }
        if ready.stderr {
            self.stderr.read_once(&mut self.buf, &mut self.collector);
        }
    }

    fn pipes_open(&self) -> usize {
        usize::from(self.stdout.is_open()) + usize::from(self.stderr.is_open())
    }

    fn pipes_closed(&self) -> bool {
        self.pipes_open() == 0
    }
}

/// Whether `deadline` has passed (never, for no deadline: a timeout too large to represent).
fn passed(deadline: Option<Instant>) -> bool {
    deadline.is_some_and(|d| Instant::now() >= d)
}

fn exit_outcome(status: ExitStatus) -> Outcome {
    match (status.code(), status.signal()) {
        (Some(code), _) => Outcome::Exited(code),
        (None, Some(signal)) => Outcome::Signaled(signal),
        // wait(2) only reports exits and deaths by signal; keep a value rather than panic.
        (None, None) => Outcome::Exited(-1),
    }
}

/// One of the child's output pipes and the line splitter behind it.
struct Pipe<R> {
    stream: Stream,
    src: Option<R>,
    splitter: LineSplitter,
}

impl<R: Read> Pipe<R> {
    fn new(stream: Stream, src: Option<R>) -> Self {
        Self {
            stream,
            src,
            splitter: LineSplitter::default(),
        }
    }

    fn is_open(&self) -> bool {
        self.src.is_some()
    }

    /// One read, after poll(2) said the pipe is readable (so it does not block).
    fn read_once(&mut self, buf: &mut [u8], collector: &mut Collector) {
        let Some(src) = &mut self.src else { return };
        let stream = self.stream;
        match src.read(buf) {
            Ok(0) => self.close(collector),
            Ok(n) => {
                let data = buf.get(..n).unwrap_or(&[]);
                self.splitter.feed(data, &mut |bytes, newline| {
                    collector.line(stream, bytes, newline)
                });
            }
            Err(err) if err.kind() == io::ErrorKind::Interrupted => {}
            Err(err) => {
                tracing::debug!(?stream, %err, "reading output failed; treating as end of file");
                self.close(collector);
            }
        }
    }

    /// Stops reading (dropping our end of the pipe) and delivers a last partial line.
    fn close(&mut self, collector: &mut Collector) {
        let stream = self.stream;
        self.src = None;
        self.splitter
            .finish(&mut |bytes, newline| collector.line(stream, bytes, newline));
    }
}
