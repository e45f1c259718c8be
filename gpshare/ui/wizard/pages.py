"""Building blocks of the wizard's screens: field rows, step pages, guidance, banners, icons.

Nothing here decides anything: the wizard passes in what the navigator returned and these
widgets only show it.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from functools import lru_cache
from html import escape

from PySide6.QtCore import QPointF, QRectF, Qt, Signal
from PySide6.QtGui import (
    QColor,
    QFont,
    QIcon,
    QPainter,
    QPainterPath,
    QPen,
    QPixmap,
)
from PySide6.QtWidgets import (
    QFrame,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QScrollArea,
    QSizePolicy,
    QVBoxLayout,
    QWidget,
)

from gpshare.forms import Field, Form, Step
from gpshare.navigator import PATHWAY_LABELS as PATHWAY_LABELS
from gpshare.navigator import PriorRecord
from gpshare.ui.widgets import fmt_date, plain_label, rich_label, set_prop
from gpshare.ui.wizard.fields import ConfirmField, make_field_widget

# Colours (NHS identity palette, as gpshare.ui.style uses).
BLUE = "#005EB8"
DARK_BLUE = "#003087"
TEXT = "#212B32"
SECONDARY = "#4C6272"
BORDER = "#D8DDE0"
PALE_GREY = "#F0F4F5"
RED = "#D5281B"
PALE_RED = "#FBEAE8"
AMBER = "#FFB81C"
PALE_AMBER = "#FFF6E0"
GREEN = "#007F3B"
PALE_GREEN = "#E6F2EB"
PALE_BLUE = "#E8F1FA"

ROW_MAX_WIDTH = 820


# Wizard-scoped styles; the application stylesheet (gpshare.ui.style) provides the rest.
WIZARD_QSS = f"""
QWidget#wizard {{ background: white; }}
QFrame#wizard\\.header {{ background: white; border-bottom: 1px solid {BORDER}; }}
QLabel#wizard\\.title {{ font-size: 15pt; font-weight: 600; color: {TEXT}; }}
QLabel#wizard\\.child {{ color: {TEXT}; font-weight: 600; }}
QLabel#wizard\\.record {{ color: {SECONDARY}; }}
QFrame#wizard\\.footer {{ background: {PALE_GREY}; border-top: 1px solid {BORDER}; }}
QLabel#wizard\\.save_status {{ color: {SECONDARY}; }}
QLabel#wizard\\.save_status[failed="true"] {{ color: {RED}; font-weight: 600; }}
QListWidget#wizard\\.steps {{
    background: {PALE_GREY};
    border: none;
    border-right: 1px solid {BORDER};
    padding-top: 8px;
    outline: none;
}}
QListWidget#wizard\\.steps::item {{
    padding: 7px 6px;
    border-left: 4px solid transparent;
    color: {BLUE};
}}
QListWidget#wizard\\.steps::item:selected {{
    background: white;
    color: {TEXT};
    border-left: 4px solid {BLUE};
}}
QListWidget#wizard\\.steps::item:hover {{ background: {BORDER}; }}
QListWidget#wizard\\.steps:focus {{ border: none; border-right: 1px solid {BORDER}; }}
QFrame#wizard\\.guidance {{ background: {PALE_GREY}; border-left: 1px solid {BORDER}; }}
QFrame#wizard\\.guidance QLabel {{ background: transparent; }}
QLabel[role="guidancehead"] {{ font-weight: 700; color: {TEXT}; font-size: 11pt; }}
QLabel[role="source"] {{ color: {SECONDARY}; font-size: 9pt; }}
QLabel[role="stepno"] {{ color: {SECONDARY}; font-weight: 600; }}
QLabel[role="fieldlabel"] {{ font-weight: 600; color: {TEXT}; }}
QLabel[role="optional"] {{ color: {SECONDARY}; font-weight: normal; }}
QLabel[role="fieldhelp"] {{ color: {SECONDARY}; }}
QLabel[role="fielderror"] {{ color: {RED}; font-weight: 600; }}
QFrame[fieldrow="true"] {{ border: none; border-left: 4px solid transparent; }}
QFrame[fieldrow="true"][error="true"] {{ border-left-color: {RED}; background: #FFF8F7; }}
QFrame[group="true"] {{ background: #F7F9FA; border: 1px solid {BORDER}; }}
QFrame[group="true"] QLabel {{ background: transparent; }}
QFrame[group="true"] QRadioButton {{ background: transparent; }}
QFrame[banner="critical"] {{ background: {PALE_RED}; border-left: 6px solid {RED}; }}
QFrame[banner="warning"] {{ background: {PALE_AMBER}; border-left: 6px solid {AMBER}; }}
QFrame[banner="info"] {{ background: {PALE_BLUE}; border-left: 6px solid {BLUE}; }}
QFrame[banner="success"] {{ background: {PALE_GREEN}; border-left: 6px solid {GREEN}; }}
QFrame[banner] QLabel {{ background: transparent; }}
QFrame[panel="true"] {{ background: white; border: 1px solid {BORDER}; }}
QFrame[panel="true"] QLabel {{ background: transparent; }}
QListWidget#wizard\\.error_list {{ border: 1px solid {BORDER}; }}
QListWidget#wizard\\.error_list::item {{ padding: 6px 4px; color: {TEXT}; border-bottom: 1px solid {BORDER}; }}
QListWidget#wizard\\.error_list::item:selected {{ background: {PALE_RED}; color: {TEXT}; }}
QScrollArea#wizard\\.page, QScrollArea#wizard\\.summary {{ background: white; }}
QWidget[pagebody="true"] {{ background: white; }}
"""


# ----- icons -----------------------------------------------------------------------------------------


@lru_cache(maxsize=128)
def step_icon(state: str, number: int, size: int = 24) -> QIcon:
    """A round step marker: 'done' (green tick), 'error' (red !), 'current' (blue number),
    'todo' (grey outlined number), 'summary' (blue list)."""
    scale = 2
    pixmap = QPixmap(size * scale, size * scale)
    pixmap.setDevicePixelRatio(scale)
    pixmap.fill(Qt.GlobalColor.transparent)
    p = QPainter(pixmap)
    p.setRenderHint(QPainter.RenderHint.Antialiasing)
    rect = QRectF(2, 2, size - 4, size - 4)
    colours = {"done": GREEN, "error": RED, "current": BLUE, "todo": "#8A9AA5", "summary": BLUE}
    colour = QColor(colours.get(state, BLUE))
    if state == "todo":
        p.setPen(QPen(colour, 1.6))
        p.setBrush(QColor("white"))
    else:
        p.setPen(Qt.PenStyle.NoPen)
        p.setBrush(colour)
    p.drawEllipse(rect)
    white = QColor("white")
    if state == "done":
        pen = QPen(
            white, 2.4, Qt.PenStyle.SolidLine, Qt.PenCapStyle.RoundCap, Qt.PenJoinStyle.RoundJoin
        )
        p.setPen(pen)
        path = QPainterPath(QPointF(size * 0.30, size * 0.52))
        path.lineTo(QPointF(size * 0.44, size * 0.66))
        path.lineTo(QPointF(size * 0.71, size * 0.36))
        p.setBrush(Qt.BrushStyle.NoBrush)
        p.drawPath(path)
    elif state == "error":
        p.setPen(QPen(white, 2.6, Qt.PenStyle.SolidLine, Qt.PenCapStyle.RoundCap))
        p.drawLine(QPointF(size / 2, size * 0.28), QPointF(size / 2, size * 0.56))
        p.drawPoint(QPointF(size / 2, size * 0.72))
    elif state == "summary":
        p.setPen(QPen(white, 1.8, Qt.PenStyle.SolidLine, Qt.PenCapStyle.RoundCap))
        for i in range(3):
            y = size * (0.35 + 0.15 * i)
            p.drawLine(QPointF(size * 0.32, y), QPointF(size * 0.68, y))
    else:
        font = QFont()
        font.setPixelSize(int(size * 0.5))
        font.setBold(True)
        p.setFont(font)
        p.setPen(white if state == "current" else colour)
        p.drawText(rect, Qt.AlignmentFlag.AlignCenter, str(number))
    p.end()
    icon = QIcon()
    for mode in (QIcon.Mode.Normal, QIcon.Mode.Selected, QIcon.Mode.Active):
        icon.addPixmap(pixmap, mode)
    return icon


# ----- field rows ------------------------------------------------------------------------------------


class FieldRow(QFrame):
    """Label, help, the input widget and its error message, for one field."""

    def __init__(
        self, field: Field, parent: QWidget | None = None, *, compact: bool = False
    ) -> None:
        super().__init__(parent)
        self.field = field
        self.setObjectName(f"row.{field.id}")
        self.setProperty("fieldrow", True)
        self.setProperty("compact", compact)
        self.input = make_field_widget(field)
        optional = not field.required and field.required_when is None
        outer = QVBoxLayout(self)
        outer.setContentsMargins(10, 6 if compact else 8, 4, 6 if compact else 8)
        outer.setSpacing(4)

        self.label: QLabel | None = None
        if not isinstance(self.input, ConfirmField):
            text = escape(field.label)
            if optional:
                text += f' <span style="color:{SECONDARY}; font-weight:normal;">(optional)</span>'
            self.label = QLabel(text)
            self.label.setTextFormat(Qt.TextFormat.RichText)
            self.label.setWordWrap(True)
            self.label.setProperty("role", "fieldlabel")
            self.label.setBuddy(self.input)
        self.help: QLabel | None = None
        if field.help:
            self.help = plain_label(field.help, "fieldhelp")
        self.error = plain_label("", "fielderror")
        self.error.setObjectName(f"{field.id}.error")
        self.error.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.error.hide()
        self.input.setAccessibleDescription(field.help)
        # A screen reader lands on one option of a group: it says the question and its help too.
        for button in getattr(self.input, "buttons", []):
            if button.accessibleName() != field.label:
                button.setAccessibleDescription(
                    f"{field.label}. {field.help}" if field.help else field.label
                )

        if compact and self.label is not None:
            line = QHBoxLayout()
            line.setSpacing(12)
            self.label.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Preferred)
            line.addWidget(self.label, 5)
            line.addWidget(self.input, 4)
            outer.addLayout(line)
            if self.help:
                outer.addWidget(self.help)
            outer.addWidget(self.error)
        else:
            if self.label is not None:
                outer.addWidget(self.label)
            if self.help:
                outer.addWidget(self.help)
            outer.addWidget(self.error)
            outer.addWidget(self.input)

    def set_errors(self, messages: Sequence[str]) -> None:
        text = "\n".join(dict.fromkeys(messages))
        if text == self.error.text() and self.error.isVisible() == bool(text):
            return
        self.error.setText(text)
        self.error.setVisible(bool(text))
        set_prop(self, "error", bool(text))
        set_prop(self.input, "invalid", bool(text))


# ----- step pages ------------------------------------------------------------------------------------


class StepPage(QScrollArea):
    """One step of the form: heading, optional chronology panel, and its field rows."""

    def __init__(self, step: Step, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.step = step
        self.setObjectName("wizard.page")
        self.setProperty("step", step.id)
        self.setWidgetResizable(True)
        self.setFrameShape(QFrame.Shape.NoFrame)
        self.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        body = QWidget()
        body.setProperty("pagebody", True)
        self.body_layout = QVBoxLayout(body)
        self.body_layout.setContentsMargins(28, 20, 28, 28)
        self.body_layout.setSpacing(6)
        self.step_number = plain_label("", "stepno")
        self.step_number.setObjectName(f"wizard.step_number.{step.id}")
        title = plain_label(step.title)
        title.setProperty("heading", "h1")
        self.body_layout.addWidget(self.step_number)
        self.body_layout.addWidget(title)
        self.body_layout.addSpacing(6)
        self.extra = QVBoxLayout()  # chronology panel goes here on the concern step
        self.extra.setSpacing(8)
        self.body_layout.addLayout(self.extra)
        self.rows: dict[str, FieldRow] = {}
        self._groups: list[tuple[QFrame, list[str]]] = []
        self._add_rows(step.fields, body)
        self.body_layout.addStretch(1)
        self.setWidget(body)

    def _add_rows(self, fields: Sequence[Field], body: QWidget) -> None:
        # A run of three or more radio questions with the same answers (e.g. the exploitation
        # indicators) is laid out as a compact question/answer grid.
        runs: list[list[Field]] = []
        for fld in fields:
            simple = (
                fld.type == "choice"
                and 0 < len(fld.options) <= 4
                and (sum(len(o.label) for o in fld.options) <= 30)
            )
            if runs and simple and runs[-1] and _same_shape(runs[-1][-1], fld):
                runs[-1].append(fld)
            else:
                runs.append([fld])
        for run in runs:
            if len(run) < 3:
                for fld in run:
                    row = FieldRow(fld, body)
                    row.setMaximumWidth(ROW_MAX_WIDTH)
                    self.rows[fld.id] = row
                    self.body_layout.addWidget(row)
                continue
            group = QFrame(body)
            group.setObjectName(f"wizard.group.{run[0].id}")
            group.setProperty("group", True)
            group.setMaximumWidth(ROW_MAX_WIDTH)
            group_layout = QVBoxLayout(group)
            group_layout.setContentsMargins(0, 8, 0, 4)
            group_layout.setSpacing(0)
            answers = [o.label for o in run[0].options]
            choices = (
                ", ".join(answers[:-1]) + f" or {answers[-1]}" if len(answers) > 1 else answers[0]
            )
            caption = plain_label(f"For each of these, choose {choices}.", "fieldhelp")
            caption.setContentsMargins(14, 0, 0, 4)
            group_layout.addWidget(caption)
            for fld in run:
                row = FieldRow(fld, group, compact=True)
                self.rows[fld.id] = row
                group_layout.addWidget(row)
            self.body_layout.addWidget(group)
            self._groups.append((group, [f.id for f in run]))

    def update_groups(self) -> None:
        """Hide a question group when all of its questions are hidden."""
        for group, ids in self._groups:
            group.setHidden(all(self.rows[i].isHidden() for i in ids))

    def set_position(self, number: int, total: int) -> None:
        self.step_number.setText(f"Step {number} of {total}")


def _same_shape(a: Field, b: Field) -> bool:
    return (
        a.type == "choice"
        and b.type == "choice"
        and a.tokens == b.tokens
        and a.show_when == b.show_when
    )


# ----- guidance ----------------------------------------------------------------------------------------


class GuidancePanel(QFrame):
    """The current step's guidance in plain English and the sources it rests on."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("wizard.guidance")
        self.setMinimumWidth(250)
        self.setMaximumWidth(330)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(18, 20, 18, 16)
        layout.setSpacing(8)
        head = plain_label("Guidance", "guidancehead")
        layout.addWidget(head)
        scroll = QScrollArea()
        scroll.setWidgetResizable(True)
        scroll.setFrameShape(QFrame.Shape.NoFrame)
        scroll.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        scroll.setStyleSheet(
            "QScrollArea, QScrollArea > QWidget > QWidget { background: transparent; }"
        )
        inner = QWidget()
        self._inner = QVBoxLayout(inner)
        self._inner.setContentsMargins(0, 0, 6, 0)
        self._inner.setSpacing(8)
        self.text = plain_label("")
        self.text.setObjectName("wizard.guidance_text")
        self.text.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self._inner.addWidget(self.text)
        self._inner.addSpacing(6)
        self.sources_head = plain_label("Sources", "guidancehead")
        self._inner.addWidget(self.sources_head)
        self.sources = plain_label("", "source")
        self.sources.setObjectName("wizard.sources")
        self.sources.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self._inner.addWidget(self.sources)
        self._inner.addStretch(1)
        scroll.setWidget(inner)
        layout.addWidget(scroll, 1)

    def show_step(self, step: Step | None, summary_text: str = "") -> None:
        if step is None:
            self.text.setText(summary_text)
            self.sources.setText("")
            self.sources_head.hide()
            return
        self.text.setText("\n\n".join(guidance_sentences(step.guidance)))
        cites = [f"Source: {s.cite()}" for s in step.sources]
        self.sources.setText("\n\n".join(cites))
        self.sources_head.setVisible(bool(cites))


def guidance_sentences(text: str) -> list[str]:
    """Guidance split into short paragraphs, one sentence each, for reading at a glance."""
    out: list[str] = []
    for paragraph in text.split("\n\n"):
        flat = " ".join(paragraph.split())
        out.extend(s for s in _SENTENCE_END.split(flat) if s)
    return out


_SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=[A-Z‘“'\"(])")


# ----- banners -----------------------------------------------------------------------------------------


class Banner(QFrame):
    """A coloured notice: critical (red), warning (amber), info (blue) or success (green)."""

    def __init__(
        self,
        severity: str,
        title: str,
        body: str = "",
        name: str = "",
        parent: QWidget | None = None,
    ) -> None:
        super().__init__(parent)
        if name:
            self.setObjectName(name)
        self.setProperty("banner", severity)
        self.setAccessibleName(title)
        layout = QHBoxLayout(self)
        layout.setContentsMargins(14, 9, 12, 9)
        layout.setSpacing(10)
        self.label = rich_label("")
        layout.addWidget(self.label, 1)
        self.severity = severity
        self.title = ""
        self.body = ""
        self.action: QPushButton | None = None
        self.update_text(severity, title, body)

    def update_text(self, severity: str, title: str, body: str = "") -> None:
        if (severity, title, body) == (self.severity, self.title, self.body):
            return
        self.severity, self.title, self.body = severity, title, body
        set_prop(self, "banner", severity)
        self.setAccessibleName(title)
        text = f"<b>{escape(title)}</b>"
        if body:
            text += "<br>" + escape(body).replace("\n", "<br>")
        self.label.setText(text)

    def add_action(self, text: str, name: str) -> QPushButton:
        button = QPushButton(text)
        button.setObjectName(name)
        button.setProperty("variant", "link")
        button.setCursor(Qt.CursorShape.PointingHandCursor)
        self.layout().addWidget(button)  # type: ignore[union-attr]
        self.action = button
        return button

    def text(self) -> str:
        return f"{self.title} {self.body}".strip()


def split_message(message: str) -> tuple[str, str]:
    """'First sentence. The rest' → ('First sentence.', 'The rest') for banner headings."""
    head, sep, rest = message.partition(". ")
    if not sep:
        return message, ""
    return head + ".", rest


# ----- chronology ------------------------------------------------------------------------------------


def prior_row_texts(form: Form, prior: PriorRecord) -> list[str]:
    decision = ""
    if prior.decision:
        decision = (
            form.option_label("decision", prior.decision)
            if form.has_field("decision")
            else prior.decision
        )
    return [
        fmt_date(prior.created),
        PATHWAY_LABELS.get(prior.pathway or "", prior.pathway or "–"),
        decision or "–",
        fmt_date(prior.review_date) if prior.review_date else "–",
        prior.author,
    ]


class ChronologyPanel(QFrame):
    """Earlier completed records for this child, in full (shown on the concern step)."""

    jump = Signal()

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("wizard.chronology")
        self.setProperty("banner", "warning")
        layout = QVBoxLayout(self)
        layout.setContentsMargins(14, 10, 14, 12)
        layout.setSpacing(6)
        self.heading = rich_label("")
        layout.addWidget(self.heading)
        self.table = rich_label("")
        self.table.setObjectName("wizard.chronology_table")
        layout.addWidget(self.table)
        self.hide()

    def show_records(self, form: Form, records: Sequence[PriorRecord]) -> None:
        if not records:
            self.hide()
            return
        count = len(records)
        self.heading.setText(
            f"<b>Earlier concerns are recorded for this child ({count} record"
            f"{'s' if count != 1 else ''}).</b><br>Read them before you decide: small concerns "
            "together may show a risk. Then tick the confirmation below."
        )
        head = ["Date", "Pathway", "Decision", "Review by", "Recorded by"]
        rows = [
            "<tr>"
            + "".join(
                f'<th align="left" style="padding:3px 10px 3px 0; color:{SECONDARY};">{h}</th>'
                for h in head
            )
            + "</tr>"
        ]
        for prior in records:
            cells = "".join(
                f'<td style="padding:3px 10px 3px 0;">{escape(t)}</td>'
                for t in prior_row_texts(form, prior)
            )
            rows.append(f"<tr>{cells}</tr>")
            if prior.match == "probable":
                rows.append(
                    f'<tr><td colspan="5" style="padding:0 0 6px 0; color:{RED};">'
                    "<b>Probable match — confirm it is the same child</b> (matched on family "
                    "name and date of birth, not NHS number)</td></tr>"
                )
        self.table.setText(f'<table cellspacing="0">{"".join(rows)}</table>')
        self.show()


def chronology_summary(form: Form, records: Sequence[PriorRecord]) -> tuple[str, str]:
    """(title, body) for the compact chronology banner shown on every step."""
    latest = max(records, key=lambda r: r.created)
    texts = prior_row_texts(form, latest)
    count = len(records)
    title = (
        f"Earlier concerns are recorded for this child: {count} record{'s' if count != 1 else ''}."
    )
    body = f"Latest {texts[0]}: {texts[1]}"
    if latest.decision:
        body += f" ({texts[2]})"
    if latest.review_date:
        body += f", review by {texts[3]}"
    body += f", recorded by {texts[4]}."
    if any(r.match == "probable" for r in records):
        body += " Probable match — confirm it is the same child."
    return title, body
