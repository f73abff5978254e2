//! DNS probe: one query to one server over UDP (retried on silence, and over TCP when the answer
//! is truncated), observing the response code and the answers.

use std::fmt::Write as _;
use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::Path;
use std::time::Duration;

use hickory_proto::op::{Edns, Message, MessageType, Query};
use hickory_proto::rr::{Name, RecordType};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpStream, UdpSocket};
use tokio::time::{Instant, timeout_at};
use tokio_util::sync::CancellationToken;
use warden_core::config::DnsCheck;

use super::tcp::{Budget, io_error_text, millis_text, observe};
use super::{FailureReason, Observation, ProbeError};

/// Where the system's resolver is configured.
pub const RESOLV_CONF: &str = "/etc/resolv.conf";
/// Tries over UDP before giving up; the budget is split evenly between them.
const UDP_TRIES: u32 = 3;
/// The UDP payload size advertised with EDNS (the DNS flag day 2020 value).
const EDNS_PAYLOAD: u16 = 1232;
/// Answers listed in the summary; the rest are counted.
const SUMMARY_ANSWERS: usize = 3;
/// Characters of one answer shown in the summary.
const SUMMARY_ANSWER_CHARS: usize = 60;

/// Asks `check.server` (or the first nameserver of `/etc/resolv.conf`) for the `check.record`
/// records of `check.query`. A PTR query for an IP address asks for its reverse name.
///
/// Facts: `dns_rcode` (`NOERROR`, `NXDOMAIN`, ...), `response_time`, `connected` (a response came
/// back), `ip` (the server's IP), and `body`: the answers of the asked type as text, one per line
/// (`93.184.215.14`, `10 mail.example.org.`; TXT strings concatenated). Answer records of other
/// types (a CNAME chain) are not listed.
///
/// Samples: `response_time`, `answers` (count), and `expect_matched` (1 when every `expect` value
/// is among the answers, else 0, with a note naming the missing ones) when `expect` is set. A
/// missing expected value is not an error: the caller judges it.
///
/// A UDP query is sent up to three times, each try waiting for a third of what is left of the
/// budget (a late answer to an earlier try still counts). A truncated answer is asked again over
/// TCP; if that fails the truncated answer is kept, with a note.
///
/// # Cancel safety
///
/// Dropping the future closes its sockets; nothing else runs. When `cancel` fires the probe
/// stops at once with a `timeout` error "cancelled".
pub async fn probe_dns(
    check: &DnsCheck,
    timeout: Duration,
    cancel: &CancellationToken,
) -> Observation {
    observe(cancel, async |observation| {
        let budget = Budget::start(timeout);
        if let Err(error) = run(check, &budget, Path::new(RESOLV_CONF), observation).await {
            observation.error = Some(error);
        }
    })
    .await
}

pub(super) async fn run(
    check: &DnsCheck,
    budget: &Budget,
    resolv_conf: &Path,
    observation: &mut Observation,
) -> Result<(), ProbeError> {
    let record_type = parse_record_type(&check.record).ok_or_else(|| {
        dns_error(format!(
            "unknown record type {:?}, expected one of A, AAAA, CNAME, MX, NS, TXT, SOA, PTR, SRV, CAA",
            check.record
        ))
    })?;
    let server = match &check.server {
        Some(text) => parse_server(text)?,
        None => system_nameserver(resolv_conf)?,
    };
    observation.facts.ip = Some(server.ip().to_string());
    let name = query_name(&check.query, record_type)?;

    let mut query = Message::query();
    query.metadata.recursion_desired = true;
    query.add_query(Query::query(name, record_type));
    let mut edns = Edns::new();
    edns.set_max_payload(EDNS_PAYLOAD);
    query.set_edns(edns);
    let query_bytes = query
        .to_vec()
        .map_err(|error| dns_error(format!("cannot encode the query: {error}")))?;
    let id = query.metadata.id;

    let started = Instant::now();
    let mut response = ask_udp(server, &query_bytes, id, budget).await?;
    if response.metadata.truncation {
        match ask_tcp(server, &query_bytes, id, budget).await {
            Ok(full) => {
                observation
                    .notes
                    .push("answer truncated over UDP, asked again over TCP".to_string());
                response = full;
            }
            Err(error) => observation.notes.push(format!(
                "answer truncated over UDP and asking again over TCP failed ({}): showing the truncated answer",
                error.message
            )),
        }
    }
    let response_time = started.elapsed();

    let rcode = rcode_name(u16::from(response.metadata.response_code));
    let answers: Vec<String> = response
        .answers
        .iter()
        .filter(|record| record.record_type() == record_type)
        .map(|record| record.data.to_string())
        .collect();

    observation.facts.connected = true;
    observation.facts.dns_rcode = Some(rcode.clone());
    observation.facts.response_time = Some(response_time);
    observation.facts.body = Some(answers.join("\n"));
    observation
        .samples
        .push(("response_time".to_string(), response_time.as_secs_f64()));
    observation
        .samples
        .push(("answers".to_string(), answers.len() as f64));

    if !check.expect.is_empty() {
        let missing: Vec<&str> = check
            .expect
            .iter()
            .filter(|expected| {
                !answers
                    .iter()
                    .any(|answer| answer_matches(record_type, expected, answer))
            })
            .map(String::as_str)
            .collect();
        let matched = if missing.is_empty() { 1.0 } else { 0.0 };
        observation
            .samples
            .push(("expect_matched".to_string(), matched));
        if !missing.is_empty() {
            observation
                .notes
                .push(format!("expected answers missing: {}", missing.join(", ")));
        }
    }

    observation.summary = summary(&rcode, &answers, response_time);
    Ok(())
}

/// Sends the query over UDP up to [`UDP_TRIES`] times and returns the first response to it.
async fn ask_udp(
    server: SocketAddr,
    query: &[u8],
    id: u16,
    budget: &Budget,
) -> Result<Message, ProbeError> {
    let local: SocketAddr = match server {
        SocketAddr::V4(_) => (Ipv4Addr::UNSPECIFIED, 0).into(),
        SocketAddr::V6(_) => (Ipv6Addr::UNSPECIFIED, 0).into(),
    };
    let socket_error = |error: io::Error| ProbeError {
        reason: FailureReason::Connect,
        message: format!("udp {server}: {}", io_error_text(&error)),
    };
    let socket = UdpSocket::bind(local).await.map_err(socket_error)?;
    // Connected, so only the server's datagrams arrive and an ICMP "port unreachable" shows up
    // as "connection refused".
    socket.connect(server).await.map_err(socket_error)?;

    let mut buffer = vec![0_u8; usize::from(u16::MAX)];
    let mut malformed = None;
    for try_index in 0..UDP_TRIES {
        let now = Instant::now();
        if now >= budget.deadline {
            break;
        }
        match timeout_at(budget.deadline, socket.send(query)).await {
            Err(_elapsed) => break,
            Ok(result) => result.map_err(socket_error)?,
        };
        let tries_left = UDP_TRIES - try_index;
        let wait_until = now + budget.deadline.saturating_duration_since(now) / tries_left;
        loop {
            let received = match timeout_at(wait_until, socket.recv(&mut buffer)).await {
                Err(_elapsed) => break,
                Ok(result) => result.map_err(socket_error)?,
            };
            let datagram = &buffer[..received];
            // Ignore strays (an answer to someone else's query cannot come to this socket, but a
            // duplicate or a spoofed datagram can).
            if datagram.get(..2) != Some(&id.to_be_bytes()[..]) {
                continue;
            }
            match Message::from_vec(datagram) {
                Ok(message) if message.metadata.message_type == MessageType::Response => {
                    return Ok(message);
                }
                Ok(_) => {}
                Err(error) => malformed = Some(error.to_string()),
            }
        }
    }
    if let Some(error) = malformed {
        return Err(dns_error(format!(
            "malformed answer from {server}: {error}"
        )));
    }
    Err(budget.timed_out(&format!(
        "waiting for an answer from {server} ({UDP_TRIES} tries over UDP)"
    )))
}

/// Sends the query over TCP (two-byte length prefix, RFC 1035 4.2.2) and reads the response.
async fn ask_tcp(
    server: SocketAddr,
    query: &[u8],
    id: u16,
    budget: &Budget,
) -> Result<Message, ProbeError> {
    let io_error = |error: io::Error| ProbeError {
        reason: FailureReason::Connect,
        message: format!("tcp {server}: {}", io_error_text(&error)),
    };
    let length = u16::try_from(query.len())
        .map_err(|_| dns_error("the query is too long for TCP".to_string()))?;
    let mut framed = Vec::with_capacity(query.len() + 2);
    framed.extend_from_slice(&length.to_be_bytes());
    framed.extend_from_slice(query);

    let exchange = async {
        let mut stream = TcpStream::connect(server).await?;
        stream.write_all(&framed).await?;
        let length = stream.read_u16().await?;
        let mut answer = vec![0_u8; usize::from(length)];
        stream.read_exact(&mut answer).await?;
        Ok::<_, io::Error>(answer)
    };
    let answer = match timeout_at(budget.deadline, exchange).await {
        Err(_elapsed) => return Err(budget.timed_out(&format!("asking {server} over TCP"))),
        Ok(result) => result.map_err(io_error)?,
    };
    let message = Message::from_vec(&answer)
        .map_err(|error| dns_error(format!("malformed answer from {server} over TCP: {error}")))?;
    if message.metadata.id != id || message.metadata.message_type != MessageType::Response {
        return Err(dns_error(format!(
            "the answer from {server} over TCP does not match the query"
        )));
    }
    Ok(message)
}

fn dns_error(message: String) -> ProbeError {
    ProbeError {
        reason: FailureReason::Dns,
        message,
    }
}

fn parse_record_type(record: &str) -> Option<RecordType> {
    Some(match record.trim().to_ascii_uppercase().as_str() {
        "A" => RecordType::A,
        "AAAA" => RecordType::AAAA,
        "CNAME" => RecordType::CNAME,
        "MX" => RecordType::MX,
        "NS" => RecordType::NS,
        "TXT" => RecordType::TXT,
        "SOA" => RecordType::SOA,
        "PTR" => RecordType::PTR,
        "SRV" => RecordType::SRV,
        "CAA" => RecordType::CAA,
        _ => return None,
    })
}

/// `IP`, `IP:PORT` or `[IPv6]:PORT`; port 53 when absent.
pub(super) fn parse_server(text: &str) -> Result<SocketAddr, ProbeError> {
    let text = text.trim();
    if let Ok(address) = text.parse::<SocketAddr>() {
        return Ok(address);
    }
    let bare = text
        .strip_prefix('[')
        .and_then(|inner| inner.strip_suffix(']'))
        .unwrap_or(text);
    match bare.parse::<IpAddr>() {
        Ok(ip) => Ok(SocketAddr::new(ip, 53)),
        Err(_) => Err(dns_error(format!(
            "server {text:?} is not IP or IP:PORT, e.g. 1.1.1.1 or 127.0.0.1:5353"
        ))),
    }
}

/// The first usable `nameserver` line of a resolv.conf file, port 53.
pub(super) fn system_nameserver(path: &Path) -> Result<SocketAddr, ProbeError> {
    let text = std::fs::read_to_string(path).map_err(|error| {
        dns_error(format!(
            "no server given and cannot read {}: {}",
            path.display(),
            io_error_text(&error)
        ))
    })?;
    first_nameserver(&text).ok_or_else(|| {
        dns_error(format!(
            "no server given and no usable nameserver in {}",
            path.display()
        ))
    })
}

/// The first `nameserver IP` line; entries with a zone (`fe80::1%eth0`) are skipped, as the
/// zone cannot be kept.
pub(super) fn first_nameserver(resolv_conf: &str) -> Option<SocketAddr> {
    resolv_conf.lines().find_map(|line| {
        let mut words = line.split_whitespace();
        if words.next() != Some("nameserver") {
            return None;
        }
        let ip = words.next()?.parse::<IpAddr>().ok()?;
        Some(SocketAddr::new(ip, 53))
    })
}

pub(super) fn query_name(query: &str, record_type: RecordType) -> Result<Name, ProbeError> {
    if record_type == RecordType::PTR
        && let Ok(ip) = query.trim().parse::<IpAddr>()
    {
        return Ok(Name::from(ip));
    }
    let mut name = Name::from_utf8(query.trim())
        .map_err(|error| dns_error(format!("{query:?} is not a domain name: {error}")))?;
    name.set_fqdn(true);
    Ok(name)
}

/// The standard mnemonic of a response code (RFC 6895 registry).
pub(super) fn rcode_name(code: u16) -> String {
    let name = match code {
        0 => "NOERROR",
        1 => "FORMERR",
        2 => "SERVFAIL",
        3 => "NXDOMAIN",
        4 => "NOTIMP",
        5 => "REFUSED",
        6 => "YXDOMAIN",
        7 => "YXRRSET",
        8 => "NXRRSET",
        9 => "NOTAUTH",
        10 => "NOTZONE",
        11 => "DSOTYPENI",
        16 => "BADVERS",
        17 => "BADKEY",
        18 => "BADTIME",
        19 => "BADMODE",
        20 => "BADNAME",
        21 => "BADALG",
        22 => "BADTRUNC",
        23 => "BADCOOKIE",
        other => return format!("RCODE{other}"),
    };
    name.to_string()
}

/// Whether an expected value names this answer: equal, or equal once IPs are in canonical form,
/// a final dot is ignored and (except for TXT) case is ignored.
fn answer_matches(record_type: RecordType, expected: &str, answer: &str) -> bool {
    let expected = expected.trim();
    if expected == answer {
        return true;
    }
    if let (Ok(expected_ip), Ok(answer_ip)) = (expected.parse::<IpAddr>(), answer.parse::<IpAddr>())
    {
        return expected_ip == answer_ip;
    }
    if record_type == RecordType::TXT {
        return false;
    }
    let expected = expected.strip_suffix('.').unwrap_or(expected);
    let answer = answer.strip_suffix('.').unwrap_or(answer);
    expected.eq_ignore_ascii_case(answer)
}

/// `NOERROR, 2 answers in 1.3 ms: 1.2.3.4, 5.6.7.8`
fn summary(rcode: &str, answers: &[String], response_time: Duration) -> String {
    let count = answers.len();
    let plural = if count == 1 { "" } else { "s" };
    let mut text = format!(
        "{rcode}, {count} answer{plural} in {}",
        millis_text(response_time)
    );
    for (index, answer) in answers.iter().take(SUMMARY_ANSWERS).enumerate() {
        text.push_str(if index == 0 { ": " } else { ", " });
        if answer.chars().count() > SUMMARY_ANSWER_CHARS {
            text.extend(answer.chars().take(SUMMARY_ANSWER_CHARS));
            text.push('…');
        } else {
            text.push_str(answer);
        }
    }
    if count > SUMMARY_ANSWERS {
        let _ = write!(text, " (+{} more)", count - SUMMARY_ANSWERS);
    }
    text
}
