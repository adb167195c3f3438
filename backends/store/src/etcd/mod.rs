//! etcd as a backend: the lab's keys in a replicated store, beside its one-machine WAL.
//!
//! etcd keeps a Raft log per member and acknowledges a put once a majority of members have
//! it fsynced in their logs, so what it promises is about members, not one disk: a write
//! survives the loss of any minority. Every key the lab writes lives under a prefix
//! (`ETCD_PREFIX`, `walab/`), so listing and clearing touch the lab's keys only, and the
//! backend's `sequence` is etcd's revision.
//!
//! - [`gateway`]: the v3 calls, typed, over etcd's JSON gateway.
//! - [`http`]: the failover over the cluster's endpoints under it, on the lab's one HTTP
//!   client, and the runtime the calls run on.
//! - [`cluster`]: a three-member cluster on this machine, for `walab lab --etcd`, the
//!   tests and torture.

pub mod cluster;
pub mod gateway;
pub mod http;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::Args;
use serde::Serialize;

use self::gateway::Gateway;
use crate::StoreError;
use crate::backend::{
    Calls, CrashMode, Durability, KvBackend, ReadPath, Value, WalEntry, WalListing, Write,
    WriteAck, WriteDone, WritePath,
};
use crate::parse::text;
use crate::row::{BackendConfig, BackendInfo, BackendKind, InLab, Supports};
use crate::stats::{CheckpointOutcome, CrashReport, StoreStats, details};

/// etcd's row in the catalog.
pub static ROW: BackendInfo = BackendInfo {
    name: "etcd",
    lab_port: 8004,
    title: "etcd, 3 members: acknowledged writes survive the loss of any one",
    supports: Supports {
        log: true,
        checkpoint: true,
        crash_modes: &[CrashMode::Process, CrashMode::Leader, CrashMode::AllMembers],
    },
    in_lab: InLab::WithFlag("etcd"),
    wal_engine: false,
    settings: EtcdArgs::augment_args,
    open,
};

/// etcd's settings, as `walab serve` reads them.
#[derive(Debug, Clone, Args)]
#[command(next_help_heading = "etcd (KV_BACKEND=etcd)")]
pub struct EtcdArgs {
    /// The etcd members' client URLs, comma-separated.
    #[arg(long, env, default_value = "http://127.0.0.1:2379", value_parser = parse_endpoints)]
    etcd_endpoints: Endpoints,
    /// Every key the server writes to etcd starts with this (a namespace: `walab` means
    /// `walab/`).
    #[arg(long, env, default_value = "walab/", value_parser = text)]
    etcd_prefix: String,
    /// Where the etcd members' pid files are, so /admin/crash can kill members (set by
    /// `walab lab --etcd`).
    #[arg(long, env, value_parser = text)]
    etcd_pid_dir: Option<String>,
}

/// `ETCD_ENDPOINTS`, parsed.
#[derive(Debug, Clone)]
struct Endpoints(Vec<String>);

/// Comma-separated `http://host:port` client URLs of etcd members.
fn parse_endpoints(v: &str) -> Result<Endpoints, String> {
    let endpoints: Vec<String> = v
        .split(',')
        .map(str::trim)
        .filter(|e| !e.is_empty())
        .map(str::to_owned)
        .collect();
    match endpoints.iter().find(|e| !e.starts_with("http://")) {
        Some(bad) => Err(format!(
            "expected comma-separated http://host:port URLs of etcd members, got '{bad}'"
        )),
        None if endpoints.is_empty() => Err(format!(
            "expected comma-separated http://host:port URLs of etcd members, got '{v}'"
        )),
        None => Ok(Endpoints(endpoints)),
    }
}

impl From<EtcdArgs> for EtcdSettings {
    fn from(a: EtcdArgs) -> EtcdSettings {
        EtcdSettings {
            endpoints: a.etcd_endpoints.0,
            prefix: a.etcd_prefix,
            pid_dir: a.etcd_pid_dir.filter(|d| !d.is_empty()).map(PathBuf::from),
        }
    }
}

/// How far back `/admin/wal` looks in etcd's history, in revisions.
const HISTORY_WINDOW: u64 = 10_000;
/// How long one call to etcd may take: longer than an election (1 s by default), shorter
/// than the server's request timeout.
const CALL_TIMEOUT: Duration = Duration::from_secs(7);
/// How long a member's own status may take before it counts as unhealthy.
const STATUS_TIMEOUT: Duration = Duration::from_millis(700);
/// How long opening waits for the cluster to answer (it may be starting beside the server).
const OPEN_PATIENCE: Duration = Duration::from_secs(30);

/// Where the cluster is and which keys are the lab's.
#[derive(Debug, Clone)]
pub struct EtcdSettings {
    /// `ETCD_ENDPOINTS`: the members' client URLs.
    pub endpoints: Vec<String>,
    /// `ETCD_PREFIX`: every key the lab writes starts with this.
    pub prefix: String,
    /// `ETCD_PID_DIR`: where the members' pid files are (set by `walab lab --etcd`); lets
    /// `/admin/crash?mode=leader|all-members` kill members.
    pub pid_dir: Option<PathBuf>,
}

impl Default for EtcdSettings {
    fn default() -> Self {
        EtcdSettings {
            endpoints: vec!["http://127.0.0.1:2379".into()],
            prefix: "walab/".into(),
            pid_dir: None,
        }
    }
}

/// The catalog's `open`: connect, and wait for the cluster to answer.
fn open(config: &BackendConfig) -> Result<Arc<dyn KvBackend>, StoreError> {
    let settings: EtcdArgs = config.settings.get()?;
    Ok(Arc::new(EtcdBackend::connect(
        settings.into(),
        OPEN_PATIENCE,
    )?))
}

/// The cluster as `/admin/stats` shows it.
#[derive(Debug, Clone, Default, Serialize)]
pub struct EtcdStats {
    /// `ETCD_ENDPOINTS`.
    pub endpoints: Vec<String>,
    /// `ETCD_PREFIX`.
    pub prefix: String,
    /// The leader's name, when there is one.
    pub leader: Option<String>,
    /// The leader's Raft term (the highest any member reports without one).
    pub raft_term: u64,
    /// The leader's last Raft log index.
    pub raft_index: u64,
    /// The store's revision.
    pub revision: u64,
    /// etcd's version.
    pub version: String,
    /// Every member.
    pub members: Vec<MemberStats>,
    /// Why the cluster could not be described, when it could not.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// One member.
#[derive(Debug, Clone, Default, Serialize)]
pub struct MemberStats {
    /// `etcd-1`.
    pub name: String,
    /// Its id, as etcd writes it (hex).
    pub id: String,
    /// Where clients reach it.
    pub client_url: String,
    /// It answered its status in time and knows a leader.
    pub healthy: bool,
    /// It leads.
    pub is_leader: bool,
    /// Its Raft term.
    pub raft_term: Option<u64>,
    /// Its last Raft log index.
    pub raft_index: Option<u64>,
    /// Its database file's size.
    pub db_size_bytes: Option<u64>,
    /// Why it is not healthy.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// The lab's keys in an etcd cluster.
#[derive(Debug)]
pub struct EtcdBackend {
    /// Shared with the writes queued on the etcd runtime.
    gateway: Arc<Gateway>,
    settings: EtcdSettings,
    /// The lab's keys.
    keys: Arc<Keys>,
    /// Members when the backend opened (what a majority is).
    members: usize,
}

impl EtcdBackend {
    /// Connect to the cluster, waiting up to `patience` for a member to answer.
    pub fn connect(settings: EtcdSettings, patience: Duration) -> Result<Self, StoreError> {
        let mut settings = settings;
        settings.prefix = namespace(&settings.prefix)?;
        let gateway = Gateway::new(&settings.endpoints, CALL_TIMEOUT)?;
        let started = Instant::now();
        let members = loop {
            match gateway.wait(gateway.members()) {
                Ok(members) => break members.len(),
                Err(e) if started.elapsed() >= patience => {
                    return Err(StoreError::Storage(format!(
                        "no etcd member answered within {} s at {}: {e}",
                        patience.as_secs(),
                        settings.endpoints.join(", ")
                    )));
                }
                Err(_) => std::thread::sleep(Duration::from_millis(200)),
            }
        };
        let prefix = settings.prefix.as_bytes().to_vec();
        Ok(EtcdBackend {
            keys: Arc::new(Keys {
                prefix_end: prefix_end(&prefix),
                prefix,
            }),
            gateway: Arc::new(gateway),
            settings,
            members,
        })
    }

    /// Run a gateway call and wait for it (see [`Gateway::wait`]).
    fn wait<F: std::future::Future>(&self, call: F) -> F::Output {
        self.gateway.wait(call)
    }

    /// The member that leads now.
    fn leader(&self) -> Result<gateway::Member, StoreError> {
        self.wait(self.gateway.leader())?.ok_or_else(|| {
            StoreError::Storage(
                "the etcd cluster has no leader right now (an election is running); try again in a second".into(),
            )
        })
    }

    /// The cluster as `/admin/stats` shows it: members, leader, term, index.
    pub fn describe(&self) -> EtcdStats {
        let mut stats = EtcdStats {
            endpoints: self.gateway.endpoints(),
            prefix: self.settings.prefix.clone(),
            ..EtcdStats::default()
        };
        let members = match self.wait(self.gateway.members()) {
            Ok(members) => members,
            Err(e) => {
                stats.error = Some(e.to_string());
                return stats;
            }
        };
        for m in members {
            let url = m.client_urls.first().cloned().unwrap_or_default();
            let mut member = MemberStats {
                name: m.name.clone(),
                id: format!("{:x}", m.id),
                client_url: url.clone(),
                ..MemberStats::default()
            };
            match self.wait(self.gateway.status_of(&url, STATUS_TIMEOUT)) {
                Ok(s) => {
                    member.healthy = s.leader != 0;
                    member.is_leader = s.leader == m.id;
                    member.raft_term = Some(s.raft_term);
                    member.raft_index = Some(s.raft_index);
                    member.db_size_bytes = Some(s.db_size);
                    if !member.healthy {
                        member.error = Some("it knows no leader".into());
                    }
                    stats.raft_term = stats.raft_term.max(s.raft_term);
                    stats.revision = stats.revision.max(s.header.revision);
                    if stats.version.is_empty() {
                        stats.version = s.version;
                    }
                    if member.is_leader {
                        stats.leader = Some(m.name);
                        stats.raft_index = s.raft_index;
                    }
                }
                Err(e) => member.error = Some(e.to_string()),
            }
            stats.members.push(member);
        }
        stats
    }

    /// Kill `members` (by their pid files), steering the next requests to the others: a
    /// killed member comes back at once under the lab, but takes seconds to answer writes.
    fn kill_members(&self, members: &[gateway::Member]) -> Result<Vec<String>, StoreError> {
        let Some(dir) = &self.settings.pid_dir else {
            return Err(StoreError::Unsupported(
                "this server cannot kill etcd members: it knows their pids only when walab lab --etcd runs them (ETCD_PID_DIR). Under Compose: docker compose kill etcd-1 (or etcd-2, etcd-3)".into(),
            ));
        };
        let mut killed = Vec::new();
        let mut failed = Vec::new();
        for m in members {
            for url in &m.client_urls {
                self.gateway.avoid(url);
            }
            match cluster::kill_member(dir, &m.name) {
                Ok(_) => killed.push(m.name.clone()),
                Err(e) => failed.push(e),
            }
        }
        if killed.is_empty() {
            return Err(StoreError::Storage(failed.join("; ")));
        }
        Ok(killed)
    }
}

/// `ETCD_PREFIX` as a namespace: it ends in `/`, so the lab's range cannot reach another
/// application's keys that merely start with the same letters (`walab` would otherwise list
/// and clear `walab-prod/config` and `walabot/x`). Empty is refused: the range would be
/// every key in the cluster.
fn namespace(prefix: &str) -> Result<String, StoreError> {
    if prefix.is_empty() {
        return Err(StoreError::Invalid(
            "ETCD_PREFIX must not be empty: clear would delete every key in the cluster".into(),
        ));
    }
    Ok(if prefix.ends_with('/') {
        prefix.to_owned()
    } else {
        format!("{prefix}/")
    })
}

/// The first key after every key that starts with `prefix` (etcd's `--prefix` range end).
fn prefix_end(prefix: &[u8]) -> Vec<u8> {
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if last < 0xff {
            end.push(last + 1);
            return end;
        }
    }
    // A prefix of only 0xff bytes: every key from it on ("\0" means "to the end").
    vec![0]
}

/// Where the lab's keys are in etcd: under the prefix, so a range over the prefix reaches
/// them and nothing else.
#[derive(Debug)]
struct Keys {
    prefix: Vec<u8>,
    /// The first key after every key with the prefix.
    prefix_end: Vec<u8>,
}

impl Keys {
    fn full_key(&self, key: &str) -> Vec<u8> {
        [self.prefix.as_slice(), key.as_bytes()].concat()
    }

    fn lab_key(&self, key: &[u8]) -> String {
        String::from_utf8_lossy(key.strip_prefix(self.prefix.as_slice()).unwrap_or(key))
            .into_owned()
    }
}

/// One write, as `submit` queues it and `put`, `delete` and `clear` wait for it: its
/// acknowledgement, or `None` for a delete that found nothing to delete.
async fn apply(
    gateway: &Gateway,
    keys: &Keys,
    write: Write,
) -> Result<Option<WriteAck>, StoreError> {
    match write {
        Write::Put { key, value } => {
            let answer = gateway.put(&keys.full_key(&key), &value).await?;
            Ok(Some(ack(answer.header.revision)))
        }
        Write::Delete { key } => {
            let answer = gateway.delete(&keys.full_key(&key), None).await?;
            Ok((answer.deleted > 0).then(|| ack(answer.header.revision)))
        }
        Write::Clear => {
            // One DeleteRange is one Raft proposal: every key goes, or none does.
            let answer = gateway.delete(&keys.prefix, Some(&keys.prefix_end)).await?;
            // Deleting nothing makes no revision: the header's is the last write's.
            Ok(Some(WriteAck {
                sequence: (answer.deleted > 0).then_some(answer.header.revision),
                timing: None,
            }))
        }
    }
}

fn ack(revision: u64) -> WriteAck {
    WriteAck {
        sequence: Some(revision),
        timing: None,
    }
}

impl KvBackend for EtcdBackend {
    fn durability(&self) -> Durability {
        let n = self.members;
        let majority = n / 2 + 1;
        let minority = n - majority;
        Durability {
            survives_process_crash: true,
            survives_power_loss: true,
            summary: format!(
                "a write is acknowledged once etcd has it fsynced in the Raft logs of a majority of its {n} members ({majority} of {n}): it survives the loss of any {minority} member{}, and a crash of this server loses nothing (the data is in etcd)",
                if minority == 1 { "" } else { "s" }
            ),
        }
    }

    fn get(&self, key: &str) -> Result<Option<Value>, StoreError> {
        let answer = self.wait(self.gateway.range(&self.keys.full_key(key), None, false))?;
        Ok(answer
            .kvs
            .into_iter()
            .next()
            .map(|kv| Value::from(kv.value)))
    }

    fn put(&self, key: &str, value: &[u8]) -> Result<WriteAck, StoreError> {
        let write = Write::Put {
            key: key.to_owned(),
            value: Value::from(value),
        };
        let ack = self.wait(apply(&self.gateway, &self.keys, write))?;
        Ok(ack.unwrap_or_default())
    }

    fn delete(&self, key: &str) -> Result<Option<WriteAck>, StoreError> {
        let write = Write::Delete {
            key: key.to_owned(),
        };
        self.wait(apply(&self.gateway, &self.keys, write))
    }

    fn list(&self) -> Result<Vec<(String, Value)>, StoreError> {
        let keys = &self.keys;
        let answer = self.wait(
            self.gateway
                .range(&keys.prefix, Some(&keys.prefix_end), false),
        )?;
        Ok(answer
            .kvs
            .into_iter()
            .map(|kv| (keys.lab_key(&kv.key), Value::from(kv.value)))
            .collect())
    }

    fn len(&self) -> Result<usize, StoreError> {
        let keys = &self.keys;
        let answer = self.wait(
            self.gateway
                .range(&keys.prefix, Some(&keys.prefix_end), true),
        )?;
        Ok(usize::try_from(answer.count).unwrap_or(usize::MAX))
    }

    fn clear(&self) -> Result<WriteAck, StoreError> {
        let ack = self.wait(apply(&self.gateway, &self.keys, Write::Clear))?;
        Ok(ack.unwrap_or_default())
    }

    /// Reads wait in the blocking pool; writes are queued onto the etcd runtime, so a write
    /// holds no thread while etcd's members agree on it.
    fn calls(&self) -> Calls {
        Calls {
            reads: ReadPath::Blocking,
            writes: WritePath::Queued,
        }
    }

    fn submit(&self, write: Write, done: WriteDone) {
        let gateway = Arc::clone(&self.gateway);
        let keys = Arc::clone(&self.keys);
        self.gateway
            .spawn(async move { done(apply(&gateway, &keys, write).await) });
    }

    fn checkpoint(&self) -> Result<CheckpointOutcome, StoreError> {
        let started = Instant::now();
        let revision = self.wait(self.gateway.status())?.header.revision;
        match self.wait(self.gateway.compact(revision)) {
            Ok(_) => {}
            // Compacted to this revision already (nothing was written since): nothing to do.
            Err(StoreError::Invalid(m)) if m.contains("compacted") => {}
            Err(e) => return Err(e),
        }
        Ok(CheckpointOutcome {
            sequence: Some(revision),
            duration_ms: Some(started.elapsed().as_secs_f64() * 1e3),
            note: Some(format!(
                "etcd compacted its key history up to revision {revision}: older versions are gone, as records before a WAL checkpoint are; etcd snapshots and truncates each member's Raft log by itself (every --snapshot-count entries)"
            )),
            ..CheckpointOutcome::default()
        })
    }

    fn wal_entries(
        &self,
        limit: usize,
        max_bytes: usize,
    ) -> Result<Option<WalListing>, StoreError> {
        let keys = &self.keys;
        let now = self.wait(self.gateway.status())?.header.revision;
        let window = |start| {
            self.wait(
                self.gateway
                    .history(&keys.prefix, &keys.prefix_end, start, now),
            )
        };
        let mut start = now.saturating_sub(HISTORY_WINDOW - 1).max(1);
        let mut history = window(start)?;
        if let Some(floor) = history.compacted_to.filter(|f| *f > start) {
            // Part of the window was compacted away: what remains starts at the floor.
            start = floor;
            history = window(start)?;
        }
        let total = history.events.len() as u64;
        let mut entries = Vec::new();
        let mut bytes = 0usize;
        for event in history.events.into_iter().rev() {
            if entries.len() >= limit {
                break;
            }
            let size = event.kv.key.len() + event.kv.value.len();
            if !entries.is_empty() && bytes.saturating_add(size) > max_bytes {
                break;
            }
            bytes += size;
            let delete = event.kind.as_deref() == Some("DELETE");
            entries.push(WalEntry {
                sequence: event.kv.mod_revision,
                operation: if delete { "DELETE" } else { "SET" },
                key: keys.lab_key(&event.kv.key),
                value: (!delete).then_some(event.kv.value),
                timestamp_micros: None,
            });
        }
        entries.reverse();
        Ok(Some(WalListing { entries, total }))
    }

    fn stats(&self) -> StoreStats {
        let etcd = self.describe();
        let size = etcd
            .members
            .iter()
            .find(|m| m.is_leader)
            .and_then(|m| m.db_size_bytes);
        StoreStats {
            size_on_disk_bytes: size,
            log: None,
            details: details(&serde_json::json!({ "etcd": etcd })),
        }
    }

    fn prepare_crash(&self, mode: CrashMode) -> Result<CrashReport, StoreError> {
        match mode {
            CrashMode::Process => Ok(CrashReport {
                note: Some("the data is in etcd: nothing this server held is lost".into()),
                ..CrashReport::default()
            }),
            CrashMode::Leader => {
                let leader = self.leader()?;
                let killed = self.kill_members(std::slice::from_ref(&leader))?;
                let leader = leader.name;
                Ok(CrashReport {
                    killed_members: killed,
                    note: Some(format!(
                        "killed the leader, {leader}: the others elect a new one (about a second) and go on; the lab restarts {leader}, which catches up from its log"
                    )),
                    ..CrashReport::default()
                })
            }
            CrashMode::AllMembers => {
                let killed = self.kill_members(&self.wait(self.gateway.members())?)?;
                Ok(CrashReport {
                    killed_members: killed,
                    note: Some(
                        "killed every member: writes fail until the lab has restarted a majority, then every acknowledged write is back from their logs".into(),
                    ),
                    ..CrashReport::default()
                })
            }
            CrashMode::PowerLoss => Err(StoreError::Unsupported(format!(
                "mode=power-loss is simulated by the WAL engine only; the etcd backend can crash with {}",
                BackendKind(&ROW).crash_modes_text()
            ))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_prefix_range_ends_after_every_key_with_the_prefix() {
        assert_eq!(prefix_end(b"walab/"), b"walab0");
        assert_eq!(prefix_end(b"a\xff"), b"b");
        assert_eq!(prefix_end(b"\xff\xff"), b"\0");
    }

    #[test]
    fn a_prefix_is_a_namespace_ending_in_a_separator() {
        assert_eq!(namespace("walab").unwrap(), "walab/");
        assert_eq!(namespace("walab/").unwrap(), "walab/");
        assert_eq!(namespace("team/walab").unwrap(), "team/walab/");
        let ours = namespace("walab").unwrap();
        let end = prefix_end(ours.as_bytes());
        for other in ["walab-prod/config", "walabot/x", "walab"] {
            let inside = other.as_bytes() >= ours.as_bytes() && other.as_bytes() < &end[..];
            assert!(!inside, "{other} is outside the lab's range");
        }
    }

    #[test]
    fn an_empty_prefix_is_refused() {
        let settings = EtcdSettings {
            prefix: String::new(),
            ..EtcdSettings::default()
        };
        let err = EtcdBackend::connect(settings, Duration::ZERO).unwrap_err();
        assert!(err.to_string().contains("ETCD_PREFIX"), "{err}");
    }
}
