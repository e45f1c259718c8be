#!/usr/bin/env bash
# Install gpshare into .venv and start the desktop app (a demo vault is created when none exists).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
source "$ROOT/scripts/setup-env.sh" app
exec "$VENV/bin/gpshare" "$@"
