"""The transitional shims at the old store paths are the moved modules themselves, so code
and tests that patch `gpshare.store.db.X` or `gpshare.store.repositories.f` patch what runs."""

from __future__ import annotations

import pytest

from gpshare.store import db, repositories
from gpshare.store.sqlcipher import db as engine_db
from gpshare.store.sqlcipher import repositories as engine_repo


def test_the_old_paths_are_the_engine_modules() -> None:
    assert db is engine_db
    assert repositories is engine_repo


def test_patching_the_old_path_changes_what_the_engine_calls(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    extra = (engine_db.LATEST_SCHEMA_VERSION + 1, "9999_extra.sql", "SELECT 1;")
    real = db.migration_files
    monkeypatch.setattr(db, "migration_files", lambda: [*real(), extra])
    assert engine_db.migration_files()[-1] == extra


def test_the_migrations_ship_with_the_engine_package() -> None:
    files = engine_db.migration_files()
    assert [v for v, _n, _s in files] == list(range(1, len(files) + 1))
    assert files[0][1] == "0001_initial.sql" and "CREATE TABLE" in files[0][2]
    assert engine_db.LATEST_SCHEMA_VERSION == len(files) >= 6
