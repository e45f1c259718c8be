"""Keys waiting for a lead's confirmation (vault version 2), shown at the top of Needs action,
and the dialog in which the lead types the six words the user reads out to them."""

from __future__ import annotations

from typing import TYPE_CHECKING

from PySide6.QtWidgets import (
    QDialog,
    QDialogButtonBox,
    QFrame,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from gpshare.errors import StoreError
from gpshare.ui.followup_dialog import show_errors
from gpshare.ui.records_view import fmt_day
from gpshare.ui.widgets import hint as _hint
from gpshare.ui.widgets import message_label as _message

if TYPE_CHECKING:
    from gpshare.services import PendingKey, Session


class ConfirmKeyDialog(QDialog):
    """Type the six words `pending.username` reads from their own screen; the service checks
    them, and signs and grants only when they match. The expected words are not shown here,
    so the comparison cannot be skipped."""

    def __init__(self, session: Session, pending: PendingKey, parent: QWidget | None = None):
        super().__init__(parent)
        self.setObjectName("confirm_key_dialog")
        self.setWindowTitle(f"Confirm the key of {pending.full_name}")
        self.session = session
        self.pending = pending
        self.confirmed = False
        intro = QLabel(
            f"{pending.full_name} ({pending.username}, {pending.role}) has a new key. Until you "
            "confirm it, no clinical key and no record is shared with it."
        )
        intro.setWordWrap(True)
        steps = _hint(
            "Ask them, in person or by phoning a number you already know, to read out the six "
            "words under File › My key words (or 'gpshare keys show'). Type the words "
            "they read. Never read words out to them: if the words differ, do not confirm, and "
            "tell the practice administrator."
        )
        self.words = QLineEdit()
        self.words.setObjectName("confirm_key.words")
        self.words.setAccessibleName("The six words they read to you")
        self.words.setPlaceholderText("six words, separated by spaces")
        self.words.setMaxLength(200)
        self.error = _message("confirm_key.error", "error")
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Cancel)
        self.confirm_button = buttons.addButton(
            "&Confirm key", QDialogButtonBox.ButtonRole.AcceptRole
        )
        self.confirm_button.setObjectName("confirm_key.confirm")
        self.confirm_button.setProperty("variant", "primary")
        self.confirm_button.setDefault(True)
        buttons.accepted.connect(self.confirm)
        buttons.rejected.connect(self.reject)
        layout = QVBoxLayout(self)
        layout.addWidget(intro)
        layout.addWidget(steps)
        label = QLabel("&Words they read:")
        label.setBuddy(self.words)
        layout.addWidget(label)
        layout.addWidget(self.words)
        layout.addWidget(self.error)
        layout.addWidget(buttons)
        self.setMinimumWidth(520)

    def confirm(self) -> None:
        try:
            self.session.directory.confirm(self.pending.username, self.words.text())
        except StoreError as exc:
            show_errors(self.error, exc, {"fingerprint": self.words})
            self.adjustSize()
            return
        self.confirmed = True
        self.accept()


class PendingKeysPanel(QFrame):
    """One line per pending key with a Confirm button; hidden when none is waiting, on a
    version-1 vault, and for anyone but a lead."""

    def __init__(self, session: Session, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("needs.keys")
        self.session = session
        self.items: list[PendingKey] = []
        self.rows = QVBoxLayout(self)
        self.rows.setContentsMargins(0, 0, 0, 8)
        self.title = QLabel()
        self.title.setObjectName("needs.keys.title")
        self.title.setProperty("role", "info")
        self.title.setWordWrap(True)
        self.rows.addWidget(self.title)
        self.buttons: list[QPushButton] = []
        self.row_widgets: list[QWidget] = []
        self.hide()

    def reload(self) -> None:
        """Read the pending keys again (cheap: one short list)."""
        for row in self.row_widgets:
            self.rows.removeWidget(row)
            row.deleteLater()
        self.row_widgets = []
        self.buttons = []
        session = self.session
        if session.keys is None or session.user.role != "lead":
            self.items = []
            self.hide()
            return
        try:
            self.items = session.directory.pending()
        except StoreError as exc:
            self.items = []
            self.title.setText(str(exc))
            self.show()
            return
        count = len(self.items)
        self.title.setText(
            f"{count} new {'key is' if count == 1 else 'keys are'} waiting for you to confirm: "
            "compare six words with each person before they can open records."
        )
        for item in self.items:
            row = QWidget()
            line = QHBoxLayout(row)
            line.setContentsMargins(0, 0, 0, 0)
            text = QLabel(
                f"{item.full_name} ({item.username}, {item.role}) — key made "
                f"{fmt_day(item.published)}"
            )
            line.addWidget(text, 1)
            button = QPushButton(f"Confirm {item.username}…")
            button.setObjectName(f"needs.keys.confirm.{item.username}")
            button.clicked.connect(lambda _=False, chosen=item: self.confirm(chosen))
            line.addWidget(button)
            self.rows.addWidget(row)
            self.row_widgets.append(row)
            self.buttons.append(button)
        self.setVisible(bool(self.items))

    def dialog(self, item: PendingKey) -> ConfirmKeyDialog:
        """The confirmation dialog for one pending key (tests drive it directly)."""
        return ConfirmKeyDialog(self.session, item, self)

    def confirm(self, item: PendingKey) -> None:
        dialog = self.dialog(item)
        dialog.exec()
        if dialog.confirmed:
            self.reload()


class RotationPanel(QFrame):
    """Vault version 2, for a lead: "key rotation pending" after a disable, with a button that
    completes it now (normally a lead's typed-password unlock already has)."""

    def __init__(self, session: Session, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("needs.rotation")
        self.session = session
        line = QHBoxLayout(self)
        line.setContentsMargins(0, 0, 0, 8)
        self.title = QLabel()
        self.title.setObjectName("needs.rotation.title")
        self.title.setProperty("role", "info")
        self.title.setWordWrap(True)
        line.addWidget(self.title, 1)
        self.button = QPushButton("&Rotate keys now")
        self.button.setObjectName("needs.rotation.rotate")
        self.button.setToolTip(
            "Make a new clinical key for every active clinician and lead, so people who have "
            "left cannot read what is recorded from now on."
        )
        self.button.clicked.connect(self.rotate)
        line.addWidget(self.button)
        self.hide()

    def reload(self) -> None:
        """Show the notice while a rotation is pending (leads on a version-2 vault only)."""
        session = self.session
        if session.keys is None or session.user.role != "lead":
            self.hide()
            return
        try:
            pending = session.directory.rotation_pending()
        except StoreError as exc:
            self.title.setText(str(exc))
            self.button.hide()
            self.show()
            return
        self.title.setText(
            f"Key rotation pending: {', '.join(pending)} "
            f"{'was' if len(pending) == 1 else 'were'} disabled. Rotating gives every active "
            "clinician and lead a new clinical key that the people who left do not hold."
        )
        self.button.show()
        self.setVisible(bool(pending))

    def rotate(self) -> None:
        try:
            done = self.session.directory.rotate()
        except StoreError as exc:
            self.title.setText(str(exc))
            self.button.hide()
            return
        self.reload()
        self.setVisible(True)
        self.button.hide()
        lead = f" and lead key generation {done.lead.generation}" if done.lead else ""
        self.title.setText(
            f"Keys rotated: clinical key generation {done.clinical.generation}{lead}."
        )
