#!/usr/bin/env bash
# check_rules.sh [REPO_ROOT]
#
# Static checks of the monitoring assets in deploy/ (no server is started):
#   - promtool check rules, promtool test rules (every test file), promtool
#     check config, amtool check-config;
#   - Alertmanager routing by severity (amtool config routes test) and the
#     ServiceDown inhibition covering every per-instance alert;
#   - every alert the runbooks and SPEC §2 name exists, with a severity,
#     summary, description and a runbook anchor that docs/deploy.md has, and
#     has a promtool test case where it fires and one where it stays quiet;
#     every recording rule has a value test;
#   - the runbooks' broken expressions, put back into alerts.yml, make the
#     unit tests fail (so the tests test what they claim);
#   - the dashboards are valid JSON, with the expected variables and a query
#     on every panel;
#   - every metric name in the rules, tests and dashboards is registered in
#     src/.
# Exits non-zero naming every problem found.
set -uo pipefail

ROOT=${1:-$(cd "$(dirname "$0")/../.." && pwd)}
ROOT=$(cd "$ROOT" && pwd)
PROM_DIR=$ROOT/deploy/prometheus
RULES=$PROM_DIR/alerts.yml
AM_CONFIG=$ROOT/deploy/alertmanager/alertmanager.yml
DASH_DIR=$ROOT/deploy/grafana/dashboards
DEPLOY_DOC=$ROOT/docs/deploy.md
PROMTOOL=${PROMTOOL:-promtool}
AMTOOL=${AMTOOL:-amtool}

# The alerts the two runbooks and SPEC §2 name: each must exist.
REQUIRED_ALERTS=(BZZZSystemHealthCritical BZZZInsufficientPeers BZZZNoAdminElected
  BZZZDHTReplicationDegraded HighErrorRate ServiceDown AgentPoolUnhealthy
  HighResponseTime HighMemoryUsage HighAuthFailures RBACViolations)
REQUIRED_RECORDS=(bzzz:dht_success_rate)
# Alerts without an instance label (cluster-wide), which ServiceDown of one
# node must not inhibit. Every other alert must be in the inhibition rule.
CLUSTER_WIDE=" ServiceDown BZZZNoAdminElected BZZZMultipleAdmins BZZZDHTErrorBudgetBurn "
REQUIRED_DASHBOARDS=(bzzz-overview bzzz-agents-tasks bzzz-http bzzz-errors bzzz-p2p-dht-election)

failures=0
fail() { echo "FAIL: $*" >&2; failures=$((failures + 1)); }
ok() { echo "ok: $*"; }

# A missing tool skips the test (ctest SKIP_RETURN_CODE 77), or fails it
# under CI, where scripts/setup.sh has installed everything.
missing_tool() {
  echo "${CI:+FAIL: }$1 is not installed (scripts/setup.sh installs it)${CI:-: skipped}" >&2
  [ -n "${CI:-}" ] && exit 1
  exit 77
}
for tool in "$PROMTOOL" "$AMTOOL" jq; do
  command -v "$tool" >/dev/null || missing_tool "$tool"
done
WORK=$(mktemp -d "${TMPDIR:-/tmp}/bzzz-check-rules.XXXXXX")
trap 'rm -rf "$WORK"' EXIT

test_files=("$PROM_DIR"/tests/*.test.yml)
[ -e "${test_files[0]}" ] || { echo "FAIL: no promtool test files in $PROM_DIR/tests" >&2; exit 1; }

# ---- the runbooks' mistakes, put back, must fail the unit tests -----------
# Started first, in the background. Each: what it puts back | the test file
# that must catch it | a sed -E expression applied to alerts.yml. A mutant
# counts as caught only when a test assertion fails (promtool names the
# alert or expression and the time), not when the rules do not load.
mutations=(
  "no-admin alert without 'or vector(0)' (silent when every node is gone)|election|s/\(max\(bzzz_election_state\) or vector\(0\)\) < 2/max(bzzz_election_state) < 2/"
  "ServiceDown on the runbook's job name no-master-agent-loop|node|s/up\{job=\"bzzz\"\}/up{job=\"no-master-agent-loop\"}/"
  "HighErrorRate per series, not summed per node|http|s/sum by \(instance, job\) \(rate\(no_http_requests_total\{status=~\"5..\"\}\[5m\]\)\)/rate(no_http_requests_total{status=~\"5..\"}[5m])/"
  "HighResponseTime with the long polls counted|http|s/route!~\"[^\"]*\"/route!=\"\"/"
  "HighAuthFailures per reason, not summed|security|s/sum by \(instance, job\) \(rate\(no_auth_failures_total\[5m\]\)\)/rate(no_auth_failures_total[5m])/"
  "DHT success rate counting a not_found get as a failure|recording|s/result=~\"success\|not_found\"/result=\"success\"/"
  "replication alert without the records_held guard|dht|s/bzzz_dht_replication_factor < 2 and bzzz_dht_records_held > 0/bzzz_dht_replication_factor < 2/"
)
i=0
for m in "${mutations[@]}"; do
  i=$((i + 1))
  rest=${m#*|}
  file=${rest%%|*}
  dir=$WORK/mut$i
  mkdir -p "$dir/tests"
  sed -E "${rest#*|}" "$RULES" >"$dir/alerts.yml"
  cp "$PROM_DIR/tests/$file.test.yml" "$dir/tests/" 2>/dev/null
  if ! cmp -s "$RULES" "$dir/alerts.yml" && [ -f "$dir/tests/$file.test.yml" ]; then
    ( "$PROMTOOL" test rules "$dir/tests/$file.test.yml" >"$dir/out" 2>&1; echo $? >"$dir/rc" ) &
  fi
done

# ---- promtool and amtool --------------------------------------------------
# The unit tests run in the background too; their result is read at the end.
( "$PROMTOOL" test rules "${test_files[@]}" >"$WORK/unit.out" 2>&1; echo $? >"$WORK/unit.rc" ) &
if out=$("$PROMTOOL" check rules "$RULES" 2>&1); then ok "promtool check rules"; else fail "promtool check rules: $out"; fi
if out=$("$PROMTOOL" check config "$PROM_DIR/prometheus.yml" 2>&1); then ok "promtool check config"; else fail "promtool check config: $out"; fi
grep -Eq '^[[:space:]]*- job_name: bzzz[[:space:]]*$' "$PROM_DIR/prometheus.yml" ||
  fail "prometheus.yml has no scrape job named bzzz (ServiceDown and the dashboards expect it)"
grep -Eq '^[[:space:]]*- alerts\.yml[[:space:]]*$' "$PROM_DIR/prometheus.yml" || fail "prometheus.yml does not load alerts.yml"
if out=$("$AMTOOL" check-config "$AM_CONFIG" 2>&1); then ok "amtool check-config"; else fail "amtool check-config: $out"; fi
for sev in critical warning; do
  got=$("$AMTOOL" config routes test --config.file="$AM_CONFIG" severity=$sev alertname=X 2>/dev/null)
  if [ "$got" = "bzzz-$sev" ]; then ok "severity=$sev routes to bzzz-$sev"; else fail "severity=$sev routes to '$got', not bzzz-$sev"; fi
done

# ---- the rules: names, labels, annotations, runbook anchors ---------------
# One line per rule: kind name severity summary? description? anchor.
rules=$(awk '
  function flush() { if (kind != "") print kind, name, (sev == "" ? "-" : sev), summ, desc, (anchor == "" ? "-" : anchor) }
  /^[[:space:]]*- (alert|record):/ {
    flush(); kind = ($0 ~ /- alert:/) ? "alert" : "record"; name = $NF; sev = ""; summ = 0; desc = 0; anchor = ""; next }
  /^[[:space:]]+severity: (critical|warning)[[:space:]]*$/ { sev = $2 }
  /^[[:space:]]+summary: / { summ = 1 }
  /^[[:space:]]+description: / { desc = 1 }
  /^[[:space:]]+runbook: "docs\/deploy\.md#[a-z0-9-]+"[[:space:]]*$/ { anchor = $2; gsub(/"|docs\/deploy\.md#/, "", anchor) }
  END { flush() }' "$RULES")
alerts=() records=()
while read -r kind name sev summ desc anchor; do
  if [ "$kind" = record ]; then records+=("$name"); continue; fi
  alerts+=("$name")
  [ "$sev" != - ] || fail "$name: no severity label critical|warning"
  [ "$summ" = 1 ] || fail "$name: no summary annotation"
  [ "$desc" = 1 ] || fail "$name: no description annotation"
  lower=${name,,}
  [ "$anchor" = "$lower" ] || fail "$name: its runbook annotation is not \"docs/deploy.md#$lower\""
done <<<"$rules"
[ ${#alerts[@]} -gt 0 ] || fail "no alert found in $RULES"
all_alerts=" ${alerts[*]} "
for a in "${REQUIRED_ALERTS[@]}"; do [[ $all_alerts == *" $a "* ]] || fail "alert $a (named by the runbooks) is not in alerts.yml"; done
for r in "${REQUIRED_RECORDS[@]}"; do [[ " ${records[*]} " == *" $r "* ]] || fail "recording rule $r is not in alerts.yml"; done
headings=$'\n'$(grep -E '^#+ ' "$DEPLOY_DOC" 2>/dev/null | sed -E 's/^#+ //; s/[[:space:]]+$//')$'\n'
for a in "${alerts[@]}"; do
  [[ $headings == *$'\n'"$a"$'\n'* ]] || fail "$a: docs/deploy.md has no heading '$a' (the runbook anchor)"
done

# ---- promtool test coverage: a firing and a quiet case per alert ----------
coverage=$'\n'$(awk '
  /^[[:space:]]*- alertname:/ { name = $NF; next }
  /^[[:space:]]*exp_alerts:[[:space:]]*\[\][[:space:]]*$/ { if (name != "") print name " quiet"; next }
  /^[[:space:]]*exp_alerts:[[:space:]]*$/ { if (name != "") print name " fires"; next }
  /^[[:space:]]*- expr:/ { print "expr " $NF }' "${test_files[@]}" | sort -u)$'\n'
for a in $(printf '%s\n' "${alerts[@]}" "${REQUIRED_ALERTS[@]}" | sort -u); do
  [[ $coverage == *$'\n'"$a fires"$'\n'* ]] || fail "$a: no promtool test case where it fires (exp_alerts listing it)"
  [[ $coverage == *$'\n'"$a quiet"$'\n'* ]] || fail "$a: no promtool test case where it stays quiet (exp_alerts: [])"
done
for r in "${records[@]}"; do
  [[ $coverage == *$'\n'"expr $r"$'\n'* ]] || fail "recording rule $r: no promql_expr_test checks its value"
done
ok "test coverage: ${#alerts[@]} alerts fire and stay quiet in tests, ${#records[@]} recording rules checked"

# ---- inhibition: ServiceDown of an instance silences its symptoms --------
inhibit=$(grep -E '^[[:space:]]*- alertname=~"' "$AM_CONFIG" | head -1)
grep -Eq '^[[:space:]]*- alertname="ServiceDown"' "$AM_CONFIG" || fail "alertmanager.yml: no inhibition sourced from ServiceDown"
grep -Eq '^[[:space:]]*equal: \[instance, job\]' "$AM_CONFIG" || fail "alertmanager.yml: the inhibition does not require the same instance and job"
for a in "${alerts[@]}"; do
  [[ $CLUSTER_WIDE == *" $a "* ]] && continue
  [[ $inhibit =~ [\"\|]$a[\"\|] ]] || fail "$a is per instance but ServiceDown does not inhibit it (alertmanager.yml)"
done

# ---- dashboards -----------------------------------------------------------
for d in "${REQUIRED_DASHBOARDS[@]}"; do
  [ -f "$DASH_DIR/$d.json" ] || fail "dashboard $d.json is missing"
done
for f in "$DASH_DIR"/*.json; do
  problems=$(jq -r --arg uid "$(basename "$f" .json)" '
      (if .uid != $uid then "uid is \(.uid), not \($uid)" else empty end),
      ( ["datasource", "job", "instance"] - [.templating.list[].name] | .[] | "no $\(.) variable" ),
      ( .panels[] | select(.type != "row") |
        select((.targets // []) | length == 0 or any(.[]; (.expr // "") == "")) | "panel \"\(.title)\" has no query" ),
      ( .panels[] | select(.type != "row") | select(.datasource.uid != "${datasource}") |
        "panel \"\(.title)\" is not on the $datasource variable" ),
      ( [.panels[].id] | group_by(.) | map(select(length > 1)[0]) | .[] | "duplicate panel id \(.)" ),
      ( [.panels[] | select(.type != "row") | .title] | group_by(.) | map(select(length > 1)[0]) | .[] |
        "duplicate panel title \"\(.)\"" )' "$f" 2>&1) ||
    problems="not valid JSON: $problems"
  [ -z "$problems" ] || while read -r p; do fail "$(basename "$f"): $p"; done <<<"$problems"
done
ok "dashboards checked: $(ls "$DASH_DIR"/*.json | wc -l) files"
# The JSON is generated: what is committed is what generate.py writes.
mkdir -p "$WORK/dashboards"
if python3 "$ROOT/deploy/grafana/generate.py" "$WORK/dashboards" >/dev/null 2>"$WORK/generate.err"; then
  diff -rq "$WORK/dashboards" "$DASH_DIR" >"$WORK/generate.diff" ||
    fail "deploy/grafana/dashboards differs from what deploy/grafana/generate.py writes: $(tr '\n' ' ' <"$WORK/generate.diff")"
else
  fail "deploy/grafana/generate.py failed: $(cat "$WORK/generate.err")"
fi
for f in "$ROOT/deploy/grafana/provisioning/datasources/prometheus.yml" "$ROOT/deploy/grafana/provisioning/dashboards/bzzz.yml"; do
  [ -f "$f" ] && grep -q '^apiVersion: 1' "$f" || fail "$f is missing or not Grafana provisioning (apiVersion: 1)"
done

# ---- metric names: only what the source registers ------------------------
grep -rhoE '"(bzzz|no|process)_[a-z0-9_]+"' "$ROOT/src" | tr -d '"' | sort -u >"$WORK/known"
[ "$(wc -l <"$WORK/known")" -gt 20 ] || fail "found only $(wc -l <"$WORK/known") metric names in src/"
{
  grep -hvE '^[[:space:]]*#' "$RULES" "${test_files[@]}"
  for f in "$DASH_DIR"/*.json; do  # a file that is not JSON failed above
    jq -r '.panels[].targets[]?.expr, (.templating.list[].query | if type == "object" then .query else . end)' "$f" 2>/dev/null
  done
} | grep -oE '\b(bzzz|no|process)_[a-z0-9_]+' | sort -u >"$WORK/used"
unknown=$(awk 'NR == FNR { known[$1] = 1; next }
  { base = $1; sub(/_(bucket|sum|count)$/, "", base); if (!($1 in known) && !(base in known)) print $1 }' \
  "$WORK/known" "$WORK/used")
for m in $unknown; do fail "metric $m is used in deploy/ but registered nowhere in src/"; done
ok "metric names: $(wc -l <"$WORK/used") used in deploy/, checked against $(wc -l <"$WORK/known") in src/"

# ---- the unit tests' and the mutations' results ------------------------------
wait
if [ "$(cat "$WORK/unit.rc" 2>/dev/null)" = 0 ]; then
  ok "promtool test rules: ${#test_files[@]} files"
else
  fail "promtool test rules: $(cat "$WORK/unit.out" 2>/dev/null)"
fi
i=0
for m in "${mutations[@]}"; do
  i=$((i + 1))
  what=${m%%|*}
  dir=$WORK/mut$i
  if cmp -s "$RULES" "$dir/alerts.yml"; then
    fail "mutation '$what' did not change alerts.yml (update the check)"
  elif [ ! -f "$dir/rc" ]; then
    fail "mutation '$what': its test file is missing"
  elif [ "$(cat "$dir/rc")" = 0 ]; then
    fail "the unit tests still pass with this runbook mistake put back: $what"
  elif ! grep -Eq '^[[:space:]]+(alertname|expr): .*time: ' "$dir/out"; then
    fail "mutation '$what' broke the rules instead of their meaning (update the check): $(head -c 300 "$dir/out")"
  else
    ok "unit tests catch: $what"
  fi
done

if [ "$failures" -gt 0 ]; then
  echo "check_rules: $failures problem(s)" >&2
  exit 1
fi
echo "check_rules: all checks passed"
