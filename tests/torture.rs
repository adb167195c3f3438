//! `walab torture` over real processes: the WAL keeps every acknowledged write through
//! SIGKILLs, and the harness does see the memory backend lose everything.

use std::process::Command;

/// Run a short torture; returns the exit success and the summary row's cells.
fn torture(args: &[&str]) -> (bool, Vec<String>) {
    let out = Command::new(env!("CARGO_BIN_EXE_walab"))
        .args([
            "torture", "--cycles", "3", "--min-ms", "30", "--max-ms", "120", "--seed", "7",
        ])
        .args(args)
        .output()
        .expect("run walab torture");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let row = stdout.lines().last().unwrap_or_default();
    let cells = row
        .split('|')
        .map(|c| c.trim().to_string())
        .filter(|c| !c.is_empty())
        .collect();
    (out.status.success(), cells)
}

#[test]
fn the_wal_loses_nothing_acknowledged_through_kills() {
    let (ok, row) = torture(&["--backend", "wal"]);
    assert!(ok, "{row:?}");
    // backend, policy, crash, cycles, acknowledged, lost, phantom, ...
    assert_eq!(
        row[0..4],
        ["wal", "FSYNC=always", "process kill", "3"],
        "{row:?}"
    );
    assert!(
        row[4].parse::<u64>().unwrap_or(0) > 0,
        "writes were acknowledged: {row:?}"
    );
    assert_eq!((row[5].as_str(), row[6].as_str()), ("0", "0"), "{row:?}");
}

#[test]
fn the_harness_sees_the_memory_backend_lose_its_data() {
    let (ok, row) = torture(&["--backend", "memory"]);
    assert!(
        ok,
        "memory promises nothing, so losing is not a failure: {row:?}"
    );
    assert!(
        row[5].parse::<u64>().unwrap_or(0) > 0,
        "lost writes counted: {row:?}"
    );
    assert_eq!(row[6], "0", "no phantoms: {row:?}");
}
