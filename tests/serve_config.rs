//! `walab serve` refuses a bad environment with one line naming the variable, exit code 2.

mod common;

use std::time::Duration;

use common::{Walab, free_port, get, wait_healthy};

#[test]
fn a_bad_value_stops_start_up_with_one_line() {
    let mut serve = Walab::start(
        &["serve"],
        &[("KV_BACKEND", "memory"), ("FSYNC", "sometimes")],
    );
    let status = serve
        .wait_exit(Duration::from_secs(10))
        .expect("serve exits");
    assert_eq!(status.code(), Some(2));
    let out = serve.output();
    assert_eq!(
        out.trim(),
        "walab serve: FSYNC: unknown sync policy 'sometimes': expected always, never or interval:<milliseconds> (e.g. interval:1000)"
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
