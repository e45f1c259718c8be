"""The wizard's last page: the outcome in words, the consent / justification statement composed
from the answers, and everything that still blocks completion (click one to go and fix it).

The text composition functions are Qt-free and shared with the read-only record view.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from html import escape
from typing import Any

from PySide6.QtCore import QRect, QSize, Qt, QTimer, Signal
from PySide6.QtGui import QColor, QPainter, QPaintEvent, QPixmap, QResizeEvent
from PySide6.QtWidgets import (
    QFrame,
    QLabel,
    QListWidget,
    QListWidgetItem,
    QScrollArea,
    QSizePolicy,
    QVBoxLayout,
    QWidget,
)

from gpshare.forms import Form
from gpshare.navigator import CONSENT_BASIS_LABELS as CONSENT_BASIS_LABELS
from gpshare.navigator import Evaluation, FieldError, Prompt
from gpshare.ui.widgets import fmt_date, plain_label, rich_label, set_prop
from gpshare.ui.wizard.pages import BORDER, PATHWAY_LABELS, SECONDARY

ART6 = {
    "public_task": "UK GDPR Article 6(1)(e), public task",
    "legal_obligation": "UK GDPR Article 6(1)(c), legal obligation",
    "vital_interests": "UK GDPR Article 6(1)(d), vital interests",
}
ART9 = {
    "sch1_para18_safeguarding": "Article 9(2)(g) with Data Protection Act 2018 Schedule 1 "
    "paragraph 18 (safeguarding of children)",
    "health_social_care": "Article 9(2)(h), health or social care",
    "vital_interests": "Article 9(2)(c), vital interests",
}
SUBJECTS = {
    "child": "the {person}",
    "parent_with_pr": "the person with parental responsibility",
    "both": "the {person} and the person with parental responsibility",
}
NOT_RECORDED = "<i>not yet recorded</i>"


def _s(answers: Mapping[str, Any], key: str) -> str:
    value = answers.get(key)
    return value.strip() if isinstance(value, str) else ""


def _e(text: str) -> str:
    """Escape user text for a rich-text label, keeping its line breaks."""
    return escape(text).replace("\n", "<br>")


def _clause(text: str) -> str:
    """User text to be followed by our own punctuation: without its final full stop."""
    return _e(text.rstrip().rstrip(".").rstrip())


def _label(form: Form, field_id: str, token: Any) -> str:
    if not isinstance(token, str):
        return ""
    return form.option_label(field_id, token) if form.has_field(field_id) else token


def _lower_first(text: str) -> str:
    return text[:1].lower() + text[1:] if text[:2] != text[:2].upper() else text


def subject_text(answers: Mapping[str, Any], age: int | None) -> str:
    person = "young person" if age is not None and age >= 13 else "child"
    template = SUBJECTS.get(_s(answers, "consent_subject"), "the {person} or family")
    return template.format(person=person)


def consent_statement(
    form: Form, answers: Mapping[str, Any], outcome: Mapping[str, Any], age: int | None = None
) -> list[str]:
    """The consent / justification statement, as rich-text paragraphs (user text escaped)."""
    a = answers
    decision = _s(a, "decision")
    if not decision:
        return ["The decision is not recorded yet, so there is no consent statement."]
    paragraphs: list[str] = []
    if decision == "monitor":
        paragraphs.append(
            "No information is shared at this stage: the decision is to monitor and review."
        )
        reasons = _s(a, "reasons_not_sharing")
        paragraphs.append(
            f"Reasons for not sharing now: {_clause(reasons) if reasons else NOT_RECORDED}."
        )
        review = _s(a, "review_date")
        paragraphs.append(f"Review by: {escape(fmt_date(review)) if review else NOT_RECORDED}.")
        support = _s(a, "support_offered")
        if support:
            paragraphs.append(f"Support offered: {_e(support)}")
        return paragraphs

    if decision == "required_by_law":
        requirement = _label(form, "legal_requirement", a.get("legal_requirement"))
        paragraphs.append(
            "This disclosure is required by law"
            + (f": {escape(_lower_first(requirement))}." if requirement else ".")
        )
    subject = subject_text(a, age)
    sought = a.get("consent_sought")
    result = _s(a, "consent_outcome")
    if sought is True and result == "given":
        by = _s(a, "consent_given_by")
        scope = _s(a, "consent_scope")
        paragraphs.append(
            f"Consent was given by {_clause(by) if by else escape(subject)}. "
            f"What may be shared, and with whom: {_clause(scope) if scope else NOT_RECORDED}."
        )
    elif sought is True and result == "refused":
        reasons = _s(a, "refusal_reasons")
        paragraphs.append(
            f"Consent was refused by {escape(subject)}"
            + (f" (reasons: {_clause(reasons)})." if reasons else ".")
        )
    elif sought is True and result == "partly_given":
        by = _s(a, "consent_given_by")
        scope = _s(a, "consent_scope")
        paragraphs.append(
            f"Consent was given for part only by {_e(by) if by else escape(subject)}: "
            f"{_clause(scope) if scope else NOT_RECORDED}. Anything beyond that is shared without consent."
        )
    elif sought is True and result == "unable_to_give":
        paragraphs.append(f"Consent was asked of {escape(subject)}, who was unable to give it.")
    elif sought is False:
        not_sought = [
            escape(_lower_first(_label(form, "not_sought_reasons", r)))
            for r in a.get("not_sought_reasons") or []
            if isinstance(r, str)
        ]
        paragraphs.append(
            "Consent was not sought because: "
            + ("; ".join(not_sought) if not_sought else NOT_RECORDED)
            + "."
        )
    else:
        paragraphs.append("Consent: " + NOT_RECORDED + ".")

    without = str(outcome.get("consent_basis") or "").startswith("shared_without") or (
        sought is False or result in ("refused", "partly_given", "unable_to_give")
    )
    if without:
        conclusion = _s(a, "conclusion_statement")
        paragraphs.append(
            "Information is shared without consent because: "
            + (_e(conclusion) if conclusion else NOT_RECORDED)
        )
        legal: list[str] = []
        art6 = _s(a, "lawful_basis_art6")
        legal.append(
            "Lawful basis: "
            + (
                escape(ART6.get(art6, _label(form, "lawful_basis_art6", art6)))
                if art6
                else NOT_RECORDED
            )
        )
        art9 = _s(a, "condition_art9")
        if art9:
            text = escape(ART9.get(art9, _label(form, "condition_art9", art9)))
            reason = _label(form, "para18_reason", a.get("para18_reason"))
            if art9 == "sch1_para18_safeguarding" and reason:
                text += f" — {escape(_lower_first(reason))}"
            legal.append("Condition for health information: " + text)
        aim = _label(form, "article8_aim", a.get("article8_aim"))
        if aim:
            legal.append("Human Rights Act Article 8(2) aim: " + escape(_lower_first(aim)))
        if a.get("minimum_necessary_confirmed") is True:
            legal.append("Only the minimum necessary information is shared")
        paragraphs.append(". ".join(legal) + ".")
    return paragraphs


def outcome_rows(
    form: Form, answers: Mapping[str, Any], outcome: Mapping[str, Any], *, completed: bool = False
) -> list[tuple[str, str]]:
    """(label, rich text) rows describing the outcome in words."""
    rows: list[tuple[str, str]] = []
    pathway = outcome.get("pathway")
    decision = _label(form, "decision", answers.get("decision"))
    rows.append(
        (
            "Pathway",
            escape(PATHWAY_LABELS.get(str(pathway), str(pathway))) if pathway else NOT_RECORDED,
        )
    )
    if decision:
        rows.append(("Decision", escape(decision)))
    basis = outcome.get("consent_basis")
    rows.append(
        (
            "Consent basis",
            escape(CONSENT_BASIS_LABELS.get(str(basis), str(basis))) if basis else NOT_RECORDED,
        )
    )
    if outcome.get("letter_required"):
        rows.append(
            (
                "Letter",
                "A referral letter is required."
                if completed
                else "A referral letter is required: it is shown below as it will be sent. You "
                "sign it when you complete the assessment.",
            )
        )
    elif pathway:
        rows.append(("Letter", "No letter is needed."))
    recipient = _s(answers, "recipient_name")
    if recipient and answers.get("decision") != "monitor":
        kind = _label(form, "recipient_type", answers.get("recipient_type"))
        method = _label(form, "method", answers.get("method"))
        text = _e(recipient) + (f" ({escape(kind)})" if kind else "")
        if method:
            text += f", by {escape(_lower_first(method))}"
        rows.append(("Share with", text))
    review = _s(answers, "review_date")
    if review and answers.get("decision") == "monitor":
        rows.append(("Review by", escape(fmt_date(review))))
    return rows


def rows_html(rows: Sequence[tuple[str, str]]) -> str:
    cells = "".join(
        f'<tr><td style="padding:3px 18px 3px 0; color:{SECONDARY}; white-space:nowrap;" valign="top">'
        f'{escape(label)}</td><td style="padding:3px 0;">{value}</td></tr>'
        for label, value in rows
    )
    return f'<table cellspacing="0">{cells}</table>'


# ----- the page ----------------------------------------------------------------------------------------


class PageImage(QWidget):
    """A letter page that scales to the width it is given (never wider than the window)."""

    def __init__(self, pixmap: QPixmap, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._pixmap = pixmap
        policy = QSizePolicy(QSizePolicy.Policy.Preferred, QSizePolicy.Policy.Preferred)
        policy.setHeightForWidth(True)
        self.setSizePolicy(policy)

    def minimumSizeHint(self) -> QSize:  # noqa: N802 - Qt API
        return QSize(160, self.heightForWidth(160))

    def sizeHint(self) -> QSize:  # noqa: N802 - Qt API
        return QSize(560, self.heightForWidth(560))

    def hasHeightForWidth(self) -> bool:  # noqa: N802 - Qt API
        return True

    def heightForWidth(self, width: int) -> int:  # noqa: N802 - Qt API
        size = self._pixmap.size()
        return int(width * size.height() / max(1, size.width()))

    def paintEvent(self, _event: QPaintEvent) -> None:  # noqa: N802 - Qt API
        painter = QPainter(self)
        painter.setRenderHint(QPainter.RenderHint.SmoothPixmapTransform)
        width = self.width()
        target = QRect(0, 0, width, self.heightForWidth(width))
        painter.drawPixmap(target, self._pixmap)
        painter.setPen(QColor(BORDER))
        painter.drawRect(target.adjusted(0, 0, -1, -1))


class SummaryPage(QScrollArea):
    """Outcome, statement, prompts and the remaining errors; emits `error_activated(field_id)`."""

    error_activated = Signal(str)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("wizard.summary")
        self.setWidgetResizable(True)
        self.setFrameShape(QFrame.Shape.NoFrame)
        self.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        # Always there, so the width never changes after the wrapped panels were measured
        # (a scroll bar appearing later narrowed them and cut their last lines off).
        self.setVerticalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOn)
        body = QWidget()
        body.setProperty("pagebody", True)
        layout = QVBoxLayout(body)
        layout.setContentsMargins(28, 20, 28, 28)
        layout.setSpacing(10)
        self.step_number = plain_label("", "stepno")
        layout.addWidget(self.step_number)
        title = plain_label("Check and complete")
        title.setProperty("heading", "h1")
        layout.addWidget(title)

        self.status = QFrame()
        self.status.setObjectName("wizard.summary_status")
        self.status.setProperty("banner", "warning")
        status_layout = QVBoxLayout(self.status)
        status_layout.setContentsMargins(14, 9, 12, 9)
        self.status_label = rich_label("")
        status_layout.addWidget(self.status_label)
        layout.addWidget(self.status)

        self.errors_head = plain_label("", None)
        self.errors_head.setProperty("heading", "h2")
        layout.addWidget(self.errors_head)
        self.errors_hint = plain_label(
            "Select a problem (click, or Enter) to go to the question and fix it.", "fieldhelp"
        )
        layout.addWidget(self.errors_hint)
        self.error_list = QListWidget()
        self.error_list.setObjectName("wizard.error_list")
        self.error_list.setAccessibleName("Problems to fix before completing")
        self.error_list.setWordWrap(True)
        self.error_list.setUniformItemSizes(False)
        self.error_list.itemClicked.connect(self._activated)
        self.error_list.itemActivated.connect(self._activated)
        layout.addWidget(self.error_list)

        self.outcome_head = plain_label("Outcome")
        self.outcome_head.setProperty("heading", "h2")
        layout.addWidget(self.outcome_head)
        self.outcome_frame, self.outcome = self._panel("wizard.outcome")
        layout.addWidget(self.outcome_frame)

        statement_head = plain_label("Consent and information-sharing statement")
        statement_head.setProperty("heading", "h2")
        layout.addWidget(statement_head)
        self.statement_frame, self.statement = self._panel("wizard.statement")
        layout.addWidget(self.statement_frame)

        self.prompts_head = plain_label("Prompts recorded with the outcome")
        self.prompts_head.setProperty("heading", "h2")
        layout.addWidget(self.prompts_head)
        self.prompts_frame, self.prompts = self._panel("wizard.summary_prompts")
        layout.addWidget(self.prompts_frame)

        # The letter exactly as it will be signed, marked as a draft, so the clinician reads
        # it before putting their name to it.
        self.letter_head = plain_label("The referral letter you will sign")
        self.letter_head.setProperty("heading", "h2")
        layout.addWidget(self.letter_head)
        self.letter_note = plain_label("", "fieldhelp")
        self.letter_note.setObjectName("wizard.letter_note")
        layout.addWidget(self.letter_note)
        self.letter_pages = QVBoxLayout()
        self.letter_pages.setSpacing(10)
        layout.addLayout(self.letter_pages)
        self.letter_text = ""
        self.show_letter(None, "")
        layout.addStretch(1)
        self.setWidget(body)

    def show_letter(self, pdf: bytes | None, note: str) -> None:
        """Show the draft letter's pages (None: hide the section, or show only `note`)."""
        while self.letter_pages.count():
            item = self.letter_pages.takeAt(0)
            widget = item.widget() if item is not None else None
            if widget is not None:
                widget.deleteLater()
        self.letter_note.setText(note)
        self.letter_note.setVisible(bool(note))
        self.letter_head.setVisible(bool(note) or pdf is not None)
        self.letter_text = ""
        if pdf is None:
            return
        from PySide6.QtCore import QBuffer, QByteArray, QIODevice
        from PySide6.QtPdf import QPdfDocument

        from gpshare.ui.letter_view import render_page_on_white

        data = QByteArray(pdf)
        buffer = QBuffer(data)
        buffer.open(QIODevice.OpenModeFlag.ReadOnly)
        document = QPdfDocument()
        document.load(buffer)
        texts = []
        width = 560
        for page in range(document.pageCount()):
            points = document.pagePointSize(page)
            height = int(width * points.height() / max(1.0, points.width()))
            image = render_page_on_white(document, page, QSize(width * 2, height * 2))
            shown = PageImage(QPixmap.fromImage(image))
            shown.setObjectName(f"wizard.letter_page.{page + 1}")
            shown.setAccessibleName(f"Draft letter, page {page + 1} of {document.pageCount()}")
            shown.setMaximumWidth(width + 140)
            self.letter_pages.addWidget(shown)
            texts.append(document.getAllText(page).text())
        self.letter_text = "\n".join(texts)
        document.close()
        buffer.close()

    def _panel(self, name: str) -> tuple[QFrame, QLabel]:
        frame = QFrame()
        frame.setProperty("panel", True)
        inner = QVBoxLayout(frame)
        inner.setContentsMargins(14, 10, 14, 10)
        label = rich_label("")
        label.setObjectName(name)
        inner.addWidget(label)
        return frame, label

    def _activated(self, item: QListWidgetItem) -> None:
        field_id = item.data(Qt.ItemDataRole.UserRole)
        if isinstance(field_id, str) and field_id:
            self.error_activated.emit(field_id)

    def show_evaluation(
        self,
        form: Form,
        answers: Mapping[str, Any],
        evaluation: Evaluation,
        extra_errors: Sequence[FieldError] = (),
    ) -> None:
        errors = list(evaluation.errors) + [e for e in extra_errors if e not in evaluation.errors]
        self._show_errors(form, errors)
        outcome = evaluation.outcome.to_dict()
        cleaned = evaluation.cleaned
        rows = outcome_rows(form, cleaned, outcome)
        note = ""
        if errors:
            note = (
                f'<p style="color:{SECONDARY};">Provisional: this outcome may change '
                "as you answer the remaining questions.</p>"
            )
        self.outcome.setText(rows_html(rows) + note)
        self.statement.setText(
            "".join(
                f'<p style="margin:0 0 6px 0;">{p}</p>'
                for p in consent_statement(form, cleaned, outcome, evaluation.age)
            )
        )
        self._show_prompts(evaluation.prompts)
        QTimer.singleShot(0, self._fit_panels)

    def resizeEvent(self, event: QResizeEvent) -> None:  # noqa: N802 - Qt API
        super().resizeEvent(event)
        QTimer.singleShot(0, self._fit_panels)

    def _fit_panels(self) -> None:
        """Give each wrapped panel the height its text needs at its width now: the scroll
        area otherwise squeezes them and their last lines are cut off."""
        for label in (self.outcome, self.statement, self.prompts):
            try:
                width = label.width()
            except RuntimeError:  # deleted while the timer waited
                return
            if width > 0:
                label.setMinimumHeight(label.heightForWidth(width))

    def _show_errors(self, form: Form, errors: Sequence[FieldError]) -> None:
        self.error_list.clear()
        titles = {s.id: s.title for s in form.steps}
        for error in errors:
            where = titles.get(error.step, error.step)
            label = form.field(error.field).label if form.has_field(error.field) else error.field
            place = where if label == where else f"{where} › {label}"
            item = QListWidgetItem(f"{place}\n{error.message}")
            item.setData(Qt.ItemDataRole.UserRole, error.field)
            item.setToolTip("Go to this question")
            self.error_list.addItem(item)
        count = len(errors)
        if count:
            self.errors_head.setText(
                f"{count} thing{'s' if count != 1 else ''} to fix before you can complete"
            )
            self.status_label.setText(
                "<b>This assessment cannot be completed yet.</b><br>"
                "Fix the problems listed below. Your answers are saved as a draft as you go."
            )
            set_prop(self.status, "banner", "warning")
        else:
            self.status_label.setText(
                "<b>Everything needed has been answered.</b><br>Check the outcome and the statement "
                "below, then press <b>Complete assessment</b> (Ctrl+Enter). A completed record "
                "cannot be changed; later facts are added as addenda."
            )
            set_prop(self.status, "banner", "success")
        self.errors_head.setVisible(bool(count))
        self.errors_hint.setVisible(bool(count))
        self.error_list.setVisible(bool(count))
        if count:
            height = sum(self.error_list.sizeHintForRow(i) for i in range(min(count, 8)))
            self.error_list.setFixedHeight(min(max(height + 6, 60), 320))

    def _show_prompts(self, prompts: Sequence[Prompt]) -> None:
        if not prompts:
            self.prompts_head.hide()
            self.prompts_frame.hide()
            return
        colours = {"critical": "#D5281B", "warning": "#8A5A00", "info": "#005EB8"}
        self.prompts.setText(
            "".join(
                f'<p style="margin:0 0 6px 0;"><span style="color:{colours.get(p.severity, SECONDARY)}; '
                f'font-weight:600;">{escape(p.severity.capitalize())}:</span> {escape(p.message)}</p>'
                for p in prompts
            )
        )
        self.prompts_head.show()
        self.prompts_frame.show()

    def error_fields(self) -> list[str]:
        return [
            str(self.error_list.item(i).data(Qt.ItemDataRole.UserRole))
            for i in range(self.error_list.count())
        ]
