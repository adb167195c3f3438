#!/usr/bin/env bash
# Soak: mixed load (30% reads) on all three backends at once, a crash every 30 s, for
# 10 minutes (20 cycles). Prints, per backend, the torture summary and the resources the
# server held before each crash: resident memory, open descriptors and data directory size
# must stay bounded (checkpoints truncate the log), and a running server must answer every
# read. Not part of CI (it takes 10 minutes): `tests/e2e/soak.sh [cycles] [crash-every-ms]`.
#
# While it runs it prints a progress line every SOAK_PROGRESS_S seconds (default 30) on
# stderr: time elapsed of the expected total, time left, and per backend the cycles done and
# the writes acknowledged and lost so far. The summary on stdout is as before.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
walab=${WALAB:-target/release/walab}
[ -x "$walab" ] || { echo "build first: cargo build --release" >&2; exit 2; }
cycles=${1:-20}
every=${2:-30000}
progress_every=${SOAK_PROGRESS_S:-30}
names=(wal memory sled)
out=$(mktemp -d)
pids=()
for name in "${names[@]}"; do
  "$walab" torture --backend "$name" --cycles "$cycles" --min-ms "$every" --max-ms "$every" \
    --read-percent 30 --writers 4 > "$out/$name.txt" 2>&1 &
  pids+=($!)
done

# m:ss (or h:mm:ss) from seconds.
clock() {
  local s=$1
  if [ "$s" -ge 3600 ]; then
    printf '%d:%02d:%02d' $((s / 3600)) $((s % 3600 / 60)) $((s % 60))
  else
    printf '%d:%02d' $((s / 60)) $((s % 60))
  fi
}

# "wal 5/20 cycles, 2,345 acked, 0 lost": from the torture's cycle lines
# ("cycle    5:    498 acked, ... | lost   0, phantom 0 | ...").
counts() {
  awk -v name="$1" -v cycles="$cycles" '
    /^cycle +[0-9]+:/ {
      done++
      for (i = 1; i <= NF; i++) {
        if ($i == "acked,") acked += $(i - 1)
        if ($i == "lost") { v = $(i + 1); sub(/,$/, "", v); lost += v }
      }
    }
    function grouped(n,   s) {
      s = sprintf("%d", n)
      while (s ~ /[0-9][0-9][0-9][0-9]/) sub(/[0-9][0-9][0-9]($|,)/, ",&", s)
      return s
    }
    END { printf "%s %d/%d cycles, %s acked, %s lost", name, done, cycles, grouped(acked), grouped(lost) }
  ' "$out/$1.txt"
}

# The expected total: every cycle waits `every` ms before its crash, plus about half a
# second for the crash, the restart and the checks.
per_cycle_ms=$((every + 500))
total=$((cycles * per_cycle_ms / 1000))
started=$SECONDS
running() {
  local pid
  for pid in "${pids[@]}"; do
    kill -0 "$pid" 2> /dev/null && return 0
  done
  return 1
}
progress() {
  local elapsed=$((SECONDS - started)) least=$cycles name done left line
  for name in "${names[@]}"; do
    done=$(grep -c '^cycle ' "$out/$name.txt" || true)
    [ "$done" -lt "$least" ] && least=$done
  done
  # Time left: what the plan leaves, or more when the slowest backend is behind it (its
  # cycle under way counted as half done).
  left=$(((2 * (cycles - least) - 1) * per_cycle_ms / 2000))
  [ $((total - elapsed)) -gt "$left" ] && left=$((total - elapsed))
  [ "$left" -lt 0 ] && left=0
  line="soak: $(clock "$elapsed") of ~$(clock "$total") ($((elapsed * 100 / (total > 0 ? total : 1)))%), ~$(clock "$left") left"
  for name in "${names[@]}"; do
    line+="; $(counts "$name")"
  done
  echo "$line" >&2
}
echo "soak: ${#names[@]} backends, $cycles cycles each, a crash every $((every / 1000)) s: about $(clock "$total") in all; progress every ${progress_every} s" >&2
next=$((started + progress_every))
while running; do
  sleep 1
  if [ "$SECONDS" -ge "$next" ] && running; then
    progress
    next=$((next + progress_every))
  fi
done

status=0
for pid in "${pids[@]}"; do
  wait "$pid" || status=1
done
for name in "${names[@]}"; do
  echo "== $name"
  tail -n 5 "$out/$name.txt"
done
rm -rf "$out"
exit "$status"
