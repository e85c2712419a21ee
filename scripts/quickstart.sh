#!/usr/bin/env bash
# A local tunasync cluster in one command: a private RabbitMQ node with TLS, the manager
# (HTTPS), a worker whose demo mirrors sync from a local rsync daemon, and a second worker
# that logs in with its client certificate. Ctrl-C stops everything it started.
#
#   scripts/quickstart.sh            (QUICKSTART_DIR=... to choose where its files go)
#
# It uses the compose stack's files (compose/config, compose/rabbitmq) with local addresses
# and paths substituted, so what you see here is what the compose stack runs.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
DIR=${QUICKSTART_DIR:-$ROOT/.quickstart}

say() { printf '\033[1m==> %s\033[0m\n' "$*"; }
die() { echo "quickstart: $*" >&2; exit 1; }

# 1. What it needs.
need=()
[ -x /usr/lib/rabbitmq/bin/rabbitmq-server ] || need+=(rabbitmq-server)
command -v rsync >/dev/null || need+=(rsync)
command -v openssl >/dev/null || need+=(openssl)
command -v python3 >/dev/null || need+=(python3)
command -v pgrep >/dev/null || need+=(procps)
if [ ${#need[@]} -gt 0 ]; then
  if [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null; then
    say "installing ${need[*]}"
    DEBIAN_FRONTEND=noninteractive apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
  else
    die "please install: sudo apt-get install ${need[*]}"
  fi
fi
command -v cargo >/dev/null || die "cargo is missing: install Rust from https://rustup.rs"

say "building (release)"
(cd "$ROOT" && cargo build --release --bins --quiet)
BIN=$ROOT/target/release

rm -rf "$DIR"
mkdir -p "$DIR"/{pki,state,srv,logs,upstream}

pids=()
cleanup() {
  trap - EXIT INT TERM
  say "stopping"
  for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  for pid in "${pids[@]}"; do
    for _ in $(seq 100); do [ -d "/proc/$pid" ] && [ "$(awk '{print $3}' "/proc/$pid/stat" 2>/dev/null)" != Z ] || break; sleep 0.1; done
    kill -KILL "$pid" 2>/dev/null || true
  done
  "$ROOT/scripts/rmq-node.sh" stop "$DIR/broker" || true
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# 2. The broker, with compose's users and permissions.
say "starting a private RabbitMQ node with TLS"
RMQ_DEFINITIONS=$ROOT/compose/rabbitmq/definitions.json "$ROOT/scripts/rmq-node.sh" start "$DIR/broker" >/dev/null
# shellcheck disable=SC1091
. "$DIR/broker/env"
CA_DIR=$DIR/broker/certs
"$ROOT/certs/mkcerts.sh" host "$CA_DIR" manager localhost 127.0.0.1 >/dev/null
"$ROOT/certs/mkcerts.sh" client "$CA_DIR" worker-2 >/dev/null
cp "$CA_DIR"/{ca.crt,manager.crt,manager.key,worker-2.crt,worker-2.key} "$DIR/pki/"
head -c 24 /dev/urandom | base64 | tr -d '/+=' >"$DIR/pki/tokens"

# 3. A demo upstream served by rsync --daemon.
"$ROOT/scripts/demo-upstream.sh" "$DIR"
RSYNC_PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
rsync --daemon --no-detach --config="$DIR/rsyncd.conf" --port="$RSYNC_PORT" --address=127.0.0.1 >"$DIR/logs/rsyncd.log" 2>&1 &
pids+=($!)

# 4. The compose stack's config files, with local addresses and paths.
PORT=14242
if ! python3 -c "import socket; s=socket.socket(); s.bind(('127.0.0.1',$PORT))" 2>/dev/null; then
  PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
fi
localize() {
  sed -e "s#rabbitmq:5671#localhost:$AMQPS_PORT#" \
      -e "s#/pki/#$DIR/pki/#g" \
      -e "s#/var/lib/tunasync#$DIR/state#" \
      -e "s#/srv/tunasync#$DIR/srv#g" \
      -e "s#upstream:873#127.0.0.1:$RSYNC_PORT#g" \
      -e "s#addr = \"0.0.0.0\"#addr = \"127.0.0.1\"#" \
      -e "s#^port = 14242#port = $PORT#" \
      -e "s#^manager_port = 14242#manager_port = $PORT#" \
      "$ROOT/compose/config/$1" >"$DIR/$1"
}
for file in manager.conf worker-1.conf worker-2.conf ctl.conf; do localize "$file"; done

say "starting the manager and two workers"
"$BIN/tunasync" manager -c "$DIR/manager.conf" >"$DIR/logs/manager.log" 2>&1 &
pids+=($!)
"$BIN/tunasync" worker -c "$DIR/worker-1.conf" >"$DIR/logs/worker-1.log" 2>&1 &
pids+=($!)
"$BIN/tunasync" worker -c "$DIR/worker-2.conf" >"$DIR/logs/worker-2.log" 2>&1 &
pids+=($!)

ctl() { "$BIN/tunasynctl" -c "$DIR/ctl.conf" "$@"; }
for _ in $(seq 300); do
  if ctl list -a 2>/dev/null | grep -q '"success"'; then break; fi
  for pid in "${pids[@]}"; do [ -d "/proc/$pid" ] || die "a process exited early; see $DIR/logs"; done
  sleep 0.2
done

cat <<EOT

tunasync is running (files in $DIR, logs in $DIR/logs).

  Status page (the certificate is from the CA in $DIR/pki/ca.crt: import it or
  accept the browser's warning):
    https://localhost:$PORT/
  Its data (tunasync.json):
    curl --cacert $DIR/pki/ca.crt https://localhost:$PORT/jobs

  Try:
    alias tunasynctl='$BIN/tunasynctl -c $DIR/ctl.conf'
    tunasynctl list -a -f '{{.Name}} {{.Status}} {{.Size}}'
    tunasynctl workers
    tunasynctl start -w worker-1 demo-command
    tunasynctl history -w worker-1 demo-rsync
    tunasynctl logs -w worker-1 -n 20 demo-rsync
    tunasynctl stop -w worker-1 demo-two-stage

  Ctrl-C stops everything.
EOT
ctl list -a -f '{{.Name}} {{.Status}} {{.Size}}' || true
if [ -n "${QUICKSTART_EXIT_WHEN_READY:-}" ]; then exit 0; fi
while :; do sleep 3600 & wait $!; done
