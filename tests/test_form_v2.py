"""Form version 2 against its contract, tests/fixtures/contract/data-dictionary-v2.md.

Every field, token, step, rule prompt and outcome key the dictionary names is in the form
file; version 1 stays loadable and unchanged in meaning; the loader rejects malformed uses of
the syntax version 2 added.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from gpshare.forms import FIELD_TYPES, Form, FormError, load_form, load_form_by_id

ROOT = Path(__file__).resolve().parents[1]
CONTRACT = ROOT / "tests" / "fixtures" / "contract"
V2_TEXT = (CONTRACT / "data-dictionary-v2.md").read_text(encoding="utf-8")
V1_TEXT = (CONTRACT / "data-dictionary.md").read_text(encoding="utf-8")
BAD = ROOT / "tests" / "fixtures" / "forms"
FORM_ID = "england-child-safeguarding"

# v1 fields that version 2 removes or replaces (data-dictionary-v2.md).
REMOVED_IN_V2 = {
    "withheld_information",
    "patient_views",
    "family_informed",
    "not_informed_reason",
    "not_informed_detail",
    "informed_who",
    "informed_how",
}
# v1 tokens version 2 removes, by field.
REMOVED_TOKENS = {
    "additional_flags": {"domestic_abuse"},
    "legal_requirement": {"s47_request"},
    "method": {"post"},
}


@pytest.fixture(scope="module")
def v2(monkeypatch_module: pytest.MonkeyPatch) -> Form:
    form = load_form_by_id(FORM_ID)
    assert form.version == 2, "the newest form must be version 2"
    return form


@pytest.fixture(scope="module")
def v1(monkeypatch_module: pytest.MonkeyPatch) -> Form:
    return load_form_by_id(FORM_ID, 1)


@pytest.fixture(scope="module")
def monkeypatch_module() -> pytest.MonkeyPatch:
    patch = pytest.MonkeyPatch()
    patch.delenv("GPSHARE_FORMS_DIR", raising=False)
    yield patch  # type: ignore[misc]
    patch.undo()


def table_rows(text: str) -> list[tuple[str, list[str]]]:
    """(step id, cells) for every field-table row, under its "### Step `x`" heading."""
    rows: list[tuple[str, list[str]]] = []
    step = ""
    for line in text.splitlines():
        heading = re.match(r"^##+ Step `([a-z_]+)`", line)
        if heading:
            step = heading.group(1)
            continue
        if line.startswith("## ") and "Step" not in line:
            step = ""
        if not step or not line.startswith("|") or line.startswith("|---"):
            continue
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if cells[0] in ("field", "key"):
            continue
        rows.append((step, cells))
    return rows


def field_ids(cell: str) -> list[str]:
    return [f.strip().strip("`") for f in cell.split(",") if f.strip()]


def tokens_in(cell: str) -> list[str]:
    return re.findall(r"`([a-z][a-z0-9_]*)`", cell)


V2_ROWS = table_rows(V2_TEXT)
V2_FIELDS = {fid: (step, cells) for step, cells in V2_ROWS for fid in field_ids(cells[0])}


def test_newest_form_is_version_2_and_v1_still_loads(v2: Form, v1: Form) -> None:
    assert (v2.id, v2.version, v1.version) == (FORM_ID, 2, 1)
    assert v1.has_field("withheld_information") and not v2.has_field("withheld_information")
    # v1 keeps its meaning: s47_request and post are still v1 tokens.
    assert "s47_request" in v1.field("legal_requirement").tokens
    assert "post" in v1.field("method").tokens


@pytest.mark.parametrize("field_id", sorted(V2_FIELDS))
def test_every_new_or_changed_field_is_in_the_form_in_its_step(v2: Form, field_id: str) -> None:
    step, cells = V2_FIELDS[field_id]
    assert v2.has_field(field_id), f"{field_id} is missing from form v2"
    assert v2.step_of(field_id).id == step
    if cells[1] in FIELD_TYPES:
        assert v2.field(field_id).type == cells[1]


@pytest.mark.parametrize("field_id", sorted(V2_FIELDS))
def test_every_token_of_a_v2_row_is_an_option(v2: Form, field_id: str) -> None:
    _step, cells = V2_FIELDS[field_id]
    field = v2.field(field_id)
    if field.type not in ("choice", "multichoice", "checklist"):
        return
    values = cells[2]
    removed = set(re.findall(r"minus `([a-z_]+)`", values))
    removed |= set(re.findall(r"`([a-z_0-9]+)` removed", values))
    for token in tokens_in(values):
        if token in removed:
            assert token not in field.tokens, f"{field_id}: {token} should be removed"
        elif not v2.has_field(token):  # tokens, not references to other fields
            assert token in field.tokens, f"{field_id}: {token} is missing"


def test_v1_fields_and_tokens_are_kept_unless_the_dictionary_removes_them(
    v1: Form, v2: Form
) -> None:
    for old in v1.all_fields():
        if old.id in REMOVED_IN_V2:
            assert not v2.has_field(old.id), old.id
            continue
        assert v2.has_field(old.id), f"{old.id} was lost in v2"
        new = v2.field(old.id)
        assert new.type == old.type, old.id
        expected = set(old.tokens) - REMOVED_TOKENS.get(old.id, set())
        assert expected <= set(new.tokens), old.id
        assert {c.id for c in old.columns} <= {c.id for c in new.columns}, old.id


def test_people_columns_added_in_v2(v2: Form) -> None:
    parents = {c.id for c in v2.field("parents_carers").columns}
    assert {"date_of_birth", "communication_needs"} <= parents
    agencies = {c.id for c in v2.field("other_agencies").columns}
    assert agencies == {"agency", "name", "role", "contact"}


def test_v1_contract_field_ids_are_in_v1(v1: Form) -> None:
    for _step, cells in table_rows(V1_TEXT):
        for fid in field_ids(cells[0]):
            assert v1.has_field(fid), fid


def test_removed_fields_and_moves(v2: Form) -> None:
    assert v2.step_of("lawful_basis_art6").id == "sharing"
    assert v2.step_of("condition_art9").id == "sharing"
    assert v2.step_of("para18_reason").id == "justification"
    assert "statutory_purposes" in v2.field("condition_art9").tokens
    assert "respond_to_request" in v2.field("decision").tokens
    assert "responding_to_request" in v2.field("threshold_view").tokens
    assert v2.field("partner_age").min_value == 0 and v2.field("partner_age").max_value == 99
    assert "all_ticked" not in v2.field("explained_to_person").checks
    steps = [s.id for s in v2.steps]
    assert steps.index("sharing") < steps.index("justification")


def test_below_threshold_label_and_rewritten_guidance(v2: Form) -> None:
    assert v2.option_label("threshold_view", "below_threshold") == (
        "Below the threshold for children's social care (universal services)"
    )
    sharing = v2.step("sharing").guidance
    assert "Consent is rarely the right lawful basis" in sharing
    assert "paragraph 18) is for sharing without consent" in sharing
    concern = v2.step("concern").guidance
    assert "known" in concern and "covers known cases only" in concern
    # Sources cite documents; paragraph numbers only where v1 already had them verified.
    for step in v2.steps:
        assert step.sources, step.id


def dictionary_prompts(form: Form) -> set[str]:
    """Prompt tokens of both dictionaries' outcome rows (field ids mentioned there left out)."""
    v1_prompts = set(tokens_in(V1_TEXT.split("| prompts |")[1].split("\n")[0]))
    v2_line = V2_TEXT.split("| prompts |")[1].split("\n")[0]
    found = v1_prompts | set(re.findall(r"(?:adds |; |, |\. |and )`([a-z0-9_]+)`", v2_line))
    return {t for t in found if not form.has_field(t)}


def test_every_prompt_token_of_the_dictionary_is_a_prompt(v2: Form) -> None:
    tokens = {p.token for p in v2.prompts}
    wanted = dictionary_prompts(v2)
    assert len(wanted) == 6 + 12  # v1's six and the twelve v2 adds
    assert wanted <= tokens, wanted - tokens
    assert {p.token: p.severity for p in v2.prompts}["sharing_delayed"] == "critical"
    online = next(p for p in v2.prompts if p.token == "online_visibility")
    assert online.critical_when is not None and online.critical_message


def test_outcome_keys(v2: Form, v1: Form) -> None:
    pathway = [r.token for r in v2.outcome.pathway]
    assert pathway == [
        "emergency",
        "legal_duty",
        "referral",
        "request_response",
        "limited_sharing",
        "early_help",
        "monitor",
    ]
    titles = {r.token for r in v2.outcome.letter_title}
    assert titles == set(tokens_in(V2_TEXT.split("| letter_title |")[1].split("\n")[0]))
    table = V2_TEXT.split("### SNOMED CT codes to suggest")[1].split("**Online")[0]
    codes = set(re.findall(r"\| (\d{9,18}) \|", table))
    assert codes == {c.code for c in v2.outcome.snomed_codes}
    assert all(isinstance(c.code, str) for c in v2.outcome.snomed_codes)
    assert v2.outcome.extended and not v1.outcome.extended


def test_every_rule_field_and_message_is_usable(v2: Form) -> None:
    ids = [r.id for r in v2.rules]
    for n in range(1, 11):
        assert any(i.startswith(f"r{n}_") for i in ids), f"no rule R{n}"
    assert "early_help_needs_consent" in ids and "r11_unborn_expectant_mother" in ids
    for rule in v2.rules:
        assert v2.has_field(rule.field)
        assert len(rule.message) > 40  # says what is wrong and how to fix it


def test_every_field_id_is_unique_and_the_wizard_can_name_it(v2: Form) -> None:
    ids = [f.id for f in v2.all_fields()]
    assert len(ids) == len(set(ids))


# --------------------------------------------------------------------------- loader checks

MALFORMED_V2 = [
    ("v2_unknown_ref.toml", "detail", "unknown condition 'nope'"),
    ("v2_integer_bounds.toml", "age", "'min' (10) is more than 'max' (5)"),
    ("v2_min_on_text.toml", "detail", "'min' only applies to integer fields"),
    ("v2_bad_anchor.toml", "detail", "needs an anchor such as"),
    ("v2_anchor_not_date.toml", "detail", "anchor 'name' is not 'today' or a date field"),
    ("v2_shares_not_people.toml", "detail", "'name' is not a people field"),
    ("v2_gt_on_text.toml", "detail", "'gt' needs an integer field"),
    (
        "v2_critical_without_message.toml",
        None,
        "'critical_when' and 'critical_message' go together",
    ),
    ("v2_placeholder_not_date.toml", None, "placeholder {name+1m} does not name a date field"),
    ("v2_code_not_text.toml", None, "SNOMED CT id written as text"),
    ("v2_code_bad_for.toml", None, "'for' must be one of"),
    ("v2_setting_bad.toml", None, "'setting_empty' needs a setting name"),
]


@pytest.mark.parametrize(("name", "field", "problem"), MALFORMED_V2)
def test_malformed_v2_syntax_is_rejected(name: str, field: str | None, problem: str) -> None:
    with pytest.raises(FormError) as info:
        load_form(BAD / name)
    err = info.value
    assert (err.file, err.field) == (name, field)
    assert problem in err.problem


def test_named_conditions_are_inlined(v2: Form) -> None:
    show = v2.field("fgm_police_report").show_when
    assert show is not None and show == v2.conditions["fgm_known_case"]
    assert {"additional_flags", "fgm_status", "gender"} <= show.fields()
    assert show.uses_age()


# --------------------------------------------------------------------------- wizard, CLI, version


def test_every_v2_field_renders_in_its_step_named_by_id(qtbot: Any, vault_env: Any) -> None:
    from PySide6.QtWidgets import QWidget

    from gpshare.ui.wizard.fields import IntegerField
    from gpshare.ui.wizard.wizard import AssessmentWizard

    smith = vault_env.session("drsmith")
    wizard = AssessmentWizard(smith)
    qtbot.addWidget(wizard)
    wizard.resize(1280, 800)
    wizard.show()
    form = wizard.form
    assert form is not None and form.version == 2
    for field in form.all_fields():
        found = wizard.findChild(QWidget, field.id)
        assert found is not None, field.id
        assert wizard.row(field.id) is not None
    age = wizard.input_widget("partner_age")
    assert isinstance(age, IntegerField)
    wizard.input_widget("additional_flags").set_value(["sexual_activity"])  # type: ignore[attr-defined]
    age.setText("19")
    assert wizard.answers()["partner_age"] == 19
    age.setText("nineteen")
    ev = wizard.evaluation
    assert ev is not None and any(
        "not a whole number" in e.message for e in ev.errors_for("partner_age")
    )
    smith.close()


def test_version_text_names_v2_for_new_assessments_and_v1_as_readable() -> None:
    from gpshare.about import version_text

    text = version_text()
    assert (
        "england-child-safeguarding v2 (new assessments), v1 (readable, for existing records)"
        in text
    )


def test_show_json_carries_the_v2_outcome(
    vault_env: Any, capsys: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from gpshare.cli import main
    from tests.conftest import PASSWORDS, SCENARIOS
    from tests.test_form_v2_rules import assess_json

    path = SCENARIOS / "02-teen-sexual-health-refuses.json"
    code, result = assess_json(vault_env, capsys, monkeypatch, path)
    assert code == 0
    monkeypatch.setenv("GPSHARE_PASSWORD", PASSWORDS["drsmith"])
    argv = ["show", result["record_id"], "--vault", str(vault_env.folder), "--user", "drsmith"]
    assert main([*argv, "--json"]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert shown["form"] == {"id": FORM_ID, "version": 2}
    assert shown["outcome"] == result["outcome"]
    assert shown["outcome"]["letter_title"] == "safeguarding_referral"
    assert {"836881000000105", "320011000000108"} <= {
        c["code"] for c in shown["outcome"]["snomed_codes"]
    }
