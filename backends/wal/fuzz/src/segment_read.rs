//! `segment_read`: `segment::check_header` and `reader::read` over arbitrary bytes.
//!
//! - `check_header(bytes, n)` accepts the engine's own `header(n)`, and whatever it accepts
//!   has the magic, version 1 and `n` in place.
//! - `read`: the records start right after the header and follow each other back to back
//!   (each offset is where the previous record ended, and decoding there gives the same
//!   record); their sequence numbers strictly increase; offsets stay within the input.
//! - `Clean` means the records end exactly at the end of the input; `Torn`/`Damaged` name
//!   the offset where the valid records stop, inside the input. `Damaged` exactly when a
//!   valid record with a higher sequence than the last good one starts somewhere after
//!   that offset (checked by an independent scan), `Torn` otherwise.

use walab_wal::reader::{self, End};
use walab_wal::record::{self, Decoded};
use walab_wal::segment::{self, HEADER_LEN};

pub fn check(data: &[u8]) {
    check_bytes(data);
    let mut fixed = data.to_vec();
    crate::fix_segment_crcs(&mut fixed);
    if fixed != data {
        check_bytes(&fixed);
    }
}

fn check_bytes(data: &[u8]) {
    let named = if data.len() >= 20 {
        crate::u64_at(data, 12)
    } else {
        1
    };
    assert!(segment::check_header(&segment::header(named), named).is_ok());
    if segment::check_header(data, named).is_ok() {
        assert!(data.len() >= HEADER_LEN);
        assert_eq!(&data[0..8], segment::MAGIC);
        assert_eq!(data[8..10], segment::VERSION.to_le_bytes());
        assert!(
            segment::check_header(data, named.wrapping_add(1)).is_err(),
            "a header accepted for two different first sequences"
        );
    }

    let read = reader::read(data);
    let mut at = HEADER_LEN.min(data.len());
    let mut last: Option<u64> = None;
    for (offset, rec) in &read.records {
        assert_eq!(*offset as usize, at, "records are not back to back");
        match record::decode(&data[at..]) {
            Decoded::Record(again, n) => {
                assert_eq!(&again, rec);
                at += n;
            }
            other => panic!("record at {offset} does not decode again: {other:?}"),
        }
        if let Some(prev) = last {
            assert!(
                rec.sequence > prev,
                "sequence {} after {prev}",
                rec.sequence
            );
        }
        last = Some(rec.sequence);
    }
    assert!(at <= data.len());
    let (offset, damaged) = match read.end {
        End::Clean => {
            assert_eq!(
                at,
                data.len(),
                "Clean but bytes are left after the last record"
            );
            return;
        }
        End::Torn { offset, .. } => (offset, false),
        End::Damaged { offset, .. } => (offset, true),
    };
    assert_eq!(
        offset as usize, at,
        "the bad part does not start where the records end"
    );
    assert!(at < data.len());
    let after = last.unwrap_or(0);
    let later = (at + 1..data.len()).find(
        |&p| matches!(record::decode(&data[p..]), Decoded::Record(r, _) if r.sequence > after),
    );
    assert_eq!(
        damaged,
        later.is_some(),
        "{:?} at {offset}, but a later valid record at {later:?}",
        read.end
    );
}
