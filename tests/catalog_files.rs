//! The files outside Rust that list the backends agree with the catalog: a backend added to
//! `backends/store/src/catalog.rs` without its Compose service, its Prometheus targets, its
//! k6 URLs or its OpenAPI server fails here, by name, instead of silently missing from the
//! stack, the dashboards or the load tests.

use walab_store::BackendKind;

fn read(path: &str) -> String {
    let full = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(path);
    std::fs::read_to_string(&full).unwrap_or_else(|e| panic!("{}: {e}", full.display()))
}

#[test]
fn every_backend_has_its_service_targets_urls_and_server() {
    let compose = read("compose/docker-compose.yml");
    let prometheus = read("prometheus/prometheus.yml");
    let lab_prometheus = read("prometheus/lab.yml");
    let k6 = read("k6/lib.js");
    let openapi = read("src/server/openapi.json");
    let mut missing = Vec::new();
    for kind in BackendKind::all() {
        let (name, port) = (kind.as_str(), kind.info().lab_port);
        let service = format!("kv-{name}");
        let wanted = [
            (
                "compose/docker-compose.yml",
                &compose,
                format!("\n  {service}:\n"),
            ),
            (
                "compose/docker-compose.yml",
                &compose,
                format!("KV_BACKEND: {name}\n"),
            ),
            (
                "compose/docker-compose.yml",
                &compose,
                format!(":{port}:8000\""),
            ),
            (
                "prometheus/prometheus.yml",
                &prometheus,
                format!("\"{service}:8000\""),
            ),
            (
                "prometheus/lab.yml",
                &lab_prometheus,
                format!("\"127.0.0.1:{port}\""),
            ),
            ("k6/lib.js", &k6, format!("{name}: 'http://{service}:8000'")),
            (
                "k6/lib.js",
                &k6,
                format!("{name}: 'http://127.0.0.1:{port}'"),
            ),
            (
                "src/server/openapi.json",
                &openapi,
                format!("\"http://127.0.0.1:{port}\""),
            ),
        ];
        for (file, text, needle) in wanted {
            if !text.contains(&needle) {
                missing.push(format!("{file} lacks {needle:?} for the {name} backend"));
            }
        }
    }
    assert!(missing.is_empty(), "{}", missing.join("\n"));
}
