#!/usr/bin/env bash
# Install gpshare into .venv and start the desktop app (a demo vault is created when none exists).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
source "$ROOT/scripts/setup-env.sh" app
if [ -z "${DISPLAY:-}${WAYLAND_DISPLAY:-}${QT_QPA_PLATFORM:-}" ]; then
  echo "gpshare setup: no desktop display found (DISPLAY is not set). Run this from a desktop" >&2
  echo "session, or without one: xvfb-run -a bash scripts/run-app.sh" >&2
fi
echo "gpshare setup: starting gpshare (demo logins: $VENV/bin/gpshare demo --show-logins)"
exec "$VENV/bin/gpshare" "$@"
