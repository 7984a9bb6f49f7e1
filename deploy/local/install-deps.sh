#!/usr/bin/env bash
# Installs what building, running and testing the gateway needs on Debian 12, as root.
# Idempotent and quick when everything is already there.
set -euo pipefail

packages=(
  build-essential cmake pkg-config ca-certificates git
  libgrpc++-dev protobuf-compiler-grpc libprotobuf-dev protobuf-compiler
  libabsl-dev libcurl4-openssl-dev nlohmann-json3-dev rapidjson-dev libcpp-httplib-dev
  libspdlog-dev libhiredis-dev libyaml-cpp-dev libssl-dev openssl libcli11-dev
  libgtest-dev libgmock-dev libbenchmark-dev clang libclang-rt-14-dev
  redis-server curl python3 python3-prometheus-client nginx-light ccache
)
# Benchmarks: h2load (a cheap HTTP/2 client that drives gRPC with a pre-framed body: bench_hits).
packages+=(nghttp2-client)
# Node.js runs the lint tools (buf); any Node >= 18 with npm will do, Debian's or another.
command -v npm >/dev/null 2>&1 || packages+=(nodejs npm)
# Deployment checks: linters, and kubectl for `kubectl kustomize` (any kubectl already installed
# is kept: Debian's kubernetes-client conflicts with other kubectl packages).
packages+=(yamllint shellcheck)
command -v kubectl >/dev/null 2>&1 || packages+=(kubernetes-client)
# Container tests (ctest label `container`): podman builds and runs deploy/docker/Dockerfile on a
# Debian 12 base that debootstrap makes (no registry needed). runc: crun cannot start containers
# on VMs without CAP_SYS_RESOURCE. catatonit: podman builds its pods' pause image from it (no
# registry). iptables: published ports. dnsname: pods reach each other by name (`podman kube play`).
packages+=(podman buildah runc catatonit iptables debootstrap containernetworking-plugins
  golang-github-containernetworking-plugin-dnsname)

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "install-deps: installing ${missing[*]}"
  if [ "$(id -u)" -ne 0 ]; then
    echo "install-deps: run as root (or install these packages): ${missing[*]}" >&2
    exit 1
  fi
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi
