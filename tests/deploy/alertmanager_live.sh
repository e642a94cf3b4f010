#!/usr/bin/env bash
# alertmanager_live.sh [REPO_ROOT]
#
# deploy/alertmanager/alertmanager.yml in a real Alertmanager on loopback
# (gossip clustering off): alerts posted through its API must be routed by
# severity and inhibited as the configuration says:
#   - ServiceDown of n1 suppresses the other alerts of n1
#     (HighMemoryUsage, BZZZSystemHealthCritical);
#   - HighMemoryUsage of n2 stays active (another instance);
#   - BZZZNoAdminElected (no instance label) stays active;
#   - critical alerts are grouped under the receiver bzzz-critical,
#     warnings under bzzz-warning.
# The webhook URLs are pointed at a free loopback port with no listener (no
# notification reaches anything; the test ends before group_wait anyway).
# Stops what it started by pid on exit; about 3 s.
set -uo pipefail

ROOT=${1:-$(cd "$(dirname "$0")/../.." && pwd)}
ROOT=$(cd "$ROOT" && pwd)
# A missing tool skips the test (ctest SKIP_RETURN_CODE 77), or fails it
# under CI, where scripts/setup.sh has installed everything.
missing_tool() {
  echo "${CI:+FAIL: }$1 is not installed (scripts/setup.sh installs it)${CI:-: skipped}" >&2
  [ -n "${CI:-}" ] && exit 1
  exit 77
}
AM=${ALERTMANAGER:-}
if [ -z "$AM" ]; then
  for c in prometheus-alertmanager alertmanager; do command -v "$c" >/dev/null && { AM=$c; break; }; done
fi
[ -n "$AM" ] || missing_tool prometheus-alertmanager
for tool in curl jq python3; do
  command -v "$tool" >/dev/null || missing_tool "$tool"
done

WORK=$(mktemp -d "${TMPDIR:-/tmp}/bzzz-deploy-am.XXXXXX")
AM_PID=
failures=0
fail() { echo "FAIL: $*" >&2; failures=$((failures + 1)); }
ok() { echo "ok: $*"; }
cleanup() {
  if [ -n "$AM_PID" ]; then
    kill -TERM "$AM_PID" 2>/dev/null
    for _ in $(seq 30); do kill -0 "$AM_PID" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$AM_PID" 2>/dev/null
    wait "$AM_PID" 2>/dev/null
  fi
  if [ "$failures" -gt 0 ]; then tail -n 20 "$WORK/alertmanager.log" >&2; fi
  rm -rf "$WORK"
}
trap cleanup EXIT

free_port() { python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
PORT=$(free_port)
SINK=$(free_port)
sed -E "s#http://127\.0\.0\.1:5001/#http://127.0.0.1:$SINK/#" "$ROOT/deploy/alertmanager/alertmanager.yml" >"$WORK/alertmanager.yml"
grep -q "127.0.0.1:$SINK/alerts/critical" "$WORK/alertmanager.yml" || { fail "the webhook URLs of alertmanager.yml are not the expected loopback examples"; exit 1; }
"$AM" --config.file="$WORK/alertmanager.yml" --storage.path="$WORK/data" \
  --web.listen-address="127.0.0.1:$PORT" --cluster.listen-address= >"$WORK/alertmanager.log" 2>&1 &
AM_PID=$!
API=http://127.0.0.1:$PORT/api/v2
for _ in $(seq 100); do curl -sf -o /dev/null --max-time 1 "http://127.0.0.1:$PORT/-/ready" && break; sleep 0.1; done
curl -sf -o /dev/null --max-time 1 "http://127.0.0.1:$PORT/-/ready" || { fail "alertmanager never became ready"; exit 1; }

alert() {  # alertname severity [instance]
  local labels
  labels=$(jq -nc --arg a "$1" --arg s "$2" --arg i "${3:-}" \
    '{alertname: $a, severity: $s, cluster: "bzzz"} + (if $i == "" then {} else {instance: $i, job: "bzzz"} end)')
  echo "{\"labels\": $labels, \"annotations\": {\"summary\": \"test\"}}"
}
payload="[$(alert ServiceDown critical n1:8080), $(alert HighMemoryUsage warning n1:8080),
  $(alert BZZZSystemHealthCritical critical n1:8080), $(alert HighMemoryUsage warning n2:8080),
  $(alert BZZZNoAdminElected critical)]"
code=$(curl -s -o "$WORK/post.out" -w '%{http_code}' -H 'Content-Type: application/json' -X POST --data "$payload" "$API/alerts")
[ "$code" = 200 ] || { fail "POST /api/v2/alerts answered $code: $(cat "$WORK/post.out")"; exit 1; }

# state ALERTNAME INSTANCE: active, suppressed, or none.
state() {
  jq -r --arg a "$1" --arg i "$2" \
    '[.[] | select(.labels.alertname == $a and (.labels.instance // "") == $i) | .status.state] | first // "none"' \
    "$WORK/alerts.json"
}
expect=("ServiceDown n1:8080 active" "HighMemoryUsage n1:8080 suppressed" "BZZZSystemHealthCritical n1:8080 suppressed"
  "HighMemoryUsage n2:8080 active" "BZZZNoAdminElected - active")
for _ in $(seq 50); do
  curl -s --max-time 2 "$API/alerts" >"$WORK/alerts.json"
  good=1
  for e in "${expect[@]}"; do
    read -r a i s <<<"$e"; [ "$i" = - ] && i=
    [ "$(state "$a" "$i")" = "$s" ] || good=0
  done
  [ $good = 1 ] && break
  sleep 0.1
done
for e in "${expect[@]}"; do
  read -r a i s <<<"$e"; [ "$i" = - ] && i=
  got=$(state "$a" "$i")
  if [ "$got" = "$s" ]; then ok "$a ${i:-(no instance)}: $s"; else fail "$a ${i:-(no instance)}: $got, expected $s"; fi
done

# Routing: every critical alert in a bzzz-critical group, every warning in
# a bzzz-warning group.
curl -s --max-time 2 "$API/alerts/groups" >"$WORK/groups.json"
misrouted=$(jq -r '.[] | .receiver.name as $r | .alerts[] | select("bzzz-" + .labels.severity != $r) |
  "\(.labels.alertname) (\(.labels.severity)) went to \($r)"' "$WORK/groups.json")
routed=$(jq '[.[].alerts[]] | length' "$WORK/groups.json")
if [ -n "$misrouted" ]; then
  fail "misrouted: $misrouted"
elif [ "${routed:-0}" -lt 3 ]; then
  fail "only ${routed:-0} alerts in /api/v2/alerts/groups"
else
  ok "$routed alerts routed by severity ($(jq -r '[.[].receiver.name] | unique | join(", ")' "$WORK/groups.json"))"
fi

if [ "$failures" -gt 0 ]; then
  echo "alertmanager_live: $failures problem(s)" >&2
  exit 1
fi
echo "alertmanager_live: all checks passed"
