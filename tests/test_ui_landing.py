"""Each role lands on its work: the lead on Needs action (with a count), a clinician with
drafts in progress is told so and can continue the latest."""

from __future__ import annotations

import json

import pytest

from gpshare.ui.app import MainWindow, install_page_modules
from gpshare.ui.wizard.wizard import AssessmentWizard
from tests.conftest import SCENARIOS

pytestmark = pytest.mark.usefixtures("quiet_dialogs")


def window_for(qtbot, vault_env, clock, username):
    window = MainWindow(clock=clock, vault_folder=vault_env.folder)
    qtbot.addWidget(window)
    install_page_modules(window)
    window.show()
    window.start_session(vault_env.session(username))
    return window


def test_the_lead_lands_on_needs_action_with_a_count(qtbot, vault_env, clock):
    smith = vault_env.session("drsmith")
    data = json.loads((SCENARIOS / "01-bruised-toddler-parents-agree.json").read_text())
    draft = smith.assessments.start_assessment(answers=data["answers"])
    smith.assessments.complete(draft.id)  # a letter to send: one item needs action
    smith.close()
    window = window_for(qtbot, vault_env, clock, "lead")
    assert window.current_page_key == "lead_workspace"
    workspace = window.page("lead_workspace")
    assert workspace.tabs.currentWidget() is workspace.needs
    # The list is worked out off the GUI thread: the count arrives when the worker finishes.
    qtbot.waitUntil(
        lambda: workspace.tabs.tabText(workspace.tabs.currentIndex()) == "&Needs action (1)",
        timeout=10_000,
    )
    assert window.nav_button("lead_workspace").text().endswith("(1)")
    window.lock()


def test_a_clinician_is_told_about_drafts_and_can_continue(qtbot, vault_env, clock):
    smith = vault_env.session("drsmith")
    first = smith.assessments.start_assessment(
        answers={"child_given_name": "Ada", "child_family_name": "Ng"}
    )
    smith.assessments.save_draft(first.id, first.answers, "child")
    smith.close()
    window = window_for(qtbot, vault_env, clock, "drsmith")
    wizard = window.page("new_assessment")
    assert isinstance(wizard, AssessmentWizard)
    assert wizard.current_record_id is None  # a fresh assessment, not the draft
    assert "You have 1 draft in progress" in wizard.drafts_notice_text()
    assert "Ada Ng" in wizard.drafts_notice_text()
    resume = wizard.findChild(type(wizard.next_button), "wizard.continue_draft")
    resume.click()
    assert wizard.current_record_id == first.id
    assert wizard.drafts_notice_text() == ""
    window.lock()
