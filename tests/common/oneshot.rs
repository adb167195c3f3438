//! The router harness for the contract tests: a `walab::app` per backend, driven with
//! `oneshot` (no sockets).

use axum::Router;
use axum::body::Body;
use axum::http::{Request, StatusCode};
use http_body_util::BodyExt;
use serde_json::Value;
use tempfile::TempDir;
use tower::ServiceExt;
use walab::{AppState, Config};
use walab_store::{BackendKind, CrashMode, open_backend};

/// The backends this file runs against: those that need nothing but a directory (a
/// replicated store, whose members can be killed, needs a cluster: etcd runs the store's
/// conformance suite and the lab's e2e instead).
pub fn kinds() -> Vec<BackendKind> {
    BackendKind::all()
        .filter(|k| !k.can_crash(CrashMode::Leader))
        .collect()
}

/// Small, so the size limits are cheap to test.
pub const MAX_VALUE: usize = 64;

pub struct Server {
    pub app: Router,
    pub kind: BackendKind,
    pub dir: TempDir,
}

pub fn config(kind: BackendKind, dir: &TempDir, token: Option<&str>) -> Config {
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

pub fn server_with(kind: BackendKind, token: Option<&str>) -> Server {
    let dir = TempDir::new().expect("temp dir");
    let config = config(kind, &dir, token);
    let backend = open_backend(&config.backend_config()).expect("open backend");
    let state = AppState::with_backend(config, backend).expect("state");
    Server {
        app: walab::app(state),
        kind,
        dir,
    }
}

pub fn server(kind: BackendKind) -> Server {
    server_with(kind, None)
}

pub struct Reply {
    pub status: StatusCode,
    pub json: Value,
    pub content_type: String,
    pub text: String,
}

impl Server {
    pub async fn call(
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

    pub async fn get(&self, uri: &str) -> Reply {
        self.call("GET", uri, None, &[]).await
    }

    pub async fn post(&self, uri: &str, body: &str) -> Reply {
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
pub fn assert_error(reply: &Reply, status: u16, code: &str) {
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
