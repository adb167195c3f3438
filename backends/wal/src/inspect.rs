//! An offline, read-only look at a data directory (like etcd's `dump-logs`): the snapshot,
//! every segment, every record, and every checksum verified. It never changes a file, so it
//! is safe to run beside a live server or on a copy of a damaged directory. For the same
//! reason it does not take the directory's lock (a running server holds it), and it passes
//! the lock file by like any file that is not a segment or a snapshot.
//!
//! [`walk`] reads and tells a [`Report`] what it found, file by file; [`inspect`] is the
//! report for a person. Other reports (the server's `walab inspect --json`) read the same
//! findings, so the two can never say different things.

use std::io::{self, Write};
use std::path::{Path, PathBuf};

use crate::fs::{Fs, RealFs};
use crate::reader::{self, End};
use crate::record::Op;
use crate::{segment, snapshot};

/// What the inspection found, in sum.
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

/// One snapshot file, as read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SnapshotFinding {
    /// Its checksum holds.
    Valid {
        /// The file.
        path: PathBuf,
        /// The sequence number it covers.
        sequence: u64,
        /// Keys in it.
        keys: u64,
        /// Its size.
        bytes: u64,
    },
    /// It cannot be used.
    Damaged {
        /// The file.
        path: PathBuf,
        /// Why (names file and offset).
        error: String,
    },
}

/// One segment file, as read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SegmentFinding {
    /// The file.
    pub path: PathBuf,
    /// Its size.
    pub bytes: u64,
    /// Valid records in it.
    pub record_count: u64,
    /// The first and last sequence numbers in it, if it holds any record.
    pub sequences: Option<(u64, u64)>,
    /// Every valid record, when they were asked for (else empty).
    pub records: Vec<RecordFinding>,
    /// Sequence numbers (first, last) that should come before this segment's records but
    /// are in no file: a segment, or the snapshot, was deleted or lost. Recovery refuses it.
    pub missing_before: Option<(u64, u64)>,
    /// How it ends.
    pub end: SegmentEnd,
}

/// How a segment ends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SegmentEnd {
    /// Every byte belongs to a valid record.
    Clean,
    /// The header is bad: nothing in the file was read.
    BadHeader {
        /// Why.
        reason: &'static str,
    },
    /// The last segment ends in bytes that are no record and that no record follows: what
    /// a crash mid-write leaves, which recovery cuts off.
    TornTail {
        /// Where the valid part ends.
        offset: u64,
        /// Why the bytes there are not a record.
        reason: &'static str,
        /// Bytes recovery would cut off.
        bytes_cut: u64,
    },
    /// A bad record that a crash cannot explain (a valid one follows, or the segment is not
    /// the last).
    Damaged {
        /// Where the damage starts.
        offset: u64,
        /// Why the bytes there are not a record.
        reason: &'static str,
    },
}

/// One valid record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordFinding {
    /// Where it starts in its segment.
    pub offset: u64,
    /// Its sequence number.
    pub sequence: u64,
    /// When it was written, in Unix microseconds.
    pub timestamp_micros: u64,
    /// What it does.
    pub op: Op,
    /// Its key.
    pub key: Vec<u8>,
    /// Its value.
    pub value: Vec<u8>,
}

/// Told what [`walk`] reads, file by file, so a report can be written as it goes rather
/// than after every record of every segment is held at once.
pub trait Report {
    /// The snapshots (usually one, or none).
    fn snapshots(&mut self, snapshots: &[SnapshotFinding]) -> io::Result<()>;
    /// One segment, in order.
    fn segment(&mut self, segment: &SegmentFinding) -> io::Result<()>;
    /// The sums, last.
    fn summary(&mut self, findings: &Findings) -> io::Result<()>;
}

/// Read `dir` (every record too, with `records`) and tell `report` what is there.
pub fn walk(dir: &Path, records: bool, report: &mut dyn Report) -> io::Result<Findings> {
    let fs = RealFs;
    let names = fs.list(dir)?;
    let mut f = Findings::default();
    let mut snapshots = Vec::new();
    for (seq, path) in snapshot::find(dir, &names) {
        let bytes = fs.read(&path)?;
        snapshots.push(match snapshot::decode(&path, &bytes, Some(seq)) {
            Ok(l) => SnapshotFinding::Valid {
                path,
                sequence: l.sequence,
                keys: l.state.len() as u64,
                bytes: l.bytes,
            },
            Err(e) => {
                f.damage.push(e.to_string());
                SnapshotFinding::Damaged {
                    path,
                    error: e.to_string(),
                }
            }
        });
    }
    report.snapshots(&snapshots)?;
    // Recovery starts from the newest snapshot; from there every sequence number must be
    // in some segment, one after another.
    let mut covered = snapshots
        .iter()
        .rev()
        .find_map(|s| match s {
            SnapshotFinding::Valid { sequence, .. } => Some(*sequence),
            SnapshotFinding::Damaged { .. } => None,
        })
        .unwrap_or(0);
    let segs = segment::find(dir, &names);
    for (i, seg) in segs.iter().enumerate() {
        let is_last = i + 1 == segs.len();
        let file = reader::read_file(&fs, seg, None)?;
        let bytes = file.bytes.len() as u64;
        f.segments += 1;
        let mut finding = SegmentFinding {
            path: seg.path.clone(),
            bytes,
            record_count: 0,
            sequences: None,
            records: Vec::new(),
            missing_before: None,
            end: SegmentEnd::Clean,
        };
        if let Err(reason) = file.header {
            f.damage
                .push(format!("{} at byte 0: {reason}", seg.path.display()));
            finding.end = SegmentEnd::BadHeader { reason };
            report.segment(&finding)?;
            continue;
        }
        let read = file.records();
        if seg.first_sequence > covered.saturating_add(1) {
            let missing = (covered + 1, seg.first_sequence - 1);
            f.damage.push(format!(
                "records {}..={} are missing before {}: no snapshot or segment holds them (a file was deleted or lost)",
                missing.0,
                missing.1,
                seg.path.display()
            ));
            finding.missing_before = Some(missing);
            covered = seg.first_sequence - 1;
        }
        let mut skipped_at = None;
        for (offset, r) in &read.records {
            if r.sequence > covered.saturating_add(1) && skipped_at.is_none() {
                skipped_at = Some(*offset);
            }
            covered = covered.max(r.sequence);
        }
        covered = covered.max(seg.first_sequence.saturating_sub(1));
        finding.record_count = read.records.len() as u64;
        finding.sequences = read
            .records
            .first()
            .zip(read.records.last())
            .map(|((_, a), (_, b))| (a.sequence, b.sequence));
        f.records += finding.record_count;
        if records {
            finding.records = read
                .records
                .iter()
                .map(|(offset, r)| RecordFinding {
                    offset: *offset,
                    sequence: r.sequence,
                    timestamp_micros: r.timestamp_micros,
                    op: r.op,
                    key: r.key.to_vec(),
                    value: r.value.to_vec(),
                })
                .collect();
        }
        finding.end = match read.end {
            End::Clean => SegmentEnd::Clean,
            End::Torn { offset, reason } if is_last => {
                f.torn_tails += 1;
                SegmentEnd::TornTail {
                    offset,
                    reason,
                    bytes_cut: bytes - offset,
                }
            }
            End::Torn { offset, reason } | End::Damaged { offset, reason } => {
                f.damage
                    .push(format!("{} at byte {offset}: {reason}", seg.path.display()));
                SegmentEnd::Damaged { offset, reason }
            }
        };
        if let Some(offset) = skipped_at {
            f.damage.push(format!(
                "{} at byte {offset}: sequence number skips: records before it are in no file",
                seg.path.display()
            ));
        }
        report.segment(&finding)?;
    }
    report.summary(&f)?;
    Ok(f)
}

/// Inspect `dir`, writing a report for a person to `out`; with `records`, every record too.
pub fn inspect(dir: &Path, records: bool, out: &mut dyn Write) -> io::Result<Findings> {
    walk(dir, records, &mut Text(out))
}

/// The report for a person: a line per file, indented lines for its records and damage.
struct Text<'a>(&'a mut dyn Write);

impl Report for Text<'_> {
    fn snapshots(&mut self, snapshots: &[SnapshotFinding]) -> io::Result<()> {
        if snapshots.is_empty() {
            writeln!(self.0, "snapshot: none")?;
        }
        for s in snapshots {
            match s {
                SnapshotFinding::Valid {
                    path,
                    sequence,
                    keys,
                    bytes,
                } => writeln!(
                    self.0,
                    "snapshot {}: sequence {sequence}, {keys} keys, {bytes} bytes, checksum ok",
                    path.display(),
                )?,
                SnapshotFinding::Damaged { error, .. } => {
                    writeln!(self.0, "snapshot DAMAGED: {error}")?
                }
            }
        }
        Ok(())
    }

    fn segment(&mut self, s: &SegmentFinding) -> io::Result<()> {
        if let SegmentEnd::BadHeader { reason } = &s.end {
            return writeln!(
                self.0,
                "segment {} DAMAGED at byte 0: {reason}",
                s.path.display()
            );
        }
        if let Some((first, last)) = s.missing_before {
            writeln!(
                self.0,
                "MISSING records {first}..={last}: no snapshot or segment holds them (a file was deleted or lost)"
            )?;
        }
        writeln!(
            self.0,
            "segment {}: {} bytes, {} records{}",
            s.path.display(),
            s.bytes,
            s.record_count,
            match s.sequences {
                Some((a, b)) => format!(", sequences {a}..={b}"),
                None => String::new(),
            }
        )?;
        for r in &s.records {
            writeln!(
                self.0,
                "  @{:<10} seq {:<10} {:<6} {} {}",
                r.offset,
                r.sequence,
                r.op,
                printable(&r.key),
                printable(&r.value)
            )?;
        }
        match &s.end {
            SegmentEnd::Clean | SegmentEnd::BadHeader { .. } => Ok(()),
            SegmentEnd::TornTail {
                offset,
                reason,
                bytes_cut,
            } => writeln!(
                self.0,
                "  torn tail at byte {offset} ({reason}): {bytes_cut} bytes recovery would cut off"
            ),
            SegmentEnd::Damaged { offset, reason } => {
                writeln!(self.0, "  DAMAGED at byte {offset}: {reason}")
            }
        }
    }

    fn summary(&mut self, f: &Findings) -> io::Result<()> {
        writeln!(
            self.0,
            "{} segments, {} records, {} torn tails, {} damaged places",
            f.segments,
            f.records,
            f.torn_tails,
            f.damage.len()
        )
    }
}

fn printable(bytes: &[u8]) -> String {
    let s = String::from_utf8_lossy(bytes);
    if s.chars().count() > 80 {
        format!("{}…", s.chars().take(80).collect::<String>())
    } else {
        s.into_owned()
    }
}
