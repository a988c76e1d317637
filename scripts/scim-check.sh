#!/usr/bin/env bash
# scim2-tester (PyPI `scim2-tester`, the RFC 7643/7644 compliance checker by Yaal Coop) against
# the live /scim/v2 endpoint: discovery (ServiceProviderConfig, ResourceTypes, Schemas), create,
# read, list, replace, PATCH add/replace/remove of every published attribute, attribute
# projection, delete, and error responses. Prints every check and a summary, and fails on any
# failure not listed, with its reason, in KNOWN_UNSUPPORTED in scripts/scim_check.py.
#
# Installs the checker in a virtualenv (SCIM_CHECK_VENV, default target/scim-check-venv) when
# missing, builds tokengate, starts it on free loopback ports with a SCIM token and the
# embedded store in a temporary directory, and stops it at the end.
set -euo pipefail
cd "$(dirname "$0")/.."

venv="${SCIM_CHECK_VENV:-$PWD/target/scim-check-venv}"
if [ ! -x "$venv/bin/python" ] || ! "$venv/bin/python" -c 'import scim2_tester, httpx2' 2>/dev/null; then
  echo "installing scim2-tester into $venv..." >&2
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check \
    scim2-tester==0.5.2 scim2-client==0.13.2 scim2-models==0.12.3 httpx2==2.16.2
fi

cargo build --locked --quiet --bin tokengate

work="$(mktemp -d)"
pid=""
cleanup() {
  if [ -n "$pid" ]; then
    kill "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
  fi
  rm -rf "$work"
}
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
proxy_port="$(free_port)"
admin_port="$(free_port)"
token="scim-check-$(python3 -c 'import secrets; print(secrets.token_hex(24))')"
cat >"$work/tokengate.yaml" <<YAML
listen: 127.0.0.1:$proxy_port
upstream: http://127.0.0.1:9
store:
  embedded:
    path: $work/tokens.redb
admin:
  listen: 127.0.0.1:$admin_port
identity:
  groups:
    engineering: {roles: [viewer, developer]}
YAML

TOKENGATE_SCIM_TOKEN="$token" target/debug/tokengate serve --config "$work/tokengate.yaml" >"$work/tokengate.log" 2>&1 &
pid=$!
base="http://127.0.0.1:$admin_port"
for _ in $(seq 1 100); do
  if curl -fsS "$base/readyz" >/dev/null 2>&1; then break; fi
  if ! kill -0 "$pid" 2>/dev/null; then cat "$work/tokengate.log" >&2; exit 1; fi
  sleep 0.1
done
curl -fsS "$base/readyz" >/dev/null

status=0
"$venv/bin/python" scripts/scim_check.py "$base/scim/v2" "$token" || status=$?
if grep -q "panicked" "$work/tokengate.log"; then
  echo "tokengate panicked during the run:" >&2
  grep -A5 "panicked" "$work/tokengate.log" >&2
  status=1
fi
exit "$status"
