//! [`Client`]: one method per API call, over reqwest (HTTP/1, no TLS yet).

use std::time::Duration;

use reqwest::header::{AUTHORIZATION, HeaderMap, HeaderValue};
use reqwest::{Method, Url};
use serde::de::DeserializeOwned;

use crate::error::ClientError;
use crate::types::{
    Check, CheckFilter, ChecksBody, ErrorBody, OutputBody, OutputLine, Run, RunCreatedBody,
    RunFilter, RunPage,
};

/// Time allowed for an ordinary call, connection included.
pub(crate) const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// Time allowed to establish the TCP connection.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Extra time allowed on top of `wait_ms` for a waiting call.
const WAIT_GRACE: Duration = Duration::from_secs(10);

/// A connection to one hub with one token. Cheap to clone (reqwest pools connections).
#[derive(Debug, Clone)]
pub struct Client {
    http: reqwest::Client,
    /// The base URL as given, for error messages.
    base_text: String,
    /// Parsed base URL; checked in [`Client::new`] to be able to take path segments.
    base: Url,
    /// For the events WebSocket, which browsers and this client authenticate by query.
    token: Secret,
}

/// A token that never shows in `Debug` output (logs, panics).
#[derive(Clone)]
struct Secret(String);

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(..)")
    }
}

impl Client {
    /// A client for the hub at `base_url` (`http://HOST:PORT`, optionally with a path prefix)
    /// sending `Authorization: Bearer <token>` on every call. Does not connect yet.
    pub fn new(base_url: &str, token: &str) -> Result<Client, ClientError> {
        let base = parse_base_url(base_url)?;
        if token.is_empty() {
            return Err(ClientError::InvalidToken("the token is empty"));
        }
        let mut authorization =
            HeaderValue::from_str(&format!("Bearer {token}")).map_err(|_| {
                ClientError::InvalidToken("it contains characters not allowed in an HTTP header")
            })?;
        authorization.set_sensitive(true);
        let mut headers = HeaderMap::new();
        headers.insert(AUTHORIZATION, authorization);
        let http = reqwest::Client::builder()
            .default_headers(headers)
            .user_agent(concat!("warden/", env!("CARGO_PKG_VERSION")))
            .connect_timeout(CONNECT_TIMEOUT)
            .build()
            .map_err(|error| ClientError::Connect {
                url: base_url.to_string(),
                message: innermost_message(&error),
            })?;
        Ok(Client {
            http,
            base_text: base_url.to_string(),
            base,
            token: Secret(token.to_string()),
        })
    }

    /// `GET /api/v1/checks`: every check with its latest status.
    pub async fn checks(&self, filter: &CheckFilter) -> Result<Vec<Check>, ClientError> {
        let mut query = Vec::new();
        if let Some(status) = filter.status {
            query.push(("status", status.as_str().to_string()));
        }
        if let Some(text) = &filter.filter {
            query.push(("filter", text.clone()));
        }
        if let Some(kind) = &filter.kind {
            query.push(("kind", kind.clone()));
        }
        if let Some(label) = &filter.label {
            query.push(("label", label.clone()));
        }
        let url = self.endpoint(&["checks"], &query);
        let body: ChecksBody = self.call(Method::GET, url, REQUEST_TIMEOUT).await?;
        Ok(body.checks)
    }

    /// `GET /api/v1/checks/{name}`; an unknown name is an [`ClientError::Api`] 404.
    pub async fn check(&self, name: &str) -> Result<Check, ClientError> {
        let url = self.endpoint(&["checks", name], &[]);
        self.call(Method::GET, url, REQUEST_TIMEOUT).await
    }

    /// `POST /api/v1/checks/{name}/run`: queues a run now; returns its id.
    pub async fn run_check(&self, name: &str) -> Result<i64, ClientError> {
        let url = self.endpoint(&["checks", name, "run"], &[]);
        let body: RunCreatedBody = self.call(Method::POST, url, REQUEST_TIMEOUT).await?;
        Ok(body.run_id)
    }

    /// `GET /api/v1/runs`: one page of runs, newest first.
    pub async fn runs(&self, filter: &RunFilter) -> Result<RunPage, ClientError> {
        let mut query = Vec::new();
        if let Some(check) = &filter.check {
            query.push(("check", check.clone()));
        }
        if let Some(limit) = filter.limit {
            query.push(("limit", limit.to_string()));
        }
        if let Some(before) = filter.before {
            query.push(("before", before.to_string()));
        }
        let url = self.endpoint(&["runs"], &query);
        self.call(Method::GET, url, REQUEST_TIMEOUT).await
    }

    /// `GET /api/v1/runs/{id}`. With `wait`, the hub answers as soon as the run is final or
    /// after `wait` with its current state, so the caller checks [`crate::RunState::is_final`].
    pub async fn run(&self, id: i64, wait: Option<Duration>) -> Result<Run, ClientError> {
        let id = id.to_string();
        match wait {
            None => {
                let url = self.endpoint(&["runs", &id], &[]);
                self.call(Method::GET, url, REQUEST_TIMEOUT).await
            }
            Some(wait) => {
                let url =
                    self.endpoint(&["runs", &id], &[("wait_ms", wait.as_millis().to_string())]);
                self.call(Method::GET, url, wait.saturating_add(WAIT_GRACE))
                    .await
            }
        }
    }

    /// `GET /api/v1/runs/{id}/output`: the lines the run printed, in order.
    pub async fn output(&self, id: i64) -> Result<Vec<OutputLine>, ClientError> {
        let url = self.endpoint(&["runs", &id.to_string(), "output"], &[]);
        let body: OutputBody = self.call(Method::GET, url, REQUEST_TIMEOUT).await?;
        Ok(body.lines)
    }

    pub(crate) fn token(&self) -> &str {
        &self.token.0
    }

    pub(crate) fn base_text(&self) -> &str {
        &self.base_text
    }

    /// `POST /api/v1/runs/{id}/cancel`: cancels a queued or running run.
    pub async fn cancel(&self, id: i64) -> Result<serde_json::Value, ClientError> {
        let url = self.endpoint(&["runs", &id.to_string(), "cancel"], &[]);
        self.call(Method::POST, url, REQUEST_TIMEOUT).await
    }

    /// `GET /api/v1/series/{name}`: points over a range (`since` a duration like `1h`; `step`
    /// likewise; `agg` avg, min, max or last).
    pub async fn series(
        &self,
        name: &str,
        since: &str,
        step: Option<&str>,
        agg: &str,
    ) -> Result<crate::types::SeriesBody, ClientError> {
        let mut query = vec![("since", since.to_string()), ("agg", agg.to_string())];
        if let Some(step) = step {
            query.push(("step", step.to_string()));
        }
        let url = self.endpoint(&["series", name], &query);
        self.call(Method::GET, url, REQUEST_TIMEOUT).await
    }

    /// `GET /api/v1/checks/{name}/uptime` over the last `since`.
    pub async fn uptime(&self, name: &str, since: &str) -> Result<serde_json::Value, ClientError> {
        let url = self.endpoint(&["checks", name, "uptime"], &[("since", since.to_string())]);
        self.call(Method::GET, url, REQUEST_TIMEOUT).await
    }

    /// `GET /api/v1/tokens` (admin).
    pub async fn tokens(&self) -> Result<serde_json::Value, ClientError> {
        let url = self.endpoint(&["tokens"], &[("limit", "1000".to_string())]);
        self.call(Method::GET, url, REQUEST_TIMEOUT).await
    }

    /// `POST /api/v1/tokens` (admin): the answer holds the new secret, shown once.
    pub async fn create_token(
        &self,
        name: &str,
        role: &str,
        expires_in: Option<&str>,
    ) -> Result<serde_json::Value, ClientError> {
        let url = self.endpoint(&["tokens"], &[]);
        let body = serde_json::json!({ "name": name, "role": role, "expires_in": expires_in });
        self.call_with(Method::POST, url, Some(&body), REQUEST_TIMEOUT)
            .await
    }

    /// `DELETE /api/v1/tokens/{id}` (admin).
    pub async fn revoke_token(&self, id: i64) -> Result<serde_json::Value, ClientError> {
        let url = self.endpoint(&["tokens", &id.to_string()], &[]);
        self.call(Method::DELETE, url, REQUEST_TIMEOUT).await
    }

    /// `GET /api/v1/users` (admin): every user, never a password or hash.
    pub async fn users(&self) -> Result<serde_json::Value, ClientError> {
        let url = self.endpoint(&["users"], &[]);
        self.call(Method::GET, url, REQUEST_TIMEOUT).await
    }

    /// `POST /api/v1/users` (admin): a user who signs in to the web UI with `password`.
    pub async fn create_user(
        &self,
        name: &str,
        role: &str,
        password: &str,
    ) -> Result<serde_json::Value, ClientError> {
        let url = self.endpoint(&["users"], &[]);
        let body = serde_json::json!({ "name": name, "role": role, "password": password });
        self.call_with(Method::POST, url, Some(&body), REQUEST_TIMEOUT)
            .await
    }

    /// `DELETE /api/v1/users/{name}` (admin): removes the user and revokes their sessions.
    pub async fn remove_user(&self, name: &str) -> Result<serde_json::Value, ClientError> {
        let url = self.endpoint(&["users", name], &[]);
        self.call(Method::DELETE, url, REQUEST_TIMEOUT).await
    }

    /// `GET /api/v1/sessions`: live web UI sessions (all of them for an admin, else one's own).
    pub async fn sessions(&self) -> Result<serde_json::Value, ClientError> {
        let url = self.endpoint(&["sessions"], &[]);
        self.call(Method::GET, url, REQUEST_TIMEOUT).await
    }

    /// `DELETE /api/v1/sessions/{id}`: ends a web UI session at once.
    pub async fn revoke_session(&self, id: i64) -> Result<serde_json::Value, ClientError> {
        let url = self.endpoint(&["sessions", &id.to_string()], &[]);
        self.call(Method::DELETE, url, REQUEST_TIMEOUT).await
    }

    /// `BASE/api/v1/<segments>?<query>`; each segment is percent-encoded (a `/` in a check
    /// name stays inside its segment).
    pub(crate) fn endpoint(&self, segments: &[&str], query: &[(&str, String)]) -> Url {
        let mut url = self.base.clone();
        url.path_segments_mut()
            .expect("checked in parse_base_url: the base URL can take path segments")
            .pop_if_empty()
            .extend(["api", "v1"])
            .extend(segments);
        if !query.is_empty() {
            url.query_pairs_mut().extend_pairs(query);
        }
        url
    }

    async fn call<T: DeserializeOwned>(
        &self,
        method: Method,
        url: Url,
        timeout: Duration,
    ) -> Result<T, ClientError> {
        self.call_with(method, url, None, timeout).await
    }

    pub(crate) async fn call_with<T: DeserializeOwned>(
        &self,
        method: Method,
        url: Url,
        body: Option<&serde_json::Value>,
        timeout: Duration,
    ) -> Result<T, ClientError> {
        let path = url.path().to_string();
        let mut request = self.http.request(method, url).timeout(timeout);
        if let Some(body) = body {
            let bytes = serde_json::to_vec(body)
                .map_err(|error| ClientError::Decode(format!("{path}: {error}")))?;
            request = request
                .header(reqwest::header::CONTENT_TYPE, "application/json")
                .body(bytes);
        }
        let response = request
            .send()
            .await
            .map_err(|error| self.transport_error(&error, timeout))?;
        let status = response.status();
        let body = response
            .bytes()
            .await
            .map_err(|error| self.transport_error(&error, timeout))?;
        if !status.is_success() {
            return Err(api_error(status.as_u16(), &body));
        }
        serde_json::from_slice(&body)
            .map_err(|error| ClientError::Decode(format!("{path}: {error}")))
    }

    fn transport_error(&self, error: &reqwest::Error, timeout: Duration) -> ClientError {
        let message = if error.is_timeout() {
            format!("no answer within {}s", timeout.as_secs())
        } else {
            innermost_message(error)
        };
        ClientError::Connect {
            url: self.base_text.clone(),
            message,
        }
    }
}

/// Accepts `http://HOST[:PORT][/PREFIX]`; anything else gets a message saying what to write.
pub(crate) fn parse_base_url(text: &str) -> Result<Url, ClientError> {
    let invalid = |message: &str| ClientError::InvalidUrl {
        url: text.to_string(),
        message: message.to_string(),
    };
    if !text.contains("://") {
        return Err(invalid(
            "expected http://HOST:PORT, e.g. http://127.0.0.1:7878",
        ));
    }
    let mut url = Url::parse(text).map_err(|error| invalid(&error.to_string()))?;
    match url.scheme() {
        "http" => {}
        "https" => return Err(invalid("https is not supported yet; use http://")),
        _ => {
            return Err(invalid(
                "expected http://HOST:PORT, e.g. http://127.0.0.1:7878",
            ));
        }
    }
    if url.host_str().is_none_or(str::is_empty) || url.cannot_be_a_base() {
        return Err(invalid(
            "expected http://HOST:PORT, e.g. http://127.0.0.1:7878",
        ));
    }
    url.set_query(None);
    url.set_fragment(None);
    Ok(url)
}

/// A non-2xx answer: the hub's `{"error": {"code", "message"}}`, or (from a proxy, say) the
/// status and the start of whatever body came back.
pub(crate) fn api_error(status: u16, body: &[u8]) -> ClientError {
    if let Ok(parsed) = serde_json::from_slice::<ErrorBody>(body) {
        return ClientError::Api {
            status,
            code: parsed.error.code,
            message: parsed.error.message,
        };
    }
    let text = String::from_utf8_lossy(body);
    let first_line = text.lines().map(str::trim).find(|line| !line.is_empty());
    let message = match first_line {
        Some(line) => {
            let short: String = line.chars().take(200).collect();
            format!("the hub answered HTTP {status}: {short}")
        }
        None => format!("the hub answered HTTP {status}"),
    };
    ClientError::Api {
        status,
        code: "unexpected".to_string(),
        message,
    }
}

/// The innermost cause ("Connection refused (os error 111)"), which is what a person needs;
/// reqwest's outer layers repeat the URL and say "error sending request".
fn innermost_message(error: &reqwest::Error) -> String {
    let mut innermost: &dyn std::error::Error = error;
    while let Some(source) = innermost.source() {
        innermost = source;
    }
    innermost.to_string()
}
