"""Who may do what: the one role × action table the service layer enforces.

`Session._require(action)` looks the action up in POLICY (every service object of the
gpshare.services package checks through it); tests/test_access.py calls every public method
of the Session and of its services as every role and checks the result against these same
mappings. They are plain data (no Qt, no SQL): one table for all the service modules.

Role checks are the first gate only. Ownership is checked afterwards in the services: a
clinician reads, changes, signs and follows up only their own records; a lead any record.
"""

from __future__ import annotations

from collections.abc import Mapping

CLINICIAN, LEAD, ADMIN = "clinician", "lead", "admin"
EVERYONE: frozenset[str] = frozenset({CLINICIAN, LEAD, ADMIN})
CLINICAL: frozenset[str] = frozenset({CLINICIAN, LEAD})
LEAD_ONLY: frozenset[str] = frozenset({LEAD})
ADMIN_ONLY: frozenset[str] = frozenset({ADMIN})
OVERSIGHT: frozenset[str] = frozenset({LEAD, ADMIN})

# action -> roles allowed to attempt it.
POLICY: Mapping[str, frozenset[str]] = {
    # the session itself: lock, close, the clock, audit events the UI records (prints, views)
    "session": EVERYONE,
    "audit_event": EVERYONE,
    # your own password and remembered login
    "change_password": EVERYONE,
    "verify_password": EVERYONE,
    "remember_login": EVERYONE,
    # practice-wide, non-clinical reads
    "list_users": EVERYONE,  # non-administrators see only themselves
    "read_settings": EVERYONE,
    "read_form": EVERYONE,
    "read_certificates": EVERYONE,  # public certificates only
    "export_ca": EVERYONE,
    "verify_letter": EVERYONE,
    "backup_on_close": EVERYONE,
    # administration
    "add_user": ADMIN_ONLY,
    "import_pkcs12": ADMIN_ONLY,
    "disable_user": ADMIN_ONLY,
    "reset_password": ADMIN_ONLY,
    "change_settings": ADMIN_ONLY,
    "backup": ADMIN_ONLY,
    "list_backups": ADMIN_ONLY,
    "restore": ADMIN_ONLY,
    "open_legacy_backup": LEAD_ONLY,  # a pre-upgrade backup's key, for an admin's restore (D3)
    "enrol_workstation": ADMIN_ONLY,  # a practice server's workstation roles
    "adopt_enrolment_secret": ADMIN_ONLY,  # a practice server's enrolment secret (DESIGN §10.3)
    # clinical work (clinicians on their own records; leads on any)
    "assess": CLINICAL,
    "start_assessment": CLINICAL,
    "save_draft": CLINICAL,
    "complete_record": CLINICAL,
    "view_record": CLINICAL,
    "list_records": CLINICAL,
    "add_addendum": CLINICAL,
    "sign_letter": CLINICAL,
    "letter_protected_copy": CLINICAL,
    "view_letter": CLINICAL,
    "record_followup": CLINICAL,
    "needs_action": CLINICAL,
    # the safeguarding lead's oversight
    "lead_review": LEAD_ONLY,
    "record_access_log": LEAD_ONLY,
    "child_chronology": LEAD_ONLY,
    "household_link_review": LEAD_ONLY,
    "dashboard": LEAD_ONLY,
    # the lead's search replica (vault version 2, class L: only a lead key opens it)
    "search_index": LEAD_ONLY,
    "export_records": LEAD_ONLY,
    "export_audit": OVERSIGHT,
    "verify_audit": OVERSIGHT,
    "read_audit_log": OVERSIGHT,
    # vault version 2 key directory: your own key's fingerprint; only a lead confirms (grants)
    "read_own_key": EVERYONE,
    "confirm_key": LEAD_ONLY,
    # break-glass (vault version 2): an admin runs the ceremony with the code holder; leads
    # and admins see its banner and the last-lead notice, and acknowledge the ceremony
    "breakglass_ceremony": ADMIN_ONLY,
    "breakglass_notice": OVERSIGHT,
    "breakglass_acknowledge": OVERSIGHT,
    # a pre-upgrade backup's key through the break-glass code, for the admin's own restore (D3)
    "breakglass_legacy_backup": ADMIN_ONLY,
    # rotation by generation (gpshare/services/rotation.py): a lead rotates; both see it pending
    "rotate_keys": LEAD_ONLY,
    "key_rotation_state": OVERSIGHT,
    # remembered logins (vault version 2): leads and admins list and revoke them
    "manage_logins": OVERSIGHT,
}

# Public service method -> the action it is checked as, keyed "<session attribute>.<method>"
# ("users.add_user" is session.users.add_user) or "session.<method>" for the Session's own.
# Every public method is listed (tests/test_access.py fails on one that is not).
METHOD_ACTIONS: Mapping[str, str] = {
    "session.close": "session",
    "session.lock": "session",
    "session.now_iso": "session",
    "session.checkpoint": "session",
    "session.interrupt": "session",
    "session.worker_session": "session",
    "session.unreachable_since": "session",
    "session.audit": "audit_event",
    "users.change_password": "change_password",
    "users.verify_password": "verify_password",
    "users.remember_login": "remember_login",
    "users.forget_login": "remember_login",
    "users.list_users": "list_users",
    "practice.settings": "read_settings",
    "practice.practice_details": "read_settings",
    "assessments.assessment_defaults": "read_settings",
    "assessments.form_for": "read_form",
    "users.signing_certificate": "read_certificates",
    "users.trusted_issuers": "read_certificates",
    "practice.practice_ca_pem": "export_ca",
    "letters.verify_letter": "verify_letter",
    "users.add_user": "add_user",
    "users.new_user_problems": "add_user",
    "users.import_pkcs12": "import_pkcs12",
    "users.disable_user": "disable_user",
    "users.reset_password": "reset_password",
    "practice.update_settings": "change_settings",
    "backups.backup_now": "backup",  # backup_now(automatic=True) is checked as backup_on_close
    "backups.list_backups": "list_backups",
    "backups.open_legacy_backup": "open_legacy_backup",
    "server.backup": "backup",
    "server.restore": "restore",
    "server.enrol": "enrol_workstation",
    "server.workstation_ca_pem": "enrol_workstation",
    "server.adopt_enrolment_secret": "adopt_enrolment_secret",
    "server.enrolment_secret_text": "adopt_enrolment_secret",
    "assessments.prior_records": "assess",
    "assessments.evaluate": "assess",
    "practice.rule_settings": "read_settings",
    "assessments.carry_draft_forward": "save_draft",
    "assessments.start_assessment": "start_assessment",
    "assessments.save_draft": "save_draft",
    "assessments.complete": "complete_record",
    "assessments.get_record": "view_record",
    "assessments.addenda": "view_record",
    "referrals.followups": "view_record",
    "referrals.reviews": "view_record",
    "letters.list_letters": "view_record",
    "letters.letter_unavailable_reason": "view_record",
    "assessments.list_records": "list_records",
    "assessments.count_records": "list_records",
    "referrals.referral_states": "list_records",
    "referrals.referral_state": "view_record",
    "assessments.add_addendum": "add_addendum",
    "letters.generate_letter": "sign_letter",
    "letters.preview_letter": "sign_letter",
    "letters.protected_copy": "letter_protected_copy",
    "letters.open_letter": "view_letter",
    "letters.save_letter": "view_letter",
    "letters.record_letter_event": "view_letter",
    "referrals.record_followup": "record_followup",
    "referrals.needs_action": "needs_action",
    "referrals.add_review": "lead_review",
    "lead.record_access_log": "record_access_log",
    "lead.child_chronology": "child_chronology",
    "lead.review_household_link": "household_link_review",
    "lead.dashboard": "dashboard",
    "lead.export_records_csv": "export_records",
    "audit_trail.export_audit_pdf": "export_audit",
    "audit_trail.verify_audit": "verify_audit",
    "audit_trail.verify_integrity": "verify_audit",
    "audit_trail.last_integrity_check": "verify_audit",
    "audit_trail.audit_log": "read_audit_log",
    # view models (gpshare/services/views.py): one call per screen, checked as what it shows
    "views.record_view": "view_record",
    "views.records_page": "list_records",
    "views.draft_view": "view_record",
    "views.drafts_summary": "list_records",
    "views.chronology_view": "child_chronology",
    # the key directory (gpshare/services/keys.py; vault version 2)
    "directory.own_key": "read_own_key",
    "directory.pending": "confirm_key",
    "directory.confirm": "confirm_key",
    # the break-glass ceremony and its banner (gpshare/services/breakglass.py)
    "breakglass.ceremony": "breakglass_ceremony",
    "breakglass.notice": "breakglass_notice",
    "breakglass.acknowledge": "breakglass_acknowledge",
    "breakglass.lead_cover": "breakglass_notice",
    "breakglass.open_legacy_backup": "breakglass_legacy_backup",
    "directory.rotate": "rotate_keys",
    "directory.rotation_pending": "key_rotation_state",
    "directory.remembered_logins": "manage_logins",
    "directory.revoke_login": "manage_logins",
    "search_index.status": "search_index",
    "search_index.catch_up": "search_index",
    "search_index.rebuild": "search_index",
    "search_index.prepare": "search_index",
    "offline.save_draft": "save_draft",
    "offline.start_assessment": "start_assessment",
    "offline.flush": "save_draft",
    "offline.waiting": "save_draft",
    "offline.open_cached": "view_record",
}

# While a user still has a one-time password (after a reset, `recover` or a PKCS#12
# import) they may only choose their own password, or lock and leave.
WHILE_PASSWORD_CHANGE_PENDING: frozenset[str] = frozenset(
    {"session", "audit_event", "change_password", "verify_password"}
)


def allowed(role: str, action: str) -> bool:
    """True when `role` may attempt `action` (unknown actions are refused)."""
    return role in POLICY.get(action, frozenset())
