#!/usr/bin/env python3
"""bench/bench.py: the comparison report. Run it through bench/run.sh, which checks the tools.

For each configuration (memory; the wal at its default settings, then under each sync policy with
checkpoints off; sled under both flush modes) it starts one `walab serve` on a free port over a
fresh data directory, drives it with k6 (k6/compare.js: 1, 16 and 64 VUs writing, 16 reading) and
with wrk (bench/wrk/*.lua: 1, 16 and 64 connections writing, 64 reading; --short: 1 and 64), and
stops it. On the wal it reads the group-commit batch-size histogram from /metrics before and
after each write measurement. Around that: the disk's raw fdatasync rate, each load generator's
ceiling (GET /health on the memory backend), restart-to-healthy after a crash with 0, 10k and 1M
records to replay and after a checkpoint, and with --anchors: etcd, one member, directly (through
its JSON gateway, by wrk with bench/wrk/etcd-put.lua and by the same k6 scenario); a three-member
etcd cluster, directly (wrk) and through walab's etcd backend (KV_BACKEND=etcd, the same wrk and
k6 loads as the other rows), which give what replication costs against the WAL and what walab's
HTTP layer adds in front of etcd; and Redis (redis-benchmark, AOF always vs none). Writes
<out>/<date>.md, .json and .svg.
"""

import argparse
import base64
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

# name, label, environment, checkpoints. The first is the reference every row is divided by.
# Checkpoints (wal rows only): "defaults" sets nothing (the row runs at the server's defaults,
# and its label is filled in from what /admin/stats reports: {fsync}, {threshold}); 0 means
# CHECKPOINT_THRESHOLD=0, checkpoints off; "arg" means --checkpoint-threshold (default 0), and
# {ckpt} in the label says which.
CONFIGS = [
    ("memory", "memory", {"KV_BACKEND": "memory"}, None),
    ("wal-defaults", "wal, defaults (FSYNC={fsync}, CHECKPOINT_THRESHOLD={threshold})", {"KV_BACKEND": "wal"},
     "defaults"),
    ("wal-always", "wal FSYNC=always, group commit, checkpoints off",
     {"KV_BACKEND": "wal", "FSYNC": "always", "GROUP_COMMIT": "on"}, 0),
    ("wal-always-nogc", "wal FSYNC=always, GROUP_COMMIT=off{ckpt}",
     {"KV_BACKEND": "wal", "FSYNC": "always", "GROUP_COMMIT": "off"}, "arg"),
    ("wal-interval", "wal FSYNC=interval:1000{ckpt}", {"KV_BACKEND": "wal", "FSYNC": "interval:1000", "GROUP_COMMIT": "on"},
     "arg"),
    ("wal-never", "wal FSYNC=never{ckpt}", {"KV_BACKEND": "wal", "FSYNC": "never", "GROUP_COMMIT": "on"}, "arg"),
    ("sled-background", "sled SLED_FLUSH=background", {"KV_BACKEND": "sled", "SLED_FLUSH": "background"}, None),
    ("sled-always", "sled SLED_FLUSH=always", {"KV_BACKEND": "sled", "SLED_FLUSH": "always"}, None),
]
# What the server documents as its defaults (src/server/config.rs); the wal-defaults row checks them.
WAL_DEFAULTS = {"fsync_policy": "always", "group_commit": True, "checkpoint_threshold": 100}
# Every variable walab serve reads (src/server/config.rs): none leaks in from the caller's environment,
# so each row runs with exactly the settings it names, and wal-defaults at the defaults.
WALAB_VARS = ["KV_BACKEND", "WAL_ENABLED", "HOST", "PORT", "DATA_DIR", "FSYNC", "GROUP_COMMIT",
              "CHECKPOINT_THRESHOLD", "CHECKPOINT_GROWTH_PERCENT", "SNAPSHOT_BYTES_PER_SEC", "SEGMENT_BYTES", "RECOVERY_MODE", "SLED_FLUSH",
              "MAX_VALUE_BYTES", "ADMIN_TOKEN", "ALLOWED_ORIGINS", "MAX_CONNECTIONS", "HEADER_TIMEOUT_MS",
              "BODY_TIMEOUT_MS", "REQUEST_TIMEOUT_MS", "MAX_HEADER_BYTES", "MAX_BODY_BYTES_IN_FLIGHT",
              "WALAB_RESTARTS", "OTEL_SERVICE_NAME", "OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_SDK_DISABLED", "RUST_LOG",
              "ETCD_ENDPOINTS", "ETCD_PREFIX", "ETCD_PID_DIR", "ETCD_BIN"]
WRITE_CONNS = [1, 16, 64]
SHORT_WRITE_CONNS = [1, 64]  # --short: the two levels the targets use
READ_CONNS = 64
ETCD_WRK_CONNS = [1, 64]
# With --anchors, three names for etcd, one per thing measured (row config, k6 backend tag):
#   etcd        one member, loaded directly through its JSON gateway (k6 tag "etcd-direct"); the
#               lab's target (WAL >= 5x etcd's puts/s) is defined against it
#   etcd-3      three members on this machine, loaded directly (wrk), through the first member
#   walab-etcd  walab serve with KV_BACKEND=etcd over those three members: walab's API, the
#               same wrk and k6 loads as the rows above (k6 tag "etcd", as the server's metrics)
ETCD3_MEMBERS = 3
ETCD_PREFIX = "walab/"  # walab's default ETCD_PREFIX, set outright on the walab-etcd row
WALAB_ETCD_ENV = {"KV_BACKEND": "etcd", "ETCD_PREFIX": ETCD_PREFIX}
WALAB_ETCD_LABEL = f"walab-etcd: walab's etcd backend (KV_BACKEND=etcd) over {ETCD3_MEMBERS} etcd members"
ETCD1_LABEL = "etcd: 1 member, direct (JSON gateway /v3/kv/put, durable)"
ETCD3_LABEL = f"etcd-3: {ETCD3_MEMBERS} members, direct (JSON gateway /v3/kv/put via etcd-1)"
K6_READ_VUS = 16
NEAR_CEILING = 0.8
REPEAT_LABEL = "memory, again at the end (the run's noise)"
# The engine's histogram of records per log write (src/server/metrics/wal.rs); /admin/stats'
# group_commit_batches (counts and mean, no distribution) when /metrics does not have it.
BATCH_METRIC = "walab_wal_group_commit_batch_records"
BATCH_OPEN_ABOVE = 32  # batch-size bands up to here as the histogram has them, then one "33+"


def log(msg):
    print(f"[bench {time.strftime('%H:%M:%S')}] {msg}", flush=True)


def clock(seconds):
    """m:ss, or h:mm:ss."""
    s = max(0, int(round(seconds)))
    return f"{s // 3600}:{s % 3600 // 60:02d}:{s % 60:02d}" if s >= 3600 else f"{s // 60}:{s % 60:02d}"


class Progress:
    """Says "step k of n" as each step starts, with the time so far and an estimate of the time left.

    Each step comes with a planned duration (see plan_steps); the estimate is the plan for the
    steps left, scaled by how the steps done so far kept to theirs (a slow disk or a busy machine
    stretches them all alike).
    """

    def __init__(self, steps):
        self.steps = steps  # [(name, planned seconds)]
        self.started = time.perf_counter()
        self.k = 0

    def step(self, name):
        names = [n for n, _ in self.steps]
        self.k = names.index(name, self.k) + 1
        elapsed = time.perf_counter() - self.started
        planned_done = sum(p for _, p in self.steps[: self.k - 1])
        pace = elapsed / planned_done if planned_done > 0 and elapsed > 0 else 1.0
        left = sum(p for _, p in self.steps[self.k - 1:]) * pace
        log(f"step {self.k} of {len(self.steps)}: {name} ({clock(elapsed)} so far, about {clock(left)} left)")


def plan_steps(configs, seconds, write_conns, preload, sizes, anchors):
    """The run's steps and what each should take, in seconds, from what it measures. Overheads (a
    server's start, k6's start and preload, recovery's loading at ~25k records/s) are from runs on
    the project's 2-core machine; Progress corrects for the machine at hand as the run goes."""
    per_config = (2 + preload / 5000 + seconds * (1 + len(write_conns))
                  + (seconds + 0.5) * (len(write_conns) + 1))
    steps = [("disk", min(3, max(1, seconds / 2))), ("ceilings", 2 * seconds + 4)]
    steps += [(name, per_config) for name in configs]
    steps.append(("memory-repeat", per_config))
    steps.append(("recovery", max(sizes) / 25000 + 0.5 * (len(sizes) + 2) + 3 * max(sizes) / 1e6))
    if anchors:
        steps.append(("etcd", 5 + 2 * seconds + (seconds + 0.5) * len(write_conns)))
        # the cluster's start (elections, ~3 s), then wrk at 1 and 64 connections, each counted back
        steps.append(("etcd-3", 5 + len(ETCD_WRK_CONNS) * (seconds + 0.5)))
        # one more walab row, over that cluster (puts at ~1-5k/s make its preload slower), then
        # the cluster's stop
        steps.append(("walab-etcd", per_config + preload / 2000 + 2))
        steps.append(("redis", 2 + 4 * (seconds + 1)))
    steps.append(("report", 1))
    return steps


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
        "BACKENDS": backend, f"{backend.upper().replace('-', '_')}_URL": url, "OPS": ",".join(ops),
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


def proc_usage(pid):
    """The server's CPU time (user + system, seconds) and context switches (voluntary and
    not, over all its threads), from /proc: what a row's requests cost the server."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        ticks = os.sysconf("SC_CLK_TCK")
        cpu = (int(fields[11]) + int(fields[12])) / ticks
        switches = 0
        for tid in os.listdir(f"/proc/{pid}/task"):
            with open(f"/proc/{pid}/task/{tid}/status") as f:
                for line in f:
                    if line.startswith(("voluntary_ctxt_switches", "nonvoluntary_ctxt_switches")):
                        switches += int(line.split()[1])
        return cpu, switches
    except (OSError, ValueError, IndexError):
        return None


def per_request(before, after, requests):
    """CPU microseconds and context switches per request between two proc_usage samples."""
    if not before or not after or not requests:
        return {}
    return {"cpu_us_per_req": (after[0] - before[0]) * 1e6 / requests,
            "ctxsw_per_req": (after[1] - before[1]) / requests}


def loadavg():
    """The 1-, 5- and 15-minute load averages, from /proc/loadavg."""
    try:
        with open("/proc/loadavg") as f:
            return [float(x) for x in f.read().split()[:3]]
    except OSError:
        return list(os.getloadavg())


def batch_snapshot(server):
    """The wal's records-per-batch histogram now: cumulative bucket counts, sum and count."""
    try:
        status, body = http("GET", server.url + "/metrics")
    except OSError:
        status, body = 0, b""
    if status == 200:
        found = {}
        for line in body.decode("utf-8", "replace").splitlines():
            m = re.match(r"^([A-Za-z_:][\w:]*)(\{[^}]*\})?\s+(\S+)", line)
            if not m:
                continue
            name, labels, value = m.group(1), m.group(2) or "", float(m.group(3))
            for suffix in ("_bucket", "_sum", "_count"):
                if name.endswith(suffix):
                    h = found.setdefault(name[: -len(suffix)], {"buckets": {}, "sum": 0.0, "count": 0.0})
                    if suffix == "_bucket":
                        le = re.search(r'le="([^"]+)"', labels)
                        if le:
                            bound = float(le.group(1))  # "+Inf" too
                            h["buckets"][bound] = h["buckets"].get(bound, 0.0) + value
                    else:
                        h[suffix[1:]] += value
        # the documented name, else a wal histogram of records per batch under another name
        names = [BATCH_METRIC] + sorted(n for n in found if n.startswith("walab_wal_") and "batch" in n
                                        and "record" in n and found[n]["buckets"])
        for n in names:
            if n in found and found[n]["buckets"]:
                return {"source": f"/metrics {n}", **found[n]}
    gc = server.stats().get("group_commit_batches")
    if isinstance(gc, dict) and "batches" in gc and "records" in gc:
        return {"source": "/admin/stats group_commit_batches", "buckets": None, "sum": float(gc["records"]),
                "count": float(gc["batches"])}
    return None


def batch_delta(before, after):
    """Batches, records, mean and the share of batches per size band between two snapshots."""
    if not before or not after:
        return None
    batches = int(round(after["count"] - before["count"]))
    records = int(round(after["sum"] - before["sum"]))
    out = {"source": after["source"], "batches": batches, "records": records,
           "mean": records / batches if batches else None, "bands": None}
    if after.get("buckets") and before.get("buckets") is not None:
        cum = {le: n - before["buckets"].get(le, 0.0) for le, n in after["buckets"].items()}
        bands, prev, lo = [], 0.0, 1
        for le in sorted(b for b in cum if b != float("inf")):
            hi = int(le)
            if hi > BATCH_OPEN_ABOVE or hi < lo:
                break
            bands.append({"label": f"{lo}" if lo == hi else f"{lo}–{hi}", "min": lo, "max": hi,
                          "batches": int(round(cum[le] - prev))})
            prev, lo = cum[le], hi + 1
        top = cum.get(float("inf"), after["count"] - before["count"])
        bands.append({"label": f"{lo}+", "min": lo, "max": None, "batches": int(round(top - prev))})
        for band in bands:
            band["share"] = band["batches"] / batches if batches else None
        out["bands"] = bands
    return out


def fmt_batch(d):
    """One line: mean and distribution, for the log."""
    if not d:
        return "no batch data"
    if not d["batches"]:
        return "no batches"
    dist = ", ".join(f"{b['label']}: {b['share'] * 100:.0f}%" for b in d["bands"] or [])
    return f"{d['batches']} batches, mean {d['mean']:.1f} records" + (f" ({dist})" if dist else "")


def bench_config(walab, name, label, env, ckpt, data_root, logdir, seconds, threshold, preload, write_conns,
                 count_back=None, k6_run_id=None):
    """One row: a walab serve with env, loaded by wrk (reads, then writes at each level) and k6.

    count_back(prefix), when given, says how many keys under prefix the store holds, asked of
    something other than this server (the etcd rows: etcd itself): after each wrk write level and
    after k6, every write answered 200 must be there, or the run stops. k6_run_id fixes k6's key
    prefix (RUN_ID) so its writes can be counted."""
    env = dict(env)
    wal = env.get("KV_BACKEND") == "wal"
    if wal and ckpt == "arg":
        env["CHECKPOINT_THRESHOLD"] = str(threshold)
    elif wal and isinstance(ckpt, int):
        env["CHECKPOINT_THRESHOLD"] = str(ckpt)
    server = Server(walab, os.path.join(data_root, name), env, logdir, name)
    log(f"{name}: starting walab serve ({' '.join(f'{k}={v}' for k, v in env.items())})")
    server.start()
    rows = []
    info = {"env": env}
    try:
        if wal:
            st = server.stats()
            settings = {k: st.get(k) for k in WAL_DEFAULTS}
            info["settings"] = {**settings, **{k: v for k, v in st.items() if k.startswith("checkpoint_growth")}}
            t = settings["checkpoint_threshold"]
            label = label.format(fsync=settings["fsync_policy"], threshold=t,
                                 ckpt=", checkpoints off" if t == 0 else f", CHECKPOINT_THRESHOLD={t}")
            if ckpt == "defaults" and not settings["group_commit"]:
                label += ", GROUP_COMMIT=off"
            if ckpt == "defaults" and settings != WAL_DEFAULTS:
                info["defaults_differ"] = (f"the server's defaults are {settings}, not the documented "
                                           f"{WAL_DEFAULTS}: the row measures what it reports")
            first = batch_snapshot(server)
            cps0 = st.get("checkpoints")
        # reads first, on a preloaded set of keys, before the writes grow the store
        wrk_load(server, "pre", preload)
        status, body = http("GET", server.url + "/kv?prefix=pre-", timeout=60)
        keys = sorted(json.loads(body)["data"]) if status == 200 else []
        if len(keys) < preload * 0.9:
            raise RuntimeError(f"{label}: only {len(keys)} of {preload} preloaded keys are there")
        keyfile = os.path.join(logdir, f"keys-{name}.txt")
        with open(keyfile, "w") as f:
            f.write("\n".join(keys) + "\n")
        usage = proc_usage(server.proc.pid)
        r = run_wrk(server.url, "read.lua", READ_CONNS, seconds, [keyfile])
        r.update(per_request(usage, proc_usage(server.proc.pid), r["requests"]))
        rows.append({**r, "op": "read"})
        for c in write_conns:
            if wal:
                before, cps = batch_snapshot(server), server.stats().get("checkpoints")
            usage = proc_usage(server.proc.pid)
            r = run_wrk(server.url, "write.lua", c, seconds, [f"wrk{c}", VALUE_BYTES])
            r.update(per_request(usage, proc_usage(server.proc.pid), r["requests"]))
            if count_back:
                # write.lua's keys are "wrk<c>-<thread>-<n>"; every 200 must be stored
                r["answered_ok"] = r["requests"] - r["errors"]
                r["stored"] = count_back(f"wrk{c}-")
                if r["stored"] is None or r["stored"] < r["answered_ok"]:
                    raise RuntimeError(f"{name}: wrk c{c} had {r['answered_ok']} writes answered 200 but the store "
                                       f"holds {r['stored']} keys under wrk{c}-")
                log(f"{name} wrk write c{c}: {r['rps']:.0f}/s; {r['answered_ok']} answered 200, {r['stored']} stored")
            if wal:
                r["batch"] = batch_delta(before, batch_snapshot(server))
                if isinstance(cps, int):
                    r["checkpoints"] = server.stats().get("checkpoints", cps) - cps
                log(f"{name} wrk write c{c}: {r['rps']:.0f}/s; {fmt_batch(r['batch'])}")
            rows.append({**r, "op": "write"})
        if wal:
            before = batch_snapshot(server)
        k6rows, crossed = run_k6(env["KV_BACKEND"], server.url, ["write", "read"], write_conns, seconds,
                                 os.path.join(logdir, f"k6-{name}.json"), read_vus=[K6_READ_VUS],
                                 extra_env={"RUN_ID": k6_run_id} if k6_run_id else None)
        rows.extend(k6rows)
        if count_back and k6_run_id:
            # compare.js writes "<RUN_ID>-<backend>-<VU>-<iteration>"
            ok = sum(r["requests"] - r["errors"] for r in k6rows if r["op"] == "write")
            stored = count_back(f"{k6_run_id}-{env['KV_BACKEND']}-")
            info["k6_writes"] = {"answered_ok": ok, "stored": stored}
            if stored is None or stored < ok:
                raise RuntimeError(f"{name}: k6 had {ok} writes answered 200 but the store holds {stored} keys "
                                   f"under {k6_run_id}-{env['KV_BACKEND']}-")
            log(f"{name} k6 writes: {ok} answered 200, {stored} stored")
        stats = server.stats()
        if wal:
            last = batch_snapshot(server)
            info["batch_k6"] = batch_delta(before, last)
            info["batch_total"] = batch_delta(first, last)
            if isinstance(cps0, int):
                info["checkpoints"] = stats.get("checkpoints", cps0) - cps0
    finally:
        server.stop()
    for r in rows:
        r.update({"config": name, "label": label})
    info["label"] = label
    info["stats"] = {k: stats.get(k) for k in ("fsync_count", "group_commit_batches", "checkpoints", "item_count",
                                               "durability", "etcd")
                     if k in stats}
    info["k6_thresholds_crossed"] = crossed
    log(f"{label}: " + ", ".join(f"{r['tool']} {r['op']} c{r['conns']} {r['rps']:.0f}/s p99 {r['p99_ms']:.2f} ms"
                                  for r in rows))
    return rows, info


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


def etcd_count(url, prefix):
    """How many keys etcd (the member at url) holds under prefix; None when it does not answer."""
    end = prefix[:-1] + chr(ord(prefix[-1]) + 1)  # the range [prefix, end): "-" + 1 is "."
    try:
        status, body = http("POST", url + "/v3/kv/range", {
            "key": base64.b64encode(prefix.encode()).decode(),
            "range_end": base64.b64encode(end.encode()).decode(), "count_only": True}, timeout=60)
    except OSError:
        return None
    return int(json.loads(body).get("count", 0)) if status == 200 else None


def etcd_wrk_puts(url, name, seconds):
    """wrk with bench/wrk/etcd-put.lua at each of ETCD_WRK_CONNS against url, every put counted back."""
    rows = []
    # wrk, like our rows: bench/wrk/etcd-put.lua puts unique keys "<prefix>-<thread>-_<n>"
    for c in ETCD_WRK_CONNS:
        prefix = f"etcdwrk{c}"
        r = run_wrk(url, "etcd-put.lua", c, seconds, [prefix, VALUE_BYTES])
        # check the puts landed: count the keys under the prefix
        r["stored"] = etcd_count(url, f"{prefix}-")
        ok = r["requests"] - r["errors"]
        if r["stored"] is None or r["stored"] < ok * 0.99:
            raise RuntimeError(f"{name}: wrk c{c} had {ok} puts answered without error but etcd holds "
                               f"{r['stored']} keys under {prefix}-")
        rows.append({**r, "op": "write"})
    return rows


def etcd_anchor(data_root, logdir, seconds, write_conns):
    """etcd, one member, loaded directly: wrk and k6 (k6/compare.js BACKENDS=etcd-direct)."""
    cport, pport = free_port(), free_port()
    url = f"http://127.0.0.1:{cport}"
    peer = f"http://127.0.0.1:{pport}"
    cmd = ["etcd", "--name", "bench", "--data-dir", os.path.join(data_root, "etcd"),
           "--listen-client-urls", url, "--advertise-client-urls", url,
           "--listen-peer-urls", peer, "--initial-advertise-peer-urls", peer,
           "--initial-cluster", f"bench={peer}", "--log-level", "error", "--logger", "zap"]
    proc = subprocess.Popen(cmd, stdout=open(os.path.join(logdir, "etcd.log"), "w"), stderr=subprocess.STDOUT,
                            start_new_session=True)
    rows = []
    try:
        wait_healthy(url, proc, timeout=60, poll=0.05)
        version = subprocess.run(["etcd", "--version"], capture_output=True, text=True).stdout.split("\n")[0]
        rows.extend(etcd_wrk_puts(url, "etcd", seconds))
        # k6's backend tag "etcd-direct": walab's etcd backend has "etcd" (in k6 and in its metrics)
        k6rows, _ = run_k6("etcd-direct", url, ["write"], write_conns, seconds, os.path.join(logdir, "k6-etcd.json"))
        rows.extend(k6rows)
    finally:
        proc.terminate()
        proc.wait(timeout=20)
    for r in rows:
        r.update({"config": "etcd", "label": ETCD1_LABEL, "short": "etcd, 1 member, direct", "anchor": True})
    log("etcd: " + ", ".join(f"{r['tool']} c{r['conns']} {r['rps']:.0f}/s p99 {r['p99_ms']:.1f} ms" for r in rows))
    return rows, version


class EtcdCluster:
    """etcd members etcd-1..N on 127.0.0.1, on free ports, data under dir/etcd-N, each one's output in
    logdir/etcd-3-etcd-N.log. The member flags are walab lab --etcd's (ClusterSpec::command in
    backends/store/src/etcd/cluster.rs), with a token of its own."""

    def __init__(self, directory, logdir, n):
        ports = set()
        while len(ports) < 2 * n:
            ports.add(free_port())
        ports = sorted(ports)
        self.dir, self.logdir = directory, logdir
        self.members = [{"name": f"etcd-{i + 1}", "client": f"http://127.0.0.1:{ports[2 * i]}",
                         "peer": f"http://127.0.0.1:{ports[2 * i + 1]}"} for i in range(n)]
        self.procs = []

    @property
    def endpoints(self):
        return [m["client"] for m in self.members]

    def start(self, timeout=60):
        initial = ",".join(f"{m['name']}={m['peer']}" for m in self.members)
        os.makedirs(self.dir, exist_ok=True)
        for m in self.members:
            cmd = ["etcd", "--name", m["name"], "--data-dir", os.path.join(self.dir, m["name"]),
                   "--listen-client-urls", m["client"], "--advertise-client-urls", m["client"],
                   "--listen-peer-urls", m["peer"], "--initial-advertise-peer-urls", m["peer"],
                   "--initial-cluster", initial, "--initial-cluster-state", "new",
                   "--initial-cluster-token", "walab-bench", "--logger", "zap", "--log-level", "warn"]
            log_file = open(os.path.join(self.logdir, f"etcd-3-{m['name']}.log"), "w")
            self.procs.append(subprocess.Popen(cmd, stdout=log_file, stderr=subprocess.STDOUT,
                                               start_new_session=True))
        t0 = time.perf_counter()
        # etcd's /health is 200 once the member sees a leader
        for m, proc in zip(self.members, self.procs):
            wait_healthy(m["client"], proc, timeout=max(1, timeout - (time.perf_counter() - t0)), poll=0.05)
        return time.perf_counter() - t0

    def leader(self):
        """The leading member's name, as the first member that answers says; None if none does."""
        ids = {}
        leader = None
        for m in self.members:
            try:
                status, body = http("POST", m["client"] + "/v3/maintenance/status", {}, timeout=2)
            except OSError:
                continue
            if status == 200:
                st = json.loads(body)
                ids[str(st.get("header", {}).get("member_id"))] = m["name"]
                leader = leader or str(st.get("leader"))
        return ids.get(leader)

    def stop(self):
        # One at a time: a leader stopped while the others stop too waits seconds for a leadership
        # transfer nobody takes; stopped alone it hands over at once, and the last member is alone.
        for proc in self.procs:
            if proc.poll() is None:
                proc.terminate()
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def etcd3_and_walab_etcd(walab, data_root, logdir, seconds, preload, write_conns, progress, threshold):
    """A three-member cluster; etcd-3 (wrk, directly, through etcd-1) and walab-etcd (walab serve,
    KV_BACKEND=etcd, ETCD_ENDPOINTS = the three) over it. Returns rows, walab-etcd's info, the cluster's."""
    cluster = EtcdCluster(os.path.join(data_root, "etcd-3"), logdir, ETCD3_MEMBERS)
    rows, info = [], None
    try:
        up = cluster.start()
        first = cluster.endpoints[0]
        about = {"members": [m["name"] for m in cluster.members], "endpoints": cluster.endpoints,
                 "direct_through": cluster.members[0]["name"], "healthy_after_s": round(up, 2),
                 "leader_at_start": cluster.leader()}
        log(f"etcd-3: {len(cluster.members)} members healthy after {up:.1f} s, leader {about['leader_at_start']}; "
            f"wrk puts through {about['direct_through']} ({first})")
        direct = etcd_wrk_puts(first, "etcd-3", seconds)
        for r in direct:
            r.update({"config": "etcd-3", "label": ETCD3_LABEL, "short": f"etcd-3, {ETCD3_MEMBERS} members, direct",
                      "anchor": True})
        log("etcd-3: " + ", ".join(f"{r['tool']} c{r['conns']} {r['rps']:.0f}/s p99 {r['p99_ms']:.1f} ms"
                                   for r in direct))
        rows.extend(direct)
        about["leader_after_direct"] = cluster.leader()
        progress.step("walab-etcd")
        env = {**WALAB_ETCD_ENV, "ETCD_ENDPOINTS": ",".join(cluster.endpoints)}
        ours, info = bench_config(walab, "walab-etcd", WALAB_ETCD_LABEL, env, None, data_root, logdir, seconds,
                                  threshold, preload, write_conns,
                                  count_back=lambda prefix: etcd_count(first, ETCD_PREFIX + prefix),
                                  k6_run_id="k6walabetcd")
        for r in ours:
            r["short"] = f"walab-etcd ({ETCD3_MEMBERS} etcd members)"
        rows.extend(ours)
        about["leader_at_end"] = cluster.leader()
    finally:
        cluster.stop()
    leaders = {about.get(k) for k in ("leader_at_start", "leader_after_direct", "leader_at_end")}
    about["leader_changed"] = len(leaders) > 1
    return rows, info, about


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


def targets(rows, disk, anchors, configs):
    """The lab's performance targets, each with what was measured and, when missed, by how much."""
    t = []

    def add(text, measured, ok, missed_by=None):
        t.append({"target": text, "measured": measured, "met": ok, "missed_by": None if ok else missed_by})

    def label(name, fallback):
        return configs.get(name, {}).get("label", fallback)

    def ratio(text, num, den, goal, what, unit):
        """A target `num / den >= goal`."""
        if not (num and den and den["rps"]):
            missing = " and ".join(f"{n}" for n, r in ((what[0], num), (what[1], den)) if not r)
            add(text, f"not measured ({missing}: no row)", None)
            return
        x = num["rps"] / den["rps"]
        need = goal * den["rps"] - num["rps"]
        d = 2  # more digits when two would round a miss up to the target
        while d < 4 and x < goal and round(x, d) >= goal:
            d += 1
        pct = lambda v: f"{v:.1f}" if abs(v) < 10 else f"{v:.0f}"
        of = next(f"{x / goal * 100:.{n}f}" for n in (0, 1, 2, 3) if n == 3 or float(f"{x / goal * 100:.{n}f}") < 100)
        add(text, f"{x:.{d}f}× ({fmt(num['rps'])} vs {fmt(den['rps'])} {unit}/s)", x >= goal,
            f"short by {goal - x:.{d}f}× ({of}% of the target: {fmt(need)} {unit}/s more, "
            f"+{pct(need / num['rps'] * 100)}%)" if num["rps"] else "nothing measured")

    mem64 = find(rows, "memory", "wrk", "write", 64)
    def64 = find(rows, "wal-defaults", "wrk", "write", 64)
    def1 = find(rows, "wal-defaults", "wrk", "write", 1)
    off64 = find(rows, "wal-always", "wrk", "write", 64)
    nogc64 = find(rows, "wal-always-nogc", "wrk", "write", 64)
    memr = find(rows, "memory", "wrk", "read", READ_CONNS)
    defr = find(rows, "wal-defaults", "wrk", "read", READ_CONNS)
    offr = find(rows, "wal-always", "wrk", "read", READ_CONNS)
    etcd64 = find(rows, "etcd", "wrk", "write", 64)
    ds = configs.get("wal-defaults", {}).get("settings")
    dlabel = (f"FSYNC={ds['fsync_policy']}, group commit{'' if ds['group_commit'] else ' off'}, "
              f"CHECKPOINT_THRESHOLD={ds['checkpoint_threshold']}" if ds else "the server's defaults")

    ratio(f"WAL at its default settings ({dlabel}), 64 connections: >= 0.8× memory's write throughput (wrk)",
          def64, mem64, 0.8, ("wal-defaults", "memory"), "writes")
    ratio("WAL with checkpoints off (FSYNC=always, group commit, CHECKPOINT_THRESHOLD=0), 64 connections: "
          ">= 0.9× memory's write throughput (wrk)", off64, mem64, 0.9, ("wal-always", "memory"), "writes")
    thresholds = [configs.get(n, {}).get("settings", {}).get("checkpoint_threshold") for n in ("wal-always",
                                                                                             "wal-always-nogc")]
    both = ("both with checkpoints off" if thresholds == [0, 0] else
            f"CHECKPOINT_THRESHOLD {thresholds[0]} with group commit, {thresholds[1]} without"
            if None not in thresholds else "checkpoints off")
    # Group commit on ÷ off measured the disk more than the engine (2.6× on a fast disk, 4-7×
    # on a slow one); what group commit must deliver is few fdatasyncs per write, and a
    # durable write that costs the server little more CPU than a write to memory.
    if off64 and nogc64 and nogc64["rps"]:
        log(f"group commit on ÷ off at 64 connections ({both}): {off64['rps'] / nogc64['rps']:.2f}× (no target)")
    text = (f"WAL at its defaults ({dlabel}), 64 connections: at most 1/20 fdatasync per write "
            f"(one per group-commit batch, wrk)")
    b = (def64 or {}).get("batch") or {}
    if b.get("mean"):
        per = 1 / b["mean"]
        add(text, f"{per:.3f} (batches of {b['mean']:.1f} writes on average)", per <= 1 / 20,
            f"over by {per - 1 / 20:.3f} (batches {20 - b['mean']:.1f} writes short of 20)")
    else:
        add(text, "not measured (no batch data)", None)
    for field, goal, what in (("cpu_us_per_req", 1.10, "server CPU per write"),
                              ("ctxsw_per_req", 1.5, "context switches per write")):
        text = f"WAL at its defaults ({dlabel}), 64 connections: {what} <= {goal}× memory's (wrk; /proc)"
        if def64 and mem64 and def64.get(field) and mem64.get(field):
            x = def64[field] / mem64[field]
            add(text, f"{x:.2f}× ({def64[field]:.2f} vs {mem64[field]:.2f} per write)", x <= goal,
                f"over by {x - goal:.2f}×")
        else:
            add(text, "not measured (no /proc numbers for both rows)", None)
    ratio(f"Reads on the WAL at its defaults ({dlabel}): >= 0.95× memory's (wrk, {READ_CONNS} connections)",
          defr, memr, 0.95, ("wal-defaults", "memory"), "reads")
    if offr and memr and t[-1]["met"] is not None:
        t[-1]["measured"] += f"; with checkpoints off {offr['rps'] / memr['rps']:.2f}×"
    text = f"WAL at its defaults ({dlabel}), 1 connection: write p50 <= the disk's serial fdatasync p50 + 0.05 ms (wrk)"
    if def1 and disk:
        limit = disk["p50_ms"] + 0.05
        add(text, f"{def1['p50_ms']:.3f} ms vs {disk['p50_ms']:.3f} + 0.05 = {limit:.3f} ms",
            def1["p50_ms"] <= limit, f"over by {def1['p50_ms'] - limit:.3f} ms")
    else:
        add(text, "not measured (no wal-defaults row at 1 connection)", None)
    text = f"WAL at its defaults ({dlabel}), 64 connections: >= 5× etcd's durable puts/s, both under wrk"
    if anchors:
        ratio(text, def64, etcd64, 5, ("wal-defaults", "etcd"), "writes")
    else:
        add(text, "not measured (run with --anchors)", None)
    add("Back-to-back checkpoints of 1M keys at most double write p99", "not measured here: the engine's benchmark "
        "measures it (`cargo bench -p walab-wal --bench append -- nomatch`, its `checkpoint latency` lines)", None)
    return t


def etcd_comparisons(rows, configs):
    """The two ratios --anchors measures side by side: what replication costs (walab-etcd against the
    WAL at its defaults, both through walab's API; wrk and k6, 1 and 64 connections) and what walab's
    HTTP layer adds in front of etcd (walab-etcd against etcd-3 direct, the same cluster, wrk)."""
    out = []
    pairs = [("replication", "walab-etcd", "wal-defaults", tool) for tool in ("wrk", "k6")]
    pairs.append(("http-layer", "walab-etcd", "etcd-3", "wrk"))
    for what, num, den, tool in pairs:
        for c in ETCD_WRK_CONNS:
            a, b = find(rows, num, tool, "write", c), find(rows, den, tool, "write", c)
            item = {"what": what, "tool": tool, "conns": c, "row": num, "against": den,
                    "label": a["label"] if a else configs.get(num, {}).get("label", num),
                    "against_label": b["label"] if b else configs.get(den, {}).get("label", den)}
            if a and b and b["rps"] and a["rps"]:
                item.update({"rps": a["rps"], "against_rps": b["rps"], "rps_ratio": a["rps"] / b["rps"],
                             "p50_ms": a["p50_ms"], "against_p50_ms": b["p50_ms"],
                             "p50_added_ms": a["p50_ms"] - b["p50_ms"],
                             "p99_ms": a["p99_ms"], "against_p99_ms": b["p99_ms"]})
            else:
                item["missing"] = " and ".join(n for n, r in ((num, a), (den, b)) if not r)
            out.append(item)
    return out


def etcd_section(res):
    """Markdown: the etcd rows side by side, stated plainly."""
    comps, about = res.get("etcd_comparisons") or [], res.get("etcd_cluster") or {}
    if not comps:
        return []
    L = ["## Replication and walab's HTTP layer (etcd)\n",
         f"Three names for etcd, measured in this one run: **etcd** is one member loaded directly (the anchor of "
         f"the target above); **etcd-3** is {ETCD3_MEMBERS} members on this machine loaded directly through their "
         f"JSON gateway (wrk, bench/wrk/etcd-put.lua, through {about.get('direct_through', 'etcd-1')}); "
         f"**walab-etcd** is `walab serve` with KV_BACKEND=etcd over those same members, loaded like every walab "
         f"row (POST /kv, the same wrk script and k6 scenario). walab's etcd client sends to the first of "
         f"ETCD_ENDPOINTS, {about.get('direct_through', 'etcd-1')}, as etcd-3's wrk does; a write on either path "
         f"is acknowledged once it is fsynced in the Raft log of a majority (2 of 3). "
         + (f"{about.get('direct_through')} led, so both paths reached the leader at once. "
            if about.get("leader_at_start") == about.get("direct_through") else
            f"{about.get('direct_through')} was a follower, so both paths paid its forwarding to the leader. ")
         + f"The leader was {about.get('leader_at_start') or '?'} at the start"
         + (f" and {about.get('leader_at_end') or '?'} at the end: **it changed during the measurements**, "
            f"whose numbers then include an election" if about.get("leader_changed") else ", the same throughout")
         + ". All three members share this machine's CPUs and its one disk: replication costs here three logs' "
           "fsyncs on one disk and the members' CPU, where separate machines would fsync in parallel and add a "
           "network round trip.\n"]

    def n(v):
        return fmt(v)

    def said(item, of):
        if "missing" in item:
            return f"not measured ({item['missing']}: no row)"
        x = item["rps_ratio"]
        times = f"{x:.2f}×" if x >= 0.1 else f"{x:.3f}×"
        return (f"{n(item['rps'])} vs {n(item['against_rps'])} writes/s: walab-etcd does **{times} {of}** "
                f"(p50 {item['p50_ms']:.3f} vs {item['against_p50_ms']:.3f} ms, {item['p50_added_ms']:+.3f} ms; "
                f"p99 {item['p99_ms']:.3f} vs {item['against_p99_ms']:.3f} ms)")

    def conns(c, tool):
        unit = "VU" if tool == "k6" else "connection"
        return f"{c} {unit}{'s' if c > 1 else ''}"

    rep_items = [c for c in comps if c["what"] == "replication"]
    http_items = [c for c in comps if c["what"] == "http-layer"]
    L.append("**What replication costs**: walab-etcd ÷ the WAL at its defaults, both behind walab's HTTP API, "
             "both acknowledging only writes on disk (one fdatasync on one machine against a majority of three Raft "
             "logs):\n")
    for c in rep_items:
        extra = ""
        if "missing" not in c and 0 < c["rps_ratio"] < 1:
            extra = f": the WAL does {1 / c['rps_ratio']:.1f}× as many"
        text = said(c, "the WAL's writes/s")
        L.append(f"- {c['tool']}, {conns(c['conns'], c['tool'])}: {text}{extra}")
    L.append("")
    L.append("**What walab's HTTP layer adds in front of etcd**: walab-etcd ÷ etcd-3 direct, the same cluster and "
             "member, both under wrk (walab's API, JSON in and out and its client's call to etcd's gateway, against "
             "etcd's gateway alone):\n")
    for c in http_items:
        text = said(c, "etcd-3's puts/s")
        L.append(f"- {c['tool']}, {conns(c['conns'], c['tool'])}: {text}")
    L.append("")
    counted = [r for r in res["rows"] if r["config"] in ("etcd", "etcd-3", "walab-etcd") and r.get("stored") is not None]
    k6w = (res["configs"].get("walab-etcd") or {}).get("k6_writes")
    if counted or k6w:
        parts = [f"{r['config']} {r['tool']} c{r['conns']}: {fmt(r['stored'])} keys for "
                 f"{fmt(r.get('answered_ok', r['requests'] - r['errors']))} answered" for r in counted]
        if k6w:
            parts.append(f"walab-etcd k6: {fmt(k6w['stored'])} keys for {fmt(k6w['answered_ok'])} answered")
        L.append("Counted back from etcd after each measurement (count_only ranges over the run's key prefixes; "
                 "walab-etcd's under ETCD_PREFIX " + ETCD_PREFIX + "): " + "; ".join(parts) + ".\n")
    return L


def svg_chart(rows, path):
    """Two panels: write throughput and write p99 at 64 connections, one bar per row."""
    bars = []
    for name, _, _, _ in CONFIGS:
        r = find(rows, name, "wrk", "write", 64)
        if r:
            bars.append((r["label"], r["rps"], r["p99_ms"], "wrk, 64 conns", "#4477aa" if name.startswith("wal") else "#999999"))
    r = find(rows, "walab-etcd", "wrk", "write", 64)
    if r:
        bars.append((r.get("short", r["label"]), r["rps"], r["p99_ms"], "wrk, 64 conns", "#228833"))
    for r in rows:
        if r.get("anchor") and r["conns"] == 64:
            bars.append((f"{r.get('short', r['label'])}, {r['tool']}", r["rps"], r["p99_ms"], f"{r['tool']}, 64",
                         "#cc6677"))
    if not bars:
        return
    lw, pw, bh, gap, top = 400, 300, 18, 8, 50
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
    out.append(f'<text x="10" y="{h - 22}" fill="#555">blue: walab wal; grey: memory and sled; green: walab\'s etcd '
               f'backend over {ETCD3_MEMBERS} members (wrk, POST /kv, unique keys, {VALUE_BYTES}-byte values)</text>')
    out.append(f'<text x="10" y="{h - 8}" fill="#555">red: anchors, loaded directly (etcd with 1 and with '
               f'{ETCD3_MEMBERS} members through wrk, 1 member through k6, Redis through redis-benchmark)</text>')
    out.append("</svg>")
    with open(path, "w") as f:
        f.write("\n".join(out) + "\n")


def batch_section(res, batch_rows):
    """Markdown: records per group-commit batch during each wal write measurement."""
    first = next((r["batch"] for r in batch_rows if r.get("batch")), None)
    bands = next((r["batch"]["bands"] for r in batch_rows if r.get("batch") and r["batch"]["bands"]), None)
    labels = [b["label"] for b in bands] if bands else []
    L = ["## Group commit: records per batch\n",
         f"Read from each wal server's {first['source'] if first else BATCH_METRIC} just before and just after "
         "each write measurement: how many log writes (batches: one write() and, under FSYNC=always, one "
         "fdatasync each) the row's writes took, the mean records per batch, and the share of batches of each "
         "size. The k6 line covers its write scenarios (one per VU level, in turn) and its 16-VU reads together."
         + ("" if labels else " This server exposes only the counts, not the distribution.") + "\n",
         "| store | load | writes/s | batches | records | mean batch | checkpoints | " + " | ".join(labels) + " |",
         "|---|---|---|---|---|---|---|" + "---|" * len(labels)]

    def line(label, load, rps, d, cps):
        if not d:
            return f"| {label} | {load} | {rps} | - | - | - | {fmt(cps)} | " + " | ".join("-" for _ in labels) + " |"
        by = {b["label"]: b for b in d["bands"] or []}
        cells = [f"{by[l]['share'] * 100:.0f}%" if l in by and by[l]["share"] is not None else "-" for l in labels]
        mean = f"{d['mean']:.1f}" if d["mean"] is not None else "-"
        return (f"| {label} | {load} | {rps} | {fmt(d['batches'])} | {fmt(d['records'])} | {mean} | {fmt(cps)} | "
                + " | ".join(cells) + " |")

    seen = []
    for r in batch_rows:
        if r["config"] not in seen:
            if seen:
                info = res["configs"].get(seen[-1], {})
                L.append(line(info.get("label", seen[-1]), "k6 writes, all VU levels", "-", info.get("batch_k6"), None))
            seen.append(r["config"])
        L.append(line(r["label"], f"{r['tool']} write, {r['conns']} conn{'s' if r['conns'] > 1 else ''}",
                      fmt(r["rps"]), r.get("batch"), r.get("checkpoints")))
    if seen:
        info = res["configs"].get(seen[-1], {})
        L.append(line(info.get("label", seen[-1]), "k6 writes, all VU levels", "-", info.get("batch_k6"), None))
    L.append("")
    return L


def report(res, md_path, svg_name):
    rows, disk, ceil = res["rows"], res["disk"], res["ceilings"]
    L = []
    m = res["meta"]
    L.append(f"# walab benchmark, {m['date']}\n")
    L.append(f"`bench/run.sh{' ' + ' '.join(m['args']) if m['args'] else ''}` on {m['host']}: {m['cpus']} CPUs; "
             f"walab {m['git']}; {m['k6']}; {m['wrk']}. {m['seconds']} s per measurement, {m['elapsed_s']:.0f} s "
             f"in all; every ratio is from this one run.\n")
    L.append(f"1-minute load average (/proc/loadavg): **{m['load1_start']:.2f} at the start**, {m['load1_end']:.2f} "
             f"at the end (the end includes this run's own load).\n")
    if m.get("busy_note"):
        L.append(f"**{m['busy_note']}**\n")
    L.append(f"- **Disk**: {fmt(disk['rate'])} serial 4 KiB write+fdatasync/s, p50 {disk['p50_ms']:.3f} ms, "
             f"p99 {disk['p99_ms']:.3f} ms ({disk['syncs']} syncs, in the data directory's file system).")
    L.append(f"- **Generator ceilings** (GET /health on the memory backend, 64 connections): wrk {fmt(ceil['wrk']['rps'])}/s "
             f"(p99 {ceil['wrk']['p99_ms']:.2f} ms), k6 {fmt(ceil['k6']['rps'])}/s (p99 {ceil['k6']['p99_ms']:.2f} ms). "
             f"A row at {int(NEAR_CEILING * 100)}% or more of its generator's ceiling is marked ⚠: "
             f"there the generator, not the store, may be the limit.")
    L.append(f"- Writes: POST /kv, a unique key per request, {VALUE_BYTES}-byte values; reads: GET /kv/{{key}} over "
             f"keys written before. The wal-defaults row sets nothing but KV_BACKEND=wal (the server's defaults, "
             f"as /admin/stats reports them in its label); the other wal rows run with CHECKPOINT_THRESHOLD="
             f"{m['checkpoint_threshold']}{' (checkpoints off)' if m['checkpoint_threshold'] == 0 else ''}, except "
             f"`FSYNC=always, group commit, checkpoints off`, always 0. "
             f"× memory = this row's requests/s (or p99) divided by the memory backend's under the same load.\n")
    L.append("| store | op | tool | conns | req/s | × memory | p50 ms | p95 ms | p99 ms | p99 × memory | server CPU µs/req | ctx switches/req | errors | |")
    L.append("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    order = {n: i for i, n in enumerate([c[0] for c in CONFIGS] + ["memory-repeat", "walab-etcd", "etcd", "etcd-3",
                                                                    "redis-noaof", "redis-aof-always"])}
    batch_rows = [r for r in sorted(rows, key=lambda r: (order.get(r["config"], 99), r["conns"])) if "batch" in r]
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
        cpu = fmt(r["cpu_us_per_req"], 1) if "cpu_us_per_req" in r else "-"
        sw = fmt(r["ctxsw_per_req"], 2) if "ctxsw_per_req" in r else "-"
        L.append(f"| {r['label']} | {r['op']} | {r['tool']} | {r['conns']} | {fmt(r['rps'])} | {ratio} | "
                 f"{fmt(r['p50_ms'], 3)} | {fmt(r['p95_ms'], 3)} | {fmt(r['p99_ms'], 3)} | {pratio} | {cpu} | {sw} | "
                 f"{r['errors']} | {mark} |")
    L.append("")
    L.append(f"![throughput and p99 per row]({svg_name})\n")
    if batch_rows:
        L.extend(batch_section(res, batch_rows))
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
        big = [r for r in res["recovery"] if (r.get("entries_replayed") or 0) >= 1_000_000]
        if big:
            L.append(f"\nWith {big[0]['entries_replayed']:,} records to replay the store was healthy again "
                     f"{big[0]['restart_to_healthy_ms']:.0f} ms after spawning (the README's bound: < 2 s).")
        L.append("")
    L.extend(etcd_section(res))
    L.append("## Targets\n")
    for t in res["targets"]:
        if t["met"] is None:
            L.append(f"- {t['target']}: {t['measured']}")
        else:
            verdict = "**met**" if t["met"] else f"**MISSED**, {t['missed_by']}"
            L.append(f"- {t['target']}: {t['measured']}: {verdict}")
    L.append("")
    if any(t["met"] is False for t in res["targets"]):
        L.append("Where a durable write's extra CPU and context switches go, thread by thread "
                 "(`bench/threads.sh`) and in a profile (`perf record -g -p PID` under the same load), "
                 "and why each missed target misses: docs/numbers.md, \"What a durable write costs the "
                 "server\".\n")
    if res.get("anchor_versions"):
        L.append("Anchors: " + "; ".join(res["anchor_versions"]) + ". etcd (one member, default settings: every put "
                 "fsynced by its raft log) is loaded through its JSON gateway, POST /v3/kv/put with base64 keys and "
                 "values, by wrk (bench/wrk/etcd-put.lua: unique keys, the same value as write.lua, every put counted "
                 "back from etcd afterwards) and by k6/compare.js (BACKENDS=etcd-direct, so its k6 series are tagged "
                 "backend=\"etcd-direct\", never \"etcd\", which is walab's etcd backend's), each the same load as "
                 f"our rows under that tool; etcd-3, {ETCD3_MEMBERS} members with walab lab --etcd's flags, by the same "
                 "wrk script; Redis through redis-benchmark -t set -d 100 -r 100000000, so compare its rows "
                 "with each other, not with the k6 and wrk rows.\n")
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
    for name, info in res["configs"].items():
        if info.get("defaults_differ"):
            res["notes"].append(f"{name}: {info['defaults_differ']}.")
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


def walab_backends(walab):
    """The KV_BACKEND names this walab takes, from its refusal of one it does not know; None when
    it does not say (then the run goes on and finds out when the row starts)."""
    env = {k: v for k, v in os.environ.items() if k not in WALAB_VARS}
    env.update({"KV_BACKEND": "bench-probe-no-such-backend", "HOST": "127.0.0.1", "PORT": str(free_port()),
                "DATA_DIR": os.devnull})
    try:
        out = subprocess.run([walab, "serve"], env=env, capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return None
    m = re.search(r"expected one of ([\w, -]+)", out.stdout + out.stderr)
    return [x.strip() for x in m.group(1).split(",") if x.strip()] if m else None


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
    ap.add_argument("--anchors", action="store_true",
                    help="also measure etcd (1 member direct; 3 members direct and through walab) and Redis")
    ap.add_argument("--seconds", type=float, help="per measurement (default 6, --short 1)")
    ap.add_argument("--data-dir", help="scratch directory on the disk to measure (default bench/.work/<date>)")
    ap.add_argument("--out", default=os.path.join(ROOT, "bench", "results"))
    ap.add_argument("--checkpoint-threshold", type=int, default=0,
                    help="CHECKPOINT_THRESHOLD of the wal rows other than wal-defaults and wal-always (default 0: off)")
    ap.add_argument("--recovery-records", default=None, help="comma list (default 10000,1000000; --short 10000,100000)")
    ap.add_argument("--only", help="comma list of configurations (default: all)")
    a = ap.parse_args()
    seconds = a.seconds or (1 if a.short else 6)
    sizes = [int(x) for x in (a.recovery_records or ("10000,100000" if a.short else "10000,1000000")).split(",")]
    preload = 2000 if a.short else 10000
    write_conns = SHORT_WRITE_CONNS if a.short else WRITE_CONNS
    if a.anchors:
        known = walab_backends(a.walab)
        if known is not None and "etcd" not in known:
            sys.exit(f"{a.walab} has no etcd backend (its KV_BACKEND takes {', '.join(known)}); --anchors measures "
                     f"walab's etcd backend: build walab from a tree that has it, or run without --anchors")
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
    load = loadavg()
    meta = {"date": datetime.datetime.now().isoformat(timespec="seconds"), "args": os.environ.get("BENCH_ARGS", "").split(), "host": platform.node(),
            "cpus": os.cpu_count(), "loadavg_start": " ".join(f"{x:.2f}" for x in load), "load1_start": load[0], "git": git,
            "k6": tool_version(["k6", "version"]), "wrk": tool_version(["wrk", "--version"]).split(" [")[0],
            "seconds": seconds, "checkpoint_threshold": a.checkpoint_threshold, "short": a.short,
            "write_conns": write_conns}
    res = {"meta": meta, "rows": [], "configs": {}, "notes": []}
    log(f"1-minute load average at the start: {load[0]:.2f}")
    if load[0] >= 1:
        meta["busy_note"] = (f"Warning: the 1-minute load average was {load[0]:.2f} at the start (>= 1 on {meta['cpus']} "
                             f"CPUs): other work was using the machine, so the numbers are low and noisy, and the "
                             f"ratios too. Run again when it is quiet.")
        log(meta["busy_note"])
    if a.short:
        res["notes"].append("--short: a smoke run, too short for numbers to quote.")

    log(f"data in {data_root}; {seconds} s per measurement")
    only = set(a.only.split(",")) if a.only else None
    configs = [c for c in CONFIGS if not only or c[0] in only or c[0] == "memory"]
    progress = Progress(plan_steps([c[0] for c in configs], seconds, write_conns, preload, sizes, a.anchors))
    progress.step("disk")
    res["disk"] = measure_disk(data_root, min(3, max(1, seconds / 2)))
    log(f"disk: {res['disk']['rate']:.0f} fdatasync/s, p50 {res['disk']['p50_ms']:.3f} ms")
    progress.step("ceilings")
    res["ceilings"] = ceilings(a.walab, data_root, logdir, seconds)
    log(f"ceilings: wrk {res['ceilings']['wrk']['rps']:.0f}/s, k6 {res['ceilings']['k6']['rps']:.0f}/s")
    for name, label, env, ckpt in configs:
        progress.step(name)
        rows, info = bench_config(a.walab, name, label, env, ckpt, data_root, logdir, seconds, a.checkpoint_threshold,
                                  preload, write_conns)
        res["rows"].extend(rows)
        res["configs"][name] = info
    # The reference again, last: how far it moved is this run's noise.
    progress.step("memory-repeat")
    rows, info = bench_config(a.walab, "memory-repeat", REPEAT_LABEL, {"KV_BACKEND": "memory"}, None, data_root,
                              logdir, seconds, a.checkpoint_threshold, preload, write_conns)
    res["rows"].extend(rows)
    res["configs"]["memory-repeat"] = info
    progress.step("recovery")
    res["recovery"] = recovery(a.walab, data_root, logdir, sizes)
    versions = []
    if a.anchors:
        progress.step("etcd")
        rows, v = etcd_anchor(data_root, logdir, seconds, write_conns)
        res["rows"].extend(rows)
        versions.append(v)
        progress.step("etcd-3")
        rows, info, res["etcd_cluster"] = etcd3_and_walab_etcd(a.walab, data_root, logdir, seconds, preload,
                                                               write_conns, progress, a.checkpoint_threshold)
        res["rows"].extend(rows)
        res["configs"]["walab-etcd"] = info
        progress.step("redis")
        rows, v = redis_anchor(data_root, logdir, seconds)
        res["rows"].extend(rows)
        versions.append(v)
    res["anchor_versions"] = versions
    progress.step("report")
    res["targets"] = targets(res["rows"], res["disk"], a.anchors, res["configs"])
    if a.anchors:
        res["etcd_comparisons"] = etcd_comparisons(res["rows"], res["configs"])
    load = loadavg()
    meta["loadavg_end"] = " ".join(f"{x:.2f}" for x in load)
    meta["load1_end"] = load[0]
    meta["elapsed_s"] = round(time.time() - started, 1)
    log(f"1-minute load average at the end: {load[0]:.2f}")
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
