#!/usr/bin/env bash
# The image, run by podman as production runs it: the gateway as uid 10001 on a read-only root
# filesystem with every capability dropped, the token a mounted read-only file, segment-sim from the
# same image as its upstream (a second container on a network of their own, reached by name).
# From the host, over a loopback-published port: the host build's audiencesctl creates, lists and
# gets an audience; the reflection client (tests/reflection) lists, describes and calls; the
# health service answers SERVING; /metrics answers.
#
#   tests/deploy/container_run_test.sh AUDIENCESCTL
#
# Prints `FIGURE run_to_serving_s=` (from `podman run` to the first SERVING; goal under 1 s).
# Needs the image the container_image fixture builds; skips (77) where podman cannot run, unless
# SAG_REQUIRE_CONTAINERS=1.
set -euo pipefail
repo=$(cd "$(dirname "$0")/../.." && pwd)
ctl=$1
# shellcheck source=tests/deploy/container_lib.sh
. "$repo/tests/deploy/container_lib.sh"
work=$(mktemp -d "${TMPDIR:-/var/tmp}/sag-run.XXXXXX")
trap 'ctr_cleanup; rm -rf "$work"' EXIT
ctr_setup "$work"
ctr_require_image

id=$$
net=sag-ctest-run-$id
sim=sag-ctest-sim-$id
gw=sag-ctest-gw-$id
token=segment-sim-ctest-token-$id
space=9aQ1Lj62S4bomZKLF4DPqW
printf '%s\n' "$token" >"$work/token"
chmod 0444 "$work/token"
port=$(ctr_free_port)
metrics=$(ctr_free_port)

ctr_network "$net"
ctr_start_sim "$sim" "$net" "$token"

# The health poller starts first, so that it sees SERVING as soon as the gateway answers.
node "$repo/tests/deploy/grpc_health_wait.js" "127.0.0.1:$port" "" 30000 >"$work/health" &
poller=$!
start_ms=$(date +%s%3N)
ctr_start_gateway "$gw" "$net" "$work/token" "$port" "$metrics" "http://$sim:8080"
run_returned_ms=$(date +%s%3N)
if ! wait "$poller"; then
  echo "FAIL: the gateway never answered SERVING: $(cat "$work/health")" >&2
  podman logs "$gw" >&2
  exit 1
fi
serving_ms=$(sed -n 's/.*"serving_at_ms":\([0-9]*\).*/\1/p' "$work/health")
to_serving=$(awk -v a="$start_ms" -v b="$serving_ms" 'BEGIN { printf "%.2f", (b - a) / 1000 }')
echo "FIGURE podman_run_returns_s=$(awk -v a="$start_ms" -v b="$run_returned_ms" 'BEGIN { printf "%.2f", (b - a) / 1000 }')"
echo "FIGURE run_to_serving_s=$to_serving"
if awk -v t="$to_serving" 'BEGIN { exit !(t < 1) }'; then
  echo "goal met: SERVING under 1 s after podman run"
else
  echo "goal missed: SERVING $to_serving s after podman run (goal: under 1 s)"
fi

failed=0
check() { if "${@:2}"; then echo "ok: $1"; else echo "FAIL: $1" >&2; failed=1; fi; }
refuses() { if "${@:2}" >/dev/null 2>&1; then echo "FAIL: $1" >&2; failed=1; else echo "ok: $1"; fi; }

uid=$(podman exec "$gw" id -u)
check "the gateway runs as uid 10001 (got $uid)" [ "$uid" = 10001 ]
refuses "the root filesystem is read-only" podman exec "$gw" touch /usr/local/bin/written
check "the gateway process has no capabilities" \
  sh -c "podman exec '$gw' grep -q '^CapEff:[[:space:]]*0*\$' /proc/1/status"

addr=(--addr "127.0.0.1:$port" --space "$space")
name="Container buyers $id"
created=$("$ctl" "${addr[@]}" audiences create --name "$name" \
  --query "event('Order Completed').count() >= 1" --enabled -o id) || created=""
check "audiencesctl audiences create through the container (id: $created)" [ -n "$created" ]
listed=$("$ctl" "${addr[@]}" audiences list --no-cache -o json 2>&1 || true)
check "audiencesctl audiences list shows it" grep -qF "$name" <<<"$listed"
got=$("$ctl" "${addr[@]}" audiences get "$created" -o json 2>&1 || true)
check "audiencesctl audiences get reads it back" grep -qF "$name" <<<"$got"
set +e
missing=$("$ctl" "${addr[@]}" audiences get aud_none 2>&1)
rc=$?
set -e
check "an unknown audience is NOT_FOUND, exit 3 (got $rc: $missing)" [ "$rc" = 3 ]

set +e
reflected=$(node "$repo/tests/reflection/reflection_client.js" "127.0.0.1:$port" "$space" 2>&1)
rc=$?
set -e
summary=$(tail -n 1 <<<"$reflected")
check "the reflection client lists, describes and calls (exit $rc)" [ "$rc" = 0 ]
for service in segment.audiences.v1.AudiencesService grpc.health.v1.Health; do
  check "reflection lists $service" grep -qF "\"$service\"" <<<"$summary"
done
check "the reflected ListAudiences call returns the audience" grep -qF "\"$name\"" <<<"$summary"
[ "$rc" = 0 ] || echo "$reflected" >&2

check "/metrics answers on the published loopback port" sh -c \
  "curl -fsS 'http://127.0.0.1:$metrics/metrics' | grep -q '^audiences_gateway_calls_total'"
bound=$(podman port "$gw" | tr '\n' ' ')
check "ports are published on loopback only ($bound)" \
  sh -c "! podman port '$gw' | grep -v -- '-> 127.0.0.1:'"

[ "$failed" = 0 ] || podman logs "$gw" >&2
[ "$failed" = 0 ]
