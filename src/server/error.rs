//! Every way a request can fail, and the one place each becomes a status and a JSON body.
//!
//! Handlers and extractors return [`ApiError`]; its `IntoResponse` writes
//! `{"error": code, "detail": sentence}`. [`From<StoreError>`] is the only place a storage
//! failure becomes HTTP. Bad input is always a 4xx with a sentence a person can act on; a
//! 500 means a bug (a panic in a blocking task), never bad input.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;
use walab_store::StoreError;

/// A request that did not succeed.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// The backend is still being opened (WAL recovery).
    #[error("the store is still recovering from its log; retry in a moment")]
    Recovering,
    /// No such key.
    #[error("Key '{0}' not found")]
    KeyNotFound(String),
    /// No route matches the path.
    #[error(
        "No route for {method} {path}; GET /openapi.json describes every endpoint (/health, /kv, /kv/{{key}}, /admin/*, /metrics)"
    )]
    NoRoute {
        /// The request method.
        method: String,
        /// The request path.
        path: String,
    },
    /// The path exists, the method does not.
    #[error("{method} is not allowed on {path}")]
    MethodNotAllowed {
        /// The request method.
        method: String,
        /// The request path.
        path: String,
    },
    /// The body is not JSON, or not the expected object.
    #[error("the body is not valid JSON: {0}")]
    InvalidJson(String),
    /// The body is empty.
    #[error(r#"the body is empty; send a JSON object like {{"key": "k", "value": "v"}}"#)]
    EmptyBody,
    /// The body has no "key".
    #[error(r#"the body has no "key"; send a JSON object like {{"key": "k", "value": "v"}}"#)]
    MissingKey,
    /// The body has no "value".
    #[error(r#"the body has no "value"; send a JSON object like {{"key": "k", "value": "v"}} (any JSON value)"#)]
    MissingValue,
    /// The key is not acceptable.
    #[error("{0}")]
    InvalidKey(String),
    /// The body is larger than the server reads.
    #[error("the request body is over {limit} bytes; values may be at most MAX_VALUE_BYTES")]
    BodyTooLarge {
        /// The body limit.
        limit: usize,
    },
    /// The value is larger than `MAX_VALUE_BYTES`.
    #[error("the value is {bytes} bytes of JSON; the limit is {limit} (MAX_VALUE_BYTES)")]
    ValueTooLarge {
        /// The value's size.
        bytes: usize,
        /// The limit.
        limit: usize,
    },
    /// The value nests arrays and objects too deep.
    #[error(
        "the value nests arrays and objects more than {limit} levels deep; at most {limit} are accepted"
    )]
    ValueTooDeep {
        /// The deepest nesting accepted.
        limit: usize,
    },
    /// A query parameter is malformed.
    #[error("{0}")]
    InvalidQuery(String),
    /// The path cannot be decoded (bad percent-encoding, not UTF-8).
    #[error("{0}")]
    InvalidPath(String),
    /// A checkpoint asked of a backend without a log.
    #[error("{0}")]
    WalNotEnabled(String),
    /// The backend cannot do this.
    #[error("{0}")]
    Unsupported(String),
    /// The backend refuses the content.
    #[error("{0}")]
    Invalid(String),
    /// The backend refuses the content because it is too large.
    #[error("{0}")]
    TooLarge(String),
    /// `/admin` needs a bearer token.
    #[error("this endpoint needs the header 'Authorization: Bearer <ADMIN_TOKEN>'")]
    Unauthorized,
    /// The engine refuses writes until restarted.
    #[error("{0}")]
    Poisoned(String),
    /// A storage operation failed. The detail says what failed, and where: the lab runs on
    /// the user's own machine, and "No space left on device" is what they need to act.
    #[error("{0}")]
    Storage(String),
    /// A state-changing request from a web page on another origin.
    #[error(
        "requests from web pages on {0} may not change this store; only its own origin and ALLOWED_ORIGINS may (curl and scripts send no Origin and are not affected)"
    )]
    CrossOrigin(String),
    /// A `Host` that does not name this loopback server (DNS rebinding).
    #[error(
        "this server listens on a loopback address and answers only Host: localhost or a loopback address, not '{0}'"
    )]
    MisdirectedHost(String),
    /// The request line and headers are over `MAX_HEADER_BYTES`.
    #[error(
        "the request's headers are {bytes} bytes; at most {limit} are accepted (MAX_HEADER_BYTES)"
    )]
    HeadersTooLarge {
        /// Their size.
        bytes: usize,
        /// The limit.
        limit: usize,
    },
    /// The bodies being read already hold `MAX_BODY_BYTES_IN_FLIGHT`.
    #[error(
        "the server is reading too many request bodies at once (MAX_BODY_BYTES_IN_FLIGHT); retry in a moment"
    )]
    Busy,
    /// The body stopped arriving for longer than `BODY_TIMEOUT_MS`.
    #[error(
        "the request body stopped arriving for {ms} ms (BODY_TIMEOUT_MS); send it whole and promptly"
    )]
    BodyTimeout {
        /// The timeout.
        ms: u128,
    },
    /// The body arrived slower than `MIN_BODY_BYTES_PER_SEC`.
    #[error(
        "the request body arrived too slowly: {bytes} bytes in {ms} ms, under {min_rate} bytes a second (MIN_BODY_BYTES_PER_SEC); send it whole and promptly"
    )]
    BodyTooSlow {
        /// Bytes received.
        bytes: usize,
        /// Since the body began.
        ms: u128,
        /// The minimum rate.
        min_rate: u64,
    },
    /// Large answers not yet read by their clients already hold `MAX_ANSWER_BYTES_IN_FLIGHT`.
    #[error(
        "the server holds too many large answers that their clients have not read yet (MAX_ANSWER_BYTES_IN_FLIGHT); retry in a moment"
    )]
    AnswersBusy,
    /// An error status with no body of its own (a layer's timeout or refusal).
    #[error("{detail}")]
    Status {
        /// The status.
        status: StatusCode,
        /// What it means here.
        detail: String,
    },
    /// Admin work that runs one at a time is already running: answered at once instead of
    /// queued behind it.
    #[error(
        "a {0} is already running on this server; this request did nothing: try again when it finishes (GET /admin/stats shows checkpoint_running)"
    )]
    AdminBusy(&'static str),
    /// A bug: a blocking task panicked or was cancelled.
    #[error("internal error; the server log has the details")]
    Internal,
}

impl ApiError {
    /// The status and short code of this error.
    pub fn status_and_code(&self) -> (StatusCode, &'static str) {
        use ApiError as E;
        match self {
            E::Recovering => (StatusCode::SERVICE_UNAVAILABLE, "recovering"),
            E::KeyNotFound(_) | E::NoRoute { .. } => (StatusCode::NOT_FOUND, "not_found"),
            E::MethodNotAllowed { .. } => (StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed"),
            E::InvalidJson(_) => (StatusCode::BAD_REQUEST, "invalid_json"),
            E::EmptyBody => (StatusCode::BAD_REQUEST, "empty_body"),
            E::MissingKey => (StatusCode::BAD_REQUEST, "missing_key"),
            E::MissingValue => (StatusCode::BAD_REQUEST, "missing_value"),
            E::InvalidKey(_) => (StatusCode::BAD_REQUEST, "invalid_key"),
            E::BodyTooLarge { .. } => (StatusCode::PAYLOAD_TOO_LARGE, "body_too_large"),
            E::ValueTooLarge { .. } | E::TooLarge(_) => {
                (StatusCode::PAYLOAD_TOO_LARGE, "value_too_large")
            }
            E::ValueTooDeep { .. } => (StatusCode::BAD_REQUEST, "value_too_deep"),
            E::InvalidQuery(_) => (StatusCode::BAD_REQUEST, "invalid_query"),
            E::InvalidPath(_) => (StatusCode::BAD_REQUEST, "invalid_path"),
            E::WalNotEnabled(_) => (StatusCode::BAD_REQUEST, "wal_not_enabled"),
            E::Unsupported(_) => (StatusCode::BAD_REQUEST, "unsupported"),
            E::Invalid(_) => (StatusCode::BAD_REQUEST, "invalid_request"),
            E::Unauthorized => (StatusCode::UNAUTHORIZED, "unauthorized"),
            E::Poisoned(_) => (StatusCode::SERVICE_UNAVAILABLE, "store_poisoned"),
            E::Storage(_) => (StatusCode::SERVICE_UNAVAILABLE, "storage_failure"),
            E::CrossOrigin(_) => (StatusCode::FORBIDDEN, "cross_origin"),
            E::MisdirectedHost(_) => (StatusCode::MISDIRECTED_REQUEST, "misdirected_host"),
            E::HeadersTooLarge { .. } => (
                StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
                "headers_too_large",
            ),
            E::Busy | E::AnswersBusy => (StatusCode::SERVICE_UNAVAILABLE, "busy"),
            E::BodyTooSlow { .. } => (StatusCode::REQUEST_TIMEOUT, "body_too_slow"),
            E::BodyTimeout { .. } => (StatusCode::REQUEST_TIMEOUT, "body_timeout"),
            E::Status { status, .. } => (*status, status_code_word(*status)),
            E::AdminBusy(_) => (StatusCode::CONFLICT, "admin_busy"),
            E::Internal => (StatusCode::INTERNAL_SERVER_ERROR, "internal"),
        }
    }
}

impl From<StoreError> for ApiError {
    fn from(err: StoreError) -> Self {
        match err {
            StoreError::Unsupported(msg) => ApiError::Unsupported(msg),
            StoreError::TooLarge(msg) => ApiError::TooLarge(msg),
            StoreError::Invalid(msg) => ApiError::Invalid(msg),
            StoreError::Poisoned(msg) => {
                // The failure itself was logged as an error when it happened; each write
                // refused after it is only a consequence.
                tracing::warn!(error = %msg, "write refused: the store is poisoned");
                ApiError::Poisoned(msg)
            }
            StoreError::Storage(msg) => {
                tracing::error!(error = %msg, "storage failure");
                ApiError::Storage(msg)
            }
            other => {
                tracing::error!(error = %other, "unexpected store error");
                ApiError::Storage(other.to_string())
            }
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, code) = self.status_and_code();
        let body = json!({ "error": code, "detail": self.to_string() });
        let mut response = (status, axum::Json(body)).into_response();
        match self {
            ApiError::Unauthorized => {
                response
                    .headers_mut()
                    .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
            }
            ApiError::Busy | ApiError::AnswersBusy | ApiError::Recovering => {
                response
                    .headers_mut()
                    .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
            }
            _ => {}
        }
        if matches!(
            self,
            ApiError::BodyTimeout { .. } | ApiError::BodyTooSlow { .. } | ApiError::Busy
        ) {
            // The rest of the body may still arrive unread; the connection cannot be reused.
            response
                .headers_mut()
                .insert(header::CONNECTION, HeaderValue::from_static("close"));
        }
        response
    }
}

/// The `error` code for a status that has no variant of its own.
fn status_code_word(status: StatusCode) -> &'static str {
    match status.as_u16() {
        408 => "request_timeout",
        413 => "body_too_large",
        431 => "headers_too_large",
        503 => "unavailable",
        504 => "timeout",
        s if s >= 500 => "internal",
        _ => "bad_request",
    }
}

/// Middleware: give an error answer that has no body (tower-http's timeout, a layer's
/// refusal) the JSON shape every other error has, so clients parse one shape.
pub async fn json_error_bodies(
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    let response = next.run(req).await;
    let status = response.status();
    let empty = axum::body::HttpBody::size_hint(response.body()).exact() == Some(0);
    if !(status.is_client_error() || status.is_server_error()) || !empty {
        return response;
    }
    let detail = match status {
        StatusCode::SERVICE_UNAVAILABLE | StatusCode::REQUEST_TIMEOUT => {
            "the request took longer than REQUEST_TIMEOUT_MS; it may or may not have been applied, so read before retrying"
                .to_owned()
        }
        _ => format!(
            "{} {}",
            status.as_u16(),
            status.canonical_reason().unwrap_or("error")
        ),
    };
    let (mut parts, _) = response.into_parts();
    let mut answer = ApiError::Status { status, detail }.into_response();
    // Keep what the layer said besides its status (Retry-After, Allow, ...).
    for (name, value) in answer.headers().iter() {
        parts.headers.insert(name.clone(), value.clone());
    }
    parts.headers.remove(header::CONTENT_LENGTH);
    Response::from_parts(parts, std::mem::take(answer.body_mut()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn store_errors_map_to_the_documented_statuses() {
        let cases = [
            (StoreError::Unsupported("no".into()), 400),
            (StoreError::Invalid("bad".into()), 400),
            (
                StoreError::TooLarge("record of 9 bytes is over the limit of 8 bytes".into()),
                413,
            ),
            (StoreError::Poisoned("fsync failed".into()), 503),
            (StoreError::Storage("EIO at /data/x".into()), 503),
        ];
        for (err, status) in cases {
            let api = ApiError::from(err);
            assert_eq!(api.status_and_code().0.as_u16(), status, "{api:?}");
        }
    }

    #[test]
    fn storage_failures_say_what_failed() {
        let api = ApiError::from(StoreError::Storage(
            "the write was not acknowledged: write /data/1.wal: No space left on device".into(),
        ));
        assert!(api.to_string().contains("No space left on device"));
    }
}
