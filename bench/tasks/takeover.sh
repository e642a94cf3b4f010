#!/usr/bin/env bash
# Takeover benchmark: three nodes on one PostgreSQL (started here, loopback),
# no agents anywhere so that the tasks stay queued where they were
# submitted. TASKS no-op tasks go to one node (not the admin); it is killed
# with -9; the time is measured from the kill until none of its unfinished
# tasks is its own any more (the survivors took them over), polling the
# database every 20 ms. Then the survivors get agents and the time until all
# TASKS succeeded is measured, and the stored documents are checked: no task
# holds two successful attempts. Prints one JSON line and a summary.
#
#   bash bench/tasks/takeover.sh                 # 10,000 tasks, about a minute
#   TASKS=500 OWNER_LEASE=1s bash bench/tasks/takeover.sh
#
# Knobs: TASKS (10000), OWNER_LEASE (tasks.owner_lease, 3s: the default),
# AGENTS (agents per survivor for the drain, 4), P2P_PORT_BASE (19571),
# BZZZ_BIN. Published anchors (shared/reference/anchors.md): River rescues
# stuck jobs after 1 h, Oban after 60 min, graphile-worker keeps a crashed
# worker's jobs locked for 4 h, Solid Queue fails them after 5 min.
set -euo pipefail

root=$(cd "$(dirname "$0")/../.." && pwd)
bin=${BZZZ_BIN:-$root/build/bin/bzzz}
tasks=${TASKS:-10000}
owner_lease=${OWNER_LEASE:-3s}
agents=${AGENTS:-4}
p2p_base=${P2P_PORT_BASE:-19571}
token=$(od -An -tx1 -N16 /dev/urandom | tr -d " \n")
for tool in jq python3 curl; do
  command -v "$tool" >/dev/null || { echo "bench: $tool is missing (run scripts/setup.sh)" >&2; exit 1; }
done
[ -x "$bin" ] || { echo "bench: $bin is missing (run make build)" >&2; exit 1; }
pg_bin=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1)
[ -n "$pg_bin" ] || { echo "bench: no PostgreSQL server (run scripts/setup.sh)" >&2; exit 1; }

work=$(mktemp -d)
pids=()
pg_pid=
cleanup() {
  for pid in "${pids[@]}"; do kill -9 "$pid" 2>/dev/null || true; done
  for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
  if [ -n "$pg_pid" ]; then
    kill -INT "$pg_pid" 2>/dev/null || true
    for _ in $(seq 1 100); do kill -0 "$pg_pid" 2>/dev/null || break; sleep 0.1; done
  fi
  rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'; }
as_pg() { if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }

# ---- PostgreSQL (fsync on: a real server) ----
pg_port=$(free_port)
mkdir -p "$work/pg"
[ "$(id -u)" = 0 ] && chown postgres: "$work/pg" && chmod 755 "$work"
as_pg "$pg_bin/initdb" -D "$work/pg/data" -U postgres --auth=trust -E UTF8 --locale=C.UTF-8 >"$work/pg/initdb.log" 2>&1
as_pg "$pg_bin/pg_ctl" -D "$work/pg/data" -l "$work/pg/server.log" -w \
  -o "-p $pg_port -k $work/pg -c listen_addresses=127.0.0.1" start >/dev/null
pg_pid=$(head -1 "$work/pg/data/postmaster.pid")
sql() { "$pg_bin/psql" -X -q -At -h 127.0.0.1 -p "$pg_port" -U postgres -d bzzz -c "$1"; }
"$pg_bin/psql" -X -q -h 127.0.0.1 -p "$pg_port" -U postgres -d postgres -c "CREATE DATABASE bzzz" >/dev/null

# ---- three nodes, no agents ----
urls=() node_pids=()
"$bin" cluster init --data-dir "$work/n0" >/dev/null
join_token=$("$bin" cluster token create --data-dir "$work/n0" --role admin-capable --uses 2 --ttl 24h)
for i in 0 1 2; do
  port=$(free_port)
  boot=()
  [ "$i" -gt 0 ] && boot=(--bootstrap "127.0.0.1:$p2p_base" --join "$join_token")
  BZZZ_ADMIN_TOKEN=$token "$bin" serve --data-dir "$work/n$i" --http-listen "127.0.0.1:$port" --node-name "n$i" \
    --p2p-listen "127.0.0.1:$((p2p_base + i))" --bootstrap-expect 3 "${boot[@]}" --log-level warn \
    --set http.access_log=false --set agents.initial_agents=0 --set agents.autoscaling.min_agents=0 \
    --set agents.autoscaling.enabled=false \
    --set security.rate_limit.enabled=false --set "tasks.owner_lease=$owner_lease" \
    --set storage.backend=postgres --set storage.postgres.host=127.0.0.1 --set "storage.postgres.port=$pg_port" \
    --set storage.postgres.database=bzzz --set storage.postgres.user=postgres --set storage.postgres.sslmode=disable \
    >"$work/n$i.log" 2>&1 &
  pids+=($!) node_pids+=($!) urls+=("http://127.0.0.1:$port")
done
api() { curl -fsS -H "Authorization: Bearer $token" "$@"; }
admin=
for _ in $(seq 1 300); do
  admin=$(api "${urls[0]}/api/election/status" 2>/dev/null | jq -r '.admin_id // empty') || true
  [ -n "$admin" ] && break
  sleep 0.1
done
[ -n "$admin" ] || { echo "bench: no admin elected" >&2; tail -5 "$work"/n*.log >&2; exit 1; }
victim=
for i in 0 1 2; do
  id=$(api "${urls[$i]}/api/election/status" | jq -r .node_id)
  if [ "$id" != "$admin" ]; then victim=$i victim_id=$id; break; fi
done

# ---- TASKS queued on the victim (8 clients in parallel) ----
echo "[takeover] $tasks tasks queued on n$victim, owner_lease $owner_lease" >&2
python3 - "${urls[$victim]}" "$token" "$tasks" <<'EOF'
import concurrent.futures, http.client, json, sys, urllib.parse
url, token, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
u = urllib.parse.urlparse(url)
body = json.dumps({"executor": "builtin", "input": {"op": "echo", "value": 1}})
def lane(count):
    c = http.client.HTTPConnection(u.hostname, u.port, timeout=30)
    for _ in range(count):
        c.request("POST", "/api/v1/tasks", body, {"Authorization": "Bearer " + token, "Content-Type": "application/json"})
        r = c.getresponse(); r.read()
        if r.status != 201: raise SystemExit(f"submit: HTTP {r.status}")
with concurrent.futures.ThreadPoolExecutor(8) as ex:
    list(ex.map(lane, [n // 8 + (1 if i < n % 8 else 0) for i in range(8)]))
EOF
open="state IN ('queued','assigned','running','failed','retried')"
held=$(sql "SELECT COUNT(*) FROM tasks WHERE node_id = '$victim_id' AND $open")

# ---- kill -9, then until none of its unfinished tasks is its own ----
kill -9 "${node_pids[$victim]}"
t0=$(date +%s.%N)
{ wait "${node_pids[$victim]}"; } 2>/dev/null || true  # reaped here: no "Killed" line from the shell
left=$held
for _ in $(seq 1 3000); do
  left=$(sql "SELECT COUNT(*) FROM tasks WHERE node_id = '$victim_id' AND $open")
  [ "$left" = 0 ] && break
  sleep 0.02
done
t1=$(date +%s.%N)
takeover_s=$(python3 -c "print(round($t1 - $t0, 3))")
[ "$left" = 0 ] || { echo "bench: $left tasks still on the dead node after 60 s" >&2; exit 1; }

# ---- the survivors drain them ----
for i in 0 1 2; do
  [ "$i" = "$victim" ] && continue
  api -X POST -d "{\"agents\": $agents}" "${urls[$i]}/api/v1/agents/scale" >/dev/null
done
for _ in $(seq 1 6000); do
  done_n=$(sql "SELECT COUNT(*) FROM tasks WHERE state = 'succeeded'")
  [ "$done_n" -ge "$tasks" ] && break
  sleep 0.05
done
t2=$(date +%s.%N)
drain_s=$(python3 -c "print(round($t2 - $t1, 3))")
twice=$(sql "SELECT COUNT(*) FROM tasks WHERE (SELECT COUNT(*) FROM json_array_elements(doc::json->'attempts') a
             WHERE a->>'state' = 'succeeded') <> CASE WHEN state = 'succeeded' THEN 1 ELSE 0 END")
by=$(sql "SELECT string_agg(n::text, '+') FROM (SELECT COUNT(*) AS n FROM tasks GROUP BY node_id ORDER BY 1 DESC) c")

jq -cn --argjson tasks "$tasks" --argjson held "$held" --arg lease "$owner_lease" --argjson takeover "$takeover_s" \
  --argjson drain "$drain_s" --argjson done "${done_n:-0}" --argjson twice "$twice" --arg by "$by" \
  '{bench: "takeover_kill9_3_nodes_postgres", tasks: $tasks, held_by_victim: $held, owner_lease: $lease,
    takeover_s: $takeover, drain_s: $drain, succeeded: $done, not_exactly_one_success: $twice, tasks_by_node: $by}'
echo "takeover of $held unfinished tasks after kill -9: ${takeover_s} s (owner_lease $owner_lease; target < 5 s);" \
  "then drained by the survivors in ${drain_s} s; $done_n succeeded, $twice with other than one success" >&2
[ "$twice" = 0 ] || { echo "bench: a task did not end with exactly one success" >&2; exit 1; }
