//! Disk room reserved for the active segment: a new segment reserves `segment_bytes`
//! before it takes records, the file's length stays what was written (the format is
//! unchanged, so a reader never meets a tail of zeros), and the active segment reopened at
//! start-up reserves its room again. The full-disk behaviour this buys is checked on a real
//! tmpfs by `tests/e2e/abuse.sh diskfull`.

use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use walab_wal::{Config, Engine, SyncPolicy};

const SEGMENT_BYTES: u64 = 1 << 20;

fn config(dir: &Path) -> Config {
    Config::new(dir)
        .sync(SyncPolicy::Always)
        .checkpoint_threshold(0)
        .segment_bytes(SEGMENT_BYTES)
}

fn segments(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "wal"))
        .collect();
    v.sort();
    v
}

/// Bytes the file system has given the file, whatever its length says.
fn allocated(path: &Path) -> u64 {
    fs::metadata(path).unwrap().blocks() * 512
}

#[test]
fn the_active_segment_has_its_room_before_its_records_and_keeps_its_length() {
    let tmp = tempfile::tempdir().unwrap();
    let e = Engine::open(config(tmp.path())).unwrap();
    for i in 0..100u32 {
        e.set(format!("k{i}").as_bytes(), &[b'v'; 100]).unwrap();
    }
    let room = e.stats().reserved_room;
    let seg = &segments(tmp.path())[0];
    let len = fs::metadata(seg).unwrap().len();
    assert!(
        len < 20_000,
        "the file holds only what was written: {len} bytes"
    );
    if room == 0 {
        // A file system that cannot reserve (no fallocate): nothing more to check here.
        eprintln!("this file system reserves no room; skipping the allocation checks");
        return;
    }
    assert_eq!(
        room,
        SEGMENT_BYTES - len,
        "the rest of the segment is reserved"
    );
    assert!(
        allocated(seg) >= SEGMENT_BYTES,
        "{} bytes allocated for a segment of {SEGMENT_BYTES}",
        allocated(seg)
    );
    // The room shrinks as records go in.
    e.set(b"one more", &[b'v'; 1000]).unwrap();
    assert!(e.stats().reserved_room < room);

    // A checkpoint starts a new segment, which reserves its own room at once.
    e.checkpoint().unwrap();
    let newest = segments(tmp.path()).pop().unwrap();
    assert_ne!(&newest, seg);
    assert!(allocated(&newest) >= SEGMENT_BYTES);
    let before = e.stats().reserved_room;
    assert!(before > SEGMENT_BYTES - 100, "{before}");
    drop(e);

    // Reopened: the same data, the room reserved again.
    let e = Engine::open(config(tmp.path())).unwrap();
    assert_eq!(e.get(b"k42").as_deref(), Some(&[b'v'; 100][..]));
    assert_eq!(e.stats().reserved_room, before);
}
