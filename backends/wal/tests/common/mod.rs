//! Helpers shared by the engine's tests.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

use walab_wal::fs::SimFs;
use walab_wal::{Config, Engine, SyncPolicy};

/// The data directory used on the simulated file system.
pub fn dir() -> PathBuf {
    PathBuf::from("/data")
}

/// A config on the simulated directory.
pub fn config(sync: SyncPolicy) -> Config {
    Config::new(dir()).sync(sync).checkpoint_threshold(0)
}

/// Open an engine on `fs`.
pub fn open(fs: &SimFs, config: Config) -> walab_wal::Result<Engine> {
    Engine::open_with_fs(config, Arc::new(fs.clone()))
}

/// The engine's state as a plain map of strings.
pub fn contents(e: &Engine) -> BTreeMap<String, String> {
    e.state()
        .iter()
        .map(|(k, v)| {
            (
                String::from_utf8_lossy(k).into_owned(),
                String::from_utf8_lossy(v).into_owned(),
            )
        })
        .collect()
}

/// What a process crash leaves: everything written, synced or not.
pub fn process_crash(fs: &SimFs, e: Engine) -> SimFs {
    let after = fs.after_power_loss(true);
    // Dropping the engine would sync; a crash does not, so the image is taken first and
    // the old engine is leaked.
    std::mem::forget(e);
    after
}

/// What a power loss leaves, chosen by the file system's seed.
pub fn power_loss(fs: &SimFs, e: Engine) -> SimFs {
    let after = fs.after_power_loss(false);
    std::mem::forget(e);
    after
}
