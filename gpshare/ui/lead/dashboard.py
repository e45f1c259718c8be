"""The lead's "Dashboard" tab: monthly bar charts drawn with QPainter, and the numbers."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date
from typing import TYPE_CHECKING, Any

from PySide6.QtCore import QDate, QEvent, QPointF, QRectF, QSize, Qt
from PySide6.QtGui import QColor, QFont, QFontMetrics, QHelpEvent, QPainter, QPen
from PySide6.QtWidgets import (
    QFrame,
    QGridLayout,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QSizePolicy,
    QToolTip,
    QVBoxLayout,
    QWidget,
)

from gpshare.clock import today
from gpshare.dashboard import CONSENT_BASES, PATHWAYS
from gpshare.errors import StoreError
from gpshare.ui.lead.common import CONSENT_COLOURS, OVERDUE_WORDS, PATHWAY_COLOURS, _grouped, _Tab
from gpshare.ui.records_view import CONSENT_LABELS, date_filter, date_value, pathway_label
from gpshare.ui.style import BORDER, LIGHT_BORDER, SECONDARY_TEXT, TEXT, refresh
from gpshare.ui.widgets import hint as _hint
from gpshare.ui.widgets import message_label as _message
from gpshare.ui.widgets import set_message as _set_message
from gpshare.ui.worker import TaskBar

if TYPE_CHECKING:
    from gpshare.dashboard import Dashboard
    from gpshare.services import Session


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
        # The last integrity check (DESIGN §10.3); the main window's watch keeps it current.
        from gpshare.ui.integrity_watch import IntegrityCard

        self.integrity_card = IntegrityCard(session)
        self.layout_.addWidget(self.integrity_card)
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
            lambda worker, _ctx: worker.lead.dashboard(date_from, date_to),
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
