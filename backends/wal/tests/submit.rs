//! The asynchronous write path and the rule that spaces automatic checkpoints.

mod common;

use std::sync::mpsc;
use std::time::{Duration, Instant};

use common::*;
use walab_wal::fs::SimFs;
use walab_wal::{Bytes, Engine, Op, SyncPolicy};

/// Wait until `cond` holds, up to `limit`; whether it did.
fn eventually(limit: Duration, cond: impl Fn() -> bool) -> bool {
    let until = Instant::now() + limit;
    while Instant::now() < until {
        if cond() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    cond()
}

#[test]
fn submitted_writes_complete_in_order_without_a_thread_each() {
    let fs = SimFs::new(11);
    let e = open(&fs, config(SyncPolicy::Always).checkpoint_threshold(0)).unwrap();
    let (tx, rx) = mpsc::channel();
    // One thread submits them all: nothing waits between submissions, so the writer sees
    // a queue and batches it.
    for i in 0..500u32 {
        let tx = tx.clone();
        let key = Bytes::from(format!("k{i}").as_bytes());
        e.submit(Op::Set, key, Bytes::from(&b"v"[..]), move |r| {
            let _ = tx.send((i, r));
        });
    }
    drop(tx);
    let mut done: Vec<(u32, u64)> = rx
        .iter()
        .map(|(i, r)| (i, r.expect("write succeeds").commit.sequence))
        .collect();
    assert_eq!(done.len(), 500, "every completion is called once");
    done.sort_by_key(|(i, _)| *i);
    assert!(
        done.windows(2).all(|w| w[1].1 == w[0].1 + 1),
        "sequence numbers follow submission order"
    );
    let stats = e.stats();
    assert!(
        stats.batch_sizes.max > 1,
        "queued writes share a batch: {:?}",
        stats.batch_sizes
    );
    assert!(
        stats.fsyncs < 500,
        "fewer syncs than writes: {}",
        stats.fsyncs
    );
    drop(e);
    let e = open(&fs, config(SyncPolicy::Always)).unwrap();
    assert_eq!(e.len(), 500);
}

#[test]
fn a_delete_of_an_absent_key_completes_at_once_and_logs_nothing() {
    let fs = SimFs::new(12);
    let e = open(&fs, config(SyncPolicy::Always)).unwrap();
    let before = e.stats().appends;
    let (tx, rx) = mpsc::channel();
    e.submit(
        Op::Delete,
        Bytes::from(&b"nope"[..]),
        Bytes::from(&b""[..]),
        move |r| {
            let _ = tx.send(r);
        },
    );
    let written = rx.recv().unwrap().unwrap();
    assert!(!written.existed);
    assert_eq!(e.stats().appends, before);
}

/// `n` writes of `bytes`-byte values to keys `prefix-0..n`.
fn write(e: &Engine, prefix: &str, n: usize, bytes: usize) {
    let value = vec![b'x'; bytes];
    for i in 0..n {
        e.set(format!("{prefix}-{i}").as_bytes(), &value).unwrap();
    }
}

#[test]
fn automatic_checkpoints_wait_for_the_log_to_outgrow_the_snapshot() {
    let fs = SimFs::new(13);
    let e = open(&fs, config(SyncPolicy::Never).checkpoint_threshold(10)).unwrap();
    write(&e, "big", 200, 1000);
    assert!(
        eventually(Duration::from_secs(5), || e.stats().checkpoints >= 1),
        "with no snapshot yet, the threshold alone decides"
    );
    e.checkpoint().unwrap();
    let taken = e.stats().checkpoints;
    // 50 small records: over the threshold of 10, but a log of ~3 KB is nothing next to a
    // snapshot of ~200 KB, so rewriting the snapshot now would cost 60 bytes per byte logged.
    write(&e, "small", 50, 10);
    std::thread::sleep(Duration::from_millis(200));
    assert_eq!(
        e.stats().checkpoints,
        taken,
        "no automatic checkpoint while the log is small beside the snapshot"
    );
    assert!(e.stats().records_since_checkpoint >= 50);
    // Another ~200 KB of log: as big as the snapshot, so a checkpoint is due.
    write(&e, "big", 200, 1000);
    assert!(
        eventually(Duration::from_secs(5), || e.stats().checkpoints > taken),
        "once the log has grown by the snapshot's size, a checkpoint runs"
    );
}

#[test]
fn growth_percent_zero_checkpoints_on_the_threshold_alone() {
    let fs = SimFs::new(14);
    let config = config(SyncPolicy::Never)
        .checkpoint_threshold(10)
        .checkpoint_growth_percent(0);
    let e = open(&fs, config).unwrap();
    write(&e, "big", 200, 1000);
    e.checkpoint().unwrap();
    let taken = e.stats().checkpoints;
    write(&e, "small", 50, 10);
    assert!(
        eventually(Duration::from_secs(5), || e.stats().checkpoints > taken),
        "every 10 records, whatever the snapshot's size"
    );
}
