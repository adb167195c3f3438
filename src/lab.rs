//! `walab lab`: the runbook's servers side by side, restarted when they die.
//!
//! It plays the part Compose's `restart: always` plays in the container stack: one
//! `walab serve` child per backend it runs (by default wal on 8001, memory on 8002, sled on
//! 8003; `--backends` picks any from the catalog; with etcd, a three-member etcd cluster
//! too), each with its own data directory. It also serves its own web page on 8000 (the servers side by
//! side, see [`ui`]). It checks the ports before starting anything (a clear error beats
//! children dying in a loop), prints the URLs once all are healthy, and on Ctrl-C or
//! SIGTERM stops the children and exits 0. Children die with the lab even if it is killed
//! (SIGKILL on parent death, see [`crate::sys::die_with_parent`]).
//!
//! - [`child`]: supervising one child: spawn, wait, restart, back off, stop.
//! - [`probe`]: asking a child's `/health`, on its private socket when it has one.
//! - [`ui`]: the page and the proxy from `/api/{backend}/...` to the children.

pub mod child;
pub mod probe;
pub mod ui;

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;
use tokio::task::JoinSet;
use walab_store::etcd::cluster::{self, ClusterSpec};
use walab_store::{BackendKind, CrashMode, InLab};

use self::child::{Program, Spec};

/// What `walab lab` was asked to do.
#[derive(Debug, Clone)]
pub struct LabOptions {
    /// Each backend gets `<data_dir>/<backend>`.
    pub data_dir: PathBuf,
    /// The address the servers listen on.
    pub host: String,
    /// Ports other than the catalog's (`--port wal=9001`, or `--wal-port 9001`).
    pub ports: Vec<(BackendKind, u16)>,
    /// The backends to run, in the catalog's order.
    pub backends: Vec<BackendKind>,
    /// The port of the lab's web page (default 8000); 0: no page.
    pub ui_port: u16,
    /// Where the page finds `walab experiment`'s runs (default ./experiments).
    pub experiments: PathBuf,
    /// The connection limits of the page's server (the children read theirs from the same
    /// environment).
    pub limits: crate::server::config::Limits,
}

/// The backends a lab runs: those named (`--backends`), else the catalog's default ones
/// (`InLab::Always`); and those whose flag was given (`--etcd`). In the catalog's order.
pub fn chosen_backends(named: Vec<BackendKind>, flag: Option<&str>) -> Vec<BackendKind> {
    BackendKind::all()
        .filter(|kind| {
            let by_default = named.is_empty() && kind.info().in_lab == InLab::Always;
            let by_flag =
                matches!((kind.info().in_lab, flag), (InLab::WithFlag(f), Some(g)) if f == g);
            by_default || by_flag || named.contains(kind)
        })
        .collect()
}

/// How long to wait for the first "all healthy" before saying so.
const FIRST_HEALTH_PATIENCE: Duration = Duration::from_secs(30);
/// How long the page's server gets to finish open requests when the lab stops.
const UI_STOP_GRACE: Duration = Duration::from_secs(2);

/// Run the lab until Ctrl-C or SIGTERM. Exit code 2 for a setup problem (port in use).
pub async fn run(options: LabOptions) -> ExitCode {
    // Held until the lab exits: one lab per data directory.
    let (specs, _lock) = match prepare(&options) {
        Ok(prepared) => prepared,
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
            .filter_map(|s| {
                Some(ui::Target {
                    kind: s.kind()?,
                    host: s.probe_host.clone(),
                    port: s.port,
                    verdict: s.verdict.clone(),
                })
            })
            .collect();
        let mut stop = stop_rx.clone();
        let bind_host = options.host.clone();
        let limits = options.limits;
        let experiments = options.experiments.clone();
        let server = tokio::spawn(async move {
            let stopping = async move {
                let _ = stop.wait_for(|s| *s).await;
            };
            if let Err(e) =
                ui::serve(listener, &bind_host, limits, targets, experiments, stopping).await
            {
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
    tracing::info!("stopping the servers");
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

/// Check the ports, create the data directories, and describe the children: the etcd
/// members first (when asked for), then one server per backend.
fn prepare(options: &LabOptions) -> Result<(Vec<Spec>, std::fs::File), String> {
    let run_dir = own_run_dir(&options.data_dir)?;
    let lock = lock_lab(&run_dir, &options.data_dir)?;
    let exe = std::env::current_exe()
        .map_err(|e| format!("cannot find the walab executable to start servers with: {e}"))?;
    let probe_host = match options.host.as_str() {
        "0.0.0.0" | "::" | "[::]" => "127.0.0.1".to_owned(),
        host => host.to_owned(),
    };
    let wanted: Vec<(BackendKind, u16, String)> = options
        .backends
        .iter()
        .copied()
        .map(|kind| {
            let port = options
                .ports
                .iter()
                .find(|(k, _)| *k == kind)
                .map_or(kind.info().lab_port, |(_, p)| *p);
            (kind, port, format!("--{kind}-port"))
        })
        .collect();
    if options.ui_port != 0
        && let Some((_, _, flag)) = wanted.iter().find(|(_, port, _)| *port == options.ui_port)
    {
        return Err(format!(
            "--ui-port and {flag} are both {}; give the page a port of its own (--ui-port 0: no page)",
            options.ui_port
        ));
    }
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
    // A backend whose members can be killed runs on a cluster the lab starts beside it.
    let etcd = if wanted
        .iter()
        .any(|(k, _, _)| k.can_crash(CrashMode::Leader))
    {
        let bin = cluster::find_etcd().map_err(|e| format!("--etcd: {e}"))?;
        Some((
            bin,
            Arc::new(ClusterSpec::new(&options.data_dir, &cluster::LAB_PORTS)),
        ))
    } else {
        None
    };
    let mut listeners: Vec<(u16, String)> = wanted
        .iter()
        .map(|(kind, port, flag)| {
            (
                *port,
                format!(
                    "({kind}) is already in use on {}; stop what uses it or pass {flag}",
                    options.host
                ),
            )
        })
        .collect();
    if let Some((_, spec)) = &etcd {
        for m in &spec.members {
            for port in [m.client_port, m.peer_port] {
                listeners.push((port, format!("({}, for the lab's etcd cluster) is already in use; stop what uses it (another lab with --etcd?)", m.name)));
            }
        }
    }
    for (port, in_use) in &listeners {
        // Binding and dropping at once leaves a small race with whoever grabs the port next,
        // but it turns the common case (a lab already running) into one clear line.
        match std::net::TcpListener::bind((options.host.as_str(), *port)) {
            Ok(listener) => drop(listener),
            Err(e) if e.kind() == std::io::ErrorKind::AddrInUse => {
                return Err(format!("port {port} {in_use}"));
            }
            Err(e) => {
                return Err(format!("cannot listen on {}:{port}: {e}", options.host));
            }
        }
    }
    let mut specs = Vec::new();
    let mut server_env = Vec::new();
    if let Some((bin, cluster)) = &etcd {
        std::fs::create_dir_all(&options.data_dir)
            .map_err(|e| format!("cannot create {}: {e}", options.data_dir.display()))?;
        for (index, m) in cluster.members.iter().enumerate() {
            specs.push(Spec {
                program: Program::EtcdMember {
                    cluster: Arc::clone(cluster),
                    index,
                    etcd: bin.clone(),
                },
                host: cluster.host.clone(),
                probe_host: cluster.host.clone(),
                port: m.client_port,
                data_dir: m.data_dir.clone(),
                health_socket: None,
                verdict: Arc::default(),
            });
        }
        server_env.push(("ETCD_ENDPOINTS".to_owned(), cluster.endpoints().join(",")));
        server_env.push((
            "ETCD_PID_DIR".to_owned(),
            cluster.run_dir.display().to_string(),
        ));
    }
    for (kind, port, _) in wanted {
        let data_dir = options.data_dir.join(kind.as_str());
        std::fs::create_dir_all(&data_dir)
            .map_err(|e| format!("cannot create {}: {e}", data_dir.display()))?;
        specs.push(Spec {
            program: Program::Server {
                kind,
                exe: exe.clone(),
                env: server_env.clone(),
            },
            host: options.host.clone(),
            probe_host: probe_host.clone(),
            port,
            data_dir,
            health_socket: Some(run_dir.join(format!("{kind}.sock"))),
            verdict: Arc::default(),
        });
    }
    Ok((specs, lock))
}

/// Take `<data dir>/.run/lab.lock`, so a second lab on the same data directory (on other
/// ports) refuses at start instead of restarting children that cannot open their stores.
/// The kernel drops the lock with the process, however it ends.
fn lock_lab(
    run_dir: &std::path::Path,
    data_dir: &std::path::Path,
) -> Result<std::fs::File, String> {
    use std::io::{Read, Write};
    let path = run_dir.join("lab.lock");
    // Not truncated on open: until the lock is ours, the pid in it is the holder's.
    let mut file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&path)
        .map_err(|e| format!("cannot open {}: {e}", path.display()))?;
    match file.try_lock() {
        Ok(()) => {}
        Err(std::fs::TryLockError::WouldBlock) => {
            let mut text = String::new();
            let _ = file.read_to_string(&mut text);
            let holder = text
                .trim()
                .parse::<u32>()
                .map_or(String::new(), |pid| format!(" (pid {pid})"));
            return Err(format!(
                "the data directory {} is in use by another walab lab{holder}; stop it first (Ctrl-C in its terminal) or pass --data-dir",
                data_dir.display()
            ));
        }
        Err(std::fs::TryLockError::Error(e)) => {
            return Err(format!("cannot lock {}: {e}", path.display()));
        }
    }
    file.set_len(0)
        .and_then(|()| file.write_all(format!("{}\n", std::process::id()).as_bytes()))
        .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
    Ok(file)
}

/// `<data dir>/.run`: the lab's own sockets, readable by this user only. A link or a file
/// there is refused rather than followed.
fn own_run_dir(data_dir: &std::path::Path) -> Result<PathBuf, String> {
    use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
    let dir = data_dir.join(".run");
    let made = std::fs::create_dir_all(data_dir).and_then(|()| {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&dir)
    });
    let meta = made
        .and_then(|()| std::fs::symlink_metadata(&dir))
        .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    if !meta.is_dir() {
        return Err(format!(
            "{} is not a directory (a link?); remove it and start again",
            dir.display()
        ));
    }
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700))
        .map_err(|e| format!("cannot make {} private: {e}", dir.display()))?;
    Ok(dir)
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
    let servers: Vec<(&Spec, BackendKind)> =
        specs.iter().filter_map(|s| Some((s, s.kind()?))).collect();
    for (spec, kind) in &servers {
        println!(
            "  http://{}:{:<5}  {:<6}  {}",
            spec.probe_host,
            spec.port,
            kind.as_str(),
            kind.info().title
        );
    }
    let members: Vec<String> = specs
        .iter()
        .filter(|s| s.kind().is_none())
        .map(|s| format!("{}:{}", s.name(), s.port))
        .collect();
    if !members.is_empty() {
        println!(
            "  etcd members: {} (data and logs in {})",
            members.join(", "),
            specs[0]
                .data_dir
                .parent()
                .map_or_else(String::new, |d| d.display().to_string())
        );
    }
    if let Some((host, port)) = page {
        println!(
            "  http://{host}:{port:<5}  page    the lab's page: the servers side by side, in a browser"
        );
    }
    let (host, port) = servers.first().map_or(("127.0.0.1", 8001), |(s, _)| {
        (s.probe_host.as_str(), s.port)
    });
    println!(
        "Crash one with: curl -X POST http://{host}:{port}/admin/crash  (the lab restarts it). Stop with Ctrl-C."
    );
}
