"""The unlock notices band: what a user is told once after signing in (a practice server
restored from a backup since this computer last connected: when, by whom, what was lost)."""

from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QFrame, QHBoxLayout, QLabel, QPushButton, QWidget


class NoticeBanner(QFrame):
    """An amber band under the top bar with the session's notices and a Dismiss button;
    hidden when there are none (they are shown once: the service does not repeat them)."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("notice.banner")
        self.setStyleSheet(
            "#notice\\.banner { background: #fff4e0; border-bottom: 2px solid #b54708; }"
        )
        layout = QHBoxLayout(self)
        layout.setContentsMargins(16, 8, 16, 8)
        self.text = QLabel()
        self.text.setObjectName("notice.banner.text")
        self.text.setWordWrap(True)
        self.text.setTextFormat(Qt.TextFormat.PlainText)
        self.text.setStyleSheet("color: #7a2e0e; font-weight: 600;")
        layout.addWidget(self.text, 1)
        self.dismiss_button = QPushButton("&Dismiss")
        self.dismiss_button.setObjectName("notice.banner.dismiss")
        self.dismiss_button.setToolTip("Hide this notice (it is not shown again).")
        self.dismiss_button.clicked.connect(lambda: self.show_notices([]))
        layout.addWidget(self.dismiss_button, 0, Qt.AlignmentFlag.AlignTop)
        self.hide()

    def show_notices(self, notices: list[str]) -> None:
        """Show these lines (none: hide the band)."""
        self.text.setText("\n".join(notices))
        self.setVisible(bool(notices))


ALARM_TITLE = "STOP — this vault's history has gone back or split"
ALARM_ACTION = (
    "Do not continue and do not sign in again. Call the practice manager now. This can mean "
    "the practice server (or this vault) was restored from a backup without the restore "
    "being recorded, or that it has been tampered with. Nothing has been changed on this "
    "computer. This is not a wrong password."
)


class RollbackAlarm(QFrame):
    """The rollback / fork alarm on the unlock screen (DESIGN §10.3): a red panel with an
    icon, both heads as the service names them, and what to do — never mistakable for the
    plain error line a wrong password gets."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        from PySide6.QtWidgets import QStyle, QVBoxLayout

        self.setObjectName("unlock.alarm")
        self.setAccessibleName("Rollback alarm")
        self.setStyleSheet(
            "#unlock\\.alarm { background: #fde8e8; border: 3px solid #b42318; "
            "border-radius: 6px; } #unlock\\.alarm QLabel { color: #3d0a0a; }"
            " #unlock\\.alarm\\.title { color: #7a1212; font-weight: 800; font-size: 15px; }"
        )
        layout = QHBoxLayout(self)
        layout.setContentsMargins(12, 10, 12, 12)
        self.icon = QLabel()
        icon = self.style().standardIcon(QStyle.StandardPixmap.SP_MessageBoxCritical)
        self.icon.setPixmap(icon.pixmap(40, 40))
        layout.addWidget(self.icon, 0, Qt.AlignmentFlag.AlignTop)
        column = QVBoxLayout()
        self.title = QLabel(ALARM_TITLE)
        self.title.setObjectName("unlock.alarm.title")
        self.title.setWordWrap(True)
        column.addWidget(self.title)
        self.detail = QLabel()
        self.detail.setObjectName("unlock.alarm.detail")
        self.detail.setWordWrap(True)
        self.detail.setTextFormat(Qt.TextFormat.PlainText)
        self.detail.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        column.addWidget(self.detail)
        self.action = QLabel(ALARM_ACTION)
        self.action.setObjectName("unlock.alarm.action")
        self.action.setWordWrap(True)
        self.action.setStyleSheet("font-weight: 700;")
        column.addWidget(self.action)
        layout.addLayout(column, 1)

    def show_alarm(self, text: str, width: int) -> None:
        """Show the service's words (which name both heads) under the title."""
        self.detail.setText(text)
        self.show()
        # Reserve the full height: the unlock card is a tight, fixed-width column.
        self.setMinimumHeight(self.heightForWidth(width) if self.hasHeightForWidth() else 0)
        self.setMinimumHeight(max(self.minimumHeight(), self.sizeHint().height()))
