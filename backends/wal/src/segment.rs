//! Segment files: naming, the header every segment opens with, and finding them.
//!
//! A segment is named by the sequence number of its first record, zero-padded so names sort
//! in log order: `00000000000000000001.wal`. It opens with a 24-byte header:
//!
//! ```text
//! offset  size  field
//!      0     8  magic "WALABSEG"
//!      8     2  format version, u16 LE (1)
//!     10     2  reserved, zero
//!     12     8  first sequence number, u64 LE (the same as the name)
//!     20     4  crc32c of bytes 0..20, u32 LE
//! ```
//! Records (see [`crate::record`]) follow back to back.

use std::path::{Path, PathBuf};

/// The magic bytes a segment opens with.
pub const MAGIC: &[u8; 8] = b"WALABSEG";
/// The segment format version this engine writes and reads.
pub const VERSION: u16 = 1;
/// The header's size.
pub const HEADER_LEN: usize = 24;
/// The file name suffix of segments.
pub const SUFFIX: &str = ".wal";

/// The file name of the segment whose first record is `first_sequence`.
pub fn file_name(first_sequence: u64) -> String {
    format!("{first_sequence:020}{SUFFIX}")
}

/// The first sequence number a segment file name stands for, if it is a segment name.
pub fn parse_name(name: &str) -> Option<u64> {
    let digits = name.strip_suffix(SUFFIX)?;
    if digits.len() != 20 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

/// The header bytes of a segment starting at `first_sequence`.
pub fn header(first_sequence: u64) -> [u8; HEADER_LEN] {
    let mut h = [0u8; HEADER_LEN];
    h[0..8].copy_from_slice(MAGIC);
    h[8..10].copy_from_slice(&VERSION.to_le_bytes());
    h[12..20].copy_from_slice(&first_sequence.to_le_bytes());
    let crc = crc32c::crc32c(&h[0..20]);
    h[20..24].copy_from_slice(&crc.to_le_bytes());
    h
}

/// Check a segment's header; the error says what is wrong.
pub fn check_header(bytes: &[u8], first_sequence: u64) -> Result<(), &'static str> {
    if bytes.len() < HEADER_LEN {
        return Err("the file is shorter than a segment header");
    }
    if &bytes[0..8] != MAGIC {
        return Err("the file does not start with the segment magic bytes");
    }
    let mut crc = [0u8; 4];
    crc.copy_from_slice(&bytes[20..24]);
    if crc32c::crc32c(&bytes[0..20]) != u32::from_le_bytes(crc) {
        return Err("the segment header checksum does not match");
    }
    if bytes[8..10] != VERSION.to_le_bytes() {
        return Err("the segment was written by an unknown format version");
    }
    if bytes[12..20] != first_sequence.to_le_bytes() {
        return Err("the segment header's first sequence does not match its file name");
    }
    Ok(())
}

/// A segment file on disk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SegmentFile {
    /// The sequence number of its first record.
    pub first_sequence: u64,
    /// Its path.
    pub path: PathBuf,
}

/// The segments among `names` (files of `dir`), oldest first.
pub fn find(dir: &Path, names: &[String]) -> Vec<SegmentFile> {
    let mut segs: Vec<SegmentFile> = names
        .iter()
        .filter_map(|n| {
            parse_name(n).map(|first_sequence| SegmentFile {
                first_sequence,
                path: dir.join(n),
            })
        })
        .collect();
    segs.sort_by_key(|s| s.first_sequence);
    segs
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_sort_in_log_order_and_parse_back() {
        assert_eq!(file_name(1), "00000000000000000001.wal");
        assert_eq!(parse_name(&file_name(u64::MAX)), Some(u64::MAX));
        assert_eq!(parse_name("1.wal"), None);
        assert_eq!(parse_name("0000000000000000000x.wal"), None);
        assert!(file_name(9) < file_name(10));
    }

    #[test]
    fn header_golden_bytes() {
        let h = header(1);
        assert_eq!(&h[..12], b"WALABSEG\x01\x00\x00\x00");
        assert_eq!(&h[12..20], &[1, 0, 0, 0, 0, 0, 0, 0]);
        assert!(check_header(&h, 1).is_ok());
        assert!(check_header(&h, 2).is_err());
        for i in 0..HEADER_LEN {
            let mut bad = h;
            bad[i] ^= 0x10;
            assert!(check_header(&bad, 1).is_err(), "flip at {i}");
        }
    }
}
