#!/usr/bin/env bash
# Builds the Debian package (the debug build: the same files as the release package, in a
# fraction of the build time), installs it on this machine, checks that everything is
# where it belongs and works, installs it again over a site's edited config, and purges
# it: nothing the package added may be left. Needs root and a machine where no tunasync
# package is installed. CI runs it after the tests.
set -euo pipefail
cd "$(dirname "$0")/.."
[ "$(id -u)" -eq 0 ] || { echo "test-deb: needs root (dpkg -i)" >&2; exit 1; }
if dpkg -s tunasync >/dev/null 2>&1; then
  echo "test-deb: a tunasync package is installed here already; purge it first (dpkg --purge tunasync)" >&2
  exit 1
fi
for tool in man useradd; do
  command -v "$tool" >/dev/null || { echo "test-deb: $tool is missing (apt-get install man-db passwd)" >&2; exit 1; }
done

fail() { echo "test-deb: FAILED: $*" >&2; exit 1; }
ok() { echo "test-deb: ok: $*"; }
pid=
cleanup() {
  [ -z "$pid" ] || { kill -TERM "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; }
  dpkg --purge tunasync >/dev/null 2>&1 || true
}
trap cleanup EXIT

deb=$(PROFILE=dev scripts/package-deb.sh 2>/dev/null | tail -n 1)
[ -f "$deb" ] || fail "no package built"
ok "built $deb ($(du -h "$deb" | cut -f1))"
dpkg -i "$deb" >/dev/null

# Files where they belong.
for path in /usr/bin/tunasync /usr/bin/tunasynctl \
    /lib/systemd/system/tunasync-manager.service /lib/systemd/system/tunasync-worker.service \
    /lib/systemd/system/tunasync-standalone.service \
    /etc/tunasync/manager.conf /etc/tunasync/worker.conf /etc/tunasync/ctl.conf \
    /usr/share/man/man1/tunasync.1.gz /usr/share/man/man1/tunasync-standalone.1.gz \
    /usr/share/man/man1/tunasynctl.1.gz /usr/share/man/man1/tunasynctl-list.1.gz \
    /usr/share/bash-completion/completions/tunasynctl /usr/share/zsh/vendor-completions/_tunasync \
    /usr/share/fish/vendor_completions.d/tunasynctl.fish \
    /usr/share/doc/tunasync/examples/worker.conf; do
  [ -e "$path" ] || fail "$path is missing"
done
getent passwd tunasync >/dev/null || fail "no tunasync user"
for dir in /var/lib/tunasync /var/log/tunasync; do
  [ "$(stat -c %U "$dir")" = tunasync ] || fail "$dir is not the tunasync user's"
done
ok "files, user and directories"

version=$(/usr/bin/tunasync --version)
[ "$version" = "tunasync $(sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -n 1)" ] || fail "tunasync --version said: $version"
ok "/usr/bin/tunasync --version: $version"
MANPAGER=cat man tunasynctl 2>/dev/null | grep -q "control client for tunasync manager" || fail "man tunasynctl does not render"
MANPAGER=cat man tunasync-standalone 2>/dev/null | grep -q -- "--manager-config" || fail "man tunasync-standalone does not render"
ok "man tunasynctl, man tunasync-standalone"
if command -v systemd-analyze >/dev/null; then
  systemd-analyze verify /lib/systemd/system/tunasync-{manager,worker,standalone}.service \
    || fail "systemd-analyze verify"
  ok "systemd-analyze verify: the three units"
else
  echo "test-deb: systemd-analyze is not installed here: the units were not verified"
fi

# The installed configs run as the unit runs them (as user tunasync: setpriv execs, so
# $pid is the daemon), on a free port.
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
setpriv --reuid=tunasync --regid=tunasync --init-groups /usr/bin/tunasync standalone -c /etc/tunasync/worker.conf \
  --manager-config /etc/tunasync/manager.conf --port "$port" --with-systemd \
  >/tmp/test-deb-standalone.log 2>&1 &
pid=$!
for _ in $(seq 100); do
  /usr/bin/tunasynctl -p "$port" workers 2>/dev/null | grep -q '"id": "worker"' && break
  [ -d "/proc/$pid" ] || { cat /tmp/test-deb-standalone.log; fail "tunasync standalone exited"; }
  sleep 0.2
done
/usr/bin/tunasynctl -p "$port" workers | grep -q '"id": "worker"' || fail "the standalone worker is not listed"
[ -f /var/lib/tunasync/tunasync.redb ] || fail "no store in /var/lib/tunasync"
kill -TERM "$pid"; wait "$pid" || fail "tunasync standalone did not stop cleanly"
pid=
ok "tunasync standalone with /etc/tunasync's files, as user tunasync; tunasynctl with /etc/tunasync/ctl.conf"

# An upgrade (the same package again) keeps a site's edited config.
echo "# edited by the site" >>/etc/tunasync/worker.conf
dpkg -i "$deb" >/dev/null
grep -q "edited by the site" /etc/tunasync/worker.conf || fail "the reinstall replaced /etc/tunasync/worker.conf"
ok "a reinstall keeps /etc/tunasync/worker.conf as the site left it"

dpkg --purge tunasync >/dev/null
for path in /usr/bin/tunasync /usr/bin/tunasynctl /lib/systemd/system/tunasync-standalone.service \
    /etc/tunasync /var/lib/tunasync /var/log/tunasync /usr/share/man/man1/tunasynctl.1.gz \
    /usr/share/doc/tunasync; do
  [ ! -e "$path" ] || fail "$path is left after the purge"
done
! getent passwd tunasync >/dev/null || fail "the tunasync user is left after the purge"
! getent group tunasync >/dev/null || fail "the tunasync group is left after the purge"
ok "purge removed what the package added"
