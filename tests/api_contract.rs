//! The HTTP contract of API.md, endpoint by endpoint, for every backend, through
//! `walab::app(state)` and `oneshot` (no sockets).

use axum::Router;
use axum::body::Body;
use axum::http::{Request, StatusCode};
use http_body_util::BodyExt;
use serde_json::{Value, json};
use tempfile::TempDir;
use tower::ServiceExt;
use walab::{AppState, Config};
use walab_store::{BackendKind, open_backend};

/// The backends this file runs against.
// TODO(engine): add BackendKind::Wal once walab_wal::Engine is implemented.
const KINDS: [BackendKind; 2] = [BackendKind::Memory, BackendKind::Sled];

/// Small, so the size limits are cheap to test.
const MAX_VALUE: usize = 64;

struct Server {
    app: Router,
    kind: BackendKind,
    _dir: TempDir,
}

fn config(kind: BackendKind, dir: &TempDir, token: Option<&str>) -> Config {
    let token = token.map(str::to_owned);
    let mut config = Config::from_lookup(|name| match name {
        "KV_BACKEND" => Some(kind.as_str().to_owned()),
        "ADMIN_TOKEN" => token.clone(),
        _ => None,
    })
    .expect("default config");
    config.data_dir = dir.path().to_path_buf();
    config.max_value_bytes = MAX_VALUE;
    config
}

fn server_with(kind: BackendKind, token: Option<&str>) -> Server {
    let dir = TempDir::new().expect("temp dir");
    let config = config(kind, &dir, token);
    let backend = open_backend(&config.backend_config()).expect("open backend");
    let state = AppState::with_backend(config, backend).expect("state");
    Server {
        app: walab::app(state),
        kind,
        _dir: dir,
    }
}

fn server(kind: BackendKind) -> Server {
    server_with(kind, None)
}

struct Reply {
    status: StatusCode,
    json: Value,
    content_type: String,
    text: String,
}

impl Server {
    async fn call(
        &self,
        method: &str,
        uri: &str,
        body: Option<&str>,
        headers: &[(&str, &str)],
    ) -> Reply {
        let mut req = Request::builder().method(method).uri(uri);
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        let req = req
            .body(body.map_or_else(Body::empty, |b| Body::from(b.to_owned())))
            .expect("request");
        let res = self.app.clone().oneshot(req).await.expect("infallible");
        let status = res.status();
        let content_type = res
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_owned();
        let bytes = res.into_body().collect().await.expect("body").to_bytes();
        let text = String::from_utf8_lossy(&bytes).into_owned();
        let json = serde_json::from_str(&text).unwrap_or(Value::Null);
        Reply {
            status,
            json,
            content_type,
            text,
        }
    }

    async fn get(&self, uri: &str) -> Reply {
        self.call("GET", uri, None, &[]).await
    }

    async fn post(&self, uri: &str, body: &str) -> Reply {
        self.call(
            "POST",
            uri,
            Some(body),
            &[("content-type", "application/json")],
        )
        .await
    }
}

/// An error reply: the status, the code, and a non-empty detail.
fn assert_error(reply: &Reply, status: u16, code: &str) {
    assert_eq!(reply.status.as_u16(), status, "{}", reply.text);
    assert_eq!(reply.json["error"], code, "{}", reply.text);
    let detail = reply.json["detail"].as_str().unwrap_or("");
    assert!(!detail.is_empty(), "error without detail: {}", reply.text);
    assert!(
        reply.content_type.starts_with("application/json"),
        "{}",
        reply.content_type
    );
}

#[tokio::test]
async fn health_names_the_backend() {
    for kind in KINDS {
        let s = server(kind);
        let r = s.get("/health").await;
        assert_eq!(r.status, StatusCode::OK);
        assert_eq!(
            r.json,
            json!({"status": "ok", "service": format!("walab-{kind}"), "backend": kind.as_str(), "wal_enabled": false})
        );
    }
}

#[tokio::test]
async fn a_value_round_trips_exactly_as_sent() {
    for kind in KINDS {
        let s = server(kind);
        let body = r#"{"key": "user-1", "value": {"name": "User 1", "balance": 100}}"#;
        let r = s.post("/kv", body).await;
        assert_eq!(r.status, StatusCode::OK, "{kind}: {}", r.text);
        assert_eq!(r.json["key"], "user-1");
        assert_eq!(r.json["value"], json!({"name": "User 1", "balance": 100}));
        assert_eq!(r.json["wal_enabled"], false);
        assert!(
            r.json.get("sequence").is_none(),
            "{kind} has no log: {}",
            r.text
        );

        let r = s.get("/kv/user-1").await;
        assert_eq!(r.status, StatusCode::OK);
        assert_eq!(
            r.text,
            r#"{"key":"user-1","value":{"name": "User 1", "balance": 100}}"#
        );

        // Overwrite, with null as the value: null is a JSON value, not a missing one.
        let r = s.post("/kv", r#"{"key":"user-1","value":null}"#).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text);
        assert_eq!(
            s.get("/kv/user-1").await.json,
            json!({"key": "user-1", "value": null})
        );
    }
}

#[tokio::test]
async fn the_body_is_json_whatever_the_content_type() {
    for kind in KINDS {
        let s = server(kind);
        for headers in [
            &[][..],
            &[("content-type", "application/x-www-form-urlencoded")][..],
            &[("content-type", "text/plain")][..],
        ] {
            let r = s
                .call("POST", "/kv", Some(r#"{"key":"k","value":"v"}"#), headers)
                .await;
            assert_eq!(r.status, StatusCode::OK, "{kind} {headers:?}: {}", r.text);
        }
        assert_eq!(s.get("/kv/k").await.json["value"], "v");
    }
}

#[tokio::test]
async fn missing_keys_are_404_with_the_key_in_the_detail() {
    for kind in KINDS {
        let s = server(kind);
        let r = s.get("/kv/nope").await;
        assert_error(&r, 404, "not_found");
        assert_eq!(r.json["detail"], "Key 'nope' not found");
        assert_error(
            &s.call("DELETE", "/kv/nope", None, &[]).await,
            404,
            "not_found",
        );
    }
}

#[tokio::test]
async fn delete_removes_the_key_once() {
    for kind in KINDS {
        let s = server(kind);
        s.post("/kv", r#"{"key":"k","value":1}"#).await;
        let r = s.call("DELETE", "/kv/k", None, &[]).await;
        assert_eq!(r.status, StatusCode::OK);
        assert_eq!(r.json, json!({"key": "k", "deleted": true}));
        assert_eq!(s.get("/kv/k").await.status, StatusCode::NOT_FOUND);
        assert_eq!(
            s.call("DELETE", "/kv/k", None, &[]).await.status,
            StatusCode::NOT_FOUND
        );
    }
}

#[tokio::test]
async fn list_returns_everything_and_pages_on_request() {
    for kind in KINDS {
        let s = server(kind);
        let r = s.get("/kv").await;
        assert_eq!(r.json, json!({"data": {}, "count": 0}));
        for (k, v) in [("a1", "1"), ("a2", "[2]"), ("b1", r#"{"x":3}"#)] {
            s.post("/kv", &format!(r#"{{"key":"{k}","value":{v}}}"#))
                .await;
        }
        let r = s.get("/kv").await;
        assert_eq!(
            r.json,
            json!({"data": {"a1": 1, "a2": [2], "b1": {"x": 3}}, "count": 3})
        );
        let r = s.get("/kv?prefix=a").await;
        assert_eq!(r.json, json!({"data": {"a1": 1, "a2": [2]}, "count": 2}));
        let r = s.get("/kv?limit=1").await;
        assert_eq!(
            r.json,
            json!({"data": {"a1": 1}, "count": 1, "truncated": true})
        );
        assert_error(&s.get("/kv?limit=many").await, 400, "invalid_query");
    }
}

#[tokio::test]
async fn bad_bodies_are_4xx_with_a_code() {
    let big_value = format!(r#"{{"key":"k","value":"{}"}}"#, "x".repeat(MAX_VALUE));
    let big_body = format!(
        r#"{{"key":"k","value":"{}"}}"#,
        "x".repeat(MAX_VALUE + 4096)
    );
    let long_key = format!(r#"{{"key":"{}","value":1}}"#, "k".repeat(1025));
    let cases: Vec<(&str, u16, &str)> = vec![
        ("", 400, "empty_body"),
        ("{", 400, "invalid_json"),
        ("key=k&value=v", 400, "invalid_json"),
        ("[1,2]", 400, "invalid_json"),
        (r#"{"key":"k","value":1} trailing"#, 400, "invalid_json"),
        (r#"{"value":1}"#, 400, "missing_key"),
        (r#"{"key":1,"value":1}"#, 400, "invalid_key"),
        (r#"{"key":null,"value":1}"#, 400, "invalid_key"),
        (r#"{"key":"","value":1}"#, 400, "invalid_key"),
        (&long_key, 400, "invalid_key"),
        (r#"{"key":"k"}"#, 400, "missing_value"),
        (&big_value, 413, "value_too_large"),
        (&big_body, 413, "body_too_large"),
    ];
    for kind in KINDS {
        let s = server(kind);
        for (body, status, code) in &cases {
            let r = s.post("/kv", body).await;
            assert_error(&r, *status, code);
        }
        assert_eq!(
            s.get("/kv").await.json["count"],
            0,
            "{kind}: nothing was stored"
        );
    }
}

#[tokio::test]
async fn any_key_post_accepts_can_be_read_back_by_path() {
    for kind in KINDS {
        let s = server(kind);
        let key = "a b/é?#%";
        let body = json!({"key": key, "value": "v"}).to_string();
        assert_eq!(s.post("/kv", &body).await.status, StatusCode::OK);
        let r = s.get("/kv/a%20b%2F%C3%A9%3F%23%25").await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text);
        assert_eq!(r.json["key"], key);
        let longest = "k".repeat(1024);
        let body = json!({"key": longest, "value": 1}).to_string();
        assert_eq!(s.post("/kv", &body).await.status, StatusCode::OK);
        assert_eq!(
            s.get(&format!("/kv/{longest}")).await.status,
            StatusCode::OK
        );
        assert_error(&s.get(&format!("/kv/{longest}k")).await, 400, "invalid_key");
        assert_error(&s.get("/kv/a%FF").await, 400, "invalid_path");
    }
}

#[tokio::test]
async fn unknown_routes_and_methods_answer_json() {
    let s = server(BackendKind::Memory);
    let r = s.get("/nope").await;
    assert_error(&r, 404, "not_found");
    assert!(
        r.json["detail"]
            .as_str()
            .unwrap_or("")
            .contains("GET /nope"),
        "{}",
        r.text
    );
    assert_error(&s.get("/admin/nope").await, 404, "not_found");
    assert_error(
        &s.call("PUT", "/kv", Some("{}"), &[]).await,
        405,
        "method_not_allowed",
    );
    assert_error(
        &s.call("POST", "/health", None, &[]).await,
        405,
        "method_not_allowed",
    );
    assert_error(&s.get("/admin/crash").await, 405, "method_not_allowed");
}

#[tokio::test]
async fn stats_have_the_documented_fields() {
    for kind in KINDS {
        let s = server(kind);
        s.post("/kv", r#"{"key":"k","value":1}"#).await;
        let r = s.get("/admin/stats").await;
        assert_eq!(r.status, StatusCode::OK);
        let j = &r.json;
        assert_eq!(j["item_count"], 1, "{}", r.text);
        assert_eq!(j["backend"], kind.as_str());
        assert_eq!(j["wal_enabled"], false);
        assert_eq!(j["recovered_entries"], 0);
        assert_eq!(j["restarts"], 0);
        assert_eq!(j["pid"], std::process::id());
        assert!(j["uptime_seconds"].is_number());
        assert!(
            j["durability"]["survives_process_crash"].is_boolean(),
            "{}",
            r.text
        );
        assert!(j["durability"]["summary"].is_string());
        if s.kind == BackendKind::Sled {
            assert_eq!(j["sled_flush"], "background");
            assert!(j["size_on_disk_bytes"].is_number());
        }
    }
}

#[tokio::test]
async fn backends_without_a_log_show_an_empty_wal() {
    for kind in KINDS {
        let s = server(kind);
        s.post("/kv", r#"{"key":"k","value":1}"#).await;
        let r = s.get("/admin/wal?limit=10").await;
        assert_eq!(
            r.json,
            json!({"wal_enabled": false, "entries": [], "count": 0, "total": 0})
        );
        assert_error(&s.get("/admin/wal?limit=-1").await, 400, "invalid_query");
    }
}

#[tokio::test]
async fn checkpoint_is_refused_by_memory_and_is_a_flush_on_sled() {
    let r = server(BackendKind::Memory)
        .post("/admin/checkpoint", "")
        .await;
    assert_error(&r, 400, "wal_not_enabled");
    assert!(
        r.json["detail"]
            .as_str()
            .unwrap_or("")
            .contains("WAL is not enabled")
    );
    let r = server(BackendKind::Sled)
        .post("/admin/checkpoint", "")
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.json["status"], "checkpoint created");
    assert_eq!(r.json["entries_truncated"], 0);
}

#[tokio::test]
async fn clear_empties_the_store() {
    for kind in KINDS {
        let s = server(kind);
        for i in 0..3 {
            s.post("/kv", &format!(r#"{{"key":"k{i}","value":{i}}}"#))
                .await;
        }
        let r = s.post("/admin/clear", "").await;
        assert_eq!(r.json, json!({"status": "cleared", "items": 0}));
        assert_eq!(s.get("/kv").await.json["count"], 0);
        assert_eq!(s.get("/admin/stats").await.json["item_count"], 0);
    }
}

/// The happy path of /admin/crash kills the process, so it is tested in tests/runbook.rs.
#[tokio::test]
async fn crash_rejects_what_it_cannot_do_without_crashing() {
    for kind in KINDS {
        let s = server(kind);
        assert_error(
            &s.post("/admin/crash?mode=power-loss", "").await,
            400,
            "unsupported",
        );
        assert_error(
            &s.post("/admin/crash?mode=meteor", "").await,
            400,
            "invalid_query",
        );
    }
}

#[tokio::test]
async fn admin_needs_the_token_when_one_is_set() {
    let s = server_with(BackendKind::Memory, Some("s3cret"));
    let r = s.get("/admin/stats").await;
    assert_error(&r, 401, "unauthorized");
    assert_error(
        &s.call(
            "GET",
            "/admin/stats",
            None,
            &[("authorization", "Bearer nope")],
        )
        .await,
        401,
        "unauthorized",
    );
    assert_error(
        &s.call("GET", "/admin/stats", None, &[("authorization", "s3cret")])
            .await,
        401,
        "unauthorized",
    );
    let ok = s
        .call(
            "GET",
            "/admin/stats",
            None,
            &[("authorization", "Bearer s3cret")],
        )
        .await;
    assert_eq!(ok.status, StatusCode::OK);
    assert_error(&s.post("/admin/clear", "").await, 401, "unauthorized");
    // The token guards /admin only.
    assert_eq!(
        s.post("/kv", r#"{"key":"k","value":1}"#).await.status,
        StatusCode::OK
    );
    assert_eq!(s.get("/health").await.status, StatusCode::OK);
}

#[tokio::test]
async fn everything_but_health_is_503_while_recovering() {
    let dir = TempDir::new().expect("temp dir");
    let state = AppState::new(config(BackendKind::Memory, &dir, None)).expect("state");
    let s = Server {
        app: walab::app(state.clone()),
        kind: BackendKind::Memory,
        _dir: dir,
    };
    let r = s.get("/health").await;
    assert_eq!(r.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(r.json["status"], "recovering");
    assert_eq!(r.json["backend"], "memory");
    assert_error(&s.get("/kv").await, 503, "recovering");
    assert_error(&s.get("/kv/k").await, 503, "recovering");
    assert_error(
        &s.post("/kv", r#"{"key":"k","value":1}"#).await,
        503,
        "recovering",
    );
    assert_error(&s.get("/admin/stats").await, 503, "recovering");
    assert_eq!(s.get("/metrics").await.status, StatusCode::OK);

    state.open_backend().await.expect("open memory");
    assert_eq!(s.get("/health").await.status, StatusCode::OK);
    assert_eq!(
        s.post("/kv", r#"{"key":"k","value":1}"#).await.status,
        StatusCode::OK
    );
}

#[tokio::test]
async fn metrics_are_labelled_by_route_and_backend() {
    for kind in KINDS {
        let s = server(kind);
        s.post("/kv", r#"{"key":"k","value":1}"#).await;
        s.get("/kv/k").await;
        s.get("/kv/other").await;
        s.get("/nowhere").await;
        let r = s.get("/metrics").await;
        assert_eq!(r.status, StatusCode::OK);
        assert_eq!(r.content_type, "text/plain; version=0.0.4; charset=utf-8");
        let t = &r.text;
        let b = format!(r#"backend="{}""#, kind.as_str());
        let b = b.as_str();
        let samples: [(&str, &[&str], &str); 7] = [
            (
                "walab_http_requests_total",
                &[b, r#"method="POST""#, r#"route="/kv""#, r#"status="200""#],
                "1",
            ),
            (
                "walab_http_requests_total",
                &[
                    b,
                    r#"method="GET""#,
                    r#"route="/kv/{*key}""#,
                    r#"status="404""#,
                ],
                "1",
            ),
            (
                "walab_http_requests_total",
                &[
                    b,
                    r#"method="GET""#,
                    r#"route="unmatched""#,
                    r#"status="404""#,
                ],
                "1",
            ),
            (
                "walab_store_operation_duration_seconds_count",
                &[b, r#"operation="put""#],
                "1",
            ),
            ("walab_items", &[b], "1"),
            ("walab_process_restarts", &[b], "0"),
            ("walab_recovered_entries", &[b], "0"),
        ];
        for (name, labels, value) in samples {
            assert!(
                has_sample(t, name, labels, value),
                "{kind}: no {name}{labels:?} {value} in\n{t}"
            );
        }
        assert!(t.contains(r#"le="0.00005""#), "sub-millisecond buckets");
    }
}

/// Whether the exposition has a `name{...} value` line carrying every label (in any order).
fn has_sample(text: &str, name: &str, labels: &[&str], value: &str) -> bool {
    text.lines().any(|line| {
        line.strip_prefix(name).is_some_and(|rest| {
            rest.starts_with('{')
                && rest.ends_with(&format!("}} {value}"))
                && labels.iter().all(|l| rest.contains(l))
        })
    })
}

#[tokio::test]
async fn no_input_makes_a_500() {
    let bodies = [
        "\u{0}",
        "{\"key\":\"\u{0}\",\"value\":1}",
        "{\"key\":\"k\",\"value\":1e999}",
        "nul",
        "\"s\"",
        "{}",
        "{\"key\":{},\"value\":[]}",
    ];
    let paths = [
        "/kv/%",
        "/kv/%zz",
        "/kv//",
        "/kv/%00",
        "/admin/wal?limit=99999999999999999999999",
        "/kv?prefix=%FF",
    ];
    for kind in KINDS {
        let s = server(kind);
        for body in bodies {
            let r = s.post("/kv", body).await;
            assert!(r.status.as_u16() < 500, "{kind} {body:?}: {}", r.text);
        }
        for path in paths {
            for method in ["GET", "DELETE", "POST"] {
                let r = s.call(method, path, None, &[]).await;
                assert!(
                    r.status.as_u16() < 500,
                    "{kind} {method} {path}: {} {}",
                    r.status,
                    r.text
                );
            }
        }
    }
}
