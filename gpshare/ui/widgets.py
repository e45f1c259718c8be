"""Small widget helpers shared by the screens: headings, messages, plain and rich labels, dates
as a practice reads them, list tables, OK/Cancel rows."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, date, datetime
from typing import Any

from PySide6.QtCore import QSize, Qt
from PySide6.QtGui import QResizeEvent, QTextDocument
from PySide6.QtWidgets import (
    QAbstractItemView,
    QDialogButtonBox,
    QHeaderView,
    QLabel,
    QPushButton,
    QSizePolicy,
    QTableView,
    QTableWidget,
    QWidget,
)

from gpshare.ui.style import refresh


def heading(text: str, level: str = "h2") -> QLabel:
    """A heading label styled by the `heading` property."""
    label = QLabel(text)
    label.setProperty("heading", level)
    return label


def hint(text: str) -> QLabel:
    """A wrapped, muted explanatory line."""
    label = QLabel(text)
    label.setProperty("role", "hint")
    label.setWordWrap(True)
    return label


def message_label(name: str, role: str = "error") -> QLabel:
    """A hidden plain-text message line (shown with :func:`set_message`)."""
    label = QLabel()
    label.setObjectName(name)
    label.setProperty("role", role)
    label.setWordWrap(True)
    label.setTextFormat(Qt.TextFormat.PlainText)
    label.hide()
    return label


def set_message(label: QLabel, text: str, role: str) -> None:
    """Show `text` in a message line with the given role (error, success, info…)."""
    label.setText(text)
    label.setProperty("role", role)
    refresh(label)
    label.show()


def setup_table(view: QTableView, *, stretch: int | None = None) -> None:
    """Row selection, no editing, alternating rows, keyboard-friendly; optional stretch column."""
    view.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
    view.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
    view.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
    view.setAlternatingRowColors(True)
    view.setTabKeyNavigation(False)  # Tab leaves the table; arrows move inside it
    view.setWordWrap(False)
    view.verticalHeader().hide()
    view.verticalHeader().setDefaultSectionSize(view.fontMetrics().height() + 14)
    header = view.horizontalHeader()
    header.setHighlightSections(False)
    header.setDefaultAlignment(Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignVCenter)
    header.setStretchLastSection(stretch is None)
    if stretch is not None:
        header.setSectionResizeMode(stretch, QHeaderView.ResizeMode.Stretch)


def list_table(name: str, headers: Sequence[str], stretch: int) -> QTableWidget:
    """An empty read-only list table with the given column headers."""
    table = QTableWidget(0, len(headers))
    table.setObjectName(name)
    table.setHorizontalHeaderLabels(list(headers))
    setup_table(table, stretch=stretch)
    return table


def ok_cancel(ok_text: str, prefix: str) -> tuple[QDialogButtonBox, QPushButton, QPushButton]:
    """A dialog's button row: a default primary OK (`<prefix>.ok`) and Cancel (`<prefix>.cancel`)."""
    buttons = QDialogButtonBox()
    ok = QPushButton(ok_text)
    ok.setObjectName(f"{prefix}.ok")
    ok.setProperty("variant", "primary")
    ok.setDefault(True)
    cancel = QPushButton("Cancel")
    cancel.setObjectName(f"{prefix}.cancel")
    buttons.addButton(ok, QDialogButtonBox.ButtonRole.AcceptRole)
    buttons.addButton(cancel, QDialogButtonBox.ButtonRole.RejectRole)
    return buttons, ok, cancel


class ElidedLabel(QLabel):
    """One line of plain text that never widens its window: too long, it ends in "…" and the
    whole text is in the tooltip (and the accessible name, for screen readers)."""

    def __init__(self, text: str = "", parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setTextFormat(Qt.TextFormat.PlainText)
        self.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)
        self.setMinimumWidth(40)
        self._full = ""
        self.setText(text)

    def setText(self, text: str) -> None:  # noqa: N802 - Qt API
        self._full = text
        self.setToolTip(text)
        self.setAccessibleName(text)
        self._elide()

    def text(self) -> str:
        """The whole text (what is painted may be shorter)."""
        return self._full

    def shown_text(self) -> str:
        """The text as painted, perhaps ending in "…"."""
        return super().text()

    def resizeEvent(self, event: QResizeEvent) -> None:  # noqa: N802 - Qt API
        super().resizeEvent(event)
        self._elide()

    def _elide(self) -> None:
        shown = self.fontMetrics().elidedText(
            self._full, Qt.TextElideMode.ElideRight, max(0, self.contentsRect().width())
        )
        super().setText(shown)


def set_prop(widget: QWidget, name: str, value: Any) -> None:
    """Set a dynamic property used in a style selector and re-polish the widget."""
    if widget.property(name) == value:
        return
    widget.setProperty(name, value)
    style = widget.style()
    style.unpolish(widget)
    style.polish(widget)
    widget.update()


def plain_label(text: str = "", role: str | None = None, *, wrap: bool = True) -> QLabel:
    """A label that shows text exactly as given (no rich-text interpretation)."""
    label = QLabel(text)
    label.setTextFormat(Qt.TextFormat.PlainText)
    label.setWordWrap(wrap)
    if role:
        label.setProperty("role", role)
    return label


class RichLabel(QLabel):
    """A wrapped rich-text label whose height is measured on the real document (QLabel's own
    estimate misses paragraph and table spacing, cutting the last line off)."""

    def heightForWidth(self, width: int) -> int:  # noqa: N802 - Qt API
        document = QTextDocument()
        document.setDefaultFont(self.font())
        document.setDocumentMargin(0)
        document.setHtml(self.text())
        margins = self.contentsMargins()
        document.setTextWidth(max(1, width - margins.left() - margins.right()))
        # + one line: QLabel lays paragraphs out with slightly more spacing than a bare document.
        measured = int(document.size().height() + 0.999) + margins.top() + margins.bottom()
        measured += self.fontMetrics().lineSpacing()
        return max(super().heightForWidth(width), measured)

    def minimumSizeHint(self) -> QSize:  # noqa: N802 - Qt API
        hint = super().minimumSizeHint()
        return QSize(hint.width(), self.heightForWidth(max(hint.width(), self.width())))


def rich_label(html: str = "", role: str | None = None) -> QLabel:
    """A wrapped, selectable rich-text label (a :class:`RichLabel`)."""
    label = RichLabel(html)
    label.setTextFormat(Qt.TextFormat.RichText)
    label.setAlignment(Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignTop)
    label.setWordWrap(True)
    label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
    if role:
        label.setProperty("role", role)
    return label


def fmt_date(value: Any) -> str:
    """A date as a practice reads it: 14 Mar 2024 (ISO input; anything else unchanged)."""
    if isinstance(value, date):
        day = value
    else:
        try:
            day = date.fromisoformat(str(value)[:10])
        except ValueError:
            return str(value) if value is not None else ""
    return f"{day.day} {day.strftime('%b %Y')}"


def _uk_zone() -> Any:
    try:
        from zoneinfo import ZoneInfo

        return ZoneInfo("Europe/London")
    except Exception:  # tzdata missing on a minimal system: show UTC rather than fail
        return UTC


UK = _uk_zone()


def to_uk(moment: datetime) -> datetime:
    """An aware datetime in UK time (naive values are taken as UTC, as the services store)."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UK)


def fmt_when(value: str | datetime | None, *, seconds: bool = False) -> str:
    """'25 Nov 2026, 10:00' in UK time; a plain date stays a date; unreadable text is shown as is."""
    if value is None or value == "":
        return ""
    if isinstance(value, str):
        if len(value) <= 10:
            return fmt_date(value)
        try:
            moment = datetime.fromisoformat(value)
        except ValueError:
            return value
    else:
        moment = value
    local = to_uk(moment)
    return f"{local.day} {local.strftime('%b %Y, %H:%M' + (':%S' if seconds else ''))}"


def uk_time(when: datetime) -> datetime:
    """`when` in UK time (Europe/London), for lists a person reads."""
    aware = when if when.tzinfo else when.replace(tzinfo=UTC)
    try:
        from zoneinfo import ZoneInfo

        return aware.astimezone(ZoneInfo("Europe/London"))
    except Exception:  # tzdata missing: UTC is close enough for a list
        return aware


def file_size(num_bytes: int) -> str:
    """'512 bytes', '12 KB', '1.2 MB'."""
    if num_bytes < 1024:
        return f"{num_bytes} bytes"
    if num_bytes < 1024 * 1024:
        return f"{num_bytes / 1024:.0f} KB"
    return f"{num_bytes / (1024 * 1024):.1f} MB"
