"""Slow lead-workspace work runs in a worker thread with its own connection, reports progress,
can be cancelled, and its results arrive on the GUI thread."""

from __future__ import annotations

import threading

import pytest
from PySide6.QtCore import QTimer

from gpshare.errors import Cancelled
from gpshare.services import Session
from gpshare.store.sqlcipher import db
from gpshare.ui.worker import Task, TaskBar
from tests.storehelp import raw_connection

# A query that runs for minutes unless interrupted.
ENDLESS = (
    "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n) "
    "SELECT count(*) FROM n WHERE i < 0"
)


@pytest.fixture
def lead(vault_env):
    s = vault_env.session("lead")
    yield s
    s.close()


def test_result_arrives_from_a_worker_thread_on_its_own_connection(qtbot, lead):
    bar = TaskBar("t")
    qtbot.addWidget(bar)
    seen: dict[str, object] = {}

    def work(worker: Session, ctx) -> int:
        seen["thread"] = threading.get_ident()
        seen["conn"] = raw_connection(worker)
        ctx.progress(1, 2)
        return len(worker.referrals.needs_action())

    results: list[int] = []
    bar.start(lead, "Working…", work, results.append, pytest.fail)
    assert bar.busy and bar.isVisibleTo(None) is not None
    qtbot.waitUntil(lambda: results == [0], timeout=10000)
    assert seen["thread"] != threading.get_ident()
    assert seen["conn"] is not raw_connection(lead)
    assert not bar.busy


def test_cancel_stops_a_running_query_and_the_gui_keeps_running(qtbot, lead):
    bar = TaskBar("t")
    qtbot.addWidget(bar)
    started = threading.Event()

    def work(worker: Session, _ctx) -> int:
        started.set()
        return int(raw_connection(worker).execute(ENDLESS).fetchone()[0])

    ticks: list[int] = []
    timer = QTimer()
    timer.timeout.connect(lambda: ticks.append(1))
    timer.start(10)
    results: list[object] = []
    errors: list[object] = []
    cancelled: list[bool] = []
    task = bar.start(
        lead, "Working…", work, results.append, errors.append, lambda: cancelled.append(True)
    )
    qtbot.waitUntil(started.is_set, timeout=10000)
    qtbot.wait(200)
    assert len(ticks) >= 3  # the event loop ran while the worker was busy
    finished = threading.Event()
    task.signals.done.connect(lambda _t: finished.set())
    bar.cancel_button.click()
    assert not bar.busy and bar.isHidden()
    qtbot.waitUntil(finished.is_set, timeout=10000)  # the query was interrupted, not left running
    qtbot.wait(50)
    timer.stop()
    assert results == [] and errors == []


def test_closing_the_session_interrupts_its_workers(qtbot, lead):
    worker = lead.worker_session()
    outcome: list[str] = []

    def run() -> None:
        try:
            raw_connection(worker).execute(ENDLESS).fetchone()
            outcome.append("finished")
        except db.DatabaseError as exc:
            outcome.append(str(exc))

    thread = threading.Thread(target=run)
    thread.start()
    qtbot.wait(200)
    lead.close()
    thread.join(10)
    assert not thread.is_alive() and outcome == ["interrupted"]
    worker.close()


def test_export_reports_progress_and_cancelling_leaves_nothing(vault_env, tmp_path):
    from tests.test_referral_states import complete

    s = vault_env.session("drsmith")
    for _ in range(3):
        complete(s, "01-bruised-toddler-parents-agree")
    s.close()
    lead = vault_env.session("lead")
    steps: list[tuple[int, int]] = []
    target = tmp_path / "all.csv"
    assert lead.lead.export_records_csv(target, progress=lambda d, t: steps.append((d, t))) == 3
    assert steps[-1] == (3, 3)
    before = len(lead.audit_trail.audit_log(limit=None))
    stopped = tmp_path / "stopped.csv"
    with pytest.raises(Cancelled):
        lead.lead.export_records_csv(stopped, cancelled=lambda: True)
    assert not stopped.exists() and list(tmp_path.glob(".stopped.csv*")) == []
    assert len(lead.audit_trail.audit_log(limit=None)) == before
    lead.close()


def test_workspace_tabs_load_in_workers(qtbot, vault_env, monkeypatch):
    from tests.test_ui_lead import open_window, settle

    threads: dict[str, int] = {}
    for attr, name in (
        ("referrals", "needs_action"),
        ("lead", "dashboard"),
        ("audit_trail", "verify_audit"),
    ):
        service = Session.SERVICES[attr]
        original = getattr(service, name)

        def spy(self, *args, _name=name, _original=original, **kwargs):
            threads[_name] = threading.get_ident()
            return _original(self, *args, **kwargs)

        monkeypatch.setattr(service, name, spy)
    win = open_window(qtbot, vault_env, "lead")
    ws = win.navigate("lead_workspace")
    ws.show_tab(ws.DASHBOARD)
    ws.show_tab(ws.AUDIT)
    ws.audit.verify_button.click()
    settle(qtbot, ws)
    assert set(threads) == {"needs_action", "dashboard", "verify_audit"}
    assert threading.get_ident() not in threads.values()
    assert ws.audit.chain.text().startswith("Intact: ")
    assert "Nothing needs action" in ws.needs.summary.text()


def test_task_objects_are_released(qtbot, lead):
    from gpshare.ui import worker as worker_mod

    bar = TaskBar("t")
    qtbot.addWidget(bar)
    done: list[object] = []
    bar.start(lead, "…", lambda w, c: 1, done.append, pytest.fail)
    qtbot.waitUntil(lambda: done == [1] and not worker_mod._running, timeout=10000)
    assert isinstance(Task, type)
