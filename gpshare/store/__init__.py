"""Persistence and crypto: the storage port (port.py) and its engines.

The services open a store with `open_store` and use it through gpshare.store.port only; which
engine is behind it is decided here.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from gpshare.clock import Clock
    from gpshare.store.port import Store
    from gpshare.store.vault import Vault


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
        return PostgresStore.connect(vault.dsn, key, clock, folder=vault.folder)
    # Imported here so importing gpshare.store (errors, vault…) does not load the engine.
    from gpshare.store.sqlcipher.engine import SqlcipherStore

    return SqlcipherStore(vault, key, clock, create=create)
