//! Durable appends per second at 1, 8 and 64 concurrent writers, group commit on and off,
//! beside the disk's raw write+fdatasync rate for the same record size, all on a real
//! directory in this run. Then write latency percentiles with and without a checkpoint of
//! a large state running.
//!
//! `cargo bench -p walab-wal --bench append` (set `WALAB_BENCH_DIR` to bench another disk,
//! `WALAB_BENCH_KEYS` to change the checkpointed state's size, default 1,000,000).

use std::fs::OpenOptions;
use std::io::Write;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use walab_wal::{Config, Engine, SyncPolicy, record};

const VALUE: [u8; 100] = [b'v'; 100];
const KEY_LEN: usize = 16;

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

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() - 1) as f64 * p) as usize]
}

/// p50/p99 of single writes (8 writers), first alone, then while checkpoints of a large
/// state run back to back. Printed, since criterion reports means.
fn latency_under_checkpoint(_c: &mut Criterion) {
    let keys: usize = std::env::var("WALAB_BENCH_KEYS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000_000);
    let dir = bench_dir();
    let cfg = Config::new(dir.path())
        .sync(SyncPolicy::Always)
        .checkpoint_threshold(0);
    let engine = Arc::new(Engine::open(cfg.clone().sync(SyncPolicy::Never)).expect("open"));
    for i in 0..keys {
        engine
            .set(format!("key-{i:08}").as_bytes(), &VALUE)
            .expect("fill");
    }
    engine.checkpoint().expect("checkpoint");
    drop(engine);
    let engine = Arc::new(Engine::open(cfg).expect("reopen"));
    let measure = |label: &str, engine: &Arc<Engine>| {
        let lat: Vec<Duration> = {
            let threads: Vec<_> = (0..8)
                .map(|w| {
                    let e = engine.clone();
                    std::thread::spawn(move || {
                        (0..400)
                            .map(|i| {
                                let t = Instant::now();
                                e.set(format!("lat-{w}-{i}").as_bytes(), &VALUE)
                                    .expect("set");
                                t.elapsed()
                            })
                            .collect::<Vec<_>>()
                    })
                })
                .collect();
            threads
                .into_iter()
                .flat_map(|t| t.join().expect("writer"))
                .collect()
        };
        let mut lat = lat;
        lat.sort();
        println!(
            "write latency {label}: p50 {:?} p99 {:?} ({} writes, 8 writers, {keys} keys in state)",
            percentile(&lat, 0.5),
            percentile(&lat, 0.99),
            lat.len()
        );
    };
    measure("without checkpoint", &engine);
    let stop = Arc::new(AtomicBool::new(false));
    let ck = {
        let (e, stop) = (engine.clone(), stop.clone());
        std::thread::spawn(move || {
            let mut n = 0;
            while !stop.load(Ordering::Relaxed) {
                e.checkpoint().expect("checkpoint");
                n += 1;
            }
            n
        })
    };
    // Let the first checkpoint get going before measuring.
    std::thread::sleep(Duration::from_millis(50));
    measure("during checkpoints", &engine);
    stop.store(true, Ordering::Relaxed);
    let n = ck.join().expect("checkpointer");
    println!("checkpoints completed during the measurement: {n}");
}

criterion_group!(
    benches,
    raw_fsync,
    durable_appends,
    latency_under_checkpoint
);
criterion_main!(benches);
