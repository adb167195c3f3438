//! Our own extractors, so that every rejection speaks the [`ApiError`] JSON shape.
//!
//! - [`KvBody`]: the `POST /kv` body, parsed as JSON whatever the Content-Type says (the
//!   runbook's quick reference uses `curl -d`, which sends a form content type). The value is
//!   kept as its JSON text ([`RawValue`]) so it is stored exactly as sent, never
//!   re-serialised.
//! - [`KeyPath`]: the percent-decoded `{key}` of `/kv/{key}`, validated like a body key.
//! - [`Query`]: axum's query extractor with our rejection.
//!
//! The body limit (`MAX_VALUE_BYTES` + room for the key and framing) is enforced while the
//! body streams in ([`read_body`]), so an oversized body is refused before it is buffered;
//! a Content-Length over the limit is refused before any of the body is read.

use std::collections::HashMap;

use axum::extract::{FromRequest, FromRequestParts, Path, Request};
use axum::http::request::Parts;
use serde::de::DeserializeOwned;
use serde_json::value::RawValue;

use crate::server::error::ApiError;
use crate::server::limits::{announced_length, read_body};
use crate::server::state::AppState;

/// The longest key accepted, in bytes of UTF-8.
pub const MAX_KEY_BYTES: usize = 1024;

/// The deepest nesting of arrays and objects accepted in a value. Values are stored as
/// sent, and nothing in the server parses them into a tree, but clients do: serde_json
/// stops at 128 levels, and `GET /kv` and `/admin/wal` wrap each value 2 and 3 levels deep.
/// Without a limit a 1 MiB value of `[[[[...` is accepted and then breaks every client that
/// lists the store.
pub const MAX_VALUE_DEPTH: usize = 100;

/// Room in a body beyond the value: the key (up to 1 KiB) and the JSON around both.
pub const BODY_OVERHEAD_BYTES: usize = 2048;

/// A validated `{"key": string, "value": any JSON}` body.
#[derive(Debug)]
pub struct KvBody {
    /// The key, 1..=1024 bytes of UTF-8.
    pub key: String,
    /// The value's JSON text, as sent.
    pub value: Box<RawValue>,
}

impl FromRequest<AppState> for KvBody {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &AppState) -> Result<Self, Self::Rejection> {
        let limit = state
            .config()
            .max_value_bytes
            .saturating_add(BODY_OVERHEAD_BYTES);
        let announced = announced_length(req.headers());
        // The body's room in the server-wide budget is held until it is parsed.
        let (bytes, _share) = read_body(
            req.into_body(),
            announced,
            state.body_budget(),
            limit,
            &state.config().limits,
        )
        .await?;
        parse_body(&bytes, state.config().max_value_bytes)
    }
}

/// Parse and validate a `POST /kv` body.
pub fn parse_body(bytes: &[u8], max_value_bytes: usize) -> Result<KvBody, ApiError> {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Err(ApiError::EmptyBody);
    }
    // A map of raw values keeps "value": null apart from a missing "value", which an
    // `Option` field would not.
    let mut fields: HashMap<String, Box<RawValue>> =
        serde_json::from_slice(bytes).map_err(|e| {
            if e.classify() == serde_json::error::Category::Data {
                ApiError::InvalidJson(format!(
                    r#"expected a JSON object like {{"key": "k", "value": "v"}} ({e})"#
                ))
            } else {
                ApiError::InvalidJson(e.to_string())
            }
        })?;
    let key = fields.remove("key").ok_or(ApiError::MissingKey)?;
    let key: String = serde_json::from_str(key.get()).map_err(|e| match json_kind(key.get()) {
        // A string serde_json cannot decode: a lone surrogate like "\ud800", not Unicode.
        "a string" => ApiError::InvalidKey(format!(
            r#""key" must be a string of Unicode characters ({e})"#
        )),
        kind => ApiError::InvalidKey(format!(r#""key" must be a JSON string, got {kind}"#)),
    })?;
    validate_key(&key)?;
    let value = fields.remove("value").ok_or(ApiError::MissingValue)?;
    let bytes = value.get().len();
    if bytes > max_value_bytes {
        return Err(ApiError::ValueTooLarge {
            bytes,
            limit: max_value_bytes,
        });
    }
    if nesting_exceeds(value.get(), MAX_VALUE_DEPTH) {
        return Err(ApiError::ValueTooDeep {
            limit: MAX_VALUE_DEPTH,
        });
    }
    Ok(KvBody { key, value })
}

/// Whether the JSON text `json` (already known to be valid) nests arrays and objects more
/// than `max` levels deep. A scan, not a parse: no recursion, no allocation.
fn nesting_exceeds(json: &str, max: usize) -> bool {
    let mut depth = 0usize;
    let mut in_string = false;
    let mut escaped = false;
    for b in json.bytes() {
        if in_string {
            match (escaped, b) {
                (true, _) => escaped = false,
                (false, b'\\') => escaped = true,
                (false, b'"') => in_string = false,
                _ => {}
            }
            continue;
        }
        match b {
            b'"' => in_string = true,
            b'[' | b'{' => {
                depth += 1;
                if depth > max {
                    return true;
                }
            }
            b']' | b'}' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    false
}

/// Check a key's length: 1..=1024 bytes (it is a `String`, so already UTF-8).
pub fn validate_key(key: &str) -> Result<(), ApiError> {
    if key.is_empty() {
        return Err(ApiError::InvalidKey("the key must not be empty".into()));
    }
    if key.len() > MAX_KEY_BYTES {
        return Err(ApiError::InvalidKey(format!(
            "the key is {} bytes; keys may be at most {MAX_KEY_BYTES} bytes of UTF-8",
            key.len()
        )));
    }
    Ok(())
}

fn json_kind(text: &str) -> &'static str {
    match text.trim_start().as_bytes().first() {
        Some(b'{') => "an object",
        Some(b'[') => "an array",
        Some(b'"') => "a string",
        Some(b't' | b'f') => "a boolean",
        Some(b'n') => "null",
        _ => "a number",
    }
}

/// The `{key}` of `/kv/{key}`, percent-decoded and validated.
#[derive(Debug)]
pub struct KeyPath(pub String);

impl<S: Send + Sync> FromRequestParts<S> for KeyPath {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let Path(key) = Path::<String>::from_request_parts(parts, state)
            .await
            .map_err(|rejection| {
                ApiError::InvalidPath(format!(
                    "the key in the path cannot be decoded: {}",
                    rejection.body_text()
                ))
            })?;
        validate_key(&key)?;
        Ok(KeyPath(key))
    }
}

/// Query parameters, rejected as 400 `invalid_query`.
#[derive(Debug)]
pub struct Query<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequestParts<S> for Query<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        axum::extract::Query::<T>::from_request_parts(parts, state)
            .await
            .map(|q| Query(q.0))
            .map_err(|rejection| ApiError::InvalidQuery(rejection.body_text()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn code(body: &str) -> &'static str {
        match parse_body(body.as_bytes(), 16) {
            Ok(_) => "ok",
            Err(e) => e.status_and_code().1,
        }
    }

    #[test]
    fn bodies() {
        assert_eq!(code(r#"{"key":"k","value":{"a":[1,2]}}"#), "ok");
        assert_eq!(code(r#"{"key":"k","value":null}"#), "ok");
        assert_eq!(code(""), "empty_body");
        assert_eq!(code("  \n"), "empty_body");
        assert_eq!(code("{"), "invalid_json");
        assert_eq!(code("[1]"), "invalid_json");
        assert_eq!(code(r#"{"key":"k","value":1} x"#), "invalid_json");
        assert_eq!(code(r#"{"value":1}"#), "missing_key");
        assert_eq!(code(r#"{"key":1,"value":1}"#), "invalid_key");
        assert_eq!(code(r#"{"key":"","value":1}"#), "invalid_key");
        assert_eq!(code(r#"{"key":"\ud800","value":1}"#), "invalid_key");
        let Err(e) = parse_body(br#"{"key":"\ud800","value":1}"#, 16) else {
            panic!("a lone surrogate is not a key");
        };
        assert!(e.to_string().contains("Unicode"), "{e}");
        assert_eq!(code(r#"{"key":"k"}"#), "missing_value");
        assert_eq!(
            code(r#"{"key":"k","value":"0123456789abcdef"}"#),
            "value_too_large"
        );
    }

    #[test]
    fn nesting_is_counted_outside_strings_only() {
        assert!(!nesting_exceeds("[[1]]", 2));
        assert!(nesting_exceeds("[[[1]]]", 2));
        assert!(nesting_exceeds(r#"{"a":{"b":{}}}"#, 2));
        assert!(!nesting_exceeds(r#"["[[[[", "\\\"[[[["]"#, 1));
        assert!(!nesting_exceeds("[[]][[]][[]]", 2));
        let deep = format!(
            "{}{}",
            "[".repeat(MAX_VALUE_DEPTH + 1),
            "]".repeat(MAX_VALUE_DEPTH + 1)
        );
        let body = format!(r#"{{"key":"k","value":{deep}}}"#);
        assert_eq!(
            parse_body(body.as_bytes(), 1 << 20)
                .map(|_| ())
                .map_err(|e| e.status_and_code().1),
            Err("value_too_deep")
        );
    }

    #[test]
    fn the_value_is_kept_as_sent() {
        let body =
            parse_body(br#"{"key":"k\u00e9","value": {"b":1, "a":2}}"#, 100).expect("valid body");
        assert_eq!(body.key, "k\u{e9}");
        assert_eq!(body.value.get(), r#"{"b":1, "a":2}"#);
    }

    #[test]
    fn key_length_is_counted_in_bytes() {
        assert!(validate_key(&"a".repeat(1024)).is_ok());
        assert!(validate_key(&"a".repeat(1025)).is_err());
        assert!(validate_key(&"\u{e9}".repeat(513)).is_err());
    }
}
