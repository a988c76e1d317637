#!/usr/bin/env bash
# The load harness (benches/load): tokengate beside nginx on this machine over loopback; prints
# one report and writes it to target/bench-load/report.md. Installs nginx, wrk and redis-server
# from Debian when missing. Options: --reps, --duration, --tokens, ... (see --help).
# Takes about 10 minutes with the defaults (5 repetitions of 5 s, 1,000,000 tokens).
set -euo pipefail
cd "$(dirname "$0")/.."

missing=()
command -v nginx >/dev/null 2>&1 || [ -x /usr/sbin/nginx ] || missing+=(nginx)
command -v wrk >/dev/null 2>&1 || missing+=(wrk)
command -v redis-server >/dev/null 2>&1 || missing+=(redis-server)
command -v taskset >/dev/null 2>&1 || missing+=(util-linux)
if [ ${#missing[@]} -gt 0 ]; then
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  echo "installing ${missing[*]} (needed by the load harness)..." >&2
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${missing[@]}" >/dev/null
fi

exec cargo bench --locked --bench load -- "$@"
