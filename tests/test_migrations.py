"""Migrations: forward-only, one transaction per step, pre-migration backup, committed v1 vault."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from gpshare.services import open_session
from gpshare.store.backup import list_backups
from gpshare.store.sqlcipher import db as dbmod
from gpshare.store.vault import Vault
from tests.storehelp import raw_connection

FIXTURE = Path(__file__).parent / "fixtures" / "vault-v1"
FIXTURE_PASSWORD = "fixture-password-1"


@pytest.fixture
def v1_vault(tmp_path, clock):
    target = tmp_path / "v1"
    shutil.copytree(FIXTURE, target)
    return target


def test_committed_v1_vault_opens_and_verifies(v1_vault, clock):
    s = open_session(v1_vault, "lead", FIXTURE_PASSWORD, clock)
    assert dbmod.schema_version(raw_connection(s)) == dbmod.LATEST_SCHEMA_VERSION
    records = s.assessments.list_records()
    assert {r.status for r in records} == {"completed", "draft"}
    assert s.audit_trail.verify_audit().ok
    s.close()


def test_new_migration_runs_once_with_backup_first(v1_vault, clock, monkeypatch):
    extra = (
        dbmod.LATEST_SCHEMA_VERSION + 1,
        "9999_test.sql",
        "CREATE TABLE test_added (x INTEGER);\nINSERT INTO test_added VALUES (42);",
    )
    real = dbmod.migration_files
    monkeypatch.setattr(dbmod, "migration_files", lambda: [*real(), extra])
    monkeypatch.setattr(dbmod, "LATEST_SCHEMA_VERSION", extra[0])
    before = len(list_backups(Vault.open(v1_vault)))
    s = open_session(v1_vault, "lead", FIXTURE_PASSWORD, clock)
    assert dbmod.schema_version(raw_connection(s)) == extra[0]
    assert raw_connection(s).execute("SELECT x FROM test_added").fetchall() == [(42,)]
    s.close()
    assert len(list_backups(Vault.open(v1_vault))) == before + 1
    clock.advance(5)
    s = open_session(v1_vault, "lead", FIXTURE_PASSWORD, clock)  # second open: nothing pending
    assert raw_connection(s).execute("SELECT count(*) FROM test_added").fetchone()[0] == 1
    s.close()


def test_failing_migration_rolls_back_completely(v1_vault, clock, monkeypatch):
    bad = (
        dbmod.LATEST_SCHEMA_VERSION + 1,
        "9999_bad.sql",
        "CREATE TABLE half_done (x);\nINSERT INTO no_such_table VALUES (1);",
    )
    real = dbmod.migration_files
    monkeypatch.setattr(dbmod, "migration_files", lambda: [*real(), bad])
    monkeypatch.setattr(dbmod, "LATEST_SCHEMA_VERSION", bad[0])
    from gpshare.store.errors import StoreError

    with pytest.raises(StoreError, match="rolled back"):
        open_session(v1_vault, "lead", FIXTURE_PASSWORD, clock)
    monkeypatch.setattr(dbmod, "migration_files", real)
    monkeypatch.setattr(dbmod, "LATEST_SCHEMA_VERSION", real()[-1][0])
    clock.advance(5)
    s = open_session(v1_vault, "lead", FIXTURE_PASSWORD, clock)
    assert dbmod.schema_version(raw_connection(s)) == real()[-1][0]
    assert (
        raw_connection(s)
        .execute("SELECT count(*) FROM sqlite_master WHERE name = 'half_done'")
        .fetchone()[0]
        == 0
    )
    s.close()


def test_database_newer_than_this_version_is_refused(v1_vault, clock, monkeypatch):
    from gpshare.store.errors import VaultFormatError

    monkeypatch.setattr(dbmod, "LATEST_SCHEMA_VERSION", 0)
    with pytest.raises(VaultFormatError, match="newer gpshare"):
        open_session(v1_vault, "lead", FIXTURE_PASSWORD, clock)


def test_v1_fixture_is_really_schema_1_and_gets_migrated(v1_vault, clock):
    from gpshare.store.vault import Vault

    before = len(list_backups(Vault.open(v1_vault)))
    s = open_session(v1_vault, "lead", FIXTURE_PASSWORD, clock)
    columns = {row[1] for row in raw_connection(s).execute("PRAGMA table_info(letters)")}
    assert "unsigned_pdf" in columns  # added by 0002
    s.close()
    assert len(list_backups(Vault.open(v1_vault))) == before + 1  # pre-migration backup
