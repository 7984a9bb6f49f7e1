#!/usr/bin/env bash
# Builds (Release, no sanitizers, in build/release: incremental when re-run) and starts
# audiences-gateway on this machine.
#
#   deploy/local/run.sh                 gateway on :50051 in front of a local segment-sim
#   SEGMENT_API_TOKEN=... deploy/local/run.sh
#   deploy/local/run.sh --token_file=/path/to/token
#                                       gateway on :50051 in front of the real Segment API
#
# Extra arguments go to audiences-gateway. Environment: BUILD_DIR (default build/release),
# GATEWAY_LISTEN (default 0.0.0.0:50051), SIM_LISTEN (default 127.0.0.1:8080); GATEWAY_BIN and
# SIM_BIN run programs built elsewhere (nothing is installed or built then; the tests use it).
#
# Ctrl-C (or SIGTERM to this script) stops the gateway with one SIGTERM: it drains the calls in
# flight (--shutdown_grace) and exits 0; segment-sim is stopped after it, so that the drained
# calls still have their upstream. Both run in their own sessions so that the terminal's SIGINT
# reaches this script alone.
set -euo pipefail
cd "$(dirname "$0")/../.."

gateway="${GATEWAY_BIN:-}"
sim="${SIM_BIN:-}"
if [ -z "$gateway" ] || [ -z "$sim" ]; then
  deploy/local/install-deps.sh
  build="${BUILD_DIR:-build/release}"
  launcher=()
  command -v ccache >/dev/null 2>&1 && launcher=(-DCMAKE_CXX_COMPILER_LAUNCHER=ccache)
  cmake -S . -B "$build" "${launcher[@]}" -DCMAKE_BUILD_TYPE=Release -DSAG_BUILD_TESTS=OFF \
    -DSAG_SANITIZE=OFF >/dev/null
  cmake --build "$build" -j"$(nproc)" --target audiences-gateway segment-sim audiencesctl
  gateway=$(find "$build" -type f -name audiences-gateway -perm -u+x | head -n1)
  sim=$(find "$build" -type f -name segment-sim -perm -u+x | head -n1)
fi
listen="${GATEWAY_LISTEN:-0.0.0.0:50051}"

real=false
[ -n "${SEGMENT_API_TOKEN:-}" ] && real=true
for a in "$@"; do case "$a" in --token_file=* | --upstream_url=*) real=true ;; esac done

if $real; then
  echo "run: gateway on $listen in front of the Segment API"
  exec "$gateway" --listen="$listen" "$@"
fi

sim_listen="${SIM_LISTEN:-127.0.0.1:8080}"
token_dir=$(mktemp -d)
echo "local-sim-token" >"$token_dir/token"
sim_pid=""
gw_pid=""
# shellcheck disable=SC2317  # called by the EXIT trap
cleanup() {
  if [ -n "$sim_pid" ] && kill -TERM "$sim_pid" 2>/dev/null; then
    wait "$sim_pid" 2>/dev/null || true
  fi
  rm -rf "$token_dir"
}
trap cleanup EXIT

setsid "$sim" --listen="$sim_listen" --token=local-sim-token &
sim_pid=$!
for _ in $(seq 100); do
  curl -fsS "http://$sim_listen/__sim/stats" >/dev/null 2>&1 && break
  kill -0 "$sim_pid" 2>/dev/null || { wait "$sim_pid" || true; echo "run: segment-sim did not start" >&2; exit 1; }
  sleep 0.1
done

# One SIGTERM to the gateway, then wait for its drain; its exit status is ours.
# shellcheck disable=SC2317  # called by the INT/TERM trap
stop() {
  trap '' INT TERM
  echo "run: stopping the gateway (it drains the calls in flight)" >&2
  kill -TERM "$gw_pid" 2>/dev/null || true
  rc=0
  wait "$gw_pid" || rc=$?
  exit "$rc"
}
echo "run: gateway on $listen in front of segment-sim at http://$sim_listen (Ctrl-C stops both)"
setsid "$gateway" --listen="$listen" --upstream_url="http://$sim_listen" \
  --token_file="$token_dir/token" "$@" &
gw_pid=$!
trap stop INT TERM
rc=0
wait "$gw_pid" || rc=$?
# `wait` returns early (> 128) when a trapped signal arrives; stop() then exits for us.
exit "$rc"
