"""One record as the safeguarding lead sees it: answers, outcome and letters, follow-up,
addenda, the lead's review and who has looked at the record.

Answers are shown step by step in the form version the record was made with (labels from
that form, option tokens shown as their labels, people as tables; an answer the form no longer
knows is still shown, never hidden). Opening the view calls ``session.views.record_view`` once (the
view model: record, form, follow-ups, addenda, letters, and the lead's reviews and access log),
which is the audited "record viewed" event; refreshes after a change read it again unaudited.
Everything that can fail shows the service's own message; the services decide who may do what.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable, Mapping, Sequence
from datetime import date
from html import escape
from typing import TYPE_CHECKING, Any

from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QColor, QFont, QKeyEvent, QKeySequence
from PySide6.QtWidgets import (
    QButtonGroup,
    QDialog,
    QDialogButtonBox,
    QFrame,
    QHBoxLayout,
    QLabel,
    QPlainTextEdit,
    QPushButton,
    QRadioButton,
    QScrollArea,
    QTableWidget,
    QTableWidgetItem,
    QTabWidget,
    QTextBrowser,
    QVBoxLayout,
    QWidget,
)

from gpshare.clock import today
from gpshare.codes import VISIBILITY_PROMPT
from gpshare.errors import StoreError
from gpshare.followup import EVENT_LABELS, LA_DECISIONS, SEND_METHODS
from gpshare.forms import LIST_CHOICE_TYPES, PEOPLE_TYPES, Field, Form
from gpshare.nhs_number import format_334
from gpshare.ui import dialogs
from gpshare.ui.codes_panel import panel_for, raised_prompts
from gpshare.ui.followup_dialog import (
    FollowUpDialog,
    show_errors,
)
from gpshare.ui.records_view import (
    due_text,
    fmt_day,
    fmt_when,
    nhs_text,
)
from gpshare.ui.style import GREEN, LIGHT_BORDER, PALE_GREY, RED, SECONDARY_TEXT, TEXT, refresh
from gpshare.ui.unlock import busy_cursor
from gpshare.ui.widgets import heading as _heading
from gpshare.ui.widgets import list_table as _table
from gpshare.ui.widgets import message_label as _message
from gpshare.ui.wizard.summary import consent_statement, outcome_rows, rows_html

if TYPE_CHECKING:
    from gpshare.followup import ReferralState
    from gpshare.records import Addendum, AuditEvent, FollowUp, Record, Review
    from gpshare.services import RecordView, Session

log = logging.getLogger(__name__)

__all__ = [
    "AddendumDialog",
    "FollowUpDialog",
    "RecordDetailView",
    "ReviewPanel",
    "answers_html",
    "followup_details",
]

VERDICTS = {"reasonable": "Decision reasonable", "needs_discussion": "Needs discussion"}
DETAIL_QSS = f"""
QFrame#detail\\.header {{ background: {PALE_GREY}; border-bottom: 1px solid {LIGHT_BORDER}; }}
QFrame#detail\\.header QLabel {{ background: transparent; }}
QLabel#detail\\.child {{ font-size: 17pt; font-weight: 600; }}
QLabel#detail\\.meta {{ color: {SECONDARY_TEXT}; }}
QLabel[chip="true"] {{
    background: white; border: 1px solid {LIGHT_BORDER}; border-radius: 10px;
    padding: 2px 10px; font-weight: 600;
}}
QLabel[chip="true"][tone="overdue"] {{ color: {RED}; border-color: {RED}; }}
QLabel[chip="true"][tone="done"] {{ color: {GREEN}; border-color: {GREEN}; }}
QLabel#detail\\.next[overdue="true"] {{ color: {RED}; font-weight: 600; }}
QTextBrowser {{ border: none; }}
"""


# ----- answers as HTML ---------------------------------------------------------------------------------------
def _e(text: Any) -> str:
    return escape(str(text)).replace("\n", "<br>")


def _empty(value: Any) -> bool:
    return value is None or value == "" or value == [] or value == {}


def _people_html(fld: Field, value: Any) -> str:
    if isinstance(value, dict):
        people = [value]
    elif isinstance(value, list):
        people = [p for p in value if isinstance(p, dict)]
    else:
        people = []
    if not people:
        return _e(value)
    columns = [(c.id, c.label, c.type) for c in fld.columns] or [(k, k, "text") for k in people[0]]
    head = "".join(
        f'<th align="left" style="padding:3px 12px 3px 0; color:{SECONDARY_TEXT};">{escape(label)}</th>'
        for _id, label, _type in columns
    )
    rows = []
    for person in people:
        cells = []
        for column_id, _label, kind in columns:
            raw = person.get(column_id)
            if isinstance(raw, bool):
                text = "Yes" if raw else "No"
            elif kind == "date" and isinstance(raw, str):
                text = escape(fmt_day(raw))
            else:
                text = _e(raw) if not _empty(raw) else "—"
            cells.append(f'<td style="padding:3px 12px 3px 0;">{text}</td>')
        rows.append("<tr>" + "".join(cells) + "</tr>")
    return f'<table cellspacing="0"><tr>{head}</tr>{"".join(rows)}</table>'


def answer_html(fld: Field, value: Any) -> str:
    """One answer as the user sees it (labels for tokens, Yes/No, UK dates, 3-3-4 NHS numbers)."""
    kind = fld.type
    if kind == "bool" and isinstance(value, bool):
        return "Yes" if value else "No"
    if kind == "choice" and isinstance(value, str):
        return _e(fld.option_label(value))
    if kind in LIST_CHOICE_TYPES and isinstance(value, list):
        return "<br>".join(
            f"• {_e(fld.option_label(v) if isinstance(v, str) else v)}" for v in value
        )
    if kind == "date" and isinstance(value, str):
        return _e(fmt_day(value))
    if kind == "datetime" and isinstance(value, str):
        return _e(fmt_when(value))
    if kind == "nhs_number" and isinstance(value, str):
        return _e(format_334(value))
    if kind in PEOPLE_TYPES:
        return _people_html(fld, value)
    if isinstance(value, bool):
        return "Yes" if value else "No"
    if isinstance(value, list):
        return "<br>".join(f"• {_e(v)}" for v in value)
    return _e(value)


def _row(label: str, value_html: str) -> str:
    return (
        f'<tr><td width="34%" valign="top" style="padding:5px 16px 5px 0; color:{SECONDARY_TEXT};">'
        f'{escape(label)}</td><td valign="top" style="padding:5px 0;">{value_html}</td></tr>'
    )


def answers_html(
    form: Form | None, answers: Mapping[str, Any], form_problem: str | None = None
) -> str:
    """Every answer, grouped by the form's steps in order; unknown answers listed last."""
    parts: list[str] = []
    shown: set[str] = set()
    if form is not None:
        number = 0
        for step in form.steps:
            rows = []
            for fld in step.fields:
                value = answers.get(fld.id)
                if _empty(value):
                    continue
                shown.add(fld.id)
                rows.append(_row(fld.label, answer_html(fld, value)))
            if not rows:
                continue
            number += 1
            parts.append(
                f'<h3 style="margin:18px 0 4px 0; color:{TEXT};">{number}. {escape(step.title)}</h3>'
                f'<table width="100%" cellspacing="0">{"".join(rows)}</table>'
            )
    rest = {k: v for k, v in answers.items() if k not in shown and not _empty(v)}
    if rest:
        title = (
            "Answers (the form this record was made with could not be loaded)"
            if form is None
            else "Other answers (not in this form version)"
        )
        note = f'<p style="color:{SECONDARY_TEXT};">{_e(form_problem)}</p>' if form_problem else ""
        other_rows = "".join(
            _row(k, answer_html(Field(k, k, "text"), v)) for k, v in sorted(rest.items())
        )
        parts.append(
            f'<h3 style="margin:18px 0 4px 0;">{escape(title)}</h3>{note}'
            f'<table width="100%" cellspacing="0">{other_rows}</table>'
        )
    if not parts:
        return "<p>No answers have been entered.</p>"
    return "".join(parts)


def followup_details(fu: FollowUp) -> str:
    """Decision, method, recipient and any other details of a follow-up event, in words."""
    bits = []
    if fu.decision:
        bits.append(LA_DECISIONS.get(fu.decision, fu.decision))
    details = dict(fu.details or {})
    method = details.pop("method", None)
    if method:
        bits.append(f"by {SEND_METHODS.get(method, method).lower()}")
    recipient = details.pop("recipient", None)
    if recipient:
        bits.append(f"to {recipient}")
    target = details.pop("to", None)
    if target:
        bits.append(f"to {target}")
    bits.extend(f"{k.replace('_', ' ')}: {v}" for k, v in sorted(details.items()) if v)
    return "; ".join(bits)


_ISO_MOMENT = re.compile(
    r"^\d{4}-\d{2}-\d{2}([T ]\d{2}:\d{2}(:\d{2}(\.\d+)?)?([+-]\d{2}:\d{2}|Z)?)?$"
)


def _detail_value(value: Any) -> str:
    """One audit detail in words: yes/no, lists joined, dates as '2 Dec 2026 14:05' (UK time)."""
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, list | tuple | set):
        return ", ".join(_detail_value(v) for v in value) or "none"
    if isinstance(value, Mapping):
        return "; ".join(f"{str(k).replace('_', ' ')} {_detail_value(v)}" for k, v in value.items())
    if isinstance(value, str) and _ISO_MOMENT.match(value):
        return fmt_when(value.replace("Z", "+00:00")).replace(",", "")
    return str(value)


def audit_details(details: Mapping[str, Any]) -> str:
    """An audit event's details as 'key: value' pairs (they never hold clinical free text)."""
    return ", ".join(
        f"{k.replace('_', ' ')}: {_detail_value(v)}"
        for k, v in sorted(details.items())
        if v not in (None, "")
    )


def action_label(action: str) -> str:
    return action.replace("_", " ").capitalize()


def age_years(dob: str | None, on: date) -> int | None:
    try:
        born = date.fromisoformat(dob or "")
    except ValueError:
        return None
    return on.year - born.year - ((on.month, on.day) < (born.month, born.day))


def age_text(dob: str | None, on: date) -> str:
    years = age_years(dob, on)
    if years is None or years < 0:
        return ""
    if years >= 1:
        return f"{years} year{'s' if years != 1 else ''}"
    born = date.fromisoformat(dob or "")
    months = (on.year - born.year) * 12 + on.month - born.month - (on.day < born.day)
    return f"{months} month{'s' if months != 1 else ''}"


# ----- small widget helpers ----------------------------------------------------------------------------------


def fill_table(
    table: QTableWidget,
    rows: Iterable[Sequence[str]],
    *,
    colours: Iterable[str | None] = (),
    colour_columns: Iterable[int] | None = None,
    bold: Iterable[bool] = (),
    bold_columns: Iterable[int] | None = None,
    max_width: int = 360,
) -> None:
    """Replace the table's rows (plain text), with optional per-row colour and bold in given columns."""
    rows = list(rows)
    colour_list, bold_list = list(colours), list(bold)
    coloured = None if colour_columns is None else set(colour_columns)
    emboldened = None if bold_columns is None else set(bold_columns)
    font = QFont(table.font())
    font.setBold(True)
    table.setRowCount(len(rows))
    for r, cells in enumerate(rows):
        colour = colour_list[r] if r < len(colour_list) else None
        strong = bold_list[r] if r < len(bold_list) else False
        for c, text in enumerate(cells):
            item = QTableWidgetItem(text)
            if len(text) > 40:
                item.setToolTip(text)
            if colour and (coloured is None or c in coloured):
                item.setForeground(QColor(colour))
            if strong and (emboldened is None or c in emboldened):
                item.setFont(font)
            table.setItem(r, c, item)
    table.resizeColumnsToContents()
    header = table.horizontalHeader()
    for c in range(table.columnCount()):
        header.resizeSection(c, min(header.sectionSize(c) + 8, max_width))


def _browser(name: str) -> QTextBrowser:
    browser = QTextBrowser()
    browser.setObjectName(name)
    browser.setOpenLinks(False)
    browser.setFrameShape(QFrame.Shape.NoFrame)
    browser.document().setDocumentMargin(16)
    return browser


# ----- dialogs -----------------------------------------------------------------------------------------------
class AddendumDialog(QDialog):
    """Append a later fact to a completed record (signed with the author's name, permanent)."""

    def __init__(self, session: Session, record: Record, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("addendum_dialog")
        self.setWindowTitle(f"Add addendum — {record.id}")
        self.session = session
        self.record = record
        self.saved: Addendum | None = None
        layout = QVBoxLayout(self)
        hint = QLabel(
            "An addendum records a later fact. It is added to the record with your name and "
            "the time, and cannot be changed or removed afterwards."
        )
        hint.setWordWrap(True)
        hint.setProperty("role", "hint")
        layout.addWidget(hint)
        self.text = QPlainTextEdit()
        self.text.setObjectName("addendum.text")
        self.text.setAccessibleName("Addendum text")
        self.text.setTabChangesFocus(True)
        self.text.setMinimumHeight(140)
        layout.addWidget(self.text)
        self.error = _message("addendum.error", "error")
        layout.addWidget(self.error)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Cancel)
        self.save_button = buttons.addButton(
            "&Add addendum", QDialogButtonBox.ButtonRole.AcceptRole
        )
        self.save_button.setObjectName("addendum.save")
        self.save_button.setProperty("variant", "primary")
        buttons.accepted.connect(self.save)
        buttons.rejected.connect(self.reject)
        layout.addWidget(buttons)
        self.resize(520, 320)

    def save(self) -> None:
        try:
            self.saved = self.session.assessments.add_addendum(
                self.record.id, self.text.toPlainText()
            )
        except StoreError as exc:
            show_errors(self.error, exc, {"text": self.text})
            return
        self.accept()


# ----- review panel ---------------------------------------------------------------------------------------------
class ReviewPanel(QWidget):
    """The lead's review of the clinician's decision (append-only) and earlier reviews."""

    saved = Signal()

    def __init__(
        self,
        session: Session,
        record: Record,
        parent: QWidget | None = None,
        *,
        reviews: Sequence[Review] | None = None,
    ) -> None:
        """`reviews`: the record view's (shown without reading them again)."""
        super().__init__(parent)
        self.session = session
        self.record = record
        layout = QVBoxLayout(self)
        layout.setContentsMargins(16, 12, 16, 12)
        layout.setSpacing(8)
        layout.addWidget(_heading("Review this decision"))
        hint = QLabel(
            "Was the clinician's decision reasonable on what they knew at the time? Reviews are "
            "permanent; a later review can follow an earlier one."
        )
        hint.setWordWrap(True)
        hint.setProperty("role", "hint")
        layout.addWidget(hint)
        verdicts = QHBoxLayout()
        self.group = QButtonGroup(self)
        self.radios: dict[str, QRadioButton] = {}
        for token, label in VERDICTS.items():
            radio = QRadioButton(label)
            radio.setObjectName(f"review.{token}")
            self.group.addButton(radio)
            self.radios[token] = radio
            verdicts.addWidget(radio)
        verdicts.addStretch(1)
        layout.addLayout(verdicts)
        self.comments = QPlainTextEdit()
        self.comments.setObjectName("review.comments")
        self.comments.setAccessibleName("Comments")
        self.comments.setPlaceholderText("Comments (required when it needs discussion)")
        self.comments.setTabChangesFocus(True)
        self.comments.setFixedHeight(80)
        self.learning = QPlainTextEdit()
        self.learning.setObjectName("review.learning")
        self.learning.setAccessibleName("Learning")
        self.learning.setPlaceholderText("Learning for the clinician or the practice (optional)")
        self.learning.setTabChangesFocus(True)
        self.learning.setFixedHeight(60)
        layout.addWidget(self.comments)
        layout.addWidget(self.learning)
        self.error = _message("review.error", "error")
        layout.addWidget(self.error)
        row = QHBoxLayout()
        self.save_button = QPushButton("&Save review")
        self.save_button.setObjectName("review.save")
        self.save_button.setProperty("variant", "primary")
        self.save_button.clicked.connect(self.save)
        row.addWidget(self.save_button)
        row.addStretch(1)
        layout.addLayout(row)
        layout.addSpacing(6)
        layout.addWidget(_heading("Earlier reviews"))
        self.history = _table(
            "review.history", ("When", "Reviewer", "Verdict", "Comments", "Learning"), 3
        )
        layout.addWidget(self.history, 1)
        self.reviews: list[Any] = []
        self.load(reviews)

    def load(self, reviews: Sequence[Review] | None = None) -> None:
        """Show `reviews`, or read them again (after a review is saved)."""
        try:
            self.reviews = (
                list(reviews)
                if reviews is not None
                else self.session.referrals.reviews(self.record.id)
            )
        except StoreError as exc:
            self.error.setText(str(exc))
            self.error.show()
            return
        fill_table(
            self.history,
            (
                [
                    fmt_when(r.created),
                    r.reviewer,
                    VERDICTS.get(r.verdict, r.verdict),
                    r.comments or "",
                    r.learning or "",
                ]
                for r in self.reviews
            ),
            colours=[None if r.verdict == "reasonable" else RED for r in self.reviews],
        )

    def verdict(self) -> str | None:
        return next((t for t, radio in self.radios.items() if radio.isChecked()), None)

    def save(self) -> None:
        verdict = self.verdict()
        if verdict is None:
            self.error.setText("Choose “Decision reasonable” or “Needs discussion”.")
            self.error.show()
            return
        try:
            with busy_cursor():
                self.session.referrals.add_review(
                    self.record.id,
                    verdict,
                    self.comments.toPlainText().strip(),
                    self.learning.toPlainText().strip(),
                )
        except StoreError as exc:
            show_errors(self.error, exc, {"comments": self.comments, "learning": self.learning})
            return
        self.error.hide()
        self.group.setExclusive(False)
        for radio in self.radios.values():
            radio.setChecked(False)
        self.group.setExclusive(True)
        self.comments.clear()
        self.learning.clear()
        self.load()
        self.saved.emit()


# ----- the view ---------------------------------------------------------------------------------------------------
class RecordDetailView(QWidget):
    """A record for the lead: header with status, then tabs. Creating it is an audited view.

    `lead_tools` adds the review and access-log tabs (a presentation choice for the lead's
    workspace; the services still decide what each user may see).
    """

    changed = Signal(str)  # record id: a follow-up, addendum or review was added
    back_requested = Signal()
    chronology_requested = Signal(str)

    def __init__(
        self,
        session: Session,
        record_id: str,
        parent: QWidget | None = None,
        *,
        lead_tools: bool = True,
        show_back: bool = True,
    ) -> None:
        super().__init__(parent)
        self.setObjectName("recordDetail")
        self.setProperty("page", True)
        self.setStyleSheet(DETAIL_QSS)
        self.session = session
        self.lead_tools = lead_tools
        # The one audited view (raises if refused): everything the tabs show.
        self.view: RecordView = session.views.record_view(record_id)
        self.record: Record = self.view.record
        self.state: ReferralState | None = None
        self.form: Form | None = self.view.form
        self.form_problem: str | None = self.view.form_problem

        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(0)
        layout.addWidget(self._build_header(show_back))
        self.tabs = QTabWidget()
        self.tabs.setObjectName("detail.tabs")
        self.tabs.setDocumentMode(True)
        body = QVBoxLayout()
        body.setContentsMargins(16, 10, 16, 12)
        body.addWidget(self.tabs)
        layout.addLayout(body, 1)

        self.answers = _browser("detail.answers")
        self.answers.setHtml(answers_html(self.form, self.record.answers, self.form_problem))
        self.tabs.addTab(self.answers, "&Assessment")
        self.tabs.addTab(self._build_outcome(), "Outcome and &letters")
        self.tabs.addTab(self._build_followups(), "&Follow-up")
        self.tabs.addTab(self._build_addenda(), "Adde&nda")
        self.review_panel: ReviewPanel | None = None
        self.access_table: QTableWidget | None = None
        if lead_tools:
            self.review_panel = ReviewPanel(session, self.record, reviews=self.view.reviews)
            self.review_panel.saved.connect(self._review_saved)
            self.tabs.addTab(self.review_panel, "Lead &review")
            self.tabs.addTab(self._build_access_log(), "Access lo&g")
            self.tabs.currentChanged.connect(self._tab_changed)
        self._show(self.view)

    def keyPressEvent(self, event: QKeyEvent) -> None:  # noqa: N802 - Qt API
        """Esc (or the platform's Back key) returns to the list."""
        if self.back_button.isVisibleTo(self) and (
            event.key() == Qt.Key.Key_Escape or event.matches(QKeySequence.StandardKey.Back)
        ):
            self.back_requested.emit()
            return
        super().keyPressEvent(event)

    # -- construction --
    def _build_header(self, show_back: bool) -> QFrame:
        header = QFrame()
        header.setObjectName("detail.header")
        outer = QVBoxLayout(header)
        outer.setContentsMargins(16, 10, 16, 12)
        outer.setSpacing(4)
        top = QHBoxLayout()
        self.back_button = QPushButton("← &Back to list")
        self.back_button.setObjectName("detail.back")
        self.back_button.setProperty("variant", "link")
        self.back_button.setToolTip("Back to the workspace (Esc)")
        self.back_button.clicked.connect(self.back_requested.emit)
        self.back_button.setVisible(show_back)
        top.addWidget(self.back_button)
        top.addStretch(1)
        marking = QLabel("OFFICIAL — SENSITIVE")
        marking.setProperty("role", "marking")
        top.addWidget(marking)
        outer.addLayout(top)

        record = self.record
        line = QHBoxLayout()
        title = QLabel(record.child.display_name)
        title.setObjectName("detail.child")
        title.setTextFormat(Qt.TextFormat.PlainText)
        line.addWidget(title)
        line.addSpacing(10)
        self.status_chip = QLabel()
        self.status_chip.setObjectName("detail.status")
        self.status_chip.setProperty("chip", True)
        line.addWidget(self.status_chip, 0, Qt.AlignmentFlag.AlignVCenter)
        line.addStretch(1)
        self.chronology_button = QPushButton("Child &chronology")
        self.chronology_button.setObjectName("detail.chronology")
        self.chronology_button.setToolTip(
            "Every record about this child, and possible household links"
        )
        self.chronology_button.clicked.connect(
            lambda: self.chronology_requested.emit(self.record.id)
        )
        self.chronology_button.setVisible(self.lead_tools)
        self.followup_button = QPushButton("Record &follow-up…")
        self.followup_button.setObjectName("detail.record_followup")
        self.followup_button.setProperty("variant", "primary")
        self.followup_button.clicked.connect(self.record_followup)
        self.followup_button.setVisible(not record.is_draft)
        line.addWidget(self.chronology_button)
        line.addWidget(self.followup_button)
        outer.addLayout(line)

        born = record.child.date_of_birth
        age = age_text(born, today(self.session.clock))
        bits = [f"NHS number {nhs_text(record.child.nhs_number)}"]
        if born:
            bits.append(f"born {fmt_day(born)}" + (f" ({age})" if age else ""))
        bits.append(f"record {record.id}")
        who = record.clinician_name or record.clinician
        bits.append(
            f"completed by {who}, {fmt_when(record.completed)}"
            if record.completed
            else f"draft by {who}, started {fmt_when(record.created)}"
        )
        meta = QLabel(" · ".join(bits))
        meta.setObjectName("detail.meta")
        meta.setTextFormat(Qt.TextFormat.PlainText)
        meta.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        outer.addWidget(meta)
        self.next_label = QLabel()
        self.next_label.setObjectName("detail.next")
        outer.addWidget(self.next_label)
        return header

    def _build_outcome(self) -> QWidget:
        scroll = QScrollArea()
        scroll.setWidgetResizable(True)
        body = QWidget()
        body.setProperty("page", True)
        layout = QVBoxLayout(body)
        layout.setContentsMargins(16, 12, 16, 12)
        layout.setSpacing(8)
        record, form = self.record, self.form
        layout.addWidget(_heading("Outcome"))
        if record.outcome is None or form is None:
            text = (
                "This record is still a draft: there is no outcome until it is completed."
                if record.outcome is None
                else self.form_problem or ""
            )
            label = QLabel(text)
            label.setWordWrap(True)
            label.setProperty("role", "hint")
            layout.addWidget(label)
            if record.outcome is not None:  # the form is unreadable; the codes are not
                self.codes_panel = panel_for(record.outcome, None)
                layout.addWidget(self.codes_panel)
        else:
            described = [
                (
                    "Letter",
                    "Required: a referral letter goes to the recipient below."
                    if record.letter_required
                    else "Not needed: nothing is shared now.",
                )
                if label == "Letter"
                else (label, value)
                for label, value in outcome_rows(form, record.answers, record.outcome)
            ]
            rows = QLabel(rows_html(described))
            rows.setObjectName("detail.outcome")
            rows.setTextFormat(Qt.TextFormat.RichText)
            rows.setWordWrap(True)
            rows.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
            layout.addWidget(rows)
            raised = raised_prompts(self.session, form, record)
            messages = {p.token: (p.severity, p.message) for p in form.prompts}
            # a prompt's severity and wording can depend on the answers (critical_when)
            messages.update({t: (p.severity, p.message) for t, p in raised.items()})
            for token in record.outcome.get("prompts") or []:
                if str(token).startswith(VISIBILITY_PROMPT) and "snomed_codes" in record.outcome:
                    continue  # said once, next to the codes it is about
                severity, message = messages.get(token, ("info", token))
                prompt = QLabel(message)
                prompt.setWordWrap(True)
                prompt.setTextFormat(Qt.TextFormat.PlainText)
                prompt.setProperty("role", "error" if severity == "critical" else "info")
                layout.addWidget(prompt)
            layout.addSpacing(6)
            layout.addWidget(_heading("Consent and justification"))
            age = age_years(record.child.date_of_birth, today(self.session.clock))
            statement = QLabel(
                "".join(
                    f"<p>{p}</p>"
                    for p in consent_statement(form, record.answers, record.outcome, age)
                )
            )
            statement.setObjectName("detail.consent")
            statement.setTextFormat(Qt.TextFormat.RichText)
            statement.setWordWrap(True)
            statement.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
            layout.addWidget(statement)
            layout.addSpacing(6)
            self.codes_panel = panel_for(record.outcome, raised)
            layout.addWidget(self.codes_panel)
        layout.addSpacing(10)
        try:
            from gpshare.ui.letter_view import LettersPanel

            self.letters_panel: QWidget | None = LettersPanel(
                self.session, record, body, view=self.view
            )
            layout.addWidget(self.letters_panel)
        except ImportError:  # the letter module is not in this build
            self.letters_panel = None
        except StoreError as exc:
            self.letters_panel = None
            problem = QLabel(str(exc))
            problem.setProperty("role", "error")
            problem.setWordWrap(True)
            layout.addWidget(problem)
        layout.addStretch(1)
        scroll.setWidget(body)
        return scroll

    def _build_followups(self) -> QWidget:
        page = QWidget()
        layout = QVBoxLayout(page)
        layout.setContentsMargins(16, 12, 16, 12)
        layout.setSpacing(8)
        self.followup_state = QLabel()
        self.followup_state.setObjectName("detail.followup_state")
        self.followup_state.setWordWrap(True)
        self.followup_state.setProperty("role", "info")
        layout.addWidget(self.followup_state)
        self.followups_table = _table(
            "detail.followups", ("When", "Event", "Details", "Note", "Recorded by"), 3
        )
        layout.addWidget(self.followups_table, 1)
        self.followups: list[FollowUp] = []
        return page

    def _build_addenda(self) -> QWidget:
        page = QWidget()
        layout = QVBoxLayout(page)
        layout.setContentsMargins(0, 0, 0, 12)
        self.addenda_view = _browser("detail.addenda")
        layout.addWidget(self.addenda_view, 1)
        row = QHBoxLayout()
        row.setContentsMargins(16, 0, 16, 0)
        self.addendum_button = QPushButton("Add a&ddendum…")
        self.addendum_button.setObjectName("detail.add_addendum")
        self.addendum_button.clicked.connect(self.add_addendum)
        self.addendum_button.setEnabled(not self.record.is_draft)
        row.addWidget(self.addendum_button)
        row.addStretch(1)
        layout.addLayout(row)
        return page

    def _build_access_log(self) -> QWidget:
        page = QWidget()
        layout = QVBoxLayout(page)
        layout.setContentsMargins(16, 12, 16, 12)
        hint = QLabel(
            "Everyone who has created, viewed, printed, exported or changed this record, newest first."
        )
        hint.setProperty("role", "hint")
        layout.addWidget(hint)
        self.access_error = _message("detail.access_error", "error")
        layout.addWidget(self.access_error)
        self.access_table = _table("detail.access_log", ("When", "Who", "What", "Details"), 3)
        layout.addWidget(self.access_table, 1)
        return page

    # -- loading --
    def refresh(self) -> None:
        """Re-read the record view (not audited as a new view) and show it."""
        try:
            view = self.session.views.record_view(self.record.id, audit_view=False)
        except StoreError as exc:
            dialogs.error(self, "Record", str(exc))
            return
        self._show(view)

    def _show(self, view: RecordView) -> None:
        """Show the state, follow-ups and addenda of `view` (and its access log once loaded)."""
        self.view = view
        self.state = view.referral_state
        self.followups = list(view.followups)
        addenda = view.addenda
        self._show_state()
        fill_table(
            self.followups_table,
            (
                [
                    fmt_when(f.at),
                    EVENT_LABELS.get(f.event, f.event),
                    followup_details(f),
                    f.note or "",
                    self._who(f.recorded_by),
                ]
                for f in self.followups
            ),
        )
        self.tabs.setTabText(2, f"&Follow-up ({len(self.followups)})")
        if addenda:
            blocks = "".join(
                f'<div style="margin-bottom:14px;"><b>{escape(fmt_when(a.created))}</b>'
                f' <span style="color:{SECONDARY_TEXT};">— {escape(self._who(a.author))}</span>'
                f'<p style="margin-top:4px;">{_e(a.body)}</p></div>'
                for a in addenda
            )
        else:
            blocks = f'<p style="color:{SECONDARY_TEXT};">No addenda. Add one to record a later fact about this concern.</p>'
        self.addenda_view.setHtml(blocks)
        self.tabs.setTabText(3, f"Adde&nda ({len(addenda)})")
        if self.review_panel is not None:
            self.tabs.setTabText(4, f"Lead &review ({len(self.review_panel.reviews)})")
        if self.access_table is not None and view.access_log is not None:
            self.load_access_log(view.access_log)

    def _who(self, username: str) -> str:
        if username == self.record.clinician and self.record.clinician_name:
            return self.record.clinician_name
        if username == self.session.user.username:
            return self.session.user.full_name
        return username

    def _show_state(self) -> None:
        state, record = self.state, self.record
        if record.is_draft:
            chip, tone, nxt = "Draft — not completed", "", ""
            summary = "This record is a draft: follow-up starts once it is completed."
        elif state is None:
            chip, tone, nxt, summary = record.status.capitalize(), "", "", ""
        else:
            chip = state.status_label
            tone = (
                "overdue"
                if state.overdue
                else "done"
                if state.status in ("closed", "outcome_recorded")
                else ""
            )
            nxt = (
                f"Next: {state.next_action}, due {due_text(state)}"
                if state.next_action
                else "Nothing is due."
            )
            parts = [state.status_label + "."]
            if state.sent_at:
                parts.append(f"Sent {fmt_when(state.sent_at)}.")
            if state.acknowledgement_due and not state.acknowledged_at:
                parts.append(
                    f"Acknowledgement due by {fmt_day(state.acknowledgement_due)} (one working day)."
                )
            if state.acknowledged_at:
                parts.append(f"Acknowledged {fmt_when(state.acknowledged_at)}.")
            if state.decision:
                parts.append(
                    f"Local authority decision: {LA_DECISIONS.get(state.decision, state.decision)}."
                )
            if state.next_action:
                parts.append(nxt + ".")
            summary = " ".join(parts)
        self.status_chip.setText(chip)
        self.status_chip.setProperty("tone", tone)
        refresh(self.status_chip)
        self.next_label.setText(nxt)
        self.next_label.setProperty("overdue", bool(state and state.overdue))
        refresh(self.next_label)
        self.followup_state.setText(summary)
        self.followup_state.setProperty("role", "error" if state and state.overdue else "info")
        refresh(self.followup_state)

    def _tab_changed(self, index: int) -> None:
        if (
            self.access_table is not None
            and self.tabs.widget(index) is self.access_table.parentWidget()
        ):
            self.load_access_log()

    def load_access_log(self, events: Sequence[AuditEvent] | None = None) -> None:
        """Show the access log: the record view's `events` when it was just read, else read it
        again (showing the tab later lists what happened since, e.g. a letter opened)."""
        assert self.access_table is not None
        try:
            if events is None:
                events = self.session.lead.record_access_log(self.record.id)
        except StoreError as exc:
            self.access_error.setText(str(exc))
            self.access_error.show()
            return
        events = sorted(events, key=lambda e: e.seq, reverse=True)
        fill_table(
            self.access_table,
            (
                [
                    fmt_when(e.at),
                    self._who(e.actor),
                    action_label(e.action),
                    audit_details(e.details),
                ]
                for e in events
            ),
            colours=[RED if e.action == "permission_denied" else None for e in events],
        )

    # -- actions --
    def record_followup(self) -> FollowUp | None:
        dialog = FollowUpDialog(self.session, self.record, self.state, self)
        if dialogs.exec_dialog(dialog) != QDialog.DialogCode.Accepted or dialog.saved is None:
            return None
        self.refresh()
        self.tabs.setCurrentIndex(2)
        self.changed.emit(self.record.id)
        return dialog.saved

    def add_addendum(self) -> None:
        dialog = AddendumDialog(self.session, self.record, self)
        if dialogs.exec_dialog(dialog) != QDialog.DialogCode.Accepted:
            return
        self.refresh()
        self.changed.emit(self.record.id)

    def _review_saved(self) -> None:
        self.refresh()
        self.changed.emit(self.record.id)
