"""The GP's whole flow in the real main window: unlock, assess, complete, signed letter preview."""

from __future__ import annotations

import hashlib

import pytest
from PySide6.QtCore import Qt

from gpshare.ui import dialogs
from gpshare.ui.app import MainWindow, install_page_modules
from gpshare.ui.letter_view import LetterView
from gpshare.ui.wizard.wizard import SUMMARY, AssessmentWizard
from tests.conftest import PASSWORDS
from tests.test_ui_wizard import scenario, walk_and_fill, widget


@pytest.fixture(autouse=True)
def scripted_dialogs():
    dialogs.reset()
    dialogs.set_non_interactive(True)
    yield
    dialogs.reset()


def test_clinician_completes_a_referral_and_the_signed_letter_opens(qtbot, vault_env, clock):
    window = MainWindow(clock=clock, vault_folder=vault_env.folder)
    qtbot.addWidget(window)
    install_page_modules(window)
    window.show()
    unlock = window.unlock_widget
    unlock.username_edit.setText("drsmith")
    unlock.password_edit.setText(PASSWORDS["drsmith"])
    unlock.unlock_button.click()
    assert window.session is not None and window.session.user.username == "drsmith"

    wizard = window.navigate("new_assessment")
    assert isinstance(wizard, AssessmentWizard)
    walk_and_fill(
        qtbot, wizard, scenario("01-bruised-toddler-parents-agree")["answers"], typed=False
    )
    assert wizard.current_step_id == SUMMARY

    opened: list[LetterView] = []
    original_init = LetterView.__init__

    def spy(self, *args, **kwargs):  # type: ignore[no-untyped-def]
        original_init(self, *args, **kwargs)
        opened.append(self)

    LetterView.__init__ = spy  # type: ignore[method-assign]
    try:
        dialogs.set_next_answer(PASSWORDS["drsmith"])  # the signing password prompt
        qtbot.mouseClick(widget(wizard, "wizard.complete"), Qt.MouseButton.LeftButton)
    finally:
        LetterView.__init__ = original_init  # type: ignore[method-assign]

    session = window.session
    record = session.assessments.get_record(wizard.current_record_id, audit_view=False)
    assert record.status == "completed" and record.pathway == "referral"
    letters = session.letters.list_letters(record.id)
    assert len(letters) == 1
    assert opened, "the letter preview did not open after completion"
    view = opened[-1]
    assert view.page_count >= 2
    assert hashlib.sha256(view.result.pdf).hexdigest() == letters[0].sha256
    prompt = dialogs.last_shown("password")
    assert prompt is not None and "password" in prompt.text.lower()
    window.lock()  # patient data leaves the screen: the preview is closed and deleted
    from shiboken6 import isValid

    qtbot.waitUntil(lambda: not isValid(view) or not view.isVisible(), timeout=3000)


def test_after_unlock_the_cursor_is_in_the_first_field(qtbot, vault_env, clock):
    from PySide6.QtWidgets import QApplication

    window = MainWindow(clock=clock, vault_folder=vault_env.folder)
    qtbot.addWidget(window)
    install_page_modules(window)
    window.show()
    qtbot.waitExposed(window)
    unlock = window.unlock_widget
    unlock.username_edit.setText("drsmith")
    unlock.password_edit.setText(PASSWORDS["drsmith"])
    unlock.unlock_button.click()
    wizard = window.navigate("new_assessment")
    nhs = widget(wizard, "nhs_number")
    qtbot.waitUntil(
        lambda: (
            QApplication.focusWidget() is not None
            and (QApplication.focusWidget() is nhs or nhs.isAncestorOf(QApplication.focusWidget()))
        ),
        timeout=3000,
    )
    window.lock()
