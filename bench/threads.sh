#!/usr/bin/env bash
# bench/threads.sh: where a server's CPU and context switches go, thread by thread, under
# 64 connections of unique-key writes (wrk, bench/wrk/write.lua, 2 s of warm-up, 5 s
# measured), from /proc/PID/task/*/{stat,status}: per request, each thread's voluntary and
# involuntary context switches and its CPU time.
#
#   bench/threads.sh [BACKEND (wal)] [WALAB (target/release/walab)]
#
# Extra server settings come from the environment (e.g. FSYNC=never bench/threads.sh).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
backend=${1:-wal} bin=${2:-target/release/walab}
command -v wrk > /dev/null || { echo "threads: wrk is missing (apt-get install wrk)" >&2; exit 2; }
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
mkdir -p bench/.work
dir=$(mktemp -d bench/.work/threads.XXXXXX)
KV_BACKEND=$backend HOST=127.0.0.1 PORT=$port DATA_DIR=$dir RUST_LOG=warn "$bin" serve > "$dir.log" 2>&1 &
pid=$!
trap 'kill $pid 2> /dev/null; wait $pid 2> /dev/null; rm -rf "$dir" "$dir.log"' EXIT
for _ in $(seq 50); do curl -fs "http://127.0.0.1:$port/health" > /dev/null && break; sleep 0.1; done
echo "load average at the start: $(cut -d' ' -f1-3 /proc/loadavg)"
wrk -t1 -c64 -d2s -s bench/wrk/write.lua "http://127.0.0.1:$port" -- warm 100 > /dev/null
snap() {
  for t in /proc/"$pid"/task/*; do
    echo "$(tr ' ' '_' < "$t/comm") $(awk '/^voluntary_ctxt_switches/ { v = $2 } /^nonvoluntary_ctxt_switches/ { n = $2 } END { print v, n }' "$t/status") $(awk '{ print $14 + $15 }' "$t/stat")"
  done
}
before=$(snap)
out=$(wrk -t1 -c64 -d5s -s bench/wrk/write.lua "http://127.0.0.1:$port" -- run 100)
after=$(snap)
reqs=$(echo "$out" | awk '/requests in/ { print $1 }')
tick=$(getconf CLK_TCK)
echo "$backend: $(echo "$out" | awk '/Requests\/sec/ { print $2 }') writes/s, $reqs in 5 s"
paste <(echo "$before") <(echo "$after") | awk -v r="$reqs" -v tick="$tick" '
  { v = $6 - $2; n = $7 - $3; cpu = ($8 - $4) / tick * 1e6 / r
    if (v + n > 100 || cpu > 0.5)
      printf "  %-18s %.3f voluntary + %.3f involuntary switches, %.1f us of CPU per write\n", $1, v / r, n / r, cpu }'
