"""Lists of records for the safeguarding lead: a paged table model, a filter bar and the view.

Designed for 100 000 records: rows are fetched a page at a time (``canFetchMore`` /
``fetchMore`` → ``session.views.records_page(filter, limit, offset)``: the rows and their
referral states in one call), every filter — including the
full-text search — is passed to the service as a :class:`RecordFilter` so it runs in SQL, and
referral state is computed only for the rows fetched. Rows keep the service's order (most
recently changed first); there is no client-side sorting, which would only sort the loaded
page and mislead.

Also home to small helpers the other lead screens share (time formatting, labels, the
"Enter or double-click opens" behaviour and a paged model base class).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, replace
from datetime import date, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from PySide6.QtCore import (
    QDate,
    QEvent,
    QModelIndex,
    QObject,
    QPersistentModelIndex,
    Qt,
    QTimer,
    Signal,
)
from PySide6.QtGui import QColor, QFont, QFontMetrics, QKeyEvent, QKeySequence, QShortcut
from PySide6.QtWidgets import (
    QAbstractItemView,
    QCheckBox,
    QComboBox,
    QDateEdit,
    QDialog,
    QDialogButtonBox,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QLineEdit,
    QPushButton,
    QTableView,
    QVBoxLayout,
    QWidget,
)

from gpshare.clock import today
from gpshare.dashboard import CONSENT_BASES, PATHWAYS
from gpshare.errors import StoreError
from gpshare.filters import RecordFilter
from gpshare.nhs_number import format_334
from gpshare.services.search_index import IndexStatus
from gpshare.ui import dialogs
from gpshare.ui.style import GREEN, RED, SECONDARY_TEXT
from gpshare.ui.table_model import ItemTableModel
from gpshare.ui.unlock import busy_cursor
from gpshare.ui.widgets import fmt_date, fmt_when, setup_table, to_uk
from gpshare.ui.wizard.pages import PATHWAY_LABELS
from gpshare.ui.worker import TaskBar

if TYPE_CHECKING:
    from gpshare.followup import ReferralState
    from gpshare.records import Record
    from gpshare.services import Session

log = logging.getLogger(__name__)

__all__ = [
    "CONSENT_LABELS",
    "PagedTableModel",
    "RecordsFilterBar",
    "RecordsTableModel",
    "RecordsView",
    "consent_label",
    "connect_open",
    "fmt_when",
    "pathway_label",
]

PAGE_SIZE = 200
SEARCH_DEBOUNCE_MS = 300
ANY_DATE = QDate(2000, 1, 1)  # the minimum of a date filter, shown as "Any date"
DASH = "—"

# Labels for filters and chart legends; the records table uses the compact ones below, with
# the full wording in its tooltips, so eight columns fit a 1280-pixel window.
CONSENT_LABELS = {
    "consent_given": "Consent given",
    "shared_without_consent_refused": "Without consent — refused",
    "shared_without_consent_not_sought": "Without consent — not sought",
    "not_applicable": "Not applicable",
}
CONSENT_SHORT = {
    "consent_given": "Given",
    "shared_without_consent_refused": "Refused",
    "shared_without_consent_not_sought": "Not sought",
    "not_applicable": "N/A",
}
PATHWAY_SHORT = {
    "emergency": "Emergency",
    "legal_duty": "By law",
    "referral": "Referral",
    "limited_sharing": "Limited",
    "early_help": "Early help",
    "monitor": "Monitor",
}
STATUS_SHORT = {
    "completed": "Not yet sent",
    "sent": "Awaiting acknowledgement",
    "acknowledged": "Awaiting decision",
    "outcome_recorded": "Outcome recorded",
    "closed": "Closed",
    "monitor": "Monitoring",
}


# ----- formatting ------------------------------------------------------------------------------------
def fmt_day(value: date | str | None) -> str:
    """'14 Mar 2024' (a datetime is shown as its UK calendar day)."""
    if isinstance(value, str) and len(value) > 10:
        try:
            return fmt_date(to_uk(datetime.fromisoformat(value)).date())
        except ValueError:
            return value
    return fmt_date(value) if value else ""


def nhs_text(nhs: str | None) -> str:
    return format_334(nhs) if nhs else "not known"


def pathway_label(token: str | None) -> str:
    return PATHWAY_LABELS.get(token or "", token or DASH)


def consent_label(token: str | None) -> str:
    return CONSENT_LABELS.get(token or "", token or DASH)


def due_text(state: ReferralState | None) -> str:
    """'1 Dec 2026 — overdue' (words as well as colour, for colour-blind readers)."""
    if state is None or state.next_due is None:
        return DASH
    text = fmt_day(state.next_due)
    return f"{text} — overdue" if state.overdue else text


# ----- behaviour shared by the lead's tables -------------------------------------------------------
class _EnterOpens(QObject):
    """Event filter: Enter/Return on an item view opens its current row."""

    def __init__(self, view: QAbstractItemView, callback: Callable[[QModelIndex], None]) -> None:
        super().__init__(view)
        self._view = view
        self._callback = callback

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:  # noqa: N802 - Qt API
        if (
            event.type() == QEvent.Type.KeyPress
            and isinstance(event, QKeyEvent)
            and event.key() in (Qt.Key.Key_Return, Qt.Key.Key_Enter)
            and self._view.currentIndex().isValid()
        ):
            self._callback(self._view.currentIndex())
            return True
        return False


def connect_open(view: QAbstractItemView, callback: Callable[[QModelIndex], None]) -> None:
    """Enter/Return or a double-click on a row calls `callback(index)` (once per gesture)."""
    view.installEventFilter(_EnterOpens(view, callback))
    view.doubleClicked.connect(callback)


class PagedTableModel(ItemTableModel):
    """A read-only table filled a page at a time from a service call.

    Subclasses give :attr:`headers`, :meth:`fetch_page` (items for ``limit``/``offset``) and
    :meth:`cell` (what one column of one item shows for a role). A service error stops the
    fetching and is reported through :attr:`failed` with its plain message.
    """

    headers: tuple[str, ...] = ()
    failed = Signal(str)
    reloaded = Signal()

    def __init__(self, page_size: int = PAGE_SIZE, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.page_size = page_size
        self._exhausted = True
        self.error: str | None = None

    # -- to override --
    def fetch_page(self, limit: int, offset: int) -> list[Any]:
        raise NotImplementedError

    def cell(self, item: Any, column: int, role: int) -> Any:
        raise NotImplementedError

    def before_reload(self) -> None:
        """Work done once per reload (counting, resolving filters); may raise StoreError."""

    # -- paging --
    def reload(self) -> None:
        """Drop every row and fetch the first page again (filters are applied in the service)."""
        self.beginResetModel()
        self._items = []
        self._exhausted = False
        self.error = None
        try:
            self.before_reload()
            self._items = self._fetch()
        except StoreError as exc:
            self._fail(exc)
        self.endResetModel()
        self.reloaded.emit()

    def _fetch(self) -> list[Any]:
        items = self.fetch_page(self.page_size, len(self._items))
        if len(items) < self.page_size:
            self._exhausted = True
        return items

    def _fail(self, exc: StoreError) -> None:
        self._exhausted = True
        self.error = str(exc)
        self.failed.emit(self.error)

    def canFetchMore(self, parent: QModelIndex | QPersistentModelIndex = QModelIndex()) -> bool:  # noqa: N802, B008
        return not parent.isValid() and not self._exhausted

    def fetchMore(self, parent: QModelIndex | QPersistentModelIndex = QModelIndex()) -> None:  # noqa: N802, B008
        if parent.isValid() or self._exhausted:
            return
        try:
            items = self._fetch()
        except StoreError as exc:
            self._fail(exc)
            return
        if items:
            start = len(self._items)
            self.beginInsertRows(QModelIndex(), start, start + len(items) - 1)
            self._items.extend(items)
            self.endInsertRows()


# ----- the records model -------------------------------------------------------------------------------
@dataclass(frozen=True)
class RecordRow:
    record: Record
    state: ReferralState | None


class RecordsTableModel(PagedTableModel):
    """Records matching a :class:`RecordFilter`, a page at a time, with their referral state."""

    headers = (
        "Date",
        "Child",
        "NHS number",
        "Clinician",
        "Pathway",
        "Consent basis",
        "Status",
        "Next action due",
    )
    DATE, CHILD, NHS, CLINICIAN, PATHWAY, CONSENT, STATUS, DUE = range(8)
    RecordIdRole = Qt.ItemDataRole.UserRole
    counted = Signal(int, bool)  # rows loaded, whether every matching row is loaded

    def __init__(
        self, session: Session, page_size: int = PAGE_SIZE, parent: QObject | None = None
    ) -> None:
        super().__init__(page_size, parent)
        self.session = session
        self.filter = RecordFilter()
        self.overdue_only = False
        self._effective = RecordFilter()
        self._bold = QFont()
        self._bold.setBold(True)
        self.rowsInserted.connect(
            lambda *_: self.counted.emit(self.loaded, not self.canFetchMore())
        )
        self.reloaded.connect(lambda: self.counted.emit(self.loaded, not self.canFetchMore()))

    def set_filter(self, flt: RecordFilter, overdue_only: bool = False) -> None:
        """Show the records matching `flt` (overdue only: those the lead must chase now)."""
        self.filter = flt
        self.overdue_only = overdue_only
        self.reload()

    @property
    def effective_filter(self) -> RecordFilter:
        """The filter actually sent to the service (overdue resolved to record ids)."""
        return self._effective

    def before_reload(self) -> None:
        # No count here: on 100 000 records a count costs more than the page itself, so the
        # list says "more load as you scroll" and the export dialog counts when asked.
        flt = self.filter
        if self.overdue_only:
            # The stored referral states answer "overdue" in SQL (no list of ids to pass).
            flt = replace(flt, overdue_on=today(self.session.clock).isoformat())
        self._effective = flt

    def count(self) -> int:
        """How many records match the current filter (a query of its own)."""
        return (
            self.loaded
            if not self.canFetchMore()
            else self.session.assessments.count_records(self._effective)
        )

    def fetch_page(self, limit: int, offset: int) -> list[RecordRow]:
        # Light records: the table shows no answers, and parsing them cost a third of a search.
        page = self.session.views.records_page(self._effective, limit, offset, light=True)
        return [RecordRow(r, page.states.get(r.id)) for r in page.records]

    def refresh_record(self, record_id: str) -> None:
        """Re-read one row (after a follow-up or review) without reloading the list."""
        for row, item in enumerate(self._items):
            if item.record.id != record_id:
                continue
            try:
                page = self.session.views.records_page(
                    RecordFilter(record_ids=(record_id,)), 1, 0, light=True
                )
                if not page.records:
                    return
                self._items[row] = RecordRow(page.records[0], page.states.get(record_id))
            except StoreError as exc:
                self._fail(exc)
                return
            self.dataChanged.emit(self.index(row, 0), self.index(row, len(self.headers) - 1))
            return

    def record_id(self, row: int) -> str | None:
        item = self.item(row)
        return item.record.id if item else None

    def cell(self, item: RecordRow, column: int, role: int) -> Any:
        record, state = item.record, item.state
        overdue = bool(state and state.overdue)
        if role == Qt.ItemDataRole.DisplayRole:
            return self._text(record, state, column)
        if role == self.RecordIdRole:
            return record.id
        if role == Qt.ItemDataRole.ForegroundRole:
            if column == self.DUE and overdue:
                return QColor(RED)
            if column == self.STATUS and state and state.status in ("closed", "outcome_recorded"):
                return QColor(GREEN)
            if record.is_draft and column in (self.STATUS, self.PATHWAY, self.CONSENT, self.DUE):
                return QColor(SECONDARY_TEXT)
            return None
        if role == Qt.ItemDataRole.FontRole and column == self.DUE and overdue:
            return self._bold
        if role == Qt.ItemDataRole.ToolTipRole:
            if column in (self.STATUS, self.DUE) and state:
                nxt = (
                    f"\nNext: {state.next_action}, due {due_text(state)}"
                    if state.next_action
                    else ""
                )
                return state.status_label + nxt
            if column == self.DATE:
                done = f" · completed {fmt_when(record.completed)}" if record.completed else ""
                return f"Record {record.id} · started {fmt_when(record.created)}{done}"
            if column in (self.PATHWAY, self.CONSENT) and not record.is_draft:
                return (
                    pathway_label(record.pathway)
                    if column == self.PATHWAY
                    else consent_label(record.consent_basis)
                )
            if column == self.CHILD and record.child.date_of_birth:
                return f"Born {fmt_day(record.child.date_of_birth)}"
        if role == Qt.ItemDataRole.AccessibleTextRole:
            text = due_text(state) if column == self.DUE else self._text(record, state, column)
            return f"{self.headers[column]}: {text}"
        return None

    def _text(self, record: Record, state: ReferralState | None, column: int) -> str:
        if column == self.DATE:
            return fmt_day(record.completed or record.created)
        if column == self.CHILD:
            return record.child.display_name
        if column == self.NHS:
            return nhs_text(record.child.nhs_number)
        if column == self.CLINICIAN:
            return record.clinician_name or record.clinician
        if column == self.PATHWAY:
            return (
                PATHWAY_SHORT.get(record.pathway or "", record.pathway or DASH)
                if not record.is_draft
                else DASH
            )
        if column == self.CONSENT:
            return (
                CONSENT_SHORT.get(record.consent_basis or "", record.consent_basis or DASH)
                if not record.is_draft
                else DASH
            )
        if column == self.STATUS:
            if state is not None:
                return STATUS_SHORT.get(state.status, state.status_label)
            return "Draft" if record.is_draft else record.status.capitalize()
        if column == self.DUE:
            if state is not None and state.overdue and state.next_due is not None:
                return f"! {fmt_day(state.next_due)}"
            return due_text(state)
        return ""


# ----- the filter bar --------------------------------------------------------------------------------------
def _combo(name: str, accessible: str, items: Iterable[tuple[str, str | None]]) -> QComboBox:
    combo = QComboBox()
    combo.setObjectName(name)
    combo.setAccessibleName(accessible)
    for label, data in items:
        combo.addItem(label, data)
    combo.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToContents)
    return combo


def date_filter(name: str, accessible: str) -> QDateEdit:
    """A date box whose lowest value means "any date"."""
    edit = QDateEdit()
    edit.setObjectName(name)
    edit.setAccessibleName(accessible)
    edit.setCalendarPopup(True)
    edit.setDisplayFormat("d MMM yyyy")
    edit.setMinimumDate(ANY_DATE)
    edit.setSpecialValueText("Any date")
    edit.setDate(ANY_DATE)
    return edit


def date_value(edit: QDateEdit) -> str | None:
    """ISO date of a date filter, or None for "any date"."""
    chosen = edit.date()
    return None if chosen == ANY_DATE else chosen.toString("yyyy-MM-dd")


def _labelled(text: str, widget: QWidget) -> QWidget:
    box = QWidget()
    layout = QVBoxLayout(box)
    layout.setContentsMargins(0, 0, 0, 0)
    layout.setSpacing(2)
    label = QLabel(text)
    label.setProperty("role", "hint")
    label.setBuddy(widget)
    layout.addWidget(label)
    layout.addWidget(widget)
    return box


class RecordsFilterBar(QWidget):
    """Date range, clinician, pathway, consent basis, status, overdue only and full-text search.

    Emits :attr:`changed` straight away for lists and boxes, and after a short pause for the
    search text (so typing does not run a query per key).
    """

    changed = Signal()

    def __init__(self, session: Session, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("records.filters")
        self.session = session
        self._clinicians: dict[str, str] = {}

        self.search = QLineEdit()
        self.search.setObjectName("records.search")
        self.search.setAccessibleName("Search the records' text")
        self.search.setPlaceholderText("Search names and narratives…  (Ctrl+F)")
        self.search.setClearButtonEnabled(True)
        self.search.setMinimumWidth(260)
        self.date_from = date_filter("records.date_from", "Created from")
        self.date_to = date_filter("records.date_to", "Created up to")
        self.clinician = _combo("records.clinician", "Clinician", [("Any clinician", None)])
        self.pathway = _combo(
            "records.pathway",
            "Pathway",
            [("Any pathway", None)] + [(pathway_label(p), p) for p in PATHWAYS],
        )
        self.consent = _combo(
            "records.consent",
            "Consent basis",
            [("Any consent basis", None)] + [(consent_label(c), c) for c in CONSENT_BASES],
        )
        self.status = _combo(
            "records.status",
            "Record status",
            [("Any status", None), ("Completed", "completed"), ("Drafts", "draft")],
        )
        self.overdue = QCheckBox("&Overdue only")
        self.overdue.setObjectName("records.overdue")
        self.overdue.setToolTip(
            "Only records whose next action (acknowledgement, decision, review) is overdue"
        )
        self.clear_button = QPushButton("Clear filters")
        self.clear_button.setObjectName("records.clear")
        self.clear_button.clicked.connect(self.clear)

        top = QHBoxLayout()
        top.setSpacing(10)
        top.addWidget(_labelled("Search", self.search), 2)
        top.addWidget(_labelled("From", self.date_from))
        top.addWidget(_labelled("To", self.date_to))
        top.addWidget(_labelled("Clinician", self.clinician))
        second = QHBoxLayout()
        second.setSpacing(10)
        second.addWidget(_labelled("Pathway", self.pathway))
        second.addWidget(_labelled("Consent basis", self.consent))
        second.addWidget(_labelled("Status", self.status))
        second.addWidget(self.overdue, 0, Qt.AlignmentFlag.AlignBottom)
        second.addStretch(1)
        second.addWidget(self.clear_button, 0, Qt.AlignmentFlag.AlignBottom)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(6)
        layout.addLayout(top)
        layout.addLayout(second)

        self._debounce = QTimer(self)
        self._debounce.setSingleShot(True)
        self._debounce.setInterval(SEARCH_DEBOUNCE_MS)
        self._debounce.timeout.connect(self.changed)
        self.search.textChanged.connect(lambda _t: self._debounce.start())
        self.search.returnPressed.connect(self.flush)
        for combo in (self.clinician, self.pathway, self.consent, self.status):
            combo.currentIndexChanged.connect(lambda _i: self.changed.emit())
        for edit in (self.date_from, self.date_to):
            edit.dateChanged.connect(lambda _d: self.changed.emit())
        self.overdue.toggled.connect(lambda _c: self.changed.emit())

        try:
            users = self.session.users.list_users()
        except StoreError:
            users = []
        self.add_clinicians(
            (u.username, u.full_name) for u in users if u.role in ("clinician", "lead")
        )

    def flush(self) -> None:
        """Apply pending search text now (Enter in the search box)."""
        if self._debounce.isActive():
            self._debounce.stop()
            self.changed.emit()

    def add_clinicians(self, people: Iterable[tuple[str, str]]) -> None:
        """Offer these clinicians in the list (usernames seen in the records as they load).

        The services tell a lead only about themselves (``list_users``), so the list grows from
        the records fetched; the current choice is kept.
        """
        new = {u: n for u, n in people if u and u not in self._clinicians}
        if not new:
            return
        self._clinicians.update(new)
        current = self.clinician.currentData()
        self.clinician.blockSignals(True)
        self.clinician.clear()
        self.clinician.addItem("Any clinician", None)
        for username, name in sorted(self._clinicians.items(), key=lambda p: p[1].casefold()):
            self.clinician.addItem(
                f"{name} ({username})" if name != username else username, username
            )
        self.clinician.setCurrentIndex(max(0, self.clinician.findData(current)))
        self.clinician.blockSignals(False)

    def current(self) -> tuple[RecordFilter, bool]:
        """(filter for the service, overdue only)."""
        text = self.search.text().strip()
        flt = RecordFilter(
            clinician=self.clinician.currentData(),
            status=self.status.currentData(),
            pathway=self.pathway.currentData(),
            consent_basis=self.consent.currentData(),
            date_from=date_value(self.date_from),
            date_to=date_value(self.date_to),
            search=text or None,
        )
        return flt, self.overdue.isChecked()

    def describe(self) -> str:
        """The active filters in words (for the export dialog)."""
        parts = []
        flt, overdue = self.current()
        if flt.search:
            parts.append(f"text “{flt.search}”")
        if flt.date_from or flt.date_to:
            parts.append(
                f"created {fmt_day(flt.date_from) or 'any time'} to {fmt_day(flt.date_to) or 'now'}"
            )
        for combo, value in (
            (self.clinician, flt.clinician),
            (self.pathway, flt.pathway),
            (self.consent, flt.consent_basis),
            (self.status, flt.status),
        ):
            if value:
                parts.append(combo.currentText())
        if overdue:
            parts.append("overdue only")
        return "; ".join(parts) if parts else "no filters, so every record"

    def clear(self) -> None:
        widgets: Sequence[QWidget] = (
            self.search,
            self.date_from,
            self.date_to,
            self.clinician,
            self.pathway,
            self.consent,
            self.status,
            self.overdue,
        )
        for widget in widgets:
            widget.blockSignals(True)
        self.search.clear()
        self._debounce.stop()
        self.date_from.setDate(ANY_DATE)
        self.date_to.setDate(ANY_DATE)
        for combo in (self.clinician, self.pathway, self.consent, self.status):
            combo.setCurrentIndex(0)
        self.overdue.setChecked(False)
        for widget in widgets:
            widget.blockSignals(False)
        self.changed.emit()


# ----- export dialog ---------------------------------------------------------------------------------------
class ExportCsvDialog(QDialog):
    """Confirms what will be exported and whether free-text narratives go with it."""

    def __init__(self, matching: int, filters: str, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("export_csv")
        self.setWindowTitle("Export records (CSV)")
        layout = QVBoxLayout(self)
        layout.setSpacing(10)
        what = QLabel(
            f"<b>{matching:,}</b> {'record matches' if matching == 1 else 'records match'} the current "
            f"filter — {_escape(filters)}.<br>The CSV file lists child, NHS number, clinician, pathway, "
            "consent basis, decision and referral status."
        )
        what.setObjectName("export.summary")
        what.setWordWrap(True)
        layout.addWidget(what)
        self.summary = what
        self.narratives = QCheckBox(
            "Include free-text &narratives (concern, opinion, reasons, advice)"
        )
        self.narratives.setObjectName("export.narratives")
        layout.addWidget(self.narratives)
        note = QLabel(
            "The file is not encrypted. Save it only to a secure practice location and delete it "
            "when done. Narratives are clinical free text: include them only when they are needed. "
            "The export is recorded in the audit log."
        )
        note.setProperty("role", "info")
        note.setWordWrap(True)
        layout.addWidget(note)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Cancel)
        self.export_button = buttons.addButton(
            "&Choose file and export…", QDialogButtonBox.ButtonRole.AcceptRole
        )
        self.export_button.setObjectName("export.ok")
        self.export_button.setProperty("variant", "primary")
        self.export_button.setDefault(True)
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)
        layout.addWidget(buttons)
        self.resize(520, self.sizeHint().height())


def _escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


# ----- the view ---------------------------------------------------------------------------------------------
class RecordsView(QWidget):
    """Filter bar + the paged records table + export. Enter or double-click opens a record."""

    record_opened = Signal(str)  # record id; the receiver opens it (an audited view)
    current_record_changed = Signal(str)  # selection moved (nothing is opened or audited)

    def __init__(
        self,
        session: Session,
        parent: QWidget | None = None,
        *,
        page_size: int = PAGE_SIZE,
        show_export: bool = True,
    ) -> None:
        super().__init__(parent)
        self.setObjectName("recordsView")
        self.session = session
        self.filters = RecordsFilterBar(session, self)
        self.model = RecordsTableModel(session, page_size, self)
        self.table = QTableView(self)
        self.table.setObjectName("records.table")
        self.table.setAccessibleName("Records")
        self.table.setModel(self.model)
        setup_table(self.table, stretch=RecordsTableModel.CHILD)
        self._size_columns()
        connect_open(self.table, lambda index: self.open_row(index.row()))
        self.table.selectionModel().currentRowChanged.connect(self._current_changed)

        self.count_label = QLabel()
        self.count_label.setObjectName("records.count")
        self.count_label.setProperty("role", "hint")
        self.error_label = QLabel()
        self.error_label.setObjectName("records.error")
        self.error_label.setProperty("role", "error")
        self.error_label.setWordWrap(True)
        self.error_label.hide()
        self.open_button = QPushButton("&Open record")
        self.open_button.setObjectName("records.open")
        self.open_button.clicked.connect(lambda: self.open_row(self.table.currentIndex().row()))
        self.export_button = QPushButton("&Export CSV…")
        self.export_button.setObjectName("records.export")
        self.export_button.setToolTip(
            "Export the records matching the current filter as a CSV file"
        )
        self.export_button.clicked.connect(self.export_csv)
        self.export_button.setVisible(show_export)

        footer = QHBoxLayout()
        footer.addWidget(self.count_label, 1)
        footer.addWidget(self.open_button)
        footer.addWidget(self.export_button)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(8)
        layout.addWidget(self.filters)
        layout.addWidget(self.error_label)
        layout.addWidget(self.table, 1)
        # Vault version 2, leads: the search index (lead-index.db) is built or caught up in
        # the background; until it is ready the list says so and searches names only.
        self.index_label = QLabel()
        self.index_label.setObjectName("records.index")
        self.index_label.setProperty("role", "hint")
        self.index_label.setWordWrap(True)
        self.index_label.hide()
        layout.addWidget(self.index_label)
        self.index_task = TaskBar("records.indexTask", self)
        layout.addWidget(self.index_task)
        self._index_waited = False  # waited for the window's sign-in worker (below)
        self._index_poll = QTimer(self)
        self._index_poll.setSingleShot(True)
        self._index_poll.setInterval(500)
        self._index_poll.timeout.connect(self.check_index)
        self.tasks = TaskBar("records.task", self)
        layout.addWidget(self.tasks)
        layout.addLayout(footer)

        self.filters.changed.connect(self.apply_filters)
        self.model.failed.connect(self._show_error)
        self.model.counted.connect(self._counted)
        self.model.rowsInserted.connect(self._learn_clinicians)
        self.model.modelReset.connect(lambda: self._learn_clinicians())
        QShortcut(QKeySequence.StandardKey.Find, self, self.focus_search)
        QShortcut(QKeySequence(Qt.Key.Key_F5), self, self.apply_filters)
        self._loaded = False

    def _size_columns(self) -> None:
        """Widths from the font and typical values; the child's name takes what is left."""
        header = self.table.horizontalHeader()
        normal = self.table.fontMetrics()
        bold = QFont(self.table.font())
        bold.setBold(True)
        strong = QFontMetrics(bold)
        m = RecordsTableModel
        samples = {
            m.DATE: "30 Sep 2026",
            m.NHS: "943 476 5870",
            m.CLINICIAN: "Dr Alex Smith",
            m.PATHWAY: "Early help",
            m.CONSENT: "Not sought",
            m.STATUS: STATUS_SHORT["sent"],
            m.DUE: "! 30 Sep 2026",
        }
        for column, sample in samples.items():
            metrics = strong if column == m.DUE else normal
            width = (
                max(metrics.horizontalAdvance(sample), strong.horizontalAdvance(m.headers[column]))
                + 22
            )
            header.setSectionResizeMode(column, QHeaderView.ResizeMode.Interactive)
            header.resizeSection(column, width)
        header.setSectionResizeMode(m.CHILD, QHeaderView.ResizeMode.Stretch)
        header.setStretchLastSection(False)

    # -- loading --
    def ensure_loaded(self) -> None:
        """Fetch the first page the first time the list is shown."""
        if not self._loaded:
            self.apply_filters()

    def check_index(self) -> None:
        """A lead on vault version 2: say whether the search index is in use, and build or
        catch it up in the background when it is missing or behind."""
        if self.session.user.role != "lead" or self.index_task.busy:
            return
        status = self.session.search_index.status()
        if self._window_preparing_index():
            # The window's sign-in worker is on it: say so, and look again until it is done.
            # "n %" only once a rebuild reports its size (a catch-up has none).
            waiting = IndexStatus("rebuilding", status.done, status.total)
            self._show_index((waiting if status.total else IndexStatus("behind")).message())
            self._index_poll.start()
            return
        self._show_index(status.message())
        if self._index_waited and status.usable:
            self._index_waited = False
            self._index_ready()
            return
        if status.state not in ("missing", "behind"):
            return
        queued = Qt.ConnectionType.QueuedConnection
        task = self.index_task.start(
            self.session,
            "Building the search index…",
            lambda worker, ctx: worker.search_index.prepare(ctx.progress, ctx.cancelled),
            lambda _count: self._index_ready(),
            lambda exc: self._show_index(f"The search index could not be built: {exc}"),
        )
        task.signals.progress.connect(self._index_progress, queued)

    def _window_preparing_index(self) -> bool:
        """Is the main window's sign-in worker building or catching up the index?"""
        task_bar = getattr(self.window(), "index_task", None)
        busy = bool(task_bar is not None and task_bar is not self.index_task and task_bar.busy)
        self._index_waited = self._index_waited or busy
        return busy

    def _show_index(self, text: str) -> None:
        self.index_label.setText(text)
        self.index_label.setVisible(bool(text))

    def _index_progress(self, _task: Any, done: int, total: int) -> None:
        if self.index_task.busy and total:
            self._show_index(IndexStatus("rebuilding", done, total).message())

    def _index_ready(self) -> None:
        self._show_index("")
        self.apply_filters()

    def apply_filters(self) -> None:
        self._loaded = True
        self.check_index()
        self.error_label.hide()
        flt, overdue = self.filters.current()
        with busy_cursor():
            self.model.set_filter(flt, overdue)
        if self.model.rowCount() and not self.table.currentIndex().isValid():
            self.table.setCurrentIndex(self.model.index(0, 0))

    def refresh_record(self, record_id: str) -> None:
        self.model.refresh_record(record_id)

    def focus_search(self) -> None:
        self.filters.search.setFocus(Qt.FocusReason.ShortcutFocusReason)
        self.filters.search.selectAll()

    def _show_error(self, message: str) -> None:
        self.error_label.setText(message)
        self.error_label.show()

    def _counted(self, loaded: int, complete: bool) -> None:
        if self.model.error:
            self.count_label.setText("")
        elif loaded == 0:
            self.count_label.setText("No records match these filters.")
        elif complete:
            self.count_label.setText(
                f"{loaded:,} record{'s' if loaded != 1 else ''}, most recently changed first"
            )
        else:
            self.count_label.setText(
                f"Showing the {loaded:,} most recently changed records — more load as you scroll"
            )
        self.open_button.setEnabled(loaded > 0)
        self.export_button.setEnabled(loaded > 0)

    def _learn_clinicians(
        self, _parent: Any = None, first: int = 0, last: int | None = None
    ) -> None:
        end = self.model.loaded - 1 if last is None else last
        rows = (self.model.item(i) for i in range(first, end + 1))
        self.filters.add_clinicians(
            (row.record.clinician, row.record.clinician_name or row.record.clinician)
            for row in rows
            if row
        )

    def _current_changed(self, current: QModelIndex, _previous: QModelIndex) -> None:
        record_id = self.model.record_id(current.row()) if current.isValid() else None
        if record_id:
            self.current_record_changed.emit(record_id)

    # -- actions --
    def open_row(self, row: int) -> None:
        record_id = self.model.record_id(row)
        if record_id:
            self.record_opened.emit(record_id)

    def export_csv(self) -> Path | None:
        """Ask about narratives and where to save, then export the current filter's records."""
        flt = self.model.effective_filter
        try:
            with busy_cursor():
                matching = self.model.count()
        except StoreError as exc:
            dialogs.error(self, "Export records", str(exc))
            return None
        dialog = ExportCsvDialog(matching, self.filters.describe(), self)
        if dialogs.exec_dialog(dialog) != QDialog.DialogCode.Accepted:
            return None
        narratives = dialog.narratives.isChecked()
        stamp = self.session.clock.now().strftime("%Y-%m-%d")
        target = dialogs.get_save_file(
            self,
            "Export records (CSV)",
            Path.home() / f"gpshare-records-{stamp}.csv",
            "CSV files (*.csv)",
        )
        if target is None:
            return None
        if target.suffix.lower() != ".csv":
            target = target.with_name(target.name + ".csv")

        def failed(exc: Exception) -> None:
            if not isinstance(exc, (StoreError, OSError)):
                raise exc
            dialogs.error(
                self,
                "Export records",
                str(exc)
                if isinstance(exc, StoreError)
                else f"The file could not be written ({exc.strerror or exc}). Choose another folder.",
            )

        def exported(rows: int) -> None:
            dialogs.information(
                self,
                "Export records",
                f"{rows:,} record{'s' if rows != 1 else ''} exported to {target}"
                + (" with narratives." if narratives else " (without narratives)."),
            )

        # Written in a worker thread, page by page, with progress and Cancel.
        self.tasks.start(
            self.session,
            f"Exporting records to {target.name}…",
            lambda worker, ctx: worker.lead.export_records_csv(
                target,
                flt,
                include_narratives=narratives,
                progress=ctx.progress,
                cancelled=ctx.cancelled,
            ),
            exported,
            failed,
        )
        return target
