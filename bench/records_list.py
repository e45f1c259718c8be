"""Benchmark: the lead's records list on 100 000 records vs plain SQLite, and resident memory.

Budgets (DESIGN.md §8), each against plain SQLite (the same SQLite, without a key) running the
same repository queries on an unencrypted copy of the same data in the same run:
- first paint < 300 ms: right after unlock (fresh session, cold page cache), the first
  page of 200 rows of the lead's list plus the referral state of those rows;
- filter change < 100 ms: pathway + a 6-month date range, first 200 rows + states;
- full-text search < 50 ms: a common word, and a surname + word, first 200 rows + states;
- resident memory < 300 MB with the records listed, vs a bare PySide6 window process: the
  first page in gpshare.ui.records_view's RecordsTableModel when that module exists (else
  a QStandardItemModel stand-in, said so in the output), and with all 100 000 records
  loaded as Record objects (what an unfiltered CSV export reads).
Each list timing is what RecordsTableModel.reload does: the first 200 rows and their
referral states (count_records is timed on its own; the view counts only when asked). Also timed, without a budget: count_records, needs_action (the lead
workspace and the list's "overdue only" filter) and the dashboard over the whole vault.

Uses the seeded vault of bench/seed.py (`--reuse` keeps an existing one; the plain copy
is made with `sqlcipher_export`). Asserts nothing.

    .venv/bin/python bench/records_list.py [--reuse] [--runs 7] [--n 100000] [--proposed] [--quick] [--json PATH]

`--proposed` also times the store changes proposed in docs/performance.md, applied to a
copy of the seed (bench/common.py: PROPOSED_MIGRATION, patch_repositories).

The plain copy is opened with SQLCipher's own SQLite and no key (an unencrypted database):
the stdlib sqlite3 of Python 3.11 is too old to read the contentless_delete FTS5 table of
migration 0005, and the same SQLite version on both sides is the fairer baseline anyway.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sqlite3
import subprocess
import sys
from collections.abc import Callable
from datetime import date, timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import (  # noqa: E402
    BENCH_DIR,
    PASSWORDS,
    QUICK_N,
    ROOT,
    Row,
    Timing,
    add_quick,
    machine,
    print_table,
    qt_env,
    rss_mb,
    save_rows,
    time_ms,
)

PAGE = 200


# ----- the same work on the vault and on the plain copy -----------------------------------------
def plain_connect(plain: Path | None) -> Any:
    """The unencrypted copy through SQLCipher's SQLite without a key, or None."""
    if plain is None:
        return None
    import sqlcipher3

    return sqlcipher3.connect(str(plain))


def plain_states(conn: sqlite3.Connection, records: list[Any], today: date) -> dict[str, Any]:
    """Session.referral_states, statement for statement, on a plain connection."""
    from gpshare import followup as followup_mod
    from gpshare.records import parse_date
    from gpshare.store.sqlcipher import repositories as repo

    completed = [r for r in records if r.status == "completed"]
    per: dict[str, list[Any]] = {}
    for event in repo.followups(conn, [r.id for r in completed]):  # type: ignore[arg-type]
        per.setdefault(event.record_id, []).append(event)
    settings = repo.get_settings(conn)  # type: ignore[arg-type]
    hours = int(settings.get("written_confirmation_hours", "24") or 24)
    closures = [
        d for t in settings.get("local_closure_days", "").split(",") if (d := parse_date(t.strip()))
    ]
    return {
        r.id: followup_mod.referral_state(r, per.get(r.id, []), today, closures, hours)
        for r in completed
    }


def page_vault(session, flt) -> int:  # type: ignore[no-untyped-def]
    """What RecordsTableModel.reload does: the first page of the filter and its states."""
    rows = session.assessments.list_records(flt, limit=PAGE, light=True)
    session.referrals.referral_states(rows)
    return len(rows)


def page_plain(conn: sqlite3.Connection, flt, today: date) -> int:  # type: ignore[no-untyped-def]
    from gpshare.store.sqlcipher import repositories as repo

    rows = repo.list_records(conn, flt, PAGE, light=True)  # type: ignore[arg-type]
    plain_states(conn, rows, today)
    return len(rows)


def filters(info: dict[str, Any]) -> dict[str, Any]:
    from gpshare.filters import RecordFilter

    newest = date.fromisoformat(str(info["created"])[:10])
    start = newest - timedelta(days=730)
    return {
        "first page": RecordFilter(),
        "filter: pathway + 6 months": RecordFilter(
            pathway="referral",
            date_from=start.isoformat(),
            date_to=(start + timedelta(days=182)).isoformat(),
        ),
        "search: one common word": RecordFilter(search="fracture"),
        "search: surname + word": RecordFilter(search="Okafor scald"),
    }


def timing_rows(
    folder: Path, plain: Path | None, info: dict[str, Any], runs: int, tag: str = ""
) -> list[Row]:
    """List timings on `folder`, each against the same work on the plain copy (when given)."""
    from gpshare.clock import SystemClock, today
    from gpshare.filters import RecordFilter
    from gpshare.services import open_session
    from gpshare.store.sqlcipher import repositories as repo

    lead = ("lead", PASSWORDS["lead"])
    day = today(SystemClock())
    flts = filters(info)
    base_name = "plain SQLite" if plain else ""

    def plain_time(
        fn: Callable[[sqlite3.Connection], object], conn: sqlite3.Connection | None
    ) -> float:
        return time_ms(lambda: fn(conn)) if conn is not None else 0.0

    # First paint: a fresh session / connection per run (cold page cache), interleaved.
    first_v, first_p = Timing("first page, vault"), Timing("first page, plain")
    for i in range(runs + 1):
        session = open_session(folder, *lead)
        try:
            t = time_ms(lambda s=session: page_vault(s, flts["first page"]))
        finally:
            session.close()
        conn = plain_connect(plain) if plain else None
        try:
            tp = plain_time(lambda c: page_plain(c, flts["first page"], day), conn)
        finally:
            if conn is not None:
                conn.close()
        if i:  # the first pair is a warm-up (OS file cache)
            first_v.samples.append(t)
            first_p.samples.append(tp)
    print(first_v.describe())
    rows = [
        Row(
            f"records list: first paint (200 rows + states){tag}",
            "< 300 ms",
            first_v.median,
            first_p.median if plain else None,
            base_name,
            note=f"p95 {first_v.p95:.0f} ms",
        )
    ]

    # Filter and search: warm session, as after the first paint.
    session = open_session(folder, *lead)
    conn = plain_connect(plain) if plain else None
    try:
        page_vault(session, flts["first page"])
        if conn is not None:
            page_plain(conn, flts["first page"], day)
        for name, flt in flts.items():
            if name == "first page":
                continue
            tv, tp = Timing(f"{name}, vault"), Timing(f"{name}, plain")
            for i in range(runs + 1):
                a = time_ms(lambda f=flt: page_vault(session, f))
                b = plain_time(lambda c, f=flt: page_plain(c, f, day), conn)
                if i:
                    tv.samples.append(a)
                    tp.samples.append(b)
            count = session.assessments.count_records(flt)
            print(f"{tv.describe()}  [{count} matching]")
            if conn is not None:
                print(tp.describe())
            budget = "< 50 ms" if name.startswith("search") else "< 100 ms"
            rows.append(
                Row(
                    f"records list: {name}{tag}",
                    budget,
                    tv.median,
                    tp.median if plain else None,
                    base_name,
                    note=f"{count} matching; p95 {tv.p95:.0f} ms",
                )
            )

        for name, flt in (
            ("count_records (all)", RecordFilter()),
            ("count_records (pathway + 6 months)", flts["filter: pathway + 6 months"]),
            ("count_records (common word)", flts["search: one common word"]),
        ):
            tv, tp = Timing(name), Timing(name + " plain")
            for _ in range(runs):
                tv.samples.append(time_ms(lambda f=flt: session.assessments.count_records(f)))
                tp.samples.append(plain_time(lambda c, f=flt: repo.count_records(c, f), conn))  # type: ignore[arg-type]
            print(tv.describe())
            rows.append(
                Row(
                    f"records list: {name}{tag}",
                    "",
                    tv.median,
                    tp.median if plain else None,
                    base_name,
                )
            )

        needs = Timing("needs_action (lead workspace, 'overdue only' filter)")
        found: list[Any] = []
        for _ in range(3):
            needs.samples.append(
                time_ms(lambda: found.__setitem__(slice(None), session.referrals.needs_action()))
            )
        print(f"{needs.describe()}  [{len(found)} items]")
        rows.append(
            Row(
                f"lead: needs_action over the whole vault{tag}",
                "",
                needs.median,
                None,
                note=f"{len(found)} items listed (the seed leaves many referrals open)",
            )
        )
        dash = Timing("dashboard (all dates)")
        for _ in range(3):
            dash.samples.append(time_ms(session.lead.dashboard))
        print(dash.describe())
        rows.append(Row(f"lead: dashboard over the whole vault{tag}", "", dash.median, None))
    finally:
        session.close()
        if conn is not None:
            conn.close()
    return rows


# ----- resident memory (child processes) ---------------------------------------------------------
BARE = """
from PySide6.QtWidgets import QApplication, QMainWindow
app = QApplication([])
w = QMainWindow(); w.resize(1200, 800); w.show(); app.processEvents()
from common import rss_mb
import json; print(json.dumps({"rss_mb": rss_mb()}), flush=True)
"""


def _model_for(session: Any) -> tuple[Any, str]:
    """gpshare.ui.records_view.RecordsTableModel showing the first page, or a stand-in."""
    from gpshare.filters import RecordFilter

    try:
        from gpshare.ui.records_view import RecordsTableModel

        model = RecordsTableModel(session)
        model.set_filter(RecordFilter())
        return model, f"RecordsTableModel, {model.rowCount()} rows loaded"
    except (ImportError, AttributeError, TypeError) as exc:
        from PySide6.QtGui import QStandardItem, QStandardItemModel

        records = session.assessments.list_records(limit=PAGE)
        states = session.referrals.referral_states(records)
        model = QStandardItemModel(0, 6)
        for r in records:
            state = states.get(r.id)
            model.appendRow(
                [
                    QStandardItem(r.id),
                    QStandardItem(r.child.display_name),
                    QStandardItem(r.clinician_name),
                    QStandardItem(r.pathway or r.status),
                    QStandardItem(r.updated[:10]),
                    QStandardItem(state.status_label if state else "Draft"),
                ]
            )
        return model, f"stand-in QStandardItemModel (no usable RecordsTableModel: {exc})"


def child_rss(folder: str, mode: str) -> None:
    """Run in a child process: show a window with the list, print RSS as JSON.

    mode 'page': the lead's records view model with its first page; 'all': additionally an
    unfiltered CSV export of every record (streamed page by page), reporting the peak RSS.
    """
    from PySide6.QtWidgets import QApplication, QMainWindow, QTableView

    from gpshare.services import open_session

    app = QApplication([])
    window = QMainWindow()
    window.resize(1200, 800)
    session = open_session(Path(folder), "lead", PASSWORDS["lead"])
    before = rss_mb()
    model, how = _model_for(session)
    loaded = model.rowCount()
    if mode == "all":
        import tempfile

        with tempfile.TemporaryDirectory(prefix="gpshare-bench-export-") as tmp:
            loaded = session.lead.export_records_csv(Path(tmp) / "all.csv")
    view = QTableView()
    view.setModel(model)
    window.setCentralWidget(view)
    window.show()
    app.processEvents()
    import resource

    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux
    print(
        json.dumps(
            {
                "rss_mb": rss_mb(),
                "peak_mb": peak,
                "after_unlock_mb": before,
                "rows": loaded,
                "model": how,
            }
        ),
        flush=True,
    )
    session.close()


EXPORT_PAGE_NOTE = "streamed 500 records a page (Session.export_records_csv)"


def memory_rows(folder: Path) -> list[Row]:
    env = qt_env()
    bench = str(Path(__file__).resolve().parent)
    env["PYTHONPATH"] = bench + ":" + env["PYTHONPATH"]

    def run(args: list[str]) -> dict[str, Any]:
        out = subprocess.run(
            [sys.executable, *args], capture_output=True, text=True, env=env, cwd=ROOT
        )
        if out.returncode != 0:
            raise RuntimeError(out.stderr[-1500:])
        return dict(json.loads(out.stdout.strip().splitlines()[-1]))

    bare = [run(["-c", BARE])["rss_mb"] for _ in range(3)]
    page = [run([__file__, "--child-rss", str(folder), "page"]) for _ in range(3)]
    # The export writes an audit event: run it on a copy, never on the seed.
    copy = BENCH_DIR / "export-copy"
    shutil.rmtree(copy, ignore_errors=True)
    shutil.copytree(folder, copy)
    try:
        every = run([__file__, "--child-rss", str(copy), "all"])
    finally:
        shutil.rmtree(copy, ignore_errors=True)
    base = sorted(bare)[1]
    page_mb = sorted(p["rss_mb"] for p in page)[1]
    print(
        f"RSS bare window {bare}, first page {[p['rss_mb'] for p in page]} ({page[0]['model']}), export peak {every['peak_mb']:.0f}"
    )
    return [
        Row(
            "resident memory: first page listed",
            "< 300 MB",
            page_mb,
            base,
            "bare PySide6 window",
            unit="MB",
            note=f"{page[0]['model']}; {page[0]['after_unlock_mb']:.0f} MB right after unlock",
        ),
        Row(
            "resident memory: unfiltered CSV export of every record (peak)",
            "< 300 MB",
            every["peak_mb"],
            base,
            "bare PySide6 window",
            unit="MB",
            note=f"{every['rows']} rows exported, {EXPORT_PAGE_NOTE}",
        ),
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--reuse", action="store_true", help="reuse the seeded vault in $GPSHARE_BENCH_DIR"
    )
    parser.add_argument("--runs", type=int, default=7, help="runs per query (median)")
    parser.add_argument("--n", type=int, default=100_000, help="records in the seeded vault")
    parser.add_argument(
        "--no-memory", action="store_true", help="skip the resident-memory children"
    )
    parser.add_argument(
        "--proposed",
        action="store_true",
        help="also time the proposed store changes (docs/performance.md) on a copy",
    )
    parser.add_argument("--json", help="append the result rows to this JSON file")
    parser.add_argument("--child-rss", nargs=2, metavar=("VAULT", "MODE"), help=argparse.SUPPRESS)
    add_quick(parser)
    args = parser.parse_args()
    if args.quick:
        args.n, args.runs = QUICK_N, 1
    if args.child_rss:
        child_rss(*args.child_rss)
        return
    from seed import ensure_seeded

    print(machine())
    folder, info, plain = ensure_seeded(args.n, args.reuse, plain=True)
    rows = timing_rows(folder, plain, info, args.runs)
    if not args.no_memory:
        rows += memory_rows(folder)
    if args.proposed:
        from common import patch_repositories, proposed_copy

        copy = proposed_copy(folder, info)
        patch_repositories()
        rows += timing_rows(copy, None, info, args.runs, tag=" — proposed")
    print_table(f"records list, {info['n']} records", rows)
    save_rows(args.json, "records_list", rows)


if __name__ == "__main__":
    main()
