#!/usr/bin/env bash
# Election failover: bzzz (defaults: heartbeat 150 ms, timeout 600 ms) and a
# 3-member etcd cluster (defaults: heartbeat 100 ms, election timeout
# 1000 ms) in the same run, 3 members each on 127.0.0.1, TRIALS kill -9 of
# the leader, time until every survivor reports the same new leader.
#
#   bash bench/election/run.sh              # 20 trials each
#   TRIALS=40 SKIP_ANCHOR=1 bash bench/election/run.sh
set -euo pipefail

root=$(cd "$(dirname "$0")/../.." && pwd)
binary=${BZZZ_BINARY:-$root/build/bin/bzzz}
trials=${TRIALS:-20}
[ -x "$binary" ] || { echo "bench: $binary is missing (run make build)" >&2; exit 1; }
if [ -z "${SKIP_ANCHOR:-}" ] && ! command -v etcd >/dev/null; then
  echo "bench: installing etcd (the anchor)" >&2
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq etcd-server >/dev/null
fi
# The packaged etcd service must not run: the benchmark starts its own members.
systemctl stop etcd 2>/dev/null || true

out=$(mktemp)
trap 'rm -f "$out"' EXIT
echo "[bzzz] $trials x kill -9 of the admin, 3 nodes" >&2
python3 "$root/bench/election/failover.py" bzzz --binary "$binary" --trials "$trials" | tee -a "$out"
if [ -z "${SKIP_ANCHOR:-}" ]; then
  echo "[etcd] $trials x kill -9 of the leader, 3 members" >&2
  python3 "$root/bench/election/failover.py" etcd --trials "$trials" | tee -a "$out"
fi
echo
printf '%-6s %7s %10s %8s %8s %8s\n' system trials median_ms p90_ms min_ms max_ms
jq -r '[.system, .trials, .median_ms, .p90_ms, .min_ms, .max_ms] | map(tostring) | join(" ")' "$out" |
  while read -r s n m p lo hi; do printf '%-6s %7s %10s %8s %8s %8s\n' "$s" "$n" "$m" "$p" "$lo" "$hi"; done
