#!/usr/bin/env bash
# The deploy lints, each a ctest test:
#   tests/deploy/lint.sh yamllint     every YAML file under deploy/ (settings: tests/deploy/yamllint.yaml)
#   tests/deploy/lint.sh shellcheck   every shell script under deploy/ and tests/deploy/
# Both tools are Debian packages (yamllint, shellcheck); a missing one fails with the command to
# install it.
set -euo pipefail
cd "$(dirname "$0")/../.."

need() {
  command -v "$1" >/dev/null 2>&1 && return 0
  echo "FAIL: '$1' is not installed: apt-get install -y $1 (deploy/local/install-deps.sh installs it)" >&2
  exit 1
}

case "${1:-}" in
  yamllint)
    need yamllint
    yamllint --version
    yamllint --strict -c tests/deploy/yamllint.yaml deploy tests/deploy/yamllint.yaml
    echo "yamllint: deploy/ is clean"
    ;;
  shellcheck)
    need shellcheck
    shellcheck --version | sed -n 2p
    mapfile -t scripts < <(find deploy tests/deploy -name node_modules -prune -o -type f -name '*.sh' -print | sort)
    [ ${#scripts[@]} -gt 0 ] || { echo "FAIL: no shell scripts found under deploy/" >&2; exit 1; }
    shellcheck --external-sources "${scripts[@]}"
    echo "shellcheck: ${#scripts[@]} scripts are clean: ${scripts[*]}"
    ;;
  *)
    echo "usage: $0 yamllint|shellcheck" >&2
    exit 2
    ;;
esac
