//! The log record: framing, encoding and decoding. Pure functions over byte slices.
//!
//! ```text
//! offset  size  field
//!      0     4  body_len   u32 LE: bytes from offset 8 to the end of the record
//!      4     4  crc        u32 LE: crc32c over bytes 0..4 then 8..8+body_len
//!      8     8  sequence   u64 LE
//!     16     8  timestamp  u64 LE, Unix microseconds
//!     24     1  op         1 = SET, 2 = DELETE, 3 = CLEAR
//!     25     4  key_len    u32 LE
//!     29     k  key
//!   29+k     4  value_len  u32 LE
//!   33+k     v  value
//! ```
//! `body_len` must equal `25 + key_len + value_len`. The CRC covers the length too, so a
//! damaged length is caught rather than followed.

use std::fmt;

/// Bytes before the body: length and CRC.
pub const FRAME_HEADER: usize = 8;
/// The smallest body: sequence, timestamp, op and the two lengths.
pub const MIN_BODY: usize = 25;
/// The largest body the decoder will believe (a damaged length must not allocate gigabytes).
pub const MAX_BODY: usize = 256 << 20;

/// What a record does to the state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Op {
    /// Store a value under a key.
    Set,
    /// Remove a key.
    Delete,
    /// Remove every key.
    Clear,
}

impl Op {
    /// The byte stored in the record.
    pub fn code(self) -> u8 {
        match self {
            Op::Set => 1,
            Op::Delete => 2,
            Op::Clear => 3,
        }
    }

    /// The op a byte stands for.
    pub fn from_code(code: u8) -> Option<Op> {
        match code {
            1 => Some(Op::Set),
            2 => Some(Op::Delete),
            3 => Some(Op::Clear),
            _ => None,
        }
    }

    /// `SET`, `DELETE` or `CLEAR`, as `/admin/wal` shows it.
    pub fn as_str(self) -> &'static str {
        match self {
            Op::Set => "SET",
            Op::Delete => "DELETE",
            Op::Clear => "CLEAR",
        }
    }
}

impl fmt::Display for Op {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A record borrowed from a buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RecordRef<'a> {
    /// Sequence number.
    pub sequence: u64,
    /// Unix microseconds.
    pub timestamp_micros: u64,
    /// The operation.
    pub op: Op,
    /// Key bytes.
    pub key: &'a [u8],
    /// Value bytes.
    pub value: &'a [u8],
}

/// The encoded size of a record with this key and value.
pub fn encoded_len(key_len: usize, value_len: usize) -> usize {
    FRAME_HEADER + MIN_BODY + key_len + value_len
}

/// Append the encoding of `rec` to `out`. The caller has checked the size against
/// [`MAX_BODY`].
pub fn encode(rec: &RecordRef<'_>, out: &mut Vec<u8>) {
    let start = out.len();
    let body_len = MIN_BODY + rec.key.len() + rec.value.len();
    out.reserve(FRAME_HEADER + body_len);
    out.extend_from_slice(&(body_len as u32).to_le_bytes());
    out.extend_from_slice(&[0; 4]);
    out.extend_from_slice(&rec.sequence.to_le_bytes());
    out.extend_from_slice(&rec.timestamp_micros.to_le_bytes());
    out.push(rec.op.code());
    out.extend_from_slice(&(rec.key.len() as u32).to_le_bytes());
    out.extend_from_slice(rec.key);
    out.extend_from_slice(&(rec.value.len() as u32).to_le_bytes());
    out.extend_from_slice(rec.value);
    let crc = checksum(&out[start..start + 4], &out[start + FRAME_HEADER..]);
    out[start + 4..start + 8].copy_from_slice(&crc.to_le_bytes());
}

fn checksum(len_bytes: &[u8], body: &[u8]) -> u32 {
    crc32c::crc32c_append(crc32c::crc32c(len_bytes), body)
}

/// What [`decode`] found at the start of a buffer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decoded<'a> {
    /// A whole, valid record, and how many bytes it took.
    Record(RecordRef<'a>, usize),
    /// The buffer ends inside the record (or inside its header): `needed` bytes in all
    /// would be required, as far as the header tells.
    Incomplete {
        /// The record's full size if the header was readable, else the header's size.
        needed: usize,
    },
    /// The bytes are not a valid record.
    Bad(&'static str),
}

fn u32_at(buf: &[u8], at: usize) -> u32 {
    let mut b = [0; 4];
    b.copy_from_slice(&buf[at..at + 4]);
    u32::from_le_bytes(b)
}

fn u64_at(buf: &[u8], at: usize) -> u64 {
    let mut b = [0; 8];
    b.copy_from_slice(&buf[at..at + 8]);
    u64::from_le_bytes(b)
}

/// Decode the record at the start of `buf`. Never panics, whatever the bytes.
pub fn decode(buf: &[u8]) -> Decoded<'_> {
    if buf.len() < FRAME_HEADER {
        return Decoded::Incomplete {
            needed: FRAME_HEADER,
        };
    }
    let body_len = u32_at(buf, 0) as usize;
    if body_len < MIN_BODY {
        return Decoded::Bad("record length is shorter than any record");
    }
    if body_len > MAX_BODY {
        return Decoded::Bad("record length is larger than any record the engine writes");
    }
    let total = FRAME_HEADER + body_len;
    if buf.len() < total {
        return Decoded::Incomplete { needed: total };
    }
    let body = &buf[FRAME_HEADER..total];
    if checksum(&buf[0..4], body) != u32_at(buf, 4) {
        return Decoded::Bad("checksum mismatch");
    }
    let Some(op) = Op::from_code(body[16]) else {
        return Decoded::Bad("unknown operation code");
    };
    let key_len = u32_at(body, 17) as usize;
    if key_len > body_len - MIN_BODY {
        return Decoded::Bad("key length runs past the record");
    }
    let value_len = u32_at(body, 21 + key_len) as usize;
    if MIN_BODY + key_len + value_len != body_len {
        return Decoded::Bad("key and value lengths do not add up to the record length");
    }
    let rec = RecordRef {
        sequence: u64_at(body, 0),
        timestamp_micros: u64_at(body, 8),
        op,
        key: &body[21..21 + key_len],
        value: &body[25 + key_len..body_len],
    };
    Decoded::Record(rec, total)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Vec<u8> {
        let mut out = Vec::new();
        encode(
            &RecordRef {
                sequence: 7,
                timestamp_micros: 1_700_000_000_000_000,
                op: Op::Set,
                key: b"user-1",
                value: br#"{"n":1}"#,
            },
            &mut out,
        );
        out
    }

    #[test]
    fn round_trip() {
        let buf = sample();
        assert_eq!(buf.len(), encoded_len(6, 7));
        match decode(&buf) {
            Decoded::Record(r, n) => {
                assert_eq!(n, buf.len());
                assert_eq!(
                    (r.sequence, r.op, r.key, r.value),
                    (7, Op::Set, &b"user-1"[..], &br#"{"n":1}"#[..])
                );
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn every_cut_is_incomplete() {
        let buf = sample();
        for cut in 0..buf.len() {
            assert!(
                matches!(decode(&buf[..cut]), Decoded::Incomplete { .. }),
                "cut at {cut}"
            );
        }
    }

    #[test]
    fn every_bit_flip_is_caught() {
        let buf = sample();
        for byte in 0..buf.len() {
            for bit in 0..8 {
                let mut b = buf.clone();
                b[byte] ^= 1 << bit;
                match decode(&b) {
                    Decoded::Record(r, _) => panic!("flip {byte}:{bit} decoded as {r:?}"),
                    Decoded::Bad(_) | Decoded::Incomplete { .. } => {}
                }
            }
        }
    }
}
