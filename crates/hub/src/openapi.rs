//! The OpenAPI 3.1 document of the hub's HTTP API, served at `GET /api/v1/openapi.json`.
//!
//! Routes are registered only through [`DocumentedRouter`], which takes `utoipa_axum::routes!`
//! declarations: each adds a handler to the router and its `#[utoipa::path]` operation to the
//! document in one step, and it has no way to add a route without one. So a served route cannot
//! be missing from the document; the tests check the other direction (every documented operation
//! reaches its handler) and what each operation must say (errors, security).

use axum::Extension;
use axum::Router;
use axum::body::Bytes;
use axum::extract::Request;
use axum::http::header::CONTENT_TYPE;
use axum::response::{IntoResponse, Response};
use axum::routing::Route;
use tower_layer::Layer;
use tower_service::Service;
use utoipa::OpenApi as _;
use utoipa::openapi::OpenApi;
use utoipa::openapi::security::{ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa_axum::router::{OpenApiRouter, UtoipaMethodRouter};

use crate::AppState;

/// Security scheme: `Authorization: Bearer <token>`. Operations list the role they need.
pub(crate) const BEARER: &str = "bearer";
/// Security scheme: `?token=<token>`, only where browsers cannot set headers (WebSocket).
pub(crate) const QUERY_TOKEN: &str = "query_token";

#[derive(utoipa::OpenApi)]
#[openapi(
    info(
        title = "warden hub API",
        description = "The warden hub's HTTP API. Errors are always `{\"error\": {\"code\", \
                       \"message\"}}` (`ErrorBody`); `code` is one word per HTTP status. Request \
                       bodies are size-limited and unknown JSON fields are refused.\n\n\
                       Tokens carry one role: `admin` may do everything, `operator` includes \
                       `viewer`, `agent` (the worker protocol) and `ping` only themselves. \
                       Each operation's security requirement names the role it needs."
    ),
    components(schemas(crate::error::ErrorBody)),
    modifiers(&SecuritySchemes),
    tags(
        (name = "meta", description = "Health and this document"),
        (name = "checks", description = "Configured checks, their status and uptime"),
        (name = "runs", description = "Runs of checks and jobs, their output, cancelling"),
        (name = "queue", description = "The worker protocol: enqueue, lease, heartbeat, complete, fail"),
        (name = "series", description = "Time series recorded from perfdata"),
        (name = "tokens", description = "API tokens (admin)"),
        (name = "users", description = "Users who sign in to the web UI, and web UI sessions"),
        (name = "alerting", description = "Incidents, silences, notifiers and the alerter's counters"),
        (name = "heartbeats", description = "Pings from jobs watched by heartbeat checks (healthchecks.io-compatible)"),
        (name = "live", description = "Live events over WebSocket"),
        (name = "metrics", description = "Prometheus exposition"),
    )
)]
struct ApiDoc;

struct SecuritySchemes;

impl utoipa::Modify for SecuritySchemes {
    fn modify(&self, openapi: &mut OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            BEARER,
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some(
                        "A warden token (`wdn_` + 64 hex digits). The names in an operation's \
                         requirement are the role it needs (admin always qualifies).",
                    ))
                    .build(),
            ),
        );
        components.add_security_scheme(
            QUERY_TOKEN,
            SecurityScheme::ApiKey(ApiKey::Query(ApiKeyValue::with_description(
                "token",
                "The same token as a query parameter, for WebSocket clients that cannot set headers",
            ))),
        );
    }
}

/// A router that can only gain routes together with their OpenAPI operations.
/// The error answers every authenticated operation can give, listed once: an operation's
/// `responses(...)` names `AuthErrors` beside its own statuses.
#[derive(utoipa::IntoResponses)]
#[allow(dead_code)] // reason: a description for the document, never constructed
pub(crate) enum AuthErrors {
    #[response(
        status = 401,
        description = "No token, or an invalid, expired or revoked one"
    )]
    Unauthorized(crate::error::ErrorBody),
    #[response(status = 403, description = "The token's role is not allowed")]
    Forbidden(crate::error::ErrorBody),
    #[response(status = 500, description = "Internal error (the hub's log says why)")]
    Internal(crate::error::ErrorBody),
    #[response(status = 503, description = "The hub is shutting down")]
    Unavailable(crate::error::ErrorBody),
}

pub(crate) struct DocumentedRouter(OpenApiRouter<AppState>);

impl DocumentedRouter {
    pub(crate) fn new() -> DocumentedRouter {
        DocumentedRouter(OpenApiRouter::default())
    }

    /// Adds the handlers of one `utoipa_axum::routes!(...)` (one path, one or more methods).
    pub(crate) fn routes(self, routes: UtoipaMethodRouter<AppState>) -> DocumentedRouter {
        DocumentedRouter(self.0.routes(routes))
    }

    /// Nests `inner` under `prefix`, in the router and in the document.
    pub(crate) fn nest(self, prefix: &str, inner: DocumentedRouter) -> DocumentedRouter {
        DocumentedRouter(self.0.nest(prefix, inner.0))
    }

    /// Adds `other`'s routes (and their operations) beside these.
    pub(crate) fn merge(self, other: DocumentedRouter) -> DocumentedRouter {
        DocumentedRouter(self.0.merge(other.0))
    }

    /// A layer over every route added so far (e.g. a body limit); documents nothing.
    pub(crate) fn layer<L>(self, layer: L) -> DocumentedRouter
    where
        L: Layer<Route> + Clone + Send + Sync + 'static,
        L::Service: Service<Request> + Clone + Send + Sync + 'static,
        <L::Service as Service<Request>>::Response: IntoResponse + 'static,
        <L::Service as Service<Request>>::Error: Into<std::convert::Infallible> + 'static,
        <L::Service as Service<Request>>::Future: Send + 'static,
    {
        DocumentedRouter(self.0.layer(layer))
    }

    /// The router and its finished document.
    pub(crate) fn into_parts(self) -> (Router<AppState>, OpenApi) {
        let (router, paths) = self.0.split_for_parts();
        let mut document = ApiDoc::openapi();
        document.merge(paths);
        (router, finish(document))
    }
}

/// The document as OpenAPI wants it: axum's catch-all segment `{*name}` is `{name}` (whose
/// parameter may then hold a `/`; its description says so); a handler serving several methods
/// (pings: GET and POST) gets one operation id per method, since ids must be unique; and a GET
/// documents no request body.
fn finish(mut document: OpenApi) -> OpenApi {
    let paths = std::mem::take(&mut document.paths.paths);
    document.paths.paths = paths
        .into_iter()
        .map(|(path, mut item)| {
            let mut operations = [
                ("get", &mut item.get),
                ("put", &mut item.put),
                ("post", &mut item.post),
                ("delete", &mut item.delete),
                ("options", &mut item.options),
                ("head", &mut item.head),
                ("patch", &mut item.patch),
                ("trace", &mut item.trace),
            ];
            let ids: Vec<Option<String>> = operations
                .iter()
                .filter_map(|(_, operation)| operation.as_ref())
                .map(|operation| operation.operation_id.clone())
                .collect();
            for (method, operation) in &mut operations {
                let Some(operation) = operation.as_mut() else {
                    continue;
                };
                let shared = ids
                    .iter()
                    .filter(|id| **id == operation.operation_id)
                    .count()
                    > 1;
                if shared && let Some(id) = &mut operation.operation_id {
                    *id = format!("{id}_{method}");
                }
                if *method == "get" {
                    operation.request_body = None;
                }
            }
            (openapi_path(&path), item)
        })
        .collect();
    document
}

/// An axum route template in OpenAPI syntax.
pub(crate) fn openapi_path(axum_path: &str) -> String {
    axum_path.replace("{*", "{")
}

/// The document, serialized once when the router is built.
#[derive(Clone)]
pub(crate) struct OpenApiJson(Bytes);

impl OpenApiJson {
    pub(crate) fn new(document: &OpenApi) -> OpenApiJson {
        // Serializing a tree of plain strings, maps and numbers cannot fail.
        OpenApiJson(Bytes::from(
            serde_json::to_vec(document).unwrap_or_default(),
        ))
    }
}

/// `GET /api/v1/openapi.json`: this document; no token needed.
#[utoipa::path(
    get,
    path = "/api/v1/openapi.json",
    tag = "meta",
    operation_id = "openapi",
    summary = "This OpenAPI 3.1 document",
    responses(
        (status = 200, description = "The OpenAPI document", content_type = "application/json", body = Object),
    )
)]
pub(crate) async fn openapi_json(Extension(document): Extension<OpenApiJson>) -> Response {
    ([(CONTENT_TYPE, "application/json")], document.0).into_response()
}

#[cfg(test)]
mod tests;
