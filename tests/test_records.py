"""Record lifecycle below the UI: drafts, completion, immutability, addenda, access, chronology."""

from __future__ import annotations

import json

import pytest

from gpshare.errors import NotFound, PermissionDenied, ValidationFailed
from gpshare.filters import RecordFilter
from tests.conftest import SCENARIOS
from tests.storehelp import raw_connection


def scenario(name: str) -> dict:
    path = SCENARIOS / f"{name}.json"
    return json.loads(path.read_text())["answers"]


@pytest.fixture
def smith(vault_env):
    s = vault_env.session("drsmith")
    yield s
    if s.is_open:
        s.close()


def test_draft_autosave_and_resume_where_left(smith, vault_env):
    rec = smith.assessments.start_assessment()
    smith.assessments.save_draft(
        rec.id,
        {"child_given_name": "Siân", "child_family_name": "Ó Briain"},
        "urgency",
        autosave=True,
    )
    smith.close()
    s = vault_env.session("drsmith")
    again = s.assessments.get_record(rec.id)
    assert again.current_step == "urgency"
    assert again.answers == {"child_given_name": "Siân", "child_family_name": "Ó Briain"}
    assert again.child.display_name == "Siân Ó Briain"
    s.close()


def test_autosaves_are_audited_at_most_every_five_minutes(smith, vault_env):
    rec = smith.assessments.start_assessment()
    for _ in range(5):
        smith.assessments.save_draft(rec.id, {"child_given_name": "A"}, autosave=True)
        vault_env.clock.advance(10)
    vault_env.clock.advance(300)
    smith.assessments.save_draft(rec.id, {"child_given_name": "B"}, autosave=True)
    smith.assessments.save_draft(rec.id, {"child_given_name": "C"})  # explicit saves always audited
    smith.close()
    lead = vault_env.session("lead")
    saves = [
        e
        for e in lead.audit_trail.audit_log()
        if e.action == "draft_saved" and e.record_id == rec.id
    ]
    assert len(saves) == 3
    lead.close()


def test_completion_freezes_answers_form_version_and_outcome(smith):
    rec = smith.assessments.start_assessment(answers=scenario("01-bruised-toddler-parents-agree"))
    done, evaluation = smith.assessments.complete(rec.id)
    assert done.status == "completed" and done.form_version == 2  # the newest form
    assert done.outcome["pathway"] == "referral"
    assert done.outcome["letter_title"] == "safeguarding_referral"
    assert "836881000000105" in {c["code"] for c in done.outcome["snomed_codes"]}
    assert done.answers["nhs_number"] == "9434765870"  # normalised
    with pytest.raises(ValidationFailed, match="completed and cannot be changed"):
        smith.assessments.save_draft(rec.id, {"child_given_name": "Changed"})
    from gpshare.store.sqlcipher.db import DatabaseError

    with pytest.raises(DatabaseError, match="immutable"):
        raw_connection(smith).execute("UPDATE records SET answers = '{}' WHERE id = ?", (rec.id,))
    with pytest.raises(DatabaseError):
        raw_connection(smith).execute("DELETE FROM records WHERE id = ?", (rec.id,))


def test_completion_with_errors_keeps_a_draft_and_lists_errors(smith):
    answers = scenario("04-bad-input")
    rec = smith.assessments.start_assessment(answers=answers)
    with pytest.raises(ValidationFailed) as info:
        smith.assessments.complete(rec.id)
    fields = {e.field for e in info.value.errors}
    assert {"nhs_number", "date_of_birth"} <= fields
    assert smith.assessments.get_record(rec.id).status == "draft"


def test_clinicians_see_only_their_own_records(vault_env, smith):
    rec = smith.assessments.start_assessment(answers={"child_given_name": "Private"})
    smith.close()
    jones = vault_env.session("drjones")
    assert jones.assessments.list_records() == []
    with pytest.raises(PermissionDenied):
        jones.assessments.get_record(rec.id)
    with pytest.raises(PermissionDenied):
        jones.assessments.save_draft(rec.id, {"child_given_name": "Hijack"})
    with pytest.raises(NotFound):
        jones.assessments.get_record("SG-NONE-XXXX")
    jones.close()
    lead = vault_env.session("lead")
    assert [r.id for r in lead.assessments.list_records()] == [rec.id]
    with pytest.raises(PermissionDenied, match="own drafts"):
        lead.assessments.save_draft(rec.id, {"child_given_name": "Lead edit"})
    lead.close()
    admin = vault_env.session("admin")
    with pytest.raises(PermissionDenied):
        admin.assessments.list_records()
    with pytest.raises(PermissionDenied):
        admin.assessments.start_assessment()
    admin.close()


def test_record_views_are_audited(vault_env, smith):
    rec = smith.assessments.start_assessment()
    smith.assessments.get_record(rec.id)
    smith.close()
    lead = vault_env.session("lead")
    lead.assessments.get_record(rec.id)
    views = [
        e
        for e in lead.audit_trail.audit_log()
        if e.action == "record_viewed" and e.record_id == rec.id
    ]
    assert {e.actor for e in views} == {"drsmith", "lead"}
    lead.close()


def test_addenda_are_append_only_and_validated(smith):
    rec = smith.assessments.start_assessment(answers=scenario("03-low-level-concern-monitor"))
    with pytest.raises(ValidationFailed, match="still a draft"):
        smith.assessments.add_addendum(rec.id, "too early")
    smith.assessments.complete(rec.id)
    with pytest.raises(ValidationFailed, match="empty"):
        smith.assessments.add_addendum(rec.id, "   ")
    with pytest.raises(ValidationFailed, match="control characters"):
        smith.assessments.add_addendum(rec.id, "pasted\x07text")
    with pytest.raises(ValidationFailed, match="5000"):
        smith.assessments.add_addendum(rec.id, "x" * 5001)
    smith.assessments.add_addendum(rec.id, "School nurse reports attendance now good.")
    assert [a.body for a in smith.assessments.addenda(rec.id)] == [
        "School nurse reports attendance now good."
    ]
    from gpshare.store.sqlcipher.db import DatabaseError

    with pytest.raises(DatabaseError, match="append-only"):
        raw_connection(smith).execute("UPDATE addenda SET body = 'x'")


def test_prior_records_require_acknowledgement(smith):
    first = smith.assessments.start_assessment(answers=scenario("03-low-level-concern-monitor"))
    smith.assessments.complete(first.id)
    answers = scenario("03-low-level-concern-monitor")
    second = smith.assessments.start_assessment(answers=answers)
    prior = smith.assessments.prior_records(answers, exclude=second.id)
    assert [p.record_id for p in prior] == [first.id] and prior[0].match == "nhs"
    assert prior[0].decision == "monitor" and str(prior[0].review_date) == "2031-01-15"
    with pytest.raises(ValidationFailed) as info:
        smith.assessments.complete(second.id)
    assert "prior_concerns_acknowledged" in {e.field for e in info.value.errors}
    smith.assessments.save_draft(second.id, answers | {"prior_concerns_acknowledged": True})
    done, evaluation = smith.assessments.complete(second.id)
    assert "prior_concerns" in done.outcome["prompts"]


def test_probable_match_by_name_and_date_of_birth(smith):
    answers = scenario("03-low-level-concern-monitor")
    first = smith.assessments.start_assessment(answers=answers)
    smith.assessments.complete(first.id)
    without_nhs = {k: v for k, v in answers.items() if k != "nhs_number"} | {
        "nhs_number_unknown_reason": "not_known",
        "child_family_name": "RAHMAN",
    }
    prior = smith.assessments.prior_records(without_nhs)
    assert [(p.record_id, p.match) for p in prior] == [(first.id, "probable")]
    other_child = answers | {
        "nhs_number": "9434765870"
    }  # a different NHS number: not the same child
    assert smith.assessments.prior_records(other_child) == []


def test_full_text_search_over_narratives(vault_env, smith):
    rec = smith.assessments.start_assessment(answers=scenario("01-bruised-toddler-parents-agree"))
    smith.assessments.complete(rec.id)
    other = smith.assessments.start_assessment(answers=scenario("03-low-level-concern-monitor"))
    smith.assessments.complete(other.id)
    assert [r.id for r in smith.assessments.list_records(RecordFilter(search="grip pattern"))] == [
        rec.id
    ]
    assert [r.id for r in smith.assessments.list_records(RecordFilter(search="paediatric"))] == [
        other.id
    ]
    assert (
        smith.assessments.list_records(RecordFilter(search='bruis" OR *')) == []
    )  # user text never becomes FTS syntax


def test_unicode_and_rtl_names_are_stored_intact(smith):
    names = {
        "child_given_name": "مريم",
        "child_family_name": "Łukasz-Ó Briain",
        "child_other_names": "Zoë O'Brien-Nuñez",
    }
    rec = smith.assessments.start_assessment(answers=names)
    assert smith.assessments.get_record(rec.id).answers == names


def test_non_json_answers_are_rejected(smith):
    rec = smith.assessments.start_assessment()
    with pytest.raises(ValidationFailed, match="not plain values"):
        smith.assessments.save_draft(rec.id, {"child_given_name": object()})


def test_probable_match_tolerates_typed_dates_case_and_accents(smith):
    answers = scenario("03-low-level-concern-monitor") | {"child_family_name": "Ó Briain"}
    first = smith.assessments.start_assessment(answers=answers)
    smith.assessments.complete(first.id)
    typed = {k: v for k, v in answers.items() if k != "nhs_number"} | {
        "child_family_name": "  ó  briain ",
        "date_of_birth": "20/01/2020",
    }
    assert [(p.record_id, p.match) for p in smith.assessments.prior_records(typed)] == [
        (first.id, "probable")
    ]
