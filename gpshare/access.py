"""Who may do what: the one role × action table the service layer enforces.

`Session._require(action)` looks the action up in POLICY; tests/test_access.py calls every
public Session method as every role and checks the result against these same mappings.
They are plain data (no Qt, no SQL) so that the services can be split into modules later
and keep one table.

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
    "export_records": LEAD_ONLY,
    "export_audit": OVERSIGHT,
    "verify_audit": OVERSIGHT,
    "read_audit_log": OVERSIGHT,
}

# Public Session method -> the action it is checked as. Every public method is listed
# (tests/test_access.py fails on one that is not).
METHOD_ACTIONS: Mapping[str, str] = {
    "close": "session",
    "lock": "session",
    "now_iso": "session",
    "checkpoint": "session",
    "interrupt": "session",
    "worker_session": "session",
    "audit": "audit_event",
    "change_password": "change_password",
    "verify_password": "verify_password",
    "remember_login": "remember_login",
    "forget_login": "remember_login",
    "list_users": "list_users",
    "settings": "read_settings",
    "practice_details": "read_settings",
    "assessment_defaults": "read_settings",
    "form_for": "read_form",
    "signing_certificate": "read_certificates",
    "trusted_issuers": "read_certificates",
    "practice_ca_pem": "export_ca",
    "verify_letter": "verify_letter",
    "add_user": "add_user",
    "new_user_problems": "add_user",
    "import_pkcs12": "import_pkcs12",
    "disable_user": "disable_user",
    "reset_password": "reset_password",
    "update_settings": "change_settings",
    "backup_now": "backup",  # backup_now(automatic=True) is checked as backup_on_close
    "list_backups": "list_backups",
    "prior_records": "assess",
    "evaluate": "assess",
    "rule_settings": "read_settings",
    "carry_draft_forward": "save_draft",
    "start_assessment": "start_assessment",
    "save_draft": "save_draft",
    "complete": "complete_record",
    "get_record": "view_record",
    "addenda": "view_record",
    "followups": "view_record",
    "reviews": "view_record",
    "letters": "view_record",
    "letter_unavailable_reason": "view_record",
    "list_records": "list_records",
    "count_records": "list_records",
    "referral_states": "list_records",
    "referral_state": "view_record",
    "add_addendum": "add_addendum",
    "generate_letter": "sign_letter",
    "preview_letter": "sign_letter",
    "protected_copy": "letter_protected_copy",
    "open_letter": "view_letter",
    "save_letter": "view_letter",
    "record_letter_event": "view_letter",
    "record_followup": "record_followup",
    "needs_action": "needs_action",
    "add_review": "lead_review",
    "record_access_log": "record_access_log",
    "child_chronology": "child_chronology",
    "review_household_link": "household_link_review",
    "dashboard": "dashboard",
    "export_records_csv": "export_records",
    "export_audit_pdf": "export_audit",
    "verify_audit": "verify_audit",
    "audit_log": "read_audit_log",
}

# While a user still has a one-time password (after a reset, `recover` or a PKCS#12
# import) they may only choose their own password, or lock and leave.
WHILE_PASSWORD_CHANGE_PENDING: frozenset[str] = frozenset(
    {"session", "audit_event", "change_password", "verify_password"}
)


def allowed(role: str, action: str) -> bool:
    """True when `role` may attempt `action` (unknown actions are refused)."""
    return role in POLICY.get(action, frozenset())
