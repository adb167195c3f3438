//! The sled backend, kept as a reference point: a mature embedded engine with its own log.
//!
//! sled buffers writes in memory and flushes them every 500 ms by default, so an
//! acknowledged write survives a crash only once that flush has run. With
//! [`SledFlush::Always`] every write is flushed (fsynced) before it is acknowledged.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use crate::backend::{Durability, KvBackend, Value, WriteAck};
use crate::stats::{CheckpointOutcome, Details, StoreStats};
use crate::{BackendConfig, BackendKind, SledFlush, StoreError};

/// The catalog's `open`: the database in the data directory, flushed as `SLED_FLUSH` says.
pub fn open(config: &BackendConfig) -> Result<Arc<dyn KvBackend>, StoreError> {
    Ok(Arc::new(SledBackend::open(
        &config.data_dir,
        config.sled_flush,
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
    fn kind(&self) -> BackendKind {
        BackendKind::named("sled")
    }

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
            details: Some(Details::Sled {
                sled_flush: self.flush.as_str(),
            }),
        }
    }
}
