#!/usr/bin/env bash
# live_queries.sh BZZZ_BINARY [REPO_ROOT]
#
# The monitoring assets against real processes, on loopback only:
#   1. founds a cluster offline, starts a dht-bootstrap node (with its
#      metrics listener) and three serve nodes, and a real Prometheus that
#      scrapes all four every second and evaluates deploy/prometheus/alerts.yml
#      every second;
#   2. makes traffic (UCXL put and get, tasks, a DHT test, a 401, a 403 and a
#      503), then evaluates every query of every Grafana panel and every
#      dashboard variable through /api/v1/query: a query that errors, or has
#      no series (or only NaN) where data exists, fails the test naming the
#      dashboard and panel;
#   3. checks every rule loaded with health "ok", the recording rules have a
#      value, and ServiceDown, BZZZNoAdminElected and BZZZMultipleAdmins are
#      not active;
#   4. kills a node that is not the admin: ServiceDown must turn pending for
#      it and for no other (the production for: durations are kept, pending
#      shows at the first evaluation); kills the other serve nodes:
#      BZZZNoAdminElected must turn pending.
# Everything started is stopped by pid on exit. About 20 s; fails past 85 s
# (LIVE_QUERIES_LIMIT).
set -uo pipefail

BZZZ=${1:?usage: live_queries.sh BZZZ_BINARY [REPO_ROOT]}
BZZZ=$(cd "$(dirname "$BZZZ")" && pwd)/$(basename "$BZZZ")
ROOT=${2:-$(cd "$(dirname "$0")/../.." && pwd)}
ROOT=$(cd "$ROOT" && pwd)
PROMETHEUS=${PROMETHEUS:-prometheus}
RULES=$ROOT/deploy/prometheus/alerts.yml
DASH_DIR=$ROOT/deploy/grafana/dashboards
LIMIT=${LIVE_QUERIES_LIMIT:-85}  # seconds

# Panels that may have no series in this run, each with its reason. Any
# other panel query without data fails the test.
declare -A ALLOWED_EMPTY=(
  ["bzzz-http/Connections refused"]="bzzz_http_connections_refused_total has series only after a connection was refused at a limit"
)

[ -x "$BZZZ" ] || { echo "FAIL: $BZZZ is not an executable" >&2; exit 1; }
# A missing tool skips the test (ctest SKIP_RETURN_CODE 77), or fails it
# under CI, where scripts/setup.sh has installed everything.
missing_tool() {
  echo "${CI:+FAIL: }$1 is not installed (scripts/setup.sh installs it)${CI:-: skipped}" >&2
  [ -n "${CI:-}" ] && exit 1
  exit 77
}
for tool in "$PROMETHEUS" curl jq python3; do
  command -v "$tool" >/dev/null || missing_tool "$tool"
done
TOKEN=$(python3 -c 'import secrets; print(secrets.token_hex(32))')
# A token with the built-in role "user" only, for a 403.
USER_TOKEN=$(python3 -c 'import secrets; print(secrets.token_hex(32))')

WORK=$(mktemp -d "${TMPDIR:-/tmp}/bzzz-deploy-live.XXXXXX")
declare -A PID=()
failures=0
fail() { echo "FAIL: $*" >&2; failures=$((failures + 1)); }
ok() { echo "ok: $*"; }
log() { echo "-- [$SECONDS s] $*"; }

stop_all() {
  local name p
  for name in "${!PID[@]}"; do kill -TERM "${PID[$name]}" 2>/dev/null; done
  for _ in $(seq 50); do
    local alive=0
    for name in "${!PID[@]}"; do kill -0 "${PID[$name]}" 2>/dev/null && alive=1; done
    [ $alive = 0 ] && break
    sleep 0.1
  done
  for name in "${!PID[@]}"; do
    p=${PID[$name]}
    if kill -0 "$p" 2>/dev/null; then echo "-- $name (pid $p) did not stop on SIGTERM: SIGKILL" >&2; kill -KILL "$p" 2>/dev/null; fi
  done
  wait 2>/dev/null
}
cleanup() {
  stop_all
  if [ "$failures" -gt 0 ] || [ -n "${KEEP_WORK:-}" ]; then
    echo "-- logs kept in $WORK" >&2
    for f in "$WORK"/*.log; do [ -f "$f" ] && { echo "---- tail $f" >&2; tail -n 15 "$f" >&2; }; done
  else
    rm -rf "$WORK"
  fi
}
trap cleanup EXIT
trap 'fail "interrupted"; exit 1' INT TERM
# A watchdog: the whole test is bounded.
(
  trap 'kill "$sleeper" 2>/dev/null; exit 0' TERM
  sleep "$LIMIT" &
  sleeper=$!
  wait "$sleeper"
  echo "FAIL: live_queries.sh still running after $LIMIT s" >&2
  kill -TERM $$
) &
WATCHDOG=$!
PID[watchdog]=$WATCHDOG

# A loopback port free for both TCP and UDP at the time of asking.
free_port() {
  python3 -c '
import socket
while True:
    t = socket.socket(); t.bind(("127.0.0.1", 0)); p = t.getsockname()[1]
    u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        u.bind(("127.0.0.1", p))
    except OSError:
        continue
    print(p); break'
}

# start NAME LOGFILE COMMAND...: runs it in the background, remembers its pid.
start() {
  local name=$1 logf=$2; shift 2
  "$@" >"$logf" 2>&1 &
  PID[$name]=$!
}
# wait_for SECONDS DESCRIPTION COMMAND...: polls every 0.2 s.
wait_for() {
  local limit=$1 what=$2; shift 2
  local end=$((SECONDS + limit))
  while [ $SECONDS -lt $end ]; do
    "$@" && return 0
    sleep 0.2
  done
  fail "$what (waited $limit s)"
  return 1
}

# ---- the cluster --------------------------------------------------------
export BZZZ_ADMIN_TOKEN=$TOKEN
"$BZZZ" cluster init --data-dir "$WORK/n0" --node-name n0 >"$WORK/init.log" 2>&1 || { fail "bzzz cluster init"; exit 1; }
join_token() {
  "$BZZZ" cluster token create --data-dir "$WORK/n0" --role "$1" --uses 10 --ttl 1h 2>&1 | grep -oE 'bzzz-join-1\.[^ ]+' | head -1
}
NODE_TOKEN=$(join_token admin-capable)
BOOT_TOKEN=$(join_token bootstrap)
[ -n "$NODE_TOKEN" ] && [ -n "$BOOT_TOKEN" ] || { fail "bzzz cluster token create printed no token"; exit 1; }
USER_HASH=$(printf %s "$USER_TOKEN" | "$BZZZ" token hash 2>/dev/null | tail -1)
[[ $USER_HASH == hmac-sha256:* ]] || fail "bzzz token hash printed no hash"

# Health checks every second: the SLI panel's rate() needs a check run
# between two scrapes of this 10-second window (at the default 10 s it
# depended on when the nodes happened to start).
FAST=(--set p2p.presence_interval=300ms --set p2p.peer_expiry=3s --set p2p.max_peer_requests_per_sec=-1
      --set operations.health_check_interval=1s)
BOOT_UDP=$(free_port)
BOOT_HTTP=$(free_port)
start boot "$WORK/boot.log" "$BZZZ" dht-bootstrap --port "$BOOT_UDP" --data-dir "$WORK/boot" --join "$BOOT_TOKEN" \
  --http-listen "127.0.0.1:$BOOT_HTTP" "${FAST[@]}"
declare -a HTTP
for i in 0 1 2; do
  HTTP[$i]=$(free_port)
  # Replication factor 2 of 3 nodes: one node holds no replica, so its gets
  # are cache lookups (the cache panel has data).
  args=(serve --data-dir "$WORK/n$i" --node-name "n$i" --http-listen "127.0.0.1:${HTTP[$i]}" --p2p-listen 127.0.0.1:0
    --bootstrap "127.0.0.1:$BOOT_UDP" "${FAST[@]}" --set dht.provider_refresh=2s --set dht.replication_factor=2)
  [ $i -gt 0 ] && args+=(--join "$NODE_TOKEN")
  [ $i = 1 ] && [ -n "$USER_HASH" ] &&
    args+=(--set "security.api_tokens=[{name: deploy-live-user, token_hash: \"$USER_HASH\", roles: [user]}]")
  start "n$i" "$WORK/n$i.log" "$BZZZ" "${args[@]}"
done
url() { echo "http://127.0.0.1:${HTTP[$1]}"; }
healthy_http() { curl -sf -o /dev/null --max-time 1 "$1/health/live"; }
for i in 0 1 2; do wait_for 20 "node n$i never served /health/live" healthy_http "$(url $i)" || exit 1; done
wait_for 10 "the bootstrap node never served /health/live" healthy_http "http://127.0.0.1:$BOOT_HTTP" || exit 1
log "cluster up: n0 $(url 0), n1 $(url 1), n2 $(url 2), bootstrap udp $BOOT_UDP http $BOOT_HTTP"

# ---- Prometheus with the repository's rules --------------------------------
PROM_PORT=$(free_port)
PROM=http://127.0.0.1:$PROM_PORT
cat >"$WORK/prometheus.yml" <<EOF
global:
  scrape_interval: 1s
  scrape_timeout: 900ms
  evaluation_interval: 1s
rule_files:
  - $RULES
scrape_configs:
  - job_name: bzzz
    static_configs:
      - targets: ['127.0.0.1:${HTTP[0]}', '127.0.0.1:${HTTP[1]}', '127.0.0.1:${HTTP[2]}']
        labels: {role: node}
      - targets: ['127.0.0.1:$BOOT_HTTP']
        labels: {role: bootstrap}
EOF
start prometheus "$WORK/prometheus.log" "$PROMETHEUS" --config.file="$WORK/prometheus.yml" \
  --storage.tsdb.path="$WORK/tsdb" --web.listen-address="127.0.0.1:$PROM_PORT"
# query EXPR: prints the /api/v1/query answer (JSON).
query() { curl -s --max-time 5 -G --data-urlencode "query=$1" "$PROM/api/v1/query"; }
all_up() { [ "$(query 'count(up{job="bzzz"} == 1)' | jq -r '.data.result[0].value[1] // 0' 2>/dev/null)" = 4 ]; }
wait_for 30 "Prometheus never saw the four targets up" all_up || exit 1
log "Prometheus $PROM scrapes all four targets"

# ---- traffic, after the first scrapes so that rate() sees it ------------------
export BZZZ_TOKEN=$TOKEN
cli() { "$BZZZ" "$@" >>"$WORK/cli.log" 2>&1 || fail "bzzz $* failed (see cli.log)"; }
ADDR='ucxl://agent1:developer@deploy:live/*^/notes.md'
cli ucxl put --url "$(url 0)" "$ADDR" --content "deploy live test"
for i in 1 2 1 2 0; do cli ucxl get --url "$(url $i)" "$ADDR"; done
"$BZZZ" ucxl get --url "$(url 2)" 'ucxl://agent1:developer@deploy:live/*^/missing.md' >>"$WORK/cli.log" 2>&1  # not found
for i in 0 1; do cli task submit --url "$(url $i)" -e builtin -i '{"op":"echo","value":1}' --wait; done
cli test-dht-operations --url "$(url 1)"
curl -s -o /dev/null "$(url 0)/admin/status"                                             # 401
curl -s -o /dev/null -H "Authorization: Bearer $USER_TOKEN" "$(url 1)/admin/status"        # 403
curl -s -o /dev/null -H "Authorization: Bearer $TOKEN" "http://127.0.0.1:$BOOT_HTTP/api/v1/dht/replication"  # 503
code403=$(curl -s -o /dev/null -w '%{http_code}' -H "Authorization: Bearer $USER_TOKEN" "$(url 1)/admin/status")
[ "$code403" = 403 ] || fail "the user-role token got $code403 on /admin/status, not 403"
# Wait until the replication factor is measured and the traffic scraped.
measured() { [ "$(query 'count(bzzz_dht_replication_factor)' | jq -r '.data.result[0].value[1] // 0')" -ge 1 ]; }
wait_for 15 "no node measured bzzz_dht_replication_factor" measured
sleep 3
log "traffic made and scraped"

# ---- every dashboard query --------------------------------------------------
# Grafana's variables are replaced as a dashboard showing every instance
# would use them; label_values(SELECTOR, LABEL) variables must find a value.
# A query fails when Prometheus refuses it or when it has no sample that is
# not NaN, unless its panel is in ALLOWED_EMPTY.
allowed_json=$(for k in "${!ALLOWED_EMPTY[@]}"; do printf '%s\t%s\n' "$k" "${ALLOWED_EMPTY[$k]}"; done |
  jq -R -s 'split("\n") | map(select(. != "") | split("\t") | {(.[0]): .[1]}) | add // {}')
python3 - "$PROM" "$DASH_DIR" "$allowed_json" <<'PY' || failures=$((failures + $?))
import glob, json, os, re, sys, urllib.parse, urllib.request

prom, dash_dir, allowed = sys.argv[1], sys.argv[2], json.loads(sys.argv[3])
VARS = [("$__rate_interval", "1m"), ("$__range", "1m"), ("$__interval", "1s"),
        ("${job}", "bzzz"), ("$job", "bzzz"), ("${instance}", ".*"), ("$instance", ".*")]
failures = 0

def fail(msg):
    global failures
    failures += 1
    print("FAIL: " + msg, file=sys.stderr)

def subst(expr):
    for var, value in VARS:
        expr = expr.replace(var, value)
    return expr

def query(expr):
    url = prom + "/api/v1/query?" + urllib.parse.urlencode({"query": expr})
    try:
        with urllib.request.urlopen(url, timeout=5) as r:
            return json.load(r)
    except urllib.error.HTTPError as e:
        return json.load(e)

def samples(answer):
    data = answer.get("data", {})
    if data.get("resultType") == "vector":
        return [r["value"][1] for r in data["result"]]
    if data.get("resultType") == "scalar":
        return [data["result"][1]]
    return []

queries = empties = 0
seen_titles = set()
for path in sorted(glob.glob(os.path.join(dash_dir, "*.json"))):
    dash = os.path.basename(path)[:-5]
    board = json.load(open(path))
    for panel in board["panels"]:
        if panel["type"] == "row":
            continue
        key = dash + "/" + panel["title"]
        seen_titles.add(key)
        for target in panel.get("targets", []):
            queries += 1
            where = '%s / "%s" (%s)' % (dash, panel["title"], target["refId"])
            expr = subst(target["expr"])
            if "$" in expr:
                fail("%s: a Grafana variable this test does not know: %s" % (where, expr))
                continue
            answer = query(expr)
            if answer.get("status") != "success":
                fail("%s: the query fails: %s -- %s" % (where, answer.get("error", answer), expr))
            elif not [v for v in samples(answer) if v != "NaN"]:
                if key in allowed:
                    empties += 1
                    print('-- allowed empty: %s: %s' % (where, allowed[key]))
                else:
                    fail("%s: no data (no series, or only NaN) -- %s" % (where, expr))
    for var in board["templating"]["list"]:
        if var["type"] != "query":
            continue
        definition = var["query"]["query"] if isinstance(var["query"], dict) else var["query"]
        m = re.fullmatch(r"label_values\((.*),\s*([a-z_]+)\)", definition)
        if not m:
            fail("%s: variable $%s is not label_values(...): %s" % (dash, var["name"], definition))
            continue
        answer = query(subst(m.group(1)))
        values = [r["metric"].get(m.group(2)) for r in answer.get("data", {}).get("result", [])]
        if not [v for v in values if v]:
            fail("%s: variable $%s finds no value: %s" % (dash, var["name"], definition))
for key in allowed:
    if key not in seen_titles:
        fail("ALLOWED_EMPTY names no panel: " + key)
if failures == 0:
    print("ok: %d dashboard queries evaluated (%d allowed empty, each with its reason), variables resolve" % (queries, empties))
sys.exit(min(failures, 100))
PY

# ---- the rules as Prometheus loaded them -------------------------------------
rules_ok() {
  local r
  r=$(curl -s --max-time 5 "$PROM/api/v1/rules")
  [ "$(jq '[.data.groups[].rules[] | select(.health != "ok")] | length' <<<"$r")" = 0 ] &&
    [ "$(jq '[.data.groups[].rules[]] | length' <<<"$r")" -gt 0 ]
}
for _ in $(seq 25); do rules_ok && break; sleep 0.2; done  # every rule evaluated once at least
RULES_JSON=$(curl -s --max-time 5 "$PROM/api/v1/rules")
unhealthy=$(jq -r '.data.groups[].rules[] | select(.health != "ok") | "rule \(.name): health \(.health): \(.lastError)"' \
  <<<"$RULES_JSON")
[ -z "$unhealthy" ] || while read -r line; do fail "$line"; done <<<"$unhealthy"
loaded=$(jq '[.data.groups[].rules[] | select(.type == "alerting")] | length' <<<"$RULES_JSON")
in_file=$(grep -cE '^[[:space:]]*- alert:' "$RULES")
if [ "$loaded" != "$in_file" ]; then
  fail "Prometheus loaded $loaded alerting rules, alerts.yml has $in_file"
elif [ -z "$unhealthy" ]; then
  ok "$loaded alerting rules and $(jq '[.data.groups[].rules[] | select(.type == "recording")] | length' <<<"$RULES_JSON") recording rules loaded, all healthy"
fi
for rec in bzzz:dht_success_rate bzzz:health_check_success_rate; do
  v=$(query "$rec" | jq -r '.data.result[0].value[1] // "none"')
  if [[ $v == none || $v == NaN ]] || ! awk -v v="$v" 'BEGIN { exit !(v > 0 && v <= 1) }'; then
    fail "recording rule $rec is $v, not a ratio in (0, 1]"
  else
    ok "$rec = $v"
  fi
done
# active ALERTNAME [INSTANCE]: the alert is pending or firing (for INSTANCE).
active() {
  curl -s --max-time 5 "$PROM/api/v1/alerts" |
    jq -e --arg a "$1" --arg i "${2:-}" \
      '[.data.alerts[] | select(.labels.alertname == $a and ($i == "" or .labels.instance == $i))] | length > 0' >/dev/null
}
for a in ServiceDown BZZZNoAdminElected BZZZMultipleAdmins; do
  active "$a" && fail "$a is active while every node runs and one admin is elected"
done
echo "-- alerts active now (informational): $(curl -s "$PROM/api/v1/alerts" | jq -c '[.data.alerts[] | {a: .labels.alertname, i: .labels.instance, s: .state}]')"

# ---- a node dies: ServiceDown; every serve node dies: BZZZNoAdminElected ------------
# The node killed first is not the admin, so that no failover runs meanwhile.
admin=$(query 'bzzz_election_state == 2' | jq -r '[.data.result[].metric.instance] | join(" ")')
victim=
for i in 2 1 0; do [[ " $admin " == *" 127.0.0.1:${HTTP[$i]} "* ]] || { victim=$i; break; }; done
[ -n "$victim" ] || { fail "every serve node reports itself admin: $admin"; exit 1; }
kill -KILL "${PID[n$victim]}" && wait "${PID[n$victim]}" 2>/dev/null
unset "PID[n$victim]"
log "killed n$victim (127.0.0.1:${HTTP[$victim]}); the admin is $admin"
wait_for 20 "ServiceDown did not turn pending for the killed node" active ServiceDown "127.0.0.1:${HTTP[$victim]}" &&
  ok "ServiceDown pending for 127.0.0.1:${HTTP[$victim]}"
for i in 0 1 2; do
  [ "$i" = "$victim" ] && continue
  active ServiceDown "127.0.0.1:${HTTP[$i]}" && fail "ServiceDown is active for n$i, which runs"
done
active BZZZNoAdminElected && fail "BZZZNoAdminElected is active while the admin runs"
for i in 0 1 2; do [ -n "${PID[n$i]:-}" ] && kill -KILL "${PID[n$i]}"; done
for i in 0 1 2; do [ -n "${PID[n$i]:-}" ] && { wait "${PID[n$i]}" 2>/dev/null; unset "PID[n$i]"; }; done
log "killed the other serve nodes: none left"
wait_for 20 "BZZZNoAdminElected did not turn pending with every serve node gone" active BZZZNoAdminElected &&
  ok "BZZZNoAdminElected pending with every serve node gone"

kill "$WATCHDOG" 2>/dev/null
unset 'PID[watchdog]'
if [ "$failures" -gt 0 ]; then
  echo "live_queries: $failures problem(s)" >&2
  exit 1
fi
log "live_queries: all checks passed"
