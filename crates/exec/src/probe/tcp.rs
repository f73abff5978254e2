//! TCP probe: resolve the host, connect, optionally send a text and wait for an expected reply.
//!
//! Also holds the small helpers the dns and icmp probes share with it: the time [`Budget`],
//! host resolution, the cancellation wrapper and duration / error formatting.

use std::fmt::Write as _;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::{Instant, timeout_at};
use tokio_util::sync::CancellationToken;
use warden_core::config::TcpCheck;

use super::{FailureReason, Observation, ProbeError};

/// The most bytes read while waiting for the expected text.
pub const MAX_RECEIVE_BYTES: usize = 64 * 1024;

/// Connects to `check.host:check.port`, sends `check.send` if any, and when `check.expect` is
/// set reads until that text appears, the peer closes, [`MAX_RECEIVE_BYTES`] were read or the
/// time runs out.
///
/// Facts: `connected`, `ip` (the address connected to, or the last one tried), `response_time`
/// (total) and, when `expect` is set, `body` (what was received, lossy UTF-8).
///
/// Samples: `dns_time` (only when `host` is a name), `connect_time`, `response_time` (total),
/// and `expect_matched` (1 or 0, only when `expect` is set).
///
/// A missing expected text is not an error (the caller judges `expect_matched`), except when the
/// read ran out of time: then the error is a timeout naming what was awaited.
///
/// # Cancel safety
///
/// Dropping the future closes the socket. When `cancel` fires the probe stops at once and returns
/// what it saw so far with a `timeout` error "cancelled". Name resolution runs `getaddrinfo` on
/// tokio's blocking pool; that call cannot be interrupted and finishes on its own (bounded by the
/// system resolver's timeouts), holding no socket of the probe.
pub async fn probe_tcp(
    check: &TcpCheck,
    timeout: Duration,
    cancel: &CancellationToken,
) -> Observation {
    observe(cancel, async |observation| {
        run(check, timeout, observation).await
    })
    .await
}

async fn run(check: &TcpCheck, timeout: Duration, observation: &mut Observation) {
    let budget = Budget::start(timeout);
    let result = exchange(check, &budget, observation).await;
    let total = budget.elapsed();
    observation.facts.response_time = Some(total);
    observation
        .samples
        .push(("response_time".to_string(), total.as_secs_f64()));
    if let Err(error) = result {
        observation.error = Some(error);
    }
}

async fn exchange(
    check: &TcpCheck,
    budget: &Budget,
    observation: &mut Observation,
) -> Result<(), ProbeError> {
    let addresses = resolve(&check.host, check.port, budget, observation).await?;
    let (mut stream, address, connect_time) = connect(&addresses, budget, observation).await?;
    observation.facts.connected = true;
    observation
        .samples
        .push(("connect_time".to_string(), connect_time.as_secs_f64()));
    observation.summary = format!("connected to {address} in {}", millis_text(connect_time));

    if let Some(send) = &check.send {
        match timeout_at(budget.deadline, stream.write_all(send.as_bytes())).await {
            Err(_elapsed) => return Err(budget.timed_out(&format!("sending to {address}"))),
            Ok(Err(error)) => {
                return Err(ProbeError {
                    reason: FailureReason::Connect,
                    message: format!("sending to {address}: {}", io_error_text(&error)),
                });
            }
            Ok(Ok(())) => {}
        }
    }

    let Some(expect) = &check.expect else {
        return Ok(());
    };
    let received = receive_until(&mut stream, expect.as_bytes(), budget).await;
    let got = received.bytes.len();
    observation.facts.body = Some(String::from_utf8_lossy(&received.bytes).into_owned());
    let matched = matches!(received.end, ReceiveEnd::Matched);
    observation.samples.push((
        "expect_matched".to_string(),
        if matched { 1.0 } else { 0.0 },
    ));
    let (why, error) = match received.end {
        ReceiveEnd::Matched => {
            let _ = write!(observation.summary, ", received {expect:?}");
            return Ok(());
        }
        ReceiveEnd::Closed => ("the peer closed the connection", None),
        ReceiveEnd::Full => ("the read limit was reached", None),
        ReceiveEnd::TimedOut => (
            "the time ran out",
            Some(ProbeError {
                reason: FailureReason::Timeout,
                message: format!(
                    "timed out after {} waiting for {expect:?} ({got} bytes received)",
                    duration_text(budget.timeout)
                ),
            }),
        ),
        ReceiveEnd::Failed(error) => (
            "the read failed",
            Some(ProbeError {
                reason: FailureReason::Connect,
                message: format!("reading from {address}: {}", io_error_text(&error)),
            }),
        ),
    };
    observation.notes.push(format!(
        "expected {expect:?} not received ({got} bytes read before {why})"
    ));
    error.map_or(Ok(()), Err)
}

/// Tries each address in turn until one accepts, within the budget.
async fn connect(
    addresses: &[SocketAddr],
    budget: &Budget,
    observation: &mut Observation,
) -> Result<(TcpStream, SocketAddr, Duration), ProbeError> {
    let mut last_error = None;
    for &address in addresses {
        observation.facts.ip = Some(address.ip().to_string());
        let started = Instant::now();
        match timeout_at(budget.deadline, TcpStream::connect(address)).await {
            Err(_elapsed) => return Err(budget.timed_out(&format!("connecting to {address}"))),
            Ok(Ok(stream)) => return Ok((stream, address, started.elapsed())),
            Ok(Err(error)) => last_error = Some((address, error)),
        }
    }
    Err(match last_error {
        Some((address, error)) => ProbeError {
            reason: FailureReason::Connect,
            message: format!("connecting to {address}: {}", io_error_text(&error)),
        },
        None => ProbeError {
            reason: FailureReason::Dns,
            message: "no address to connect to".to_string(),
        },
    })
}

struct Received {
    bytes: Vec<u8>,
    end: ReceiveEnd,
}

enum ReceiveEnd {
    Matched,
    Closed,
    Full,
    TimedOut,
    Failed(io::Error),
}

async fn receive_until(stream: &mut TcpStream, expect: &[u8], budget: &Budget) -> Received {
    let mut bytes = Vec::new();
    let mut chunk = vec![0_u8; 8 * 1024];
    let mut searched_up_to = 0;
    let end = loop {
        if contains(&bytes[searched_up_to..], expect) {
            break ReceiveEnd::Matched;
        }
        // The text may straddle two reads: search again from where a match could still start.
        searched_up_to = bytes.len().saturating_sub(expect.len().saturating_sub(1));
        let room = MAX_RECEIVE_BYTES
            .saturating_sub(bytes.len())
            .min(chunk.len());
        if room == 0 {
            break ReceiveEnd::Full;
        }
        match timeout_at(budget.deadline, stream.read(&mut chunk[..room])).await {
            Err(_elapsed) => break ReceiveEnd::TimedOut,
            Ok(Ok(0)) => break ReceiveEnd::Closed,
            Ok(Ok(read)) => bytes.extend_from_slice(&chunk[..read]),
            Ok(Err(error)) => break ReceiveEnd::Failed(error),
        }
    };
    Received { bytes, end }
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    needle.is_empty()
        || haystack
            .windows(needle.len())
            .any(|window| window == needle)
}

// ---- Helpers shared with the dns and icmp probes ----

/// The time a probe may take: when it started and when it must be done.
#[derive(Debug, Clone, Copy)]
pub(super) struct Budget {
    pub(super) started: Instant,
    pub(super) deadline: Instant,
    pub(super) timeout: Duration,
}

impl Budget {
    pub(super) fn start(timeout: Duration) -> Budget {
        let started = Instant::now();
        // An absurd timeout must not overflow the clock: cap it at a year.
        let deadline = started
            .checked_add(timeout)
            .or_else(|| started.checked_add(Duration::from_secs(365 * 24 * 3600)))
            .unwrap_or(started);
        Budget {
            started,
            deadline,
            timeout,
        }
    }

    pub(super) fn elapsed(&self) -> Duration {
        self.started.elapsed()
    }

    /// The error for running out of time while doing `phase` ("connecting to 10.0.0.1:80").
    pub(super) fn timed_out(&self, phase: &str) -> ProbeError {
        ProbeError {
            reason: FailureReason::Timeout,
            message: format!("timed out after {} {phase}", duration_text(self.timeout)),
        }
    }
}

/// Runs `probe` against a fresh observation, stopping it at once when `cancel` fires; the
/// observation then keeps what the probe saw so far and gets a `timeout` error "cancelled".
pub(super) async fn observe(
    cancel: &CancellationToken,
    probe: impl AsyncFnOnce(&mut Observation),
) -> Observation {
    let mut observation = Observation::default();
    // Both arms are cancel-safe: `cancelled()` is, and dropping the probe future drops its
    // sockets and leaves the observation as far as it got.
    let finished = tokio::select! {
        biased;
        () = cancel.cancelled() => false,
        () = probe(&mut observation) => true,
    };
    if !finished {
        observation.error = Some(ProbeError {
            reason: FailureReason::Timeout,
            message: "cancelled".to_string(),
        });
    }
    observation
}

/// Resolves `host` (a name, an IP, or a bracketed IPv6) to socket addresses with `port`.
/// A name is looked up with the system resolver and timed as the `dns_time` sample.
pub(super) async fn resolve(
    host: &str,
    port: u16,
    budget: &Budget,
    observation: &mut Observation,
) -> Result<Vec<SocketAddr>, ProbeError> {
    let bare = host
        .strip_prefix('[')
        .and_then(|inner| inner.strip_suffix(']'))
        .unwrap_or(host);
    if let Ok(ip) = bare.parse::<IpAddr>() {
        return Ok(vec![SocketAddr::new(ip, port)]);
    }
    let started = Instant::now();
    let lookup = timeout_at(budget.deadline, tokio::net::lookup_host((bare, port))).await;
    observation
        .samples
        .push(("dns_time".to_string(), started.elapsed().as_secs_f64()));
    match lookup {
        Err(_elapsed) => Err(budget.timed_out(&format!("resolving {host}"))),
        Ok(Err(error)) => Err(ProbeError {
            reason: FailureReason::Dns,
            message: format!("cannot resolve {host}: {}", io_error_text(&error)),
        }),
        Ok(Ok(addresses)) => {
            let addresses: Vec<SocketAddr> = addresses.collect();
            if addresses.is_empty() {
                return Err(ProbeError {
                    reason: FailureReason::Dns,
                    message: format!("cannot resolve {host}: no address"),
                });
            }
            Ok(addresses)
        }
    }
}

/// An I/O error as a short lowercase text: "connection refused", without "(os error 111)".
pub(super) fn io_error_text(error: &io::Error) -> String {
    let text = error.to_string();
    let text = match text.find(" (os error ") {
        Some(at) => &text[..at],
        None => text.as_str(),
    };
    let mut chars = text.chars();
    match chars.next() {
        Some(first) => first.to_lowercase().chain(chars).collect(),
        None => format!("{:?}", error.kind()),
    }
}

/// A short duration for summaries: "0.04 ms", "0.3 ms", "12 ms", "1.5 s".
pub(super) fn millis_text(duration: Duration) -> String {
    let millis = duration.as_secs_f64() * 1000.0;
    if millis < 0.1 {
        format!("{millis:.2} ms")
    } else if millis < 10.0 {
        format!("{millis:.1} ms")
    } else if millis < 1000.0 {
        format!("{millis:.0} ms")
    } else {
        format!("{:.1} s", millis / 1000.0)
    }
}

/// A configured duration for messages: "5 s", "1.5 s", "200 ms".
pub(super) fn duration_text(duration: Duration) -> String {
    if duration.subsec_nanos() == 0 {
        format!("{} s", duration.as_secs())
    } else if duration >= Duration::from_secs(1) {
        format!("{:.1} s", duration.as_secs_f64())
    } else {
        millis_text(duration)
    }
}
