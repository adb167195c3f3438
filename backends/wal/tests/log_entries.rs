//! `Engine::log_entries`: the count since the checkpoint comes from sequence numbers and
//! must match counting the records in the files; the newest records come from the newest
//! segments only, within a record limit and a byte budget.

mod common;

use std::io::ErrorKind;

use common::*;
use walab_wal::fs::{Fault, FaultOp, Fs, SimFs};
use walab_wal::{Config, Engine, SyncPolicy, reader, segment, snapshot};

/// Count the records after the newest snapshot by reading every segment file, as the
/// listing used to.
fn counted_in_files(fs: &SimFs) -> u64 {
    let names = fs.list(&dir()).unwrap();
    let after = snapshot::find(&dir(), &names)
        .last()
        .map_or(0, |(seq, _)| *seq);
    segment::find(&dir(), &names)
        .iter()
        .map(|seg| {
            let bytes = fs.read(&seg.path).unwrap();
            reader::read(&bytes)
                .records
                .iter()
                .filter(|(_, r)| r.sequence > after)
                .count() as u64
        })
        .sum()
}

fn small_segments() -> Config {
    config(SyncPolicy::Always).segment_bytes(4096)
}

fn fill(e: &Engine, from: u32, n: u32) {
    let value = [b'v'; 300];
    for i in from..from + n {
        e.set(format!("k{i:04}").as_bytes(), &value).unwrap();
    }
}

#[track_caller]
fn total_matches_the_files(e: &Engine, fs: &SimFs) {
    let (_, total) = e.log_entries(0, 0).unwrap();
    assert_eq!(total, counted_in_files(fs));
}

#[test]
fn the_total_matches_counting_the_records_in_the_files() {
    let fs = SimFs::new(71);
    let e = open(&fs, small_segments()).unwrap();
    total_matches_the_files(&e, &fs);
    fill(&e, 0, 40);
    assert!(e.stats().segments > 2, "spans several segments");
    total_matches_the_files(&e, &fs);
    e.delete(b"k0001").unwrap();
    e.clear().unwrap();
    total_matches_the_files(&e, &fs);
    e.checkpoint().unwrap();
    total_matches_the_files(&e, &fs);
    fill(&e, 100, 25);
    total_matches_the_files(&e, &fs);
    // A checkpoint that fails leaves everything counted.
    fs.inject(Fault {
        op: FaultOp::Create,
        nth: 0,
        kind: ErrorKind::Other,
    });
    assert!(e.checkpoint().is_err());
    total_matches_the_files(&e, &fs);
    let fs = process_crash(&fs, e);
    let e = open(&fs, small_segments()).unwrap();
    total_matches_the_files(&e, &fs);
    assert_eq!(
        e.log_entries(0, 0).unwrap().1,
        e.recovery().records_replayed
    );
}

#[test]
fn the_newest_entries_come_from_the_newest_segments_only() {
    let fs = SimFs::new(73);
    let e = open(&fs, small_segments()).unwrap();
    fill(&e, 0, 60);
    let (all, total) = e.log_entries(1000, usize::MAX).unwrap();
    assert_eq!((all.len() as u64, total), (60, 60));
    assert!(all.windows(2).all(|w| w[0].sequence < w[1].sequence));

    // Spoil the oldest segment: reading it now fails, so a listing that succeeds did not
    // read it.
    let names = fs.list(&dir()).unwrap();
    let segs = segment::find(&dir(), &names);
    assert!(segs.len() >= 4, "{segs:?}");
    fs.overwrite(&segs[0].path, b"not a segment".to_vec());
    assert!(e.log_entries(1000, usize::MAX).is_err());

    // More than the active segment holds, fewer than all but the oldest hold.
    let (some, total) = e.log_entries(20, usize::MAX).unwrap();
    assert_eq!(total, 60);
    assert_eq!(some, all[40..], "the newest 20, oldest first");
}

#[test]
fn a_byte_budget_stops_at_older_entries_but_keeps_the_newest() {
    let fs = SimFs::new(74);
    let e = open(&fs, small_segments()).unwrap();
    fill(&e, 0, 30);
    let (all, _) = e.log_entries(1000, usize::MAX).unwrap();
    let per_entry = 5 + 300; // "k0000" and the value
    let (some, total) = e.log_entries(1000, 3 * per_entry + 1).unwrap();
    assert_eq!(total, 30);
    assert_eq!(
        some,
        all[27..],
        "as many of the newest as fit, oldest first"
    );
    let (one, _) = e.log_entries(1000, 0).unwrap();
    assert_eq!(one, all[29..], "the newest is always there");
    let (none, total) = e.log_entries(0, usize::MAX).unwrap();
    assert_eq!((none.len(), total), (0, 30));
}
