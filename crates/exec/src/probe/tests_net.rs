//! Tests of the tcp, dns and icmp probes against real servers started in-process on loopback:
//! plain tokio listeners for TCP, a hickory-server authoritative zone for DNS, the kernel's own
//! echo replies for ICMP.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::Path;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use hickory_proto::rr::rdata::{A, AAAA, MX, SOA, TXT};
use hickory_proto::rr::{LowerName, Name, RData, Record, RecordType};
use hickory_server::Server;
use hickory_server::store::in_memory::InMemoryZoneHandler;
use hickory_server::zone_handler::{AxfrPolicy, Catalog, ZoneType};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream, UdpSocket};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use warden_core::config::{DnsCheck, IcmpCheck, TcpCheck};

use super::dns::{self, first_nameserver, probe_dns};
use super::icmp::{PERMISSION_FIX, probe_icmp};
use super::tcp::{Budget, probe_tcp};
use super::{FailureReason, Observation};

/// Generous bound for probes that should succeed quickly (the machine may be busy building).
const PATIENCE: Duration = Duration::from_secs(20);
/// Short budget for probes that are meant to run out of time.
const SHORT: Duration = Duration::from_millis(300);

fn sample(observation: &Observation, label: &str) -> Option<f64> {
    observation
        .samples
        .iter()
        .find(|(name, _)| name == label)
        .map(|(_, value)| *value)
}

fn reason(observation: &Observation) -> Option<FailureReason> {
    observation.error.as_ref().map(|error| error.reason)
}

fn message(observation: &Observation) -> &str {
    observation
        .error
        .as_ref()
        .map_or("", |error| error.message.as_str())
}

/// A port on 127.0.0.1 nobody listens on (bound, then released).
async fn free_tcp_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    listener.local_addr().unwrap().port()
}

// ---- tcp ----

fn tcp_check(host: &str, port: u16) -> TcpCheck {
    TcpCheck {
        host: host.to_string(),
        port,
        send: None,
        expect: None,
        conditions: Vec::new(),
    }
}

/// Accepts connections and runs `serve` on each, until the test drops the handle's task.
fn serve_tcp<F, Fut>(listener: TcpListener, serve: F) -> JoinHandle<()>
where
    F: Fn(TcpStream) -> Fut + Send + 'static,
    Fut: Future<Output = ()> + Send + 'static,
{
    tokio::spawn(async move {
        let mut connections = tokio::task::JoinSet::new();
        while let Ok((stream, _)) = listener.accept().await {
            connections.spawn(serve(stream));
        }
    })
}

/// Greets with a banner, then answers each line with `echo: <line>`.
async fn banner_then_echo(stream: TcpStream) {
    let (read, mut write) = stream.into_split();
    if write.write_all(b"220 warden test\r\n").await.is_err() {
        return;
    }
    let mut lines = BufReader::new(read).lines();
    while let Ok(Some(line)) = lines.next_line().await {
        if write
            .write_all(format!("echo: {line}\r\n").as_bytes())
            .await
            .is_err()
        {
            return;
        }
    }
}

/// Greets with a banner and closes.
async fn banner_then_close(mut stream: TcpStream) {
    let _ = stream.write_all(b"220 warden test\r\n").await;
}

/// Accepts and keeps the connection open without ever writing.
async fn silent(stream: TcpStream) {
    let mut lines = BufReader::new(stream).lines();
    while let Ok(Some(_)) = lines.next_line().await {}
}

#[tokio::test]
async fn tcp_connects_to_a_listener() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();

    let observation = probe_tcp(
        &tcp_check("127.0.0.1", port),
        PATIENCE,
        &CancellationToken::new(),
    )
    .await;

    assert_eq!(observation.error, None);
    assert!(observation.facts.connected);
    assert_eq!(observation.facts.ip.as_deref(), Some("127.0.0.1"));
    assert_eq!(
        observation.facts.body, None,
        "nothing is read without `expect`"
    );
    assert!(observation.facts.response_time.is_some());
    assert!(sample(&observation, "connect_time").is_some());
    assert!(sample(&observation, "response_time").is_some());
    assert_eq!(
        sample(&observation, "dns_time"),
        None,
        "an IP is not resolved"
    );
    assert_eq!(sample(&observation, "expect_matched"), None);
    let prefix = format!("connected to 127.0.0.1:{port} in ");
    assert!(
        observation.summary.starts_with(&prefix) && observation.summary.ends_with(" ms"),
        "{}",
        observation.summary
    );
}

#[tokio::test]
async fn tcp_resolves_a_host_name() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();

    let observation = probe_tcp(
        &tcp_check("localhost", port),
        PATIENCE,
        &CancellationToken::new(),
    )
    .await;

    // `localhost` may resolve to ::1 first, where nobody listens: the probe then tries the next
    // address.
    assert_eq!(observation.error, None, "{observation:?}");
    assert!(observation.facts.connected);
    assert_eq!(observation.facts.ip.as_deref(), Some("127.0.0.1"));
    assert!(sample(&observation, "dns_time").is_some());
}

#[tokio::test]
async fn tcp_refused_when_nobody_listens() {
    let port = free_tcp_port().await;

    let observation = probe_tcp(
        &tcp_check("127.0.0.1", port),
        PATIENCE,
        &CancellationToken::new(),
    )
    .await;

    assert_eq!(reason(&observation), Some(FailureReason::Connect));
    assert_eq!(
        message(&observation),
        format!("connecting to 127.0.0.1:{port}: connection refused")
    );
    assert!(!observation.facts.connected);
    assert_eq!(observation.facts.ip.as_deref(), Some("127.0.0.1"));
    assert_eq!(sample(&observation, "connect_time"), None);
}

#[tokio::test]
async fn tcp_send_and_expect_found() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let server = serve_tcp(listener, banner_then_echo);
    let check = TcpCheck {
        send: Some("ping\n".to_string()),
        expect: Some("echo: ping".to_string()),
        ..tcp_check("127.0.0.1", port)
    };

    let observation = probe_tcp(&check, PATIENCE, &CancellationToken::new()).await;
    server.abort();

    assert_eq!(observation.error, None);
    assert_eq!(sample(&observation, "expect_matched"), Some(1.0));
    let body = observation.facts.body.as_deref().unwrap();
    assert!(body.starts_with("220 warden test\r\n"), "{body:?}");
    assert!(body.contains("echo: ping"), "{body:?}");
    assert!(observation.notes.is_empty(), "{:?}", observation.notes);
    assert!(
        observation.summary.ends_with(", received \"echo: ping\""),
        "{}",
        observation.summary
    );
}

#[tokio::test]
async fn tcp_expect_not_found_when_the_peer_closes() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let server = serve_tcp(listener, banner_then_close);
    let check = TcpCheck {
        expect: Some("+OK".to_string()),
        ..tcp_check("127.0.0.1", port)
    };

    let observation = probe_tcp(&check, PATIENCE, &CancellationToken::new()).await;
    server.abort();

    // Not an error: the caller judges `expect_matched`.
    assert_eq!(observation.error, None);
    assert!(observation.facts.connected);
    assert_eq!(sample(&observation, "expect_matched"), Some(0.0));
    assert_eq!(
        observation.facts.body.as_deref(),
        Some("220 warden test\r\n")
    );
    assert_eq!(
        observation.notes,
        ["expected \"+OK\" not received (17 bytes read before the peer closed the connection)"]
    );
}

#[tokio::test]
async fn tcp_expect_stops_reading_at_the_limit() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let server = serve_tcp(listener, |mut stream: TcpStream| async move {
        let flood = vec![b'x'; 100 * 1024];
        let _ = stream.write_all(&flood).await;
        silent(stream).await;
    });
    let check = TcpCheck {
        expect: Some("never sent".to_string()),
        ..tcp_check("127.0.0.1", port)
    };

    let observation = probe_tcp(&check, PATIENCE, &CancellationToken::new()).await;
    server.abort();

    assert_eq!(observation.error, None);
    assert_eq!(sample(&observation, "expect_matched"), Some(0.0));
    assert_eq!(
        observation.facts.body.as_ref().map(String::len),
        Some(super::tcp::MAX_RECEIVE_BYTES)
    );
}

#[tokio::test]
async fn tcp_expect_times_out_on_a_silent_server() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let server = serve_tcp(listener, silent);
    let check = TcpCheck {
        send: Some("hello\n".to_string()),
        expect: Some("+OK".to_string()),
        ..tcp_check("127.0.0.1", port)
    };

    let observation = probe_tcp(&check, SHORT, &CancellationToken::new()).await;
    server.abort();

    // Design: running out of time while waiting for `expect` is a timeout error, and the
    // expectation is also recorded as not matched.
    assert_eq!(reason(&observation), Some(FailureReason::Timeout));
    assert_eq!(
        message(&observation),
        "timed out after 300 ms waiting for \"+OK\" (0 bytes received)"
    );
    assert!(observation.facts.connected);
    assert_eq!(observation.facts.body.as_deref(), Some(""));
    assert_eq!(sample(&observation, "expect_matched"), Some(0.0));
}

#[tokio::test]
async fn tcp_unresolvable_host_is_a_dns_failure() {
    let observation = probe_tcp(
        &tcp_check("nonexistent.invalid", 80),
        PATIENCE,
        &CancellationToken::new(),
    )
    .await;

    assert_eq!(reason(&observation), Some(FailureReason::Dns));
    assert!(
        message(&observation).starts_with("cannot resolve nonexistent.invalid: "),
        "{}",
        message(&observation)
    );
    assert!(!observation.facts.connected);
    assert!(sample(&observation, "dns_time").is_some());
}

#[tokio::test]
async fn tcp_cancel_stops_a_waiting_probe() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let check = TcpCheck {
        expect: Some("+OK".to_string()),
        ..tcp_check("127.0.0.1", port)
    };
    let cancel = CancellationToken::new();

    // Cancel once the server has the connection: the probe is then connected or reading.
    let (observation, _held) = tokio::join!(probe_tcp(&check, PATIENCE * 10, &cancel), async {
        let accepted = listener.accept().await.unwrap();
        cancel.cancel();
        accepted
    });

    assert_eq!(reason(&observation), Some(FailureReason::Timeout));
    assert_eq!(message(&observation), "cancelled");
    assert_eq!(observation.facts.ip.as_deref(), Some("127.0.0.1"));
}

// ---- dns ----

/// A hickory-server serving the zone `example.test.` over UDP and TCP on one loopback port.
struct DnsServer {
    address: SocketAddr,
    _server: Server<Catalog>,
}

impl DnsServer {
    async fn start() -> DnsServer {
        let origin = Name::from_str("example.test.").unwrap();
        let mut zone: InMemoryZoneHandler =
            InMemoryZoneHandler::empty(origin.clone(), ZoneType::Primary, AxfrPolicy::Deny);
        let name = |text: &str| Name::from_str(text).unwrap();
        let records = [
            (
                "example.test.",
                RData::SOA(SOA::new(
                    name("ns.example.test."),
                    name("admin.example.test."),
                    1,
                    3600,
                    600,
                    86400,
                    60,
                )),
            ),
            ("www.example.test.", RData::A(A::new(192, 0, 2, 10))),
            ("www.example.test.", RData::A(A::new(192, 0, 2, 11))),
            (
                "www.example.test.",
                RData::AAAA(AAAA::from(Ipv6Addr::from_str("2001:db8::10").unwrap())),
            ),
            (
                "example.test.",
                RData::MX(MX::new(10, name("mail.example.test."))),
            ),
            (
                "example.test.",
                RData::TXT(TXT::new(vec!["v=spf1 -all".to_string()])),
            ),
        ];
        for (owner, rdata) in records {
            assert!(zone.upsert_mut(Record::from_rdata(name(owner), 300, rdata), 1));
        }
        // 40 TXT records of ~60 bytes: far more than the 1232 bytes a UDP answer may carry.
        for index in 0..40 {
            let text = format!("record {index:02} {}", "x".repeat(50));
            let record = Record::from_rdata(
                name("big.example.test."),
                300,
                RData::TXT(TXT::new(vec![text])),
            );
            assert!(zone.upsert_mut(record, 1));
        }
        let mut catalog = Catalog::new();
        catalog.upsert(LowerName::from(origin), vec![Arc::new(zone)]);

        // UDP and TCP on the same port: take a free UDP port, then its TCP twin (retry on the
        // rare clash with another test's TCP port).
        let (udp, tcp) = loop {
            let udp = UdpSocket::bind("127.0.0.1:0").await.unwrap();
            let address = udp.local_addr().unwrap();
            if let Ok(tcp) = TcpListener::bind(address).await {
                break (udp, tcp);
            }
        };
        let address = udp.local_addr().unwrap();
        let mut server = Server::new(catalog);
        server.register_socket(udp);
        server.register_listener(tcp, PATIENCE, 64 * 1024);
        DnsServer {
            address,
            _server: server,
        }
    }

    fn check(&self, query: &str, record: &str) -> DnsCheck {
        DnsCheck {
            query: query.to_string(),
            record: record.to_string(),
            server: Some(self.address.to_string()),
            expect: Vec::new(),
            conditions: Vec::new(),
        }
    }
}

async fn ask(check: &DnsCheck) -> Observation {
    probe_dns(check, PATIENCE, &CancellationToken::new()).await
}

#[tokio::test]
async fn dns_answers_each_record_type() {
    let server = DnsServer::start().await;
    let cases = [
        ("www.example.test", "A", "192.0.2.10\n192.0.2.11", 2.0),
        ("www.example.test", "aaaa", "2001:db8::10", 1.0),
        ("example.test", "MX", "10 mail.example.test.", 1.0),
        ("example.test.", "TXT", "v=spf1 -all", 1.0),
    ];
    for (query, record, body, count) in cases {
        let observation = ask(&server.check(query, record)).await;
        let context = format!("{record} {query}: {observation:?}");
        assert_eq!(observation.error, None, "{context}");
        assert_eq!(
            observation.facts.dns_rcode.as_deref(),
            Some("NOERROR"),
            "{context}"
        );
        let mut lines: Vec<&str> = observation.facts.body.as_deref().unwrap().lines().collect();
        lines.sort_unstable();
        assert_eq!(lines.join("\n"), body, "{context}");
        assert_eq!(sample(&observation, "answers"), Some(count), "{context}");
        assert!(observation.facts.connected, "{context}");
        assert_eq!(
            observation.facts.ip.as_deref(),
            Some("127.0.0.1"),
            "{context}"
        );
        assert!(observation.facts.response_time.is_some(), "{context}");
        assert!(sample(&observation, "response_time").is_some(), "{context}");
        assert!(observation.notes.is_empty(), "{context}");
    }

    let observation = ask(&server.check("www.example.test", "A")).await;
    let summary = &observation.summary;
    assert!(summary.starts_with("NOERROR, 2 answers in "), "{summary}");
    assert!(
        summary.ends_with(": 192.0.2.10, 192.0.2.11")
            || summary.ends_with(": 192.0.2.11, 192.0.2.10"),
        "{summary}"
    );
}

#[tokio::test]
async fn dns_missing_name_is_nxdomain() {
    let server = DnsServer::start().await;

    let observation = ask(&server.check("missing.example.test", "A")).await;

    // An answer came back: not a probe error, the conditions judge the rcode.
    assert_eq!(observation.error, None);
    assert_eq!(observation.facts.dns_rcode.as_deref(), Some("NXDOMAIN"));
    assert!(observation.facts.connected);
    assert_eq!(observation.facts.body.as_deref(), Some(""));
    assert_eq!(sample(&observation, "answers"), Some(0.0));
    assert!(
        observation.summary.starts_with("NXDOMAIN, 0 answers in "),
        "{}",
        observation.summary
    );
}

#[tokio::test]
async fn dns_expect_matched_and_not_matched() {
    let server = DnsServer::start().await;

    let mut check = server.check("www.example.test", "A");
    check.expect = vec!["192.0.2.11".to_string(), "192.0.2.10".to_string()];
    let observation = ask(&check).await;
    assert_eq!(observation.error, None);
    assert_eq!(sample(&observation, "expect_matched"), Some(1.0));
    assert!(observation.notes.is_empty(), "{:?}", observation.notes);

    check.expect = vec!["192.0.2.10".to_string(), "192.0.2.99".to_string()];
    let observation = ask(&check).await;
    assert_eq!(observation.error, None);
    assert_eq!(sample(&observation, "expect_matched"), Some(0.0));
    assert_eq!(observation.notes, ["expected answers missing: 192.0.2.99"]);

    // Names match without the final dot and whatever the case.
    let mut check = server.check("example.test", "MX");
    check.expect = vec!["10 MAIL.example.test".to_string()];
    let observation = ask(&check).await;
    assert_eq!(sample(&observation, "expect_matched"), Some(1.0));
}

#[tokio::test]
async fn dns_truncated_answer_is_asked_again_over_tcp() {
    let server = DnsServer::start().await;

    let observation = ask(&server.check("big.example.test", "TXT")).await;

    assert_eq!(observation.error, None);
    assert_eq!(observation.facts.dns_rcode.as_deref(), Some("NOERROR"));
    assert_eq!(sample(&observation, "answers"), Some(40.0));
    assert_eq!(
        observation.notes,
        ["answer truncated over UDP, asked again over TCP"]
    );
    assert!(
        observation.summary.starts_with("NOERROR, 40 answers in ")
            && observation.summary.ends_with(" (+37 more)"),
        "{}",
        observation.summary
    );
}

#[tokio::test]
async fn dns_unknown_record_type() {
    let server = DnsServer::start().await;

    let observation = ask(&server.check("example.test", "HINFO")).await;

    assert_eq!(reason(&observation), Some(FailureReason::Dns));
    assert!(
        message(&observation).starts_with("unknown record type \"HINFO\""),
        "{}",
        message(&observation)
    );
    assert!(!observation.facts.connected);
}

#[tokio::test]
async fn dns_server_that_never_answers_times_out_after_three_tries() {
    // A bound socket that never reads: the queries pile up in its buffer, unanswered.
    let black_hole = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let check = DnsCheck {
        query: "www.example.test".to_string(),
        record: "A".to_string(),
        server: Some(black_hole.local_addr().unwrap().to_string()),
        expect: Vec::new(),
        conditions: Vec::new(),
    };

    let observation = probe_dns(&check, SHORT, &CancellationToken::new()).await;

    assert_eq!(reason(&observation), Some(FailureReason::Timeout));
    assert_eq!(
        message(&observation),
        format!(
            "timed out after 300 ms waiting for an answer from {} (3 tries over UDP)",
            black_hole.local_addr().unwrap()
        )
    );
    assert!(!observation.facts.connected);
    assert_eq!(observation.facts.dns_rcode, None);
    let mut buffer = [0_u8; 512];
    let mut queries = 0;
    while black_hole.try_recv(&mut buffer).is_ok() {
        queries += 1;
    }
    assert_eq!(queries, 3);
}

#[tokio::test]
async fn dns_port_where_nothing_listens_is_refused() {
    let port = {
        let socket = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        socket.local_addr().unwrap().port()
    };
    let check = DnsCheck {
        query: "www.example.test".to_string(),
        record: "A".to_string(),
        server: Some(format!("127.0.0.1:{port}")),
        expect: Vec::new(),
        conditions: Vec::new(),
    };

    let observation = probe_dns(&check, PATIENCE, &CancellationToken::new()).await;

    // The connected UDP socket hears the ICMP "port unreachable" on loopback.
    assert_eq!(reason(&observation), Some(FailureReason::Connect));
    assert_eq!(
        message(&observation),
        format!("udp 127.0.0.1:{port}: connection refused")
    );
}

#[tokio::test]
async fn dns_cancelled_before_start() {
    let server = DnsServer::start().await;
    let cancel = CancellationToken::new();
    cancel.cancel();

    let observation = probe_dns(&server.check("www.example.test", "A"), PATIENCE, &cancel).await;

    assert_eq!(reason(&observation), Some(FailureReason::Timeout));
    assert_eq!(message(&observation), "cancelled");
}

#[tokio::test]
async fn dns_system_resolver_config() {
    let check = DnsCheck {
        query: "example.test".to_string(),
        record: "A".to_string(),
        server: None,
        expect: Vec::new(),
        conditions: Vec::new(),
    };
    let mut observation = Observation::default();
    let missing = Path::new("/nonexistent/warden/resolv.conf");

    let result = dns::run(&check, &Budget::start(PATIENCE), missing, &mut observation).await;

    let error = result.unwrap_err();
    assert_eq!(error.reason, FailureReason::Dns);
    assert_eq!(
        error.message,
        "no server given and cannot read /nonexistent/warden/resolv.conf: no such file or directory"
    );

    let resolv_conf = "# generated\nsearch example.org\nnameserver fe80::1%eth0\nnameserver 10.0.0.53\nnameserver 10.0.0.54\n";
    assert_eq!(
        first_nameserver(resolv_conf),
        Some(SocketAddr::from((Ipv4Addr::new(10, 0, 0, 53), 53)))
    );
    assert_eq!(first_nameserver("search example.org\n"), None);
    assert_eq!(
        dns::parse_server("[::1]:5353").unwrap(),
        SocketAddr::from((Ipv6Addr::LOCALHOST, 5353))
    );
    assert_eq!(
        dns::parse_server("127.0.0.1").unwrap(),
        SocketAddr::from((Ipv4Addr::LOCALHOST, 53))
    );
    let reverse = dns::query_name("192.0.2.10", RecordType::PTR).unwrap();
    assert_eq!(reverse.to_string(), "10.2.0.192.in-addr.arpa.");
    let forward = dns::query_name("www.example.test", RecordType::A).unwrap();
    assert_eq!(forward.to_string(), "www.example.test.");
    assert_eq!(dns::rcode_name(3), "NXDOMAIN");
    assert_eq!(dns::rcode_name(4000), "RCODE4000");
}

// ---- icmp ----

fn icmp_check(host: &str) -> IcmpCheck {
    IcmpCheck {
        host: host.to_string(),
        count: 3,
        interval: Duration::from_millis(10),
        warn_loss: 20.0,
        crit_loss: 100.0,
        conditions: Vec::new(),
    }
}

/// `true` when the kernel allowed neither kind of ICMP socket and the test should be skipped
/// (it must run when `WARDEN_REQUIRE_SERVICES=1`).
fn icmp_forbidden(observation: &Observation) -> bool {
    let forbidden = reason(observation) == Some(FailureReason::Connect)
        && message(observation).ends_with(PERMISSION_FIX);
    if forbidden {
        assert!(
            std::env::var("WARDEN_REQUIRE_SERVICES").as_deref() != Ok("1"),
            "WARDEN_REQUIRE_SERVICES=1 but ICMP sockets are not allowed: {}",
            message(observation)
        );
        println!("skipped: {}", message(observation));
    }
    forbidden
}

fn assert_all_replies(observation: &Observation, ip: &str) {
    assert_eq!(observation.error, None, "{observation:?}");
    assert!(observation.facts.connected);
    assert_eq!(observation.facts.ip.as_deref(), Some(ip));
    assert_eq!(sample(observation, "sent"), Some(3.0));
    assert_eq!(sample(observation, "received"), Some(3.0));
    assert_eq!(sample(observation, "loss_percent"), Some(0.0));
    let min = sample(observation, "rtt_min").unwrap();
    let avg = sample(observation, "rtt_avg").unwrap();
    let max = sample(observation, "rtt_max").unwrap();
    assert!(0.0 <= min && min <= avg && avg <= max, "{min} {avg} {max}");
    assert_eq!(
        observation.facts.response_time.map(|rtt| rtt.as_secs_f64()),
        Some(avg)
    );
    let prefix = format!("3/3 replies from {ip}, rtt min/avg/max ");
    assert!(
        observation.summary.starts_with(&prefix) && observation.summary.ends_with(" ms"),
        "{}",
        observation.summary
    );
}

#[tokio::test]
async fn icmp_pings_loopback() {
    let observation = probe_icmp(
        &icmp_check("127.0.0.1"),
        PATIENCE,
        &CancellationToken::new(),
    )
    .await;
    if icmp_forbidden(&observation) {
        return;
    }
    assert_all_replies(&observation, "127.0.0.1");
}

#[tokio::test]
async fn icmp_pings_ipv6_loopback() {
    if UdpSocket::bind("[::1]:0").await.is_err() {
        println!("skipped: no IPv6 loopback on this machine");
        return;
    }
    let observation = probe_icmp(&icmp_check("::1"), PATIENCE, &CancellationToken::new()).await;
    if icmp_forbidden(&observation) {
        return;
    }
    assert_all_replies(&observation, "::1");
}

#[tokio::test]
async fn icmp_unresolvable_host_is_a_dns_failure() {
    let observation = probe_icmp(
        &icmp_check("nonexistent.invalid"),
        PATIENCE,
        &CancellationToken::new(),
    )
    .await;

    assert_eq!(reason(&observation), Some(FailureReason::Dns));
    assert!(!observation.facts.connected);
    assert_eq!(sample(&observation, "sent"), None);
}

#[test]
fn icmp_packets() {
    use super::icmp::{echo_request, internet_checksum, parse_reply};

    let token = *b"0123456789abcdef";
    let request = echo_request(true, 0x1234, 7, &token);
    assert_eq!(&request[..2], [8, 0]);
    assert_eq!(&request[4..8], [0x12, 0x34, 0, 7]);
    assert_eq!(
        internet_checksum(&request),
        0,
        "a packet with its checksum sums to zero"
    );
    // ICMPv6: the kernel fills the checksum in.
    assert_eq!(&echo_request(false, 1, 2, &token)[..4], [128, 0, 0, 0]);

    // An echo reply as a raw IPv4 socket hands it over: IP header first.
    let mut reply_packet = vec![
        0x45, 0, 0, 44, 0xa4, 0x14, 0, 0, 64, 1, 0xd8, 0xba, 127, 0, 0, 1, 127, 0, 0, 1,
    ];
    let mut message = request.clone();
    message[0] = 0;
    reply_packet.extend_from_slice(&message);
    let reply = parse_reply(&reply_packet, true).unwrap();
    assert_eq!((reply.identifier, reply.sequence), (0x1234, 7));
    assert_eq!(reply.payload, token);
    // The same without the header (datagram sockets).
    assert!(parse_reply(&message, true).is_some());
    // Our own request, seen by a raw socket on loopback, is not a reply.
    assert!(parse_reply(&request, true).is_none());
    assert!(parse_reply(&[0, 0, 0], true).is_none());
    assert!(parse_reply(&[], false).is_none());
}

#[test]
fn icmp_loss_and_rtts_count_only_replies() {
    use super::icmp::{Rounds, record};

    fn record_rounds(rtts: &[Option<Duration>], target: IpAddr, count: u32) -> Observation {
        let rounds = Rounds {
            sent_at: vec![tokio::time::Instant::now(); rtts.len()],
            rtts: rtts.to_vec(),
        };
        let mut observation = Observation::default();
        record(&rounds, target, count, &mut observation);
        observation
    }

    let rtts = [
        Some(Duration::from_micros(300)),
        None,
        Some(Duration::from_micros(500)),
    ];
    let observation = record_rounds(&rtts, "192.0.2.1".parse().unwrap(), 3);

    assert_eq!(sample(&observation, "sent"), Some(3.0));
    assert_eq!(sample(&observation, "received"), Some(2.0));
    let loss = sample(&observation, "loss_percent").unwrap();
    assert!((loss - 100.0 / 3.0).abs() < 1e-9, "{loss}");
    assert_eq!(sample(&observation, "rtt_min"), Some(0.0003));
    assert_eq!(sample(&observation, "rtt_avg"), Some(0.0004));
    assert_eq!(sample(&observation, "rtt_max"), Some(0.0005));
    assert_eq!(
        observation.summary,
        "2/3 replies from 192.0.2.1, rtt min/avg/max 0.30/0.40/0.50 ms"
    );

    let observation = record_rounds(&[None, None], "192.0.2.1".parse().unwrap(), 3);
    assert_eq!(sample(&observation, "loss_percent"), Some(100.0));
    assert_eq!(sample(&observation, "rtt_avg"), None);
    assert_eq!(observation.facts.response_time, None);
    assert_eq!(
        observation.summary,
        "0/2 replies from 192.0.2.1 (3 planned)"
    );
}
