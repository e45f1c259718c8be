"""One input widget per form field type.

Every class here is *the* input widget of its field: its ``objectName`` is the field id
(DESIGN §4) and it exposes the same small interface, so the wizard (and tests) can treat
all fields alike:

- ``get_value()`` — the answer as the navigator expects it (JSON-ready; ``None`` when
  unanswered). Values that do not parse are returned exactly as typed, so the navigator can
  say what is wrong with them; nothing the user typed is ever silently dropped.
- ``set_value(value)`` — show an answer (from a draft, a scenario, a test). Unexpected
  values are kept and shown, never discarded.
- ``changed`` — emitted whenever the value changes (typing, clicking, ``set_value``).
- ``committed`` — emitted when the value is *complete*: a radio button or box clicked, ten
  digits of an NHS number typed, a whole date typed, Return pressed. (Leaving the field is
  detected by the wizard for every type.)
- ``focus_input()`` — put the keyboard focus on the first control of the field.

Radio buttons and check boxes inside a group are named ``<field id>.<token>`` (bool fields:
``<field id>.yes`` / ``<field id>.no``) so tests can click them by name.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import date, datetime
from typing import Any

from PySide6.QtCore import QDate, QEvent, QPoint, QRect, QSize, Qt, Signal
from PySide6.QtGui import QAction, QColor, QIcon, QKeyEvent, QKeySequence, QPainter, QPen, QPixmap
from PySide6.QtWidgets import (
    QAbstractButton,
    QAbstractItemView,
    QButtonGroup,
    QCalendarWidget,
    QCheckBox,
    QComboBox,
    QFrame,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QLineEdit,
    QPlainTextEdit,
    QPushButton,
    QRadioButton,
    QSizePolicy,
    QStyle,
    QStyleOptionButton,
    QStylePainter,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from gpshare.forms import Column, Field
from gpshare.ui.style import FOCUS, TEXT

DEFAULT_MAX_LENGTH = {"text": 200, "longtext": 10000}
RADIO_LIMIT = 5  # choice fields with more options than this use a drop-down list

# ----- date parsing (mirrors what the navigator accepts) ------------------------------------

_ISO_DATE = re.compile(r"^(\d{4})-(\d{1,2})-(\d{1,2})$")
_UK_DATE = re.compile(r"^(\d{1,2})[/.-](\d{1,2})[/.-](\d{4})$")
_ISO_DATETIME = re.compile(r"^(\d{4})-(\d{1,2})-(\d{1,2})[T ](\d{1,2}):(\d{2})(?::(\d{2}))?$")
_UK_DATETIME = re.compile(
    r"^(\d{1,2})[/.-](\d{1,2})[/.-](\d{4})[T ,]+(\d{1,2}):(\d{2})(?::(\d{2}))?$"
)


def parse_date_text(text: str) -> date | None:
    """A date typed as 2026-11-25 or 25/11/2026 (also 25.11.2026, 25-11-2026), else None."""
    text = text.strip()
    try:
        if m := _ISO_DATE.match(text):
            return date(int(m.group(1)), int(m.group(2)), int(m.group(3)))
        if m := _UK_DATE.match(text):
            return date(int(m.group(3)), int(m.group(2)), int(m.group(1)))
    except ValueError:
        return None
    return None


def parse_datetime_text(text: str) -> datetime | None:
    """A date and time typed as 2026-11-25T14:05, 2026-11-25 14:05 or 25/11/2026 14:05."""
    text = text.strip()
    try:
        if m := _ISO_DATETIME.match(text):
            g = m.groups()
            return datetime(int(g[0]), int(g[1]), int(g[2]), int(g[3]), int(g[4]), int(g[5] or 0))
        if m := _UK_DATETIME.match(text):
            g = m.groups()
            return datetime(int(g[2]), int(g[1]), int(g[0]), int(g[3]), int(g[4]), int(g[5] or 0))
    except ValueError:
        return None
    return None


def _iso_datetime(moment: datetime) -> str:
    return moment.isoformat(timespec="minutes" if moment.second == 0 else "seconds")


def _as_text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "yes" if value else "no"
    return str(value)


def calendar_icon(size: int = 18) -> QIcon:
    """A small calendar drawn in code (no icon files, no emoji fonts needed)."""
    pixmap = QPixmap(size, size)
    pixmap.fill(Qt.GlobalColor.transparent)
    painter = QPainter(pixmap)
    painter.setRenderHint(QPainter.RenderHint.Antialiasing, False)
    ink = QColor("#005EB8")
    painter.setPen(QPen(ink, 1.5))
    body = QRect(2, 4, size - 5, size - 6)
    painter.drawRect(body)
    painter.fillRect(QRect(2, 4, size - 5, 4), ink)
    painter.drawLine(QPoint(6, 2), QPoint(6, 5))
    painter.drawLine(QPoint(size - 7, 2), QPoint(size - 7, 5))
    painter.setPen(QPen(ink, 1))
    for row in range(2):
        for col in range(3):
            x = 5 + col * 3 + col
            y = 10 + row * 3
            painter.fillRect(QRect(x, y, 2, 2), ink)
    painter.end()
    return QIcon(pixmap)


# ----- buttons whose labels wrap ------------------------------------------------------------------


class _Wrapping:
    """Mixin for a radio button / check box whose label wraps to the width it is given, so a
    long option never makes its page wider than the window (Qt's own never wrap)."""

    _element = QStyle.ControlElement.CE_RadioButton
    _indicator = QStyle.PixelMetric.PM_ExclusiveIndicatorWidth
    _spacing = QStyle.PixelMetric.PM_RadioButtonLabelSpacing

    def _indent(self) -> int:
        widget: Any = self
        style = widget.style()
        return (
            style.pixelMetric(self._indicator, None, widget)
            + style.pixelMetric(self._spacing, None, widget)
            + 6
        )

    def _setup_wrapping(self) -> None:
        widget: Any = self
        policy = QSizePolicy(QSizePolicy.Policy.Preferred, QSizePolicy.Policy.Preferred)
        policy.setHeightForWidth(True)
        widget.setSizePolicy(policy)

    def minimumSizeHint(self) -> QSize:  # noqa: N802 - Qt API
        widget: Any = self
        metrics = widget.fontMetrics()
        return QSize(self._indent() + metrics.horizontalAdvance("M") * 10, metrics.height() + 4)

    def hasHeightForWidth(self) -> bool:  # noqa: N802 - Qt API
        return True

    def heightForWidth(self, width: int) -> int:  # noqa: N802 - Qt API
        widget: Any = self
        room = max(10, width - self._indent())
        text = widget.fontMetrics().boundingRect(
            QRect(0, 0, room, 100_000), int(Qt.TextFlag.TextWordWrap), widget.text()
        )
        return max(widget.fontMetrics().height(), text.height()) + 6

    def hitButton(self, pos: QPoint) -> bool:  # noqa: N802 - Qt API
        widget: Any = self
        return bool(widget.rect().contains(pos))

    def paintEvent(self, _event: Any) -> None:  # noqa: N802 - Qt API
        widget: Any = self
        painter = QStylePainter(widget)
        if widget.hasFocus():  # the focus ring covers the whole label, as the style sheet's does
            painter.fillRect(widget.rect(), QColor(FOCUS))
            painter.setPen(QPen(QColor(TEXT), 2))
            painter.drawRect(widget.rect().adjusted(1, 1, -1, -1))
        option = QStyleOptionButton()
        widget.initStyleOption(option)
        label = option.text
        option.text = ""
        height = widget.fontMetrics().height() + 6
        option.rect = QRect(0, 0, self._indent(), height)
        painter.drawControl(self._element, option)
        painter.setPen(widget.palette().color(widget.foregroundRole()))
        text_rect = widget.rect().adjusted(self._indent(), 3, 0, -3)
        painter.drawText(
            text_rect, int(Qt.AlignmentFlag.AlignLeft | Qt.TextFlag.TextWordWrap), label
        )


class WrappingRadioButton(_Wrapping, QRadioButton):
    """A radio button whose label wraps."""

    def __init__(self, text: str, parent: QWidget | None = None) -> None:
        super().__init__(text, parent)
        self._setup_wrapping()


class WrappingCheckBox(_Wrapping, QCheckBox):
    """A check box whose label wraps."""

    _element = QStyle.ControlElement.CE_CheckBox
    _indicator = QStyle.PixelMetric.PM_IndicatorWidth
    _spacing = QStyle.PixelMetric.PM_CheckBoxLabelSpacing

    def __init__(self, text: str, parent: QWidget | None = None) -> None:
        super().__init__(text, parent)
        self._setup_wrapping()


# ----- text -----------------------------------------------------------------------------------


class TextField(QLineEdit):
    """One line of text with the form's length limit."""

    changed = Signal()
    committed = Signal()

    def __init__(self, field: Field, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.field = field
        self.setObjectName(field.id)
        self.setAccessibleName(field.label)
        self._limit = field.max_length or DEFAULT_MAX_LENGTH["text"]
        self.setMaxLength(self._limit)
        self.textChanged.connect(lambda _t: self.changed.emit())
        self.returnPressed.connect(self.committed.emit)
        if self._limit <= 20:
            self.setMaximumWidth(max(140, self._limit * 14))
        elif self._limit <= 100:
            self.setMaximumWidth(480)

    def get_value(self) -> str | None:
        text = self.text()
        return text if text.strip() else None

    def set_value(self, value: Any) -> None:
        text = _as_text(value)
        # Never cut a stored answer short: the navigator reports it as too long instead.
        self.setMaxLength(max(self._limit, len(text)))
        self.setText(text)
        self.setCursorPosition(0)

    def focus_input(self) -> None:
        self.setFocus(Qt.FocusReason.OtherFocusReason)
        self.selectAll()


class IntegerField(TextField):
    """A whole number typed as digits; the navigator checks the range and reports mistakes."""

    def __init__(self, field: Field, parent: QWidget | None = None) -> None:
        super().__init__(field, parent)
        self.setMaxLength(6)
        self.setMaximumWidth(140)
        self._limit = 6

    def get_value(self) -> Any:
        text = self.text().strip()
        if not text:
            return None
        return int(text) if text.isdigit() and text.isascii() else text


class LongTextField(QPlainTextEdit):
    """Several lines of text; Tab moves on (keyboard-first), Ctrl+Tab inserts nothing."""

    changed = Signal()
    committed = Signal()

    def __init__(self, field: Field, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.field = field
        self.setObjectName(field.id)
        self.setAccessibleName(field.label)
        self.setTabChangesFocus(True)
        self.setLineWrapMode(QPlainTextEdit.LineWrapMode.WidgetWidth)
        self.limit = field.max_length or DEFAULT_MAX_LENGTH["longtext"]
        lines = 3 if self.limit <= 500 else 5
        height = self.fontMetrics().lineSpacing() * lines + 18
        self.setMinimumHeight(height)
        self.setMaximumHeight(height + self.fontMetrics().lineSpacing() * 4)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Preferred)
        self.textChanged.connect(self.changed.emit)

    def sizeHint(self) -> QSize:  # noqa: N802 - Qt API
        hint = super().sizeHint()
        return QSize(hint.width(), self.minimumHeight())

    def get_value(self) -> str | None:
        text = self.toPlainText()
        return text if text.strip() else None

    def set_value(self, value: Any) -> None:
        self.setPlainText(_as_text(value))

    def focus_input(self) -> None:
        self.setFocus(Qt.FocusReason.OtherFocusReason)


class NhsNumberField(QLineEdit):
    """An NHS number, shown as 3-3-4 while it is typed; committed once ten digits are in."""

    changed = Signal()
    committed = Signal()

    def __init__(self, field: Field, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.field = field
        self.setObjectName(field.id)
        self.setAccessibleName(field.label)
        self.setPlaceholderText("e.g. 943 476 5919")
        self.setMaxLength(20)
        self.setMaximumWidth(220)
        self.textEdited.connect(self._reformat)
        self.textChanged.connect(self._on_text)
        self.returnPressed.connect(self.committed.emit)

    @staticmethod
    def grouped(text: str) -> str:
        """Digits (with any spaces/hyphens) regrouped 3-3-4; anything else comes back unchanged."""
        digits = "".join(ch for ch in text if ch not in " -")
        if not digits or not (digits.isascii() and digits.isdigit()):
            return text
        groups = [digits[:3], digits[3:6], digits[6:]]
        return " ".join(g for g in groups if g)

    def _reformat(self, text: str) -> None:
        new = self.grouped(text)
        if new == text:
            return
        cursor = self.cursorPosition()
        digits_before = sum(1 for ch in text[:cursor] if ch.isdigit())
        self.blockSignals(True)
        self.setText(new)
        self.blockSignals(False)
        position = 0
        seen = 0
        while position < len(new) and seen < digits_before:
            if new[position].isdigit():
                seen += 1
            position += 1
        self.setCursorPosition(position)
        self._on_text(new)

    def _on_text(self, text: str) -> None:
        self.changed.emit()
        digits = "".join(ch for ch in text if ch.isdigit())
        if len(digits) >= 10:
            self.committed.emit()

    def get_value(self) -> str | None:
        text = self.text()
        return text.strip() if text.strip() else None

    def set_value(self, value: Any) -> None:
        self.setText(self.grouped(_as_text(value)))

    def focus_input(self) -> None:
        self.setFocus(Qt.FocusReason.OtherFocusReason)
        self.selectAll()


# ----- dates -------------------------------------------------------------------------------------


class _CalendarPopup(QFrame):
    """A calendar shown under a date field; Return or a click picks, Escape closes."""

    picked = Signal(QDate)

    def __init__(self, parent: QWidget) -> None:
        super().__init__(parent, Qt.WindowType.Popup)
        self.setObjectName("calendarPopup")
        self.setFrameShape(QFrame.Shape.Box)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(2, 2, 2, 2)
        self.calendar = QCalendarWidget(self)
        self.calendar.setObjectName("calendarPopup.calendar")
        self.calendar.setGridVisible(True)
        self.calendar.setFirstDayOfWeek(Qt.DayOfWeek.Monday)
        self.calendar.setVerticalHeaderFormat(QCalendarWidget.VerticalHeaderFormat.NoVerticalHeader)
        self.calendar.activated.connect(self._pick)
        self.calendar.clicked.connect(self._pick)
        layout.addWidget(self.calendar)

    def _pick(self, day: QDate) -> None:
        self.picked.emit(day)
        self.close()


class DateField(QLineEdit):
    """A date typed as 2026-11-25 or 25/11/2026, or picked from a calendar (button or Alt+Down).

    ``get_value`` gives ISO ``YYYY-MM-DD`` for any date it understands and the text as typed
    otherwise, so the navigator can explain the problem. Empty is allowed.
    """

    changed = Signal()
    committed = Signal()
    PLACEHOLDER = "YYYY-MM-DD or DD/MM/YYYY"

    def __init__(self, field: Field, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.field = field
        self.setObjectName(field.id)
        self.setAccessibleName(field.label)
        self.setPlaceholderText(self.PLACEHOLDER)
        self.setMaxLength(40)
        self.setMaximumWidth(240)
        self.calendar_action = QAction(calendar_icon(), "Choose from a calendar (Alt+Down)", self)
        self.calendar_action.setObjectName(f"{field.id}.calendar")
        self.calendar_action.triggered.connect(self.show_calendar)
        self.addAction(self.calendar_action, QLineEdit.ActionPosition.TrailingPosition)
        self._popup: _CalendarPopup | None = None
        self.textChanged.connect(self._on_text)
        self.returnPressed.connect(self.committed.emit)

    def _on_text(self, text: str) -> None:
        self.changed.emit()
        # A whole date of a known shape has been typed: the value is complete.
        if len(text.strip()) == 10 and parse_date_text(text) is not None:
            self.committed.emit()

    def keyPressEvent(self, event: QKeyEvent) -> None:  # noqa: N802 - Qt API
        alt_down = (
            event.key() == Qt.Key.Key_Down and event.modifiers() & Qt.KeyboardModifier.AltModifier
        )
        if alt_down or event.key() == Qt.Key.Key_F4:
            self.show_calendar()
            return
        super().keyPressEvent(event)

    def current_date(self) -> date | None:
        return parse_date_text(self.text())

    def show_calendar(self) -> None:
        if self._popup is None:
            self._popup = _CalendarPopup(self)
            self._popup.picked.connect(self._picked)
        current = self.current_date()
        start = QDate(current.year, current.month, current.day) if current else QDate.currentDate()
        self._popup.calendar.setSelectedDate(start)
        self._popup.adjustSize()
        self._popup.move(self.mapToGlobal(QPoint(0, self.height())))
        self._popup.show()
        self._popup.calendar.setFocus(Qt.FocusReason.PopupFocusReason)

    def _picked(self, day: QDate) -> None:
        self.set_from_calendar(date(day.year(), day.month(), day.day()))
        self.setFocus(Qt.FocusReason.PopupFocusReason)
        self.committed.emit()

    def set_from_calendar(self, day: date) -> None:
        self.setText(day.isoformat())

    def get_value(self) -> str | None:
        text = self.text().strip()
        if not text:
            return None
        parsed = parse_date_text(text)
        return parsed.isoformat() if parsed else text

    def set_value(self, value: Any) -> None:
        self.setText(_as_text(value))

    def focus_input(self) -> None:
        self.setFocus(Qt.FocusReason.OtherFocusReason)
        self.selectAll()


class DateTimeField(DateField):
    """A date and time: 2026-11-25T14:05, 2026-11-25 14:05 or 25/11/2026 14:05."""

    PLACEHOLDER = "YYYY-MM-DD HH:MM or DD/MM/YYYY HH:MM"

    def __init__(self, field: Field, parent: QWidget | None = None) -> None:
        super().__init__(field, parent)
        self.setMaximumWidth(300)

    def _on_text(self, text: str) -> None:
        self.changed.emit()
        if parse_datetime_text(text) is not None and re.search(r"\d:\d\d$", text.strip()):
            self.committed.emit()

    def current_date(self) -> date | None:
        moment = parse_datetime_text(self.text())
        return moment.date() if moment else parse_date_text(self.text().split(" ")[0].split("T")[0])

    def set_from_calendar(self, day: date) -> None:
        moment = parse_datetime_text(self.text())
        time_part = moment.strftime("%H:%M") if moment else datetime.now().strftime("%H:%M")
        self.setText(f"{day.isoformat()} {time_part}")

    def get_value(self) -> str | None:
        text = self.text().strip()
        if not text:
            return None
        moment = parse_datetime_text(text)
        return _iso_datetime(moment) if moment else text

    def set_value(self, value: Any) -> None:
        text = _as_text(value)
        moment = parse_datetime_text(text)
        self.setText(moment.strftime("%Y-%m-%d %H:%M") if moment and moment.second == 0 else text)


# ----- yes / no -------------------------------------------------------------------------------------


class _Group(QWidget):
    """Base for fields made of several buttons: focus goes to the checked or first one."""

    changed = Signal()
    committed = Signal()

    def __init__(self, field: Field, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.field = field
        self.setObjectName(field.id)
        self.setAccessibleName(field.label)
        self.buttons: list[QRadioButton | QCheckBox] = []

    def focus_input(self) -> None:
        target = next((b for b in self.buttons if b.isChecked()), None) or (
            self.buttons[0] if self.buttons else None
        )
        if target is not None:
            target.setFocus(Qt.FocusReason.OtherFocusReason)

    def _emit(self) -> None:
        self.changed.emit()
        self.committed.emit()


class _RadioGroup(_Group):
    """Exclusive radio buttons that can also be *unanswered* (none checked)."""

    def __init__(self, field: Field, parent: QWidget | None = None) -> None:
        super().__init__(field, parent)
        self.group = QButtonGroup(self)
        self.group.setExclusive(True)
        self.group.buttonToggled.connect(self._toggled)
        self.foreign: Any = None  # a stored value that matches no button, kept until replaced
        self.foreign_label = QLabel()
        self.foreign_label.setProperty("role", "hint")
        self.foreign_label.setWordWrap(True)
        self.foreign_label.hide()

    def add_radio(self, text: str, name: str, value: Any, *, wrap: bool = False) -> QRadioButton:
        button = WrappingRadioButton(text) if wrap else QRadioButton(text)
        button.setObjectName(name)
        button.setAccessibleName(text)
        button.setProperty("answer", value)
        self.group.addButton(button)
        self.buttons.append(button)
        button.installEventFilter(self)
        return button

    def eventFilter(self, watched: Any, event: Any) -> bool:  # noqa: N802 - Qt API
        """Arrow keys move to the next/previous option *and select it*, even when nothing was
        chosen yet (Qt only selects when the group already has a choice)."""
        if (
            isinstance(event, QKeyEvent)
            and event.type() == QKeyEvent.Type.KeyPress
            and watched in self.buttons
            and not event.modifiers() & ~Qt.KeyboardModifier.KeypadModifier
        ):
            step = _ARROW_STEP.get(Qt.Key(event.key()))
            if step is not None:
                index = (self.buttons.index(watched) + step) % len(self.buttons)
                target = self.buttons[index]
                target.setChecked(True)
                target.setFocus(Qt.FocusReason.TabFocusReason)
                return True
        found = _typed_ahead(self.buttons, watched, event)
        if found is not None:  # like the arrows, choosing by first letter selects
            found.setChecked(True)
            found.setFocus(Qt.FocusReason.TabFocusReason)
            return True
        return super().eventFilter(watched, event)

    def _toggled(self, _button: QRadioButton, checked: bool) -> None:
        if checked:
            self._set_foreign(None)
            self._emit()

    def _set_foreign(self, value: Any) -> None:
        self.foreign = value
        if value is None:
            self.foreign_label.hide()
        else:
            self.foreign_label.setText(
                f"Stored answer not recognised: “{_as_text(value)}”. Choose one."
            )
            self.foreign_label.show()

    def checked_value(self) -> Any:
        button = self.group.checkedButton()
        return None if button is None else button.property("answer")

    def clear_check(self) -> None:
        self.group.setExclusive(False)
        for button in self.buttons:
            button.setChecked(False)
        self.group.setExclusive(True)

    def select(self, value: Any) -> None:
        self.group.blockSignals(True)
        try:
            self.clear_check()
            match = (
                next((b for b in self.buttons if _same(b.property("answer"), value)), None)
                if value is not None
                else None
            )
            if match is not None:
                match.setChecked(True)
        finally:
            self.group.blockSignals(False)
        self._set_foreign(value if value is not None and match is None else None)
        self.changed.emit()

    def get_value(self) -> Any:
        value = self.checked_value()
        return self.foreign if value is None else value


_ARROW_STEP = {Qt.Key.Key_Down: 1, Qt.Key.Key_Right: 1, Qt.Key.Key_Up: -1, Qt.Key.Key_Left: -1}


def _typed_ahead(buttons: Sequence[QAbstractButton], watched: Any, event: Any) -> Any:
    """Type-ahead, as in the platform's lists: a letter or digit moves to the next option
    (after the focused one, wrapping round) whose label starts with it; None if none does."""
    if not (
        isinstance(event, QKeyEvent)
        and event.type() == QKeyEvent.Type.KeyPress
        and watched in buttons
        and not event.modifiers()
        & ~(Qt.KeyboardModifier.KeypadModifier | Qt.KeyboardModifier.ShiftModifier)
    ):
        return None
    typed = event.text().casefold()
    if len(typed) != 1 or not typed.isalnum():
        return None
    start = list(buttons).index(watched)
    for offset in range(1, len(buttons) + 1):
        button = buttons[(start + offset) % len(buttons)]
        if button.isEnabled() and button.text().replace("&", "").strip().casefold().startswith(
            typed
        ):
            return button
    return None


def _same(a: Any, b: Any) -> bool:
    return type(a) is type(b) and a == b


class BoolField(_RadioGroup):
    """Yes / No radio buttons; unanswered (neither) is distinct from No. Y and N keys answer."""

    def __init__(self, field: Field, parent: QWidget | None = None) -> None:
        super().__init__(field, parent)
        layout = QHBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(24)
        self.yes = self.add_radio("Yes", f"{field.id}.yes", True)
        self.no = self.add_radio("No", f"{field.id}.no", False)
        layout.addWidget(self.yes)
        layout.addWidget(self.no)
        layout.addWidget(self.foreign_label)
        layout.addStretch(1)

    def eventFilter(self, watched: Any, event: Any) -> bool:  # noqa: N802 - Qt API
        if (
            isinstance(event, QKeyEvent)
            and event.type() == QKeyEvent.Type.KeyPress
            and not event.modifiers()
        ):
            if event.key() == Qt.Key.Key_Y:
                self.yes.setChecked(True)
                self.yes.setFocus()
                return True
            if event.key() == Qt.Key.Key_N:
                self.no.setChecked(True)
                self.no.setFocus()
                return True
        return super().eventFilter(watched, event)

    def set_value(self, value: Any) -> None:
        self.select(value)


class ConfirmField(_Group):
    """A yes/no field that must be true (e.g. "I have read the earlier concerns"): a check box.

    Unticked is *unanswered* (``None``), so the navigator asks for it rather than reading it
    as a considered "no".
    """

    def __init__(self, field: Field, parent: QWidget | None = None) -> None:
        super().__init__(field, parent)
        layout = QHBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        self.box = WrappingCheckBox(field.label)
        self.box.setObjectName(f"{field.id}.yes")
        self.box.setAccessibleName(field.label)
        self.buttons.append(self.box)
        self.box.toggled.connect(lambda _c: self._emit())
        layout.addWidget(self.box, 1)
        self._foreign: Any = None

    def get_value(self) -> Any:
        if self.box.isChecked():
            return True
        return self._foreign

    def set_value(self, value: Any) -> None:
        self.box.blockSignals(True)
        self.box.setChecked(value is True)
        self.box.blockSignals(False)
        self._foreign = value if value is not None and value is not True else None
        self.changed.emit()


# ----- choices -------------------------------------------------------------------------------------


class RadioChoiceField(_RadioGroup):
    """One of up to five options, as radio buttons (in a row when the labels are short)."""

    def __init__(self, field: Field, parent: QWidget | None = None) -> None:
        super().__init__(field, parent)
        short = sum(len(o.label) for o in field.options) <= 48 and len(field.options) <= 4
        layout: QHBoxLayout | QVBoxLayout = QHBoxLayout(self) if short else QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(24 if short else 2)
        for option in field.options:
            button = self.add_radio(
                option.label, f"{field.id}.{option.token}", option.token, wrap=not short
            )
            if option.help:
                button.setToolTip(option.help)
            if short:
                layout.addWidget(button, 0, Qt.AlignmentFlag.AlignLeft)
            else:
                layout.addWidget(button)
        layout.addWidget(self.foreign_label)
        if short:
            layout.addStretch(1)

    def set_value(self, value: Any) -> None:
        self.select(value.strip() if isinstance(value, str) else value)


class ComboChoiceField(QComboBox):
    """One of many options, as a drop-down list with an empty first entry."""

    changed = Signal()
    committed = Signal()

    def __init__(self, field: Field, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.field = field
        self.setObjectName(field.id)
        self.setAccessibleName(field.label)
        self.addItem("— choose —", None)
        for option in field.options:
            self.addItem(option.label, option.token)
        # Sized for a typical option, not the longest: the list that drops down is as wide as
        # it needs, but the closed box never makes the page wider than the window.
        self.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon)
        self.setMinimumContentsLength(24)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Fixed)
        self.setMaximumWidth(560)
        self.view().setMinimumWidth(self.view().sizeHintForColumn(0) + 32)
        self.setStyleSheet("QComboBox { padding-right: 30px; }")
        self.currentIndexChanged.connect(self._changed)

    def _changed(self, _index: int) -> None:
        self.changed.emit()
        self.committed.emit()

    def get_value(self) -> Any:
        return self.currentData()

    def set_value(self, value: Any) -> None:
        if isinstance(value, str):
            value = value.strip()
        index = self.findData(value) if value is not None else 0
        if index < 0:  # keep an unrecognised stored value visible instead of dropping it
            self.addItem(f"Not recognised: {_as_text(value)}", value)
            index = self.count() - 1
        self.setCurrentIndex(index)

    def focus_input(self) -> None:
        self.setFocus(Qt.FocusReason.OtherFocusReason)


class MultiChoiceField(_Group):
    """Any number of options, as check boxes (also used for checklists)."""

    def __init__(self, field: Field, parent: QWidget | None = None) -> None:
        super().__init__(field, parent)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(2)
        for option in field.options:
            box = WrappingCheckBox(option.label)
            box.setObjectName(f"{field.id}.{option.token}")
            box.setAccessibleName(option.label)
            box.setProperty("answer", option.token)
            if option.help:
                box.setToolTip(option.help)
            # Ticking is not "done": the whole list is checked when the focus leaves it (the
            # wizard sees that), so a half-ticked checklist is not complained about.
            box.toggled.connect(lambda _c: self.changed.emit())
            box.installEventFilter(self)
            box.setFocusPolicy(Qt.FocusPolicy.ClickFocus)
            layout.addWidget(box)
            self.buttons.append(box)
        if self.buttons:  # one Tab stop for the whole list; arrows move inside it
            self.buttons[0].setFocusPolicy(Qt.FocusPolicy.StrongFocus)
        self.foreign: list[Any] = []
        self.foreign_label = QLabel()
        self.foreign_label.setProperty("role", "hint")
        self.foreign_label.hide()
        layout.addWidget(self.foreign_label)

    def eventFilter(self, watched: Any, event: Any) -> bool:  # noqa: N802 - Qt API
        """Up/Down move between the boxes; the box last visited is the group's Tab stop."""
        if watched in self.buttons and event.type() == QEvent.Type.FocusIn:
            for box in self.buttons:
                box.setFocusPolicy(
                    Qt.FocusPolicy.StrongFocus if box is watched else Qt.FocusPolicy.ClickFocus
                )
        elif (
            isinstance(event, QKeyEvent)
            and event.type() == QKeyEvent.Type.KeyPress
            and watched in self.buttons
            and event.matches(QKeySequence.StandardKey.SelectAll)
        ):
            # Select all ticks every box (or clears them all when all are ticked already).
            tick = not all(b.isChecked() for b in self.buttons)
            for box in self.buttons:
                box.setChecked(tick)
            return True
        elif (
            isinstance(event, QKeyEvent)
            and event.type() == QKeyEvent.Type.KeyPress
            and watched in self.buttons
            and not event.modifiers() & ~Qt.KeyboardModifier.KeypadModifier
            and event.key() in (Qt.Key.Key_Up, Qt.Key.Key_Down)
        ):
            index = self.buttons.index(watched) + (1 if event.key() == Qt.Key.Key_Down else -1)
            if 0 <= index < len(self.buttons):
                self.buttons[index].setFocus(Qt.FocusReason.TabFocusReason)
            return True
        elif (found := _typed_ahead(self.buttons, watched, event)) is not None:
            found.setFocus(Qt.FocusReason.TabFocusReason)  # a box is ticked with Space, as ever
            return True
        return super().eventFilter(watched, event)

    def get_value(self) -> list[Any] | None:
        chosen: list[Any] = [b.property("answer") for b in self.buttons if b.isChecked()]
        chosen += self.foreign
        return chosen or None

    def set_value(self, value: Any) -> None:
        values = (
            list(value) if isinstance(value, list | tuple) else ([] if value is None else [value])
        )
        wanted = {v.strip() if isinstance(v, str) else v for v in values if isinstance(v, str)}
        for box in self.buttons:
            box.blockSignals(True)
            box.setChecked(box.property("answer") in wanted)
            box.blockSignals(False)
        known = {b.property("answer") for b in self.buttons}
        self.foreign = [v for v in values if not (isinstance(v, str) and v.strip() in known)]
        if self.foreign:
            shown = ", ".join(_as_text(v) for v in self.foreign)
            self.foreign_label.setText(f"Stored answers not recognised: {shown}")
            self.foreign_label.show()
        else:
            self.foreign_label.hide()
        self.changed.emit()


# ----- people -------------------------------------------------------------------------------------------


class PeopleField(QWidget):
    """A small editable table of people with the form's columns; Add / Remove row buttons.

    Yes/no columns are check boxes. Dates may be typed as 2026-11-25 or 25/11/2026.
    ``get_value`` returns a list of ``{column id: value}`` (blank rows left out).
    """

    changed = Signal()
    committed = Signal()

    def __init__(
        self, field: Field, parent: QWidget | None = None, *, single: bool = False
    ) -> None:
        super().__init__(parent)
        self.field = field
        self.single = single
        self.setObjectName(field.id)
        self.setAccessibleName(field.label)
        self.columns: tuple[Column, ...] = field.columns
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(4)
        self.table = QTableWidget(0, len(self.columns), self)
        self.table.setObjectName(f"{field.id}.table")
        self.table.setAccessibleName(field.label)
        self.table.setHorizontalHeaderLabels(
            [c.label + (" *" if c.required else "") for c in self.columns]
        )
        self.table.verticalHeader().setVisible(False)
        self.table.setAlternatingRowColors(True)
        self.table.setTabKeyNavigation(False)  # Tab leaves the table; arrows move within it
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectItems)
        self.table.setEditTriggers(
            QAbstractItemView.EditTrigger.AllEditTriggers
            & ~QAbstractItemView.EditTrigger.CurrentChanged
        )
        self.table.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.table.setVerticalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        header = self.table.horizontalHeader()
        header.setDefaultAlignment(Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignVCenter)
        header.setTextElideMode(Qt.TextElideMode.ElideRight)
        metrics = header.fontMetrics()
        for index, column in enumerate(self.columns):
            if column.id == "name" or column.type == "longtext":
                header.setSectionResizeMode(index, QHeaderView.ResizeMode.Stretch)
            else:
                header.setSectionResizeMode(index, QHeaderView.ResizeMode.Interactive)
                label = self.table.horizontalHeaderItem(index)
                text = label.text() if label is not None else column.label
                self.table.setColumnWidth(index, max(110, metrics.horizontalAdvance(text) + 30))
        self.table.itemChanged.connect(self._item_changed)
        layout.addWidget(self.table)

        buttons = QHBoxLayout()
        buttons.setSpacing(8)
        noun = "person" if not single else "details"
        self.add_button = QPushButton(f"Add {noun}")
        self.add_button.setObjectName(f"{field.id}.add")
        self.add_button.setAccessibleName(f"Add a row to {field.label}")
        self.add_button.clicked.connect(self._add_clicked)
        self.remove_button = QPushButton("Remove selected")
        self.remove_button.setObjectName(f"{field.id}.remove")
        self.remove_button.setAccessibleName(f"Remove the selected row from {field.label}")
        self.remove_button.clicked.connect(self.remove_current_row)
        for button in (self.add_button, self.remove_button):
            button.setAutoDefault(True)  # Enter presses the focused button, not "Next"
        buttons.addWidget(self.add_button)
        buttons.addWidget(self.remove_button)
        buttons.addStretch(1)
        layout.addLayout(buttons)
        self._extra: list[dict[str, Any]] = []  # rows kept as they were if they held odd data
        self._fit()

    # rows
    def add_row(self, values: dict[str, Any] | None = None) -> int:
        row = self.table.rowCount()
        self.table.blockSignals(True)
        self.table.insertRow(row)
        for index, column in enumerate(self.columns):
            value = (values or {}).get(column.id)
            item = QTableWidgetItem()
            if column.type == "bool":
                item.setFlags(
                    Qt.ItemFlag.ItemIsUserCheckable
                    | Qt.ItemFlag.ItemIsEnabled
                    | Qt.ItemFlag.ItemIsSelectable
                )
                item.setCheckState(
                    Qt.CheckState.Checked if value is True else Qt.CheckState.Unchecked
                )
                item.setText("Yes" if value is True else "")
            else:
                item.setText(_as_text(value))
                if column.type == "date":
                    item.setToolTip("YYYY-MM-DD or DD/MM/YYYY")
            self.table.setItem(row, index, item)
        self.table.blockSignals(False)
        self._update_buttons()
        self._fit()
        return row

    def _add_clicked(self) -> None:
        row = self.add_row()
        first = next((i for i, c in enumerate(self.columns) if c.type != "bool"), 0)
        self.table.setCurrentCell(row, first)
        self.table.setFocus(Qt.FocusReason.OtherFocusReason)
        item = self.table.item(row, first)
        if item is not None:
            self.table.editItem(item)
        self.changed.emit()

    def remove_current_row(self) -> None:
        row = self.table.currentRow()
        if row < 0:
            row = self.table.rowCount() - 1
        if row < 0:
            return
        self.table.removeRow(row)
        self._update_buttons()
        self._fit()
        self.changed.emit()
        self.committed.emit()

    def _item_changed(self, item: QTableWidgetItem) -> None:
        column = self.columns[item.column()]
        if column.type == "bool":
            self.table.blockSignals(True)
            item.setText("Yes" if item.checkState() == Qt.CheckState.Checked else "")
            self.table.blockSignals(False)
        self.changed.emit()

    def _update_buttons(self) -> None:
        self.remove_button.setEnabled(self.table.rowCount() > 0)
        if self.single:
            self.add_button.setEnabled(self.table.rowCount() == 0)

    def _fit(self) -> None:
        rows = max(1, self.table.rowCount())
        height = self.table.horizontalHeader().sizeHint().height() + 4
        height += sum(self.table.rowHeight(r) for r in range(self.table.rowCount())) or 0
        if self.table.rowCount() == 0:
            height += self.table.verticalHeader().defaultSectionSize()
        self.table.setFixedHeight(height + 2 * self.table.frameWidth() + (0 if rows else 0))

    # values
    def rows(self) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        for row in range(self.table.rowCount()):
            values: dict[str, Any] = {}
            has_text = False
            for index, column in enumerate(self.columns):
                item = self.table.item(row, index)
                if item is None:
                    continue
                if column.type == "bool":
                    values[column.id] = item.checkState() == Qt.CheckState.Checked
                    continue
                text = item.text()
                if not text.strip():
                    continue
                has_text = True
                if column.type == "date":
                    parsed = parse_date_text(text)
                    values[column.id] = parsed.isoformat() if parsed else text
                else:
                    values[column.id] = text
            if has_text or any(v is True for v in values.values()):
                out.append(values)
        return out

    def get_value(self) -> Any:
        rows = self.rows() + self._extra
        if self.single:
            return rows[0] if rows else None
        return rows or None

    def set_value(self, value: Any) -> None:
        self.table.blockSignals(True)
        self.table.setRowCount(0)
        self.table.blockSignals(False)
        self._extra = []
        items = [value] if self.single and isinstance(value, dict) else value
        if isinstance(items, list | tuple):
            known = {c.id for c in self.columns}
            for entry in items:
                if (
                    isinstance(entry, dict)
                    and set(entry) <= known
                    and all(v is None or isinstance(v, str | bool) for v in entry.values())
                ):
                    self.add_row(entry)
                else:  # something the table cannot show faithfully: keep it untouched
                    self._extra.append(entry)
        self._update_buttons()
        self._fit()
        self.changed.emit()

    def focus_input(self) -> None:
        if self.table.rowCount() == 0:
            self.add_button.setFocus(Qt.FocusReason.OtherFocusReason)
        else:
            self.table.setFocus(Qt.FocusReason.OtherFocusReason)
            if self.table.currentRow() < 0:
                self.table.setCurrentCell(0, 0)


# ----- factory ----------------------------------------------------------------------------------------------


def make_field_widget(field: Field, parent: QWidget | None = None) -> QWidget:
    """The input widget for `field` (objectName = field id)."""
    ftype = field.type
    if ftype == "text":
        return TextField(field, parent)
    if ftype == "longtext":
        return LongTextField(field, parent)
    if ftype == "nhs_number":
        return NhsNumberField(field, parent)
    if ftype == "date":
        return DateField(field, parent)
    if ftype == "datetime":
        return DateTimeField(field, parent)
    if ftype == "bool":
        if "must_be_true" in field.checks:
            return ConfirmField(field, parent)
        return BoolField(field, parent)
    if ftype == "choice":
        if len(field.options) <= RADIO_LIMIT:
            return RadioChoiceField(field, parent)
        return ComboChoiceField(field, parent)
    if ftype in ("multichoice", "checklist"):
        return MultiChoiceField(field, parent)
    if ftype == "integer":
        return IntegerField(field, parent)
    if ftype == "people":
        return PeopleField(field, parent)
    if ftype == "person":
        return PeopleField(field, parent, single=True)
    # An unknown type cannot come from a loaded form (the loader rejects it); be safe anyway.
    return TextField(field, parent)


__all__ = [
    "BoolField",
    "ComboChoiceField",
    "ConfirmField",
    "DateField",
    "DateTimeField",
    "IntegerField",
    "LongTextField",
    "MultiChoiceField",
    "NhsNumberField",
    "PeopleField",
    "RadioChoiceField",
    "TextField",
    "make_field_widget",
    "parse_date_text",
    "parse_datetime_text",
]
