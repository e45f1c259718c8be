"""Vault version 2 on the Admin and Lead screens: the "key rotation pending" notice after a
disable, the warning before disabling the last lead, remembered logins with Revoke, and the
lead's Rotate keys now button (pytest-qt, offscreen)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from PySide6.QtWidgets import QLabel, QPushButton, QWidget

from gpshare.services.rotation import mark_disabled
from gpshare.ui import dialogs
from gpshare.ui.admin_view import AdminView
from gpshare.ui.app import MainWindow
from gpshare.ui.lead.key_confirm import RotationPanel
from tests.conftest import PASSWORDS

pytestmark = pytest.mark.usefixtures("quiet_dialogs")


def child(widget: QWidget, cls: type, name: str):  # type: ignore[no-untyped-def]
    found = widget.findChild(cls, name)
    assert found is not None, name
    return found


def shot(widget: QWidget, name: str) -> None:
    """Save a screenshot when GPSHARE_SHOTS names a folder (for a person to look at)."""
    folder = os.environ.get("GPSHARE_SHOTS")
    if folder:
        Path(folder).mkdir(parents=True, exist_ok=True)
        widget.grab().save(str(Path(folder) / f"{name}.png"))


@pytest.fixture
def window(qtbot, vault_env_v2, clock):
    win = MainWindow(clock=clock, vault_folder=vault_env_v2.folder)
    qtbot.addWidget(win)
    win.resize(1100, 700)
    win.show()
    yield win


def sign_in(window: MainWindow, username: str) -> None:
    w = window.unlock_widget
    w.username_edit.setText(username)
    w.password_edit.setText(PASSWORDS[username])
    w.unlock_button.click()
    assert window.session is not None, username


def test_admin_sees_rotation_pending_until_a_lead_signs_in(window, vault_env_v2, memory_keyring):
    sign_in(window, "admin")
    admin = window.page("admin")
    assert isinstance(admin, AdminView)
    notice = child(admin, QLabel, "admin.users.rotation_pending")
    assert not notice.isVisible()
    admin.users_tab.select("drjones")
    dialogs.set_next_answer(True)
    child(admin, QPushButton, "admin.users.disable").click()
    assert notice.isVisible()
    assert "Key rotation pending — a lead's next sign-in completes it" in notice.text()
    assert "drjones" in notice.text()
    shot(admin, "admin-rotation-pending")
    # The last lead: a warning naming the ceremony; "Cancel" leaves them active.
    admin.users_tab.select("lead")
    dialogs.set_next_answer(True)  # the ordinary "Disable user?" question
    dialogs.set_next_answer(False)  # the last-lead warning: Cancel
    child(admin, QPushButton, "admin.users.disable").click()
    warning = dialogs.last_shown("question")
    assert warning is not None and "break-glass ceremony" in warning.text
    assert window.session is not None
    assert [u.active for u in window.session.users.list_users() if u.username == "lead"] == [True]
    window.lock()
    lead = vault_env_v2.session("lead")  # completes the rotation
    lead.close()
    sign_in(window, "admin")
    admin = window.page("admin")
    assert isinstance(admin, AdminView)
    assert not child(admin, QLabel, "admin.users.rotation_pending").isVisible()


def test_admin_lists_and_revokes_remembered_logins(window, vault_env_v2, memory_keyring):
    smith = vault_env_v2.session("drsmith")
    smith.users.remember_login()
    smith.close()
    sign_in(window, "admin")
    admin = window.page("admin")
    assert isinstance(admin, AdminView) and admin.logins_tab is not None
    tab = admin.logins_tab
    admin.tabs.setCurrentWidget(tab)
    assert tab.table.rowCount() == 1 and tab.table.item(0, 4).text() == "Active"
    tab.select(0)
    revoke = child(tab, QPushButton, "admin.logins.revoke")
    assert revoke.isEnabled()
    revoke.click()
    assert tab.table.item(0, 4).text().startswith("Revoked")
    assert not revoke.isEnabled()
    shot(admin, "admin-remembered-logins")


def test_rotation_panel_shows_the_notice_and_rotates(qtbot, vault_env_v2):
    lead = vault_env_v2.session("lead")  # holds the lead key (typed password)
    try:
        # An administrator on another workstation disables drsmith while the lead is signed in
        # (one vault opens one session at a time here, so the same writes are made directly).
        vault_id, now = lead.vault.vault_id, lead.now_iso()

        def disable(tx):  # type: ignore[no-untyped-def]
            tx.set_user_active("drsmith", False)
            mark_disabled(tx, vault_id, "drsmith", now)

        lead._write("user_disabled", disable, details={"username": "drsmith"}, actor="admin")
        panel = RotationPanel(lead)
        qtbot.addWidget(panel)
        panel.resize(900, 60)
        panel.show()
        panel.reload()
        assert (
            panel.isVisible() and "Key rotation pending: drsmith was disabled" in panel.title.text()
        )
        shot(panel, "lead-rotation-pending")
        panel.button.click()
        assert "Keys rotated: clinical key generation 2" in panel.title.text()
        assert lead.directory.rotation_pending() == []
        assert lead.keys is not None and lead.keys.clinical().generation == 2
    finally:
        lead.close()
