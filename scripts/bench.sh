#!/usr/bin/env bash
# Runs the benchmarks (release build) against a private RabbitMQ node and prints the table.
# Arguments pick rows: jobs events page follow cmd rsync rss pools scale soak heartbeats
# (default: all). BENCH_SOAK_SECS sets the soak's length (default 1800).
# BENCH_STATIC=1 measures the static (musl) build instead of the default glibc one.
set -euo pipefail
cd "$(dirname "$0")/.."
command -v wrk >/dev/null || {
  if [ "$(id -u)" -eq 0 ]; then DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk >/dev/null
  else echo "bench: install wrk (apt-get install wrk)" >&2; exit 1; fi
}
if [ "${BENCH_STATIC:-0}" = 1 ]; then
  dir=$(scripts/build-static.sh -p tunasync-bench)
else
  cargo build --release --quiet --bins -p tunasync -p tunasync-bench
  dir=target/release
fi
exec scripts/with-rabbitmq.sh "$dir/tunasync-bench" "$@"
