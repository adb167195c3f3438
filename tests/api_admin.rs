//! The HTTP contract (docs/api.md, `GET /openapi.json`) for /health, /admin/* and
//! /metrics, for every backend, through `walab::app(state)` and `oneshot`.

mod common;

use axum::http::StatusCode;
use common::oneshot::{Server, assert_error, config, kinds, server, server_with};
use serde_json::json;
use tempfile::TempDir;
use walab::AppState;
use walab_store::{BackendKind, CrashMode};

#[tokio::test]
async fn health_names_the_backend() {
    for kind in kinds() {
        let s = server(kind);
        let r = s.get("/health").await;
        assert_eq!(r.status, StatusCode::OK);
        assert_eq!(
            r.json,
            json!({"status": "ok", "service": format!("walab-{kind}"), "backend": kind.as_str(), "wal_enabled": kind == BackendKind::named("wal")})
        );
    }
}

#[tokio::test]
async fn stats_have_the_documented_fields() {
    for kind in kinds() {
        let s = server(kind);
        s.post("/kv", r#"{"key":"k","value":1}"#).await;
        let r = s.get("/admin/stats").await;
        assert_eq!(r.status, StatusCode::OK);
        let j = &r.json;
        assert_eq!(j["item_count"], 1, "{}", r.text);
        assert_eq!(j["backend"], kind.as_str());
        assert_eq!(j["wal_enabled"], kind == BackendKind::named("wal"));
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
        if s.kind == BackendKind::named("sled") {
            assert_eq!(j["sled_flush"], "background");
            assert!(j["size_on_disk_bytes"].is_number());
        }
        if s.kind == BackendKind::named("wal") {
            assert_eq!(j["wal_sequence"], 1, "{}", r.text);
            assert_eq!(j["entries_since_checkpoint"], 1);
            assert_eq!(j["checkpoint_threshold"], 100);
            assert!(j["wal_size_bytes"].as_u64().unwrap_or(0) > 24);
            assert_eq!(j["fsync_policy"], "always");
            assert!(j["fsync_count"].as_u64().unwrap_or(0) >= 1);
            assert_eq!(j["durability"]["survives_power_loss"], true);
            assert_eq!(j["last_recovery"]["entries_replayed"], 0);
            assert!(j["last_recovery"]["torn_bytes_discarded"].is_number());
        }
    }
}

#[tokio::test]
async fn backends_without_a_log_show_an_empty_wal() {
    for kind in [BackendKind::named("memory"), BackendKind::named("sled")] {
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
async fn the_wal_shows_its_records_and_a_checkpoint_empties_it() {
    let s = server(BackendKind::named("wal"));
    s.post("/kv", r#"{"key":"config","value":{"version":"1.0"}}"#)
        .await;
    s.post("/kv", r#"{"key":"settings","value":"dark"}"#).await;
    s.call("DELETE", "/kv/settings", None, &[]).await;
    let r = s.get("/admin/wal").await;
    assert_eq!(r.json["wal_enabled"], true);
    assert_eq!(r.json["total"], 3);
    let entries = r.json["entries"].as_array().cloned().unwrap_or_default();
    let ops: Vec<_> = entries
        .iter()
        .map(|e| (e["sequence"].clone(), e["operation"].clone()))
        .collect();
    assert_eq!(
        ops,
        vec![
            (json!(1), json!("SET")),
            (json!(2), json!("SET")),
            (json!(3), json!("DELETE"))
        ]
    );
    assert_eq!(entries[0]["value"], json!({"version":"1.0"}));
    assert_eq!(entries[2]["value"], json!(null));
    assert!(
        entries[0]["timestamp"]
            .as_str()
            .unwrap_or("")
            .ends_with('Z')
    );
    let r = s.post("/admin/checkpoint", "").await;
    assert_eq!(r.json["status"], "checkpoint created", "{}", r.text);
    assert_eq!(r.json["entries_truncated"], 3);
    assert_eq!(s.get("/admin/wal").await.json["total"], 0);
    assert_eq!(
        s.get("/admin/stats").await.json["entries_since_checkpoint"],
        0
    );
}

#[tokio::test]
async fn checkpoint_is_refused_by_memory_and_is_a_flush_on_sled() {
    let r = server(BackendKind::named("memory"))
        .post("/admin/checkpoint", "")
        .await;
    assert_error(&r, 400, "wal_not_enabled");
    assert!(
        r.json["detail"]
            .as_str()
            .unwrap_or("")
            .contains("WAL is not enabled")
    );
    let r = server(BackendKind::named("sled"))
        .post("/admin/checkpoint", "")
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.json["status"], "checkpoint created");
    assert_eq!(r.json["entries_truncated"], 0);
}

#[tokio::test]
async fn clear_empties_the_store() {
    for kind in kinds() {
        let s = server(kind);
        for i in 0..3 {
            s.post("/kv", &format!(r#"{{"key":"k{i}","value":{i}}}"#))
                .await;
        }
        let r = s.post("/admin/clear", "").await;
        let mut expected = json!({"status": "cleared", "items": 0});
        if kind == BackendKind::named("wal") {
            expected["sequence"] = json!(4);
        }
        assert_eq!(r.json, expected);
        assert_eq!(s.get("/kv").await.json["count"], 0);
        assert_eq!(s.get("/admin/stats").await.json["item_count"], 0);
    }
}

/// The happy path of /admin/crash kills the process, so it is tested in tests/runbook.rs.
#[tokio::test]
async fn crash_rejects_what_it_cannot_do_without_crashing() {
    for kind in kinds() {
        let s = server(kind);
        // Every mode the catalog says the backend cannot do is refused, naming those it
        // can; the modes it can do crash for real and are tested over real processes.
        for mode in CrashMode::ALL.into_iter().filter(|m| !kind.can_crash(*m)) {
            let r = s.post(&format!("/admin/crash?mode={mode}"), "").await;
            assert_error(&r, 400, "unsupported");
            let detail = r.json["detail"].as_str().unwrap_or_default();
            assert!(
                detail.contains(&kind.crash_modes_text()),
                "{kind} {mode}: {detail}"
            );
        }
        assert_eq!(
            s.get("/admin/stats").await.json["supports"]["crash_modes"],
            serde_json::json!(kind.supports().crash_modes),
            "{kind}"
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
    let s = server_with(BackendKind::named("memory"), Some("s3cret"));
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
    let state = AppState::new(config(BackendKind::named("memory"), &dir, None)).expect("state");
    let s = Server {
        app: walab::app(state.clone()),
        kind: BackendKind::named("memory"),
        dir,
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
    for kind in kinds() {
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
            ("walab_process_restarts_total", &[b], "0"),
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
