#!/usr/bin/env bash
# Shared by run-app.sh and run-tests.sh: system packages (Debian/Ubuntu) and the virtualenv.
# Usage: source scripts/setup-env.sh [app|test]
set -euo pipefail
MODE="${1:-app}"
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${GPSHARE_VENV:-$ROOT/.venv}"

say() { echo "gpshare setup: $*"; }

# Qt needs these shared libraries even offscreen; the tests need poppler, qpdf, NSS tools, Xvfb
# and PostgreSQL.
APT_PACKAGES=(libegl1 libgl1 libxkbcommon0 libfontconfig1 libdbus-1-3 libglib2.0-0)
# Qt's X11 platform plugin (xcb) needs these to open a window on a desktop (and under Xvfb).
APT_PACKAGES+=(libxcb-cursor0 libxcb-icccm4 libxcb-keysyms1 libxkbcommon-x11-0 libxcb-shape0
  libxcb-randr0 libxcb-render-util0 libxcb-image0 libxcb-xinerama0 libxcb-xkb1 libx11-xcb1)
if [ "$MODE" = "test" ]; then
  APT_PACKAGES+=(poppler-utils qpdf libnss3-tools xvfb appstream desktop-file-utils)
  # The practice-server tests start a throwaway PostgreSQL from these binaries (tests/pg.py).
  APT_PACKAGES+=(postgresql)
fi
say "checking the system packages Qt needs…"
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
  say "creating the virtualenv in $VENV…"
  "$PYTHON" -m venv "$VENV"
fi
# pip runs only when what it installs from changed: a stamp in the venv holds the hash of
# pyproject.toml (and the build requirements for the tests), per mode.
INPUTS=("$ROOT/pyproject.toml")
if [ "$MODE" = "test" ]; then INPUTS+=("$ROOT/installer/requirements-build.txt"); fi
STAMP="$VENV/.gpshare-$MODE.sha256"
WANT="$(cat "${INPUTS[@]}" | sha256sum | cut -d' ' -f1)"
if [ "$MODE" = "app" ]; then WANT="$(sha256sum < "$ROOT/pyproject.toml" | cut -d' ' -f1)"; fi
if [ -f "$STAMP" ] && [ "$(cat "$STAMP")" = "$WANT" ] && "$VENV/bin/python" -c "import gpshare" 2>/dev/null; then
  say "gpshare is installed and up to date (pyproject.toml unchanged): skipping pip."
else
  say "installing gpshare and its dependencies into $VENV (first run: about a minute)…"
  "$VENV/bin/python" -m pip install -q --upgrade pip >/dev/null 2>&1 || true
  if [ "$MODE" = "test" ]; then
    "$VENV/bin/python" -m pip install -q -e "$ROOT[test]" -r "$ROOT/installer/requirements-build.txt" 2>&1 | grep -v -E "^(WARNING|  )" || true
  else
    "$VENV/bin/python" -m pip install -q -e "$ROOT" 2>&1 | grep -v -E "^(WARNING|  )" || true
  fi
  "$VENV/bin/python" -c "import gpshare" || { echo "gpshare did not install" >&2; exit 1; }
  echo "$WANT" > "$STAMP"
  if [ "$MODE" = "test" ]; then  # the test install includes everything the app needs
    sha256sum < "$ROOT/pyproject.toml" | cut -d' ' -f1 > "$VENV/.gpshare-app.sha256"
  fi
fi

# Name any library the X11 plugin still cannot find (a non-Debian system, a missing package).
XCB_PLUGIN="$("$VENV/bin/python" -c 'import pathlib, PySide6; print(pathlib.Path(PySide6.__file__).parent / "Qt/plugins/platforms/libqxcb.so")' 2>/dev/null || true)"
if [ -n "$XCB_PLUGIN" ] && [ -f "$XCB_PLUGIN" ] && command -v ldd >/dev/null 2>&1; then
  NOT_FOUND="$(ldd "$XCB_PLUGIN" 2>/dev/null | awk '/not found/ {print $1}' | sort -u | tr '\n' ' ')"
  if [ -n "$NOT_FOUND" ]; then
    echo "gpshare setup: Qt's X11 plugin cannot find: $NOT_FOUND" >&2
    echo "gpshare setup: install the packages that provide them (on Debian/Ubuntu: apt-file search <name>)." >&2
  fi
fi
