//! walab's write-ahead log engine.
//!
//! A key-value state kept in memory, made durable by a log of records on disk and
//! periodic snapshots (checkpoints). Synchronous and std-only: no async runtime, no HTTP.
//!
//! # Guarantees
//! - A write is applied to the state only after its record is written (and, under
//!   [`SyncPolicy::Always`], synced), in sequence order; it is acknowledged after that.
//!   [`Engine::submit`] takes a completion instead of blocking a thread, so a server can
//!   await it on any runtime; [`Engine::set`] and friends wait on it.
//! - Sequence numbers strictly increase for the life of a data directory: across
//!   checkpoints, restarts, crashes and clears.
//! - A failed write or sync fails every write of its batch, leaves the state unchanged and
//!   poisons the engine: it refuses writes until reopened. A failed sync is never retried
//!   as if the data were safe.
//! - A failure that leaves the log intact does not poison: a checkpoint that cannot create
//!   its new segment, write its snapshot or delete old files fails (and is counted, and
//!   retried with back-off when automatic); a size roll-over that cannot create the next
//!   segment leaves the batch in the active segment and is retried later.
//! - One engine per data directory: [`Engine::open`] takes an exclusive lock on it (the
//!   `LOCK` file) for the engine's life, and a second opener gets [`Error::Locked`].
//! - Recovery applies the newest snapshot and every valid record after it; it cuts off a
//!   torn tail and reports it, and refuses to start on damage a crash cannot explain
//!   (depending on [`RecoveryMode`]).
//!
//! # Layout
//! - [`config`]: [`Config`], [`SyncPolicy`], [`RecoveryMode`].
//! - `backoff`: the spacing of retries after failures that leave the log intact.
//! - [`record`]: the record format; encode and decode.
//! - [`segment`]: segment files: naming, header, listing.
//! - [`reader`]: reading a segment back and classifying how it ends.
//! - [`snapshot`]: snapshot files: atomic write, verified load.
//! - `recovery`: open a directory: snapshot + replay + torn-tail repair.
//! - `shared`: the state, the log and the counters the engine's threads share, and `apply`:
//!   the bottom layer every other module imports from (never the other way round).
//! - `poison`: the one flag that says writes are refused, and why.
//! - `commit`: the log writer thread, group commit, and the interval sync.
//! - `checkpoint`: snapshot the state and drop redundant segments while writers go on.
//! - `engine`: [`Engine`], the facade: open, submit, read, checkpoint, stats.
//! - [`fs`]: the storage seam: the real file system and a simulated one for crash tests.
//! - `observer`: hooks for metrics and traces.
//! - [`inspect`]: a read-only report on a data directory, checksums verified.
//!
//! The on-disk format is specified in `DESIGN.md` beside this crate.

#![cfg_attr(not(test), deny(clippy::unwrap_used))]

mod backoff;
mod checkpoint;
mod commit;
pub mod config;
mod engine;
mod error;
pub mod fs;
pub mod inspect;
mod log;
mod observer;
mod poison;
pub mod reader;
pub mod record;
mod recovery;
mod report;
pub mod segment;
mod shared;
pub mod snapshot;

pub use commit::Done;
pub use config::{Config, MIN_SEGMENT_BYTES, RecoveryMode, SyncPolicy};
pub use engine::Engine;
pub use error::{Error, Result};
pub use observer::Observer;
pub use record::Op;
pub use report::{
    BatchSizes, CheckpointFailure, CheckpointReport, Commit, CommitTiming, LogEntry,
    PowerLossReport, RecoveryReport, SnapshotInfo, Stats, Written,
};
pub use shared::{Bytes, State};
