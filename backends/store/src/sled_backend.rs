//! The sled backend, kept as a reference point: a mature embedded engine with its own log.
//!
//! sled buffers writes in memory and flushes them every 500 ms by default, so an
//! acknowledged write survives a crash only once that flush has run. With
//! [`SledFlush::Always`] every write is flushed (fsynced) before it is acknowledged.

use std::path::Path;
use std::str::FromStr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use clap::Args;

use crate::StoreError;
use crate::backend::{CrashMode, Durability, KvBackend, Value, WriteAck};
use crate::parse::choices;
use crate::row::{BackendConfig, BackendInfo, InLab, Supports};
use crate::stats::{CheckpointOutcome, StoreStats, details};

/// sled's row in the catalog.
pub static ROW: BackendInfo = BackendInfo {
    name: "sled",
    lab_port: 8003,
    title: "sled 0.34: durable once sled flushes (SLED_FLUSH=always: every write)",
    supports: Supports {
        log: false,
        checkpoint: true,
        crash_modes: &[CrashMode::Process],
    },
    in_lab: InLab::Always,
    wal_engine: false,
    settings: SledSettings::augment_args,
    open,
};

/// sled's settings.
#[derive(Debug, Clone, Args)]
#[command(next_help_heading = "sled (KV_BACKEND=sled)")]
pub struct SledSettings {
    /// always: sled flushes before every acknowledgement.
    #[arg(long, env, default_value = "background")]
    #[arg(value_parser = choices(vec!["background", "always"], SledFlush::from_str))]
    pub sled_flush: SledFlush,
}

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

/// The catalog's `open`: the database in the data directory, flushed as `SLED_FLUSH` says.
fn open(config: &BackendConfig) -> Result<Arc<dyn KvBackend>, StoreError> {
    let settings: SledSettings = config.settings.get()?;
    Ok(Arc::new(SledBackend::open(
        &config.data_dir,
        settings.sled_flush,
    )?))
}

/// sled's default `flush_every_ms`.
const SLED_BACKGROUND_FLUSH_MS: u64 = 500;

/// A sled database used as a key-value store.
#[derive(Debug)]
pub struct SledBackend {
    db: sled::Db,
    flush: SledFlush,
    /// `sled::Tree::len` walks the whole tree, so the count is kept alongside.
    count: AtomicUsize,
}

impl SledBackend {
    /// Open (or create) the database in `dir`.
    pub fn open(dir: &Path, flush: SledFlush) -> Result<Self, StoreError> {
        let db = sled::Config::new()
            .path(dir)
            .flush_every_ms(Some(SLED_BACKGROUND_FLUSH_MS))
            .open()?;
        let count = AtomicUsize::new(db.len());
        Ok(Self { db, flush, count })
    }

    fn flush_if_promised(&self) -> Result<(), StoreError> {
        if self.flush == SledFlush::Always {
            self.db.flush()?;
        }
        Ok(())
    }
}

fn key_string(key: &[u8]) -> String {
    String::from_utf8_lossy(key).into_owned()
}

impl KvBackend for SledBackend {
    fn durability(&self) -> Durability {
        match self.flush {
            SledFlush::Always => Durability {
                survives_process_crash: true,
                survives_power_loss: true,
                summary: "sled flushes (fsyncs) every write before it is acknowledged (SLED_FLUSH=always)".into(),
            },
            SledFlush::Background => Durability {
                survives_process_crash: false,
                survives_power_loss: false,
                summary: format!(
                    "sled flushes in the background every {SLED_BACKGROUND_FLUSH_MS} ms: writes acknowledged since the last flush are lost on a crash"
                ),
            },
        }
    }

    fn get(&self, key: &str) -> Result<Option<Value>, StoreError> {
        Ok(self.db.get(key)?.map(|v| Value::from(&v[..])))
    }

    fn put(&self, key: &str, value: &[u8]) -> Result<WriteAck, StoreError> {
        if self.db.insert(key, value)?.is_none() {
            self.count.fetch_add(1, Ordering::Relaxed);
        }
        self.flush_if_promised()?;
        Ok(WriteAck::default())
    }

    fn delete(&self, key: &str) -> Result<Option<WriteAck>, StoreError> {
        let removed = self.db.remove(key)?;
        if removed.is_none() {
            return Ok(None);
        }
        self.count.fetch_sub(1, Ordering::Relaxed);
        self.flush_if_promised()?;
        Ok(Some(WriteAck::default()))
    }

    fn list(&self) -> Result<Vec<(String, Value)>, StoreError> {
        self.db
            .iter()
            .map(|kv| {
                let (k, v) = kv?;
                Ok((key_string(&k), Value::from(&v[..])))
            })
            .collect()
    }

    fn len(&self) -> Result<usize, StoreError> {
        Ok(self.count.load(Ordering::Relaxed))
    }

    fn clear(&self) -> Result<WriteAck, StoreError> {
        // One batch, so a crash leaves either every key or none: sled applies a batch
        // atomically, unlike `Tree::clear`, which removes keys one by one.
        let mut batch = sled::Batch::default();
        for key in self.db.iter().keys() {
            batch.remove(key?);
        }
        self.db.apply_batch(batch)?;
        self.count.store(0, Ordering::Relaxed);
        self.flush_if_promised()?;
        Ok(WriteAck::default())
    }

    fn checkpoint(&self) -> Result<CheckpointOutcome, StoreError> {
        let flushed = self.db.flush()?;
        Ok(CheckpointOutcome {
            flushed_bytes: Some(flushed as u64),
            note: Some(
                "sled has no user-visible checkpoint; this flushed its buffers to disk".into(),
            ),
            ..CheckpointOutcome::default()
        })
    }

    fn stats(&self) -> StoreStats {
        StoreStats {
            size_on_disk_bytes: self.db.size_on_disk().ok(),
            log: None,
            details: details(&serde_json::json!({ "sled_flush": self.flush.as_str() })),
        }
    }
}
