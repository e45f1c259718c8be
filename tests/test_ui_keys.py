"""Needs action shows a lead the keys waiting for confirmation (vault version 2); the Confirm
dialog takes the six words the user reads out and writes nothing when they differ."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from gpshare.ui import dialogs
from gpshare.ui.audit_view import LeadWorkspace
from tests.test_keys_flow import make_v2
from tests.test_ui_lead import open_window, settle

SHOTS = os.environ.get("GPSHARE_SCREENSHOTS")  # a folder to save screenshots in, if set


def shot(widget, name: str) -> None:
    if SHOTS:
        widget.grab().save(str(Path(SHOTS) / f"{name}.png"))


def test_lead_confirms_a_pending_key_from_needs_action(qtbot, tmp_path, clock):
    env = make_v2(tmp_path / "vault", clock)
    env.first_login("drsmith", env.add("drsmith"))
    smith = env.session("drsmith")
    words = smith.directory.own_key().fingerprint
    smith.close()

    win = open_window(qtbot, env, "lead")
    page = win.navigate("lead_workspace")
    assert isinstance(page, LeadWorkspace)
    settle(qtbot, page)
    panel = page.needs.keys_panel
    assert panel.isVisible() and [i.username for i in panel.items] == ["drsmith"]
    assert "1 new key is waiting" in panel.title.text()
    # The expected words are never on the lead's screen: they come from the user.
    assert words not in panel.title.text()
    shot(win, "needs-action-pending-key")

    dialog = panel.dialog(panel.items[0])
    qtbot.addWidget(dialog)
    dialog.show()
    dialog.words.setText("these are not the right words")
    dialog.confirm_button.click()
    assert not dialog.confirmed and dialog.error.isVisible()
    assert "do not match the key drsmith published" in dialog.error.text()
    assert words not in dialog.error.text()
    shot(dialog, "confirm-key-wrong-words")
    assert [p.username for p in win.session.directory.pending()] == ["drsmith"]

    dialog.words.setText(words)
    dialog.confirm_button.click()
    assert dialog.confirmed
    panel.reload()
    assert not panel.isVisible() and panel.items == []
    win.session.close()


def test_needs_action_shows_no_key_panel_on_a_version_1_vault(qtbot, vault_env):
    win = open_window(qtbot, vault_env, "lead")
    page = win.navigate("lead_workspace")
    settle(qtbot, page)
    assert not page.needs.keys_panel.isVisible() and page.needs.keys_panel.items == []
    win.session.close()


@pytest.mark.usefixtures("quiet_dialogs")
def test_a_user_reads_their_key_words_from_the_file_menu(qtbot, tmp_path, clock):
    env = make_v2(tmp_path / "vault", clock)
    env.first_login("drsmith", env.add("drsmith"))
    win = open_window(qtbot, env, "drsmith")
    try:
        assert win.my_key_action.isVisible()
        words = win.session.directory.own_key().fingerprint
        win.my_key_action.trigger()
        shown = dialogs.last_shown("information")
        assert shown is not None and words in shown.text and "must confirm" in shown.text
    finally:
        win.session.close()


def test_the_key_words_action_is_hidden_on_a_version_1_vault(qtbot, vault_env):
    win = open_window(qtbot, vault_env, "drsmith")
    try:
        assert not win.my_key_action.isVisible()
    finally:
        win.session.close()
