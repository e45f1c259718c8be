"""The lead's "Needs action" tab: referrals to chase and review dates passed, overdue first."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from PySide6.QtCore import QObject, Qt, Signal
from PySide6.QtGui import QColor, QFont, QFontMetrics, QKeySequence, QShortcut
from PySide6.QtWidgets import QHBoxLayout, QLabel, QPushButton, QTableView, QWidget

from gpshare.errors import StoreError
from gpshare.ui.lead.common import _Tab
from gpshare.ui.lead.key_confirm import PendingKeysPanel, RotationPanel
from gpshare.ui.records_view import connect_open, fmt_day, setup_table
from gpshare.ui.style import RED, refresh
from gpshare.ui.table_model import ItemTableModel
from gpshare.ui.widgets import hint as _hint
from gpshare.ui.widgets import message_label as _message
from gpshare.ui.widgets import set_message as _set_message
from gpshare.ui.worker import TaskBar

if TYPE_CHECKING:
    from gpshare.followup import NeedsAction
    from gpshare.services import Session


class NeedsActionModel(ItemTableModel):
    """The needs-action list as a model (it can hold thousands of rows in a large practice)."""

    headers = ("Due", "What to do", "Child", "Clinician", "Record")

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._bold = QFont()
        self._bold.setBold(True)

    @property
    def items(self) -> list[NeedsAction]:
        return self._items

    def set_items(self, items: Sequence[NeedsAction]) -> None:
        self.beginResetModel()
        self._items = list(items)
        self.endResetModel()

    def cell(self, item: NeedsAction, column: int, role: int) -> Any:
        if role in (Qt.ItemDataRole.DisplayRole, Qt.ItemDataRole.ToolTipRole):
            due = (fmt_day(item.due) or "now") + (" — overdue" if item.overdue else "")
            return (due, item.action, item.child, item.clinician, item.record_id)[column]
        if role == Qt.ItemDataRole.ForegroundRole and item.overdue and column in (0, 1):
            return QColor(RED)
        if role == Qt.ItemDataRole.FontRole and item.overdue and column == 0:
            return self._bold
        return None


class NeedsActionTab(_Tab):
    """Overdue referral follow-ups and review dates, then those due within two days."""

    record_opened = Signal(str)
    current_record_changed = Signal(str)
    count_changed = Signal(int)  # how many items need action, after every reload

    def __init__(self, session: Session, parent: QWidget | None = None) -> None:
        super().__init__(session, parent)
        self.setObjectName("needsAction")
        top = QHBoxLayout()
        self.summary = QLabel()
        self.summary.setObjectName("needs.summary")
        self.summary.setWordWrap(True)
        top.addWidget(self.summary, 1)
        self.refresh_button = QPushButton("Refresh")
        self.refresh_button.setObjectName("needs.refresh")
        self.refresh_button.setToolTip("Check again (F5)")
        self.refresh_button.clicked.connect(self.reload)
        top.addWidget(self.refresh_button, 0, Qt.AlignmentFlag.AlignTop)
        self.layout_.addLayout(top)
        # Vault version 2: fewer than two users hold the lead key → appoint a second lead.
        self.lead_cover = _message("needs.lead_cover")
        self.layout_.addWidget(self.lead_cover)
        # Vault version 2: keys waiting for this lead to confirm them.
        self.keys_panel = PendingKeysPanel(session, self)
        self.layout_.addWidget(self.keys_panel)
        self.rotation_panel = RotationPanel(session, self)
        self.layout_.addWidget(self.rotation_panel)
        self.tasks = TaskBar("needs.task", self)
        self.layout_.addWidget(self.tasks)
        self.error = _message("needs.error")
        self.layout_.addWidget(self.error)
        self.model = NeedsActionModel(self)
        self.table = QTableView()
        self.table.setObjectName("needs.table")
        self.table.setAccessibleName("Records that need action")
        self.table.setModel(self.model)
        setup_table(self.table, stretch=1)
        bold = QFont(self.table.font())
        bold.setBold(True)
        metrics, strong = self.table.fontMetrics(), QFontMetrics(bold)
        header = self.table.horizontalHeader()
        for column, width in (
            (0, strong.horizontalAdvance("30 Sep 2026 — overdue")),
            (2, metrics.horizontalAdvance("Zoë O'Brien-Nuñez")),
            (3, metrics.horizontalAdvance("Dr Alex Smith-Jones")),
            (4, metrics.horizontalAdvance("SG-XXXX-XXXX")),
        ):
            header.resizeSection(column, width + 22)
        connect_open(self.table, lambda index: self.open_row(index.row()))
        self.table.selectionModel().currentRowChanged.connect(
            lambda current, _prev: self._current(current.row())
        )
        self.layout_.addWidget(self.table, 1)
        # While the table is hidden (nothing due), this takes the spare height, so the summary
        # and the pending keys stay together at the top instead of being spread down the tab.
        self.layout_.addStretch(0)
        bottom = QHBoxLayout()
        bottom.addWidget(
            _hint(
                "Children's social care should acknowledge a referral within one working day "
                "(Working Together 2023). Chase when nothing comes back: a referral is not the "
                "end of the duty."
            ),
            1,
        )
        self.open_button = QPushButton("&Open record")
        self.open_button.setObjectName("needs.open")
        self.open_button.setProperty("variant", "primary")
        self.open_button.clicked.connect(lambda: self.open_row(self.table.currentIndex().row()))
        bottom.addWidget(self.open_button)
        self.layout_.addLayout(bottom)
        QShortcut(QKeySequence(Qt.Key.Key_F5), self, self.reload)

    @property
    def items(self) -> list[NeedsAction]:
        return self.model.items

    def reload(self) -> None:
        super().reload()
        self.error.hide()
        self.keys_panel.reload()
        try:
            cover = self.session.breakglass.lead_cover()
        except StoreError as exc:
            cover = None
            _set_message(self.lead_cover, str(exc), "error")
        if cover is not None and cover.message:
            _set_message(self.lead_cover, cover.message, "error")
        elif cover is not None:
            self.lead_cover.hide()
        self.rotation_panel.reload()
        # Worked out in a worker thread: in a large practice this reads tens of thousands of
        # rows, and the window must keep answering meanwhile.
        self.tasks.start(
            self.session,
            "Checking which referrals and reviews need action…",
            lambda worker, _ctx: worker.referrals.needs_action(),
            self.show_items,
            self._failed,
        )

    def _failed(self, exc: Exception) -> None:
        if not isinstance(exc, StoreError):
            raise exc
        _set_message(self.error, str(exc), "error")
        self.show_items([])

    def show_items(self, items: list[NeedsAction]) -> None:
        """Show a freshly computed list (on the GUI thread)."""
        self.model.set_items(items)
        self.count_changed.emit(len(items))
        overdue = sum(1 for i in items if i.overdue)
        soon = len(items) - overdue
        if not items and self.error.isHidden():
            self.summary.setText(
                "Nothing needs action: every referral is acknowledged or decided, and no "
                "review date has passed."
            )
            self.summary.setProperty("role", "success")
        elif items:
            parts = []
            if overdue:
                parts.append(f"{overdue:,} overdue")
            if soon:
                parts.append(f"{soon:,} due within two days")
            self.summary.setText(" · ".join(parts) + ". Open a record to record what happened.")
            self.summary.setProperty("role", "error" if overdue else "info")
        else:
            self.summary.setText("")
            self.summary.setProperty("role", "hint")
        refresh(self.summary)
        self.table.setVisible(bool(items))
        self.open_button.setEnabled(bool(items))
        if items:
            self.table.setCurrentIndex(self.model.index(0, 0))

    def _current(self, row: int) -> None:
        if 0 <= row < len(self.items):
            self.current_record_changed.emit(self.items[row].record_id)

    def open_row(self, row: int) -> None:
        if 0 <= row < len(self.items):
            self.record_opened.emit(self.items[row].record_id)
