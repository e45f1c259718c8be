"""Benchmark: save_draft and complete p95 vs a raw stdlib sqlite3 insert of the same JSON.

Budget (DESIGN.md §8): save draft / complete record < 30 ms p95. Baseline, in the same
run and interleaved with the measured calls: stdlib `sqlite3` (no cipher) in the same
folder, WAL + synchronous=FULL like the vault, one `INSERT` of the same answers JSON per
transaction.

Measured through the service layer as the wizard calls it, for a clinician:
- save_draft (explicit Save: audited, so it also rewrites vault.json with the chain head),
- save_draft(autosave=True) within the 5-minute coalescing window (no audit event),
- complete (navigator over the whole form, prior-records lookup, freeze, audit).
First on a fresh vault, then on a copy of the 100 000-record seeded vault (bench/seed.py;
`--reuse` keeps an existing seed), where a breakdown times the parts that grow with the
vault: the full-text index update and the prior-records lookup.

    .venv/bin/python bench/draft_save.py [--runs 40] [--seeded-runs 15] [--n 100000] [--reuse] [--no-seeded] [--proposed] [--quick] [--json PATH]

`--proposed` repeats the 100k measurements on a copy with the store changes proposed in
docs/performance.md (bench/common.py: PROPOSED_MIGRATION, patch_repositories).
"""

from __future__ import annotations

import argparse
import json
import shutil
import sqlite3
import sys
import tempfile
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import (  # noqa: E402
    BENCH_DIR,
    PASSWORDS,
    QUICK_N,
    Row,
    Timing,
    add_quick,
    create_bench_vault,
    machine,
    print_table,
    save_rows,
    scenario_answers,
    time_ms,
)

SCENARIO = "01-bruised-toddler-parents-agree"


def _raw_baseline(folder: Path) -> tuple[sqlite3.Connection, Any]:
    conn = sqlite3.connect(str(folder / "raw-baseline.db"), isolation_level=None)
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute("PRAGMA synchronous = FULL")
    conn.execute(
        "CREATE TABLE IF NOT EXISTS drafts (id INTEGER PRIMARY KEY, answers TEXT NOT NULL)"
    )

    def insert(answers: dict[str, Any]) -> None:
        conn.execute("BEGIN IMMEDIATE")
        conn.execute(
            "INSERT INTO drafts (answers) VALUES (?)", (json.dumps(answers, ensure_ascii=False),)
        )
        conn.execute("COMMIT")

    return conn, insert


def measure_vault(
    folder: Path, user: str, password: str, runs: int, label: str, scratch: Path
) -> tuple[list[Timing], Timing]:
    """(save, autosave, complete timings, raw baseline) on the vault in `folder`."""
    from gpshare.services import open_session

    base_answers = scenario_answers(SCENARIO)
    # The same child is assessed again and again here, so the form asks the clinician to
    # confirm the earlier concerns were read (the field is dropped when there are none).
    base_answers["prior_concerns_acknowledged"] = True
    raw_conn, raw_insert = _raw_baseline(scratch)
    session = open_session(folder, user, password)
    try:
        draft = session.assessments.start_assessment(answers=base_answers)
        save, auto, complete = (
            Timing(f"save_draft (explicit) {label}"),
            Timing(f"save_draft (autosave) {label}"),
            Timing(f"complete {label}"),
        )
        raw = Timing(f"raw sqlite3 insert {label}")

        def answers_for(i: int) -> dict[str, Any]:
            a = dict(base_answers)
            a["concern_narrative"] = f"{base_answers['concern_narrative']} (edit {i})"
            return a

        # warm-up: form loading, first statements, page cache
        session.assessments.save_draft(draft.id, answers_for(-1), "concern")
        session.assessments.save_draft(draft.id, answers_for(-2), "concern", autosave=True)
        raw_insert(answers_for(-1))
        warm = session.assessments.start_assessment(answers=base_answers)
        session.assessments.complete(warm.id)
        for i in range(runs):
            a = answers_for(i)
            save.samples.append(
                time_ms(lambda a=a: session.assessments.save_draft(draft.id, a, "concern"))
            )
            auto.samples.append(
                time_ms(
                    lambda a=a: session.assessments.save_draft(
                        draft.id, a, "concern", autosave=True
                    )
                )
            )
            raw.samples.append(time_ms(lambda a=a: raw_insert(a)))
            fresh = session.assessments.start_assessment(answers=a)  # untimed set-up
            complete.samples.append(time_ms(lambda r=fresh.id: session.assessments.complete(r)))
    finally:
        session.close()
        raw_conn.close()
    for t in (save, auto, complete, raw):
        print(t.describe())
    return [save, auto, complete], raw


def breakdown(folder: Path, runs: int, proposed: bool = False) -> dict[str, Timing]:
    """The parts of save/complete that grow with the number of records (read-only or rolled back)."""
    from gpshare.services import open_session
    from gpshare.store.sqlcipher import repositories as repo

    answers = scenario_answers(SCENARIO)
    session = open_session(folder, "drsmith", PASSWORDS["drsmith"])
    out: dict[str, Timing] = {}
    try:
        conn = session.store.connection
        rid = conn.execute("SELECT id FROM records WHERE status = 'draft' LIMIT 1").fetchone()[0]
        body = "Ellie Marsh\nbruising to both upper arms"

        def fts_update() -> None:
            conn.execute("BEGIN IMMEDIATE")
            try:
                repo.put_search_text(conn, rid, body)
            finally:
                conn.execute("ROLLBACK")

        def fts_insert_only() -> None:
            conn.execute("BEGIN IMMEDIATE")
            try:
                # a rowid no record has (records_search ids are small), rolled back below
                conn.execute("INSERT INTO records_fts (rowid, body) VALUES (?, ?)", (2**40, body))
            finally:
                conn.execute("ROLLBACK")

        family = answers["child_family_name"]
        dob = answers["date_of_birth"]
        parts = [
            (
                "repo.put_search_text (by integer key, migration 0005)",
                fts_update,
            ),
            ("FTS5 insert alone", fts_insert_only),
            (
                "repo.records_for_child (prior records: name + DOB)",
                lambda: repo.records_for_child(conn, None, family, dob, None),
            ),
            (
                "repo.records_for_child (NHS number)",
                lambda: repo.records_for_child(conn, "9434765870", None, None, None),
            ),
            ("vault.json write (chain head mirror)", lambda: session.vault.save(session.db_key)),
        ]
        for name, fn in parts:
            if proposed and name == "FTS5 insert alone":
                continue
            t = Timing(name)
            fn()
            for _ in range(runs):
                t.samples.append(time_ms(fn))
            print(t.describe())
            out[name] = t
    finally:
        session.close()
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=40, help="saves/completions on the fresh vault")
    parser.add_argument(
        "--seeded-runs", type=int, default=15, help="saves/completions on the 100k vault"
    )
    parser.add_argument(
        "--reuse", action="store_true", help="reuse the seeded vault in $GPSHARE_BENCH_DIR"
    )
    parser.add_argument("--no-seeded", action="store_true", help="skip the 100 000-record vault")
    parser.add_argument(
        "--proposed",
        action="store_true",
        help="also time the proposed store changes (docs/performance.md) on a copy",
    )
    parser.add_argument("--n", type=int, default=100_000, help="records in the seeded vault")
    parser.add_argument("--json", help="append the result rows to this JSON file")
    add_quick(parser)
    args = parser.parse_args()
    if args.quick:
        args.runs, args.seeded_runs, args.n = 3, 2, QUICK_N
    print(machine())
    rows: list[Row] = []
    with tempfile.TemporaryDirectory(prefix="gpshare-bench-") as tmp:
        vault = create_bench_vault(Path(tmp) / "vault")
        (save, auto, complete), raw = measure_vault(
            vault, "drsmith", PASSWORDS["drsmith"], args.runs, "(fresh vault)", Path(tmp)
        )
        for t in (save, auto, complete):
            rows.append(
                Row(
                    t.name,
                    "< 30 ms p95",
                    t.p95,
                    raw.p95,
                    "raw sqlite3 insert",
                    stat="p95",
                    note=f"median {t.median:.1f} ms" if t is save else "",
                )
            )
    if not args.no_seeded:
        from seed import ensure_seeded

        seeded, info, _plain = ensure_seeded(args.n, args.reuse)
        sources = [(seeded, "")]
        if args.proposed:
            from common import patch_repositories, proposed_copy

            sources.append((proposed_copy(seeded, info), " — proposed"))
        for source, tag in sources:
            if tag:
                patch_repositories()
            copy = BENCH_DIR / "draft-save-copy"
            if copy.exists():
                shutil.rmtree(copy)
            shutil.copytree(source, copy)  # writes go to a copy: the seed keeps its N records
            try:
                label = f"({info['n']:,} records{tag})".replace(",", " ")
                (save, auto, complete), raw = measure_vault(
                    copy, "drsmith", PASSWORDS["drsmith"], args.seeded_runs, label, copy
                )
                for t in (save, auto, complete):
                    rows.append(
                        Row(
                            t.name,
                            "< 30 ms p95",
                            t.p95,
                            raw.p95,
                            "raw sqlite3 insert",
                            stat="p95",
                            note=f"median {t.median:.1f} ms",
                        )
                    )
                for name, t in breakdown(copy, max(5, args.seeded_runs // 2), bool(tag)).items():
                    rows.append(Row(f"  part: {name}{tag}", "", t.median, None))
            finally:
                shutil.rmtree(copy, ignore_errors=True)
    print_table("save draft and complete", rows)
    save_rows(args.json, "draft_save", rows)


if __name__ == "__main__":
    main()
