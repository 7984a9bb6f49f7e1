#!/usr/bin/env bash
# `podman stop` drains the gateway's container: with 50 calls in flight (each waiting on a slow
# upstream: segment-sim answers after 30 s), the SIGTERM podman sends makes the gateway stop
# taking new calls, finish the 50 and exit 0 within its --shutdown_grace; every call is answered
# (audiencesctl exits 0 for each), and podman never has to SIGKILL it.
#
#   tests/deploy/container_stop_test.sh AUDIENCESCTL
#
# Prints `FIGURE stop_drain_s=` (from `podman stop` to the container's exit). Needs the image the
# container_image fixture builds; skips (77) where podman cannot run, unless
# SAG_REQUIRE_CONTAINERS=1.
set -euo pipefail
repo=$(cd "$(dirname "$0")/../.." && pwd)
ctl=$1
# shellcheck source=tests/deploy/container_lib.sh
. "$repo/tests/deploy/container_lib.sh"
work=$(mktemp -d "${TMPDIR:-/var/tmp}/sag-stop.XXXXXX")
clients=()
# shellcheck disable=SC2317  # called by the EXIT trap
finish() {
  local pid
  for pid in "${clients[@]}"; do kill "$pid" 2>/dev/null || true; done
  ctr_cleanup
  rm -rf "$work"
}
trap finish EXIT
ctr_setup "$work"
ctr_require_image

calls=50
latency=30s
id=$$
net=sag-ctest-stop-$id
sim=sag-ctest-stopsim-$id
gw=sag-ctest-stopgw-$id
token=segment-sim-ctest-token-$id
space=9aQ1Lj62S4bomZKLF4DPqW
printf '%s\n' "$token" >"$work/token"
chmod 0444 "$work/token"
port=$(ctr_free_port)
metrics=$(ctr_free_port)

ctr_network "$net"
ctr_start_sim "$sim" "$net" "$token" --latency="$latency" --threads=128
# The gateway's own ListAudiences limit (Segment's, 60/1m) would refuse most of 50 calls at once:
# raised, so that all 50 wait on the slow upstream. Starting 50 clients (sanitizer builds) can
# take tens of seconds on a busy machine, and the gateway sends the first upstream request alone (the others wait for it, up to
# 2 x latency): hence the long latency, grace and timeouts.
ctr_start_gateway "$gw" "$net" "$work/token" "$port" "$metrics" "http://$sim:8080" \
  --shutdown_grace=90s --upstream_timeout=90s --rate_limits=ListAudiences=3000/1m
node "$repo/tests/deploy/grpc_health_wait.js" "127.0.0.1:$port" "" 30000 >/dev/null || {
  echo "FAIL: the gateway never answered SERVING" >&2
  podman logs "$gw" >&2
  exit 1
}

in_flight() {
  curl -fsS "http://127.0.0.1:$metrics/metrics" |
    awk '/^audiences_gateway_calls_in_flight/ { n += $NF } END { print n + 0 }'
}

# 50 listings, each its own search (no two share a cache entry or an upstream request).
for i in $(seq "$calls"); do
  (
    rc=0
    "$ctl" --addr "127.0.0.1:$port" --space "$space" --timeout 150s audiences list --no-cache \
      --search "drain-$i" -o json >"$work/call-$i.out" 2>&1 || rc=$?
    echo "$rc" >"$work/call-$i.rc"
  ) &
  clients+=("$!")
done
all_in_flight() { [ "$(in_flight)" -ge "$calls" ]; }
if ! ctr_wait_for 60 "$calls calls in flight at the gateway" all_in_flight; then
  echo "in flight: $(in_flight); finished: $(cat "$work"/call-*.rc 2>/dev/null | wc -l)" >&2
  curl -sS "http://127.0.0.1:$metrics/metrics" 2>&1 | grep -E 'in_flight|calls_total' | head -n 5 >&2
  head -c 400 "$work/call-1.out" >&2 || true
  podman logs "$gw" 2>&1 | tail -n 5 >&2
  exit 1
fi
echo "ok: $(in_flight) calls in flight (segment-sim answers each after $latency)"

start=$(date +%s.%N)
podman stop -t 120 "$gw" >/dev/null
echo "FIGURE stop_drain_s=$(awk -v s="$start" -v e="$(date +%s.%N)" 'BEGIN { printf "%.2f", e - s }')"
for pid in "${clients[@]}"; do wait "$pid" || true; done
clients=()

failed=0
check() { if "${@:2}"; then echo "ok: $1"; else echo "FAIL: $1" >&2; failed=1; fi; }
answered=0
for i in $(seq "$calls"); do
  if [ "$(cat "$work/call-$i.rc" 2>/dev/null)" = 0 ]; then
    answered=$((answered + 1))
  else
    echo "call $i: exit $(cat "$work/call-$i.rc" 2>/dev/null || echo none): $(head -c 300 "$work/call-$i.out")" >&2
  fi
done
check "all $calls calls in flight were answered, exit 0 ($answered were)" [ "$answered" = "$calls" ]
code=$(podman inspect --format '{{.State.ExitCode}}' "$gw")
check "the gateway's container exited 0 (got $code)" [ "$code" = 0 ]
logs=$(podman logs "$gw" 2>&1)
check "the gateway logged its drain" grep -q "shutting down" <<<"$logs"
check "podman sent one signal (no 'second signal' in the log)" sh -c '! grep -q "second signal"' <<<"$logs"
if [ "$failed" != 0 ]; then tail -n 40 <<<"$logs" >&2; fi
[ "$failed" = 0 ]
