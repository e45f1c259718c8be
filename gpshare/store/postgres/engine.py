"""The practice server's storage engine (issue #14, DESIGN §10.2–10.4): the storage port on
PostgreSQL (psycopg 3) for vault version 2 shapes only.

Class M rows are stored in the clear, each with a `row_mac` this engine computes under
HKDF(practice, "m-row") (keys.envelopes.row_mac) and checks on every read, so a row edited on
the server (by its administrator, with triggers off) is named by RowMacError. Everything of
class C and N arrives as ciphertext made by the record codec (gpshare/services/_sealing.py) and
is stored as it came: the server never holds a child's identity or a narrative in plaintext.
The port's v1 members that would store or return plaintext refuse with a StoreError.

Concurrency is the database's: a draft save is optimistic (the row changes only at the version
it was read at, under the row lock), and audit appends are serialised on the chain head
(gpshare/store/postgres/audit.py) in the same transaction as the change they record.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, contextmanager
from datetime import date, timedelta
from importlib import resources
from typing import TYPE_CHECKING, Any

import psycopg
from psycopg import pq, sql

from gpshare.clock import Clock, SystemClock
from gpshare.errors import (
    DatabaseError,
    ReplicaUnavailable,
    SaveOutcomeUnknown,
    ServerUnreachableError,
    StaleVersionError,
    StoreError,
)
from gpshare.filters import AuditFilter, RecordFilter
from gpshare.records import (
    Addendum,
    AuditEvent,
    ChildSummary,
    FollowUp,
    LetterMeta,
    Record,
    Review,
    User,
)
from gpshare.store import sealed_rows
from gpshare.store.audit import ChainReport
from gpshare.store.audit import legacy_key as audit_legacy_key
from gpshare.store.port import (
    BREAKGLASS_EVENT,
    AuditEntry,
    AuditHead,
    BreakglassState,
    DashboardRows,
    DirectoryKind,
    DirectoryRow,
    IndexToken,
    LeadRotation,
    ObjectWrap,
    RecordRow,
    RecordWrite,
    RememberedLogin,
    RoleKeyName,
    RoleKeyWrap,
    SealedAddendum,
    SealedFollowUp,
    SealedHouseholdReview,
    SealedLetter,
    SealedObject,
    SealedRecord,
    SealedReview,
    StoredBundle,
    StoredState,
    StoredSummary,
    TokenMatch,
    WrappedKey,
)
from gpshare.store.postgres import audit as pg_audit
from gpshare.store.postgres import integrity as pg_integrity
from gpshare.store.practice_keys import PracticeKeys
from gpshare.store.row_macs import M_TABLES, MTable, RowMacs, mac_field
from gpshare.store.sealed_rows import SealedRowState

# The codec-bug check of a RecordWrite is the same for both engines.

if TYPE_CHECKING:
    from datetime import datetime
    from pathlib import Path

    from gpshare.store.keys.directory import RotationStatement, SignedEntry
    from gpshare.store.port import DueRow, Replica

SERVER_SCHEMA_VERSION = 1
NO_PLAINTEXT = "not available on a practice server: it holds no plaintext"

# Port members of vault version 1 that carry plaintext answers, names, bodies or PDFs. (The
# v1 readers the v2 services still call for a record's M fields: get_record, list_records,
# count_records, completed_records_light, addenda, letters, followups, reviews and
# household_link_decisions answer below with what an embedded v2 vault's columns hold: M
# fields, the plaintext ones empty.)
_PLAINTEXT_MEMBERS = frozenset(
    {
        "records_for_child", "open_referrals", "records_without_links",
        "linked_records", "insert_record", "update_draft",
        "move_draft_to_form", "complete_record", "put_search_text", "put_links",
        "add_household_link_review", "add_addendum", "add_letter", "add_followup",
        "add_review",
    }
)  # fmt: skip

# Tables whose rows the workstation role may UPDATE (the triggers narrow each further); every
# table gets SELECT and INSERT, none DELETE or TRUNCATE.
_UPDATABLE = (
    "users", "settings", "practice_ca", "signing_keys", "records", "referral_states",
    "remembered_logins", "record_summaries", "blind_index", "key_bundles",
    "vault_unlock_reports",
)  # fmt: skip


_DIRECTORY = (
    "id, kind, user_id, generation, role, public_key, active, signature, created, lead_access_key"
)


def schema_sql() -> str:
    """The server's table, trigger and function definitions (schema.sql)."""
    return resources.files(__package__).joinpath("schema.sql").read_text(encoding="utf-8")


def create_schema(conn: psycopg.Connection, workstation_role: str) -> None:
    """Create the server's tables (and the audit chain's) in an empty database and grant
    `workstation_role` (an existing role) least privilege; the caller commits."""
    conn.execute(schema_sql())
    pg_audit.create_schema(conn, workstation_role)
    role = sql.Identifier(workstation_role)
    tables = conn.execute(
        "SELECT tablename FROM pg_tables WHERE schemaname = current_schema() "
        "AND tablename NOT IN ('audit', 'audit_head')"
    ).fetchall()
    for (name,) in tables:
        rights = "SELECT, INSERT, UPDATE" if name in _UPDATABLE else "SELECT, INSERT"
        conn.execute(sql.SQL("GRANT " + rights + " ON {} TO {}").format(sql.Identifier(name), role))
    conn.execute(sql.SQL("GRANT USAGE ON ALL SEQUENCES IN SCHEMA public TO {}").format(role))


def _connect_reaching(dsn: str, reach: ServerReach) -> psycopg.Connection:
    """header.connect, telling `reach` whether the server answered (and starting its back-off
    when the attempt ran out of time)."""
    from gpshare.store.postgres.header import connect, timed_out

    try:
        conn = connect(dsn)
    except ServerUnreachableError as exc:
        if exc.__cause__ is not None and timed_out(exc.__cause__):
            reach.timed_out(str(exc).split(" Check that", 1)[0])
        else:
            reach.lost()
        raise
    reach.reached()
    return conn


def _day_after(day: str) -> str:
    """Exclusive upper bound for `created < …` that keeps the whole of `day` (ISO date)."""
    try:
        return (date.fromisoformat(day[:10]) + timedelta(days=1)).isoformat()
    except ValueError as exc:
        raise StoreError(f"record filter: '{day}' is not a date (YYYY-MM-DD)") from exc


def _head_words(last: AuditHead, hash_at: Any, head: tuple[int, str]) -> str | None:
    """None when the chain ends at `head` or one event after it, else what is missing."""
    head_seq, head_hash = head
    if last.seq < head_seq:
        return (
            f"the practice server's audit log ends at event {last.seq} but this workstation "
            f"records event {head_seq} (the newest events were removed, or an older copy of the "
            "database was put back)"
        )
    if head_seq and hash_at(head_seq) != head_hash:
        return (
            f"event {head_seq} in the practice server's audit log is not the one this "
            "workstation records: the log was rewritten"
        )
    return None


class PgReadTx:
    """Reads of the v2 shapes inside one transaction, M rows checked against their MACs."""

    def __init__(self, conn: psycopg.Connection, keys: PracticeKeys) -> None:
        self._conn = conn
        self._keys = keys
        self._macs = RowMacs(keys)
        # Full names by username, read once per transaction (each users row MAC-checked when
        # read): a complete reads the author's name twice, and a practice has dozens of users.
        self._name_cache: dict[str, str] = {}
        self._all_names = False

    def __getattr__(self, name: str) -> Any:
        if name in _PLAINTEXT_MEMBERS:
            raise StoreError(f"{name}: {NO_PLAINTEXT}; the services use its sealed form")
        raise AttributeError(name)

    # ----- M rows and their MACs -------------------------------------------------------

    def _mac(self, table: MTable, row: Mapping[str, Any]) -> bytes:
        return self._macs.mac(table, row)

    def _rows(self, name: str, *args: Any, **kwargs: Any) -> list[dict[str, Any]]:
        """Rows of M table `name`, each MAC checked, read at once (the arguments are
        `_rows_later`'s)."""
        return self._rows_later(name, *args, **kwargs)()

    def _rows_later(
        self,
        name: str,
        where: str = "",
        params: Sequence[Any] = (),
        *,
        extra: Sequence[str] = (),
        order: str = "",
        lock: bool = False,
        limit: int | None = None,
        offset: int = 0,
    ) -> Callable[[], list[dict[str, Any]]]:
        """Rows of M table `name` (its MACed columns plus `extra`; a page of them with
        `limit`/`offset`), asked for now and read, each MAC checked, when the result is
        called: several asked inside one `self._conn.pipeline()` block travel in one round
        trip."""
        table = M_TABLES[name]
        columns = [*table.columns, *extra]
        query = f"SELECT {', '.join(columns)}, row_mac FROM {name}"
        query += f" WHERE {where}" if where else ""
        query += f" ORDER BY {order}" if order else ""
        if limit is not None or offset:
            query += " LIMIT %s OFFSET %s"
            params = [*params, limit, offset]
        query += " FOR UPDATE" if lock else ""
        cursor = self._conn.execute(query.encode(), params)

        def checked() -> list[dict[str, Any]]:
            found = []
            for r in cursor:
                row = {c: mac_field(v) for c, v in zip(columns, r, strict=False)}
                self._macs.check(table, row, bytes(r[-1]))
                found.append(row)
            return found

        return checked

    def _names(self, usernames: Iterable[str] | None = None) -> dict[str, str]:
        """Full names by username: of `usernames` (only their rows are read), or of every
        user; a row read earlier in this transaction is not read again."""
        if usernames is None:
            if not self._all_names:
                self._name_cache = {u.username: u.full_name for u in self.list_users_m()}
                self._all_names = True
        elif not self._all_names:
            wanted = [u for u in dict.fromkeys(usernames) if u not in self._name_cache]
            if wanted:
                for r in self._rows("users", "username = ANY(%s)", (wanted,)):
                    self._name_cache[r["username"]] = r["full_name"]
        return self._name_cache

    def _forget_names(self) -> None:
        """A write changed the users table: read names afresh."""
        self._name_cache, self._all_names = {}, False

    # ----- users and settings -------------------------------------------------------------

    @staticmethod
    def _user(r: Mapping[str, Any]) -> User:
        return User(
            r["username"], r["full_name"], r["role"], r["gmc_number"], bool(r["active"]),
            bool(r["must_change_password"]), r["created"],
        )  # fmt: skip

    def get_user(self, username: str) -> User | None:
        """The user, or None."""
        found = self._rows("users", "username = %s", (username,))
        return self._user(found[0]) if found else None

    def list_users_m(self) -> list[User]:
        """Every user, by username."""
        return [self._user(r) for r in self._rows("users", order="username")]

    def list_users(self) -> list[User]:
        """Every user, by username."""
        return self.list_users_m()

    def get_settings(self) -> dict[str, str]:
        """Every setting."""
        return {r["key"]: r["value"] for r in self._rows("settings")}

    # ----- sealed records -------------------------------------------------------------------

    def _record_row(self, r: Mapping[str, Any], names: Mapping[str, str]) -> RecordRow:
        return RecordRow(
            r["id"], r["clinician"], r["status"], r["form_id"], int(r["form_version"]),
            r["current_step"], r["created"], r["updated"], r["completed"], int(r["version"]),
            names.get(r["clinician"], ""),
        )  # fmt: skip

    def _wraps_of(
        self, objects: Sequence[tuple[str, str]], recipients: Sequence[str]
    ) -> dict[tuple[str, str], tuple[ObjectWrap, ...]]:
        return self._wraps_later(objects, recipients)()

    def _wraps_later(
        self, objects: Sequence[tuple[str, str]], recipients: Sequence[str]
    ) -> Callable[[], dict[tuple[str, str], tuple[ObjectWrap, ...]]]:
        """`_wraps_of` sent now, read when the result is called (as `_rows_later`)."""
        if not objects or not recipients:
            return dict
        cursor = self._conn.execute(
            "SELECT object_kind, object_id, recipient, recipient_generation, wrap, created "
            "FROM object_wraps WHERE (object_kind, object_id) IN "
            "(SELECT * FROM unnest(%s::text[], %s::text[])) AND recipient = ANY(%s) "
            "ORDER BY recipient, recipient_generation",
            ([k for k, _ in objects], [i for _, i in objects], list(recipients)),
        )

        def read() -> dict[tuple[str, str], tuple[ObjectWrap, ...]]:
            found: dict[tuple[str, str], list[ObjectWrap]] = {}
            for r in cursor:
                wrap = ObjectWrap(r[0], r[1], r[2], int(r[3]), bytes(r[4]), r[5])
                found.setdefault((wrap.object_kind, wrap.object_id), []).append(wrap)
            return {pair: tuple(ws) for pair, ws in found.items()}

        return read

    @staticmethod
    def _sealed(
        kind: str,
        object_id: Any,
        ct: Any,
        commit: Any,
        wraps: Mapping[tuple[str, str], tuple[ObjectWrap, ...]],
    ) -> SealedObject | None:
        if ct is None:
            return None
        oid = str(object_id)
        return SealedObject(kind, oid, bytes(ct), bytes(commit), wraps.get((kind, oid), ()))

    def sealed_record(self, record_id: str, recipients: Sequence[str]) -> SealedRecord | None:
        """The record's M row, summary and answers object with the wraps for `recipients`."""
        return self.sealed_records([record_id], recipients).get(record_id)

    def sealed_records(
        self, record_ids: Sequence[str], recipients: Sequence[str]
    ) -> dict[str, SealedRecord]:
        """`sealed_record` of a page of records by id: one query per table for the page."""
        ids = list(dict.fromkeys(record_ids))
        # The three tables in one round trip (the wraps of a record without answers go unused).
        with self._conn.pipeline():
            rows_of = self._rows_later("records", "id = ANY(%s)", (ids,), extra=("answers_ct",))
            wraps_of = self._wraps_later([("answers", i) for i in ids], recipients)
            summaries_of = self._summaries_later(ids)
        rows, wraps = rows_of(), wraps_of()
        if not rows:
            return {}
        names = self._names(r["clinician"] for r in rows)
        summaries = {s.record_id: s for s in summaries_of()}
        found = {}
        for r in rows:
            row = self._record_row(r, names)
            answers = self._sealed("answers", row.id, r["answers_ct"], r["answers_commit"], wraps)
            found[row.id] = SealedRecord(row, summaries.get(row.id), answers)
        return found

    def summaries(self, record_ids: Sequence[str]) -> list[StoredSummary]:
        """The summaries of these records, in the order asked."""
        return self._summaries_later(record_ids)()

    def _summaries_later(self, record_ids: Sequence[str]) -> Callable[[], list[StoredSummary]]:
        """`summaries` sent now, read when the result is called (as `_rows_later`)."""
        ids = list(dict.fromkeys(record_ids))
        cursor = self._conn.execute(
            "SELECT record_id, version, generation, ct FROM record_summaries "
            "WHERE record_id = ANY(%s)",
            (ids,),
        )

        def read() -> list[StoredSummary]:
            found = {r[0]: StoredSummary(r[0], int(r[1]), int(r[2]), bytes(r[3])) for r in cursor}
            return [found[i] for i in ids if i in found]

        return read

    def records_for_tokens(
        self, tokens: Sequence[IndexToken], exclude: str | None
    ) -> list[TokenMatch]:
        """Completed records carrying any of these live tokens (except `exclude`), oldest
        first, each with its summary and the token that found it."""
        if not tokens:
            return []
        hits: dict[str, IndexToken] = {}
        for r in self._conn.execute(
            "SELECT b.record_id, b.type, b.generation, b.token FROM blind_index b "
            "JOIN unnest(%s::text[], %s::int[], %s::bytea[]) AS w(type, generation, token) "
            "ON b.type = w.type AND b.generation = w.generation AND b.token = w.token "
            "WHERE NOT b.superseded ORDER BY b.record_id, b.type",
            (
                [t.type for t in tokens],
                [t.generation for t in tokens],
                [t.token for t in tokens],
            ),
        ):
            if r[0] != exclude:
                hits.setdefault(r[0], IndexToken(r[1], int(r[2]), bytes(r[3])))
        if not hits:  # the usual answer: no earlier record of this child
            return []
        with self._conn.pipeline():  # both tables in one round trip
            rows_of = self._rows_later(
                "records", "id = ANY(%s) AND status = 'completed'", (list(hits),),
                order="created, id",
            )  # fmt: skip
            summaries_of = self._summaries_later(list(hits))
        rows = rows_of()
        names = self._names(r["clinician"] for r in rows)
        by_id = {s.record_id: s for s in summaries_of()}
        return [
            TokenMatch(self._record_row(r, names), by_id[r["id"]], hits[r["id"]])
            for r in rows
            if r["id"] in by_id
        ]

    @staticmethod
    def _record_where(flt: RecordFilter) -> tuple[str, list[Any]]:
        """The WHERE clause of a record list on M columns; a class C filter is refused (the
        server holds no pathway, consent basis, NHS number or words: the services filter the
        decrypted summaries, the lead's replica searches)."""
        refused = [
            n for n in ("pathway", "consent_basis", "child_nhs", "search") if getattr(flt, n)
        ]
        if refused:
            raise StoreError(
                f"record filter on {', '.join(refused)}: {NO_PLAINTEXT}; filter the decrypted "
                "summaries instead"
            )
        clauses: list[str] = []
        params: list[Any] = []
        for column in ("clinician", "status"):
            if getattr(flt, column):
                clauses.append(f"{column} = %s")
                params.append(getattr(flt, column))
        if flt.date_from:  # whole days of the ISO `created`, as plain comparisons an index serves
            clauses.append("created >= %s")
            params.append(flt.date_from)
        if flt.date_to:
            clauses.append("created < %s")
            params.append(_day_after(flt.date_to))
        if flt.record_ids is not None:
            clauses.append("id = ANY(%s)")
            params.append(list(flt.record_ids))
        if flt.overdue_on:
            clauses.append(
                "id IN (SELECT s.record_id FROM referral_states s WHERE s.due IS NOT NULL "
                "AND s.action IS NOT NULL AND s.due < %s)"
            )
            params.append(flt.overdue_on)
        return " AND ".join(clauses), params

    def list_records(
        self, flt: RecordFilter, limit: int | None = None, offset: int = 0, *, light: bool = False
    ) -> list[Record]:
        """Light records (M rows only: no answers, no child, no outcome) matching `flt`'s M
        filters, newest change first (ties by id), each row's MAC checked; the services add
        each page's decrypted summaries. Whole records (`light=False`) are refused."""
        if not light:
            raise StoreError(f"list_records: {NO_PLAINTEXT}; the services list light records")
        where, params = self._record_where(flt)
        rows = self._rows(
            "records", where, params, order="updated DESC, id DESC", limit=limit, offset=offset
        )
        names = self._names() if rows else {}
        blank = ChildSummary("", "", None, None)
        return [
            Record(
                r["id"],
                r["clinician"],
                r["status"],
                r["form_id"],
                int(r["form_version"]),
                {},
                r["current_step"],
                None,
                r["created"],
                r["updated"],
                r["completed"],
                blank,
                names.get(r["clinician"], ""),
            )  # fmt: skip
            for r in rows
        ]

    def count_records(self, flt: RecordFilter) -> int:
        """How many records `flt`'s M filters select (class C filters refused, as above)."""
        where, params = self._record_where(flt)
        query = "SELECT count(*) FROM records" + (f" WHERE {where}" if where else "")
        row = self._conn.execute(query.encode(), params).fetchone()
        return int(row[0]) if row else 0

    def records_without_tokens(self, generation: int) -> list[RecordRow]:
        """Completed records with no live blind token of clinical key `generation` yet."""
        rows = self._rows(
            "records",
            "status = 'completed' AND NOT EXISTS (SELECT 1 FROM blind_index b WHERE "
            "b.record_id = records.id AND b.generation = %s AND NOT b.superseded)",
            (generation,),
            order="created, id",
        )
        names = self._names()
        return [self._record_row(r, names) for r in rows]

    # ----- addenda, letters, follow-ups, reviews --------------------------------------------

    def _one_object_rows(
        self, table: str, who: str, kind: str, record_ids: Sequence[str], recipients: Sequence[str]
    ) -> list[tuple[int, str, str, str, SealedObject]]:
        """(id, record id, author or reviewer, created, sealed body) of `table`'s rows of these
        records, by id."""
        rows = self._rows(
            table, "record_id = ANY(%s)", (list(dict.fromkeys(record_ids)),),
            extra=("body_ct",), order="id",
        )  # fmt: skip
        wraps = self._wraps_of([(kind, r["object_id"]) for r in rows], recipients)
        found = []
        for r in rows:
            body = self._sealed(kind, r["object_id"], r["body_ct"], r["body_commit"], wraps)
            assert body is not None  # body_ct is NOT NULL
            found.append((r["id"], r["record_id"], r[who], r["created"], body))
        return found

    def sealed_addenda(self, record_id: str, recipients: Sequence[str]) -> list[SealedAddendum]:
        """The record's sealed addenda, oldest first, with the wraps for `recipients`."""
        return self.sealed_addenda_of([record_id], recipients).get(record_id, [])

    def sealed_addenda_of(
        self, record_ids: Sequence[str], recipients: Sequence[str]
    ) -> dict[str, list[SealedAddendum]]:
        """The sealed addenda of these records, oldest first, grouped by record id."""
        found: dict[str, list[SealedAddendum]] = {}
        for row in self._one_object_rows("addenda", "author", "addendum", record_ids, recipients):
            found.setdefault(row[1], []).append(SealedAddendum(*row))
        return found

    def sealed_reviews(self, record_id: str, recipients: Sequence[str]) -> list[SealedReview]:
        """The record's sealed lead reviews, oldest first, with the wraps for `recipients`."""
        return self.sealed_reviews_of([record_id], recipients).get(record_id, [])

    def sealed_reviews_of(
        self, record_ids: Sequence[str], recipients: Sequence[str]
    ) -> dict[str, list[SealedReview]]:
        """The sealed lead reviews of these records, oldest first, grouped by record id."""
        found: dict[str, list[SealedReview]] = {}
        for row in self._one_object_rows("reviews", "reviewer", "review", record_ids, recipients):
            found.setdefault(row[1], []).append(SealedReview(*row))
        return found

    def sealed_letters(self, record_id: str, recipients: Sequence[str]) -> list[SealedLetter]:
        """The record's sealed letters, oldest first, with the wraps for `recipients`."""
        rows = self._rows(
            "letters", "record_id = %s", (record_id,), extra=("pdf_ct", "unsigned_ct"), order="id"
        )
        objects = [("letter", r["object_id"]) for r in rows]
        objects += [("letter-unsigned", r["unsigned_object_id"]) for r in rows if r["unsigned_ct"]]
        wraps = self._wraps_of(objects, recipients)
        found = []
        for r in rows:
            meta = LetterMeta(r["id"], r["record_id"], r["created"], r["signer"], r["sha256"])
            pdf = self._sealed("letter", r["object_id"], r["pdf_ct"], r["pdf_commit"], wraps)
            assert pdf is not None  # pdf_ct is NOT NULL
            unsigned = self._sealed(
                "letter-unsigned", r["unsigned_object_id"], r["unsigned_ct"],
                r["unsigned_commit"], wraps,
            )  # fmt: skip
            found.append(SealedLetter(meta, pdf, unsigned))
        return found

    def sealed_followups(
        self, record_ids: Sequence[str], recipients: Sequence[str]
    ) -> list[SealedFollowUp]:
        """Sealed follow-up events of these records in time order."""
        rows = self._rows(
            "followups", "record_id = ANY(%s)", (list(record_ids),), extra=("note_ct",),
            order="at, id",
        )  # fmt: skip
        notes = [("followup-note", r["object_id"]) for r in rows if r["object_id"]]
        wraps = self._wraps_of(notes, recipients)
        return [
            SealedFollowUp(
                r["id"],
                r["record_id"],
                r["event"],
                r["at"],
                r["recorded_by"],
                r["recorded_at"],
                r["decision"],
                self._sealed(
                    "followup-note", r["object_id"], r["note_ct"], r["note_commit"], wraps
                ),
            )  # fmt: skip
            for r in rows
        ]

    def household_reviews(self, record_ids: Sequence[str]) -> list[SealedHouseholdReview]:
        """Sealed household link reviews made from any of these records, oldest first."""
        rows = self._rows(
            "household_link_reviews", "record_id = ANY(%s)", (list(record_ids),),
            extra=("review_ct",), order="id",
        )  # fmt: skip
        return [
            SealedHouseholdReview(
                r["id"],
                r["record_id"],
                r["other_record_id"],
                r["reviewer"],
                r["created"],
                int(r["generation"]),
                bytes(r["review_ct"]),
            )  # fmt: skip
            for r in rows
        ]

    def sealed_rows(self) -> list[SealedRowState]:
        """Every sealed row with its ciphertext hashes and commitments; a row whose M MAC fails
        is reported with mac_ok False (not raised), so a verify names each one."""
        found = sealed_rows.inventory(lambda q: self._conn.execute(q.encode()).fetchall())

        def check(name: str, row: Mapping[str, Any], mac: bytes) -> None:
            self._macs.check(M_TABLES[name], row, mac)

        bad = pg_integrity.mac_failures(self._conn, lambda name: M_TABLES[name].columns, check)
        return [dataclasses.replace(r, mac_ok=False) if r.key in bad else r for r in found]

    def letter_by_hash(self, sha256: str) -> LetterMeta | None:
        """The letter whose signed PDF has this SHA-256, or None."""
        rows = self._rows("letters", "sha256 = %s", (sha256,), order="id")
        return (
            LetterMeta(
                rows[0]["id"], rows[0]["record_id"], rows[0]["created"], rows[0]["signer"], sha256
            )
            if rows
            else None
        )

    # ----- key tables -----------------------------------------------------------------------

    def role_key_wraps(
        self, recipient: str | None = None, key_name: RoleKeyName | None = None
    ) -> list[RoleKeyWrap]:
        """Role key wraps (all, or one recipient's, or of one key)."""
        return [
            RoleKeyWrap(r[0], int(r[1]), r[2], int(r[3]), bytes(r[4]))
            for r in self._conn.execute(
                "SELECT key_name, generation, recipient, recipient_generation, wrap "
                "FROM role_key_wraps WHERE (%s::text IS NULL OR recipient = %s) "
                "AND (%s::text IS NULL OR key_name = %s) "
                "ORDER BY key_name, generation, recipient, recipient_generation",
                (recipient, recipient, key_name, key_name),
            )
        ]

    def object_wraps_for(
        self, recipient: str, objects: Iterable[tuple[str, str]] | None = None
    ) -> list[ObjectWrap]:
        """The recipient's wraps of these (kind, id) objects, or of every object."""
        if objects is not None:
            wanted = self._wraps_of(list(dict.fromkeys(objects)), [recipient])
            found = [w for ws in wanted.values() for w in ws]
            return sorted(found, key=lambda w: (w.object_kind, w.object_id, w.recipient_generation))
        return [
            ObjectWrap(r[0], r[1], r[2], int(r[3]), bytes(r[4]), r[5])
            for r in self._conn.execute(
                "SELECT object_kind, object_id, recipient, recipient_generation, wrap, created "
                "FROM object_wraps WHERE recipient = %s ORDER BY object_kind, object_id, "
                "recipient_generation",
                (recipient,),
            )
        ]

    def bundle(self, user_id: str, generation: int | None = None) -> StoredBundle | None:
        """The user's bundle of `generation`, or their newest one whatever its state."""
        from gpshare.store.crypto import KdfParams
        from gpshare.store.keys.bundle import SealedBundle

        row = self._conn.execute(
            "SELECT user_id, generation, state, kdf, salt, blob, created FROM key_bundles "
            "WHERE user_id = %s AND (%s::int IS NULL OR generation = %s) "
            "ORDER BY generation DESC LIMIT 1",
            (user_id, generation, generation),
        ).fetchone()
        if row is None:
            return None
        kdf = KdfParams.from_dict(json.loads(row[3]))
        sealed = SealedBundle(int(row[1]), kdf, bytes(row[4]), bytes(row[5]))
        return StoredBundle(row[0], row[2], sealed, row[6])

    @staticmethod
    def _directory_row(r: Sequence[Any]) -> DirectoryRow:
        return DirectoryRow(
            int(r[0]), r[1], r[2], int(r[3]), r[4], bytes(r[5]), r[6],
            None if r[7] is None else bytes(r[7]), r[8],
            lead_access_key=None if r[9] is None else bytes(r[9]),
        )  # fmt: skip

    def directory_entries(
        self, user_id: str | None = None, kind: DirectoryKind | None = None
    ) -> list[DirectoryRow]:
        """Directory rows, oldest first: all, one user's, or one kind's."""
        return [
            self._directory_row(r)
            for r in self._conn.execute(
                f"SELECT {_DIRECTORY} FROM directory WHERE (%s::text IS NULL OR user_id = %s) "
                "AND (%s::text IS NULL OR kind = %s) ORDER BY id".encode(),
                (user_id, user_id, kind, kind),
            )
        ]

    def pending_entries(self) -> list[DirectoryRow]:
        """For each user whose newest directory row is unsigned, that row (oldest first)."""
        return [
            self._directory_row(r)
            for r in self._conn.execute(
                f"SELECT {_DIRECTORY} FROM directory d WHERE d.kind = 'user' "
                "AND d.signature IS NULL AND d.id = (SELECT max(n.id) FROM directory n "
                "WHERE n.kind = 'user' AND n.user_id = d.user_id) ORDER BY d.id".encode()
            )
        ]

    def lead_rotations(self) -> list[LeadRotation]:
        """Every lead signing key rotation statement, by generation."""
        return [
            LeadRotation(int(r[0]), bytes(r[1]), bytes(r[2]), bytes(r[3]))
            for r in self._conn.execute(
                "SELECT generation, previous_key, new_key, signature FROM lead_rotations "
                "ORDER BY generation"
            )
        ]

    def breakglass_state(self) -> BreakglassState | None:
        """The newest break-glass ceremony and who has acknowledged it (MAC-checked)."""
        row = self._conn.execute(
            "SELECT seq, at FROM audit WHERE action = %s ORDER BY seq DESC LIMIT 1",
            (BREAKGLASS_EVENT,),
        ).fetchone()
        if row is None:
            return None
        acks = self._rows("breakglass_acks", "event_seq = %s", (row[0],), order="at, user_id")
        return BreakglassState(int(row[0]), row[1], tuple(a["user_id"] for a in acks))

    def remembered_logins(self, user_id: str | None = None) -> list[RememberedLogin]:
        """Remembered logins, revoked ones included, oldest first."""
        where, params = ("user_id = %s", (user_id,)) if user_id else ("", ())
        return [
            RememberedLogin(r["id"], r["user_id"], r["workstation"], r["created"], r["revoked"])
            for r in self._rows("remembered_logins", where, params, order="id")
        ]

    # ----- v1 readers, answered with M fields only (see _PLAINTEXT_MEMBERS) ------------------

    def _light(self, r: Mapping[str, Any], names: Mapping[str, str]) -> Record:
        """A record's M fields as a light Record: no answers, no child, no outcome columns
        (class C; the services read them from the sealed summary)."""
        done = r["status"] == "completed"
        return Record(
            id=r["id"], clinician=r["clinician"], status=r["status"], form_id=r["form_id"],
            form_version=int(r["form_version"]), answers={}, current_step=r["current_step"],
            outcome={"pathway": None, "consent_basis": None, "letter_required": False}
            if done else None,
            created=r["created"], updated=r["updated"], completed=r["completed"],
            child=ChildSummary("", "", None, None), clinician_name=names.get(r["clinician"], ""),
        )  # fmt: skip

    def get_record(self, record_id: str) -> Record | None:
        """The record's M fields (a light Record), or None."""
        found = self._rows("records", "id = %s", (record_id,))
        return self._light(found[0], self._names()) if found else None

    def completed_records_light(
        self, statuses: Sequence[str] | None = None, record_ids: Sequence[str] | None = None
    ) -> list[Record]:
        """Completed records' M fields (the state answers are class C: absent)."""
        clauses: list[str] = ["status = 'completed'"]
        params: list[Any] = []
        if statuses is not None:
            clauses.append("id IN (SELECT record_id FROM referral_states WHERE status = ANY(%s))")
            params.append(list(statuses))
        if record_ids is not None:
            clauses.append("id = ANY(%s)")
            params.append(list(record_ids))
        names = self._names()
        return [
            self._light(r, names)
            for r in self._rows("records", " AND ".join(clauses), params, order="created, id")
        ]

    def addenda(self, record_id: str) -> list[Addendum]:
        """None: every addendum on a server is sealed (sealed_addenda reads them)."""
        return []

    def reviews(self, record_id: str | None = None) -> list[Review]:
        """None: every review on a server is sealed (sealed_reviews reads them)."""
        return []

    def household_link_decisions(self, record_ids: Sequence[str]) -> dict[str, str]:
        """None: decisions on a server are sealed (household_reviews reads them)."""
        return {}

    def letters(self, record_id: str) -> list[LetterMeta]:
        """The record's letters' M fields, oldest first."""
        return [
            LetterMeta(r["id"], r["record_id"], r["created"], r["signer"], r["sha256"])
            for r in self._rows("letters", "record_id = %s", (record_id,), order="id")
        ]

    def letter_pdf(self, letter_id: int) -> tuple[LetterMeta, bytes] | None:
        """The letter's M fields and no PDF (b""): every letter on a server is sealed
        (sealed_letters reads it), as a sealed letter's row on an embedded v2 vault."""
        rows = self._rows("letters", "id = %s", (letter_id,))
        if not rows:
            return None
        r = rows[0]
        return LetterMeta(r["id"], r["record_id"], r["created"], r["signer"], r["sha256"]), b""

    def letter_unsigned_pdf(self, letter_id: int) -> bytes | None:
        """None: an unsigned copy on a server is sealed too (sealed_letters)."""
        return None

    def followups(self, record_ids: Iterable[str] | None = None) -> list[FollowUp]:
        """Follow-up events' M fields in time order (their notes are sealed: None here)."""
        where, params = (
            ("record_id = ANY(%s)", [list(record_ids)]) if record_ids is not None else ("", [])
        )
        return [
            FollowUp(r["id"], r["record_id"], r["event"], r["at"], r["recorded_by"],
                     r["recorded_at"], r["decision"], None)
            for r in self._rows("followups", where, params, order="at, id")
        ]  # fmt: skip

    # ----- practice CA and signing keys -------------------------------------------------------

    def get_practice_ca(self) -> WrappedKey | None:
        """The practice CA certificate and its sealed key, or None."""
        found = self._rows("practice_ca")
        if not found:
            return None
        r = found[0]
        return WrappedKey(bytes(r["cert_pem"]), bytes(r["nonce"]), bytes(r["wrapped"]))

    def active_signing_key(self, username: str) -> tuple[int, WrappedKey] | None:
        """The user's newest active signing key (id, wrapped key), or None."""
        found = self._rows("signing_keys", "username = %s AND active", (username,), order="id DESC")
        if not found:
            return None
        r = found[0]
        return int(r["id"]), WrappedKey(
            bytes(r["cert_pem"]), bytes(r["nonce"]), bytes(r["wrapped"])
        )

    # ----- stored referral states ---------------------------------------------------------------
    # The states' M columns only: the child's names are class C, so DueRow carries them
    # empty and the services name the child from the record's summary (as on vault v2).

    def _states(self, where: str, params: Sequence[Any]) -> list[dict[str, Any]]:
        """referral_states rows (MAC-checked) joined with their records' M rows."""
        states = self._rows("referral_states", where, params)
        ids = [s["record_id"] for s in states]
        records = {r["id"]: r for r in self._rows("records", "id = ANY(%s)", (ids,))}
        return [
            {**s, "clinician": records[s["record_id"]]["clinician"],
             "created": records[s["record_id"]]["created"],
             "completed": records[s["record_id"]]["completed"]}
            for s in states
            if s["record_id"] in records
        ]  # fmt: skip

    @staticmethod
    def _in_days(value: str | None, date_from: str | None, date_to: str | None) -> bool:
        day = (value or "")[:10]
        return (not date_from or day >= date_from) and (not date_to or day <= date_to)

    def _due(self, where: str, params: Sequence[Any], clinician: str | None) -> list[DueRow]:
        rows = [
            s
            for s in self._states("due IS NOT NULL AND action IS NOT NULL AND " + where, params)
            if not clinician or s["clinician"] == clinician
        ]
        rows.sort(key=lambda s: (s["due"], s["created"]))
        return [(s["record_id"], s["clinician"], "", "", s["action"], s["due"]) for s in rows]

    def due_referrals(self, due_by: str, clinician: str | None = None) -> list[DueRow]:
        """Completed records whose next action falls due by `due_by`, earliest first (the
        child's names empty: class C)."""
        return self._due("due <= %s", (due_by,), clinician)

    def referrals_with_action(
        self, action: str, due_after: str, clinician: str | None = None
    ) -> list[DueRow]:
        """Like due_referrals, for this next action due after `due_after`."""
        return self._due("action = %s AND due > %s", (action, due_after), clinician)

    def overdue_counts(
        self, today_iso: str, date_from: str | None, date_to: str | None
    ) -> dict[str, int]:
        """Statuses whose next action was due before `today_iso`, counted, for records
        created in the (whole-day) range."""
        counts: dict[str, int] = {}
        for s in self._states("due IS NOT NULL AND action IS NOT NULL AND due < %s", (today_iso,)):
            if self._in_days(s["created"], date_from, date_to):
                counts[s["status"]] = counts.get(s["status"], 0) + 1
        return counts

    def send_timings(
        self, date_from: str | None, date_to: str | None
    ) -> list[tuple[str, str | None, str | None]]:
        """(completed, first sent, first acknowledged) of sent referrals created in range."""
        return [
            (str(s["completed"]), s["sent_at"], s["acknowledged_at"])
            for s in self._states("sent_at IS NOT NULL", ())
            if self._in_days(s["created"], date_from, date_to)
        ]

    def dashboard_rows(
        self, date_from: str | None, date_to: str | None, *, with_timings: bool = True
    ) -> DashboardRows:
        """No monthly counts (pathway and consent basis are class C: the services count the
        decrypted summaries); the send/acknowledge times from the stored states."""
        timings = self.send_timings(date_from, date_to) if with_timings else []
        return DashboardRows([], [], timings)

    def stored_actions(self, record_ids: Sequence[str]) -> dict[str, str | None]:
        """The stored next action of each of these records that has a stored state."""
        return {
            r["record_id"]: r["action"]
            for r in self._rows("referral_states", "record_id = ANY(%s)", (list(record_ids),))
        }

    def referral_dues(self, record_ids: Sequence[str] | None = None) -> dict[str, tuple[str, str]]:
        """(due, next action) of the stored referral states that have both (MACs checked)."""
        where = "due IS NOT NULL AND action IS NOT NULL"
        params: tuple[Any, ...] = ()
        if record_ids is not None:
            where, params = where + " AND record_id = ANY(%s)", (list(record_ids),)
        return {
            r["record_id"]: (r["due"], r["action"])
            for r in self._rows("referral_states", where, params)
        }

    def last_draft_saved_at(self, record_id: str) -> str | None:
        """When the newest 'draft_saved' event of the record was written, or None."""
        row = self._conn.execute(
            "SELECT at FROM audit WHERE record_id = %s AND action = 'draft_saved' "
            "ORDER BY seq DESC LIMIT 1",
            (record_id,),
        ).fetchone()
        return str(row[0]) if row else None

    # ----- the audit log ----------------------------------------------------------------------

    def audit_head(self) -> AuditHead:
        """The newest event, or AuditHead(0, GENESIS) for an empty log."""
        return pg_audit.head(self._conn)

    def audit_events(
        self, flt: AuditFilter, limit: int | None = None, offset: int = 0
    ) -> list[AuditEvent]:
        """Events matching `flt`, newest first."""
        clauses, params = ["true"], []
        for column, value in (
            ("actor", flt.actor), ("action", flt.action), ("record_id", flt.record_id)
        ):  # fmt: skip
            if value:
                clauses.append(f"{column} = %s")
                params.append(value)
        if flt.date_from:
            clauses.append("substr(at, 1, 10) >= %s")
            params.append(flt.date_from)
        if flt.date_to:
            clauses.append("substr(at, 1, 10) <= %s")
            params.append(flt.date_to)
        query = (
            "SELECT seq, at, actor, action, record_id, details FROM audit WHERE "
            + " AND ".join(clauses)
            + " ORDER BY seq DESC LIMIT %s OFFSET %s"
        )
        return [
            AuditEvent(int(r[0]), r[1], r[2], r[3], r[4], json.loads(r[5]))
            for r in self._conn.execute(query.encode(), [*params, limit, offset])
        ]

    def audit_events_after(self, seq: int, limit: int | None = None) -> list[AuditEvent]:
        """Events after `seq`, oldest first."""
        return [
            AuditEvent(int(r[0]), r[1], r[2], r[3], r[4], json.loads(r[5]))
            for r in self._conn.execute(
                "SELECT seq, at, actor, action, record_id, details FROM audit WHERE seq > %s "
                "ORDER BY seq LIMIT %s",
                (seq, limit),
            )
        ]

    def audit_hash_at(self, seq: int) -> str | None:
        """The seal of event `seq`, or None."""
        row = self._conn.execute("SELECT hash FROM audit WHERE seq = %s", (seq,)).fetchone()
        return str(row[0]) if row else None

    def verify_audit(
        self,
        head: tuple[int, str] | None = None,
        progress: Callable[[int, int], None] | None = None,
    ) -> ChainReport:
        """Walk the whole chain (against `head` when given); `progress` hears (done, total)
        once, at the end (the server walks in one cursor)."""
        expected = AuditHead(*head) if head else None
        legacy = audit_legacy_key(self._keys)  # a vault upgraded from v1, then moved here
        report = pg_audit.verify(self._conn, self._keys.audit, expected, legacy)
        if progress is not None:
            progress(report.events, report.events)
        return report

    def head_problem(self, head: tuple[int, str]) -> str | None:
        """Compare the chain with a head this workstation holds (as the embedded engine)."""
        return _head_words(pg_audit.head(self._conn), self.audit_hash_at, head)

    def anchor_problem(self, anchor: tuple[int, str], restore_floor: int) -> str | None:
        """Compare the chain with the newest head this computer has seen (its anchor)."""
        seen_seq, seen_hash = anchor
        if seen_seq <= restore_floor:
            return None
        last = pg_audit.head(self._conn)
        if last.seq < seen_seq:
            return (
                f"this computer has seen event {seen_seq} of the practice's audit log, but the "
                f"practice server's log now ends at event {last.seq} (events {last.seq + 1} to "
                f"{seen_seq} are missing: the server was rolled back or replaced)"
            )
        if self.audit_hash_at(seen_seq) != seen_hash:
            return (
                f"event {seen_seq} of the practice server's audit log differs from the one this "
                "computer saw: the server's history was replaced"
            )
        return None


def m_row_mac(keys: PracticeKeys, table: str, row: Mapping[str, Any]) -> bytes:
    """The `row_mac` this engine stores for `row` (every MACed column of M table `table`, and
    the serial `id` when it has one), for bulk loads that COPY rows instead of inserting them
    through a write transaction (bench/pg_lead_list.py's seed)."""
    return RowMacs(keys).mac(M_TABLES[table], row)


class PgWriteTx(PgReadTx):
    """Writes of the v2 shapes; `actor` is who the transaction's audit event names (None for
    maintenance)."""

    def __init__(self, conn: psycopg.Connection, keys: PracticeKeys, actor: str | None) -> None:
        super().__init__(conn, keys)
        self._actor = actor

    def _insert(self, name: str, values: Mapping[str, Any], **extra: Any) -> int:
        """Insert an M row (its MAC computed here); the new id of a serial table, else 0."""
        table = M_TABLES[name]
        if name == "users":
            self._forget_names()
        row = dict(values)
        if table.serial:
            seq = self._conn.execute("SELECT nextval(pg_get_serial_sequence(%s, 'id'))", (name,))
            row["id"] = int(seq.fetchone()[0])  # type: ignore[index]
        row.update(extra)
        row["row_mac"] = self._mac(table, row)
        query = sql.SQL("INSERT INTO {} ({}) VALUES ({})").format(
            sql.Identifier(name),
            sql.SQL(", ").join(map(sql.Identifier, row)),
            sql.SQL(", ").join(sql.Placeholder() * len(row)),
        )
        self._conn.execute(query, list(row.values()))
        return int(row["id"]) if table.serial else 0

    def _update(
        self,
        name: str,
        key: Mapping[str, Any],
        changes: Mapping[str, Any],
        guard: str = "",
        guard_params: Sequence[Any] = (),
        *,
        raw: Mapping[str, Any] | None = None,
        locked: Mapping[str, Any] | None = None,
    ) -> bool:
        """Change one M row (locked and MAC-checked first, then re-MACed) and its unMACed
        ciphertext columns `raw`; False when no row matches the key and `guard`. `locked`:
        the row as this transaction already read it FOR UPDATE (its MAC checked then), so it
        is not read and checked a second time."""
        table = M_TABLES[name]
        if name == "users":
            self._forget_names()
        if locked is None:
            where = " AND ".join(f"{k} = %s" for k in key) + (f" AND {guard}" if guard else "")
            found = self._rows(name, where, [*key.values(), *guard_params], lock=True)
            if not found:
                return False
            locked = found[0]
        row = {**locked, **changes}
        changed = {**changes, **(raw or {}), "row_mac": self._mac(table, row)}
        query = sql.SQL("UPDATE {} SET {} WHERE {}").format(
            sql.Identifier(name),
            sql.SQL(", ").join(
                sql.SQL("{} = {}").format(sql.Identifier(c), sql.Placeholder()) for c in changed
            ),
            sql.SQL(" AND ").join(
                sql.SQL("{} = {}").format(sql.Identifier(k), sql.Placeholder()) for k in key
            ),
        )
        self._conn.execute(query, [*changed.values(), *key.values()])
        return True

    # ----- users and settings -------------------------------------------------------------

    def insert_user(self, user: User) -> None:
        """Add a user."""
        self._insert(
            "users",
            {
                "username": user.username, "full_name": user.full_name, "role": user.role,
                "gmc_number": user.gmc_number, "active": user.active,
                "must_change_password": user.must_change_password, "created": user.created,
            },
        )  # fmt: skip

    def set_user_active(self, username: str, active: bool) -> None:
        """Enable or disable a user."""
        self._update("users", {"username": username}, {"active": active})

    def set_must_change_password(self, username: str, value: bool) -> None:
        """Set or clear the user's must-change-password flag."""
        self._update("users", {"username": username}, {"must_change_password": value})

    def put_settings(self, values: dict[str, str]) -> None:
        """Insert or replace these settings."""
        for key, value in values.items():
            if not self._update("settings", {"key": key}, {"value": value}):
                self._insert("settings", {"key": key, "value": value})

    # ----- practice CA and signing keys -------------------------------------------------------

    def put_practice_ca(self, cert_pem: bytes, nonce: bytes, wrapped: bytes, created: str) -> None:
        """Store the practice CA (once: the row is never replaced)."""
        self._insert(
            "practice_ca",
            {"one": True, "cert_pem": cert_pem, "nonce": nonce, "wrapped": wrapped,
             "created": created},
        )  # fmt: skip

    def add_signing_key(self, username: str, key: WrappedKey, source: str, created: str) -> None:
        """Add the user's new active signing key (their older ones become inactive)."""
        self.deactivate_signing_keys(username)
        self._insert(
            "signing_keys",
            {"username": username, "cert_pem": key.cert_pem, "nonce": key.nonce,
             "wrapped": key.wrapped, "source": source, "created": created, "active": True},
        )  # fmt: skip

    def replace_signing_key_wrap(self, key_id: int, nonce: bytes, wrapped: bytes) -> None:
        """Store a re-wrapped signing key (a password change)."""
        self._update("signing_keys", {"id": key_id}, {"nonce": nonce, "wrapped": wrapped})

    def deactivate_signing_keys(self, username: str) -> None:
        """Mark every signing key of the user inactive."""
        for r in self._rows("signing_keys", "username = %s AND active", (username,)):
            self._update("signing_keys", {"id": r["id"]}, {"active": False})

    def put_referral_states(self, states: Iterable[StoredState]) -> None:
        """Insert or replace completed records' referral states (M columns only)."""
        for st in states:
            changes = {
                "status": st.status, "action": st.action, "due": st.due,
                "sent_at": st.sent_at, "acknowledged_at": st.acknowledged_at,
            }  # fmt: skip
            if not self._update("referral_states", {"record_id": st.record.id}, changes):
                self._insert("referral_states", {"record_id": st.record.id, **changes})

    # ----- sealed records -------------------------------------------------------------------

    def _put_summary_and_tokens(self, write: RecordWrite) -> None:
        # An unconfirmed author's draft has no summary and no tokens (no clinical key yet).
        if write.summary is not None:
            self._put_summary(write.summary)
            self.put_blind_tokens(write.row.id, write.summary.generation, write.tokens)

    def _put_summary(self, summary: StoredSummary) -> None:
        self._conn.execute(
            "INSERT INTO record_summaries (record_id, version, generation, ct) "
            "VALUES (%s, %s, %s, %s) ON CONFLICT (record_id) DO UPDATE SET "
            "version = excluded.version, generation = excluded.generation, ct = excluded.ct",
            (summary.record_id, summary.version, summary.generation, summary.ct),
        )

    def add_object_wraps(self, wraps: Iterable[ObjectWrap]) -> None:
        """Append object key wraps."""
        with self._conn.cursor() as cur:
            cur.executemany(
                "INSERT INTO object_wraps (object_kind, object_id, recipient, "
                "recipient_generation, wrap, created) VALUES (%s, %s, %s, %s, %s, %s)",
                [
                    (w.object_kind, w.object_id, w.recipient, w.recipient_generation, w.wrap,
                     w.created)
                    for w in wraps
                ],
            )  # fmt: skip

    def add_role_key_wraps(self, wraps: Iterable[RoleKeyWrap]) -> None:
        """Append role key wraps (a grant or a rotation)."""
        with self._conn.cursor() as cur:
            cur.executemany(
                "INSERT INTO role_key_wraps (key_name, generation, recipient, "
                "recipient_generation, wrap) VALUES (%s, %s, %s, %s, %s)",
                [
                    (w.key_name, w.generation, w.recipient, w.recipient_generation, w.wrap)
                    for w in wraps
                ],
            )

    def insert_sealed_record(self, write: RecordWrite) -> None:
        """Insert a new sealed draft, its summary, its answers' wraps and tokens."""
        write.check()
        row = write.row
        self._insert(
            "records",
            {
                "id": row.id, "clinician": row.clinician, "status": "draft",
                "form_id": row.form_id, "form_version": row.form_version,
                "current_step": row.current_step, "created": row.created, "updated": row.updated,
                "completed": None, "version": row.version,
                "saved_by": self._actor or row.clinician,
                "answers_commit": write.answers.commitment,
            },
            answers_ct=write.answers.ct,
        )  # fmt: skip
        self._put_summary_and_tokens(write)
        self.add_object_wraps(write.answers.wraps)

    def _stale(self, write: RecordWrite, doing: str) -> StaleVersionError:
        found = self._rows("records", "id = %s", (write.row.id,))
        if not found:
            why = "it is not on the practice server"
        elif found[0]["status"] != "draft":
            why = "it has been completed since it was opened"
        else:
            by = found[0]["saved_by"]
            name = self._names([by]).get(by, by)
            why = (
                f"{name} ({by}) saved it meanwhile (it is at version {found[0]['version']}, "
                f"this copy was opened at version {write.base_version})"
            )
        return StaleVersionError(
            f"Record {write.row.id} was not {doing}: {why}. Nothing was written. Close it and "
            "open it again to see the newest version."
        )

    def _save(self, write: RecordWrite, completed: bool, doing: str) -> None:
        write.check()
        row = write.row
        changes: dict[str, Any] = {
            "form_version": row.form_version, "current_step": row.current_step,
            "updated": row.updated, "version": row.version,
            "saved_by": self._actor or row.clinician,
        }  # fmt: skip
        if completed:
            changes |= {"status": "completed", "completed": row.completed or row.updated}
        # The summary and tokens go first: once the record is completed the triggers freeze
        # them. The row lock taken by the guarded read below makes a second save wait for
        # this one, then find the version moved on.
        locked = self._rows(
            "records", "id = %s AND status = 'draft' AND version = %s",
            (row.id, write.base_version), lock=True,
        )  # fmt: skip
        if not locked:
            raise self._stale(write, doing)
        self._put_summary_and_tokens(write)
        self.add_object_wraps(write.answers.wraps)
        self._update(
            "records", {"id": row.id}, changes, raw={"answers_ct": write.answers.ct},
            locked=locked[0],
        )  # fmt: skip

    def update_sealed_draft(self, write: RecordWrite) -> None:
        """Store a re-sealed draft if it is still at `write.base_version`, else
        StaleVersionError naming who saved the newer version (nothing written)."""
        self._save(write, completed=False, doing="saved")

    def complete_sealed_record(self, write: RecordWrite) -> None:
        """Store the final seal of a draft at `write.base_version` and mark it completed."""
        self._save(write, completed=True, doing="completed")

    def put_blind_tokens(
        self, record_id: str, generation: int, tokens: Iterable[IndexToken]
    ) -> None:
        """Replace the record's live tokens of `generation` (older ones are superseded, not
        deleted: the workstation role may delete nothing)."""
        given = list(tokens)
        if any(t.generation != generation for t in given):
            raise ValueError("blind tokens must be of the generation they are stored under")
        kept = list(dict.fromkeys((t.type, t.token) for t in given))
        # One statement: only the tokens that went away are superseded and only new or
        # superseded ones (re)inserted, so a save that keeps the child's identity (a complete
        # after its drafts, usually) changes no token row at all. The two parts touch
        # disjoint rows (in `kept` or not), as one statement must.
        self._conn.execute(
            "WITH kept AS (SELECT * FROM unnest(%s::text[], %s::bytea[]) AS k(type, token)), "
            "gone AS (UPDATE blind_index b SET superseded = true WHERE b.record_id = %s "
            "AND b.generation = %s AND NOT b.superseded AND NOT EXISTS "
            "(SELECT 1 FROM kept WHERE kept.type = b.type AND kept.token = b.token)) "
            "INSERT INTO blind_index (generation, type, token, record_id) "
            "SELECT %s, type, token, %s FROM kept "
            "ON CONFLICT (record_id, generation, type, token) "
            "DO UPDATE SET superseded = false WHERE blind_index.superseded",
            (
                [t for t, _ in kept], [k for _, k in kept], record_id, generation, generation,
                record_id,
            ),
        )  # fmt: skip

    def delete_draft(self, record_id: str) -> None:
        """Refused: nothing is deleted on a practice server."""
        raise StoreError(
            f"Draft {record_id} was not deleted: a practice server keeps every row (no DELETE)."
        )

    # ----- addenda, letters, follow-ups, reviews --------------------------------------------

    def _add_one_object(
        self, table: str, who: str, record_id: str, person: str, created: str, body: SealedObject
    ) -> int:
        """Append a row of `table` (addenda or reviews) whose narrative is one sealed object,
        and its wraps; its id."""
        new = self._insert(
            table,
            {"record_id": record_id, who: person, "created": created,
             "object_id": body.object_id, "body_commit": body.commitment},
            body_ct=body.ct,
        )  # fmt: skip
        self.add_object_wraps(body.wraps)
        return new

    def add_sealed_addendum(
        self, record_id: str, author: str, created: str, body: SealedObject
    ) -> int:
        """Append a sealed addendum and its wraps; its id."""
        return self._add_one_object("addenda", "author", record_id, author, created, body)

    def add_sealed_review(
        self, record_id: str, reviewer: str, created: str, body: SealedObject
    ) -> int:
        """Append a sealed lead review and its wraps; its id."""
        return self._add_one_object("reviews", "reviewer", record_id, reviewer, created, body)

    def add_sealed_letter(
        self,
        record_id: str,
        created: str,
        signer: str,
        sha256: str,
        pdf: SealedObject,
        unsigned: SealedObject | None = None,
    ) -> int:
        """Append a signed letter's sealed PDFs and their wraps; its id."""
        new = self._insert(
            "letters",
            {
                "record_id": record_id, "created": created, "signer": signer, "sha256": sha256,
                "object_id": pdf.object_id, "pdf_commit": pdf.commitment,
                "unsigned_object_id": unsigned and unsigned.object_id,
                "unsigned_commit": unsigned and unsigned.commitment,
            },
            pdf_ct=pdf.ct,
            unsigned_ct=unsigned and unsigned.ct,
        )  # fmt: skip
        self.add_object_wraps([*pdf.wraps, *(unsigned.wraps if unsigned else ())])
        return new

    def add_sealed_followup(self, fu: FollowUp, note: SealedObject | None) -> int:
        """Append a follow-up event's M fields with its sealed note; its id."""
        new = self._insert(
            "followups",
            {
                "record_id": fu.record_id, "event": fu.event, "at": fu.at,
                "recorded_by": fu.recorded_by, "recorded_at": fu.recorded_at,
                "decision": fu.decision, "object_id": note and note.object_id,
                "note_commit": note and note.commitment,
            },
            note_ct=note and note.ct,
        )  # fmt: skip
        if note is not None:
            self.add_object_wraps(note.wraps)
        return new

    def add_sealed_household_review(
        self,
        record_id: str,
        other_record_id: str,
        reviewer: str,
        created: str,
        generation: int,
        ct: bytes,
    ) -> int:
        """Append a household link review whose decision and note are sealed; its id."""
        return self._insert(
            "household_link_reviews",
            {"record_id": record_id, "other_record_id": other_record_id, "reviewer": reviewer,
             "created": created, "generation": generation},
            review_ct=ct,
        )  # fmt: skip

    # ----- key tables -----------------------------------------------------------------------

    def put_bundle(self, bundle: StoredBundle) -> None:
        """Add a bundle generation, or store a re-sealed blob and new state for an existing
        one (its `created` stays as first stored)."""
        sealed = bundle.sealed
        self._conn.execute(
            "INSERT INTO key_bundles (user_id, generation, state, kdf, salt, blob, created) "
            "VALUES (%s, %s, %s, %s, %s, %s, %s) ON CONFLICT (user_id, generation) DO UPDATE "
            "SET state = excluded.state, kdf = excluded.kdf, salt = excluded.salt, "
            "blob = excluded.blob",
            (
                bundle.user_id, sealed.generation, bundle.state,
                json.dumps(sealed.kdf.to_dict(), sort_keys=True), sealed.salt, sealed.blob,
                bundle.created,
            ),
        )  # fmt: skip

    def add_directory_entry(self, signed: SignedEntry, created: str) -> int:
        """Append a directory row (pending when unsigned); its id."""
        from gpshare.store.keys.directory import UserEntry

        entry = signed.entry
        if isinstance(entry, UserEntry):
            values: tuple[Any, ...] = (
                "user", entry.user_id, entry.key_generation, entry.role, entry.public_key,
                entry.active, entry.lead_access_key,
            )  # fmt: skip
        else:
            values = ("lead-key", None, entry.generation, None, entry.public_key, None, None)
        row = self._conn.execute(
            "INSERT INTO directory (kind, user_id, generation, role, public_key, active, "
            "lead_access_key, signature, created) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s) "
            "RETURNING id",
            (*values, signed.signature, created),
        ).fetchone()
        return int(row[0]) if row else 0

    def add_lead_rotation(self, statement: RotationStatement) -> None:
        """Append a lead signing key rotation statement."""
        self._conn.execute(
            "INSERT INTO lead_rotations (generation, previous_key, new_key, signature) "
            "VALUES (%s, %s, %s, %s)",
            (statement.generation, statement.previous_key, statement.new_key, statement.signature),
        )

    def add_breakglass_ack(self, event_seq: int, user_id: str, at: str) -> None:
        """Record a user's acknowledgement of the break-glass event `event_seq`."""
        self._insert("breakglass_acks", {"event_seq": event_seq, "user_id": user_id, "at": at})

    # ----- remembered logins ------------------------------------------------------------------

    def add_remembered_login(self, user_id: str, workstation: str, created: str) -> int:
        """Record a login remembered on a workstation; its id."""
        return self._insert(
            "remembered_logins",
            {"user_id": user_id, "workstation": workstation, "created": created, "revoked": None},
        )

    def revoke_remembered_login(self, login_id: int, revoked: str) -> None:
        """Mark a remembered login revoked (once)."""
        self._update("remembered_logins", {"id": login_id}, {"revoked": revoked})


# After an attempt to reach the server that ran out of time (a dropped network), steps fail at
# once for this long instead of waiting again: a screen that reads several times a second must
# not freeze each time. A background retry (the main window's, the wizard's) that reaches the
# server ends the wait early; one that fails starts it again.
RETRY_AFTER_SECONDS = 20.0


class ServerReach:
    """Whether the practice server answered, shared by a store and its workers: since when it
    has not (for the main window's status line), and the back-off after a timed-out attempt."""

    def __init__(self, clock: Clock) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self._since: datetime | None = None
        self._quiet_until = 0.0
        self._why = ""

    @property
    def since(self) -> datetime | None:
        """When a step or a connection attempt first failed to reach the server; None once
        one reached it again."""
        return self._since

    def lost(self) -> None:
        """A step found the server gone (the connection dropped, a connection refused)."""
        with self._lock:
            if self._since is None:
                self._since = self._clock.now()

    def timed_out(self, why: str) -> None:
        """An attempt waited for the server in vain: fail fast for RETRY_AFTER_SECONDS."""
        self.lost()
        with self._lock:
            self._quiet_until = time.monotonic() + RETRY_AFTER_SECONDS
            self._why = why

    def reached(self) -> None:
        """A connection (this store's or a worker's) reached the server."""
        with self._lock:
            self._since, self._quiet_until, self._why = None, 0.0, ""

    def waiting(self) -> str | None:
        """The last timed-out attempt's message while its back-off lasts, else None."""
        with self._lock:
            return self._why if time.monotonic() < self._quiet_until else None


class PostgresStore:
    """One connection to the practice server's database, for one thread."""

    def __init__(
        self,
        conn: psycopg.Connection,
        keys: PracticeKeys,
        clock: Clock,
        folder: Path | None = None,
        dsn: str = "",
        reach: ServerReach | None = None,
    ) -> None:
        self._conn = conn
        self._keys = keys
        self._clock = clock
        self._folder = folder
        self._last_head = AuditHead(0, "")
        # Kept to connect again after the server was lost (libpq's own sources still supply
        # any password; a closed connection no longer says where it was).
        self._dsn = dsn or conn.info.dsn
        self._closed = False  # closed on purpose (close()): never connected again
        self._writing = False  # inside write(): a read() joins its transaction
        self._reach = reach or ServerReach(clock)

    @classmethod
    def connect(
        cls,
        dsn: str,
        keys: PracticeKeys,
        clock: Clock | None = None,
        *,
        folder: Path | None = None,
    ) -> PostgresStore:
        """Open a connection from a libpq DSN: the password, if any, comes from libpq's own
        sources (PGPASSWORD, ~/.pgpass, a service file), never from an argument here. Audit
        events without a time are stamped by `clock` (the system clock by default). `folder`
        is the workstation folder (whose vault.json names the server): the lead's local
        search index lives there (`replica`)."""
        return cls._open(dsn, keys, clock or SystemClock(), folder, None, AuditHead(0, ""))

    @classmethod
    def _open(
        cls,
        dsn: str,
        keys: PracticeKeys,
        clock: Clock,
        folder: Path | None,
        reach: ServerReach | None,
        seen: AuditHead,
    ) -> PostgresStore:
        """`connect`, telling `reach` whether the server answered, and refusing a server
        whose chain no longer holds `seen` (a worker of a session that saw it)."""
        reach = reach or ServerReach(clock)
        conn = _connect_reaching(dsn, reach)
        store = cls(conn, keys, clock, folder, dsn, reach)
        store._last_head = seen
        try:
            store._check_seen(conn)
            with store.read() as tx:
                store._last_head = tx.audit_head()
        except BaseException:
            conn.close()
            raise
        return store

    def unreachable_since(self) -> datetime | None:
        """When this store (or one of its workers) found the practice server unreachable,
        until one reaches it again; None while it answers."""
        return self._reach.since

    @property
    def last_head(self) -> AuditHead:
        """The head after the last committed write."""
        return self._last_head

    def _reconnect(self) -> None:
        """After a lost connection, connect again (ServerUnreachableError while the server is
        still away; at once, without trying, while a timed-out attempt's back-off lasts) and
        refuse to go on unless the chain still holds the last head this store saw: a server
        restored or swapped while this computer was away must not be written to as if nothing
        happened (the §7/D1 rule, for a connection made mid-session)."""

        waiting = self._reach.waiting()
        if waiting is not None:
            raise ServerUnreachableError(
                f"{waiting} gpshare is trying again in the background; nothing has been changed."
            )
        conn = _connect_reaching(self._dsn, self._reach)
        try:
            self._check_seen(conn)
        except BaseException:
            conn.close()
            raise
        self._conn = conn

    def _check_seen(self, conn: psycopg.Connection) -> None:
        """DatabaseError (the alarm) unless the chain on `conn` holds the last head seen;
        ServerUnreachableError when the server fails while asked."""
        from gpshare.store.postgres.header import server_name

        seen = self._last_head
        if not seen.seq:
            return
        try:
            with conn.transaction():
                found = PgReadTx(conn, self._keys).audit_hash_at(seen.seq)
        except psycopg.Error as exc:
            self._reach.lost()
            raise ServerUnreachableError(
                f"The practice server {server_name(self._dsn)} answered but then failed "
                f"({exc}). Try again; if it persists, tell the practice administrator."
            ) from exc
        if found != seen.digest:
            raise DatabaseError(
                f"ROLLBACK OR FORK ALARM: this computer saw audit event {seen.seq} sealed "
                f"{seen.digest[:12]}… before the practice server {server_name(self._dsn)} went "
                "away, and the server it reached again does not hold it. Nothing more was "
                "written. Sign out, sign in again, and tell the practice administrator and "
                "the safeguarding lead."
            )

    def _hung_up(self) -> bool:
        """True when the server closed this connection since the last step (it restarted,
        or ended the session): read without waiting from what has already arrived."""
        try:
            self._conn.pgconn.consume_input()
        except psycopg.OperationalError:
            return True
        return self._conn.pgconn.status != pq.ConnStatus.OK

    def _begin(
        self, read_only: bool, pipelined: bool = False
    ) -> AbstractContextManager[psycopg.Transaction] | None:
        """Start the step's transaction. A connection found dead before anything of the step
        reached the server (closed earlier, hung up since, or its BEGIN failing) is replaced
        once and the step started on the new one: nothing of it can have been applied.
        `read_only` asks for the REPEATABLE READ, READ ONLY snapshot in the BEGIN itself (no
        separate SET TRANSACTION round trip). `pipelined`: None is returned, the block's
        statements and COMMIT going through its pipeline."""
        if self._closed:
            raise DatabaseError("this connection to the practice server was closed")
        for attempt in (1, 2):
            if self._conn.closed or self._hung_up():
                # Lost earlier (network, server restart): connect again, with the fork check.
                self._conn.close()
                self._reconnect()
            conn = self._conn
            tx = None if pipelined else conn.transaction()
            try:
                if read_only:
                    conn.isolation_level = psycopg.IsolationLevel.REPEATABLE_READ
                    conn.read_only = True
                if tx is not None:
                    tx.__enter__()
                # A pipelined write's BEGIN is psycopg's own, answered alone before the
                # block's first statement is sent (an explicit one here would be a second
                # round trip); a connection that hung up is found by _hung_up above.
                return tx
            except psycopg.Error as exc:
                if not self._lost(exc):
                    self._roll_back(conn)
                    raise self._refused(exc) from exc
                if self._note_loss(exc) or attempt == 2:
                    # Timed out: the network drops what is sent, and connecting again now
                    # would wait as long.
                    raise ServerUnreachableError(
                        f"{self._unreachable_words()} Nothing has been changed."
                    ) from exc
        raise AssertionError("unreachable")  # the loop returns or raises

    def _note_loss(self, exc: BaseException) -> bool:
        """Tell the shared reach the server was lost; True (and the back-off started) when
        `exc` says it ran out of time (tcp_user_timeout, keepalives: a dropping network)."""
        from gpshare.store.postgres.header import timed_out

        if timed_out(exc):
            self._reach.timed_out(self._unreachable_words())
            return True
        self._reach.lost()
        return False

    def _lost(self, exc: BaseException) -> bool:
        """True when `exc` means the connection is gone (closed by the server or the network,
        not an answer from the server), which is then closed here so the next step connects
        again."""
        state = getattr(exc, "sqlstate", None) or ""
        lost = (
            self._conn.broken
            or self._conn.closed
            or (isinstance(exc, psycopg.OperationalError) and not state)
            or state.startswith(("08", "57P"))  # connection exception, server shut down
        )
        if lost:
            self._conn.close()
        return lost

    def _lost_words(self, read_only: bool) -> str:
        from gpshare.store.postgres.header import server_name

        return (
            f"The connection to the practice server {server_name(self._dsn)} was lost"
            + (
                " while reading, so this could not be shown; nothing was changed."
                if read_only
                else ", so the last step was not saved."
            )
            + " Check the network and try again; if it persists, tell the practice "
            "administrator."
        )

    def _unreachable_words(self) -> str:
        from gpshare.store.postgres.header import server_name

        return (
            f"The practice server {server_name(self._dsn)} stopped answering. Check that this "
            "computer is on the practice network and that the server is running."
        )

    @contextmanager
    def _transaction(self, *, read_only: bool = False, pipelined: bool = False) -> Iterator[None]:
        """One transaction on the connection, started by `_begin` (which replaces a connection
        found dead first). `pipelined`: statements whose results the block does not read are
        sent together with the next one it does read, and the COMMIT with the last of them
        (psycopg's pipeline mode), so a write's rows travel with the chain-head lock and the
        event with the commit; a failure in a batch is raised when the batch is answered.
        A connection lost before the COMMIT was sent means nothing was kept (the server drops
        the open transaction); lost once it was sent, the step's fate is unknown
        (SaveOutcomeUnknown), and it is never replayed here."""

        tx = self._begin(read_only, pipelined)
        conn = self._conn
        committing = False
        try:
            try:
                if tx is None:
                    self._writing = True
                    try:
                        with conn.pipeline():
                            yield
                            # Queued, not conn.commit(): that answers the COMMIT and then the
                            # pipeline's end answers an empty batch, one more round trip.
                            # Never prepared: a COMMIT has nothing to plan, and its text on
                            # the wire stays the same each time (tests/netfault.py finds it).
                            conn.execute("COMMIT", prepare=False)
                            committing = True  # sent when the pipeline ends, just below
                    finally:
                        self._writing = False
                else:
                    yield
            except BaseException as exc:
                broken = self._lost(exc)
                if not broken:  # a lost connection's open transaction is dropped by the server
                    if tx is None:
                        self._roll_back(conn)
                    else:
                        with contextlib.suppress(psycopg.Error):
                            tx.__exit__(type(exc), exc, exc.__traceback__)  # ROLLBACK
                if not isinstance(exc, psycopg.Error):
                    raise
                if broken:
                    self._note_loss(exc)
                    if committing and not read_only:
                        raise self._outcome_unknown() from exc
                    # The server went away mid-step (network, restart): say so, not "refused".
                    # Before COMMIT: the server drops the open transaction, so nothing was kept.
                    raise ServerUnreachableError(self._lost_words(read_only)) from exc
                raise self._refused(exc) from exc
            if tx is None:
                return  # the pipeline answered the COMMIT
            try:
                tx.__exit__(None, None, None)  # COMMIT
            except psycopg.Error as exc:
                if not self._lost(exc):
                    raise self._refused(exc) from exc
                self._note_loss(exc)
                if read_only:
                    raise ServerUnreachableError(self._lost_words(read_only)) from exc
                raise self._outcome_unknown() from exc
        finally:
            if read_only and conn.info.transaction_status == pq.TransactionStatus.IDLE:
                # Back to the server's defaults for what runs next on this connection.
                conn.isolation_level, conn.read_only = None, None

    @staticmethod
    def _refused(exc: psycopg.Error) -> DatabaseError:
        """A driver error leaves as the port's own type (never psycopg's)."""
        return DatabaseError(f"the vault's database (the practice server) refused the work: {exc}")

    def _outcome_unknown(self) -> SaveOutcomeUnknown:
        """Everything was sent and the COMMIT with it: the server may have applied the step
        before the connection broke. Never replayed here; a save repeated by the user is
        refused by the draft's version (or the record's status) if it was applied."""
        from gpshare.store.postgres.header import server_name

        return SaveOutcomeUnknown(
            f"The connection to the practice server {server_name(self._dsn)} was lost "
            "while the last step was being saved, so this computer cannot tell whether it "
            "was saved. Once the server answers again, open the record (My records) to see "
            "whether the change is there before typing it again; saving again is safe, "
            "because a save the server already holds is refused, never stored twice."
        )

    @staticmethod
    def _roll_back(conn: psycopg.Connection) -> None:
        """Roll a step back (a pipelined write's pipeline has ended: every answer read); a
        connection already lost has nothing to roll back, and the error that ended the block
        is the one to report."""
        if not conn.broken and conn.info.transaction_status != pq.TransactionStatus.IDLE:
            with contextlib.suppress(psycopg.Error):
                conn.rollback()

    @contextmanager
    def read(self) -> Iterator[PgReadTx]:
        """A read-only snapshot for the `with` block."""
        if self._writing or self._conn.info.transaction_status == pq.TransactionStatus.INTRANS:
            # Nested in this store's write: read its own work in the same transaction.
            yield PgReadTx(self._conn, self._keys)
            return
        with self._transaction(read_only=True):
            yield PgReadTx(self._conn, self._keys)

    @contextmanager
    def write(self, entry: AuditEntry) -> Iterator[PgWriteTx]:
        """Run the block's writes and append `entry` in one transaction (both or neither).
        Pipelined: four round trips for a complete (BEGIN; its row lock; the rows with the
        chain-head lock; the event with the COMMIT) instead of one a statement."""
        try:
            with self._transaction(pipelined=True):
                yield PgWriteTx(self._conn, self._keys, entry.actor)
                stamped = entry if entry.at else dataclasses.replace(entry, at=self._clock.now())
                head = pg_audit.append(self._conn, self._keys.audit, stamped)
        except SaveOutcomeUnknown as exc:
            exc.record_id = entry.record_id  # so a service can look for it once back
            raise
        self._last_head = head

    @contextmanager
    def maintenance(self) -> Iterator[PgWriteTx]:
        """An unaudited write transaction."""
        with self._transaction():
            yield PgWriteTx(self._conn, self._keys, None)

    def worker(self) -> PostgresStore:
        """The same database on a new connection, for another thread."""
        return PostgresStore._open(
            self._dsn, self._keys, self._clock, self._folder, self._reach, self._last_head
        )

    def interrupt(self) -> None:
        """Abort the query running on this connection (from any thread); harmless when
        closed."""
        if not self._conn.closed:
            self._conn.cancel_safe()

    def checkpoint(self) -> None:
        """Nothing to do: the server folds its own write-ahead log."""

    # ----- what the embedded engine's file needs and a server does not ------------------------

    def page_problems(self) -> list[str]:
        """None to report: the server has no page MACs (every M row is MAC-checked on read)."""
        return []

    def integrity_problems(self, *, quick: bool = False) -> list[str]:
        """None to report (see page_problems); the chain is checked by `audit verify`."""
        return []

    def schema_version(self) -> int:
        """The server schema's version (one so far)."""
        return SERVER_SCHEMA_VERSION

    def latest_schema_version(self) -> int:
        """The newest server schema this gpshare knows."""
        return SERVER_SCHEMA_VERSION

    def pending_migrations(self) -> list[int]:
        """None: `gpshare server init` creates the current schema."""
        return []

    def apply_migrations(self) -> list[int]:
        """Nothing to apply (see pending_migrations)."""
        return []

    def create_backup(self, when: datetime, keep: int) -> Path:
        """Refused: a practice server is backed up on the server (pg_dump of ciphertext)."""
        raise StoreError(
            "A practice server is not backed up from a workstation: its administrator backs "
            "up the database on the server (see README, Practice server)."
        )

    def replica(self, key: bytes) -> Replica:
        """The lead's search index on this workstation: `lead-index.db` in the workstation
        folder, the same SQLCipher file under the same lead data key as on an embedded vault
        (DESIGN §10.2 "Search": the server holds no word or prefix tokens). It is caught up
        from this server's audit chain through the port like the embedded engine's."""
        if self._folder is None:
            # A connection made without a workstation folder (a tool, not a lead's PC).
            raise ReplicaUnavailable(
                "The lead's search index lives in a workstation folder; this connection to "
                "the practice server was opened without one. Open the vault with --vault DIR.",
                "missing",
            )
        # The file is SQLCipher on the lead's PC whichever engine holds the records.
        from gpshare.store.sqlcipher.replica import REPLICA_NAME, LeadReplica

        return LeadReplica(self._folder / REPLICA_NAME, key)

    def close(self) -> None:
        """Close the connection."""
        self._closed = True
        self._conn.close()
