#!/usr/bin/env bash
# tests/e2e/schemathesis.sh: fuzz a real `walab serve` from its own OpenAPI document.
#
# For each backend (memory; wal with ADMIN_TOKEN set, and schemathesis sending the token;
# sled) it starts `walab serve` on a free port with its data in a temporary directory, and
# runs schemathesis against GET /openapi.json: every documented operation except
# POST /admin/crash (it kills the server), in the coverage and fuzzing phases, with valid
# and invalid data. Checks: no response is a 5xx (not_a_server_error), and every response's
# status, content type and body are the documented ones. Any finding fails the script;
# after each run the server must still be healthy and must not have logged a panic.
#
# Needs schemathesis (CI pins it: pip install 'schemathesis==4.32.5'), curl and python3.
# Environment: WALAB (default $CARGO_TARGET_DIR/release/walab, else target/release/walab),
# MAX_EXAMPLES (default 50 per operation), SEED (default: random, printed by schemathesis),
# E2E_KEEP=1 keeps the temp dir.

set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
walab="${WALAB:-${CARGO_TARGET_DIR:-$repo/target}/release/walab}"
max_examples="${MAX_EXAMPLES:-50}"
token="schemathesis-token"

say() { printf '%s\n' "$*"; }
die() {
  say "FAIL: $*" >&2
  exit 1
}

[ -x "$walab" ] || die "no walab binary at $walab (cargo build --release, or set WALAB)"
command -v curl > /dev/null || die "curl is missing"

# The CLI, whether or not pip's script directory is on PATH: python3 -c "$st" ARGS.
st='import sys
from schemathesis.cli import schemathesis
sys.argv[0] = "schemathesis"
sys.exit(schemathesis())'
python3 -c "$st" --version > /dev/null 2>&1 || die "schemathesis is not installed (pip install 'schemathesis==4.32.5')"

tmp=$(mktemp -d "${TMPDIR:-/tmp}/walab-schemathesis.XXXXXX")
server_pid=""
stop_server() {
  if [ -n "$server_pid" ] && kill -0 "$server_pid" 2> /dev/null; then
    kill -TERM "$server_pid" 2> /dev/null || true
    for _ in $(seq 1 100); do
      kill -0 "$server_pid" 2> /dev/null || break
      sleep 0.05
    done
    kill -KILL "$server_pid" 2> /dev/null || true
    wait "$server_pid" 2> /dev/null || true
  fi
  server_pid=""
}
cleanup() {
  stop_server
  if [ "${E2E_KEEP:-}" = 1 ]; then
    say "kept $tmp"
  else
    rm -rf "$tmp"
  fi
}
trap cleanup EXIT

free_port() {
  python3 -c 'import socket
s = socket.socket()
s.bind(("127.0.0.1", 0))
print(s.getsockname()[1])'
}

# fuzz BACKEND [ENV=VALUE...]: start a server, fuzz it, check it survived.
fuzz() {
  local backend=$1 port log started
  shift
  port=$(free_port)
  log="$tmp/$backend.log"
  say "== $backend on 127.0.0.1:$port"
  env KV_BACKEND="$backend" HOST=127.0.0.1 PORT="$port" DATA_DIR="$tmp/$backend" \
    RUST_LOG=warn RUST_BACKTRACE=1 "$@" "$walab" serve > "$log" 2>&1 &
  server_pid=$!
  started=$(date +%s)
  until curl -fsS -o /dev/null "http://127.0.0.1:$port/health"; do
    kill -0 "$server_pid" 2> /dev/null || die "$backend: the server exited: $(cat "$log")"
    [ $(($(date +%s) - started)) -lt 30 ] || die "$backend: not healthy after 30 s"
    sleep 0.05
  done

  local args=(
    run "http://127.0.0.1:$port/openapi.json"
    --checks not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance
    --exclude-path /admin/crash
    --phases examples,coverage,fuzzing
    --max-examples "$max_examples"
    --request-timeout 10
  )
  [ -n "${SEED:-}" ] && args+=(--seed "$SEED")
  [ "$backend" = wal ] && args+=(--header "Authorization: Bearer $token")
  # From the temp dir: schemathesis keeps its example database in ./.schemathesis.
  if ! (cd "$tmp" && timeout 150 python3 -c "$st" "${args[@]}"); then
    say "--- server log ($backend)"
    tail -n 50 "$log"
    die "$backend: schemathesis found a problem (or timed out); see above"
  fi

  kill -0 "$server_pid" 2> /dev/null || die "$backend: the server died during fuzzing: $(tail -n 30 "$log")"
  curl -fsS -o /dev/null "http://127.0.0.1:$port/health" || die "$backend: /health fails after fuzzing"
  if grep -q panicked "$log"; then
    cat "$log"
    die "$backend: the server logged a panic"
  fi
  # With a token set, /admin must still refuse a request without it.
  if [ "$backend" = wal ]; then
    code=$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$port/admin/stats")
    [ "$code" = 401 ] || die "wal: /admin/stats without the token answered $code, not 401"
  fi
  stop_server
  say "   ok: $backend: no 5xx, every response as documented, still healthy"
}

fuzz memory
fuzz wal ADMIN_TOKEN="$token"
fuzz sled
say "PASS"
