//! warden's hub: opens the store, syncs config, serves the HTTP API and (as later issues land)
//! schedules and runs checks. `Hub::start` does everything that can fail at startup, so the
//! binary can report it as one clear line before serving.

mod api;
mod auth;
mod error;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use tokio::net::TcpListener;
use tokio_util::task::TaskTracker;
use warden_core::config::Config;
use warden_store::{Store, StoreError, StoreOptions};

pub use auth::{Role, generate_token, hash_token};
pub use tokio_util::sync::CancellationToken;

/// Why the hub could not start or stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum HubError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("cannot listen on {addr}")]
    Listen {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("server error: {0}")]
    Serve(std::io::Error),
    #[error("internal error: {0}")]
    Internal(String),
}

/// How to start a hub.
#[derive(Debug, Clone)]
pub struct HubOptions {
    pub config: Config,
    /// How long shutdown may take before in-flight requests are abandoned.
    pub shutdown_grace: Duration,
}

impl HubOptions {
    pub fn new(config: Config) -> HubOptions {
        HubOptions {
            config,
            shutdown_grace: Duration::from_secs(10),
        }
    }
}

/// Shared state of a running hub, handed to request handlers.
#[derive(Clone)]
pub(crate) struct AppState {
    pub(crate) store: Store,
    pub(crate) started: Instant,
}

/// A hub that has opened its store and bound its port, ready to serve.
pub struct Hub {
    listener: TcpListener,
    state: AppState,
    admin_token: Option<String>,
    data_dir: PathBuf,
    shutdown_grace: Duration,
    tracker: TaskTracker,
}

impl std::fmt::Debug for Hub {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Hub")
            .field("data_dir", &self.data_dir)
            .finish()
    }
}

impl Hub {
    /// Opens the store (creating it and an admin token on first start), syncs the configured
    /// checks and binds the listen address. Nothing is served until [`Hub::serve`].
    pub async fn start(options: HubOptions) -> Result<Hub, HubError> {
        let config = options.config;
        // Bind first: a busy port must fail before anything (like the admin token) is created.
        let listener = TcpListener::bind(config.hub.listen)
            .await
            .map_err(|source| HubError::Listen {
                addr: config.hub.listen,
                source,
            })?;
        let data_dir = config.hub.data.clone();
        let open_dir = data_dir.clone();
        let store =
            tokio::task::spawn_blocking(move || Store::open(&open_dir, StoreOptions::default()))
                .await
                .map_err(|error| HubError::Internal(error.to_string()))??;
        let checks = config.checks.clone();
        let report = store
            .write(move |conn| warden_store::checks::sync(conn, &checks, warden_store::now_ms()))
            .await?;
        tracing::info!(
            added = report.added.len(),
            changed = report.changed.len(),
            removed = report.removed.len(),
            unchanged = report.unchanged,
            "checks synced from config"
        );
        let admin_token = auth::ensure_admin_token(&store).await?;
        Ok(Hub {
            listener,
            state: AppState {
                store,
                started: Instant::now(),
            },
            admin_token,
            data_dir,
            shutdown_grace: options.shutdown_grace,
            tracker: TaskTracker::new(),
        })
    }

    /// The address actually bound (useful with port 0).
    pub fn local_addr(&self) -> Result<SocketAddr, HubError> {
        self.listener.local_addr().map_err(HubError::Serve)
    }

    /// The admin token created on this start, if the database was new. Shown once, never stored.
    pub fn take_new_admin_token(&mut self) -> Option<String> {
        self.admin_token.take()
    }

    pub fn store(&self) -> &Store {
        &self.state.store
    }

    /// Serves until `shutdown` fires, then stops taking requests, lets in-flight ones finish
    /// (bounded by the shutdown grace), flushes the store and returns.
    pub async fn serve(self, shutdown: CancellationToken) -> Result<(), HubError> {
        let addr = self.local_addr()?;
        let app = api::router(self.state.clone());
        tracing::info!(%addr, data = %self.data_dir.display(), "hub listening");
        let server_shutdown = shutdown.clone();
        let server = axum::serve(self.listener, app).with_graceful_shutdown(async move {
            server_shutdown.cancelled().await;
        });
        let mut server = std::pin::pin!(server.into_future());
        let result = tokio::select! {
            result = &mut server => result.map_err(HubError::Serve),
            () = shutdown.cancelled() => {
                match tokio::time::timeout(self.shutdown_grace, &mut server).await {
                    Ok(result) => result.map_err(HubError::Serve),
                    Err(_) => {
                        tracing::warn!(grace = ?self.shutdown_grace, "in-flight requests did not finish in time; closing");
                        Ok(())
                    }
                }
            }
        };
        self.tracker.close();
        self.tracker.wait().await;
        self.state.store.close().await;
        tracing::info!("hub stopped; store flushed");
        result
    }
}
