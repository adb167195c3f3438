//! What every request passes through to be counted, and `GET /metrics`, which reads the
//! counts: the request side of [`crate::server::metrics`], which only keeps the registry.

use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::http::{HeaderValue, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::server::error::ApiError;
use crate::server::method::method_label;
use crate::server::metrics::gauge;
use crate::server::state::AppState;

/// Middleware: count and time every request by its matched route.
pub async fn track(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_owned(), |p| p.as_str().to_owned());
    let method = method_label(req.method());
    let started = Instant::now();
    let response = next.run(req).await;
    state.metrics().observe_request(
        &route,
        method,
        response.status().as_u16(),
        started.elapsed(),
    );
    response
}

/// `GET /metrics`.
pub async fn handler(State(state): State<AppState>) -> Result<Response, ApiError> {
    if let Ok(backend) = state.backend() {
        let metrics = state.metrics().clone();
        // stats() takes the WAL's log lock, which a sync in progress holds, and asks etcd
        // over the network: read both on the blocking pool, not on an async worker.
        let refreshed = tokio::task::spawn_blocking(move || {
            match backend.len() {
                Ok(n) => metrics.items.set(gauge(n as u64)),
                Err(e) => tracing::debug!(error = %e, "counting the keys for metrics failed"),
            }
            metrics.refresh(&backend.stats());
        })
        .await;
        if let Err(e) = refreshed {
            tracing::warn!(error = %e, "reading the backend's stats for metrics failed");
        }
    }
    let text = state.metrics().render().map_err(|e| {
        tracing::error!(error = %e, "could not encode metrics");
        ApiError::Internal
    })?;
    let mut response = text.into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
    );
    Ok(response)
}
