"""The audit trail: verify the chain, read it, export it (session.audit_trail)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from gpshare.records import AuditEvent
from gpshare.services._base import Service
from gpshare.store import audit
from gpshare.store import repositories as repo
from gpshare.store.audit import ChainReport


class AuditTrailService(Service):
    """The hash-chained audit log (leads and administrators)."""

    def export_audit_pdf(self, target: Path, flt: repo.AuditFilter | None = None) -> int:
        """Lead/admin: printable audit report with the chain status; atomic, 0600, audited."""
        from gpshare.exports import audit_report_pdf
        from gpshare.store.files import atomic_write

        self._require("export_audit")
        flt = flt or repo.AuditFilter()
        report = audit.verify(
            self._session.conn, self._session._audit_key, self._session.vault.audit_head()
        )
        events = repo.audit_events(self._session.conn, flt, limit=None)
        filters = ", ".join(f"{k}={v}" for k, v in vars(flt).items() if v)
        data = audit_report_pdf(
            practice=self._session.practice.settings()["practice_name"],
            generated_by=self._session.user.full_name,
            generated_at=self._session.clock.now(),
            chain_summary=report.summary(),
            chain_ok=report.ok,
            events=events,
            record_count=repo.count_records(self._session.conn, repo.RecordFilter()),
            filters=filters,
        )
        atomic_write(Path(target), data)
        self._session.audit("audit_exported", None, {"format": "pdf", "events": len(events)})
        return len(events)

    def verify_audit(self, progress: Callable[[int, int], None] | None = None) -> ChainReport:
        """Lead/admin: verify the hash chain against the head mirrored in vault.json."""
        self._require("verify_audit")
        report = audit.verify(
            self._session.conn, self._session._audit_key, self._session.vault.audit_head(), progress
        )
        self._session.audit(
            "audit_verified",
            None,
            {"ok": report.ok, "events": report.events, "broken_at": report.broken_at},
        )
        return report

    def audit_log(
        self, flt: repo.AuditFilter | None = None, limit: int | None = 500, offset: int = 0
    ) -> list[AuditEvent]:
        """Lead/admin: audit events, newest first."""
        self._require("read_audit_log")
        return repo.audit_events(self._session.conn, flt or repo.AuditFilter(), limit, offset)
