"""Version 1 letters used to prove the data-driven renderer prints what the old one printed.

`v1_cases()` gives named LetterInputs that cover the branches of the v1 letter (consent given,
refused, partly given, unable to give, not sought; emergency with a telephone referral; legal
duty; limited sharing; early help; items left out; no child identity; previous concerns;
unicode and markup characters). `python -m tests.letter_cases` writes the pdftotext output of
each to tests/fixtures/letter-v1/ (it was run once with the hand-written renderer of commit
1cd9bad; the files are the reference the new renderer is compared with).
"""

from __future__ import annotations

import json
import re
import sys
from collections.abc import Mapping
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

from gpshare.forms import load_form
from gpshare.letter import LetterInput, PracticeDetails, PriorConcern, Referrer

HERE = Path(__file__).resolve().parent
SCENARIOS = HERE / "fixtures" / "scenarios"
FIXTURE_DIR = HERE / "fixtures" / "letter-v1"
V1_FORM = HERE.parent / "forms" / "england-child-safeguarding.toml"
RECORD_ID = "3f2a9c1e-7b4d-4e2a-9c1e-7b4d4e2a9c1e"

PRACTICE = PracticeDetails(
    name="Canal Row Medical Practice",
    address="14 Canal Row\nHolbeck\nLeeds LS11 5AB",
    ods_code="B86001",
    phone="0113 496 0000",
    secure_email="canalrow.practice@nhs.net",
)
REFERRER = Referrer(
    full_name="Dr Siân Evans",
    role_title="GP partner",
    gmc_number="7012345",
    contact="0113 496 0000 (practice)",
)

REFERRAL_GIVEN = {"pathway": "referral", "consent_basis": "consent_given"}
REFERRAL_REFUSED = {"pathway": "referral", "consent_basis": "shared_without_consent_refused"}
NOT_SOUGHT = {"pathway": "emergency", "consent_basis": "shared_without_consent_not_sought"}


def v1_scenario_answers(number: str) -> dict[str, Any]:
    """A v1 scenario's answers as the app stores them (NHS number as 10 digits)."""
    path = sorted(SCENARIOS.glob(f"{number}-*.json"))[0]
    answers: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))["answers"]
    if "nhs_number" in answers:
        answers["nhs_number"] = re.sub(r"\D", "", answers["nhs_number"])
    return answers


def _v1_label(field: str, token: str) -> str:
    return load_form(V1_FORM).option_label(field, token)


def make_v1_input(
    answers: Mapping[str, Any],
    outcome: Mapping[str, Any],
    *,
    prior: list[PriorConcern] | None = None,
    age: int | None = 2,
) -> LetterInput:
    """A LetterInput with the fixed practice, referrer and times, and the v1 form's labels."""
    return LetterInput(
        record_id=RECORD_ID,
        practice=PRACTICE,
        referrer=REFERRER,
        answers=answers,
        outcome=outcome,
        completed_at=datetime(2026, 11, 25, 13, 50, tzinfo=UTC),
        signed_at=datetime(2026, 11, 25, 14, 5, tzinfo=UTC),
        prior_concerns=prior or [],
        option_label=_v1_label,
        child_age=age,
    )


def emergency_answers() -> dict[str, Any]:
    """Scenario 01 turned into an emergency: phoned through, consent not sought."""
    answers = v1_scenario_answers("01")
    for key in ("consent_outcome", "consent_given_by", "consent_scope", "explained_to_person"):
        answers.pop(key)
    answers.update(
        immediate_danger=True,
        urgent_actions=["police_999", "csc_phoned"],
        phone_referral_time="2026-11-25T13:20",
        person_spoken_to="Sam Patel (duty social worker)",
        consent_sought=False,
        not_sought_reasons=["delay_increases_risk", "asking_increases_risk"],
        harm_if_not_shared="Further injury tonight.",
        lawful_basis_art6="public_task",
        condition_art9="sch1_para18_safeguarding",
        para18_reason="would_prejudice",
        article8_aim="rights_of_others",
        minimum_necessary_confirmed=True,
        conclusion_statement="The risk of serious harm tonight outweighs confidentiality.",
        family_informed="no",
        not_informed_reason="increases_risk",
        withheld_information="The neighbour who called us must not be named.",
        concern_opinion="In my opinion these injuries are non-accidental.\n\nA second paragraph.",
    )
    return answers


def v1_cases() -> dict[str, LetterInput]:
    """Named v1 letters covering the renderer's branches."""
    cases: dict[str, LetterInput] = {}
    cases["s01-consent-given"] = make_v1_input(v1_scenario_answers("01"), REFERRAL_GIVEN)
    cases["s02-consent-refused"] = make_v1_input(
        v1_scenario_answers("02"), REFERRAL_REFUSED, age=14
    )
    cases["emergency-not-sought"] = make_v1_input(emergency_answers(), NOT_SOUGHT)

    fgm = emergency_answers()
    fgm.update(
        decision="required_by_law",
        legal_requirement="fgm_mandatory_report",
        lawful_basis_art6="legal_obligation",
        condition_art9="health_social_care",
        urgent_actions=["police_999"],
        person_spoken_to="",
        phone_referral_time=None,
    )
    cases["legal-duty-fgm"] = make_v1_input(fgm, dict(NOT_SOUGHT, pathway="legal_duty"))

    limited = v1_scenario_answers("02")
    limited.update(
        decision="share_limited",
        threshold_view="child_in_need",
        consent_outcome="partly_given",
        consent_given_by="Jade Okafor",
        consent_scope="Her sexual health history only.",
        child_competence="gillick_competent",
        parents_carers=[
            {"name": "Grace Okafor", "relationship": "mother", "parental_responsibility": True}
        ],
        household_members=[{"name": "Tobi Okafor", "relationship": "brother"}],
        person_posing_risk=[{"name": "Kyle Dunn", "relationship": "boyfriend"}],
        additional_flags=["sexual_activity", "cse", "domestic_abuse"],
        included_items=["child_identity", "reasons"],
        family_informed="planned",
        not_informed_reason="other",
        not_informed_detail="Mother is abroad until Friday.",
    )
    cases["limited-partly-given"] = make_v1_input(
        limited, {"pathway": "limited_sharing", "consent_basis": "shared_without_consent_refused"}
    )

    anonymous = v1_scenario_answers("02")
    anonymous.update(
        included_items=["reasons"],
        consent_outcome="unable_to_give",
        threshold_view="unsure",
        family_informed="after",
        informed_who="Grace Okafor",
        informed_how="by telephone",
    )
    cases["no-identity-unable"] = make_v1_input(
        anonymous,
        {"pathway": "referral", "consent_basis": "shared_without_consent_not_sought"},
        age=14,
    )

    early = v1_scenario_answers("01")
    early.update(
        decision="early_help_referral",
        threshold_view="early_help",
        included_items=["child_identity", "school", "household", "parental_factors"],
        additional_flags=["domestic_abuse"],
        school="Holbeck Nursery",
        household_members=[
            {"name": "Ó Briain", "relationship": "lodger", "date_of_birth": "1990-05-01"}
        ],
        child_words="Daddy shouts <loud> & I hide.",
        interpreter_needed=True,
        first_language="Polish",
        child_other_names="Ellie-May",
        advice_sought=False,
    )
    early.pop("family_informed")
    cases["early-help-prior"] = make_v1_input(
        early,
        {"pathway": "early_help", "consent_basis": "consent_given"},
        prior=[
            PriorConcern(date(2025, 6, 2), "monitor", "monitor", date(2025, 9, 1), "Dr Tom Reyes"),
            PriorConcern(date(2024, 1, 15), "early_help", "early_help_referral", None, "Dr Lee"),
        ],
    )

    unborn = v1_scenario_answers("01")
    for key in ("nhs_number", "date_of_birth"):
        unborn.pop(key)
    unborn.update(
        nhs_number_unknown_reason="unborn",
        expected_delivery_date="2027-02-10",
        included_items=["child_identity", "parent_identities", "risk_person_identity", "reasons"],
        person_posing_risk=[
            {
                "name": "مريم أحمد",
                "relationship": "uncle",
                "date_of_birth": "1980-01-02",
                "address": "1 Side St",
            }
        ],
        consent_outcome="refused",
        refusal_reasons="Does not trust social workers.",
        conclusion_statement="Risk outweighs.",
        harm_if_not_shared="Harm after birth.",
        consent_subject="both",
        child_competence="not_assessed",
    )
    cases["unborn-one-prior"] = make_v1_input(
        unborn,
        REFERRAL_REFUSED,
        prior=[PriorConcern(date(2026, 1, 5), "referral", "refer_csc", None, "Dr Lee")],
        age=None,
    )
    return cases


def main() -> int:
    """Write the pdftotext output of every case (run with the renderer being replaced)."""
    from gpshare.letter import build_letter
    from tests.pdftools import pdftotext

    FIXTURE_DIR.mkdir(parents=True, exist_ok=True)
    for name, inp in v1_cases().items():
        (FIXTURE_DIR / f"{name}.txt").write_text(pdftotext(build_letter(inp)), encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
