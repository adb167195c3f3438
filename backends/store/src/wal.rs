//! The adapter from the `walab-wal` engine to [`KvBackend`]: the only code that knows both.

use serde_json::json;
use walab_wal::{Engine, SyncPolicy};

use crate::StoreError;
use crate::backend::{
    BackendKind, CheckpointOutcome, CrashMode, Durability, KvBackend, Stats, Value, WalEntry,
    WalListing, WriteAck,
};

/// walab's own engine as a backend.
#[derive(Debug)]
pub struct WalBackend {
    engine: Engine,
}

impl WalBackend {
    /// Open the engine (this runs recovery).
    pub fn open(config: walab_wal::Config) -> Result<Self, StoreError> {
        Ok(Self {
            engine: Engine::open(config)?,
        })
    }

    /// The engine, for callers that want more than the trait offers.
    pub fn engine(&self) -> &Engine {
        &self.engine
    }
}

fn ack(commit: walab_wal::Commit) -> WriteAck {
    WriteAck {
        sequence: Some(commit.sequence),
        timing: Some(commit.timing),
    }
}

fn micros(d: std::time::Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

impl KvBackend for WalBackend {
    fn kind(&self) -> BackendKind {
        BackendKind::Wal
    }

    fn durability(&self) -> Durability {
        let sync = self.engine.config().sync;
        let summary = match sync {
            SyncPolicy::Always => "every write is in the log and fdatasynced before it is acknowledged (FSYNC=always)".to_string(),
            SyncPolicy::Interval(d) => format!(
                "every write is in the log before it is acknowledged; the log is synced every {} ms, so a power loss can lose the last interval (FSYNC={sync})",
                d.as_millis()
            ),
            SyncPolicy::Never => "every write is in the log before it is acknowledged; syncing is left to the OS, so a power loss can lose recent writes (FSYNC=never)".to_string(),
        };
        Durability {
            survives_process_crash: true,
            survives_power_loss: sync.survives_power_loss(),
            summary,
        }
    }

    fn get(&self, key: &str) -> Result<Option<Value>, StoreError> {
        Ok(self.engine.get(key.as_bytes()))
    }

    fn put(&self, key: &str, value: &[u8]) -> Result<WriteAck, StoreError> {
        Ok(ack(self.engine.set(key.as_bytes(), value)?))
    }

    fn delete(&self, key: &str) -> Result<Option<WriteAck>, StoreError> {
        Ok(self.engine.delete(key.as_bytes())?.map(ack))
    }

    fn list(&self) -> Result<Vec<(String, Value)>, StoreError> {
        Ok(self
            .engine
            .state()
            .iter()
            .map(|(k, v)| (String::from_utf8_lossy(k).into_owned(), v.clone()))
            .collect())
    }

    fn len(&self) -> usize {
        self.engine.len()
    }

    fn clear(&self) -> Result<WriteAck, StoreError> {
        Ok(ack(self.engine.clear()?))
    }

    fn checkpoint(&self) -> Result<CheckpointOutcome, StoreError> {
        let r = self.engine.checkpoint()?;
        let mut details = Stats::new();
        details.insert("keys".into(), json!(r.keys));
        details.insert("snapshot_bytes".into(), json!(r.snapshot_bytes));
        details.insert("segments_removed".into(), json!(r.segments_removed));
        details.insert("duration_ms".into(), json!(micros(r.duration)));
        Ok(CheckpointOutcome {
            entries_truncated: r.records_truncated,
            sequence: Some(r.sequence),
            details,
        })
    }

    fn wal_entries(&self, limit: usize) -> Result<Option<WalListing>, StoreError> {
        let (entries, total) = self.engine.log_entries(limit)?;
        let entries = entries
            .into_iter()
            .map(|e| WalEntry {
                sequence: e.sequence,
                operation: e.op.as_str(),
                key: String::from_utf8_lossy(&e.key).into_owned(),
                value: (e.op == walab_wal::Op::Set).then_some(e.value),
                timestamp_micros: e.timestamp_micros,
            })
            .collect();
        Ok(Some(WalListing { entries, total }))
    }

    fn recovered_entries(&self) -> u64 {
        self.engine.recovery().records_replayed
    }

    fn stats(&self) -> Stats {
        let s = self.engine.stats();
        let r = self.engine.recovery();
        let mut m = Stats::new();
        m.insert("wal_sequence".into(), json!(s.sequence));
        m.insert(
            "entries_since_checkpoint".into(),
            json!(s.records_since_checkpoint),
        );
        m.insert("checkpoint_threshold".into(), json!(s.checkpoint_threshold));
        m.insert("wal_size_bytes".into(), json!(s.log_bytes));
        m.insert("wal_segments".into(), json!(s.segments));
        m.insert("fsync_policy".into(), json!(s.sync.to_string()));
        m.insert("group_commit".into(), json!(s.group_commit));
        m.insert("appends".into(), json!(s.appends));
        m.insert("bytes_written".into(), json!(s.bytes_written));
        m.insert("fsync_count".into(), json!(s.fsyncs));
        m.insert("fsync_total_ms".into(), json!(micros(s.fsync_time)));
        let b = &s.batch_sizes;
        m.insert(
            "group_commit_batches".into(),
            json!({
                "batches": b.batches,
                "records": b.records,
                "mean": if b.batches == 0 { 0.0 } else { b.records as f64 / b.batches as f64 },
                "max": b.max,
            }),
        );
        m.insert("checkpoints".into(), json!(s.checkpoints));
        m.insert("checkpoint_running".into(), json!(s.checkpoint_running));
        m.insert(
            "last_checkpoint".into(),
            s.last_checkpoint
                .as_ref()
                .map_or(serde_json::Value::Null, |c| {
                    json!({
                        "sequence": c.sequence,
                        "keys": c.keys,
                        "snapshot_bytes": c.snapshot_bytes,
                        "entries_truncated": c.records_truncated,
                        "segments_removed": c.segments_removed,
                        "duration_ms": micros(c.duration),
                        "finished_at_micros": c.finished_at_micros,
                    })
                }),
        );
        m.insert(
            "last_recovery".into(),
            json!({
                "mode": r.mode.to_string(),
                "duration_ms": micros(r.duration),
                "snapshot": r.snapshot.as_ref().map(|s| json!({"sequence": s.sequence, "bytes": s.bytes, "keys": s.keys})),
                "segments_read": r.segments_read,
                "entries_replayed": r.records_replayed,
                "torn_bytes_discarded": r.torn_bytes_discarded,
                "unfinished_checkpoint": r.unfinished_checkpoint,
                "torn_at": r.torn_at.as_ref().map(|(f, o)| json!({"file": f.display().to_string(), "offset": o})),
                "last_sequence": r.last_sequence,
            }),
        );
        m.insert("poisoned".into(), json!(s.poisoned));
        m
    }

    fn prepare_crash(&self, mode: CrashMode) -> Result<Stats, StoreError> {
        let mut m = Stats::new();
        if mode == CrashMode::PowerLoss {
            let r = self.engine.simulate_power_loss(true)?;
            m.insert("synced_bytes_kept".into(), json!(r.synced_bytes));
            m.insert(
                "unsynced_bytes_dropped".into(),
                json!(r.unsynced_bytes_dropped),
            );
            m.insert("torn_fragment_bytes".into(), json!(r.torn_fragment_bytes));
        }
        Ok(m)
    }
}
