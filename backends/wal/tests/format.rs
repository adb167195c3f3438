//! Golden bytes: a real directory written by the engine matches DESIGN.md byte for byte.

use walab_wal::{Config, Engine, SyncPolicy};

#[test]
fn a_segment_on_disk_matches_the_documented_format() {
    let dir = tempfile::tempdir().unwrap();
    let e = Engine::open(
        Config::new(dir.path())
            .sync(SyncPolicy::Always)
            .checkpoint_threshold(0),
    )
    .unwrap();
    e.set(b"k", b"\"v\"").unwrap();
    e.delete(b"k").unwrap();
    drop(e);
    let bytes = std::fs::read(dir.path().join("00000000000000000001.wal")).unwrap();
    assert_eq!(&bytes[0..8], b"WALABSEG");
    assert_eq!(&bytes[8..12], &[1, 0, 0, 0]);
    assert_eq!(&bytes[12..20], &1u64.to_le_bytes());
    assert_eq!(&bytes[20..24], &crc32c::crc32c(&bytes[0..20]).to_le_bytes());
    // First record: SET "k" = "\"v\"" at sequence 1.
    let r = &bytes[24..];
    assert_eq!(&r[0..4], &(25u32 + 1 + 3).to_le_bytes());
    let crc = crc32c::crc32c_append(crc32c::crc32c(&r[0..4]), &r[8..8 + 29]);
    assert_eq!(&r[4..8], &crc.to_le_bytes());
    assert_eq!(&r[8..16], &1u64.to_le_bytes());
    assert_eq!(r[24], 1, "SET");
    assert_eq!(&r[25..29], &1u32.to_le_bytes());
    assert_eq!(r[29], b'k');
    assert_eq!(&r[30..34], &3u32.to_le_bytes());
    assert_eq!(&r[34..37], b"\"v\"");
    // Second record: DELETE "k" at sequence 2, no value.
    let d = &r[37..];
    assert_eq!(d.len(), 8 + 25 + 1);
    assert_eq!(&d[8..16], &2u64.to_le_bytes());
    assert_eq!(d[24], 2, "DELETE");
    assert_eq!(&d[30..34], &0u32.to_le_bytes());
}

#[test]
fn a_snapshot_on_disk_matches_the_documented_format() {
    let dir = tempfile::tempdir().unwrap();
    let e = Engine::open(Config::new(dir.path()).checkpoint_threshold(0)).unwrap();
    e.set(b"b", b"2").unwrap();
    e.set(b"a", b"1").unwrap();
    e.checkpoint().unwrap();
    drop(e);
    let s = std::fs::read(dir.path().join("snapshot-00000000000000000002.snap")).unwrap();
    assert_eq!(&s[0..8], b"WALABSNP");
    assert_eq!(&s[8..12], &[1, 0, 0, 0]);
    assert_eq!(&s[12..20], &2u64.to_le_bytes());
    assert_eq!(&s[20..28], &2u64.to_le_bytes());
    let mut entries = Vec::new();
    for (k, v) in [(b"a", b"1"), (b"b", b"2")] {
        entries.extend_from_slice(&1u32.to_le_bytes());
        entries.extend_from_slice(k);
        entries.extend_from_slice(&1u32.to_le_bytes());
        entries.extend_from_slice(v);
    }
    assert_eq!(&s[28..s.len() - 4], &entries[..], "entries sorted by key");
    assert_eq!(
        &s[s.len() - 4..],
        &crc32c::crc32c(&s[..s.len() - 4]).to_le_bytes()
    );
    // The segments before the checkpoint are gone; the new one is named after S+1.
    assert!(!dir.path().join("00000000000000000001.wal").exists());
    assert!(dir.path().join("00000000000000000003.wal").exists());
}

#[test]
fn inspect_reads_a_real_directory_and_flags_damage() {
    let dir = tempfile::tempdir().unwrap();
    let e = Engine::open(Config::new(dir.path()).checkpoint_threshold(0)).unwrap();
    for i in 0..3 {
        e.set(format!("k{i}").as_bytes(), b"1").unwrap();
    }
    drop(e);
    let mut out = Vec::new();
    let f = walab_wal::inspect::inspect(dir.path(), true, &mut out).unwrap();
    assert_eq!((f.records, f.torn_tails, f.damage.len()), (3, 0, 0));
    let text = String::from_utf8(out).unwrap();
    assert!(text.contains("seq 3"), "{text}");
    let seg = dir.path().join("00000000000000000001.wal");
    let mut bytes = std::fs::read(&seg).unwrap();
    bytes[30] ^= 0xff; // inside the first record, with two good ones after it
    std::fs::write(&seg, bytes).unwrap();
    let f = walab_wal::inspect::inspect(dir.path(), false, &mut Vec::new()).unwrap();
    assert_eq!(f.damage.len(), 1, "{f:?}");
}
