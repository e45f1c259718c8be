"""Admin › Practice server (issue #14, DESIGN §10.3): on a server folder only, the
administrator backs the server up to a file, restores it from one (the consequences spelled
out first: a restore epoch, each user told what was lost), enrols or revokes a workstation's
database role (the role and the pg_hba.conf line, and whatever else the service returns) and
verifies the whole practice now.

Each action calls `session.server` or `session.audit_trail` (the same services as
`gpshare server …`) in a worker (gpshare/ui/worker.py) with progress; errors are shown as the
services word them.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any

from PySide6.QtCore import Signal
from PySide6.QtWidgets import (
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QLineEdit,
    QPlainTextEdit,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from gpshare.errors import StoreError
from gpshare.ui import dialogs
from gpshare.ui.widgets import hint, message_label, set_message
from gpshare.ui.worker import TaskBar

if TYPE_CHECKING:
    from gpshare.services import Session

log = logging.getLogger(__name__)

DEFAULT_GROUP_ROLE = "gpshare_workstation"
UNEXPECTED = (
    "This stopped because of an unexpected problem. Nothing more was done; try again, or use "
    "'gpshare server' on the command line and tell your IT supplier what it says."
)
RESTORE_CONSEQUENCES = (
    "Restore the practice server from {name}?\n\n"
    "• The server's database is replaced by the backup. Everything recorded on any computer "
    "after the backup was taken is no longer on the server.\n"
    "• The restore is recorded in the audit log as a new restore (an epoch), with how many "
    "audit events were lost, so no workstation takes it for tampering.\n"
    "• Each user is told once, at their next sign-in, that the server was restored, when, by "
    "whom, and what was lost.\n"
    "• gpshare locks on this computer afterwards; sign in again to carry on.\n\n"
    "Make sure nobody else is using gpshare before you go on."
)


HAS_SECRET = (
    "This practice server has an enrolment secret: no password works on a computer that has "
    "not been given it, and a copy of the server is useless without it. Enrol gives it to a "
    "workstation with its certificate; it is also in the break-glass envelope."
)
NO_SECRET = (
    "This practice server has no enrolment secret yet, so a copy of the server (a stolen "
    "disk, a pg_dump) could be attacked by guessing passwords. Give it one: every computer "
    "then needs the secret before any password works there (re-enrol each workstation, or "
    "type the secret there)."
)


def _problem(exc: Exception) -> str:
    if isinstance(exc, StoreError):
        return str(exc)
    log.error("practice server action failed: %s", exc.__class__.__name__, exc_info=True)
    return UNEXPECTED


def describe(result: dict[str, Any]) -> str:
    """What `server.enrol` returned, one line a key, the pg_hba.conf line last (other keys,
    e.g. a client certificate's files, are shown as they come)."""
    labels = {
        "role": "Database role",
        "server": "Server",
        "serial": "Certificate serial",
        "out": "Certificate files",
        "enrolment_secret": "Enrolment secret (keep it secret)",
        "hba": "Add this line to the server's pg_hba.conf and reload PostgreSQL",
    }
    lines = [
        f"{labels.get(key, key.replace('_', ' ').capitalize())}: {value}"
        for key, value in result.items()
        if key != "hba"
    ]
    if "hba" in result:
        lines += ["", f"{labels['hba']}:", f"  {result['hba']}"]
    return "\n".join(lines)


class PracticeServerTab(QWidget):
    """Back up, restore, enrol / revoke, verify: the practice server's administration."""

    # After a restore the session is stale: the main window locks with this notice.
    restored = Signal(str)

    def __init__(self, session: Session, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("admin.server")
        self.session = session
        from gpshare.services.vaults import ServerTarget

        layout = QVBoxLayout(self)
        layout.setContentsMargins(16, 16, 16, 16)
        layout.addWidget(
            hint(
                f"This practice's records are kept on the practice server "
                f"{ServerTarget(getattr(session.vault, 'dsn', '')).name}. Back it up here (the backup holds only "
                "encrypted, checked rows) and keep the files with the practice's other backups."
            )
        )
        self.tasks = TaskBar("admin.server.task", self)
        layout.addWidget(self.tasks)
        self.message = message_label("admin.server.message")
        layout.addWidget(self.message)

        # Backup and restore: pg_dump / pg_restore, as a role that owns the tables.
        box = QGroupBox("Backup and restore")
        form = QFormLayout(box)
        self.owner_edit = QLineEdit()
        self.owner_edit.setObjectName("admin.server.owner_dsn")
        self.owner_edit.setAccessibleName("Owner connection (optional)")
        self.owner_edit.setPlaceholderText("this computer's connection")
        form.addRow("Owner &connection", self.owner_edit)
        self.bin_edit = QLineEdit()
        self.bin_edit.setObjectName("admin.server.pg_bin")
        self.bin_edit.setAccessibleName("PostgreSQL programs folder (optional)")
        self.bin_edit.setPlaceholderText("found on PATH")
        form.addRow("PostgreSQL &programs", self.bin_edit)
        form.addRow(
            hint(
                "Optional: a connection string for a role that owns the tables (no password "
                "in it: ~/.pgpass, PGPASSWORD or a service file), and the folder holding "
                "pg_dump and pg_restore if they are not on the PATH."
            )
        )
        row = QHBoxLayout()
        self.backup_button = self._button("&Back up to a file…", "backup", "primary")
        self.restore_button = self._button("&Restore from a file…", "restore", "danger")
        row.addWidget(self.backup_button)
        row.addStretch(1)
        row.addWidget(self.restore_button)
        form.addRow(row)
        layout.addWidget(box)

        # Workstations: each its own LOGIN role in the group role.
        box = QGroupBox("Workstations")
        form = QFormLayout(box)
        self.workstation_edit = QLineEdit()
        self.workstation_edit.setObjectName("admin.server.workstation")
        self.workstation_edit.setAccessibleName("Workstation name")
        self.workstation_edit.setPlaceholderText("e.g. reception_1 (letters, digits, _)")
        form.addRow("&Workstation", self.workstation_edit)
        self.group_edit = QLineEdit(DEFAULT_GROUP_ROLE)
        self.group_edit.setObjectName("admin.server.group_role")
        self.group_edit.setAccessibleName("Workstation group role")
        form.addRow("&Group role", self.group_edit)
        self.admin_dsn_edit = QLineEdit()
        self.admin_dsn_edit.setObjectName("admin.server.admin_dsn")
        self.admin_dsn_edit.setAccessibleName("Connection allowed to create roles (optional)")
        self.admin_dsn_edit.setPlaceholderText("this computer's connection")
        form.addRow("Role-making c&onnection", self.admin_dsn_edit)
        row = QHBoxLayout()
        self.enrol_button = self._button("&Enrol", "enrol", "primary")
        self.revoke_button = self._button("Re&voke…", "revoke", "danger")
        row.addWidget(self.enrol_button)
        row.addStretch(1)
        row.addWidget(self.revoke_button)
        form.addRow(row)
        self.enrolment = QPlainTextEdit()
        self.enrolment.setObjectName("admin.server.enrolment")
        self.enrolment.setAccessibleName("What the server needs for this workstation")
        self.enrolment.setReadOnly(True)
        self.enrolment.setMaximumHeight(120)
        self.enrolment.hide()
        form.addRow(self.enrolment)
        layout.addWidget(box)

        # The enrolment secret (DESIGN §10.3): a server made before it adopts one here.
        box = QGroupBox("Enrolment secret")
        inner = QVBoxLayout(box)
        has_secret = session.vault.kdf_mix is not None
        self.secret_hint = hint(HAS_SECRET if has_secret else NO_SECRET)
        inner.addWidget(self.secret_hint)
        self.secret_button = self._button("Give the server an enrolment &secret…", "adopt")
        self.secret_button.setVisible(not has_secret)
        inner.addWidget(self.secret_button)
        self.secret_field = QLineEdit()
        self.secret_field.setObjectName("admin.server.secret")
        self.secret_field.setAccessibleName("The new enrolment secret")
        self.secret_field.setReadOnly(True)
        self.secret_field.hide()
        inner.addWidget(self.secret_field)
        layout.addWidget(box)

        box = QGroupBox("Integrity")
        inner = QVBoxLayout(box)
        inner.addWidget(
            hint(
                "Checks the audit chain, every sealed row against the event that wrote it, and "
                "what each workstation last saw. A safeguarding lead's computer also checks at "
                "sign-in and daily."
            )
        )
        self.verify_button = self._button("&Verify now", "verify")
        inner.addWidget(self.verify_button)
        self.report = QPlainTextEdit()
        self.report.setObjectName("admin.server.report")
        self.report.setAccessibleName("Integrity report")
        self.report.setReadOnly(True)
        self.report.setMaximumHeight(110)
        self.report.hide()
        inner.addWidget(self.report)
        layout.addWidget(box)
        layout.addStretch(1)

        self.backup_button.clicked.connect(self.back_up)
        self.restore_button.clicked.connect(self.restore)
        self.enrol_button.clicked.connect(lambda: self.enrol(revoke=False))
        self.revoke_button.clicked.connect(lambda: self.enrol(revoke=True))
        self.verify_button.clicked.connect(self.verify)
        self.secret_button.clicked.connect(self.adopt_secret)

    @staticmethod
    def _button(text: str, name: str, variant: str | None = None) -> QPushButton:
        button = QPushButton(text)
        button.setObjectName(f"admin.server.{name}")
        if variant:
            button.setProperty("variant", variant)
        return button

    # ----- helpers ------------------------------------------------------------------------------
    def _optional(self, edit: QLineEdit) -> str | None:
        return edit.text().strip() or None

    def _bindir(self) -> Path | None:
        text = self.bin_edit.text().strip()
        return Path(text).expanduser() if text else None

    def _say(self, text: str, role: str = "success") -> None:
        set_message(self.message, text, role)

    def _error(self, exc: Exception) -> None:
        self._say(_problem(exc), "error")

    def _run(self, text: str, fn: Any, on_result: Any) -> None:
        self.message.hide()
        self.tasks.start(self.session, text, fn, on_result, self._error)

    # ----- actions ------------------------------------------------------------------------------
    def back_up(self) -> None:
        """Choose a new file, then pg_dump the server into it (in a worker)."""
        out = dialogs.get_save_file(
            self, "Back up the practice server", "gpshare-server.dump", "Backups (*.dump)"
        )
        if out is None:
            return
        dsn, bindir = self._optional(self.owner_edit), self._bindir()
        self._run(
            "Backing up the practice server…",
            lambda worker, _ctx: worker.server.backup(out, dsn=dsn, bindir=bindir),
            lambda path: self._say(
                f"The practice server was backed up to {path}. It holds only encrypted, "
                "checked rows; keep it with the practice's other backups."
            ),
        )

    def restore(self) -> None:
        """Choose a backup file, spell out what a restore does, then restore (in a worker);
        afterwards `restored` asks the main window to lock."""
        source = dialogs.get_open_file(
            self, "Restore the practice server", "", "Backups (*.dump);;All files (*)"
        )
        if source is None:
            return
        if not dialogs.question(
            self,
            "Restore the practice server",
            RESTORE_CONSEQUENCES.format(name=source.name),
            yes="Restore the server",
            no="Cancel",
            destructive=True,
        ):
            return
        dsn, bindir = self._optional(self.owner_edit), self._bindir()
        self._run(
            "Restoring the practice server (everyone else should be signed out)…",
            lambda worker, _ctx: worker.server.restore(source, dsn=dsn, bindir=bindir),
            lambda d: self._restored(source, d),
        )

    def _restored(self, source: Path, d: dict[str, Any]) -> None:
        text = (
            f"The practice server was restored from {source.name}: its audit log went back from "
            f"event {d['old_head']['seq']} to event {d['restored_head']['seq']} "
            f"({d['events_lost']} events lost), recorded as restore {d['epoch']}. Each user is "
            "told of the loss once at their next sign-in. Sign in again to carry on."
        )
        self._say(text)
        self.restored.emit(text)

    def enrol(self, *, revoke: bool) -> None:
        """Enrol (or, after a confirmation, revoke) the named workstation's database role."""
        name = self.workstation_edit.text().strip()
        if not name:
            self._say("Type the workstation's name (letters, digits and _).", "error")
            self.workstation_edit.setFocus()
            return
        group = self.group_edit.text().strip() or DEFAULT_GROUP_ROLE
        if revoke and not dialogs.question(
            self,
            "Revoke a workstation",
            f"Stop the workstation {name} signing in to the practice server? Its database role "
            "is kept so the audit trail still names it.",
            yes="Revoke",
            no="Cancel",
            destructive=True,
        ):
            return
        out: Path | None = None
        if not revoke:
            # Enrolment issues the workstation's TLS client certificate and key into a folder
            # the administrator carries to that computer (e.g. removable media).
            out = dialogs.get_existing_directory(
                self, f"Choose an empty folder for {name}'s certificate files"
            )
            if out is None:
                return
        dsn = self._optional(self.admin_dsn_edit)
        self._run(
            f"{'Revoking' if revoke else 'Enrolling'} the workstation {name}…",
            lambda worker, _ctx: worker.server.enrol(
                name, group_role=group, revoke=revoke, dsn=dsn, out=out
            ),
            lambda d: self._enrolled(name, revoke, d),
        )

    def _enrolled(self, name: str, revoke: bool, d: dict[str, Any]) -> None:
        if revoke:
            self._say(
                f"Workstation {name} (role {d.get('role')}) can no longer sign in to "
                f"{d.get('server')}. Its role is kept so the audit trail still names it."
            )
            self.enrolment.hide()
            return
        self._say(
            f"Workstation {name} is enrolled. Its certificate files are in {d.get('out')}: "
            "carry them to that computer and connect it with them (Connect to a practice "
            "server…, or 'gpshare server join --client-cert … --client-key …'). Then delete "
            "the copy of client.key"
            + (" and enrolment.secret" if d.get("enrolment_secret") else "")
            + " from the carrying media."
        )
        self.enrolment.setPlainText(describe(d))
        self.enrolment.show()

    def adopt_secret(self) -> None:
        """After a confirmation, give a server made without one an enrolment secret (in a
        worker) and show it once, for the break-glass envelope and the other workstations."""
        if not dialogs.question(
            self,
            "Give the server an enrolment secret",
            "Make an enrolment secret for this practice server?\n\n"
            "• Every key slot on the server is sealed under it now, and each user's keys at "
            "their next sign-in.\n"
            "• This computer keeps it. Every other computer needs it before anyone can sign "
            "in there: enrol it again, or type the secret there (sign-in screen).\n"
            "• It is shown once: put it in the break-glass envelope.",
            yes="Make the secret",
            no="Cancel",
        ):
            return
        self._run(
            "Sealing the practice's key slots under a new enrolment secret…",
            lambda worker, _ctx: worker.server.adopt_enrolment_secret(),
            self._adopted,
        )

    def _adopted(self, secret: str) -> None:
        self.secret_button.hide()
        self.secret_hint.setText(HAS_SECRET)
        self.secret_field.setText(secret)
        self.secret_field.show()
        self._say(
            "The practice server now has the enrolment secret shown under Enrolment secret. "
            "Write it down and put it in the break-glass envelope; give it to every other "
            "workstation (enrol it again, or type it on its sign-in screen)."
        )

    def verify(self) -> None:
        """The whole-practice check (chain, rows against events, witnesses) in a worker."""
        self._run(
            "Checking the audit chain and every sealed row…",
            lambda worker, _ctx: worker.audit_trail.verify_integrity(),
            self._verified,
        )

    def _verified(self, report: Any) -> None:
        self.report.setPlainText(report.summary())
        self.report.show()
        if report.ok:
            self._say("The practice server is intact.")
        else:
            self._say(
                "The integrity check FAILED: see the report below. Stop and call the practice "
                "manager; keep the server as it is for investigation.",
                "error",
            )
