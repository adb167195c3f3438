//! The backend contract of walab, and its backends.
//!
//! The HTTP server knows a store only through [`KvBackend`]; this crate is the one place
//! that knows the concrete engines. Nothing here speaks HTTP.
//!
//! # Layout
//! - [`backend`]: the [`KvBackend`] trait and the plain types it speaks in.
//! - [`catalog`]: the backends, one row each ([`CATALOG`]); [`open_backend`].
//! - [`stats`]: what backends report besides data, as typed structs.
//! - [`error`]: [`StoreError`], what a backend can answer instead of a result.
//! - [`memory`]: a map in memory; a crash loses everything.
//! - [`sled_backend`]: sled 0.34, durable after its flush (per write with `SledFlush::Always`).
//! - [`wal`]: an adapter from the `walab-wal` engine to [`KvBackend`].
//! - [`etcd`]: an etcd cluster through its JSON gateway, and the local cluster the lab runs.
//! - [`open`]: [`BackendConfig`], every backend's settings.
//!
//! # Adding a backend
//! Write its file: a type that implements [`KvBackend`] (only reads and writes are
//! required) and an `open(&BackendConfig)` function. Add its row to [`CATALOG`]: name, lab
//! port, one line about it, what it supports. The server, the lab, the page, metrics,
//! torture and the conformance suite (`tests/conformance.rs`) take it from there.
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
pub mod open;
pub mod sled_backend;
pub mod stats;
pub mod wal;

pub use backend::{
    Calls, CrashMode, Durability, KvBackend, ReadPath, Value, WalEntry, WalListing, Write,
    WriteAck, WriteDone, WritePath,
};
pub use catalog::{BackendInfo, BackendKind, CATALOG, InLab, Supports, open_backend};
pub use error::StoreError;
pub use open::{BackendConfig, SledFlush};
pub use stats::{CheckpointOutcome, CrashReport, Details, StoreStats};
