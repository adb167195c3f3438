#!/usr/bin/env bash
# tests/e2e/runbook.sh: the end-to-end check of RUNBOOK.md.
#
# It starts a real `walab lab` (target/release/walab, so build with `cargo build --release`
# first) on the runbook's ports 8001-8003 with its data in a temporary directory, extracts
# every ```bash {"name": ...} block from RUNBOOK.md and runs them in order with
# `bash -eo pipefail`, printing `== <name>` before each. After each block it asserts what the
# runbook says the reader will see (a `case` on the block's name, below). Then it measures
# restart-to-healthy after crashes of each store, starts a second lab with FSYNC=never and
# SLED_FLUSH=always to check the runbook's claims about those, then (when etcd is on PATH,
# and always under WALAB_REQUIRE_ETCD=1) a third with --etcd: Part 3's blocks again with
# 8001 turned into 8004, then Part 9, each checked. Then it prints PASS.
#
# How blocks run:
# - In a scratch directory that plays the repository root: the lab's data is ./data there,
#   so `rm -rf data` and `inspect data/wal` act on the test's lab, never on the repository.
# - `cargo run --release -- ARGS` in a block runs the release binary the lab runs (a `cargo`
#   shim on PATH), so a block never starts a build.
# - Blocks that start the lab (the reader does that in a second terminal) are not run; the
#   script starts the lab itself where `start-lab` stands. Before `cleanup` it stops the lab
#   with SIGINT, as the reader's Ctrl-C would.
# - Environment variables that change what the lab promises (FSYNC, SLED_FLUSH, ...) are
#   unset, so the first lab runs with the defaults the runbook describes.
#
# Environment: WALAB (default target/release/walab), E2E_KEEP=1 keeps the temp dir.

set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
runbook="$repo/RUNBOOK.md"
walab="${WALAB:-$repo/target/release/walab}"
PORTS=(8001 8002 8003)
HEALTH_PATIENCE_S=30
RESTART_PATIENCE_MS=10000

# Blocks that start a lab: the reader runs them in a second terminal; this script starts
# its own lab where `start-lab` stands, and a second one for the other two at the end.
SKIP=(start-lab start-lab-fsync-never start-lab-sled-flush-always start-lab-etcd)
# Part 10's experiments start servers of their own and take 20 s each: `.ci/run experiments`
# runs the same commands (with --check), so they are not run here.
EXPERIMENT_BLOCKS=(experiment-fsync experiment-group-commit experiment-checkpoint
  experiment-recovery experiment-replication experiment-crash)
# Part 9's blocks need the lab started with --etcd: they run at the end, in the third lab.
ETCD_BLOCKS=(etcd-cluster etcd-write-crash-read etcd-kill-leader etcd-kill-all etcd-checkpoint)
# Blocks this script needs to find (it checks what they claim); a rename must not
# silently drop a check.
REQUIRED=(check-tools clean-previous start-lab wait-healthy verify-services
  write-nowal verify-nowal-data crash-nowal check-nowal-after-crash
  write-wal verify-wal-data view-wal crash-wal check-wal-after-crash check-recovery-stats
  power-loss-crash check-after-power-loss start-lab-fsync-never power-loss-unsynced
  write-sled verify-sled-data crash-sled check-sled-after-crash sled-crash-within-flush
  start-lab-sled-flush-always
  fresh-data examine-wal inspect-wal
  write-bulk check-checkpoint-stats manual-checkpoint wal-after-checkpoint fast-recovery
  latency-comparison load-test
  side-by-side-write check-all crash-all compare-recovery
  show-urls show-metrics start-lab-etcd "${ETCD_BLOCKS[@]}" experiment-list
  "${EXPERIMENT_BLOCKS[@]}" cleanup)

# ---------------------------------------------------------------------------------------
# helpers

say() { printf '%s\n' "$*"; }
checks=0
ok() {
  checks=$((checks + 1))
  say "   ok: $*"
}
die() {
  say "FAIL: $*" >&2
  exit 1
}

now_ms() {
  local t=${EPOCHREALTIME//[.,]/}
  say $((t / 1000))
}

port_busy() { (exec 3<> "/dev/tcp/127.0.0.1/$1") 2> /dev/null; }

# GET a path from a port; fails on connection errors and HTTP errors.
get() { curl -sf --max-time 10 "http://127.0.0.1:$1$2"; }

# assert PORT PATH JQ-FILTER DESCRIPTION: the filter must yield true.
assert() {
  local port=$1 path=$2 filter=$3 what=$4 body
  body=$(get "$port" "$path") || die "$what: GET :$port$path failed"
  jq -e "$filter" > /dev/null <<< "$body" || die "$what: :$port$path is $(jq -c . <<< "$body" | cut -c1-600)"
  ok "$what"
}

# assert_status PORT PATH CODE DESCRIPTION
assert_status() {
  local code
  code=$(curl -s -o /dev/null -w '%{http_code}' --max-time 10 "http://127.0.0.1:$1$2") || true
  [ "$code" = "$3" ] || die "$4: GET :$1$2 answered $code, expected $3"
  ok "$4"
}

field() { get "$1" /admin/stats | jq -r "$2"; }
pid_of() { get "$1" /admin/stats | jq -r .pid; }

# The output of a block, as printed.
output_of() { cat "$outdir/$1.txt"; }
# The JSON a block printed after its echo lines (from the first line that starts with '{').
json_of() { sed -n '/^{/,$p' "$outdir/$1.txt"; }
# The last line of a block's output (the count the sled and power-loss blocks print).
last_line_of() { tail -n 1 "$outdir/$1.txt"; }

# wait_restart PORT OLD_PID: poll /health every 10 ms until a process other than OLD_PID
# answers 200 (the crashed one still answers for ~50 ms after its crash reply). Prints the
# milliseconds it took.
wait_restart() {
  local port=$1 old=$2 start code pid
  start=$(now_ms)
  while :; do
    code=$(curl -s -o /dev/null -w '%{http_code}' --max-time 1 "http://127.0.0.1:$port/health") || true
    if [ "$code" = 200 ]; then
      pid=$(curl -s --max-time 1 "http://127.0.0.1:$port/admin/stats" | jq -r '.pid // empty' 2> /dev/null) || true
      if [ -n "$pid" ] && [ "$pid" != "$old" ]; then
        say $(($(now_ms) - start))
        return 0
      fi
    fi
    if [ $(($(now_ms) - start)) -gt "$RESTART_PATIENCE_MS" ]; then
      return 1
    fi
    sleep 0.01
  done
}

# The lab logs "<backend> on :<port> healthy again N ms after restart #k"; the last such N.
lab_says_ms() {
  grep -o "on :$1 healthy again [0-9]* ms" "$lablog" | tail -n 1 | grep -o '[0-9]* ms' || say "?"
}

restart_report=()
# after_crash PORT OLD_PID LABEL: the crash reply has just arrived; wait for the new process.
after_crash() {
  local ms
  ms=$(wait_restart "$1" "$2") || die "$3: port $1 did not come back within $RESTART_PATIENCE_MS ms"
  ok "$3: a new process answers /health 200, $ms ms after the crash reply (lab: $(lab_says_ms "$1") after respawn)"
  restart_report+=("$3: ${ms} ms")
}

lab_pid=""
LAB_ARGS=()
start_lab() {
  for port in "${PORTS[@]}"; do
    port_busy "$port" && die "port $port is already in use: stop what listens there (a lab still running?) and retry"
  done
  say "   starting: ${*:+$* }walab lab --data-dir $data ${LAB_ARGS[*]}"
  env "$@" "$walab" lab --data-dir "$data" "${LAB_ARGS[@]}" > "$lablog" 2>&1 &
  lab_pid=$!
  local deadline=$(($(now_ms) + HEALTH_PATIENCE_S * 1000))
  for port in "${PORTS[@]}"; do
    until [ "$(curl -s -o /dev/null -w '%{http_code}' --max-time 1 "http://127.0.0.1:$port/health")" = 200 ]; do
      kill -0 "$lab_pid" 2> /dev/null || die "walab lab exited during start-up: $(cat "$lablog")"
      [ "$(now_ms)" -lt "$deadline" ] || die "port $port not healthy within $HEALTH_PATIENCE_S s"
      sleep 0.05
    done
  done
  ok "the lab is up: /health answers 200 on ${PORTS[*]}"
}

# stop_lab: SIGINT, as Ctrl-C in the reader's terminal; the lab must exit 0 and free the ports.
stop_lab() {
  [ -n "$lab_pid" ] || return 0
  kill -INT "$lab_pid"
  local i rc=0
  for i in $(seq 1 100); do
    kill -0 "$lab_pid" 2> /dev/null || break
    sleep 0.1
  done
  kill -0 "$lab_pid" 2> /dev/null && die "walab lab still running 10 s after SIGINT"
  wait "$lab_pid" || rc=$?
  lab_pid=""
  [ "$rc" = 0 ] || die "walab lab exited with $rc after SIGINT"
  grep -q "walab lab stopped" "$lablog" || die "the lab did not say 'walab lab stopped'"
  for port in "${PORTS[@]}"; do
    port_busy "$port" && die "port $port still answers after the lab stopped"
  done
  ok "Ctrl-C (SIGINT) stopped the lab: exit 0, 'walab lab stopped', ports free"
}

cleanup_on_exit() {
  local rc=$?
  if [ -n "$lab_pid" ] && kill -0 "$lab_pid" 2> /dev/null; then
    kill -TERM "$lab_pid" 2> /dev/null || true
    for _ in $(seq 1 50); do
      kill -0 "$lab_pid" 2> /dev/null || break
      sleep 0.1
    done
    kill -KILL "$lab_pid" 2> /dev/null || true
    wait "$lab_pid" 2> /dev/null || true
  fi
  if [ "$rc" != 0 ] && [ -f "${lablog:-}" ]; then
    say "--- last lines of the lab's log ($lablog) ---" >&2
    tail -n 40 "$lablog" >&2
  fi
  if [ "${E2E_KEEP:-}" = 1 ]; then
    say "kept $tmp"
  else
    rm -rf "$tmp"
  fi
}

# ---------------------------------------------------------------------------------------
# set-up

for tool in curl jq python3; do
  command -v "$tool" > /dev/null || die "$tool is not installed (the runbook needs curl, jq, python3)"
done
[ -x "$walab" ] || die "$walab not found: build it first with cargo build --release"
[ -f "$runbook" ] || die "$runbook not found"
for port in "${PORTS[@]}"; do
  port_busy "$port" && die "port $port is already in use; the runbook's commands need 8001-8003 free (a lab still running?)"
done

unset KV_BACKEND WAL_ENABLED HOST PORT DATA_DIR FSYNC GROUP_COMMIT CHECKPOINT_THRESHOLD \
  SEGMENT_BYTES RECOVERY_MODE SLED_FLUSH MAX_VALUE_BYTES ADMIN_TOKEN

tmp=$(mktemp -d "${TMPDIR:-/tmp}/walab-e2e.XXXXXX")
trap cleanup_on_exit EXIT
work="$tmp"               # plays the repository root for the blocks
data="$tmp/data"          # the lab's --data-dir, ./data for the blocks
meta="$tmp/.e2e"
blockdir="$meta/blocks"
outdir="$meta/out"
lablog="$meta/lab.log"
mkdir -p "$blockdir" "$outdir" "$meta/bin"
ln -s "$repo/k6" "$work/k6" # Part 6 runs k6/basic.js from the repository root

cat > "$meta/bin/cargo" << EOF
#!/usr/bin/env bash
# e2e shim: RUNBOOK.md's \`cargo run --release -- ARGS\` runs the binary already built.
[ "\${1:-}" = run ] || { echo "e2e cargo shim: unexpected: cargo \$*" >&2; exit 1; }
while [ \$# -gt 0 ] && [ "\$1" != -- ]; do shift; done
[ \$# -gt 0 ] || { echo "e2e cargo shim: expected cargo run ... -- ARGS" >&2; exit 1; }
shift
exec "$walab" "\$@"
EOF
chmod +x "$meta/bin/cargo"

# Extract the named bash blocks, in order, one file each; print their names.
python3 - "$runbook" "$blockdir" > "$meta/names" << 'EOF'
import json, pathlib, re, sys
src, dest = sys.argv[1], pathlib.Path(sys.argv[2])
current, lines, seen, n = None, [], set(), 0
for number, line in enumerate(open(src, encoding="utf-8").read().splitlines(), 1):
    if current is None:
        m = re.match(r'^```bash\s+(\{.*\})\s*$', line)
        if m:
            current, lines = json.loads(m.group(1))["name"], []
            if current in seen:
                sys.exit(f"RUNBOOK.md:{number}: a second block named {current}")
            seen.add(current)
    elif line.strip() == "```":
        n += 1
        (dest / f"{current}.sh").write_text("\n".join(lines) + "\n", encoding="utf-8")
        print(current)
        current = None
    else:
        lines.append(line)
if current is not None:
    sys.exit(f"RUNBOOK.md: block {current} is not closed")
EOF
mapfile -t names < "$meta/names"
[ "${#names[@]}" -gt 0 ] || die "no named bash blocks found in RUNBOOK.md"
for need in "${REQUIRED[@]}"; do
  grep -qx -- "$need" "$meta/names" || die "RUNBOOK.md has no block named $need (this script checks it)"
done
say "RUNBOOK.md: ${#names[@]} named blocks; lab data in $data"

# run_block NAME: run it in the scratch directory with the cargo shim first on PATH.
run_block() {
  say ""
  say "== $1"
  if ! (cd "$work" && PATH="$meta/bin:$PATH" bash -eo pipefail "$blockdir/$1.sh") 2>&1 | tee "$outdir/$1.txt"; then
    die "block $1 failed"
  fi
}

# ---------------------------------------------------------------------------------------
# what each block claims

declare -A before=()

before_block() {
  case $1 in
    crash-nowal) before[mem_pid]=$(pid_of 8002) ;;
    crash-wal | power-loss-crash)
      before[wal_pid]=$(pid_of 8001)
      before[wal_items]=$(field 8001 .item_count)
      ;;
    crash-sled) before[sled_pid]=$(pid_of 8003) ;;
    fast-recovery)
      before[wal_pid]=$(pid_of 8001)
      before[wal_items]=$(field 8001 .item_count)
      ;;
    crash-all)
      before[wal_pid]=$(pid_of 8001)
      before[mem_pid]=$(pid_of 8002)
      before[sled_pid]=$(pid_of 8003)
      before[wal_items]=$(field 8001 .item_count)
      ;;
    cleanup)
      measure_restarts
      stop_lab
      ;;
  esac
}

users_filter='.count == 10 and ([range(1; 11) as $i | .data["user-\($i)"] == {name: "User \($i)", balance: ($i * 100)}] | all)'

after_block() {
  local n
  case $1 in
    check-tools) grep -q "All tools found" "$outdir/$1.txt" || die "check-tools did not find every tool" ;;
    verify-services)
      assert 8001 /health '.status == "ok" and .backend == "wal" and .wal_enabled == true' "8001 is the WAL store and healthy"
      assert 8002 /health '.status == "ok" and .backend == "memory" and .wal_enabled == false' "8002 is the memory store and healthy"
      assert 8003 /health '.status == "ok" and .backend == "sled" and .wal_enabled == false' "8003 is the sled store and healthy"
      ;;
    write-nowal | verify-nowal-data) assert 8002 /kv "$users_filter" "the memory store holds the 10 users" ;;
    crash-nowal) after_crash 8002 "${before[mem_pid]}" "memory store, Part 2 (10 keys)" ;;
    check-nowal-after-crash)
      assert 8002 /kv '.count == 0 and .data == {}' "ALL DATA LOST: the memory store is empty after its crash"
      assert 8002 /admin/stats '.item_count == 0 and .restarts >= 1' "memory stats: item_count 0, restarted"
      ;;
    write-wal | verify-wal-data) assert 8001 /kv "$users_filter" "the WAL store holds the 10 users" ;;
    view-wal)
      assert 8001 /admin/wal '.wal_enabled == true and (.entries | length) == 10 and all(.entries[]; .operation == "SET")' "the WAL lists 10 SET records"
      assert 8001 /admin/wal '[.entries[].key] == [range(1; 11) | "user-\(.)"]' "... for user-1..user-10, in order"
      ;;
    crash-wal) after_crash 8001 "${before[wal_pid]}" "WAL store, Part 3 (10 keys)" ;;
    check-wal-after-crash) assert 8001 /kv "$users_filter" "ALL DATA RECOVERED: the WAL store has the 10 users after its crash" ;;
    check-recovery-stats) assert 8001 /admin/stats '.recovered_entries == 10 and .item_count == 10' "recovered_entries is 10" ;;
    power-loss-crash)
      jq -e '.status == "crashing" and .mode == "power-loss" and .unsynced_bytes_dropped == 0' <<< "$(json_of "$1")" > /dev/null ||
        die "the power-loss reply under FSYNC=always: $(output_of "$1")"
      ok "power-loss crash under FSYNC=always dropped 0 unsynced bytes"
      after_crash 8001 "${before[wal_pid]}" "WAL store after a power loss (10 keys)"
      ;;
    check-after-power-loss)
      assert 8001 /admin/stats ".item_count == ${before[wal_items]} and .fsync_policy == \"always\"" "nothing acknowledged was lost to the power loss (FSYNC=always)"
      assert 8001 /kv "$users_filter" "... the 10 users are all there"
      ;;
    power-loss-unsynced)
      n=$(last_line_of "$1")
      [ "$n" = 5 ] || die "under FSYNC=always all 5 keys should survive a power loss; $n did"
      ok "FSYNC=always: 5 of 5 keys written just before a power loss came back"
      ;;
    write-sled | verify-sled-data) assert 8003 /kv "$users_filter" "the sled store holds the 10 users" ;;
    crash-sled) after_crash 8003 "${before[sled_pid]}" "sled store, Part 3b (10 keys)" ;;
    check-sled-after-crash)
      assert 8003 /kv "$users_filter" "sled kept the 10 users it had flushed before the crash"
      assert 8003 /admin/stats '.sled_flush == "background" and .restarts >= 1' "... with the default background flush"
      ;;
    sled-crash-within-flush)
      n=$(last_line_of "$1")
      [[ "$n" =~ ^[0-9]+$ ]] && [ "$n" -le 10 ] || die "sled-crash-within-flush printed '$n', not a count"
      ok "sled, SLED_FLUSH=background, crash within 500 ms of the writes: $n of 10 came back (the runbook: usually none)"
      assert 8003 '/kv?prefix=user-' "$users_filter" "the flushed users are still on sled"
      ;;
    examine-wal)
      assert 8001 /admin/wal '[.entries[-4:][] | [.operation, .key]] == [["SET","config"],["SET","settings"],["SET","config"],["DELETE","settings"]]' "the WAL ends SET config, SET settings, SET config, DELETE settings"
      assert 8001 /admin/wal '[.entries[].sequence] as $s | ($s | length) >= 4 and ([range(1; $s | length) as $i | $s[$i] > $s[$i - 1]] | all)' "sequence numbers strictly increase"
      assert 8001 /admin/wal '.entries[-1].value == null and .entries[-2].value == {version: "2.0", debug: true}' "DELETE has a null value; the update carries the new one"
      assert 8001 /admin/wal '.entries[-5].operation == "CLEAR" and .entries[-4].sequence > 10' "the clear is a CLEAR record; sequence numbers carried on past it"
      ;;
    inspect-wal)
      grep -Eq 'SET config' "$outdir/$1.txt" && grep -Eq 'DELETE settings' "$outdir/$1.txt" || die "walab inspect does not show the records"
      grep -q ' 0 damaged places' "$outdir/$1.txt" || die "walab inspect found damage"
      ok "walab inspect data/wal --records shows the records and no damage"
      ;;
    check-checkpoint-stats) assert 8001 /admin/stats '.entries_since_checkpoint < 100 and .checkpoints >= 1 and .item_count == 151' "entries_since_checkpoint < 100 after 150 writes (auto-checkpoint ran)" ;;
    manual-checkpoint)
      jq -e '.status == "checkpoint created"' <<< "$(json_of "$1")" > /dev/null || die "manual checkpoint: $(output_of "$1")"
      ok "checkpoint created"
      ;;
    wal-after-checkpoint)
      assert 8001 /admin/wal '.entries == []' "the WAL is empty after the manual checkpoint"
      assert 8001 /admin/stats '.entries_since_checkpoint == 0' "entries_since_checkpoint is 0"
      ;;
    fast-recovery)
      [ "$(pid_of 8001)" != "${before[wal_pid]}" ] || die "fast-recovery: the WAL store was not restarted"
      assert 8001 /admin/stats ".recovered_entries <= 2 and .item_count == ${before[wal_items]}" "fast recovery from the checkpoint: recovered_entries $(field 8001 .recovered_entries) (<= 2), every item back"
      assert 8001 /admin/stats '.last_recovery.snapshot != null' "... it loaded the snapshot"
      assert 8001 /kv/config '.value == {version: "2.0", debug: true}' "config has its updated value"
      assert_status 8001 /kv/settings 404 "settings stays deleted"
      ;;
    latency-comparison)
      n=$(grep -c 'Write [1-5]: [0-9.]*ms' "$outdir/$1.txt") || true
      [ "$n" = 15 ] || die "latency-comparison printed $n timings, expected 15"
      ok "5 timed writes to each of the three stores"
      ;;
    load-test)
      grep -q 'WAL group commit' "$outdir/$1.txt" || die "the load test did not finish"
      ok "the load test wrote to all three stores without a failure"
      ;;
    side-by-side-write)
      for port in 8001 8002 8003; do
        assert "$port" '/kv?prefix=demo-' '.count == 20 and ([range(1; 21) as $i | .data["demo-\($i)"] == {data: "important-\($i)"}] | all)' ":$port holds demo-1..demo-20"
      done
      ;;
    crash-all)
      for port in 8001 8002 8003; do
        case $port in 8001) old=${before[wal_pid]} ;; 8002) old=${before[mem_pid]} ;; 8003) old=${before[sled_pid]} ;; esac
        wait_restart "$port" "$old" > /dev/null || die "port $port did not come back after crash-all"
      done
      ok "all three crashed and came back with new processes"
      ;;
    compare-recovery)
      assert 8001 /admin/stats ".item_count == ${before[wal_items]}" "the WAL store has every key after the crash (${before[wal_items]})"
      assert 8001 '/kv?prefix=demo-' '.count == 20 and ([range(1; 21) as $i | .data["demo-\($i)"] == {data: "important-\($i)"}] | all)' "... including demo-1..demo-20"
      assert 8002 /admin/stats '.item_count == 0' "the memory store lost everything"
      assert_status 8002 /kv/demo-1 404 "... demo-1 is gone from memory"
      assert 8003 '/kv?prefix=user-' "$users_filter" "sled still has the users it flushed long ago"
      n=$(get 8003 '/kv?prefix=demo-' | jq .count)
      ok "sled kept $n of the 20 demo keys written just before the crash (runbook: what its last flush covered)"
      ;;
    show-urls) grep -q 'localhost:3001' "$outdir/$1.txt" && grep -q 'localhost:9090' "$outdir/$1.txt" || die "show-urls lost the Compose stack's URLs" ;;
    show-metrics)
      grep -q '^# TYPE [a-z_]* \(counter\|gauge\|histogram\)$' "$outdir/$1.txt" || die "/metrics did not look like Prometheus text"
      [ "$(grep -c '^walab_process_restarts' "$outdir/$1.txt")" = 3 ] || die "walab_process_restarts missing on some port"
      grep -q '^walab_wal_appends_total{backend="wal"}' "$outdir/$1.txt" || die "the WAL's metrics are missing on 8001"
      ok "/metrics answers Prometheus text on all three ports"
      ;;
    cleanup)
      [ ! -e "$data" ] || die "cleanup left $data"
      ok "the data directory is gone"
      ;;
  esac
}

# measure_restarts: crash each store three times and time crash reply -> new process healthy.
# Each crash waits until the process has been up for over a second: the lab treats a child
# that dies within 1 s of starting as a crash loop and delays its next restart (250 ms,
# doubling), which would measure the back-off instead of the restart.
measure_restarts() {
  say ""
  say "== restart-to-healthy: crash reply -> /health 200 from the new process (polled every 10 ms)"
  local port label pid ms i items
  for port in 8001 8002 8003; do
    case $port in 8001) label=wal ;; 8002) label=memory ;; 8003) label=sled ;; esac
    items=$(field "$port" .item_count)
    local times=()
    for i in 1 2 3; do
      until field "$port" '.uptime_seconds > 1.2' | grep -qx true; do sleep 0.1; done
      pid=$(pid_of "$port")
      curl -sf -X POST --max-time 10 "http://127.0.0.1:$port/admin/crash" > /dev/null || die "crash :$port failed"
      ms=$(wait_restart "$port" "$pid") || die "port $port did not come back within $RESTART_PATIENCE_MS ms"
      times+=("$ms")
    done
    ok "$label ($items keys): ${times[*]} ms (lab, respawn -> healthy: $(lab_says_ms "$port"))"
    restart_report+=("$label, $items keys, 3 crashes: ${times[*]} ms")
  done
}

# ---------------------------------------------------------------------------------------
# the runbook, in order

started=$(now_ms)
ran=0
for name in "${names[@]}"; do
  if [[ " ${EXPERIMENT_BLOCKS[*]} " == *" $name "* ]]; then
    say ""
    say "== $name (not run here: .ci/run experiments runs it, with --check)"
    continue
  fi
  if [[ " ${ETCD_BLOCKS[*]} " == *" $name "* ]]; then
    say ""
    say "== $name (not run now: needs the lab with --etcd; run at the end)"
    continue
  fi
  if [[ " ${SKIP[*]} " == *" $name "* ]]; then
    say ""
    if [ "$name" = start-lab ]; then
      say "== $name (not run: the script starts the lab in the background instead)"
      start_lab
    else
      say "== $name (not run: restarts the lab with other settings; checked at the end)"
    fi
    continue
  fi
  [ -n "$lab_pid" ] || [ "$name" = check-tools ] || [ "$name" = clean-previous ] || [ "$name" = cleanup ] ||
    die "block $name comes before start-lab"
  before_block "$name"
  run_block "$name"
  ran=$((ran + 1))
  after_block "$name"
done

# ---------------------------------------------------------------------------------------
# the two claims that need the lab restarted with other settings

say ""
say "== a second lab: FSYNC=never SLED_FLUSH=always (start-lab-fsync-never, start-lab-sled-flush-always)"
start_lab FSYNC=never SLED_FLUSH=always
assert 8001 /admin/stats '.fsync_policy == "never" and .durability.survives_power_loss == false' "the WAL runs with FSYNC=never"
assert 8003 /admin/stats '.sled_flush == "always"' "sled runs with SLED_FLUSH=always"
run_block power-loss-unsynced
n=$(last_line_of power-loss-unsynced)
[ "$n" = 0 ] || die "under FSYNC=never a power loss should lose the 5 unsynced keys; $n came back"
grep -q '"unsynced_bytes_dropped":[1-9]' "$outdir/power-loss-unsynced.txt" || die "the power-loss reply reports no dropped bytes"
ok "FSYNC=never: 0 of 5 acknowledged keys survived the power loss"
run_block sled-crash-within-flush
n=$(last_line_of sled-crash-within-flush)
[ "$n" = 10 ] || die "with SLED_FLUSH=always all 10 keys should survive; $n did"
ok "SLED_FLUSH=always: 10 of 10 keys written just before the crash came back"
stop_lab

# ---------------------------------------------------------------------------------------
# the third lab: --etcd (Part 9, and Part 3 again on 8004)

# run_block_on PORT NAME: a Part 3 block with its port 8001 turned into PORT.
run_block_on() {
  sed "s/localhost:8001/localhost:$1/g" "$blockdir/$2.sh" > "$blockdir/$2-on-$1.sh"
  run_block "$2-on-$1"
}

etcd_ran=0
if command -v etcd > /dev/null || [ -n "${ETCD_BIN:-}" ] || [ -n "${WALAB_REQUIRE_ETCD:-}" ]; then
  say ""
  say "== a third lab: walab lab --etcd (start-lab-etcd)"
  rm -rf "$data"
  PORTS=(8001 8002 8003 8004)
  LAB_ARGS=(--etcd)
  start_lab
  assert 8004 /health '.status == "ok" and .backend == "etcd" and .wal_enabled == true' "8004 is the etcd store and healthy"

  say ""
  say "-- Part 3 on 8004"
  run_block_on 8004 write-wal
  run_block_on 8004 verify-wal-data
  assert 8004 /kv "$users_filter" "the etcd store holds the 10 users"
  run_block_on 8004 view-wal
  assert 8004 /admin/wal '(.entries | length) == 10 and all(.entries[]; .operation == "SET") and [.entries[].key] == [range(1; 11) | "user-\(.)"]' "etcd's history lists 10 SETs of user-1..user-10, in order"
  assert 8004 /admin/wal '[.entries[].sequence] as $s | [range(1; $s | length) as $i | $s[$i] > $s[$i - 1]] | all' "... with revisions that strictly increase"
  pid=$(pid_of 8004)
  run_block_on 8004 crash-wal
  after_crash 8004 "$pid" "etcd store, Part 3 (10 keys)"
  run_block_on 8004 check-wal-after-crash
  assert 8004 /kv "$users_filter" "ALL DATA KEPT: the etcd store has the 10 users after its server's crash"
  run_block_on 8004 fresh-data
  assert 8004 /admin/wal '[.entries[-4:][] | [.operation, .key]] == [["SET","config"],["SET","settings"],["SET","config"],["DELETE","settings"]]' "etcd's history ends SET config, SET settings, SET config, DELETE settings"
  run_block_on 8004 manual-checkpoint
  jq -e '.status == "checkpoint created" and (.sequence | type) == "number"' <<< "$(json_of manual-checkpoint-on-8004)" > /dev/null ||
    die "checkpoint on 8004: $(output_of manual-checkpoint-on-8004)"
  ok "checkpoint on 8004: etcd compacted its history"

  say ""
  say "-- Part 9"
  run_block etcd-cluster
  assert 8004 /admin/stats '(.etcd.members | length) == 3 and all(.etcd.members[]; .healthy) and .etcd.leader != null and ([.etcd.members[] | select(.is_leader)] | length) == 1' "three healthy members, one leader"
  term=$(field 8004 .etcd.raft_term)
  pid=$(pid_of 8004)
  run_block etcd-write-crash-read
  [ "$(last_line_of etcd-write-crash-read)" = 10 ] || die "etcd-write-crash-read: $(output_of etcd-write-crash-read)"
  [ "$(pid_of 8004)" != "$pid" ] || die "etcd-write-crash-read: the server was not restarted"
  ok "the server's crash lost none of the 10 users"
  run_block etcd-kill-leader
  grep -q '"killed_members":\["etcd-[123]"\]' "$outdir/etcd-kill-leader.txt" || die "etcd-kill-leader: no member was killed"
  for port in 8001 8004; do
    acked=$(awk -v p="$port" '$1 == p && $3 == 200 { print $2 }' "$work/replication.log")
    n=$(wc -w <<< "$acked")
    [ "$n" -ge 40 ] || die "etcd-kill-leader: only $n of 80 writes to :$port were acknowledged"
    keys=$(get "$port" '/kv?prefix=rep-' | jq -r '.data | keys[]')
    for i in $acked; do
      grep -qx "rep-$i" <<< "$keys" || die "etcd-kill-leader: :$port acknowledged rep-$i and lost it"
    done
    ok ":$port kept all $n writes it acknowledged around the kill ($(grep "^$port: " "$outdir/etcd-kill-leader.txt"))"
  done
  new_term=$(field 8004 .etcd.raft_term)
  [ "$new_term" -gt "$term" ] || die "the raft term did not go up after the leader's death ($term -> $new_term)"
  ok "a new leader: raft term $term -> $new_term"
  rep=$(get 8004 '/kv?prefix=rep-' | jq .count)
  run_block etcd-kill-all
  grep -q '"killed_members":\["etcd-1","etcd-2","etcd-3"\]' "$outdir/etcd-kill-all.txt" || die "etcd-kill-all: $(output_of etcd-kill-all)"
  [ "$(last_line_of etcd-kill-all)" -ge "$rep" ] || die "etcd-kill-all: $rep rep- keys before, $(last_line_of etcd-kill-all) after"
  ok "every member killed and restarted: all $rep rep- keys are back"
  run_block etcd-checkpoint
  grep -q '"status":"checkpoint created"' "$outdir/etcd-checkpoint.txt" || die "etcd-checkpoint: $(output_of etcd-checkpoint)"
  jq -e '.total <= 2' <<< "$(last_line_of etcd-checkpoint)" > /dev/null || die "the history is not compacted: $(last_line_of etcd-checkpoint)"
  ok "after the compaction etcd's history of the lab's keys holds at most the last writes"
  stop_lab
  etcd_ran=$((10 + ${#ETCD_BLOCKS[@]}))
else
  say ""
  say "== no etcd on PATH: Part 9 (walab lab --etcd) not run (apt-get install etcd-server)"
fi

took=$(($(now_ms) - started))
say ""
say "restart-to-healthy, from the crash reply (includes the server's deliberate ~50 ms between reply and SIGKILL; polling resolution ~10-20 ms):"
for line in "${restart_report[@]}"; do
  say "  $line"
done
say ""
say "PASS: RUNBOOK.md: $ran blocks run (+2 under FSYNC=never SLED_FLUSH=always, +$etcd_ran under --etcd), $checks checks, $((took / 1000)) s"
