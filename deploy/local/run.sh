#!/usr/bin/env bash
# Builds and starts audiences-gateway on this machine.
#
#   deploy/local/run.sh                 gateway on :50051 in front of a local segment-sim
#   SEGMENT_API_TOKEN=... deploy/local/run.sh
#   deploy/local/run.sh --token_file=/path/to/token
#                                       gateway on :50051 in front of the real Segment API
#
# Extra arguments go to audiences-gateway. Environment: BUILD_DIR (default build),
# GATEWAY_LISTEN (default 0.0.0.0:50051), SIM_LISTEN (default 127.0.0.1:8080).
set -euo pipefail
cd "$(dirname "$0")/../.."

deploy/local/install-deps.sh
build="${BUILD_DIR:-build}"
cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=Release -DSAG_BUILD_TESTS=OFF >/dev/null
cmake --build "$build" -j"$(nproc)" --target audiences-gateway segment-sim audiencesctl

gateway=$(find "$build" -type f -name audiences-gateway -perm -u+x | head -n1)
sim=$(find "$build" -type f -name segment-sim -perm -u+x | head -n1)
listen="${GATEWAY_LISTEN:-0.0.0.0:50051}"

real=false
[ -n "${SEGMENT_API_TOKEN:-}" ] && real=true
for a in "$@"; do case "$a" in --token_file=*|--upstream_url=*) real=true ;; esac; done

if $real; then
  echo "run: gateway on $listen in front of the Segment API"
  exec "$gateway" --listen="$listen" "$@"
fi

sim_listen="${SIM_LISTEN:-127.0.0.1:8080}"
token_dir=$(mktemp -d)
echo "local-sim-token" >"$token_dir/token"
"$sim" --listen="$sim_listen" --token=local-sim-token &
sim_pid=$!
trap 'kill "$sim_pid" 2>/dev/null; rm -rf "$token_dir"' EXIT
for _ in $(seq 100); do
  curl -fsS "http://$sim_listen/__sim/stats" >/dev/null 2>&1 && break
  sleep 0.1
done
echo "run: gateway on $listen in front of segment-sim at http://$sim_listen (Ctrl-C stops both)"
"$gateway" --listen="$listen" --upstream_url="http://$sim_listen" \
  --token_file="$token_dir/token" "$@" &
gw_pid=$!
trap 'kill "$gw_pid" "$sim_pid" 2>/dev/null; wait "$gw_pid" 2>/dev/null; rm -rf "$token_dir"' EXIT INT TERM
wait "$gw_pid"
