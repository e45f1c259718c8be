"""Letter templates: the loader's checks, v1 letters unchanged, and the v2 letter's sections.

Text is read back with poppler (pdftotext), signatures with pdfsig and pyHanko, fonts with
pdffonts: independent of the renderer.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import pytest

from gpshare import navigator
from gpshare.forms import Form, load_form, scan_forms
from gpshare.letter import LetterInput, PriorConcern, build_letter, document_title
from gpshare.letter_template import (
    LetterTemplate,
    LetterTemplateError,
    load_letter_template,
    template_for_form,
)
from gpshare.signing import create_practice_ca, issue_user_certificate, sign_pdf, verify_pdf
from tests.letter_cases import FIXTURE_DIR, make_v1_input, v1_cases
from tests.pdftools import flat, needs, nss_db_trusting, pdffonts, pdfinfo, pdfsig, pdftotext

ROOT = Path(__file__).resolve().parent.parent
FORMS = ROOT / "forms"
V2_SCENARIOS = Path(__file__).resolve().parent / "fixtures" / "scenarios" / "v2"
TODAY = date(2026, 11, 25)


@pytest.fixture(scope="module")
def v1_form() -> Form:
    return load_form(FORMS / "england-child-safeguarding.toml")


@pytest.fixture(scope="module")
def v2_form() -> Form:
    return load_form(FORMS / "england-child-safeguarding-v2.toml")


@pytest.fixture(scope="module")
def v2_template(v2_form: Form) -> LetterTemplate:
    return template_for_form(v2_form)


# --------------------------------------------------------------------------- loader


def test_every_shipped_form_has_a_valid_letter_template() -> None:
    forms, problems = scan_forms(FORMS)
    assert not problems, problems  # *.letter.toml files are not mistaken for forms
    assert {f.version for f in forms} >= {1, 2}
    for form in forms:
        template = template_for_form(form)
        assert (template.form_id, template.form_version) == form.key
        assert template.path.name == f"{form.id}.v{form.version}.letter.toml"


MINIMAL = """
form_id = "england-child-safeguarding"
form_version = 1
document_title = "Safeguarding referral"
[phrases.art6]
public_task = "Article 6(1)(e) public task"
[[sections]]
id = "child"
heading = "Child"
[[sections.blocks]]
type = "paragraph"
text = "{child_given_name}"
"""


def _load(tmp_path: Path, form: Form, text: str) -> LetterTemplate:
    path = tmp_path / "england-child-safeguarding.v1.letter.toml"
    path.write_text(text, encoding="utf-8")
    return load_letter_template(path, form)


def test_minimal_template_loads(tmp_path: Path, v1_form: Form) -> None:
    template = _load(tmp_path, v1_form, MINIMAL)
    assert template.headings == ("Child",)


BAD_TEMPLATES = [
    # (what to replace in MINIMAL, with what, expected words of the message)
    ("form_version = 1", "form_version = 2", "is for form 'england-child-safeguarding' version 2"),
    ("document_title =", 'title = "x"\ndocument_title =', "unknown key 'title'"),
    ('type = "paragraph"', 'type = "heading"', "section 'child', block 1: unknown block type"),
    ("{child_given_name}", "{child_first_name}", "refers to field 'child_first_name'"),
    ("{child_given_name}", "{child_given_name:shout}", "unknown format 'shout'"),
    ("{child_given_name}", "{lawful_basis_art6:phrase art7}", "unknown phrase table 'art7'"),
    ("{child_given_name}", "{child_given_name:label}", "'label' needs a choice field"),
    (
        "{child_given_name}",
        "Name: {child_given_name} (see {attached})",
        "refers to field 'attached'",
    ),
    ("{child_given_name}", "Costs {1}", "'1' is not a name"),
    ("{child_given_name}", "a [fixed] group", "optional group [fixed] has no placeholder"),
    ("{child_given_name}", "a ] stray", "stray bracket"),
    (
        'text = "{child_given_name}"',
        'text = "x"\nwhen = { field = "decision", equals = "refer_social_care" }',
        "'refer_social_care' is not an option token of 'decision'",
    ),
    (
        'text = "{child_given_name}"',
        'text = "x"\nwhen = { field = "no_such_field", is_set = true }',
        "unknown field 'no_such_field'",
    ),
    (
        'text = "{child_given_name}"',
        'text = "x"\nwhen = { age_lt = 13 }',
        "'age_lt' is not available in a letter template",
    ),
    (
        'text = "{child_given_name}"',
        'text = "x"\nwhen = { setting_empty = "local_authority" }',
        "'setting_empty' is not available in a letter template",
    ),
    (
        'text = "{child_given_name}"',
        'text = "x"\nwhen = { outcome = "letter_title", contains = "x" }',
        "an outcome condition needs one of",
    ),
    ('type = "paragraph"', 'type = "paragraph"\nstyle = "huge"', "unknown style 'huge'"),
    ("[[sections.blocks]]", "blocks = []\n[[sections.blocks]]", "is not valid TOML"),
    (
        'text = "{child_given_name}"',
        'text = "x"\n[[sections]]\nid = "child"\nblocks = [{ type = "space", height = 1 }]',
        "section 'child': duplicate section id",
    ),
]


@pytest.mark.parametrize(("old", "new", "message"), BAD_TEMPLATES)
def test_loader_rejects_bad_templates(
    tmp_path: Path, v1_form: Form, old: str, new: str, message: str
) -> None:
    assert old in MINIMAL
    with pytest.raises(LetterTemplateError) as err:
        _load(tmp_path, v1_form, MINIMAL.replace(old, new, 1))
    text = str(err.value)
    assert text.startswith("england-child-safeguarding.v1.letter.toml"), text
    assert message in text, text


def test_table_columns_must_exist_in_the_people_field(tmp_path: Path, v1_form: Form) -> None:
    bad = MINIMAL.replace(
        'type = "paragraph"\ntext = "{child_given_name}"',
        'type = "table"\nfield = "parents_carers"\n'
        'columns = [{ heading = "Email", value = "{email}" }]',
    )
    with pytest.raises(LetterTemplateError, match="'parents_carers' rows have no column 'email'"):
        _load(tmp_path, v1_form, bad)


def test_missing_template_is_a_clear_error(tmp_path: Path, v1_form: Form) -> None:
    form = dataclasses.replace(v1_form, path=tmp_path / "england-child-safeguarding.toml")
    with pytest.raises(LetterTemplateError, match="needs a letter template beside it"):
        template_for_form(form)


# --------------------------------------------------------------------------- v1 letters unchanged


@needs("pdftotext")
@pytest.mark.parametrize("name", sorted(v1_cases()))
def test_v1_letter_text_is_unchanged(name: str) -> None:
    """The data-driven renderer prints, line for line, what the hand-written one printed."""
    expected = (FIXTURE_DIR / f"{name}.txt").read_text(encoding="utf-8").splitlines()
    actual = pdftotext(build_letter(v1_cases()[name])).splitlines()
    for number, (want, got) in enumerate(zip(expected, actual, strict=False), start=1):
        assert got == want, f"{name} line {number}"
    assert len(actual) == len(expected)


def test_v1_letter_bytes_are_unchanged() -> None:
    """With the pinned reportlab the v1 letters are even byte-identical to the old renderer's
    (SHA-256 of its output recorded in the fixture), so a re-rendered v1 letter is the same PDF."""
    import hashlib
    import importlib.metadata

    version = importlib.metadata.version("reportlab")
    recorded = FIXTURE_DIR / f"sha256-reportlab-{version}.json"
    if not recorded.exists():
        pytest.skip(f"no recorded hashes for reportlab {version} (text equality still applies)")
    expected = json.loads(recorded.read_text(encoding="utf-8"))
    assert sorted(expected) == sorted(v1_cases())
    for name, inp in v1_cases().items():
        assert hashlib.sha256(build_letter(inp)).hexdigest() == expected[name], name


@needs("pdfsig")
def test_old_signed_v1_letter_still_verifies() -> None:
    """A letter signed by the old renderer is stored bytes: it keeps verifying."""
    signed = (FIXTURE_DIR / "signed-s01-consent-given.pdf").read_bytes()
    ca_pem = (FIXTURE_DIR / "practice-ca.pem").read_bytes()
    result = verify_pdf(signed, [ca_pem])
    assert result.ok and result.intact and result.trusted, result
    assert result.signer_name == "Dr Siân Evans"
    assert "Signature is Valid" in pdfsig(signed)
    old_text = (FIXTURE_DIR / "s01-consent-given.txt").read_text(encoding="utf-8")
    assert pdftotext(signed) == old_text


# --------------------------------------------------------------------------- v2 letters


def v2_answers(number: str = "01") -> dict[str, Any]:
    path = sorted(V2_SCENARIOS.glob(f"{number}-*.json"))[0]
    answers: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))["answers"]
    answers["nhs_number"] = answers["nhs_number"].replace(" ", "")
    return answers


V2_OUTCOME = {
    "pathway": "referral",
    "consent_basis": "consent_given",
    "letter_title": "safeguarding_referral",
    "snomed_codes": [
        {"code": "836881000000105", "term": "Child is cause for safeguarding concern"},
        {"code": "319951000000105", "term": "Consent given to share patient data"},
    ],
}


def v2_input(
    form: Form,
    template: LetterTemplate,
    answers: Mapping[str, Any],
    outcome: Mapping[str, Any] = V2_OUTCOME,
    prior: list[PriorConcern] | None = None,
) -> LetterInput:
    return dataclasses.replace(
        make_v1_input(answers, outcome, prior=prior),
        option_label=form.option_label,
        template=template,
    )


def v2_text(form: Form, template: LetterTemplate, changes: Mapping[str, Any], **kw: Any) -> str:
    answers = dict(v2_answers())
    answers.update(changes)
    return flat(pdftotext(build_letter(v2_input(form, template, answers, **kw))))


TITLE_CASES = [
    ("safeguarding_referral", "Safeguarding referral", {}),
    (
        "request_for_early_help",
        "Request for early help",
        {"decision": "early_help_referral", "threshold_view": "early_help"},
    ),
    (
        "response_to_request",
        "Response to a request for information",
        {
            "decision": "respond_to_request",
            "threshold_view": "responding_to_request",
            "request_from": "Leeds Front Door, J Bloggs",
            "request_date": "2026-11-19",
        },
    ),
    (
        "information_sharing",
        "Sharing information about a child",
        {"decision": "share_limited", "threshold_view": "unsure"},
    ),
    (
        "mandatory_report",
        "Report of female genital mutilation",
        {
            "decision": "required_by_law",
            "legal_requirement": "fgm_mandatory_report",
            "recipient_type": "police",
            "additional_flags": ["fgm"],
            "fgm_status": "disclosed_by_girl",
        },
    ),
]


@needs("pdftotext", "pdfinfo")
@pytest.mark.parametrize(("token", "title", "changes"), TITLE_CASES)
def test_every_letter_title_renders_its_title(
    v2_form: Form, v2_template: LetterTemplate, token: str, title: str, changes: dict[str, Any]
) -> None:
    answers = dict(v2_answers())
    answers.update(changes)
    evaluation = navigator.evaluate(v2_form, answers, navigator.Context(today=TODAY))
    outcome = evaluation.outcome.to_dict()
    assert outcome["letter_title"] == token  # the form, not this test, decides the title
    inp = v2_input(v2_form, v2_template, evaluation.cleaned, outcome)
    pdf = build_letter(inp)
    text = flat(pdftotext(pdf))
    assert f"Dear colleague, {title}" not in text  # the title comes before the salutation
    assert f"{inp.answers['recipient_name']}" in text
    assert f"3f2a9c1e-7b4d-4e2a-9c1e-7b4d4e2a9c1e {title} Child:" in text
    assert f"OFFICIAL – SENSITIVE: {title}".upper() in text.upper()
    assert pdfinfo(pdf)["Title"] == title == document_title(inp)
    others = [t for _, t, _ in TITLE_CASES if t != title]
    assert not any(other in text for other in others), others


# (answers changed, text expected only then)
SECTION_CASES: list[tuple[str, dict[str, Any], list[str]]] = [
    ("ethnicity", {"ethnicity": "White British"}, ["Ethnicity White British"]),
    ("religion", {"religion": "Sikh"}, ["Religion Sikh"]),
    (
        "disability",
        {"disability_send": "Autism; uses a picture board."},
        ["communication needs Autism; uses a picture board."],
    ),
    (
        "allocated worker",
        {"csc_status": "open_child_in_need", "allocated_worker": "Ann Lee, Holbeck team"},
        ["Allocated worker Ann Lee, Holbeck team", "Open as a child in need"],
    ),
    (
        "parent dob and communication needs",
        {
            "parents_carers": [
                {
                    "name": "Kayleigh Marsh",
                    "relationship": "mother",
                    "parental_responsibility": True,
                    "date_of_birth": "1998-07-04",
                    "communication_needs": "Deaf; BSL interpreter",
                }
            ]
        },
        ["4 July 1998", "Deaf; BSL interpreter"],
    ),
    (
        "other agencies",
        {
            "other_agencies": [
                {"agency": "Health visiting", "name": "Jo Smith", "role": "HV", "contact": "0113"}
            ]
        },
        ["Other agencies involved", "Health visiting", "Jo Smith"],
    ),
    (
        "parental factors",
        {
            "parental_factors": ["mental_health", "substance_misuse"],
            "included_items": [
                "child_identity",
                "parent_identities",
                "reasons",
                "parental_factors",
            ],
        },
        ["Parental factors"],
    ),
    ("child's views", {"child_views": "Says she likes nursery."}, ["Says she likes nursery."]),
    (
        "parents' views",
        {"parents_views": "Mother is worried too."},
        ["The parents' or carers' views Mother is worried too."],
    ),
    (
        "strengths",
        {"strengths": "Grandmother visits daily."},
        ["Strengths and protective factors Grandmother visits daily."],
    ),
    (
        "whereabouts",
        {"child_whereabouts_safety": "With grandmother tonight."},
        ["Where the child is now, and whether they are safe With grandmother tonight."],
    ),
    (
        "visiting staff",
        {"risks_to_visiting_staff": "Large dog at the house."},
        ["Risks to staff visiting the family Large dog at the house."],
    ),
    (
        "consent date and whose information",
        {"consent_date": "2026-11-21", "consent_subject": "expectant_mother"},
        ["given by Kayleigh Marsh (mother) on 21 November 2026", "the expectant mother's own"],
    ),
    (
        "other adult's information",
        {"consent_subject": "other_adult", "other_adult_name": "Dan Marsh"},
        ["Whose information the consent covers: the own information of Dan Marsh."],
    ),
    (
        "fgm report made",
        {
            "fgm_police_report": "made",
            "fgm_police_report_at": "2026-11-24T10:00",
            "fgm_police_reference": "WY-101-778",
        },
        [
            "Female genital mutilation: reported to the police on 24 November 2026, reference WY-101-778."
        ],
    ),
    (
        "fgm report to be made",
        {"fgm_police_report": "to_be_made", "fgm_discovered_on": "2026-01-31"},
        ["will be made by the referrer by 28 February 2026."],
    ),
    (
        "fgm reported by another professional",
        {
            "fgm_police_report": "made_by_other_health_professional",
            "fgm_other_report": "Nurse Ada Obi on 2 November 2026 (reference WY-55)",
        },
        [
            "Reported to the police by another health professional: Nurse Ada Obi on "
            "2 November 2026 (reference WY-55)."
        ],
    ),
    (
        "not for family",
        {"not_for_family": "Grandmother told us; do not name her."},
        ["Information that must not be disclosed to the family Grandmother told us"],
    ),
    (
        "phoned csc",
        {
            "immediate_danger": True,
            "urgent_actions": ["csc_phoned"],
            "person_spoken_to": "Sam Patel",
            "phone_referral_time": "2026-11-25T13:20",
        },
        ["as discussed by telephone", "telephone referral to Sam Patel at 13:20"],
    ),
    (
        "parents omitted",
        {
            "included_items": ["child_identity", "reasons"],
            "parents_omitted_reason": "REASON-MARKER father is in hiding",
        },
        ["Parent details not included; contact the referrer."],
    ),
    (
        "risk person unknown",
        {
            "included_items": [
                "child_identity",
                "parent_identities",
                "reasons",
                "risk_person_identity",
            ],
            "risk_person_unknown": True,
        },
        ["Identity of the person who may pose a risk: not known."],
    ),
]


@needs("pdftotext")
@pytest.mark.parametrize(
    ("changes", "expected"), [c[1:] for c in SECTION_CASES], ids=[c[0] for c in SECTION_CASES]
)
def test_v2_section_appears_only_when_answered(
    v2_form: Form, v2_template: LetterTemplate, changes: dict[str, Any], expected: list[str]
) -> None:
    with_answer = v2_text(v2_form, v2_template, changes)
    without = v2_text(v2_form, v2_template, {})
    for wanted in expected:
        assert wanted in with_answer, wanted
        assert wanted not in without, wanted
    assert "REASON-MARKER" not in with_answer  # parents_omitted_reason is never printed


@needs("pdftotext")
def test_telephone_phrase_needs_csc_phoned(v2_form: Form, v2_template: LetterTemplate) -> None:
    text = v2_text(
        v2_form,
        v2_template,
        {
            "immediate_danger": True,
            "urgent_actions": ["police_999"],
            "person_spoken_to": "PC Jones",
            "phone_referral_time": "2026-11-25T13:20",
        },
    )
    assert "Urgent action to make the child safe." in text
    assert "as discussed by telephone" not in text
    assert "confirms the telephone referral" not in text


@needs("pdftotext")
def test_request_details_come_first(v2_form: Form, v2_template: LetterTemplate) -> None:
    text = v2_text(
        v2_form,
        v2_template,
        {
            "decision": "respond_to_request",
            "request_from": "Leeds Front Door, J Bloggs",
            "request_date": "2026-11-19",
            "request_reference": "LFD-2231",
        },
        outcome=dict(V2_OUTCOME, letter_title="response_to_request"),
    )
    request = text.index("Your request Requested by Leeds Front Door, J Bloggs")
    assert request < text.index("Referrer Name")
    assert "Date of the request 19 November 2026" in text
    assert "Your reference LFD-2231" in text
    assert "let us know your decision" not in text


@needs("pdftotext")
def test_withheld_information_is_never_printed(v2_form: Form, v2_template: LetterTemplate) -> None:
    notice = "Some information held by the practice has been withheld from this letter; contact the referrer."
    marker = "WITHHELD-MARKER-7f3a"
    text = v2_text(v2_form, v2_template, {"withheld_from_letter": f"{marker} the neighbour's name"})
    assert marker not in text and "neighbour" not in text
    assert notice in text
    assert notice not in v2_text(v2_form, v2_template, {})


@needs("pdftotext")
def test_previous_concerns_say_they_cover_gpshare_only(
    v2_form: Form, v2_template: LetterTemplate
) -> None:
    scope = "covers only concerns recorded in gpshare, not the practice's clinical record"
    assert scope in v2_text(v2_form, v2_template, {})
    prior = [PriorConcern(date(2025, 6, 2), "request_response", "respond_to_request", None, "Dr L")]
    text = v2_text(v2_form, v2_template, {}, prior=prior)
    assert scope in text and "Response to a request" in text and "2 June 2025" in text


@needs("pdftotext")
def test_snomed_codes_are_never_printed(v2_form: Form, v2_template: LetterTemplate) -> None:
    text = v2_text(v2_form, v2_template, {"csc_status": "cp_plan"})
    for code in ("836881000000105", "319951000000105", "342191000000101", "SNOMED"):
        assert code not in text


@needs("pdffonts")
def test_v2_letter_fonts_are_all_embedded(v2_form: Form, v2_template: LetterTemplate) -> None:
    pdf = build_letter(v2_input(v2_form, v2_template, v2_answers("02")))
    fonts = pdffonts(pdf)
    assert fonts and all(f.embedded for f in fonts), fonts
    assert all("DejaVuSans" in f.name for f in fonts), fonts


@needs("pdfsig", "certutil")
def test_signed_v2_letter_verifies(
    v2_form: Form, v2_template: LetterTemplate, tmp_path: Path
) -> None:
    now = datetime.now(UTC).replace(microsecond=0)  # pdfsig checks against the wall clock
    ca = create_practice_ca("Canal Row Medical Practice", now)
    user = issue_user_certificate(
        ca,
        full_name="Dr Siân Evans",
        username="sevans",
        role="GP partner",
        gmc_number="7012345",
        practice_name="Canal Row Medical Practice",
        now=now,
    )
    pdf = build_letter(v2_input(v2_form, v2_template, v2_answers("02")))
    signed = sign_pdf(pdf, user, ca.cert_pem, now=now, reason="Safeguarding referral", location="x")
    report = pdfsig(signed, nss_db_trusting(tmp_path / "nss", ca.cert_pem))
    assert "Signature is Valid" in report, report
    assert "Certificate is Trusted" in report, report
    assert verify_pdf(signed, [ca.cert_pem]).ok


def test_v2_build_is_deterministic(v2_form: Form, v2_template: LetterTemplate) -> None:
    inp = v2_input(v2_form, v2_template, v2_answers("02"))
    assert build_letter(inp) == build_letter(inp)


@needs("pdftotext")
def test_fgm_report_date_matches_the_prompt(v2_form: Form, v2_template: LetterTemplate) -> None:
    """'Will be made by the referrer by DATE' is the date the fgm_mandatory_report prompt gives."""
    answers = dict(v2_answers())
    answers.update(
        additional_flags=["fgm"],
        fgm_status="disclosed_by_girl",
        fgm_discovered_on="2026-10-31",
        fgm_police_report="to_be_made",
        decision="required_by_law",
        legal_requirement="fgm_mandatory_report",
        lawful_basis_art6="legal_obligation",
    )
    evaluation = navigator.evaluate(v2_form, answers, navigator.Context(today=TODAY))
    prompt = next(p for p in evaluation.prompts if p.token == "fgm_mandatory_report")
    assert "30 November 2026" in prompt.message  # one month on, clipped to the month's end
    inp = v2_input(v2_form, v2_template, evaluation.cleaned, evaluation.outcome.to_dict())
    text = flat(pdftotext(build_letter(inp)))
    assert "a report to the police will be made by the referrer by 30 November 2026." in text
    assert text.index("Report to the police") < text.index("Referrer Name")


@needs("pdftotext", "pdfinfo")
def test_v2_request_and_signature_stay_on_one_page(
    v2_form: Form, v2_template: LetterTemplate
) -> None:
    """Whatever the length of the letter, the request, closing lines and signature are never
    split. (With a CondPageBreak inside the kept-together section the last line spilled onto
    a page of its own for some lengths of this mandatory-report letter.)"""
    from tests.pdftools import page_count

    base = dict(v2_answers())
    base.update(TITLE_CASES[-1][2])  # the mandatory report
    base.update(
        other_agencies=[{"agency": "Health visiting", "name": "Jo Smith", "role": "HV"}],
        parents_views="Mother is worried too and wants help.",
        strengths="Grandmother visits daily.",
        withheld_from_letter="kept back",
        not_for_family="The grandmother raised this; please do not name her.",
    )
    for extra in range(0, 84, 6):
        answers = dict(base, concern_narrative=base["concern_narrative"] + " More detail." * extra)
        evaluation = navigator.evaluate(v2_form, answers, navigator.Context(today=TODAY))
        inp = v2_input(v2_form, v2_template, evaluation.cleaned, evaluation.outcome.to_dict())
        pdf = build_letter(inp)
        last = flat(pdftotext(pdf, page=page_count(pdf)))
        assert "Digitally signed" in last and "Yours sincerely" in last, extra
        assert "What is requested" in last and "Please acknowledge receipt" in last, extra
