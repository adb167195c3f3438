//! `walab serve` refuses a bad setting with clap's error naming the flag and its variable
//! (`--fsync <FSYNC>`) and what it accepts, exit code 2; `walab lab`, which reads the same
//! variables for its children, says it in one line.

mod common;

use std::time::Duration;

use common::{Walab, free_port, get, wait_healthy};

#[test]
fn a_bad_value_stops_start_up_naming_the_variable_and_what_it_accepts() {
    let mut serve = Walab::start(
        &["serve"],
        &[("KV_BACKEND", "memory"), ("FSYNC", "sometimes")],
    );
    let status = serve
        .wait_exit(Duration::from_secs(10))
        .expect("serve exits");
    assert_eq!(status.code(), Some(2));
    let out = serve.output();
    assert!(
        out.starts_with(
            "error: invalid value 'sometimes' for '--fsync <FSYNC>': unknown sync policy 'sometimes': expected always, never or interval:<milliseconds> (e.g. interval:1000)\n"
        ),
        "{out}"
    );

    let dir = tempfile::tempdir().expect("temp dir");
    let mut lab = Walab::lab(
        dir.path(),
        [free_port(), free_port(), free_port()],
        &[("FSYNC", "sometimes")],
    );
    let status = lab.wait_exit(Duration::from_secs(10)).expect("lab exits");
    assert_eq!(status.code(), Some(2));
    assert_eq!(
        lab.output().trim(),
        "walab lab: FSYNC: unknown sync policy 'sometimes': expected always, never or interval:<milliseconds> (e.g. interval:1000)"
    );
}

#[test]
fn wal_enabled_false_serves_the_memory_backend() {
    let port = free_port();
    let port_text = port.to_string();
    let _serve = Walab::start(
        &["serve"],
        &[
            ("WAL_ENABLED", "false"),
            ("HOST", "127.0.0.1"),
            ("PORT", &port_text),
        ],
    );
    assert!(wait_healthy(port, Duration::from_secs(10)).is_some());
    let health = get(port, "/health").json;
    assert_eq!(health["backend"], "memory");
    assert_eq!(health["wal_enabled"], false);
}
