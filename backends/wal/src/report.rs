//! Plain values the engine hands out: what recovery found, what a checkpoint did, the
//! counters behind `/admin/stats`.
//!
//! The reports serialise themselves as `/admin/stats` shows them. Those JSON names are a
//! contract older than the engine (the runbook and the lab's page read them), so where the
//! engine's word differs (`records` for the API's `entries`, `log_bytes` for
//! `wal_size_bytes`) a serde rename keeps both on one struct, and durations go out as
//! milliseconds.

use std::path::PathBuf;
use std::time::Duration;

use serde::Serialize;
use serde::ser::{SerializeStruct, Serializer};

use crate::config::{RecoveryMode, SyncPolicy};
use crate::record::Op;

/// The answer to an accepted write.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Commit {
    /// The write's sequence number: strictly increasing for the life of the directory.
    pub sequence: u64,
    /// When each step of the write happened, for traces.
    pub timing: CommitTiming,
}

/// What a finished write tells its writer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Written {
    /// Its sequence number and timing.
    pub commit: Commit,
    /// Whether the key existed before (for a clear, whether the store held anything).
    pub existed: bool,
}

/// When each step of one write happened: the writer queued it, its batch was written, synced
/// (under `SyncPolicy::Always`) and applied. Writes of one batch share the last three.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CommitTiming {
    /// The writer handed the record to the engine.
    pub submitted: std::time::Instant,
    /// The batch's `write()` returned.
    pub written: std::time::Instant,
    /// The batch's fdatasync returned, if the policy syncs on the write path.
    pub synced: Option<std::time::Instant>,
    /// The batch was applied to the state (the write became visible).
    pub applied: std::time::Instant,
    /// How many writes shared the batch.
    pub batch_records: usize,
}

/// The snapshot recovery started from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SnapshotInfo {
    /// The last sequence number the snapshot covers.
    pub sequence: u64,
    /// Its size on disk.
    pub bytes: u64,
    /// How many keys it holds.
    pub keys: u64,
}

/// What recovery found and did.
#[derive(Debug, Clone, Serialize)]
pub struct RecoveryReport {
    /// The recovery mode in force.
    #[serde(serialize_with = "as_text")]
    pub mode: RecoveryMode,
    /// The snapshot loaded, if any.
    pub snapshot: Option<SnapshotInfo>,
    /// Log segments read.
    pub segments_read: usize,
    /// Records applied after the snapshot.
    #[serde(rename = "entries_replayed")]
    pub records_replayed: u64,
    /// Bytes of log cut off as a torn tail (or, in point-in-time mode, after damage).
    pub torn_bytes_discarded: u64,
    /// Where the cut was made, if one was.
    #[serde(serialize_with = "torn_at")]
    pub torn_at: Option<(PathBuf, u64)>,
    /// Sequence numbers (first, last) that no file held, which point-in-time recovery cut
    /// the log before; the other modes refuse to start instead.
    #[serde(
        rename = "missing_entries",
        serialize_with = "missing",
        skip_serializing_if = "Option::is_none"
    )]
    pub missing_records: Option<(u64, u64)>,
    /// Whether a crash had cut a checkpoint short (a temporary snapshot, or segments the
    /// snapshot already covered, were left behind and have been cleaned up).
    pub unfinished_checkpoint: bool,
    /// The last sequence number recovered (0 for an empty directory).
    pub last_sequence: u64,
    /// Wall time from open to ready.
    #[serde(rename = "duration_ms", serialize_with = "millis")]
    pub duration: Duration,
}

/// What a checkpoint did.
#[derive(Debug, Clone, Serialize)]
pub struct CheckpointReport {
    /// The sequence number the snapshot covers.
    pub sequence: u64,
    /// Keys written to the snapshot.
    pub keys: u64,
    /// The snapshot's size.
    pub snapshot_bytes: u64,
    /// Log records the snapshot made redundant.
    #[serde(rename = "entries_truncated")]
    pub records_truncated: u64,
    /// Segment files deleted.
    pub segments_removed: usize,
    /// Wall time of the whole checkpoint.
    #[serde(rename = "duration_ms", serialize_with = "millis")]
    pub duration: Duration,
    /// Unix time the checkpoint finished, in microseconds.
    pub finished_at_micros: u64,
}

/// A checkpoint that failed. The log still holds every record it would have covered.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CheckpointFailure {
    /// The error, with the file and operation it happened in.
    pub error: String,
    /// Unix time of the failure, in microseconds.
    pub at_micros: u64,
    /// Whether it was an automatic checkpoint (or one asked for with `Engine::checkpoint`).
    pub automatic: bool,
}

/// What a simulated power loss threw away.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PowerLossReport {
    /// Bytes of the log that were synced and are kept.
    pub synced_bytes: u64,
    /// Bytes written but never synced, now gone.
    pub unsynced_bytes_dropped: u64,
    /// Bytes of a torn fragment left at the end, as a crash mid-write leaves.
    pub torn_fragment_bytes: u64,
}

/// One record as read back from the log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogEntry {
    /// Sequence number.
    pub sequence: u64,
    /// Unix time of the write in microseconds.
    pub timestamp_micros: u64,
    /// What the record does.
    pub op: Op,
    /// Key bytes (empty for `Clear`).
    pub key: Vec<u8>,
    /// Value bytes (empty for `Delete` and `Clear`).
    pub value: Vec<u8>,
}

/// Group-commit batch sizes: how many writes shared one write and sync.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BatchSizes {
    /// Number of batches.
    pub batches: u64,
    /// Records in all batches.
    pub records: u64,
    /// The largest batch so far.
    pub max: u64,
    /// Counts per bucket: batches of size 1, 2, 3–4, 5–8, ... up to 1024 and more.
    pub buckets: [u64; 12],
}

impl BatchSizes {
    /// Records per batch, on average (0 before the first).
    pub fn mean(&self) -> f64 {
        if self.batches == 0 {
            0.0
        } else {
            self.records as f64 / self.batches as f64
        }
    }

    /// The upper bound of each bucket of [`BatchSizes::buckets`] (the last is open).
    pub const BOUNDS: [u64; 12] = [1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, u64::MAX];

    pub(crate) fn record(&mut self, size: u64) {
        self.batches += 1;
        self.records += size;
        self.max = self.max.max(size);
        let idx = Self::BOUNDS
            .iter()
            .position(|&b| size <= b)
            .unwrap_or(Self::BOUNDS.len() - 1);
        self.buckets[idx] += 1;
    }
}

/// The engine's counters, for `/admin/stats` and metrics.
#[derive(Debug, Clone, Serialize)]
pub struct Stats {
    /// The last sequence number applied.
    #[serde(rename = "wal_sequence")]
    pub sequence: u64,
    /// Keys in the state (`/admin/stats` has its own count).
    #[serde(skip)]
    pub keys: u64,
    /// Records written since the last checkpoint.
    #[serde(rename = "entries_since_checkpoint")]
    pub records_since_checkpoint: u64,
    /// The automatic checkpoint threshold.
    pub checkpoint_threshold: u64,
    /// The sync policy.
    #[serde(rename = "fsync_policy", serialize_with = "as_text")]
    pub sync: SyncPolicy,
    /// Whether group commit is on.
    pub group_commit: bool,
    /// Bytes in all live segments.
    #[serde(rename = "wal_size_bytes")]
    pub log_bytes: u64,
    /// Live segment files.
    #[serde(rename = "wal_segments")]
    pub segments: u64,
    /// Records appended since open.
    pub appends: u64,
    /// Bytes written to the log since open.
    pub bytes_written: u64,
    /// Syncs of the log since open (request path and background).
    #[serde(rename = "fsync_count")]
    pub fsyncs: u64,
    /// Time spent in those syncs.
    #[serde(rename = "fsync_total_ms", serialize_with = "millis")]
    pub fsync_time: std::time::Duration,
    /// Batch sizes since open.
    #[serde(rename = "group_commit_batches")]
    pub batch_sizes: BatchSizes,
    /// Checkpoints taken since open.
    pub checkpoints: u64,
    /// Whether a checkpoint is being written right now.
    pub checkpoint_running: bool,
    /// The last checkpoint since open.
    pub last_checkpoint: Option<CheckpointReport>,
    /// Checkpoints that failed since open (a failure does not poison the engine unless it
    /// was a failed sync of the log).
    pub checkpoint_failures: u64,
    /// The most recent failed checkpoint since open. Kept after later successes: compare
    /// its time with [`Stats::last_checkpoint`]'s.
    #[serde(rename = "last_checkpoint_error")]
    pub last_checkpoint_failure: Option<CheckpointFailure>,
    /// After a failure, how long until automatic checkpoints are tried again (`None` when
    /// they are not held back). A manual checkpoint is always tried at once.
    #[serde(rename = "checkpoint_retry_in_ms", serialize_with = "maybe_millis")]
    pub checkpoint_retry_in: Option<Duration>,
    /// Size roll-overs since open that could not create the next segment; the log went on
    /// in the active segment, which then grows past `segment_bytes` until one succeeds.
    #[serde(rename = "segment_roll_over_failures")]
    pub roll_over_failures: u64,
    /// Bytes that can still be appended to the active segment into disk room reserved for
    /// it (0 when none is: the file system cannot reserve, or the disk was full at start).
    #[serde(rename = "log_reserved_room_bytes")]
    pub reserved_room: u64,
    /// The failure that poisoned the engine, if one did.
    pub poisoned: Option<String>,
}

/// As `/admin/stats` shows them: the counts and the mean (the buckets are the metrics').
impl Serialize for BatchSizes {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut out = s.serialize_struct("BatchSizes", 4)?;
        out.serialize_field("batches", &self.batches)?;
        out.serialize_field("records", &self.records)?;
        out.serialize_field("mean", &self.mean())?;
        out.serialize_field("max", &self.max)?;
        out.end()
    }
}

/// A duration as milliseconds.
fn millis<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_f64(d.as_secs_f64() * 1e3)
}

fn maybe_millis<S: Serializer>(d: &Option<Duration>, s: S) -> Result<S::Ok, S::Error> {
    d.map(|d| d.as_secs_f64() * 1e3).serialize(s)
}

/// A setting as it is written (`interval:100`, `point-in-time`).
fn as_text<S: Serializer>(value: &impl std::fmt::Display, s: S) -> Result<S::Ok, S::Error> {
    s.collect_str(value)
}

/// Where a torn tail began: `{"file", "offset"}`.
fn torn_at<S: Serializer>(at: &Option<(PathBuf, u64)>, s: S) -> Result<S::Ok, S::Error> {
    #[derive(Serialize)]
    struct TornAt {
        file: String,
        offset: u64,
    }
    at.as_ref()
        .map(|(file, offset)| TornAt {
            file: file.display().to_string(),
            offset: *offset,
        })
        .serialize(s)
}

/// Sequence numbers no file held: `{"first", "last"}`.
fn missing<S: Serializer>(range: &Option<(u64, u64)>, s: S) -> Result<S::Ok, S::Error> {
    #[derive(Serialize)]
    struct Missing {
        first: u64,
        last: u64,
    }
    range
        .map(|(first, last)| Missing { first, last })
        .serialize(s)
}
