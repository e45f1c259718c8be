"""Backups: encrypted snapshots, rotation, integrity-checked restore that keeps old files."""

from __future__ import annotations

import pytest

from gpshare.errors import PermissionDenied
from gpshare.services import restore
from gpshare.store import backup
from gpshare.store.errors import CorruptDatabaseError
from tests.conftest import PASSWORDS
from tests.storehelp import raw_connection


def test_backup_is_encrypted_and_rotated(vault_env):
    admin = vault_env.session("admin")
    admin.practice.update_settings({"backup_keep": "3"})
    paths = []
    for _ in range(5):
        vault_env.clock.advance(61)
        paths.append(admin.backups.backup_now())
    kept = admin.backups.list_backups()
    assert [b.path for b in kept] == list(reversed(paths[-3:]))
    data = (paths[-1] / "records.db").read_bytes()
    assert not data.startswith(b"SQLite format 3")
    backup.check_backup(paths[-1], admin.db_key)
    admin.close()


def test_only_admin_backs_up_on_demand_but_anyone_on_close(vault_env):
    s = vault_env.session("drsmith")
    with pytest.raises(PermissionDenied):
        s.backups.backup_now()
    assert s.backups.backup_now(automatic=True).exists()
    s.close()


def test_restore_brings_back_data_and_keeps_replaced_files(with_backup):
    vault_env, snapshot = with_backup
    aside = restore(vault_env.folder, snapshot, "admin", PASSWORDS["admin"], vault_env.clock)
    assert (aside / "records.db").exists() and (aside / "vault.json").exists()
    s = vault_env.session("drsmith")
    names = {r.child.given_name for r in s.assessments.list_records()}
    assert names == {"Before"}
    s.close()
    lead = vault_env.session("lead")
    assert lead.audit_trail.verify_audit().ok
    assert any(e.action == "backup_restored" for e in lead.audit_trail.audit_log())
    lead.close()


def test_damaged_backup_is_refused_before_anything_changes(vault_env):
    admin = vault_env.session("admin")
    snapshot = admin.backups.backup_now()
    admin.close()
    db = snapshot / "records.db"
    data = bytearray(db.read_bytes())
    data[len(data) // 2] ^= 0xFF
    db.write_bytes(bytes(data))
    with pytest.raises(CorruptDatabaseError):
        restore(vault_env.folder, snapshot, "admin", PASSWORDS["admin"], vault_env.clock)
    assert not list(vault_env.folder.glob("replaced-*"))
    lead = vault_env.session("lead")  # the live vault is untouched and still verifies
    assert lead.audit_trail.verify_audit().ok
    lead.close()


def test_backup_with_broken_audit_chain_is_refused(vault_env):
    admin = vault_env.session("admin")
    raw_connection(admin).execute("DROP TRIGGER audit_no_update")
    raw_connection(admin).execute("UPDATE audit SET actor = 'x' WHERE seq = 2")
    snapshot = admin.backups.backup_now()
    with pytest.raises(CorruptDatabaseError, match="broken audit log"):
        backup.check_backup(snapshot, admin.db_key)
    admin.close()


def test_clinician_cannot_restore(vault_env):
    admin = vault_env.session("admin")
    snapshot = admin.backups.backup_now()
    admin.close()
    with pytest.raises(PermissionDenied):
        restore(vault_env.folder, snapshot, "drsmith", PASSWORDS["drsmith"], vault_env.clock)
