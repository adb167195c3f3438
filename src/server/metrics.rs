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

use std::time::Duration;

use prometheus::{
    Encoder, Gauge, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge, Opts,
    Registry, TextEncoder,
};

use crate::server::config::Config;
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

/// Gauges are i64; counts beyond that cannot happen, but saturate rather than wrap.
pub fn gauge(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}
