#!/usr/bin/env bash
# Runs a command with a private RabbitMQ node (TLS listener, own epmd, free loopback ports)
# and stops the node afterwards, whatever the command did. The command sees the node in
# AMQP_URL, AMQPS_URL, AMQP_CA, … (see scripts/rmq-node.sh). Its exit code is ours.
#
#   scripts/with-rabbitmq.sh cargo test --workspace
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
[ $# -ge 1 ] || { echo "usage: $0 COMMAND [ARGS...]" >&2; exit 2; }

DIR=$(mktemp -d "${TMPDIR:-/tmp}/tunasync-rmq.XXXXXX")
cleanup() {
  "$HERE/rmq-node.sh" stop "$DIR" || true
  if [ -n "${KEEP_RMQ_DIR:-}" ]; then echo "broker files kept in $DIR" >&2; else rm -rf "$DIR"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

echo "starting a private RabbitMQ node in $DIR ..." >&2
started=$SECONDS
"$HERE/rmq-node.sh" start "$DIR" >/dev/null
echo "broker ready after $((SECONDS - started))s" >&2
set -a
# shellcheck disable=SC1091
. "$DIR/env"
set +a
status=0
"$@" || status=$?
exit $status
