"""View models: what one screen shows, in one service call (session.views; issue #12).

Each method gathers what a screen needs when it opens or refreshes, behind one access check
and the same audit events as before (opening a record is still one "record_viewed" event).
User actions (save, sign, follow up, review) stay their own calls on the other services.

The parts are read through the other services of the session, so each part keeps its own
rule; the first check refuses (and audits the refusal) before any part is read, and parts
only some roles may see (the lead's reviews and access log) are asked for only when the
access table allows them for the acting user's role, so a clinician is never refused them.
"""

from __future__ import annotations

from dataclasses import dataclass

from gpshare import access
from gpshare.chronology import ChronologyEntry, HouseholdLink
from gpshare.filters import RecordFilter
from gpshare.followup import ReferralState
from gpshare.forms import Form, FormError
from gpshare.records import Addendum, AuditEvent, FollowUp, LetterMeta, Record, Review
from gpshare.services._base import Service


@dataclass(frozen=True)
class RecordView:
    """One record opened: the record detail, My records' read-only view and its letters."""

    record: Record
    form: Form | None  # None when the record's form version is not installed
    form_problem: str | None  # why `form` is None, in words
    addenda: tuple[Addendum, ...]
    followups: tuple[FollowUp, ...]  # oldest first
    referral_state: ReferralState | None  # None while a draft
    letters: tuple[LetterMeta, ...]  # newest first
    letter_unavailable: str | None  # why there is no letter (None when one can be made)
    reviews: tuple[Review, ...] | None  # the lead's reviews: None for other roles
    access_log: tuple[AuditEvent, ...] | None  # who opened it: None for other roles


@dataclass(frozen=True)
class RecordsPage:
    """A page of a records list: the rows and each completed row's referral state."""

    records: tuple[Record, ...]
    states: dict[str, ReferralState]
    total: int | None  # counted only when asked (a count can cost more than the page)


@dataclass(frozen=True)
class DraftsSummary:
    """The "N drafts in progress" notice: how many of the user's own drafts, and the latest."""

    count: int
    latest: Record | None


@dataclass(frozen=True)
class DraftView:
    """The wizard resuming a draft: the record, carried to the newest form version when it
    was made with an older one, that form, and one line per carried or dropped answer."""

    record: Record
    form: Form | None  # None when the record is no longer a draft (nothing to resume)
    carried: tuple[str, ...]


@dataclass(frozen=True)
class ChronologyView:
    """The lead's chronology tab: the child's entries, household links and the records named."""

    entries: tuple[ChronologyEntry, ...]
    links: tuple[HouseholdLink, ...]
    records: dict[str, Record]
    forms: dict[str, Form]  # record id -> its form version (records whose form is installed)


class ViewsService(Service):
    """One call per screen; see the module docstring."""

    def record_view(self, record_id: str, *, audit_view: bool = True) -> RecordView:
        """Everything a record screen shows, checked as view_record and audited as one view
        ("record_viewed"; `audit_view=False` for a refresh after a change)."""
        self._require("view_record", record_id=record_id)
        record = self._session.assessments.get_record(record_id, audit_view=audit_view)
        form: Form | None = None
        problem: str | None = None
        try:
            form = self._session.assessments.form_for(record)
        except FormError as exc:
            problem = str(exc)
        role = self._session.user.role
        reviews = (
            tuple(self._session.referrals.reviews(record.id))
            if access.allowed(role, "lead_review")
            else None
        )
        log = (
            tuple(self._session.lead.record_access_log(record.id))
            if access.allowed(role, "record_access_log")
            else None
        )
        return RecordView(
            record=record,
            form=form,
            form_problem=problem,
            addenda=tuple(self._session.assessments.addenda(record.id)),
            followups=tuple(
                sorted(self._session.referrals.followups(record.id), key=lambda f: (f.at, f.id))
            ),
            referral_state=self._session.referrals.referral_states([record]).get(record.id),
            letters=tuple(
                sorted(
                    self._session.letters.list_letters(record.id),
                    key=lambda m: m.id,
                    reverse=True,
                )
            ),
            letter_unavailable=self._session.letters.letter_unavailable_reason(record),
            reviews=reviews,
            access_log=log,
        )

    def draft_view(self, record_id: str) -> DraftView:
        """What the wizard needs to resume a draft, checked as view_record and audited as
        opening it ("record_viewed"; a carry to the newest form adds "draft_carried_forward").
        A completed record comes back with no form: the wizard says it cannot be changed.
        A FormError (the draft's form is not installed) is raised for the wizard to show."""
        self._require("view_record", record_id=record_id)
        record = self._session.assessments.get_record(record_id)
        if not record.is_draft:
            return DraftView(record, None, ())
        record, carried = self._session.assessments.carry_draft_forward(record.id)
        return DraftView(record, self._session.assessments.form_for(record), tuple(carried))

    def records_page(
        self,
        flt: RecordFilter | None = None,
        limit: int | None = None,
        offset: int = 0,
        *,
        light: bool = False,
        count: bool = False,
    ) -> RecordsPage:
        """A page of the records the user may list, with their referral states (and the
        total when `count`): clinicians their own, leads all."""
        self._require("list_records")
        records = self._session.assessments.list_records(flt, limit, offset, light=light)
        total = self._session.assessments.count_records(flt) if count else None
        return RecordsPage(tuple(records), self._session.referrals.referral_states(records), total)

    def drafts_summary(self) -> DraftsSummary:
        """How many of the acting user's own drafts are in progress, and the latest one."""
        self._require("list_records")
        mine = RecordFilter(status="draft", clinician=self._session.user.username)
        count = self._session.assessments.count_records(mine)
        latest = self._session.assessments.list_records(mine, limit=1, light=True) if count else []
        return DraftsSummary(count, latest[0] if latest else None)

    def chronology_view(self, record_id: str) -> ChronologyView:
        """Lead: the child's chronology (audited as before, "chronology_viewed") with the
        records its entries name and their forms."""
        self._require("child_chronology", record_id=record_id)
        entries, links = self._session.lead.child_chronology(record_id)
        ids = tuple(dict.fromkeys(e.record_id for e in entries))
        found = (
            self._session.assessments.list_records(RecordFilter(record_ids=ids), light=True)
            if ids
            else []
        )
        forms: dict[str, Form] = {}
        for record in found:
            try:
                forms[record.id] = self._session.assessments.form_for(record)
            except FormError:
                continue  # an old form version that is no longer installed: tokens are shown
        return ChronologyView(tuple(entries), tuple(links), {r.id: r for r in found}, forms)
