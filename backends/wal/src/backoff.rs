//! Spacing for retries of work whose failure leaves the log intact (a checkpoint, a segment
//! roll-over): tried again soon after a passing failure, rarely during a long one (a full
//! disk, a process out of file descriptors), where retrying on every write would only add
//! a failing system call to each batch and a line to every log.
//!
//! Pure bookkeeping over instants the caller passes in, so it is tested without sleeping.

use std::time::{Duration, Instant};

/// The delay after the first failure.
pub(crate) const FIRST: Duration = Duration::from_secs(1);
/// The longest delay: a condition that clears is noticed within a minute.
pub(crate) const MAX: Duration = Duration::from_secs(60);

/// When work that failed may be tried again: [`FIRST`] after the first failure, doubling
/// with each failure in a row up to [`MAX`]; a success starts over.
#[derive(Debug, Clone)]
pub(crate) struct Backoff {
    next_delay: Duration,
    retry_at: Option<Instant>,
}

impl Default for Backoff {
    fn default() -> Self {
        Backoff {
            next_delay: FIRST,
            retry_at: None,
        }
    }
}

impl Backoff {
    /// Note a failure at `now`.
    pub(crate) fn failed(&mut self, now: Instant) {
        self.retry_at = Some(now + self.next_delay);
        self.next_delay = (self.next_delay * 2).min(MAX);
    }

    /// Note a success: the next failure waits [`FIRST`] again.
    pub(crate) fn succeeded(&mut self) {
        *self = Backoff::default();
    }

    /// How long until the work may be tried again; `None` when it may be now.
    pub(crate) fn remaining(&self, now: Instant) -> Option<Duration> {
        self.retry_at
            .and_then(|at| at.checked_duration_since(now))
            .filter(|d| !d.is_zero())
    }

    /// Whether the work may be tried at `now`.
    pub(crate) fn ready(&self, now: Instant) -> bool {
        self.remaining(now).is_none()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_double_up_to_the_cap_and_a_success_starts_over() {
        let t0 = Instant::now();
        let mut b = Backoff::default();
        assert!(b.ready(t0), "nothing has failed yet");
        let mut now = t0;
        let mut delays = Vec::new();
        for _ in 0..9 {
            b.failed(now);
            let d = b.remaining(now).expect("waiting after a failure");
            assert!(!b.ready(now + d - Duration::from_millis(1)));
            assert!(b.ready(now + d));
            delays.push(d.as_secs());
            now += d;
        }
        assert_eq!(delays, [1, 2, 4, 8, 16, 32, 60, 60, 60]);
        b.succeeded();
        assert!(b.ready(now));
        b.failed(now);
        assert_eq!(b.remaining(now), Some(FIRST));
    }
}
