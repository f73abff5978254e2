//! Starting and talking to real `warden` processes.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use serde_json::Value;

pub fn warden_bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_warden"))
}

pub fn temp_dir() -> tempfile::TempDir {
    tempfile::tempdir().unwrap_or_else(|e| panic!("temp dir: {e}"))
}

/// A running `warden up` process.
pub struct Hub {
    pub child: Child,
    pub url: String,
    /// The admin token printed on first start (None on later starts).
    pub new_token: Option<String>,
    pub stderr: mpsc::Receiver<String>,
}

impl Hub {
    /// Starts `warden up --data DATA --listen 127.0.0.1:0 EXTRA...` and waits for it to listen.
    /// A hub on `<dir>/data` with `config` written to `<dir>/warden.toml`; with its new admin
    /// token.
    pub fn with_config(dir: &Path, config: &str) -> (Hub, String) {
        let path = dir.join("warden.toml");
        std::fs::write(&path, config).unwrap_or_else(|e| panic!("{e}"));
        let path = path.display().to_string();
        let hub = Hub::start(&dir.join("data"), &["--config", &path]);
        let token = hub
            .new_token
            .clone()
            .unwrap_or_else(|| panic!("no admin token"));
        (hub, token)
    }

    pub fn start(data: &Path, extra: &[&str]) -> Hub {
        Hub::start_on(data, "127.0.0.1:0", extra)
    }

    /// Like [`Hub::start`] on a given address (for configs that must name the hub's URL).
    pub fn start_on(data: &Path, listen: &str, extra: &[&str]) -> Hub {
        let mut command = Command::new(warden_bin());
        command
            .arg("up")
            .arg("--data")
            .arg(data)
            .arg("--listen")
            .arg(listen)
            .args(extra)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = command
            .spawn()
            .unwrap_or_else(|e| panic!("spawn warden: {e}"));
        let stdout = child.stdout.take().unwrap_or_else(|| panic!("no stdout"));
        let stderr = child.stderr.take().unwrap_or_else(|| panic!("no stderr"));
        let (line_tx, line_rx) = mpsc::channel::<String>();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if line_tx.send(line).is_err() {
                    break;
                }
            }
        });
        let (err_tx, err_rx) = mpsc::channel::<String>();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                // Keep draining even when nobody listens, so the child never blocks on a full pipe.
                let _ = err_tx.send(line);
            }
        });
        let mut new_token = None;
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let line = match line_rx.recv_timeout(left) {
                Ok(line) => line,
                Err(_) => {
                    let _ = child.kill();
                    let _ = child.wait();
                    let errors: Vec<String> = err_rx.try_iter().collect();
                    panic!(
                        "warden did not start listening; stderr:\n{}",
                        errors.join("\n")
                    );
                }
            };
            if let Some(token) = line.strip_prefix("admin token (shown once, keep it safe): ") {
                new_token = Some(token.to_string());
            }
            if let Some(url) = line.strip_prefix("warden hub listening on ") {
                return Hub {
                    child,
                    url: url.to_string(),
                    new_token,
                    stderr: err_rx,
                };
            }
        }
    }

    pub fn pid(&self) -> i32 {
        i32::try_from(self.child.id()).unwrap_or(0)
    }

    /// Sends a signal with the `kill` command (no unsafe code needed).
    pub fn signal(&self, name: &str) {
        let status = Command::new("kill")
            .arg(format!("-{name}"))
            .arg(self.pid().to_string())
            .status()
            .unwrap_or_else(|e| panic!("kill: {e}"));
        assert!(status.success(), "kill -{name} failed");
    }

    /// Waits for the process to exit (bounded) and returns its exit code.
    pub fn wait_exit(&mut self, within: Duration) -> Option<i32> {
        let deadline = Instant::now() + within;
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                return status.code();
            }
            if Instant::now() > deadline {
                let _ = self.child.kill();
                panic!(
                    "warden did not exit within {within:?}; stderr:\n{}",
                    self.stderr_lines().join("\n")
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn stderr_lines(&self) -> Vec<String> {
        self.stderr.try_iter().collect()
    }
}

impl Drop for Hub {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A small JSON client with a bearer token.
pub struct Api {
    pub url: String,
    pub token: String,
    client: reqwest::blocking::Client,
}

impl Api {
    pub fn new(url: &str, token: &str) -> Api {
        Api {
            url: url.to_string(),
            token: token.to_string(),
            client: reqwest::blocking::Client::builder()
                .timeout(Duration::from_secs(30))
                .build()
                .unwrap_or_else(|e| panic!("client: {e}")),
        }
    }

    /// POSTs JSON; returns (status, body) or the transport error text.
    pub fn post(&self, path: &str, body: &Value) -> Result<(u16, Value), String> {
        let response = self
            .client
            .post(format!("{}{path}", self.url))
            .bearer_auth(&self.token)
            .json(body)
            .send()
            .map_err(|e| e.to_string())?;
        let status = response.status().as_u16();
        let body = response.json::<Value>().map_err(|e| e.to_string())?;
        Ok((status, body))
    }

    pub fn get(&self, path: &str) -> Result<(u16, Value), String> {
        let response = self
            .client
            .get(format!("{}{path}", self.url))
            .bearer_auth(&self.token)
            .send()
            .map_err(|e| e.to_string())?;
        let status = response.status().as_u16();
        let body = response.json::<Value>().map_err(|e| e.to_string())?;
        Ok((status, body))
    }
}

/// Runs the binary to completion with arguments; returns (exit code, stdout, stderr).
pub fn run_warden(args: &[&str]) -> (Option<i32>, String, String) {
    let output = Command::new(warden_bin())
        .args(args)
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("run warden: {e}"));
    (
        output.status.code(),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

/// Lines of stderr that are the binary's own error report (not log lines).
pub fn error_lines(stderr: &str) -> Vec<String> {
    stderr
        .lines()
        .filter(|line| line.starts_with("error:"))
        .map(str::to_string)
        .collect()
}
