//! The HTTP probe: one request (plus redirects) on hyper's connection API, so each phase —
//! resolving, connecting, the TLS handshake, the response headers, the body — is timed and
//! a timeout can say which one it was in.
//!
//! Every hop opens its own connection (no pooling), so the samples of the final hop are
//! the ones recorded. The connection is driven inside the probe's own future (no spawned
//! task), so dropping the probe closes everything.

use std::future::Future;
use std::pin::{Pin, pin};
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::{Method, Request, Response, StatusCode, Uri};
use http_body_util::{BodyExt, Full};
use hyper::body::{Body, Bytes, Incoming};
use hyper_util::rt::TokioIo;
use rustls::pki_types::CertificateDer;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio_util::sync::CancellationToken;
use warden_core::config::{HttpAuth, HttpCheck, HttpVersion};

use super::tlsconf::{self, ClientIdentity, Progress, TlsSetup};
use super::{FailureReason, Observation, ProbeError};

/// Redirects followed before the probe gives up.
const MAX_REDIRECTS: usize = 10;
/// What is kept of the body for the conditions.
const KEPT_BODY_LIMIT: usize = 1 << 20;
/// Where reading the body stops; `size` counts up to here.
const READ_LIMIT: u64 = 10 << 20;

const USER_AGENT: &str = concat!("warden/", env!("CARGO_PKG_VERSION"));

/// Runs one HTTP check: resolves, connects, handshakes (https), sends the request, follows
/// redirects if asked and reads the body, all within `timeout`.
///
/// Facts: `status`, `response_time`, `body` (the first MiB, lossy UTF-8), `connected`,
/// `ip`, and for https `certificate_expiration_ms`. Samples (seconds unless said):
/// `dns_time`, `connect_time`, `tls_time` (durations of those phases of the final hop;
/// `dns_time` is absent for an IP literal), `first_byte_time` (from the start to the final
/// response's headers), `response_time` (total), `size` (bytes), `status`,
/// `cert_expiry_days`.
///
/// # Cancel safety
///
/// Dropping the future closes the connection and leaves nothing running (except a name
/// lookup in the resolver's thread, whose answer is discarded). If `cancel` fires the
/// observation's error is `timeout` with the message `cancelled`.
pub async fn probe_http(
    check: &HttpCheck,
    timeout: Duration,
    cancel: &CancellationToken,
) -> Observation {
    probe_http_with_roots(check, timeout, cancel, &[]).await
}

/// [`probe_http`] that also trusts `extra_roots` (tests use their own CA).
#[doc(hidden)]
pub async fn probe_http_with_roots(
    check: &HttpCheck,
    timeout: Duration,
    cancel: &CancellationToken,
    extra_roots: &[CertificateDer<'static>],
) -> Observation {
    let mut progress = Progress::new();
    let outcome = tlsconf::bounded(timeout, cancel, run(check, extra_roots, &mut progress)).await;
    progress.conclude(outcome, timeout)
}

fn http_error(message: impl Into<String>) -> ProbeError {
    tlsconf::probe_error(FailureReason::Http, message)
}

async fn run(
    check: &HttpCheck,
    extra_roots: &[CertificateDer<'static>],
    progress: &mut Progress,
) -> Result<(), ProbeError> {
    let mut target = Target::parse(&check.url)?;
    let mut request = RequestPlan::new(check, &target)?;
    let mut client = Client {
        check,
        extra_roots,
        identity: None,
    };
    let mut redirects = 0;
    let (response, mut connection) = loop {
        let (response, connection) = client.exchange(&target, &request, progress).await?;
        let status = response.status();
        let location = response.headers().get(header::LOCATION);
        let Some(location) = location.filter(|_| check.follow_redirects && is_redirect(status))
        else {
            break (response, connection);
        };
        if redirects == MAX_REDIRECTS {
            return Err(http_error(format!(
                "too many redirects (more than {MAX_REDIRECTS}, the last to {})",
                target.url()
            )));
        }
        redirects += 1;
        let next = target.join(&String::from_utf8_lossy(location.as_bytes()))?;
        if let Some(note) = request.redirected(status, &target, &next) {
            progress.note(note);
        }
        progress.note(format!("{} redirected to {}", status.as_u16(), next.url()));
        target = next;
        // Dropping the response and its connection closes that hop.
    };

    let status = response.status();
    progress.observation.facts.status = Some(status.as_u16());
    progress.set_sample("status", f64::from(status.as_u16()));
    progress.set_sample("first_byte_time", progress.started.elapsed().as_secs_f64());
    progress.note(format!("{:?}", response.version()));

    progress.enter("reading the response body");
    let mut body = response.into_body();
    let mut kept = Vec::new();
    let mut size: u64 = 0;
    while let Some(frame) = connection.drive(body.frame()).await {
        let frame = frame.map_err(|error| connection.classify(&error, "reading the body"))?;
        let Ok(data) = frame.into_data() else {
            continue; // trailers
        };
        size += data.len() as u64;
        let room = KEPT_BODY_LIMIT.saturating_sub(kept.len());
        kept.extend_from_slice(&data[..data.len().min(room)]);
        if size >= READ_LIMIT && !body.is_end_stream() {
            progress.note(format!(
                "stopped reading the body after {}",
                format_size(size)
            ));
            break;
        }
    }
    drop(connection);

    let elapsed = progress.started.elapsed();
    if kept.len() as u64 != size {
        progress.note(format!(
            "kept the first {} of the body for the conditions",
            format_size(kept.len() as u64)
        ));
    }
    let facts = &mut progress.observation.facts;
    facts.response_time = Some(elapsed);
    facts.body = Some(String::from_utf8_lossy(&kept).into_owned());
    progress.set_sample("response_time", elapsed.as_secs_f64());
    progress.set_sample("size", size as f64);
    let reason = status
        .canonical_reason()
        .map(|reason| format!(" {reason}"))
        .unwrap_or_default();
    progress.observation.summary = format!(
        "HTTP {}{reason} in {}, {}",
        status.as_u16(),
        format_elapsed(elapsed),
        format_size(size)
    );
    Ok(())
}

fn is_redirect(status: StatusCode) -> bool {
    matches!(status.as_u16(), 301 | 302 | 303 | 307 | 308)
}

/// `12 ms`, `1.53 s`.
fn format_elapsed(elapsed: Duration) -> String {
    let millis = elapsed.as_millis();
    if millis < 1000 {
        format!("{millis} ms")
    } else {
        format!("{:.2} s", elapsed.as_secs_f64())
    }
}

/// `512 B`, `1.2 kB`, `3.4 MB` (SI units, as browsers show sizes).
fn format_size(bytes: u64) -> String {
    if bytes < 1000 {
        format!("{bytes} B")
    } else if bytes < 1_000_000 {
        format!("{:.1} kB", bytes as f64 / 1e3)
    } else {
        format!("{:.1} MB", bytes as f64 / 1e6)
    }
}

/// Where a hop goes: an absolute http(s) URL taken apart.
#[derive(Debug, Clone, PartialEq)]
struct Target {
    https: bool,
    /// For DNS and SNI: no brackets around an IPv6 address.
    host: String,
    port: u16,
    /// `host[:port]` as the `Host` header wants it (the port only if not the default).
    authority: String,
    /// `/path?query`, never empty.
    path_and_query: String,
    /// `user:password` from the URL, still percent-encoded.
    userinfo: Option<String>,
}

impl Target {
    fn parse(url: &str) -> Result<Target, ProbeError> {
        let invalid = |why: &str| http_error(format!("invalid URL {url:?}: {why}"));
        let without_fragment = url.trim().split('#').next().unwrap_or_default();
        let uri: Uri = without_fragment
            .parse()
            .map_err(|error: http::uri::InvalidUri| invalid(&error.to_string()))?;
        let https = match uri.scheme_str() {
            Some(scheme) if scheme.eq_ignore_ascii_case("https") => true,
            Some(scheme) if scheme.eq_ignore_ascii_case("http") => false,
            Some(scheme) => return Err(invalid(&format!("unsupported scheme {scheme}"))),
            None => return Err(invalid("no scheme (http:// or https://)")),
        };
        let Some(authority) = uri.authority() else {
            return Err(invalid("no host"));
        };
        let (userinfo, host_and_port) = match authority.as_str().rsplit_once('@') {
            Some((userinfo, rest)) => (Some(userinfo.to_owned()), rest),
            None => (None, authority.as_str()),
        };
        let host = authority.host();
        if host.is_empty() {
            return Err(invalid("no host"));
        }
        let default_port = if https { 443 } else { 80 };
        let port = match authority.port() {
            Some(port) => port.as_u16(),
            None if host_and_port.ends_with(':') => return Err(invalid("empty port")),
            None => default_port,
        };
        let authority = if port == default_port {
            host.to_owned()
        } else {
            format!("{host}:{port}")
        };
        let path_and_query = match uri.path_and_query().map(|p| p.as_str()) {
            None | Some("") => "/".to_owned(),
            Some(path) if path.starts_with('?') => format!("/{path}"),
            Some(path) => path.to_owned(),
        };
        Ok(Target {
            https,
            host: host
                .trim_start_matches('[')
                .trim_end_matches(']')
                .to_owned(),
            port,
            authority,
            path_and_query,
            userinfo,
        })
    }

    fn scheme(&self) -> &'static str {
        if self.https { "https" } else { "http" }
    }

    fn url(&self) -> String {
        format!(
            "{}://{}{}",
            self.scheme(),
            self.authority,
            self.path_and_query
        )
    }

    fn same_origin(&self, other: &Target) -> bool {
        self.https == other.https
            && self.host.eq_ignore_ascii_case(&other.host)
            && self.port == other.port
    }

    /// Resolves a `Location` against this URL (RFC 3986 section 5.2).
    fn join(&self, location: &str) -> Result<Target, ProbeError> {
        let location = percent_encode_unsafe(location.trim());
        let location = location.split('#').next().unwrap_or_default();
        let absolute = if has_scheme(location) {
            location.to_owned()
        } else if location.starts_with("//") {
            format!("{}:{location}", self.scheme())
        } else {
            let base = format!("{}://{}", self.scheme(), self.authority);
            let (base_path, _) = split_query(&self.path_and_query);
            let (path, query) = split_query(location);
            let (path, query) = if path.is_empty() {
                let query = if location.contains('?') {
                    query
                } else {
                    split_query(&self.path_and_query).1
                };
                (base_path.to_owned(), query)
            } else if path.starts_with('/') {
                (remove_dot_segments(path), query)
            } else {
                let directory = &base_path[..base_path.rfind('/').map_or(0, |at| at + 1)];
                (remove_dot_segments(&format!("{directory}{path}")), query)
            };
            match query {
                Some(query) => format!("{base}{path}?{query}"),
                None => format!("{base}{path}"),
            }
        };
        Target::parse(&absolute).map_err(|error| {
            http_error(format!(
                "cannot follow the redirect to {location:?}: {}",
                error.message
            ))
        })
    }
}

fn has_scheme(reference: &str) -> bool {
    let Some((scheme, _)) = reference.split_once(':') else {
        return false;
    };
    let mut characters = scheme.chars();
    characters
        .next()
        .is_some_and(|first| first.is_ascii_alphabetic())
        && characters.all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'))
}

fn split_query(reference: &str) -> (&str, Option<&str>) {
    match reference.split_once('?') {
        Some((path, query)) => (path, Some(query)),
        None => (reference, None),
    }
}

/// RFC 3986 section 5.2.4, on a path that starts with `/`.
fn remove_dot_segments(path: &str) -> String {
    let mut output: Vec<&str> = Vec::new();
    let segments: Vec<&str> = path.split('/').skip(1).collect();
    let last = segments.len().saturating_sub(1);
    for (index, segment) in segments.iter().enumerate() {
        match *segment {
            "." => {
                if index == last {
                    output.push("");
                }
            }
            ".." => {
                output.pop();
                if index == last {
                    output.push("");
                }
            }
            segment => output.push(segment),
        }
    }
    format!("/{}", output.join("/"))
}

/// Percent-encodes what servers put in `Location` but a URI may not hold (spaces, non-ASCII).
fn percent_encode_unsafe(reference: &str) -> String {
    let mut encoded = String::with_capacity(reference.len());
    for byte in reference.bytes() {
        if byte <= b' ' || byte >= 0x7f || b"\"<>\\^`{|}".contains(&byte) {
            encoded.push_str(&format!("%{byte:02X}"));
        } else {
            encoded.push(char::from(byte));
        }
    }
    encoded
}

fn percent_decode(text: &str) -> Vec<u8> {
    let bytes = text.as_bytes();
    let mut decoded = Vec::with_capacity(bytes.len());
    let mut index = 0;
    while index < bytes.len() {
        let hex = bytes.get(index + 1..index + 3).and_then(|pair| {
            std::str::from_utf8(pair)
                .ok()
                .and_then(|pair| u8::from_str_radix(pair, 16).ok())
        });
        match (bytes[index], hex) {
            (b'%', Some(value)) => {
                decoded.push(value);
                index += 3;
            }
            (byte, _) => {
                decoded.push(byte);
                index += 1;
            }
        }
    }
    decoded
}

fn base64(input: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut output = String::with_capacity(input.len().div_ceil(3) * 4);
    for chunk in input.chunks(3) {
        let bytes = [
            chunk[0],
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let group = (u32::from(bytes[0]) << 16) | (u32::from(bytes[1]) << 8) | u32::from(bytes[2]);
        for position in 0..4 {
            if position <= chunk.len() {
                let index = (group >> (18 - 6 * position)) & 0x3f;
                output.push(char::from(ALPHABET[index as usize]));
            } else {
                output.push('=');
            }
        }
    }
    output
}

fn basic_credentials(user_and_password: &[u8]) -> String {
    format!("Basic {}", base64(user_and_password))
}

/// The request as configured, adjusted hop by hop as redirects change it.
#[derive(Debug, Clone)]
struct RequestPlan {
    method: Method,
    headers: HeaderMap,
    body: Bytes,
    /// From `auth` (or the URL's user info); replaces an `Authorization` header.
    authorization: Option<HeaderValue>,
}

impl RequestPlan {
    fn new(check: &HttpCheck, target: &Target) -> Result<RequestPlan, ProbeError> {
        let method_name = match check.method.trim() {
            "" => "GET".to_owned(),
            method => method.to_ascii_uppercase(),
        };
        let method = Method::from_bytes(method_name.as_bytes())
            .map_err(|_| http_error(format!("invalid method {method_name:?}")))?;
        let mut headers = HeaderMap::new();
        for (name, value) in &check.headers {
            let header_name = HeaderName::from_bytes(name.trim().as_bytes())
                .map_err(|_| http_error(format!("invalid header name {name:?}")))?;
            let header_value = HeaderValue::from_str(value.trim())
                .map_err(|_| http_error(format!("invalid value for header {name}")))?;
            headers.append(header_name, header_value);
        }
        let credentials = match &check.auth {
            Some(HttpAuth::Basic { username, password }) => Some(basic_credentials(
                format!("{username}:{password}").as_bytes(),
            )),
            Some(HttpAuth::Bearer { token }) => Some(format!("Bearer {}", token.trim())),
            None => target
                .userinfo
                .as_deref()
                .map(|userinfo| basic_credentials(&percent_decode(userinfo))),
        };
        let authorization = credentials
            .map(|credentials| {
                HeaderValue::from_str(&credentials)
                    .map(|mut value| {
                        value.set_sensitive(true);
                        value
                    })
                    .map_err(|_| http_error("the credentials hold characters a header cannot"))
            })
            .transpose()?;
        Ok(RequestPlan {
            method,
            headers,
            body: Bytes::from(check.body.clone().unwrap_or_default()),
            authorization,
        })
    }

    /// Adjusts the request for the next hop of a redirect: 303 (and 301/302 after a POST)
    /// becomes a GET without body; credentials and a custom `Host` are not sent to another
    /// origin. Returns a note when something was dropped.
    fn redirected(&mut self, status: StatusCode, from: &Target, to: &Target) -> Option<String> {
        let becomes_get = match status.as_u16() {
            303 => self.method != Method::HEAD,
            301 | 302 => self.method == Method::POST,
            _ => false,
        };
        if becomes_get {
            self.method = Method::GET;
            self.body = Bytes::new();
            for name in [
                header::CONTENT_TYPE,
                header::CONTENT_LENGTH,
                header::CONTENT_ENCODING,
                header::TRANSFER_ENCODING,
            ] {
                self.headers.remove(name);
            }
        }
        if from.same_origin(to) {
            return None;
        }
        self.headers.remove(header::HOST);
        let had_credentials = self.authorization.take().is_some()
            | self.headers.remove(header::AUTHORIZATION).is_some()
            | self.headers.remove(header::COOKIE).is_some();
        had_credentials.then(|| {
            format!(
                "did not send the credentials to {} (another origin)",
                to.authority
            )
        })
    }

    fn build(&self, target: &Target, http2: bool) -> Result<Request<Full<Bytes>>, ProbeError> {
        let mut headers = self.headers.clone();
        let host_override = headers.remove(header::HOST);
        let uri = if http2 {
            // HTTP/2 carries the host in `:authority`, taken from the absolute URI.
            let authority = match &host_override {
                Some(host) => host
                    .to_str()
                    .map_err(|_| http_error("the Host header is not a valid authority"))?,
                None => target.authority.as_str(),
            };
            format!("{}://{authority}{}", target.scheme(), target.path_and_query)
        } else {
            let host = match host_override {
                Some(host) => host,
                None => HeaderValue::from_str(&target.authority)
                    .map_err(|_| http_error(format!("invalid host {}", target.authority)))?,
            };
            headers.insert(header::HOST, host);
            target.path_and_query.clone()
        };
        let uri: Uri = uri
            .parse()
            .map_err(|error| http_error(format!("invalid request target: {error}")))?;
        if !headers.contains_key(header::USER_AGENT) {
            headers.insert(header::USER_AGENT, HeaderValue::from_static(USER_AGENT));
        }
        if !headers.contains_key(header::ACCEPT) {
            headers.insert(header::ACCEPT, HeaderValue::from_static("*/*"));
        }
        if let Some(authorization) = &self.authorization {
            headers.insert(header::AUTHORIZATION, authorization.clone());
        }
        let mut request = Request::new(Full::new(self.body.clone()));
        *request.method_mut() = self.method.clone();
        *request.uri_mut() = uri;
        *request.headers_mut() = headers;
        Ok(request)
    }
}

/// What stays the same across the hops of one probe.
struct Client<'a> {
    check: &'a HttpCheck,
    extra_roots: &'a [CertificateDer<'static>],
    /// The client certificate, read at the first https hop.
    identity: Option<ClientIdentity>,
}

trait Io: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Io for T {}

type Stream = TokioIo<WatchedIo>;

/// The first TLS error seen on a connection's transport. HTTP/2 errors keep only the text
/// of the I/O error that ended the connection, so it is caught here, where it is whole.
type TransportTlsError = Arc<Mutex<Option<rustls::Error>>>;

/// A connection's byte stream, watching its I/O errors for TLS ones.
struct WatchedIo {
    inner: Box<dyn Io>,
    tls_error: TransportTlsError,
}

impl WatchedIo {
    fn watch<T>(&self, result: Poll<std::io::Result<T>>) -> Poll<std::io::Result<T>> {
        if let Poll::Ready(Err(error)) = &result
            && let Some(tls_error) = tlsconf::find_rustls_error(error)
        {
            let mut slot = self.tls_error.lock().unwrap_or_else(|p| p.into_inner());
            slot.get_or_insert_with(|| tls_error.clone());
        }
        result
    }
}

impl AsyncRead for WatchedIo {
    fn poll_read(
        mut self: Pin<&mut Self>,
        context: &mut Context<'_>,
        buffer: &mut tokio::io::ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let result = Pin::new(&mut self.inner).poll_read(context, buffer);
        self.watch(result)
    }
}

impl AsyncWrite for WatchedIo {
    fn poll_write(
        mut self: Pin<&mut Self>,
        context: &mut Context<'_>,
        buffer: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let result = Pin::new(&mut self.inner).poll_write(context, buffer);
        self.watch(result)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        context: &mut Context<'_>,
        buffers: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        let result = Pin::new(&mut self.inner).poll_write_vectored(context, buffers);
        self.watch(result)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(
        mut self: Pin<&mut Self>,
        context: &mut Context<'_>,
    ) -> Poll<std::io::Result<()>> {
        let result = Pin::new(&mut self.inner).poll_flush(context);
        self.watch(result)
    }

    fn poll_shutdown(
        mut self: Pin<&mut Self>,
        context: &mut Context<'_>,
    ) -> Poll<std::io::Result<()>> {
        let result = Pin::new(&mut self.inner).poll_shutdown(context);
        self.watch(result)
    }
}

enum Sender {
    Http1(hyper::client::conn::http1::SendRequest<Full<Bytes>>),
    Http2(hyper::client::conn::http2::SendRequest<Full<Bytes>>),
}

impl Client<'_> {
    /// One hop: connect, handshake, send the request, wait for the response headers.
    async fn exchange(
        &mut self,
        target: &Target,
        request: &RequestPlan,
        progress: &mut Progress,
    ) -> Result<(Response<Incoming>, Connection), ProbeError> {
        // What the previous hop measured does not describe this one.
        for label in ["dns_time", "connect_time", "tls_time", "cert_expiry_days"] {
            progress.remove_sample(label);
        }
        let facts = &mut progress.observation.facts;
        facts.certificate_expiration_ms = None;
        facts.connected = false;
        facts.ip = None;

        progress.enter(format!("resolving {}", target.host));
        let resolved = tlsconf::resolve(&target.host, target.port).await?;
        if let Some(dns_time) = resolved.dns_time {
            progress.set_sample("dns_time", dns_time.as_secs_f64());
        }
        let tcp = tlsconf::connect(&resolved.addresses, progress).await?;

        let (stream, alpn): (Box<dyn Io>, Option<Vec<u8>>) = if target.https {
            let tls = self.handshake(tcp, target, progress).await?;
            let alpn = tls.get_ref().1.alpn_protocol().map(<[u8]>::to_vec);
            (Box::new(tls), alpn)
        } else {
            (Box::new(tcp), None)
        };
        let http2 = match (self.check.http_version, target.https) {
            (HttpVersion::Http1, _) | (HttpVersion::Auto, false) => false,
            (HttpVersion::Http2, false) => true, // prior knowledge
            (_, true) if alpn.as_deref() == Some(b"h2") => true,
            (HttpVersion::Auto, true) => false,
            (HttpVersion::Http2, true) => {
                return Err(http_error(format!(
                    "the server did not agree to HTTP/2 (ALPN: {})",
                    alpn.map_or("none".to_owned(), |p| String::from_utf8_lossy(&p)
                        .into_owned())
                )));
            }
        };

        progress.enter("waiting for the response headers");
        let mut connection = Connection::new();
        let io = TokioIo::new(WatchedIo {
            inner: stream,
            tls_error: connection.tls_error.clone(),
        });
        let mut sender = if http2 {
            let builder = hyper::client::conn::http2::Builder::new(connection.executor());
            let (sender, driver) = builder
                .handshake::<Stream, Full<Bytes>>(io)
                .await
                .map_err(|error| connection.classify(&error, "HTTP/2 handshake"))?;
            connection.set_driver(Box::pin(driver));
            Sender::Http2(sender)
        } else {
            let (sender, driver) = hyper::client::conn::http1::handshake::<Stream, Full<Bytes>>(io)
                .await
                .map_err(|error| connection.classify(&error, "HTTP/1.1 handshake"))?;
            connection.set_driver(Box::pin(driver));
            Sender::Http1(sender)
        };
        let request = request.build(target, http2)?;
        let response = match &mut sender {
            Sender::Http1(sender) => connection.drive(sender.send_request(request)).await,
            Sender::Http2(sender) => connection.drive(sender.send_request(request)).await,
        };
        let response =
            response.map_err(|error| connection.classify(&error, "sending the request"))?;
        connection.sender = Some(sender);
        Ok((response, connection))
    }

    async fn handshake(
        &mut self,
        tcp: tokio::net::TcpStream,
        target: &Target,
        progress: &mut Progress,
    ) -> Result<tokio_rustls::client::TlsStream<tokio::net::TcpStream>, ProbeError> {
        if let (Some(files), None) = (&self.check.client_cert, &self.identity) {
            progress.enter("reading the client certificate");
            self.identity = Some(tlsconf::load_client_identity(files).await?);
        }
        let alpn: &[&[u8]] = match self.check.http_version {
            HttpVersion::Auto => &[b"h2", b"http/1.1"],
            HttpVersion::Http1 => &[b"http/1.1"],
            HttpVersion::Http2 => &[b"h2"],
        };
        let setup = TlsSetup {
            enforce_verification: self.check.verify_tls,
            alpn,
            client_identity: self.identity.as_ref(),
            extra_roots: self.extra_roots,
        };
        progress.enter(format!("during the TLS handshake with {}", target.host));
        let started = Instant::now();
        let handshake = tlsconf::handshake(tcp, &target.host, &setup).await;
        if let Some(info) = handshake
            .verdict
            .as_ref()
            .and_then(|verdict| tlsconf::certificate_info(&verdict.leaf))
        {
            tlsconf::record_expiry(progress, &info);
        }
        let verification_failed = handshake
            .verdict
            .as_ref()
            .is_some_and(|verdict| verdict.result.is_err());
        if verification_failed && let Some(note) = handshake.trust_note() {
            progress.note(note);
        }
        let stream = handshake.result?;
        progress.set_sample("tls_time", started.elapsed().as_secs_f64());
        if let Some(verdict) = handshake.verdict.filter(|_| !self.check.verify_tls)
            && let Err(error) = verdict.result
        {
            progress.note(format!(
                "TLS verification is off; it would have failed: {}",
                tlsconf::describe_tls_error(&error, &target.host)
            ));
        }
        if let Some(version) = stream.get_ref().1.protocol_version() {
            progress.note(tlsconf::protocol_name(version));
        }
        Ok(stream)
    }
}

type BoxedTask = Pin<Box<dyn Future<Output = ()> + Send>>;
/// hyper's connection future: reads and writes the socket until the exchange is over.
type BoxedDriver = Pin<Box<dyn Future<Output = Result<(), hyper::Error>> + Send>>;
type TaskQueue = Mutex<Vec<BoxedTask>>;

fn lock(queue: &TaskQueue) -> MutexGuard<'_, Vec<BoxedTask>> {
    queue
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Hands the tasks hyper wants to spawn (the HTTP/2 connection and its streams) to the
/// [`Connection`] that owns the queue, instead of the runtime.
#[derive(Clone)]
struct LocalExecutor(Weak<TaskQueue>);

impl<F> hyper::rt::Executor<F> for LocalExecutor
where
    F: Future<Output = ()> + Send + 'static,
{
    fn execute(&self, future: F) {
        if let Some(queue) = self.0.upgrade() {
            lock(&queue).push(Box::pin(future));
        }
    }
}

/// One hyper client connection, driven by whoever awaits [`Connection::drive`] rather than
/// by a spawned task: dropping it drops the socket and everything hyper started.
struct Connection {
    driver: Option<BoxedDriver>,
    /// Why the connection ended, if it failed; often says more than the request's error.
    driver_error: Option<hyper::Error>,
    tasks: Vec<BoxedTask>,
    queue: Arc<TaskQueue>,
    /// Kept so the connection is not shut down while the body is read.
    sender: Option<Sender>,
    tls_error: TransportTlsError,
}

impl Connection {
    fn new() -> Connection {
        Connection {
            driver: None,
            driver_error: None,
            tasks: Vec::new(),
            queue: Arc::new(Mutex::new(Vec::new())),
            sender: None,
            tls_error: Arc::new(Mutex::new(None)),
        }
    }

    fn executor(&self) -> LocalExecutor {
        LocalExecutor(Arc::downgrade(&self.queue))
    }

    fn set_driver(&mut self, driver: BoxedDriver) {
        self.driver = Some(driver);
    }

    /// Awaits `future` while driving the connection and its tasks.
    async fn drive<F: Future>(&mut self, future: F) -> F::Output {
        let mut future = pin!(future);
        std::future::poll_fn(|context| {
            if let Poll::Ready(output) = future.as_mut().poll(context) {
                return Poll::Ready(output);
            }
            self.poll_background(context);
            future.as_mut().poll(context)
        })
        .await
    }

    fn poll_background(&mut self, context: &mut Context<'_>) {
        loop {
            if let Some(driver) = self.driver.as_mut()
                && let Poll::Ready(result) = driver.as_mut().poll(context)
            {
                self.driver = None;
                if let Err(error) = result {
                    self.driver_error = Some(error);
                }
            }
            self.tasks.append(&mut lock(&self.queue));
            self.tasks
                .retain_mut(|task| task.as_mut().poll(context).is_pending());
            if lock(&self.queue).is_empty() {
                break;
            }
        }
    }

    /// Maps a hyper error (or the connection's own, if it says more) to a probe error:
    /// TLS alerts and certificate trouble are `tls`, the rest `http`.
    fn classify(&self, error: &hyper::Error, doing: &str) -> ProbeError {
        let transport_error = self
            .tls_error
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .clone();
        let tls_error = transport_error.or_else(|| {
            std::iter::once(error)
                .chain(self.driver_error.as_ref())
                .find_map(|candidate| tlsconf::find_rustls_error(candidate).cloned())
        });
        if let Some(tls_error) = tls_error {
            return tlsconf::probe_error(
                FailureReason::Tls,
                tlsconf::describe_tls_error(&tls_error, "the server"),
            );
        }
        let mut message = format!("{doing}: {}", error_chain(error));
        if let Some(driver_error) = &self.driver_error {
            let connection = error_chain(driver_error);
            if !message.contains(&connection) {
                message.push_str(&format!(" (connection: {connection})"));
            }
        }
        http_error(message)
    }
}

/// `error: cause: cause`, skipping causes the message already contains.
fn error_chain(error: &(dyn std::error::Error + 'static)) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let cause_text = match cause.downcast_ref::<std::io::Error>() {
            Some(io_error) => tlsconf::io_error_text(io_error),
            None => cause.to_string(),
        };
        if !text.contains(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    fn target(url: &str) -> Target {
        match Target::parse(url) {
            Ok(target) => target,
            Err(error) => panic!("{url}: {}", error.message),
        }
    }

    #[test]
    fn parses_urls() {
        let parsed = target("https://user:p%40ss@Example.com:8443/a/b?x=1#frag");
        assert_eq!(parsed.host, "Example.com");
        assert_eq!(parsed.port, 8443);
        assert_eq!(parsed.authority, "Example.com:8443");
        assert_eq!(parsed.path_and_query, "/a/b?x=1");
        assert_eq!(parsed.userinfo.as_deref(), Some("user:p%40ss"));
        let parsed = target("http://[::1]:80");
        assert_eq!(
            (
                parsed.host.as_str(),
                parsed.authority.as_str(),
                parsed.path_and_query.as_str()
            ),
            ("::1", "[::1]", "/")
        );
        for bad in [
            "",
            "example.com",
            "ftp://x/",
            "http://",
            "https://:443/",
            "http://a b/",
        ] {
            let error = Target::parse(bad).err();
            assert_eq!(
                error.map(|error| error.reason),
                Some(FailureReason::Http),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn joins_locations() {
        let base = target("http://a.example/b/c/d?q");
        let cases = [
            ("g", "http://a.example/b/c/g"),
            ("./g", "http://a.example/b/c/g"),
            ("g/", "http://a.example/b/c/g/"),
            ("/g", "http://a.example/g"),
            ("//g.example/x", "http://g.example/x"),
            ("?y", "http://a.example/b/c/d?y"),
            ("", "http://a.example/b/c/d?q"),
            ("../g", "http://a.example/b/g"),
            ("../..", "http://a.example/"),
            ("../../../g", "http://a.example/g"),
            ("/./g/.", "http://a.example/g/"),
            ("https://b.example:8443/z#f", "https://b.example:8443/z"),
            ("/with space/é", "http://a.example/with%20space/%C3%A9"),
        ];
        for (location, expected) in cases {
            let joined = base.join(location).map(|target| target.url());
            assert_eq!(joined.as_deref(), Ok(expected), "{location:?}");
        }
        assert!(base.join("mailto:x@y").is_err());
    }

    #[test]
    fn encodes_credentials() {
        assert_eq!(base64(b""), "");
        assert_eq!(base64(b"f"), "Zg==");
        assert_eq!(base64(b"fo"), "Zm8=");
        assert_eq!(base64(b"foo"), "Zm9v");
        assert_eq!(base64(b"user:pass"), "dXNlcjpwYXNz");
        assert_eq!(percent_decode("p%40ss%2"), b"p@ss%2");
    }

    #[test]
    fn formats_for_people() {
        assert_eq!(format_size(999), "999 B");
        assert_eq!(format_size(1234), "1.2 kB");
        assert_eq!(format_size(3_400_000), "3.4 MB");
        assert_eq!(format_elapsed(Duration::from_millis(12)), "12 ms");
        assert_eq!(format_elapsed(Duration::from_millis(1534)), "1.53 s");
        assert_eq!(tlsconf::format_timeout(Duration::from_secs(2)), "2s");
        assert_eq!(tlsconf::format_timeout(Duration::from_millis(300)), "300ms");
        assert_eq!(tlsconf::format_timeout(Duration::from_millis(1500)), "1.5s");
        assert_eq!(tlsconf::format_date(0), "1970-01-01");
        assert_eq!(tlsconf::format_date(4_102_444_800), "2100-01-01");
        assert_eq!(tlsconf::format_date(1_709_208_000), "2024-02-29");
        assert_eq!(tlsconf::format_date(-86_400), "1969-12-31");
    }
}
