//! OpenTelemetry traces, exported over OTLP/HTTP when `OTEL_EXPORTER_OTLP_ENDPOINT` is set.
//!
//! Each request is a span (HTTP semantic conventions: method, route, status) with a child
//! span for the store operation; a WAL write adds, under that, the append (from the moment
//! the writer queued its record until the batch's `write()` returned), the group-commit
//! sync it waited on (with the batch size), and the apply. Recovery at start-up and every
//! checkpoint are spans of their own.
//!
//! The engine knows nothing of tracing: it reports when each step of a write happened
//! (`walab_wal::CommitTiming`), and the steps become spans here, with those times.
//!
//! When the endpoint is unset, or `OTEL_SDK_DISABLED=true` (which the Rust SDK itself
//! ignores), nothing is installed: no exporter thread, no request spans, no cost.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant, SystemTime};

use axum::extract::{MatchedPath, Request};
use axum::middleware::Next;
use axum::response::Response;
use opentelemetry::trace::{Span as _, SpanKind, Tracer as _, TracerProvider as _};
use opentelemetry::{Context, KeyValue, global};
use opentelemetry_otlp::WithExportConfig;
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::trace::{SdkTracerProvider, Tracer};
use tracing::Instrument;
use tracing_opentelemetry::OpenTelemetrySpanExt;
use walab_store::WriteAck;

use crate::config::Config;

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

/// Middleware: one server span per request, named `METHOD /route`.
pub async fn trace_request(matched: Option<MatchedPath>, req: Request, next: Next) -> Response {
    // A made-up method is `_OTHER`, as the HTTP semantic conventions say: span names and
    // attributes stay bounded whatever a client sends.
    let method = match crate::metrics::method_label(req.method()) {
        "other" => "_OTHER",
        known => known,
    };
    let route = matched
        .as_ref()
        .map_or("unmatched", |m| m.as_str())
        .to_owned();
    let span = tracing::info_span!(
        "request",
        otel.name = %format!("{method} {route}"),
        otel.kind = "server",
        http.request.method = %method,
        http.route = %route,
        url.path = %req.uri().path(),
        http.response.status_code = tracing::field::Empty,
    );
    let response = next.run(req).instrument(span.clone()).await;
    span.record(
        "http.response.status_code",
        i64::from(response.status().as_u16()),
    );
    response
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
}
