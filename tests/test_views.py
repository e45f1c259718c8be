"""View models (gpshare/services/views.py): one service call gives a screen what it shows,
checked once and audited exactly as the separate calls were (issue #12)."""

from __future__ import annotations

import json
from collections import Counter

import pytest

from gpshare.errors import PermissionDenied
from gpshare.filters import AuditFilter, RecordFilter
from tests.conftest import PASSWORDS, SCENARIOS


def answers(name: str) -> dict:
    return json.loads((SCENARIOS / f"{name}.json").read_text())["answers"]


def actions(session) -> Counter[str]:
    with session.store.read() as tx:
        return Counter(e.action for e in tx.audit_events(AuditFilter(), limit=None))


@pytest.fixture
def referral(vault_env):
    """drsmith's completed referral with a signed letter, a follow-up and an addendum."""
    s = vault_env.session("drsmith")
    rec = s.assessments.start_assessment(answers=answers("01-bruised-toddler-parents-agree"))
    done, _ = s.assessments.complete(rec.id)
    s.letters.generate_letter(done.id, PASSWORDS["drsmith"])
    s.referrals.record_followup(done.id, "sent", details={"method": "secure_email"})
    s.assessments.add_addendum(done.id, "Health visitor informed.")
    s.close()
    return done


def test_record_view_gives_everything_the_record_screen_shows_in_one_audited_call(
    vault_env, referral
):
    lead = vault_env.session("lead")
    lead.referrals.add_review(referral.id, "reasonable", "Clear reasoning.")
    before = actions(lead)
    view = lead.views.record_view(referral.id)
    after = actions(lead)
    # Opening is one "record_viewed" event and nothing else, as get_record alone was.
    assert after - before == Counter({"record_viewed": 1})
    assert view.record.id == referral.id and view.record.answers == referral.answers
    assert view.form is not None and view.form.version == referral.form_version
    assert view.form_problem is None
    assert [a.body for a in view.addenda] == ["Health visitor informed."]
    assert [f.event for f in view.followups] == ["sent"]
    assert view.referral_state is not None and view.referral_state.sent_at is not None
    assert len(view.letters) == 1 and view.letters[0].record_id == referral.id
    assert view.letter_unavailable is None
    # The lead's parts: the reviews, and the access log including this very view.
    assert view.reviews is not None and [r.verdict for r in view.reviews] == ["reasonable"]
    assert view.access_log is not None
    newest = max(view.access_log, key=lambda e: e.seq)
    assert (newest.action, newest.actor) == ("record_viewed", "lead")
    # The same as the separate calls the screens made before.
    assert list(view.addenda) == lead.assessments.addenda(referral.id)
    assert list(view.reviews) == lead.referrals.reviews(referral.id)
    assert view.referral_state == lead.referrals.referral_state(referral.id)
    lead.close()


def test_a_refresh_is_not_audited_as_a_new_view(vault_env, referral):
    s = vault_env.session("drsmith")
    before = actions(s)
    view = s.views.record_view(referral.id, audit_view=False)
    assert actions(s) == before
    assert view.record.id == referral.id
    s.close()


def test_a_clinician_gets_no_lead_parts_and_is_never_refused_them(vault_env, referral):
    s = vault_env.session("drsmith")
    before = actions(s)
    view = s.views.record_view(referral.id)
    assert view.reviews is None and view.access_log is None
    assert view.addenda and view.letters and view.followups
    assert actions(s) - before == Counter({"record_viewed": 1})
    s.close()


def test_another_clinicians_record_is_refused_once(vault_env, referral):
    s = vault_env.session("drjones")
    before = actions(s)
    with pytest.raises(PermissionDenied, match="only open your own records"):
        s.views.record_view(referral.id)
    assert actions(s) - before == Counter({"permission_denied": 1})
    s.close()


def test_an_administrator_is_refused_every_view_once(vault_env, referral):
    admin = vault_env.session("admin")
    for call in (
        lambda: admin.views.record_view(referral.id),
        lambda: admin.views.records_page(),
        lambda: admin.views.drafts_summary(),
        lambda: admin.views.chronology_view(referral.id),
        lambda: admin.views.draft_view(referral.id),
    ):
        before = actions(admin)
        with pytest.raises(PermissionDenied):
            call()
        assert actions(admin) - before == Counter({"permission_denied": 1})
    admin.close()


def test_a_draft_view_says_why_there_is_no_letter(vault_env):
    s = vault_env.session("drsmith")
    draft = s.assessments.start_assessment(answers={"child_given_name": "Leo"})
    view = s.views.record_view(draft.id)
    assert view.referral_state is None and view.letters == ()
    assert view.letter_unavailable is not None and "still a draft" in view.letter_unavailable
    s.close()


def test_records_page_gives_rows_states_and_the_count(vault_env, referral):
    s = vault_env.session("drsmith")
    s.assessments.start_assessment(answers={"child_given_name": "Leo"})
    page = s.views.records_page(RecordFilter(), 10, 0, light=True, count=True)
    assert page.total == 2 and len(page.records) == 2
    assert set(page.states) == {referral.id}  # drafts have no referral state
    assert page.states[referral.id].sent_at is not None
    assert s.views.records_page(RecordFilter(), 10, 0).total is None  # counted only when asked
    s.close()
    # A clinician's page holds only their own records, as list_records does.
    jones = vault_env.session("drjones")
    assert jones.views.records_page(count=True).total == 0
    jones.close()


def test_drafts_summary_counts_own_drafts_and_names_the_latest(vault_env, referral):
    s = vault_env.session("drsmith")
    assert s.views.drafts_summary().count == 0
    s.assessments.start_assessment(answers={"child_given_name": "Leo"})
    vault_env.clock.current = vault_env.clock.now().replace(hour=11)
    later = s.assessments.start_assessment(answers={"child_given_name": "Mia"})
    summary = s.views.drafts_summary()
    assert summary.count == 2
    assert summary.latest is not None and summary.latest.id == later.id
    s.close()
    lead = vault_env.session("lead")
    assert lead.views.drafts_summary().count == 0  # the lead's own drafts, not everyone's
    lead.close()


def test_chronology_view_is_the_lead_chronology_with_its_records(vault_env, referral):
    lead = vault_env.session("lead")
    before = actions(lead)
    view = lead.views.chronology_view(referral.id)
    assert actions(lead) - before == Counter({"chronology_viewed": 1})
    assert referral.id in view.records and referral.id in view.forms
    assert {e.record_id for e in view.entries} <= set(view.records)
    assert any(e.kind == "record" for e in view.entries)
    lead.close()
    s = vault_env.session("drsmith")
    before = actions(s)
    with pytest.raises(PermissionDenied):
        s.views.chronology_view(referral.id)
    assert actions(s) - before == Counter({"permission_denied": 1})
    s.close()
