#!/usr/bin/env python3
"""The hostile-client suite's attacks and assertions (driven by tests/e2e/abuse.sh).

Python 3 standard library only. abuse.sh starts the servers and writes one line per server
to a file (`name=<check> port=.. pid=.. dir=.. log=.. VAR=VALUE ...`, the VAR=VALUE being the
environment the server was started with); this script waits for each server it needs,
attacks it, and prints one line per check:

    abuse: <name>: ok (<numbers>)
    abuse: <name>: FAILED: <why>

then a summary line; it exits 1 if any check failed.

    abuse.py --walab BIN --work DIR --servers FILE [CHECK...]

Every socket has a timeout and every wait a deadline, so a server that never answers makes a
check fail, never hang.
"""

import argparse
import errno
import http.client
import json
import os
import re
import resource
import selectors
import socket
import subprocess
import sys
import threading
import time

HOST = "127.0.0.1"
CHECKS = ["lock", "slowloris", "rss", "metrics", "origin", "proxy", "fdlimit", "small", "probe", "gap", "stall", "unread", "diskfull"]
MARGIN_S = 1.5  # how late after its timeout a stalled connection may still be closed
MB = 1024 * 1024
RSS_BOUND_MB = 150
EVIL = "http://evil.example"

ARGS = None
SERVERS = {}


class Failed(Exception):
    """A check's assertion failed; the message is the one-line reason."""


# ------------------------------------------------------------------------------------------
# small helpers


def now():
    return time.monotonic()


def note(check, text):
    print(f"abuse: {check}: note: {text}", flush=True)


def record_pid(pid):
    """Processes this script starts are killed by abuse.sh's trap even if we die first."""
    with open(os.path.join(ARGS.work, "extra-pids"), "a") as f:
        f.write(f"{pid}\n")


def free_port():
    with socket.socket() as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


def proc_status(pid):
    """The fields of /proc/<pid>/status, or {} when the process is gone."""
    try:
        with open(f"/proc/{pid}/status") as f:
            return dict(line.rstrip("\n").split(":\t", 1) for line in f if ":\t" in line)
    except OSError:
        return {}


def alive(pid):
    st = proc_status(pid)
    return bool(st) and not st.get("State", "").startswith(("Z", "X"))


def mem_mb(pid, field="VmRSS"):
    v = proc_status(pid).get(field, "")
    try:
        return int(v.split()[0]) / 1024.0
    except (ValueError, IndexError):
        return 0.0


def fd_count(pid):
    try:
        return len(os.listdir(f"/proc/{pid}/fd"))
    except OSError:
        return -1


def fd_soft_limit(pid):
    try:
        with open(f"/proc/{pid}/limits") as f:
            for line in f:
                if line.startswith("Max open files"):
                    return int(line.split()[3])
    except (OSError, ValueError, IndexError):
        pass
    return -1


def pct(values, q):
    if not values:
        return float("nan")
    s = sorted(values)
    return s[min(len(s) - 1, int(q * len(s)))]


def short(b, n=160):
    if isinstance(b, (bytes, bytearray)):
        b = bytes(b).decode("utf-8", "replace")
    b = " ".join(str(b).split())
    return b if len(b) <= n else b[:n] + "..."


class Reply:
    def __init__(self, status, headers, body, took):
        self.status, self.headers, self.body, self.took = status, headers, body, took

    def json(self):
        try:
            return json.loads(self.body)
        except (ValueError, UnicodeDecodeError):
            return None

    def error_json(self):
        """The {"error","detail"} body, or None if the body is not that shape."""
        j = self.json()
        if isinstance(j, dict) and isinstance(j.get("error"), str) and isinstance(j.get("detail"), str):
            return j
        return None

    def __str__(self):
        return f"{self.status} {short(self.body, 120)}"


def request(port, method, path, body=None, headers=(), timeout=5.0, host=None, conn=None):
    """One HTTP request with http.client; Host is 127.0.0.1:<port> unless `host` is given."""
    c = conn or http.client.HTTPConnection(HOST, port, timeout=timeout)
    started = now()
    try:
        c.putrequest(method, path, skip_host=True, skip_accept_encoding=True)
        c.putheader("Host", host if host is not None else f"{HOST}:{port}")
        for k, v in headers:
            c.putheader(k, v)
        if isinstance(body, str):
            body = body.encode()
        if body is not None:
            c.putheader("Content-Length", str(len(body)))
        elif method in ("POST", "PUT"):
            c.putheader("Content-Length", "0")
        c.endheaders(body)
        r = c.getresponse()
        data = r.read()
        return Reply(r.status, {k.lower(): v for k, v in r.getheaders()}, data, now() - started)
    finally:
        if conn is None:
            c.close()


def try_request(*args, **kwargs):
    """request(), or a Reply with status 0 and the exception as body."""
    started = now()
    try:
        return request(*args, **kwargs)
    except (OSError, http.client.HTTPException) as e:
        return Reply(0, {}, f"{type(e).__name__}: {e}".encode(), now() - started)


def kv_body(key, value):
    return json.dumps({"key": key, "value": value})


def wait_healthy(port, patience=20.0, path="/health"):
    deadline = now() + patience
    last = None
    while now() < deadline:
        last = try_request(port, "GET", path, timeout=1.0)
        if last.status == 200:
            return last
        time.sleep(0.05)
    raise Failed(f"the server on :{port} did not answer {path} with 200 within {patience:.0f} s (last: {last})")


def server(name):
    s = SERVERS.get(name)
    if s is None:
        raise Failed(f"abuse.sh started no server for '{name}'")
    s["port"] = int(s["port"])
    s["pid"] = int(s["pid"])
    if not alive(s["pid"]):
        raise Failed(f"the server (pid {s['pid']}) is not running; its log: {tail(s.get('log'))}")
    return s


def tail(path, n=3):
    try:
        with open(path, errors="replace") as f:
            lines = [l.strip() for l in f if l.strip()]
        return " | ".join(lines[-n:]) or "(empty)"
    except (OSError, TypeError):
        return "(no log)"


def ms(s):
    return f"{s * 1000:.0f} ms"


# ------------------------------------------------------------------------------------------
# raw HTTP over sockets


def parse_response(buf):
    """(status, headers, body) of the first complete response in buf, or None if incomplete.
    A response without Content-Length or chunking is complete only at close (see at_close)."""
    end = buf.find(b"\r\n\r\n")
    if end < 0:
        return None
    head = bytes(buf[:end]).decode("latin-1").split("\r\n")
    m = re.match(r"HTTP/\d\.\d (\d{3})", head[0])
    if not m:
        return (-1, {}, bytes(buf))
    status = int(m.group(1))
    headers = {}
    for line in head[1:]:
        if ":" in line:
            k, v = line.split(":", 1)
            headers[k.strip().lower()] = v.strip()
    rest = bytes(buf[end + 4:])
    if "content-length" in headers:
        n = int(headers["content-length"])
        return (status, headers, rest[:n]) if len(rest) >= n else None
    if "chunked" in headers.get("transfer-encoding", "").lower():
        body, pos = b"", 0
        while True:
            eol = rest.find(b"\r\n", pos)
            if eol < 0:
                return None
            size = int(rest[pos:eol].split(b";")[0] or b"0", 16)
            if size == 0:
                return (status, headers, body)
            if len(rest) < eol + 2 + size + 2:
                return None
            body += rest[eol + 2:eol + 2 + size]
            pos = eol + 2 + size + 2
    if status in (204, 304) or 100 <= status < 200:
        return (status, headers, b"")
    return None


def at_close(buf):
    """What parse_response makes of buf once the peer closed (a body up to the close)."""
    r = parse_response(buf)
    if r is not None:
        return r
    end = buf.find(b"\r\n\r\n")
    if end < 0:
        return None
    m = re.match(rb"HTTP/\d\.\d (\d{3})", bytes(buf[:16]))
    return (int(m.group(1)), {}, bytes(buf[end + 4:])) if m else None


def raw_exchange(port, payload, timeout=3.0, chunk=65536):
    """Send payload (reading while sending, so an early answer is not lost to a reset), then
    read until a complete response or close. Returns (response or None, how it ended, secs)."""
    started = now()
    deadline = started + timeout
    buf = bytearray()
    s = socket.create_connection((HOST, port), timeout=timeout)
    how = "timeout"
    try:
        s.setblocking(False)
        view = memoryview(payload)
        sent = 0
        sel = selectors.DefaultSelector()
        sel.register(s, selectors.EVENT_READ | selectors.EVENT_WRITE)
        while now() < deadline:
            events = sel.select(timeout=max(0.0, min(0.1, deadline - now())))
            for _, mask in events:
                if mask & selectors.EVENT_READ:
                    try:
                        data = s.recv(65536)
                    except BlockingIOError:
                        data = None
                    except OSError as e:
                        how = f"reset ({e.strerror or e})"
                        return at_close(buf), how, now() - started
                    if data == b"":
                        return at_close(buf), "closed", now() - started
                    if data:
                        buf += data
                        r = parse_response(buf)
                        if r is not None:
                            return r, "answered", now() - started
                if mask & selectors.EVENT_WRITE and sent < len(view):
                    try:
                        sent += s.send(view[sent:sent + chunk])
                    except BlockingIOError:
                        pass
                    except OSError as e:
                        how = f"reset while sending ({e.strerror or e})"
                        # Whatever already arrived may still be readable.
                        try:
                            buf += s.recv(65536)
                        except OSError:
                            pass
                        return at_close(buf), how, now() - started
                    if sent >= len(view):
                        sel.modify(s, selectors.EVENT_READ)
        return parse_response(buf), how, now() - started
    finally:
        s.close()


class Conn:
    """One attacking connection and what happened to it."""

    __slots__ = ("sock", "t0", "data", "closed_at", "how", "status", "resp_at", "sent", "t_last", "writing")

    def __init__(self, sock, t0):
        self.sock, self.t0 = sock, t0
        self.data = bytearray()
        self.closed_at = None
        self.how = None
        self.status = None
        self.resp_at = None
        self.sent = 0
        self.t_last = t0
        self.writing = False


class Pump:
    """Reads (and optionally writes a shared body to) many non-blocking connections."""

    def __init__(self, conns, body=None):
        self.sel = selectors.DefaultSelector()
        self.body = memoryview(body) if body is not None else None
        self.conns = conns
        for c in conns:
            if c.sock is not None and c.closed_at is None:
                c.sock.setblocking(False)
                self.sel.register(c.sock, selectors.EVENT_READ, c)

    def _closed(self, c, how):
        c.closed_at = now()
        c.how = how
        try:
            self.sel.unregister(c.sock)
        except (KeyError, ValueError):
            pass
        if c.status is None:
            r = at_close(c.data)
            if r is not None:
                c.status, c.resp_at = r[0], c.closed_at

    def _read(self, c):
        try:
            data = c.sock.recv(65536)
        except BlockingIOError:
            return
        except OSError as e:
            self._closed(c, "reset" if e.errno == errno.ECONNRESET else f"error {e.errno}")
            return
        if data == b"":
            self._closed(c, "eof")
            return
        if len(c.data) < 65536:
            c.data += data
        if c.status is None:
            r = parse_response(c.data)
            if r is not None:
                c.status, c.resp_at = r[0], now()
                if c.writing:  # answered: stop sending its body
                    c.writing = False
                    self.sel.modify(c.sock, selectors.EVENT_READ, c)

    def _write(self, c):
        try:
            n = c.sock.send(self.body[c.sent:c.sent + 65536])
        except BlockingIOError:
            return
        except OSError as e:
            self._read(c)  # an answer that arrived before the reset
            if c.closed_at is None:
                self._closed(c, "reset" if e.errno in (errno.ECONNRESET, errno.EPIPE) else f"error {e.errno}")
            return
        c.sent += n
        c.t_last = now()
        if c.sent >= len(self.body):
            c.writing = False
            self.sel.modify(c.sock, selectors.EVENT_READ, c)

    def start_writing(self, which):
        for c in which:
            if c.closed_at is None and c.status is None:
                c.writing = True
                self.sel.modify(c.sock, selectors.EVENT_READ | selectors.EVENT_WRITE, c)

    def run(self, deadline, until=None):
        """Serve events until deadline, or until until() is true, or no connection is left."""
        while self.sel.get_map() and now() < deadline:
            if until is not None and until():
                return
            for key, mask in self.sel.select(timeout=max(0.0, min(0.1, deadline - now()))):
                c = key.data
                if mask & selectors.EVENT_READ:
                    self._read(c)
                if c.closed_at is None and c.writing and mask & selectors.EVENT_WRITE:
                    self._write(c)

    def close(self):
        self.sel.close()
        for c in self.conns:
            if c.sock is not None:
                c.sock.close()


def open_conns(port, n, payload=b""):
    """n connections, each sent payload; connect failures are Conns closed at once."""
    conns = []
    for _ in range(n):
        try:
            s = socket.create_connection((HOST, port), timeout=2.0)
            s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            if payload:
                s.sendall(payload)
            conns.append(Conn(s, now()))
        except OSError as e:
            c = Conn(None, now())
            c.closed_at, c.how = c.t0, f"connect failed: {e}"
            conns.append(c)
    return conns


class RssSampler(threading.Thread):
    """The peak VmRSS of a process, sampled every 20 ms (plus VmHWM at the end)."""

    def __init__(self, pid):
        super().__init__(daemon=True)
        self.pid, self.peak, self.stop = pid, 0.0, threading.Event()
        self.start_mb = mem_mb(pid)

    def run(self):
        while not self.stop.is_set():
            self.peak = max(self.peak, mem_mb(self.pid))
            self.stop.wait(0.02)

    def finish(self):
        self.stop.set()
        self.join(2)
        return max(self.peak, mem_mb(self.pid, "VmHWM"))


class Prober(threading.Thread):
    """A normal client: GET /health and POST /kv on fresh connections, in a loop."""

    def __init__(self, port):
        super().__init__(daemon=True)
        self.port = port
        self.lat = []
        self.failures = []
        self.stop = threading.Event()

    def run(self):
        i = 0
        while not self.stop.is_set():
            i += 1
            for method, path, body in (("GET", "/health", None), ("POST", "/kv", kv_body(f"probe-{i % 50}", i))):
                r = try_request(self.port, method, path, body=body, timeout=2.0,
                                headers=[("Content-Type", "application/json")] if body else [])
                self.lat.append(r.took)
                if r.status != 200:
                    self.failures.append(f"{method} {path}: {r}")
            self.stop.wait(0.01)

    def finish(self):
        self.stop.set()
        self.join(5)


# ------------------------------------------------------------------------------------------
# the checks


def check_lock():
    s = server("lock")
    first_pid, data_dir = s["pid"], s["dir"]
    wait_healthy(s["port"])
    r = request(s["port"], "POST", "/kv", kv_body("lock-canary", "first"))
    if r.status != 200:
        raise Failed(f"the first server's POST /kv answered {r}")
    problems = []
    port2 = free_port()
    out_path = os.path.join(ARGS.work, "lock-second.log")
    env = dict(os.environ, KV_BACKEND="wal", HOST=HOST, PORT=str(port2), DATA_DIR=data_dir, RUST_LOG="info")
    with open(out_path, "wb") as out:
        second = subprocess.Popen([ARGS.walab, "serve"], env=env, stdout=out, stderr=subprocess.STDOUT,
                                  stdin=subprocess.DEVNULL)
    record_pid(second.pid)
    started = now()
    try:
        rc = second.wait(timeout=5)
    except subprocess.TimeoutExpired:
        rc = None
    took = now() - started
    if rc is None:
        h = try_request(port2, "GET", "/health", timeout=1.0)
        served = f", and answered GET /health {h.status} on :{port2}" if h.status else ""
        problems.append(f"a second walab serve on the same DATA_DIR was still running after 5 s{served}")
        second.kill()
        second.wait(5)
    output = open(out_path, "rb").read().decode("utf-8", "replace")
    named_line = None
    if rc is not None:
        if rc == 0:
            problems.append("the second server exited 0 (want non-zero)")
        dirs = {data_dir, os.path.realpath(data_dir)}
        for line in output.splitlines():
            if any(d in line for d in dirs) and re.search(rf"(?<!\d){first_pid}(?!\d)", line):
                named_line = line.strip()
                break
        if named_line is None:
            problems.append(f"no line of the second server's output names both {data_dir} and pid {first_pid}: {short(output, 300)!r}")
    # The first keeps serving, and inspect reads the directory while it runs.
    h = try_request(s["port"], "GET", "/health")
    g = try_request(s["port"], "GET", "/kv/lock-canary")
    p = try_request(s["port"], "POST", "/kv", kv_body("lock-after", 1))
    if h.status != 200 or g.status != 200 or p.status != 200:
        problems.append(f"the first server stopped serving: /health {h.status}, GET /kv/lock-canary {g}, POST /kv {p.status}")
    if not alive(first_pid):
        problems.append(f"the first server (pid {first_pid}) is gone")
    try:
        ins = subprocess.run([ARGS.walab, "inspect", data_dir], capture_output=True, timeout=10)
        if ins.returncode != 0:
            problems.append(f"walab inspect {data_dir} exited {ins.returncode} while the first server runs: {short(ins.stderr or ins.stdout)}")
    except subprocess.TimeoutExpired:
        problems.append("walab inspect did not finish within 10 s")
    if problems:
        raise Failed("; ".join(problems))
    return f"second server exited {rc} after {ms(took)}: {short(named_line, 200)!r}; first pid {first_pid} still serving; inspect exit 0"


SLOW_KINDS = [
    # (name, payload, which timeout applies, description)
    ("partial-headers", "GET /health HTTP/1.1\r\nHost: {host}\r\nX-Slow: a", "header"),
    ("no-body", "POST /kv HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\n"
                "Content-Length: 1000000\r\n\r\n", "body"),
    ("unfinished-chunk", "POST /kv HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\n"
                         "Transfer-Encoding: chunked\r\n\r\n100\r\n{{\"key\":\"slow\",", "body"),
    ("idle-keepalive", "GET /health HTTP/1.1\r\nHost: {host}\r\n\r\n", "header"),
]


def check_slowloris():
    s = server("slowloris")
    port, n = s["port"], ARGS.n
    timeouts = {"header": int(s["HEADER_TIMEOUT_MS"]) / 1000, "body": int(s["BODY_TIMEOUT_MS"]) / 1000}
    wait_healthy(port)
    prober = Prober(port)
    prober.start()
    results, problems = [], []
    try:
        for kind, template, which in SLOW_KINDS:
            limit = timeouts[which] + MARGIN_S
            payload = template.format(host=f"{HOST}:{port}").encode()
            conns = open_conns(port, n, payload)
            if kind == "idle-keepalive":
                # One complete request each, answered, then nothing: the idle clock starts now.
                for c in conns:
                    if c.sock is None:
                        continue
                    c.sock.settimeout(3.0)
                    try:
                        while parse_response(c.data) is None:
                            d = c.sock.recv(65536)
                            if not d:
                                break
                            c.data += d
                    except OSError:
                        pass
                    r = parse_response(c.data)
                    if r is None or r[0] != 200:
                        problems.append(f"{kind}: the first request was not answered 200 ({short(c.data, 60)!r})")
                        break
                    c.data = bytearray()
                    c.t0 = now()
            pump = Pump(conns)
            deadline = max(c.t0 for c in conns) + limit
            pump.run(deadline)
            pump.close()
            closed = [c for c in conns if c.closed_at is not None and c.closed_at - c.t0 <= limit]
            open_ = [c for c in conns if c.closed_at is None]
            late = [c for c in conns if c.closed_at is not None and c.closed_at - c.t0 > limit]
            n408 = sum(1 for c in conns if c.status == 408)
            worst = max((c.closed_at - c.t0 for c in closed), default=0.0)
            results.append(f"{kind} {len(closed)}/{n} closed (max {worst:.1f} s, {n408}x408)")
            refused = sum(1 for c in conns if c.sock is None)
            if refused:
                results[-1] += f", {refused} connects refused"
            if open_ or late:
                problems.append(f"{kind}: {len(open_)} of {n} connections still open {limit:.1f} s after they stalled"
                                f" ({which} timeout {timeouts[which]:.1f} s + {MARGIN_S} s)"
                                + (f", {len(late)} closed late" if late else ""))
    finally:
        prober.finish()
    p50, p99 = pct(prober.lat, 0.5), pct(prober.lat, 0.99)
    summary = f"normal client {len(prober.lat)} requests, p50 {ms(p50)}, p99 {ms(p99)}, {len(prober.failures)} failed"
    if prober.failures:
        problems.append(f"{summary}: {short(prober.failures[0])}")
    elif p99 >= 1.0:
        problems.append(f"{summary}: p99 is over 1 s")
    if problems:
        raise Failed("; ".join(problems) + f" [{'; '.join(results)}; {summary}]")
    return "; ".join(results) + f"; {summary}"


def stall_bodies(port, n, path, host, content_length, send_bytes, send_patience=10.0):
    """n POSTs of `Content-Length: content_length` that send send_bytes of body and stop.
    Headers first, 0.5 s to answer them (a server may refuse on Content-Length alone), then
    the bodies, all at once. Returns (conns, pump); the pump keeps reading."""
    head = (f"POST {path} HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\n"
            f"Content-Length: {content_length}\r\n\r\n").encode()
    body = b'{"key":"stalled","value":"' + b"x" * (send_bytes - 26)
    conns = open_conns(port, n, head)
    pump = Pump(conns, body)
    pump.run(now() + 0.5)
    pump.start_writing(conns)
    pump.run(now() + send_patience, until=lambda: not any(c.writing for c in conns))
    return conns, pump


def check_rss():
    s = server("rss")
    port, pid, n = s["port"], s["pid"], ARGS.n
    body_s = int(s["BODY_TIMEOUT_MS"]) / 1000
    in_flight = int(s["MAX_BODY_BYTES_IN_FLIGHT"])
    wait_healthy(port)
    content_length, send_bytes = 1048000, 900 * 1024
    sampler = RssSampler(pid)
    sampler.start()
    conns, pump = stall_bodies(port, n, "/kv", f"{HOST}:{port}", content_length, send_bytes)
    sent_all = now()
    time.sleep(0.3)
    rss_stalled = mem_mb(pid)
    deadline = max(c.t_last for c in conns) + body_s + MARGIN_S
    pump.run(deadline)
    pump.close()
    peak = sampler.finish()
    rss_after = mem_mb(pid)
    problems = []
    # Those the budget cannot hold must be refused, fast, with 503 busy.
    room = -(-in_flight // content_length)  # what fits if reserved by Content-Length
    busy = [c for c in conns if c.status == 503]
    quick = [c for c in busy if c.resp_at - c.t0 <= 2.0]
    bad_busy = []
    for c in busy:
        r = parse_response(c.data) or at_close(c.data)
        ej = Reply(503, r[1], r[2], 0).error_json() if r else None
        if not ej or ej["error"] != "busy" or "retry-after" not in r[1]:
            bad_busy.append(short(c.data, 200))
    other = {}
    for c in conns:
        if c.status not in (None, 503):
            other[c.status] = other.get(c.status, 0) + 1
    silent = sum(1 for c in conns if c.status is None and c.closed_at is not None and c.closed_at - c.t0 <= 2.0)
    full = sum(1 for c in conns if c.sent >= send_bytes)
    still_open = [c for c in conns if c.closed_at is None]
    late = [c for c in conns if c.closed_at is not None and c.closed_at > c.t_last + body_s + MARGIN_S]
    numbers = (f"{n} stalled 1 MB bodies, {full} sent their 900 KB; {len(busy)} got 503 ({len(quick)} within 2 s),"
               f" {silent} closed unanswered within 2 s, other answers {other or 'none'}; RSS {sampler.start_mb:.0f} MB before,"
               f" {rss_stalled:.0f} MB stalled, peak {peak:.0f} MB, {rss_after:.0f} MB after; {len(still_open)} still open"
               f" {body_s + MARGIN_S:.1f} s after their last byte")
    if peak >= RSS_BOUND_MB:
        problems.append(f"peak RSS {peak:.0f} MB >= {RSS_BOUND_MB} MB")
    if len(quick) < n - room - 20:
        problems.append(f"only {len(quick)} of {n} got a quick 503 busy (MAX_BODY_BYTES_IN_FLIGHT={in_flight} holds about {room})")
    if bad_busy:
        problems.append(f"{len(bad_busy)} 503s are not {{\"error\":\"busy\"}} with Retry-After, e.g. {bad_busy[0]!r}")
    if still_open or late:
        problems.append(f"{len(still_open)} connections still open" + (f" and {len(late)} closed late" if late else "")
                        + f" {body_s:.1f} s + {MARGIN_S} s after their last byte (BODY_TIMEOUT_MS)")
    h = try_request(port, "GET", "/health")
    if h.status != 200:
        problems.append(f"GET /health afterwards: {h}")
    del sent_all
    if problems:
        raise Failed("; ".join(problems) + f" [{numbers}]")
    return numbers


def method_name(i):
    """A unique 2 KB method token made of letters."""
    tag = ""
    for _ in range(6):
        i, r = divmod(i, 26)
        tag += chr(ord("A") + r)
    return "X" * 2042 + tag


def check_metrics():
    s = server("metrics")
    port = s["port"]
    wait_healthy(port)
    total, threads = 2000, 8
    statuses, lock = {}, threading.Lock()

    def worker(k):
        for i in range(k, total, threads):
            req = (f"{method_name(i)} /kv HTTP/1.1\r\nHost: {HOST}:{port}\r\nContent-Length: 0\r\n"
                   f"Connection: close\r\n\r\n").encode()
            try:
                r, how, _ = raw_exchange(port, req, timeout=3.0)
                key = r[0] if r else how.split(" ")[0]
            except OSError as e:
                key = f"connect {e.errno}"
            with lock:
                statuses[key] = statuses.get(key, 0) + 1

    started = now()
    ws = [threading.Thread(target=worker, args=(k,), daemon=True) for k in range(threads)]
    for w in ws:
        w.start()
    for w in ws:
        w.join(60)
    took = now() - started
    cap = MB
    # GET /metrics, reading at most 1 MB + a little.
    sk = socket.create_connection((HOST, port), timeout=10)
    buf = bytearray()
    try:
        sk.sendall(f"GET /metrics HTTP/1.1\r\nHost: {HOST}:{port}\r\nConnection: close\r\n\r\n".encode())
        deadline = now() + 10
        while now() < deadline and len(buf) <= cap + 16384:
            d = sk.recv(65536)
            if not d:
                break
            buf += d
    finally:
        sk.close()
    end = buf.find(b"\r\n\r\n")
    head = bytes(buf[:end]).decode("latin-1") if end >= 0 else ""
    status_line = head.split("\r\n")[0] if head else short(buf, 60)
    m = re.search(r"(?im)^content-length:\s*(\d+)", head)
    body = bytes(buf[end + 4:]) if end >= 0 else b""
    size = int(m.group(1)) if m else len(body)
    truncated = len(body) > cap
    text = body[:cap + 16384].decode("utf-8", "replace")
    methods = set(re.findall(r'method="([^"]*)"', text))
    longest = max((len(x) for x in methods), default=0)
    known = {"GET", "HEAD", "POST", "PUT", "DELETE", "CONNECT", "OPTIONS", "TRACE", "PATCH", "other", "OTHER"}
    odd = sorted(x for x in methods if x not in known)
    shown = sorted(x for x in methods if len(x) <= 20)
    atleast = "at least " if truncated else ""
    numbers = (f"{total} requests with 2 KB methods in {took:.1f} s, answers {dict(sorted(statuses.items(), key=str))};"
               f" /metrics {size if not truncated or m else '>' + str(cap)} bytes, {atleast}{len(methods)} method label values"
               f" (longest {longest} chars){': ' + ','.join(shown) if shown else ''}")
    problems = []
    if not status_line.startswith("HTTP/1.1 200"):
        problems.append(f"GET /metrics answered {status_line!r}")
    if truncated or size >= cap:
        problems.append(f"/metrics is {'over ' + str(cap) if truncated and not m else size} bytes (limit {cap})")
    if longest > 20:
        problems.append(f"a method label is {longest} chars long (limit 20)")
    if len(methods) > len(known):
        problems.append(f"{atleast}{len(methods)} distinct method label values")
    elif odd:
        note("metrics", f"method labels outside the known methods and 'other': {odd}")
    if problems:
        raise Failed("; ".join(problems) + f" [{numbers}]")
    return numbers


def check_origin():
    s = server("origin")
    port, pid = s["port"], s["pid"]
    wait_healthy(port)
    own = f"http://{HOST}:{port}"
    problems, done = [], []
    evil_h = [("Origin", EVIL), ("Content-Type", "text/plain")]
    form = [("Content-Type", "application/x-www-form-urlencoded")]  # what curl -d sends

    r = request(port, "POST", "/kv", kv_body("origin-canary", "before"), headers=form)
    if r.status != 200:
        raise Failed(f"a plain POST /kv (like curl -d, no Origin) answered {r}")

    def canary():
        g = try_request(port, "GET", "/kv/origin-canary")
        j = g.json() if g.status == 200 else None
        return j.get("value") if isinstance(j, dict) else f"<{g.status}>"

    def expect_refused(label, r, status=(403,)):
        if r.status not in status:
            problems.append(f"{label} answered {r.status} (want {'/'.join(map(str, status))}): {short(r.body, 80)}")
            return False
        if not r.error_json():
            problems.append(f"{label} answered {r.status} without a JSON error: {short(r.body, 80)!r}")
            return False
        done.append(f"{label} {r.status} {r.error_json()['error']}")
        return True

    # Cross-site writes, as a page on evil.example would send them (a "simple" request).
    r = try_request(port, "POST", "/kv", kv_body("origin-canary", "evil"), headers=evil_h)
    expect_refused("evil POST /kv", r)
    if canary() != "before":
        problems.append(f"evil POST /kv changed the key (now {canary()!r})")
    r = try_request(port, "POST", "/admin/clear", headers=evil_h)
    expect_refused("evil POST /admin/clear", r)
    if canary() != "before":
        problems.append(f"evil POST /admin/clear removed the key (GET /kv/origin-canary: {canary()!r})")

    # DNS rebinding: a name that resolves to 127.0.0.1 but is not ours.
    r = try_request(port, "GET", "/kv", host="evil.example")
    expect_refused("GET /kv with Host: evil.example", r, status=(421, 403))
    for host in (f"localhost:{port}", f"{HOST}:{port}"):
        r = try_request(port, "GET", "/kv", host=host)
        if r.status != 200:
            problems.append(f"GET /kv with Host: {host} answered {r} (want 200)")

    # Same origin, and no Origin at all (curl), are allowed.
    r = try_request(port, "POST", "/kv", kv_body("origin-same", 1),
                    headers=[("Origin", own), ("Content-Type", "application/json")])
    if r.status != 200:
        problems.append(f"POST /kv with Origin {own} answered {r} (want 200)")
    r = try_request(port, "POST", "/kv", kv_body("origin-curl", 1), headers=form)
    if r.status != 200:
        problems.append(f"POST /kv without Origin answered {r} (want 200)")

    # Cross-site crash last: today it kills the server.
    r = try_request(port, "POST", "/admin/crash", headers=evil_h)
    expect_refused("evil POST /admin/crash", r)
    time.sleep(0.3)
    if not alive(pid):
        problems.append(f"evil POST /admin/crash killed the server (pid {pid})")
        raise Failed("; ".join(problems))

    # Without Origin, the admin calls work (clear, then crash, which ends this server).
    r = try_request(port, "POST", "/admin/clear", headers=form)
    if r.status != 200 or canary() != "<404>":
        problems.append(f"POST /admin/clear without Origin answered {r} and the key is {canary()!r} (want 200 and gone)")
    r = try_request(port, "POST", "/admin/crash", headers=form)
    gone = False
    for _ in range(40):
        if not alive(pid):
            gone = True
            break
        time.sleep(0.05)
    if r.status != 200 or not gone:
        problems.append(f"POST /admin/crash without Origin answered {r}, server {'gone' if gone else 'still alive'}")
    if problems:
        raise Failed("; ".join(problems))
    return "; ".join(done) + "; same-origin, no-Origin and Host localhost/127.0.0.1 all 200; no-Origin clear and crash worked"


def check_proxy():
    s = server("proxy")
    ui, pid = s["port"], s["pid"]
    ports = {b: int(s[b]) for b in ("wal", "memory", "sled")}
    body_s = int(s["BODY_TIMEOUT_MS"]) / 1000
    wait_healthy(ui, patience=30, path="/lab.json")
    for b, p in ports.items():
        wait_healthy(p, patience=30)
    own = f"http://{HOST}:{ui}"
    problems, done = [], []

    # A 1 GiB Content-Length with no body: refused at once, not waited for.
    head = (f"POST /api/wal/kv HTTP/1.1\r\nHost: {HOST}:{ui}\r\nContent-Type: application/json\r\n"
            f"Content-Length: 1073741824\r\n\r\n").encode()
    r, how, took = raw_exchange(ui, head, timeout=2.0)
    if r is None or r[0] != 413 or took > 1.0:
        problems.append(f"a POST with Content-Length: 1073741824 and no body got "
                        f"{('%d after %s' % (r[0], ms(took))) if r else 'no answer (' + how + f' after {ms(took)})'} (want 413 within 1 s)")
    else:
        if not Reply(413, r[1], r[2], took).error_json():
            problems.append(f"the 413 is not a JSON error: {short(r[2], 80)!r}")
        done.append(f"1 GiB Content-Length 413 in {ms(took)}")

    # A cross-site crash through the proxy.
    st = request(ports["memory"], "GET", "/admin/stats").json() or {}
    mem_pid = st.get("pid")
    if mem_pid:
        record_pid(mem_pid)
    r = try_request(ui, "POST", "/api/memory/admin/crash", headers=[("Origin", EVIL), ("Content-Type", "text/plain")])
    time.sleep(0.5)
    after = None
    deadline = now() + 10
    while now() < deadline:
        a = try_request(ports["memory"], "GET", "/admin/stats", timeout=1.0)
        if a.status == 200:
            after = (a.json() or {}).get("pid")
            break
        time.sleep(0.1)
    if after:
        record_pid(after)
    if r.status != 403 or not r.error_json():
        problems.append(f"cross-origin POST /api/memory/admin/crash answered {r} (want 403 JSON)")
    if after != mem_pid:
        problems.append(f"the memory server's pid went from {mem_pid} to {after} (it was crashed)")
    if r.status == 403 and after == mem_pid:
        done.append(f"evil crash 403, memory pid {mem_pid} unchanged")

    # The page's own requests still go through.
    r = try_request(ui, "POST", "/api/wal/kv", kv_body("proxy-same", 1),
                    headers=[("Origin", own), ("Content-Type", "application/json")])
    if r.status != 200:
        problems.append(f"same-origin POST /api/wal/kv answered {r} (want 200)")
    else:
        done.append("same-origin POST 200")

    # Stalled bodies through the proxy.
    n = ARGS.n
    sampler = RssSampler(pid)
    sampler.start()
    conns, pump = stall_bodies(ui, n, "/api/wal/kv", f"{HOST}:{ui}", 1048000, 900 * 1024)
    time.sleep(0.3)
    rss_stalled = mem_mb(pid)
    deadline = max(c.t_last for c in conns) + body_s + MARGIN_S
    pump.run(deadline)
    pump.close()
    peak = sampler.finish()
    still_open = sum(1 for c in conns if c.closed_at is None)
    late = sum(1 for c in conns if c.closed_at is not None and c.closed_at > c.t_last + body_s + MARGIN_S)
    answers = {}
    for c in conns:
        k = c.status if c.status is not None else "no answer"
        answers[k] = answers.get(k, 0) + 1
    full = sum(1 for c in conns if c.sent >= 900 * 1024)
    stall = (f"{n} stalled bodies ({full} sent 900 KB): answers {answers}, {still_open} still open"
             f" {body_s + MARGIN_S:.1f} s after their last byte; lab RSS {sampler.start_mb:.0f} MB before,"
             f" {rss_stalled:.0f} stalled, peak {peak:.0f} MB")
    if still_open or late:
        problems.append(f"{still_open} of {n} stalled connections to the proxy still open"
                        + (f" and {late} closed late" if late else "")
                        + f" {body_s:.1f} s + {MARGIN_S} s after their last byte (BODY_TIMEOUT_MS)")
    if peak >= RSS_BOUND_MB:
        problems.append(f"the lab's peak RSS is {peak:.0f} MB (bound {RSS_BOUND_MB})")
    l = try_request(ui, "GET", "/lab.json")
    if l.status != 200:
        problems.append(f"GET /lab.json afterwards: {l}")
    if problems:
        raise Failed("; ".join(problems) + f" [{stall}]")
    return "; ".join(done) + f"; {stall}"


def check_fdlimit():
    s = server("fdlimit")
    port, pid = s["port"], s["pid"]
    wait_healthy(port)
    limit = fd_soft_limit(pid)
    for i in range(20):
        r = request(port, "POST", "/kv", kv_body(f"fd-{i}", i))
        if r.status != 200:
            raise Failed(f"POST /kv before the attack answered {r}")
    control = http.client.HTTPConnection(HOST, port, timeout=5)
    held = []
    try:
        r = request(port, "GET", "/health", conn=control)  # accepted while fds are free
        if r.status != 200:
            raise Failed(f"GET /health on the control connection: {r}")
        base = fd_count(pid)
        counts = []
        for _ in range(3 * max(limit, 64)):
            try:
                held.append(socket.create_connection((HOST, port), timeout=1.0))
            except OSError as e:
                counts.append(-1)
                note("fdlimit", f"connect refused after {len(held)} idle connections: {e}")
                break
            time.sleep(0.01)
            counts.append(fd_count(pid))
            if counts[-1] >= limit or (len(counts) > 15 and counts[-1] <= counts[-16]):
                break
        for _ in range(10):  # a few more for the backlog
            try:
                held.append(socket.create_connection((HOST, port), timeout=1.0))
            except OSError:
                break
        time.sleep(0.2)
        fds = fd_count(pid)
        probe = try_request(port, "GET", "/health", timeout=0.7)
        newconn = "hangs" if probe.status == 0 and "timed out" in str(probe.body) else \
            ("refused" if probe.status == 0 else f"answered {probe.status}")
        state = f"fds {fds}/{limit} (from {base}) with {len(held)} idle connections, a new connection {newconn}"
        if probe.status == 200:
            raise Failed(f"could not exhaust the server's fds: {state}")
        cp = request(port, "POST", "/admin/checkpoint", conn=control, timeout=5)
    except (OSError, http.client.HTTPException) as e:
        raise Failed(f"the control connection failed during the attack: {type(e).__name__}: {e}")
    finally:
        control.close()
        for h in held:
            h.close()
    problems = []
    if not (500 <= cp.status <= 599 and cp.error_json()):
        problems.append(f"POST /admin/checkpoint with fds exhausted answered {cp} (want a 5xx JSON error)")
    # Released: the server must take connections again and must not be poisoned.
    deadline = now() + 5
    while now() < deadline and fd_count(pid) > base + 2:
        time.sleep(0.05)
    w = None
    deadline = now() + 5
    while now() < deadline:
        w = try_request(port, "POST", "/kv", kv_body("fd-after", 1), timeout=2.0)
        if w.status != 0:
            break
        time.sleep(0.1)
    if w.status != 200:
        problems.append(f"POST /kv after the failed checkpoint answered {w} (want 200: not poisoned)")
    h = try_request(port, "GET", "/health")
    if h.status != 200 or (h.json() or {}).get("status") != "ok":
        problems.append(f"GET /health after the failed checkpoint: {h}")
    cp2 = try_request(port, "POST", "/admin/checkpoint")
    if cp2.status != 200:
        problems.append(f"a second POST /admin/checkpoint answered {cp2} (want 200)")
    st = try_request(port, "GET", "/admin/stats").json() or {}
    failures = st.get("checkpoint_failures")
    if not isinstance(failures, int) or failures < 1:
        problems.append(f"/admin/stats checkpoint_failures is {failures!r} (want >= 1)")
    mt = try_request(port, "GET", "/metrics")
    vals = [float(v) for v in re.findall(r"(?m)^walab_wal_checkpoint_failures_total(?:\{[^}]*\})?\s+(\S+)",
                                            mt.body.decode("utf-8", "replace"))]
    if not vals or sum(vals) < 1:
        problems.append(f"walab_wal_checkpoint_failures_total is {vals or 'missing'} in /metrics (want >= 1)")
    if problems:
        raise Failed("; ".join(problems) + f" [{state}; checkpoint under attack: {cp}]")
    return (f"{state}; checkpoint under attack {cp.status} {cp.error_json()['error']}; afterwards POST /kv 200,"
            f" /health ok, checkpoint 200, checkpoint_failures {failures}, metric {sum(vals):.0f}")


def check_small():
    s = server("small")
    port = s["port"]
    token = s["ADMIN_TOKEN"]
    wait_healthy(port)
    problems, done = [], []

    r = try_request(port, "GET", "/admin/stats", headers=[("Authorization", f"bearer {token}")])
    if r.status != 200:
        problems.append(f"'Authorization: bearer <token>' (lower case) got {r.status} (want 200)")
    else:
        done.append("lower-case bearer 200")
    r = try_request(port, "GET", "/admin/stats", headers=[("Authorization", "Bearer x" + token[:3])])
    if r.status != 401 or not r.error_json():
        problems.append(f"a wrong token of another length got {r} (want a 401 JSON error)")
    else:
        done.append("wrong token 401")

    # 200 KB of headers.
    pad = "".join(f"X-Pad-{i}: {'a' * 51200}\r\n" for i in range(4))
    req = f"GET /health HTTP/1.1\r\nHost: {HOST}:{port}\r\n{pad}Connection: close\r\n\r\n".encode()
    resp, how, took = raw_exchange(port, req, timeout=5.0)
    if resp is None or resp[0] != 431:
        problems.append(f"a request with 200 KB of headers got {resp[0] if resp else 'no answer (' + how + ')'} (want 431)")
    else:
        ej = Reply(431, resp[1], resp[2], took).error_json()
        if ej:
            done.append(f"200 KB headers 431 {ej['error']}")
        else:
            note("small", f"the 431 has no JSON error body (body {short(resp[2], 80)!r}; hyper answers it itself?)")
            done.append("200 KB headers 431 (no body)")

    # /admin/wal?limit=1 over ~50 MB of log.
    auth = [("Authorization", f"Bearer {token}")]
    value = "v" * 1000000
    conn = http.client.HTTPConnection(HOST, port, timeout=10)
    written = 0
    started = now()
    try:
        for i in range(50):
            r = request(port, "POST", "/kv", kv_body(f"big-{i}", value), conn=conn,
                        headers=[("Content-Type", "application/json")])
            if r.status != 200:
                problems.append(f"writing 1 MB value {i} answered {r}")
                break
            written += 1
            if now() - started > 25:
                note("small", f"stopped writing after {written} values (25 s)")
                break
    except (OSError, http.client.HTTPException) as e:
        problems.append(f"writing 1 MB values: {type(e).__name__}: {e}")
    finally:
        conn.close()
    write_s = now() - started
    log_bytes = 0
    for root, _, files in os.walk(s["dir"]):
        log_bytes += sum(os.path.getsize(os.path.join(root, f)) for f in files)
    r = try_request(port, "GET", "/admin/wal?limit=1", headers=auth, timeout=10)
    j = r.json() if r.status == 200 else None
    if not isinstance(j, dict):
        problems.append(f"GET /admin/wal?limit=1 answered {r}")
    else:
        if j.get("count") != 1 or j.get("total") != written:
            problems.append(f"GET /admin/wal?limit=1 has count {j.get('count')} and total {j.get('total')} (want 1 and {written})")
        if r.took >= 0.5:
            problems.append(f"GET /admin/wal?limit=1 took {ms(r.took)} over {log_bytes / MB:.0f} MB of log (want well under 1 s: < 500 ms)")
        done.append(f"/admin/wal?limit=1 over {written} records ({log_bytes / MB:.0f} MB on disk, written in {write_s:.1f} s)"
                    f" in {ms(r.took)}, count {j.get('count')}, total {j.get('total')}")
    h = try_request(port, "GET", "/health")
    if h.status != 200 or (h.json() or {}).get("status") != "ok":
        problems.append(f"GET /health: {h} (want 200 status ok)")
    else:
        done.append("/health ok")
    if problems:
        raise Failed("; ".join(problems) + (f" [{'; '.join(done)}]" if done else ""))
    return "; ".join(done)


# ------------------------------------------------------------------------------------------


def check_probe():
    """Strangers who hold every public connection of a store cannot make the lab kill it.

    The lab asks /health on each server's private socket, so a pinned MAX_CONNECTIONS is
    "busy", not "dead": the memory store keeps its keys and its pid.
    """
    s = server("probe")
    ui, lab_pid = s["port"], s["pid"]
    mem = int(s["memory"])
    token = s["ADMIN_TOKEN"]
    auth = [("Authorization", f"Bearer {token}")]
    wait_healthy(ui, patience=30, path="/lab.json")
    wait_healthy(mem, patience=30)
    for i in range(40):
        r = request(mem, "POST", "/kv", kv_body(f"probe-{i}", i), headers=[("Content-Type", "application/json")])
        if r.status != 200:
            raise Failed(f"POST /kv to the memory store answered {r}")
    stats = request(mem, "GET", "/admin/stats", headers=auth).json() or {}
    mem_pid = stats.get("pid")
    if not mem_pid:
        raise Failed(f"/admin/stats has no pid: {stats}")
    record_pid(mem_pid)

    # 512 connections (the default MAX_CONNECTIONS) plus some waiting in the backlog, each
    # a request line that never ends; every one the server closes (HEADER_TIMEOUT_MS) is
    # opened again at once. Held longer than the lab used to take to kill a silent child
    # (3 probes a second apart, 2 s each).
    n, hold_s = 512 + 40, 14.0
    payload = f"GET /kv HTTP/1.1\r\nHost: {HOST}:{mem}\r\nX-Stall: ".encode()
    conns = open_conns(mem, n, payload)
    started = now()
    pinned_checks, reopened = [], 0
    while now() - started < hold_s:
        time.sleep(0.5)
        for i, c in enumerate(conns):
            dead = c.sock is None
            if not dead:
                try:
                    c.sock.setblocking(False)
                    dead = c.sock.recv(1, socket.MSG_PEEK) == b""
                except BlockingIOError:
                    pass
                except OSError:
                    dead = True
            if dead:
                if c.sock is not None:
                    c.sock.close()
                conns[i] = open_conns(mem, 1, payload)[0]
                reopened += 1
        if len(pinned_checks) < 3 and now() - started > 3:
            r = try_request(mem, "GET", "/health", timeout=1.0)
            pinned_checks.append(r.status)
    for c in conns:
        if c.sock is not None:
            c.sock.close()
    problems = []
    if any(st == 200 for st in pinned_checks):
        problems.append(f"the cap was not pinned: a normal client's /health got {pinned_checks} (want no answer)")
    deadline = now() + 15
    after = None
    while now() < deadline:
        a = try_request(mem, "GET", "/admin/stats", headers=auth, timeout=1.0)
        if a.status == 200:
            after = a.json() or {}
            break
        time.sleep(0.2)
    if after is None:
        problems.append("the memory store did not answer /admin/stats within 15 s of the connections closing")
    else:
        if after.get("pid") != mem_pid:
            record_pid(after.get("pid"))
            problems.append(f"the lab restarted the memory store: pid {mem_pid} -> {after.get('pid')}")
        keys = len((request(mem, "GET", "/kv").json() or {}).get("data", {}))
        if keys != 40:
            problems.append(f"the memory store holds {keys} keys after the attack (want 40)")
    log = open(s["log"], errors="replace").read()
    if "unhealthy" in log:
        problems.append(f"the lab called a child unhealthy: {short([l for l in log.splitlines() if 'unhealthy' in l][0], 200)}")
    if not alive(lab_pid):
        problems.append("the lab is gone")
    if problems:
        raise Failed("; ".join(problems))
    return (f"{n} stalled connections held {hold_s:.0f} s ({reopened} reopened after the header timeout), "
            f"a stranger's /health meanwhile {pinned_checks}; memory pid {mem_pid} kept, 40 keys kept")


def check_gap():
    """A deleted segment or snapshot is refused at start with the missing range, never
    served as if nothing were missing; inspect exits non-zero; point-in-time keeps the
    records before the gap."""
    work = os.path.join(ARGS.work, "gap")
    problems, done = [], []

    def start(data_dir, port, **extra):
        env = dict(os.environ, KV_BACKEND="wal", HOST=HOST, PORT=str(port), DATA_DIR=data_dir,
                   RUST_LOG="warn", SEGMENT_BYTES="4096", CHECKPOINT_THRESHOLD="0", **extra)
        out = open(os.path.join(work, f"serve-{port}.log"), "wb")
        p = subprocess.Popen([ARGS.walab, "serve"], env=env, stdout=out, stderr=subprocess.STDOUT,
                             stdin=subprocess.DEVNULL)
        record_pid(p.pid)
        return p, out.name

    def stop(p):
        p.terminate()
        p.wait(10)

    for case in ("segment", "snapshot"):
        data_dir = os.path.join(work, case)
        os.makedirs(data_dir)
        port = free_port()
        p, _ = start(data_dir, port)
        wait_healthy(port)
        for i in range(1, 601):
            r = request(port, "POST", "/kv", kv_body(f"k{i:04}", "a value of some thirty bytes..."))
            if r.status != 200:
                raise Failed(f"{case}: POST /kv answered {r}")
            if case == "snapshot" and i == 300:
                c = request(port, "POST", "/admin/checkpoint")
                if c.status != 200:
                    raise Failed(f"{case}: POST /admin/checkpoint answered {c}")
        stop(p)
        segs = sorted(f for f in os.listdir(data_dir) if f.endswith(".wal"))
        snaps = sorted(f for f in os.listdir(data_dir) if f.endswith(".snap"))
        gone = segs[len(segs) // 2] if case == "segment" else (snaps[0] if snaps else None)
        if gone is None:
            raise Failed(f"{case}: no snapshot after the checkpoint: {os.listdir(data_dir)}")
        os.remove(os.path.join(data_dir, gone))

        port = free_port()
        p, log = start(data_dir, port)
        try:
            rc = p.wait(timeout=10)
        except subprocess.TimeoutExpired:
            rc = None
            h = try_request(port, "GET", "/health", timeout=1.0)
            problems.append(f"{case} {gone} deleted: the server still runs after 10 s (/health {h.status})")
            stop(p)
        text = open(log, errors="replace").read()
        m = re.search(r"records (\d+)\.\.=(\d+) are missing", text)
        if rc is not None and (rc == 0 or not m):
            problems.append(f"{case} {gone} deleted: exit {rc}, output {short(text, 300)!r} (want non-zero and the missing range)")
        ins = subprocess.run([ARGS.walab, "inspect", data_dir], capture_output=True, timeout=20, text=True)
        if ins.returncode == 0 or "MISSING records" not in ins.stdout:
            problems.append(f"{case}: walab inspect exited {ins.returncode}: {short(ins.stdout[-300:] + ins.stderr, 300)!r}")
        if m:
            first = int(m.group(1))
            port = free_port()
            p, _ = start(data_dir, port, RECOVERY_MODE="point-in-time")
            wait_healthy(port)
            keys = len((request(port, "GET", "/kv").json() or {}).get("data", {}))
            stop(p)
            if keys != first - 1:
                problems.append(f"{case}: point-in-time recovery kept {keys} keys (want {first - 1}, those before the gap)")
            done.append(f"{case} {gone} deleted: refused (exit {rc}, records {m.group(1)}..={m.group(2)} missing), "
                        f"inspect exit {ins.returncode}, point-in-time kept {keys}")
    if problems:
        raise Failed("; ".join(problems))
    return "; ".join(done)


def check_stall():
    """Bodies that announce 1 MiB and then send nothing, or a byte every half second, give
    their share of MAX_BODY_BYTES_IN_FLIGHT back once they fall behind MIN_BODY_BYTES_PER_SEC
    (408 body_too_slow), so a normal writer is refused (503 busy) only in their first moments,
    not for as long as they stay."""
    s = server("stall")
    port, n = s["port"], 64
    wait_healthy(port)
    head = (f"POST /kv HTTP/1.1\r\nHost: {HOST}:{port}\r\nContent-Type: application/json\r\n"
            f"Content-Length: 1048576\r\n\r\n").encode()
    silent = open_conns(port, n // 2, head)
    trickle = open_conns(port, n // 2, head + b"{")
    conns = silent + trickle
    t0 = now()
    pump = Pump(conns)
    writes = []  # (seconds since the attack began, status)
    i = 0
    while now() - t0 < 5.0:
        i += 1
        r = try_request(port, "POST", "/kv", kv_body(f"writer-{i}", i), timeout=2.0,
                        headers=[("Content-Type", "application/json")])
        writes.append((now() - t0, r.status))
        for c in trickle:  # a byte every half second keeps a pause timeout from firing
            if c.sock is not None and c.closed_at is None and now() - c.t_last >= 0.5:
                try:
                    c.sock.send(b" ")
                    c.t_last = now()
                except OSError:
                    pass
        pump.run(now() + 0.05)
    pump.run(now() + 1.0)
    pump.close()
    statuses = {}
    for c in conns:
        statuses[c.status] = statuses.get(c.status, 0) + 1
    too_slow = sum(1 for c in conns if c.status == 408 and b"body_too_slow" in bytes(c.data))
    late = [w for w in writes if w[0] >= 3.0]
    late_bad = [w for w in late if w[1] != 200]
    early_busy = sum(1 for w in writes if w[0] < 3.0 and w[1] == 503)
    open_ = sum(1 for c in conns if c.closed_at is None)
    numbers = (f"{n} bodies announcing 1 MiB ({n // 2} silent, {n // 2} trickling): answers {statuses},"
               f" {too_slow} body_too_slow; a writer's {len(writes)} POSTs: {early_busy} busy in the first 3 s,"
               f" {len(late) - len(late_bad)}/{len(late)} ok after")
    problems = []
    if too_slow < n // 2:
        problems.append(f"only {too_slow} of {n} stalled bodies were answered 408 body_too_slow")
    if open_:
        problems.append(f"{open_} stalled connections still open 6 s later")
    if not late or late_bad:
        problems.append(f"{len(late_bad)} of the writer's {len(late)} POSTs 3 s into the attack failed,"
                        f" e.g. {late_bad[:3]}")
    if problems:
        raise Failed("; ".join(problems) + f" [{numbers}]")
    return numbers


def check_unread():
    """Clients that ask for a 4 MB listing and never read it: each answer's memory is held only
    until WRITE_TIMEOUT_MS closes its connection, all of them together hold at most
    MAX_ANSWER_BYTES_IN_FLIGHT (more are 503 busy), and the memory is given back."""
    s = server("unread")
    port, pid, n = s["port"], s["pid"], 100
    write_s = int(s["WRITE_TIMEOUT_MS"]) / 1000
    budget_mb = int(s["MAX_ANSWER_BYTES_IN_FLIGHT"]) / 2**20
    wait_healthy(port)
    value = "v" * 100_000
    for i in range(40):
        r = request(port, "POST", "/kv", kv_body(f"big-{i}", value),
                    headers=[("Content-Type", "application/json")])
        if r.status != 200:
            raise Failed(f"filling the store: {r}")
    listing = request(port, "GET", "/kv")
    size_mb = len(listing.body) / 2**20
    fds_before = fd_count(pid)
    sampler = RssSampler(pid)
    sampler.start()
    head = f"GET /kv HTTP/1.1\r\nHost: {HOST}:{port}\r\n\r\n".encode()
    conns = []
    for _ in range(n):
        sock = socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # read nothing, hold little
        try:
            sock.connect((HOST, port))
            sock.sendall(head)
        except OSError:
            sock.close()
            continue
        conns.append(sock)
    t0 = now()
    time.sleep(0.5)
    during = [try_request(port, "GET", "/health", timeout=2.0).status,
              try_request(port, "POST", "/kv", kv_body("small", 1), timeout=2.0,
                          headers=[("Content-Type", "application/json")]).status]
    # Reading would let the answers progress: watch the server's open sockets instead.
    deadline = t0 + write_s + MARGIN_S + 1.0
    held = fd_count(pid)
    while fd_count(pid) > fds_before + 2 and now() < deadline:
        time.sleep(0.1)
    closed_s, left = now() - t0, fd_count(pid) - fds_before
    peak = sampler.finish()
    busy = 0
    for sock in conns:
        try:
            busy += sock.recv(12, socket.MSG_PEEK | socket.MSG_DONTWAIT).startswith(b"HTTP/1.1 503")
        except OSError:
            pass
        sock.close()
    time.sleep(0.5)
    after = mem_mb(pid)
    relisted = try_request(port, "GET", "/kv", timeout=5.0)
    numbers = (f"{len(conns)} unread GET /kv of {size_mb:.1f} MB: {busy} answered 503 busy; the server held {held - fds_before}"
               f" more sockets, {left} after {closed_s:.1f} s;"
               f" RSS {sampler.start_mb:.0f} MB before, peak {peak:.0f} MB, {after:.0f} MB after;"
               f" meanwhile /health and POST {during}; GET /kv afterwards {relisted.status}")
    problems = []
    if left > 2:
        problems.append(f"{left} connections still open {write_s + MARGIN_S + 1.0:.1f} s after they stopped reading"
                        f" (WRITE_TIMEOUT_MS {write_s * 1000:.0f})")
    if busy == 0:
        problems.append("none was answered 503 busy although the answers exceed MAX_ANSWER_BYTES_IN_FLIGHT")
    if peak > sampler.start_mb + budget_mb + 2 * size_mb + 80:
        problems.append(f"peak RSS {peak:.0f} MB, over {budget_mb:.0f} MB of answers plus room")
    if during != [200, 200] or relisted.status != 200:
        problems.append(f"a normal client was refused: /health and POST {during}, GET /kv afterwards {relisted}")
    if problems:
        raise Failed("; ".join(problems) + f" [{numbers}]")
    return numbers


def check_diskfull():
    """A disk that fills up under a running WAL store: the appends find the room reserved for
    the active segment, a checkpoint fails alone (the store is not poisoned), and once space
    is freed the next checkpoint works, without a restart. abuse.sh mounts a 24 MiB tmpfs."""
    s = server("diskfull")
    port, data = s["port"], s["dir"]
    wait_healthy(port)
    value = "x" * 1000
    written = 0

    def write(n, what):
        nonlocal written
        for _ in range(n):
            r = request(port, "POST", "/kv", kv_body(f"k-{written}", value),
                        headers=[("Content-Type", "application/json")])
            if r.status != 200:
                raise Failed(f"{what}: write {written} answered {r}")
            written += 1

    write(200, "before the disk filled")
    room = request(port, "GET", "/admin/stats").json().get("log_reserved_room_bytes", 0)
    if room < 1 << 20:
        raise Failed(f"the active segment has {room} bytes of reserved room, expected most of SEGMENT_BYTES")
    filler = os.path.join(os.path.dirname(data), "filler")
    filled = 0
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        for chunk in (1 << 20, 64 << 10, 4 << 10):
            while True:
                try:
                    filled += os.write(fd, b"\0" * chunk)
                except OSError as e:
                    if e.errno != errno.ENOSPC:
                        raise
                    break
    finally:
        os.close(fd)
    st = os.statvfs(data)
    free_kb = st.f_bavail * st.f_frsize // 1024
    write(500, f"with the disk full ({free_kb} KiB free)")
    ck = request(port, "POST", "/admin/checkpoint", timeout=30.0)
    health = request(port, "GET", "/health")
    if ck.status == 200 or not ck.error_json():
        raise Failed(f"a checkpoint on a full disk answered {ck}, expected an error")
    if health.status != 200:
        raise Failed(f"after the failed checkpoint /health answered {health}: the store was poisoned")
    write(100, "after the failed checkpoint")
    os.remove(filler)
    ck2 = request(port, "POST", "/admin/checkpoint", timeout=30.0)
    if ck2.status != 200:
        raise Failed(f"with space freed, the checkpoint answered {ck2}")
    write(100, "after space was freed")
    listed = request(port, "GET", "/kv?prefix=k-").json() or {}
    if listed.get("count") != written:
        raise Failed(f"{written} writes acknowledged, GET /kv lists {listed.get('count')}")
    insp = subprocess.run([ARGS.walab, "inspect", data], capture_output=True, text=True, timeout=30)
    if insp.returncode != 0:
        raise Failed(f"walab inspect exited {insp.returncode}: {short(insp.stdout + insp.stderr, 200)}")
    return (f"{room // 1024} KiB reserved; disk filled ({filled // 1024} KiB of filler, {free_kb} KiB free); 500 writes"
            f" acknowledged on the full disk; checkpoint {ck.status} {ck.error_json()['error']}, /health 200; 100 more;"
            f" space freed: checkpoint 200, 100 more; {written} listed; inspect exit 0")


def main():
    global ARGS
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--walab", required=True)
    ap.add_argument("--work", required=True)
    ap.add_argument("--servers", required=True)
    ap.add_argument("--n", type=int, default=200, help="connections per attack (default 200)")
    ap.add_argument("checks", nargs="*", default=CHECKS)
    ARGS = ap.parse_args()
    for c in ARGS.checks:
        if c not in CHECKS:
            print(f"abuse: unknown check '{c}'; checks: {' '.join(CHECKS)}", file=sys.stderr)
            return 2
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = 4 * ARGS.n + 256
    if soft < want:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (min(want, hard), hard))
        except (ValueError, OSError):
            pass
    with open(ARGS.servers) as f:
        for line in f:
            fields = dict(tok.split("=", 1) for tok in line.split() if "=" in tok)
            if "name" in fields:
                SERVERS[fields["name"]] = fields

    started = now()
    failed = []
    for name in ARGS.checks:
        t = now()
        try:
            numbers = globals()[f"check_{name}"]()
            print(f"abuse: {name}: ok ({numbers}; took {now() - t:.1f} s)", flush=True)
        except Failed as e:
            failed.append(name)
            print(f"abuse: {name}: FAILED: {e} [took {now() - t:.1f} s]", flush=True)
        except Exception as e:  # a bug in this suite or a protocol surprise: still one line
            failed.append(name)
            print(f"abuse: {name}: FAILED: unexpected {type(e).__name__}: {e} [took {now() - t:.1f} s]", flush=True)
    ok = len(ARGS.checks) - len(failed)
    print(f"abuse: summary: {ok} ok, {len(failed)} failed{' (' + ' '.join(failed) + ')' if failed else ''}"
          f" in {now() - started:.1f} s", flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
