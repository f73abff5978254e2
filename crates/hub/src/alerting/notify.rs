//! Notifiers: what one notification says ([`Notice`]), each provider's documented payload
//! (built by pure functions, so they are snapshot-tested) and the senders: reqwest (rustls on
//! ring) for the HTTP ones, lettre (SMTP with STARTTLS, rustls on ring) for email.

use std::collections::BTreeMap;
use std::time::Duration;

use lettre::message::header::ContentType;
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Certificate, Tls, TlsParameters};
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use serde_json::{Value, json};
use warden_core::alerting::render_template;
use warden_core::config::{EmailNotifier, NotifierConfig, NotifierKind, SmtpTls};

/// The header a signed webhook carries: `sha256=<hex HMAC-SHA256 of the body>`.
pub(crate) const SIGNATURE_HEADER: &str = "X-Warden-Signature";
/// The message when a rule gives no template.
pub(crate) const DEFAULT_MESSAGE: &str = "{{check}} is {{status}}: {{summary}}";

/// One notification about one incident (or a test), as every notifier renders it.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Notice {
    pub(crate) incident_id: Option<i64>,
    /// `opened`, `repeat`, `resolved` or `test`.
    pub(crate) event: String,
    pub(crate) rule: String,
    pub(crate) subject: String,
    pub(crate) check: Option<String>,
    /// The status that opened it (`crit`, `firing`, ...), or the resolving one.
    pub(crate) status: String,
    /// `critical`, `warning` or `info`.
    pub(crate) severity: String,
    pub(crate) summary: String,
    pub(crate) value: Option<f64>,
    /// When the incident opened.
    pub(crate) since_ms: i64,
    pub(crate) resolved_at_ms: Option<i64>,
    /// Where a person sees the incident.
    pub(crate) url: String,
    pub(crate) labels: BTreeMap<String, String>,
    /// The rule's message, rendered.
    pub(crate) text: String,
    /// When this notification was made.
    pub(crate) at_ms: i64,
}

impl Notice {
    pub(crate) fn resolved(&self) -> bool {
        self.event == "resolved"
    }

    /// A one-line title: `[CRITICAL] web-down: web-1` / `[RESOLVED] web-down: web-1`.
    pub(crate) fn title(&self) -> String {
        let tag = match self.event.as_str() {
            "resolved" => "RESOLVED".to_string(),
            "test" => "TEST".to_string(),
            _ => self.severity.to_uppercase(),
        };
        format!("[{tag}] {}: {}", self.rule, self.subject)
    }

    /// The value of a template placeholder.
    pub(crate) fn placeholder(&self, name: &str) -> Option<String> {
        match name {
            "check" => Some(self.check.clone().unwrap_or_else(|| self.subject.clone())),
            "status" => Some(self.status.clone()),
            "summary" => Some(self.summary.clone()),
            "value" => Some(
                self.value
                    .map(super::engine::format_value)
                    .unwrap_or_default(),
            ),
            "since" => Some(rfc3339(self.since_ms)),
            "url" => Some(self.url.clone()),
            "rule" => Some(self.rule.clone()),
            "severity" => Some(self.severity.clone()),
            "incident" => Some(
                self.incident_id
                    .map(|id| id.to_string())
                    .unwrap_or_default(),
            ),
            "event" => Some(self.event.clone()),
            "state" => Some(
                if self.resolved() {
                    "resolved"
                } else {
                    "firing"
                }
                .to_string(),
            ),
            _ => None,
        }
    }

    /// Renders a message template for this notice (no escaping).
    pub(crate) fn render(&self, template: &str) -> String {
        render_template(template, &|name| self.placeholder(name), &|text| {
            text.to_string()
        })
    }

    /// The generic webhook's default body.
    pub(crate) fn json(&self) -> Value {
        json!({
            "version": "1",
            "event": self.event,
            "state": if self.resolved() { "resolved" } else { "firing" },
            "title": self.title(),
            "message": self.text,
            "incident": {
                "id": self.incident_id,
                "rule": self.rule,
                "subject": self.subject,
                "check": self.check,
                "status": self.status,
                "severity": self.severity,
                "summary": self.summary,
                "value": self.value,
                "since": rfc3339(self.since_ms),
                "resolved_at": self.resolved_at_ms.map(rfc3339),
                "url": self.url,
                "labels": self.labels,
            },
            "sent_at": rfc3339(self.at_ms),
        })
    }
}

/// RFC 3339 in UTC, e.g. `2023-11-14T22:13:20Z`.
pub(crate) fn rfc3339(ms: i64) -> String {
    jiff::Timestamp::from_millisecond(ms)
        .map(|ts| ts.to_string())
        .unwrap_or_default()
}

/// An HTTP request as a notifier would send it.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct HttpRequest {
    pub(crate) url: String,
    pub(crate) headers: Vec<(String, String)>,
    pub(crate) body: Vec<u8>,
}

impl HttpRequest {
    fn json(url: String, body: &Value) -> HttpRequest {
        HttpRequest {
            url,
            headers: vec![("Content-Type".to_string(), "application/json".to_string())],
            body: body.to_string().into_bytes(),
        }
    }
}

/// Slack attachment / Discord embed colours by state.
fn color(notice: &Notice) -> u32 {
    if notice.resolved() {
        return 0x2E_B8_86;
    }
    match notice.severity.as_str() {
        "critical" => 0xD7_00_00,
        "warning" => 0xF2_C7_44,
        _ => 0x43_9F_E0,
    }
}

/// The request an HTTP notifier sends for `notice`; `None` for email.
pub(crate) fn http_request(kind: &NotifierKind, notice: &Notice) -> Option<HttpRequest> {
    let title = notice.title();
    let request = match kind {
        NotifierKind::Webhook {
            url,
            headers,
            secret,
            body,
        } => {
            let body = match body {
                Some(template) => {
                    render_template(template, &|name| notice.placeholder(name), &json_escape)
                        .into_bytes()
                }
                None => notice.json().to_string().into_bytes(),
            };
            let mut all = vec![("Content-Type".to_string(), "application/json".to_string())];
            for (name, value) in headers {
                all.retain(|(existing, _)| !existing.eq_ignore_ascii_case(name));
                all.push((name.clone(), value.clone()));
            }
            if let Some(secret) = secret {
                all.push((
                    SIGNATURE_HEADER.to_string(),
                    format!("sha256={}", hmac_sha256_hex(secret.as_bytes(), &body)),
                ));
            }
            HttpRequest {
                url: url.clone(),
                headers: all,
                body,
            }
        }
        // Incoming webhook: `text` is the fallback, `blocks` the rich form.
        NotifierKind::Slack { url } => HttpRequest::json(
            url.clone(),
            &json!({
                "text": format!("{title}\n{}", notice.text),
                "blocks": [
                    {"type": "header", "text": {"type": "plain_text", "text": truncate(&title, 150)}},
                    {"type": "section", "text": {"type": "mrkdwn", "text": notice.text}},
                    {"type": "context", "elements": [
                        {"type": "mrkdwn", "text": format!("since {} · <{}|incident>", rfc3339(notice.since_ms), notice.url)}
                    ]},
                ],
            }),
        ),
        NotifierKind::Discord { url } => HttpRequest::json(
            url.clone(),
            &json!({
                "content": truncate(&title, 2000),
                "embeds": [{
                    "title": truncate(&title, 256),
                    "description": truncate(&notice.text, 4096),
                    "url": notice.url,
                    "color": color(notice),
                    "fields": [
                        {"name": "status", "value": notice.status, "inline": true},
                        {"name": "severity", "value": notice.severity, "inline": true},
                    ],
                    "timestamp": rfc3339(notice.at_ms),
                }],
            }),
        ),
        // Office 365 connector card (also accepted by Workflows webhooks).
        NotifierKind::Teams { url } => HttpRequest::json(
            url.clone(),
            &json!({
                "@type": "MessageCard",
                "@context": "https://schema.org/extensions",
                "themeColor": format!("{:06X}", color(notice)),
                "summary": title,
                "title": title,
                "text": notice.text,
                "sections": [{"facts": [
                    {"name": "Rule", "value": notice.rule},
                    {"name": "Subject", "value": notice.subject},
                    {"name": "Status", "value": notice.status},
                    {"name": "Severity", "value": notice.severity},
                    {"name": "Since", "value": rfc3339(notice.since_ms)},
                ]}],
                "potentialAction": [{
                    "@type": "OpenUri",
                    "name": "Open incident",
                    "targets": [{"os": "default", "uri": notice.url}],
                }],
            }),
        ),
        // POST the message as the body; title, priority and tags as headers.
        NotifierKind::Ntfy { url, topic, token } => {
            let (priority, tags) = if notice.resolved() {
                ("3", "white_check_mark")
            } else {
                match notice.severity.as_str() {
                    "critical" => ("5", "rotating_light"),
                    "warning" => ("4", "warning"),
                    _ => ("3", "information_source"),
                }
            };
            let mut headers = vec![
                ("Title".to_string(), header_safe(&title)),
                ("Priority".to_string(), priority.to_string()),
                ("Tags".to_string(), tags.to_string()),
                ("Click".to_string(), header_safe(&notice.url)),
            ];
            if let Some(token) = token {
                headers.push(("Authorization".to_string(), format!("Bearer {token}")));
            }
            HttpRequest {
                url: format!("{url}/{topic}"),
                headers,
                body: notice.text.clone().into_bytes(),
            }
        }
        NotifierKind::Gotify { url, token } => HttpRequest::json(
            format!("{url}/message?token={token}"),
            &json!({
                "title": title,
                "message": notice.text,
                "priority": if notice.resolved() { 4 } else if notice.severity == "critical" { 8 } else { 5 },
            }),
        ),
        NotifierKind::Telegram {
            url,
            bot_token,
            chat_id,
        } => HttpRequest::json(
            format!("{url}/bot{bot_token}/sendMessage"),
            &json!({
                "chat_id": chat_id,
                "text": format!("{title}\n{}", notice.text),
                "disable_web_page_preview": true,
            }),
        ),
        // Events API v2: trigger and resolve share the dedup key.
        NotifierKind::PagerDuty { url, routing_key } => {
            let dedup_key = format!(
                "warden/{}/{}",
                notice.rule,
                notice
                    .incident_id
                    .map_or_else(|| notice.subject.clone(), |id| id.to_string())
            );
            let body = if notice.resolved() {
                json!({
                    "routing_key": routing_key,
                    "event_action": "resolve",
                    "dedup_key": dedup_key,
                })
            } else {
                json!({
                    "routing_key": routing_key,
                    "event_action": "trigger",
                    "dedup_key": dedup_key,
                    "payload": {
                        "summary": truncate(&format!("{title}: {}", notice.text), 1024),
                        "severity": match notice.severity.as_str() {
                            "critical" => "critical",
                            "warning" => "warning",
                            _ => "info",
                        },
                        "source": notice.check.clone().unwrap_or_else(|| notice.subject.clone()),
                        "component": notice.subject,
                        "group": notice.rule,
                        "class": notice.status,
                        "timestamp": rfc3339(notice.since_ms),
                        "custom_details": {"summary": notice.summary, "labels": notice.labels, "value": notice.value},
                    },
                    "links": [{"href": notice.url, "text": "warden incident"}],
                })
            };
            HttpRequest::json(url.clone(), &body)
        }
        // Alertmanager API v2: a list of postable alerts; endsAt in the past resolves.
        NotifierKind::Alertmanager { url } => {
            let mut labels = notice.labels.clone();
            labels.insert("alertname".to_string(), notice.rule.clone());
            let mut alert = json!({
                "labels": labels,
                "annotations": {
                    "summary": notice.summary,
                    "description": notice.text,
                },
                "startsAt": rfc3339(notice.since_ms),
                "generatorURL": notice.url,
            });
            if let (Some(resolved_at), Some(object)) =
                (notice.resolved_at_ms, alert.as_object_mut())
            {
                object.insert("endsAt".to_string(), json!(rfc3339(resolved_at)));
            }
            HttpRequest::json(format!("{url}/api/v2/alerts"), &json!([alert]))
        }
        NotifierKind::Email(_) => return None,
    };
    Some(request)
}

fn json_escape(text: &str) -> String {
    let quoted = Value::String(text.to_string()).to_string();
    quoted[1..quoted.len() - 1].to_string()
}

fn truncate(text: &str, max_chars: usize) -> String {
    if text.chars().count() <= max_chars {
        return text.to_string();
    }
    let mut out: String = text.chars().take(max_chars.saturating_sub(1)).collect();
    out.push('…');
    out
}

/// Header values must be visible ASCII; anything else becomes `?`, newlines spaces.
fn header_safe(text: &str) -> String {
    text.chars()
        .map(|c| match c {
            '\n' | '\r' | '\t' => ' ',
            c if c.is_ascii() && !c.is_ascii_control() => c,
            _ => '?',
        })
        .collect()
}

pub(crate) fn hmac_sha256_hex(secret: &[u8], body: &[u8]) -> String {
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, secret);
    hex::encode(ring::hmac::sign(&key, body).as_ref())
}

/// The email a notice becomes (subject = title; text body with the details).
pub(crate) fn email_message(email: &EmailNotifier, notice: &Notice) -> Result<Message, String> {
    let from = email
        .from
        .parse()
        .map_err(|error| format!("from `{}`: {error}", email.from))?;
    let mut builder = Message::builder()
        .from(from)
        .subject(notice.title())
        .header(ContentType::TEXT_PLAIN);
    for to in &email.to {
        builder = builder.to(to.parse().map_err(|error| format!("to `{to}`: {error}"))?);
    }
    let mut body = format!("{}\n\n", notice.text);
    body.push_str(&format!("rule: {}\n", notice.rule));
    body.push_str(&format!("subject: {}\n", notice.subject));
    body.push_str(&format!("status: {}\n", notice.status));
    body.push_str(&format!("severity: {}\n", notice.severity));
    body.push_str(&format!("since: {}\n", rfc3339(notice.since_ms)));
    if let Some(at) = notice.resolved_at_ms {
        body.push_str(&format!("resolved: {}\n", rfc3339(at)));
    }
    body.push_str(&format!("incident: {}\n", notice.url));
    builder
        .body(body)
        .map_err(|error| format!("cannot build the email: {error}"))
}

/// A configured notifier, ready to send.
pub(crate) struct Notifier {
    pub(crate) config: NotifierConfig,
    http: reqwest::Client,
    smtp: Option<AsyncSmtpTransport<Tokio1Executor>>,
}

impl std::fmt::Debug for Notifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Notifier")
            .field("name", &self.config.name)
            .field("kind", &self.config.kind.name())
            .finish()
    }
}

impl Notifier {
    /// Builds the sender (for email: reads `ca_file`, sets up TLS); errors name the problem.
    pub(crate) fn build(
        config: &NotifierConfig,
        http: reqwest::Client,
    ) -> Result<Notifier, String> {
        let smtp = match &config.kind {
            NotifierKind::Email(email) => Some(smtp_transport(email, config.timeout)?),
            _ => None,
        };
        Ok(Notifier {
            config: config.clone(),
            http,
            smtp,
        })
    }

    /// Sends one notice, once (retries are the delivery worker's). `Err` says why it failed.
    pub(crate) async fn send(&self, notice: &Notice) -> Result<(), String> {
        if let NotifierKind::Email(email) = &self.config.kind {
            let message = email_message(email, notice)?;
            let Some(smtp) = &self.smtp else {
                return Err("email transport not set up".to_string());
            };
            return match tokio::time::timeout(self.config.timeout, smtp.send(message)).await {
                Ok(Ok(_)) => Ok(()),
                Ok(Err(error)) => Err(format!("smtp: {}", innermost(&error))),
                Err(_) => Err(format!(
                    "smtp: no answer within {}",
                    warden_core::duration::HumanDuration(self.config.timeout)
                )),
            };
        }
        let Some(request) = http_request(&self.config.kind, notice) else {
            return Err("nothing to send".to_string());
        };
        let mut builder = self
            .http
            .post(&request.url)
            .timeout(self.config.timeout)
            .body(request.body);
        for (name, value) in &request.headers {
            builder = builder.header(name.as_str(), value.as_str());
        }
        let response = builder.send().await.map_err(|error| {
            if error.is_timeout() {
                format!(
                    "no answer within {}",
                    warden_core::duration::HumanDuration(self.config.timeout)
                )
            } else {
                innermost(&error)
            }
        })?;
        let status = response.status();
        if status.is_success() {
            return Ok(());
        }
        let body = response.text().await.unwrap_or_default();
        let first: String = body
            .lines()
            .find(|line| !line.trim().is_empty())
            .unwrap_or("")
            .chars()
            .take(200)
            .collect();
        Err(if first.is_empty() {
            format!("HTTP {}", status.as_u16())
        } else {
            format!("HTTP {}: {first}", status.as_u16())
        })
    }
}

/// The HTTP client every HTTP notifier shares.
pub(crate) fn http_client() -> Result<reqwest::Client, String> {
    reqwest::Client::builder()
        .user_agent(concat!("warden/", env!("CARGO_PKG_VERSION")))
        .connect_timeout(Duration::from_secs(5))
        .redirect(reqwest::redirect::Policy::limited(3))
        .build()
        .map_err(|error| format!("cannot build the HTTP client: {error}"))
}

fn smtp_transport(
    email: &EmailNotifier,
    timeout: Duration,
) -> Result<AsyncSmtpTransport<Tokio1Executor>, String> {
    let tls = |email: &EmailNotifier| -> Result<TlsParameters, String> {
        let mut builder = TlsParameters::builder(email.host.clone());
        if let Some(file) = &email.ca_file {
            let pem = std::fs::read(file)
                .map_err(|error| format!("ca_file {}: {error}", file.display()))?;
            let certificate = Certificate::from_pem(&pem)
                .map_err(|error| format!("ca_file {}: {error}", file.display()))?;
            builder = builder.add_root_certificate(certificate);
        }
        builder
            .build_rustls()
            .map_err(|error| format!("TLS setup: {error}"))
    };
    let mut builder = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(email.host.as_str())
        .port(email.port)
        .timeout(Some(timeout));
    builder = match email.tls {
        SmtpTls::Starttls => builder.tls(Tls::Required(tls(email)?)),
        SmtpTls::Tls => builder.tls(Tls::Wrapper(tls(email)?)),
        SmtpTls::None => builder.tls(Tls::None),
    };
    if let (Some(username), Some(password)) = (&email.username, &email.password) {
        builder = builder.credentials(Credentials::new(username.clone(), password.clone()));
    }
    Ok(builder.build())
}

/// The innermost cause of an error, which is what a person needs.
fn innermost(error: &(dyn std::error::Error + 'static)) -> String {
    let mut innermost: &dyn std::error::Error = error;
    while let Some(source) = innermost.source() {
        innermost = source;
    }
    let outer = error.to_string();
    let inner = innermost.to_string();
    if outer == inner || outer.contains(&inner) {
        outer
    } else {
        format!("{outer}: {inner}")
    }
}
