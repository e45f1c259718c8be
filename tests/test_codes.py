"""SNOMED CT codes of a completed v2 record: reading them back, the online and proxy access
warning, the 'Codes to add to the GP record' panel with its Copy buttons, and the CSV column."""

from __future__ import annotations

import csv
import io
from typing import Any

from PySide6.QtCore import Qt
from PySide6.QtGui import QGuiApplication
from PySide6.QtWidgets import QPushButton, QTableWidget, QWidget

from gpshare import codes
from gpshare.exports import records_csv
from gpshare.records import ChildSummary, Record
from gpshare.ui.codes_panel import CodesPanel

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
