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
    # Imported here so importing gpshare.store (errors, vault…) does not load the engine.
    from gpshare.store.sqlcipher.engine import SqlcipherStore

    return SqlcipherStore(vault, key, clock, create=create)
