#!/usr/bin/env bash
# deploy/local/run.sh stops cleanly on Ctrl-C: the terminal's SIGINT (sent to the script's whole
# process group, as a terminal does) makes the script send the gateway exactly one SIGTERM; the
# gateway drains ("shutting down" ... "stopped", never "second signal") and exits 0, and so does
# the script; segment-sim and the gateway are gone afterwards.
#
#   tests/deploy/local_run_test.sh GATEWAY_BIN SIM_BIN
set -euo pipefail
repo=$(cd "$(dirname "$0")/../.." && pwd)
gateway_bin=$1
sim_bin=$2
work=$(mktemp -d "${TMPDIR:-/tmp}/sag-test-localrun.XXXXXX")
script_pid=""
# shellcheck disable=SC2317  # called by the EXIT trap
finish() {
  # set -e applies here too: nothing left to kill is the good case, not an error.
  if [ -n "$script_pid" ]; then kill -KILL -- "-$script_pid" 2>/dev/null || true; fi
  pkill -KILL -f -- "--listen=127.0.0.1:$gw_port" 2>/dev/null || true
  pkill -KILL -f -- "--listen=127.0.0.1:$sim_port" 2>/dev/null || true
  rm -rf "$work"
}
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
gw_port=$(free_port)
sim_port=$(free_port)
metrics_port=$(free_port)
trap finish EXIT

# wait_for SECONDS DESCRIPTION COMMAND...: polls COMMAND every 0.1 s until it succeeds.
wait_for() {
  local limit=$(($1 * 10)) what=$2
  shift 2
  for _ in $(seq "$limit"); do "$@" >/dev/null 2>&1 && return 0; sleep 0.1; done
  echo "FAIL: $what within the bound" >&2
  cat "$work/out" >&2
  exit 1
}

# A process group of its own stands for the terminal's foreground job. Job control
# on (set -m): without it bash starts background jobs with SIGINT ignored, and a signal ignored on
# entry cannot be trapped, so run.sh would never see the Ctrl-C a terminal would deliver.
set -m
GATEWAY_BIN=$gateway_bin SIM_BIN=$sim_bin GATEWAY_LISTEN=127.0.0.1:$gw_port \
  SIM_LISTEN=127.0.0.1:$sim_port "$repo/deploy/local/run.sh" \
  --metrics_listen="127.0.0.1:$metrics_port" --shutdown_grace=5s >"$work/out" 2>&1 &
script_pid=$!
set +m
wait_for 60 "the gateway answers /metrics" curl -fsS "http://127.0.0.1:$metrics_port/metrics"

kill -INT -- "-$script_pid"  # Ctrl-C: SIGINT to the foreground process group
rc=0
for _ in $(seq 300); do kill -0 "$script_pid" 2>/dev/null || break; sleep 0.1; done
if kill -0 "$script_pid" 2>/dev/null; then
  echo "FAIL: run.sh still running 30 s after Ctrl-C" >&2
  cat "$work/out" >&2
  exit 1
fi
wait "$script_pid" || rc=$?
script_pid=""

failed=0
# holds DESCRIPTION COMMAND...: the command succeeds; lacks: it fails.
holds() { if "${@:2}"; then echo "ok: $1"; else echo "FAIL: $1" >&2; failed=1; fi; }
lacks() { if "${@:2}"; then echo "FAIL: $1" >&2; failed=1; else echo "ok: not so: $1"; fi; }
up() { curl -fsS "$1" >/dev/null 2>&1; }
holds "run.sh exits 0 after Ctrl-C (got $rc)" [ "$rc" = 0 ]
holds "the gateway drained once" [ "$(grep -c '"msg":"shutting down"' "$work/out")" = 1 ]
holds "the gateway stopped cleanly" grep -q '"msg":"stopped"' "$work/out"
lacks "a second signal reached the gateway" grep -q "second signal" "$work/out"
lacks "the gateway still answers" up "http://127.0.0.1:$metrics_port/metrics"
lacks "segment-sim still answers" up "http://127.0.0.1:$sim_port/__sim/stats"
if [ "$failed" != 0 ]; then cat "$work/out" >&2; exit 1; fi
echo "local_run: Ctrl-C stops deploy/local/run.sh cleanly"
