#!/usr/bin/env bash
# The image recipe, for real: runs deploy/docker/build.sh (what the Dockerfile's build stage RUNs)
# into a fresh temporary directory, with SAG_BUILD_TESTS=OFF and the Dockerfile's Release build,
# then checks what the runtime stage would take: the three programs start, and
# runtime-packages.txt pins runtime libraries only, all resolvable by apt.
# A Release build: minutes on 2 cores (ctest label `recipe`).
#   tests/deploy/recipe_test.sh            (SAG_RECIPE_KEEP=1 keeps the directory)
set -euo pipefail
repo=$(cd "$(dirname "$0")/../.." && pwd)
work=$(mktemp -d "${TMPDIR:-/tmp}/sag-recipe.XXXXXX")
if [ "${SAG_RECIPE_KEEP:-0}" = 1 ]; then
  echo "recipe: keeping $work"
else
  trap 'rm -rf "$work"' EXIT
fi

passed=0
failed=0
ok() { passed=$((passed + 1)); echo "ok: $*"; }
bad() { failed=$((failed + 1)); echo "FAIL: $*" >&2; }

SAG_BUILD_TESTS=OFF CMAKE_BUILD_TYPE=Release "$repo/deploy/docker/build.sh" "$work/build" "$work/out"

bin="$work/out/usr/local/bin"
for prog in audiences-gateway audiencesctl segment-sim; do
  if [ -x "$bin/$prog" ]; then ok "$prog staged"; else bad "$prog is not in $bin"; continue; fi
  set +e
  out=$("$bin/$prog" --help 2>&1)
  rc=$?
  set -e
  if [ "$rc" -le 1 ] && ! grep -q "error while loading shared libraries" <<<"$out" &&
    grep -q "$prog" <<<"$out"; then
    ok "$prog --help runs (exit $rc)"
  else
    bad "$prog --help: exit $rc: $out"
  fi
done

# No test was compiled (SAG_BUILD_TESTS=OFF builds the programs only).
tests_built=$(find "$work/build" -type f -perm -u+x \( -name '*_test' -o -name 'bench_*' \) | head -n3)
if [ -z "$tests_built" ]; then ok "no test binaries built"; else bad "tests were built: $tests_built"; fi

list="$work/out/runtime-packages.txt"
if [ -s "$list" ]; then ok "runtime-packages.txt written ($(wc -l <"$list") packages)"; else bad "no $list"; fi
if [ -s "$list" ]; then
  malformed=$(grep -vE '^[a-z0-9][a-z0-9+.-]*(:[a-z0-9]+)?=[A-Za-z0-9.+:~-]+$' "$list" || true)
  if [ -z "$malformed" ]; then ok "every line is name=version"; else bad "malformed lines: $malformed"; fi
  for want in ca-certificates 'libgrpc\+\+' libprotobuf libcurl4 libabsl; do
    if grep -qE "^$want" "$list"; then ok "pins $want"; else bad "does not pin $want"; fi
  done
  build_only=$(grep -E '^([^=:]*-dev|build-essential|gcc|g\+\+|cmake|protobuf-compiler)[:=]' "$list" || true)
  if [ -z "$build_only" ]; then ok "no build-only package"; else bad "build-only packages: $build_only"; fi
  # The runtime stage's install resolves (a simulation; apt needs its lists).
  set +e
  sim=$(xargs --arg-file="$list" apt-get install -s -y --no-install-recommends 2>&1)
  rc=$?
  set -e
  if [ "$rc" -eq 0 ]; then ok "apt-get resolves the pinned runtime list"; else bad "apt-get install -s: $sim"; fi
fi

echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
