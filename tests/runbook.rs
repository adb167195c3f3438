//! The runbook's claims (RUNBOOK.md), over real HTTP against `walab lab`.
//!
//! Each test starts its own lab on free ports with its data in a temp dir, and does what
//! `seed-runbook.md` does with curl, asserting what the runbook says the user will see.
//! The runbook's `sleep 5` after each crash is the most a restart may take.

mod common;

use std::time::Duration;

use common::{Walab, free_port, get, post, post_json, wait_healthy, wait_new_pid};
use serde_json::{Value, json};
use tempfile::TempDir;

/// The runbook waits `sleep 5` for a restart; that is the bound.
const RESTART_LIMIT: Duration = Duration::from_secs(5);

struct Lab {
    wal: u16,
    memory: u16,
    sled: u16,
    walab: Walab,
    _dir: TempDir,
}

fn start_lab(envs: &[(&str, &str)], wait_for: &[fn(&Lab) -> u16]) -> Lab {
    let dir = TempDir::new().expect("temp dir");
    let (wal, memory, sled) = (free_port(), free_port(), free_port());
    let walab = Walab::lab(dir.path(), [wal, memory, sled], envs);
    let lab = Lab {
        wal,
        memory,
        sled,
        walab,
        _dir: dir,
    };
    for port_of in wait_for {
        let port = port_of(&lab);
        assert!(
            wait_healthy(port, Duration::from_secs(20)).is_some(),
            "port {port} never became healthy:\n{}",
            lab.walab.output()
        );
    }
    lab
}

/// Crash the server on `port` and wait for the lab to bring a new process up.
/// Returns its `/admin/stats` and checks the crash reply.
fn crash_and_wait(lab: &Lab, port: u16, expect_items: u64) -> Value {
    let old_pid = get(port, "/admin/stats").json["pid"].as_u64().unwrap_or(0);
    let r = post(port, "/admin/crash");
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.json["status"], "crashing");
    assert_eq!(r.json["items_in_memory"], expect_items);
    assert!(r.json["wal_enabled"].is_boolean());
    let Some((took, stats)) = wait_new_pid(port, old_pid, RESTART_LIMIT) else {
        panic!(
            "port {port} did not come back within {RESTART_LIMIT:?}:\n{}",
            lab.walab.output()
        );
    };
    println!(
        "port {port}: back {} ms after /admin/crash",
        took.as_millis()
    );
    stats
}

fn user(i: u32) -> String {
    format!(
        r#"{{"key": "user-{i}", "value": {{"name": "User {i}", "balance": {}}}}}"#,
        i * 100
    )
}

fn write_users(port: u16) {
    for i in 1..=10 {
        let r = post_json(port, "/kv", &user(i));
        assert_eq!(r.status, 200, "{}", r.text);
        assert_eq!(r.json["key"], format!("user-{i}"));
    }
}

#[test]
fn part2_memory_loses_everything_and_sled_flushed_keeps_it() {
    let lab = start_lab(&[("SLED_FLUSH", "always")], &[|l| l.memory, |l| l.sled]);

    // Part 2: 10 writes to the no-WAL store...
    write_users(lab.memory);
    let r = get(lab.memory, "/kv");
    assert_eq!(r.json["count"], 10);
    assert_eq!(
        r.json["data"]["user-3"],
        json!({"name": "User 3", "balance": 300})
    );
    let stats = get(lab.memory, "/admin/stats").json;
    assert_eq!(stats["item_count"], 10);
    assert_eq!(stats["wal_enabled"], false);
    // ...are all gone after a crash.
    let stats = crash_and_wait(&lab, lab.memory, 10);
    assert_eq!(stats["restarts"], 1);
    assert_eq!(stats["item_count"], 0);
    assert_eq!(get(lab.memory, "/kv").json, json!({"data": {}, "count": 0}));

    // The same 10 writes to sled, flushed per write, all survive.
    write_users(lab.sled);
    let stats = crash_and_wait(&lab, lab.sled, 10);
    assert_eq!(stats["item_count"], 10, "{stats}");
    let r = get(lab.sled, "/kv");
    assert_eq!(r.json["count"], 10);
    assert_eq!(
        r.json["data"]["user-10"],
        json!({"name": "User 10", "balance": 1000})
    );

    // The quick reference writes without a JSON content type (curl -d).
    let r = common::http(
        lab.memory,
        "POST",
        "/kv",
        Some(r#"{"key":"k","value":"v"}"#),
        &[("Content-Type", "application/x-www-form-urlencoded")],
    )
    .expect("POST");
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(
        get(lab.memory, "/kv/k").json,
        json!({"key": "k", "value": "v"})
    );
    let _ = lab.wal;
}

/// Parts 3, 4, 5 and 7 of the runbook: the WAL keeps what it acknowledged.
#[test]
fn parts_3_to_7_the_wal_keeps_every_acknowledged_write() {
    let lab = start_lab(&[], &[|l| l.wal, |l| l.memory]);
    let wal = lab.wal;
    assert_eq!(get(wal, "/health").json["wal_enabled"], true);
    // Once all three are healthy the lab prints their URLs.
    assert!(wait_healthy(lab.sled, Duration::from_secs(20)).is_some());
    let started = std::time::Instant::now();
    while !lab.walab.output().contains("walab lab is ready") {
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "{}",
            lab.walab.output()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    for port in [wal, lab.memory, lab.sled] {
        assert!(
            lab.walab
                .output()
                .contains(&format!("http://127.0.0.1:{port}"))
        );
    }

    // Part 3: 10 writes, each acknowledged with a sequence number, all back after a crash.
    for i in 1..=10 {
        let r = post_json(wal, "/kv", &user(i));
        assert_eq!(r.status, 200, "{}", r.text);
        assert_eq!(r.json["wal_enabled"], true);
        assert!(r.json["sequence"].is_u64(), "{}", r.text);
    }
    let log = get(wal, "/admin/wal").json;
    assert_eq!(log["wal_enabled"], true);
    assert_eq!(log["entries"].as_array().map_or(0, Vec::len), 10, "{log}");
    let stats = crash_and_wait(&lab, wal, 10);
    assert_eq!(stats["item_count"], 10, "{stats}");
    assert_eq!(stats["recovered_entries"], 10, "all 10 replayed: {stats}");
    assert_eq!(get(wal, "/kv").json["count"], 10);
    assert_eq!(
        get(wal, "/kv/user-7").json["value"],
        json!({"name": "User 7", "balance": 700})
    );

    // Part 4: clear, then SET, SET, SET (update), DELETE; the log shows them with sequences.
    let r = post(wal, "/admin/clear");
    assert_eq!(r.json["status"], "cleared");
    post_json(
        wal,
        "/kv",
        r#"{"key": "config", "value": {"version": "1.0", "debug": false}}"#,
    );
    post_json(
        wal,
        "/kv",
        r#"{"key": "settings", "value": {"theme": "dark", "lang": "en"}}"#,
    );
    post_json(
        wal,
        "/kv",
        r#"{"key": "config", "value": {"version": "2.0", "debug": true}}"#,
    );
    let r = common::http(wal, "DELETE", "/kv/settings", None, &[]).expect("DELETE");
    assert_eq!(r.json["deleted"], true);
    assert!(r.json["sequence"].is_u64());
    let log = get(wal, "/admin/wal").json;
    let entries = log["entries"].as_array().cloned().unwrap_or_default();
    let tail: Vec<(&str, &str)> = entries
        .iter()
        .rev()
        .take(4)
        .rev()
        .map(|e| {
            (
                e["operation"].as_str().unwrap_or(""),
                e["key"].as_str().unwrap_or(""),
            )
        })
        .collect();
    assert_eq!(
        tail,
        [
            ("SET", "config"),
            ("SET", "settings"),
            ("SET", "config"),
            ("DELETE", "settings")
        ],
        "{log}"
    );
    let seqs: Vec<u64> = entries
        .iter()
        .filter_map(|e| e["sequence"].as_u64())
        .collect();
    assert!(
        seqs.windows(2).all(|w| w[0] < w[1]),
        "sequences increase: {seqs:?}"
    );
    let last = entries.last().cloned().unwrap_or_default();
    assert_eq!(last["value"], Value::Null, "DELETE has no value");
    assert!(
        last["timestamp"].as_str().is_some_and(|t| t.ends_with('Z')),
        "{last}"
    );
    assert_eq!(
        entries[entries.len() - 2]["value"],
        json!({"version": "2.0", "debug": true})
    );

    // Part 5: 150 writes with threshold 100 leave fewer than 100 since the last checkpoint.
    for i in 1..=150 {
        let r = post_json(
            wal,
            "/kv",
            &format!(r#"{{"key": "item-{i}", "value": {i}}}"#),
        );
        assert_eq!(r.status, 200);
    }
    let stats = get(wal, "/admin/stats").json;
    assert!(
        stats["entries_since_checkpoint"]
            .as_u64()
            .is_some_and(|n| n < 100),
        "{stats}"
    );
    let r = post(wal, "/admin/checkpoint");
    assert_eq!(r.json["status"], "checkpoint created", "{}", r.text);
    assert!(r.json["entries_truncated"].is_u64());
    let log = get(wal, "/admin/wal").json;
    assert_eq!(log["entries"], json!([]), "empty after a checkpoint: {log}");
    assert_eq!(get(wal, "/admin/stats").json["entries_since_checkpoint"], 0);
    let items = get(wal, "/admin/stats").json["item_count"]
        .as_u64()
        .unwrap_or(0);
    let stats = crash_and_wait(&lab, wal, items);
    assert_eq!(
        stats["recovered_entries"], 0,
        "checkpoint-based recovery: {stats}"
    );
    assert_eq!(stats["item_count"], items);

    // Part 7: 20 keys to both; crash both at once; the WAL keeps all, memory none.
    for i in 1..=20 {
        let body = format!(r#"{{"key": "demo-{i}", "value": {{"data": "important-{i}"}}}}"#);
        post_json(wal, "/kv", &body);
        post_json(lab.memory, "/kv", &body);
    }
    let before = get(wal, "/admin/stats").json["item_count"]
        .as_u64()
        .unwrap_or(0);
    let wal_pid = get(wal, "/admin/stats").json["pid"].as_u64().unwrap_or(0);
    let mem_pid = get(lab.memory, "/admin/stats").json["pid"]
        .as_u64()
        .unwrap_or(0);
    let (a, b) = (wal, lab.memory);
    let crashes = [
        std::thread::spawn(move || post(a, "/admin/crash")),
        std::thread::spawn(move || post(b, "/admin/crash")),
    ];
    for c in crashes {
        assert_eq!(c.join().expect("crash thread").status, 200);
    }
    let (_, w) = wait_new_pid(wal, wal_pid, RESTART_LIMIT).expect("wal back");
    let (_, m) = wait_new_pid(lab.memory, mem_pid, RESTART_LIMIT).expect("memory back");
    assert_eq!(w["item_count"], before);
    assert!(
        w["recovered_entries"].as_u64().is_some_and(|n| n >= 20),
        "{w}"
    );
    assert_eq!(m["item_count"], 0);
    for i in [1, 20] {
        assert_eq!(get(wal, &format!("/kv/demo-{i}")).status, 200);
        assert_eq!(get(lab.memory, &format!("/kv/demo-{i}")).status, 404);
    }
}
