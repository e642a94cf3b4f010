#!/bin/sh
# The one-shot service bzzz-init of deploy/compose/compose.yml.
#
# First run: founds the cluster offline in bzzz-1's data directory
# (/app/data here). Every run: signs fresh join tokens with that directory's
# cluster key, valid 24 h, and leaves them in the volume join-tokens
# (/run/bzzz): node.token (admin-capable, for bzzz-2 and bzzz-3) and
# bootstrap.token (for dht-bootstrap). A node that already holds a
# credential ignores its token, so re-running this is harmless.
set -eu
umask 077
DATA=/app/data
OUT=/run/bzzz

if [ -s "$DATA/cluster/membership.json" ]; then
  echo "bzzz-init: $DATA already belongs to a cluster"
else
  /app/bzzz cluster init --data-dir "$DATA" --node-name bzzz-1 >/dev/null
  echo "bzzz-init: founded a cluster in $DATA (bzzz-1)"
fi

/app/bzzz cluster token create --data-dir "$DATA" --role admin-capable --uses 2 --ttl 24h >"$OUT/node.token.tmp"
mv "$OUT/node.token.tmp" "$OUT/node.token"
/app/bzzz cluster token create --data-dir "$DATA" --role bootstrap --uses 1 --ttl 24h >"$OUT/bootstrap.token.tmp"
mv "$OUT/bootstrap.token.tmp" "$OUT/bootstrap.token"
echo "bzzz-init: join tokens written to $OUT (valid 24 h)"
