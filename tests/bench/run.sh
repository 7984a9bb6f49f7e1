#!/usr/bin/env bash
# Builds in Release and runs every benchmark, printing its figures; JSON copies go to
# $OUT_DIR (default build-bench/results).
set -euo pipefail
cd "$(dirname "$0")/../.."
deploy/local/install-deps.sh
build="${BUILD_DIR:-build-bench}"
out="${OUT_DIR:-$build/results}"
cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build "$build" -j"$(nproc)" --target bench_concurrency
mkdir -p "$out"
"$build/tests/bench/bench_concurrency" --calls=2000 --latency=500ms --json="$out/concurrency.json"
cmake --build "$build" -j"$(nproc)" --target bench_cache; "$build/tests/bench/bench_cache" --calls=1000 --latency=200ms --seconds=5 --keys=100000 --cache_max_bytes=16777216 --json="$out/cache.json"
cmake --build "$build" -j"$(nproc)" --target bench_ratelimit && "$build/tests/bench/bench_ratelimit" --callers=3 --calls_per_caller=200 --limit=10/1s --queued_calls=10000 --idle_sample=5s --json="$out/ratelimit.json"
