#!/usr/bin/env bash
# The README's entry point, from nothing but bash and apt-get: on a bare
# machine (a minimal Debian 12 has no make) it installs what the project
# needs with scripts/setup.sh first, then runs make with the arguments given
# (`bash make.sh run`, `bash make.sh test`; any Makefile target works).
set -euo pipefail
cd "$(dirname "$0")"
if ! command -v make >/dev/null 2>&1; then
  echo "make.sh: make is not installed; installing the project's packages (scripts/setup.sh)"
  bash scripts/setup.sh
fi
exec make "$@"
