"""Restore a backup from the unlock screen, when the vault cannot be opened at all.

The unlock screen offers this only when unlocking failed because the vault is rolled back,
damaged, truncated or missing files; the snapshots are read without unlocking and
services.restore() checks the administrator against the snapshot itself.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any

from PySide6.QtWidgets import (
    QDialog,
    QLabel,
    QLineEdit,
    QListWidget,
    QListWidgetItem,
    QVBoxLayout,
    QWidget,
)

from gpshare.clock import Clock
from gpshare.errors import StoreError
from gpshare.ui.widgets import hint, message_label, ok_cancel, set_message

if TYPE_CHECKING:
    from collections.abc import Sequence

log = logging.getLogger(__name__)


def _buddy(text: str, widget: QWidget) -> QLabel:
    label = QLabel(text)
    label.setBuddy(widget)
    return label


def backup_label(info: Any) -> str:
    """'Wed 02 Dec 2026, 19:05:12 · 1.2 MB' for one snapshot (UK time)."""
    from gpshare.ui.widgets import file_size, uk_time

    return (
        f"{uk_time(info.created).strftime('%a %d %b %Y, %H:%M:%S')} · {file_size(info.size_bytes)}"
    )


class RestoreBackupDialog(QDialog):
    """Choose a snapshot (newest first), type an administrator's username and password,
    and restore it; `restored_notice` says what was restored and where the old files are."""

    def __init__(
        self,
        folder: Path,
        backups: Sequence[Any],
        clock: Clock,
        username: str = "",
        parent: QWidget | None = None,
    ) -> None:
        super().__init__(parent)
        self.setObjectName("restore_backup")
        self.setWindowTitle("Restore a backup")
        self.folder = folder
        self.clock = clock
        self.backups = list(backups)
        self.restored_notice: str | None = None

        intro = QLabel(
            "The vault cannot be opened. An administrator can replace it with one of its "
            "backups. Everything recorded after the backup was taken will no longer be in the "
            "vault; the current files are kept aside, not deleted."
        )
        intro.setWordWrap(True)
        self.snapshots = QListWidget()
        self.snapshots.setObjectName("restore_backup.snapshots")
        self.snapshots.setAccessibleName("Backups, newest first")
        for info in self.backups:
            item = QListWidgetItem(backup_label(info))
            item.setToolTip(info.path.name)
            self.snapshots.addItem(item)
        if self.backups:
            self.snapshots.setCurrentRow(0)
        self.username_edit = QLineEdit(username)
        self.username_edit.setObjectName("restore_backup.username")
        self.username_edit.setAccessibleName("Administrator username")
        self.password_edit = QLineEdit()
        self.password_edit.setObjectName("restore_backup.password")
        self.password_edit.setAccessibleName("Administrator password")
        self.password_edit.setEchoMode(QLineEdit.EchoMode.Password)
        self.error_label = message_label("restore_backup.error")
        buttons, self.ok_button, _cancel = ok_cancel("&Restore this backup", "restore_backup")
        self.ok_button.setProperty("variant", "danger")
        buttons.accepted.connect(self.submit)
        buttons.rejected.connect(self.reject)

        layout = QVBoxLayout(self)
        layout.addWidget(intro)
        layout.addWidget(_buddy("&Backup (newest first)", self.snapshots))
        layout.addWidget(self.snapshots)
        layout.addWidget(_buddy("Administrator &username", self.username_edit))
        layout.addWidget(self.username_edit)
        layout.addWidget(_buddy("Administrator &password", self.password_edit))
        layout.addWidget(self.password_edit)
        layout.addWidget(hint("The administrator's password is checked against the backup."))
        layout.addWidget(self.error_label)
        layout.addWidget(buttons)
        self.setMinimumWidth(520)

    def _error(self, text: str, widget: QWidget | None) -> None:
        set_message(self.error_label, text, "error")
        if widget is not None:
            widget.setFocus()

    def submit(self) -> None:
        """Check the inputs, restore, and close with `restored_notice` set (or say why not)."""
        from gpshare.services import restore

        row = self.snapshots.currentRow()
        if not 0 <= row < len(self.backups):
            self._error("Choose the backup to restore.", self.snapshots)
            return
        username = self.username_edit.text().strip()
        if not username:
            self._error("Type an administrator's username.", self.username_edit)
            return
        if not self.password_edit.text():
            self._error("Type the administrator's password.", self.password_edit)
            return
        snapshot = self.backups[row].path
        try:
            aside = restore(self.folder, snapshot, username, self.password_edit.text(), self.clock)
        except StoreError as exc:  # the service's and the store's messages are the user's
            self._error(str(exc), self.password_edit)
            return
        except Exception as exc:  # noqa: BLE001 - every failure becomes a plain message
            log.error("restore failed: %s", exc.__class__.__name__, exc_info=True)
            self._error(
                "The backup could not be restored because of an unexpected problem. The "
                "vault has not been changed. Try again, or use 'gpshare restore'.",
                None,
            )
            return
        finally:
            self.password_edit.clear()
        self.restored_notice = (
            f"The backup taken {backup_label(self.backups[row]).split(' · ')[0]} "
            f"({snapshot.name}) has been restored. The files it replaced are kept in "
            f"{aside}. Unlock to continue."
        )
        self.accept()


class PreUpgradeRestoreDialog(QDialog):
    """Restore a backup taken before the vault was upgraded to version 2 (decision D3): the
    administrator's password from then; who opens the backup's key — a safeguarding lead
    typing their own password or, when no lead can, the holder of the break-glass code
    typing it, with the reason; and a tick that says version 1 comes back and must be
    upgraded again. `answer` is (admin password, LeadPresent or BreakGlassPresent) once
    accepted."""

    def __init__(self, snapshot_label: str, parent: QWidget | None = None) -> None:
        from PySide6.QtWidgets import QButtonGroup, QCheckBox, QRadioButton

        super().__init__(parent)
        self.setObjectName("pre_upgrade_restore")
        self.setWindowTitle("Restore a backup from before the upgrade")
        self.answer: tuple[str, Any] | None = None
        intro = QLabel(
            f"The backup taken {snapshot_label} is from before this vault was upgraded to "
            "version 2. Restoring it puts the version-1 vault back: the upgrade and everything "
            "recorded since are undone (the current files are kept aside, not deleted), every "
            "password then opens every record again, and the vault must be upgraded again "
            "straight away. Only a safeguarding lead's key, or the break-glass code, opens "
            "this backup."
        )
        intro.setWordWrap(True)
        self.password_edit = QLineEdit()
        self.password_edit.setObjectName("pre_upgrade_restore.password")
        self.password_edit.setAccessibleName(
            "Your administrator password when the backup was taken"
        )
        self.password_edit.setEchoMode(QLineEdit.EchoMode.Password)
        self.by_lead = QRadioButton("A safeguarding &lead opens it (they type their password)")
        self.by_lead.setObjectName("pre_upgrade_restore.by_lead")
        self.by_breakglass = QRadioButton(
            "No lead can: the holder of the &break-glass code opens it"
        )
        self.by_breakglass.setObjectName("pre_upgrade_restore.by_breakglass")
        self.by_lead.setChecked(True)
        who = QButtonGroup(self)
        who.addButton(self.by_lead)
        who.addButton(self.by_breakglass)
        self.lead_edit = QLineEdit()
        self.lead_edit.setObjectName("pre_upgrade_restore.lead")
        self.lead_edit.setAccessibleName("Safeguarding lead username")
        self.lead_password_edit = QLineEdit()
        self.lead_password_edit.setObjectName("pre_upgrade_restore.lead_password")
        self.lead_password_edit.setAccessibleName("Safeguarding lead password")
        self.lead_password_edit.setEchoMode(QLineEdit.EchoMode.Password)
        self.code_edit = QLineEdit()
        self.code_edit.setObjectName("pre_upgrade_restore.breakglass_code")
        self.code_edit.setAccessibleName("Break-glass code")
        self.code_edit.setEchoMode(QLineEdit.EchoMode.Password)
        self.reason_edit = QLineEdit()
        self.reason_edit.setObjectName("pre_upgrade_restore.reason")
        self.reason_edit.setAccessibleName("Why no safeguarding lead can open it")
        self.understood = QCheckBox(
            "I understand: version 1 comes back, and the vault must be upgraded again"
        )
        self.understood.setObjectName("pre_upgrade_restore.understood")
        self.error_label = message_label("pre_upgrade_restore.error")
        buttons, self.ok_button, _cancel = ok_cancel(
            "&Restore and undo the upgrade", "pre_upgrade_restore"
        )
        self.ok_button.setProperty("variant", "danger")
        buttons.accepted.connect(self.submit)
        buttons.rejected.connect(self.reject)
        layout = QVBoxLayout(self)
        layout.addWidget(intro)
        layout.addWidget(
            _buddy("Your administrator &password when the backup was taken", self.password_edit)
        )
        layout.addWidget(self.password_edit)
        layout.addWidget(self.by_lead)
        layout.addWidget(self.by_breakglass)
        # Each way's fields sit in the dialog's own layout (a wrapped label nested in a
        # hidden-then-shown container was given too little height), shown for its choice.
        self._lead_widgets: list[QWidget] = [
            _buddy("Safeguarding lead &username", self.lead_edit),
            self.lead_edit,
            _buddy("Lead's pass&word (the lead types it)", self.lead_password_edit),
            self.lead_password_edit,
        ]
        self._breakglass_widgets: list[QWidget] = [
            hint(
                "Use this only when no safeguarding lead can sign in. The code holder (the "
                "Caldicott Guardian or a senior partner) types the code from the sealed "
                "envelope; its use and your reason are recorded in the audit trail."
            ),
            _buddy("Break-glass co&de (the holder types it)", self.code_edit),
            self.code_edit,
            _buddy("Reaso&n (why no lead can open it; recorded)", self.reason_edit),
            self.reason_edit,
        ]
        for widget in (*self._lead_widgets, *self._breakglass_widgets):
            layout.addWidget(widget)
        layout.addWidget(self.understood)
        layout.addWidget(self.error_label)
        layout.addWidget(buttons)
        self.by_lead.toggled.connect(self._show_choice)
        self._show_choice()
        self.setMinimumWidth(560)

    def _show_choice(self) -> None:
        lead = self.by_lead.isChecked()
        for widget in self._lead_widgets:
            widget.setVisible(lead)
        for widget in self._breakglass_widgets:
            widget.setVisible(not lead)
        # A message about the other choice no longer applies.
        self.error_label.setText("")
        self.error_label.hide()
        self._fit()

    def _fit(self) -> None:
        """Grow to what is shown now (the chosen way's fields, a message): the dialog does
        not by itself, and its wrapped texts would be clipped."""
        layout = self.layout()
        if layout is not None and self.isVisible():
            layout.activate()
            needed = layout.totalHeightForWidth(self.width())
            if needed > self.height():
                self.resize(self.width(), needed)

    def submit(self) -> None:
        """Check that every field is filled in and the tick given; accept with `answer`."""
        from gpshare.services.backups import BreakGlassPresent, LeadPresent

        lead = self.by_lead.isChecked()
        checks: list[tuple[bool, str, QWidget]] = [
            (
                bool(self.password_edit.text()),
                "Type your administrator password (the one you had when the backup was taken).",
                self.password_edit,
            ),
        ]
        if lead:
            checks += [
                (
                    bool(self.lead_edit.text().strip()),
                    "Type the safeguarding lead's username: a lead's key opens this backup "
                    "(or choose the break-glass code if no lead can).",
                    self.lead_edit,
                ),
                (
                    bool(self.lead_password_edit.text()),
                    "The safeguarding lead must type their own password.",
                    self.lead_password_edit,
                ),
            ]
        else:
            checks += [
                (
                    bool(self.code_edit.text().strip()),
                    "The holder of the break-glass code must type it (from the sealed envelope).",
                    self.code_edit,
                ),
                (
                    bool(self.reason_edit.text().strip()),
                    "Give the reason for using the break-glass code (why no safeguarding lead "
                    "can open this backup): it is recorded in the audit trail.",
                    self.reason_edit,
                ),
            ]
        checks.append(
            (
                self.understood.isChecked(),
                "Tick the box to confirm that the upgrade is undone and must be done again.",
                self.understood,
            )
        )
        for ok, text, widget in checks:
            if not ok:
                set_message(self.error_label, text, "error")
                self._fit()
                widget.setFocus()
                return
        present: LeadPresent | BreakGlassPresent
        if lead:
            present = LeadPresent(self.lead_edit.text().strip(), self.lead_password_edit.text())
        else:
            present = BreakGlassPresent(self.code_edit.text(), self.reason_edit.text().strip())
        self.answer = (self.password_edit.text(), present)
        for edit in (self.password_edit, self.lead_password_edit, self.code_edit):
            edit.clear()
        self.accept()
