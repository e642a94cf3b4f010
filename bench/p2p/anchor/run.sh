#!/usr/bin/env bash
# js-libp2p anchor benchmarks (gossipsub + kad-dht) on 127.0.0.1 only.
#
#   bench/p2p/anchor/run.sh            # both
#   ANCHOR_ONLY=pubsub bench/p2p/anchor/run.sh   (or dht)
#
# stdout: one JSON line per result; stderr: progress.
# node_modules never goes into the source tree: package.json/package-lock.json
# and the .mjs files are copied to $ANCHOR_DIR (default /tmp/bzzz-anchor) and
# `npm ci` runs there (only when the lock file changed). Every step is under
# `timeout`; each node process also runs under its own `timeout`.
set -uo pipefail

SRC="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ANCHOR_DIR="${ANCHOR_DIR:-/tmp/bzzz-anchor}"
ONLY="${ANCHOR_ONLY:-all}"

log() { echo "[anchor] $*" >&2; }

command -v node >/dev/null || { log "node not found (need Node >= 20)"; exit 1; }
command -v npm >/dev/null || { log "npm not found"; exit 1; }
NODE_MAJOR="$(node -p 'process.versions.node.split(".")[0]')"
if [ "$NODE_MAJOR" -lt 20 ]; then log "Node $(node --version) too old, need >= 20"; exit 1; fi

mkdir -p "$ANCHOR_DIR"
STAMP="$ANCHOR_DIR/node_modules/.bzzz-anchor-stamp"
WANT="$(cat "$SRC/package.json" "$SRC/package-lock.json" | sha256sum | cut -d' ' -f1)"
if [ ! -f "$STAMP" ] || [ "$(cat "$STAMP")" != "$WANT" ]; then
  log "installing js-libp2p into $ANCHOR_DIR (npm ci)"
  cp "$SRC/package.json" "$SRC/package-lock.json" "$ANCHOR_DIR/"
  # npm ci removes any existing node_modules first; output goes to stderr
  if ! (cd "$ANCHOR_DIR" && timeout -k 10 300 npm ci --no-audit --no-fund \
        --omit-lockfile-registry-resolved 1>&2); then
    log "npm ci failed"; exit 1
  fi
  echo "$WANT" > "$STAMP"
else
  log "js-libp2p already installed in $ANCHOR_DIR"
fi
# ESM ignores NODE_PATH: run the scripts next to node_modules
cp "$SRC/polyfill.mjs" "$SRC/common.mjs" "$SRC/pubsub.mjs" "$SRC/dht.mjs" "$ANCHOR_DIR/"

rc=0
cd "$ANCHOR_DIR" || exit 1
log "node $(node --version), libp2p $(node -p 'require("./node_modules/libp2p/package.json").version'), nproc $(nproc), load $(cut -d' ' -f1-3 /proc/loadavg)"
if [ "$ONLY" = all ] || [ "$ONLY" = pubsub ]; then
  log "gossipsub: 1 publisher + 2 subscriber processes"
  timeout -k 5 90 node --import ./polyfill.mjs pubsub.mjs || { log "pubsub failed (rc $?)"; rc=1; }
fi
if [ "$ONLY" = all ] || [ "$ONLY" = dht ]; then
  log "kad-dht: ${DHT_NODES:-10} nodes in ${DHT_PROCS:-${DHT_NODES:-10}} process(es)"
  timeout -k 5 140 node --import ./polyfill.mjs dht.mjs || { log "dht failed (rc $?)"; rc=1; }
fi
exit $rc
