#!/usr/bin/env bash
# Runs every cargo-fuzz target of the workspace (*/fuzz) for SECONDS each
# (default 600), starting from the committed seeds (fuzz/seeds/TARGET) and
# the local corpus (fuzz/corpus/TARGET, not committed), and prints per
# target the executions, the coverage libFuzzer reports (`cov:`, edges
# reached) and the crashes. Exits non-zero when any target crashed.
#
# Needs a nightly toolchain and cargo-fuzz (`cargo install cargo-fuzz`).
# Logs: target/fuzz-logs/CRATE-TARGET.log; crash inputs: */fuzz/artifacts/.
#
# Usage: benches/fuzz.sh [SECONDS] [TARGET…]   (TARGET: only these names)
set -uo pipefail

cd "$(dirname "$0")/.."
SECONDS_EACH=${1:-600}
shift || true
ONLY=("$@")
TARGET_DIR="$PWD/target/fuzz"
LOGS="$PWD/target/fuzz-logs"
mkdir -p "$LOGS"

if ! cargo +nightly --version >/dev/null 2>&1; then
    echo "fuzz.sh: no nightly toolchain (rustup toolchain install nightly)" >&2
    exit 2
fi
if ! cargo +nightly fuzz --version >/dev/null 2>&1; then
    echo "fuzz.sh: cargo-fuzz missing (cargo install cargo-fuzz --locked)" >&2
    exit 2
fi

wanted() {
    [ ${#ONLY[@]} -eq 0 ] && return 0
    local t
    for t in "${ONLY[@]}"; do [ "$t" = "$1" ] && return 0; done
    return 1
}

rows=()
failed=0
for manifest in */fuzz/Cargo.toml; do
    dir=$(dirname "$manifest")
    crate=${dir%/fuzz}
    for target in $(cd "$dir" && cargo +nightly fuzz list); do
        wanted "$target" || continue
        log="$LOGS/$crate-$target.log"
        corpora=("corpus/$target")
        mkdir -p "$dir/corpus/$target"
        seeds=0
        if [ -d "$dir/seeds/$target" ]; then
            corpora+=("seeds/$target")
            seeds=$(find "$dir/seeds/$target" -type f | wc -l)
        fi
        echo "fuzz.sh: $crate/$target for ${SECONDS_EACH}s ($seeds seeds)" >&2
        # Build first, so the time limit is all fuzzing.
        if ! (cd "$dir" && cargo +nightly fuzz build --target-dir "$TARGET_DIR" "$target") >"$log" 2>&1; then
            rows+=("$(printf '%-16s %-12s %6s %14s %8s %8s %8s  %s' "$crate" "$target" "$seeds" "-" "-" "-" "-" "BUILD FAILED")")
            failed=1
            continue
        fi
        (cd "$dir" && cargo +nightly fuzz run --target-dir "$TARGET_DIR" "$target" "${corpora[@]}" -- \
            -max_total_time="$SECONDS_EACH" -rss_limit_mb=2048 -print_final_stats=1) >>"$log" 2>&1
        status=$?
        execs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | tail -1 | grep -o '[0-9]*$')
        cov=$(grep -o ' cov: [0-9]*' "$log" | tail -1 | grep -o '[0-9]*$')
        ft=$(grep -o ' ft: [0-9]*' "$log" | tail -1 | grep -o '[0-9]*$')
        crashes=$(grep -c -E '^==[0-9]+==ERROR|deadly signal|panicked at' "$log")
        result=ok
        if [ "$status" -ne 0 ] || [ "$crashes" -ne 0 ]; then
            result="exit $status, see $log"
            [ "$crashes" -eq 0 ] && crashes=1
            failed=1
        fi
        rows+=("$(printf '%-16s %-12s %6s %14s %8s %8s %8s  %s' "$crate" "$target" "$seeds" "${execs:-?}" "${cov:-?}" "${ft:-?}" "$crashes" "$result")")
    done
done

printf '%-16s %-12s %6s %14s %8s %8s %8s  %s\n' crate target seeds executions cov ft crashes result
for row in "${rows[@]}"; do
    echo "$row"
done
exit "$failed"
