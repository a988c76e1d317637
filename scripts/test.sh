#!/usr/bin/env bash
# Runs every tokengate test. What the tests need beyond Rust is installed when missing:
# - redis-server, redis-cli and redis-sentinel (the Redis tests start their own servers, sentinels
#   and clusters on free loopback ports);
# - Debian's chromium and, from npm, playwright-core (the Tokens page browser test) and
#   oidc-provider (the OpenID provider the sign-in tests start).
set -euo pipefail
cd "$(dirname "$0")/.."

missing=()
command -v redis-server >/dev/null 2>&1 || missing+=(redis-server)
command -v redis-cli >/dev/null 2>&1 || missing+=(redis-tools)
command -v redis-sentinel >/dev/null 2>&1 || missing+=(redis-sentinel)
[ -x /usr/bin/chromium ] || missing+=(chromium)
command -v node >/dev/null 2>&1 || missing+=(nodejs npm)
if [ ${#missing[@]} -gt 0 ]; then
  if command -v apt-get >/dev/null 2>&1; then
    sudo=""
    [ "$(id -u)" -eq 0 ] || sudo="sudo"
    echo "installing ${missing[*]} (needed by the tests)..." >&2
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${missing[@]}" >/dev/null
  else
    echo "the tests need: ${missing[*]}; install them and re-run" >&2
    exit 1
  fi
fi
if [ ! -d tests/e2e/node_modules/playwright-core ] || [ ! -d tests/e2e/node_modules/oidc-provider ]; then
  npm ci --prefix tests/e2e --no-audit --no-fund >/dev/null
fi

cargo test --locked "$@"
