"""The lead's "Child chronology" tab: everything about the selected record's child, and
household links to confirm."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import date
from typing import TYPE_CHECKING

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import QHBoxLayout, QLabel, QPushButton, QWidget

from gpshare.clock import today
from gpshare.errors import StoreError
from gpshare.followup import EVENT_LABELS, LA_DECISIONS
from gpshare.ui import dialogs
from gpshare.ui.lead.common import _FOLLOWUP_SUMMARY, KIND_LABELS, _plural, _Tab
from gpshare.ui.record_detail import fill_table
from gpshare.ui.records_view import (
    connect_open,
    consent_label,
    fmt_day,
    fmt_when,
    nhs_text,
    pathway_label,
)
from gpshare.ui.style import RED, SECONDARY_TEXT
from gpshare.ui.unlock import busy_cursor
from gpshare.ui.widgets import heading as _heading
from gpshare.ui.widgets import hint as _hint
from gpshare.ui.widgets import list_table as _table
from gpshare.ui.widgets import message_label as _message
from gpshare.ui.widgets import set_message as _set_message

if TYPE_CHECKING:
    from gpshare.chronology import ChronologyEntry, HouseholdLink
    from gpshare.forms import Form
    from gpshare.records import Record
    from gpshare.services import Session


def entry_text(
    entry: ChronologyEntry, records: Mapping[str, Record], forms: Mapping[str, Form]
) -> str:
    """A chronology line in words (tokens turned into labels where the entry allows); `forms`
    holds the installed form of each record (from session.views.chronology_view)."""
    if entry.kind == "record" and entry.record_id in records:
        record = records[entry.record_id]
        parts = [pathway_label(record.pathway) if record.pathway else "Draft"]
        if record.consent_basis and record.consent_basis != "not_applicable":
            parts.append(consent_label(record.consent_basis).lower())
        concern = record.answers.get("categories")
        if isinstance(concern, list) and concern:
            try:
                form = forms[record.id]
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
                view = self.session.views.chronology_view(self.record_id)
        except StoreError as exc:
            self.entries, self.links = [], []
            self._show_empty()
            _set_message(self.error, str(exc), "error")
            return
        self.entries, self.links = list(view.entries), list(view.links)
        records = view.records
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
                    entry_text(entry, records, view.forms),
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
            self.session.lead.review_household_link(
                self.record_id, self.links[row].record.id, decision
            )
        except StoreError as exc:
            dialogs.error(self, "Household link", str(exc))
            return
        self._shown_for = None
        self.reload()
        self.links_table.selectRow(row)
