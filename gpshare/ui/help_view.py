"""The Help window: the topics of gpshare.help, shown offline as formatted text."""

from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtGui import QKeySequence, QShortcut
from PySide6.QtWidgets import (
    QDialog,
    QHBoxLayout,
    QListWidget,
    QListWidgetItem,
    QTextBrowser,
    QWidget,
)

from gpshare.help import TOPICS, topic


class HelpWindow(QDialog):
    """Topics on the left, the page on the right; Esc closes. Links open nothing outside."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("helpWindow")
        self.setWindowTitle("gpshare help")
        self.setModal(False)
        self.resize(900, 620)
        layout = QHBoxLayout(self)
        layout.setContentsMargins(12, 12, 12, 12)
        self.topics = QListWidget()
        self.topics.setObjectName("help.topics")
        self.topics.setAccessibleName("Help topics")
        self.topics.setMaximumWidth(260)
        # Long titles wrap instead of hiding behind a sideways scroll bar.
        self.topics.setWordWrap(True)
        self.topics.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.topics.setResizeMode(QListWidget.ResizeMode.Adjust)
        self.topics.setSpacing(2)
        for item in TOPICS:
            entry = QListWidgetItem(item.title)
            entry.setData(Qt.ItemDataRole.UserRole, item.key)
            self.topics.addItem(entry)
        self.page = QTextBrowser()
        self.page.setObjectName("help.page")
        self.page.setAccessibleName("Help page")
        self.page.setOpenLinks(False)  # offline: nothing is fetched or opened outside the app
        layout.addWidget(self.topics)
        layout.addWidget(self.page, 1)
        self.topics.currentItemChanged.connect(self._changed)
        QShortcut(QKeySequence(QKeySequence.StandardKey.Close), self, self.close)

    def show_topic(self, key: str) -> None:
        """Show one topic (and select it in the list)."""
        for row in range(self.topics.count()):
            if self.topics.item(row).data(Qt.ItemDataRole.UserRole) == key:
                self.topics.setCurrentRow(row)
                break
        self.page.setMarkdown(topic(key).text())
        self.setWindowTitle(f"gpshare help — {topic(key).title}")

    def _changed(self, current: QListWidgetItem | None, _previous: object) -> None:
        if current is not None:
            key = current.data(Qt.ItemDataRole.UserRole)
            if isinstance(key, str):
                self.page.setMarkdown(topic(key).text())
                self.setWindowTitle(f"gpshare help — {topic(key).title}")
