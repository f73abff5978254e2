//! Status badges, served without a token for the checks with `badge = true`:
//! `GET /badge/{check}.svg` (the check's status) and `GET /badge/{check}/uptime/{window}.svg`
//! (its uptime over `24h`, `7d` or `30d`), as shields.io-style flat SVGs that always say the
//! status in text beside its colour. Any other check, configured or not, answers the same 404
//! before the store is asked, so badges do not tell which checks exist.

use axum::Router;
use axum::extract::rejection::PathRejection;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::http::header::{
    CACHE_CONTROL, CONTENT_SECURITY_POLICY, CONTENT_TYPE, X_CONTENT_TYPE_OPTIONS,
};
use axum::response::{IntoResponse, Response};
use axum::routing::get;

use crate::AppState;
use crate::error::ApiError;

/// The badge routes (public, not part of the documented API).
pub(crate) fn router() -> Router<AppState> {
    Router::new()
        .route("/badge/{file}", get(status_badge))
        .route("/badge/{check}/uptime/{file}", get(uptime_badge))
}

/// What a badge shows: `label | message`, the message on `colour`.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Badge {
    pub(crate) label: String,
    pub(crate) message: String,
    pub(crate) colour: &'static str,
}

const GREY: &str = "#9f9f9f";

/// A check's latest status (`None`: not run yet) as a badge message and colour.
pub(crate) fn status_badge_of(name: &str, status: Option<&str>) -> Badge {
    let (message, colour) = match status {
        Some("ok") => ("ok", "#4c1"),
        Some("warn") => ("warn", "#dfb317"),
        Some("crit") => ("crit", "#e05d44"),
        Some(_) => ("unknown", "#6e40c9"),
        None => ("pending", GREY),
    };
    Badge {
        label: name.to_string(),
        message: message.to_string(),
        colour,
    }
}

/// An uptime over a window as a badge; `None` when there were no runs.
pub(crate) fn uptime_badge_of(name: &str, window: &str, percent: Option<f64>) -> Badge {
    let label = format!("{name} uptime {window}");
    let Some(percent) = percent else {
        return Badge {
            label,
            message: "no data".to_string(),
            colour: GREY,
        };
    };
    let colour = if percent >= 99.9 {
        "#4c1"
    } else if percent >= 99.0 {
        "#97ca00"
    } else if percent >= 95.0 {
        "#dfb317"
    } else if percent >= 90.0 {
        "#fe7d37"
    } else {
        "#e05d44"
    };
    Badge {
        label,
        message: format!("{}%", format_percent(percent)),
        colour,
    }
}

/// A percentage rounded down to two decimals without trailing zeros, so only a perfect record
/// shows `100`.
pub(crate) fn format_percent(percent: f64) -> String {
    let floored = (percent.clamp(0.0, 100.0) * 100.0).floor() / 100.0;
    let text = format!("{floored:.2}");
    text.trim_end_matches('0').trim_end_matches('.').to_string()
}

/// Escapes text for XML and HTML content and attribute values: the UI's escaping, with control
/// characters (not allowed in XML 1.0 at all) replaced.
pub(crate) fn escape_markup(text: &str) -> String {
    let allowed: String = text
        .chars()
        .map(|c| {
            if c.is_control() && !matches!(c, '\t' | '\n' | '\r') {
                '\u{fffd}'
            } else {
                c
            }
        })
        .collect();
    crate::ui::escape(&allowed)
}

/// Roughly how wide `text` is in 11 px Verdana (what shields measures with), in pixels.
fn text_width(text: &str) -> f64 {
    text.chars()
        .map(|c| match c {
            'i' | 'j' | 'l' | '.' | ',' | ':' | ';' | '!' | '|' | '\'' | 'I' => 3.5,
            ' ' | 'f' | 'r' | 't' | '(' | ')' | '[' | ']' | '/' | '-' => 4.6,
            'm' | 'w' | 'M' | 'W' | '@' | '%' => 10.0,
            c if c.is_ascii_uppercase() => 7.5,
            c if c.is_ascii_digit() => 7.0,
            _ => 6.8,
        })
        .sum()
}

/// The badge as a flat, shields.io-style SVG.
pub(crate) fn render(badge: &Badge) -> String {
    let label_width = (text_width(&badge.label) + 10.0).ceil();
    let message_width = (text_width(&badge.message) + 10.0).ceil();
    let width = label_width + message_width;
    let label_x = label_width / 2.0;
    let message_x = label_width + message_width / 2.0;
    let label = escape_markup(&badge.label);
    let message = escape_markup(&badge.message);
    let colour = badge.colour;
    format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{width}\" height=\"20\" role=\"img\" \
         aria-label=\"{label}: {message}\"><title>{label}: {message}</title>\
         <linearGradient id=\"s\" x2=\"0\" y2=\"100%\"><stop offset=\"0\" stop-color=\"#bbb\" \
         stop-opacity=\".1\"/><stop offset=\"1\" stop-opacity=\".1\"/></linearGradient>\
         <clipPath id=\"r\"><rect width=\"{width}\" height=\"20\" rx=\"3\" fill=\"#fff\"/></clipPath>\
         <g clip-path=\"url(#r)\"><rect width=\"{label_width}\" height=\"20\" fill=\"#555\"/>\
         <rect x=\"{label_width}\" width=\"{message_width}\" height=\"20\" fill=\"{colour}\"/>\
         <rect width=\"{width}\" height=\"20\" fill=\"url(#s)\"/></g>\
         <g fill=\"#fff\" text-anchor=\"middle\" font-family=\"Verdana,Geneva,DejaVu Sans,sans-serif\" \
         font-size=\"11\">\
         <text x=\"{label_x}\" y=\"15\" fill=\"#010101\" fill-opacity=\".3\">{label}</text>\
         <text x=\"{label_x}\" y=\"14\">{label}</text>\
         <text x=\"{message_x}\" y=\"15\" fill=\"#010101\" fill-opacity=\".3\">{message}</text>\
         <text x=\"{message_x}\" y=\"14\">{message}</text></g></svg>\n"
    )
}

fn svg(badge: &Badge) -> Response {
    (
        [
            (CONTENT_TYPE, "image/svg+xml"),
            (CACHE_CONTROL, "no-cache"),
            (X_CONTENT_TYPE_OPTIONS, "nosniff"),
            // Opened on its own, the SVG may not load or run anything.
            (
                CONTENT_SECURITY_POLICY,
                "default-src 'none'; style-src 'unsafe-inline'",
            ),
        ],
        render(badge),
    )
        .into_response()
}

/// The one answer for every check without a badge, known or not.
fn no_such_badge() -> Response {
    (
        StatusCode::NOT_FOUND,
        [
            (CONTENT_TYPE, "text/plain; charset=utf-8"),
            (CACHE_CONTROL, "no-cache"),
        ],
        "no such badge\n",
    )
        .into_response()
}

/// The check a badge path names, when it has a badge (decided without the store).
fn badge_check<'a>(state: &AppState, name: &'a str) -> Option<&'a str> {
    state.badges.contains(name).then_some(name)
}

async fn status_badge(
    State(state): State<AppState>,
    file: Result<Path<String>, PathRejection>,
) -> Response {
    let Ok(Path(file)) = file else {
        return no_such_badge();
    };
    let Some(name) = file
        .strip_suffix(".svg")
        .and_then(|name| badge_check(&state, name))
    else {
        return no_such_badge();
    };
    let lookup = name.to_string();
    let found = state
        .store
        .read(move |conn| warden_store::checks::get_by_name(conn, &lookup))
        .await;
    match found {
        Ok(Some(row)) => svg(&status_badge_of(name, row.status.as_deref())),
        Ok(None) => no_such_badge(),
        Err(error) => ApiError::from(error).into_response(),
    }
}

/// The windows an uptime badge covers: name and milliseconds.
const WINDOWS: &[(&str, i64)] = &[
    ("24h", 86_400_000),
    ("7d", 7 * 86_400_000),
    ("30d", 30 * 86_400_000),
];

async fn uptime_badge(
    State(state): State<AppState>,
    path: Result<Path<(String, String)>, PathRejection>,
) -> Response {
    let Ok(Path((check, file))) = path else {
        return no_such_badge();
    };
    let window = file
        .strip_suffix(".svg")
        .and_then(|window| WINDOWS.iter().find(|(name, _)| *name == window));
    let (Some(name), Some(&(window, span))) = (badge_check(&state, &check), window) else {
        return no_such_badge();
    };
    let lookup = name.to_string();
    let to = warden_store::now_ms();
    let from = to - span;
    let found = state
        .store
        .read(move |conn| {
            let Some(row) = warden_store::checks::get_by_name(conn, &lookup)? else {
                return Ok(None);
            };
            warden_store::checks::uptime(conn, row.id, from, to).map(Some)
        })
        .await;
    match found {
        Ok(Some((runs, up))) => {
            let percent = (runs > 0).then(|| 100.0 * up as f64 / runs as f64);
            svg(&uptime_badge_of(name, window, percent))
        }
        Ok(None) => no_such_badge(),
        Err(error) => ApiError::from(error).into_response(),
    }
}

#[cfg(test)]
mod tests {
    use expect_test::expect;

    use super::*;

    #[test]
    fn each_status_has_its_text_and_colour() {
        let shown: Vec<String> = [
            Some("ok"),
            Some("warn"),
            Some("crit"),
            Some("unknown"),
            Some("something new"),
            None,
        ]
        .into_iter()
        .map(|status| {
            let badge = status_badge_of("web", status);
            format!("{status:?} -> {} {}", badge.message, badge.colour)
        })
        .collect();
        expect![[r##"
            Some("ok") -> ok #4c1
            Some("warn") -> warn #dfb317
            Some("crit") -> crit #e05d44
            Some("unknown") -> unknown #6e40c9
            Some("something new") -> unknown #6e40c9
            None -> pending #9f9f9f"##]]
        .assert_eq(&shown.join("\n"));
        // The status is in the SVG as text, not only as a colour.
        let svg = render(&status_badge_of("web", Some("crit")));
        assert!(svg.contains(">crit</text>"), "{svg}");
        assert!(svg.contains("fill=\"#e05d44\""), "{svg}");
        assert!(svg.contains("aria-label=\"web: crit\""), "{svg}");
    }

    #[test]
    fn a_badge_is_a_flat_svg() {
        expect![[r##"
            <svg xmlns="http://www.w3.org/2000/svg" width="58" height="20" role="img" aria-label="web: ok"><title>web: ok</title><linearGradient id="s" x2="0" y2="100%"><stop offset="0" stop-color="#bbb" stop-opacity=".1"/><stop offset="1" stop-opacity=".1"/></linearGradient><clipPath id="r"><rect width="58" height="20" rx="3" fill="#fff"/></clipPath><g clip-path="url(#r)"><rect width="34" height="20" fill="#555"/><rect x="34" width="24" height="20" fill="#4c1"/><rect width="58" height="20" fill="url(#s)"/></g><g fill="#fff" text-anchor="middle" font-family="Verdana,Geneva,DejaVu Sans,sans-serif" font-size="11"><text x="17" y="15" fill="#010101" fill-opacity=".3">web</text><text x="17" y="14">web</text><text x="46" y="15" fill="#010101" fill-opacity=".3">ok</text><text x="46" y="14">ok</text></g></svg>
        "##]]
        .assert_eq(&render(&status_badge_of("web", Some("ok"))));
    }

    #[test]
    fn names_are_escaped() {
        let svg = render(&status_badge_of(
            "<script>a&b\"c'd</script>\u{1}",
            Some("ok"),
        ));
        assert!(!svg.contains("<script>"), "{svg}");
        assert!(
            svg.contains(">&lt;script&gt;a&amp;b&quot;c&#39;d&lt;/script&gt;\u{fffd}</text>"),
            "{svg}"
        );
        assert!(
            svg.contains("aria-label=\"&lt;script&gt;a&amp;b&quot;c&#39;d"),
            "{svg}"
        );
        // Nothing of the name comes out unescaped.
        assert_eq!(
            svg.matches('<').count(),
            render(&status_badge_of("x", Some("ok")))
                .matches('<')
                .count()
        );
    }

    #[test]
    fn uptime_messages_and_colours() {
        let shown: Vec<String> = [
            Some(100.0),
            Some(99.999),
            Some(99.5),
            Some(97.0),
            Some(92.25),
            Some(12.0),
            Some(0.0),
            None,
        ]
        .into_iter()
        .map(|percent| {
            let badge = uptime_badge_of("web", "30d", percent);
            format!(
                "{percent:?} -> {} | {} {}",
                badge.label, badge.message, badge.colour
            )
        })
        .collect();
        expect![[r##"
            Some(100.0) -> web uptime 30d | 100% #4c1
            Some(99.999) -> web uptime 30d | 99.99% #4c1
            Some(99.5) -> web uptime 30d | 99.5% #97ca00
            Some(97.0) -> web uptime 30d | 97% #dfb317
            Some(92.25) -> web uptime 30d | 92.25% #fe7d37
            Some(12.0) -> web uptime 30d | 12% #e05d44
            Some(0.0) -> web uptime 30d | 0% #e05d44
            None -> web uptime 30d | no data #9f9f9f"##]]
        .assert_eq(&shown.join("\n"));
    }
}
