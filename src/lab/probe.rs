//! A tiny HTTP/1.1 client for one question: does `GET /health` answer 200?
//!
//! The lab needs nothing more, so it speaks HTTP by hand over a `TcpStream` instead of
//! pulling in a client crate.

use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// How often an unhealthy server is asked again.
const POLL_EVERY: Duration = Duration::from_millis(25);

/// The status code of `GET /health` on `host:port`, or `None` if nothing answered in time.
pub async fn health_status(host: &str, port: u16) -> Option<u16> {
    let ask = async {
        let mut stream = TcpStream::connect((host, port)).await.ok()?;
        let request =
            format!("GET /health HTTP/1.1\r\nHost: {host}:{port}\r\nConnection: close\r\n\r\n");
        stream.write_all(request.as_bytes()).await.ok()?;
        // The status line fits in the first read of any sane server; read a little more
        // than it needs and parse "HTTP/1.1 200 OK".
        let mut head = [0u8; 64];
        let mut filled = 0;
        while filled < 12 {
            let n = stream.read(&mut head[filled..]).await.ok()?;
            if n == 0 {
                break;
            }
            filled += n;
        }
        parse_status(&head[..filled])
    };
    tokio::time::timeout(Duration::from_secs(1), ask)
        .await
        .ok()
        .flatten()
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
    use super::parse_status;

    #[test]
    fn status_lines() {
        assert_eq!(parse_status(b"HTTP/1.1 200 OK\r\n"), Some(200));
        assert_eq!(parse_status(b"HTTP/1.0 503 Service Unavailable"), Some(503));
        assert_eq!(parse_status(b"HTTP/1.1 20"), None);
        assert_eq!(parse_status(b"SSH-2.0-OpenSSH_9.6\r\n"), None);
    }
}
