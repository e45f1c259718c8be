"""The audit trail: verify the chain, read it, export it (session.audit_trail)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gpshare.filters import AuditFilter, RecordFilter
from gpshare.records import AuditEvent
from gpshare.services import _integrity
from gpshare.services._base import Service
from gpshare.services._integrity import IntegrityReport
from gpshare.store.audit import ChainReport

INTEGRITY_VERIFIED = "integrity_verified"


@dataclass(frozen=True)
class IntegrityCheck:
    """The last whole-vault check as its audit event stored it (DESIGN §10.3): when, by whom,
    whether everything held, and each problem in words naming the event or the row."""

    seq: int
    at: str
    actor: str
    ok: bool
    rows: int = 0
    witnesses: int = 0
    problems: list[str] = field(default_factory=list)

    @classmethod
    def from_event(cls, event: AuditEvent) -> IntegrityCheck:
        """Read an `integrity_verified` event (older ones lack the chain line and messages)."""
        d: dict[str, Any] = event.details or {}
        problems: list[str] = []
        if not d.get("chain_ok", True):
            problems.append(str(d.get("chain") or "The audit chain is broken."))
        for f in d.get("findings") or []:
            where = f"{f.get('table')} row {f.get('row')}" if f.get("table") else "a witness"
            seq = f" (event {f['seq']})" if f.get("seq") is not None else ""
            problems.append(str(f.get("message") or f"{f.get('check')}: {where}{seq}"))
        return cls(
            event.seq,
            event.at,
            event.actor,
            bool(d.get("ok")),
            int(d.get("rows") or 0),
            int(d.get("witnesses") or 0),
            problems,
        )


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
            INTEGRITY_VERIFIED,
            None,
            {
                "ok": report.ok,
                "chain_ok": report.chain.ok,
                # The chain's own line and each finding's words name events and rows, never
                # content: stored so the lead's dashboard can show what is wrong (pgui).
                "chain": report.chain.summary(),
                "rows": report.rows,
                "witnesses": report.witnesses,
                "findings": [
                    {
                        "check": f.check,
                        "table": f.table,
                        "row": f.row,
                        "seq": f.seq,
                        "message": f.message,
                    }
                    for f in report.findings[:50]
                ],
            },
        )
        return report

    def last_integrity_check(self) -> IntegrityCheck | None:
        """Lead/admin: the newest whole-vault check recorded in the audit log (at sign-in,
        daily, on demand, or `gpshare server verify`), or None when there has been none."""
        self._require("verify_audit")
        with self._session._read() as tx:
            events = tx.audit_events(AuditFilter(action=INTEGRITY_VERIFIED), 1, 0)
        return IntegrityCheck.from_event(events[0]) if events else None

    def audit_log(
        self, flt: AuditFilter | None = None, limit: int | None = 500, offset: int = 0
    ) -> list[AuditEvent]:
        """Lead/admin: audit events, newest first."""
        self._require("read_audit_log")
        with self._session._read() as tx:
            return tx.audit_events(flt or AuditFilter(), limit, offset)
