"""The in-place v1 → v2 migration (docs/vault-v2.md §4, decisions D3–D6): what every role can
do afterwards, that nothing is lost, that an interrupted or failed upgrade is finished or
undone, and that the admin's copy no longer holds narrative."""

from __future__ import annotations

import errno
import json
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from gpshare.errors import PermissionDenied, StoreError, ValidationFailed
from gpshare.services import open_session
from gpshare.services import migrate_v2 as mig
from gpshare.services.migrate_v2 import LeadAtMigration, migrate_vault
from gpshare.store import backup
from gpshare.store import migrate_v2 as files
from gpshare.store.errors import CorruptDatabaseError
from gpshare.store.vault import Vault
from tests.conftest import PASSWORDS, SCENARIOS, VaultEnv, make_vault

FIXTURE = Path(__file__).parent / "fixtures" / "vault-v1"
FIXTURE_PASSWORD = "fixture-password-1"
MARKER = "Quetzalcoatl-marker"


@dataclass
class Rich:
    """A v1 vault made by this code, and what it held before the upgrade."""

    env: VaultEnv
    done_id: str  # drsmith's completed referral with letter, addendum, follow-up, review
    sibling_id: str  # drjones's completed record for a sibling (same household)
    draft_id: str  # drsmith's draft
    letter_pdf: bytes
    before: dict[str, Any]


def _answers(name: str) -> dict[str, Any]:
    data = json.loads((SCENARIOS / "01-bruised-toddler-parents-agree.json").read_text())
    answers = dict(data["answers"])
    answers["concern_narrative"] = f"{answers.get('concern_narrative', '')} {MARKER}"
    answers["child_given_name"] = name
    return answers


def _snapshot(env: VaultEnv, done_id: str) -> dict[str, Any]:
    """What each role sees before (and must see after) the upgrade."""
    lead = env.session("lead")
    try:
        chronology, links = lead.lead.child_chronology(done_id)
        dash = lead.lead.dashboard()
        return {
            "records": sorted(
                (r.id, r.status, r.clinician, r.child.given_name)
                for r in lead.assessments.list_records()
            ),
            "outcome": lead.assessments.get_record(done_id).outcome,
            "addenda": [a.body for a in lead.assessments.addenda(done_id)],
            "followups": [(f.event, f.note) for f in lead.referrals.followups(done_id)],
            "reviews": [(r.verdict, r.comments) for r in lead.referrals.reviews(done_id)],
            "chronology": [(e.record_id, e.kind) for e in chronology],
            "links": sorted(link.record_id for link in links),
            "dashboard": (dash.completed, dash.by_pathway, dash.by_consent),
            "letters": [m.sha256 for m in lead.letters.list_letters(done_id)],
        }
    finally:
        lead.close()


def _rich(folder: Path, clock: Any) -> Rich:
    env = make_vault(folder, clock)
    s = env.session("drsmith")
    record = s.assessments.start_assessment(answers=_answers("Mia"))
    done, _ = s.assessments.complete(record.id)
    letter = s.letters.generate_letter(done.id, PASSWORDS["drsmith"])
    s.assessments.add_addendum(done.id, f"Later fact {MARKER}.")
    s.referrals.record_followup(done.id, "sent", note=f"Sent by secure email {MARKER}")
    draft = s.assessments.start_assessment(answers={"child_given_name": "Leo"})
    s.close()
    s = env.session("drjones")
    # Same carers and address, so the lead sees a household link to review; the same family
    # name and birth date also make it an earlier record of "the same child" to acknowledge.
    sibling = s.assessments.start_assessment(
        answers={**_answers("Noah"), "prior_concerns_acknowledged": True}
    )
    try:
        sibling_done, _ = s.assessments.complete(sibling.id)
    except ValidationFailed as exc:
        raise AssertionError(exc.errors) from exc
    s.close()
    lead = env.session("lead")
    lead.referrals.add_review(done.id, "reasonable", f"Sound {MARKER}", "none")
    _entries, links = lead.lead.child_chronology(done.id)
    for link in links:
        lead.lead.review_household_link(done.id, link.record_id, "same_household", MARKER)
    lead.close()
    admin = env.session("admin")
    admin.backups.backup_now()  # an older snapshot, which D3 must rekey too
    admin.close()
    env.clock.advance(60)
    return Rich(env, done.id, sibling_done.id, draft.id, letter.pdf, _snapshot(env, done.id))


@pytest.fixture
def rich(tmp_path: Path, clock: Any) -> Rich:
    return _rich(tmp_path / "vault", clock)


def _migrate(env: VaultEnv, **kw: Any) -> mig.Migrated:
    return migrate_vault(env.folder, "admin", PASSWORDS["admin"], clock=env.clock, **kw)


def _confirm_all(env: VaultEnv, users: list[str]) -> None:
    """Each user signs in (their client publishes a pending key); the lead confirms the words."""
    words = {}
    for name in users:
        s = env.session(name)
        try:
            own = s.directory.own_key()
            assert own is not None and not own.confirmed
            words[name] = own.fingerprint
        finally:
            s.close()
    lead = env.session("lead")
    try:
        for name, typed in words.items():
            lead.directory.confirm(name, typed)
    finally:
        lead.close()


def test_rich_vault_migrates_and_every_role_reads_what_it_read_before(rich: Rich) -> None:
    env = rich.env
    done = _migrate(env, lead=LeadAtMigration("lead", PASSWORDS["lead"]))
    assert Vault.open(env.folder).format_version == 2
    assert done.lead == "lead" and done.breakglass_code
    assert done.counts["records"] == 3 and done.counts["letters"] == 1
    assert not (env.folder / files.MIGRATING_DB).exists()
    assert not (env.folder / files.JOURNAL_NAME).exists()
    # The lead (appointed by the migration, D5) sees the same lists, chronology and dashboard.
    assert _snapshot(env, rich.done_id) == rich.before
    # The admin signs in; clinicians too, with pending keys until the lead confirms them.
    admin = env.session("admin")
    try:
        report = admin.audit_trail.verify() if hasattr(admin.audit_trail, "verify") else None
        assert admin.keys is not None
    finally:
        admin.close()
    del report
    s = env.session("drsmith")
    try:
        with pytest.raises(Exception, match="confirm"):
            s.assessments.get_record(rich.done_id)  # unreadable until the lead confirms (H-37)
    finally:
        s.close()
    _confirm_all(env, ["drsmith", "drjones"])
    s = env.session("drsmith")
    try:
        record = s.assessments.get_record(rich.done_id)
        assert MARKER in record.answers["concern_narrative"]
        assert [a.body for a in s.assessments.addenda(rich.done_id)] == rich.before["addenda"]
        assert s.assessments.get_record(rich.draft_id).child.given_name == "Leo"
        # The author still signs letters: the certificate was re-issued by the new CA (D6).
        again = s.letters.generate_letter(rich.done_id, PASSWORDS["drsmith"])
        result, match = s.letters.verify_letter(again.pdf)
        assert result.ok and match is not None
    finally:
        s.close()
    # A letter signed before the migration still verifies (the old CA is a trusted issuer).
    lead = env.session("lead")
    try:
        result, match = lead.letters.verify_letter(rich.letter_pdf)
        assert result.ok and match is not None and match.record_id == rich.done_id
    finally:
        lead.close()


def test_the_chain_verifies_across_the_migration(rich: Rich) -> None:
    env = rich.env
    _migrate(env)
    s = env.session("admin")
    try:
        with s._read() as tx:
            report = tx.verify_audit(s.vault.audit_head())
            events = tx.audit_events_after(0)
        assert report.ok, report.summary()
        assert [e.action for e in events].count("vault_migrated") == 1
    finally:
        s.close()
