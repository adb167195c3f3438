//! What one request may hold: its headers, its share of the memory bodies take, and its
//! share of the memory answers take while they wait to be read.
//!
//! A body is buffered whole before it is parsed (a value is stored as the JSON text sent),
//! so each body in flight costs up to `MAX_VALUE_BYTES` plus framing. The per-request limit
//! alone bounds nothing: 600 clients each stalling half way through a 1 MB body pin 600 MB.
//! [`ByteBudget`] is a semaphore of bytes shared by every request of a server: a body takes
//! its announced length (or the whole per-request limit, when chunked) before a byte of it
//! is read, and gives it back when the request is done. A request that does not fit is
//! answered 503 `busy` with `Retry-After` at once, instead of waiting while it holds a
//! connection (and its body is never read). A body holds its share only while it makes
//! progress: it must keep up with `MIN_BODY_BYTES_PER_SEC` after [`RATE_GRACE`], so one
//! that announces 1 MB and sends nothing, or trickles in a byte every few seconds, is 408
//! `body_too_slow` within two seconds or so instead of holding its share until the request
//! times out.
//!
//! Answers get a budget of their own (`MAX_ANSWER_BYTES_IN_FLIGHT`): a listing of a 4 MB
//! store sent to 512 clients that never read it would otherwise pin 2 GB. An answer over
//! [`SMALL_ANSWER_BYTES`] takes its size from the budget until it is written or its
//! connection closes (the write timeout in [`crate::server::serve`] closes a connection
//! whose client stops reading); one that does not fit is answered 503 `busy` instead.

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{DefaultBodyLimit, Request, State};
use axum::http::{StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use http_body::{Body as _, Frame, SizeHint};
use http_body_util::BodyExt;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tower_http::timeout::{RequestBodyTimeoutLayer, TimeoutLayer};

use crate::server::config::Limits;
use crate::server::cross_site::{self, CrossSiteGuard};
use crate::server::error::{self, ApiError};

/// Permits are KiB, so a budget of any size fits the semaphore's `u32` counts.
const UNIT: usize = 1024;

/// How long a body may take before its average rate must reach `MIN_BODY_BYTES_PER_SEC`:
/// a connection's first moments (TCP's slow start, a client still building the body) are
/// not a stall.
pub const RATE_GRACE: Duration = Duration::from_secs(2);

/// Answers up to this size take nothing from the answer budget: the connection cap already
/// bounds them (512 × 64 KiB = 32 MiB), and the budget's bookkeeping would cost every
/// small answer.
pub const SMALL_ANSWER_BYTES: usize = 64 * 1024;

/// Bytes that bodies (requests being read, or answers waiting to be written) may hold at
/// once, shared by a server's requests.
#[derive(Debug, Clone)]
pub struct ByteBudget {
    permits: Arc<Semaphore>,
    total_units: usize,
}

/// A body's share of a [`ByteBudget`], returned when dropped.
#[derive(Debug, Default)]
pub struct Share {
    permit: Option<OwnedSemaphorePermit>,
}

impl ByteBudget {
    /// A budget of `bytes`.
    pub fn new(bytes: usize) -> ByteBudget {
        let total_units = bytes.div_ceil(UNIT).max(1);
        ByteBudget {
            permits: Arc::new(Semaphore::new(total_units)),
            total_units,
        }
    }

    /// Grow `share` to cover `bytes`, or `false` (the share unchanged) when what the others
    /// hold leaves too little. A body bigger than the whole budget may still have the whole
    /// budget, alone.
    pub fn grow(&self, share: &mut Share, bytes: usize) -> bool {
        let wanted = bytes.div_ceil(UNIT).min(self.total_units);
        let held = share.permit.as_ref().map_or(0, |p| p.num_permits());
        if wanted <= held {
            return true;
        }
        let more = u32::try_from(wanted - held).unwrap_or(u32::MAX);
        match self.permits.clone().try_acquire_many_owned(more) {
            Ok(permit) => {
                match &mut share.permit {
                    Some(held) => held.merge(permit),
                    None => share.permit = Some(permit),
                }
                true
            }
            Err(_) => false,
        }
    }
}

/// Read a request body whole, at most `limit` bytes. Its room in `budget` (the announced
/// length, or `limit` when chunked) is taken before a byte is read, so a flood of large
/// bodies is refused at once without reading them, and held until the caller drops the
/// share (once the body is parsed).
///
/// Refused: over `limit` (413, before a byte is read when `Content-Length` says so), no
/// room left in the budget (503 `busy`, at once), a pause longer than the body timeout
/// (408 `body_timeout`, from the [`bounded`] layer), or a body that falls behind
/// `limits.min_body_bytes_per_sec` once [`RATE_GRACE`] has passed (408 `body_too_slow`, at
/// the moment it falls behind, whether or not a byte arrives then).
pub async fn read_body(
    body: Body,
    announced: Option<u64>,
    budget: &ByteBudget,
    limit: usize,
    limits: &Limits,
) -> Result<(Bytes, Share), ApiError> {
    // A Content-Length over the limit is refused before reading anything: a client that
    // announced 100 MB and sent nothing yet would otherwise be waited on, not answered.
    if announced.is_some_and(|n| n > limit as u64) {
        return Err(ApiError::BodyTooLarge { limit });
    }
    let room = announced.map_or(limit, |n| n as usize);
    let mut share = Share::default();
    if room > 0 && !budget.grow(&mut share, room) {
        return Err(ApiError::Busy);
    }
    let started = Instant::now();
    let min_rate = limits.min_body_bytes_per_sec;
    let too_slow = |bytes: usize| ApiError::BodyTooSlow {
        bytes,
        ms: started.elapsed().as_millis(),
        min_rate,
    };
    let mut bytes = Vec::with_capacity(announced.map_or(0, |_| room));
    let mut body = body;
    loop {
        let frame = if min_rate == 0 {
            body.frame().await
        } else {
            // The moment the body is one byte behind the minimum rate.
            let behind = Duration::from_secs_f64((bytes.len() + 1) as f64 / min_rate as f64);
            let deadline = tokio::time::Instant::from_std(started + RATE_GRACE + behind);
            tokio::time::timeout_at(deadline, body.frame())
                .await
                .map_err(|_| too_slow(bytes.len()))?
        };
        let Some(frame) = frame else { break };
        let frame = frame.map_err(|e| {
            if is_body_timeout(&e) {
                ApiError::BodyTimeout {
                    ms: limits.body_timeout.as_millis(),
                }
            } else {
                ApiError::InvalidJson(format!("the request body could not be read: {e}"))
            }
        })?;
        let Ok(data) = frame.into_data() else {
            continue; // trailers
        };
        let len = bytes.len().saturating_add(data.len());
        if len > limit {
            return Err(ApiError::BodyTooLarge { limit });
        }
        bytes.extend_from_slice(&data);
    }
    Ok((Bytes::from(bytes), share))
}

/// Frames a held answer is given to hyper in: hyper asks for the next only once it has
/// room in its write buffer, so the share lives until the client has read all but the
/// last few of them.
const ANSWER_FRAME_BYTES: usize = 64 * 1024;

/// An answer's bytes with its share of the answer budget, handed to hyper a frame at a
/// time and given back when the last frame is taken or the connection drops it.
#[derive(Debug)]
struct HeldAnswer {
    rest: Bytes,
    share: Option<Share>,
}

impl http_body::Body for HeldAnswer {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        if self.rest.is_empty() {
            self.share = None;
            return Poll::Ready(None);
        }
        let n = self.rest.len().min(ANSWER_FRAME_BYTES);
        let frame = self.rest.split_to(n);
        Poll::Ready(Some(Ok(Frame::data(frame))))
    }

    fn is_end_stream(&self) -> bool {
        self.rest.is_empty()
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::with_exact(self.rest.len() as u64)
    }
}

/// Middleware: an answer over [`SMALL_ANSWER_BYTES`] takes its size from the answer budget
/// until it is written; when the answers already waiting leave too little, 503 `busy`.
async fn answer_budget(State(budget): State<ByteBudget>, req: Request, next: Next) -> Response {
    let response = next.run(req).await;
    let Some(size) = response.body().size_hint().exact() else {
        return response; // a stream: written as it is made, never held whole
    };
    let size = usize::try_from(size).unwrap_or(usize::MAX);
    if size <= SMALL_ANSWER_BYTES {
        return response;
    }
    let mut share = Share::default();
    if !budget.grow(&mut share, size) {
        return ApiError::AnswersBusy.into_response();
    }
    let (parts, body) = response.into_parts();
    // The handlers' answers are whole in memory already: this takes them, it does not wait.
    match axum::body::to_bytes(body, size).await {
        Ok(rest) => Response::from_parts(
            parts,
            Body::new(HeldAnswer {
                rest,
                share: Some(share),
            }),
        ),
        Err(e) => {
            tracing::warn!(error = %e, "an answer could not be read for sending");
            ApiError::Internal.into_response()
        }
    }
}

/// Wrap `router` in the layers every server of the lab (the API and the lab's page) puts
/// around its routes, innermost first: the body limit (`body_limit` bytes) applies while
/// the body streams in, and so does the body timeout (the longest pause between two pieces
/// of it); then the header limit and the browser checks, before any handler runs; the
/// request timeout (answered `timeout_status`) bounds the whole; bodiless errors get the
/// JSON shape; and a large answer holds its share of `MAX_ANSWER_BYTES_IN_FLIGHT` until it
/// is written.
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
        .layer(middleware::from_fn_with_state(
            ByteBudget::new(limits.max_answer_bytes_in_flight),
            answer_budget,
        ))
}

/// Whether reading a body failed because the body timeout of [`bounded`] fired.
fn is_body_timeout(err: &(dyn std::error::Error + 'static)) -> bool {
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
        let budget = ByteBudget::new(10 * UNIT);
        let mut a = Share::default();
        assert!(budget.grow(&mut a, 3000));
        assert!(
            budget.grow(&mut a, 6000),
            "a share grows as its body arrives"
        );
        let mut b = Share::default();
        assert!(
            !budget.grow(&mut b, 6000),
            "6 KiB more does not fit beside 6 KiB"
        );
        assert!(budget.grow(&mut b, 100), "a small one still fits");
        drop(a);
        assert!(
            budget.grow(&mut b, 8 * UNIT),
            "fits again once the first is done"
        );
        drop(b);
        // Over the whole budget: it may still be held, alone.
        let mut whole = Share::default();
        assert!(budget.grow(&mut whole, 1 << 30));
        assert!(!budget.grow(&mut Share::default(), 1));
        drop(whole);
        assert!(budget.grow(&mut Share::default(), 10 * UNIT));
    }
}
