"""Helpers the use-case modules share: answers to stored columns, search text, and the
stored referral states (migration 0006)."""

from __future__ import annotations

import contextlib
import re
from collections.abc import Mapping, Sequence
from dataclasses import replace
from datetime import date
from typing import Any

from gpshare import followup as followup_mod
from gpshare.chronology import address_key, carer_keys
from gpshare.errors import ValidationFailed
from gpshare.nhs_number import normalise as normalise_nhs
from gpshare.records import ChildSummary, FollowUp, Record, parse_date
from gpshare.store.port import ReadTx, Store, StoredState, WriteTx

# Records per export page: at most 500 ids, so each page's follow-ups come from an IN (...)
# lookup on the index, never a scan of every follow-up (repositories.followups).
EXPORT_PAGE = 500
# Settings that change when a referral's next action falls due (stored states recomputed).
REFERRAL_SETTING_KEYS = frozenset({"local_closure_days", "written_confirmation_hours"})
# Free-text fields indexed for the lead's full-text search (inside the encrypted database).
SEARCH_FIELDS = (
    "child_given_name",
    "child_family_name",
    "child_other_names",
    "concern_narrative",
    "concern_opinion",
    "child_words",
    "advice_summary",
    "reasons_not_sharing",
    "support_offered",
    "refusal_reasons",
    "conclusion_statement",
    "harm_if_not_shared",
    "benefit_of_sharing",
)


def _iso_date(value: Any) -> str | None:
    """An ISO date from what the user typed (ISO or dd/mm/yyyy), else None."""
    if not isinstance(value, str) or not value.strip():
        return None
    text = value.strip()
    parsed = parse_date(text)
    if parsed is None:
        parts = text.replace("-", "/").replace(".", "/").split("/")
        if len(parts) == 3 and all(p.isdigit() for p in parts) and len(parts[2]) == 4:
            with contextlib.suppress(ValueError):
                parsed = date(int(parts[2]), int(parts[1]), int(parts[0]))
    return parsed.isoformat() if parsed else None


def _nhs(answers: Mapping[str, Any]) -> str | None:
    raw = answers.get("nhs_number")
    return normalise_nhs(raw) if isinstance(raw, str) else None


def _child(answers: Mapping[str, Any]) -> Any:

    def text(key: str) -> str:
        value = answers.get(key)
        return value.strip() if isinstance(value, str) else ""

    return ChildSummary(
        text("child_given_name"),
        text("child_family_name"),
        _nhs(answers),
        text("date_of_birth") or None,
    )


def _search_text(answers: Mapping[str, Any]) -> str:
    return "\n".join(
        str(answers[k]) for k in SEARCH_FIELDS if isinstance(answers.get(k), str) and answers[k]
    )


def _json_safe(answers: Mapping[str, Any]) -> dict[str, Any]:
    """Reject anything that is not plain JSON data (dict/list/str/int/float/bool/None)."""

    def ok(value: Any, depth: int = 0) -> bool:
        if depth > 4:
            return False
        if value is None or isinstance(value, (str, bool, int, float)):
            return True
        if isinstance(value, list):
            return all(ok(v, depth + 1) for v in value)
        if isinstance(value, dict):
            return all(isinstance(k, str) and ok(v, depth + 1) for k, v in value.items())
        return False

    if not isinstance(answers, Mapping) or not all(isinstance(k, str) for k in answers):
        raise ValidationFailed("Answers must be a JSON object of field ids to values.", [])
    bad = [k for k, v in answers.items() if not ok(v)]
    if bad:
        raise ValidationFailed(
            f"These answers are not plain values: {', '.join(sorted(bad))}.",
            [{"field": k, "message": "not a plain JSON value"} for k in bad],
        )
    return {k: v for k, v in answers.items()}


def _backfill_household_links(store: Store) -> None:
    """Fill record_links for records completed before migration 0003 (once, idempotent).

    The keys are normalised in Python (Unicode case folding), which SQL cannot do, so this
    runs after the SQL migration rather than inside it.
    """
    with store.read() as tx:
        if tx.get_settings().get("household_links_backfilled") == "1":
            return
    with store.maintenance() as tx:
        for record in tx.records_without_links():
            tx.put_links(record.id, carer_keys(record.answers), address_key(record.answers))
        tx.put_settings({"household_links_backfilled": "1"})


def _closure_days(text: str) -> list[date]:
    """Local closure days from the setting's text (dates separated by commas or spaces)."""
    days = []
    for token in re.split(r"[,\s]+", text):
        parsed = parse_date(token) if token else None
        if parsed:
            days.append(parsed)
    return days


def _referral_rules(settings: Mapping[str, str]) -> tuple[list[date], int]:
    """(local closure days, written-confirmation hours): the settings a referral state uses."""
    closures = _closure_days(settings.get("local_closure_days", ""))
    return closures, int(settings.get("written_confirmation_hours", "24") or 24)


def _followups_by_record(tx: ReadTx, records: Sequence[Record]) -> dict[str, list[FollowUp]]:
    """The follow-up events of these records, grouped by record id (one query)."""
    per: dict[str, list[FollowUp]] = {}
    for event in tx.followups([r.id for r in records]):
        per.setdefault(event.record_id, []).append(event)
    return per


def _with_state_answers(tx: ReadTx, records: list[Record]) -> list[Record]:
    """Give light records (lists, exports: no answers) the few answers a referral state
    depends on (R4's police report, R3's delay), so the records table and the CSV export
    show the same next action as Needs action and the record view."""
    light = [r.id for r in records if not any(k in r.answers for k in followup_mod.STATE_ANSWERS)]
    if not light:
        return records
    # Read answers only where the stored state says they matter (or there is none yet):
    # reading every listed record's answers doubled the cost of a page.
    stored = tx.stored_actions(light)
    need = [
        rid for rid in light if rid not in stored or followup_mod.action_needs_answers(stored[rid])
    ]
    if not need:
        return records
    found = {r.id: r.answers for r in tx.completed_records_light(record_ids=need)}
    return [
        replace(
            r, answers={**r.answers, **{k: found[r.id].get(k) for k in followup_mod.STATE_ANSWERS}}
        )
        if r.id in found
        else r
        for r in records
    ]


def _store_referral_states(tx: WriteTx, records: Sequence[Record]) -> None:
    """Recompute and store the referral state of these completed records (migration 0006),
    inside the caller's transaction, with the practice's closure days and deadline."""
    closures, hours = _referral_rules(tx.get_settings())
    for first in range(0, len(records), EXPORT_PAGE):
        page = [r for r in records[first : first + EXPORT_PAGE] if r.status == "completed"]
        per = _followups_by_record(tx, page)
        rows = []
        for r in page:
            # Status, action and due date do not depend on today (only `overdue` does,
            # and that is compared with today when read), so any day will do here.
            state = followup_mod.referral_state(r, per.get(r.id, []), date.min, closures, hours)
            rows.append(
                StoredState(
                    r,
                    state.status,
                    state.next_action,
                    state.next_due.isoformat() if state.next_due else None,
                    state.sent_at.isoformat() if state.sent_at else None,
                    state.acknowledged_at.isoformat() if state.acknowledged_at else None,
                )
            )
        tx.put_referral_states(rows)


def _backfill_referral_states(store: Store) -> None:
    """Fill the stored referral states of records completed before migration 0006 (once)."""
    with store.read() as tx:
        if tx.get_settings().get("referral_states_backfilled") == "1":
            return
    with store.maintenance() as tx:
        _store_referral_states(tx, tx.completed_records_light())
        tx.put_settings({"referral_states_backfilled": "1"})
