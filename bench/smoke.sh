#!/usr/bin/env bash
# Every benchmark in a seconds-long smoke mode, run by the test suite
# (ctest -L bench), so that none rots unnoticed. The figures are not judged
# here (a loaded CI machine says nothing about speed; BENCHMARKS.md records
# full runs); that each benchmark starts its processes, measures and prints
# its figures is. Anchors are skipped (they install other software).
#
#   bash bench/smoke.sh http|p2p|election|tasks|tasks_pg|takeover|kpi|ucxl
#   (BZZZ_BIN, BZZZ_P2P_BENCH and BZZZ_UCXL_BENCH name the binaries; default build/bin/)
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
    for b in pubsub_latency pubsub_throughput pubsub_loss pubsub_memory dht_put dht_get; do expect "\"bench\":\"$b\""; done
    expect '"accounted":true'
    ;;
  election)
    python3 "$root/bench/election/failover.py" bzzz --binary "$bin" --trials 2 --settle 0.5 >"$out"
    expect '"bench": "failover_kill9_3_members"'
    ;;
  tasks)
    BZZZ_BIN=$bin SKIP_ANCHOR=1 TASKS=2000 DURATION=2 PACED_DURATION=1 RATE=500 bash "$root/bench/tasks/run.sh" >"$out"
    expect "e2e, 2000 tasks "
    expect "e2e, 2000 tasks, 3 nodes"
    ROUNDS=1 SECONDS_PER_RUN=1 bash "$root/bench/tasks/compare.sh" "$bin" >>"$out"
    expect "median tasks/s"
    ;;
  tasks_pg)
    BZZZ_BIN=$bin SKIP_ANCHOR=1 STORE=postgres TASKS=2000 DURATION=2 PACED_DURATION=1 RATE=500 \
      bash "$root/bench/tasks/run.sh" >"$out"
    expect "e2e, 2000 tasks "
    expect "e2e, 2000 tasks, 3 nodes"
    expect '"store": "postgres"'
    ;;
  takeover)
    BZZZ_BIN=$bin TASKS=500 OWNER_LEASE=1s bash "$root/bench/tasks/takeover.sh" >"$out"
    expect '"bench":"takeover_kill9_3_nodes_postgres"'
    expect '"not_exactly_one_success":0'
    ;;
  kpi)
    # `bzzz bench` against a node of its own, briefly and gently: that it
    # drives each route and prints the table with every request answered.
    dir=$(mktemp -d)
    port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
    "$bin" serve --data-dir "$dir/data" --http-listen "127.0.0.1:$port" --p2p-listen 127.0.0.1:0 >"$dir/node.log" 2>&1 &
    node=$!
    trap 'kill $node 2>/dev/null; wait $node 2>/dev/null; rm -rf "$dir" "$out"' EXIT
    for _ in $(seq 1 100); do curl -sf "http://127.0.0.1:$port/health/live" >/dev/null && break; sleep 0.1; done
    set +e
    BZZZ_DATA_DIR="$dir/data" "$bin" bench --url "http://127.0.0.1:$port" --seconds 1 --rate 300 --users 50 \
      --json >"$out" 2>"$dir/bench.err"
    code=$?
    set -e
    [ "$code" -le 1 ] || { cat "$out" "$dir/bench.err" "$dir/node.log"; echo "bench smoke: bzzz bench exited $code" >&2; exit 1; }
    python3 - "$out" <<'PY'
import json, sys
results = json.load(open(sys.argv[1]))["results"]
routes = [r["route"] for r in results]
assert routes == ["GET /health", "GET /info (token)", "POST /api/v1/tasks (no-op)"], routes
for r in results:
    assert r["requests"] > 0 and r["errors"] == 0, r
PY
    expect '"p95_ms"'
    ;;
  ucxl)
    SECONDS_EACH=0.2 bash "$root/bench/ucxl/run.sh" >"$out"
    for b in ucxl_put ucxl_get envelope_seal envelope_open; do expect "\"bench\":\"$b\""; done
    expect '"sealed":true,"bytes":65536'
    ;;
  *)
    echo "usage: bash bench/smoke.sh http|p2p|election|tasks|tasks_pg|takeover|kpi|ucxl" >&2
    exit 2
    ;;
esac
cat "$out"
echo "bench smoke $1: ok"
