"""The lead's search replica, `lead-index.db` (vault version 2; DESIGN §10.1 class L, §10.2
"Search"; docs/vault-v2.md §1.1).

In vault version 2 records.db holds no plaintext identity, outcome or narrative, so the lead's
list filters, search and dashboard run here instead: one row per record with its M fields and
decrypted C summary, and an FTS5 index over the text the lead searches. The file is a SQLCipher
database (the same connection set-up as records.db, `db.open_database`) under a 32-byte *lead
data key* the caller supplies. It is derived data: caught up from the audit sequence number
of the last event applied (`apply`), rebuilt beside the live file and swapped in when missing
(`rebuild`), deleted rather than migrated when its schema version changes, and never copied
into backups/ (backup.py copies only records.db and vault.json).

This module is the engine's side only; which events become which changes, and where the
decrypted fields come from, is the services' business. Queries reuse the records.db
repositories' filter clauses, light-record shape and fts_query, so both answer alike.
"""

from __future__ import annotations

import contextlib
import heapq
import json
import os
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import sqlcipher3

from gpshare.errors import Cancelled, ReplicaUnavailable
from gpshare.filters import RecordFilter
from gpshare.records import Record
from gpshare.store.errors import StoreError
from gpshare.store.files import fsync_dir
from gpshare.store.port import (
    AuditHead,
    DashboardRows,
    RemovedRecord,
    Replica,
    ReplicaChange,
    ReplicaItem,
)
from gpshare.store.sqlcipher import db
from gpshare.store.sqlcipher import repositories as repo

REPLICA_NAME = "lead-index.db"
# Bumped whenever the schema below changes: an older file is deleted and rebuilt, never
# migrated (it holds nothing that is not in records.db).
SCHEMA_VERSION = 1
# Items written per transaction while rebuilding (progress and cancel are checked between).
REBUILD_BATCH = 2000

_TABLES = (
    # The audit event up to which changes are applied (seq and seal: a replica made before a
    # restore no longer matches the chain's seal at that seq).
    "CREATE TABLE meta (id INTEGER PRIMARY KEY CHECK (id = 1), last_seq INTEGER NOT NULL, "
    "last_digest TEXT NOT NULL)",
    # Column names as in records.db, so the repositories' filter clauses apply unchanged.
    "CREATE TABLE records (key INTEGER PRIMARY KEY, id TEXT NOT NULL UNIQUE, "
    "clinician TEXT NOT NULL, clinician_name TEXT NOT NULL, status TEXT NOT NULL, "
    "form_id TEXT NOT NULL, form_version INTEGER NOT NULL, created TEXT NOT NULL, "
    "updated TEXT NOT NULL, completed TEXT, child_given TEXT, child_family TEXT, "
    "child_nhs TEXT, child_dob TEXT, pathway TEXT, consent_basis TEXT, decision TEXT, "
    "review_date TEXT, snomed_codes TEXT, categories TEXT NOT NULL, due TEXT, action TEXT)",
    # Tokenised as records.db's records_fts; `body` holds the text it holds, `narrative` the
    # rest of the N text. Contentless: the words are in the index, not stored a second time.
    "CREATE VIRTUAL TABLE records_fts USING fts5(body, narrative, content = '', "
    "contentless_delete = 1, tokenize = 'unicode61 remove_diacritics 2')",
)
# Made after a rebuild's rows are in: one sort per index instead of a random insert per row.
_INDEXES = (
    # Newest first with a tie-break, from the index alone (no sorter: see performance.md).
    "CREATE INDEX records_updated ON records(updated, id)",
    "CREATE INDEX records_clinician_updated ON records(clinician, updated)",
    "CREATE INDEX records_status_updated ON records(status, updated)",
    "CREATE INDEX records_pathway_created ON records(pathway, created, updated)",
    "CREATE INDEX records_consent_updated ON records(consent_basis, updated)",
    "CREATE INDEX records_child_nhs ON records(child_nhs)",
    "CREATE INDEX records_created ON records(created)",
    # A search orders its matches by `updated` from this narrow index, not from the wide
    # rows: 12 000 matches read ~1 MB of index instead of most of the table (~100 → ~15 ms).
    "CREATE INDEX records_search ON records(key, updated, id)",
    "CREATE INDEX records_due ON records(due) WHERE due IS NOT NULL AND action IS NOT NULL",
    # The same covering index as records.db's, so repositories._monthly_counts runs here.
    "CREATE INDEX records_dashboard ON records(status, completed, pathway, consent_basis, created, id)",
)

# The order of repositories._LIGHT_COLUMNS + updated, so repositories._list_record reads a row.
_LIST_COLUMNS = (
    "r.id, r.clinician, r.status, r.form_id, r.form_version, r.created, r.completed, r.pathway, "
    "r.decision, r.review_date, r.consent_basis, r.child_given, r.child_family, r.child_nhs, "
    "r.child_dob, r.clinician_name, r.snomed_codes, r.updated"
)
_ORDER = "r.updated DESC, r.id DESC"


def _unavailable(path: Path, reason: str) -> ReplicaUnavailable:
    what = {
        "missing": "does not exist yet",
        "unreadable": "cannot be read with the lead data key (damaged, or made under another key)",
        "outdated": "was made by another version of gpshare and has been removed",
    }[reason]
    return ReplicaUnavailable(
        f"The lead's search index ({path.name}) {what}. Rebuild the replica from the records: "
        "the lists, filters and search use it again when the rebuild finishes.",
        reason,
    )


# ----- schema, writes ------------------------------------------------------------------------


def create_tables(conn: db.Connection, head: AuditHead) -> None:
    """The replica's tables (no indexes yet) in an empty database, at `head`."""
    for statement in _TABLES:
        conn.execute(statement)
    conn.execute(
        "INSERT INTO meta (id, last_seq, last_digest) VALUES (1, ?, ?)", (head.seq, head.digest)
    )


def create_indexes(conn: db.Connection) -> None:
    """The indexes, then the schema version: a file without them never opens."""
    for statement in _INDEXES:
        conn.execute(statement)
    conn.execute(f"PRAGMA user_version = {int(SCHEMA_VERSION)}")


def last_head(conn: db.Connection) -> AuditHead:
    """The audit event the replica is caught up to."""
    row = conn.execute("SELECT last_seq, last_digest FROM meta WHERE id = 1").fetchone()
    return AuditHead(int(row[0]), str(row[1]))


def _completed_only(item: ReplicaItem) -> tuple[Any, ...]:
    """Outcome fields as records.db keeps them: set when a record is completed, else NULL."""
    if item.status != "completed":
        return (None, None, None, None, None)
    codes = None if item.snomed_codes is None else json.dumps(list(item.snomed_codes))
    return (item.pathway, item.consent_basis, item.decision, item.review_date, codes)


def upsert(conn: db.Connection, item: ReplicaItem, *, new: bool = False) -> None:
    """Insert or replace one record's row and its full-text entry (same key kept); `new`:
    the record is not in the file yet (a rebuild), so there is no old entry to delete."""
    put_text(conn, put_row(conn, item), item, new=new)


def _row_values(item: ReplicaItem) -> tuple[Any, ...]:
    """The records row of `item`, in the column order of put_row and insert_row."""
    return (
        item.id,
        item.clinician,
        item.clinician_name,
        item.status,
        item.form_id,
        item.form_version,
        item.created,
        item.updated,
        item.completed,
        item.child_given,
        item.child_family,
        item.child_nhs,
        item.child_dob,
        *_completed_only(item),
        json.dumps(list(item.categories)),
        item.due,
        item.action,
    )


def put_row(conn: db.Connection, item: ReplicaItem) -> int:
    """Insert or replace one record's row; its key (kept across replacements)."""
    (key,) = conn.execute(
        "INSERT INTO records (id, clinician, clinician_name, status, form_id, form_version, "
        "created, updated, completed, child_given, child_family, child_nhs, child_dob, pathway, "
        "consent_basis, decision, review_date, snomed_codes, categories, due, action) "
        "VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?) ON CONFLICT(id) DO UPDATE SET "
        "clinician = excluded.clinician, clinician_name = excluded.clinician_name, "
        "status = excluded.status, form_id = excluded.form_id, "
        "form_version = excluded.form_version, created = excluded.created, "
        "updated = excluded.updated, completed = excluded.completed, "
        "child_given = excluded.child_given, child_family = excluded.child_family, "
        "child_nhs = excluded.child_nhs, child_dob = excluded.child_dob, "
        "pathway = excluded.pathway, consent_basis = excluded.consent_basis, "
        "decision = excluded.decision, review_date = excluded.review_date, "
        "snomed_codes = excluded.snomed_codes, categories = excluded.categories, "
        "due = excluded.due, action = excluded.action RETURNING key",
        _row_values(item),
    ).fetchone()
    return int(key)


def insert_row(conn: db.Connection, item: ReplicaItem) -> int:
    """Insert the row of a record not in the file yet (a rebuild); its key. A plain INSERT
    needs no statement savepoint, unlike put_row's upsert."""
    cursor = conn.execute(
        "INSERT INTO records (id, clinician, clinician_name, status, form_id, form_version, "
        "created, updated, completed, child_given, child_family, child_nhs, child_dob, pathway, "
        "consent_basis, decision, review_date, snomed_codes, categories, due, action) "
        "VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
        _row_values(item),
    )
    return int(cursor.lastrowid or 0)


def put_text(conn: db.Connection, key: int, item: ReplicaItem, *, new: bool = False) -> None:
    """Replace the full-text entry of the row `key` (`new`: there is none yet)."""
    if not new:
        conn.execute("DELETE FROM records_fts WHERE rowid = ?", (key,))
    if item.search_text or item.narrative:
        conn.execute(
            "INSERT INTO records_fts (rowid, body, narrative) VALUES (?, ?, ?)",
            (key, item.search_text, item.narrative),
        )


def remove(conn: db.Connection, record_id: str) -> None:
    """Drop a record's row and full-text entry (nothing when it is not there)."""
    row = conn.execute("SELECT key FROM records WHERE id = ?", (record_id,)).fetchone()
    if row:
        conn.execute("DELETE FROM records_fts WHERE rowid = ?", (row[0],))
        conn.execute("DELETE FROM records WHERE key = ?", (row[0],))


def apply_changes(conn: db.Connection, changes: Iterable[ReplicaChange], head: AuditHead) -> bool:
    """One transaction: the changes and the new head, unless the replica is at or past
    `head.seq` already (then nothing is written: re-applying a range is harmless)."""
    with db.transaction(conn):
        if last_head(conn).seq >= head.seq:
            return False
        for change in changes:
            if isinstance(change, RemovedRecord):
                remove(conn, change.record_id)
            else:
                upsert(conn, change)
        conn.execute(
            "UPDATE meta SET last_seq = ?, last_digest = ? WHERE id = 1", (head.seq, head.digest)
        )
    return True


# ----- queries (also run by bench/lead_search.py on a plain copy) -----------------------------


def _where(flt: RecordFilter) -> tuple[str, list[Any]]:
    """records.db's filter clauses (repositories._where) with search and "overdue only"
    answered from this file's own full-text index and stored due dates."""
    where, params = repo._where(replace(flt, search=None, overdue_on=None))
    clauses = [where.removeprefix(" WHERE ")] if where else []
    if flt.search:
        clauses.append("r.key IN (SELECT rowid FROM records_fts WHERE records_fts MATCH ?)")
        params.append(repo.fts_query(flt.search))
    if flt.overdue_on:
        clauses.append("r.due IS NOT NULL AND r.action IS NOT NULL AND r.due < ?")
        params.append(flt.overdue_on)
    return (" WHERE " + " AND ".join(clauses)) if clauses else "", params


def list_records(
    conn: db.Connection, flt: RecordFilter, limit: int | None = None, offset: int = 0
) -> list[Record]:
    """Light records matching `flt`, newest change first (ties: newest id first)."""
    if limit is not None and flt.search and repo._search_only(flt):
        return [repo._list_record(r) for r in _search_page(conn, flt.search, limit, offset)]
    where, params = _where(flt)
    if limit is None:
        sql = f"SELECT {_LIST_COLUMNS} FROM records r{where} ORDER BY {_ORDER}"
    else:
        # The page's keys from the indexes first, then only those rows (as records.db does).
        sql = (
            f"SELECT {_LIST_COLUMNS} FROM records r WHERE r.key IN "
            f"(SELECT r.key FROM records r{where} ORDER BY {_ORDER} LIMIT ? OFFSET ?) "
            f"ORDER BY {_ORDER}"
        )
        params += [limit, offset]
    return [repo._list_record(r) for r in conn.execute(sql, params)]


def _search_page(conn: db.Connection, text: str, limit: int, offset: int) -> list[Sequence[Any]]:
    """A page of a plain search: the newest matches picked in Python (SQLite's sorter is slow
    under cipher_memory_security), then only those rows read."""
    matches = conn.execute(
        "SELECT r.updated, r.id FROM records_fts f JOIN records r INDEXED BY records_search "
        "ON r.key = f.rowid WHERE records_fts MATCH ?",
        (repo.fts_query(text),),
    )
    ids = [rid for _updated, rid in heapq.nlargest(offset + limit, matches)[offset:]]
    if not ids:
        return []
    sql = (
        f"SELECT {_LIST_COLUMNS} FROM records r WHERE r.id IN ({','.join('?' * len(ids))}) "
        f"ORDER BY {_ORDER}"
    )
    return list(conn.execute(sql, ids))


def count_records(conn: db.Connection, flt: RecordFilter) -> int:
    """How many records match `flt`."""
    where, params = _where(flt)
    return int(conn.execute(f"SELECT count(*) FROM records r{where}", params).fetchone()[0])


def dashboard_rows(
    conn: db.Connection, date_from: str | None, date_to: str | None
) -> DashboardRows:
    """Monthly pathway and consent-basis counts, as records.db's dashboard_rows without timings."""
    where, params = repo._where(
        RecordFilter(status="completed", date_from=date_from, date_to=date_to)
    )
    by_pathway, by_consent = repo._monthly_counts(conn, where, params)
    return DashboardRows(by_pathway, by_consent, [])


# ----- files ----------------------------------------------------------------------------------


def _remove_files(path: Path) -> None:
    """A database file and its journals; what is not there is skipped."""
    for suffix in ("", "-wal", "-shm", "-journal"):
        with contextlib.suppress(FileNotFoundError):
            os.unlink(f"{path}{suffix}")


def _fsync_file(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_BINARY", 0))
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class LeadReplica:
    """The replica file at `path` under `key` (gpshare.store.port.Replica).

    Nothing is read until first use. A handle notices when another one swapped in a rebuilt
    file (the file's identity changed) and reopens before its next query.
    """

    def __init__(self, path: Path, key: bytes) -> None:
        if len(key) != 32:
            raise ValueError("the lead data key must be 32 bytes")
        self._path = path
        self._key = key
        self._conn: db.Connection | None = None
        self._identity: tuple[int, int] | None = None

    @property
    def path(self) -> Path:
        """The live replica file."""
        return self._path

    @property
    def connection(self) -> db.Connection:
        """This replica's own connection (opened if needed), outside the port: for the
        store's tests and bench."""
        with self._connection() as conn:
            return conn

    @property
    def building_path(self) -> Path:
        """Where a rebuild writes before it is swapped in (removed by the next rebuild if a
        kill left it)."""
        return self._path.with_name(f".{self._path.name}.rebuilding")

    def _file_identity(self) -> tuple[int, int] | None:
        try:
            st = os.stat(self._path)
        except FileNotFoundError:
            return None
        return (st.st_dev, st.st_ino)

    # ----- open / close ---------------------------------------------------------------------

    def open(self) -> None:
        self.close()
        identity = self._file_identity()
        if identity is None:
            raise _unavailable(self._path, "missing")
        try:
            conn = db.open_database(self._path, self._key)
        except StoreError as exc:  # wrong key, damaged, empty or unreadable file
            raise _unavailable(self._path, "unreadable") from exc
        try:
            version = db.schema_version(conn)
            if version == SCHEMA_VERSION:
                last_head(conn)
                # Catch-up runs in the background: let SQLite fold the WAL in as it grows
                # (records.db turns that off to keep saves fast; nobody waits on this file).
                conn.execute("PRAGMA wal_autocheckpoint = 1000")
        except sqlcipher3.DatabaseError as exc:
            conn.close()
            raise _unavailable(self._path, "unreadable") from exc
        if version != SCHEMA_VERSION:
            conn.close()
            _remove_files(self._path)
            raise _unavailable(self._path, "outdated")
        self._conn, self._identity = conn, identity

    def close(self) -> None:
        if self._conn is not None:
            with contextlib.suppress(sqlcipher3.Error):
                self._conn.close()
        self._conn, self._identity = None, None

    def delete(self) -> None:
        self.close()
        _remove_files(self._path)
        _remove_files(self.building_path)

    @contextlib.contextmanager
    def _connection(self) -> Iterator[db.Connection]:
        """The open connection (reopened after another handle's swap); driver errors become
        ReplicaUnavailable: the replica is rebuilt, never repaired."""
        if self._conn is None or self._file_identity() != self._identity:
            self.open()
        assert self._conn is not None
        try:
            yield self._conn
        except sqlcipher3.DatabaseError as exc:
            self.close()
            raise _unavailable(self._path, "unreadable") from exc

    # ----- catch-up and rebuild -------------------------------------------------------------

    def last_head(self) -> AuditHead:
        with self._connection() as conn:
            return last_head(conn)

    def last_seq(self) -> int:
        return self.last_head().seq

    def apply(self, changes: Iterable[ReplicaChange], head: AuditHead) -> bool:
        with self._connection() as conn:
            return apply_changes(conn, changes, head)

    def rebuild(
        self,
        items: Iterable[ReplicaItem],
        head: AuditHead,
        *,
        total: int | None = None,
        progress: Callable[[int, int], None] | None = None,
        cancelled: Callable[[], bool] | None = None,
    ) -> int:
        building = self.building_path
        _remove_files(building)  # left by a rebuild that was killed
        count = 0
        try:
            conn = db.open_database(building, self._key, create=True)
        except StoreError:
            _remove_files(building)
            raise
        try:
            # A file nobody reads until it is complete: no journal and no fsync per commit
            # (it is fsynced once before the swap; a crash leaves it to be removed).
            conn.execute("PRAGMA journal_mode = OFF").fetchone()
            conn.execute("PRAGMA synchronous = OFF")
            with db.transaction(conn):
                create_tables(conn, head)
            batch: list[ReplicaItem] = []
            seen: set[str] = set()
            for item in items:
                batch.append(item)
                if len(batch) == REBUILD_BATCH:
                    count = self._write_batch(conn, batch, seen, count, total, progress, cancelled)
            count = self._write_batch(conn, batch, seen, count, total, progress, cancelled)
            if cancelled and cancelled():
                raise Cancelled("The search index rebuild was cancelled; the old index was kept.")
            with db.transaction(conn):
                create_indexes(conn)
            conn.execute("PRAGMA journal_mode = WAL").fetchone()
        except BaseException:
            with contextlib.suppress(sqlcipher3.Error):
                conn.close()
            _remove_files(building)
            raise
        conn.close()
        self._swap_in(building)
        return count

    @staticmethod
    def _write_batch(
        conn: db.Connection,
        batch: list[ReplicaItem],
        seen: set[str],
        done: int,
        total: int | None,
        progress: Callable[[int, int], None] | None,
        cancelled: Callable[[], bool] | None,
    ) -> int:
        if cancelled and cancelled():
            raise Cancelled("The search index rebuild was cancelled; the old index was kept.")
        with db.transaction(conn):
            # Every row first, then every full-text entry, and a plain INSERT for a record
            # not in the file yet: an upsert statement opens a statement savepoint, at which
            # FTS5 flushes the terms it holds in memory to a new segment. Interleaved upserts
            # made one tiny segment per record (~1.3 ms a record, most of a rebuild).
            keys, written = [], set(seen)
            for item in batch:
                keys.append(put_row(conn, item) if item.id in written else insert_row(conn, item))
                written.add(item.id)
            for key, item in zip(keys, batch, strict=True):
                put_text(conn, key, item, new=item.id not in seen)
                seen.add(item.id)
        done += len(batch)
        batch.clear()
        if progress:
            progress(done, max(done, total or 0))
        return done

    def _swap_in(self, building: Path) -> None:
        """Replace the live file with the complete one in a single rename."""
        _fsync_file(building)
        self.close()
        # The old WAL must not be replayed onto the new file: it goes first. Losing it loses
        # only catch-up work on a file about to be replaced.
        for suffix in ("-wal", "-shm"):
            with contextlib.suppress(FileNotFoundError):
                os.unlink(f"{self._path}{suffix}")
        os.replace(building, self._path)
        fsync_dir(self._path.parent)
        self.open()

    # ----- queries --------------------------------------------------------------------------

    def list_records(
        self, flt: RecordFilter, limit: int | None = None, offset: int = 0
    ) -> list[Record]:
        with self._connection() as conn:
            return list_records(conn, flt, limit, offset)

    def count_records(self, flt: RecordFilter) -> int:
        with self._connection() as conn:
            return count_records(conn, flt)

    def dashboard_rows(self, date_from: str | None, date_to: str | None) -> DashboardRows:
        with self._connection() as conn:
            return dashboard_rows(conn, date_from, date_to)


if TYPE_CHECKING:
    # mypy checks the engine's replica against the port's Protocol here.
    def _conforms(replica: LeadReplica) -> None:
        _replica: Replica = replica
