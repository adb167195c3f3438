//! etcd's client endpoints behind one failover, over the lab's HTTP client
//! ([`walab_client::Client`], one per endpoint).
//!
//! Failover: a request goes to the endpoint that answered last. When that one cannot be
//! reached (nothing listens: a member that was just killed), the next is tried. A request
//! whose connection closed before an answer may have reached the member: it is asked again
//! of another member only when it changes nothing ([`Repeat::Safe`]). A change is never
//! sent twice: a member can hold a proposal until it learns a leader, so a first copy can
//! be applied after writes acknowledged meanwhile and undo them (a delete sent twice
//! deleting the put that followed it). Torture's all-member kills found an acknowledged put
//! undone while changes were sent again. Such a write fails instead, unacknowledged; it may
//! still be applied, as any write whose answer was lost. A request with no answer in time
//! is never asked again.
//!
//! The runtime: the client is async, the backend trait synchronous. A call runs on the
//! server's runtime when the server opened the backend, on a one-thread runtime of the
//! backend's own otherwise ([`Endpoints::wait`] blocks for one). The server's writes do not
//! block a thread at all: they are queued onto the runtime ([`Endpoints::spawn`]) and
//! answered from there.

use std::future::Future;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use tokio::runtime::{Handle, RuntimeFlavor};
use walab_client::{Client, ClientError};

/// The largest answer read (a listing of every key with 1 MiB values can be large).
const MAX_ANSWER_BYTES: usize = 256 << 20;
/// How long a watch may stay silent before its first message: longer than the pause
/// between messages, since etcd reads and encodes the whole history first.
const FIRST_MESSAGE_PATIENCE: Duration = Duration::from_secs(1);

/// The runtime of the backend's own, for callers that have none: made on first use, for
/// the life of the process (never dropped, so never dropped inside another runtime).
fn own_runtime() -> &'static tokio::runtime::Runtime {
    static RUNTIME: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RUNTIME.get_or_init(|| {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("etcd-client")
            .enable_all()
            .build()
            // Fails only when the process cannot make a thread, an epoll instance or a
            // timer: out of file descriptors or threads, nothing the lab could go on without.
            .expect("the etcd client's runtime (is the process out of file descriptors?)")
    })
}

/// Where the calls run: on the runtime of the thread that opens the backend when it has a
/// multi-threaded one (the server opens it from its blocking pool: a queued write then runs
/// on the server's own workers, with no hop to another thread), on the backend's own
/// otherwise (torture, the tests, a lab's readiness check).
fn runtime_here() -> Handle {
    match Handle::try_current() {
        Ok(handle) if handle.runtime_flavor() == RuntimeFlavor::MultiThread => handle,
        _ => own_runtime().handle().clone(),
    }
}

/// Whether a request that may have reached a member can be asked again of another.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Repeat {
    /// It changes nothing (a range, a status): asking twice is harmless.
    Safe,
    /// It changes the store: a second copy could be applied after later writes.
    Never,
}

/// Why a request got no answer.
#[derive(Debug, thiserror::Error)]
pub enum CallError {
    /// No endpoint could be reached: nothing was sent.
    #[error("cannot reach any etcd endpoint ({0})")]
    Unreachable(String),
    /// The request may have reached etcd, but no (whole) answer came back.
    #[error("no answer from etcd at {endpoint}: {source}")]
    NoAnswer {
        /// The endpoint.
        endpoint: String,
        /// What went wrong.
        source: ClientError,
    },
    /// The watch was answered, but not with a stream of messages.
    #[error("etcd at {endpoint} answered the watch with HTTP {status} instead of a stream")]
    NotAStream {
        /// The endpoint.
        endpoint: String,
        /// The answer's status.
        status: u16,
    },
}

/// An answer: the status and the body.
#[derive(Debug)]
pub struct Answer {
    /// HTTP status.
    pub status: u16,
    /// The body, dechunked.
    pub body: Vec<u8>,
}

#[derive(Debug)]
struct Endpoint {
    /// As configured: `http://127.0.0.1:2379`.
    url: String,
    client: Client,
}

/// Connections to a cluster's client endpoints.
#[derive(Debug)]
pub struct Endpoints {
    endpoints: Vec<Endpoint>,
    /// The endpoint that answered last.
    current: AtomicUsize,
    /// Where the calls run (see [`runtime_here`]).
    runtime: Handle,
}

impl Endpoints {
    /// The endpoints at `urls` (`http://host:port`, comma-separated in `ETCD_ENDPOINTS`).
    pub fn new(urls: &[String], timeout: Duration) -> Result<Endpoints, String> {
        if urls.is_empty() {
            return Err(
                "no etcd endpoint given: set ETCD_ENDPOINTS (for example http://127.0.0.1:2379)"
                    .into(),
            );
        }
        let endpoints = urls
            .iter()
            .map(|url| endpoint(url, timeout))
            .collect::<Result<Vec<_>, String>>()?;
        Ok(Endpoints {
            endpoints,
            current: AtomicUsize::new(0),
            runtime: runtime_here(),
        })
    }

    /// Run `call` on these endpoints' runtime and wait for it. Must not be called from an
    /// async task: the server calls the backend's blocking methods from its blocking pool.
    pub fn wait<F: Future>(&self, call: F) -> F::Output {
        self.runtime.block_on(call)
    }

    /// Run `call` on these endpoints' runtime without waiting for it.
    pub fn spawn(&self, call: impl Future<Output = ()> + Send + 'static) {
        self.runtime.spawn(call);
    }

    /// Send the next requests elsewhere than `url` (a member about to be killed).
    pub fn avoid(&self, url: &str) {
        let url = url.trim_end_matches('/');
        let at = self.current.load(Ordering::Relaxed);
        if self.endpoints[at].url == url {
            self.current
                .store((at + 1) % self.endpoints.len(), Ordering::Relaxed);
        }
    }

    /// The endpoints' URLs.
    pub fn urls(&self) -> impl Iterator<Item = &str> {
        self.endpoints.iter().map(|e| e.url.as_str())
    }

    /// POST `body` to `path` on whichever endpoint answers (see the module docs), the answer
    /// due within `timeout` (or the client's own when `None`).
    pub async fn post(
        &self,
        path: &str,
        body: &[u8],
        timeout: Option<Duration>,
        repeat: Repeat,
    ) -> Result<Answer, CallError> {
        let start = self.current.load(Ordering::Relaxed);
        let mut refused = Vec::new();
        for i in 0..self.endpoints.len() {
            let at = (start + i) % self.endpoints.len();
            let endpoint = &self.endpoints[at];
            match post(&endpoint.client, path, body, timeout).await {
                Ok(answer) => {
                    // A member that answers "unavailable" (no leader yet, just restarted)
                    // is not asked first next time; the others may be fine.
                    let next = if answer.status >= 500 { at + 1 } else { at };
                    self.current
                        .store(next % self.endpoints.len(), Ordering::Relaxed);
                    return Ok(answer);
                }
                Err(e)
                    if e.not_sent()
                        || (repeat == Repeat::Safe && matches!(e, ClientError::Unanswered(_))) =>
                {
                    refused.push(format!("{}: {e}", endpoint.url));
                }
                Err(e) => {
                    self.current
                        .store((at + 1) % self.endpoints.len(), Ordering::Relaxed);
                    return Err(failed(&endpoint.url, e));
                }
            }
        }
        Err(CallError::Unreachable(refused.join("; ")))
    }

    /// POST `body` to `path` on the endpoint `url` only (a member's own status), with
    /// `timeout`.
    pub async fn post_to_url(
        &self,
        url: &str,
        path: &str,
        body: &[u8],
        timeout: Duration,
    ) -> Result<Answer, CallError> {
        let url = url.trim_end_matches('/');
        let known = self.endpoints.iter().find(|e| e.url == url);
        // A member's advertised URL that is not one of ETCD_ENDPOINTS: a client of its own.
        let other;
        let client = match known {
            Some(e) => &e.client,
            None => {
                other = endpoint(url, timeout).map_err(CallError::Unreachable)?;
                &other.client
            }
        };
        post(client, path, body, Some(timeout))
            .await
            .map_err(|e| failed(url, e))
    }

    /// POST to a streaming endpoint (`/v3/watch`) and collect its messages (one JSON
    /// document per line) until `enough` says so, the stream is quiet for `quiet`, or
    /// `deadline` passes. The connection is closed afterwards: a watch never ends by itself.
    pub async fn stream(
        &self,
        path: &str,
        body: &[u8],
        quiet: Duration,
        deadline: Duration,
        mut enough: impl FnMut(&[u8]) -> bool,
    ) -> Result<(), CallError> {
        let endpoint = &self.endpoints[self.current.load(Ordering::Relaxed)];
        // The endpoint's client has the answer's time limit for the head.
        let mut stream = endpoint
            .client
            .open("POST", path, JSON, body.to_vec())
            .await
            .map_err(|e| failed(&endpoint.url, e))?;
        if stream.status != 200 {
            return Err(CallError::NotAStream {
                endpoint: endpoint.url.clone(),
                status: stream.status,
            });
        }
        let started = Instant::now();
        // The first message may take etcd a while to assemble (a long history of large
        // values); silence ends the stream only once something has come.
        let mut patience = quiet.max(FIRST_MESSAGE_PATIENCE);
        let mut pending = Vec::new();
        while started.elapsed() < deadline {
            match stream.next(patience).await {
                Ok(Some(chunk)) => {
                    pending.extend_from_slice(&chunk);
                    patience = quiet;
                }
                Ok(None) | Err(ClientError::Timeout(_)) => return Ok(()),
                Err(e) => return Err(failed(&endpoint.url, e)),
            }
            while let Some(end) = pending.iter().position(|b| *b == b'\n') {
                let line: Vec<u8> = pending.drain(..=end).collect();
                let line = line.trim_ascii();
                if !line.is_empty() && enough(line) {
                    return Ok(());
                }
            }
        }
        Ok(())
    }
}

/// What went wrong with a request to `url`, as the caller's error.
fn failed(url: &str, e: ClientError) -> CallError {
    if e.not_sent() {
        CallError::Unreachable(format!("{url}: {e}"))
    } else {
        CallError::NoAnswer {
            endpoint: url.to_owned(),
            source: e,
        }
    }
}

/// The request's headers: every call sends JSON.
const JSON: &[(&str, &str)] = &[("content-type", "application/json")];

async fn post(
    client: &Client,
    path: &str,
    body: &[u8],
    timeout: Option<Duration>,
) -> Result<Answer, ClientError> {
    let answer = match timeout {
        Some(limit) => {
            client
                .clone()
                .limit(limit)
                .send("POST", path, JSON, body.to_vec())
                .await?
        }
        None => client.send("POST", path, JSON, body.to_vec()).await?,
    };
    Ok(Answer {
        status: answer.status,
        body: answer.body,
    })
}

fn endpoint(url: &str, timeout: Duration) -> Result<Endpoint, String> {
    let authority = url
        .trim()
        .strip_prefix("http://")
        .ok_or_else(|| {
            format!(
                "etcd endpoint '{url}' must start with http:// (the lab speaks to etcd without TLS)"
            )
        })?
        .trim_end_matches('/');
    let bad = || format!("etcd endpoint '{url}' must be http://host:port");
    let (host, port) = authority.rsplit_once(':').ok_or_else(bad)?;
    let host = host.trim_start_matches('[').trim_end_matches(']');
    let port: u16 = port.parse().map_err(|_| bad())?;
    if host.is_empty() || host.contains('/') {
        return Err(bad());
    }
    Ok(Endpoint {
        url: url.trim().trim_end_matches('/').to_owned(),
        client: Client::tcp(host, port)
            .limit(timeout)
            .max_bytes(MAX_ANSWER_BYTES),
    })
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;

    #[test]
    fn endpoints_must_be_plain_http_with_a_port() {
        let ok = Endpoints::new(
            &["http://127.0.0.1:2379/".into(), "http://[::1]:2380".into()],
            Duration::from_secs(1),
        )
        .expect("two endpoints");
        assert_eq!(
            ok.urls().collect::<Vec<_>>(),
            ["http://127.0.0.1:2379", "http://[::1]:2380"]
        );
        for bad in [
            "https://127.0.0.1:2379",
            "http://127.0.0.1",
            "http://:2379",
            "x",
        ] {
            let err = Endpoints::new(&[bad.into()], Duration::from_secs(1)).expect_err(bad);
            assert!(err.contains(bad), "{bad}: {err}");
        }
        assert!(Endpoints::new(&[], Duration::from_secs(1)).is_err());
    }

    /// A port nothing listens on.
    fn closed_port() -> u16 {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        listener.local_addr().expect("addr").port()
    }

    /// Endpoints on these ports of 127.0.0.1.
    fn on_ports(ports: &[u16]) -> Endpoints {
        let urls: Vec<String> = ports
            .iter()
            .map(|p| format!("http://127.0.0.1:{p}"))
            .collect();
        Endpoints::new(&urls, Duration::from_secs(2)).expect("endpoints")
    }

    #[test]
    fn nothing_reachable_names_every_endpoint_tried() {
        let (a, b) = (closed_port(), closed_port());
        let endpoints = on_ports(&[a, b]);
        let err = endpoints
            .wait(endpoints.post("/v3/kv/range", b"{}", None, Repeat::Safe))
            .expect_err("nobody listens");
        let text = err.to_string();
        assert!(matches!(err, CallError::Unreachable(_)), "{text}");
        assert!(
            text.contains(&a.to_string()) && text.contains(&b.to_string()),
            "{text}"
        );
    }

    #[test]
    fn a_member_that_is_down_is_passed_over_and_the_next_one_asked_first() {
        use std::io::{Read, Write};
        let live = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = live.local_addr().expect("addr").port();
        std::thread::spawn(move || {
            for conn in live.incoming().take(2) {
                let mut conn = conn.expect("accept");
                let mut buf = [0u8; 4096];
                let _ = conn.read(&mut buf);
                let _ = conn.write_all(
                    b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{}",
                );
            }
        });
        let endpoints = on_ports(&[closed_port(), port]);
        let answer = endpoints
            .wait(endpoints.post("/v3/kv/range", b"{}", None, Repeat::Safe))
            .expect("the live one");
        assert_eq!(
            (answer.status, answer.body.as_slice()),
            (200, b"{}".as_slice())
        );
        assert_eq!(endpoints.current.load(Ordering::Relaxed), 1);
        let again = endpoints
            .wait(endpoints.post("/v3/kv/range", b"{}", None, Repeat::Safe))
            .expect("again");
        assert_eq!(again.status, 200);
    }

    /// A member that reads each request and closes the connection without answering, and
    /// one that answers `{}`; returns their ports and how many requests the second got.
    fn a_member_that_hangs_up_and_one_that_answers() -> (u16, u16, Arc<AtomicUsize>) {
        use std::io::{Read, Write};
        let silent = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let live = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let ports = (
            silent.local_addr().expect("addr").port(),
            live.local_addr().expect("addr").port(),
        );
        std::thread::spawn(move || {
            for conn in silent.incoming() {
                let mut conn = conn.expect("accept");
                let mut buf = [0u8; 4096];
                let _ = conn.read(&mut buf);
            }
        });
        let asked = Arc::new(AtomicUsize::new(0));
        let counted = Arc::clone(&asked);
        std::thread::spawn(move || {
            for conn in live.incoming() {
                let mut conn = conn.expect("accept");
                let mut buf = [0u8; 4096];
                let _ = conn.read(&mut buf);
                counted.fetch_add(1, Ordering::SeqCst);
                let _ = conn.write_all(
                    b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{}",
                );
            }
        });
        (ports.0, ports.1, asked)
    }

    #[test]
    fn a_change_that_may_have_reached_a_member_is_never_sent_to_another() {
        let (silent, live, asked) = a_member_that_hangs_up_and_one_that_answers();
        let endpoints = on_ports(&[silent, live]);
        let err = endpoints
            .wait(endpoints.post("/v3/kv/put", b"{}", None, Repeat::Never))
            .expect_err("the first member hung up");
        assert!(matches!(err, CallError::NoAnswer { .. }), "{err}");
        assert_eq!(
            asked.load(Ordering::SeqCst),
            0,
            "the put went to a second member"
        );
        // A read is asked again of the next member.
        let endpoints = on_ports(&[silent, live]);
        let answer = endpoints
            .wait(endpoints.post("/v3/kv/range", b"{}", None, Repeat::Safe))
            .expect("the second member answers a read");
        assert_eq!(answer.status, 200);
        assert_eq!(asked.load(Ordering::SeqCst), 1);
    }
}
