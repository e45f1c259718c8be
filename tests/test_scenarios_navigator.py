"""The worked scenarios in tests/fixtures/scenarios/*.json (form v1) and v2/*.json (form v2),
each run through the navigator with the form version it was written for."""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path
from typing import Any

import pytest

from gpshare.forms import load_form_by_id
from gpshare.navigator import Context, check_answer_shapes, evaluate

SCENARIOS = Path(__file__).resolve().parent / "fixtures" / "scenarios"
CTX = Context(today=date(2026, 11, 25))


def _scenario_files() -> list[Path]:
    return sorted(SCENARIOS.glob("*.json")) + sorted((SCENARIOS / "v2").glob("*.json"))


def test_scenarios_exist() -> None:
    assert len(sorted(SCENARIOS.glob("*.json"))) >= 4
    assert len(sorted((SCENARIOS / "v2").glob("*.json"))) >= 4


@pytest.mark.parametrize("path", _scenario_files(), ids=lambda p: f"{p.parent.name}/{p.stem}")
def test_scenario(path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("GPSHARE_FORMS_DIR", raising=False)
    case: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    form = load_form_by_id(case["form"], case.get("form_version", 1))
    assert form.version == case.get("form_version", 1)
    answers = case["answers"]
    expect = case["expect"]

    assert check_answer_shapes(form, answers) == []
    ev = evaluate(form, answers, CTX)

    if expect["completes"]:
        assert ev.ok, [f"{e.field}: {e.message}" for e in ev.errors]
        assert ev.outcome.pathway == expect["pathway"]
        assert ev.outcome.consent_basis == expect["consent_basis"]
        assert ev.outcome.letter_required is expect["letter_required"]
        for token in expect.get("prompts_include", []):
            assert token in ev.outcome.prompts
        codes = {c["code"] for c in ev.outcome.snomed_codes}
        for code in expect.get("codes_include", []):
            assert code in codes
        # The outcome is JSON-ready for the record and `assess --json`.
        assert json.loads(json.dumps(ev.outcome.to_dict())) == ev.outcome.to_dict()
        json.dumps(ev.cleaned)
    else:
        assert not ev.ok
        failing = {e.field for e in ev.errors}
        for field in expect["error_fields_include"]:
            assert field in failing, (field, ev.errors)
        for error in ev.errors:
            assert error.message.strip()
