//! Logging: `tracing` to stderr, filtered by `RUST_LOG` (default `info`).
//!
//! Every line starts with a tag naming who wrote it (`[wal:8001]`, `[lab]`), because the lab
//! interleaves three servers' logs on one terminal. A tag on the formatter, rather than a
//! span, reaches every task, including those axum spawns per connection.

use std::fmt;
use std::io::IsTerminal;

use tracing::{Event, Subscriber};
use tracing_subscriber::EnvFilter;
use tracing_subscriber::fmt::format::{Format, Full, Writer};
use tracing_subscriber::fmt::time::SystemTime;
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields};
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::util::SubscriberInitExt;

/// Install the global subscriber, feeding `tracer` too when traces are exported. Calling it
/// twice keeps the first (tests may race).
pub fn init(tag: &str, tracer: Option<opentelemetry_sdk::trace::Tracer>) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let ansi = std::io::stderr().is_terminal();
    let format = Tagged {
        tag: format!("[{tag}]"),
        inner: Format::default().with_ansi(ansi),
    };
    let logs = tracing_subscriber::fmt::layer()
        .with_writer(std::io::stderr)
        .with_ansi(ansi)
        .event_format(format);
    let traces = tracer.map(|t| tracing_opentelemetry::layer().with_tracer(t));
    let _ = tracing_subscriber::registry()
        .with(filter)
        .with(logs)
        .with(traces)
        .try_init();
}

/// A formatter that writes `tag` before each event.
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
