//! Opening a data directory: load the newest snapshot, replay every record after it, repair
//! a torn tail, and refuse damage a crash cannot explain.

use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use crate::backoff::Backoff;
use crate::config::{Config, RecoveryMode};
use crate::error::{Error, Result};
use crate::fs::Fs;
use crate::log::{Active, Log, LogCounters, Room, Sealed, create_segment, reserve_room};
use crate::reader::{self, End};
use crate::record::RecordRef;
use crate::report::{RecoveryReport, SnapshotInfo};
use crate::segment::{self, SegmentFile};
use crate::shared::{Bytes, State, apply};
use crate::snapshot;

/// What opening a directory produced.
#[derive(Debug)]
pub(crate) struct Recovered {
    pub state: State,
    /// The last sequence number in the log or snapshot.
    pub last_sequence: u64,
    /// The sequence the loaded snapshot covers (0 without one).
    pub checkpoint_sequence: u64,
    pub log: Log,
    pub report: RecoveryReport,
}

/// No log reaches the last sequence number honestly (2^64 writes), and nothing could be
/// written after it: a file that claims it is damaged.
const NO_SEQUENCE_LEFT: &str =
    "sequence number 18446744073709551615 (u64::MAX) leaves no sequence for the next write";

/// Where replay stopped early, and what to cut.
struct Cut {
    segment: usize,
    offset: u64,
}

/// Open `config.dir` through `fs`, recovering what is there.
pub(crate) fn recover(fs: Arc<dyn Fs>, config: &Config) -> Result<Recovered> {
    let started = Instant::now();
    let dir = config.dir.as_path();
    fs.create_dir_all(dir)
        .map_err(Error::io("create directory", dir))?;
    let names = fs.list(dir).map_err(Error::io("list", dir))?;
    let mut unfinished_checkpoint = false;
    for name in names.iter().filter(|n| snapshot::is_temporary(n)) {
        unfinished_checkpoint = true;
        // A snapshot that never got renamed into place: the checkpoint did not finish.
        let path = dir.join(name);
        fs.remove(&path).map_err(Error::io("remove", &path))?;
    }

    let snapshots = snapshot::find(dir, &names);
    let (mut state, snap_info) = match snapshots.last() {
        Some((seq, path)) => {
            let loaded = snapshot::load(fs.as_ref(), path, *seq)?;
            if loaded.sequence == u64::MAX {
                return Err(Error::corrupt(path, 12, NO_SEQUENCE_LEFT));
            }
            let info = SnapshotInfo {
                sequence: loaded.sequence,
                bytes: loaded.bytes,
                keys: loaded.state.len() as u64,
            };
            (loaded.state, Some(info))
        }
        None => (State::new(), None),
    };
    let snap_seq = snap_info.as_ref().map_or(0, |s| s.sequence);
    for (_, path) in snapshots.iter().rev().skip(1) {
        // Older snapshots are redundant once the newest one has loaded cleanly.
        fs.remove(path).map_err(Error::io("remove", path))?;
    }

    let segments = segment::find(dir, &names);
    let mut report = RecoveryReport {
        mode: config.recovery_mode,
        snapshot: snap_info,
        segments_read: 0,
        records_replayed: 0,
        torn_bytes_discarded: 0,
        torn_at: None,
        missing_records: None,
        unfinished_checkpoint,
        last_sequence: snap_seq,
        duration: Default::default(),
    };
    let mut last_seq = snap_seq;
    let mut lens = Vec::with_capacity(segments.len());
    let mut cut: Option<Cut> = None;
    'segments: for (i, seg) in segments.iter().enumerate() {
        let is_last = i + 1 == segments.len();
        let file =
            reader::read_file(fs.as_ref(), seg, None).map_err(Error::io("read", &seg.path))?;
        let bytes = &file.bytes;
        report.segments_read += 1;
        if let Err(reason) = file.header {
            let explainable = is_last && !reader::valid_record_in(bytes, 0);
            decide(config.recovery_mode, explainable, seg, 0, reason)?;
            cut = Some(Cut {
                segment: i,
                offset: 0,
            });
            lens.push(bytes.len() as u64);
            break;
        }
        // Sequence numbers are handed out one by one, so the segment must start at or
        // before the next number needed: anything else means records that are in no file.
        if seg.first_sequence > last_seq + 1 {
            let (first, last) = (last_seq + 1, seg.first_sequence - 1);
            if config.recovery_mode != RecoveryMode::PointInTime {
                return Err(Error::MissingRecords {
                    dir: dir.to_path_buf(),
                    first,
                    last,
                    next: seg.path.clone(),
                });
            }
            report.missing_records = Some((first, last));
            cut = Some(Cut {
                segment: i,
                offset: 0,
            });
            lens.push(bytes.len() as u64);
            break;
        }
        if seg.first_sequence <= last_seq && last_seq > snap_seq {
            return Err(Error::corrupt(
                &seg.path,
                0,
                "the segment starts at a sequence number the previous segment already used",
            ));
        }
        let read = file.records();
        for (offset, rec) in &read.records {
            if rec.sequence <= last_seq && rec.sequence > snap_seq {
                return Err(Error::corrupt(
                    &seg.path,
                    *offset,
                    "sequence number does not increase",
                ));
            }
            if rec.sequence == u64::MAX {
                return Err(Error::corrupt(&seg.path, *offset, NO_SEQUENCE_LEFT));
            }
            if rec.sequence > last_seq + 1 && rec.sequence > snap_seq {
                // Within one file no deletion explains it: damage, like a bad checksum.
                let reason = "sequence number skips: records before it are in no file";
                decide(config.recovery_mode, false, seg, *offset, reason)?;
                cut = Some(Cut {
                    segment: i,
                    offset: *offset,
                });
                lens.push(bytes.len() as u64);
                break 'segments;
            }
            if rec.sequence > snap_seq {
                replay(&mut state, rec);
                report.records_replayed += 1;
                last_seq = rec.sequence;
            }
        }
        lens.push(bytes.len() as u64);
        match read.end {
            End::Clean => {}
            End::Torn { offset, reason } => {
                decide(config.recovery_mode, is_last, seg, offset, reason)?;
                cut = Some(Cut { segment: i, offset });
                break;
            }
            End::Damaged { offset, reason } => {
                decide(config.recovery_mode, false, seg, offset, reason)?;
                cut = Some(Cut { segment: i, offset });
                break;
            }
        }
    }

    let log = open_log(fs, config, &segments, &mut lens, cut, last_seq, &mut report)?;
    // An empty last segment still carries a sequence number in its name (a checkpoint's
    // roll-over, or records lost to a power loss): numbering goes on from there, so a later
    // segment never sorts before it.
    let last_seq = last_seq.max(log.active.first_sequence.saturating_sub(1));
    report.last_sequence = last_seq;
    report.duration = started.elapsed();
    Ok(Recovered {
        state,
        last_sequence: last_seq,
        checkpoint_sequence: snap_seq,
        log,
        report,
    })
}

fn replay(state: &mut State, rec: &RecordRef<'_>) {
    apply(state, rec.op, Bytes::from(rec.key), Bytes::from(rec.value));
}

/// Whether damage at `offset` may be cut off, or must stop start-up.
fn decide(
    mode: RecoveryMode,
    explained_by_crash: bool,
    seg: &SegmentFile,
    offset: u64,
    reason: &str,
) -> Result<()> {
    let tolerated = match mode {
        RecoveryMode::TolerateCorruptedTail => explained_by_crash,
        RecoveryMode::AbsoluteConsistency => false,
        RecoveryMode::PointInTime => true,
    };
    if tolerated {
        return Ok(());
    }
    let hint = if explained_by_crash {
        " (a torn tail; RECOVERY_MODE=tolerate-corrupted-tail would cut it off)"
    } else {
        " (not a torn tail: valid records follow or a later segment exists; RECOVERY_MODE=point-in-time keeps the records before it)"
    };
    Err(Error::corrupt(&seg.path, offset, format!("{reason}{hint}")))
}

/// Apply the cut (truncate the damaged segment, delete the ones after it), delete segments
/// the snapshot made redundant, and open the last segment for appending.
fn open_log(
    fs: Arc<dyn Fs>,
    config: &Config,
    segments: &[SegmentFile],
    lens: &mut Vec<u64>,
    cut: Option<Cut>,
    last_seq: u64,
    report: &mut RecoveryReport,
) -> Result<Log> {
    let dir = config.dir.as_path();
    let mut keep = segments.len();
    let mut truncate_last: Option<u64> = None;
    if let Some(Cut { segment: i, offset }) = cut {
        for seg in &segments[i + 1..] {
            report.torn_bytes_discarded += file_len(fs.as_ref(), &seg.path)?;
            fs.remove(&seg.path)
                .map_err(Error::io("remove", &seg.path))?;
        }
        report.torn_bytes_discarded += lens[i] - offset;
        report.torn_at = Some((segments[i].path.clone(), offset));
        if offset < segment::HEADER_LEN as u64 {
            fs.remove(&segments[i].path)
                .map_err(Error::io("remove", &segments[i].path))?;
            keep = i;
        } else {
            keep = i + 1;
            truncate_last = Some(offset);
        }
        lens.truncate(keep);
        if let Some(off) = truncate_last {
            lens[keep - 1] = off;
        }
        fs.sync_dir(dir)
            .map_err(Error::io("fsync directory", dir))?;
    }

    let mut sealed: Vec<Sealed> = segments[..keep]
        .iter()
        .zip(lens.iter())
        .map(|(s, &len)| Sealed {
            first_sequence: s.first_sequence,
            path: s.path.clone(),
            len,
        })
        .collect();
    let active = match sealed.pop() {
        Some(last) => {
            let mut file = fs
                .open_append(&last.path)
                .map_err(Error::io("open", &last.path))?;
            if truncate_last.is_some() {
                file.truncate(last.len)
                    .map_err(Error::io("truncate", &last.path))?;
                file.sync_data()
                    .map_err(Error::io("fdatasync", &last.path))?;
            }
            // Its room again (a truncation gave back what lay past the cut). A disk too
            // full for it does not stop start-up: the stats show no room reserved.
            let reserved =
                reserve_room(file.as_mut(), &last.path, config.segment_bytes).unwrap_or(0);
            Active {
                first_sequence: last.first_sequence,
                path: last.path,
                file,
                len: last.len,
                synced_len: last.len,
                reserved,
            }
        }
        // A first segment on a disk with less room than `segment_bytes` still opens: the
        // store starts without reserved room (the stats say 0), as a reopened one does.
        None => create_segment(
            fs.as_ref(),
            dir,
            last_seq + 1,
            Room::IfAvailable(config.segment_bytes),
        )?,
    };
    let snap_seq = report.snapshot.as_ref().map_or(0, |s| s.sequence);
    let mut log = Log {
        dir: dir.to_path_buf(),
        fs,
        active,
        sealed,
        segment_bytes: config.segment_bytes,
        counters: LogCounters::default(),
        poison: Arc::default(),
        roll_over: Backoff::default(),
    };
    // Segments wholly covered by the snapshot are left over from a checkpoint that was cut
    // short after its snapshot became durable; finish its clean-up. A sealed segment is
    // covered when the segment after it starts at or before the first record needed.
    let firsts: Vec<u64> = log
        .sealed
        .iter()
        .map(|s| s.first_sequence)
        .chain(std::iter::once(log.active.first_sequence))
        .collect();
    let covered = (0..log.sealed.len())
        .take_while(|&k| firsts[k + 1] <= snap_seq + 1)
        .count();
    if covered > 0 {
        report.unfinished_checkpoint = true;
        for seg in log.take_sealed_before(firsts[covered]) {
            log.fs
                .remove(&seg.path)
                .map_err(Error::io("remove", &seg.path))?;
        }
        log.fs
            .sync_dir(dir)
            .map_err(Error::io("fsync directory", dir))?;
    }
    Ok(log)
}

fn file_len(fs: &dyn Fs, path: &Path) -> Result<u64> {
    Ok(fs.read(path).map_err(Error::io("read", path))?.len() as u64)
}
