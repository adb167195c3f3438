//! The one trait a storage backend implements, and the types it speaks in.
//!
//! The trait is synchronous: engines do blocking file or network I/O, and the server calls
//! them as [`KvBackend::calls`] says. Keys are UTF-8 strings validated by the caller; values
//! are opaque bytes (the server stores the JSON text of the value).
//!
//! Only `get`, `put`, `delete`, `list`, `len` and `clear` are required: what a log, a
//! checkpoint or a crash mode needs has a default that says the backend has none, so a
//! store without a log is small (see `memory.rs`).

use std::fmt;
use std::sync::Arc;

use serde::Serialize;

use crate::StoreError;
use crate::stats::{CheckpointOutcome, CrashReport, StoreStats};

/// A stored value: cheap to clone, shared with the engine's state.
pub type Value = Arc<[u8]>;

/// What a backend promises about an acknowledged write, in words a user can check.
#[derive(Debug, Clone, Serialize)]
pub struct Durability {
    /// Does an acknowledged write survive the process being killed?
    pub survives_process_crash: bool,
    /// Does an acknowledged write survive the machine losing power?
    pub survives_power_loss: bool,
    /// One sentence saying what the backend does to keep its promise.
    pub summary: String,
}

/// The answer to an accepted write.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct WriteAck {
    /// The log sequence number of the write, for backends that have a log.
    pub sequence: Option<u64>,
    /// When each step of the write happened, for backends that report it (the WAL).
    pub timing: Option<walab_wal::CommitTiming>,
}

/// One decoded log record, as `/admin/wal` shows it.
#[derive(Debug, Clone)]
pub struct WalEntry {
    /// Strictly increasing for the life of the data directory.
    pub sequence: u64,
    /// `SET`, `DELETE` or `CLEAR`.
    pub operation: &'static str,
    /// The key, lossily decoded as UTF-8 (keys are always UTF-8 when written by the server).
    pub key: String,
    /// The value bytes; `None` for operations that carry none.
    pub value: Option<Vec<u8>>,
    /// Unix time of the write in microseconds, for logs that record it (etcd's does not).
    pub timestamp_micros: Option<u64>,
}

/// The newest log records, or `None` when the backend keeps no log.
#[derive(Debug, Clone, Default)]
pub struct WalListing {
    /// The newest records, oldest first: at most the requested limit, and fewer when their
    /// keys and values would pass the requested byte budget (the newest is always there).
    pub entries: Vec<WalEntry>,
    /// How many records there are in all (the WAL: since the last checkpoint; etcd: changes
    /// to the lab's keys in its recent history).
    pub total: u64,
}

/// A write, as the server hands it to [`KvBackend::submit`].
#[derive(Debug, Clone)]
pub enum Write {
    /// Store `value` under `key`.
    Put {
        /// The key.
        key: String,
        /// The value's bytes (the JSON text the client sent).
        value: Value,
    },
    /// Remove `key`.
    Delete {
        /// The key.
        key: String,
    },
    /// Remove every key.
    Clear,
}

/// Called exactly once with a submitted write's outcome: its acknowledgement, `Ok(None)`
/// for a delete of a key that was not there, or the error.
pub type WriteDone = Box<dyn FnOnce(Result<Option<WriteAck>, StoreError>) + Send>;

/// How a backend's reads behave.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReadPath {
    /// A lookup in memory that never waits for I/O: call it where you are.
    Inline,
    /// May wait for I/O: call it from a thread that may block.
    Blocking,
}

/// How a backend's writes behave.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WritePath {
    /// Done in memory at once: [`KvBackend::submit`] completes before it returns.
    Inline,
    /// Waits for I/O in the calling thread: call [`KvBackend::submit`] from a thread that
    /// may block.
    Blocking,
    /// Queued to the backend's own writer: [`KvBackend::submit`] returns at once and
    /// completes later, from the writer's thread.
    Queued,
}

/// How the server may call a backend without stalling the threads that serve requests.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Calls {
    /// `get`.
    pub reads: ReadPath,
    /// `submit` (and so `put`, `delete`, `clear`).
    pub writes: WritePath,
}

/// How the crash endpoint should crash.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum CrashMode {
    /// The server process dies; whatever reached the OS survives.
    Process,
    /// As if the machine lost power: only what was synced survives (the WAL simulates this).
    PowerLoss,
    /// A replicated store's leader dies (SIGKILL); the server goes on.
    Leader,
    /// Every member of a replicated store dies at once; the server goes on.
    AllMembers,
}

impl CrashMode {
    /// Every mode, as `?mode=` names them.
    pub const ALL: [CrashMode; 4] = [
        CrashMode::Process,
        CrashMode::PowerLoss,
        CrashMode::Leader,
        CrashMode::AllMembers,
    ];

    /// The name in `?mode=`.
    pub fn as_str(self) -> &'static str {
        match self {
            CrashMode::Process => "process",
            CrashMode::PowerLoss => "power-loss",
            CrashMode::Leader => "leader",
            CrashMode::AllMembers => "all-members",
        }
    }

    /// Whether the server process itself dies (the caller kills it after
    /// [`KvBackend::prepare_crash`]); the other modes kill something behind the server.
    pub fn kills_the_server(self) -> bool {
        matches!(self, CrashMode::Process | CrashMode::PowerLoss)
    }
}

impl fmt::Display for CrashMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for CrashMode {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let s = s.trim().to_ascii_lowercase().replace('_', "-");
        let s = if s == "powerloss" { "power-loss" } else { &s };
        CrashMode::ALL
            .into_iter()
            .find(|m| m.as_str() == s)
            .ok_or_else(|| {
                let names: Vec<&str> = CrashMode::ALL.iter().map(|m| m.as_str()).collect();
                format!(
                    "unknown crash mode '{s}': expected one of {}",
                    names.join(", ")
                )
            })
    }
}

/// A key-value store the HTTP layer can serve.
///
/// A write returns only after the backend has done what [`KvBackend::durability`] promises.
/// What the backend supports beyond reads and writes (a log, checkpoints, crash modes) is in
/// its row of the catalog ([`crate::BackendKind::supports`]); the methods for those have defaults
/// for a backend without them.
pub trait KvBackend: Send + Sync + fmt::Debug + 'static {
    /// What an acknowledged write survives.
    fn durability(&self) -> Durability;

    /// Read one key.
    fn get(&self, key: &str) -> Result<Option<Value>, StoreError>;

    /// Store `value` under `key`.
    fn put(&self, key: &str, value: &[u8]) -> Result<WriteAck, StoreError>;

    /// Remove `key`; `Ok(None)` when it was absent.
    fn delete(&self, key: &str) -> Result<Option<WriteAck>, StoreError>;

    /// Every pair, ordered by key.
    fn list(&self) -> Result<Vec<(String, Value)>, StoreError>;

    /// How many keys are stored.
    fn len(&self) -> Result<usize, StoreError>;

    /// Whether the store holds no keys.
    fn is_empty(&self) -> Result<bool, StoreError> {
        Ok(self.len()? == 0)
    }

    /// Remove every key, atomically with respect to crashes.
    fn clear(&self) -> Result<WriteAck, StoreError>;

    /// Make the log redundant up to now (the WAL), flush (sled), compact (etcd).
    fn checkpoint(&self) -> Result<CheckpointOutcome, StoreError> {
        Err(StoreError::Unsupported(
            "WAL is not enabled: this backend keeps no log to checkpoint; use port 8001 (KV_BACKEND=wal)".into(),
        ))
    }

    /// The newest log records, at most `limit` of them, and no more than `max_bytes` of
    /// keys and values past the newest one (a listing of big values must not hold gigabytes
    /// in memory); `None` for backends without a log.
    fn wal_entries(
        &self,
        _limit: usize,
        _max_bytes: usize,
    ) -> Result<Option<WalListing>, StoreError> {
        Ok(None)
    }

    /// How many log records were replayed when the store was opened.
    fn recovered_entries(&self) -> u64 {
        0
    }

    /// What `/admin/stats` shows beyond the common fields.
    fn stats(&self) -> StoreStats {
        StoreStats::default()
    }

    /// How its calls behave (see [`Calls`]). The default is the safe one: everything may
    /// block.
    fn calls(&self) -> Calls {
        Calls {
            reads: ReadPath::Blocking,
            writes: WritePath::Blocking,
        }
    }

    /// Start `write` and call `done` with its outcome once it is as durable as
    /// [`KvBackend::durability`] promises. The default does it now, on this thread, through
    /// `put`, `delete` and `clear`; a backend with a writer of its own queues it there and
    /// returns (see [`KvBackend::calls`]).
    fn submit(&self, write: Write, done: WriteDone) {
        done(match write {
            Write::Put { key, value } => self.put(&key, &value).map(Some),
            Write::Delete { key } => self.delete(&key),
            Write::Clear => self.clear().map(Some),
        });
    }

    /// Why the backend refuses writes, when it does: a failure it cannot recover from while
    /// running (the WAL's failed log write or sync) made it refuse every write until it is
    /// restarted. `None` while it takes writes, and always for backends that never refuse.
    /// For health checks: a process that is up but refusing writes is not healthy.
    fn poisoned(&self) -> Option<String> {
        None
    }

    /// Crash as `mode` says. For a mode that [kills the server](CrashMode::kills_the_server),
    /// get ready to be killed (for [`CrashMode::PowerLoss`], throw away what a power loss
    /// would lose; accept no further writes): the caller kills the process right after. For
    /// the others, do the killing. The default knows only [`CrashMode::Process`], which
    /// needs nothing from the backend.
    fn prepare_crash(&self, mode: CrashMode) -> Result<CrashReport, StoreError> {
        match mode {
            CrashMode::Process => Ok(CrashReport::default()),
            other => Err(StoreError::Unsupported(format!(
                "mode={other} is not something this backend can do; its row in the catalog says which modes it has"
            ))),
        }
    }
}
