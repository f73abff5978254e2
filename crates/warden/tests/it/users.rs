//! Users with passwords, their web UI sessions, status badges and the public status page,
//! against the real binary: `warden users` through the API, sign-in through the form, sessions
//! listed and revoked over the API, badges and `/status` without a token.

use std::io::Write as _;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use reqwest::blocking::{Client as Http, RequestBuilder, Response};
use serde_json::{Value, json};

use crate::checks::wait_for;
use crate::harness::{Api, Hub, temp_dir, warden_bin};

/// `web` ok and `db` crit every second, both with badges and on the status page; `secret` has
/// neither.
const CONFIG: &str = r#"
[[check]]
name = "web"
kind = "exec"
every = "1s"
badge = true
command = ["sh", "-c", "echo 'OK - web fine'"]

[[check]]
name = "db"
kind = "exec"
every = "1s"
badge = true
command = ["sh", "-c", "echo 'CRITICAL - db internals here'; exit 2"]

[[check]]
name = "secret"
kind = "exec"
every = "1s"
command = ["sh", "-c", "echo 'OK - secret fine'"]

[status_page]
title = "Acme <status>"
checks = ["web", "db"]
"#;

const ALICE_PASSWORD: &str = "correct horse battery";

fn start_hub(dir: &Path) -> (Hub, String) {
    Hub::with_config(dir, CONFIG)
}

fn http() -> Http {
    Http::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap_or_else(|e| panic!("{e}"))
}

fn send(request: RequestBuilder) -> Response {
    request.send().unwrap_or_else(|e| panic!("{e}"))
}

fn header(response: &Response, name: &str) -> String {
    response
        .headers()
        .get(name)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string()
}

fn json_of(response: Response) -> (u16, Value) {
    let status = response.status().as_u16();
    (status, response.json().unwrap_or_default())
}

/// Runs `warden ARGS` with `stdin` as its standard input; returns (exit code, stdout, stderr).
fn warden_with_stdin(args: &[&str], stdin: &str) -> (Option<i32>, String, String) {
    let mut child = Command::new(warden_bin())
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("spawn warden: {e}"));
    if let Some(mut input) = child.stdin.take() {
        input
            .write_all(stdin.as_bytes())
            .unwrap_or_else(|e| panic!("stdin: {e}"));
    }
    let output = child
        .wait_with_output()
        .unwrap_or_else(|e| panic!("wait: {e}"));
    (
        output.status.code(),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

/// Posts the sign-in form with a user name and password; returns the response.
fn sign_in_as(http: &Http, url: &str, user: &str, password: &str) -> Response {
    send(http.post(format!("{url}/ui/sign-in")).form(&[
        ("username", user),
        ("password", password),
        ("next", "/"),
    ]))
}

/// Signs in and returns the cookie pair (`warden_session=...`) and the session's CSRF token.
fn signed_in(http: &Http, url: &str, user: &str, password: &str) -> (String, String) {
    let response = sign_in_as(http, url, user, password);
    assert_eq!(response.status().as_u16(), 303, "{user} signs in");
    assert_eq!(header(&response, "location"), "/");
    let cookie = header(&response, "set-cookie")
        .split(';')
        .next()
        .unwrap_or_default()
        .to_string();
    assert!(cookie.starts_with("warden_session="), "{cookie}");
    let (status, session) = json_of(send(
        http.get(format!("{url}/ui/session"))
            .header("cookie", &cookie),
    ));
    assert_eq!(status, 200, "{session}");
    let csrf = session["csrf"].as_str().unwrap_or_default().to_string();
    (cookie, csrf)
}

/// The ids of the sessions listed for a request.
fn session_ids(body: &Value) -> Vec<i64> {
    body["sessions"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|session| session["id"].as_i64())
        .collect()
}

#[test]
fn users_sign_in_with_passwords_and_sessions_are_listed_and_revocable() {
    let dir = temp_dir();
    let (hub, admin) = start_hub(dir.path());
    let url = hub.url.as_str();
    let http = http();
    let hub_args = ["--url", url, "--token", admin.as_str()];
    let users = |args: &[&str], stdin: &str| {
        let mut all = vec!["users"];
        all.extend_from_slice(args);
        all.extend_from_slice(&hub_args);
        warden_with_stdin(&all, stdin)
    };

    // Adding users: the password from stdin (flag, or stdin that is not a terminal).
    let (code, stdout, stderr) = users(
        &["add", "alice", "--role", "operator", "--password-stdin"],
        &format!("{ALICE_PASSWORD}\n"),
    );
    assert_eq!(code, Some(0), "{stdout}{stderr}");
    assert_eq!(stdout, "user alice (operator) added\n");
    let (code, stdout, stderr) = users(&["add", "bob", "--role", "viewer"], "bob's password\r\n");
    assert_eq!(code, Some(0), "{stdout}{stderr}");
    let (code, _, stderr) = users(
        &["add", "alice", "--role", "viewer", "--password-stdin"],
        "another password\n",
    );
    assert_eq!(code, Some(1), "{stderr}");
    assert!(stderr.contains("user `alice` exists"), "{stderr}");
    let (code, _, stderr) = users(
        &["add", "carol", "--role", "viewer", "--password-stdin"],
        "short\n",
    );
    assert_eq!(code, Some(1), "{stderr}");
    assert!(
        stderr.contains("password: must be at least 8 characters"),
        "{stderr}"
    );
    let (code, _, stderr) = users(
        &["add", "carol", "--role", "viewer", "--password-stdin"],
        "",
    );
    assert_eq!(code, Some(2), "an empty stdin is a usage error: {stderr}");
    let (code, stdout, stderr) = users(&["list", "--json"], "");
    assert_eq!(code, Some(0), "{stderr}");
    let listed: Value = serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("{e}: {stdout}"));
    let names: Vec<(&str, &str)> = listed["users"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|user| {
            (
                user["name"].as_str().unwrap_or_default(),
                user["role"].as_str().unwrap_or_default(),
            )
        })
        .collect();
    assert_eq!(names, [("alice", "operator"), ("bob", "viewer")]);
    assert!(
        !stdout.contains("argon2") && !stdout.contains("hash") && !stdout.contains("password"),
        "{stdout}"
    );
    let (code, stdout, _) = users(&["list"], "");
    assert_eq!(code, Some(0));
    assert!(stdout.starts_with("NAME"), "{stdout}");
    assert!(
        stdout.contains("alice") && stdout.contains("operator"),
        "{stdout}"
    );

    // The API names the bad field.
    let api = Api::new(url, &admin);
    for (body, field) in [
        (
            json!({"name": "has space", "role": "viewer", "password": "12345678"}),
            "name:",
        ),
        (
            json!({"name": "dave", "role": "agent", "password": "12345678"}),
            "role:",
        ),
        (
            json!({"name": "dave", "role": "viewer", "password": "1234567"}),
            "password:",
        ),
    ] {
        let (code, answer) = api
            .post("/api/v1/users", &body)
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(code, 400, "{answer}");
        let message = answer["error"]["message"].as_str().unwrap_or_default();
        assert!(message.starts_with(field), "{message}");
    }

    // Sign-in with a user: a wrong password and an unknown user look the same.
    let (alice_cookie, alice_csrf) = signed_in(&http, url, "alice", ALICE_PASSWORD);
    let (status, session) = json_of(send(
        http.get(format!("{url}/ui/session"))
            .header("cookie", &alice_cookie),
    ));
    assert_eq!((status, session["role"].as_str()), (200, Some("operator")));
    let wrong_password = sign_in_as(&http, url, "alice", "correct horse batterY");
    let unknown_user = sign_in_as(&http, url, "mallory", ALICE_PASSWORD);
    assert_eq!(wrong_password.status().as_u16(), 401);
    assert_eq!(unknown_user.status().as_u16(), 401);
    assert!(header(&wrong_password, "set-cookie").is_empty());
    let wrong_password = wrong_password.text().unwrap_or_default();
    let unknown_user = unknown_user.text().unwrap_or_default();
    assert!(
        wrong_password.contains("wrong user name or password"),
        "{wrong_password}"
    );
    assert_eq!(wrong_password, unknown_user, "the same page for both");
    // The cookie works on the API like a token session's: reads, and writes with CSRF.
    let run = http
        .post(format!("{url}/api/v1/checks/web/run"))
        .header("cookie", &alice_cookie)
        .header("x-csrf-token", &alice_csrf);
    assert_eq!(send(run).status().as_u16(), 201, "an operator runs a check");

    // Sessions: the admin sees all, a user their own; never a secret.
    let (bob_cookie, bob_csrf) = signed_in(&http, url, "bob", "bob's password");
    let (status, all) = json_of(send(
        http.get(format!("{url}/api/v1/sessions"))
            .bearer_auth(&admin),
    ));
    assert_eq!(status, 200, "{all}");
    let sessions = all["sessions"].as_array().cloned().unwrap_or_default();
    let alice_session = sessions
        .iter()
        .find(|session| session["user"] == "alice")
        .unwrap_or_else(|| panic!("alice's session in {all}"));
    assert_eq!(alice_session["kind"], "user");
    assert_eq!(alice_session["role"], "operator");
    for field in ["id", "created_at", "last_seen_at", "expires_at"] {
        assert!(alice_session[field].is_i64(), "{field} in {alice_session}");
    }
    let listed = all.to_string();
    assert!(
        !listed.contains(&alice_csrf) && !listed.contains("csrf") && !listed.contains("hash"),
        "{listed}"
    );
    let alice_id = alice_session["id"].as_i64().unwrap_or_default();
    let (_, own) = json_of(send(
        http.get(format!("{url}/api/v1/sessions"))
            .header("cookie", &bob_cookie),
    ));
    let bob_ids = session_ids(&own);
    assert_eq!(bob_ids.len(), 1, "bob sees only his own: {own}");
    assert_eq!(own["sessions"][0]["user"], "bob");
    // Bob can neither end alice's session (it looks missing) nor add users.
    let (status, body) = json_of(send(
        http.delete(format!("{url}/api/v1/sessions/{alice_id}"))
            .header("cookie", &bob_cookie)
            .header("x-csrf-token", &bob_csrf),
    ));
    assert_eq!(status, 404, "{body}");
    let (status, body) = json_of(send(
        http.post(format!("{url}/api/v1/users"))
            .header("cookie", &bob_cookie)
            .header("x-csrf-token", &bob_csrf)
            .json(&json!({"name": "eve", "role": "admin", "password": "12345678"})),
    ));
    assert_eq!(status, 403, "a viewer cannot add users: {body}");
    let (code, created) = api
        .post(
            "/api/v1/tokens",
            &json!({"name": "reader", "role": "viewer"}),
        )
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(code, 201, "{created}");
    let viewer = Api::new(url, created["token"].as_str().unwrap_or_default());
    let (code, body) = viewer
        .post(
            "/api/v1/users",
            &json!({"name": "eve", "role": "admin", "password": "12345678"}),
        )
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(code, 403, "{body}");
    let (code, body) = viewer
        .get("/api/v1/sessions")
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!((code, session_ids(&body)), (200, vec![]), "{body}");

    // The admin ends alice's session: her cookie is refused from then on.
    let (status, body) = json_of(send(
        http.delete(format!("{url}/api/v1/sessions/{alice_id}"))
            .bearer_auth(&admin),
    ));
    assert_eq!(status, 200, "{body}");
    assert!(body["revoked_at"].is_i64(), "{body}");
    let refused = http
        .get(format!("{url}/api/v1/checks"))
        .header("cookie", &alice_cookie);
    assert_eq!(send(refused).status().as_u16(), 401);
    let (status, body) = json_of(send(
        http.delete(format!("{url}/api/v1/sessions/{alice_id}"))
            .bearer_auth(&admin),
    ));
    assert_eq!(status, 404, "already ended: {body}");
    // Bob ends his own session.
    let bob_id = bob_ids[0];
    let (status, body) = json_of(send(
        http.delete(format!("{url}/api/v1/sessions/{bob_id}"))
            .header("cookie", &bob_cookie)
            .header("x-csrf-token", &bob_csrf),
    ));
    assert_eq!(status, 200, "{body}");
    let refused = http
        .get(format!("{url}/api/v1/checks"))
        .header("cookie", &bob_cookie);
    assert_eq!(send(refused).status().as_u16(), 401);

    // Removing a user ends their sessions and their sign-in.
    let (alice_cookie, _) = signed_in(&http, url, "alice", ALICE_PASSWORD);
    let (code, stdout, stderr) = users(&["remove", "alice"], "");
    assert_eq!(code, Some(0), "{stderr}");
    assert_eq!(stdout, "user alice removed; 1 session revoked\n");
    let refused = http
        .get(format!("{url}/api/v1/checks"))
        .header("cookie", &alice_cookie);
    assert_eq!(send(refused).status().as_u16(), 401);
    assert_eq!(
        sign_in_as(&http, url, "alice", ALICE_PASSWORD)
            .status()
            .as_u16(),
        401
    );
    let (code, _, stderr) = users(&["remove", "alice"], "");
    assert_eq!(code, Some(1), "{stderr}");
    assert!(stderr.contains("user `alice` not found"), "{stderr}");
    // Token sign-in still works beside users.
    let response = send(
        http.post(format!("{url}/ui/sign-in"))
            .form(&[("token", admin.as_str())]),
    );
    assert_eq!(response.status().as_u16(), 303);
}

/// GETs `path` without any credentials; returns (status, headers' content type, body).
fn public_get(http: &Http, url: &str, path: &str) -> (u16, String, String, String) {
    let response = send(http.get(format!("{url}{path}")));
    let status = response.status().as_u16();
    let content_type = header(&response, "content-type");
    let cache = header(&response, "cache-control");
    (
        status,
        content_type,
        cache,
        response.text().unwrap_or_default(),
    )
}

#[test]
fn badges_and_the_status_page_are_public_and_show_only_what_is_configured() {
    let dir = temp_dir();
    let (hub, _admin) = start_hub(dir.path());
    let url = hub.url.as_str();
    let http = http();

    let web = wait_for(Duration::from_secs(30), "web's ok badge", || {
        let (status, _, _, body) = public_get(&http, url, "/badge/web.svg");
        (status == 200 && body.contains(">ok</text>")).then_some(body)
    });
    assert!(web.starts_with("<svg"), "{web}");
    let (status, content_type, cache, _) = public_get(&http, url, "/badge/web.svg");
    assert_eq!(
        (status, content_type.as_str(), cache.as_str()),
        (200, "image/svg+xml", "no-cache")
    );
    wait_for(Duration::from_secs(30), "db's crit badge", || {
        let (status, _, _, body) = public_get(&http, url, "/badge/db.svg");
        (status == 200 && body.contains(">crit</text>") && body.contains("#e05d44")).then_some(())
    });
    let (status, content_type, _, body) = public_get(&http, url, "/badge/web/uptime/24h.svg");
    assert_eq!((status, content_type.as_str()), (200, "image/svg+xml"));
    assert!(
        body.contains("web uptime 24h") && body.contains("100%"),
        "{body}"
    );

    // No badge: the same 404 whether the check exists or not.
    let (status, _, _, not_enabled) = public_get(&http, url, "/badge/secret.svg");
    assert_eq!(status, 404);
    for path in [
        "/badge/nope.svg",
        "/badge/web",
        "/badge/secret/uptime/24h.svg",
        "/badge/web/uptime/1y.svg",
        "/badge/nope/uptime/7d.svg",
    ] {
        let (status, _, _, body) = public_get(&http, url, path);
        assert_eq!(
            (status, body.as_str()),
            (404, not_enabled.as_str()),
            "{path}"
        );
    }

    // The status page: only the listed checks, with name, status and uptime, no summaries.
    let page = wait_for(Duration::from_secs(30), "both statuses on /status", || {
        let (status, _, _, body) = public_get(&http, url, "/status");
        (status == 200 && body.contains("status-ok\">ok<") && body.contains("status-crit\">crit<"))
            .then_some(body)
    });
    assert!(
        page.contains("<title>Acme &lt;status&gt;</title>"),
        "{page}"
    );
    assert!(page.contains(">web<") && page.contains(">db<"), "{page}");
    assert!(!page.contains("secret"), "an unlisted check: {page}");
    assert!(
        !page.contains("internals") && !page.contains("fine"),
        "no summaries: {page}"
    );
    assert!(!page.contains("<a ") && !page.contains("<script"), "{page}");
    assert!(page.contains("http-equiv=\"refresh\""), "{page}");
    let response = send(http.get(format!("{url}/status")));
    let csp = header(&response, "content-security-policy");
    let ui_csp = header(
        &send(http.get(format!("{url}/ui/sign-in"))),
        "content-security-policy",
    );
    assert!(!csp.is_empty());
    assert_eq!(csp, ui_csp, "the status page has the UI's CSP");
    let (status, content_type, _, body) = public_get(&http, url, "/status.json");
    assert_eq!((status, content_type.as_str()), (200, "application/json"));
    let parsed: Value = serde_json::from_str(&body).unwrap_or_else(|e| panic!("{e}: {body}"));
    assert_eq!(parsed["title"], "Acme <status>");
    let checks: Vec<(&str, &str)> = parsed["checks"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|check| {
            (
                check["name"].as_str().unwrap_or_default(),
                check["status"].as_str().unwrap_or_default(),
            )
        })
        .collect();
    assert_eq!(checks, [("web", "ok"), ("db", "crit")]);
    assert_eq!(parsed["checks"][0]["uptime_30d_percent"], 100.0);
    assert!(
        !body.contains("secret") && !body.contains("summary"),
        "{body}"
    );
    drop(hub);

    // Without `[status_page]` there is no status page.
    let bare = Hub::start(&dir.path().join("bare"), &[]);
    for path in ["/status", "/status.json"] {
        let (status, _, _, _) = public_get(&http, &bare.url, path);
        assert_eq!(status, 404, "{path}");
    }
}
