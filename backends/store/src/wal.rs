//! The adapter from the `walab-wal` engine to [`KvBackend`]: the only code that knows both.

use std::str::FromStr;
use std::sync::Arc;

use clap::Args;
use serde::Serialize;
use walab_wal::{Engine, Op, RecoveryMode, SyncPolicy};

use crate::StoreError;
use crate::backend::{
    Calls, CrashMode, Durability, KvBackend, ReadPath, Value, WalEntry, WalListing, Write,
    WriteAck, WriteDone, WritePath,
};
use crate::parse::{at_least, choices, whole};
use crate::row::{BackendConfig, BackendInfo, BackendKind, InLab, Supports};
use crate::stats::{CheckpointOutcome, CrashReport, LogLevels, StoreStats, details};

/// The WAL's row in the catalog.
pub static ROW: BackendInfo = BackendInfo {
    name: "wal",
    lab_port: 8001,
    title: "write-ahead log: acknowledged writes survive a crash",
    supports: Supports {
        log: true,
        checkpoint: true,
        crash_modes: &[CrashMode::Process, CrashMode::PowerLoss],
    },
    in_lab: InLab::Always,
    wal_engine: true,
    settings: WalSettings::augment_args,
    open,
};

/// The engine's settings, as `walab serve` reads them. Each default is the engine's own
/// ([`walab_wal::Config::default`]), written once, there.
#[derive(Debug, Clone, Args)]
#[command(next_help_heading = "Write-ahead log (KV_BACKEND=wal)")]
pub struct WalSettings {
    /// When a write is synced: always (acknowledged after fdatasync), interval:<ms>
    /// (acknowledged after write(), synced every ms), never (left to the OS).
    #[arg(long, env, default_value_t = walab_wal::Config::default().sync)]
    #[arg(value_parser = choices(vec!["always", "never", "interval:<ms>"], SyncPolicy::from_str))]
    pub fsync: SyncPolicy,
    /// off: every write pays its own fdatasync, to show what group commit buys.
    #[arg(long, env, action = clap::ArgAction::Set, default_value = "on")]
    #[arg(value_parser = choices(vec!["on", "off"], on_or_off))]
    pub group_commit: bool,
    /// An automatic checkpoint needs at least this many records since the last one (0:
    /// never).
    #[arg(long, env, default_value_t = walab_wal::Config::default().checkpoint_threshold)]
    #[arg(value_parser = whole("a whole number of records (0 turns automatic checkpoints off)"))]
    pub checkpoint_threshold: u64,
    /// ... and the log grown by this share of the last snapshot's size (0: the threshold
    /// alone).
    #[arg(long, env, default_value_t = walab_wal::Config::default().checkpoint_growth_percent)]
    #[arg(value_parser = whole("a whole percentage of the last snapshot's size (0: the threshold alone decides)"))]
    pub checkpoint_growth_percent: u64,
    /// How fast a checkpoint writes its snapshot, in bytes per second (0: as fast as the
    /// disk takes it).
    #[arg(long, env, default_value_t = walab_wal::Config::default().snapshot_bytes_per_sec)]
    #[arg(value_parser = whole("a whole number of bytes per second (0: as fast as the disk takes it)"))]
    pub snapshot_bytes_per_sec: u64,
    /// Start a new log segment at this size, in bytes.
    #[arg(long, env, default_value_t = walab_wal::Config::default().segment_bytes)]
    #[arg(value_parser = at_least(walab_wal::MIN_SEGMENT_BYTES, "bytes"))]
    pub segment_bytes: u64,
    /// What recovery does with damage (named after RocksDB's modes).
    #[arg(long, env, default_value_t = walab_wal::Config::default().recovery_mode)]
    #[arg(value_parser = choices(
        vec!["tolerate-corrupted-tail", "absolute-consistency", "point-in-time"],
        RecoveryMode::from_str,
    ))]
    pub recovery_mode: RecoveryMode,
}

fn on_or_off(v: &str) -> Result<bool, String> {
    match v.to_ascii_lowercase().as_str() {
        "on" | "true" | "1" | "yes" => Ok(true),
        "off" | "false" | "0" | "no" => Ok(false),
        _ => Err(format!("expected on or off, got '{v}'")),
    }
}

impl WalSettings {
    /// The engine's configuration for a log in `dir`.
    pub fn engine_config(&self, dir: impl Into<std::path::PathBuf>) -> walab_wal::Config {
        walab_wal::Config::new(dir)
            .sync(self.fsync)
            .group_commit(self.group_commit)
            .checkpoint_threshold(self.checkpoint_threshold)
            .checkpoint_growth_percent(self.checkpoint_growth_percent)
            .snapshot_bytes_per_sec(self.snapshot_bytes_per_sec)
            .segment_bytes(self.segment_bytes)
            .recovery_mode(self.recovery_mode)
    }
}

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

/// The catalog's `open` for the WAL: its settings, in the data directory, told to the
/// server's observer.
fn open(config: &BackendConfig) -> Result<Arc<dyn KvBackend>, StoreError> {
    let settings: WalSettings = config.settings.get()?;
    let mut wal = settings.engine_config(&config.data_dir);
    wal.observer.clone_from(&config.observer);
    Ok(Arc::new(WalBackend::open(wal)?))
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

    fn len(&self) -> Result<usize, StoreError> {
        Ok(self.engine.len())
    }

    fn clear(&self) -> Result<WriteAck, StoreError> {
        Ok(ack(self.engine.clear()?))
    }

    fn checkpoint(&self) -> Result<CheckpointOutcome, StoreError> {
        let r = self.engine.checkpoint()?;
        Ok(CheckpointOutcome {
            entries_truncated: r.records_truncated,
            sequence: Some(r.sequence),
            keys: Some(r.keys),
            snapshot_bytes: Some(r.snapshot_bytes),
            segments_removed: Some(r.segments_removed as u64),
            duration_ms: Some(millis(r.duration)),
            ..CheckpointOutcome::default()
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
                timestamp_micros: Some(e.timestamp_micros),
            })
            .collect();
        Ok(Some(WalListing { entries, total }))
    }

    fn recovered_entries(&self) -> u64 {
        self.engine.recovery().records_replayed
    }

    fn stats(&self) -> StoreStats {
        let stats = self.engine.stats();
        let recovery = self.engine.recovery();
        // The newest snapshot: the last checkpoint's, or the one recovery started from.
        let snapshot = stats.last_checkpoint.as_ref().map_or_else(
            || recovery.snapshot.as_ref().map_or(0, |s| s.bytes),
            |c| c.snapshot_bytes,
        );
        StoreStats {
            size_on_disk_bytes: Some(stats.log_bytes + snapshot),
            log: Some(LogLevels {
                sequence: stats.sequence,
                size_bytes: stats.log_bytes,
                segments: stats.segments,
                records_since_checkpoint: stats.records_since_checkpoint,
                poisoned: stats.poisoned.is_some(),
            }),
            details: details(&WalStats {
                engine: &stats,
                last_recovery: recovery,
            }),
        }
    }

    fn poisoned(&self) -> Option<String> {
        self.engine.poisoned()
    }

    fn prepare_crash(&self, mode: CrashMode) -> Result<CrashReport, StoreError> {
        match mode {
            CrashMode::Process => Ok(CrashReport::default()),
            CrashMode::PowerLoss => {
                let r = self.engine.simulate_power_loss(true)?;
                Ok(CrashReport {
                    synced_bytes_kept: Some(r.synced_bytes),
                    unsynced_bytes_dropped: Some(r.unsynced_bytes_dropped),
                    torn_fragment_bytes: Some(r.torn_fragment_bytes),
                    ..CrashReport::default()
                })
            }
            other => Err(StoreError::Unsupported(format!(
                "mode={other} needs a replicated store; the wal backend can crash with {}",
                BackendKind(&ROW).crash_modes_text()
            ))),
        }
    }
}

/// The WAL's fields in `/admin/stats`: the engine's counters and what recovery found at
/// start, under the names the runbook and the page read (the engine's reports carry them).
#[derive(Debug, Serialize)]
struct WalStats<'a> {
    #[serde(flatten)]
    engine: &'a walab_wal::Stats,
    last_recovery: &'a walab_wal::RecoveryReport,
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

    /// The WAL's fields as `/admin/stats` shows them.
    fn wal_stats(b: &WalBackend) -> serde_json::Value {
        serde_json::Value::Object(b.stats().details)
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
        let fresh = wal_stats(&b);
        assert_eq!(fresh["checkpoint_failures"], 0);
        assert!(fresh["last_checkpoint_error"].is_null(), "{fresh}");
        assert!(fresh["checkpoint_retry_in_ms"].is_null(), "{fresh}");
        assert_eq!(fresh["segment_roll_over_failures"], 0);
        assert_eq!(fresh["entries_since_checkpoint"], 1);
        assert_eq!(fresh["fsync_policy"], "always");
        assert_eq!(fresh["last_recovery"]["mode"], "tolerate-corrupted-tail");
        fs.inject(Fault {
            op: FaultOp::Create,
            nth: 0,
            kind: std::io::ErrorKind::StorageFull,
        });
        assert!(matches!(b.checkpoint(), Err(StoreError::Storage(_))));
        let s = wal_stats(&b);
        assert_eq!(s["checkpoint_failures"], 1);
        let last = &s["last_checkpoint_error"];
        assert!(
            last["error"]
                .as_str()
                .is_some_and(|e| e.contains("injected create failure")),
            "{last}"
        );
        assert_eq!(last["automatic"], false);
        assert!(s["poisoned"].is_null(), "{s}");
        b.put("b", b"2").expect("writes go on");
    }

    #[test]
    fn stats_show_what_recovery_found_under_the_apis_names() {
        use std::io::Write as _;
        let dir = tempfile::tempdir().unwrap();
        let config = walab_wal::Config::new(dir.path());
        {
            let b = WalBackend::open(config.clone()).unwrap();
            for i in 0..3 {
                b.put(&format!("k{i}"), b"1").unwrap();
            }
        }
        // A torn tail: bytes after the last whole record, as a crash mid-write leaves.
        let segment = dir.path().join(walab_wal::segment::file_name(1));
        let whole = std::fs::metadata(&segment).unwrap().len();
        std::fs::OpenOptions::new()
            .append(true)
            .open(&segment)
            .unwrap()
            .write_all(b"garbage")
            .unwrap();
        let b = WalBackend::open(config).unwrap();
        let s = wal_stats(&b);
        let recovery = &s["last_recovery"];
        assert_eq!(recovery["entries_replayed"], 3, "{recovery}");
        assert_eq!(recovery["torn_bytes_discarded"], 7, "{recovery}");
        assert_eq!(recovery["torn_at"]["offset"], whole, "{recovery}");
        assert!(
            recovery["torn_at"]["file"]
                .as_str()
                .is_some_and(|f| f.ends_with(&walab_wal::segment::file_name(1))),
            "{recovery}"
        );
        assert!(recovery["duration_ms"].is_f64(), "{recovery}");
        // Only point-in-time recovery can skip sequence numbers.
        assert!(recovery.get("missing_entries").is_none(), "{recovery}");
        assert_eq!(s["wal_sequence"], 3);
        assert_eq!(s["group_commit_batches"]["records"], 0, "{s}");
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
