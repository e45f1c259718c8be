"""Admin screen: users and roles, backups, practice settings.

Only the navigation for administrators shows it, and every action goes through a service
method that checks the role again; this module decides nothing about who may do what.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QComboBox,
    QDialog,
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QLineEdit,
    QPushButton,
    QScrollArea,
    QTableWidget,
    QTableWidgetItem,
    QTabWidget,
    QVBoxLayout,
    QWidget,
)

from gpshare import practice_settings
from gpshare.errors import StoreError, ValidationFailed
from gpshare.records import ROLE_TITLES, ROLES
from gpshare.services import SETTING_LABELS
from gpshare.ui import dialogs
from gpshare.ui.style import refresh
from gpshare.ui.unlock import busy_cursor
from gpshare.ui.widgets import file_size, ok_cancel, setup_table, uk_time

if TYPE_CHECKING:
    from gpshare.records import User
    from gpshare.services import BackupInfo, RememberedLoginView, Session
    from gpshare.ui.server_admin import PracticeServerTab

log = logging.getLogger(__name__)

SETTING_GROUPS: tuple[tuple[str, tuple[str, ...]], ...] = (
    (
        "Practice details (used on referral letters)",
        (
            "practice_name",
            "practice_address",
            "practice_ods_code",
            "practice_phone",
            "practice_secure_email",
        ),
    ),
    ("Security and backups", ("auto_lock_minutes", "backup_keep")),
    ("Deadlines", ("written_confirmation_hours", "local_closure_days")),
    (
        "Referrals and data protection",
        (
            "default_recipient_name",
            "default_recipient_email",
            "local_authority",
            "appropriate_policy_document",
        ),
    ),
)
SETTING_HINTS = {
    "practice_address": "One line, with commas, e.g. 1 Canal Street, Leeds LS1 1AA",
    "practice_ods_code": "e.g. B86001",
    "practice_secure_email": "An nhs.net or other secure address for safeguarding replies",
    "auto_lock_minutes": "1 to 60. gpshare locks itself after this long without activity.",
    "backup_keep": "1 to 100. Older automatic backups are removed.",
    "written_confirmation_hours": "1 to 168. Time allowed to confirm a phone referral in writing.",
    "local_closure_days": "Days the practice is closed besides bank holidays, e.g. 2026-12-29, 2026-12-30",
    **practice_settings.HINTS,
}


def _message_label(name: str) -> QLabel:
    label = QLabel()
    label.setObjectName(name)
    label.setWordWrap(True)
    label.setTextFormat(Qt.TextFormat.PlainText)
    label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
    label.hide()
    return label


def _show_message(label: QLabel, text: str | None, role: str = "success") -> None:
    label.setProperty("role", role)
    refresh(label)
    label.setText(text or "")
    label.setVisible(bool(text))


def _field_error_label(name: str) -> QLabel:
    label = QLabel()
    label.setObjectName(name)
    label.setProperty("role", "fielderror")
    label.setWordWrap(True)
    label.setTextFormat(Qt.TextFormat.PlainText)
    label.hide()
    return label


def _set_invalid(widget: QWidget, invalid: bool) -> None:
    widget.setProperty("invalid", invalid)
    refresh(widget)


def _button(text: str, name: str, variant: str | None = None) -> QPushButton:
    button = QPushButton(text)
    button.setObjectName(name)
    button.setAutoDefault(False)
    if variant:
        button.setProperty("variant", variant)
    return button


class AdminView(QWidget):
    """Tabs: Users, Backups, Settings."""

    restore_requested = Signal(object, str)  # (snapshot folder Path, admin password)
    # (snapshot, admin password then, LeadPresent or BreakGlassPresent): a backup from before
    # the upgrade (D3)
    undo_upgrade_requested = Signal(object, str, object)
    settings_changed = Signal()
    breakglass_done = Signal()  # a ceremony appointed a lead: the main window's banner shows

    def __init__(self, session: Session, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("page.admin")
        self.setProperty("page", True)
        self.session = session
        layout = QVBoxLayout(self)
        layout.setContentsMargins(28, 22, 28, 20)
        layout.setSpacing(6)
        heading = QLabel("Admin")
        heading.setProperty("heading", "h1")
        layout.addWidget(heading)
        hint = QLabel(
            "Users and roles, backups and practice settings. Every change is recorded in the audit log."
        )
        hint.setProperty("role", "hint")
        hint.setWordWrap(True)
        layout.addWidget(hint)
        # Vault version 2: fewer than two users hold the lead key → ask for a second lead (or,
        # with none, point to the break-glass ceremony).
        notice_row = QHBoxLayout()
        self.lead_notice = _message_label("admin.lead_notice")
        notice_row.addWidget(self.lead_notice, 1)
        self.breakglass_button = _button(
            "Break-&glass: appoint a lead…", "admin.breakglass", "danger"
        )
        self.breakglass_button.setToolTip(
            "With the holder of the break-glass code: appoint a safeguarding lead when no lead can."
        )
        self.breakglass_button.setVisible(session.keys is not None)
        self.breakglass_button.clicked.connect(self.run_breakglass)
        notice_row.addWidget(self.breakglass_button, 0, Qt.AlignmentFlag.AlignTop)
        layout.addLayout(notice_row)
        self.reload_lead_notice()
        layout.addSpacing(8)
        self.tabs = QTabWidget()
        self.tabs.setObjectName("admin.tabs")
        self.tabs.setDocumentMode(False)
        self.users_tab = UsersTab(session)
        self.backups_tab = BackupsTab(session)
        self.settings_tab = SettingsTab(session)
        self.tabs.addTab(self.users_tab, "&Users")
        self.tabs.addTab(self.backups_tab, "&Backups")
        self.tabs.addTab(self.settings_tab, "&Settings")
        self.logins_tab: LoginsTab | None = None
        if session.keys is not None:  # vault version 2 lists remembered logins
            self.logins_tab = LoginsTab(session)
            self.tabs.addTab(self.logins_tab, "Remembered &logins")
        self.server_tab: PracticeServerTab | None = None
        if session.vault.engine == "postgres":  # a practice server (gpshare/ui/server_admin.py)
            from gpshare.ui.server_admin import PracticeServerTab

            self.server_tab = PracticeServerTab(session)
            self.tabs.addTab(self.server_tab, "Practice se&rver")
        layout.addWidget(self.tabs, 1)
        self.backups_tab.restore_requested.connect(self.restore_requested)
        self.backups_tab.undo_upgrade_requested.connect(self.undo_upgrade_requested)
        self.settings_tab.saved.connect(self.settings_changed)

    def reload_lead_notice(self) -> None:
        """Show the last-lead notice when fewer than two users hold the lead key."""
        try:
            cover = self.session.breakglass.lead_cover()
        except StoreError as exc:
            _show_message(self.lead_notice, str(exc), "error")
            return
        _show_message(self.lead_notice, cover.message if cover else None, "error")

    def run_breakglass(self) -> None:
        """The ceremony dialog; afterwards the notice, the users and the banner refresh."""
        from gpshare.ui.breakglass import BreakglassDialog

        dialog = BreakglassDialog(self.session, self)
        dialog.exec()
        if dialog.result_ is not None:
            self.reload_lead_notice()
            self.users_tab.reload()
            self.breakglass_done.emit()


# ----- users ---------------------------------------------------------------------------------------
class UsersTab(QWidget):
    """The user table with Add user…, Disable and Reset password…"""

    COLUMNS = ("Username", "Full name", "Role", "GMC number", "Active")

    def __init__(self, session: Session, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.session = session
        self._users: list[User] = []
        layout = QVBoxLayout(self)
        layout.setContentsMargins(16, 16, 16, 16)
        self.message = _message_label("admin.users.message")
        layout.addWidget(self.message)
        # Vault version 2: a disable leaves a key rotation for the next lead session.
        self.rotation_notice = QLabel()
        self.rotation_notice.setObjectName("admin.users.rotation_pending")
        self.rotation_notice.setProperty("role", "info")
        self.rotation_notice.setWordWrap(True)
        self.rotation_notice.hide()
        layout.addWidget(self.rotation_notice)

        self.table = QTableWidget(0, len(self.COLUMNS))
        self.table.setObjectName("admin.users.table")
        self.table.setAccessibleName("Users")
        self.table.setHorizontalHeaderLabels(list(self.COLUMNS))
        _setup_list_table(self.table, stretch=1)
        layout.addWidget(self.table, 1)

        buttons = QHBoxLayout()
        self.add_button = _button("&Add user…", "admin.users.add", "primary")
        self.reset_button = _button("&Reset password…", "admin.users.reset_password")
        self.reset_button.setToolTip(
            "Give the user a one-time password. Also re-enables a disabled account."
        )
        self.disable_button = _button("&Disable", "admin.users.disable", "danger")
        self.disable_button.setToolTip("Stop this user unlocking gpshare. Their records remain.")
        buttons.addWidget(self.add_button)
        buttons.addWidget(self.reset_button)
        self.import_button = _button("&Import signing certificate…", "admin.users.import_p12")
        self.import_button.setToolTip(
            "Use the user's own certificate (.p12/.pfx) for signing letters. This also gives "
            "them a one-time password, because their signing key is protected by their password."
        )
        buttons.addWidget(self.import_button)
        buttons.addStretch(1)
        buttons.addWidget(self.disable_button)
        layout.addLayout(buttons)

        self.add_button.clicked.connect(self.add_user)
        self.reset_button.clicked.connect(self.reset_password)
        self.import_button.clicked.connect(self.import_certificate)
        self.disable_button.clicked.connect(self.disable_user)
        self.table.itemSelectionChanged.connect(self._update_buttons)
        self.reload()

    def reload(self) -> None:
        """Re-read the users from the service."""
        selected = self.selected_username()
        try:
            self._users = self.session.users.list_users()
        except StoreError as exc:
            _show_message(self.message, str(exc), "error")
            self._users = []
        self.table.setRowCount(len(self._users))
        for row, user in enumerate(self._users):
            values = (
                user.username,
                user.full_name,
                user.role_title,
                user.gmc_number or "—",
                ("Yes — must change password" if user.must_change_password else "Yes")
                if user.active
                else "No (disabled)",
            )
            for column, value in enumerate(values):
                item = QTableWidgetItem(value)
                item.setData(Qt.ItemDataRole.UserRole, user.username)
                self.table.setItem(row, column, item)
        if selected:
            self.select(selected)
        self._update_buttons()
        self._show_rotation_notice()

    def _show_rotation_notice(self) -> None:
        try:
            pending = self.session.directory.rotation_pending()
        except StoreError:
            pending = []
        self.rotation_notice.setText(
            "Key rotation pending — a lead's next sign-in completes it (disabled since the last "
            f"rotation: {', '.join(pending)})."
        )
        self.rotation_notice.setVisible(bool(pending))

    def selected_username(self) -> str | None:
        rows = self.table.selectionModel().selectedRows() if self.table.selectionModel() else []
        if not rows:
            return None
        item = self.table.item(rows[0].row(), 0)
        return str(item.data(Qt.ItemDataRole.UserRole)) if item else None

    def select(self, username: str) -> bool:
        """Select the row of `username` (tests and keyboard users)."""
        for row, user in enumerate(self._users):
            if user.username == username:
                self.table.selectRow(row)
                return True
        return False

    def _selected_user(self) -> User | None:
        name = self.selected_username()
        return next((u for u in self._users if u.username == name), None)

    def _update_buttons(self) -> None:
        user = self._selected_user()
        self.reset_button.setEnabled(user is not None)
        self.import_button.setEnabled(user is not None and user.role in ("clinician", "lead"))
        self.disable_button.setEnabled(user is not None and user.active)

    def add_user(self) -> None:
        dialog = AddUserDialog(self.session, self)
        if (
            dialogs.exec_dialog(dialog) == QDialog.DialogCode.Accepted
            and dialog.created is not None
        ):
            self.reload()
            self.select(dialog.created.username)
            _show_message(
                self.message,
                f"{dialog.created.full_name} ({dialog.created.username}) can now unlock "
                f"gpshare as {dialog.created.role_title.lower()}; they choose their own password "
                "when they first unlock.",
            )

    def disable_user(self) -> None:
        user = self._selected_user()
        if user is None:
            return
        if not dialogs.question(
            self,
            "Disable user",
            f"Disable {user.full_name} ({user.username})? They will no longer be able to "
            "unlock gpshare. Their records and signed letters remain.",
            yes="Disable",
            no="Cancel",
            destructive=True,
        ):
            return
        try:
            self.session.users.disable_user(user.username)
        except ValidationFailed as exc:
            # The last safeguarding lead (vault version 2): say what it means, then ask again.
            if user.role != "lead" or "break-glass" not in str(exc):
                _show_message(self.message, str(exc), "error")
                return
            if not dialogs.question(
                self,
                "Disable the last safeguarding lead?",
                str(exc),
                yes="Disable anyway",
                no="Cancel",
                destructive=True,
            ):
                return
            try:
                self.session.users.disable_user(user.username, force=True)
            except StoreError as again:
                _show_message(self.message, str(again), "error")
                return
        except StoreError as exc:
            _show_message(self.message, str(exc), "error")
            return
        self.reload()
        _show_message(self.message, f"{user.username} has been disabled.")

    def reset_password(self) -> None:
        user = self._selected_user()
        if user is None:
            return
        extra = (
            " A new signing certificate is issued too; letters they signed earlier still verify."
            if user.role in ("clinician", "lead")
            else ""
        )
        if not dialogs.question(
            self,
            "Reset password",
            f"Give {user.full_name} ({user.username}) a one-time password? Their current "
            f"password stops working and they must choose a new one when they next unlock.{extra}",
            yes="Reset password",
            no="Cancel",
        ):
            return
        try:
            with busy_cursor():
                temp = self.session.users.reset_password(user.username)
        except StoreError as exc:
            _show_message(self.message, str(exc), "error")
            return
        self.reload()
        _show_message(
            self.message,
            f"{user.username} has a one-time password and must change it at next unlock.",
        )
        dialogs.show_one_time_password(self, user.username, temp)

    def import_certificate(self) -> None:
        """Import a .p12/.pfx signing certificate for the selected clinician or lead."""
        user = self._selected_user()
        if user is None:
            return
        path = dialogs.get_open_file(
            self,
            f"Signing certificate for {user.full_name}",
            None,
            "Certificate files (*.p12 *.pfx)",
        )
        if path is None:
            return
        password = dialogs.get_password(
            self, "Certificate file password", "Password of the certificate file:"
        )
        if password is None:
            return
        try:
            data = Path(path).read_bytes()
        except OSError as exc:
            _show_message(self.message, f"Cannot read {path}: {exc.strerror}.", "error")
            return
        try:
            with busy_cursor():
                temp = self.session.users.import_pkcs12(user.username, data, password)
        except StoreError as exc:
            _show_message(self.message, str(exc), "error")
            return
        self.reload()
        _show_message(
            self.message,
            f"{user.username} now signs with the imported certificate and must choose a new "
            "password at next unlock.",
        )
        dialogs.show_one_time_password(self, user.username, temp)


class LoginsTab(QWidget):
    """Vault version 2: every remembered login ("Remember me on this computer"), with Revoke;
    a revoked one is refused at its next unlock and that person types their password."""

    COLUMNS = ("Number", "User", "Workstation", "Remembered", "State")

    def __init__(self, session: Session, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.session = session
        self.logins: list[RememberedLoginView] = []
        layout = QVBoxLayout(self)
        layout.setContentsMargins(16, 16, 16, 16)
        self.message = _message_label("admin.logins.message")
        layout.addWidget(self.message)
        self.table = QTableWidget(0, len(self.COLUMNS))
        self.table.setObjectName("admin.logins.table")
        self.table.setAccessibleName("Remembered logins")
        self.table.setHorizontalHeaderLabels(list(self.COLUMNS))
        _setup_list_table(self.table, stretch=2)
        layout.addWidget(self.table, 1)
        buttons = QHBoxLayout()
        buttons.addStretch(1)
        self.revoke_button = _button("&Revoke", "admin.logins.revoke", "danger")
        self.revoke_button.setToolTip(
            "That computer no longer opens gpshare without the person's password."
        )
        buttons.addWidget(self.revoke_button)
        layout.addLayout(buttons)
        self.revoke_button.clicked.connect(self.revoke_selected)
        self.table.itemSelectionChanged.connect(self._update_buttons)
        self.reload()

    def reload(self) -> None:
        """Re-read the remembered logins."""
        try:
            self.logins = self.session.directory.remembered_logins()
        except StoreError as exc:
            _show_message(self.message, str(exc), "error")
            self.logins = []
        self.table.setRowCount(len(self.logins))
        for row, login in enumerate(self.logins):
            values = (
                str(login.id),
                f"{login.full_name} ({login.username})",
                login.workstation,
                _when(login.created),
                f"Revoked {_when(login.revoked)}" if login.revoked else "Active",
            )
            for column, value in enumerate(values):
                self.table.setItem(row, column, QTableWidgetItem(value))
        self._update_buttons()

    def select(self, row: int) -> None:
        """Select a row (tests and keyboard users)."""
        self.table.selectRow(row)

    def _selected(self) -> RememberedLoginView | None:
        rows = self.table.selectionModel().selectedRows() if self.table.selectionModel() else []
        return self.logins[rows[0].row()] if rows else None

    def _update_buttons(self) -> None:
        login = self._selected()
        self.revoke_button.setEnabled(login is not None and login.revoked is None)

    def revoke_selected(self) -> None:
        login = self._selected()
        if login is None:
            return
        try:
            self.session.directory.revoke_login(login.id)
        except StoreError as exc:
            _show_message(self.message, str(exc), "error")
            return
        self.reload()
        _show_message(
            self.message,
            f"Revoked: {login.username} on {login.workstation} must type their password next time.",
        )


def _when(iso: str) -> str:
    """A stored ISO time as UK time for a list (the text itself if it is not one)."""
    from datetime import datetime

    try:
        return uk_time(datetime.fromisoformat(iso)).strftime("%d %b %Y, %H:%M")
    except ValueError:
        return iso


def _setup_list_table(table: QTableWidget, stretch: int) -> None:
    """The shared list-table behaviour, columns sized to their contents, no grid."""
    setup_table(table, stretch=stretch)
    table.setShowGrid(False)
    header = table.horizontalHeader()
    for column in range(table.columnCount()):
        if column != stretch:
            header.setSectionResizeMode(column, QHeaderView.ResizeMode.ResizeToContents)


class AddUserDialog(QDialog):
    """Username, full name, role, GMC number, initial password twice; errors by the fields."""

    FIELD_WIDGETS = ("username", "name", "role", "gmc", "password", "password_repeat")

    def __init__(self, session: Session, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("add_user")
        self.setWindowTitle("Add user")
        self.session = session
        self.created: User | None = None
        layout = QVBoxLayout(self)
        layout.setContentsMargins(24, 20, 24, 18)
        title = QLabel("Add a user")
        title.setProperty("heading", "h2")
        layout.addWidget(title)
        intro = QLabel(
            "Give them the initial password in person; they will choose their own when they first unlock."
        )
        intro.setProperty("role", "hint")
        intro.setWordWrap(True)
        layout.addWidget(intro)
        self.error_label = _message_label("add_user.error")
        self.error_label.setProperty("role", "error")
        layout.addWidget(self.error_label)

        form = QFormLayout()
        form.setLabelAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignTop)
        form.setVerticalSpacing(10)
        form.setHorizontalSpacing(14)
        self.username_edit = QLineEdit()
        self.username_edit.setPlaceholderText("e.g. j.smith")
        self.name_edit = QLineEdit()
        self.name_edit.setPlaceholderText("e.g. Dr Jo Smith")
        self.role_combo = QComboBox()
        for role in ROLES:
            self.role_combo.addItem(ROLE_TITLES[role], role)
        self.gmc_edit = QLineEdit()
        self.gmc_edit.setPlaceholderText("7 digits; leave empty for non-doctors")
        self.password_edit = QLineEdit()
        self.password_edit.setEchoMode(QLineEdit.EchoMode.Password)
        self.repeat_edit = QLineEdit()
        self.repeat_edit.setEchoMode(QLineEdit.EchoMode.Password)
        self._inputs: dict[str, QWidget] = {
            "username": self.username_edit,
            "name": self.name_edit,
            "role": self.role_combo,
            "gmc": self.gmc_edit,
            "password": self.password_edit,
            "password_repeat": self.repeat_edit,
        }
        object_names = {
            "username": "add_user.username",
            "name": "add_user.full_name",
            "role": "add_user.role",
            "gmc": "add_user.gmc",
            "password": "add_user.password",
            "password_repeat": "add_user.password_repeat",
        }
        labels = {
            "username": "&Username",
            "name": "Full &name",
            "role": "&Role",
            "gmc": "&GMC number",
            "password": "Initial &password",
            "password_repeat": "Password &again",
        }
        self._errors: dict[str, QLabel] = {}
        for key, widget in self._inputs.items():
            widget.setObjectName(object_names[key])
            widget.setAccessibleName(labels[key].replace("&", ""))
            error = _field_error_label(f"{object_names[key]}.error")
            self._errors[key] = error
            cell = QWidget()
            cell_layout = QVBoxLayout(cell)
            cell_layout.setContentsMargins(0, 0, 0, 0)
            cell_layout.setSpacing(2)
            cell_layout.addWidget(widget)
            cell_layout.addWidget(error)
            label = QLabel(labels[key])
            label.setBuddy(widget)
            label.setStyleSheet("font-weight: 600; padding-top: 6px;")
            form.addRow(label, cell)
        layout.addLayout(form)

        buttons, self.ok_button, cancel = ok_cancel("&Add user", "add_user")
        layout.addSpacing(8)
        layout.addWidget(buttons)
        self.ok_button.clicked.connect(self.submit)
        cancel.clicked.connect(self.reject)
        self.setMinimumWidth(580)

    def field_error(self, key: str) -> str:
        """The message shown next to a field ('' when none): username, name, role, gmc, password…"""
        label = self._errors[key]
        return label.text() if not label.isHidden() else ""

    def _clear_errors(self) -> None:
        _show_message(self.error_label, None, "error")
        for key, label in self._errors.items():
            label.hide()
            label.clear()
            _set_invalid(self._inputs[key], False)

    def _field(self, key: str, message: str) -> None:
        label = self._errors.get(key)
        if label is None:
            return
        label.setText(message)
        label.show()
        _set_invalid(self._inputs[key], True)

    def _fit(self) -> None:
        """Grow to fit the messages now shown next to the fields."""
        layout = self.layout()
        if layout is not None:
            layout.activate()
        self.resize(
            self.width(),
            max(self.height(), self.heightForWidth(self.width()), self.sizeHint().height()),
        )

    def submit(self) -> None:
        """Ask the service to add the user; show its field messages next to the fields."""
        self._clear_errors()
        # Every problem at once: the service's checks of each field plus the repeated password.
        try:
            problems: list[Any] = self.session.users.new_user_problems(
                self.username_edit.text(),
                self.name_edit.text(),
                str(self.role_combo.currentData()),
                self.password_edit.text(),
                self.gmc_edit.text() or None,
            )
        except StoreError as exc:
            _show_message(self.error_label, str(exc), "error")
            self._fit()
            return
        if self.password_edit.text() != self.repeat_edit.text():
            problems.append(
                {
                    "field": "password_repeat",
                    "message": "The two passwords are different. Type the same password twice.",
                }
            )
            self.repeat_edit.clear()
        if problems:
            self._show_problems(problems, str(problems[0].get("message", "")))
            return
        try:
            with busy_cursor():
                user = self.session.users.add_user(
                    self.username_edit.text(),
                    self.name_edit.text(),
                    str(self.role_combo.currentData()),
                    self.password_edit.text(),
                    self.gmc_edit.text() or None,
                )
        except ValidationFailed as exc:
            self._show_problems(list(exc.errors), str(exc))
            return
        except StoreError as exc:
            _show_message(self.error_label, str(exc), "error")
            self._fit()
            return
        self.created = user
        self.accept()

    def _show_problems(self, problems: list[Any], summary: str) -> None:
        """Each message next to its field, a count above the form, focus on the first field."""
        first: QWidget | None = None
        unplaced = []
        for problem in problems:
            key = str(problem.get("field", "")) if isinstance(problem, dict) else ""
            message = str(problem.get("message", "")) if isinstance(problem, dict) else str(problem)
            if key in self._errors:
                self._field(key, message)
                first = first or self._inputs[key]
            else:
                unplaced.append(message)
        placed = len(problems) - len(unplaced)
        head = (
            f"{placed} thing{'s' if placed != 1 else ''} to fix: see the messages by the fields."
            if placed > 1
            else ""
        )
        text = " ".join(t for t in (head, *unplaced) if t) or ("" if placed else summary)
        if text:
            _show_message(self.error_label, text, "error")
        if first is not None:
            first.setFocus()
        self._fit()


# ----- backups ---------------------------------------------------------------------------------------
class BackupsTab(QWidget):
    """Encrypted snapshots: list, back up now, restore (which closes the vault)."""

    restore_requested = Signal(object, str)
    undo_upgrade_requested = Signal(object, str, object)

    def __init__(self, session: Session, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.session = session
        self._backups: list[BackupInfo] = []
        self._pre_upgrade: set[str] = set()  # snapshot names from before the upgrade
        layout = QVBoxLayout(self)
        layout.setContentsMargins(16, 16, 16, 16)
        intro = QLabel(
            f"Backups are encrypted with the vault key and kept in {session.vault.backup_dir}. gpshare also "
            "backs up automatically whenever it closes. Copy the backups folder to your practice's backup "
            "storage regularly."
        )
        intro.setProperty("role", "hint")
        intro.setWordWrap(True)
        layout.addWidget(intro)
        self.message = _message_label("admin.backups.message")
        layout.addWidget(self.message)
        self.table = QTableWidget(0, 3)
        self.table.setObjectName("admin.backups.table")
        self.table.setAccessibleName("Backups")
        self.table.setHorizontalHeaderLabels(["Taken", "Size", "Folder"])
        _setup_list_table(self.table, stretch=2)
        layout.addWidget(self.table, 1)
        self.empty_label = QLabel(
            "There are no backups yet. Press “Back up now” to make the first one."
        )
        self.empty_label.setProperty("role", "hint")
        layout.addWidget(self.empty_label)
        buttons = QHBoxLayout()
        self.backup_button = _button("Back up &now", "admin.backups.backup_now", "primary")
        self.restore_button = _button("Res&tore selected…", "admin.backups.restore", "danger")
        self.restore_button.setToolTip(
            "Replace the vault with the selected backup. gpshare locks; the current "
            "files are kept aside, not deleted."
        )
        buttons.addWidget(self.backup_button)
        buttons.addStretch(1)
        buttons.addWidget(self.restore_button)
        # Issue #14: an embedded version-2 vault can move onto a practice server.
        self.move_button: QPushButton | None = None
        if session.vault.engine == "sqlcipher" and session.vault.format_version >= 2:
            self.move_button = _button("&Move to a practice server…", "admin.backups.move")
            self.move_button.setToolTip(
                "Copy this vault, checked row for row, onto an empty PostgreSQL database so "
                "several computers share it; this vault is not changed."
            )
            self.move_button.clicked.connect(self.move_to_server)
            buttons.addWidget(self.move_button)
        layout.addLayout(buttons)
        self.backup_button.clicked.connect(self.back_up_now)
        self.restore_button.clicked.connect(self.restore_selected)
        self.table.itemSelectionChanged.connect(self._update_buttons)
        self.reload()

    def reload(self) -> None:
        try:
            self._backups = self.session.backups.list_backups()
        except StoreError as exc:
            _show_message(self.message, str(exc), "error")
            self._backups = []
        from gpshare.services.backups import is_pre_upgrade

        folder = self.session.vault.folder
        self._pre_upgrade = {b.path.name for b in self._backups if is_pre_upgrade(folder, b.path)}
        self.table.setRowCount(len(self._backups))
        for row, info in enumerate(self._backups):
            when = uk_time(info.created)
            before = info.path.name in self._pre_upgrade
            values = (
                when.strftime("%a %d %b %Y, %H:%M:%S"),
                file_size(info.size_bytes),
                f"{info.path.name} (version 1, before the upgrade)" if before else info.path.name,
            )
            for column, value in enumerate(values):
                self.table.setItem(row, column, QTableWidgetItem(value))
        self.empty_label.setVisible(not self._backups)
        self._update_buttons()

    def backups(self) -> list[BackupInfo]:
        return list(self._backups)

    def select(self, index: int) -> None:
        self.table.selectRow(index)

    def _selected(self) -> BackupInfo | None:
        rows = self.table.selectionModel().selectedRows()
        return self._backups[rows[0].row()] if rows and rows[0].row() < len(self._backups) else None

    def _update_buttons(self) -> None:
        self.restore_button.setEnabled(self._selected() is not None)

    def back_up_now(self) -> None:
        try:
            with busy_cursor():
                path = self.session.backups.backup_now()
        except StoreError as exc:
            _show_message(self.message, str(exc), "error")
            return
        self.reload()
        _show_message(self.message, f"Backup made: {path.name}.")

    def move_to_server(self) -> None:
        """The "Move to a practice server…" dialog (gpshare/ui/move_to_server.py)."""
        from gpshare.ui.move_to_server import MoveToServerDialog

        dialogs.exec_dialog(MoveToServerDialog(self.session, self))

    def restore_selected(self) -> None:
        info = self._selected()
        if info is None:
            return
        taken = uk_time(info.created).strftime("%d %b %Y at %H:%M")
        if info.path.name in self._pre_upgrade:
            from gpshare.ui.restore_backup import PreUpgradeRestoreDialog

            dialog = PreUpgradeRestoreDialog(f"on {taken}", self)
            if dialogs.exec_dialog(dialog) and dialog.answer is not None:
                then_password, lead = dialog.answer
                self.undo_upgrade_requested.emit(Path(info.path), then_password, lead)
            return
        if not dialogs.question(
            self,
            "Restore backup",
            f"Replace the vault with the backup taken on {taken}?\n\nEverything recorded after that time will "
            "no longer be in the vault (the current files are kept aside, not deleted). gpshare will lock and "
            "you will need to unlock again.",
            yes="Restore",
            no="Cancel",
            destructive=True,
        ):
            return
        password = dialogs.get_password(
            self, "Restore backup", "Type your administrator password to restore:"
        )
        if not password:
            return
        self.restore_requested.emit(Path(info.path), password)


# ----- settings --------------------------------------------------------------------------------------
class SettingsTab(QWidget):
    """A form of the practice settings; Save validates each value in the service."""

    saved = Signal()

    def __init__(self, session: Session, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.session = session
        self._loaded: dict[str, str] = {}
        outer = QVBoxLayout(self)
        outer.setContentsMargins(0, 0, 0, 0)
        scroll = QScrollArea()
        scroll.setWidgetResizable(True)
        scroll.setFrameShape(QScrollArea.Shape.NoFrame)
        scroll.setFocusPolicy(Qt.FocusPolicy.NoFocus)
        body = QWidget()
        body.setProperty("page", True)
        layout = QVBoxLayout(body)
        layout.setContentsMargins(16, 16, 16, 16)
        self.message = _message_label("admin.settings.message")
        self._scroll = scroll
        self.fields: dict[str, QLineEdit] = {}
        self._errors: dict[str, QLabel] = {}
        shown = set()
        for title, keys in SETTING_GROUPS:
            group = QGroupBox(title)
            form = QFormLayout(group)
            form.setLabelAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignTop)
            form.setVerticalSpacing(10)
            form.setHorizontalSpacing(14)
            for key in keys:
                if key in SETTING_LABELS:
                    self._add_field(form, key)
                    shown.add(key)
            layout.addWidget(group)
        others = [k for k in SETTING_LABELS if k not in shown]
        if others:  # settings added to the service later still appear
            group = QGroupBox("Other")
            form = QFormLayout(group)
            for key in others:
                self._add_field(form, key)
            layout.addWidget(group)
        layout.addStretch(1)
        scroll.setWidget(body)
        outer.addWidget(scroll, 1)
        message_row = QVBoxLayout()  # outside the scroll area: always in view, like Save
        message_row.setContentsMargins(16, 8, 16, 0)
        message_row.addWidget(self.message)
        outer.addLayout(message_row)
        buttons = QHBoxLayout()
        buttons.setContentsMargins(16, 8, 16, 14)
        self.save_button = _button("&Save settings", "admin.settings.save", "primary")
        self.revert_button = _button("&Undo changes", "admin.settings.revert")
        buttons.addWidget(self.save_button)
        buttons.addWidget(self.revert_button)
        buttons.addStretch(1)
        outer.addLayout(buttons)
        self.save_button.clicked.connect(self.save)
        self.revert_button.clicked.connect(self.reload)
        self.reload()

    def _add_field(self, form: QFormLayout, key: str) -> None:
        label_text = SETTING_LABELS[key]
        edit = QLineEdit()
        edit.setObjectName(f"admin.settings.{key}")
        edit.setAccessibleName(label_text)
        edit.setMaxLength(500)
        if key in SETTING_HINTS:
            edit.setToolTip(SETTING_HINTS[key])
            edit.setAccessibleDescription(SETTING_HINTS[key])
        error = _field_error_label(f"admin.settings.{key}.error")
        cell = QWidget()
        cell_layout = QVBoxLayout(cell)
        cell_layout.setContentsMargins(0, 0, 0, 0)
        cell_layout.setSpacing(2)
        cell_layout.addWidget(edit)
        if key in SETTING_HINTS:
            hint = QLabel(SETTING_HINTS[key])
            hint.setProperty("role", "hint")
            hint.setWordWrap(True)
            cell_layout.addWidget(hint)
        cell_layout.addWidget(error)
        label = QLabel(label_text)
        label.setBuddy(edit)
        label.setStyleSheet("font-weight: 600; padding-top: 6px;")
        label.setFixedWidth(270)
        label.setWordWrap(True)
        label.setAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignTop)
        form.addRow(label, cell)
        self.fields[key] = edit
        self._errors[key] = error

    def reload(self) -> None:
        """Show the stored values (discarding unsaved edits)."""
        try:
            self._loaded = {k: str(v) for k, v in self.session.practice.settings().items()}
        except StoreError as exc:
            _show_message(self.message, str(exc), "error")
            return
        for key, edit in self.fields.items():
            edit.setText(self._loaded.get(key, ""))
        self._clear_errors()

    def field_error(self, key: str) -> str:
        label = self._errors[key]
        return label.text() if not label.isHidden() else ""

    def _clear_errors(self) -> None:
        _show_message(self.message, None)
        for key, label in self._errors.items():
            label.hide()
            label.clear()
            _set_invalid(self.fields[key], False)

    def changes(self) -> dict[str, str]:
        return {
            key: edit.text().strip()
            for key, edit in self.fields.items()
            if edit.text().strip() != self._loaded.get(key, "").strip()
        }

    def save(self) -> None:
        self._clear_errors()
        changes = self.changes()
        if not changes:
            _show_message(self.message, "Nothing to save: no setting has been changed.", "info")
            return
        try:
            self.session.practice.update_settings(changes)
        except ValidationFailed as exc:
            first: QWidget | None = None
            for problem in exc.errors:
                key = str(problem.get("field", "")) if isinstance(problem, dict) else ""
                if key in self._errors:
                    self._errors[key].setText(str(problem.get("message", "")))
                    self._errors[key].show()
                    _set_invalid(self.fields[key], True)
                    first = first or self.fields[key]
            _show_message(
                self.message,
                "Some settings need attention (marked in red). Nothing has been saved.",
                "error",
            )
            if first is not None:
                first.setFocus()
                self._scroll.ensureWidgetVisible(first)
            return
        except StoreError as exc:
            _show_message(self.message, str(exc), "error")
            return
        self.reload()
        _show_message(self.message, "Settings saved.")
        self.saved.emit()
