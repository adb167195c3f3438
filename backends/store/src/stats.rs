//! What backends report besides data: `/admin/stats`, checkpoints and crashes, as typed
//! structs.
//!
//! The server flattens them into its JSON answers and reads the numbers it turns into
//! metrics from the fields, so a renamed field is a compile error, not a gauge that quietly
//! stops moving. A backend with nothing of its own to report leaves the defaults.

use serde::Serialize;

pub use crate::etcd::EtcdStats;
pub use crate::wal::WalStats;

/// What `/admin/stats` shows beyond the fields every server has.
#[derive(Debug, Clone, Default, Serialize)]
pub struct StoreStats {
    /// Bytes the store takes on disk, for backends that know it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub size_on_disk_bytes: Option<u64>,
    /// The backend's own fields, flattened into the answer.
    #[serde(flatten)]
    pub details: Option<Details>,
}

/// A backend's own fields. A new backend with fields of its own adds a variant; one
/// without leaves [`StoreStats::details`] empty.
#[derive(Debug, Clone, Serialize)]
#[serde(untagged)]
pub enum Details {
    /// walab's WAL engine.
    Wal(Box<WalStats>),
    /// sled.
    Sled {
        /// `SLED_FLUSH`: `always` or `background`.
        sled_flush: &'static str,
    },
    /// An etcd cluster.
    Etcd {
        /// The cluster as the server sees it.
        etcd: EtcdStats,
    },
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
