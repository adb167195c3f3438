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
//! - a write timeout ([`Limits::write_timeout`]): a client that stops reading its answer
//!   for that long has its connection closed, and the answer's memory freed ([`WriteDeadline`]);
//!   hyper has none of its own;
//! - a semaphore of [`Limits::max_connections`] permits, taken before `accept`: over the
//!   cap, new connections wait in the kernel's backlog instead of costing memory here;
//! - `TCP_NODELAY`, as every HTTP server sets it: an answer goes out when it is written.
//!
//! The same loop serves the lab's private health socket (`WALAB_HEALTH_SOCKET`, a Unix
//! socket with a cap of its own), so the lab's probe never waits behind the public's
//! connections: a stranger who fills `MAX_CONNECTIONS` cannot make the lab think a store
//! is dead and kill it.
//!
//! Body and request timeouts are tower-http layers on the router ([`crate::server::routes::app`]),
//! so they answer with a status instead of dropping the connection.
//!
//! On shutdown the listener closes, open connections finish their request in flight
//! (hyper's graceful shutdown) and are dropped after a grace period.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::Router;
use axum::serve::Listener;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::sync::Semaphore;
use tokio::time::Sleep;
use tower::ServiceExt;

use crate::server::config::Limits;

/// hyper's read buffer per connection: the largest request head hyper will read at all.
/// The server's own limit ([`Limits::max_header_bytes`], answered 431 with a JSON body)
/// sits below it; past this hyper answers a bare 431 itself.
pub const HYPER_MAX_HEADER_BYTES: usize = 256 * 1024;
/// How long open connections get to finish once shutdown starts.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

/// Serve `router` on `listener` until `shutdown` resolves. A TCP listener should set
/// `TCP_NODELAY` on what it accepts (see [`tcp`]).
pub async fn serve<L: Listener>(
    mut listener: L,
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
        // The listener retries failed accepts itself, pausing when the process is out of
        // file descriptors or memory rather than spinning.
        let (stream, _peer) = tokio::select! {
            accepted = listener.accept() => accepted,
            () = &mut shutdown => break,
        };
        let service = TowerToHyperService::new(
            router
                .clone()
                .map_request(|req: hyper::Request<Incoming>| req.map(axum::body::Body::new)),
        );
        let stream = WriteDeadline::new(stream, limits.write_timeout);
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

/// A TCP listener whose connections get `TCP_NODELAY`, as every HTTP server sets it: an
/// answer goes out when it is written. Best effort: a socket that refuses the option still
/// works, only slower.
pub fn tcp(listener: tokio::net::TcpListener) -> impl Listener {
    use axum::serve::ListenerExt;
    listener.tap_io(|stream| {
        let _ = stream.set_nodelay(true);
    })
}

/// A connection whose writes must make progress: a write (or flush) that stays pending for
/// `timeout` fails with `TimedOut`, and hyper closes the connection, dropping the answer it
/// held. The timer is made only when a write has to wait (the socket's buffer is full), so
/// answers that go straight out cost nothing.
#[derive(Debug)]
struct WriteDeadline<S> {
    io: S,
    timeout: Duration,
    stalled: Option<Pin<Box<Sleep>>>,
}

impl<S> WriteDeadline<S> {
    fn new(io: S, timeout: Duration) -> Self {
        WriteDeadline {
            io,
            timeout,
            stalled: None,
        }
    }

    /// Pass `poll` on, clearing the timer on progress and starting it on a wait.
    fn watch<T>(&mut self, cx: &mut Context<'_>, poll: Poll<io::Result<T>>) -> Poll<io::Result<T>> {
        if poll.is_ready() {
            self.stalled = None;
            return poll;
        }
        let timeout = self.timeout;
        let timer = self
            .stalled
            .get_or_insert_with(|| Box::pin(tokio::time::sleep(timeout)));
        match timer.as_mut().poll(cx) {
            Poll::Ready(()) => Poll::Ready(Err(io::Error::new(
                io::ErrorKind::TimedOut,
                format!(
                    "the client read none of its answer for {} ms (WRITE_TIMEOUT_MS)",
                    timeout.as_millis()
                ),
            ))),
            Poll::Pending => Poll::Pending,
        }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for WriteDeadline<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_read(cx, buf)
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for WriteDeadline<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let poll = Pin::new(&mut self.io).poll_write(cx, buf);
        self.watch(cx, poll)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let poll = Pin::new(&mut self.io).poll_write_vectored(cx, bufs);
        self.watch(cx, poll)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let poll = Pin::new(&mut self.io).poll_flush(cx);
        self.watch(cx, poll)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let poll = Pin::new(&mut self.io).poll_shutdown(cx);
        self.watch(cx, poll)
    }
}
