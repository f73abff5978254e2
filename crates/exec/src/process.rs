//! Running one process to completion: [`run_process`] and what it returns.

use std::io;
use std::os::unix::process::ExitStatusExt;
use std::process::{ExitStatus, Stdio};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt};
use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::group::GroupGuard;
use crate::output::{Collector, LineSplitter, OutputLine, Stream};
use crate::spec::{CLEAN_PATH, ProcessSpec, SpecError, os_error_text};

/// After the final SIGKILL, how long to wait at most for the main child to be reaped. SIGKILL
/// cannot be caught, so this only matters for a process stuck in the kernel (say, on a dead
/// NFS mount); the run must end anyway. tokio reaps the child later (`kill_on_drop`).
const REAP_LIMIT: Duration = Duration::from_secs(5);

/// Size of each read from a pipe.
const READ_CHUNK: usize = 8 * 1024;

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
/// for why pipes are drained with a bounded wait rather than to end-of-file.
///
/// Needs a tokio runtime with its I/O and time drivers enabled (`enable_all`), as any use of
/// `tokio::process` and `tokio::time` does.
///
/// Errors never panic: a spec that fails [`ProcessSpec::validate`] or a program that cannot be
/// started gives [`Outcome::SpawnFailed`]. A token that is already cancelled gives
/// [`Outcome::Cancelled`] without starting anything.
///
/// # Cancel safety
///
/// Dropping the returned future before it completes does not leave processes behind: a guard
/// held across the run SIGKILLs the whole process group when dropped, and the main child is
/// spawned with tokio's `kill_on_drop`, so it is killed too and reaped in the background by
/// tokio. Output not yet returned is lost, and there is no SIGTERM grace in that case. To stop
/// a run gracefully (SIGTERM, grace, SIGKILL) and still get its result, fire `cancel` instead.
pub async fn run_process(
    spec: &ProcessSpec,
    lines: Option<mpsc::Sender<OutputLine>>,
    cancel: CancellationToken,
) -> ProcessResult {
    let started = Instant::now();
    let collector = Collector::new(spec.output_cap, lines);

    if let Err(err) = spec.validate() {
        let message = match err {
            SpecError::EmptyCommand => "cannot run an empty command".to_owned(),
            other => format!("cannot run `{}`: {other}", spec.program()),
        };
        return finish(Outcome::SpawnFailed(message), collector, started, None);
    }
    if cancel.is_cancelled() {
        return finish(Outcome::Cancelled, collector, started, None);
    }

    let mut command = build_command(spec);
    let child = match command.spawn() {
        Ok(child) => child,
        Err(err) => {
            let message = format!("cannot run `{}`: {}", spec.program(), os_error_text(&err));
            tracing::debug!(%message, "spawn failed");
            return finish(Outcome::SpawnFailed(message), collector, started, None);
        }
    };
    let pid = child.id();
    // Kills the whole group if this future is dropped mid-run (`kill_on_drop` only reaches the
    // main child).
    let guard = GroupGuard::new(pid);
    tracing::debug!(?pid, program = spec.program(), "spawned");

    let mut run = Run {
        child,
        guard,
        stdout: Pipe::new(Stream::Stdout),
        stderr: Pipe::new(Stream::Stderr),
        collector,
    };
    run.stdout.src = run.child.stdout.take();
    run.stderr.src = run.child.stderr.take();

    let outcome = run.drive(spec, started, &cancel).await;
    let Run {
        mut guard,
        collector,
        ..
    } = run;
    // Every path ends with the final SIGKILL to the group (sent in `drive`).
    guard.disarm();
    finish(outcome, collector, started, pid)
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

fn build_command(spec: &ProcessSpec) -> tokio::process::Command {
    // `validate` has checked that the command is not empty.
    let (program, args) = spec
        .command
        .split_first()
        .map_or(("", &[][..]), |(p, a)| (p.as_str(), a));
    let mut command = tokio::process::Command::new(program);
    command
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .kill_on_drop(true);
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

/// A started run's state.
struct Run {
    child: tokio::process::Child,
    guard: GroupGuard,
    stdout: Pipe<tokio::process::ChildStdout>,
    stderr: Pipe<tokio::process::ChildStderr>,
    collector: Collector,
}

impl Run {
    async fn drive(
        &mut self,
        spec: &ProcessSpec,
        started: Instant,
        cancel: &CancellationToken,
    ) -> Outcome {
        let deadline = started.checked_add(spec.timeout);
        let ended = loop {
            tokio::select! {
                // Biased so that an exit wins over a timeout firing at the same time, and so
                // that a child flooding its pipes cannot starve the timer or the token.
                biased;
                status = self.child.wait() => break Ended::Exited(status),
                () = cancel.cancelled() => break Ended::Kill(Outcome::Cancelled),
                () = sleep_until(deadline) => break Ended::Kill(Outcome::TimedOut),
                (stream, read) = next_chunk(&mut self.stdout, &mut self.stderr) => {
                    self.consume(stream, read);
                }
            }
        };

        let outcome = match ended {
            Ended::Exited(Ok(status)) => {
                tracing::debug!(%status, "main child exited");
                // Output still in the pipes is read with a bounded wait: a grandchild in the
                // group may hold them open indefinitely. Then the rest of the group goes.
                self.drain(spec.drain_timeout).await;
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
                self.terminate(spec.kill_grace).await;
                outcome
            }
        };
        // Pick up what was written before the group died; end-of-file normally comes at once
        // now, unless a process that left the group holds a pipe.
        self.drain(spec.drain_timeout).await;
        self.stdout.close(&mut self.collector);
        self.stderr.close(&mut self.collector);
        outcome
    }

    /// SIGTERM to the group; up to `grace` for the main child to exit and the pipes to close;
    /// SIGKILL to the group; reap the main child (bounded).
    async fn terminate(&mut self, grace: Duration) {
        self.guard.signal(libc::SIGTERM);
        let mut reaped = false;
        let grace_deadline = Instant::now().checked_add(grace);
        while !(reaped && self.pipes_closed()) {
            tokio::select! {
                biased;
                _ = self.child.wait(), if !reaped => reaped = true,
                () = sleep_until(grace_deadline) => break,
                (stream, read) = next_chunk(&mut self.stdout, &mut self.stderr) => {
                    self.consume(stream, read);
                }
            }
        }
        self.guard.signal(libc::SIGKILL);
        let reap_deadline = Instant::now().checked_add(REAP_LIMIT);
        while !reaped {
            tokio::select! {
                biased;
                _ = self.child.wait() => reaped = true,
                () = sleep_until(reap_deadline) => {
                    tracing::warn!("main child not reaped after SIGKILL; leaving it to tokio");
                    break;
                }
                (stream, read) = next_chunk(&mut self.stdout, &mut self.stderr) => {
                    self.consume(stream, read);
                }
            }
        }
    }

    /// Reads until both pipes are at end-of-file or `limit` has passed.
    async fn drain(&mut self, limit: Duration) {
        let deadline = Instant::now().checked_add(limit);
        while !self.pipes_closed() {
            tokio::select! {
                // The timer first: a process writing without pause must not keep us here.
                biased;
                () = sleep_until(deadline) => break,
                (stream, read) = next_chunk(&mut self.stdout, &mut self.stderr) => {
                    self.consume(stream, read);
                }
            }
        }
    }

    fn pipes_closed(&self) -> bool {
        !self.stdout.is_open() && !self.stderr.is_open()
    }

    fn consume(&mut self, stream: Stream, read: io::Result<usize>) {
        match stream {
            Stream::Stdout => self.stdout.consume(read, &mut self.collector),
            Stream::Stderr => self.stderr.consume(read, &mut self.collector),
        }
    }
}

fn exit_outcome(status: ExitStatus) -> Outcome {
    match (status.code(), status.signal()) {
        (Some(code), _) => Outcome::Exited(code),
        (None, Some(signal)) => Outcome::Signaled(signal),
        // wait(2) only reports exits and deaths by signal; keep a value rather than panic.
        (None, None) => Outcome::Exited(-1),
    }
}

/// Sleeps until `deadline`; forever if there is none (a timeout too large to represent).
async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(deadline) => tokio::time::sleep_until(deadline).await,
        None => std::future::pending().await,
    }
}

/// One of the child's output pipes and the line splitter behind it.
struct Pipe<R> {
    stream: Stream,
    src: Option<R>,
    buf: Box<[u8]>,
    splitter: LineSplitter,
}

impl<R: AsyncRead + Unpin> Pipe<R> {
    fn new(stream: Stream) -> Self {
        Self {
            stream,
            src: None,
            buf: vec![0; READ_CHUNK].into_boxed_slice(),
            splitter: LineSplitter::default(),
        }
    }

    fn is_open(&self) -> bool {
        self.src.is_some()
    }

    /// Reads one chunk into `buf` (cancel safe: a cancelled read has consumed nothing).
    async fn read(&mut self) -> io::Result<usize> {
        match &mut self.src {
            Some(src) => src.read(&mut self.buf).await,
            None => std::future::pending().await,
        }
    }

    fn consume(&mut self, read: io::Result<usize>, collector: &mut Collector) {
        let stream = self.stream;
        match read {
            Ok(0) => self.close(collector),
            Ok(n) => {
                let data = self.buf.get(..n).unwrap_or(&[]);
                self.splitter.feed(data, &mut |bytes, newline| {
                    collector.line(stream, bytes, newline)
                });
            }
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

/// The next chunk from whichever pipe is ready; pending forever once both are closed.
async fn next_chunk<A, B>(out: &mut Pipe<A>, err: &mut Pipe<B>) -> (Stream, io::Result<usize>)
where
    A: AsyncRead + Unpin,
    B: AsyncRead + Unpin,
{
    tokio::select! {
        read = out.read(), if out.is_open() => (Stream::Stdout, read),
        read = err.read(), if err.is_open() => (Stream::Stderr, read),
        else => std::future::pending().await,
    }
}
