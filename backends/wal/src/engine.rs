//! The facade: [`Engine`] opens a directory, takes writes through group commit, serves
//! reads from the in-memory state, and runs checkpoints in the background.
//!
//! The engine holds its directory's lock from before recovery until it is dropped: a second
//! engine on the same files would append to the same log and delete the other's segments.

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, SyncSender, TrySendError};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, RwLock};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crate::backoff::Backoff;
use crate::commit::{Queue, WriteOp};
use crate::config::{Config, SyncPolicy};
use crate::error::{Error, Result};
use crate::fs::{DirLock, Fs, LOCK_FILE, LockError, RealFs};
use crate::log::Log;
use crate::record::{self, Op};
use crate::report::{
    CheckpointFailure, CheckpointReport, Commit, LogEntry, PowerLossReport, RecoveryReport, Stats,
};
use crate::segment::SegmentFile;
use crate::{checkpoint, reader, recovery};

/// Shared bytes: keys and values in the state.
pub type Bytes = Arc<[u8]>;
/// The state: a persistent ordered map, so a checkpoint can take a copy in O(1) and write it
/// while writers go on changing the live one.
pub type State = imbl::OrdMap<Bytes, Bytes>;

/// Apply one operation to a state; returns whether the key existed before (for `Clear`,
/// whether the state held anything).
pub(crate) fn apply(state: &mut State, op: Op, key: Bytes, value: Bytes) -> bool {
    match op {
        Op::Set => state.insert(key, value).is_some(),
        Op::Delete => state.remove(&key).is_some(),
        Op::Clear => {
            let had = !state.is_empty();
            *state = State::new();
            had
        }
    }
}

/// Lock a mutex, ignoring poisoning: every critical section in the engine leaves its data
/// consistent before anything that can panic, and the engine has its own notion of being
/// poisoned (by I/O failure), which is what matters for durability.
pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Checkpoint bookkeeping.
#[derive(Debug, Default)]
pub(crate) struct CheckpointStatus {
    pub running: bool,
    pub count: u64,
    pub last: Option<CheckpointReport>,
    pub failures: u64,
    pub last_failure: Option<CheckpointFailure>,
    /// When automatic checkpoints may be tried again after a failure.
    pub backoff: Backoff,
}

/// What the engine's threads share.
pub(crate) struct Shared {
    pub config: Config,
    pub fs: Arc<dyn Fs>,
    pub queue: Mutex<Queue>,
    /// Held while a batch is written, synced and applied, so whoever holds it sees a state
    /// that matches the log exactly.
    pub log: Mutex<Log>,
    pub state: RwLock<State>,
    /// The last sequence applied to the state.
    pub applied: AtomicU64,
    /// The sequence the newest checkpoint covers.
    pub checkpointed: AtomicU64,
    /// One checkpoint at a time.
    pub checkpoint_gate: Mutex<()>,
    pub checkpoint_status: Mutex<CheckpointStatus>,
    pub recovery: RecoveryReport,
    /// Set to stop background threads.
    pub stopping: Mutex<bool>,
    pub stopping_cv: Condvar,
}

impl Shared {
    pub(crate) fn read_state(&self) -> std::sync::RwLockReadGuard<'_, State> {
        self.state.read().unwrap_or_else(|e| e.into_inner())
    }

    pub(crate) fn write_state(&self) -> std::sync::RwLockWriteGuard<'_, State> {
        self.state.write().unwrap_or_else(|e| e.into_inner())
    }

    /// Whether enough records have been written since the last checkpoint for an automatic
    /// one.
    pub(crate) fn checkpoint_due(&self) -> bool {
        let threshold = self.config.checkpoint_threshold;
        let since =
            self.applied.load(Ordering::Acquire) - self.checkpointed.load(Ordering::Acquire);
        threshold > 0 && since >= threshold
    }

    /// Refuse all further writes, remembering why.
    pub(crate) fn poison(&self, cause: &str) {
        let mut q = lock(&self.queue);
        if q.poisoned.is_none() {
            q.poisoned = Some(cause.to_string());
        }
    }
}

/// The WAL engine. Cheap to share behind an `Arc`; every method takes `&self`.
pub struct Engine {
    pub(crate) shared: Arc<Shared>,
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

type CheckpointRequest = Option<mpsc::Sender<Result<CheckpointReport>>>;

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
        if config.segment_bytes < 4096 {
            return Err(Error::Config(
                "segment size must be at least 4096 bytes".into(),
            ));
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
        let shared = Arc::new(Shared {
            queue: Mutex::new(Queue::new(rec.last_sequence + 1)),
            log: Mutex::new(rec.log),
            state: RwLock::new(rec.state),
            applied: AtomicU64::new(rec.last_sequence),
            checkpointed: AtomicU64::new(rec.checkpoint_sequence),
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
            checkpoint_thread(&s, &rx);
        })?);
        if let SyncPolicy::Interval(every) = shared.config.sync {
            let s = shared.clone();
            threads.push(spawn("walab-interval-sync", move || {
                interval_sync(&s, every)
            })?);
        }
        Ok(Engine {
            shared,
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

    fn write(&self, op: Op, key: &[u8], value: &[u8]) -> Result<(Commit, bool)> {
        Self::check_size(key, value)?;
        let op = WriteOp {
            op,
            key: Bytes::from(key),
            value: Bytes::from(value),
            timestamp_micros: now_micros(),
        };
        let (sequence, existed, timing) = crate::commit::submit(&self.shared, op)?;
        self.maybe_checkpoint();
        Ok((Commit { sequence, timing }, existed))
    }

    /// Ask the checkpoint thread for a checkpoint if the threshold has been reached.
    fn maybe_checkpoint(&self) {
        if self.shared.checkpoint_due()
            && let Some(tx) = &self.checkpoint_tx
            // Full means one is already asked for: nothing to add.
            && let Err(TrySendError::Disconnected(_)) = tx.try_send(None)
        {
            self.shared.poison("the checkpoint thread is gone");
        }
    }

    /// Store `value` under `key`; returns once the record is as durable as the policy says.
    pub fn set(&self, key: &[u8], value: &[u8]) -> Result<Commit> {
        Ok(self.write(Op::Set, key, value)?.0)
    }

    /// Remove `key`; `None` when it was not there (nothing is logged if it was absent
    /// before the call).
    pub fn delete(&self, key: &[u8]) -> Result<Option<Commit>> {
        if self.get(key).is_none() {
            return Ok(None);
        }
        let (commit, existed) = self.write(Op::Delete, key, &[])?;
        Ok(existed.then_some(commit))
    }

    /// Remove every key with one record: after a crash, all cleared or nothing cleared.
    pub fn clear(&self) -> Result<Commit> {
        Ok(self.write(Op::Clear, &[], &[])?.0)
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
        // recovery goes on numbering after the last record it kept. The one exception is
        // a directory that lost files (the oldest segment is named past the checkpoint):
        // numbers below that name are in no file, so counting starts at it.
        let oldest = files
            .first()
            .map_or(after, |f| f.first_sequence.saturating_sub(1));
        let total = applied.saturating_sub(after.max(oldest));
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
        let (counters, log_bytes, segments) = {
            let log = lock(&s.log);
            (log.counters.clone(), log.total_bytes(), log.segment_count())
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
            checkpoint_running: ck.running,
            last_checkpoint: ck.last.clone(),
            checkpoint_failures: ck.failures,
            last_checkpoint_failure: ck.last_failure.clone(),
            checkpoint_retry_in,
            roll_over_failures: counters.roll_over_failures,
            poisoned: self.poisoned(),
        }
    }

    /// Why the engine refuses writes, once it does: a failed write or sync of the log (or
    /// a simulated power loss) made what is on disk unknown until it is reopened. `None`
    /// while it takes writes.
    pub fn poisoned(&self) -> Option<String> {
        lock(&self.shared.queue).poisoned.clone()
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
        self.shared.poison("a simulated power loss is under way");
        // Waits for a batch in flight: under `always` it is synced before the lock is free.
        let mut log = lock(&self.shared.log);
        log.cut_to_synced(torn_fragment)
    }
}

impl Drop for Engine {
    fn drop(&mut self) {
        *lock(&self.shared.stopping) = true;
        self.shared.stopping_cv.notify_all();
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

/// The checkpoint thread: runs the checkpoints asked for, one at a time. While a failure
/// holds automatic checkpoints back, automatic requests are dropped; when the wait is over
/// the thread checks the threshold itself, so a store that has stopped taking writes is
/// still checkpointed. A requested checkpoint is run at once, whatever the wait.
fn checkpoint_thread(s: &Shared, rx: &Receiver<CheckpointRequest>) {
    loop {
        let wait = lock(&s.checkpoint_status).backoff.remaining(Instant::now());
        let request = match wait {
            None => match rx.recv() {
                Ok(request) => request,
                Err(_) => return,
            },
            Some(wait) => match rx.recv_timeout(wait) {
                Ok(request) => request,
                Err(RecvTimeoutError::Timeout) if s.checkpoint_due() => None,
                Err(RecvTimeoutError::Timeout) => continue,
                Err(RecvTimeoutError::Disconnected) => return,
            },
        };
        match request {
            Some(reply) => {
                let _ = reply.send(checkpoint::run(s, false));
            }
            None => {
                if lock(&s.checkpoint_status).backoff.ready(Instant::now()) {
                    // Counted and reported inside; the wait before the next try grows.
                    let _ = checkpoint::run(s, true);
                }
            }
        }
    }
}

/// The background sync of `SyncPolicy::Interval`.
fn interval_sync(s: &Shared, every: Duration) {
    let mut stopping = lock(&s.stopping);
    loop {
        stopping = s
            .stopping_cv
            .wait_timeout(stopping, every)
            .map(|(g, _)| g)
            .unwrap_or_else(|e| e.into_inner().0);
        if *stopping {
            return;
        }
        let mut log = lock(&s.log);
        if log.active.synced_len == log.active.len {
            continue;
        }
        match log.sync() {
            Ok(took) => {
                if let Some(obs) = &s.config.observer {
                    obs.interval_synced(took);
                }
            }
            Err(e) => {
                drop(log);
                // Never retried: after a failed fsync the kernel may have dropped the
                // dirty pages, so a later "successful" sync would prove nothing.
                s.poison(&e.to_string());
                return;
            }
        }
    }
}
