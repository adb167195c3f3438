//! `walab serve`: one backend behind the HTTP key-value API.
//!
//! The HTTP contract is described by `GET /openapi.json` (`src/server/openapi.json`) and
//! docs/api.md.
//!
//! # Layout
//! - [`config`]: `walab serve`'s settings, each a flag with an environment variable behind
//!   it ([`config::ServeArgs`]), and the [`Config`] made of them; errors name the variable.
//! - [`state`]: [`AppState`]: the backend (once recovery is done), config, metrics.
//! - [`routes`]: [`app`], the route table; `kv`, `admin` and `health` handlers, the request
//!   middleware and `GET /metrics`.
//! - [`extract`]: lenient JSON body, key path and query extractors that reject as [`ApiError`].
//! - [`error`]: [`ApiError`], the one place a failure becomes a status and JSON body.
//! - [`serve`]: the accept loop: connections capped, headers and idle keep-alive timed out.
//! - [`limits`]: the header limit, the memory budgets of bodies and answers in flight.
//! - [`completer`]: a log writer's completions handed to the runtime, one wake-up a batch.
//! - [`cross_site`]: refusing web pages on other origins, and DNS rebinding.
//! - [`metrics`]: the Prometheus registry and what it counts; the WAL engine's observer.
//! - [`method`]: the `method` label of metrics and spans.
//! - [`telemetry`]: log setup (text or JSON), each line tagged with its server; the
//!   request log (tower-http's `TraceLayer`), one line per answer.
//! - [`traces`]: OpenTelemetry spans for requests, store operations, WAL steps, recovery
//!   and checkpoints, exported over OTLP when asked for.
//! - [`timefmt`]: RFC 3339 timestamps for `/admin/wal`.
//!
//! # Guarantees
//! - The port is open before recovery starts; until the backend is open, `/health` answers
//!   503 `recovering` and every other endpoint 503 `{"error":"recovering"}`.
//! - No backend call stalls an async worker: reads run inline only on backends whose reads
//!   never wait for I/O, writes are awaited through a oneshot the backend's own writer
//!   completes (or run on the blocking pool where the backend's writes block), and every
//!   other call runs on the blocking pool; no lock is held across an `.await`.
//! - Bad input is a 4xx JSON error; no handler panics on input.

pub mod completer;
pub mod config;
pub mod cross_site;
pub mod error;
pub mod extract;
pub mod limits;
pub mod method;
pub mod metrics;
pub mod routes;
pub mod serve;
pub mod state;
pub mod telemetry;
pub mod timefmt;
pub mod traces;

use std::future::Future;

pub use config::{Config, ConfigError};
pub use error::ApiError;
pub use routes::app;
pub use state::AppState;
use walab_store::StoreError;

/// Why [`run`] stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// The metrics registry refused a metric (a bug).
    #[error("cannot set up metrics: {0}")]
    Metrics(#[from] prometheus::Error),
    /// The backend could not be opened (for the WAL: recovery failed).
    #[error("cannot open the {backend} backend in {dir}: {source}")]
    Open {
        /// The backend kind.
        backend: String,
        /// Its data directory.
        dir: String,
        /// The store's error (for the WAL it names file and offset).
        source: StoreError,
    },
    /// Serving failed.
    #[error("server error: {0}")]
    Serve(#[from] std::io::Error),
    /// The lab's health socket could not be made.
    #[error("cannot listen on the health socket {}: {source}", path.display())]
    HealthSocket {
        /// `WALAB_HEALTH_SOCKET`.
        path: std::path::PathBuf,
        /// Why.
        source: std::io::Error,
    },
}

/// Connections the health socket serves at once: the lab asks one `/health` at a time.
const HEALTH_SOCKET_CONNECTIONS: usize = 4;

/// Listen on `path`, replacing the socket a killed predecessor left there (but nothing
/// else: a file or link at that path is an error, not something to delete). Only this
/// user may connect.
fn bind_health_socket(path: &std::path::Path) -> std::io::Result<tokio::net::UnixListener> {
    use std::os::unix::fs::{FileTypeExt, PermissionsExt};
    match std::fs::symlink_metadata(path) {
        Ok(m) if m.file_type().is_socket() => std::fs::remove_file(path)?,
        Ok(_) => {
            return Err(std::io::Error::new(
                std::io::ErrorKind::AlreadyExists,
                "something other than a socket is there; remove it",
            ));
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(e),
    }
    let listener = tokio::net::UnixListener::bind(path)?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))?;
    Ok(listener)
}

/// Serve the API on `listener` until `shutdown` resolves.
///
/// The listener is already bound, so clients can connect (and see `recovering`) while the
/// backend opens on a blocking thread. Returns an error if opening fails.
pub async fn run(
    listener: tokio::net::TcpListener,
    config: Config,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), RunError> {
    let backend = config.backend;
    let dir = config.data_dir.display().to_string();
    let limits = config.limits;
    let health_socket = match &config.health_socket {
        Some(path) => Some((
            path.clone(),
            bind_health_socket(path).map_err(|source| RunError::HealthSocket {
                path: path.clone(),
                source,
            })?,
        )),
        None => None,
    };
    let state = AppState::new(config)?;
    // Dropped (and so aborted) when serving ends: the socket lives as long as the server.
    let _health = health_socket.map(|(path, socket)| {
        let limits = config::Limits {
            max_connections: HEALTH_SOCKET_CONNECTIONS,
            ..limits
        };
        let router = app(state.clone());
        AbortOnDrop(
            tokio::spawn(async move {
                let never = std::future::pending::<()>();
                if let Err(e) = serve::serve(socket, router, limits, never).await {
                    tracing::warn!("the health socket stopped: {e}");
                }
            }),
            path,
        )
    });
    let server = serve::serve(serve::tcp(listener), app(state.clone()), limits, shutdown);
    let mut server = std::pin::pin!(server);

    let started = std::time::Instant::now();
    tokio::select! {
        served = &mut server => return Ok(served?),
        opened = state.open_backend() => match opened {
            Ok(()) => {
                let recovered = state.backend().map(|b| b.recovered_entries()).unwrap_or(0);
                tracing::info!(
                    took_ms = started.elapsed().as_millis() as u64,
                    recovered_entries = recovered,
                    "{backend} backend ready"
                );
            }
            Err(source) => {
                return Err(RunError::Open { backend: backend.to_string(), dir, source });
            }
        },
    }
    Ok(server.await?)
}

/// A task that ends when this is dropped, and the socket file it served, removed then.
struct AbortOnDrop(tokio::task::JoinHandle<()>, std::path::PathBuf);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
        let _ = std::fs::remove_file(&self.1);
    }
}
