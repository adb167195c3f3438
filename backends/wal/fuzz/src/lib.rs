//! The checks behind walab-wal's fuzz targets, kept in a library so the seed generator
//! (`examples/gen_seeds.rs`) can run them over every seed it writes, and so a crash input
//! can be replayed from a plain test.
//!
//! Each `check` takes the fuzzer's bytes, must never panic on its own account, and panics
//! (an assertion) only when the engine breaks a property it promises.
//!
//! Checksums stop a byte-flipping fuzzer at the first CRC. So the decoder checks run twice:
//! once on the bytes as given (does the decoder reject damage?) and once with every
//! checksum the bytes frame recomputed ("fixed up"), so mutations reach the parsing behind
//! the CRC (lengths, op codes, entry counts).

pub mod record_decode;
pub mod recovery_open;
pub mod segment_read;
pub mod snapshot_decode;

fn u32_at(buf: &[u8], at: usize) -> u32 {
    u32::from_le_bytes(buf[at..at + 4].try_into().expect("4 bytes"))
}

fn u64_at(buf: &[u8], at: usize) -> u64 {
    u64::from_le_bytes(buf[at..at + 8].try_into().expect("8 bytes"))
}

/// Recompute the CRC of the record framed at the start of `buf`, if its length field is
/// believable and the whole record is there. Returns the record's size if it did.
pub fn fix_record_crc(buf: &mut [u8]) -> Option<usize> {
    use walab_wal::record::{FRAME_HEADER, MAX_BODY, MIN_BODY};
    if buf.len() < FRAME_HEADER {
        return None;
    }
    let body_len = u32_at(buf, 0) as usize;
    if !(MIN_BODY..=MAX_BODY).contains(&body_len) || buf.len() < FRAME_HEADER + body_len {
        return None;
    }
    let crc = crc32c::crc32c_append(
        crc32c::crc32c(&buf[0..4]),
        &buf[FRAME_HEADER..FRAME_HEADER + body_len],
    );
    buf[4..8].copy_from_slice(&crc.to_le_bytes());
    Some(FRAME_HEADER + body_len)
}

/// Recompute a segment's header CRC and the CRC of every record framed after it, as far
/// as the records chain.
pub fn fix_segment_crcs(buf: &mut [u8]) {
    use walab_wal::segment::HEADER_LEN;
    if buf.len() < HEADER_LEN {
        return;
    }
    let crc = crc32c::crc32c(&buf[0..20]);
    buf[20..24].copy_from_slice(&crc.to_le_bytes());
    let mut at = HEADER_LEN;
    while let Some(n) = fix_record_crc(&mut buf[at..]) {
        at += n;
    }
}

/// Recompute a snapshot's trailing CRC.
pub fn fix_snapshot_crc(buf: &mut [u8]) {
    if buf.len() < 32 {
        return;
    }
    let end = buf.len() - 4;
    let crc = crc32c::crc32c(&buf[..end]);
    buf[end..].copy_from_slice(&crc.to_le_bytes());
}
