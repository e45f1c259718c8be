"""The wizard while the practice server is down (issue #14): a real PostgreSQL stopped and
started again (pg_ctl) under an open draft. The draft is kept encrypted on this computer with
a banner (no modal: the GP is mid-consultation), a worker retries off the GUI thread, and the
banner clears once the draft is on the server.

Set GPSHARE_SCREENSHOTS to a folder to keep screenshots of the wizard offline and after.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from PySide6.QtCore import QPoint, Qt
from PySide6.QtWidgets import QWidget

from gpshare.services import Session
from gpshare.services.offline import OfflineDraftsService
from gpshare.store import offline_drafts
from gpshare.ui import dialogs
from gpshare.ui.wizard.wizard import AssessmentWizard
from tests.conftest import VaultEnv, drop_server_database, make_vault_v2
from tests.pg import Cluster
from tests.test_offline_drafts import assert_no_plaintext
from tests.test_ui_wizard import type_text, widget

pytestmark = pytest.mark.usefixtures("quiet_dialogs")


@pytest.fixture
def server_practice(pg_cluster: Cluster, tmp_path: Path, clock: Any) -> Iterator[VaultEnv]:
    name = pg_cluster.new_database()
    try:
        yield make_vault_v2(tmp_path / "pc1", clock, pg_cluster.dsn(name))
    finally:
        drop_server_database(pg_cluster, name)


def shot(qtbot: Any, wizard: AssessmentWizard, name: str) -> None:
    folder = os.environ.get("GPSHARE_SCREENSHOTS")
    if folder:
        qtbot.wait(100)  # let the layout settle first
        wizard.grab().save(str(Path(folder) / f"{name}.png"))


def test_a_draft_typed_while_the_server_is_stopped_is_kept_then_saved(
    qtbot: Any, pg_cluster: Cluster, server_practice: VaultEnv, monkeypatch: pytest.MonkeyPatch
) -> None:
    session: Session = server_practice.session("drsmith")
    # Where each retry runs: a worker session is opened for it, then the flush.
    tried_on: list[int] = []
    flushed_on: list[int] = []
    worker_session, flush = Session.worker_session, OfflineDraftsService.flush

    def spy_worker(self: Session) -> Session:
        tried_on.append(threading.get_ident())
        return worker_session(self)

    def spy_flush(self: OfflineDraftsService) -> Any:
        flushed_on.append(threading.get_ident())
        return flush(self)

    monkeypatch.setattr(Session, "worker_session", spy_worker)
    monkeypatch.setattr(OfflineDraftsService, "flush", spy_flush)
    wizard = AssessmentWizard(session, offline_retry_ms=300)
    qtbot.addWidget(wizard)
    wizard.resize(1280, 800)
    wizard.show()
    qtbot.waitExposed(wizard)
    try:
        type_text(widget(wizard, "child_given_name"), "Ellie")
        type_text(widget(wizard, "child_family_name"), "Marsh")
        qtbot.mouseClick(widget(wizard, "wizard.next"), Qt.MouseButton.LeftButton)  # saves
        record_id = wizard.current_record_id
        assert record_id is not None and wizard.offline_text == ""
        path = offline_drafts.path_for(server_practice.folder, record_id)

        pg_cluster.stop()
        try:
            qtbot.mouseClick(
                widget(wizard, "immediate_danger.no"), Qt.MouseButton.LeftButton, pos=QPoint(8, 8)
            )
            with qtbot.waitSignal(wizard.draft_saved, timeout=5000):
                wizard.autosave_tick()
            assert "Server unreachable" in wizard.offline_text
            banner = wizard.findChild(QWidget, "wizard.offline_banner")
            assert banner is not None and banner.isVisible()
            assert "kept on this computer" in widget(wizard, "wizard.save_status").text().lower()
            assert dialogs.last_shown() is None  # a banner, never a modal
            assert path.exists()
            assert_no_plaintext(server_practice.folder)
            shot(qtbot, wizard, "wizard-offline")
            # The worker keeps trying while the server is down, off the GUI thread.
            qtbot.waitUntil(lambda: len(tried_on) >= 2, timeout=10000)
            assert wizard.offline_text and path.exists()
        finally:
            pg_cluster.start()
        qtbot.waitUntil(lambda: wizard.offline_text == "", timeout=20000)
        assert flushed_on and threading.get_ident() not in tried_on + flushed_on
        assert not path.exists()
        assert "Saved to the practice server" in widget(wizard, "wizard.save_status").text()
        shot(qtbot, wizard, "wizard-back-online")
        stored = session.assessments.get_record(record_id)
        assert stored.answers["immediate_danger"] is False
        assert stored.answers["child_family_name"] == "Marsh"
        # Online again: the next save goes to the server itself.
        qtbot.mouseClick(
            widget(wizard, "immediate_danger.yes"), Qt.MouseButton.LeftButton, pos=QPoint(8, 8)
        )
        with qtbot.waitSignal(wizard.draft_saved, timeout=5000):
            wizard.autosave_tick()
        assert wizard.offline_text == "" and not path.exists()
        assert session.assessments.get_record(record_id).answers["immediate_danger"] is True
    finally:
        session.close()
