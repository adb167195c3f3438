//! The one place a backend kind becomes a running backend.

use std::path::PathBuf;
use std::str::FromStr;
use std::sync::Arc;

use crate::memory::MemoryBackend;
use crate::sled_backend::SledBackend;
use crate::wal::WalBackend;
use crate::{BackendKind, KvBackend, StoreError};

/// When sled flushes its buffers to disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SledFlush {
    /// sled's own background flush (every 500 ms): fast, loses recent writes on a crash.
    #[default]
    Background,
    /// Flush before every acknowledgement.
    Always,
}

impl SledFlush {
    /// The name used in `SLED_FLUSH`.
    pub fn as_str(self) -> &'static str {
        match self {
            SledFlush::Background => "background",
            SledFlush::Always => "always",
        }
    }
}

impl FromStr for SledFlush {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "background" | "default" => Ok(SledFlush::Background),
            "always" => Ok(SledFlush::Always),
            other => Err(format!(
                "unknown sled flush mode '{other}': expected always or background"
            )),
        }
    }
}

/// Everything needed to open any backend.
#[derive(Debug, Clone)]
pub struct BackendConfig {
    /// Which engine.
    pub kind: BackendKind,
    /// Where the engine keeps its files (unused by the memory backend).
    pub data_dir: PathBuf,
    /// The WAL engine's settings (its `dir` is replaced by `data_dir`).
    pub wal: walab_wal::Config,
    /// sled's flush policy.
    pub sled_flush: SledFlush,
}

/// Open the backend `config` names. For the WAL this runs recovery.
pub fn open_backend(config: &BackendConfig) -> Result<Arc<dyn KvBackend>, StoreError> {
    Ok(match config.kind {
        BackendKind::Memory => Arc::new(MemoryBackend::new()),
        BackendKind::Sled => Arc::new(SledBackend::open(&config.data_dir, config.sled_flush)?),
        BackendKind::Wal => {
            let mut wal = config.wal.clone();
            wal.dir = config.data_dir.clone();
            Arc::new(WalBackend::open(wal)?)
        }
    })
}
