"""Moving an embedded version-2 vault onto an empty practice server, the store's half
(`gpshare server migrate`, issue #14; the services' half is gpshare/services/move_to_server.py).

The source is read through a read-only SQLCipher connection (SQLite `mode=ro`): nothing in its
folder changes. The server is filled in ONE PostgreSQL transaction, schema included (DDL and
CREATE ROLE are transactional there), so a failure or a failed check before `commit` leaves
the database exactly as empty as it was; after the commit `drop_practice` removes it again.

Each server table is filled from the embedded table of the same name, column by column
(`_TABLES`). Where the schemas differ the mapping says so:
- practice_ca: the embedded `id` (always 1) is the server's `one` (true); `key_nonce` and
  `wrapped_key` are `nonce` and `wrapped` (signing_keys too). Certificates stored as TEXT
  there are bytea here (the same PEM bytes).
- records: only the version-2 columns move (the v1 plaintext columns of the embedded schema,
  empty on a v2 vault, have no place on the server); `saved_by`, which the embedded engine
  does not record, is derived by the caller from the audit event that wrote the row's version.
- directory: the embedded `status` is implied on the server by whether `signature` is set.
- blind_index: the embedded engine deletes replaced tokens, so every copied token is live
  (`superseded` false).
- referral_states: the embedded table's copies of the record's author and v1 names (empty on a
  v2 vault) are not kept; the server reads them from the record.
- The audit chain is copied event for event (same seq, time, details, prev_hash and hash) and
  the head row advanced one event at a time, as its trigger demands.
Every class-M row's `row_mac` is computed again here with the practice key (gpshare/store/
row_macs.py): both engines MAC the same fields under the same row identity, but the server's
values differ where the mapping above changes them (bytea certificates, `saved_by`, booleans).
Ciphertexts and their commitments are copied byte for byte, so every `sealed` audit event
still names its row exactly.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql

from gpshare.errors import DatabaseError, StoreError
from gpshare.store.keys.errors import RowMacError
from gpshare.store.port import AuditEntry, AuditHead
from gpshare.store.postgres import audit as pg_audit
from gpshare.store.postgres.engine import PgReadTx
from gpshare.store.postgres.header import ServerVault, connect, prepare_in, server_name
from gpshare.store.practice_keys import PracticeKeys
from gpshare.store.row_macs import M_TABLES, RowMacs
from gpshare.store.sqlcipher import db
from gpshare.store.sqlcipher.engine import SqlcipherReadTx
from gpshare.store.sqlcipher.row_macs import SqliteRowMacs

Progress = Callable[[str, int, int], None]


@dataclass(frozen=True)
class _Table:
    """One table moved: the server's columns, and the embedded expression for each."""

    name: str
    columns: tuple[str, ...]
    source: tuple[str, ...]
    order: str

    @staticmethod
    def same(name: str, columns: str, order: str, **renamed: str) -> _Table:
        cols = tuple(c.strip() for c in columns.split(","))
        return _Table(name, cols, tuple(renamed.get(c, c) for c in cols), order)


# In foreign-key order; the audit chain goes before breakglass_acks (a trigger names events).
_TABLES = (
    _Table.same("users", "username, full_name, role, gmc_number, active, "
                "must_change_password, created", "username"),
    _Table.same("settings", "key, value", "key"),
    _Table.same("practice_ca", "one, cert_pem, nonce, wrapped, created", "id",
                one="id", nonce="key_nonce", wrapped="wrapped_key"),
    _Table.same("signing_keys", "id, username, cert_pem, nonce, wrapped, source, created, active",
                "id", nonce="key_nonce", wrapped="wrapped_key"),
    _Table.same("records", "id, clinician, status, form_id, form_version, current_step, created, "
                "updated, completed, version, saved_by, answers_ct, answers_commit", "id",
                saved_by="NULL"),
    _Table.same("record_summaries", "record_id, version, generation, ct", "record_id"),
    _Table.same("blind_index", "generation, type, token, record_id",
                "record_id, generation, type, token"),
    _Table.same("referral_states", "record_id, status, action, due, sent_at, acknowledged_at",
                "record_id"),
    _Table.same("addenda", "id, record_id, author, created, object_id, body_ct, body_commit",
                "id"),
    _Table.same("letters", "id, record_id, created, signer, sha256, object_id, pdf_ct, "
                "pdf_commit, unsigned_object_id, unsigned_ct, unsigned_commit", "id"),
    _Table.same("followups", "id, record_id, event, at, recorded_by, recorded_at, decision, "
                "object_id, note_ct, note_commit", "id"),
    _Table.same("reviews", "id, record_id, reviewer, created, object_id, body_ct, body_commit",
                "id"),
    _Table.same("household_link_reviews", "id, record_id, other_record_id, reviewer, created, "
                "generation, review_ct", "id"),
    _Table.same("remembered_logins", "id, user_id, workstation, created, revoked", "id"),
    _Table.same("key_bundles", "user_id, generation, state, kdf, salt, blob, created",
                "user_id, generation"),
    _Table.same("directory", "id, kind, user_id, generation, role, public_key, active, "
                "signature, created, lead_access_key", "id"),
    _Table.same("lead_rotations", "generation, previous_key, new_key, signature", "generation"),
    _Table.same("role_key_wraps", "key_name, generation, recipient, recipient_generation, wrap",
                "key_name, generation, recipient, recipient_generation"),
    _Table.same("object_wraps", "object_kind, object_id, recipient, recipient_generation, wrap, "
                "created", "object_kind, object_id, recipient, recipient_generation"),
    _Table.same("audit", "seq, at, actor, action, record_id, details, prev_hash, hash", "seq"),
    _Table.same("breakglass_acks", "event_seq, user_id, at", "event_seq, user_id"),
)  # fmt: skip
TABLES = tuple(t.name for t in _TABLES)

# Rows of a version-2 vault that would carry v1 plaintext or lack their ciphertext: such a
# vault was damaged or half-upgraded, and the server has no column to put them in.
_NOT_SEALED = {
    "records": "answers_ct IS NULL OR answers_commit IS NULL OR version < 1 OR answers <> '{}' "
    "OR child_given IS NOT NULL OR child_family IS NOT NULL OR child_nhs IS NOT NULL "
    "OR outcome IS NOT NULL",
    # v1's search and household-link tables: empty on a version-2 vault
    "record_links": "1",
    "records_search": "1",
    "addenda": "body_ct IS NULL OR body <> ''",
    "letters": "pdf_ct IS NULL OR length(pdf) > 0",
    "followups": "note IS NOT NULL OR details IS NOT NULL",
    "reviews": "body_ct IS NULL",
    "household_link_reviews": "review_ct IS NULL",
}


class EmbeddedSource:
    """A read-only snapshot of an embedded version-2 vault's database (one SQLite read
    transaction for the object's life, so every read sees the same rows)."""

    def __init__(self, path: Path, keys: PracticeKeys) -> None:
        self._conn = db.open_read_only(path, keys)
        self._keys = keys
        self._macs = SqliteRowMacs(keys)
        self._conn.execute("BEGIN")

    def read(self) -> SqlcipherReadTx:
        """The storage port's reads over the snapshot, M rows checked against their MACs."""
        from gpshare.store import audit

        return SqlcipherReadTx(
            self._conn, audit.audit_key(self._keys), audit.legacy_key(self._keys), self._macs
        )

    def problems(self) -> list[str]:
        """What makes this database unfit to move: damaged pages, a schema older than row
        MACs, an M row whose MAC fails, or a row not sealed as version 2 keeps it."""
        found = db.integrity_problems(self._conn)
        if found:
            return found
        if db.schema_version(self._conn) < db.LATEST_SCHEMA_VERSION:
            return [
                f"its database is at schema {db.schema_version(self._conn)}, older than this "
                "gpshare's: open it once with this version (it updates itself), then move it"
            ]
        if SqliteRowMacs.unmaced(self._conn):
            return ["some of its rows have no row MAC (made before row MACs existed)"]
        found = self._macs.problems(self._conn)
        found += self._unknown_tables()
        for table, where in _NOT_SEALED.items():
            n = int(self._conn.execute(f"SELECT count(*) FROM {table} WHERE {where}").fetchone()[0])
            if n:
                found.append(f"{n} {table} rows are not sealed as version 2 keeps them")
        return found

    def _unknown_tables(self) -> list[str]:
        """Tables with rows that this move does not know how to carry (a newer schema's):
        refused rather than left behind, so nothing is lost."""
        known = {*TABLES, *_NOT_SEALED}
        found = []
        for (name,) in self._conn.execute(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'"
        ).fetchall():
            if name in known or str(name).startswith("records_fts"):
                continue  # the v1 full-text index (and its shadow tables): empty on v2
            if self._conn.execute(f'SELECT 1 FROM "{name}" LIMIT 1').fetchone():
                found.append(f"its table {name} holds rows this gpshare cannot move yet")
        return found

    def counts(self) -> dict[str, int]:
        """Rows per moved table."""
        return {
            t: int(self._conn.execute(f"SELECT count(*) FROM {t}").fetchone()[0]) for t in TABLES
        }

    def rows(self, table: _Table) -> list[dict[str, Any]]:
        """The table's rows under the server's column names, in key order."""
        query = f"SELECT {', '.join(table.source)} FROM {table.name} ORDER BY {table.order}"
        return [dict(zip(table.columns, r, strict=True)) for r in self._conn.execute(query)]

    def close(self) -> None:
        """End the snapshot and close the connection."""
        try:
            self._conn.execute("ROLLBACK")
        finally:
            self._conn.close()


def _typed(types: Mapping[str, str], row: dict[str, Any]) -> dict[str, Any]:
    """A row's values as the server's column types want them (see the module docstring)."""
    out = {}
    for column, value in row.items():
        kind = types[column]
        if value is not None and kind == "boolean":
            value = bool(value)
        elif isinstance(value, str) and kind == "bytea":
            value = value.encode("utf-8")
        out[column] = value
    return out


class ServerFill:
    """The one transaction that fills an empty practice server (see the module docstring).
    Nothing is visible to anyone else until `commit`; `rollback` (or an exception before
    commit, then `close`) leaves the database as it was."""

    def __init__(self, dsn: str, keys: PracticeKeys, workstation_role: str) -> None:
        self.dsn = dsn
        self.name = server_name(dsn)
        self._keys = keys
        self._macs = RowMacs(keys)
        self.role = workstation_role
        self._conn = connect(dsn)
        try:
            self.created_role = self._run(lambda: prepare_in(self._conn, self.name, self.role))
        except BaseException:
            self.close()
            raise

    def _run(self, work: Callable[[], Any]) -> Any:
        try:
            return work()
        except psycopg.Error as exc:
            raise DatabaseError(f"the practice server {self.name} refused the move: {exc}") from exc

    def _types(self, table: str) -> dict[str, str]:
        return {
            str(r[0]): str(r[1])
            for r in self._conn.execute(
                "SELECT column_name, data_type FROM information_schema.columns "
                "WHERE table_schema = current_schema() AND table_name = %s",
                (table,),
            )
        }

    def copy(self, source: EmbeddedSource, saved_by: Mapping[str, str], progress: Progress) -> None:
        """Every table of the source into the server (records' `saved_by` from `saved_by`,
        by record id); `progress("copy", n, total)` after each table."""
        for n, table in enumerate(_TABLES):
            rows = source.rows(table)
            if table.name == "records":
                for r in rows:
                    r["saved_by"] = saved_by.get(str(r["id"]), r["clinician"])
            self._run(lambda t=table, rs=rows: self._insert(t, rs))  # type: ignore[misc]
            progress("copy", n + 1, len(_TABLES))

    def _insert(self, table: _Table, rows: Sequence[dict[str, Any]]) -> None:
        types = self._types(table.name)
        m_table = M_TABLES.get(table.name)
        columns = list(table.columns) + (["row_mac"] if m_table else [])
        values = []
        for raw in rows:
            row = _typed(types, raw)
            if m_table is not None:
                row["row_mac"] = self._macs.mac(m_table, row)
            values.append([row[c] for c in columns])
        if table.name == "audit":
            self._copy_chain(values)
            return
        query = sql.SQL("INSERT INTO {} ({}) VALUES ({})").format(
            sql.Identifier(table.name),
            sql.SQL(", ").join(map(sql.Identifier, columns)),
            sql.SQL(", ").join(sql.Placeholder() * len(columns)),
        )
        with self._conn.cursor() as cur:
            cur.executemany(query, values)
        if "id" in table.columns and types.get("id") == "bigint":
            # Explicit ids were inserted: the serial continues after the highest one.
            self._conn.execute(
                sql.SQL(
                    "SELECT setval(pg_get_serial_sequence(%s, 'id'), "
                    "COALESCE((SELECT max(id) FROM {}), 0) + 1, false)"
                ).format(sql.Identifier(table.name)),
                (table.name,),
            )

    def _copy_chain(self, events: Iterable[Sequence[Any]]) -> None:
        """The events as they were (same seq and seal); the head row follows each one."""
        with self._conn.cursor() as cur:
            for event in events:
                cur.execute(
                    "INSERT INTO audit (seq, at, actor, action, record_id, details, prev_hash, "
                    "hash) VALUES (%s, %s, %s, %s, %s, %s, %s, %s)",
                    list(event),
                )
                cur.execute("UPDATE audit_head SET seq = %s, hash = %s", (event[0], event[7]))

    def put_header(self, vault: ServerVault) -> AuditHead:
        """The practice header as generation 1, with its `header_saved` event."""
        return self._run(lambda: vault.save_in(self._conn, self._keys))

    def append(self, entry: AuditEntry) -> AuditHead:
        """Append one event to the copied chain."""
        return self._run(lambda: pg_audit.append(self._conn, self._keys.audit, entry))

    def read(self) -> PgReadTx:
        """The storage port's reads inside the fill's transaction (its rows not yet visible
        to anyone else), every M row checked against its MAC."""
        return PgReadTx(self._conn, self._keys)

    def counts(self) -> dict[str, int]:
        """Rows per moved table on the server."""
        return {
            t: int(self._conn.execute(sql.SQL("SELECT count(*) FROM {}").format(sql.Identifier(t))).fetchone()[0])  # type: ignore[index]
            for t in TABLES
        }  # fmt: skip

    def mac_problems(self) -> list[str]:
        """Every M row on the server whose MAC does not verify, each named."""
        found = []
        for table in M_TABLES.values():
            query = sql.SQL("SELECT {}, row_mac FROM {}").format(
                sql.SQL(", ").join(map(sql.Identifier, table.columns)),
                sql.Identifier(table.name),
            )
            for r in self._conn.execute(query):
                try:
                    self._macs.check(table, dict(zip(table.columns, r, strict=False)), r[-1])
                except RowMacError as exc:
                    found.append(str(exc))
        return found

    def commit(self) -> None:
        """Make the practice visible on the server."""
        self._run(self._conn.commit)

    def close(self) -> None:
        """Roll back whatever was not committed and close the connection."""
        try:
            if not self._conn.closed:
                self._conn.rollback()
        finally:
            self._conn.close()


# The functions schema.sql and the chain's schema create (dropped with the tables on undo).
_FUNCTIONS = (
    "gpshare_refuse", "gpshare_append_only", "gpshare_no_delete", "records_guard",
    "remembered_logins_revoke_only", "breakglass_acks_name_the_event", "record_summaries_frozen",
    "blind_index_kept", "key_bundles_keep_identity", "audit_refuse_change", "audit_head_advance",
)  # fmt: skip


def drop_practice(dsn: str, role: str | None) -> None:
    """Undo a committed move on a database that was empty before it: drop every table and
    function the move created (triggers refuse DELETE and TRUNCATE, not DROP), and the
    workstation `role` when the move created it. One transaction."""
    with connect(dsn) as conn, conn.transaction():
        tables = [
            str(r[0])
            for r in conn.execute(
                "SELECT tablename FROM pg_tables WHERE schemaname = current_schema()"
            )
        ]
        for name in tables:
            conn.execute(sql.SQL("DROP TABLE IF EXISTS {} CASCADE").format(sql.Identifier(name)))
        for name in _FUNCTIONS:
            conn.execute(sql.SQL("DROP FUNCTION IF EXISTS {}").format(sql.Identifier(name)))
        if role:
            conn.execute(sql.SQL("DROP ROLE IF EXISTS {}").format(sql.Identifier(role)))


def tables_on(dsn: str) -> list[str]:
    """The tables in the server database's schema (what a failed move must leave: none)."""
    try:
        with connect(dsn) as conn:
            return [
                str(r[0])
                for r in conn.execute(
                    "SELECT tablename FROM pg_tables WHERE schemaname = current_schema()"
                )
            ]
    except psycopg.Error as exc:
        raise StoreError(f"Cannot read the practice server's tables: {exc}") from exc
