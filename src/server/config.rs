//! The server's settings: every one a flag of `walab serve`, or, when the flag is not
//! given, the environment variable of the same name in capitals (`--fsync` / `FSYNC`), or
//! its default.
//!
//! [`ServeArgs`] is the one list of them: each field's name is its flag, its variable and
//! the name in its errors; its attributes hold the default, the allowed values and the help
//! line, so `walab serve --help` shows every variable with its default and values, and
//! nothing else has to be kept in step. [`Config`] is what the rest of the server reads,
//! made from the parsed arguments by [`Config::from_matches`].
//!
//! `main` parses the real command line (clap reads the environment for the flags not
//! given); [`Config::from_env`] parses an empty one the same way (`walab lab` reads the
//! settings it passes on to its children); [`Config::from_lookup`] feeds variables from a
//! map, for tests that must not touch the process environment. A bad value is a
//! [`ConfigError`] whose one line names the variable and what it accepts, because the
//! person reading it is at a terminal, not in a debugger.
//!
//! An empty value counts as unset (`ADMIN_TOKEN=` does not enable auth with an empty token),
//! and values are trimmed.

use std::ffi::OsStr;
use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;
use std::sync::LazyLock;
use std::time::Duration;

use clap::builder::TypedValueParser;
use clap::error::{ContextKind, ContextValue, ErrorKind};
use clap::parser::ValueSource;
use clap::{Arg, ArgAction, ArgMatches, Args, Command, FromArgMatches};
use walab_store::parse::{at_least, choices, text, whole};
use walab_store::{BackendConfig, BackendKind, BackendSettings};

/// Everything `walab serve` needs to know, as the server uses it. Each field comes from
/// the [`ServeArgs`] setting named beside it, where its default is.
#[derive(Debug, Clone)]
pub struct Config {
    /// `KV_BACKEND` (`WAL_ENABLED=false` alone means memory).
    pub backend: BackendKind,
    /// `HOST`: the address to listen on.
    pub host: String,
    /// `PORT`: the port to listen on.
    pub port: u16,
    /// `DATA_DIR`: where the backend keeps its files.
    pub data_dir: PathBuf,
    /// Every backend's settings (`FSYNC`, `SLED_FLUSH`, `ETCD_ENDPOINTS`, ...): the server
    /// passes them on, unread, and the backend it opens reads its own.
    pub backend_settings: BackendSettings,
    /// `SLOW_FSYNC_MS`: a sync of the log that takes longer than this is logged as a
    /// warning (`None`: never).
    pub slow_fsync: Option<Duration>,
    /// `MAX_VALUE_BYTES`: the largest value accepted, as JSON text.
    pub max_value_bytes: usize,
    /// `ADMIN_TOKEN`: when set, `/admin/*` needs `Authorization: Bearer <token>`.
    pub admin_token: Option<String>,
    /// `LOG_FORMAT`: text, or json (one object a line).
    pub log_format: LogFormat,
    /// `RUST_LOG`: which log lines are written (an `EnvFilter` directive).
    pub log_filter: String,
    /// `OTEL_SERVICE_NAME`, or `walab-<backend>`.
    pub service_name: String,
    /// `OTEL_EXPORTER_OTLP_ENDPOINT`: where spans go, over OTLP/HTTP (`src/server/traces.rs`).
    pub otlp_endpoint: Option<String>,
    /// `OTEL_SDK_DISABLED=true` turns traces off even with an endpoint (the spec's switch,
    /// which the Rust SDK does not read itself).
    pub otel_sdk_disabled: bool,
    /// `WALAB_RESTARTS`: how many times `walab lab` has restarted this process.
    pub restarts: u64,
    /// `WALAB_HEALTH_SOCKET`: a Unix socket the lab's probe asks `/health` on, so it never
    /// competes with the public's connections (set by `walab lab`).
    pub health_socket: Option<PathBuf>,
    /// How long a client may take and how much it may hold (`MAX_CONNECTIONS`,
    /// `HEADER_TIMEOUT_MS`, `BODY_TIMEOUT_MS`, `REQUEST_TIMEOUT_MS`, `MAX_HEADER_BYTES`,
    /// `MAX_BODY_BYTES_IN_FLIGHT`).
    pub limits: Limits,
    /// `ALLOWED_ORIGINS`: web origins, besides the server's own, whose pages may send
    /// state-changing requests.
    pub allowed_origins: Vec<String>,
}

/// What a connection may cost the server. Every limit answers with a clear error (or a
/// closed connection, for a client that stalls), never with a stuck server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// `MAX_CONNECTIONS`: connections served at once; more wait to be accepted.
    pub max_connections: usize,
    /// `HEADER_TIMEOUT_MS`: a request's headers must arrive within this, and an idle
    /// keep-alive connection is closed after it.
    pub header_timeout: Duration,
    /// `BODY_TIMEOUT_MS`: the longest pause while a request body arrives.
    pub body_timeout: Duration,
    /// `REQUEST_TIMEOUT_MS`: the longest a request may take, body included.
    pub request_timeout: Duration,
    /// `MAX_HEADER_BYTES`: the request line and headers, in bytes.
    pub max_header_bytes: usize,
    /// `MAX_BODY_BYTES_IN_FLIGHT`: bodies being read at once hold at most this much; a
    /// request that would go over is answered 503 `busy` at once.
    pub max_body_bytes_in_flight: usize,
    /// `MIN_BODY_BYTES_PER_SEC`: a body's least rate: by `t` seconds after its headers, `(t - 2) × rate` bytes must have arrived (408
    /// `body_too_slow`; 0: no minimum).
    pub min_body_bytes_per_sec: u64,
    /// `WRITE_TIMEOUT_MS`: an answer the client stops reading for this long closes its
    /// connection.
    pub write_timeout: Duration,
    /// `MAX_ANSWER_BYTES_IN_FLIGHT`: large answers not yet read hold at most this much; an
    /// answer that would go over is 503 `busy`.
    pub max_answer_bytes_in_flight: usize,
}

impl Default for Limits {
    /// The defaults of the `walab serve` flags.
    fn default() -> Self {
        Limits {
            max_connections: 512,
            header_timeout: Duration::from_secs(10),
            body_timeout: Duration::from_secs(10),
            request_timeout: Duration::from_secs(30),
            max_header_bytes: 32 * 1024,
            max_body_bytes_in_flight: 64 << 20,
            min_body_bytes_per_sec: 64 * 1024,
            write_timeout: Duration::from_secs(10),
            max_answer_bytes_in_flight: 256 << 20,
        }
    }
}

/// A variable with a value the server cannot use.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    /// The variable's name.
    pub var: &'static str,
    /// What was wrong and what is accepted.
    pub message: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.var, self.message)
    }
}

impl std::error::Error for ConfigError {}

/// Every setting of `walab serve`. A field `fsync` is the flag `--fsync`, the variable
/// `FSYNC` (read when the flag is not given) and `<FSYNC>` in help and errors.
#[derive(Debug, Clone, Args)]
pub struct ServeArgs {
    #[command(flatten)]
    server: ServerArgs,
    #[command(flatten)]
    backends: BackendSettings,
    #[command(flatten)]
    limits: LimitArgs,
    #[command(flatten)]
    observability: ObservabilityArgs,
}

#[derive(Debug, Clone, Args)]
#[command(next_help_heading = "Server")]
struct ServerArgs {
    /// The store behind the API.
    #[arg(long, env, default_value = "wal", value_parser = backend_parser())]
    kv_backend: BackendKind,
    /// The original lab's switch: false, with KV_BACKEND unset, is KV_BACKEND=memory.
    #[arg(long, env, value_parser = choices(vec!["true", "false"], true_or_false))]
    wal_enabled: Option<bool>,
    /// The address to listen on; a non-loopback one without ADMIN_TOKEN logs a warning.
    #[arg(long, env, default_value = "127.0.0.1", value_parser = text)]
    host: String,
    /// The port to listen on.
    #[arg(long, env, default_value_t = 8000, value_parser = port_number)]
    port: u16,
    /// The backend's files.
    #[arg(long, env, default_value = "./data", value_parser = text)]
    data_dir: String,
    /// Bearer token that /admin/* requires (unset: /admin/* is open).
    #[arg(long, env, hide_env_values = true, value_parser = text)]
    admin_token: Option<String>,
    /// Web origins, besides the server's own, whose pages may send state-changing
    /// requests (comma-separated: http://localhost:3000,https://lab.example).
    #[arg(long, env, value_parser = parse_origins)]
    allowed_origins: Option<Origins>,
}

#[derive(Debug, Clone, Args)]
#[command(next_help_heading = "Limits")]
struct LimitArgs {
    /// The largest value accepted, as JSON text, in bytes.
    #[arg(long, env, default_value_t = 1 << 20, value_parser = at_least(1, "bytes"))]
    max_value_bytes: u64,
    /// Connections served at once; more wait, unaccepted, in the kernel's backlog.
    #[arg(long, env, default_value_t = Limits::default().max_connections as u64)]
    #[arg(value_parser = at_least(1, "connections"))]
    max_connections: u64,
    /// A request's line and headers must arrive within this, in ms; an idle keep-alive
    /// connection is closed after it.
    #[arg(long, env, default_value_t = Limits::default().header_timeout.as_millis() as u64)]
    #[arg(value_parser = at_least(1, "milliseconds"))]
    header_timeout_ms: u64,
    /// The longest pause while a request body arrives, in ms (408 body_timeout).
    #[arg(long, env, default_value_t = Limits::default().body_timeout.as_millis() as u64)]
    #[arg(value_parser = at_least(1, "milliseconds"))]
    body_timeout_ms: u64,
    /// The longest a request may take, body included, in ms (503).
    #[arg(long, env, default_value_t = Limits::default().request_timeout.as_millis() as u64)]
    #[arg(value_parser = at_least(1, "milliseconds"))]
    request_timeout_ms: u64,
    /// The request line and headers, in bytes (431 headers_too_large).
    #[arg(long, env, default_value_t = Limits::default().max_header_bytes as u64)]
    #[arg(value_parser = at_least(1024, "bytes"))]
    max_header_bytes: u64,
    /// What all request bodies being read may hold at once, in bytes (503 busy).
    #[arg(long, env, default_value_t = Limits::default().max_body_bytes_in_flight as u64)]
    #[arg(value_parser = at_least(1024, "bytes"))]
    max_body_bytes_in_flight: u64,
    /// A body's least rate, in bytes a second: t seconds after its headers, (t - 2) × this
    /// must have arrived (408 body_too_slow; 0: none).
    #[arg(long, env, default_value_t = Limits::default().min_body_bytes_per_sec)]
    #[arg(value_parser = at_least(0, "bytes a second"))]
    min_body_bytes_per_sec: u64,
    /// An answer the client stops reading for this long closes its connection, in ms.
    #[arg(long, env, default_value_t = Limits::default().write_timeout.as_millis() as u64)]
    #[arg(value_parser = at_least(1, "milliseconds"))]
    write_timeout_ms: u64,
    /// What all large answers not yet read by their clients may hold at once, in bytes
    /// (503 busy).
    #[arg(long, env, default_value_t = Limits::default().max_answer_bytes_in_flight as u64)]
    #[arg(value_parser = at_least(1024, "bytes"))]
    max_answer_bytes_in_flight: u64,
}

#[derive(Debug, Clone, Args)]
#[command(next_help_heading = "Logs and traces")]
struct ObservabilityArgs {
    /// Which log lines are written (tracing's EnvFilter: info, or
    /// info,walab::request=warn to drop the line per request).
    #[arg(long, env, default_value = "info", value_parser = log_filter)]
    rust_log: String,
    /// text for people, json (one object a line) for log shippers.
    #[arg(long, env, default_value = "text")]
    #[arg(value_parser = choices(vec!["text", "json"], LogFormat::from_str))]
    log_format: LogFormat,
    /// The service name in /health and in traces [default: walab-<KV_BACKEND>].
    #[arg(long, env, value_parser = text)]
    otel_service_name: Option<String>,
    /// OTLP/HTTP base URL (http://localhost:4318): spans are exported to <url>/v1/traces.
    #[arg(long, env, value_parser = text)]
    otel_exporter_otlp_endpoint: Option<String>,
    /// true turns traces off even with an endpoint.
    #[arg(long, env, action = ArgAction::Set, default_value = "false")]
    #[arg(value_parser = choices(vec!["true", "false"], only_true))]
    otel_sdk_disabled: bool,
    /// Log a warning when one fdatasync of the log takes longer than this, in ms (etcd
    /// warns at 1 s too; 0: never).
    #[arg(long, env, default_value_t = 1000)]
    #[arg(value_parser = whole("a whole number of milliseconds (0: never warn)"))]
    slow_fsync_ms: u64,
    /// How many times `walab lab` has restarted this server (set by the lab; counted in
    /// walab_process_restarts_total).
    #[arg(long, env, default_value_t = 0)]
    #[arg(value_parser = whole("a whole number (set by `walab lab`)"))]
    walab_restarts: u64,
    /// A Unix socket where the server also answers, outside MAX_CONNECTIONS: the lab's
    /// health probe (set by `walab lab`).
    #[arg(long, env, value_parser = text)]
    walab_health_socket: Option<String>,
}

/// `ALLOWED_ORIGINS`, parsed.
#[derive(Debug, Clone)]
struct Origins(Vec<String>);

/// `KV_BACKEND`: a backend of the catalog, by name.
pub fn backend_parser() -> impl TypedValueParser<Value = BackendKind> {
    choices(
        BackendKind::all().map(BackendKind::as_str).collect(),
        BackendKind::from_str,
    )
}

/// An `EnvFilter` directive such as `info,walab::request=warn`.
fn log_filter(v: &str) -> Result<String, String> {
    let v = v.trim();
    tracing_subscriber::EnvFilter::try_new(v)
        .map(|_| v.to_owned())
        .map_err(|e| format!("expected a log filter like info or info,walab::request=warn: {e}"))
}

/// `http://host[:port]` origins, comma-separated, as browsers send them in `Origin`.
fn parse_origins(v: &str) -> Result<Origins, String> {
    v.split(',')
        .map(str::trim)
        .filter(|o| !o.is_empty())
        .map(|o| {
            let rest = o
                .strip_prefix("http://")
                .or_else(|| o.strip_prefix("https://"));
            match rest {
                Some(host) if !host.is_empty() && !host.contains('/') => {
                    Ok(o.to_ascii_lowercase())
                }
                _ => Err(format!(
                    "expected origins like http://localhost:3000 (scheme and host, no path), got '{o}'"
                )),
            }
        })
        .collect::<Result<_, _>>()
        .map(Origins)
}

fn true_or_false(v: &str) -> Result<bool, String> {
    parse_bool(v).ok_or_else(|| format!("expected true or false, got '{v}'"))
}

/// OpenTelemetry's booleans: `true` (in any case) is true, anything else false.
fn only_true(v: &str) -> Result<bool, String> {
    Ok(v.eq_ignore_ascii_case("true"))
}

fn port_number(v: &str) -> Result<u16, String> {
    v.trim()
        .parse()
        .map_err(|_| format!("expected a port number from 0 to 65535, got '{v}'"))
}

fn parse_bool(v: &str) -> Option<bool> {
    match v.trim().to_ascii_lowercase().as_str() {
        "true" | "1" | "yes" | "on" => Some(true),
        "false" | "0" | "no" | "off" => Some(false),
        _ => None,
    }
}

/// `walab serve`'s arguments as a command of their own: the one list of their names.
static SERVE: LazyLock<Command> = LazyLock::new(|| ServeArgs::augment_args(Command::new("serve")));

/// Every variable `walab serve` reads, in the order of `--help`.
pub fn variables() -> impl Iterator<Item = &'static str> {
    SERVE.get_arguments().filter_map(variable)
}

fn variable(arg: &'static Arg) -> Option<&'static str> {
    arg.get_env().and_then(OsStr::to_str)
}

/// clap reads a variable that is set but blank as a value; here it counts as unset, so
/// `ADMIN_TOKEN=` in a Compose file does not turn auth on with an empty token.
pub fn blank_variables_unset(arg: Arg) -> Arg {
    let blank = arg
        .get_env()
        .and_then(std::env::var_os)
        .is_some_and(|v| v.to_string_lossy().trim().is_empty());
    if blank { arg.env(None) } else { arg }
}

/// A parse error as a [`ConfigError`] naming the variable of the setting it concerns.
fn config_error(e: &clap::Error) -> ConfigError {
    let flag = match e.get(ContextKind::InvalidArg) {
        Some(ContextValue::String(flag)) => flag.as_str(),
        _ => "",
    };
    let long = flag
        .strip_prefix("--")
        .and_then(|f| f.split([' ', '=']).next());
    let var = SERVE
        .get_arguments()
        .find(|a| a.get_long().is_some() && a.get_long() == long)
        .and_then(variable)
        .unwrap_or("walab serve");
    let message = match (e.kind(), std::error::Error::source(e)) {
        (ErrorKind::ValueValidation, Some(reason)) => reason.to_string(),
        _ => {
            let rendered = e.to_string();
            let first = rendered.lines().next().unwrap_or_default();
            first.trim_start_matches("error: ").to_owned()
        }
    };
    ConfigError { var, message }
}

impl Config {
    /// Whether spans are exported: an OTLP endpoint is set and the SDK is not disabled.
    pub fn tracing_enabled(&self) -> bool {
        self.otlp_endpoint.is_some() && !self.otel_sdk_disabled
    }

    /// Read the process environment, as `walab serve` with no flags does.
    pub fn from_env() -> Result<Config, ConfigError> {
        let matches = ServeArgs::augment_args(Command::new("walab serve"))
            .mut_args(blank_variables_unset)
            .try_get_matches_from(["walab serve"])
            .map_err(|e| config_error(&e))?;
        Config::from_matches(&matches)
    }

    /// Read settings through `lookup` (a variable's value, or `None` when unset) instead of
    /// the process environment.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Config, ConfigError> {
        let mut argv = vec!["walab serve".to_owned()];
        for arg in SERVE.get_arguments() {
            let (Some(long), Some(var)) = (arg.get_long(), variable(arg)) else {
                continue;
            };
            if let Some(value) = lookup(var).filter(|v| !v.trim().is_empty()) {
                argv.push(format!("--{long}={value}"));
            }
        }
        let matches = ServeArgs::augment_args(Command::new("walab serve"))
            .mut_args(|a| a.env(None))
            .try_get_matches_from(argv)
            .map_err(|e| config_error(&e))?;
        Config::from_matches(&matches)
    }

    /// The settings in `matches`, parsed by a command that has [`ServeArgs`].
    pub fn from_matches(matches: &ArgMatches) -> Result<Config, ConfigError> {
        let args = ServeArgs::from_arg_matches(matches).map_err(|e| config_error(&e))?;
        let ServeArgs {
            server: s,
            backends,
            limits: l,
            observability: t,
        } = args;
        let backend = match (matches.value_source("kv_backend"), s.wal_enabled) {
            (Some(ValueSource::DefaultValue) | None, Some(false)) => BackendKind::named("memory"),
            _ => s.kv_backend,
        };
        let usize_of = |n: u64| usize::try_from(n).unwrap_or(usize::MAX);
        Ok(Config {
            backend,
            host: s.host,
            port: s.port,
            data_dir: PathBuf::from(s.data_dir),
            backend_settings: backends,
            slow_fsync: (t.slow_fsync_ms > 0).then(|| Duration::from_millis(t.slow_fsync_ms)),
            max_value_bytes: usize_of(l.max_value_bytes),
            admin_token: s.admin_token.filter(|t| !t.is_empty()),
            log_format: t.log_format,
            log_filter: t.rust_log,
            service_name: t
                .otel_service_name
                .filter(|n| !n.is_empty())
                .unwrap_or_else(|| format!("walab-{backend}")),
            otlp_endpoint: t.otel_exporter_otlp_endpoint.filter(|e| !e.is_empty()),
            otel_sdk_disabled: t.otel_sdk_disabled,
            restarts: t.walab_restarts,
            health_socket: t
                .walab_health_socket
                .filter(|p| !p.is_empty())
                .map(PathBuf::from),
            limits: Limits {
                max_connections: usize_of(l.max_connections),
                header_timeout: Duration::from_millis(l.header_timeout_ms),
                body_timeout: Duration::from_millis(l.body_timeout_ms),
                request_timeout: Duration::from_millis(l.request_timeout_ms),
                max_header_bytes: usize_of(l.max_header_bytes),
                max_body_bytes_in_flight: usize_of(l.max_body_bytes_in_flight),
                min_body_bytes_per_sec: l.min_body_bytes_per_sec,
                write_timeout: Duration::from_millis(l.write_timeout_ms),
                max_answer_bytes_in_flight: usize_of(l.max_answer_bytes_in_flight),
            },
            allowed_origins: s.allowed_origins.map(|o| o.0).unwrap_or_default(),
        })
    }

    /// Whether this server's backend keeps a log (the runbook's `wal_enabled`).
    pub fn wal_enabled(&self) -> bool {
        self.backend.supports().log
    }

    /// What [`walab_store::open_backend`] needs.
    pub fn backend_config(&self) -> BackendConfig {
        BackendConfig {
            kind: self.backend,
            data_dir: self.data_dir.clone(),
            settings: self.backend_settings.clone(),
            observer: None,
        }
    }
}

/// How log lines are written (`LOG_FORMAT`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LogFormat {
    /// For a person at a terminal: `tracing-subscriber`'s full text format.
    #[default]
    Text,
    /// One JSON object a line (`tracing-subscriber`'s JSON format), for log shippers.
    Json,
}

impl FromStr for LogFormat {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "text" => Ok(LogFormat::Text),
            "json" => Ok(LogFormat::Json),
            other => Err(format!(
                "unknown log format '{other}': expected text or json"
            )),
        }
    }
}

impl fmt::Display for LogFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            LogFormat::Text => "text",
            LogFormat::Json => "json",
        })
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use walab_store::etcd::{EtcdArgs, EtcdSettings};
    use walab_store::sled_backend::{SledFlush, SledSettings};
    use walab_store::wal::WalSettings;
    use walab_wal::{RecoveryMode, SyncPolicy};

    use super::*;

    fn wal(c: &Config) -> WalSettings {
        c.backend_settings.get().expect("the WAL's settings")
    }

    fn sled_flush(c: &Config) -> SledFlush {
        let s: SledSettings = c.backend_settings.get().expect("sled's settings");
        s.sled_flush
    }

    fn etcd(c: &Config) -> EtcdSettings {
        let a: EtcdArgs = c.backend_settings.get().expect("etcd's settings");
        a.into()
    }

    fn parse(vars: &[(&str, &str)]) -> Result<Config, ConfigError> {
        let map: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        Config::from_lookup(|name| map.get(name).cloned())
    }

    fn error_line(var: &str, value: &str) -> String {
        match parse(&[(var, value)]) {
            Ok(_) => panic!("{var}={value} was accepted"),
            Err(e) => {
                assert_eq!(e.var, var);
                e.to_string()
            }
        }
    }

    #[test]
    fn defaults() {
        let c = parse(&[]).expect("defaults parse");
        assert_eq!(c.backend, BackendKind::named("wal"));
        assert_eq!(c.host, "127.0.0.1");
        assert_eq!(c.limits, Limits::default());
        assert!(c.allowed_origins.is_empty());
        assert_eq!(c.port, 8000);
        assert_eq!(c.data_dir, PathBuf::from("./data"));
        let w = wal(&c);
        assert_eq!(w.checkpoint_threshold, 100);
        assert_eq!(w.checkpoint_growth_percent, 100);
        assert_eq!(w.snapshot_bytes_per_sec, 20_000_000);
        assert_eq!(w.fsync, SyncPolicy::Always);
        assert!(w.group_commit);
        assert_eq!(w.recovery_mode, RecoveryMode::TolerateCorruptedTail);
        assert_eq!(w.segment_bytes, 64 << 20);
        assert_eq!(c.slow_fsync, Some(Duration::from_secs(1)));
        assert_eq!(sled_flush(&c), SledFlush::Background);
        assert_eq!(c.max_value_bytes, 1_048_576);
        assert_eq!(c.admin_token, None);
        assert_eq!(c.service_name, "walab-wal");
        assert_eq!(c.restarts, 0);
        assert_eq!(c.log_format, LogFormat::Text);
        assert!(c.wal_enabled());
    }

    #[test]
    fn every_variable_is_read() {
        let c = parse(&[
            ("KV_BACKEND", "sled"),
            ("HOST", "127.0.0.1"),
            ("PORT", "8003"),
            ("DATA_DIR", "/tmp/x"),
            ("CHECKPOINT_THRESHOLD", "0"),
            ("CHECKPOINT_GROWTH_PERCENT", "50"),
            ("SNAPSHOT_BYTES_PER_SEC", "0"),
            ("FSYNC", "interval:250"),
            ("GROUP_COMMIT", "off"),
            ("RECOVERY_MODE", "point-in-time"),
            ("SEGMENT_BYTES", "8192"),
            ("SLOW_FSYNC_MS", "250"),
            ("SLED_FLUSH", "always"),
            ("MAX_VALUE_BYTES", "10"),
            ("ADMIN_TOKEN", "s3cret"),
            ("LOG_FORMAT", "json"),
            ("OTEL_SERVICE_NAME", "kv"),
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://jaeger:4317"),
            ("WALAB_RESTARTS", "3"),
            ("MAX_CONNECTIONS", "7"),
            ("HEADER_TIMEOUT_MS", "1500"),
            ("BODY_TIMEOUT_MS", "2500"),
            ("REQUEST_TIMEOUT_MS", "3500"),
            ("MAX_HEADER_BYTES", "4096"),
            ("MAX_BODY_BYTES_IN_FLIGHT", "65536"),
            ("MIN_BODY_BYTES_PER_SEC", "100"),
            ("WRITE_TIMEOUT_MS", "4500"),
            ("MAX_ANSWER_BYTES_IN_FLIGHT", "131072"),
            (
                "ALLOWED_ORIGINS",
                "http://localhost:3000, https://Lab.example",
            ),
        ])
        .expect("valid values parse");
        assert_eq!(c.backend, BackendKind::named("sled"));
        assert_eq!((c.host.as_str(), c.port), ("127.0.0.1", 8003));
        assert_eq!(c.data_dir, PathBuf::from("/tmp/x"));
        let w = wal(&c);
        assert_eq!(w.checkpoint_threshold, 0);
        assert_eq!(
            w.fsync,
            SyncPolicy::Interval(std::time::Duration::from_millis(250))
        );
        assert!(!w.group_commit);
        assert_eq!(w.recovery_mode, RecoveryMode::PointInTime);
        assert_eq!(w.segment_bytes, 8192);
        assert_eq!(c.slow_fsync, Some(Duration::from_millis(250)));
        assert_eq!(sled_flush(&c), SledFlush::Always);
        assert_eq!(c.max_value_bytes, 10);
        assert_eq!(c.admin_token.as_deref(), Some("s3cret"));
        assert_eq!(c.log_format, LogFormat::Json);
        assert_eq!(c.service_name, "kv");
        assert_eq!(c.otlp_endpoint.as_deref(), Some("http://jaeger:4317"));
        assert_eq!(c.restarts, 3);
        assert_eq!(
            c.limits,
            Limits {
                max_connections: 7,
                header_timeout: Duration::from_millis(1500),
                body_timeout: Duration::from_millis(2500),
                request_timeout: Duration::from_millis(3500),
                max_header_bytes: 4096,
                max_body_bytes_in_flight: 65536,
                min_body_bytes_per_sec: 100,
                write_timeout: Duration::from_millis(4500),
                max_answer_bytes_in_flight: 131072,
            }
        );
        assert_eq!(
            c.allowed_origins,
            ["http://localhost:3000", "https://lab.example"]
        );
        assert!(!c.wal_enabled());
        let b = c.backend_config();
        let engine = w.engine_config(&b.data_dir);
        assert_eq!(engine.checkpoint_threshold, 0);
        assert_eq!(engine.checkpoint_growth_percent, 50);
        assert_eq!(engine.snapshot_bytes_per_sec, 0);
        assert_eq!(engine.dir, PathBuf::from("/tmp/x"));
    }

    #[test]
    fn wal_enabled_false_is_the_memory_backend_unless_kv_backend_says_otherwise() {
        let c = parse(&[("WAL_ENABLED", "false")]).expect("parses");
        assert_eq!(c.backend, BackendKind::named("memory"));
        assert_eq!(c.service_name, "walab-memory");
        let c = parse(&[("WAL_ENABLED", "true")]).expect("parses");
        assert_eq!(c.backend, BackendKind::named("wal"));
        let c = parse(&[("WAL_ENABLED", "false"), ("KV_BACKEND", "sled")]).expect("parses");
        assert_eq!(c.backend, BackendKind::named("sled"));
    }

    #[test]
    fn etcd_settings_and_the_log_filter_are_read() {
        let c = parse(&[]).expect("defaults parse");
        let e = etcd(&c);
        assert_eq!(e.endpoints, ["http://127.0.0.1:2379"]);
        assert_eq!((e.prefix.as_str(), e.pid_dir.as_ref()), ("walab/", None));
        assert_eq!(c.log_filter, "info");
        let c = parse(&[
            ("KV_BACKEND", "etcd"),
            ("ETCD_ENDPOINTS", "http://a:1, http://b:2,"),
            ("ETCD_PREFIX", "lab/"),
            ("ETCD_PID_DIR", "/tmp/pids"),
            ("RUST_LOG", "info,walab::request=warn"),
        ])
        .expect("parses");
        assert_eq!(c.backend, BackendKind::named("etcd"));
        let e = etcd(&c);
        assert_eq!(e.endpoints, ["http://a:1", "http://b:2"]);
        assert_eq!(e.prefix, "lab/");
        assert_eq!(e.pid_dir, Some(PathBuf::from("/tmp/pids")));
        assert_eq!(c.log_filter, "info,walab::request=warn");
    }

    #[test]
    fn every_variable_is_a_flag_of_the_same_name_once() {
        let vars: Vec<&str> = variables().collect();
        for var in [
            "KV_BACKEND",
            "FSYNC",
            "SLOW_FSYNC_MS",
            "RUST_LOG",
            "WALAB_RESTARTS",
        ] {
            assert!(vars.contains(&var), "{var} in {vars:?}");
        }
        let mut unique = vars.clone();
        unique.sort_unstable();
        unique.dedup();
        assert_eq!(unique.len(), vars.len(), "{vars:?}");
        for arg in SERVE.get_arguments().filter(|a| a.get_long().is_some()) {
            let long = arg.get_long().unwrap_or_default();
            if matches!(long, "help" | "version") {
                continue;
            }
            assert_eq!(
                variable(arg),
                Some(long.to_uppercase().replace('-', "_")).as_deref(),
                "--{long}"
            );
        }
    }

    #[test]
    fn every_value_help_offers_is_accepted() {
        for arg in SERVE.get_arguments() {
            let Some(var) = variable(arg) else { continue };
            for value in arg.get_possible_values() {
                let value = value.get_name().replace("<ms>", "250");
                if let Err(e) = parse(&[(var, value.as_str())]) {
                    panic!("{var}={value} is offered by --help but refused: {e}");
                }
            }
        }
    }

    #[test]
    fn slow_fsync_ms_zero_turns_the_warning_off() {
        let c = parse(&[("SLOW_FSYNC_MS", "0")]).expect("parses");
        assert_eq!(c.slow_fsync, None);
    }

    #[test]
    fn empty_values_count_as_unset() {
        let c = parse(&[("ADMIN_TOKEN", ""), ("PORT", " ")]).expect("parses");
        assert_eq!(c.admin_token, None);
        assert_eq!(c.port, 8000);
    }

    #[test]
    fn each_bad_value_names_its_variable_and_what_it_accepts() {
        let cases = [
            (
                "KV_BACKEND",
                "postgres",
                "expected one of wal, memory, sled, etcd, redb",
            ),
            ("WAL_ENABLED", "maybe", "expected true or false"),
            ("PORT", "80000", "expected a port number from 0 to 65535"),
            ("PORT", "http", "got 'http'"),
            (
                "CHECKPOINT_THRESHOLD",
                "-1",
                "expected a whole number of records",
            ),
            (
                "FSYNC",
                "sometimes",
                "unknown sync policy 'sometimes': expected always, never or interval:<milliseconds>",
            ),
            ("FSYNC", "interval:0", "expected always, never or interval"),
            ("GROUP_COMMIT", "sometimes", "expected on or off"),
            ("RECOVERY_MODE", "yolo", "expected tolerate-corrupted-tail"),
            ("SEGMENT_BYTES", "100", "at least 4096"),
            ("SLED_FLUSH", "never", "expected always or background"),
            ("REDB_DURABILITY", "none", "expected immediate or eventual"),
            ("MAX_VALUE_BYTES", "0", "at least 1"),
            ("MAX_VALUE_BYTES", "1MB", "got '1MB'"),
            ("WALAB_RESTARTS", "x", "expected a whole number"),
            (
                "CHECKPOINT_GROWTH_PERCENT",
                "half",
                "expected a whole percentage",
            ),
            ("MAX_CONNECTIONS", "0", "at least 1"),
            (
                "HEADER_TIMEOUT_MS",
                "soon",
                "expected a number of milliseconds",
            ),
            ("BODY_TIMEOUT_MS", "0", "at least 1"),
            ("MAX_HEADER_BYTES", "10", "at least 1024"),
            ("MAX_BODY_BYTES_IN_FLIGHT", "1k", "got '1k'"),
            ("ALLOWED_ORIGINS", "evil.example", "expected origins like"),
            ("ALLOWED_ORIGINS", "http://a.example/path", "no path"),
            ("LOG_FORMAT", "xml", "expected text or json"),
            (
                "SLOW_FSYNC_MS",
                "1s",
                "expected a whole number of milliseconds",
            ),
            (
                "ETCD_ENDPOINTS",
                "127.0.0.1:2379",
                "expected comma-separated http://host:port URLs of etcd members, got '127.0.0.1:2379'",
            ),
            ("RUST_LOG", "walab=loud", "expected a log filter like info"),
        ];
        for (var, value, expected) in cases {
            let line = error_line(var, value);
            assert!(line.starts_with(&format!("{var}: ")), "{line}");
            assert!(line.contains(expected), "{var}={value}: {line}");
            assert!(!line.contains('\n'), "one line: {line}");
        }
    }
}
