#!/usr/bin/env bash
# The test command: every test of the workspace, against a private RabbitMQ node with TLS
# that this script starts and stops (see scripts/with-rabbitmq.sh). Extra arguments go to
# `cargo test`, e.g. `scripts/test.sh -p tunasync-shared`.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ $# -eq 0 ]; then set -- --workspace; fi
exec scripts/with-rabbitmq.sh cargo test "$@"
