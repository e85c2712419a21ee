#!/usr/bin/env bash
# Builds the Debian package target/debian/tunasync_<version>-1_<arch>.deb with cargo-deb
# (its metadata: [package.metadata.deb] in Cargo.toml), after generating the man pages and
# shell completions from the clap definitions (target/deb-docs/, by tunasync-docs).
# Installs cargo-deb first when it is missing. Prints the package's path.
#
#   scripts/package-deb.sh               the release build
#   PROFILE=dev scripts/package-deb.sh   the debug build (CI's install test: same files)
set -euo pipefail
cd "$(dirname "$0")/.."
CARGO_DEB_VERSION=3.8.0
profile=${PROFILE:-release}
case "$profile" in
  dev) dir=target/debug ;;
  *) dir=target/$profile ;;
esac
if ! cargo deb --version 2>/dev/null | grep -q "$CARGO_DEB_VERSION"; then
  echo "package-deb: installing cargo-deb $CARGO_DEB_VERSION" >&2
  cargo install --quiet --locked cargo-deb --version "$CARGO_DEB_VERSION"
fi
cargo build --quiet --profile "$profile" -p tunasync --bins
rm -rf target/deb-docs
"$dir/tunasync-docs" target/deb-docs
gzip -9n target/deb-docs/man/*.1
# Stale packages of other versions would confuse whoever installs target/debian/*.deb.
rm -f target/debian/tunasync_*.deb
cargo deb --quiet --no-build --profile "$profile" -p tunasync --output target/debian/ >&2
ls target/debian/tunasync_*.deb
