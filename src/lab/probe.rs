//! Asking a child whether it is up: its `/health`, on its private health socket when it has
//! one (a full request queue on its public port does not hide it), else on its port. Each
//! question is one short-lived connection over [`crate::client`], bounded in time and size,
//! so a child that hangs or is gone costs the lab at most the time it allows.

use std::path::Path;
use std::time::{Duration, Instant};

use crate::client::{Answer, Client, ClientError};

/// How long one `/health` of a running child may take before it counts as bad.
pub const HEALTH_TIMEOUT: Duration = Duration::from_secs(2);
/// How long one `/health` may take while waiting for a starting child: it is asked again.
const STARTING_HEALTH_TIMEOUT: Duration = Duration::from_secs(1);
/// The largest `/health` answer read (a few hundred bytes in practice).
const HEALTH_MAX_BYTES: usize = 64 * 1024;
/// How often an unhealthy server is asked again.
const POLL_EVERY: Duration = Duration::from_millis(25);

/// The client that asks `/health` on the Unix socket at `socket` if there is one, else on
/// `host:port`, each answer due within `limit`. Made once per child and asked again and
/// again.
pub fn health_client(socket: Option<&Path>, host: &str, port: u16, limit: Duration) -> Client {
    let client = match socket {
        Some(socket) => Client::unix(socket),
        None => Client::tcp(host, port),
    };
    client
        .one_connection_per_request()
        .limit(limit)
        .max_bytes(HEALTH_MAX_BYTES)
}

/// `GET /health` through a [`health_client`].
pub async fn health(client: &Client) -> Result<Answer, ClientError> {
    client.get("/health").await
}

/// Poll `host:port` until `/health` answers 200; returns how long that took, or `None` after
/// `limit`.
pub async fn wait_healthy(host: &str, port: u16, limit: Duration) -> Option<Duration> {
    let client = health_client(None, host, port, STARTING_HEALTH_TIMEOUT);
    let started = Instant::now();
    while started.elapsed() < limit {
        if matches!(health(&client).await, Ok(a) if a.status == 200) {
            return Some(started.elapsed());
        }
        tokio::time::sleep(POLL_EVERY).await;
    }
    None
}
