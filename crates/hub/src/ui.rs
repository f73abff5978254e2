//! The web UI at `/`: server-rendered page shells that small ES modules fill from the JSON API
//! and the live events, sign-in with a session cookie, and the static assets, all embedded in
//! the binary (no CDN, no Node.js at build or run time).

pub(crate) mod session;

use axum::extract::{Form, Path, Query, State};
use axum::http::header::{CACHE_CONTROL, CONTENT_TYPE, LOCATION, SET_COOKIE};
use axum::http::{Extensions, HeaderMap, HeaderValue, StatusCode, Version};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use tower_http::compression::CompressionLayer;
use tower_http::compression::predicate::{DefaultPredicate, Predicate};

use crate::AppState;
use crate::auth::Role;
use crate::error::{ApiError, ErrorCode};
use session::Session;

/// The UI's routes (pages, sign-in, assets); not part of the documented API.
pub(crate) fn router() -> Router<AppState> {
    Router::new()
        .route("/", get(overview_page))
        .route("/checks/{name}", get(check_page))
        .route("/runs/{id}", get(run_page))
        .route("/incidents", get(incidents_page))
        .route("/ui/sign-in", get(sign_in_page).post(sign_in))
        .route("/ui/sign-out", post(sign_out))
        .route("/ui/session", get(session_info))
        .route("/ui/assets/{file}", get(asset))
}

/// The embedded assets: name, content type, bytes.
const ASSETS: &[(&str, &str, &str)] = &[
    (
        "style.css",
        "text/css; charset=utf-8",
        include_str!("ui/assets/style.css"),
    ),
    (
        "common.js",
        "text/javascript; charset=utf-8",
        include_str!("ui/assets/common.js"),
    ),
    (
        "overview.js",
        "text/javascript; charset=utf-8",
        include_str!("ui/assets/overview.js"),
    ),
    (
        "check.js",
        "text/javascript; charset=utf-8",
        include_str!("ui/assets/check.js"),
    ),
    (
        "run.js",
        "text/javascript; charset=utf-8",
        include_str!("ui/assets/run.js"),
    ),
    (
        "incidents.js",
        "text/javascript; charset=utf-8",
        include_str!("ui/assets/incidents.js"),
    ),
];

const CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
                   connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

async fn asset(Path(file): Path<String>) -> Response {
    match ASSETS.iter().find(|(name, _, _)| *name == file) {
        Some((_, content_type, body)) => (
            [(CONTENT_TYPE, *content_type), (CACHE_CONTROL, "no-cache")],
            *body,
        )
            .into_response(),
        None => (StatusCode::NOT_FOUND, "no such asset").into_response(),
    }
}

/// gzip, when the client asks for it, for what the browser loads: pages, assets and the API's
/// JSON (the overview's list of 5,000 checks is ~1 MB of JSON, ~50 kB gzipped). Only those
/// content types: never the WebSocket upgrade (no content type), ping answers or `/metrics`.
pub(crate) fn compression() -> CompressionLayer<impl Predicate> {
    fn compressible(_: StatusCode, _: Version, headers: &HeaderMap, _: &Extensions) -> bool {
        headers
            .get(CONTENT_TYPE)
            .and_then(|value| value.to_str().ok())
            .is_some_and(|content_type| {
                [
                    "application/json",
                    "text/html",
                    "text/css",
                    "text/javascript",
                ]
                .iter()
                .any(|prefix| content_type.starts_with(prefix))
            })
    }
    let compressible: fn(StatusCode, Version, &HeaderMap, &Extensions) -> bool = compressible;
    CompressionLayer::new().compress_when(DefaultPredicate::new().and(compressible))
}

/// Escapes text for HTML content and attribute values.
pub(crate) fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// What a page shell shows around its body.
struct Shell<'a> {
    title: &'a str,
    /// The ES module (in `assets/`) that fills the page, if any.
    script: Option<&'a str>,
    /// `data-*` attributes on `<body>` for the script.
    data: &'a [(&'a str, &'a str)],
    /// Signed in: the CSRF token (for the sign-out form and the scripts).
    csrf: Option<&'a str>,
    body: &'a str,
}

/// What the header's navigation shows beyond the shell: the page it is on and the count of open
/// incidents (kept live by `common.js`).
#[derive(Default)]
struct Nav {
    /// `overview` or `incidents`: that link is marked as the current page.
    current: &'static str,
    /// Incidents not resolved yet; `None` when it could not be read (the script fills it in).
    open_incidents: Option<i64>,
}

fn html(status: StatusCode, shell: &Shell<'_>) -> Response {
    page(status, shell, &Nav::default())
}

fn page(status: StatusCode, shell: &Shell<'_>, nav: &Nav) -> Response {
    let mut head = String::new();
    if let Some(csrf) = shell.csrf {
        head.push_str(&format!(
            "<meta name=\"csrf-token\" content=\"{}\">",
            escape(csrf)
        ));
    }
    if let Some(script) = shell.script {
        head.push_str(&format!(
            "<script type=\"module\" src=\"/ui/assets/{script}\"></script>"
        ));
    }
    let data: String = shell
        .data
        .iter()
        .map(|(key, value)| format!(" data-{key}=\"{}\"", escape(value)))
        .collect();
    let nav = match shell.csrf {
        Some(csrf) => {
            let current = |name: &str| {
                if nav.current == name {
                    " aria-current=\"page\""
                } else {
                    ""
                }
            };
            let (count, count_class) = match nav.open_incidents {
                Some(count) => (
                    count.to_string(),
                    if count > 0 { " count-open" } else { "" },
                ),
                None => (String::new(), ""),
            };
            format!(
                "<nav><a href=\"/\"{overview}>Overview</a>\
                 <a href=\"/incidents\" id=\"nav-incidents\"{incidents}>Incidents \
                 <span id=\"nav-open-incidents\" class=\"count{count_class}\" \
                 title=\"open incidents\">{count}</span></a></nav>\
                 <button type=\"button\" id=\"notify-toggle\" class=\"notify\" \
                 aria-pressed=\"false\" hidden>Notify me</button>\
                 <form method=\"post\" action=\"/ui/sign-out\" class=\"sign-out\">\
                 <input type=\"hidden\" name=\"csrf\" value=\"{csrf}\">\
                 <button type=\"submit\" id=\"sign-out\">Sign out</button></form>",
                overview = current("overview"),
                incidents = current("incidents"),
                csrf = escape(csrf),
            )
        }
        None => String::new(),
    };
    let page = format!(
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <title>{title} · warden</title>\
         <link rel=\"stylesheet\" href=\"/ui/assets/style.css\">{head}</head>\
         <body{data}><header><a href=\"/\" class=\"brand\">warden</a>{nav}</header>\
         <div id=\"banner\" class=\"banner\" role=\"status\" hidden></div>\
         <main id=\"main\">{body}</main></body></html>\n",
        title = escape(shell.title),
        body = shell.body,
    );
    let mut response = (status, page).into_response();
    let headers = response.headers_mut();
    headers.insert(
        CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert("content-security-policy", HeaderValue::from_static(CSP));
    headers.insert("x-frame-options", HeaderValue::from_static("DENY"));
    headers.insert("referrer-policy", HeaderValue::from_static("same-origin"));
    response
}

/// Incidents not resolved yet, for the header; `None` (and a log line) when the store fails:
/// the page still renders and its script fills the count in.
async fn open_incidents(state: &AppState) -> Option<i64> {
    let counted = state
        .store
        .read(|conn| {
            Ok(conn
                .prepare_cached("SELECT count(*) FROM incidents WHERE resolved_at IS NULL")?
                .query_row([], |row| row.get::<_, i64>(0))?)
        })
        .await;
    match counted {
        Ok(count) => Some(count),
        Err(error) => {
            tracing::warn!(%error, "cannot count open incidents for the page header");
            None
        }
    }
}

fn redirect(to: &str) -> Response {
    let mut response = StatusCode::SEE_OTHER.into_response();
    if let Ok(value) = HeaderValue::from_str(to) {
        response.headers_mut().insert(LOCATION, value);
    }
    response
}

/// A local path to return to after sign-in (never another site: `//host` is refused).
fn safe_next(next: Option<&str>) -> &str {
    match next {
        Some(next) if next.starts_with('/') && !next.starts_with("//") && !next.contains('\\') => {
            next
        }
        _ => "/",
    }
}

/// Percent-encodes a path and query for `?next=`.
fn encode_component(text: &str) -> String {
    let mut out = String::new();
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || b"-_.~/".contains(&byte) {
            out.push(char::from(byte));
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

/// The page's session, or a redirect to the sign-in page that comes back here.
async fn page_session(
    state: &AppState,
    headers: &HeaderMap,
    here: &str,
) -> Result<Session, Response> {
    let to_sign_in = || redirect(&format!("/ui/sign-in?next={}", encode_component(here)));
    let Some(secret) = session::cookie_secret(headers) else {
        return Err(to_sign_in());
    };
    match session::lookup(state, secret).await {
        Ok(session) => Ok(session),
        Err(error) if error.code == ErrorCode::Unauthorized => Err(to_sign_in()),
        Err(error) => Err(error.into_response()),
    }
}

#[derive(Deserialize)]
struct OverviewQuery {
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    status: Option<String>,
    #[serde(default)]
    kind: Option<String>,
    #[serde(default)]
    label: Option<String>,
}

async fn overview_page(
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(query): Query<OverviewQuery>,
) -> Response {
    let session = match page_session(&state, &headers, "/").await {
        Ok(session) => session,
        Err(response) => return response,
    };
    let value = |field: &Option<String>| escape(field.as_deref().unwrap_or(""));
    let status_options: String = ["", "crit", "unknown", "warn", "pending", "ok"]
        .iter()
        .map(|status| {
            let selected = if query.status.as_deref().unwrap_or("") == *status {
                " selected"
            } else {
                ""
            };
            let label = if status.is_empty() {
                "any status"
            } else {
                status
            };
            format!("<option value=\"{status}\"{selected}>{label}</option>")
        })
        .collect();
    let body = format!(
        "<h1>Checks</h1>\
         <div id=\"counts\" class=\"counts\" aria-live=\"polite\"></div>\
         <form id=\"filter\" class=\"filter\" method=\"get\" action=\"/\">\
         <input name=\"name\" id=\"filter-name\" placeholder=\"name contains\" value=\"{name}\">\
         <select name=\"status\" id=\"filter-status\">{status_options}</select>\
         <input name=\"kind\" id=\"filter-kind\" placeholder=\"kind\" value=\"{kind}\">\
         <input name=\"label\" id=\"filter-label\" placeholder=\"label key=value\" value=\"{label}\">\
         <button type=\"submit\">Filter</button></form>\
         <table id=\"checks\" class=\"checks\"><thead><tr><th>Status</th><th>Check</th>\
         <th>Kind</th><th>Summary</th><th>Last run</th></tr></thead><tbody></tbody></table>\
         <p id=\"empty\" hidden>No checks match.</p>\
         <p id=\"more\" class=\"more\" hidden><span id=\"shown-count\"></span> \
         <button type=\"button\" id=\"show-more\">Show more</button></p>",
        name = value(&query.name),
        kind = value(&query.kind),
        label = value(&query.label),
    );
    let nav = Nav {
        current: "overview",
        open_incidents: open_incidents(&state).await,
    };
    page(
        StatusCode::OK,
        &Shell {
            title: "Overview",
            script: Some("overview.js"),
            data: &[("page", "overview")],
            csrf: Some(&session.csrf),
            body: &body,
        },
        &nav,
    )
}

async fn check_page(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(name): Path<String>,
) -> Response {
    let here = format!("/checks/{name}");
    let session = match page_session(&state, &headers, &here).await {
        Ok(session) => session,
        Err(response) => return response,
    };
    let can_run = session.caller.role.allows(Role::Operator);
    let run_button = if can_run {
        "<button type=\"button\" id=\"run-now\">Run now</button>"
    } else {
        ""
    };
    let body = format!(
        "<h1><span id=\"check-status\" class=\"status status-pending\">…</span> \
         <span id=\"check-name\">{name}</span></h1>\
         <p id=\"check-summary\" class=\"summary\"></p>\
         <dl class=\"facts\"><dt>Kind</dt><dd id=\"check-kind\"></dd>\
         <dt>Schedule</dt><dd id=\"check-schedule\"></dd>\
         <dt>Labels</dt><dd id=\"check-labels\"></dd>\
         <dt>Links</dt><dd id=\"check-links\"></dd>\
         <dt>Uptime (24 h)</dt><dd id=\"check-uptime\">…</dd></dl>\
         <section id=\"heartbeat\" hidden><h2>Heartbeat</h2>\
         <p id=\"heartbeat-state\"></p>\
         <div id=\"ping-urls\" hidden><p>Ping URL: <code id=\"ping-url\"></code></p>\
         <ul id=\"ping-variants\" class=\"ping-variants\"></ul></div>\
         <p id=\"ping-url-hidden\" class=\"hint\" hidden>The ping URL is shown to operators and \
         admins.</p>\
         <h3>Last pings</h3><table id=\"pings\" class=\"runs\"><thead><tr><th>Run</th>\
         <th>Kind</th><th>Status</th><th>Received</th><th>Body</th></tr></thead><tbody></tbody>\
         </table><p id=\"pings-empty\" class=\"summary\" hidden>No pings yet.</p></section>\
         <p class=\"actions\">{run_button}<span id=\"run-state\" class=\"run-state\"></span></p>\
         <section><h2>Response time</h2><div class=\"ranges\" id=\"ranges\">\
         <button type=\"button\" data-range=\"1h\" class=\"active\">1 h</button>\
         <button type=\"button\" data-range=\"24h\">24 h</button>\
         <button type=\"button\" data-range=\"7d\">7 d</button>\
         <button type=\"button\" data-range=\"30d\">30 d</button></div>\
         <div id=\"chart\" class=\"chart\"></div></section>\
         <section id=\"recent-runs\"><h2>Recent runs</h2><table id=\"runs\" class=\"runs\"><thead><tr>\
         <th>Run</th><th>Status</th><th>Summary</th><th>Finished</th><th>Duration</th></tr>\
         </thead><tbody></tbody></table></section>",
        name = escape(&name),
    );
    let nav = Nav {
        current: "",
        open_incidents: open_incidents(&state).await,
    };
    page(
        StatusCode::OK,
        &Shell {
            title: &name,
            script: Some("check.js"),
            data: &[("page", "check"), ("check", &name)],
            csrf: Some(&session.csrf),
            body: &body,
        },
        &nav,
    )
}

async fn run_page(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Response {
    let here = format!("/runs/{id}");
    let session = match page_session(&state, &headers, &here).await {
        Ok(session) => session,
        Err(response) => return response,
    };
    let Ok(run_id) = id.parse::<i64>() else {
        return ApiError::bad_request("a run id is a positive integer").into_response();
    };
    let title = format!("Run {run_id}");
    let body = format!(
        "<h1>Run {run_id} <span id=\"run-status\" class=\"status status-pending\">…</span></h1>\
         <p id=\"run-summary\" class=\"summary\"></p>\
         <p>Check: <a id=\"run-check\" href=\"/\"></a> · state <span id=\"run-state\"></span></p>\
         <pre id=\"output\" class=\"output\"></pre>"
    );
    let nav = Nav {
        current: "",
        open_incidents: open_incidents(&state).await,
    };
    page(
        StatusCode::OK,
        &Shell {
            title: &title,
            script: Some("run.js"),
            data: &[("page", "run"), ("run", &run_id.to_string())],
            csrf: Some(&session.csrf),
            body: &body,
        },
        &nav,
    )
}

/// `/incidents`: open incidents first, then past ones a page at a time, each with its timeline;
/// operators and admins can acknowledge an open one with a note.
async fn incidents_page(State(state): State<AppState>, headers: HeaderMap) -> Response {
    let session = match page_session(&state, &headers, "/incidents").await {
        Ok(session) => session,
        Err(response) => return response,
    };
    let can_ack = if session.caller.role.allows(Role::Operator) {
        "true"
    } else {
        "false"
    };
    let body = "<h1>Incidents</h1>\
         <section class=\"incident-list\"><h2>Open <span id=\"open-count\" class=\"count\"></span></h2>\
         <div id=\"open-incidents\" class=\"incidents\" aria-live=\"polite\"></div>\
         <p id=\"no-open\" class=\"summary\" hidden>No open incidents.</p></section>\
         <section class=\"incident-list\"><h2>Past</h2>\
         <div id=\"past-incidents\" class=\"incidents\"></div>\
         <p id=\"no-past\" class=\"summary\" hidden>No past incidents.</p>\
         <p class=\"more\"><button type=\"button\" id=\"more-incidents\" hidden>Older incidents</button>\
         </p></section>";
    let nav = Nav {
        current: "incidents",
        open_incidents: open_incidents(&state).await,
    };
    page(
        StatusCode::OK,
        &Shell {
            title: "Incidents",
            script: Some("incidents.js"),
            data: &[("page", "incidents"), ("can-ack", can_ack)],
            csrf: Some(&session.csrf),
            body,
        },
        &nav,
    )
}

#[derive(Deserialize)]
struct SignInQuery {
    #[serde(default)]
    next: Option<String>,
}

fn sign_in_form(status: StatusCode, next: &str, error: Option<&str>) -> Response {
    let error = error
        .map(|error| {
            format!(
                "<p class=\"error\" id=\"sign-in-error\" role=\"alert\">{}</p>",
                escape(error)
            )
        })
        .unwrap_or_default();
    let body = format!(
        "<h1>Sign in</h1>{error}\
         <form method=\"post\" action=\"/ui/sign-in\" class=\"sign-in\">\
         <input type=\"hidden\" name=\"next\" value=\"{next}\">\
         <label for=\"username\">User name</label>\
         <input type=\"text\" name=\"username\" id=\"username\" autocomplete=\"username\" \
          autocapitalize=\"none\" spellcheck=\"false\" autofocus>\
         <label for=\"password\">Password</label>\
         <input type=\"password\" name=\"password\" id=\"password\" \
          autocomplete=\"current-password\">\
         <p class=\"hint\">or</p>\
         <label for=\"token\">API token</label>\
         <input type=\"password\" name=\"token\" id=\"token\" autocomplete=\"off\" \
          placeholder=\"wdn_…\">\
         <button type=\"submit\" id=\"sign-in\">Sign in</button></form>\
         <p class=\"hint\">Sign in as a user made with <code>warden users add</code>, or with the \
         admin token <code>warden up</code> printed, or one made with \
         <code>warden tokens create</code>.</p>",
        next = escape(next),
    );
    html(
        status,
        &Shell {
            title: "Sign in",
            script: None,
            data: &[("page", "sign-in")],
            csrf: None,
            body: &body,
        },
    )
}

async fn sign_in_page(
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(query): Query<SignInQuery>,
) -> Response {
    let next = safe_next(query.next.as_deref());
    if let Some(secret) = session::cookie_secret(&headers)
        && session::lookup(&state, secret).await.is_ok()
    {
        return redirect(next);
    }
    sign_in_form(StatusCode::OK, next, None)
}

/// The sign-in form: a token, or a user name and password.
#[derive(Deserialize)]
struct SignInForm {
    #[serde(default)]
    token: Option<String>,
    #[serde(default)]
    username: Option<String>,
    #[serde(default)]
    password: Option<String>,
    #[serde(default)]
    next: Option<String>,
}

async fn sign_in(
    State(state): State<AppState>,
    headers: HeaderMap,
    Form(form): Form<SignInForm>,
) -> Response {
    let next = safe_next(form.next.as_deref());
    // Login CSRF: another site must not sign a browser in with its own token.
    if !session::same_origin(&headers) {
        return sign_in_form(
            StatusCode::FORBIDDEN,
            next,
            Some("cross-site sign-in refused"),
        );
    }
    let given = |field: &Option<String>| {
        field
            .as_deref()
            .map(str::trim)
            .filter(|value| !value.is_empty())
            .map(str::to_string)
    };
    let token = given(&form.token);
    let username = given(&form.username);
    // The password is taken as typed: spaces may be part of it.
    let password = form.password.filter(|password| !password.is_empty());
    let created = match (token, username, password) {
        (Some(_), Some(_), _) | (Some(_), None, Some(_)) => {
            return sign_in_form(
                StatusCode::BAD_REQUEST,
                next,
                Some("give either a token or a user name and password, not both"),
            );
        }
        (Some(token), None, None) => {
            let caller = match crate::auth::caller_for_token(&state, &token).await {
                Ok(caller) => caller,
                Err(error) if error.code == ErrorCode::Unauthorized => {
                    return sign_in_form(
                        StatusCode::UNAUTHORIZED,
                        next,
                        Some("invalid, expired or revoked token"),
                    );
                }
                Err(error) => return error.into_response(),
            };
            if !caller.role.allows(Role::Viewer) {
                return sign_in_form(
                    StatusCode::FORBIDDEN,
                    next,
                    Some("this token's role cannot sign in (it needs viewer, operator or admin)"),
                );
            }
            session::create(&state, &caller).await
        }
        (None, Some(username), Some(password)) => {
            // An unknown user and a wrong password get the same answer after the same work.
            match crate::users::sign_in(&state, &username, &password).await {
                Ok(Some((user, role))) => session::create_for_user(&state, user.id, role).await,
                Ok(None) => {
                    return sign_in_form(
                        StatusCode::UNAUTHORIZED,
                        next,
                        Some("wrong user name or password"),
                    );
                }
                Err(error) => return error.into_response(),
            }
        }
        (None, Some(_), None) | (None, None, Some(_)) => {
            return sign_in_form(
                StatusCode::BAD_REQUEST,
                next,
                Some("give both a user name and a password"),
            );
        }
        (None, None, None) => {
            return sign_in_form(
                StatusCode::BAD_REQUEST,
                next,
                Some("give a token, or a user name and password"),
            );
        }
    };
    let (_, secret) = match created {
        Ok(created) => created,
        Err(error) => return error.into_response(),
    };
    let mut response = redirect(next);
    if let Ok(cookie) = HeaderValue::from_str(&session::set_cookie(
        Some(&secret),
        session::request_is_tls(&headers),
    )) {
        response.headers_mut().insert(SET_COOKIE, cookie);
    }
    response
}

#[derive(Deserialize)]
struct SignOutForm {
    #[serde(default)]
    csrf: Option<String>,
}

async fn sign_out(
    State(state): State<AppState>,
    headers: HeaderMap,
    Form(form): Form<SignOutForm>,
) -> Response {
    let tls = session::request_is_tls(&headers);
    let signed_out = || {
        let mut response = redirect("/ui/sign-in");
        if let Ok(cookie) = HeaderValue::from_str(&session::set_cookie(None, tls)) {
            response.headers_mut().insert(SET_COOKIE, cookie);
        }
        response
    };
    let Some(secret) = session::cookie_secret(&headers) else {
        return signed_out();
    };
    let session = match session::lookup(&state, secret).await {
        Ok(session) => session,
        Err(error) if error.code == ErrorCode::Unauthorized => return signed_out(),
        Err(error) => return error.into_response(),
    };
    let offered = form.csrf.as_deref().or_else(|| {
        headers
            .get(session::CSRF_HEADER)
            .and_then(|v| v.to_str().ok())
    });
    if !session::same_origin(&headers) || !session::csrf_matches(&session, offered) {
        return ApiError::new(ErrorCode::Forbidden, "missing or wrong CSRF token").into_response();
    }
    if let Err(error) = session::revoke(&state, session.id).await {
        return error.into_response();
    }
    signed_out()
}

#[derive(Serialize)]
struct SessionInfo {
    csrf: String,
    role: &'static str,
    expires_at: i64,
}

/// `GET /ui/session`: the signed-in session's CSRF token, role and expiry.
async fn session_info(
    State(state): State<AppState>,
    headers: HeaderMap,
) -> Result<Json<SessionInfo>, ApiError> {
    let secret = session::cookie_secret(&headers)
        .ok_or_else(|| ApiError::new(ErrorCode::Unauthorized, "not signed in"))?;
    let session = session::authenticate(&state, &axum::http::Method::GET, &headers, secret).await?;
    Ok(Json(SessionInfo {
        csrf: session.csrf,
        role: session.caller.role.as_str(),
        expires_at: session.expires_at,
    }))
}
