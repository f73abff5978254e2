//! API tokens: 256-bit random secrets shown once, stored as BLAKE3 hashes, compared in constant
//! time; roles; the request extractor that authenticates a bearer token or a web UI session
//! cookie (with its CSRF token on every state-changing request).

use axum::extract::FromRequestParts;
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;
use subtle::ConstantTimeEq;
use warden_store::{Store, StoreError};

use crate::AppState;
use crate::error::{ApiError, ErrorCode};

/// Prefix of every warden token, so leaked tokens are easy to recognise and scan for.
pub const TOKEN_PREFIX: &str = "wdn_";

/// What a token may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    Admin,
    Operator,
    Viewer,
    Agent,
    Ping,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Admin => "admin",
            Role::Operator => "operator",
            Role::Viewer => "viewer",
            Role::Agent => "agent",
            Role::Ping => "ping",
        }
    }

    pub fn parse(text: &str) -> Option<Role> {
        match text {
            "admin" => Some(Role::Admin),
            "operator" => Some(Role::Operator),
            "viewer" => Some(Role::Viewer),
            "agent" => Some(Role::Agent),
            "ping" => Some(Role::Ping),
            _ => None,
        }
    }

    /// Whether a holder of `self` may do what `needed` allows. Admin may do everything;
    /// operator includes viewer; agent and ping only themselves.
    pub fn allows(self, needed: Role) -> bool {
        match (self, needed) {
            (Role::Admin, _) => true,
            (Role::Operator, Role::Operator | Role::Viewer) => true,
            (have, want) => have == want,
        }
    }
}

/// A new random token: `wdn_` + 64 hex digits (256 bits).
pub fn generate_token() -> Result<String, String> {
    let mut secret = [0u8; 32];
    getrandom::fill(&mut secret).map_err(|error| format!("no randomness available: {error}"))?;
    Ok(format!("{TOKEN_PREFIX}{}", hex::encode(secret)))
}

/// What the store keeps of a token.
pub fn hash_token(token: &str) -> [u8; 32] {
    *blake3::hash(token.as_bytes()).as_bytes()
}

/// Creates the first admin token when the store has none; returns it (shown once).
pub(crate) async fn ensure_admin_token(store: &Store) -> Result<Option<String>, StoreError> {
    store
        .write(|conn| {
            if warden_store::tokens::count(conn)? > 0 {
                return Ok(None);
            }
            let token = generate_token().map_err(StoreError::Invalid)?;
            warden_store::tokens::insert(
                conn,
                "admin",
                Role::Admin.as_str(),
                &hash_token(&token),
                warden_store::now_ms(),
                None,
            )?;
            Ok(Some(token))
        })
        .await
}

/// An authenticated caller.
#[derive(Debug, Clone)]
pub(crate) struct Caller {
    pub(crate) role: Role,
    /// The token behind the request (0 for a session made from a user).
    pub(crate) token_id: i64,
    /// The user behind a session made from a user name and password.
    pub(crate) user_id: Option<i64>,
}

impl Caller {
    /// The worker protocol (lease, heartbeat, complete, fail) is for agents and operators.
    pub(crate) fn require_worker(&self) -> Result<(), ApiError> {
        self.require(Role::Agent)
            .or_else(|_| self.require(Role::Operator))
    }

    pub(crate) fn require(&self, needed: Role) -> Result<(), ApiError> {
        if self.role.allows(needed) {
            Ok(())
        } else {
            Err(ApiError::new(
                ErrorCode::Forbidden,
                format!(
                    "this needs the {} role; the token has {}",
                    needed.as_str(),
                    self.role.as_str()
                ),
            ))
        }
    }
}

impl FromRequestParts<AppState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Caller, ApiError> {
        let unauthorized = |message: &str| ApiError::new(ErrorCode::Unauthorized, message);
        let Some(header) = parts.headers.get(AUTHORIZATION) else {
            return match caller_from_session(state, &parts.method, &parts.headers).await {
                Some(result) => result,
                None => Err(unauthorized(
                    "missing `Authorization: Bearer <token>` header (or a session cookie)",
                )),
            };
        };
        let value = header
            .to_str()
            .map_err(|_| unauthorized("malformed Authorization header"))?;
        let token = value
            .strip_prefix("Bearer ")
            .map(str::trim)
            .ok_or_else(|| unauthorized("the Authorization header must be `Bearer <token>`"))?;
        caller_for_token(state, token).await
    }
}

/// The caller a token string belongs to, checked as the `Caller` extractor checks a bearer
/// header (for `?token=`: browsers cannot set headers on a WebSocket).
pub(crate) async fn caller_for_token(state: &AppState, token: &str) -> Result<Caller, ApiError> {
    let unauthorized = |message: &str| ApiError::new(ErrorCode::Unauthorized, message);
    let hash = hash_token(token);
    let found = state
        .store
        .read(move |conn| warden_store::tokens::find_live(conn, &hash, warden_store::now_ms()))
        .await?;
    let Some((row, stored_hash)) = found else {
        return Err(unauthorized("invalid, expired or revoked token"));
    };
    if !bool::from(stored_hash.as_slice().ct_eq(hash.as_slice())) {
        return Err(unauthorized("invalid, expired or revoked token"));
    }
    let role = Role::parse(&row.role).ok_or_else(|| unauthorized("token has an unknown role"))?;
    Ok(Caller {
        role,
        token_id: row.id,
        user_id: None,
    })
}

/// The caller of a request made with the `warden_session` cookie; `None` without that cookie.
/// Non-GET requests need the session's CSRF token in `X-CSRF-Token`, and a request that names
/// an `Origin` must come from the hub's own, so another site can neither post nor open the
/// events WebSocket with the cookie (`crate::live` authenticates through the `Caller` extractor).
pub(crate) async fn caller_from_session(
    state: &AppState,
    method: &axum::http::Method,
    headers: &axum::http::HeaderMap,
) -> Option<Result<Caller, ApiError>> {
    let secret = crate::ui::session::cookie_secret(headers)?;
    Some(
        crate::ui::session::authenticate(state, method, headers, secret)
            .await
            .map(|session| session.caller),
    )
}
