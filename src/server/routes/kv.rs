//! The key-value endpoints: `POST /kv`, `GET|DELETE /kv/{key}`, `GET /kv`.
//!
//! Values are stored as the JSON text the client sent and handed back as raw JSON, so a
//! value round-trips byte for byte.

use std::collections::BTreeMap;

use axum::Json;
use axum::extract::State;
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

use walab_store::{Value, Write};

use crate::server::error::ApiError;
use crate::server::extract::{KeyPath, KvBody, Query};
use crate::server::state::AppState;

/// The answer to `POST /kv`.
#[derive(Debug, Serialize)]
pub struct PutReply {
    key: String,
    value: Box<RawValue>,
    wal_enabled: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    sequence: Option<u64>,
}

/// `POST /kv`.
pub async fn put(State(state): State<AppState>, body: KvBody) -> Result<Json<PutReply>, ApiError> {
    let KvBody { key, value } = body;
    let write = Write::Put {
        key: key.clone(),
        value: Value::from(value.get().as_bytes()),
    };
    let ack = state.write("put", write).await?.unwrap_or_default();
    Ok(Json(PutReply {
        key,
        value,
        wal_enabled: state.config().wal_enabled(),
        sequence: ack.sequence,
    }))
}

/// The answer to `GET /kv/{key}`.
#[derive(Debug, Serialize)]
pub struct GetReply {
    key: String,
    value: Box<RawValue>,
}

/// `GET /kv/{key}`.
pub async fn get(
    State(state): State<AppState>,
    KeyPath(key): KeyPath,
) -> Result<Json<GetReply>, ApiError> {
    let lookup = key.clone();
    match state.read("get", move |b| b.get(&lookup)).await? {
        Some(value) => Ok(Json(GetReply {
            key,
            value: stored_json(&value),
        })),
        None => Err(ApiError::KeyNotFound(key)),
    }
}

/// The answer to `DELETE /kv/{key}`.
#[derive(Debug, Serialize)]
pub struct DeleteReply {
    key: String,
    deleted: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    sequence: Option<u64>,
}

/// `DELETE /kv/{key}`.
pub async fn delete(
    State(state): State<AppState>,
    KeyPath(key): KeyPath,
) -> Result<Json<DeleteReply>, ApiError> {
    let deleted = state.write("delete", Write::Delete { key: key.clone() });
    match deleted.await? {
        Some(ack) => Ok(Json(DeleteReply {
            key,
            deleted: true,
            sequence: ack.sequence,
        })),
        None => Err(ApiError::KeyNotFound(key)),
    }
}

/// Optional paging for `GET /kv`.
#[derive(Debug, Deserialize)]
pub struct ListParams {
    /// Return at most this many pairs (in key order).
    limit: Option<usize>,
    /// Return only keys starting with this.
    prefix: Option<String>,
}

/// The answer to `GET /kv`.
#[derive(Debug, Serialize)]
pub struct ListReply {
    data: BTreeMap<String, Box<RawValue>>,
    count: usize,
    /// Present and true when `limit` cut the listing short.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    truncated: bool,
}

/// `GET /kv[?limit=&prefix=]`.
pub async fn list(
    State(state): State<AppState>,
    Query(params): Query<ListParams>,
) -> Result<Json<ListReply>, ApiError> {
    let pairs = state.blocking("list", |b| b.list()).await?;
    let prefix = params.prefix.unwrap_or_default();
    let limit = params.limit.unwrap_or(usize::MAX);
    let mut matching = pairs.into_iter().filter(|(k, _)| k.starts_with(&prefix));
    let data: BTreeMap<_, _> = matching
        .by_ref()
        .take(limit)
        .map(|(k, v)| (k, stored_json(&v)))
        .collect();
    let truncated = matching.next().is_some();
    Ok(Json(ListReply {
        count: data.len(),
        data,
        truncated,
    }))
}

/// A stored value as JSON. The server only stores JSON text, but a data directory may hold
/// anything; bytes that are not JSON come back as a JSON string rather than an error.
pub fn stored_json(bytes: &[u8]) -> Box<RawValue> {
    serde_json::from_slice::<Box<RawValue>>(bytes).unwrap_or_else(|_| {
        let text = String::from_utf8_lossy(bytes);
        // Serialising a string cannot fail; `null` keeps this function total anyway.
        serde_json::value::to_raw_value(&text).unwrap_or_default()
    })
}
