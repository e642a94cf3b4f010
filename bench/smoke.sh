#!/usr/bin/env bash
# Every benchmark in a seconds-long smoke mode, run by the test suite
# (ctest -L bench), so that none rots unnoticed. The figures are not judged
# here (a loaded CI machine says nothing about speed; BENCHMARKS.md records
# full runs); that each benchmark starts its processes, measures and prints
# its figures is. Anchors are skipped (they install other software).
#
#   bash bench/smoke.sh http|p2p|election|tasks
#   (BZZZ_BIN and BZZZ_P2P_BENCH name the binaries; default build/bin/)
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
# A route that blocks an I/O thread aborts the node (base/threads.h).
export BZZZ_ABORT_ON_IO_BLOCKING=1
bin=${BZZZ_BIN:-$root/build/bin/bzzz}
out=$(mktemp)
trap 'rm -f "$out"' EXIT

expect() {  # pattern: the output must contain it
  if ! grep -q -- "$1" "$out"; then
    cat "$out"
    echo "bench smoke: '$1' missing from the output" >&2
    exit 1
  fi
}

case "${1:-}" in
  http)
    BZZZ_BIN=$bin DURATION=1s bash "$root/bench/http/run.sh" >"$out"
    expect "bzzz GET /health (access log off)"
    expect "nO KPI, GET /info with token"
    ;;
  p2p)
    SKIP_ANCHOR=1 SECONDS_LOAD=2 LATENCY_MESSAGES=200 DHT_OPS=20 bash "$root/bench/p2p/run.sh" >"$out"
    for b in pubsub_latency pubsub_throughput dht_put dht_get; do expect "\"bench\":\"$b\""; done
    ;;
  election)
    python3 "$root/bench/election/failover.py" bzzz --binary "$bin" --trials 2 --settle 0.5 >"$out"
    expect '"bench": "failover_kill9_3_members"'
    ;;
  tasks)
    BZZZ_BIN=$bin SKIP_ANCHOR=1 TASKS=2000 DURATION=2 PACED_DURATION=1 RATE=500 bash "$root/bench/tasks/run.sh" >"$out"
    expect "e2e, 2000 tasks "
    expect "e2e, 2000 tasks, 3 nodes"
    ;;
  *)
    echo "usage: bash bench/smoke.sh http|p2p|election|tasks" >&2
    exit 2
    ;;
esac
cat "$out"
echo "bench smoke $1: ok"
