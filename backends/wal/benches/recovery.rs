//! Recovery speed: replaying 1M records of ~100-byte values, and loading a snapshot of 1M
//! keys. `cargo bench -p walab-wal --bench recovery` (`WALAB_BENCH_RECORDS` to change the
//! count).

use std::time::Duration;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use walab_wal::{Config, Engine, SyncPolicy};

const VALUE: [u8; 100] = [b'v'; 100];

fn records() -> u64 {
    std::env::var("WALAB_BENCH_RECORDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000_000)
}

fn fill(dir: &std::path::Path, n: u64, checkpoint: bool) -> u64 {
    let cfg = Config::new(dir)
        .sync(SyncPolicy::Never)
        .checkpoint_threshold(0);
    let e = Engine::open(cfg).expect("open");
    for i in 0..n {
        e.set(format!("key-{i:08}").as_bytes(), &VALUE)
            .expect("set");
    }
    if checkpoint {
        e.checkpoint().expect("checkpoint");
    }
    let bytes = e.stats().log_bytes;
    drop(e);
    bytes
}

fn recovery(c: &mut Criterion) {
    let n = records();
    let mut g = c.benchmark_group("recovery");
    g.sample_size(10).measurement_time(Duration::from_secs(15));

    let dir = tempfile::tempdir_in(".").expect("tempdir");
    let log_bytes = fill(dir.path(), n, false);
    println!(
        "replay: {n} records, {:.1} MB of log",
        log_bytes as f64 / 1e6
    );
    g.throughput(Throughput::Elements(n));
    g.bench_function(format!("replay_{n}_records"), |b| {
        b.iter(|| {
            let e = Engine::open(Config::new(dir.path())).expect("open");
            assert_eq!(e.recovery().records_replayed, n);
        })
    });

    let dir = tempfile::tempdir_in(".").expect("tempdir");
    fill(dir.path(), n, true);
    g.bench_function(format!("snapshot_load_{n}_keys"), |b| {
        b.iter(|| {
            let e = Engine::open(Config::new(dir.path())).expect("open");
            assert_eq!(e.len() as u64, n);
        })
    });
    g.finish();
}

criterion_group!(benches, recovery);
criterion_main!(benches);
