#!/usr/bin/env bash
# Install gpshare with its test tools into .venv and run every check: ruff, mypy,
# import-linter contracts, every benchmark in --quick mode (full runs only; set
# GPSHARE_SKIP_BENCH=1 to leave them out) and the pytest suite (UI tests run offscreen).
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
if [ "$#" -eq 0 ] && [ -z "${GPSHARE_SKIP_BENCH:-}" ]; then
  # Every benchmark runs in --quick mode (small sizes, seconds) so none can rot unnoticed.
  # Timings are printed for the log and never asserted; the seeds go to a throw-away folder.
  echo "== benchmarks (--quick: each must run; timings printed, never asserted)"
  BENCH_TMP="$(mktemp -d)"
  trap 'rm -rf "$BENCH_TMP"' EXIT
  export QT_QPA_PLATFORM=offscreen
  GPSHARE_BENCH_DIR="$BENCH_TMP" "$VENV/bin/python" bench/seed.py --quick --plain >/dev/null
  for b in startup draft_save navigator audit_verify records_list lead_search; do
    echo "-- bench/$b.py --quick"
    GPSHARE_BENCH_DIR="$BENCH_TMP" "$VENV/bin/python" "bench/$b.py" --quick --reuse
  done
  echo "-- bench/letter_sign.py --quick"
  "$VENV/bin/python" bench/letter_sign.py --quick
  echo "-- bench/pg_append.py --quick"
  "$VENV/bin/python" bench/pg_append.py --quick
  echo "-- bench/pg_concurrency.py --quick"
  "$VENV/bin/python" bench/pg_concurrency.py --quick
  echo "-- bench/pg_lead_list.py --quick"
  GPSHARE_BENCH_DIR="$BENCH_TMP" "$VENV/bin/python" bench/pg_lead_list.py --quick
  echo "-- bench/lead_search.py --engine postgres --quick"
  GPSHARE_BENCH_DIR="$BENCH_TMP" "$VENV/bin/python" bench/lead_search.py --engine postgres --quick --reuse
  echo "-- bench/rotation.py --quick"
  GPSHARE_BENCH_DIR="$BENCH_TMP" "$VENV/bin/python" bench/rotation.py --quick
  echo "-- bench/record_open.py --quick"
  GPSHARE_BENCH_DIR="$BENCH_TMP" "$VENV/bin/python" bench/record_open.py --quick
fi
echo "== pytest"
export QT_QPA_PLATFORM=offscreen
"$VENV/bin/python" -m pytest -p no:cacheprovider "$@"
