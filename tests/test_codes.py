"""SNOMED CT codes of a completed v2 record: reading them back, the online and proxy access
warning, the 'Codes to add to the GP record' panel with its Copy buttons, and the CSV column."""

from __future__ import annotations

import csv
import io
import json
from typing import Any

from PySide6.QtCore import Qt
from PySide6.QtGui import QGuiApplication
from PySide6.QtWidgets import QLabel, QPushButton, QTableWidget, QWidget

from gpshare import codes
from gpshare.cli import main
from gpshare.exports import records_csv
from gpshare.forms import FormError, load_form_by_id
from gpshare.records import ChildSummary, Record
from gpshare.ui.codes_panel import CodesPanel
from gpshare.ui.my_records import RecordView
from gpshare.ui.record_detail import RecordDetailView
from tests.conftest import PASSWORDS, SCENARIOS

CHILD = {
    "code": "836881000000105",
    "term": "Child is cause for safeguarding concern",
    "for": "child",
}
FAMILY = {
    "code": "1064961000000107",
    "term": "Child in family is safeguarding concern",
    "for": "Kerry Doe (mother)",
}
SEVERITIES = {"online_visibility": "warning", "online_visibility_critical": "critical"}


def outcome(
    *items: dict[str, str], prompts: tuple[str, ...] = ("online_visibility",)
) -> dict[str, Any]:
    return {"pathway": "referral", "prompts": list(prompts), "snomed_codes": list(items)}


# ----- reading the outcome ------------------------------------------------------------------------
def test_codes_are_read_back_as_strings_in_order():
    found = codes.suggested_codes(outcome(CHILD, FAMILY))
    assert [c.code for c in found or []] == ["836881000000105", "1064961000000107"]
    assert found is not None and found[1].for_whom == "Kerry Doe (mother)"
    assert found[0].to_json() == CHILD


def test_v1_outcome_has_no_codes_and_malformed_entries_are_skipped():
    assert codes.suggested_codes({"pathway": "referral", "prompts": []}) is None
    assert codes.suggested_codes(None) is None
    bad = outcome({"code": "", "term": "x", "for": "child"}, {"code": "12ab", "term": "y"}, "text")  # type: ignore[arg-type]
    assert codes.suggested_codes(bad) == []


def test_warning_is_critical_only_when_the_prompt_raised_is_critical():
    plain = codes.visibility_warning(outcome(CHILD), SEVERITIES)
    assert plain == "Hide this entry from online and proxy access when you add it."
    critical = outcome(CHILD, prompts=("online_visibility_critical",))
    assert codes.visibility_is_critical(critical, SEVERITIES)
    text = codes.visibility_warning(critical, SEVERITIES)
    assert text.startswith("Hide this entry from online and proxy access")
    assert "only after online and proxy access to the entry has been hidden" in text
    assert "safeguarding lead" in text
    # the same token counts as critical when the form gives it that severity
    assert codes.visibility_is_critical(outcome(CHILD), {"online_visibility": "critical"})
    assert not codes.visibility_is_critical(
        outcome(CHILD, prompts=()), {"online_visibility": "critical"}
    )


def test_codes_text_for_one_cell():
    assert codes.codes_text(outcome(CHILD, FAMILY)) == (
        "836881000000105 Child is cause for safeguarding concern (child); "
        "1064961000000107 Child in family is safeguarding concern (Kerry Doe (mother))"
    )
    assert codes.codes_text({"pathway": "monitor"}) == ""


# ----- the panel ----------------------------------------------------------------------------------
def test_panel_lists_each_code_and_copies_it(qtbot):
    panel = CodesPanel(outcome(CHILD, FAMILY), SEVERITIES)
    qtbot.addWidget(panel)
    panel.show()
    table = panel.findChild(QTableWidget, "codes.table")
    assert table.rowCount() == 2
    assert [table.item(1, c).text() for c in range(3)] == [
        "1064961000000107",
        "Child in family is safeguarding concern",
        "Kerry Doe (mother)",
    ]
    assert panel.warning.text() == codes.VISIBILITY_WARNING
    assert panel.warning.property("role") == "info"
    QGuiApplication.clipboard().clear()
    button = panel.findChild(QPushButton, "codes.copy.1")
    qtbot.mouseClick(button, Qt.MouseButton.LeftButton)
    assert QGuiApplication.clipboard().text() == "1064961000000107"
    assert "Copied 1064961000000107" in panel.status.text()
    table.cellWidget(0, 3).click()
    assert QGuiApplication.clipboard().text() == "836881000000105"


def test_panel_shows_the_critical_warning_as_an_error(qtbot):
    panel = CodesPanel(outcome(CHILD, prompts=("online_visibility_critical",)), SEVERITIES)
    qtbot.addWidget(panel)
    assert panel.critical
    assert panel.warning.property("role") == "error"
    assert "discuss the coding with your safeguarding lead" in panel.warning.text()


def test_panel_is_hidden_for_a_v1_record_and_says_so_when_empty(qtbot):
    page = QWidget()
    qtbot.addWidget(page)
    v1 = CodesPanel({"pathway": "referral", "prompts": []}, SEVERITIES, page)
    empty = CodesPanel(outcome(), SEVERITIES, page)
    page.show()
    assert not v1.isVisible()
    assert empty.isVisible()
    assert empty.status.text() == "No codes are suggested for this record."
    assert not empty.table.isVisible()


# ----- the CSV export -----------------------------------------------------------------------------
def record(rid: str, out: dict[str, Any] | None) -> Record:
    return Record(
        rid,
        "drsmith",
        "completed",
        "england-child-safeguarding",
        2,
        {"decision": "refer_csc"},
        None,
        out,
        "2026-11-25T10:00:00+00:00",
        "2026-11-25T10:00:00+00:00",
        "2026-11-25T10:00:00+00:00",
        ChildSummary("Amy", "Doe", "9434765919", "2019-03-02"),
    )


def test_csv_has_a_codes_column():
    data, count = records_csv(
        [
            (record("SG-AAAA-0001", outcome(CHILD, FAMILY)), None),
            (record("SG-AAAA-0002", None), None),
        ],
        include_narratives=False,
    )
    rows = list(csv.DictReader(io.StringIO(data.decode("utf-8-sig"))))
    assert count == 2
    assert rows[0]["snomed_codes"].startswith(
        "836881000000105 Child is cause for safeguarding concern (child); "
    )
    assert "1064961000000107" in rows[0]["snomed_codes"]
    assert rows[1]["snomed_codes"] == ""


# ----- completed v2 records: the author's view, the lead's view, the CLI and the export ------------
def v2_answers(**changes: Any) -> dict[str, Any]:
    path = SCENARIOS / "01-bruised-toddler-parents-agree.json"  # the v2 scenarios
    return json.loads(path.read_text(encoding="utf-8"))["answers"] | changes


def complete_v2(vault_env, **changes: Any) -> Record:
    smith = vault_env.session("drsmith")
    try:
        draft = smith.assessments.start_assessment(answers=v2_answers(**changes))
        return smith.assessments.complete(draft.id)[0]
    finally:
        smith.close()


def form_critical_message() -> str:
    """The v2 form's own critical wording for the online-visibility prompt."""
    form = load_form_by_id("england-child-safeguarding", 2)
    return next(p.critical_message for p in form.prompts if p.token == "online_visibility")


TOLD_NOBODY = {"parents_informed": "no", "parents_not_informed_reason": "increases_risk"}


def table_rows(panel: CodesPanel) -> list[list[str]]:
    table = panel.table
    return [[table.item(r, c).text() for c in range(3)] for r in range(table.rowCount())]


def test_author_sees_the_codes_of_a_completed_v2_record(qtbot, vault_env):
    record = complete_v2(vault_env)
    assert record.form_version == 2
    smith = vault_env.session("drsmith")
    try:
        view = RecordView(smith, smith.assessments.get_record(record.id))
        qtbot.addWidget(view)
        view.show()
        assert view.codes_panel.isVisible()
        rows = table_rows(view.codes_panel)
        assert ["836881000000105", "Child is cause for safeguarding concern", "child"] in rows
        assert any(r[0] == "1064961000000107" and "Kayleigh Marsh" in r[2] for r in rows)
        assert any(r[0] == "319951000000105" for r in rows)  # consent given
        assert view.codes_panel.warning.text() == codes.VISIBILITY_WARNING
        view.codes_panel.copy_buttons[0].click()
        assert QGuiApplication.clipboard().text() == "836881000000105"
    finally:
        smith.close()


def test_lead_sees_the_critical_warning_when_the_parents_were_not_told(qtbot, vault_env):
    record = complete_v2(vault_env, **TOLD_NOBODY)
    lead = vault_env.session("lead")
    try:
        detail = RecordDetailView(lead, record.id)
        qtbot.addWidget(detail)
        panel = detail.codes_panel
        assert panel.critical
        assert panel.warning.property("role") == "error"
        # in the form's own words, and said once (next to the codes), not again in the prompts
        critical = form_critical_message()
        assert panel.warning.text() == f"{codes.VISIBILITY_WARNING} {critical}"
        said = [w for w in detail.findChildren(QLabel) if critical in w.text()]
        assert said == [panel.warning]
        assert [r[0] for r in table_rows(panel)][0] == "836881000000105"
    finally:
        lead.close()


def test_show_json_and_text_carry_the_codes(vault_env, capsys, monkeypatch):
    record = complete_v2(vault_env, **TOLD_NOBODY)
    monkeypatch.setenv("GPSHARE_PASSWORD", PASSWORDS["lead"])
    args = ["show", record.id, "--vault", str(vault_env.folder), "--user", "lead"]
    assert main([*args, "--json"]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert shown["snomed_codes"] == record.outcome["snomed_codes"]
    assert all(isinstance(c["code"], str) for c in shown["snomed_codes"])
    assert shown["snomed_codes_warning"] == f"{codes.VISIBILITY_WARNING} {form_critical_message()}"
    assert main(args) == 0
    text = capsys.readouterr().out
    assert "== Codes to add to the GP record" in text
    assert "836881000000105  Child is cause for safeguarding concern  (for child)" in text


def test_records_csv_export_has_the_codes_of_v2_records(vault_env, tmp_path):
    record = complete_v2(vault_env)
    lead = vault_env.session("lead")
    try:
        out = tmp_path / "records.csv"
        assert lead.lead.export_records_csv(out) == 1
        rows = list(csv.DictReader(io.StringIO(out.read_text(encoding="utf-8-sig"))))
        assert rows[0]["record_id"] == record.id
        assert rows[0]["snomed_codes"] == codes.codes_text(record.outcome)
        assert "319951000000105 Consent given" in rows[0]["snomed_codes"]
    finally:
        lead.close()


def test_codes_still_show_when_the_records_form_cannot_be_read(qtbot, vault_env, monkeypatch):
    record = complete_v2(vault_env)  # parents told: the form would give the plain warning

    def unreadable(_record: Record) -> Any:
        raise FormError("england-child-safeguarding-v2.toml", None, "cannot be read")

    for user, make in (
        ("drsmith", lambda s: RecordView(s, s.assessments.get_record(record.id))),
        ("lead", lambda s: RecordDetailView(s, record.id)),
    ):
        session = vault_env.session(user)
        try:
            monkeypatch.setattr(session.assessments, "form_for", unreadable)
            view = make(session)
            qtbot.addWidget(view)
            assert view.form is None
            panel = view.codes_panel
            assert [r[0] for r in table_rows(panel)][0] == "836881000000105"
            assert panel.critical  # severity unknown: the safer warning
        finally:
            session.close()
