//! The one flag that says the engine refuses writes, and why.
//!
//! Set by the first failed write or sync of the log, or by a simulated power loss; never
//! cleared. What is on disk is unknown until recovery reads it again, and a failed fsync
//! must never be retried as if it could make the data safe, so from then on the log refuses
//! every write, sync and roll-over, and the engine every new write. One `Arc<Poison>` is
//! shared by the [`crate::log::Log`] (which sets it) and everything that asks, so there is
//! no second copy to fall out of step. Reading it takes no lock.

use std::sync::OnceLock;

use crate::error::{Error, Result};

/// Why writes are refused, once they are.
#[derive(Debug, Default)]
pub(crate) struct Poison(OnceLock<String>);

impl Poison {
    /// Refuse writes from now on; the first cause is the one kept.
    pub fn set(&self, cause: impl Into<String>) {
        let _ = self.0.set(cause.into());
    }

    /// The cause, once set.
    pub fn cause(&self) -> Option<&str> {
        self.0.get().map(String::as_str)
    }

    /// Whether writes are refused.
    pub fn is_set(&self) -> bool {
        self.0.get().is_some()
    }

    /// `Err(Poisoned)` once set.
    pub fn check(&self) -> Result<()> {
        match self.cause() {
            Some(cause) => Err(Error::Poisoned {
                cause: cause.to_owned(),
            }),
            None => Ok(()),
        }
    }
}
