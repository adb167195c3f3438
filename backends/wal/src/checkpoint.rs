//! Checkpoints: snapshot the state at sequence S, then delete the segments it made
//! redundant, while writers go on.
//!
//! 1. Holding the log lock (so no batch is half applied): note S, take an O(1) copy of the
//!    state, and roll the log over to a new segment starting at S+1. Writers wait only for
//!    this step: no I/O but one segment creation.
//! 2. With no lock held: write the snapshot (temp file, fsync, rename, fsync directory).
//! 3. Only now that the snapshot is durable: delete the sealed segments before S+1 and
//!    older snapshots, and fsync the directory.
//!
//! A crash at any point leaves either the old snapshot with every segment it needs, or the
//! new snapshot (with perhaps some redundant segments, which recovery deletes).

use std::sync::atomic::Ordering;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use crate::engine::{Shared, lock};
use crate::error::{Error, Result};
use crate::report::CheckpointReport;
use crate::snapshot;

/// Take a checkpoint (one at a time).
pub(crate) fn run(s: &Shared) -> Result<CheckpointReport> {
    let _one_at_a_time = lock(&s.checkpoint_gate);
    if let Some(cause) = lock(&s.queue).poisoned.clone() {
        return Err(Error::Poisoned { cause });
    }
    let started = Instant::now();
    let previous = s.checkpointed.load(Ordering::Acquire);

    let (sequence, state) = {
        let mut log = lock(&s.log);
        // Checked again under the log lock: the log may have failed (or been cut by a
        // simulated power loss) while this checkpoint waited for it.
        if let Some(cause) = log.failed.clone() {
            return Err(Error::Poisoned { cause });
        }
        let sequence = s.applied.load(Ordering::Acquire);
        if sequence == previous {
            drop(log);
            let keys = s.read_state().len() as u64;
            return Ok(report(sequence, keys, 0, 0, 0, started));
        }
        let state = s.read_state().clone();
        // The active segment may already start after S (a size roll-over right at S);
        // then it holds nothing the snapshot covers and stays.
        if log.active.first_sequence <= sequence {
            if let Err(e) = log.rotate(sequence + 1) {
                drop(log);
                // The log may now have no usable active segment.
                s.poison(&e.to_string());
                return Err(e);
            }
        }
        s.checkpointed.store(sequence, Ordering::Release);
        (sequence, state)
    };
    lock(&s.checkpoint_status).running = true;
    let result = write_and_truncate(s, sequence, &state);
    let mut status = lock(&s.checkpoint_status);
    status.running = false;
    match result {
        Ok((snapshot_bytes, segments_removed)) => {
            let r = report(
                sequence,
                state.len() as u64,
                snapshot_bytes,
                sequence - previous,
                segments_removed,
                started,
            );
            status.count += 1;
            status.last = Some(r.clone());
            drop(status);
            if let Some(obs) = &s.config.observer {
                obs.checkpoint_finished(&r);
            }
            Ok(r)
        }
        Err(e) => {
            // The snapshot did not become durable: the log still holds everything, so
            // only the bookkeeping goes back.
            let _ = s.checkpointed.compare_exchange(
                sequence,
                previous,
                Ordering::AcqRel,
                Ordering::Acquire,
            );
            Err(e)
        }
    }
}

fn write_and_truncate(
    s: &Shared,
    sequence: u64,
    state: &crate::engine::State,
) -> Result<(u64, usize)> {
    let dir = s.config.dir.as_path();
    let fs = s.fs.as_ref();
    let (snap_path, bytes) = snapshot::write(fs, dir, sequence, state)?;
    let redundant = lock(&s.log).take_sealed_before(sequence + 1);
    for seg in &redundant {
        fs.remove(&seg.path)
            .map_err(Error::io("remove", &seg.path))?;
    }
    let names = fs.list(dir).map_err(Error::io("list", dir))?;
    for (_, old) in snapshot::find(dir, &names) {
        if old != snap_path {
            fs.remove(&old).map_err(Error::io("remove", &old))?;
        }
    }
    // Deletions need not be durable for correctness (recovery finishes them), but syncing
    // keeps a power loss from bringing back files that were already gone.
    fs.sync_dir(dir)
        .map_err(Error::io("fsync directory", dir))?;
    Ok((bytes, redundant.len()))
}

fn report(
    sequence: u64,
    keys: u64,
    snapshot_bytes: u64,
    records_truncated: u64,
    segments_removed: usize,
    started: Instant,
) -> CheckpointReport {
    CheckpointReport {
        sequence,
        keys,
        snapshot_bytes,
        records_truncated,
        segments_removed,
        duration: started.elapsed(),
        finished_at_micros: SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_micros() as u64),
    }
}
