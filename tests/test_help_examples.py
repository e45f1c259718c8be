"""Help › Worked examples are built from the fictional scenarios: the package's copies equal
the test fixtures, and each rendered example shows the outcome the scenario expects (or, for
bad input, the fields whose messages block completion)."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pytest

from gpshare.help import topic
from gpshare.help.examples import SCENARIOS_DIR, load_examples, worked_examples_markdown
from gpshare.navigator import CONSENT_BASIS_LABELS, PATHWAY_LABELS

FIXTURES = Path(__file__).resolve().parent / "fixtures" / "scenarios" / "v2"
TODAY = date(2026, 11, 25)  # the day the scenario tests use


def sections(markdown: str) -> dict[str, str]:
    """Each example's Markdown by its number ("1", "2", …)."""
    parts = markdown.split("\n## ")[1:]
    return {part.split(".", 1)[0]: part for part in parts}


def test_package_copies_equal_the_test_fixtures():
    shipped = sorted(p.name for p in SCENARIOS_DIR.glob("*.json"))
    expected = sorted(p.name for p in FIXTURES.glob("0[1-4]*.json"))
    assert shipped == expected and len(shipped) == 4
    for name in shipped:
        assert (SCENARIOS_DIR / name).read_bytes() == (FIXTURES / name).read_bytes(), (
            f"copy tests/fixtures/scenarios/v2/{name} to gpshare/help/scenarios/"
        )


@pytest.mark.parametrize("today", [TODAY, None], ids=["scenario day", "today"])
def test_each_rendered_example_shows_the_expected_outcome(today):
    examples = load_examples(today)
    rendered = sections(worked_examples_markdown(today))
    assert len(examples) == len(rendered) == 4
    for number, example in enumerate(examples, start=1):
        text = rendered[str(number)]
        expect = example.expect
        outcome = example.evaluation.outcome
        assert example.title in text and "### The answers, step by step" in text
        if expect["completes"]:
            assert example.evaluation.ok, example.key
            assert outcome.pathway == expect["pathway"]
            assert outcome.consent_basis == expect["consent_basis"]
            assert outcome.letter_required is expect["letter_required"]
            assert f"- **Pathway:** {PATHWAY_LABELS[expect['pathway']]}" in text
            basis = CONSENT_BASIS_LABELS[expect["consent_basis"]]
            assert f"- **Consent basis:** {basis}" in text
            required = "a signed letter is required" in text
            assert required is expect["letter_required"]
            for code in expect.get("codes_include", []):
                assert f"- {code} — " in text, (example.key, code)
            for token in expect.get("prompts_include", []):
                prompt = next(p for p in example.evaluation.prompts if p.token == token)
                assert prompt.message.split(".")[0] in text
            assert "What gpshare says" not in text
        else:
            assert not example.evaluation.ok
            said = text.split("### What gpshare says", 1)[1]
            for field in expect["error_fields_include"]:
                assert f"- **{example.form.field(field).label}** (" in said, field
            assert "What gpshare works out" not in text


def test_answers_are_shown_with_the_forms_labels():
    [toddler] = [e for e in load_examples(TODAY) if e.key.startswith("01-")]
    text = sections(worked_examples_markdown(TODAY))["1"]
    decision = toddler.form.field("decision")
    assert f"- {decision.label} — {decision.option_label('refer_csc')}" in text
    assert "- Date of birth — 14 March 2024" in text
    assert "Has parental responsibility: Yes" in text
    assert "refer\\_csc" not in text and "refer_csc" not in text  # labels, never tokens


def test_the_help_topic_is_the_built_page():
    text = topic("examples").text()
    assert text.startswith("# Worked examples (fictional)")
    assert "Bruised toddler" in text and "what the app says" in text
