#!/usr/bin/env bash
# Runs the micro benchmarks (benches/auth.rs) and prints each subject beside its reference,
# measured in the same run, as a ratio.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo bench --locked --bench auth -- "$@" >/dev/null
python3 - <<'PY'
import json, pathlib
root = pathlib.Path("target/criterion")
print(f"{'benchmark':<16} {'subject':>12} {'reference':>12} {'ratio':>8}")
for group in ["parse", "digest", "sanitize", "auth_cache_hit"]:
    est = lambda f: json.loads((root / group / f / "new" / "estimates.json").read_text())["median"]["point_estimate"]
    s, r = est("subject"), est("reference")
    print(f"{group:<16} {s:>10.1f}ns {r:>10.1f}ns {s / r:>7.2f}x")
PY
