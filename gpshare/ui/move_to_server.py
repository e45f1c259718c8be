"""Admin › Backups › "Move to a practice server…": the dialog for `gpshare server migrate`
(issue #14) on the vault the administrator has open.

The administrator gives the server's address (a libpq connection string, never a password),
the workstation role and a new, empty folder for this computer. The move runs on a worker
thread (gpshare/ui/worker.py), never on the GUI thread, with a progress bar and Cancel; any
failure or cancel leaves the server's database empty and the vault as it was. Afterwards the
dialog says what to do next: sign out, open the new folder, stop using the old one.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from PySide6.QtCore import Qt
from PySide6.QtWidgets import (
    QDialog,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from gpshare.errors import Cancelled, ServiceError, StoreError
from gpshare.ui import dialogs
from gpshare.ui.server_setup import ENROLMENT_CUSTODY
from gpshare.ui.style import refresh
from gpshare.ui.upgrade_vault import CodeTypeBack
from gpshare.ui.worker import TaskBar, TaskContext

if TYPE_CHECKING:
    from gpshare.services import Session

EXPLANATION = (
    "<b>Move this vault to a practice server</b> (PostgreSQL), so several computers work on "
    "the same records.<ul>"
    "<li>Everything is copied to a new, <b>empty</b> database: users, keys, records, letters "
    "and the whole audit log. Everyone keeps their username and password, and letters "
    "signed before the move still verify.</li>"
    "<li>Before anything is kept, this vault's integrity is checked, and afterwards every "
    "row on the server is checked against it. If anything fails, the server's database is "
    "left empty and nothing here changes.</li>"
    "<li>Children's details and narratives stay encrypted on the server. Give the server "
    "address your IT provider set up, without a password (PGPASSWORD, ~/.pgpass or a service "
    "file supplies it).</li></ul>"
)
DSN_HINT = "host=SERVER dbname=gpshare user=ROLE sslmode=verify-full sslrootcert=CA.pem"
# progress(stage, done, total) of the service, mapped onto one bar of STAGE_STEPS per stage
STAGE_STEPS = 100


def next_steps(moved: Any, old: Path) -> str:
    """What the administrator does after the move (plain text, shown in the dialog)."""
    return (
        f"Done: {moved.practice} is now on the practice server {moved.server} "
        f"({moved.counts['records']} records and {moved.counts['audit']} audit events, "
        "checked row for row).\n\n"
        f"Next: sign out, then on the unlock screen choose the new folder {moved.folder} and "
        "sign in as usual. Other computers join with 'gpshare server join'.\n\n"
        f"The old vault in {old} was not changed. Stop using it: anything saved there does "
        "not reach the server. Keep it unchanged until the server has been backed up and that "
        "backup checked, then archive or securely delete it as the practice's records policy "
        "says."
    )


class MoveToServerDialog(QDialog):
    """The move of the open (embedded, version-2) vault onto an empty practice server."""

    def __init__(self, session: Session, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.session = session
        self.moved: Any = None
        self.setObjectName("move_to_server")
        self.setWindowTitle("Move to a practice server")
        self.setMinimumWidth(560)
        layout = QVBoxLayout(self)
        intro = QLabel(EXPLANATION)
        intro.setWordWrap(True)
        intro.setTextFormat(Qt.TextFormat.RichText)
        layout.addWidget(intro)
        form = QFormLayout()
        self.dsn = QLineEdit()
        self.dsn.setObjectName("move_to_server.dsn")
        self.dsn.setPlaceholderText(DSN_HINT)
        self.dsn.setAccessibleName("Server address")
        form.addRow("&Server address:", self.dsn)
        self.role = QLineEdit("gpshare_workstation")
        self.role.setObjectName("move_to_server.role")
        self.role.setAccessibleName("Workstation role")
        self.role.setToolTip("The database role every workstation acts as (made if missing)")
        form.addRow("Workstation &role:", self.role)
        folder_row = QHBoxLayout()
        old = session.vault.folder
        self.folder = QLineEdit(str(old.with_name(old.name + "-server")))
        self.folder.setObjectName("move_to_server.folder")
        self.folder.setAccessibleName("New folder for this computer")
        self.folder.setToolTip("A new, empty folder: it will hold only the server's address")
        browse = QPushButton("&Browse…")
        browse.setObjectName("move_to_server.browse")
        browse.clicked.connect(self._browse)
        folder_row.addWidget(self.folder, 1)
        folder_row.addWidget(browse)
        label = QLabel("New &folder:")
        label.setBuddy(self.folder)  # a row of two widgets: the label names the field
        form.addRow(label, folder_row)
        layout.addLayout(form)
        self.message = QLabel()
        self.message.setObjectName("move_to_server.message")
        self.message.setWordWrap(True)
        self.message.setTextFormat(Qt.TextFormat.PlainText)
        self.message.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.message.hide()
        layout.addWidget(self.message)
        # After the move: the server's new enrolment secret, shown once and typed back.
        self.codes = CodeTypeBack("move_to_server")
        self.codes.hide()
        self.codes.typed.textChanged.connect(self._typed_back)
        layout.addWidget(self.codes)
        self.task_bar = TaskBar("move_to_server.task", self)
        layout.addWidget(self.task_bar)
        # TaskBar drops a cancelled task's late reports, so the form is given back here; the
        # worker stops at its next step and the server transaction rolls back.
        self.task_bar.cancel_button.clicked.connect(self._cancelled)
        buttons = QHBoxLayout()
        buttons.addStretch(1)
        self.move_button = QPushButton("&Move to server")
        self.move_button.setObjectName("move_to_server.move")
        self.move_button.setProperty("variant", "primary")
        self.move_button.clicked.connect(self.start)
        self.close_button = QPushButton("&Close")
        self.close_button.setObjectName("move_to_server.close")
        self.close_button.clicked.connect(self.reject)
        buttons.addWidget(self.move_button)
        buttons.addWidget(self.close_button)
        layout.addLayout(buttons)

    def _show(self, text: str, role: str) -> None:
        self.message.setProperty("role", role)
        refresh(self.message)
        self.message.setText(text)
        self.message.setVisible(bool(text))

    def _browse(self) -> None:
        chosen = dialogs.get_existing_directory(
            self, "A new, empty folder for this computer", self.session.vault.folder.parent
        )
        if chosen is not None:
            self.folder.setText(str(chosen))

    def start(self) -> None:
        """Check the fields, then run the move on a worker thread."""
        dsn, role, folder = (w.text().strip() for w in (self.dsn, self.role, self.folder))
        missing = [
            name
            for name, value in (("the server address", dsn), ("the workstation role", role),
                                ("the new folder", folder))
            if not value
        ]  # fmt: skip
        if missing:
            self._show(f"Enter {' and '.join(missing)}, then press Move to server.", "error")
            return
        from gpshare.services.move_to_server import STAGES, move_session_to_server

        def work(worker: Session, ctx: TaskContext) -> Any:
            def progress(stage: str, done: int, total: int) -> None:
                if ctx.cancelled():
                    raise Cancelled("Cancelled: nothing was moved.")
                share = done / total if total else 0
                ctx.progress(
                    STAGES.index(stage) * STAGE_STEPS + int(share * STAGE_STEPS),
                    len(STAGES) * STAGE_STEPS,
                )

            return move_session_to_server(
                worker, dsn, Path(folder), workstation_role=role, progress=progress
            )

        self._show("", "hint")
        self._busy(True)
        self.task_bar.start(
            self.session,
            "Checking this vault, copying it to the server and checking every row…",
            work,
            self._done,
            self._failed,
            self._cancelled,
        )

    def _cancelled(self) -> None:
        self._busy(False)
        self._show("Cancelled: nothing was moved.", "hint")

    def _busy(self, busy: bool) -> None:
        for widget in (self.dsn, self.role, self.folder, self.move_button):
            widget.setEnabled(not busy)

    def _done(self, moved: Any) -> None:
        self.moved = moved
        self._busy(False)
        self.move_button.setEnabled(False)
        for widget in (self.dsn, self.role, self.folder):
            widget.setEnabled(False)
        self.close_button.setText("&Close")
        self._show(next_steps(moved, self.session.vault.folder), "success")
        if moved.enrolment_secret:
            self.codes.show_code("enrolment secret", ENROLMENT_CUSTODY, moved.enrolment_secret)
            self.codes.show()
            self.close_button.setEnabled(False)  # until it is typed back

    def _typed_back(self, _text: str) -> None:
        if self.codes.isVisible():
            self.close_button.setEnabled(self.codes.matches())

    def reject(self) -> None:
        if self.codes.isVisible() and not self.codes.matches():
            return  # the secret is shown once: it must be written down first
        self.codes.forget()
        super().reject()

    def _failed(self, exc: Exception) -> None:
        self._busy(False)
        if isinstance(exc, StoreError | ServiceError):
            self._show(str(exc), "error")
            return
        self._show(
            "The move stopped unexpectedly; the server's database was left empty and this "
            "vault was not changed. Try again, and tell your IT support if it happens again.",
            "error",
        )
