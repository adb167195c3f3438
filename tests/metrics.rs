//! `/metrics` on a real server over the WAL: the engine's metrics exist, are labelled with
//! the backend, and move after writes, a checkpoint, a failed checkpoint and a restart;
//! every server also shows the standard `process_*` metrics and `walab_build_info`. The observer is wired
//! where the server opens its backend, so these tests run the whole `walab::run`, not a
//! router over a hand-built backend.

mod common;

use std::collections::HashMap;
use std::path::Path;
use std::thread::JoinHandle;
use std::time::Duration;

use common::{get, post, post_json};
use walab::Config;

/// A `walab::run` on its own runtime and thread, stopped gracefully on drop.
struct Server {
    port: u16,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl Server {
    fn start(backend: &str, dir: &Path, extra: &[(&str, &str)]) -> Server {
        let mut vars: HashMap<String, String> = [
            ("KV_BACKEND", backend),
            ("DATA_DIR", dir.to_str().expect("utf-8 temp path")),
            ("HOST", "127.0.0.1"),
        ]
        .iter()
        .chain(extra)
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
        vars.insert("PORT".into(), "0".into());
        let config = Config::from_lookup(|name| vars.get(name).cloned()).expect("config");
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        listener.set_nonblocking(true).expect("nonblocking");
        let port = listener.local_addr().expect("addr").port();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let thread = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .expect("runtime");
            rt.block_on(async move {
                let listener = tokio::net::TcpListener::from_std(listener).expect("listener");
                walab::run(listener, config, async {
                    let _ = stopped.await;
                })
                .await
                .expect("server ran");
            });
        });
        let server = Server {
            port,
            stop: Some(stop),
            thread: Some(thread),
        };
        assert!(
            common::wait_healthy(port, Duration::from_secs(20)).is_some(),
            "server on {port} never became healthy"
        );
        server
    }

    fn metrics(&self) -> Metrics {
        let r = get(self.port, "/metrics");
        assert_eq!(r.status, 200);
        assert_eq!(
            r.header("content-type"),
            Some("text/plain; version=0.0.4; charset=utf-8")
        );
        Metrics(r.text)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// One scrape.
struct Metrics(String);

impl Metrics {
    /// The value of the sample `name` whose labels include every one of `labels`.
    fn value(&self, name: &str, labels: &[&str]) -> Option<f64> {
        self.0.lines().find_map(|line| {
            let rest = line.strip_prefix(name)?;
            let rest = rest.strip_prefix('{')?;
            let (label_text, value) = rest.rsplit_once("} ")?;
            labels
                .iter()
                .all(|l| label_text.split(',').any(|have| have == *l))
                .then(|| value.parse().ok())?
        })
    }

    /// The WAL sample `name` (labelled `backend="wal"`), which must exist.
    fn wal(&self, name: &str) -> f64 {
        self.value(name, &[r#"backend="wal""#])
            .unwrap_or_else(|| panic!("no {name}{{backend=\"wal\"}} in\n{}", self.0))
    }

    fn has_type(&self, name: &str, kind: &str) -> bool {
        self.0.lines().any(|l| l == format!("# TYPE {name} {kind}"))
    }
}

const WAL_COUNTERS: &[&str] = &[
    "walab_wal_appends_total",
    "walab_wal_written_bytes_total",
    "walab_wal_fsyncs_total",
    "walab_wal_checkpoints_total",
    "walab_wal_checkpoint_failures_total",
];
const WAL_HISTOGRAMS: &[&str] = &[
    "walab_wal_fsync_duration_seconds",
    "walab_wal_group_commit_batch_records",
    "walab_wal_checkpoint_duration_seconds",
];
const WAL_GAUGES: &[&str] = &[
    "walab_wal_log_size_bytes",
    "walab_wal_segments",
    "walab_wal_records_since_checkpoint",
    "walab_wal_sequence",
    "walab_wal_poisoned",
    "walab_wal_last_checkpoint_timestamp_seconds",
    "walab_wal_recovery_duration_seconds",
    "walab_wal_recovery_records_replayed",
    "walab_wal_recovery_torn_bytes",
];

#[test]
fn wal_metrics_exist_and_move_after_writes_and_a_checkpoint() {
    let dir = tempfile::tempdir().expect("temp dir");
    // Automatic checkpoints off, so the numbers below are the test's own.
    let server = Server::start("wal", dir.path(), &[("CHECKPOINT_THRESHOLD", "0")]);

    let before = server.metrics();
    for name in WAL_COUNTERS {
        assert!(before.has_type(name, "counter"), "{name} is not a counter");
        assert_eq!(before.wal(name), 0.0, "{name} before any write");
    }
    for name in WAL_HISTOGRAMS {
        assert!(
            before.has_type(name, "histogram"),
            "{name} is not a histogram"
        );
        assert_eq!(before.wal(&format!("{name}_count")), 0.0);
    }
    for name in WAL_GAUGES {
        assert!(before.has_type(name, "gauge"), "{name} is not a gauge");
        before.wal(name);
    }
    assert_eq!(before.wal("walab_wal_recovery_records_replayed"), 0.0);

    for i in 0..20 {
        let r = post_json(
            server.port,
            "/kv",
            &format!(r#"{{"key":"k{i}","value":"v{i}"}}"#),
        );
        assert_eq!(r.status, 200, "{}", r.text);
    }
    let after = server.metrics();
    assert_eq!(after.wal("walab_wal_appends_total"), 20.0);
    assert!(after.wal("walab_wal_written_bytes_total") > 20.0 * 10.0);
    // FSYNC=always: every write is synced, some batches may share a sync.
    let fsyncs = after.wal("walab_wal_fsyncs_total");
    assert!(fsyncs >= 1.0, "no fsync counted");
    assert_eq!(after.wal("walab_wal_fsync_duration_seconds_count"), fsyncs);
    assert!(after.wal("walab_wal_fsync_duration_seconds_sum") > 0.0);
    assert_eq!(after.wal("walab_wal_group_commit_batch_records_sum"), 20.0);
    assert!(after.wal("walab_wal_log_size_bytes") > before.wal("walab_wal_log_size_bytes"));
    assert_eq!(after.wal("walab_wal_records_since_checkpoint"), 20.0);
    assert_eq!(after.wal("walab_wal_sequence"), 20.0);
    assert_eq!(after.wal("walab_wal_segments"), 1.0);
    assert_eq!(after.wal("walab_items"), 20.0);
    assert_eq!(after.wal("walab_wal_poisoned"), 0.0);
    // Sub-millisecond fsync buckets exist.
    assert!(
        after
            .value(
                "walab_wal_fsync_duration_seconds_bucket",
                &[r#"backend="wal""#, r#"le="0.0001""#]
            )
            .is_some()
    );
    // The store operation and request metrics carry the backend too.
    assert_eq!(
        after.value(
            "walab_store_operation_duration_seconds_count",
            &[r#"backend="wal""#, r#"operation="put""#]
        ),
        Some(20.0)
    );
    assert_eq!(
        after.value(
            "walab_http_request_duration_seconds_count",
            &[
                r#"backend="wal""#,
                r#"route="/kv""#,
                r#"method="POST""#,
                r#"status="200""#
            ]
        ),
        Some(20.0)
    );

    let r = post(server.port, "/admin/checkpoint");
    assert_eq!(r.status, 200, "{}", r.text);
    let checkpointed = server.metrics();
    assert_eq!(checkpointed.wal("walab_wal_checkpoints_total"), 1.0);
    assert_eq!(
        checkpointed.wal("walab_wal_checkpoint_duration_seconds_count"),
        1.0
    );
    assert!(checkpointed.wal("walab_wal_checkpoint_duration_seconds_sum") > 0.0);
    assert!(checkpointed.wal("walab_wal_last_checkpoint_timestamp_seconds") > 1.6e9);
    assert_eq!(checkpointed.wal("walab_wal_records_since_checkpoint"), 0.0);
    assert!(
        checkpointed.wal("walab_wal_log_size_bytes") < after.wal("walab_wal_log_size_bytes"),
        "a checkpoint truncates the log"
    );
}

#[test]
fn recovery_metrics_describe_the_last_start() {
    let dir = tempfile::tempdir().expect("temp dir");
    {
        let server = Server::start("wal", dir.path(), &[("CHECKPOINT_THRESHOLD", "0")]);
        for i in 0..7 {
            let r = post_json(
                server.port,
                "/kv",
                &format!(r#"{{"key":"r{i}","value":{i}}}"#),
            );
            assert_eq!(r.status, 200);
        }
    }
    let server = Server::start(
        "wal",
        dir.path(),
        &[("CHECKPOINT_THRESHOLD", "0"), ("WALAB_RESTARTS", "2")],
    );
    let m = server.metrics();
    assert_eq!(m.wal("walab_wal_recovery_records_replayed"), 7.0);
    assert_eq!(m.wal("walab_recovered_entries"), 7.0);
    assert_eq!(m.wal("walab_wal_recovery_torn_bytes"), 0.0);
    assert!(m.wal("walab_wal_recovery_duration_seconds") > 0.0);
    assert!(m.has_type("walab_process_restarts_total", "counter"));
    assert_eq!(m.wal("walab_process_restarts_total"), 2.0);
    assert!(m.wal("walab_process_start_time_seconds") > 1.6e9);
}

#[test]
fn memory_and_sled_show_no_wal_series() {
    for backend in ["memory", "sled"] {
        let dir = tempfile::tempdir().expect("temp dir");
        let server = Server::start(backend, dir.path(), &[]);
        assert_eq!(
            post_json(server.port, "/kv", r#"{"key":"a","value":1}"#).status,
            200
        );
        let m = server.metrics();
        assert!(
            !m.0.contains("walab_wal_"),
            "{backend} shows WAL metrics:\n{}",
            m.0
        );
        let b = format!(r#"backend="{backend}""#);
        assert_eq!(m.value("walab_items", &[&b]), Some(1.0));
        assert_eq!(m.value("walab_process_restarts_total", &[&b]), Some(0.0));
    }
}

#[test]
fn process_metrics_and_build_info_are_there_on_every_backend() {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("after 1970")
        .as_secs_f64();
    for backend in ["wal", "memory", "sled"] {
        let dir = tempfile::tempdir().expect("temp dir");
        let server = Server::start(backend, dir.path(), &[]);
        let m = server.metrics();
        let label = format!(r#"backend="{backend}""#);
        let sample = |name: &str| {
            m.value(name, &[&label])
                .unwrap_or_else(|| panic!("no {name}{{{label}}} in\n{}", m.0))
        };
        assert!(m.has_type("process_cpu_seconds_total", "counter"));
        assert!(sample("process_cpu_seconds_total") >= 0.0);
        assert!(sample("process_resident_memory_bytes") > 1e6, "{backend}");
        // This test's process serves, so it holds at least the listener and the data dir.
        assert!(sample("process_open_fds") >= 3.0, "{backend}");
        let started = sample("process_start_time_seconds");
        assert!(
            started > now - 3600.0 && started <= now + 1.0,
            "started {started}, now {now}"
        );
        let version = format!(r#"version="{}""#, env!("CARGO_PKG_VERSION"));
        assert_eq!(
            m.value("walab_build_info", &[&label, &version]),
            Some(1.0),
            "{}",
            m.0
        );
    }
}

#[test]
fn a_failed_checkpoint_is_counted() {
    let dir = tempfile::tempdir().expect("temp dir");
    let server = Server::start("wal", dir.path(), &[("CHECKPOINT_THRESHOLD", "0")]);
    let r = post_json(server.port, "/kv", r#"{"key":"k","value":1}"#);
    assert_eq!(r.status, 200, "{}", r.text);
    // A directory where the checkpoint would write its snapshot: creating it fails.
    std::fs::create_dir(dir.path().join(format!("snapshot-{:020}.snap.tmp", 1))).expect("mkdir");
    let r = post(server.port, "/admin/checkpoint");
    assert!(r.status >= 500, "{} {}", r.status, r.text);
    let m = server.metrics();
    assert_eq!(m.wal("walab_wal_checkpoint_failures_total"), 1.0);
    assert_eq!(m.wal("walab_wal_checkpoints_total"), 0.0);
    assert_eq!(
        m.wal("walab_wal_poisoned"),
        0.0,
        "a failed checkpoint does not poison"
    );
}
