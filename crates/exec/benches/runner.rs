//! What [`warden_exec::Runner`] adds to spawning a process: `/bin/true` run back to back by a
//! runner of N threads, beside a bare loop of N threads (`std::process::Command`, stdio to
//! `/dev/null`, `status()`), in alternating windows so this shared machine's drift hits both.
//! Between them, `piped0`..`piped3`: thread-per-process loops asking the system for what the
//! runner does, step by step (pipes and a process group; a pidfd; poll(2); the group kill), so
//! the system's share of capturing output and the runner's own are told apart.
//!
//! `cargo bench -p warden-exec --bench runner`; env `WARDEN_BENCH_RUNNER_S` sets each window's
//! length (default 5 s), `WARDEN_BENCH_RUNNER_ROUNDS` the number of rounds (default 3),
//! `WARDEN_BENCH_RUNNER_THREADS` N (default 4 × cores, as the hub's pool).
//! `WARDEN_BENCH_RUNNER_PIPED=0,1` runs only those piped levels, alternating;
//! `WARDEN_BENCH_RUNNER_ONLY=1` one runner window alone (to count its system calls with
//! `perf stat`).
//!
//! Printed per window: spawns a second, and CPU per spawn of this process's threads (the
//! spawning side) and of its reaped children (`/proc/self/stat` utime + stime, cutime +
//! cstime), which the machine's speed moves less than rates.

use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, mpsc};
use std::time::{Duration, Instant};

use tokio_util::sync::CancellationToken;
use warden_exec::{Outcome, ProcessSpec, Runner};

fn env_u64(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// (own ticks, reaped children's ticks) of this process.
fn ticks() -> (u64, u64) {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let fields: Vec<u64> = stat
        .rsplit_once(')')
        .map(|(_, rest)| {
            rest.split_whitespace()
                .map(|f| f.parse().unwrap_or(0))
                .collect()
        })
        .unwrap_or_default();
    let get = |i: usize| fields.get(i).copied().unwrap_or(0);
    // After the command name: state is field 0, utime 11, stime 12, cutime 13, cstime 14.
    (get(11) + get(12), get(13) + get(14))
}

fn us_per_tick() -> f64 {
    let hz: f64 = Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8_lossy(&o.stdout).trim().parse().ok())
        .unwrap_or(100.0);
    1e6 / hz
}

struct Window {
    spawns: u64,
    seconds: f64,
    own: u64,
    children: u64,
}

impl Window {
    fn print(&self, what: &str) {
        let n = self.spawns.max(1) as f64;
        println!(
            "{what:>6}: {:>6.0} spawns/s, per spawn {:>5.1} us spawning, {:>5.1} us child",
            self.spawns as f64 / self.seconds,
            self.own as f64 * us_per_tick() / n,
            self.children as f64 * us_per_tick() / n,
        );
    }
}

fn measure(run: impl FnOnce() -> u64) -> Window {
    let before = ticks();
    let started = Instant::now();
    let spawns = run();
    let seconds = started.elapsed().as_secs_f64();
    let after = ticks();
    Window {
        spawns,
        seconds,
        own: after.0 - before.0,
        children: after.1 - before.1,
    }
}

fn bare(threads: usize, length: Duration) -> u64 {
    let started = Instant::now();
    let workers: Vec<_> = (0..threads)
        .map(|_| {
            std::thread::spawn(move || {
                let mut n = 0u64;
                while started.elapsed() < length {
                    let _ = Command::new("/bin/true")
                        .stdin(Stdio::null())
                        .stdout(Stdio::null())
                        .stderr(Stdio::null())
                        .status();
                    n += 1;
                }
                n
            })
        })
        .collect();
    workers.into_iter().map(|t| t.join().unwrap_or(0)).sum()
}

/// How much of the operating system's side of capturing output a [`piped`] loop does, each
/// level adding to the one before.
#[derive(Clone, Copy, PartialEq, PartialOrd)]
enum Level {
    /// stdout and stderr to pipes read to end-of-file, own process group, then `wait`.
    Pipes = 0,
    /// And a pidfd for the child.
    Pidfd = 1,
    /// And the pipes (and pidfd) watched with poll(2) instead of blocking reads.
    Poll = 2,
    /// And SIGKILL to the process group after the wait, as every run ends.
    GroupKill = 3,
}

impl Level {
    fn parse(text: &str) -> Option<Level> {
        Some(match text.trim() {
            "0" => Level::Pipes,
            "1" => Level::Pidfd,
            "2" => Level::Poll,
            "3" => Level::GroupKill,
            _ => return None,
        })
    }
}

/// A thread-per-process loop with what the runner asks of the system, up to `level`, and
/// none of its own machinery: what capturing output costs the system alone.
fn piped(threads: usize, length: Duration, level: Level) -> u64 {
    let started = Instant::now();
    let workers: Vec<_> = (0..threads)
        .map(|_| {
            std::thread::spawn(move || {
                let mut n = 0u64;
                let mut buf = vec![0u8; 8192];
                while started.elapsed() < length {
                    piped_once(level, &mut buf);
                    n += 1;
                }
                n
            })
        })
        .collect();
    workers.into_iter().map(|t| t.join().unwrap_or(0)).sum()
}

fn piped_once(level: Level, buf: &mut [u8]) {
    use rustix::event::{PollFd, PollFlags, Timespec};
    use rustix::process::{Pid, PidfdFlags, Signal};
    use std::io::Read;
    use std::os::fd::AsFd;
    use std::os::unix::process::CommandExt;

    let mut child = Command::new("/bin/true")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .spawn()
        .expect("spawn /bin/true");
    let pid = i32::try_from(child.id()).ok().and_then(Pid::from_raw);
    let pidfd = pid
        .filter(|_| level >= Level::Pidfd)
        .and_then(|pid| rustix::process::pidfd_open(pid, PidfdFlags::empty()).ok());
    let mut out = child.stdout.take();
    let mut err = child.stderr.take();
    // One read of a pipe: false at its end-of-file.
    let mut more = |pipe: &mut dyn Read| pipe.read(buf).unwrap_or(0) > 0;
    if level >= Level::Poll {
        while out.is_some() || err.is_some() {
            let mut fds = Vec::with_capacity(3);
            if let Some(pipe) = &out {
                fds.push(PollFd::from_borrowed_fd(pipe.as_fd(), PollFlags::IN));
            }
            if let Some(pipe) = &err {
                fds.push(PollFd::from_borrowed_fd(pipe.as_fd(), PollFlags::IN));
            }
            if let Some(fd) = &pidfd {
                fds.push(PollFd::from_borrowed_fd(fd.as_fd(), PollFlags::IN));
            }
            let limit = Timespec {
                tv_sec: 0,
                tv_nsec: 50_000_000,
            };
            let _ = rustix::event::poll(&mut fds, Some(&limit));
            drop(fds);
            if out.as_mut().is_some_and(|pipe| !more(pipe)) {
                out = None;
            }
            if err.as_mut().is_some_and(|pipe| !more(pipe)) {
                err = None;
            }
        }
    } else {
        for pipe in [
            out.as_mut().map(|p| p as &mut dyn Read),
            err.as_mut().map(|p| p as &mut dyn Read),
        ]
        .into_iter()
        .flatten()
        {
            while more(pipe) {}
        }
    }
    let _ = child.wait();
    if level >= Level::GroupKill
        && let Some(pid) = pid
    {
        let _ = rustix::process::kill_process_group(pid, Signal::KILL);
    }
}

/// Each run's callback starts the next one on the runner's own thread, so the load needs no
/// feeding thread (whose wake-ups would count as the runner's). The chain ends, dropping
/// `done`, once `until` has passed.
fn chain(
    runner: Runner,
    spec: ProcessSpec,
    until: Instant,
    spawned: Arc<AtomicU64>,
    done: mpsc::Sender<()>,
) {
    let next = runner.clone();
    let again = spec.clone();
    runner.start(spec, None, None, CancellationToken::new(), move |result| {
        assert_eq!(
            result.outcome,
            Outcome::Exited(0),
            "/bin/true did not exit 0"
        );
        spawned.fetch_add(1, Ordering::Relaxed);
        if Instant::now() < until {
            chain(next, again, until, spawned, done);
        } else {
            drop(done);
        }
    });
}

fn runner(runner: &Runner, threads: usize, length: Duration) -> u64 {
    let spec = ProcessSpec {
        command: vec!["/bin/true".to_owned()],
        ..ProcessSpec::default()
    };
    let spawned = Arc::new(AtomicU64::new(0));
    let (done, finished) = mpsc::channel::<()>();
    // Twice as many chains as threads keep every thread busy.
    let until = Instant::now() + length;
    for _ in 0..2 * threads {
        chain(
            runner.clone(),
            spec.clone(),
            until,
            Arc::clone(&spawned),
            done.clone(),
        );
    }
    drop(done);
    // Returns once every chain has dropped its sender.
    while finished.recv().is_ok() {}
    spawned.load(Ordering::Relaxed)
}

fn main() {
    let length = Duration::from_secs(env_u64("WARDEN_BENCH_RUNNER_S", 5));
    let rounds = env_u64("WARDEN_BENCH_RUNNER_ROUNDS", 3);
    let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
    let threads =
        usize::try_from(env_u64("WARDEN_BENCH_RUNNER_THREADS", 4 * cores as u64)).unwrap_or(8);
    println!("/bin/true back to back from {threads} threads, windows of {length:?}, {cores} cores");
    let pool = Runner::new(threads);
    if let Ok(levels) = std::env::var("WARDEN_BENCH_RUNNER_PIPED") {
        // Alternating windows of the given piped loop levels, e.g. "0,1".
        let levels: Vec<Level> = levels.split(',').filter_map(Level::parse).collect();
        for _ in 0..rounds {
            for &level in &levels {
                measure(|| piped(threads, length, level)).print(&format!("piped{}", level as u8));
            }
        }
        return;
    }
    if std::env::var_os("WARDEN_BENCH_RUNNER_ONLY").is_some() {
        // For counting the runner's system calls (perf stat) without the other loops'.
        measure(|| runner(&pool, threads, length)).print("runner");
        return;
    }
    let mut bare_rates = Vec::new();
    let mut shares = Vec::new();
    let first = measure(|| bare(threads, length));
    first.print("bare");
    bare_rates.push(first.spawns as f64 / first.seconds);
    for _ in 0..rounds {
        for level in [Level::Pipes, Level::Pidfd, Level::Poll, Level::GroupKill] {
            measure(|| piped(threads, length, level)).print(&format!("piped{}", level as u8));
        }
        let window = measure(|| runner(&pool, threads, length));
        window.print("runner");
        let rate = window.spawns as f64 / window.seconds;
        let after = measure(|| bare(threads, length));
        after.print("bare");
        let after_rate = after.spawns as f64 / after.seconds;
        let before_rate = bare_rates.last().copied().unwrap_or(after_rate);
        shares.push(100.0 * rate / ((before_rate + after_rate) / 2.0));
        bare_rates.push(after_rate);
    }
    let text: Vec<String> = shares.iter().map(|s| format!("{s:.0}%")).collect();
    println!(
        "runner vs the bare windows either side: {}",
        text.join(", ")
    );
}
