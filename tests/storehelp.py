"""The SQLCipher connection behind a session, for tests that read or tamper with the file
directly (outside the storage port, as an attacker or a failing disk would); on a practice
server, a connection of the database's own (as its administrator would read it)."""

from __future__ import annotations

from typing import Any

from gpshare.store.sqlcipher.engine import SqlcipherStore


def raw_connection(session: Any) -> Any:
    """The open SQLCipher connection of `session`'s store, or (a practice server) a new
    autocommit connection to its database: plain SELECTs without parameters read alike."""
    store = session.store
    if session.vault.engine == "postgres":
        import psycopg

        return psycopg.connect(session.vault.dsn, autocommit=True)
    assert isinstance(store, SqlcipherStore)
    return store.connection
