//! A small blocking HTTP/1.1 client for etcd's JSON gateway: POST a JSON body, read a JSON
//! answer, over keep-alive connections to any of the cluster's endpoints.
//!
//! Why not a client crate: etcd's native client is gRPC, and the Rust gRPC clients build
//! their protobuf code with `protoc`, which a fresh machine does not have; the gateway is
//! etcd's documented JSON API over plain HTTP/1.1, and the backend trait is synchronous, so
//! about 500 lines over `TcpStream` do it without a second HTTP stack or runtime.
//!
//! Failover: a request goes to the endpoint that answered last. When that one cannot be
//! reached (a member that was just killed), the next is tried, but only when no byte of an
//! answer came back: no connection, or a connection closed before answering (an idle
//! kept-alive connection, or a member killed mid-request). In the last case the member may
//! have proposed the write before it died, so etcd can apply it twice: harmless for the
//! lab's writes (a put or delete repeated leaves the same state; only the revision moves),
//! and never a lost write. An answer cut short is never retried.

use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// How long to wait for a connection to a member.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(1);
/// The largest answer read (a listing of every key with 1 MiB values can be large).
const MAX_ANSWER_BYTES: usize = 256 << 20;
/// How long a watch may stay silent before its first message: longer than the pause
/// between messages, since etcd reads and encodes the whole history first.
const FIRST_MESSAGE_PATIENCE: Duration = Duration::from_secs(1);
/// Idle connections kept per endpoint.
const MAX_IDLE: usize = 64;

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
        source: io::Error,
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
    /// `127.0.0.1:2379`, for `Host` and connecting.
    authority: String,
    idle: Mutex<Vec<BufReader<TcpStream>>>,
}

/// Connections to a cluster's client endpoints.
#[derive(Debug)]
pub struct Client {
    endpoints: Vec<Endpoint>,
    /// The endpoint that answered last.
    current: AtomicUsize,
    /// How long one answer may take.
    timeout: Duration,
}

impl Client {
    /// A client for `urls` (`http://host:port`, comma-separated in `ETCD_ENDPOINTS`).
    pub fn new(urls: &[String], timeout: Duration) -> Result<Client, String> {
        if urls.is_empty() {
            return Err(
                "no etcd endpoint given: set ETCD_ENDPOINTS (for example http://127.0.0.1:2379)"
                    .into(),
            );
        }
        let endpoints = urls
            .iter()
            .map(|url| endpoint(url))
            .collect::<Result<Vec<_>, String>>()?;
        Ok(Client {
            endpoints,
            current: AtomicUsize::new(0),
            timeout,
        })
    }

    /// Send the next requests elsewhere than `url` (a member about to be killed).
    pub fn avoid(&self, url: &str) {
        let url = url.trim_end_matches('/');
        let at = self.current.load(Ordering::Relaxed);
        if self.endpoints[at].url == url {
            self.current
                .store((at + 1) % self.endpoints.len(), Ordering::Relaxed);
        }
        if let Some(e) = self.endpoints.iter().find(|e| e.url == url) {
            // Its kept-alive connections die with it.
            e.idle.lock().unwrap_or_else(|e| e.into_inner()).clear();
        }
    }

    /// The endpoints' URLs.
    pub fn urls(&self) -> impl Iterator<Item = &str> {
        self.endpoints.iter().map(|e| e.url.as_str())
    }

    /// POST `body` to `path` on whichever endpoint answers (see the module docs), the answer
    /// due within `timeout` (or the client's own when `None`).
    pub fn post(
        &self,
        path: &str,
        body: &[u8],
        timeout: Option<Duration>,
    ) -> Result<Answer, CallError> {
        let timeout = timeout.unwrap_or(self.timeout);
        let start = self.current.load(Ordering::Relaxed);
        let mut refused = Vec::new();
        for i in 0..self.endpoints.len() {
            let at = (start + i) % self.endpoints.len();
            match self.post_to(at, path, body, timeout) {
                Ok(answer) => {
                    // A member that answers "unavailable" (no leader yet, just restarted)
                    // is not asked first next time; the others may be fine.
                    let next = if answer.status >= 500 { at + 1 } else { at };
                    self.current
                        .store(next % self.endpoints.len(), Ordering::Relaxed);
                    return Ok(answer);
                }
                Err(Attempt::NotSent(e)) => {
                    refused.push(format!("{}: {e}", self.endpoints[at].url));
                }
                Err(Attempt::Lost(source)) => {
                    self.current
                        .store((at + 1) % self.endpoints.len(), Ordering::Relaxed);
                    return Err(CallError::NoAnswer {
                        endpoint: self.endpoints[at].url.clone(),
                        source,
                    });
                }
            }
        }
        Err(CallError::Unreachable(refused.join("; ")))
    }

    /// POST `body` to `path` on the endpoint `url` only (a member's own status), with
    /// `timeout`.
    pub fn post_to_url(
        &self,
        url: &str,
        path: &str,
        body: &[u8],
        timeout: Duration,
    ) -> Result<Answer, CallError> {
        let as_error = |e| match e {
            Attempt::NotSent(e) => CallError::Unreachable(format!("{url}: {e}")),
            Attempt::Lost(source) => CallError::NoAnswer {
                endpoint: url.to_owned(),
                source,
            },
        };
        match self
            .endpoints
            .iter()
            .position(|e| e.url == url.trim_end_matches('/'))
        {
            Some(at) => self.post_to(at, path, body, timeout).map_err(as_error),
            // A member's advertised URL that is not one of ETCD_ENDPOINTS: one connection.
            None => {
                let endpoint = endpoint(url).map_err(CallError::Unreachable)?;
                let mut conn =
                    BufReader::new(connect(&endpoint).map_err(|e| as_error(Attempt::NotSent(e)))?);
                exchange(&mut conn, &endpoint, path, body, timeout)
                    .map(|(answer, _)| answer)
                    .map_err(as_error)
            }
        }
    }

    /// POST to a streaming endpoint (`/v3/watch`) and collect its messages (one JSON
    /// document per line) until `enough` says so, the stream is quiet for `quiet`, or
    /// `deadline` passes. The connection is closed afterwards: a watch never ends by itself.
    pub fn stream(
        &self,
        path: &str,
        body: &[u8],
        quiet: Duration,
        deadline: Duration,
        mut enough: impl FnMut(&[u8]) -> bool,
    ) -> Result<(), CallError> {
        let at = self.current.load(Ordering::Relaxed);
        let endpoint = &self.endpoints[at];
        let lost = |source| CallError::NoAnswer {
            endpoint: endpoint.url.clone(),
            source,
        };
        let stream = connect(endpoint)
            .map_err(|e| CallError::Unreachable(format!("{}: {e}", endpoint.url)))?;
        let mut conn = BufReader::new(stream);
        send(&mut conn, endpoint, path, body).map_err(lost)?;
        conn.get_ref()
            .set_read_timeout(Some(self.timeout))
            .map_err(lost)?;
        let head = read_head(&mut conn).map_err(lost)?;
        if head.status != 200 || !head.chunked {
            return Err(lost(io::Error::other(format!(
                "the watch answered {} without a stream",
                head.status
            ))));
        }
        let started = Instant::now();
        // The first message may take etcd a while to assemble (a long history of large
        // values); silence ends the stream only once something has come.
        conn.get_ref()
            .set_read_timeout(Some(quiet.max(FIRST_MESSAGE_PATIENCE)))
            .map_err(lost)?;
        let mut pending = Vec::new();
        let mut heard = false;
        while started.elapsed() < deadline {
            match read_chunk(&mut conn, MAX_ANSWER_BYTES) {
                Ok(Some(chunk)) => {
                    pending.extend_from_slice(&chunk);
                    if !heard {
                        heard = true;
                        conn.get_ref().set_read_timeout(Some(quiet)).map_err(lost)?;
                    }
                }
                Ok(None) => return Ok(()),
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                    ) =>
                {
                    return Ok(());
                }
                Err(e) => return Err(lost(e)),
            }
            while let Some(end) = pending.iter().position(|b| *b == b'\n') {
                let line: Vec<u8> = pending.drain(..=end).collect();
                let line = line.trim_ascii();
                if !line.is_empty() && enough(line) {
                    return Ok(());
                }
            }
            if pending.len() > MAX_ANSWER_BYTES {
                return Err(lost(io::Error::other(
                    "a watch message passed the size cap",
                )));
            }
        }
        Ok(())
    }

    fn post_to(
        &self,
        at: usize,
        path: &str,
        body: &[u8],
        timeout: Duration,
    ) -> Result<Answer, Attempt> {
        let endpoint = &self.endpoints[at];
        // A kept-alive connection may have been closed by etcd meanwhile; that shows as EOF
        // before any answer, and the request is retried on a fresh connection.
        let reused = endpoint
            .idle
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .pop();
        if let Some(mut conn) = reused {
            match exchange(&mut conn, endpoint, path, body, timeout) {
                Ok((answer, keep)) => {
                    if keep {
                        park(endpoint, conn);
                    }
                    return Ok(answer);
                }
                Err(Attempt::NotSent(_)) => {}
                Err(lost) => return Err(lost),
            }
        }
        let mut conn = BufReader::new(connect(endpoint).map_err(Attempt::NotSent)?);
        let (answer, keep) = exchange(&mut conn, endpoint, path, body, timeout)?;
        if keep {
            park(endpoint, conn);
        }
        Ok(answer)
    }
}

/// How one try ended, when it failed.
enum Attempt {
    /// Nothing reached etcd: safe to try elsewhere.
    NotSent(io::Error),
    /// The request may have reached etcd.
    Lost(io::Error),
}

fn endpoint(url: &str) -> Result<Endpoint, String> {
    let authority = url
        .trim()
        .strip_prefix("http://")
        .ok_or_else(|| {
            format!(
                "etcd endpoint '{url}' must start with http:// (the lab speaks to etcd without TLS)"
            )
        })?
        .trim_end_matches('/')
        .to_owned();
    if authority.is_empty() || authority.contains('/') {
        return Err(format!("etcd endpoint '{url}' must be http://host:port"));
    }
    Ok(Endpoint {
        url: url.trim().trim_end_matches('/').to_owned(),
        authority,
        idle: Mutex::new(Vec::new()),
    })
}

fn connect(endpoint: &Endpoint) -> io::Result<TcpStream> {
    let mut last = io::Error::other("the address resolved to nothing");
    for addr in endpoint.authority.to_socket_addrs()? {
        match TcpStream::connect_timeout(&addr, CONNECT_TIMEOUT) {
            Ok(stream) => {
                stream.set_nodelay(true)?;
                return Ok(stream);
            }
            Err(e) => last = e,
        }
    }
    Err(last)
}

fn park(endpoint: &Endpoint, conn: BufReader<TcpStream>) {
    let mut idle = endpoint.idle.lock().unwrap_or_else(|e| e.into_inner());
    if idle.len() < MAX_IDLE {
        idle.push(conn);
    }
}

fn send(
    conn: &mut BufReader<TcpStream>,
    endpoint: &Endpoint,
    path: &str,
    body: &[u8],
) -> io::Result<()> {
    let head = format!(
        "POST {path} HTTP/1.1\r\nHost: {}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
        endpoint.authority,
        body.len()
    );
    let stream = conn.get_mut();
    stream.write_all(head.as_bytes())?;
    stream.write_all(body)?;
    stream.flush()
}

/// One request and its answer; `true` when the connection can be reused.
fn exchange(
    conn: &mut BufReader<TcpStream>,
    endpoint: &Endpoint,
    path: &str,
    body: &[u8],
    timeout: Duration,
) -> Result<(Answer, bool), Attempt> {
    conn.get_ref()
        .set_read_timeout(Some(timeout))
        .map_err(Attempt::NotSent)?;
    send(conn, endpoint, path, body).map_err(Attempt::NotSent)?;
    // The first byte decides: none at all on a reused connection means etcd had closed it
    // before reading the request (an idle timeout), so the request did nothing.
    if conn.fill_buf().map_err(Attempt::Lost)?.is_empty() {
        return Err(Attempt::NotSent(io::Error::new(
            io::ErrorKind::UnexpectedEof,
            "the connection was closed",
        )));
    }
    let head = read_head(conn).map_err(Attempt::Lost)?;
    let body = if head.chunked {
        let mut body = Vec::new();
        while let Some(chunk) =
            read_chunk(conn, MAX_ANSWER_BYTES - body.len()).map_err(Attempt::Lost)?
        {
            body.extend_from_slice(&chunk);
        }
        body
    } else if let Some(length) = head.length {
        if length > MAX_ANSWER_BYTES {
            return Err(Attempt::Lost(io::Error::other(format!(
                "an answer of {length} bytes is over the {MAX_ANSWER_BYTES}-byte cap"
            ))));
        }
        let mut body = vec![0; length];
        conn.read_exact(&mut body).map_err(Attempt::Lost)?;
        body
    } else {
        let mut body = Vec::new();
        conn.take(MAX_ANSWER_BYTES as u64)
            .read_to_end(&mut body)
            .map_err(Attempt::Lost)?;
        return Ok((
            Answer {
                status: head.status,
                body,
            },
            false,
        ));
    };
    Ok((
        Answer {
            status: head.status,
            body,
        },
        !head.close,
    ))
}

struct Head {
    status: u16,
    length: Option<usize>,
    chunked: bool,
    close: bool,
}

fn read_head(conn: &mut BufReader<TcpStream>) -> io::Result<Head> {
    let mut line = String::new();
    let status = loop {
        line.clear();
        if conn.read_line(&mut line)? == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "closed before the answer's head ended",
            ));
        }
        // `100 Continue` comes before the real status line; skip it and its blank line.
        let parsed: Option<u16> = line.split_whitespace().nth(1).and_then(|s| s.parse().ok());
        match parsed {
            Some(100) => {
                line.clear();
                conn.read_line(&mut line)?;
            }
            Some(code) => break code,
            None => return Err(io::Error::other(format!("bad status line {line:?}"))),
        }
    };
    let mut head = Head {
        status,
        length: None,
        chunked: false,
        close: false,
    };
    let mut size = 0usize;
    loop {
        line.clear();
        let n = conn.read_line(&mut line)?;
        size += n;
        if n == 0 || size > 64 * 1024 {
            return Err(io::Error::other(
                "the answer's head is cut short or too long",
            ));
        }
        let header = line.trim_end();
        if header.is_empty() {
            return Ok(head);
        }
        if let Some((name, value)) = header.split_once(':') {
            let value = value.trim();
            if name.eq_ignore_ascii_case("content-length") {
                head.length = Some(value.parse().map_err(io::Error::other)?);
            } else if name.eq_ignore_ascii_case("transfer-encoding") {
                head.chunked = value.eq_ignore_ascii_case("chunked");
            } else if name.eq_ignore_ascii_case("connection") {
                head.close = value.eq_ignore_ascii_case("close");
            }
        }
    }
}

/// The next chunk of a chunked body, or `None` after the last (with its trailers read).
fn read_chunk(conn: &mut BufReader<TcpStream>, cap: usize) -> io::Result<Option<Vec<u8>>> {
    let mut line = String::new();
    if conn.read_line(&mut line)? == 0 {
        return Err(io::Error::new(
            io::ErrorKind::UnexpectedEof,
            "closed inside a chunked answer",
        ));
    }
    let size = usize::from_str_radix(line.trim().split(';').next().unwrap_or(""), 16)
        .map_err(|_| io::Error::other(format!("bad chunk size {line:?}")))?;
    if size == 0 {
        // Trailers (gRPC's status) up to the blank line.
        loop {
            line.clear();
            if conn.read_line(&mut line)? == 0 || line.trim_end().is_empty() {
                return Ok(None);
            }
        }
    }
    if size > cap {
        return Err(io::Error::other(format!(
            "a chunk of {size} bytes is over the answer's cap"
        )));
    }
    let mut chunk = vec![0; size + 2];
    conn.read_exact(&mut chunk)?;
    chunk.truncate(size);
    Ok(Some(chunk))
}
