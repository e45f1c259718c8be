"""My records: the user's own drafts and completed records; opening them (pytest-qt, offscreen)."""

from __future__ import annotations

import json
from typing import Any

import pytest
from PySide6.QtCore import Qt
from PySide6.QtTest import QTest
from PySide6.QtWidgets import QDialog, QPlainTextEdit, QPushButton, QWidget

from gpshare.forms import FormError
from gpshare.ui import dialogs
from gpshare.ui.my_records import MyRecordsPage, RecordView
from gpshare.ui.wizard.wizard import AssessmentWizard
from tests.conftest import SCENARIOS


def answers(name: str) -> dict[str, Any]:
    path = SCENARIOS / f"{name}.json"
    return json.loads(path.read_text(encoding="utf-8"))["answers"]


pytestmark = pytest.mark.usefixtures("quiet_dialogs")


@pytest.fixture
def records(vault_env):
    """drsmith: one completed referral, one draft; drjones and the lead: one record each."""
    smith = vault_env.session("drsmith")
    done = smith.assessments.start_assessment(answers=answers("01-bruised-toddler-parents-agree"))
    smith.assessments.complete(done.id)
    vault_env.clock.advance(60)
    draft = smith.assessments.start_assessment(
        answers={"child_given_name": "Siân", "child_family_name": "Ó Briain"}
    )
    smith.assessments.save_draft(
        draft.id,
        {"child_given_name": "Siân", "child_family_name": "Ó Briain", "immediate_danger": False},
        "urgency",
    )
    smith.close()
    jones = vault_env.session("drjones")
    other = jones.assessments.start_assessment(
        answers={"child_given_name": "Jade", "child_family_name": "Okafor"}
    )
    jones.close()
    lead = vault_env.session("lead")
    leads = lead.assessments.start_assessment(
        answers={"child_given_name": "Mohammed", "child_family_name": "Rahman"}
    )
    lead.close()
    return {"completed": done.id, "draft": draft.id, "jones": other.id, "lead": leads.id}


@pytest.fixture
def smith(vault_env, records):
    session = vault_env.session("drsmith")
    yield session
    if session.is_open:
        session.close()


def make_page(qtbot, session, **kwargs: Any) -> MyRecordsPage:
    page = MyRecordsPage(session, **kwargs)
    qtbot.addWidget(page)
    page.resize(1100, 700)
    page.show()
    qtbot.waitExposed(page)
    return page


def test_lists_only_the_users_own_records(qtbot, smith, records):
    page = make_page(qtbot, smith)
    assert sorted(page.record_ids()) == sorted([records["completed"], records["draft"]])
    table = page.findChild(QWidget, "my_records.table")
    model = table.model()
    assert model.rowCount() == 2
    assert [model.headerData(c, Qt.Orientation.Horizontal) for c in range(4)] == [
        "Date",
        "Child",
        "Status",
        "Pathway",
    ]
    rows = {
        model.index(r, 4).data(): [model.index(r, c).data() for c in range(4)] for r in range(2)
    }
    assert rows[records["draft"]][1] == "Siân Ó Briain"
    assert rows[records["draft"]][2:] == ["Draft", "In progress"]
    assert rows[records["completed"]][1] == "Ellie Marsh  ·  943 476 5870"
    assert rows[records["completed"]][2:] == ["Completed", "Referral"]
    assert "25 Nov 2026" in rows[records["completed"]][0]


def test_a_lead_sees_only_their_own_records_here(qtbot, vault_env, records):
    lead = vault_env.session("lead")
    try:
        page = make_page(qtbot, lead)
        assert page.record_ids() == [records["lead"]]
    finally:
        lead.close()


def test_filters_by_status_name_and_reference(qtbot, smith, records):
    page = make_page(qtbot, smith)
    status = page.findChild(QWidget, "my_records.status")
    status.setCurrentIndex(status.findData("draft"))
    assert page.record_ids() == [records["draft"]]
    status.setCurrentIndex(status.findData("completed"))
    assert page.record_ids() == [records["completed"]]
    status.setCurrentIndex(0)
    search = page.findChild(QWidget, "my_records.filter")
    search.setText("Ellie")
    page.refresh()
    assert page.record_ids() == [records["completed"]]
    search.setText(records["draft"].lower())
    page.refresh()
    assert page.record_ids() == [records["draft"]]
    search.setText("943 476 5870")
    page.refresh()
    assert page.record_ids() == [records["completed"]]
    search.setText("nobody-here")
    page.refresh()
    assert page.record_ids() == []
    assert page.findChild(QWidget, "my_records.empty").isVisible()


def test_opening_a_draft_asks_for_the_wizard(qtbot, smith, records):
    opened: list[str] = []
    page = make_page(qtbot, smith, open_draft=opened.append)
    row = page.record_ids().index(records["draft"])
    page.table.selectRow(row)
    with qtbot.waitSignal(page.draft_requested) as signal:
        qtbot.mouseClick(page.findChild(QPushButton, "my_records.open"), Qt.MouseButton.LeftButton)
    assert signal.args == [records["draft"]]
    assert opened == [records["draft"]]


def test_opening_a_draft_in_the_app_resumes_it_on_its_step(qtbot, vault_env, records, clock):
    from gpshare.ui import my_records
    from gpshare.ui.app import MainWindow
    from gpshare.ui.wizard import install

    window = MainWindow(clock=clock)
    qtbot.addWidget(window)
    install(window)
    my_records.install(window)  # My records installs its own page (no import circle)
    window.start_session(vault_env.session("drsmith"))
    page = window.navigate("my_records")
    assert isinstance(page, MyRecordsPage)
    page.open_record(records["draft"])
    wizard = window.page("new_assessment")
    assert isinstance(wizard, AssessmentWizard)
    assert window.current_page_key == "new_assessment"
    assert wizard.current_record_id == records["draft"]
    assert wizard.current_step_id == "urgency"
    assert wizard.answers()["child_family_name"] == "Ó Briain"
    window.lock()
    window.close()


def test_completed_record_opens_read_only_with_outcome_answers_and_addenda(qtbot, smith, records):
    page = make_page(qtbot, smith)
    row = page.record_ids().index(records["completed"])
    page.table.selectRow(row)
    QTest.keyClick(page.table, Qt.Key.Key_Return)
    view = page.findChild(RecordView, "record_view")
    assert view is not None and view.isVisible()
    assert "Referral" in view.findChild(QWidget, "record_view.outcome").text()
    assert (
        "Consent was given by Kayleigh Marsh"
        in view.findChild(QWidget, "record_view.statement").text()
    )
    child = view.findChild(QWidget, "record_view.step.child").text()
    assert "943 476 5870" in child and "Kayleigh Marsh" in child and "14 Mar 2024" in child
    sharing = view.findChild(QWidget, "record_view.step.sharing").text()
    assert "Secure email" in sharing  # option labels, not tokens
    assert "version 2" in view.findChild(QWidget, "record_view.meta").text()  # newest form
    # nothing to edit
    assert view.findChildren(QPlainTextEdit) == []

    def fill(dialog: QDialog) -> None:
        dialog.findChild(QPlainTextEdit, "addendum.text").setPlainText(
            "Strategy meeting held 27/11; CP medical booked."
        )
        dialog.findChild(QPushButton, "addendum.ok").click()

    dialogs.set_next_dialog_handler(fill)
    qtbot.mouseClick(
        view.findChild(QPushButton, "record_view.add_addendum"), Qt.MouseButton.LeftButton
    )
    assert "Strategy meeting held 27/11" in view.findChild(QWidget, "record_view.addenda").text()
    assert [a.body for a in smith.assessments.addenda(records["completed"])] == [
        "Strategy meeting held 27/11; CP medical booked."
    ]

    qtbot.mouseClick(view.findChild(QPushButton, "record_view.back"), Qt.MouseButton.LeftButton)
    assert page.table.isVisible()


def test_empty_addendum_is_refused_inside_the_dialog(qtbot, smith, records):
    page = make_page(qtbot, smith)
    page.open_record(records["completed"])
    view = page.view
    assert view is not None
    seen: dict[str, str] = {}

    def submit_empty(dialog: QDialog) -> None:
        dialog.findChild(QPushButton, "addendum.ok").click()
        seen["error"] = dialog.findChild(QWidget, "addendum.error").text()

    dialogs.set_next_dialog_handler(submit_empty)
    view.add_addendum()
    assert "empty" in seen["error"]
    assert smith.assessments.addenda(records["completed"]) == []


def test_record_whose_form_version_is_missing_is_still_readable(qtbot, smith, records, monkeypatch):
    def missing(record):
        raise FormError(
            "england-child-safeguarding.toml",
            None,
            "no form 'england-child-safeguarding' version 1",
        )

    monkeypatch.setattr(smith.assessments, "form_for", missing)
    page = make_page(qtbot, smith)
    page.open_record(records["completed"])
    view = page.view
    assert view is not None
    assert "cannot be loaded" in view.findChild(QWidget, "record_view.form_problem").text()
    assert "Ellie" in view.findChild(QWidget, "record_view.other").text()
