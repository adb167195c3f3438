//! Torn tails and flipped bits: recovery cuts what a crash explains, refuses the rest, and
//! never returns a wrong value or panics.

mod common;

use std::collections::BTreeMap;
use std::path::PathBuf;

use common::*;
use walab_wal::fs::SimFs;
use walab_wal::{Error, RecoveryMode, SyncPolicy};

fn segment_path() -> PathBuf {
    dir().join("00000000000000000001.wal")
}

/// Three records on disk; returns the crash image, the segment bytes, the offset where the
/// last record starts, and the state after each record (index 0 = empty).
fn three_records() -> (SimFs, Vec<u8>, usize, Vec<BTreeMap<String, String>>) {
    let fs = SimFs::new(11);
    let e = open(&fs, config(SyncPolicy::Always)).unwrap();
    let mut states = vec![contents(&e)];
    e.set(b"alpha", b"one").unwrap();
    states.push(contents(&e));
    e.set(b"beta", b"two").unwrap();
    states.push(contents(&e));
    let before_last = fs.read_live(&segment_path()).unwrap().len();
    e.set(b"alpha", b"three").unwrap();
    states.push(contents(&e));
    let fs = process_crash(&fs, e);
    let bytes = fs.read_live(&segment_path()).unwrap();
    (fs, bytes, before_last, states)
}

#[test]
fn a_torn_tail_at_every_byte_of_the_last_record_recovers_the_records_before_it() {
    let (fs, bytes, last_start, states) = three_records();
    for cut in last_start..bytes.len() {
        let image = fs.after_power_loss(true);
        image.overwrite(&segment_path(), bytes[..cut].to_vec());
        let e = open(&image, config(SyncPolicy::Always)).unwrap();
        assert_eq!(contents(&e), states[2], "cut at {cut}");
        assert_eq!(e.recovery().torn_bytes_discarded, (cut - last_start) as u64);
        // The cut is repaired: new writes follow the good records and survive a reopen.
        e.set(b"gamma", b"four").unwrap();
        let again = process_crash(&image, e);
        let e = open(&again, config(SyncPolicy::Always)).unwrap();
        assert_eq!(e.len(), 3, "cut at {cut}");
        assert_eq!(e.recovery().torn_bytes_discarded, 0);
    }
}

#[test]
fn a_torn_tail_followed_by_zeros_is_cut_off() {
    let (fs, mut bytes, last_start, states) = three_records();
    bytes.truncate(last_start + 5);
    bytes.extend(std::iter::repeat_n(0, 4096));
    fs.overwrite(&segment_path(), bytes);
    let e = open(&fs, config(SyncPolicy::Always)).unwrap();
    assert_eq!(contents(&e), states[2]);
    assert_eq!(e.recovery().torn_bytes_discarded, 5 + 4096);
}

#[test]
fn absolute_consistency_refuses_even_a_torn_tail() {
    let (fs, bytes, last_start, _) = three_records();
    fs.overwrite(&segment_path(), bytes[..last_start + 3].to_vec());
    let cfg = config(SyncPolicy::Always).recovery_mode(RecoveryMode::AbsoluteConsistency);
    match open(&fs, cfg) {
        Err(Error::Corrupt { file, offset, .. }) => {
            assert_eq!(file, segment_path());
            assert_eq!(offset, last_start as u64);
        }
        other => panic!("expected corruption, got {other:?}"),
    }
}

#[test]
fn a_flipped_bit_anywhere_never_yields_a_wrong_value() {
    let (fs, bytes, last_start, states) = three_records();
    for mode in [
        RecoveryMode::TolerateCorruptedTail,
        RecoveryMode::AbsoluteConsistency,
        RecoveryMode::PointInTime,
    ] {
        for at in 0..bytes.len() {
            let mut damaged = bytes.clone();
            damaged[at] ^= 1 << (at % 8);
            let image = fs.after_power_loss(true);
            image.overwrite(&segment_path(), damaged);
            let result = open(&image, config(SyncPolicy::Always).recovery_mode(mode));
            match (mode, result) {
                (_, Ok(e)) => {
                    let got = contents(&e);
                    assert!(
                        states.contains(&got),
                        "{mode} byte {at}: wrong state {got:?}"
                    );
                    assert_ne!(mode, RecoveryMode::AbsoluteConsistency, "byte {at}");
                    if mode == RecoveryMode::TolerateCorruptedTail {
                        assert!(
                            at >= last_start,
                            "damage before the tail at {at} was accepted"
                        );
                    }
                }
                (_, Err(Error::Corrupt { file, .. })) => {
                    assert_eq!(file, segment_path());
                    assert_ne!(mode, RecoveryMode::PointInTime, "byte {at}");
                }
                (_, Err(other)) => panic!("{mode} byte {at}: unexpected error {other}"),
            }
        }
    }
}

#[test]
fn a_damaged_snapshot_stops_start_up_with_its_name_and_offset() {
    let fs = SimFs::new(12);
    let e = open(&fs, config(SyncPolicy::Always)).unwrap();
    for i in 0..5 {
        e.set(format!("k{i}").as_bytes(), b"value").unwrap();
    }
    e.checkpoint().unwrap();
    let fs = process_crash(&fs, e);
    let snap = dir().join("snapshot-00000000000000000005.snap");
    let bytes = fs.read_live(&snap).unwrap();
    for at in 0..bytes.len() {
        let mut damaged = bytes.clone();
        damaged[at] ^= 0x40;
        let image = fs.after_power_loss(true);
        image.overwrite(&snap, damaged);
        for mode in [
            RecoveryMode::TolerateCorruptedTail,
            RecoveryMode::PointInTime,
        ] {
            match open(&image, config(SyncPolicy::Always).recovery_mode(mode)) {
                Err(Error::Corrupt { file, .. }) => assert_eq!(file, snap),
                other => panic!("byte {at}: expected corruption, got {other:?}"),
            }
        }
    }
}

/// A directory holding only `file` (a segment or snapshot name) with `bytes`.
fn image_with(name: &str, bytes: &[u8]) -> SimFs {
    use walab_wal::fs::Fs;
    let fs = SimFs::new(13);
    let mut f = fs.create(&dir().join(name)).unwrap();
    f.append(bytes).unwrap();
    fs
}

fn segment_with_record(sequence: u64) -> Vec<u8> {
    use walab_wal::record::{self, RecordRef};
    use walab_wal::{Op, segment};
    let mut bytes = segment::header(1).to_vec();
    let rec = RecordRef {
        sequence,
        timestamp_micros: 1,
        op: Op::Set,
        key: b"k",
        value: b"v",
    };
    record::encode(&rec, &mut bytes);
    bytes
}

// Found by the recovery_open fuzz target: a sequence number of u64::MAX on disk made
// recovery (and then the next write) overflow, a panic in debug builds and a sequence
// number going back to 0 in release builds.
#[test]
fn a_snapshot_at_the_last_sequence_number_is_refused_not_overflowed() {
    use walab_wal::snapshot;
    let fs = SimFs::new(1);
    let (path, _) = snapshot::write(&fs, &dir(), u64::MAX, &Default::default()).unwrap();
    let bytes = fs.read_live(&path).unwrap();
    let image = image_with(&snapshot::file_name(u64::MAX), &bytes);
    match open(&image, config(SyncPolicy::Always)) {
        Err(Error::Corrupt { file, offset, .. }) => assert_eq!((file, offset), (path, 12)),
        other => panic!("expected corruption, got {other:?}"),
    }
}

#[test]
fn a_record_at_the_last_sequence_number_is_refused_not_overflowed() {
    for mode in [
        RecoveryMode::TolerateCorruptedTail,
        RecoveryMode::AbsoluteConsistency,
        RecoveryMode::PointInTime,
    ] {
        let image = image_with("00000000000000000001.wal", &segment_with_record(u64::MAX));
        match open(&image, config(SyncPolicy::Always).recovery_mode(mode)) {
            Err(Error::Corrupt { file, offset, .. }) => {
                assert_eq!((file, offset), (segment_path(), 24), "{mode}")
            }
            other => panic!("{mode}: expected corruption, got {other:?}"),
        }
    }
}

#[test]
fn a_log_one_short_of_the_last_sequence_number_refuses_the_next_write() {
    // Sequence numbers leave no gap: a snapshot covers everything before the record.
    use walab_wal::{segment, snapshot};
    let last = u64::MAX - 1;
    let mut bytes = segment_with_record(last);
    bytes[..segment::HEADER_LEN].copy_from_slice(&segment::header(last));
    let image = image_with(&segment::file_name(last), &bytes);
    snapshot::write(&image, &dir(), last - 1, &walab_wal::State::default()).unwrap();
    let e = open(&image, config(SyncPolicy::Always)).unwrap();
    assert!(matches!(e.set(b"k", b"w"), Err(Error::Corrupt { .. })));
    assert_eq!(e.get(b"k").as_deref(), Some(&b"v"[..]));
    let fs = process_crash(&image, e);
    let e = open(&fs, config(SyncPolicy::Always)).unwrap();
    assert_eq!(e.recovery().last_sequence, u64::MAX - 1);
    assert_eq!(e.get(b"k").as_deref(), Some(&b"v"[..]));
}
