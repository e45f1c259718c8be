"""My records: the signed-in user's drafts and completed assessments.

A draft opens in the wizard on the step it was saved on (through the ``open_draft``
callback / ``draft_requested`` signal); a completed record opens read-only, shown with the
questions of the form version it was made with, its outcome, the consent statement and its
addenda, and an "Add addendum…" button.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from html import escape
from typing import TYPE_CHECKING, Any

from PySide6.QtCore import (
    QAbstractTableModel,
    QModelIndex,
    QPersistentModelIndex,
    QSortFilterProxyModel,
    Qt,
    QTimer,
    Signal,
)
from PySide6.QtWidgets import (
    QAbstractItemView,
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QFrame,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QLineEdit,
    QPlainTextEdit,
    QPushButton,
    QScrollArea,
    QStackedWidget,
    QTableView,
    QVBoxLayout,
    QWidget,
)

from gpshare.errors import StoreError
from gpshare.filters import RecordFilter
from gpshare.forms import Field, Form
from gpshare.nhs_number import format_334, normalise
from gpshare.records import Addendum, Record
from gpshare.ui import dialogs
from gpshare.ui.codes_panel import panel_for, raised_prompts
from gpshare.ui.followup_dialog import letter_status_text, record_sent
from gpshare.ui.widgets import fmt_date, plain_label, rich_label
from gpshare.ui.wizard.pages import PATHWAY_LABELS, SECONDARY, WIZARD_QSS
from gpshare.ui.wizard.summary import consent_statement, outcome_rows, rows_html

if TYPE_CHECKING:
    from gpshare.followup import ReferralState
    from gpshare.services import RecordView as RecordViewModel
    from gpshare.services import Session
    from gpshare.ui.app import MainWindow

log = logging.getLogger(__name__)

PAGE_SIZE = 200
STATUS_LABELS = {
    "draft": "Draft",
    "completed": "Completed",
    "sent": "Sent",
    "acknowledged": "Acknowledged",
    "outcome_recorded": "Outcome recorded",
    "closed": "Closed",
}
ADDENDUM_LIMIT = 5000
_REF = re.compile(r"^SG-[A-Z0-9]{4}-[A-Z0-9]{4}$", re.IGNORECASE)


def fmt_when(value: str | None) -> str:
    """An ISO timestamp as local date and time: 25 Nov 2026 10:00."""
    if not value:
        return ""
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        return value
    if moment.tzinfo is not None:
        try:
            from zoneinfo import ZoneInfo

            moment = moment.astimezone(ZoneInfo("Europe/London"))
        except Exception:
            moment = moment.astimezone()
    return f"{moment.day} {moment.strftime('%b %Y %H:%M')}"


# ----- the table model ----------------------------------------------------------------------------


class RecordsModel(QAbstractTableModel):
    """Records as rows (date, child, status, pathway, reference), fetched a page at a time."""

    COLUMNS = ("Date", "Child", "Status", "Pathway", "Reference")
    RecordIdRole = Qt.ItemDataRole.UserRole + 1
    SortRole = Qt.ItemDataRole.UserRole + 2

    def __init__(self, fetch: Callable[[int, int], list[Record]], parent: Any = None) -> None:
        super().__init__(parent)
        self._fetch = fetch
        self._records: list[Record] = []
        self._more = True

    def reload(self) -> None:
        self.beginResetModel()
        self._records = []
        self._more = True
        self.endResetModel()
        self.fetchMore(QModelIndex())

    # paging
    def canFetchMore(self, parent: QModelIndex | QPersistentModelIndex = QModelIndex()) -> bool:  # noqa: B008, N802
        return not parent.isValid() and self._more

    def fetchMore(self, parent: QModelIndex | QPersistentModelIndex = QModelIndex()) -> None:  # noqa: B008, N802
        if parent.isValid() or not self._more:
            return
        batch = self._fetch(PAGE_SIZE, len(self._records))
        self._more = len(batch) == PAGE_SIZE
        if batch:
            start = len(self._records)
            self.beginInsertRows(QModelIndex(), start, start + len(batch) - 1)
            self._records.extend(batch)
            self.endInsertRows()

    # model
    def rowCount(self, parent: QModelIndex | QPersistentModelIndex = QModelIndex()) -> int:  # noqa: B008, N802
        return 0 if parent.isValid() else len(self._records)

    def columnCount(self, parent: QModelIndex | QPersistentModelIndex = QModelIndex()) -> int:  # noqa: B008, N802
        return 0 if parent.isValid() else len(self.COLUMNS)

    def headerData(
        self, section: int, orientation: Qt.Orientation, role: int = Qt.ItemDataRole.DisplayRole
    ) -> Any:  # noqa: N802
        if orientation == Qt.Orientation.Horizontal and role == Qt.ItemDataRole.DisplayRole:
            return self.COLUMNS[section]
        return None

    def record(self, row: int) -> Record:
        return self._records[row]

    def records(self) -> list[Record]:
        return list(self._records)

    def data(
        self, index: QModelIndex | QPersistentModelIndex, role: int = Qt.ItemDataRole.DisplayRole
    ) -> Any:
        if not index.isValid() or index.row() >= len(self._records):
            return None
        rec = self._records[index.row()]
        column = index.column()
        if role == self.RecordIdRole:
            return rec.id
        when = rec.completed if not rec.is_draft and rec.completed else rec.updated
        if role == Qt.ItemDataRole.DisplayRole:
            if column == 0:
                return fmt_when(when)
            if column == 1:
                nhs = rec.child.nhs_number
                return rec.child.display_name + (f"  ·  {format_334(nhs)}" if nhs else "")
            if column == 2:
                return STATUS_LABELS.get(rec.status, rec.status.replace("_", " ").capitalize())
            if column == 3:
                if rec.is_draft:
                    return "In progress"
                return PATHWAY_LABELS.get(rec.pathway or "", rec.pathway or "—")
            if column == 4:
                return rec.id
        if role == self.SortRole:
            return [
                when or "",
                rec.child.display_name.lower(),
                rec.status,
                rec.pathway or "",
                rec.id,
            ][column]
        if role == Qt.ItemDataRole.ToolTipRole:
            if column == 0:
                return ("Last saved " if rec.is_draft else "Completed ") + fmt_when(when)
            if rec.is_draft:
                return "Draft — open it to carry on where you left off"
            return "Completed — open it to read it or add an addendum"
        if role == Qt.ItemDataRole.FontRole and column == 2 and rec.is_draft:
            from PySide6.QtGui import QFont

            font = QFont()
            font.setBold(True)
            return font
        return None


# ----- the page -------------------------------------------------------------------------------------------


class MyRecordsPage(QWidget):
    """The list of the user's own records, and the read-only view of a completed one."""

    draft_requested = Signal(str)

    def __init__(
        self,
        session: Session,
        parent: QWidget | None = None,
        *,
        open_draft: Callable[[str], Any] | None = None,
    ) -> None:
        super().__init__(parent)
        self.setObjectName("my_records")
        self.setProperty("page", True)
        self.setStyleSheet(WIZARD_QSS)
        self._session = session
        self._open_draft = open_draft
        self._filter_text = ""
        self._status: str | None = None

        outer = QVBoxLayout(self)
        outer.setContentsMargins(0, 0, 0, 0)
        self._stack = QStackedWidget(self)
        outer.addWidget(self._stack)

        # list
        listing = QWidget()
        layout = QVBoxLayout(listing)
        layout.setContentsMargins(28, 22, 28, 20)
        layout.setSpacing(10)
        title = plain_label("My records")
        title.setProperty("heading", "h1")
        layout.addWidget(title)
        layout.addWidget(
            plain_label(
                "Your drafts and completed assessments, newest first. Open a draft to carry on where "
                "you left off; open a completed record to read it or add an addendum.",
                "hint",
            )
        )

        tools = QHBoxLayout()
        tools.setSpacing(10)
        self.filter_edit = QLineEdit()
        self.filter_edit.setObjectName("my_records.filter")
        self.filter_edit.setPlaceholderText(
            "Find by name, NHS number, reference or words in the record"
        )
        self.filter_edit.setAccessibleName("Find records")
        self.filter_edit.setClearButtonEnabled(True)
        self.filter_edit.textChanged.connect(self._filter_changed)
        self.status_combo = QComboBox()
        self.status_combo.setObjectName("my_records.status")
        self.status_combo.setAccessibleName("Show records with status")
        for label, value in (("All records", ""), ("Drafts", "draft"), ("Completed", "completed")):
            self.status_combo.addItem(label, value)
        self.status_combo.currentIndexChanged.connect(self._status_changed)
        self.refresh_button = QPushButton("Refresh")
        self.refresh_button.setObjectName("my_records.refresh")
        self.refresh_button.clicked.connect(self.refresh)
        tools.addWidget(self.filter_edit, 1)
        tools.addWidget(self.status_combo)
        tools.addWidget(self.refresh_button)
        layout.addLayout(tools)

        self.model = RecordsModel(self._fetch, self)
        self.proxy = QSortFilterProxyModel(self)
        self.proxy.setSourceModel(self.model)
        self.proxy.setSortRole(RecordsModel.SortRole)
        self.table = QTableView()
        self.table.setObjectName("my_records.table")
        self.table.setAccessibleName("My records")
        self.table.setModel(self.proxy)
        self.table.setSortingEnabled(True)
        self.table.sortByColumn(0, Qt.SortOrder.DescendingOrder)
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.setAlternatingRowColors(True)
        self.table.setShowGrid(False)
        self.table.setWordWrap(False)
        self.table.verticalHeader().setVisible(False)
        self.table.verticalHeader().setDefaultSectionSize(34)
        header = self.table.horizontalHeader()
        header.setHighlightSections(False)
        header.setDefaultAlignment(Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignVCenter)
        header.setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        header.setSectionResizeMode(1, QHeaderView.ResizeMode.Stretch)
        self.table.doubleClicked.connect(lambda index: self.open_row(index.row()))
        self.table.activated.connect(lambda index: self.open_row(index.row()))
        layout.addWidget(self.table, 1)

        self.empty = plain_label("", "info")
        self.empty.setObjectName("my_records.empty")
        self.empty.hide()
        layout.addWidget(self.empty)
        self.error = plain_label("", "error")
        self.error.setObjectName("my_records.error")
        self.error.hide()
        layout.addWidget(self.error)

        buttons = QHBoxLayout()
        self.open_button = QPushButton("Open")
        self.open_button.setObjectName("my_records.open")
        self.open_button.setProperty("variant", "primary")
        self.open_button.setToolTip("Open the selected record (Enter)")
        self.open_button.clicked.connect(self.open_selected)
        buttons.addWidget(self.open_button)
        buttons.addStretch(1)
        self.count_label = plain_label("", "hint", wrap=False)
        self.count_label.setObjectName("my_records.count")
        buttons.addWidget(self.count_label)
        layout.addLayout(buttons)
        self._stack.addWidget(listing)
        self._listing = listing

        self.view: RecordView | None = None
        self._debounce = QTimer(self)
        self._debounce.setSingleShot(True)
        self._debounce.setInterval(250)
        self._debounce.timeout.connect(self.refresh)
        self.refresh()

    # ----- data -----------------------------------------------------------------------------------
    def _filter(self) -> RecordFilter:
        text = self._filter_text.strip()
        kwargs: dict[str, Any] = {
            "clinician": self._session.user.username,
            "status": self._status or None,
        }
        if text:
            if _REF.match(text):
                kwargs["record_ids"] = (text.upper(),)
            elif (nhs := normalise(text)) is not None:
                kwargs["child_nhs"] = nhs
            else:
                kwargs["search"] = text
        return RecordFilter(**kwargs)

    def _fetch(self, limit: int, offset: int) -> list[Record]:
        # "My records" means the user's own, even for a lead who may see everyone's elsewhere.
        try:
            records = self._session.assessments.list_records(
                self._filter(), limit=limit, offset=offset
            )
        except StoreError as exc:
            self._show_error(str(exc))
            return []
        except Exception:
            log.exception("listing records failed")
            self._show_error(
                "Your records could not be listed because of an unexpected problem. Try Refresh."
            )
            return []
        return [r for r in records if r.clinician == self._session.user.username]

    def refresh(self) -> None:
        """Reload the list from the vault."""
        self.error.hide()
        self.model.reload()
        count = self.model.rowCount()
        self.table.setVisible(count > 0)
        if count == 0:
            self.empty.setText(
                "No records match."
                if self._filter_text.strip() or self._status
                else "You have no records yet. Start one with New assessment."
            )
        self.empty.setVisible(count == 0 and not self.error.isVisible())
        more = "+" if self.model.canFetchMore() else ""
        self.count_label.setText(f"{count}{more} record{'s' if count != 1 else ''}")
        self.open_button.setEnabled(count > 0)
        if count and not self.table.selectionModel().hasSelection():
            self.table.selectRow(0)

    def _show_error(self, message: str) -> None:
        self.error.setText(message)
        self.error.show()

    def _filter_changed(self, text: str) -> None:
        self._filter_text = text
        self._debounce.start()

    def _status_changed(self, _index: int) -> None:
        value = self.status_combo.currentData()
        self._status = value if isinstance(value, str) and value else None
        self.refresh()

    def showEvent(self, event: Any) -> None:  # noqa: N802 - Qt API
        super().showEvent(event)
        if self._stack.currentWidget() is self._listing and self.model.rowCount() >= 0:
            self.refresh()

    # ----- opening ------------------------------------------------------------------------------------
    def record_ids(self) -> list[str]:
        return [r.id for r in self.model.records()]

    def open_selected(self) -> None:
        rows = self.table.selectionModel().selectedRows()
        if rows:
            self.open_row(rows[0].row())

    def open_row(self, row: int) -> None:
        """Open the record shown on table row `row` (as sorted on screen)."""
        if 0 <= row < self.proxy.rowCount():
            source = self.proxy.mapToSource(self.proxy.index(row, 0))
            self.open_record(self.model.record(source.row()).id)

    def open_record(self, record_id: str) -> None:
        """A draft goes to the wizard; a completed record opens read-only here."""
        try:
            record = self._session.assessments.get_record(record_id, audit_view=False)
        except StoreError as exc:
            dialogs.error(self, "Record not opened", str(exc))
            return
        if record.is_draft:
            self.draft_requested.emit(record.id)
            if self._open_draft is not None:
                self._open_draft(record.id)
            return
        try:
            view = self._session.views.record_view(record_id)  # the audited view of the record
        except StoreError as exc:
            dialogs.error(self, "Record not opened", str(exc))
            return
        self.show_record(view.record, view)

    def show_record(self, record: Record, view: RecordViewModel | None = None) -> None:
        if self.view is not None:
            self._stack.removeWidget(self.view)
            self.view.deleteLater()
        self.view = RecordView(self._session, record, view=view)
        self.view.back_requested.connect(self.show_list)
        self._stack.addWidget(self.view)
        self._stack.setCurrentWidget(self.view)
        self.view.back_button.setFocus(Qt.FocusReason.OtherFocusReason)

    def show_list(self) -> None:
        self._stack.setCurrentWidget(self._listing)
        if self.view is not None:
            self._stack.removeWidget(self.view)
            self.view.deleteLater()
            self.view = None
        self.refresh()
        self.table.setFocus(Qt.FocusReason.OtherFocusReason)


# ----- read-only record view ---------------------------------------------------------------------------


def format_value(field: Field | None, value: Any) -> str:
    """An answer as rich text for reading (user text escaped, line breaks kept)."""
    if value is None or value == "" or value == []:
        return f'<span style="color:{SECONDARY};">—</span>'
    if field is None:
        return escape(str(value))
    ftype = field.type
    if ftype == "bool":
        return "Yes" if value is True else "No" if value is False else escape(str(value))
    if ftype == "choice":
        return escape(field.option_label(str(value)))
    if ftype in ("multichoice", "checklist") and isinstance(value, list):
        return "<br>".join(escape(field.option_label(str(v))) for v in value)
    if ftype == "date":
        return escape(fmt_date(value))
    if ftype == "datetime":
        return escape(fmt_when(str(value)) or str(value))
    if ftype == "nhs_number":
        return escape(format_334(str(value)))
    if ftype in ("people", "person"):
        people = value if isinstance(value, list) else [value]
        lines = []
        for person in people:
            if not isinstance(person, Mapping):
                lines.append(escape(str(person)))
                continue
            parts = []
            for column in field.columns:
                item = person.get(column.id)
                if item is None or item == "":
                    continue
                if column.type == "bool":
                    parts.append(f"{escape(column.label)}: {'yes' if item is True else 'no'}")
                elif column.id == "name":
                    parts.insert(0, f"<b>{escape(str(item))}</b>")
                elif column.type == "date":
                    parts.append(f"{escape(column.label)}: {escape(fmt_date(item))}")
                else:
                    parts.append(escape(str(item)))
            lines.append(", ".join(parts))
        return "<br>".join(lines)
    return escape(str(value)).replace("\n", "<br>")


class AddendumDialog(QDialog):
    """Type an addendum; OK adds it through the service (errors stay in the dialog)."""

    def __init__(self, session: Session, record_id: str, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("addendum_dialog")
        self.setWindowTitle("Add an addendum")
        self._session = session
        self._record_id = record_id
        self.addendum: Addendum | None = None
        layout = QVBoxLayout(self)
        layout.addWidget(
            plain_label(
                f"Record {record_id} is complete and cannot be changed. Add later facts here: the "
                "addendum is kept with the record, with your name and the time.",
                "hint",
            )
        )
        self.text = QPlainTextEdit()
        self.text.setObjectName("addendum.text")
        self.text.setAccessibleName("Addendum text")
        self.text.setTabChangesFocus(True)
        self.text.setMinimumSize(520, 160)
        self.text.textChanged.connect(self._count)
        layout.addWidget(self.text)
        self.counter = plain_label("", "hint")
        layout.addWidget(self.counter)
        self.error = plain_label("", "error")
        self.error.setObjectName("addendum.error")
        self.error.hide()
        layout.addWidget(self.error)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Cancel)
        self.ok_button = QPushButton("Add addendum")
        self.ok_button.setObjectName("addendum.ok")
        self.ok_button.setProperty("variant", "primary")
        buttons.addButton(self.ok_button, QDialogButtonBox.ButtonRole.AcceptRole)
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)
        layout.addWidget(buttons)
        self._count()

    def _count(self) -> None:
        length = len(self.text.toPlainText().strip())
        self.counter.setText(f"{length} of {ADDENDUM_LIMIT} characters")

    def accept(self) -> None:
        try:
            self.addendum = self._session.assessments.add_addendum(
                self._record_id, self.text.toPlainText()
            )
        except StoreError as exc:
            self.error.setText(str(exc))
            self.error.show()
            self.text.setFocus(Qt.FocusReason.OtherFocusReason)
            return
        super().accept()


class RecordView(QWidget):
    """A completed record, read-only, in the form version it was made with."""

    back_requested = Signal()
    addendum_added = Signal(str)

    def __init__(
        self,
        session: Session,
        record: Record,
        parent: QWidget | None = None,
        *,
        view: RecordViewModel | None = None,
    ) -> None:
        """`view`: the record's view model when the caller opened it (the audited view);
        without it the view model is read here, unaudited (the caller has the record)."""
        super().__init__(parent)
        self.setObjectName("record_view")
        self._session = session
        self.record = record
        self._model = view or session.views.record_view(record.id, audit_view=False)
        self.form: Form | None = self._model.form
        self.form_problem: str | None = self._model.form_problem

        outer = QVBoxLayout(self)
        outer.setContentsMargins(0, 0, 0, 0)
        bar = QFrame()
        bar.setObjectName("wizard.footer")
        bar_layout = QHBoxLayout(bar)
        bar_layout.setContentsMargins(20, 8, 20, 8)
        self.back_button = QPushButton("← Back to my records")
        self.back_button.setObjectName("record_view.back")
        self.back_button.clicked.connect(self.back_requested.emit)
        self.addendum_button = QPushButton("Add addendum…")
        self.addendum_button.setObjectName("record_view.add_addendum")
        self.addendum_button.setToolTip("Add a later fact to this completed record")
        self.addendum_button.clicked.connect(self.add_addendum)
        bar_layout.addWidget(self.back_button)
        bar_layout.addStretch(1)
        bar_layout.addWidget(self.addendum_button)
        outer.addWidget(bar)

        scroll = QScrollArea()
        scroll.setWidgetResizable(True)
        scroll.setFrameShape(QFrame.Shape.NoFrame)
        scroll.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        body = QWidget()
        body.setProperty("pagebody", True)
        self._layout = QVBoxLayout(body)
        self._layout.setContentsMargins(28, 20, 28, 28)
        self._layout.setSpacing(10)
        scroll.setWidget(body)
        outer.addWidget(scroll, 1)
        self._build()

    def show_letter_status(self) -> None:
        """Whether the letter is recorded as sent (read again); the button only while it is not."""
        try:
            state = self._session.referrals.referral_state(self.record.id)
        except StoreError as exc:
            self.letter_status.setText(str(exc))
            return
        self._show_letter_status(state)

    def _show_letter_status(self, state: ReferralState | None) -> None:
        self.letter_status.setText(letter_status_text(state))
        may_record = self.record.clinician == self._session.user.username or (
            self._session.user.role == "lead"
        )
        self.sent_button.setVisible(may_record and state is not None and state.sent_at is None)

    def record_sent(self) -> None:
        if record_sent(self._session, self.record, self) is not None:
            self.show_letter_status()

    def _heading(self, text: str, level: str = "h2") -> QLabel:
        label = plain_label(text)
        label.setProperty("heading", level)
        self._layout.addWidget(label)
        return label

    def _panel(self, html: str, name: str = "") -> QLabel:
        frame = QFrame()
        frame.setProperty("panel", True)
        inner = QVBoxLayout(frame)
        inner.setContentsMargins(14, 10, 14, 10)
        label = rich_label(html)
        if name:
            label.setObjectName(name)
        inner.addWidget(label)
        self._layout.addWidget(frame)
        return label

    def _build(self) -> None:
        rec = self.record
        self._heading(rec.child.display_name, "h1")
        meta = [
            f"<b>Reference</b> {escape(rec.id)}",
            f"<b>Status</b> {escape(STATUS_LABELS.get(rec.status, rec.status))}",
            f"<b>Completed</b> {escape(fmt_when(rec.completed))}" if rec.completed else "",
            f"<b>By</b> {escape(rec.clinician_name or rec.clinician)}",
        ]
        if self.form is not None:
            meta.append(f"<b>Form</b> {escape(self.form.title)} (version {self.form.version})")
        else:
            meta.append(f"<b>Form</b> {escape(rec.form_id)} version {rec.form_version}")
        info = rich_label("  ·  ".join(m for m in meta if m))
        info.setObjectName("record_view.meta")
        self._layout.addWidget(info)
        if self.form_problem:
            warn = plain_label(
                f"The form version this record was made with cannot be loaded, so answers are "
                f"shown by field id. {self.form_problem}",
                "error",
            )
            warn.setObjectName("record_view.form_problem")
            self._layout.addWidget(warn)

        answers = rec.answers if isinstance(rec.answers, Mapping) else {}
        outcome = rec.outcome or {}
        if self.form is not None:
            self._heading("Outcome")
            self._panel(
                rows_html(outcome_rows(self.form, answers, outcome, completed=True)),
                "record_view.outcome",
            )
            self._heading("Consent and information-sharing statement")
            self._panel(
                "".join(
                    f'<p style="margin:0 0 6px 0;">{p}</p>'
                    for p in consent_statement(self.form, answers, outcome, None)
                ),
                "record_view.statement",
            )
            raised = raised_prompts(self._session, self.form, rec)
            self.codes_panel = panel_for(outcome, raised)
            self._layout.addWidget(self.codes_panel)
        elif outcome:
            self._heading("Outcome")
            self._panel(
                escape(", ".join(f"{k}: {v}" for k, v in outcome.items())), "record_view.outcome"
            )
            self.codes_panel = panel_for(outcome, None)  # the form is unreadable; the codes are not
            self._layout.addWidget(self.codes_panel)

        if rec.status == "completed" and rec.letter_required:
            from gpshare.ui.letter_view import LettersPanel

            self._heading("Referral letter")
            self.letters_panel = LettersPanel(self._session, rec, self, view=self._model)
            self.letters_panel.setObjectName("record_view.letters")
            self._layout.addWidget(self.letters_panel)
            sent_row = QHBoxLayout()
            self.letter_status = plain_label("", "fieldhelp")
            self.letter_status.setObjectName("record_view.letter_status")
            self.sent_button = QPushButton("Record as sent…")
            self.sent_button.setObjectName("record_view.record_sent")
            self.sent_button.setToolTip("Record how and when you sent the referral letter")
            self.sent_button.clicked.connect(self.record_sent)
            sent_row.addWidget(self.letter_status, 1)
            sent_row.addWidget(self.sent_button)
            self._layout.addLayout(sent_row)
            self._show_letter_status(self._model.referral_state)

        self._heading("Addenda")
        self.addenda_label = self._panel("", "record_view.addenda")
        self._show_addenda(self._model.addenda)

        self._heading("Answers")
        shown: set[str] = set()
        if self.form is not None:
            for step in self.form.steps:
                rows = [
                    (f.label, format_value(f, answers.get(f.id)))
                    for f in step.fields
                    if f.id in answers
                ]
                shown.update(f.id for f in step.fields)
                if not rows:
                    continue
                title = plain_label(step.title)
                title.setStyleSheet("font-weight: 700; font-size: 11pt; margin-top: 6px;")
                self._layout.addWidget(title)
                self._panel(_answer_table(rows), f"record_view.step.{step.id}")
        others = [(k, format_value(None, v)) for k, v in answers.items() if k not in shown]
        if others:
            self._heading("Other answers stored with the record")
            self._panel(_answer_table(others), "record_view.other")
        self._layout.addStretch(1)

    def _show_addenda(self, items: Sequence[Addendum] | None = None) -> None:
        """Show `items` (the view model's), or read the addenda again (after adding one)."""
        try:
            if items is None:
                items = self._session.assessments.addenda(self.record.id)
        except StoreError as exc:
            self.addenda_label.setText(escape(str(exc)))
            return
        if not items:
            self.addenda_label.setText(f'<span style="color:{SECONDARY};">No addenda yet.</span>')
            return
        me = self._session.user
        self.addenda_label.setText(
            "".join(
                f'<p style="margin:0 0 8px 0;"><b>{escape(fmt_when(a.created))}</b> — '
                f"{escape(me.full_name if a.author == me.username else a.author)}<br>"
                f"{escape(a.body).replace(chr(10), '<br>')}</p>"
                for a in items
            )
        )

    def add_addendum(self) -> None:
        dialog = AddendumDialog(self._session, self.record.id, self)
        if (
            dialogs.exec_dialog(dialog) == QDialog.DialogCode.Accepted
            and dialog.addendum is not None
        ):
            self._show_addenda()
            self.addendum_added.emit(self.record.id)


def _answer_table(rows: Sequence[tuple[str, str]]) -> str:
    cells = "".join(
        f'<tr><td width="36%" valign="top" style="padding:4px 16px 4px 0; color:{SECONDARY};">'
        f'{escape(label)}</td><td valign="top" style="padding:4px 0;">{value}</td></tr>'
        for label, value in rows
    )
    return f'<table width="100%" cellspacing="0">{cells}</table>'


# ----- plugging into the app ------------------------------------------------------------------------------
def records_page(session: Session, window: MainWindow) -> MyRecordsPage:
    """Factory for "my_records": a draft opens in the wizard page."""
    from gpshare.ui.wizard.shell import open_draft

    return MyRecordsPage(session, open_draft=lambda record_id: open_draft(window, record_id))


def install(window: MainWindow) -> None:
    """Register the "my_records" page with the main window."""
    window.register_page("my_records", records_page)
