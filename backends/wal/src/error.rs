//! The engine's errors. Corruption names the file and offset; I/O names the path and the
//! operation, so a user can find what went wrong without a debugger.

use std::io;
use std::path::PathBuf;

use thiserror::Error;

/// Everything the engine can fail with.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum Error {
    /// A file-system call failed.
    #[error("{op} {path}: {source}")]
    Io {
        /// What the engine was doing (`write`, `fdatasync`, `rename`, ...).
        op: &'static str,
        /// The file or directory it was doing it to.
        path: PathBuf,
        /// The operating system's error.
        #[source]
        source: io::Error,
    },
    /// A log segment or snapshot holds bytes that are not what the engine wrote, somewhere
    /// a crash cannot explain (the recovery mode decides what counts as explainable).
    #[error("corrupt {file} at byte {offset}: {reason}")]
    Corrupt {
        /// The damaged file.
        file: PathBuf,
        /// Where the damage starts.
        offset: u64,
        /// What is wrong there.
        reason: String,
    },
    /// Records the log must hold are in no file: the snapshot and the segments do not cover
    /// every sequence number from 1 to the last (a segment, or the snapshot the oldest
    /// segment follows, was deleted or lost). One line, since a server prints it as the
    /// reason it cannot start.
    #[error(
        "records {first}..={last} are missing from {}: no snapshot or segment holds them, so a file was deleted or lost before {}; put the file back, or set RECOVERY_MODE=point-in-time to keep only the records before the gap",
        dir.display(),
        next.display()
    )]
    MissingRecords {
        /// The data directory.
        dir: PathBuf,
        /// The first missing sequence number.
        first: u64,
        /// The last missing sequence number.
        last: u64,
        /// The file after the gap: the first that holds a record past it.
        next: PathBuf,
    },
    /// Writing or syncing this write's batch failed: the write was not acknowledged, and it
    /// may or may not be in the log (part of a failed write, or a sync that failed after
    /// the kernel wrote some pages, can still reach the disk); the store does not show it,
    /// and the engine is now poisoned.
    #[error(
        "the write was not acknowledged: {cause}; it may or may not be in the log, and a restart's recovery keeps whatever reached the disk; the store refuses writes until it is restarted"
    )]
    WriteFailed {
        /// The failure, with the file it happened to.
        cause: String,
    },
    /// An earlier write or sync failed, so what is on disk is unknown; the engine refuses
    /// writes until it is reopened and recovery has looked at the disk again.
    #[error("the log is poisoned by an earlier failure ({cause}); restart to recover")]
    Poisoned {
        /// The failure that poisoned the engine.
        cause: String,
    },
    /// A key or value is too large to be framed as one record.
    #[error("record of {bytes} bytes is over the limit of {limit} bytes")]
    TooLarge {
        /// The record's size.
        bytes: usize,
        /// The largest record the engine accepts.
        limit: usize,
    },
    /// The configuration cannot work (for example a directory that is a file).
    #[error("invalid configuration: {0}")]
    Config(String),
    /// Another engine (in this process or another) has the data directory open. One line,
    /// since a server prints it as the reason it cannot start.
    #[error(
        "the data directory {} is in use by another walab server{}; stop it first or choose another DATA_DIR",
        dir.display(),
        pid.map_or(String::new(), |p| format!(" (pid {p})"))
    )]
    Locked {
        /// The data directory.
        dir: PathBuf,
        /// The holder's process id, as it wrote it into the lock file.
        pid: Option<u32>,
    },
}

impl Error {
    /// Wrap an `io::Error` with what was being done and where.
    pub(crate) fn io(
        op: &'static str,
        path: impl Into<PathBuf>,
    ) -> impl FnOnce(io::Error) -> Error {
        let path = path.into();
        move |source| Error::Io { op, path, source }
    }

    /// A corruption report.
    pub(crate) fn corrupt(
        file: impl Into<PathBuf>,
        offset: u64,
        reason: impl Into<String>,
    ) -> Error {
        Error::Corrupt {
            file: file.into(),
            offset,
            reason: reason.into(),
        }
    }
}

/// The engine's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;
