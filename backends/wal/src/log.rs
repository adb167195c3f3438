//! The log on disk: the active segment records are appended to, the sealed segments
//! before it, and the synced-through watermark.
//!
//! Only one thread at a time holds the [`Log`] (behind the engine's log mutex): the
//! group-commit leader, the interval syncer, or a checkpoint rotating segments.
//!
//! What poisons the log and what does not: a failed append or sync leaves the active
//! segment in a state nobody knows (a short write, pages the kernel may have dropped), so
//! from then on the log refuses everything. A failed creation of the *next* segment does
//! not touch the active one, which was synced before the attempt: the roll-over fails, the
//! half-made file is removed, and appends go on into the active segment.
//!
//! Room on disk is reserved before it is needed: a new segment reserves `segment_bytes`
//! (`fallocate` with `FALLOC_FL_KEEP_SIZE`, so the file's length, and so the format, stay
//! what was written) before it becomes the active one, and the active segment reopened at
//! start-up reserves it again. On a disk that fills up (a snapshot, another program), the
//! appends up to `segment_bytes` still find their room: the full disk fails the checkpoint
//! or the roll-over, which leave the log whole, never an append, which would poison it.
//! This is what PostgreSQL's zero-filled segments and etcd's preallocated 64 MB WAL files
//! buy; the file length staying the data's length means old logs open unchanged and a
//! reader never meets a tail of zeros.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::backoff::Backoff;
use crate::error::{Error, Result};
use crate::fs::{Fs, FsFile};
use crate::poison::Poison;
use crate::report::{BatchSizes, PowerLossReport};
use crate::segment;

/// The segment being appended to.
#[derive(Debug)]
pub(crate) struct Active {
    pub first_sequence: u64,
    pub path: PathBuf,
    pub file: Box<dyn FsFile>,
    /// Bytes written (header included).
    pub len: u64,
    /// Bytes known to be on stable storage.
    pub synced_len: u64,
    /// Disk room reserved up to this length (0 where the file system cannot reserve).
    pub reserved: u64,
}

/// A segment no longer appended to; synced when it was sealed.
#[derive(Debug, Clone)]
pub(crate) struct Sealed {
    pub first_sequence: u64,
    pub path: PathBuf,
    pub len: u64,
}

/// Counters the log keeps as it works (read by `Engine::stats`).
#[derive(Debug, Clone, Default)]
pub(crate) struct LogCounters {
    pub appends: u64,
    pub bytes_written: u64,
    pub fsyncs: u64,
    pub fsync_time: Duration,
    pub batch_sizes: BatchSizes,
    /// Size roll-overs that could not create the next segment (the batch went on into the
    /// active one).
    pub roll_over_failures: u64,
}

/// The log files and the append position.
#[derive(Debug)]
pub(crate) struct Log {
    pub dir: PathBuf,
    pub fs: Arc<dyn Fs>,
    pub active: Active,
    pub sealed: Vec<Sealed>,
    pub segment_bytes: u64,
    pub counters: LogCounters,
    /// Set by the first failed write or sync (or a simulated power loss): from then on the
    /// log refuses every write, sync and roll-over. Shared with the engine, which refuses
    /// new writes on the same flag.
    pub poison: Arc<Poison>,
    /// When a size roll-over may be tried again after one failed.
    pub roll_over: Backoff,
}

/// One live segment as [`Log::files`] lists it.
#[derive(Debug, Clone)]
pub(crate) struct SegmentExtent {
    pub first_sequence: u64,
    pub path: PathBuf,
    /// Bytes written so far (header included); anything past it is a batch being written.
    pub len: u64,
}

/// Remove what a failed [`create_segment`] may have left at `path`, durably.
///
/// Durably, because a file that came back after a power loss would sit after the active
/// segment, whose records go on past the sequence in its name: recovery would call that
/// damage. A file that was never created needs nothing.
fn discard_segment(fs: &dyn Fs, dir: &Path, path: &Path) -> Result<()> {
    match fs.remove(path) {
        Ok(()) => fs.sync_dir(dir).map_err(Error::io("fsync directory", dir)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(Error::io("remove", path)(e)),
    }
}

/// Reserve `file`'s disk room up to `len` bytes; returns the length reserved (0 where the
/// file system cannot reserve, which is no error: the log then works as it would without).
pub(crate) fn reserve_room(file: &mut dyn FsFile, path: &Path, len: u64) -> Result<u64> {
    if len == 0 {
        return Ok(0);
    }
    match file.reserve(len) {
        Ok(()) => Ok(len),
        Err(e) if e.kind() == std::io::ErrorKind::Unsupported => Ok(0),
        Err(e) => Err(Error::io("fallocate", path)(e)),
    }
}

/// The disk room a new segment reserves.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Room {
    /// This much, or the segment is not created: a roll-over from a segment that has
    /// reserved room never trades it for one without.
    Required(u64),
    /// This much if the disk has it, none otherwise: a first segment, or a roll-over from a
    /// segment that had none either (a store started on a nearly full disk).
    IfAvailable(u64),
}

/// Create a new, empty segment starting at `first_sequence` with its `room` reserved,
/// durably: the header is synced and so is the directory entry, so the file exists after
/// a power loss.
pub(crate) fn create_segment(
    fs: &dyn Fs,
    dir: &Path,
    first_sequence: u64,
    room: Room,
) -> Result<Active> {
    let path = dir.join(segment::file_name(first_sequence));
    let mut file = fs.create(&path).map_err(Error::io("create", &path))?;
    file.append(&segment::header(first_sequence))
        .map_err(Error::io("write", &path))?;
    let reserved = match room {
        Room::Required(len) => reserve_room(file.as_mut(), &path, len)?,
        Room::IfAvailable(len) => reserve_room(file.as_mut(), &path, len).unwrap_or(0),
    };
    file.sync_data().map_err(Error::io("fdatasync", &path))?;
    // The new name must survive a power loss, or records synced into it could vanish.
    fs.sync_dir(dir)
        .map_err(Error::io("fsync directory", dir))?;
    let len = segment::HEADER_LEN as u64;
    Ok(Active {
        first_sequence,
        path,
        file,
        len,
        synced_len: len,
        reserved,
    })
}

impl Log {
    /// Refuse to touch the files once a failure has made their state unknown.
    fn check(&self) -> Result<()> {
        self.poison.check()
    }

    /// Remember a failure; every later operation is refused.
    fn fail(&mut self, e: Error) -> Error {
        self.poison.set(e.to_string());
        e
    }

    /// Append bytes (whole records) to the active segment.
    pub fn append(&mut self, bytes: &[u8], records: usize) -> Result<()> {
        self.check()?;
        let a = &mut self.active;
        if let Err(e) = a.file.append(bytes).map_err(Error::io("write", &a.path)) {
            return Err(self.fail(e));
        }
        a.len += bytes.len() as u64;
        self.counters.appends += records as u64;
        self.counters.bytes_written += bytes.len() as u64;
        Ok(())
    }

    /// Sync the active segment; returns how long the sync took.
    pub fn sync(&mut self) -> Result<Duration> {
        self.check()?;
        let a = &mut self.active;
        let started = Instant::now();
        if let Err(e) = a.file.sync_data().map_err(Error::io("fdatasync", &a.path)) {
            return Err(self.fail(e));
        }
        let took = started.elapsed();
        a.synced_len = a.len;
        self.counters.fsyncs += 1;
        self.counters.fsync_time += took;
        Ok(took)
    }

    /// Whether the next batch should go into a new segment.
    pub fn is_full(&self) -> bool {
        self.active.len >= self.segment_bytes
    }

    /// Seal the active segment (synced) and start a new one at `first_sequence`.
    ///
    /// A failed sync of the active segment poisons the log. A failed creation of the new
    /// segment does not: the error is returned, the log is unchanged and usable, and
    /// [`Log::poison`] stays unset, which is how a caller tells the two apart. Only if
    /// the half-made file cannot be removed does the log fail, since recovery would meet it
    /// later as a broken segment after the active one.
    pub fn rotate(&mut self, first_sequence: u64) -> Result<()> {
        self.check()?;
        if self.active.synced_len < self.active.len {
            self.sync()?;
        }
        let room = if self.active.reserved > 0 {
            Room::Required(self.segment_bytes)
        } else {
            Room::IfAvailable(self.segment_bytes)
        };
        let next = match create_segment(self.fs.as_ref(), &self.dir, first_sequence, room) {
            Ok(next) => next,
            Err(e) => {
                let path = self.dir.join(segment::file_name(first_sequence));
                if let Err(cleanup) = discard_segment(self.fs.as_ref(), &self.dir, &path) {
                    self.poison.set(format!(
                        "{e}; the partly created segment could not be removed ({cleanup})"
                    ));
                }
                return Err(e);
            }
        };
        let old = std::mem::replace(&mut self.active, next);
        self.sealed.push(Sealed {
            first_sequence: old.first_sequence,
            path: old.path,
            len: old.len,
        });
        self.roll_over.succeeded();
        Ok(())
    }

    /// Roll over to a new segment starting at `first_sequence` if the active one is full
    /// and no failed roll-over asks to wait. A roll-over that fails without poisoning the
    /// log is counted and put off (see [`crate::backoff`]); the caller appends to the active
    /// segment, which merely grows past its size. Only a poisoning failure is returned.
    pub fn roll_over_if_due(&mut self, first_sequence: u64) -> Result<()> {
        let now = Instant::now();
        if !self.is_full() || !self.roll_over.ready(now) {
            return Ok(());
        }
        match self.rotate(first_sequence) {
            Err(e) if self.poison.is_set() => Err(e),
            Err(_) => {
                self.counters.roll_over_failures += 1;
                self.roll_over.failed(now);
                Ok(())
            }
            Ok(()) => Ok(()),
        }
    }

    /// Remove from the list the sealed segments that start before `first_sequence` (and so
    /// hold only records before it); the caller deletes their files.
    pub fn take_sealed_before(&mut self, first_sequence: u64) -> Vec<Sealed> {
        let (gone, kept) = std::mem::take(&mut self.sealed)
            .into_iter()
            .partition(|s| s.first_sequence < first_sequence);
        self.sealed = kept;
        gone
    }

    /// Every live segment with the length written so far, oldest first.
    pub fn files(&self) -> Vec<SegmentExtent> {
        self.sealed
            .iter()
            .map(|s| SegmentExtent {
                first_sequence: s.first_sequence,
                path: s.path.clone(),
                len: s.len,
            })
            .chain(std::iter::once(SegmentExtent {
                first_sequence: self.active.first_sequence,
                path: self.active.path.clone(),
                len: self.active.len,
            }))
            .collect()
    }

    /// Put back, oldest first, sealed segments taken by [`Log::take_sealed_before`] whose
    /// files could not be deleted, so the next checkpoint tries them again.
    pub fn restore_sealed(&mut self, mut segments: Vec<Sealed>) {
        segments.append(&mut self.sealed);
        self.sealed = segments;
    }

    /// Bytes in all live segments.
    pub fn total_bytes(&self) -> u64 {
        self.sealed.iter().map(|s| s.len).sum::<u64>() + self.active.len
    }

    /// Live segment files.
    pub fn segment_count(&self) -> u64 {
        self.sealed.len() as u64 + 1
    }

    /// Throw away what a power loss would: every byte of the active segment past the
    /// synced watermark. With `torn_fragment`, leave the first bytes of the unsynced part
    /// behind, as a write cut off mid-way does.
    pub fn cut_to_synced(&mut self, torn_fragment: bool) -> Result<PowerLossReport> {
        self.check()?;
        // Nothing may touch the log after the cut: a later roll-over would seal the torn
        // fragment into the middle of the log, where recovery rightly calls it damage.
        self.poison
            .set("a simulated power loss cut the log; restart to recover");
        let a = &mut self.active;
        let unsynced = a.len - a.synced_len;
        let fragment = if torn_fragment && unsynced > 1 {
            let bytes = self.fs.read(&a.path).map_err(Error::io("read", &a.path))?;
            let start = (a.synced_len as usize).min(bytes.len());
            let end = (start + 16)
                .min(start + unsynced as usize - 1)
                .min(bytes.len());
            bytes[start..end].to_vec()
        } else {
            Vec::new()
        };
        a.file
            .truncate(a.synced_len)
            .map_err(Error::io("truncate", &a.path))?;
        a.file
            .append(&fragment)
            .map_err(Error::io("write", &a.path))?;
        a.len = a.synced_len + fragment.len() as u64;
        Ok(PowerLossReport {
            synced_bytes: self.total_bytes() - fragment.len() as u64,
            unsynced_bytes_dropped: unsynced - fragment.len() as u64,
            torn_fragment_bytes: fragment.len() as u64,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fs::SimFs;

    fn log(fs: &SimFs) -> Log {
        let dir = PathBuf::from("/d");
        let active = create_segment(fs, &dir, 1, Room::Required(1 << 20)).expect("segment");
        Log {
            dir,
            fs: Arc::new(fs.clone()),
            active,
            sealed: Vec::new(),
            segment_bytes: 1 << 20,
            counters: LogCounters::default(),
            poison: Arc::default(),
            roll_over: Backoff::default(),
        }
    }

    #[test]
    fn regression_nothing_touches_the_log_after_a_power_loss_cut() {
        // Found by `walab torture --fsync interval:100 --crash power-loss`: a batch or a
        // checkpoint already waiting for the log lock ran after the cut, appending records
        // or rolling the log over behind the torn fragment, and the next start-up refused
        // the directory as damaged.
        let fs = SimFs::new(1);
        let mut log = log(&fs);
        log.append(&[1; 40], 1).expect("append");
        log.cut_to_synced(true).expect("cut");
        assert!(matches!(
            log.append(&[2; 40], 1),
            Err(Error::Poisoned { .. })
        ));
        assert!(matches!(log.rotate(2), Err(Error::Poisoned { .. })));
        assert!(matches!(log.sync(), Err(Error::Poisoned { .. })));
    }

    #[test]
    fn a_failed_sync_is_never_retried() {
        use crate::fs::{Fault, FaultOp};
        let fs = SimFs::new(2);
        let mut log = log(&fs);
        log.append(&[1; 40], 1).expect("append");
        fs.inject(Fault {
            op: FaultOp::Sync,
            nth: 0,
            kind: std::io::ErrorKind::Other,
        });
        assert!(matches!(log.sync(), Err(Error::Io { .. })));
        let syncs = fs.syncs();
        assert!(log.sync().is_err());
        assert!(log.rotate(2).is_err());
        assert_eq!(fs.syncs(), syncs, "no sync may follow a failed one");
    }
}
