//! walab: a lab that shows what a write-ahead log buys you.
//!
//! One binary, four programs, each a module here:
//! - [`server`]: `walab serve`, the HTTP key-value API over one backend of the store's
//!   catalog (walab's own write-ahead log, a map in memory, sled, etcd, redb).
//! - [`lab`]: `walab lab`, the supervisor of the servers side by side (and of etcd's
//!   members), restarting whichever one `POST /admin/crash` kills, and its web page.
//! - [`torture`]: `walab torture`, crash cycles under concurrent writers, checked against a
//!   model.
//! - [`inspect`]: `walab inspect`, an offline look at a WAL directory.
//!
//! Beside them, what more than one of them uses: [`client`] (the `walab-client` crate: the
//! one HTTP client, every request bounded in time and size), [`harness`] (real servers on
//! free ports and a load against them, for torture and the experiments), [`shutdown`]
//! (Ctrl-C / SIGTERM) and [`sys`] (the few libc calls: kill, parent-death signal, each
//! justified).

pub mod experiment;
pub mod harness;
pub mod inspect;
pub mod lab;
pub mod server;
pub mod shutdown;
pub mod sys;
pub mod torture;

pub use server::{ApiError, AppState, Config, ConfigError, RunError, app, run};
pub use walab_client as client;
