#!/usr/bin/env bash
# P2P benchmarks: bzzz (bzzz_p2p_bench), NATS (nats-server + the C client,
# anchor/nats_bench.c) and js-libp2p (anchor/run.sh) in the same run, one
# after the other, on 127.0.0.1 only. Prints every JSON line (system, bench,
# figures, load1) and a side-by-side table.
#
#   bash bench/p2p/run.sh                    # pubsub (1 publisher, 2 subscriber processes) and DHT (10 nodes)
#   SKIP_ANCHOR=1 bash bench/p2p/run.sh      # bzzz only
#   SKIP_LIBP2P=1 bash bench/p2p/run.sh      # bzzz and NATS
set -uo pipefail

root=$(cd "$(dirname "$0")/../.." && pwd)
bench=${BZZZ_P2P_BENCH:-$root/build/bin/bzzz_p2p_bench}
[ -x "$bench" ] || { echo "bench: $bench is missing (run make build)" >&2; exit 1; }
out=$(mktemp)
trap 'rm -f "$out"' EXIT

# Knobs (bench/smoke.sh turns them down): SECONDS_LOAD, LATENCY_MESSAGES, DHT_OPS.
load_seconds=${SECONDS_LOAD:-10}
latency_messages=${LATENCY_MESSAGES:-20000}
dht_ops=${DHT_OPS:-200}
echo "[bzzz] pubsub: signed 1 KiB messages, 1 publisher + 2 subscriber processes" >&2
timeout -k 5 240 "$bench" pubsub --subscribers 2 --latency-messages "$latency_messages" \
  --seconds "$load_seconds" 2>/dev/null | tee -a "$out"
echo "[bzzz] dht: 10 node processes, $dht_ops puts and gets" >&2
timeout -k 5 180 "$bench" dht --nodes 10 --ops "$dht_ops" 2>/dev/null | tee -a "$out"
if [ -z "${SKIP_ANCHOR:-}" ]; then
  if ! command -v nats-server >/dev/null || [ ! -f /usr/include/nats/nats.h ]; then
    echo "bench: installing nats-server and libnats-dev (the anchor)" >&2
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nats-server libnats-dev >/dev/null
  fi
  work=$(mktemp -d)
  cc -O2 -o "$work/nats_bench" "$root/bench/p2p/anchor/nats_bench.c" -lnats
  nats_port=$(( 42000 + RANDOM % 1000 ))
  nats-server -a 127.0.0.1 -p "$nats_port" >"$work/nats.log" 2>&1 &
  nats_pid=$!
  sleep 1
  echo "[nats] nats-server 127.0.0.1:$nats_port, 1 publisher + 2 subscriber processes (C client)" >&2
  timeout -k 5 240 "$work/nats_bench" --port "$nats_port" --server-pid "$nats_pid" --subscribers 2 \
    --seconds "$load_seconds" --latency-messages "$latency_messages" | tee -a "$out"
  kill "$nats_pid" 2>/dev/null; wait "$nats_pid" 2>/dev/null
  rm -rf "$work"
  if [ -z "${SKIP_LIBP2P:-}" ]; then
    timeout -k 5 600 bash "$root/bench/p2p/anchor/run.sh" | tee -a "$out"
  fi
fi

echo
printf '%-10s %-20s %12s %12s %16s\n' system bench p50_ms p99_ms msgs/s/sub
jq -r '[.system, .bench, (.p50_ms // "-" | tostring), (.p99_ms // "-" | tostring),
        (.msgs_per_s_per_subscriber // "-" | tostring)] | join(" ")' "$out" |
  while read -r s b p50 p99 rate; do printf '%-10s %-20s %12s %12s %16s\n' "$s" "$b" "$p50" "$p99" "$rate"; done
