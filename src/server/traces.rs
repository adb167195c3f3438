//! OpenTelemetry traces, exported over OTLP/HTTP when `OTEL_EXPORTER_OTLP_ENDPOINT` is set.
//!
//! Each request is a server span (HTTP semantic conventions) with a child span for the
//! store operation; a WAL write adds, under that, the append (from the moment the writer
//! queued its record until the batch's `write()` returned), the group-commit sync it waited
//! on (with the batch size), and the apply. Recovery at start-up and every checkpoint are
//! spans of their own.
//!
//! A request that carries W3C trace context (`traceparent`, `tracestate`) gets its span
//! under the caller's, so a client's trace runs on into the server instead of stopping at
//! the wire. The headers are read by OpenTelemetry's own propagator, not by hand.
//!
//! The engine knows nothing of tracing: it reports when each step of a write happened
//! (`walab_wal::CommitTiming`), and the steps become spans here, with those times.
//!
//! The request span is made by the request log's `TraceLayer` (`crate::server::telemetry`), which
//! asks for [`server_span`] when traces are exported and records the answer with
//! [`record_response`]. When the endpoint is unset, or `OTEL_SDK_DISABLED=true` (which the
//! Rust SDK itself ignores), nothing is installed: no exporter thread, no OpenTelemetry
//! work per request.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant, SystemTime};

use axum::extract::MatchedPath;
use axum::http::header::{self, HeaderMap, HeaderName};
use axum::http::uri::Authority;
use axum::http::{StatusCode, Version};
use opentelemetry::propagation::{Extractor, TextMapPropagator as _};
use opentelemetry::trace::{
    Span as _, SpanKind, TraceContextExt as _, Tracer as _, TracerProvider as _,
};
use opentelemetry::{Context, KeyValue, global};
use opentelemetry_otlp::WithExportConfig;
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::{SdkTracerProvider, Tracer};
use tracing_opentelemetry::OpenTelemetrySpanExt;
use walab_store::WriteAck;

use crate::server::config::Config;

/// Whether spans are being exported (checked on hot paths before any span work).
static ENABLED: AtomicBool = AtomicBool::new(false);

/// The instrumentation scope every span is reported under.
const SCOPE: &str = "walab";

/// Whether traces are exported.
pub fn enabled() -> bool {
    ENABLED.load(Ordering::Relaxed)
}

/// The running exporter. Dropping it flushes the spans still queued and stops it, which is
/// what a clean shutdown does; a crash, by design, does not.
#[derive(Debug)]
pub struct Traces {
    provider: SdkTracerProvider,
}

impl Traces {
    /// The tracer the `tracing` layer feeds.
    pub fn tracer(&self) -> Tracer {
        self.provider.tracer(SCOPE)
    }
}

impl Drop for Traces {
    fn drop(&mut self) {
        ENABLED.store(false, Ordering::Relaxed);
        if let Err(e) = self.provider.shutdown() {
            eprintln!("walab: flushing traces failed: {e}");
        }
    }
}

/// Start exporting if the configuration asks for it.
pub fn init(config: &Config) -> Result<Option<Traces>, String> {
    let Some(endpoint) = config
        .otlp_endpoint
        .as_deref()
        .filter(|_| config.tracing_enabled())
    else {
        return Ok(None);
    };
    let exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_http()
        .with_endpoint(traces_url(endpoint))
        .build()
        .map_err(|e| format!("OTEL_EXPORTER_OTLP_ENDPOINT: cannot build the OTLP exporter: {e}"))?;
    let provider = SdkTracerProvider::builder()
        .with_batch_exporter(exporter)
        .with_resource(
            Resource::builder()
                .with_service_name(config.service_name.clone())
                .build(),
        )
        .build();
    global::set_tracer_provider(provider.clone());
    ENABLED.store(true, Ordering::Relaxed);
    Ok(Some(Traces { provider }))
}

/// The OTLP/HTTP traces URL for a base endpoint (the spec's rule: append `/v1/traces`).
/// A gRPC port (4317) is a common mistake with an HTTP exporter, so it is moved to 4318.
fn traces_url(endpoint: &str) -> String {
    let base = endpoint.trim_end_matches('/');
    let base = base
        .strip_suffix(":4317")
        .map_or_else(|| base.to_string(), |b| format!("{b}:4318"));
    format!("{base}/v1/traces")
}

/// The server span of one request, filled as the HTTP semantic conventions ask and joined
/// to the caller's trace when it sent W3C trace context (`traceparent`, `tracestate`).
///
/// It is named `METHOD /route`, or only `METHOD` when no route matched: the conventions
/// keep span names low in cardinality, so a raw path never becomes one, and `http.route`
/// is left out rather than given a made-up value.
pub fn server_span<B>(req: &axum::http::Request<B>) -> tracing::Span {
    // A made-up method is `_OTHER` (span name `HTTP`), as the conventions say: span names
    // and attributes stay bounded whatever a client sends.
    let (method, name_method) = match crate::server::method::method_label(req.method()) {
        "other" => ("_OTHER", "HTTP"),
        known => (known, known),
    };
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map(MatchedPath::as_str);
    let name = route.map_or_else(|| name_method.to_owned(), |r| format!("{name_method} {r}"));
    let span = tracing::info_span!(
        "request",
        otel.name = %name,
        otel.kind = "server",
        otel.status_code = tracing::field::Empty,
        http.request.method = method,
        http.request.method_original = tracing::field::Empty,
        http.route = tracing::field::Empty,
        http.response.status_code = tracing::field::Empty,
        "error.type" = tracing::field::Empty,
        url.path = %req.uri().path(),
        url.query = tracing::field::Empty,
        // The server speaks plain HTTP only: TLS, where there is any, ends in front of it.
        url.scheme = "http",
        network.protocol.version = tracing::field::Empty,
        server.address = tracing::field::Empty,
        server.port = tracing::field::Empty,
        user_agent.original = tracing::field::Empty,
    );
    if method == "_OTHER" {
        span.record("http.request.method_original", req.method().as_str());
    }
    if let Some(route) = route {
        span.record("http.route", route);
    }
    if let Some(query) = req.uri().query() {
        span.record("url.query", query);
    }
    if let Some(version) = protocol_version(req.version()) {
        span.record("network.protocol.version", version);
    }
    if let Some((address, port)) = server_address(req) {
        span.record("server.address", address);
        span.record("server.port", i64::from(port));
    }
    if let Some(agent) = req
        .headers()
        .get(header::USER_AGENT)
        .and_then(|v| v.to_str().ok())
    {
        span.record("user_agent.original", agent);
    }
    let parent = TraceContextPropagator::new()
        .extract_with_context(&Context::new(), &HeaderExtractor(req.headers()));
    // Without valid trace context the span starts a trace of its own. Setting the parent
    // fails only if the span has started already, which it has not.
    if parent.span().span_context().is_valid() {
        let _ = span.set_parent(parent);
    }
    span
}

/// Record the answer's status on a [`server_span`]: a 5xx is an error (`error.type` is the
/// status code, and the span's status is Error); a 4xx is the client's, and leaves the
/// status unset, as the conventions say for server spans.
pub fn record_response(span: &tracing::Span, status: StatusCode) {
    span.record("http.response.status_code", i64::from(status.as_u16()));
    if status.is_server_error() {
        span.record("error.type", status.as_str());
        span.record("otel.status_code", "error");
    }
}

/// `server.address` and `server.port`: the host the client asked for (the absolute URI,
/// else `Host`), and its port, or HTTP's 80 when it names none.
fn server_address<B>(req: &axum::http::Request<B>) -> Option<(String, u16)> {
    let authority = match req.uri().authority() {
        Some(a) => a.clone(),
        None => req
            .headers()
            .get(header::HOST)?
            .to_str()
            .ok()?
            .parse::<Authority>()
            .ok()?,
    };
    let host = authority.host();
    let host = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host);
    Some((host.to_owned(), authority.port_u16().unwrap_or(80)))
}

/// `network.protocol.version` for the HTTP versions this server speaks.
fn protocol_version(version: Version) -> Option<&'static str> {
    match version {
        Version::HTTP_10 => Some("1.0"),
        Version::HTTP_11 => Some("1.1"),
        _ => None,
    }
}

/// W3C trace context is read from the request's headers through this.
struct HeaderExtractor<'a>(&'a HeaderMap);

impl Extractor for HeaderExtractor<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).and_then(|v| v.to_str().ok())
    }

    fn keys(&self) -> Vec<&str> {
        self.0.keys().map(HeaderName::as_str).collect()
    }
}

/// A span for one store operation, a child of the current request span.
pub fn store_span(operation: &'static str, backend: &str) -> tracing::Span {
    if !enabled() {
        return tracing::Span::none();
    }
    tracing::info_span!(
        "store",
        otel.name = %format!("store {operation}"),
        db.operation.name = operation,
        db.system.name = %format!("walab-{backend}"),
    )
}

/// Turn when a WAL write's steps happened into spans under the current (store) span.
pub fn record_commit(ack: &WriteAck) {
    let (Some(t), true) = (ack.timing, enabled()) else {
        return;
    };
    let parent = tracing::Span::current().context();
    let clock = Clock::now();
    let tracer = global::tracer(SCOPE);
    let sequence = KeyValue::new("wal.sequence", ack.sequence.unwrap_or(0) as i64);
    let batch = KeyValue::new("wal.batch.records", t.batch_records as i64);
    let phase = |name: &'static str, from: Instant, to: Instant, attrs: Vec<KeyValue>| {
        let mut span = tracer
            .span_builder(name)
            .with_kind(SpanKind::Internal)
            .with_start_time(clock.wall(from))
            .with_attributes(attrs)
            .start_with_context(&tracer, &parent);
        span.end_with_timestamp(clock.wall(to));
    };
    phase("wal.append", t.submitted, t.written, vec![sequence.clone()]);
    if let Some(synced) = t.synced {
        phase(
            "wal.group_commit_sync",
            t.written,
            synced,
            vec![batch.clone()],
        );
    }
    phase(
        "wal.apply",
        t.synced.unwrap_or(t.written),
        t.applied,
        vec![batch],
    );
}

/// A root span for something that just finished and took `took` (recovery, a checkpoint).
pub fn record_finished(name: &'static str, took: Duration, attrs: Vec<KeyValue>) {
    if !enabled() {
        return;
    }
    let end = SystemTime::now();
    let tracer = global::tracer(SCOPE);
    let mut span = tracer
        .span_builder(name)
        .with_start_time(end.checked_sub(took).unwrap_or(end))
        .with_attributes(attrs)
        .start_with_context(&tracer, &Context::new());
    span.end_with_timestamp(end);
}

/// Converts the engine's monotonic instants to wall-clock times for span timestamps.
struct Clock {
    wall: SystemTime,
    mono: Instant,
}

impl Clock {
    fn now() -> Self {
        Clock {
            wall: SystemTime::now(),
            mono: Instant::now(),
        }
    }

    fn wall(&self, at: Instant) -> SystemTime {
        self.wall - self.mono.saturating_duration_since(at)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_traces_url_follows_the_otlp_http_rule() {
        assert_eq!(
            traces_url("http://jaeger:4318"),
            "http://jaeger:4318/v1/traces"
        );
        assert_eq!(
            traces_url("http://jaeger:4318/"),
            "http://jaeger:4318/v1/traces"
        );
        assert_eq!(
            traces_url("http://jaeger:4317"),
            "http://jaeger:4318/v1/traces"
        );
    }

    #[test]
    fn server_address_and_port_come_from_the_host_the_client_asked_for() {
        let with_host = |host: &str| {
            axum::http::Request::builder()
                .uri("/kv")
                .header(header::HOST, host)
                .body(())
                .expect("a request")
        };
        assert_eq!(
            server_address(&with_host("127.0.0.1:8001")),
            Some(("127.0.0.1".to_owned(), 8001))
        );
        assert_eq!(
            server_address(&with_host("[::1]:8002")),
            Some(("::1".to_owned(), 8002))
        );
        assert_eq!(
            server_address(&with_host("lab.example")),
            Some(("lab.example".to_owned(), 80)),
            "no port: HTTP's"
        );
        assert_eq!(server_address(&with_host("a b")), None);
        let absolute = axum::http::Request::builder()
            .uri("http://kv.example:9000/kv")
            .header(header::HOST, "ignored:1")
            .body(())
            .expect("a request");
        assert_eq!(
            server_address(&absolute),
            Some(("kv.example".to_owned(), 9000))
        );
    }
}
