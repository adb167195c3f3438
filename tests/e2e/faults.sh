#!/usr/bin/env bash
# Fault injection through a running `walab serve` (wal backend, FSYNC=always):
#   1. a real full disk: the data directory on a 2 MiB tmpfs (needs root to mount);
#   2. EIO on fdatasync, injected with libfiu (Debian's fiu-utils: fiu-run -x, fiu-ctrl);
#   3. EIO on write (pwrite, the call the log uses for file writes), the same way.
# Each time: the failing write gets a 503 with a clear error, every later write is refused
# and /health answers 503 "poisoned" until the server restarts, and after the restart every
# acknowledged write is there.
#   4. EIO on fdatasync under `walab lab`: the poisoned wal child stays up, so the lab must
#      see its /health stay bad, kill it and restart it, with every acknowledged write back.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
walab=$(realpath "${WALAB:-target/release/walab}")
[ -x "$walab" ] || { echo "build first: cargo build --release" >&2; exit 2; }
command -v fiu-run > /dev/null || { echo "fiu-run is missing: apt-get install fiu-utils" >&2; exit 2; }

work=$(mktemp -d)
pid=""
mounted=""
cleanup() {
  [ -n "$pid" ] && kill -9 "$pid" 2> /dev/null || true
  [ -n "$mounted" ] && umount "$mounted" 2> /dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
url="http://127.0.0.1:$port"
fail() { echo "FAIL: $*" >&2; exit 1; }

# start DIR [fiu-run]: start the server on DIR, optionally under fiu-run -x.
start() {
  local dir=$1 wrap=${2:-}
  local cmd=("$walab" serve)
  [ "$wrap" = fiu ] && cmd=(fiu-run -x -f "$work/fiu-ctrl" "${cmd[@]}")
  KV_BACKEND=wal HOST=127.0.0.1 PORT=$port DATA_DIR=$dir FSYNC=always CHECKPOINT_THRESHOLD=0 \
    RUST_LOG=warn "${cmd[@]}" 2>> "$work/serve.log" &
  pid=$!
  for _ in $(seq 300); do
    curl -sf "$url/health" > /dev/null && return 0
    sleep 0.02
  done
  fail "the server did not become healthy; log: $(tail -5 "$work/serve.log")"
}

stop_hard() {
  kill -9 "$pid"
  wait "$pid" 2> /dev/null || true
  pid=""
}

# put KEY SIZE: store a value of SIZE bytes; prints the HTTP status, body in $work/reply.
put() {
  local value
  value=$(head -c "$2" < /dev/zero | tr '\0' 'x')
  curl -s -o "$work/reply" -w '%{http_code}' -X POST "$url/kv" -d "{\"key\":\"$1\",\"value\":\"$value\"}"
}

# verify FILE: every key listed in FILE is readable after the restart.
verify() {
  local n=0 key
  while read -r key; do
    [ "$(curl -s -o /dev/null -w '%{http_code}' "$url/kv/$key")" = 200 ] || fail "acknowledged key $key is missing after the restart"
    n=$((n + 1))
  done < "$1"
  echo "   ok: all $n acknowledged writes are back after the restart"
}

expect_refused() {
  local code
  code=$(put after-failure 10)
  [ "$code" = 503 ] || fail "a write after the failure got $code, expected 503: $(cat "$work/reply")"
  jq -e '.error == "store_poisoned" and (.detail | test("restart"))' "$work/reply" > /dev/null ||
    fail "a refused write should say the store is poisoned and needs a restart: $(cat "$work/reply")"
  echo "   ok: later writes are refused: $(jq -c . "$work/reply")"
  local health
  health=$(curl -s -w ' %{http_code}' "$url/health")
  [ "${health##* }" = 503 ] && jq -e '.status == "poisoned" and (.detail | length > 0)' <<< "${health% *}" > /dev/null ||
    fail "/health should answer 503 poisoned while writes are refused: $health"
  echo "   ok: /health says so: $health"
}

echo "== full disk (tmpfs of 2 MiB)"
if [ "$(id -u)" = 0 ]; then
  mkdir -p "$work/tmpfs"
  mount -t tmpfs -o size=2m tmpfs "$work/tmpfs"
  mounted="$work/tmpfs"
  start "$work/tmpfs/wal"
  : > "$work/acked"
  code=200
  for i in $(seq 1000); do
    code=$(put "full-$i" 20000)
    [ "$code" = 200 ] || break
    echo "full-$i" >> "$work/acked"
  done
  [ "$code" = 503 ] || fail "the write that filled the disk got $code: $(cat "$work/reply")"
  echo "   ok: the write that hit ENOSPC got 503 after $(wc -l < "$work/acked") acknowledged writes: $(jq -c . "$work/reply")"
  expect_refused
  stop_hard
  start "$work/tmpfs/wal"
  verify "$work/acked"
  stop_hard
  umount "$mounted"
  mounted=""
else
  echo "   skipped: mounting a tmpfs needs root"
fi

inject() {
  local point=$1 label=$2
  echo "== EIO on $label (libfiu: $point)"
  rm -rf "$work/wal-$label"
  start "$work/wal-$label" fiu
  : > "$work/acked"
  for i in $(seq 20); do
    [ "$(put "k-$i" 100)" = 200 ] || fail "write $i failed before any fault: $(cat "$work/reply")"
    echo "k-$i" >> "$work/acked"
  done
  fiu-ctrl -f "$work/fiu-ctrl" -c "enable name=$point,failnum=1,failinfo=5" "$pid"
  code=$(put injected 100)
  fiu-ctrl -f "$work/fiu-ctrl" -c "disable name=$point" "$pid"
  [ "$code" = 503 ] || fail "the write under injected EIO got $code: $(cat "$work/reply")"
  jq -e '.error == "storage_failure"' "$work/reply" > /dev/null || fail "unexpected error body: $(cat "$work/reply")"
  echo "   ok: the failing write got 503: $(jq -c . "$work/reply")"
  expect_refused
  stop_hard
  start "$work/wal-$label"
  verify "$work/acked"
  stop_hard
}

inject posix/io/sync/fdatasync fdatasync
inject posix/io/rw/pwrite pwrite

echo "== EIO on fdatasync under walab lab: the lab restarts the poisoned child"
ports=()
for _ in 1 2 3; do
  ports+=("$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')")
done
url="http://127.0.0.1:${ports[0]}"
# fiu-run's preload reaches the children through the environment; fiu-ctrl names a pid.
FSYNC=always CHECKPOINT_THRESHOLD=0 RUST_LOG=warn fiu-run -x -f "$work/fiu-ctrl" \
  "$walab" lab --data-dir "$work/lab" --wal-port "${ports[0]}" --memory-port "${ports[1]}" \
  --sled-port "${ports[2]}" --ui-port 0 >> "$work/lab.log" 2>&1 &
pid=$!
for _ in $(seq 500); do
  curl -sf "$url/health" > /dev/null && break
  sleep 0.02
done
first=$(curl -sf "$url/admin/stats" | jq -r .pid) || fail "the lab's wal server did not start: $(tail -5 "$work/lab.log")"
: > "$work/acked"
for i in $(seq 20); do
  [ "$(put "lab-$i" 100)" = 200 ] || fail "write $i failed before any fault: $(cat "$work/reply")"
  echo "lab-$i" >> "$work/acked"
done
fiu-ctrl -f "$work/fiu-ctrl" -c "enable name=posix/io/sync/fdatasync,failnum=1,failinfo=5" "$first"
code=$(put injected 100)
[ "$code" = 503 ] || fail "the write under injected EIO got $code: $(cat "$work/reply")"
expect_refused
started=$(date +%s.%N)
second=""
for _ in $(seq 200); do
  second=$(curl -sf "$url/admin/stats" 2> /dev/null | jq -r .pid) || second=""
  [ -n "$second" ] && [ "$second" != "$first" ] && break
  sleep 0.05
done
[ -n "$second" ] && [ "$second" != "$first" ] || fail "the lab did not restart the poisoned wal server within 10 s: $(tail -5 "$work/lab.log")"
took=$(awk -v a="$started" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }')
[ "$(curl -s "$url/health" | jq -r .status)" = ok ] || fail "the restarted wal server is not healthy"
echo "   ok: the lab restarted it (pid $first -> $second) ${took} s after /health turned bad: $(grep -m1 unhealthy "$work/lab.log" | sed 's/.*WARN //')"
verify "$work/acked"
kill "$pid"
wait "$pid" 2> /dev/null || true
pid=""

echo "PASS: faults: full disk, EIO on fdatasync, EIO on pwrite, a poisoned child restarted by the lab"
