"""README claims in "Security model" and "Backups and recovery" that no other test pinned.

The full claim → test list is at the end of docs/reliability.md.
"""

from __future__ import annotations

from gpshare import cli
from gpshare.store import backup
from gpshare.store.vault import Vault
from tests.conftest import PASSWORDS


def test_gpshare_backup_on_the_command_line(vault_env, capsys, monkeypatch) -> None:
    monkeypatch.setenv("GPSHARE_PASSWORD", PASSWORDS["admin"])
    code = cli.main(["backup", "--vault", str(vault_env.folder), "--user", "admin"])
    assert code == 0
    assert "Backup written to" in capsys.readouterr().out
    snapshots = backup.list_backups(Vault.open(vault_env.folder))
    assert len(snapshots) == 1
    assert not (snapshots[0].path / "records.db").read_bytes().startswith(b"SQLite format 3")


def test_vault_id_is_bound_into_every_slot(vault_env) -> None:
    """The same slot, read as if it belonged to another vault, does not open (GCM AD)."""
    import uuid

    vault = Vault.open(vault_env.folder)
    slot = vault.password_slot("drsmith")
    assert slot is not None
    assert vault._open_slot(slot, PASSWORDS["drsmith"].encode()) is not None
    vault.header["vault_id"] = str(uuid.uuid4())
    assert vault._open_slot(slot, PASSWORDS["drsmith"].encode()) is None
