"""Restore a backup from the unlock screen when the vault cannot be opened (pytest-qt)."""

from __future__ import annotations

import pytest
from PySide6.QtWidgets import QLineEdit, QListWidget, QPushButton

from gpshare.ui import dialogs
from gpshare.ui.unlock import UnlockWidget
from tests.conftest import PASSWORDS

pytestmark = pytest.mark.usefixtures("quiet_dialogs")


def _draft(env, given: str) -> None:
    s = env.session("drsmith")
    try:
        s.assessments.start_assessment(
            answers={"child_given_name": given, "child_family_name": "Test"}
        )
    finally:
        s.close()


def _unlock(widget: UnlockWidget, username: str, password: str) -> None:
    widget.username_edit.setText(username)
    widget.password_edit.setText(password)
    widget.unlock_button.click()


@pytest.fixture
def damaged(vault_env):
    """A vault with a backup holding 'Before', a newer 'After', then a truncated records.db."""
    _draft(vault_env, "Before")
    admin = vault_env.session("admin")
    admin.backups.backup_now()
    admin.close()
    vault_env.clock.advance(60)
    _draft(vault_env, "After")
    (vault_env.folder / "records.db").write_bytes(b"")
    for name in ("records.db-wal", "records.db-shm"):
        (vault_env.folder / name).unlink(missing_ok=True)
    return vault_env


def test_restore_a_backup_from_the_unlock_screen(damaged, qtbot):
    widget = UnlockWidget(damaged.clock, damaged.folder)
    qtbot.addWidget(widget)
    widget.show()
    assert widget.restore_button.isHidden()
    _unlock(widget, "drsmith", PASSWORDS["drsmith"])
    assert "restore the latest backup" in widget.error_text()
    assert not widget.restore_button.isHidden()
    seen: dict[str, object] = {}

    def fill(dialog):
        snapshots = dialog.findChild(QListWidget, "restore_backup.snapshots")
        seen["rows"] = [snapshots.item(i).text() for i in range(snapshots.count())]
        ok = dialog.findChild(QPushButton, "restore_backup.ok")
        dialog.findChild(QLineEdit, "restore_backup.username").setText("drsmith")
        dialog.findChild(QLineEdit, "restore_backup.password").setText(PASSWORDS["drsmith"])
        ok.click()  # a clinician may not restore: the dialog says so and stays open
        seen["refused"] = dialog.error_label.text()
        seen["open"] = dialog.result() == 0 and dialog.restored_notice is None
        dialog.findChild(QLineEdit, "restore_backup.username").setText("admin")
        dialog.findChild(QLineEdit, "restore_backup.password").setText(PASSWORDS["admin"])
        ok.click()

    dialogs.set_next_dialog_handler(fill)
    widget.restore_button.click()
    rows = seen["rows"]
    assert isinstance(rows, list) and len(rows) == 1 and " · " in rows[0]
    assert "only an administrator" in str(seen["refused"]) and seen["open"]
    notice = widget.notice_label.text()
    assert "has been restored" in notice and "replaced-" in notice and "kept in" in notice
    assert widget.restore_button.isHidden() and widget.error_text() == ""
    assert list(damaged.folder.glob("replaced-*"))  # the damaged files were kept aside

    with qtbot.waitSignal(widget.unlocked, timeout=5000) as blocker:
        _unlock(widget, "drsmith", PASSWORDS["drsmith"])
    session = blocker.args[0]
    try:
        names = {r.child.given_name for r in session.assessments.list_records()}
    finally:
        session.close()
    assert names == {"Before"}  # the newer record is gone, as the backup predates it


def test_no_restore_offered_for_a_wrong_password_or_without_backups(vault_env, qtbot):
    widget = UnlockWidget(vault_env.clock, vault_env.folder)
    qtbot.addWidget(widget)
    widget.show()
    admin = vault_env.session("admin")
    admin.backups.backup_now()
    admin.close()
    _unlock(widget, "drsmith", "not the right password")
    assert widget.error_text() and widget.restore_button.isHidden()
    (vault_env.folder / "records.db").write_bytes(b"")  # damaged, but a backup exists
    vault_env.clock.advance(120)  # past the back-off
    _unlock(widget, "drsmith", PASSWORDS["drsmith"])
    assert not widget.restore_button.isHidden()
    for snapshot in (vault_env.folder / "backups").iterdir():  # damaged, and no backups
        for f in snapshot.iterdir():
            f.unlink()
        snapshot.rmdir()
    _unlock(widget, "drsmith", PASSWORDS["drsmith"])
    assert widget.error_text() and widget.restore_button.isHidden()
