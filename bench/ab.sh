#!/usr/bin/env bash
# bench/ab.sh: two walab binaries side by side, interleaved, on the WAL store at its defaults:
# the 1-connection write p50 and the 64-connection writes/s of each, round by round, then the
# medians and their ratio (B / A). For a change to the write path: build main, copy the
# binary, build the change, and compare them on a quiet machine.
#
#   bench/ab.sh A_BINARY B_BINARY [ROUNDS (3)] [SECONDS (5)]
#
# Each round starts each binary on a fresh data directory under bench/.work (the disk
# measured is the repository's), runs wrk with bench/wrk/write.lua (unique keys, ~100-byte
# values) at 1 and then 64 connections, and stops it. Extra server settings come from the
# environment (e.g. FSYNC=never bench/ab.sh ...; KV_BACKEND=etcd with ETCD_ENDPOINTS compares
# two builds against one etcd). Needs wrk. Prints the load average before and after: a
# number taken beside a build is not a number.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
[ $# -ge 2 ] || { sed -n '2,15p' "$0" | sed 's/^# \{0,1\}//'; exit 2; }
a=$(realpath "$1") b=$(realpath "$2") rounds=${3:-3} secs=${4:-5}
command -v wrk > /dev/null || { echo "ab: wrk is missing (apt-get install wrk)" >&2; exit 2; }
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
mkdir -p bench/.work
echo "load average at the start: $(cut -d' ' -f1-3 /proc/loadavg)"
declare -A p50 rate
for round in $(seq "$rounds"); do
  for side in A B; do
    bin=$a
    [ "$side" = B ] && bin=$b
    dir=$(mktemp -d bench/.work/ab.XXXXXX)
    KV_BACKEND=${KV_BACKEND:-wal} HOST=127.0.0.1 PORT=$port DATA_DIR=$dir RUST_LOG=warn "$bin" serve > "$dir.log" 2>&1 &
    pid=$!
    for _ in $(seq 50); do curl -fs "http://127.0.0.1:$port/health" > /dev/null && break; sleep 0.1; done
    one=$(wrk -t1 -c1 -d"${secs}s" --latency -s bench/wrk/write.lua "http://127.0.0.1:$port" -- "one-$round" 100 |
      awk '/ 50%/ { v = $2; if (v ~ /ms$/) { sub(/ms$/, "", v); v *= 1000 } else sub(/us$/, "", v); print v }')
    many=$(wrk -t1 -c64 -d"${secs}s" -s bench/wrk/write.lua "http://127.0.0.1:$port" -- "many-$round" 100 |
      awk '/Requests\/sec/ { print $2 }')
    kill "$pid"
    wait "$pid" 2> /dev/null || true
    rm -rf "$dir" "$dir.log"
    echo "round $round $side: 1 connection p50 ${one} µs, 64 connections ${many} writes/s"
    p50[$side]="${p50[$side]:-} $one"
    rate[$side]="${rate[$side]:-} $many"
  done
done
median() { tr ' ' '\n' | sed '/^$/d' | sort -g | awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
pa=$(echo "${p50[A]}" | median) pb=$(echo "${p50[B]}" | median)
ra=$(echo "${rate[A]}" | median) rb=$(echo "${rate[B]}" | median)
echo "medians of $rounds rounds: A p50 $pa µs, $ra writes/s; B p50 $pb µs, $rb writes/s"
awk -v pa="$pa" -v pb="$pb" -v ra="$ra" -v rb="$rb" \
  'BEGIN { printf "B / A: 1-connection p50 %.2fx, 64-connection writes/s %.2fx\n", pb / pa, rb / ra }'
echo "load average at the end: $(cut -d' ' -f1-3 /proc/loadavg)"
