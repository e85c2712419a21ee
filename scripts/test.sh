#!/usr/bin/env bash
# The test command: every test of the workspace, against a private RabbitMQ node with TLS
# that this script starts and stops (see scripts/with-rabbitmq.sh). Extra arguments go to
# `cargo test`, e.g. `scripts/test.sh -p tunasync-shared`. Ends with one summary line
# counting the tests of every test binary.
set -uo pipefail
cd "$(dirname "$0")/.."
if [ $# -eq 0 ]; then set -- --workspace; fi
log=$(mktemp)
trap 'rm -f "$log"' EXIT
# The end-to-end tests run the binaries, which `cargo test` alone does not build.
cargo build --workspace --bins --quiet || exit 1
scripts/with-rabbitmq.sh cargo test "$@" 2>&1 | tee "$log"
status=${PIPESTATUS[0]}
awk '/^test result:/ { passed += $4; failed += $6 }
     END { printf "\ntotal: %d passed, %d failed\n", passed, failed }' "$log"
exit "$status"
