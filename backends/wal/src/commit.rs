//! The append path and group commit.
//!
//! Every writer puts its record in the queue, taking the next sequence number. If no batch
//! is being written, it becomes the leader: it takes everything queued (up to
//! `max_batch_records`; one record when group commit is off), writes it with one `write()`,
//! syncs once if the policy says so, applies the records to the state in order, and posts
//! every writer's result, waking each writer of the batch on its own slot and handing the
//! lead to the first writer still queued. Writers that arrived while a sync ran are carried
//! by that next leader, so under load one fdatasync serves many writes.
//!
//! A failed write or sync fails the whole batch, leaves the state unchanged and poisons the
//! engine: everything queued after it fails too, and nothing is written until reopen. A
//! size roll-over whose new segment cannot be created fails nothing: the batch goes into
//! the active segment, and the roll-over is tried again after a back-off.

use std::collections::VecDeque;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Condvar, Mutex};
use std::time::Instant;

use crate::config::SyncPolicy;
use crate::engine::{Bytes, Shared, apply, lock};
use crate::error::{Error, Result};
use crate::record::{self, Op, RecordRef};
use crate::report::CommitTiming;

/// One write waiting to be logged.
#[derive(Debug, Clone)]
pub(crate) struct WriteOp {
    pub op: Op,
    pub key: Bytes,
    pub value: Bytes,
    pub timestamp_micros: u64,
}

/// Where a writer waits: for its result, or for its turn to lead. One per write, so a
/// finished batch wakes exactly its own writers and the next leader, not every waiter.
#[derive(Debug, Default)]
struct Slot {
    state: Mutex<SlotState>,
    cv: Condvar,
}

#[derive(Debug, Default)]
struct SlotState {
    outcome: Option<Outcome>,
    lead: bool,
}

impl Slot {
    fn post(&self, f: impl FnOnce(&mut SlotState)) {
        f(&mut lock(&self.state));
        self.cv.notify_one();
    }
}

#[derive(Debug)]
struct Queued {
    sequence: u64,
    write: WriteOp,
    slot: Arc<Slot>,
}

/// When a batch's steps finished, shared by its writes.
#[derive(Debug, Clone, Copy)]
pub(crate) struct BatchTiming {
    pub written: Instant,
    pub synced: Option<Instant>,
    pub applied: Instant,
    pub records: usize,
}

/// What a finished write tells its writer: whether the key existed and when its batch's
/// steps happened, or why it failed.
type Outcome = Result<(bool, BatchTiming)>;

/// Writes waiting for a leader.
#[derive(Debug)]
pub(crate) struct Queue {
    next_sequence: u64,
    waiting: VecDeque<Queued>,
    /// Whether some writer is leading (or has been handed the lead and is waking up).
    leader_active: bool,
    /// Why the engine refuses writes, once it does.
    pub poisoned: Option<String>,
    /// Reused between batches to avoid an allocation per batch.
    buf: Vec<u8>,
}

impl Queue {
    pub(crate) fn new(next_sequence: u64) -> Self {
        Queue {
            next_sequence,
            waiting: VecDeque::new(),
            leader_active: false,
            poisoned: None,
            buf: Vec::new(),
        }
    }
}

/// Log `write` and apply it; returns its sequence number, whether the key existed, and
/// when each step happened.
pub(crate) fn submit(s: &Shared, write: WriteOp) -> Result<(u64, bool, CommitTiming)> {
    let submitted = Instant::now();
    let slot = Arc::new(Slot::default());
    let mut q = lock(&s.queue);
    if let Some(cause) = &q.poisoned {
        return Err(Error::Poisoned {
            cause: cause.clone(),
        });
    }
    let sequence = q.next_sequence;
    // u64::MAX is never handed out (recovery refuses a log holding it): refuse the write
    // rather than overflow.
    let Some(next) = sequence.checked_add(1) else {
        return Err(Error::corrupt(
            &s.config.dir,
            0,
            "the log has used every sequence number; no write can follow",
        ));
    };
    q.next_sequence = next;
    q.waiting.push_back(Queued {
        sequence,
        write,
        slot: slot.clone(),
    });
    let mut leading = !q.leader_active;
    q.leader_active = true;
    drop(q);
    loop {
        if leading {
            lead_one_batch(s);
        }
        let mut st = lock(&slot.state);
        loop {
            if let Some(outcome) = st.outcome.take() {
                return outcome.map(|(existed, t)| {
                    let timing = CommitTiming {
                        submitted,
                        written: t.written,
                        synced: t.synced,
                        applied: t.applied,
                        batch_records: t.records,
                    };
                    (sequence, existed, timing)
                });
            }
            if st.lead {
                st.lead = false;
                leading = true;
                break;
            }
            st = slot.cv.wait(st).unwrap_or_else(|e| e.into_inner());
        }
    }
}

/// Take a batch from the queue, run it, post each writer's result, and hand the lead to the
/// first writer still waiting (or give it up when nobody is).
fn lead_one_batch(s: &Shared) {
    let mut q = lock(&s.queue);
    let max = if s.config.group_commit {
        s.config.max_batch_records.max(1)
    } else {
        1
    };
    let n = q.waiting.len().min(max);
    let batch: Vec<Queued> = q.waiting.drain(..n).collect();
    let mut buf = std::mem::take(&mut q.buf);
    let poisoned = q.poisoned.clone();
    drop(q);
    let outcomes = match poisoned {
        Some(cause) => batch
            .iter()
            .map(|_| {
                Err(Error::Poisoned {
                    cause: cause.clone(),
                })
            })
            .collect(),
        None => lead(s, &batch, &mut buf),
    };
    for (item, outcome) in batch.iter().zip(outcomes) {
        item.slot.post(|st| st.outcome = Some(outcome));
    }
    let mut q = lock(&s.queue);
    q.buf = buf;
    match q.waiting.front() {
        Some(next) => next.slot.post(|st| st.lead = true),
        None => q.leader_active = false,
    }
}

/// Write, sync and apply one batch. Runs with no queue lock held, holding the log lock.
fn lead(s: &Shared, batch: &[Queued], buf: &mut Vec<u8>) -> Vec<Outcome> {
    buf.clear();
    for item in batch {
        record::encode(
            &RecordRef {
                sequence: item.sequence,
                timestamp_micros: item.write.timestamp_micros,
                op: item.write.op,
                key: &item.write.key,
                value: &item.write.value,
            },
            buf,
        );
    }
    let mut log = lock(&s.log);
    let mut written_at = Instant::now();
    let written = (|| -> Result<Option<std::time::Duration>> {
        // Only a failure that poisons the log comes back from here (a failed sync of the
        // active segment); a new segment that cannot be created leaves this batch in the
        // active one.
        log.roll_over_if_due(batch[0].sequence)?;
        log.append(buf, batch.len())?;
        written_at = Instant::now();
        match s.config.sync {
            SyncPolicy::Always => log.sync().map(Some),
            SyncPolicy::Interval(_) | SyncPolicy::Never => Ok(None),
        }
    })();
    let sync = match written {
        Ok(sync) => sync,
        Err(e) => {
            // The log's own account when it has one: it says what else went wrong.
            let cause = log.failed.clone().unwrap_or_else(|| e.to_string());
            drop(log);
            s.poison(&cause);
            return batch
                .iter()
                .map(|_| {
                    Err(Error::WriteFailed {
                        cause: cause.clone(),
                    })
                })
                .collect();
        }
    };
    log.counters.batch_sizes.record(batch.len() as u64);
    // Applied only now that the records are written (and synced, under `always`), in
    // sequence order, while the log lock keeps checkpoints from seeing a half-applied batch.
    let synced_at = sync.map(|_| Instant::now());
    let mut state = s.write_state();
    let existed: Vec<bool> = batch
        .iter()
        .map(|item| {
            let w = &item.write;
            apply(&mut state, w.op, w.key.clone(), w.value.clone())
        })
        .collect();
    drop(state);
    let timing = BatchTiming {
        written: written_at,
        synced: synced_at,
        applied: Instant::now(),
        records: batch.len(),
    };
    let outcomes = existed.into_iter().map(|e| Ok((e, timing))).collect();
    if let Some(last) = batch.last() {
        s.applied.store(last.sequence, Ordering::Release);
    }
    if let Some(obs) = &s.config.observer {
        obs.batch_written(batch.len(), buf.len(), sync);
    }
    drop(log);
    outcomes
}
