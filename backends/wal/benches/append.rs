//! Durable appends per second at 1, 8 and 64 concurrent writers, group commit on and off,
//! beside the disk's raw write+fdatasync rate for the same record size, all on a real
//! directory in this run; reads of existing keys (`get`, ns per get) from an engine holding
//! 100,000 keys. Then write latency percentiles with and without checkpoints of a large
//! state running back to back, and their ratio.
//!
//! `cargo bench -p walab-wal --bench append` (set `WALAB_BENCH_DIR` to bench another disk,
//! `WALAB_BENCH_KEYS` to change the checkpointed state's size, default 1,000,000, 0 to skip
//! the checkpoint part; `WALAB_BENCH_SNAPSHOT_RATE` to pace snapshots at that many bytes/s). `cargo bench -p walab-wal --bench append -- nomatch` skips every
//! criterion benchmark and runs only the printed parts (the `get:` line's own timing, a
//! second, and the checkpoint part); `-- get` the reads (and the checkpoint part, unless
//! `WALAB_BENCH_KEYS=0`). The checkpoint part prints three lines that start with
//! `checkpoint latency` (without, during, and the ratio with the lab's target: p99 at most
//! 2×); the reads, besides criterion's time per get, one line that starts with `get:`.

use std::fs::OpenOptions;
use std::hint::black_box;
use std::io::Write;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use walab_wal::{Config, Engine, SyncPolicy, record};

const VALUE: [u8; 100] = [b'v'; 100];
const KEY_LEN: usize = 16;
/// Keys in the engine the `get` benchmark reads from.
const GET_KEYS: usize = 100_000;
/// Writers in the checkpoint-latency measurement.
const LATENCY_WRITERS: usize = 8;
/// How long writes are timed without a checkpoint, and at least during checkpoints.
const WINDOW: Duration = Duration::from_secs(2);
/// Checkpoints that must finish, at least, while writes are timed during checkpoints.
const CHECKPOINTS_DURING: usize = 2;
/// ... unless this much time passes first.
const MAX_WINDOW: Duration = Duration::from_secs(120);

fn bench_dir() -> tempfile::TempDir {
    match std::env::var_os("WALAB_BENCH_DIR") {
        Some(d) => tempfile::tempdir_in(d),
        None => tempfile::tempdir_in("."),
    }
    .expect("a temporary directory for the bench")
}

fn raw_fsync(c: &mut Criterion) {
    let dir = bench_dir();
    let mut f = OpenOptions::new()
        .create(true)
        .append(true)
        .open(dir.path().join("raw"))
        .expect("open");
    let buf = vec![7u8; record::encoded_len(KEY_LEN, VALUE.len())];
    let mut g = c.benchmark_group("raw_disk");
    g.throughput(Throughput::Elements(1));
    g.bench_function("write+fdatasync", |b| {
        b.iter(|| {
            f.write_all(&buf).expect("write");
            f.sync_data().expect("fdatasync");
        })
    });
    g.finish();
}

fn durable_appends(c: &mut Criterion) {
    let mut g = c.benchmark_group("durable_appends");
    g.sample_size(10).measurement_time(Duration::from_secs(4));
    for group_commit in [true, false] {
        for writers in [1usize, 8, 64] {
            let dir = bench_dir();
            let cfg = Config::new(dir.path())
                .sync(SyncPolicy::Always)
                .group_commit(group_commit)
                .checkpoint_threshold(0);
            let engine = Arc::new(Engine::open(cfg).expect("open"));
            let per_writer = 64usize;
            g.throughput(Throughput::Elements((writers * per_writer) as u64));
            let name = if group_commit {
                "group_commit_on"
            } else {
                "group_commit_off"
            };
            g.bench_with_input(BenchmarkId::new(name, writers), &writers, |b, &writers| {
                b.iter_custom(|iters| {
                    let started = Instant::now();
                    for it in 0..iters {
                        let threads: Vec<_> = (0..writers)
                            .map(|w| {
                                let e = engine.clone();
                                std::thread::spawn(move || {
                                    for i in 0..per_writer {
                                        let key = format!("{w:06}-{it:04}-{i:04}");
                                        e.set(key.as_bytes(), &VALUE).expect("set");
                                    }
                                })
                            })
                            .collect();
                        for t in threads {
                            t.join().expect("writer");
                        }
                    }
                    started.elapsed()
                })
            });
        }
    }
    g.finish();
}

/// Reads of keys that are there, in a fixed pseudo-random order (not the map's), from an
/// engine holding [`GET_KEYS`] keys with 100-byte values: criterion's time is ns per get.
fn gets(c: &mut Criterion) {
    let dir = bench_dir();
    let engine = Engine::open(
        Config::new(dir.path())
            .sync(SyncPolicy::Never)
            .checkpoint_threshold(0),
    )
    .expect("open");
    let keys: Vec<Vec<u8>> = (0..GET_KEYS)
        .map(|i| format!("key-{i:08}").into_bytes())
        .collect();
    for k in &keys {
        engine.set(k, &VALUE).expect("fill");
    }
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    let order: Vec<usize> = (0..GET_KEYS)
        .map(|_| {
            // xorshift64
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x % GET_KEYS as u64) as usize
        })
        .collect();
    let mut g = c.benchmark_group("get");
    g.throughput(Throughput::Elements(1));
    g.bench_function(BenchmarkId::new("existing_key", GET_KEYS), |b| {
        let mut i = 0usize;
        b.iter(|| {
            let key = &keys[order[i]];
            i = if i + 1 == GET_KEYS { 0 } else { i + 1 };
            let value = engine.get(black_box(key));
            assert!(value.is_some(), "a key the bench wrote is missing");
            value
        })
    });
    g.finish();
    // The same loop timed by hand, the best of 5 passes over every key: one line to quote.
    let best = (0..5)
        .map(|_| {
            let started = Instant::now();
            for &k in &order {
                black_box(engine.get(black_box(&keys[k])));
            }
            started.elapsed()
        })
        .min()
        .unwrap_or_default();
    println!(
        "get: {:.0} ns per get of an existing key ({GET_KEYS} keys with {}-byte values in the \
         engine, one reader, random order; best of 5 passes of {GET_KEYS} gets)",
        best.as_nanos() as f64 / GET_KEYS as f64,
        VALUE.len()
    );
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() - 1) as f64 * p) as usize]
}

/// "189 µs", "8.30 ms".
fn show(d: Duration) -> String {
    if d < Duration::from_millis(1) {
        format!("{} µs", d.as_micros())
    } else {
        format!("{:.2} ms", d.as_secs_f64() * 1000.0)
    }
}

/// Single writes by [`LATENCY_WRITERS`] writers until `stop` is set; every write's latency,
/// sorted.
fn timed_writes(engine: &Arc<Engine>, tag: &str, until: impl FnOnce()) -> Vec<Duration> {
    let stop = Arc::new(AtomicBool::new(false));
    let threads: Vec<_> = (0..LATENCY_WRITERS)
        .map(|w| {
            let (e, stop, tag) = (engine.clone(), stop.clone(), tag.to_owned());
            std::thread::spawn(move || {
                let mut lat = Vec::new();
                let mut i = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    let key = format!("lat-{tag}-{w}-{i}");
                    let t = Instant::now();
                    e.set(key.as_bytes(), &VALUE).expect("set");
                    lat.push(t.elapsed());
                    i += 1;
                }
                lat
            })
        })
        .collect();
    until();
    stop.store(true, Ordering::Relaxed);
    let mut lat: Vec<Duration> = threads
        .into_iter()
        .flat_map(|t| t.join().expect("writer"))
        .collect();
    lat.sort();
    lat
}

/// p50/p99 of single durable writes ([`LATENCY_WRITERS`] writers, `FSYNC=always`, group
/// commit) on a state of `WALAB_BENCH_KEYS` keys: first with no checkpoint, then while
/// checkpoints of the whole state run back to back (the window ends when [`CHECKPOINTS_DURING`]
/// of them have finished inside it, and lasts at least [`WINDOW`]), and the ratio. Printed, since
/// criterion reports means. The lab's target: a checkpoint at most doubles p99.
fn latency_under_checkpoint(_c: &mut Criterion) {
    let keys: usize = std::env::var("WALAB_BENCH_KEYS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000_000);
    if keys == 0 {
        println!("checkpoint latency: skipped (WALAB_BENCH_KEYS=0)");
        return;
    }
    // Snapshot pacing to compare (bytes/s; default: the engine's default).
    let pace: Option<u64> = std::env::var("WALAB_BENCH_SNAPSHOT_RATE")
        .ok()
        .and_then(|v| v.parse().ok());
    let dir = bench_dir();
    let mut cfg = Config::new(dir.path())
        .sync(SyncPolicy::Always)
        .checkpoint_threshold(0);
    if let Some(pace) = pace {
        cfg = cfg.snapshot_bytes_per_sec(pace);
    }
    println!(
        "checkpoint latency: snapshots paced at {} (WALAB_BENCH_SNAPSHOT_RATE)",
        match cfg.snapshot_bytes_per_sec {
            0 => "no limit".to_string(),
            r => format!("{} MB/s", r / 1_000_000),
        }
    );
    let engine = Arc::new(Engine::open(cfg.clone().sync(SyncPolicy::Never)).expect("open"));
    for i in 0..keys {
        engine
            .set(format!("key-{i:08}").as_bytes(), &VALUE)
            .expect("fill");
    }
    engine.checkpoint().expect("checkpoint");
    drop(engine);
    let engine = Arc::new(Engine::open(cfg).expect("reopen"));

    let started = Instant::now();
    let quiet = timed_writes(&engine, "quiet", || std::thread::sleep(WINDOW));
    let quiet_window = started.elapsed();

    let stop = Arc::new(AtomicBool::new(false));
    let finished = Arc::new(AtomicUsize::new(0));
    let checkpointer = {
        let (e, stop, finished) = (engine.clone(), stop.clone(), finished.clone());
        std::thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                e.checkpoint().expect("checkpoint");
                finished.fetch_add(1, Ordering::Relaxed);
            }
        })
    };
    // Let the first checkpoint get going before timing writes.
    std::thread::sleep(Duration::from_millis(50));
    let started = Instant::now();
    let mut during_checkpoints = 0;
    let busy = timed_writes(&engine, "busy", || {
        let first = finished.load(Ordering::Relaxed);
        while started.elapsed() < MAX_WINDOW {
            during_checkpoints = finished.load(Ordering::Relaxed) - first;
            if during_checkpoints >= CHECKPOINTS_DURING && started.elapsed() >= WINDOW {
                break;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    });
    let busy_window = started.elapsed();
    stop.store(true, Ordering::Relaxed);
    checkpointer.join().expect("checkpointer");

    let (q50, q99) = (percentile(&quiet, 0.5), percentile(&quiet, 0.99));
    let (b50, b99) = (percentile(&busy, 0.5), percentile(&busy, 0.99));
    println!(
        "checkpoint latency, without checkpoints: p50 {} p99 {} ({} writes by \
         {LATENCY_WRITERS} writers in {:.2} s, FSYNC=always, {keys} keys in the state)",
        show(q50),
        show(q99),
        quiet.len(),
        quiet_window.as_secs_f64()
    );
    println!(
        "checkpoint latency, during back-to-back checkpoints of {keys} keys: p50 {} p99 {} \
         ({} writes in {:.2} s, {during_checkpoints} checkpoints finished in that time{})",
        show(b50),
        show(b99),
        busy.len(),
        busy_window.as_secs_f64(),
        if during_checkpoints < CHECKPOINTS_DURING {
            format!(
                "; stopped after {} s, before {CHECKPOINTS_DURING} finished",
                MAX_WINDOW.as_secs()
            )
        } else {
            String::new()
        }
    );
    let r50 = b50.as_secs_f64() / q50.as_secs_f64().max(1e-9);
    let r99 = b99.as_secs_f64() / q99.as_secs_f64().max(1e-9);
    println!(
        "checkpoint latency, during ÷ without: p50 {r50:.2}× p99 {r99:.2}× (target: p99 at most \
         2×: {})",
        if r99 <= 2.0 {
            "met".to_owned()
        } else {
            format!("MISSED by {:.2}×", r99 - 2.0)
        }
    );
}

criterion_group!(
    benches,
    raw_fsync,
    durable_appends,
    gets,
    latency_under_checkpoint
);
criterion_main!(benches);
