"""Row MACs on the embedded engine (format-2 vaults only; docs/vault-v2.md §1 and step 9).

The MAC of a class-M row (gpshare/store/row_macs.py, the same fields as the PostgreSQL engine)
is kept by connection-local TEMP triggers calling Python functions registered on this
connection: before an UPDATE of a MACed column the old row's MAC is checked (so a row edited
outside gpshare is never re-MACed as if it were ours), and after every INSERT or such UPDATE the
row's MAC is written. The triggers exist only on a connection that holds the practice keys, so
they are not in the file and a version-1 vault never sees them. Reads are checked by the engine
(gpshare/store/sqlcipher/engine.py) with `check`, on the rows each read returns.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from gpshare.store.keys.errors import RowMacError
from gpshare.store.practice_keys import PracticeKeys
from gpshare.store.row_macs import M_TABLES, MTable, RowMacs, mac_field
from gpshare.store.sqlcipher.db import Connection

# Where this engine's column differs from the shared MACed name. The embedded engine records no
# `saved_by` (one workstation's writes; the audit event names who saved): MACed as NULL.
_COLUMN = {
    ("practice_ca", "one"): "id",
    ("practice_ca", "nonce"): "key_nonce",
    ("practice_ca", "wrapped"): "wrapped_key",
    ("signing_keys", "nonce"): "key_nonce",
    ("signing_keys", "wrapped"): "wrapped_key",
    ("records", "saved_by"): None,
}
_IDS_PER_QUERY = 250

NO_MACS = (
    "This version-2 vault was made by a gpshare without row MACs, so its records cannot be "
    "shown to be unaltered. Make a new vault with this version (or ask support to migrate it) "
    "rather than trusting its rows."
)


def _column(table: str, name: str) -> str | None:
    return _COLUMN.get((table, name), name)


def _expr(table: MTable, name: str, prefix: str = "") -> str:
    column = _column(table.name, name)
    return "NULL" if column is None else prefix + column


def _mac_columns(table: MTable) -> list[str]:
    """This engine's columns under the MAC (an UPDATE OF any of them is re-MACed)."""
    return [c for c in (_column(table.name, n) for n in table.columns) if c is not None]


class SqliteRowMacs:
    """The row MACs of one format-2 connection: triggers that write them, reads that check."""

    def __init__(self, keys: PracticeKeys) -> None:
        self._macs = RowMacs(keys)
        self._failure: RowMacError | None = None

    def take_failure(self) -> RowMacError | None:
        """The MAC failure a trigger raised inside the last failed statement (then cleared)."""
        found, self._failure = self._failure, None
        return found

    # ----- the functions the triggers call ------------------------------------------------

    def _row(self, table: MTable, values: Sequence[Any]) -> dict[str, Any]:
        return {c: mac_field(v) for c, v in zip(table.columns, values, strict=True)}

    def _compute(self, name: str, *values: Any) -> bytes:
        table = M_TABLES[name]
        return self._macs.mac(table, self._row(table, values))

    def _check_old(self, name: str, mac: bytes | None, *values: Any) -> int:
        table = M_TABLES[name]
        try:
            self._macs.check(table, self._row(table, values), mac)
        except RowMacError as exc:
            self._failure = exc  # sqlite reports only "user-defined function raised exception"
            raise
        return 1

    def install(self, conn: Connection) -> None:
        """Register the MAC functions and TEMP triggers on `conn` (schema 0010 or later)."""
        conn.create_function("gpshare_row_mac", -1, self._compute, deterministic=True)
        conn.create_function("gpshare_row_mac_ok", -1, self._check_old)
        for table in M_TABLES.values():
            new = ", ".join(_expr(table, c, "NEW.") for c in table.columns)
            old = ", ".join(_expr(table, c, "OLD.") for c in table.columns)
            cols = ", ".join(_mac_columns(table))
            key = " AND ".join(
                f"{_column(table.name, k)} = NEW.{_column(table.name, k)}" for k in table.key
            )
            set_mac = f"UPDATE {table.name} SET row_mac = gpshare_row_mac('{table.name}', {new}) WHERE {key};"
            conn.executescript(
                f"CREATE TEMP TRIGGER IF NOT EXISTS {table.name}_mac_check BEFORE UPDATE OF {cols} "
                f"ON main.{table.name} BEGIN SELECT gpshare_row_mac_ok('{table.name}', "
                f"OLD.row_mac, {old}); END;\n"
                f"CREATE TEMP TRIGGER IF NOT EXISTS {table.name}_mac_insert AFTER INSERT "
                f"ON main.{table.name} BEGIN {set_mac} END;\n"
                f"CREATE TEMP TRIGGER IF NOT EXISTS {table.name}_mac_update AFTER UPDATE OF {cols} "
                f"ON main.{table.name} BEGIN {set_mac} END;"
            )

    # ----- checks on read -----------------------------------------------------------------

    def _select(self, table: MTable) -> str:
        exprs = ", ".join(_expr(table, c) for c in table.columns)
        return f"SELECT {exprs}, row_mac FROM {table.name}"

    def check(self, conn: Connection, name: str, ids: Iterable[Any] | None = None) -> None:
        """RowMacError naming table and row unless every row of `name` with one of `ids` (a
        single-column key; every row when None) matches its MAC."""
        table = M_TABLES[name]
        if ids is None:
            for r in conn.execute(self._select(table)):
                self._macs.check(table, self._row(table, r[:-1]), r[-1])
            return
        wanted = list(dict.fromkeys(ids))
        key = _column(table.name, table.key[0])
        for first in range(0, len(wanted), _IDS_PER_QUERY):
            chunk = wanted[first : first + _IDS_PER_QUERY]
            sql = f"{self._select(table)} WHERE {key} IN ({','.join('?' * len(chunk))})"
            for r in conn.execute(sql, chunk):
                self._macs.check(table, self._row(table, r[:-1]), r[-1])

    def problems(self, conn: Connection) -> list[str]:
        """Every M row that does not match its MAC, each named (the integrity check)."""
        found: list[str] = []
        for table in M_TABLES.values():
            for r in conn.execute(self._select(table)):
                try:
                    self._macs.check(table, self._row(table, r[:-1]), r[-1])
                except RowMacError as exc:
                    found.append(str(exc))
        return found

    @staticmethod
    def unmaced(conn: Connection) -> bool:
        """True when some M row has no MAC (a format-2 vault made before row MACs)."""
        return any(
            conn.execute(f"SELECT 1 FROM {name} WHERE row_mac IS NULL LIMIT 1").fetchone()
            for name in M_TABLES
        )
