"""Restoring a backup taken before the upgrade to version 2 (docs/vault-v2.md §4, decision D3).

After `migrate-v2`, backups/ still holds the version-1 snapshots, each re-encrypted under its
own legacy-backup key that only a lead (or the break-glass code) opens. Restoring one is
refused unless asked for explicitly with a lead present; then the version-1 vault is put back
whole (never half version 1 and half version 2, even when killed part-way), the old password
opens it, the audit chain records it, and it can be upgraded again.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from gpshare.cli import main
from gpshare.errors import (
    LegacyBackupRefused,
    NotFound,
    PermissionDenied,
    StoreError,
    ValidationFailed,
    WrongPasswordError,
)
from gpshare.filters import AuditFilter, RecordFilter
from gpshare.records import AuditEvent
from gpshare.services import restore
from gpshare.services.backups import BreakGlassPresent, LeadPresent, is_pre_upgrade
from gpshare.services.migrate_v2 import LeadAtMigration, migrate_vault, restore_pre_upgrade
from gpshare.services.record_keys import BREAKGLASS_RECIPIENT, LEAD_RECIPIENT
from gpshare.store import backup
from gpshare.store.vault import Vault
from tests.conftest import PASSWORDS, VaultEnv, make_vault
from tests.test_recovery import _count_calls

LEAD = LeadPresent("lead", PASSWORDS["lead"])


def _names(env: VaultEnv, user: str) -> set[str]:
    s = env.session(user)
    try:
        return {r.child.display_name.split()[0] for r in s.assessments.list_records()}
    finally:
        s.close()


def _format(env: VaultEnv) -> int:
    return int(Vault.read_header(env.folder)["format_version"])


def _v1_backup_then_upgrade(
    tmp_path: Path, clock, lead: LeadAtMigration | None
) -> tuple[VaultEnv, Path]:
    """A version-1 vault with one record ("Before") and a backup, upgraded (with `lead`
    present, or none); `env.breakglass_code` is the code the upgrade made."""
    env = make_vault(tmp_path / "vault", clock)
    s = env.session("drsmith")
    s.assessments.start_assessment(answers={"child_given_name": "Before"})
    s.close()
    admin = env.session("admin")
    snapshot = admin.backups.backup_now()
    admin.close()
    clock.advance(60)
    env.breakglass_code = migrate_vault(
        env.folder, "admin", PASSWORDS["admin"], lead=lead, clock=clock
    ).breakglass_code
    clock.advance(60)
    return env, snapshot


@pytest.fixture
def upgraded(tmp_path: Path, clock) -> tuple[VaultEnv, Path]:
    """A version-1 vault with one record and a backup, upgraded with its lead present; then
    a record written on version 2 and the lead's search index built."""
    env, snapshot = _v1_backup_then_upgrade(
        tmp_path, clock, LeadAtMigration("lead", PASSWORDS["lead"])
    )
    lead = env.session("lead")
    lead.assessments.start_assessment(answers={"child_given_name": "After"})
    lead.search_index.prepare()
    lead.close()
    assert (env.folder / "lead-index.db").exists()
    return env, snapshot


def test_a_pre_upgrade_backup_is_refused_without_the_explicit_step(upgraded) -> None:
    env, snapshot = upgraded
    assert is_pre_upgrade(env.folder, snapshot)
    with pytest.raises(LegacyBackupRefused) as info:
        restore(env.folder, snapshot, "admin", PASSWORDS["admin"], env.clock)
    message = str(info.value)
    assert "before this vault was upgraded" in message and "--undo-upgrade --lead" in message
    assert f"backups/{snapshot.name}" in message and "upgraded again" in message
    with pytest.raises(WrongPasswordError):
        restore_pre_upgrade(
            env.folder, snapshot, "admin", PASSWORDS["admin"],
            LeadPresent("lead", "not the lead password"), env.clock,
        )  # fmt: skip
    with pytest.raises(StoreError, match="password you had when it was taken"):
        restore_pre_upgrade(
            env.folder, snapshot, "admin", "not-the-admin-password", LEAD, env.clock
        )
    env.clock.advance(60)  # past the back-off the wrong lead password earned
    assert _format(env) == 2 and _names(env, "lead") == {"Before", "After"}


def test_the_explicit_step_puts_version_1_back_whole_and_it_upgrades_again(upgraded) -> None:
    env, snapshot = upgraded
    admin = env.session("admin")
    v2_snapshot = admin.backups.backup_now()  # stays in backups/ after the undo
    admin.close()
    env.clock.advance(60)
    aside = restore_pre_upgrade(env.folder, snapshot, "admin", PASSWORDS["admin"], LEAD, env.clock)
    assert _format(env) == 1
    # The version-2 files and the lead's index are kept aside, not left beside version 1.
    assert (aside / "records.db").exists() and (aside / "lead-index.db").exists()
    assert not (env.folder / "lead-index.db").exists()
    assert not list(env.folder.glob(".*.restoring*"))
    # The old passwords open it, and it holds what it held before the upgrade.
    assert _names(env, "drsmith") == {"Before"}
    admin = env.session("admin")
    try:
        assert admin.keys is None  # version 1: no version-2 keys in this session
        assert admin.audit_trail.verify_audit().ok
        restored = [e for e in admin.audit_trail.audit_log() if e.action == "backup_restored"]
        assert restored and restored[0].details["undo_upgrade"] is True
        assert restored[0].details["lead"] == "lead"
    finally:
        admin.close()
    # The replaced version-2 chain recorded the lead opening the backup's key for the admin.
    replaced = Vault(aside, json.loads((aside / "vault.json").read_text()))
    assert replaced.header["format_version"] == 2
    # A backup the version-1 vault takes now is an ordinary one, despite the v2 one beside it.
    env.clock.advance(60)
    admin = env.session("admin")
    v1_snapshot = admin.backups.backup_now()
    admin.close()
    assert not is_pre_upgrade(env.folder, v1_snapshot) and v2_snapshot.exists()
    restore(env.folder, v1_snapshot, "admin", PASSWORDS["admin"], env.clock)
    # … and the vault can be upgraded again.
    env.clock.advance(60)
    migrate_vault(
        env.folder,
        "admin",
        PASSWORDS["admin"],
        lead=LeadAtMigration("lead", PASSWORDS["lead"]),
        clock=env.clock,
    )
    assert _format(env) == 2 and _names(env, "lead") == {"Before"}


# The restore's renames from the swap's start: the journal ("copying"), the new header,
# the journal ("swapping"), records.db and vault.json each aside and in, lead-index.db aside.
RENAMES = 8


def _kill_at_rename(monkeypatch, stop_after: int) -> dict[str, int | None]:
    """Kill the restore at its `stop_after`-th rename, counted from the swap's start (the
    session that opened the backup's key is over by then); returns the counter's state."""
    state = _count_calls(monkeypatch, os, "replace")
    original = backup.restore_backup

    def counted(*args, **kwargs):  # type: ignore[no-untyped-def]
        state["left"] = stop_after
        return original(*args, **kwargs)

    monkeypatch.setattr(backup, "restore_backup", counted)
    return state


def _restored_events(env: VaultEnv) -> list[AuditEvent]:
    """The `backup_restored` events of the vault's chain for its newest restore (epoch)."""
    epoch = Vault.open(env.folder).restore_number()
    admin = env.session("admin")
    try:
        log = admin.audit_trail.audit_log()
    finally:
        admin.close()
    return [e for e in log if e.action == "backup_restored" and e.details.get("epoch") == epoch]


def _check_after_kill(env: VaultEnv, finished: bool, by: str) -> None:
    """The next open finds version 2 as it was (no restore recorded) or version 1 whole,
    whose chain says once that the backup was restored, and by what."""
    names = _names(env, "drsmith")  # opening finishes or undoes the interrupted restore
    assert not (env.folder / backup.JOURNAL_NAME).exists()
    assert not list(env.folder.glob(".*.restoring*"))
    events = _restored_events(env)
    if _format(env) == 2:
        assert not finished and events == []
        return
    assert names == {"Before"}
    # After the swap, however late the kill: exactly one event, and no v2 file left beside.
    assert len(events) == 1 and events[0].details["undo_upgrade"] is True, events
    assert events[0].actor == "admin" and events[0].details["snapshot"]
    if by == "lead":
        assert events[0].details["lead"] == "lead"
    else:
        assert events[0].details["breakglass"] is True and "lead" not in events[0].details
    assert not (env.folder / "lead-index.db").exists()


@pytest.mark.parametrize("stop_after", range(RENAMES + 1))
def test_killed_part_way_it_is_all_version_2_or_all_version_1(
    upgraded, monkeypatch, stop_after
) -> None:
    """Stop the restore at each rename (the last value: not stopped): the next open finds the
    version-2 vault as it was, or the version-1 vault whole with its `backup_restored` event
    exactly once, and never a version-1 header on a version-2 database."""
    env, snapshot = upgraded
    state = _kill_at_rename(monkeypatch, stop_after)
    try:
        restore_pre_upgrade(env.folder, snapshot, "admin", PASSWORDS["admin"], LEAD, env.clock)
        finished = True
    except KeyboardInterrupt:
        finished = False
    state["left"] = None
    assert finished is (stop_after == RENAMES)  # every rename was a kill point
    names = _names(env, "lead")  # opening finishes or undoes the interrupted restore
    if _format(env) == 2:
        assert not finished and names == {"Before", "After"}
    else:
        assert names == {"Before"} and _names(env, "drsmith") == {"Before"}
    _check_after_kill(env, finished, "lead")
    admin = env.session("admin")
    try:
        assert admin.audit_trail.verify_audit().ok
    finally:
        admin.close()


def test_killed_while_re_encrypting_the_backup_it_is_undone(upgraded, monkeypatch) -> None:
    env, snapshot = upgraded

    def killed(*_args, **_kwargs):
        raise KeyboardInterrupt("simulated kill")

    monkeypatch.setattr(backup, "export_copy", killed)
    with pytest.raises(KeyboardInterrupt):
        restore_pre_upgrade(env.folder, snapshot, "admin", PASSWORDS["admin"], LEAD, env.clock)
    monkeypatch.undo()
    assert (env.folder / backup.JOURNAL_NAME).exists()  # killed: the journal says "copying"
    assert _names(env, "lead") == {"Before", "After"}  # undone at the next open
    assert _format(env) == 2 and not list(env.folder.glob(".*.restoring*"))


def test_cli_refuses_then_restores_with_the_lead_and_says_to_upgrade_again(
    upgraded, capsys, monkeypatch
) -> None:
    env, snapshot = upgraded
    base = ["restore", "--vault", str(env.folder), "--user", "admin", "--from", str(snapshot)]
    monkeypatch.setenv("GPSHARE_PASSWORD", PASSWORDS["admin"])
    assert main(base) == 1
    _out, err = capsys.readouterr()
    assert "--undo-upgrade --lead LEAD" in err and "Traceback" not in err
    assert main([*base, "--undo-upgrade"]) == 2
    assert "--lead" in capsys.readouterr().err
    assert _format(env) == 2
    monkeypatch.setenv("GPSHARE_LEAD_PASSWORD", PASSWORDS["lead"])
    assert main([*base, "--undo-upgrade", "--lead", "lead"]) == 0
    out, err = capsys.readouterr()
    assert "version 1 again" in out and "gpshare migrate-v2" in out, err
    assert _format(env) == 1
    s = env.session("drsmith")
    try:
        assert [r.status for r in s.assessments.list_records(RecordFilter())] == ["draft"]
    finally:
        s.close()


def test_restoring_a_v2_backup_is_not_the_pre_upgrade_step(upgraded) -> None:
    env, _snapshot = upgraded
    admin = env.session("admin")
    fresh = admin.backups.backup_now()
    admin.close()
    assert not is_pre_upgrade(env.folder, fresh)
    with pytest.raises(StoreError, match="not a backup from before"):
        restore_pre_upgrade(env.folder, fresh, "admin", PASSWORDS["admin"], LEAD, env.clock)
    assert _format(env) == 2


# ----- the break-glass code instead of a lead -------------------------------------------------
REASON = "Both safeguarding leads are on long-term leave"


@pytest.fixture
def upgraded_no_lead(tmp_path: Path, clock) -> tuple[VaultEnv, Path]:
    """Upgraded with no lead present: nobody holds the lead key, so only the break-glass
    code (env.breakglass_code) reaches a pre-upgrade backup's key."""
    return _v1_backup_then_upgrade(tmp_path, clock, None)


def _aside_events(aside: Path, action: str, clock) -> list[AuditEvent]:
    """`action` events of the version-2 chain the restore kept aside (read with the store)."""
    from gpshare.store import open_store

    vault = Vault.open(aside)
    store = open_store(vault, vault.check_password("admin", PASSWORDS["admin"]), clock)
    try:
        with store.read() as tx:
            return tx.audit_events(AuditFilter(action=action))
    finally:
        store.close()


def test_the_break_glass_code_undoes_the_upgrade_when_no_lead_can(upgraded_no_lead) -> None:
    env, snapshot = upgraded_no_lead
    code = env.breakglass_code
    with pytest.raises(ValidationFailed, match="reason for using the break-glass code") as info:
        restore_pre_upgrade(
            env.folder, snapshot, "admin", PASSWORDS["admin"], BreakGlassPresent(code, "  "),
            env.clock,
        )  # fmt: skip
    assert info.value.errors[0]["field"] == "reason"
    with pytest.raises(WrongPasswordError, match="break-glass code does not open"):
        restore_pre_upgrade(
            env.folder, snapshot, "admin", PASSWORDS["admin"],
            BreakGlassPresent("AAAA-BBBB-CCCC-DDDD-EEEE-FFFF-GGGG-HHHH", REASON), env.clock,
        )  # fmt: skip
    env.clock.advance(60)  # past the back-off the wrong code earned
    # A clinician's password from then opens the backup's slot, but only an admin restores.
    with pytest.raises(PermissionDenied, match="not an active administrator"):
        restore_pre_upgrade(
            env.folder, snapshot, "drsmith", PASSWORDS["drsmith"],
            BreakGlassPresent(code, REASON), env.clock,
        )  # fmt: skip
    with pytest.raises(StoreError, match="password you had when it was taken"):
        restore_pre_upgrade(
            env.folder, snapshot, "admin", "not-the-admin-password",
            BreakGlassPresent(code, REASON), env.clock,
        )  # fmt: skip
    assert _format(env) == 2  # nothing above changed the vault
    aside = restore_pre_upgrade(
        env.folder, snapshot, "admin", PASSWORDS["admin"], BreakGlassPresent(code, REASON),
        env.clock,
    )  # fmt: skip
    assert _format(env) == 1 and _names(env, "drsmith") == {"Before"}
    (event,) = _restored_events(env)
    assert event.actor == "admin" and event.details["breakglass"] is True
    assert event.details["reason"] == REASON and "lead" not in event.details
    # The version-2 chain kept aside says who opened the key, that the code did, and why;
    # and the wrong code was reported there.
    (opened,) = _aside_events(aside, "legacy_backup_opened", env.clock)
    assert opened.actor == "admin" and opened.details["for"] == "admin"
    assert opened.details["breakglass"] is True and opened.details["reason"] == REASON
    assert opened.details["via"] == BREAKGLASS_RECIPIENT  # the upgrade's own wrap
    assert opened.details["snapshot"] == snapshot.name
    (started,) = _aside_events(aside, "restore_started", env.clock)
    assert started.details == {
        "snapshot": snapshot.name, "undo_upgrade": True, "breakglass": True, "reason": REASON
    }  # fmt: skip
    failed = _aside_events(aside, "unlock_failed", env.clock)
    assert [e.details["reason"] for e in failed] == ["wrong break-glass code"]


def test_after_a_ceremony_the_new_code_opens_it_through_the_lead_key(upgraded_no_lead) -> None:
    """The ceremony replaced the code the upgrade wrapped the backup's key for: the new code
    opens it through the lead key generation 1 it reaches; the old one opens nothing."""
    env, snapshot = upgraded_no_lead
    env.session("lead").close()  # the lead's first sign-in publishes their key
    admin = env.session("admin")
    try:
        new_code = admin.breakglass.ceremony(env.breakglass_code, "lead", REASON).new_code
    finally:
        admin.close()
    with pytest.raises(WrongPasswordError, match="break-glass code does not open"):
        restore_pre_upgrade(
            env.folder, snapshot, "admin", PASSWORDS["admin"],
            BreakGlassPresent(env.breakglass_code, REASON), env.clock,
        )  # fmt: skip
    env.clock.advance(60)
    aside = restore_pre_upgrade(
        env.folder, snapshot, "admin", PASSWORDS["admin"], BreakGlassPresent(new_code, REASON),
        env.clock,
    )  # fmt: skip
    assert _format(env) == 1 and _names(env, "drsmith") == {"Before"}
    (opened,) = _aside_events(aside, "legacy_backup_opened", env.clock)
    assert opened.details["via"] == LEAD_RECIPIENT and opened.details["breakglass"] is True


def test_break_glass_refuses_a_backup_the_upgrade_does_not_name(upgraded_no_lead) -> None:
    """Only a snapshot the `vault_migrated` event commits to is opened, and the code is not
    even tried (nor counted) for one it does not name."""
    env, _snapshot = upgraded_no_lead
    admin = env.session("admin")
    try:
        with pytest.raises(NotFound, match="not a backup kept from before"):
            admin.breakglass.open_legacy_backup("20200101T000000000000Z", "wrong", REASON)
        assert not [e for e in admin.audit_trail.audit_log() if e.action == "legacy_backup_opened"]
    finally:
        admin.close()
    assert not Vault.read_header(env.folder).get("failed_unlocks")


@pytest.mark.parametrize("stop_after", [2, 4, 5, 6])
def test_a_break_glass_undo_killed_part_way_says_so_once(
    upgraded_no_lead, monkeypatch, stop_after
) -> None:
    """Killed before the swap (2), between the live files going aside and the restored
    ones coming in (4, 5), or at the last rename (6: there is no lead index to set aside):
    undone, or finished with one event naming the break-glass code."""
    env, snapshot = upgraded_no_lead
    state = _kill_at_rename(monkeypatch, stop_after)
    with pytest.raises(KeyboardInterrupt):
        restore_pre_upgrade(
            env.folder, snapshot, "admin", PASSWORDS["admin"],
            BreakGlassPresent(env.breakglass_code, REASON), env.clock,
        )  # fmt: skip
    state["left"] = None
    _check_after_kill(env, False, "breakglass")
    assert _format(env) == (2 if stop_after < 3 else 1)


def test_cli_undoes_the_upgrade_with_the_break_glass_code(
    upgraded_no_lead, capsys, monkeypatch
) -> None:
    env, snapshot = upgraded_no_lead
    base = ["restore", "--vault", str(env.folder), "--user", "admin", "--from", str(snapshot)]
    monkeypatch.setenv("GPSHARE_PASSWORD", PASSWORDS["admin"])
    for wrong, needle in (
        (["--break-glass", "--reason", REASON], "--break-glass goes with --undo-upgrade"),
        (["--undo-upgrade", "--break-glass"], "--break-glass needs --reason"),
        (["--undo-upgrade", "--lead", "lead", "--break-glass", "--reason", REASON], "not both"),
        (["--undo-upgrade", "--lead", "lead", "--reason", REASON], "--reason goes with"),
    ):
        assert main([*base, *wrong]) == 2, wrong
        assert needle in capsys.readouterr().err
    monkeypatch.setenv("GPSHARE_BREAKGLASS_CODE", "AAAA-BBBB-CCCC-DDDD-EEEE-FFFF-GGGG-HHHH")
    assert main([*base, "--undo-upgrade", "--break-glass", "--reason", REASON]) == 1
    _out, err = capsys.readouterr()
    assert "break-glass code does not open" in err and "Traceback" not in err
    assert _format(env) == 2
    # As if the back-off had passed (the CLI runs on the computer's clock): the counter is
    # the unsealed part of vault.json.
    header = Vault.read_header(env.folder)
    assert header["failed_unlocks"]
    header["failed_unlocks"] = {}
    (env.folder / "vault.json").write_text(json.dumps(header))
    monkeypatch.setenv("GPSHARE_BREAKGLASS_CODE", env.breakglass_code)
    assert main([*base, "--undo-upgrade", "--break-glass", "--reason", REASON]) == 0
    out, err = capsys.readouterr()
    assert "version 1 again" in out and "gpshare migrate-v2" in out, err
    assert _format(env) == 1 and _names(env, "drsmith") == {"Before"}


# ----- the app ------------------------------------------------------------------------------------
def _admin_backups(env: VaultEnv, qtbot):  # type: ignore[no-untyped-def]
    """The main window with the admin signed in, on Admin › Backups: (window, the tab)."""
    from gpshare.ui.admin_view import AdminView
    from gpshare.ui.app import MainWindow

    win = MainWindow(clock=env.clock, vault_folder=env.folder)
    qtbot.addWidget(win)
    win.show()
    win.unlock_widget.username_edit.setText("admin")
    win.unlock_widget.password_edit.setText(PASSWORDS["admin"])
    win.unlock_widget.unlock_button.click()
    page = win.page("admin")
    assert isinstance(page, AdminView)
    page.tabs.setCurrentWidget(page.backups_tab)
    return win, page.backups_tab


@pytest.mark.usefixtures("quiet_dialogs")
def test_admin_backups_undo_the_upgrade_with_the_lead_in_the_app(upgraded, qtbot, tmp_path) -> None:
    from PySide6.QtWidgets import QCheckBox, QLineEdit, QPushButton

    from gpshare.ui import dialogs
    from gpshare.ui.restore_backup import PreUpgradeRestoreDialog

    env, snapshot = upgraded
    win, tab = _admin_backups(env, qtbot)
    row = [b.path for b in tab.backups()].index(snapshot)
    assert tab.table.item(row, 2).text().endswith("(version 1, before the upgrade)")
    tab.select(row)
    seen: dict[str, str] = {}

    def fill(dialog: PreUpgradeRestoreDialog) -> None:
        ok = dialog.findChild(QPushButton, "pre_upgrade_restore.ok")
        ok.click()  # nothing typed: the first missing field is named
        seen["empty"] = dialog.error_label.text()
        dialog.findChild(QLineEdit, "pre_upgrade_restore.password").setText(PASSWORDS["admin"])
        dialog.findChild(QLineEdit, "pre_upgrade_restore.lead").setText("lead")
        dialog.findChild(QLineEdit, "pre_upgrade_restore.lead_password").setText(PASSWORDS["lead"])
        ok.click()  # the tick is still missing
        seen["untick"] = dialog.error_label.text()
        dialog.findChild(QCheckBox, "pre_upgrade_restore.understood").setChecked(True)
        dialog.grab().save(str(tmp_path / "pre-upgrade-restore.png"))
        ok.click()

    dialogs.set_next_dialog_handler(fill)
    with qtbot.waitSignal(win.locked, timeout=20000):
        tab.restore_button.click()
    assert "administrator password" in seen["empty"] and "Tick the box" in seen["untick"]
    notice = win.unlock_widget.notice_label.text()
    assert "version 1 again" in notice and "Upgrade this vault" in notice
    assert win.unlock_widget.error_text() == ""
    assert not win.unlock_widget.upgrade_button.isHidden()  # offered again at once
    assert _format(env) == 1
    win.unlock_widget.grab().save(str(tmp_path / "after-undo.png"))
    assert _names(env, "drsmith") == {"Before"}


@pytest.mark.usefixtures("quiet_dialogs")
def test_admin_backups_undo_the_upgrade_with_the_break_glass_code_in_the_app(
    upgraded_no_lead, qtbot, tmp_path
) -> None:
    from PySide6.QtWidgets import QCheckBox, QLineEdit, QPushButton, QRadioButton

    from gpshare.ui import dialogs
    from gpshare.ui.restore_backup import PreUpgradeRestoreDialog

    env, snapshot = upgraded_no_lead
    win, tab = _admin_backups(env, qtbot)
    tab.select([b.path for b in tab.backups()].index(snapshot))
    seen: dict[str, object] = {}

    def fill(dialog: PreUpgradeRestoreDialog) -> None:
        def edit(name: str) -> QLineEdit:
            return dialog.findChild(QLineEdit, f"pre_upgrade_restore.{name}")

        ok = dialog.findChild(QPushButton, "pre_upgrade_restore.ok")
        seen["code_shown"] = edit("breakglass_code").isVisibleTo(dialog)  # the lead's way first
        edit("password").setText(PASSWORDS["admin"])
        dialog.findChild(QRadioButton, "pre_upgrade_restore.by_breakglass").setChecked(True)
        seen["lead_shown"] = edit("lead").isVisibleTo(dialog)
        ok.click()  # no code typed
        seen["no_code"] = dialog.error_label.text()
        edit("breakglass_code").setText(env.breakglass_code)
        ok.click()  # no reason given
        seen["no_reason"] = dialog.error_label.text()
        edit("reason").setText(REASON)
        dialog.findChild(QCheckBox, "pre_upgrade_restore.understood").setChecked(True)
        dialog.grab().save(str(tmp_path / "pre-upgrade-restore-breakglass.png"))
        ok.click()

    dialogs.set_next_dialog_handler(fill)
    with qtbot.waitSignal(win.locked, timeout=20000):
        tab.restore_button.click()
    assert seen["code_shown"] is False and seen["lead_shown"] is False
    assert "break-glass code must type it" in str(seen["no_code"])
    assert "reason for using the break-glass code" in str(seen["no_reason"])
    notice = win.unlock_widget.notice_label.text()
    assert "version 1 again" in notice and win.unlock_widget.error_text() == ""
    assert _format(env) == 1 and _names(env, "drsmith") == {"Before"}
    (event,) = _restored_events(env)
    assert event.details["breakglass"] is True and event.details["reason"] == REASON


@pytest.mark.usefixtures("quiet_dialogs")
def test_the_unlock_screen_dialog_refuses_a_pre_upgrade_backup_naming_the_step(
    upgraded, qtbot
) -> None:
    from gpshare.ui.restore_backup import RestoreBackupDialog

    env, snapshot = upgraded
    infos = [b for b in backup.list_backups(Vault.open(env.folder)) if b.path == snapshot]
    dialog = RestoreBackupDialog(env.folder, infos, env.clock, "admin")
    qtbot.addWidget(dialog)
    dialog.password_edit.setText(PASSWORDS["admin"])
    dialog.submit()
    assert dialog.restored_notice is None
    assert "--undo-upgrade" in dialog.error_label.text()
    assert "Admin › Backups" in dialog.error_label.text()
    assert _format(env) == 2
