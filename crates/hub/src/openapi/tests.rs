//! The OpenAPI document: its shape (3.1, every operation's errors and security, resolvable
//! references, declared path parameters) and that every documented operation reaches the route
//! it names in the real router (routes cannot be undocumented by construction: see the module).

use std::collections::{BTreeMap, BTreeSet};

use axum::body::Body;
use axum::extract::{MatchedPath, Request};
use axum::http::{HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::Response;
use http_body_util::BodyExt;
use serde_json::Value;
use tower_service::Service;
use warden_core::config::parse_config;

use crate::{Hub, HubOptions};

/// Operations anyone may call: no security requirement.
const OPEN: &[&str] = &[
    "health",
    "openapi",
    "ping_get",
    "ping_post",
    "ping_action_get",
    "ping_action_post",
];
/// Operations whose handler cannot fail (no error response to document).
const INFALLIBLE: &[&str] = &["health", "openapi"];
/// healthchecks.io-compatible endpoints: their errors are plain text, like their successes.
const TEXT_ERRORS: &[&str] = &[
    "ping_get",
    "ping_post",
    "ping_action_get",
    "ping_action_post",
];
const ROLES: &[&str] = &["admin", "operator", "viewer", "agent", "ping"];
const METHODS: &[&str] = &[
    "get", "put", "post", "delete", "options", "head", "patch", "trace",
];

fn document() -> Value {
    let (_, document) = crate::api::routes().into_parts();
    serde_json::to_value(&document).unwrap_or_else(|error| panic!("serialize: {error}"))
}

/// (path, method, operation) for every operation of the document.
fn operations(document: &Value) -> Vec<(String, String, Value)> {
    let mut found = Vec::new();
    for (path, item) in document["paths"].as_object().into_iter().flatten() {
        for (method, operation) in item.as_object().into_iter().flatten() {
            assert!(
                METHODS.contains(&method.as_str()),
                "{path}: `{method}` is not a method"
            );
            found.push((path.clone(), method.clone(), operation.clone()));
        }
    }
    found
}

fn operation_id(operation: &Value) -> &str {
    operation["operationId"].as_str().unwrap_or_default()
}

#[test]
fn document_is_openapi_3_1_with_the_error_schema() {
    let document = document();
    assert_eq!(document["openapi"], "3.1.0");
    assert_eq!(document["info"]["title"], "warden hub API");
    assert_eq!(document["info"]["version"], env!("CARGO_PKG_VERSION"));
    let schemas = &document["components"]["schemas"];
    assert_eq!(
        schemas["ErrorBody"]["properties"]["error"]["$ref"],
        "#/components/schemas/ErrorDetail"
    );
    assert_eq!(
        schemas["ErrorDetail"]["properties"]["code"]["$ref"],
        "#/components/schemas/ErrorCode"
    );
    let codes: Vec<&str> = schemas["ErrorCode"]["enum"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .collect();
    assert_eq!(
        codes,
        [
            "bad_request",
            "unauthorized",
            "forbidden",
            "not_found",
            "conflict",
            "payload_too_large",
            "internal",
            "unavailable"
        ]
    );
    let schemes = &document["components"]["securitySchemes"];
    assert_eq!(schemes["bearer"]["type"], "http");
    assert_eq!(schemes["bearer"]["scheme"], "bearer");
    assert_eq!(schemes["query_token"]["in"], "query");
}

/// The exact list, so adding or removing an endpoint is a visible change here too.
#[test]
fn document_lists_every_operation() {
    let listed: Vec<String> = operations(&document())
        .iter()
        .map(|(path, method, _)| format!("{} {path}", method.to_uppercase()))
        .collect();
    expect_test::expect![[r#"
        GET /api/v1/alerting
        GET /api/v1/checks
        GET /api/v1/checks/{name}
        POST /api/v1/checks/{name}/run
        GET /api/v1/checks/{name}/uptime
        GET /api/v1/events
        GET /api/v1/health
        GET /api/v1/incidents
        GET /api/v1/incidents/{id}
        POST /api/v1/incidents/{id}/ack
        GET /api/v1/notifiers
        POST /api/v1/notifiers/{name}/test
        GET /api/v1/openapi.json
        POST /api/v1/queue/lease
        POST /api/v1/queue/runs
        GET /api/v1/queue/runs/{id}
        POST /api/v1/queue/runs/{id}/cancel
        POST /api/v1/queue/runs/{id}/complete
        POST /api/v1/queue/runs/{id}/fail
        POST /api/v1/queue/runs/{id}/heartbeat
        GET /api/v1/runs
        GET /api/v1/runs/{id}
        POST /api/v1/runs/{id}/cancel
        GET /api/v1/runs/{id}/output
        GET /api/v1/series
        GET /api/v1/series/{name}
        GET /api/v1/sessions
        DELETE /api/v1/sessions/{id}
        GET /api/v1/silences
        POST /api/v1/silences
        DELETE /api/v1/silences/{id}
        GET /api/v1/tokens
        POST /api/v1/tokens
        DELETE /api/v1/tokens/{id}
        GET /api/v1/users
        POST /api/v1/users
        DELETE /api/v1/users/{name}
        GET /metrics
        GET /ping/{key}
        POST /ping/{key}
        GET /ping/{key}/{action}
        POST /ping/{key}/{action}
    "#]]
    .assert_eq(&(listed.join("\n") + "\n"));
}

#[test]
fn every_operation_has_a_unique_id_a_summary_and_a_tag() {
    let document = document();
    let mut ids = BTreeSet::new();
    let tags: BTreeSet<&str> = document["tags"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|tag| tag["name"].as_str())
        .collect();
    for (path, method, operation) in operations(&document) {
        let id = operation_id(&operation);
        assert!(!id.is_empty(), "{method} {path}: no operationId");
        assert!(
            ids.insert(id.to_string()),
            "{method} {path}: operationId `{id}` repeated"
        );
        assert!(
            operation["summary"].as_str().is_some_and(|s| !s.is_empty()),
            "{method} {path}: no summary"
        );
        let operation_tags = operation["tags"].as_array().cloned().unwrap_or_default();
        assert!(!operation_tags.is_empty(), "{method} {path}: no tag");
        for tag in operation_tags {
            assert!(
                tags.contains(tag.as_str().unwrap_or_default()),
                "{method} {path}: tag {tag} is not declared"
            );
        }
    }
}

#[test]
fn every_operation_documents_its_errors_with_the_error_schema() {
    for (path, method, operation) in operations(&document()) {
        let id = operation_id(&operation);
        let responses = operation["responses"]
            .as_object()
            .unwrap_or_else(|| panic!("{method} {path}: no responses"));
        assert!(
            responses
                .keys()
                .any(|status| status.starts_with('2') || status == "101"),
            "{method} {path}: no success response"
        );
        let errors: Vec<(&String, &Value)> = responses
            .iter()
            .filter(|(status, _)| status.starts_with('4') || status.starts_with('5'))
            .collect();
        if INFALLIBLE.contains(&id) {
            assert!(
                errors.is_empty(),
                "{id}: listed as infallible but documents errors"
            );
            continue;
        }
        assert!(!errors.is_empty(), "{method} {path}: no error response");
        for (status, response) in errors {
            assert!(
                response["description"]
                    .as_str()
                    .is_some_and(|d| !d.is_empty()),
                "{method} {path} {status}: no description"
            );
            let content = response["content"]
                .as_object()
                .unwrap_or_else(|| panic!("{method} {path} {status}: no content"));
            if TEXT_ERRORS.contains(&id) {
                assert!(
                    content.contains_key("text/plain"),
                    "{id} {status}: not text"
                );
                continue;
            }
            assert_eq!(
                content.keys().collect::<Vec<_>>(),
                ["application/json"],
                "{method} {path} {status}"
            );
            assert_eq!(
                content["application/json"]["schema"]["$ref"], "#/components/schemas/ErrorBody",
                "{method} {path} {status}"
            );
        }
    }
}

#[test]
fn secured_operations_declare_bearer_roles_and_their_auth_errors() {
    let document = document();
    let schemes = document["components"]["securitySchemes"]
        .as_object()
        .cloned()
        .unwrap_or_default();
    for (path, method, operation) in operations(&document) {
        let id = operation_id(&operation);
        let security = operation["security"].as_array().cloned();
        if OPEN.contains(&id) {
            assert_eq!(security, None, "{id} is open: it must declare no security");
            continue;
        }
        let security = security.unwrap_or_else(|| panic!("{method} {path}: no security"));
        let mut bearer = false;
        for requirement in &security {
            for (scheme, roles) in requirement.as_object().into_iter().flatten() {
                assert!(
                    schemes.contains_key(scheme),
                    "{method} {path}: unknown scheme {scheme}"
                );
                bearer |= scheme == "bearer";
                let roles = roles.as_array().cloned().unwrap_or_default();
                assert_eq!(roles.len(), 1, "{method} {path}: name the one role needed");
                assert!(
                    roles
                        .iter()
                        .all(|role| ROLES.contains(&role.as_str().unwrap_or_default())),
                    "{method} {path}: unknown role in {roles:?}"
                );
            }
        }
        assert!(bearer, "{method} {path}: no bearer requirement");
        // `/metrics` is open when `metrics_public`: its list holds the empty requirement too.
        let optional = security
            .iter()
            .any(|r| r.as_object().is_some_and(|o| o.is_empty()));
        assert_eq!(
            optional,
            id == "metrics",
            "{method} {path}: optional security"
        );
        for status in ["401", "403"] {
            assert!(
                operation["responses"][status].is_object(),
                "{method} {path}: a secured operation must document {status}"
            );
        }
    }
}

#[test]
fn path_parameters_match_the_template() {
    for (path, method, operation) in operations(&document()) {
        let in_template: BTreeSet<&str> = path
            .split('/')
            .filter_map(|segment| segment.strip_prefix('{')?.strip_suffix('}'))
            .collect();
        let declared: BTreeSet<&str> = operation["parameters"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|parameter| parameter["in"] == "path")
            .map(|parameter| {
                assert_eq!(parameter["required"], true, "{method} {path}: {parameter}");
                parameter["name"].as_str().unwrap_or_default()
            })
            .collect();
        assert_eq!(in_template, declared, "{method} {path}");
        assert!(
            !path.contains('*'),
            "{path}: axum syntax leaked into the document"
        );
    }
}

/// Every `$ref` in the document points at a schema it defines.
#[test]
fn every_reference_resolves() {
    fn walk(value: &Value, schemas: &serde_json::Map<String, Value>, seen: &mut usize) {
        match value {
            Value::Object(object) => {
                if let Some(reference) = object.get("$ref").and_then(Value::as_str) {
                    let name = reference
                        .strip_prefix("#/components/schemas/")
                        .unwrap_or_else(|| panic!("unexpected reference {reference}"));
                    assert!(schemas.contains_key(name), "dangling reference {reference}");
                    *seen += 1;
                }
                object.values().for_each(|value| walk(value, schemas, seen));
            }
            Value::Array(items) => items.iter().for_each(|value| walk(value, schemas, seen)),
            _ => {}
        }
    }
    let document = document();
    let schemas = document["components"]["schemas"]
        .as_object()
        .cloned()
        .unwrap_or_default();
    let mut seen = 0;
    walk(&document, &schemas, &mut seen);
    assert!(seen > 50, "only {seen} references");
}

/// Request bodies refuse unknown fields (`additionalProperties: false`), as the handlers do.
#[test]
fn json_request_bodies_refuse_unknown_fields() {
    let document = document();
    let schemas = &document["components"]["schemas"];
    let mut bodies = 0;
    for (path, method, operation) in operations(&document) {
        let Some(schema) =
            operation["requestBody"]["content"]["application/json"]["schema"].as_object()
        else {
            continue;
        };
        let name = schema
            .get("$ref")
            .or_else(|| {
                // An optional body: `oneOf: [null, $ref]`.
                schema
                    .get("oneOf")?
                    .as_array()?
                    .iter()
                    .find_map(|s| s.get("$ref"))
            })
            .and_then(Value::as_str)
            .and_then(|r| r.strip_prefix("#/components/schemas/"))
            .unwrap_or_else(|| panic!("{method} {path}: body is not a named schema"));
        assert_eq!(
            schemas[name]["additionalProperties"], false,
            "{method} {path}: {name} must refuse unknown fields"
        );
        bodies += 1;
    }
    assert_eq!(bodies, 9);
}

/// A hub (store, state) in a temporary folder; nothing is served.
async fn test_hub(dir: &std::path::Path) -> Hub {
    let text = format!(
        "[hub]\nlisten = \"127.0.0.1:0\"\ndata = \"{}\"\n\n[[check]]\nname = \"x\"\nkind = \"noop\"\nevery = \"1h\"\n",
        dir.join("data").display()
    );
    let config = parse_config("warden.toml", &text, &|_| None)
        .unwrap_or_else(|errors| panic!("config: {errors}"));
    Hub::start(HubOptions::new(config))
        .await
        .unwrap_or_else(|error| panic!("hub: {error}"))
}

/// Tells which route template served the request (none: the fallback).
async fn record_matched_path(request: Request, next: Next) -> Response {
    let matched = request
        .extensions()
        .get::<MatchedPath>()
        .map(|path| path.as_str().to_string());
    let mut response = next.run(request).await;
    if let Some(matched) = matched.and_then(|m| HeaderValue::from_str(&m).ok()) {
        response.headers_mut().insert("x-matched-path", matched);
    }
    response
}

/// A concrete path for a template: a plausible value for each parameter.
fn concrete(template: &str) -> String {
    template
        .replace("{id}", "1")
        .replace("{key}", "no-such-key")
        .replace("{action}", "start")
        .replace("/series/{name}", "/series/a/b")
        .replace("{name}", "x")
}

/// The other direction of "no drift": every documented operation is served by the route it
/// names (same template, same method), and no method the document omits is served on a path.
#[tokio::test]
async fn every_documented_operation_reaches_its_route() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("temp dir: {e}"));
    let hub = test_hub(dir.path()).await;
    let mut router =
        crate::api::router(hub.state.clone()).layer(axum::middleware::from_fn(record_matched_path));
    let document = document();
    let mut methods_by_path: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for (path, method, _) in operations(&document) {
        methods_by_path.entry(path).or_default().insert(method);
    }
    for (path, methods) in &methods_by_path {
        let uri = concrete(path);
        for method in ["get", "post", "put", "delete", "patch"] {
            let request = Request::builder()
                .method(Method::from_bytes(method.to_uppercase().as_bytes()).unwrap_or_default())
                .uri(&uri)
                .body(Body::empty())
                .unwrap_or_else(|e| panic!("request: {e}"));
            let response = router
                .call(request)
                .await
                .unwrap_or_else(|never| match never {});
            let status = response.status();
            if methods.contains(method) {
                let matched = response
                    .headers()
                    .get("x-matched-path")
                    .and_then(|v| v.to_str().ok())
                    .map(crate::openapi::openapi_path);
                assert_eq!(
                    matched.as_deref(),
                    Some(path.as_str()),
                    "{method} {uri}: documented as {path}, served by {matched:?} ({status})"
                );
                assert_ne!(status, StatusCode::METHOD_NOT_ALLOWED, "{method} {uri}");
            } else {
                assert_eq!(
                    status,
                    StatusCode::METHOD_NOT_ALLOWED,
                    "{method} {uri}: served but not documented"
                );
            }
        }
    }
    // Anything else is the fallback's JSON 404.
    let response = router
        .call(
            Request::get("/api/v1/nothing-here")
                .body(Body::empty())
                .unwrap_or_default(),
        )
        .await
        .unwrap_or_else(|never| match never {});
    assert_eq!(response.status(), StatusCode::NOT_FOUND);
    assert!(response.headers().get("x-matched-path").is_none());
}

/// Served without a token, byte for byte the document the router was built with.
#[tokio::test]
async fn the_document_is_served_without_a_token() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("temp dir: {e}"));
    let hub = test_hub(dir.path()).await;
    let mut router = crate::api::router(hub.state.clone());
    let response = router
        .call(
            Request::get("/api/v1/openapi.json")
                .body(Body::empty())
                .unwrap_or_default(),
        )
        .await
        .unwrap_or_else(|never| match never {});
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.headers()["content-type"], "application/json");
    let bytes = response
        .into_body()
        .collect()
        .await
        .unwrap_or_else(|e| panic!("body: {e}"))
        .to_bytes();
    let served: Value = serde_json::from_slice(&bytes).unwrap_or_else(|e| panic!("json: {e}"));
    assert_eq!(served, document());
}
