"""The import-linter contracts in pyproject.toml bite: on a copy of the package, an import the
layers forbid (screen -> storage, domain -> storage) breaks them, and a new module is checked
without editing the contracts."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")

pytestmark = pytest.mark.skipif(not LINT_IMPORTS.exists(), reason="import-linter not installed")


def _copy(tmp_path: Path) -> Path:
    """A copy of gpshare and pyproject.toml that lint-imports can check on its own."""
    shutil.copytree(
        ROOT / "gpshare", tmp_path / "gpshare", ignore=shutil.ignore_patterns("__pycache__")
    )
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    return tmp_path


def _lint(root: Path) -> subprocess.CompletedProcess[str]:
    # The copy comes first on the path, so grimp reads it and not the working tree.
    env = {**os.environ, "PYTHONPATH": str(root)}
    return subprocess.run(
        [str(LINT_IMPORTS), "--no-cache"],
        cwd=root,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )


def _broken(root: Path) -> str:
    """lint-imports' report on `root`, which must have failed."""
    result = _lint(root)
    assert result.returncode != 0, result.stdout
    return result.stdout


def _append(path: Path, line: str) -> None:
    path.write_text(path.read_text(encoding="utf-8") + "\n" + line + "\n", encoding="utf-8")


def test_unchanged_copy_keeps_every_contract(tmp_path: Path) -> None:
    result = _lint(_copy(tmp_path))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 broken" in result.stdout


def test_a_screen_importing_the_store_breaks_the_contract(tmp_path: Path) -> None:
    root = _copy(tmp_path)
    _append(root / "gpshare" / "ui" / "records_view.py", "from gpshare.store import backup")
    out = _broken(root)
    assert "UI and CLI never import the store BROKEN" in out
    assert "gpshare.ui.records_view -> gpshare.store.backup" in out


def test_a_new_screen_module_is_checked_without_editing_the_contract(tmp_path: Path) -> None:
    root = _copy(tmp_path)
    (root / "gpshare" / "ui" / "brand_new_tab.py").write_text(
        "from gpshare.store.files import atomic_write\n", encoding="utf-8"
    )
    out = _broken(root)
    assert "UI and CLI never import the store BROKEN" in out
    assert "gpshare.ui.brand_new_tab -> gpshare.store.files" in out


def test_the_letter_view_importing_the_wizard_shell_again_is_a_circle(tmp_path: Path) -> None:
    root = _copy(tmp_path)
    _append(root / "gpshare" / "ui" / "letter_view.py", "from gpshare.ui.wizard import shell")
    out = _broken(root)
    assert "UI modules import one another without circles BROKEN" in out


def test_a_domain_module_importing_the_store_breaks_the_layers(tmp_path: Path) -> None:
    root = _copy(tmp_path)
    _append(root / "gpshare" / "records.py", "from gpshare.store import audit  # noqa")
    out = _broken(root)
    assert "Layers:" in out and "BROKEN" in out
    assert "gpshare.records -> gpshare.store.audit" in out


def test_a_new_top_level_module_must_be_placed_in_a_layer(tmp_path: Path) -> None:
    root = _copy(tmp_path)
    (root / "gpshare" / "unplaced.py").write_text('"""New and pure."""\n', encoding="utf-8")
    out = _broken(root)
    assert "unplaced" in out


def test_a_domain_module_importing_qt_breaks_the_contract(tmp_path: Path) -> None:
    root = _copy(tmp_path)
    (root / "gpshare" / "new_rule.py").write_text("from PySide6 import QtCore\n", encoding="utf-8")
    out = _broken(root)
    assert "imports Qt BROKEN" in out


def test_the_services_importing_the_sqlcipher_engine_break_the_contract(tmp_path: Path) -> None:
    root = _copy(tmp_path)
    services = root / "gpshare" / "services.py"
    if not services.exists():  # a package of use-case modules (issue #12)
        services = root / "gpshare" / "services" / "__init__.py"
    _append(services, "from gpshare.store.sqlcipher import repositories as _engine_repo  # noqa")
    out = _broken(root)
    assert "Only gpshare.store reaches the SQLCipher engine (issue #12) BROKEN" in out
    assert "gpshare.services -> gpshare.store.sqlcipher.repositories" in out


def test_a_new_module_importing_the_engine_is_checked_without_editing_the_contract(
    tmp_path: Path,
) -> None:
    root = _copy(tmp_path)
    (root / "gpshare" / "brand_new_helper.py").write_text(
        "from gpshare.store.sqlcipher.engine import SqlcipherStore\n", encoding="utf-8"
    )
    out = _broken(root)
    assert "Only gpshare.store reaches the SQLCipher engine (issue #12) BROKEN" in out
    assert "gpshare.brand_new_helper -> gpshare.store.sqlcipher.engine" in out


def test_one_service_area_importing_another_breaks_the_services_layers(tmp_path: Path) -> None:
    root = _copy(tmp_path)
    _append(root / "gpshare" / "services" / "letters.py", "from gpshare.services import users")
    out = _broken(root)
    assert "Services: vaults > session" in out and "BROKEN" in out
    assert "gpshare.services.letters -> gpshare.services.users" in out


def test_a_new_services_module_must_be_placed_in_a_layer(tmp_path: Path) -> None:
    root = _copy(tmp_path)
    (root / "gpshare" / "services" / "unplaced.py").write_text('"""New."""\n', encoding="utf-8")
    out = _broken(root)
    assert "gpshare.services.unplaced" in out


def test_a_new_service_module_importing_crypto_or_the_engine_breaks_the_port_contract(
    tmp_path: Path,
) -> None:
    root = _copy(tmp_path)
    (root / "gpshare" / "services" / "brand_new_area.py").write_text(
        "from gpshare.store import crypto\nimport sqlcipher3\n", encoding="utf-8"
    )
    out = _broken(root)
    assert "The services use only the storage port (issue #12) BROKEN" in out
    assert "gpshare.services.brand_new_area -> gpshare.store.crypto" in out
    assert "gpshare.services.brand_new_area -> sqlcipher3" in out


def test_psycopg_outside_the_postgres_engine_breaks_the_contract(tmp_path: Path) -> None:
    root = _copy(tmp_path)
    (root / "gpshare" / "store" / "pg_helper.py").write_text("import psycopg\n", encoding="utf-8")
    out = _broken(root)
    assert "BROKEN" in out and "gpshare.store is not allowed to import psycopg" in out
    assert "gpshare.store.pg_helper -> psycopg" in out
