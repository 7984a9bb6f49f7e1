#!/usr/bin/env bash
# The ctest fixture of the container tests: builds deploy/docker/Dockerfile with podman, on a
# Debian 12 base image made here when no registry is reachable.
#
#   tests/deploy/container_image_test.sh
#
# 1. Base: SAG_BASE_IMAGE (default localhost/sag-debian:12) is reused when podman's storage has it;
#    otherwise `debootstrap --variant=minbase bookworm` from the Debian mirror the machine's apt
#    sources name, trimmed like debian:12-slim (no docs, man pages or locales; apt lists empty;
#    sources bookworm, bookworm-updates, bookworm-security), then `podman import`.
# 2. Image: `podman build` (layer cache on) with DEBIAN_IMAGE=SAG_BASE_IMAGE, tagged SAG_IMAGE.
# 3. Checks and figures: the image runs as 10001:10001 with the gateway as entrypoint, holds the
#    three programs, and is at most 75 MB over its base. Prints
#    `FIGURE image_build_s=`, `FIGURE image_over_base_mb=`, `FIGURE base_image_mb=`.
# Skips (77) where podman cannot run, unless SAG_REQUIRE_CONTAINERS=1.
set -euo pipefail
repo=$(cd "$(dirname "$0")/../.." && pwd)
# shellcheck source=tests/deploy/container_lib.sh
. "$repo/tests/deploy/container_lib.sh"
work=$(mktemp -d "${TMPDIR:-/var/tmp}/sag-image.XXXXXX")
trap 'rm -rf "$work"' EXIT
ctr_setup "$work"
max_over_base_mb=75

# The mirror of SUITE in the machine's apt sources (deb822 or one-line form alike).
mirror_of() {
  # shellcheck disable=SC2016  # apt's own $(FIELD) placeholders
  apt-get indextargets --format '$(SITE) $(RELEASE)' 2>/dev/null | awk -v s="$1" '$2 == s { print $1; exit }'
}

# Trims ROOT like debian:12-slim: dpkg skips docs, man pages and locales from now on, and what
# debootstrap already installed of them goes.
slimify() {
  local root=$1
  cat >"$root/etc/dpkg/dpkg.cfg.d/slim" <<'EOF'
path-exclude /usr/share/doc/*
path-include /usr/share/doc/*/copyright
path-exclude /usr/share/man/*
path-exclude /usr/share/groff/*
path-exclude /usr/share/info/*
path-exclude /usr/share/lintian/*
path-exclude /usr/share/linda/*
path-exclude /usr/share/locale/*
path-include /usr/share/locale/locale.alias
EOF
  find "$root/usr/share/doc" -mindepth 1 -not -name copyright -not -type d -delete
  find "$root/usr/share/doc" -mindepth 1 -type d -empty -delete
  rm -rf "$root"/usr/share/{man,groff,info,lintian,linda}/*
  find "$root/usr/share/locale" -mindepth 1 -maxdepth 1 -not -name locale.alias -exec rm -rf {} +
  rm -rf "$root"/var/lib/apt/lists/* "$root"/var/cache/apt/*.bin "$root"/var/cache/apt/archives/*.deb
  rm -rf "$root"/var/log/* "$root"/tmp/* "$root"/root/.cache
}

make_base() {
  command -v debootstrap >/dev/null 2>&1 ||
    ctr_skip "debootstrap is not installed (deploy/local/install-deps.sh installs it)"
  local main security root=$work/rootfs start
  main=$(mirror_of bookworm)
  security=$(mirror_of bookworm-security)
  main=${main:-http://deb.debian.org/debian}
  security=${security:-http://deb.debian.org/debian-security}
  echo "base: debootstrap --variant=minbase bookworm from $main (security: $security)"
  start=$(date +%s)
  if ! debootstrap --variant=minbase bookworm "$root" "$main" >"$work/debootstrap.log" 2>&1; then
    tail -n 30 "$work/debootstrap.log" >&2
    echo "FAIL: debootstrap from $main failed" >&2
    exit 1
  fi
  rm -f "$root/etc/apt/sources.list"
  cat >"$root/etc/apt/sources.list.d/debian.sources" <<EOF
Types: deb
URIs: ${main%/}
Suites: bookworm bookworm-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb
URIs: ${security%/}
Suites: bookworm-security
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
EOF
  slimify "$root"
  tar --numeric-owner --xattrs -C "$root" -c . |
    podman import --quiet --change 'CMD ["bash"]' \
      --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' --message "debootstrap --variant=minbase bookworm" \
      - "$SAG_BASE_IMAGE" >/dev/null
  echo "FIGURE base_image_s=$(($(date +%s) - start))"
}

if podman image exists "$SAG_BASE_IMAGE"; then
  echo "base: reusing $SAG_BASE_IMAGE from podman's storage"
else
  make_base
fi

start=$(date +%s.%N)
if ! podman build --layers -f "$repo/deploy/docker/Dockerfile" \
  --build-arg DEBIAN_IMAGE="$SAG_BASE_IMAGE" -t "$SAG_IMAGE" "$repo" >"$work/build.log" 2>&1; then
  tail -n 60 "$work/build.log" >&2
  echo "FAIL: podman build of deploy/docker/Dockerfile failed" >&2
  exit 1
fi
grep -E '^STEP|Using cache' "$work/build.log" || true
echo "FIGURE image_build_s=$(awk -v s="$start" -v e="$(date +%s.%N)" 'BEGIN { printf "%.0f", e - s }')"

failed=0
check() { if "${@:2}"; then echo "ok: $1"; else echo "FAIL: $1" >&2; failed=1; fi; }
size=$(podman image inspect --format '{{.Size}}' "$SAG_IMAGE")
base_size=$(podman image inspect --format '{{.Size}}' "$SAG_BASE_IMAGE")
over=$(ctr_mb $((size - base_size)))
echo "FIGURE base_image_mb=$(ctr_mb "$base_size")"
echo "FIGURE image_mb=$(ctr_mb "$size")"
echo "FIGURE image_over_base_mb=$over"
check "image is at most $max_over_base_mb MB over its base ($over MB)" \
  awk -v o="$over" -v m="$max_over_base_mb" 'BEGIN { exit !(o <= m) }'
user=$(podman image inspect --format '{{.Config.User}}' "$SAG_IMAGE")
check "image user is 10001:10001 (got $user)" [ "$user" = 10001:10001 ]
entrypoint=$(podman image inspect --format '{{json .Config.Entrypoint}}' "$SAG_IMAGE")
check "entrypoint is the gateway (got $entrypoint)" \
  [ "$entrypoint" = '["/usr/local/bin/audiences-gateway"]' ]
for prog in audiences-gateway audiencesctl segment-sim; do
  out=$(podman run --rm --network none --entrypoint "/usr/local/bin/$prog" "$SAG_IMAGE" --help 2>&1 || true)
  check "$prog starts in the image (its --help names it)" grep -q "$prog" <<<"$out"
done
[ "$failed" = 0 ]
