//! `walab torture`: crash a real `walab serve` over and over under concurrent writers, and
//! count, after every restart, the acknowledged writes that did not survive.
//!
//! Each cycle starts the server (its data directory kept from the last cycle), waits until
//! it is healthy, checks what it holds against the model of everything acknowledged so far
//! (see [`model`]), then lets K writers hammer a small set of colliding keys with SET,
//! DELETE and the occasional CLEAR while checkpoints run often, and kills the server at a
//! random moment: SIGKILL from outside, or the WAL's simulated power loss through
//! `POST /admin/crash?mode=power-loss`. One line per cycle, a summary row at the end; the
//! exit status is non-zero when the backend lost or invented data it promised to keep.
//!
//! With `--backend etcd` it first starts a three-member etcd cluster of its own, and can
//! crash members instead of the server: the leader, a follower, or all three (SIGKILL,
//! restarted at once as `walab lab` does). The server stays up through those; what is
//! measured besides losses is how long writes stall: from the kill to the first
//! acknowledged write.

pub mod model;
pub mod resources;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use model::{Effect, Op, Outcome};
use walab_store::etcd::cluster::{self, ClusterSpec, LocalCluster};
use walab_store::parse::choices;
use walab_store::{BackendKind, CrashMode};

use crate::client::Blocking;
use crate::harness::{Server, TempDir};

/// How the server is crashed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum CrashKind {
    /// SIGKILL from outside: the OS keeps everything the process wrote.
    Kill,
    /// The WAL's simulated power loss: unsynced log bytes are thrown away first.
    PowerLoss,
    /// etcd: SIGKILL the member that leads.
    Leader,
    /// etcd: SIGKILL one member that does not lead.
    Follower,
    /// etcd: SIGKILL every member at once.
    AllMembers,
}

impl CrashKind {
    /// Whether this kills etcd members rather than the server.
    fn kills_members(self) -> bool {
        matches!(
            self,
            CrashKind::Leader | CrashKind::Follower | CrashKind::AllMembers
        )
    }
}

/// The options of `walab torture`.
#[derive(Debug, Clone, clap::Args)]
pub struct TortureOptions {
    /// Which backend to torture.
    #[arg(long, default_value = "wal", value_parser = crate::server::config::backend_parser())]
    pub backend: BackendKind,
    /// The WAL's FSYNC policy.
    #[arg(long, default_value = "always", value_parser = choices(vec!["always", "never", "interval:<ms>"], |v: &str| v.parse::<walab_wal::SyncPolicy>().map(|p| p.to_string())))]
    pub fsync: String,
    /// sled's SLED_FLUSH.
    #[arg(long, default_value = "background", value_parser = choices(vec!["background", "always"], |v: &str| v.parse::<walab_store::sled_backend::SledFlush>().map(|f| f.as_str().to_owned())))]
    pub sled_flush: String,
    /// How to crash the server.
    #[arg(long, value_enum, default_value = "kill")]
    pub crash: CrashKind,
    /// Crash cycles to run.
    #[arg(long, default_value_t = 20)]
    pub cycles: u32,
    /// Concurrent writers.
    #[arg(long, default_value_t = 8)]
    pub writers: usize,
    /// Distinct keys the writers share (few keys: many collisions).
    #[arg(long, default_value_t = 64)]
    pub keys: usize,
    /// Checkpoint every this many records, so kills land inside checkpoints.
    #[arg(long, default_value_t = 25)]
    pub checkpoint_threshold: u64,
    /// Shortest time from the writers starting to the crash, in ms.
    #[arg(long, default_value_t = 50)]
    pub min_ms: u64,
    /// Longest time from the writers starting to the crash, in ms.
    #[arg(long, default_value_t = 400)]
    pub max_ms: u64,
    /// Random seed (cycle timings and operations); default: from the clock.
    #[arg(long)]
    pub seed: Option<u64>,
    /// Percent of requests that are reads (GET of a random key), for a mixed load.
    #[arg(long, default_value_t = 0)]
    pub read_percent: u64,
    /// Keep the server's data here instead of a temporary directory.
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
    /// Another setting for the server, as its variable: `--setting REDB_DURABILITY=eventual`
    /// (repeatable).
    #[arg(long = "setting", value_name = "VAR=VALUE", value_parser = parse_setting)]
    pub settings: Vec<(String, String)>,
}

fn parse_setting(v: &str) -> Result<(String, String), String> {
    match v.split_once('=') {
        Some((var, value)) if !var.trim().is_empty() => {
            Ok((var.trim().to_owned(), value.trim().to_owned()))
        }
        _ => Err(format!("expected VAR=VALUE, got '{v}'")),
    }
}

impl TortureOptions {
    /// A crash this backend cannot have, in words.
    fn check(&self) -> Result<(), String> {
        if self.crash == CrashKind::PowerLoss && !self.backend.can_crash(CrashMode::PowerLoss) {
            return Err(format!(
                "--crash power-loss: the {} backend can crash with {}",
                self.backend,
                self.backend.crash_modes_text()
            ));
        }
        if self.crash.kills_members() && !self.backend.can_crash(CrashMode::Leader) {
            return Err(format!(
                "--crash {:?} kills members of a replicated store; the {} backend can crash with {}",
                self.crash,
                self.backend,
                self.backend.crash_modes_text()
            ));
        }
        Ok(())
    }

    /// The settings passed to the server, as `VAR=VALUE`.
    fn env(&self) -> Vec<(String, String)> {
        let mut env = vec![
            ("FSYNC".to_owned(), self.fsync.clone()),
            ("SLED_FLUSH".to_owned(), self.sled_flush.clone()),
        ];
        env.extend(self.settings.iter().cloned());
        env
    }

    /// The settings passed to the server that are this backend's own (`FSYNC=always`),
    /// or `defaults`.
    fn policy(&self) -> String {
        let own = (self.backend.info().settings)(clap::Command::new("settings"));
        let own: Vec<String> = self
            .env()
            .into_iter()
            .filter(|(var, _)| {
                own.get_arguments()
                    .any(|a| a.get_env().is_some_and(|e| e == var.as_str()))
            })
            .map(|(var, value)| format!("{var}={value}"))
            .collect();
        if own.is_empty() {
            "defaults".into()
        } else {
            own.join(" ")
        }
    }
}

/// A small deterministic random source (xorshift64*), so a seed replays a run's choices.
#[derive(Debug, Clone)]
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        let mut x = self.0.max(1);
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
}

/// Totals over all cycles.
#[derive(Debug, Default, Clone)]
struct Totals {
    cycles: u32,
    acked: u64,
    in_flight: u64,
    failed: u64,
    lost: u64,
    phantom: u64,
    seq_backwards: u64,
    checkpoints_cut_short: u64,
    reads: u64,
    read_errors: u64,
    restart_ms: Vec<u64>,
    /// Member crashes: from the kill to the first acknowledged write.
    stall_ms: Vec<u64>,
    resources: resources::Span,
    /// Whether the server promised to keep every acknowledged write under this crash
    /// (its `durability`, read at the first start).
    promised: bool,
}

/// Start `walab serve` with the torture's settings on a free port.
fn start_server(
    opts: &TortureOptions,
    dir: &std::path::Path,
    log: &std::path::Path,
    etcd: Option<&ClusterSpec>,
) -> std::io::Result<Server> {
    let mut env = opts.env();
    env.push((
        "CHECKPOINT_THRESHOLD".into(),
        opts.checkpoint_threshold.to_string(),
    ));
    env.push(("SEGMENT_BYTES".into(), (256 * 1024).to_string()));
    if let Some(c) = etcd {
        env.push(("ETCD_ENDPOINTS".into(), c.endpoints().join(",")));
        env.push(("ETCD_PID_DIR".into(), c.run_dir.display().to_string()));
    }
    Server::start(opts.backend, dir, &env, log)
}

fn read_all(addr: SocketAddr) -> Result<BTreeMap<String, String>, String> {
    let r = Blocking::new(addr)
        .request("GET", "/kv", None)
        .map_err(|e| format!("GET /kv: {e}"))?;
    let json = r.json();
    let data = json
        .get("data")
        .and_then(|d| d.as_object())
        .ok_or_else(|| format!("GET /kv answered {} without data", r.status))?;
    Ok(data
        .iter()
        .map(|(k, v)| {
            (
                k.clone(),
                v.as_str().map_or_else(|| v.to_string(), str::to_owned),
            )
        })
        .collect())
}

/// One writer's loop until `stop`: returns what it did.
/// What one writer did in a cycle.
#[derive(Debug, Default)]
struct WriterReport {
    ops: Vec<Op>,
    reads: u64,
    /// Reads the running server answered with neither 200 nor 404.
    read_errors: u64,
}

fn writer(
    id: usize,
    addr: SocketAddr,
    (keys, read_percent): (usize, u64),
    seed: u64,
    clock: &AtomicU64,
    stop: &AtomicBool,
) -> WriterReport {
    let mut rng = Rng(seed);
    let client = Blocking::new(addr);
    let mut report = WriterReport::default();
    let mut n = 0u64;
    while !stop.load(Ordering::Relaxed) {
        let roll = rng.below(1000);
        let key = format!("k{}", rng.below(keys as u64));
        n += 1;
        if rng.below(100) < read_percent {
            match client.request("GET", &format!("/kv/{key}"), None) {
                Ok(r) if r.status == 200 || r.status == 404 => report.reads += 1,
                Ok(_) => report.read_errors += 1,
                // The server is gone: a restart, not an error.
                Err(_) => std::thread::sleep(Duration::from_millis(5)),
            }
            continue;
        }
        let (method, path, body, op_key, effect) = if roll < 3 && id == 0 {
            (
                "POST",
                "/admin/clear".to_string(),
                None,
                None,
                Effect::Absent,
            )
        } else if roll < 200 {
            (
                "DELETE",
                format!("/kv/{key}"),
                None,
                Some(key),
                Effect::Absent,
            )
        } else {
            let value = format!("w{id}-{n}-{}", rng.below(1 << 30));
            let body = serde_json::json!({"key": key, "value": value}).to_string();
            (
                "POST",
                "/kv".to_string(),
                Some(body),
                Some(key),
                Effect::Set(value),
            )
        };
        let sent = clock.fetch_add(1, Ordering::SeqCst);
        let reply = client.request(method, &path, body.as_deref());
        let replied = clock.fetch_add(1, Ordering::SeqCst);
        let (outcome, sequence) = match &reply {
            Ok(r) if r.status == 200 => (Outcome::Acked, r.json()["sequence"].as_u64()),
            // The key was absent: no write happened, nothing to model.
            Ok(r) if r.status == 404 && method == "DELETE" => continue,
            Ok(_) => (Outcome::Failed, None),
            Err(_) => (Outcome::InFlight, None),
        };
        report.ops.push(Op {
            key: op_key,
            effect,
            sent,
            replied,
            outcome,
            sequence,
        });
        if reply.is_err() {
            // The server is going or gone; stop hammering until the next cycle.
            std::thread::sleep(Duration::from_millis(5));
        }
    }
    report
}

/// Run the torture; the summary row is printed at the end.
pub fn run(opts: TortureOptions) -> ExitCode {
    match torture(&opts) {
        Ok(t) => {
            print_summary(&opts, &t);
            if t.promised && (t.lost > 0 || t.phantom > 0 || t.seq_backwards > 0) {
                eprintln!(
                    "walab torture: FAILED: the {} backend ({}) promised to keep every acknowledged write",
                    opts.backend,
                    opts.policy()
                );
                ExitCode::FAILURE
            } else if t.phantom > 0 {
                eprintln!("walab torture: FAILED: values nobody wrote appeared");
                ExitCode::FAILURE
            } else {
                ExitCode::SUCCESS
            }
        }
        Err(e) => {
            eprintln!("walab torture: {e}");
            ExitCode::from(2)
        }
    }
}

fn torture(opts: &TortureOptions) -> Result<Totals, String> {
    opts.check()?;
    let temp;
    let dir = match &opts.data_dir {
        Some(d) => d.clone(),
        None => {
            temp = TempDir::new("torture")?;
            temp.path().to_path_buf()
        }
    };
    std::fs::create_dir_all(&dir).map_err(|e| format!("create {}: {e}", dir.display()))?;
    let seed = opts.seed.unwrap_or_else(|| {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(1, |d| d.as_nanos() as u64)
    });
    println!(
        "torture: backend {} ({}), crash {:?}, {} cycles, {} writers, {} keys, checkpoint every {} records, seed {seed}",
        opts.backend,
        opts.policy(),
        opts.crash,
        opts.cycles,
        opts.writers,
        opts.keys,
        opts.checkpoint_threshold
    );
    let log = std::env::temp_dir().join(format!("walab-torture-{}.log", std::process::id()));
    println!("torture: server log in {}", log.display());
    // A backend whose members can be killed runs on a cluster the torture starts.
    let mut etcd = if opts.backend.can_crash(CrashMode::Leader) {
        Some(start_cluster(&dir)?)
    } else {
        None
    };
    let mut rng = Rng(seed);
    let keys: Vec<String> = (0..opts.keys).map(|i| format!("k{i}")).collect();
    let mut totals = Totals::default();
    let mut baseline: BTreeMap<String, String> = BTreeMap::new();
    let mut pending: Vec<Op> = Vec::new();
    let mut max_acked_seq = 0u64;
    let mut running: Option<Server> = None;
    for cycle in 0..=opts.cycles {
        // After a server kill, a new server; after a member kill, the same one.
        let (mut server, restart) = match running.take() {
            Some(server) => (server, Duration::ZERO),
            None => {
                let spec = etcd.as_ref().map(LocalCluster::spec);
                let mut server = start_server(opts, &dir, &log, spec)
                    .map_err(|e| format!("start walab serve: {e}"))?;
                let took = server.wait_healthy(Duration::from_secs(30))?;
                (server, took)
            }
        };
        let actual = read_all(server.addr)?;
        let check = model::check_cycle(&keys, &baseline, &pending, &actual);
        for finding in &check.findings {
            eprintln!("cycle {cycle:>4}: {finding}");
        }
        let st = server.stats();
        if cycle == 0 {
            // The server's own promise: the torture holds every backend to what it says.
            totals.promised = server.promises_no_loss(opts.crash == CrashKind::PowerLoss);
        }
        if cycle > 0 {
            let acked = pending
                .iter()
                .filter(|o| o.outcome == Outcome::Acked)
                .count() as u64;
            let in_flight = pending
                .iter()
                .filter(|o| o.outcome == Outcome::InFlight)
                .count() as u64;
            let failed = pending
                .iter()
                .filter(|o| o.outcome == Outcome::Failed)
                .count() as u64;
            totals.cycles += 1;
            totals.acked += acked;
            totals.in_flight += in_flight;
            totals.failed += failed;
            totals.lost += check.lost;
            totals.phantom += check.phantom;
            let recovery = &st["last_recovery"];
            let cut_short = recovery["unfinished_checkpoint"] == true;
            totals.checkpoints_cut_short += u64::from(cut_short);
            let after = if opts.crash.kills_members() {
                let stall = totals.stall_ms.last().copied().unwrap_or(0);
                format!("writes stalled {stall} ms")
            } else {
                totals.restart_ms.push(restart.as_millis() as u64);
                format!("healthy {} ms", restart.as_millis())
            };
            println!(
                "cycle {cycle:>4}: {acked:>6} acked, {in_flight:>2} in flight, {failed:>3} failed | lost {:>3}, phantom {} | {} keys | replayed {}, torn {} B, snapshot {}{} | {after}",
                check.lost,
                check.phantom,
                actual.len(),
                st["recovered_entries"],
                recovery["torn_bytes_discarded"].as_u64().unwrap_or(0),
                recovery["snapshot"]["sequence"]
                    .as_u64()
                    .map_or("-".to_string(), |s| s.to_string()),
                if cut_short {
                    ", checkpoint cut short"
                } else {
                    ""
                },
            );
        }
        baseline = actual;
        if cycle == opts.cycles {
            let _ = server.child.kill();
            let _ = server.child.wait();
            break;
        }

        let clock = Arc::new(AtomicU64::new(1));
        let stop = Arc::new(AtomicBool::new(false));
        let handles: Vec<_> = (0..opts.writers)
            .map(|id| {
                let (clock, stop) = (clock.clone(), stop.clone());
                let (addr, load, wseed) = (server.addr, (opts.keys, opts.read_percent), rng.next());
                std::thread::spawn(move || writer(id, addr, load, wseed, &clock, &stop))
            })
            .collect();
        let wait = opts.min_ms + rng.below(opts.max_ms.saturating_sub(opts.min_ms) + 1);
        std::thread::sleep(Duration::from_millis(wait));
        totals
            .resources
            .add(resources::sample(server.child.id(), &dir));
        let mut probes = Vec::new();
        match (opts.crash, etcd.as_mut()) {
            (CrashKind::Kill, _) => {
                let _ = server.child.kill();
                let _ = server.child.wait();
            }
            (CrashKind::PowerLoss, _) => {
                let r = Blocking::new(server.addr).request(
                    "POST",
                    "/admin/crash?mode=power-loss",
                    None,
                );
                if !matches!(&r, Ok(r) if r.status == 200) {
                    let _ = server.child.kill();
                    return Err(format!("crash?mode=power-loss failed: {r:?}"));
                }
                let _ = server.child.wait();
            }
            (kind, Some(cluster)) => {
                let stall =
                    crash_members(cluster, kind, &mut rng, server.addr, &clock, &mut probes)?;
                totals.stall_ms.push(stall.as_millis() as u64);
                running = Some(server);
            }
            (_, None) => return Err("member crashes need --backend etcd".into()),
        }
        stop.store(true, Ordering::Relaxed);
        pending = probes;
        for h in handles {
            let r = h
                .join()
                .map_err(|_| "a writer thread panicked".to_string())?;
            pending.extend(r.ops);
            totals.reads += r.reads;
            totals.read_errors += r.read_errors;
        }
        if let Some(cluster) = &etcd {
            // The next cycle reads everything back: a majority must be up for that.
            cluster.wait_ready(Duration::from_secs(60))?;
        }
        // Sequence numbers must go on increasing: the new cycle's acknowledged writes are
        // compared with the highest acknowledged before the crash.
        let new_max = pending.iter().filter_map(|o| o.sequence).max().unwrap_or(0);
        let backwards = pending
            .iter()
            .filter(|o| o.sequence.is_some_and(|s| s <= max_acked_seq))
            .count() as u64;
        totals.seq_backwards += backwards;
        max_acked_seq = max_acked_seq.max(new_max);
    }
    Ok(totals)
}

/// A three-member etcd cluster of the torture's own, on free ports, data under `dir/etcd`.
fn start_cluster(dir: &std::path::Path) -> Result<LocalCluster, String> {
    let bin = cluster::find_etcd()?;
    let spec = ClusterSpec::on_free_ports(&dir.join("etcd"), 3)
        .map_err(|e| format!("no free port: {e}"))?;
    println!(
        "torture: etcd cluster on {} (logs in {})",
        spec.endpoints().join(", "),
        spec.run_dir.display()
    );
    LocalCluster::start(spec, bin, Duration::from_secs(30))
}

/// Kill members as `kind` says, restart them at once (as the lab does), and write through
/// the server until a write is acknowledged: returns how long writes stalled. The probe
/// writes go into the model like the writers' (`probes`).
fn crash_members(
    cluster: &mut LocalCluster,
    kind: CrashKind,
    rng: &mut Rng,
    addr: SocketAddr,
    clock: &AtomicU64,
    probes: &mut Vec<Op>,
) -> Result<Duration, String> {
    let members = cluster.spec().members.len();
    let leader = cluster
        .leader()
        .ok_or("the etcd cluster has no leader to crash")?;
    let victims: Vec<usize> = match kind {
        CrashKind::Leader => vec![leader],
        CrashKind::Follower => {
            let others: Vec<usize> = (0..members).filter(|i| *i != leader).collect();
            vec![others[rng.below(others.len() as u64) as usize]]
        }
        _ => (0..members).collect(),
    };
    for &i in &victims {
        cluster.kill(i);
    }
    let killed = Instant::now();
    cluster.restart_dead()?;
    let client = Blocking::new(addr);
    let mut n = 0u64;
    loop {
        n += 1;
        let value = format!("probe-{n}-{}", rng.below(1 << 30));
        let body = serde_json::json!({"key": "k0", "value": value}).to_string();
        let sent = clock.fetch_add(1, Ordering::SeqCst);
        let reply = client.request("POST", "/kv", Some(&body));
        let replied = clock.fetch_add(1, Ordering::SeqCst);
        let (outcome, sequence) = match &reply {
            Ok(r) if r.status == 200 => (Outcome::Acked, r.json()["sequence"].as_u64()),
            Ok(_) => (Outcome::Failed, None),
            Err(_) => (Outcome::InFlight, None),
        };
        probes.push(Op {
            key: Some("k0".into()),
            effect: Effect::Set(value),
            sent,
            replied,
            outcome,
            sequence,
        });
        if outcome == Outcome::Acked {
            return Ok(killed.elapsed());
        }
        if killed.elapsed() > Duration::from_secs(60) {
            return Err(format!(
                "no write was acknowledged within 60 s of killing {} etcd member(s)",
                victims.len()
            ));
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

fn print_summary(opts: &TortureOptions, t: &Totals) {
    let mut ms = if opts.crash.kills_members() {
        t.stall_ms.clone()
    } else {
        t.restart_ms.clone()
    };
    ms.sort_unstable();
    let p50 = ms.get(ms.len() / 2).copied().unwrap_or(0);
    let max = ms.last().copied().unwrap_or(0);
    let crash = match opts.crash {
        CrashKind::Kill => "process kill",
        CrashKind::PowerLoss => "power loss",
        CrashKind::Leader => "leader kill",
        CrashKind::Follower => "follower kill",
        CrashKind::AllMembers => "all members killed",
    };
    let (p50, max) = if opts.crash.kills_members() {
        (format!("stall {p50}"), format!("{max}"))
    } else {
        (p50.to_string(), max.to_string())
    };
    println!();
    println!("{}", t.resources.describe());
    if t.reads > 0 || t.read_errors > 0 {
        println!(
            "reads: {} answered, {} errors from a running server",
            t.reads, t.read_errors
        );
    }
    println!(
        "| backend | policy | crash | cycles | writes acknowledged | lost | phantom | in flight | failed | seq backwards | kills inside a checkpoint | restart (or write stall) p50 / max | promise |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|---|---|---|");
    println!(
        "| {} | {} | {crash} | {} | {} | {} | {} | {} | {} | {} | {} | {p50} / {max} ms | {} |",
        opts.backend,
        opts.policy(),
        t.cycles,
        t.acked,
        t.lost,
        t.phantom,
        t.in_flight,
        t.failed,
        t.seq_backwards,
        if opts.backend.info().wal_engine {
            t.checkpoints_cut_short.to_string()
        } else {
            "-".into()
        },
        if t.promised { "no loss" } else { "none" }
    );
}
