"""The access-policy table (gpshare/access.py) is what the service layer enforces.

Every public method of the Session and of each of its services is called as every role — the
record's own clinician, another clinician, the lead, the administrator — and as a user who still has a one-time password;
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
from gpshare.errors import PasswordChangeRequired, PermissionDenied, ServiceError
from gpshare.services import Session
from gpshare.services._base import Service
from gpshare.store.errors import DisabledUserError
from gpshare.store.sqlcipher import repositories as repo
from tests.conftest import PASSWORDS, SCENARIOS, MemoryKeyring, VaultEnv, make_vault
from tests.storehelp import raw_connection

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
    admin.users.add_user("spare", "Spare User", "clinician", "spare user passphrase", "3456789")
    admin.users.add_user(
        "pending", "Pat Pending", "clinician", "pending user passphrase", "4567891"
    )
    admin.close()
    data = json.loads((SCENARIOS / "01-bruised-toddler-parents-agree.json").read_text())
    s = env.session(OWNER)
    record = s.assessments.start_assessment(answers=data["answers"])
    done, _ = s.assessments.complete(record.id)
    letter = s.letters.generate_letter(done.id, PASSWORDS[OWNER])
    draft = s.assessments.start_assessment(answers={"child_given_name": "Leo"})
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
    "assessments.add_addendum": (
        lambda s, w: s.assessments.add_addendum(w.record_id, "Later fact."),
        "readable",
    ),
    "referrals.add_review": (lambda s, w: s.referrals.add_review(w.record_id, "reasonable"), None),
    "users.add_user": (
        lambda s, w: s.users.add_user("newbie", "New Person", "clinician", "weak"),
        None,
    ),
    "assessments.addenda": (lambda s, w: s.assessments.addenda(w.record_id), "readable"),
    "assessments.assessment_defaults": (lambda s, w: s.assessments.assessment_defaults(), None),
    "session.audit": (lambda s, w: s.audit("test_event"), None),
    "audit_trail.audit_log": (lambda s, w: s.audit_trail.audit_log(), None),
    "backups.backup_now": (lambda s, w: s.backups.backup_now(), None),
    "assessments.carry_draft_forward": (
        lambda s, w: s.assessments.carry_draft_forward(w.draft_id),
        "own",
    ),
    "users.change_password": (
        lambda s, w: s.users.change_password("not-the-password", "fresh orchard lantern"),
        None,
    ),
    "session.checkpoint": (lambda s, w: s.checkpoint(), None),
    "lead.child_chronology": (lambda s, w: s.lead.child_chronology(w.record_id), None),
    "session.close": (lambda s, w: None, None),  # called last, separately
    "assessments.complete": (lambda s, w: s.assessments.complete(w.draft_id), "own"),
    "assessments.count_records": (lambda s, w: s.assessments.count_records(), None),
    "lead.dashboard": (lambda s, w: s.lead.dashboard(), None),
    "users.disable_user": (lambda s, w: s.users.disable_user("spare"), None),
    "assessments.evaluate": (
        lambda s, w: s.assessments.evaluate(s.assessments.form_for(w.record), w.answers),
        None,
    ),
    "audit_trail.export_audit_pdf": (
        lambda s, w: s.audit_trail.export_audit_pdf(w.tmp / "audit.pdf"),
        None,
    ),
    "lead.export_records_csv": (
        lambda s, w: s.lead.export_records_csv(w.tmp / "records.csv"),
        None,
    ),
    "referrals.followups": (lambda s, w: s.referrals.followups(w.record_id), "readable"),
    "users.forget_login": (lambda s, w: s.users.forget_login(), None),
    "assessments.form_for": (lambda s, w: s.assessments.form_for(w.record), None),
    "letters.generate_letter": (
        lambda s, w: s.letters.generate_letter(w.record_id, "wrong password"),
        "own",
    ),
    "assessments.get_record": (lambda s, w: s.assessments.get_record(w.record_id), "readable"),
    "users.import_pkcs12": (lambda s, w: s.users.import_pkcs12(OTHER, b"not a p12", "pw"), None),
    "session.interrupt": (lambda s, w: s.interrupt(), None),
    "letters.letter_unavailable_reason": (
        lambda s, w: s.letters.letter_unavailable_reason(w.record),
        None,
    ),
    "letters.list_letters": (lambda s, w: s.letters.list_letters(w.record_id), "readable"),
    "backups.list_backups": (lambda s, w: s.backups.list_backups(), None),
    # a version-1 vault: past the gate, then "never upgraded"
    "backups.open_legacy_backup": (
        lambda s, w: s.backups.open_legacy_backup("20261201T000000000000Z", "admin"),
        None,
    ),
    # an embedded vault: past the gate, then refused as "not on a practice server"
    "server.backup": (lambda s, w: s.server.backup(w.tmp / "none.dump"), None),
    "server.restore": (lambda s, w: s.server.restore(w.tmp / "none.dump"), None),
    "server.enrol": (lambda s, w: s.server.enrol("pc2", group_role="g"), None),
    "server.workstation_ca_pem": (lambda s, w: s.server.workstation_ca_pem(), None),
    "server.adopt_enrolment_secret": (lambda s, w: s.server.adopt_enrolment_secret(), None),
    "server.enrolment_secret_text": (lambda s, w: s.server.enrolment_secret_text(), None),
    "assessments.list_records": (lambda s, w: s.assessments.list_records(), None),
    "users.list_users": (lambda s, w: s.users.list_users(), None),
    "session.lock": (lambda s, w: None, None),  # called last, separately
    "referrals.needs_action": (lambda s, w: s.referrals.needs_action(), None),
    "users.new_user_problems": (
        lambda s, w: s.users.new_user_problems("newbie", "New Person", "clinician", "weak", None),
        None,
    ),
    "session.now_iso": (lambda s, w: s.now_iso(), None),
    "letters.open_letter": (lambda s, w: s.letters.open_letter(w.letter_id), "readable"),
    "practice.practice_ca_pem": (lambda s, w: s.practice.practice_ca_pem(), None),
    "practice.practice_details": (lambda s, w: s.practice.practice_details(), None),
    "letters.preview_letter": (lambda s, w: s.letters.preview_letter(w.draft_id), "own"),
    "assessments.prior_records": (lambda s, w: s.assessments.prior_records(w.answers), None),
    "letters.protected_copy": (
        lambda s, w: s.letters.protected_copy(w.letter_id, "wrong password", "pdf-password-123"),
        "own",
    ),
    "lead.record_access_log": (lambda s, w: s.lead.record_access_log(w.record_id), None),
    "referrals.record_followup": (
        lambda s, w: s.referrals.record_followup(w.record_id, "sent"),
        "readable",
    ),
    "letters.record_letter_event": (
        lambda s, w: s.letters.record_letter_event(w.letter_id, "letter_printed"),
        "readable",
    ),
    "referrals.referral_state": (lambda s, w: s.referrals.referral_state(w.record_id), "readable"),
    "referrals.referral_states": (lambda s, w: s.referrals.referral_states([w.record]), None),
    "users.remember_login": (lambda s, w: s.users.remember_login(), None),
    "users.reset_password": (lambda s, w: s.users.reset_password("spare"), None),
    "lead.review_household_link": (
        lambda s, w: s.lead.review_household_link(w.record_id, "SG-0000-0000", "not_related"),
        None,
    ),
    "referrals.reviews": (lambda s, w: s.referrals.reviews(w.record_id), "readable"),
    "practice.rule_settings": (lambda s, w: s.practice.rule_settings(), None),
    "assessments.save_draft": (
        lambda s, w: s.assessments.save_draft(w.draft_id, {"child_given_name": "Leo"}),
        "own",
    ),
    "letters.save_letter": (
        lambda s, w: s.letters.save_letter(w.letter_id, w.tmp / "letter.pdf"),
        "readable",
    ),
    "practice.settings": (lambda s, w: s.practice.settings(), None),
    "users.signing_certificate": (lambda s, w: s.users.signing_certificate(OWNER), None),
    "assessments.start_assessment": (lambda s, w: s.assessments.start_assessment(answers={}), None),
    "users.trusted_issuers": (lambda s, w: s.users.trusted_issuers(), None),
    "practice.update_settings": (
        lambda s, w: s.practice.update_settings({"auto_lock_minutes": "5"}),
        None,
    ),
    "audit_trail.verify_audit": (lambda s, w: s.audit_trail.verify_audit(), None),
    "audit_trail.verify_integrity": (lambda s, w: s.audit_trail.verify_integrity(), None),
    "audit_trail.last_integrity_check": (lambda s, w: s.audit_trail.last_integrity_check(), None),
    "letters.verify_letter": (lambda s, w: s.letters.verify_letter(w.letter_pdf), None),
    "session.worker_session": (lambda s, w: s.worker_session().close(), None),
    "session.unreachable_since": (lambda s, w: s.unreachable_since(), None),
    "users.verify_password": (lambda s, w: s.users.verify_password("not-the-password"), None),
    "views.record_view": (lambda s, w: s.views.record_view(w.record_id), "readable"),
    "views.records_page": (lambda s, w: s.views.records_page(count=True), None),
    "views.draft_view": (lambda s, w: s.views.draft_view(w.draft_id), "own"),
    "views.drafts_summary": (lambda s, w: s.views.drafts_summary(), None),
    "views.chronology_view": (lambda s, w: s.views.chronology_view(w.record_id), None),
    "breakglass.ceremony": (
        lambda s, w: s.breakglass.ceremony("not the code", "lead", "a test of the gate"),
        None,
    ),
    "breakglass.notice": (lambda s, w: s.breakglass.notice(), None),
    "breakglass.acknowledge": (lambda s, w: s.breakglass.acknowledge(), None),
    "breakglass.lead_cover": (lambda s, w: s.breakglass.lead_cover(), None),
    # a version-1 vault: past the gate, then "no break-glass code"
    "breakglass.open_legacy_backup": (
        lambda s, w: s.breakglass.open_legacy_backup("20261201T000000000000Z", "code", "test"),
        None,
    ),
    "directory.own_key": (lambda s, w: s.directory.own_key(), None),
    "directory.pending": (lambda s, w: s.directory.pending(), None),
    "directory.confirm": (
        lambda s, w: s.directory.confirm("spare", "six words that do not match"),
        None,
    ),
    "directory.rotate": (lambda s, w: s.directory.rotate(), None),
    "directory.rotation_pending": (lambda s, w: s.directory.rotation_pending(), None),
    "directory.remembered_logins": (lambda s, w: s.directory.remembered_logins(), None),
    "directory.revoke_login": (lambda s, w: s.directory.revoke_login(999), None),
    "search_index.status": (lambda s, w: s.search_index.status(), None),
    "search_index.catch_up": (lambda s, w: s.search_index.catch_up(), None),
    "search_index.rebuild": (lambda s, w: s.search_index.rebuild(), None),
    "search_index.prepare": (lambda s, w: s.search_index.prepare(), None),
    "offline.save_draft": (
        lambda s, w: s.offline.save_draft(w.draft_id, {"child_given_name": "Leo"}),
        "own",
    ),
    "offline.start_assessment": (lambda s, w: s.offline.start_assessment(answers={}), None),
    "offline.flush": (lambda s, w: s.offline.flush(), None),
    "offline.waiting": (lambda s, w: s.offline.waiting(), None),
    "offline.open_cached": (
        lambda s, w: s.offline.open_cached(w.tmp / "offline-drafts" / "none.gpdraft"),
        None,
    ),
}
AFTER_SESSION = ("session.lock", "session.close")


def public_methods() -> set[str]:
    """Every public method of the Session ("session.<name>") and of each service it creates
    ("<attribute>.<name>"), found by introspection so a new one fails until it is listed."""

    def public(cls: type) -> list[str]:
        return [
            name
            for name, member in inspect.getmembers(cls)
            if not name.startswith("_") and inspect.isfunction(member)
        ]

    methods = {f"session.{name}" for name in public(Session)}
    for attr, service in Session.SERVICES.items():
        methods |= {f"{attr}.{name}" for name in public(service)}
    return methods


def test_every_service_object_is_in_the_registry(world):
    """The session's service attributes are exactly Session.SERVICES (none left unchecked),
    and no service class has more than 15 public methods (issue #12)."""
    session = world.env.session("admin")
    try:
        found = {
            name: type(value) for name, value in vars(session).items() if isinstance(value, Service)
        }
    finally:
        session.close()
    assert found == dict(Session.SERVICES)
    # Each service holds the session itself, so closing the session locks every service.
    assert all(getattr(session, name)._session is session for name in found)
    with pytest.raises(ServiceError, match="The vault is locked"):
        session.audit_trail.audit_log()
    for service in Session.SERVICES.values():
        count = sum(
            1
            for name, member in inspect.getmembers(service)
            if not name.startswith("_") and inspect.isfunction(member)
        )
        assert count <= 15, service.__name__


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
                last = repo.audit_events(raw_connection(session), repo.AuditFilter(), limit=1)[0]
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
    temp = admin.users.reset_password("pending")
    admin.close()
    session = world.env.session("pending", temp)
    assert session.user.must_change_password
    refused = []
    try:
        for method in sorted(set(CALLS) - set(AFTER_SESSION)):
            if method == "users.change_password":
                continue
            _allowed, exc = outcome(session, CALLS[method][0], world)
            pending_ok = access.METHOD_ACTIONS[method] in access.WHILE_PASSWORD_CHANGE_PENDING
            assert isinstance(exc, PasswordChangeRequired) != pending_ok, method
            if isinstance(exc, PasswordChangeRequired):
                refused.append(method)
                assert "gpshare user passwd --user pending" in str(exc)
        assert {
            "letters.generate_letter",
            "assessments.get_record",
            "assessments.list_records",
            "practice.settings",
        } <= set(refused)
        denied = repo.audit_events(
            raw_connection(session), repo.AuditFilter(action="permission_denied"), limit=None
        )
        assert sum(e.details.get("reason") == "must_change_password" for e in denied) == len(
            refused
        )
        session.users.change_password(temp, "pending chosen passphrase")
        assert not session.user.must_change_password
        session.assessments.list_records()
    finally:
        session.close()


def test_disabled_user_cannot_open_a_session(vault_env):
    admin = vault_env.session("admin")
    admin.users.disable_user("drjones")
    admin.close()
    with pytest.raises(DisabledUserError, match="has been disabled"):
        vault_env.session("drjones")


def test_prior_records_is_role_checked_and_audited(vault_env):
    data = json.loads((SCENARIOS / "03-low-level-concern-monitor.json").read_text())
    smith = vault_env.session("drsmith")
    record = smith.assessments.start_assessment(answers=data["answers"])
    smith.assessments.complete(record.id)
    smith.close()

    admin = vault_env.session("admin")
    with pytest.raises(PermissionDenied, match="(?i)not permitted for your role"):
        admin.assessments.prior_records({"nhs_number": data["answers"]["nhs_number"]})
    admin.close()

    jones = vault_env.session("drjones")
    found = jones.assessments.prior_records(data["answers"])
    assert [p.record_id for p in found] == [record.id]
    assert (
        jones.assessments.prior_records(
            {"nhs_number": "999 999 9999", "child_family_name": "Nobody"}
        )
        == []
    )
    jones.close()

    lead = vault_env.session("lead")
    events = lead.audit_trail.audit_log()
    viewed = [e for e in events if e.action == "prior_records_viewed"]
    assert len(viewed) == 1 and viewed[0].actor == "drjones"
    assert viewed[0].details["records"] == [record.id]
    denied = [e for e in events if e.action == "permission_denied" and e.actor == "admin"]
    assert [e.details["attempted"] for e in denied] == ["assess"]
    lead.close()


def test_restore_refuses_non_admins_and_one_time_passwords(vault_env):
    from gpshare.services import restore

    admin = vault_env.session("admin")
    snapshot = admin.backups.backup_now()
    admin.close()
    with pytest.raises(PermissionDenied, match="(?i)not permitted for your role"):
        restore(vault_env.folder, snapshot, "lead", PASSWORDS["lead"], vault_env.clock)
    admin = vault_env.session("admin")
    admin.users.add_user("admin2", "Second Admin", "admin", "second admin passphrase")
    temp = admin.users.reset_password("admin2")
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
