#!/usr/bin/env bash
# Task benchmark: no-op tasks end to end on bzzz (one node, then three nodes
# loaded at once) and on BullMQ + redis-server (AOF everysec, Worker
# concurrency 50) in the same run. Everything on 127.0.0.1; every process
# started here is stopped here, by pid.
#
# bzzz, one node (wrk + submit.lua, keep-alive POST /api/v1/tasks, driven
# by bzzz_load.py):
#   e2e     TASKS tasks as fast as accepted; time until the node has created
#           them all (submit/s) and until they have all succeeded (e2e/s)
#   submit  DURATION seconds of POSTs (wrk's own count of 201s), then the
#           time until everything accepted has succeeded
#   paced   RATE tasks/s for PACED_DURATION s: latency below saturation;
#           meanwhile one client submits a task at a time and long-polls its
#           events until the success is written (client-observed latency)
#   Latency p50/p99 = submit -> succeeded from the node's histogram
#   no_task_latency_seconds (delta over the phase), interpolated linearly
#   within its buckets (0.1/0.25/0.5/0.75/1/2.5/5/10 ms ...).
# bzzz, three nodes (fixed P2P ports, the first founds the cluster, the
#   others --bootstrap to it with a join token, --bootstrap-expect 3): TASKS in all, a third to each node, each node runs
#   what it accepts; aggregate figures.
# BullMQ (bullmq_bench.mjs; producer and Worker in separate Node processes):
#   add (TASKS x queue.add, 64 in flight), bulk (addBulk x 1000), paced
#   (RATE jobs/s). Latency = job.finishedOn - job.timestamp (1 ms resolution).
#
# STORE=postgres: the nodes keep their tasks in one PostgreSQL server started
#   here (initdb into the work directory, loopback, fsync on): one database
#   for the single node, one shared by the three nodes; the server's CPU
#   (postmaster and backends) counts as the system's. The anchor is then
#   graphile-worker (graphile_bench.mjs, Worker concurrency 10) on the same
#   server, in a database of its own, instead of BullMQ.
#
#   bash bench/tasks/run.sh                              # about 2 minutes
#   STORE=postgres bash bench/tasks/run.sh               # the same on PostgreSQL
#   TASKS=100000 DURATION=20 CONNECTIONS=256 bash bench/tasks/run.sh
#   SKIP_ANCHOR=1 SKIP_CLUSTER=1 bash bench/tasks/run.sh # bzzz, one node only
#
# Other knobs: THREADS (wrk threads, 2), RATE (2000), PACED_DURATION (5),
# AGENTS (agents per node, autoscaling off, 2), P2P_PORT_BASE (19471),
# BZZZ_BIN. The load generator shares the machine's cores with the server:
# the cores_* columns say who used the CPU during each phase ("other" is
# everything else on the machine, e.g. a build running beside).
set -euo pipefail

root=$(cd "$(dirname "$0")/../.." && pwd)
here=$root/bench/tasks
bin=${BZZZ_BIN:-$root/build/bin/bzzz}
tasks=${TASKS:-50000}
duration=${DURATION:-10}
connections=${CONNECTIONS:-128}
threads=${THREADS:-2}
rate=${RATE:-2000}
paced_duration=${PACED_DURATION:-5}
agents=${AGENTS:-2}
p2p_base=${P2P_PORT_BASE:-19471}
store=${STORE:-sqlite}
case "$store" in sqlite | postgres) ;; *) echo "bench: STORE must be sqlite or postgres" >&2; exit 2 ;; esac
token=$(od -An -tx1 -N16 /dev/urandom | tr -d " \n")

for tool in wrk jq python3 curl; do
  command -v "$tool" >/dev/null || { echo "bench: $tool is missing (run scripts/setup.sh)" >&2; exit 1; }
done
[ -x "$bin" ] || { echo "bench: $bin is missing (run make build)" >&2; exit 1; }
if [ -z "${SKIP_ANCHOR:-}" ]; then
  if ! command -v redis-server >/dev/null || ! command -v node >/dev/null || ! command -v npm >/dev/null; then
    echo "bench: installing redis-server and Node.js (the anchor)" >&2
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq redis-server nodejs npm >/dev/null
  fi
  if [ ! -d "$here/node_modules/bullmq" ] || [ ! -d "$here/node_modules/ioredis" ] ||
     [ ! -d "$here/node_modules/graphile-worker" ]; then
    echo "bench: npm install bullmq ioredis graphile-worker into bench/tasks/node_modules (git-ignored)" >&2
    (cd "$here" && npm install --no-audit --no-fund --no-package-lock --loglevel=error >/dev/null)
  fi
fi

work=$(mktemp -d)
pids=()
stop_all() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
  pids=()
}
cleanup() {
  stop_all
  stop_postgres
  rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'; }

# PostgreSQL for STORE=postgres: a server of our own (never the packaged
# cluster), as the postgres user when run as root (initdb refuses root).
pg_bin=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1)
pg_port=
pg_pid=
as_pg() { if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }
start_postgres() {
  pg_port=$(free_port)
  mkdir -p "$work/pg"
  [ "$(id -u)" = 0 ] && chown postgres: "$work/pg" && chmod 755 "$work"
  as_pg "$pg_bin/initdb" -D "$work/pg/data" -U postgres --auth=trust -E UTF8 --locale=C.UTF-8 >"$work/pg/initdb.log" 2>&1
  as_pg "$pg_bin/pg_ctl" -D "$work/pg/data" -l "$work/pg/server.log" -w \
    -o "-p $pg_port -k $work/pg -c listen_addresses=127.0.0.1 -c max_connections=200" start >/dev/null
  pg_pid=$(head -1 "$work/pg/data/postmaster.pid")
}
stop_postgres() {
  [ -n "$pg_pid" ] || return 0
  kill -INT "$pg_pid" 2>/dev/null || true
  for _ in $(seq 1 100); do kill -0 "$pg_pid" 2>/dev/null || break; sleep 0.1; done
  pg_pid=
}
pg_sql() { "$pg_bin/psql" -X -q -At -h 127.0.0.1 -p "$pg_port" -U postgres -d "${2:-postgres}" -c "$1"; }
# The --set flags of a node keeping its tasks in database $1.
store_args=()
use_database() {
  store_args=()
  [ "$store" = postgres ] || return 0
  pg_sql "CREATE DATABASE $1" >/dev/null
  store_args=(--set storage.backend=postgres --set storage.postgres.host=127.0.0.1
              --set "storage.postgres.port=$pg_port" --set "storage.postgres.database=$1"
              --set storage.postgres.user=postgres --set storage.postgres.sslmode=disable)
}

wait_http() {
  for _ in $(seq 1 100); do
    curl -fsS -o /dev/null "$1" 2>/dev/null && return 0
    sleep 0.1
  done
  echo "bench: $1 did not come up" >&2
  return 1
}

# Starts a node; sets started_port and started_pid. Not run in a subshell, so
# that its pid reaches the cleanup list. Arguments: name, extra args...
# Capacity is measured from one client (one principal): the per-principal
# rate limit is off.
start_bzzz() {
  local name=$1
  shift
  started_port=$(free_port)
  BZZZ_ADMIN_TOKEN=$token "$bin" serve --data-dir "$work/$name" --http-listen "127.0.0.1:$started_port" \
    --node-name "$name" --log-level warn --set http.access_log=false \
    --set agents.initial_agents="$agents" --set agents.autoscaling.enabled=false \
    --set security.rate_limit.enabled=false "${store_args[@]}" "$@" \
    >"$work/$name.log" 2>&1 &
  started_pid=$!
  pids+=("$started_pid")
  wait_http "http://127.0.0.1:$started_port/health/live" || { cat "$work/$name.log" >&2; return 1; }
}

results=$work/results.jsonl
record() { tee -a "$results"; }
store_pids() { [ -n "$pg_pid" ] && echo "--pid-tree $pg_pid"; true; }
load() {
  # shellcheck disable=SC2046
  timeout -k 5 300 python3 "$here/bzzz_load.py" --token "$token" --threads "$threads" --store "$store" \
    $(store_pids) "$@" | record || echo "bench: phase did not complete" >&2
}

echo "bench/tasks: $(nproc) cores ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)), $(date -u +%Y-%m-%dT%H:%MZ)," \
  "load average at start: $(cut -d' ' -f1-3 /proc/loadavg), store: $store"
echo "  TASKS=$tasks DURATION=${duration}s CONNECTIONS=$connections THREADS=$threads RATE=$rate/s AGENTS=$agents" >&2
[ "$store" = postgres ] && start_postgres

# ---- bzzz, one node ----
echo "[bzzz] one node: e2e $tasks tasks, submit ${duration}s, paced $rate/s" >&2
use_database bzzz_single
start_bzzz single --p2p-listen 127.0.0.1:0
url=http://127.0.0.1:$started_port
pid=$started_pid
load --node "$url" --pid "$pid" --mode quota --label "e2e, $tasks tasks" --tasks "$tasks" --connections "$connections"
load --node "$url" --pid "$pid" --mode timed --label "submit, ${duration}s" --duration "$duration" --connections "$connections"
# About 50 ms between requests on a connection, so the round trip hardly
# changes the rate.
paced_conns=$(( rate / 20 > threads ? rate / 20 : threads ))
load --node "$url" --pid "$pid" --mode paced --label "paced, $rate/s" --rate "$rate" --duration "$paced_duration" \
  --connections "$paced_conns" --probe
stop_all

# ---- bzzz, three nodes ----
if [ -z "${SKIP_CLUSTER:-}" ]; then
  echo "[bzzz] three nodes: $tasks tasks in all, a third to each" >&2
  urls=() node_pids=()
  use_database bzzz_cluster  # one database shared by the three nodes
  # Membership: n0 founds the cluster offline, the others join with a token.
  "$bin" cluster init --data-dir "$work/n0" >/dev/null
  join_token=$("$bin" cluster token create --data-dir "$work/n0" --role admin-capable --uses 2 --ttl 24h)
  for i in 0 1 2; do
    boot=()
    [ "$i" -gt 0 ] && boot=(--bootstrap "127.0.0.1:$p2p_base" --join "$join_token")
    start_bzzz "n$i" --p2p-listen "127.0.0.1:$((p2p_base + i))" --bootstrap-expect 3 "${boot[@]}"
    urls+=(--node "http://127.0.0.1:$started_port") node_pids+=(--pid "$started_pid")
  done
  # Until the three agree on one admin and each sees the other two.
  formed=
  for _ in $(seq 1 150); do
    admins=$(for ((i = 1; i < ${#urls[@]}; i += 2)); do
      curl -fsS -H "Authorization: Bearer $token" "${urls[$i]}/api/election/status" 2>/dev/null | jq -r '.admin_id // "none"'
    done | sort -u)
    peers=$(for ((i = 1; i < ${#urls[@]}; i += 2)); do
      curl -fsS -H "Authorization: Bearer $token" "${urls[$i]}/api/v1/peers" 2>/dev/null | jq -r '.connected_peers // 0'
    done | sort -n | head -1)
    if [ "$(wc -l <<<"$admins")" = 1 ] && [ "$admins" != none ] && [ "${peers:-0}" -ge 2 ]; then formed=1; break; fi
    sleep 0.1
  done
  [ -n "$formed" ] || { echo "bench: the three nodes did not form a cluster" >&2; tail -5 "$work"/n*.log >&2; exit 1; }
  per_node=$(( connections / 3 > 1 ? connections / 3 : 1 ))
  # One wrk thread per node: three wrk processes share the cores with three nodes.
  # shellcheck disable=SC2046
  timeout -k 5 300 python3 "$here/bzzz_load.py" --token "$token" --threads 1 --store "$store" $(store_pids) \
    "${urls[@]}" "${node_pids[@]}" \
    --mode quota --label "e2e, $tasks tasks, 3 nodes" --tasks "$tasks" --connections "$per_node" | record ||
    echo "bench: phase did not complete" >&2
  stop_all
fi

# ---- graphile-worker on the same PostgreSQL ----
if [ -z "${SKIP_ANCHOR:-}" ] && [ "$store" = postgres ]; then
  echo "[graphile-worker] on the same PostgreSQL, Worker concurrency 10: add, addJobs, paced $rate/s" >&2
  pg_sql "CREATE DATABASE graphile" >/dev/null
  gw() {
    (cd "$here" && timeout -k 5 300 node graphile_bench.mjs --connection "postgres://postgres@127.0.0.1:$pg_port/graphile" \
      --pg-pid "$pg_pid" "$@") | record || echo "bench: phase did not complete" >&2
  }
  gw --mode add --jobs "$tasks" --label "e2e, $tasks jobs, add x64"
  gw --mode bulk --jobs "$tasks" --label "e2e, $tasks jobs, addJobs"
  gw --mode paced --rate "$rate" --duration "$paced_duration" --label "paced, $rate/s"
fi

# ---- BullMQ + Redis ----
if [ -z "${SKIP_ANCHOR:-}" ] && [ "$store" = sqlite ]; then
  echo "[bullmq] redis-server (AOF everysec), Worker concurrency 50: add, addBulk, paced $rate/s" >&2
  redis_port=$(free_port)
  mkdir -p "$work/redis"
  redis-server --bind 127.0.0.1 --port "$redis_port" --appendonly yes --appendfsync everysec --save '' \
    --dir "$work/redis" --daemonize no --loglevel warning >"$work/redis.log" 2>&1 &
  redis_pid=$!
  pids+=("$redis_pid")
  for _ in $(seq 1 50); do redis-cli -p "$redis_port" ping >/dev/null 2>&1 && break; sleep 0.1; done
  bull() { (cd "$here" && timeout -k 5 300 node bullmq_bench.mjs --port "$redis_port" --redis-pid "$redis_pid" "$@") | record || echo "bench: phase did not complete" >&2; }
  bull --mode add --jobs "$tasks" --label "e2e, $tasks jobs, add x64"
  bull --mode bulk --jobs "$tasks" --label "e2e, $tasks jobs, addBulk"
  bull --mode paced --rate "$rate" --duration "$paced_duration" --label "paced, $rate/s"
  stop_all
fi

# ---- table ----
echo
echo "load average at end: $(cut -d' ' -f1-3 /proc/loadavg)"
fmt='%-15s %-30s %9s %9s %9s %9s %9s %8s %6s %7s %7s\n'
printf "$fmt" system case tasks submit/s e2e/s p50_ms p99_ms POST_p50 429s cores cores
printf "$fmt" "" "" "" "" "" "" "" "" "" srv/gen other
jq -r '[.system, .case, .tasks_created, .submit_per_s, (.e2e_per_s // "-"), (.p50_ms // "-"), (.p99_ms // "-"),
        (.post_p50_ms // "-"), (.http_429 // "-"), "\(.cores_server)/\(.cores_loadgen)", .cores_other]
       | map(tostring) | join("\t")' "$results" |
  while IFS=$'\t' read -r s c n sub e2e p50 p99 post t429 cores other; do
    printf "$fmt" "$s" "$c" "$n" "$sub" "$e2e" "$p50" "$p99" "$post" "$t429" "$cores" "$other"
  done
echo
echo "p50/p99: submit -> succeeded. bzzz: its histogram, interpolated within buckets; BullMQ: finishedOn - timestamp (ms)."
echo "Saturated runs (e2e, submit) include the time a task waits in the queue; 'paced' is below saturation."
echo "cores: CPU used during the phase by the system (bzzz nodes; redis + Worker) / the load generator (wrk; producer),"
echo "and by everything else on the machine. POST_p50: wrk's response time of the submit (201 once durable)."
jq -r 'select(.probe_n) | "bzzz client-observed during \"\(.case)\" (one client, one task at a time: POST, then long poll"
  + " until the success is written): p50 \(.probe_p50_ms) ms, p99 \(.probe_p99_ms) ms, \(.probe_n) tasks."' "$results"
disturbed=$(jq -r 'select(.cores_other > 0.25) | "\(.system) \"\(.case)\" (\(.cores_other) cores)"' "$results" | paste -sd, -)
[ -z "$disturbed" ] || echo "WARNING: other processes used the CPU during: $disturbed; compare only quiet phases, or rerun."
single_e2e=$(jq -r 'select(.system=="bzzz" and .mode=="quota" and .nodes==1) | .e2e_per_s' "$results")
single_p50=$(jq -r 'select(.system=="bzzz" and .mode=="paced") | .p50_ms' "$results")
if [ "$store" = postgres ]; then
  echo "SPEC (PostgreSQL): at least graphile-worker's throughput in the same run: ${single_e2e}/s one node;" \
    "p50 submit->done < 5 ms: ${single_p50} ms (paced)."
  echo "Anchor (shared/reference/anchors.md): graphile-worker ~15,600 jobs/s unbatched on a desktop i9 (not this machine)."
else
  echo "SPEC (one node): >= 10000 no-op tasks/s end to end: ${single_e2e}/s; p50 submit->done < 1 ms: ${single_p50} ms (paced)."
  echo "Anchor (shared/reference/anchors.md): BullMQ 6 + Redis 7, concurrency 50: 8,400-9,400 jobs/s, median 2.0-3.1 ms."
fi
