//! The engine's configuration: a plain struct with documented defaults and builder setters.

use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use crate::observer::Observer;

/// The smallest segment that makes sense: the header and a few records.
pub const MIN_SEGMENT_BYTES: u64 = 4096;

/// When the log is synced to stable storage, named by what survives.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SyncPolicy {
    /// Every write is on stable storage (fdatasync) before it is acknowledged.
    /// Survives process crash: yes. Survives power loss: yes.
    #[default]
    Always,
    /// Acknowledged after `write()`; a background thread syncs every interval (Redis's
    /// `everysec`). Survives process crash: yes. Survives power loss: all but the writes of
    /// the last interval.
    Interval(Duration),
    /// Acknowledged after `write()`; syncing is left to the operating system.
    /// Survives process crash: yes. Survives power loss: only what the OS happened to write
    /// back (segments are synced when they are sealed and checkpoints are always synced).
    Never,
}

impl SyncPolicy {
    /// Whether an acknowledged write survives a power loss.
    pub fn survives_power_loss(self) -> bool {
        matches!(self, SyncPolicy::Always)
    }
}

impl fmt::Display for SyncPolicy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SyncPolicy::Always => f.write_str("always"),
            SyncPolicy::Interval(d) => write!(f, "interval:{}", d.as_millis()),
            SyncPolicy::Never => f.write_str("never"),
        }
    }
}

impl FromStr for SyncPolicy {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let s = s.trim().to_ascii_lowercase();
        let expected = "expected always, never or interval:<milliseconds> (e.g. interval:1000)";
        match s.as_str() {
            "always" => Ok(SyncPolicy::Always),
            "never" => Ok(SyncPolicy::Never),
            _ => match s.strip_prefix("interval:") {
                Some(ms) => match ms.parse::<u64>() {
                    Ok(ms) if ms > 0 => Ok(SyncPolicy::Interval(Duration::from_millis(ms))),
                    _ => Err(format!("'{s}' has no positive interval: {expected}")),
                },
                None => Err(format!("unknown sync policy '{s}': {expected}")),
            },
        }
    }
}

/// What recovery does with bytes a crash cannot explain. Named after RocksDB's
/// `WALRecoveryMode`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum RecoveryMode {
    /// A damaged tail of the last segment (what a crash mid-write leaves) is cut off and
    /// reported; damage anywhere else stops start-up.
    #[default]
    TolerateCorruptedTail,
    /// Any damage, even a torn tail, stops start-up.
    AbsoluteConsistency,
    /// Stop at the first damaged record wherever it is, keep the consistent prefix before
    /// it, and cut off everything after (reported). For disks that may reorder writes.
    PointInTime,
}

impl fmt::Display for RecoveryMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            RecoveryMode::TolerateCorruptedTail => "tolerate-corrupted-tail",
            RecoveryMode::AbsoluteConsistency => "absolute-consistency",
            RecoveryMode::PointInTime => "point-in-time",
        })
    }
}

impl FromStr for RecoveryMode {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().replace('_', "-").as_str() {
            "tolerate-corrupted-tail" | "tolerate-corrupted-tail-records" => {
                Ok(RecoveryMode::TolerateCorruptedTail)
            }
            "absolute-consistency" => Ok(RecoveryMode::AbsoluteConsistency),
            "point-in-time" => Ok(RecoveryMode::PointInTime),
            other => Err(format!(
                "unknown recovery mode '{other}': expected tolerate-corrupted-tail, absolute-consistency or point-in-time"
            )),
        }
    }
}

/// The engine's settings.
#[derive(Clone)]
pub struct Config {
    /// The data directory: segments and snapshots live here. Default `./data`.
    pub dir: PathBuf,
    /// When the log is synced. Default [`SyncPolicy::Always`].
    pub sync: SyncPolicy,
    /// Whether concurrent writers share one write and one sync (default `true`). Off, each
    /// write is written and synced on its own, to show what group commit buys.
    pub group_commit: bool,
    /// Take a checkpoint automatically after this many records (default 100; 0 = never)...
    pub checkpoint_threshold: u64,
    /// ... and once the log has grown by at least this percentage of the last snapshot's
    /// size (default 100, as Redis's `auto-aof-rewrite-percentage`). A snapshot writes the
    /// whole store; taking one every 100 records would make each write cost more as the
    /// store grows. Waiting until the log is as big as the snapshot bounds the snapshot
    /// bytes written per logged byte to 100/percent, whatever the store's size. A store
    /// without a snapshot yet waits for the threshold alone.
    pub checkpoint_growth_percent: u64,
    /// Start a new segment once the current one reaches this size (default 64 MiB).
    pub segment_bytes: u64,
    /// What recovery does with damage. Default [`RecoveryMode::TolerateCorruptedTail`].
    pub recovery_mode: RecoveryMode,
    /// Write snapshots at most this fast, in bytes per second (default 20 MB/s; 0: as fast
    /// as the disk takes them). See [`crate::snapshot::write_paced`]: measured with
    /// `cargo bench -p walab-wal --bench append -- nomatch` (checkpoints of 1M keys back to
    /// back), unpaced snapshots raised the writes' p99 6-10x, 20 MB/s 1.3x.
    pub snapshot_bytes_per_sec: u64,
    /// The most records one group commit writes and syncs at once (default 1024).
    pub max_batch_records: usize,
    /// Told about every sync and checkpoint (for metrics and traces). Default: nobody.
    pub observer: Option<Arc<dyn Observer>>,
}

impl fmt::Debug for Config {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Config")
            .field("dir", &self.dir)
            .field("sync", &self.sync)
            .field("group_commit", &self.group_commit)
            .field("checkpoint_threshold", &self.checkpoint_threshold)
            .field("checkpoint_growth_percent", &self.checkpoint_growth_percent)
            .field("segment_bytes", &self.segment_bytes)
            .field("recovery_mode", &self.recovery_mode)
            .field("snapshot_bytes_per_sec", &self.snapshot_bytes_per_sec)
            .field("max_batch_records", &self.max_batch_records)
            .field("observer", &self.observer.is_some())
            .finish()
    }
}

impl Default for Config {
    fn default() -> Self {
        Config {
            dir: PathBuf::from("data"),
            sync: SyncPolicy::Always,
            group_commit: true,
            checkpoint_threshold: 100,
            checkpoint_growth_percent: 100,
            segment_bytes: 64 << 20,
            recovery_mode: RecoveryMode::TolerateCorruptedTail,
            snapshot_bytes_per_sec: 20_000_000,
            max_batch_records: 1024,
            observer: None,
        }
    }
}

impl Config {
    /// Defaults, in `dir`.
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        Config {
            dir: dir.into(),
            ..Config::default()
        }
    }

    /// Set the sync policy.
    pub fn sync(mut self, sync: SyncPolicy) -> Self {
        self.sync = sync;
        self
    }

    /// Turn group commit on or off.
    pub fn group_commit(mut self, on: bool) -> Self {
        self.group_commit = on;
        self
    }

    /// Set the automatic checkpoint threshold (0 = never automatic).
    pub fn checkpoint_threshold(mut self, records: u64) -> Self {
        self.checkpoint_threshold = records;
        self
    }

    /// Set how much the log must have grown, in percent of the last snapshot, before an
    /// automatic checkpoint (0: the threshold alone decides).
    pub fn checkpoint_growth_percent(mut self, percent: u64) -> Self {
        self.checkpoint_growth_percent = percent;
        self
    }

    /// Set the segment size at which the log rolls over.
    pub fn segment_bytes(mut self, bytes: u64) -> Self {
        self.segment_bytes = bytes;
        self
    }

    /// Set the recovery mode.
    pub fn recovery_mode(mut self, mode: RecoveryMode) -> Self {
        self.recovery_mode = mode;
        self
    }

    /// Write snapshots at most this fast (0: unpaced).
    pub fn snapshot_bytes_per_sec(mut self, rate: u64) -> Self {
        self.snapshot_bytes_per_sec = rate;
        self
    }

    /// Set who hears about syncs and checkpoints.
    pub fn observer(mut self, observer: Arc<dyn Observer>) -> Self {
        self.observer = Some(observer);
        self
    }
}
