//! ICMP probe ("ping"): echo requests over an unprivileged ICMP socket, or a raw one, counting
//! replies and round-trip times.

use std::io;
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use socket2::{Domain, Protocol, SockAddr, Socket, Type};
use tokio::time::{Instant, timeout_at};
use tokio_util::sync::CancellationToken;
use warden_core::config::IcmpCheck;

use super::tcp::{Budget, io_error_text, observe, resolve};
use super::{FailureReason, Observation, ProbeError};

/// What to do when neither kind of ICMP socket may be opened.
pub const PERMISSION_FIX: &str = "allow unprivileged ping with `sysctl -w net.ipv4.ping_group_range=\"0 2147483647\"`, or run as root / grant CAP_NET_RAW";

/// Random bytes at the start of each request's payload, to tell our replies from others'.
const TOKEN_LEN: usize = 16;
/// Receive errors (ICMP errors reported on the socket) tolerated before giving up.
const MAX_RECEIVE_ERRORS: u32 = 16;

/// Sends `check.count` echo requests to `check.host`, `check.interval` apart, and waits for the
/// replies until all came back or the time runs out. A lost reply is not an error: the caller
/// judges `loss_percent`.
///
/// Uses an unprivileged ICMP socket (`SOCK_DGRAM`, allowed by `net.ipv4.ping_group_range`) and
/// falls back to a raw socket (root or `CAP_NET_RAW`, noted on the run); with neither the error
/// is `connect` and says how to fix it. IPv4 and IPv6.
///
/// Facts: `connected` (any reply), `ip`, `response_time` (average round trip).
///
/// Samples: `sent`, `received`, `loss_percent`, and `rtt_min`, `rtt_avg`, `rtt_max` in seconds
/// when a reply came back. Counts above 65535 are capped (sequence numbers are 16 bits).
///
/// # Cancel safety
///
/// Dropping the future closes the socket. When `cancel` fires the probe stops at once with a
/// `timeout` error "cancelled"; the counts of a cancelled run are not recorded. Resolving a host
/// name has the caveat described on [`super::tcp::probe_tcp`].
pub async fn probe_icmp(
    check: &IcmpCheck,
    timeout: Duration,
    cancel: &CancellationToken,
) -> Observation {
    observe(cancel, async |observation| {
        let budget = Budget::start(timeout);
        if let Err(error) = run(check, &budget, observation).await {
            observation.error = Some(error);
        }
    })
    .await
}

async fn run(
    check: &IcmpCheck,
    budget: &Budget,
    observation: &mut Observation,
) -> Result<(), ProbeError> {
    let addresses = resolve(&check.host, 0, budget, observation).await?;
    let Some(target) = addresses.first().map(SocketAddr::ip) else {
        return Err(ProbeError {
            reason: FailureReason::Dns,
            message: format!("cannot resolve {}: no address", check.host),
        });
    };
    observation.facts.ip = Some(target.to_string());

    let socket = EchoSocket::open(target)?;
    if socket.kind == SocketKind::Raw {
        observation.notes.push(
            "unprivileged ICMP sockets are not allowed (net.ipv4.ping_group_range): used a raw socket"
                .to_string(),
        );
    }

    let count = check.count.clamp(1, u32::from(u16::MAX));
    let mut rounds = Rounds::default();
    let outcome = ping(
        &socket,
        count,
        check.interval,
        budget,
        &mut rounds,
        observation,
    )
    .await;
    record(&rounds, target, count, observation);
    outcome
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum SocketKind {
    /// `SOCK_DGRAM` + `IPPROTO_ICMP`: the kernel owns the identifier and the checksum and only
    /// hands this socket the replies to its own requests, without the IP header.
    Datagram,
    /// `SOCK_RAW`: sees every ICMP packet for the host (IPv4 ones with their IP header).
    Raw,
}

struct EchoSocket {
    /// The ICMP socket behind tokio's UDP type, used only for `send` / `recv` on a connected
    /// socket, which are the same system calls for any datagram-like socket. (Tokio's
    /// `AsyncFd::new`, the other safe way, is deprecated for lack of I/O safety.)
    socket: tokio::net::UdpSocket,
    kind: SocketKind,
    ipv4: bool,
}

impl EchoSocket {
    fn open(target: IpAddr) -> Result<EchoSocket, ProbeError> {
        let (domain, protocol) = match target {
            IpAddr::V4(_) => (Domain::IPV4, Protocol::ICMPV4),
            IpAddr::V6(_) => (Domain::IPV6, Protocol::ICMPV6),
        };
        let (socket, kind) = match Socket::new(domain, Type::DGRAM, Some(protocol)) {
            Ok(socket) => (socket, SocketKind::Datagram),
            Err(datagram_error) => match Socket::new(domain, Type::RAW, Some(protocol)) {
                Ok(socket) => (socket, SocketKind::Raw),
                Err(raw_error) => {
                    return Err(ProbeError {
                        reason: FailureReason::Connect,
                        message: format!(
                            "cannot open an ICMP socket (unprivileged: {}; raw: {}): {PERMISSION_FIX}",
                            io_error_text(&datagram_error),
                            io_error_text(&raw_error)
                        ),
                    });
                }
            },
        };
        let setup = |error: io::Error| ProbeError {
            reason: FailureReason::Connect,
            message: format!("ICMP socket to {target}: {}", io_error_text(&error)),
        };
        socket.set_nonblocking(true).map_err(setup)?;
        // Connected: a raw socket then only receives packets from the target.
        socket
            .connect(&SockAddr::from(SocketAddr::new(target, 0)))
            .map_err(setup)?;
        let socket =
            tokio::net::UdpSocket::from_std(std::net::UdpSocket::from(socket)).map_err(setup)?;
        Ok(EchoSocket {
            socket,
            kind,
            ipv4: target.is_ipv4(),
        })
    }
}

/// What each request saw: when it was sent and its round trip, by sequence number.
#[derive(Debug, Default)]
pub(super) struct Rounds {
    pub(super) sent_at: Vec<Instant>,
    pub(super) rtts: Vec<Option<Duration>>,
}

impl Rounds {
    fn received(&self) -> usize {
        self.rtts.iter().flatten().count()
    }
}

async fn ping(
    socket: &EchoSocket,
    count: u32,
    interval: Duration,
    budget: &Budget,
    rounds: &mut Rounds,
    observation: &mut Observation,
) -> Result<(), ProbeError> {
    let identifier = random_identifier();
    let token = random_token();
    let started = Instant::now();
    let mut buffer = vec![0_u8; 4096];
    let mut receive_errors = 0;
    loop {
        let sent = rounds.sent_at.len();
        let next_send = if sent < count as usize {
            // `sent` fits u32: it is below `count`.
            let offset = interval.checked_mul(sent as u32).unwrap_or(Duration::MAX);
            Some(started.checked_add(offset).unwrap_or(budget.deadline))
        } else {
            None
        };
        if next_send.is_none() && rounds.received() == sent {
            return Ok(());
        }
        let now = Instant::now();
        if now >= budget.deadline {
            if sent == 0 {
                return Err(budget.timed_out("before sending an echo request"));
            }
            if sent < count as usize {
                observation.notes.push(format!(
                    "the time ran out after sending {sent} of {count} echo requests"
                ));
            }
            return Ok(());
        }
        if let Some(send_at) = next_send
            && now >= send_at
        {
            // `sent` < `count` <= u16::MAX.
            let sequence = sent as u16;
            let packet = echo_request(socket.ipv4, identifier, sequence, &token);
            match timeout_at(budget.deadline, socket.socket.send(&packet)).await {
                Err(_elapsed) => continue,
                Ok(Err(error)) => {
                    return Err(ProbeError {
                        reason: FailureReason::Connect,
                        message: format!("sending an echo request: {}", io_error_text(&error)),
                    });
                }
                Ok(Ok(_)) => {
                    rounds.sent_at.push(Instant::now());
                    rounds.rtts.push(None);
                }
            }
            continue;
        }
        let wake = next_send.map_or(budget.deadline, |at| at.min(budget.deadline));
        let received = match timeout_at(wake, socket.socket.recv(&mut buffer)).await {
            Err(_elapsed) => continue,
            Ok(Ok(received)) => received,
            Ok(Err(error)) => {
                // An ICMP error (host unreachable...) reported on the socket: that request is
                // lost, the others may still come back.
                receive_errors += 1;
                let note = format!("receive error: {}", io_error_text(&error));
                if !observation.notes.contains(&note) {
                    observation.notes.push(note);
                }
                if receive_errors >= MAX_RECEIVE_ERRORS {
                    return Ok(());
                }
                continue;
            }
        };
        let Some(reply) = parse_reply(&buffer[..received], socket.ipv4) else {
            continue;
        };
        // The kernel rewrites the identifier of a datagram socket's requests (and only hands it
        // its own replies), so it is checked on raw sockets only.
        let ours = reply.payload.starts_with(&token)
            && (socket.kind == SocketKind::Datagram || reply.identifier == identifier);
        if !ours {
            continue;
        }
        let index = usize::from(reply.sequence);
        if let (Some(sent_at), Some(rtt @ None)) =
            (rounds.sent_at.get(index), rounds.rtts.get_mut(index))
        {
            *rtt = Some(sent_at.elapsed());
            observation.facts.connected = true;
        }
    }
}

pub(super) fn record(rounds: &Rounds, target: IpAddr, count: u32, observation: &mut Observation) {
    let sent = rounds.sent_at.len();
    let rtts: Vec<Duration> = rounds.rtts.iter().flatten().copied().collect();
    let received = rtts.len();
    let samples = &mut observation.samples;
    samples.push(("sent".to_string(), sent as f64));
    samples.push(("received".to_string(), received as f64));
    if sent > 0 {
        let loss = (sent - received) as f64 * 100.0 / sent as f64;
        samples.push(("loss_percent".to_string(), loss));
    }
    let mut summary = format!("{received}/{sent} replies from {target}");
    if sent < count as usize {
        summary = format!("{received}/{sent} replies from {target} ({count} planned)");
    }
    if let (Some(min), Some(max)) = (rtts.iter().min(), rtts.iter().max()) {
        // `received` > 0 here.
        let avg = rtts.iter().sum::<Duration>() / received as u32;
        samples.push(("rtt_min".to_string(), min.as_secs_f64()));
        samples.push(("rtt_avg".to_string(), avg.as_secs_f64()));
        samples.push(("rtt_max".to_string(), max.as_secs_f64()));
        observation.facts.response_time = Some(avg);
        let millis = |duration: &Duration| duration.as_secs_f64() * 1000.0;
        summary.push_str(&format!(
            ", rtt min/avg/max {:.2}/{:.2}/{:.2} ms",
            millis(min),
            millis(&avg),
            millis(max)
        ));
    }
    observation.summary = summary;
}

/// An echo request: type, code, checksum, identifier, sequence, then the token as payload.
pub(super) fn echo_request(
    ipv4: bool,
    identifier: u16,
    sequence: u16,
    token: &[u8; TOKEN_LEN],
) -> Vec<u8> {
    let request_type = if ipv4 { 8 } else { 128 };
    let mut packet = Vec::with_capacity(8 + TOKEN_LEN);
    packet.extend_from_slice(&[request_type, 0, 0, 0]);
    packet.extend_from_slice(&identifier.to_be_bytes());
    packet.extend_from_slice(&sequence.to_be_bytes());
    packet.extend_from_slice(token);
    // ICMPv6's checksum covers a pseudo-header the kernel knows: it fills it in itself.
    if ipv4 {
        let checksum = internet_checksum(&packet);
        packet[2..4].copy_from_slice(&checksum.to_be_bytes());
    }
    packet
}

/// RFC 1071: the ones' complement of the ones' complement sum of the 16-bit words.
pub(super) fn internet_checksum(bytes: &[u8]) -> u16 {
    let mut sum: u32 = 0;
    for pair in bytes.chunks(2) {
        let word = match pair {
            [high, low] => u16::from_be_bytes([*high, *low]),
            [high] => u16::from_be_bytes([*high, 0]),
            _ => 0,
        };
        sum += u32::from(word);
    }
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

pub(super) struct EchoReply<'a> {
    pub(super) identifier: u16,
    pub(super) sequence: u16,
    pub(super) payload: &'a [u8],
}

/// An echo reply, from a packet with or without its IPv4 header (raw IPv4 sockets include it;
/// an ICMP message never starts with 0x4_, so the header is recognised by its version).
pub(super) fn parse_reply(packet: &[u8], ipv4: bool) -> Option<EchoReply<'_>> {
    let message = if ipv4 && packet.first()? >> 4 == 4 {
        let header_len = usize::from(packet[0] & 0x0f) * 4;
        packet.get(header_len..)?
    } else {
        packet
    };
    let reply_type = if ipv4 { 0 } else { 129 };
    match message {
        [
            kind,
            0,
            _,
            _,
            id_high,
            id_low,
            seq_high,
            seq_low,
            payload @ ..,
        ] if *kind == reply_type => Some(EchoReply {
            identifier: u16::from_be_bytes([*id_high, *id_low]),
            sequence: u16::from_be_bytes([*seq_high, *seq_low]),
            payload,
        }),
        _ => None,
    }
}

fn random_identifier() -> u16 {
    // Only tells this probe's replies from concurrent ones on raw sockets: the process id is a
    // good enough fallback.
    getrandom::u32().map_or(std::process::id() as u16, |random| random as u16)
}

fn random_token() -> [u8; TOKEN_LEN] {
    let mut token = [0_u8; TOKEN_LEN];
    if getrandom::fill(&mut token).is_err() {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |since| since.as_nanos());
        token.copy_from_slice(&nanos.to_be_bytes());
    }
    token
}
