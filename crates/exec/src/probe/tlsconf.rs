//! Plumbing shared by the HTTP and TLS probes: the overall time bound with the phase it
//! was in, resolving and connecting with timings, the rustls client (system roots, ALPN,
//! client certificate) with a verifier that records its verdict, and what a certificate
//! says (names, notAfter) in human words.

use std::error::Error as StdError;
use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{
    AlertDescription, CertificateError, ClientConfig, DigitallySignedStruct, ProtocolVersion,
    RootCertStore, SignatureScheme,
};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;
use tokio_util::sync::CancellationToken;
use warden_core::config::ClientCert;

use super::{FailureReason, Observation, ProbeError};

pub(crate) fn probe_error(reason: FailureReason, message: impl Into<String>) -> ProbeError {
    ProbeError {
        reason,
        message: message.into(),
    }
}

/// How a time-bounded probe ended.
pub(crate) enum Bounded<T> {
    Done(T),
    TimedOut,
    Cancelled,
}

/// Runs `future` until it finishes, `timeout` passes or `cancel` fires, whichever is first.
///
/// # Cancel safety
///
/// Dropping the returned future drops `future`; nothing is left running.
pub(crate) async fn bounded<F: Future>(
    timeout: Duration,
    cancel: &CancellationToken,
    future: F,
) -> Bounded<F::Output> {
    tokio::select! {
        biased;
        () = cancel.cancelled() => Bounded::Cancelled,
        output = future => Bounded::Done(output),
        () = tokio::time::sleep(timeout) => Bounded::TimedOut,
    }
}

/// What a probe has seen so far and which phase it is in, so a timeout can say where it
/// happened and the facts keep what was observed before it.
pub(crate) struct Progress {
    pub started: Instant,
    /// Completes "timed out after 2s ...", e.g. "waiting for the response headers".
    pub phase: String,
    pub observation: Observation,
}

impl Progress {
    pub fn new() -> Progress {
        Progress {
            started: Instant::now(),
            phase: "starting".to_owned(),
            observation: Observation::default(),
        }
    }

    pub fn enter(&mut self, phase: impl Into<String>) {
        self.phase = phase.into();
    }

    /// Sets a sample, replacing an earlier one with the same label (a redirect's next hop
    /// measures its phases again).
    pub fn set_sample(&mut self, label: &str, value: f64) {
        let samples = &mut self.observation.samples;
        match samples.iter_mut().find(|(existing, _)| existing == label) {
            Some(sample) => sample.1 = value,
            None => samples.push((label.to_owned(), value)),
        }
    }

    pub fn remove_sample(&mut self, label: &str) {
        self.observation
            .samples
            .retain(|(existing, _)| existing != label);
    }

    pub fn note(&mut self, note: impl Into<String>) {
        self.observation.notes.push(note.into());
    }

    /// The final observation: the run's error, if any, or the timeout in the current phase.
    pub fn conclude(
        mut self,
        outcome: Bounded<Result<(), ProbeError>>,
        timeout: Duration,
    ) -> Observation {
        let error = match outcome {
            Bounded::Done(Ok(())) => None,
            Bounded::Done(Err(error)) => Some(error),
            Bounded::TimedOut => Some(probe_error(
                FailureReason::Timeout,
                format!("timed out after {} {}", format_timeout(timeout), self.phase),
            )),
            Bounded::Cancelled => Some(probe_error(FailureReason::Timeout, "cancelled")),
        };
        self.observation.error = error;
        self.observation
    }
}

/// `2s`, `1.5s`, `300ms`: a configured timeout as a person wrote it.
pub(crate) fn format_timeout(timeout: Duration) -> String {
    let millis = timeout.as_millis();
    if millis < 1000 {
        format!("{millis}ms")
    } else if millis.is_multiple_of(1000) {
        format!("{}s", millis / 1000)
    } else {
        format!("{:.1}s", timeout.as_secs_f64())
    }
}

/// The addresses a host name stands for; `dns_time` is `None` for an IP literal.
pub(crate) struct Resolved {
    pub addresses: Vec<SocketAddr>,
    pub dns_time: Option<Duration>,
}

/// Resolves `host` (a name or an IP literal without brackets) with the system resolver.
///
/// # Cancel safety
///
/// Dropping the future abandons the lookup; the resolver thread finishes it and the answer
/// is discarded (`getaddrinfo` cannot be interrupted).
pub(crate) async fn resolve(host: &str, port: u16) -> Result<Resolved, ProbeError> {
    if let Ok(ip) = host.parse::<IpAddr>() {
        return Ok(Resolved {
            addresses: vec![SocketAddr::new(ip, port)],
            dns_time: None,
        });
    }
    let started = Instant::now();
    let addresses: Vec<SocketAddr> = tokio::net::lookup_host((host, port))
        .await
        .map_err(|error| {
            probe_error(
                FailureReason::Dns,
                format!("could not resolve {host}: {}", io_error_text(&error)),
            )
        })?
        .collect();
    if addresses.is_empty() {
        return Err(probe_error(
            FailureReason::Dns,
            format!("could not resolve {host}: no addresses"),
        ));
    }
    Ok(Resolved {
        addresses,
        dns_time: Some(started.elapsed()),
    })
}

/// Connects to the addresses in order until one accepts, recording the phase, the
/// `connected` and `ip` facts and the `connect_time` sample (all attempts together).
pub(crate) async fn connect(
    addresses: &[SocketAddr],
    progress: &mut Progress,
) -> Result<TcpStream, ProbeError> {
    let started = Instant::now();
    let mut failures = Vec::new();
    for address in addresses {
        progress.enter(format!("connecting to {address}"));
        match TcpStream::connect(address).await {
            Ok(stream) => {
                // Latency matters more than throughput for a probe; failing to set it only
                // costs a few milliseconds, so the error is not worth a failure.
                let _ = stream.set_nodelay(true);
                progress.observation.facts.connected = true;
                progress.observation.facts.ip = Some(address.ip().to_string());
                progress.set_sample("connect_time", started.elapsed().as_secs_f64());
                return Ok(stream);
            }
            Err(error) => failures.push(format!("{address}: {}", io_error_text(&error))),
        }
    }
    Err(probe_error(
        FailureReason::Connect,
        format!("could not connect to {}", failures.join("; ")),
    ))
}

/// `Connection refused` rather than `Connection refused (os error 111)`.
pub(crate) fn io_error_text(error: &std::io::Error) -> String {
    let text = error.to_string();
    match text.find(" (os error ") {
        Some(at) => text[..at].to_owned(),
        None => text,
    }
}

/// A client certificate chain and its key, read from PEM files.
pub(crate) struct ClientIdentity {
    chain: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
}

/// Reads the client certificate and key files (at probe time, so a renewed certificate is
/// picked up without a reload).
pub(crate) async fn load_client_identity(files: &ClientCert) -> Result<ClientIdentity, ProbeError> {
    let cert_pem = read_file(&files.cert).await.map_err(|error| {
        probe_error(
            FailureReason::Tls,
            format!(
                "cannot read client certificate {}: {error}",
                files.cert.display()
            ),
        )
    })?;
    let key_pem = read_file(&files.key).await.map_err(|error| {
        probe_error(
            FailureReason::Tls,
            format!("cannot read client key {}: {error}", files.key.display()),
        )
    })?;
    let chain = CertificateDer::pem_slice_iter(&cert_pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|error| {
            probe_error(
                FailureReason::Tls,
                format!(
                    "cannot parse client certificate {}: {error}",
                    files.cert.display()
                ),
            )
        })?;
    if chain.is_empty() {
        return Err(probe_error(
            FailureReason::Tls,
            format!("no certificate in {}", files.cert.display()),
        ));
    }
    let key = PrivateKeyDer::from_pem_slice(&key_pem).map_err(|error| {
        probe_error(
            FailureReason::Tls,
            format!("cannot parse client key {}: {error}", files.key.display()),
        )
    })?;
    Ok(ClientIdentity { chain, key })
}

async fn read_file(path: &Path) -> Result<Vec<u8>, String> {
    let path: PathBuf = path.to_owned();
    match tokio::task::spawn_blocking(move || std::fs::read(path)).await {
        Ok(Ok(bytes)) => Ok(bytes),
        Ok(Err(error)) => Err(io_error_text(&error)),
        Err(error) => Err(error.to_string()),
    }
}

/// The trust anchors: the system's store (as curl uses it), or the bundled Mozilla roots
/// when the system has none (a slim container without `ca-certificates`).
struct Roots {
    store: Arc<RootCertStore>,
    source: &'static str,
}

static ROOTS: tokio::sync::OnceCell<Roots> = tokio::sync::OnceCell::const_new();

async fn roots() -> &'static Roots {
    ROOTS
        .get_or_init(|| async {
            tokio::task::spawn_blocking(load_roots)
                .await
                .unwrap_or_else(|_| bundled_roots())
        })
        .await
}

fn load_roots() -> Roots {
    let native = rustls_native_certs::load_native_certs();
    let mut store = RootCertStore::empty();
    store.add_parsable_certificates(native.certs);
    if store.is_empty() {
        return bundled_roots();
    }
    Roots {
        store: Arc::new(store),
        source: "system",
    }
}

fn bundled_roots() -> Roots {
    let mut store = RootCertStore::empty();
    store.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    Roots {
        store: Arc::new(store),
        source: "bundled Mozilla",
    }
}

/// How to set up one TLS client connection.
pub(crate) struct TlsSetup<'a> {
    /// Abort the handshake when the chain or the name does not verify; when false the
    /// verdict is only recorded.
    pub enforce_verification: bool,
    pub alpn: &'a [&'a [u8]],
    pub client_identity: Option<&'a ClientIdentity>,
    /// Trusted in addition to the system roots (tests).
    pub extra_roots: &'a [CertificateDer<'static>],
}

/// What the certificate verifier concluded about the server's chain and name.
#[derive(Debug, Clone)]
pub(crate) struct Verdict {
    pub leaf: CertificateDer<'static>,
    pub result: Result<(), rustls::Error>,
}

/// A TLS handshake's result with the verifier's verdict, which is there whenever the
/// server sent a certificate, even if the handshake failed afterwards.
pub(crate) struct Handshake {
    pub result: Result<TlsStream<TcpStream>, ProbeError>,
    pub verdict: Option<Verdict>,
    /// `system`, or `bundled Mozilla` when the system has no trust store.
    pub trust_source: &'static str,
}

impl Handshake {
    /// A note for when the chain was judged without the system's trust store.
    pub fn trust_note(&self) -> Option<String> {
        (self.trust_source != "system").then(|| {
            format!(
                "no system trust store found, verified against the {} roots",
                self.trust_source
            )
        })
    }
}

/// Runs the TLS client handshake on `tcp`, sending `server_name` as SNI and verifying the
/// certificate against it.
pub(crate) async fn handshake(
    tcp: TcpStream,
    server_name: &str,
    setup: &TlsSetup<'_>,
) -> Handshake {
    let fail = |message: String| Handshake {
        result: Err(probe_error(FailureReason::Tls, message)),
        verdict: None,
        trust_source: "system",
    };
    let Ok(name) = ServerName::try_from(server_name.to_owned()) else {
        return fail(format!("{server_name:?} is not a valid TLS server name"));
    };
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let roots = roots().await;
    let store = if setup.extra_roots.is_empty() {
        roots.store.clone()
    } else {
        let mut store = (*roots.store).clone();
        store.add_parsable_certificates(setup.extra_roots.iter().cloned());
        Arc::new(store)
    };
    // Building fails only without any trust anchor; the recorder then reports every
    // chain as untrusted.
    let webpki = WebPkiServerVerifier::builder_with_provider(store, provider.clone())
        .build()
        .ok();
    let verifier = Arc::new(RecordingVerifier {
        webpki,
        provider: provider.clone(),
        enforce: setup.enforce_verification,
        verdict: Mutex::new(None),
    });
    let builder =
        match ClientConfig::builder_with_provider(provider).with_safe_default_protocol_versions() {
            Ok(builder) => builder
                .dangerous()
                .with_custom_certificate_verifier(verifier.clone()),
            Err(error) => return fail(format!("cannot set up TLS: {error}")),
        };
    let mut config = match setup.client_identity {
        None => builder.with_no_client_auth(),
        Some(identity) => {
            match builder.with_client_auth_cert(identity.chain.clone(), identity.key.clone_key()) {
                Ok(config) => config,
                Err(error) => return fail(format!("unusable client certificate: {error}")),
            }
        }
    };
    config.alpn_protocols = setup
        .alpn
        .iter()
        .map(|protocol| protocol.to_vec())
        .collect();
    let connector = TlsConnector::from(Arc::new(config));
    let result = connector.connect(name, tcp).await;
    let verdict = verifier.take_verdict();
    let result = result.map_err(|error| {
        let message = match find_rustls_error(&error) {
            Some(tls_error) => describe_tls_error(tls_error, server_name),
            None => format!("TLS handshake failed: {}", io_error_text(&error)),
        };
        probe_error(FailureReason::Tls, message)
    });
    Handshake {
        result,
        verdict,
        trust_source: roots.source,
    }
}

/// Verifies like rustls' WebPKI verifier, remembers the verdict and, unless told to
/// enforce it, accepts the certificate anyway so the handshake can finish and show what
/// the server presents. Handshake signatures are always checked.
#[derive(Debug)]
struct RecordingVerifier {
    webpki: Option<Arc<WebPkiServerVerifier>>,
    provider: Arc<CryptoProvider>,
    enforce: bool,
    verdict: Mutex<Option<Verdict>>,
}

impl RecordingVerifier {
    fn lock(&self) -> MutexGuard<'_, Option<Verdict>> {
        self.verdict
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn take_verdict(&self) -> Option<Verdict> {
        self.lock().take()
    }
}

impl ServerCertVerifier for RecordingVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let result = match &self.webpki {
            Some(webpki) => webpki
                .verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now)
                .map(|_| ()),
            None => Err(rustls::Error::InvalidCertificate(
                CertificateError::UnknownIssuer,
            )),
        };
        *self.lock() = Some(Verdict {
            leaf: end_entity.clone().into_owned(),
            result: result.clone(),
        });
        match result {
            Err(error) if self.enforce => Err(error),
            _ => Ok(ServerCertVerified::assertion()),
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

/// The rustls error somewhere in an error's chain (I/O errors wrap it; `io::Error::source`
/// skips the wrapped error, so each one is looked into).
pub(crate) fn find_rustls_error<'a>(
    error: &'a (dyn StdError + 'static),
) -> Option<&'a rustls::Error> {
    let mut current: Option<&'a (dyn StdError + 'static)> = Some(error);
    while let Some(error) = current {
        if let Some(tls_error) = error.downcast_ref::<rustls::Error>() {
            return Some(tls_error);
        }
        if let Some(io_error) = error.downcast_ref::<std::io::Error>()
            && let Some(inner) = io_error.get_ref()
        {
            if let Some(tls_error) = inner.downcast_ref::<rustls::Error>() {
                return Some(tls_error);
            }
            current = Some(inner);
            continue;
        }
        current = error.source();
    }
    None
}

/// A TLS failure in a person's words, naming the name that was checked.
pub(crate) fn describe_tls_error(error: &rustls::Error, server_name: &str) -> String {
    match error {
        rustls::Error::InvalidCertificate(certificate_error) => {
            describe_certificate_error(certificate_error, server_name)
        }
        rustls::Error::AlertReceived(alert) => {
            let hint = match alert {
                AlertDescription::CertificateRequired => " (a client certificate is required)",
                AlertDescription::BadCertificate | AlertDescription::UnknownCA => {
                    " (the server rejected the client certificate)"
                }
                AlertDescription::HandshakeFailure => " (no common protocol or cipher)",
                _ => "",
            };
            format!("the server sent TLS alert {}{hint}", alert_name(*alert))
        }
        other => format!("TLS handshake failed: {other}"),
    }
}

fn describe_certificate_error(error: &CertificateError, server_name: &str) -> String {
    match error {
        CertificateError::Expired => "certificate has expired".to_owned(),
        CertificateError::ExpiredContext { not_after, .. } => format!(
            "certificate has expired (not valid after {})",
            format_date(unix_seconds(*not_after))
        ),
        CertificateError::NotValidYet => "certificate is not valid yet".to_owned(),
        CertificateError::NotValidYetContext { not_before, .. } => format!(
            "certificate is not valid yet (not valid before {})",
            format_date(unix_seconds(*not_before))
        ),
        CertificateError::NotValidForName => {
            format!("certificate is not valid for name {server_name}")
        }
        CertificateError::NotValidForNameContext { presented, .. } => {
            if presented.is_empty() {
                format!("certificate is not valid for name {server_name}")
            } else {
                format!(
                    "certificate is not valid for name {server_name} (it is valid for {})",
                    presented.join(", ")
                )
            }
        }
        CertificateError::UnknownIssuer => {
            "unknown issuer: the certificate chain does not lead to a trusted root".to_owned()
        }
        CertificateError::Revoked => "certificate has been revoked".to_owned(),
        CertificateError::BadSignature => "certificate has an invalid signature".to_owned(),
        CertificateError::BadEncoding => "certificate is malformed".to_owned(),
        CertificateError::InvalidPurpose | CertificateError::InvalidPurposeContext { .. } => {
            "certificate is not meant for TLS servers".to_owned()
        }
        other => format!("invalid certificate: {other}"),
    }
}

/// `certificate_required` as the TLS specifications spell an alert.
fn alert_name(alert: AlertDescription) -> String {
    let debug = format!("{alert:?}");
    let mut name = String::with_capacity(debug.len() + 4);
    for (index, character) in debug.chars().enumerate() {
        if character.is_ascii_uppercase() {
            if index > 0 {
                name.push('_');
            }
            name.push(character.to_ascii_lowercase());
        } else {
            name.push(character);
        }
    }
    name
}

fn unix_seconds(time: UnixTime) -> i64 {
    i64::try_from(time.as_secs()).unwrap_or(i64::MAX)
}

/// `TLSv1.3`.
pub(crate) fn protocol_name(version: ProtocolVersion) -> String {
    match version {
        ProtocolVersion::TLSv1_3 => "TLSv1.3".to_owned(),
        ProtocolVersion::TLSv1_2 => "TLSv1.2".to_owned(),
        other => format!("{other:?}"),
    }
}

/// What a certificate says that a person looks for.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct CertificateInfo {
    pub subject: String,
    pub issuer: String,
    /// notAfter, seconds since the Unix epoch.
    pub not_after: i64,
}

/// Parses a DER certificate; `None` if it is not one.
pub(crate) fn certificate_info(der: &[u8]) -> Option<CertificateInfo> {
    let (_, certificate) = x509_parser::parse_x509_certificate(der).ok()?;
    let name = |name: &x509_parser::x509::X509Name<'_>| {
        name.iter_common_name()
            .next()
            .and_then(|common_name| common_name.as_str().ok())
            .map(|common_name| format!("CN={common_name}"))
            .unwrap_or_else(|| name.to_string())
    };
    Some(CertificateInfo {
        subject: name(certificate.subject()),
        issuer: name(certificate.issuer()),
        not_after: certificate.validity().not_after.timestamp(),
    })
}

/// Records how long the leaf has left: `facts.certificate_expiration_ms` and the
/// `cert_expiry_days` sample (negative once expired).
pub(crate) fn record_expiry(progress: &mut Progress, info: &CertificateInfo) {
    let now_ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|elapsed| i64::try_from(elapsed.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0);
    let left_ms = info.not_after.saturating_mul(1000).saturating_sub(now_ms);
    progress.observation.facts.certificate_expiration_ms = Some(left_ms);
    progress.set_sample("cert_expiry_days", left_ms as f64 / 86_400_000.0);
}

/// `2026-03-01` for seconds since the Unix epoch (UTC, proleptic Gregorian).
pub(crate) fn format_date(unix_seconds: i64) -> String {
    // Howard Hinnant's days-to-civil algorithm.
    let days = unix_seconds.div_euclid(86_400) + 719_468;
    let era = days.div_euclid(146_097);
    let day_of_era = days.rem_euclid(146_097);
    let year_of_era =
        (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let month_index = (5 * day_of_year + 2) / 153;
    let day = day_of_year - (153 * month_index + 2) / 5 + 1;
    let month = if month_index < 10 {
        month_index + 3
    } else {
        month_index - 9
    };
    let year = year_of_era + era * 400 + i64::from(month <= 2);
    format!("{year:04}-{month:02}-{day:02}")
}
