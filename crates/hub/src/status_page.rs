//! The public status page, when the config has `[status_page]`: `GET /status` (server-rendered
//! HTML that refreshes itself, no script) and `GET /status.json`, both without sign-in. They
//! show only the listed checks, and of each only its name, status and 30-day uptime (summaries
//! may tell internals). Without `[status_page]` both answer the hub's ordinary 404.

use axum::extract::State;
use axum::http::header::{CACHE_CONTROL, CONTENT_TYPE};
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde::Serialize;
use warden_core::config::StatusPageConfig;

use crate::AppState;
use crate::badge::{escape_markup, format_percent};
use crate::error::ApiError;

/// The same policy as the web UI's pages (`ui::CSP`); a whole-system test compares the two.
const CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
                   connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

/// How far back the uptime goes.
const UPTIME_WINDOW_MS: i64 = 30 * 86_400_000;

/// The status page's routes (public, not part of the documented API).
pub(crate) fn router() -> Router<AppState> {
    Router::new()
        .route("/status", get(page))
        .route("/status.json", get(json))
}

/// One check on the page.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub(crate) struct Entry {
    name: String,
    /// `ok`, `warn`, `crit`, `unknown` or `pending` (not run yet).
    status: &'static str,
    /// Share of the last 30 days' runs that were ok or warn, rounded down to two decimals;
    /// null without runs.
    uptime_30d_percent: Option<f64>,
}

#[derive(Debug, Serialize)]
pub(crate) struct StatusPageBody {
    title: String,
    /// When this was read (ms since epoch).
    generated_at: i64,
    checks: Vec<Entry>,
}

fn status_name(status: Option<&str>) -> &'static str {
    match status {
        Some("ok") => "ok",
        Some("warn") => "warn",
        Some("crit") => "crit",
        Some(_) => "unknown",
        None => "pending",
    }
}

async fn read(state: &AppState, config: &StatusPageConfig) -> Result<StatusPageBody, ApiError> {
    let names = config.checks.clone();
    let to = warden_store::now_ms();
    let from = to - UPTIME_WINDOW_MS;
    let checks = state
        .store
        .read(move |conn| {
            let mut entries = Vec::with_capacity(names.len());
            for name in names {
                let Some(row) = warden_store::checks::get_by_name(conn, &name)? else {
                    entries.push(Entry {
                        name,
                        status: "pending",
                        uptime_30d_percent: None,
                    });
                    continue;
                };
                let (runs, up) = warden_store::checks::uptime(conn, row.id, from, to)?;
                let percent = (runs > 0).then(|| 100.0 * up as f64 / runs as f64);
                entries.push(Entry {
                    name,
                    status: status_name(row.status.as_deref()),
                    uptime_30d_percent: percent.map(|p| (p * 100.0).floor() / 100.0),
                });
            }
            Ok(entries)
        })
        .await?;
    Ok(StatusPageBody {
        title: config.title.clone(),
        generated_at: to,
        checks,
    })
}

/// The hub's ordinary 404, as for a path it does not serve.
fn not_found() -> Response {
    ApiError::not_found("no such endpoint").into_response()
}

async fn json(State(state): State<AppState>) -> Response {
    let Some(config) = state.status_page.clone() else {
        return not_found();
    };
    match read(&state, &config).await {
        Ok(body) => {
            let mut response = Json(body).into_response();
            response
                .headers_mut()
                .insert(CACHE_CONTROL, HeaderValue::from_static("no-cache"));
            response
        }
        Err(error) => error.into_response(),
    }
}

async fn page(State(state): State<AppState>) -> Response {
    let Some(config) = state.status_page.clone() else {
        return not_found();
    };
    match read(&state, &config).await {
        Ok(body) => html(&body),
        Err(error) => error.into_response(),
    }
}

/// One line over the table: the worst of the statuses, in words.
fn overall(checks: &[Entry]) -> (&'static str, &'static str) {
    let any = |wanted: &[&str]| checks.iter().any(|entry| wanted.contains(&entry.status));
    if any(&["crit", "unknown"]) {
        ("crit", "Some checks are failing")
    } else if any(&["warn"]) {
        ("warn", "Some checks are degraded")
    } else if any(&["pending"]) {
        ("pending", "Waiting for the first results")
    } else {
        ("ok", "All checks are ok")
    }
}

/// The page: title, the overall state, and a table of name, status (text and colour) and
/// uptime. It reloads itself every 30 s; it links nowhere.
pub(crate) fn render(body: &StatusPageBody) -> String {
    let title = escape_markup(&body.title);
    let rows: String = body
        .checks
        .iter()
        .map(|entry| {
            let uptime = entry
                .uptime_30d_percent
                .map(|percent| format!("{}%", format_percent(percent)))
                .unwrap_or_else(|| "no data".to_string());
            format!(
                "<tr><td><span class=\"status status-{status}\">{status}</span></td>\
                 <td class=\"check-name\">{name}</td><td>{uptime}</td></tr>",
                status = entry.status,
                name = escape_markup(&entry.name),
            )
        })
        .collect();
    let (overall_status, overall_text) = overall(&body.checks);
    let updated = jiff::Timestamp::from_millisecond(body.generated_at)
        .map(|at| at.strftime("%Y-%m-%d %H:%M:%S UTC").to_string())
        .unwrap_or_default();
    format!(
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <meta http-equiv=\"refresh\" content=\"30\">\
         <title>{title}</title><link rel=\"stylesheet\" href=\"/ui/assets/style.css\"></head>\
         <body><main id=\"main\"><h1>{title}</h1>\
         <p id=\"overall\"><span class=\"status status-{overall_status}\">{overall_status}</span> \
         {overall_text}</p>\
         <table id=\"checks\" class=\"checks\"><thead><tr><th>Status</th><th>Check</th>\
         <th>Uptime (30 days)</th></tr></thead><tbody>{rows}</tbody></table>\
         <p class=\"summary\">Updated {updated}; this page reloads every 30 seconds.</p>\
         </main></body></html>\n"
    )
}

fn html(body: &StatusPageBody) -> Response {
    let mut response = (StatusCode::OK, render(body)).into_response();
    let headers = response.headers_mut();
    headers.insert(
        CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    headers.insert("content-security-policy", HeaderValue::from_static(CSP));
    headers.insert("x-frame-options", HeaderValue::from_static("DENY"));
    headers.insert("referrer-policy", HeaderValue::from_static("same-origin"));
    response
}

#[cfg(test)]
mod tests {
    use expect_test::expect;

    use super::*;

    fn entry(name: &str, status: &'static str, uptime: Option<f64>) -> Entry {
        Entry {
            name: name.to_string(),
            status,
            uptime_30d_percent: uptime,
        }
    }

    #[test]
    fn the_page_shows_name_status_and_uptime_escaped() {
        let body = StatusPageBody {
            title: "Acme <status>".to_string(),
            generated_at: 0,
            checks: vec![
                entry("web", "ok", Some(99.95)),
                entry("db&<x>", "crit", Some(50.0)),
                entry("new", "pending", None),
            ],
        };
        expect![[r#"
            <!doctype html>
            <html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1"><meta http-equiv="refresh" content="30"><title>Acme &lt;status&gt;</title><link rel="stylesheet" href="/ui/assets/style.css"></head><body><main id="main"><h1>Acme &lt;status&gt;</h1><p id="overall"><span class="status status-crit">crit</span> Some checks are failing</p><table id="checks" class="checks"><thead><tr><th>Status</th><th>Check</th><th>Uptime (30 days)</th></tr></thead><tbody><tr><td><span class="status status-ok">ok</span></td><td class="check-name">web</td><td>99.95%</td></tr><tr><td><span class="status status-crit">crit</span></td><td class="check-name">db&amp;&lt;x&gt;</td><td>50%</td></tr><tr><td><span class="status status-pending">pending</span></td><td class="check-name">new</td><td>no data</td></tr></tbody></table><p class="summary">Updated 1970-01-01 00:00:00 UTC; this page reloads every 30 seconds.</p></main></body></html>
        "#]]
        .assert_eq(&render(&body));
    }

    #[test]
    fn the_overall_line_is_the_worst_status() {
        let of = |statuses: &[&'static str]| {
            let checks: Vec<Entry> = statuses.iter().map(|s| entry("c", s, None)).collect();
            overall(&checks).1
        };
        assert_eq!(of(&["ok", "ok"]), "All checks are ok");
        assert_eq!(of(&[]), "All checks are ok");
        assert_eq!(of(&["ok", "pending"]), "Waiting for the first results");
        assert_eq!(of(&["warn", "pending"]), "Some checks are degraded");
        assert_eq!(of(&["warn", "unknown", "ok"]), "Some checks are failing");
    }
}
