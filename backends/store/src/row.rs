//! One backend as the catalog sees it: its row ([`BackendInfo`]), the handle the rest of
//! walab passes around ([`BackendKind`]), and what opening it takes ([`BackendConfig`]).
//!
//! A backend's module owns its row (a `pub static ROW`), its settings (a clap `Args` group,
//! named in the row) and its `open`; [`crate::catalog`] only lists the rows. Nothing here
//! names a backend, so every backend module can depend on this file and the catalog on
//! them, without a circle.

use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;

use clap::{ArgMatches, FromArgMatches};
use serde::Serialize;

use crate::backend::{CrashMode, KvBackend};
use crate::error::StoreError;

/// What a backend can do beyond reads and writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Supports {
    /// It keeps a log that `GET /admin/wal` can show (the runbook's `wal_enabled`).
    pub log: bool,
    /// `POST /admin/checkpoint` does something (what, the backend says in its answer).
    pub checkpoint: bool,
    /// The `?mode=` values `POST /admin/crash` accepts.
    pub crash_modes: &'static [CrashMode],
}

/// When `walab lab` runs a backend.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InLab {
    /// Always.
    Always,
    /// Only when asked for, by `--backends` or by this flag (`--etcd`): the backend needs
    /// something the lab must start too, or is not part of the seed's demo.
    WithFlag(&'static str),
}

/// One row of the catalog.
#[derive(Debug)]
pub struct BackendInfo {
    /// Its name: `KV_BACKEND=<name>`, the `backend` label, `/api/<name>/` on the page.
    pub name: &'static str,
    /// Its port in the lab (and in Compose).
    pub lab_port: u16,
    /// One line saying what it is and what an acknowledged write survives there.
    pub title: &'static str,
    /// What it can do beyond reads and writes.
    pub supports: Supports,
    /// When the lab runs it.
    pub in_lab: InLab,
    /// It is built on walab's WAL engine and tells [`BackendConfig::observer`] what the
    /// engine does (the server's `walab_wal_*` metrics and the engine's trace spans).
    pub wal_engine: bool,
    /// Its settings: adds its clap `Args` group to `walab serve` (`<Settings as
    /// clap::Args>::augment_args`).
    pub settings: fn(clap::Command) -> clap::Command,
    /// Open it (for the WAL this runs recovery).
    pub open: fn(&BackendConfig) -> Result<Arc<dyn KvBackend>, StoreError>,
}

/// The `settings` of a row whose backend has none.
pub fn no_settings(cmd: clap::Command) -> clap::Command {
    cmd
}

/// A backend: a handle on its row of the catalog. Cheap to copy; equal when the rows are.
#[derive(Clone, Copy)]
pub struct BackendKind(pub(crate) &'static BackendInfo);

impl BackendKind {
    /// Its row.
    pub fn info(self) -> &'static BackendInfo {
        self.0
    }

    /// The name used in `KV_BACKEND`, metrics labels and JSON.
    pub fn as_str(self) -> &'static str {
        self.0.name
    }

    /// What it can do beyond reads and writes.
    pub fn supports(self) -> Supports {
        self.0.supports
    }

    /// Whether `POST /admin/crash?mode=<mode>` works here.
    pub fn can_crash(self, mode: CrashMode) -> bool {
        self.0.supports.crash_modes.contains(&mode)
    }

    /// `process or power-loss`: the crash modes, for messages.
    pub fn crash_modes_text(self) -> String {
        let names: Vec<&str> = self
            .0
            .supports
            .crash_modes
            .iter()
            .map(|m| m.as_str())
            .collect();
        match names.split_last() {
            Some((last, [])) => format!("mode={last} only"),
            Some((last, rest)) => format!("mode={} or {last}", rest.join(", ")),
            None => "no mode".into(),
        }
    }
}

impl PartialEq for BackendKind {
    fn eq(&self, other: &Self) -> bool {
        self.0.name == other.0.name
    }
}

impl Eq for BackendKind {}

impl std::hash::Hash for BackendKind {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.0.name.hash(state);
    }
}

impl fmt::Debug for BackendKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.0.name)
    }
}

impl fmt::Display for BackendKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.0.name)
    }
}

impl Serialize for BackendKind {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.0.name)
    }
}

/// Every backend's settings as `walab serve` parsed them. Each backend reads its own group
/// with [`BackendSettings::get`]; the server neither knows nor relays them. (Its
/// `clap::Args` impl, which gathers the groups of every row, is in [`crate::catalog`].)
#[derive(Debug, Clone)]
pub struct BackendSettings(pub(crate) ArgMatches);

impl BackendSettings {
    /// One backend's settings group.
    ///
    /// # Errors
    /// When these matches were not parsed by a command that has the group.
    pub fn get<T: FromArgMatches>(&self) -> Result<T, StoreError> {
        T::from_arg_matches(&self.0).map_err(|e| StoreError::Invalid(e.to_string()))
    }
}

/// Everything needed to open a backend.
#[derive(Clone)]
pub struct BackendConfig {
    /// Which engine.
    pub kind: BackendKind,
    /// Where the engine keeps its files (unused by backends that keep none here).
    pub data_dir: PathBuf,
    /// Every backend's settings; the one opened reads its own.
    pub settings: BackendSettings,
    /// Told what the log engine does (writes, syncs, checkpoints, recovery), for backends
    /// built on `walab-wal`: the server's WAL metrics and traces.
    pub observer: Option<Arc<dyn walab_wal::Observer>>,
}

impl fmt::Debug for BackendConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BackendConfig")
            .field("kind", &self.kind)
            .field("data_dir", &self.data_dir)
            .field("settings", &self.settings)
            .field("observer", &self.observer.is_some())
            .finish()
    }
}
