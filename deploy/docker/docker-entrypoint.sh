#!/bin/sh
# Entry point of the bzzz image (deploy/docker/Dockerfile).
#
# Docker and Kubernetes hand secrets to a container as files, bzzz reads
# them from environment variables (BZZZ_JOIN_TOKEN, BZZZ_ADMIN_TOKEN,
# NO_OAUTH_CLIENT_SECRET, ...). For every variable NAME_FILE in the
# environment whose NAME starts with BZZZ_ or NO_, this script sets NAME to
# the content of that file (trailing newlines dropped) and removes NAME_FILE,
# then runs /app/bzzz with the container's arguments:
#
#   BZZZ_JOIN_TOKEN_FILE=/run/secrets/bzzz_join_token_agent  ->  BZZZ_JOIN_TOKEN=bzzz-join-1....
#
# A missing or empty file leaves NAME unset and says so on stderr: a node
# that needs a join token and has none refuses to start with a message that
# says how to get one; a node that already holds a credential ignores the
# token anyway. Setting both NAME and NAME_FILE is an error.
set -eu

for name in $(env | sed -n 's/^\(\(BZZZ\|NO\)_[A-Za-z0-9_]*\)_FILE=.*$/\1/p'); do
  file=$(printenv "${name}_FILE")
  if printenv "$name" >/dev/null; then
    echo "docker-entrypoint: both $name and ${name}_FILE are set; set one of them" >&2
    exit 2
  fi
  unset "${name}_FILE"
  if [ -s "$file" ]; then
    value=$(cat "$file")
    export "$name=$value"
  else
    echo "docker-entrypoint: ${name}_FILE=$file is missing or empty; $name stays unset" >&2
  fi
done

exec /app/bzzz "$@"
