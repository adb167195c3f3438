//! Hostile HTTP input, over real TCP, to a real `walab serve` per backend.
//!
//! One table of requests, most of them written by hand byte for byte: bad JSON, bad keys,
//! bodies over the limit (with a Content-Length, chunked, nested 100k deep), invalid UTF-8
//! in the body and the path, percent-encoded slashes and dots, unknown paths, wrong methods,
//! empty, truncated, slow and stalled bodies, huge headers, bad query parameters and admin
//! tokens, requests a web page on another origin would send, and a DNS-rebinding `Host`.
//! Every row names the exact status and `error` code the server answers (or, for what hyper
//! refuses before the router sees it, the bare status or a closed connection).
//!
//! Before the table a few keys are stored; after it the server must still answer `/health`,
//! must not have logged a panic, and `GET /kv` must hold exactly those keys plus the ones the
//! table's rows stored on purpose (rows that store something odd delete it again).

mod common;

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{Shutdown, TcpStream};
use std::time::{Duration, Instant};

use common::Walab;
use serde_json::{Value, json};

/// Small, so the limits are cheap to reach.
const MAX_VALUE_BYTES: usize = 1024;
/// What the server reads of a body: `MAX_VALUE_BYTES` plus 2 KiB for the key and framing.
const BODY_LIMIT: usize = MAX_VALUE_BYTES + 2048;
const TOKEN: &str = "s3cret-token";
/// Short, so a stalled body is given up on quickly (and still longer than the 1 s pause of
/// the slow-body row).
const BODY_TIMEOUT: Duration = Duration::from_millis(2000);
/// Low enough that a body stopped after 5 bytes meets the pause timeout first; a body
/// trickling a byte every 0.5 s falls behind it 3.1 s in (2 s of grace, then 10 bytes a second).
const MIN_BODY_RATE: u64 = 10;
const AUTH: &str = "Bearer s3cret-token";

/// One step of a hand-written exchange.
#[derive(Debug, Clone)]
enum Step {
    Send(Vec<u8>),
    Sleep(Duration),
    /// Close our write half: the server sees end of input.
    CloseWrite,
}

/// What came back.
#[derive(Debug)]
enum Outcome {
    Reply {
        status: u16,
        text: String,
        json: Value,
        elapsed: Duration,
    },
    /// The server closed (or reset) the connection without an answer.
    Closed,
    /// No answer and no close within the read timeout.
    Hung(Duration),
}

impl Outcome {
    fn status(&self) -> Option<u16> {
        match self {
            Outcome::Reply { status, .. } => Some(*status),
            Outcome::Closed | Outcome::Hung(_) => None,
        }
    }
}

/// What a row expects.
#[derive(Debug, Clone)]
enum Expect {
    /// A JSON error: this status and this `error` code, and a non-empty `detail`.
    Error(u16, &'static str),
    /// A success with this status; every field of the JSON object given must match.
    Ok(u16, Value),
    /// A success with this status whose body contains this text (for JSON that serde_json
    /// parses only as raw text: huge numbers, lone surrogates).
    OkText(u16, &'static str),
    /// A bare status from hyper, below the router (no JSON body).
    Bare(u16),
    /// A 4xx of any kind, or a closed connection; never a 5xx, never a hang.
    FourXxOrClosed,
}

#[derive(Debug, Clone)]
struct Row {
    name: &'static str,
    steps: Vec<Step>,
    expect: Expect,
    /// The reply must come within this long (it must not wait for a body we never send).
    within: Option<Duration>,
    /// What this row stores (on success): key and value.
    stores: Option<(String, Value)>,
    /// What this row deletes (on success).
    deletes: Option<String>,
}

fn row(name: &'static str, request: Vec<u8>, expect: Expect) -> Row {
    Row {
        name,
        steps: vec![Step::Send(request)],
        expect,
        within: None,
        stores: None,
        deletes: None,
    }
}

impl Row {
    fn stores(mut self, key: &str, value: Value) -> Row {
        self.stores = Some((key.to_owned(), value));
        self
    }
    fn deletes(mut self, key: &str) -> Row {
        self.deletes = Some(key.to_owned());
        self
    }
    fn within(mut self, limit: Duration) -> Row {
        self.within = Some(limit);
        self
    }
}

/// A request with a Content-Length (when it has a body or is a POST) and `Connection: close`.
fn req(method: &str, path: &str, headers: &[(&str, &str)], body: Option<&[u8]>) -> Vec<u8> {
    let mut out = format!("{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n");
    for (name, value) in headers {
        out.push_str(&format!("{name}: {value}\r\n"));
    }
    if let Some(body) = body {
        out.push_str(&format!("Content-Length: {}\r\n", body.len()));
    }
    out.push_str("\r\n");
    let mut out = out.into_bytes();
    if let Some(body) = body {
        out.extend_from_slice(body);
    }
    out
}

fn get(path: &str) -> Vec<u8> {
    req("GET", path, &[], None)
}

fn admin(method: &str, path: &str) -> Vec<u8> {
    let body = (method == "POST").then_some(&b""[..]);
    req(method, path, &[("Authorization", AUTH)], body)
}

fn post(body: impl AsRef<[u8]>) -> Vec<u8> {
    req(
        "POST",
        "/kv",
        &[("Content-Type", "application/json")],
        Some(body.as_ref()),
    )
}

fn post_kv(key: &str, value: &Value) -> Vec<u8> {
    post(json!({"key": key, "value": value}).to_string())
}

/// `POST /kv` with exactly these header lines (each ending in CRLF) and these body bytes.
fn raw_post(headers: &str, body: &str) -> Vec<u8> {
    raw(&format!(
        "POST /kv HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n{headers}\r\n{body}"
    ))
}

fn raw(text: &str) -> Vec<u8> {
    text.as_bytes().to_vec()
}

/// Chunked transfer encoding of `chunks`, with or without the terminating chunk.
fn chunked(chunks: &[&[u8]], terminate: bool) -> Vec<u8> {
    let mut out = raw_post("Transfer-Encoding: chunked\r\n", "");
    for chunk in chunks {
        out.extend_from_slice(format!("{:x}\r\n", chunk.len()).as_bytes());
        out.extend_from_slice(chunk);
        out.extend_from_slice(b"\r\n");
    }
    if terminate {
        out.extend_from_slice(b"0\r\n\r\n");
    }
    out
}

/// `depth` nested arrays.
fn nested(depth: usize) -> String {
    format!("{}{}", "[".repeat(depth), "]".repeat(depth))
}

/// Run the steps on a fresh connection. Sending happens on its own thread, so a server that
/// answers (and closes) before reading the whole request is read from, not written into.
fn exchange(port: u16, steps: &[Step]) -> Outcome {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    stream
        .set_read_timeout(Some(Duration::from_secs(15)))
        .expect("timeout");
    let mut writer = stream.try_clone().expect("clone");
    let steps = steps.to_vec();
    let started = Instant::now();
    let sender = std::thread::spawn(move || {
        for step in steps {
            match step {
                // The server may have answered and closed already: not an error here.
                Step::Send(bytes) => {
                    if writer.write_all(&bytes).is_err() {
                        return;
                    }
                }
                Step::Sleep(d) => std::thread::sleep(d),
                Step::CloseWrite => {
                    let _ = writer.shutdown(Shutdown::Write);
                }
            }
        }
    });
    let mut bytes = Vec::new();
    let mut buf = [0u8; 16 * 1024];
    loop {
        match stream.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => bytes.extend_from_slice(&buf[..n]),
            // A reset after the answer arrived still counts as the answer.
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => break,
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                return Outcome::Hung(started.elapsed());
            }
            Err(e) => panic!("reading the answer: {e} (after {:?})", started.elapsed()),
        }
    }
    let elapsed = started.elapsed();
    let _ = sender.join();
    parse(&bytes, elapsed)
}

fn parse(bytes: &[u8], elapsed: Duration) -> Outcome {
    let Some(end) = bytes.windows(4).position(|w| w == b"\r\n\r\n") else {
        assert!(bytes.is_empty(), "a partial answer: {bytes:?}");
        return Outcome::Closed;
    };
    let head = String::from_utf8_lossy(&bytes[..end]);
    let status = head
        .lines()
        .next()
        .and_then(|l| l.split(' ').nth(1))
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("bad status line in {head:?}"));
    let text = String::from_utf8_lossy(&bytes[end + 4..]).into_owned();
    let json = serde_json::from_str(&text).unwrap_or(Value::Null);
    Outcome::Reply {
        status,
        text,
        json,
        elapsed,
    }
}

/// Check `outcome` against `expect`; `Err` says what differs.
fn check(expect: &Expect, outcome: &Outcome) -> Result<(), String> {
    let (status, text, json) = match outcome {
        Outcome::Reply {
            status, text, json, ..
        } => (*status, text.as_str(), json),
        Outcome::Hung(after) => return Err(format!("no answer after {after:?}")),
        Outcome::Closed => {
            return match expect {
                Expect::FourXxOrClosed => Ok(()),
                _ => Err("the connection closed without an answer".into()),
            };
        }
    };
    let got = || format!("got {status} {}", truncate(text));
    match expect {
        Expect::Error(want, code) => {
            if status != *want || json["error"] != *code {
                return Err(format!("want {want} {code}, {}", got()));
            }
            if json["detail"].as_str().is_none_or(str::is_empty) {
                return Err(format!("no detail: {}", got()));
            }
        }
        Expect::Ok(want, fields) => {
            if status != *want {
                return Err(format!("want {want}, {}", got()));
            }
            if let Value::Object(fields) = fields {
                for (name, value) in fields {
                    if json[name] != *value {
                        return Err(format!("want {name} = {value}, {}", got()));
                    }
                }
            }
        }
        Expect::OkText(want, needle) => {
            if status != *want || !text.contains(needle) {
                return Err(format!(
                    "want {want} with {needle:?} in the body, {}",
                    got()
                ));
            }
        }
        Expect::Bare(want) => {
            if status != *want {
                return Err(format!("want {want}, {}", got()));
            }
        }
        Expect::FourXxOrClosed => {
            if !(400..500).contains(&status) {
                return Err(format!("want a 4xx or a closed connection, {}", got()));
            }
        }
    }
    Ok(())
}

fn truncate(text: &str) -> String {
    if text.len() <= 300 {
        return text.to_owned();
    }
    let mut end = 300;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}... ({} bytes)", &text[..end], text.len())
}

/// The table for one backend (`wal`, `memory` or `sled`).
fn table(backend: &str) -> Vec<Row> {
    use Expect::{Bare, Error, FourXxOrClosed, Ok, OkText};
    let key_1024 = "k".repeat(1024);
    let key_1025 = "k".repeat(1025);
    // 513 two-byte characters: 513 characters, but 1026 bytes.
    let key_1026_bytes = "\u{e9}".repeat(513);
    // A JSON string of exactly MAX_VALUE_BYTES bytes, quotes included, and one byte more.
    let value_at_limit = Value::String("v".repeat(MAX_VALUE_BYTES - 2));
    let value_over_limit = Value::String("v".repeat(MAX_VALUE_BYTES - 1));
    let deep_100k = format!(r#"{{"key":"deep","value":{}}}"#, nested(100_000));
    let chunk = vec![b'x'; BODY_LIMIT / 3 + 1];
    let slow_body = br#"{"key":"slow","value":{"arrived":"late"}}"#;

    let mut rows = vec![
        // ---- bodies that are not the expected JSON
        row("bad JSON", post("{bad"), Error(400, "invalid_json")),
        row(
            "a JSON array body",
            post("[1,2]"),
            Error(400, "invalid_json"),
        ),
        row(
            "a JSON string body",
            post(r#""s""#),
            Error(400, "invalid_json"),
        ),
        row(
            "trailing garbage after the object",
            post(r#"{"key":"k","value":1} x"#),
            Error(400, "invalid_json"),
        ),
        row(
            "a form body",
            req("POST", "/kv", &[], Some(b"key=k&value=v")),
            Error(400, "invalid_json"),
        ),
        row(
            "missing key",
            post(r#"{"value":1}"#),
            Error(400, "missing_key"),
        ),
        row(
            "missing value",
            post(r#"{"key":"k"}"#),
            Error(400, "missing_value"),
        ),
        row(
            "key is a number",
            post(r#"{"key":1,"value":1}"#),
            Error(400, "invalid_key"),
        ),
        row(
            "key is null",
            post(r#"{"key":null,"value":1}"#),
            Error(400, "invalid_key"),
        ),
        row(
            "key is an object",
            post(r#"{"key":{},"value":1}"#),
            Error(400, "invalid_key"),
        ),
        row(
            "key is an array",
            post(r#"{"key":["k"],"value":1}"#),
            Error(400, "invalid_key"),
        ),
        row(
            "a lone surrogate as the key",
            post(r#"{"key":"\ud800","value":1}"#),
            Error(400, "invalid_key"),
        ),
        row(
            "empty key",
            post(r#"{"key":"","value":1}"#),
            Error(400, "invalid_key"),
        ),
        row(
            "1025-byte key",
            post_kv(&key_1025, &json!(1)),
            Error(400, "invalid_key"),
        ),
        row(
            "513 two-byte characters (1026 bytes) as a key",
            post_kv(&key_1026_bytes, &json!(1)),
            Error(400, "invalid_key"),
        ),
        row(
            "1024-byte key is accepted",
            post_kv(&key_1024, &json!("longest")),
            Ok(200, json!({"key": key_1024, "value": "longest"})),
        )
        .stores(&key_1024, json!("longest")),
        row(
            "1024-byte key reads back by path",
            get(&format!("/kv/{key_1024}")),
            Ok(200, json!({"value": "longest"})),
        ),
        row(
            "1025-byte key in the path",
            get(&format!("/kv/{key_1025}")),
            Error(400, "invalid_key"),
        ),
        row(
            "value of exactly MAX_VALUE_BYTES is accepted",
            post_kv("at-limit", &value_at_limit),
            Ok(200, json!({"key": "at-limit"})),
        )
        .stores("at-limit", value_at_limit.clone()),
        row(
            "value one byte over MAX_VALUE_BYTES",
            post_kv("over-limit", &value_over_limit),
            Error(413, "value_too_large"),
        ),
        row(
            "Content-Length of 100 MB, body never sent: refused before reading it",
            raw_post("Content-Length: 100000000\r\n", ""),
            Error(413, "body_too_large"),
        )
        .within(Duration::from_secs(3)),
        row(
            "Content-Length of 100 MB, the first 10 KB sent: refused at once",
            {
                let mut r = raw_post("Content-Length: 100000000\r\n", "");
                r.extend_from_slice(&[b'x'; 10_000]);
                r
            },
            Error(413, "body_too_large"),
        )
        .within(Duration::from_secs(3)),
        row(
            "chunked body over the limit, never finished: refused while streaming",
            chunked(&[&chunk, &chunk, &chunk, &chunk], false),
            Error(413, "body_too_large"),
        )
        .within(Duration::from_secs(3)),
        row(
            "chunked body within the limit",
            chunked(&[br#"{"key":"chun"#, br#"ked","value":[1,"#, b"2]}"], true),
            Ok(200, json!({"key": "chunked", "value": [1, 2]})),
        )
        .stores("chunked", json!([1, 2])),
        row(
            "JSON nested 100k deep (over the body limit)",
            post(&deep_100k),
            Error(413, "body_too_large"),
        ),
        row(
            "JSON nested 100k deep, chunked",
            chunked(&[deep_100k.as_bytes()], true),
            Error(413, "body_too_large"),
        ),
        row(
            "a value nested 101 deep",
            post(format!(r#"{{"key":"deep","value":{}}}"#, nested(101))),
            Error(400, "value_too_deep"),
        ),
        row(
            "a value nested 100 deep is accepted",
            post(format!(r#"{{"key":"deep-100","value":{}}}"#, nested(100))),
            Ok(200, json!({"key": "deep-100"})),
        )
        .stores(
            "deep-100",
            serde_json::from_str(&nested(100)).expect("100 deep"),
        ),
        row(
            "brackets inside strings are not nesting",
            post(format!(
                r#"{{"key":"brackets","value":"{}"}}"#,
                "[".repeat(500)
            )),
            Ok(200, json!({"key": "brackets"})),
        )
        .stores("brackets", Value::String("[".repeat(500))),
        row(
            "invalid UTF-8 in the key",
            post(b"{\"key\":\"\xff\xfe\",\"value\":1}"),
            Error(400, "invalid_json"),
        ),
        row(
            "invalid UTF-8 in the value",
            post(b"{\"key\":\"k\",\"value\":\"\xc3\x28\"}"),
            Error(400, "invalid_json"),
        ),
        row(
            "a UTF-8 byte order mark before the JSON",
            post(b"\xef\xbb\xbf{\"key\":\"bom\",\"value\":1}"),
            Error(400, "invalid_json"),
        ),
        row(
            "a NUL byte as the body",
            post(b"\0"),
            Error(400, "invalid_json"),
        ),
        row(
            "unknown body fields are ignored",
            post(r#"{"key":"extra","value":true,"ttl":5,"x":{"y":[1]}}"#),
            Ok(200, json!({"key": "extra", "value": true})),
        )
        .stores("extra", json!(true)),
        row(
            "duplicate \"key\" fields: the last one wins",
            post(r#"{"key":"dup-a","key":"dup-b","value":1}"#),
            Ok(200, json!({"key": "dup-b"})),
        )
        .stores("dup-b", json!(1)),
        row(
            "a text/plain body is still JSON",
            {
                let body = br#"{"key":"plain","value":"p"}"#;
                req("POST", "/kv", &[("Content-Type", "text/plain")], Some(body))
            },
            Ok(200, json!({"key": "plain", "value": "p"})),
        )
        .stores("plain", json!("p")),
        // Valid JSON text that serde_json cannot turn into a `Value`: stored and served as
        // sent. Each is deleted again, but its SET stays in the WAL for /admin/wal below.
        row(
            "a huge exponent is stored as sent",
            post(r#"{"key":"huge-number","value":1e999999}"#),
            OkText(200, r#""value":1e999999"#),
        ),
        row(
            "the huge exponent reads back as sent",
            get("/kv/huge-number"),
            OkText(200, r#"{"key":"huge-number","value":1e999999}"#),
        ),
        row(
            "delete the huge exponent",
            req("DELETE", "/kv/huge-number", &[], None),
            Ok(200, json!({"deleted": true})),
        ),
        row(
            "a lone surrogate in the value is stored as sent",
            post(r#"{"key":"surrogate","value":"\ud800"}"#),
            OkText(200, r#""value":"\ud800""#),
        ),
        row(
            "delete the lone surrogate",
            req("DELETE", "/kv/surrogate", &[], None),
            Ok(200, json!({"deleted": true})),
        ),
        row("empty body", post(""), Error(400, "empty_body")),
        row(
            "whitespace body",
            post(" \r\n\t "),
            Error(400, "empty_body"),
        ),
        row(
            "POST without Content-Length or body",
            raw_post("", ""),
            Error(400, "empty_body"),
        ),
        Row {
            name: "truncated body: Content-Length 100, 8 bytes sent, write half closed",
            steps: vec![
                Step::Send(raw_post("Content-Length: 100\r\n", r#"{"key":"#)),
                Step::CloseWrite,
            ],
            expect: FourXxOrClosed,
            within: Some(Duration::from_secs(5)),
            stores: None,
            deletes: None,
        },
        Row {
            name: "a body that stops arriving: 408 after BODY_TIMEOUT_MS, not a hung connection",
            steps: vec![Step::Send({
                let mut head = raw_post(&format!("Content-Length: {}\r\n", slow_body.len()), "");
                head.extend_from_slice(&slow_body[..5]);
                head
            })],
            expect: Error(408, "body_timeout"),
            within: Some(BODY_TIMEOUT + Duration::from_secs(2)),
            stores: None,
            deletes: None,
        },
        Row {
            name: "a body that trickles a byte every 0.5 s: 408 body_too_slow once it falls behind MIN_BODY_BYTES_PER_SEC",
            steps: std::iter::once(Step::Send({
                let mut head = raw_post(&format!("Content-Length: {}\r\n", slow_body.len()), "");
                head.extend_from_slice(&slow_body[..5]);
                head
            }))
            .chain(slow_body[5..20].iter().flat_map(|b| {
                [
                    Step::Sleep(Duration::from_millis(500)),
                    Step::Send(vec![*b]),
                ]
            }))
            .collect(),
            expect: Error(408, "body_too_slow"),
            within: Some(Duration::from_secs(5)),
            stores: None,
            deletes: None,
        },
        Row {
            name: "slow body: 5 bytes, a 1 s pause, the rest",
            steps: vec![
                Step::Send({
                    let mut head =
                        raw_post(&format!("Content-Length: {}\r\n", slow_body.len()), "");
                    head.extend_from_slice(&slow_body[..5]);
                    head
                }),
                Step::Sleep(Duration::from_secs(1)),
                Step::Send(slow_body[5..].to_vec()),
            ],
            expect: Ok(200, json!({"key": "slow", "value": {"arrived": "late"}})),
            within: None,
            stores: Some(("slow".into(), json!({"arrived": "late"}))),
            deletes: None,
        },
        row(
            "both Content-Length and Transfer-Encoding: chunked wins",
            raw_post(
                "Content-Length: 5\r\nTransfer-Encoding: chunked\r\n",
                "0\r\n\r\n",
            ),
            Error(400, "empty_body"),
        ),
        row(
            "two different Content-Lengths",
            raw_post("Content-Length: 5\r\nContent-Length: 6\r\n", "abcdef"),
            Bare(400),
        ),
        row(
            "negative Content-Length",
            raw_post("Content-Length: -1\r\n", ""),
            Bare(400),
        ),
        row(
            "a chunk size that is not hex",
            raw_post("Transfer-Encoding: chunked\r\n", "zz\r\nabc\r\n0\r\n\r\n"),
            Error(400, "invalid_json"),
        ),
        // ---- paths
        row(
            "percent-encoded 0xFF in the path",
            get("/kv/%FF"),
            Error(400, "invalid_path"),
        ),
        row(
            "Latin-1 é (%E9) in the path",
            get("/kv/caf%E9"),
            Error(400, "invalid_path"),
        ),
        row(
            "a lone % is the key \"%\"",
            get("/kv/%"),
            Error(404, "not_found"),
        ),
        row(
            "%zz is the key \"%zz\"",
            get("/kv/%zz"),
            Error(404, "not_found"),
        ),
        row(
            "a raw 0xFF byte in the request line",
            b"GET /kv/\xff HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n".to_vec(),
            Bare(400),
        ),
        row(
            "a%2Fb is the key \"a/b\": absent",
            get("/kv/a%2Fb"),
            Error(404, "not_found"),
        ),
        row(
            "%2E%2E is the key \"..\": absent",
            get("/kv/%2E%2E"),
            Error(404, "not_found"),
        ),
        row(
            "..%2F..%2Fetc%2Fpasswd is a key: absent",
            get("/kv/..%2F..%2Fetc%2Fpasswd"),
            Error(404, "not_found"),
        ),
        row(
            "a literal /kv/../health is the key \"../health\", not /health",
            get("/kv/../health"),
            Error(404, "not_found"),
        ),
        row(
            "DELETE of an absent traversal key",
            req("DELETE", "/kv/..%2F..%2Fetc%2Fpasswd", &[], None),
            Error(404, "not_found"),
        ),
        row(
            "store the key \"a/b\"",
            post_kv("a/b", &json!("slash")),
            Ok(200, json!({"key": "a/b"})),
        )
        .stores("a/b", json!("slash")),
        row(
            "a%2Fb reads \"a/b\"",
            get("/kv/a%2Fb"),
            Ok(200, json!({"key": "a/b", "value": "slash"})),
        ),
        row(
            "/kv/a/b reads \"a/b\" too",
            get("/kv/a/b"),
            Ok(200, json!({"key": "a/b", "value": "slash"})),
        ),
        row(
            "store the key \"..\"",
            post_kv("..", &json!("dots")),
            Ok(200, json!({"key": ".."})),
        )
        .stores("..", json!("dots")),
        row(
            "%2E%2E reads \"..\"",
            get("/kv/%2E%2E"),
            Ok(200, json!({"key": "..", "value": "dots"})),
        ),
        row(
            "DELETE /kv/%2E%2E deletes \"..\"",
            req("DELETE", "/kv/%2E%2E", &[], None),
            Ok(200, json!({"key": "..", "deleted": true})),
        )
        .deletes(".."),
        row(
            "store the key \"../../etc/passwd\"",
            post_kv("../../etc/passwd", &json!("not a file")),
            Ok(200, json!({"key": "../../etc/passwd"})),
        )
        .stores("../../etc/passwd", json!("not a file")),
        row(
            "..%2F..%2Fetc%2Fpasswd reads it back",
            get("/kv/..%2F..%2Fetc%2Fpasswd"),
            Ok(
                200,
                json!({"key": "../../etc/passwd", "value": "not a file"}),
            ),
        ),
        row(
            "store the key \"%\"",
            post_kv("%", &json!("percent")),
            Ok(200, json!({"key": "%"})),
        )
        .stores("%", json!("percent")),
        row(
            "%25 reads \"%\"",
            get("/kv/%25"),
            Ok(200, json!({"key": "%", "value": "percent"})),
        ),
        row("/kv/ has no key", get("/kv/"), Error(404, "not_found")),
        row(
            "a 100 KB path",
            get(&format!("/kv/{}", "a".repeat(100_000))),
            Bare(414),
        ),
        // ---- routes and methods
        row("unknown path", get("/nope"), Error(404, "not_found")),
        row(
            "unknown path under /admin, no token",
            get("/admin/nope"),
            Error(404, "not_found"),
        ),
        row(
            "PUT /kv",
            req("PUT", "/kv", &[], Some(b"{}")),
            Error(405, "method_not_allowed"),
        ),
        row(
            "DELETE /kv",
            req("DELETE", "/kv", &[], None),
            Error(405, "method_not_allowed"),
        ),
        row(
            "PATCH /kv/k",
            req("PATCH", "/kv/k", &[], Some(b"{}")),
            Error(405, "method_not_allowed"),
        ),
        row(
            "POST /kv/k",
            req("POST", "/kv/k", &[], Some(b"{}")),
            Error(405, "method_not_allowed"),
        ),
        row(
            "GET /admin/crash",
            admin("GET", "/admin/crash"),
            Error(405, "method_not_allowed"),
        ),
        row(
            "POST /health",
            req("POST", "/health", &[], Some(b"")),
            Error(405, "method_not_allowed"),
        ),
        row(
            "an extension method",
            req("BREW", "/kv", &[], None),
            Error(405, "method_not_allowed"),
        ),
        row(
            "OPTIONS *",
            req("OPTIONS", "*", &[], None),
            Error(404, "not_found"),
        ),
        row(
            "HEAD /health: the GET route without a body",
            req("HEAD", "/health", &[], None),
            Ok(200, Value::Null),
        ),
        row(
            "HTTP/0.9-style request line",
            raw("GET /health\r\n\r\n"),
            Bare(400),
        ),
        row(
            "binary garbage",
            b"\x00\x01\x02\xff garbage\r\n\r\n".to_vec(),
            Bare(400),
        ),
        // ---- headers
        row(
            "a 20 KB header is within MAX_HEADER_BYTES: served",
            req("GET", "/health", &[("X-Big", &"a".repeat(20_000))], None),
            Ok(200, json!({"status": "ok"})),
        ),
        row(
            "a 100 KB header is over MAX_HEADER_BYTES: a JSON 431",
            req("GET", "/health", &[("X-Big", &"a".repeat(100_000))], None),
            Error(431, "headers_too_large"),
        ),
        row(
            "a 1 MB header",
            req("GET", "/health", &[("X-Big", &"a".repeat(1_000_000))], None),
            Bare(431),
        ),
        row(
            "1000 headers",
            {
                let names: Vec<String> = (0..1000).map(|i| format!("X-H{i}")).collect();
                let headers: Vec<(&str, &str)> = names.iter().map(|n| (n.as_str(), "v")).collect();
                req("GET", "/health", &headers, None)
            },
            Bare(431),
        ),
        // ---- query parameters
        row(
            "unknown query parameters are ignored",
            get("/kv?color=blue&x"),
            Ok(200, Value::Null),
        ),
        row(
            "?limit=-1",
            get("/kv?limit=-1"),
            Error(400, "invalid_query"),
        ),
        row(
            "?limit=abc",
            get("/kv?limit=abc"),
            Error(400, "invalid_query"),
        ),
        row(
            "?limit= over u64",
            get("/kv?limit=99999999999999999999999"),
            Error(400, "invalid_query"),
        ),
        row("?limit=0", get("/kv?limit=0"), Ok(200, json!({"count": 0}))),
        row(
            "?prefix=%FF decodes lossily and matches nothing",
            get("/kv?prefix=%FF"),
            Ok(200, json!({"count": 0})),
        ),
        row(
            "/admin/wal?limit=-1",
            admin("GET", "/admin/wal?limit=-1"),
            Error(400, "invalid_query"),
        ),
        row(
            "/admin/crash?mode=meteor",
            admin("POST", "/admin/crash?mode=meteor"),
            Error(400, "invalid_query"),
        ),
        // ---- the admin token
        row("no token", get("/admin/stats"), Error(401, "unauthorized")),
        row(
            "a wrong token",
            req(
                "GET",
                "/admin/stats",
                &[("Authorization", "Bearer nope")],
                None,
            ),
            Error(401, "unauthorized"),
        ),
        row(
            "the token with a lowercase scheme",
            req(
                "GET",
                "/admin/stats",
                &[("Authorization", &format!("bearer {TOKEN}"))],
                None,
            ),
            Ok(200, json!({"restarts": 0})),
        ),
        row(
            "a token one byte short",
            req(
                "GET",
                "/admin/stats",
                &[("Authorization", &AUTH[..AUTH.len() - 1])],
                None,
            ),
            Error(401, "unauthorized"),
        ),
        // ---- browsers: other origins, DNS rebinding
        row(
            "a text/plain POST from a page on another origin",
            req(
                "POST",
                "/kv",
                &[
                    ("Origin", "http://evil.example"),
                    ("Content-Type", "text/plain"),
                ],
                Some(br#"{"key":"from-evil","value":1}"#),
            ),
            Error(403, "cross_origin"),
        ),
        row(
            "a clear from a page on another origin",
            req(
                "POST",
                "/admin/clear",
                &[("Origin", "http://evil.example"), ("Authorization", AUTH)],
                Some(b""),
            ),
            Error(403, "cross_origin"),
        ),
        row(
            "a crash from a sandboxed page (Origin: null)",
            req(
                "POST",
                "/admin/crash",
                &[("Origin", "null"), ("Authorization", AUTH)],
                Some(b""),
            ),
            Error(403, "cross_origin"),
        ),
        row(
            "a DELETE from the server's own origin",
            req(
                "DELETE",
                "/kv/no-such-key",
                &[("Origin", "http://127.0.0.1")],
                None,
            ),
            Error(404, "not_found"),
        ),
        row(
            "a Host that is not a loopback name (DNS rebinding)",
            raw("GET /kv HTTP/1.1\r\nHost: evil.example:8001\r\nConnection: close\r\n\r\n"),
            Error(421, "misdirected_host"),
        ),
        row(
            "Host: localhost",
            raw("GET /health HTTP/1.1\r\nHost: localhost:8001\r\nConnection: close\r\n\r\n"),
            Ok(200, json!({"status": "ok"})),
        ),
        row(
            "the token as Basic credentials",
            req(
                "GET",
                "/admin/stats",
                &[("Authorization", &format!("Basic {TOKEN}"))],
                None,
            ),
            Error(401, "unauthorized"),
        ),
        row(
            "the token plus a suffix",
            req(
                "GET",
                "/admin/stats",
                &[("Authorization", &format!("{AUTH}x"))],
                None,
            ),
            Error(401, "unauthorized"),
        ),
        row(
            "the token in the query string",
            get(&format!("/admin/stats?token={TOKEN}")),
            Error(401, "unauthorized"),
        ),
        row(
            "crash with a bad mode and no token: the token is checked first",
            req("POST", "/admin/crash?mode=meteor", &[], Some(b"")),
            Error(401, "unauthorized"),
        ),
        row(
            "clear with no token",
            req("POST", "/admin/clear", &[], Some(b"")),
            Error(401, "unauthorized"),
        ),
        row(
            "the right token",
            admin("GET", "/admin/stats"),
            Ok(200, json!({"backend": backend})),
        ),
        row(
            "/admin/wal with the right token",
            admin("GET", "/admin/wal"),
            if backend == "wal" {
                // It lists the huge exponent's SET, as sent.
                OkText(200, r#""key":"huge-number","operation":"SET""#)
            } else {
                Ok(200, json!({"wal_enabled": false, "count": 0}))
            },
        ),
    ];
    match backend {
        "memory" => {
            rows.push(row(
                "checkpoint on memory",
                admin("POST", "/admin/checkpoint"),
                Error(400, "wal_not_enabled"),
            ));
            rows.push(row(
                "power-loss crash on memory",
                admin("POST", "/admin/crash?mode=power-loss"),
                Error(400, "unsupported"),
            ));
        }
        "sled" => {
            rows.push(row(
                "power-loss crash on sled",
                admin("POST", "/admin/crash?mode=power-loss"),
                Error(400, "unsupported"),
            ));
        }
        _ => {}
    }
    rows
}

/// `GET /kv` as a map.
fn listing(port: u16) -> BTreeMap<String, Value> {
    let Outcome::Reply {
        status, json, text, ..
    } = exchange(port, &[Step::Send(get("/kv"))])
    else {
        panic!("GET /kv: connection closed");
    };
    assert_eq!(status, 200, "GET /kv: {text}");
    assert_eq!(json["truncated"], Value::Null, "{text}");
    json["data"]
        .as_object()
        .unwrap_or_else(|| panic!("GET /kv: {text}"))
        .iter()
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect()
}

fn run_table(backend: &str) {
    let max = MAX_VALUE_BYTES.to_string();
    let body_timeout = BODY_TIMEOUT.as_millis().to_string();
    let (server, port, _dir) = Walab::serve(
        backend,
        &[
            ("MAX_VALUE_BYTES", &max),
            ("ADMIN_TOKEN", TOKEN),
            ("BODY_TIMEOUT_MS", &body_timeout),
            ("MIN_BODY_BYTES_PER_SEC", &MIN_BODY_RATE.to_string()),
        ],
    );

    // What is there before the table.
    let seeds = [
        ("seed-1", json!({"name": "first", "n": [1, 2, 3]})),
        ("seed-2", json!("a string")),
        ("seed-3", json!(null)),
    ];
    for (key, value) in &seeds {
        let outcome = exchange(port, &[Step::Send(post_kv(key, value))]);
        assert_eq!(
            outcome.status(),
            Some(200),
            "{backend}: seeding {key}: {outcome:?}"
        );
    }
    let before = listing(port);
    assert_eq!(before.len(), seeds.len(), "{before:?}");
    let mut expected = before.clone();

    let rows = table(backend);
    assert!(rows.len() >= 40, "the table has {} rows", rows.len());
    let mut failures = Vec::new();
    for row in &rows {
        let outcome = exchange(port, &row.steps);
        let mut verdict = check(&row.expect, &outcome);
        if let (Some(limit), Outcome::Reply { elapsed, .. }) = (row.within, &outcome)
            && *elapsed > limit
        {
            verdict = Err(format!("answered after {elapsed:?}, more than {limit:?}"));
        }
        if let Some(status) = outcome.status()
            && status >= 500
        {
            verdict = Err(format!("a {status}: {outcome:?}"));
        }
        match verdict {
            Result::Ok(()) => {
                if let Some((key, value)) = &row.stores {
                    expected.insert(key.clone(), value.clone());
                }
                if let Some(key) = &row.deletes {
                    expected.remove(key);
                }
            }
            Err(why) => failures.push(format!("{backend}: {}: {why}", row.name)),
        }
        // The server survived the row.
        let health = exchange(port, &[Step::Send(get("/health"))]);
        assert_eq!(
            health.status(),
            Some(200),
            "{backend}: /health after row {:?}: {health:?}\n{}",
            row.name,
            server.output()
        );
    }
    assert!(
        failures.is_empty(),
        "{} of {} rows failed:\n{}",
        failures.len(),
        rows.len(),
        failures.join("\n")
    );

    let after = listing(port);
    assert_eq!(
        after, expected,
        "{backend}: GET /kv after the table is not what was there plus what the rows stored"
    );
    for (key, value) in &seeds {
        assert_eq!(
            after.get(*key),
            Some(value),
            "{backend}: seed {key} changed"
        );
    }
    let output = server.output();
    assert!(
        !output.contains("panicked"),
        "{backend}: the server logged a panic:\n{output}"
    );
    println!("{backend}: {} rows, all as expected", rows.len());
}

/// JSON nested 100k deep within the default body limit (1 MiB): refused with a 400, not
/// parsed recursively, not stored.
#[test]
fn json_nested_100k_deep_is_a_400() {
    for backend in ["wal", "memory", "sled"] {
        let (server, port, _dir) = Walab::serve(backend, &[]);
        for depth in [100_000, 500_000] {
            let arrays = format!(r#"{{"key":"deep","value":{}}}"#, nested(depth));
            let objects = format!(
                r#"{{"key":"deep","value":{}1{}}}"#,
                r#"{"a":"#.repeat(depth / 5),
                "}".repeat(depth / 5)
            );
            for body in [arrays, objects] {
                let outcome = exchange(port, &[Step::Send(post(&body))]);
                let verdict = check(&Expect::Error(400, "value_too_deep"), &outcome);
                assert!(verdict.is_ok(), "{backend}, {depth} deep: {verdict:?}");
            }
        }
        assert_eq!(listing(port).len(), 0, "{backend}: nothing was stored");
        assert!(!server.output().contains("panicked"), "{}", server.output());
    }
}

#[test]
fn hostile_input_wal() {
    run_table("wal");
}

#[test]
fn hostile_input_memory() {
    run_table("memory");
}

#[test]
fn hostile_input_sled() {
    run_table("sled");
}
