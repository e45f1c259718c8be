"""Admin › Practice server (issue #14): back up, restore (consequences spelled out first),
enrol and revoke a workstation, verify now, against a throwaway PostgreSQL (tests/pg.py),
driven as an administrator would (pytest-qt); the work runs in workers."""

from __future__ import annotations

import os
import threading
from pathlib import Path
from typing import Any

import psycopg
import pytest
from PySide6.QtWidgets import QApplication

from gpshare.services import _integrity
from gpshare.ui import dialogs
from gpshare.ui.admin_view import AdminView
from gpshare.ui.server_admin import PracticeServerTab, describe
from tests.pg import Cluster
from tests.test_integrity_watch import verify_threads

pytestmark = pytest.mark.usefixtures("quiet_dialogs")
on_server = pytest.mark.parametrize("vault_engine", ["postgres"], indirect=True)


def _shot(widget: Any, name: str) -> None:
    # Screenshots for a person to look at, outside the repository, only when asked for.
    folder = os.environ.get("GPSHARE_SCREENSHOTS")
    if folder:
        Path(folder).mkdir(parents=True, exist_ok=True)
        QApplication.processEvents()
        widget.grab().save(str(Path(folder) / name))


def _tab(qtbot: Any, session: Any) -> tuple[AdminView, PracticeServerTab]:
    view = AdminView(session)
    qtbot.addWidget(view)
    view.resize(1000, 900)
    view.show()
    assert view.server_tab is not None
    view.tabs.setCurrentWidget(view.server_tab)
    return view, view.server_tab


def can_log_in(dsn: str, role: str) -> bool:
    with psycopg.connect(dsn) as conn:
        row = conn.execute("SELECT rolcanlogin FROM pg_roles WHERE rolname = %s", (role,))
        return bool(row.fetchone()[0])


def _wait(qtbot: Any, tab: PracticeServerTab) -> None:
    qtbot.waitUntil(lambda: not tab.tasks.busy, timeout=60000)


@on_server
def test_backup_then_restore_spells_out_the_loss_and_asks_the_window_to_lock(
    vault_env_v2: Any, pg_cluster: Cluster, tmp_path: Path, qtbot: Any
) -> None:
    admin = vault_env_v2.session("admin")
    view, tab = _tab(qtbot, admin)
    tab.bin_edit.setText(str(pg_cluster.bin))
    backup = tmp_path / "server.dump"
    dialogs.set_next_answer(backup)
    tab.backup_button.click()
    assert tab.tasks.busy  # the dump runs in a worker
    _wait(qtbot, tab)
    assert backup.exists() and oct(backup.stat().st_mode & 0o777) == "0o600"
    assert f"backed up to {backup}" in tab.message.text()
    _shot(view, "server-admin-1-backed-up.png")

    admin.practice.update_settings({"practice_phone": "0113 496 0001"})  # after the backup
    restored: list[str] = []
    tab.restored.connect(restored.append)
    dialogs.set_next_answer(backup)
    dialogs.set_next_answer(True)
    tab.restore_button.click()
    asked = dialogs.last_shown("question")
    assert asked is not None
    for words in ("no longer on the server", "restore (an epoch)", "told once", "gpshare locks"):
        assert words in asked.text
    _wait(qtbot, tab)
    assert restored and "events lost" in restored[0] and "recorded as restore 1" in restored[0]
    assert tab.message.text() == restored[0]
    _shot(view, "server-admin-2-restored.png")
    with admin.store.read() as tx:  # the epoch is on the server's chain
        assert _integrity.restore_epoch(tx.get_settings()) == 1
    admin.close()


@on_server
def test_a_cancelled_restore_changes_nothing(vault_env_v2: Any, qtbot: Any, tmp_path: Path) -> None:
    admin = vault_env_v2.session("admin")
    _view, tab = _tab(qtbot, admin)
    dialogs.set_next_answer(tmp_path / "any.dump")
    dialogs.set_next_answer(False)
    tab.restore_button.click()
    assert tab.tasks.task is None and tab.message.isHidden()
    admin.close()


@on_server
def test_enrol_shows_the_role_and_the_hba_line_then_revoke_retires_it(
    vault_env_v2: Any, pg_cluster: Cluster, qtbot: Any, tmp_path: Path
) -> None:
    admin = vault_env_v2.session("admin")
    view, tab = _tab(qtbot, admin)
    tab.enrol_button.click()
    assert "Type the workstation's name" in tab.message.text()
    group = f"ws_{vault_env_v2.folder.parent.name}"[:60]
    tab.workstation_edit.setText("reception_1")
    tab.group_edit.setText(group)
    # Cancelling the folder choice enrols nothing.
    dialogs.set_next_answer(None)
    tab.enrol_button.click()
    assert tab.tasks.task is None
    carry = tmp_path / "carry"
    carry.mkdir()
    dialogs.set_next_answer(carry)
    tab.enrol_button.click()
    _wait(qtbot, tab)
    shown = tab.enrolment.toPlainText()
    assert "Database role:" in shown and "pg_hba.conf" in shown and f"+{group}" in shown
    assert f"Certificate files: {carry}" in shown and "Certificate serial:" in shown
    files = {"client.crt", "client.key", "enrolment.secret", "workstation-ca.crt"}
    assert {p.name for p in carry.iterdir()} == files
    assert (carry / "client.key").stat().st_mode & 0o777 == 0o600
    # The practice's enrolment secret goes with the certificate, as private as its key.
    assert (carry / "enrolment.secret").stat().st_mode & 0o777 == 0o600
    assert f"Enrolment secret (keep it secret): {carry / 'enrolment.secret'}" in shown
    assert str(carry) in tab.message.text() and "enrolment.secret" in tab.message.text()
    _shot(view, "server-admin-3-enrolled.png")
    dsn = admin.vault.dsn  # type: ignore[attr-defined]
    role = next(line.split(": ", 1)[1] for line in shown.splitlines() if line.startswith("Data"))
    assert can_log_in(dsn, role) is True
    dialogs.set_next_answer(True)
    tab.revoke_button.click()
    _wait(qtbot, tab)
    assert "can no longer sign in" in tab.message.text() and tab.enrolment.isHidden()
    assert can_log_in(dsn, role) is False
    # A bad name: the service's own words, not a traceback.
    tab.workstation_edit.setText("no spaces please")
    dialogs.set_next_answer(tmp_path)
    tab.enrol_button.click()
    _wait(qtbot, tab)
    assert tab.message.property("role") == "error" and "unexpected" not in tab.message.text()
    admin.close()


@on_server
def test_verify_now_runs_in_a_worker_and_reports_intact(
    vault_env_v2: Any, qtbot: Any, monkeypatch: Any
) -> None:
    admin = vault_env_v2.session("admin")
    view, tab = _tab(qtbot, admin)
    threads = verify_threads(monkeypatch)
    tab.verify_button.click()
    _wait(qtbot, tab)
    assert threads and threading.get_ident() not in threads
    assert "intact" in tab.message.text() and "Audit log intact" in tab.report.toPlainText()
    _shot(view, "server-admin-4-verified.png")
    admin.close()


def test_an_embedded_vault_has_no_practice_server_tab(vault_env_v2: Any, qtbot: Any) -> None:
    admin = vault_env_v2.session("admin")
    view = AdminView(admin)
    qtbot.addWidget(view)
    assert view.server_tab is None
    assert "Practice se&rver" not in [view.tabs.tabText(i) for i in range(view.tabs.count())]
    admin.close()


def test_describe_shows_whatever_enrol_returns() -> None:
    text = describe({"role": "ws_a", "server": "s", "hba": "hostssl x", "certificate": "a.pem"})
    assert text.splitlines()[:3] == ["Database role: ws_a", "Server: s", "Certificate: a.pem"]
    assert text.endswith("  hostssl x")


@on_server
def test_the_window_locks_after_a_restore_with_what_was_lost(
    vault_env_v2: Any, pg_cluster: Cluster, tmp_path: Path, qtbot: Any
) -> None:
    from tests.test_ui_lead import open_window

    win = open_window(qtbot, vault_env_v2, "admin")
    view = win.navigate("admin")
    assert isinstance(view, AdminView) and view.server_tab is not None
    tab = view.server_tab
    tab.bin_edit.setText(str(pg_cluster.bin))
    backup = tmp_path / "server.dump"
    dialogs.set_next_answer(backup)
    tab.backup_button.click()
    _wait(qtbot, tab)
    dialogs.set_next_answer(backup)
    dialogs.set_next_answer(True)
    tab.restore_button.click()
    qtbot.waitUntil(lambda: win.session is None or not tab.tasks.busy, timeout=180000)
    assert win.session is None, tab.message.text()
    assert "recorded as restore 1" in win.unlock_widget.notice_label.text()
    _shot(win, "server-admin-5-locked-after-restore.png")
