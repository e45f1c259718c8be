"""Persistence and crypto: the storage port (port.py) and its engines.

The services open a store with `open_store` and use it through gpshare.store.port only; which
engine is behind it is decided here.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from gpshare.clock import Clock
    from gpshare.store.crypto import KdfParams
    from gpshare.store.port import Store
    from gpshare.store.vault import NewVault, Vault


def open_store(vault: Vault, key: bytes, clock: Clock, *, create: bool = False) -> Store:
    """Open the vault's database with its 32-byte key (`create`: a new, empty one).

    Raises CorruptDatabaseError / StorageWriteError (gpshare.errors) with a message to act on.
    """
    if vault.engine == "postgres":
        # A workstation of a practice server: the records live in its database.
        from gpshare.store.postgres.engine import PostgresStore
        from gpshare.store.postgres.header import ServerVault
        from gpshare.store.practice_keys import PracticeKeys

        if not isinstance(key, PracticeKeys) or not isinstance(vault, ServerVault):
            raise TypeError("a practice server is opened with the practice key (vault v2)")
        return PostgresStore.connect(vault.dsn, key, clock)
    # Imported here so importing gpshare.store (errors, vault…) does not load the engine.
    from gpshare.store.sqlcipher.engine import SqlcipherStore

    return SqlcipherStore(vault, key, clock, create=create)


def server_name(dsn: str) -> str:
    """A practice server's address as a person can name it (never a password)."""
    from gpshare.store.postgres.header import server_name as name

    return name(dsn)


def check_server_dsn(dsn: str) -> None:
    """Refuse a practice server address vault.json cannot keep (a password, bad syntax)."""
    from gpshare.store.postgres.header import check_dsn

    check_dsn(dsn)


def prepare_server(dsn: str, workstation_role: str) -> None:
    """Create the practice server's schema in an empty database and its workstation role."""
    from gpshare.store.postgres.header import prepare_database

    prepare_database(dsn, workstation_role)


def create_server_vault(
    folder: Path,
    dsn: str,
    *,
    practice_name: str,
    admin_username: str,
    admin_password: str,
    clock: Clock,
    kdf: KdfParams | None = None,
) -> NewVault:
    """The first header of a practice on a prepared server, and this workstation's folder."""
    from gpshare.store.postgres.header import create_server_vault as create

    return create(
        folder, dsn, practice_name=practice_name, admin_username=admin_username,
        admin_password=admin_password, clock=clock, kdf=kdf,
    )  # fmt: skip


def join_server(folder: Path, dsn: str) -> Vault:
    """Make `folder` another workstation of the practice on the server at `dsn`."""
    from gpshare.store.postgres.header import join_server as join

    return join(folder, dsn)
