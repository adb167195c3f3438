//! One engine per data directory: a second opener (in this process or another) is refused
//! at once with the holder's pid, the lock goes with the engine or the process (SIGKILL
//! included), and the read-only inspection neither needs nor takes it.

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

use common::*;
use walab_wal::fs::{LOCK_FILE, SimFs};
use walab_wal::{Config, Engine, Error, SyncPolicy};

fn real_config(dir: &std::path::Path) -> Config {
    Config::new(dir).checkpoint_threshold(0)
}

#[test]
fn a_second_engine_on_the_same_directory_is_refused_until_the_first_is_dropped() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let first = Engine::open(real_config(&data)).unwrap();
    first.set(b"k", b"v").unwrap();

    let err = Engine::open(real_config(&data)).unwrap_err();
    let me = std::process::id();
    match &err {
        Error::Locked { dir, pid } => {
            assert_eq!(dir, &data);
            assert_eq!(
                *pid,
                Some(me),
                "the holder's pid is read from the lock file"
            );
        }
        other => panic!("expected Locked, got {other}"),
    }
    let text = err.to_string();
    assert_eq!(
        text,
        format!(
            "the data directory {} is in use by another walab server (pid {me}); stop it first or choose another DATA_DIR",
            data.display()
        )
    );
    // The refusal changed nothing: the holder goes on.
    first.set(b"k2", b"v2").unwrap();

    drop(first);
    let again = Engine::open(real_config(&data)).unwrap();
    assert_eq!(again.len(), 2, "recovery passed the lock file by");
    assert_eq!(again.recovery().torn_bytes_discarded, 0);
}

#[test]
fn inspect_runs_beside_an_engine_that_holds_the_lock() {
    let dir = tempfile::tempdir().unwrap();
    let e = Engine::open(real_config(dir.path())).unwrap();
    for i in 0..3 {
        e.set(format!("k{i}").as_bytes(), b"1").unwrap();
    }
    e.checkpoint().unwrap();
    e.set(b"after", b"2").unwrap();
    let lock = std::fs::read_to_string(dir.path().join(LOCK_FILE)).unwrap();
    assert_eq!(lock.trim(), std::process::id().to_string());

    let mut out = Vec::new();
    let f = walab_wal::inspect::inspect(dir.path(), true, &mut out).unwrap();
    let text = String::from_utf8(out).unwrap();
    assert_eq!(f.damage, Vec::<String>::new(), "{text}");
    assert_eq!((f.records, f.torn_tails), (1, 0), "{text}");
    // Inspection took no lock: the engine still holds it and still writes.
    assert!(matches!(
        Engine::open(real_config(dir.path())),
        Err(Error::Locked { .. })
    ));
    e.set(b"later", b"3").unwrap();
}

#[test]
fn on_the_simulated_fs_the_lock_is_process_state_not_disk_state() {
    let fs = SimFs::new(51);
    let e = open(&fs, config(SyncPolicy::Always)).unwrap();
    e.set(b"a", b"1").unwrap();
    assert!(matches!(
        open(&fs, config(SyncPolicy::Always)),
        Err(Error::Locked { pid: Some(p), .. }) if p == std::process::id()
    ));
    // A crash ends the process that held the lock: the disk it leaves opens.
    let image = process_crash(&fs, e);
    let e = open(&image, config(SyncPolicy::Always)).unwrap();
    assert_eq!(e.len(), 1);
    drop(e);
    // A dropped engine releases it on the same file system.
    let e = open(&image, config(SyncPolicy::Always)).unwrap();
    assert_eq!(e.len(), 1);
}

/// Set in the child process of the SIGKILL test: the directory it holds.
const HOLDER_ENV: &str = "WALAB_LOCK_TEST_HOLDER_DIR";

#[test]
fn a_killed_holder_leaves_the_directory_unlocked() {
    if let Some(dir) = std::env::var_os(HOLDER_ENV) {
        // The child: hold the lock until the parent kills us.
        let e = Engine::open(real_config(std::path::Path::new(&dir))).unwrap();
        e.set(b"from-child", b"1").unwrap();
        println!("holding");
        let mut line = String::new();
        // Blocks until the parent closes stdin, which it never does before the kill.
        let _ = std::io::stdin().read_line(&mut line);
        panic!("the parent was supposed to kill this process");
    }
    let dir = tempfile::tempdir().unwrap();
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args([
            "a_killed_holder_leaves_the_directory_unlocked",
            "--exact",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(HOLDER_ENV, dir.path())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    assert!(
        lines.any(|l| l.map(|l| l.contains("holding")).unwrap_or(false)),
        "the child never took the lock"
    );
    match Engine::open(real_config(dir.path())) {
        Err(Error::Locked { pid, .. }) => assert_eq!(pid, Some(child.id())),
        other => panic!("expected Locked by the child, got {other:?}"),
    }
    child.kill().unwrap(); // SIGKILL: no destructor runs
    child.wait().unwrap();
    let e = Engine::open(real_config(dir.path())).unwrap();
    assert_eq!(e.get(b"from-child").as_deref(), Some(&b"1"[..]));
}
