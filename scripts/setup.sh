#!/usr/bin/env bash
# Installs every Debian package bzzz needs to build, test and benchmark.
# Idempotent: packages already present are skipped by apt-get.
set -euo pipefail

packages=(
  # toolchain
  make cmake pkg-config g++ ninja-build ccache git
  # libraries
  libboost-dev libopendht-dev libpqxx-dev libsqlite3-dev sqlite3 libhiredis-dev
  libsodium-dev libssl-dev libcpp-jwt-dev libspdlog-dev nlohmann-json3-dev
  libcli11-dev libyaml-cpp-dev prometheus-cpp-dev libgoogle-perftools-dev
  google-perftools libcurl4-openssl-dev
  # tests and benchmarks
  libgtest-dev libgmock-dev libbenchmark-dev curl jq wrk nginx-light python3 python3-yaml systemd
  # runtime services used by tests
  bubblewrap postgresql redis-server prometheus prometheus-alertmanager
  # a real browser for the sign-in test, driven over WebDriver
  chromium chromium-driver
)

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done

if [ ${#missing[@]} -eq 0 ]; then
  echo "setup: all ${#packages[@]} packages present"
  exit 0
fi

SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
echo "setup: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -q
# policy-rc.d keeps the packaged services (postgresql, redis, prometheus,
# nginx) from being started by the install: tests start their own on loopback.
policy=/usr/sbin/policy-rc.d
created_policy=0
if [ ! -e "$policy" ]; then
  printf '#!/bin/sh\nexit 101\n' | $SUDO tee "$policy" >/dev/null
  $SUDO chmod +x "$policy"
  created_policy=1
fi
$SUDO apt-get install -y -q --no-install-recommends "${missing[@]}"
[ $created_policy -eq 1 ] && $SUDO rm -f "$policy"
echo "setup: done"
