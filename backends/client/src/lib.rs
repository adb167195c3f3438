//! The one HTTP client of walab: the lab's health probe and page proxy, torture, the
//! experiments, the tests, and the etcd backend's calls to etcd's JSON gateway. It is reqwest
//! (already built for the trace exporter, on the same hyper and tokio as the server), with
//! the three things they all need on top of it. Every request is bounded in time (`limit`),
//! every answer in size (`max_bytes`), and a failure says how far the exchange got: nothing
//! could be reached (the request was never sent), the connection broke before an answer
//! began, or it broke while the answer came (the request may have reached the server: for
//! torture, a write in flight, neither acknowledged nor refused).
//!
//! A crate of its own, beside the backends rather than in the `walab` binary, because the
//! etcd backend needs it too and a backend cannot depend on the programs above it.
//!
//! [`Client`] is async, for code on a runtime (the lab, the etcd backend's calls);
//! [`Blocking`] drives the same client on a runtime of its own in the caller's thread, for
//! torture's writers, the experiments and the tests. [`Client::open`] reads an answer that
//! never ends (etcd's watch) piece by piece.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

/// The largest answer read unless the caller says otherwise.
pub const DEFAULT_MAX_BYTES: usize = 64 << 20;
/// How long a request may take unless the caller says otherwise.
pub const DEFAULT_LIMIT: Duration = Duration::from_secs(10);

/// One answer: the status, the headers as sent, and the whole body.
#[derive(Debug, Clone)]
pub struct Answer {
    /// The status code.
    pub status: u16,
    /// Header names (lower case) and values, in order.
    pub headers: Vec<(String, String)>,
    /// The body, unchunked.
    pub body: Vec<u8>,
}

impl Answer {
    /// The first header called `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The body as JSON, or `Null` when it is not JSON.
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or(serde_json::Value::Null)
    }

    /// The body as text (invalid UTF-8 replaced).
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// Why a request got no answer.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// Nothing listens there (a server that is restarting): the request was not sent.
    #[error("cannot reach {0}: {1}")]
    Connect(String, #[source] reqwest::Error),
    /// No whole answer within the limit: the request may have reached the server.
    #[error("no answer within {} ms", .0.as_millis())]
    Timeout(Duration),
    /// The connection broke (or was closed) before any answer came: the request may have
    /// reached the server, but nothing of its answer did.
    #[error("connection closed before an answer: {0}")]
    Unanswered(#[source] reqwest::Error),
    /// The connection broke while the answer was read: the request reached the server.
    #[error("connection failed: {0}")]
    Broken(#[source] reqwest::Error),
    /// The answer was larger than the caller allowed.
    #[error("answer larger than {0} bytes")]
    TooLarge(usize),
    /// The request itself could not be made (a method or header that is not HTTP), or its
    /// target would reach the server changed (see [`Client::send`]).
    #[error("cannot send this request: {0}")]
    Invalid(String),
}

impl ClientError {
    /// Whether the request certainly did not reach the server.
    pub fn not_sent(&self) -> bool {
        matches!(self, ClientError::Connect(..) | ClientError::Invalid(_))
    }
}

/// An async client for one server: `http://host:port`, or a Unix socket.
#[derive(Debug, Clone)]
pub struct Client {
    /// Made on the first request, with `keep_alive` as it is then; shared by the clones (a
    /// clone with another `limit` uses the same connections).
    inner: Arc<OnceLock<reqwest::Client>>,
    keep_alive: bool,
    server: Arc<Server>,
    limit: Duration,
    max_bytes: usize,
}

/// Where a [`Client`] connects.
#[derive(Debug, Clone)]
enum Server {
    /// `http://host:port`, and `host:port` for messages.
    Tcp { base: String, place: String },
    /// A Unix socket, addressed as `http://localhost`.
    Unix(PathBuf),
}

impl Server {
    fn base(&self) -> &str {
        match self {
            Server::Tcp { base, .. } => base,
            Server::Unix(_) => "http://localhost",
        }
    }

    fn place(&self) -> String {
        match self {
            Server::Tcp { place, .. } => place.clone(),
            Server::Unix(path) => path.display().to_string(),
        }
    }

    /// Without a proxy from the environment (the lab talks only to its own servers), HTTP/1
    /// only, never following a redirect (an answer is passed on or counted as it is, and a
    /// write is never sent twice), without reqwest's overall timeout (each request has its
    /// own limit), and with idle connections kept for the next request or not.
    fn connect(&self, keep_alive: bool) -> reqwest::Client {
        let builder = reqwest::Client::builder()
            .no_proxy()
            .http1_only()
            .redirect(reqwest::redirect::Policy::none())
            .tcp_nodelay(true);
        let builder = if keep_alive {
            builder
        } else {
            builder.pool_max_idle_per_host(0)
        };
        let builder = match self {
            Server::Tcp { .. } => builder,
            Server::Unix(path) => builder.unix_socket(path.as_path()),
        };
        builder
            .build()
            // Building fails only for a TLS backend that cannot start; this one has none.
            .expect("an HTTP client without TLS")
    }
}

impl Client {
    /// A client for the server at `host:port`, keeping connections alive between requests.
    pub fn tcp(host: &str, port: u16) -> Client {
        let base = if host.contains(':') {
            format!("http://[{host}]:{port}")
        } else {
            format!("http://{host}:{port}")
        };
        Client::with(Server::Tcp {
            base,
            place: format!("{host}:{port}"),
        })
    }

    /// A client for the server at `addr`.
    pub fn addr(addr: SocketAddr) -> Client {
        Client::tcp(&addr.ip().to_string(), addr.port())
    }

    /// A client for the server on the Unix socket at `path` (a server's
    /// `WALAB_HEALTH_SOCKET`).
    pub fn unix(path: &Path) -> Client {
        Client::with(Server::Unix(path.to_path_buf()))
    }

    fn with(server: Server) -> Client {
        Client {
            inner: Arc::default(),
            keep_alive: true,
            server: Arc::new(server),
            limit: DEFAULT_LIMIT,
            max_bytes: DEFAULT_MAX_BYTES,
        }
    }

    /// One connection per request: nothing is kept open between them (a server's health
    /// socket admits only a few connections, and a lab's child may be gone by the next one).
    pub fn one_connection_per_request(mut self) -> Client {
        self.keep_alive = false;
        self.inner = Arc::default();
        self
    }

    fn inner(&self) -> &reqwest::Client {
        self.inner
            .get_or_init(|| self.server.connect(self.keep_alive))
    }

    /// Each request must be answered, body and all, within `limit`.
    pub fn limit(mut self, limit: Duration) -> Client {
        self.limit = limit;
        self
    }

    /// Answers larger than `max_bytes` are refused ([`ClientError::TooLarge`]).
    pub fn max_bytes(mut self, max_bytes: usize) -> Client {
        self.max_bytes = max_bytes;
        self
    }

    /// Send `method target` (`target`: the path and query, as sent on the request line) with
    /// `headers` and `body`, and read the whole answer. A target that a URL parser would
    /// change on the way (a `.` or `..` segment, plain or percent-encoded, is resolved; a
    /// backslash becomes `/`; a few characters are percent-encoded) is refused as
    /// [`ClientError::Invalid`] rather than sent as something else.
    pub async fn send(
        &self,
        method: &str,
        target: &str,
        headers: &[(&str, &str)],
        body: Vec<u8>,
    ) -> Result<Answer, ClientError> {
        let exchange = async {
            let answer = self.start(method, target, headers, body).await?;
            read(answer, self.max_bytes).await
        };
        tokio::time::timeout(self.limit, exchange)
            .await
            .map_err(|_| ClientError::Timeout(self.limit))?
    }

    /// Send a request as [`Client::send`] does, but read only the answer's head (within
    /// `limit`): the body comes piece by piece from [`Stream::next`], for an answer that
    /// never ends by itself (etcd's watch). Dropping the stream closes the connection.
    pub async fn open(
        &self,
        method: &str,
        target: &str,
        headers: &[(&str, &str)],
        body: Vec<u8>,
    ) -> Result<Stream, ClientError> {
        let answer = tokio::time::timeout(self.limit, self.start(method, target, headers, body))
            .await
            .map_err(|_| ClientError::Timeout(self.limit))??;
        Ok(Stream {
            status: answer.status().as_u16(),
            answer,
            max_bytes: self.max_bytes,
            read: 0,
        })
    }

    /// Send the request and wait for the answer's head.
    async fn start(
        &self,
        method: &str,
        target: &str,
        headers: &[(&str, &str)],
        body: Vec<u8>,
    ) -> Result<reqwest::Response, ClientError> {
        let method = reqwest::Method::from_bytes(method.as_bytes())
            .map_err(|_| ClientError::Invalid(format!("{method:?} is not an HTTP method")))?;
        let mut request = self
            .inner()
            .request(method.clone(), format!("{}{target}", self.server.base()));
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        // A request other than GET says how long its body is also when it has none, as
        // browsers do (hyper leaves an empty body's length out).
        if body.is_empty() && method != reqwest::Method::GET {
            request = request.header(reqwest::header::CONTENT_LENGTH, "0");
        } else if !body.is_empty() {
            request = request.body(body);
        }
        let request = request
            .build()
            .map_err(|e| ClientError::Invalid(e.to_string()))?;
        let url = request.url();
        let sent = match url.query() {
            Some(query) => format!("{}?{query}", url.path()),
            None => url.path().to_owned(),
        };
        if sent != target {
            return Err(ClientError::Invalid(format!(
                "{target:?} would reach the server as {sent:?} (a '.' or '..' segment, plain or percent-encoded, a backslash or an unencoded character in it); send the path percent-encoded, without dot segments"
            )));
        }
        self.inner().execute(request).await.map_err(|e| {
            if e.is_connect() {
                ClientError::Connect(self.server.place(), e)
            } else {
                ClientError::Unanswered(e)
            }
        })
    }

    /// `GET target`.
    pub async fn get(&self, target: &str) -> Result<Answer, ClientError> {
        self.send("GET", target, &[], Vec::new()).await
    }
}

/// The status, headers and the whole body of `answer`, at most `max_bytes` of body.
async fn read(mut answer: reqwest::Response, max_bytes: usize) -> Result<Answer, ClientError> {
    let too_large = ClientError::TooLarge(max_bytes);
    if answer
        .content_length()
        .is_some_and(|n| n > u64::try_from(max_bytes).unwrap_or(u64::MAX))
    {
        return Err(too_large);
    }
    let status = answer.status().as_u16();
    let headers = answer
        .headers()
        .iter()
        .map(|(n, v)| {
            (
                n.as_str().to_owned(),
                String::from_utf8_lossy(v.as_bytes()).into_owned(),
            )
        })
        .collect();
    let mut body = Vec::new();
    while let Some(chunk) = answer.chunk().await.map_err(ClientError::Broken)? {
        if body.len().saturating_add(chunk.len()) > max_bytes {
            return Err(too_large);
        }
        body.extend_from_slice(&chunk);
    }
    Ok(Answer {
        status,
        headers,
        body,
    })
}

/// An answer read piece by piece: see [`Client::open`].
#[derive(Debug)]
pub struct Stream {
    /// The status code.
    pub status: u16,
    answer: reqwest::Response,
    max_bytes: usize,
    read: usize,
}

impl Stream {
    /// The next piece of the body as it arrives, `None` after the last, waiting at most
    /// `patience` for it ([`ClientError::Timeout`] then: the stream stays usable). The body
    /// as a whole stays under the client's `max_bytes`.
    pub async fn next(&mut self, patience: Duration) -> Result<Option<Vec<u8>>, ClientError> {
        let chunk = tokio::time::timeout(patience, self.answer.chunk())
            .await
            .map_err(|_| ClientError::Timeout(patience))?
            .map_err(ClientError::Broken)?;
        let Some(chunk) = chunk else {
            return Ok(None);
        };
        self.read = self.read.saturating_add(chunk.len());
        if self.read > self.max_bytes {
            return Err(ClientError::TooLarge(self.max_bytes));
        }
        Ok(Some(chunk.to_vec()))
    }
}

/// [`Client`] for code off any runtime: each request runs on a runtime of the caller's own,
/// in the caller's thread (no thread hop per request, which a load generator would pay).
/// Must not be used from inside an async task.
#[derive(Debug)]
pub struct Blocking {
    client: Client,
    runtime: tokio::runtime::Runtime,
}

impl Blocking {
    /// A blocking client for the server at `addr`, keeping its connection alive.
    pub fn new(addr: SocketAddr) -> Blocking {
        Blocking::from(Client::addr(addr))
    }

    /// A blocking client over `client`.
    pub fn from(client: Client) -> Blocking {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            // Building a current-thread runtime fails only when the process cannot create
            // an epoll instance or a timer (out of file descriptors).
            .expect("a current-thread runtime (is the process out of file descriptors?)");
        Blocking { client, runtime }
    }

    /// Send one request with a JSON body (or none). An `Err` means no answer arrived: see
    /// [`ClientError::not_sent`] for whether it may have reached the server.
    pub fn request(
        &self,
        method: &str,
        target: &str,
        body: Option<&str>,
    ) -> Result<Answer, ClientError> {
        let headers: &[(&str, &str)] = if body.is_some() {
            &[("content-type", "application/json")]
        } else {
            &[]
        };
        self.send(
            method,
            target,
            headers,
            body.map(|b| b.as_bytes().to_vec()).unwrap_or_default(),
        )
    }

    /// [`Client::send`], blocking.
    pub fn send(
        &self,
        method: &str,
        target: &str,
        headers: &[(&str, &str)],
        body: Vec<u8>,
    ) -> Result<Answer, ClientError> {
        self.runtime
            .block_on(self.client.send(method, target, headers, body))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpListener;

    /// A server on a free port that reads one request head and then does `answer` with the
    /// connection; returns its port and the request it read.
    async fn one_shot(
        answer: &'static [u8],
        then_hang: bool,
    ) -> (u16, tokio::task::JoinHandle<String>) {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let served = tokio::spawn(async move {
            let (mut conn, _) = listener.accept().await.expect("accept");
            let mut head = Vec::new();
            let mut byte = [0u8; 1];
            while !head.ends_with(b"\r\n\r\n") && conn.read(&mut byte).await.unwrap_or(0) == 1 {
                head.push(byte[0]);
            }
            conn.write_all(answer).await.expect("write");
            if then_hang {
                tokio::time::sleep(Duration::from_secs(5)).await;
            }
            String::from_utf8_lossy(&head).into_owned()
        });
        (port, served)
    }

    #[tokio::test]
    async fn a_whole_answer_chunked_or_not() {
        let (port, served) = one_shot(
            b"HTTP/1.1 404 Not Found\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n4\r\n{\"a\"\r\n3\r\n:1}\r\n0\r\n\r\n",
            false,
        )
        .await;
        let answer = Client::tcp("127.0.0.1", port)
            .send("POST", "/kv?x=1", &[("x-test", "yes")], Vec::new())
            .await
            .expect("an answer");
        assert_eq!(answer.status, 404);
        assert_eq!(answer.header("content-type"), Some("application/json"));
        assert_eq!(answer.json(), serde_json::json!({"a": 1}));
        let head = served.await.expect("served").to_ascii_lowercase();
        assert!(head.starts_with("post /kv?x=1 http/1.1\r\n"), "{head}");
        assert!(head.contains("x-test: yes\r\n"), "{head}");
        // A POST without a body still says how long it is, as curl does.
        assert!(head.contains("content-length: 0\r\n"), "{head}");
    }

    #[tokio::test]
    async fn a_target_a_url_parser_would_change_is_refused() {
        // Nothing listens: a refusal must come before any connection is tried.
        let client = Client::tcp("127.0.0.1", 9);
        for target in ["/kv/%2E%2E", "/kv/./a", "/kv/a\\b", "/kv/a#b"] {
            let err = client.get(target).await.expect_err(target);
            assert!(matches!(err, ClientError::Invalid(_)), "{target}: {err:?}");
            assert!(err.not_sent());
        }
    }

    #[tokio::test]
    async fn nothing_listening_is_not_sent() {
        let port = {
            let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
            listener.local_addr().expect("addr").port()
        };
        let err = Client::tcp("127.0.0.1", port)
            .get("/health")
            .await
            .expect_err("nobody listens");
        assert!(matches!(err, ClientError::Connect(..)), "{err:?}");
        assert!(err.not_sent());
        assert!(
            err.to_string().contains(&format!("127.0.0.1:{port}")),
            "{err}"
        );
    }

    #[tokio::test]
    async fn a_broken_exchange_may_have_been_sent_and_says_how_far_it_got() {
        // Closed before any answer; closed in the middle of one.
        let cases: [(&'static [u8], bool); 2] = [
            (b"", false),
            (
                b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nonly this",
                true,
            ),
        ];
        for (answer, answer_began) in cases {
            let (port, _served) = one_shot(answer, false).await;
            let err = Client::tcp("127.0.0.1", port)
                .get("/")
                .await
                .expect_err("no whole answer");
            let began = match err {
                ClientError::Unanswered(_) => Some(false),
                ClientError::Broken(_) => Some(true),
                _ => None,
            };
            assert_eq!(began, Some(answer_began), "{err:?}");
            assert!(!err.not_sent());
        }
    }

    #[tokio::test]
    async fn a_stream_comes_piece_by_piece_and_silence_is_a_timeout() {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let (go_on, mut next) = tokio::sync::mpsc::channel::<()>(1);
        tokio::spawn(async move {
            let (mut conn, _) = listener.accept().await.expect("accept");
            let mut buf = [0u8; 1024];
            let _ = conn.read(&mut buf).await;
            let _ = conn
                .write_all(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n4\r\none\n\r\n")
                .await;
            // The second piece only when the test asks for it, then the end.
            next.recv().await;
            let _ = conn.write_all(b"4\r\ntwo\n\r\n0\r\n\r\n").await;
            tokio::time::sleep(Duration::from_secs(5)).await;
        });
        let mut stream = Client::tcp("127.0.0.1", port)
            .open("POST", "/v3/watch", &[], b"{}".to_vec())
            .await
            .expect("the head");
        assert_eq!(stream.status, 200);
        let patience = Duration::from_secs(2);
        assert_eq!(
            stream.next(patience).await.expect("one"),
            Some(b"one\n".to_vec())
        );
        let quiet = stream.next(Duration::from_millis(100)).await;
        assert!(matches!(quiet, Err(ClientError::Timeout(_))), "{quiet:?}");
        go_on.send(()).await.expect("the server waits");
        assert_eq!(
            stream.next(patience).await.expect("two"),
            Some(b"two\n".to_vec())
        );
        assert_eq!(stream.next(patience).await.expect("the end"), None);
    }

    #[tokio::test]
    async fn a_server_that_hangs_runs_into_the_limit() {
        let (port, _served) =
            one_shot(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nslow", true).await;
        let err = Client::tcp("127.0.0.1", port)
            .limit(Duration::from_millis(200))
            .get("/")
            .await
            .expect_err("too slow");
        assert!(matches!(err, ClientError::Timeout(_)), "{err:?}");
    }

    #[tokio::test]
    async fn answers_over_the_cap_are_refused_with_or_without_a_length() {
        let answers: [&'static [u8]; 2] = [
            b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n0123456789",
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\na\r\n0123456789\r\n0\r\n\r\n",
        ];
        for answer in answers {
            let (port, _served) = one_shot(answer, false).await;
            let err = Client::tcp("127.0.0.1", port)
                .max_bytes(5)
                .get("/")
                .await
                .expect_err("too large");
            assert!(matches!(err, ClientError::TooLarge(5)), "{err:?}");
        }
    }

    #[tokio::test]
    async fn a_unix_socket() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("health.sock");
        let listener = tokio::net::UnixListener::bind(&path).expect("bind");
        tokio::spawn(async move {
            let (mut conn, _) = listener.accept().await.expect("accept");
            let mut buf = [0u8; 1024];
            let _ = conn.read(&mut buf).await;
            let _ = conn
                .write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
                .await;
        });
        let answer = Client::unix(&path)
            .one_connection_per_request()
            .get("/health")
            .await
            .expect("an answer");
        assert_eq!((answer.status, answer.text().as_str()), (200, "ok"));
    }

    #[test]
    fn blocking_off_any_runtime() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let addr = listener.local_addr().expect("addr");
        std::thread::spawn(move || {
            use std::io::{Read, Write};
            let (mut conn, _) = listener.accept().expect("accept");
            let mut buf = [0u8; 1024];
            let _ = conn.read(&mut buf);
            let _ =
                conn.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 14\r\n\r\n{\"sequence\":7}");
        });
        let answer = Blocking::new(addr)
            .request("POST", "/kv", Some(r#"{"key":"k","value":1}"#))
            .expect("an answer");
        assert_eq!(answer.json()["sequence"], 7);
    }
}
