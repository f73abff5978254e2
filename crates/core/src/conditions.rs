//! Gatus-style conditions (`[STATUS] == 200`, `[BODY].data[0].id == 7`, `len([BODY]) > 0`, ...)
//! that judge a probe's result. Parsing happens when the config is read (a bad condition is a
//! config error); evaluation runs against the [`Facts`] a probe observed.

use std::time::Duration;

/// What a probe observed, as the placeholders conditions refer to.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Facts {
    /// `[STATUS]`: the HTTP status code.
    pub status: Option<u16>,
    /// `[RESPONSE_TIME]`: milliseconds, as Gatus compares it (`[RESPONSE_TIME] < 500`).
    pub response_time: Option<Duration>,
    /// `[BODY]`: the response body (HTTP), or what a TCP probe received.
    pub body: Option<String>,
    /// `[CONNECTED]`: whether a connection was made (or, for ICMP, any reply came back).
    pub connected: bool,
    /// `[IP]`: the address the probe talked to.
    pub ip: Option<String>,
    /// `[DNS_RCODE]`: the DNS response code by name (`NOERROR`, `NXDOMAIN`, `SERVFAIL`, ...).
    pub dns_rcode: Option<String>,
    /// `[CERTIFICATE_EXPIRATION]`: time left until the leaf certificate's notAfter, in
    /// milliseconds; negative when it has already expired.
    pub certificate_expiration_ms: Option<i64>,
}
