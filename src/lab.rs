//! `walab lab`: the three servers of the runbook side by side, restarted when they die.
//!
//! It plays the part Compose's `restart: always` plays in the container stack: wal on 8001,
//! memory on 8002, sled on 8003, each a `walab serve` child with its own data directory.
//! It also serves its own web page on 8000 (the three side by side, see [`ui`]). It checks
//! the ports before starting anything (a clear error beats three children dying in a
//! loop), prints the URLs once all three are healthy, and on Ctrl-C or SIGTERM stops the
//! children and exits 0. Children die with the lab even if it is killed (SIGKILL on parent
//! death, see [`crate::sys::die_with_parent`]).
//!
//! - [`child`]: supervising one child: spawn, wait, restart, back off, stop.
//! - [`probe`]: the tiny HTTP client that asks `/health` and carries the page's requests.
//! - [`ui`]: the page and the proxy from `/api/{backend}/...` to the children.

pub mod child;
pub mod probe;
pub mod ui;

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use tokio::sync::watch;
use tokio::task::JoinSet;
use walab_store::BackendKind;

use self::child::Spec;

/// The three ports.
#[derive(Debug, Clone, Copy)]
pub struct Ports {
    /// The write-ahead-log server (default 8001).
    pub wal: u16,
    /// The memory-only server (default 8002).
    pub memory: u16,
    /// The sled server (default 8003).
    pub sled: u16,
}

/// What `walab lab` was asked to do.
#[derive(Debug, Clone)]
pub struct LabOptions {
    /// Each backend gets `<data_dir>/<backend>`.
    pub data_dir: PathBuf,
    /// The address all three listen on.
    pub host: String,
    /// Their ports.
    pub ports: Ports,
    /// The port of the lab's web page (default 8000); 0: no page.
    pub ui_port: u16,
    /// The connection limits of the page's server (the children read theirs from the same
    /// environment).
    pub limits: crate::config::Limits,
}

/// How long to wait for the first "all healthy" before saying so.
const FIRST_HEALTH_PATIENCE: Duration = Duration::from_secs(30);
/// How long the page's server gets to finish open requests when the lab stops.
const UI_STOP_GRACE: Duration = Duration::from_secs(2);

/// Run the lab until Ctrl-C or SIGTERM. Exit code 2 for a setup problem (port in use).
pub async fn run(options: LabOptions) -> ExitCode {
    let specs = match prepare(&options) {
        Ok(specs) => specs,
        Err(line) => {
            eprintln!("walab lab: {line}");
            return ExitCode::from(2);
        }
    };

    let ui_listener = match bind_ui(&options) {
        Ok(listener) => listener,
        Err(line) => {
            eprintln!("walab lab: {line}");
            return ExitCode::from(2);
        }
    };

    let (stop_tx, stop_rx) = watch::channel(false);
    let page = ui_listener.map(|listener| {
        let url = (specs[0].probe_host.clone(), options.ui_port);
        let targets = specs
            .iter()
            .map(|s| ui::Target {
                kind: s.kind,
                host: s.probe_host.clone(),
                port: s.port,
            })
            .collect();
        let mut stop = stop_rx.clone();
        let bind_host = options.host.clone();
        let limits = options.limits;
        let server = tokio::spawn(async move {
            let stopping = async move {
                let _ = stop.wait_for(|s| *s).await;
            };
            if let Err(e) = ui::serve(listener, &bind_host, limits, targets, stopping).await {
                tracing::error!("the lab's page stopped: {e}");
            }
        });
        (url, server)
    });
    let mut children = JoinSet::new();
    for spec in &specs {
        tracing::info!(
            "starting {} (data in {})",
            spec.label(),
            spec.data_dir.display()
        );
        children.spawn(child::supervise(spec.clone(), stop_rx.clone()));
    }
    let page_at = page.as_ref().map(|(at, _)| at.clone());
    let announce = tokio::spawn(announce_when_ready(specs, page_at));

    crate::shutdown::signal().await;
    tracing::info!("stopping the three servers");
    announce.abort();
    // Every supervisor holds a receiver, so this cannot fail while any of them runs.
    let _ = stop_tx.send(true);
    while children.join_next().await.is_some() {}
    if let Some((_, mut server)) = page {
        // A browser's open connections must not hold the exit hostage.
        if tokio::time::timeout(UI_STOP_GRACE, &mut server)
            .await
            .is_err()
        {
            server.abort();
        }
    }
    println!("walab lab stopped");
    ExitCode::SUCCESS
}

/// Check the ports, create the data directories, and describe the three children.
fn prepare(options: &LabOptions) -> Result<Vec<Spec>, String> {
    let exe = std::env::current_exe()
        .map_err(|e| format!("cannot find the walab executable to start servers with: {e}"))?;
    let probe_host = match options.host.as_str() {
        "0.0.0.0" | "::" | "[::]" => "127.0.0.1".to_owned(),
        host => host.to_owned(),
    };
    let p = options.ports;
    if options.ui_port != 0
        && let Some(flag) = [
            (p.wal, "--wal-port"),
            (p.memory, "--memory-port"),
            (p.sled, "--sled-port"),
        ]
        .iter()
        .find_map(|(port, flag)| (*port == options.ui_port).then_some(flag))
    {
        return Err(format!(
            "--ui-port and {flag} are both {}; give the page a port of its own (--ui-port 0: no page)",
            options.ui_port
        ));
    }
    let wanted = [
        (BackendKind::Wal, p.wal, "--wal-port"),
        (BackendKind::Memory, p.memory, "--memory-port"),
        (BackendKind::Sled, p.sled, "--sled-port"),
    ];
    for (i, (kind, port, flag)) in wanted.iter().enumerate() {
        if *port == 0 {
            return Err(format!(
                "{flag} 0 is not a fixed port; the {kind} server needs one the runbook can reach"
            ));
        }
        if let Some((other, _, other_flag)) = wanted[..i].iter().find(|(_, q, _)| q == port) {
            return Err(format!(
                "{other_flag} and {flag} are both {port}; give the {other} and {kind} servers a port each"
            ));
        }
    }
    for (kind, port, flag) in wanted {
        // Binding and dropping at once leaves a small race with whoever grabs the port next,
        // but it turns the common case (a lab already running) into one clear line.
        match std::net::TcpListener::bind((options.host.as_str(), port)) {
            Ok(listener) => drop(listener),
            Err(e) if e.kind() == std::io::ErrorKind::AddrInUse => {
                return Err(format!(
                    "port {port} ({kind}) is already in use on {}; stop what uses it or pass {flag}",
                    options.host
                ));
            }
            Err(e) => {
                return Err(format!(
                    "cannot listen on {}:{port} ({kind}): {e}",
                    options.host
                ));
            }
        }
    }
    wanted
        .into_iter()
        .map(|(kind, port, _)| {
            let data_dir = options.data_dir.join(kind.as_str());
            std::fs::create_dir_all(&data_dir)
                .map_err(|e| format!("cannot create {}: {e}", data_dir.display()))?;
            Ok(Spec {
                kind,
                host: options.host.clone(),
                probe_host: probe_host.clone(),
                port,
                data_dir,
                exe: exe.clone(),
            })
        })
        .collect()
}

/// Listen for the page's server, unless `--ui-port 0` turned it off.
fn bind_ui(options: &LabOptions) -> Result<Option<tokio::net::TcpListener>, String> {
    if options.ui_port == 0 {
        return Ok(None);
    }
    let port = options.ui_port;
    let listener = std::net::TcpListener::bind((options.host.as_str(), port)).map_err(|e| {
        if e.kind() == std::io::ErrorKind::AddrInUse {
            format!(
                "port {port} (the lab's page) is already in use on {}; stop what uses it or pass --ui-port (0: no page)",
                options.host
            )
        } else {
            format!("cannot listen on {}:{port} (the lab's page): {e}", options.host)
        }
    })?;
    listener
        .set_nonblocking(true)
        .and_then(|()| tokio::net::TcpListener::from_std(listener))
        .map(Some)
        .map_err(|e| format!("cannot serve the lab's page on port {port}: {e}"))
}

/// Print the URLs once every server answers `/health` with 200.
async fn announce_when_ready(specs: Vec<Spec>, page: Option<(String, u16)>) {
    let mut waits = JoinSet::new();
    for spec in &specs {
        let (host, port) = (spec.probe_host.clone(), spec.port);
        waits.spawn(async move { probe::wait_healthy(&host, port, FIRST_HEALTH_PATIENCE).await });
    }
    while let Some(ready) = waits.join_next().await {
        if !matches!(ready, Ok(Some(_))) {
            tracing::warn!(
                "not every server answered /health within {} s; see their log lines above",
                FIRST_HEALTH_PATIENCE.as_secs()
            );
            return;
        }
    }
    println!("walab lab is ready:");
    for spec in &specs {
        println!(
            "  http://{}:{:<5}  {:<6}  {}",
            spec.probe_host,
            spec.port,
            spec.kind.as_str(),
            what_it_is(spec.kind)
        );
    }
    if let Some((host, port)) = page {
        println!(
            "  http://{host}:{port:<5}  page    the lab's page: all three side by side, in a browser"
        );
    }
    println!(
        "Crash one with: curl -X POST http://{}:{}/admin/crash  (the lab restarts it). Stop with Ctrl-C.",
        specs.first().map_or("127.0.0.1", |s| s.probe_host.as_str()),
        specs.first().map_or(8001, |s| s.port)
    );
}

fn what_it_is(kind: BackendKind) -> &'static str {
    match kind {
        BackendKind::Wal => "write-ahead log: acknowledged writes survive a crash",
        BackendKind::Memory => "memory only (no WAL): a crash loses everything",
        BackendKind::Sled => {
            "sled 0.34: durable once sled flushes (SLED_FLUSH=always: every write)"
        }
    }
}
