#!/usr/bin/env bash
# Runs every cargo-fuzz target in fuzz/ for SECONDS_PER_TARGET (default 60) seconds.
#
#   scripts/fuzz.sh [SECONDS_PER_TARGET]
#
# Installs cargo-fuzz when missing and builds all targets once. Each target runs on its corpus
# in fuzz/corpus/<target>: the committed hand-written seeds (`seed-*`) plus what earlier runs
# found (kept locally, ignored by git; rename one to `seed-*` to commit it). Exits non-zero when any target
# crashes, panics, times out or runs out of memory; the input is saved under
# fuzz/artifacts/<target>/. Ends with one line per target: runs, corpus files, seconds.
#
# Sanitizer: none by default. The toolchain is stable, where AddressSanitizer (`-Zsanitizer`)
# only works with RUSTC_BOOTSTRAP=1; tokengate forbids unsafe code, so what the runs need is the
# coverage instrumentation, which works on stable as is. FUZZ_SANITIZER=address runs under ASan
# (this script then sets RUSTC_BOOTSTRAP=1; the first build takes as long as a cold one).
set -euo pipefail

seconds="${1:-60}"
sanitizer="${FUZZ_SANITIZER:-none}"
if [ "$sanitizer" != none ]; then
    export RUSTC_BOOTSTRAP=1
fi
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root/fuzz"

if ! cargo fuzz --version >/dev/null 2>&1; then
    echo "installing cargo-fuzz" >&2
    cargo install cargo-fuzz@0.13.2 --locked
fi

start=$(date +%s)
targets=$(cargo fuzz list)
cargo fuzz build --sanitizer "$sanitizer"
echo "built in $(($(date +%s) - start)) s" >&2

failed=()
summary=()
for target in $targets; do
    corpus="corpus/$target"
    mkdir -p "$corpus" "artifacts/$target"
    log="$(mktemp)"
    t0=$(date +%s)
    status=0
    # -timeout: one input taking over 10 s is a finding (a hang), not a slow machine.
    cargo fuzz run --sanitizer "$sanitizer" "$target" "$corpus" -- \
        -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 >"$log" 2>&1 || status=$?
    elapsed=$(($(date +%s) - t0))
    runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
    files=$(find "$corpus" -type f | wc -l)
    if [ "$status" -ne 0 ]; then
        failed+=("$target")
        echo "---- $target failed (exit $status); last lines of its log:" >&2
        tail -40 "$log" >&2
    fi
    summary+=("$(printf '%-16s runs %10s  corpus %5s files  %4s s  %s' "$target" "${runs:-?}" "$files" "$elapsed" \
        "$([ "$status" -eq 0 ] && echo ok || echo FAILED)")")
    rm -f "$log"
done

echo
printf '%s\n' "${summary[@]}"
echo "total $(($(date +%s) - start)) s (sanitizer: $sanitizer)"
if [ "${#failed[@]}" -ne 0 ]; then
    echo "crashes in: ${failed[*]} (inputs in fuzz/artifacts/)" >&2
    exit 1
fi
