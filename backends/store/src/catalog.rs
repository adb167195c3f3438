//! The set of backends: one row each, and the only list of them in walab.
//!
//! Everything that used to ask "is this the WAL?" asks the row instead: its name (in
//! `KV_BACKEND`, metrics labels, `/api/<name>` on the lab's page), the lab's port for it,
//! the one line the lab prints about it, what it supports beyond reads and writes, and how
//! to open it. Adding a backend is its file (an impl of [`KvBackend`], its settings, its
//! `open` and its `ROW`) plus one line in [`CATALOG`].

use std::str::FromStr;
use std::sync::Arc;

use clap::{ArgMatches, Args, Command, FromArgMatches};

use crate::backend::KvBackend;
use crate::row::{BackendConfig, BackendInfo, BackendKind, BackendSettings};
use crate::{StoreError, etcd, memory, redb_backend, sled_backend, wal};

/// Every backend, in the lab's port order: each module's own row.
pub static CATALOG: [&BackendInfo; 5] = [
    &wal::ROW,
    &memory::ROW,
    &sled_backend::ROW,
    &etcd::ROW,
    &redb_backend::ROW,
];

impl BackendKind {
    /// Every backend, in the lab's port order.
    pub fn all() -> impl Iterator<Item = BackendKind> {
        CATALOG.iter().copied().map(BackendKind)
    }

    /// The backend called `name`.
    ///
    /// # Panics
    /// When there is none: for names written in code (tests, defaults). Parse what a user
    /// typed with [`str::parse`] instead.
    pub fn named(name: &str) -> BackendKind {
        name.parse()
            .unwrap_or_else(|e: String| panic!("{e} (BackendKind::named)"))
    }
}

impl FromStr for BackendKind {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let wanted = s.trim().to_ascii_lowercase();
        BackendKind::all()
            .find(|k| k.as_str() == wanted)
            .ok_or_else(|| {
                let names: Vec<&str> = BackendKind::all().map(BackendKind::as_str).collect();
                format!(
                    "unknown backend '{wanted}': expected one of {}",
                    names.join(", ")
                )
            })
    }
}

/// The settings groups of every row, flattened into `walab serve` (`#[command(flatten)]`).
impl Args for BackendSettings {
    fn augment_args(cmd: Command) -> Command {
        CATALOG.iter().fold(cmd, |cmd, row| (row.settings)(cmd))
    }

    fn augment_args_for_update(cmd: Command) -> Command {
        Self::augment_args(cmd)
    }
}

impl FromArgMatches for BackendSettings {
    fn from_arg_matches(matches: &ArgMatches) -> Result<Self, clap::Error> {
        Ok(BackendSettings(matches.clone()))
    }

    fn update_from_arg_matches(&mut self, matches: &ArgMatches) -> Result<(), clap::Error> {
        self.0 = matches.clone();
        Ok(())
    }
}

impl BackendSettings {
    /// Every backend's defaults (no flag, no environment): for tests and tools that open a
    /// backend without a command line.
    pub fn defaults() -> BackendSettings {
        BackendSettings::with(&[])
    }

    /// The defaults, with `flags` (`["--fsync=never"]`) on top.
    ///
    /// # Panics
    /// When a flag is not one of the catalog's settings, or its value is refused: for flags
    /// written in code.
    pub fn with(flags: &[&str]) -> BackendSettings {
        let cmd = BackendSettings::augment_args(Command::new("settings")).mut_args(|a| a.env(None));
        let matches = cmd
            .try_get_matches_from(std::iter::once("settings").chain(flags.iter().copied()))
            .unwrap_or_else(|e| panic!("backend settings {flags:?}: {e}"));
        BackendSettings(matches)
    }
}

impl BackendConfig {
    /// `kind` in `data_dir` with every setting at its default.
    pub fn new(kind: BackendKind, data_dir: impl Into<std::path::PathBuf>) -> BackendConfig {
        BackendConfig {
            kind,
            data_dir: data_dir.into(),
            settings: BackendSettings::defaults(),
            observer: None,
        }
    }
}

/// Open the backend `config` names.
pub fn open_backend(config: &BackendConfig) -> Result<Arc<dyn KvBackend>, StoreError> {
    (config.kind.info().open)(config)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::CrashMode;

    #[test]
    fn names_ports_and_flags_are_unique() {
        let mut names: Vec<_> = CATALOG.iter().map(|b| b.name).collect();
        let mut ports: Vec<_> = CATALOG.iter().map(|b| b.lab_port).collect();
        names.sort_unstable();
        names.dedup();
        ports.sort_unstable();
        ports.dedup();
        assert_eq!(names.len(), CATALOG.len());
        assert_eq!(ports.len(), CATALOG.len());
        for b in CATALOG {
            assert!(
                b.supports.crash_modes.contains(&CrashMode::Process),
                "{}: every server can be killed",
                b.name
            );
        }
    }

    #[test]
    fn names_parse_back_and_unknown_ones_list_the_choices() {
        for kind in BackendKind::all() {
            assert_eq!(kind.as_str().parse::<BackendKind>(), Ok(kind));
            assert_eq!(
                kind.as_str().to_uppercase().parse::<BackendKind>(),
                Ok(kind)
            );
        }
        let err = "rocks".parse::<BackendKind>().unwrap_err();
        assert_eq!(
            err,
            "unknown backend 'rocks': expected one of wal, memory, sled, etcd, redb"
        );
    }

    #[test]
    fn every_setting_has_a_default() {
        // Opening a backend without a command line must work for every row.
        let settings = BackendSettings::defaults();
        assert!(settings.0.ids().count() > 0);
    }

    #[test]
    fn crash_modes_read_as_a_sentence() {
        assert_eq!(
            BackendKind::named("wal").crash_modes_text(),
            "mode=process or power-loss"
        );
        assert_eq!(
            BackendKind::named("memory").crash_modes_text(),
            "mode=process only"
        );
        assert_eq!(
            BackendKind::named("etcd").crash_modes_text(),
            "mode=process, leader or all-members"
        );
    }
}
