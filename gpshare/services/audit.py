"""The audit trail: verify the chain, read it, export it (session.audit_trail)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from gpshare.filters import AuditFilter, RecordFilter
from gpshare.records import AuditEvent
from gpshare.services import _integrity
from gpshare.services._base import Service
from gpshare.services._integrity import IntegrityReport
from gpshare.store.audit import ChainReport


class AuditTrailService(Service):
    """The hash-chained audit log (leads and administrators)."""

    def export_audit_pdf(self, target: Path, flt: AuditFilter | None = None) -> int:
        """Lead/admin: printable audit report with the chain status; atomic, 0600, audited."""
        from gpshare.exports import audit_report_pdf
        from gpshare.store.files import atomic_write

        self._require("export_audit")
        flt = flt or AuditFilter()
        with self._session._read() as tx:
            report = tx.verify_audit(self._session.vault.audit_head())
            events = tx.audit_events(flt, limit=None)
            record_count = tx.count_records(RecordFilter())
        filters = ", ".join(f"{k}={v}" for k, v in vars(flt).items() if v)
        data = audit_report_pdf(
            practice=self._session.practice.settings()["practice_name"],
            generated_by=self._session.user.full_name,
            generated_at=self._session.clock.now(),
            chain_summary=report.summary(),
            chain_ok=report.ok,
            events=events,
            record_count=record_count,
            filters=filters,
        )
        atomic_write(Path(target), data)
        self._session.audit("audit_exported", None, {"format": "pdf", "events": len(events)})
        return len(events)

    def verify_audit(self, progress: Callable[[int, int], None] | None = None) -> ChainReport:
        """Lead/admin: verify the hash chain against the head mirrored in vault.json."""
        self._require("verify_audit")
        with self._session._read() as tx:
            report = tx.verify_audit(self._session.vault.audit_head(), progress)
        self._session.audit(
            "audit_verified",
            None,
            {"ok": report.ok, "events": report.events, "broken_at": report.broken_at},
        )
        return report

    def verify_integrity(self) -> IntegrityReport:
        """Lead/admin: the chain, then every sealed row against the event that wrote it and
        every workstation witness against the chain (DESIGN §10.3); audited with what was
        found (table, row and event seq of each finding, never content)."""
        self._require("verify_audit")
        with self._session._read() as tx:
            report = _integrity.verify(tx, self._session.vault.audit_head())
        self._session.audit(
            "integrity_verified",
            None,
            {
                "ok": report.ok,
                "chain_ok": report.chain.ok,
                "rows": report.rows,
                "witnesses": report.witnesses,
                "findings": [
                    {"check": f.check, "table": f.table, "row": f.row, "seq": f.seq}
                    for f in report.findings[:50]
                ],
            },
        )
        return report

    def audit_log(
        self, flt: AuditFilter | None = None, limit: int | None = 500, offset: int = 0
    ) -> list[AuditEvent]:
        """Lead/admin: audit events, newest first."""
        self._require("read_audit_log")
        with self._session._read() as tx:
            return tx.audit_events(flt or AuditFilter(), limit, offset)
