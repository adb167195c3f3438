//! What the engine's threads share: the state, the log, the counters that tie them
//! together, and the one function that changes the state.
//!
//! This module is the bottom layer: the log writer ([`crate::commit`]), checkpoints,
//! recovery and snapshots import from here, and the facade ([`crate::engine`]) builds it.
//! Nothing here imports from those, so the dependencies point one way.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, RwLock, RwLockReadGuard, RwLockWriteGuard};

use crate::backoff::Backoff;
use crate::config::Config;
use crate::fs::Fs;
use crate::log::Log;
use crate::poison::Poison;
use crate::record::Op;
use crate::report::{CheckpointFailure, CheckpointReport, RecoveryReport};

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
    /// Held while a batch is written, synced and applied, so whoever holds it sees a state
    /// that matches the log exactly.
    pub log: Mutex<Log>,
    pub state: RwLock<State>,
    /// The one poison flag, shared with the log (which sets it on a failed write or sync).
    pub poison: Arc<Poison>,
    /// The last sequence applied to the state.
    pub applied: AtomicU64,
    /// The sequence the newest durable snapshot covers: every record after it is what a
    /// crash now would replay, also while a checkpoint is writing its snapshot.
    pub checkpointed: AtomicU64,
    /// A checkpoint is writing its snapshot (no automatic one is asked for meanwhile; the
    /// stats say so).
    pub checkpoint_running: AtomicBool,
    /// The size of the newest snapshot (0 without one): the log must grow by a share of it
    /// before an automatic checkpoint.
    pub snapshot_bytes: AtomicU64,
    /// One checkpoint at a time.
    pub checkpoint_gate: Mutex<()>,
    pub checkpoint_status: Mutex<CheckpointStatus>,
    pub recovery: RecoveryReport,
    /// Set to stop background threads.
    pub stopping: Mutex<bool>,
    pub stopping_cv: Condvar,
}

impl Shared {
    pub(crate) fn read_state(&self) -> RwLockReadGuard<'_, State> {
        self.state.read().unwrap_or_else(|e| e.into_inner())
    }

    pub(crate) fn write_state(&self) -> RwLockWriteGuard<'_, State> {
        self.state.write().unwrap_or_else(|e| e.into_inner())
    }

    /// Whether an automatic checkpoint is due, given `log_bytes` in the live segments:
    /// at least `checkpoint_threshold` records since the last one, and the log grown by at
    /// least `checkpoint_growth_percent` of the last snapshot's size (see [`Config`]).
    pub(crate) fn checkpoint_due(&self, log_bytes: u64) -> bool {
        let threshold = self.config.checkpoint_threshold;
        let since =
            self.applied.load(Ordering::Acquire) - self.checkpointed.load(Ordering::Acquire);
        if threshold == 0 || since < threshold || self.checkpoint_running.load(Ordering::Acquire) {
            return false;
        }
        let snapshot = self.snapshot_bytes.load(Ordering::Acquire);
        let wanted = snapshot.saturating_mul(self.config.checkpoint_growth_percent) / 100;
        log_bytes >= wanted
    }
}
