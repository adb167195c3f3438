//! A deleted or lost file: recovery proves the snapshot and the segments hold every
//! sequence number from 1 to the last, and refuses a gap (naming the missing range) rather
//! than start without acknowledged writes; point-in-time recovery keeps what precedes it;
//! `inspect` reports it as damage. Real files, as a user's `rm` would leave them.

use std::fs;
use std::path::{Path, PathBuf};

use walab_wal::{Config, Engine, Error, RecoveryMode, SyncPolicy};

fn config(dir: &Path) -> Config {
    Config::new(dir)
        .sync(SyncPolicy::Always)
        .checkpoint_threshold(0)
        .segment_bytes(4096)
}

fn key(i: u64) -> Vec<u8> {
    format!("key-{i:05}").into_bytes()
}

/// Write `n` keys (one record each, sequences 1..=n) across many small segments.
fn write_keys(dir: &Path, n: u64) {
    let e = Engine::open(config(dir)).unwrap();
    for i in 1..=n {
        e.set(&key(i), b"a value of some thirty bytes...").unwrap();
    }
}

fn files(dir: &Path, suffix: &str) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.to_string_lossy().ends_with(suffix))
        .collect();
    v.sort();
    v
}

/// The first sequence number a segment file holds, from its name.
fn first_sequence(path: &Path) -> u64 {
    let name = path.file_name().unwrap().to_str().unwrap();
    name.trim_end_matches(".wal").parse().unwrap()
}

#[test]
fn a_deleted_middle_segment_is_refused_with_the_missing_range() {
    let tmp = tempfile::tempdir().unwrap();
    write_keys(tmp.path(), 600);
    let segs = files(tmp.path(), ".wal");
    assert!(segs.len() >= 4, "want several segments: {segs:?}");
    let gone = &segs[segs.len() / 2];
    let (first, last) = (
        first_sequence(gone),
        first_sequence(&segs[segs.len() / 2 + 1]) - 1,
    );
    fs::remove_file(gone).unwrap();

    match Engine::open(config(tmp.path())) {
        Err(Error::MissingRecords {
            first: f,
            last: l,
            next,
            ..
        }) => {
            assert_eq!((f, l), (first, last));
            assert_eq!(next, segs[segs.len() / 2 + 1]);
        }
        other => panic!("expected the gap to be refused, got {other:?}"),
    }
    // Refusing changed nothing: the files after the gap are still there to be put back.
    assert_eq!(files(tmp.path(), ".wal").len(), segs.len() - 1);
    let message = Engine::open(config(tmp.path())).unwrap_err().to_string();
    assert!(
        message.contains(&format!("records {first}..={last} are missing")),
        "{message}"
    );
    assert!(!message.contains('\n'), "one line: {message}");

    let mut out = Vec::new();
    let found = walab_wal::inspect::inspect(tmp.path(), false, &mut out).unwrap();
    let text = String::from_utf8(out).unwrap();
    assert_eq!(found.damage.len(), 1, "{text}");
    assert!(
        text.contains(&format!("MISSING records {first}..={last}")),
        "{text}"
    );
}

#[test]
fn point_in_time_keeps_what_precedes_the_gap_and_says_so() {
    let tmp = tempfile::tempdir().unwrap();
    write_keys(tmp.path(), 600);
    let segs = files(tmp.path(), ".wal");
    let gone = &segs[2];
    let first = first_sequence(gone);
    fs::remove_file(gone).unwrap();

    let cfg = config(tmp.path()).recovery_mode(RecoveryMode::PointInTime);
    let e = Engine::open(cfg).unwrap();
    assert_eq!(
        e.len() as u64,
        first - 1,
        "every record before the gap, none after"
    );
    assert!(e.get(&key(first - 1)).is_some());
    assert!(e.get(&key(first)).is_none());
    let report = e.recovery();
    assert_eq!(report.missing_records.map(|(a, _)| a), Some(first));
    assert_eq!(report.last_sequence, first - 1);
    // The log goes on from there, and a restart in the default mode accepts it.
    e.set(b"after", b"the gap").unwrap();
    drop(e);
    let e = Engine::open(config(tmp.path())).unwrap();
    assert_eq!(e.len() as u64, first);
    assert!(e.recovery().missing_records.is_none());
}

#[test]
fn a_deleted_snapshot_is_refused_even_though_every_segment_reads_cleanly() {
    let tmp = tempfile::tempdir().unwrap();
    {
        let e = Engine::open(config(tmp.path())).unwrap();
        for i in 1..=300 {
            e.set(&key(i), b"before the checkpoint").unwrap();
        }
        e.checkpoint().unwrap();
        for i in 301..=400 {
            e.set(&key(i), b"after the checkpoint").unwrap();
        }
    }
    let snaps = files(tmp.path(), ".snap");
    assert_eq!(
        snaps.len(),
        1,
        "{:?}",
        fs::read_dir(tmp.path()).unwrap().count()
    );
    fs::remove_file(&snaps[0]).unwrap();

    match Engine::open(config(tmp.path())) {
        Err(Error::MissingRecords { first, last, .. }) => {
            assert_eq!(first, 1);
            assert!((300..400).contains(&last), "last {last}");
        }
        other => panic!("expected the lost snapshot to be refused, got {other:?}"),
    }
    let found = walab_wal::inspect::inspect(tmp.path(), false, &mut Vec::new()).unwrap();
    assert_eq!(found.damage.len(), 1, "{found:?}");
}

#[test]
fn a_directory_with_every_file_opens_and_inspects_clean() {
    // The other half of the property: the check never refuses what the engine wrote,
    // across roll-overs and a checkpoint.
    let tmp = tempfile::tempdir().unwrap();
    {
        let e = Engine::open(config(tmp.path())).unwrap();
        for i in 1..=500 {
            e.set(&key(i), b"v").unwrap();
            if i % 170 == 0 {
                e.checkpoint().unwrap();
            }
        }
        e.delete(&key(3)).unwrap();
    }
    let e = Engine::open(config(tmp.path())).unwrap();
    assert_eq!(e.len(), 499);
    assert!(e.recovery().missing_records.is_none());
    drop(e);
    let found = walab_wal::inspect::inspect(tmp.path(), false, &mut Vec::new()).unwrap();
    assert!(found.damage.is_empty(), "{found:?}");
}
