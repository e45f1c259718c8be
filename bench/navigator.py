"""Benchmark: navigator.evaluate of the whole form per keystroke (median / p95).

Budget (DESIGN.md §8 / the wizard's contract): < 5 ms per evaluation, since the wizard
re-evaluates on every change. Simulates typing: the concern narrative of each shared
scenario is typed one character at a time into otherwise complete answers, and every
keystroke is one `navigator.evaluate(form, answers, context)` (the pure function, no I/O),
with no earlier records and with three (chronology prompts).

The wizard actually calls `Session.evaluate`, which also looks up the child's earlier
records in the vault on every call; that is timed too, on the 100 000-record seeded vault
(bench/seed.py; `--reuse` keeps an existing seed; read-only).

There is no baseline for a pure-Python pass; rows are compared with the budget. Asserts
nothing.

    .venv/bin/python bench/navigator.py [--keystrokes 300] [--n 100000] [--reuse] [--no-seeded] [--proposed] [--quick] [--json PATH]
"""

from __future__ import annotations

import argparse
import sys
from datetime import date, timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import (  # noqa: E402
    PASSWORDS,
    QUICK_N,
    Row,
    Timing,
    add_quick,
    machine,
    print_table,
    save_rows,
    scenario_answers,
    time_ms,
)

from gpshare import navigator  # noqa: E402
from gpshare.forms import load_form_by_id  # noqa: E402
from gpshare.services import DEFAULT_FORM_ID  # noqa: E402

SCENARIOS = (
    "01-bruised-toddler-parents-agree",
    "02-teen-sexual-health-refuses",
    "03-low-level-concern-monitor",
)


def typing(answers: dict[str, Any], keystrokes: int):  # type: ignore[no-untyped-def]
    """Yield the answers dict after each typed character of the narrative (mutated in place,
    as the wizard keeps one dict)."""
    text = str(answers.get("concern_narrative", "")) or "Bruising seen on both arms. " * 4
    live = dict(answers)
    for i in range(keystrokes):
        live["concern_narrative"] = text[: (i % len(text)) + 1]
        yield live


def prior_records(today: date) -> tuple[navigator.PriorRecord, ...]:
    return tuple(
        navigator.PriorRecord(
            record_id=f"SG-PRIO-R00{i}",
            created=today - timedelta(days=60 * (i + 1)),
            pathway="monitor",
            decision="monitor",
            review_date=today - timedelta(days=7 * i),
            author="Dr Alex Smith",
            match="nhs" if i else "probable",
        )
        for i in range(3)
    )


def pure_rows(keystrokes: int) -> list[Row]:
    form = load_form_by_id(DEFAULT_FORM_ID)
    today = date.today()
    rows = []
    for priors in ((), prior_records(today)):
        context = navigator.Context(today=today, prior_records=priors)
        for name in SCENARIOS:
            answers = scenario_answers(name)
            t = Timing(f"evaluate {name[:2]}{' + 3 prior records' if priors else ''}")
            for live in typing(answers, 20):  # warm-up
                navigator.evaluate(form, live, context)
            for live in typing(answers, keystrokes):
                t.samples.append(
                    time_ms(
                        lambda live=live, context=context: navigator.evaluate(form, live, context)
                    )
                )
            print(t.describe())
            rows.append(
                Row(
                    f"navigator.evaluate, scenario {t.name[9:]}",
                    "< 5 ms",
                    t.p95,
                    None,
                    stat="p95",
                    note=f"median {t.median:.2f} ms, {len(answers)} answers",
                )
            )
    return rows


def session_rows(
    keystrokes: int, reuse: bool, proposed: bool = False, n: int = 100_000
) -> list[Row]:
    """Session.evaluate as the wizard calls it per keystroke, on the seeded vault (read-only)."""
    from seed import ensure_seeded

    from gpshare.services import open_session

    folder, info, _plain = ensure_seeded(n, reuse)
    tag = ""
    if proposed:
        from common import patch_repositories, proposed_copy

        folder, tag = proposed_copy(folder, info), " — proposed"
        patch_repositories()
    form = load_form_by_id(DEFAULT_FORM_ID)
    answers = scenario_answers(SCENARIOS[0])
    session = open_session(folder, "drsmith", PASSWORDS["drsmith"])
    try:
        # The unaudited lookup Session.evaluate uses: the public prior_records audits each find,
        # and the benchmarks never write to the seed.
        prior = session.assessments._prior_records(answers)
        t = Timing("Session.evaluate (with prior-records lookup)")
        for live in typing(answers, 10):
            session.assessments.evaluate(form, live)
        for live in typing(answers, keystrokes):
            t.samples.append(time_ms(lambda live=live: session.assessments.evaluate(form, live)))
        lookup = Timing("Session.prior_records alone")
        for _ in range(min(keystrokes, 100)):
            lookup.samples.append(time_ms(lambda: session.assessments._prior_records(answers)))
    finally:
        session.close()
    print(t.describe())
    print(lookup.describe())
    n = f"{info['n']:,}".replace(",", " ")
    return [
        Row(
            f"Session.evaluate per keystroke ({n} records){tag}",
            "< 5 ms",
            t.p95,
            None,
            stat="p95",
            note=f"median {t.median:.2f} ms; {len(prior)} earlier records found for the child",
        ),
        Row(f"  part: Session.prior_records ({n} records){tag}", "", lookup.p95, None, stat="p95"),
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--keystrokes", type=int, default=300, help="evaluations per scenario")
    parser.add_argument(
        "--session-keystrokes",
        type=int,
        default=30,
        help="Session.evaluate calls on the 100k vault (each can take seconds)",
    )
    parser.add_argument(
        "--reuse", action="store_true", help="reuse the seeded vault in $GPSHARE_BENCH_DIR"
    )
    parser.add_argument(
        "--no-seeded", action="store_true", help="skip Session.evaluate on the 100k vault"
    )
    parser.add_argument(
        "--proposed",
        action="store_true",
        help="also time Session.evaluate with the proposed store changes, on a copy",
    )
    parser.add_argument("--n", type=int, default=100_000, help="records in the seeded vault")
    parser.add_argument("--json", help="append the result rows to this JSON file")
    add_quick(parser)
    args = parser.parse_args()
    if args.quick:
        args.keystrokes, args.session_keystrokes, args.n = 20, 3, QUICK_N
    print(machine())
    rows = pure_rows(args.keystrokes)
    if not args.no_seeded:
        rows += session_rows(args.session_keystrokes, args.reuse, n=args.n)
        if args.proposed:
            rows += session_rows(args.session_keystrokes, True, proposed=True, n=args.n)
    print_table("navigator per keystroke", rows)
    save_rows(args.json, "navigator", rows)


if __name__ == "__main__":
    main()
