//! Reading a segment back, and deciding how it ends.
//!
//! A segment ends in one of three ways: cleanly (the last record is whole), with a torn
//! tail (what a crash mid-write leaves: a record cut short, or a bad record after which no
//! valid record follows, typically zeros or garbage up to the end), or damaged (a bad record
//! with valid records after it, which no crash explains).

use std::io;

use crate::fs::Fs;
use crate::record::{self, Decoded, RecordRef};
use crate::segment::{self, SegmentFile};

/// How a segment's bytes end.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum End {
    /// Every byte after the header belongs to a valid record.
    Clean,
    /// Bytes from `offset` on are not a valid record, and no valid record follows them.
    Torn {
        /// Where the valid part ends.
        offset: u64,
        /// Why the bytes there are not a record.
        reason: &'static str,
    },
    /// A bad record at `offset` with a valid record after it.
    Damaged {
        /// Where the damage starts.
        offset: u64,
        /// What is wrong there.
        reason: &'static str,
    },
}

/// A segment read into memory and checked record by record.
#[derive(Debug)]
pub struct ReadSegment<'a> {
    /// The valid records, in order, with the offset each starts at.
    pub records: Vec<(u64, RecordRef<'a>)>,
    /// How the segment ends.
    pub end: End,
}

/// Whether a valid record with a sequence above `after` starts anywhere in `bytes`.
pub(crate) fn valid_record_in(bytes: &[u8], after: u64) -> bool {
    (0..bytes.len())
        .any(|at| matches!(decode_at(bytes, at), Decoded::Record(r, _) if r.sequence > after))
}

fn decode_at(bytes: &[u8], at: usize) -> Decoded<'_> {
    record::decode(&bytes[at..])
}

/// Read the records of a segment whose header has been checked. Records must have strictly
/// increasing sequence numbers; a record that goes backwards is damage.
pub fn read(bytes: &[u8]) -> ReadSegment<'_> {
    let mut records = Vec::new();
    let mut at = segment::HEADER_LEN.min(bytes.len());
    let mut last_seq = 0u64;
    let end = loop {
        if at == bytes.len() {
            break End::Clean;
        }
        let reason = match decode_at(bytes, at) {
            Decoded::Record(r, len) if records.is_empty() || r.sequence > last_seq => {
                records.push((at as u64, r));
                last_seq = r.sequence;
                at += len;
                continue;
            }
            Decoded::Record(..) => "sequence number does not increase",
            Decoded::Incomplete { .. } => "record cut short by the end of the file",
            Decoded::Bad(reason) => reason,
        };
        let offset = at as u64;
        // A damaged length can make a record look cut short, so even then the rest is
        // searched for a valid record before the bytes are called a torn tail.
        break if valid_record_in(&bytes[at + 1..], last_seq) {
            End::Damaged { offset, reason }
        } else {
            End::Torn { offset, reason }
        };
    };
    ReadSegment { records, end }
}

/// A segment file read into memory, its header checked.
#[derive(Debug)]
pub struct SegmentBytes {
    /// The file's bytes.
    pub bytes: Vec<u8>,
    /// `Ok` when the header is a good one for this file name; otherwise what is wrong.
    pub header: Result<(), &'static str>,
}

impl SegmentBytes {
    /// The records and how the segment ends. Meaningful only after a good header: callers
    /// look at [`SegmentBytes::header`] first.
    pub fn records(&self) -> ReadSegment<'_> {
        read(&self.bytes)
    }
}

/// Read the segment `seg` and check its header: the one way recovery, inspection and the
/// engine's log listing read a segment file. With `written`, only the first `written`
/// bytes are kept: what the engine knows it has written, leaving out a batch being
/// appended while the file is read.
pub fn read_file(fs: &dyn Fs, seg: &SegmentFile, written: Option<u64>) -> io::Result<SegmentBytes> {
    let mut bytes = fs.read(&seg.path)?;
    if let Some(len) = written {
        bytes.truncate(usize::try_from(len).unwrap_or(usize::MAX));
    }
    let header = segment::check_header(&bytes, seg.first_sequence);
    Ok(SegmentBytes { bytes, header })
}
