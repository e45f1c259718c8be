"""The main window while the practice server is away (issue #14, lane pgreconnect): a line in
the status bar, never a modal, retried in a worker off the GUI thread, gone by itself once the
server answers again. A real PostgreSQL whose database refuses connections meanwhile.

Set GPSHARE_SCREENSHOTS to a folder to keep a screenshot of the window with the line.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from gpshare.errors import ServerUnreachableError
from gpshare.services import Session
from gpshare.ui import dialogs
from gpshare.ui.app import MainWindow
from gpshare.ui.server_status import unreachable_text
from tests.conftest import drop_server_database, make_vault_v2
from tests.pg import Cluster
from tests.test_offline_drafts import Practice

pytestmark = pytest.mark.usefixtures("quiet_dialogs")


@pytest.fixture
def practice(pg_cluster: Cluster, tmp_path: Path, clock: Any) -> Iterator[Practice]:
    """A practice whose database can refuse connections (down) and take them again (up)."""
    name = pg_cluster.new_database()
    try:
        here = Practice(
            make_vault_v2(tmp_path / "pc1", clock, pg_cluster.dsn(name)), pg_cluster, name
        )
        yield here
        here.up()
    finally:
        drop_server_database(pg_cluster, name)


def test_the_status_line_appears_while_the_server_is_away_and_clears_by_itself(
    qtbot: Any, practice: Practice, monkeypatch: pytest.MonkeyPatch
) -> None:
    tried_on: list[int] = []
    worker_session = Session.worker_session

    def spy(self: Session) -> Session:
        tried_on.append(threading.get_ident())
        return worker_session(self)

    monkeypatch.setattr(Session, "worker_session", spy)
    session = practice.session("drsmith")
    window = MainWindow(vault_folder=practice.env.folder)
    qtbot.addWidget(window)
    window.resize(1280, 800)
    window.show()
    window.start_session(session)
    window.server_status.set_intervals(50, 200)
    line = window.statusBar().findChild(type(window.server_status.label), "status.server")
    assert line is window.server_status.label and line.isHidden()
    try:
        practice.down()
        with pytest.raises(ServerUnreachableError):
            session.assessments.list_records()  # the user's next step finds it away
        since = session.unreachable_since()
        assert since is not None
        qtbot.waitUntil(line.isVisible, timeout=5000)
        assert line.text() == unreachable_text(since)
        assert since.astimezone().strftime("%H:%M") in line.text()
        assert "Traceback" not in line.text() and dialogs.last_shown() is None
        # Retried in the background while it stays away; the line stays.
        qtbot.waitUntil(lambda: window.server_status.retries >= 2, timeout=10000)
        assert line.isVisible()
        folder = os.environ.get("GPSHARE_SCREENSHOTS")
        if folder:
            qtbot.wait(100)
            window.grab().save(str(Path(folder) / "server-unreachable.png"))
    finally:
        practice.up()
    # The next retry reaches it: the line goes by itself, and the next step works.
    qtbot.waitUntil(line.isHidden, timeout=10000)
    assert session.unreachable_since() is None
    assert tried_on and threading.get_ident() not in tried_on
    session.assessments.list_records()
    window.lock()
    assert line.isHidden()


def test_a_retry_that_reaches_a_server_with_another_history_raises_the_alarm(
    qtbot: Any, practice: Practice
) -> None:
    import psycopg

    session = practice.session("drsmith")
    window = MainWindow(vault_folder=practice.env.folder)
    qtbot.addWidget(window)
    window.show()
    window.start_session(session)
    window.server_status.set_intervals(50, 60_000)  # the retry is run by hand below
    line = window.server_status.label
    practice.down()
    with pytest.raises(ServerUnreachableError):
        session.assessments.list_records()
    qtbot.waitUntil(line.isVisible, timeout=5000)
    practice.up()
    # Back with another history: the newest event this computer saw is not the one it holds.
    with psycopg.connect(practice.cluster.dsn(practice.database), autocommit=True) as dba:
        dba.execute("SET session_replication_role = replica")
        dba.execute("UPDATE audit SET hash = md5(hash) WHERE seq = (SELECT max(seq) FROM audit)")
    with qtbot.waitSignal(window.server_status.alarm, timeout=10000) as alarm:
        window.server_status.retry_now()
    assert "ROLLBACK OR FORK ALARM" in str(alarm.args[0])
    assert "ROLLBACK OR FORK ALARM" in window.notice_banner.text.text()
    assert window.notice_banner.isVisible() and dialogs.last_shown() is None
    window.lock()
