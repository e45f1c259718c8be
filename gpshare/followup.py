"""Referral follow-up: what happened after a letter, and what needs chasing (no Qt, no SQL).

Working Together 2023: children's social care should acknowledge a referral within one
working day; the referrer should follow up when nothing comes back (GMC: referral is not
the end of the duty). Monitor decisions carry a review date that must not pass silently.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from datetime import date, datetime, timedelta

from gpshare.navigator import add_months
from gpshare.records import FollowUp, Record, parse_date, parse_datetime
from gpshare.workdays import add_working_days

EVENTS = (
    "sent",
    "acknowledged",
    "decision",
    "feedback",
    "escalated",
    "closed",
    "fgm_police_reported",
)
EVENT_LABELS = {
    "fgm_police_reported": "FGM reported to the police",
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
    {"sent", "acknowledged", "decision", "feedback", "fgm_police_reported"}
)  # on their own records
LEAD_ONLY_EVENTS = frozenset({"escalated", "closed"})
# R3's exception: significant harm, sharing delayed for the child's best interests. Its review
# (at most 7 days away) stays on Needs action from completion, not only within the horizon.
DELAYED_SHARING_ACTION = "Review the decision to delay sharing (significant harm)"
FGM_REPORT_ACTION = "Report the FGM to the police (101)"
# The answers a referral state reads (R4's police report, R3's delay): lists and exports
# carry light records without answers, so the store reads just these for them.
STATE_ANSWERS = ("fgm_police_report", "fgm_discovered_on", "sharing_delay_reason")


def action_needs_answers(stored_action: str | None) -> bool:
    """Whether a stored next action came from answers a light record lacks (R4's police
    report, R3's delayed sharing), so a list must read them to show the same action."""
    if not stored_action:
        return False
    return stored_action.startswith(FGM_REPORT_ACTION) or stored_action == DELAYED_SHARING_ACTION


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
    # R4: a police report of known FGM still `to_be_made` falls due on this day (None when
    # there is none outstanding); it leads the next action until `fgm_police_reported`.
    fgm_report_due: date | None = None

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
    state = _referral_state(record, events, today, closed_days, written_confirmation_hours)
    return _with_fgm_report(record, events, today, closed_days, state)


def fgm_report_deadline(record: Record) -> date | None:
    """The day the FGM Act's one month from discovery ends (R4), when the record says."""
    discovered = parse_date(record.answers.get("fgm_discovered_on"))
    return add_months(discovered, 1) if discovered else None


def _with_fgm_report(
    record: Record,
    events: Sequence[FollowUp],
    today: date,
    closed_days: tuple[date, ...],
    state: ReferralState,
) -> ReferralState:
    """Put an outstanding FGM police report (R4, hazard H-05) first in the next action.

    The duty is the clinician's own and a CSC letter never discharges it, so the item stays
    until a `fgm_police_reported` event, whatever happens to the referral letter.
    """
    if record.answers.get("fgm_police_report") != "to_be_made":
        return state
    if any(e.event == "fgm_police_reported" for e in events):
        return state
    completed = parse_datetime(record.completed or record.created)
    if completed is None:
        return state
    due = add_working_days(completed.date(), 1, closed_days)
    deadline = fgm_report_deadline(record)
    by = f"{deadline.day} {deadline:%B %Y}" if deadline else "one month after discovery"
    action = f"{FGM_REPORT_ACTION} — the law requires it by {by}"
    if state.next_action:
        action = f"{action}. Also: {state.next_action}"
    if state.next_due is not None:
        due = min(due, state.next_due)
    return replace(
        state,
        next_action=action,
        next_due=due,
        overdue=due < today,
        fgm_report_due=add_working_days(completed.date(), 1, closed_days),
    )


def _referral_state(
    record: Record,
    events: Sequence[FollowUp],
    today: date,
    closed_days: tuple[date, ...],
    written_confirmation_hours: int,
) -> ReferralState:
    """The referral's own state, before any outstanding FGM police report is added."""
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
            DELAYED_SHARING_ACTION
            if record.answers.get("sharing_delay_reason")
            else "Review the decision not to share",
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
    if event == "fgm_police_reported":
        if decision:
            return "A decision token only goes with the 'decision' event."
        if state.fgm_report_due is None:
            return (
                "This record has no police report of FGM waiting to be made "
                "(its answer to 'report to the police' is not 'to be made', or the report "
                "is already recorded)."
            )
        return None
    if event == "closed" and state.fgm_report_due is not None:
        return (
            "The FGM police report is still to be made: record it (event "
            "'fgm_police_reported', with the 101 reference) before closing."
        )
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
        if (
            state.overdue
            or state.next_action == DELAYED_SHARING_ACTION
            or (
                state.next_due is not None
                and state.next_due <= today + timedelta(days=horizon_days)
            )
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
