//! The facade: [`Engine`] opens a directory, takes writes through group commit, serves
//! reads from the in-memory state, and runs checkpoints in the background.
//!
//! The engine holds its directory's lock from before recovery until it is dropped: a second
//! engine on the same files would append to the same log and delete the other's segments.

use std::fmt;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{self, SyncSender, TrySendError};
use std::sync::{Arc, Condvar, Mutex, RwLock};
use std::thread::JoinHandle;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use crate::checkpoint::{self, Request as CheckpointRequest};
use crate::commit::{self, Done, Queue, WriteOp};
use crate::config::{Config, SyncPolicy};
use crate::error::{Error, Result};
use crate::fs::{DirLock, Fs, LOCK_FILE, LockError, RealFs};
use crate::record::{self, Op};
use crate::report::{
    CheckpointReport, Commit, CommitTiming, LogEntry, PowerLossReport, RecoveryReport, Stats,
    Written,
};
use crate::segment::SegmentFile;
use crate::shared::{Bytes, CheckpointStatus, Shared, State, lock};
use crate::{reader, recovery};

/// The WAL engine. Cheap to share behind an `Arc`; every method takes `&self`.
pub struct Engine {
    pub(crate) shared: Arc<Shared>,
    /// Writes waiting for the log writer thread.
    queue: Arc<Queue>,
    /// Requests to the checkpoint thread: automatic ones carry no reply channel.
    checkpoint_tx: Option<SyncSender<CheckpointRequest>>,
    threads: Vec<JoinHandle<()>>,
    /// Declared last, so it is released after `Drop::drop` has stopped the threads and
    /// synced the log, and after the files are closed.
    _dir_lock: Box<dyn DirLock>,
}

impl fmt::Debug for Engine {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Engine")
            .field("dir", &self.shared.config.dir)
            .finish_non_exhaustive()
    }
}

/// Lower the calling thread's scheduling priority. Checkpoints are long and CPU-heavy;
/// on a small machine they would otherwise take the core a group-commit leader needs and
/// add a whole scheduler slice to some writes' latency.
#[allow(unsafe_code)]
fn lower_priority() {
    // SAFETY: setpriority has no memory-safety preconditions; on Linux, PRIO_PROCESS with
    // who = 0 changes the nice value of the calling thread only.
    unsafe {
        libc::setpriority(libc::PRIO_PROCESS, 0, 10);
    }
}

fn now_micros() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_micros() as u64)
}

impl Engine {
    /// Open (or create) the data directory `config.dir` on the real file system, running
    /// recovery. Fails with [`Error::Locked`] while another engine (in this process or
    /// another) has the directory open.
    pub fn open(config: Config) -> Result<Engine> {
        Self::open_with_fs(config, Arc::new(RealFs))
    }

    /// Open through any [`Fs`] (tests use [`crate::fs::SimFs`]).
    pub fn open_with_fs(config: Config, fs: Arc<dyn Fs>) -> Result<Engine> {
        if config.segment_bytes < crate::config::MIN_SEGMENT_BYTES {
            return Err(Error::Config(format!(
                "segment size must be at least {} bytes",
                crate::config::MIN_SEGMENT_BYTES
            )));
        }
        let dir = config.dir.as_path();
        fs.create_dir_all(dir)
            .map_err(Error::io("create directory", dir))?;
        // Before recovery: recovery deletes and truncates files a running engine relies on.
        let dir_lock = fs.lock_dir(dir).map_err(|e| match e {
            LockError::Held { pid } => Error::Locked {
                dir: dir.to_path_buf(),
                pid,
            },
            LockError::Io(e) => Error::io("lock", dir.join(LOCK_FILE))(e),
        })?;
        let rec = recovery::recover(fs.clone(), &config)?;
        if let Some(obs) = &config.observer {
            obs.recovered(&rec.report);
        }
        let snapshot_bytes = rec.report.snapshot.as_ref().map_or(0, |s| s.bytes);
        let shared = Arc::new(Shared {
            poison: rec.log.poison.clone(),
            log: Mutex::new(rec.log),
            state: RwLock::new(rec.state),
            applied: AtomicU64::new(rec.last_sequence),
            checkpointed: AtomicU64::new(rec.checkpoint_sequence),
            checkpoint_running: AtomicBool::new(false),
            snapshot_bytes: AtomicU64::new(snapshot_bytes),
            checkpoint_gate: Mutex::new(()),
            checkpoint_status: Mutex::new(CheckpointStatus::default()),
            recovery: rec.report,
            stopping: Mutex::new(false),
            stopping_cv: Condvar::new(),
            config,
            fs,
        });
        let mut threads = Vec::new();
        let (tx, rx) = mpsc::sync_channel::<CheckpointRequest>(1);
        let s = shared.clone();
        threads.push(spawn("walab-checkpoint", move || {
            lower_priority();
            checkpoint::thread(&s, &rx);
        })?);
        let queue = Arc::new(Queue::default());
        let (s, q, ask) = (shared.clone(), queue.clone(), tx.clone());
        let next_sequence = rec.last_sequence + 1;
        threads.push(spawn("walab-log-writer", move || {
            commit::run_writer(&s, &q, next_sequence, |log_bytes| {
                if s.checkpoint_due(log_bytes)
                    // Full means one is already asked for: nothing to add.
                    && let Err(TrySendError::Disconnected(_)) = ask.try_send(None)
                {
                    s.poison.set("the checkpoint thread is gone");
                }
            });
        })?);
        if let SyncPolicy::Interval(every) = shared.config.sync {
            let s = shared.clone();
            threads.push(spawn("walab-interval-sync", move || {
                commit::interval_sync(&s, every)
            })?);
        }
        Ok(Engine {
            shared,
            queue,
            checkpoint_tx: Some(tx),
            threads,
            _dir_lock: dir_lock,
        })
    }

    fn check_size(key: &[u8], value: &[u8]) -> Result<()> {
        let bytes = record::encoded_len(key.len(), value.len());
        if bytes - record::FRAME_HEADER > record::MAX_BODY {
            return Err(Error::TooLarge {
                bytes,
                limit: record::MAX_BODY + record::FRAME_HEADER,
            });
        }
        Ok(())
    }

    /// Hand a write to the log writer and return at once; `done` is called with its
    /// outcome once it is as durable as the policy says and applied (or has failed). This
    /// is the engine's one write path: the blocking methods below wait on it. A delete of a
    /// key that is not there, and any write to a poisoned engine, complete at once.
    pub fn submit(
        &self,
        op: Op,
        key: Bytes,
        value: Bytes,
        done: impl FnOnce(Result<Written>) + Send + 'static,
    ) {
        if let Err(e) = Self::check_size(&key, &value).and_then(|()| self.shared.poison.check()) {
            return done(Err(e));
        }
        if op == Op::Delete && self.get(&key).is_none() {
            let now = Instant::now();
            return done(Ok(Written {
                commit: Commit {
                    sequence: self.shared.applied.load(Ordering::Acquire),
                    timing: CommitTiming {
                        submitted: now,
                        written: now,
                        synced: None,
                        applied: now,
                        batch_records: 0,
                    },
                },
                existed: false,
            }));
        }
        let write = WriteOp {
            op,
            key,
            value,
            timestamp_micros: now_micros(),
        };
        let done: Done = Box::new(done);
        self.queue.push(write, done);
    }

    /// [`Engine::submit`], waiting for the outcome.
    fn write(&self, op: Op, key: &[u8], value: &[u8]) -> Result<Written> {
        let (tx, rx) = mpsc::sync_channel(1);
        self.submit(op, Bytes::from(key), Bytes::from(value), move |r| {
            let _ = tx.send(r);
        });
        rx.recv().unwrap_or_else(|_| {
            Err(Error::Poisoned {
                cause: "the log writer thread is gone".into(),
            })
        })
    }

    /// Store `value` under `key`; returns once the record is as durable as the policy says.
    pub fn set(&self, key: &[u8], value: &[u8]) -> Result<Commit> {
        Ok(self.write(Op::Set, key, value)?.commit)
    }

    /// Remove `key`; `None` when it was not there (nothing is logged if it was absent
    /// before the call).
    pub fn delete(&self, key: &[u8]) -> Result<Option<Commit>> {
        let written = self.write(Op::Delete, key, &[])?;
        Ok(written.existed.then_some(written.commit))
    }

    /// Remove every key with one record: after a crash, all cleared or nothing cleared.
    pub fn clear(&self) -> Result<Commit> {
        Ok(self.write(Op::Clear, &[], &[])?.commit)
    }

    /// Read one key.
    pub fn get(&self, key: &[u8]) -> Option<Bytes> {
        self.shared.read_state().get(key).cloned()
    }

    /// A copy of the whole state (O(1): the map is persistent).
    pub fn state(&self) -> State {
        self.shared.read_state().clone()
    }

    /// How many keys are stored.
    pub fn len(&self) -> usize {
        self.shared.read_state().len()
    }

    /// Whether no key is stored.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Take a checkpoint now, on the checkpoint thread; waits for one already running to
    /// finish first. Tried even while automatic checkpoints wait after a failure. A failure
    /// is returned (and counted in [`Stats`]); it poisons the engine only if it was a
    /// failed sync of the log.
    pub fn checkpoint(&self) -> Result<CheckpointReport> {
        let gone = || Error::Poisoned {
            cause: "the checkpoint thread is gone".into(),
        };
        let (reply_tx, reply_rx) = mpsc::channel();
        self.checkpoint_tx
            .as_ref()
            .ok_or_else(gone)?
            .send(Some(reply_tx))
            .map_err(|_| gone())?;
        reply_rx.recv().map_err(|_| gone())?
    }

    /// The records since the last checkpoint, read back from the files on disk: the newest
    /// of them, oldest first, at most `limit`, and no more than `max_bytes` of keys and
    /// values (though always the newest record, however big); and how many there are in
    /// all.
    ///
    /// Only the segments the answer needs are read, newest first: a log of gigabytes
    /// behind a listing of the last few records costs one segment read.
    pub fn log_entries(&self, limit: usize, max_bytes: usize) -> Result<(Vec<LogEntry>, u64)> {
        // Taken together under the log lock, which a batch holds until it is applied, so
        // the files hold exactly the records up to `applied`.
        let (files, after, applied) = {
            let log = lock(&self.shared.log);
            (
                log.files(),
                self.shared.checkpointed.load(Ordering::Acquire),
                self.shared.applied.load(Ordering::Acquire),
            )
        };
        // Counted from sequence numbers, not by reading: every number after the checkpoint
        // up to `applied` is exactly one record in these files. Numbers are handed out one
        // by one; a batch that fails poisons the engine, so nothing after it is applied;
        // recovery goes on numbering after the last record it kept, and refuses a directory
        // whose files skip numbers.
        let total = applied.saturating_sub(after);
        let mut newest_first = Vec::new();
        let mut bytes = 0usize;
        'segments: for f in files.iter().rev() {
            if newest_first.len() >= limit {
                break;
            }
            let seg = SegmentFile {
                first_sequence: f.first_sequence,
                path: f.path.clone(),
            };
            let file = match reader::read_file(self.shared.fs.as_ref(), &seg, Some(f.len)) {
                Ok(file) => file,
                // A checkpoint deleted it since the list was taken, and every older one
                // with it: their records are all covered by that checkpoint.
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => break,
                Err(e) => return Err(Error::io("read", &f.path)(e)),
            };
            if let Err(reason) = file.header {
                return Err(Error::corrupt(&f.path, 0, reason));
            }
            for (_, r) in file.records().records.iter().rev() {
                // Sequences increase through the log: everything older is covered too.
                if r.sequence <= after || newest_first.len() == limit {
                    break 'segments;
                }
                let size = r.key.len() + r.value.len();
                if !newest_first.is_empty() && bytes.saturating_add(size) > max_bytes {
                    break 'segments;
                }
                bytes += size;
                newest_first.push(LogEntry {
                    sequence: r.sequence,
                    timestamp_micros: r.timestamp_micros,
                    op: r.op,
                    key: r.key.to_vec(),
                    value: r.value.to_vec(),
                });
            }
            if f.first_sequence <= after.saturating_add(1) {
                break;
            }
        }
        newest_first.reverse();
        Ok((newest_first, total))
    }

    /// The engine's counters.
    pub fn stats(&self) -> Stats {
        let s = &self.shared;
        let (counters, log_bytes, segments, reserved_room) = {
            let log = lock(&s.log);
            let room = log.active.reserved.saturating_sub(log.active.len);
            (
                log.counters.clone(),
                log.total_bytes(),
                log.segment_count(),
                room,
            )
        };
        let applied = s.applied.load(Ordering::Acquire);
        let ck = lock(&s.checkpoint_status);
        let checkpoint_retry_in = ck.backoff.remaining(Instant::now());
        Stats {
            sequence: applied,
            keys: self.len() as u64,
            records_since_checkpoint: applied - s.checkpointed.load(Ordering::Acquire),
            checkpoint_threshold: s.config.checkpoint_threshold,
            sync: s.config.sync,
            group_commit: s.config.group_commit,
            log_bytes,
            segments,
            appends: counters.appends,
            bytes_written: counters.bytes_written,
            fsyncs: counters.fsyncs,
            fsync_time: counters.fsync_time,
            batch_sizes: counters.batch_sizes,
            checkpoints: ck.count,
            checkpoint_running: s.checkpoint_running.load(Ordering::Acquire),
            last_checkpoint: ck.last.clone(),
            checkpoint_failures: ck.failures,
            last_checkpoint_failure: ck.last_failure.clone(),
            checkpoint_retry_in,
            roll_over_failures: counters.roll_over_failures,
            reserved_room,
            poisoned: self.poisoned(),
        }
    }

    /// Why the engine refuses writes, once it does: a failed write or sync of the log (or
    /// a simulated power loss) made what is on disk unknown until it is reopened. `None`
    /// while it takes writes.
    pub fn poisoned(&self) -> Option<String> {
        self.shared.poison.cause().map(str::to_owned)
    }

    /// What recovery found when the engine was opened.
    pub fn recovery(&self) -> &RecoveryReport {
        &self.shared.recovery
    }

    /// The configuration the engine runs with.
    pub fn config(&self) -> &Config {
        &self.shared.config
    }

    /// Simulate a power loss for the lab's crash endpoint: refuse further writes, then cut
    /// the log back to what was synced (optionally leaving a torn fragment). The caller
    /// kills the process next.
    pub fn simulate_power_loss(&self, torn_fragment: bool) -> Result<PowerLossReport> {
        // Waits for a batch in flight: under `always` it is synced before the lock is free.
        // The cut poisons the log first thing, so no batch after it is written or applied.
        let mut log = lock(&self.shared.log);
        log.cut_to_synced(torn_fragment)
    }
}

impl Drop for Engine {
    fn drop(&mut self) {
        *lock(&self.shared.stopping) = true;
        self.shared.stopping_cv.notify_all();
        // The writer finishes what is queued first: those writes were handed over.
        self.queue.stop();
        self.checkpoint_tx = None;
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
        // A clean shutdown syncs what the policy left unsynced; a crash would not.
        let mut log = lock(&self.shared.log);
        if log.active.synced_len < log.active.len {
            let _ = log.sync();
        }
    }
}

fn spawn(name: &str, f: impl FnOnce() + Send + 'static) -> Result<JoinHandle<()>> {
    std::thread::Builder::new()
        .name(name.into())
        .spawn(f)
        .map_err(|e| Error::Config(format!("cannot start thread {name}: {e}")))
}
