"""Rules R1–R11 of data-dictionary-v2.md through the navigator, and the rule scenario files
(tests/fixtures/scenarios/v2/rules/, plus the public v2 scenarios) through `gpshare assess`.

The clinical hazard log cites these test names (test_rN_blocks_*, test_rN_completes_*,
test_rule_scenarios_through_cli): keep them.
"""

from __future__ import annotations

import copy
import itertools
import json
from datetime import date
from pathlib import Path
from typing import Any

import pytest

from gpshare.cli import main
from gpshare.clock import SystemClock
from gpshare.forms import Form, load_form_by_id
from gpshare.navigator import Context, Evaluation, evaluate
from tests.conftest import PASSWORDS, SCENARIOS

RULES = SCENARIOS / "rules"
TODAY = date(2026, 11, 25)  # the tests' fixed clock (conftest) and the rule files' date
SETTINGS = {"local_authority": "Leeds City Council", "appropriate_policy_document": "APD 2026"}


@pytest.fixture(scope="module")
def form() -> Form:
    found = load_form_by_id("england-child-safeguarding")
    assert found.version == 2
    return found


def case(name: str) -> dict[str, Any]:
    path = next(RULES.glob(f"{name}.json"), None) or SCENARIOS / f"{name}.json"
    return json.loads(path.read_text(encoding="utf-8"))


def answers(name: str, **changes: Any) -> dict[str, Any]:
    data = copy.deepcopy(case(name)["answers"])
    for key, value in changes.items():
        if value is None:
            data.pop(key, None)
        else:
            data[key] = value
    return data


def run(form: Form, data: dict[str, Any], **settings: str) -> Evaluation:
    return evaluate(form, data, Context(today=TODAY, settings={**SETTINGS, **settings}))


def errors_on(ev: Evaluation, field: str) -> list[str]:
    return [e.message for e in ev.errors if e.field == field]


def assert_completes(ev: Evaluation) -> None:
    assert ev.ok, [f"{e.field}: {e.message}" for e in ev.errors]


TODDLER = "01-bruised-toddler-parents-agree"

# --------------------------------------------------------------------------- R1


def test_r1_blocks_dates_in_the_future_or_long_before_birth(form: Form) -> None:
    ev = run(form, answers(TODDLER, consent_date="2026-11-26", advice_date="2023-04-01"))
    assert any("in the future" in m for m in errors_on(ev, "consent_date"))
    assert any("10 months before" in m for m in errors_on(ev, "advice_date"))
    ev = run(form, answers(TODDLER, nhs_number="1234567890", date_of_birth="2007-01-01"))
    assert errors_on(ev, "nhs_number")
    assert any("Adult safeguarding" in m for m in errors_on(ev, "date_of_birth"))


def test_r1_blocks_a_police_report_before_birth(form: Form) -> None:
    data = answers("R4-fgm-known-case-completes", fgm_police_report_at="2016-04-30T10:00")
    assert errors_on(run(form, data), "fgm_police_report_at")


def test_r1_completes_with_a_pre_birth_advice_date_within_10_months(form: Form) -> None:
    # Advice taken before the birth (a pre-birth concern completed later) is allowed.
    ev = run(form, answers(TODDLER, advice_date="2023-07-01"))
    assert_completes(ev)


# --------------------------------------------------------------------------- R2


def test_r2_blocks_monitoring_or_limited_sharing_in_immediate_danger(form: Form) -> None:
    ev = run(form, answers("R2-immediate-danger-blocks"))
    assert any("immediate danger" in m for m in errors_on(ev, "decision"))


def test_r2_blocks_without_a_reason_when_neither_999_nor_csc_was_phoned(form: Form) -> None:
    data = answers(
        "R2-immediate-danger-completes",
        urgent_actions=["ambulance_ed"],
        phone_referral_time=None,
        person_spoken_to=None,
    )
    ev = run(form, data)
    assert errors_on(ev, "urgent_not_contacted_reason")
    assert "urgent_not_contacted" in ev.outcome.prompts


def test_r2_completes_with_a_protective_decision(form: Form) -> None:
    ev = run(form, answers("R2-immediate-danger-completes"))
    assert_completes(ev)
    assert ev.outcome.pathway == "emergency"
    for decision in ("refer_police", "respond_to_request"):
        extra = {"request_from": "DC Lee", "request_date": "2026-11-25"}
        data = answers("R2-immediate-danger-completes", decision=decision, **extra)
        assert not errors_on(run(form, data), "decision"), decision


def test_r2_completes_with_a_reason_for_not_phoning(form: Form) -> None:
    data = answers(
        "R2-immediate-danger-completes",
        urgent_actions=["ambulance_ed"],
        phone_referral_time=None,
        person_spoken_to=None,
        urgent_not_contacted_reason="Child taken straight to ED by ambulance; ED will refer.",
    )
    ev = run(form, data)
    assert_completes(ev)
    assert "urgent_not_contacted" in ev.outcome.prompts


# --------------------------------------------------------------------------- R3


def test_r3_blocks_limited_sharing_for_significant_harm(form: Form) -> None:
    ev = run(form, answers(TODDLER, decision="share_limited"))
    assert any("significant harm" in m for m in errors_on(ev, "decision"))


def test_r3_blocks_a_delay_reviewed_after_7_days(form: Form) -> None:
    ev = run(form, answers("R3-significant-harm-delay-blocks"))
    assert any("7 days" in m for m in errors_on(ev, "review_date"))


def test_r3_blocks_a_delay_without_lead_advice_or_reason(form: Form) -> None:
    data = answers(
        "R3-significant-harm-delay-completes",
        advisor_role="caldicott_guardian",
        sharing_delay_reason=None,
    )
    ev = run(form, data)
    assert errors_on(ev, "advisor_role")
    assert errors_on(ev, "sharing_delay_reason")


def test_r3_blocks_a_delay_when_the_child_is_in_immediate_danger_or_fgm(form: Form) -> None:
    data = answers(
        "R3-significant-harm-delay-completes",
        additional_flags=["fgm"],
        fgm_status="family_history",
    )
    assert errors_on(run(form, data), "decision")


def test_r3_completes_with_the_best_interests_exception(form: Form) -> None:
    ev = run(form, answers("R3-significant-harm-delay-completes"))
    assert_completes(ev)
    assert ev.outcome.pathway == "monitor"
    critical = [p for p in ev.prompts if p.token == "sharing_delayed"]
    assert critical and critical[0].severity == "critical"


def test_r3_completes_when_shared(form: Form) -> None:
    assert_completes(run(form, answers(TODDLER)))


# --------------------------------------------------------------------------- R4


def test_r4_blocks_a_known_fgm_case_without_the_mandatory_report(form: Form) -> None:
    ev = run(form, answers("R4-fgm-known-case-blocks"))
    assert any("reported to the police" in m for m in errors_on(ev, "decision"))
    fgm = [p for p in ev.prompts if p.token == "fgm_mandatory_report"]
    assert fgm and fgm[0].severity == "critical"
    assert "by 24 December 2026" in fgm[0].message  # one month from discovery


def test_r4_blocks_missing_report_details_and_a_wrong_legal_requirement(form: Form) -> None:
    data = answers(
        "R4-fgm-known-case-completes",
        legal_requirement="court_order",
        fgm_police_report=None,
        fgm_discovered_on=None,
        recipient_type="nspcc",
    )
    ev = run(form, data)
    assert errors_on(ev, "legal_requirement")
    assert errors_on(ev, "fgm_police_report") and errors_on(ev, "fgm_discovered_on")
    assert errors_on(ev, "recipient_type")


def test_r4_completes_with_the_mandatory_report(form: Form) -> None:
    ev = run(form, answers("R4-fgm-known-case-completes"))
    assert_completes(ev)
    assert ev.outcome.pathway == "legal_duty"
    assert ev.outcome.letter_title == "mandatory_report"
    to_csc = answers("R4-fgm-known-case-completes", recipient_type="csc")
    ev = run(form, to_csc)
    assert_completes(ev)
    assert ev.outcome.letter_title == "safeguarding_referral"


def test_r4_completes_when_another_professional_already_reported(form: Form) -> None:
    data = answers(
        "R4-fgm-known-case-blocks",
        fgm_police_report="made_by_other_health_professional",
        fgm_other_report="Practice nurse J. Okoro, 2026-11-24, ref 101-0456",
        fgm_police_report_at=None,
        fgm_police_reference=None,
    )
    ev = run(form, data)
    assert_completes(ev)  # refer_csc is now right (R5's decision rule)
    assert "fgm_mandatory_report" not in ev.outcome.prompts
    assert "fgm_protection" in ev.outcome.prompts


def test_r4_does_not_apply_to_an_unborn_child_or_a_boy(form: Form) -> None:
    boy = answers("R4-fgm-known-case-blocks", gender="male")
    ev = run(form, boy)
    assert (
        "fgm_mandatory_report" not in ev.outcome.prompts and "fgm_protection" in ev.outcome.prompts
    )
    other = answers("R4-fgm-known-case-blocks", gender="not_known")
    assert "fgm_mandatory_report" in run(form, other).outcome.prompts  # asks to confirm a girl


# --------------------------------------------------------------------------- R5


def test_r5_blocks_monitoring_or_early_help_for_fgm_risk(form: Form) -> None:
    ev = run(form, answers("R5-fgm-at-risk-blocks"))
    assert errors_on(ev, "decision")
    data = answers(
        "R5-fgm-at-risk-completes",
        decision="required_by_law",
        legal_requirement="fgm_mandatory_report",
    )
    assert any("known case" in m for m in errors_on(run(form, data), "legal_requirement"))


def test_r5_completes_with_a_referral_and_the_protection_prompt(form: Form) -> None:
    ev = run(form, answers("R5-fgm-at-risk-completes"))
    assert_completes(ev)
    assert "fgm_protection" in ev.outcome.prompts


# --------------------------------------------------------------------------- R6


def test_r6_blocks_non_protective_decisions_under_13(form: Form) -> None:
    ev = run(form, answers("R6-under13-sexual-activity-blocks"))
    assert any("under 13" in m for m in errors_on(ev, "decision"))


def test_r6_completes_with_a_referral(form: Form) -> None:
    ev = run(form, answers("R6-under13-sexual-activity-completes"))
    assert_completes(ev)
    assert "under13_sexual_activity" in ev.outcome.prompts


PROTECTIVE = ("refer_csc", "refer_police", "required_by_law", "respond_to_request")
DECISIONS = PROTECTIVE + ("share_limited", "early_help_referral", "monitor")


def test_r2_r3_r4_r6_intersection_is_never_empty(form: Form) -> None:
    """Whatever combination of R2, R3, R4 and R6 applies, some decision satisfies them all,
    and required_by_law (with the FGM report) is always among them."""
    triggers = {
        "R2": {"immediate_danger": True, "urgent_actions": ["police_999"]},
        "R3": {"threshold_view": "significant_harm"},
        "R4": {
            "additional_flags": ["fgm"],
            "fgm_status": "physical_signs_observed",
            "fgm_discovered_on": "2026-11-24",
            "fgm_police_report": "to_be_made",
        },
        "R6": {"additional_flags": ["sexual_activity"]},
    }
    base = answers("R6-under13-sexual-activity-completes", threshold_view="child_in_need")
    for size in range(1, 5):
        for combo in itertools.combinations(triggers, size):
            data = copy.deepcopy(base)
            flags: list[str] = []
            for name in combo:
                extra = copy.deepcopy(triggers[name])
                flags += extra.pop("additional_flags", [])
                data.update(extra)
            data["additional_flags"] = flags
            allowed = []
            for decision in DECISIONS:
                trial = dict(data, decision=decision, legal_requirement="fgm_mandatory_report")
                ev = run(form, trial)
                if not errors_on(ev, "decision") and not errors_on(ev, "legal_requirement"):
                    allowed.append(decision)
            assert allowed, combo
            assert "required_by_law" in allowed, (combo, allowed)
            # R3 alone keeps its best-interests exception (monitor, checked on other fields).
            exception = {"monitor"} if combo == ("R3",) else set()
            assert set(allowed) <= set(PROTECTIVE) | exception, (combo, allowed)


# --------------------------------------------------------------------------- R7


def test_r7_blocks_a_parent_deciding_for_a_competent_young_person(form: Form) -> None:
    ev = run(form, answers("R7-competent-young-person-blocks"))
    assert errors_on(ev, "consent_subject")
    under16 = answers(
        "R7-competent-young-person-completes", child_competence="presumed_capable_16_17"
    )
    assert errors_on(run(form, under16), "child_competence")


def test_r7_blocks_not_assessed_at_16_as_presumed_capable(form: Form) -> None:
    data = answers(
        "R7-competent-young-person-blocks",
        date_of_birth="2010-01-10",
        child_competence="not_assessed",
    )
    assert errors_on(run(form, data), "consent_subject")


def test_r7_completes_with_the_young_persons_own_consent(form: Form) -> None:
    assert_completes(run(form, answers("R7-competent-young-person-completes")))


def test_r7_completes_with_a_prompt_when_competence_was_not_assessed(form: Form) -> None:
    data = answers("R7-competent-young-person-blocks", child_competence="not_assessed")
    ev = run(form, data)
    assert_completes(ev)
    assert "competence_not_assessed" in ev.outcome.prompts


# --------------------------------------------------------------------------- R8


def test_r8_blocks_a_referral_without_the_child_or_reasons(form: Form) -> None:
    ev = run(form, answers("R8-referral-content-blocks"))
    assert len(errors_on(ev, "included_items")) == 2  # reasons; parents


def test_r8_completes_with_parents_left_out_for_a_reason(form: Form) -> None:
    assert_completes(run(form, answers("R8-referral-content-completes")))
    data = answers(
        TODDLER,
        included_items=["child_identity", "reasons"],
        parents_omitted_reason="The mother is in a refuge; her address must not be disclosed.",
    )
    assert_completes(run(form, data))


# --------------------------------------------------------------------------- R9


def test_r9_blocks_a_risk_person_identity_with_nobody_named(form: Form) -> None:
    assert errors_on(run(form, answers("R9-person-posing-risk-blocks")), "person_posing_risk")


def test_r9_completes_when_the_person_is_not_known_or_named(form: Form) -> None:
    assert_completes(run(form, answers("R9-person-posing-risk-completes")))
    named = answers("R9-person-posing-risk-blocks", person_posing_risk=[{"name": "Dean Cole"}])
    assert_completes(run(form, named))


# --------------------------------------------------------------------------- R10


def test_r10_blocks_para18_when_consent_was_given(form: Form) -> None:
    ev = run(form, answers("R10-para18-with-consent-blocks"))
    assert errors_on(ev, "condition_art9") == [
        "Consent was given, so use health and social care (Art 9(2)(h), DPA Sch 1 para 2); "
        "para 18 is for sharing without consent. Ask your DPO if your Appropriate Policy "
        "Document says otherwise."
    ]


@pytest.mark.parametrize(
    ("reason", "consent", "conflict"),
    [
        ("cannot_give", {"not_sought_reasons": ["asking_increases_risk"]}, "cannot give consent"),
        ("would_prejudice", {"not_sought_reasons": ["cannot_give_consent"]}, "increase the risk"),
        (
            "cannot_reasonably_obtain",
            {"consent_sought": True, "consent_outcome": "refused", "refusal_reasons": "No."},
            "refused",
        ),
        (
            "would_prejudice",
            {"consent_sought": True, "consent_outcome": "unable_to_give"},
            "Unable to give",
        ),
    ],
)
def test_r10_blocks_a_para18_reason_that_conflicts_with_consent(
    form: Form, reason: str, consent: dict[str, Any], conflict: str
) -> None:
    data = answers("R4-fgm-known-case-completes", para18_reason=reason, **consent)
    messages = errors_on(run(form, data), "para18_reason")
    assert messages and conflict in messages[0]


def test_r10_completes_with_consistent_answers(form: Form) -> None:
    assert_completes(run(form, answers("R10-para18-with-consent-completes")))
    assert_completes(run(form, answers("R4-fgm-known-case-completes")))  # para 18, not sought
    ev = run(form, answers("R4-fgm-known-case-completes"), appropriate_policy_document="")
    assert "apd_missing" in ev.outcome.prompts


# --------------------------------------------------------------------------- R11


def unborn(**changes: Any) -> dict[str, Any]:
    data = answers(
        TODDLER,
        nhs_number=None,
        nhs_number_unknown_reason="unborn",
        date_of_birth=None,
        expected_delivery_date="2027-02-01",
        child_given_name="Baby",
        maternity_contact="Leeds General Infirmary, community midwife team 3",
        previous_children_removed="no",
        child_views=None,
        child_informed=None,
        consent_subject="expectant_mother",
        consent_given_by="Kayleigh Marsh (expectant mother)",
    )
    data.update(changes)
    return data


def test_r11_blocks_early_help_without_consent(form: Form) -> None:
    data = answers("R4-fgm-known-case-completes", decision="early_help_referral")
    assert any("Early help depends on consent" in m for m in errors_on(run(form, data), "decision"))


def test_r11_blocks_a_parent_consenting_for_an_unborn_child(form: Form) -> None:
    ev = run(form, unborn(consent_subject="parent_with_pr"))
    assert errors_on(ev, "consent_subject")
    ev = run(form, unborn(parents_carers=None))
    assert errors_on(ev, "parents_carers")  # the expectant mother is needed before birth


def test_r11_completes_for_an_unborn_child_with_the_expectant_mother(form: Form) -> None:
    ev = run(form, unborn())
    assert_completes(ev)
    codes = {c["code"]: c["for"] for c in ev.outcome.snomed_codes}
    assert codes["878111000000109"] == "expectant mother"
    assert "836881000000105" not in codes
    assert codes["319951000000105"] == "expectant mother"


def test_r11_completes_early_help_with_consent(form: Form) -> None:
    data = answers(TODDLER, decision="early_help_referral", threshold_view="early_help")
    data.pop("risks_to_visiting_staff")
    data.pop("child_whereabouts_safety")
    ev = run(form, data)
    assert_completes(ev)
    assert ev.outcome.letter_title == "request_for_early_help"


# --------------------------------------------------------------------------- prompts and codes


def test_older_partner_and_mother_is_a_child_prompts(form: Form) -> None:
    assert "older_partner" in run(form, answers("02-teen-sexual-health-refuses")).outcome.prompts
    young_mum = [
        {"name": "Kayleigh Marsh", "date_of_birth": "2010-03-01", "relationship": "mother"}
    ]
    assert "mother_is_a_child" in run(form, unborn(parents_carers=young_mum)).outcome.prompts
    assert "mother_is_a_child" not in run(form, unborn()).outcome.prompts


def test_jurisdiction_and_cross_authority_prompts(form: Form) -> None:
    assert "cross_authority" not in run(form, answers(TODDLER)).outcome.prompts
    welsh = run(form, answers(TODDLER, child_local_authority="Cardiff Council")).outcome.prompts
    assert "jurisdiction" in welsh and "cross_authority" in welsh
    ev = run(form, answers(TODDLER, child_local_authority="Bradford"), local_authority="")
    assert "cross_authority" not in ev.outcome.prompts  # no practice setting: no comparison


def test_online_visibility_is_critical_and_drops_the_code_for_a_risk_person(form: Form) -> None:
    calm = run(form, answers(TODDLER))
    assert [p.severity for p in calm.prompts if p.token == "online_visibility"] == ["info"]
    data = answers(
        TODDLER,
        household_members=[{"name": "Dean Cole", "relationship": "mother's partner"}],
        person_posing_risk=[{"name": "dean  COLE", "relationship": "mother's partner"}],
        included_items=["child_identity", "parent_identities", "reasons", "risk_person_identity"],
    )
    ev = run(form, data)
    online = [p for p in ev.prompts if p.token == "online_visibility"]
    assert online[0].severity == "critical" and "Code only after hiding" in online[0].message
    family = [c["for"] for c in ev.outcome.snomed_codes if c["code"] == "1064961000000107"]
    assert family == ["parent or carer: Kayleigh Marsh"]  # not Dean Cole


def test_risk_person_not_shared_and_legal_obligation_prompts(form: Form) -> None:
    data = answers(
        TODDLER, person_posing_risk=[{"name": "Dean Cole"}], lawful_basis_art6="legal_obligation"
    )
    prompts = run(form, data).outcome.prompts
    assert "risk_person_not_shared" in prompts and "legal_obligation_check" in prompts


def test_cp_plan_code_and_outcome_keys(form: Form) -> None:
    ev = run(form, answers(TODDLER, csc_status="cp_plan", allocated_worker="J. Smith, Team 4"))
    codes = [c["code"] for c in ev.outcome.snomed_codes]
    assert "342191000000101" in codes and all(isinstance(c, str) for c in codes)
    data = ev.outcome.to_dict()
    assert set(data) == {
        "pathway",
        "consent_basis",
        "letter_required",
        "prompts",
        "letter_title",
        "snomed_codes",
    }


def test_respond_to_request_pathway_and_title(form: Form) -> None:
    data = answers(
        TODDLER,
        decision="respond_to_request",
        threshold_view="responding_to_request",
        request_from="Leeds CSC, Sam Patel",
        request_date="2026-11-24",
        risks_to_visiting_staff=None,
        child_whereabouts_safety=None,
    )
    ev = run(form, data)
    assert_completes(ev)
    assert (ev.outcome.pathway, ev.outcome.letter_title) == (
        "request_response",
        "response_to_request",
    )
    wrong = dict(data, decision="refer_csc")
    assert errors_on(run(form, wrong), "threshold_view")


# --------------------------------------------------------------------------- through the CLI


def cli_files() -> list[Path]:
    return sorted(RULES.glob("R*.json")) + sorted(SCENARIOS.glob("0*.json"))


def test_every_rule_from_r2_to_r10_has_a_blocking_and_a_corrected_file() -> None:
    names = [p.name for p in RULES.glob("R*.json")]
    for n in range(2, 11):
        assert any(x.startswith(f"R{n}-") and x.endswith("-blocks.json") for x in names), n
        assert any(x.startswith(f"R{n}-") and x.endswith("-completes.json") for x in names), n


def assess_json(
    vault_env: Any, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, path: Path
) -> tuple[int, dict[str, Any]]:
    """`gpshare assess --answers PATH --complete --json` as drsmith: (exit code, JSON output).

    Runs on the tests' fixed clock: the rule files are dated on it (R3's 7-day review window).
    """
    monkeypatch.setenv("GPSHARE_PASSWORD", PASSWORDS["drsmith"])
    fixed = vault_env.clock.now()
    monkeypatch.setattr(SystemClock, "now", lambda self: fixed)
    argv = ["assess", "--vault", str(vault_env.folder), "--user", "drsmith"]
    code = main([*argv, "--answers", str(path), "--complete", "--json"])
    return code, json.loads(capsys.readouterr().out)


@pytest.mark.parametrize("path", cli_files(), ids=lambda p: p.stem)
def test_rule_scenarios_through_cli(
    vault_env: Any, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, path: Path
) -> None:
    expect = json.loads(path.read_text(encoding="utf-8"))["expect"]
    code, result = assess_json(vault_env, capsys, monkeypatch, path)
    if expect["completes"]:
        assert code == 0, result["errors"]
        outcome = result["outcome"]
        assert outcome["pathway"] == expect["pathway"]
        assert outcome["consent_basis"] == expect["consent_basis"]
        assert outcome["letter_required"] == expect["letter_required"]
        assert set(expect.get("prompts_include", [])) <= set(outcome["prompts"])
        codes = {c["code"] for c in outcome["snomed_codes"]}
        assert set(expect.get("codes_include", [])) <= codes
        assert all(set(c) == {"code", "term", "for"} for c in outcome["snomed_codes"])
    else:
        assert code == 2
        fields = {e["field"] for e in result["errors"]}
        assert set(expect["error_fields_include"]) <= fields
        assert all(e["message"] for e in result["errors"])
