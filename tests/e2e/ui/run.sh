#!/usr/bin/env bash
# tests/e2e/ui/run.sh: the lab's page, end to end, in headless Chromium.
#
# Starts a real `walab lab` (target/release/walab, or under $CARGO_TARGET_DIR, so build with
# `cargo build --release` first; WALAB=path to use another binary) with its data in a
# temporary directory, on four free ports (three servers and the page), waits for it to
# say it is ready, runs durability.mjs (the demo, charts, WAL viewer, layout) and
# columns.mjs (a fourth backend in /lab.json, answered by the script) in Debian's
# /usr/bin/chromium driven by playwright-core, and stops the lab with SIGINT as Ctrl-C
# would. Then it starts a second lab with ADMIN_TOKEN set and runs token.mjs (the token
# field, and a restart seen through walab_process_restarts_total). Then, when `etcd` is on
# PATH (or ETCD_BIN names one), a third lab with --etcd (a real three-member etcd cluster
# and the etcd store on a fifth free port) and runs etcd.mjs: four columns, the cluster's
# members and leader, the durability demo over four stores, and the leader killed from
# the page while writing. Without etcd that part is skipped, saying so, unless
# WALAB_REQUIRE_ETCD=1 (.ci/run sets it), which makes it fail. The cluster's ports are
# fixed (12379/12380, 22379/22380, 32379/32380): they must be free, so only one
# `walab lab --etcd` at a time on a machine.
#
# Installs what is missing: chromium, nodejs and npm (apt-get, through sudo when not
# root), and playwright-core (`npm ci` here; node_modules is not committed).
#
# Leaves target/ui-screenshot.png (the page after the demo, kept as a CI artifact),
# target/ui-columns.png (four columns, the fourth a stand-in), target/ui-etcd.png (the four
# columns of a real --etcd lab, after the leader was killed) and, on failure,
# target/ui-token.png and target/ui-lab.log. UI_SCREENSHOT=path writes the first
# screenshot elsewhere (the others beside it); E2E_KEEP=1 keeps the temporary directory.
# UI_ASSETS=src/lab/assets serves the page's files from that directory instead of the
# binary's (they are compiled in), to try edited page files against an already built
# walab. UI_PARTS="plain token etcd" (the default) names the labs to run, e.g.
# UI_PARTS=etcd for only the third.

set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/../../.." && pwd)
walab="${WALAB:-${CARGO_TARGET_DIR:-$repo/target}/release/walab}"
chromium="${CHROMIUM:-/usr/bin/chromium}"
screenshot="${UI_SCREENSHOT:-$repo/target/ui-screenshot.png}"
READY_PATIENCE_S=60

say() { printf '%s\n' "$*"; }
die() {
  say "FAIL: $*" >&2
  exit 1
}

as_root() {
  if [ "$(id -u)" = 0 ]; then
    "$@"
  elif command -v sudo > /dev/null; then
    sudo "$@"
  else
    die "need root or sudo to run: $*"
  fi
}

# ---------------------------------------------------------------------------------------
# tools

[ -x "$walab" ] || die "no walab binary at $walab: run 'cargo build --release' first (or set WALAB)"
if [ ! -x "$chromium" ]; then
  say "installing chromium (Debian's package)"
  as_root env DEBIAN_FRONTEND=noninteractive apt-get update
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends chromium
fi
if ! command -v node > /dev/null || ! command -v npm > /dev/null; then
  say "installing nodejs and npm (Debian's packages)"
  as_root env DEBIAN_FRONTEND=noninteractive apt-get update
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends nodejs npm
fi
"$chromium" --version 2> /dev/null | head -n 1 || true
say "node $(node --version)"
(cd "$here" && npm ci --no-audit --no-fund --loglevel=error)

# ---------------------------------------------------------------------------------------
# the lab

tmp=$(mktemp -d "${TMPDIR:-/tmp}/walab-ui.XXXXXX")
lab_pid=""
lab_log=""
stop_lab_now() {
  if [ -n "$lab_pid" ] && kill -0 "$lab_pid" 2> /dev/null; then
    kill -INT "$lab_pid" 2> /dev/null || true
    for _ in $(seq 100); do
      kill -0 "$lab_pid" 2> /dev/null || break
      sleep 0.1
    done
    kill -KILL "$lab_pid" 2> /dev/null || true
  fi
}
cleanup() {
  local rc=$?
  stop_lab_now
  if [ "$rc" != 0 ] && [ -n "$lab_log" ] && [ -f "$lab_log" ]; then
    mkdir -p "$(dirname "$screenshot")"
    cp "$lab_log" "$(dirname "$screenshot")/ui-lab.log" || true
    say "the lab's log: $(dirname "$screenshot")/ui-lab.log" >&2
  fi
  if [ "${E2E_KEEP:-0}" = 1 ]; then
    say "kept $tmp"
  else
    rm -rf "$tmp"
  fi
  exit "$rc"
}
trap cleanup EXIT

# Free ports (four, or as many as asked), picked below the kernel's ephemeral range (32768
# and up) so no outgoing connection takes one between this check and the lab's bind, and
# clear of the etcd cluster's fixed ports.
free_ports() {
  python3 -c '
import random, socket, sys
ports = []
while len(ports) < int(sys.argv[1]):
    port = random.randint(20000, 32000)
    if port in ports or port in (22379, 22380):
        continue
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            continue
    ports.append(port)
print(*ports)
' "${1:-4}"
}

# start_lab NAME [VAR=value...]: a lab with its data in $tmp/NAME, on free ports, with the
# defaults the page describes (FSYNC=always, sled flushing in the background) and the
# given variables; with LAB_ETCD=1 also its etcd cluster and the etcd store. Sets ui (its
# page's port), lab_pid and lab_log.
start_lab() {
  local name=$1 wal memory sled etcd
  shift
  local extra=()
  read -r ui wal memory sled etcd < <(free_ports 5)
  lab_log="$tmp/$name.log"
  if [ "${LAB_ETCD:-0}" = 1 ]; then
    extra=(--etcd --port "etcd=$etcd")
    say "== starting walab lab ($name): page :$ui, wal :$wal, memory :$memory, sled :$sled, etcd :$etcd (members :12379 :22379 :32379)"
  else
    say "== starting walab lab ($name): page :$ui, wal :$wal, memory :$memory, sled :$sled"
  fi
  env -u FSYNC -u SLED_FLUSH -u ADMIN_TOKEN -u CHECKPOINT_THRESHOLD "$@" \
    "$walab" lab --data-dir "$tmp/$name" --ui-port "$ui" \
    --wal-port "$wal" --memory-port "$memory" --sled-port "$sled" "${extra[@]}" > "$lab_log" 2>&1 &
  lab_pid=$!
  for _ in $(seq $((READY_PATIENCE_S * 10))); do
    grep -q "walab lab is ready" "$lab_log" && break
    kill -0 "$lab_pid" 2> /dev/null || die "walab lab exited during start-up: $(cat "$lab_log")"
    sleep 0.1
  done
  grep -q "walab lab is ready" "$lab_log" || die "walab lab not ready within $READY_PATIENCE_S s"
  grep -q "http://127.0.0.1:$ui .*page" "$lab_log" || die "the lab did not print the page's URL: $(cat "$lab_log")"
  say "   ok: the lab printed the page's URL, http://127.0.0.1:$ui"
}

stop_lab() {
  say "== stopping the lab (SIGINT)"
  kill -INT "$lab_pid"
  local rc=0
  wait "$lab_pid" || rc=$?
  lab_pid=""
  [ "$rc" = 0 ] || die "walab lab exited with $rc after SIGINT: $(tail -n 20 "$lab_log")"
  grep -q "walab lab stopped" "$lab_log" || die "the lab did not say 'walab lab stopped'"
  say "   ok: the lab stopped cleanly (exit 0) with the page open"
}

# browse SCRIPT PROFILE [VAR=value...]: one script, in a fresh Chromium profile, given
# BROWSE_PATIENCE_S at most (a script that hangs fails the section instead of the CI run).
BROWSE_PATIENCE_S=600
browse() {
  local script=$1 profile=$2 rc=0
  shift 2
  mkdir -p "$tmp/$profile"
  env UI_URL="http://127.0.0.1:$ui/" PROFILE_DIR="$tmp/$profile" CHROMIUM="$chromium" "$@" \
    timeout -k 10 "$BROWSE_PATIENCE_S" node "$here/$script" || rc=$?
  # 124: timeout stopped it; 137: it ignored that and was killed 10 s later.
  [ "$rc" != 124 ] && [ "$rc" != 137 ] || die "$script did not finish within $BROWSE_PATIENCE_S s"
  [ "$rc" = 0 ] || exit "$rc"
}

# ---------------------------------------------------------------------------------------
# the page over a lab without a token

parts=" ${UI_PARTS:-plain token etcd} "
shots=$(dirname "$screenshot")
mkdir -p "$shots"
done_shots=()
if [[ $parts == *" plain "* ]]; then
  start_lab lab
  browse durability.mjs profile SCREENSHOT="$screenshot"
  browse columns.mjs profile-columns SCREENSHOT="$shots/ui-columns.png"
  stop_lab
  done_shots+=("$screenshot" "$shots/ui-columns.png")
fi

# ---------------------------------------------------------------------------------------
# the page over a lab with ADMIN_TOKEN

if [[ $parts == *" token "* ]]; then
  token=$(python3 -c 'import secrets; print(secrets.token_urlsafe(18))')
  start_lab lab-token ADMIN_TOKEN="$token"
  browse token.mjs profile-token ADMIN_TOKEN="$token" SCREENSHOT="$shots/ui-token.png"
  stop_lab
fi

# ---------------------------------------------------------------------------------------
# the page over a real `walab lab --etcd`

if [[ $parts == *" etcd "* ]]; then
  if ! command -v etcd > /dev/null && [ -z "${ETCD_BIN:-}" ]; then
    [ -z "${WALAB_REQUIRE_ETCD:-}" ] ||
      die "WALAB_REQUIRE_ETCD is set but there is no etcd on PATH (apt-get install etcd-server)"
    say "== SKIPPED: the page over a real walab lab --etcd: no etcd on PATH (apt-get install etcd-server, or set ETCD_BIN)"
  else
    # The cluster's ports are fixed: say who holds them rather than let etcd fail to bind.
    for port in 12379 12380 22379 22380 32379 32380; do
      if python3 -c 'import socket, sys; s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1); s.bind(("127.0.0.1", int(sys.argv[1])))' "$port" 2> /dev/null; then
        continue
      fi
      die "port $port (the lab's etcd cluster) is taken: another walab lab --etcd (or etcd) runs on this machine"
    done
    LAB_ETCD=1 start_lab lab-etcd
    browse etcd.mjs profile-etcd SCREENSHOT="$shots/ui-etcd.png"
    stop_lab
    done_shots+=("$shots/ui-etcd.png")
  fi
fi
say "PASS (screenshots: ${done_shots[*]:-none})"
