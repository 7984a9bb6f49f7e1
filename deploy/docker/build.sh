#!/usr/bin/env bash
# The image's build recipe: deploy/docker/Dockerfile's build stage RUNs exactly this script, and
# the test suite runs it too (ctest label `recipe`), so the recipe is proven without a Docker
# engine. On Debian 12, as root (or with the packages below already installed):
#
#   deploy/docker/build.sh [BUILD_DIR [OUT_DIR]]
#
#   BUILD_DIR  CMake build directory (default: build/docker)
#   OUT_DIR    what the runtime stage takes (default: BUILD_DIR/stage):
#                OUT_DIR/usr/local/bin/audiences-gateway, audiencesctl, segment-sim (stripped)
#                OUT_DIR/runtime-packages.txt: the Debian packages holding every shared library
#                  those programs load, plus ca-certificates, one `name=version` a line, at the
#                  versions this build linked against (the runtime stage installs exactly these)
#
# Environment: SAG_BUILD_TESTS (default OFF: no test is built), CMAKE_BUILD_TYPE (default
# Release), JOBS (default: the number of cores).
set -euo pipefail
cd "$(dirname "$0")/../.."

build="${1:-build/docker}"
out="${2:-$build/stage}"
tests="${SAG_BUILD_TESTS:-OFF}"
build_type="${CMAKE_BUILD_TYPE:-Release}"
jobs="${JOBS:-$(nproc)}"
programs=(audiences-gateway audiencesctl segment-sim)

# What building needs: a subset of deploy/local/install-deps.sh's list, which stays the source of
# truth (tests/deploy checks that every name here is there too). Names only, from the Debian 12
# archive the image's apt sources point at; see the Dockerfile for why there are no `=version` pins
# here. GoogleTest and benchmark are here because CMake's configure step finds them when the
# tests are configured (see the segment-sim note below).
build_packages=(
  build-essential cmake pkg-config ca-certificates
  libgrpc++-dev protobuf-compiler-grpc libprotobuf-dev protobuf-compiler
  libabsl-dev libcurl4-openssl-dev nlohmann-json3-dev rapidjson-dev libcpp-httplib-dev
  libspdlog-dev libhiredis-dev libyaml-cpp-dev libcli11-dev
  libgtest-dev libgmock-dev libbenchmark-dev
)

log() { echo "build.sh: $*" >&2; }
die() { log "error: $*"; exit 1; }

installed() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q "install ok installed"; }

missing=()
for p in "${build_packages[@]}"; do installed "$p" || missing+=("$p"); done
if [ ${#missing[@]} -gt 0 ]; then
  [ "$(id -u)" -eq 0 ] || die "run as root, or install these packages first: ${missing[*]}"
  log "installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

configure() {
  cmake -S . -B "$build" -DCMAKE_BUILD_TYPE="$build_type" -DSAG_BUILD_TESTS="$1" >/dev/null
}
has_target() {
  local targets
  targets=$(cmake --build "$build" --target help)
  grep -qE "^\.\.\. $1\$" <<<"$targets"
}

log "configuring $build ($build_type, SAG_BUILD_TESTS=$tests)"
configure "$tests"
# segment-sim (the dev overlay's upstream) is defined under tests/. When SAG_BUILD_TESTS=OFF leaves
# it out, configure with the tests but still build only the three programs below: the cost is the
# configure step finding GoogleTest and benchmark, no test is compiled.
if ! has_target segment-sim; then
  log "segment-sim is not a target with SAG_BUILD_TESTS=$tests; configuring with the tests" \
    "(only the programs are built)"
  configure ON
  has_target segment-sim || die "no segment-sim target in the CMake project"
fi

log "building ${programs[*]} with $jobs jobs"
cmake --build "$build" -j"$jobs" --target "${programs[@]}"

rm -rf "$out"
mkdir -p "$out/usr/local/bin"
for prog in "${programs[@]}"; do
  bin=$(find "$build" -type f -name "$prog" -perm -u+x -not -path '*/CMakeFiles/*' | head -n1)
  [ -n "$bin" ] || die "$prog was not built under $build"
  install -m 0755 -s "$bin" "$out/usr/local/bin/$prog"
done

# Every shared library the programs load, resolved by the dynamic loader.
declare -A libs=()
for prog in "${programs[@]}"; do
  deps=$(ldd "$out/usr/local/bin/$prog") || die "ldd failed on $prog"
  if grep -q "not found" <<<"$deps"; then
    die "$prog: unresolved shared libraries: $(grep 'not found' <<<"$deps" | tr -s ' \t' ' ')"
  fi
  while read -r lib; do
    [ -n "$lib" ] && libs["$lib"]=1
  done < <(awk '/=>/ { print $3 } !/=>/ && $1 ~ /^\// { print $1 }' <<<"$deps")
done

# The spellings dpkg may know a library file by: as loaded and resolved, each with and without
# /usr (Debian 12 merged /lib into /usr/lib, but dpkg records the path its package shipped).
spellings() {
  local f
  for f in "$1" "$(readlink -f "$1")"; do
    echo "$f"
    case "$f" in
      /usr/lib/*) echo "${f#/usr}" ;;
      /lib/* | /lib64/*) echo "/usr$f" ;;
    esac
  done
}
declare -A owner=()
mapfile -t paths < <(for lib in "${!libs[@]}"; do spellings "$lib"; done | sort -u)
# One dpkg-query for all: "libfoo1:amd64: /usr/lib/..." ("a, b: /path" when several list it).
while IFS= read -r line; do
  owner["${line#*: }"]=$(sed 's/: \/.*//;s/,.*//' <<<"$line")
done < <(dpkg-query -S "${paths[@]}" 2>/dev/null || true)

declare -A pkgs=()
for lib in "${!libs[@]}"; do
  pkg=""
  while read -r spelling; do
    pkg="${owner[$spelling]:-}"
    [ -n "$pkg" ] && break
  done < <(spellings "$lib")
  [ -n "$pkg" ] || die "no Debian package owns $lib"
  pkgs["$pkg"]=1
done
pkgs["ca-certificates"]=1 # the upstream is HTTPS

: >"$out/runtime-packages.txt"
while read -r pkg; do
  version=$(dpkg-query -W -f='${Version}' "$pkg") || die "cannot read the version of $pkg"
  echo "$pkg=$version" >>"$out/runtime-packages.txt"
done < <(printf '%s\n' "${!pkgs[@]}" | sort)

# The staged programs start (absl's --help exits 1 after printing the usage).
set +e
help=$("$out/usr/local/bin/audiences-gateway" --help 2>&1)
rc=$?
set -e
if [ "$rc" -gt 1 ] || ! grep -q "audiences-gateway" <<<"$help"; then
  die "audiences-gateway --help failed (exit $rc): $help"
fi

log "staged in $out:"
ls -l "$out/usr/local/bin" >&2
log "runtime packages ($(wc -l <"$out/runtime-packages.txt")): $(tr '\n' ' ' <"$out/runtime-packages.txt")"
