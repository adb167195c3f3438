//! The adapter from the `walab-wal` engine to [`KvBackend`]: the only code that knows both.

use serde_json::json;
use walab_wal::{Engine, Op, SyncPolicy};

use crate::StoreError;
use crate::backend::{
    BackendKind, Calls, CheckpointOutcome, CrashMode, Durability, KvBackend, ReadPath, Stats,
    Value, WalEntry, WalListing, Write, WriteAck, WriteDone, WritePath,
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

    /// A backend over an engine opened by the caller (on a simulated file system, say).
    pub fn from_engine(engine: Engine) -> Self {
        Self { engine }
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

fn millis(d: std::time::Duration) -> f64 {
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

    fn calls(&self) -> Calls {
        // Reads look in the in-memory state; writes go to the engine's log writer, which
        // completes them after their batch is synced and applied.
        Calls {
            reads: ReadPath::Inline,
            writes: WritePath::Queued,
        }
    }

    fn submit(&self, write: Write, done: WriteDone) {
        let (op, key, value) = match write {
            Write::Put { key, value } => (Op::Set, Value::from(key.as_bytes()), value),
            Write::Delete { key } => (
                Op::Delete,
                Value::from(key.as_bytes()),
                Value::from(&[][..]),
            ),
            Write::Clear => (Op::Clear, Value::from(&[][..]), Value::from(&[][..])),
        };
        self.engine.submit(op, key, value, move |r| {
            done(match r {
                Ok(w) if op == Op::Delete && !w.existed => Ok(None),
                Ok(w) => Ok(Some(ack(w.commit))),
                Err(e) => Err(e.into()),
            });
        });
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
        details.insert("duration_ms".into(), json!(millis(r.duration)));
        Ok(CheckpointOutcome {
            entries_truncated: r.records_truncated,
            sequence: Some(r.sequence),
            details,
        })
    }

    fn wal_entries(
        &self,
        limit: usize,
        max_bytes: usize,
    ) -> Result<Option<WalListing>, StoreError> {
        let (entries, total) = self.engine.log_entries(limit, max_bytes)?;
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
        m.insert("fsync_total_ms".into(), json!(millis(s.fsync_time)));
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
        m.insert("checkpoint_failures".into(), json!(s.checkpoint_failures));
        m.insert(
            "last_checkpoint_error".into(),
            s.last_checkpoint_failure
                .as_ref()
                .map_or(serde_json::Value::Null, |f| {
                    json!({
                        "error": f.error,
                        "at_micros": f.at_micros,
                        "automatic": f.automatic,
                    })
                }),
        );
        m.insert(
            "checkpoint_retry_in_ms".into(),
            json!(s.checkpoint_retry_in.map(millis)),
        );
        m.insert(
            "segment_roll_over_failures".into(),
            json!(s.roll_over_failures),
        );
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
                        "duration_ms": millis(c.duration),
                        "finished_at_micros": c.finished_at_micros,
                    })
                }),
        );
        m.insert(
            "last_recovery".into(),
            json!({
                "mode": r.mode.to_string(),
                "duration_ms": millis(r.duration),
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

    fn poisoned(&self) -> Option<String> {
        self.engine.poisoned()
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

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use walab_wal::fs::{Fault, FaultOp, SimFs};

    use super::*;

    fn sim_backend(fs: &SimFs) -> WalBackend {
        let config = walab_wal::Config::new("/data").checkpoint_threshold(0);
        WalBackend::from_engine(Engine::open_with_fs(config, Arc::new(fs.clone())).unwrap())
    }

    #[test]
    fn a_second_backend_on_the_directory_says_who_holds_it_in_one_line() {
        let dir = tempfile::tempdir().unwrap();
        let config = walab_wal::Config::new(dir.path());
        let _first = WalBackend::open(config.clone()).unwrap();
        let err = WalBackend::open(config).unwrap_err();
        assert!(matches!(err, StoreError::Locked(_)), "{err:?}");
        let text = err.to_string();
        assert!(!text.contains('\n'), "{text}");
        assert!(
            text.contains(&format!("(pid {})", std::process::id())),
            "{text}"
        );
        assert!(text.contains(&dir.path().display().to_string()), "{text}");
    }

    #[test]
    fn poisoned_says_why_writes_are_refused() {
        let fs = SimFs::new(1);
        let b = sim_backend(&fs);
        b.put("a", b"1").unwrap();
        assert_eq!(b.poisoned(), None);
        b.prepare_crash(CrashMode::PowerLoss).unwrap();
        let why = b.poisoned().expect("refusing writes");
        assert!(why.contains("power loss"), "{why}");
        assert!(matches!(b.put("b", b"2"), Err(StoreError::Poisoned(_))));
    }

    #[test]
    fn stats_show_failed_checkpoints() {
        let fs = SimFs::new(2);
        let b = sim_backend(&fs);
        b.put("a", b"1").unwrap();
        let fresh = b.stats();
        assert_eq!(fresh["checkpoint_failures"], json!(0));
        assert_eq!(fresh["last_checkpoint_error"], serde_json::Value::Null);
        assert_eq!(fresh["checkpoint_retry_in_ms"], serde_json::Value::Null);
        assert_eq!(fresh["segment_roll_over_failures"], json!(0));
        fs.inject(Fault {
            op: FaultOp::Create,
            nth: 0,
            kind: std::io::ErrorKind::StorageFull,
        });
        assert!(matches!(b.checkpoint(), Err(StoreError::Storage(_))));
        let s = b.stats();
        assert_eq!(s["checkpoint_failures"], json!(1));
        let last = &s["last_checkpoint_error"];
        assert!(
            last["error"]
                .as_str()
                .is_some_and(|e| e.contains("injected create failure")),
            "{last}"
        );
        assert_eq!(last["automatic"], json!(false));
        assert_eq!(s["poisoned"], serde_json::Value::Null);
        b.put("b", b"2").expect("writes go on");
    }

    #[test]
    fn wal_entries_keep_to_the_byte_budget() {
        let fs = SimFs::new(3);
        let b = sim_backend(&fs);
        for i in 0..10 {
            b.put(&format!("k{i}"), &[b'v'; 100]).unwrap();
        }
        let all = b.wal_entries(100, usize::MAX).unwrap().unwrap();
        assert_eq!((all.entries.len(), all.total), (10, 10));
        let some = b.wal_entries(100, 2 * 102).unwrap().unwrap();
        assert_eq!(some.total, 10);
        let keys: Vec<&str> = some.entries.iter().map(|e| e.key.as_str()).collect();
        assert_eq!(keys, ["k8", "k9"]);
    }
}
