"""The practice safeguarding lead's workspace.

Tabs: **Needs action** (home: referrals to chase and review dates passed, overdue first),
**Records** (every record, filtered in SQL, fetched a page at a time, exportable as CSV),
**Child chronology** (everything about the selected record's child, and household links to
confirm), **Dashboard** (monthly bar charts drawn with QPainter, and the numbers) and **Audit**
(the log, chain verification and the PDF report). Opening a record shows its detail in place
(Esc goes back). Every call goes through the services, which decide what this user may do and
audit it; refusals and failures are shown as the services' own plain messages.
"""

from __future__ import annotations

import logging
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING, Any

from PySide6.QtCore import (
    QDate,
    QEvent,
    QObject,
    QPointF,
    QRectF,
    QSize,
    Qt,
    QTimer,
    Signal,
)
from PySide6.QtGui import (
    QColor,
    QFont,
    QFontMetrics,
    QHelpEvent,
    QKeySequence,
    QPainter,
    QPen,
    QShortcut,
)
from PySide6.QtWidgets import (
    QComboBox,
    QFrame,
    QGridLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QScrollArea,
    QSizePolicy,
    QStackedWidget,
    QTableView,
    QTabWidget,
    QToolTip,
    QVBoxLayout,
    QWidget,
)

from gpshare.clock import today
from gpshare.dashboard import CONSENT_BASES, PATHWAYS
from gpshare.errors import StoreError
from gpshare.filters import AuditFilter, RecordFilter
from gpshare.followup import EVENT_LABELS, LA_DECISIONS
from gpshare.ui import dialogs
from gpshare.ui.record_detail import RecordDetailView, action_label, audit_details, fill_table
from gpshare.ui.records_view import (
    CONSENT_LABELS,
    PAGE_SIZE,
    PagedTableModel,
    RecordsView,
    connect_open,
    consent_label,
    date_filter,
    date_value,
    fmt_day,
    fmt_when,
    nhs_text,
    pathway_label,
    setup_table,
)
from gpshare.ui.style import (
    BLUE,
    BORDER,
    LIGHT_BORDER,
    RED,
    SECONDARY_TEXT,
    TEXT,
    refresh,
)
from gpshare.ui.table_model import ItemTableModel
from gpshare.ui.unlock import busy_cursor
from gpshare.ui.widgets import heading as _heading
from gpshare.ui.widgets import hint as _hint
from gpshare.ui.widgets import list_table as _table
from gpshare.ui.widgets import message_label as _message
from gpshare.ui.widgets import set_message as _set_message
from gpshare.ui.worker import TaskBar

if TYPE_CHECKING:
    from gpshare.chronology import ChronologyEntry, HouseholdLink
    from gpshare.dashboard import Dashboard
    from gpshare.followup import NeedsAction
    from gpshare.records import AuditEvent, Record
    from gpshare.services import ChainReport, Session

log = logging.getLogger(__name__)

__all__ = [
    "AuditTab",
    "AuditTableModel",
    "ChronologyTab",
    "DashboardTab",
    "LeadWorkspace",
    "NeedsActionTab",
    "StackedBarChart",
    "chain_result_text",
    "install",
]

WORKSPACE_QSS = f"""
QWidget#leadWorkspace {{ background: white; }}
QFrame[tile="true"] {{ background: white; border: 1px solid {LIGHT_BORDER}; border-top: 4px solid {BLUE}; }}
QFrame[tile="true"][tone="warn"] {{ border-top: 4px solid {RED}; }}
QFrame[tile="true"] QLabel {{ background: transparent; }}
QLabel[role="tilevalue"] {{ font-size: 20pt; font-weight: 600; color: {TEXT}; }}
QLabel[role="tilecaption"] {{ color: {SECONDARY_TEXT}; }}
QLabel[role="chain"] {{ font-size: 11pt; font-weight: 600; padding: 10px 12px; }}
QFrame[chart="true"] {{ background: white; border: 1px solid {LIGHT_BORDER}; }}
"""

KIND_LABELS = {
    "record": "Assessment",
    "review_due": "Review date",
    "followup": "Referral follow-up",
    "review": "Lead review",
    "addendum": "Addendum",
}
OVERDUE_WORDS = {  # status -> (one, many)
    "completed": ("letter unsent", "letters unsent"),
    "sent": ("acknowledgement", "acknowledgements"),
    "acknowledged": ("decision", "decisions"),
    "monitor": ("review", "reviews"),
}
PATHWAY_COLOURS = {
    "emergency": "#D5281B",
    "legal_duty": "#7C2855",
    "referral": "#005EB8",
    "limited_sharing": "#41B6E6",
    "early_help": "#009639",
    "monitor": "#ED8B00",
    "unknown": "#AEB7BD",
}
CONSENT_COLOURS = {
    "consent_given": "#007F3B",
    "shared_without_consent_refused": "#ED8B00",
    "shared_without_consent_not_sought": "#7C2855",
    "not_applicable": "#AEB7BD",
    "unknown": "#D8DDE0",
}
_FOLLOWUP_SUMMARY = re.compile(r"^Referral (\w+)(?: — (\w+))?$")


def _grouped(number: int) -> str:
    """12 408 (space-grouped, as the practice's audit report writes it)."""
    return f"{number:,}".replace(",", " ")


def _plural(count: int, word: str) -> str:
    return f"{count} {word}{'' if count == 1 else 's'}"


class _Tab(QWidget):
    """A workspace tab that loads its data the first time it is shown (and on demand)."""

    def __init__(self, session: Session, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.session = session
        self.loaded = False
        self.layout_ = QVBoxLayout(self)
        self.layout_.setContentsMargins(16, 14, 16, 14)
        self.layout_.setSpacing(10)

    def ensure_loaded(self) -> None:
        if not self.loaded:
            self.reload()

    def reload(self) -> None:
        self.loaded = True

    def invalidate(self) -> None:
        """The data changed: load again when next shown."""
        self.loaded = False
        if self.isVisible():
            self.reload()


# ----- needs action ---------------------------------------------------------------------------------------
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
        # Worked out in a worker thread: in a large practice this reads tens of thousands of
        # rows, and the window must keep answering meanwhile.
        self.tasks.start(
            self.session,
            "Checking which referrals and reviews need action…",
            lambda worker, _ctx: worker.needs_action(),
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


# ----- chronology ---------------------------------------------------------------------------------------------
def entry_text(entry: ChronologyEntry, records: Mapping[str, Record], session: Session) -> str:
    """A chronology line in words (tokens turned into labels where the entry allows)."""
    if entry.kind == "record" and entry.record_id in records:
        record = records[entry.record_id]
        parts = [pathway_label(record.pathway) if record.pathway else "Draft"]
        if record.consent_basis and record.consent_basis != "not_applicable":
            parts.append(consent_label(record.consent_basis).lower())
        concern = record.answers.get("categories")
        if isinstance(concern, list) and concern:
            try:
                form = session.form_for(record)
                names = [form.option_label("categories", c) for c in concern if isinstance(c, str)]
            except Exception:  # an old form version that is no longer installed: show the tokens
                names = [str(c).replace("_", " ") for c in concern]
            parts.append("concern: " + ", ".join(n[:1].lower() + n[1:] for n in names))
        return "; ".join(parts)
    match = _FOLLOWUP_SUMMARY.match(entry.summary) if entry.kind == "followup" else None
    if match:
        event, decision = match.groups()
        text = EVENT_LABELS.get(event, event)
        return f"{text}: {LA_DECISIONS.get(decision, decision)}" if decision else text
    return entry.summary


LINK_STATUS = {
    "to_confirm": "To confirm",
    "same_household": "Same household",
    "not_related": "Not related",
}


class ChronologyTab(_Tab):
    """Everything recorded about the selected record's child, in time order, and household links."""

    record_opened = Signal(str)

    def __init__(self, session: Session, parent: QWidget | None = None) -> None:
        super().__init__(session, parent)
        self.setObjectName("chronology")
        self.record_id: str | None = None
        self._shown_for: str | None = None
        self.entries: list[ChronologyEntry] = []
        self.links: list[HouseholdLink] = []
        self.title = _heading("Child chronology")
        self.title.setObjectName("chronology.title")
        self.title.setTextFormat(Qt.TextFormat.PlainText)
        self.layout_.addWidget(self.title)
        self.subtitle = _hint(
            "Select or open a record (Needs action or Records) to see everything about that child."
        )
        self.subtitle.setObjectName("chronology.subtitle")
        self.layout_.addWidget(self.subtitle)
        self.pattern = _message("chronology.pattern", "info")
        self.layout_.addWidget(self.pattern)
        self.error = _message("chronology.error")
        self.layout_.addWidget(self.error)
        self.table = _table("chronology.table", ("Date", "What", "Details", "Record", "By"), 2)
        self.table.setAccessibleName("Chronology")
        connect_open(self.table, lambda index: self._open_entry(index.row()))
        self.layout_.addWidget(self.table, 3)
        self.links_heading = _heading("Possible household links — to confirm")
        self.layout_.addWidget(self.links_heading)
        self.links_hint = _hint(
            "Other children's records that share a parent or carer, or the address. They are "
            "suggestions: check they are the same household before you rely on them."
        )
        self.layout_.addWidget(self.links_hint)
        self.links_table = _table(
            "chronology.links",
            ("Child", "Born", "Record", "Date", "Why linked", "Clinician", "Status"),
            4,
        )
        self.links_table.setAccessibleName("Household links to confirm")
        connect_open(self.links_table, lambda index: self._open_link(index.row()))
        self.layout_.addWidget(self.links_table, 1)
        self.links_bar = QWidget()
        bar = QHBoxLayout(self.links_bar)
        bar.setContentsMargins(0, 0, 0, 0)
        self.same_button = QPushButton("&Same household")
        self.same_button.setObjectName("chronology.same_household")
        self.not_related_button = QPushButton("&Not related")
        self.not_related_button.setObjectName("chronology.not_related")
        self.same_button.clicked.connect(lambda: self._review_link("same_household"))
        self.not_related_button.clicked.connect(lambda: self._review_link("not_related"))
        bar.addWidget(QLabel("For the selected link:"))
        bar.addWidget(self.same_button)
        bar.addWidget(self.not_related_button)
        bar.addStretch(1)
        self.layout_.addWidget(self.links_bar)
        self._show_empty()

    def set_record(self, record_id: str | None) -> None:
        """Follow this record's child (loaded when the tab is shown; each load is audited)."""
        self.record_id = record_id
        if self.isVisible():
            self.ensure_loaded()

    def ensure_loaded(self) -> None:
        if self.record_id and self.record_id != self._shown_for:
            self.reload()

    def invalidate(self) -> None:
        self._shown_for = None
        if self.isVisible():
            self.ensure_loaded()

    def _show_empty(self) -> None:
        for widget in (
            self.table,
            self.links_heading,
            self.links_hint,
            self.links_table,
            self.links_bar,
        ):
            widget.hide()

    def reload(self) -> None:
        super().reload()
        self.error.hide()
        self.pattern.hide()
        if not self.record_id:
            self._show_empty()
            return
        self._shown_for = self.record_id
        try:
            with busy_cursor():
                self.entries, self.links = self.session.child_chronology(self.record_id)
                ids = tuple(dict.fromkeys(e.record_id for e in self.entries))
                found = self.session.list_records(RecordFilter(record_ids=ids)) if ids else []
        except StoreError as exc:
            self.entries, self.links = [], []
            self._show_empty()
            _set_message(self.error, str(exc), "error")
            return
        records = {r.id: r for r in found}
        current = records.get(self.record_id)
        if current is not None:
            child = current.child
            born = f", born {fmt_day(child.date_of_birth)}" if child.date_of_birth else ""
            self.title.setText(f"Child chronology — {child.display_name}")
            self.subtitle.setText(
                f"NHS number {nhs_text(child.nhs_number)}{born}. "
                f"{_plural(len(records), 'record')} about this child; newest at the bottom."
            )
        now = today(self.session.clock)
        rows, colours = [], []
        for entry in self.entries:
            passed = entry.kind == "review_due" and entry.when[:10] < now.isoformat()
            what = KIND_LABELS.get(entry.kind, entry.kind)
            if entry.kind == "review_due":
                what += " (passed)" if passed else " (due)"
            rows.append(
                [
                    fmt_when(entry.when),
                    what,
                    entry_text(entry, records, self.session),
                    entry.record_id,
                    self._who(entry.author, records),
                ]
            )
            colours.append(
                RED if passed else SECONDARY_TEXT if entry.kind == "review_due" else None
            )
        fill_table(
            self.table,
            rows,
            colours=colours,
            max_width=520,
            bold=[e.kind == "record" and e.record_id == self.record_id for e in self.entries],
        )
        self._show_pattern(list(records.values()), now)
        fill_table(
            self.links_table,
            (
                [
                    link.record.child.display_name,
                    fmt_day(link.record.child.date_of_birth),
                    link.record.id,
                    fmt_when(link.record.completed or link.record.created),
                    ", ".join(link.reasons),
                    link.record.clinician_name or link.record.clinician,
                    LINK_STATUS.get(link.status, link.status),
                ]
                for link in self.links
            ),
        )
        self.table.show()
        for widget in (self.links_heading, self.links_hint, self.links_table, self.links_bar):
            widget.show()
        if not self.links:
            self.links_hint.setText(
                "No other child's record shares a parent, carer or address with this child."
            )
            self.links_table.hide()
            self.links_bar.hide()

    def _show_pattern(self, records: Sequence[Record], now: date) -> None:
        """Point out when several concerns about one child add up (the serious-case-review lesson)."""
        recent = [
            r
            for r in records
            if (r.completed or r.created)[:10] >= date(now.year - 1, now.month, 1).isoformat()
        ]
        monitors = sum(1 for r in recent if r.pathway == "monitor")
        if len(recent) >= 2:
            text = (
                f"{_plural(len(recent), 'concern')} recorded about this child in the last 12 months"
                + (f", {monitors} decided not to share at the time" if monitors else "")
                + ". Consider whether, taken together, they now meet the threshold for sharing."
            )
            _set_message(self.pattern, text, "info")

    def _who(self, username: str, records: Mapping[str, Record]) -> str:
        for record in records.values():
            if record.clinician == username and record.clinician_name:
                return record.clinician_name
        return self.session.user.full_name if username == self.session.user.username else username

    def _open_entry(self, row: int) -> None:
        if 0 <= row < len(self.entries):
            self.record_opened.emit(self.entries[row].record_id)

    def _open_link(self, row: int) -> None:
        if 0 <= row < len(self.links):
            self.record_opened.emit(self.links[row].record.id)

    def _review_link(self, decision: str) -> None:
        """Record the lead's decision on the selected suggested link (audited by the service)."""
        row = self.links_table.currentRow()
        if not self.record_id or not 0 <= row < len(self.links):
            dialogs.information(self, "Household link", "Select a link in the table first.")
            return
        try:
            self.session.review_household_link(self.record_id, self.links[row].record.id, decision)
        except StoreError as exc:
            dialogs.error(self, "Household link", str(exc))
            return
        self._shown_for = None
        self.reload()
        self.links_table.selectRow(row)


# ----- dashboard ---------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Series:
    token: str
    label: str
    colour: str


def nice_step(maximum: int, ticks: int = 5) -> int:
    """A round gridline step (1, 2, 5 × 10ⁿ) giving at most about `ticks` lines."""
    if maximum <= ticks:
        return 1
    raw = maximum / ticks
    power = 10 ** math.floor(math.log10(raw))
    for factor in (1, 2, 5, 10):
        if factor * power >= raw:
            return int(factor * power)
    return int(10 * power)


def month_label(month: str) -> str:
    try:
        return date.fromisoformat(month + "-01").strftime("%b %y")
    except ValueError:
        return month


def month_range(first: str, last: str) -> list[str]:
    """Every 'YYYY-MM' from first to last inclusive (so empty months show as gaps)."""
    y, m = int(first[:4]), int(first[5:7])
    out: list[str] = []
    while f"{y:04d}-{m:02d}" <= last and len(out) < 240:
        out.append(f"{y:04d}-{m:02d}")
        y, m = (y + 1, 1) if m == 12 else (y, m + 1)
    return out


class StackedBarChart(QWidget):
    """Records per month as stacked bars, one colour per category, drawn with QPainter."""

    def __init__(self, title: str, series: Sequence[Series], parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.title = title
        self.series = list(series)
        self.months: list[str] = []
        self.values: dict[str, dict[str, int]] = {}
        self._hits: list[tuple[QRectF, str]] = []
        self.setAccessibleName(title)
        self.setMinimumHeight(260)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Expanding)
        self.setMouseTracking(True)

    def sizeHint(self) -> QSize:  # noqa: N802 - Qt API
        return QSize(520, 300)

    def set_data(self, months: Sequence[str], values: Mapping[str, Mapping[str, int]]) -> None:
        self.months = list(months)
        self.values = {m: dict(values.get(m, {})) for m in self.months}
        described = []
        for month in self.months:
            counts = self.values[month]
            if counts:
                inner = ", ".join(
                    f"{s.label} {counts[s.token]}" for s in self._present() if counts.get(s.token)
                )
                described.append(f"{month_label(month)}: {inner}")
        self.setAccessibleDescription("; ".join(described) or "No records in this period.")
        self.update()

    def totals(self) -> dict[str, int]:
        return {m: sum(v.values()) for m, v in self.values.items()}

    def _present(self) -> list[Series]:
        known = {s.token for s in self.series}
        used = {t for counts in self.values.values() for t, n in counts.items() if n}
        extra = [Series(t, t.replace("_", " "), "#768692") for t in sorted(used - known)]
        return [s for s in self.series if s.token in used] + extra

    def paintEvent(self, _event: Any) -> None:  # noqa: N802 - Qt API
        painter = QPainter(self)
        painter.setRenderHint(QPainter.RenderHint.Antialiasing)
        painter.fillRect(self.rect(), QColor("white"))
        self._hits = []
        font = QFont(self.font())
        metrics = QFontMetrics(font)
        line = metrics.height()
        area = QRectF(self.rect()).adjusted(14, 10, -14, -10)
        title_font = QFont(font)
        title_font.setBold(True)
        title_font.setPointSizeF(font.pointSizeF() * 1.1)
        painter.setFont(title_font)
        painter.setPen(QColor(TEXT))
        painter.drawText(
            QRectF(area.left(), area.top(), area.width(), line * 1.4),
            Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignVCenter,
            self.title,
        )
        top = area.top() + line * 1.6
        painter.setFont(font)

        # legend (wraps), only categories that occur
        x = area.left()
        present = self._present()
        for s in present:
            width = 14 + 6 + metrics.horizontalAdvance(s.label) + 18
            if x + width > area.right() and x > area.left():
                x = area.left()
                top += line + 6
            painter.fillRect(QRectF(x, top + (line - 12) / 2, 12, 12), QColor(s.colour))
            painter.setPen(QColor(TEXT))
            painter.drawText(QPointF(x + 18, top + metrics.ascent()), s.label)
            x += width
        if present:
            top += line + 12

        totals = self.totals()
        peak = max(totals.values(), default=0)
        if peak == 0:
            painter.setPen(QColor(SECONDARY_TEXT))
            painter.drawText(
                QRectF(area.left(), top, area.width(), area.bottom() - top),
                Qt.AlignmentFlag.AlignCenter,
                "No completed records in this period.",
            )
            painter.end()
            return
        step = nice_step(peak)
        y_max = step * math.ceil(peak / step)
        if y_max == peak:
            y_max += step  # room for the total above the tallest bar
        label_w = metrics.horizontalAdvance(str(y_max)) + 10
        plot = QRectF(
            area.left() + label_w,
            top + line,
            area.width() - label_w,
            area.bottom() - top - 2 * line - 6,
        )

        def y_of(value: float) -> float:
            return plot.bottom() - plot.height() * value / y_max

        # gridlines and axis labels
        painter.setPen(QPen(QColor(LIGHT_BORDER), 1))
        for value in range(0, y_max + 1, step):
            y = y_of(value)
            painter.setPen(QPen(QColor(BORDER if value == 0 else LIGHT_BORDER), 1))
            painter.drawLine(QPointF(plot.left(), y), QPointF(plot.right(), y))
            painter.setPen(QColor(SECONDARY_TEXT))
            painter.drawText(
                QRectF(area.left(), y - line / 2, label_w - 8, line),
                Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter,
                str(value),
            )

        # bars
        count = max(len(self.months), 1)
        slot = plot.width() / count
        bar_w = max(4.0, min(56.0, slot * 0.62))
        label_every = max(1, math.ceil((metrics.horizontalAdvance("Mmm 00") + 8) / slot))
        for index, month in enumerate(self.months):
            centre = plot.left() + slot * (index + 0.5)
            base = 0
            for s in present:
                n = self.values[month].get(s.token, 0)
                if not n:
                    continue
                rect = QRectF(
                    centre - bar_w / 2, y_of(base + n), bar_w, y_of(base) - y_of(base + n)
                )
                painter.fillRect(rect, QColor(s.colour))
                painter.setPen(QPen(QColor("white"), 1))
                painter.drawLine(rect.topLeft(), rect.topRight())
                self._hits.append((rect, f"{month_label(month)} — {s.label}: {n}"))
                base += n
            if base:
                painter.setPen(QColor(TEXT))
                painter.drawText(
                    QRectF(centre - slot / 2, y_of(base) - line - 2, slot, line),
                    Qt.AlignmentFlag.AlignHCenter | Qt.AlignmentFlag.AlignBottom,
                    str(base),
                )
            if index % label_every == 0:
                painter.setPen(QColor(SECONDARY_TEXT))
                painter.drawText(
                    QRectF(
                        centre - slot * label_every / 2, plot.bottom() + 4, slot * label_every, line
                    ),
                    Qt.AlignmentFlag.AlignHCenter | Qt.AlignmentFlag.AlignTop,
                    month_label(month),
                )
        painter.end()

    def event(self, event: QEvent) -> bool:
        if event.type() == QEvent.Type.ToolTip and isinstance(event, QHelpEvent):
            text = next((t for rect, t in self._hits if rect.contains(QPointF(event.pos()))), "")
            if text:
                QToolTip.showText(event.globalPos(), text, self)
            else:
                QToolTip.hideText()
                event.ignore()
            return True
        return super().event(event)


def fmt_hours(hours: float | None) -> str:
    if hours is None:
        return "—"
    if hours < 48:
        return f"{hours:.1f} h"
    return f"{hours / 24:.1f} days"


class _Tile(QFrame):
    def __init__(self, name: str, caption: str) -> None:
        super().__init__()
        self.setProperty("tile", True)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(12, 8, 12, 10)
        layout.setSpacing(2)
        self.value = QLabel("—")
        self.value.setObjectName(f"dashboard.{name}")
        self.value.setProperty("role", "tilevalue")
        self.caption = QLabel(caption)
        self.caption.setProperty("role", "tilecaption")
        self.caption.setWordWrap(True)
        layout.addWidget(self.value)
        layout.addWidget(self.caption)
        layout.addStretch(1)
        self.value.setAccessibleName(caption)

    def set(self, value: str, caption: str | None = None, warn: bool = False) -> None:
        self.value.setText(value)
        if caption is not None:
            self.caption.setText(caption)
        self.setProperty("tone", "warn" if warn else "")
        refresh(self)


class DashboardTab(_Tab):
    """Monthly records by pathway and consent basis, and the practice's key numbers."""

    def __init__(self, session: Session, parent: QWidget | None = None) -> None:
        super().__init__(session, parent)
        self.setObjectName("dashboard")
        self.data: Dashboard | None = None
        top = QHBoxLayout()
        top.addWidget(_hint("The practice's safeguarding decisions over time."), 1)
        self.date_from = date_filter("dashboard.date_from", "Records created from")
        self.date_to = date_filter("dashboard.date_to", "Records created up to")
        now = today(session.clock)
        start = (
            date(now.year - 1, now.month, 1)
            if now.month == 12
            else date(now.year - 1, now.month + 1, 1)
        )
        self.date_from.setDate(QDate(start.year, start.month, start.day))
        top.addWidget(QLabel("From"))
        top.addWidget(self.date_from)
        top.addWidget(QLabel("to"))
        top.addWidget(self.date_to)
        self.update_button = QPushButton("&Update")
        self.update_button.setObjectName("dashboard.refresh")
        self.update_button.clicked.connect(self.reload)
        top.addWidget(self.update_button)
        self.layout_.addLayout(top)
        self.tasks = TaskBar("dashboard.task", self)
        self.layout_.addWidget(self.tasks)
        self.error = _message("dashboard.error")
        self.layout_.addWidget(self.error)

        tiles = QGridLayout()
        tiles.setHorizontalSpacing(10)
        self.tiles = {
            "completed": _Tile("completed", "completed assessments"),
            "shared": _Tile("shared", "shared (letter required)"),
            "shared_without_consent": _Tile("shared_without_consent", "shared without consent"),
            "median_send": _Tile("median_send", "median time from completion to sending"),
            "median_ack": _Tile("median_ack", "median time from sending to acknowledgement"),
            "overdue": _Tile("overdue", "overdue"),
        }
        for column, tile in enumerate(self.tiles.values()):
            tiles.addWidget(tile, 0, column)
            tiles.setColumnStretch(column, 1)
        self.layout_.addLayout(tiles)

        charts = QHBoxLayout()
        charts.setSpacing(12)
        self.pathway_chart = StackedBarChart(
            "Records per month by pathway",
            [Series(p, pathway_label(p), PATHWAY_COLOURS[p]) for p in PATHWAYS]
            + [Series("unknown", "Not recorded", PATHWAY_COLOURS["unknown"])],
        )
        self.pathway_chart.setObjectName("dashboard.chart_pathway")
        self.consent_chart = StackedBarChart(
            "Records per month by consent basis",
            [Series(c, CONSENT_LABELS[c], CONSENT_COLOURS[c]) for c in CONSENT_BASES]
            + [Series("unknown", "Not recorded", CONSENT_COLOURS["unknown"])],
        )
        self.consent_chart.setObjectName("dashboard.chart_consent")
        for chart in (self.pathway_chart, self.consent_chart):
            frame = QFrame()
            frame.setProperty("chart", True)
            inner = QVBoxLayout(frame)
            inner.setContentsMargins(4, 4, 4, 4)
            inner.addWidget(chart)
            charts.addWidget(frame, 1)
        self.layout_.addLayout(charts, 1)
        self.note = _hint(
            "Bars count completed assessments by the month they were completed; the dates above "
            "choose records by the day they were started. Hover over a bar for its numbers."
        )
        self.layout_.addWidget(self.note)

    def reload(self) -> None:
        super().reload()
        self.error.hide()
        date_from, date_to = date_value(self.date_from), date_value(self.date_to)
        self.tasks.start(
            self.session,
            "Counting the practice's records…",
            lambda worker, _ctx: worker.dashboard(date_from, date_to),
            lambda data: self.show_data(data, date_from, date_to),
            self._failed,
        )

    def _failed(self, exc: Exception) -> None:
        if not isinstance(exc, StoreError):
            raise exc
        self.data = None
        _set_message(self.error, str(exc), "error")
        for tile in self.tiles.values():
            tile.set("—")
        self.pathway_chart.set_data([], {})
        self.consent_chart.set_data([], {})

    def show_data(self, data: Dashboard, date_from: str | None, date_to: str | None) -> None:
        """Show freshly computed numbers (on the GUI thread)."""
        self.data = data
        t = self.tiles
        t["completed"].set(_grouped(data.completed))
        share = f" ({round(100 * data.shared / data.completed)}%)" if data.completed else ""
        t["shared"].set(_grouped(data.shared), f"shared (letter required){share}")
        t["shared_without_consent"].set(_grouped(data.shared_without_consent))
        t["median_send"].set(fmt_hours(data.median_hours_to_send))
        t["median_ack"].set(fmt_hours(data.median_hours_to_acknowledge))
        total_overdue = sum(data.overdue.values())
        words = ", ".join(
            f"{n} {OVERDUE_WORDS.get(s, (s, s))[n != 1]}"
            for s, n in sorted(data.overdue.items())
            if n
        )
        t["overdue"].set(
            str(total_overdue),
            f"overdue: {words}" if words else "overdue: none",
            warn=total_overdue > 0,
        )
        months = list(data.months)
        if months:
            first = min(months[0], date_from[:7]) if date_from else months[0]
            last = max(
                months[-1], date_to[:7] if date_to else today(self.session.clock).isoformat()[:7]
            )
            months = month_range(first, last)
        self.pathway_chart.set_data(months, data.by_pathway)
        self.consent_chart.set_data(months, data.by_consent)


# ----- audit --------------------------------------------------------------------------------------------------------
class AuditTableModel(PagedTableModel):
    """Audit events (newest first) matching an :class:`AuditFilter`, a page at a time."""

    headers = ("#", "When", "User", "Action", "Record", "Details")

    def __init__(
        self, session: Session, page_size: int = 500, parent: QObject | None = None
    ) -> None:
        super().__init__(page_size, parent)
        self.session = session
        self.filter = AuditFilter()
        self.broken_at: int | None = None  # set after a failed chain check: that row is marked
        self._bold = QFont()
        self._bold.setBold(True)

    def set_filter(self, flt: AuditFilter) -> None:
        self.filter = flt
        self.reload()

    def fetch_page(self, limit: int, offset: int) -> list[AuditEvent]:
        return self.session.audit_log(self.filter, limit, offset)

    def cell(self, event: AuditEvent, column: int, role: int) -> Any:
        if role == Qt.ItemDataRole.DisplayRole:
            return (
                str(event.seq),
                fmt_when(event.at, seconds=True),
                event.actor,
                action_label(event.action),
                event.record_id or "",
                audit_details(event.details),
            )[column]
        broken = event.seq == self.broken_at
        if role == Qt.ItemDataRole.ForegroundRole and (
            broken or event.action in ("permission_denied", "unlock_failed")
        ):
            return QColor(RED)
        if role == Qt.ItemDataRole.FontRole and broken:
            return self._bold
        if role == Qt.ItemDataRole.ToolTipRole and broken:
            return "The audit chain breaks at this event: it is not as it was written."
        if role == Qt.ItemDataRole.ToolTipRole and column == 5:
            return audit_details(event.details) or None
        if role == Qt.ItemDataRole.TextAlignmentRole and column == 0:
            return int(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
        return None


def chain_result_text(report: ChainReport) -> str:
    """'Intact: 12 408 events, last at 25 Nov 2026, 10:00.' or 'Broken at event 5 021: …'."""
    if report.ok:
        when = f", last at {fmt_when(report.last_at, seconds=True)}" if report.last_at else ""
        return f"Intact: {_grouped(report.events)} events{when}."
    return f"Broken at event {_grouped(report.broken_at or 0)}: {report.problem}"


def _editable_combo(name: str, accessible: str, first: str) -> QComboBox:
    combo = QComboBox()
    combo.setObjectName(name)
    combo.setAccessibleName(accessible)
    combo.setEditable(True)
    combo.setInsertPolicy(QComboBox.InsertPolicy.NoInsert)
    combo.addItem(first)
    combo.setMinimumWidth(150)
    return combo


def _combo_value(combo: QComboBox) -> str | None:
    text = combo.currentText().strip()
    return None if not text or text == combo.itemText(0) else text


class AuditTab(_Tab):
    """The audit log with filters, chain verification and the PDF report."""

    def __init__(self, session: Session, parent: QWidget | None = None) -> None:
        super().__init__(session, parent)
        self.setObjectName("audit")
        top = QHBoxLayout()
        top.addWidget(
            _hint(
                "Every unlock, view, change, letter, export and refusal, in a hash-chained log that "
                "shows any alteration."
            ),
            1,
        )
        self.verify_button = QPushButton("&Verify chain")
        self.verify_button.setObjectName("audit.verify")
        self.verify_button.setToolTip(
            "Check that no audit event has been altered, removed or reordered"
        )
        self.verify_button.clicked.connect(self.verify)
        self.export_button = QPushButton("Export audit &report (PDF)…")
        self.export_button.setObjectName("audit.export")
        self.export_button.clicked.connect(self.export_pdf)
        top.addWidget(self.verify_button)
        top.addWidget(self.export_button)
        self.layout_.addLayout(top)
        self.tasks = TaskBar("audit.task", self)
        self.layout_.addWidget(self.tasks)
        self.chain = _message("audit.chain", "info")
        self.chain.setText(
            "Not yet checked in this session: press Verify chain to confirm that no event has "
            "been altered, removed or reordered."
        )
        self.chain.show()
        self.chain_advice = _hint("")
        self.chain_advice.setObjectName("audit.chain_advice")
        self.chain_advice.hide()
        self.layout_.addWidget(self.chain)
        self.layout_.addWidget(self.chain_advice)

        filters = QHBoxLayout()
        filters.setSpacing(8)
        self.actor = _editable_combo("audit.actor", "User", "All users")
        self.action = _editable_combo("audit.action", "Action", "All actions")
        self.record = QLineEdit()
        self.record.setObjectName("audit.record")
        self.record.setAccessibleName("Record reference")
        self.record.setPlaceholderText("Record, e.g. SG-7K3F-9QX2")
        self.record.setClearButtonEnabled(True)
        self.date_from = date_filter("audit.date_from", "From")
        self.date_to = date_filter("audit.date_to", "To")
        for label, widget in (
            ("User", self.actor),
            ("Action", self.action),
            ("Record", self.record),
            ("From", self.date_from),
            ("To", self.date_to),
        ):
            filters.addWidget(QLabel(label))
            filters.addWidget(widget)
        filters.addStretch(1)
        self.layout_.addLayout(filters)
        self.error = _message("audit.error")
        self.layout_.addWidget(self.error)
        self.model = AuditTableModel(session, parent=self)
        self.table = QTableView()
        self.table.setObjectName("audit.table")
        self.table.setAccessibleName("Audit events")
        self.table.setModel(self.model)
        setup_table(self.table, stretch=5)
        metrics = self.table.fontMetrics()
        for column, sample in enumerate(
            ("00000", "30 Sep 2026, 10:00:00", "drsmith.long", "Chronology viewed", "SG-XXXX-XXXX")
        ):
            self.table.horizontalHeader().resizeSection(
                column, metrics.horizontalAdvance(sample) + 22
            )
        self.layout_.addWidget(self.table, 1)
        self.count = _hint("")
        self.count.setObjectName("audit.count")
        self.layout_.addWidget(self.count)
        self.model.failed.connect(lambda message: _set_message(self.error, message, "error"))
        self.model.reloaded.connect(self._counted)
        self.model.rowsInserted.connect(self._counted)

        self._debounce = QTimer(self)
        self._debounce.setSingleShot(True)
        self._debounce.setInterval(400)
        self._debounce.timeout.connect(self.reload)
        for combo in (self.actor, self.action):
            combo.currentTextChanged.connect(lambda _t: self._debounce.start())
        self.record.textChanged.connect(lambda _t: self._debounce.start())
        for edit in (self.date_from, self.date_to):
            edit.dateChanged.connect(lambda _d: self.reload())
        try:
            users = session.list_users()
        except StoreError:
            users = []
        self._known: dict[QComboBox, set[str]] = {self.actor: set(), self.action: set()}
        self._learn(self.actor, (u.username for u in users))

    def current_filter(self) -> AuditFilter:
        record = self.record.text().strip().upper()
        return AuditFilter(
            actor=_combo_value(self.actor),
            action=self._action_token(),
            record_id=record or None,
            date_from=date_value(self.date_from),
            date_to=date_value(self.date_to),
        )

    def _action_token(self) -> str | None:
        value = _combo_value(self.action)
        if value is None:
            return None
        index = self.action.findText(value)
        data = self.action.itemData(index) if index >= 0 else None
        return str(data) if data else value.strip().lower().replace(" ", "_")

    def reload(self) -> None:
        super().reload()
        self._debounce.stop()
        self.error.hide()
        with busy_cursor():
            self.model.set_filter(self.current_filter())

    def _counted(self, *_args: Any) -> None:
        n = self.model.loaded
        more = " — more load as you scroll" if self.model.canFetchMore() else ""
        self.count.setText(f"{_grouped(n)} event{'s' if n != 1 else ''} shown, newest first{more}.")
        self._learn(self.actor, (self.model.item(i).actor for i in range(n)))
        self._learn_actions(self.model.item(i).action for i in range(n))

    def _learn(self, combo: QComboBox, values: Any) -> None:
        new = sorted(set(values) - self._known[combo])
        if not new:
            return
        self._known[combo].update(new)
        combo.blockSignals(True)
        text = combo.currentText()
        for value in new:
            combo.addItem(value)
        combo.setEditText(text)
        combo.blockSignals(False)

    def _learn_actions(self, actions: Any) -> None:
        new = sorted(set(actions) - self._known[self.action])
        if not new:
            return
        self._known[self.action].update(new)
        self.action.blockSignals(True)
        text = self.action.currentText()
        for token in new:
            self.action.addItem(action_label(token), token)
        self.action.setEditText(text)
        self.action.blockSignals(False)

    def verify(self) -> None:
        """Verify the chain in a worker thread (a million events take seconds)."""

        def failed(exc: Exception) -> None:
            if not isinstance(exc, StoreError):
                raise exc
            dialogs.error(self, "Verify the audit log", str(exc))

        self.tasks.start(
            self.session,
            "Verifying every audit event…",
            lambda worker, ctx: worker.verify_audit(progress=ctx.progress),
            self.show_report,
            failed,
        )

    def show_report(self, report: ChainReport) -> None:
        """Show a verify result (on the GUI thread)."""
        _set_message(self.chain, chain_result_text(report), "success" if report.ok else "error")
        self.model.broken_at = report.broken_at
        if report.ok:
            self.chain_advice.setText(
                "Every event since the vault was created is present, in order and unaltered."
            )
        else:
            self.chain_advice.setText(
                "Someone has altered, removed or reordered audit events outside gpshare. Keep the vault as it "
                "is, export this report, and tell the practice administrator: a backup made before the break "
                "shows the original events."
            )
        self.chain_advice.show()
        self.reload()

    def export_pdf(self) -> Path | None:
        """Ask where to save, then write the report in a worker thread."""
        stamp = self.session.clock.now().strftime("%Y-%m-%d")
        target = dialogs.get_save_file(
            self,
            "Export audit report (PDF)",
            Path.home() / f"gpshare-audit-{stamp}.pdf",
            "PDF files (*.pdf)",
        )
        if target is None:
            return None
        if target.suffix.lower() != ".pdf":
            target = target.with_name(target.name + ".pdf")
        flt = self.current_filter()

        def failed(exc: Exception) -> None:
            if not isinstance(exc, (StoreError, OSError)):
                raise exc
            dialogs.error(
                self,
                "Export audit report",
                str(exc)
                if isinstance(exc, StoreError)
                else f"The file could not be written ({exc.strerror or exc}). Choose another folder.",
            )

        def saved(events: int) -> None:
            dialogs.information(
                self,
                "Export audit report",
                f"The audit report ({_grouped(events)} events, with the chain check) was saved to {target}.",
            )
            self.reload()

        self.tasks.start(
            self.session,
            "Writing the audit report…",
            lambda worker, _ctx: worker.export_audit_pdf(target, flt),
            saved,
            failed,
        )
        return target


# ----- the workspace --------------------------------------------------------------------------------------------------
class LeadWorkspace(QWidget):
    """The safeguarding lead's page: tabs, with a record's detail shown in place when opened."""

    NEEDS, RECORDS, CHRONOLOGY, DASHBOARD, AUDIT = range(5)

    def __init__(
        self,
        session: Session,
        window: Any = None,
        parent: QWidget | None = None,
        *,
        page_size: int | None = None,
    ) -> None:
        super().__init__(parent)
        self.setObjectName("leadWorkspace")
        self.setProperty("page", True)
        self.setStyleSheet(WORKSPACE_QSS)
        self.session = session
        self.window_ = window
        self.detail: RecordDetailView | None = None

        self.stack = QStackedWidget()
        self.stack.setObjectName("lead.stack")
        outer = QVBoxLayout(self)
        outer.setContentsMargins(0, 0, 0, 0)
        outer.addWidget(self.stack)

        self.home = QWidget()
        home = QVBoxLayout(self.home)
        home.setContentsMargins(20, 16, 20, 12)
        home.setSpacing(8)
        head = QHBoxLayout()
        title = _heading("Safeguarding lead workspace", "h1")
        head.addWidget(title)
        head.addStretch(1)
        marking = QLabel("OFFICIAL — SENSITIVE")
        marking.setProperty("role", "marking")
        head.addWidget(marking)
        home.addLayout(head)
        home.addWidget(
            _hint(
                "Every decision in the practice, what needs chasing, each child's history and "
                "the audit trail. Opening a record is recorded in its access log."
            )
        )
        self.tabs = QTabWidget()
        self.tabs.setObjectName("lead.tabs")
        self.needs = NeedsActionTab(session)
        self.records = RecordsView(session, page_size=page_size or PAGE_SIZE)
        records_page = QWidget()
        records_layout = QVBoxLayout(records_page)
        records_layout.setContentsMargins(16, 14, 16, 14)
        records_layout.addWidget(self.records)
        self.chronology = ChronologyTab(session)
        self.dashboard = DashboardTab(session)
        self.audit = AuditTab(session)
        self.tabs.addTab(self.needs, "&Needs action")
        self.tabs.addTab(records_page, "&Records")
        self.tabs.addTab(self.chronology, "C&hild chronology")
        dashboard_scroll = QScrollArea()
        dashboard_scroll.setWidgetResizable(True)
        dashboard_scroll.setWidget(self.dashboard)
        self.tabs.addTab(dashboard_scroll, "&Dashboard")
        self.tabs.addTab(self.audit, "A&udit")
        home.addWidget(self.tabs, 1)
        self.stack.addWidget(self.home)

        self.tabs.currentChanged.connect(self._tab_changed)
        self.needs.record_opened.connect(self.open_record)
        self.records.record_opened.connect(self.open_record)
        self.chronology.record_opened.connect(self.open_record)
        self.needs.current_record_changed.connect(self.chronology.set_record)
        self.records.current_record_changed.connect(self.chronology.set_record)
        self.needs.reload()

    def _tab_changed(self, index: int) -> None:
        if index == self.RECORDS:
            self.records.ensure_loaded()
        elif index == self.CHRONOLOGY:
            self.chronology.ensure_loaded()
        elif index == self.DASHBOARD:
            self.dashboard.ensure_loaded()
        elif index == self.AUDIT:
            self.audit.ensure_loaded()

    def show_tab(self, index: int) -> None:
        self.show_home()
        self.tabs.setCurrentIndex(index)
        self._tab_changed(index)

    def open_record(self, record_id: str) -> RecordDetailView | None:
        """Show the record's detail (the audited view); a refusal or failure is shown as a message."""
        try:
            with busy_cursor():
                detail = RecordDetailView(self.session, record_id, self)
        except StoreError as exc:
            dialogs.error(self, "Open record", str(exc))
            return None
        self._drop_detail()
        self.detail = detail
        detail.back_requested.connect(self.show_home)
        detail.changed.connect(self._record_changed)
        detail.chronology_requested.connect(self.show_chronology)
        self.stack.addWidget(detail)
        self.stack.setCurrentWidget(detail)
        self.chronology.set_record(record_id)
        detail.tabs.setFocus(Qt.FocusReason.OtherFocusReason)
        return detail

    def _drop_detail(self) -> None:
        if self.detail is not None:
            self.stack.removeWidget(self.detail)
            self.detail.deleteLater()
            self.detail = None

    def show_home(self) -> None:
        self.stack.setCurrentWidget(self.home)
        self._drop_detail()
        current = self.tabs.currentWidget()
        if current is not None:
            current.setFocus(Qt.FocusReason.OtherFocusReason)

    def show_chronology(self, record_id: str) -> None:
        self.chronology.set_record(record_id)
        self.show_tab(self.CHRONOLOGY)

    def _record_changed(self, record_id: str) -> None:
        """A follow-up, addendum or review was added: refresh what shows it."""
        self.needs.reload()
        self.records.refresh_record(record_id)
        self.dashboard.invalidate()
        self.chronology.invalidate()


def install(window: Any) -> None:
    """Register the lead's workspace page ("lead_workspace") with the main window."""
    window.register_page("lead_workspace", _workspace_page)


def _workspace_page(session: Session, window: Any) -> LeadWorkspace:
    """The workspace, with its Needs action count shown on the tab and the navigation entry."""
    workspace = LeadWorkspace(session, window)

    def show_count(count: int) -> None:
        workspace.tabs.setTabText(
            workspace.tabs.indexOf(workspace.needs),
            f"&Needs action ({count})" if count else "&Needs action",
        )
        if hasattr(window, "set_nav_badge"):
            window.set_nav_badge("lead_workspace", count)

    workspace.needs.count_changed.connect(show_count)
    show_count(len(workspace.needs.items))
    return workspace
