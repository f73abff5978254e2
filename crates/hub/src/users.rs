//! Users and web UI sessions over the API: `/api/v1/users` (admin: add, list, remove; passwords
//! kept as Argon2id PHC strings) and `/api/v1/sessions` (list and revoke; admins see every
//! session, others their own). Also the password check the sign-in page uses, which takes as
//! long for an unknown user as for a wrong password.

use std::sync::LazyLock;

use argon2::Argon2;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use serde::{Deserialize, Serialize};
use tokio::sync::Semaphore;
use utoipa::ToSchema;
use warden_store::sessions::{Owner, SessionRow};
use warden_store::users::UserRow;

use crate::AppState;
use crate::api::{JsonBody, PathParam};
use crate::auth::{Caller, Role};
use crate::error::{ApiError, ErrorBody, ErrorCode};

/// Shortest password accepted, in characters.
pub(crate) const MIN_PASSWORD_CHARS: usize = 8;
/// Longest password accepted, in characters (hashing time grows with it).
const MAX_PASSWORD_CHARS: usize = 512;
/// Longest user name.
const MAX_NAME_CHARS: usize = 64;

/// An Argon2id PHC string (default parameters, a 16-byte salt) whose output is random bytes,
/// so no password matches it: an unknown user's sign-in is checked against it and costs what a
/// wrong password costs. A test keeps its parameters equal to those new hashes get.
const DUMMY_HASH: &str = "$argon2id$v=19$m=19456,t=2,p=1$d2FyZGVuLW5vLXVzZXIhIQ$\
                          avQMaW10U9be59sv+U+8hbbiItB1VnJBiGPuYXJKR0c";

/// Hashes run at most this many at once (each takes ~19 MiB and tens of milliseconds of a
/// core), so a flood of sign-ins queues instead of taking the machine.
static HASHING: LazyLock<Semaphore> = LazyLock::new(|| {
    Semaphore::new(
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1),
    )
});

fn internal(what: &str, error: impl std::fmt::Display) -> ApiError {
    tracing::error!(%error, "{what}");
    ApiError::new(ErrorCode::Internal, "internal error; see the hub's log")
}

/// Runs CPU-heavy password work on the blocking pool, a few at a time.
async fn hashing<T: Send + 'static>(
    work: impl FnOnce() -> T + Send + 'static,
) -> Result<T, ApiError> {
    let _permit = HASHING
        .acquire()
        .await
        .map_err(|error| internal("the hashing semaphore is closed", error))?;
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|error| internal("password hashing failed", error))
}

/// The PHC string of a new Argon2id hash (default parameters, random 16-byte salt).
fn hash_password(password: &str) -> Result<String, String> {
    let mut salt = [0u8; 16];
    getrandom::fill(&mut salt).map_err(|error| format!("no randomness available: {error}"))?;
    let salt = SaltString::encode_b64(&salt).map_err(|error| error.to_string())?;
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|hash| hash.to_string())
        .map_err(|error| error.to_string())
}

/// Whether `password` matches the PHC string `stored` (the crate compares in constant time).
/// An unreadable `stored` never matches.
fn verify_password(password: &str, stored: &str) -> bool {
    match PasswordHash::new(stored) {
        Ok(parsed) => Argon2::default()
            .verify_password(password.as_bytes(), &parsed)
            .is_ok(),
        Err(error) => {
            tracing::error!(%error, "a stored password hash is unreadable");
            false
        }
    }
}

/// The user named `name` when `password` is theirs; `None` for an unknown user or a wrong
/// password alike, after the same work (an unknown user is checked against a dummy hash).
pub(crate) async fn sign_in(
    state: &AppState,
    name: &str,
    password: &str,
) -> Result<Option<(UserRow, Role)>, ApiError> {
    let lookup = name.to_string();
    let found = state
        .store
        .read(move |conn| warden_store::users::find(conn, &lookup))
        .await?;
    let stored = found
        .as_ref()
        .map(|(_, hash)| hash.clone())
        .unwrap_or_else(|| DUMMY_HASH.to_string());
    let password = password.to_string();
    let matches = hashing(move || verify_password(&password, &stored)).await?;
    let Some((user, _)) = found else {
        return Ok(None);
    };
    if !matches {
        return Ok(None);
    }
    match Role::parse(&user.role) {
        Some(role) => Ok(Some((user, role))),
        None => {
            tracing::error!(user = %user.name, role = %user.role, "a user has an unknown role");
            Ok(None)
        }
    }
}

fn valid_user_name(name: &str) -> bool {
    !name.is_empty()
        && name.chars().count() <= MAX_NAME_CHARS
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '@'))
}

/// A user as the API shows it: never the password or its hash.
#[derive(Serialize, ToSchema)]
pub(crate) struct UserView {
    id: i64,
    name: String,
    /// `admin`, `operator` or `viewer`.
    role: String,
    created_at: i64,
}

impl UserView {
    fn of(row: &UserRow) -> UserView {
        UserView {
            id: row.id,
            name: row.name.clone(),
            role: row.role.clone(),
            created_at: row.created_at,
        }
    }
}

#[derive(Serialize, ToSchema)]
pub(crate) struct UsersList {
    users: Vec<UserView>,
}

/// `GET /api/v1/users` (admin): every user, by name; never a password or hash.
#[utoipa::path(
    get,
    path = "/api/v1/users",
    tag = "users",
    operation_id = "list_users",
    summary = "List users",
    responses(
        (status = 200, description = "Every user, by name (never their passwords)", body = UsersList),
        crate::openapi::AuthErrors,
    ),
    security(("bearer" = ["admin"]))
)]
pub(crate) async fn list_users(
    State(state): State<AppState>,
    caller: Caller,
) -> Result<Json<UsersList>, ApiError> {
    caller.require(Role::Admin)?;
    let rows = state.store.read(warden_store::users::list).await?;
    Ok(Json(UsersList {
        users: rows.iter().map(UserView::of).collect(),
    }))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct NewUser {
    /// 1-64 letters, digits, `-`, `_`, `.` or `@`.
    #[schema(min_length = 1, max_length = 64, pattern = "^[A-Za-z0-9._@-]+$")]
    name: String,
    /// `admin`, `operator` or `viewer`.
    #[schema(example = "viewer")]
    role: String,
    /// 8-512 characters; only its Argon2id hash is kept.
    #[schema(min_length = 8, max_length = 512, format = Password)]
    password: String,
}

/// `POST /api/v1/users` (admin): adds a user who can sign in to the web UI.
#[utoipa::path(
    post,
    path = "/api/v1/users",
    tag = "users",
    operation_id = "create_user",
    summary = "Add a user",
    request_body = NewUser,
    responses(
        (status = 201, description = "The new user", body = UserView),
        (status = 400, description = "Malformed JSON, a wrong or unknown field, or a bad name, role or password", body = ErrorBody),
        crate::openapi::AuthErrors,
        (status = 409, description = "A user with this name exists", body = ErrorBody),
        (status = 413, description = "The request body is too large", body = ErrorBody),
    ),
    security(("bearer" = ["admin"]))
)]
pub(crate) async fn create_user(
    State(state): State<AppState>,
    caller: Caller,
    JsonBody(body): JsonBody<NewUser>,
) -> Result<(StatusCode, Json<UserView>), ApiError> {
    caller.require(Role::Admin)?;
    if !valid_user_name(&body.name) {
        return Err(ApiError::bad_request(
            "name: must be 1-64 letters, digits, `-`, `_`, `.` or `@`",
        ));
    }
    let role = match Role::parse(&body.role) {
        Some(role @ (Role::Admin | Role::Operator | Role::Viewer)) => role,
        _ => {
            return Err(ApiError::bad_request(
                "role: must be one of admin, operator, viewer",
            ));
        }
    };
    let length = body.password.chars().count();
    if length < MIN_PASSWORD_CHARS {
        return Err(ApiError::bad_request(format!(
            "password: must be at least {MIN_PASSWORD_CHARS} characters"
        )));
    }
    if length > MAX_PASSWORD_CHARS {
        return Err(ApiError::bad_request(format!(
            "password: must be at most {MAX_PASSWORD_CHARS} characters"
        )));
    }
    let exists = || ApiError::new(ErrorCode::Conflict, format!("user `{}` exists", body.name));
    // Refuse a taken name before spending a hash on it (the insert checks again).
    let lookup = body.name.clone();
    if state
        .store
        .read(move |conn| warden_store::users::find(conn, &lookup))
        .await?
        .is_some()
    {
        return Err(exists());
    }
    let password = body.password;
    let hash = hashing(move || hash_password(&password))
        .await?
        .map_err(|error| internal("cannot hash a password", error))?;
    let name = body.name.clone();
    let now = warden_store::now_ms();
    let created = state
        .store
        .write(move |conn| warden_store::users::insert(conn, &name, role.as_str(), &hash, now))
        .await?
        .ok_or_else(exists)?;
    tracing::info!(user = %created.name, role = %created.role, "user added");
    Ok((StatusCode::CREATED, Json(UserView::of(&created))))
}

#[derive(Serialize, ToSchema)]
pub(crate) struct RemovedUser {
    user: UserView,
    /// The user's live sessions, now revoked.
    sessions_revoked: usize,
}

/// `DELETE /api/v1/users/{name}` (admin): removes a user and revokes their sessions at once.
#[utoipa::path(
    delete,
    path = "/api/v1/users/{name}",
    tag = "users",
    operation_id = "remove_user",
    summary = "Remove a user",
    params(("name" = String, Path, description = "The user's name")),
    responses(
        (status = 200, description = "The user, removed, and how many sessions were revoked", body = RemovedUser),
        (status = 400, description = "A bad path", body = ErrorBody),
        crate::openapi::AuthErrors,
        (status = 404, description = "No such user", body = ErrorBody),
    ),
    security(("bearer" = ["admin"]))
)]
pub(crate) async fn remove_user(
    State(state): State<AppState>,
    caller: Caller,
    PathParam(name): PathParam<String>,
) -> Result<Json<RemovedUser>, ApiError> {
    caller.require(Role::Admin)?;
    let now = warden_store::now_ms();
    let lookup = name.clone();
    let removed = state
        .store
        .write(move |conn| warden_store::users::remove(conn, &lookup, now))
        .await?
        .ok_or_else(|| ApiError::not_found(format!("user `{name}` not found")))?;
    tracing::info!(user = %removed.user.name, sessions = removed.sessions_revoked, "user removed");
    Ok(Json(RemovedUser {
        user: UserView::of(&removed.user),
        sessions_revoked: removed.sessions_revoked,
    }))
}

/// A web UI session as the API shows it: never its secret or CSRF token.
#[derive(Serialize, ToSchema)]
pub(crate) struct SessionView {
    id: i64,
    /// `token` or `user`: what the session was made from.
    kind: &'static str,
    /// The token it was made from (token sessions).
    token_id: Option<i64>,
    /// The user who signed in (user sessions).
    user: Option<String>,
    /// The token's or the user's name.
    name: String,
    /// The token's or the user's role.
    role: String,
    created_at: i64,
    last_seen_at: i64,
    /// It ends then unless used again (each use slides it).
    expires_at: i64,
    revoked_at: Option<i64>,
}

impl SessionView {
    fn of(row: &SessionRow) -> SessionView {
        let (kind, user) = match row.owner() {
            Owner::Token(_) => ("token", None),
            Owner::User(_) => ("user", Some(row.name.clone())),
        };
        SessionView {
            id: row.id,
            kind,
            token_id: row.token_id,
            user,
            name: row.name.clone(),
            role: row.role.clone(),
            created_at: row.created_at,
            last_seen_at: row.last_seen_at,
            expires_at: row.expires_at,
            revoked_at: row.revoked_at,
        }
    }
}

#[derive(Serialize, ToSchema)]
pub(crate) struct SessionsList {
    sessions: Vec<SessionView>,
}

/// Whose sessions the caller may see and end: everyone's for an admin (`None`), else their own.
async fn scope(
    state: &AppState,
    caller: &Caller,
    headers: &HeaderMap,
) -> Result<Option<Owner>, ApiError> {
    caller.require(Role::Viewer)?;
    if caller.role.allows(Role::Admin) {
        return Ok(None);
    }
    crate::ui::session::owner_of(state, caller, headers)
        .await
        .map(Some)
}

/// `GET /api/v1/sessions`: live web UI sessions, newest first (an admin sees all of them,
/// anyone else their own).
#[utoipa::path(
    get,
    path = "/api/v1/sessions",
    tag = "users",
    operation_id = "list_sessions",
    summary = "List live web UI sessions",
    responses(
        (status = 200, description = "Live sessions, newest first (never their secrets)", body = SessionsList),
        crate::openapi::AuthErrors,
    ),
    security(("bearer" = ["viewer"]))
)]
pub(crate) async fn list_sessions(
    State(state): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
) -> Result<Json<SessionsList>, ApiError> {
    let owner = scope(&state, &caller, &headers).await?;
    let now = warden_store::now_ms();
    let rows = state
        .store
        .read(move |conn| warden_store::sessions::list_live_of(conn, now, owner))
        .await?;
    Ok(Json(SessionsList {
        sessions: rows.iter().map(SessionView::of).collect(),
    }))
}

/// `DELETE /api/v1/sessions/{id}`: ends a live session at once (an admin any, anyone else
/// only their own: another's answers 404, like a missing one).
#[utoipa::path(
    delete,
    path = "/api/v1/sessions/{id}",
    tag = "users",
    operation_id = "revoke_session",
    summary = "Revoke a web UI session",
    params(("id" = i64, Path, description = "A session id (a positive integer)", minimum = 1)),
    responses(
        (status = 200, description = "The session, now revoked", body = SessionView),
        (status = 400, description = "A bad session id", body = ErrorBody),
        crate::openapi::AuthErrors,
        (status = 404, description = "No such live session of the caller's", body = ErrorBody),
    ),
    security(("bearer" = ["viewer"]))
)]
pub(crate) async fn revoke_session(
    State(state): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    PathParam(id): PathParam<String>,
) -> Result<Json<SessionView>, ApiError> {
    let id = id
        .parse::<i64>()
        .ok()
        .filter(|id| *id > 0)
        .ok_or_else(|| ApiError::bad_request(format!("`{id}` is not a session id")))?;
    let owner = scope(&state, &caller, &headers).await?;
    let now = warden_store::now_ms();
    let revoked = state
        .store
        .write(move |conn| warden_store::sessions::revoke_live(conn, id, owner, now))
        .await?
        .ok_or_else(|| ApiError::not_found(format!("session {id} not found")))?;
    Ok(Json(SessionView::of(&revoked)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashes_are_argon2id_phc_strings_with_a_fresh_salt_and_verify_only_their_password() {
        let first = hash_password("correct horse").unwrap_or_else(|e| panic!("{e}"));
        let second = hash_password("correct horse").unwrap_or_else(|e| panic!("{e}"));
        assert!(first.starts_with("$argon2id$v=19$"), "{first}");
        assert_ne!(first, second, "each hash has its own salt");
        assert!(verify_password("correct horse", &first));
        assert!(verify_password("correct horse", &second));
        assert!(!verify_password("correct horsE", &first));
        assert!(!verify_password("", &first));
        assert!(!verify_password("correct horse", "not a hash"));
    }

    /// The dummy hash costs what a real one costs: same algorithm, version and parameters.
    #[test]
    fn the_dummy_hash_has_the_parameters_of_new_hashes() {
        let fresh = hash_password("anything").unwrap_or_else(|e| panic!("{e}"));
        let fresh = PasswordHash::new(&fresh).unwrap_or_else(|e| panic!("{e}"));
        let dummy = PasswordHash::new(DUMMY_HASH).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(dummy.algorithm, fresh.algorithm);
        assert_eq!(dummy.version, fresh.version);
        assert_eq!(dummy.params, fresh.params);
        assert_eq!(
            dummy.salt.map(|salt| salt.len()),
            fresh.salt.map(|salt| salt.len())
        );
        assert_eq!(
            dummy.hash.map(|output| output.len()),
            fresh.hash.map(|output| output.len())
        );
        assert!(!verify_password("", DUMMY_HASH));
    }

    #[test]
    fn user_names() {
        for good in ["bob", "a", "ops.team-1_x@example.org", &"x".repeat(64)] {
            assert!(valid_user_name(good), "{good}");
        }
        for bad in [
            "",
            "with space",
            "slash/name",
            "ünï",
            &"x".repeat(65),
            "<b>",
        ] {
            assert!(!valid_user_name(bad), "{bad}");
        }
    }
}
