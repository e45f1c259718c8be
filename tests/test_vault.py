"""The vault: key slots, unlock, back-off, header MAC, bad folders, keyring."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from gpshare.demo import add_new_user, choose_own_password
from gpshare.errors import PermissionDenied, ValidationFailed
from gpshare.services import open_session, open_session_keyring, recover_with_code
from gpshare.store import crypto
from gpshare.store.errors import (
    CorruptDatabaseError,
    DisabledUserError,
    KeyringUnavailableError,
    LockedOutError,
    NotAVaultError,
    TamperedError,
    UnknownUserError,
    VaultBusyError,
    VaultFormatError,
    WrongPasswordError,
)
from gpshare.store.vault import Vault, backoff_seconds, slot_check
from tests.conftest import PASSWORDS
from tests.storehelp import raw_connection


def test_unlock_with_right_password_opens_the_database(vault_env):
    s = vault_env.session("drsmith")
    assert s.user.role == "clinician" and s.user.full_name == "Dr Alex Smith"
    assert s.practice.settings()["practice_ods_code"] == "B86001"
    s.close()


def test_wrong_password_is_refused_and_audited_after_next_unlock(vault_env):
    with pytest.raises(WrongPasswordError, match="not right"):
        vault_env.session("drsmith", "not-the-password")
    vault_env.clock.advance(5)
    lead = vault_env.session("lead")
    events = [e for e in lead.audit_trail.audit_log() if e.action == "unlock_failed"]
    assert events and events[0].details["username"] == "drsmith"
    assert events[0].details["reason"] == "wrong password"
    lead.close()


def test_failed_unlocks_back_off_exponentially_and_cap(vault_env):
    assert [backoff_seconds(n) for n in (1, 2, 3, 4, 5, 6, 7)] == [1, 2, 4, 8, 16, 30, 30]
    with pytest.raises(WrongPasswordError):
        vault_env.session("drsmith", "bad-password-1")
    # Immediately again: locked out, without even trying the password.
    with pytest.raises(LockedOutError) as info:
        vault_env.session("drsmith", PASSWORDS["drsmith"])
    assert 0 < info.value.retry_after <= 1
    vault_env.clock.advance(1.1)
    with pytest.raises(WrongPasswordError):
        vault_env.session("drsmith", "bad-password-2")
    vault_env.clock.advance(1.5)
    with pytest.raises(LockedOutError, match="Wait 1 second before"):
        vault_env.session("drsmith", PASSWORDS["drsmith"])
    vault_env.clock.advance(1)
    s = vault_env.session("drsmith")  # success resets the counter
    s.close()
    assert Vault.open(vault_env.folder).retry_after("drsmith", vault_env.clock) == 0


def test_unknown_and_disabled_users_get_specific_messages(vault_env):
    with pytest.raises(UnknownUserError, match="no user called 'nobody'"):
        vault_env.session("nobody", "whatever-password")
    admin = vault_env.session("admin")
    admin.users.disable_user("drjones")
    admin.close()
    vault_env.clock.advance(60)
    with pytest.raises(DisabledUserError, match="disabled"):
        vault_env.session("drjones")


def test_password_change_rewraps_only_that_slot(vault_env):
    before = {s["id"]: s for s in Vault.open(vault_env.folder).slots()}
    s = vault_env.session("drsmith")
    s.users.change_password(PASSWORDS["drsmith"], "a-brand-new-password")
    s.close()
    after = {s["id"]: s for s in Vault.open(vault_env.folder).slots()}
    changed = {k for k in after if after[k] != before.get(k)}
    assert changed == {Vault.open(vault_env.folder).password_slot_id("drsmith")}
    with pytest.raises(WrongPasswordError):
        vault_env.session("drsmith")
    vault_env.clock.advance(60)
    vault_env.session("drsmith", "a-brand-new-password").close()


def test_password_rules_are_explained(vault_env):
    s = vault_env.session("drsmith")
    with pytest.raises(ValidationFailed, match="at least 10 characters"):
        s.users.change_password(PASSWORDS["drsmith"], "short")
    with pytest.raises(WrongPasswordError, match="not your current password"):
        s.users.change_password("wrong-old-password", "a-long-enough-password")
    s.close()


def test_admin_reset_gives_one_time_password_that_must_be_changed(vault_env):
    admin = vault_env.session("admin")
    temp = admin.users.reset_password("drjones")
    admin.close()
    s = vault_env.session("drjones", temp)
    assert s.user.must_change_password
    s.users.change_password(temp, "jones-chosen-password")
    s.close()
    s = vault_env.session("drjones", "jones-chosen-password")
    assert not s.user.must_change_password
    s.close()


def test_new_user_must_choose_their_own_password_before_reading_or_signing(vault_env):
    """The admin who typed the initial password can never act as the new clinician."""
    from gpshare.errors import PasswordChangeRequired
    from tests.conftest import SCENARIOS

    smith = vault_env.session("drsmith")
    record = smith.assessments.start_assessment(
        answers=json.loads((SCENARIOS / "01-bruised-toddler-parents-agree.json").read_text())[
            "answers"
        ]
    )
    smith.assessments.complete(record.id)
    smith.close()
    admin = vault_env.session("admin")
    admin.users.add_user("drkhan", "Dr Noor Khan", "clinician", "admin-typed-this-1", "4567890")
    [added] = [u for u in admin.users.list_users() if u.username == "drkhan"]
    assert added.must_change_password
    admin.close()

    khan = vault_env.session("drkhan", "admin-typed-this-1")
    assert khan.user.must_change_password
    for attempt in (
        lambda: khan.assessments.list_records(),
        lambda: khan.assessments.start_assessment(answers={}),
        lambda: khan.assessments.get_record(record.id),
        lambda: khan.letters.generate_letter(record.id, "admin-typed-this-1"),
    ):
        with pytest.raises(PasswordChangeRequired, match="choose your own password"):
            attempt()
    khan.users.change_password("admin-typed-this-1", "khan-own-choice-22")
    mine = khan.assessments.start_assessment(
        answers=json.loads((SCENARIOS / "01-bruised-toddler-parents-agree.json").read_text())[
            "answers"
        ]
        | {"prior_concerns_acknowledged": True}
    )
    khan.assessments.complete(mine.id)
    assert khan.letters.generate_letter(
        mine.id, "khan-own-choice-22"
    ).pdf  # signs with their own key
    khan.close()
    with pytest.raises(WrongPasswordError):
        vault_env.session("drkhan", "admin-typed-this-1")
    vault_env.clock.advance(60)  # past the failed-unlock back-off
    vault_env.session("drkhan", "khan-own-choice-22").close()


def test_only_admins_manage_users_and_attempts_are_audited(vault_env):
    s = vault_env.session("lead")
    with pytest.raises(PermissionDenied, match="(?i)not permitted for your role"):
        s.users.add_user("eve", "Eve", "admin", "eve-password-long")
    with pytest.raises(PermissionDenied):
        s.users.reset_password("drsmith")
    with pytest.raises(PermissionDenied):
        s.practice.update_settings({"auto_lock_minutes": "1"})
    denied = [e for e in s.audit_trail.audit_log() if e.action == "permission_denied"]
    assert {e.details["attempted"] for e in denied} == {
        "add_user",
        "reset_password",
        "change_settings",
    }
    s.close()


def test_add_user_validates_each_field(vault_env):
    admin = vault_env.session("admin")
    with pytest.raises(ValidationFailed) as info:
        admin.users.add_user("Bad Name!", "", "boss", "x", "12")
    fields = {e["field"] for e in info.value.errors}
    assert fields == {"username", "role", "name", "gmc", "password"}
    with pytest.raises(ValidationFailed, match="already a user"):
        admin.users.add_user("drsmith", "Another Smith", "clinician", "another-password")
    admin.close()


def test_settings_validation_names_the_setting(vault_env):
    admin = vault_env.session("admin")
    with pytest.raises(ValidationFailed) as info:
        admin.practice.update_settings(
            {"auto_lock_minutes": "0", "practice_secure_email": "not-an-email", "colour": "red"}
        )
    messages = {e["field"]: e["message"] for e in info.value.errors}
    assert "1 to 60" in messages["auto_lock_minutes"]
    assert "nhs.net" in messages["practice_secure_email"]
    assert "not a setting" in messages["colour"]
    admin.practice.update_settings({"auto_lock_minutes": "10"})
    assert admin.practice.settings()["auto_lock_minutes"] == "10"
    admin.close()


def test_recovery_code_resets_a_forgotten_password(vault_env):
    temp = recover_with_code(
        vault_env.folder,
        vault_env.recovery_code.lower().replace("-", " "),
        "admin",
        vault_env.clock,
    )
    s = vault_env.session("admin", temp)
    assert s.user.must_change_password
    s.close()
    with pytest.raises(WrongPasswordError, match="recovery code"):
        recover_with_code(
            vault_env.folder, "AAAA-BBBB-CCCC-DDDD-EEEE-FFFF-GGGG-HHHH", "admin", vault_env.clock
        )


def test_edited_header_is_detected_after_unlock(vault_env):
    path = vault_env.folder / "vault.json"
    header = json.loads(path.read_text())
    header["practice_name"] = "Evil Surgery"
    path.write_text(json.dumps(header))
    with pytest.raises(TamperedError, match="changed outside gpshare"):
        vault_env.session("drsmith")


def test_copied_slot_does_not_open(vault_env):
    """A slot copied under another user's id fails GCM authentication (slot id is AD)."""
    path = vault_env.folder / "vault.json"
    header = json.loads(path.read_text())
    vault = Vault.open(vault_env.folder)
    smith = next(s for s in header["slots"] if s["id"] == vault.password_slot_id("drsmith"))
    jones = next(s for s in header["slots"] if s["id"] == vault.password_slot_id("drjones"))
    jones.update({k: smith[k] for k in ("salt", "nonce", "wrapped", "kdf")})
    path.write_text(json.dumps(header))
    # A naive copy breaks the slot's keyless checksum: named as damage, not a wrong password.
    with pytest.raises(TamperedError, match="key slot for 'drjones' in vault.json is damaged"):
        open_session(vault_env.folder, "drjones", PASSWORDS["drsmith"], vault_env.clock)
    # A careful attacker recomputes the checksum; GCM (slot id as AD) still refuses it.
    jones["check"] = slot_check(jones)
    path.write_text(json.dumps(header))
    with pytest.raises(WrongPasswordError):
        open_session(vault_env.folder, "drjones", PASSWORDS["drsmith"], vault_env.clock)


def test_deleted_header_and_foreign_folder(vault_env, tmp_path):
    (vault_env.folder / "vault.json").unlink()
    with pytest.raises(NotAVaultError, match="vault.json is missing"):
        vault_env.session("drsmith")
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(NotAVaultError, match="not a gpshare vault"):
        open_session(empty, "x", "y")
    (empty / "vault.json").write_text('{"hello": 1}')
    with pytest.raises(NotAVaultError):
        open_session(empty, "x", "y")
    with pytest.raises(NotAVaultError, match="not a folder"):
        open_session(tmp_path / "missing", "x", "y")


def test_newer_format_is_refused_clearly(vault_env):
    path = vault_env.folder / "vault.json"
    header = json.loads(path.read_text())
    header["format_version"] = 99
    path.write_text(json.dumps(header))
    with pytest.raises(VaultFormatError, match="newer version of gpshare"):
        vault_env.session("drsmith")


def test_truncated_database_is_reported_not_crashed(vault_env):
    db = vault_env.folder / "records.db"
    for suffix in ("-wal", "-shm"):
        (vault_env.folder / f"records.db{suffix}").unlink(missing_ok=True)
    data = db.read_bytes()
    db.write_bytes(data[: len(data) // 3])
    with pytest.raises(CorruptDatabaseError, match="gpshare restore"):
        vault_env.session("drsmith")


def test_flipped_page_is_found_by_integrity_check(vault_env):
    from gpshare.store.sqlcipher import db as dbmod

    s = vault_env.session("admin")
    s.close()
    path = vault_env.folder / "records.db"
    data = bytearray(path.read_bytes())
    data[4096 * 2 + 100] ^= 0xFF  # inside page 3, after the first page (which holds the key check)
    path.write_bytes(bytes(data))
    try:
        s = vault_env.session("admin")
    except CorruptDatabaseError:
        return  # also acceptable: detected at open
    problems = dbmod.integrity_problems(raw_connection(s))
    s.close()
    assert problems and any("page" in p.lower() or "hmac" in p.lower() for p in problems)


def test_second_instance_is_told_the_vault_is_open(vault_env):
    s = vault_env.session("drsmith")
    with pytest.raises(VaultBusyError, match="already open"):
        vault_env.session("lead")
    s.close()
    vault_env.session("lead").close()


@pytest.mark.skipif(
    os.geteuid() == 0 if hasattr(os, "geteuid") else True, reason="root ignores file permissions"
)
def test_read_only_folder_is_reported(vault_env):  # pragma: no cover - CI runs as root
    os.chmod(vault_env.folder, 0o500)
    try:
        with pytest.raises(Exception, match="not allowed to write"):
            vault_env.session("drsmith")
    finally:
        os.chmod(vault_env.folder, 0o700)


def test_read_only_folder_when_root_uses_a_failing_write(vault_env, monkeypatch):
    """Root ignores permission bits, so simulate EROFS at the write call."""
    import errno

    from gpshare.store import files

    real = files.tempfile.mkstemp

    def readonly(*a, **k):
        raise OSError(errno.EROFS, "Read-only file system")

    monkeypatch.setattr(files.tempfile, "mkstemp", readonly)
    from gpshare.store.errors import StorageWriteError

    with pytest.raises(StorageWriteError, match="not allowed to write"):
        vault_env.session("drsmith")
    monkeypatch.setattr(files.tempfile, "mkstemp", real)


def test_disk_full_while_saving_keeps_old_header(vault_env, monkeypatch):
    import errno

    from gpshare.store import files
    from gpshare.store.errors import StorageWriteError

    before = (vault_env.folder / "vault.json").read_bytes()
    real_fsync = os.fsync

    def full(fd):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(files.os, "fsync", full)
    with pytest.raises(StorageWriteError, match="disk .* is full"):
        vault_env.session("drsmith")
    monkeypatch.setattr(files.os, "fsync", real_fsync)
    assert (vault_env.folder / "vault.json").read_bytes() == before
    assert not [p for p in vault_env.folder.iterdir() if p.name.endswith(".tmp")]
    vault_env.clock.advance(60)
    vault_env.session("drsmith").close()


def test_keyring_remember_me_round_trip(vault_env, memory_keyring):
    s = vault_env.session("drsmith")
    s.vault.enable_keyring(s.db_key, "drsmith", s._user_secret)
    s.close()
    assert memory_keyring.store  # a random secret, not the password
    assert PASSWORDS["drsmith"] not in memory_keyring.store.values()
    s = open_session_keyring(vault_env.folder, "drsmith", vault_env.clock)
    assert s.user.username == "drsmith"
    s.vault.disable_keyring(s.db_key, "drsmith")
    s.close()
    assert not memory_keyring.store
    with pytest.raises(UnknownUserError, match="does not remember"):
        open_session_keyring(vault_env.folder, "drsmith", vault_env.clock)


def test_no_keyring_backend_is_said_plainly(vault_env, no_keyring):
    s = vault_env.session("drsmith")
    with pytest.raises(KeyringUnavailableError, match="No secure keyring"):
        s.vault.enable_keyring(s.db_key, "drsmith", s._user_secret)
    s.close()
    assert not any(sl["type"] == "os-keyring" for sl in Vault.open(vault_env.folder).slots())


def test_production_kdf_parameters_are_pinned():
    assert crypto.PRODUCTION_FLOOR.memory_kib == 64 * 1024
    assert crypto.PRODUCTION_FLOOR.iterations == 3
    assert crypto.CALIBRATION_TARGET_SECONDS == 0.5
    params = crypto.calibrate(
        target_seconds=0.05
    )  # never below the floor, however fast the machine
    assert params.memory_kib >= 64 * 1024 and params.iterations == 3


def test_slot_kdf_parameters_are_bound_to_the_slot(vault_env):
    path = vault_env.folder / "vault.json"
    header = json.loads(path.read_text())
    slot = next(
        s
        for s in header["slots"]
        if s["id"] == Vault.open(vault_env.folder).password_slot_id("drsmith")
    )
    slot["kdf"]["iterations"] = slot["kdf"]["iterations"] + 1
    slot["check"] = slot_check(slot)  # an attacker recomputes the keyless checksum
    path.write_text(json.dumps(header))
    with pytest.raises(WrongPasswordError):
        vault_env.session("drsmith")


def test_vault_files_are_private(vault_env):
    for name in ("vault.json",):
        assert oct((vault_env.folder / name).stat().st_mode & 0o777) == "0o600"


def test_new_vault_refuses_an_existing_vault_folder(vault_env):
    from gpshare.services import create_vault
    from gpshare.store.errors import StorageWriteError

    with pytest.raises(StorageWriteError, match="already holds a vault"):
        create_vault(
            vault_env.folder,
            practice_name="X",
            admin_username="admin2",
            admin_full_name="A",
            admin_password="long-enough-pass",
            kdf=crypto.CHEAP_TEST_KDF,
        )


def test_stdlib_sqlite_cannot_read_the_database(vault_env):
    import sqlite3

    conn = sqlite3.connect(vault_env.folder / "records.db")
    with pytest.raises(sqlite3.DatabaseError):
        conn.execute("SELECT * FROM sqlite_master").fetchall()
    assert not (vault_env.folder / "records.db").read_bytes().startswith(b"SQLite format 3")


def test_every_file_lacks_marker_strings(vault_env, tmp_path):
    markers = ["zylphoria", "Zylphoria", "Quaxmire", "9434765919", "MARKERNARRATIVE"]
    admin = vault_env.session("admin")
    initial = add_new_user(admin, "zylphoria", "Dr Zylphoria Quaxmire", "clinician", "3456789")
    admin.close()
    choose_own_password(
        vault_env.folder, vault_env.clock, "zylphoria", initial, "zylphoria-password"
    )
    s = vault_env.session("zylphoria", "zylphoria-password")
    rec = s.assessments.start_assessment(
        answers={
            "child_given_name": "Zylphoria",
            "child_family_name": "Quaxmire",
            "nhs_number": "9434765919",
            "concern_narrative": "MARKERNARRATIVE " * 50,
        }
    )
    s.assessments.save_draft(
        rec.id, rec.answers | {"concern_opinion": "MARKERNARRATIVE"}, "concern"
    )
    s.backups.backup_now(automatic=True)
    s.close()
    found = []
    for path in Path(vault_env.folder).rglob("*"):
        if path.is_file():
            data = path.read_bytes()
            for marker in markers:
                if marker.encode() in data or marker.encode("utf-16-le") in data:
                    found.append((path.name, marker))
    assert found == []  # slot ids are pseudonyms: not even the username is on disk in plaintext


def test_remembered_login_follows_password_changes_and_resets(vault_env, memory_keyring):
    s = vault_env.session("drsmith")
    s.users.remember_login()
    s.users.change_password(PASSWORDS["drsmith"], "smith-changed-password")
    s.close()
    s = open_session_keyring(vault_env.folder, "drsmith", vault_env.clock)
    # the remembered login carries the *new* user secret: signing keys still open
    from gpshare.store.sqlcipher import repositories as repo

    stored = repo.active_signing_key(raw_connection(s), "drsmith")
    assert (
        crypto.unwrap(
            crypto.subkey(s._user_secret, "signing key"),
            stored[1].nonce,
            stored[1].wrapped,
            f"{s.vault.vault_id}:signing:drsmith".encode(),
        )
        is not None
    )
    s.lock("manual")
    admin = vault_env.session("admin")
    admin.users.reset_password("drsmith")
    admin.close()
    with pytest.raises(UnknownUserError, match="does not remember"):
        open_session_keyring(vault_env.folder, "drsmith", vault_env.clock)
    lead = vault_env.session("lead")
    actions = [e.action for e in lead.audit_trail.audit_log()]
    assert "login_remembered" in actions and "lock" in actions
    lead.close()


def test_failed_password_change_leaves_old_password_working(vault_env, monkeypatch):
    from gpshare.store.sqlcipher import repositories as repo

    s = vault_env.session("drsmith")

    def boom(*a, **k):
        raise RuntimeError("simulated failure inside the transaction")

    monkeypatch.setattr(repo, "replace_signing_key_wrap", boom)
    with pytest.raises(RuntimeError):
        s.users.change_password(PASSWORDS["drsmith"], "never-applied-password")
    s.close()
    monkeypatch.undo()
    vault_env.session("drsmith").close()  # the old password still opens the vault
