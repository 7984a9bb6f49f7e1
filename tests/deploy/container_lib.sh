#!/usr/bin/env bash
# Shared by the container tests (ctest label `container`): sourced, never run. Promises:
# - ctr_setup: podman usable as root with a containers.conf of our own (runc, ulimits at or below
#   the hard limits podman itself runs with: crun, and runc with podman's default ulimits, cannot
#   start containers on a VM without CAP_SYS_RESOURCE), or the test skips (exit 77) with the
#   reason, or fails when SAG_REQUIRE_CONTAINERS=1 (CI).
# - ctr_setup also removes what a killed run left (ctr_sweep_stale): containers and networks
#   named `sag-ctest-*-PID` and pods labelled `sag-ctest-owner=PID` whose PID is no longer a
#   running container test; what a live run owns is never touched.
# - ctr_free_port: a free loopback TCP port; ctr_wait_for: bounded polling.
# - Names: SAG_IMAGE (the gateway's image the fixture builds), SAG_BASE_IMAGE (a local Debian 12).
# shellcheck shell=bash

SAG_IMAGE="${SAG_IMAGE:-localhost/audiences-gateway:ctest}"
SAG_BASE_IMAGE="${SAG_BASE_IMAGE:-localhost/sag-debian:12}"
export SAG_IMAGE SAG_BASE_IMAGE

# ctr_skip REASON: skip (77) or, under SAG_REQUIRE_CONTAINERS=1, fail.
ctr_skip() {
  if [ "${SAG_REQUIRE_CONTAINERS:-0}" = 1 ]; then
    echo "FAIL: $* (SAG_REQUIRE_CONTAINERS=1: the container tests must run here)" >&2
    exit 1
  fi
  echo "SKIP: $*"
  exit 77
}

# ctr_setup WORKDIR: writes WORKDIR/containers.conf and exports CONTAINERS_CONF.
ctr_setup() {
  local work=$1 nofile nproc runtime=runc
  command -v podman >/dev/null 2>&1 ||
    ctr_skip "podman is not installed (deploy/local/install-deps.sh installs it)"
  [ "$(id -u)" -eq 0 ] || ctr_skip "the container tests run podman as root (uid $(id -u) here)"
  command -v runc >/dev/null 2>&1 || runtime=crun
  nofile=$(ulimit -Hn)
  nproc=$(ulimit -Hu)
  [ "$nofile" = unlimited ] && nofile=1048576
  # podman 4.3 runs (and so starts runc) with at most 32768 processes, whatever the shell has.
  { [ "$nproc" = unlimited ] || [ "$nproc" -gt 32768 ]; } && nproc=32768
  cat >"$work/containers.conf" <<EOF
[containers]
default_ulimits = ["nofile=$nofile:$nofile", "nproc=$nproc:$nproc"]
[engine]
runtime = "$runtime"
EOF
  export CONTAINERS_CONF="$work/containers.conf"
  local info
  info=$(podman info --format '{{.Host.OCIRuntime.Name}} {{.Store.GraphDriverName}}' 2>&1) ||
    ctr_skip "podman cannot run here: $info"
  echo "podman $(podman version --format '{{.Client.Version}}'): runtime and storage: $info"
  ctr_sweep_stale
}

# ctr_owner_alive PID: PID is a running container test (this library's caller).
ctr_owner_alive() {
  [ -r "/proc/$1/cmdline" ] && tr '\0' ' ' <"/proc/$1/cmdline" | grep -q 'tests/deploy/container_'
}

# ctr_sweep_stale: removes the containers, pods and networks of container tests that were killed
# before their EXIT trap ran (SIGKILL, a machine restart): they would hold names, ports and memory,
# and a later run of the same test would find its names taken.
ctr_sweep_stale() {
  local kind name owner
  while read -r kind name owner; do
    if [ -z "$owner" ] || ctr_owner_alive "$owner"; then continue; fi
    echo "note: removing $kind $name, left by a killed run (pid $owner)"
    case $kind in
      pod) podman pod rm -f -t 0 "$name" >/dev/null 2>&1 || true ;;
      container) podman rm -f -t 0 "$name" >/dev/null 2>&1 || true ;;
      network) podman network rm -f "$name" >/dev/null 2>&1 || true ;;
    esac
  done < <(
    podman pod ps --filter label=sag-ctest-owner --format '{{.Name}} {{index .Labels "sag-ctest-owner"}}' |
      sed 's/^/pod /'
    podman ps -a --format '{{.Names}}' | sed -n 's/^\(sag-ctest-.*-\([0-9]\+\)\)$/container \1 \2/p'
    podman network ls --format '{{.Name}}' | sed -n 's/^\(sag-ctest-.*-\([0-9]\+\)\)$/network \1 \2/p'
  )
}

ctr_free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

# ctr_wait_for SECONDS DESCRIPTION COMMAND...: polls COMMAND every 0.1 s until it succeeds;
# returns 1 (after printing the description) when the bound passes.
ctr_wait_for() {
  local limit=$(($1 * 10)) what=$2
  shift 2
  for _ in $(seq "$limit"); do "$@" >/dev/null 2>&1 && return 0; sleep 0.1; done
  echo "FAIL: $what within $((limit / 10)) s" >&2
  return 1
}

# ctr_mb BYTES: bytes as MB (10^6), one decimal.
ctr_mb() { awk -v b="$1" 'BEGIN { printf "%.1f", b / 1000000 }'; }

# What a test created, removed by ctr_cleanup (the tests call it from their EXIT trap).
CTR_CONTAINERS=()
CTR_NETWORKS=()
CTR_PODS=()
CTR_VOLUMES=()
CTR_SECRETS=()
# shellcheck disable=SC2317  # called from EXIT traps
ctr_cleanup() {
  local x
  for x in "${CTR_CONTAINERS[@]}"; do podman rm -f -t 0 "$x" >/dev/null 2>&1 || true; done
  for x in "${CTR_PODS[@]}"; do podman pod rm -f -t 0 "$x" >/dev/null 2>&1 || true; done
  for x in "${CTR_VOLUMES[@]}"; do podman volume rm -f "$x" >/dev/null 2>&1 || true; done
  for x in "${CTR_SECRETS[@]}"; do podman secret rm "$x" >/dev/null 2>&1 || true; done
  for x in "${CTR_NETWORKS[@]}"; do podman network rm -f "$x" >/dev/null 2>&1 || true; done
}

# ctr_require_image: the fixture (container_image_test.sh) built SAG_IMAGE.
ctr_require_image() {
  podman image exists "$SAG_IMAGE" && return 0
  echo "FAIL: $SAG_IMAGE is not in podman's storage: the container_image fixture did not build it" >&2
  exit 1
}

# ctr_network NAME: a bridge network whose containers resolve each other by name (dnsname).
ctr_network() {
  CTR_NETWORKS+=("$1")
  podman network create "$1" >/dev/null
}

# ctr_start_sim NAME NETWORK TOKEN [SIM FLAGS...]: segment-sim from the gateway's image (the
# entrypoint overridden) as uid 10001 on a read-only root, listening on NAME:8080 in NETWORK.
ctr_start_sim() {
  local name=$1 net=$2 token=$3
  shift 3
  CTR_CONTAINERS+=("$name")
  podman run -d --name "$name" --network "$net" --user 10001:10001 --read-only --cap-drop ALL \
    --security-opt no-new-privileges --entrypoint /usr/local/bin/segment-sim "$SAG_IMAGE" \
    --listen=0.0.0.0:8080 --token="$token" "$@" >/dev/null
  ctr_wait_for 30 "segment-sim ($name) listening" \
    sh -c "podman logs '$name' 2>&1 | grep -q 'segment-sim listening on'" || {
    podman logs "$name" >&2
    exit 1
  }
}

# ctr_start_gateway NAME NETWORK TOKEN_FILE GRPC_PORT METRICS_PORT UPSTREAM [GATEWAY FLAGS...]:
# the image's entrypoint as uid 10001 on a read-only root, every capability dropped, the token a
# read-only mounted file, gRPC and /metrics published on loopback only.
ctr_start_gateway() {
  local name=$1 net=$2 token_file=$3 port=$4 metrics=$5 upstream=$6
  shift 6
  CTR_CONTAINERS+=("$name")
  podman run -d --name "$name" --network "$net" --user 10001:10001 --read-only --cap-drop ALL \
    --security-opt no-new-privileges -p "127.0.0.1:$port:50051" -p "127.0.0.1:$metrics:9464" \
    -v "$token_file:/var/run/secrets/segment/token:ro" "$SAG_IMAGE" \
    --listen=0.0.0.0:50051 --metrics_listen=0.0.0.0:9464 --upstream_url="$upstream" \
    --token_file=/var/run/secrets/segment/token "$@" >/dev/null
}
