#!/usr/bin/env bash
# The whole test suite, as CI runs it: installs what it needs (Debian 12, as root), builds the
# gateway, the simulator, the client and every test with AddressSanitizer + UndefinedBehavior-
# Sanitizer, runs them all through ctest, then runs each libFuzzer target for a bounded time.
#
#   tests/run.sh                     everything (the image-recipe build is left out: see below)
#   BUILD_DIR=... tests/run.sh       another build directory (default build/test; the fuzzers
#                                    build in $FUZZ_BUILD_DIR, default build/fuzz; deploy/local/run.sh
#                                    keeps its own build/release)
#   SAG_RECIPE=1 tests/run.sh        also run deploy/docker/build.sh for real (a Release build)
#   FUZZ_SECONDS=N tests/run.sh      seconds per fuzz target (default 30; 0 skips fuzzing)
set -euo pipefail
cd "$(dirname "$0")/.."

deploy/local/install-deps.sh
for dir in tests/lint tests/deploy tests/reflection; do
  if [ -f "$dir/package-lock.json" ]; then
    (cd "$dir" && npm ci --no-audit --no-fund --loglevel=error)
  fi
done

build="${BUILD_DIR:-build/test}"
# -O1 -g1: what AddressSanitizer recommends, with line tables for its reports; compiles much
# faster than -O2 -g on 2 cores.
launcher=()
command -v ccache >/dev/null 2>&1 && launcher=(-DCMAKE_CXX_COMPILER_LAUNCHER=ccache)
cmake -S . -B "$build" "${launcher[@]}" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DSAG_SANITIZE=ON \
  -DCMAKE_CXX_FLAGS_RELWITHDEBINFO="-O1 -g1 -DNDEBUG" -DCMAKE_C_FLAGS_RELWITHDEBINFO="-O1 -g1 -DNDEBUG"
cmake --build "$build" -j"$(nproc)"

# LeakSanitizer is on (in the tests and in every gateway/simulator they start); third-party
# allocations it must not report are named, with reasons, in tests/lsan.supp.
export ASAN_OPTIONS="${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=0}"
export LSAN_OPTIONS="${LSAN_OPTIONS:-suppressions=$PWD/tests/lsan.supp:print_suppressions=0}"
export UBSAN_OPTIONS="${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}"
exclude="recipe"
[ "${SAG_RECIPE:-0}" = 1 ] && exclude="^$"
status=0
ctest --test-dir "$build" --output-on-failure -j"$(nproc)" --timeout 600 -LE "$exclude" || status=$?
# Every process a test started must be gone (tests/common/subprocess.h kills them); any left is
# listed, killed, and fails the run.
python3 tests/common/leftover_processes.py "$build" --kill || status=1
[ "$status" = 0 ] || exit "$status"

if [ "${FUZZ_SECONDS:-30}" != 0 ]; then
  BUILD_DIR="${FUZZ_BUILD_DIR:-build/fuzz}" FUZZ_SECONDS="${FUZZ_SECONDS:-30}" tests/fuzz/run.sh
fi
