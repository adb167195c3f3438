//! The facade: [`Engine`].
#![allow(missing_docs, clippy::todo, unused_variables)]

use std::sync::Arc;

use crate::{
    CheckpointReport, Commit, Config, LogEntry, PowerLossReport, RecoveryReport, Result, Stats,
};

/// Shared bytes: keys and values in the state.
pub type Bytes = Arc<[u8]>;
/// The state: an immutable ordered map, so a checkpoint can take it in O(1).
pub type State = imbl::OrdMap<Bytes, Bytes>;

/// The WAL engine.
#[derive(Debug)]
pub struct Engine {
    config: Config,
}

impl Engine {
    pub fn open(config: Config) -> Result<Engine> {
        todo!()
    }
    pub fn set(&self, key: &[u8], value: &[u8]) -> Result<Commit> {
        todo!()
    }
    pub fn delete(&self, key: &[u8]) -> Result<Option<Commit>> {
        todo!()
    }
    pub fn clear(&self) -> Result<Commit> {
        todo!()
    }
    pub fn get(&self, key: &[u8]) -> Option<Bytes> {
        todo!()
    }
    pub fn state(&self) -> State {
        todo!()
    }
    pub fn len(&self) -> usize {
        todo!()
    }
    pub fn is_empty(&self) -> bool {
        todo!()
    }
    pub fn checkpoint(&self) -> Result<CheckpointReport> {
        todo!()
    }
    pub fn log_entries(&self, limit: usize) -> Result<(Vec<LogEntry>, u64)> {
        todo!()
    }
    pub fn stats(&self) -> Stats {
        todo!()
    }
    pub fn recovery(&self) -> &RecoveryReport {
        todo!()
    }
    pub fn simulate_power_loss(&self, torn_fragment: bool) -> Result<PowerLossReport> {
        todo!()
    }
    pub fn config(&self) -> &Config {
        &self.config
    }
}
