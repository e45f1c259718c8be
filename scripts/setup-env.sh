#!/usr/bin/env bash
# Shared by run-app.sh and run-tests.sh: system packages (Debian/Ubuntu) and the virtualenv.
# Usage: source scripts/setup-env.sh [app|test]
set -euo pipefail
MODE="${1:-app}"
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${GPSHARE_VENV:-$ROOT/.venv}"

# Qt needs these shared libraries even offscreen; the tests need poppler, qpdf, NSS tools and Xvfb.
APT_PACKAGES=(libegl1 libgl1 libxkbcommon0 libfontconfig1 libdbus-1-3 libglib2.0-0)
if [ "$MODE" = "test" ]; then
  APT_PACKAGES+=(poppler-utils qpdf libnss3-tools xvfb appstream desktop-file-utils)
  # Bundled into the PyInstaller build (tests/test_installer.py), so X11 targets need less.
  APT_PACKAGES+=(libxcb-cursor0 libxcb-icccm4 libxcb-keysyms1 libxkbcommon-x11-0)
fi
missing=()
if command -v dpkg-query >/dev/null 2>&1; then
  for pkg in "${APT_PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
  done
fi
if [ "${#missing[@]}" -gt 0 ]; then
  echo "Installing system packages: ${missing[*]}"
  SUDO=""
  [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}" >/dev/null
fi

PYTHON="${PYTHON:-python3}"
if ! "$PYTHON" -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else 1)'; then
  echo "gpshare needs Python 3.11 or newer (found $("$PYTHON" --version))." >&2
  exit 1
fi
if [ ! -x "$VENV/bin/python" ]; then
  "$PYTHON" -m venv "$VENV"
fi
"$VENV/bin/python" -m pip install -q --upgrade pip >/dev/null 2>&1 || true
if [ "$MODE" = "test" ]; then
  "$VENV/bin/python" -m pip install -q -e "$ROOT[test]" -r "$ROOT/installer/requirements-build.txt" 2>&1 | grep -v -E "^(WARNING|  )" || true
else
  "$VENV/bin/python" -m pip install -q -e "$ROOT" 2>&1 | grep -v -E "^(WARNING|  )" || true
fi
"$VENV/bin/python" -c "import gpshare" || { echo "gpshare did not install" >&2; exit 1; }
