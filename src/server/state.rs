//! What every handler shares: the backend (once it is open), the config and the metrics.
//!
//! The server binds its port first and opens the backend afterwards, because WAL recovery
//! can take a while and a supervisor polling `/health` should see "recovering", not
//! "connection refused". So the backend sits in a `OnceLock`: empty while recovery runs,
//! set exactly once when it finishes.

use std::sync::{Arc, OnceLock};
use std::time::Instant;

use walab_store::{KvBackend, ReadPath, StoreError, Write, WriteAck, WritePath, open_backend};

use crate::server::completer::Completer;
use crate::server::config::Config;
use crate::server::error::ApiError;
use crate::server::limits::ByteBudget;
use crate::server::metrics::{Metrics, gauge};

/// Cheap to clone: one `Arc` inside.
#[derive(Debug, Clone)]
pub struct AppState {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    backend: OnceLock<Arc<dyn KvBackend>>,
    config: Config,
    metrics: Metrics,
    started_at: Instant,
    body_budget: ByteBudget,
    /// One checkpoint request at a time: the others are answered at once (409) instead of
    /// each holding a blocking thread until the running one is done.
    checkpoint_gate: tokio::sync::Semaphore,
    /// Completions from a log writer's thread, one wake-up per batch.
    completer: Completer<Result<Option<WriteAck>, StoreError>>,
}

impl AppState {
    /// A state whose backend is not open yet: every kv and admin endpoint answers 503.
    pub fn new(config: Config) -> Result<AppState, prometheus::Error> {
        let metrics = Metrics::new(&config)?;
        metrics.restarts.inc_by(config.restarts);
        Ok(AppState {
            inner: Arc::new(Inner {
                backend: OnceLock::new(),
                body_budget: ByteBudget::new(config.limits.max_body_bytes_in_flight),
                metrics,
                started_at: Instant::now(),
                checkpoint_gate: tokio::sync::Semaphore::new(1),
                completer: Completer::default(),
                config,
            }),
        })
    }

    /// A state with an open backend (tests build the router this way).
    pub fn with_backend(
        config: Config,
        backend: Arc<dyn KvBackend>,
    ) -> Result<AppState, prometheus::Error> {
        let state = AppState::new(config)?;
        state.set_backend(backend);
        Ok(state)
    }

    /// Open the configured backend on a blocking thread (for the WAL this is recovery), then
    /// make it visible to the handlers.
    pub async fn open_backend(&self) -> Result<(), StoreError> {
        let mut backend_config = self.inner.config.backend_config();
        if let Some(wal) = &self.inner.metrics.wal {
            // The engine tells the metrics about each batch, sync, checkpoint and the
            // recovery that runs inside open_backend below.
            backend_config.observer = Some(Arc::new(wal.clone()));
        }
        let backend = tokio::task::spawn_blocking(move || open_backend(&backend_config))
            .await
            .map_err(|e| StoreError::Storage(format!("opening the backend panicked: {e}")))??;
        self.set_backend(backend);
        Ok(())
    }

    fn set_backend(&self, backend: Arc<dyn KvBackend>) {
        self.inner
            .metrics
            .recovered_entries
            .set(gauge(backend.recovered_entries()));
        // Set only here, once per state; a second call would be a bug, and keeping the
        // first backend is the safe answer to it.
        let _ = self.inner.backend.set(backend);
    }

    /// The backend, or 503 `recovering` while it is being opened.
    pub fn backend(&self) -> Result<Arc<dyn KvBackend>, ApiError> {
        self.inner
            .backend
            .get()
            .cloned()
            .ok_or(ApiError::Recovering)
    }

    /// Whether the backend is open.
    pub fn is_ready(&self) -> bool {
        self.inner.backend.get().is_some()
    }

    /// The server's settings.
    pub fn config(&self) -> &Config {
        &self.inner.config
    }

    /// A permit to run a checkpoint, if none is running.
    pub fn try_checkpoint(&self) -> Option<tokio::sync::SemaphorePermit<'_>> {
        self.inner.checkpoint_gate.try_acquire().ok()
    }

    /// The server's metrics.
    pub fn metrics(&self) -> &Metrics {
        &self.inner.metrics
    }

    /// The memory request bodies may hold at once.
    pub fn body_budget(&self) -> &ByteBudget {
        &self.inner.body_budget
    }

    /// When this process started serving.
    pub fn started_at(&self) -> Instant {
        self.inner.started_at
    }

    /// Hand `write` to the backend and await its outcome, timed as `operation`.
    ///
    /// No thread waits for it: a backend with a log writer of its own (the WAL) completes
    /// it from that thread through a oneshot; the memory store completes it at once; only
    /// a backend whose writes block the calling thread (sled) gets a blocking-pool thread.
    pub async fn write(
        &self,
        operation: &'static str,
        write: Write,
    ) -> Result<Option<WriteAck>, ApiError> {
        let backend = self.backend()?;
        let started = Instant::now();
        let span = crate::server::traces::store_span(operation, self.inner.config.backend.as_str());
        let (tx, rx) = tokio::sync::oneshot::channel();
        let path = backend.calls().writes;
        let done: walab_store::WriteDone = if path == WritePath::Queued {
            // From the writer's thread: through the completer, one wake-up per batch.
            Box::new(self.inner.completer.sender(tx))
        } else {
            Box::new(move |outcome| {
                // The receiver is gone only if the request was cancelled (its client
                // left); the write went ahead all the same, as it would on any server.
                let _ = tx.send(outcome);
            })
        };
        match path {
            WritePath::Inline | WritePath::Queued => span.in_scope(|| backend.submit(write, done)),
            WritePath::Blocking => {
                let span = span.clone();
                tokio::task::spawn_blocking(move || {
                    span.in_scope(|| backend.submit(write, done));
                });
            }
        }
        let outcome = rx.await.map_err(|_| {
            tracing::error!(operation, "a backend write was dropped without an answer");
            ApiError::Internal
        })?;
        self.inner
            .metrics
            .observe_store(operation, started.elapsed());
        let ack = outcome?;
        if let Some(ack) = &ack {
            // The WAL's steps become spans under this operation's span, which ends here.
            span.in_scope(|| crate::server::traces::record_commit(ack));
        }
        Ok(ack)
    }

    /// Run the read `op`, timed as `operation`: inline when the backend's reads never wait
    /// for I/O (a lookup in memory is far cheaper than a trip to the blocking pool), on the
    /// blocking pool otherwise.
    pub async fn read<T, F>(&self, operation: &'static str, op: F) -> Result<T, ApiError>
    where
        T: Send + 'static,
        F: FnOnce(&dyn KvBackend) -> Result<T, StoreError> + Send + 'static,
    {
        let backend = self.backend()?;
        if backend.calls().reads == ReadPath::Blocking {
            return self.blocking(operation, op).await;
        }
        let started = Instant::now();
        let result = op(backend.as_ref());
        self.inner
            .metrics
            .observe_store(operation, started.elapsed());
        Ok(result?)
    }

    /// Run `op` against the backend on the blocking pool and time it as `operation`.
    ///
    /// For calls that may wait for I/O or take long (stats, listings, checkpoints). Nothing
    /// is locked across the `.await`: the closure owns its `Arc` to the backend.
    pub async fn blocking<T, F>(&self, operation: &'static str, op: F) -> Result<T, ApiError>
    where
        T: Send + 'static,
        F: FnOnce(&dyn KvBackend) -> Result<T, StoreError> + Send + 'static,
    {
        let backend = self.backend()?;
        let started = Instant::now();
        let span = crate::server::traces::store_span(operation, self.inner.config.backend.as_str());
        let result = tokio::task::spawn_blocking(move || span.in_scope(|| op(backend.as_ref())))
            .await
            .map_err(|e| {
                tracing::error!(operation, error = %e, "a backend call panicked");
                ApiError::Internal
            })?;
        self.inner
            .metrics
            .observe_store(operation, started.elapsed());
        Ok(result?)
    }
}
