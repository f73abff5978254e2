//! Following a run's output live over the events WebSocket (`/api/v1/events`), with the REST
//! output as the base: lines already stored are printed first, then live ones, each line once, in
//! order. A dropped connection is resumed with `since=` after a jittered exponential backoff;
//! when the hub cannot resume (its replay ring moved on) the stored output fills the gap.

use std::time::Duration;

use futures_util::StreamExt;
use serde_json::Value;
use tokio_tungstenite::tungstenite::Message;

use crate::error::ClientError;
use crate::types::{OutputLine, OutputStream, Run};
use crate::{Client, RunState};

/// What following produced: each line as it comes, then the final run.
pub trait FollowSink {
    fn line(&mut self, line: &OutputLine);
}

/// Longest wait between reconnection attempts.
const MAX_BACKOFF: Duration = Duration::from_secs(10);

impl Client {
    /// The events URL: `ws://HOST/api/v1/events?token=..&kinds=..[&since=..]`.
    fn events_url(&self, since: Option<u64>) -> String {
        let mut url = self.endpoint(&["events"], &[]);
        let _ = url.set_scheme("ws");
        let mut query = vec![
            ("token", self.token().to_string()),
            ("kinds", "output_line,run_finished".to_string()),
        ];
        if let Some(since) = since {
            query.push(("since", since.to_string()));
        }
        url.query_pairs_mut().extend_pairs(query);
        url.to_string()
    }

    /// Prints (through `sink`) run `run_id`'s output, stored then live, until the run is final;
    /// returns the final run. Reconnects on its own; gives up only when the hub refuses (an API
    /// error) or stays unreachable for `give_up_after`.
    pub async fn follow(
        &self,
        run_id: i64,
        sink: &mut dyn FollowSink,
        give_up_after: Duration,
    ) -> Result<Run, ClientError> {
        let mut printed: Option<i64> = None; // highest line number shown
        let mut since: Option<u64> = None;
        let mut backoff = Duration::from_millis(200);
        let mut failing_since: Option<tokio::time::Instant> = None;
        loop {
            let connected = tokio_tungstenite::connect_async(self.events_url(since)).await;
            let mut socket = match connected {
                Ok((socket, _)) => {
                    failing_since = None;
                    backoff = Duration::from_millis(200);
                    socket
                }
                Err(error) => {
                    if let tokio_tungstenite::tungstenite::Error::Http(response) = &error {
                        let status = response.status().as_u16();
                        if (400..500).contains(&status) {
                            let body = response.body().as_deref().unwrap_or_default();
                            return Err(crate::client::api_error(status, body));
                        }
                    }
                    let started = *failing_since.get_or_insert_with(tokio::time::Instant::now);
                    if started.elapsed() > give_up_after {
                        return Err(ClientError::Connect {
                            url: self.base_text().to_string(),
                            message: error.to_string(),
                        });
                    }
                    tokio::time::sleep(jitter(backoff)).await;
                    backoff = (backoff * 2).min(MAX_BACKOFF);
                    continue;
                }
            };
            while let Some(message) = socket.next().await {
                let Ok(message) = message else { break };
                let text = match message {
                    Message::Text(text) => text,
                    Message::Close(_) => break,
                    _ => continue,
                };
                let Ok(value) = serde_json::from_str::<Value>(text.as_str()) else {
                    continue;
                };
                let seq = value["seq"].as_u64();
                match value["type"].as_str() {
                    Some("snapshot") => {
                        since = seq;
                        // A fresh start: what is stored comes first (and fills any gap).
                        for line in self.output(run_id).await? {
                            if printed.is_none_or(|last| line.seq > last) {
                                sink.line(&line);
                                printed = Some(line.seq);
                            }
                        }
                        let run = self.run(run_id, None).await?;
                        if run.state.is_final() {
                            return Ok(run);
                        }
                    }
                    Some("resume") => since = seq,
                    Some("event") => {
                        since = seq.or(since);
                        if value["run_id"].as_i64() != Some(run_id) {
                            continue;
                        }
                        match value["kind"].as_str() {
                            Some("output_line") => {
                                let line_no = value["line_no"].as_i64().unwrap_or(-1);
                                if printed.is_none_or(|last| line_no > last) {
                                    let line = OutputLine {
                                        seq: line_no,
                                        at: value["at"].as_i64().unwrap_or(0),
                                        stream: match value["stream"].as_str() {
                                            Some("stderr") => OutputStream::Stderr,
                                            Some("body") => OutputStream::Body,
                                            _ => OutputStream::Stdout,
                                        },
                                        line: value["line"]
                                            .as_str()
                                            .unwrap_or_default()
                                            .to_string(),
                                    };
                                    sink.line(&line);
                                    printed = Some(line_no);
                                }
                            }
                            Some("run_finished") => {
                                // Answered once the hub has recorded it, so the run reads final.
                                let run = self.run(run_id, Some(Duration::from_secs(5))).await?;
                                if run.state.is_final() || run.state == RunState::Completed {
                                    return Ok(run);
                                }
                            }
                            _ => {}
                        }
                    }
                    _ => {}
                }
            }
            // The connection ended: the run may have ended too (cancelled runs send no event).
            let run = self.run(run_id, None).await?;
            if run.state.is_final() {
                for line in self.output(run_id).await? {
                    if printed.is_none_or(|last| line.seq > last) {
                        sink.line(&line);
                        printed = Some(line.seq);
                    }
                }
                return Ok(run);
            }
            tokio::time::sleep(jitter(backoff)).await;
            backoff = (backoff * 2).min(MAX_BACKOFF);
        }
    }
}

/// Between half and all of `base`, so many clients reconnecting at once spread out.
fn jitter(base: Duration) -> Duration {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    let fraction = 0.5 + f64::from(nanos % 1_000) / 2_000.0;
    base.mul_f64(fraction)
}
