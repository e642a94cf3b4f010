#!/usr/bin/env bash
# Builds the libFuzzer targets with clang and runs each for a while.
#   bash scripts/fuzz.sh            # 60 s per target
#   FUZZ_SECONDS=600 bash scripts/fuzz.sh bzzz_config_fuzz
# Findings (crash-*, timeout-*) are left in build-fuzz/findings/<target>/.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
seconds=${FUZZ_SECONDS:-60}

if ! command -v clang++ >/dev/null || ! ls /usr/lib/llvm-14/lib/clang/14*/lib/linux/libclang_rt.fuzzer-x86_64.a >/dev/null 2>&1; then
  SUDO=""
  [ "$(id -u)" -eq 0 ] || SUDO=sudo
  $SUDO apt-get update -q
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q clang libclang-rt-14-dev
fi

cmake -S "$root" -B "$root/build-fuzz" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo \
  -DCMAKE_CXX_COMPILER=clang++ -DBZZZ_FUZZ=ON -DBZZZ_BUILD_TESTS=OFF -DBZZZ_SANITIZE=ON >/dev/null
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(bzzz_config_fuzz bzzz_json_fuzz bzzz_http_target_fuzz bzzz_frame_fuzz bzzz_election_fuzz bzzz_ucxl_fuzz bzzz_tasks_fuzz bzzz_cluster_fuzz bzzz_api_fuzz bzzz_record_fuzz bzzz_jwt_fuzz bzzz_redact_fuzz bzzz_keys_fuzz bzzz_hmmm_fuzz bzzz_slurp_fuzz)
cmake --build "$root/build-fuzz" --target "${targets[@]}"

for target in "${targets[@]}"; do
  corpus_name=${target#bzzz_}
  corpus_name=${corpus_name%_fuzz}
  work="$root/build-fuzz/corpus/$target"
  findings="$root/build-fuzz/findings/$target"
  mkdir -p "$work" "$findings"
  cp -n "$root/fuzz/corpus/$corpus_name/"* "$work/" 2>/dev/null || true
  echo "== $target for ${seconds}s"
  "$root/build-fuzz/fuzz/$target" -max_total_time="$seconds" -max_len=4096 -timeout=10 \
    -artifact_prefix="$findings/" "$work"
done
