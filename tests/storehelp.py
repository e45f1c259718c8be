"""The SQLCipher connection behind a session, for tests that read or tamper with the file
directly (outside the storage port, as an attacker or a failing disk would)."""

from __future__ import annotations

from typing import Any

from gpshare.store.sqlcipher.engine import SqlcipherStore


def raw_connection(session: Any) -> Any:
    """The open SQLCipher connection of `session`'s store."""
    store = session.store
    assert isinstance(store, SqlcipherStore)
    return store.connection
