//! redb as a backend: what a user weighing "write my own WAL or embed a database" compares
//! against. redb is a maintained, pure-Rust, ACID embedded database (a copy-on-write B-tree
//! in one file); each write here is one transaction, and what its commit promises is
//! `REDB_DURABILITY`: `immediate` (the default) fsyncs the commit before it is
//! acknowledged, `eventual` writes it to the file without waiting for the disk.

use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::Arc;

use clap::Args;
use redb::{ReadableTable, ReadableTableMetadata, TableDefinition};

use crate::StoreError;
use crate::backend::{CrashMode, Durability, KvBackend, Value, WriteAck};
use crate::parse::choices;
use crate::row::{BackendConfig, BackendInfo, InLab, Supports};
use crate::stats::{StoreStats, details};

/// redb's row in the catalog.
pub static ROW: BackendInfo = BackendInfo {
    name: "redb",
    lab_port: 8005,
    title: "redb 2, an embedded ACID database: durable at commit (REDB_DURABILITY=immediate)",
    supports: Supports {
        log: false,
        checkpoint: false,
        crash_modes: &[CrashMode::Process],
    },
    in_lab: InLab::WithFlag("redb"),
    wal_engine: false,
    settings: RedbSettings::augment_args,
    open,
};

/// redb's settings.
#[derive(Debug, Clone, Args)]
#[command(next_help_heading = "redb (KV_BACKEND=redb)")]
pub struct RedbSettings {
    /// immediate: every commit is fsynced before the write is acknowledged; eventual: the
    /// commit is written to the file but not synced (a power loss can lose it).
    #[arg(long, env, default_value = "immediate")]
    #[arg(value_parser = choices(vec!["immediate", "eventual"], RedbDurability::from_str))]
    pub redb_durability: RedbDurability,
}

/// Which of redb's commit durabilities every write uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RedbDurability {
    /// `redb::Durability::Immediate`: persistent when `commit` returns.
    Immediate,
    /// `redb::Durability::Eventual`: written, synced some time later.
    Eventual,
}

impl RedbDurability {
    /// The name used in `REDB_DURABILITY`.
    pub fn as_str(self) -> &'static str {
        match self {
            RedbDurability::Immediate => "immediate",
            RedbDurability::Eventual => "eventual",
        }
    }
}

impl FromStr for RedbDurability {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "immediate" => Ok(RedbDurability::Immediate),
            "eventual" => Ok(RedbDurability::Eventual),
            other => Err(format!(
                "unknown redb durability '{other}': expected immediate or eventual"
            )),
        }
    }
}

/// The one table the lab's keys live in.
const TABLE: TableDefinition<&str, &[u8]> = TableDefinition::new("walab");
/// The database file, in the data directory.
const FILE: &str = "walab.redb";

/// The catalog's `open`: the database file in the data directory.
fn open(config: &BackendConfig) -> Result<Arc<dyn KvBackend>, StoreError> {
    let settings: RedbSettings = config.settings.get()?;
    Ok(Arc::new(RedbBackend::open(
        &config.data_dir,
        settings.redb_durability,
    )?))
}

/// A redb database used as a key-value store.
#[derive(Debug)]
pub struct RedbBackend {
    db: redb::Database,
    path: PathBuf,
    durability: RedbDurability,
}

impl RedbBackend {
    /// Open (or create) the database in `dir`. redb locks its file: a second server on
    /// the directory is refused.
    pub fn open(dir: &Path, durability: RedbDurability) -> Result<Self, StoreError> {
        std::fs::create_dir_all(dir)
            .map_err(|e| StoreError::Storage(format!("create {}: {e}", dir.display())))?;
        let path = dir.join(FILE);
        let db = redb::Database::create(&path).map_err(|e| match e {
            redb::DatabaseError::DatabaseAlreadyOpen => StoreError::Locked(format!(
                "the data directory {} is in use by another walab server (redb holds a lock on {FILE}); stop it first or choose another DATA_DIR",
                dir.display()
            )),
            e => storage(e),
        })?;
        // The table exists from the start, so a read never meets "no such table".
        let txn = db.begin_write().map_err(storage)?;
        txn.open_table(TABLE).map_err(storage)?;
        txn.commit().map_err(storage)?;
        Ok(Self {
            db,
            path,
            durability,
        })
    }

    /// One write transaction with the configured durability: `f` changes the table,
    /// and the commit is acknowledged as `REDB_DURABILITY` promises.
    fn write<T>(
        &self,
        f: impl FnOnce(&mut redb::Table<'_, &str, &[u8]>) -> Result<T, redb::StorageError>,
    ) -> Result<T, StoreError> {
        let mut txn = self.db.begin_write().map_err(storage)?;
        txn.set_durability(match self.durability {
            RedbDurability::Immediate => redb::Durability::Immediate,
            RedbDurability::Eventual => redb::Durability::Eventual,
        });
        let out = {
            let mut table = txn.open_table(TABLE).map_err(storage)?;
            f(&mut table).map_err(storage)?
        };
        txn.commit().map_err(storage)?;
        Ok(out)
    }

    fn read_table(&self) -> Result<redb::ReadOnlyTable<&'static str, &'static [u8]>, StoreError> {
        let txn = self.db.begin_read().map_err(storage)?;
        txn.open_table(TABLE).map_err(storage)
    }
}

/// Any redb failure: the request had no effect (an uncommitted transaction is rolled
/// back when dropped).
fn storage(e: impl Into<redb::Error>) -> StoreError {
    StoreError::Storage(format!("redb: {}", e.into()))
}

impl KvBackend for RedbBackend {
    fn durability(&self) -> Durability {
        match self.durability {
            RedbDurability::Immediate => Durability {
                survives_process_crash: true,
                survives_power_loss: true,
                summary: "every write is a redb transaction committed with Durability::Immediate: fsynced before it is acknowledged (REDB_DURABILITY=immediate)".into(),
            },
            RedbDurability::Eventual => Durability {
                survives_process_crash: true,
                survives_power_loss: false,
                summary: "every write is a redb transaction committed with Durability::Eventual: in the file, not yet synced, when it is acknowledged; a power loss can lose recent writes (REDB_DURABILITY=eventual)".into(),
            },
        }
    }

    fn get(&self, key: &str) -> Result<Option<Value>, StoreError> {
        let table = self.read_table()?;
        let value = table.get(key).map_err(storage)?;
        Ok(value.map(|v| Value::from(v.value())))
    }

    fn put(&self, key: &str, value: &[u8]) -> Result<WriteAck, StoreError> {
        self.write(|t| t.insert(key, value).map(|_| ()))?;
        Ok(WriteAck::default())
    }

    fn delete(&self, key: &str) -> Result<Option<WriteAck>, StoreError> {
        let existed = self.write(|t| t.remove(key).map(|old| old.is_some()))?;
        Ok(existed.then(WriteAck::default))
    }

    fn list(&self) -> Result<Vec<(String, Value)>, StoreError> {
        let table = self.read_table()?;
        let mut out = Vec::new();
        for entry in table.iter().map_err(storage)? {
            let (k, v) = entry.map_err(storage)?;
            out.push((k.value().to_owned(), Value::from(v.value())));
        }
        Ok(out)
    }

    fn len(&self) -> Result<usize, StoreError> {
        let n = self.read_table()?.len().map_err(storage)?;
        Ok(usize::try_from(n).unwrap_or(usize::MAX))
    }

    fn clear(&self) -> Result<WriteAck, StoreError> {
        // One transaction: every key goes, or (on a crash before the commit) none does.
        self.write(|t| t.retain(|_, _| false))?;
        Ok(WriteAck::default())
    }

    fn stats(&self) -> StoreStats {
        StoreStats {
            size_on_disk_bytes: std::fs::metadata(&self.path).ok().map(|m| m.len()),
            log: None,
            details: details(&serde_json::json!({
                "redb_durability": self.durability.as_str(),
            })),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_survive_a_reopen_and_a_second_opener_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        {
            let b = RedbBackend::open(dir.path(), RedbDurability::Immediate).unwrap();
            b.put("a", b"1").unwrap();
            b.put("b", b"2").unwrap();
            assert!(b.delete("b").unwrap().is_some());
            assert!(b.delete("b").unwrap().is_none());
            let second = RedbBackend::open(dir.path(), RedbDurability::Immediate).unwrap_err();
            assert!(matches!(second, StoreError::Locked(_)), "{second}");
            assert!(!second.to_string().contains('\n'));
        }
        let b = RedbBackend::open(dir.path(), RedbDurability::Eventual).unwrap();
        assert_eq!(b.get("a").unwrap().as_deref(), Some(&b"1"[..]));
        assert_eq!(b.len().unwrap(), 1);
        b.clear().unwrap();
        assert!(b.is_empty().unwrap());
    }
}
