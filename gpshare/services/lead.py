"""The safeguarding lead's oversight: access log, chronology, household links, dashboard and
exports (session.lead)."""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path

from gpshare.chronology import (
    ChronologyEntry,
    HouseholdLink,
    address_key,
    build_chronology,
    carer_keys,
    household_links,
)
from gpshare.clock import today
from gpshare.dashboard import Dashboard, build_dashboard
from gpshare.errors import Cancelled, ValidationFailed
from gpshare.filters import AuditFilter, RecordFilter
from gpshare.followup import ReferralState
from gpshare.records import AuditEvent, Record
from gpshare.services import _sealed_objects, _sealed_records, _sealing, search_index
from gpshare.services._base import Service
from gpshare.services._records import EXPORT_PAGE


class LeadService(Service):
    """The practice safeguarding lead's workspace."""

    def record_access_log(self, record_id: str) -> list[AuditEvent]:
        """Lead: who viewed, printed, exported a record, and when."""
        self._require("record_access_log", record_id=record_id)
        with self._session._read() as tx:
            return tx.audit_events(AuditFilter(record_id=record_id), limit=None)

    def child_chronology(self, record_id: str) -> tuple[list[ChronologyEntry], list[HouseholdLink]]:
        """Lead: every record for the record's child in time order, plus household links to confirm."""
        self._require("child_chronology", record_id=record_id)
        record = self._readable(record_id, "child_chronology")
        if self._session.keys is not None:
            entries, links, count = _sealed_records.chronology(self._session, record)
            self._session.audit("chronology_viewed", record_id, {"records": count})
            return entries, links
        with self._session._read() as tx:
            found = tx.records_for_child(
                record.child.nhs_number,
                record.child.family_name,
                record.child.date_of_birth,
                record.id,
            )
        same = [record] + [r for r, _m in found]
        ids = [r.id for r in same]
        carers = {key for r in same for key in carer_keys(r.answers)}
        addresses = {address_key(r.answers) for r in same} - {""}
        with self._session._read() as tx:
            entries = build_chronology(
                same,
                tx.followups(ids),
                [rv for i in ids for rv in tx.reviews(i)],
                [a for i in ids for a in tx.addenda(i)],
            )
            others = tx.linked_records(carers, addresses)
        self._session.audit("chronology_viewed", record_id, {"records": len(same)})
        with self._session._read() as tx:
            decided = tx.household_link_decisions(ids)
        links = [
            replace(link, status=decided.get(link.record.id, "to_confirm"))
            for link in household_links(same, others)
        ]
        return entries, links

    def review_household_link(
        self, record_id: str, other_record_id: str, decision: str, note: str = ""
    ) -> None:
        """Lead: confirm a suggested household link ('same_household') or reject it ('not_related')."""
        self._require("household_link_review", record_id=record_id)
        if decision not in ("same_household", "not_related"):
            raise ValidationFailed(
                "Choose 'same_household' or 'not_related'.",
                [{"field": "decision", "message": "invalid"}],
            )
        _entries, links = self.child_chronology(record_id)
        if other_record_id not in {link.record.id for link in links}:
            raise ValidationFailed(
                f"{other_record_id} is not a suggested household link of this child's records.",
                [{"field": "other_record_id", "message": "not a suggested link"}],
            )
        text = note.strip() or None
        if text and len(text) > 2000:
            raise ValidationFailed(
                "The note is too long (2000 characters at most).",
                [{"field": "note", "message": "too long"}],
            )
        now = self._session.now_iso()
        if self._session.keys is not None:
            # Vault v2: the decision and note are class C (a register the clinical key opens),
            # sealed under HKDF(clinical_g, "summary") and bound to the pair of records.
            generation, ct = _sealing.seal_household_review(
                self._session.keys, record_id, other_record_id, decision, text
            )
            self._session._write(
                "household_link_reviewed",
                lambda tx: tx.add_sealed_household_review(
                    record_id, other_record_id, self._session.user.username, now, generation, ct
                ),
                record_id,
                {
                    "other_record_id": other_record_id,
                    "sealed": {
                        "household-review": {
                            "generation": generation,
                            "sha256": hashlib.sha256(ct).hexdigest(),
                        }
                    },
                },
            )
            return
        self._session._write(
            "household_link_reviewed",
            lambda tx: tx.add_household_link_review(
                record_id, other_record_id, decision, self._session.user.username, now, text
            ),
            record_id,
            {"other_record_id": other_record_id, "decision": decision},
        )

    def dashboard(self, date_from: str | None = None, date_to: str | None = None) -> Dashboard:
        """Lead: monthly counts by pathway and consent basis, medians, overdue counts."""
        self._require("dashboard")
        with self._session._read() as tx:
            rows = tx.dashboard_rows(date_from, date_to, with_timings=False)
            # Overdue counts and send/acknowledge times come from the stored states (0006).
            overdue = tx.overdue_counts(today(self._session.clock).isoformat(), date_from, date_to)
            timings = tx.send_timings(date_from, date_to)
        by_pathway, by_consent = rows.by_month_pathway, rows.by_month_consent
        if self._session.keys is not None:
            # Vault v2: pathway and consent basis are class C, not columns the engine can count:
            # the lead's replica counts them when it is current, else the decrypted summaries.
            replica = search_index.current_replica(self._session)
            if replica is not None:
                counted = replica.dashboard_rows(date_from, date_to)
                by_pathway, by_consent = counted.by_month_pathway, counted.by_month_consent
            else:
                by_pathway, by_consent = _sealed_records.monthly_counts(
                    self._session, date_from, date_to
                )
        return build_dashboard(by_pathway, by_consent, timings, (), overdue)

    def export_records_csv(
        self,
        target: Path,
        flt: RecordFilter | None = None,
        *,
        include_narratives: bool = False,
        progress: Callable[[int, int], None] | None = None,
        cancelled: Callable[[], bool] | None = None,
    ) -> int:
        """Lead: the filtered records table as CSV (narratives only when asked); atomic, 0600, audited.

        Streamed page by page to the file; `progress(done, total)` after each page, and when
        `cancelled()` turns true the export stops, leaving no file and no audit event.
        """
        from gpshare.exports import records_csv_chunks
        from gpshare.store.files import atomic_write_chunks

        self._require("export_records")
        # Vault v2: narratives are N; the export opens what the lead key opens, so it needs a
        # session that holds it (KeyNotHeld says how to get one: sign in with the password).
        open_each = include_narratives and self._session.keys is not None
        if open_each:
            _sealed_objects.ring(self._session).lead_keys()
        unreadable = [0]
        total = self._session.assessments.count_records(flt) if progress else 0

        def rows() -> Iterator[tuple[Record, ReferralState | None]]:
            # Page through the records so a practice with 100 000 of them never holds every
            # record's answers in memory at once.
            offset = 0
            # Without narratives no answers are written: light records skip their JSON.
            light = not include_narratives
            while page := self._session.assessments.list_records(
                flt, limit=EXPORT_PAGE, offset=offset, light=light
            ):
                if cancelled and cancelled():
                    raise Cancelled("The export was cancelled; no file was written.")
                states = self._session.referrals.referral_states(page)
                for record in page:
                    if open_each:
                        found = _sealed_objects.for_export(self._session, record)
                        unreadable[0] += found is None
                        record = found or record
                    yield record, states.get(record.id)
                offset += len(page)
                if progress:
                    progress(offset, total)

        counted = [0]
        atomic_write_chunks(Path(target), records_csv_chunks(rows(), include_narratives, counted))
        count = counted[0]
        self._session.audit(
            "records_exported",
            None,
            {
                "format": "csv",
                "rows": count,
                "narratives": include_narratives,
                **({"narratives_unreadable": unreadable[0]} if open_each else {}),
            },
        )
        return count
