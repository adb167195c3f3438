//! The set of backends: one row each, and the only list of them in walab.
//!
//! Everything that used to ask "is this the WAL?" asks the row instead: its name (in
//! `KV_BACKEND`, metrics labels, `/api/<name>` on the lab's page), the lab's port for it,
//! the one line the lab prints about it, what it supports beyond reads and writes, and how
//! to open it. Adding a backend is its file (an impl of [`KvBackend`] and an `open`
//! function) plus one row in [`CATALOG`].

use std::fmt;
use std::str::FromStr;
use std::sync::Arc;

use serde::Serialize;

use crate::backend::{CrashMode, KvBackend};
use crate::{BackendConfig, StoreError};

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
    /// Only with this flag (`--etcd`): the backend needs something the lab must start too.
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
    /// Open it (for the WAL this runs recovery).
    pub open: fn(&BackendConfig) -> Result<Arc<dyn KvBackend>, StoreError>,
}

/// Every backend, in the lab's port order.
pub static CATALOG: [BackendInfo; 4] = [
    BackendInfo {
        name: "wal",
        lab_port: 8001,
        title: "write-ahead log: acknowledged writes survive a crash",
        supports: Supports {
            log: true,
            checkpoint: true,
            crash_modes: &[CrashMode::Process, CrashMode::PowerLoss],
        },
        in_lab: InLab::Always,
        open: crate::wal::open,
    },
    BackendInfo {
        name: "memory",
        lab_port: 8002,
        title: "memory only (no WAL): a crash loses everything",
        supports: Supports {
            log: false,
            checkpoint: false,
            crash_modes: &[CrashMode::Process],
        },
        in_lab: InLab::Always,
        open: crate::memory::open,
    },
    BackendInfo {
        name: "sled",
        lab_port: 8003,
        title: "sled 0.34: durable once sled flushes (SLED_FLUSH=always: every write)",
        supports: Supports {
            log: false,
            checkpoint: true,
            crash_modes: &[CrashMode::Process],
        },
        in_lab: InLab::Always,
        open: crate::sled_backend::open,
    },
    BackendInfo {
        name: "etcd",
        lab_port: 8004,
        title: "etcd, 3 members: acknowledged writes survive the loss of any one",
        supports: Supports {
            log: true,
            checkpoint: true,
            crash_modes: &[CrashMode::Process, CrashMode::Leader, CrashMode::AllMembers],
        },
        in_lab: InLab::WithFlag("etcd"),
        open: crate::etcd::open,
    },
];

/// A backend: a handle on its row of [`CATALOG`]. Cheap to copy; equal when the rows are.
#[derive(Clone, Copy)]
pub struct BackendKind(&'static BackendInfo);

impl BackendKind {
    /// Every backend, in the lab's port order.
    pub fn all() -> impl Iterator<Item = BackendKind> {
        CATALOG.iter().map(BackendKind)
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

/// Open the backend `config` names.
pub fn open_backend(config: &BackendConfig) -> Result<Arc<dyn KvBackend>, StoreError> {
    (config.kind.0.open)(config)
}

#[cfg(test)]
mod tests {
    use super::*;

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
        for b in &CATALOG {
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
            "unknown backend 'rocks': expected one of wal, memory, sled, etcd"
        );
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
