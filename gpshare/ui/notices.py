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
