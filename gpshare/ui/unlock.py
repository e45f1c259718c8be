"""The unlock screen: vault folder, username, password, "remember me"; and password changes.

Shown first, before anything heavy is imported: the service layer is imported when the user
presses Unlock. No patient data ever appears here or in the window title.
"""

from __future__ import annotations

import logging
import math
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from PySide6.QtCore import QTimer, Signal
from PySide6.QtWidgets import (
    QCheckBox,
    QDialog,
    QFrame,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QScrollArea,
    QSizePolicy,
    QVBoxLayout,
    QWidget,
)

from gpshare.errors import (
    EnrolmentSecretError,
    KeyringUnavailableError,
    LockedOutError,
    RollbackError,
    StoreError,
)

# This module builds the unlock screen, the first thing painted (DESIGN §8: within 1.5 × a
# bare window). So, before that paint, it names no `Qt` enum (PySide builds the whole `Qt`
# namespace, ~14 ms, the first time it is named: enum values are set by name through Qt's
# property system, see _set_enums) and imports neither gpshare.clock (dataclasses, ~2.5 ms)
# nor the dialogs, widgets and style modules (~8 ms); those are imported where used.
if TYPE_CHECKING:
    from gpshare.clock import Clock
    from gpshare.services import Session

log = logging.getLogger(__name__)

UNEXPECTED = (
    "gpshare could not open the vault because of an unexpected problem. Nothing has been "
    "changed. Try again; if it keeps happening, tell your practice administrator."
)


def _set_enums(widget: QWidget, **values: str) -> None:
    """Set enum and flag properties by their Qt names, e.g. ``alignment="AlignCenter"`` (Qt
    converts the names; no Python enum is made). A name Qt does not know is an error."""
    for name, keys in values.items():
        if not widget.setProperty(name, keys):
            raise ValueError(f"{type(widget).__name__}.{name} cannot be set to {keys!r}")


def _label(text: str, buddy: QWidget) -> QLabel:
    label = QLabel(text)
    label.setBuddy(buddy)
    label.setStyleSheet("font-weight: 600;")
    return label


def _message_label(name: str, role: str) -> QLabel:
    label = QLabel()
    label.setObjectName(name)
    label.setProperty("role", role)
    label.setWordWrap(True)
    _set_enums(label, textFormat="PlainText", textInteractionFlags="TextSelectableByMouse")
    label.hide()
    return label


CARD_TEXT_WIDTH = 396  # the card is 460 px wide with 32 px margins


def _set_wrapped_text(label: QLabel, text: str | None) -> None:
    """Set a word-wrapped message and reserve its full height, so a tight layout never clips it."""
    label.setText(text or "")
    label.setVisible(bool(text))
    label.setMinimumHeight(label.heightForWidth(CARD_TEXT_WIDTH) if text else 0)


def busy_cursor() -> _BusyCursor:
    """`with busy_cursor():` shows the wait cursor around a slow synchronous step (the KDF)."""
    return _BusyCursor()


class _BusyCursor:
    def __enter__(self) -> None:
        from PySide6.QtCore import Qt
        from PySide6.QtGui import QGuiApplication

        QGuiApplication.setOverrideCursor(Qt.CursorShape.WaitCursor)
        QGuiApplication.processEvents()

    def __exit__(self, *exc: object) -> None:
        from PySide6.QtGui import QGuiApplication

        QGuiApplication.restoreOverrideCursor()


class UnlockWidget(QWidget):
    """Vault folder, username and password; emits `unlocked(session)` when a session is open.

    Before emitting, it has already made the user change a one-time password and stored the
    "remember me" secret if asked, so the receiver only has to show the workspace.
    """

    unlocked = Signal(object)  # gpshare.services.Session

    def __init__(
        self,
        clock: Clock | None = None,
        vault_folder: Path | None = None,
        parent: QWidget | None = None,
    ) -> None:
        super().__init__(parent)
        self.setObjectName("unlockScreen")
        self._given_clock = clock
        self._lock_until: datetime | None = None
        self._keyring_ok = False
        self.keyring_probed = False

        # ----- widgets -----
        self.brand = QLabel("gpshare")
        self.brand.setObjectName("brand")
        self.title = QLabel("Unlock the practice vault")
        self.title.setProperty("heading", "h1")
        self.subtitle = QLabel(
            "Child safeguarding — information-sharing decisions and referral letters."
        )
        self.subtitle.setProperty("role", "hint")
        self.subtitle.setWordWrap(True)

        self.notice_label = _message_label("unlock.notice", "info")
        self.error_label = _message_label("unlock.error", "error")
        self.error_label.setAccessibleName("Unlock problem")

        self.username_edit = QLineEdit()
        self.username_edit.setObjectName("unlock.username")
        self.username_edit.setAccessibleName("Username")
        self.username_edit.setPlaceholderText("e.g. j.smith")
        _set_enums(self.username_edit, inputMethodHints="ImhNoAutoUppercase|ImhNoPredictiveText")

        self.password_edit = QLineEdit()
        self.password_edit.setObjectName("unlock.password")
        self.password_edit.setAccessibleName("Password")
        self.password_edit.setEchoMode(QLineEdit.EchoMode.Password)
        _set_enums(
            self.password_edit,
            inputMethodHints="ImhHiddenText|ImhSensitiveData|ImhNoPredictiveText",
        )

        self.remember_check = QCheckBox("&Remember me on this computer")
        self.remember_check.setObjectName("unlock.remember")
        self.remember_check.setToolTip(
            "Store a secret in this computer's keyring so you can unlock without "
            "typing your password. Only on a computer nobody else uses with your login."
        )
        self.remember_check.hide()

        self.unlock_button = QPushButton("Unl&ock")
        self.unlock_button.setObjectName("unlock.submit")
        self.unlock_button.setProperty("variant", "primary")
        self.unlock_button.setDefault(True)
        self.unlock_button.setAutoDefault(True)
        self.unlock_button.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Fixed)

        self.keyring_button = QPushButton("Unlock with remembered &login")
        self.keyring_button.setObjectName("unlock.keyring")
        self.keyring_button.setAutoDefault(False)
        self.keyring_button.hide()
        self.restore_button = QPushButton("Restore a &backup…")
        self.restore_button.setObjectName("unlock.restore")
        self.restore_button.setProperty("variant", "danger")
        self.restore_button.setAutoDefault(False)
        self.restore_button.setToolTip(
            "Administrators: replace a damaged or rolled-back vault with one of its backups"
        )
        self.restore_button.hide()
        self._backups: list[Any] = []
        # Version 1 vaults only: the administrator's upgrade (docs/vault-v2.md §4).
        # A practice server's workstation without its enrolment secret (DESIGN §10.3).
        self.secret_button = QPushButton("Type the &enrolment secret…")
        self.secret_button.setObjectName("unlock.enrolment_secret")
        self.secret_button.setAutoDefault(False)
        self.secret_button.setToolTip(
            "Give this computer the practice server's enrolment secret (from the break-glass "
            "envelope, or the file the administrator gave you)"
        )
        self.secret_button.hide()
        self.upgrade_button = QPushButton("&Upgrade this vault…")
        self.upgrade_button.setObjectName("unlock.upgrade")
        self.upgrade_button.setAutoDefault(False)
        self.upgrade_button.setToolTip(
            "Administrators: upgrade this version-1 vault to version 2 (a backup is taken first)"
        )
        self.upgrade_button.hide()

        self.countdown_label = QLabel()
        self.countdown_label.setObjectName("unlock.countdown")
        self.countdown_label.setProperty("role", "hint")
        self.countdown_label.hide()

        self.folder_edit = QLineEdit(str(vault_folder) if vault_folder else "")
        self.folder_edit.setObjectName("unlock.vault_folder")
        self.folder_edit.setAccessibleName("Vault folder")
        self.browse_button = QPushButton("&Browse…")
        self.browse_button.setObjectName("unlock.browse")
        self.browse_button.setAutoDefault(False)
        # A practice whose records are on a practice server (issue #14): gpshare/ui/server_setup.py.
        self.join_button = QPushButton("Connect to a practice &server…")
        self.join_button.setObjectName("unlock.join_server")
        self.join_button.setAutoDefault(False)
        self.join_button.setToolTip(
            "Make a folder on this computer a workstation of a practice kept on a practice server"
        )
        self.create_server_button = QPushButton("Create a practice on a ser&ver…")
        self.create_server_button.setObjectName("unlock.create_server")
        self.create_server_button.setAutoDefault(False)
        self.create_server_button.setToolTip(
            "Administrators: create a new practice on an empty PostgreSQL database"
        )

        footer = QLabel(
            "OFFICIAL — SENSITIVE  ·  Lock the screen with Ctrl+L whenever you leave your desk."
        )
        footer.setProperty("role", "marking")
        _set_enums(footer, alignment="AlignCenter")

        # ----- layout: a centred card -----
        card = QFrame()
        card.setObjectName("unlockCard")
        card.setFixedWidth(460)
        form = QVBoxLayout(card)
        form.setContentsMargins(32, 26, 32, 28)
        form.setSpacing(6)
        brand_row = QHBoxLayout()
        brand_row.addWidget(self.brand)
        brand_row.addStretch(1)
        form.addLayout(brand_row)
        form.addSpacing(10)
        form.addWidget(self.title)
        form.addWidget(self.subtitle)
        form.addSpacing(10)
        form.addWidget(self.notice_label)
        form.addWidget(self.error_label)
        # The rollback / fork alarm panel (gpshare/ui/notices.py), made on first use.
        self._alarm_slot = QVBoxLayout()
        self._alarm_slot.setContentsMargins(0, 0, 0, 0)
        form.addLayout(self._alarm_slot)
        self.alarm: Any = None
        form.addWidget(_label("&Username", self.username_edit))
        form.addWidget(self.username_edit)
        form.addSpacing(6)
        form.addWidget(_label("&Password", self.password_edit))
        form.addWidget(self.password_edit)
        form.addSpacing(4)
        form.addWidget(self.remember_check)
        form.addSpacing(10)
        form.addWidget(self.unlock_button)
        form.addWidget(self.countdown_label)
        form.addWidget(self.keyring_button)
        form.addWidget(self.restore_button)
        form.addWidget(self.secret_button)
        form.addWidget(self.upgrade_button)
        form.addSpacing(16)
        rule = QFrame()
        rule.setFrameShape(QFrame.Shape.HLine)
        rule.setStyleSheet("color: #D8DDE0;")
        form.addWidget(rule)
        form.addSpacing(4)
        folder_label = _label("Vault &folder", self.folder_edit)
        folder_label.setStyleSheet("font-weight: 600; color: #4C6272;")
        form.addWidget(folder_label)
        folder_row = QHBoxLayout()
        folder_row.addWidget(self.folder_edit, 1)
        folder_row.addWidget(self.browse_button)
        form.addLayout(folder_row)
        server_row = QHBoxLayout()
        server_row.addWidget(self.join_button)
        server_row.addWidget(self.create_server_button)
        form.addLayout(server_row)

        # In a scroll area, so long messages on a small screen never squeeze the card.
        inner = QWidget()
        inner.setObjectName("unlockInner")
        column = QVBoxLayout(inner)
        column.addStretch(2)
        centre = QHBoxLayout()
        centre.addStretch(1)
        centre.addWidget(card)
        centre.addStretch(1)
        column.addLayout(centre)
        column.addSpacing(14)
        column.addWidget(footer)
        column.addStretch(3)
        scroll = QScrollArea()
        scroll.setObjectName("unlockScroll")
        scroll.setWidgetResizable(True)
        scroll.setFrameShape(QFrame.Shape.NoFrame)
        _set_enums(scroll, focusPolicy="NoFocus")
        outer = QVBoxLayout(self)
        outer.setContentsMargins(0, 0, 0, 0)
        outer.addWidget(scroll)
        # Last: setWidget lays the form out, which styles every widget of it; moving a styled
        # widget to another parent styles it again (~1.5 ms each time before the first paint).
        scroll.setWidget(inner)

        for a, b in (
            (self.username_edit, self.password_edit),
            (self.password_edit, self.remember_check),
            (self.remember_check, self.unlock_button),
            (self.unlock_button, self.keyring_button),
            (self.keyring_button, self.folder_edit),
            (self.folder_edit, self.browse_button),
        ):
            QWidget.setTabOrder(a, b)

        # ----- behaviour -----
        self.unlock_button.clicked.connect(self.attempt_unlock)
        self.keyring_button.clicked.connect(self.attempt_keyring_unlock)
        self.restore_button.clicked.connect(self.restore_backup)
        self.upgrade_button.clicked.connect(self.upgrade_vault)
        self.secret_button.clicked.connect(self.give_enrolment_secret)
        self.browse_button.clicked.connect(self._browse)
        self.join_button.clicked.connect(self.join_server)
        self.create_server_button.clicked.connect(self.create_on_server)
        self.username_edit.returnPressed.connect(self._username_entered)
        self.password_edit.returnPressed.connect(self.attempt_unlock)
        self._lockout_timer = QTimer(self)
        self._lockout_timer.setInterval(250)
        self._lockout_timer.timeout.connect(self.update_lockout)
        self._remembered_timer = QTimer(self)
        self._remembered_timer.setSingleShot(True)
        self._remembered_timer.setInterval(300)
        self._remembered_timer.timeout.connect(self.refresh_remembered)
        self.username_edit.textChanged.connect(lambda _t: self._remembered_timer.start())
        self.folder_edit.textChanged.connect(lambda _t: self._remembered_timer.start())
        # The keyring probe imports `keyring` (~0.1 s): after the screen is on show.
        QTimer.singleShot(50, self.refresh_keyring)

    # ----- public API -------------------------------------------------------------------------
    @property
    def _clock(self) -> Clock:
        """The injected clock, else the wall clock (gpshare.clock is imported when first
        needed, after the first paint)."""
        if self._given_clock is None:
            from gpshare.clock import SystemClock

            self._given_clock = SystemClock()
        return self._given_clock

    @property
    def vault_folder(self) -> Path:
        return Path(self.folder_edit.text().strip()).expanduser()

    def set_vault_folder(self, folder: Path) -> None:
        self.folder_edit.setText(str(folder))

    def prepare(self, username: str = "", notice: str | None = None) -> None:
        """Reset for a fresh unlock (after lock, restore or sign-out), pre-filling `username`."""
        self.password_edit.clear()
        if username:
            self.username_edit.setText(username)
        self.show_error(None)
        self.show_notice(notice)
        self.refresh_remembered()
        self.focus_first_empty()

    def first_empty_field(self) -> QLineEdit:
        """The username field, or the password field when a username is filled in."""
        return self.password_edit if self.username_edit.text().strip() else self.username_edit

    def focus_first_empty(self) -> None:
        self.first_empty_field().setFocus()  # the default reason: Qt.FocusReason.OtherFocusReason

    def show_error(self, text: str | None) -> None:
        """Show a plain-English problem (or hide the box with None); it replaces any notice
        and the rollback alarm (a new attempt raises the alarm again if it still holds)."""
        if text:
            self.show_notice(None)
        _set_wrapped_text(self.error_label, text)
        if self.alarm is not None:
            self.alarm.hide()

    def show_alarm(self, text: str) -> None:
        """The rollback / fork alarm: a red panel naming both heads and what to do, in place
        of the error line, so it cannot be taken for a wrong password."""
        from gpshare.ui.notices import RollbackAlarm

        self.show_error(None)
        self.show_notice(None)
        if self.alarm is None:
            self.alarm = RollbackAlarm()
            self._alarm_slot.addWidget(self.alarm)
        self.alarm.show_alarm(text, CARD_TEXT_WIDTH)

    def show_notice(self, text: str | None) -> None:
        """Show a neutral notice (e.g. "gpshare is locked"), or hide it with None."""
        _set_wrapped_text(self.notice_label, text)

    def error_text(self) -> str:
        """The problem on show: the error line, or the rollback alarm's words."""
        if self.alarm is not None and not self.alarm.isHidden():
            return self.alarm.detail.text()
        return self.error_label.text() if not self.error_label.isHidden() else ""

    @property
    def locked_out(self) -> bool:
        return self._lock_until is not None

    # ----- keyring ----------------------------------------------------------------------------
    def refresh_keyring(self) -> None:
        """Show "remember me" only when this computer has a usable, secure keyring."""
        from gpshare.services import check_keyring

        try:
            check_keyring()
        except KeyringUnavailableError:
            self._keyring_ok = False
        except Exception:  # a broken backend must not stop anyone unlocking
            log.warning("keyring probe failed", exc_info=True)
            self._keyring_ok = False
        else:
            self._keyring_ok = True
        self.remember_check.setVisible(self._keyring_ok)
        if not self._keyring_ok:
            self.remember_check.setChecked(False)
        self.keyring_probed = True
        self.refresh_remembered()

    def refresh_remembered(self) -> None:
        """Offer "Unlock with remembered login" when this computer remembers the typed user."""
        self.refresh_upgrade()
        username = self.username_edit.text().strip()
        show = False
        if self._keyring_ok and username and self.folder_edit.text().strip():
            from gpshare.services import has_remembered_login

            try:
                show = has_remembered_login(self.vault_folder, username)
            except (StoreError, OSError):
                show = False
        self.keyring_button.setVisible(show)

    # ----- unlocking ----------------------------------------------------------------------------
    def _username_entered(self) -> None:
        if self.password_edit.text():
            self.attempt_unlock()
        else:
            self.password_edit.setFocus()

    def _browse(self) -> None:
        from gpshare.ui import dialogs

        chosen = dialogs.get_existing_directory(
            self, "Choose the vault folder", self.folder_edit.text()
        )
        if chosen is not None:
            self.folder_edit.setText(str(chosen))

    def _check_inputs(self, need_password: bool) -> tuple[Path, str] | None:
        if self.locked_out:
            return None
        if not self.folder_edit.text().strip():
            self.show_error("Choose the folder that holds your practice's vault (Browse…).")
            self.folder_edit.setFocus()
            return None
        username = self.username_edit.text().strip()
        if not username:
            self.show_error("Type your username.")
            self.username_edit.setFocus()
            return None
        if need_password and not self.password_edit.text():
            self.show_error("Type your password.")
            self.password_edit.setFocus()
            return None
        return self.vault_folder, username

    def attempt_unlock(self) -> None:
        """Unlock with the typed password (runs the deliberate ~0.5 s key derivation)."""
        checked = self._check_inputs(need_password=True)
        if checked is None:
            return
        folder, username = checked
        password = self.password_edit.text()
        self.unlock_button.setEnabled(False)
        try:
            with busy_cursor():
                from gpshare.services import open_session

                session = open_session(folder, username, password, self._clock)
        except Exception as exc:  # noqa: BLE001 - every failure becomes a plain message
            self._failed(exc)
            return
        finally:
            self.unlock_button.setEnabled(not self.locked_out)
        self.password_edit.clear()
        self._finish(
            session,
            password,
            remember=self.remember_check.isVisible() and self.remember_check.isChecked(),
        )

    def attempt_keyring_unlock(self) -> None:
        """Unlock with the secret this computer's keyring remembers for the typed user."""
        checked = self._check_inputs(need_password=False)
        if checked is None:
            return
        folder, username = checked
        try:
            with busy_cursor():
                from gpshare.services import open_session_keyring

                session = open_session_keyring(folder, username, self._clock)
        except Exception as exc:  # noqa: BLE001
            self._failed(exc)
            return
        self.password_edit.clear()
        self._finish(session, None, remember=False)

    def _failed(self, exc: Exception) -> None:
        self.password_edit.clear()
        self._offer_restore(exc)
        self.secret_button.setVisible(
            isinstance(exc, EnrolmentSecretError) and exc.reason in ("missing", "mismatch")
        )
        if isinstance(exc, RollbackError):
            self.show_alarm(str(exc))
        elif isinstance(exc, StoreError):
            self.show_error(str(exc))
        else:
            log.error("unlock failed unexpectedly: %s", exc.__class__.__name__, exc_info=True)
            self.show_error(UNEXPECTED)
        if isinstance(exc, LockedOutError):
            self.start_lockout(exc.retry_after)
        self.password_edit.setFocus()

    def _offer_restore(self, exc: Exception | None) -> None:
        """Show "Restore a backup…" when the failure is one a backup repairs and there is one."""
        self._backups = []
        if exc is not None:
            from gpshare.services import backups_for_failed_unlock

            try:
                self._backups = backups_for_failed_unlock(self.vault_folder, exc)
            except (StoreError, OSError):
                self._backups = []
        self.restore_button.setVisible(bool(self._backups))

    def give_enrolment_secret(self) -> None:
        """ "Type the enrolment secret…": keep the practice's secret on this computer, then
        sign in as usual."""
        from gpshare.ui import dialogs
        from gpshare.ui.server_setup import EnrolmentSecretDialog

        dialog = EnrolmentSecretDialog(self.vault_folder, parent=self)
        accepted = dialogs.exec_dialog(dialog) == QDialog.DialogCode.Accepted
        dialog.wait()
        if accepted:
            self.secret_button.hide()
            self.show_error(None)
            self.show_notice(dialog.notice)
            self.focus_first_empty()

    def refresh_upgrade(self) -> None:
        """Offer "Upgrade this vault…" when the chosen folder holds a version-1 vault."""
        show = False
        if self.folder_edit.text().strip():
            from gpshare.services.migrate_v2 import needs_upgrade

            show = needs_upgrade(self.vault_folder)
        self.upgrade_button.setVisible(show)

    def upgrade_vault(self) -> None:
        """An administrator's upgrade to version 2 (their username and password as typed);
        on success, unlock as usual."""
        from gpshare.ui import dialogs
        from gpshare.ui.upgrade_vault import UpgradeVaultDialog

        checked = self._check_inputs(need_password=True)
        if checked is None:
            return
        folder, username = checked
        dialog = UpgradeVaultDialog(
            folder, username, self.password_edit.text(), self._clock, parent=self
        )
        accepted = dialogs.exec_dialog(dialog) == QDialog.DialogCode.Accepted
        dialog.wait()
        if not accepted:
            return
        self.refresh_upgrade()
        self.show_notice(
            "This vault is now version 2. Give the break-glass envelope to its keeper; each "
            "user's key is made at their next sign-in."
        )
        self.attempt_unlock()

    def join_server(self) -> None:
        """ "Connect to a practice server…": make a folder a workstation, then sign in there."""
        from gpshare.ui import dialogs
        from gpshare.ui.server_setup import JoinServerDialog

        dialog = JoinServerDialog(self._suggested_folder(), parent=self)
        accepted = dialogs.exec_dialog(dialog) == QDialog.DialogCode.Accepted
        dialog.wait()
        if accepted and dialog.folder is not None:
            self._open_new_folder(dialog.folder, "", dialog.notice)

    def create_on_server(self) -> None:
        """ "Create a practice on a server…": then sign in as its administrator."""
        from gpshare.ui import dialogs
        from gpshare.ui.server_setup import CreateServerPracticeDialog

        dialog = CreateServerPracticeDialog(self._clock, self._suggested_folder(), parent=self)
        accepted = dialogs.exec_dialog(dialog) == QDialog.DialogCode.Accepted
        dialog.wait()
        if accepted and dialog.folder is not None:
            self._open_new_folder(dialog.folder, dialog.admin_username, dialog.notice)

    def _suggested_folder(self) -> Path | None:
        # A folder that already holds a vault is not where a new workstation goes.
        text = self.folder_edit.text().strip()
        if not text or (self.vault_folder / "vault.json").exists():
            return None
        return self.vault_folder

    def _open_new_folder(self, folder: Path, username: str, notice: str) -> None:
        self.set_vault_folder(folder)
        self.username_edit.setText(username)
        self.prepare(username, notice)

    def restore_backup(self) -> None:
        """Restore one of the vault's backups (an administrator), then back to unlocking."""
        from gpshare.ui import dialogs
        from gpshare.ui.restore_backup import RestoreBackupDialog

        dialog = RestoreBackupDialog(self.vault_folder, self._backups, self._clock, parent=self)
        if dialogs.exec_dialog(dialog) != QDialog.DialogCode.Accepted:
            return
        self._offer_restore(None)
        self.show_error(None)
        self.prepare(self.username_edit.text().strip(), dialog.restored_notice)

    def _finish(self, session: Session, password: str | None, *, remember: bool) -> None:
        from gpshare.ui import dialogs

        if session.user.must_change_password:
            dialog = ChangePasswordDialog(
                session, current_password=password, forced=True, parent=self
            )
            if dialogs.exec_dialog(dialog) != QDialog.DialogCode.Accepted:
                session.close()
                self.show_error(
                    "You need to choose your own password before you can continue. "
                    "Unlock again with the one-time password when you are ready."
                )
                self.focus_first_empty()
                return
        if remember:
            try:
                session.users.remember_login()
            except StoreError as exc:
                dialogs.warning(self, "Remember me on this computer", str(exc))
        self.show_error(None)
        self.show_notice(None)
        self.remember_check.setChecked(False)
        self.restore_button.hide()
        self.unlocked.emit(session)

    # ----- back-off countdown -----------------------------------------------------------------------
    def start_lockout(self, seconds: float) -> None:
        """Disable Unlock until `seconds` have passed on the injected clock."""
        self._lock_until = self._clock.now() + timedelta(seconds=seconds)
        self.unlock_button.setEnabled(False)
        self.keyring_button.setEnabled(False)
        self.countdown_label.show()
        self.update_lockout()
        self._lockout_timer.start()

    def update_lockout(self) -> None:
        """Timer tick (tests call it after advancing a FixedClock)."""
        if self._lock_until is None:
            return
        remaining = (self._lock_until - self._clock.now()).total_seconds()
        if remaining <= 0:
            self._lock_until = None
            self._lockout_timer.stop()
            self.countdown_label.hide()
            self.unlock_button.setEnabled(True)
            self.keyring_button.setEnabled(True)
            self.show_error(None)
            self.show_notice("You can try again now.")
            self.focus_first_empty()
            return
        wait = math.ceil(remaining)
        self.countdown_label.setText(
            f"You can try again in {wait} second{'s' if wait != 1 else ''}."
        )


class ChangePasswordDialog(QDialog):
    """Change your own password. `forced` after a reset; the current password may be known."""

    def __init__(
        self,
        session: Session,
        current_password: str | None = None,
        *,
        forced: bool = False,
        parent: QWidget | None = None,
    ) -> None:
        super().__init__(parent)
        from gpshare.services import MIN_PASSWORD_LENGTH
        from gpshare.ui.widgets import ok_cancel

        self.setObjectName("change_password")
        self.setWindowTitle("Choose a new password" if forced else "Change password")
        self._session = session
        self._current = current_password

        layout = QVBoxLayout(self)
        layout.setContentsMargins(24, 20, 24, 18)
        layout.setSpacing(6)
        title = QLabel("Choose your own password" if forced else "Change your password")
        title.setProperty("heading", "h2")
        layout.addWidget(title)
        if forced:
            intro = QLabel(
                "You unlocked with a one-time password from your administrator. Choose your own "
                "password now; nobody else will know it."
            )
            intro.setWordWrap(True)
            layout.addWidget(intro)
        rules = QLabel(
            f"At least {MIN_PASSWORD_LENGTH} characters. A short phrase of three or four "
            "words is easy to remember and hard to guess."
        )
        rules.setProperty("role", "hint")
        rules.setWordWrap(True)
        layout.addWidget(rules)
        layout.addSpacing(6)

        self.error_label = _message_label("change_password.error", "error")
        layout.addWidget(self.error_label)

        def field(name: str, label: str, accessible: str) -> QLineEdit:
            edit = QLineEdit()
            edit.setObjectName(name)
            edit.setEchoMode(QLineEdit.EchoMode.Password)
            edit.setAccessibleName(accessible)
            layout.addWidget(_label(label, edit))
            layout.addWidget(edit)
            layout.addSpacing(4)
            return edit

        self.current_edit = QLineEdit(self)
        self.current_edit.hide()
        if current_password is None:
            self.current_edit = field(
                "change_password.current", "&Current password", "Current password"
            )
        self.new_edit = field("change_password.new", "&New password", "New password")
        self.repeat_edit = field(
            "change_password.repeat", "&Type the new password again", "Repeat new password"
        )

        buttons, self.ok_button, cancel = ok_cancel("&Save new password", "change_password")
        layout.addSpacing(8)
        layout.addWidget(buttons)
        self.ok_button.clicked.connect(self.submit)
        cancel.clicked.connect(self.reject)
        self.setMinimumWidth(440)

    def _show_error(self, text: str, widget: QLineEdit | None) -> None:
        from gpshare.ui.style import refresh

        self.error_label.setText(text)
        self.error_label.show()
        for edit in (self.current_edit, self.new_edit, self.repeat_edit):
            edit.setProperty("invalid", edit is widget)
            refresh(edit)
        if widget is not None:
            widget.setFocus()

    def submit(self) -> None:
        """Validate the two entries, then ask the service to change the password."""
        from gpshare.errors import ValidationFailed, WrongPasswordError

        current = self._current if self._current is not None else self.current_edit.text()
        new, repeat = self.new_edit.text(), self.repeat_edit.text()
        if self._current is None and not current:
            self._show_error("Type your current password.", self.current_edit)
            return
        if new != repeat:
            self._show_error(
                "The two new passwords are different. Type the same password in both boxes.",
                self.repeat_edit,
            )
            self.repeat_edit.clear()
            return
        try:
            with busy_cursor():
                self._session.users.change_password(current, new)
        except WrongPasswordError as exc:
            self.current_edit.clear()
            self._show_error(str(exc), self.current_edit)
            return
        except ValidationFailed as exc:
            self._show_error(str(exc), self.new_edit)
            return
        except StoreError as exc:
            self._show_error(str(exc), None)
            return
        # session.users.change_password also renews (or drops) a remembered login.
        self.accept()
