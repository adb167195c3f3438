//! Serving a router on a listener, with every connection bounded in time and number.
//!
//! `axum::serve` sets no timeouts: a client that sends half a request line, or opens a
//! keep-alive connection and goes quiet, holds its socket, task and buffers for ever, and a
//! few hundred of them take the server down. So the lab drives hyper itself, the way
//! `axum::serve` does underneath, with what hyper offers for exactly this:
//!
//! - hyper's `header_read_timeout` (with a tokio timer): the request line and headers must
//!   arrive within [`Limits::header_timeout`], and the same timer closes a keep-alive
//!   connection that stays idle that long between requests;
//! - hyper's `max_buf_size`, so a connection's read buffer stays small;
//! - a semaphore of [`Limits::max_connections`] permits, taken before `accept`: over the
//!   cap, new connections wait in the kernel's backlog instead of costing memory here;
//! - `TCP_NODELAY`, as every HTTP server sets it: an answer goes out when it is written.
//!
//! Body and request timeouts are tower-http layers on the router ([`crate::routes::app`]),
//! so they answer with a status instead of dropping the connection.
//!
//! On shutdown the listener closes, open connections finish their request in flight
//! (hyper's graceful shutdown) and are dropped after a grace period.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tower::ServiceExt;

use crate::config::Limits;

/// hyper's read buffer per connection: the largest request head hyper will read at all.
/// The server's own limit ([`Limits::max_header_bytes`], answered 431 with a JSON body)
/// sits below it; past this hyper answers a bare 431 itself.
pub const HYPER_MAX_HEADER_BYTES: usize = 256 * 1024;
/// How long open connections get to finish once shutdown starts.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);
/// How long to wait after `accept` fails for lack of resources (EMFILE, ENFILE, ENOMEM)
/// before trying again: retrying at once would spin while nothing has been freed.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);

/// Serve `router` on `listener` until `shutdown` resolves.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    limits: Limits,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(limits.header_timeout)
        .max_buf_size(HYPER_MAX_HEADER_BYTES)
        .max_header_size(HYPER_MAX_HEADER_BYTES);
    let http = Arc::new(http);
    let permits = Arc::new(Semaphore::new(limits.max_connections));
    let graceful = GracefulShutdown::new();
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        // Take a permit first: over the cap, connections wait in the backlog, unaccepted.
        let permit = tokio::select! {
            permit = permits.clone().acquire_owned() => match permit {
                Ok(permit) => permit,
                // The semaphore is never closed; if it were, serving is over.
                Err(_) => break,
            },
            () = &mut shutdown => break,
        };
        let (stream, _peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    if is_out_of_resources(&e) {
                        tracing::warn!(error = %e, "cannot accept a connection; retrying shortly");
                        tokio::time::sleep(ACCEPT_BACKOFF).await;
                    }
                    // Anything else (a peer that reset before we accepted) concerns that
                    // one connection only.
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        // Best effort: a socket that refuses the option still works, only slower.
        let _ = stream.set_nodelay(true);
        let service = TowerToHyperService::new(
            router
                .clone()
                .map_request(|req: hyper::Request<Incoming>| req.map(axum::body::Body::new)),
        );
        let connection = graceful.watch(http.serve_connection(TokioIo::new(stream), service));
        tokio::spawn(async move {
            // Errors here are the client's (reset, timed out, malformed): hyper has already
            // answered what could be answered, and nothing else is at stake.
            if let Err(e) = connection.await {
                tracing::debug!(error = %e, "connection ended with an error");
            }
            drop(permit);
        });
    }
    drop(listener);
    if tokio::time::timeout(SHUTDOWN_GRACE, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!(
            "open connections did not finish within {} s of shutdown; closing them",
            SHUTDOWN_GRACE.as_secs()
        );
    }
    Ok(())
}

/// Whether `accept` failed because the process or system is out of something (file
/// descriptors, memory), rather than because of one connection.
fn is_out_of_resources(e: &std::io::Error) -> bool {
    matches!(
        e.raw_os_error(),
        Some(libc::EMFILE | libc::ENFILE | libc::ENOBUFS | libc::ENOMEM)
    )
}
