"""'Codes to add to the GP record': the SNOMED CT codes of a completed v2 record, each with a Copy
button, and the online and proxy access warning. Shown to the author and to the lead.

The clipboard only ever receives a code (a public SNOMED CT concept id), never patient data.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from PySide6.QtCore import Qt
from PySide6.QtGui import QGuiApplication
from PySide6.QtWidgets import (
    QAbstractItemView,
    QHeaderView,
    QLabel,
    QPushButton,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from gpshare.clock import today
from gpshare.codes import (
    VISIBILITY_PROMPT,
    SuggestedCode,
    critical_visibility_message,
    record_prompts,
    suggested_codes,
    visibility_is_critical,
    visibility_warning,
)
from gpshare.records import parse_date
from gpshare.ui.widgets import heading, hint

if TYPE_CHECKING:
    from gpshare.forms import Form
    from gpshare.navigator import Prompt
    from gpshare.records import Record
    from gpshare.services import Session

TITLE = "Codes to add to the GP record"


def raised_prompts(session: Session, form: Form, record: Record) -> dict[str, Prompt]:
    """The prompts a completed record raises, with the severity its answers give them."""
    completed = parse_date(record.completed) or today(session.clock)
    return record_prompts(form, record.answers, completed, session.practice.rule_settings())


def panel_for(
    outcome: Mapping[str, Any] | None, prompts: Mapping[str, Prompt] | None
) -> CodesPanel:
    """A CodesPanel for a record whose raised prompts are known (see raised_prompts).

    `prompts` is None when the record's form cannot be loaded: the codes are still shown
    (they are in the outcome), with the critical warning, since its severity is unknown.
    """
    if prompts is None:
        return CodesPanel(outcome, {VISIBILITY_PROMPT: "critical"})
    return CodesPanel(
        outcome,
        {token: p.severity for token, p in prompts.items()},
        critical_message=critical_visibility_message(prompts),
    )


class CodesPanel(QWidget):
    """The suggested codes of one outcome; hidden when the outcome has no codes key (v1)."""

    def __init__(
        self,
        outcome: Mapping[str, Any] | None,
        severities: Mapping[str, str],
        parent: QWidget | None = None,
        *,
        critical_message: str | None = None,
    ) -> None:
        super().__init__(parent)
        self.setObjectName("codes")
        found = suggested_codes(outcome)
        self.codes: list[SuggestedCode] = found or []
        self.critical = visibility_is_critical(outcome, severities)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(6)
        layout.addWidget(heading(TITLE))
        layout.addWidget(
            hint(
                "Add these in the child's record (and the family members' records named) in "
                "your clinical system. The referral letter does not include them."
            )
        )
        self.warning = QLabel(visibility_warning(outcome, severities, critical_message))
        self.warning.setObjectName("codes.warning")
        self.warning.setWordWrap(True)
        self.warning.setTextFormat(Qt.TextFormat.PlainText)
        self.warning.setProperty("role", "error" if self.critical else "info")
        layout.addWidget(self.warning)

        self.table = QTableWidget(len(self.codes), 4)
        self.table.setObjectName("codes.table")
        self.table.setAccessibleName(TITLE)
        self.table.setHorizontalHeaderLabels(["Code", "Term", "For", ""])
        self.table.verticalHeader().hide()
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setTabKeyNavigation(False)
        self.table.setWordWrap(True)
        self.table.setVerticalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        header = self.table.horizontalHeader()
        header.setDefaultAlignment(Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignVCenter)
        header.setSectionResizeMode(0, QHeaderView.ResizeMode.ResizeToContents)
        header.setSectionResizeMode(1, QHeaderView.ResizeMode.Stretch)
        header.setSectionResizeMode(2, QHeaderView.ResizeMode.Stretch)
        header.setSectionResizeMode(3, QHeaderView.ResizeMode.ResizeToContents)
        self.copy_buttons: list[QPushButton] = []
        for row, code in enumerate(self.codes):
            for col, text in enumerate((code.code, code.term, code.for_whom)):
                item = QTableWidgetItem(text)
                item.setToolTip(text)
                self.table.setItem(row, col, item)
            button = QPushButton("Copy")
            button.setObjectName(f"codes.copy.{row}")
            button.setToolTip(f"Copy {code.code} to the clipboard")
            button.setAccessibleName(f"Copy code {code.code}, {code.term}")
            button.clicked.connect(lambda _=False, c=code.code: self.copy(c))
            self.table.setCellWidget(row, 3, button)
            self.copy_buttons.append(button)
        self.table.resizeRowsToContents()
        self._fit_height()
        layout.addWidget(self.table)
        self.status = QLabel()
        self.status.setObjectName("codes.status")
        self.status.setProperty("role", "hint")
        layout.addWidget(self.status)
        if found is not None and not found:
            self.table.hide()
            self.warning.hide()
            self.status.setText("No codes are suggested for this record.")
        if found is None:
            self.hide()  # (never setVisible(True): before it has a parent that opens a window)

    def _fit_height(self) -> None:
        # The panel sits in a scrolling page: show every row rather than a second scroll bar.
        rows = sum(self.table.rowHeight(r) for r in range(self.table.rowCount()))
        self.table.setFixedHeight(rows + self.table.horizontalHeader().sizeHint().height() + 4)

    def copy(self, code: str) -> None:
        """Put one code on the clipboard and say so."""
        QGuiApplication.clipboard().setText(code)
        self.status.setText(f"Copied {code}. Paste it into the clinical system's code search.")
