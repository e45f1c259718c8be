"""Upgrade this vault: the administrator's offer, at unlock, to move a version-1 vault to
version 2 (docs/vault-v2.md §4).

The dialog says what happens, runs `services.migrate_v2.migrate_vault` on a worker thread
(never the GUI thread) with a progress bar, and shows the new break-glass code once: it must
be typed back before anything is built, so a code nobody wrote down never locks the vault.
Declining keeps the vault working as version 1.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

from PySide6.QtCore import QObject, Signal
from PySide6.QtWidgets import (
    QDialog,
    QDialogButtonBox,
    QLabel,
    QLineEdit,
    QProgressBar,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from gpshare.clock import Clock
from gpshare.errors import Cancelled, StoreError

EXPLANATION = (
    "<b>This vault is version 1.</b> Version 2 lets the keys themselves enforce who reads "
    "what: a copy of the vault folder no longer shows children's details or narratives to "
    "anyone who only has the practice password or recovery code.<br><br>"
    "What happens:<ul>"
    "<li>A verified, encrypted backup is taken first; every older backup is re-encrypted so "
    "that only a safeguarding lead (or the break-glass code) can restore it.</li>"
    "<li>A new <b>break-glass code</b> is shown once: write it down, seal it in an envelope "
    "for the Caldicott Guardian or a senior partner, and type it back.</li>"
    "<li>Every record is re-sealed; nothing is lost, and if anything fails the vault stays "
    "as it is now.</li>"
    "<li>Afterwards each user's key is made at their next sign-in. A clinician reads their "
    "older records again once a safeguarding lead has confirmed their key (six words).</li>"
    "</ul>Everyone else must be signed out. You can also upgrade later."
)


def _normalised(code: str) -> str:
    return "".join(ch for ch in code.upper() if ch.isalnum())


BREAKGLASS_CUSTODY = (
    "<b>BREAK-GLASS CODE</b> — for the Caldicott Guardian or a senior partner, never the "
    "practice manager alone. Seal it in an envelope. It is shown only once. It appoints "
    "a safeguarding lead when none is left; every use is recorded."
)


class CodeTypeBack(QWidget):
    """A secret shown once (read-only, selectable) and a field to type it back, so a code
    nobody wrote down is never the only way in. Used by the upgrade and by a new practice
    on a server (gpshare/ui/server_setup.py); `prefix` names the fields for tests."""

    def __init__(self, prefix: str, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        self._code = ""
        self.code_label = QLabel()
        self.code_label.setWordWrap(True)
        layout.addWidget(self.code_label)
        self.code_field = QLineEdit()
        self.code_field.setObjectName(f"{prefix}.code")
        self.code_field.setReadOnly(True)
        layout.addWidget(self.code_field)
        self.typed = QLineEdit()
        self.typed.setObjectName(f"{prefix}.typed")
        layout.addWidget(self.typed)

    def show_code(self, name: str, custody: str, code: str) -> None:
        """Show `code` (called `name`, e.g. "break-glass code") under its custody text."""
        self._code = code
        self.code_label.setText(custody)
        self.code_field.setText(code)
        self.code_field.setAccessibleName(name[:1].upper() + name[1:])
        self.typed.clear()
        self.typed.setAccessibleName(f"Type the {name} back")
        self.typed.setPlaceholderText(f"Type the {name} back")
        self.typed.setFocus()

    def matches(self) -> bool:
        """True when the typed code is the one shown (case, spaces and dashes ignored)."""
        return bool(self._code) and _normalised(self.typed.text()) == _normalised(self._code)

    def forget(self) -> None:
        """Clear both fields, so the code is no longer on screen."""
        self._code = ""
        self.code_field.clear()
        self.typed.clear()


class _Bridge(QObject):
    # Emitted from the worker thread; Qt queues them to the dialog in the GUI thread.
    code = Signal(str)
    progress = Signal(str, int, int)
    finished = Signal(object)
    failed = Signal(object)


class UpgradeVaultDialog(QDialog):
    """Explain, confirm the break-glass code, upgrade with progress; accepted when done."""

    def __init__(
        self,
        folder: Path,
        username: str,
        password: str,
        clock: Clock,
        parent: QWidget | None = None,
    ) -> None:
        super().__init__(parent)
        self.setObjectName("upgrade_vault")
        self.setWindowTitle("Upgrade this vault")
        self._folder, self._username, self._password, self._clock = (
            folder,
            username,
            password,
            clock,
        )
        self._confirmed = threading.Event()
        self._abandoned = False
        self._thread: threading.Thread | None = None
        self.result_info: Any = None
        self._bridge = _Bridge()
        self._bridge.code.connect(self._show_code)
        self._bridge.progress.connect(self._progress)
        self._bridge.finished.connect(self._done)
        self._bridge.failed.connect(self._failed)

        layout = QVBoxLayout(self)
        self.explanation = QLabel(EXPLANATION)
        self.explanation.setWordWrap(True)
        layout.addWidget(self.explanation)
        self.code_box = CodeTypeBack("upgrade_vault")
        self.code_box.hide()
        layout.addWidget(self.code_box)
        self.status = QLabel()
        self.status.setObjectName("upgrade_vault.status")
        self.status.setWordWrap(True)
        layout.addWidget(self.status)
        self.bar = QProgressBar()
        self.bar.setAccessibleName("Upgrade progress")
        self.bar.hide()
        layout.addWidget(self.bar)
        self.buttons = QDialogButtonBox()
        self.start_button = QPushButton("&Upgrade now")
        self.start_button.setObjectName("upgrade_vault.start")
        self.confirm_button = QPushButton("&Continue")
        self.confirm_button.setObjectName("upgrade_vault.confirm")
        self.later_button = QPushButton("&Later")
        self.later_button.setObjectName("upgrade_vault.later")
        self.buttons.addButton(self.start_button, QDialogButtonBox.ButtonRole.AcceptRole)
        self.buttons.addButton(self.confirm_button, QDialogButtonBox.ButtonRole.ActionRole)
        self.buttons.addButton(self.later_button, QDialogButtonBox.ButtonRole.RejectRole)
        self.start_button.clicked.connect(self.start)
        self.confirm_button.clicked.connect(self.confirm_code)
        self.later_button.clicked.connect(self._later)
        layout.addWidget(self.buttons)
        self.confirm_button.hide()  # after addButton, which shows it
        self.resize(560, self.sizeHint().height())

    # ----- worker ---------------------------------------------------------------------------
    def start(self) -> None:
        """Start the upgrade on a worker thread."""
        from gpshare.services.migrate_v2 import migrate_vault

        self.start_button.setEnabled(False)
        self.status.setText("Taking and checking a backup…")
        self.bar.show()
        self.bar.setRange(0, 0)
        bridge, confirmed = self._bridge, self._confirmed

        def confirm(code: str) -> None:
            bridge.code.emit(code)
            confirmed.wait()
            if self._abandoned:
                raise Cancelled("The upgrade was cancelled; the vault is unchanged.")

        def work() -> None:
            try:
                done = migrate_vault(
                    self._folder,
                    self._username,
                    self._password,
                    confirm_code=confirm,
                    progress=lambda stage, n, total: bridge.progress.emit(stage, n, total),
                    clock=self._clock,
                )
            except Exception as exc:  # noqa: BLE001 - shown to the administrator as a message
                bridge.failed.emit(exc)
            else:
                bridge.finished.emit(done)

        self._thread = threading.Thread(target=work, name="upgrade-vault", daemon=True)
        self._thread.start()

    def wait(self, timeout: float | None = None) -> None:
        """Wait for the worker (tests, and closing the dialog)."""
        if self._thread is not None:
            self._thread.join(timeout)

    # ----- GUI side ---------------------------------------------------------------------------
    def _show_code(self, code: str) -> None:
        self.bar.hide()
        self.explanation.hide()  # the code has the dialog's attention now
        self.start_button.hide()
        self.code_box.show()
        self.code_box.show_code("break-glass code", BREAKGLASS_CUSTODY, code)
        self.confirm_button.show()
        self.status.setText("Type the code back to confirm you have written it down.")

    def confirm_code(self) -> None:
        """Go on once the typed code matches the one shown."""
        if not self.code_box.matches():
            self.status.setText(
                "That is not the break-glass code shown above; check what you wrote and try again."
            )
            return
        self.code_box.forget()
        self.code_box.hide()
        self.confirm_button.hide()
        self.later_button.setEnabled(False)  # from here the upgrade runs to the end or undoes
        self.bar.show()
        self.status.setText("Re-sealing the records…")
        self._confirmed.set()

    def _progress(self, stage: str, done: int, total: int) -> None:
        words = {
            "backup": "Taking and checking a backup",
            "records": "Re-sealing the records",
            "backups": "Re-encrypting older backups",
            "verify": "Checking every record reads back",
            "swap": "Putting the upgraded vault in place",
        }
        self.status.setText(f"{words.get(stage, stage)}…")
        self.bar.setRange(0, max(total, 1))
        self.bar.setValue(done)

    def _done(self, info: Any) -> None:
        self.result_info = info
        self.accept()

    def _failed(self, exc: Exception) -> None:
        self.bar.hide()
        self.later_button.setEnabled(True)
        self.later_button.setText("&Close")
        message = str(exc) if isinstance(exc, StoreError) else "The upgrade stopped unexpectedly."
        self.status.setText(f"{message} The vault is still version 1 and opens as before.")

    def _later(self) -> None:
        if self._thread is not None and self._thread.is_alive():
            self._abandoned = True
            self._confirmed.set()
            self.wait()
        self.reject()
