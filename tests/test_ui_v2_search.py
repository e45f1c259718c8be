"""The lead's records screen on vault version 2 (issue #13 step 6): the search index is built
in the background with progress, the screen says so meanwhile, and then a narrative word
finds its record (pytest-qt, offscreen). On an embedded vault and on a practice server's
workstation, where the index is built from the server (issue #14)."""

from __future__ import annotations

import pytest

from gpshare.ui.audit_view import LeadWorkspace
from tests.conftest import VaultEnv
from tests.test_ui_lead import complete, model_column, open_window
from tests.test_v2_records import NARRATIVE_WORD

pytestmark = pytest.mark.usefixtures("quiet_dialogs")
RUN_ON_BOTH_ENGINES = True


def test_the_records_screen_builds_the_index_then_finds_a_narrative_word(
    qtbot, vault_env_v2: VaultEnv
) -> None:
    complete(vault_env_v2, "01-bruised-toddler-parents-agree")
    complete(vault_env_v2, "02-teen-sexual-health-refuses", "drjones")
    win = open_window(qtbot, vault_env_v2, "lead")
    ws = win.navigate("lead_workspace")
    assert isinstance(ws, LeadWorkspace)
    ws.show_tab(ws.RECORDS)
    view, model = ws.records, ws.records.model
    # The index is built in a worker; until its result is delivered the screen says so, and
    # the list answers at once from the summaries.
    assert view.index_task.busy and view.index_label.isVisible()
    assert "Search index being rebuilt" in view.index_label.text()
    view._index_progress(view.index_task.task, 1, 4)
    assert "Search index being rebuilt (25 %)" in view.index_label.text()
    assert model.rowCount() == 2
    qtbot.waitUntil(lambda: not view.index_task.busy, timeout=20000)
    assert view.index_label.isHidden()
    assert win.session.search_index.status().state == "current"
    view.filters.search.setText(NARRATIVE_WORD)
    view.filters.flush()
    assert model_column(model, 1) == ["Ellie Marsh"]
    view.filters.search.setText("nosuchwordanywhere")
    view.filters.flush()
    assert model.rowCount() == 0
