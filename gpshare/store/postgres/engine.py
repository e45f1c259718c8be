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

import dataclasses
import json
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from importlib import resources
from typing import TYPE_CHECKING, Any

import psycopg
from psycopg import pq, sql

from gpshare.clock import Clock, SystemClock
from gpshare.errors import DatabaseError, StaleVersionError, StoreError
from gpshare.filters import AuditFilter
from gpshare.records import AuditEvent, FollowUp, LetterMeta, User
from gpshare.store.audit import ChainReport
from gpshare.store.port import (
    BREAKGLASS_EVENT,
    AuditEntry,
    AuditHead,
    BreakglassState,
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
    StoredSummary,
    TokenMatch,
)
from gpshare.store.postgres import audit as pg_audit
from gpshare.store.practice_keys import PracticeKeys
from gpshare.store.row_macs import M_TABLES, MTable, RowMacs, mac_field

# The codec-bug check of a RecordWrite is the same for both engines.

if TYPE_CHECKING:
    from gpshare.store.keys.directory import RotationStatement, SignedEntry

NO_PLAINTEXT = "not available on a practice server: it holds no plaintext"

# Port members of vault version 1 that carry plaintext answers, names, bodies or PDFs.
_PLAINTEXT_MEMBERS = frozenset(
    {
        "get_record", "list_records", "count_records", "records_for_child",
        "completed_records_light", "open_referrals", "records_without_links",
        "linked_records", "household_link_decisions", "addenda", "letters", "letter_pdf",
        "letter_unsigned_pdf", "followups", "reviews", "insert_record", "update_draft",
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


class PgReadTx:
    """Reads of the v2 shapes inside one transaction, M rows checked against their MACs."""

    def __init__(self, conn: psycopg.Connection, keys: PracticeKeys) -> None:
        self._conn = conn
        self._keys = keys
        self._macs = RowMacs(keys)

    def __getattr__(self, name: str) -> Any:
        if name in _PLAINTEXT_MEMBERS:
            raise StoreError(f"{name}: {NO_PLAINTEXT}; the services use its sealed form")
        raise AttributeError(name)

    # ----- M rows and their MACs -------------------------------------------------------

    def _mac(self, table: MTable, row: Mapping[str, Any]) -> bytes:
        return self._macs.mac(table, row)

    def _rows(
        self,
        name: str,
        where: str = "",
        params: Sequence[Any] = (),
        *,
        extra: Sequence[str] = (),
        order: str = "",
        lock: bool = False,
    ) -> list[dict[str, Any]]:
        """Rows of M table `name` (its MACed columns plus `extra`), each MAC checked."""
        table = M_TABLES[name]
        columns = [*table.columns, *extra]
        query = f"SELECT {', '.join(columns)}, row_mac FROM {name}"
        query += f" WHERE {where}" if where else ""
        query += f" ORDER BY {order}" if order else ""
        query += " FOR UPDATE" if lock else ""
        found = []
        for r in self._conn.execute(query.encode(), params):
            row = {c: mac_field(v) for c, v in zip(columns, r, strict=False)}
            self._macs.check(table, row, bytes(r[-1]))
            found.append(row)
        return found

    def _names(self) -> dict[str, str]:
        return {u.username: u.full_name for u in self.list_users_m()}

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
        if not objects or not recipients:
            return {}
        found: dict[tuple[str, str], list[ObjectWrap]] = {}
        for r in self._conn.execute(
            "SELECT object_kind, object_id, recipient, recipient_generation, wrap, created "
            "FROM object_wraps WHERE (object_kind, object_id) IN "
            "(SELECT * FROM unnest(%s::text[], %s::text[])) AND recipient = ANY(%s) "
            "ORDER BY recipient, recipient_generation",
            ([k for k, _ in objects], [i for _, i in objects], list(recipients)),
        ):
            wrap = ObjectWrap(r[0], r[1], r[2], int(r[3]), bytes(r[4]), r[5])
            found.setdefault((wrap.object_kind, wrap.object_id), []).append(wrap)
        return {pair: tuple(ws) for pair, ws in found.items()}

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
        found = self._rows("records", "id = %s", (record_id,), extra=("answers_ct",))
        if not found:
            return None
        r = found[0]
        row = self._record_row(r, self._names())
        wraps = self._wraps_of([("answers", row.id)], recipients)
        summaries = self.summaries([row.id])
        answers = self._sealed("answers", row.id, r["answers_ct"], r["answers_commit"], wraps)
        return SealedRecord(row, summaries[0] if summaries else None, answers)

    def summaries(self, record_ids: Sequence[str]) -> list[StoredSummary]:
        """The summaries of these records, in the order asked."""
        ids = list(dict.fromkeys(record_ids))
        found = {
            r[0]: StoredSummary(r[0], int(r[1]), int(r[2]), bytes(r[3]))
            for r in self._conn.execute(
                "SELECT record_id, version, generation, ct FROM record_summaries "
                "WHERE record_id = ANY(%s)",
                (ids,),
            )
        }
        return [found[i] for i in ids if i in found]

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
        rows = self._rows(
            "records", "id = ANY(%s) AND status = 'completed'", (list(hits),), order="created, id"
        )
        names = self._names()
        by_id = {s.record_id: s for s in self.summaries([r["id"] for r in rows])}
        return [
            TokenMatch(self._record_row(r, names), by_id[r["id"]], hits[r["id"]])
            for r in rows
            if r["id"] in by_id
        ]

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
        self, table: str, who: str, kind: str, record_id: str, recipients: Sequence[str]
    ) -> list[tuple[int, str, str, str, SealedObject]]:
        """(id, record id, author or reviewer, created, sealed body) of `table`'s rows."""
        rows = self._rows(table, "record_id = %s", (record_id,), extra=("body_ct",), order="id")
        wraps = self._wraps_of([(kind, r["object_id"]) for r in rows], recipients)
        found = []
        for r in rows:
            body = self._sealed(kind, r["object_id"], r["body_ct"], r["body_commit"], wraps)
            assert body is not None  # body_ct is NOT NULL
            found.append((r["id"], r["record_id"], r[who], r["created"], body))
        return found

    def sealed_addenda(self, record_id: str, recipients: Sequence[str]) -> list[SealedAddendum]:
        """The record's sealed addenda, oldest first, with the wraps for `recipients`."""
        rows = self._one_object_rows("addenda", "author", "addendum", record_id, recipients)
        return [SealedAddendum(*row) for row in rows]

    def sealed_reviews(self, record_id: str, recipients: Sequence[str]) -> list[SealedReview]:
        """The record's sealed lead reviews, oldest first, with the wraps for `recipients`."""
        rows = self._one_object_rows("reviews", "reviewer", "review", record_id, recipients)
        return [SealedReview(*row) for row in rows]

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

    def verify_audit(self, head: tuple[int, str] | None = None) -> ChainReport:
        """Walk the whole chain (against `head` when given)."""
        expected = AuditHead(*head) if head else None
        return pg_audit.verify(self._conn, self._keys.audit, expected)


class PgWriteTx(PgReadTx):
    """Writes of the v2 shapes; `actor` is who the transaction's audit event names (None for
    maintenance)."""

    def __init__(self, conn: psycopg.Connection, keys: PracticeKeys, actor: str | None) -> None:
        super().__init__(conn, keys)
        self._actor = actor

    def _insert(self, name: str, values: Mapping[str, Any], **extra: Any) -> int:
        """Insert an M row (its MAC computed here); the new id of a serial table, else 0."""
        table = M_TABLES[name]
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
    ) -> bool:
        """Change one M row (locked and MAC-checked first, then re-MACed) and its unMACed
        ciphertext columns `raw`; False when no row matches the key and `guard`."""
        table = M_TABLES[name]
        where = " AND ".join(f"{k} = %s" for k in key) + (f" AND {guard}" if guard else "")
        found = self._rows(name, where, [*key.values(), *guard_params], lock=True)
        if not found:
            return False
        row = {**found[0], **changes}
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
            name = self._names().get(by, by)
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
        self._update("records", {"id": row.id}, changes, raw={"answers_ct": write.answers.ct})

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
        self._conn.execute(
            "UPDATE blind_index SET superseded = true WHERE record_id = %s AND generation = %s "
            "AND NOT superseded",
            (record_id, generation),
        )
        with self._conn.cursor() as cur:
            cur.executemany(
                "INSERT INTO blind_index (generation, type, token, record_id) "
                "VALUES (%s, %s, %s, %s) ON CONFLICT (record_id, generation, type, token) "
                "DO UPDATE SET superseded = false",
                list(dict.fromkeys((generation, t.type, t.token, record_id) for t in given)),
            )

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


class PostgresStore:
    """One connection to the practice server's database, for one thread."""

    def __init__(self, conn: psycopg.Connection, keys: PracticeKeys, clock: Clock) -> None:
        self._conn = conn
        self._keys = keys
        self._clock = clock
        self._last_head = AuditHead(0, "")

    @classmethod
    def connect(cls, dsn: str, keys: PracticeKeys, clock: Clock | None = None) -> PostgresStore:
        """Open a connection from a libpq DSN: the password, if any, comes from libpq's own
        sources (PGPASSWORD, ~/.pgpass, a service file), never from an argument here. Audit
        events without a time are stamped by `clock` (the system clock by default)."""
        try:
            conn = psycopg.connect(dsn, autocommit=False)
        except psycopg.Error as exc:
            raise DatabaseError(f"could not connect to the practice server: {exc}") from exc
        store = cls(conn, keys, clock or SystemClock())
        with store.read() as tx:
            store._last_head = tx.audit_head()
        return store

    @property
    def last_head(self) -> AuditHead:
        """The head after the last committed write."""
        return self._last_head

    @contextmanager
    def _transaction(self) -> Iterator[None]:
        try:
            with self._conn.transaction():
                yield
        except psycopg.Error as exc:
            # A driver error leaves as the port's own type (never psycopg's).
            raise DatabaseError(
                f"the vault's database (the practice server) refused the work: {exc}"
            ) from exc

    @contextmanager
    def read(self) -> Iterator[PgReadTx]:
        """A read-only snapshot for the `with` block."""
        if self._conn.info.transaction_status == pq.TransactionStatus.INTRANS:
            # Nested in this store's write: read its own work in the same transaction.
            yield PgReadTx(self._conn, self._keys)
            return
        with self._transaction():
            self._conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
            yield PgReadTx(self._conn, self._keys)

    @contextmanager
    def write(self, entry: AuditEntry) -> Iterator[PgWriteTx]:
        """Run the block's writes and append `entry` in one transaction (both or neither)."""
        with self._transaction():
            yield PgWriteTx(self._conn, self._keys, entry.actor)
            stamped = entry if entry.at else dataclasses.replace(entry, at=self._clock.now())
            head = pg_audit.append(self._conn, self._keys.audit, stamped)
        self._last_head = head

    @contextmanager
    def maintenance(self) -> Iterator[PgWriteTx]:
        """An unaudited write transaction."""
        with self._transaction():
            yield PgWriteTx(self._conn, self._keys, None)

    def worker(self) -> PostgresStore:
        """The same database on a new connection, for another thread."""
        info = self._conn.info
        return PostgresStore.connect(info.dsn, self._keys, self._clock)

    def interrupt(self) -> None:
        """Abort the query running on this connection (from any thread); harmless when
        closed."""
        if not self._conn.closed:
            self._conn.cancel_safe()

    def checkpoint(self) -> None:
        """Nothing to do: the server folds its own write-ahead log."""

    def close(self) -> None:
        """Close the connection."""
        self._conn.close()
