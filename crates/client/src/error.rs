//! What can go wrong talking to the hub, in the caller's terms.

/// An error from [`crate::Client`].
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The base URL is not an `http://HOST[:PORT][/PREFIX]` URL.
    #[error("`{url}` is not a usable hub URL: {message}")]
    InvalidUrl { url: String, message: String },
    /// The token cannot be sent in an `Authorization` header.
    #[error("invalid token: {0}")]
    InvalidToken(&'static str),
    /// No answer: connection refused, DNS failure, timeout, connection dropped.
    #[error("cannot reach the hub at {url}: {message}")]
    Connect { url: String, message: String },
    /// The hub answered with a non-2xx status; `message` is the hub's own.
    #[error("{message}")]
    Api {
        status: u16,
        code: String,
        message: String,
    },
    /// The hub answered 2xx with a body this client does not understand.
    #[error("unexpected answer from the hub: {0}")]
    Decode(String),
}

impl ClientError {
    /// The hub's error code (`not_found`, `unauthorized`, ...) for an [`ClientError::Api`].
    pub fn api_code(&self) -> Option<&str> {
        match self {
            ClientError::Api { code, .. } => Some(code),
            _ => None,
        }
    }
}
