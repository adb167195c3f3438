//! The facade: [`Engine`] opens a directory, takes writes through group commit, serves
//! reads from the in-memory state, and runs checkpoints in the background.

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{self, SyncSender, TrySendError};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, RwLock};
use std::thread::JoinHandle;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::commit::{Queue, WriteOp};
use crate::config::{Config, SyncPolicy};
use crate::error::{Error, Result};
use crate::fs::{Fs, RealFs};
use crate::log::Log;
use crate::record::{self, Op};
use crate::report::{CheckpointReport, Commit, LogEntry, PowerLossReport, RecoveryReport, Stats};
use crate::{checkpoint, reader, recovery, segment};

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
    /// recovery.
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
            while let Ok(reply) = rx.recv() {
                // A failed automatic checkpoint leaves the log as it was (its segments
                // are only deleted after the snapshot is durable); the next one retries.
                let result = checkpoint::run(&s);
                if let Some(reply) = reply {
                    let _ = reply.send(result);
                }
            }
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
        let threshold = self.shared.config.checkpoint_threshold;
        let since = self.shared.applied.load(Ordering::Acquire)
            - self.shared.checkpointed.load(Ordering::Acquire);
        if threshold > 0 && since >= threshold {
            if let Some(tx) = &self.checkpoint_tx {
                // Full means one is already asked for: nothing to add.
                if let Err(TrySendError::Disconnected(_)) = tx.try_send(None) {
                    self.shared.poison("the checkpoint thread is gone");
                }
            }
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
    /// finish first.
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

    /// The records since the last checkpoint, read back from the files on disk: at most
    /// the newest `limit`, oldest first, and how many there are in all.
    pub fn log_entries(&self, limit: usize) -> Result<(Vec<LogEntry>, u64)> {
        let files = lock(&self.shared.log).files();
        let after = self.shared.checkpointed.load(Ordering::Acquire);
        let mut entries = std::collections::VecDeque::new();
        let mut total = 0u64;
        for (path, len) in files {
            let bytes = match self.shared.fs.read(&path) {
                Ok(b) => b,
                // A checkpoint deleted it since the list was taken: its records are all
                // covered by the checkpoint, so there is nothing to show from it.
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                Err(e) => return Err(Error::io("read", &path)(e)),
            };
            let bytes = &bytes[..(len as usize).min(bytes.len())];
            let Some(first) = segment::parse_name(
                &path
                    .file_name()
                    .map(|n| n.to_string_lossy())
                    .unwrap_or_default(),
            ) else {
                continue;
            };
            if let Err(reason) = segment::check_header(bytes, first) {
                return Err(Error::corrupt(&path, 0, reason));
            }
            for (_, r) in reader::read(bytes).records {
                if r.sequence <= after {
                    continue;
                }
                total += 1;
                if entries.len() == limit {
                    entries.pop_front();
                }
                if limit > 0 {
                    entries.push_back(LogEntry {
                        sequence: r.sequence,
                        timestamp_micros: r.timestamp_micros,
                        op: r.op,
                        key: r.key.to_vec(),
                        value: r.value.to_vec(),
                    });
                }
            }
        }
        Ok((entries.into(), total))
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
            poisoned: lock(&s.queue).poisoned.clone(),
        }
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
