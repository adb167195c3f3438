//! `GET /health`: 200 once the backend is open, 503 `recovering` until then, so a
//! supervisor can tell "still replaying the log" from "down".

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde_json::{Value, json};

use crate::state::AppState;

/// `GET /health`.
pub async fn health(State(state): State<AppState>) -> (StatusCode, Json<Value>) {
    let config = state.config();
    let (status, word) = if state.is_ready() {
        (StatusCode::OK, "ok")
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "recovering")
    };
    let mut body = json!({
        "status": word,
        "service": config.service_name,
        "backend": config.backend,
        "wal_enabled": config.wal_enabled(),
    });
    if !state.is_ready() {
        body["detail"] = json!("the store is still recovering from its log; retry in a moment");
    }
    (status, Json(body))
}
