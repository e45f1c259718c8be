"""Practice settings v2 (front door, local authority, Appropriate Policy Document): validation in
the service, the audit trail, the CLI, the admin screen, and the pre-fill of a new assessment."""

from __future__ import annotations

import json
from datetime import date

import pytest
from PySide6.QtWidgets import QLabel, QLineEdit, QPushButton

from gpshare import practice_settings
from gpshare.cli import main
from gpshare.errors import PermissionDenied, ValidationFailed
from gpshare.store.sqlcipher import repositories as repo
from gpshare.ui import dialogs
from gpshare.ui.admin_view import AdminView
from gpshare.ui.wizard.wizard import AssessmentWizard
from tests.conftest import PASSWORDS
from tests.storehelp import raw_connection

FRONT_DOOR = {
    "default_recipient_name": "Leeds Children's Social Work Service Front Door",
    "default_recipient_email": "frontdoor@leeds.gov.uk",
    "local_authority": "Leeds",
    "appropriate_policy_document": "IG-APD-03, 2026-04-01",
}


@pytest.fixture
def admin(vault_env):
    session = vault_env.session("admin")
    yield session
    if session.is_open:
        session.close()


def configure(vault_env) -> None:
    """Store the front-door settings as the admin (one session per vault at a time)."""
    session = vault_env.session("admin")
    try:
        session.practice.update_settings(FRONT_DOOR)
    finally:
        session.close()


def errors_of(exc: ValidationFailed) -> dict[str, str]:
    return {e["field"]: e["message"] for e in exc.errors}


# ----- validation (below the UI) -----------------------------------------------------------------
def test_v2_settings_are_saved_and_audited(admin):
    admin.practice.update_settings(FRONT_DOOR)
    values = admin.practice.settings()
    for key, value in FRONT_DOOR.items():
        assert values[key] == value
    events = repo.audit_events(
        raw_connection(admin), repo.AuditFilter(action="settings_changed"), None, 0
    )
    assert sorted(FRONT_DOOR) == events[0].details["keys"]


def test_v2_settings_start_empty(admin):
    values = admin.practice.settings()
    assert {k: values[k] for k in practice_settings.DEFAULTS} == practice_settings.DEFAULTS


@pytest.mark.parametrize(
    ("key", "value", "expected"),
    [
        ("default_recipient_email", "front door@leeds.gov.uk", "one email address"),
        ("default_recipient_email", "frontdoor.leeds.gov.uk", "one email address"),
        ("default_recipient_email", "a@b@leeds.gov.uk", "one email address"),
        ("default_recipient_name", "x" * 201, "201 characters; 200 is the most"),
        ("local_authority", "L" * 101, "101 characters; 100 is the most"),
        ("local_authority", "Leeds\x07", "invisible control characters"),
        ("appropriate_policy_document", "IG-APD-03", "needs the date it was approved"),
        ("appropriate_policy_document", "IG-APD-03 2026-02-30", "2026-02-30 is not a real date"),
        ("appropriate_policy_document", "IG-APD-03, 2027-01-01", "is in the future"),
        ("appropriate_policy_document", "2026-04-01", "needs the document's reference"),
    ],
)
def test_bad_v2_settings_name_the_setting_and_the_fix(admin, key, value, expected):
    with pytest.raises(ValidationFailed) as info:
        admin.practice.update_settings({key: value})
    message = errors_of(info.value)[key]
    assert expected in message
    assert practice_settings.LABELS[key] in message
    assert admin.practice.settings()[key] == ""  # nothing saved


def test_one_bad_setting_saves_nothing(admin):
    with pytest.raises(ValidationFailed) as info:
        admin.practice.update_settings(
            {"local_authority": "Leeds", "default_recipient_email": "nope"}
        )
    assert set(errors_of(info.value)) == {"default_recipient_email"}
    assert admin.practice.settings()["local_authority"] == ""


def test_clearing_a_v2_setting_is_allowed(admin):
    admin.practice.update_settings(FRONT_DOOR)
    admin.practice.update_settings({"appropriate_policy_document": "  "})
    assert admin.practice.settings()["appropriate_policy_document"] == ""


def test_only_an_admin_changes_them(vault_env):
    lead = vault_env.session("lead")
    try:
        with pytest.raises(PermissionDenied):
            lead.practice.update_settings({"local_authority": "Leeds"})
        assert lead.practice.settings()["local_authority"] == ""  # anyone may read them
    finally:
        lead.close()


def test_apd_date_is_checked_against_the_clock_not_the_machine():
    assert (
        practice_settings.problem("appropriate_policy_document", "APD 2026-04-01", date(2026, 5, 1))
        is None
    )
    assert "future" in (
        practice_settings.problem("appropriate_policy_document", "APD 2026-04-01", date(2026, 3, 1))
        or ""
    )


# ----- pre-fill of a new assessment (services.start_assessment) ----------------------------------
def test_new_assessment_starts_with_the_front_door_as_recipient(vault_env):
    configure(vault_env)
    smith = vault_env.session("drsmith")
    try:
        record = smith.assessments.start_assessment()
        assert record.form_version == 2
        assert record.answers["recipient_name"] == FRONT_DOOR["default_recipient_name"]
        assert record.answers["child_local_authority"] == "Leeds"
        stored = smith.assessments.get_record(record.id)
        assert stored.answers["recipient_name"] == FRONT_DOOR["default_recipient_name"]
        assert (
            smith.assessments.assessment_defaults()["recipient_name"]
            == FRONT_DOOR["default_recipient_name"]
        )
    finally:
        smith.close()


def test_prefill_never_overwrites_an_answer_the_user_gave(vault_env):
    configure(vault_env)
    smith = vault_env.session("drsmith")
    try:
        record = smith.assessments.start_assessment(answers={"recipient_name": "Bradford MASH"})
        assert record.answers["recipient_name"] == "Bradford MASH"
        blank = smith.assessments.start_assessment(answers={"recipient_name": "   "})
        assert blank.answers["recipient_name"] == FRONT_DOOR["default_recipient_name"]
    finally:
        smith.close()


def test_prefill_only_touches_fields_the_form_has():
    answers = practice_settings.prefill(["recipient_name"], FRONT_DOOR, {"child_given_name": "Amy"})
    assert answers == {
        "child_given_name": "Amy",
        "recipient_name": FRONT_DOOR["default_recipient_name"],
    }
    both = practice_settings.prefill(["recipient_name", "child_local_authority"], FRONT_DOOR, {})
    assert both["child_local_authority"] == "Leeds"
    assert practice_settings.prefill(["recipient_name"], {"default_recipient_name": ""}, {}) == {}


def test_no_prefill_without_settings(vault_env):
    smith = vault_env.session("drsmith")
    try:
        assert "recipient_name" not in smith.assessments.start_assessment().answers
        assert smith.assessments.assessment_defaults() == {}
    finally:
        smith.close()


def test_defaults_reveal_nothing_beyond_the_readable_settings(vault_env):
    configure(vault_env)
    admin = vault_env.session("admin")
    try:
        defaults = admin.assessments.assessment_defaults()
        settings = admin.practice.settings()
        assert defaults == {
            "recipient_name": settings["default_recipient_name"],
            "child_local_authority": settings["local_authority"],
        }
        with pytest.raises(PermissionDenied):  # but starting an assessment is still refused
            admin.assessments.start_assessment()
    finally:
        admin.close()


# ----- the CLI ------------------------------------------------------------------------------------
def run_cli(capsys, monkeypatch, user: str, *args: str) -> tuple[int, str, str]:
    monkeypatch.setenv("GPSHARE_PASSWORD", PASSWORDS[user])
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def test_cli_sets_and_shows_v2_settings(vault_env, capsys, monkeypatch):
    folder = str(vault_env.folder)
    code, out, err = run_cli(
        capsys, monkeypatch, "admin", "settings", "--vault", folder, "--user", "admin",
        "local_authority=Leeds", "default_recipient_email=frontdoor@leeds.gov.uk", "--json",
    )  # fmt: skip
    assert code == 0, err
    shown = json.loads(out)
    assert shown["local_authority"] == "Leeds"
    assert shown["default_recipient_email"] == "frontdoor@leeds.gov.uk"
    code, out, err = run_cli(
        capsys, monkeypatch, "admin", "settings", "--vault", folder, "--user", "admin",
        "default_recipient_email=frontdoor",
    )  # fmt: skip
    assert code != 0
    assert "one email address like frontdoor@council.gov.uk" in err
    assert "Traceback" not in err


# ----- the admin screen ---------------------------------------------------------------------------
@pytest.fixture
def admin_view(qtbot, admin):
    dialogs.reset()
    dialogs.set_non_interactive(True)
    view = AdminView(admin)
    qtbot.addWidget(view)
    view.tabs.setCurrentWidget(view.settings_tab)
    yield view
    dialogs.reset()


def test_admin_screen_saves_v2_settings(admin_view, admin):
    for key, value in FRONT_DOOR.items():
        admin_view.findChild(QLineEdit, f"admin.settings.{key}").setText(value)
    admin_view.findChild(QPushButton, "admin.settings.save").click()
    assert admin_view.findChild(QLabel, "admin.settings.message").text() == "Settings saved."
    assert {k: admin.practice.settings()[k] for k in FRONT_DOOR} == FRONT_DOOR


def test_admin_screen_shows_the_email_problem_next_to_the_field(admin_view, admin):
    admin_view.findChild(QLineEdit, "admin.settings.default_recipient_email").setText("frontdoor")
    admin_view.findChild(QLineEdit, "admin.settings.local_authority").setText("Leeds")
    admin_view.findChild(QPushButton, "admin.settings.save").click()
    tab = admin_view.settings_tab
    assert "one email address" in tab.field_error("default_recipient_email")
    assert tab.field_error("local_authority") == ""
    assert admin.practice.settings()["local_authority"] == ""  # nothing saved


# ----- the wizard shows the pre-fill --------------------------------------------------------------
def test_wizard_shows_the_defaults_marked_for_checking_and_stores_no_empty_draft(qtbot, vault_env):
    configure(vault_env)
    smith = vault_env.session("drsmith")
    dialogs.reset()
    dialogs.set_non_interactive(True)
    try:
        wizard = AssessmentWizard(smith)
        qtbot.addWidget(wizard)
        assert wizard.answers()["recipient_name"] == FRONT_DOOR["default_recipient_name"]
        assert (
            wizard.input_widget("recipient_name").get_value()
            == FRONT_DOOR["default_recipient_name"]
        )
        assert wizard.input_widget("child_local_authority").get_value() == "Leeds"
        # each pre-filled answer says where it came from until the clinician changes it
        note = wizard.findChild(QLabel, "child_local_authority.default_note")
        assert note is not None and "check it is right for this child" in note.text()
        assert not note.isHidden()
        assert not wizard.findChild(QLabel, "recipient_name.default_note").isHidden()
        assert wizard.findChild(QLabel, "child_given_name.default_note") is None
        wizard.input_widget("child_local_authority").set_value("Bradford")
        assert note.isHidden()
        wizard.input_widget("child_local_authority").set_value("Leeds")
        assert not note.isHidden()
        wizard.save_now()
        assert wizard.current_record_id is None  # the defaults alone are not a draft
        assert smith.assessments.list_records() == []
    finally:
        dialogs.reset()
        smith.close()
