//! A tiny HTTP/1.1 client over a TCP or Unix stream, for the lab's two needs: asking a
//! child's `/health` (on its private health socket), and passing the lab page's requests on to a child ([`crate::lab::ui`]).
//!
//! The lab talks only to its own children on a loopback address, so it speaks HTTP by
//! hand instead of pulling in a client crate: one request per connection
//! (`Connection: close`), a body framed by `Content-Length`, by chunked encoding, or by
//! the end of the stream, and a cap on how much it will read.

use std::path::Path;
use std::time::{Duration, Instant};

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpStream, UnixStream};

/// How often an unhealthy server is asked again.
const POLL_EVERY: Duration = Duration::from_millis(25);

/// One request to send.
#[derive(Debug, Clone, Copy)]
pub struct Request<'a> {
    /// `GET`, `POST`, ...
    pub method: &'a str,
    /// The path with its query string, as sent on the request line (`/kv?prefix=a`).
    pub target: &'a str,
    /// Extra header lines, e.g. `("Content-Type", "application/json")`.
    pub headers: &'a [(&'a str, &'a str)],
    /// The body (sent with a `Content-Length`, also when empty for POST).
    pub body: &'a [u8],
}

/// One answer: the status, the headers as sent, and the whole body (chunking removed).
#[derive(Debug, Clone)]
pub struct Response {
    /// The status code.
    pub status: u16,
    /// Header names and values, in order.
    pub headers: Vec<(String, String)>,
    /// The body.
    pub body: Vec<u8>,
}

impl Response {
    /// The first header called `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// Why a request got no answer.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// Nothing listens there (a child that is restarting), or the connection broke.
    #[error("cannot reach {0}")]
    Connect(String, #[source] std::io::Error),
    /// The server did not answer in time.
    #[error("no answer within {} ms", .0.as_millis())]
    Timeout(Duration),
    /// The connection broke while the request was written or the answer read.
    #[error("connection failed: {0}")]
    Io(#[from] std::io::Error),
    /// The answer was not HTTP/1.x as this client reads it.
    #[error("malformed answer: {0}")]
    Malformed(&'static str),
    /// The answer was larger than the caller allowed.
    #[error("answer larger than {0} bytes")]
    TooLarge(usize),
}

/// Send `request` to `host:port` and read the whole answer, at most `max_bytes` of it,
/// all within `limit`.
pub async fn send(
    host: &str,
    port: u16,
    request: Request<'_>,
    limit: Duration,
    max_bytes: usize,
) -> Result<Response, ClientError> {
    let exchange = async {
        let stream = TcpStream::connect((host, port))
            .await
            .map_err(|e| ClientError::Connect(format!("{host}:{port}"), e))?;
        exchange(stream, &format!("{host}:{port}"), request, max_bytes).await
    };
    tokio::time::timeout(limit, exchange)
        .await
        .map_err(|_| ClientError::Timeout(limit))?
}

/// [`send`] over the Unix socket at `path` (a server's `WALAB_HEALTH_SOCKET`).
pub async fn send_unix(
    path: &Path,
    request: Request<'_>,
    limit: Duration,
    max_bytes: usize,
) -> Result<Response, ClientError> {
    let exchange = async {
        let stream = UnixStream::connect(path)
            .await
            .map_err(|e| ClientError::Connect(path.display().to_string(), e))?;
        exchange(stream, "localhost", request, max_bytes).await
    };
    tokio::time::timeout(limit, exchange)
        .await
        .map_err(|_| ClientError::Timeout(limit))?
}

/// Write `request` on `stream` and read the answer up to the end of the connection.
async fn exchange(
    mut stream: impl AsyncRead + AsyncWrite + Unpin,
    host: &str,
    request: Request<'_>,
    max_bytes: usize,
) -> Result<Response, ClientError> {
    let mut head = format!(
        "{} {} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n",
        request.method, request.target
    );
    for (name, value) in request.headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    if !request.body.is_empty() || request.method != "GET" {
        head.push_str(&format!("Content-Length: {}\r\n", request.body.len()));
    }
    head.push_str("\r\n");
    stream.write_all(head.as_bytes()).await?;
    stream.write_all(request.body).await?;
    let mut raw = Vec::new();
    // Read one byte past the cap, so an answer of exactly `max_bytes` of body plus its
    // head is not mistaken for too large; the precise check is on the body below.
    let cap = max_bytes.saturating_add(64 * 1024);
    let read = (&mut stream)
        .take(u64::try_from(cap).unwrap_or(u64::MAX).saturating_add(1))
        .read_to_end(&mut raw)
        .await;
    // A server that sent its whole answer and then reset the connection (as a child
    // does when it kills itself right after a crash reply) still gave a full answer.
    if let Err(e) = read
        && raw.is_empty()
    {
        return Err(ClientError::Io(e));
    }
    if raw.len() > cap {
        return Err(ClientError::TooLarge(max_bytes));
    }
    parse_response(&raw, max_bytes)
}

/// Parse a whole HTTP/1.x answer read up to the end of the connection.
fn parse_response(raw: &[u8], max_bytes: usize) -> Result<Response, ClientError> {
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or(ClientError::Malformed("no end of headers"))?;
    let head =
        std::str::from_utf8(&raw[..split]).map_err(|_| ClientError::Malformed("head not UTF-8"))?;
    let rest = &raw[split + 4..];
    let mut lines = head.split("\r\n");
    let status = parse_status(lines.next().unwrap_or("").as_bytes())
        .ok_or(ClientError::Malformed("bad status line"))?;
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_owned(), v.trim().to_owned()))
        .collect();
    let find = |name: &str| {
        headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    };
    let body = if find("transfer-encoding").is_some_and(|v| v.eq_ignore_ascii_case("chunked")) {
        dechunk(rest, max_bytes)?
    } else if let Some(len) = find("content-length") {
        let len: usize = len
            .parse()
            .map_err(|_| ClientError::Malformed("bad Content-Length"))?;
        if len > max_bytes {
            return Err(ClientError::TooLarge(max_bytes));
        }
        rest.get(..len)
            .ok_or(ClientError::Malformed(
                "body shorter than its Content-Length",
            ))?
            .to_vec()
    } else {
        rest.to_vec()
    };
    if body.len() > max_bytes {
        return Err(ClientError::TooLarge(max_bytes));
    }
    Ok(Response {
        status,
        headers,
        body,
    })
}

/// Undo `Transfer-Encoding: chunked` (extensions and trailers are ignored).
fn dechunk(mut rest: &[u8], max_bytes: usize) -> Result<Vec<u8>, ClientError> {
    let mut body = Vec::new();
    loop {
        let line_end = rest
            .windows(2)
            .position(|w| w == b"\r\n")
            .ok_or(ClientError::Malformed("chunk size line not ended"))?;
        let line = std::str::from_utf8(&rest[..line_end])
            .map_err(|_| ClientError::Malformed("chunk size not UTF-8"))?;
        let hex = line.split(';').next().unwrap_or("").trim();
        let size =
            usize::from_str_radix(hex, 16).map_err(|_| ClientError::Malformed("bad chunk size"))?;
        rest = &rest[line_end + 2..];
        if size == 0 {
            return Ok(body);
        }
        if body.len().saturating_add(size) > max_bytes {
            return Err(ClientError::TooLarge(max_bytes));
        }
        let chunk = rest
            .get(..size)
            .ok_or(ClientError::Malformed("chunk cut short"))?;
        body.extend_from_slice(chunk);
        rest = rest
            .get(size..)
            .and_then(|r| r.strip_prefix(b"\r\n"))
            .ok_or(ClientError::Malformed("chunk not followed by CRLF"))?;
    }
}

/// The status code of `GET /health` on `host:port`, or `None` if nothing answered in time.
pub async fn health_status(host: &str, port: u16) -> Option<u16> {
    let request = Request {
        method: "GET",
        target: "/health",
        headers: &[],
        body: &[],
    };
    send(host, port, request, Duration::from_secs(1), 64 * 1024)
        .await
        .ok()
        .map(|r| r.status)
}

fn parse_status(head: &[u8]) -> Option<u16> {
    let text = std::str::from_utf8(head.get(..12)?).ok()?;
    let rest = text.strip_prefix("HTTP/1.")?;
    rest.get(2..5)?.parse().ok()
}

/// Poll until `/health` answers 200; returns how long that took, or `None` after `limit`.
pub async fn wait_healthy(host: &str, port: u16, limit: Duration) -> Option<Duration> {
    let started = Instant::now();
    while started.elapsed() < limit {
        if health_status(host, port).await == Some(200) {
            return Some(started.elapsed());
        }
        tokio::time::sleep(POLL_EVERY).await;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_lines() {
        assert_eq!(parse_status(b"HTTP/1.1 200 OK\r\n"), Some(200));
        assert_eq!(parse_status(b"HTTP/1.0 503 Service Unavailable"), Some(503));
        assert_eq!(parse_status(b"HTTP/1.1 20"), None);
        assert_eq!(parse_status(b"SSH-2.0-OpenSSH_9.6\r\n"), None);
    }

    #[test]
    fn a_body_framed_by_its_length() {
        let r = parse_response(
            b"HTTP/1.1 404 Not Found\r\ncontent-type: application/json\r\ncontent-length: 2\r\n\r\n{}",
            100,
        )
        .expect("parses");
        assert_eq!(r.status, 404);
        assert_eq!(r.header("Content-Type"), Some("application/json"));
        assert_eq!(r.body, b"{}");
    }

    #[test]
    fn a_chunked_body() {
        let r = parse_response(
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n4\r\nwal \r\n6;x=y\r\nmemory\r\n0\r\n\r\n",
            100,
        )
        .expect("parses");
        assert_eq!(r.body, b"wal memory");
    }

    #[test]
    fn a_body_up_to_the_end_of_the_stream() {
        let r = parse_response(b"HTTP/1.0 200 OK\r\n\r\nall of it", 100).expect("parses");
        assert_eq!(r.body, b"all of it");
    }

    #[test]
    fn too_large_and_malformed_answers_are_errors() {
        let long = b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n0123456789";
        assert!(matches!(
            parse_response(long, 5),
            Err(ClientError::TooLarge(5))
        ));
        let chunked =
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\na\r\n0123456789\r\n0\r\n\r\n";
        assert!(matches!(
            parse_response(chunked, 5),
            Err(ClientError::TooLarge(5))
        ));
        assert!(matches!(
            parse_response(b"HTTP/1.1 200 OK\r\n", 5),
            Err(ClientError::Malformed(_))
        ));
        assert!(matches!(
            parse_response(b"HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\nshort", 50),
            Err(ClientError::Malformed(_))
        ));
        assert!(matches!(
            parse_response(
                b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
                50
            ),
            Err(ClientError::Malformed(_))
        ));
    }
}
