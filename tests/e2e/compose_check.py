#!/usr/bin/env python3
"""Check that the Compose stack, the Prometheus and Grafana files and RUNBOOK.md agree.

Usage: compose_check.py CONFIG_JSON DEFAULT_SERVICES OFFLINE_SERVICES
CONFIG_JSON is `docker-compose --profile k6 --profile full --profile etcd --profile redb config --format json`
run from the repository root: Compose's own resolved model (paths absolute, anchors and merges applied),
so this script checks what Compose will run rather than re-parsing the YAML.
DEFAULT_SERVICES is `docker-compose config --services`: what a plain `up` starts (through
the root .env's COMPOSE_PROFILES=full, Grafana and Jaeger too, as the runbook's Part 8 expects);
OFFLINE_SERVICES the same with `COMPOSE_PROFILES=` (what CI starts: no registry here).

Checks:
- the stores: kv-wal, kv-memory, kv-sled publish 8001, 8002, 8003 (RUNBOOK.md's table and
  the README's port table) onto the port the server listens on, run the backend their name says,
  `restart: always`, `init: true`, a healthcheck that asks /health and passes only on
  "status":"ok", a named volume on /data;
- the volumes are named lab25-wal-data, lab25-nowal-data, lab25-sled-data and
  lab25-prometheus-data (Prometheus keeps no anonymous volume for `down` to leave behind),
  and lab25-etcd-1-data .. lab25-etcd-3-data for the profile etcd;
- the profile etcd: etcd-1, etcd-2, etcd-3 and kv-etcd, all four under the profile `etcd`
  only; the members are one three-member cluster (each named as its service, advertising
  its service name, the same initial cluster naming all three at their peer URLs, no
  setting given both as a flag and as ETCD_*), `restart: always`, each its data directory
  on its own named volume, a healthcheck that asks etcd's health, the image an upstream
  etcd tag that compose/offline-images.sh makes; kv-etcd runs KV_BACKEND=etcd with
  ETCD_ENDPOINTS naming every member's client URL, publishes 8004 on LAB_PUBLISH_HOST like
  the stores, is a store like them (restart, init, the /health check), keeps /data on a
  tmpfs (no volume: the data is in etcd), waits for every member to be healthy; the etcd
  backend's 400 for ?mode=leader names `docker compose kill` of services that exist;
- Prometheus 9090, Grafana 3001 (admin/admin), Jaeger 16686 + OTLP 4317/4318;
- a plain `up` starts the stores and Prometheus only: Grafana and Jaeger sit under a profile
  (no registry here has them), and so does lab25-k6;
- Prometheus and lab25-k6 wait for every store to be healthy (`condition: service_healthy`);
- lab25-k6 has k6/ mounted at /scripts and sets what k6/lib.js reads (IN_COMPOSE and the
  three URLs, on the port the stores listen on), and lib.js's IN_COMPOSE defaults agree;
- k6 remote write: Prometheus runs with its remote-write receiver and native histograms;
  lab25-k6 sends every run there (K6_OUT=experimental-prometheus-rw, the prometheus
  service's /api/v1/write, trends as native histograms) and starts Prometheus with it; the
  dashboards read k6's trends as the histograms it sends, not as per-stat gauges;
- every `localhost:PORT` in RUNBOOK.md is a port the stack publishes (but 8000, the lab's
  own page, which only `walab lab` serves);
- every `lab25-...` name in RUNBOOK.md is a service or volume of the stack;
- prometheus/prometheus.yml scrapes the stores and kv-etcd, by service name and container
  port, and nothing that is not a service (a service under a profile counts: CONFIG_JSON
  has every profile);
- Grafana mounts the provisioning and dashboards folders where the provider looks; the
  provisioned datasource is Grafana's default Prometheus; every dashboard has a `datasource`
  variable (type datasource, query prometheus) and every panel, query, annotation and
  variable refers to it as ${datasource}, never to a fixed uid nor a ${DS_...} placeholder
  (so the provisioned dashboard loads as it is, and an import into another Grafana asks
  for nothing).
"""

import json
import re
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
STORES = {"kv-wal": ("wal", 8001, "lab25-wal-data"),
          "kv-memory": ("memory", 8002, "lab25-nowal-data"),
          "kv-sled": ("sled", 8003, "lab25-sled-data")}
PROMETHEUS_VOLUME = "lab25-prometheus-data"
# The profile etcd: the members (each named as its service) with their volumes, and
# walab's etcd backend in front of them.
ETCD_PROFILE = "etcd"
ETCD_MEMBERS = {"etcd-1": "lab25-etcd-1-data", "etcd-2": "lab25-etcd-2-data",
                "etcd-3": "lab25-etcd-3-data"}
ETCD_STORE, ETCD_PORT = "kv-etcd", 8004
ETCD_CLIENT_PORT, ETCD_PEER_PORT = 2379, 2380
# The profile redb: walab's redb backend on 8005, its data on a volume of its own.
REDB_PROFILE, REDB_STORE, REDB_PORT, REDB_VOLUME = "redb", "kv-redb", 8005, "lab25-redb-data"
OFFLINE_SERVICES = set(STORES) | {"prometheus"}
DEFAULT_SERVICES = OFFLINE_SERVICES | {"grafana", "jaeger"}
UI = {"prometheus": [9090], "grafana": [3001], "jaeger": [16686, 4317, 4318]}

failures = []


def check(ok, what):
    print(("   ok: " if ok else " FAIL: ") + what)
    if not ok:
        failures.append(what)


def published(service):
    return {int(p["published"]): int(p["target"]) for p in service.get("ports", [])}


def etcd_settings(service):
    """A member's etcd settings, from its ETCD_* variables and its command's --flags, as
    {flag name: [values]}: a name with two values is given twice."""
    settings = {}
    for k, v in (service.get("environment") or {}).items():
        if k.startswith("ETCD_"):
            settings.setdefault(k[5:].lower().replace("_", "-"), []).append(str(v))
    for arg in service.get("command") or []:
        if arg.startswith("--") and "=" in arg:
            k, v = arg[2:].split("=", 1)
            settings.setdefault(k, []).append(v)
    return settings


def check_etcd(services, volumes):
    compose_text = (REPO / "compose" / "docker-compose.yml").read_text()
    offline = (REPO / "compose" / "offline-images.sh").read_text()
    members = sorted(ETCD_MEMBERS)
    for name in members + [ETCD_STORE]:
        s = services.get(name)
        check(s is not None, f"service {name} exists (profile {ETCD_PROFILE})")
        if s is not None:
            check(s.get("profiles") == [ETCD_PROFILE], f"{name} is under the profile {ETCD_PROFILE} only")
            check(s.get("restart") == "always", f"{name} has restart: always")
    cluster = {m: f"http://{m}:{ETCD_PEER_PORT}" for m in members}
    for name in members:
        s = services.get(name)
        if s is None:
            continue
        image = s.get("image", "")
        check(re.fullmatch(r"gcr\.io/etcd-development/etcd:v3\.\d+\.\d+", image) is not None,
              f"{name} runs an upstream etcd release image ({image})")
        st = etcd_settings(s)
        twice = sorted(k for k, v in st.items() if len(v) > 1)
        check(not twice, f"{name} gives no etcd setting twice (flag and ETCD_*): {twice}")
        one = {k: v[0] for k, v in st.items()}
        check(one.get("name") == name, f"{name} is the member named {name}")
        check(one.get("advertise-client-urls") == f"http://{name}:{ETCD_CLIENT_PORT}",
              f"{name} advertises http://{name}:{ETCD_CLIENT_PORT} to clients")
        check(one.get("initial-advertise-peer-urls") == cluster[name],
              f"{name} advertises {cluster[name]} to its peers")
        check(one.get("listen-client-urls") == f"http://0.0.0.0:{ETCD_CLIENT_PORT}"
              and one.get("listen-peer-urls") == f"http://0.0.0.0:{ETCD_PEER_PORT}",
              f"{name} listens on {ETCD_CLIENT_PORT} (clients) and {ETCD_PEER_PORT} (peers)")
        initial = dict(p.split("=", 1) for p in one.get("initial-cluster", "").split(",") if "=" in p)
        check(initial == cluster, f"{name}'s initial cluster is the three members ({one.get('initial-cluster')})")
        check(one.get("initial-cluster-state") == "new" and bool(one.get("initial-cluster-token")),
              f"{name} bootstraps a new cluster with a token")
        data_dir = one.get("data-dir", f"/{name}.etcd")
        mounts = {v["target"]: v.get("source") for v in s.get("volumes", []) if v.get("type") == "volume"}
        on = [t for t in mounts if data_dir == t or data_dir.startswith(t.rstrip("/") + "/")]
        src = mounts.get(on[0]) if on else None
        check(src in volumes and volumes[src].get("name") == ETCD_MEMBERS[name],
              f"{name} keeps its data directory {data_dir} on the volume named {ETCD_MEMBERS[name]}")
        test = s.get("healthcheck", {}).get("test", [])
        check(test[:1] == ["CMD"] and ("/health" in " ".join(test) or test[-2:] == ["endpoint", "health"]),
              f"{name} has a healthcheck that asks etcd's health ({' '.join(test[1:])})")
    images = {services.get(m, {}).get("image", "") for m in members}
    check(len(images) == 1, f"the members run one image ({sorted(images)})")
    # The script's sed pattern for the name, its backslashes dropped.
    repo_name = next(iter(images)).split(":")[0]
    check(repo_name + ":" in offline.replace("\\", ""),
          f"compose/offline-images.sh makes {repo_name} where no registry is reachable")
    sources = [services.get(m, {}).get("volumes", [{}])[0].get("source") for m in members]
    check(len(set(sources)) == len(members), f"each member has a volume of its own ({sources})")

    s = services.get(ETCD_STORE)
    if s is None:
        return
    env = s.get("environment", {})
    inner = int(env.get("PORT", "8000"))
    check(env.get("KV_BACKEND") == "etcd", f"{ETCD_STORE} runs KV_BACKEND=etcd")
    endpoints = [u.strip() for u in str(env.get("ETCD_ENDPOINTS", "")).split(",") if u.strip()]
    want = [f"http://{m}:{ETCD_CLIENT_PORT}" for m in members]
    check(sorted(endpoints) == want, f"{ETCD_STORE}'s ETCD_ENDPOINTS names every member: {endpoints}")
    check(published(s).get(ETCD_PORT) == inner, f"{ETCD_STORE} publishes {ETCD_PORT} -> {inner}")
    host_ips = {p.get("host_ip") for n in list(STORES) + [ETCD_STORE] for p in services.get(n, {}).get("ports", [])}
    check(len(host_ips) == 1, f"{ETCD_STORE} publishes on the stores' address ({sorted(map(str, host_ips))})")
    check(re.search(r'^\s*- "\$\{LAB_PUBLISH_HOST:-127\.0\.0\.1\}:%d:%d"\s*$' % (ETCD_PORT, inner),
                    compose_text, re.M) is not None,
          f"{ETCD_STORE}'s {ETCD_PORT} is published on ${{LAB_PUBLISH_HOST:-127.0.0.1}} in the Compose file")
    check(s.get("init") is True, f"{ETCD_STORE} runs under an init (so /admin/crash's SIGKILL works)")
    test = " ".join(s.get("healthcheck", {}).get("test", []))
    check("/health" in test and f"/{inner}" in test and '"status":"ok"' in test,
          f'{ETCD_STORE} healthcheck asks /health on {inner} and passes only on "status":"ok"')
    check("build" in s, f"{ETCD_STORE} is built from the repository's Dockerfile")
    tmpfs = s.get("tmpfs") or []
    tmpfs = [tmpfs] if isinstance(tmpfs, str) else tmpfs
    check(any(t.split(":")[0] == env.get("DATA_DIR", "/data") for t in tmpfs)
          and not [v for v in s.get("volumes", []) if v.get("target") == env.get("DATA_DIR", "/data")],
          f"{ETCD_STORE} keeps its DATA_DIR on a tmpfs (no volume, anonymous or named: the data is in etcd)")
    deps = s.get("depends_on", {})
    check(all(deps.get(m, {}).get("condition") == "service_healthy" for m in members),
          f"{ETCD_STORE} waits for {', '.join(members)} to be healthy")
    backend = (REPO / "backends" / "store" / "src" / "etcd" / "mod.rs").read_text()
    named = re.findall(r"docker compose kill ([a-z0-9-]+)[^\"]*?\(or ([a-z0-9-]+), ([a-z0-9-]+)\)", backend)
    named = sorted(set(named[0])) if named else []
    check(named == members, f"the etcd backend's ?mode=leader answer names `docker compose kill` of the members ({named})")


def main():
    config = json.loads(Path(sys.argv[1]).read_text())
    default = set(Path(sys.argv[2]).read_text().split())
    offline = set(Path(sys.argv[3]).read_text().split())
    services, volumes = config["services"], config.get("volumes", {})
    volume_names = {v.get("name", k) for k, v in volumes.items()}

    for name, (backend, port, volume) in STORES.items():
        s = services.get(name)
        check(s is not None, f"service {name} exists")
        if s is None:
            continue
        env = s.get("environment", {})
        check(env.get("KV_BACKEND") == backend, f"{name} runs KV_BACKEND={backend}")
        inner = int(env.get("PORT", "8000"))
        check(published(s).get(port) == inner, f"{name} publishes {port} -> {inner}")
        check(s.get("restart") == "always", f"{name} has restart: always")
        check(s.get("init") is True, f"{name} runs under an init (so /admin/crash's SIGKILL works)")
        test = " ".join(s.get("healthcheck", {}).get("test", []))
        check("/health" in test and f"/{inner}" in test, f"{name} healthcheck asks /health on {inner}")
        check('"status":"ok"' in test, f'{name} healthcheck passes only on "status":"ok" (not recovering, not poisoned)')
        mounts = {v["target"]: v.get("source") for v in s.get("volumes", [])}
        src = mounts.get("/data")
        check(src in volumes and volumes[src].get("name") == volume,
              f"{name} keeps /data on the volume named {volume}")
        check(env.get("DATA_DIR", "/data") == "/data", f"{name} DATA_DIR is /data")
        check("build" in s, f"{name} is built from the repository's Dockerfile")
    r = services.get(REDB_STORE, {})
    check(r.get("profiles") == [REDB_PROFILE], f"{REDB_STORE} is under the profile {REDB_PROFILE} only")
    check(r.get("environment", {}).get("KV_BACKEND") == "redb", f"{REDB_STORE} runs KV_BACKEND=redb")
    check(any(p.get("published") in (str(REDB_PORT), REDB_PORT) for p in r.get("ports", [])),
          f"{REDB_STORE} publishes {REDB_PORT}")
    redb_mounts = {v["target"]: v.get("source") for v in r.get("volumes", [])}
    check(volumes.get(redb_mounts.get("/data"), {}).get("name") == REDB_VOLUME,
          f"{REDB_STORE} keeps /data on the volume named {REDB_VOLUME}")
    check(volume_names == {v for _, _, v in STORES.values()} | {PROMETHEUS_VOLUME} | set(ETCD_MEMBERS.values()) | {REDB_VOLUME},
          f"volumes are {sorted(volume_names)}")
    pm = {v["target"]: v.get("source") for v in services.get("prometheus", {}).get("volumes", [])}
    check(volumes.get(pm.get("/prometheus"), {}).get("name") == PROMETHEUS_VOLUME,
          f"prometheus keeps /prometheus on the volume named {PROMETHEUS_VOLUME}")

    check_etcd(services, volumes)

    check(default == DEFAULT_SERVICES,
          f"a plain `up` starts {sorted(DEFAULT_SERVICES)} (it starts {sorted(default)})")
    check(offline == OFFLINE_SERVICES,
          f"`COMPOSE_PROFILES= up` starts {sorted(OFFLINE_SERVICES)} (it starts {sorted(offline)})")
    for name in ("grafana", "jaeger", "lab25-k6"):
        check(bool(services.get(name, {}).get("profiles")), f"{name} is under a profile")
    for name in ("prometheus", "lab25-k6"):
        deps = services.get(name, {}).get("depends_on", {})
        check(all(deps.get(st, {}).get("condition") == "service_healthy" for st in STORES),
              f"{name} waits for {', '.join(STORES)} to be healthy")

    for name, ports in UI.items():
        s = services.get(name, {})
        for port in ports:
            check(port in published(s), f"{name} publishes {port}")
    g = services.get("grafana", {}).get("environment", {})
    check(g.get("GF_SECURITY_ADMIN_USER") == "admin" and g.get("GF_SECURITY_ADMIN_PASSWORD") == "admin",
          "grafana login is admin/admin")
    check("jaegertracing/jaeger:2." in services.get("jaeger", {}).get("image", ""),
          "jaeger is the v2 image")

    k6 = services.get("lab25-k6", {})
    k6_mounts = {v["target"]: v.get("source") for v in k6.get("volumes", [])}
    check(k6_mounts.get("/scripts") == str(REPO / "k6"), "lab25-k6 mounts k6/ at /scripts")
    k6_env = k6.get("environment", {})
    check(bool(k6_env.get("IN_COMPOSE")), "lab25-k6 sets IN_COMPOSE (k6/lib.js's switch)")
    lib = (REPO / "k6" / "lib.js").read_text()
    for name, (backend, _, _) in STORES.items():
        inner = services.get(name, {}).get("environment", {}).get("PORT", "8000")
        url = f"http://{name}:{inner}"
        check(k6_env.get(f"{backend.upper()}_URL") == url, f"lab25-k6 sets {backend.upper()}_URL={url}")
        check(f"{backend}: '{url}'" in lib, f"k6/lib.js's IN_COMPOSE default for {backend} is {url}")
    # The profile etcd's services, for k6/compare.js's BACKENDS=etcd,etcd-direct.
    etcd_inner = services.get(ETCD_STORE, {}).get("environment", {}).get("PORT", "8000")
    first = sorted(ETCD_MEMBERS)[0]
    for var, key, url in (("ETCD_URL", "etcd", f"http://{ETCD_STORE}:{etcd_inner}"),
                          ("ETCD_DIRECT_URL", "'etcd-direct'", f"http://{first}:{ETCD_CLIENT_PORT}")):
        check(k6_env.get(var) == url, f"lab25-k6 sets {var}={url}")
        check(f"{key}: '{url}'" in lib, f"k6/lib.js's IN_COMPOSE default for {key.strip(chr(39))} is {url}")

    prom_cmd = services.get("prometheus", {}).get("command") or []
    check("--web.enable-remote-write-receiver" in prom_cmd,
          "prometheus takes remote writes (--web.enable-remote-write-receiver)")
    check("--enable-feature=native-histograms" in prom_cmd,
          "prometheus stores native histograms (--enable-feature=native-histograms)")
    listen = next((a.split(":")[-1] for a in prom_cmd if a.startswith("--web.listen-address=")), "9090")
    check("experimental-prometheus-rw" in k6_env.get("K6_OUT", "").split(","),
          "lab25-k6 sends every run to Prometheus (K6_OUT=experimental-prometheus-rw)")
    rw = f"http://prometheus:{listen}/api/v1/write"
    check(k6_env.get("K6_PROMETHEUS_RW_SERVER_URL") == rw, f"lab25-k6 remote-writes to {rw}")
    native = str(k6_env.get("K6_PROMETHEUS_RW_TREND_AS_NATIVE_HISTOGRAM", "")).lower() == "true"
    check(native, "lab25-k6 sends trends as native histograms (K6_PROMETHEUS_RW_TREND_AS_NATIVE_HISTOGRAM)")
    check("prometheus" in k6.get("depends_on", {}), "lab25-k6 starts Prometheus with it")
    for dash in sorted((REPO / "grafana" / "dashboards").glob("*.json")):
        stats = sorted(set(re.findall(r"\bk6_\w+?_(?:p\d+|avg|min|max|med|count|sum)\b", dash.read_text())))
        check(not stats, f"{dash.name} reads k6's trends as native histograms (per-stat names: {stats})")

    all_ports = {p for s in services.values() for p in published(s)}
    runbook = (REPO / "RUNBOOK.md").read_text()
    # 8000 is `walab lab`'s own page, which the Compose stack does not need (Grafana,
    # Prometheus and Jaeger show the same there).
    lab_only = {8000}
    for port in sorted({int(p) for p in re.findall(r"localhost:(\d+)", runbook)} - lab_only):
        check(port in all_ports, f"RUNBOOK.md's localhost:{port} is published by the stack")
    names = set(services) | volume_names
    for word in sorted(set(re.findall(r"\blab25-[a-z0-9-]+", runbook))):
        check(word in names, f"RUNBOOK.md's {word} is a service or volume of the stack")
    for svc in sorted(set(re.findall(r"docker compose run --rm (\S+)", runbook))):
        check(svc in services, f"RUNBOOK.md runs the service {svc}")

    prom = (REPO / "prometheus" / "prometheus.yml").read_text()
    targets = set(re.findall(r'"([a-z0-9-]+:\d+)"', prom))
    want = {f"{n}:{services[n].get('environment', {}).get('PORT', '8000')}" for n in STORES if n in services}
    check(want <= targets, f"prometheus/prometheus.yml scrapes {sorted(want)}")
    etcd_target = f"{ETCD_STORE}:{services.get(ETCD_STORE, {}).get('environment', {}).get('PORT', '8000')}"
    check(etcd_target in targets, f"prometheus/prometheus.yml scrapes {etcd_target} (up with the profile etcd)")
    want.add(etcd_target)
    for t in targets - want:
        check(t.split(":")[0] in services or t.startswith("localhost:"), f"scrape target {t} exists")

    gm = {v["target"]: v.get("source") for v in services.get("grafana", {}).get("volumes", [])}
    check(gm.get("/etc/grafana/provisioning") == str(REPO / "grafana" / "provisioning"),
          "grafana mounts grafana/provisioning")
    provider = (REPO / "grafana/provisioning/dashboards/walab.yml").read_text()
    path = re.search(r"path:\s*(\S+)", provider).group(1)
    check(gm.get(path) == str(REPO / "grafana" / "dashboards"),
          f"grafana mounts grafana/dashboards at the provider's path {path}")
    ds = (REPO / "grafana/provisioning/datasources/prometheus.yml").read_text()
    check("http://prometheus:9090" in ds and "prometheus" in services,
          "the datasource points at the prometheus service")
    check(re.search(r"^\s*type:\s*prometheus\s*$", ds, re.M) and re.search(r"^\s*isDefault:\s*true\s*$", ds, re.M),
          "the provisioned datasource is the default Prometheus (where the datasource variable starts)")
    variable = {"type": "prometheus", "uid": "${datasource}"}
    builtin = {"type": "grafana", "uid": "-- Grafana --"}
    for dash in sorted((REPO / "grafana" / "dashboards").glob("*.json")):
        text = dash.read_text()
        check("${DS_" not in text, f"{dash.name} has no ${{DS_...}} placeholder")
        d = json.loads(text)
        dsvars = [v for v in d.get("templating", {}).get("list", []) if v.get("type") == "datasource"]
        check([(v.get("name"), v.get("query")) for v in dsvars] == [("datasource", "prometheus")],
              f"{dash.name} has one datasource variable, `datasource`, of Prometheus datasources")
        refs = []
        def walk(o):
            if isinstance(o, dict):
                for k, v in o.items():
                    if k == "datasource":
                        refs.append(v)
                    walk(v)
            elif isinstance(o, list):
                for v in o:
                    walk(v)
        walk(d)
        odd = [r for r in refs if r not in (variable, builtin, "${datasource}")]
        check(refs and not odd,
              f"{dash.name}: all {len(refs)} datasource references are ${{datasource}} (others: {odd[:3]})")
        uids = set(re.findall(r'"uid":\s*"([^"]+)"', text)) - {"-- Grafana --", "${datasource}", d.get("uid")}
        check(not uids, f"{dash.name} pins no datasource uid (found {sorted(uids)})")

    if failures:
        print(f"\n{len(failures)} check(s) failed")
        return 1
    print("\nthe Compose stack, Prometheus, Grafana and RUNBOOK.md agree")
    return 0


if __name__ == "__main__":
    sys.exit(main())
