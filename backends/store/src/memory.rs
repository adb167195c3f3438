//! The memory-only backend: the lab's "no WAL" store. A crash loses everything, which is
//! exactly what the runbook sets out to show.

use std::collections::BTreeMap;
use std::sync::{Arc, RwLock};

use crate::StoreError;
use crate::backend::{
    Calls, CrashMode, Durability, KvBackend, ReadPath, Value, WriteAck, WritePath,
};
use crate::row::{BackendConfig, BackendInfo, InLab, Supports, no_settings};

/// The memory store's row in the catalog.
pub static ROW: BackendInfo = BackendInfo {
    name: "memory",
    lab_port: 8002,
    title: "memory only (no WAL): a crash loses everything",
    supports: Supports {
        log: false,
        checkpoint: false,
        crash_modes: &[CrashMode::Process],
    },
    in_lab: InLab::Always,
    wal_engine: false,
    settings: no_settings,
    open,
};

/// The catalog's `open`: a new, empty map (nothing to recover).
fn open(_config: &BackendConfig) -> Result<Arc<dyn KvBackend>, StoreError> {
    Ok(Arc::new(MemoryBackend::new()))
}

/// A map in memory behind a read-write lock.
#[derive(Debug, Default)]
pub struct MemoryBackend {
    map: RwLock<BTreeMap<String, Value>>,
}

impl MemoryBackend {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, BTreeMap<String, Value>> {
        // A panic while holding the lock cannot leave the map half-updated (every update is
        // a single BTreeMap call), so a poisoned lock is still a consistent map.
        self.map.read().unwrap_or_else(|e| e.into_inner())
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, BTreeMap<String, Value>> {
        self.map.write().unwrap_or_else(|e| e.into_inner())
    }
}

impl KvBackend for MemoryBackend {
    fn durability(&self) -> Durability {
        Durability {
            survives_process_crash: false,
            survives_power_loss: false,
            summary: "none: data lives only in this process's memory; a crash loses everything"
                .into(),
        }
    }

    fn calls(&self) -> Calls {
        // Every call is a map operation under a lock held for that operation only.
        Calls {
            reads: ReadPath::Inline,
            writes: WritePath::Inline,
        }
    }

    fn get(&self, key: &str) -> Result<Option<Value>, StoreError> {
        Ok(self.read().get(key).cloned())
    }

    fn put(&self, key: &str, value: &[u8]) -> Result<WriteAck, StoreError> {
        self.write().insert(key.to_owned(), Value::from(value));
        Ok(WriteAck::default())
    }

    fn delete(&self, key: &str) -> Result<Option<WriteAck>, StoreError> {
        Ok(self.write().remove(key).map(|_| WriteAck::default()))
    }

    fn list(&self) -> Result<Vec<(String, Value)>, StoreError> {
        Ok(self
            .read()
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect())
    }

    fn len(&self) -> Result<usize, StoreError> {
        Ok(self.read().len())
    }

    fn clear(&self) -> Result<WriteAck, StoreError> {
        self.write().clear();
        Ok(WriteAck::default())
    }
}
