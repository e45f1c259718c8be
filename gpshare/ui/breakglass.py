"""Break-glass in the app (vault version 2): the banner every lead and administrator sees after
a ceremony until two different users acknowledge it, and the Admin screen's ceremony dialog
(the administrator with the holder of the break-glass code; docs/vault-v2.md §3)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QFont
from PySide6.QtWidgets import (
    QComboBox,
    QDialog,
    QFormLayout,
    QFrame,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPlainTextEdit,
    QPushButton,
    QStackedWidget,
    QVBoxLayout,
    QWidget,
)

from gpshare.errors import LockedOutError, StoreError, ValidationFailed, WrongPasswordError
from gpshare.ui.widgets import hint, message_label, ok_cancel, set_message

if TYPE_CHECKING:
    from gpshare.services import Session
    from gpshare.services.breakglass import CeremonyResult

OVERSIGHT_ROLES = ("lead", "admin")


def sees_breakglass(session: Session | None) -> bool:
    """Leads and administrators of a version-2 vault see the banner and the last-lead notice."""
    return session is not None and session.keys is not None and session.user.role in OVERSIGHT_ROLES


def _page(title: str) -> tuple[QWidget, QVBoxLayout]:
    """One page of the dialog, headed by `title`."""
    page = QWidget()
    layout = QVBoxLayout(page)
    layout.setContentsMargins(0, 0, 0, 0)
    heading = QLabel(title)
    heading.setProperty("heading", "h2")
    layout.addWidget(heading)
    return page, layout


class BreakglassBanner(QFrame):
    """A red band under the top bar: who was granted the lead key, by whom, when and why, with
    an Acknowledge button; hidden once two different users have acknowledged."""

    acknowledged = Signal()

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("breakglass.banner")
        self.setStyleSheet(
            "#breakglass\\.banner { background: #fde8e8; border-bottom: 2px solid #b42318; }"
        )
        self._session: Session | None = None
        layout = QHBoxLayout(self)
        layout.setContentsMargins(16, 8, 16, 8)
        self.text = QLabel()
        self.text.setObjectName("breakglass.banner.text")
        self.text.setWordWrap(True)
        self.text.setTextFormat(Qt.TextFormat.PlainText)
        self.text.setStyleSheet("color: #7a1010; font-weight: 600;")
        layout.addWidget(self.text, 1)
        self.ack_button = QPushButton("&Acknowledge")
        self.ack_button.setObjectName("breakglass.banner.ack")
        self.ack_button.setToolTip(
            "Record that you have seen this break-glass use (two different leads or "
            "administrators must)."
        )
        self.ack_button.clicked.connect(self.acknowledge)
        layout.addWidget(self.ack_button, 0, Qt.AlignmentFlag.AlignTop)
        self.hide()

    def show_for(self, session: Session | None) -> None:
        """Follow `session` (None at lock) and show the banner if it applies."""
        self._session = session
        self.refresh()

    def refresh(self) -> None:
        """Re-read the newest ceremony; show or hide."""
        session = self._session
        if not sees_breakglass(session):
            self.hide()
            return
        assert session is not None
        try:
            notice = session.breakglass.notice()
        except StoreError as exc:
            self.text.setText(str(exc))
            self.show()
            return
        if notice is None:
            self.hide()
            return
        self.text.setText(notice.text())
        self.show()

    def acknowledge(self) -> None:
        """This user acknowledges the ceremony (audited); the banner stays until two have."""
        session = self._session
        if session is None:
            return
        try:
            session.breakglass.acknowledge()
        except StoreError as exc:
            self.refresh()
            self.text.setText(f"{exc}\n{self.text.text()}")
            return
        self.refresh()
        self.acknowledged.emit()


class BreakglassDialog(QDialog):
    """Appoint a safeguarding lead with the break-glass code: the lead to appoint, the reason
    (required), the code typed by its holder, optionally the six words of the grantee's key;
    then the new code, shown once and typed back."""

    def __init__(self, session: Session, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("breakglass_dialog")
        self.setWindowTitle("Break-glass: appoint a safeguarding lead")
        self.session = session
        self.result_: CeremonyResult | None = None
        outer = QVBoxLayout(self)
        outer.setContentsMargins(24, 20, 24, 18)
        self.pages = QStackedWidget()
        outer.addWidget(self.pages)
        self.pages.addWidget(self._form_page())
        self.pages.addWidget(self._code_page())
        self.setMinimumWidth(620)

    # ----- page 1: the ceremony ---------------------------------------------------------------
    def _form_page(self) -> QWidget:
        page, layout = _page("Appoint a safeguarding lead with the break-glass code")
        layout.addWidget(
            hint(
                "Only when no safeguarding lead can do it (none left, or none reachable when a "
                "child's safety needs one). The holder of the break-glass code types it; it is "
                "then replaced by a new code. Every lead and administrator is told who was "
                "appointed, by whom and why."
            )
        )
        self.error = message_label("breakglass_dialog.error")
        layout.addWidget(self.error)
        form = QFormLayout()
        form.setLabelAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignTop)
        self.grantee = QComboBox()
        self.grantee.setObjectName("breakglass_dialog.grantee")
        self.grantee.setAccessibleName("Lead to appoint")
        try:
            users = self.session.users.list_users()
        except StoreError:
            users = []
        for user in users:
            if user.active and user.role == "lead":
                self.grantee.addItem(f"{user.full_name} ({user.username})", user.username)
        self.reason = QPlainTextEdit()
        self.reason.setObjectName("breakglass_dialog.reason")
        self.reason.setAccessibleName("Reason")
        self.reason.setPlaceholderText(
            "Why no lead can do this now, e.g. the only lead has left the practice"
        )
        self.reason.setFixedHeight(80)
        self.code = QLineEdit()
        self.code.setObjectName("breakglass_dialog.code")
        self.code.setAccessibleName("Break-glass code")
        self.code.setEchoMode(QLineEdit.EchoMode.Password)
        self.code.setPlaceholderText("typed by the holder of the sealed envelope")
        self.fingerprint = QLineEdit()
        self.fingerprint.setObjectName("breakglass_dialog.fingerprint")
        self.fingerprint.setAccessibleName("Key words (optional)")
        self.fingerprint.setPlaceholderText("optional: the six words the new lead reads out")
        self.field_errors: dict[str, QLabel] = {}
        for key, label, widget in (
            ("grant_lead", "&Lead to appoint", self.grantee),
            ("reason", "&Reason", self.reason),
            ("code", "Break-glass &code", self.code),
            ("fingerprint", "Their key &words", self.fingerprint),
        ):
            cell = QWidget()
            cell_layout = QVBoxLayout(cell)
            cell_layout.setContentsMargins(0, 0, 0, 0)
            cell_layout.setSpacing(2)
            cell_layout.setAlignment(Qt.AlignmentFlag.AlignTop)
            cell_layout.addWidget(widget)
            error = message_label(f"breakglass_dialog.{key}.error", "fielderror")
            self.field_errors[key] = error
            cell_layout.addWidget(error)
            caption = QLabel(label)
            caption.setBuddy(widget)
            form.addRow(caption, cell)
        layout.addLayout(form)
        if self.grantee.count() == 0:
            set_message(
                self.error,
                "No active user has the lead role. Add the person to appoint as a user with "
                "the lead role first (Users › Add user); after they sign in once with their own "
                "password, come back here.",
                "error",
            )
        buttons, self.ok_button, cancel = ok_cancel("&Appoint lead", "breakglass_dialog")
        self.ok_button.setProperty("variant", "danger")
        self.ok_button.clicked.connect(self.submit)
        cancel.clicked.connect(self.reject)
        layout.addWidget(buttons)
        return page

    def field_error(self, key: str) -> str:
        """The message under a field ('' when none)."""
        label = self.field_errors[key]
        return label.text() if label.isVisible() or label.text() else ""

    def _clear(self) -> None:
        self.error.hide()
        for label in self.field_errors.values():
            label.clear()
            label.hide()

    def _fit(self) -> None:
        """Grow to show the messages just set (a dialog does not grow by itself)."""
        layout = self.layout()
        if layout is None:
            return
        layout.activate()
        height = layout.totalHeightForWidth(self.width())
        self.resize(self.width(), max(self.height(), height))

    def submit(self) -> None:
        """Run the ceremony; problems are shown by their fields, nothing is written."""
        self._clear()
        try:
            self._submit()
        finally:
            self._fit()

    def _submit(self) -> None:
        grantee = self.grantee.currentData()
        if not grantee:
            set_message(
                self.field_errors["grant_lead"], "Choose the lead to appoint.", "fielderror"
            )
            return
        if not self.code.text().strip():
            set_message(
                self.field_errors["code"],
                "The holder of the break-glass code must type it here.",
                "fielderror",
            )
            return
        words = self.fingerprint.text().strip() or None
        try:
            done = self.session.breakglass.ceremony(
                self.code.text(), str(grantee), self.reason.toPlainText(), words
            )
        except ValidationFailed as exc:
            for problem in exc.errors:
                field = str(problem.get("field", ""))
                target = self.field_errors.get(field, self.error)
                set_message(
                    target,
                    str(problem.get("message", exc)),
                    "fielderror" if target is not self.error else "error",
                )
            if not exc.errors:
                set_message(self.error, str(exc), "error")
            return
        except (WrongPasswordError, LockedOutError) as exc:
            self.code.clear()
            set_message(self.field_errors["code"], str(exc), "fielderror")
            return
        except StoreError as exc:
            set_message(self.error, str(exc), "error")
            return
        self.code.clear()
        self.result_ = done
        self.new_code.setText(done.new_code)
        if done.enrolment_secret:  # a practice server's: it goes in the same envelope
            self.envelope_secret.setText(
                "Put the practice server's enrolment secret in the same envelope:\n"
                f"{done.enrolment_secret}"
            )
            self.envelope_secret.show()
        self.granted.setText(
            f"{done.grantee} is now a safeguarding lead (their key words: {done.fingerprint}). "
            "Their next sign-in with their password holds the lead key."
        )
        self.pages.setCurrentIndex(1)
        self.typed_back.setFocus()

    # ----- page 2: the new code, typed back ---------------------------------------------------
    def _code_page(self) -> QWidget:
        page, layout = _page("New break-glass code")
        self.granted = QLabel()
        self.granted.setObjectName("breakglass_dialog.granted")
        self.granted.setWordWrap(True)
        layout.addWidget(self.granted)
        layout.addWidget(
            hint(
                "The old code no longer opens anything. Write this one down, seal it in a new "
                "envelope for the Caldicott Guardian or a senior partner (never the practice "
                "manager alone). It is shown only once."
            )
        )
        self.new_code = QLabel()
        self.new_code.setObjectName("breakglass_dialog.new_code")
        self.new_code.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        mono = QFont("monospace")
        mono.setStyleHint(QFont.StyleHint.Monospace)
        mono.setPointSize(mono.pointSize() + 4)
        self.new_code.setFont(mono)
        layout.addWidget(self.new_code, 0, Qt.AlignmentFlag.AlignHCenter)
        self.envelope_secret = QLabel()
        self.envelope_secret.setObjectName("breakglass_dialog.enrolment_secret")
        self.envelope_secret.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.envelope_secret.setWordWrap(True)
        self.envelope_secret.hide()
        layout.addWidget(self.envelope_secret)
        self.typed_back = QLineEdit()
        self.typed_back.setObjectName("breakglass_dialog.typed_back")
        self.typed_back.setAccessibleName("Type the new code back")
        self.typed_back.setPlaceholderText("type the new code back to show it is written down")
        layout.addWidget(self.typed_back)
        self.done_button = QPushButton("&Done")
        self.done_button.setObjectName("breakglass_dialog.done")
        self.done_button.setProperty("variant", "primary")
        self.done_button.setEnabled(False)
        self.done_button.clicked.connect(self.accept)
        self.typed_back.textChanged.connect(self._check_typed)
        layout.addStretch(1)
        row = QHBoxLayout()
        row.addStretch(1)
        row.addWidget(self.done_button)
        layout.addLayout(row)
        return page

    def _check_typed(self, text: str) -> None:
        def norm(value: str) -> str:
            return "".join(ch for ch in value.upper() if ch.isalnum())

        self.done_button.setEnabled(norm(text) == norm(self.new_code.text()) and bool(text))
