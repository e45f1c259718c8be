"""Benchmark: referral letter PDF + PAdES signature vs a bare reportlab one-pager + the same signature.

Budget (DESIGN.md §8): letter + signature < 400 ms.  Both are measured in the
same run (median of N runs after one warm-up that pays for imports and font
loading).  Prints absolute times and the ratio; asserts nothing.

    .venv/bin/python bench/letter_sign.py [runs] [--quick]
"""

from __future__ import annotations

import argparse
import json
import re
import statistics
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime
from io import BytesIO
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from gpshare.letter import (  # noqa: E402
    LetterInput,
    PracticeDetails,
    Referrer,
    build_letter,
)
from gpshare.signing import (  # noqa: E402
    create_practice_ca,
    issue_user_certificate,
    sign_pdf,
)

SCENARIO = ROOT / "tests" / "fixtures" / "scenarios" / "01-bruised-toddler-parents-agree.json"


def _answers() -> dict[str, object]:
    if SCENARIO.exists():
        answers: dict[str, object] = json.loads(SCENARIO.read_text(encoding="utf-8"))["answers"]
        answers["nhs_number"] = re.sub(r"\D", "", str(answers.get("nhs_number", "")))
        return answers
    return {  # minimal stand-in when shared/ is not beside the repository
        "child_given_name": "Ellie",
        "child_family_name": "Marsh",
        "date_of_birth": "2024-03-14",
        "nhs_number": "9434765870",
        "address": "14 Canal Row, Leeds",
        "concern_narrative": "Four oval bruises on each upper arm in a grip pattern.",
        "categories": ["physical"],
        "threshold_view": "significant_harm",
        "consent_outcome": "given",
        "consent_given_by": "Kayleigh Marsh (mother)",
        "recipient_name": "Leeds Children's Social Work Service",
        "included_items": ["child_identity", "parent_identities", "reasons"],
    }


def _bare_one_pager() -> bytes:
    """The baseline document: one page, one line, reportlab's built-in font."""
    from reportlab.lib.pagesizes import A4
    from reportlab.lib.styles import getSampleStyleSheet
    from reportlab.platypus import Paragraph, SimpleDocTemplate

    buf = BytesIO()
    SimpleDocTemplate(buf, pagesize=A4, invariant=True).build(
        [Paragraph("Safeguarding referral", getSampleStyleSheet()["Normal"])]
    )
    return buf.getvalue()


def _median_ms(fn: Callable[[], object], runs: int) -> float:
    fn()  # warm-up: imports, font parsing, pyHanko's first use
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        fn()
        times.append((time.perf_counter() - start) * 1000)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", type=int, nargs="?", default=20, help="runs per measurement")
    parser.add_argument("--quick", action="store_true", help="2 runs, to check the benchmark runs")
    args = parser.parse_args()
    runs = 2 if args.quick else args.runs
    now = datetime.now(UTC)
    ca = create_practice_ca("Canal Row Medical Practice", now)
    user = issue_user_certificate(
        ca,
        full_name="Dr Siân Evans",
        username="sevans",
        role="GP partner",
        gmc_number="7012345",
        practice_name="Canal Row Medical Practice",
        now=now,
    )
    inp = LetterInput(
        record_id="3f2a9c1e-7b4d-4e2a-9c1e-7b4d4e2a9c1e",
        practice=PracticeDetails(
            "Canal Row Medical Practice",
            "14 Canal Row\nLeeds LS11 5AB",
            "B86001",
            "0113 496 0000",
            "canalrow.practice@nhs.net",
        ),
        referrer=Referrer("Dr Siân Evans", "GP partner", "7012345", "0113 496 0000"),
        answers=_answers(),
        outcome={"pathway": "referral", "consent_basis": "consent_given", "letter_required": True},
        completed_at=now,
        signed_at=now,
        prior_concerns=[],
        option_label=lambda field, token: token.replace("_", " ").capitalize(),
        child_age=2,
    )

    def letter_and_sign() -> bytes:
        return sign_pdf(build_letter(inp), user, ca.cert_pem, now=now, reason="r", location="l")

    def bare_and_sign() -> bytes:
        return sign_pdf(_bare_one_pager(), user, ca.cert_pem, now=now, reason="r", location="l")

    letter_only = _median_ms(lambda: build_letter(inp), runs)
    letter_ms = _median_ms(letter_and_sign, runs)
    bare_ms = _median_ms(bare_and_sign, runs)
    print(f"runs per measurement:           {runs} (median, after one warm-up)")
    print(f"build_letter alone:             {letter_only:8.1f} ms")
    print(f"build_letter + sign_pdf:        {letter_ms:8.1f} ms   (budget < 400 ms)")
    print(f"bare one-pager + same signature:{bare_ms:8.1f} ms")
    print(f"ratio letter / baseline:        {letter_ms / bare_ms:8.2f}")


if __name__ == "__main__":
    main()
