#!/usr/bin/env python3
"""bench/bench.py: the comparison report. Run it through bench/run.sh, which checks the tools.

For each configuration (memory; wal under each sync policy; sled under both flush modes) it
starts one `walab serve` on a free port over a fresh data directory, drives it with k6
(k6/compare.js: 1, 16 and 64 VUs writing, 16 reading) and with wrk (bench/wrk/*.lua: 1, 16 and
64 connections writing, 64 reading), and stops it. Around that: the disk's raw fdatasync rate,
each load generator's ceiling (GET /health on the memory backend), restart-to-healthy after a
crash with 0, 10k and 1M records to replay and after a checkpoint, and with --anchors etcd
(through its JSON gateway, by the same k6 scenario) and Redis (redis-benchmark, AOF always vs
none). Writes bench/results/<date>.md, .json and .svg.
"""

import argparse
import datetime
import json
import os
import platform
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import time
import urllib.error
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
WRK_DIR = os.path.join(ROOT, "bench", "wrk")
COMPARE_JS = os.path.join(ROOT, "k6", "compare.js")
VALUE_BYTES = 100

# name, label, environment. The first is the reference every row is divided by.
CONFIGS = [
    ("memory", "memory", {"KV_BACKEND": "memory"}),
    ("wal-always", "wal FSYNC=always, group commit", {"KV_BACKEND": "wal", "FSYNC": "always", "GROUP_COMMIT": "on"}),
    ("wal-always-nogc", "wal FSYNC=always, GROUP_COMMIT=off", {"KV_BACKEND": "wal", "FSYNC": "always", "GROUP_COMMIT": "off"}),
    ("wal-interval", "wal FSYNC=interval:1000", {"KV_BACKEND": "wal", "FSYNC": "interval:1000", "GROUP_COMMIT": "on"}),
    ("wal-never", "wal FSYNC=never", {"KV_BACKEND": "wal", "FSYNC": "never", "GROUP_COMMIT": "on"}),
    ("sled-background", "sled SLED_FLUSH=background", {"KV_BACKEND": "sled", "SLED_FLUSH": "background"}),
    ("sled-always", "sled SLED_FLUSH=always", {"KV_BACKEND": "sled", "SLED_FLUSH": "always"}),
]
WALAB_VARS = ["KV_BACKEND", "WAL_ENABLED", "HOST", "PORT", "DATA_DIR", "FSYNC", "GROUP_COMMIT",
              "CHECKPOINT_THRESHOLD", "SEGMENT_BYTES", "RECOVERY_MODE", "SLED_FLUSH", "MAX_VALUE_BYTES",
              "ADMIN_TOKEN", "OTEL_SERVICE_NAME", "OTEL_EXPORTER_OTLP_ENDPOINT", "RUST_LOG"]
WRITE_CONNS = [1, 16, 64]
READ_CONNS = 64
K6_READ_VUS = 16
NEAR_CEILING = 0.8
REPEAT_LABEL = "memory, again at the end (the run's noise)"


def log(msg):
    print(f"[bench {time.strftime('%H:%M:%S')}] {msg}", flush=True)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def http(method, url, body=None, timeout=5):
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(url, data=data, method=method, headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


def healthy(url, path="/health"):
    try:
        status, _ = http("GET", url + path, timeout=1)
        return status == 200
    except OSError:
        return False


def wait_healthy(url, proc, timeout=60, poll=0.002, path="/health"):
    """Seconds from now until url answers 200; raises if proc dies or time runs out."""
    start = time.perf_counter()
    while time.perf_counter() - start < timeout:
        if healthy(url, path):
            return time.perf_counter() - start
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"{url}: the process exited ({proc.returncode}) before it was healthy")
        time.sleep(poll)
    raise RuntimeError(f"{url} was not healthy within {timeout} s")


class Server:
    """One `walab serve` child on a free port."""

    def __init__(self, walab, data_dir, env, logdir, name):
        self.walab, self.data_dir, self.extra, self.name = walab, data_dir, env, name
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.logpath = os.path.join(logdir, f"{name}.log")
        self.proc = None

    def start(self):
        env = {k: v for k, v in os.environ.items() if k not in WALAB_VARS}
        env.update({"HOST": "127.0.0.1", "PORT": str(self.port), "DATA_DIR": self.data_dir, "RUST_LOG": "warn"})
        env.update(self.extra)
        t0 = time.perf_counter()
        self.proc = subprocess.Popen([self.walab, "serve"], env=env, stdout=open(self.logpath, "a"),
                                     stderr=subprocess.STDOUT, start_new_session=True)
        waited = wait_healthy(self.url, self.proc)
        return time.perf_counter() - t0 if waited is not None else None

    def stats(self):
        status, body = http("GET", self.url + "/admin/stats")
        return json.loads(body) if status == 200 else {}

    def crash(self):
        """POST /admin/crash and wait for the process to die; returns the reply."""
        status, body = http("POST", self.url + "/admin/crash")
        if status != 200:
            raise RuntimeError(f"{self.name}: /admin/crash answered {status}: {body[:200]}")
        self.proc.wait(timeout=30)
        return json.loads(body)

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


# ---------------------------------------------------------------------------------------
# load generators


def run_wrk(url, script, conns, seconds, args, timeout_s=10):
    threads = min(2, conns)
    cmd = ["wrk", f"-t{threads}", f"-c{conns}", f"-d{seconds}s", f"--timeout", f"{timeout_s}s",
           "-s", os.path.join(WRK_DIR, script), url, "--"] + [str(a) for a in args]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=seconds + 60)
    m = re.search(r"^WRKJSON (\{.*\})$", out.stdout, re.M)
    if not m:
        raise RuntimeError(f"wrk printed no result: {out.stdout[-500:]} {out.stderr[-500:]}")
    r = json.loads(m.group(1))
    errors = sum(v for k, v in r.items() if k.startswith("errors_"))
    dur = r["duration_us"] / 1e6
    return {
        "tool": "wrk", "conns": conns, "requests": r["requests"], "duration_s": dur,
        "rps": (r["requests"] - r["errors_status"]) / dur if dur else 0,
        "p50_ms": r["p50_us"] / 1000, "p95_ms": r["p95_us"] / 1000, "p99_ms": r["p99_us"] / 1000,
        "max_ms": r["max_us"] / 1000, "errors": errors,
    }


def wrk_load(server, prefix, count, conns=8, patience=600):
    """Write keys prefix-0..prefix-(count-1) with wrk; stop it once the store holds them."""
    threads = 2
    before = server.stats().get("item_count", 0)
    cmd = ["wrk", f"-t{threads}", f"-c{conns}", f"-d{patience}s", "--timeout", "10s",
           "-s", os.path.join(WRK_DIR, "load.lua"), server.url, "--", prefix, str(count), str(VALUE_BYTES), str(threads)]
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        while time.perf_counter() - t0 < patience:
            time.sleep(0.05)
            if proc.poll() is not None:
                break
            if server.stats().get("item_count", 0) - before >= count - threads * conns:
                # the threads stop at their quota; give in-flight answers a moment
                time.sleep(0.1)
                break
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)
        out, _ = proc.communicate(timeout=30)
    elapsed = time.perf_counter() - t0
    m = re.search(r"^WRKJSON (\{.*\})$", out, re.M)
    r = json.loads(m.group(1)) if m else {}
    return {"seconds": elapsed, "requests": r.get("requests"), "errors_status": r.get("errors_status")}


def run_k6(backend, url, ops, vus, seconds, summary_path, read_vus=None, extra_env=None):
    env = dict(os.environ)
    env.update({
        "BACKENDS": backend, f"{backend.upper()}_URL": url, "OPS": ",".join(ops),
        "VUS": ",".join(str(v) for v in vus), "DURATION": f"{seconds}s", "GAP": "0.5",
        "SUMMARY_JSON": summary_path, "VALUE_BYTES": str(VALUE_BYTES), "PRELOAD": "1000",
        "K6_NO_USAGE_REPORT": "true",
    })
    if read_vus:
        env["READ_VUS"] = ",".join(str(v) for v in read_vus)
    env.update(extra_env or {})
    env.pop("IN_COMPOSE", None)
    out = subprocess.run(["k6", "run", "--quiet", "--no-color", COMPARE_JS], env=env, capture_output=True, text=True,
                         timeout=600)
    # exit 99: a threshold crossed; the rows still stand (and say so)
    if out.returncode not in (0, 99) or not os.path.exists(summary_path):
        raise RuntimeError(f"k6 failed ({out.returncode}): {out.stdout[-800:]} {out.stderr[-800:]}")
    with open(summary_path) as f:
        summary = json.load(f)
    rows = []
    for r in summary["rows"]:
        rows.append({
            "tool": "k6", "op": r["op"], "conns": r["vus"], "requests": r["requests"], "duration_s": r["duration_s"],
            "rps": r["requests"] * (1 - (r["failed_rate"] or 0)) / r["duration_s"],
            "p50_ms": r["p50_ms"], "p95_ms": r["p95_ms"], "p99_ms": r["p99_ms"], "max_ms": r["max_ms"],
            "errors": round(r["requests"] * (r["failed_rate"] or 0)),
        })
    return rows, summary.get("thresholds_failed", [])


# ---------------------------------------------------------------------------------------
# measurements


def measure_disk(directory, seconds):
    """Serial 4 KiB append + fdatasync, as a WAL with one writer and no group commit does."""
    path = os.path.join(directory, "fdatasync-probe")
    block = b"\xa5" * 4096
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    lat = []
    try:
        end = time.perf_counter() + seconds
        while time.perf_counter() < end:
            t0 = time.perf_counter()
            os.write(fd, block)
            os.fdatasync(fd)
            lat.append(time.perf_counter() - t0)
    finally:
        os.close(fd)
        os.unlink(path)
    lat.sort()
    q = lambda p: lat[min(len(lat) - 1, int(p * len(lat)))] * 1000
    return {"syncs": len(lat), "rate": len(lat) / sum(lat), "p50_ms": q(0.5), "p99_ms": q(0.99)}


def bench_config(walab, name, label, env, data_root, logdir, seconds, threshold, preload):
    log(f"{label}: starting walab serve")
    env = dict(env)
    if env.get("KV_BACKEND") == "wal":
        env["CHECKPOINT_THRESHOLD"] = str(threshold)
    server = Server(walab, os.path.join(data_root, name), env, logdir, name)
    server.start()
    rows = []
    try:
        # reads first, on a preloaded set of keys, before the writes grow the store
        wrk_load(server, "pre", preload)
        status, body = http("GET", server.url + "/kv?prefix=pre-", timeout=60)
        keys = sorted(json.loads(body)["data"]) if status == 200 else []
        if len(keys) < preload * 0.9:
            raise RuntimeError(f"{label}: only {len(keys)} of {preload} preloaded keys are there")
        keyfile = os.path.join(logdir, f"keys-{name}.txt")
        with open(keyfile, "w") as f:
            f.write("\n".join(keys) + "\n")
        r = run_wrk(server.url, "read.lua", READ_CONNS, seconds, [keyfile])
        rows.append({**r, "op": "read"})
        for c in WRITE_CONNS:
            r = run_wrk(server.url, "write.lua", c, seconds, [f"wrk{c}", VALUE_BYTES])
            rows.append({**r, "op": "write"})
        k6rows, crossed = run_k6(env["KV_BACKEND"], server.url, ["write", "read"], WRITE_CONNS, seconds,
                                 os.path.join(logdir, f"k6-{name}.json"), read_vus=[K6_READ_VUS])
        rows.extend(k6rows)
        stats = server.stats()
    finally:
        server.stop()
    for r in rows:
        r.update({"config": name, "label": label})
    extra = {k: stats.get(k) for k in ("fsync_count", "group_commit_batches", "checkpoints", "item_count") if k in stats}
    log(f"{label}: " + ", ".join(f"{r['tool']} {r['op']} c{r['conns']} {r['rps']:.0f}/s p99 {r['p99_ms']:.2f} ms"
                                  for r in rows))
    return rows, {"stats": extra, "k6_thresholds_crossed": crossed}


def ceilings(walab, data_root, logdir, seconds):
    server = Server(walab, os.path.join(data_root, "ceiling"), {"KV_BACKEND": "memory"}, logdir, "ceiling")
    server.start()
    try:
        w = run_wrk(server.url, "health.lua", 64, seconds, [])
        k, _ = run_k6("memory", server.url, ["health"], [64], seconds, os.path.join(logdir, "k6-ceiling.json"))
    finally:
        server.stop()
    return {"wrk": w, "k6": k[0]}


def recovery(walab, data_root, logdir, sizes):
    """Restart-to-healthy after a crash: spawn of the new process to its first 200 on /health."""
    out = []
    d = os.path.join(data_root, "recovery")
    env = {"KV_BACKEND": "wal", "FSYNC": "never", "CHECKPOINT_THRESHOLD": "0"}

    def restart(case, server):
        before = server.stats()
        server.crash()
        s2 = Server(walab, d, env, logdir, "recovery")
        s2.port, s2.url = server.port, server.url
        t = s2.start()
        st = s2.stats()
        lr = st.get("last_recovery", {})
        row = {"case": case, "restart_to_healthy_ms": t * 1000, "items": st.get("item_count"),
               "entries_replayed": lr.get("entries_replayed"), "recovery_ms": lr.get("duration_ms"),
               "snapshot_keys": (lr.get("snapshot") or {}).get("keys"), "wal_size_bytes": before.get("wal_size_bytes")}
        log(f"recovery {case}: healthy {row['restart_to_healthy_ms']:.0f} ms after spawn, replayed "
            f"{row['entries_replayed']} in {row['recovery_ms']} ms, {row['items']} keys")
        out.append(row)
        return s2

    server = Server(walab, d, env, logdir, "recovery")
    server.start()
    loaded = 0
    try:
        server = restart("0 records", server)
        for n in sizes:
            t = wrk_load(server, f"rec{n}", n - loaded, conns=16)
            log(f"recovery: loaded {n - loaded} records in {t['seconds']:.1f} s (FSYNC=never, CHECKPOINT_THRESHOLD=0)")
            loaded = n
            server = restart(f"{n:,} records", server)
        t0 = time.perf_counter()
        status, body = http("POST", server.url + "/admin/checkpoint", timeout=300)
        cp_ms = (time.perf_counter() - t0) * 1000
        log(f"recovery: checkpoint of {loaded} keys took {cp_ms:.0f} ms ({status})")
        server = restart(f"{loaded:,} keys, fresh checkpoint", server)
        out[-1]["checkpoint_ms"] = cp_ms
    finally:
        server.stop()
    return out


def etcd_anchor(data_root, logdir, seconds):
    cport, pport = free_port(), free_port()
    url = f"http://127.0.0.1:{cport}"
    peer = f"http://127.0.0.1:{pport}"
    cmd = ["etcd", "--name", "bench", "--data-dir", os.path.join(data_root, "etcd"),
           "--listen-client-urls", url, "--advertise-client-urls", url,
           "--listen-peer-urls", peer, "--initial-advertise-peer-urls", peer,
           "--initial-cluster", f"bench={peer}", "--log-level", "error", "--logger", "zap"]
    proc = subprocess.Popen(cmd, stdout=open(os.path.join(logdir, "etcd.log"), "w"), stderr=subprocess.STDOUT,
                            start_new_session=True)
    try:
        wait_healthy(url, proc, timeout=60, poll=0.05)
        version = subprocess.run(["etcd", "--version"], capture_output=True, text=True).stdout.split("\n")[0]
        rows, _ = run_k6("etcd", url, ["write"], WRITE_CONNS, seconds, os.path.join(logdir, "k6-etcd.json"))
    finally:
        proc.terminate()
        proc.wait(timeout=20)
    for r in rows:
        r.update({"config": "etcd", "label": "etcd (JSON gateway /v3/kv/put, durable)", "anchor": True})
    log("etcd: " + ", ".join(f"c{r['conns']} {r['rps']:.0f}/s p99 {r['p99_ms']:.1f} ms" for r in rows))
    return rows, version


def redis_anchor(data_root, logdir, seconds):
    rows = []
    version = subprocess.run(["redis-server", "--version"], capture_output=True, text=True).stdout.strip()
    for name, label, aof in [("redis-noaof", "redis, no AOF (no persistence)", ["--appendonly", "no"]),
                             ("redis-aof-always", "redis appendonly yes, appendfsync always",
                              ["--appendonly", "yes", "--appendfsync", "always"])]:
        port = free_port()
        d = os.path.join(data_root, name)
        os.makedirs(d, exist_ok=True)
        proc = subprocess.Popen(["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "",
                                 "--dir", d, "--daemonize", "no", "--protected-mode", "no"] + aof,
                                stdout=open(os.path.join(logdir, f"{name}.log"), "w"), stderr=subprocess.STDOUT,
                                start_new_session=True)
        try:
            for _ in range(500):
                if subprocess.run(["redis-cli", "-p", str(port), "ping"], capture_output=True, text=True).stdout.strip() == "PONG":
                    break
                time.sleep(0.02)
            for c in (1, 64):
                # size -n for about `seconds` of load from a short probe
                probe = redis_benchmark(port, c, 2000)
                n = max(2000, int(probe["rps"] * seconds))
                r = redis_benchmark(port, c, n)
                rows.append({**r, "config": name, "label": label, "anchor": True, "op": "write", "tool": "redis-benchmark"})
                log(f"{label}: c{c} {r['rps']:.0f}/s p99 {r['p99_ms']:.2f} ms")
        finally:
            proc.terminate()
            proc.wait(timeout=20)
    return rows, version


def redis_benchmark(port, conns, n):
    out = subprocess.run(["redis-benchmark", "-p", str(port), "-t", "set", "-c", str(conns), "-n", str(n),
                          "-d", str(VALUE_BYTES), "-r", "100000000", "--csv"], capture_output=True, text=True, timeout=600)
    lines = [l for l in out.stdout.strip().splitlines() if l.startswith('"')]
    header = [h.strip('"') for h in lines[0].split(",")]
    vals = [v.strip('"') for v in lines[-1].split(",")]
    d = dict(zip(header, vals))
    return {"conns": conns, "requests": n, "rps": float(d["rps"]), "p50_ms": float(d["p50_latency_ms"]),
            "p95_ms": float(d["p95_latency_ms"]), "p99_ms": float(d["p99_latency_ms"]),
            "max_ms": float(d["max_latency_ms"]), "errors": 0, "duration_s": n / float(d["rps"])}


# ---------------------------------------------------------------------------------------
# report


def find(rows, config, tool, op, conns):
    for r in rows:
        if r["config"] == config and r["tool"] == tool and r["op"] == op and r["conns"] == conns:
            return r
    return None


def fmt(v, digits=0):
    if v is None:
        return "-"
    if digits == 0:
        return f"{v:,.0f}"
    return f"{v:.{digits}f}"


def targets(rows, disk, rec, anchors):
    t = []

    def add(text, measured, ok):
        t.append({"target": text, "measured": measured, "met": ok})

    mem64 = find(rows, "memory", "wrk", "write", 64)
    wal64 = find(rows, "wal-always", "wrk", "write", 64)
    nogc64 = find(rows, "wal-always-nogc", "wrk", "write", 64)
    etcd1 = find(rows, "etcd", "k6", "write", 1)
    etcd64 = find(rows, "etcd", "k6", "write", 64)
    walk1 = find(rows, "wal-always", "k6", "write", 1)
    walk64 = find(rows, "wal-always", "k6", "write", 64)
    wal1 = find(rows, "wal-always", "wrk", "write", 1)
    memr = find(rows, "memory", "wrk", "read", READ_CONNS)
    walr = find(rows, "wal-always", "wrk", "read", READ_CONNS)

    if mem64 and wal64:
        x = wal64["rps"] / mem64["rps"]
        add("WAL (FSYNC=always, group commit), 64 connections: >= 0.8x memory's write throughput",
            f"{x:.2f}x ({fmt(wal64['rps'])} vs {fmt(mem64['rps'])} writes/s, wrk)", x >= 0.8)
    if etcd64 and walk64:
        x = walk64["rps"] / etcd64["rps"]
        add("... and >= 5x etcd's durable puts/s at 64 connections",
            f"{x:.1f}x ({fmt(walk64['rps'])} vs {fmt(etcd64['rps'])}/s, both k6, 64 VUs)", x >= 5)
    elif not anchors:
        add("... and >= 5x etcd's durable puts/s at 64 connections", "not measured (run with --anchors)", None)
    if wal1 and disk:
        limit = disk["p50_ms"] + 0.1
        add("WAL at 1 connection: p50 write latency <= the disk's fdatasync p50 + 0.1 ms",
            f"{wal1['p50_ms']:.3f} ms vs {disk['p50_ms']:.3f} + 0.1 = {limit:.3f} ms (wrk, 1 connection)",
            wal1["p50_ms"] <= limit)
    if etcd1 and walk1:
        x = walk1["rps"] / etcd1["rps"]
        add("... and >= 3x etcd's puts/s at 1 connection",
            f"{x:.1f}x ({fmt(walk1['rps'])} vs {fmt(etcd1['rps'])}/s, both k6, 1 VU)", x >= 3)
    elif not anchors:
        add("... and >= 3x etcd's puts/s at 1 connection", "not measured (run with --anchors)", None)
    if wal64 and nogc64:
        x = wal64["rps"] / nogc64["rps"]
        add("Group commit on vs off at 64 connections: >= 4x the write throughput",
            f"{x:.1f}x ({fmt(wal64['rps'])} vs {fmt(nogc64['rps'])} writes/s, wrk)", x >= 4)
    if memr and walr:
        x = walr["rps"] / memr["rps"]
        add("Reads on the WAL backend: >= 0.9x memory's",
            f"{x:.2f}x ({fmt(walr['rps'])} vs {fmt(memr['rps'])} reads/s, wrk, {READ_CONNS} connections)", x >= 0.9)
    big = [r for r in rec if r.get("entries_replayed") and r["entries_replayed"] >= 1_000_000]
    if big:
        r = big[0]
        add("Restart-to-healthy with 1M records to replay: < 2 s",
            f"{r['restart_to_healthy_ms']:.0f} ms ({r['entries_replayed']:,} records replayed)",
            r["restart_to_healthy_ms"] < 2000)
    else:
        biggest = max((r.get("entries_replayed") or 0 for r in rec), default=0)
        add("Restart-to-healthy with 1M records to replay: < 2 s",
            f"not measured at 1M (largest replay here: {biggest:,} records; --short loads less)", None)
    return t


def svg_chart(rows, path):
    """Two panels: write throughput and write p99 at 64 connections, one bar per row."""
    bars = []
    for name, label, _ in CONFIGS:
        r = find(rows, name, "wrk", "write", 64)
        if r:
            bars.append((label, r["rps"], r["p99_ms"], "wrk, 64 conns", "#4477aa" if name.startswith("wal") else "#999999"))
    for r in rows:
        if r.get("anchor") and r["conns"] == 64:
            bars.append((r["label"], r["rps"], r["p99_ms"], f"{r['tool']}, 64", "#cc6677"))
    if not bars:
        return
    lw, pw, bh, gap, top = 330, 300, 18, 8, 50
    h = top + len(bars) * (bh + gap) + 40
    w = lw + 2 * pw + 80
    maxr = max(b[1] for b in bars) or 1
    maxp = max(b[2] for b in bars) or 1
    esc = lambda s: s.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" font-family="sans-serif" font-size="12">',
           f'<rect width="{w}" height="{h}" fill="white"/>',
           f'<text x="{lw}" y="20" font-weight="bold">writes/s, 64 connections (longer is better)</text>',
           f'<text x="{lw + pw + 40}" y="20" font-weight="bold">p99 write latency, ms (shorter is better)</text>']
    for i, (label, rps, p99, tool, color) in enumerate(bars):
        y = top + i * (bh + gap)
        out.append(f'<text x="{lw - 8}" y="{y + 13}" text-anchor="end">{esc(label)}</text>')
        wr = max(1, rps / maxr * (pw - 60))
        out.append(f'<rect x="{lw}" y="{y}" width="{wr:.1f}" height="{bh}" fill="{color}"/>')
        out.append(f'<text x="{lw + wr + 4:.1f}" y="{y + 13}">{rps:,.0f}</text>')
        x2 = lw + pw + 40
        wp = max(1, p99 / maxp * (pw - 60))
        out.append(f'<rect x="{x2}" y="{y}" width="{wp:.1f}" height="{bh}" fill="{color}" opacity="0.7"/>')
        out.append(f'<text x="{x2 + wp + 4:.1f}" y="{y + 13}">{p99:.2f}</text>')
    out.append(f'<text x="10" y="{h - 12}" fill="#555">blue: walab wal; grey: memory and sled (wrk, POST /kv, unique keys, '
               f'{VALUE_BYTES}-byte values); red: anchors (etcd through k6, Redis through redis-benchmark)</text>')
    out.append("</svg>")
    with open(path, "w") as f:
        f.write("\n".join(out) + "\n")


def report(res, md_path, svg_name):
    rows, disk, ceil = res["rows"], res["disk"], res["ceilings"]
    L = []
    m = res["meta"]
    L.append(f"# walab benchmark, {m['date']}\n")
    L.append(f"`bench/run.sh{' ' + ' '.join(m['args']) if m['args'] else ''}` on {m['host']}: {m['cpus']} CPUs, "
             f"load average {m['loadavg_start']} at the start and {m['loadavg_end']} at the end; walab {m['git']}; "
             f"{m['k6']}; {m['wrk']}. {m['seconds']} s per measurement; every ratio is from this one run.\n")
    if m.get("busy_note"):
        L.append(f"**{m['busy_note']}**\n")
    L.append(f"- **Disk**: {fmt(disk['rate'])} serial 4 KiB write+fdatasync/s, p50 {disk['p50_ms']:.3f} ms, "
             f"p99 {disk['p99_ms']:.3f} ms ({disk['syncs']} syncs, in the data directory's file system).")
    L.append(f"- **Generator ceilings** (GET /health on the memory backend, 64 connections): wrk {fmt(ceil['wrk']['rps'])}/s "
             f"(p99 {ceil['wrk']['p99_ms']:.2f} ms), k6 {fmt(ceil['k6']['rps'])}/s (p99 {ceil['k6']['p99_ms']:.2f} ms). "
             f"A row at {int(NEAR_CEILING * 100)}% or more of its generator's ceiling is marked ⚠: "
             f"there the generator, not the store, may be the limit.")
    L.append(f"- Writes: POST /kv, a unique key per request, {VALUE_BYTES}-byte values; reads: GET /kv/{{key}} over "
             f"keys written before. wal rows run with CHECKPOINT_THRESHOLD={m['checkpoint_threshold']}. "
             f"× memory = this row's requests/s (or p99) divided by the memory backend's under the same load.\n")
    L.append("| store | op | tool | conns | req/s | × memory | p50 ms | p95 ms | p99 ms | p99 × memory | errors | |")
    L.append("|---|---|---|---|---|---|---|---|---|---|---|---|")
    order = {n: i for i, n in enumerate([c[0] for c in CONFIGS] + ["memory-repeat", "etcd", "redis-noaof", "redis-aof-always"])}
    def key(r):
        return (r.get("anchor", False), order.get(r["config"], 99), r["config"], r["op"] != "write", r["tool"], r["conns"])
    for r in sorted(rows, key=key):
        ref = find(rows, "memory", r["tool"] if r["tool"] != "redis-benchmark" else "-", r["op"], r["conns"])
        ratio = f"{r['rps'] / ref['rps']:.2f}" if ref and ref["rps"] else "-"
        pratio = f"{r['p99_ms'] / ref['p99_ms']:.2f}" if ref and ref["p99_ms"] else "-"
        if r["config"] == "redis-aof-always":
            base = find(rows, "redis-noaof", "redis-benchmark", "write", r["conns"])
            if base:
                ratio = f"({r['rps'] / base['rps']:.2f} × no AOF)"
        mark = ""
        c = ceil.get(r["tool"])
        if c and r["rps"] >= NEAR_CEILING * c["rps"]:
            mark = "⚠ near ceiling"
        L.append(f"| {r['label']} | {r['op']} | {r['tool']} | {r['conns']} | {fmt(r['rps'])} | {ratio} | "
                 f"{fmt(r['p50_ms'], 3)} | {fmt(r['p95_ms'], 3)} | {fmt(r['p99_ms'], 3)} | {pratio} | {r['errors']} | {mark} |")
    L.append("")
    L.append(f"![throughput and p99 per row]({svg_name})\n")
    if res.get("recovery"):
        L.append("## Restart after a crash\n")
        L.append("`walab serve` (wal, FSYNC=never for loading, CHECKPOINT_THRESHOLD=0 so nothing is checkpointed "
                 "behind our back) is loaded, killed with POST /admin/crash, and started again on the same directory. "
                 "*Restart to healthy* runs from spawning the new process to its first 200 on GET /health; a supervisor "
                 "(walab lab, Compose) adds its own reaction time, and /admin/crash waits ~50 ms before dying.\n")
        L.append("| case | restart to healthy | recovery (server's own) | records replayed | snapshot keys | keys after |")
        L.append("|---|---|---|---|---|---|")
        for r in res["recovery"]:
            L.append(f"| {r['case']} | {r['restart_to_healthy_ms']:.0f} ms | {fmt(r['recovery_ms'], 1)} ms | "
                     f"{fmt(r['entries_replayed'])} | {fmt(r['snapshot_keys'])} | {fmt(r['items'])} |")
        cp = [r for r in res["recovery"] if "checkpoint_ms" in r]
        if cp:
            L.append(f"\nThe checkpoint itself (POST /admin/checkpoint) took {cp[0]['checkpoint_ms']:.0f} ms.")
        L.append("")
    L.append("## Targets\n")
    for t in res["targets"]:
        verdict = "**met**" if t["met"] else ("**MISSED**" if t["met"] is False else "not measured")
        L.append(f"- {t['target']}: {t['measured']}: {verdict}")
    L.append("")
    if res.get("anchor_versions"):
        L.append("Anchors: " + "; ".join(res["anchor_versions"]) + ". etcd is loaded through k6/compare.js "
                 "(BACKENDS=etcd: POST /v3/kv/put, base64 keys and values), the same scenario as ours; Redis through "
                 "redis-benchmark -t set -d 100 -r 100000000, so compare its rows with each other, not with the k6 and wrk rows.\n")
    drift = []
    for r in rows:
        if r["config"] == "memory-repeat":
            ref = find(rows, "memory", r["tool"], r["op"], r["conns"])
            if ref and ref["rps"]:
                drift.append((abs(r["rps"] / ref["rps"] - 1), f"{r['tool']} {r['op']} c{r['conns']}"))
    if drift:
        worst = max(drift)
        res["noise"] = {"max_drift": worst[0], "where": worst[1]}
        res["notes"].insert(0, f"Noise: the memory backend measured again at the end of the run differs from the first "
                               f"measurement by up to {worst[0] * 100:.0f}% ({worst[1]}); ratios closer to a target "
                               f"than that are within this run's noise.")
    if m.get("busy_note") and any(t["met"] is False for t in res["targets"]):
        res["notes"].append("A target missed on a busy machine is not evidence either way: the load generator, the "
                            "server and the other work shared two CPUs and one disk. Run again on a quiet machine.")
    near = [f"{r['label']} {r['op']} {r['tool']} c{r['conns']}" for r in rows
            if ceil.get(r["tool"]) and r["rps"] >= NEAR_CEILING * ceil[r["tool"]]["rps"]]
    if near:
        res["notes"].append("Near the generator's ceiling (the store may be faster than shown): " + "; ".join(near) + ".")
    if res.get("notes"):
        L.append("Notes:\n")
        for n in res["notes"]:
            L.append(f"- {n}")
        L.append("")
    with open(md_path, "w") as f:
        f.write("\n".join(L))


def tool_version(cmd):
    try:
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=20)
        return (out.stdout or out.stderr).strip().splitlines()[0]
    except (OSError, IndexError, subprocess.TimeoutExpired):
        return "?"


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--walab", required=True)
    ap.add_argument("--short", action="store_true", help="a few seconds per row (CI)")
    ap.add_argument("--anchors", action="store_true", help="also measure etcd and Redis")
    ap.add_argument("--seconds", type=float, help="per measurement (default 6, --short 1)")
    ap.add_argument("--data-dir", help="scratch directory on the disk to measure (default bench/.work/<date>)")
    ap.add_argument("--out", default=os.path.join(ROOT, "bench", "results"))
    ap.add_argument("--checkpoint-threshold", type=int, default=100000)
    ap.add_argument("--recovery-records", default=None, help="comma list (default 10000,1000000; --short 10000,100000)")
    ap.add_argument("--only", help="comma list of configurations (default: all)")
    a = ap.parse_args()
    seconds = a.seconds or (1 if a.short else 6)
    sizes = [int(x) for x in (a.recovery_records or ("10000,100000" if a.short else "10000,1000000")).split(",")]
    preload = 2000 if a.short else 10000
    stamp = datetime.datetime.now().strftime("%Y-%m-%d-%H%M%S")
    data_root = a.data_dir or os.path.join(ROOT, "bench", ".work", stamp)
    if os.path.exists(data_root) and os.listdir(data_root):
        sys.exit(f"{data_root} is not empty: give a fresh --data-dir")
    os.makedirs(data_root, exist_ok=True)
    logdir = os.path.join(data_root, "logs")
    os.makedirs(logdir)
    os.makedirs(a.out, exist_ok=True)
    started = time.time()
    git = subprocess.run(["git", "-C", ROOT, "describe", "--always", "--dirty"], capture_output=True, text=True).stdout.strip()
    meta = {"date": datetime.datetime.now().isoformat(timespec="seconds"), "args": os.environ.get("BENCH_ARGS", "").split(), "host": platform.node(),
            "cpus": os.cpu_count(), "loadavg_start": " ".join(f"{x:.1f}" for x in os.getloadavg()), "git": git,
            "k6": tool_version(["k6", "version"]), "wrk": tool_version(["wrk", "--version"]).split(" [")[0],
            "seconds": seconds, "checkpoint_threshold": a.checkpoint_threshold, "short": a.short}
    res = {"meta": meta, "rows": [], "configs": {}, "notes": []}
    if a.short:
        res["notes"].append("--short: a smoke run, too short for numbers to quote.")

    log(f"data in {data_root}; {seconds} s per measurement")
    res["disk"] = measure_disk(data_root, min(3, max(1, seconds / 2)))
    log(f"disk: {res['disk']['rate']:.0f} fdatasync/s, p50 {res['disk']['p50_ms']:.3f} ms")
    res["ceilings"] = ceilings(a.walab, data_root, logdir, seconds)
    log(f"ceilings: wrk {res['ceilings']['wrk']['rps']:.0f}/s, k6 {res['ceilings']['k6']['rps']:.0f}/s")
    only = set(a.only.split(",")) if a.only else None
    for name, label, env in CONFIGS:
        if only and name not in only and name != "memory":
            continue
        rows, info = bench_config(a.walab, name, label, env, data_root, logdir, seconds, a.checkpoint_threshold, preload)
        res["rows"].extend(rows)
        res["configs"][name] = info
    # The reference again, last: how far it moved is this run's noise.
    rows, info = bench_config(a.walab, "memory-repeat", REPEAT_LABEL, {"KV_BACKEND": "memory"}, data_root, logdir,
                              seconds, a.checkpoint_threshold, preload)
    res["rows"].extend(rows)
    res["configs"]["memory-repeat"] = info
    res["recovery"] = recovery(a.walab, data_root, logdir, sizes)
    versions = []
    if a.anchors:
        rows, v = etcd_anchor(data_root, logdir, seconds)
        res["rows"].extend(rows)
        versions.append(v)
        rows, v = redis_anchor(data_root, logdir, seconds)
        res["rows"].extend(rows)
        versions.append(v)
    res["anchor_versions"] = versions
    res["targets"] = targets(res["rows"], res["disk"], res["recovery"], a.anchors)
    meta["loadavg_end"] = " ".join(f"{x:.1f}" for x in os.getloadavg())
    meta["elapsed_s"] = round(time.time() - started, 1)
    if os.getloadavg()[0] > (os.cpu_count() or 1) * 0.75 or float(meta["loadavg_start"].split()[0]) > (os.cpu_count() or 1) * 0.75:
        meta["busy_note"] = (f"The machine was busy (load average {meta['loadavg_start']} → {meta['loadavg_end']} on "
                             f"{meta['cpus']} CPUs): other work shared the CPUs and the disk, so absolute numbers are low and noisy.")
    base = os.path.join(a.out, stamp)
    svg_chart(res["rows"], base + ".svg")
    report(res, base + ".md", os.path.basename(base) + ".svg")
    with open(base + ".json", "w") as f:
        json.dump(res, f, indent=1)
    log(f"done in {meta['elapsed_s']} s: {base}.md, .json, .svg")
    print(open(base + ".md").read())
    if not os.environ.get("BENCH_KEEP_DATA"):
        shutil.rmtree(data_root, ignore_errors=True)
        if not a.data_dir:
            try:
                os.rmdir(os.path.dirname(data_root))  # bench/.work, when nothing else is in it
            except OSError:
                pass


if __name__ == "__main__":
    main()
