#!/usr/bin/env bash
# Runs the benchmarks (release build) against a private RabbitMQ node and prints the table.
# Arguments pick rows: jobs events cmd rsync rss heartbeats (default: all).
set -euo pipefail
cd "$(dirname "$0")/.."
command -v wrk >/dev/null || {
  if [ "$(id -u)" -eq 0 ]; then DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk >/dev/null
  else echo "bench: install wrk (apt-get install wrk)" >&2; exit 1; fi
}
cargo build --release --quiet --bins -p tunasync -p tunasync-bench
exec scripts/with-rabbitmq.sh target/release/tunasync-bench "$@"
