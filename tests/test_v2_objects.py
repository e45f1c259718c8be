"""Vault v2, step 4 services half (docs/vault-v2.md §1, §1.2; DESIGN §10.1, §10.3): addenda,
letters, follow-up notes, lead reviews and household link reviews sealed by the services and
opened again; no narrative or identity in records.db; a colleague opens none of it; lists do
no unwrap; the audit events carry commitments and ciphertext hashes; exports open what the
lead can open.

The records themselves are written here through the record codec's sealed writers, as the
brief allows, because the services wiring of assessments on v2 lands from the v2records branch
in parallel (until then `start_assessment` on a v2 vault still stores a v1 row)."""

from __future__ import annotations

import csv
import hashlib
import io
import json
import subprocess
import tempfile
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from gpshare.cli import main
from gpshare.errors import KeyNotHeld, PermissionDenied
from gpshare.forms import load_form_by_id
from gpshare.records import ChildSummary, Record, new_record_id
from gpshare.services import _sealing
from gpshare.services._records import _child, _store_referral_states
from gpshare.services.assessments import DEFAULT_FORM_ID
from gpshare.services.keyring import SessionKeys
from gpshare.services.record_keys import LEAD_RECIPIENT
from gpshare.store import keys as k
from gpshare.store.keys.errors import UnwrapError
from gpshare.store.keys.wraps import WrapBinding, unwrap_object_key
from tests import pdftools
from tests.conftest import PASSWORDS, SCENARIOS
from tests.storehelp import raw_connection

# Every flow here runs on an embedded vault and on a practice server (issue #14).
RUN_ON_BOTH_ENGINES = True

needs_poppler = pdftools.needs("pdftotext", "pdfsig")
SCENARIO = "01-bruised-toddler-parents-agree"
# Words written only into N objects (and the child's name, only into the sealed record and
# its letter): none may appear in records.db or its WAL outside a ciphertext.
ADDENDUM_MARK = "Quokkavelvet"
FOLLOWUP_MARK = "Marmalisktide"
DETAILS_MARK = "Fernwhistle"
REVIEW_MARK = "Pelicornish"
LEARNING_MARK = "Gantryplume"
CHILD = ("Ellie", "Marsh")


def scenario_answers(name: str = SCENARIO) -> dict[str, Any]:
    return json.loads((SCENARIOS / f"{name}.json").read_text())["answers"]


def sealed_completed(session: Any, name: str = SCENARIO) -> Record:
    """A completed record of `session`'s user written through the sealed writers: a draft,
    then its completion, each in one audited transaction, and its referral state stored
    without the child's name (class C)."""
    keys = session.keys
    assert keys is not None
    form = load_form_by_id(DEFAULT_FORM_ID)
    evaluation = session.assessments.evaluate(form, scenario_answers(name))
    assert not evaluation.errors
    now = session.now_iso()
    user = session.user
    draft = Record(
        new_record_id(), user.username, "draft", form.id, form.version,
        dict(evaluation.cleaned), form.steps[0].id, None, now, now, None,
        _child(evaluation.cleaned),
        user.full_name,
    )  # fmt: skip
    write, key = _sealing.seal_record(keys, draft, 0)
    session._write("record_created", lambda tx: tx.insert_sealed_record(write), draft.id)
    done = replace(draft, status="completed", completed=now, outcome=evaluation.outcome.to_dict())
    finish, _key = _sealing.seal_record(keys, done, write.row.version, key)

    def complete(tx: Any) -> None:
        tx.complete_sealed_record(finish)
        # The stored state's name columns are v1's: a sealed record leaves them empty.
        _store_referral_states(tx, [replace(done, child=ChildSummary("", "", None, None))])

    session._write("record_completed", complete, done.id)
    return done


@pytest.fixture
def practice(vault_env_v2: Any) -> dict[str, Any]:
    """drsmith's sealed, completed record with one of each object: drsmith's addendum,
    follow-up (sent, with a note and details) and signed letter; the lead's review."""
    env = vault_env_v2
    smith = env.session("drsmith")
    try:
        record = sealed_completed(smith)
        addendum = smith.assessments.add_addendum(
            record.id, f"Health visitor phoned: {ADDENDUM_MARK} seen at the nursery."
        )
        followup = smith.referrals.record_followup(
            record.id,
            "sent",
            note=f"Sent to the MASH, {FOLLOWUP_MARK} on the phone.",
            details={"method": f"secure email {DETAILS_MARK}"},
        )
        letter = smith.letters.generate_letter(record.id, PASSWORDS["drsmith"])
    finally:
        smith.close()
    lead = env.session("lead")
    try:
        review = lead.referrals.add_review(
            record.id, "needs_discussion", f"Discuss {REVIEW_MARK}.", f"Learning {LEARNING_MARK}"
        )
    finally:
        lead.close()
    return {
        "env": env,
        "record": record,
        "addendum": addendum,
        "followup": followup,
        "letter": letter,
        "review": review,
    }


@pytest.fixture
def smith(practice: dict[str, Any]) -> Any:
    session = practice["env"].session("drsmith")
    yield session
    if session.is_open:
        session.close()


@pytest.fixture
def lead(practice: dict[str, Any]) -> Any:
    session = practice["env"].session("lead")
    yield session
    if session.is_open:
        session.close()


def test_each_object_kind_is_read_back_through_the_services(practice):
    env, record = practice["env"], practice["record"]
    for username in ("drsmith", "lead"):
        session = env.session(username)
        try:
            [addendum] = session.assessments.addenda(record.id)
            assert ADDENDUM_MARK in addendum.body and addendum.author == "drsmith"
            [sent] = session.referrals.followups(record.id)
            assert sent.event == "sent" and FOLLOWUP_MARK in (sent.note or "")
            assert sent.details == {"method": f"secure email {DETAILS_MARK}"}
            opened = session.letters.open_letter(practice["letter"].letter_id)
            assert opened.pdf == practice["letter"].pdf
            assert opened.sha256 == practice["letter"].sha256
        finally:
            session.close()
    lead = env.session("lead")
    try:
        [review] = lead.referrals.reviews(record.id)
        assert (review.verdict, review.comments, review.learning) == (
            "needs_discussion",
            f"Discuss {REVIEW_MARK}.",
            f"Learning {LEARNING_MARK}",
        )
        # The record view (one call per screen) opens the same objects.
        view = lead.views.record_view(record.id)
        assert [a.body for a in view.addenda] == [practice["addendum"].body]
        assert [f.note for f in view.followups] == [practice["followup"].note]
        assert view.reviews is not None and [r.comments for r in view.reviews] == [review.comments]
        assert [m.sha256 for m in view.letters] == [practice["letter"].sha256]
        # The referral state comes from the M parts of the follow-up (sent, when).
        assert view.referral_state is not None and view.referral_state.sent_at is not None
    finally:
        lead.close()


def _raw_rows(session: Any) -> list[tuple[str, str, Any]]:
    conn = raw_connection(session)
    tables = [
        r[0]
        for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")
        if not str(r[0]).startswith("sqlite_")
    ]
    found = []
    for table in tables:
        cur = conn.execute(f'SELECT * FROM "{table}"')
        columns = [d[0] for d in cur.description]
        for row in cur:
            found += [(table, c, v) for c, v in zip(columns, row, strict=True) if v is not None]
    return found


@needs_poppler
def test_records_db_and_its_wal_hold_no_marker_and_the_stored_letter_is_ciphertext(
    practice, smith, vault_engine
):
    if vault_engine == "postgres":
        pytest.skip(
            "reads records.db and its WAL; a server's rows and pg_dump are checked in "
            "test_pg_store.py and test_pg_server.py"
        )
    markers = [ADDENDUM_MARK, FOLLOWUP_MARK, DETAILS_MARK, REVIEW_MARK, LEARNING_MARK, *CHILD]
    rows = _raw_rows(smith)
    assert any(t == "letters" for t, _c, _v in rows)  # the scan did reach the tables
    for table, column, value in rows:
        if isinstance(value, (bytes, memoryview)):
            text = bytes(value).decode("latin-1")
        else:
            text = str(value)
        for marker in markers:
            assert marker.casefold() not in text.casefold(), (table, column, marker)
    # The WAL and the main file are SQLCipher pages: no marker in their raw bytes either.
    folder = practice["env"].folder
    wal = folder / "records.db-wal"
    assert wal.exists() and wal.stat().st_size > 0
    for path in (wal, folder / "records.db"):
        data = path.read_bytes()
        for marker in markers:
            assert marker.encode() not in data, (path.name, marker)
    conn = raw_connection(smith)
    pdf, pdf_ct, unsigned, unsigned_ct = conn.execute(
        "SELECT pdf, pdf_ct, unsigned_pdf, unsigned_ct FROM letters WHERE id = ?",
        (practice["letter"].letter_id,),
    ).fetchone()
    assert bytes(pdf) == b"" and unsigned is None
    for stored in (bytes(pdf_ct), bytes(unsigned_ct)):
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "stored.pdf"
            path.write_bytes(stored)
            out = subprocess.run(
                ["pdftotext", str(path), "-"], capture_output=True, text=True, check=False
            )
        assert out.returncode != 0 and CHILD[0] not in out.stdout
    # Control: the opened letter does name the child.
    assert CHILD[0] in pdftools.pdftotext(
        smith.letters.open_letter(practice["letter"].letter_id).pdf
    )


@needs_poppler
def test_the_stored_letter_verifies_with_pdfsig_and_verify_letter_finds_it_by_hash(
    practice, lead, tmp_path, capsys, monkeypatch
):
    letter = practice["letter"]
    opened = lead.letters.open_letter(letter.letter_id)
    sig = pdftools.pdfsig(opened.pdf)
    assert "Signature is Valid" in sig and "Dr Alex Smith" in sig
    result, match = lead.letters.verify_letter(opened.pdf)
    assert result.ok and match is not None and match.id == letter.letter_id
    lead.close()
    path = tmp_path / "letter.pdf"
    path.write_bytes(opened.pdf)
    monkeypatch.setenv("GPSHARE_PASSWORD", PASSWORDS["lead"])
    argv = ["verify-letter", str(path), "--vault", str(practice["env"].folder), "--user", "lead"]
    assert main([*argv, "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["ok"] and out["record_id"] == practice["record"].id


def test_a_colleague_cannot_open_the_addendum_or_the_letter(practice):
    env, record = practice["env"], practice["record"]
    jones = env.session("drjones")
    try:
        with pytest.raises(PermissionDenied):
            jones.assessments.addenda(record.id)
        with pytest.raises(PermissionDenied):
            jones.letters.open_letter(practice["letter"].letter_id)
        # Below the services: every wrap there is, read straight from the store, and
        # drjones's key ring cannot unwrap any of them.
        everyone = ["drsmith", "drjones", "lead", LEAD_RECIPIENT]
        with jones._read() as tx:
            [addendum] = tx.sealed_addenda(record.id, everyone)
            [letter] = tx.sealed_letters(record.id, everyone)
        assert jones.keys is not None
        for sealed in (addendum.body, letter.pdf):
            assert {w.recipient for w in sealed.wraps} == {"drsmith", LEAD_RECIPIENT}
            rows = [(w.recipient, w.recipient_generation, w.wrap) for w in sealed.wraps]
            with pytest.raises(KeyNotHeld):
                jones.keys.open_object_key(sealed.kind, sealed.object_id, sealed.commitment, rows)
            # Nor does drjones's private key open drsmith's wrap.
            smith_wrap = next(w for w in sealed.wraps if w.recipient == "drsmith")
            binding = WrapBinding.for_object(
                jones.keys.vault_id, sealed.kind, sealed.object_id, "drsmith", 1
            )
            assert jones.keys.user_keys is not None
            with pytest.raises(UnwrapError):
                unwrap_object_key(
                    smith_wrap.wrap, jones.keys.user_keys.encryption, binding, sealed.commitment
                )
    finally:
        jones.close()
    lead = env.session("lead")
    try:
        refused = [
            e
            for e in lead.lead.record_access_log(record.id)
            if e.action == "permission_denied" and e.actor == "drjones"
        ]
        assert {e.details["attempted"] for e in refused} == {"view_record", "view_letter"}
    finally:
        lead.close()


def test_lists_needs_action_and_dashboard_do_no_unwrap(practice, monkeypatch):
    opened: list[tuple[str, str]] = []
    real = SessionKeys.open_object_key

    def counting(self: SessionKeys, kind: str, object_id: str, *args: Any) -> k.ObjectKey:
        opened.append((kind, object_id))
        return real(self, kind, object_id, *args)

    monkeypatch.setattr(SessionKeys, "open_object_key", counting)
    env, record = practice["env"], practice["record"]
    for username in ("lead", "drsmith"):
        session = env.session(username)
        try:
            page = session.views.records_page(count=True)
            assert record.id in {r.id for r in page.records} and page.total == 1
            assert record.id in page.states
            session.referrals.needs_action()
            if username == "lead":
                session.lead.dashboard()
        finally:
            session.close()
    assert opened == []
    # Control: opening the record's follow-up history (one record opened) does unwrap its note.
    lead = env.session("lead")
    try:
        lead.referrals.followups(record.id)
    finally:
        lead.close()
    assert "followup-note" in [kind for kind, _id in opened]


def test_the_chronology_shows_sealed_reviews_and_addenda_as_events_only(practice, lead):
    entries, _links = lead.lead.child_chronology(practice["record"].id)
    kinds = {e.kind: e.summary for e in entries}
    assert kinds["addendum"] == "Addendum added"
    assert kinds["review"] == "Lead review"  # the verdict is N: shown when the record is opened
    assert not any(REVIEW_MARK in e.summary or ADDENDUM_MARK in e.summary for e in entries)


def _event(session: Any, record_id: str, action: str) -> Any:
    [event] = [e for e in session.lead.record_access_log(record_id) if e.action == action]
    return event


def test_audit_events_of_sealed_writes_carry_commitments_and_ciphertext_hashes(practice, lead):
    record_id = practice["record"].id
    conn = raw_connection(lead)
    # One shape for every sealed write (gpshare/store/sealed_rows.py): the row, named by its
    # object id (a letter's unsigned copy shares the signed copy's row).
    stored = {
        ("addendum_added", "addenda", "body_ct"): conn.execute(
            "SELECT object_id, body_commit, body_ct FROM addenda"
        ).fetchone(),
        ("followup_recorded", "followups", "note_ct"): conn.execute(
            "SELECT object_id, note_commit, note_ct FROM followups"
        ).fetchone(),
        ("lead_review_added", "reviews", "body_ct"): conn.execute(
            "SELECT object_id, body_commit, body_ct FROM reviews"
        ).fetchone(),
        ("letter_generated", "letters", "pdf_ct"): conn.execute(
            "SELECT object_id, pdf_commit, pdf_ct FROM letters"
        ).fetchone(),
        ("letter_generated", "letters", "unsigned_ct"): conn.execute(
            "SELECT object_id, unsigned_commit, unsigned_ct FROM letters"
        ).fetchone(),
    }
    for (action, table, column), (object_id, commit, ct) in stored.items():
        details = _event(lead, record_id, action).details
        [sealed] = details["sealed"]["rows"]
        assert (sealed["table"], sealed["id"], sealed["version"]) == (table, object_id, 0)
        assert sealed["commitment"][column] == bytes(commit).hex()
        assert sealed["sha256"][column] == hashlib.sha256(bytes(ct)).hexdigest()
        assert sealed["wraps"] == ["#lead@1", "drsmith@1"] or sealed["wraps"] == [
            "#lead@1",
            "drsmith@1",
            "lead@1",
        ]
    # The review's verdict is N: it is not in its audit event either.
    assert "verdict" not in _event(lead, record_id, "lead_review_added").details
    assert (
        _event(lead, record_id, "letter_generated").details["sha256"] == practice["letter"].sha256
    )
    report = lead.audit_trail.verify_audit()
    assert report.ok, report


def test_a_household_link_review_is_sealed_and_read_back(vault_env_v2):
    """Two children with the same mother at the same address: the lead confirms the link.
    (The records come from the services; the review is sealed whatever they are.)"""
    env = vault_env_v2
    smith = env.session("drsmith")
    try:
        ids = []
        sibling = {
            "nhs_number": "9990000018",
            "child_given_name": "Yusuf",
            "date_of_birth": "2018-05-05",
        }
        for more in ({}, sibling):
            answers = {**scenario_answers("03-low-level-concern-monitor"), **more}
            rec = smith.assessments.start_assessment(answers=answers)
            done, _ = smith.assessments.complete(rec.id)
            ids.append(done.id)
    finally:
        smith.close()
    lead = env.session("lead")
    try:
        _entries, links = lead.lead.child_chronology(ids[1])
        assert [(link.record.id, link.status) for link in links] == [(ids[0], "to_confirm")]
        note = "Tundrafinch: same flat, confirmed with the health visitor"
        lead.lead.review_household_link(ids[1], ids[0], "same_household", note)
        _entries, links = lead.lead.child_chronology(ids[1])
        assert [(link.record.id, link.status) for link in links] == [(ids[0], "same_household")]
        # A practice server has no decision or note column at all (class C exists only sealed).
        plain = "NULL, NULL" if lead.vault.engine == "postgres" else "decision, note"
        row = (
            raw_connection(lead)
            .execute(f"SELECT {plain}, generation, review_ct FROM household_link_reviews")
            .fetchone()
        )
        assert row[0] is None and row[1] is None and row[2] == 1
        assert b"Tundrafinch" not in bytes(row[3])
        with lead._read() as tx:
            [sealed] = tx.household_reviews([ids[1]])
        assert lead.keys is not None
        assert _sealing.open_household_review(lead.keys, sealed) == ("same_household", note)
        details = _event(lead, ids[1], "household_link_reviewed").details
        assert "decision" not in details  # class C: not in the M audit event
        assert (
            details["sealed"]["household-review"]["sha256"]
            == hashlib.sha256(bytes(row[3])).hexdigest()
        )
    finally:
        lead.close()


def test_the_export_with_narratives_opens_what_the_lead_can_open(practice, lead, tmp_path):
    target = tmp_path / "export.csv"
    count = lead.lead.export_records_csv(target, include_narratives=True)
    assert count == 1
    rows = list(csv.DictReader(io.StringIO(target.read_text(encoding="utf-8-sig"))))
    [row] = rows
    narrative = scenario_answers()["concern_narrative"]
    assert row["record_id"] == practice["record"].id
    assert row["concern_narrative"] == narrative
    assert row["child_name"] == "Ellie Marsh"
    [event] = [e for e in lead.audit_trail.audit_log() if e.action == "records_exported"]
    assert event.details["narratives_unreadable"] == 0


@needs_poppler
def test_the_letter_view_shows_a_sealed_letter(qtbot, practice, lead, tmp_path):
    from gpshare.ui.letter_view import LetterView

    letter = practice["letter"]
    view = LetterView(lead, letter.letter_id)
    qtbot.addWidget(view)
    view.resize(1100, 800)
    view.show()
    assert view.page_count == pdftools.page_count(letter.pdf) >= 2
    assert "Dr Alex Smith" in view.signer_label.text()
    assert view.signature_label.text() == f"✔ Digitally signed — SHA-256 {letter.sha256[:16]}…"
    view.grab().save(str(tmp_path / "letter-view.png"))
    assert (tmp_path / "letter-view.png").stat().st_size > 0


def test_save_and_protected_copy_open_the_sealed_letter(practice, smith, tmp_path):
    letter = practice["letter"]
    saved = smith.letters.save_letter(letter.letter_id, tmp_path / "saved.pdf")
    assert saved.read_bytes() == letter.pdf  # the exact signed bytes, opened from N
    copy = smith.letters.protected_copy(
        letter.letter_id, PASSWORDS["drsmith"], "blue heron at dawn"
    )
    assert copy.startswith(b"%PDF") and b"/Encrypt" in copy
    # The copy is made from the unsigned PDF kept sealed with the letter: not the signed one.
    assert copy != letter.pdf
