//! `GET /openapi.json` stays true to the router.
//!
//! - The document the server serves is `src/server/openapi.json`, valid JSON, OpenAPI 3.1.
//! - The routes declared in `src/server/routes/*.rs` (read from the source, so a new route fails
//!   this test until it is documented) are exactly the documented operations.
//! - Through `oneshot`, every documented operation is served (no route miss, no 405), and
//!   every other method on a documented path is a 405, and nearby undocumented paths 404.
//! - For representative requests on every backend, the status is one the document lists for
//!   that operation, with the documented content type, and the body has the fields the
//!   documented schema requires (and no others where it says `additionalProperties: false`).
//!   `tests/e2e/schemathesis.sh` checks full schema conformance against a real server.

mod common;

use std::collections::BTreeSet;

use common::oneshot::{MAX_VALUE, Reply, kinds, server, server_with};
use serde_json::Value;
use walab_store::BackendKind;

const METHODS: [&str; 5] = ["get", "post", "put", "delete", "patch"];

fn doc() -> Value {
    serde_json::from_str(walab::server::routes::OPENAPI).expect("src/server/openapi.json is JSON")
}

/// Every documented (method, path), methods lowercase, paths as the document writes them.
fn documented(doc: &Value) -> BTreeSet<(String, String)> {
    let mut out = BTreeSet::new();
    for (path, item) in doc["paths"].as_object().expect("paths") {
        for method in METHODS {
            if item.get(method).is_some() {
                out.insert((method.to_owned(), path.clone()));
            }
        }
    }
    out
}

/// The (method, path) pairs the route table declares, read from the source: each
/// `.route("PATH", get(..).post(..))` in `src/server/routes.rs`, and in `src/server/routes/admin.rs`
/// under `/admin` (where mod.rs nests it). `{*key}` is written `{key}`, as in OpenAPI.
fn declared() -> BTreeSet<(String, String)> {
    let sources = [
        ("", include_str!("../src/server/routes.rs")),
        ("/admin", include_str!("../src/server/routes/admin.rs")),
    ];
    let mut out = BTreeSet::new();
    for (prefix, source) in sources {
        for piece in source.split(".route(\"").skip(1) {
            let (path, rest) = piece.split_once('"').expect("a path literal");
            // The handlers: up to the end of this .route(...) call's line.
            let handlers = rest.lines().next().unwrap_or("");
            let path = format!("{prefix}{}", path.replace("{*", "{"));
            let mut found = false;
            for method in METHODS {
                if handlers.contains(&format!(" {method}("))
                    || handlers.contains(&format!(".{method}("))
                {
                    out.insert((method.to_owned(), path.clone()));
                    found = true;
                }
            }
            assert!(
                found,
                "no method found for .route(\"{path}\"...) in {handlers:?}"
            );
        }
    }
    out
}

/// A concrete URI for a documented path, and the query that keeps it harmless
/// (`/admin/crash` with a bad mode answers 400 instead of killing this test process).
fn uri_for(method: &str, path: &str) -> String {
    let path = path.replace("{key}", "some-key");
    match (method, path.as_str()) {
        ("post", "/admin/crash") => format!("{path}?mode=not-a-mode"),
        _ => path,
    }
}

fn is_route_miss(reply: &Reply) -> bool {
    reply.status.as_u16() == 405
        || (reply.status.as_u16() == 404
            && reply.json["detail"]
                .as_str()
                .is_some_and(|d| d.starts_with("No route")))
}

#[test]
fn the_document_is_openapi_3_1_with_the_crate_version() {
    let doc = doc();
    assert_eq!(doc["openapi"], "3.1.0");
    assert_eq!(doc["info"]["version"], env!("CARGO_PKG_VERSION"));
    assert!(
        doc["components"]["schemas"]["Error"]["required"] == serde_json::json!(["error", "detail"])
    );
}

#[test]
fn the_route_table_and_the_document_list_the_same_operations() {
    let doc = documented(&doc());
    let code = declared();
    let undocumented: Vec<_> = code.difference(&doc).collect();
    let unrouted: Vec<_> = doc.difference(&code).collect();
    assert!(
        undocumented.is_empty() && unrouted.is_empty(),
        "routes missing from src/server/openapi.json: {undocumented:?}; documented but not routed: {unrouted:?}"
    );
    assert!(code.len() >= 12, "{code:?}");
}

#[tokio::test]
async fn the_server_serves_the_document() {
    let s = server(BackendKind::named("memory"));
    let r = s.get("/openapi.json").await;
    assert_eq!(r.status.as_u16(), 200);
    assert_eq!(r.content_type, "application/json");
    assert_eq!(r.json, doc());
}

#[tokio::test]
async fn every_documented_operation_is_served_and_nothing_else() {
    let doc = doc();
    let operations = documented(&doc);
    for kind in kinds() {
        let s = server(kind);
        for (method, path) in &operations {
            let uri = uri_for(method, path);
            let body = (method == "post").then_some("{}");
            let r = s.call(&method.to_uppercase(), &uri, body, &[]).await;
            assert!(
                !is_route_miss(&r),
                "{kind}: documented {method} {path} is not routed: {} {}",
                r.status,
                r.text
            );
        }
        for path in doc["paths"].as_object().expect("paths").keys() {
            for method in METHODS {
                if operations.contains(&(method.to_owned(), path.clone())) {
                    continue;
                }
                let uri = uri_for(method, path);
                let r = s.call(&method.to_uppercase(), &uri, Some("{}"), &[]).await;
                assert_eq!(
                    (r.status.as_u16(), r.json["error"].as_str()),
                    (405, Some("method_not_allowed")),
                    "{kind}: undocumented {method} {path}: {}",
                    r.text
                );
            }
        }
        for path in [
            "/",
            "/kv/",
            "/admin",
            "/admin/",
            "/admin/nope",
            "/openapi",
            "/openapi.yaml",
            "/health/x",
            "/metrics/x",
            "/admin/stats/x",
        ] {
            for method in ["GET", "POST", "DELETE"] {
                let r = s.call(method, path, None, &[]).await;
                assert!(
                    r.status.as_u16() == 404 && is_route_miss(&r),
                    "{kind}: {method} {path} should be no route: {} {}",
                    r.status,
                    r.text
                );
            }
        }
    }
}

/// Follow a `$ref` within the document.
fn resolve<'a>(doc: &'a Value, node: &'a Value) -> &'a Value {
    match node["$ref"].as_str() {
        Some(pointer) => {
            let target = doc
                .pointer(pointer.trim_start_matches('#'))
                .unwrap_or_else(|| panic!("dangling $ref {pointer}"));
            resolve(doc, target)
        }
        None => node,
    }
}

/// Check `reply` to `method path` against the document: a documented status, content type,
/// required fields, no undocumented fields where the schema is closed.
fn conforms(doc: &Value, kind: BackendKind, method: &str, path: &str, reply: &Reply) {
    let what = format!("{kind}: {method} {path} -> {} {}", reply.status, reply.text);
    let operation = &doc["paths"][path][method];
    assert!(
        operation.is_object(),
        "undocumented operation {method} {path}"
    );
    let status = reply.status.as_str();
    let response = operation["responses"]
        .get(status)
        .map(|r| resolve(doc, r))
        .unwrap_or_else(|| panic!("status {status} is not documented: {what}"));
    let content = response["content"].as_object().expect("content");
    let (media, body) = content
        .iter()
        .find(|(media, _)| reply.content_type.starts_with(media.as_str()))
        .unwrap_or_else(|| {
            panic!(
                "content type {:?} is not documented: {what}",
                reply.content_type
            )
        });
    let schema = resolve(doc, &body["schema"]);
    if media != "application/json" {
        return;
    }
    if schema["type"] == "object" {
        let object = reply
            .json
            .as_object()
            .unwrap_or_else(|| panic!("not an object: {what}"));
        for field in schema["required"].as_array().into_iter().flatten() {
            let field = field.as_str().expect("field name");
            assert!(
                object.contains_key(field),
                "missing required {field:?}: {what}"
            );
        }
        if schema["additionalProperties"] == false {
            for field in object.keys() {
                assert!(
                    schema["properties"].get(field).is_some(),
                    "undocumented field {field:?}: {what}"
                );
            }
        }
        if let Some(codes) = schema["properties"]["error"]["enum"].as_array() {
            assert!(
                codes.contains(&reply.json["error"]),
                "undocumented error code: {what}"
            );
        }
    }
}

#[tokio::test]
async fn documented_statuses_match_real_responses() {
    let doc = doc();
    let big = format!(r#"{{"key":"k","value":"{}"}}"#, "x".repeat(MAX_VALUE));
    let put = r#"{"key":"k","value":{"a":[1,null]}}"#;
    for kind in kinds() {
        let checkpoint = if kind.supports().checkpoint { 200 } else { 400 };
        // (method, documented path, request URI, body, status), in order on one server.
        let mut cases: Vec<(&str, &str, &str, Option<&str>, u16)> = vec![
            ("get", "/health", "/health", None, 200),
            ("get", "/metrics", "/metrics", None, 200),
            ("get", "/openapi.json", "/openapi.json", None, 200),
            ("post", "/kv", "/kv", Some(put), 200),
            ("post", "/kv", "/kv", Some("{"), 400),
            ("post", "/kv", "/kv", Some(""), 400),
            ("post", "/kv", "/kv", Some(&big), 413),
            ("post", "/kv", "/kv", Some(r#"{"key":1,"value":1}"#), 400),
            ("get", "/kv", "/kv", None, 200),
            ("get", "/kv", "/kv?limit=0", None, 200),
            ("get", "/kv", "/kv?limit=-1", None, 400),
            ("get", "/kv/{key}", "/kv/k", None, 200),
            ("get", "/kv/{key}", "/kv/nope", None, 404),
            ("get", "/kv/{key}", "/kv/%FF", None, 400),
            ("delete", "/kv/{key}", "/kv/k", None, 200),
            ("delete", "/kv/{key}", "/kv/k", None, 404),
            ("get", "/admin/stats", "/admin/stats", None, 200),
            ("get", "/admin/wal", "/admin/wal", None, 200),
            ("get", "/admin/wal", "/admin/wal?limit=x", None, 400),
            (
                "post",
                "/admin/checkpoint",
                "/admin/checkpoint",
                None,
                checkpoint,
            ),
            (
                "post",
                "/admin/crash",
                "/admin/crash?mode=meteor",
                None,
                400,
            ),
            ("post", "/admin/clear", "/admin/clear", None, 200),
        ];
        if !kind.can_crash(walab_store::CrashMode::PowerLoss) {
            let uri = "/admin/crash?mode=power-loss";
            cases.push(("post", "/admin/crash", uri, None, 400));
        }
        let s = server(kind);
        for (method, path, uri, body, want) in cases {
            let r = s.call(&method.to_uppercase(), uri, body, &[]).await;
            assert_eq!(
                r.status.as_u16(),
                want,
                "{kind}: {method} {uri}: {}",
                r.text
            );
            conforms(&doc, kind, method, path, &r);
        }

        let locked = server_with(kind, Some("tok"));
        for (method, path) in [
            ("get", "/admin/stats"),
            ("get", "/admin/wal"),
            ("post", "/admin/checkpoint"),
            ("post", "/admin/crash"),
            ("post", "/admin/clear"),
        ] {
            let r = locked.call(&method.to_uppercase(), path, None, &[]).await;
            assert_eq!(
                r.status.as_u16(),
                401,
                "{kind}: {method} {path}: {}",
                r.text
            );
            conforms(&doc, kind, method, path, &r);
        }
        let auth = [("authorization", "Bearer tok")];
        let r = locked.call("GET", "/admin/stats", None, &auth).await;
        assert_eq!(r.status.as_u16(), 200, "{kind}: {}", r.text);
        conforms(&doc, kind, "get", "/admin/stats", &r);
    }
}
