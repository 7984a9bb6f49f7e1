#!/usr/bin/env bash
# The dev overlay, running: `kubectl kustomize deploy/k8s/overlays/dev`, made runnable by podman
# 4.3 (tests/deploy/kube_play_render.mjs prints each change), fed to `podman kube play` on a
# network with name resolution. The gateway and segment-sim start as pods from the rendered
# ConfigMap and Secret (mounted as files) and Deployments, with the image the container_image
# fixture built, ports published on loopback only; the host build's audiencesctl calls the
# gateway pod, the call reaches the segment-sim pod (its request log shows it, with the Secret's
# token accepted) and works.
# `podman kube down` then removes the pods; the test removes the secrets and volumes it leaves
# and checks that nothing of the overlay remains.
#
#   tests/deploy/container_kube_play_test.sh AUDIENCESCTL
#
# Skips (77, the reason printed) without a usable podman (unless SAG_REQUIRE_CONTAINERS=1) or
# without kubectl >= 1.21 (unless SAG_REQUIRE_KUBECTL=1).
set -euo pipefail
repo=$(cd "$(dirname "$0")/../.." && pwd)
ctl=$1
# shellcheck source=tests/deploy/container_lib.sh
. "$repo/tests/deploy/container_lib.sh"
work=$(mktemp -d "${TMPDIR:-/var/tmp}/sag-kube.XXXXXX")
played=0
# shellcheck disable=SC2317  # called by the EXIT trap
finish() {
  [ "$played" = 1 ] && podman kube down "$work/dev.yaml" >/dev/null 2>&1
  ctr_cleanup
  rm -rf "$work"
}
trap finish EXIT
ctr_setup "$work"
ctr_require_image

id=$$
net=sag-ctest-kube-$id
gw_pod=audiences-gateway-pod-0
sim_pod=segment-sim-pod-0
space=9aQ1Lj62S4bomZKLF4DPqW
rc=0
node "$repo/tests/deploy/kube_play_render.mjs" "$work/dev.yaml" "$SAG_IMAGE" "$sim_pod.dns.podman" \
  "$id" ||
  rc=$?
[ "$rc" = 0 ] || exit "$rc"

# What kube play creates from the YAML, removed however the test ends.
for pod in "$gw_pod" "$sim_pod"; do
  ! podman pod exists "$pod" || {
    echo "FAIL: a pod $pod already exists: another run of this test, or a stale one" \
      "(podman pod rm -f $pod)" >&2
    exit 1
  }
  CTR_PODS+=("$pod")
done
# kube play makes a podman secret (and a volume) of each Secret and a volume of each ConfigMap.
names_of() { awk -v k="kind: $1" '$0 == k { s = 1 } s && /^  name:/ { print $2; s = 0 }' "$work/dev.yaml"; }
mapfile -t secrets < <(names_of Secret)
mapfile -t configmaps < <(names_of ConfigMap)
CTR_SECRETS+=("${secrets[@]}")
CTR_VOLUMES+=("${secrets[@]}" "${configmaps[@]}")
ctr_network "$net"

played=1
podman kube play --network "$net" "$work/dev.yaml"
podman pod ps --filter "name=pod-0" --format '{{.Name}} {{.Status}} {{.NumberOfContainers}} containers'

# The loopback ports the rendered copy publishes (kube_play_render.mjs wrote them).
port_of() { awk -v d="$1" -v n="$2" '$1 == d && $3 == n { print $4 }' "$work/dev.yaml.ports"; }
gw_addr=127.0.0.1:$(port_of audiences-gateway grpc)
sim_url=http://127.0.0.1:$(port_of segment-sim http)
echo "gateway pod on $gw_addr, segment-sim pod on $sim_url"
if ! node "$repo/tests/deploy/grpc_health_wait.js" "$gw_addr" \
  segment.audiences.v1.AudiencesService 60000; then
  echo "FAIL: the gateway pod never answered SERVING" >&2
  podman logs "$gw_pod-gateway" >&2 || true
  exit 1
fi

failed=0
check() { if "${@:2}"; then echo "ok: $1"; else echo "FAIL: $1" >&2; failed=1; fi; }
refuses() { if "${@:2}" >/dev/null 2>&1; then echo "FAIL: $1" >&2; failed=1; else echo "ok: $1"; fi; }

name="Kube play buyers $id"
created=$("$ctl" --addr "$gw_addr" --space "$space" audiences create --name "$name" \
  --query "event('Order Completed').count() >= 1" -o id) || created=""
check "audiencesctl audiences create through the gateway pod (id: $created)" [ -n "$created" ]
got=$("$ctl" --addr "$gw_addr" --space "$space" audiences get "$created" -o json 2>&1 || true)
check "audiencesctl audiences get reads it back" grep -qF "$name" <<<"$got"
# segment-sim's request log holds the create, answered 200: the Secret's token was accepted.
created_upstream() {
  curl -fsS "$sim_url/__sim/requests" | node -e '
    let s = "";
    process.stdin.on("data", (d) => (s += d)).on("end", () => {
      const hit = JSON.parse(s).some((r) => r.operation === "CreateAudience" &&
        r.status === 200 && JSON.stringify(r.body).includes(process.argv[1]));
      process.exit(hit ? 0 : 1);
    });' "$name"
}
check "the segment-sim pod answered the gateway's create 200 (the Secret's token accepted)" \
  created_upstream
bound=$(podman port "$gw_pod-gateway"; podman port "$sim_pod-segment-sim")
check "the pods publish on loopback only: $(tr '\n' ' ' <<<"$bound")" \
  sh -c '! grep -v -- "-> 127.0.0.1:"' <<<"$bound"
uid=$(podman exec "$gw_pod-gateway" id -u 2>&1 || true)
check "the gateway container runs as uid 10001 (runAsUser; got $uid)" [ "$uid" = 10001 ]
refuses "the gateway's root filesystem is read-only (readOnlyRootFilesystem)" \
  podman exec "$gw_pod-gateway" touch /usr/local/bin/written
token=$(podman exec "$gw_pod-gateway" cat /var/run/secrets/segment/token 2>&1 || true)
check "the token (the Secret's content) is a mounted file the gateway reads" \
  [ "$token" = segment-sim-dev-token ]
upstream=$(podman exec "$gw_pod-gateway" cat /etc/audiences-gateway/config.yaml 2>&1 || true)
check "the ConfigMap is mounted as the gateway's --config" \
  grep -q "^upstream_url: http://$sim_pod.dns.podman:8080" <<<"$upstream"
if [ "$failed" != 0 ]; then
  podman logs "$gw_pod-gateway" 2>&1 | tail -n 30 >&2 || true
  podman logs "$sim_pod-segment-sim" 2>&1 | tail -n 10 >&2 || true
fi

podman kube down "$work/dev.yaml"
played=0
for pod in "$gw_pod" "$sim_pod"; do
  refuses "podman kube down removed the pod $pod" podman pod exists "$pod"
done
left=$(podman ps -a --format '{{.Names}}' | grep -E "^($gw_pod|$sim_pod)" || true)
check "no container of the overlay is left ($left)" [ -z "$left" ]
for secret in "${secrets[@]}"; do
  if podman secret inspect "$secret" >/dev/null 2>&1; then
    echo "note: podman kube down left the secret $secret (removed here)"
    podman secret rm "$secret" >/dev/null
  fi
  refuses "no secret $secret is left" podman secret inspect "$secret"
done
for volume in "${secrets[@]}" "${configmaps[@]}"; do
  if podman volume exists "$volume"; then
    echo "note: podman kube down left the volume $volume (removed here)"
    podman volume rm "$volume" >/dev/null
  fi
  refuses "no volume $volume is left" podman volume exists "$volume"
done
[ "$failed" = 0 ]
