//! Web UI sessions: an API token, or a user's name and password, exchanged for a random cookie
//! secret (only its BLAKE3 hash is stored), a CSRF token per session, a 12 h expiry that slides
//! with use.

use std::time::Duration;

use axum::http::header::{COOKIE, HOST, ORIGIN};
use axum::http::{HeaderMap, Method};
use subtle::ConstantTimeEq;
use warden_store::sessions::Owner;

use crate::AppState;
use crate::auth::{Caller, Role};
use crate::error::{ApiError, ErrorCode};

/// The session cookie's name.
pub(crate) const COOKIE_NAME: &str = "warden_session";
/// The header (or form field `csrf`) that must carry the session's CSRF token.
pub(crate) const CSRF_HEADER: &str = "x-csrf-token";
/// A session ends this long after it was last used.
pub(crate) const SESSION_TTL: Duration = Duration::from_secs(12 * 3600);
/// Use closer together than this does not write a new expiry.
const TOUCH_EVERY_MS: i64 = 60_000;

/// A live session.
#[derive(Debug, Clone)]
pub(crate) struct Session {
    pub(crate) id: i64,
    pub(crate) csrf: String,
    pub(crate) caller: Caller,
    pub(crate) expires_at: i64,
    /// The token or the user the session was made from.
    pub(crate) owner: Owner,
}

/// `Caller::token_id` of a session made from a user: no token has id 0 (ids start at 1).
pub(crate) const NO_TOKEN: i64 = 0;

fn ttl_ms() -> i64 {
    i64::try_from(SESSION_TTL.as_millis()).unwrap_or(i64::MAX)
}

fn random_hex() -> Result<String, ApiError> {
    let mut secret = [0u8; 32];
    getrandom::fill(&mut secret).map_err(|error| {
        tracing::error!(%error, "no randomness available");
        ApiError::new(ErrorCode::Internal, "internal error; see the hub's log")
    })?;
    Ok(hex::encode(secret))
}

/// The `warden_session` cookie's value, if the request has one.
pub(crate) fn cookie_secret(headers: &HeaderMap) -> Option<&str> {
    headers
        .get_all(COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == COOKIE_NAME)
        .map(|(_, value)| value.trim())
        .filter(|value| !value.is_empty())
}

/// Whether a request that names an `Origin` comes from this hub's own (same host and port).
/// Requests without one (same-origin GETs, non-browser clients) pass.
pub(crate) fn same_origin(headers: &HeaderMap) -> bool {
    let Some(origin) = headers.get(ORIGIN) else {
        return true;
    };
    let (Ok(origin), Some(Ok(host))) = (origin.to_str(), headers.get(HOST).map(|h| h.to_str()))
    else {
        return false;
    };
    let origin_host = origin
        .strip_prefix("http://")
        .or_else(|| origin.strip_prefix("https://"));
    origin_host == Some(host)
}

/// Whether the request reached us over TLS (directly, or as a proxy in front says): then the
/// cookie is `Secure`. The hub serves plain HTTP today, so only a proxy can make this true.
pub(crate) fn request_is_tls(headers: &HeaderMap) -> bool {
    headers
        .get("x-forwarded-proto")
        .and_then(|value| value.to_str().ok())
        .is_some_and(|value| value.eq_ignore_ascii_case("https"))
}

/// The `Set-Cookie` value for a session secret (`None` clears the cookie).
pub(crate) fn set_cookie(secret: Option<&str>, tls: bool) -> String {
    let secure = if tls { "; Secure" } else { "" };
    match secret {
        Some(secret) => format!(
            "{COOKIE_NAME}={secret}; HttpOnly; SameSite=Strict; Path=/; Max-Age={}{secure}",
            SESSION_TTL.as_secs()
        ),
        None => format!("{COOKIE_NAME}=; HttpOnly; SameSite=Strict; Path=/; Max-Age=0{secure}"),
    }
}

/// The live session a cookie secret names, its expiry slid forward. Unauthorized when there is
/// none (unknown, expired, revoked, or its token revoked).
pub(crate) async fn lookup(state: &AppState, secret: &str) -> Result<Session, ApiError> {
    let unauthorized = || {
        ApiError::new(
            ErrorCode::Unauthorized,
            "the session is invalid, expired or revoked; sign in again",
        )
    };
    let hash = *blake3::hash(secret.as_bytes()).as_bytes();
    let now = warden_store::now_ms();
    let found = state
        .store
        .read(move |conn| warden_store::sessions::find_live(conn, &hash, now))
        .await?;
    let Some((row, stored_hash)) = found else {
        return Err(unauthorized());
    };
    if !bool::from(stored_hash.as_slice().ct_eq(hash.as_slice())) {
        return Err(unauthorized());
    }
    let role = Role::parse(&row.role).ok_or_else(unauthorized)?;
    let mut expires_at = row.expires_at;
    if now - row.last_seen_at >= TOUCH_EVERY_MS {
        expires_at = now.saturating_add(ttl_ms());
        let id = row.id;
        state
            .store
            .write(move |conn| warden_store::sessions::touch(conn, id, now, expires_at))
            .await?;
    }
    let owner = row.owner();
    Ok(Session {
        id: row.id,
        csrf: row.csrf,
        caller: Caller {
            role,
            token_id: row.token_id.unwrap_or(NO_TOKEN),
            user_id: row.user_id,
        },
        expires_at,
        owner,
    })
}

/// Whether `offered` is the session's CSRF token (constant time).
pub(crate) fn csrf_matches(session: &Session, offered: Option<&str>) -> bool {
    offered.is_some_and(|offered| bool::from(offered.as_bytes().ct_eq(session.csrf.as_bytes())))
}

/// Authenticates a request made with the session cookie: a live session, a same-origin request,
/// and on every method but GET/HEAD the CSRF token in `X-CSRF-Token`.
pub(crate) async fn authenticate(
    state: &AppState,
    method: &Method,
    headers: &HeaderMap,
    secret: &str,
) -> Result<Session, ApiError> {
    if !same_origin(headers) {
        return Err(ApiError::new(
            ErrorCode::Forbidden,
            "a request with the session cookie from another origin",
        ));
    }
    let session = lookup(state, secret).await?;
    if method != Method::GET && method != Method::HEAD {
        let offered = headers.get(CSRF_HEADER).and_then(|v| v.to_str().ok());
        if !csrf_matches(&session, offered) {
            return Err(ApiError::new(
                ErrorCode::Forbidden,
                "missing or wrong X-CSRF-Token (requests made with the session cookie need it)",
            ));
        }
    }
    Ok(session)
}

/// Exchanges a token's caller for a new session; returns the session and its cookie secret.
pub(crate) async fn create(
    state: &AppState,
    caller: &Caller,
) -> Result<(Session, String), ApiError> {
    insert(state, Owner::Token(caller.token_id), caller.role).await
}

/// A new session for a user who signed in with their password (the caller must have checked
/// it); returns the session and its cookie secret.
pub(crate) async fn create_for_user(
    state: &AppState,
    user_id: i64,
    role: Role,
) -> Result<(Session, String), ApiError> {
    insert(state, Owner::User(user_id), role).await
}

async fn insert(state: &AppState, owner: Owner, role: Role) -> Result<(Session, String), ApiError> {
    let secret = random_hex()?;
    let csrf = random_hex()?;
    let hash = *blake3::hash(secret.as_bytes()).as_bytes();
    let now = warden_store::now_ms();
    let expires_at = now.saturating_add(ttl_ms());
    let stored_csrf = csrf.clone();
    let id = state
        .store
        .write(move |conn| {
            warden_store::sessions::insert(
                conn,
                &warden_store::sessions::NewSession {
                    owner,
                    hash: &hash,
                    csrf: &stored_csrf,
                    now,
                    expires_at,
                },
            )
        })
        .await?;
    let (token_id, user_id) = match owner {
        Owner::Token(token_id) => (token_id, None),
        Owner::User(user_id) => (NO_TOKEN, Some(user_id)),
    };
    let session = Session {
        id,
        csrf,
        caller: Caller {
            role,
            token_id,
            user_id,
        },
        expires_at,
        owner,
    };
    Ok((session, secret))
}

/// Ends a session.
pub(crate) async fn revoke(state: &AppState, id: i64) -> Result<(), ApiError> {
    let now = warden_store::now_ms();
    state
        .store
        .write(move |conn| warden_store::sessions::revoke(conn, id, now))
        .await?;
    Ok(())
}

/// Who made a request the `Caller` extractor accepted: the bearer token, or the token or user
/// behind the session cookie (a second lookup of that session: the extractor keeps only the
/// caller).
pub(crate) async fn owner_of(
    state: &AppState,
    caller: &Caller,
    headers: &HeaderMap,
) -> Result<Owner, ApiError> {
    if headers.contains_key(axum::http::header::AUTHORIZATION) {
        return Ok(Owner::Token(caller.token_id));
    }
    let secret = cookie_secret(headers)
        .ok_or_else(|| ApiError::new(ErrorCode::Unauthorized, "not signed in"))?;
    Ok(lookup(state, secret).await?.owner)
}
