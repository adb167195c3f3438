//! The route table, in one place, and the layers around it.
//!
//! - [`health`]: `GET /health`, 503 while the backend recovers.
//! - [`kv`]: `POST /kv`, `GET|DELETE /kv/{key}`, `GET /kv`.
//! - [`admin`]: `/admin/*`, nested with its own bearer-token layer.
//! - `GET /openapi.json`: [`OPENAPI`], the hand-written OpenAPI description of all of these
//!   (`tests/openapi.rs` keeps it true to this table).
//!
//! Unknown paths and wrong methods answer the same JSON error shape as everything else.

pub mod admin;
pub mod health;
pub mod kv;
pub mod observe;

use axum::Router;
use axum::extract::{MatchedPath, OriginalUri, Request};
use axum::http::{Method, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::Response;
use axum::routing::get;

use crate::server::cross_site::CrossSiteGuard;
use crate::server::error::ApiError;
use crate::server::extract::BODY_OVERHEAD_BYTES;
use crate::server::state::AppState;
use crate::server::{limits, telemetry};

/// The whole HTTP API over `state`. Tests drive this with `tower::ServiceExt::oneshot`.
pub fn app(state: AppState) -> Router {
    let body_limit = state
        .config()
        .max_value_bytes
        .saturating_add(BODY_OVERHEAD_BYTES);
    let limits = state.config().limits;
    let guard = CrossSiteGuard::new(&state.config().host, state.config().allowed_origins.clone());
    let router = Router::new()
        .route("/health", get(health::health))
        .route("/kv", get(kv::list).post(kv::put))
        // A wildcard, so `/kv/a/b` reads the key "a/b" as well as `/kv/a%2Fb` does.
        .route("/kv/{*key}", get(kv::get).delete(kv::delete))
        .route("/metrics", get(observe::handler))
        .route("/openapi.json", get(openapi))
        .nest("/admin", admin::router(&state))
        .fallback(no_route)
        .method_not_allowed_fallback(method_not_allowed);
    let router = limits::bounded(
        router,
        limits,
        body_limit,
        guard,
        StatusCode::SERVICE_UNAVAILABLE,
    )
    // Around those, so it times and counts every answer, rejections included, labelled by
    // the matched route.
    .layer(middleware::from_fn_with_state(
        state.clone(),
        observe::track,
    ))
    .layer(middleware::from_fn(mark_polled))
    // Outermost: every request has its span and its log line, whatever answered it.
    .layer(telemetry::request_log());
    router.with_state(state)
}

/// The routes that the lab's supervisor, its page and Prometheus read every second or so.
const POLLED: &[&str] = &["/health", "/metrics", "/admin/stats", "/admin/wal"];

/// Middleware: mark the answers to `GET` on a [`POLLED`] route, which the request log
/// keeps to DEBUG.
async fn mark_polled(req: Request, next: Next) -> Response {
    let polled = req.method() == Method::GET
        && req
            .extensions()
            .get::<MatchedPath>()
            .is_some_and(|route| POLLED.contains(&route.as_str()));
    let mut response = next.run(req).await;
    if polled {
        response.extensions_mut().insert(telemetry::Polled);
    }
    response
}

/// The OpenAPI 3.1 description of every endpoint, written by hand (`src/server/openapi.json`).
pub const OPENAPI: &str = include_str!("openapi.json");

/// `GET /openapi.json`.
async fn openapi() -> ([(header::HeaderName, &'static str); 1], &'static str) {
    ([(header::CONTENT_TYPE, "application/json")], OPENAPI)
}

async fn no_route(method: Method, OriginalUri(uri): OriginalUri) -> ApiError {
    ApiError::NoRoute {
        method: method.to_string(),
        path: uri.path().to_owned(),
    }
}

async fn method_not_allowed(method: Method, OriginalUri(uri): OriginalUri) -> ApiError {
    ApiError::MethodNotAllowed {
        method: method.to_string(),
        path: uri.path().to_owned(),
    }
}
