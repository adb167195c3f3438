//! The `walab` command: a thin shell over the library. It parses the command line (and,
//! for `serve`, the environment behind each flag) once, sets up logging and hands
//! everything to `walab::run` or `walab::lab::run`.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{CommandFactory, FromArgMatches, Parser, Subcommand};

/// See the note beside `mimalloc` in Cargo.toml: measured, not assumed.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;
use walab::Config;
use walab::lab::LabOptions;
use walab::server::config::ServeArgs;
use walab_store::BackendKind;

/// A lab that shows what a write-ahead log buys you.
#[derive(Debug, Parser)]
#[command(name = "walab", version, propagate_version = true)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Serve the key-value API over one backend.
    ///
    /// Every setting is a flag or, when the flag is not given, the environment variable
    /// named beside it (`--fsync` or FSYNC); an empty variable counts as unset. See
    /// docs/configuration.md.
    Serve(Box<ServeArgs>),
    /// Run the wal, memory and sled servers side by side (with --etcd, also an etcd
    /// cluster and the etcd server) and restart any that dies.
    Lab {
        /// Each backend keeps its files in a subdirectory of this.
        #[arg(long, default_value = "./data")]
        data_dir: PathBuf,
        /// The address the servers listen on.
        #[arg(long, default_value = "127.0.0.1")]
        host: String,
        /// A server's port other than its default (wal=8001, memory=8002, sled=8003,
        /// etcd=8004); repeat for more. `--wal-port 9001` says the same.
        #[arg(long = "port", value_name = "BACKEND=PORT", value_parser = parse_port)]
        ports: Vec<(BackendKind, u16)>,
        /// Also run a three-member etcd cluster (ports 12379/22379/32379, data in
        /// DATA_DIR/etcd-N) and the etcd backend on 8004. Needs `etcd` on PATH. The same as
        /// adding etcd to --backends.
        #[arg(long)]
        etcd: bool,
        /// The backends to run, comma-separated, from the catalog (default: wal, memory,
        /// sled; etcd=8004 and redb=8005 when named).
        #[arg(long, value_delimiter = ',', value_parser = walab::server::config::backend_parser())]
        backends: Vec<BackendKind>,
        /// Port of the lab's web page (the servers side by side); 0: no page.
        #[arg(long, default_value_t = 8000)]
        ui_port: u16,
        /// Where the page finds `walab experiment`'s runs (its default output).
        #[arg(long, default_value = "experiments")]
        experiments: PathBuf,
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
    /// Measure a lesson on this machine: a parameter swept, a plot, a table and a
    /// conclusion (`walab experiment list` names them).
    Experiment(walab::experiment::ExperimentOptions),
    /// Print a shell completion script for walab.
    ///
    /// For bash: `walab completions bash > ~/.local/share/bash-completion/completions/walab`.
    Completions {
        /// The shell to complete in.
        shell: clap_complete::Shell,
    },
}

fn main() -> ExitCode {
    let matches = Cli::command()
        .mut_subcommand("serve", |serve| {
            serve.mut_args(walab::server::config::blank_variables_unset)
        })
        .get_matches_from(port_flags_as_port_pairs(std::env::args_os()));
    let cli = Cli::from_arg_matches(&matches).unwrap_or_else(|e| e.exit());
    match cli.command {
        Command::Serve(_) => match matches.subcommand_matches("serve") {
            Some(args) => serve(args),
            None => ExitCode::from(2),
        },
        Command::Lab {
            data_dir,
            host,
            ports,
            etcd,
            backends,
            ui_port,
            experiments,
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
            walab::server::telemetry::init("lab", config.log_format, &config.log_filter, None);
            let limits = config.limits;
            let options = LabOptions {
                data_dir,
                host,
                ports,
                backends: walab::lab::chosen_backends(backends, etcd.then_some("etcd")),
                ui_port,
                limits,
                experiments,
            };
            match runtime() {
                Ok(rt) => rt.block_on(walab::lab::run(options)),
                Err(code) => code,
            }
        }
        Command::Inspect { dir, records, json } => walab::inspect::run(&dir, records, json),
        Command::Torture(options) => walab::torture::run(options),
        Command::Experiment(options) => walab::experiment::run(options),
        Command::Completions { shell } => {
            clap_complete::generate(shell, &mut Cli::command(), "walab", &mut std::io::stdout());
            ExitCode::SUCCESS
        }
    }
}

fn serve(args: &clap::ArgMatches) -> ExitCode {
    let config = match Config::from_matches(args) {
        Ok(config) => config,
        Err(e) => {
            eprintln!("walab serve: {e}");
            return ExitCode::from(2);
        }
    };
    let traces = match walab::server::traces::init(&config) {
        Ok(traces) => traces,
        Err(e) => {
            eprintln!("walab serve: {e}");
            return ExitCode::from(2);
        }
    };
    walab::server::telemetry::init(
        &format!("{}:{}", config.backend, config.port),
        config.log_format,
        &config.log_filter,
        traces.as_ref().map(walab::server::traces::Traces::tracer),
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
        if !walab::server::cross_site::is_loopback_host(&config.host)
            && config.admin_token.is_none()
        {
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

/// `wal=9001` for `--port`.
fn parse_port(text: &str) -> Result<(BackendKind, u16), String> {
    let (name, port) = text
        .split_once('=')
        .ok_or_else(|| format!("expected BACKEND=PORT, like wal=9001; got '{text}'"))?;
    let port = port
        .trim()
        .parse()
        .map_err(|_| format!("'{port}' is not a port number (0 to 65535)"))?;
    Ok((name.parse()?, port))
}

/// `--wal-port 9001` (and `--<backend>-port=9001`) as `--port wal=9001`, for every backend
/// of the catalog: the flags the lab has always had, without a flag per backend in the CLI.
fn port_flags_as_port_pairs(
    args: impl Iterator<Item = std::ffi::OsString>,
) -> Vec<std::ffi::OsString> {
    let mut out = Vec::new();
    let mut args = args.peekable();
    while let Some(arg) = args.next() {
        let text = arg.to_string_lossy();
        let flag = text.strip_prefix("--").and_then(|rest| {
            let (name, value) = match rest.split_once('=') {
                Some((name, value)) => (name, Some(value.to_owned())),
                None => (rest, None),
            };
            let backend = name.strip_suffix("-port")?;
            BackendKind::all()
                .any(|k| k.as_str() == backend)
                .then(|| (backend.to_owned(), value))
        });
        match flag {
            Some((backend, value)) => {
                let value = value.or_else(|| args.next().map(|v| v.to_string_lossy().into_owned()));
                out.push("--port".into());
                out.push(format!("{backend}={}", value.unwrap_or_default()).into());
            }
            None => out.push(arg),
        }
    }
    out
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
