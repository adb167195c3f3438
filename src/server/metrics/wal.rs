//! The WAL engine's metrics: fed by events through the engine's [`Observer`] hook, and by
//! gauges read from `KvBackend::stats()` at scrape time.
//!
//! Events (appends, bytes, fsyncs and their durations, batch sizes, checkpoints and failed
//! checkpoints, recovery) arrive as they happen, from the engine's own threads, so counting
//! them costs a few atomic adds and never a lock. Levels (log size, segments, records since the last checkpoint, the
//! sequence number) are read from the backend's stats when Prometheus scrapes, because the server
//! reaches the engine only through the `KvBackend` trait.
//!
//! These metrics are registered only on a server whose backend is the WAL: a memory or sled
//! server does not show WAL series that would read as zero fsyncs.
//!
//! A sync of the log slower than `SLOW_FSYNC_MS` is also logged as a warning, as etcd warns
//! of a slow WAL sync: every write in the batch waited that long, and a histogram only
//! shows it to whoever looks. Syncs of one log run one after another, so the warnings come
//! at most one per threshold.

use std::time::Duration;

use opentelemetry::KeyValue;

use prometheus::{Gauge, Histogram, HistogramOpts, IntCounter, IntGauge, Registry};
use walab_store::LogLevels;
use walab_wal::{CheckpointReport, Observer, RecoveryReport};

use super::gauge;

/// fdatasync on an SSD takes tens of microseconds to a few milliseconds; a slow disk or a
/// busy journal can take hundreds of milliseconds.
const FSYNC_BUCKETS: &[f64] = &[
    0.00001, 0.000025, 0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05,
    0.1, 0.25, 0.5, 1.0,
];

/// Writes that shared one write() and one sync: the engine's own powers of two.
const BATCH_BUCKETS: &[f64] = &[
    1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0, 512.0, 1024.0,
];

/// A checkpoint of a small store takes a millisecond; of a million keys, about a second.
const CHECKPOINT_BUCKETS: &[f64] = &[
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];

/// The WAL's metrics. Clones share the same series.
#[derive(Debug, Clone)]
pub struct WalMetrics {
    appends: IntCounter,
    written_bytes: IntCounter,
    fsyncs: IntCounter,
    fsync_duration: Histogram,
    batch_records: Histogram,
    checkpoints: IntCounter,
    checkpoint_failures: IntCounter,
    checkpoint_duration: Histogram,
    last_checkpoint: Gauge,
    log_size: IntGauge,
    segments: IntGauge,
    records_since_checkpoint: IntGauge,
    sequence: IntGauge,
    poisoned: IntGauge,
    recovery_duration: Gauge,
    recovery_replayed: IntGauge,
    recovery_discarded: IntGauge,
    /// Syncs slower than this are logged (`SLOW_FSYNC_MS`; `None`: never).
    slow_fsync: Option<Duration>,
}

impl WalMetrics {
    /// Create the WAL's metrics and register them on `registry`; syncs slower than
    /// `slow_fsync` are logged too.
    pub fn register(
        registry: &Registry,
        slow_fsync: Option<Duration>,
    ) -> Result<WalMetrics, prometheus::Error> {
        let counter = |name: &str, help: &str| -> Result<IntCounter, prometheus::Error> {
            let c = IntCounter::new(name, help)?;
            registry.register(Box::new(c.clone()))?;
            Ok(c)
        };
        let int_gauge = |name: &str, help: &str| -> Result<IntGauge, prometheus::Error> {
            let g = IntGauge::new(name, help)?;
            registry.register(Box::new(g.clone()))?;
            Ok(g)
        };
        let float_gauge = |name: &str, help: &str| -> Result<Gauge, prometheus::Error> {
            let g = Gauge::new(name, help)?;
            registry.register(Box::new(g.clone()))?;
            Ok(g)
        };
        let histogram =
            |name: &str, help: &str, buckets: &[f64]| -> Result<Histogram, prometheus::Error> {
                let h =
                    Histogram::with_opts(HistogramOpts::new(name, help).buckets(buckets.to_vec()))?;
                registry.register(Box::new(h.clone()))?;
                Ok(h)
            };

        Ok(WalMetrics {
            appends: counter(
                "walab_wal_appends_total",
                "Records appended to the log since this process started",
            )?,
            written_bytes: counter(
                "walab_wal_written_bytes_total",
                "Bytes written to the log since this process started",
            )?,
            fsyncs: counter(
                "walab_wal_fsyncs_total",
                "Syncs of the log (fdatasync), on the write path and in the background",
            )?,
            fsync_duration: histogram(
                "walab_wal_fsync_duration_seconds",
                "Time one sync of the log took",
                FSYNC_BUCKETS,
            )?,
            batch_records: histogram(
                "walab_wal_group_commit_batch_records",
                "Records per log write: writers that shared one write() and one sync",
                BATCH_BUCKETS,
            )?,
            checkpoints: counter(
                "walab_wal_checkpoints_total",
                "Checkpoints (snapshot, then log truncation) finished since this process started",
            )?,
            checkpoint_failures: counter(
                "walab_wal_checkpoint_failures_total",
                "Checkpoints that failed since this process started (the log keeps every record; writes go on unless a log sync failed)",
            )?,
            checkpoint_duration: histogram(
                "walab_wal_checkpoint_duration_seconds",
                "Wall time of one checkpoint",
                CHECKPOINT_BUCKETS,
            )?,
            last_checkpoint: float_gauge(
                "walab_wal_last_checkpoint_timestamp_seconds",
                "Unix time the last checkpoint finished (0: none since this process started)",
            )?,
            log_size: int_gauge("walab_wal_log_size_bytes", "Bytes in all live log segments")?,
            segments: int_gauge("walab_wal_segments", "Live log segment files")?,
            records_since_checkpoint: int_gauge(
                "walab_wal_records_since_checkpoint",
                "Log records written since the last checkpoint (replayed by a crash now)",
            )?,
            sequence: int_gauge("walab_wal_sequence", "The last sequence number applied")?,
            poisoned: int_gauge(
                "walab_wal_poisoned",
                "1 after a failed write or sync poisoned the engine (writes refused until restart)",
            )?,
            recovery_duration: float_gauge(
                "walab_wal_recovery_duration_seconds",
                "How long recovery took when this process started",
            )?,
            recovery_replayed: int_gauge(
                "walab_wal_recovery_records_replayed",
                "Log records replayed by recovery when this process started",
            )?,
            recovery_discarded: int_gauge(
                "walab_wal_recovery_torn_bytes",
                "Bytes of torn log tail cut off by recovery when this process started",
            )?,
            slow_fsync,
        })
    }

    /// Refresh the levels from the WAL backend's stats (at scrape time).
    pub fn refresh(&self, log: &LogLevels) {
        self.log_size.set(gauge(log.size_bytes));
        self.segments.set(gauge(log.segments));
        self.records_since_checkpoint
            .set(gauge(log.records_since_checkpoint));
        self.sequence.set(gauge(log.sequence));
        self.poisoned.set(i64::from(log.poisoned));
    }

    fn synced(&self, took: Duration) {
        self.fsyncs.inc();
        self.fsync_duration.observe(took.as_secs_f64());
        if let Some(threshold) = self.slow_fsync.filter(|t| took > *t) {
            tracing::warn!(
                took_ms = took.as_millis() as u64,
                threshold_ms = threshold.as_millis() as u64,
                "slow fdatasync of the log: every write waiting on it waited this long \
                 (SLOW_FSYNC_MS sets the threshold)"
            );
        }
    }
}

impl Observer for WalMetrics {
    fn batch_written(&self, records: usize, bytes: usize, sync: Option<Duration>) {
        self.appends.inc_by(records as u64);
        self.written_bytes.inc_by(bytes as u64);
        self.batch_records.observe(records as f64);
        if let Some(took) = sync {
            self.synced(took);
        }
    }

    fn interval_synced(&self, took: Duration) {
        self.synced(took);
    }

    fn checkpoint_finished(&self, report: &CheckpointReport) {
        crate::server::traces::record_finished(
            "wal.checkpoint",
            report.duration,
            vec![
                KeyValue::new("wal.sequence", report.sequence as i64),
                KeyValue::new("wal.checkpoint.keys", report.keys as i64),
                KeyValue::new(
                    "wal.checkpoint.snapshot_bytes",
                    report.snapshot_bytes as i64,
                ),
                KeyValue::new(
                    "wal.checkpoint.entries_truncated",
                    report.records_truncated as i64,
                ),
            ],
        );
        self.checkpoints.inc();
        self.checkpoint_duration
            .observe(report.duration.as_secs_f64());
        self.last_checkpoint
            .set(report.finished_at_micros as f64 / 1e6);
    }

    fn checkpoint_failed(&self, error: &walab_wal::Error, automatic: bool) {
        self.checkpoint_failures.inc();
        // Automatic checkpoints are retried with a growing back-off, so a long failure (a
        // full disk) adds a line a minute at most, not one per write.
        tracing::warn!(
            error = %error,
            automatic,
            "WAL checkpoint failed; the log still holds every record it would have covered"
        );
    }

    fn recovered(&self, report: &RecoveryReport) {
        crate::server::traces::record_finished(
            "wal.recovery",
            report.duration,
            vec![
                KeyValue::new(
                    "wal.recovery.entries_replayed",
                    report.records_replayed as i64,
                ),
                KeyValue::new(
                    "wal.recovery.torn_bytes",
                    report.torn_bytes_discarded as i64,
                ),
                KeyValue::new(
                    "wal.recovery.snapshot_sequence",
                    report.snapshot.as_ref().map_or(0, |s| s.sequence) as i64,
                ),
            ],
        );
        self.recovery_duration.set(report.duration.as_secs_f64());
        self.recovery_replayed.set(gauge(report.records_replayed));
        self.recovery_discarded
            .set(gauge(report.torn_bytes_discarded));
    }
}

#[cfg(test)]
mod tests {
    use std::io::Write;
    use std::sync::{Arc, Mutex};

    use super::*;

    /// What `f` logs, as text.
    fn logged(f: impl FnOnce()) -> String {
        #[derive(Clone)]
        struct Sink(Arc<Mutex<Vec<u8>>>);
        impl Write for Sink {
            fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
                self.0.lock().expect("lock").extend_from_slice(buf);
                Ok(buf.len())
            }
            fn flush(&mut self) -> std::io::Result<()> {
                Ok(())
            }
        }
        let sink = Sink(Arc::default());
        let writer = sink.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_writer(move || writer.clone())
            .with_ansi(false)
            .finish();
        tracing::subscriber::with_default(subscriber, f);
        let bytes = sink.0.lock().expect("lock").clone();
        String::from_utf8(bytes).expect("utf-8")
    }

    #[test]
    fn a_sync_over_the_threshold_is_a_warning_and_one_under_it_is_not() {
        let m = WalMetrics::register(&Registry::new(), Some(Duration::from_millis(10)))
            .expect("register");
        let quiet = logged(|| {
            m.batch_written(1, 40, Some(Duration::from_millis(9)));
            m.interval_synced(Duration::from_millis(10));
            m.batch_written(1, 40, None);
        });
        assert_eq!(quiet, "");
        let slow = logged(|| m.batch_written(3, 120, Some(Duration::from_millis(25))));
        assert!(
            slow.contains("WARN")
                && slow.contains("slow fdatasync of the log")
                && slow.contains("took_ms=25 threshold_ms=10"),
            "{slow}"
        );
        let background = logged(|| m.interval_synced(Duration::from_millis(11)));
        assert!(background.contains("took_ms=11"), "{background}");
        assert_eq!(m.fsyncs.get(), 4, "every sync is counted, slow or not");
    }

    #[test]
    fn no_threshold_no_warning() {
        let m = WalMetrics::register(&Registry::new(), None).expect("register");
        assert_eq!(
            logged(|| m.batch_written(1, 40, Some(Duration::from_secs(5)))),
            ""
        );
    }
}
