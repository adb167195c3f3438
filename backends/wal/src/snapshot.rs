//! Snapshot files: the whole state at one sequence number, written atomically.
//!
//! Named `snapshot-<sequence, 20 digits>.snap`; written as `<name>.tmp`, synced, renamed,
//! and the directory synced, so a crash leaves either the old snapshot or the new one whole.
//!
//! ```text
//! offset  size  field
//!      0     8  magic "WALABSNP"
//!      8     2  format version, u16 LE (1)
//!     10     2  reserved, zero
//!     12     8  sequence number the snapshot covers, u64 LE
//!     20     8  number of entries, u64 LE
//!     28        entries, sorted by key: key_len u32 LE, key, value_len u32 LE, value
//!    end-4   4  crc32c of every byte before it, u32 LE
//! ```

use std::path::{Path, PathBuf};

use crate::error::{Error, Result};
use crate::fs::Fs;
use crate::shared::{Bytes, State};

/// The magic bytes a snapshot opens with.
pub const MAGIC: &[u8; 8] = b"WALABSNP";
/// The snapshot format version.
pub const VERSION: u16 = 1;
const HEADER_LEN: usize = 28;
const PREFIX: &str = "snapshot-";
const SUFFIX: &str = ".snap";
/// Appends are made in chunks of this size, so a big state never needs a second copy.
const CHUNK: usize = 1 << 20;
/// Write-back of the snapshot is started every this many bytes as it is written. On ext4
/// (ordered mode) a log fdatasync commits the journal, which must first write back other
/// files' dirty data; a snapshot of a large state left dirty in the page cache would stall
/// every write's sync behind it. Starting write-back as we go (like RocksDB's
/// `bytes_per_sync`) keeps that backlog small without the cost of an fsync per chunk.
const WRITE_BACK_EVERY: u64 = 1 << 20;

/// The file name of the snapshot covering `sequence`.
pub fn file_name(sequence: u64) -> String {
    format!("{PREFIX}{sequence:020}{SUFFIX}")
}

/// The sequence a snapshot file name stands for.
pub fn parse_name(name: &str) -> Option<u64> {
    let digits = name.strip_prefix(PREFIX)?.strip_suffix(SUFFIX)?;
    if digits.len() != 20 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

/// Whether a file name is a temporary file a crash may have left behind.
pub fn is_temporary(name: &str) -> bool {
    name.ends_with(".tmp")
}

/// The snapshots among `names`, oldest first.
pub fn find(dir: &Path, names: &[String]) -> Vec<(u64, PathBuf)> {
    let mut snaps: Vec<(u64, PathBuf)> = names
        .iter()
        .filter_map(|n| parse_name(n).map(|s| (s, dir.join(n))))
        .collect();
    snaps.sort_by_key(|(s, _)| *s);
    snaps
}

/// Write `state` as the snapshot covering `sequence`, atomically; returns its path and size.
///
/// On failure the temporary file is removed (best effort): on a full disk it would hold
/// the very space the next attempt needs. Recovery removes any that is left.
pub fn write(fs: &dyn Fs, dir: &Path, sequence: u64, state: &State) -> Result<(PathBuf, u64)> {
    write_paced(fs, dir, sequence, state, 0)
}

/// [`write`], at most `bytes_per_sec` (0: as fast as the disk takes it). The log's
/// fdatasync waits for the device's cache flush, which waits for whatever else is being
/// written back; a snapshot written at full speed puts megabytes in front of every sync
/// and shows up in the writes' p99. Spread out, each sync waits behind less of it.
pub fn write_paced(
    fs: &dyn Fs,
    dir: &Path,
    sequence: u64,
    state: &State,
    bytes_per_sec: u64,
) -> Result<(PathBuf, u64)> {
    let path = dir.join(file_name(sequence));
    let tmp = dir.join(format!("{}.tmp", file_name(sequence)));
    let result = write_tmp(fs, &tmp, sequence, state, bytes_per_sec).and_then(|size| {
        fs.rename(&tmp, &path).map_err(Error::io("rename", &tmp))?;
        Ok(size)
    });
    let size = match result {
        Ok(size) => size,
        Err(e) => {
            // Not synced and errors ignored: a leftover .tmp is harmless to correctness.
            let _ = fs.remove(&tmp);
            return Err(e);
        }
    };
    // The rename is only durable once the directory is synced; until then a power loss
    // may bring back the old name set, which still holds the previous snapshot.
    fs.sync_dir(dir)
        .map_err(Error::io("fsync directory", dir))?;
    Ok((path, size))
}

/// Write and sync the snapshot's bytes to `tmp`; returns their size.
fn write_tmp(
    fs: &dyn Fs,
    tmp: &Path,
    sequence: u64,
    state: &State,
    bytes_per_sec: u64,
) -> Result<u64> {
    let started = std::time::Instant::now();
    let mut file = fs.create(tmp).map_err(Error::io("create", tmp))?;
    let mut buf = Vec::with_capacity(CHUNK + 4096);
    buf.extend_from_slice(MAGIC);
    buf.extend_from_slice(&VERSION.to_le_bytes());
    buf.extend_from_slice(&[0, 0]);
    buf.extend_from_slice(&sequence.to_le_bytes());
    buf.extend_from_slice(&(state.len() as u64).to_le_bytes());
    let mut crc = 0u32;
    let mut size = 0u64;
    let mut dirty = 0u64;
    let mut flush = |buf: &mut Vec<u8>, crc: &mut u32| -> Result<()> {
        *crc = crc32c::crc32c_append(*crc, buf);
        size += buf.len() as u64;
        dirty += buf.len() as u64;
        file.append(buf).map_err(Error::io("write", tmp))?;
        if dirty >= WRITE_BACK_EVERY {
            file.write_back()
                .map_err(Error::io("sync_file_range", tmp))?;
            dirty = 0;
            if bytes_per_sec > 0 {
                let due = std::time::Duration::from_secs_f64(size as f64 / bytes_per_sec as f64);
                if let Some(ahead) = due.checked_sub(started.elapsed()) {
                    std::thread::sleep(ahead);
                }
            }
        }
        buf.clear();
        Ok(())
    };
    for (k, v) in state.iter() {
        buf.extend_from_slice(&(k.len() as u32).to_le_bytes());
        buf.extend_from_slice(k);
        buf.extend_from_slice(&(v.len() as u32).to_le_bytes());
        buf.extend_from_slice(v);
        if buf.len() >= CHUNK {
            flush(&mut buf, &mut crc)?;
        }
    }
    flush(&mut buf, &mut crc)?;
    buf.extend_from_slice(&crc.to_le_bytes());
    size += 4;
    file.append(&buf).map_err(Error::io("write", tmp))?;
    file.sync_data().map_err(Error::io("fdatasync", tmp))?;
    Ok(size)
}

/// A snapshot read back and verified.
#[derive(Debug)]
pub struct Loaded {
    /// The sequence it covers.
    pub sequence: u64,
    /// The state.
    pub state: State,
    /// Its size on disk.
    pub bytes: u64,
}

fn take<'a>(bytes: &'a [u8], at: &mut usize, n: usize) -> Option<&'a [u8]> {
    let end = at.checked_add(n)?;
    let s = bytes.get(*at..end)?;
    *at = end;
    Some(s)
}

fn take_u32(bytes: &[u8], at: &mut usize) -> Option<usize> {
    let s = take(bytes, at, 4)?;
    Some(u32::from_le_bytes([s[0], s[1], s[2], s[3]]) as usize)
}

/// Parse and verify a snapshot's bytes. Never panics; the error names the offset.
pub fn decode(path: &Path, bytes: &[u8], expected_sequence: Option<u64>) -> Result<Loaded> {
    let bad = |offset: usize, reason: &str| Error::corrupt(path, offset as u64, reason);
    if bytes.len() < HEADER_LEN + 4 {
        return Err(bad(0, "the file is shorter than a snapshot header"));
    }
    if &bytes[0..8] != MAGIC {
        return Err(bad(
            0,
            "the file does not start with the snapshot magic bytes",
        ));
    }
    let body = &bytes[..bytes.len() - 4];
    let mut stored = [0u8; 4];
    stored.copy_from_slice(&bytes[bytes.len() - 4..]);
    if crc32c::crc32c(body) != u32::from_le_bytes(stored) {
        return Err(bad(bytes.len() - 4, "snapshot checksum mismatch"));
    }
    if bytes[8..10] != VERSION.to_le_bytes() {
        return Err(bad(
            8,
            "the snapshot was written by an unknown format version",
        ));
    }
    let mut word = [0u8; 8];
    word.copy_from_slice(&bytes[12..20]);
    let sequence = u64::from_le_bytes(word);
    if expected_sequence.is_some_and(|s| s != sequence) {
        return Err(bad(
            12,
            "the snapshot's sequence does not match its file name",
        ));
    }
    word.copy_from_slice(&bytes[20..28]);
    let count = u64::from_le_bytes(word);
    let mut at = HEADER_LEN;
    let mut state = State::new();
    for _ in 0..count {
        let start = at;
        let entry = (|| {
            let klen = take_u32(body, &mut at)?;
            let key = take(body, &mut at, klen)?;
            let vlen = take_u32(body, &mut at)?;
            let value = take(body, &mut at, vlen)?;
            Some((Bytes::from(key), Bytes::from(value)))
        })();
        let Some((k, v)) = entry else {
            return Err(bad(start, "an entry runs past the end of the snapshot"));
        };
        state.insert(k, v);
    }
    if at != body.len() {
        return Err(bad(at, "bytes left over after the last entry"));
    }
    Ok(Loaded {
        sequence,
        state,
        bytes: bytes.len() as u64,
    })
}

/// Read and verify the snapshot at `path`.
pub fn load(fs: &dyn Fs, path: &Path, expected_sequence: u64) -> Result<Loaded> {
    let bytes = fs.read(path).map_err(Error::io("read", path))?;
    decode(path, &bytes, Some(expected_sequence))
}
