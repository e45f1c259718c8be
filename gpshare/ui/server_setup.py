"""The unlock screen's practice-server dialogs (issue #14, DESIGN §10.2): "Connect to a
practice server…" makes a folder on this computer a workstation of an existing practice
(`services.join_server`), and "Create a practice on a server…" creates one on an empty
PostgreSQL database (`services.create_vault_v2` with a `ServerTarget`), then shows the
practice recovery code and the break-glass code once each, typed back as at an upgrade.

They call the same services as `gpshare server join|init`, never the command line, and run
them on a worker thread: connecting to a server and deriving keys must not freeze the window.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from PySide6.QtCore import QObject, Signal
from PySide6.QtWidgets import (
    QCheckBox,
    QDialog,
    QFormLayout,
    QFrame,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QProgressBar,
    QPushButton,
    QScrollArea,
    QVBoxLayout,
    QWidget,
)

from gpshare.clock import Clock
from gpshare.errors import StoreError
from gpshare.ui.upgrade_vault import BREAKGLASS_CUSTODY, CodeTypeBack
from gpshare.ui.widgets import hint, message_label, ok_cancel, set_message

log = logging.getLogger(__name__)

DSN_HINT = (
    "The practice server's address as your IT supplier gave it, for example "
    "host=server.practice.local dbname=gpshare user=ws_reception sslmode=verify-full "
    "sslrootcert=ca.pem. Never put the password in it: it would be saved in this folder in "
    "plain text. The database password comes from this computer's ~/.pgpass file, the "
    "PGPASSWORD setting or a PostgreSQL service file."
)
FOLDER_HINT = (
    "An empty folder on this computer. It holds only the server's address and this "
    "computer's own checks, never records or keys."
)
ENROLMENT_CUSTODY = (
    "<b>ENROLMENT SECRET</b> — put it in the break-glass envelope with the break-glass code. "
    "This computer keeps it; Admin › Practice server › Enrol gives it to each other computer. "
    "No password works on a computer without it, and a copy of the server is useless "
    "without it."
)
SECRET_HINT = (
    "Enrolment secret: 13 groups of 4 letters and digits. It is in enrolment.secret in the "
    "certificate folder, or in the practice's break-glass envelope. Leave it empty to type it "
    "at sign-in instead."
)
RECOVERY_CUSTODY = (
    "<b>PRACTICE RECOVERY CODE</b> — for the practice manager. It is shown only once. It "
    "resets passwords if everyone is locked out; it opens no records."
)
UNEXPECTED = (
    "This stopped because of an unexpected problem; nothing more was done. Check the server "
    "address and try again; if it keeps happening, tell your IT supplier."
)


class _Bridge(QObject):
    # Emitted from the worker thread; Qt queues them to the dialog on the GUI thread.
    finished = Signal(object)
    failed = Signal(object)


class _OffGui:
    """One call at a time on a worker thread; its result or error comes back as a queued
    signal to the GUI thread (`wait` joins it, for tests and closing)."""

    def __init__(self, on_result: Callable[[Any], None], on_error: Callable[[Any], None]) -> None:
        self._bridge = _Bridge()
        self._bridge.finished.connect(on_result)
        self._bridge.failed.connect(on_error)
        self.thread: threading.Thread | None = None
        self.thread_id: int | None = None

    def start(self, name: str, fn: Callable[[], Any]) -> None:
        bridge = self._bridge

        def work() -> None:
            self.thread_id = threading.get_ident()
            try:
                result = fn()
            except Exception as exc:  # noqa: BLE001 - shown to the user as a message
                bridge.failed.emit(exc)
            else:
                bridge.finished.emit(result)

        self.thread = threading.Thread(target=work, name=name, daemon=True)
        self.thread.start()

    def wait(self, timeout: float | None = None) -> None:
        if self.thread is not None:
            self.thread.join(timeout)


def _problem(exc: Exception) -> str:
    if isinstance(exc, StoreError):
        return str(exc)
    log.error("server setup failed: %s", exc.__class__.__name__, exc_info=True)
    return UNEXPECTED


def _password_edit(name: str, accessible: str) -> QLineEdit:
    edit = QLineEdit()
    edit.setObjectName(name)
    edit.setAccessibleName(accessible)
    edit.setEchoMode(QLineEdit.EchoMode.Password)
    return edit


def _edit(name: str, accessible: str, text: str = "", placeholder: str = "") -> QLineEdit:
    edit = QLineEdit(text)
    edit.setObjectName(name)
    edit.setAccessibleName(accessible)
    edit.setPlaceholderText(placeholder)
    return edit


CERTS_HINT = (
    "Certificate folder: on a server that asks each computer for its certificate, the folder "
    "the practice administrator gave you when they enrolled this computer. gpshare copies the "
    "files into this computer's folder."
)


class _ServerDialog(QDialog):
    """The parts both dialogs share: the server address and this computer's folder, an
    error line, a busy bar, and the worker."""

    def __init__(
        self, prefix: str, title: str, folder: Path | None, parent: QWidget | None
    ) -> None:
        super().__init__(parent)
        self.setObjectName(prefix)
        self.setWindowTitle(title)
        self.prefix = prefix
        self.folder: Path | None = None
        self.worker = _OffGui(self._done, self._failed)
        self.dsn_edit = _edit(
            f"{prefix}.dsn", "Practice server address", placeholder="host=… dbname=… user=…"
        )
        self.folder_edit = _edit(
            f"{prefix}.folder", "This computer's folder", str(folder) if folder else ""
        )
        self.browse_button = QPushButton("&Browse…")
        self.browse_button.setAutoDefault(False)
        self.browse_button.clicked.connect(self._browse)
        self.error_label = message_label(f"{prefix}.error")
        self.bar = QProgressBar()
        self.bar.setObjectName(f"{prefix}.progress")
        self.bar.setAccessibleName("Progress")
        self.bar.setRange(0, 0)
        self.bar.hide()
        self.status = QLabel()
        self.status.setObjectName(f"{prefix}.status")
        self.status.setWordWrap(True)
        self.status.hide()
        self.layout_ = QVBoxLayout(self)
        self.setMinimumWidth(640)

    def server_fields(self, form: QFormLayout) -> None:
        """Add the address (with its hint) and the folder to `form`."""
        # The hints go under the form (a word-wrapped row of a QFormLayout can overlap the
        # next one): see add_hints.
        form.addRow("Practice &server", self.dsn_edit)
        row = QHBoxLayout()
        row.addWidget(self.folder_edit, 1)
        row.addWidget(self.browse_button)
        folder_label = QLabel("This computer's &folder")
        folder_label.setBuddy(self.folder_edit)
        form.addRow(folder_label, row)

    def add_hints(self, *extra: str) -> None:
        """The plain-English hints for the address and the folder (and any `extra`)."""
        for text in (DSN_HINT, FOLDER_HINT, *extra):
            self.layout_.addWidget(hint(text))

    def _browse(self) -> None:
        from gpshare.ui import dialogs

        chosen = dialogs.get_existing_directory(
            self, "Choose this computer's folder", self.folder_edit.text()
        )
        if chosen is not None:
            self.folder_edit.setText(str(chosen))

    def error(self, text: str, widget: QWidget | None = None) -> None:
        set_message(self.error_label, text, "error")
        self.adjustSize()  # a long message must not squeeze the fields above it
        if widget is not None:
            widget.setFocus()

    def checked_server(self) -> tuple[str, Path] | None:
        """The typed address and folder, or None after saying which is missing."""
        dsn = self.dsn_edit.text().strip()
        if not dsn:
            self.error(
                "Type the practice server's address (your IT supplier gives it).", self.dsn_edit
            )
            return None
        text = self.folder_edit.text().strip()
        if not text:
            self.error(
                "Choose an empty folder on this computer for the practice.", self.folder_edit
            )
            return None
        return dsn, Path(text).expanduser()

    def run(self, text: str, fn: Callable[[], Any]) -> None:
        """Show `text` with a busy bar and run `fn` on the worker."""
        self.error_label.hide()
        self.status.setText(text)
        self.status.show()
        self.bar.show()
        self._set_inputs_enabled(False)
        self.worker.start(self.prefix, fn)

    def _set_inputs_enabled(self, enabled: bool) -> None:
        children: list[QWidget] = [
            *self.findChildren(QLineEdit),
            *self.findChildren(QPushButton),
            *self.findChildren(QCheckBox),
        ]
        for child in children:
            if not child.objectName().endswith((".code", ".cancel")):
                child.setEnabled(enabled)

    def _failed(self, exc: Exception) -> None:
        self.bar.hide()
        self.status.hide()
        self._set_inputs_enabled(True)
        self.error(_problem(exc))

    def _done(self, result: Any) -> None:  # pragma: no cover - each dialog overrides it
        raise NotImplementedError

    def wait(self, timeout: float | None = None) -> None:
        """Wait for the worker (tests, and closing the dialog)."""
        self.worker.wait(timeout)

    def reject(self) -> None:
        if self.worker.thread is not None and self.worker.thread.is_alive():
            return  # a connection under way finishes (or fails) first; nothing half-done
        super().reject()


class JoinServerDialog(_ServerDialog):
    """Make a folder on this computer a workstation of a practice already on a server; on
    success `folder` and `notice` say where to sign in."""

    def __init__(self, folder: Path | None = None, parent: QWidget | None = None) -> None:
        super().__init__("join_server", "Connect to a practice server", folder, parent)
        self.notice = ""
        intro = QLabel(
            "Use this on each computer of a practice whose records are kept on a practice "
            "server. gpshare checks the server holds a gpshare practice and remembers which "
            "one, so a different or replaced server is noticed later."
        )
        intro.setWordWrap(True)
        self.layout_.addWidget(intro)
        form = QFormLayout()
        self.server_fields(form)
        self.certs_edit = _edit(
            "join_server.certificates",
            "Certificate folder (optional)",
            placeholder="the folder the administrator gave you (client.crt, client.key)",
        )
        form.addRow("&Certificate folder", self.certs_edit)
        self.secret_edit = _edit(
            "join_server.secret",
            "Enrolment secret (optional)",
            placeholder="from enrolment.secret in the certificate folder, or typed",
        )
        form.addRow("&Enrolment secret", self.secret_edit)
        self.layout_.addLayout(form)
        self.add_hints(CERTS_HINT, SECRET_HINT)
        self.layout_.addWidget(self.error_label)
        self.layout_.addWidget(self.status)
        self.layout_.addWidget(self.bar)
        buttons, self.ok_button, cancel = ok_cancel("&Connect", "join_server")
        self.ok_button.clicked.connect(self.submit)
        cancel.clicked.connect(self.reject)
        self.layout_.addWidget(buttons)

    def submit(self) -> None:
        """Check the inputs, then join on the worker."""
        checked = self.checked_server()
        if checked is None:
            return
        dsn, folder = checked
        from gpshare.services.vaults import join_server

        files: dict[str, Any] = {}
        text = self.certs_edit.text().strip()
        if text:
            certs = Path(text).expanduser()
            if not (certs / "client.crt").is_file():
                self.error(
                    f"{certs} holds no client.crt: choose the folder the administrator made "
                    "with Enrol (Admin › Practice server), or leave the field empty.",
                    self.certs_edit,
                )
                return
            # client.key is absent when the key was made on this computer (request-cert).
            files = {
                "client_cert": certs / "client.crt",
                "client_key": certs / "client.key" if (certs / "client.key").is_file() else None,
                "server_ca": certs / "server-ca.crt"
                if (certs / "server-ca.crt").is_file()
                else None,
            }
        secret = self._secret(Path(text).expanduser() if text else None)
        if secret is False:
            return
        files["enrolment_secret"] = secret
        self.folder = folder
        self.run(
            "Connecting to the practice server and checking it…",
            lambda: join_server(folder, dsn, **files),
        )

    def _secret(self, certs: Path | None) -> bytes | None | bool:
        """The enrolment secret typed, else the one in the certificate folder, else None;
        False after saying what is wrong with it."""
        from gpshare.errors import EnrolmentSecretError
        from gpshare.services.vaults import (
            ENROLMENT_SECRET_FILE,
            parse_enrolment_secret,
            read_enrolment_secret_file,
        )

        typed = self.secret_edit.text().strip()
        try:
            if typed:
                return parse_enrolment_secret(typed, "The enrolment secret you typed")
            if certs is not None and (certs / ENROLMENT_SECRET_FILE).is_file():
                return read_enrolment_secret_file(certs / ENROLMENT_SECRET_FILE)
        except EnrolmentSecretError as exc:
            self.error(str(exc), self.secret_edit)
            return False
        return None

    def _done(self, practice: Any) -> None:
        from gpshare.services.vaults import ServerTarget

        self.notice = (
            f"This computer is now a workstation of {practice} on the practice server "
            f"{ServerTarget(self.dsn_edit.text().strip()).name}. Sign in with your own username "
            "and password."
        )
        from gpshare.services.vaults import server_dsn_warning

        warning = server_dsn_warning(self.dsn_edit.text().strip())
        if warning:  # said where it will be read: the unlock screen's notice
            self.notice += f"\n{warning}"
        self.accept()


class CreateServerPracticeDialog(_ServerDialog):
    """Create a practice on an empty server database, this folder its first workstation;
    then the recovery code and the break-glass code, each shown once and typed back."""

    def __init__(
        self, clock: Clock, folder: Path | None = None, parent: QWidget | None = None
    ) -> None:
        super().__init__("create_server", "Create a practice on a server", folder, parent)
        self._clock = clock
        self.admin_username = ""
        self.notice = ""
        self._codes: list[tuple[str, str, str]] = []
        p = self.prefix
        self.form_page = QWidget()
        page = QVBoxLayout(self.form_page)
        page.setContentsMargins(0, 0, 0, 0)
        intro = QLabel(
            "Creates the practice on an <b>empty</b> PostgreSQL database your IT supplier has "
            "made for it. This computer becomes its first workstation. The administrator "
            "manages users and backups; a safeguarding lead reads every record."
        )
        intro.setWordWrap(True)
        page.addWidget(intro)
        form = QFormLayout()
        self.server_fields(form)
        self.role_edit = _edit(f"{p}.role", "Workstation database role", "gpshare_workstation")
        form.addRow("Workstation &role", self.role_edit)
        self.practice_edit = _edit(
            f"{p}.practice", "Practice name", placeholder="e.g. Canal Street Surgery"
        )
        form.addRow("&Practice name", self.practice_edit)
        self.admin_edit = _edit(f"{p}.admin", "Administrator username", placeholder="e.g. admin")
        form.addRow("&Administrator username", self.admin_edit)
        self.admin_name_edit = _edit(f"{p}.admin_name", "Administrator full name")
        form.addRow("Administrator full &name", self.admin_name_edit)
        self.admin_password = _password_edit(f"{p}.admin_password", "Administrator password")
        form.addRow("Administrator pass&word", self.admin_password)
        self.admin_repeat = _password_edit(f"{p}.admin_repeat", "Administrator password again")
        form.addRow("Type it again", self.admin_repeat)
        page.addLayout(form)
        for text in (
            DSN_HINT,
            FOLDER_HINT,
            "Workstation role: the database role every workstation acts as (made if it does "
            "not exist).",
        ):
            page.addWidget(hint(text))
        self.lead_check = QCheckBox(
            "Appoint the first safeguarding &lead now (they type their own password)"
        )
        self.lead_check.setObjectName(f"{p}.with_lead")
        page.addWidget(self.lead_check)
        self.lead_box = QWidget()
        lead_form = QFormLayout(self.lead_box)
        self.lead_edit = _edit(f"{p}.lead", "Safeguarding lead username")
        lead_form.addRow("Lead &username", self.lead_edit)
        self.lead_name_edit = _edit(f"{p}.lead_name", "Safeguarding lead full name")
        lead_form.addRow("Lead full na&me", self.lead_name_edit)
        self.lead_gmc_edit = _edit(
            f"{p}.lead_gmc", "Safeguarding lead GMC number", placeholder="7 digits (optional)"
        )
        lead_form.addRow("Lead &GMC number", self.lead_gmc_edit)
        self.lead_password = _password_edit(f"{p}.lead_password", "Safeguarding lead password")
        lead_form.addRow("Lead passw&ord", self.lead_password)
        self.lead_repeat = _password_edit(f"{p}.lead_repeat", "Safeguarding lead password again")
        lead_form.addRow("Type it again", self.lead_repeat)
        self.lead_box.hide()
        self.lead_check.toggled.connect(self.lead_box.setVisible)
        self.lead_check.toggled.connect(lambda _on: self.adjustSize())
        page.addWidget(self.lead_box)
        page.addWidget(
            hint(
                "Without a lead now, the first one is appointed later with the break-glass "
                "code (Admin › Break glass)."
            )
        )
        # In a scroll area: on a small screen the form scrolls rather than squeezing its rows.
        self.form_scroll = QScrollArea()
        self.form_scroll.setWidgetResizable(True)
        self.form_scroll.setFrameShape(QFrame.Shape.NoFrame)
        self.form_scroll.setWidget(self.form_page)
        self.form_scroll.setMinimumHeight(min(self.form_page.sizeHint().height(), 420))
        self.layout_.addWidget(self.form_scroll, 1)
        # Shown after the practice exists: each code once, typed back before the next.
        self.codes = CodeTypeBack(p)
        self.codes.hide()
        self.layout_.addWidget(self.codes)
        self.layout_.addWidget(self.error_label)
        self.layout_.addWidget(self.status)
        self.layout_.addWidget(self.bar)
        buttons, self.ok_button, self.cancel_button = ok_cancel("C&reate the practice", p)
        self.ok_button.clicked.connect(self.submit)
        self.cancel_button.clicked.connect(self.reject)
        self.continue_button = QPushButton("&Continue")
        self.continue_button.setObjectName(f"{p}.continue")
        self.continue_button.clicked.connect(self.confirm_code)
        self.continue_button.hide()
        self.layout_.addWidget(self.continue_button)
        self.layout_.addWidget(buttons)

    def submit(self) -> None:
        """Check what the dialog itself can (both passwords typed twice alike), then create
        on the worker; every other check is the service's, in its words."""
        checked = self.checked_server()
        if checked is None:
            return
        dsn, folder = checked
        if self.admin_password.text() != self.admin_repeat.text():
            self.admin_repeat.clear()
            self.error(
                "The two administrator passwords are different. Type the same password in both "
                "boxes.",
                self.admin_repeat,
            )
            return
        with_lead = self.lead_check.isChecked()
        if with_lead and self.lead_password.text() != self.lead_repeat.text():
            self.lead_repeat.clear()
            self.error(
                "The two safeguarding lead passwords are different. Type the same password in "
                "both boxes.",
                self.lead_repeat,
            )
            return
        from gpshare.services.vaults import LeadAtInit, ServerTarget, create_vault_v2

        lead = (
            LeadAtInit(
                self.lead_edit.text().strip(),
                self.lead_name_edit.text().strip(),
                self.lead_password.text(),
                self.lead_gmc_edit.text().strip() or None,
            )
            if with_lead
            else None
        )
        admin = self.admin_edit.text().strip()
        practice = self.practice_edit.text()
        target = ServerTarget(dsn, self.role_edit.text().strip() or "gpshare_workstation")
        full_name = self.admin_name_edit.text().strip() or admin
        password, clock = self.admin_password.text(), self._clock
        self.folder, self.admin_username = folder, admin

        def work() -> tuple[str, str, str, str]:
            created = create_vault_v2(
                folder,
                practice_name=practice,
                admin_username=admin,
                admin_full_name=full_name,
                admin_password=password,
                lead=lead,
                clock=clock,
                server=target,
            )
            created.session.close()  # on this thread, whose connection it is
            secret = created.enrolment_secret or ""
            return target.name, created.recovery_code, created.breakglass_code, secret

        self.run("Creating the practice on the server (this takes a few seconds)…", work)

    def _done(self, result: Any) -> None:
        server, recovery, breakglass, secret = result
        for edit in (self.admin_password, self.admin_repeat, self.lead_password, self.lead_repeat):
            edit.clear()
        self.bar.hide()
        self._set_inputs_enabled(True)
        self.form_scroll.hide()
        self.ok_button.hide()
        self.cancel_button.hide()  # the practice exists: the codes must be seen through
        self.notice = (
            f"The practice {self.practice_edit.text().strip()} was created on the practice server "
            f"{server}, with this computer as its first workstation. Sign in as "
            f"{self.admin_username}."
        )
        self._codes = [
            ("break-glass code", BREAKGLASS_CUSTODY, breakglass),
            ("practice recovery code", RECOVERY_CUSTODY, recovery),
        ]
        if secret:  # shown after the break-glass code: the same envelope
            self._codes.insert(0, ("enrolment secret", ENROLMENT_CUSTODY, secret))
        self.codes.show()
        self.continue_button.show()
        self.adjustSize()
        self.continue_button.setDefault(True)
        self._next_code()

    def _next_code(self) -> None:
        name, custody, code = self._codes[-1]
        self.codes.show_code(name, custody, code)
        self.status.setText(f"Write the {name} down, then type it back to confirm.")
        self.status.show()

    def confirm_code(self) -> None:
        """Go on to the next code (or finish) once the typed code matches the one shown."""
        name = self._codes[-1][0]
        if not self.codes.matches():
            self.error(
                f"That is not the {name} shown above; check what you wrote and try again.",
                self.codes.typed,
            )
            return
        self.error_label.hide()
        self._codes.pop()
        if self._codes:
            self._next_code()
            return
        self.codes.forget()
        self.accept()

    def reject(self) -> None:
        if self._codes:
            self.error(
                "The practice has been created: write down and type back each code before "
                "closing, or nobody can recover the practice if the passwords are lost."
            )
            return
        super().reject()


class EnrolmentSecretDialog(_ServerDialog):
    """The unlock screen's "Type the enrolment secret…": give this workstation folder the
    practice's enrolment secret (typed from the break-glass envelope, or the enrolment.secret
    file the administrator's enrolment wrote); checked against the server before it is kept."""

    def __init__(self, folder: Path, parent: QWidget | None = None) -> None:
        super().__init__(
            "enrolment_secret", "Give this computer the enrolment secret", None, parent
        )
        self.target = folder
        self.notice = ""
        intro = QLabel(
            "This practice server needs its <b>enrolment secret</b> on each computer before "
            "any password works there. Type it from the practice's break-glass envelope, or "
            "choose the enrolment.secret file the administrator gave you with this computer's "
            "certificate."
        )
        intro.setWordWrap(True)
        self.layout_.addWidget(intro)
        form = QFormLayout()
        self.secret_edit = _edit(
            "enrolment_secret.typed", "Enrolment secret", placeholder="XXXX-XXXX-… (13 groups)"
        )
        form.addRow("&Enrolment secret", self.secret_edit)
        self.file_button = QPushButton("Use a &file…")
        self.file_button.setObjectName("enrolment_secret.file")
        self.file_button.setAutoDefault(False)
        self.file_button.clicked.connect(self._choose_file)
        form.addRow("", self.file_button)
        self.layout_.addLayout(form)
        self.layout_.addWidget(self.error_label)
        self.layout_.addWidget(self.status)
        self.layout_.addWidget(self.bar)
        buttons, self.ok_button, cancel = ok_cancel("&Keep it on this computer", self.prefix)
        self.ok_button.clicked.connect(self.submit)
        cancel.clicked.connect(self.reject)
        self.layout_.addWidget(buttons)

    def _choose_file(self) -> None:
        from gpshare.errors import EnrolmentSecretError
        from gpshare.services.vaults import format_enrolment_secret, read_enrolment_secret_file
        from gpshare.ui import dialogs

        chosen = dialogs.get_open_file(
            self, "Choose the enrolment secret file", "", "Enrolment secret (*.secret)"
        )
        if chosen is None:
            return
        try:
            secret = read_enrolment_secret_file(chosen)
            self.secret_edit.setText(format_enrolment_secret(secret))
        except EnrolmentSecretError as exc:
            self.error(str(exc), self.secret_edit)

    def submit(self) -> None:
        """Check the form of the secret here, then check it against the server and keep it
        (on the worker)."""
        from gpshare.errors import EnrolmentSecretError
        from gpshare.services.vaults import give_enrolment_secret, parse_enrolment_secret

        typed = self.secret_edit.text().strip()
        if not typed:
            self.error("Type the enrolment secret, or choose its file.", self.secret_edit)
            return
        try:
            secret = parse_enrolment_secret(typed, "The enrolment secret you typed")
        except EnrolmentSecretError as exc:
            self.error(str(exc), self.secret_edit)
            return
        folder = self.target
        self.run(
            "Checking the secret against the practice server…",
            lambda: give_enrolment_secret(folder, secret),
        )

    def _done(self, where: Any) -> None:
        self.secret_edit.clear()
        self.notice = (
            f"The enrolment secret matches the practice server's and is kept in {where}. "
            "Sign in with your username and password."
        )
        self.accept()
