//! The TLS probe: connects, handshakes with SNI and reports the certificate (how long it has
//! left, who issued it), the protocol, and whether the chain and the name verify. A failed
//! verification does not stop the handshake, so what the server presents is still shown.

use std::time::{Duration, Instant};

use rustls::pki_types::CertificateDer;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;
use tokio_util::sync::CancellationToken;
use warden_core::config::TlsCheck;

use super::tlsconf::{self, Bounded, Progress, TlsSetup};
use super::{FailureReason, Observation, ProbeError};

/// How long a finished probe waits for its `close_notify` to be written.
const CLOSE_GRACE: Duration = Duration::from_millis(200);

/// Runs one TLS check within `timeout`: resolves `host`, connects to `port` and handshakes
/// with SNI `server_name` (or `host`), verifying the chain against the system's roots and
/// the name against the certificate.
///
/// Facts: `connected`, `ip`, `certificate_expiration_ms`. Samples: `handshake_time`
/// (seconds), `cert_expiry_days` (negative once expired). The summary names the protocol,
/// the leaf's subject and issuer and its notAfter date. A chain or name that does not
/// verify is an error with reason `tls`, and the facts and samples are still filled in.
/// The `warn_days`/`crit_days` thresholds are not applied here.
///
/// # Cancel safety
///
/// Dropping the future closes the connection and leaves nothing running (except a name
/// lookup in the resolver's thread, whose answer is discarded). If `cancel` fires the
/// observation's error is `timeout` with the message `cancelled`.
pub async fn probe_tls(
    check: &TlsCheck,
    timeout: Duration,
    cancel: &CancellationToken,
) -> Observation {
    probe_tls_with_roots(check, timeout, cancel, &[]).await
}

/// [`probe_tls`] that also trusts `extra_roots` (tests use their own CA).
#[doc(hidden)]
pub async fn probe_tls_with_roots(
    check: &TlsCheck,
    timeout: Duration,
    cancel: &CancellationToken,
    extra_roots: &[CertificateDer<'static>],
) -> Observation {
    let mut progress = Progress::new();
    let outcome = tlsconf::bounded(timeout, cancel, run(check, extra_roots, &mut progress)).await;
    let outcome = match outcome {
        Bounded::Done(Ok((verification, mut stream))) => {
            // Say goodbye properly, briefly: the result is already known.
            let grace = timeout
                .saturating_sub(progress.started.elapsed())
                .min(CLOSE_GRACE);
            let _ = tlsconf::bounded(grace, cancel, stream.shutdown()).await;
            Bounded::Done(verification)
        }
        Bounded::Done(Err(error)) => Bounded::Done(Err(error)),
        Bounded::TimedOut => Bounded::TimedOut,
        Bounded::Cancelled => Bounded::Cancelled,
    };
    progress.conclude(outcome, timeout)
}

/// The handshake's stream and the verification's result, or why there was no handshake.
async fn run(
    check: &TlsCheck,
    extra_roots: &[CertificateDer<'static>],
    progress: &mut Progress,
) -> Result<(Result<(), ProbeError>, TlsStream<TcpStream>), ProbeError> {
    let server_name = check.server_name.as_deref().unwrap_or(&check.host);
    let host = check.host.trim_start_matches('[').trim_end_matches(']');
    progress.enter(format!("resolving {host}"));
    let resolved = tlsconf::resolve(host, check.port).await?;
    let tcp = tlsconf::connect(&resolved.addresses, progress).await?;

    progress.enter(format!("during the TLS handshake with {server_name}"));
    let setup = TlsSetup {
        enforce_verification: false,
        alpn: &[],
        client_identity: None,
        extra_roots,
    };
    let started = Instant::now();
    let handshake = tlsconf::handshake(tcp, server_name, &setup).await;
    let handshake_time = started.elapsed();
    let leaf = handshake
        .verdict
        .as_ref()
        .and_then(|verdict| tlsconf::certificate_info(&verdict.leaf));
    if let Some(leaf) = &leaf {
        tlsconf::record_expiry(progress, leaf);
    }
    let verification = match &handshake.verdict {
        Some(verdict) => verdict.result.clone().map_err(|error| {
            tlsconf::probe_error(
                FailureReason::Tls,
                tlsconf::describe_tls_error(&error, server_name),
            )
        }),
        None => Ok(()),
    };
    if verification.is_err()
        && let Some(note) = handshake.trust_note()
    {
        progress.note(note);
    }
    let stream = handshake.result?;
    progress.set_sample("handshake_time", handshake_time.as_secs_f64());

    let connection = stream.get_ref().1;
    let protocol = connection
        .protocol_version()
        .map_or_else(|| "TLS".to_owned(), tlsconf::protocol_name);
    if let Some(suite) = connection.negotiated_cipher_suite() {
        progress.note(format!("{protocol} with {:?}", suite.suite()));
    }
    let chain_length = connection.peer_certificates().map_or(0, <[_]>::len);
    progress.note(format!("the server sent {chain_length} certificate(s)"));
    progress.observation.summary = match &leaf {
        Some(leaf) => {
            let days = progress
                .observation
                .facts
                .certificate_expiration_ms
                .map_or(0.0, |ms| ms as f64 / 86_400_000.0);
            let when = if days < 0.0 {
                format!("expired {:.1} days ago", -days)
            } else {
                format!("{days:.1} days left")
            };
            format!(
                "{protocol}, {} issued by {}, valid until {} ({when})",
                leaf.subject,
                leaf.issuer,
                tlsconf::format_date(leaf.not_after)
            )
        }
        None => format!("{protocol}, no certificate could be read"),
    };
    Ok((verification, stream))
}
