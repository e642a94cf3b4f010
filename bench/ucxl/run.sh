#!/usr/bin/env bash
# UCXL context store: puts and gets with content as given and sealed per
# role, 1 KiB and 64 KiB, on one node's SQLite store; then the envelope
# alone. No anchor: no peer stores role-encrypted versioned context (Vault's
# transit engine is the design anchor of docs/keys.md, not a speed one).
#
#   SECONDS_EACH=3 bash bench/ucxl/run.sh      (BZZZ_UCXL_BENCH names the binary)
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
bench=${BZZZ_UCXL_BENCH:-$root/build/bin/bzzz_ucxl_bench}
echo "machine: $(nproc) cores, $(uname -sr)"
"$bench" --seconds "${SECONDS_EACH:-3}"
