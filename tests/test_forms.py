"""Form files: the shipped form matches the data dictionary; malformed files are rejected
with the file, the field and the problem; forms are found by id and version."""

from __future__ import annotations

import os
import re
import shutil
import sys
from pathlib import Path

import pytest

from gpshare import forms as forms_module
from gpshare.forms import (
    Condition,
    Form,
    FormError,
    Source,
    available_forms,
    forms_dir,
    load_form,
    load_form_by_id,
    scan_forms,
)

FORM_ID = "england-child-safeguarding"
REPO = Path(__file__).resolve().parents[1]
FORM_FILE = REPO / "forms" / f"{FORM_ID}.toml"
FIXTURES = Path(__file__).resolve().parent / "fixtures" / "forms"
DICTIONARY = Path(__file__).resolve().parent / "fixtures" / "contract" / "data-dictionary.md"

STEP_IDS = [
    "child",
    "urgency",
    "concern",
    "threshold",
    "advice",
    "decision",
    "consent",
    "justification",
    "informing",
    "sharing",
]

# Paragraph numbers domain.md marks [V]; any other source must cite document + year only.
VERIFIED_PARAGRAPHS = {
    ("GMC, Protecting children and young people", "2–5"),
    ("GMC, Protecting children and young people", "32"),
    ("GMC, Protecting children and young people", "33"),
    ("GMC, Protecting children and young people", "34"),
    ("GMC, Protecting children and young people", "34–35"),
    ("GMC, Protecting children and young people", "43"),
    ("GMC, Protecting children and young people", "43–45"),
    ("GMC, Protecting children and young people", "52–55"),
    ("GMC, Protecting children and young people", "53"),
    ("GMC, Protecting children and young people", "55"),
    ("GMC, 0–18 years: guidance for all doctors", "42–43"),
    ("GMC, 0–18 years: guidance for all doctors", "56–60"),
    ("Data Protection Act 2018, Schedule 1", "18"),
}


@pytest.fixture(scope="module")
def form() -> Form:
    return load_form(FORM_FILE)


# --------------------------------------------------------------------------- the shipped form


def _dictionary() -> list[tuple[str, str, str, list[str]]]:
    """(step, field, type, tokens) rows from data-dictionary.md, in order."""
    rows: list[tuple[str, str, str, list[str]]] = []
    step = None
    for line in DICTIONARY.read_text(encoding="utf-8").splitlines():
        heading = re.match(r"^## Step `(\w+)`", line)
        if heading:
            step = heading.group(1)
            continue
        if line.startswith("## "):
            step = None
        if step is None or not line.startswith("|") or line.startswith("|---"):
            continue
        cells = [c.strip() for c in line.strip("|").split("|")]
        if cells[0] == "field":
            continue
        ftype = cells[1]
        tokens = re.findall(r"`([a-z0-9_]+)`", cells[2])
        for field_id in cells[0].split(","):
            rows.append((step, field_id.strip().strip("`"), ftype, tokens))
    return rows


@pytest.mark.skipif(not DICTIONARY.exists(), reason=f"data dictionary not found at {DICTIONARY}")
def test_every_dictionary_field_in_order_with_its_type_and_tokens(form: Form) -> None:
    rows = _dictionary()
    assert len(rows) > 70
    assert [f.id for f in form.all_fields()] == [r[1] for r in rows]
    for step_id, field_id, ftype, tokens in rows:
        fld = form.field(field_id)
        assert form.step_of(field_id).id == step_id, field_id
        assert fld.type == ftype, field_id
        if ftype in ("choice", "multichoice", "checklist"):
            assert list(fld.tokens) == tokens, field_id
        else:
            assert fld.options == (), field_id


def test_form_identity(form: Form) -> None:
    assert form.id == FORM_ID
    assert form.version == 1
    assert form.jurisdiction == "England"
    assert form.title
    assert form.path.name == FORM_FILE.name
    assert [s.id for s in form.steps] == STEP_IDS


def test_people_columns_match_the_dictionary(form: Form) -> None:
    def cols(field_id: str) -> list[tuple[str, str]]:
        return [(c.id, c.type) for c in form.field(field_id).columns]

    assert [c for c, _ in cols("parents_carers")] == [
        "name",
        "relationship",
        "parental_responsibility",
        "address",
        "phone",
    ]
    assert dict(cols("parents_carers"))["parental_responsibility"] == "bool"
    assert cols("household_members") == [
        ("name", "text"),
        ("relationship", "text"),
        ("date_of_birth", "date"),
    ]
    assert [c for c, _ in cols("person_posing_risk")] == [
        "name",
        "relationship",
        "date_of_birth",
        "address",
    ]
    assert dict(cols("person_posing_risk"))["date_of_birth"] == "date"


def test_names_are_limited_to_100_and_longtext_has_a_limit(form: Form) -> None:
    assert form.field("child_given_name").max_length == 100
    assert form.field("child_family_name").max_length == 100
    for fld in form.all_fields():
        if fld.type in ("text", "longtext"):
            assert fld.max_length is not None, fld.id
    assert form.field("concern_narrative").max_length == 5000


def test_lawful_basis_never_offers_consent(form: Form) -> None:
    assert "consent" not in form.field("lawful_basis_art6").tokens


def test_sharing_steps_have_a_show_when(form: Form) -> None:
    for sid in ("consent", "justification", "informing", "sharing"):
        cond = form.step(sid).show_when
        assert cond is not None and "decision" in cond.fields()
    justification = form.step("justification").show_when
    assert justification is not None and "consent_outcome" in justification.fields()
    for sid in ("child", "urgency", "concern", "threshold", "advice", "decision"):
        assert form.step(sid).show_when is None


def test_every_step_has_guidance_and_sources(form: Form) -> None:
    for step in form.steps:
        assert step.title
        sentences = re.findall(r"[.!?](?:\s|$)", step.guidance)
        assert 2 <= len(sentences) <= 6, (step.id, len(sentences))
        assert step.sources, step.id
        for src in step.sources:
            assert src.document and re.fullmatch(r"\d{4}", src.year)
            if src.paragraphs is not None:
                assert (src.document, src.paragraphs) in VERIFIED_PARAGRAPHS, src


def test_guidance_carries_the_key_points(form: Form) -> None:
    text = " ".join(s.guidance for s in form.steps).lower()
    for phrase in (
        "honestly held and reasonable",
        "compelling reason",
        "do not delay",
        "under 13",
        "fgm",
        "no more than is necessary",
        "early help",
        "several people",
    ):
        assert phrase in text, phrase


def test_outcome_tables_are_data(form: Form) -> None:
    assert [r.token for r in form.outcome.pathway] == [
        "emergency",
        "legal_duty",
        "referral",
        "limited_sharing",
        "early_help",
        "monitor",
    ]
    assert {r.token for r in form.outcome.consent_basis} == {
        "consent_given",
        "shared_without_consent_refused",
        "shared_without_consent_not_sought",
        "not_applicable",
    }
    assert form.outcome.letter_required_when is not None
    assert {p.token for p in form.prompts} == {
        "under13_sexual_activity",
        "cse_indicators",
        "fgm_mandatory_report",
        "prior_concerns",
        "advice_required",
        "urgent_written_confirmation",
    }


def test_model_lookups(form: Form) -> None:
    assert form.field("decision").option_label("refer_csc") == "Refer to children's social care"
    assert form.option_label("gender", "female") == "Female"
    assert form.field("gender").option_label("unknown_token") == "unknown_token"
    assert form.step_of("decision").id == "decision"
    assert form.field("parents_carers").column("name").required
    with pytest.raises(KeyError):
        form.field("no_such_field")
    with pytest.raises(KeyError):
        form.step_of("no_such_field")
    assert len(form.all_fields()) == len({f.id for f in form.all_fields()})


def test_source_cite() -> None:
    assert (
        Source("GMC, Protecting children and young people", "2012", "32–35").cite()
        == "GMC, Protecting children and young people (2012), paragraphs 32–35"
    )
    assert (
        Source("GMC, Protecting children and young people", "2012", "33")
        .cite()
        .endswith("paragraph 33")
    )
    assert Source("Care Act 2014", "2014").cite() == "Care Act 2014"


def test_condition_helpers(form: Form) -> None:
    cond = form.field("child_competence").required_when
    assert isinstance(cond, Condition) and cond.uses_age()
    assert cond.to_data() == {"age_between": [12, 17]}
    show = form.field("sh_going_missing").show_when
    assert show is not None and show.fields() == frozenset({"additional_flags"})
    assert "additional_flags includes 'cse'" in show.describe()


# --------------------------------------------------------------------------- malformed files

MALFORMED = [
    ("bad_syntax.toml", None, "line 5"),
    ("missing_id.toml", None, "missing 'id'"),
    ("missing_version.toml", None, "missing 'version'"),
    ("version_not_int.toml", None, "'version' must be a whole number"),
    ("missing_title.toml", None, "missing 'title'"),
    ("unknown_field_type.toml", "colour", "unknown field type 'dropdown'"),
    ("duplicate_field.toml", "name", "duplicate field id"),
    ("duplicate_step.toml", None, "duplicate step id 'about'"),
    ("condition_unknown_field.toml", "detail", "unknown field 'nope'"),
    ("condition_unknown_operator.toml", "detail", "unknown condition operator 'equal'"),
    ("bad_token.toml", "decision", "option token 'Refer CSC' is not a lower_snake_case token"),
    ("duplicate_token.toml", "answer", "option token 'yes' appears twice"),
    ("choice_without_options.toml", "gender", "needs 'options'"),
    ("people_without_columns.toml", "carers", "needs 'columns'"),
    ("show_when_later_field.toml", "detail", "'happy', which does not come before"),
    ("unknown_key.toml", "name", "unknown key 'requried'"),
    ("condition_bad_value.toml", "detail", "'maybe' is not an option token of 'answer'"),
    ("prompt_bad_severity.toml", None, "severity must be one of"),
]


@pytest.mark.parametrize(("name", "field", "problem"), MALFORMED)
def test_malformed_form_is_rejected(name: str, field: str | None, problem: str) -> None:
    with pytest.raises(FormError) as info:
        load_form(FIXTURES / name)
    err = info.value
    assert err.file == name
    assert err.field == field
    assert problem in err.problem
    assert str(err).startswith(f"{name}: ")
    if field:
        assert f"field '{field}'" in str(err)


def test_error_string_format() -> None:
    with pytest.raises(FormError) as info:
        load_form(FIXTURES / "bad_token.toml")
    assert str(info.value) == (
        "bad_token.toml: field 'decision': option token 'Refer CSC' is not a lower_snake_case token"
    )


def test_valid_minimal_fixture_loads() -> None:
    minimal = load_form(FIXTURES / "valid_minimal.toml")
    assert minimal.id == "test-minimal" and [f.id for f in minimal.all_fields()] == [
        "name",
        "happy",
        "detail",
    ]


def test_missing_and_unreadable_files(tmp_path: Path) -> None:
    with pytest.raises(FormError) as info:
        load_form(tmp_path / "absent.toml")
    assert info.value.file == "absent.toml" and "cannot be read" in info.value.problem
    binary = tmp_path / "binary.toml"
    binary.write_bytes(b'id = "\xff\xfe"\n')
    with pytest.raises(FormError) as info:
        load_form(binary)
    assert "UTF-8" in info.value.problem


# --------------------------------------------------------------------------- lookup by id/version


def _write_version(folder: Path, version: int, name: str) -> Path:
    text = FORM_FILE.read_text(encoding="utf-8").replace(
        "version = 1\n", f"version = {version}\n", 1
    )
    path = folder / name
    path.write_text(text, encoding="utf-8")
    return path


def test_forms_dir_default_env_and_frozen(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("GPSHARE_FORMS_DIR", raising=False)
    assert forms_dir() == REPO / "forms"
    monkeypatch.setattr(sys, "frozen", True, raising=False)
    monkeypatch.setattr(sys, "_MEIPASS", str(tmp_path), raising=False)
    assert forms_dir() == tmp_path / "forms"
    monkeypatch.setenv("GPSHARE_FORMS_DIR", str(tmp_path / "elsewhere"))
    assert forms_dir() == tmp_path / "elsewhere"


def test_load_by_id_latest_and_exact_version(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    shutil.copy(FORM_FILE, tmp_path / f"{FORM_ID}.toml")
    _write_version(tmp_path, 2, f"{FORM_ID}-v2.toml")
    shutil.copy(FIXTURES / "bad_token.toml", tmp_path / "broken.toml")
    monkeypatch.setenv("GPSHARE_FORMS_DIR", str(tmp_path))

    assert load_form_by_id(FORM_ID).version == 2
    # A completed record made with version 1 is shown with version 1.
    record = {"form": FORM_ID, "form_version": 1}
    old = load_form_by_id(record["form"], record["form_version"])  # type: ignore[arg-type]
    assert old.version == 1 and old.path.name == f"{FORM_ID}.toml"

    with pytest.raises(FormError) as info:
        load_form_by_id(FORM_ID, 3)
    assert "version 3" in info.value.problem and "broken.toml" in info.value.problem
    with pytest.raises(FormError):
        load_form_by_id("no-such-form")

    assert [(f.id, f.version) for f in available_forms()] == [(FORM_ID, 1), (FORM_ID, 2)]
    valid, problems = scan_forms(tmp_path)
    assert len(valid) == 2 and [p.file for p in problems] == ["broken.toml"]


def test_duplicate_id_and_version_is_an_error(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    shutil.copy(FORM_FILE, tmp_path / "a.toml")
    shutil.copy(FORM_FILE, tmp_path / "b.toml")
    monkeypatch.setenv("GPSHARE_FORMS_DIR", str(tmp_path))
    with pytest.raises(FormError) as info:
        load_form_by_id(FORM_ID, 1)
    assert "defined twice" in info.value.problem


def test_shipped_form_found_by_id(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("GPSHARE_FORMS_DIR", raising=False)
    assert load_form_by_id(FORM_ID, 1).path.resolve() == FORM_FILE.resolve()


def test_cache_reuses_and_reloads_on_change(tmp_path: Path) -> None:
    path = shutil.copy(FIXTURES / "valid_minimal.toml", tmp_path / "f.toml")
    first = load_form(path)
    assert load_form(path) is first
    text = (
        Path(path)
        .read_text(encoding="utf-8")
        .replace('title = "Minimal test form"', 'title = "Changed"')
    )
    Path(path).write_text(text, encoding="utf-8")
    stat = os.stat(path)
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000_000))
    assert load_form(path).title == "Changed"


def test_loader_has_no_qt_or_sql() -> None:
    source = Path(forms_module.__file__).read_text(encoding="utf-8")
    assert "PySide6" not in source and "sqlite" not in source and "eval(" not in source
