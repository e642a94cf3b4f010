#!/usr/bin/env bash
# HTTP benchmark: wrk against bzzz's /health and /metrics, side by side with
# nginx serving a static file of the same size in the same run (the
# reference for what this machine allows). Everything on 127.0.0.1; every
# process started here is stopped here.
#
#   bash bench/http/run.sh                 # 10 s per case, 64 connections, 2 wrk threads
#   DURATION=30s CONNECTIONS=128 bash bench/http/run.sh
set -euo pipefail

root=$(cd "$(dirname "$0")/../.." && pwd)
bin=${BZZZ_BIN:-$root/build/bin/bzzz}
duration=${DURATION:-10s}
connections=${CONNECTIONS:-64}
threads=${THREADS:-2}

for tool in wrk nginx; do
  command -v "$tool" >/dev/null || { echo "bench: $tool is missing (run scripts/setup.sh)" >&2; exit 1; }
done
[ -x "$bin" ] || { echo "bench: $bin is missing (run make build)" >&2; exit 1; }

work=$(mktemp -d)
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
  rm -rf "$work"
}
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'; }

wait_http() {
  for _ in $(seq 1 100); do
    curl -fsS -o /dev/null "$1" 2>/dev/null && return 0
    sleep 0.1
  done
  echo "bench: $1 did not come up" >&2
  return 1
}

# Runs wrk and prints "rps p50 p99 errors" (latencies in ms).
# Arguments: url [connections] [extra wrk args...]
measure() {
  local url=$1 conns=${2:-$connections}
  shift 2 || shift $#
  local out
  out=$(wrk -t"$threads" -c"$conns" -d"$duration" --latency "$@" "$url")
  echo "$out" > "$work/wrk-$(echo "$url" | tr -c 'a-z0-9' '_').txt"
  local rps p50 p99
  rps=$(awk '/^Requests\/sec:/ {print $2}' <<<"$out")
  p50=$(awk '$1=="50%" {print $2}' <<<"$out")
  p99=$(awk '$1=="99%" {print $2}' <<<"$out")
  local errors
  errors=$(awk '/Non-2xx or 3xx responses:/ {print $5} /Socket errors:/ {print "socket:" $0}' <<<"$out" | tr '\n' ' ')
  echo "$rps $(to_ms "$p50") $(to_ms "$p99") ${errors:-0}"
}

to_ms() {
  local v=$1
  case "$v" in
    *us) awk -v x="${v%us}" 'BEGIN {printf "%.3f", x / 1000}' ;;
    *ms) awk -v x="${v%ms}" 'BEGIN {printf "%.3f", x}' ;;
    *s) awk -v x="${v%s}" 'BEGIN {printf "%.3f", x * 1000}' ;;
    *) echo "$v" ;;
  esac
}

# Starts a node; sets $started_port. Not run in a subshell, so that its pid
# reaches the cleanup list.
start_bzzz() {  # name, extra args...
  local name=$1
  shift
  started_port=$(free_port)
  # Each node its own P2P port: two nodes on 127.0.0.1:9000 (the default) cannot both bind.
  # Capacity is measured from one client: the per-principal rate limit is off.
  "$bin" serve --data-dir "$work/$name" --http-listen "127.0.0.1:$started_port" --p2p-listen 127.0.0.1:0 \
    --set security.rate_limit.enabled=false "$@" \
    >"$work/$name.log" 2>&1 &
  pids+=($!)
  wait_http "http://127.0.0.1:$started_port/health/live"
}

# nginx: 2 workers (one per core), static file with the body of /health.
nginx_port=$(free_port)
mkdir -p "$work/nginx/html" "$work/nginx/tmp"
chmod 755 "$work" "$work/nginx" "$work/nginx/html"  # nginx workers drop to an unprivileged user
start_bzzz probe --set http.access_log=false --log-level warn
bzzz_probe_port=$started_port
curl -fsS "http://127.0.0.1:$bzzz_probe_port/health" >"$work/nginx/html/health.json"
cat >"$work/nginx/nginx.conf" <<CONF
worker_processes 2;
pid $work/nginx/nginx.pid;
error_log $work/nginx/error.log warn;
events { worker_connections 4096; }
http {
  access_log off;
  client_body_temp_path $work/nginx/tmp; proxy_temp_path $work/nginx/tmp;
  fastcgi_temp_path $work/nginx/tmp; uwsgi_temp_path $work/nginx/tmp; scgi_temp_path $work/nginx/tmp;
  server { listen 127.0.0.1:$nginx_port; root $work/nginx/html; keepalive_requests 1000000; }
}
CONF
nginx -c "$work/nginx/nginx.conf" -g 'daemon off;' &
pids+=($!)
wait_http "http://127.0.0.1:$nginx_port/health.json"

admin_token=$(od -An -tx1 -N16 /dev/urandom | tr -d " \n")
BZZZ_ADMIN_TOKEN=$admin_token start_bzzz default --log-level info   # access log on, as shipped
default_port=$started_port
quiet_port=$bzzz_probe_port           # access log off

echo "bench/http: wrk -t$threads -c$connections -d$duration --latency on $(nproc) cores ($(uname -m)), $(date -u +%Y-%m-%dT%H:%MZ)"
printf '%-44s %12s %10s %10s  %s\n' "case" "req/s" "p50 ms" "p99 ms" "errors"
run_case() {
  local label=$1
  shift
  read -r rps p50 p99 errors < <(measure "$@")
  printf '%-44s %12s %10s %10s  %s\n' "$label" "$rps" "$p50" "$p99" "$errors"
}
run_case "nginx static file (reference)" "http://127.0.0.1:$nginx_port/health.json"
run_case "bzzz GET /health (access log on, default)" "http://127.0.0.1:$default_port/health"
run_case "bzzz GET /health (access log off)" "http://127.0.0.1:$quiet_port/health"
run_case "bzzz GET /metrics (access log off)" "http://127.0.0.1:$quiet_port/metrics"
# The nO KPI table (1000 req/s, 500 concurrent users, p95 < 500 ms) on an
# authenticated API route: token check, RBAC, JSON body.
run_case "bzzz GET /info, token auth, 500 connections" "http://127.0.0.1:$default_port/info" 500 \
  -H "Authorization: Bearer $admin_token"
rss_default=$(ps -o rss= -p "$(pgrep -f "bzzz serve --data-dir $work/default" | head -1)")

# Paced: 500 users at 1000 req/s in all (nO KPI: p50 < 100 ms, p95 < 500 ms,
# p99 < 1 s, error rate < 0.1%).
kpi=$(BZZZ_BENCH_TOKEN=$admin_token wrk -t"$threads" -c500 -d"$duration" -s "$root/bench/http/kpi.lua" \
  "http://127.0.0.1:$default_port/info" | awk '/^KPI/')
read -r _ kpi_rps kpi_p50 kpi_p95 kpi_p99 kpi_max kpi_errors <<<"$kpi"
echo
echo "nO KPI, GET /info with token, 500 connections paced to ~1000 req/s:"
printf '  %s req/s, p50 %s ms, p95 %s ms, p99 %s ms, max %s ms, errors %s\n' \
  "$kpi_rps" "$kpi_p50" "$kpi_p95" "$kpi_p99" "$kpi_max" "$kpi_errors"
echo "bzzz resident memory: $(( rss_default / 1024 )) MiB after the saturation runs"
