//! What a backend answers instead of a result.

use thiserror::Error;

/// A backend's failure. The HTTP layer maps each variant to a status in one place.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum StoreError {
    /// The backend cannot do this at all (for example a checkpoint on the memory store).
    #[error("{0}")]
    Unsupported(String),
    /// The request is well formed but the backend refuses its content.
    #[error("{0}")]
    Invalid(String),
    /// The key or value is larger than the backend can store.
    #[error("{0}")]
    TooLarge(String),
    /// The backend refuses writes until it is reopened, after a failed write or sync.
    #[error("the store refuses writes until it is restarted: {0}")]
    Poisoned(String),
    /// A storage operation failed (disk full, I/O error); the request had no effect in memory.
    #[error("{0}")]
    Storage(String),
    /// The data directory is in use by another process (or another backend in this one):
    /// the message names the directory and, when known, the holder's pid. One line.
    #[error("{0}")]
    Locked(String),
}

impl From<walab_wal::Error> for StoreError {
    fn from(err: walab_wal::Error) -> Self {
        use walab_wal::Error as E;
        match err {
            E::Poisoned { .. } => StoreError::Poisoned(err.to_string()),
            E::TooLarge { .. } => StoreError::TooLarge(err.to_string()),
            E::Locked { .. } => StoreError::Locked(err.to_string()),
            _ => StoreError::Storage(err.to_string()),
        }
    }
}

impl From<sled::Error> for StoreError {
    fn from(err: sled::Error) -> Self {
        StoreError::Storage(err.to_string())
    }
}
