//! What backends report besides data: `/admin/stats`, checkpoints and crashes, as typed
//! structs.
//!
//! The server flattens them into its JSON answers. The numbers it turns into metrics come
//! from typed fields ([`LogLevels`]), so a renamed field is a compile error, not a gauge
//! that quietly stops moving; the rest is each backend's own, serialised by the backend. A
//! backend with nothing of its own to report leaves the defaults.

use serde::Serialize;

/// What `/admin/stats` shows beyond the fields every server has.
#[derive(Debug, Clone, Default, Serialize)]
pub struct StoreStats {
    /// Bytes the store takes on disk, for backends that know it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub size_on_disk_bytes: Option<u64>,
    /// The levels of a backend's log, which the server turns into gauges; `None` for a
    /// backend without one. Not in the JSON (the backend's details say the same there).
    #[serde(skip)]
    pub log: Option<LogLevels>,
    /// The backend's own fields, flattened into the answer: each backend serialises its
    /// own struct (see [`details`]), so the server needs to know none of them.
    #[serde(flatten)]
    pub details: serde_json::Map<String, serde_json::Value>,
}

/// A log's levels at one moment, as a backend with a log reports them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LogLevels {
    /// The last sequence number applied.
    pub sequence: u64,
    /// Bytes in all live log files.
    pub size_bytes: u64,
    /// Live log files.
    pub segments: u64,
    /// Records a crash now would replay.
    pub records_since_checkpoint: u64,
    /// Whether the log refuses writes after a failure.
    pub poisoned: bool,
}

/// `value`'s fields as a JSON object, for [`StoreStats::details`]. A value that is not an
/// object (a bug in a backend) becomes no fields at all rather than an error in `/admin/stats`.
pub fn details(value: &impl Serialize) -> serde_json::Map<String, serde_json::Value> {
    match serde_json::to_value(value) {
        Ok(serde_json::Value::Object(map)) => map,
        _ => serde_json::Map::new(),
    }
}

/// The answer to a checkpoint request, beyond `status`.
#[derive(Debug, Clone, Default, Serialize)]
pub struct CheckpointOutcome {
    /// Log records made redundant by the checkpoint.
    pub entries_truncated: u64,
    /// The sequence number (revision) the checkpoint covers, when the backend has one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sequence: Option<u64>,
    /// Keys in the snapshot.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub keys: Option<u64>,
    /// Bytes of the snapshot written.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub snapshot_bytes: Option<u64>,
    /// Log segments deleted.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub segments_removed: Option<u64>,
    /// Bytes flushed to disk (sled).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub flushed_bytes: Option<u64>,
    /// How long it took.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub duration_ms: Option<f64>,
    /// What the backend did, when it is not what the WAL does.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

/// What a crash did, for the crash reply.
#[derive(Debug, Clone, Default, Serialize)]
pub struct CrashReport {
    /// Power loss: synced log bytes that survive.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub synced_bytes_kept: Option<u64>,
    /// Power loss: written but unsynced bytes thrown away.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub unsynced_bytes_dropped: Option<u64>,
    /// Power loss: bytes of a torn last write left behind.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub torn_fragment_bytes: Option<u64>,
    /// Replicated stores: the members killed.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub killed_members: Vec<String>,
    /// What happens next, in a sentence.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}
