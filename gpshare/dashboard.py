"""Numbers for the lead's dashboard (no Qt, no SQL): computed from records and follow-ups."""

from __future__ import annotations

import statistics
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from gpshare.followup import ReferralState
from gpshare.records import parse_datetime

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
    by_month_pathway: Iterable[tuple[str, str, int]],
    by_month_consent: Iterable[tuple[str, str, int]],
    timings: Iterable[tuple[str, str | None, str | None]],
    states: Iterable[ReferralState],
    overdue_counts: Mapping[str, int] | None = None,
) -> Dashboard:
    """Assemble the dashboard from monthly counts, (completed, sent, acknowledged) times and
    the states of open referrals (for overdue counts), or overdue counts already made."""
    by_pathway: dict[str, Counter[str]] = defaultdict(Counter)
    by_consent: dict[str, Counter[str]] = defaultdict(Counter)
    completed = shared = without = 0
    for month, pathway, count in by_month_pathway:
        by_pathway[month][pathway] += count
        completed += count
        if pathway != "monitor":
            shared += count
    for month, basis, count in by_month_consent:
        by_consent[month][basis] += count
        if basis.startswith("shared_without_consent"):
            without += count
    to_send: list[float] = []
    to_ack: list[float] = []
    for done, sent, acknowledged in timings:
        hours = _hours(done, sent)
        if hours is not None and hours >= 0:
            to_send.append(hours)
        hours = _hours(sent, acknowledged)
        if hours is not None and hours >= 0:
            to_ack.append(hours)
    overdue: Counter[str] = Counter(state.status for state in states if state.overdue)
    overdue.update(overdue_counts or {})
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
