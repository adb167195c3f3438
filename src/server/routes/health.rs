//! `GET /health`: whether this server can do its job now, so a supervisor (`walab lab`,
//! Docker's healthcheck) can tell "up", "still replaying the log" and "broken" apart.
//!
//! - 200 `ok`: the backend is open and accepts writes.
//! - 503 `recovering` with `Retry-After`: the backend is still being opened.
//! - 503 `poisoned`: a write or sync failed, so the store refuses writes until it is
//!   restarted and recovery has read the disk again; `detail` says what failed. A
//!   supervisor should restart it.

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;

use crate::server::state::AppState;

/// `GET /health`.
pub async fn health(State(state): State<AppState>) -> Response {
    let config = state.config();
    let (status, word, detail) = match state.backend() {
        Err(_) => (
            StatusCode::SERVICE_UNAVAILABLE,
            "recovering",
            Some("the store is still recovering from its log; retry in a moment".to_owned()),
        ),
        Ok(backend) => match backend.poisoned() {
            Some(cause) => (
                StatusCode::SERVICE_UNAVAILABLE,
                "poisoned",
                Some(format!(
                    "the store refuses writes until it is restarted: {cause}"
                )),
            ),
            None => (StatusCode::OK, "ok", None),
        },
    };
    let mut body = json!({
        "status": word,
        "service": config.service_name,
        "backend": config.backend,
        "wal_enabled": config.wal_enabled(),
    });
    if let Some(detail) = detail {
        body["detail"] = json!(detail);
    }
    let mut response = (status, Json(body)).into_response();
    if word == "recovering" {
        response
            .headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
    }
    response
}
