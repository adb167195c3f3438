//! The lab's own web page: the servers side by side in a browser, no Docker needed.
//!
//! `walab lab` serves it on its own port (`--ui-port`, default 8000; 0 turns it off):
//!
//! - `GET /`, `/app.js`, `/style.css`: the page, static files compiled into the binary
//!   with `include_str!` (no npm, no CDN: it works offline). The script draws its own
//!   charts on canvas.
//! - `GET /lab.json`: which backends the lab runs and where, so the page can say
//!   `curl http://127.0.0.1:8001/...` for each.
//! - `GET|POST|DELETE /api/<backend>/<path>`: passed on, unchanged, to the same
//!   public endpoint of that child, with the child's status, `Content-Type` and body passed
//!   back. The page reaches the servers only this way, so it has one origin (no CORS) and
//!   can show nothing the public API cannot. A child that is down (restarting after a
//!   crash) is a 502 `backend_down`, one that does not answer in time a 504; a path the
//!   client could not pass on unchanged (a `.` or `..` segment) a 400 `bad_path`.
//!
//! The proxy forwards `Content-Type`, `Accept` and `Authorization`, so with `ADMIN_TOKEN`
//! set the admin calls answer 401 unless the browser sends the token itself.
//!
//! The page is as exposed as the servers behind it, so it is held to the same rules: the
//! same accept loop and timeouts ([`crate::server::serve`]), the same browser checks
//! ([`crate::server::cross_site`]: only the page itself may change a store through it), a
//! `Content-Length` over [`MAX_REQUEST_BYTES`] answered 413 before anything is read, and a
//! budget for the bodies it holds at once ([`crate::server::limits::ByteBudget`]).

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get};
use axum::{Json, Router};
use serde_json::json;
use walab_store::BackendKind;

use crate::client::{Client, ClientError};
use crate::server::config::Limits;
use crate::server::cross_site::CrossSiteGuard;
use crate::server::error::ApiError;
use crate::server::limits::{ByteBudget, announced_length, bounded, read_body};

const INDEX_HTML: &str = include_str!("assets/index.html");
const APP_JS: &str = include_str!("assets/app.js");
const STYLE_CSS: &str = include_str!("assets/style.css");

/// How long a child gets to answer one proxied request.
const PROXY_TIMEOUT: Duration = Duration::from_secs(10);
/// The largest answer passed back (a `/admin/wal` of big values can be large).
const MAX_ANSWER_BYTES: usize = 32 * 1024 * 1024;
/// The largest request body passed on: a default `MAX_VALUE_BYTES` value plus its key and
/// framing. The page sends small values; bigger ones go to a server directly.
pub const MAX_REQUEST_BYTES: usize = (1 << 20) + 2048;
/// What the bodies the proxy is reading may hold at once.
const MAX_BODY_BYTES_IN_FLIGHT: usize = 32 << 20;
/// Request headers passed on to the child.
const FORWARDED: [HeaderName; 3] = [header::CONTENT_TYPE, header::ACCEPT, header::AUTHORIZATION];

/// One child the page can reach.
#[derive(Debug, Clone)]
pub struct Target {
    /// Its backend; `/api/<backend>/...` reaches it.
    pub kind: BackendKind,
    /// Where to connect (127.0.0.1 when the children listen on a wildcard).
    pub host: String,
    /// Its port.
    pub port: u16,
    /// Whether the lab gave up starting it, and why.
    pub verdict: Arc<crate::lab::child::Verdict>,
}

/// What the proxy's handlers share.
#[derive(Debug, Clone)]
struct Proxy {
    targets: Arc<Vec<Route>>,
    bodies: ByteBudget,
    limits: Limits,
    /// Where `walab experiment` writes its runs (`--experiments`, default ./experiments).
    experiments: Arc<PathBuf>,
}

/// A child the page passes requests on to, and the client it passes them with.
#[derive(Debug)]
struct Route {
    target: Target,
    client: Client,
}

/// The page's router over `targets`, for a page listening on `bind_host`. Tests call this
/// with children on port 0.
pub fn router(
    targets: Vec<Target>,
    bind_host: &str,
    limits: Limits,
    experiments: PathBuf,
) -> Router {
    let guard = CrossSiteGuard::new(bind_host, Vec::new());
    let targets = targets
        .into_iter()
        .map(|target| Route {
            client: Client::tcp(&target.host, target.port)
                .one_connection_per_request()
                .limit(PROXY_TIMEOUT)
                .max_bytes(MAX_ANSWER_BYTES),
            target,
        })
        .collect();
    let shared = Proxy {
        targets: Arc::new(targets),
        bodies: ByteBudget::new(MAX_BODY_BYTES_IN_FLIGHT),
        limits,
        experiments: Arc::new(experiments),
    };
    let routes = Router::new()
        .route("/", get(|| async { asset("text/html; charset=utf-8", INDEX_HTML) }))
        .route(
            "/app.js",
            get(|| async { asset("text/javascript; charset=utf-8", APP_JS) }),
        )
        .route(
            "/style.css",
            get(|| async { asset("text/css; charset=utf-8", STYLE_CSS) }),
        )
        .route("/lab.json", get(lab_json))
        .route("/experiments.json", get(experiments_json))
        .route("/experiments/{run}/{file}", get(experiment_plot))
        .route("/api/{backend}/{*path}", any(proxy))
        .fallback(|uri: Uri| async move {
            error(
                StatusCode::NOT_FOUND,
                "not_found",
                &format!(
                    "no page at {}: the lab's page is at /, the servers at /api/<backend>/... (see /lab.json)",
                    uri.path()
                ),
            )
        });
    bounded(
        routes,
        limits,
        MAX_REQUEST_BYTES,
        guard,
        StatusCode::GATEWAY_TIMEOUT,
    )
    .with_state(shared)
}

/// Serve the page on `listener` (bound to `bind_host`) within `limits` until `shutdown`
/// resolves.
pub async fn serve(
    listener: tokio::net::TcpListener,
    bind_host: &str,
    limits: Limits,
    targets: Vec<Target>,
    experiments: PathBuf,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    crate::server::serve::serve(
        crate::server::serve::tcp(listener),
        router(targets, bind_host, limits, experiments),
        limits,
        shutdown,
    )
    .await
}

/// One embedded file. `no-cache` so a rebuilt lab's page is picked up on reload; the CSP
/// allows nothing but this origin, which is all the page uses.
fn asset(content_type: &'static str, text: &'static str) -> Response {
    (
        [
            (header::CONTENT_TYPE, content_type),
            (header::CACHE_CONTROL, "no-cache"),
            (
                header::CONTENT_SECURITY_POLICY,
                "default-src 'self'; img-src 'self' data:; frame-ancestors 'none'",
            ),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
            (header::REFERRER_POLICY, "no-referrer"),
        ],
        text,
    )
        .into_response()
}

/// `GET /experiments.json`: the runs of `walab experiment` in the experiments directory,
/// newest first, each experiment with its command, conclusion and plot's URL.
async fn experiments_json(State(proxy): State<Proxy>) -> Json<serde_json::Value> {
    let dir = proxy.experiments.clone();
    let runs = tokio::task::spawn_blocking(move || crate::experiment::runs_in(&dir))
        .await
        .unwrap_or_default();
    Json(json!({ "dir": proxy.experiments.display().to_string(), "runs": runs }))
}

/// `GET /experiments/<run>/<lesson>.svg`: one plot of a run. Only a run directory's plain
/// name and a lesson's plot are served: nothing else on the disk is reachable.
async fn experiment_plot(
    State(proxy): State<Proxy>,
    Path((run, file)): Path<(String, String)>,
) -> Response {
    let Some(path) = crate::experiment::plot_path(&proxy.experiments, &run, &file) else {
        return error(
            StatusCode::NOT_FOUND,
            "not_found",
            "no such experiment plot; see /experiments.json",
        );
    };
    let read = tokio::task::spawn_blocking(move || std::fs::read(path)).await;
    match read.unwrap_or_else(|e| Err(std::io::Error::other(e))) {
        Ok(svg) if svg.len() <= 4 << 20 => (
            [
                (header::CONTENT_TYPE, "image/svg+xml"),
                (header::CACHE_CONTROL, "no-cache"),
                // Drawn by plotters, shown as an image: nothing in it may run.
                (
                    header::CONTENT_SECURITY_POLICY,
                    "default-src 'none'; style-src 'unsafe-inline'",
                ),
                (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
            ],
            svg,
        )
            .into_response(),
        _ => error(
            StatusCode::NOT_FOUND,
            "not_found",
            "no such experiment plot; see /experiments.json",
        ),
    }
}

/// `GET /lab.json`: `{"backends":[{"backend","port","url","title","supports"}]}`, with
/// `cannot_start` (`reason`, `hint`) for a server the lab gave up starting.
async fn lab_json(State(proxy): State<Proxy>) -> Json<serde_json::Value> {
    let backends: Vec<_> = proxy
        .targets
        .iter()
        .map(|Route { target: t, .. }| {
            let mut entry = json!({
                "backend": t.kind.as_str(),
                "port": t.port,
                "url": format!("http://{}:{}", t.host, t.port),
                "title": t.kind.info().title,
                "supports": t.kind.supports(),
            });
            if let Some(reason) = t.verdict.cannot_start() {
                entry["cannot_start"] = json!({
                    "reason": reason,
                    "hint": "the lab stopped restarting it: fix the cause, then start the lab again",
                });
            }
            entry
        })
        .collect();
    Json(json!({ "backends": backends }))
}

/// `/api/{backend}/<path>`: pass the request on to that child and its answer back.
async fn proxy(
    State(proxy): State<Proxy>,
    Path((backend, _)): Path<(String, String)>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let announced = announced_length(&headers);
    // The body's room in the page's budget is held until the child has answered.
    let (body, _share) = match read_body(
        body,
        announced,
        &proxy.bodies,
        MAX_REQUEST_BYTES,
        &proxy.limits,
    )
    .await
    {
        Ok(read) => read,
        Err(ApiError::BodyTooLarge { .. }) => {
            return error(
                StatusCode::PAYLOAD_TOO_LARGE,
                "body_too_large",
                &format!(
                    "the lab's page passes on bodies of at most {MAX_REQUEST_BYTES} bytes; send bigger values to a server directly"
                ),
            );
        }
        Err(e) => return e.into_response(),
    };
    let Some(Route { target, client }) = proxy
        .targets
        .iter()
        .find(|r| r.target.kind.as_str() == backend)
    else {
        let running: Vec<&str> = proxy
            .targets
            .iter()
            .map(|r| r.target.kind.as_str())
            .collect();
        return error(
            StatusCode::NOT_FOUND,
            "unknown_backend",
            &format!(
                "no backend called '{backend}' in this lab: it runs {}",
                running.join(", ")
            ),
        );
    };
    if ![Method::GET, Method::POST, Method::DELETE].contains(&method) {
        return error(
            StatusCode::METHOD_NOT_ALLOWED,
            "method_not_allowed",
            &format!("the lab's page passes on GET, POST and DELETE, not {method}"),
        );
    }
    // The raw path, still percent-encoded, so `/kv/a%2Fb` reaches the child as sent (the
    // client refuses one it would change on the way).
    let prefix = format!("/api/{backend}");
    let path = uri.path().strip_prefix(&prefix).unwrap_or("/");
    let target_line = match uri.query() {
        Some(q) => format!("{path}?{q}"),
        None => path.to_owned(),
    };
    let forwarded: Vec<(&str, &str)> = FORWARDED
        .iter()
        .filter_map(|name| {
            let value = headers.get(name)?.to_str().ok()?;
            Some((name.as_str(), value))
        })
        .collect();
    match client
        .send(method.as_str(), &target_line, &forwarded, body.to_vec())
        .await
    {
        Ok(answer) => {
            let status = StatusCode::from_u16(answer.status).unwrap_or(StatusCode::BAD_GATEWAY);
            let content_type = answer
                .header("content-type")
                .and_then(|v| HeaderValue::from_str(v).ok())
                .unwrap_or(HeaderValue::from_static("application/octet-stream"));
            let mut response = (status, answer.body).into_response();
            response
                .headers_mut()
                .insert(header::CONTENT_TYPE, content_type);
            response
                .headers_mut()
                .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
            response
        }
        Err(e) => {
            let label = format!("the {} server on :{}", target.kind, target.port);
            match e {
                ClientError::Connect(..) => error(
                    StatusCode::BAD_GATEWAY,
                    "backend_down",
                    &format!("{label} is not answering (restarting after a crash?): {e}"),
                ),
                ClientError::Timeout(_) => error(
                    StatusCode::GATEWAY_TIMEOUT,
                    "backend_timeout",
                    &format!("{label} gave {e}"),
                ),
                ClientError::Invalid(_) => error(
                    StatusCode::BAD_REQUEST,
                    "bad_path",
                    &format!(
                        "the page cannot pass this on to {label} unchanged: {e}; ask the server itself at its own port"
                    ),
                ),
                _ => error(
                    StatusCode::BAD_GATEWAY,
                    "backend_error",
                    &format!("{label}: {e}"),
                ),
            }
        }
    }
}

/// The API's error shape, `{"error": code, "detail": sentence}`.
fn error(status: StatusCode, code: &str, detail: &str) -> Response {
    (status, Json(json!({ "error": code, "detail": detail }))).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::body::Body;
    use axum::routing::post;
    use http_body_util::BodyExt;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tower::ServiceExt;

    /// A stand-in child on port 0: echoes the raw path and query, and the POSTed body.
    async fn fake_child() -> u16 {
        let app =
            Router::new()
                .route(
                    "/kv/{*key}",
                    get(|uri: Uri| async move {
                        Json(json!({ "path": uri.path(), "query": uri.query() }))
                    }),
                )
                .route(
                    "/kv",
                    post(|headers: HeaderMap, body: String| async move {
                        let ct = headers
                            .get(header::CONTENT_TYPE)
                            .and_then(|v| v.to_str().ok())
                            .unwrap_or("")
                            .to_owned();
                        (StatusCode::CREATED, Json(json!({ "body": body, "ct": ct })))
                    }),
                );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let port = listener.local_addr().expect("addr").port();
        tokio::spawn(async move { axum::serve(listener, app).await });
        port
    }

    /// A stand-in child that answers every connection with a chunked body by hand.
    async fn chunked_child() -> u16 {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let port = listener.local_addr().expect("addr").port();
        tokio::spawn(async move {
            while let Ok((mut s, _)) = listener.accept().await {
                let mut buf = [0u8; 1024];
                let _ = s.read(&mut buf).await;
                let _ = s
                    .write_all(
                        b"HTTP/1.1 200 OK\r\nContent-Type: text/plain; version=0.0.4\r\n\
                          Transfer-Encoding: chunked\r\n\r\n\
                          e\r\nwalab_items 3\n\r\n0\r\n\r\n",
                    )
                    .await;
            }
        });
        port
    }

    fn lab(wal: u16, memory: u16) -> Router {
        router(
            vec![
                Target {
                    kind: BackendKind::named("wal"),
                    host: "127.0.0.1".into(),
                    port: wal,
                    verdict: Default::default(),
                },
                Target {
                    kind: BackendKind::named("memory"),
                    host: "127.0.0.1".into(),
                    port: memory,
                    verdict: Default::default(),
                },
            ],
            "127.0.0.1",
            Limits::default(),
            PathBuf::from("experiments"),
        )
    }

    async fn call(app: Router, method: &str, uri: &str, body: &str) -> (u16, String, String) {
        let request = axum::http::Request::builder()
            .method(method)
            .uri(uri)
            .header(header::CONTENT_TYPE, "application/json")
            .body(Body::from(body.to_owned()))
            .expect("request");
        let response = app.oneshot(request).await.expect("infallible");
        let status = response.status().as_u16();
        let ct = response
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_owned();
        let bytes = response
            .into_body()
            .collect()
            .await
            .expect("body")
            .to_bytes();
        (status, ct, String::from_utf8_lossy(&bytes).into_owned())
    }

    fn json_of(text: &str) -> serde_json::Value {
        serde_json::from_str(text).expect("JSON")
    }

    #[tokio::test]
    async fn the_newest_experiment_run_and_its_plots_are_served_and_nothing_else() {
        let dir = tempfile::tempdir().expect("temp dir");
        for run in ["2026-12-05", "2026-12-06"] {
            let at = dir.path().join(run);
            std::fs::create_dir_all(&at).expect("mkdir");
            let found = json!({"command": "walab experiment fsync", "conclusion": format!("measured on {run}")});
            std::fs::write(at.join("fsync.json"), found.to_string()).expect("json");
            std::fs::write(
                at.join("fsync.svg"),
                "<svg xmlns=\"http://www.w3.org/2000/svg\"/>",
            )
            .expect("svg");
        }
        std::fs::write(dir.path().join("secret.txt"), "no").expect("file");
        let app = router(
            Vec::new(),
            "127.0.0.1",
            Limits::default(),
            dir.path().to_path_buf(),
        );
        let (status, _, text) = call(app.clone(), "GET", "/experiments.json", "").await;
        assert_eq!(status, 200);
        let found = json_of(&text);
        assert_eq!(
            found["runs"][0]["run"], "2026-12-06",
            "newest first: {found}"
        );
        let e = &found["runs"][0]["experiments"][0];
        assert_eq!(e["name"], "fsync");
        assert_eq!(e["conclusion"], "measured on 2026-12-06");
        let plot = e["plot"].as_str().expect("plot url").to_owned();
        let (status, ct, _) = call(app.clone(), "GET", &plot, "").await;
        assert_eq!((status, ct.as_str()), (200, "image/svg+xml"));
        for bad in [
            "/experiments/2026-12-06/fsync.json",
            "/experiments/..%2F/secret.txt",
            "/experiments/2026-12-06/..%2F..%2Fsecret.txt",
            "/experiments/.hidden/fsync.svg",
        ] {
            let (status, _, _) = call(app.clone(), "GET", bad, "").await;
            assert_eq!(status, 404, "{bad}");
        }
    }

    #[tokio::test]
    async fn passes_path_query_status_and_body_through() {
        let child = fake_child().await;
        let app = lab(child, child);
        let (status, ct, text) = call(app.clone(), "GET", "/api/wal/kv/a%2Fb?x=1", "").await;
        assert_eq!(status, 200);
        assert_eq!(ct, "application/json");
        let body = json_of(&text);
        assert_eq!(body["path"], "/kv/a%2Fb", "still percent-encoded");
        assert_eq!(body["query"], "x=1");

        let (status, _, text) = call(app, "POST", "/api/memory/kv", r#"{"key":"k"}"#).await;
        assert_eq!(status, 201, "the child's status, not the proxy's");
        let body = json_of(&text);
        assert_eq!(body["body"], r#"{"key":"k"}"#);
        assert_eq!(body["ct"], "application/json");
    }

    #[tokio::test]
    async fn a_path_that_would_change_on_the_way_is_refused_not_rewritten() {
        let child = fake_child().await;
        let app = lab(child, child);
        // A key named `..`: a URL parser would send `GET /` instead.
        for path in ["/api/wal/kv/%2e%2e", "/api/wal/kv/../health"] {
            let (status, _, text) = call(app.clone(), "GET", path, "").await;
            assert_eq!(status, 400, "{path}: {text}");
            let body = json_of(&text);
            assert_eq!(body["error"], "bad_path", "{path}");
            assert!(
                body["detail"]
                    .as_str()
                    .unwrap_or("")
                    .contains("its own port"),
                "{text}"
            );
        }
        // Dots inside a segment are a key like any other.
        let (status, _, text) = call(app, "GET", "/api/wal/kv/a..b", "").await;
        assert_eq!(status, 200);
        assert_eq!(json_of(&text)["path"], "/kv/a..b");
    }

    #[tokio::test]
    async fn reads_a_chunked_answer() {
        let child = chunked_child().await;
        let (status, ct, text) = call(lab(child, child), "GET", "/api/wal/metrics", "").await;
        assert_eq!(status, 200);
        assert_eq!(ct, "text/plain; version=0.0.4");
        assert_eq!(text, "walab_items 3\n");
    }

    #[tokio::test]
    async fn a_child_that_is_down_is_a_502_that_says_so() {
        // Bind and drop: nothing listens on this port any more.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("port")
            .port();
        let (status, _, text) = call(lab(port, port), "GET", "/api/wal/health", "").await;
        assert_eq!(status, 502);
        let body = json_of(&text);
        assert_eq!(body["error"], "backend_down");
        assert!(
            body["detail"].as_str().unwrap_or("").contains("wal server"),
            "{body}"
        );
    }

    #[tokio::test]
    async fn unknown_backends_methods_and_paths_are_json_errors() {
        let app = lab(1, 1);
        let (status, _, text) = call(app.clone(), "GET", "/api/redis/health", "").await;
        assert_eq!(
            (status, json_of(&text)["error"].clone()),
            (404, json!("unknown_backend"))
        );
        let (status, _, text) = call(app.clone(), "PUT", "/api/wal/kv", "").await;
        assert_eq!(
            (status, json_of(&text)["error"].clone()),
            (405, json!("method_not_allowed"))
        );
        let (status, _, text) = call(app, "GET", "/nothing-here", "").await;
        assert_eq!(
            (status, json_of(&text)["error"].clone()),
            (404, json!("not_found"))
        );
    }

    #[tokio::test]
    async fn serves_the_page_and_what_the_lab_runs() {
        let app = lab(8001, 8002);
        let (status, ct, html) = call(app.clone(), "GET", "/", "").await;
        assert_eq!((status, ct.as_str()), (200, "text/html; charset=utf-8"));
        assert!(html.contains("app.js") && html.contains("style.css"));
        let (status, ct, _) = call(app.clone(), "GET", "/app.js", "").await;
        assert_eq!(
            (status, ct.as_str()),
            (200, "text/javascript; charset=utf-8")
        );
        let (_, _, text) = call(app, "GET", "/lab.json", "").await;
        let body = json_of(&text);
        assert_eq!(body["backends"][0]["backend"], "wal");
        assert_eq!(body["backends"][1]["url"], "http://127.0.0.1:8002");
    }
}
