//! The conformance suite: what every backend of the catalog must do, run against each one,
//! etcd's against a real three-member cluster this test starts.
//!
//! A new backend gets its row here for free: `every_backend_conforms` walks the catalog
//! and fails for a backend it does not know how to open.
//!
//! etcd: the binary comes from `ETCD_BIN` or `PATH` (Debian: `apt-get install etcd-server`).
//! Without one the etcd part says so and passes, unless `WALAB_REQUIRE_ETCD=1` (which
//! `.ci/run` sets after installing etcd), where it fails.

use std::sync::mpsc;
use std::time::{Duration, Instant};

use walab_store::etcd::cluster::{self, ClusterSpec, LocalCluster};
use walab_store::etcd::{EtcdBackend, EtcdSettings};
use walab_store::{
    BackendConfig, BackendKind, BackendSettings, CrashMode, KvBackend, StoreError, Value, Write,
    open_backend,
};

/// Everything a backend promises through the trait.
fn conforms(b: &dyn KvBackend, kind: BackendKind) {
    let name = kind.as_str();

    // Empty.
    assert_eq!(b.len().unwrap(), 0, "{name}: starts empty");
    assert!(b.is_empty().unwrap(), "{name}");
    assert!(b.list().unwrap().is_empty(), "{name}");
    assert_eq!(b.get("missing").unwrap(), None, "{name}");
    assert!(
        b.delete("missing").unwrap().is_none(),
        "{name}: absent delete"
    );

    // Writes, read back; sequences (where there are any) only grow.
    let mut last_sequence = 0;
    let mut sequenced = |ack: walab_store::WriteAck| {
        if let Some(seq) = ack.sequence {
            assert!(
                seq > last_sequence,
                "{name}: sequence {seq} after {last_sequence}"
            );
            last_sequence = seq;
        }
    };
    let keys = ["b", "a", "dir/file", "zeta 2", "ключ", "a/b/c"];
    for (i, key) in keys.iter().enumerate() {
        sequenced(b.put(key, format!("{{\"n\":{i}}}").as_bytes()).unwrap());
    }
    assert_eq!(b.len().unwrap(), keys.len(), "{name}");
    assert_eq!(
        b.get("ключ").unwrap().as_deref(),
        Some(&b"{\"n\":4}"[..]),
        "{name}: a UTF-8 key"
    );
    sequenced(b.put("a", b"\"new\"").unwrap());
    assert_eq!(
        b.get("a").unwrap().as_deref(),
        Some(&b"\"new\""[..]),
        "{name}: overwrite"
    );
    assert_eq!(
        b.len().unwrap(),
        keys.len(),
        "{name}: an overwrite adds no key"
    );
    let big = vec![b'x'; 64 * 1024];
    sequenced(b.put("big", &big).unwrap());
    assert_eq!(
        b.get("big").unwrap().as_deref(),
        Some(&big[..]),
        "{name}: 64 KiB"
    );

    // Listing: every pair, ordered by key.
    let listed: Vec<String> = b.list().unwrap().into_iter().map(|(k, _)| k).collect();
    let mut expected: Vec<String> = keys.iter().map(|k| k.to_string()).collect();
    expected.push("big".into());
    expected.sort();
    assert_eq!(listed, expected, "{name}: list is ordered by key");

    // Delete.
    let ack = b.delete("b").unwrap().expect("b was there");
    sequenced(ack);
    assert_eq!(b.get("b").unwrap(), None, "{name}");
    assert!(b.delete("b").unwrap().is_none(), "{name}: second delete");
    assert_eq!(b.len().unwrap(), keys.len(), "{name}: one gone, big added");

    // The one write entry the server uses.
    let (tx, rx) = mpsc::channel();
    b.submit(
        Write::Put {
            key: "submitted".into(),
            value: Value::from(&b"1"[..]),
        },
        Box::new(move |outcome| {
            let _ = tx.send(outcome.map(|a| a.is_some()));
        }),
    );
    let acked = rx
        .recv_timeout(Duration::from_secs(10))
        .expect("submit completes");
    assert!(matches!(acked, Ok(true)), "{name}: {acked:?}");
    assert_eq!(
        b.get("submitted").unwrap().as_deref(),
        Some(&b"1"[..]),
        "{name}"
    );

    // What it supports, it does; what it does not, it refuses in words.
    let supports = kind.supports();
    let log = b.wal_entries(10, 1 << 20).unwrap();
    assert_eq!(
        log.is_some(),
        supports.log,
        "{name}: a log iff the row says so"
    );
    if let Some(log) = log {
        let newest = log.entries.last().expect("recent writes are in the log");
        assert_eq!(newest.key, "submitted", "{name}: the newest record");
        assert_eq!(newest.operation, "SET", "{name}");
        assert!(log.total >= log.entries.len() as u64, "{name}");
        assert!(log.entries.len() <= 10, "{name}: the limit holds");
    }
    match b.checkpoint() {
        Ok(outcome) => assert!(supports.checkpoint, "{name}: {outcome:?}"),
        Err(StoreError::Unsupported(why)) => {
            assert!(!supports.checkpoint, "{name}: {why}");
            assert!(why.contains("not enabled"), "{name}: {why}");
        }
        Err(e) => panic!("{name}: checkpoint failed: {e}"),
    }
    assert_eq!(
        b.get("a").unwrap().as_deref(),
        Some(&b"\"new\""[..]),
        "{name}: data survives a checkpoint"
    );
    for mode in CrashMode::ALL {
        if !kind.can_crash(mode) {
            let err = b.prepare_crash(mode).expect_err(mode.as_str());
            assert!(
                matches!(err, StoreError::Unsupported(ref m) if m.contains(mode.as_str())),
                "{name}: mode={mode}: {err:?}"
            );
        }
    }

    // Clear: everything, at once.
    sequenced(b.clear().unwrap());
    assert_eq!(b.len().unwrap(), 0, "{name}: cleared");
    assert!(b.list().unwrap().is_empty(), "{name}");
    assert_eq!(b.get("a").unwrap(), None, "{name}");
    b.clear().expect("clearing an empty store");

    let d = b.durability();
    assert!(!d.summary.is_empty(), "{name}");
    assert!(
        !d.survives_power_loss || d.survives_process_crash,
        "{name}: power loss is the harder of the two"
    );
    assert_eq!(b.poisoned(), None, "{name}");
}

fn config(kind: BackendKind, dir: &std::path::Path) -> BackendConfig {
    // The durable choice of every backend that has one, so reopening keeps every write.
    BackendConfig {
        settings: BackendSettings::with(&["--sled-flush=always"]),
        ..BackendConfig::new(kind, dir)
    }
}

/// A three-member cluster of the real etcd, or `None` (with a note) when there is none.
fn etcd_cluster(dir: &std::path::Path) -> Option<LocalCluster> {
    let bin = match cluster::find_etcd() {
        Ok(bin) => bin,
        Err(why) if std::env::var_os("WALAB_REQUIRE_ETCD").is_none() => {
            eprintln!("SKIPPED the etcd part: {why}");
            return None;
        }
        Err(why) => panic!("WALAB_REQUIRE_ETCD is set: {why}"),
    };
    let spec = ClusterSpec::on_free_ports(dir, 3).expect("free ports");
    Some(LocalCluster::start(spec, bin, Duration::from_secs(30)).expect("the cluster starts"))
}

fn etcd_backend(cluster: &LocalCluster, prefix: &str) -> EtcdBackend {
    let settings = EtcdSettings {
        endpoints: cluster.spec().endpoints(),
        prefix: prefix.into(),
        pid_dir: Some(cluster.spec().run_dir.clone()),
    };
    EtcdBackend::connect(settings, Duration::from_secs(10)).expect("connect")
}

#[test]
fn every_backend_conforms() {
    for kind in BackendKind::all() {
        let dir = tempfile::tempdir().unwrap();
        match kind.as_str() {
            "etcd" => {
                let Some(cluster) = etcd_cluster(dir.path()) else {
                    continue;
                };
                let backend = etcd_backend(&cluster, "conformance/");
                conforms(&backend, kind);
                assert!(
                    backend.durability().summary.contains("3 members"),
                    "{}",
                    backend.durability().summary
                );
            }
            // Every other row opens from its data directory and its defaults alone.
            _ => {
                let backend = open_backend(&config(kind, dir.path())).expect("open");
                conforms(backend.as_ref(), kind);
            }
        }
    }
}

#[test]
fn durable_backends_keep_acknowledged_writes_across_a_reopen() {
    let durable = BackendKind::all()
        .filter(|k| k.as_str() != "etcd")
        .filter(|&k| {
            let dir = tempfile::tempdir().unwrap();
            let b = open_backend(&config(k, dir.path())).expect("open");
            b.durability().survives_process_crash
        });
    let durable: Vec<BackendKind> = durable.collect();
    assert!(durable.len() >= 3, "{durable:?}");
    for kind in durable {
        let dir = tempfile::tempdir().unwrap();
        {
            let b = open_backend(&config(kind, dir.path())).unwrap();
            b.put("k", b"1").unwrap();
            b.put("gone", b"2").unwrap();
            b.delete("gone").unwrap();
        }
        // sled's background flusher holds the database (and its file lock) until its next
        // tick after the last handle is dropped: a reopen in the same process may have to
        // wait for it. A server opens its store once per process, so only tests meet this.
        let started = Instant::now();
        let b = loop {
            match open_backend(&config(kind, dir.path())) {
                Ok(b) => break b,
                Err(e) if started.elapsed() < Duration::from_secs(5) => {
                    eprintln!("{kind}: reopening: {e}");
                    std::thread::sleep(Duration::from_millis(50));
                }
                Err(e) => panic!("{kind}: reopening: {e}"),
            }
        };
        assert_eq!(b.get("k").unwrap().as_deref(), Some(&b"1"[..]), "{kind}");
        assert_eq!(b.get("gone").unwrap(), None, "{kind}");
    }
}

#[test]
fn etcd_keeps_to_its_prefix_and_survives_its_leader() {
    let dir = tempfile::tempdir().unwrap();
    let Some(mut cluster) = etcd_cluster(dir.path()) else {
        return;
    };
    let ours = etcd_backend(&cluster, "walab/");
    let theirs = etcd_backend(&cluster, "other/");
    theirs.put("x", b"1").unwrap();
    ours.put("a", b"1").unwrap();
    ours.clear().unwrap();
    assert_eq!(
        theirs.get("x").unwrap().as_deref(),
        Some(&b"1"[..]),
        "clear touches our prefix only"
    );
    assert_eq!(theirs.len().unwrap(), 1);
    // A prefix without its separator is still a namespace: other applications' keys that
    // merely start with the same letters are neither listed nor cleared.
    let bare = etcd_backend(&cluster, "walab");
    let prod = etcd_backend(&cluster, "walab-prod/");
    let bot = etcd_backend(&cluster, "walabot/");
    prod.put("config", b"keep").unwrap();
    bot.put("x", b"keep").unwrap();
    bare.put("mine", b"1").unwrap();
    assert_eq!(bare.list().unwrap().len(), 1, "only the lab's own key");
    assert_eq!(
        ours.get("mine").unwrap().as_deref(),
        Some(&b"1"[..]),
        "walab is walab/"
    );
    bare.clear().unwrap();
    assert_eq!(prod.get("config").unwrap().as_deref(), Some(&b"keep"[..]));
    assert_eq!(bot.get("x").unwrap().as_deref(), Some(&b"keep"[..]));

    let stats = ours.stats();
    assert!(stats.details.contains_key("etcd"), "{stats:?}");
    let etcd = ours.describe();
    assert_eq!(etcd.members.len(), 3);
    assert!(etcd.members.iter().all(|m| m.healthy), "{etcd:?}");
    let leader = etcd.leader.clone().expect("a leader");
    assert_eq!(etcd.members.iter().filter(|m| m.is_leader).count(), 1);
    assert!(etcd.raft_term > 0 && etcd.raft_index > 0, "{etcd:?}");

    for i in 0..20 {
        ours.put(&format!("k{i}"), b"1").unwrap();
    }
    let report = ours
        .prepare_crash(CrashMode::Leader)
        .expect("kills the leader");
    assert_eq!(report.killed_members, vec![leader.clone()]);
    // The others elect a new leader and take writes again; count how long that takes.
    let started = Instant::now();
    loop {
        match ours.put("after", b"1") {
            Ok(_) => break,
            Err(e) if started.elapsed() < Duration::from_secs(20) => {
                eprintln!("while electing: {e}");
                std::thread::sleep(Duration::from_millis(50));
            }
            Err(e) => panic!("no new leader within 20 s: {e}"),
        }
    }
    eprintln!(
        "writes resumed {} ms after the leader died",
        started.elapsed().as_millis()
    );
    let new_leader = cluster.leader().expect("a new leader");
    assert_ne!(cluster.spec().members[new_leader].name, leader);
    cluster.restart_dead().expect("restart the old leader");
    cluster.wait_ready(Duration::from_secs(20)).unwrap();
    for i in 0..20 {
        assert!(
            ours.get(&format!("k{i}")).unwrap().is_some(),
            "k{i} survived"
        );
    }

    ours.prepare_crash(CrashMode::AllMembers)
        .expect("kills every member");
    std::thread::sleep(Duration::from_millis(200));
    assert!(ours.put("none", b"1").is_err(), "no member, no write");
    cluster.restart_dead().expect("restart all");
    cluster.wait_ready(Duration::from_secs(30)).unwrap();
    assert_eq!(ours.len().unwrap(), 21, "every acknowledged write is back");
}
