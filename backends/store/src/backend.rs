//! The one trait a storage backend implements, and the types it speaks in.
//!
//! The trait is synchronous: engines do blocking file I/O, and the server calls them from a
//! blocking thread pool. Keys are UTF-8 strings validated by the caller; values are opaque
//! bytes (the server stores the JSON text of the value).

use std::fmt;
use std::str::FromStr;
use std::sync::Arc;

use serde::Serialize;

use crate::StoreError;

/// A stored value: cheap to clone, shared with the engine's state.
pub type Value = Arc<[u8]>;

/// Extra, backend-specific fields for `/admin/stats`.
pub type Stats = serde_json::Map<String, serde_json::Value>;

/// Which engine a backend runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum BackendKind {
    /// walab's own write-ahead log and snapshot engine.
    Wal,
    /// A map in memory.
    Memory,
    /// sled 0.34.
    Sled,
}

impl BackendKind {
    /// All kinds, in the lab's port order (8001, 8002, 8003).
    pub const ALL: [BackendKind; 3] = [BackendKind::Wal, BackendKind::Memory, BackendKind::Sled];

    /// The name used in `KV_BACKEND`, metrics labels and JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            BackendKind::Wal => "wal",
            BackendKind::Memory => "memory",
            BackendKind::Sled => "sled",
        }
    }
}

impl fmt::Display for BackendKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for BackendKind {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "wal" => Ok(BackendKind::Wal),
            "memory" => Ok(BackendKind::Memory),
            "sled" => Ok(BackendKind::Sled),
            other => Err(format!(
                "unknown backend '{other}': expected one of wal, memory, sled"
            )),
        }
    }
}

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

/// The answer to a checkpoint request.
#[derive(Debug, Clone, Serialize)]
pub struct CheckpointOutcome {
    /// Log records made redundant by the checkpoint.
    pub entries_truncated: u64,
    /// The sequence number the checkpoint covers, when the backend has one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sequence: Option<u64>,
    /// Anything else worth showing (sizes, durations).
    #[serde(flatten)]
    pub details: Stats,
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
    /// Unix time of the write in microseconds.
    pub timestamp_micros: u64,
}

/// The records since the last checkpoint, or `None` when the backend keeps no log.
#[derive(Debug, Clone, Default)]
pub struct WalListing {
    /// The newest records, oldest first: at most the requested limit, and fewer when their
    /// keys and values would pass the requested byte budget (the newest is always there).
    pub entries: Vec<WalEntry>,
    /// How many records there are in all since the last checkpoint.
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
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CrashMode {
    /// The process dies; whatever reached the OS survives.
    Process,
    /// As if the machine lost power: only what was synced survives (the WAL simulates this).
    PowerLoss,
}

/// A key-value store the HTTP layer can serve.
///
/// Every method may block on I/O. A write method returns only after the backend has done
/// what [`KvBackend::durability`] promises.
pub trait KvBackend: Send + Sync + fmt::Debug + 'static {
    /// Which engine this is.
    fn kind(&self) -> BackendKind;

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
    fn len(&self) -> usize;

    /// Whether the store holds no keys.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Remove every key, atomically with respect to crashes.
    fn clear(&self) -> Result<WriteAck, StoreError>;

    /// Make the log redundant up to now (the WAL), or flush (sled).
    fn checkpoint(&self) -> Result<CheckpointOutcome, StoreError>;

    /// The newest log records since the last checkpoint, at most `limit` of them, and no
    /// more than `max_bytes` of keys and values past the newest one (a listing of big
    /// values must not hold gigabytes in memory); `None` for backends without a log.
    fn wal_entries(&self, limit: usize, max_bytes: usize)
    -> Result<Option<WalListing>, StoreError>;

    /// How many log records were replayed when the store was opened.
    fn recovered_entries(&self) -> u64;

    /// Backend-specific fields for `/admin/stats`.
    fn stats(&self) -> Stats;

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

    /// Get ready to be killed: for [`CrashMode::PowerLoss`], throw away what a power loss
    /// would lose. The caller kills the process right after; the backend must accept no
    /// further writes. Returns details for the crash reply.
    fn prepare_crash(&self, mode: CrashMode) -> Result<Stats, StoreError>;
}
