"""Benchmark: opening one record on a vault-v2 practice against the same read on version 1.

Budget (DESIGN.md §10.4, docs/vault-v2.md §6): a record open adds < 5 ms. The measured
operation is the services read a record screen starts with, `session.assessments.get_record`
(access check, the M row, the C summary and the answers object with the reader's wraps read in
one transaction, then one HPKE unwrap of the object key, its commitment checked, the summary
and the answers decrypted), by the record's author, with the session's object-key cache
emptied before every run so each one unwraps (a record's first open in a session; later opens
until lock reuse the key and cost less). The baseline, timed interleaved in the same run, is
the same call on a version-1 vault holding the same answers (the M row and the stored JSON:
envelope encryption bypassed). A third row times the cryptography alone (unwrap + commitment
+ summary + answers decrypt) with the primitives, so the table says which part is SQL.

Both practices (admin and one clinician; v2 also a lead at init who confirms the clinician;
cheap test KDF) are made in a temporary folder under $GPSHARE_BENCH_DIR and deleted
afterwards; the record is scenario 01 of tests/fixtures/scenarios/v2. Asserts nothing.

    .venv/bin/python bench/record_open.py [--runs 201] [--quick] [--json PATH]
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import (  # noqa: E402
    BENCH_DIR,
    SCENARIOS,
    Row,
    Timing,
    add_quick,
    machine,
    measure_pair,
    print_table,
    save_rows,
    time_ms,
)

ADMIN_PASSWORD = "bench-admin-password-1"
LEAD_PASSWORD = "bench-lead-password-1"
PASSWORD = "bench-clinician-password-1"
AUTHOR = "clin"


def _answers() -> dict[str, Any]:
    path = next(SCENARIOS.glob("01-*.json"))
    return dict(json.loads(path.read_text(encoding="utf-8"))["answers"])


def make_practice(folder: Path, version: int) -> str:
    """A vault of format `version` with an admin and one clinician (v2: confirmed by a lead
    appointed at init) who has completed one record; its id."""
    from gpshare.clock import SystemClock
    from gpshare.demo import add_new_user, choose_own_password
    from gpshare.services import LeadAtInit, create_vault, create_vault_v2, open_session
    from gpshare.store.crypto import CHEAP_TEST_KDF

    clock = SystemClock()
    common = {
        "practice_name": "Bench Surgery",
        "admin_username": "admin",
        "admin_full_name": "Bench Admin",
        "admin_password": ADMIN_PASSWORD,
        "clock": clock,
        "kdf": CHEAP_TEST_KDF,
    }
    if version == 2:
        lead = LeadAtInit("lead", "Dr Bench Lead", LEAD_PASSWORD, "7654321")
        admin = create_vault_v2(folder, lead=lead, **common).session  # type: ignore[arg-type]
    else:
        admin, _code = create_vault(folder, **common)  # type: ignore[arg-type]
    first = add_new_user(admin, AUTHOR, "Dr Bench Clinician", "clinician", "1234567")
    admin.close()
    choose_own_password(folder, clock, AUTHOR, first, PASSWORD)
    if version == 2:
        author = open_session(folder, AUTHOR, PASSWORD, clock)
        own = author.directory.own_key()
        author.close()
        assert own is not None
        lead_session = open_session(folder, "lead", LEAD_PASSWORD, clock)
        lead_session.directory.confirm(AUTHOR, own.fingerprint)
        lead_session.close()
    author = open_session(folder, AUTHOR, PASSWORD, clock)
    try:
        record = author.assessments.start_assessment(answers=_answers())
        return str(author.assessments.complete(record.id)[0].id)
    finally:
        author.close()


def crypto_only(session: Any, record_id: str, runs: int) -> Timing:
    """The primitives alone on the stored ciphertexts: unwrap + commitment, the summary and
    the answers decrypted (no SQL, no access check)."""
    from gpshare.services import _sealing
    from gpshare.store.keys import open_object, unwrap_object_key

    keys = session.keys
    with session.store.read() as tx:
        sealed = tx.sealed_record(record_id, [AUTHOR])
    row, answers = sealed.row, sealed.answers
    [wrap] = [w for w in answers.wraps if w.recipient == AUTHOR]
    binding = _sealing._answers_binding(keys, row)
    encryption = keys.user_keys.encryption

    def run() -> None:
        key = unwrap_object_key(
            wrap.wrap, encryption, wrap.binding(keys.vault_id), answers.commitment
        )
        _sealing.open_summary(keys, sealed.summary, row)
        json.loads(open_object(key, answers.ct, binding))

    timing = Timing("crypto only")
    run()
    for _ in range(runs):
        timing.samples.append(time_ms(run))
    return timing


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=201)
    parser.add_argument("--json")
    add_quick(parser)
    args = parser.parse_args()
    if args.quick:
        args.runs = 5
    from gpshare.clock import SystemClock
    from gpshare.services import open_session

    BENCH_DIR.mkdir(parents=True, exist_ok=True)
    workdir = Path(tempfile.mkdtemp(prefix="record-open-", dir=BENCH_DIR))
    try:
        rid2 = make_practice(workdir / "v2", 2)
        rid1 = make_practice(workdir / "v1", 1)
        v2 = open_session(workdir / "v2", AUTHOR, PASSWORD, SystemClock())
        v1 = open_session(workdir / "v1", AUTHOR, PASSWORD, SystemClock())
        try:
            assert v2.keys is not None and v1.keys is None

            def open_v2() -> None:
                v2.keys._object_keys.clear()  # every run unwraps, as a first open does
                v2.assessments.get_record(rid2, audit_view=False)

            def open_v1() -> None:
                v1.assessments.get_record(rid1, audit_view=False)

            a, b = measure_pair("v2 open", open_v2, "v1 open", open_v1, args.runs, warmup=3)
            c = crypto_only(v2, rid2, args.runs)
        finally:
            v2.close()
            v1.close()
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    base = "same read, version 1"
    rows = []
    for stat in ("median", "p95"):
        measured, baseline = getattr(a, stat), getattr(b, stat)
        note = f"{measured - baseline:+.2f} ms over the baseline ({stat})"
        rows.append(Row("record open, v2", "+ < 5 ms", measured, baseline, base, stat, note=note))
    rows.append(Row("unwrap + commitment + decrypt", "—", c.median, None, stat="median"))
    print(machine())
    print_table(f"record open (author, object key not cached; {args.runs} runs)", rows)
    save_rows(args.json, "record_open", rows)


if __name__ == "__main__":
    main()
