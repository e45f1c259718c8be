"""Per-child history of concerns across records (no Qt, no SQL).

Serious case reviews keep finding that scattered low-level concerns were never put
together; this module turns a child's records, follow-ups, reviews and addenda into one
time-ordered list, and finds other records that share a parent/carer or an address
("household links") for the lead to confirm.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from gpshare.records import Addendum, FollowUp, Record, Review


@dataclass(frozen=True)
class ChronologyEntry:
    """One dated line of a child's chronology."""

    when: str  # ISO date or datetime; sorts correctly as text
    kind: str  # "record" | "review_due" | "followup" | "review" | "addendum"
    record_id: str
    summary: str
    author: str


def _record_summary(record: Record) -> str:
    outcome = record.outcome or {}
    decision = record.answers.get("decision") or "not decided"
    pathway = outcome.get("pathway") or "draft"
    return f"Assessment ({pathway}): decision {decision}; consent {outcome.get('consent_basis') or 'n/a'}"


def build_chronology(
    records: Sequence[Record],
    followups: Iterable[FollowUp] = (),
    reviews: Iterable[Review] = (),
    addenda: Iterable[Addendum] = (),
) -> list[ChronologyEntry]:
    """Every event for the given records in time order (review dates included)."""
    entries: list[ChronologyEntry] = []
    for record in records:
        entries.append(
            ChronologyEntry(
                record.completed or record.created,
                "record",
                record.id,
                _record_summary(record),
                record.clinician_name or record.clinician,
            )
        )
        review_date = record.answers.get("review_date")
        if record.status == "completed" and isinstance(review_date, str) and review_date:
            entries.append(
                ChronologyEntry(
                    review_date,
                    "review_due",
                    record.id,
                    "Review date set when deciding not to share now",
                    record.clinician,
                )
            )
    for fu in followups:
        note = f" — {fu.decision}" if fu.decision else ""
        entries.append(
            ChronologyEntry(
                fu.at, "followup", fu.record_id, f"Referral {fu.event}{note}", fu.recorded_by
            )
        )
    for review in reviews:
        # A sealed review (vault v2) comes without its verdict, which is read only when the
        # record is opened.
        verdict = f": {review.verdict.replace('_', ' ')}" if review.verdict else ""
        entries.append(
            ChronologyEntry(
                review.created, "review", review.record_id, f"Lead review{verdict}", review.reviewer
            )
        )
    for addendum in addenda:
        entries.append(
            ChronologyEntry(
                addendum.created, "addendum", addendum.record_id, "Addendum added", addendum.author
            )
        )
    entries.sort(key=lambda e: (e.when, e.kind))
    return entries


def normalise_name(name: str) -> str:
    """Case-, accent- and punctuation-insensitive form used to compare names."""
    decomposed = unicodedata.normalize("NFKD", name.casefold())
    letters = "".join(ch for ch in decomposed if not unicodedata.combining(ch))
    return re.sub(r"[^\w]+", " ", letters).strip()


def normalise_address(address: str) -> str:
    """Compare addresses on their first line and postcode-ish tokens, ignoring case/punctuation."""
    return re.sub(r"\s+", " ", normalise_name(address.replace("\n", " ")))


def carer_keys(answers: Mapping[str, Any]) -> set[str]:
    """Normalised names of a record's parents/carers (household-link keys)."""
    people = answers.get("parents_carers")
    names: set[str] = set()
    if isinstance(people, list):
        for person in people:
            if (
                isinstance(person, dict)
                and isinstance(person.get("name"), str)
                and person["name"].strip()
            ):
                names.add(normalise_name(person["name"]))
    return names


def address_key(answers: Mapping[str, Any]) -> str:
    """Normalised address of the child (household-link key); empty when none."""
    value = answers.get("address")
    return normalise_address(value) if isinstance(value, str) else ""


@dataclass(frozen=True)
class HouseholdLink:
    """Another child's record that shares a parent/carer or address; the lead confirms it."""

    record: Record
    reasons: tuple[str, ...]
    status: str = "to_confirm"  # to_confirm | same_household | not_related (the lead's decision)


def household_links(
    child_records: Sequence[Record], others: Iterable[Record]
) -> list[HouseholdLink]:
    """Records about *other* children sharing a parent/carer name or the address."""
    carers: set[str] = set()
    addresses: set[str] = set()
    own_ids = {r.id for r in child_records}
    own_children = {
        (r.child.nhs_number or normalise_name(r.child.display_name)) for r in child_records
    }
    for record in child_records:
        carers |= carer_keys(record.answers)
        addresses.add(address_key(record.answers))
    addresses.discard("")
    links: list[HouseholdLink] = []
    for other in others:
        if (
            other.id in own_ids
            or (other.child.nhs_number or normalise_name(other.child.display_name)) in own_children
        ):
            continue
        reasons: list[str] = []
        if carers & carer_keys(other.answers):
            reasons.append("same parent/carer")
        if address_key(other.answers) in addresses:
            reasons.append("same address")
        if reasons:
            links.append(HouseholdLink(other, tuple(reasons)))
    return links
