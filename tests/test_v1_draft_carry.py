"""A v1 draft opened after the upgrade to form v2 (data-dictionary-v2.md): the mapping below
the UI (gpshare.carry), the audited service step, the wizard, and `gpshare assess` with a
v1 answers file."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest
from PySide6.QtWidgets import QWidget

from gpshare import carry
from gpshare.cli import main
from gpshare.errors import PermissionDenied
from gpshare.forms import Form, load_form_by_id
from gpshare.store.sqlcipher import repositories as repo
from gpshare.ui.wizard.wizard import AssessmentWizard
from tests.conftest import PASSWORDS, SCENARIOS_V1
from tests.storehelp import raw_connection
from tests.test_form_v2_rules import assess_json

ROOT = Path(__file__).resolve().parents[1]
FORM_ID = "england-child-safeguarding"


def v1_answers() -> dict[str, Any]:
    """Scenario 01 (v1) with every kind of answer the mapping treats specially."""
    data = json.loads((SCENARIOS_V1 / "01-bruised-toddler-parents-agree.json").read_text())
    answers: dict[str, Any] = data["answers"]
    answers.update(
        {
            "additional_flags": ["domestic_abuse", "cce"],
            "withheld_information": "The neighbour who raised it asked not to be named.",
            "patient_views": "Upset but accepts the referral.",
            "family_informed": "no",
            "not_informed_reason": "other",
            "not_informed_detail": "Mother was too distressed to talk today.",
            "method": "post",
        }
    )
    for key in ("informed_who", "informed_how"):
        answers.pop(key, None)
    return answers


@pytest.fixture(scope="module")
def forms(monkeypatch_module: Any) -> tuple[Form, Form]:
    return load_form_by_id(FORM_ID, 1), load_form_by_id(FORM_ID, 2)


@pytest.fixture(scope="module")
def monkeypatch_module() -> Any:
    patch = pytest.MonkeyPatch()
    patch.delenv("GPSHARE_FORMS_DIR", raising=False)
    yield patch
    patch.undo()


# --------------------------------------------------------------------------- the mapping


def test_mapping_follows_the_dictionary(forms: tuple[Form, Form]) -> None:
    v1, v2 = forms
    carried = carry.carry_v1_to_v2(v1_answers(), v1, v2)
    out = carried.answers
    assert out["additional_flags"] == ["cce"]
    assert out["parental_factors"] == ["domestic_abuse"]
    assert out["withheld_from_letter"].startswith("The neighbour")
    assert "not_for_family" not in out  # never mapped there
    assert out["parents_informed"] == "no"
    assert out["parents_not_informed_reason"] == "other"
    assert out["parents_informed_detail"] == "Mother was too distressed to talk today."
    assert "child_informed" not in out  # left for the user to answer
    for gone in ("patient_views", "withheld_information", "family_informed", "method"):
        assert gone not in out
    # unchanged ids and tokens are kept as they were
    assert out["nhs_number"] == "943 476 5870" and out["consent_outcome"] == "given"
    assert carry.HISTORY_KEY not in out


def test_every_mapped_or_dropped_answer_is_listed_and_kept_in_history(
    forms: tuple[Form, Form],
) -> None:
    v1, v2 = forms
    carried = carry.carry_v1_to_v2(v1_answers(), v1, v2)
    changed = {c.field: c.to for c in carried.changes}
    assert changed == {
        "additional_flags": "parental_factors",
        "withheld_information": "withheld_from_letter",
        "patient_views": None,
        "family_informed": "parents_informed",
        "not_informed_reason": "parents_not_informed_reason",
        "not_informed_detail": "parents_informed_detail",
        "method": None,  # "post" is no longer an option
    }
    lines = carry.change_lines(carried, v1)
    assert len(lines) == len(carried.changes)
    assert any("views of the child or family" in line and "history" in line for line in lines)
    assert any(
        "How will you send it" in line and "“post” is no longer an option" in line for line in lines
    )
    history = carried.history_entries("2026-11-25T10:00:00+00:00")
    assert {h["field"]: h["value"] for h in history}[
        "patient_views"
    ] == "Upset but accepts the referral."
    audit = carried.audit_details()
    assert audit == {
        "from_version": 1,
        "to_version": 2,
        "mapped": [
            "additional_flags",
            "family_informed",
            "not_informed_detail",
            "not_informed_reason",
            "withheld_information",
        ],
        "dropped": ["method", "patient_views"],
    }
    assert "Upset" not in json.dumps(audit)  # ids only in the audit log


def test_informed_who_and_how_become_one_detail(forms: tuple[Form, Form]) -> None:
    v1, v2 = forms
    answers = {"family_informed": "before", "informed_who": "Mother", "informed_how": "in person"}
    out = carry.carry_v1_to_v2(answers, v1, v2).answers
    assert out == {"parents_informed": "before", "parents_informed_detail": "Mother; in person"}


def test_s47_request_is_dropped_with_its_reason(forms: tuple[Form, Form]) -> None:
    v1, v2 = forms
    carried = carry.carry_v1_to_v2(
        {"decision": "required_by_law", "legal_requirement": "s47_request"}, v1, v2
    )
    assert carried.answers == {"decision": "required_by_law"}
    assert [(c.field, c.to) for c in carried.changes] == [("legal_requirement", None)]


# --------------------------------------------------------------------------- the service


@pytest.fixture
def v1_draft(vault_env: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """A draft saved while only form version 1 was installed (before the upgrade)."""
    only_v1 = tmp_path / "forms-v1"
    only_v1.mkdir()
    shutil.copy(ROOT / "forms" / "england-child-safeguarding.toml", only_v1)
    monkeypatch.setenv("GPSHARE_FORMS_DIR", str(only_v1))
    session = vault_env.session("drsmith")
    record = session.assessments.start_assessment(answers=v1_answers())
    assert record.form_version == 1
    session.close()
    monkeypatch.delenv("GPSHARE_FORMS_DIR")
    return record.id


def test_service_carries_the_draft_and_audits_ids_only(vault_env: Any, v1_draft: str) -> None:
    smith = vault_env.session("drsmith")
    record, lines = smith.assessments.carry_draft_forward(v1_draft)
    assert record.form_version == 2 and record.is_draft
    assert record.answers["parents_informed"] == "no"
    history = record.answers[carry.HISTORY_KEY]
    assert {h["field"] for h in history} >= {"patient_views", "method"}
    assert len(lines) == 7
    events = repo.audit_events(
        raw_connection(smith), repo.AuditFilter(action="draft_carried_forward"), None, 0
    )
    assert len(events) == 1 and events[0].record_id == v1_draft
    assert events[0].details["dropped"] == ["method", "patient_views"]
    assert "Upset" not in json.dumps(events[0].details)
    # opening it again changes nothing more
    again, more = smith.assessments.carry_draft_forward(v1_draft)
    assert again.form_version == 2 and more == []
    smith.close()


def test_history_survives_completion(vault_env: Any, v1_draft: str) -> None:
    smith = vault_env.session("drsmith")
    record, _ = smith.assessments.carry_draft_forward(v1_draft)
    v2_scenario = json.loads(
        (SCENARIOS_V1 / "v2" / "01-bruised-toddler-parents-agree.json").read_text()
    )["answers"]
    answers = {**v2_scenario, carry.HISTORY_KEY: record.answers[carry.HISTORY_KEY]}
    done, _ = smith.assessments.complete(record.id, answers)
    assert done.form_version == 2
    kept = done.answers[carry.HISTORY_KEY]
    assert any(h["field"] == "patient_views" for h in kept)
    smith.close()


def test_only_the_owner_can_carry_a_draft(vault_env: Any, v1_draft: str) -> None:
    jones = vault_env.session("drjones")
    with pytest.raises(PermissionDenied):
        jones.assessments.carry_draft_forward(v1_draft)
    jones.close()


def test_draft_view_resumes_a_v1_draft_on_v2_in_one_call(vault_env: Any, v1_draft: str) -> None:
    smith = vault_env.session("drsmith")

    def count(action: str) -> int:
        return len(repo.audit_events(raw_connection(smith), repo.AuditFilter(action=action)))

    view = smith.views.draft_view(v1_draft)
    assert view.form is not None and view.form.version == 2
    assert view.record.form_version == 2 and view.record.is_draft
    assert len(view.carried) == 7
    assert count("record_viewed") == 1 and count("draft_carried_forward") == 1
    again = smith.views.draft_view(v1_draft)  # already carried: nothing more to list
    assert again.carried == () and count("draft_carried_forward") == 1
    smith.close()


def test_draft_view_of_a_completed_record_has_no_form(vault_env: Any) -> None:
    smith = vault_env.session("drsmith")
    data = json.loads((SCENARIOS_V1 / "v2" / "01-bruised-toddler-parents-agree.json").read_text())
    done, _ = smith.assessments.complete(
        smith.assessments.start_assessment(answers=data["answers"]).id
    )
    view = smith.views.draft_view(done.id)
    assert view.form is None and view.carried == () and not view.record.is_draft
    smith.close()


def test_draft_view_of_a_colleagues_draft_is_refused_once(vault_env: Any, v1_draft: str) -> None:
    jones = vault_env.session("drjones")
    before = len(
        repo.audit_events(raw_connection(jones), repo.AuditFilter(action="permission_denied"))
    )
    with pytest.raises(PermissionDenied):
        jones.views.draft_view(v1_draft)
    after = repo.audit_events(raw_connection(jones), repo.AuditFilter(action="permission_denied"))
    assert len(after) == before + 1
    jones.close()


# --------------------------------------------------------------------------- the wizard


def test_wizard_lists_the_changes_and_opens_the_first_step_with_an_error(
    qtbot: Any, vault_env: Any, v1_draft: str
) -> None:
    smith = vault_env.session("drsmith")
    wizard = AssessmentWizard(smith, start=False)
    qtbot.addWidget(wizard)
    wizard.resize(1280, 800)
    wizard.show()
    assert wizard.open_record(v1_draft)
    assert wizard.form is not None and wizard.form.version == 2
    ev = wizard.evaluation
    assert ev is not None and ev.errors
    first = next(e.step for e in ev.errors if e.step in ev.visible_steps)
    assert wizard.current_step_id == first
    banner = wizard.findChild(QWidget, "wizard.carried_notice")
    assert banner is not None and banner.isVisible()
    text = " ".join(wizard.banner_texts())
    assert "moved to version 2" in text
    assert "The views of the child or family" in text and "draft's history" in text
    assert "Parental factors" in text  # domestic abuse moved there
    # the new v2 questions are in the wizard, named by field id
    assert wizard.findChild(QWidget, "child_local_authority") is not None
    assert wizard.findChild(QWidget, "partner_age") is not None
    # leaving the first step hides the list
    wizard.go_to_step("concern" if first != "concern" else "urgency")
    assert not banner.isVisible()
    smith.close()


# --------------------------------------------------------------------------- the CLI


def test_cli_carries_a_v1_answers_file_and_names_v2_fields(
    vault_env: Any, capsys: Any, monkeypatch: Any, tmp_path: Path
) -> None:
    path = tmp_path / "v1.json"
    path.write_text(json.dumps({"form": FORM_ID, "answers": v1_answers()}))
    code, result = assess_json(vault_env, capsys, monkeypatch, path)
    assert code == 2
    fields = {e["field"] for e in result["errors"]}
    assert {"child_local_authority", "csc_status", "cpis_checked", "child_informed"} <= fields
    assert result["carried"]["from_version"] == 1 and result["carried"]["to_version"] == 2
    assert "patient_views" in result["carried"]["dropped"]
    smith = vault_env.session("drsmith")
    draft = smith.assessments.get_record(result["record_id"])
    assert draft.form_version == 2 and draft.answers["parents_informed"] == "no"
    assert any(h["field"] == "patient_views" for h in draft.answers[carry.HISTORY_KEY])
    smith.close()


def test_cli_rejects_a_file_without_form(
    vault_env: Any, capsys: Any, monkeypatch: Any, tmp_path: Path
) -> None:
    path = tmp_path / "no-form.json"
    path.write_text(json.dumps({"answers": {"child_given_name": "Sam"}}))
    monkeypatch.setenv("GPSHARE_PASSWORD", PASSWORDS["drsmith"])
    code = main(
        ["assess", "--vault", str(vault_env.folder), "--user", "drsmith", "--answers", str(path)]
    )
    err = capsys.readouterr().err
    assert code == 2 and 'no "form"' in err and '"form": "england-child-safeguarding"' in err


def test_cli_rejects_an_unknown_form_version(
    vault_env: Any, capsys: Any, monkeypatch: Any, tmp_path: Path
) -> None:
    path = tmp_path / "v9.json"
    path.write_text(json.dumps({"form": FORM_ID, "form_version": 9, "answers": {}}))
    monkeypatch.setenv("GPSHARE_PASSWORD", PASSWORDS["drsmith"])
    code = main(
        ["assess", "--vault", str(vault_env.folder), "--user", "drsmith", "--answers", str(path)]
    )
    assert code == 2 and "up to version 2" in capsys.readouterr().err
