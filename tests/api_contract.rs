//! The HTTP contract (docs/api.md, `GET /openapi.json`) for the key-value endpoints
//! and routing, for every backend, through `walab::app(state)` and `oneshot`.

mod common;

use axum::http::StatusCode;
use common::oneshot::{MAX_VALUE, assert_error, kinds, server};
use serde_json::json;
use walab_store::BackendKind;

#[tokio::test]
async fn a_value_round_trips_exactly_as_sent() {
    for kind in kinds() {
        let s = server(kind);
        let body = r#"{"key": "user-1", "value": {"name": "User 1", "balance": 100}}"#;
        let r = s.post("/kv", body).await;
        assert_eq!(r.status, StatusCode::OK, "{kind}: {}", r.text);
        assert_eq!(r.json["key"], "user-1");
        assert_eq!(r.json["value"], json!({"name": "User 1", "balance": 100}));
        let wal = kind == BackendKind::named("wal");
        assert_eq!(r.json["wal_enabled"], wal);
        assert_eq!(
            r.json.get("sequence").is_some(),
            wal,
            "only the wal has sequence numbers: {}",
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
    for kind in kinds() {
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
    for kind in kinds() {
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
    for kind in kinds() {
        let s = server(kind);
        s.post("/kv", r#"{"key":"k","value":1}"#).await;
        let r = s.call("DELETE", "/kv/k", None, &[]).await;
        assert_eq!(r.status, StatusCode::OK);
        let mut expected = json!({"key": "k", "deleted": true});
        if kind == BackendKind::named("wal") {
            expected["sequence"] = json!(2);
        }
        assert_eq!(r.json, expected);
        assert_eq!(s.get("/kv/k").await.status, StatusCode::NOT_FOUND);
        assert_eq!(
            s.call("DELETE", "/kv/k", None, &[]).await.status,
            StatusCode::NOT_FOUND
        );
    }
}

#[tokio::test]
async fn list_returns_everything_and_pages_on_request() {
    for kind in kinds() {
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
    for kind in kinds() {
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
    for kind in kinds() {
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
    let s = server(BackendKind::named("memory"));
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
    for kind in kinds() {
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
