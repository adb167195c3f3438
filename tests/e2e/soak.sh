#!/usr/bin/env bash
# Soak: mixed load (30% reads) on all three backends at once, a crash every 30 s, for
# 10 minutes (20 cycles). Prints, per backend, the torture summary and the resources the
# server held before each crash: resident memory, open descriptors and data directory size
# must stay bounded (checkpoints truncate the log), and a running server must answer every
# read. Not part of CI (it takes 10 minutes): `tests/e2e/soak.sh [cycles] [crash-every-ms]`.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
walab=${WALAB:-target/release/walab}
[ -x "$walab" ] || { echo "build first: cargo build --release" >&2; exit 2; }
cycles=${1:-20}
every=${2:-30000}
out=$(mktemp -d)
pids=()
for row in "--backend wal" "--backend memory" "--backend sled"; do
  name=${row##* }
  # shellcheck disable=SC2086
  "$walab" torture $row --cycles "$cycles" --min-ms "$every" --max-ms "$every" \
    --read-percent 30 --writers 4 > "$out/$name.txt" 2>&1 &
  pids+=($!)
done
status=0
for pid in "${pids[@]}"; do
  wait "$pid" || status=1
done
for name in wal memory sled; do
  echo "== $name"
  tail -n 5 "$out/$name.txt"
done
rm -rf "$out"
exit "$status"
