#!/usr/bin/env bash
# The benchmark command (tests/README.md, "Performance"): builds in Release, runs every benchmark on
# loopback (each starts its own segment-sim / nginx / redis-server / gateways and stops them),
# prints each one's figures, then one table of the headline figures with their same-run
# baselines and goals. JSON: one file per benchmark and summary.json in $OUT_DIR
# (default build/bench/results).
#
#   tests/bench/run.sh            # everything, ~8 minutes after the build on 2 cores
#   BENCHES="proxy cache" tests/bench/run.sh
set -uo pipefail
cd "$(dirname "$0")/../.." || exit 1
deploy/local/install-deps.sh || exit 1
build="${BUILD_DIR:-build/bench}"
out="${OUT_DIR:-$build/results}"
benches="${BENCHES:-proxy hops cache hits ratelimit lanes shares concurrency scaleout freeze translate memory memory_heap}"
cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=Release >/dev/null || exit 1
targets=()
for b in $benches; do targets+=("bench_$b"); done
cmake --build "$build" -j"$(nproc)" --target "${targets[@]}" || exit 1
mkdir -p "$out"
bin="$build/tests/bench"
failed=()
run() {  # name, command...
  local name="$1"
  shift
  echo
  echo "=== $name: $*"
  "$@"
  local rc=$?
  if [ "$rc" -ne 0 ]; then failed+=("$name (exit $rc)"); fi
}
for b in $benches; do
  case "$b" in
    proxy) run proxy "$bin/bench_proxy" --seconds=5 --concurrency=16 --json="$out/proxy.json" ;;
    hops) run hops "$bin/bench_hops" --seconds=2 --rounds=3 --concurrency=16 --others_cpus=1 \
      --json="$out/hops.json" ;;
    cache) run cache "$bin/bench_cache" --calls=1000 --latency=200ms --seconds=5 --keys=100000 \
      --cache_max_bytes=16777216 --json="$out/cache.json" ;;
    hits) run hits "$bin/bench_hits" --seconds=3 --rounds=3 --warmup=1 --connections=4 \
      --streams=32 --json="$out/hits.json" ;;
    ratelimit) run ratelimit "$bin/bench_ratelimit" --callers=3 --calls_per_caller=200 \
      --limit=10/1s --queued_calls=10000 --idle_sample=5s --json="$out/ratelimit.json" ;;
    lanes) run lanes "$bin/bench_lanes" --lanes=6 --requests=10 --delay=20ms --seconds=10s ;;
    shares) run shares "$bin/bench_shares" --seconds=20 --flood_seconds=10 --limit=10/1s \
      --json="$out/shares.json" ;;
    concurrency) run concurrency "$bin/bench_concurrency" --calls=2000 --latency=500ms \
      --json="$out/concurrency.json" ;;
    scaleout) run scaleout "$bin/bench_scaleout" --seconds=10 --json="$out/scaleout.json" ;;
    freeze) run freeze "$bin/bench_freeze" --replicas=2 --limit=10/1s --warmup=3s --freeze=4s \
      --after=5s --json="$out/freeze.json" ;;
    translate) run translate "$bin/bench_translate" --benchmark_out="$out/translate.json" \
      --benchmark_out_format=json ;;
    memory) run memory "$bin/bench_memory" --calls=32000 --lanes=4 --limit=10/1s \
      --max_memory=512Mi --in_flight=2000 --latency=2s --json="$out/memory.json" ;;
    memory_heap) run memory_heap "$bin/bench_memory_heap" --calls=2000 --latency=5s ;;
    *) echo "unknown benchmark: $b" >&2; failed+=("$b (unknown)") ;;
  esac
done
echo
echo "=== summary ($(date -u +%Y-%m-%d), $(nproc) cores, load average $(cut -d' ' -f1-3 /proc/loadavg))"
python3 tests/bench/summarize.py "$out"
if [ "${#failed[@]}" -gt 0 ]; then
  echo "benchmarks that failed: ${failed[*]}" >&2
  exit 1
fi
