"""Stored referral states (migration 0006): they follow every follow-up event, the working-day
rules and the practice settings, and needs-action / dashboard answers stay what the Python
computation over every open referral gives."""

from __future__ import annotations

import json
import shutil
from datetime import UTC, datetime, timedelta
from pathlib import Path

from gpshare import followup
from gpshare.clock import today
from gpshare.dashboard import build_dashboard
from gpshare.services import open_session
from gpshare.store.sqlcipher import repositories as repo
from tests.conftest import SCENARIOS
from tests.storehelp import raw_connection

V1_FIXTURE = Path(__file__).parent / "fixtures" / "vault-v1"
V1_PASSWORD = "fixture-password-1"


def answers(name: str) -> dict:
    return json.loads((SCENARIOS / f"{name}.json").read_text())["answers"]


def complete(session, name, **changes):
    # Repeat records for the same child must acknowledge the earlier ones.
    rec = session.assessments.start_assessment(
        answers=answers(name) | {"prior_concerns_acknowledged": True} | changes
    )
    return session.assessments.complete(rec.id)[0]


def stored(session, record_id):
    return (
        raw_connection(session)
        .execute(
            "SELECT status, action, due FROM referral_states WHERE record_id = ?", (record_id,)
        )
        .fetchone()
    )


def computed(session, record_id):
    """The state computed from scratch from the record and all its follow-ups."""
    record = session.assessments.get_record(record_id, audit_view=False)
    state = session.referrals.referral_states([record])[record_id]
    due = state.next_due.isoformat() if state.next_due else None
    return (state.status, state.next_action, due)


def python_needs_action(session):
    """What needs action computed the old way: every open referral's state in Python."""
    now = today(session.clock)
    horizon = (now + timedelta(days=followup.NEEDS_ACTION_HORIZON_DAYS)).isoformat()
    clinician = None if session.user.role == "lead" else session.user.username
    records = repo.open_referrals(raw_connection(session), horizon, clinician)
    states = session.referrals.referral_states(records)
    return followup.needs_action(((r, states[r.id]) for r in records), now)


def _key(item):
    return (item.due, item.record_id)


def python_dashboard(session, date_from=None, date_to=None):
    """The dashboard as computed before 0006: follow-ups scanned, open referrals' states."""
    rows = repo.dashboard_rows(raw_connection(session), date_from, date_to)
    records = repo.open_referrals(raw_connection(session), today(session.clock).isoformat())
    records = [
        r
        for r in records
        if (not date_from or r.created[:10] >= date_from)
        and (not date_to or r.created[:10] <= date_to)
    ]
    states = session.referrals.referral_states(records).values()
    return build_dashboard(rows.by_month_pathway, rows.by_month_consent, rows.timings, states)


def test_stored_state_follows_every_follow_up_event(vault_env):
    clock = vault_env.clock
    s = vault_env.session("drsmith")
    record = complete(s, "01-bruised-toddler-parents-agree")
    assert stored(s, record.id) == computed(s, record.id)
    assert stored(s, record.id)[0] == "completed"
    # Sent on a Friday afternoon: acknowledgement due the next working day, Monday.
    clock.current = datetime(2026, 11, 27, 15, 0, tzinfo=UTC)
    s.referrals.record_followup(record.id, "sent")
    assert stored(s, record.id) == ("sent", "Chase acknowledgement of the referral", "2026-11-30")
    clock.current = datetime(2026, 11, 30, 11, 0, tzinfo=UTC)
    s.referrals.record_followup(record.id, "acknowledged")
    # Five working days after Monday 30 November.
    assert stored(s, record.id) == (
        "acknowledged",
        "Chase the local authority's decision",
        "2026-12-07",
    )
    assert stored(s, record.id) == computed(s, record.id)
    clock.current = datetime(2026, 12, 2, 9, 0, tzinfo=UTC)
    s.referrals.record_followup(record.id, "decision", decision="s17_assessment")
    assert stored(s, record.id) == (
        "outcome_recorded",
        "Close when no further action is needed",
        None,
    )
    s.close()
    lead = vault_env.session("lead")
    lead.referrals.record_followup(record.id, "closed")
    assert stored(lead, record.id) == ("closed", None, None) == computed(lead, record.id)
    assert lead.referrals.needs_action() == []
    lead.close()


def test_bank_holiday_and_closure_days_move_stored_due_dates(vault_env):
    clock = vault_env.clock
    s = vault_env.session("drsmith")
    record = complete(s, "01-bruised-toddler-parents-agree")
    # Sent on Christmas Eve 2026 (Thursday): 25 and 28 December are bank holidays in England
    # (Boxing Day falls on a Saturday), so the acknowledgement is due on Tuesday 29th.
    clock.current = datetime(2026, 12, 24, 10, 0, tzinfo=UTC)
    s.referrals.record_followup(record.id, "sent")
    assert stored(s, record.id)[2] == computed(s, record.id)[2]
    before = stored(s, record.id)[2]
    s.close()
    admin = vault_env.session("admin")
    admin.practice.update_settings(
        {"local_closure_days": before}
    )  # the practice closes that day too
    admin.close()
    s = vault_env.session("drsmith")
    after = stored(s, record.id)[2]
    assert after > before and stored(s, record.id) == computed(s, record.id)
    s.close()


def test_written_confirmation_deadline_setting_updates_emergency_states(vault_env):
    s = vault_env.session("lead")
    rec = complete(s, "01-bruised-toddler-parents-agree")
    s.close()
    admin = vault_env.session("admin")
    admin.practice.update_settings({"written_confirmation_hours": "72"})
    admin.close()
    s = vault_env.session("lead")
    assert stored(s, rec.id) == computed(s, rec.id)
    s.close()


def _mixed_practice(vault_env):
    """Referrals in every state and monitor decisions with past and future review dates."""
    clock = vault_env.clock
    start = clock.current
    s = vault_env.session("drsmith")
    ids = []
    for i in range(6):
        clock.current = start + timedelta(days=i)
        ids.append(complete(s, "01-bruised-toddler-parents-agree").id)
        ids.append(complete(s, "02-teen-sexual-health-refuses").id)
    clock.current = start
    for review in ("2026-11-27", "2026-12-03", "2026-12-20"):
        ids.append(complete(s, "03-low-level-concern-monitor", review_date=review).id)
    clock.current = start + timedelta(days=7)
    s.referrals.record_followup(ids[0], "sent")
    s.referrals.record_followup(ids[1], "sent")
    s.referrals.record_followup(ids[1], "acknowledged")
    s.referrals.record_followup(ids[2], "sent")
    s.referrals.record_followup(ids[2], "decision", decision="nfa")
    s.referrals.record_followup(ids[3], "feedback")
    s.close()
    lead = vault_env.session("lead")
    lead.referrals.record_followup(ids[2], "closed")
    lead.close()
    return ids


def test_needs_action_and_dashboard_match_the_python_computation(vault_env):
    _mixed_practice(vault_env)
    for day in (0, 3, 8, 20, 40):
        vault_env.clock.current = datetime(2026, 11, 25, 9, 0, tzinfo=UTC) + timedelta(days=day)
        for user in ("lead", "drsmith", "drjones"):
            s = vault_env.session(user)
            got = s.referrals.needs_action()
            expected = python_needs_action(s)
            # Same items; overdue first then by due date (ties: oldest record first here,
            # unspecified in the Python version).
            assert sorted(got, key=_key) == sorted(expected, key=_key), (day, user)
            assert [(not n.overdue, n.due) for n in got] == [
                (not n.overdue, n.due) for n in expected
            ]
            if user == "lead":
                assert s.lead.dashboard() == python_dashboard(s)
                assert s.lead.dashboard("2026-11-26", "2026-11-28") == python_dashboard(
                    s, "2026-11-26", "2026-11-28"
                )
            s.close()
    s = vault_env.session("lead")
    assert any(
        item.overdue for item in s.referrals.needs_action()
    )  # the checks above are not vacuous
    assert s.lead.dashboard().median_hours_to_acknowledge is not None
    s.close()


def test_overdue_only_filter_uses_the_stored_states(vault_env):
    _mixed_practice(vault_env)
    vault_env.clock.current = datetime(2026, 12, 30, 9, 0, tzinfo=UTC)
    s = vault_env.session("lead")
    overdue = {item.record_id for item in s.referrals.needs_action() if item.overdue}
    assert overdue
    flt = repo.RecordFilter(overdue_on=today(s.clock).isoformat())
    assert {r.id for r in s.assessments.list_records(flt)} == overdue
    assert s.assessments.count_records(flt) == len(overdue)
    s.close()


def test_v1_vault_gets_its_states_filled_in_once(tmp_path, clock):
    folder = tmp_path / "v1"
    shutil.copytree(V1_FIXTURE, folder)
    s = open_session(folder, "lead", V1_PASSWORD, clock)
    completed = [r for r in s.assessments.list_records() if r.status == "completed"]
    assert completed
    for record in completed:
        assert stored(s, record.id) == computed(s, record.id)
    assert repo.get_settings(raw_connection(s))["referral_states_backfilled"] == "1"
    assert sorted(s.referrals.needs_action(), key=_key) == sorted(python_needs_action(s), key=_key)
    s.close()


def test_light_list_records_show_the_same_as_full_ones(vault_env):
    _mixed_practice(vault_env)
    s = vault_env.session("drsmith")
    s.assessments.start_assessment(
        answers=answers("01-bruised-toddler-parents-agree")
    )  # a draft too
    s.close()
    vault_env.clock.current = datetime(2026, 12, 9, 9, 0, tzinfo=UTC)
    s = vault_env.session("lead")
    full = s.assessments.list_records(limit=200)
    light = s.assessments.list_records(limit=200, light=True)
    assert [r.id for r in light] == [r.id for r in full] and len(full) == 16

    def shown(r):
        return (
            r.id, r.status, r.created, r.updated, r.completed, r.child,
            r.clinician, r.clinician_name, r.pathway, r.consent_basis, r.is_draft,
        )  # fmt: skip

    assert [shown(r) for r in light] == [shown(r) for r in full]
    assert s.referrals.referral_states(light) == s.referrals.referral_states(full)
    s.close()


def test_search_pages_are_the_newest_matches_and_follow_every_save(vault_env):
    clock = vault_env.clock
    s = vault_env.session("drsmith")
    ids = []
    for i in range(7):
        clock.current = datetime(2026, 11, 25, 9, 0, tzinfo=UTC) + timedelta(minutes=i)
        ids.append(complete(s, "01-bruised-toddler-parents-agree").id)
    clock.current = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
    draft = s.assessments.start_assessment(answers=answers("01-bruised-toddler-parents-agree"))
    clock.current = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)
    s.assessments.save_draft(draft.id, answers("01-bruised-toddler-parents-agree"), "concern")
    stored_updated = (
        raw_connection(s)
        .execute("SELECT updated FROM records_search WHERE record_id = ?", (draft.id,))
        .fetchone()[0]
    )
    assert stored_updated == s.assessments.get_record(draft.id, audit_view=False).updated
    s.close()
    lead = vault_env.session("lead")
    flt = repo.RecordFilter(search="Ellie")
    everything = sorted(
        lead.assessments.list_records(flt), key=lambda r: (r.updated, r.id), reverse=True
    )
    assert len(everything) == 8 and everything[0].id == draft.id
    pages = [lead.assessments.list_records(flt, 3, offset, light=True) for offset in (0, 3, 6)]
    assert [r.id for page in pages for r in page] == [r.id for r in everything]
    assert lead.assessments.list_records(repo.RecordFilter(search="nosuchword"), 3) == []
    lead.close()
