#!/usr/bin/env bash
# The fastest way to a working tunasync: `tunasync standalone` runs the manager and a
# worker in one process, without a broker. Its demo mirrors (the compose stack's
# worker-1.conf, without [broker]) sync from a local rsync daemon; the API and status page
# are on loopback over plain HTTP. Needs Rust and rsync (installed when missing, as root).
# Ctrl-C stops everything it started.
#
#   scripts/standalone.sh            (STANDALONE_DIR=... to choose where its files go)
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
DIR=${STANDALONE_DIR:-$ROOT/.standalone}

say() { printf '\033[1m==> %s\033[0m\n' "$*"; }
die() { echo "standalone: $*" >&2; exit 1; }

if ! command -v rsync >/dev/null; then
  if [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null; then
    say "installing rsync"
    DEBIAN_FRONTEND=noninteractive apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq rsync >/dev/null
  else
    die "please install rsync: sudo apt-get install rsync"
  fi
fi
command -v cargo >/dev/null || die "cargo is missing: install Rust from https://rustup.rs"

say "building (release)"
(cd "$ROOT" && cargo build --release --bins --quiet)
BIN=$ROOT/target/release

# A loopback port nothing listens on, from FIRST up.
free_port() {
  local port
  for port in $(seq "$1" $(($1 + 200))); do
    if ! (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then echo "$port"; return; fi
  done
  die "no free port from $1"
}

rm -rf "$DIR"
mkdir -p "$DIR"/{state,srv,logs}
pids=()
cleanup() {
  trap - EXIT INT TERM
  say "stopping"
  for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  for pid in "${pids[@]}"; do
    for _ in $(seq 100); do [ -d "/proc/$pid" ] && [ "$(awk '{print $3}' "/proc/$pid/stat" 2>/dev/null)" != Z ] || break; sleep 0.1; done
    kill -KILL "$pid" 2>/dev/null || true
  done
}
trap cleanup EXIT
trap 'exit 130' INT TERM

"$ROOT/scripts/demo-upstream.sh" "$DIR"
RSYNC_PORT=$(free_port 18730)
rsync --daemon --no-detach --config="$DIR/rsyncd.conf" --port="$RSYNC_PORT" --address=127.0.0.1 >"$DIR/logs/rsyncd.log" 2>&1 &
pids+=($!)

PORT=$(free_port 14242)
# worker-1.conf without its [broker] section (everything up to [global]), local paths.
sed -e '/^\[broker\]/,/^\[global\]/{/^\[global\]/!d}' \
    -e '1,2d' \
    -e "s#/srv/tunasync#$DIR/srv#g" \
    -e "s#upstream:873#127.0.0.1:$RSYNC_PORT#g" \
    "$ROOT/compose/config/worker-1.conf" >"$DIR/worker.conf"
printf 'manager_addr = "127.0.0.1"\nmanager_port = %s\n' "$PORT" >"$DIR/ctl.conf"

say "starting tunasync standalone"
"$BIN/tunasync" standalone -c "$DIR/worker.conf" --port "$PORT" \
  --db-file "$DIR/state/tunasync.redb" >"$DIR/logs/standalone.log" 2>&1 &
pids+=($!)

ctl() { "$BIN/tunasynctl" -c "$DIR/ctl.conf" "$@"; }
for _ in $(seq 300); do
  if ctl list -a 2>/dev/null | grep -q '"success"'; then break; fi
  for pid in "${pids[@]}"; do [ -d "/proc/$pid" ] || die "a process exited early; see $DIR/logs"; done
  sleep 0.2
done

cat <<EOT

tunasync is running in one process (files in $DIR, log in $DIR/logs/standalone.log).

  Status page:       http://127.0.0.1:$PORT/
  Its data:          curl http://127.0.0.1:$PORT/jobs

  Try (commands are trusted from this host's loopback addresses):
    alias tunasynctl='$BIN/tunasynctl -c $DIR/ctl.conf'
    tunasynctl list -a -f '{{.Name}} {{.Status}} {{.Size}}'
    tunasynctl start -w worker-1 demo-command
    tunasynctl history -w worker-1 demo-rsync
    tunasynctl logs -w worker-1 -n 20 demo-rsync

  A second host later: add [broker] to $DIR/worker.conf and a manager.conf, and
  run \`tunasync manager\` and \`tunasync worker\` instead; the store carries over.
  Ctrl-C stops everything.
EOT
ctl list -a -f '{{.Name}} {{.Status}} {{.Size}}' || true
if [ -n "${STANDALONE_EXIT_WHEN_READY:-}" ]; then exit 0; fi
while :; do sleep 3600 & wait $!; done
