"""Assessments: forms, the navigator, drafts, completion, records and addenda
(session.assessments)."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from datetime import datetime
from typing import Any

from gpshare import carry, navigator, practice_settings
from gpshare.chronology import address_key, carer_keys
from gpshare.clock import today
from gpshare.errors import SaveOutcomeUnknown, ServerUnreachableError, ValidationFailed
from gpshare.filters import RecordFilter
from gpshare.forms import Form, load_form_by_id
from gpshare.nhs_number import normalise as normalise_nhs
from gpshare.records import Addendum, ChildSummary, Record, new_record_id, parse_date
from gpshare.services import (
    _offline_drafts,
    _sealed_objects,
    _sealed_records,
    _sealing,
    search_index,
)
from gpshare.services._base import Service
from gpshare.services._records import (
    _child,
    _iso_date,
    _json_safe,
    _nhs,
    _search_text,
    _store_referral_states,
)
from gpshare.store.port import SealedRecord, WriteTx

DEFAULT_FORM_ID = "england-child-safeguarding"
DRAFT_AUDIT_COALESCE_SECONDS = 300


class AssessmentsService(Service):
    """Drafts and completed records: clinicians their own, leads any."""

    _rules: dict[str, str] | None = None  # the practice's rule settings last read

    def form_for(self, record: Record) -> Form:
        """The form version a record was made with."""
        self._require("read_form")
        return load_form_by_id(record.form_id, record.form_version)

    def prior_records(
        self, answers: Mapping[str, Any], exclude: str | None = None
    ) -> list[navigator.PriorRecord]:
        """Earlier completed records about the same child, for chronology prompts.

        Clinicians and leads only; audited whenever it finds any (the wizard asks on each
        change of the child's identity, and a miss discloses nothing).
        """
        self._require("assess", record_id=exclude)
        prior = self._prior_records(answers, exclude)
        if prior:
            self._session.audit(
                "prior_records_viewed",
                exclude,
                {"records": [p.record_id for p in prior]},
            )
        return prior

    def _prior_records(
        self, answers: Mapping[str, Any], exclude: str | None = None
    ) -> list[navigator.PriorRecord]:
        if self._session.keys is not None:
            return self._prior_records_v2(answers, exclude)
        raw_nhs = answers.get("nhs_number")
        nhs = normalise_nhs(raw_nhs) if isinstance(raw_nhs, str) else None
        family = (
            answers.get("child_family_name")
            if isinstance(answers.get("child_family_name"), str)
            else None
        )
        dob = _iso_date(answers.get("date_of_birth"))
        with self._session._read() as tx:
            found = tx.records_for_child(nhs, family, dob, exclude)
        prior = []
        for rec, match in found:
            created = parse_date(rec.completed or rec.created)
            assert created is not None
            prior.append(
                navigator.PriorRecord(
                    record_id=rec.id,
                    created=created,
                    pathway=rec.pathway,
                    decision=rec.answers.get("decision"),
                    review_date=parse_date(rec.answers.get("review_date")),
                    author=rec.clinician_name or rec.clinician,
                    match=match,
                )
            )
        return prior

    def _prior_records_v2(
        self, answers: Mapping[str, Any], exclude: str | None
    ) -> list[navigator.PriorRecord]:
        """Vault version 2: found by blind tokens, confirmed against each match's summary."""
        prior = []
        for match, summary, how in _sealed_records.same_child(self._session, answers, exclude):
            created = parse_date(match.row.completed or match.row.created)
            assert created is not None
            prior.append(
                navigator.PriorRecord(
                    record_id=match.row.id,
                    created=created,
                    pathway=summary.pathway,
                    decision=summary.decision,
                    review_date=parse_date(summary.review_date),
                    author=match.row.clinician_name or match.row.clinician,
                    match=how,
                )
            )
        return prior

    def evaluate(
        self,
        form: Form,
        answers: Mapping[str, Any],
        exclude: str | None = None,
        prior: Sequence[navigator.PriorRecord] | None = None,
    ) -> navigator.Evaluation:
        """Run the navigator with today's date and the child's earlier records.

        Pass `prior` (from prior_records) while the child's identity is unchanged: the wizard
        evaluates on every keystroke and already keeps it.
        """
        self._require("assess")
        # Unaudited: the evaluation says only whether earlier records exist, not what they hold.
        found = self._prior_records(answers, exclude) if prior is None else prior
        context = navigator.Context(
            today=today(self._session.clock),
            prior_records=tuple(found),
            settings=self._rule_settings(),
        )
        return navigator.evaluate(form, answers, context)

    def _rule_settings(self) -> dict[str, str]:
        """The practice's rule settings; while the server is unreachable, the last ones read,
        so the navigator keeps guiding a draft kept offline (completing reads them again)."""
        offline = self._session.keys is not None and _offline_drafts.is_offline(self._session)
        if not offline or self._rules is None:
            try:
                self._rules = self._session.practice.rule_settings()
            except ServerUnreachableError:
                if self._rules is None:
                    raise
        return self._rules

    def carry_draft_forward(self, record_id: str) -> tuple[Record, list[str]]:
        """Carry an own draft made with an older form version to the newest (audited).

        Returns the draft (unchanged when it already uses the newest version) and one line
        per mapped or dropped answer, for the wizard to list on the first step it shows.
        Dropped answers go into the draft's history (carry.HISTORY_KEY), never lost.
        """
        self._require("save_draft")
        record, sealed = self._draft_and_sealed(record_id, "save_draft")
        newest = load_form_by_id(record.form_id)
        if (record.form_version, newest.version) != (1, 2):  # the only mapping there is
            return record, []
        old = self.form_for(record)
        carried = carry.carry_v1_to_v2(record.answers, old, newest)
        now = self._session.now_iso()
        history = list(record.answers.get(carry.HISTORY_KEY) or [])
        history += carried.history_entries(now)
        data = _json_safe({**carried.answers, carry.HISTORY_KEY: history})
        step = newest.steps[0].id
        if sealed is not None:
            carried_draft = replace(
                record, form_version=newest.version, answers=data, current_step=step,
                updated=now, child=_child(data),
            )  # fmt: skip
            write = _sealed_records.seal_save(self._session, carried_draft, sealed)
            self._session._write(
                "draft_carried_forward",
                lambda tx: tx.update_sealed_draft(write),
                record_id,
                {**carried.audit_details(), **_sealed_records.audit_details(write)},
            )
            _sealed_records.written(self._session, write)
            return carried_draft, carry.change_lines(carried, old)

        def work(tx: WriteTx) -> None:
            tx.move_draft_to_form(record_id, newest.version, data, step, now)

        self._session._write("draft_carried_forward", work, record_id, carried.audit_details())
        with self._session._read() as tx:
            moved = tx.get_record(record_id)
        assert moved is not None
        return moved, carry.change_lines(carried, old)

    def start_assessment(
        self, form_id: str = DEFAULT_FORM_ID, answers: Mapping[str, Any] | None = None
    ) -> Record:
        """Create a new draft owned by the acting clinician or lead."""
        self._require("start_assessment")
        form = load_form_by_id(form_id)
        now = self._session.now_iso()
        data = practice_settings.prefill(
            (f.id for f in form.all_fields()), self._session.practice.settings(), answers or {}
        )
        record = Record(
            new_record_id(),
            self._session.user.username,
            "draft",
            form.id,
            form.version,
            data,
            form.steps[0].id,
            None,
            now,
            now,
            None,
            _child(data),
            self._session.user.full_name,
        )
        if self._session.keys is not None:
            write = _sealed_records.seal_save(self._session, record, None)
            self._session._write(
                "record_created",
                lambda tx: tx.insert_sealed_record(write),
                record.id,
                {
                    "form": form.id,
                    "version": form.version,
                    **_sealed_records.audit_details(write),
                },
            )
            _sealed_records.written(self._session, write)
            return record
        self._session._write(
            "record_created",
            lambda tx: tx.insert_record(record, _nhs(data)),
            record.id,
            {"form": form.id, "version": form.version},
        )
        return record

    def assessment_defaults(self, form_id: str = DEFAULT_FORM_ID) -> dict[str, Any]:
        """The answers a new assessment starts with (from practice settings), for the wizard to
        show before the first save; start_assessment applies the same pre-fill.

        It reveals only practice settings, which any unlocked user may read (see settings());
        starting the assessment is what start_assessment guards.
        """
        self._require("read_settings")
        form = load_form_by_id(form_id)
        return practice_settings.prefill(
            (f.id for f in form.all_fields()), self._session.practice.settings(), {}
        )

    def save_draft(
        self,
        record_id: str,
        answers: Mapping[str, Any],
        current_step: str | None = None,
        *,
        autosave: bool = False,
    ) -> Record:
        """Save a draft's answers (encrypted). Autosaves are audited at most every 5 minutes."""
        self._require("save_draft")
        record, sealed = self._draft_and_sealed(record_id, "save_draft")
        data = _json_safe(answers)
        now = self._session.now_iso()
        step = current_step or record.current_step
        saved = replace(record, answers=data, current_step=step, updated=now, child=_child(data))
        details: dict[str, Any] = {"autosave": autosave, "step": step}
        write = None if sealed is None else _sealed_records.seal_save(self._session, saved, sealed)

        def work(tx: WriteTx) -> None:
            if write is not None:
                # Refused (StaleVersionError, nothing written) if saved elsewhere meanwhile.
                tx.update_sealed_draft(write)
                return
            tx.update_draft(record_id, data, step, now, _nhs(data))
            tx.put_search_text(record_id, _search_text(data))

        if write is not None:
            details.update(_sealed_records.audit_details(write))

        if autosave and self._recent_draft_audit(record_id):
            # Coalesced: an autosave within minutes of the last audited save is not audited.
            self._session._write_unaudited(work)
        else:
            self._session._write("draft_saved", work, record_id, details)
        if write is not None:
            _sealed_records.written(self._session, write)
        return saved

    def _draft_and_sealed(self, record_id: str, action: str) -> tuple[Record, SealedRecord | None]:
        """The acting user's own draft, and on a v2 vault the sealed record it was opened from."""
        if self._session.keys is None:
            return self._own_draft(record_id, action), None
        return _sealed_records.own_draft(self._session, record_id, action)

    def _recent_draft_audit(self, record_id: str) -> bool:
        with self._session._read() as tx:
            at = tx.last_draft_saved_at(record_id)
        if at is None:
            return False
        last = datetime.fromisoformat(at)
        return (self._session.clock.now() - last).total_seconds() < DRAFT_AUDIT_COALESCE_SECONDS

    def complete(
        self, record_id: str, answers: Mapping[str, Any] | None = None
    ) -> tuple[Record, navigator.Evaluation]:
        """Validate the whole form; if clean, freeze answers + form version + outcome.

        With errors the answers are kept as a draft and ValidationFailed lists them. Refused
        while the practice server is unreachable, after keeping `answers` in this computer's
        offline cache (ServerUnreachableError saying the draft is safe).
        """
        self._require("complete_record")
        if self._session.keys is None:
            return self._complete(record_id, answers)
        try:
            if _offline_drafts.is_offline(self._session):
                raise ServerUnreachableError(_offline_drafts.COMPLETE_OFFLINE)
            return self._complete(record_id, answers)
        except SaveOutcomeUnknown:
            raise  # its COMMIT was sent, so never "nothing was changed": its own words say so
        except ServerUnreachableError as exc:
            raise _offline_drafts.complete_refused(self._session, record_id, answers) from exc

    def _complete(
        self, record_id: str, answers: Mapping[str, Any] | None
    ) -> tuple[Record, navigator.Evaluation]:
        if self._session.keys is not None:
            _sealed_records.require_clinical_key(self._session)
        record, sealed = self._draft_and_sealed(record_id, "complete_record")
        data = _json_safe(answers) if answers is not None else record.answers
        form = self.form_for(record)
        evaluation = self.evaluate(form, data, exclude=record_id)
        if evaluation.errors:
            self.save_draft(record_id, data, record.current_step)
            raise ValidationFailed(
                f"The assessment cannot be completed yet: {len(evaluation.errors)} item(s) need attention.",
                evaluation.errors,
            )
        cleaned = dict(evaluation.cleaned)
        if isinstance(data.get(carry.HISTORY_KEY), list):  # keep a carried draft's history
            cleaned[carry.HISTORY_KEY] = data[carry.HISTORY_KEY]
        outcome = evaluation.outcome.to_dict()
        now = self._session.now_iso()
        details = {
            "pathway": outcome.get("pathway"),
            "consent_basis": outcome.get("consent_basis"),
            "form_version": form.version,
        }
        if sealed is not None:
            done = replace(
                record, status="completed", answers=cleaned, outcome=outcome, updated=now,
                completed=now, child=_child(cleaned),
            )  # fmt: skip
            write = _sealed_records.seal_save(self._session, done, sealed)

            def sealed_work(tx: WriteTx) -> None:
                tx.complete_sealed_record(write)
                # The stored state's child columns stay empty: names are class C (summary).
                _store_referral_states(tx, [replace(done, child=ChildSummary("", "", None, None))])

            self._session._write(
                "record_completed",
                sealed_work,
                record_id,
                {**details, **_sealed_records.audit_details(write)},
            )
            _sealed_records.written(self._session, write)
            return done, evaluation

        def work(tx: WriteTx) -> None:
            tx.complete_record(record_id, cleaned, outcome, now, _nhs(cleaned))
            tx.put_links(record_id, carer_keys(cleaned), address_key(cleaned))
            tx.put_search_text(record_id, _search_text(cleaned))
            _store_referral_states(tx, tx.completed_records_light(record_ids=[record_id]))

        self._session._write("record_completed", work, record_id, details)
        with self._session._read() as tx:
            completed = tx.get_record(record_id)
        assert completed is not None
        return completed, evaluation

    def get_record(self, record_id: str, *, audit_view: bool = True) -> Record:
        """One record (own, or any for a lead); the view is audited."""
        self._require("view_record", record_id=record_id)
        record = self._readable(record_id, "view_record")
        if audit_view:
            self._session.audit("record_viewed", record_id)
        return record

    def list_records(
        self,
        flt: RecordFilter | None = None,
        limit: int | None = None,
        offset: int = 0,
        *,
        light: bool = False,
    ) -> list[Record]:
        """Clinicians see their own records; leads see all. `light`: without the answers
        (enough for lists and referral states)."""
        self._require("list_records")
        flt = flt or RecordFilter()
        if self._session.user.role != "lead":
            flt = replace(flt, clinician=self._session.user.username)
        if self._session.keys is not None:
            # M rows + one page of C summaries: light or not, a list never unwraps an answers
            # object on v2 (the export with narratives opens its pages itself). A lead's page
            # is selected by the search replica when it is current; a clinician's search runs
            # in memory over their own records.
            replica = search_index.current_replica(self._session)
            if replica is not None:
                ids = search_index.list_ids(replica, flt, limit, offset)
                return _sealed_records.rows_in_order(self._session, ids)
            return _sealed_records.list_page(
                self._session, flt, limit, offset, self._own_search(flt)
            )
        with self._session._read() as tx:
            return tx.list_records(flt, limit, offset, light=light)

    def count_records(self, flt: RecordFilter | None = None) -> int:
        self._require("list_records")
        flt = flt or RecordFilter()
        if self._session.user.role != "lead":
            flt = replace(flt, clinician=self._session.user.username)
        if self._session.keys is not None:
            replica = search_index.current_replica(self._session)
            if replica is not None:
                return replica.count_records(flt)
            return _sealed_records.count(self._session, flt, self._own_search(flt))
        with self._session._read() as tx:
            return tx.count_records(flt)

    def _own_search(self, flt: RecordFilter) -> Callable[[Sequence[Record]], set[str]] | None:
        """A clinician's search of their own records in memory (DESIGN §10.2); None for a lead
        (their search without the replica finds names, NHS numbers and references)."""
        if not flt.search or self._session.user.role == "lead":
            return None
        query = flt.search
        return lambda rows: search_index.own_search(self._session, rows, query)

    def add_addendum(self, record_id: str, text: str) -> Addendum:
        """Append a later fact to a completed record (its author or a lead)."""
        self._require("add_addendum", record_id=record_id)
        record = self._readable(record_id, "add_addendum")
        body = text.strip()
        if record.is_draft:
            raise ValidationFailed(
                "This record is still a draft: change the draft itself instead of adding an addendum.",
                [{"field": "text", "message": "the record is a draft"}],
            )
        if not body:
            raise ValidationFailed(
                "The addendum is empty: type the new information.",
                [{"field": "text", "message": "empty"}],
            )
        if len(body) > 5000:
            raise ValidationFailed(
                f"The addendum is {len(body)} characters; 5000 is the limit. Shorten it or add two.",
                [{"field": "text", "message": "too long"}],
            )
        if any(ord(ch) < 32 and ch not in "\n\t" for ch in body):
            raise ValidationFailed(
                "The addendum contains invisible control characters (often from pasting); remove them.",
                [{"field": "text", "message": "control characters"}],
            )
        now = self._session.now_iso()
        if self._session.keys is not None:
            # Vault v2: the body is N, sealed under its own object key (_sealed_objects).
            sealed = _sealing.seal_addendum(
                self._session.keys, _sealed_objects.row_of(record), now, body
            )
            addendum_id = self._session._write(
                "addendum_added",
                lambda tx: tx.add_sealed_addendum(
                    record_id, self._session.user.username, now, sealed
                ),
                record_id,
                _sealed_objects.audit_details(sealed),
            )
            return Addendum(addendum_id, record_id, self._session.user.username, now, body)
        addendum_id = self._session._write(
            "addendum_added",
            lambda tx: tx.add_addendum(record_id, self._session.user.username, now, body),
            record_id,
        )
        return Addendum(addendum_id, record_id, self._session.user.username, now, body)

    def addenda(self, record_id: str) -> list[Addendum]:
        self._require("view_record", record_id=record_id)
        record = self._readable(record_id, "view_record")
        with self._session._read() as tx:
            if self._session.keys is not None:
                return _sealed_objects.addenda(self._session, tx, record)
            return tx.addenda(record_id)
