"""The safeguarding lead's workspace through the UI: needs action, follow-up, review, records
table (filters, incremental fetch, CSV export), chronology, dashboard and the audit chain."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest
from PySide6.QtCore import QDate, QDateTime, Qt, QTime
from PySide6.QtGui import QTextDocumentFragment
from PySide6.QtWidgets import QLabel

from gpshare.ui import dialogs
from gpshare.ui.app import MainWindow
from gpshare.ui.audit_view import LeadWorkspace, install
from gpshare.ui.record_detail import FollowUpDialog, RecordDetailView
from gpshare.ui.records_view import RecordsTableModel
from gpshare.ui.style import RED
from tests.conftest import PASSWORDS, SCENARIOS
from tests.storehelp import raw_connection

FRIDAY = datetime(2026, 11, 27, 15, 0, tzinfo=UTC)
TUESDAY = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)


@pytest.fixture(autouse=True)
def seam():
    dialogs.reset()
    dialogs.set_non_interactive(True)
    yield
    dialogs.reset()


def answers(name: str, **changes) -> dict:
    path = SCENARIOS / f"{name}.json"
    return json.loads(path.read_text())["answers"] | changes


def as_user(env, username, work):
    """Run `work(session)` in a session that is closed afterwards (the vault allows one at a time)."""
    session = env.session(username)
    try:
        return work(session)
    finally:
        session.close()


def complete(env, name, username="drsmith", **changes):
    def work(s):
        record = s.assessments.start_assessment(answers=answers(name, **changes))
        return s.assessments.complete(record.id)[0]

    return as_user(env, username, work)


def open_window(qtbot, env, username) -> MainWindow:
    win = MainWindow(clock=env.clock, vault_folder=env.folder)
    qtbot.addWidget(win)
    install(win)
    win.resize(1280, 800)
    win.show()
    w = win.unlock_widget
    w.username_edit.setText(username)
    w.password_edit.setText(PASSWORDS[username])
    w.unlock_button.click()
    assert win.session is not None and win.session.user.username == username
    return win


@pytest.fixture
def lead_window(qtbot, vault_env):
    def make() -> tuple[MainWindow, LeadWorkspace]:
        win = open_window(qtbot, vault_env, "lead")
        page = win.navigate("lead_workspace")
        assert isinstance(page, LeadWorkspace)
        settle(qtbot, page)
        return win, page

    return make


def settle(qtbot, ws) -> None:
    """Wait until the workspace's background tasks (worker threads) have delivered."""
    bars = (ws.needs.tasks, ws.dashboard.tasks, ws.audit.tasks, ws.records.tasks)
    qtbot.waitUntil(lambda: not any(bar.busy for bar in bars), timeout=10000)


def cells(table, row) -> list[str]:
    return [table.item(row, c).text() for c in range(table.columnCount())]


def column(table, col) -> list[str]:
    return [table.item(r, col).text() for r in range(table.rowCount())]


def model_column(model, col) -> list[str]:
    return [model.index(r, col).data() for r in range(model.rowCount())]


# ----- the lead's main flow ------------------------------------------------------------------------------
def test_overdue_referral_is_chased_decided_reviewed_and_exported(
    qtbot, vault_env, lead_window, tmp_path
):
    record = complete(vault_env, "01-bruised-toddler-parents-agree")
    vault_env.clock.current = FRIDAY
    as_user(
        vault_env,
        "drsmith",
        lambda s: s.referrals.record_followup(
            record.id, "sent", details={"method": "secure_email"}
        ),
    )
    vault_env.clock.current = TUESDAY  # acknowledgement was due on Monday
    win, ws = lead_window()

    # Needs action is the home tab: the referral is overdue, in red, with the words too.
    assert ws.tabs.currentIndex() == ws.NEEDS
    table, needs = ws.needs.table, ws.needs.model
    assert needs.rowCount() == 1
    row = [needs.index(0, c).data() for c in range(needs.columnCount())]
    assert row[0] == "30 Nov 2026 — overdue" and row[1] == "Chase acknowledgement of the referral"
    assert row[2] == "Ellie Marsh" and row[4] == record.id
    assert needs.index(0, 0).data(Qt.ItemDataRole.ForegroundRole).name().upper() == RED
    assert "1 overdue" in ws.needs.summary.text()

    # Enter opens it; opening is the audited view.
    table.setFocus()
    table.setCurrentIndex(needs.index(0, 0))
    qtbot.keyClick(table, Qt.Key.Key_Return)
    detail = ws.detail
    assert isinstance(detail, RecordDetailView) and ws.stack.currentWidget() is detail
    assert detail.status_chip.text() == "Sent — awaiting acknowledgement"
    assert "overdue" in detail.next_label.text()
    views = [
        e for e in win.session.lead.record_access_log(record.id) if e.action == "record_viewed"
    ]
    assert [e.actor for e in views] == ["lead"]

    # Acknowledgement (Monday 11:00), first trying a decision without choosing one: the
    # service's message is shown and the dialog stays open.
    def acknowledge(dialog: FollowUpDialog):
        dialog.event_choice.setCurrentIndex(dialog.event_choice.findData("decision"))
        dialog.save_button.click()
        assert dialog.isVisible() and "Choose the local authority's decision" in dialog.error.text()
        dialog.event_choice.setCurrentIndex(dialog.event_choice.findData("acknowledged"))
        assert dialog.decision.isHidden()
        dialog.at.setDateTime(QDateTime(QDate(2026, 11, 30), QTime(11, 0)))
        dialog.note.setPlainText("Duty social worker, Leeds front door")
        dialog.save_button.click()

    dialogs.set_next_dialog_handler(acknowledge)
    detail.followup_button.click()
    assert detail.status_chip.text() == "Acknowledged — awaiting decision"

    def decide(dialog: FollowUpDialog):
        assert (
            dialog.event_choice.currentData() == "decision"
        )  # the likely next event is preselected
        dialog.decision.setCurrentIndex(dialog.decision.findData("s47_enquiry"))
        dialog.save_button.click()

    dialogs.set_next_dialog_handler(decide)
    detail.followup_button.click()
    assert column(detail.followups_table, 1) == [
        "Referral sent",
        "Receipt acknowledged",
        "Local authority decision",
    ]
    assert detail.followups_table.item(2, 2).text() == "Child protection enquiry (s.47)"

    # The lead's review.
    panel = detail.review_panel
    panel.save_button.click()
    assert not panel.error.isHidden() and "Choose" in panel.error.text()
    panel.radios["reasonable"].click()
    panel.comments.setPlainText("Prompt referral with consent; good use of advice.")
    panel.learning.setPlainText("Share at the next practice meeting.")
    panel.save_button.click()
    assert panel.error.isHidden() and panel.history.rowCount() == 1

    # Stored through the services.
    s = win.session
    events = s.referrals.followups(record.id)
    assert [(e.event, e.decision, e.recorded_by) for e in events] == [
        ("sent", None, "drsmith"),
        ("acknowledged", None, "lead"),
        ("decision", "s47_enquiry", "lead"),
    ]
    assert (
        events[1].at == "2026-11-30T11:00:00+00:00"
        and events[1].note == "Duty social worker, Leeds front door"
    )
    state = s.referrals.referral_states([s.assessments.get_record(record.id, audit_view=False)])[
        record.id
    ]
    assert state.status == "outcome_recorded" and not state.overdue
    [review] = s.referrals.reviews(record.id)
    assert (review.verdict, review.reviewer) == ("reasonable", "lead")
    assert review.learning == "Share at the next practice meeting."

    # Back (Esc): needs action no longer lists it.
    qtbot.keyClick(detail, Qt.Key.Key_Escape)
    settle(qtbot, ws)
    assert ws.stack.currentWidget() is ws.home and ws.detail is None
    assert ws.needs.model.rowCount() == 0 and "Nothing needs action" in ws.needs.summary.text()

    # Export the records as CSV with narratives (file dialog through the seam).
    ws.show_tab(ws.RECORDS)
    assert ws.records.model.rowCount() == 1
    target = tmp_path / "export" / "records"
    target.parent.mkdir()

    def tick_narratives(dialog):
        assert "1</b> record matches the current filter" in dialog.summary.text()
        dialog.narratives.setChecked(True)
        dialog.export_button.click()

    dialogs.set_next_dialog_handler(tick_narratives)
    dialogs.set_next_answer(str(target))
    assert ws.records.export_csv() == target.with_name("records.csv")
    settle(qtbot, ws)
    text = target.with_name("records.csv").read_text(encoding="utf-8-sig")
    assert record.id in text and "grip pattern" in text
    exported = [e for e in s.audit_trail.audit_log() if e.action == "records_exported"]
    assert exported and exported[0].details["narratives"] is True
    assert "exported" in dialogs.last_shown("information").text


# ----- records table -------------------------------------------------------------------------------------
def test_records_filter_by_pathway_and_search_text(qtbot, vault_env, lead_window):
    complete(vault_env, "01-bruised-toddler-parents-agree")
    complete(vault_env, "02-teen-sexual-health-refuses", "drjones")
    complete(vault_env, "03-low-level-concern-monitor")
    as_user(
        vault_env,
        "drjones",
        lambda s: s.assessments.start_assessment(answers={"child_given_name": "Draft"}),
    )
    _win, ws = lead_window()
    ws.show_tab(ws.RECORDS)
    view, model = ws.records, ws.records.model
    assert model.rowCount() == 4
    assert "4 records" in view.count_label.text()
    row = {model.index(r, 1).data(): r for r in range(model.rowCount())}["Ellie Marsh"]
    assert model.index(row, RecordsTableModel.NHS).data() == "943 476 5870"
    assert model.index(row, RecordsTableModel.CLINICIAN).data() == "Dr Alex Smith"
    assert model.index(row, RecordsTableModel.STATUS).data() == "Not yet sent"
    assert "Completed — not yet sent" in model.index(row, RecordsTableModel.STATUS).data(
        Qt.ItemDataRole.ToolTipRole
    )

    bar = view.filters
    bar.pathway.setCurrentIndex(bar.pathway.findData("monitor"))
    assert model_column(model, RecordsTableModel.CHILD) == ["Mohammed Rahman"]
    assert model.index(0, RecordsTableModel.PATHWAY).data() == "Monitor"
    assert model.index(0, RecordsTableModel.DUE).data() == "15 Jan 2031"
    bar.clear()
    assert model.rowCount() == 4

    qtbot.keyClicks(bar.search, "grip pattern")  # words of the narrative (full-text search in SQL)
    qtbot.waitUntil(lambda: model.rowCount() == 1, timeout=3000)
    assert model_column(model, RecordsTableModel.CHILD) == ["Ellie Marsh"]
    bar.search.setText("nothingmatchesthis")
    bar.flush()
    assert model.rowCount() == 0 and "No records match" in view.count_label.text()
    bar.clear()

    bar.status.setCurrentIndex(bar.status.findData("draft"))
    assert model_column(model, RecordsTableModel.STATUS) == ["Draft"]
    bar.clear()
    bar.clinician.setCurrentIndex(bar.clinician.findData("drjones"))  # learnt from the loaded rows
    assert sorted(model_column(model, RecordsTableModel.CHILD)) == ["Draft", "Jade Okafor"]


def test_records_are_fetched_a_page_at_a_time(qtbot, vault_env, lead_window):
    def drafts(s):
        for i in range(45):
            s.assessments.start_assessment(answers={"child_given_name": f"Child{i:02d}"})

    as_user(vault_env, "drsmith", drafts)
    _win, ws = lead_window()
    model = RecordsTableModel(ws.session, page_size=20)
    model.set_filter(ws.records.filters.current()[0])
    assert model.rowCount() == 20 and model.canFetchMore() and model.count() == 45
    model.fetchMore()
    assert model.rowCount() == 40 and model.canFetchMore()
    model.fetchMore()
    assert model.rowCount() == 45 and not model.canFetchMore()
    assert len(set(model_column(model, RecordsTableModel.CHILD))) == 45 and model.count() == 45

    # In the workspace: the count says what is loaded; scrolling to the end loads the next page;
    # arrows move, Enter opens.
    view_ws = LeadWorkspace(ws.session, page_size=20)
    qtbot.addWidget(view_ws)
    view_ws.resize(1280, 800)
    view_ws.show()
    view_ws.show_tab(view_ws.RECORDS)
    view = view_ws.records
    loaded = view.model.rowCount()
    assert 20 <= loaded < 45
    assert (
        view.count_label.text()
        == f"Showing the {loaded} most recently changed records — more load as you scroll"
    )
    view.table.verticalScrollBar().setValue(view.table.verticalScrollBar().maximum())
    qtbot.waitUntil(lambda: view.model.rowCount() > loaded, timeout=3000)
    view.table.setFocus()
    view.table.setCurrentIndex(view.model.index(0, 0))
    qtbot.keyClick(view.table, Qt.Key.Key_Down)
    second = view.model.record_id(1)
    qtbot.keyClick(view.table, Qt.Key.Key_Return)
    assert view_ws.detail is not None and view_ws.detail.record.id == second


# ----- audit ------------------------------------------------------------------------------------------------
def test_audit_tab_shows_intact_then_broken_after_tampering(
    qtbot, vault_env, lead_window, tmp_path
):
    _win, ws = lead_window()
    ws.show_tab(ws.AUDIT)
    audit = ws.audit
    assert audit.model.rowCount() > 0
    audit.verify_button.click()
    settle(qtbot, ws)
    assert audit.chain.text().startswith("Intact: ") and "events, last at" in audit.chain.text()
    assert audit.chain.property("role") == "success"

    conn = raw_connection(ws.session)
    conn.execute("DROP TRIGGER audit_no_update")
    conn.execute("UPDATE audit SET actor = 'mallory' WHERE seq = 3")
    audit.verify_button.click()
    settle(qtbot, ws)
    assert audit.chain.text().lower().startswith("broken at event 3")
    assert audit.chain.property("role") == "error"
    assert "altered" in audit.chain_advice.text()
    row = [audit.model.index(r, 0).data() for r in range(audit.model.rowCount())].index("3")
    assert audit.model.index(row, 2).data() == "mallory"
    assert audit.model.index(row, 2).data(Qt.ItemDataRole.ForegroundRole).name().upper() == RED

    audit.actor.setEditText("mallory")
    audit.reload()
    assert [audit.model.index(r, 0).data() for r in range(audit.model.rowCount())] == ["3"]

    target = tmp_path / "audit.pdf"
    dialogs.set_next_answer(str(target))
    assert audit.export_pdf() == target
    settle(qtbot, ws)
    assert target.read_bytes().startswith(b"%PDF")


# ----- dashboard -----------------------------------------------------------------------------------------------
def test_dashboard_numbers_on_a_known_data_set(qtbot, vault_env, lead_window):
    a = complete(vault_env, "01-bruised-toddler-parents-agree")
    complete(vault_env, "02-teen-sexual-health-refuses")
    complete(vault_env, "03-low-level-concern-monitor")
    vault_env.clock.advance(3600 * 2)
    as_user(vault_env, "drsmith", lambda s: s.referrals.record_followup(a.id, "sent"))
    vault_env.clock.advance(3600 * 4)
    as_user(vault_env, "drsmith", lambda s: s.referrals.record_followup(a.id, "acknowledged"))
    _win, ws = lead_window()
    ws.show_tab(ws.DASHBOARD)
    settle(qtbot, ws)
    d = ws.dashboard
    values = {name: tile.value.text() for name, tile in d.tiles.items()}
    assert values == {
        "completed": "3",
        "shared": "2",
        "shared_without_consent": "1",
        "median_send": "2.0 h",
        "median_ack": "4.0 h",
        "overdue": "0",
    }
    assert "67%" in d.tiles["shared"].caption.text()
    assert d.pathway_chart.totals()["2026-11"] == 3
    assert d.pathway_chart.values["2026-11"] == {"referral": 2, "monitor": 1}
    assert d.consent_chart.values["2026-11"] == {
        "consent_given": 1,
        "shared_without_consent_refused": 1,
        "not_applicable": 1,
    }
    assert "Nov 26: Referral 2" in d.pathway_chart.accessibleDescription()
    d.pathway_chart.grab()  # paints without error


# ----- chronology ------------------------------------------------------------------------------------------------
def test_chronology_shows_the_childs_records_and_a_sibling_to_confirm(
    qtbot, vault_env, lead_window
):
    first = complete(vault_env, "03-low-level-concern-monitor")
    second = complete(vault_env, "03-low-level-concern-monitor", prior_concerns_acknowledged=True)
    sibling = complete(
        vault_env,
        "03-low-level-concern-monitor",
        nhs_number="9990000018",
        child_given_name="Yusuf",
        date_of_birth="2018-05-05",
    )
    complete(vault_env, "01-bruised-toddler-parents-agree")
    _win, ws = lead_window()
    detail = ws.open_record(second.id)
    assert detail is not None
    detail.chronology_button.click()
    assert ws.tabs.currentIndex() == ws.CHRONOLOGY and ws.stack.currentWidget() is ws.home
    chron = ws.chronology
    assert chron.title.text() == "Child chronology — Mohammed Rahman"
    record_rows = [
        r for r in range(chron.table.rowCount()) if chron.table.item(r, 1).text() == "Assessment"
    ]
    assert {chron.table.item(r, 3).text() for r in record_rows} == {first.id, second.id}
    assert any(t.startswith("Review date") for t in column(chron.table, 1))
    assert "2 concerns recorded about this child" in chron.pattern.text()
    assert chron.links_table.rowCount() == 1
    link = cells(chron.links_table, 0)
    assert link[0] == "Yusuf Rahman" and link[2] == sibling.id and link[6] == "To confirm"
    assert "same parent/carer" in link[4] and "same address" in link[4]
    viewed = [e for e in ws.session.audit_trail.audit_log() if e.action == "chronology_viewed"]
    assert [e.record_id for e in viewed] == [second.id]

    # The lead confirms the suggested link; the table shows it and the service stored it.
    chron.links_table.setCurrentCell(0, 0)
    chron.same_button.click()
    assert cells(chron.links_table, 0)[6] == "Same household"
    assert [link.status for link in ws.session.lead.child_chronology(second.id)[1]] == [
        "same_household"
    ]

    # Opening the linked sibling from the chronology.
    chron.links_table.setCurrentCell(0, 0)
    chron.links_table.setFocus()
    qtbot.keyClick(chron.links_table, Qt.Key.Key_Enter)
    assert ws.detail is not None and ws.detail.record.id == sibling.id


# ----- record detail ----------------------------------------------------------------------------------------------
def test_record_detail_shows_answers_with_form_labels_addenda_and_access_log(
    qtbot, vault_env, lead_window
):
    record = complete(vault_env, "01-bruised-toddler-parents-agree")
    _win, ws = lead_window()
    ws.show_tab(ws.RECORDS)
    ws.records.table.setCurrentIndex(ws.records.model.index(0, 0))
    ws.records.table.doubleClicked.emit(ws.records.model.index(0, 0))
    detail = ws.detail
    assert detail is not None and detail.record.id == record.id
    text = detail.answers.toPlainText()
    for expected in (
        "1. The child",
        "943 476 5870",
        "14 Mar 2024",
        "Kayleigh Marsh",
        "Physical abuse",
        "grip pattern",
        "Female",
    ):
        assert expected in text, expected
    assert "physical\n" not in text and "refer_csc" not in text
    outcome = QTextDocumentFragment.fromHtml(
        detail.findChild(QLabel, "detail.outcome").text()
    ).toPlainText()
    assert "Refer to children's social care" in outcome and "Shared with consent" in outcome

    # Addendum: empty is refused with the service's message; then stored.
    def empty(dialog):
        dialog.save_button.click()
        assert dialog.isVisible() and "empty" in dialog.error.text()
        dialog.text.setPlainText("Mother phoned: family staying with grandmother.")
        dialog.save_button.click()

    dialogs.set_next_dialog_handler(empty)
    detail.addendum_button.click()
    assert "grandmother" in detail.addenda_view.toPlainText()
    assert [a.author for a in ws.session.assessments.addenda(record.id)] == ["lead"]

    # The record's own access log.
    detail.tabs.setCurrentIndex(5)
    actions = column(detail.access_table, 2)
    assert {"Record viewed", "Record completed", "Addendum added"} <= set(actions)
    assert "Dr Priya Natarajan" in column(detail.access_table, 1)

    # A follow-up the service refuses (acknowledged before sent): message shown, nothing stored.
    def refused(dialog):
        dialog.event_choice.setCurrentIndex(dialog.event_choice.findData("acknowledged"))
        dialog.save_button.click()
        assert "before recording its acknowledgement" in dialog.error.text()
        dialog.reject()

    dialogs.set_next_dialog_handler(refused)
    detail.followup_button.click()
    assert ws.session.referrals.followups(record.id) == []


# ----- clinicians ---------------------------------------------------------------------------------------------------
def test_a_clinician_never_gets_the_lead_workspace(qtbot, vault_env):
    other = complete(vault_env, "01-bruised-toddler-parents-agree", "drjones")
    win = open_window(qtbot, vault_env, "drsmith")
    assert "lead_workspace" not in win.visible_nav_keys()
    assert win.navigate("lead_workspace") is None and win.page("lead_workspace") is None

    # Even built directly, the services refuse and the page shows their messages (no traceback).
    ws = LeadWorkspace(win.session)
    qtbot.addWidget(ws)
    ws.show()
    ws.show_tab(ws.DASHBOARD)
    settle(qtbot, ws)
    assert ws.dashboard.error.isVisible() and "Not permitted" in ws.dashboard.error.text()
    ws.show_tab(ws.AUDIT)
    assert "Not permitted" in ws.audit.error.text()
    ws.audit.verify_button.click()
    settle(qtbot, ws)
    shown = dialogs.last_shown("error")
    assert shown is not None and "Not permitted" in shown.text
    assert ws.open_record(other.id) is None
    assert "only open your own records" in dialogs.last_shown("error").text
    ws.chronology.set_record(other.id)
    ws.show_tab(ws.CHRONOLOGY)
    assert "Not permitted" in ws.chronology.error.text()
    denied = {
        e.details.get("attempted")
        for e in as_audit(vault_env, win)
        if e.action == "permission_denied"
    }
    assert {"dashboard", "read_audit_log", "verify_audit", "view_record"} <= denied


def as_audit(env, win):
    win.lock()
    return as_user(env, "admin", lambda s: s.audit_trail.audit_log(limit=None))


def test_workspace_is_rebuilt_after_lock_and_unlock(qtbot, vault_env, lead_window):
    win, ws = lead_window()
    win.lock()
    assert win.page("lead_workspace") is None
    w = win.unlock_widget
    w.username_edit.setText("lead")
    w.password_edit.setText(PASSWORDS["lead"])
    w.unlock_button.click()
    page = win.navigate("lead_workspace")
    assert isinstance(page, LeadWorkspace) and page is not ws


def test_answers_unknown_to_the_form_are_still_shown():
    from gpshare.forms import load_form_by_id
    from gpshare.ui.record_detail import answers_html

    form = load_form_by_id("england-child-safeguarding")
    html = answers_html(form, {"child_given_name": "Zoë", "legacy_flag": "kept <b>as text</b>"})
    assert "Zoë" in html and "Other answers (not in this form version)" in html
    assert "legacy_flag" in html and "&lt;b&gt;as text&lt;/b&gt;" in html
    missing = answers_html(None, {"decision": "monitor"}, "forms/old.toml: not found")
    assert "could not be loaded" in missing and "monitor" in missing and "not found" in missing
