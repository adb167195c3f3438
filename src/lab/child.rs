//! One supervised `walab serve` child: start it, wait for it to die, start it again.
//!
//! A child killed by `/admin/crash` comes back at once, because the runbook times the
//! restart. A child that stays up but stops doing its job (its store poisoned by a failed
//! fsync, or hung) is killed and restarted too, as Docker does with an unhealthy container
//! under `restart: always` plus an autoheal: [`UNHEALTHY_PROBES`] bad answers in a row from
//! `/health`, a second apart, or no answer at all for [`SILENT_LIMIT`] once it has been
//! healthy. The lab asks on the server's private health socket, so strangers who hold
//! every public connection cannot make it look dead. `recovering` is not bad: replaying a
//! long log takes as long as it takes. A child that keeps dying within a second of starting (a bad `FSYNC=...`, a
//! corrupt log) is restarted with a growing delay, and each exit is logged, so a broken
//! configuration shows its error instead of spinning the CPU.

use std::os::unix::process::ExitStatusExt;
use std::path::PathBuf;
use std::process::ExitStatus;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::process::{Child, Command};
use tokio::sync::watch;
use walab_store::BackendKind;
use walab_store::etcd::cluster::{self, ClusterSpec};

use crate::client::Client;
use crate::lab::probe;
use crate::sys;

/// A child that lived less than this died "at start-up".
const QUICK_DEATH: Duration = Duration::from_secs(1);
/// The longest delay between restarts of a child that keeps dying at start-up.
const MAX_BACKOFF: Duration = Duration::from_secs(5);
/// How long a child gets to stop after SIGTERM before it is killed.
const STOP_GRACE: Duration = Duration::from_secs(5);
/// The same for an etcd member. Stopped together, a leader waits out a handover to
/// followers that are stopping too (about 7 s); everything it acknowledged is already
/// fsynced in its log, so a SIGKILL after a second loses nothing.
const MEMBER_STOP_GRACE: Duration = Duration::from_secs(1);
/// How often a running child's `/health` is asked.
const HEALTH_EVERY: Duration = Duration::from_secs(1);
/// Bad `/health` answers in a row after which a child is restarted.
pub const UNHEALTHY_PROBES: u32 = 3;
/// How long a child that was healthy may give no answer at all before it is restarted
/// (hung, not busy: the private health socket answers beside any public load).
pub const SILENT_LIMIT: Duration = Duration::from_secs(20);

/// What one child runs.
#[derive(Debug, Clone)]
pub enum Program {
    /// `walab serve` for a backend, with extra environment on top of the lab's.
    Server {
        /// Which backend.
        kind: BackendKind,
        /// The `walab` executable.
        exe: PathBuf,
        /// Extra variables (`ETCD_ENDPOINTS`, ...).
        env: Vec<(String, String)>,
    },
    /// Member `index` of the lab's etcd cluster.
    EtcdMember {
        /// The cluster's layout.
        cluster: Arc<ClusterSpec>,
        /// Which member.
        index: usize,
        /// The etcd executable.
        etcd: PathBuf,
    },
}

/// Starts in a row that died within [`QUICK_DEATH`] after which the lab stops restarting a
/// child and says it cannot start: a broken setting or a damaged log does not fix itself,
/// and a restart every 5 s for ever would hide the reason in a scrolling log.
pub const GIVE_UP_AFTER: u32 = 5;

/// What the lab knows of a child besides its process: the last error line it wrote, and,
/// once the lab has given up on it, why. Shared with the page (`/lab.json`).
#[derive(Debug, Default)]
pub struct Verdict {
    last_error: std::sync::Mutex<Option<String>>,
    cannot_start: std::sync::Mutex<Option<String>>,
}

impl Verdict {
    /// Why the child cannot start, once the lab has given up on it.
    pub fn cannot_start(&self) -> Option<String> {
        self.cannot_start
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    fn last_error(&self) -> Option<String> {
        self.last_error
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    fn saw(&self, line: &str) {
        if line.contains("ERROR") {
            *self.last_error.lock().unwrap_or_else(|e| e.into_inner()) = Some(line.to_owned());
        }
    }

    fn give_up(&self, why: String) {
        *self.cannot_start.lock().unwrap_or_else(|e| e.into_inner()) = Some(why);
    }
}

/// What to run for one child.
#[derive(Debug, Clone)]
pub struct Spec {
    /// What it is: a server or an etcd member.
    pub program: Program,
    /// The address it listens on.
    pub host: String,
    /// The address to probe it at (127.0.0.1 when `host` is a wildcard).
    pub probe_host: String,
    /// Its (client) port.
    pub port: u16,
    /// Its data directory.
    pub data_dir: PathBuf,
    /// Where a server answers the lab's `/health` outside its connection cap
    /// (`WALAB_HEALTH_SOCKET`); `None` for an etcd member, asked on its client port.
    pub health_socket: Option<PathBuf>,
    /// Its last error line, and whether the lab gave up on it.
    pub verdict: Arc<Verdict>,
}

impl Spec {
    /// The backend a server child serves; `None` for an etcd member.
    pub fn kind(&self) -> Option<BackendKind> {
        match &self.program {
            Program::Server { kind, .. } => Some(*kind),
            Program::EtcdMember { .. } => None,
        }
    }

    /// `wal`, `etcd-2`.
    pub fn name(&self) -> String {
        match &self.program {
            Program::Server { kind, .. } => kind.to_string(),
            Program::EtcdMember { cluster, index, .. } => cluster.members[*index].name.clone(),
        }
    }

    /// How the lab's log names this child: `wal on :8001`.
    pub fn label(&self) -> String {
        format!("{} on :{}", self.name(), self.port)
    }
}

/// Keep `spec`'s server running until `stop` turns true, then stop it.
pub async fn supervise(spec: Spec, mut stop: watch::Receiver<bool>) {
    let label = spec.label();
    let mut restarts: u64 = 0;
    let mut quick_deaths: u32 = 0;
    loop {
        if *stop.borrow() {
            return;
        }
        let started = Instant::now();
        let outcome = match spawn(&spec, restarts) {
            Ok(mut child) => {
                if restarts > 0 {
                    tokio::spawn(report_back(spec.clone(), restarts));
                }
                let exited = tokio::select! {
                    status = child.wait() => Some(status.map_or_else(
                        |e| format!("could not be waited for: {e}"),
                        describe,
                    )),
                    why = stays_unhealthy(&spec), if spec.kind().is_some() => {
                        tracing::warn!("{label} is unhealthy ({why}); killing it to restart it");
                        let _ = child.start_kill();
                        Some(match child.wait().await {
                            Ok(status) => format!("was unhealthy and {}", describe(status)),
                            Err(e) => format!("was unhealthy and could not be waited for: {e}"),
                        })
                    }
                    () = stopped(&mut stop) => None,
                };
                if exited.is_none() {
                    let grace = match spec.program {
                        Program::Server { .. } => STOP_GRACE,
                        Program::EtcdMember { .. } => MEMBER_STOP_GRACE,
                    };
                    terminate(&mut child, &label, grace).await;
                }
                // A pid file outlives its process only as a stale pointer to a reused pid.
                if let Program::EtcdMember { cluster, index, .. } = &spec.program {
                    cluster::remove_pid_file(&cluster.run_dir, &cluster.members[*index].name);
                }
                match exited {
                    Some(outcome) => outcome,
                    None => return,
                }
            }
            Err(e) => format!("could not be started: {e}"),
        };
        if *stop.borrow() {
            return;
        }
        restarts += 1;
        let delay = if started.elapsed() < QUICK_DEATH {
            quick_deaths += 1;
            backoff(quick_deaths)
        } else {
            quick_deaths = 0;
            Duration::ZERO
        };
        if quick_deaths >= GIVE_UP_AFTER {
            let reason = spec
                .verdict
                .last_error()
                .map_or_else(|| outcome.clone(), |line| strip_log_prefix(&line));
            tracing::error!(
                "{label} cannot start: {reason} ({GIVE_UP_AFTER} starts in a row died within {} ms); the lab no longer restarts it: fix the cause (the line above), then start the lab again",
                QUICK_DEATH.as_millis()
            );
            spec.verdict.give_up(reason);
            stopped(&mut stop).await;
            return;
        }
        if delay.is_zero() {
            tracing::warn!("{label} {outcome}; restart #{restarts}");
        } else {
            tracing::warn!(
                "{label} {outcome} within {} ms of starting; restart #{restarts} in {} ms",
                QUICK_DEATH.as_millis(),
                delay.as_millis()
            );
            tokio::select! {
                () = tokio::time::sleep(delay) => {}
                () = stopped(&mut stop) => return,
            }
        }
    }
}

/// A child's log line without its tag, time and level: what it said.
fn strip_log_prefix(line: &str) -> String {
    line.split_once(" ERROR ")
        .map_or(line, |(_, rest)| rest)
        .trim_start_matches(|c: char| c.is_alphanumeric() || c == ':' || c == '_')
        .trim()
        .to_owned()
}

/// Resolves once the lab is stopping. The borrow guard `wait_for` hands back is dropped
/// here, so it is never held across another `.await`.
async fn stopped(stop: &mut watch::Receiver<bool>) {
    let _ = stop.wait_for(|s| *s).await;
}

/// The first death at start-up restarts at once (it may be a crash request that came
/// quickly); after that, 250 ms doubling up to [`MAX_BACKOFF`].
fn backoff(quick_deaths: u32) -> Duration {
    match quick_deaths {
        0 | 1 => Duration::ZERO,
        n => Duration::from_millis(250)
            .saturating_mul(1 << (n - 2).min(8))
            .min(MAX_BACKOFF),
    }
}

/// Resolves, with the last bad answer, once a child answers `/health` badly
/// [`UNHEALTHY_PROBES`] times in a row, or has not answered at all for [`SILENT_LIMIT`];
/// never for a child that stays well. Busy is not dead: a slow answer, or none for a while,
/// is what a store under a heavy load gives, and killing it would lose a memory store's
/// data to whoever made it busy. A child that does not answer at all counts only once it
/// has answered "ok" before: until then it may still be starting.
async fn stays_unhealthy(spec: &Spec) -> String {
    let client = probe::health_client(
        spec.health_socket.as_deref(),
        &spec.probe_host,
        spec.port,
        probe::HEALTH_TIMEOUT,
    );
    let mut was_healthy = false;
    let mut bad = 0u32;
    let mut silent_since: Option<Instant> = None;
    loop {
        tokio::time::sleep(HEALTH_EVERY).await;
        match health(&client).await {
            Health::Ok => {
                was_healthy = true;
                bad = 0;
                silent_since = None;
            }
            Health::Recovering => {
                bad = 0;
                silent_since = None;
            }
            Health::Unreachable(_) if !was_healthy => {}
            Health::Unreachable(why) => {
                let since = *silent_since.get_or_insert_with(Instant::now);
                if since.elapsed() >= SILENT_LIMIT {
                    return format!("{why}, and no answer for {} s", SILENT_LIMIT.as_secs());
                }
            }
            Health::Bad(why) => {
                silent_since = None;
                bad += 1;
                if bad >= UNHEALTHY_PROBES {
                    return why;
                }
            }
        }
    }
}

/// What one `/health` said.
enum Health {
    Ok,
    Recovering,
    /// An answer other than "ok" or "recovering" (a poisoned store).
    Bad(String),
    /// No answer in time.
    Unreachable(String),
}

async fn health(client: &Client) -> Health {
    let answer = probe::health(client).await;
    match answer {
        Ok(answer) if answer.status == 200 => Health::Ok,
        Ok(answer) => {
            let body: serde_json::Value = serde_json::from_slice(&answer.body).unwrap_or_default();
            let status = body["status"].as_str().unwrap_or("");
            if status == "recovering" {
                Health::Recovering
            } else {
                let detail = body["detail"].as_str().unwrap_or(status);
                Health::Bad(format!("/health answered {}: {detail}", answer.status))
            }
        }
        Err(e) => Health::Unreachable(format!("/health: {e}")),
    }
}

/// Log how long a restarted child took to answer `/health` again.
async fn report_back(spec: Spec, restart: u64) {
    if let Some(took) = probe::wait_healthy(&spec.probe_host, spec.port, MAX_BACKOFF * 6).await {
        tracing::info!(
            "{} healthy again {} ms after restart #{restart}",
            spec.label(),
            took.as_millis()
        );
    }
}

/// Start `spec`'s program. A server inherits the lab's environment (FSYNC,
/// CHECKPOINT_THRESHOLD, RUST_LOG, ...) with the per-backend variables set on top; an etcd
/// member gets its command line from the cluster's layout, and its pid goes to the pid file
/// the etcd backend's crash modes read.
#[allow(unsafe_code)]
fn spawn(spec: &Spec, restarts: u64) -> std::io::Result<Child> {
    let mut cmd = match &spec.program {
        Program::Server { kind, exe, env } => {
            let mut cmd = Command::new(exe);
            cmd.arg("serve")
                .env("KV_BACKEND", kind.as_str())
                .env("HOST", &spec.host)
                .env("PORT", spec.port.to_string())
                .env("DATA_DIR", &spec.data_dir)
                .env("WALAB_RESTARTS", restarts.to_string())
                .envs(
                    spec.health_socket
                        .iter()
                        .map(|p| ("WALAB_HEALTH_SOCKET", p)),
                )
                .envs(env.iter().map(|(k, v)| (k, v)));
            cmd
        }
        Program::EtcdMember {
            cluster,
            index,
            etcd,
        } => Command::from(cluster.command(etcd, *index)?),
    };
    // Its own process group: a Ctrl-C at the terminal reaches only the lab, which then
    // stops the children itself, so no child dies early and gets restarted mid-shutdown.
    cmd.process_group(0).kill_on_drop(true);
    // A server's log passes through the lab, which keeps its last error line: the reason
    // to give if the server cannot start.
    if matches!(spec.program, Program::Server { .. }) {
        cmd.stderr(std::process::Stdio::piped());
    }
    #[cfg(target_os = "linux")]
    {
        let parent = sys::own_pid();
        // SAFETY: the closure runs between fork and exec and only makes async-signal-safe
        // calls (prctl, getppid); it allocates nothing on success.
        unsafe {
            cmd.pre_exec(move || sys::die_with_parent(parent));
        }
    }
    let mut child = cmd.spawn()?;
    if let Some(stderr) = child.stderr.take() {
        let verdict = spec.verdict.clone();
        tokio::spawn(async move {
            use tokio::io::AsyncBufReadExt;
            let mut lines = tokio::io::BufReader::new(stderr).lines();
            while let Ok(Some(line)) = lines.next_line().await {
                eprintln!("{line}");
                verdict.saw(&line);
            }
        });
    }
    if let (Program::EtcdMember { cluster, index, .. }, Some(pid)) = (&spec.program, child.id()) {
        cluster::write_pid_file(&cluster.run_dir, &cluster.members[*index].name, pid)?;
    }
    Ok(child)
}

/// SIGTERM, wait up to `grace`, then SIGKILL.
async fn terminate(child: &mut Child, label: &str, grace: Duration) {
    if let Some(pid) = child.id()
        && let Err(e) = sys::send_signal(pid, libc::SIGTERM)
    {
        tracing::warn!("{label}: cannot send SIGTERM: {e}");
    }
    match tokio::time::timeout(grace, child.wait()).await {
        Ok(Ok(status)) => tracing::info!("{label} stopped ({})", describe(status)),
        Ok(Err(e)) => tracing::warn!("{label}: cannot wait for it: {e}"),
        Err(_) => {
            tracing::warn!(
                "{label} did not stop within {} ms; killing it",
                grace.as_millis()
            );
            if let Err(e) = child.kill().await {
                tracing::warn!("{label}: cannot kill it: {e}");
            }
        }
    }
}

/// `exited with status 1`, `killed by signal 9 (SIGKILL)`.
pub fn describe(status: ExitStatus) -> String {
    match (status.code(), status.signal()) {
        (Some(code), _) => format!("exited with status {code}"),
        (None, Some(sig)) => {
            let name = match sig {
                libc::SIGKILL => ", SIGKILL",
                libc::SIGTERM => ", SIGTERM",
                libc::SIGINT => ", SIGINT",
                libc::SIGABRT => ", SIGABRT",
                libc::SIGSEGV => ", SIGSEGV",
                _ => "",
            };
            format!("exited (killed by signal {sig}{name})")
        }
        (None, None) => "exited".to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_starts_at_zero_doubles_and_caps() {
        assert_eq!(backoff(1), Duration::ZERO);
        assert_eq!(backoff(2), Duration::from_millis(250));
        assert_eq!(backoff(3), Duration::from_millis(500));
        assert_eq!(backoff(6), Duration::from_secs(4));
        assert_eq!(backoff(7), MAX_BACKOFF);
        assert_eq!(backoff(100), MAX_BACKOFF);
    }

    #[test]
    fn exit_statuses_read_well() {
        assert_eq!(
            describe(ExitStatus::from_raw(9)),
            "exited (killed by signal 9, SIGKILL)"
        );
        assert_eq!(
            describe(ExitStatus::from_raw(1 << 8)),
            "exited with status 1"
        );
    }
}
