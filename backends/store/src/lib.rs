//! The backend contract of walab, and its backends.
//!
//! The HTTP server knows a store only through [`KvBackend`]; this crate is the one place
//! that knows the concrete engines. Nothing here speaks HTTP.
//!
//! # Layout
//! - [`backend`]: the [`KvBackend`] trait and the plain types it speaks in.
//! - [`row`]: what the catalog says about one backend ([`BackendInfo`], [`BackendKind`]) and
//!   what opening one takes ([`BackendConfig`], [`BackendSettings`]).
//! - [`catalog`]: the backends, one row each ([`CATALOG`]); [`open_backend`].
//! - [`stats`]: what backends report besides data, as typed structs.
//! - [`parse`]: value parsers for settings, whose errors say what is accepted.
//! - [`error`]: [`StoreError`], what a backend can answer instead of a result.
//! - [`wal`]: an adapter from the `walab-wal` engine to [`KvBackend`].
//! - [`memory`]: a map in memory; a crash loses everything.
//! - [`sled_backend`]: sled 0.34, durable after its flush (per write with `SLED_FLUSH=always`).
//! - [`etcd`]: an etcd cluster through its JSON gateway, and the local cluster the lab runs.
//! - [`redb_backend`]: redb, an embedded ACID database, durable at commit.
//!
//! # Adding a backend
//! Write its file: a type that implements [`KvBackend`] (only reads and writes are
//! required), its settings (a clap `Args` group; none is fine), its `open`, and its `ROW`.
//! Add the row to [`CATALOG`] and the crate to `Cargo.toml`. The server, the lab, the page,
//! metrics, torture and the conformance suite (`tests/conformance.rs`) take it from there.
//!
//! # Guarantees every backend keeps
//! - A write call returns only after the backend has done what its [`Durability`] promises.
//! - Reads never see a write before that point (memory never gets ahead of disk).
//! - A failed write leaves the visible state unchanged.

pub mod backend;
pub mod catalog;
pub mod error;
pub mod etcd;
pub mod memory;
pub mod parse;
pub mod redb_backend;
pub mod row;
pub mod sled_backend;
pub mod stats;
pub mod wal;

pub use backend::{
    Calls, CrashMode, Durability, KvBackend, ReadPath, Value, WalEntry, WalListing, Write,
    WriteAck, WriteDone, WritePath,
};
pub use catalog::{CATALOG, open_backend};
pub use error::StoreError;
pub use row::{BackendConfig, BackendInfo, BackendKind, BackendSettings, InLab, Supports};
pub use stats::{CheckpointOutcome, CrashReport, LogLevels, StoreStats};
