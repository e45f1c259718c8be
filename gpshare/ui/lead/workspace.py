"""The practice safeguarding lead's workspace: the tabs together, record detail in place, and
the page registration (install)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from PySide6.QtCore import Qt
from PySide6.QtWidgets import (
    QHBoxLayout,
    QLabel,
    QScrollArea,
    QStackedWidget,
    QTabWidget,
    QVBoxLayout,
    QWidget,
)

from gpshare.errors import StoreError
from gpshare.ui import dialogs
from gpshare.ui.lead.audit_tab import AuditTab
from gpshare.ui.lead.chronology_tab import ChronologyTab
from gpshare.ui.lead.common import WORKSPACE_QSS
from gpshare.ui.lead.dashboard import DashboardTab
from gpshare.ui.lead.needs_action import NeedsActionTab
from gpshare.ui.record_detail import RecordDetailView
from gpshare.ui.records_view import PAGE_SIZE, RecordsView
from gpshare.ui.unlock import busy_cursor
from gpshare.ui.widgets import heading as _heading
from gpshare.ui.widgets import hint as _hint

if TYPE_CHECKING:
    from gpshare.services import Session


class LeadWorkspace(QWidget):
    """The safeguarding lead's page: tabs, with a record's detail shown in place when opened."""

    NEEDS, RECORDS, CHRONOLOGY, DASHBOARD, AUDIT = range(5)

    def __init__(
        self,
        session: Session,
        window: Any = None,
        parent: QWidget | None = None,
        *,
        page_size: int | None = None,
    ) -> None:
        super().__init__(parent)
        self.setObjectName("leadWorkspace")
        self.setProperty("page", True)
        self.setStyleSheet(WORKSPACE_QSS)
        self.session = session
        self.window_ = window
        self.detail: RecordDetailView | None = None

        self.stack = QStackedWidget()
        self.stack.setObjectName("lead.stack")
        outer = QVBoxLayout(self)
        outer.setContentsMargins(0, 0, 0, 0)
        outer.addWidget(self.stack)

        self.home = QWidget()
        home = QVBoxLayout(self.home)
        home.setContentsMargins(20, 16, 20, 12)
        home.setSpacing(8)
        head = QHBoxLayout()
        title = _heading("Safeguarding lead workspace", "h1")
        head.addWidget(title)
        head.addStretch(1)
        marking = QLabel("OFFICIAL — SENSITIVE")
        marking.setProperty("role", "marking")
        head.addWidget(marking)
        home.addLayout(head)
        home.addWidget(
            _hint(
                "Every decision in the practice, what needs chasing, each child's history and "
                "the audit trail. Opening a record is recorded in its access log."
            )
        )
        self.tabs = QTabWidget()
        self.tabs.setObjectName("lead.tabs")
        self.needs = NeedsActionTab(session)
        self.records = RecordsView(session, page_size=page_size or PAGE_SIZE)
        records_page = QWidget()
        records_layout = QVBoxLayout(records_page)
        records_layout.setContentsMargins(16, 14, 16, 14)
        records_layout.addWidget(self.records)
        self.chronology = ChronologyTab(session)
        self.dashboard = DashboardTab(session)
        self.audit = AuditTab(session)
        self.tabs.addTab(self.needs, "&Needs action")
        self.tabs.addTab(records_page, "&Records")
        self.tabs.addTab(self.chronology, "C&hild chronology")
        dashboard_scroll = QScrollArea()
        dashboard_scroll.setWidgetResizable(True)
        dashboard_scroll.setWidget(self.dashboard)
        self.tabs.addTab(dashboard_scroll, "&Dashboard")
        self.tabs.addTab(self.audit, "A&udit")
        home.addWidget(self.tabs, 1)
        self.stack.addWidget(self.home)

        self.tabs.currentChanged.connect(self._tab_changed)
        self.needs.record_opened.connect(self.open_record)
        self.records.record_opened.connect(self.open_record)
        self.chronology.record_opened.connect(self.open_record)
        self.needs.current_record_changed.connect(self.chronology.set_record)
        self.records.current_record_changed.connect(self.chronology.set_record)
        self.needs.reload()

    def _tab_changed(self, index: int) -> None:
        if index == self.RECORDS:
            self.records.ensure_loaded()
        elif index == self.CHRONOLOGY:
            self.chronology.ensure_loaded()
        elif index == self.DASHBOARD:
            self.dashboard.ensure_loaded()
        elif index == self.AUDIT:
            self.audit.ensure_loaded()

    def show_tab(self, index: int) -> None:
        self.show_home()
        self.tabs.setCurrentIndex(index)
        self._tab_changed(index)

    def open_record(self, record_id: str) -> RecordDetailView | None:
        """Show the record's detail (the audited view); a refusal or failure is shown as a message."""
        try:
            with busy_cursor():
                detail = RecordDetailView(self.session, record_id, self)
        except StoreError as exc:
            dialogs.error(self, "Open record", str(exc))
            return None
        self._drop_detail()
        self.detail = detail
        detail.back_requested.connect(self.show_home)
        detail.changed.connect(self._record_changed)
        detail.chronology_requested.connect(self.show_chronology)
        self.stack.addWidget(detail)
        self.stack.setCurrentWidget(detail)
        self.chronology.set_record(record_id)
        detail.tabs.setFocus(Qt.FocusReason.OtherFocusReason)
        return detail

    def _drop_detail(self) -> None:
        if self.detail is not None:
            self.stack.removeWidget(self.detail)
            self.detail.deleteLater()
            self.detail = None

    def show_home(self) -> None:
        self.stack.setCurrentWidget(self.home)
        self._drop_detail()
        current = self.tabs.currentWidget()
        if current is not None:
            current.setFocus(Qt.FocusReason.OtherFocusReason)

    def show_chronology(self, record_id: str) -> None:
        self.chronology.set_record(record_id)
        self.show_tab(self.CHRONOLOGY)

    def _record_changed(self, record_id: str) -> None:
        """A follow-up, addendum or review was added: refresh what shows it."""
        self.needs.reload()
        self.records.refresh_record(record_id)
        self.dashboard.invalidate()
        self.chronology.invalidate()


def install(window: Any) -> None:
    """Register the lead's workspace page ("lead_workspace") with the main window."""
    window.register_page("lead_workspace", _workspace_page)


def _workspace_page(session: Session, window: Any) -> LeadWorkspace:
    """The workspace, with its Needs action count shown on the tab and the navigation entry."""
    workspace = LeadWorkspace(session, window)

    def show_count(count: int) -> None:
        workspace.tabs.setTabText(
            workspace.tabs.indexOf(workspace.needs),
            f"&Needs action ({count})" if count else "&Needs action",
        )
        if hasattr(window, "set_nav_badge"):
            window.set_nav_badge("lead_workspace", count)

    watch = getattr(window, "integrity_watch", None)
    if watch is not None:  # the main window's at-login / daily / on-demand check
        workspace.dashboard.integrity_card.attach(watch)
    workspace.needs.count_changed.connect(show_count)
    show_count(len(workspace.needs.items))
    return workspace
