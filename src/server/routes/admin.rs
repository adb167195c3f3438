//! `/admin/*`: stats, the log, checkpoints, crashes on demand, clear.
//!
//! Nested under `/admin` with its own layer: when `ADMIN_TOKEN` is set, every admin route
//! needs `Authorization: Bearer <token>`. `/admin/crash` exists to show what survives a
//! crash, so it kills the process the way a crash would: SIGKILL, no destructors, no flush.

use std::time::Duration;

use axum::extract::{Request, State};
use axum::http::header;
use axum::middleware::{self, Next};
use axum::response::Response;
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use serde_json::{Map, Value, json};
use walab_store::{CrashMode, Write};

use crate::server::error::ApiError;
use crate::server::extract::Query;
use crate::server::routes::kv::stored_json;
use crate::server::state::AppState;
use crate::server::timefmt::rfc3339_from_micros;

/// The most records `GET /admin/wal` lists, whatever `limit` asks for.
const MAX_WAL_LIMIT: usize = 10_000;
/// The most key and value bytes `GET /admin/wal` reads into one answer: older records are
/// left out once the newer ones hold this much (`count` then falls short of `total`).
const MAX_WAL_LISTING_BYTES: usize = 8 << 20;

/// How long the crash reply has to reach the client before the process dies.
const CRASH_DELAY: Duration = Duration::from_millis(50);

/// The `/admin` router, with the bearer layer when a token is configured.
pub fn router(state: &AppState) -> Router<AppState> {
    let routes = Router::new()
        .route("/stats", get(stats))
        .route("/wal", get(wal))
        .route("/checkpoint", post(checkpoint))
        .route("/crash", post(crash))
        .route("/clear", post(clear));
    // route_layer: unknown /admin paths still answer 404, not 401.
    routes.route_layer(middleware::from_fn_with_state(state.clone(), require_token))
}

async fn require_token(
    State(state): State<AppState>,
    req: Request,
    next: Next,
) -> Result<Response, ApiError> {
    if let Some(token) = &state.config().admin_token {
        let presented = req
            .headers()
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(bearer_token)
            .unwrap_or("");
        if !constant_time_eq(presented.as_bytes(), token.as_bytes()) {
            return Err(ApiError::Unauthorized);
        }
    }
    Ok(next.run(req).await)
}

/// The token of `Authorization: Bearer <token>`; the scheme is case-insensitive (RFC 9110).
fn bearer_token(value: &str) -> Option<&str> {
    let (scheme, token) = value.trim().split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| token.trim_start())
}

/// Compare `presented` with `secret` in a time that depends only on what was presented:
/// no early return at the first difference (which would leak the prefix) nor on a length
/// mismatch (which would leak the secret's length).
fn constant_time_eq(presented: &[u8], secret: &[u8]) -> bool {
    if secret.is_empty() {
        return presented.is_empty();
    }
    let mut diff = u8::from(presented.len() != secret.len());
    for (i, p) in presented.iter().enumerate() {
        diff |= p ^ secret[i % secret.len()];
    }
    diff == 0
}

/// `GET /admin/stats`: the backend's own fields, then the common ones on top.
async fn stats(State(state): State<AppState>) -> Result<Json<Map<String, Value>>, ApiError> {
    let (stats, item_count, recovered, durability) = state
        .blocking("stats", |b| {
            Ok((b.stats(), b.len()?, b.recovered_entries(), b.durability()))
        })
        .await?;
    let config = state.config();
    let common = json!({
        "backend": config.backend,
        "service": config.service_name,
        "wal_enabled": config.wal_enabled(),
        "supports": config.backend.supports(),
        "item_count": item_count,
        "recovered_entries": recovered,
        "durability": durability,
        "pid": std::process::id(),
        "restarts": config.restarts,
        "uptime_seconds": state.started_at().elapsed().as_secs_f64(),
        "max_value_bytes": config.max_value_bytes,
    });
    Ok(Json(with_fields(stats, common)))
}

/// `fields`' fields flattened into `base`'s (a typed report from the backend), `fields`
/// winning where both have one.
fn with_fields(base: impl Serialize, fields: Value) -> Map<String, Value> {
    let mut out = match serde_json::to_value(base) {
        Ok(Value::Object(map)) => map,
        _ => Map::new(),
    };
    if let Value::Object(fields) = fields {
        out.extend(fields);
    }
    out
}

#[derive(Debug, Deserialize)]
struct WalParams {
    limit: Option<usize>,
}

/// The answer to `GET /admin/wal`. Typed, not built with `json!`: `json!` turns each stored
/// value into a `serde_json::Value` and unwraps, and a value serde_json stores as raw text
/// but cannot hold as a `Value` (nested over 128 deep, `1e999999`, a lone surrogate) made
/// that a panic. Here values stay raw JSON text, as `GET /kv` serves them.
#[derive(Debug, Serialize)]
struct WalReply {
    count: usize,
    entries: Vec<WalEntryReply>,
    total: u64,
    wal_enabled: bool,
}

/// One record of `GET /admin/wal`.
#[derive(Debug, Serialize)]
struct WalEntryReply {
    key: String,
    operation: &'static str,
    sequence: u64,
    /// RFC 3339; null for logs that do not record the time (etcd's).
    timestamp: Option<String>,
    value: Option<Box<RawValue>>,
}

/// `GET /admin/wal[?limit=1000]`: the records since the last checkpoint, read from disk.
async fn wal(
    State(state): State<AppState>,
    Query(params): Query<WalParams>,
) -> Result<Json<WalReply>, ApiError> {
    let limit = params.limit.unwrap_or(1000).min(MAX_WAL_LIMIT);
    let listing = state
        .blocking("wal", move |b| b.wal_entries(limit, MAX_WAL_LISTING_BYTES))
        .await?;
    let wal_enabled = state.config().wal_enabled();
    let Some(listing) = listing else {
        return Ok(Json(WalReply {
            count: 0,
            entries: Vec::new(),
            total: 0,
            wal_enabled,
        }));
    };
    let entries: Vec<WalEntryReply> = listing
        .entries
        .into_iter()
        .map(|e| WalEntryReply {
            value: e.value.as_deref().map(stored_json),
            timestamp: e.timestamp_micros.map(rfc3339_from_micros),
            key: e.key,
            operation: e.operation,
            sequence: e.sequence,
        })
        .collect();
    Ok(Json(WalReply {
        count: entries.len(),
        entries,
        total: listing.total,
        wal_enabled,
    }))
}

/// `POST /admin/checkpoint`.
async fn checkpoint(State(state): State<AppState>) -> Result<Json<Map<String, Value>>, ApiError> {
    let Some(_running) = state.try_checkpoint() else {
        return Err(ApiError::AdminBusy("checkpoint"));
    };
    let outcome = state
        .blocking("checkpoint", |b| b.checkpoint())
        .await
        .map_err(|e| match e {
            ApiError::Unsupported(msg) if !state.config().backend.supports().checkpoint => {
                ApiError::WalNotEnabled(msg)
            }
            e => e,
        })?;
    Ok(Json(with_fields(
        outcome,
        json!({ "status": "checkpoint created" }),
    )))
}

#[derive(Debug, Deserialize)]
struct CrashParams {
    mode: Option<String>,
}

/// `POST /admin/crash[?mode=process|power-loss|leader|all-members]`: the modes the backend
/// supports (its catalog row says which).
async fn crash(
    State(state): State<AppState>,
    Query(params): Query<CrashParams>,
) -> Result<Json<Map<String, Value>>, ApiError> {
    let mode = match params.mode.as_deref() {
        None => CrashMode::Process,
        Some(mode) => mode.parse::<CrashMode>().map_err(ApiError::InvalidQuery)?,
    };
    let config = state.config();
    if !config.backend.can_crash(mode) {
        return Err(ApiError::Unsupported(format!(
            "mode={mode} is not something the {} backend can do (power-loss is simulated by the WAL engine only; leader and all-members need a replicated store); it can crash with {}",
            config.backend,
            config.backend.crash_modes_text()
        )));
    }
    let (items, report) = state
        .blocking("crash", move |b| Ok((b.len()?, b.prepare_crash(mode)?)))
        .await?;
    if !mode.kills_the_server() {
        tracing::warn!(%mode, members = ?report.killed_members, "crash requested: killed etcd members");
        return Ok(Json(with_fields(
            report,
            json!({
                "status": "crashed",
                "mode": mode,
                "backend": config.backend,
                "items": items,
                "pid": std::process::id(),
            }),
        )));
    }
    tracing::warn!(%mode, items, "crash requested: killing this process");
    tokio::spawn(async {
        tokio::time::sleep(CRASH_DELAY).await;
        crate::sys::kill_self();
    });
    Ok(Json(with_fields(
        report,
        json!({
            "status": "crashing",
            "items_in_memory": items,
            "wal_enabled": config.wal_enabled(),
            "backend": config.backend,
            "mode": mode,
            "pid": std::process::id(),
        }),
    )))
}

/// `POST /admin/clear`.
async fn clear(State(state): State<AppState>) -> Result<Json<Value>, ApiError> {
    let ack = state
        .write("clear", Write::Clear)
        .await?
        .unwrap_or_default();
    let mut body = json!({ "status": "cleared", "items": 0 });
    if let Some(seq) = ack.sequence {
        body["sequence"] = json!(seq);
    }
    Ok(Json(body))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_bearer_scheme_is_case_insensitive() {
        assert_eq!(bearer_token("Bearer abc"), Some("abc"));
        assert_eq!(bearer_token("bearer abc"), Some("abc"));
        assert_eq!(bearer_token("BEARER  abc"), Some("abc"));
        assert_eq!(bearer_token("Basic abc"), None);
        assert_eq!(bearer_token("Bearer"), None);
    }

    #[test]
    fn tokens_compare_whole() {
        assert!(constant_time_eq(b"s3cret", b"s3cret"));
        assert!(!constant_time_eq(b"s3cre", b"s3cret"));
        assert!(!constant_time_eq(b"s3cretx", b"s3cret"));
        assert!(
            !constant_time_eq(b"s3cres3cret", b"s3cret"),
            "a repeat of a prefix"
        );
        assert!(!constant_time_eq(b"", b"s3cret"));
        assert!(!constant_time_eq(b"x", b""));
    }
}
