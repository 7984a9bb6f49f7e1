#!/usr/bin/env bash
# The whole test suite: installs what it needs (Debian 12, as root), builds, runs ctest.
#   tests/run.sh                 everything
#   BUILD_DIR=... tests/run.sh   another build directory (default build)
set -euo pipefail
cd "$(dirname "$0")/.."

deploy/local/install-deps.sh
(cd tests/lint && npm ci --no-audit --no-fund --loglevel=error)

build="${BUILD_DIR:-build}"
cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=RelWithDebInfo
cmake --build "$build" -j"$(nproc)"
ctest --test-dir "$build" --output-on-failure -j"$(nproc)" --timeout 300
