//! `recovery_open`: lay fuzzer bytes out as a data directory in a `SimFs` and open an
//! engine on it. Opening may fail (damage is refused); it must never panic. And when it
//! succeeds, life must go on:
//!
//! - the report's last sequence is at least the snapshot's;
//! - a write gets a sequence above it; with the `BIG` flag, more writes push the log past
//!   a segment roll-over; with `CHECKPOINT`, a checkpoint succeeds (a write may fail only
//!   when it would need sequence u64::MAX);
//! - the directory then reopens (same recovery mode) with no damage and no torn tail, to
//!   exactly the state the first engine had when it was dropped.
//!
//! Input layout (`encode` writes it, for the seeds):
//!
//! ```text
//! flags   u8   bits 0-1: recovery mode (0 tolerate-corrupted-tail, 1 absolute-consistency,
//!                        2 point-in-time, 3 tolerate-corrupted-tail)
//!              bit 2: FIX: recompute every checksum in the files before writing them
//!              bit 3: CHECKPOINT after the writes
//!              bit 4: BIG: write enough to roll over to a new segment
//! then up to 4 files, each:
//!   kind  u8   bits 0-1: 0 or 3 segment, 1 snapshot, 2 a leftover `*.tmp`
//!              bit 7: a name (u64 LE) follows; otherwise the name is the sequence in the
//!                     file's own header (bytes 12..20), or 1 if it is too short
//!   name  u64  (only with bit 7)
//!   len   u16  LE, cut to what is left
//!   bytes
//! ```

use std::path::{Path, PathBuf};
use std::sync::Arc;

use walab_wal::fs::{Fs, SimFs};
use walab_wal::{Commit, Config, Engine, RecoveryMode, segment, snapshot};

pub const FIX: u8 = 1 << 2;
pub const CHECKPOINT: u8 = 1 << 3;
pub const BIG: u8 = 1 << 4;

/// What a file in the fuzzed directory is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Segment,
    Snapshot,
    Tmp,
}

/// One file of the fuzzed directory.
#[derive(Debug, Clone)]
pub struct FileSpec {
    pub kind: Kind,
    pub name: Option<u64>,
    pub bytes: Vec<u8>,
}

const DIR: &str = "/fuzz/data";

/// Lay out `flags` and `files` as a fuzz input.
pub fn encode(flags: u8, files: &[FileSpec]) -> Vec<u8> {
    let mut out = vec![flags];
    for f in files {
        let kind = match f.kind {
            Kind::Segment => 0,
            Kind::Snapshot => 1,
            Kind::Tmp => 2,
        };
        out.push(kind | if f.name.is_some() { 0x80 } else { 0 });
        if let Some(n) = f.name {
            out.extend_from_slice(&n.to_le_bytes());
        }
        let len = u16::try_from(f.bytes.len()).expect("a seed file over 64 KiB");
        out.extend_from_slice(&len.to_le_bytes());
        out.extend_from_slice(&f.bytes);
    }
    out
}

/// Read a fuzz input back into flags and files.
pub fn decode(data: &[u8]) -> (u8, Vec<FileSpec>) {
    let Some((&flags, mut rest)) = data.split_first() else {
        return (0, Vec::new());
    };
    let mut files = Vec::new();
    while files.len() < 4 {
        let Some((&kind, r)) = rest.split_first() else {
            break;
        };
        rest = r;
        let mut name = None;
        if kind & 0x80 != 0 && rest.len() >= 8 {
            name = Some(crate::u64_at(rest, 0));
            rest = &rest[8..];
        }
        let len = if rest.len() >= 2 {
            let len = u16::from_le_bytes([rest[0], rest[1]]) as usize;
            rest = &rest[2..];
            len
        } else {
            rest.len()
        };
        let (bytes, r) = rest.split_at(len.min(rest.len()));
        rest = r;
        let kind = match kind & 3 {
            1 => Kind::Snapshot,
            2 => Kind::Tmp,
            _ => Kind::Segment,
        };
        files.push(FileSpec {
            kind,
            name,
            bytes: bytes.to_vec(),
        });
    }
    (flags, files)
}

fn mode(flags: u8) -> RecoveryMode {
    match flags & 3 {
        1 => RecoveryMode::AbsoluteConsistency,
        2 => RecoveryMode::PointInTime,
        _ => RecoveryMode::TolerateCorruptedTail,
    }
}

fn path_of(f: &FileSpec) -> PathBuf {
    let seq = f.name.unwrap_or(if f.bytes.len() >= 20 {
        crate::u64_at(&f.bytes, 12)
    } else {
        1
    });
    let name = match f.kind {
        Kind::Segment => segment::file_name(seq),
        Kind::Snapshot => snapshot::file_name(seq),
        Kind::Tmp => format!("{}.tmp", snapshot::file_name(seq)),
    };
    Path::new(DIR).join(name)
}

fn config(flags: u8) -> Config {
    Config::new(DIR)
        .recovery_mode(mode(flags))
        .checkpoint_threshold(0)
        .segment_bytes(4096)
}

pub fn check(data: &[u8]) {
    let (flags, files) = decode(data);
    let fs = SimFs::new(1);
    for f in &files {
        let mut bytes = f.bytes.clone();
        if flags & FIX != 0 {
            match f.kind {
                Kind::Segment => crate::fix_segment_crcs(&mut bytes),
                Kind::Snapshot | Kind::Tmp => crate::fix_snapshot_crc(&mut bytes),
            }
        }
        let path = path_of(f);
        let mut file = fs.create(&path).expect("SimFs create");
        file.append(&bytes).expect("SimFs append");
    }

    let Ok(engine) = Engine::open_with_fs(config(flags), Arc::new(fs.clone())) else {
        return;
    };
    let report = engine.recovery().clone();
    let snap_seq = report.snapshot.as_ref().map_or(0, |s| s.sequence);
    assert!(report.last_sequence >= snap_seq, "{report:?}");
    // Numbering goes on past the newest segment's name (finding 2, fixed): otherwise a
    // later roll-over would create a segment that sorts before it.
    let newest_segment = fs
        .list(Path::new(DIR))
        .expect("SimFs list")
        .iter()
        .filter_map(|n| segment::parse_name(n))
        .max()
        .unwrap_or(0);
    assert!(
        newest_segment.saturating_sub(1) <= report.last_sequence,
        "numbering restarts below segment {newest_segment}: {report:?}"
    );

    // Every write must succeed with a higher sequence than the one before, except that the
    // last sequence number (u64::MAX) is never handed out: a log at u64::MAX - 1 refuses.
    let mut last = report.last_sequence;
    let mut write = |what: &str, result: walab_wal::Result<Option<Commit>>| match result {
        Ok(Some(commit)) => {
            assert!(
                commit.sequence > last,
                "{what} got sequence {} after {last}",
                commit.sequence
            );
            last = commit.sequence;
        }
        Ok(None) => {}
        Err(e) => assert_eq!(last, u64::MAX - 1, "{what} failed: {e}"),
    };
    write(
        "a write after a clean open",
        engine.set(b"fuzz-key", b"fuzz-value").map(Some),
    );
    if flags & BIG != 0 {
        write(
            "a big write",
            engine.set(b"fuzz-big", &[0x5a; 4096]).map(Some),
        );
        write("a delete", engine.delete(b"fuzz-key"));
        write(
            "a write into the next segment",
            engine.set(b"fuzz-after", b"x").map(Some),
        );
    }
    if flags & CHECKPOINT != 0 {
        engine
            .checkpoint()
            .expect("a checkpoint after a clean open");
    }
    let expected = engine.state();
    drop(engine);

    let again = match Engine::open_with_fs(config(flags), Arc::new(fs.clone())) {
        Ok(e) => e,
        Err(e) => panic!("the directory an engine left does not reopen: {e}\nfirst: {report:?}"),
    };
    let second = again.recovery();
    assert_eq!(second.torn_bytes_discarded, 0, "{second:?}");
    assert_eq!(second.torn_at, None, "{second:?}");
    assert!(
        again.state() == expected,
        "the state changed across a clean reopen"
    );
}
