#!/usr/bin/env bash
# Instructions per call on the gateway's uncached GetAudience path, counted by valgrind's callgrind:
# a figure that machine noise does not move, for before/after comparisons of a hot-path change.
#
#   tests/bench/profile.sh [BUILD_DIR] [GATEWAY_BINARY]
#
# Runs bench_proxy (nginx static upstream, see proxy_bench.cc) with the gateway under callgrind,
# counts only while scenario C (gRPC through the gateway) is running, divides the instructions by
# the calls the gateway served meanwhile (its /metrics), and prints the functions with the most
# inclusive instructions. GATEWAY_BINARY (default: the build's) lets two builds be compared.
set -euo pipefail
cd "$(dirname "$0")/../.."
build="$(realpath "${1:-build/bench}")"
binary="$(realpath "${2:-$build/service/audiences-gateway}")"
command -v valgrind >/dev/null || { echo "profile.sh: needs valgrind" >&2; exit 77; }
work="$(mktemp -d)"
real="$build/service/audiences-gateway"
cp "$binary" "$work/gateway"
cp "$real" "$work/original"
restore() { cp "$work/original" "$real"; [ -n "${KEEP:-}" ] || rm -rf "$work"; echo "work: $work"; }
trap restore EXIT
# bench_proxy starts $real: put a wrapper there that runs the chosen binary under callgrind.
cat >"$real.tmp" <<EOF
#!/bin/sh
exec valgrind --tool=callgrind --instr-atstart=no --callgrind-out-file=$work/cg.out \
  $work/gateway "\$@" 2>>$work/valgrind.log
EOF
chmod +x "$real.tmp"
mv "$real.tmp" "$real"

"$build/tests/bench/bench_proxy" --seconds=10 --rounds=1 --concurrency=4 --warmup=2s \
  >"$work/bench.log" 2>&1 &
bench=$!
pid=""
for _ in $(seq 1 300); do
  pid="$(pgrep -f "callgrind.*$work/gateway" | head -1 || true)"
  [ -n "$pid" ] && break
  sleep 0.1
done
[ -n "$pid" ] || { echo "profile.sh: the gateway did not start" >&2; cat "$work/bench.log"; exit 1; }
port=""
for _ in $(seq 1 300); do
  port="$(ss -ltnp 2>/dev/null | grep "pid=$pid," | awk '{print $4}' | sed 's/.*://' |
    while read -r p; do curl -fsS "http://127.0.0.1:$p/metrics" >/dev/null 2>&1 && echo "$p"; done |
    head -1 || true)"
  [ -n "$port" ] && break
  sleep 0.2
done
[ -n "$port" ] || { echo "profile.sh: no /metrics port" >&2; exit 1; }
calls() {
  curl -fsS "http://127.0.0.1:$port/metrics" |
    awk '/^audiences_gateway_calls_total\{.*rpc="GetAudience"/ {s += $2} END {print s + 0}'
}
# Scenario C starts when GetAudience calls begin to flow (A and B run first).
for _ in $(seq 1 1200); do
  [ "$(calls)" -gt 20 ] && break
  sleep 0.1
done
before="$(calls)"
callgrind_control -i on "$pid" >/dev/null 2>&1
sleep "${PROFILE_SECONDS:-6}"
callgrind_control -i off "$pid" >/dev/null 2>&1
after="$(calls)"
callgrind_control -d "$pid" >/dev/null 2>&1
kill "$bench" "$pid" 2>/dev/null || true
wait "$bench" 2>/dev/null || true
n=$((after - before))
[ "$n" -gt 0 ] || { echo "profile.sh: no calls while counting" >&2; exit 1; }
out="$(find "$work" -name "cg.out.*" | head -1)"  # The dump of the counted window.
total="$(callgrind_annotate "$out" 2>/dev/null | awk '/PROGRAM TOTALS/ {v = $1; gsub(",", "", v); print v}')"
echo "profile.sh: $n GetAudience calls counted; $((total / n)) instructions per call (all threads)"
callgrind_annotate --inclusive=yes "$out" 2>/dev/null | grep -E "^ *[0-9,]+ " | head -40 |
  awk -v n="$n" '{v = $1; gsub(",", "", v); $1 = ""; printf "%10d per call %s\n", v / n, $0}' |
  cut -c1-170 || true
