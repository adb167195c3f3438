//! Write the seed corpora: real records, segments and snapshots made by the engine itself
//! (on a `SimFs`), and recovery inputs built from them. Every seed is run through its
//! target's check before it is written.
//!
//! Run from `backends/wal/fuzz`: `cargo run --example gen_seeds` (writes `corpus/<target>/`).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use walab_wal::State;
use walab_wal::fs::{Fs, SimFs};
use walab_wal::reader;
use walab_wal::{Config, Engine, segment, snapshot};
use walab_wal_fuzz::recovery_open::{self, BIG, CHECKPOINT, FIX, FileSpec, Kind};

fn files(fs: &SimFs, dir: &Path) -> Vec<(String, Vec<u8>)> {
    let mut names = fs.list(dir).expect("list");
    names.sort();
    names
        .into_iter()
        .map(|n| {
            let bytes = fs.read(&dir.join(&n)).expect("read");
            (n, bytes)
        })
        .collect()
}

fn one(files: &[(String, Vec<u8>)], suffix: &str) -> Vec<u8> {
    let found: Vec<_> = files.iter().filter(|(n, _)| n.ends_with(suffix)).collect();
    assert_eq!(
        found.len(),
        1,
        "{suffix}: {:?}",
        files.iter().map(|f| &f.0).collect::<Vec<_>>()
    );
    found[0].1.clone()
}

fn write(target: &str, name: &str, bytes: &[u8], check: fn(&[u8])) {
    check(bytes);
    let dir = PathBuf::from("corpus").join(target);
    std::fs::create_dir_all(&dir).expect("mkdir corpus");
    std::fs::write(dir.join(format!("seed-{name}")), bytes).expect("write seed");
}

fn main() {
    let fs = SimFs::new(7);
    let dir = Path::new("/seed");
    let engine = Engine::open_with_fs(
        Config::new(dir).checkpoint_threshold(0),
        Arc::new(fs.clone()),
    )
    .expect("open");
    engine.set(b"user-1", br#"{"n":1}"#).expect("set");
    engine
        .set(b"user-2", br#"{"name":"ada","tags":["a","b"]}"#)
        .expect("set");
    engine.delete(b"user-1").expect("delete");
    engine.set(b"", b"empty key").expect("set");
    engine.clear().expect("clear");
    engine.set(b"k", &[0xab; 300]).expect("set");
    let before = files(&fs, dir);
    let seg1 = one(&before, ".wal");

    engine.set(b"user-3", b"three").expect("set");
    engine.checkpoint().expect("checkpoint");
    engine.set(b"user-4", b"four").expect("set");
    engine.delete(b"user-3").expect("delete");
    let after = files(&fs, dir);
    let snap = one(&after, ".snap");
    let seg2 = one(&after, ".wal");
    drop(engine);

    // Records: each one of the first segment on its own.
    let read = reader::read(&seg1);
    let offsets: Vec<usize> = read.records.iter().map(|(o, _)| *o as usize).collect();
    for (i, &start) in offsets.iter().enumerate() {
        let end = offsets.get(i + 1).copied().unwrap_or(seg1.len());
        let op = read.records[i].1.op.as_str().to_ascii_lowercase();
        write(
            "record_decode",
            &format!("{i}-{op}"),
            &seg1[start..end],
            walab_wal_fuzz::record_decode::check,
        );
    }

    // Segments: whole, after a checkpoint, header only, torn mid-record.
    let seg_check = walab_wal_fuzz::segment_read::check;
    write("segment_read", "six-records", &seg1, seg_check);
    write("segment_read", "after-checkpoint", &seg2, seg_check);
    write(
        "segment_read",
        "header-only",
        &segment::header(1),
        seg_check,
    );
    let torn = &seg1[..seg1.len() - 100];
    write("segment_read", "torn", torn, seg_check);

    // Snapshots: the engine's, and an empty one.
    let snap_check = walab_wal_fuzz::snapshot_decode::check;
    write("snapshot_decode", "two-keys", &snap, snap_check);
    let empty_fs = SimFs::new(1);
    let (p, _) = snapshot::write(&empty_fs, dir, 5, &State::new()).expect("empty snapshot");
    let empty = empty_fs.read(&p).expect("read");
    write("snapshot_decode", "empty", &empty, snap_check);

    // Recovery: directories the engine could leave.
    let rec_check = recovery_open::check;
    let seg = |bytes: &[u8]| FileSpec {
        kind: Kind::Segment,
        name: None,
        bytes: bytes.to_vec(),
    };
    let snp = |bytes: &[u8]| FileSpec {
        kind: Kind::Snapshot,
        name: None,
        bytes: bytes.to_vec(),
    };
    let seeds: Vec<(&str, u8, Vec<FileSpec>)> = vec![
        ("one-segment", 0, vec![seg(&seg1)]),
        (
            "snapshot-and-segment",
            CHECKPOINT,
            vec![snp(&snap), seg(&seg2)],
        ),
        ("torn-tail", BIG, vec![seg(torn)]),
        (
            "two-segments-point-in-time",
            2,
            vec![seg(&seg1), seg(&seg2)],
        ),
        (
            "leftover-tmp",
            FIX | CHECKPOINT | BIG,
            vec![
                snp(&snap),
                FileSpec {
                    kind: Kind::Tmp,
                    name: None,
                    bytes: snap.clone(),
                },
                seg(&seg1),
                seg(&seg2),
            ],
        ),
        ("empty-dir", 1, vec![]),
    ];
    for (name, flags, specs) in seeds {
        write(
            "recovery_open",
            name,
            &recovery_open::encode(flags, &specs),
            rec_check,
        );
    }
    println!("seeds written under corpus/");
}
