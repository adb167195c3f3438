//! The server's settings, read from the environment once, at the edge.
//!
//! `main` calls [`Config::from_env`]; everything else receives a `Config`. Parsing goes
//! through [`Config::from_lookup`] so tests can feed a map instead of touching the process
//! environment. A bad value is a [`ConfigError`] whose one line names the variable and what
//! it accepts, because the person reading it is at a terminal, not in a debugger.
//!
//! An empty value counts as unset (`ADMIN_TOKEN=` does not enable auth with an empty token).

use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

use walab_store::etcd::EtcdSettings;
use walab_store::{BackendConfig, BackendKind, SledFlush};
use walab_wal::{RecoveryMode, SyncPolicy};

use crate::telemetry::LogFormat;

/// Everything `walab serve` needs to know. Defaults are documented per field.
#[derive(Debug, Clone)]
pub struct Config {
    /// `KV_BACKEND`: wal (default), memory, sled or etcd. `WAL_ENABLED=false` means memory.
    pub backend: BackendKind,
    /// `HOST`: the address to listen on (default `127.0.0.1`: the lab runs on laptops, and
    /// its admin API must not be reachable from the network unless asked for).
    pub host: String,
    /// `PORT`: the port to listen on (default 8000).
    pub port: u16,
    /// `DATA_DIR`: where the backend keeps its files (default `./data`).
    pub data_dir: PathBuf,
    /// `CHECKPOINT_THRESHOLD`: records between automatic checkpoints (default 100; 0 = never).
    pub checkpoint_threshold: u64,
    /// `CHECKPOINT_GROWTH_PERCENT`: an automatic checkpoint also waits until the log has
    /// grown by this share of the last snapshot (default 100; 0 = the threshold alone).
    pub checkpoint_growth_percent: u64,
    /// `FSYNC`: the WAL's sync policy (default always).
    pub fsync: SyncPolicy,
    /// `GROUP_COMMIT`: whether concurrent WAL writers share a sync (default on).
    pub group_commit: bool,
    /// `RECOVERY_MODE`: what WAL recovery does with damage (default tolerate-corrupted-tail).
    pub recovery_mode: RecoveryMode,
    /// `SNAPSHOT_BYTES_PER_SEC`: how fast checkpoints write snapshots (default 20 MB/s; 0:
    /// unpaced), so a big snapshot does not queue ahead of every log sync.
    pub snapshot_bytes_per_sec: u64,
    /// `SLOW_FSYNC_MS`: a sync of the log that takes longer than this is logged as a
    /// warning (default 1000, etcd's threshold for its slow-WAL warning; 0: `None`, never).
    pub slow_fsync: Option<Duration>,
    /// `SEGMENT_BYTES`: WAL segment size (default 64 MiB).
    pub segment_bytes: u64,
    /// `SLED_FLUSH`: when sled flushes (default background).
    pub sled_flush: SledFlush,
    /// `ETCD_ENDPOINTS` (comma-separated client URLs, default `http://127.0.0.1:2379`),
    /// `ETCD_PREFIX` (default `walab/`), `ETCD_PID_DIR` (set by `walab lab --etcd`).
    pub etcd: EtcdSettings,
    /// `MAX_VALUE_BYTES`: the largest value accepted, as JSON text (default 1 MiB).
    pub max_value_bytes: usize,
    /// `ADMIN_TOKEN`: when set, `/admin/*` needs `Authorization: Bearer <token>`.
    pub admin_token: Option<String>,
    /// `LOG_FORMAT`: text (default) or json, one object a line.
    pub log_format: LogFormat,
    /// `OTEL_SERVICE_NAME`, or `walab-<backend>`.
    pub service_name: String,
    /// `OTEL_EXPORTER_OTLP_ENDPOINT`: where spans go, over OTLP/HTTP (`src/traces.rs`).
    pub otlp_endpoint: Option<String>,
    /// `OTEL_SDK_DISABLED=true` turns traces off even with an endpoint (the spec's switch,
    /// which the Rust SDK does not read itself).
    pub otel_sdk_disabled: bool,
    /// `WALAB_RESTARTS`: how many times `walab lab` has restarted this process (default 0).
    pub restarts: u64,
    /// How long a client may take and how much it may hold (`MAX_CONNECTIONS`,
    /// `HEADER_TIMEOUT_MS`, `BODY_TIMEOUT_MS`, `REQUEST_TIMEOUT_MS`, `MAX_HEADER_BYTES`,
    /// `MAX_BODY_BYTES_IN_FLIGHT`).
    pub limits: Limits,
    /// `ALLOWED_ORIGINS`: web origins, besides the server's own, whose pages may send
    /// state-changing requests (comma-separated, e.g. `http://localhost:3000`).
    pub allowed_origins: Vec<String>,
}

/// What a connection may cost the server. Every limit answers with a clear error (or a
/// closed connection, for a client that stalls), never with a stuck server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// `MAX_CONNECTIONS` (default 512): connections served at once; more wait to be accepted.
    pub max_connections: usize,
    /// `HEADER_TIMEOUT_MS` (default 10000): a request's headers must arrive within this, and
    /// an idle keep-alive connection is closed after it.
    pub header_timeout: Duration,
    /// `BODY_TIMEOUT_MS` (default 10000): the longest pause while a request body arrives.
    pub body_timeout: Duration,
    /// `REQUEST_TIMEOUT_MS` (default 30000): the longest a request may take, body included.
    pub request_timeout: Duration,
    /// `MAX_HEADER_BYTES` (default 32768): the request line and headers, in bytes.
    pub max_header_bytes: usize,
    /// `MAX_BODY_BYTES_IN_FLIGHT` (default 64 MiB): bodies being read at once hold at most
    /// this much; a request that would go over is answered 503 `busy` at once.
    pub max_body_bytes_in_flight: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_connections: 512,
            header_timeout: Duration::from_secs(10),
            body_timeout: Duration::from_secs(10),
            request_timeout: Duration::from_secs(30),
            max_header_bytes: 32 * 1024,
            max_body_bytes_in_flight: 64 << 20,
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

/// The smallest segment that makes sense: a few records plus the header.
const MIN_SEGMENT_BYTES: u64 = 4096;

impl Config {
    /// Whether spans are exported: an OTLP endpoint is set and the SDK is not disabled.
    pub fn tracing_enabled(&self) -> bool {
        self.otlp_endpoint.is_some() && !self.otel_sdk_disabled
    }

    /// Read the process environment.
    pub fn from_env() -> Result<Config, ConfigError> {
        Config::from_lookup(|name| std::env::var(name).ok())
    }

    /// Read settings through `lookup` (a variable's value, or `None` when unset).
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Config, ConfigError> {
        let get = |name: &str| {
            lookup(name)
                .map(|v| v.trim().to_owned())
                .filter(|v| !v.is_empty())
        };

        let wal_enabled = match get("WAL_ENABLED") {
            None => true,
            Some(v) => parse_bool(&v).ok_or_else(|| ConfigError {
                var: "WAL_ENABLED",
                message: format!("expected true or false, got '{v}'"),
            })?,
        };
        let backend = match get("KV_BACKEND") {
            Some(v) => parse_with("KV_BACKEND", &v, BackendKind::from_str)?,
            None if !wal_enabled => BackendKind::named("memory"),
            None => BackendKind::named("wal"),
        };

        let port = match get("PORT") {
            None => 8000,
            Some(v) => v.parse::<u16>().map_err(|_| ConfigError {
                var: "PORT",
                message: format!("expected a port number from 0 to 65535, got '{v}'"),
            })?,
        };
        let checkpoint_threshold = match get("CHECKPOINT_THRESHOLD") {
            None => 100,
            Some(v) => v.parse::<u64>().map_err(|_| ConfigError {
                var: "CHECKPOINT_THRESHOLD",
                message: format!(
                    "expected a whole number of records (0 turns automatic checkpoints off), got '{v}'"
                ),
            })?,
        };
        let checkpoint_growth_percent = match get("CHECKPOINT_GROWTH_PERCENT") {
            None => 100,
            Some(v) => v.parse::<u64>().map_err(|_| ConfigError {
                var: "CHECKPOINT_GROWTH_PERCENT",
                message: format!(
                    "expected a whole percentage of the last snapshot's size (0: the threshold alone decides), got '{v}'"
                ),
            })?,
        };
        let snapshot_bytes_per_sec = match get("SNAPSHOT_BYTES_PER_SEC") {
            None => walab_wal::Config::default().snapshot_bytes_per_sec,
            Some(v) => v.parse::<u64>().map_err(|_| ConfigError {
                var: "SNAPSHOT_BYTES_PER_SEC",
                message: format!(
                    "expected a whole number of bytes per second (0: as fast as the disk takes it), got '{v}'"
                ),
            })?,
        };
        let slow_fsync = match get("SLOW_FSYNC_MS") {
            None => Some(Duration::from_secs(1)),
            Some(v) => match v.parse::<u64>() {
                Ok(0) => None,
                Ok(ms) => Some(Duration::from_millis(ms)),
                Err(_) => {
                    return Err(ConfigError {
                        var: "SLOW_FSYNC_MS",
                        message: format!(
                            "expected a whole number of milliseconds (0: never warn), got '{v}'"
                        ),
                    });
                }
            },
        };
        let segment_bytes = match get("SEGMENT_BYTES") {
            None => 64 << 20,
            Some(v) => match v.parse::<u64>() {
                Ok(n) if n >= MIN_SEGMENT_BYTES => n,
                _ => {
                    return Err(ConfigError {
                        var: "SEGMENT_BYTES",
                        message: format!(
                            "expected a number of bytes of at least {MIN_SEGMENT_BYTES}, got '{v}'"
                        ),
                    });
                }
            },
        };
        let max_value_bytes = match get("MAX_VALUE_BYTES") {
            None => 1 << 20,
            Some(v) => match v.parse::<usize>() {
                Ok(n) if n >= 1 => n,
                _ => {
                    return Err(ConfigError {
                        var: "MAX_VALUE_BYTES",
                        message: format!("expected a number of bytes of at least 1, got '{v}'"),
                    });
                }
            },
        };
        let group_commit = match get("GROUP_COMMIT") {
            None => true,
            Some(v) => parse_bool(&v).ok_or_else(|| ConfigError {
                var: "GROUP_COMMIT",
                message: format!("expected on or off, got '{v}'"),
            })?,
        };
        let restarts = match get("WALAB_RESTARTS") {
            None => 0,
            Some(v) => v.parse::<u64>().map_err(|_| ConfigError {
                var: "WALAB_RESTARTS",
                message: format!("expected a whole number (set by `walab lab`), got '{v}'"),
            })?,
        };

        let defaults = Limits::default();
        let number = |var: &'static str, default: usize, min: usize, unit: &str| match get(var) {
            None => Ok(default),
            Some(v) => match v.parse::<usize>() {
                Ok(n) if n >= min => Ok(n),
                _ => Err(ConfigError {
                    var,
                    message: format!("expected a number of {unit} of at least {min}, got '{v}'"),
                }),
            },
        };
        let millis = |var: &'static str, default: Duration| {
            number(var, default.as_millis() as usize, 1, "milliseconds")
                .map(|ms| Duration::from_millis(ms as u64))
        };
        let limits = Limits {
            max_connections: number(
                "MAX_CONNECTIONS",
                defaults.max_connections,
                1,
                "connections",
            )?,
            header_timeout: millis("HEADER_TIMEOUT_MS", defaults.header_timeout)?,
            body_timeout: millis("BODY_TIMEOUT_MS", defaults.body_timeout)?,
            request_timeout: millis("REQUEST_TIMEOUT_MS", defaults.request_timeout)?,
            max_header_bytes: number("MAX_HEADER_BYTES", defaults.max_header_bytes, 1024, "bytes")?,
            max_body_bytes_in_flight: number(
                "MAX_BODY_BYTES_IN_FLIGHT",
                defaults.max_body_bytes_in_flight,
                1024,
                "bytes",
            )?,
        };
        let allowed_origins = match get("ALLOWED_ORIGINS") {
            None => Vec::new(),
            Some(v) => parse_origins(&v).map_err(|message| ConfigError {
                var: "ALLOWED_ORIGINS",
                message,
            })?,
        };

        let defaults = EtcdSettings::default();
        let etcd = EtcdSettings {
            endpoints: get("ETCD_ENDPOINTS").map_or(defaults.endpoints, |v| {
                v.split(',')
                    .map(str::trim)
                    .filter(|e| !e.is_empty())
                    .map(str::to_owned)
                    .collect()
            }),
            prefix: get("ETCD_PREFIX").unwrap_or(defaults.prefix),
            pid_dir: get("ETCD_PID_DIR").map(PathBuf::from),
        };
        if let Some(bad) = etcd.endpoints.iter().find(|e| !e.starts_with("http://")) {
            return Err(ConfigError {
                var: "ETCD_ENDPOINTS",
                message: format!(
                    "expected comma-separated http://host:port URLs of etcd members, got '{bad}'"
                ),
            });
        }

        Ok(Config {
            backend,
            host: get("HOST").unwrap_or_else(|| "127.0.0.1".to_owned()),
            port,
            data_dir: get("DATA_DIR").map_or_else(|| PathBuf::from("./data"), PathBuf::from),
            checkpoint_threshold,
            checkpoint_growth_percent,
            snapshot_bytes_per_sec,
            fsync: opt_parse("FSYNC", get("FSYNC"), SyncPolicy::from_str)?.unwrap_or_default(),
            group_commit,
            recovery_mode: opt_parse(
                "RECOVERY_MODE",
                get("RECOVERY_MODE"),
                RecoveryMode::from_str,
            )?
            .unwrap_or_default(),
            slow_fsync,
            segment_bytes,
            sled_flush: opt_parse("SLED_FLUSH", get("SLED_FLUSH"), SledFlush::from_str)?
                .unwrap_or_default(),
            etcd,
            max_value_bytes,
            admin_token: get("ADMIN_TOKEN"),
            log_format: opt_parse("LOG_FORMAT", get("LOG_FORMAT"), LogFormat::from_str)?
                .unwrap_or_default(),
            service_name: get("OTEL_SERVICE_NAME").unwrap_or_else(|| format!("walab-{backend}")),
            otlp_endpoint: get("OTEL_EXPORTER_OTLP_ENDPOINT").filter(|e| !e.trim().is_empty()),
            otel_sdk_disabled: get("OTEL_SDK_DISABLED")
                .is_some_and(|v| v.trim().eq_ignore_ascii_case("true")),
            restarts,
            limits,
            allowed_origins,
        })
    }

    /// Whether this server's backend keeps a log (the runbook's `wal_enabled`).
    pub fn wal_enabled(&self) -> bool {
        self.backend.supports().log
    }

    /// What [`walab_store::open_backend`] needs.
    pub fn backend_config(&self) -> BackendConfig {
        let wal = walab_wal::Config::new(&self.data_dir)
            .sync(self.fsync)
            .group_commit(self.group_commit)
            .checkpoint_threshold(self.checkpoint_threshold)
            .checkpoint_growth_percent(self.checkpoint_growth_percent)
            .snapshot_bytes_per_sec(self.snapshot_bytes_per_sec)
            .segment_bytes(self.segment_bytes)
            .recovery_mode(self.recovery_mode);
        BackendConfig {
            kind: self.backend,
            data_dir: self.data_dir.clone(),
            wal,
            sled_flush: self.sled_flush,
            etcd: self.etcd.clone(),
        }
    }
}

/// The engine types already word their errors ("unknown sync policy 'x': expected ...");
/// this only prefixes the variable.
fn parse_with<T>(
    var: &'static str,
    value: &str,
    parse: impl Fn(&str) -> Result<T, String>,
) -> Result<T, ConfigError> {
    parse(value).map_err(|message| ConfigError { var, message })
}

fn opt_parse<T>(
    var: &'static str,
    value: Option<String>,
    parse: impl Fn(&str) -> Result<T, String>,
) -> Result<Option<T>, ConfigError> {
    value.map(|v| parse_with(var, &v, parse)).transpose()
}

/// `http://host[:port]` origins, comma-separated, as browsers send them in `Origin`.
fn parse_origins(v: &str) -> Result<Vec<String>, String> {
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
        .collect()
}

fn parse_bool(v: &str) -> Option<bool> {
    match v.to_ascii_lowercase().as_str() {
        "true" | "1" | "yes" | "on" => Some(true),
        "false" | "0" | "no" | "off" => Some(false),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

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
        assert_eq!(c.checkpoint_threshold, 100);
        assert_eq!(c.checkpoint_growth_percent, 100);
        assert_eq!(c.snapshot_bytes_per_sec, 20_000_000);
        assert_eq!(c.fsync, SyncPolicy::Always);
        assert!(c.group_commit);
        assert_eq!(c.recovery_mode, RecoveryMode::TolerateCorruptedTail);
        assert_eq!(c.segment_bytes, 64 << 20);
        assert_eq!(c.slow_fsync, Some(Duration::from_secs(1)));
        assert_eq!(c.sled_flush, SledFlush::Background);
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
            (
                "ALLOWED_ORIGINS",
                "http://localhost:3000, https://Lab.example",
            ),
        ])
        .expect("valid values parse");
        assert_eq!(c.backend, BackendKind::named("sled"));
        assert_eq!((c.host.as_str(), c.port), ("127.0.0.1", 8003));
        assert_eq!(c.data_dir, PathBuf::from("/tmp/x"));
        assert_eq!(c.checkpoint_threshold, 0);
        assert_eq!(
            c.fsync,
            SyncPolicy::Interval(std::time::Duration::from_millis(250))
        );
        assert!(!c.group_commit);
        assert_eq!(c.recovery_mode, RecoveryMode::PointInTime);
        assert_eq!(c.segment_bytes, 8192);
        assert_eq!(c.slow_fsync, Some(Duration::from_millis(250)));
        assert_eq!(c.sled_flush, SledFlush::Always);
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
            }
        );
        assert_eq!(
            c.allowed_origins,
            ["http://localhost:3000", "https://lab.example"]
        );
        assert!(!c.wal_enabled());
        let b = c.backend_config();
        assert_eq!(b.wal.checkpoint_threshold, 0);
        assert_eq!(b.wal.checkpoint_growth_percent, 50);
        assert_eq!(b.wal.snapshot_bytes_per_sec, 0);
        assert_eq!(b.wal.dir, PathBuf::from("/tmp/x"));
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
                "expected one of wal, memory, sled",
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
        ];
        for (var, value, expected) in cases {
            let line = error_line(var, value);
            assert!(line.starts_with(&format!("{var}: ")), "{line}");
            assert!(line.contains(expected), "{var}={value}: {line}");
            assert!(!line.contains('\n'), "one line: {line}");
        }
    }
}
