//! A hook for whoever wants to watch the engine work (metrics, traces), without the engine
//! depending on any of them.

use std::time::Duration;

use crate::{CheckpointReport, Error, RecoveryReport};

/// Told about the engine's slow, interesting events. Every method has an empty default.
/// Calls come from the engine's own threads, sometimes with its locks held: keep them quick.
pub trait Observer: Send + Sync {
    /// One write to the log (a group-commit batch of `records`), and the sync that made it
    /// durable if the policy syncs (`sync` is `None` when it did not).
    fn batch_written(&self, records: usize, bytes: usize, sync: Option<Duration>) {
        let _ = (records, bytes, sync);
    }

    /// A background sync under `SyncPolicy::Interval`.
    fn interval_synced(&self, took: Duration) {
        let _ = took;
    }

    /// A checkpoint finished.
    fn checkpoint_finished(&self, report: &CheckpointReport) {
        let _ = report;
    }

    /// A checkpoint failed: `automatic` says whether the engine started it (it will try
    /// again after a back-off) or `Engine::checkpoint` did (its caller has the error too).
    /// Called with no engine lock held, so it may log at leisure.
    fn checkpoint_failed(&self, error: &Error, automatic: bool) {
        let _ = (error, automatic);
    }

    /// Recovery finished (called once, from `Engine::open`).
    fn recovered(&self, report: &RecoveryReport) {
        let _ = report;
    }
}
