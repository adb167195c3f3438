//! Logging: `tracing` to stderr, filtered by `RUST_LOG` (`--rust-log`), as text or, with
//! `LOG_FORMAT=json`, one JSON object a line for whoever ships logs.
//!
//! Every line names who wrote it (`[wal:8001]`, `[lab]` in text; `"server"` in JSON),
//! because the lab interleaves three servers' logs on one terminal. A tag on the formatter,
//! rather than a span, reaches every task, including those axum spawns per connection.
//!
//! Each request is logged once, when it is answered, through tower-http's `TraceLayer`
//! ([`request_log`]): method and path on the request's span, status and latency on the
//! line. Answers to the routes that monitors poll every second or so (the lab's supervisor
//! and page, Prometheus) are logged at DEBUG, or their lines would bury everything else;
//! server errors at WARN. The lines have the target `walab::request`, so
//! `RUST_LOG=info,walab::request=warn` keeps a busy server's log to what went wrong.

use crate::server::config::LogFormat;
use std::fmt;
use std::io::IsTerminal;
use std::time::Duration;

use axum::extract::MatchedPath;
use axum::http::{Request, Response};
use tower_http::classify::{ServerErrorsAsFailures, SharedClassifier};
use tower_http::trace::TraceLayer;
use tracing::{Event, Span, Subscriber};
use tracing_subscriber::EnvFilter;
use tracing_subscriber::fmt::format::{Format, Full, Json, Writer};
use tracing_subscriber::fmt::time::SystemTime;
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields};
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::util::SubscriberInitExt;

/// Install the global subscriber, writing `format` for the lines `filter` lets through (an
/// `EnvFilter` directive, checked when the configuration was read), and feeding `tracer`
/// too when traces are exported. Calling it twice keeps the first (tests may race).
pub fn init(
    tag: &str,
    format: LogFormat,
    filter: &str,
    tracer: Option<opentelemetry_sdk::trace::Tracer>,
) {
    let filter = EnvFilter::try_new(filter).unwrap_or_else(|_| EnvFilter::new("info"));
    let ansi = std::io::stderr().is_terminal();
    let text = (format == LogFormat::Text).then(|| {
        tracing_subscriber::fmt::layer()
            .with_writer(std::io::stderr)
            .with_ansi(ansi)
            .event_format(Tagged {
                tag: format!("[{tag}]"),
                inner: Format::default().with_ansi(ansi),
            })
    });
    let json = (format == LogFormat::Json).then(|| {
        tracing_subscriber::fmt::layer()
            .json()
            .with_writer(std::io::stderr)
            .event_format(TaggedJson {
                tag: serde_json::to_string(tag).unwrap_or_default(),
                inner: Format::default().json(),
            })
    });
    let traces = tracer.map(|t| tracing_opentelemetry::layer().with_tracer(t));
    let _ = tracing_subscriber::registry()
        .with(filter)
        .with(text)
        .with(json)
        .with(traces)
        .try_init();
}

/// A text formatter that writes `tag` before each event.
struct Tagged {
    tag: String,
    inner: Format<Full, SystemTime>,
}

impl<S, N> FormatEvent<S, N> for Tagged
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        write!(writer, "{} ", self.tag)?;
        self.inner.format_event(ctx, writer, event)
    }
}

/// A JSON formatter that puts `"server": tag` first in each object.
struct TaggedJson {
    /// The tag, already a JSON string.
    tag: String,
    inner: Format<Json, SystemTime>,
}

impl<S, N> FormatEvent<S, N> for TaggedJson
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        let mut line = String::new();
        self.inner
            .format_event(ctx, Writer::new(&mut line), event)?;
        // The inner formatter writes one object: open it with the tag.
        match line.strip_prefix('{') {
            Some(rest) => write!(writer, "{{\"server\":{},{rest}", self.tag),
            None => writer.write_str(&line),
        }
    }
}

/// Put on the answers of routes that monitors poll, so [`request_log`] logs them at DEBUG.
#[derive(Debug, Clone, Copy)]
pub struct Polled;

/// The request log (and, when traces are exported, the request's server span): a
/// tower-http `TraceLayer` that makes each request's span and logs one line per answer.
/// tower-http's own lines (request started, failure classified) are left out: the one
/// line says it all.
pub type RequestLog = TraceLayer<
    SharedClassifier<ServerErrorsAsFailures>,
    fn(&Request<axum::body::Body>) -> Span,
    (),
    fn(&Response<axum::body::Body>, Duration, &Span),
    (),
    (),
    (),
>;

/// The [`RequestLog`] layer.
pub fn request_log() -> RequestLog {
    TraceLayer::new_for_http()
        .make_span_with(request_span as fn(&Request<axum::body::Body>) -> Span)
        .on_request(())
        .on_response(log_answer as fn(&Response<axum::body::Body>, Duration, &Span))
        .on_body_chunk(())
        .on_eos(())
        .on_failure(())
}

/// The span a request runs in: the OpenTelemetry server span when traces are exported,
/// else a light one that gives the request's log lines its method and path.
fn request_span<B>(req: &Request<B>) -> Span {
    if crate::server::traces::enabled() {
        return crate::server::traces::server_span(req);
    }
    let span = tracing::info_span!(
        "request",
        http.request.method = %req.method(),
        url.path = %req.uri().path(),
        http.route = tracing::field::Empty,
    );
    if let Some(route) = req.extensions().get::<MatchedPath>() {
        span.record("http.route", tracing::field::display(route.as_str()));
    }
    span
}

/// The request's line, in its span: its status and how long the answer took.
fn log_answer<B>(response: &Response<B>, latency: Duration, span: &Span) {
    crate::server::traces::record_response(span, response.status());
    let status = response.status().as_u16();
    // Microseconds as a fraction of a millisecond: fine enough for memory's answers.
    let latency_ms = latency.as_micros() as f64 / 1000.0;
    if response.extensions().get::<Polled>().is_some() {
        tracing::debug!(target: "walab::request", status, latency_ms, "answered");
    } else if response.status().is_server_error() {
        tracing::warn!(target: "walab::request", status, latency_ms, "answered");
    } else {
        tracing::info!(target: "walab::request", status, latency_ms, "answered");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log_formats_parse_and_a_bad_one_says_what_is_accepted() {
        assert_eq!("text".parse::<LogFormat>(), Ok(LogFormat::Text));
        assert_eq!(" JSON ".parse::<LogFormat>(), Ok(LogFormat::Json));
        assert_eq!(
            "xml".parse::<LogFormat>(),
            Err("unknown log format 'xml': expected text or json".to_owned())
        );
        for f in [LogFormat::Text, LogFormat::Json] {
            assert_eq!(f.to_string().parse::<LogFormat>(), Ok(f));
        }
    }
}
