#!/usr/bin/env bash
# Compares bzzz binaries on the task submit path, alternating them so that
# the machine's drift (a shared 2-core machine moves by 5-10% between runs)
# falls on all of them alike: for each round and each binary, a fresh node
# (its own data directory, one node, the task bench's settings), then one
# wrk run of submit.lua (keep-alive POST /api/v1/tasks, no-op tasks) for
# SECONDS, then the node is stopped. Prints each run, then per binary the
# median tasks/s and the node's CPU microseconds per task.
#
#   bash bench/tasks/compare.sh OLD_BINARY NEW_BINARY [MORE...]
#   ROUNDS=6 SECONDS_PER_RUN=10 bash bench/tasks/compare.sh a/bzzz b/bzzz
#
# What it measures is the same as the "submit" phase of run.sh (201 only
# once durable), without the anchor and without waiting for the tasks to
# finish; use it to decide whether a change helps, and run.sh to record.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
rounds=${ROUNDS:-4}
seconds=${SECONDS_PER_RUN:-8}
connections=${CONNECTIONS:-128}
[ $# -ge 1 ] || { echo "usage: compare.sh BINARY [BINARY...]" >&2; exit 2; }
for b in "$@"; do [ -x "$b" ] || { echo "compare: $b is not an executable" >&2; exit 2; }; done
command -v wrk >/dev/null || { echo "compare: wrk is missing (run scripts/setup.sh)" >&2; exit 1; }

work=$(mktemp -d)
pid=
cleanup() {
  if [ -n "$pid" ]; then kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; fi
  rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM
token=$(od -An -tx1 -N16 /dev/urandom | tr -d " \n")
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'; }
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }

for round in $(seq "$rounds"); do
  for i in $(seq 1 $#); do
    bin=${!i}
    port=$(free_port)
    rm -rf "$work/data"
    BZZZ_ADMIN_TOKEN=$token "$bin" serve --data-dir "$work/data" --http-listen "127.0.0.1:$port" \
      --p2p-listen 127.0.0.1:0 --node-name compare --log-level warn --set http.access_log=false \
      --set agents.initial_agents=2 --set agents.autoscaling.enabled=false \
      --set security.rate_limit.enabled=false >"$work/node.log" 2>&1 &
    pid=$!
    for _ in $(seq 1 100); do curl -fsS -o /dev/null "http://127.0.0.1:$port/health/live" 2>/dev/null && break; sleep 0.1; done
    c0=$(cpu_ticks "$pid")
    line=$(BZZZ_BENCH_TOKEN=$token wrk -t2 -c"$connections" -d"${seconds}s" -s "$here/submit.lua" \
      "http://127.0.0.1:$port/api/v1/tasks" | grep '^SUBMIT')
    c1=$(cpu_ticks "$pid")
    kill "$pid"; wait "$pid" 2>/dev/null || true; pid=
    # SUBMIT <responses> <201> <429> <other> <socket errors> <secs> <p50> <p99>
    echo "$line" | awk -v n="$i" -v bin="$bin" -v ticks=$((c1 - c0)) -v hz="$(getconf CLK_TCK)" \
      '{ printf "%d %s %.0f %.1f\n", n, bin, $3 / $7, ticks / hz * 1e6 / $3 }' | tee -a "$work/runs"
  done
done

echo "binary  median tasks/s  median CPU us/task  runs"
python3 - "$work/runs" <<'PY'
import collections, statistics, sys
runs = collections.defaultdict(list)
names = {}
for line in open(sys.argv[1]):
    i, name, rate, cpu = line.split()
    names[i] = name
    runs[i].append((float(rate), float(cpu)))
for i in sorted(runs, key=int):
    v = runs[i]
    print(f"{names[i]}  {statistics.median(r for r, _ in v):.0f}  {statistics.median(c for _, c in v):.1f}  "
          f"{sorted(int(r) for r, _ in v)}")
PY
