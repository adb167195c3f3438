//! The `walab` command: a thin shell over the library. It reads the environment once,
//! sets up logging and hands everything to `walab::run` or `walab::lab::run`.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// See the note beside `mimalloc` in Cargo.toml: measured, not assumed.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;
use walab::Config;
use walab::lab::{LabOptions, Ports};

/// A lab that shows what a write-ahead log buys you.
#[derive(Debug, Parser)]
#[command(name = "walab", version)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Serve the key-value API over one backend, configured by environment variables
    /// (KV_BACKEND, HOST (default 127.0.0.1), PORT, DATA_DIR, FSYNC, CHECKPOINT_THRESHOLD,
    /// the limits MAX_CONNECTIONS, HEADER_TIMEOUT_MS, BODY_TIMEOUT_MS, ...; README:
    /// Configuration).
    Serve,
    /// Run the wal, memory and sled servers side by side and restart any that dies.
    Lab {
        /// Each backend keeps its files in a subdirectory of this.
        #[arg(long, default_value = "./data")]
        data_dir: PathBuf,
        /// The address the three servers listen on.
        #[arg(long, default_value = "127.0.0.1")]
        host: String,
        /// Port of the write-ahead-log server.
        #[arg(long, default_value_t = 8001)]
        wal_port: u16,
        /// Port of the memory-only server.
        #[arg(long, default_value_t = 8002)]
        memory_port: u16,
        /// Port of the sled server.
        #[arg(long, default_value_t = 8003)]
        sled_port: u16,
        /// Port of the lab's web page (the three servers side by side); 0: no page.
        #[arg(long, default_value_t = 8000)]
        ui_port: u16,
    },
    /// Describe a WAL data directory offline: snapshot, segments, records; verify every
    /// checksum; exit non-zero on damage.
    Inspect {
        /// The WAL's data directory (in the lab: data/wal).
        dir: PathBuf,
        /// Print every record, not only the summary of each file.
        #[arg(long)]
        records: bool,
        /// Print the same facts as one JSON document, for scripts (`jq`).
        #[arg(long)]
        json: bool,
    },
    /// Crash a server again and again under concurrent writers and count, after every
    /// restart, the acknowledged writes that did not survive.
    Torture(walab::torture::TortureOptions),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Serve => serve(),
        Command::Lab {
            data_dir,
            host,
            wal_port,
            memory_port,
            sled_port,
            ui_port,
        } => {
            // The children read the same environment; the page's proxy keeps their limits,
            // and the lab's own lines take their format.
            let config = match Config::from_env() {
                Ok(config) => config,
                Err(e) => {
                    eprintln!("walab lab: {e}");
                    return ExitCode::from(2);
                }
            };
            walab::telemetry::init("lab", config.log_format, None);
            let limits = config.limits;
            let options = LabOptions {
                data_dir,
                host,
                ports: Ports {
                    wal: wal_port,
                    memory: memory_port,
                    sled: sled_port,
                },
                ui_port,
                limits,
            };
            match runtime() {
                Ok(rt) => rt.block_on(walab::lab::run(options)),
                Err(code) => code,
            }
        }
        Command::Inspect { dir, records, json } => walab::inspect::run(&dir, records, json),
        Command::Torture(options) => walab::torture::run(options),
    }
}

fn serve() -> ExitCode {
    let config = match Config::from_env() {
        Ok(config) => config,
        Err(e) => {
            eprintln!("walab serve: {e}");
            return ExitCode::from(2);
        }
    };
    let traces = match walab::traces::init(&config) {
        Ok(traces) => traces,
        Err(e) => {
            eprintln!("walab serve: {e}");
            return ExitCode::from(2);
        }
    };
    walab::telemetry::init(
        &format!("{}:{}", config.backend, config.port),
        config.log_format,
        traces.as_ref().map(walab::traces::Traces::tracer),
    );
    let rt = match runtime() {
        Ok(rt) => rt,
        Err(code) => return code,
    };
    let code = rt.block_on(async move {
        let addr = (config.host.clone(), config.port);
        let listener = match tokio::net::TcpListener::bind(&addr).await {
            Ok(l) => l,
            Err(e) => {
                tracing::error!("cannot listen on {}:{}: {e}", addr.0, addr.1);
                return ExitCode::from(1);
            }
        };
        tracing::info!(
            backend = %config.backend,
            data_dir = %config.data_dir.display(),
            restarts = config.restarts,
            "listening on http://{}:{}",
            addr.0,
            addr.1
        );
        if !walab::cross_site::is_loopback_host(&config.host) && config.admin_token.is_none() {
            tracing::warn!(
                "listening on {}, reachable from other machines, with the admin API open \
                 (crash, clear, checkpoint): set ADMIN_TOKEN to require a bearer token, or \
                 HOST=127.0.0.1 to stay on this machine",
                config.host
            );
        }
        match walab::run(listener, config, walab::shutdown::signal()).await {
            Ok(()) => {
                tracing::info!("stopped");
                ExitCode::SUCCESS
            }
            Err(e) => {
                tracing::error!("{e}");
                ExitCode::from(1)
            }
        }
    });
    // A recovery still running on the blocking pool (Ctrl-C during start-up) must not hold
    // the exit hostage.
    rt.shutdown_timeout(std::time::Duration::from_secs(1));
    // Flush the spans still queued (a clean shutdown only; a crash loses them, as it should).
    drop(traces);
    code
}

fn runtime() -> Result<tokio::runtime::Runtime, ExitCode> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| {
            eprintln!("walab: cannot start the async runtime: {e}");
            ExitCode::from(1)
        })
}
