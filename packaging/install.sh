#!/usr/bin/env bash
# Install egress-guard as a system service on a Debian/Ubuntu host (run as root):
#
#   packaging/install.sh                 # from a checkout (or an unpacked sdist)
#   PREFIX=/opt/egress-guard packaging/install.sh
#
# What it does, in order (safe to run again: it upgrades in place):
#   1. creates a virtualenv in $PREFIX (default /opt/egress-guard) and installs this
#      checkout into it, so `$PREFIX/bin/egress-guard` is the agent;
#   2. installs the systemd unit, the tmpfiles.d entry, and /etc/egress-guard/agent.toml
#      (an existing agent.toml is kept; the new default goes next to it as agent.toml.new);
#   3. creates the state folders (systemd-tmpfiles) and runs `systemctl daemon-reload`.
# It does not enable or start the service: check the config first, then
#   egress-guard config check /etc/egress-guard/agent.toml && systemctl enable --now egress-guard
set -euo pipefail

PREFIX=${PREFIX:-/opt/egress-guard}
SRC=$(cd "$(dirname "$0")/.." && pwd)
PYTHON=${PYTHON:-python3}
UNIT_DIR=${UNIT_DIR:-/etc/systemd/system}
TMPFILES_DIR=${TMPFILES_DIR:-/etc/tmpfiles.d}
CONF_DIR=${CONF_DIR:-/etc/egress-guard}

if [ "$(id -u)" != 0 ]; then
  echo "install.sh: run as root (it writes to $PREFIX, $UNIT_DIR and $CONF_DIR)" >&2
  exit 2
fi
"$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 11))' || {
  echo "install.sh: egress-guard needs Python >= 3.11 ($PYTHON is older)" >&2
  exit 2
}

echo "== virtualenv in $PREFIX"
[ -x "$PREFIX/bin/python" ] || "$PYTHON" -m venv "$PREFIX"
"$PREFIX/bin/python" -m pip install --quiet --upgrade pip
"$PREFIX/bin/python" -m pip install --quiet --upgrade "$SRC"

if ! ldconfig -p 2>/dev/null | grep -q 'libarchive\.so\.13'; then
  echo "note: libarchive13 is not installed: 7-Zip, cpio, .deb, RPM and CAB files will be" >&2
  echo "      scanned as raw bytes only (apt-get install libarchive13)" >&2
fi

echo "== unit, tmpfiles.d entry and config"
install -D -m 0644 "$SRC/packaging/egress-guard.service" "$UNIT_DIR/egress-guard.service"
install -D -m 0644 "$SRC/packaging/tmpfiles.conf" "$TMPFILES_DIR/egress-guard.conf"
install -d -m 0750 "$CONF_DIR"
if [ -e "$CONF_DIR/agent.toml" ]; then
  install -m 0640 "$SRC/packaging/agent.toml" "$CONF_DIR/agent.toml.new"
  echo "   kept $CONF_DIR/agent.toml; the new default is agent.toml.new"
else
  install -m 0640 "$SRC/packaging/agent.toml" "$CONF_DIR/agent.toml"
fi

echo "== state folders and systemd"
if command -v systemd-tmpfiles >/dev/null 2>&1; then
  systemd-tmpfiles --create "$TMPFILES_DIR/egress-guard.conf"
fi
if [ -d /run/systemd/system ]; then
  systemctl daemon-reload
else
  echo "   systemd is not running here: skipped daemon-reload"
fi

"$PREFIX/bin/egress-guard" config check "$CONF_DIR/agent.toml" || true
echo "installed. Next: systemctl enable --now egress-guard"
