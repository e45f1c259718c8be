"""Plugging the wizard into the application shell (gpshare.ui.app.MainWindow).

- "new_assessment": an :class:`AssessmentWizard`. Before a lock it saves the draft and keeps
  only the draft's id in ``window.lock_state["wizard"]``; when the page is created again after
  the unlock it reopens that draft on the step it was saved on.
- "my_records" is installed by gpshare.ui.my_records (which opens a draft here with
  :func:`open_draft`); this module only refreshes it and points to it, by its page key, so
  the wizard and My records do not import each other in a circle (issue #12).

Other modules can react to a completed assessment (e.g. to preview the letter) with
:func:`add_completed_listener` (kept in gpshare.ui.events, re-exported here).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from PySide6.QtCore import QObject

from gpshare.ui.events import add_completed_listener as add_completed_listener
from gpshare.ui.events import assessment_completed
from gpshare.ui.events import remove_completed_listener as remove_completed_listener
from gpshare.ui.wizard.wizard import AssessmentWizard

if TYPE_CHECKING:
    from gpshare.services import Session
    from gpshare.ui.app import MainWindow

NEW_ASSESSMENT = "new_assessment"
MY_RECORDS = "my_records"
LOCK_STATE_KEY = "wizard"


class _WizardLink(QObject):
    """Connects one wizard page to the window; dies with the page, so do its connections."""

    def __init__(self, window: MainWindow, wizard: AssessmentWizard) -> None:
        super().__init__(wizard)
        self._window = window
        self._wizard = wizard
        window.about_to_lock.connect(self.save_for_lock)
        wizard.completed.connect(self.completed)
        wizard.draft_saved.connect(self.remember)
        wizard.record_opened.connect(self.remember)

    def remember(self, record_id: str) -> None:
        self._window.lock_state[LOCK_STATE_KEY] = {"record_id": record_id}

    def save_for_lock(self) -> None:
        """The session is still open: save the draft and remember which one it was."""
        wizard = self._wizard
        wizard.save_now()
        if wizard.current_record_id and not wizard.is_finished:
            self._window.lock_state[LOCK_STATE_KEY] = {"record_id": wizard.current_record_id}
        else:
            self._window.lock_state.pop(LOCK_STATE_KEY, None)

    def completed(self, record_id: str) -> None:
        self._window.lock_state.pop(LOCK_STATE_KEY, None)
        # My records (if open) lists the new record; by page key, not by importing the page.
        refresh = getattr(self._window.page(MY_RECORDS), "refresh", None)
        if callable(refresh):
            refresh()
        assessment_completed(self._window, self._wizard, record_id)


def wizard_page(session: Session, window: MainWindow) -> AssessmentWizard:
    """Factory for "new_assessment": resume the draft open before a lock, else start afresh."""
    wizard = AssessmentWizard(session, start=False)
    _WizardLink(window, wizard)
    state = window.lock_state.get(LOCK_STATE_KEY)
    record_id = state.get("record_id") if isinstance(state, dict) else None
    if not (isinstance(record_id, str) and wizard.open_record(record_id)):
        window.lock_state.pop(LOCK_STATE_KEY, None)
        wizard.start_new()
        _tell_about_drafts(session, window, wizard)
    return wizard


def _tell_about_drafts(session: Session, window: MainWindow, wizard: AssessmentWizard) -> None:
    """After a restart or a new sign-in, say how many of the user's drafts are in progress
    and offer to continue the latest (or see them all in My records)."""
    from gpshare.errors import StoreError

    try:
        drafts = session.views.drafts_summary()
    except StoreError:
        return  # the notice is a convenience; My records lists them anyway
    latest = drafts.latest
    if latest is None:
        return
    wizard.show_drafts_notice(
        drafts.count,
        latest.child.display_name,
        continue_latest=lambda: wizard.open_record(latest.id),
        show_all=lambda: window.navigate(MY_RECORDS),
    )


def open_draft(window: MainWindow, record_id: str) -> None:
    """Show the wizard page with this draft."""
    page = window.navigate(NEW_ASSESSMENT)
    if isinstance(page, AssessmentWizard):
        page.open_record(record_id)


def install(window: MainWindow) -> None:
    window.register_page(NEW_ASSESSMENT, wizard_page)
