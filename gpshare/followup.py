"""Referral follow-up: what happened after a letter, and what needs chasing (no Qt, no SQL).

Working Together 2023: children's social care should acknowledge a referral within one
working day; the referrer should follow up when nothing comes back (GMC: referral is not
the end of the duty). Monitor decisions carry a review date that must not pass silently.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta

from gpshare.records import FollowUp, Record, parse_date, parse_datetime
from gpshare.workdays import add_working_days

EVENTS = ("sent", "acknowledged", "decision", "feedback", "escalated", "closed")
EVENT_LABELS = {
    "sent": "Referral sent",
    "acknowledged": "Receipt acknowledged",
    "decision": "Local authority decision",
    "feedback": "Feedback received",
    "escalated": "Escalated",
    "closed": "Closed",
}
LA_DECISIONS = {
    "nfa": "No further action",
    "advice_signposting": "Advice / signposting",
    "early_help": "Early help",
    "s17_assessment": "Child in need assessment (s.17)",
    "s47_enquiry": "Child protection enquiry (s.47)",
    "strategy_discussion": "Strategy discussion",
    "icpc": "Initial child protection conference",
    "cp_plan": "Child protection plan",
    "police_action": "Police action",
    "unknown": "Not known",
}
SEND_METHODS = {
    "secure_email": "Secure email",
    "portal": "Portal",
    "post": "Post",
    "phone_then_written": "Phone, then in writing",
}
CLINICIAN_EVENTS = frozenset(
    {"sent", "acknowledged", "decision", "feedback"}
)  # on their own records
LEAD_ONLY_EVENTS = frozenset({"escalated", "closed"})
NEEDS_ACTION_HORIZON_DAYS = 2  # also list what falls due in the next two days
FEEDBACK_WORKING_DAYS = 5  # practice expectation for hearing the decision after acknowledgement


@dataclass(frozen=True)
class ReferralState:
    """Where a completed record stands and what is due next."""

    record_id: str
    status: str  # completed | sent | acknowledged | outcome_recorded | closed | monitor
    sent_at: datetime | None
    acknowledgement_due: date | None
    acknowledged_at: datetime | None
    decision: str | None
    next_action: str | None
    next_due: date | None
    overdue: bool

    @property
    def status_label(self) -> str:
        return {
            "completed": "Completed — not yet sent",
            "sent": "Sent — awaiting acknowledgement",
            "acknowledged": "Acknowledged — awaiting decision",
            "outcome_recorded": "Outcome recorded",
            "closed": "Closed",
            "monitor": "Monitoring — review due",
        }.get(self.status, self.status)


def referral_state(
    record: Record,
    events: Sequence[FollowUp],
    today: date,
    closures: Iterable[date] = (),
    written_confirmation_hours: int = 24,
) -> ReferralState:
    """Compute status, next action and whether it is overdue for one completed record."""
    closed_days = tuple(closures)
    by_kind: dict[str, FollowUp] = {}
    for event in sorted(events, key=lambda e: (e.at, e.id)):
        by_kind.setdefault(event.event, event)
        if event.event in ("decision", "feedback"):
            by_kind[event.event] = event  # the latest decision counts
    closed = by_kind.get("closed")
    if record.pathway == "monitor":
        review = parse_date(record.answers.get("review_date"))
        if closed:
            return ReferralState(record.id, "closed", None, None, None, None, None, None, False)
        return ReferralState(
            record.id,
            "monitor",
            None,
            None,
            None,
            None,
            "Review the decision not to share",
            review,
            bool(review and review < today),
        )
    sent = by_kind.get("sent")
    ack = by_kind.get("acknowledged")
    decision = by_kind.get("decision") or by_kind.get("feedback")
    sent_at = parse_datetime(sent.at) if sent else None
    ack_at = parse_datetime(ack.at) if ack else None
    ack_due = add_working_days(sent_at.date(), 1, closed_days) if sent_at else None
    decision_token = by_kind["decision"].decision if "decision" in by_kind else None
    if closed:
        return ReferralState(
            record.id, "closed", sent_at, ack_due, ack_at, decision_token, None, None, False
        )
    if decision:
        return ReferralState(
            record.id,
            "outcome_recorded",
            sent_at,
            ack_due,
            ack_at,
            decision_token,
            "Close when no further action is needed",
            None,
            False,
        )
    if ack_at:
        due = add_working_days(ack_at.date(), FEEDBACK_WORKING_DAYS, closed_days)
        return ReferralState(
            record.id,
            "acknowledged",
            sent_at,
            ack_due,
            ack_at,
            None,
            "Chase the local authority's decision",
            due,
            due < today,
        )
    if sent_at and ack_due:
        return ReferralState(
            record.id,
            "sent",
            sent_at,
            ack_due,
            None,
            None,
            "Chase acknowledgement of the referral",
            ack_due,
            ack_due < today,
        )
    completed = parse_datetime(record.completed or record.created)
    if record.pathway == "emergency" and completed:
        due_at = completed + timedelta(hours=written_confirmation_hours)
        return ReferralState(
            record.id,
            "completed",
            None,
            None,
            None,
            None,
            "Send the written confirmation of the phone referral",
            due_at.date(),
            due_at.date() < today,
        )
    send_due = completed.date() if completed else None
    return ReferralState(
        record.id,
        "completed",
        None,
        None,
        None,
        None,
        "Send the referral letter",
        send_due,
        bool(send_due and send_due < today),
    )


def check_event(event: str, decision: str | None, state: ReferralState) -> str | None:
    """Why this follow-up event cannot be recorded now (None when it can)."""
    if event not in EVENTS:
        return f"Event must be one of: {', '.join(EVENTS)}."
    if state.status == "closed":
        return "This referral is closed; add an addendum to the record if something new happens."
    if state.status == "monitor" and event != "closed":
        return "This record's decision was not to share; there is no referral to follow up. Record the review as an addendum, or close it."
    if event == "decision":
        if decision not in LA_DECISIONS:
            return f"Choose the local authority's decision: {', '.join(LA_DECISIONS)}."
    elif decision:
        return "A decision token only goes with the 'decision' event."
    if event == "acknowledged" and state.sent_at is None:
        return "Record when the referral was sent before recording its acknowledgement."
    if event == "sent" and state.sent_at is not None:
        return "The referral is already recorded as sent."
    return None


@dataclass(frozen=True)
class NeedsAction:
    """One line of the lead's 'needs action' list."""

    record_id: str
    child: str
    clinician: str
    action: str
    due: date | None
    overdue: bool


def needs_action(
    items: Iterable[tuple[Record, ReferralState]],
    today: date,
    horizon_days: int = NEEDS_ACTION_HORIZON_DAYS,
) -> list[NeedsAction]:
    """Overdue items first, then those due within `horizon_days`."""
    out = []
    for record, state in items:
        if state.next_action is None:
            continue
        if state.overdue or (
            state.next_due is not None and state.next_due <= today + timedelta(days=horizon_days)
        ):
            out.append(
                NeedsAction(
                    record.id,
                    record.child.display_name,
                    record.clinician_name or record.clinician,
                    state.next_action,
                    state.next_due,
                    state.overdue,
                )
            )
    out.sort(key=lambda n: (not n.overdue, n.due or date.max))
    return out
