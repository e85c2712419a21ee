#!/usr/bin/env bash
# Runs the cargo-fuzz targets in fuzz/ (libFuzzer, coverage-guided) for a bounded number of
# inputs each. They need a nightly toolchain (`rustup toolchain install nightly`); cargo-fuzz
# itself is not needed: this builds them with the instrumentation flags it would use (no
# AddressSanitizer: the code under test has no `unsafe`; a panic is what they look for).
#
#   scripts/fuzz.sh [TARGET|all] [RUNS]        RUNS inputs per target (default 10000)
#   FUZZ_SECONDS=600 scripts/fuzz.sh texts 0   run one for ten minutes (RUNS 0: no count limit)
#
# Each target's corpus lives in target/fuzz/corpus/TARGET (seeded from the repository's
# configs and sample messages) and grows from run to run; a crashing input is written to
# target/fuzz/artifacts/TARGET/ and the script fails.
set -euo pipefail
cd "$(dirname "$0")/.."

TARGETS=(envelope texts manager_conf api_bodies)
which="${1:-all}"
runs="${2:-10000}"
seconds="${FUZZ_SECONDS:-0}"

if ! rustup toolchain list 2>/dev/null | grep -q '^nightly'; then
    echo "fuzz.sh: the cargo-fuzz targets need a nightly toolchain: rustup toolchain install nightly" >&2
    exit 2
fi

triple="$(rustc -vV | sed -n 's/^host: //p')"
flags=(
    -Cpasses=sancov-module
    -Cllvm-args=-sanitizer-coverage-level=4
    -Cllvm-args=-sanitizer-coverage-inline-8bit-counters
    -Cllvm-args=-sanitizer-coverage-pc-table
    -Cllvm-args=-sanitizer-coverage-trace-compares
    --cfg fuzzing
    -Cdebug-assertions
    -Coverflow-checks
)
# With an explicit --target, RUSTFLAGS reach only the target's code, not build scripts or
# proc macros.
RUSTFLAGS="${flags[*]}" cargo +nightly build --quiet --release --locked \
    --manifest-path fuzz/Cargo.toml --target "$triple" --target-dir target/fuzz --bins
bin="target/fuzz/$triple/release"

seed() {
    local target="$1" corpus="target/fuzz/corpus/$1"
    mkdir -p "$corpus"
    case "$target" in
        manager_conf)
            cp compose/config/manager.conf "$corpus/compose-manager.conf"
            find ../shared/fixtures -name 'manager*.conf' -exec cp {} "$corpus/" \; 2>/dev/null || true
            ;;
        texts)
            printf '2026-12-02T10:00:00+08:00' > "$corpus/time"
            printf '0001-01-01T00:00:00Z' > "$corpus/zero-time"
            printf '1.2T' > "$corpus/size"
            printf '23:00-06:00 Asia/Shanghai' > "$corpus/blackout"
            printf '0 */6 * * *' > "$corpus/cron"
            printf 'rsync://rsync.example.org/debian/' > "$corpus/upstream"
            ;;
        api_bodies)
            printf '{"worker_id":"w1","mirror_id":"debian","cmd":"start","args":[],"options":{"force":true}}' > "$corpus/cmd"
            printf '{"worker":"w1","mirror":"debian","message":"disk swap"}' > "$corpus/maintenance"
            ;;
        envelope) ;;
    esac
}

if [[ "$which" == all ]]; then
    selected=("${TARGETS[@]}")
else
    selected=("$which")
fi
for target in "${selected[@]}"; do
    seed "$target"
    mkdir -p "target/fuzz/artifacts/$target"
    start=$(date +%s)
    "$bin/$target" -runs="$runs" -max_total_time="$seconds" -max_len=4096 -print_final_stats=1 \
        -artifact_prefix="target/fuzz/artifacts/$target/" "target/fuzz/corpus/$target" \
        2> "target/fuzz/$target.log" || {
        tail -40 "target/fuzz/$target.log" >&2
        echo "fuzz.sh: $target failed; the input is in target/fuzz/artifacts/$target/" >&2
        exit 1
    }
    executed=$(sed -n 's/^stat::number_of_executed_units: *//p' "target/fuzz/$target.log")
    coverage=$(grep -o 'cov: [0-9]*' "target/fuzz/$target.log" | tail -1)
    echo "fuzz $target: ${executed:-?} inputs, no failure, ${coverage:-cov: ?}, $(( $(date +%s) - start )) s"
done
