//! The web UI against the real binary: sign-in, sessions and CSRF over plain HTTP, and the pages
//! driven in headless Chromium through chromedriver (fantoccini).

use std::net::TcpListener;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fantoccini::{Client, ClientBuilder, Locator};
use reqwest::blocking::Client as Http;
use serde_json::{Value, json};

use crate::checks::wait_for;
use crate::harness::{Api, Hub, temp_dir};

const CHROMIUM: &str = "/usr/bin/chromium";
const CHROMEDRIVER: &str = "/usr/bin/chromedriver";

/// Two exec checks: `web-1` every second (ok), `db-1` hourly and slow (a second), so a Run now
/// is in flight long enough to be seen.
const CONFIG: &str = r#"
[[check]]
name = "web-1"
kind = "exec"
every = "1s"
labels = { team = "web" }
command = ["sh", "-c", "echo 'OK - web fine'"]

[[check]]
name = "db-1"
kind = "exec"
every = "1h"
labels = { team = "db" }
links = [{ name = "runbook", url = "https://wiki.example/db" }]
command = ["sh", "-c", "sleep 1; echo 'OK - db fine'"]
"#;

fn start_hub(dir: &Path) -> (Hub, String) {
    let config = dir.join("warden.toml");
    std::fs::write(&config, CONFIG).unwrap_or_else(|e| panic!("{e}"));
    let config = config.display().to_string();
    let hub = Hub::start(&dir.join("data"), &["--config", &config]);
    let token = hub
        .new_token
        .clone()
        .unwrap_or_else(|| panic!("no admin token"));
    (hub, token)
}

fn http() -> Http {
    Http::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap_or_else(|e| panic!("{e}"))
}

/// Signs in with `token`; returns the cookie pair (`warden_session=...`) and the Set-Cookie line.
fn sign_in(http: &Http, url: &str, token: &str) -> (String, String) {
    let response = http
        .post(format!("{url}/ui/sign-in"))
        .form(&[("token", token), ("next", "/checks/db-1")])
        .send()
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(response.status().as_u16(), 303, "sign-in with a good token");
    assert_eq!(header(&response, "location"), "/checks/db-1");
    let set_cookie = header(&response, "set-cookie");
    let pair = set_cookie.split(';').next().unwrap_or_default().to_string();
    (pair, set_cookie)
}

fn header(response: &reqwest::blocking::Response, name: &str) -> String {
    response
        .headers()
        .get(name)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string()
}

fn status_of(request: reqwest::blocking::RequestBuilder) -> u16 {
    request
        .send()
        .unwrap_or_else(|e| panic!("{e}"))
        .status()
        .as_u16()
}

#[test]
fn sessions_cookies_and_csrf() {
    let dir = temp_dir();
    let (hub, admin) = start_hub(dir.path());
    let url = hub.url.as_str();
    let http = http();

    // Without a session every page sends the browser to sign in (and back afterwards).
    let response = http
        .get(format!("{url}/checks/db-1"))
        .send()
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(response.status().as_u16(), 303);
    assert_eq!(
        header(&response, "location"),
        "/ui/sign-in?next=/checks/db-1"
    );
    assert_eq!(status_of(http.get(format!("{url}/ui/sign-in"))), 200);
    let bad = http
        .post(format!("{url}/ui/sign-in"))
        .form(&[("token", "wdn_nope")]);
    assert_eq!(status_of(bad), 401);
    // An off-site `next` is ignored.
    let response = http
        .post(format!("{url}/ui/sign-in"))
        .form(&[("token", admin.as_str()), ("next", "//evil.example/")])
        .send()
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(header(&response, "location"), "/");

    let (cookie, set_cookie) = sign_in(&http, url, &admin);
    assert!(cookie.starts_with("warden_session="), "{set_cookie}");
    for attribute in ["HttpOnly", "SameSite=Strict", "Path=/"] {
        assert!(
            set_cookie.contains(attribute),
            "{attribute} in {set_cookie}"
        );
    }
    assert!(
        !set_cookie.contains("Secure"),
        "plain HTTP: no Secure: {set_cookie}"
    );
    let page = http
        .get(format!("{url}/"))
        .header("cookie", &cookie)
        .send()
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(page.status().as_u16(), 200);
    assert!(header(&page, "content-security-policy").contains("default-src 'self'"));
    let (_, session): (u16, Value) = {
        let response = http
            .get(format!("{url}/ui/session"))
            .header("cookie", &cookie)
            .send()
            .unwrap_or_else(|e| panic!("{e}"));
        (
            response.status().as_u16(),
            response.json().unwrap_or_default(),
        )
    };
    let csrf = session["csrf"].as_str().unwrap_or_default().to_string();
    assert_eq!(csrf.len(), 64, "{session}");
    assert_eq!(session["role"], "admin");

    // The API takes the cookie: reads as they are, state changes only with the CSRF token.
    let list = http
        .get(format!("{url}/api/v1/checks"))
        .header("cookie", &cookie);
    assert_eq!(status_of(list), 200);
    let run = |csrf: Option<&str>, origin: Option<&str>| {
        let mut request = http
            .post(format!("{url}/api/v1/checks/db-1/run"))
            .header("cookie", &cookie);
        if let Some(csrf) = csrf {
            request = request.header("x-csrf-token", csrf);
        }
        if let Some(origin) = origin {
            request = request.header("origin", origin);
        }
        status_of(request)
    };
    assert_eq!(
        run(None, None),
        403,
        "a cross-site form post has no CSRF token"
    );
    assert_eq!(run(Some("0123"), None), 403, "a wrong CSRF token");
    assert_eq!(
        run(Some(&csrf), Some("http://evil.example")),
        403,
        "another origin"
    );
    assert_eq!(run(Some(&csrf), Some(url)), 201, "the page's own request");
    // Bearer requests are unaffected.
    let api = Api::new(url, &admin);
    let (code, _) = api
        .post("/api/v1/checks/db-1/run", &json!({}))
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(code, 201);

    // Sign-out is CSRF-checked, then the cookie is worthless.
    let forged = http
        .post(format!("{url}/ui/sign-out"))
        .header("cookie", &cookie)
        .form(&[("csrf", "forged")]);
    assert_eq!(status_of(forged), 403);
    let response = http
        .post(format!("{url}/ui/sign-out"))
        .header("cookie", &cookie)
        .form(&[("csrf", csrf.as_str())])
        .send()
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(response.status().as_u16(), 303);
    assert!(header(&response, "set-cookie").contains("Max-Age=0"));
    let revoked = http
        .get(format!("{url}/api/v1/checks"))
        .header("cookie", &cookie);
    assert_eq!(status_of(revoked), 401, "a revoked session is refused");
    let page = http.get(format!("{url}/")).header("cookie", &cookie);
    assert_eq!(
        status_of(page),
        303,
        "a revoked session gets the sign-in page"
    );

    // Revoking the token a session was made from ends the session.
    let (code, created) = api
        .post("/api/v1/tokens", &json!({"name": "ui", "role": "viewer"}))
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(code, 201, "{created}");
    let viewer = created["token"].as_str().unwrap_or_default();
    let (viewer_cookie, _) = sign_in(&http, url, viewer);
    let list = http
        .get(format!("{url}/api/v1/checks"))
        .header("cookie", &viewer_cookie);
    assert_eq!(status_of(list), 200);
    let id = created["id"].as_i64().unwrap_or_default();
    let revoke = http
        .delete(format!("{url}/api/v1/tokens/{id}"))
        .bearer_auth(&admin);
    assert_eq!(status_of(revoke), 200);
    let list = http
        .get(format!("{url}/api/v1/checks"))
        .header("cookie", &viewer_cookie);
    assert_eq!(
        status_of(list),
        401,
        "the token's revocation ends its sessions"
    );
}

/// chromedriver on a free port, killed on drop.
struct Driver {
    child: Child,
    url: String,
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn browser_present() -> bool {
    if Path::new(CHROMIUM).is_file() && Path::new(CHROMEDRIVER).is_file() {
        return true;
    }
    assert!(
        std::env::var("WARDEN_REQUIRE_SERVICES").as_deref() != Ok("1"),
        "chromium or chromium-driver is not installed but WARDEN_REQUIRE_SERVICES=1"
    );
    eprintln!(
        "SKIPPED: chromium or chromium-driver is not installed ({CHROMIUM}, {CHROMEDRIVER}); \
         apt-get install chromium chromium-driver"
    );
    false
}

fn start_driver() -> Driver {
    let port = TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .map(|addr| addr.port())
        .unwrap_or_else(|e| panic!("{e}"));
    let child = Command::new(CHROMEDRIVER)
        .arg(format!("--port={port}"))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("spawn chromedriver: {e}"));
    let driver = Driver {
        child,
        url: format!("http://127.0.0.1:{port}"),
    };
    wait_for(Duration::from_secs(20), "chromedriver to listen", || {
        std::net::TcpStream::connect(("127.0.0.1", port)).ok()
    });
    driver
}

/// Polls `probe` until it returns Some (each call may talk to the browser).
async fn poll<T, F, Fut>(within: Duration, what: &str, mut probe: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = Instant::now() + within;
    loop {
        if let Some(value) = probe().await {
            return value;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn text_of(client: &Client, css: &str) -> Option<String> {
    client.find(Locator::Css(css)).await.ok()?.text().await.ok()
}

async fn rows(client: &Client) -> Vec<String> {
    let Ok(found) = client.find_all(Locator::Css("#checks tbody tr")).await else {
        return Vec::new();
    };
    let mut names = Vec::new();
    for row in found {
        if let Ok(Some(name)) = row.attr("data-check").await {
            names.push(name);
        }
    }
    names
}

#[test]
fn browser_sign_in_overview_run_now_sign_out() {
    if !browser_present() {
        return;
    }
    let dir = temp_dir();
    let (hub, admin) = start_hub(dir.path());
    let driver = start_driver();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap_or_else(|e| panic!("{e}"));
    runtime.block_on(async {
        let mut capabilities = serde_json::Map::new();
        capabilities.insert(
            "goog:chromeOptions".to_string(),
            json!({
                "binary": CHROMIUM,
                "args": ["--headless=new", "--no-sandbox", "--disable-gpu",
                         "--disable-dev-shm-usage", "--window-size=1280,900"],
            }),
        );
        let client = ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
            .capabilities(capabilities)
            .connect(&driver.url)
            .await
            .unwrap_or_else(|e| panic!("connect to chromedriver: {e}"));
        let result = drive(&client, &hub.url, &admin, dir.path()).await;
        let _ = client.close().await;
        result
    });
}

async fn drive(client: &Client, url: &str, admin: &str, dir: &Path) {
    let wait = Duration::from_secs(20);
    // No session: the sign-in page.
    client
        .goto(&format!("{url}/"))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    poll(wait, "the sign-in page", || async {
        client
            .current_url()
            .await
            .ok()
            .filter(|u| u.path() == "/ui/sign-in")
    })
    .await;
    let token = client
        .find(Locator::Id("token"))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    token
        .send_keys(admin)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    client
        .find(Locator::Id("sign-in"))
        .await
        .unwrap_or_else(|e| panic!("{e}"))
        .click()
        .await
        .unwrap_or_else(|e| panic!("{e}"));

    // The overview lists both checks; web-1 has run, db-1 may still be pending.
    poll(wait, "both checks on the overview", || async {
        let names = rows(client).await;
        (names.contains(&"web-1".to_string()) && names.contains(&"db-1".to_string())).then_some(())
    })
    .await;
    poll(wait, "web-1 ok, as text", || async {
        text_of(client, "tr[data-check='web-1'] .status")
            .await
            .filter(|text| text.eq_ignore_ascii_case("ok"))
    })
    .await;
    let counts = text_of(client, "#counts").await.unwrap_or_default();
    assert!(
        counts.to_lowercase().contains("pending"),
        "counts include pending: {counts}"
    );
    let overview_png = dir.join("overview.png");
    let png = client.screenshot().await.unwrap_or_else(|e| panic!("{e}"));
    std::fs::write(&overview_png, png).unwrap_or_else(|e| panic!("{e}"));
    println!("screenshot: {}", overview_png.display());

    // Filter: typing keeps the URL in step and hides the others.
    let name = client
        .find(Locator::Id("filter-name"))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    name.send_keys("db").await.unwrap_or_else(|e| panic!("{e}"));
    poll(wait, "the filter to leave db-1 alone", || async {
        (rows(client).await == vec!["db-1".to_string()]).then_some(())
    })
    .await;
    poll(wait, "the filter in the URL", || async {
        client
            .current_url()
            .await
            .ok()
            .filter(|u| u.query() == Some("name=db"))
    })
    .await;
    // A reload with the URL's filter shows the same.
    client.refresh().await.unwrap_or_else(|e| panic!("{e}"));
    poll(wait, "the filter after reload", || async {
        (rows(client).await == vec!["db-1".to_string()]).then_some(())
    })
    .await;

    // The check page: Run now is disabled while the run goes, then its result appears.
    // The live overview may re-render the row between finding and clicking it: try again.
    poll(wait, "a click on db-1's link", || async {
        let link = client
            .find(Locator::Css("tr[data-check='db-1'] a"))
            .await
            .ok()?;
        link.click().await.ok()
    })
    .await;
    poll(wait, "the check page", || async {
        client
            .find(Locator::Css("body[data-loaded='true'][data-page='check']"))
            .await
            .ok()
    })
    .await;
    // The config's links show on the page.
    poll(wait, "the runbook link", || async {
        let link = client.find(Locator::Css("#check-links a")).await.ok()?;
        let href = link.attr("href").await.ok()??;
        let text = link.text().await.ok()?;
        (href == "https://wiki.example/db" && text == "runbook").then_some(())
    })
    .await;
    let button = client
        .find(Locator::Id("run-now"))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    button.click().await.unwrap_or_else(|e| panic!("{e}"));
    poll(wait, "Run now disabled", || async {
        (!button.is_enabled().await.ok()?).then_some(())
    })
    .await;
    assert!(
        client
            .find(Locator::Css("#run-state .spinner"))
            .await
            .is_ok(),
        "a spinner while the run goes"
    );
    let run_id = poll(wait, "the run's id", || async {
        button.attr("data-run-id").await.ok().flatten()
    })
    .await;
    poll(wait, "the run's result without a reload", || async {
        let finished = client
            .find(Locator::Css("#run-state"))
            .await
            .ok()?
            .attr("data-finished-run")
            .await
            .ok()??;
        (finished == run_id).then_some(())
    })
    .await;
    assert!(
        button.is_enabled().await.unwrap_or(false),
        "Run now enabled again"
    );
    poll(wait, "the run in the recent runs", || async {
        client
            .find(Locator::Css(&format!("#runs tr[data-run='{run_id}']")))
            .await
            .ok()
    })
    .await;
    let status = text_of(client, "#check-status").await.unwrap_or_default();
    assert!(status.eq_ignore_ascii_case("ok"), "db-1 is ok: {status}");
    let check_png = dir.join("check.png");
    let png = client.screenshot().await.unwrap_or_else(|e| panic!("{e}"));
    std::fs::write(&check_png, png).unwrap_or_else(|e| panic!("{e}"));
    println!("screenshot: {}", check_png.display());

    // The run's page shows its output.
    client
        .goto(&format!("{url}/runs/{run_id}"))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    poll(wait, "the run's output on its page", || async {
        let text = text_of(client, "#output").await?;
        text.contains("OK - db fine").then_some(())
    })
    .await;

    // Sign out, then pages are refused (back to sign-in).
    client
        .find(Locator::Id("sign-out"))
        .await
        .unwrap_or_else(|e| panic!("{e}"))
        .click()
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    poll(wait, "the sign-in page after sign-out", || async {
        client
            .current_url()
            .await
            .ok()
            .filter(|u| u.path() == "/ui/sign-in")
    })
    .await;
    client
        .goto(&format!("{url}/checks/db-1"))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    poll(wait, "refused after sign-out", || async {
        client
            .current_url()
            .await
            .ok()
            .filter(|u| u.path() == "/ui/sign-in")
    })
    .await;
}
