"""Navigator rules from data-dictionary.md, each tested on both sides of its condition."""

from __future__ import annotations

import time
from datetime import date
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gpshare.forms import Form, load_form
from gpshare.navigator import (
    Context,
    Evaluation,
    Outcome,
    PriorRecord,
    check_answer_shapes,
    evaluate,
)

FORM_FILE = Path(__file__).resolve().parents[1] / "forms" / "england-child-safeguarding.toml"
TODAY = date(2026, 11, 25)
CTX = Context(today=TODAY)
PRIOR = PriorRecord(
    record_id="r-1",
    created=date(2026, 3, 1),
    pathway="monitor",
    decision="monitor",
    review_date=date(2026, 6, 1),
    author="Dr A",
    match="nhs",
)
ALL_EXPLAINED = ["why", "benefit", "what", "with_whom", "how_used", "may_share_anyway"]
SH_FIELDS = [
    "sh_partner_age_gap",
    "sh_gifts_money_substances",
    "sh_control_isolation",
    "sh_coercion_nonconsensual",
    "sh_going_missing",
    "sh_substance_use",
    "sh_mental_health_self_harm",
    "sh_repeat_sti_pregnancy",
    "sh_online_images",
    "sh_accompanied_by_older_person",
]
JUSTIFICATION = {
    "harm_if_not_shared": "Likely continuing harm.",
    "benefit_of_sharing": "A multi-agency assessment.",
    "harm_from_sharing": "May affect trust.",
    "identifiable_info_necessary": "They cannot assess an unnamed child.",
    "less_intrusive_options": "Anonymised advice first.",
    "minimum_necessary_confirmed": True,
    "article8_aim": "rights_of_others",
    "lawful_basis_art6": "public_task",
    "condition_art9": "health_social_care",
    "conclusion_statement": "The benefit to the child outweighs confidentiality.",
}


def base() -> dict[str, Any]:
    """A complete, valid referral made with consent (8-year-old)."""
    return {
        "nhs_number": "943 476 5919",
        "child_given_name": "Ellie",
        "child_family_name": "Marsh",
        "date_of_birth": "2018-06-01",
        "gender": "female",
        "address": "14 Canal Row, Leeds",
        "parents_carers": [
            {"name": "Kayleigh Marsh", "relationship": "mother", "parental_responsibility": True}
        ],
        "immediate_danger": False,
        "concern_narrative": "Grip-pattern bruises on both arms.",
        "concern_source": ["observed"],
        "categories": ["physical"],
        "threshold_view": "significant_harm",
        "advice_sought": False,
        "decision": "refer_csc",
        "consent_subject": "parent_with_pr",
        "consent_sought": True,
        "consent_outcome": "given",
        "consent_given_by": "Kayleigh Marsh (mother)",
        "consent_scope": "Details of the bruising to children's social care.",
        "explained_to_person": list(ALL_EXPLAINED),
        "family_informed": "before",
        "informed_who": "Kayleigh Marsh",
        "informed_how": "in person",
        "recipient_type": "csc",
        "recipient_name": "Leeds Front Door",
        "method": "secure_email",
        "included_items": ["child_identity", "reasons"],
    }


@pytest.fixture(scope="module")
def form() -> Form:
    return load_form(FORM_FILE)


def run(form: Form, context: Context = CTX, /, **changes: Any) -> Evaluation:
    """Evaluate base() with changes; a value of None removes the answer."""
    answers = base()
    for key, value in changes.items():
        if value is None:
            answers.pop(key, None)
        else:
            answers[key] = value
    return evaluate(form, answers, context)


def fields_with_errors(ev: Evaluation) -> set[str]:
    return {e.field for e in ev.errors}


def only_error(ev: Evaluation, field: str, kind: str | None = None) -> str:
    assert fields_with_errors(ev) == {field}, ev.errors
    errors = ev.errors_for(field)
    if kind is not None:
        assert errors[0].kind == kind
    return errors[0].message


def dob_for_age(age: int) -> str:
    """A date of birth making the child exactly `age` today (birthday today)."""
    return date(TODAY.year - age, TODAY.month, TODAY.day).isoformat()


# --------------------------------------------------------------------------- basics


def test_base_completes(form: Form) -> None:
    ev = run(form)
    assert ev.ok, ev.errors
    assert ev.age == 8 and not ev.unborn
    assert ev.visible_steps == (
        "child",
        "urgency",
        "concern",
        "threshold",
        "advice",
        "decision",
        "consent",
        "informing",
        "sharing",
    )
    assert ev.cleaned["nhs_number"] == "9434765919"
    assert ev.outcome == Outcome("referral", "consent_given", True, ())


def test_empty_answers_list_required_fields_with_how_to_fix(form: Form) -> None:
    ev = evaluate(form, {}, CTX)
    assert not ev.ok
    assert all(e.kind == "required" for e in ev.errors)
    expected = {
        "nhs_number",
        "child_given_name",
        "child_family_name",
        "date_of_birth",
        "gender",
        "address",
        "parents_carers",
        "immediate_danger",
        "concern_narrative",
        "concern_source",
        "categories",
        "threshold_view",
        "advice_sought",
        "decision",
    }
    assert fields_with_errors(ev) == expected
    messages = {e.field: e.message for e in ev.errors}
    assert "or choose why it is not known" in messages["nhs_number"]
    assert "2026-11-25" in messages["date_of_birth"]
    assert "yes or no" in messages["immediate_danger"]
    assert "Choose one" in messages["gender"]
    assert "at least one" in messages["categories"]
    assert ev.visible_steps[-1] == "decision"  # sharing steps wait for a decision
    assert ev.step_errors("child") and not ev.step_errors("sharing")


def test_hidden_fields_are_not_required_and_dropped(form: Form) -> None:
    ev = run(
        form,
        decision="monitor",
        advice_sought=True,
        advisor_name="Dr Lead",
        advisor_role="practice_safeguarding_lead",
        advice_date="2026-11-20",
        advice_anonymised=True,
        advice_summary="Monitor.",
        reasons_not_sharing="Below threshold.",
        review_date="2027-01-10",
        support_offered="Health visitor.",
        child_words="never shown",
    )
    assert ev.ok, ev.errors
    for hidden in (
        "consent_subject",
        "consent_outcome",
        "recipient_type",
        "child_words",
        "family_informed",
    ):
        assert hidden not in ev.cleaned and hidden not in ev.visible_fields
    assert "consent" not in ev.visible_steps and "sharing" not in ev.visible_steps
    assert ev.outcome == Outcome("monitor", "not_applicable", False, ("advice_required",))


def test_outcome_to_dict(form: Form) -> None:
    assert run(form).outcome.to_dict() == {
        "pathway": "referral",
        "consent_basis": "consent_given",
        "letter_required": True,
        "prompts": [],
    }


# --------------------------------------------------------------------------- child step


def test_nhs_number_invalid_and_normalised(form: Form) -> None:
    msg = only_error(run(form, nhs_number="943 476 5918"), "nhs_number", "invalid")
    assert "check digit" in msg
    assert "nhs_number" not in run(form, nhs_number="943 476 5918").cleaned
    assert run(form, nhs_number="943-476-5919").cleaned["nhs_number"] == "9434765919"


def test_nhs_number_or_reason(form: Form) -> None:
    only_error(run(form, nhs_number=None), "nhs_number", "required")
    ev = run(form, nhs_number=None, nhs_number_unknown_reason="not_registered")
    assert ev.ok and ev.cleaned["nhs_number_unknown_reason"] == "not_registered"
    # With a number typed, the reason is hidden and not stored.
    ev = run(form, nhs_number_unknown_reason="not_known")
    assert ev.ok and "nhs_number_unknown_reason" not in ev.cleaned
    # An invalid number still counts as typed: one clear error, not two.
    only_error(run(form, nhs_number="12"), "nhs_number")


def test_unborn(form: Form) -> None:
    ev = run(
        form,
        nhs_number=None,
        nhs_number_unknown_reason="unborn",
        date_of_birth="2020-01-01",
        parents_carers=None,
        expected_delivery_date="2027-02-01",
    )
    assert ev.ok, ev.errors
    assert ev.unborn and ev.age is None
    assert "date_of_birth" not in ev.cleaned and "date_of_birth" not in ev.visible_fields
    only_error(
        run(form, nhs_number=None, nhs_number_unknown_reason="unborn", date_of_birth=None),
        "expected_delivery_date",
        "required",
    )
    # Not unborn: parents_carers and date_of_birth are required; EDD is hidden.
    only_error(run(form, parents_carers=None), "parents_carers", "required")
    only_error(run(form, date_of_birth=None), "date_of_birth", "required")
    assert "expected_delivery_date" not in run(form, expected_delivery_date="2027-01-01").cleaned


def test_date_of_birth_future_and_formats(form: Form) -> None:
    msg = only_error(run(form, date_of_birth="2026-11-26"), "date_of_birth", "invalid")
    assert "future" in msg and "Unborn" in msg
    assert run(form, date_of_birth="2026-11-25").ok  # born today
    ev = run(form, date_of_birth="01/06/2018")
    assert ev.ok and ev.cleaned["date_of_birth"] == "2018-06-01"
    assert "2026-11-25" in only_error(run(form, date_of_birth="June 2018"), "date_of_birth")
    assert "not a real date" in only_error(run(form, date_of_birth="2018-02-30"), "date_of_birth")


def test_adult_is_out_of_scope(form: Form) -> None:
    ev = run(form, date_of_birth=dob_for_age(18))
    msg = only_error(ev, "date_of_birth", "rule")
    assert ev.age == 18
    assert "adult safeguarding" in msg.lower() and "Care Act 2014" in msg
    assert "risk to a child" in msg and "about the child" in msg
    ev = run(form, date_of_birth="2008-11-26")  # 18 tomorrow
    assert ev.ok and ev.age == 17


@pytest.mark.parametrize(
    "name", ["Siân", "Łukasz", "Ó Briain", "مريم", "O'Brien-Nuñez", "Zoë", "José María", "O’Neill"]
)
def test_unicode_names_accepted_intact(form: Form, name: str) -> None:
    ev = run(form, child_given_name=name, child_family_name=name)
    assert ev.ok, ev.errors
    assert ev.cleaned["child_given_name"] == name


@pytest.mark.parametrize("name", ["Sam2", "<script>", "Ann & Bob", "Ellie 😀", "---"])
def test_bad_names_rejected(form: Form, name: str) -> None:
    msg = only_error(run(form, child_given_name=name), "child_given_name", "invalid")
    assert "letter" in msg


def test_name_length_and_control_characters(form: Form) -> None:
    assert run(form, child_family_name="A" * 100).ok
    msg = only_error(run(form, child_family_name="A" * 101), "child_family_name")
    assert "101" in msg and "100" in msg and "Shorten" in msg
    msg = only_error(run(form, child_family_name="Ma\x00rsh"), "child_family_name")
    assert "control character" in msg and "Remove" in msg


def test_longtext_allows_newlines_not_control_characters(form: Form) -> None:
    ev = run(form, concern_narrative="Line one\r\n\tLine two")
    assert ev.ok and ev.cleaned["concern_narrative"] == "Line one\n\tLine two"
    msg = only_error(run(form, concern_narrative="bad\x07bell"), "concern_narrative")
    assert "control character" in msg
    assert "line break" in only_error(run(form, recipient_name="Leeds\nFront"), "recipient_name")
    assert "5000" in only_error(run(form, concern_narrative="x" * 5001), "concern_narrative")
    assert run(form, concern_narrative="x" * 5000).ok


def test_postcode(form: Form) -> None:
    ev = run(form, postcode="ls11 5ab")
    assert ev.ok and ev.cleaned["postcode"] == "LS11 5AB"
    assert run(form, postcode="SW1A1AA").cleaned["postcode"] == "SW1A 1AA"
    assert "postcode" in only_error(run(form, postcode="12345"), "postcode").lower()
    assert run(form, postcode="  ").ok


def test_people_rows(form: Form) -> None:
    msg = only_error(run(form, parents_carers=[{"relationship": "mother"}]), "parents_carers")
    assert "person 1" in msg.lower() and "no name" in msg
    msg = only_error(run(form, parents_carers=[{"name": "A", "shoe_size": "9"}]), "parents_carers")
    assert "shoe_size" in msg
    only_error(
        run(form, parents_carers=[{"name": "A", "parental_responsibility": "yes"}]),
        "parents_carers",
    )
    # Blank rows are ignored, so an all-blank table is still missing.
    only_error(run(form, parents_carers=[{"name": ""}, {}]), "parents_carers", "required")
    ev = run(form, household_members=[{"name": "Tom", "date_of_birth": "03/04/2015"}])
    assert ev.ok and ev.cleaned["household_members"] == [
        {"name": "Tom", "date_of_birth": "2015-04-03"}
    ]
    only_error(
        run(form, person_posing_risk=[{"name": "X", "date_of_birth": "soon"}]), "person_posing_risk"
    )


# --------------------------------------------------------------------------- urgency (rule 4)


def test_immediate_danger_needs_actions(form: Form) -> None:
    only_error(run(form, immediate_danger=True), "urgent_actions", "required")
    ev = run(form, immediate_danger=True, urgent_actions=["police_999"])
    assert ev.ok and ev.outcome.pathway == "emergency"
    assert "urgent_written_confirmation" not in ev.outcome.prompts
    assert "urgent_actions" not in run(form, urgent_actions=["police_999"]).cleaned


def test_phone_referral_needs_time_and_person(form: Form) -> None:
    ev = run(form, immediate_danger=True, urgent_actions=["csc_phoned"])
    assert fields_with_errors(ev) == {"phone_referral_time", "person_spoken_to"}
    assert "urgent_written_confirmation" in ev.outcome.prompts
    ev = run(
        form,
        immediate_danger=True,
        urgent_actions=["csc_phoned", "police_999"],
        phone_referral_time="25/11/2026 14:05",
        person_spoken_to="Sam, duty social worker",
    )
    assert ev.ok, ev.errors
    assert ev.cleaned["phone_referral_time"] == "2026-11-25T14:05"
    assert ev.cleaned["urgent_actions"] == ["police_999", "csc_phoned"]
    critical = [p for p in ev.prompts if p.token == "urgent_written_confirmation"]
    assert critical and "writing" in critical[0].message
    msg = only_error(
        run(
            form,
            immediate_danger=True,
            urgent_actions=["csc_phoned"],
            phone_referral_time="2026-11-25",
            person_spoken_to="Sam",
        ),
        "phone_referral_time",
    )
    assert "time" in msg and "2026-11-25T14:05" in msg


@pytest.mark.parametrize("decision", ["monitor", "early_help_referral"])
def test_rule4_immediate_danger_blocks_monitor_and_early_help(form: Form, decision: str) -> None:
    ev = run(
        form,
        immediate_danger=True,
        urgent_actions=["police_999"],
        decision=decision,
        advice_sought=True,
    )
    assert "immediate danger" in ev.errors_for("decision")[0].message
    assert ev.errors_for("decision")[0].kind == "rule"
    ev = run(form, immediate_danger=False, decision=decision)
    assert not any("immediate danger" in e.message for e in ev.errors)


# --------------------------------------------------------------------------- concern


def test_child_words_when_disclosed_by_child(form: Form) -> None:
    only_error(run(form, concern_source=["disclosed_by_child"]), "child_words", "required")
    assert run(form, concern_source=["disclosed_by_child"], child_words="He hurt me").ok
    assert run(form, concern_source=["disclosed_by_parent"]).ok


@pytest.mark.parametrize("flag", ["sexual_activity", "cse"])
def test_sexual_health_questions_each_required(form: Form, flag: str) -> None:
    ev = run(form, date_of_birth=dob_for_age(15), additional_flags=[flag])
    assert fields_with_errors(ev) == set(SH_FIELDS)
    answers = {f: "no" for f in SH_FIELDS}
    assert run(form, date_of_birth=dob_for_age(15), additional_flags=[flag], **answers).ok
    for missing in SH_FIELDS:
        partial = dict(answers)
        del partial[missing]
        only_error(
            run(form, date_of_birth=dob_for_age(15), additional_flags=[flag], **partial),
            missing,
            "required",
        )


def test_sexual_health_questions_hidden_without_flag(form: Form) -> None:
    ev = run(form, additional_flags=["domestic_abuse"], sh_going_missing="yes")
    assert ev.ok and "sh_going_missing" not in ev.cleaned
    assert "cse_indicators" not in ev.outcome.prompts


def test_cse_indicators_prompt(form: Form) -> None:
    answers = {f: "no" for f in SH_FIELDS}
    ev = run(form, date_of_birth=dob_for_age(15), additional_flags=["cse"], **answers)
    assert "cse_indicators" not in ev.outcome.prompts
    answers["sh_online_images"] = "yes"
    ev = run(form, date_of_birth=dob_for_age(15), additional_flags=["cse"], **answers)
    assert "cse_indicators" in ev.outcome.prompts
    answers["sh_online_images"] = "not_asked"
    ev = run(form, date_of_birth=dob_for_age(15), additional_flags=["cse"], **answers)
    assert "cse_indicators" not in ev.outcome.prompts


def test_prior_concerns_must_be_acknowledged(form: Form) -> None:
    with_prior = Context(today=TODAY, prior_records=(PRIOR,))
    ev = run(form, with_prior)
    only_error(ev, "prior_concerns_acknowledged", "required")
    assert "prior_concerns" in ev.outcome.prompts
    msg = only_error(
        run(form, with_prior, prior_concerns_acknowledged=False),
        "prior_concerns_acknowledged",
        "rule",
    )
    assert "tick" in msg
    assert run(form, with_prior, prior_concerns_acknowledged=True).ok
    ev = run(form, prior_concerns_acknowledged=False)  # no earlier records: field hidden
    assert ev.ok and "prior_concerns_acknowledged" not in ev.visible_fields
    assert "prior_concerns" not in ev.outcome.prompts


# --------------------------------------------------------------------------- rule 2: under 13


def _monitor(**extra: Any) -> dict[str, Any]:
    values: dict[str, Any] = {
        "decision": "monitor",
        "advice_sought": True,
        "advisor_name": "Dr Lead",
        "advisor_role": "named_gp",
        "advice_date": "2026-11-20",
        "advice_anonymised": True,
        "advice_summary": "Monitor.",
        "reasons_not_sharing": "Below threshold.",
        "review_date": "2027-02-01",
        "support_offered": "Support.",
    }
    values.update(extra)
    return values


def test_rule2_under13_sexual_activity_may_not_be_monitored(form: Form) -> None:
    sh = {f: "no" for f in SH_FIELDS}
    ev = run(
        form,
        date_of_birth=dob_for_age(12),
        additional_flags=["sexual_activity"],
        **sh,
        **_monitor(),
    )
    msg = only_error(ev, "decision", "rule")
    assert "under 13" in msg
    assert "under13_sexual_activity" in ev.outcome.prompts
    assert any(
        p.severity == "critical" and "under 13 must be shared" in p.message for p in ev.prompts
    )
    # 13 is not under 13.
    ev = run(
        form,
        date_of_birth=dob_for_age(13),
        additional_flags=["sexual_activity"],
        **sh,
        **_monitor(),
    )
    assert ev.ok and "under13_sexual_activity" not in ev.outcome.prompts
    # Under 13 without sexual activity may be monitored.
    assert run(form, date_of_birth=dob_for_age(12), **_monitor()).ok
    # Under 13 with sexual activity, shared: fine, still prompted.
    ev = run(form, date_of_birth=dob_for_age(12), additional_flags=["sexual_activity"], **sh)
    assert ev.ok and "under13_sexual_activity" in ev.outcome.prompts


def test_rule2_applies_to_unborn(form: Form) -> None:
    sh = {f: "no" for f in SH_FIELDS}
    ev = run(
        form,
        nhs_number=None,
        nhs_number_unknown_reason="unborn",
        expected_delivery_date="2027-03-01",
        additional_flags=["sexual_activity"],
        **sh,
        **_monitor(),
    )
    only_error(ev, "decision", "rule")


# --------------------------------------------------------------------------- rule 3: FGM


def test_rule3_fgm_girl_under_18(form: Form) -> None:
    fgm = {"additional_flags": ["fgm"], "date_of_birth": dob_for_age(15)}
    ev = run(form, **fgm)
    msg = only_error(ev, "decision", "rule")
    assert "police" in msg
    assert "fgm_mandatory_report" in ev.outcome.prompts
    assert any(p.severity == "critical" and "Mandatory FGM report" in p.message for p in ev.prompts)
    assert run(form, decision="refer_police", **fgm).ok
    law = {"decision": "required_by_law", "legal_requirement": "fgm_mandatory_report"}
    ev = run(form, **fgm, **law)
    assert ev.ok and ev.outcome.pathway == "legal_duty"
    msg = only_error(
        run(form, **fgm, decision="required_by_law", legal_requirement="court_order"),
        "legal_requirement",
    )
    assert "FGM mandatory report" in msg
    # Not a girl, or not flagged: no FGM rule.
    ev = run(form, additional_flags=["fgm"], gender="male")
    assert ev.ok and "fgm_mandatory_report" not in ev.outcome.prompts
    assert run(form, date_of_birth=dob_for_age(15)).ok


def test_required_by_law_needs_legal_requirement(form: Form) -> None:
    only_error(run(form, decision="required_by_law"), "legal_requirement", "required")
    assert run(form, decision="required_by_law", legal_requirement="court_order").ok


# --------------------------------------------------------------------------- rule 5: early help


@pytest.mark.parametrize(
    ("changes", "blocked"),
    [
        ({"consent_outcome": "given"}, False),
        (
            {"consent_outcome": "partly_given", **JUSTIFICATION},
            False,
        ),
        (
            {
                "consent_outcome": "refused",
                "refusal_reasons": "No.",
                "patient_views": "No.",
                **JUSTIFICATION,
            },
            True,
        ),
        ({"consent_outcome": "unable_to_give", **JUSTIFICATION}, True),
        (
            {
                "consent_sought": False,
                "not_sought_reasons": ["delay_increases_risk"],
                **JUSTIFICATION,
            },
            True,
        ),
    ],
)
def test_rule5_early_help_needs_consent(form: Form, changes: dict[str, Any], blocked: bool) -> None:
    ev = run(form, decision="early_help_referral", **changes)
    if blocked:
        msg = only_error(ev, "decision", "rule")
        assert "consent" in msg and "another decision" in msg
    else:
        assert ev.ok, ev.errors
        assert ev.outcome.pathway == "early_help"


# --------------------------------------------------------------------------- advice


@pytest.mark.parametrize(
    ("changes", "needed"),
    [
        ({"threshold_view": "unsure"}, True),
        ({"threshold_view": "child_in_need"}, False),
        (_monitor(advice_sought=False), True),
    ],
)
def test_advice_must_be_sought_when_unsure_or_monitoring(
    form: Form, changes: dict[str, Any], needed: bool
) -> None:
    ev = run(form, **changes)
    if needed:
        msg = only_error(ev, "advice_sought", "rule")
        assert "advice" in msg and "answer yes" in msg
        assert "advice_required" in ev.outcome.prompts
    else:
        assert ev.ok, ev.errors
        assert "advice_required" not in ev.outcome.prompts


def test_advice_details_each_required(form: Form) -> None:
    details = {
        "advisor_name": "Dr Lead",
        "advisor_role": "designated_doctor",
        "advice_date": "2026-11-20",
        "advice_anonymised": False,
        "advice_summary": "Refer.",
    }
    assert run(form, advice_sought=True, **details).ok
    for missing in details:
        partial = {k: v for k, v in details.items() if k != missing}
        only_error(run(form, advice_sought=True, **partial), missing, "required")
    assert "advisor_name" not in run(form, advisor_name="Dr X").cleaned  # hidden when not sought


# --------------------------------------------------------------------------- decision


def test_monitor_details_each_required_and_review_after_today(form: Form) -> None:
    assert run(form, **_monitor()).ok
    for missing in ("reasons_not_sharing", "review_date", "support_offered"):
        only_error(run(form, **_monitor(**{missing: None})), missing, "required")
    msg = only_error(run(form, **_monitor(review_date="2026-11-25")), "review_date", "invalid")
    assert "after today" in msg and "later date" in msg
    assert run(form, **_monitor(review_date="2026-11-26")).ok


# --------------------------------------------------------------------------- consent


@pytest.mark.parametrize(
    ("age", "subject", "required"),
    [
        (12, "child", True),
        (17, "both", True),
        (14, "parent_with_pr", False),
        (11, "child", False),
    ],
)
def test_child_competence_required_12_to_17(
    form: Form, age: int, subject: str, required: bool
) -> None:
    ev = run(form, date_of_birth=dob_for_age(age), consent_subject=subject)
    if required:
        only_error(ev, "child_competence", "required")
        assert run(
            form,
            date_of_birth=dob_for_age(age),
            consent_subject=subject,
            child_competence="gillick_competent",
        ).ok
    else:
        assert ev.ok, ev.errors


def test_consent_not_sought_needs_reasons(form: Form) -> None:
    ev = run(form, consent_sought=False, **JUSTIFICATION)
    only_error(ev, "not_sought_reasons", "required")
    ev = run(
        form, consent_sought=False, not_sought_reasons=["asking_increases_risk"], **JUSTIFICATION
    )
    assert ev.ok, ev.errors
    assert "consent_outcome" not in ev.cleaned and "explained_to_person" not in ev.cleaned
    assert ev.outcome.consent_basis == "shared_without_consent_not_sought"


def test_consent_sought_needs_outcome_and_explanation(form: Form) -> None:
    only_error(run(form, consent_outcome=None, **JUSTIFICATION), "consent_outcome", "required")
    only_error(run(form, explained_to_person=None), "explained_to_person", "required")
    msg = only_error(run(form, explained_to_person=["why", "what"]), "explained_to_person", "rule")
    assert "How sharing will help the child" in msg and "tick" in msg
    for missing in ("consent_given_by", "consent_scope"):
        only_error(run(form, **{missing: None}), missing, "required")


def test_refusal_needs_reasons_and_views(form: Form) -> None:
    refused = {"consent_outcome": "refused", **JUSTIFICATION}
    ev = run(form, **refused)
    assert fields_with_errors(ev) == {"refusal_reasons", "patient_views"}
    ev = run(form, refusal_reasons="Afraid.", patient_views="Does not want it.", **refused)
    assert ev.ok and ev.outcome.consent_basis == "shared_without_consent_refused"
    assert "consent_given_by" not in ev.cleaned


# --------------------------------------------------------------------------- justification


def test_justification_shown_only_without_full_consent(form: Form) -> None:
    assert "justification" not in run(form).visible_steps
    ev = run(form, consent_outcome="partly_given")
    assert "justification" in ev.visible_steps
    assert fields_with_errors(ev) == {
        k for k in JUSTIFICATION if k != "minimum_necessary_confirmed"
    } | {"minimum_necessary_confirmed"}
    ev = run(form, consent_outcome="partly_given", **JUSTIFICATION)
    assert ev.ok and ev.outcome.consent_basis == "shared_without_consent_refused"
    ev = run(form, consent_outcome="unable_to_give", **JUSTIFICATION)
    assert ev.ok and ev.outcome.consent_basis == "shared_without_consent_not_sought"
    assert "patient_views" in ev.visible_fields and "patient_views" not in fields_with_errors(ev)


def test_minimum_necessary_must_be_confirmed(form: Form) -> None:
    just = dict(JUSTIFICATION, minimum_necessary_confirmed=False)
    msg = only_error(
        run(form, consent_outcome="unable_to_give", **just), "minimum_necessary_confirmed", "rule"
    )
    assert "minimum necessary" in msg


def test_para18_reason_and_lawful_basis(form: Form) -> None:
    just = dict(JUSTIFICATION, condition_art9="sch1_para18_safeguarding")
    only_error(run(form, consent_outcome="unable_to_give", **just), "para18_reason", "required")
    assert run(form, consent_outcome="unable_to_give", para18_reason="cannot_give", **just).ok
    bad = dict(JUSTIFICATION, lawful_basis_art6="consent")
    msg = only_error(
        run(form, consent_outcome="unable_to_give", **bad), "lawful_basis_art6", "invalid"
    )
    assert "public_task" in msg and "not one of the options" in msg


# --------------------------------------------------------------------------- informing and sharing


def test_informing(form: Form) -> None:
    for status in ("planned", "no"):
        only_error(
            run(form, family_informed=status, informed_who=None, informed_how=None),
            "not_informed_reason",
            "required",
        )
    ev = run(
        form,
        family_informed="no",
        not_informed_reason="other",
        informed_who=None,
        informed_how=None,
    )
    only_error(ev, "not_informed_detail", "required")
    ev = run(form, family_informed="no", not_informed_reason="increases_risk")
    assert ev.ok and "informed_who" not in ev.cleaned
    for status in ("before", "after"):
        ev = run(form, family_informed=status, informed_who=None, informed_how=None)
        assert fields_with_errors(ev) == {"informed_who", "informed_how"}


@pytest.mark.parametrize(
    "field", ["recipient_type", "recipient_name", "method", "included_items", "family_informed"]
)
def test_sharing_fields_required(form: Form, field: str) -> None:
    changes: dict[str, Any] = {field: None}
    if field == "family_informed":
        changes.update(informed_who=None, informed_how=None)
    only_error(run(form, **changes), field, "required")


def test_sharing_fields_not_required_when_monitoring(form: Form) -> None:
    ev = run(form, **_monitor(recipient_type=None, method=None, included_items=None))
    assert ev.ok


# --------------------------------------------------------------------------- outcome


@pytest.mark.parametrize(
    ("decision", "pathway"),
    [
        ("refer_csc", "referral"),
        ("refer_police", "referral"),
        ("share_limited", "limited_sharing"),
        ("early_help_referral", "early_help"),
    ],
)
def test_pathways(form: Form, decision: str, pathway: str) -> None:
    ev = run(form, decision=decision)
    assert ev.ok and ev.outcome.pathway == pathway and ev.outcome.letter_required


def test_emergency_comes_first(form: Form) -> None:
    ev = run(
        form,
        immediate_danger=True,
        urgent_actions=["police_999"],
        decision="required_by_law",
        legal_requirement="court_order",
    )
    assert ev.ok and ev.outcome.pathway == "emergency"


def test_no_decision_no_outcome(form: Form) -> None:
    ev = run(form, decision=None)
    assert ev.outcome == Outcome(None, None, False, ())


# --------------------------------------------------------------------------- shapes


def test_check_answer_shapes(form: Form) -> None:
    assert check_answer_shapes(form, base()) == []
    problems = check_answer_shapes(
        form,
        {
            "nhs_numbr": "9434765919",
            "immediate_danger": "no",
            "decision": ["refer_csc"],
            "gender": "woman",
            "categories": "physical",
            "concern_source": ["observed", "rumour"],
            "parents_carers": [{"name": "A", "parental_responsibility": "yes"}],
            "household_members": ["Tom"],
            "date_of_birth": 20180601,
            "address": None,
        },
    )
    by_field = {p.field: p.message for p in problems}
    assert set(by_field) == {
        "nhs_numbr",
        "immediate_danger",
        "decision",
        "gender",
        "categories",
        "concern_source",
        "parents_carers",
        "household_members",
        "date_of_birth",
    }
    assert "not a field" in by_field["nhs_numbr"]
    assert (
        "true or false" in by_field["immediate_danger"]
        and "immediate_danger" in by_field["immediate_danger"]
    )
    assert "option token" in by_field["decision"]
    assert "woman" in by_field["gender"] and "female" in by_field["gender"]
    assert "list" in by_field["categories"]
    assert "rumour" in by_field["concern_source"]
    assert "parental_responsibility" in by_field["parents_carers"]
    assert all(p.kind == "invalid" for p in problems)
    assert check_answer_shapes(form, ["not", "a", "mapping"])[0].field == ""  # type: ignore[arg-type]


def test_wrong_types_in_evaluate_are_errors_not_crashes(form: Form) -> None:
    ev = run(
        form,
        immediate_danger="no",
        categories="physical",
        decision=["refer_csc"],
        nhs_number=9434765919,
    )
    assert {"immediate_danger", "categories", "decision", "nhs_number"} <= fields_with_errors(ev)
    assert "true or false" in ev.errors_for("immediate_danger")[0].message


# --------------------------------------------------------------------------- robustness


json_scalars = st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=30)
json_values = st.recursive(
    json_scalars,
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4)
    ),
    max_leaves=12,
)


def _field_ids() -> list[str]:
    return [f.id for f in load_form(FORM_FILE).all_fields()]


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.dictionaries(st.sampled_from(_field_ids()) | st.text(max_size=12), json_values, max_size=25),
    st.booleans(),
)
def test_fuzz_never_raises(answers: dict[str, Any], prior: bool) -> None:
    form = load_form(FORM_FILE)
    ctx = Context(today=TODAY, prior_records=(PRIOR,) if prior else ())
    ev = evaluate(form, answers, ctx)
    assert set(ev.cleaned) <= ev.visible_fields
    assert ev.ok == (not ev.errors)
    check_answer_shapes(form, answers)


def _token_answers() -> st.SearchStrategy[dict[str, Any]]:
    """Plausible answers: right types, sometimes wrong values."""
    form = load_form(FORM_FILE)
    parts: dict[str, st.SearchStrategy[Any]] = {}
    for fld in form.all_fields():
        if fld.type == "choice":
            parts[fld.id] = st.sampled_from(fld.tokens)
        elif fld.type in ("multichoice", "checklist"):
            parts[fld.id] = st.lists(st.sampled_from(fld.tokens), max_size=len(fld.tokens))
        elif fld.type == "bool":
            parts[fld.id] = st.booleans()
        elif fld.type == "date":
            parts[fld.id] = st.dates().map(date.isoformat)
        elif fld.type == "people":
            row = st.fixed_dictionaries(
                {},
                optional={
                    c.id: st.booleans() if c.type == "bool" else st.text(max_size=12)
                    for c in fld.columns
                },
            )
            parts[fld.id] = st.lists(row, max_size=3)
        else:
            parts[fld.id] = st.text(max_size=20)
    return st.fixed_dictionaries({}, optional=parts)


@settings(max_examples=300, deadline=None)
@given(_token_answers())
def test_fuzz_typed_answers(answers: dict[str, Any]) -> None:
    form = load_form(FORM_FILE)
    ev = evaluate(form, answers, CTX)
    assert check_answer_shapes(form, answers) == []
    assert set(ev.cleaned) <= ev.visible_fields
    for err in ev.errors:
        assert (
            err.field in ev.visible_fields
            and err.message
            and err.kind in ("required", "invalid", "rule")
        )
    if ev.outcome.pathway == "monitor":
        assert not ev.outcome.letter_required


def test_evaluate_is_fast(form: Form) -> None:
    answers = base()
    answers.update(additional_flags=["sexual_activity"], **{f: "no" for f in SH_FIELDS})
    evaluate(form, answers, CTX)
    runs = 200
    start = time.perf_counter()
    for _ in range(runs):
        evaluate(form, answers, CTX)
    per_call_ms = (time.perf_counter() - start) / runs * 1000
    assert per_call_ms < 5, per_call_ms
