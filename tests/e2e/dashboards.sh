#!/usr/bin/env bash
# tests/e2e/dashboards.sh: prove the Grafana dashboards against a real Prometheus.
#
# 1. Installs Debian's prometheus (prometheus + promtool) if it is missing.
# 2. `promtool check config` on prometheus/prometheus.yml (Compose) and prometheus/lab.yml.
# 3. Starts `walab lab` (data in a temp dir, the runbook's ports 8001-8003) and a Prometheus
#    on a free port scraping it with prometheus/lab.yml (1 s scrapes, temp storage).
# 4. Puts load on all three stores for LOAD_SECONDS: writers, readers, some missing keys, a
#    manual checkpoint, and one crash of each store (so restarts and recoveries show).
# 5. `promtool check metrics` on every store's /metrics.
# 6. Runs EVERY PromQL expression of EVERY panel (and every annotation) of every dashboard
#    in grafana/dashboards through Prometheus' HTTP API, with Grafana's variables
#    substituted ($backend -> all three, $__rate_interval -> 30s, $__interval -> 5s): each
#    must parse and return a series, with a number, for every backend it is meant to show.
#    An expression over walab_wal_* metrics is meant to show the wal backend; any other, all
#    three. The `backend` variable's own query must list all three.
#
# Environment: WALAB (default target/release/walab), LOAD_SECONDS (default 20),
# E2E_KEEP=1 keeps the temp dir.

set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
walab="${WALAB:-$repo/target/release/walab}"
LOAD_SECONDS=${LOAD_SECONDS:-20}
PORTS=(8001 8002 8003)

say() { printf '%s\n' "$*"; }
die() {
  printf 'FAIL: %s\n' "$*" >&2
  exit 1
}

if ! command -v prometheus > /dev/null || ! command -v promtool > /dev/null; then
  say "installing Debian's prometheus"
  as_root=()
  [ "$(id -u)" = 0 ] || as_root=(sudo)
  "${as_root[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update
  "${as_root[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends prometheus
fi
prometheus --version 2>&1 | head -n 1
[ -x "$walab" ] || die "no walab binary at $walab (cargo build --release, or set WALAB)"
for port in "${PORTS[@]}"; do
  if (exec 3<> "/dev/tcp/127.0.0.1/$port") 2> /dev/null; then
    die "port $port is in use; walab lab needs 8001-8003"
  fi
done

say "== promtool check config"
promtool check config "$repo/prometheus/prometheus.yml"
promtool check config "$repo/prometheus/lab.yml"

tmp=$(mktemp -d)
lab_pid="" prom_pid=""
cleanup() {
  local rc=$?
  [ -n "$prom_pid" ] && kill "$prom_pid" 2> /dev/null && wait "$prom_pid" 2> /dev/null
  # SIGINT is the lab's Ctrl-C: it stops its three children.
  [ -n "$lab_pid" ] && kill -INT "$lab_pid" 2> /dev/null && wait "$lab_pid" 2> /dev/null
  if [ "$rc" != 0 ]; then
    say "--- last lines of the lab's log"
    tail -n 20 "$tmp/lab.log" 2> /dev/null || true
    say "--- last lines of Prometheus' log"
    tail -n 20 "$tmp/prometheus.log" 2> /dev/null || true
  fi
  if [ "${E2E_KEEP:-}" = 1 ]; then say "kept $tmp"; else rm -rf "$tmp"; fi
  exit "$rc"
}
trap cleanup EXIT

say "== start walab lab and Prometheus"
(
  cd "$tmp"
  exec "$walab" lab --data-dir "$tmp/data" > "$tmp/lab.log" 2>&1
) &
lab_pid=$!
prom_port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
prometheus --config.file="$repo/prometheus/lab.yml" --storage.tsdb.path="$tmp/prom" \
  --web.listen-address="127.0.0.1:$prom_port" > "$tmp/prometheus.log" 2>&1 &
prom_pid=$!
for _ in $(seq 300); do
  ready=1
  for port in "${PORTS[@]}"; do
    curl -fs "http://127.0.0.1:$port/health" > /dev/null 2>&1 || ready=0
  done
  curl -fs "http://127.0.0.1:$prom_port/-/ready" > /dev/null 2>&1 || ready=0
  [ "$ready" = 1 ] && break
  kill -0 "$lab_pid" 2> /dev/null || die "walab lab exited"
  kill -0 "$prom_pid" 2> /dev/null || die "prometheus exited"
  sleep 0.1
done
[ "$ready" = 1 ] || die "the lab or Prometheus did not become ready"
say "   ok: lab on ${PORTS[*]}, Prometheus on $prom_port"
started=$(date +%s)

say "== load: ${LOAD_SECONDS}s of writes and reads on every store, a checkpoint, a crash of each"
python3 - "$LOAD_SECONDS" << 'PY'
import http.client, json, sys, threading, time

SECONDS = float(sys.argv[1])
PORTS = [8001, 8002, 8003]
stop = time.monotonic() + SECONDS
counts = {p: [0, 0, 0] for p in PORTS}  # ok, failed (connection), http errors
lock = threading.Lock()

def request(conn, method, path, body=None):
    conn.request(method, path, body=body, headers={"Content-Type": "application/json"})
    r = conn.getresponse()
    r.read()
    return r.status

def worker(port, tid):
    conn = None
    i = 0
    while time.monotonic() < stop:
        try:
            if conn is None:
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
            i += 1
            key = f"load-{tid}-{i % 500}"
            if i % 3:
                status = request(conn, "POST", "/kv", json.dumps({"key": key, "value": i}))
            elif i % 7 == 0:
                status = request(conn, "GET", f"/kv/missing-{i}")  # a 404 now and then
            else:
                status = request(conn, "GET", f"/kv/{key}")
            with lock:
                counts[port][0 if status < 500 else 2] += 1
        except (OSError, http.client.HTTPException):
            # The store is restarting after its crash: reconnect.
            with lock:
                counts[port][1] += 1
            conn = None
            time.sleep(0.05)

def admin(port, path):
    try:
        c = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
        return request(c, "POST", path)
    except (OSError, http.client.HTTPException) as e:
        return str(e)

threads = [threading.Thread(target=worker, args=(p, t)) for p in PORTS for t in range(3)]
for t in threads:
    t.start()
time.sleep(SECONDS * 0.3)
print("   checkpoint 8001:", admin(8001, "/admin/checkpoint"), " 8003:", admin(8003, "/admin/checkpoint"))
time.sleep(SECONDS * 0.1)
for p in PORTS:
    print(f"   crash {p}:", admin(p, "/admin/crash?mode=process"))
for t in threads:
    t.join()
for p, (ok, failed, errors) in counts.items():
    print(f"   {p}: {ok} answers, {errors} 5xx, {failed} connection errors around the crash")
    if ok < 100:
        sys.exit(f"store on {p} answered only {ok} requests")
PY
sleep 3 # a few more scrapes after the load

say "== promtool check metrics on every store"
for port in "${PORTS[@]}"; do
  curl -fs "http://127.0.0.1:$port/metrics" | promtool check metrics ||
    die "promtool check metrics failed on $port"
  say "   ok: $port"
done

say "== every dashboard query against Prometheus"
python3 - "$prom_port" "$started" "$repo"/grafana/dashboards/*.json << 'PY'
import json, math, re, sys, time, urllib.parse, urllib.request

port, started, files = sys.argv[1], int(sys.argv[2]), sys.argv[3:]
ALL = {"wal", "memory", "sled"}
VARS = {"$backend": "(wal|memory|sled)", "${backend}": "(wal|memory|sled)",
        "$__rate_interval": "30s", "$__interval": "5s", "$__range": "5m"}

def api(path, **params):
    url = f"http://127.0.0.1:{port}/api/v1/{path}?" + urllib.parse.urlencode(params, doseq=True)
    try:
        with urllib.request.urlopen(url, timeout=10) as r:
            return json.load(r)
    except urllib.error.HTTPError as e:
        return json.load(e)

def substitute(expr):
    for k in sorted(VARS, key=len, reverse=True):
        expr = expr.replace(k, VARS[k])
    left = re.findall(r"\$\{?\w+", expr)
    if left:
        raise ValueError(f"unknown variable(s) {left}")
    return expr

def expected(expr):
    return {"wal"} if "walab_wal_" in expr else ALL

def numbers(series):
    vals = [series["value"][1]] if "value" in series else [v for _, v in series["values"]]
    return [float(v) for v in vals]

failures, checked = [], 0
def check(where, expr, range_query=False):
    global checked
    checked += 1
    try:
        q = substitute(expr)
    except ValueError as e:
        failures.append(f"{where}: {e}")
        return
    if range_query:
        r = api("query_range", query=q, start=started, end=int(time.time()), step="1")
    else:
        r = api("query", query=q)
    if r.get("status") != "success":
        failures.append(f"{where}: {r.get('errorType')}: {r.get('error')}\n      {q}")
        return
    got = {}
    for s in r["data"]["result"]:
        b = s["metric"].get("backend")
        if any(not math.isnan(v) for v in numbers(s)):
            got.setdefault(b, 0)
            got[b] += 1
    missing = expected(q) - set(got)
    status = "ok" if not missing else "FAIL"
    print(f"   {status}: {where}: series for {sorted(b for b in got if b)}")
    if missing:
        failures.append(f"{where}: no series with a number for {sorted(missing)}\n      {q}")

for f in files:
    d = json.load(open(f))
    name = f.rsplit("/", 1)[-1]
    for v in d.get("templating", {}).get("list", []):
        if v.get("type") != "query":
            continue
        q = v["query"]["query"] if isinstance(v["query"], dict) else v["query"]
        m = re.fullmatch(r"label_values\((\w+),\s*(\w+)\)", q)
        if not m:
            failures.append(f"{name} variable {v['name']}: cannot check query {q}")
            continue
        r = api(f"label/{m.group(2)}/values", **{"match[]": m.group(1)})
        values = set(r.get("data", []))
        checked += 1
        print(f"   {'ok' if values >= ALL else 'FAIL'}: {name} variable ${v['name']}: {sorted(values)}")
        if not values >= ALL:
            failures.append(f"{name} variable {v['name']}: {sorted(values)}")
    panels = []
    def walk(ps):
        for p in ps:
            panels.append(p)
            walk(p.get("panels", []))
    walk(d.get("panels", []))
    for p in panels:
        for t in p.get("targets", []):
            check(f"{name} / {p['title']} / {t.get('refId')}", t["expr"])
    for a in d.get("annotations", {}).get("list", []):
        if "expr" in a:
            # An annotation marks events over the time range: query the whole test run.
            check(f"{name} / annotation {a['name']}", a["expr"], range_query=True)

print(f"   {checked} queries checked")
if failures:
    print("\n".join("FAIL: " + f for f in failures))
    sys.exit(1)
PY
say "PASS"
