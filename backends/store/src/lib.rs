//! The backend contract of walab, and its three backends.
//!
//! The HTTP server knows a store only through [`KvBackend`]; this crate is the one place
//! that knows the concrete engines. Nothing here speaks HTTP.
//!
//! # Layout
//! - [`backend`]: the [`KvBackend`] trait and the plain types it speaks in.
//! - [`error`]: [`StoreError`], what a backend can answer instead of a result.
//! - [`memory`]: a map in memory; a crash loses everything.
//! - [`sled_backend`]: sled 0.34, durable after its flush (per write with `SledFlush::Always`).
//! - [`wal`]: an adapter from the `walab-wal` engine to [`KvBackend`].
//! - [`open`]: [`open_backend`], the one place a backend kind becomes a backend.
//!
//! # Guarantees every backend keeps
//! - A write call returns only after the backend has done what its [`Durability`] promises.
//! - Reads never see a write before that point (memory never gets ahead of disk).
//! - A failed write leaves the visible state unchanged.

pub mod backend;
pub mod error;
pub mod memory;
pub mod open;
pub mod sled_backend;
pub mod wal;

pub use backend::{
    BackendKind, Calls, CheckpointOutcome, CrashMode, Durability, KvBackend, ReadPath, Stats,
    Value, WalEntry, WalListing, Write, WriteAck, WriteDone, WritePath,
};
pub use error::StoreError;
pub use open::{BackendConfig, SledFlush, open_backend};
