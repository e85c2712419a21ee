#!/usr/bin/env bash
# The demo mirrors' upstream, shared by scripts/standalone.sh and scripts/quickstart.sh:
# a small Debian-like tree in DIR/upstream and DIR/rsyncd.conf serving it as module `pub`.
# The caller starts `rsync --daemon --no-detach --config=DIR/rsyncd.conf` itself (and so
# owns its PID).
#
#   scripts/demo-upstream.sh DIR
set -euo pipefail
DIR=${1:?usage: demo-upstream.sh DIR}
for release in stable testing; do
  mkdir -p "$DIR/upstream/dists/$release/main" "$DIR/upstream/pool/main/h/hello"
  echo "Suite: $release" >"$DIR/upstream/dists/$release/Release"
done
for n in $(seq 1 50); do head -c $((n * 1024)) /dev/urandom >"$DIR/upstream/pool/main/h/hello/hello_$n.deb"; done
cat >"$DIR/rsyncd.conf" <<EOT
use chroot = no
pid file = $DIR/rsyncd.pid
[pub]
path = $DIR/upstream
read only = yes
EOT
