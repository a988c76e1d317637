#!/usr/bin/env bash
# Runs every tokengate test. Tests that need Redis start their own redis-server on a free
# loopback port, so the binary must be installed: this script installs it (Debian/Ubuntu) when
# it is missing.
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v redis-server >/dev/null 2>&1; then
  if command -v apt-get >/dev/null 2>&1; then
    sudo=""
    [ "$(id -u)" -eq 0 ] || sudo="sudo"
    echo "installing redis-server (needed by the Redis store tests)..." >&2
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq redis-server >/dev/null
  else
    echo "redis-server is required for the tests; install it and re-run" >&2
    exit 1
  fi
fi

cargo test --locked "$@"
