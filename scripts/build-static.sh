#!/usr/bin/env bash
# Builds tunasync and tunasynctl as static binaries (musl): one file that runs on any x86-64
# Linux, with no shared libraries; the smallest idle footprint (see README "Performance").
# Prints the directory holding them. Installs what is missing when run as root.
set -euo pipefail
cd "$(dirname "$0")/.."
target=x86_64-unknown-linux-musl
if ! rustup target list --installed 2>/dev/null | grep -qx "$target"; then
  rustup target add "$target" >&2 || {
    echo "build-static: cannot add the Rust target $target (rustup target add $target)" >&2
    exit 1
  }
fi
if ! command -v musl-gcc >/dev/null; then
  if [ "$(id -u)" -eq 0 ]; then
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq musl-tools >/dev/null
  else
    echo "build-static: install musl-gcc (apt-get install musl-tools)" >&2
    exit 1
  fi
fi
cargo build --release --quiet --target "$target" --bins -p tunasync "$@" >&2
echo "target/$target/release"
