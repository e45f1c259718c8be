"""Recovery on a bad day: restore repairs a damaged vault, crash-safely; backups stay good;
failed-unlock reports are labelled as claims; files are private; messages name the real fault."""

from __future__ import annotations

import json
import os
import shutil
import stat
import sys
from pathlib import Path

import pytest

from gpshare import cli
from gpshare.demo import add_new_user, choose_own_password
from gpshare.errors import PermissionDenied
from gpshare.services import restore
from gpshare.store import backup
from gpshare.store.errors import (
    CorruptDatabaseError,
    NotAVaultError,
    StorageWriteError,
    StoreError,
    UnknownUserError,
    WrongPasswordError,
)
from gpshare.store.sqlcipher import db as dbmod
from gpshare.store.vault import Vault
from tests.conftest import PASSWORDS
from tests.storehelp import raw_connection


def _names(env) -> set[str]:
    s = env.session("drsmith")
    try:
        return {r.child.given_name for r in s.assessments.list_records()}
    finally:
        s.close()


def _break_missing_db(folder: Path) -> None:
    (folder / "records.db").unlink()


def _break_empty_db(folder: Path) -> None:
    (folder / "records.db").write_bytes(b"")


def _break_damaged_db(folder: Path) -> None:
    data = bytearray((folder / "records.db").read_bytes())
    data[200] ^= 0xFF
    (folder / "records.db").write_bytes(bytes(data))


def _break_missing_header(folder: Path) -> None:
    (folder / "vault.json").unlink()


def _break_edited_header(folder: Path) -> None:
    header = json.loads((folder / "vault.json").read_text())
    header["practice_name"] = "Evil Surgery"
    (folder / "vault.json").write_text(json.dumps(header))


def _break_everything(folder: Path) -> None:
    for name in ("records.db", "records.db-wal", "records.db-shm", "vault.json"):
        (folder / name).unlink(missing_ok=True)


@pytest.mark.parametrize(
    "damage",
    [
        _break_missing_db,
        _break_empty_db,
        _break_damaged_db,
        _break_missing_header,
        _break_edited_header,
        _break_everything,
    ],
)
def test_restore_repairs_the_cases_whose_messages_send_you_there(with_backup, damage):
    env, snapshot = with_backup
    damage(env.folder)
    with pytest.raises(StoreError, match="restore"):
        env.session("drsmith")
    aside = restore(env.folder, snapshot, "admin", PASSWORDS["admin"], env.clock)
    assert aside.name.startswith("replaced-")
    assert _names(env) == {"Before"}
    lead = env.session("lead")
    try:
        assert lead.audit_trail.verify_audit().ok
        assert any(e.action == "backup_restored" for e in lead.audit_trail.audit_log())
    finally:
        lead.close()
    assert not (env.folder / backup.JOURNAL_NAME).exists()
    assert not list(env.folder.glob(".*.restoring"))


def test_restore_from_the_cli_with_no_usable_live_vault(with_backup, capsys, monkeypatch):
    env, _snapshot = with_backup
    _break_everything(env.folder)
    monkeypatch.setenv("GPSHARE_PASSWORD", PASSWORDS["admin"])
    code = cli.main(["restore", "--vault", str(env.folder), "--user", "admin"])
    assert code == 0, capsys.readouterr()
    assert "Restored" in capsys.readouterr().out
    assert _names(env) == {"Before"}


def test_restore_authenticates_against_the_snapshot(with_backup):
    env, snapshot = with_backup
    with pytest.raises(WrongPasswordError, match="does not open this backup"):
        restore(env.folder, snapshot, "admin", "not-the-password", env.clock)
    with pytest.raises(UnknownUserError, match="no user called 'nobody' in this backup"):
        restore(env.folder, snapshot, "nobody", "whatever-password", env.clock)
    with pytest.raises(PermissionDenied, match="only an administrator"):
        restore(env.folder, snapshot, "drsmith", PASSWORDS["drsmith"], env.clock)
    assert not list(env.folder.glob("replaced-*"))
    assert _names(env) == {"Before", "After"}
    lead = env.session("lead")
    try:  # the live vault was healthy, so the refused attempt is in its log
        denied = [e for e in lead.audit_trail.audit_log() if e.action == "permission_denied"]
        assert any(e.details.get("attempted") == "restore" for e in denied)
    finally:
        lead.close()


def _count_calls(monkeypatch, target, name):
    """Make the n-th call of `target.name` raise, as if the process died there."""
    original = getattr(target, name)
    state = {"left": None}

    def wrapper(*args, **kwargs):
        if state["left"] is not None:
            if state["left"] == 0:
                raise KeyboardInterrupt("simulated kill")
            state["left"] -= 1
        return original(*args, **kwargs)

    monkeypatch.setattr(target, name, wrapper)
    return state


@pytest.mark.parametrize("stop_after", range(13))
def test_interrupted_restore_is_rolled_back_or_forward_on_next_open(
    with_backup, monkeypatch, stop_after
):
    """Stop the restore at each rename/write: the next open sees all-old or all-new."""
    env, snapshot = with_backup
    state = _count_calls(monkeypatch, os, "replace")
    state["left"] = stop_after
    try:
        restore(env.folder, snapshot, "admin", PASSWORDS["admin"], env.clock)
        finished = True
    except KeyboardInterrupt:
        finished = False
    state["left"] = None
    names = _names(env)  # opening finishes or undoes the interrupted restore
    assert names in ({"Before"}, {"Before", "After"}), names
    assert finished is False or names == {"Before"}
    assert not (env.folder / backup.JOURNAL_NAME).exists()
    assert not list(env.folder.glob(".*.restoring"))
    lead = env.session("lead")
    try:
        assert dbmod.integrity_problems(raw_connection(lead)) == []
        assert lead.audit_trail.verify_audit().ok
        # However late the kill, a restore that happened is in the chain, exactly once.
        restored = [e for e in lead.audit_trail.audit_log() if e.action == "backup_restored"]
        assert len(restored) == (1 if names == {"Before"} else 0), restored
    finally:
        lead.close()


def test_no_init_advice_where_a_vault_lived(with_backup):
    env, _ = with_backup
    _break_everything(env.folder)
    with pytest.raises(NotAVaultError) as info:
        env.session("drsmith")
    assert "gpshare init" not in str(info.value)
    assert "gpshare restore" in str(info.value)


def test_no_new_vault_is_created_where_a_vault_lived(with_backup):
    from tests.conftest import make_vault

    env, _ = with_backup
    _break_everything(env.folder)
    with pytest.raises(StorageWriteError, match="a vault lived here"):
        make_vault(env.folder, env.clock)  # what `init` and the demo bootstrap call
    assert not (env.folder / "vault.json").exists()


def test_restored_older_vault_opens_on_computers_that_saw_the_newer_head(
    with_backup, tmp_path, monkeypatch
):
    env, snapshot = with_backup
    monkeypatch.setenv("GPSHARE_ANCHOR_DIR", str(tmp_path / "other-computer"))
    env.session("lead").close()  # the other computer sees the newest head
    monkeypatch.setenv("GPSHARE_ANCHOR_DIR", str(tmp_path / "admin-computer"))
    restore(env.folder, snapshot, "admin", PASSWORDS["admin"], env.clock)
    monkeypatch.setenv("GPSHARE_ANCHOR_DIR", str(tmp_path / "other-computer"))
    assert _names(env) == {"Before"}  # a sealed restore record covers that newer head


def test_empty_database_is_never_reinitialised_nor_backed_up(vault_env):
    (vault_env.folder / "records.db").write_bytes(b"")
    with pytest.raises(CorruptDatabaseError, match="is empty"):
        vault_env.session("admin")
    assert (vault_env.folder / "records.db").stat().st_size == 0
    assert not (vault_env.folder / "backups").exists()
    with pytest.raises(StorageWriteError, match="never creates a database over"):
        dbmod.open_database(vault_env.folder / "records.db", b"k" * 32, create=True)


def test_backup_of_a_damaged_database_is_refused_and_good_ones_kept(vault_env):
    admin = vault_env.session("admin")
    good = admin.backups.backup_now()
    key = admin.db_key
    admin.close()
    db_path = vault_env.folder / "records.db"
    size = db_path.stat().st_size
    data = bytearray(db_path.read_bytes())
    data[(size // 4096 // 2) * 4096 + 300] ^= 0xFF
    db_path.write_bytes(bytes(data))
    conn = dbmod.open_database(db_path, key)
    vault = Vault.open(vault_env.folder)
    vault.lock.acquire()
    try:
        with pytest.raises(CorruptDatabaseError, match="no backup was taken"):
            backup.create_backup(conn, key, vault, vault_env.clock.now(), keep=1)
    finally:
        vault.lock.release()
        conn.close()
    assert [b.path for b in backup.list_backups(vault)] == [good]
    backup.check_backup(good, key)


def test_integrity_is_checked_daily_on_open_and_recorded(vault_env):
    def checks() -> int:
        lead = vault_env.session("lead")
        try:
            return sum(
                e.action == "integrity_checked" for e in lead.audit_trail.audit_log(limit=None)
            )
        finally:
            lead.close()

    first = checks()
    assert first == 1 and Vault.open(vault_env.folder).integrity_checked_at() is not None
    vault_env.clock.advance(3600)
    assert checks() == 1  # not again within the day
    vault_env.clock.advance(24 * 3600)
    assert checks() == 2


def test_corrupt_snapshot_is_blamed_on_the_snapshot(with_backup):
    env, snapshot = with_backup
    data = bytearray((snapshot / "records.db").read_bytes())
    data[200] ^= 0xFF
    (snapshot / "records.db").write_bytes(bytes(data))
    with pytest.raises(CorruptDatabaseError) as info:
        restore(env.folder, snapshot, "admin", PASSWORDS["admin"], env.clock)
    message = str(info.value)
    assert f"The backup {snapshot.name} is damaged" in message
    assert "live vault has not been changed" in message
    assert _names(env) == {"Before", "After"}


def test_killed_backup_folders_are_cleared_by_the_next_backup(vault_env):
    stale = vault_env.folder / "backups" / ".incomplete-20260101T000000000000Z"
    stale.mkdir(parents=True)
    (stale / "records.db").write_bytes(b"partial")
    admin = vault_env.session("admin")
    try:
        admin.backups.backup_now()
    finally:
        admin.close()
    assert not stale.exists()
    assert len(backup.list_backups(Vault.open(vault_env.folder))) == 1


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX modes")
def test_vault_files_are_created_owner_only(vault_env):
    s = vault_env.session("drsmith")
    try:
        for name in ("records.db", "vault.lock", "vault.json", "records.db-wal"):
            mode = stat.S_IMODE((vault_env.folder / name).stat().st_mode)
            assert mode == 0o600, (name, oct(mode))
    finally:
        s.close()


def test_forged_failure_reports_are_labelled_claims_and_cleaned(vault_env):
    vault = Vault.open(vault_env.folder)
    header = json.loads((vault_env.folder / "vault.json").read_text())
    header["pending_failures"] = [
        {"at": "2026-11-25T10:00:05+00:00", "user_key": vault.user_key("lead"), "reason": "x<y>"},
        {
            "at": "1999-01-01T00:00:00+00:00",
            "user_key": vault.user_key("drjones"),
            "reason": "wrong password",
            "workstation": "evil host; rm -rf",
        },
        {"at": "not a time", "user_key": "'; DROP TABLE", "reason": "wrong password"},
        {"at": "2026-11-25T09:00:00", "user_key": 42, "reason": None},  # a time with no zone
        "not even an object",
    ]
    (vault_env.folder / "vault.json").write_text(json.dumps(header))
    # A sealed clear-out after 1999 makes the back-dated claim implausible.
    s = vault_env.session("admin")
    s.close()
    header = json.loads((vault_env.folder / "vault.json").read_text())
    assert header["pending_failures"] == []
    header["pending_failures"] = [
        {
            "at": "1999-01-01T00:00:00+00:00",
            "user_key": vault.user_key("drjones"),
            "reason": "wrong password",
            "workstation": "evil host; rm -rf",
        },
    ]
    (vault_env.folder / "vault.json").write_text(json.dumps(header))
    vault_env.clock.advance(5)
    lead = vault_env.session("lead")
    try:
        events = [e for e in lead.audit_trail.audit_log(limit=None) if e.action == "unlock_failed"]
    finally:
        lead.close()
    assert len(events) == 5  # 4 objects in the first batch, 1 in the second
    for event in events:
        assert event.details["report"].startswith("unauthenticated: claimed by workstation")
    by_user = {(e.details["username"], e.details["reason"]) for e in events}
    assert ("lead", "unrecognised reason") in by_user
    assert ("(not a user of this vault)", "wrong password") in by_user
    backdated = [e for e in events if e.details.get("implausible")]
    # Both 1999 claims: the new users' first sign-ins (choosing their own passwords) already
    # sealed a clear-out of reports before the first forged batch was planted.
    assert len(backdated) == 2 and {e.details["username"] for e in backdated} == {"drjones"}
    assert all("rm -rf" not in json.dumps(e.details) for e in events)
    assert "evilhostrm-rf" in backdated[0].details["report"]


def test_refused_open_keeps_failure_reports_for_the_next_unlock(vault_env):
    with pytest.raises(WrongPasswordError):
        vault_env.session("drsmith", "not-the-password")
    empty_db = vault_env.folder / "records.db"
    saved = vault_env.folder.parent / "saved.db"
    shutil.copy2(empty_db, saved)
    empty_db.write_bytes(b"")
    vault_env.clock.advance(5)
    with pytest.raises(CorruptDatabaseError):
        vault_env.session("lead")
    shutil.copy2(saved, empty_db)
    vault_env.clock.advance(5)
    lead = vault_env.session("lead")
    try:
        failed = [e for e in lead.audit_trail.audit_log() if e.action == "unlock_failed"]
        assert [e.details["username"] for e in failed] == ["drsmith"]
    finally:
        lead.close()


@pytest.mark.parametrize(
    "planted",
    [
        [],
        {"LEADKEY": 5},
        {"LEADKEY": {"count": "many", "last": "2026-11-25T10:00:00+00:00"}},
        {"LEADKEY": {"count": 3, "last": "2026-11-25T10:00:00"}},  # no zone
        {"LEADKEY": {"count": 10**12, "last": "2026-11-25T09:00:00+00:00"}},
    ],
)
def test_planted_failure_counters_never_crash_unlock(vault_env, planted):
    """The counters are unauthenticated: malformed ones read as "no failures", never a crash."""
    key = Vault.open(vault_env.folder).user_key("lead")
    header = json.loads((vault_env.folder / "vault.json").read_text())
    header["failed_unlocks"] = json.loads(json.dumps(planted).replace("LEADKEY", key))
    (vault_env.folder / "vault.json").write_text(json.dumps(header))
    with pytest.raises(WrongPasswordError):
        vault_env.session("lead", "not-the-password")
    vault_env.clock.advance(31)  # past the longest back-off, whatever was planted
    vault_env.session("lead").close()


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"slots": "none"}, "no usable key slots"),
        ({"slots": [1, "x", None]}, "no usable key slots"),
        ({"vault_id": None}, "has no vault id"),
    ],
)
def test_malformed_header_fields_give_a_message_not_a_traceback(vault_env, change, message):
    header = json.loads((vault_env.folder / "vault.json").read_text())
    header.update(change)
    (vault_env.folder / "vault.json").write_text(json.dumps(header))
    with pytest.raises(StoreError, match=message):
        vault_env.session("lead")


def test_restore_accepts_the_admins_current_password_after_a_change(with_backup):
    """Password changed since the backup: the live vault vouches for it, and the restored
    header carries the admin's current slot so they can sign in with what they just typed."""
    env, snapshot = with_backup
    admin = env.session("admin")
    admin.users.change_password(PASSWORDS["admin"], "brand-new-admin-pass-9")
    admin.close()
    smith = env.session("drsmith")
    smith.users.change_password(PASSWORDS["drsmith"], "smith-changed-pass-9")
    smith.close()
    restore(env.folder, snapshot, "admin", "brand-new-admin-pass-9", env.clock)
    env.session("admin", "brand-new-admin-pass-9").close()
    assert _names(env) == {"Before"}
    lead = env.session("lead")  # everyone else keeps the password they had at backup time
    try:
        assert lead.audit_trail.verify_audit().ok
        assert any(e.action == "backup_restored" for e in lead.audit_trail.audit_log())
    finally:
        lead.close()
    with pytest.raises(WrongPasswordError):  # a colleague's later change is undone too
        env.session("drsmith", "smith-changed-pass-9")
    env.clock.advance(2)  # past the back-off of that failed attempt
    env.session("drsmith").close()  # their password from backup time
    # The admin's slot from the backup was replaced by their current one.
    with pytest.raises(WrongPasswordError):
        env.session("admin", PASSWORDS["admin"])


def test_an_admin_disabled_since_the_backup_cannot_restore_it(with_backup):
    env, _old = with_backup
    admin = env.session("admin")
    initial = add_new_user(admin, "admin2", "Second Admin", "admin")
    admin.close()
    choose_own_password(env.folder, env.clock, "admin2", initial, "second-admin-pass-1")
    admin = env.session("admin")
    snapshot = admin.backups.backup_now()
    admin.users.disable_user("admin2")
    admin.close()
    with pytest.raises(PermissionDenied, match="only an administrator"):
        restore(env.folder, snapshot, "admin2", "second-admin-pass-1", env.clock)
    assert not list(env.folder.glob("replaced-*"))
    # With the live vault gone, the backup's own records are all there is to go on.
    _break_everything(env.folder)
    restore(env.folder, snapshot, "admin2", "second-admin-pass-1", env.clock)
    assert _names(env) == {"Before", "After"}
