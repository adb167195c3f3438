//! Keeping web pages out: the lab runs on laptops, beside a browser.
//!
//! Two browser attacks reach a server on 127.0.0.1 without any bug in it:
//!
//! - **Cross-site requests.** Any page the user opens may `fetch("http://127.0.0.1:8001/
//!   admin/clear", {method: "POST", mode: "no-cors"})`. The answer is opaque to the page,
//!   but the request runs: a "simple" request (`text/plain`, no custom header) needs no
//!   CORS preflight. Browsers name the page's origin in `Origin` on every such request, so
//!   a state-changing request whose `Origin` is not the server's own (or one configured in
//!   `ALLOWED_ORIGINS`) is refused with 403. Requests without `Origin` (curl, k6, the
//!   runbook) are not from a page and go through.
//! - **DNS rebinding.** A page on `evil.example` re-points its own name at 127.0.0.1; its
//!   requests are then same-origin and can read every answer. They still say
//!   `Host: evil.example`, so a server bound to a loopback address answers only requests
//!   whose `Host` names a loopback address or `localhost` (421 otherwise). A server bound to
//!   another address is meant to be reached by other names, so it skips this check.

use axum::extract::{Request, State};
use axum::http::{HeaderMap, Method, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::server::error::ApiError;

/// Which requests a server accepts from browsers.
#[derive(Debug, Clone, Default)]
pub struct CrossSiteGuard {
    /// Only loopback names in `Host` (the server listens on a loopback address).
    loopback_hosts_only: bool,
    /// Origins, besides the server's own, allowed to send state-changing requests.
    allowed_origins: Vec<String>,
}

impl CrossSiteGuard {
    /// The guard for a server listening on `bind_host`.
    pub fn new(bind_host: &str, allowed_origins: Vec<String>) -> CrossSiteGuard {
        CrossSiteGuard {
            loopback_hosts_only: is_loopback_host(bind_host),
            allowed_origins,
        }
    }

    /// Why the request must be refused, if it must.
    pub fn check(&self, method: &Method, headers: &HeaderMap) -> Result<(), ApiError> {
        let mut hosts = headers.get_all(header::HOST).iter();
        let host = hosts.next().map(|v| v.to_str().unwrap_or("").trim());
        if self.loopback_hosts_only {
            // No browser sends two: which one a proxy or a server reads is anyone's guess.
            if hosts.next().is_some() {
                return Err(ApiError::MisdirectedHost("two Host headers".into()));
            }
            // A request without Host (HTTP/1.0, a healthcheck) is not from a browser. One
            // with a Host must be a well-formed authority naming this machine.
            if let Some(host) = host.filter(|h| !authority_host(h).is_some_and(is_loopback_host)) {
                return Err(ApiError::MisdirectedHost(host.to_owned()));
            }
        }
        if matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS) {
            return Ok(());
        }
        let Some(origin) = headers.get(header::ORIGIN) else {
            return Ok(());
        };
        let origin = origin.to_str().unwrap_or("").trim().to_ascii_lowercase();
        let same_origin = host.is_some_and(|h| {
            let h = h.to_ascii_lowercase();
            origin == format!("http://{h}") || origin == format!("https://{h}")
        });
        if same_origin || self.allowed_origins.contains(&origin) {
            Ok(())
        } else {
            Err(ApiError::CrossOrigin(origin))
        }
    }
}

/// Middleware: refuse what [`CrossSiteGuard::check`] refuses.
pub async fn guard(State(guard): State<CrossSiteGuard>, req: Request, next: Next) -> Response {
    match guard.check(req.method(), req.headers()) {
        Ok(()) => next.run(req).await,
        Err(refusal) => refusal.into_response(),
    }
}

/// The host of an HTTP authority (`name`, `name:port`, `[v6]`, `[v6]:port`), parsed
/// strictly: anything after a bracketed address but a port, a port that is not digits, or
/// a bare colon in a name is no authority at all (`[::1]evil.example` is refused, not read
/// as `::1`).
fn authority_host(authority: &str) -> Option<&str> {
    let port_ok = |p: &str| !p.is_empty() && p.len() <= 5 && p.bytes().all(|b| b.is_ascii_digit());
    if let Some(rest) = authority.strip_prefix('[') {
        let (inside, after) = rest.split_once(']')?;
        return match after.strip_prefix(':') {
            None if after.is_empty() => Some(inside),
            Some(port) if port_ok(port) => Some(inside),
            _ => None,
        };
    }
    let (name, port) = match authority.split_once(':') {
        Some((name, port)) => (name, Some(port)),
        None => (authority, None),
    };
    if name.is_empty() || port.is_some_and(|p| !port_ok(p)) {
        return None;
    }
    Some(name)
}

/// `localhost`, `*.localhost`, 127.0.0.0/8 and `::1` (brackets optional).
pub fn is_loopback_host(host: &str) -> bool {
    let host = host.trim_start_matches('[').trim_end_matches(']');
    let lower = host.to_ascii_lowercase();
    let name = lower.trim_end_matches('.');
    if name == "localhost" || name.ends_with(".localhost") {
        return true;
    }
    host.parse::<std::net::IpAddr>()
        .is_ok_and(|ip| ip.is_loopback())
}

#[cfg(test)]
mod tests {
    use axum::http::HeaderValue;

    use super::*;

    fn headers(host: Option<&str>, origin: Option<&str>) -> HeaderMap {
        let mut h = HeaderMap::new();
        if let Some(host) = host {
            h.insert(header::HOST, HeaderValue::from_str(host).expect("header"));
        }
        if let Some(origin) = origin {
            h.insert(
                header::ORIGIN,
                HeaderValue::from_str(origin).expect("header"),
            );
        }
        h
    }

    fn code(
        guard: &CrossSiteGuard,
        method: Method,
        host: Option<&str>,
        origin: Option<&str>,
    ) -> u16 {
        match guard.check(&method, &headers(host, origin)) {
            Ok(()) => 200,
            Err(e) => e.status_and_code().0.as_u16(),
        }
    }

    #[test]
    fn a_malformed_or_doubled_host_is_refused() {
        let guard = CrossSiteGuard::new("127.0.0.1", Vec::new());
        for bad in [
            "[::1]evil.example",
            "[::1]:80evil",
            "127.0.0.1:80:81",
            "localhost:x",
            ":8001",
        ] {
            assert_eq!(code(&guard, Method::GET, Some(bad), None), 421, "{bad}");
        }
        for good in ["[::1]", "[::1]:8001", "127.0.0.1:8001", "localhost"] {
            assert_eq!(code(&guard, Method::GET, Some(good), None), 200, "{good}");
        }
        let mut two = headers(Some("127.0.0.1:8001"), None);
        two.append(header::HOST, HeaderValue::from_static("evil.example"));
        assert!(guard.check(&Method::GET, &two).is_err(), "two Host headers");
    }

    #[test]
    fn loopback_names() {
        for yes in [
            "localhost",
            "LOCALHOST.",
            "lab.localhost",
            "127.0.0.1",
            "127.1.2.3",
            "::1",
            "[::1]",
        ] {
            assert!(is_loopback_host(yes), "{yes}");
        }
        for no in [
            "evil.example",
            "localhost.evil.example",
            "0.0.0.0",
            "10.0.0.1",
            "",
            "::",
        ] {
            assert!(!is_loopback_host(no), "{no}");
        }
        assert_eq!(authority_host("localhost:8001"), Some("localhost"));
        assert_eq!(authority_host("[::1]:8001"), Some("::1"));
        assert_eq!(authority_host("evil.example"), Some("evil.example"));
    }

    #[test]
    fn a_loopback_server_answers_loopback_hosts_only() {
        let g = CrossSiteGuard::new("127.0.0.1", Vec::new());
        assert_eq!(code(&g, Method::GET, Some("127.0.0.1:8001"), None), 200);
        assert_eq!(code(&g, Method::GET, Some("localhost:8001"), None), 200);
        assert_eq!(code(&g, Method::GET, Some("[::1]:8001"), None), 200);
        assert_eq!(code(&g, Method::GET, None, None), 200);
        assert_eq!(code(&g, Method::GET, Some("evil.example:8001"), None), 421);
        assert_eq!(
            code(&g, Method::GET, Some("127.0.0.1.evil.example"), None),
            421
        );
        // Bound to every address: reached by names it cannot know.
        let open = CrossSiteGuard::new("0.0.0.0", Vec::new());
        assert_eq!(code(&open, Method::GET, Some("kv-wal:8000"), None), 200);
    }

    #[test]
    fn state_changes_from_other_origins_are_refused() {
        let g = CrossSiteGuard::new("127.0.0.1", vec!["http://localhost:3000".into()]);
        let host = Some("127.0.0.1:8001");
        assert_eq!(
            code(&g, Method::POST, host, None),
            200,
            "curl sends no Origin"
        );
        assert_eq!(
            code(&g, Method::POST, host, Some("http://127.0.0.1:8001")),
            200
        );
        assert_eq!(
            code(&g, Method::POST, host, Some("http://localhost:3000")),
            200
        );
        assert_eq!(
            code(&g, Method::POST, host, Some("http://evil.example")),
            403
        );
        assert_eq!(
            code(&g, Method::DELETE, host, Some("http://127.0.0.1:8002")),
            403
        );
        assert_eq!(code(&g, Method::POST, host, Some("null")), 403);
        // Reads are not state changes; what they return is kept from other origins by the
        // browser's same-origin policy.
        assert_eq!(
            code(&g, Method::GET, host, Some("http://evil.example")),
            200
        );
    }
}
