"""The lead's integrity check (DESIGN §10.3): at each lead's sign-in, daily while the app is
open and on demand, on both engines, in a worker; its result stored as an audit event
(`audit_trail.last_integrity_check`) and shown on the lead's dashboard (pytest-qt)."""

from __future__ import annotations

import os
import threading
from pathlib import Path
from typing import Any

import pytest
from PySide6.QtWidgets import QApplication

from gpshare.errors import PermissionDenied
from gpshare.filters import AuditFilter
from gpshare.services import _integrity
from gpshare.ui.app import MainWindow
from gpshare.ui.audit_view import LeadWorkspace
from gpshare.ui.integrity_watch import DAILY_MS, IntegrityCard
from tests.test_integrity import _tamper
from tests.test_ui_lead import open_window
from tests.test_v2_records import ELLIE

both = pytest.mark.parametrize("vault_engine", ["sqlcipher", "postgres"], indirect=True)
pytestmark = pytest.mark.usefixtures("quiet_dialogs")


def _shot(widget: Any, name: str) -> None:
    # Screenshots for a person to look at, outside the repository, only when asked for.
    folder = os.environ.get("GPSHARE_SCREENSHOTS")
    if folder:
        Path(folder).mkdir(parents=True, exist_ok=True)
        QApplication.processEvents()
        widget.grab().save(str(Path(folder) / name))


def verify_threads(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Record the thread each whole-vault verify runs on (the GUI thread must never)."""
    threads: list[int] = []
    real = _integrity.verify

    def spy(*args: Any, **kwargs: Any) -> Any:
        threads.append(threading.get_ident())
        return real(*args, **kwargs)

    monkeypatch.setattr(_integrity, "verify", spy)
    return threads


def _checks(session: Any) -> int:
    return len(session.audit_trail.audit_log(AuditFilter(action="integrity_verified")))


# ----- the service: stored, read back, who may -------------------------------------------------
@both
def test_the_last_check_is_stored_and_read_back_by_leads_and_admins(vault_env_v2: Any) -> None:
    lead = vault_env_v2.session("lead")
    try:
        assert lead.audit_trail.last_integrity_check() is None
        report = lead.audit_trail.verify_integrity()
        last = lead.audit_trail.last_integrity_check()
        assert last is not None and last.ok and last.actor == "lead" and not last.problems
        assert (last.rows, last.witnesses) == (report.rows, report.witnesses)
        assert last.at.startswith(vault_env_v2.clock.now().date().isoformat())
    finally:
        lead.close()
    admin = vault_env_v2.session("admin")
    try:
        seen = admin.audit_trail.last_integrity_check()
        assert seen is not None and seen.seq == last.seq  # the practice's, not this session's
    finally:
        admin.close()
    smith = vault_env_v2.session("drsmith")
    try:
        with pytest.raises(PermissionDenied):
            smith.audit_trail.last_integrity_check()
    finally:
        smith.close()


def _tampered_practice(env: Any) -> str:
    """A completed record with an addendum, whose addendum row is then deleted outside
    gpshare (the embedded engine: the attacker holds the key); returns its object id."""
    from tests.storehelp import raw_connection

    smith = env.session("drsmith")
    try:
        record = smith.assessments.start_assessment(answers=ELLIE)
        rid = smith.assessments.complete(record.id)[0].id
        smith.assessments.add_addendum(rid, "Seen again at the nursery.")
    finally:
        smith.close()
    lead = env.session("lead")
    try:
        object_id = raw_connection(lead).execute("SELECT object_id FROM addenda").fetchone()[0]
        _tamper(lead, f"DELETE FROM addenda WHERE object_id = '{object_id}'")
    finally:
        lead.close()
    return str(object_id)


def test_a_failed_check_names_the_row_and_event_and_is_not_lost(vault_env_v2: Any) -> None:
    object_id = _tampered_practice(vault_env_v2)
    lead = vault_env_v2.session("lead")
    try:
        lead.audit_trail.verify_integrity()
        lead.audit_trail.verify_audit()  # a later, unrelated event does not hide it
        last = lead.audit_trail.last_integrity_check()
    finally:
        lead.close()
    assert last is not None and not last.ok
    assert any(object_id in p and "event" in p and "missing" in p for p in last.problems)


# ----- the app: at sign-in, daily, on demand ----------------------------------------------------
def _dashboard(qtbot: Any, win: MainWindow) -> IntegrityCard:
    page = win.navigate("lead_workspace")
    assert isinstance(page, LeadWorkspace)
    page.show_tab(page.tabs.indexOf(page.dashboard.parentWidget().parentWidget()))
    return page.dashboard.integrity_card


@both
def test_a_leads_sign_in_checks_in_a_worker_and_the_dashboard_shows_it(
    vault_env_v2: Any, qtbot: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    threads = verify_threads(monkeypatch)
    win = open_window(qtbot, vault_env_v2, "lead")
    watch = win.integrity_watch
    assert watch.busy or threads  # started at sign-in, without waiting for it
    card = _dashboard(qtbot, win)
    qtbot.waitUntil(lambda: not watch.busy and watch.last is not None, timeout=60000)
    gui = threading.get_ident()
    assert threads and gui not in threads  # nothing heavy on the GUI thread
    assert card.headline.text().startswith("Integrity checked ")
    assert "today: intact" in card.headline.text() and not card.failing
    assert card.check_button.isEnabled()
    _shot(win, f"integrity-1-intact-{vault_env_v2.folder.parent.name[-12:]}.png")
    session = win.session
    assert session is not None and _checks(session) == 1

    card.check_button.click()  # on demand
    assert watch.busy and not card.check_button.isEnabled()
    qtbot.waitUntil(lambda: not watch.busy, timeout=60000)
    assert watch.timer.isActive() and watch.timer.interval() == DAILY_MS
    watch.timer.timeout.emit()  # a day later, the app still open
    qtbot.waitUntil(lambda: not watch.busy, timeout=60000)
    assert _checks(session) == 3 and gui not in threads
    win.lock()
    assert not watch.timer.isActive() and watch.last is None


def test_a_failed_check_turns_the_card_red_naming_the_problem(
    vault_env_v2: Any, qtbot: Any
) -> None:
    object_id = _tampered_practice(vault_env_v2)
    win = open_window(qtbot, vault_env_v2, "lead")
    card = _dashboard(qtbot, win)
    qtbot.waitUntil(lambda: not win.integrity_watch.busy, timeout=60000)
    assert card.failing and "INTEGRITY CHECK FAILED" in card.headline.text()
    assert object_id in card.details.text() and "tell the practice manager" in card.details.text()
    assert not card.icon.isHidden()
    banner = win.notice_banner
    assert banner.isVisible() and "integrity check found a problem" in banner.text.text()
    _shot(win, "integrity-2-failed.png")
    win.lock()


def test_a_clinicians_sign_in_runs_no_check(vault_env_v2: Any, qtbot: Any) -> None:
    win = open_window(qtbot, vault_env_v2, "drsmith")
    assert not win.integrity_watch.busy and not win.integrity_watch.timer.isActive()
    win.lock()


def test_a_check_that_cannot_run_is_as_red_as_a_failure(
    vault_env_v2: Any, qtbot: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from gpshare.errors import StoreError

    def broken(*_args: Any, **_kwargs: Any) -> Any:
        raise StoreError("The practice server at host=server could not be reached.")

    monkeypatch.setattr(_integrity, "verify", broken)
    win = open_window(qtbot, vault_env_v2, "lead")
    card = _dashboard(qtbot, win)
    qtbot.waitUntil(lambda: not win.integrity_watch.busy, timeout=60000)
    assert card.failing and card.headline.text() == "INTEGRITY NOT CONFIRMED"
    assert "could not be reached" in card.details.text()
    assert "could not be reached" in win.notice_banner.text.text()
    _shot(win, "integrity-3-not-confirmed.png")
    win.lock()
