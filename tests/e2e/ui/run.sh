#!/usr/bin/env bash
# tests/e2e/ui/run.sh: the lab's page, end to end, in headless Chromium.
#
# Starts a real `walab lab` (target/release/walab, or under $CARGO_TARGET_DIR, so build with
# `cargo build --release` first; WALAB=path to use another binary) with its data in a
# temporary directory, on four free ports (three servers and the page), waits for it to
# say it is ready, runs durability.mjs (Debian's /usr/bin/chromium driven by
# playwright-core), and stops the lab with SIGINT as Ctrl-C would.
#
# Installs what is missing: chromium, nodejs and npm (apt-get, through sudo when not
# root), and playwright-core (`npm ci` here; node_modules is not committed).
#
# Leaves target/ui-screenshot.png (the page after the demo, kept as a CI artifact) and, on
# failure, target/ui-lab.log. UI_SCREENSHOT=path writes the screenshot elsewhere;
# E2E_KEEP=1 keeps the temporary directory.

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
cleanup() {
  local rc=$?
  if [ -n "$lab_pid" ] && kill -0 "$lab_pid" 2> /dev/null; then
    kill -INT "$lab_pid" 2> /dev/null || true
    for _ in $(seq 100); do
      kill -0 "$lab_pid" 2> /dev/null || break
      sleep 0.1
    done
    kill -KILL "$lab_pid" 2> /dev/null || true
  fi
  if [ "$rc" != 0 ] && [ -f "$tmp/lab.log" ]; then
    mkdir -p "$(dirname "$screenshot")"
    cp "$tmp/lab.log" "$(dirname "$screenshot")/ui-lab.log" || true
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

# Four free ports, picked below the kernel's ephemeral range (32768 and up) so no outgoing
# connection takes one between this check and the lab's bind.
read -r ui wal memory sled < <(python3 -c '
import random, socket
ports = []
while len(ports) < 4:
    port = random.randint(20000, 32000)
    if port in ports:
        continue
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            continue
    ports.append(port)
print(*ports)
')

say "== starting walab lab: page :$ui, wal :$wal, memory :$memory, sled :$sled"
# The defaults the page describes: FSYNC=always, sled flushing in the background.
env -u FSYNC -u SLED_FLUSH -u ADMIN_TOKEN -u CHECKPOINT_THRESHOLD \
  "$walab" lab --data-dir "$tmp/data" --ui-port "$ui" \
  --wal-port "$wal" --memory-port "$memory" --sled-port "$sled" > "$tmp/lab.log" 2>&1 &
lab_pid=$!
for _ in $(seq $((READY_PATIENCE_S * 10))); do
  grep -q "walab lab is ready" "$tmp/lab.log" && break
  kill -0 "$lab_pid" 2> /dev/null || die "walab lab exited during start-up: $(cat "$tmp/lab.log")"
  sleep 0.1
done
grep -q "walab lab is ready" "$tmp/lab.log" || die "walab lab not ready within $READY_PATIENCE_S s"
grep -q "http://127.0.0.1:$ui .*page" "$tmp/lab.log" || die "the lab did not print the page's URL: $(cat "$tmp/lab.log")"
say "   ok: the lab printed the page's URL, http://127.0.0.1:$ui"

# ---------------------------------------------------------------------------------------
# the browser

mkdir -p "$(dirname "$screenshot")" "$tmp/profile"
UI_URL="http://127.0.0.1:$ui/" SCREENSHOT="$screenshot" PROFILE_DIR="$tmp/profile" \
  CHROMIUM="$chromium" node "$here/durability.mjs"

say "== stopping the lab (SIGINT)"
kill -INT "$lab_pid"
rc=0
wait "$lab_pid" || rc=$?
lab_pid=""
[ "$rc" = 0 ] || die "walab lab exited with $rc after SIGINT: $(tail -n 20 "$tmp/lab.log")"
grep -q "walab lab stopped" "$tmp/lab.log" || die "the lab did not say 'walab lab stopped'"
say "   ok: the lab stopped cleanly (exit 0) with the page open"
say "PASS (screenshot: $screenshot)"
