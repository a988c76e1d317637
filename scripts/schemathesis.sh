#!/usr/bin/env bash
# Schemathesis (PyPI `schemathesis`) against the live admin API, checked against
# docs/openapi.yaml: every check (server errors, status codes, content types, headers, response
# schemas, negative data rejected, positive data accepted, auth, ...) over the examples,
# coverage, fuzzing and stateful phases, authenticated with an operator key. Fails on any
# failure. Bounded: at most SCHEMATHESIS_MAX_EXAMPLES cases per operation (default 40) and
# SCHEMATHESIS_MAX_TIME seconds (default 180).
#
# Installs schemathesis in a virtualenv (SCHEMATHESIS_VENV, default target/schemathesis-venv)
# when missing, builds tokengate, starts it on free loopback ports with the embedded store in a
# temporary directory, and stops it at the end. Extra arguments go to `schemathesis run`.
set -euo pipefail
cd "$(dirname "$0")/.."

venv="${SCHEMATHESIS_VENV:-$PWD/target/schemathesis-venv}"
if [ ! -x "$venv/bin/schemathesis" ]; then
  echo "installing schemathesis into $venv..." >&2
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check schemathesis==4.32.5
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
key="schemathesis-operator-key-$(python3 -c 'import secrets; print(secrets.token_hex(16))')"
cat >"$work/tokengate.yaml" <<YAML
listen: 127.0.0.1:$proxy_port
upstream: http://127.0.0.1:9
store:
  embedded:
    path: $work/tokens.redb
admin:
  listen: 127.0.0.1:$admin_port
tokens:
  allow_restore: true
YAML

TOKENGATE_ADMIN_KEYS="$key" target/debug/tokengate serve --config "$work/tokengate.yaml" >"$work/tokengate.log" 2>&1 &
pid=$!
base="http://127.0.0.1:$admin_port"
for _ in $(seq 1 100); do
  if curl -fsS "$base/readyz" >/dev/null 2>&1; then break; fi
  if ! kill -0 "$pid" 2>/dev/null; then cat "$work/tokengate.log" >&2; exit 1; fi
  sleep 0.1
done
curl -fsS "$base/readyz" >/dev/null

# The principal the document's examples name as an owner, so valid creations can succeed.
curl -fsS -X PUT "$base/v1/principals/alice" -H "Authorization: Bearer $key" \
  -H 'Content-Type: application/json' \
  -d '{"display_name": "Alice", "org": "acme", "roles": ["viewer", "developer", "admin"]}' >/dev/null

status=0
root="$PWD"
# From the temporary directory, so schemathesis' own cache (.schemathesis/) stays out of the tree.
(cd "$work" && "$venv/bin/schemathesis" run "$root/docs/openapi.yaml" \
  --url "$base" \
  --header "Authorization: Bearer $key" \
  --checks all \
  --phases examples,coverage,fuzzing,stateful \
  --max-examples "${SCHEMATHESIS_MAX_EXAMPLES:-40}" \
  --max-time "${SCHEMATHESIS_MAX_TIME:-180}" \
  --seed "${SCHEMATHESIS_SEED:-1}" \
  --workers 1 \
  --request-timeout 10 \
  --report-dir "$root/target/schemathesis-report" \
  --generation-database "$root/target/schemathesis-db" \
  "$@") || status=$?
if grep -q "panicked" "$work/tokengate.log"; then
  echo "tokengate panicked during the run:" >&2
  grep -A5 "panicked" "$work/tokengate.log" >&2
  status=1
fi
exit "$status"
