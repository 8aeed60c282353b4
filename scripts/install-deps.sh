#!/usr/bin/env bash
# Installs the Debian and npm packages airouter needs to build, test and benchmark.
# Idempotent and quick when everything is present; safe without a terminal (CI).
set -euo pipefail
cd "$(dirname "$0")/.."

DEBS=(build-essential pkg-config curl ca-certificates
      libmicrohttpd-dev libcurl4-openssl-dev libjson-c-dev libconfig-dev
      libgrpc-dev protobuf-c-compiler libprotobuf-c-dev libjemalloc-dev
      libhiredis-dev redis-server nginx-light wrk)
# make fuzz: clang with its libFuzzer runtime (only on request: the other targets build with cc)
[ "${1:-}" = "--fuzz" ] && DEBS+=(clang libclang-rt-dev)

missing=()
for p in "${DEBS[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
command -v node >/dev/null 2>&1 || missing+=(nodejs)
command -v npm >/dev/null 2>&1 || missing+=(npm)

if [ ${#missing[@]} -gt 0 ]; then
    echo "install-deps: installing ${missing[*]}"
    SUDO=""
    [ "$(id -u)" -eq 0 ] || SUDO="sudo"
    export DEBIAN_FRONTEND=noninteractive
    $SUDO apt-get update -q
    $SUDO apt-get install -y -q --no-install-recommends "${missing[@]}" </dev/null
fi

# npm packages for the end-to-end tests (the official openai and grpc-js clients).
if [ ! -d tests/node_modules/openai ] || [ tests/package.json -nt tests/node_modules/.package-lock.json ]; then
    echo "install-deps: installing npm packages for tests"
    (cd tests && npm install --no-audit --no-fund --loglevel=error </dev/null)
fi
