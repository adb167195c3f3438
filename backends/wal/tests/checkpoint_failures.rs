//! Failures that leave the log intact fail only what they touch: a checkpoint that cannot
//! create its segment, write its snapshot or delete old files fails, is counted and
//! reported, and writes go on; a size roll-over that cannot create the next segment fails
//! no write at all. A failed sync of the log still poisons.

mod common;

use std::io::ErrorKind;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::*;
use walab_wal::fs::{Fault, FaultOp, Fs, SimFs};
use walab_wal::{Config, Engine, Error, Observer, SyncPolicy};

/// Remembers every failed checkpoint it is told about.
#[derive(Default)]
struct Failures(Mutex<Vec<(String, bool)>>);

impl Observer for Failures {
    fn checkpoint_failed(&self, error: &Error, automatic: bool) {
        self.0.lock().unwrap().push((error.to_string(), automatic));
    }
}

fn names(fs: &SimFs) -> Vec<String> {
    let mut n = fs.list(&dir()).unwrap();
    n.sort();
    n
}

fn segments(fs: &SimFs) -> Vec<String> {
    names(fs)
        .into_iter()
        .filter(|n| n.ends_with(".wal"))
        .collect()
}

fn write_keys(e: &Engine, range: std::ops::Range<u32>) {
    for i in range {
        e.set(format!("k{i}").as_bytes(), b"v").unwrap();
    }
}

/// Crash the process under `e`, reopen with `config`, and check that everything it held
/// came back.
fn reopened_after_a_crash(fs: &SimFs, e: Engine, config: Config) -> Engine {
    let expected = contents(&e);
    let fs = process_crash(fs, e);
    let e = open(&fs, config).unwrap();
    assert_eq!(
        contents(&e),
        expected,
        "what was acknowledged came back whole"
    );
    e
}

#[test]
fn a_checkpoint_that_cannot_create_its_segment_fails_alone() {
    let fs = SimFs::new(61);
    let seen = Arc::new(Failures::default());
    let e = open(&fs, config(SyncPolicy::Always).observer(seen.clone())).unwrap();
    write_keys(&e, 0..5);
    // What EMFILE looks like from std: no ErrorKind of its own.
    fs.inject(Fault {
        op: FaultOp::Create,
        nth: 0,
        kind: ErrorKind::Other,
    });
    let err = e.checkpoint().unwrap_err();
    assert!(matches!(err, Error::Io { op: "create", .. }), "{err}");

    let s = e.stats();
    assert_eq!(s.poisoned, None);
    assert_eq!(s.checkpoint_failures, 1);
    assert_eq!(s.checkpoints, 0);
    assert_eq!(
        s.records_since_checkpoint, 5,
        "nothing counts as checkpointed"
    );
    let last = s.last_checkpoint_failure.expect("the failure is kept");
    assert!(last.error.contains("injected create failure"), "{last:?}");
    assert!(!last.automatic);
    assert_eq!(
        *seen.0.lock().unwrap(),
        vec![(err.to_string(), false)],
        "the observer heard of it once, as a manual checkpoint"
    );
    assert_eq!(segments(&fs), ["00000000000000000001.wal"]);

    e.set(b"after", b"1").unwrap();
    let e = reopened_after_a_crash(&fs, e, config(SyncPolicy::Always));
    assert_eq!(e.recovery().records_replayed, 6);
}

#[test]
fn a_half_made_segment_is_removed_and_only_a_failed_removal_poisons() {
    // The header write of the new segment fails after creating the file.
    let fs = SimFs::new(62);
    let e = open(&fs, config(SyncPolicy::Always)).unwrap();
    write_keys(&e, 0..5);
    fs.inject(Fault {
        op: FaultOp::Write,
        nth: 0,
        kind: ErrorKind::StorageFull,
    });
    assert!(e.checkpoint().is_err());
    assert_eq!(e.stats().poisoned, None);
    assert_eq!(
        segments(&fs),
        ["00000000000000000001.wal"],
        "the half-made segment is gone"
    );
    e.set(b"after", b"1").unwrap();
    // Gone durably: a power loss now does not bring it back behind the active segment.
    let image = power_loss(&fs, e);
    let e = open(&image, config(SyncPolicy::Always)).unwrap();
    assert_eq!(e.len(), 6);
    assert_eq!(e.recovery().torn_bytes_discarded, 0);
    drop(e);

    // Now the half-made file cannot be removed either: recovery would meet it behind the
    // active segment, so the engine says so and stops taking writes.
    let fs = SimFs::new(63);
    let e = open(&fs, config(SyncPolicy::Always)).unwrap();
    write_keys(&e, 0..5);
    fs.inject(Fault {
        op: FaultOp::Write,
        nth: 0,
        kind: ErrorKind::StorageFull,
    });
    fs.inject(Fault {
        op: FaultOp::Remove,
        nth: 0,
        kind: ErrorKind::Other,
    });
    assert!(e.checkpoint().is_err());
    let cause = e.poisoned().expect("poisoned");
    assert!(cause.contains("could not be removed"), "{cause}");
    assert!(matches!(e.set(b"x", b"1"), Err(Error::Poisoned { .. })));
    reopened_after_a_crash(&fs, e, config(SyncPolicy::Always));
}

#[test]
fn a_snapshot_that_hits_a_full_disk_leaves_no_temporary_file() {
    let fs = SimFs::new(64);
    let e = open(&fs, config(SyncPolicy::Always)).unwrap();
    write_keys(&e, 0..5);
    // Write 0 is the new segment's header; write 1 is the snapshot's first chunk.
    fs.inject(Fault {
        op: FaultOp::Write,
        nth: 1,
        kind: ErrorKind::StorageFull,
    });
    let err = e.checkpoint().unwrap_err();
    assert!(err.to_string().contains(".snap.tmp"), "{err}");
    assert!(
        !names(&fs).iter().any(|n| n.ends_with(".tmp")),
        "{:?}",
        names(&fs)
    );
    let s = e.stats();
    assert_eq!((s.checkpoint_failures, s.poisoned), (1, None));
    assert_eq!(s.records_since_checkpoint, 5);

    e.set(b"after", b"1").unwrap();
    let r = e.checkpoint().expect("the disk has room again");
    assert_eq!(r.records_truncated, 6);
    let s = e.stats();
    assert_eq!((s.checkpoints, s.checkpoint_failures), (1, 1));
    assert_eq!(s.checkpoint_retry_in, None, "a success ends the wait");
    let e = reopened_after_a_crash(&fs, e, config(SyncPolicy::Always));
    assert_eq!(e.recovery().records_replayed, 0);
}

#[test]
fn old_files_that_cannot_be_deleted_fail_the_checkpoint_but_not_the_snapshot() {
    let fs = SimFs::new(65);
    let e = open(&fs, config(SyncPolicy::Always)).unwrap();
    write_keys(&e, 0..5);
    fs.inject(Fault {
        op: FaultOp::Remove,
        nth: 0,
        kind: ErrorKind::Other,
    });
    assert!(e.checkpoint().is_err());
    let s = e.stats();
    assert_eq!((s.checkpoint_failures, s.poisoned), (1, None));
    // The snapshot is durable: its records are checkpointed even though the segment it
    // made redundant is still there, and still counted as live.
    assert_eq!(s.records_since_checkpoint, 0);
    assert_eq!(s.segments, 2);
    assert_eq!(e.log_entries(100, usize::MAX).unwrap().1, 0);

    e.set(b"after", b"1").unwrap();
    let r = e.checkpoint().unwrap();
    assert_eq!(r.segments_removed, 2, "the leftover is deleted this time");
    assert_eq!(segments(&fs).len(), 1);
    reopened_after_a_crash(&fs, e, config(SyncPolicy::Always));
}

#[test]
fn a_failed_sync_of_the_log_in_a_checkpoint_still_poisons() {
    // Under `never` the active segment holds unsynced records; the checkpoint's roll-over
    // syncs it first, and that sync fails.
    let fs = SimFs::new(66);
    let e = open(&fs, config(SyncPolicy::Never)).unwrap();
    write_keys(&e, 0..5);
    fs.inject(Fault {
        op: FaultOp::Sync,
        nth: 0,
        kind: ErrorKind::Other,
    });
    let err = e.checkpoint().unwrap_err();
    assert!(
        matches!(
            err,
            Error::Io {
                op: "fdatasync",
                ..
            }
        ),
        "{err}"
    );
    assert!(e.poisoned().is_some());
    assert_eq!(e.stats().checkpoint_failures, 1);
    let syncs = fs.syncs();
    assert!(matches!(e.set(b"x", b"1"), Err(Error::Poisoned { .. })));
    assert!(
        matches!(e.checkpoint(), Err(Error::Poisoned { .. })),
        "refused, not tried"
    );
    assert_eq!(fs.syncs(), syncs, "no sync may follow a failed one");
    assert_eq!(
        e.stats().checkpoint_failures,
        1,
        "a refusal is not another failure"
    );

    // And on the write path, as always.
    let fs = SimFs::new(67);
    let e = open(&fs, config(SyncPolicy::Always)).unwrap();
    e.set(b"a", b"1").unwrap();
    fs.inject(Fault {
        op: FaultOp::Sync,
        nth: 0,
        kind: ErrorKind::Other,
    });
    assert!(matches!(e.set(b"b", b"2"), Err(Error::WriteFailed { .. })));
    assert!(e.poisoned().is_some());
}

#[test]
fn a_roll_over_that_cannot_create_the_next_segment_fails_no_write() {
    let fs = SimFs::new(68);
    let cfg = config(SyncPolicy::Always).segment_bytes(4096);
    let e = open(&fs, cfg.clone()).unwrap();
    let value = [b'x'; 500];
    let mut i = 0;
    while e.stats().log_bytes < 4096 {
        e.set(format!("k{i}").as_bytes(), &value).unwrap();
        i += 1;
    }
    assert_eq!(e.stats().segments, 1, "full, not rolled over yet");
    fs.inject(Fault {
        op: FaultOp::Create,
        nth: 0,
        kind: ErrorKind::Other,
    });
    let c = e
        .set(format!("k{i}").as_bytes(), &value)
        .expect("the batch goes into the active segment");
    let s = e.stats();
    assert_eq!((s.roll_over_failures, s.segments), (1, 1));
    assert_eq!(s.poisoned, None);
    assert!(s.log_bytes > 4096, "the active segment grew past its size");
    let first = PathBuf::from("/data/00000000000000000001.wal");
    let bytes = fs.read_live(&first).unwrap();
    let read = walab_wal::reader::read(&bytes);
    assert_eq!(
        read.records.last().map(|(_, r)| r.sequence),
        Some(c.sequence)
    );
    for j in i + 1..i + 4 {
        e.set(format!("k{j}").as_bytes(), &value).unwrap();
    }
    let e = reopened_after_a_crash(&fs, e, cfg);
    assert_eq!(e.recovery().torn_bytes_discarded, 0);
}

#[test]
fn a_failed_automatic_checkpoint_is_reported_and_a_manual_one_is_tried_at_once() {
    let fs = SimFs::new(69);
    let seen = Arc::new(Failures::default());
    let e = open(
        &fs,
        config(SyncPolicy::Always)
            .checkpoint_threshold(5)
            .observer(seen.clone()),
    )
    .unwrap();
    fs.inject(Fault {
        op: FaultOp::Create,
        nth: 0,
        kind: ErrorKind::Other,
    });
    write_keys(&e, 0..5);
    // The automatic checkpoint runs on its own thread: wait for it to have failed.
    for _ in 0..2000 {
        if e.stats().checkpoint_failures > 0 {
            break;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    let s = e.stats();
    assert_eq!(s.checkpoint_failures, 1);
    assert!(s.last_checkpoint_failure.is_some_and(|f| f.automatic));
    assert_eq!(s.poisoned, None);
    assert!(
        seen.0
            .lock()
            .unwrap()
            .iter()
            .all(|(_, automatic)| *automatic)
    );

    write_keys(&e, 5..8);
    let r = e
        .checkpoint()
        .expect("tried at once, and the fault is gone");
    assert_eq!(r.sequence, 8);
    assert_eq!(e.stats().checkpoint_retry_in, None);
}
