"""The admin screen through the UI: users, one-time passwords, backups and settings."""

from __future__ import annotations

import pytest
from PySide6.QtWidgets import QComboBox, QLabel, QLineEdit, QPushButton, QWidget

from gpshare.store.errors import DisabledUserError
from gpshare.ui import dialogs
from gpshare.ui.admin_view import AdminView
from gpshare.ui.app import MainWindow
from tests.conftest import PASSWORDS


@pytest.fixture(autouse=True)
def seam():
    dialogs.reset()
    dialogs.set_non_interactive(True)
    yield
    dialogs.reset()


def unlock(window: MainWindow, username: str, password: str | None = None) -> None:
    w = window.unlock_widget
    w.username_edit.setText(username)
    w.password_edit.setText(PASSWORDS[username] if password is None else password)
    w.unlock_button.click()


def child(widget: QWidget, cls: type, name: str):  # type: ignore[no-untyped-def]
    found = widget.findChild(cls, name)
    assert found is not None, name
    return found


@pytest.fixture
def window(qtbot, vault_env, clock):
    win = MainWindow(clock=clock, vault_folder=vault_env.folder)
    qtbot.addWidget(win)
    win.show()
    unlock(win, "admin")
    assert win.session is not None
    return win


@pytest.fixture
def admin(window) -> AdminView:
    page = window.page("admin")
    assert isinstance(page, AdminView)
    return page


def usernames(view: AdminView) -> list[str]:
    table = view.users_tab.table
    return [table.item(row, 0).text() for row in range(table.rowCount())]


def row_of(view: AdminView, username: str) -> list[str]:
    table = view.users_tab.table
    for row in range(table.rowCount()):
        if table.item(row, 0).text() == username:
            return [table.item(row, c).text() for c in range(table.columnCount())]
    raise AssertionError(username)


# ----- users -------------------------------------------------------------------------------------------
def test_users_table(admin):
    assert sorted(usernames(admin)) == ["admin", "drjones", "drsmith", "lead"]
    assert row_of(admin, "drsmith") == ["drsmith", "Dr Alex Smith", "Clinician", "1234567", "Yes"]
    assert row_of(admin, "lead")[2] == "Practice safeguarding lead"


def test_add_user_through_dialog(window, admin, vault_env):
    def fill(dialog):
        child(dialog, QLineEdit, "add_user.username").setText("nurse.kay")
        child(dialog, QLineEdit, "add_user.full_name").setText("Kay O'Brien-Nuñez")
        role = child(dialog, QComboBox, "add_user.role")
        role.setCurrentIndex(role.findData("clinician"))
        child(dialog, QLineEdit, "add_user.password").setText("kay initial pass")
        child(dialog, QLineEdit, "add_user.password_repeat").setText("kay initial pass")
        child(dialog, QPushButton, "add_user.ok").click()

    dialogs.set_next_dialog_handler(fill)
    child(admin, QPushButton, "admin.users.add").click()
    assert row_of(admin, "nurse.kay") == [
        "nurse.kay",
        "Kay O'Brien-Nuñez",
        "Clinician",
        "—",
        "Yes — must change password",  # they choose their own at first sign-in
    ]
    assert admin.users_tab.selected_username() == "nurse.kay"
    assert "can now unlock" in child(admin, QLabel, "admin.users.message").text()
    window.lock()  # one session per vault at a time

    def choose(dialog):  # the new user chooses their own password at first unlock
        child(dialog, QLineEdit, "change_password.new").setText("kay own passphrase")
        child(dialog, QLineEdit, "change_password.repeat").setText("kay own passphrase")
        child(dialog, QPushButton, "change_password.ok").click()

    dialogs.set_next_dialog_handler(choose)
    w = window.unlock_widget
    w.username_edit.setText("nurse.kay")
    w.password_edit.setText("kay initial pass")
    w.unlock_button.click()
    assert window.session is not None and window.session.user.role == "clinician"
    assert not window.session.user.must_change_password


def test_add_user_bad_input_shows_field_messages(admin):
    seen = {}

    def fill(dialog):
        child(dialog, QLineEdit, "add_user.username").setText("Bad Name")
        child(dialog, QLineEdit, "add_user.gmc").setText("12")
        child(dialog, QLineEdit, "add_user.password").setText("short")
        child(dialog, QLineEdit, "add_user.password_repeat").setText("short")
        child(dialog, QPushButton, "add_user.ok").click()
        seen.update(
            {key: dialog.field_error(key) for key in ("username", "name", "gmc", "password")}
        )
        seen["label"] = child(dialog, QLabel, "add_user.username.error").text()
        seen["visible"] = dialog.isVisible()
        # mismatched passwords are reported together with every other problem
        child(dialog, QLineEdit, "add_user.password_repeat").setText("other")
        child(dialog, QPushButton, "add_user.ok").click()
        seen["repeat"] = dialog.field_error("password_repeat")
        seen["together"] = {k: bool(dialog.field_error(k)) for k in ("username", "gmc", "name")}
        seen["summary"] = child(dialog, QLabel, "add_user.error").text()
        # existing username
        child(dialog, QLineEdit, "add_user.username").setText("drsmith")
        child(dialog, QLineEdit, "add_user.full_name").setText("Someone Else")
        child(dialog, QLineEdit, "add_user.gmc").setText("")
        child(dialog, QLineEdit, "add_user.password").setText("long enough pass")
        child(dialog, QLineEdit, "add_user.password_repeat").setText("long enough pass")
        child(dialog, QPushButton, "add_user.ok").click()
        seen["duplicate"] = dialog.field_error("username")
        child(dialog, QPushButton, "add_user.cancel").click()

    dialogs.set_next_dialog_handler(fill)
    child(admin, QPushButton, "admin.users.add").click()
    assert seen["username"].startswith("Username must be 2–32 characters")
    assert seen["label"] == seen["username"]
    assert seen["name"].startswith("Enter the person's full name")
    assert seen["gmc"].startswith("A GMC number is exactly 7 digits")
    assert seen["password"].startswith("Password must be at least 10 characters")
    assert seen["together"] == {"username": True, "gmc": True, "name": True}
    assert seen["summary"].startswith("5 things to fix")
    assert seen["visible"] is True
    assert seen["repeat"].startswith("The two passwords are different")
    assert "already a user called 'drsmith'" in seen["duplicate"]
    assert sorted(usernames(admin)) == ["admin", "drjones", "drsmith", "lead"]
    assert dialogs.last_shown("dialog").answer == 0


def test_disable_user(window, admin, vault_env):
    admin.users_tab.select("drjones")
    dialogs.set_next_answer(True)
    child(admin, QPushButton, "admin.users.disable").click()
    assert row_of(admin, "drjones")[4] == "No (disabled)"
    assert not child(admin, QPushButton, "admin.users.disable").isEnabled()
    assert "drjones" in dialogs.last_shown("question").text
    window.lock()
    with pytest.raises(DisabledUserError):
        vault_env.session("drjones")


def test_disable_cancelled_changes_nothing(admin):
    admin.users_tab.select("drjones")
    dialogs.set_next_answer(False)
    child(admin, QPushButton, "admin.users.disable").click()
    assert row_of(admin, "drjones")[4] == "Yes"


def test_disable_own_account_refused_with_message(admin):
    admin.users_tab.select("admin")
    dialogs.set_next_answer(True)
    child(admin, QPushButton, "admin.users.disable").click()
    assert (
        child(admin, QLabel, "admin.users.message").text() == "You cannot disable your own account."
    )


def test_reset_password_one_time_password_then_unlocks(window, admin, qtbot):
    admin.users_tab.select("drsmith")
    dialogs.set_next_answer(True)
    child(admin, QPushButton, "admin.users.reset_password").click()
    shown = dialogs.last_shown("one_time_password")
    assert shown is not None and shown.text == "drsmith"
    otp = shown.answer
    assert len(otp) == 19 and otp.count("-") == 3
    assert row_of(admin, "drsmith")[4] == "Yes — must change password"
    window.lock()

    def choose(dialog):
        child(dialog, QLineEdit, "change_password.new").setText("smith chosen passphrase")
        child(dialog, QLineEdit, "change_password.repeat").setText("smith chosen passphrase")
        child(dialog, QPushButton, "change_password.ok").click()

    dialogs.set_next_dialog_handler(choose)
    with qtbot.waitSignal(window.unlocked, timeout=5000):
        unlock(window, "drsmith", otp)
    assert window.session.user.username == "drsmith"
    assert window.visible_nav_keys() == ["new_assessment", "my_records"]


def test_one_time_password_dialog_has_copy(qtbot):
    from PySide6.QtGui import QGuiApplication

    from gpshare.ui.dialogs import OneTimePasswordDialog

    dialog = OneTimePasswordDialog("drsmith", "abcd-efgh-jkmn-pqrs")
    qtbot.addWidget(dialog)
    assert child(dialog, QLineEdit, "one_time_password.value").text() == "abcd-efgh-jkmn-pqrs"
    child(dialog, QPushButton, "one_time_password.copy").click()
    assert QGuiApplication.clipboard().text() == "abcd-efgh-jkmn-pqrs"


# ----- backups -----------------------------------------------------------------------------------------
def test_back_up_now_and_restore(window, admin, vault_env, clock, qtbot):
    admin.tabs.setCurrentWidget(admin.backups_tab)
    assert admin.backups_tab.empty_label.isVisible()
    child(admin, QPushButton, "admin.backups.backup_now").click()
    assert len(admin.backups_tab.backups()) == 1
    assert admin.backups_tab.table.rowCount() == 1
    assert "Backup made" in child(admin, QLabel, "admin.backups.message").text()
    clock.advance(60)
    window.session.users.add_user("late.user", "Late User", "clinician", "late user password")
    admin.backups_tab.reload()
    admin.backups_tab.select(0)
    dialogs.set_next_answer(True)  # confirm
    dialogs.set_next_answer(PASSWORDS["admin"])  # password prompt
    with qtbot.waitSignal(window.locked, timeout=10000):
        child(admin, QPushButton, "admin.backups.restore").click()
    assert window.is_locked
    assert "has been restored" in window.unlock_widget.notice_label.text()
    assert window.unlock_widget.error_text() == ""
    unlock(window, "admin")
    assert "late.user" not in usernames(window.page("admin"))


def test_restore_with_wrong_password_keeps_vault(window, admin, clock, qtbot):
    admin.backups_tab.back_up_now()
    clock.advance(60)
    window.session.users.add_user("late.user", "Late User", "clinician", "late user password")
    admin.backups_tab.reload()
    admin.backups_tab.select(0)
    dialogs.set_next_answer(True)
    dialogs.set_next_answer("not the admin password")
    child(admin, QPushButton, "admin.backups.restore").click()
    # The password is checked before anything is closed: the admin stays signed in.
    assert not window.is_locked
    assert "not your current password" in dialogs.last_shown("error").text
    assert "late.user" in [
        u.username for u in window.session.users.list_users()
    ]  # nothing restored


def test_restore_cancelled_at_confirmation(window, admin):
    admin.backups_tab.back_up_now()
    admin.backups_tab.select(0)
    dialogs.set_next_answer(False)
    child(admin, QPushButton, "admin.backups.restore").click()
    assert window.session is not None


# ----- settings ----------------------------------------------------------------------------------------
def test_settings_save(window, admin):
    tab = admin.settings_tab
    admin.tabs.setCurrentWidget(tab)
    assert child(admin, QLineEdit, "admin.settings.practice_ods_code").text() == "B86001"
    child(admin, QLineEdit, "admin.settings.practice_phone").setText("0113 496 0999")
    child(admin, QLineEdit, "admin.settings.auto_lock_minutes").setText("10")
    child(admin, QLineEdit, "admin.settings.practice_name").setText("Canal Street Medical Centre")
    child(admin, QPushButton, "admin.settings.save").click()
    assert child(admin, QLabel, "admin.settings.message").text() == "Settings saved."
    values = window.session.practice.settings()
    assert values["practice_phone"] == "0113 496 0999"
    assert values["auto_lock_minutes"] == "10"
    assert window.auto_lock_after.total_seconds() == 600
    assert window.windowTitle() == "gpshare — Canal Street Medical Centre"
    assert tab.changes() == {}


def test_settings_validation_messages(window, admin):
    admin.tabs.setCurrentWidget(admin.settings_tab)
    child(admin, QLineEdit, "admin.settings.practice_ods_code").setText("??")
    child(admin, QLineEdit, "admin.settings.auto_lock_minutes").setText("0")
    child(admin, QLineEdit, "admin.settings.practice_phone").setText("0113 000 0000")
    child(admin, QPushButton, "admin.settings.save").click()
    tab = admin.settings_tab
    assert (
        tab.field_error("practice_ods_code") == "ODS code is 3–6 letters and digits, e.g. B82005."
    )
    assert (
        tab.field_error("auto_lock_minutes")
        == "Auto-lock after (minutes) must be a whole number from 1 to 60."
    )
    assert child(admin, QLabel, "admin.settings.practice_ods_code.error").isVisible()
    assert tab.field_error("practice_phone") == ""
    assert "Nothing has been saved" in child(admin, QLabel, "admin.settings.message").text()
    assert window.session.practice.settings()["practice_phone"] == "0113 496 0000"  # nothing saved
    child(admin, QPushButton, "admin.settings.revert").click()
    assert child(admin, QLineEdit, "admin.settings.practice_ods_code").text() == "B86001"
    assert tab.field_error("practice_ods_code") == ""


# ----- not for other roles -------------------------------------------------------------------------------
def test_services_refuse_a_non_admin_even_if_the_view_were_built(qtbot, vault_env):
    session = vault_env.session("drsmith")
    try:
        view = AdminView(session)
        qtbot.addWidget(view)
        assert "Not permitted for your role" in child(view, QLabel, "admin.backups.message").text()
        view.tabs.setCurrentWidget(view.settings_tab)
        child(view, QLineEdit, "admin.settings.practice_phone").setText("0000")
        child(view, QPushButton, "admin.settings.save").click()
        assert "Not permitted for your role" in child(view, QLabel, "admin.settings.message").text()
    finally:
        session.close()


def test_admin_imports_a_signing_certificate(window, admin, tmp_path):
    from datetime import UTC, datetime

    from gpshare import signing

    now = datetime(2026, 11, 25, 9, 0, tzinfo=UTC)
    other_ca = signing.create_practice_ca("NHS Example Smartcard CA", now)
    issued = signing.issue_user_certificate(
        other_ca,
        full_name="Dr Alex Smith",
        username="drsmith",
        role="GP",
        gmc_number="1234567",
        practice_name="Canal Street Surgery",
        now=now,
    )
    path = tmp_path / "smith.p12"
    path.write_bytes(signing.export_pkcs12(issued, b"p12-secret", other_ca.cert_pem))
    admin.users_tab.select("drsmith")
    dialogs.set_next_answer(path)
    dialogs.set_next_answer("wrong password")
    child(admin, QPushButton, "admin.users.import_p12").click()
    assert "password is wrong" in admin.users_tab.message.text()
    admin.users_tab.select("drsmith")
    dialogs.set_next_answer(path)
    dialogs.set_next_answer("p12-secret")
    child(admin, QPushButton, "admin.users.import_p12").click()
    shown = dialogs.last_shown("one_time_password")
    assert shown is not None and shown.text == "drsmith"
    assert "imported certificate" in admin.users_tab.message.text()
    admin.users_tab.select("admin")
    assert not child(admin, QPushButton, "admin.users.import_p12").isEnabled()
