#!/bin/sh
# Founds the bzzz cluster of deploy/swarm/bzzz-stack.yml and creates its
# join-token secrets. Run it once, before the first `docker stack deploy`,
# on the swarm manager that is to run the service bzzz-founder:
#
#   sh deploy/swarm/init-cluster.sh [IMAGE]
#
# 1. founds the cluster offline in the local volume bzzz-v2_founder-data
#    (skipped when that volume already belongs to a cluster);
# 2. labels this node bzzz.founder=true (the founder's placement);
# 3. signs two join tokens with the cluster key of that volume and stores
#    them as the secrets bzzz_join_token_agent (admin-capable,
#    BZZZ_AGENT_TOKEN_USES uses, default 20) and bzzz_join_token_bootstrap
#    (3 uses), valid BZZZ_JOIN_TTL (default 720h). Existing secrets are kept:
#    see docs/deploy.md#docker-swarm to rotate them.
#
# The cluster key never leaves the volume. Requires the docker CLI of a
# manager and the image (built from deploy/docker/Dockerfile).
set -eu

IMAGE=${1:-${BZZZ_IMAGE:-registry.example.com/bzzz:0.1.0}}
VOLUME=bzzz-v2_founder-data
TTL=${BZZZ_JOIN_TTL:-720h}
AGENT_USES=${BZZZ_AGENT_TOKEN_USES:-20}

# bzzz ARGS...: the image's bzzz, with the founder's data directory at /app/data.
bzzz() {
  docker run --rm -v "$VOLUME:/app/data" "$IMAGE" "$@"
}

docker volume create "$VOLUME" >/dev/null
if docker run --rm -v "$VOLUME:/app/data" --entrypoint /bin/sh "$IMAGE" -c 'test -s /app/data/cluster/membership.json'; then
  echo "init-cluster: $VOLUME already belongs to a cluster"
else
  bzzz cluster init --data-dir /app/data --node-name bzzz-founder >/dev/null
  echo "init-cluster: founded a cluster in $VOLUME"
fi

docker node update --label-add bzzz.founder=true "$(docker info --format '{{.Swarm.NodeID}}')" >/dev/null
echo "init-cluster: this node runs bzzz-founder (label bzzz.founder=true)"

if docker secret inspect bzzz_join_token_agent >/dev/null 2>&1; then
  echo "init-cluster: secret bzzz_join_token_agent exists, kept"
else
  bzzz cluster token create --data-dir /app/data --role admin-capable --uses "$AGENT_USES" --ttl "$TTL" |
    docker secret create bzzz_join_token_agent - >/dev/null
  echo "init-cluster: created secret bzzz_join_token_agent ($AGENT_USES uses, valid $TTL)"
fi
if docker secret inspect bzzz_join_token_bootstrap >/dev/null 2>&1; then
  echo "init-cluster: secret bzzz_join_token_bootstrap exists, kept"
else
  bzzz cluster token create --data-dir /app/data --role bootstrap --uses 3 --ttl "$TTL" |
    docker secret create bzzz_join_token_bootstrap - >/dev/null
  echo "init-cluster: created secret bzzz_join_token_bootstrap (3 uses, valid $TTL)"
fi
