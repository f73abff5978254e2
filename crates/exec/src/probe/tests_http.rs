//! Tests of the HTTP and TLS probes against real servers started here on 127.0.0.1: hyper's
//! HTTP/1.1 + HTTP/2 server, behind rustls with certificates from a test CA made by rcgen.

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::body::{Bytes, Incoming};
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair, KeyUsagePurpose, date_time_ymd,
};
use rustls::RootCertStore;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use rustls::server::WebPkiClientVerifier;
use tokio::net::TcpListener;
use tokio::sync::Notify;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use warden_core::config::{ClientCert, HttpAuth, HttpCheck, HttpVersion, TlsCheck};

use super::http::probe_http_with_roots;
use super::tls::{probe_tls, probe_tls_with_roots};
use super::{FailureReason, Observation};

/// For the paths that succeed: generous, they finish in milliseconds.
const GENEROUS: Duration = Duration::from_secs(20);
/// notAfter of the valid test certificates: 2100-01-01T00:00:00Z.
const VALID_UNTIL: i64 = 4_102_444_800;

// ---------------------------------------------------------------------------------------
// Certificates

struct Leaf {
    chain: Vec<CertificateDer<'static>>,
    key: PrivatePkcs8KeyDer<'static>,
    cert_pem: String,
    key_pem: String,
}

struct Pki {
    ca: CertificateDer<'static>,
    valid: Leaf,
    expired: Leaf,
    wrong_host: Leaf,
    client: Leaf,
}

fn pki() -> &'static Pki {
    static PKI: OnceLock<Pki> = OnceLock::new();
    PKI.get_or_init(|| {
        let mut ca_params = CertificateParams::new(Vec::<String>::new()).expect("ca params");
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca_params
            .distinguished_name
            .push(DnType::CommonName, "warden test CA");
        ca_params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let ca = CertifiedIssuer::self_signed(ca_params, KeyPair::generate().expect("ca key"))
            .expect("ca certificate");
        let leaf = |names: &[&str],
                    common_name: &str,
                    years: (i32, i32),
                    usage: ExtendedKeyUsagePurpose| {
            let names: Vec<String> = names.iter().map(|name| name.to_string()).collect();
            let mut params = CertificateParams::new(names).expect("leaf params");
            params
                .distinguished_name
                .push(DnType::CommonName, common_name);
            params.not_before = date_time_ymd(years.0, 1, 1);
            params.not_after = date_time_ymd(years.1, 1, 1);
            params.extended_key_usages = vec![usage];
            let key = KeyPair::generate().expect("leaf key");
            let certificate = params.signed_by(&key, &*ca).expect("leaf certificate");
            Leaf {
                chain: vec![certificate.der().clone(), ca.der().clone()],
                key: PrivatePkcs8KeyDer::from(key.serialize_der()),
                cert_pem: certificate.pem(),
                key_pem: key.serialize_pem(),
            }
        };
        let server = ExtendedKeyUsagePurpose::ServerAuth;
        Pki {
            ca: ca.der().clone(),
            valid: leaf(
                &["localhost", "127.0.0.1"],
                "localhost",
                (2024, 2100),
                server.clone(),
            ),
            expired: leaf(
                &["localhost", "127.0.0.1"],
                "localhost",
                (2020, 2021),
                server.clone(),
            ),
            wrong_host: leaf(&["wrong.example"], "wrong.example", (2024, 2100), server),
            client: leaf(
                &["client.example"],
                "warden probe",
                (2024, 2100),
                ExtendedKeyUsagePurpose::ClientAuth,
            ),
        }
    })
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

// ---------------------------------------------------------------------------------------
// Servers

/// A server on 127.0.0.1; its tasks stop when it is dropped.
struct TestServer {
    address: SocketAddr,
    /// Notified when a request for `/slow` has arrived.
    slow_arrived: Arc<Notify>,
    _tasks: JoinSet<()>,
}

impl TestServer {
    fn url(&self, scheme: &str, path: &str) -> String {
        format!("{scheme}://localhost:{}{path}", self.address.port())
    }
}

struct ServerTls {
    leaf: &'static Leaf,
    require_client_certificate: bool,
}

async fn start_server(tls: Option<ServerTls>) -> TestServer {
    let acceptor = tls.map(|tls| {
        let builder = rustls::ServerConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .expect("protocol versions");
        let builder = if tls.require_client_certificate {
            let mut roots = RootCertStore::empty();
            roots.add(pki().ca.clone()).expect("test CA");
            let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider())
                .build()
                .expect("client verifier");
            builder.with_client_cert_verifier(verifier)
        } else {
            builder.with_no_client_auth()
        };
        let mut config = builder
            .with_single_cert(
                tls.leaf.chain.clone(),
                PrivateKeyDer::Pkcs8(tls.leaf.key.clone_key()),
            )
            .expect("server certificate");
        config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        tokio_rustls::TlsAcceptor::from(Arc::new(config))
    });
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let address = listener.local_addr().expect("local address");
    let slow_arrived = Arc::new(Notify::new());
    let notify = slow_arrived.clone();
    let mut tasks = JoinSet::new();
    tasks.spawn(async move {
        // Dropped (and so aborted) with the accept loop.
        let mut connections = JoinSet::new();
        loop {
            let Ok((tcp, _)) = listener.accept().await else {
                continue;
            };
            let acceptor = acceptor.clone();
            let notify = notify.clone();
            connections.spawn(async move {
                let service = service_fn(move |request| handle(request, notify.clone()));
                let builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
                match acceptor {
                    Some(acceptor) => {
                        if let Ok(stream) = acceptor.accept(tcp).await {
                            let _ = builder
                                .serve_connection(TokioIo::new(stream), service)
                                .await;
                        }
                    }
                    None => {
                        let _ = builder.serve_connection(TokioIo::new(tcp), service).await;
                    }
                }
            });
        }
    });
    TestServer {
        address,
        slow_arrived,
        _tasks: tasks,
    }
}

async fn start_tls_server(leaf: &'static Leaf) -> TestServer {
    start_server(Some(ServerTls {
        leaf,
        require_client_certificate: false,
    }))
    .await
}

fn text(status: StatusCode, body: impl Into<Bytes>) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(body.into()));
    *response.status_mut() = status;
    response
}

fn redirect(status: StatusCode, location: &str) -> Response<Full<Bytes>> {
    let mut response = text(status, "moved");
    if let Ok(location) = location.parse() {
        response
            .headers_mut()
            .insert(http::header::LOCATION, location);
    }
    response
}

/// `/` says which HTTP version it was asked with; the others are named for what they do.
async fn handle(
    request: Request<Incoming>,
    slow_arrived: Arc<Notify>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    let path = request.uri().path().to_owned();
    let version = format!("{:?}", request.version());
    let response = match path.as_str() {
        "/" => text(StatusCode::OK, format!("ok {version}")),
        "/status/503" => text(StatusCode::SERVICE_UNAVAILABLE, "unavailable"),
        "/loop" => redirect(StatusCode::FOUND, "/loop"),
        "/see-other" => redirect(StatusCode::SEE_OTHER, "echo"),
        "/slow" => {
            slow_arrived.notify_one();
            std::future::pending::<()>().await;
            text(StatusCode::OK, "never")
        }
        "/echo" => {
            let mut lines = vec![
                format!("method: {}", request.method()),
                format!("version: {version}"),
                format!("uri: {}", request.uri()),
            ];
            for (name, value) in request.headers() {
                lines.push(format!(
                    "{name}: {}",
                    String::from_utf8_lossy(value.as_bytes())
                ));
            }
            let body = request
                .into_body()
                .collect()
                .await
                .map(|collected| collected.to_bytes())
                .unwrap_or_default();
            lines.push(format!("body: {}", String::from_utf8_lossy(&body)));
            text(StatusCode::OK, lines.join("\n"))
        }
        other => {
            if let Some(hops) = other.strip_prefix("/redirect/") {
                // Relative references one time, absolute paths the next.
                match hops.parse::<u32>() {
                    Ok(0) => text(StatusCode::OK, "arrived"),
                    Ok(hops) if hops % 2 == 1 => {
                        redirect(StatusCode::FOUND, &(hops - 1).to_string())
                    }
                    Ok(hops) => redirect(
                        StatusCode::MOVED_PERMANENTLY,
                        &format!("/redirect/{}", hops - 1),
                    ),
                    Err(_) => text(StatusCode::BAD_REQUEST, "bad hop count"),
                }
            } else if let Some(size) = other.strip_prefix("/bytes/") {
                let size: usize = size.parse().unwrap_or(0);
                text(StatusCode::OK, vec![b'x'; size])
            } else {
                text(StatusCode::NOT_FOUND, "not found")
            }
        }
    };
    Ok(response)
}

// ---------------------------------------------------------------------------------------
// Helpers

fn http_check(url: &str) -> HttpCheck {
    HttpCheck {
        url: url.to_owned(),
        method: "GET".to_owned(),
        headers: BTreeMap::new(),
        body: None,
        auth: None,
        follow_redirects: true,
        verify_tls: true,
        client_cert: None,
        http_version: HttpVersion::Auto,
        conditions: Vec::new(),
    }
}

async fn probe(check: &HttpCheck) -> Observation {
    probe_http_with_roots(
        check,
        GENEROUS,
        &CancellationToken::new(),
        std::slice::from_ref(&pki().ca),
    )
    .await
}

fn sample(observation: &Observation, label: &str) -> Option<f64> {
    observation
        .samples
        .iter()
        .find(|(existing, _)| existing == label)
        .map(|(_, value)| *value)
}

fn body(observation: &Observation) -> &str {
    observation.facts.body.as_deref().unwrap_or("<no body>")
}

#[track_caller]
fn assert_ok(observation: &Observation) {
    assert_eq!(observation.error, None, "{observation:#?}");
}

#[track_caller]
fn assert_failed(observation: &Observation, reason: FailureReason, message_part: &str) {
    let Some(error) = &observation.error else {
        panic!("expected a {reason:?} failure, got {observation:#?}");
    };
    assert_eq!(error.reason, reason, "{error:?}");
    assert!(
        error.message.contains(message_part),
        "{:?} does not contain {message_part:?}",
        error.message
    );
}

fn days_until(unix_seconds: i64) -> f64 {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock after 1970")
        .as_secs_f64();
    (unix_seconds as f64 - now) / 86_400.0
}

fn write_client_files(directory: &tempfile::TempDir) -> ClientCert {
    let cert = directory.path().join("client.pem");
    let key = directory.path().join("client.key");
    std::fs::write(&cert, &pki().client.cert_pem).expect("write client certificate");
    std::fs::write(&key, &pki().client.key_pem).expect("write client key");
    ClientCert { cert, key }
}

/// A port nothing listens on: bound, then released.
async fn closed_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    listener.local_addr().expect("local address").port()
}

// ---------------------------------------------------------------------------------------
// HTTP probe

#[tokio::test]
async fn https_200_with_timings_facts_and_h2() {
    let server = start_tls_server(&pki().valid).await;
    let observation = probe(&http_check(&server.url("https", "/"))).await;
    assert_ok(&observation);
    let facts = &observation.facts;
    assert_eq!(facts.status, Some(200));
    assert_eq!(body(&observation), "ok HTTP/2.0");
    assert!(facts.connected);
    assert_eq!(facts.ip.as_deref(), Some("127.0.0.1"));

    let get = |label| sample(&observation, label).unwrap_or_else(|| panic!("no {label}"));
    let (dns, connect, tls) = (get("dns_time"), get("connect_time"), get("tls_time"));
    let (first_byte, total) = (get("first_byte_time"), get("response_time"));
    assert!(
        dns >= 0.0 && connect >= 0.0 && tls > 0.0,
        "{:?}",
        observation.samples
    );
    assert!(
        dns + connect + tls <= first_byte,
        "{:?}",
        observation.samples
    );
    assert!(first_byte <= total, "{:?}", observation.samples);
    assert_eq!(get("status"), 200.0);
    assert_eq!(get("size"), "ok HTTP/2.0".len() as f64);
    assert_eq!(facts.response_time.map(|t| t.as_secs_f64()), Some(total));

    let days = get("cert_expiry_days");
    assert!((days - days_until(VALID_UNTIL)).abs() < 0.01, "{days}");
    let expiration_ms = facts
        .certificate_expiration_ms
        .expect("certificate expiration");
    assert!((expiration_ms as f64 / 86_400_000.0 - days).abs() < 0.001);

    assert!(
        observation.summary.starts_with("HTTP 200 OK in ")
            && observation.summary.ends_with(", 11 B"),
        "{}",
        observation.summary
    );
    assert!(
        observation.notes.iter().any(|note| note == "TLSv1.3"),
        "{:?}",
        observation.notes
    );
}

#[tokio::test]
async fn http_version_follows_the_setting() {
    let tls_server = start_tls_server(&pki().valid).await;
    let plain_server = start_server(None).await;
    let cases = [
        (
            tls_server.url("https", "/"),
            HttpVersion::Auto,
            "ok HTTP/2.0",
        ),
        (
            tls_server.url("https", "/"),
            HttpVersion::Http1,
            "ok HTTP/1.1",
        ),
        (
            tls_server.url("https", "/"),
            HttpVersion::Http2,
            "ok HTTP/2.0",
        ),
        (
            plain_server.url("http", "/"),
            HttpVersion::Auto,
            "ok HTTP/1.1",
        ),
        (
            plain_server.url("http", "/"),
            HttpVersion::Http1,
            "ok HTTP/1.1",
        ),
        // Cleartext HTTP/2 by prior knowledge.
        (
            plain_server.url("http", "/"),
            HttpVersion::Http2,
            "ok HTTP/2.0",
        ),
    ];
    for (url, version, expected) in cases {
        let mut check = http_check(&url);
        check.http_version = version;
        let observation = probe(&check).await;
        assert_ok(&observation);
        assert_eq!(body(&observation), expected, "{url} {version:?}");
        let is_tls = url.starts_with("https");
        assert_eq!(sample(&observation, "tls_time").is_some(), is_tls, "{url}");
        assert_eq!(
            observation.facts.certificate_expiration_ms.is_some(),
            is_tls,
            "{url}"
        );
    }
}

#[tokio::test]
async fn a_503_is_observed_not_an_error() {
    let server = start_tls_server(&pki().valid).await;
    let observation = probe(&http_check(&server.url("https", "/status/503"))).await;
    assert_ok(&observation);
    assert_eq!(observation.facts.status, Some(503));
    assert_eq!(body(&observation), "unavailable");
    assert!(
        observation
            .summary
            .starts_with("HTTP 503 Service Unavailable in "),
        "{}",
        observation.summary
    );
}

#[tokio::test]
async fn redirects_are_followed_or_not() {
    let server = start_tls_server(&pki().valid).await;

    let followed = probe(&http_check(&server.url("https", "/redirect/4"))).await;
    assert_ok(&followed);
    assert_eq!(followed.facts.status, Some(200));
    assert_eq!(body(&followed), "arrived");
    let redirect_notes: Vec<&String> = followed
        .notes
        .iter()
        .filter(|note| note.contains("redirected to"))
        .collect();
    assert_eq!(redirect_notes.len(), 4, "{:?}", followed.notes);
    assert!(
        redirect_notes[3].ends_with("/redirect/0"),
        "{redirect_notes:?}"
    );

    let mut not_followed = http_check(&server.url("https", "/redirect/4"));
    not_followed.follow_redirects = false;
    let observation = probe(&not_followed).await;
    assert_ok(&observation);
    assert_eq!(observation.facts.status, Some(301));

    let looping = probe(&http_check(&server.url("https", "/loop"))).await;
    assert_failed(&looping, FailureReason::Http, "too many redirects");
    assert_eq!(looping.facts.status, None);

    // 303 after a POST: GET the new location, without the body.
    let mut post = http_check(&server.url("https", "/see-other"));
    post.method = "POST".to_owned();
    post.body = Some("payload".to_owned());
    post.headers
        .insert("Content-Type".to_owned(), "text/plain".to_owned());
    let observation = probe(&post).await;
    assert_ok(&observation);
    let echoed = body(&observation);
    assert!(echoed.contains("method: GET\n"), "{echoed}");
    assert!(echoed.ends_with("body: "), "{echoed}");
    assert!(!echoed.contains("content-type"), "{echoed}");
}

#[tokio::test]
async fn post_sends_body_and_headers() {
    let server = start_tls_server(&pki().valid).await;
    let port = server.address.port();
    for version in [HttpVersion::Http1, HttpVersion::Http2] {
        let mut check = http_check(&server.url("https", "/echo?x=1"));
        check.method = "POST".to_owned();
        check.body = Some("payload".to_owned());
        check.http_version = version;
        check
            .headers
            .insert("X-Custom".to_owned(), "yes".to_owned());
        check
            .headers
            .insert("Content-Type".to_owned(), "text/plain".to_owned());
        let observation = probe(&check).await;
        assert_ok(&observation);
        let echoed = body(&observation);
        for expected in [
            "method: POST\n",
            "x-custom: yes\n",
            "content-type: text/plain\n",
            "content-length: 7\n",
            "user-agent: warden/",
            "\nbody: payload",
        ] {
            assert!(
                echoed.contains(expected),
                "{version:?}: {expected:?} in\n{echoed}"
            );
        }
        match version {
            HttpVersion::Http1 => {
                assert!(
                    echoed.contains(&format!("host: localhost:{port}\n")),
                    "{echoed}"
                );
                assert!(echoed.contains("uri: /echo?x=1\n"), "{echoed}");
            }
            _ => {
                // `:authority` instead of a Host header.
                let uri = format!("uri: https://localhost:{port}/echo?x=1\n");
                assert!(echoed.contains(&uri), "{echoed}");
            }
        }
    }

    let mut custom_agent = http_check(&server.url("https", "/echo"));
    custom_agent
        .headers
        .insert("user-agent".to_owned(), "probe/1".to_owned());
    let observation = probe(&custom_agent).await;
    assert_ok(&observation);
    assert!(
        body(&observation).contains("user-agent: probe/1\n"),
        "{}",
        body(&observation)
    );
    assert!(
        !body(&observation).contains("warden/"),
        "{}",
        body(&observation)
    );
}

#[tokio::test]
async fn basic_and_bearer_auth_are_sent() {
    let server = start_tls_server(&pki().valid).await;
    let cases = [
        (
            HttpAuth::Basic {
                username: "user".to_owned(),
                password: "pass".to_owned(),
            },
            "authorization: Basic dXNlcjpwYXNz\n",
        ),
        (
            HttpAuth::Bearer {
                token: "s3cret".to_owned(),
            },
            "authorization: Bearer s3cret\n",
        ),
    ];
    for (auth, expected) in cases {
        let mut check = http_check(&server.url("https", "/echo"));
        check.auth = Some(auth);
        let observation = probe(&check).await;
        assert_ok(&observation);
        assert!(
            body(&observation).contains(expected),
            "{}",
            body(&observation)
        );
    }
}

#[tokio::test]
async fn expired_certificate_is_a_tls_failure() {
    let server = start_tls_server(&pki().expired).await;
    let observation = probe(&http_check(&server.url("https", "/"))).await;
    assert_failed(&observation, FailureReason::Tls, "certificate has expired");
    assert!(observation.facts.connected);
    let days = sample(&observation, "cert_expiry_days").expect("cert_expiry_days");
    assert!(days < -365.0, "{days}");
    assert!(
        observation
            .facts
            .certificate_expiration_ms
            .is_some_and(|ms| ms < 0)
    );
}

#[tokio::test]
async fn wrong_host_is_a_tls_failure_naming_the_name() {
    let server = start_tls_server(&pki().wrong_host).await;
    let observation = probe(&http_check(&server.url("https", "/"))).await;
    assert_failed(
        &observation,
        FailureReason::Tls,
        "certificate is not valid for name localhost",
    );
}

#[tokio::test]
async fn verify_tls_off_connects_and_still_records_expiry() {
    let expired = start_tls_server(&pki().expired).await;
    let mut check = http_check(&expired.url("https", "/"));
    check.verify_tls = false;
    let observation = probe(&check).await;
    assert_ok(&observation);
    assert_eq!(observation.facts.status, Some(200));
    let days = sample(&observation, "cert_expiry_days").expect("cert_expiry_days");
    assert!(days < -365.0, "{days}");
    assert!(
        observation
            .notes
            .iter()
            .any(|note| note.contains("expired")),
        "{:?}",
        observation.notes
    );

    let wrong_host = start_tls_server(&pki().wrong_host).await;
    let mut check = http_check(&wrong_host.url("https", "/"));
    check.verify_tls = false;
    // Not even the test CA: an unknown issuer does not matter either.
    let observation = probe_http_with_roots(&check, GENEROUS, &CancellationToken::new(), &[]).await;
    assert_ok(&observation);
    assert_eq!(observation.facts.status, Some(200));
}

#[tokio::test]
async fn slow_endpoint_times_out_waiting_for_headers() {
    let server = start_tls_server(&pki().valid).await;
    let check = http_check(&server.url("https", "/slow"));
    let observation = probe_http_with_roots(
        &check,
        Duration::from_secs(2),
        &CancellationToken::new(),
        std::slice::from_ref(&pki().ca),
    )
    .await;
    assert_failed(
        &observation,
        FailureReason::Timeout,
        "timed out after 2s waiting for the response headers",
    );
    // What was seen before the timeout is kept.
    assert!(observation.facts.connected);
    assert!(sample(&observation, "tls_time").is_some());
    assert_eq!(observation.facts.status, None);
}

#[tokio::test]
async fn cancel_stops_the_probe() {
    let server = start_tls_server(&pki().valid).await;
    let check = http_check(&server.url("https", "/slow"));
    let cancel = CancellationToken::new();
    let probing = probe_http_with_roots(&check, GENEROUS, &cancel, std::slice::from_ref(&pki().ca));
    let cancelling = async {
        server.slow_arrived.notified().await;
        cancel.cancel();
    };
    let (observation, ()) = tokio::join!(probing, cancelling);
    assert_failed(&observation, FailureReason::Timeout, "cancelled");
}

#[tokio::test]
async fn closed_port_is_a_connect_failure() {
    let port = closed_port().await;
    let observation = probe(&http_check(&format!("http://127.0.0.1:{port}/"))).await;
    assert_failed(&observation, FailureReason::Connect, "Connection refused");
    assert!(!observation.facts.connected);
    assert_eq!(
        sample(&observation, "dns_time"),
        None,
        "an IP literal is not resolved"
    );
}

#[tokio::test]
async fn unresolvable_name_is_a_dns_failure() {
    let observation = probe(&http_check("https://nonexistent.invalid/")).await;
    assert_failed(
        &observation,
        FailureReason::Dns,
        "could not resolve nonexistent.invalid",
    );
    assert!(!observation.facts.connected);
}

#[tokio::test]
async fn large_bodies_are_counted_and_capped() {
    let server = start_tls_server(&pki().valid).await;
    let three_mib = 3 << 20;
    let observation = probe(&http_check(
        &server.url("https", &format!("/bytes/{three_mib}")),
    ))
    .await;
    assert_ok(&observation);
    assert_eq!(sample(&observation, "size"), Some(three_mib as f64));
    assert_eq!(
        observation.facts.body.as_ref().map(String::len),
        Some(1 << 20)
    );

    // Past the read limit: reading stops, the size counts what was read.
    let twelve_mib = 12 << 20;
    let observation = probe(&http_check(
        &server.url("https", &format!("/bytes/{twelve_mib}")),
    ))
    .await;
    assert_ok(&observation);
    let size = sample(&observation, "size").expect("size");
    assert!(
        (10 << 20) as f64 <= size && size < twelve_mib as f64,
        "{size}"
    );
    assert_eq!(
        observation.facts.body.as_ref().map(String::len),
        Some(1 << 20)
    );
    assert!(
        observation
            .notes
            .iter()
            .any(|note| note.starts_with("stopped reading the body")),
        "{:?}",
        observation.notes
    );
}

#[tokio::test]
async fn client_certificate_is_presented() {
    let server = start_server(Some(ServerTls {
        leaf: &pki().valid,
        require_client_certificate: true,
    }))
    .await;
    let directory = tempfile::tempdir().expect("temporary directory");
    for version in [HttpVersion::Http1, HttpVersion::Http2] {
        let mut check = http_check(&server.url("https", "/"));
        check.http_version = version;
        check.client_cert = Some(write_client_files(&directory));
        let observation = probe(&check).await;
        assert_ok(&observation);
        assert_eq!(observation.facts.status, Some(200));

        check.client_cert = None;
        let observation = probe(&check).await;
        assert_failed(&observation, FailureReason::Tls, "certificate_required");
    }

    let mut check = http_check(&server.url("https", "/"));
    let missing = directory.path().join("missing.pem");
    check.client_cert = Some(ClientCert {
        cert: missing.clone(),
        key: missing.clone(),
    });
    let observation = probe(&check).await;
    assert_failed(
        &observation,
        FailureReason::Tls,
        &missing.display().to_string(),
    );
}

#[tokio::test]
async fn bad_input_is_an_http_failure() {
    let cases = [
        ("not a url", "GET", "invalid URL"),
        ("ftp://localhost/", "GET", "unsupported scheme ftp"),
        ("https:///path", "GET", "invalid URL"),
        ("http://localhost/", "BAD METHOD", "invalid method"),
    ];
    for (url, method, message) in cases {
        let mut check = http_check(url);
        check.method = method.to_owned();
        let observation = probe(&check).await;
        assert_failed(&observation, FailureReason::Http, message);
    }
    let mut check = http_check("http://localhost/");
    check
        .headers
        .insert("bad header".to_owned(), "x".to_owned());
    assert_failed(
        &probe(&check).await,
        FailureReason::Http,
        "invalid header name",
    );
    check.headers.clear();
    check
        .headers
        .insert("x-ok".to_owned(), "line\nbreak".to_owned());
    assert_failed(
        &probe(&check).await,
        FailureReason::Http,
        "invalid value for header x-ok",
    );
}

// ---------------------------------------------------------------------------------------
// TLS probe

fn tls_check(server: &TestServer) -> TlsCheck {
    TlsCheck {
        host: "localhost".to_owned(),
        port: server.address.port(),
        server_name: None,
        warn_days: 14.0,
        crit_days: 7.0,
        conditions: Vec::new(),
    }
}

async fn probe_tls_trusting_ca(check: &TlsCheck) -> Observation {
    probe_tls_with_roots(
        check,
        GENEROUS,
        &CancellationToken::new(),
        std::slice::from_ref(&pki().ca),
    )
    .await
}

#[tokio::test]
async fn tls_valid_certificate() {
    let server = start_tls_server(&pki().valid).await;
    let observation = probe_tls_trusting_ca(&tls_check(&server)).await;
    assert_ok(&observation);
    assert!(observation.facts.connected);
    assert_eq!(observation.facts.ip.as_deref(), Some("127.0.0.1"));
    let days = sample(&observation, "cert_expiry_days").expect("cert_expiry_days");
    assert!((days - days_until(VALID_UNTIL)).abs() < 0.01, "{days}");
    assert!(
        observation
            .facts
            .certificate_expiration_ms
            .is_some_and(|ms| ms > 0)
    );
    assert!(sample(&observation, "handshake_time").is_some_and(|time| time > 0.0));
    let summary = &observation.summary;
    assert!(
        summary.starts_with(
            "TLSv1.3, CN=localhost issued by CN=warden test CA, valid until 2100-01-01 ("
        ),
        "{summary}"
    );
}

#[tokio::test]
async fn tls_expired_certificate() {
    let server = start_tls_server(&pki().expired).await;
    let observation = probe_tls_trusting_ca(&tls_check(&server)).await;
    assert_failed(&observation, FailureReason::Tls, "certificate has expired");
    let days = sample(&observation, "cert_expiry_days").expect("cert_expiry_days");
    assert!(days < -365.0, "{days}");
    assert!(
        observation
            .summary
            .contains("valid until 2021-01-01 (expired"),
        "{}",
        observation.summary
    );
}

#[tokio::test]
async fn tls_wrong_host() {
    let server = start_tls_server(&pki().valid).await;
    let mut check = tls_check(&server);
    check.server_name = Some("wrong.example".to_owned());
    let observation = probe_tls_trusting_ca(&check).await;
    assert_failed(
        &observation,
        FailureReason::Tls,
        "certificate is not valid for name wrong.example",
    );
    // The handshake still finished: the certificate and protocol are known.
    assert!(sample(&observation, "cert_expiry_days").is_some());
    assert!(
        observation.summary.starts_with("TLSv1.3, CN=localhost"),
        "{}",
        observation.summary
    );
}

#[tokio::test]
async fn tls_unknown_issuer() {
    let server = start_tls_server(&pki().valid).await;
    let observation = probe_tls(&tls_check(&server), GENEROUS, &CancellationToken::new()).await;
    assert_failed(&observation, FailureReason::Tls, "unknown issuer");
    assert!(
        observation.summary.contains("issued by CN=warden test CA"),
        "{}",
        observation.summary
    );
}

#[tokio::test]
async fn tls_connect_and_dns_failures() {
    let mut check = TlsCheck {
        host: "127.0.0.1".to_owned(),
        port: closed_port().await,
        server_name: Some("localhost".to_owned()),
        warn_days: 14.0,
        crit_days: 7.0,
        conditions: Vec::new(),
    };
    let observation = probe_tls_trusting_ca(&check).await;
    assert_failed(&observation, FailureReason::Connect, "Connection refused");
    check.host = "nonexistent.invalid".to_owned();
    let observation = probe_tls_trusting_ca(&check).await;
    assert_failed(&observation, FailureReason::Dns, "nonexistent.invalid");
}

#[tokio::test]
async fn tls_against_a_silent_server_times_out_in_the_handshake() {
    // Accepts the connection and never answers the ClientHello.
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let port = listener.local_addr().expect("local address").port();
    let check = TlsCheck {
        host: "127.0.0.1".to_owned(),
        port,
        server_name: Some("localhost".to_owned()),
        warn_days: 14.0,
        crit_days: 7.0,
        conditions: Vec::new(),
    };
    let observation = probe_tls_with_roots(
        &check,
        Duration::from_secs(1),
        &CancellationToken::new(),
        &[],
    )
    .await;
    assert_failed(
        &observation,
        FailureReason::Timeout,
        "timed out after 1s during the TLS handshake with localhost",
    );
    assert!(observation.facts.connected);
    drop(listener);
}

#[test]
fn probe_futures_are_send() {
    // The caller spawns probes on a multi-threaded runtime.
    fn assert_send<T: Send>(_: &T) {}
    let cancel = CancellationToken::new();
    let http = http_check("http://localhost/");
    assert_send(&super::http::probe_http(&http, GENEROUS, &cancel));
    let tls = TlsCheck {
        host: "localhost".to_owned(),
        port: 443,
        server_name: None,
        warn_days: 14.0,
        crit_days: 7.0,
        conditions: Vec::new(),
    };
    assert_send(&probe_tls(&tls, GENEROUS, &cancel));
}
