#!/usr/bin/env bash
# Install gpshare with its test tools into .venv and run every check: ruff, mypy,
# import-linter contracts and the pytest suite (UI tests run offscreen).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
source "$ROOT/scripts/setup-env.sh" test
cd "$ROOT"
echo "== ruff"
"$VENV/bin/ruff" check gpshare tests bench installer
echo "== mypy"
"$VENV/bin/mypy" gpshare
echo "== import-linter"
"$VENV/bin/lint-imports"
echo "== pytest"
export QT_QPA_PLATFORM=offscreen
"$VENV/bin/python" -m pytest -p no:cacheprovider "$@"
