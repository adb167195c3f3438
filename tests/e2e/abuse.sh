#!/usr/bin/env bash
# The hostile-client suite: real attacks on real `walab serve` / `walab lab` processes, and
# what the server must do about each (the attacks and assertions are in abuse.py, Python 3
# standard library only).
#
#   tests/e2e/abuse.sh                 every check
#   tests/e2e/abuse.sh lock origin     only the checks named (for debugging)
#
# Checks: lock (a second server on the same DATA_DIR), slowloris (stalled headers, bodies,
# chunks, idle keep-alives), rss (stalled 1 MB bodies vs MAX_BODY_BYTES_IN_FLIGHT), metrics
# (2 KB made-up methods vs label cardinality), origin (cross-site writes, DNS rebinding),
# proxy (the lab's /api proxy: huge Content-Length, cross-site crash, stalled bodies),
# fdlimit (a checkpoint that fails for want of fds must not poison the store), small
# (lower-case bearer, 200 KB of headers, /admin/wal?limit=1 over 50 MB of log, /health),
# probe (552 stalled connections on a lab's memory store: the lab must not kill it), gap (a
# deleted segment or snapshot: refused with the missing range, inspect non-zero,
# point-in-time keeps what precedes it), stall (64 bodies announcing 1 MiB that send nothing
# or a byte every 0.5 s: 408 body_too_slow, writers served again within 3 s), unread (100
# unread 4 MB listings: 503 busy past MAX_ANSWER_BYTES_IN_FLIGHT, closed by WRITE_TIMEOUT_MS),
# diskfull (a 24 MiB tmpfs filled under a WAL store: writes go on into the segment's reserved
# room, a checkpoint fails alone, works again once space is freed; needs root to mount).
#
# Each check prints `abuse: <name>: ok (<numbers>)` or `abuse: <name>: FAILED: <why>`, then
# a summary; the exit status is 1 if any failed, 2 for a usage or setup problem.
#
# It starts one server per check (only for the checks asked for) on free loopback ports,
# with short timeouts (HEADER_TIMEOUT_MS/BODY_TIMEOUT_MS 1500) so stalls resolve fast, keeps
# everything in a temporary directory, and on exit kills every process it started (and any
# that abuse.py started or learned of) and removes the directory. The whole run is bounded
# by a watchdog (ABUSE_TIMEOUT_S, default 150 s; a normal run takes well under 90 s).
#
# Environment: WALAB (default target/release/walab), ABUSE_KEEP=1 keeps the temp dir and
# the servers' logs, ABUSE_N (default 200) connections per attack.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
here=tests/e2e
walab=$(realpath "${WALAB:-target/release/walab}" 2> /dev/null || true)
[ -n "$walab" ] && [ -x "$walab" ] || { echo "abuse: build first: cargo build --release (or set WALAB)" >&2; exit 2; }
command -v python3 > /dev/null || { echo "abuse: python3 is missing" >&2; exit 2; }

ALL=(lock slowloris rss metrics origin proxy fdlimit small probe gap stall unread diskfull)
case "${1:-}" in -h | --help)
  sed -n '2,/^set -euo/p' "$here/abuse.sh" | sed '$d; s/^# \{0,1\}//'
  exit 0
  ;;
esac
checks=("$@")
[ "${#checks[@]}" -gt 0 ] || checks=("${ALL[@]}")
for c in "${checks[@]}"; do
  [[ " ${ALL[*]} " == *" $c "* ]] || { echo "abuse: unknown check '$c'; checks: ${ALL[*]}" >&2; exit 2; }
done

# The servers read their whole configuration from the environment: start from a clean one.
unset KV_BACKEND WAL_ENABLED HOST PORT DATA_DIR FSYNC GROUP_COMMIT CHECKPOINT_THRESHOLD \
  SEGMENT_BYTES RECOVERY_MODE SLED_FLUSH MAX_VALUE_BYTES ADMIN_TOKEN OTEL_SERVICE_NAME \
  OTEL_EXPORTER_OTLP_ENDPOINT OTEL_SDK_DISABLED WALAB_RESTARTS MAX_CONNECTIONS \
  HEADER_TIMEOUT_MS BODY_TIMEOUT_MS REQUEST_TIMEOUT_MS MAX_BODY_BYTES_IN_FLIGHT ALLOWED_ORIGINS \
  MAX_HEADER_BYTES MIN_BODY_BYTES_PER_SEC WRITE_TIMEOUT_MS MAX_ANSWER_BYTES_IN_FLIGHT

work=$(mktemp -d "${TMPDIR:-/tmp}/walab-abuse.XXXXXX")
servers="$work/servers"
: > "$servers"
: > "$work/extra-pids"
serve_pids=()
lab_pids=()
mounted=""


# ours PID: PID is still a process running our walab binary (never signal anything else);
# its executable is $walab, or $walab is one of its arguments (a script run by an interpreter).
ours() {
  [ -n "$1" ] && [ -e "/proc/$1" ] || return 1
  [ "$(readlink "/proc/$1/exe" 2> /dev/null)" = "$walab" ] ||
    { tr '\0' '\n' < "/proc/$1/cmdline"; } 2> /dev/null | grep -xF -- "$walab" > /dev/null
}

cleanup() {
  local rc=$? pid i
  trap - EXIT INT TERM
  # The lab first, with SIGTERM, so it stops its own children; then everything else.
  for pid in "${lab_pids[@]}"; do ours "$pid" && kill -TERM "$pid" 2> /dev/null || true; done
  for i in $(seq 30); do
    local left=0
    for pid in "${lab_pids[@]}"; do ours "$pid" && left=1; done
    [ "$left" = 0 ] && break
    sleep 0.1
  done
  for pid in "${lab_pids[@]}" "${serve_pids[@]}" $(cat "$work/extra-pids" 2> /dev/null); do
    ours "$pid" && kill -KILL "$pid" 2> /dev/null || true
  done
  for i in $(seq 20); do
    local left=0
    for pid in "${lab_pids[@]}" "${serve_pids[@]}"; do ours "$pid" && left=1; done
    [ "$left" = 0 ] && break
    sleep 0.1
  done
  [ -z "$mounted" ] || umount "$mounted" 2> /dev/null || umount -l "$mounted" 2> /dev/null || true
  if [ "${ABUSE_KEEP:-}" = 1 ]; then
    echo "abuse: kept $work" >&2
  else
    rm -rf "$work"
  fi
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# Free loopback ports, all at once so they are distinct.
mapfile -t ports < <(python3 - << 'EOF'
import socket
socks = [socket.socket() for _ in range(24)]
for s in socks:
    s.bind(("127.0.0.1", 0))
for s in socks:
    print(s.getsockname()[1])
EOF
)
next_port=0
port() { port_=${ports[$next_port]}; next_port=$((next_port + 1)); }

# Timeouts short enough for a quick suite; abuse.py reads them back from the servers file.
SHORT=(HEADER_TIMEOUT_MS=1500 BODY_TIMEOUT_MS=1500)

# serve NAME [VAR=VALUE...]: start `walab serve` for check NAME (wal backend unless the
# VARs say otherwise) and describe it in the servers file. Set LIMIT_FDS=n to run it under
# `ulimit -n n`.
serve() {
  local name=$1 dir pid
  shift
  port
  dir="$work/$name/data"
  mkdir -p "$dir"
  local vars=(KV_BACKEND=wal HOST=127.0.0.1 PORT="$port_" DATA_DIR="$dir" RUST_LOG=warn "$@")
  if [ -n "${LIMIT_FDS:-}" ]; then
    (ulimit -n "$LIMIT_FDS" && exec env "${vars[@]}" "$walab" serve) > "$work/$name.log" 2>&1 &
  else
    env "${vars[@]}" "$walab" serve > "$work/$name.log" 2>&1 &
  fi
  pid=$!
  disown "$pid" # no "Killed" job report when the check or the cleanup kills it
  serve_pids+=("$pid")
  echo "name=$name port=$port_ pid=$pid dir=$dir log=$work/$name.log ${vars[*]}" >> "$servers"
}

# lab NAME [VAR=VALUE...]: `walab lab` on four free ports for check NAME.
lab() {
  local name=$1 ui wal memory sled pid dir
  shift
  dir="$work/$name/data"
  port; ui=$port_
  port; wal=$port_
  port; memory=$port_
  port; sled=$port_
  mkdir -p "$dir"
  env "$@" RUST_LOG=warn "$walab" lab --data-dir "$dir" --host 127.0.0.1 \
    --wal-port "$wal" --memory-port "$memory" --sled-port "$sled" --ui-port "$ui" \
    > "$work/$name.log" 2>&1 &
  pid=$!
  disown "$pid"
  lab_pids+=("$pid")
  echo "name=$name port=$ui pid=$pid dir=$dir log=$work/$name.log wal=$wal memory=$memory sled=$sled $*" >> "$servers"
}

for c in "${checks[@]}"; do
  case "$c" in
    lock) serve lock "${SHORT[@]}" ;;
    slowloris) serve slowloris "${SHORT[@]}" MAX_CONNECTIONS=2000 ;;
    rss) serve rss HEADER_TIMEOUT_MS=1500 BODY_TIMEOUT_MS=3000 MAX_BODY_BYTES_IN_FLIGHT=16777216 ;;
    metrics) serve metrics "${SHORT[@]}" KV_BACKEND=memory ;;
    origin) serve origin "${SHORT[@]}" ;;
    proxy) lab proxy "${SHORT[@]}" ;;
    # The children's default limits (512 connections, 10 s header timeout), a token set.
    probe) lab probe ADMIN_TOKEN=abuse-probe-token-5c1e ;;
    gap) mkdir -p "$work/gap" ;;
    # The default body timeout (10 s), so only the minimum rate can free a stalled body.
    stall) serve stall HEADER_TIMEOUT_MS=1500 ;;
    diskfull)
      mkdir -p "$work/diskfull"
      if mount -t tmpfs -o size=24m walab-abuse "$work/diskfull"; then
        mounted=$work/diskfull
        serve diskfull SEGMENT_BYTES=4194304 CHECKPOINT_THRESHOLD=0
      else
        echo "abuse: diskfull: could not mount a tmpfs (it needs root)" >&2
      fi
      ;;
    unread) serve unread "${SHORT[@]}" KV_BACKEND=memory WRITE_TIMEOUT_MS=2000 MAX_ANSWER_BYTES_IN_FLIGHT=67108864 ;;
    # Connections must outlive the few seconds the check holds them.
    fdlimit) LIMIT_FDS=64 serve fdlimit HEADER_TIMEOUT_MS=5000 BODY_TIMEOUT_MS=5000 CHECKPOINT_THRESHOLD=0 ;;
    small) serve small "${SHORT[@]}" ADMIN_TOKEN=abuse-token-7f3a CHECKPOINT_THRESHOLD=0 FSYNC=never ;;
  esac
done

rc=0
timeout -k 5 "${ABUSE_TIMEOUT_S:-150}" python3 "$here/abuse.py" --walab "$walab" --work "$work" \
  --servers "$servers" --n "${ABUSE_N:-200}" "${checks[@]}" || rc=$?
if [ "$rc" = 124 ] || [ "$rc" = 137 ]; then
  echo "abuse: suite: FAILED: still running after ${ABUSE_TIMEOUT_S:-150} s; stopped"
  rc=1
fi
exit "$rc"
