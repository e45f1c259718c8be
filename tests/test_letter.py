"""The referral letter, checked independently with poppler (pdftotext, pdffonts, pdfinfo)."""

from __future__ import annotations

import dataclasses
import json
import re
from collections.abc import Mapping
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import pytest

from gpshare.letter import (
    SIGNATURE_NOTE,
    LetterInput,
    PracticeDetails,
    PriorConcern,
    Referrer,
    build_letter,
    default_template,
    letter_filename,
    missing_practice_details,
)
from tests.letter_cases import PRACTICE, RECORD_ID, REFERRER, emergency_answers, make_v1_input
from tests.pdftools import flat, needs, page_count, pdffonts, pdfinfo, pdftotext, render_pngs

ACK_REQUEST = "Please acknowledge receipt within one working day and let us know your decision."
SCENARIOS = Path(__file__).resolve().parent / "fixtures" / "scenarios"

OUTCOMES: dict[str, dict[str, Any]] = {
    "01": {
        "pathway": "referral",
        "consent_basis": "consent_given",
        "letter_required": True,
        "prompts": [],
    },
    "02": {
        "pathway": "referral",
        "consent_basis": "shared_without_consent_refused",
        "letter_required": True,
        "prompts": ["cse_indicators"],
    },
}

EMERGENCY_OUTCOME = {
    "pathway": "emergency",
    "consent_basis": "shared_without_consent_not_sought",
    "letter_required": True,
    "prompts": ["urgent_written_confirmation"],
}


def fake_label(field: str, token: str) -> str:
    """Stand-in for the form's option labels: "delay_increases_risk" -> "Delay increases risk"."""
    return token.replace("_", " ").capitalize()


def scenario(number: str) -> dict[str, Any]:
    """The scenario file's JSON (answers cleaned as the app stores them: NHS number as 10 digits)."""
    paths = sorted(SCENARIOS.glob(f"{number}-*.json"))
    assert paths, f"scenario {number} not found in {SCENARIOS}"
    path = paths[0]
    data: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    answers = data["answers"]
    if "nhs_number" in answers:
        answers["nhs_number"] = re.sub(r"\D", "", answers["nhs_number"])
    return data


def make_input(
    answers: Mapping[str, Any],
    outcome: Mapping[str, Any],
    *,
    prior: list[PriorConcern] | None = None,
    referrer: Referrer = REFERRER,
    age: int | None = 2,
) -> LetterInput:
    """A LetterInput with fixed practice, times and labels (the stand-in labels above)."""
    base = make_v1_input(answers, outcome, prior=prior, age=age)
    return dataclasses.replace(base, referrer=referrer, option_label=fake_label)


def scenario_letter(number: str, **changes: Any) -> bytes:
    """Build the letter for a scenario, with some answers replaced."""
    answers = dict(scenario(number)["answers"])
    answers.update(changes)
    return build_letter(make_input(answers, OUTCOMES[number]))


# --------------------------------------------------------------------------- pure Python


def test_missing_practice_details_names_empty_fields() -> None:
    p = PracticeDetails(name="X", address=" ", ods_code="", phone="1", secure_email="a@nhs.net")
    assert missing_practice_details(p) == ["address", "ODS code"]
    assert missing_practice_details(PRACTICE) == []


def test_letter_filename_has_no_patient_identifiers() -> None:
    name = letter_filename(RECORD_ID, datetime(2026, 11, 25, 23, 30, tzinfo=UTC))
    assert name == "safeguarding-referral-3F2A9C1E-20261125.pdf"
    assert re.fullmatch(r"[a-z-]+-[0-9A-Z]{8}-\d{8}\.pdf", name)


def test_letter_filename_uses_uk_date() -> None:
    # 23:30 UTC on 30 June is 00:30 on 1 July in London (BST).
    assert letter_filename("abc", datetime(2026, 6, 30, 23, 30, tzinfo=UTC)).endswith(
        "20260701.pdf"
    )


def test_build_is_deterministic() -> None:
    assert scenario_letter("01") == scenario_letter("01")


@needs("pdfinfo")
def test_metadata_carries_no_child_identifiers() -> None:
    info = pdfinfo(scenario_letter("01"))
    assert info["Title"] == "Safeguarding referral"
    assert info["Author"] == "Dr Siân Evans"
    shown = " ".join(info.values())
    for identifier in ("Ellie", "Marsh", "9434765870", "943 476 5870", "Canal Row, Leeds"):
        assert identifier not in shown


# --------------------------------------------------------------------------- poppler checks


@needs("pdftotext")
@pytest.mark.parametrize("number", ["01", "02"])
def test_scenario_letter_has_sections_and_required_text(number: str) -> None:
    data = scenario(number)
    text = flat(pdftotext(build_letter(make_input(data["answers"], OUTCOMES[number]))))
    for heading in default_template().headings:
        assert heading in text, heading
    for wanted in data["expect"]["letter_contains"]:
        assert wanted in text, wanted
    assert "OFFICIAL – SENSITIVE: SAFEGUARDING REFERRAL" in text.upper()
    assert data["answers"]["recipient_name"] in text
    assert "25 November 2026, 14:05" in text
    assert ACK_REQUEST in text  # the v1 template's closing request
    assert SIGNATURE_NOTE in text
    assert "GMC number 7012345" in text
    assert "Canal Row Medical Practice" in text and "B86001" in text
    assert "canalrow.practice@nhs.net" in text and "0113 496 0000" in text


@needs("pdftotext")
def test_consent_given_statement() -> None:
    text = flat(pdftotext(scenario_letter("01")))
    assert "Consent given." in text
    assert "Consent to share this information was given by Kayleigh Marsh (mother)." in text
    assert "Details of the bruising and the child's health record" in text
    assert "refused" not in text and "Consent not sought" not in text
    assert "The family was told about this referral before it was made" in text
    assert "section 47 of the Children Act 1989" in text


@needs("pdftotext")
def test_consent_refused_statement_with_balance_and_legal_basis() -> None:
    text = flat(pdftotext(scenario_letter("02")))
    assert "Consent refused." in text
    assert "it was refused" in text
    assert "Afraid her boyfriend will be arrested and her mother will find out." in text
    assert "The risk of continuing sexual exploitation outweighs her interest" in text
    assert "Article 6(1)(e) public task" in text
    assert (
        "Article 9(2)(g) with Data Protection Act 2018 Schedule 1 paragraph 18 "
        "(safeguarding of children and individuals at risk)" in text
    )
    assert "The family does not know about this referral." in text
    assert "Consent given." not in text
    # child's own words, in quotation marks, and the opinion labelled apart from the facts
    assert "“He's 22 but he's really mature, he looks after me.”" in text
    assert text.index("(facts)") < text.index("Clinician's opinion")


@needs("pdftotext")
def test_emergency_letter_confirms_phone_referral_and_not_sought_statement() -> None:
    pdf = build_letter(make_input(emergency_answers(), EMERGENCY_OUTCOME))
    text = flat(pdftotext(pdf))
    assert (
        "This letter confirms the telephone referral to Sam Patel (duty social worker) "
        "at 13:20 on 25 November 2026" in text
    )
    assert "Consent not sought." in text
    assert "Delay increases risk" in text and "Asking increases risk" in text
    assert "Information that must not be disclosed to the family" in text
    assert "The neighbour who called us must not be named." in text
    assert "Clinician's opinion" in text
    assert "In my opinion these injuries are non-accidental." in text
    assert "I judged the child to be in immediate danger" in text


@needs("pdftotext")
@pytest.mark.parametrize(
    ("basis", "requirement", "expected"),
    [
        ("legal_obligation", "fgm_mandatory_report", "Female Genital Mutilation Act 2003"),
        ("vital_interests", "court_order", "a court order"),
    ],
)
def test_required_by_law_names_the_requirement(basis: str, requirement: str, expected: str) -> None:
    answers = emergency_answers()
    answers.update(
        decision="required_by_law",
        legal_requirement=requirement,
        lawful_basis_art6=basis,
        condition_art9="health_social_care",
    )
    outcome = dict(EMERGENCY_OUTCOME, pathway="legal_duty")
    text = flat(pdftotext(build_letter(make_input(answers, outcome))))
    assert "This disclosure is required by law" in text and expected in text
    assert {"legal_obligation": "Article 6(1)(c)", "vital_interests": "Article 6(1)(d)"}[
        basis
    ] in text
    assert "Article 9(2)(h) with Data Protection Act 2018 Schedule 1 paragraph 2" in text


@needs("pdffonts")
def test_every_font_is_embedded_and_no_helvetica() -> None:
    for pdf in (
        scenario_letter("01"),
        build_letter(make_input(emergency_answers(), EMERGENCY_OUTCOME)),
    ):
        fonts = pdffonts(pdf)
        assert fonts, "pdffonts listed no fonts"
        assert all(f.embedded for f in fonts), fonts
        assert not any("Helvetica" in f.name or "Courier" in f.name for f in fonts), fonts
        assert all("DejaVuSans" in f.name for f in fonts), fonts


@needs("pdftotext")
def test_unicode_names_survive() -> None:
    answers = dict(scenario("01")["answers"])
    answers.update(
        child_given_name="Zoë",
        child_family_name="O'Brien-Nuñez",
        included_items=[
            "child_identity",
            "parent_identities",
            "household",
            "risk_person_identity",
            "reasons",
        ],
        parents_carers=[
            {"name": "مريم", "relationship": "mother", "parental_responsibility": True},
            {
                "name": "Łukasz Kowalski",
                "relationship": "stepfather",
                "parental_responsibility": False,
            },
        ],
        household_members=[
            {"name": "Ó Briain", "relationship": "lodger", "date_of_birth": "1990-05-01"}
        ],
        person_posing_risk=[{"name": "Łukasz Nowak", "relationship": "uncle"}],
        concern_narrative="Mother (مريم أحمد) says the bruises appeared on Tuesday.",
    )
    text = flat(pdftotext(build_letter(make_input(answers, OUTCOMES["01"], referrer=REFERRER))))
    for name in (
        "Siân",
        "Łukasz Kowalski",
        "Łukasz Nowak",
        "Ó Briain",
        "Zoë O'Brien-Nuñez",
        "مريم",
        "مريم أحمد",
    ):
        assert name in text, name


@needs("pdftotext")
def test_markup_characters_are_printed_literally() -> None:
    pdf = scenario_letter(
        "01",
        concern_narrative="Dad said <b>stop</b> & <i>left</i>; x < y > z &amp; done.",
        child_given_name="Amy <b>",
    )
    text = flat(pdftotext(pdf))
    assert "Dad said <b>stop</b> & <i>left</i>; x < y > z &amp; done." in text
    assert "Amy <b>" in text


@needs("pdftotext", "pdfinfo")
def test_long_narrative_flows_over_pages_with_footer_on_each() -> None:
    sentence = "On 3 November the child was seen with a new bruise on the left cheek. "
    narrative = (sentence * (20_000 // len(sentence) + 1))[:20_000]
    pdf = scenario_letter("01", concern_narrative=narrative)
    pages = page_count(pdf)
    assert pages >= 5
    for number in range(1, pages + 1):
        page_text = flat(pdftotext(pdf, page=number))
        assert f"Page {number} of {pages}" in page_text
        assert f"Record reference {RECORD_ID}" in page_text
        assert "OFFICIAL – SENSITIVE" in page_text
    # the whole narrative is there, not truncated (single words cannot straddle a page)
    assert flat(pdftotext(pdf)).count("bruise") == narrative.count("bruise")


@needs("pdftotext", "pdfinfo")
def test_table_header_repeats_when_it_splits() -> None:
    parents = [
        {"name": f"Carer {i:02d}", "relationship": "foster carer", "parental_responsibility": False}
        for i in range(70)
    ]
    pdf = scenario_letter("01", parents_carers=parents)
    pages_with_rows = [
        n for n in range(1, page_count(pdf) + 1) if "Carer " in pdftotext(pdf, page=n)
    ]
    assert len(pages_with_rows) >= 2
    for n in pages_with_rows:
        text = flat(pdftotext(pdf, page=n))
        assert "Relationship" in text and "Telephone" in text, n


@needs("pdftotext")
def test_items_not_included_are_left_out() -> None:
    answers = dict(scenario("02")["answers"])
    answers.update(
        parents_carers=[
            {"name": "Grace Okafor", "relationship": "mother", "parental_responsibility": True}
        ],
        household_members=[{"name": "Tobi Okafor", "relationship": "brother"}],
        person_posing_risk=[{"name": "Kyle Dunn", "relationship": "boyfriend"}],
        additional_flags=["sexual_activity", "cse", "domestic_abuse"],
        included_items=["child_identity", "reasons"],
    )
    text = flat(pdftotext(build_letter(make_input(answers, OUTCOMES["02"]))))
    for absent in (
        "Hartcliffe Academy",  # school
        "Grace Okafor",  # parent identities
        "Tobi Okafor",  # household
        "Kyle Dunn",  # risk person
        "Partner much older",  # health information (sh_* indicators)
        "Domestic abuse",  # parental factors
    ):
        assert absent not in text, absent
    assert "Jade" in text and "Okafor" in text  # child identity was included
    assert "deliberately not included" in text
    assert "the child's school" in text


@needs("pdftotext")
def test_without_child_identity_no_child_identifiers() -> None:
    answers = dict(scenario("02")["answers"])
    answers["included_items"] = ["reasons"]
    text = flat(pdftotext(build_letter(make_input(answers, OUTCOMES["02"]))))
    for absent in ("Jade", "401 023 2137", "3 Wren Close", "2 April 2012"):
        assert absent not in text, absent
    assert "identifying details are not included" in text


@needs("pdftotext")
def test_previous_concerns_listed() -> None:
    prior = [
        PriorConcern(date(2025, 6, 2), "monitor", "monitor", date(2025, 9, 1), "Dr Tom Reyes"),
        PriorConcern(date(2024, 1, 15), "early_help", "early_help_referral", None, "Dr Ann Lee"),
    ]
    answers = scenario("01")["answers"]
    text = flat(pdftotext(build_letter(make_input(answers, OUTCOMES["01"], prior=prior))))
    assert "2 earlier concerns are recorded" in text
    assert text.index("15 January 2024") < text.index("2 June 2025")
    assert "Dr Tom Reyes" in text and "1 September 2025" in text


@needs("pdftoppm")
def test_every_page_renders(tmp_path: Path) -> None:
    pdf = build_letter(make_input(emergency_answers(), EMERGENCY_OUTCOME))
    pngs = render_pngs(pdf, tmp_path, "emergency")
    assert len(pngs) == page_count(pdf)
    assert all(p.stat().st_size > 1000 for p in pngs)
