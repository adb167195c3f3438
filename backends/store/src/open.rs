//! What it takes to open a backend: the settings of every backend in one struct, so the
//! server builds it once from its configuration and the catalog's `open` picks its part.

use std::path::PathBuf;
use std::str::FromStr;

use crate::BackendKind;
use crate::etcd::EtcdSettings;

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
    /// Where the etcd cluster is and which keys are the lab's.
    pub etcd: EtcdSettings,
}
