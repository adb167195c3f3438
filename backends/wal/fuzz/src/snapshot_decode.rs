//! `snapshot_decode`: `walab_wal::snapshot::decode` over arbitrary bytes.
//!
//! - It accepts exactly what an independent parser of the DESIGN.md layout accepts (magic,
//!   checksum, version, `count` entries that end exactly at the checksum), and then gives
//!   the sequence from the header, the file's size, and the entries as the state.
//! - The state holds one key per entry: its length equals the header's entry count (when
//!   the entries are sorted by key; see finding 3 in the README for when they are not).
//! - With the expected sequence: accepted for the header's own, refused for any other.
//! - Written back with `snapshot::write`, the state decodes to itself, and when the
//!   entries were sorted by key (as the engine writes them) and the reserved bytes zero,
//!   the file is byte-for-byte the input.

use std::collections::BTreeMap;
use std::path::Path;

use walab_wal::fs::{Fs, SimFs};
use walab_wal::snapshot;

pub fn check(data: &[u8]) {
    check_bytes(data);
    let mut fixed = data.to_vec();
    crate::fix_snapshot_crc(&mut fixed);
    if fixed != data {
        check_bytes(&fixed);
    }
}

struct Model<'a> {
    sequence: u64,
    count: u64,
    entries: Vec<(&'a [u8], &'a [u8])>,
}

/// The snapshot layout of DESIGN.md, parsed without the engine's code.
fn model(data: &[u8]) -> Option<Model<'_>> {
    if data.len() < 32 || &data[0..8] != snapshot::MAGIC {
        return None;
    }
    let body = &data[..data.len() - 4];
    if crc32c::crc32c(body) != crate::u32_at(data, data.len() - 4) {
        return None;
    }
    if u16::from_le_bytes([data[8], data[9]]) != snapshot::VERSION {
        return None;
    }
    let sequence = crate::u64_at(data, 12);
    let count = crate::u64_at(data, 20);
    let mut entries = Vec::new();
    let mut at = 28usize;
    let field = |at: &mut usize| -> Option<&[u8]> {
        if body.len() - *at < 4 {
            return None;
        }
        let n = crate::u32_at(body, *at) as usize;
        *at += 4;
        if body.len() - *at < n {
            return None;
        }
        *at += n;
        Some(&body[*at - n..*at])
    };
    for _ in 0..count {
        let key = field(&mut at)?;
        let value = field(&mut at)?;
        entries.push((key, value));
    }
    (at == body.len()).then_some(Model {
        sequence,
        count,
        entries,
    })
}

fn check_bytes(data: &[u8]) {
    let path = Path::new("/fuzz/snapshot-00000000000000000001.snap");
    let decoded = snapshot::decode(path, data, None);
    let model = model(data);
    let loaded = match (decoded, model) {
        (Err(_), None) => return,
        (Ok(l), Some(m)) => (l, m),
        (Ok(l), None) => panic!("decode accepted what the layout refuses: {l:?}"),
        (Err(e), Some(m)) => panic!(
            "decode refused a well-formed snapshot ({} entries): {e}",
            m.entries.len()
        ),
    };
    let (loaded, model) = loaded;
    assert_eq!(loaded.sequence, model.sequence);
    assert_eq!(loaded.bytes, data.len() as u64);
    let expected: BTreeMap<&[u8], &[u8]> = model.entries.iter().copied().collect();
    let got: Vec<(&[u8], &[u8])> = loaded.state.iter().map(|(k, v)| (&k[..], &v[..])).collect();
    let want: Vec<(&[u8], &[u8])> = expected.into_iter().collect();
    assert_eq!(got, want, "the state is not the snapshot's entries");
    // Known gap (README, finding 3): the decoder does not check that entries are sorted by
    // key, so a snapshot with a duplicate key loads (the later value wins) with fewer keys
    // than its header counts. The count must match whenever the keys are in order, as the
    // engine writes them.
    let sorted = model.entries.windows(2).all(|w| w[0].0 < w[1].0);
    if sorted {
        assert_eq!(
            loaded.state.len() as u64,
            model.count,
            "the header counts {} entries, the state has {} keys",
            model.count,
            loaded.state.len()
        );
    }

    assert!(snapshot::decode(path, data, Some(model.sequence)).is_ok());
    assert!(snapshot::decode(path, data, Some(model.sequence.wrapping_add(1))).is_err());

    let fs = SimFs::new(1);
    let dir = Path::new("/fuzz");
    let (written, size) = snapshot::write(&fs, dir, model.sequence, &loaded.state)
        .expect("writing a snapshot to SimFs");
    let bytes = fs.read(&written).expect("reading it back");
    assert_eq!(size, bytes.len() as u64);
    let again = snapshot::decode(&written, &bytes, Some(model.sequence))
        .expect("a snapshot the engine wrote does not decode");
    assert_eq!(again.state, loaded.state);
    // The decoder does not look at the reserved bytes (10..12); the writer zeroes them.
    if sorted && data[10..12] == [0, 0] {
        assert_eq!(
            bytes, data,
            "a sorted snapshot did not re-encode to its own bytes"
        );
    }
}
