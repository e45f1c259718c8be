"""The administrator's "Upgrade this vault…" on the unlock screen of a version-1 vault
(docs/vault-v2.md §4): the dialog explains, the break-glass code is typed back, the work runs
on a worker thread with progress, and the unlock then goes on as usual (pytest-qt)."""

from __future__ import annotations

import os
import threading
from pathlib import Path
from typing import Any

import pytest
from PySide6.QtWidgets import QLineEdit, QPushButton

from gpshare.store.vault import Vault
from gpshare.ui import dialogs
from gpshare.ui.unlock import UnlockWidget
from tests.conftest import PASSWORDS

pytestmark = pytest.mark.usefixtures("quiet_dialogs")


def _shot(widget: Any, name: str) -> None:
    # Screenshots for a person to look at, outside the repository, only when asked for.
    folder = os.environ.get("GPSHARE_SCREENSHOTS")
    if folder:
        Path(folder).mkdir(parents=True, exist_ok=True)
        widget.grab().save(str(Path(folder) / name))


def test_an_admin_upgrades_a_v1_vault_from_the_unlock_screen(vault_env, qtbot) -> None:
    vault_env.clock.advance(60)
    widget = UnlockWidget(vault_env.clock, vault_env.folder)
    qtbot.addWidget(widget)
    widget.show()
    widget.refresh_upgrade()  # the app does this after its keyring probe (not at first paint)
    assert not widget.upgrade_button.isHidden()
    widget.username_edit.setText("admin")
    widget.password_edit.setText(PASSWORDS["admin"])
    unlocked: list[Any] = []
    widget.unlocked.connect(unlocked.append)
    seen: dict[str, Any] = {}

    def run(dialog: Any) -> None:
        _shot(dialog, "upgrade-1-explain.png")
        gui = threading.get_ident()
        dialog.findChild(QPushButton, "upgrade_vault.start").click()
        code_field = dialog.findChild(QLineEdit, "upgrade_vault.code")
        qtbot.waitUntil(lambda: bool(code_field.text()), timeout=60000)
        seen["worker"] = dialog._thread.ident != gui
        _shot(dialog, "upgrade-2-code.png")
        typed = dialog.findChild(QLineEdit, "upgrade_vault.typed")
        typed.setText("WRONG")
        dialog.findChild(QPushButton, "upgrade_vault.confirm").click()
        seen["wrong"] = dialog.status.text()
        typed.setText(code_field.text().lower())  # spaces, dashes and case do not matter
        dialog.findChild(QPushButton, "upgrade_vault.confirm").click()
        seen["code_hidden"] = not code_field.isVisible() and not code_field.text()
        qtbot.waitUntil(lambda: dialog.result_info is not None, timeout=120000)

    dialogs.set_next_dialog_handler(run)
    widget.upgrade_button.click()
    assert seen["worker"] and seen["code_hidden"]
    assert "not the break-glass code" in seen["wrong"]
    assert Vault.open(vault_env.folder).format_version == 2
    assert unlocked and unlocked[0].keys is not None  # the admin's v2 session
    unlocked[0].close()
    assert widget.upgrade_button.isHidden()


def test_later_keeps_the_vault_version_1(vault_env, qtbot) -> None:
    widget = UnlockWidget(vault_env.clock, vault_env.folder)
    qtbot.addWidget(widget)
    widget.show()
    widget.refresh_upgrade()  # the app does this after its keyring probe (not at first paint)
    widget.username_edit.setText("admin")
    widget.password_edit.setText(PASSWORDS["admin"])
    dialogs.set_next_dialog_handler(
        lambda d: d.findChild(QPushButton, "upgrade_vault.later").click()
    )
    widget.upgrade_button.click()
    assert Vault.open(vault_env.folder).format_version == 1
    assert not widget.upgrade_button.isHidden()
