"""Numbers for the lead's dashboard (no Qt, no SQL): computed from records and follow-ups."""

from __future__ import annotations

import statistics
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from gpshare.followup import ReferralState
from gpshare.records import FollowUp, Record, parse_datetime

PATHWAYS = ("emergency", "legal_duty", "referral", "limited_sharing", "early_help", "monitor")
CONSENT_BASES = (
    "consent_given",
    "shared_without_consent_refused",
    "shared_without_consent_not_sought",
    "not_applicable",
)


@dataclass(frozen=True)
class Dashboard:
    """What the dashboard shows, as numbers (the charts draw these)."""

    months: tuple[str, ...]
    by_pathway: dict[str, dict[str, int]]  # month -> pathway -> count
    by_consent: dict[str, dict[str, int]]  # month -> consent basis -> count
    completed: int
    shared: int
    shared_without_consent: int
    median_hours_to_send: float | None
    median_hours_to_acknowledge: float | None
    overdue: dict[str, int] = field(default_factory=dict)


def _hours(a: str | None, b: str | None) -> float | None:
    start, end = parse_datetime(a), parse_datetime(b)
    if start is None or end is None:
        return None
    return (end - start).total_seconds() / 3600


def build_dashboard(
    records: Sequence[Record], followups: Iterable[FollowUp], states: Iterable[ReferralState]
) -> Dashboard:
    """Monthly counts by pathway and consent basis, medians and overdue counts."""
    events: dict[str, dict[str, FollowUp]] = defaultdict(dict)
    for fu in sorted(followups, key=lambda f: (f.at, f.id)):
        events[fu.record_id].setdefault(fu.event, fu)
    by_pathway: dict[str, Counter[str]] = defaultdict(Counter)
    by_consent: dict[str, Counter[str]] = defaultdict(Counter)
    to_send: list[float] = []
    to_ack: list[float] = []
    completed = shared = without = 0
    for record in records:
        if record.status != "completed" or not record.completed:
            continue
        completed += 1
        month = record.completed[:7]
        by_pathway[month][record.pathway or "unknown"] += 1
        by_consent[month][record.consent_basis or "unknown"] += 1
        if record.letter_required:
            shared += 1
        if (record.consent_basis or "").startswith("shared_without_consent"):
            without += 1
        sent = events[record.id].get("sent")
        ack = events[record.id].get("acknowledged")
        if sent:
            hours = _hours(record.completed, sent.at)
            if hours is not None and hours >= 0:
                to_send.append(hours)
            if ack:
                hours = _hours(sent.at, ack.at)
                if hours is not None and hours >= 0:
                    to_ack.append(hours)
    overdue: Counter[str] = Counter()
    for state in states:
        if state.overdue:
            overdue[state.status] += 1
    months = tuple(sorted(set(by_pathway) | set(by_consent)))
    return Dashboard(
        months=months,
        by_pathway={m: dict(by_pathway[m]) for m in months},
        by_consent={m: dict(by_consent[m]) for m in months},
        completed=completed,
        shared=shared,
        shared_without_consent=without,
        median_hours_to_send=statistics.median(to_send) if to_send else None,
        median_hours_to_acknowledge=statistics.median(to_ack) if to_ack else None,
        overdue=dict(overdue),
    )
