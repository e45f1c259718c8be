"""Referral follow-up and lead reviews (session.referrals)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import replace
from datetime import date, datetime, timedelta

from gpshare import followup as followup_mod
from gpshare.clock import today
from gpshare.errors import ValidationFailed
from gpshare.followup import ReferralState
from gpshare.records import ChildSummary, FollowUp, Record, Review
from gpshare.services import _sealed_objects, _sealed_records, _sealing
from gpshare.services._base import Service
from gpshare.services._records import (
    _followups_by_record,
    _referral_rules,
    _store_referral_states,
    _with_state_answers,
)
from gpshare.store.port import WriteTx


class ReferralsService(Service):
    """What happened to a referral after it was sent, and the lead's review of it."""

    def referral_state(self, record_id: str) -> ReferralState | None:
        """The follow-up state of one record the user may read (None while it is a draft):
        lets a clinician see whether their letter is recorded as sent."""
        self._require("view_record", record_id=record_id)
        record = self._readable(record_id, "view_record")
        return self.referral_states([record]).get(record.id)

    def referral_states(self, records: Sequence[Record]) -> dict[str, ReferralState]:
        """Follow-up state of each completed record (status, next action, overdue)."""
        self._require("list_records")
        with self._session._read() as tx:
            completed = _with_state_answers(tx, [r for r in records if r.status == "completed"])
            per = _followups_by_record(tx, completed)
        closures, hours = _referral_rules(self._session.practice.settings())
        now = today(self._session.clock)
        return {
            r.id: followup_mod.referral_state(r, per.get(r.id, []), now, closures, hours)
            for r in completed
        }

    def record_followup(
        self,
        record_id: str,
        event: str,
        *,
        at: datetime | None = None,
        note: str | None = None,
        decision: str | None = None,
        details: Mapping[str, str] | None = None,
    ) -> FollowUp:
        """Record a referral follow-up event.

        Clinicians: sent/acknowledged/decision/feedback on their own records. Leads: any
        event on any record, and only they escalate or close.
        """
        self._require("record_followup", record_id=record_id)
        record = self._readable(record_id, "record_followup")
        if self._session.user.role != "lead" and (
            event in followup_mod.LEAD_ONLY_EVENTS
            or record.clinician != self._session.user.username
        ):
            raise self._session._deny(
                f"followup_{event}",
                record_id,
                "Not permitted for your role: only the practice safeguarding lead can escalate or close a "
                "referral, or record follow-up on another clinician's record.",
            )
        if record.is_draft:
            raise ValidationFailed(
                "The assessment is still a draft; complete it before recording follow-up.",
                [{"field": "record", "message": "the record is a draft"}],
            )
        state = self.referral_states([record])[record.id]
        problem = followup_mod.check_event(event, decision, state)
        if problem:
            raise ValidationFailed(problem, [{"field": "event", "message": problem}])
        when = at or self._session.clock.now()
        if when > self._session.clock.now() + timedelta(minutes=5):
            raise ValidationFailed(
                "The follow-up time is in the future; enter when it actually happened.",
                [{"field": "at", "message": "in the future"}],
            )
        if record.completed and when.isoformat() < record.completed[:19]:
            raise ValidationFailed(
                "The follow-up time is before the assessment was completed; check the date.",
                [{"field": "at", "message": "before completion"}],
            )
        details = dict(details or {})
        if event == "fgm_police_reported":
            reference = str(details.get("reference", "")).strip()
            if not reference or len(reference) > 100 or not reference.isprintable():
                raise ValidationFailed(
                    "Enter the police (101) reference for the FGM report: plain text of at most "
                    "100 characters.",
                    [{"field": "reference", "message": "the 101 reference is required"}],
                )
            details["reference"] = reference
        text = (note or "").strip() or None
        if text and (len(text) > 2000 or any(ord(ch) < 32 and ch not in "\n\t" for ch in text)):
            raise ValidationFailed(
                "The note must be plain text of at most 2000 characters.",
                [{"field": "note", "message": "invalid"}],
            )
        fu = FollowUp(
            0,
            record_id,
            event,
            when.isoformat(timespec="seconds"),
            self._session.user.username,
            self._session.now_iso(),
            decision,
            text,
            details,
        )

        keys = self._session.keys
        # Vault v2: the note and details are N, sealed under their own object key; the event,
        # dates, who and the decision token stay M (lists and referral states read only those).
        note_ct = (
            _sealing.seal_followup_note(keys, _sealed_objects.row_of(record), fu)
            if keys is not None
            else None
        )

        def work(tx: WriteTx) -> int:
            fu_id = tx.add_sealed_followup(fu, note_ct) if keys is not None else tx.add_followup(fu)
            _store_referral_states(tx, [record])
            return fu_id

        sealed_details = _sealed_objects.audit_details(note_ct) if keys is not None else {}
        new_id = self._session._write(
            "followup_recorded",
            work,
            record_id,
            {"event": event, "decision": decision, **sealed_details},
        )
        return replace(fu, id=new_id)

    def followups(self, record_id: str) -> list[FollowUp]:
        self._require("view_record", record_id=record_id)
        record = self._readable(record_id, "view_record")
        with self._session._read() as tx:
            if self._session.keys is not None:
                return _sealed_objects.followups(self._session, tx, record)
            return tx.followups([record_id])

    def needs_action(self) -> list[followup_mod.NeedsAction]:
        """Overdue acknowledgements, missing feedback, passed review dates (lead: all; clinician: own)."""
        self._require("needs_action")
        now = today(self._session.clock)
        horizon = (now + timedelta(days=followup_mod.NEEDS_ACTION_HORIZON_DAYS)).isoformat()
        clinician = None if self._session.user.role == "lead" else self._session.user.username
        # The stored states (migration 0006) answer this from one covering index, earliest
        # due first — the order followup.needs_action gives (overdue ones fall due earlier).
        with self._session._read() as tx:
            names = {u.username: u.full_name for u in tx.list_users()}
            rows = tx.due_referrals(horizon, clinician)
            rows += tx.referrals_with_action(
                followup_mod.DELAYED_SHARING_ACTION, horizon, clinician
            )
        # Vault v2: the stored names are empty (class C); the page's summaries name the child.
        sealed_names = (
            _sealed_records.child_names(self._session, [row[0] for row in rows])
            if self._session.keys is not None
            else {}
        )
        items = []
        for record_id, author, given, family, action, due_text in rows:
            due = date.fromisoformat(due_text)
            child = (
                sealed_names.get(record_id)
                or ChildSummary(given or "", family or "", None, None).display_name
            )
            items.append(
                followup_mod.NeedsAction(
                    record_id, child, names.get(author) or author, action, due, due < now
                )
            )
        return items

    def add_review(
        self, record_id: str, verdict: str, comments: str = "", learning: str = ""
    ) -> Review:
        """Lead: 'decision reasonable' or 'needs discussion', with comments and learning (append-only)."""
        self._require("lead_review", record_id=record_id)
        record = self._readable(record_id, "lead_review")
        if record.is_draft:
            raise ValidationFailed("Only completed records can be reviewed.", [])
        if verdict not in ("reasonable", "needs_discussion"):
            raise ValidationFailed(
                "Choose 'reasonable' or 'needs_discussion'.",
                [{"field": "verdict", "message": "invalid"}],
            )
        if verdict == "needs_discussion" and not comments.strip():
            raise ValidationFailed(
                "Say what needs discussing in the comments.",
                [{"field": "comments", "message": "required"}],
            )
        for label, value in (("comments", comments), ("learning", learning)):
            if len(value) > 5000:
                raise ValidationFailed(
                    f"The {label} are too long (5000 characters at most).",
                    [{"field": label, "message": "too long"}],
                )
        review = Review(
            0,
            record_id,
            self._session.user.username,
            self._session.now_iso(),
            verdict,
            comments.strip() or None,
            learning.strip() or None,
        )
        if self._session.keys is not None:
            # Vault v2: verdict, comments and learning are N, sealed under their own object key.
            # The verdict stays out of the audit event too (the event log is M).
            body = _sealing.seal_review(self._session.keys, _sealed_objects.row_of(record), review)
            new_id = self._session._write(
                "lead_review_added",
                lambda tx: tx.add_sealed_review(record_id, review.reviewer, review.created, body),
                record_id,
                _sealed_objects.audit_details(body),
            )
            return replace(review, id=new_id)
        new_id = self._session._write(
            "lead_review_added",
            lambda tx: tx.add_review(review),
            record_id,
            {"verdict": verdict},
        )
        return replace(review, id=new_id)

    def reviews(self, record_id: str) -> list[Review]:
        self._require("view_record", record_id=record_id)
        record = self._readable(record_id, "view_record")
        with self._session._read() as tx:
            if self._session.keys is not None:
                return _sealed_objects.reviews(self._session, tx, record)
            return tx.reviews(record_id)
