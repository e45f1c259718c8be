"""The access-policy table (gpshare/access.py) is what the service layer enforces.

Every public Session method is called as every role — the record's own clinician, another
clinician, the lead, the administrator — and as a user who still has a one-time password;
each outcome (allowed past the access checks, or refused with PermissionDenied and an audit
event) must match the table. A public method missing from the table fails the test.
"""

from __future__ import annotations

import inspect
import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import keyring
import pytest

from gpshare import access
from gpshare.clock import FixedClock
from gpshare.errors import PasswordChangeRequired, PermissionDenied
from gpshare.services import Session
from gpshare.store import repositories as repo
from gpshare.store.errors import DisabledUserError
from tests.conftest import PASSWORDS, SCENARIOS, MemoryKeyring, VaultEnv, make_vault

OWNER, OTHER = "drsmith", "drjones"


@dataclass
class World:
    env: VaultEnv
    tmp: Path
    record_id: str  # drsmith's completed referral, with a signed letter
    draft_id: str  # drsmith's draft
    letter_id: int
    letter_pdf: bytes
    answers: dict[str, Any]
    record: Any


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    previous = keyring.get_keyring()
    keyring.set_keyring(MemoryKeyring())
    tmp = tmp_path_factory.mktemp("access")
    env = make_vault(tmp / "vault", FixedClock(datetime(2026, 11, 25, 10, 0, tzinfo=UTC)))
    admin = env.session("admin")
    admin.add_user("spare", "Spare User", "clinician", "spare user passphrase", "3456789")
    admin.add_user("pending", "Pat Pending", "clinician", "pending user passphrase", "4567891")
    admin.close()
    data = json.loads((SCENARIOS / "01-bruised-toddler-parents-agree.json").read_text())
    s = env.session(OWNER)
    record = s.start_assessment(answers=data["answers"])
    done, _ = s.complete(record.id)
    letter = s.generate_letter(done.id, PASSWORDS[OWNER])
    draft = s.start_assessment(answers={"child_given_name": "Leo"})
    s.close()
    try:
        yield World(
            env, tmp, done.id, draft.id, letter.letter_id, letter.pdf, data["answers"], done
        )
    finally:
        keyring.set_keyring(previous)


# How each public method is called, and which ownership rule applies after the role check:
# "own" = only the record's clinician (not even a lead), "readable" = its clinician or a lead.
Call = Callable[[Session, World], Any]
CALLS: dict[str, tuple[Call, str | None]] = {
    "add_addendum": (lambda s, w: s.add_addendum(w.record_id, "Later fact."), "readable"),
    "add_review": (lambda s, w: s.add_review(w.record_id, "reasonable"), None),
    "add_user": (lambda s, w: s.add_user("newbie", "New Person", "clinician", "weak"), None),
    "addenda": (lambda s, w: s.addenda(w.record_id), "readable"),
    "assessment_defaults": (lambda s, w: s.assessment_defaults(), None),
    "audit": (lambda s, w: s.audit("test_event"), None),
    "audit_log": (lambda s, w: s.audit_log(), None),
    "backup_now": (lambda s, w: s.backup_now(), None),
    "carry_draft_forward": (lambda s, w: s.carry_draft_forward(w.draft_id), "own"),
    "change_password": (
        lambda s, w: s.change_password("not-the-password", "fresh orchard lantern"),
        None,
    ),
    "checkpoint": (lambda s, w: s.checkpoint(), None),
    "child_chronology": (lambda s, w: s.child_chronology(w.record_id), None),
    "close": (lambda s, w: None, None),  # called last, separately
    "complete": (lambda s, w: s.complete(w.draft_id), "own"),
    "count_records": (lambda s, w: s.count_records(), None),
    "dashboard": (lambda s, w: s.dashboard(), None),
    "disable_user": (lambda s, w: s.disable_user("spare"), None),
    "evaluate": (lambda s, w: s.evaluate(s.form_for(w.record), w.answers), None),
    "export_audit_pdf": (lambda s, w: s.export_audit_pdf(w.tmp / "audit.pdf"), None),
    "export_records_csv": (lambda s, w: s.export_records_csv(w.tmp / "records.csv"), None),
    "followups": (lambda s, w: s.followups(w.record_id), "readable"),
    "forget_login": (lambda s, w: s.forget_login(), None),
    "form_for": (lambda s, w: s.form_for(w.record), None),
    "generate_letter": (lambda s, w: s.generate_letter(w.record_id, "wrong password"), "own"),
    "get_record": (lambda s, w: s.get_record(w.record_id), "readable"),
    "import_pkcs12": (lambda s, w: s.import_pkcs12(OTHER, b"not a p12", "pw"), None),
    "interrupt": (lambda s, w: s.interrupt(), None),
    "letter_unavailable_reason": (lambda s, w: s.letter_unavailable_reason(w.record), None),
    "letters": (lambda s, w: s.letters(w.record_id), "readable"),
    "list_backups": (lambda s, w: s.list_backups(), None),
    "list_records": (lambda s, w: s.list_records(), None),
    "list_users": (lambda s, w: s.list_users(), None),
    "lock": (lambda s, w: None, None),  # called last, separately
    "needs_action": (lambda s, w: s.needs_action(), None),
    "new_user_problems": (
        lambda s, w: s.new_user_problems("newbie", "New Person", "clinician", "weak", None),
        None,
    ),
    "now_iso": (lambda s, w: s.now_iso(), None),
    "open_letter": (lambda s, w: s.open_letter(w.letter_id), "readable"),
    "practice_ca_pem": (lambda s, w: s.practice_ca_pem(), None),
    "practice_details": (lambda s, w: s.practice_details(), None),
    "preview_letter": (lambda s, w: s.preview_letter(w.draft_id), "own"),
    "prior_records": (lambda s, w: s.prior_records(w.answers), None),
    "protected_copy": (
        lambda s, w: s.protected_copy(w.letter_id, "wrong password", "pdf-password-123"),
        "own",
    ),
    "record_access_log": (lambda s, w: s.record_access_log(w.record_id), None),
    "record_followup": (lambda s, w: s.record_followup(w.record_id, "sent"), "readable"),
    "record_letter_event": (
        lambda s, w: s.record_letter_event(w.letter_id, "letter_printed"),
        "readable",
    ),
    "referral_state": (lambda s, w: s.referral_state(w.record_id), "readable"),
    "referral_states": (lambda s, w: s.referral_states([w.record]), None),
    "remember_login": (lambda s, w: s.remember_login(), None),
    "reset_password": (lambda s, w: s.reset_password("spare"), None),
    "review_household_link": (
        lambda s, w: s.review_household_link(w.record_id, "SG-0000-0000", "not_related"),
        None,
    ),
    "reviews": (lambda s, w: s.reviews(w.record_id), "readable"),
    "rule_settings": (lambda s, w: s.rule_settings(), None),
    "save_draft": (lambda s, w: s.save_draft(w.draft_id, {"child_given_name": "Leo"}), "own"),
    "save_letter": (lambda s, w: s.save_letter(w.letter_id, w.tmp / "letter.pdf"), "readable"),
    "settings": (lambda s, w: s.settings(), None),
    "signing_certificate": (lambda s, w: s.signing_certificate(OWNER), None),
    "start_assessment": (lambda s, w: s.start_assessment(answers={}), None),
    "trusted_issuers": (lambda s, w: s.trusted_issuers(), None),
    "update_settings": (lambda s, w: s.update_settings({"auto_lock_minutes": "5"}), None),
    "verify_audit": (lambda s, w: s.verify_audit(), None),
    "verify_letter": (lambda s, w: s.verify_letter(w.letter_pdf), None),
    "worker_session": (lambda s, w: s.worker_session().close(), None),
    "verify_password": (lambda s, w: s.verify_password("not-the-password"), None),
}
AFTER_SESSION = ("lock", "close")


def public_methods() -> set[str]:
    return {
        name
        for name, member in inspect.getmembers(Session)
        if not name.startswith("_") and inspect.isfunction(member)
    }


def test_every_public_method_is_in_the_table_and_called_here():
    methods = public_methods()
    assert methods - set(access.METHOD_ACTIONS) == set(), "add these methods to gpshare/access.py"
    assert set(access.METHOD_ACTIONS) - methods == set(), "stale entries in gpshare/access.py"
    assert set(CALLS) == methods, "call every public method in this test"
    assert set(access.METHOD_ACTIONS.values()) <= set(access.POLICY)
    assert set(access.POLICY) >= access.WHILE_PASSWORD_CHANGE_PENDING
    assert all(roles <= access.EVERYONE and roles for roles in access.POLICY.values())


def expected_allowed(method: str, username: str, role: str) -> bool:
    if not access.allowed(role, access.METHOD_ACTIONS[method]):
        return False
    ownership = CALLS[method][1]
    if ownership == "own":
        return username == OWNER
    if ownership == "readable":
        return username == OWNER or role == "lead"
    return True


def outcome(session: Session, call: Call, world: World) -> tuple[bool, BaseException | None]:
    """(allowed past the access checks, the exception raised if any)."""
    try:
        call(session, world)
    except PermissionDenied as exc:
        return False, exc
    except Exception as exc:  # validation, wrong password, not found: the gate was passed
        return True, exc
    return True, None


@pytest.mark.parametrize("username", ["admin", "lead", OWNER, OTHER])
def test_every_method_as_every_role_matches_the_table(world, username):
    session = world.env.session(username)
    role = session.user.role
    mismatches = []
    try:
        for method in sorted(set(CALLS) - set(AFTER_SESSION)):
            allowed, exc = outcome(session, CALLS[method][0], world)
            want = expected_allowed(method, username, role)
            if allowed != want:
                mismatches.append(f"{method}: {'allowed' if allowed else 'denied'} ({exc!r})")
            elif not allowed:
                # Every refusal is audited, with the attempted action.
                last = repo.audit_events(session.conn, repo.AuditFilter(), limit=1)[0]
                assert last.action == "permission_denied", method
                assert last.actor == username and last.details["role"] == role
                assert not isinstance(exc, PasswordChangeRequired)
    finally:
        session.lock()  # "session" actions are open to every role
    assert not session.is_open
    assert mismatches == [], f"{username} ({role})"
    again = world.env.session(username)
    again.close()


def test_one_time_password_allows_only_changing_it(world):
    admin = world.env.session("admin")
    temp = admin.reset_password("pending")
    admin.close()
    session = world.env.session("pending", temp)
    assert session.user.must_change_password
    refused = []
    try:
        for method in sorted(set(CALLS) - set(AFTER_SESSION)):
            if method == "change_password":
                continue
            _allowed, exc = outcome(session, CALLS[method][0], world)
            pending_ok = access.METHOD_ACTIONS[method] in access.WHILE_PASSWORD_CHANGE_PENDING
            assert isinstance(exc, PasswordChangeRequired) != pending_ok, method
            if isinstance(exc, PasswordChangeRequired):
                refused.append(method)
                assert "gpshare user passwd --user pending" in str(exc)
        assert {"generate_letter", "get_record", "list_records", "settings"} <= set(refused)
        denied = repo.audit_events(
            session.conn, repo.AuditFilter(action="permission_denied"), limit=None
        )
        assert sum(e.details.get("reason") == "must_change_password" for e in denied) == len(
            refused
        )
        session.change_password(temp, "pending chosen passphrase")
        assert not session.user.must_change_password
        session.list_records()
    finally:
        session.close()


def test_disabled_user_cannot_open_a_session(vault_env):
    admin = vault_env.session("admin")
    admin.disable_user("drjones")
    admin.close()
    with pytest.raises(DisabledUserError, match="has been disabled"):
        vault_env.session("drjones")


def test_prior_records_is_role_checked_and_audited(vault_env):
    data = json.loads((SCENARIOS / "03-low-level-concern-monitor.json").read_text())
    smith = vault_env.session("drsmith")
    record = smith.start_assessment(answers=data["answers"])
    smith.complete(record.id)
    smith.close()

    admin = vault_env.session("admin")
    with pytest.raises(PermissionDenied, match="(?i)not permitted for your role"):
        admin.prior_records({"nhs_number": data["answers"]["nhs_number"]})
    admin.close()

    jones = vault_env.session("drjones")
    found = jones.prior_records(data["answers"])
    assert [p.record_id for p in found] == [record.id]
    assert jones.prior_records({"nhs_number": "999 999 9999", "child_family_name": "Nobody"}) == []
    jones.close()

    lead = vault_env.session("lead")
    events = lead.audit_log()
    viewed = [e for e in events if e.action == "prior_records_viewed"]
    assert len(viewed) == 1 and viewed[0].actor == "drjones"
    assert viewed[0].details["records"] == [record.id]
    denied = [e for e in events if e.action == "permission_denied" and e.actor == "admin"]
    assert [e.details["attempted"] for e in denied] == ["assess"]
    lead.close()


def test_restore_refuses_non_admins_and_one_time_passwords(vault_env):
    from gpshare.services import restore

    admin = vault_env.session("admin")
    snapshot = admin.backup_now()
    admin.close()
    with pytest.raises(PermissionDenied, match="(?i)not permitted for your role"):
        restore(vault_env.folder, snapshot, "lead", PASSWORDS["lead"], vault_env.clock)
    admin = vault_env.session("admin")
    admin.add_user("admin2", "Second Admin", "admin", "second admin passphrase")
    temp = admin.reset_password("admin2")
    admin.close()
    with pytest.raises(PasswordChangeRequired):
        restore(vault_env.folder, snapshot, "admin2", temp, vault_env.clock)


def test_table_keeps_patient_records_from_administrators_and_oversight_with_leads():
    for action in ("view_record", "assess", "list_records", "sign_letter", "record_followup"):
        assert not access.allowed("admin", action), action
        assert access.allowed("clinician", action) and access.allowed("lead", action)
    for action in ("dashboard", "child_chronology", "export_records", "lead_review"):
        assert access.allowed("lead", action) and not access.allowed("clinician", action)
    for action in ("add_user", "reset_password", "change_settings", "restore"):
        assert access.POLICY[action] == {"admin"}
    assert not access.allowed("admin", "no_such_action")
