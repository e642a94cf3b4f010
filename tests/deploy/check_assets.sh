#!/usr/bin/env bash
# check_assets.sh BZZZ_BINARY [REPO_ROOT]
#
# Static checks of the container and service assets in deploy/ (no
# container, no server): the Dockerfile and its entry point, deploy/compose,
# deploy/swarm, deploy/k8s and deploy/systemd. check_assets.py does the
# work (see its docstring and docs/deploy.md#tests): every YAML file
# parses, each deployment has the structure it promises, every bzzz
# configuration loads (bzzz config validate), the units pass
# systemd-analyze verify, and every `bzzz ...` command line in those files
# is a real subcommand with real flags (the binary's --help).
#
# Then it proves that it can fail: it copies deploy/ and docs/deploy.md,
# puts one mistake at a time into the copy (a wrong flag in the compose
# file, one in the systemd unit, an unknown configuration key, a swarm
# update that does not roll back, a probe on the wrong path, a hardening
# option that breaks the sandbox) and runs the checks on the copy: each
# mistake must be reported, naming its file.
#
# A missing tool (python3 with the yaml module, systemd-analyze, promtool)
# skips the test (exit 77) unless CI is set. About 5 s.
set -uo pipefail

BZZZ=${1:?usage: check_assets.sh BZZZ_BINARY [REPO_ROOT]}
BZZZ=$(cd "$(dirname "$BZZZ")" && pwd)/$(basename "$BZZZ")
ROOT=${2:-$(cd "$(dirname "$0")/../.." && pwd)}
ROOT=$(cd "$ROOT" && pwd)
HERE=$(cd "$(dirname "$0")" && pwd)
PROMTOOL=${PROMTOOL:-promtool}

missing_tool() {
  echo "${CI:+FAIL: }$1 is not installed (scripts/setup.sh installs it)${CI:-: skipped}" >&2
  [ -n "${CI:-}" ] && exit 1
  exit 77
}
[ -x "$BZZZ" ] || { echo "FAIL: $BZZZ is not an executable" >&2; exit 1; }
# Debian's python3 first: it has python3-yaml, and a version manager's shim
# in front of python3 costs more than the checks themselves.
PYTHON=${PYTHON:-}
for p in /usr/bin/python3 python3; do
  [ -z "$PYTHON" ] && command -v "$p" >/dev/null && "$p" -c 'import yaml' 2>/dev/null && PYTHON=$p
done
[ -n "$PYTHON" ] || missing_tool "python3 with the yaml module (package python3-yaml)"
command -v systemd-analyze >/dev/null || missing_tool "systemd-analyze (package systemd)"
command -v "$PROMTOOL" >/dev/null || missing_tool "promtool (package prometheus)"

WORK=$(mktemp -d "${TMPDIR:-/tmp}/bzzz-check-assets.XXXXXX")
trap 'rm -rf "$WORK"' EXIT
failures=0

# ---- the assets as they are --------------------------------------------------
mkdir -p "$WORK/real"
"$PYTHON" "$HERE/check_assets.py" --bzzz "$BZZZ" --root "$ROOT" --work "$WORK/real" --help-cache "$WORK/help.json" ||
  failures=$((failures + 1))

# The Prometheus configurations of compose and swarm, with the rules file
# where the containers mount it.
for f in deploy/compose/prometheus.yml deploy/swarm/prometheus.yml; do
  sed "s#/etc/prometheus/alerts.yml#$ROOT/deploy/prometheus/alerts.yml#" "$ROOT/$f" >"$WORK/prometheus.yml"
  if out=$("$PROMTOOL" check config "$WORK/prometheus.yml" 2>&1); then
    echo "ok: $f: promtool check config"
  else
    echo "FAIL: $f: promtool check config: $out" >&2
    failures=$((failures + 1))
  fi
done

# ---- mistakes put in a copy must be caught -------------------------------------
# Each: description | file (in the copy) | section of check_assets.py | sed -E
# expression | the start of the failure it must cause ("FAIL: " omitted).
mutations=(
  "a flag serve does not have|deploy/compose/compose.yml|compose|s/--p2p-listen, \"bzzz-2/--p2p-listn, \"bzzz-2/|deploy/compose/compose.yml: \`bzzz serve\` has no option --p2p-listn"
  "a subcommand that does not exist|deploy/compose/init-cluster.sh|scripts|0,/cluster token create/s//cluster tokens create/|deploy/compose/init-cluster.sh: \`bzzz cluster\` needs one of the subcommands"
  "a flag dht-bootstrap does not have|deploy/swarm/bzzz-stack.yml|swarm|0,/--listen-host, 0.0.0.0/s//--listen-address, 0.0.0.0/|deploy/swarm/bzzz-stack.yml: \`bzzz dht-bootstrap\` has no option --listen-address"
  "a flag in the Dockerfile's HEALTHCHECK|deploy/docker/Dockerfile|docker|s/health --url/health --endpoint/|deploy/docker/Dockerfile: \`bzzz health\` has no option --endpoint"
  "a flag in a Kubernetes container's args|deploy/k8s/bootstrap.yaml|k8s|s/\"--http-listen\"/\"--http-port\"/|deploy/k8s/bootstrap.yaml: \`bzzz dht-bootstrap\` has no option --http-port"
  "a flag in the k8s membership script|deploy/k8s/configmap.yaml|k8s|s/--ttl 2h --timeout-ms/--ttl 2h --timeout/|deploy/k8s/configmap.yaml: \`bzzz cluster token create\` has no option --timeout"
  "a flag in the systemd unit|deploy/systemd/bzzz.service|systemd|s/^ExecStart=(.*) --data-dir/ExecStart=\1 --datadir/|deploy/systemd/bzzz.service: \`bzzz serve\` has no option --datadir"
  "a misspelt systemd directive|deploy/systemd/bzzz.service|systemd|s/^ProtectHome=/ProtectHomes=/|deploy/systemd/bzzz.service: systemd-analyze verify"
  "a hardening option that breaks bubblewrap|deploy/systemd/bzzz.service|systemd|s/^ProtectHome=yes/ProtectHome=yes\nRestrictNamespaces=yes/|deploy/systemd/bzzz.service: RestrictNamespaces=yes breaks"
  "an unknown configuration key|deploy/swarm/bzzz.yaml|swarm|s/^  health_listen:/  health_listen_addr:/|deploy/swarm/bzzz-stack.yml (config bzzz_v2_config): bzzz config validate"
  "an environment variable bzzz does not know|deploy/compose/compose.yml|compose|s/BZZZ_JOIN_TOKEN_FILE: \/run\/bzzz\/bootstrap.token/BZZZ_JOIN_TOKEN_FILE: \/run\/bzzz\/bootstrap.token\n      BZZZ_HTTP_THREDS: \"4\"/|deploy/compose/compose.yml: service dht-bootstrap: bzzz config validate"
  "a rolling update that does not roll back|deploy/swarm/bzzz-stack.yml|swarm|s/failure_action: rollback/failure_action: continue/|deploy/swarm/bzzz-stack.yml: service bzzz-agent: update_config.failure_action must be rollback"
  "a readiness probe on the wrong path|deploy/k8s/statefulset.yaml|k8s|s#path: /health/ready#path: /healthz#|deploy/k8s/statefulset.yaml: bzzz/bzzz: readinessProbe path /healthz"
  "an HPA scaling down in steps of 3|deploy/k8s/hpa.yaml|k8s|/scaleDown:/,\$ s/value: 1/value: 3/|deploy/k8s/hpa.yaml: HPA bzzz: scale down one pod at a time"
  "an ingress without TLS|deploy/k8s/ingress.yaml|k8s|/^  tls:/,/secretName/d|deploy/k8s/ingress.yaml: Ingress bzzz: no TLS section"
  "a postgres service|deploy/compose/compose.yml|compose|s/^  prometheus:/  postgres:/|deploy/compose/compose.yml: service postgres: the PostgreSQL and Redis backends are not built"
)
# run_mutant N: makes copy N with mutation N, runs the checks on it, and
# writes "ok: ..." or "FAIL: ..." to $WORK/mutant-N.result. Two at a time.
run_mutant() {
  local n=$1 what file section expr expect copy out
  IFS='|' read -r what file section expr expect <<<"${mutations[$n]}"
  copy="$WORK/mutant-$n"
  mkdir -p "$copy/docs" "$copy/scripts" "$copy.work"
  cp -r "$ROOT/deploy" "$copy/deploy"
  cp "$ROOT/docs/deploy.md" "$copy/docs/"
  cp "$ROOT/scripts/setup.sh" "$copy/scripts/"
  cp "$ROOT/.dockerignore" "$copy/"
  sed -E -i "$expr" "$copy/$file"
  if cmp -s "$ROOT/$file" "$copy/$file"; then
    echo "FAIL: mutation \"$what\" changed nothing in $file (update the test)" >"$WORK/mutant-$n.result"
    return
  fi
  out=$("$PYTHON" "$HERE/check_assets.py" --bzzz "$BZZZ" --root "$copy" --work "$copy.work" --quick \
    --only "$section" --help-cache "$WORK/help.json" 2>&1 >/dev/null)
  if grep -qF "FAIL: $expect" <<<"$out"; then
    echo "ok: caught $what: $(grep -F "FAIL: $expect" <<<"$out" | head -1 | cut -c7-170)" >"$WORK/mutant-$n.result"
  else
    echo "FAIL: the checks missed $what in $file; they said: ${out:-nothing}" >"$WORK/mutant-$n.result"
  fi
}
for n in "${!mutations[@]}"; do
  run_mutant "$n" &
  [ $((n % 2)) = 1 ] && wait
done
wait
for n in "${!mutations[@]}"; do
  if [ ! -s "$WORK/mutant-$n.result" ]; then
    echo "FAIL: mutation $n left no result" >&2
    failures=$((failures + 1))
  elif grep -q '^FAIL' "$WORK/mutant-$n.result"; then
    cat "$WORK/mutant-$n.result" >&2
    failures=$((failures + 1))
  else
    cat "$WORK/mutant-$n.result"
  fi
done

if [ "$failures" -gt 0 ]; then
  echo "check_assets: $failures problem(s)" >&2
  exit 1
fi
echo "check_assets: all checks passed"
