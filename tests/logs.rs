//! What `walab serve` writes to stderr: one line per answered request at the default
//! `RUST_LOG` (the polled routes at DEBUG only), one JSON object a line with
//! `LOG_FORMAT=json`, and a bad `LOG_FORMAT` refused at start-up.

mod common;

use std::time::{Duration, Instant};

use common::{Walab, get, post_json};
use serde_json::Value;

/// Wait until `server` has printed a line that `wanted` accepts; that line.
fn line(server: &Walab, wanted: impl Fn(&str) -> bool) -> String {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if let Some(l) = server.output().lines().find(|l| wanted(l)) {
            return l.to_owned();
        }
        assert!(
            Instant::now() < deadline,
            "no such line in:\n{}",
            server.output()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn each_request_is_one_info_line_with_method_path_route_status_and_latency() {
    let (server, port, _dir) = Walab::serve("memory", &[]);
    assert_eq!(get(port, "/health").status, 200);
    assert_eq!(get(port, "/metrics").status, 200);
    assert_eq!(
        post_json(port, "/kv", r#"{"key":"k","value":1}"#).status,
        200
    );
    assert_eq!(get(port, "/kv/no-such-key").status, 404);
    assert_eq!(get(port, "/no/such/route").status, 404);

    let put = line(&server, |l| l.contains("url.path=/kv "));
    for part in [
        &format!("[memory:{port}]"),
        " INFO ",
        "http.request.method=POST",
        "http.route=/kv",
        "walab::request: answered status=200 latency_ms=",
    ] {
        assert!(put.contains(part), "{part:?} in {put}");
    }
    let missing = line(&server, |l| l.contains("url.path=/kv/no-such-key"));
    assert!(
        missing.contains("http.route=/kv/{*key}") && missing.contains("status=404"),
        "{missing}"
    );
    let unrouted = line(&server, |l| l.contains("url.path=/no/such/route"));
    assert!(
        unrouted.contains("status=404") && !unrouted.contains("http.route"),
        "{unrouted}"
    );
    let out = server.output();
    let requests = out.lines().filter(|l| l.contains("walab::request")).count();
    assert_eq!(
        requests, 3,
        "one line per request, none for the polled /health and /metrics:\n{out}"
    );
}

#[test]
fn log_format_json_writes_one_object_a_line_tagged_with_the_server() {
    let (server, port, _dir) = Walab::serve("memory", &[("LOG_FORMAT", "json")]);
    assert_eq!(get(port, "/kv/absent").status, 404);
    let request = line(&server, |l| l.contains("walab::request"));
    let request: Value = serde_json::from_str(&request).expect("a JSON object");
    assert_eq!(request["server"], format!("memory:{port}"));
    assert_eq!(request["level"], "INFO");
    assert_eq!(request["target"], "walab::request");
    assert_eq!(request["fields"]["status"], 404);
    assert!(request["fields"]["latency_ms"].is_number(), "{request}");
    assert_eq!(request["span"]["url.path"], "/kv/absent");
    assert_eq!(request["span"]["http.request.method"], "GET");
    for l in server.output().lines() {
        let object: Value = serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}"));
        assert_eq!(object["server"], format!("memory:{port}"), "{l}");
    }
}

#[test]
fn a_bad_log_format_stops_start_up_naming_the_variable() {
    let mut serve = Walab::start(
        &["serve"],
        &[("KV_BACKEND", "memory"), ("LOG_FORMAT", "xml")],
    );
    let status = serve
        .wait_exit(Duration::from_secs(10))
        .expect("serve exits");
    assert_eq!(status.code(), Some(2));
    let out = serve.output();
    assert!(
        out.starts_with(
            "error: invalid value 'xml' for '--log-format <LOG_FORMAT>': unknown log format 'xml': expected text or json\n"
        ),
        "{out}"
    );
}
