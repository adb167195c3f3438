//! An offline, read-only look at a data directory (like etcd's `dump-logs`): the snapshot,
//! every segment, every record, and every checksum verified. It never changes a file, so it
//! is safe to run beside a live server or on a copy of a damaged directory. For the same
//! reason it does not take the directory's lock (a running server holds it), and it passes
//! the lock file by like any file that is not a segment or a snapshot.

use std::io::{self, Write};
use std::path::Path;

use crate::fs::{Fs, RealFs};
use crate::reader::{self, End};
use crate::{segment, snapshot};

/// What the inspection found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Findings {
    /// Valid records in all segments.
    pub records: u64,
    /// Segments read.
    pub segments: u64,
    /// Torn tails found (what a crash leaves; recovery would cut them off).
    pub torn_tails: u64,
    /// Damage recovery would refuse by default, each with file and offset.
    pub damage: Vec<String>,
}

fn printable(bytes: &[u8]) -> String {
    let s = String::from_utf8_lossy(bytes);
    if s.chars().count() > 80 {
        format!("{}…", s.chars().take(80).collect::<String>())
    } else {
        s.into_owned()
    }
}

/// Inspect `dir`, writing a report to `out`; with `records`, print every record too.
pub fn inspect(dir: &Path, records: bool, out: &mut dyn Write) -> io::Result<Findings> {
    let fs = RealFs;
    let names = fs.list(dir)?;
    let mut f = Findings::default();
    let snaps = snapshot::find(dir, &names);
    if snaps.is_empty() {
        writeln!(out, "snapshot: none")?;
    }
    for (seq, path) in &snaps {
        let bytes = fs.read(path)?;
        match snapshot::decode(path, &bytes, Some(*seq)) {
            Ok(l) => writeln!(
                out,
                "snapshot {}: sequence {}, {} keys, {} bytes, checksum ok",
                path.display(),
                l.sequence,
                l.state.len(),
                l.bytes
            )?,
            Err(e) => {
                writeln!(out, "snapshot DAMAGED: {e}")?;
                f.damage.push(e.to_string());
            }
        }
    }
    let segs = segment::find(dir, &names);
    for (i, seg) in segs.iter().enumerate() {
        let is_last = i + 1 == segs.len();
        let file = reader::read_file(&fs, seg, None)?;
        let bytes = &file.bytes;
        f.segments += 1;
        if let Err(reason) = file.header {
            writeln!(
                out,
                "segment {} DAMAGED at byte 0: {reason}",
                seg.path.display()
            )?;
            f.damage
                .push(format!("{} at byte 0: {reason}", seg.path.display()));
            continue;
        }
        let read = file.records();
        let (first, last) = (
            read.records.first().map(|(_, r)| r.sequence),
            read.records.last().map(|(_, r)| r.sequence),
        );
        writeln!(
            out,
            "segment {}: {} bytes, {} records{}",
            seg.path.display(),
            bytes.len(),
            read.records.len(),
            match (first, last) {
                (Some(a), Some(b)) => format!(", sequences {a}..={b}"),
                _ => String::new(),
            }
        )?;
        f.records += read.records.len() as u64;
        if records {
            for (offset, r) in &read.records {
                writeln!(
                    out,
                    "  @{offset:<10} seq {:<10} {:<6} {} {}",
                    r.sequence,
                    r.op,
                    printable(r.key),
                    printable(r.value)
                )?;
            }
        }
        match read.end {
            End::Clean => {}
            End::Torn { offset, reason } if is_last => {
                f.torn_tails += 1;
                writeln!(
                    out,
                    "  torn tail at byte {offset} ({reason}): {} bytes recovery would cut off",
                    bytes.len() as u64 - offset
                )?;
            }
            End::Torn { offset, reason } | End::Damaged { offset, reason } => {
                writeln!(out, "  DAMAGED at byte {offset}: {reason}")?;
                f.damage
                    .push(format!("{} at byte {offset}: {reason}", seg.path.display()));
            }
        }
    }
    writeln!(
        out,
        "{} segments, {} records, {} torn tails, {} damaged places",
        f.segments,
        f.records,
        f.torn_tails,
        f.damage.len()
    )?;
    Ok(f)
}
