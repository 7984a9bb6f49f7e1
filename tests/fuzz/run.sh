#!/usr/bin/env bash
# Builds the libFuzzer targets with clang (ASan + UBSan) and runs each for FUZZ_SECONDS
# (default 60) from its seed corpus; a crash fails the run and leaves the input in
# $BUILD_DIR/fuzz-artifacts/. Seeds grow in $BUILD_DIR/fuzz-corpus (not committed).
set -euo pipefail
cd "$(dirname "$0")/../.."
build="${BUILD_DIR:-build/fuzz}"
seconds="${FUZZ_SECONDS:-60}"
CC=clang CXX=clang++ cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DSAG_FUZZ=ON \
  -DCMAKE_CXX_FLAGS_RELWITHDEBINFO="-O2 -g1 -DNDEBUG" -DCMAKE_C_FLAGS_RELWITHDEBINFO="-O2 -g1 -DNDEBUG" \
  -DSAG_SANITIZE=ON -DSAG_BUILD_TESTS=OFF >/dev/null
cmake --build "$build" -j"$(nproc)" --target translate_fuzz request_fuzz
mkdir -p "$build/fuzz-artifacts"
for target in translate_fuzz request_fuzz; do
  corpus="$build/fuzz-corpus/$target"
  mkdir -p "$corpus"
  cp -n tests/fuzz/seeds/"$target"/* "$corpus"/ 2>/dev/null || true
  echo "fuzz: $target for ${seconds}s"
  "$build/tests/fuzz/$target" -max_total_time="$seconds" -max_len=8192 -timeout=10 \
    -artifact_prefix="$build/fuzz-artifacts/$target-" -print_final_stats=1 "$corpus" 2>&1 |
    grep -E "^(#[0-9]+ +DONE|stat::number_of_executed_units|stat::peak_rss|==[0-9]+==ERROR|SUMMARY)" || true
  if ls "$build/fuzz-artifacts/$target-"* >/dev/null 2>&1; then
    echo "fuzz: $target found a crash: $(ls "$build/fuzz-artifacts/$target-"*)" >&2
    exit 1
  fi
done
echo "fuzz: no crash"
