//! What one request may hold: its headers, and its share of the memory bodies take.
//!
//! A body is buffered whole before it is parsed (a value is stored as the JSON text sent),
//! so each body in flight costs up to `MAX_VALUE_BYTES` plus framing. The per-request limit
//! alone bounds nothing: 600 clients each stalling half way through a 1 MB body pin 600 MB.
//! [`BodyBudget`] is a semaphore of bytes shared by every request of a server: a body takes
//! its announced length (or the whole per-request limit, when chunked) before a byte of it
//! is read, and gives it back when the request is done. A request that does not fit is
//! answered 503 `busy` with `Retry-After` at once, instead of waiting while it holds a
//! connection.

use std::sync::Arc;

use axum::Router;
use axum::extract::{DefaultBodyLimit, Request};
use axum::http::{StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tower_http::timeout::{RequestBodyTimeoutLayer, TimeoutLayer};

use crate::server::config::Limits;
use crate::server::cross_site::{self, CrossSiteGuard};
use crate::server::error::{self, ApiError};

/// Permits are KiB, so a budget of any size fits the semaphore's `u32` counts.
const UNIT: usize = 1024;

/// Bytes that request bodies being read may hold at once, shared by a server's requests.
#[derive(Debug, Clone)]
pub struct BodyBudget {
    permits: Arc<Semaphore>,
    total_units: usize,
}

/// A body's share of the budget, returned when dropped.
#[derive(Debug)]
pub struct BodyShare {
    _permit: Option<OwnedSemaphorePermit>,
}

impl BodyBudget {
    /// A budget of `bytes`.
    pub fn new(bytes: usize) -> BodyBudget {
        let total_units = bytes.div_ceil(UNIT).max(1);
        BodyBudget {
            permits: Arc::new(Semaphore::new(total_units)),
            total_units,
        }
    }

    /// Take room for a body of `announced` bytes (`None`: chunked, take `limit`), or
    /// [`ApiError::Busy`] when the bodies already in flight leave too little.
    pub fn take(&self, announced: Option<u64>, limit: usize) -> Result<BodyShare, ApiError> {
        let bytes = announced.map_or(limit, |n| usize::try_from(n).unwrap_or(limit).min(limit));
        if bytes == 0 {
            return Ok(BodyShare { _permit: None });
        }
        // A body bigger than the whole budget still gets the whole budget, alone.
        let units = bytes.div_ceil(UNIT).min(self.total_units);
        let units = u32::try_from(units).unwrap_or(u32::MAX);
        self.permits
            .clone()
            .try_acquire_many_owned(units)
            .map(|p| BodyShare { _permit: Some(p) })
            .map_err(|_| ApiError::Busy)
    }
}

/// Wrap `router` in the layers every server of the lab (the API and the lab's page) puts
/// around its routes, innermost first: the body limit (`body_limit` bytes) applies while
/// the body streams in, and so does the body timeout (the longest pause between two pieces
/// of it); then the header limit and the browser checks, before any handler runs; the
/// request timeout (answered `timeout_status`) bounds the whole; bodiless errors get the
/// JSON shape.
pub fn bounded<S: Clone + Send + Sync + 'static>(
    router: Router<S>,
    limits: Limits,
    body_limit: usize,
    guard: CrossSiteGuard,
    timeout_status: StatusCode,
) -> Router<S> {
    router
        .layer(DefaultBodyLimit::max(body_limit))
        .layer(RequestBodyTimeoutLayer::new(limits.body_timeout))
        .layer(middleware::from_fn_with_state(guard, cross_site::guard))
        .layer(middleware::from_fn_with_state(
            limits.max_header_bytes,
            header_limit,
        ))
        .layer(TimeoutLayer::with_status_code(
            timeout_status,
            limits.request_timeout,
        ))
        .layer(middleware::from_fn(error::json_error_bodies))
}

/// Whether reading a body failed because the body timeout of [`bounded`] fired.
pub fn is_body_timeout(err: &(dyn std::error::Error + 'static)) -> bool {
    std::iter::successors(Some(err), |e| e.source())
        .any(|e| e.is::<tower_http::timeout::TimeoutError>())
}

/// Middleware: refuse a request whose line and headers are over `max_header_bytes` with a
/// 431 in the API's JSON shape. hyper refuses past [`crate::server::serve::HYPER_MAX_HEADER_BYTES`]
/// on its own, with a bare 431; this limit sits below that one.
pub async fn header_limit(
    axum::extract::State(max_header_bytes): axum::extract::State<usize>,
    req: Request,
    next: Next,
) -> Response {
    let bytes = head_bytes(&req);
    if bytes > max_header_bytes {
        return ApiError::HeadersTooLarge {
            bytes,
            limit: max_header_bytes,
        }
        .into_response();
    }
    next.run(req).await
}

/// The size of a request's head as sent: request line and `name: value\r\n` per header.
fn head_bytes(req: &Request) -> usize {
    let line = req.method().as_str().len()
        + req.uri().path_and_query().map_or(1, |p| p.as_str().len())
        + " HTTP/1.1\r\n".len();
    req.headers()
        .iter()
        .map(|(name, value)| name.as_str().len() + value.len() + 4)
        .sum::<usize>()
        + line
        + 2
}

/// The `Content-Length` a request announces, if any.
pub fn announced_length(headers: &axum::http::HeaderMap) -> Option<u64> {
    headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bodies_share_the_budget_and_give_it_back() {
        let budget = BodyBudget::new(10 * UNIT);
        let a = budget.take(Some(6000), 1 << 20).expect("fits");
        assert!(matches!(
            budget.take(Some(6000), 1 << 20),
            Err(ApiError::Busy)
        ));
        let small = budget
            .take(Some(100), 1 << 20)
            .expect("a small one still fits");
        drop(a);
        let b = budget
            .take(None, 8 * UNIT)
            .expect("fits again once the first is done");
        drop((small, b));
        // Over the whole budget: it may still be read, alone.
        let whole = budget.take(Some(1 << 30), 1 << 30).expect("alone");
        assert!(matches!(budget.take(Some(1), 10), Err(ApiError::Busy)));
        drop(whole);
        assert!(budget.take(Some(0), 10).is_ok());
    }
}
