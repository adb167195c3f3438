//! `record_decode`: `walab_wal::record::decode` over arbitrary bytes.
//!
//! - A decoded record re-encodes (`record::encode`) to exactly the bytes it took, its size
//!   is `encoded_len(key, value)`, and bytes after it change nothing.
//! - `Incomplete { needed }` asks for more than the buffer holds, and for exactly the size
//!   the length field says (or the frame header's size when even that is missing).
//! - `Bad` only once the frame header is there.
//! - The other way round: a record built from the input encodes and decodes back to
//!   itself; a cut of it (where the input says) is `Incomplete`; a bit flipped after the
//!   length field (which the input picks) is never accepted (a same-length single-bit
//!   error always changes a CRC-32C).

use walab_wal::Op;
use walab_wal::record::{self, Decoded, FRAME_HEADER, MAX_BODY, RecordRef};

pub fn check(data: &[u8]) {
    check_bytes(data);
    let mut fixed = data.to_vec();
    if fix_then_differs(&mut fixed, data) {
        check_bytes(&fixed);
    }
    round_trip(data);
}

fn fix_then_differs(fixed: &mut [u8], data: &[u8]) -> bool {
    crate::fix_record_crc(fixed).is_some() && fixed != data
}

fn check_bytes(data: &[u8]) {
    match record::decode(data) {
        Decoded::Record(r, n) => {
            assert!(
                n <= data.len(),
                "record of {n} bytes in a {}-byte buffer",
                data.len()
            );
            assert_eq!(n, record::encoded_len(r.key.len(), r.value.len()));
            let mut out = Vec::new();
            record::encode(&r, &mut out);
            assert_eq!(
                out,
                &data[..n],
                "a decoded record does not re-encode to its bytes"
            );
            assert_eq!(record::decode(&data[..n]), Decoded::Record(r, n));
        }
        Decoded::Incomplete { needed } => {
            assert!(
                needed > data.len(),
                "Incomplete needs {needed} of {}",
                data.len()
            );
            assert!(needed <= FRAME_HEADER + MAX_BODY);
            if data.len() >= FRAME_HEADER {
                assert_eq!(needed, FRAME_HEADER + crate::u32_at(data, 0) as usize);
            } else {
                assert_eq!(needed, FRAME_HEADER);
            }
        }
        Decoded::Bad(reason) => {
            assert!(
                data.len() >= FRAME_HEADER,
                "Bad({reason}) before a whole frame header"
            );
        }
    }
}

/// Build a record from the input, encode it, and check decode gives it back.
fn round_trip(data: &[u8]) {
    if data.len() < 20 {
        return;
    }
    let sequence = crate::u64_at(data, 0);
    let timestamp_micros = crate::u64_at(data, 8);
    let op = match data[16] % 3 {
        0 => Op::Set,
        1 => Op::Delete,
        _ => Op::Clear,
    };
    let cut_hint = data[17] as usize;
    let flip_hint = u16::from_le_bytes([data[18], data[19]]) as usize;
    let rest = &data[20..];
    let split = if rest.is_empty() {
        0
    } else {
        cut_hint % (rest.len() + 1)
    };
    let rec = RecordRef {
        sequence,
        timestamp_micros,
        op,
        key: &rest[..split],
        value: &rest[split..],
    };
    let mut buf = Vec::new();
    record::encode(&rec, &mut buf);
    assert_eq!(
        buf.len(),
        record::encoded_len(rec.key.len(), rec.value.len())
    );
    assert_eq!(record::decode(&buf), Decoded::Record(rec, buf.len()));
    // Trailing bytes are the next record's business.
    let mut longer = buf.clone();
    longer.extend_from_slice(&data[..data.len().min(40)]);
    assert_eq!(record::decode(&longer), Decoded::Record(rec, buf.len()));
    // A cut anywhere is incomplete.
    let cut = (cut_hint * 257 + flip_hint) % buf.len();
    assert!(
        matches!(record::decode(&buf[..cut]), Decoded::Incomplete { .. }),
        "a record cut at {cut} of {} is not Incomplete",
        buf.len()
    );
    // One bit flipped after the length field is caught.
    let bit = flip_hint % ((buf.len() - 4) * 8);
    let mut flipped = buf.clone();
    flipped[4 + bit / 8] ^= 1 << (bit % 8);
    assert!(
        !matches!(record::decode(&flipped), Decoded::Record(..)),
        "bit {bit} after the length field flipped and still decoded"
    );
}
