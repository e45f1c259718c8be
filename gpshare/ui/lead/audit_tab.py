"""The lead's "Audit" tab: the log, chain verification and the PDF report."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from PySide6.QtCore import QObject, Qt, QTimer
from PySide6.QtGui import QColor, QFont
from PySide6.QtWidgets import (
    QComboBox,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QTableView,
    QWidget,
)

from gpshare.errors import StoreError
from gpshare.filters import AuditFilter
from gpshare.ui import dialogs
from gpshare.ui.lead.common import _grouped, _Tab
from gpshare.ui.record_detail import action_label, audit_details
from gpshare.ui.records_view import PagedTableModel, date_filter, date_value, fmt_when, setup_table
from gpshare.ui.style import RED
from gpshare.ui.unlock import busy_cursor
from gpshare.ui.widgets import hint as _hint
from gpshare.ui.widgets import message_label as _message
from gpshare.ui.widgets import set_message as _set_message
from gpshare.ui.worker import TaskBar

if TYPE_CHECKING:
    from gpshare.records import AuditEvent
    from gpshare.services import ChainReport, Session


class AuditTableModel(PagedTableModel):
    """Audit events (newest first) matching an :class:`AuditFilter`, a page at a time."""

    headers = ("#", "When", "User", "Action", "Record", "Details")

    def __init__(
        self, session: Session, page_size: int = 500, parent: QObject | None = None
    ) -> None:
        super().__init__(page_size, parent)
        self.session = session
        self.filter = AuditFilter()
        self.broken_at: int | None = None  # set after a failed chain check: that row is marked
        self._bold = QFont()
        self._bold.setBold(True)

    def set_filter(self, flt: AuditFilter) -> None:
        self.filter = flt
        self.reload()

    def fetch_page(self, limit: int, offset: int) -> list[AuditEvent]:
        return self.session.audit_trail.audit_log(self.filter, limit, offset)

    def cell(self, event: AuditEvent, column: int, role: int) -> Any:
        if role == Qt.ItemDataRole.DisplayRole:
            return (
                str(event.seq),
                fmt_when(event.at, seconds=True),
                event.actor,
                action_label(event.action),
                event.record_id or "",
                audit_details(event.details),
            )[column]
        broken = event.seq == self.broken_at
        if role == Qt.ItemDataRole.ForegroundRole and (
            broken or event.action in ("permission_denied", "unlock_failed")
        ):
            return QColor(RED)
        if role == Qt.ItemDataRole.FontRole and broken:
            return self._bold
        if role == Qt.ItemDataRole.ToolTipRole and broken:
            return "The audit chain breaks at this event: it is not as it was written."
        if role == Qt.ItemDataRole.ToolTipRole and column == 5:
            return audit_details(event.details) or None
        if role == Qt.ItemDataRole.TextAlignmentRole and column == 0:
            return int(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
        return None


def chain_result_text(report: ChainReport) -> str:
    """'Intact: 12 408 events, last at 25 Nov 2026, 10:00.' or 'Broken at event 5 021: …'."""
    if report.ok:
        when = f", last at {fmt_when(report.last_at, seconds=True)}" if report.last_at else ""
        return f"Intact: {_grouped(report.events)} events{when}."
    if report.broken_at is None:  # the chain holds; a row it vouches for was edited
        return f"Altered: {report.problem}"
    return f"Broken at event {_grouped(report.broken_at)}: {report.problem}"


def _editable_combo(name: str, accessible: str, first: str) -> QComboBox:
    combo = QComboBox()
    combo.setObjectName(name)
    combo.setAccessibleName(accessible)
    combo.setEditable(True)
    combo.setInsertPolicy(QComboBox.InsertPolicy.NoInsert)
    combo.addItem(first)
    combo.setMinimumWidth(150)
    return combo


def _combo_value(combo: QComboBox) -> str | None:
    text = combo.currentText().strip()
    return None if not text or text == combo.itemText(0) else text


class AuditTab(_Tab):
    """The audit log with filters, chain verification and the PDF report."""

    def __init__(self, session: Session, parent: QWidget | None = None) -> None:
        super().__init__(session, parent)
        self.setObjectName("audit")
        top = QHBoxLayout()
        top.addWidget(
            _hint(
                "Every unlock, view, change, letter, export and refusal, in a hash-chained log that "
                "shows any alteration."
            ),
            1,
        )
        self.verify_button = QPushButton("&Verify chain")
        self.verify_button.setObjectName("audit.verify")
        self.verify_button.setToolTip(
            "Check that no audit event has been altered, removed or reordered"
        )
        self.verify_button.clicked.connect(self.verify)
        self.export_button = QPushButton("Export audit &report (PDF)…")
        self.export_button.setObjectName("audit.export")
        self.export_button.clicked.connect(self.export_pdf)
        top.addWidget(self.verify_button)
        top.addWidget(self.export_button)
        self.layout_.addLayout(top)
        self.tasks = TaskBar("audit.task", self)
        self.layout_.addWidget(self.tasks)
        self.chain = _message("audit.chain", "info")
        self.chain.setText(
            "Not yet checked in this session: press Verify chain to confirm that no event has "
            "been altered, removed or reordered."
        )
        self.chain.show()
        self.chain_advice = _hint("")
        self.chain_advice.setObjectName("audit.chain_advice")
        self.chain_advice.hide()
        self.layout_.addWidget(self.chain)
        self.layout_.addWidget(self.chain_advice)

        filters = QHBoxLayout()
        filters.setSpacing(8)
        self.actor = _editable_combo("audit.actor", "User", "All users")
        self.action = _editable_combo("audit.action", "Action", "All actions")
        self.record = QLineEdit()
        self.record.setObjectName("audit.record")
        self.record.setAccessibleName("Record reference")
        self.record.setPlaceholderText("Record, e.g. SG-7K3F-9QX2")
        self.record.setClearButtonEnabled(True)
        self.date_from = date_filter("audit.date_from", "From")
        self.date_to = date_filter("audit.date_to", "To")
        for label, widget in (
            ("User", self.actor),
            ("Action", self.action),
            ("Record", self.record),
            ("From", self.date_from),
            ("To", self.date_to),
        ):
            filters.addWidget(QLabel(label))
            filters.addWidget(widget)
        filters.addStretch(1)
        self.layout_.addLayout(filters)
        self.error = _message("audit.error")
        self.layout_.addWidget(self.error)
        self.model = AuditTableModel(session, parent=self)
        self.table = QTableView()
        self.table.setObjectName("audit.table")
        self.table.setAccessibleName("Audit events")
        self.table.setModel(self.model)
        setup_table(self.table, stretch=5)
        metrics = self.table.fontMetrics()
        for column, sample in enumerate(
            ("00000", "30 Sep 2026, 10:00:00", "drsmith.long", "Chronology viewed", "SG-XXXX-XXXX")
        ):
            self.table.horizontalHeader().resizeSection(
                column, metrics.horizontalAdvance(sample) + 22
            )
        self.layout_.addWidget(self.table, 1)
        self.count = _hint("")
        self.count.setObjectName("audit.count")
        self.layout_.addWidget(self.count)
        self.model.failed.connect(lambda message: _set_message(self.error, message, "error"))
        self.model.reloaded.connect(self._counted)
        self.model.rowsInserted.connect(self._counted)

        self._debounce = QTimer(self)
        self._debounce.setSingleShot(True)
        self._debounce.setInterval(400)
        self._debounce.timeout.connect(self.reload)
        for combo in (self.actor, self.action):
            combo.currentTextChanged.connect(lambda _t: self._debounce.start())
        self.record.textChanged.connect(lambda _t: self._debounce.start())
        for edit in (self.date_from, self.date_to):
            edit.dateChanged.connect(lambda _d: self.reload())
        try:
            users = session.users.list_users()
        except StoreError:
            users = []
        self._known: dict[QComboBox, set[str]] = {self.actor: set(), self.action: set()}
        self._learn(self.actor, (u.username for u in users))

    def current_filter(self) -> AuditFilter:
        record = self.record.text().strip().upper()
        return AuditFilter(
            actor=_combo_value(self.actor),
            action=self._action_token(),
            record_id=record or None,
            date_from=date_value(self.date_from),
            date_to=date_value(self.date_to),
        )

    def _action_token(self) -> str | None:
        value = _combo_value(self.action)
        if value is None:
            return None
        index = self.action.findText(value)
        data = self.action.itemData(index) if index >= 0 else None
        return str(data) if data else value.strip().lower().replace(" ", "_")

    def reload(self) -> None:
        super().reload()
        self._debounce.stop()
        self.error.hide()
        with busy_cursor():
            self.model.set_filter(self.current_filter())

    def _counted(self, *_args: Any) -> None:
        n = self.model.loaded
        more = " — more load as you scroll" if self.model.canFetchMore() else ""
        self.count.setText(f"{_grouped(n)} event{'s' if n != 1 else ''} shown, newest first{more}.")
        self._learn(self.actor, (self.model.item(i).actor for i in range(n)))
        self._learn_actions(self.model.item(i).action for i in range(n))

    def _learn(self, combo: QComboBox, values: Any) -> None:
        new = sorted(set(values) - self._known[combo])
        if not new:
            return
        self._known[combo].update(new)
        combo.blockSignals(True)
        text = combo.currentText()
        for value in new:
            combo.addItem(value)
        combo.setEditText(text)
        combo.blockSignals(False)

    def _learn_actions(self, actions: Any) -> None:
        new = sorted(set(actions) - self._known[self.action])
        if not new:
            return
        self._known[self.action].update(new)
        self.action.blockSignals(True)
        text = self.action.currentText()
        for token in new:
            self.action.addItem(action_label(token), token)
        self.action.setEditText(text)
        self.action.blockSignals(False)

    def verify(self) -> None:
        """Verify the chain in a worker thread (a million events take seconds)."""

        def failed(exc: Exception) -> None:
            if not isinstance(exc, StoreError):
                raise exc
            dialogs.error(self, "Verify the audit log", str(exc))

        self.tasks.start(
            self.session,
            "Verifying every audit event…",
            lambda worker, ctx: worker.audit_trail.verify_audit(progress=ctx.progress),
            self.show_report,
            failed,
        )

    def show_report(self, report: ChainReport) -> None:
        """Show a verify result (on the GUI thread)."""
        _set_message(self.chain, chain_result_text(report), "success" if report.ok else "error")
        self.model.broken_at = report.broken_at
        if report.ok:
            self.chain_advice.setText(
                "Every event since the vault was created is present, in order and unaltered."
            )
        else:
            self.chain_advice.setText(
                "Someone has altered, removed or reordered audit events outside gpshare. Keep the vault as it "
                "is, export this report, and tell the practice administrator: a backup made before the break "
                "shows the original events."
            )
        self.chain_advice.show()
        self.reload()

    def export_pdf(self) -> Path | None:
        """Ask where to save, then write the report in a worker thread."""
        stamp = self.session.clock.now().strftime("%Y-%m-%d")
        target = dialogs.get_save_file(
            self,
            "Export audit report (PDF)",
            Path.home() / f"gpshare-audit-{stamp}.pdf",
            "PDF files (*.pdf)",
        )
        if target is None:
            return None
        if target.suffix.lower() != ".pdf":
            target = target.with_name(target.name + ".pdf")
        flt = self.current_filter()

        def failed(exc: Exception) -> None:
            if not isinstance(exc, (StoreError, OSError)):
                raise exc
            dialogs.error(
                self,
                "Export audit report",
                str(exc)
                if isinstance(exc, StoreError)
                else f"The file could not be written ({exc.strerror or exc}). Choose another folder.",
            )

        def saved(events: int) -> None:
            dialogs.information(
                self,
                "Export audit report",
                f"The audit report ({_grouped(events)} events, with the chain check) was saved to {target}.",
            )
            self.reload()

        self.tasks.start(
            self.session,
            "Writing the audit report…",
            lambda worker, _ctx: worker.audit_trail.export_audit_pdf(target, flt),
            saved,
            failed,
        )
        return target
