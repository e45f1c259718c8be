"""The practice safeguarding lead's workspace, one module per tab (see gpshare.ui.audit_view)."""
