//! Prometheus metrics: one registry per server, the request middleware, and `GET /metrics`.
//!
//! The registry is our own (not prometheus' global one) so tests can build many servers in
//! one process, and every series carries a `backend` const label so the three lab servers
//! can be told apart on one dashboard. Request metrics are labelled by the matched route
//! (`/kv/{*key}`), never the raw path, so a million keys do not make a million series.
//!
//! - [`wal`]: the WAL engine's metrics, fed by its `Observer` hook and by `stats()` at
//!   scrape time; registered only when the backend is the WAL.
//!
//! Besides our own, the registry has what every Prometheus exporter shows: the client
//! library's `process_*` metrics (CPU, resident memory, open file descriptors, start time)
//! and a `walab_build_info` gauge, 1, whose labels say what is running, so dashboards and
//! alerts written for any exporter work here too.
//!
//! Names follow Prometheus' conventions: base units in the name (`_seconds`, `_bytes`),
//! counters end in `_total`, latencies are histograms (never summaries) with buckets from
//! 50 µs up, so memory's sub-millisecond answers and fsync's milliseconds both resolve.

pub mod wal;

use std::time::{Duration, Instant};

use axum::extract::{MatchedPath, Request, State};
use axum::http::{HeaderValue, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use prometheus::{
    Encoder, Gauge, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge, Opts,
    Registry, TextEncoder,
};

use crate::config::Config;
use crate::error::ApiError;
use crate::state::AppState;
pub use wal::WalMetrics;

/// Request latencies are mostly well under a millisecond on memory, and a few ms with fsync.
const LATENCY_BUCKETS: &[f64] = &[
    0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0,
    2.5,
];

/// The server's metrics.
#[derive(Debug, Clone)]
pub struct Metrics {
    registry: Registry,
    http_requests: IntCounterVec,
    http_duration: HistogramVec,
    store_duration: HistogramVec,
    /// Keys in the store; refreshed on every scrape.
    pub items: IntGauge,
    /// How many times the lab restarted this server (`WALAB_RESTARTS`), as a counter that
    /// each new process continues.
    pub restarts: IntCounter,
    /// Unix time this process started: a step marks a restart.
    pub start_time: Gauge,
    /// Log records replayed when the store was opened.
    pub recovered_entries: IntGauge,
    /// Bytes the store takes on disk, for backends that report it; refreshed on every
    /// scrape.
    pub size_on_disk: IntGauge,
    size_on_disk_registered: std::sync::Arc<std::sync::atomic::AtomicBool>,
    /// The WAL engine's metrics, when the backend is the WAL.
    pub wal: Option<WalMetrics>,
}

impl Metrics {
    /// Register every metric on a fresh registry labelled with the configured backend; the
    /// WAL's own metrics too when that is the WAL.
    pub fn new(config: &Config) -> Result<Metrics, prometheus::Error> {
        let backend = config.backend.as_str();
        let labels = [("backend".to_owned(), backend.to_owned())].into();
        let registry = Registry::new_custom(None, Some(labels))?;

        let http_requests = IntCounterVec::new(
            Opts::new("walab_http_requests_total", "HTTP requests answered"),
            &["route", "method", "status"],
        )?;
        let http_duration = HistogramVec::new(
            HistogramOpts::new(
                "walab_http_request_duration_seconds",
                "Time from request to response",
            )
            .buckets(LATENCY_BUCKETS.to_vec()),
            &["route", "method", "status"],
        )?;
        let store_duration = HistogramVec::new(
            HistogramOpts::new(
                "walab_store_operation_duration_seconds",
                "Time the backend took for one operation (get, put, delete, list, clear, checkpoint)",
            )
            .buckets(LATENCY_BUCKETS.to_vec()),
            &["operation"],
        )?;
        let items = IntGauge::new("walab_items", "Keys in the store")?;
        let restarts = IntCounter::new(
            "walab_process_restarts_total",
            "Times walab lab restarted this server (WALAB_RESTARTS)",
        )?;
        let start_time = Gauge::new(
            "walab_process_start_time_seconds",
            "Unix time this server process started",
        )?;
        let recovered_entries = IntGauge::new(
            "walab_recovered_entries",
            "Log records replayed when the store was opened",
        )?;
        let build_info = IntGauge::with_opts(
            Opts::new(
                "walab_build_info",
                "Always 1; the labels say which build of walab is running",
            )
            .const_label("version", env!("CARGO_PKG_VERSION"))
            // A debug build is many times slower: its numbers are not the lab's.
            .const_label(
                "profile",
                if cfg!(debug_assertions) {
                    "debug"
                } else {
                    "release"
                },
            ),
        )?;
        build_info.set(1);

        registry.register(Box::new(http_requests.clone()))?;
        registry.register(Box::new(http_duration.clone()))?;
        registry.register(Box::new(store_duration.clone()))?;
        registry.register(Box::new(items.clone()))?;
        registry.register(Box::new(restarts.clone()))?;
        registry.register(Box::new(start_time.clone()))?;
        let size_on_disk = IntGauge::new(
            "walab_store_size_on_disk_bytes",
            "Bytes the store takes on disk (WAL: log and snapshot; sled: its files; etcd: the leader's database)",
        )?;
        registry.register(Box::new(recovered_entries.clone()))?;
        registry.register(Box::new(build_info))?;
        #[cfg(target_os = "linux")]
        registry.register(Box::new(
            prometheus::process_collector::ProcessCollector::for_self(),
        ))?;
        let wal = if config.backend.info().wal_engine {
            Some(WalMetrics::register(&registry, config.slow_fsync)?)
        } else {
            None
        };
        start_time.set(
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0.0, |d| d.as_secs_f64()),
        );

        Ok(Metrics {
            registry,
            http_requests,
            http_duration,
            store_duration,
            items,
            restarts,
            start_time,
            recovered_entries,
            size_on_disk,
            size_on_disk_registered: Default::default(),
            wal,
        })
    }

    /// Set the gauges read from the backend's stats at scrape time. A backend that does not
    /// report its size on disk does not get the series (registered only once reported).
    pub fn refresh(&self, stats: &walab_store::StoreStats) {
        if let Some(bytes) = stats.size_on_disk_bytes {
            if !self
                .size_on_disk_registered
                .swap(true, std::sync::atomic::Ordering::Relaxed)
                && let Err(e) = self.registry.register(Box::new(self.size_on_disk.clone()))
            {
                tracing::warn!(error = %e, "cannot register the size-on-disk gauge");
            }
            self.size_on_disk.set(gauge(bytes));
        }
        if let (Some(wal), Some(levels)) = (&self.wal, &stats.log) {
            wal.refresh(levels);
        }
    }

    /// The registry, for whoever wants to add metrics.
    pub fn registry(&self) -> &Registry {
        &self.registry
    }

    /// Record one backend operation's duration.
    pub fn observe_store(&self, operation: &str, took: Duration) {
        self.store_duration
            .with_label_values(&[operation])
            .observe(took.as_secs_f64());
    }

    /// Record one answered request.
    pub fn observe_request(&self, route: &str, method: &str, status: u16, took: Duration) {
        let status = status.to_string();
        self.http_requests
            .with_label_values(&[route, method, &status])
            .inc();
        self.http_duration
            .with_label_values(&[route, method, &status])
            .observe(took.as_secs_f64());
    }

    /// The text exposition of every registered metric.
    pub fn render(&self) -> Result<String, prometheus::Error> {
        let mut out = Vec::new();
        TextEncoder::new().encode(&self.registry.gather(), &mut out)?;
        // The text encoder only writes UTF-8.
        Ok(String::from_utf8_lossy(&out).into_owned())
    }
}

/// Middleware: count and time every request by its matched route.
pub async fn track(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_owned(), |p| p.as_str().to_owned());
    let method = method_label(req.method());
    let started = Instant::now();
    let response = next.run(req).await;
    state.metrics().observe_request(
        &route,
        method,
        response.status().as_u16(),
        started.elapsed(),
    );
    response
}

/// The `method` label: one of HTTP's methods, or `other`. hyper accepts any token as a
/// method, so labelling by the raw method would let a client create a series per request.
pub fn method_label(method: &axum::http::Method) -> &'static str {
    use axum::http::Method as M;
    match *method {
        M::GET => "GET",
        M::POST => "POST",
        M::PUT => "PUT",
        M::DELETE => "DELETE",
        M::HEAD => "HEAD",
        M::OPTIONS => "OPTIONS",
        M::PATCH => "PATCH",
        M::TRACE => "TRACE",
        M::CONNECT => "CONNECT",
        _ => "other",
    }
}

/// `GET /metrics`.
pub async fn handler(State(state): State<AppState>) -> Result<Response, ApiError> {
    if let Ok(backend) = state.backend() {
        let metrics = state.metrics().clone();
        // stats() takes the WAL's log lock, which a sync in progress holds, and asks etcd
        // over the network: read both on the blocking pool, not on an async worker.
        let refreshed = tokio::task::spawn_blocking(move || {
            match backend.len() {
                Ok(n) => metrics.items.set(gauge(n as u64)),
                Err(e) => tracing::debug!(error = %e, "counting the keys for metrics failed"),
            }
            metrics.refresh(&backend.stats());
        })
        .await;
        if let Err(e) = refreshed {
            tracing::warn!(error = %e, "reading the backend's stats for metrics failed");
        }
    }
    let text = state.metrics().render().map_err(|e| {
        tracing::error!(error = %e, "could not encode metrics");
        ApiError::Internal
    })?;
    let mut response = text.into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
    );
    Ok(response)
}

/// Gauges are i64; counts beyond that cannot happen, but saturate rather than wrap.
pub fn gauge(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}
