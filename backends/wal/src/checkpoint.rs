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
//!
//! A failure leaves the log whole, so it poisons only when it is a failed sync of the log:
//! the roll-over syncs the active segment first, and that sync is the write path's own
//! (never retried). A new segment that cannot be created (EMFILE, ENOSPC), a snapshot that
//! cannot be written, old files that cannot be deleted: the checkpoint fails, writers go
//! on, and the failure is counted and told to the observer. Automatic checkpoints then wait
//! (see `crate::backoff`) before trying again; a requested one is always tried.
//!
//! Until the snapshot is durable, its records are not counted as checkpointed: while it is
//! written, and after a failed roll-over or snapshot, `checkpointed` stays where it was, so
//! `records_since_checkpoint` is always what a crash would replay. Once it is durable they
//! are, even if deleting the files it made redundant fails (recovery would start from it
//! too).

use std::io::ErrorKind;
use std::path::Path;
use std::sync::atomic::Ordering;
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use crate::error::{Error, Result};
use crate::report::{CheckpointFailure, CheckpointReport};
use crate::shared::{Shared, lock};
use crate::snapshot;

/// A request to the checkpoint thread: automatic ones carry no reply channel.
pub(crate) type Request = Option<mpsc::Sender<Result<CheckpointReport>>>;

/// The checkpoint thread: runs the checkpoints asked for, one at a time. While a failure
/// holds automatic checkpoints back, automatic requests are dropped; when the wait is over
/// the thread checks the threshold itself, so a store that has stopped taking writes is
/// still checkpointed. A requested checkpoint is run at once, whatever the wait.
pub(crate) fn thread(s: &Shared, rx: &Receiver<Request>) {
    loop {
        let wait = lock(&s.checkpoint_status).backoff.remaining(Instant::now());
        let request = match wait {
            None => match rx.recv() {
                Ok(request) => request,
                Err(_) => return,
            },
            Some(wait) => match rx.recv_timeout(wait) {
                Ok(request) => request,
                Err(RecvTimeoutError::Timeout) if s.checkpoint_due(lock(&s.log).total_bytes()) => {
                    None
                }
                Err(RecvTimeoutError::Timeout) => continue,
                Err(RecvTimeoutError::Disconnected) => return,
            },
        };
        match request {
            Some(reply) => {
                let _ = reply.send(run(s, false));
            }
            None => {
                if lock(&s.checkpoint_status).backoff.ready(Instant::now()) {
                    // Counted and reported inside; the wait before the next try grows.
                    let _ = run(s, true);
                }
            }
        }
    }
}

/// How one attempt ended.
enum Outcome {
    /// A snapshot was taken and the log truncated.
    Taken(CheckpointReport),
    /// Nothing was written since the last checkpoint.
    NothingNew(CheckpointReport),
    /// The engine is poisoned: nothing was tried (the failure is reported already).
    Refused(Error),
    /// The checkpoint failed while it ran.
    Failed(Error),
}

/// Take a checkpoint (one at a time), record how it went, and tell the observer with no
/// engine lock held. `automatic` says whether the engine started it.
pub(crate) fn run(s: &Shared, automatic: bool) -> Result<CheckpointReport> {
    let outcome = {
        let _one_at_a_time = lock(&s.checkpoint_gate);
        attempt(s)
    };
    match outcome {
        Outcome::Taken(r) => {
            {
                let mut status = lock(&s.checkpoint_status);
                status.count += 1;
                status.last = Some(r.clone());
                status.backoff.succeeded();
            }
            if let Some(obs) = &s.config.observer {
                obs.checkpoint_finished(&r);
            }
            Ok(r)
        }
        Outcome::NothingNew(r) => Ok(r),
        Outcome::Refused(e) => Err(e),
        Outcome::Failed(e) => {
            {
                let mut status = lock(&s.checkpoint_status);
                status.failures += 1;
                status.last_failure = Some(CheckpointFailure {
                    error: e.to_string(),
                    at_micros: unix_micros(),
                    automatic,
                });
                status.backoff.failed(Instant::now());
            }
            if let Some(obs) = &s.config.observer {
                obs.checkpoint_failed(&e, automatic);
            }
            Err(e)
        }
    }
}

fn attempt(s: &Shared) -> Outcome {
    if let Err(e) = s.poison.check() {
        return Outcome::Refused(e);
    }
    let started = Instant::now();
    let previous = s.checkpointed.load(Ordering::Acquire);

    let (sequence, state) = {
        let mut log = lock(&s.log);
        // Checked again under the log lock: the log may have failed (or been cut by a
        // simulated power loss) while this checkpoint waited for it.
        if let Err(e) = s.poison.check() {
            return Outcome::Refused(e);
        }
        let sequence = s.applied.load(Ordering::Acquire);
        if sequence == previous {
            drop(log);
            let keys = s.read_state().len() as u64;
            return Outcome::NothingNew(report(sequence, keys, 0, 0, 0, started));
        }
        let state = s.read_state().clone();
        // The active segment may already start after S (a size roll-over right at S);
        // then it holds nothing the snapshot covers and stays.
        if log.active.first_sequence <= sequence
            && let Err(e) = log.rotate(sequence + 1)
        {
            // A failed sync of the log has poisoned it (and the engine, one flag), as on
            // the write path; a new segment it could not create left the log as it was.
            return Outcome::Failed(e);
        }
        (sequence, state)
    };
    s.checkpoint_running.store(true, Ordering::Release);
    let dir = s.config.dir.as_path();
    let pace = s.config.snapshot_bytes_per_sec;
    let result = match snapshot::write_paced(s.fs.as_ref(), dir, sequence, &state, pace) {
        Ok((path, bytes)) => {
            // Durable now: a crash would start from it, so its records stop counting as
            // replay debt (even if the clean-up below fails).
            s.checkpointed.store(sequence, Ordering::Release);
            s.snapshot_bytes.store(bytes, Ordering::Release);
            remove_redundant(s, sequence, &path).map(|removed| (bytes, removed))
        }
        // The snapshot did not become durable: the log still holds everything, and
        // `checkpointed` never moved.
        Err(e) => Err(e),
    };
    s.checkpoint_running.store(false, Ordering::Release);
    match result {
        Ok((snapshot_bytes, segments_removed)) => Outcome::Taken(report(
            sequence,
            state.len() as u64,
            snapshot_bytes,
            sequence - previous,
            segments_removed,
            started,
        )),
        Err(e) => Outcome::Failed(e),
    }
}

/// Delete the segments and snapshots the durable snapshot at `snap_path` (covering
/// `sequence`) made redundant; returns how many segments went. Segments that could not be
/// deleted go back on the log's list, so the next checkpoint tries them again.
fn remove_redundant(s: &Shared, sequence: u64, snap_path: &Path) -> Result<usize> {
    let dir = s.config.dir.as_path();
    let fs = s.fs.as_ref();
    let mut redundant = lock(&s.log).take_sealed_before(sequence + 1).into_iter();
    let mut removed = 0;
    for seg in redundant.by_ref() {
        match fs.remove(&seg.path) {
            // Gone already is as good as deleted.
            Ok(()) => removed += 1,
            Err(e) if e.kind() == ErrorKind::NotFound => removed += 1,
            Err(e) => {
                let mut left = vec![seg.clone()];
                left.extend(redundant);
                lock(&s.log).restore_sealed(left);
                return Err(Error::io("remove", &seg.path)(e));
            }
        }
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
    Ok(removed)
}

fn unix_micros() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_micros() as u64)
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
        finished_at_micros: unix_micros(),
    }
}
