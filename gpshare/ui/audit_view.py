"""The practice safeguarding lead's workspace.

Tabs: **Needs action** (home: referrals to chase and review dates passed, overdue first),
**Records** (every record, filtered in SQL, fetched a page at a time, exportable as CSV),
**Child chronology** (everything about the selected record's child, and household links to
confirm), **Dashboard** (monthly bar charts drawn with QPainter, and the numbers) and **Audit**
(the log, chain verification and the PDF report). Opening a record shows its detail in place
(Esc goes back). Every call goes through the services, which decide what this user may do and
audit it; refusals and failures are shown as the services' own plain messages.

The code lives in gpshare.ui.lead, one module per tab (needs_action, chronology_tab,
dashboard with the chart, audit_tab) plus workspace; the Records tab is
gpshare.ui.records_view. This module keeps the public names importable from here and is the
page module gpshare.ui.app installs.
"""

from __future__ import annotations

from gpshare.ui.lead.audit_tab import AuditTab, AuditTableModel, chain_result_text
from gpshare.ui.lead.chronology_tab import ChronologyTab
from gpshare.ui.lead.dashboard import DashboardTab, StackedBarChart
from gpshare.ui.lead.needs_action import NeedsActionTab
from gpshare.ui.lead.workspace import LeadWorkspace, install

__all__ = [
    "AuditTab",
    "AuditTableModel",
    "ChronologyTab",
    "DashboardTab",
    "LeadWorkspace",
    "NeedsActionTab",
    "StackedBarChart",
    "chain_result_text",
    "install",
]
