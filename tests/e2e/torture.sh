#!/usr/bin/env bash
# Crash torture over real processes, with target/release/walab.
#
#   tests/e2e/torture.sh ci          the rows CI must pass, 20 kill cycles each
#   tests/e2e/torture.sh table 200   every backend and policy, 200 cycles per row, as the
#                                    markdown table docs/proof.md shows
#   tests/e2e/torture.sh etcd 200    only the etcd rows (needs etcd on PATH)
#
# The ci and table modes include etcd's rows (server, leader, follower and all-member
# kills against a three-member cluster the torture starts) when etcd is on PATH.
#
# A row whose backend promises no loss fails the script if it loses or invents a write;
# the other rows only report what they lost.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
walab=${WALAB:-target/release/walab}
[ -x "$walab" ] || { echo "build first: cargo build --release" >&2; exit 2; }

mode=${1:-ci}
cycles=${2:-20}
case "$mode" in
  ci)
    rows=(
      "--backend wal --fsync always --crash kill"
      "--backend wal --fsync always --crash power-loss"
      "--backend sled --sled-flush always --crash kill"
      "--backend wal --fsync never --crash power-loss"
      "--backend redb --crash kill"
    )
    if command -v etcd > /dev/null || [ -n "${ETCD_BIN:-}" ]; then
      rows+=(
        "--backend etcd --crash kill"
        "--backend etcd --crash leader"
        "--backend etcd --crash follower"
        "--backend etcd --crash all-members"
      )
    elif [ -n "${WALAB_REQUIRE_ETCD:-}" ]; then
      echo "WALAB_REQUIRE_ETCD is set but there is no etcd on PATH (apt-get install etcd-server)" >&2
      exit 2
    else
      echo "no etcd on PATH: the etcd rows are skipped (apt-get install etcd-server)" >&2
    fi
    ;;
  etcd)
    rows=(
      "--backend etcd --crash kill"
      "--backend etcd --crash leader"
      "--backend etcd --crash follower"
      "--backend etcd --crash all-members"
    )
    ;;
  table)
    rows=(
      "--backend wal --fsync always --crash kill"
      "--backend wal --fsync always --crash power-loss"
      "--backend wal --fsync interval:100 --crash kill"
      "--backend wal --fsync interval:100 --crash power-loss"
      "--backend wal --fsync never --crash kill"
      "--backend wal --fsync never --crash power-loss"
      "--backend memory --crash kill"
      "--backend sled --sled-flush background --crash kill"
      "--backend sled --sled-flush always --crash kill"
      "--backend redb --crash kill"
      "--backend redb --setting REDB_DURABILITY=eventual --crash kill"
      "--backend etcd --crash kill"
      "--backend etcd --crash leader"
      "--backend etcd --crash follower"
      "--backend etcd --crash all-members"
    )
    ;;
  *) echo "usage: $0 ci|table|etcd [cycles]" >&2; exit 2 ;;
esac

summary=()
status=0
for row in "${rows[@]}"; do
  log=$(mktemp)
  # The row's own exit status decides; grep (which finds nothing in a clean row) does not.
  # PIPESTATUS is read right after the pipeline: any command in between replaces it.
  set +e
  # shellcheck disable=SC2086
  "$walab" torture --cycles "$cycles" $row | tee "$log" | grep -E '^(torture:|cycle .*(lost +[1-9]|phantom [1-9]))'
  rc=${PIPESTATUS[0]}
  set -e
  summary+=("$(tail -n 1 "$log")")
  header=$(tail -n 3 "$log" | head -n 2)
  rm -f "$log"
  if [ "$rc" != 0 ]; then
    echo "FAIL: walab torture $row exited $rc" >&2
    status=1
  fi
done
echo
echo "$header"
printf '%s\n' "${summary[@]}"
exit "$status"
