//! Tests with real processes (`sh -c ...`): exit codes, streaming, timeouts, process groups,
//! output caps, environment.

use std::path::Path;
use std::time::{Duration, SystemTime};

use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::output::{Collector, LineSplitter};
use crate::{
    CLEAN_PATH, MAX_LINE_BYTES, Outcome, OutputLine, ProcessResult, ProcessSpec, Runner, SpecError,
    Stream, run_process,
};

/// Generous bound for "should be quick" waits (the machine may be busy building).
const PATIENCE: Duration = Duration::from_secs(20);

fn sh(script: &str) -> ProcessSpec {
    ProcessSpec {
        timeout: Duration::from_secs(30),
        kill_grace: Duration::from_secs(2),
        ..ProcessSpec::new(["sh", "-c", script])
    }
}

fn with_dir(mut spec: ProcessSpec, dir: &Path) -> ProcessSpec {
    spec.env.push(("DIR".to_owned(), dir.display().to_string()));
    spec
}

async fn run(spec: &ProcessSpec) -> ProcessResult {
    run_process(spec, None, CancellationToken::new()).await
}

/// `/proc/<pid>/stat` fields after the command name: (state, pgrp); `None` if no such process.
fn proc_stat(pid: u32) -> Option<(char, u32)> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = &stat[stat.rfind(')')? + 1..];
    let mut fields = rest.split_whitespace();
    let state = fields.next()?.chars().next()?;
    let _ppid = fields.next()?;
    let pgrp = fields.next()?.parse().ok()?;
    Some((state, pgrp))
}

/// Dead: no such process, or a zombie (dead, only waiting to be reaped; on this machine PID 1
/// does not reap orphans, so killed grandchildren stay zombies).
fn is_dead(pid: u32) -> bool {
    matches!(proc_stat(pid), None | Some(('Z' | 'X' | 'x', _)))
}

/// Live (non-zombie) processes in process group `pgid`.
fn live_group_members(pgid: u32) -> Vec<u32> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .filter_map(|entry| entry.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|&pid| matches!(proc_stat(pid), Some((state, pgrp)) if pgrp == pgid && !matches!(state, 'Z' | 'X' | 'x')))
        .collect()
}

/// Polls `condition` every 20 ms for up to `limit`; true as soon as it holds.
async fn eventually(limit: Duration, mut condition: impl FnMut() -> bool) -> bool {
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        if condition() {
            return true;
        }
        if tokio::time::Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A pid written by the script with `echo $! > file`, once the line is complete.
fn read_pid(path: &Path) -> Option<u32> {
    let text = std::fs::read_to_string(path).ok()?;
    text.strip_suffix('\n')?.trim().parse().ok()
}

async fn assert_all_dead(pids: &[u32]) {
    assert!(
        eventually(Duration::from_secs(5), || pids.iter().all(|&p| is_dead(p))).await,
        "still alive: {:?}",
        pids.iter().filter(|&&p| !is_dead(p)).collect::<Vec<_>>()
    );
}

async fn assert_group_gone(pgid: Option<u32>) {
    let pgid = pgid.expect("the process started");
    assert!(
        eventually(Duration::from_secs(5), || live_group_members(pgid)
            .is_empty())
        .await,
        "group {pgid} still has {:?}",
        live_group_members(pgid)
    );
}

async fn recv(rx: &mut mpsc::Receiver<OutputLine>) -> OutputLine {
    tokio::time::timeout(PATIENCE, rx.recv())
        .await
        .expect("no line in time")
        .expect("line channel closed")
}

fn lines_of(stream: Stream, lines: &[OutputLine]) -> Vec<&str> {
    lines
        .iter()
        .filter(|l| l.stream == stream)
        .map(|l| l.line.as_str())
        .collect()
}

fn drain_channel(rx: &mut mpsc::Receiver<OutputLine>) -> Vec<OutputLine> {
    let mut lines = Vec::new();
    while let Ok(line) = rx.try_recv() {
        lines.push(line);
    }
    lines
}

// ---------------------------------------------------------------------------------------------
// Outcomes

#[tokio::test]
async fn exit_codes_are_reported() {
    for code in [0, 1, 2, 3, 7] {
        let result = run(&sh(&format!("exit {code}"))).await;
        assert_eq!(result.outcome, Outcome::Exited(code), "{result:?}");
        assert_eq!(result.exit_code(), Some(code));
        assert!(result.pid.is_some());
    }
}

#[tokio::test]
async fn death_by_signal_is_reported() {
    let result = run(&sh("kill -9 $$")).await;
    assert_eq!(result.outcome, Outcome::Signaled(9), "{result:?}");
    assert_eq!(result.exit_code(), None);
}

#[tokio::test]
async fn missing_program_fails_to_spawn_naming_it() {
    let result = run(&ProcessSpec::new(["warden-no-such-program", "x"])).await;
    assert_eq!(
        result.outcome,
        Outcome::SpawnFailed(
            "cannot run `warden-no-such-program`: No such file or directory".to_owned()
        )
    );
    assert_eq!(result.pid, None);
}

#[tokio::test]
async fn non_executable_file_fails_to_spawn() {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("not-executable");
    std::fs::write(&file, "#!/bin/sh\necho hi\n").expect("write");
    let program = file.display().to_string();
    let result = run(&ProcessSpec::new([program.clone()])).await;
    let Outcome::SpawnFailed(message) = &result.outcome else {
        panic!("expected SpawnFailed, got {result:?}");
    };
    assert!(message.contains(&program), "{message}");
    assert!(message.contains("Permission denied"), "{message}");
}

#[tokio::test]
async fn empty_command_fails_to_spawn() {
    for command in [vec![], vec![String::new(), "arg".to_owned()]] {
        let spec = ProcessSpec::new(command);
        assert_eq!(spec.validate(), Err(SpecError::EmptyCommand));
        let result = run(&spec).await;
        assert!(
            matches!(&result.outcome, Outcome::SpawnFailed(m) if m.contains("empty command")),
            "{result:?}"
        );
        assert_eq!(result.pid, None);
    }
}

#[tokio::test]
async fn missing_or_bad_cwd_fails_to_spawn() {
    let dir = tempfile::tempdir().expect("tempdir");
    let missing = dir.path().join("nope");
    let spec = ProcessSpec {
        cwd: Some(missing.clone()),
        ..sh("true")
    };
    assert!(matches!(spec.validate(), Err(SpecError::CwdMissing { .. })));
    let result = run(&spec).await;
    let Outcome::SpawnFailed(message) = &result.outcome else {
        panic!("expected SpawnFailed, got {result:?}");
    };
    assert!(message.contains("`sh`"), "{message}");
    assert!(
        message.contains(&missing.display().to_string()),
        "{message}"
    );

    let file = dir.path().join("file");
    std::fs::write(&file, "").expect("write");
    let spec = ProcessSpec {
        cwd: Some(file.clone()),
        ..sh("true")
    };
    assert_eq!(spec.validate(), Err(SpecError::CwdNotDirectory(file)));
    assert!(matches!(run(&spec).await.outcome, Outcome::SpawnFailed(_)));
}

#[tokio::test]
async fn already_cancelled_token_starts_nothing() {
    let cancel = CancellationToken::new();
    cancel.cancel();
    let result = run_process(&sh("echo hi"), None, cancel).await;
    assert_eq!(result.outcome, Outcome::Cancelled);
    assert_eq!(result.pid, None);
    assert_eq!(result.stdout, "");
}

#[tokio::test]
async fn stdin_is_dev_null() {
    let result = run(&sh("cat; echo end")).await;
    assert_eq!(result.outcome, Outcome::Exited(0));
    assert_eq!(result.stdout, "end\n");
}

#[tokio::test]
async fn child_runs_in_its_own_process_group() {
    let result = run(&sh("ps -o pgid= -p $$ | tr -d ' '; echo $$")).await;
    assert_eq!(result.outcome, Outcome::Exited(0), "{result:?}");
    let mut lines = result.stdout.lines();
    let pgid = lines.next().expect("pgid line");
    let pid = lines.next().expect("pid line");
    assert_eq!(pgid, pid);
    assert_eq!(result.pid.map(|p| p.to_string()).as_deref(), Some(pid));
}

// ---------------------------------------------------------------------------------------------
// Output

#[tokio::test]
async fn stdout_and_stderr_are_captured_and_labelled() {
    let (tx, mut rx) = mpsc::channel(100);
    let spec = sh("echo one; echo two >&2; echo three; echo four >&2; echo five");
    let result = run_process(&spec, Some(tx), CancellationToken::new()).await;
    assert_eq!(result.outcome, Outcome::Exited(0));
    assert_eq!(result.stdout, "one\nthree\nfive\n");
    assert_eq!(result.stderr, "two\nfour\n");
    assert_eq!(result.truncated_bytes, 0);
    assert_eq!(result.dropped_lines, 0);
    let lines = drain_channel(&mut rx);
    assert_eq!(lines_of(Stream::Stdout, &lines), ["one", "three", "five"]);
    assert_eq!(lines_of(Stream::Stderr, &lines), ["two", "four"]);
    assert!(lines.iter().all(|l| l.at <= SystemTime::now()));
}

#[tokio::test]
async fn lines_are_streamed_while_the_process_runs() {
    let dir = tempfile::tempdir().expect("tempdir");
    let flag = dir.path().join("go");
    let mut spec = sh(r#"echo ready; while [ ! -e "$F" ]; do sleep 0.05; done; echo done"#);
    spec.env.push(("F".to_owned(), flag.display().to_string()));
    let (tx, mut rx) = mpsc::channel(16);

    let consumer = async {
        let first = recv(&mut rx).await;
        assert_eq!(
            (first.stream, first.line.as_str()),
            (Stream::Stdout, "ready")
        );
        // The script is still waiting for the flag: "ready" cannot have come from a buffer
        // flushed at the end.
        assert!(!flag.exists());
        std::fs::write(&flag, "").expect("create flag");
        let created = SystemTime::now();
        assert!(first.at <= created);
        let second = recv(&mut rx).await;
        assert_eq!(second.line, "done");
    };
    let (result, ()) = tokio::join!(
        run_process(&spec, Some(tx), CancellationToken::new()),
        consumer
    );
    assert_eq!(result.outcome, Outcome::Exited(0), "{result:?}");
    assert_eq!(result.stdout, "ready\ndone\n");
}

#[tokio::test]
async fn partial_last_line_is_delivered() {
    let (tx, mut rx) = mpsc::channel(16);
    let spec = sh("printf 'first\\nno newline'; printf 'err tail' >&2");
    let result = run_process(&spec, Some(tx), CancellationToken::new()).await;
    assert_eq!(result.outcome, Outcome::Exited(0));
    assert_eq!(result.stdout, "first\nno newline");
    assert_eq!(result.stderr, "err tail");
    let lines = drain_channel(&mut rx);
    assert_eq!(lines_of(Stream::Stdout, &lines), ["first", "no newline"]);
    assert_eq!(lines_of(Stream::Stderr, &lines), ["err tail"]);
}

#[tokio::test]
async fn long_lines_are_split() {
    let (tx, mut rx) = mpsc::channel(64);
    let spec = ProcessSpec {
        output_cap: 1 << 20,
        ..sh("head -c 200000 /dev/zero | tr '\\0' x; echo; echo short")
    };
    let result = run_process(&spec, Some(tx), CancellationToken::new()).await;
    assert_eq!(result.outcome, Outcome::Exited(0));
    assert_eq!(result.stdout.len(), 200_000 + 1 + 6);
    let lines = drain_channel(&mut rx);
    let sizes: Vec<usize> = lines.iter().map(|l| l.line.len()).collect();
    assert_eq!(
        sizes,
        [
            MAX_LINE_BYTES,
            MAX_LINE_BYTES,
            MAX_LINE_BYTES,
            200_000 - 3 * MAX_LINE_BYTES,
            5
        ]
    );
}

#[tokio::test]
async fn output_cap_limits_kept_output_but_not_the_stream() {
    const TOTAL: usize = 1 << 20; // 1 MiB of "0123456789abcdef\n" lines
    const CAP: usize = 64 * 1024;
    let (tx, mut rx) = mpsc::channel(70_000);
    let spec = ProcessSpec {
        output_cap: CAP,
        ..sh(&format!("yes 0123456789abcdef | head -c {TOTAL}"))
    };
    let result = run_process(&spec, Some(tx), CancellationToken::new()).await;
    assert_eq!(result.outcome, Outcome::Exited(0));

    let dropped = (TOTAL - CAP) as u64;
    assert_eq!(result.truncated_bytes, dropped);
    let marker = format!("[output truncated: {dropped} bytes dropped]\n");
    let kept = result
        .stdout
        .strip_suffix(&marker)
        .expect("marker at the end");
    assert!(!kept.contains("[output truncated"), "marker only once");
    // The cap falls inside a line: the kept part is cut there, and the marker has its own line.
    let kept = kept.strip_suffix('\n').expect("marker on its own line");
    assert_eq!(kept.len(), CAP);
    assert!(kept.starts_with("0123456789abcdef\n0123456789abcdef\n"));
    assert!(result.stdout.capacity() <= 2 * CAP + marker.len() + 1);
    assert_eq!(result.stderr, "");

    // Every line was still streamed: 61680 full lines and a partial one of 16 bytes.
    let lines = drain_channel(&mut rx);
    assert_eq!(result.dropped_lines, 0);
    assert_eq!(lines.len(), TOTAL / 17 + 1);
    assert!(lines.iter().all(|l| l.line == "0123456789abcdef"));
}

#[tokio::test]
async fn stdout_and_stderr_share_the_cap() {
    let spec = ProcessSpec {
        output_cap: 8,
        ..sh("echo 12345; echo 67890 >&2")
    };
    let result = run(&spec).await;
    assert_eq!(result.outcome, Outcome::Exited(0));
    assert_eq!(result.truncated_bytes, 4);
    let stdout = result
        .stdout
        .strip_suffix("[output truncated: 4 bytes dropped]\n")
        .expect("marker");
    // Which stream came first depends on scheduling; together they hold exactly the cap. A
    // newline is added before the marker only if the kept stdout does not end with one.
    assert!(
        (stdout == "12345\n" && result.stderr == "67")
            || (stdout == "12\n" && result.stderr == "67890\n"),
        "{result:?}"
    );
}

#[tokio::test]
async fn full_line_receiver_never_blocks_the_process() {
    let (tx, rx) = mpsc::channel(1);
    let result = run_process(&sh("seq 1 1000"), Some(tx), CancellationToken::new()).await;
    assert_eq!(result.outcome, Outcome::Exited(0));
    assert_eq!(result.dropped_lines, 999);
    assert_eq!(result.stdout.lines().count(), 1000);
    drop(rx);
}

#[tokio::test]
async fn closed_line_receiver_counts_drops() {
    let (tx, rx) = mpsc::channel(1000);
    drop(rx);
    let result = run_process(&sh("seq 1 10"), Some(tx), CancellationToken::new()).await;
    assert_eq!(result.outcome, Outcome::Exited(0));
    assert_eq!(result.dropped_lines, 10);
}

#[tokio::test]
async fn invalid_utf8_is_replaced() {
    let result = run(&sh("printf 'a\\377b\\n'")).await;
    assert_eq!(result.stdout, "a\u{FFFD}b\n");
}

// ---------------------------------------------------------------------------------------------
// Timeouts, cancellation and the process group

#[tokio::test]
async fn timeout_kills_the_whole_tree() {
    let script =
        r#"sh -c 'sleep 300 & echo $! > "$DIR/gc.pid"; wait' & echo $! > "$DIR/c.pid"; wait"#;
    // 500 ms is plenty for three shells to start; if the machine is so busy that the pid files
    // were not written in time, try again with more time rather than fail.
    for timeout in [500, 2_000, 8_000].map(Duration::from_millis) {
        let dir = tempfile::tempdir().expect("tempdir");
        let spec = ProcessSpec {
            timeout,
            ..with_dir(sh(script), dir.path())
        };
        let result = run(&spec).await;
        assert_eq!(result.outcome, Outcome::TimedOut, "{result:?}");
        assert!(result.duration >= timeout);
        assert!(result.duration < timeout + spec.kill_grace + Duration::from_secs(5));
        let (Some(child), Some(grandchild)) = (
            read_pid(&dir.path().join("c.pid")),
            read_pid(&dir.path().join("gc.pid")),
        ) else {
            continue;
        };
        let leader = result.pid.expect("pid");
        assert_all_dead(&[leader, child, grandchild]).await;
        assert_group_gone(result.pid).await;
        return;
    }
    panic!("the script never got to write its pid files");
}

#[tokio::test]
async fn flooding_output_does_not_starve_the_timeout() {
    let spec = ProcessSpec {
        timeout: Duration::from_millis(300),
        ..sh("yes")
    };
    let result = run(&spec).await;
    assert_eq!(result.outcome, Outcome::TimedOut);
    assert!(result.truncated_bytes > 0);
    assert!(result.stdout.len() <= spec.output_cap + 64);
    assert!(result.duration < spec.timeout + spec.kill_grace + Duration::from_secs(5));
    assert_group_gone(result.pid).await;
}

#[tokio::test]
async fn sigterm_ignoring_group_is_killed_after_the_grace() {
    let dir = tempfile::tempdir().expect("tempdir");
    // SIG_IGN is inherited across exec, so the background sleep ignores TERM too.
    let script = r#"trap '' TERM; sleep 300 & echo $! > "$DIR/gc.pid"; echo ready; while :; do sleep 0.1; done"#;
    let spec = ProcessSpec {
        kill_grace: Duration::from_millis(700),
        ..with_dir(sh(script), dir.path())
    };
    // Stop it (same path as a timeout) once the trap is surely in place.
    let (tx, mut rx) = mpsc::channel(16);
    let cancel = CancellationToken::new();
    let stopper = async {
        assert_eq!(recv(&mut rx).await.line, "ready");
        tokio::time::Instant::now()
    };
    let (result, stopped_at) = tokio::join!(run_process(&spec, Some(tx), cancel.clone()), async {
        let at = stopper.await;
        cancel.cancel();
        at
    });
    assert_eq!(result.outcome, Outcome::Cancelled, "{result:?}");
    // SIGTERM was ignored by everyone, so the run waited the whole grace before SIGKILL.
    let after_stop = stopped_at.elapsed();
    assert!(after_stop >= spec.kill_grace, "{after_stop:?}");
    assert!(
        after_stop < spec.kill_grace + Duration::from_secs(10),
        "{after_stop:?}"
    );
    let grandchild = read_pid(&dir.path().join("gc.pid")).expect("gc.pid");
    assert_all_dead(&[result.pid.expect("pid"), grandchild]).await;
    assert_group_gone(result.pid).await;
}

#[tokio::test]
async fn sigterm_ends_a_cooperative_process_without_waiting_the_grace() {
    let spec = ProcessSpec {
        timeout: Duration::from_millis(200),
        kill_grace: Duration::from_secs(60),
        ..sh("sleep 300")
    };
    let result = run(&spec).await;
    assert_eq!(result.outcome, Outcome::TimedOut);
    assert!(
        result.duration < Duration::from_secs(30),
        "{:?}",
        result.duration
    );
}

#[tokio::test]
async fn cancel_kills_the_group() {
    let dir = tempfile::tempdir().expect("tempdir");
    let script = r#"sleep 300 & echo $! > "$DIR/gc.pid"; echo started; wait"#;
    let spec = with_dir(sh(script), dir.path());
    let (tx, mut rx) = mpsc::channel(16);
    let cancel = CancellationToken::new();
    let (result, ()) = tokio::join!(run_process(&spec, Some(tx), cancel.clone()), async {
        assert_eq!(recv(&mut rx).await.line, "started");
        cancel.cancel();
    });
    assert_eq!(result.outcome, Outcome::Cancelled, "{result:?}");
    assert_eq!(result.stdout, "started\n");
    assert!(result.duration < spec.kill_grace + Duration::from_secs(10));
    let grandchild = read_pid(&dir.path().join("gc.pid")).expect("gc.pid");
    assert_all_dead(&[result.pid.expect("pid"), grandchild]).await;
    assert_group_gone(result.pid).await;
}

#[tokio::test]
async fn dropping_the_future_kills_the_group() {
    let dir = tempfile::tempdir().expect("tempdir");
    let script =
        r#"echo $$ > "$DIR/leader.pid"; sleep 300 & echo $! > "$DIR/gc.pid"; echo started; wait"#;
    let spec = with_dir(sh(script), dir.path());
    let (tx, mut rx) = mpsc::channel(16);
    let mut future = Box::pin(run_process(&spec, Some(tx), CancellationToken::new()));
    tokio::select! {
        result = &mut future => panic!("finished early: {result:?}"),
        line = recv(&mut rx) => assert_eq!(line.line, "started"),
    }
    drop(future);
    let leader = read_pid(&dir.path().join("leader.pid")).expect("leader.pid");
    let grandchild = read_pid(&dir.path().join("gc.pid")).expect("gc.pid");
    assert_all_dead(&[leader, grandchild]).await;
    assert_group_gone(Some(leader)).await;
}

#[tokio::test]
async fn grandchild_holding_stdout_does_not_hang_the_run() {
    let dir = tempfile::tempdir().expect("tempdir");
    let spec = with_dir(
        sh(r#"sleep 300 & echo $! > "$DIR/gc.pid"; echo hi"#),
        dir.path(),
    );
    let result = run(&spec).await;
    assert_eq!(result.outcome, Outcome::Exited(0), "{result:?}");
    assert_eq!(result.stdout, "hi\n");
    assert!(
        result.duration < Duration::from_secs(10),
        "{:?}",
        result.duration
    );
    let grandchild = read_pid(&dir.path().join("gc.pid")).expect("gc.pid");
    assert_all_dead(&[grandchild]).await;
    assert_group_gone(result.pid).await;
}

/// Closed pipes are not taken for an exit: the run lasts as long as the child, and its code
/// is the one it exits with (its exit is then seen through a pidfd, not the pipes).
#[tokio::test]
async fn a_child_that_closes_its_output_early_is_waited_for_to_its_exit() {
    let spec = sh("echo before; exec >&- 2>&-; sleep 0.3; exit 3");
    let result = run(&spec).await;
    assert_eq!(result.outcome, Outcome::Exited(3), "{result:?}");
    assert_eq!(result.stdout, "before\n");
    assert!(
        result.duration >= Duration::from_millis(300),
        "{:?}",
        result.duration
    );
}

/// A short run whose pipes close as it exits is reaped on their end-of-file, over and over;
/// each result is its own (no run takes another's exit).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_short_runs_at_once_each_get_their_own_exit_code() {
    let mut runs = tokio::task::JoinSet::new();
    for i in 0..64 {
        runs.spawn(async move {
            let spec = sh(&format!("echo {i}; exit {}", i % 4));
            (i, run(&spec).await)
        });
    }
    let mut seen = 0;
    while let Some(joined) = runs.join_next().await {
        let (i, result) = joined.expect("task");
        assert_eq!(result.outcome, Outcome::Exited(i % 4), "{result:?}");
        assert_eq!(result.stdout, format!("{i}\n"));
        seen += 1;
    }
    assert_eq!(seen, 64);
}

#[tokio::test]
async fn grandchild_writing_forever_does_not_hang_the_run() {
    let spec = sh("(while :; do echo x; done) & echo hi");
    let result = run(&spec).await;
    assert_eq!(result.outcome, Outcome::Exited(0), "{result:?}");
    assert!(result.stdout.starts_with("hi\n") || result.stdout.contains("hi\n"));
    assert!(
        result.duration < Duration::from_secs(10),
        "{:?}",
        result.duration
    );
    assert_group_gone(result.pid).await;
}

#[tokio::test]
async fn background_process_with_redirected_output_is_killed_on_normal_exit() {
    let dir = tempfile::tempdir().expect("tempdir");
    let spec = with_dir(
        sh(r#"sleep 300 >/dev/null 2>&1 & echo $! > "$DIR/gc.pid""#),
        dir.path(),
    );
    let result = run(&spec).await;
    assert_eq!(result.outcome, Outcome::Exited(0));
    let grandchild = read_pid(&dir.path().join("gc.pid")).expect("gc.pid");
    assert_all_dead(&[grandchild]).await;
}

// ---------------------------------------------------------------------------------------------
// Runner: a bounded set of threads, a queue in front of them

#[tokio::test]
async fn a_runner_runs_at_most_its_threads_at_once_and_the_rest_wait() {
    let dir = tempfile::tempdir().expect("tempdir");
    let runner = Runner::new(1);
    // Each run writes its start and end to one log, with a pause between: two runs at once
    // would interleave their lines.
    let script = |name: &str| {
        with_dir(
            sh(&format!(
                r#"echo "start {name}" >> "$DIR/log"; sleep 0.2; echo "end {name}" >> "$DIR/log""#
            )),
            dir.path(),
        )
    };
    let (a, b) = (script("a"), script("b"));
    let (ra, rb) = tokio::join!(
        runner.run(&a, None, CancellationToken::new()),
        runner.run(&b, None, CancellationToken::new())
    );
    assert_eq!(ra.outcome, Outcome::Exited(0), "{ra:?}");
    assert_eq!(rb.outcome, Outcome::Exited(0), "{rb:?}");
    let log = std::fs::read_to_string(dir.path().join("log")).expect("log");
    let lines: Vec<&str> = log.lines().collect();
    assert!(
        lines == ["start a", "end a", "start b", "end b"]
            || lines == ["start b", "end b", "start a", "end a"],
        "{lines:?}"
    );
}

#[tokio::test]
async fn a_run_cancelled_while_it_waits_for_a_thread_is_never_started() {
    let dir = tempfile::tempdir().expect("tempdir");
    let runner = Runner::new(1);
    // The first run holds the only thread until the test creates `go`.
    let first = with_dir(
        sh(r#"echo started; while [ ! -e "$DIR/go" ]; do sleep 0.02; done"#),
        dir.path(),
    );
    let second = with_dir(sh(r#"touch "$DIR/second-ran""#), dir.path());
    let (tx, mut rx) = mpsc::channel(16);
    let cancel = CancellationToken::new();
    let (first_result, second_result) = tokio::join!(
        runner.run(&first, Some(tx), CancellationToken::new()),
        async {
            assert_eq!(recv(&mut rx).await.line, "started");
            let mut queued = Box::pin(runner.run(&second, None, cancel.clone()));
            // Polled once: now it waits in the runner's queue.
            tokio::select! {
                biased;
                result = &mut queued => panic!("finished while the only thread was busy: {result:?}"),
                () = std::future::ready(()) => {}
            }
            cancel.cancel();
            std::fs::write(dir.path().join("go"), "").expect("go");
            queued.await
        }
    );
    assert_eq!(first_result.outcome, Outcome::Exited(0), "{first_result:?}");
    assert_eq!(
        second_result.outcome,
        Outcome::Cancelled,
        "{second_result:?}"
    );
    assert_eq!(second_result.pid, None);
    assert!(!dir.path().join("second-ran").exists());
}

// ---------------------------------------------------------------------------------------------
// Environment and working directory

#[tokio::test]
async fn env_is_added_to_the_inherited_environment() {
    let parent_path = std::env::var("PATH").expect("PATH is set for tests");
    let spec = ProcessSpec {
        env: vec![("WARDEN_EXEC_TEST".to_owned(), "hello world".to_owned())],
        ..ProcessSpec::new(["env"])
    };
    let result = run(&spec).await;
    assert_eq!(result.outcome, Outcome::Exited(0));
    let vars: Vec<&str> = result.stdout.lines().collect();
    assert!(vars.contains(&"WARDEN_EXEC_TEST=hello world"), "{vars:?}");
    assert!(
        vars.contains(&format!("PATH={parent_path}").as_str()),
        "{vars:?}"
    );
}

#[tokio::test]
async fn clean_env_keeps_only_path_and_env() {
    // Some variable of ours that must not leak into a clean environment.
    let (leak, _) = std::env::vars()
        .find(|(k, _)| k != "PATH")
        .expect("the test process has some environment");
    let spec = ProcessSpec {
        clean_env: true,
        env: vec![("ONLY".to_owned(), "this".to_owned())],
        ..ProcessSpec::new(["env"])
    };
    let result = run(&spec).await;
    assert_eq!(result.outcome, Outcome::Exited(0), "{result:?}");
    let mut vars: Vec<&str> = result.stdout.lines().collect();
    vars.sort_unstable();
    assert_eq!(vars, ["ONLY=this", &format!("PATH={CLEAN_PATH}")]);
    assert!(!result.stdout.contains(&format!("{leak}=")));
}

#[tokio::test]
async fn clean_env_path_can_be_overridden_and_is_used_for_lookup() {
    let dir = tempfile::tempdir().expect("tempdir");
    let spec = ProcessSpec {
        clean_env: true,
        env: vec![("PATH".to_owned(), dir.path().display().to_string())],
        ..ProcessSpec::new(["sh", "-c", "true"])
    };
    // `sh` is not in the empty directory that is now the whole PATH.
    let result = run(&spec).await;
    assert_eq!(
        result.outcome,
        Outcome::SpawnFailed("cannot run `sh`: No such file or directory".to_owned())
    );
}

#[tokio::test]
async fn cwd_is_used() {
    let dir = tempfile::tempdir().expect("tempdir");
    let spec = ProcessSpec {
        cwd: Some(dir.path().to_owned()),
        ..sh("pwd -P")
    };
    let result = run(&spec).await;
    assert_eq!(result.outcome, Outcome::Exited(0));
    let expected = dir.path().canonicalize().expect("canonical tempdir");
    assert_eq!(result.stdout.trim_end(), expected.display().to_string());
}

// ---------------------------------------------------------------------------------------------
// Line splitting and the cap, without processes

fn split_all(chunks: &[&[u8]]) -> Vec<(Vec<u8>, bool)> {
    let mut splitter = LineSplitter::default();
    let mut out = Vec::new();
    let mut emit = |bytes: Vec<u8>, newline: bool| out.push((bytes, newline));
    for chunk in chunks {
        splitter.feed(chunk, &mut emit);
    }
    splitter.finish(&mut emit);
    out
}

#[test]
fn splitter_handles_chunk_boundaries() {
    let out = split_all(&[b"ab", b"c\nde", b"\n\nf"]);
    assert_eq!(
        out,
        [
            (b"abc".to_vec(), true),
            (b"de".to_vec(), true),
            (Vec::new(), true),
            (b"f".to_vec(), false)
        ]
    );
}

#[test]
fn splitter_does_not_invent_an_empty_line_after_an_exactly_full_line() {
    let full = vec![b'x'; MAX_LINE_BYTES];
    let out = split_all(&[&full, b"\nnext\n"]);
    assert_eq!(out, [(full.clone(), true), (b"next".to_vec(), true)]);
}

#[test]
fn splitter_cuts_long_lines_on_character_boundaries() {
    // 'é' is two bytes; an odd prefix puts a character across every 64 KiB boundary.
    let mut line = b"x".to_vec();
    line.extend("é".repeat(100_000).as_bytes());
    let chunks: Vec<&[u8]> = line.chunks(7).collect();
    let out = split_all(&chunks);
    assert!(out.len() >= 4);
    let mut joined = Vec::new();
    for (piece, newline) in &out {
        assert!(!newline);
        assert!(piece.len() <= MAX_LINE_BYTES);
        assert!(
            std::str::from_utf8(piece).is_ok(),
            "piece cut inside a character"
        );
        joined.extend_from_slice(piece);
    }
    assert_eq!(joined, line);
}

#[test]
fn cap_cuts_on_a_character_boundary() {
    let mut collector = Collector::new(4, None);
    collector.line(Stream::Stdout, "aéé".as_bytes().to_vec(), true);
    collector.line(Stream::Stderr, b"z".to_vec(), true);
    let (stdout, stderr, truncated, dropped) = collector.into_parts();
    // "aé" is 3 bytes; the next 'é' would cross the 4-byte cap.
    assert_eq!(
        stdout, "aé\n[output truncated: 5 bytes dropped]\n",
        "2 bytes of é, the newline, and \"z\\n\""
    );
    assert_eq!(stderr, "");
    assert_eq!(truncated, 5);
    assert_eq!(dropped, 0);
}

#[test]
fn zero_cap_keeps_nothing() {
    let mut collector = Collector::new(0, None);
    collector.line(Stream::Stdout, b"abc".to_vec(), false);
    let (stdout, stderr, truncated, _) = collector.into_parts();
    assert_eq!(stdout, "[output truncated: 3 bytes dropped]\n");
    assert_eq!(stderr, "");
    assert_eq!(truncated, 3);
}

mod judging {
    //! The Nagios plugin conventions applied to process results.

    use std::time::Duration;

    use warden_core::Status;

    use crate::check::judge;
    use crate::{Outcome, ProcessResult};

    fn result(outcome: Outcome, stdout: &str, stderr: &str) -> ProcessResult {
        ProcessResult {
            outcome,
            stdout: stdout.to_string(),
            stderr: stderr.to_string(),
            truncated_bytes: 0,
            dropped_lines: 0,
            duration: Duration::from_millis(5),
            pid: Some(1234),
        }
    }

    fn verdict(
        outcome: Outcome,
        stdout: &str,
        stderr: &str,
    ) -> Option<(Status, String, Option<i64>, usize, usize)> {
        judge(
            &result(outcome, stdout, stderr),
            Duration::from_millis(1500),
        )
        .map(|o| {
            (
                o.status,
                o.summary,
                o.exit_code,
                o.perfdata.len(),
                o.notes.len(),
            )
        })
    }

    #[test]
    fn exit_codes_map_to_statuses_and_summaries() {
        let cases = [
            (0, Status::Ok),
            (1, Status::Warn),
            (2, Status::Crit),
            (3, Status::Unknown),
        ];
        for (code, status) in cases {
            let got = verdict(
                Outcome::Exited(code),
                "DISK OK - free space: / 3326 MB|/=2643MB;5948;6043;0;6058\nmore\n",
                "",
            );
            assert_eq!(
                got,
                Some((
                    status,
                    "DISK OK - free space: / 3326 MB".to_string(),
                    Some(i64::from(code)),
                    1,
                    0
                ))
            );
        }
    }

    #[test]
    fn anything_else_is_unknown_with_the_reason() {
        assert_eq!(
            verdict(Outcome::Exited(7), "weird", ""),
            Some((
                Status::Unknown,
                "exit code 7 is not a plugin status (0-3): weird".to_string(),
                Some(7),
                0,
                0
            ))
        );
        assert_eq!(
            verdict(Outcome::Signaled(9), "partial", ""),
            Some((
                Status::Unknown,
                "killed by signal 9".to_string(),
                None,
                0,
                0
            ))
        );
        assert_eq!(
            verdict(Outcome::TimedOut, "", ""),
            Some((
                Status::Unknown,
                "timed out after 1s500ms; the process group was killed".to_string(),
                None,
                0,
                0
            ))
        );
        assert_eq!(
            verdict(
                Outcome::SpawnFailed("cannot run `nosuch`: No such file or directory".into()),
                "",
                ""
            ),
            Some((
                Status::Unknown,
                "cannot run `nosuch`: No such file or directory".to_string(),
                None,
                0,
                0
            ))
        );
        assert_eq!(
            verdict(Outcome::Cancelled, "", ""),
            None,
            "a cancelled run reports nothing"
        );
    }

    #[test]
    fn empty_stdout_falls_back_to_stderr_and_bad_perfdata_is_a_note() {
        assert_eq!(
            verdict(Outcome::Exited(2), "", "\n  connection refused\n"),
            Some((
                Status::Crit,
                "connection refused".to_string(),
                Some(2),
                0,
                0
            ))
        );
        assert_eq!(
            verdict(Outcome::Exited(0), "", ""),
            Some((
                Status::Ok,
                "exit code 0, no output".to_string(),
                Some(0),
                0,
                0
            ))
        );
        assert_eq!(
            verdict(Outcome::Exited(0), "OK | good=1 bad=1zz 'open=2", ""),
            Some((Status::Ok, "OK".to_string(), Some(0), 1, 2)),
            "malformed items are skipped with a note, never failing the run"
        );
    }
}
