//! Traces reach an OTLP/HTTP receiver: a small receiver in this test decodes what a real
//! `walab serve` exports and checks span names, parent links and attributes: a request that
//! sends W3C `traceparent` has its server span in the caller's trace, filled as the HTTP
//! semantic conventions ask. With `OTEL_SDK_DISABLED=true`, nothing is sent.

mod common;

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{Walab, http, post, post_json};
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::any_value::Value as AnyValue;
use opentelemetry_proto::tonic::trace::v1::Span;
use opentelemetry_proto::tonic::trace::v1::span::SpanKind;
use opentelemetry_proto::tonic::trace::v1::status::StatusCode;
use prost::Message;

/// Accept OTLP/HTTP posts on a free port; every body is kept.
fn receiver() -> (u16, Arc<Mutex<Vec<Vec<u8>>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let bodies = Arc::new(Mutex::new(Vec::new()));
    let keep = bodies.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming().map_while(Result::ok) {
            let keep = keep.clone();
            std::thread::spawn(move || {
                let mut reader = BufReader::new(stream.try_clone().expect("clone"));
                let mut stream = stream;
                loop {
                    let mut length = 0usize;
                    let mut line = String::new();
                    if reader.read_line(&mut line).unwrap_or(0) == 0 {
                        return;
                    }
                    loop {
                        line.clear();
                        if reader.read_line(&mut line).unwrap_or(0) == 0 {
                            return;
                        }
                        let l = line.trim_end().to_ascii_lowercase();
                        if l.is_empty() {
                            break;
                        }
                        if let Some(v) = l.strip_prefix("content-length:") {
                            length = v.trim().parse().unwrap_or(0);
                        }
                    }
                    let mut body = vec![0; length];
                    if reader.read_exact(&mut body).is_err() {
                        return;
                    }
                    keep.lock().expect("lock").push(body);
                    let reply = "HTTP/1.1 200 OK\r\ncontent-type: application/x-protobuf\r\ncontent-length: 0\r\n\r\n";
                    if stream.write_all(reply.as_bytes()).is_err() {
                        return;
                    }
                }
            });
        }
    });
    (port, bodies)
}

fn spans(bodies: &[Vec<u8>]) -> (Vec<Span>, Vec<String>) {
    let mut spans = Vec::new();
    let mut services = Vec::new();
    for body in bodies {
        let req =
            ExportTraceServiceRequest::decode(body.as_slice()).expect("an OTLP trace request");
        for rs in req.resource_spans {
            for kv in rs.resource.iter().flat_map(|r| r.attributes.iter()) {
                if kv.key == "service.name"
                    && let Some(AnyValue::StringValue(s)) =
                        kv.value.as_ref().and_then(|v| v.value.clone())
                {
                    services.push(s);
                }
            }
            spans.extend(rs.scope_spans.into_iter().flat_map(|s| s.spans));
        }
    }
    (spans, services)
}

fn attr(span: &Span, key: &str) -> Option<AnyValue> {
    span.attributes
        .iter()
        .find(|kv| kv.key == key)
        .and_then(|kv| kv.value.as_ref().and_then(|v| v.value.clone()))
}

fn serve(otlp_port: u16, extra: &[(&str, &str)]) -> (Walab, u16, tempfile::TempDir) {
    let endpoint = format!("http://127.0.0.1:{otlp_port}");
    let mut envs = vec![
        ("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint.as_str()),
        ("OTEL_SERVICE_NAME", "walab-otlp-test"),
    ];
    envs.extend_from_slice(extra);
    Walab::serve("wal", &envs)
}

fn stop(mut server: Walab) {
    common::signal(server.pid(), libc::SIGTERM);
    assert!(
        server.wait_exit(Duration::from_secs(10)).is_some(),
        "a clean shutdown"
    );
}

/// Wait (after a clean shutdown flushed them) until a span satisfies `done`; every span
/// received by then.
fn exported(bodies: &Mutex<Vec<Vec<u8>>>, done: impl Fn(&Span) -> bool) -> Vec<Span> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (got, _) = spans(&bodies.lock().expect("lock"));
        if got.iter().any(&done) || Instant::now() > deadline {
            return got;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The server span exported under the trace `trace_id` (hex), which must exist.
fn server_span<'a>(spans: &'a [Span], trace_id: &str) -> &'a Span {
    spans
        .iter()
        .find(|s| hex(&s.trace_id) == trace_id && s.kind == SpanKind::Server as i32)
        .unwrap_or_else(|| {
            let seen: Vec<_> = spans.iter().map(|s| (&s.name, hex(&s.trace_id))).collect();
            panic!("no server span in trace {trace_id} among {seen:?}")
        })
}

fn string(value: &str) -> Option<AnyValue> {
    Some(AnyValue::StringValue(value.into()))
}

#[test]
fn requests_store_operations_and_wal_steps_are_exported_with_their_parents() {
    let (otlp, bodies) = receiver();
    let (server, port, _dir) = serve(otlp, &[]);
    assert_eq!(
        post_json(port, "/kv", r#"{"key":"k","value":1}"#).status,
        200
    );
    assert_eq!(post(port, "/admin/checkpoint").status, 200);
    // The spans are flushed by the clean shutdown.
    stop(server);
    let deadline = Instant::now() + Duration::from_secs(10);
    let (spans, services) = loop {
        let got = spans(&bodies.lock().expect("lock"));
        if got.0.iter().any(|s| s.name == "wal.checkpoint") || Instant::now() > deadline {
            break got;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(
        services.iter().all(|s| s == "walab-otlp-test") && !services.is_empty(),
        "{services:?}"
    );
    let by_name: HashMap<&str, &Span> = spans.iter().map(|s| (s.name.as_str(), s)).collect();
    let names: Vec<&str> = by_name.keys().copied().collect();
    for name in [
        "POST /kv",
        "store put",
        "wal.append",
        "wal.group_commit_sync",
        "wal.apply",
        "wal.recovery",
        "wal.checkpoint",
        "POST /admin/checkpoint",
    ] {
        assert!(by_name.contains_key(name), "no span {name} among {names:?}");
    }
    let request = by_name["POST /kv"];
    let store = by_name["store put"];
    assert_eq!(
        attr(request, "http.request.method"),
        Some(AnyValue::StringValue("POST".into()))
    );
    assert_eq!(
        attr(request, "http.route"),
        Some(AnyValue::StringValue("/kv".into()))
    );
    assert_eq!(
        attr(request, "http.response.status_code"),
        Some(AnyValue::IntValue(200))
    );
    assert_eq!(
        store.parent_span_id, request.span_id,
        "the store span is the request's child"
    );
    for step in ["wal.append", "wal.group_commit_sync", "wal.apply"] {
        let s = by_name[step];
        assert_eq!(
            s.parent_span_id, store.span_id,
            "{step} is the store span's child"
        );
        assert_eq!(s.trace_id, request.trace_id);
        assert!(s.end_time_unix_nano >= s.start_time_unix_nano);
    }
    assert_eq!(
        attr(by_name["wal.group_commit_sync"], "wal.batch.records"),
        Some(AnyValue::IntValue(1))
    );
    assert_eq!(
        attr(by_name["wal.append"], "wal.sequence"),
        Some(AnyValue::IntValue(1))
    );
    assert_eq!(
        attr(
            by_name["wal.checkpoint"],
            "wal.checkpoint.entries_truncated"
        ),
        Some(AnyValue::IntValue(1))
    );
}

#[test]
fn otel_sdk_disabled_exports_nothing() {
    let (otlp, bodies) = receiver();
    let (server, port, _dir) = serve(otlp, &[("OTEL_SDK_DISABLED", "true")]);
    assert_eq!(
        post_json(port, "/kv", r#"{"key":"k","value":1}"#).status,
        200
    );
    stop(server);
    std::thread::sleep(Duration::from_millis(300));
    assert!(
        bodies.lock().expect("lock").is_empty(),
        "nothing may be sent"
    );
}

#[test]
fn a_request_with_traceparent_joins_the_callers_trace_with_the_http_server_attributes() {
    const TRACE: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
    const PARENT: &str = "00f067aa0ba902b7";
    const STALLED_TRACE: &str = "5bf92f3577b34da6a3ce929d0e0e4737";
    const UNMATCHED_TRACE: &str = "6bf92f3577b34da6a3ce929d0e0e4738";
    let traceparent = |trace: &str| format!("00-{trace}-{PARENT}-01");
    let (otlp, bodies) = receiver();
    // A short request timeout turns a stalled body into a 503 (a server error) on cue.
    let (server, port, _dir) = serve(otlp, &[("REQUEST_TIMEOUT_MS", "400")]);

    let answered = http(
        port,
        "POST",
        "/kv",
        Some(r#"{"key":"k","value":1}"#),
        &[
            ("Content-Type", "application/json"),
            ("traceparent", &traceparent(TRACE)),
            ("tracestate", "lab=1"),
            ("User-Agent", "otlp-test/1.0"),
        ],
    )
    .expect("POST /kv");
    assert_eq!(answered.status, 200);

    // A body announced and never sent: the request timeout answers 503.
    let mut stream = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    write!(
        stream,
        "POST /kv HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Type: application/json\r\n\
         Content-Length: 20\r\ntraceparent: {}\r\n\r\n",
        traceparent(STALLED_TRACE)
    )
    .expect("send the head");
    let mut answer = String::new();
    let _ = stream.read_to_string(&mut answer);
    assert!(answer.starts_with("HTTP/1.1 503"), "{answer}");

    let unmatched = http(
        port,
        "GET",
        "/no/such/route",
        None,
        &[("traceparent", &traceparent(UNMATCHED_TRACE))],
    )
    .expect("GET an unknown path");
    assert_eq!(unmatched.status, 404);

    stop(server);
    let spans = exported(&bodies, |s| hex(&s.trace_id) == UNMATCHED_TRACE);

    let request = server_span(&spans, TRACE);
    assert_eq!(request.name, "POST /kv");
    assert_eq!(
        hex(&request.parent_span_id),
        PARENT,
        "the caller's span is the parent"
    );
    assert_eq!(request.trace_state, "lab=1", "tracestate is carried on");
    for (key, want) in [
        ("http.request.method", string("POST")),
        ("url.path", string("/kv")),
        ("url.scheme", string("http")),
        ("http.route", string("/kv")),
        ("server.address", string("127.0.0.1")),
        ("server.port", Some(AnyValue::IntValue(i64::from(port)))),
        ("user_agent.original", string("otlp-test/1.0")),
        ("network.protocol.version", string("1.1")),
        ("http.response.status_code", Some(AnyValue::IntValue(200))),
    ] {
        assert_eq!(attr(request, key), want, "{key}");
    }
    assert_eq!(attr(request, "error.type"), None);
    assert_ne!(
        request.status.as_ref().map(|s| s.code),
        Some(StatusCode::Error as i32)
    );
    let store = spans
        .iter()
        .find(|s| s.name == "store put")
        .expect("a store span");
    assert_eq!(
        (&store.trace_id, &store.parent_span_id),
        (&request.trace_id, &request.span_id),
        "the server's own spans follow in the caller's trace"
    );

    let stalled = server_span(&spans, STALLED_TRACE);
    assert_eq!(
        attr(stalled, "http.response.status_code"),
        Some(AnyValue::IntValue(503))
    );
    assert_eq!(attr(stalled, "error.type"), string("503"));
    assert_eq!(
        stalled.status.as_ref().map(|s| s.code),
        Some(StatusCode::Error as i32),
        "a 5xx is an error"
    );

    let unmatched = server_span(&spans, UNMATCHED_TRACE);
    assert_eq!(
        unmatched.name, "GET",
        "no route: the method alone names the span"
    );
    assert_eq!(attr(unmatched, "http.route"), None);
    assert_eq!(attr(unmatched, "url.path"), string("/no/such/route"));
    assert_eq!(
        attr(unmatched, "http.response.status_code"),
        Some(AnyValue::IntValue(404))
    );
    assert_ne!(
        unmatched.status.as_ref().map(|s| s.code),
        Some(StatusCode::Error as i32),
        "a 4xx is the client's error, not the server's"
    );
}
