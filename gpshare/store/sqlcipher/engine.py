"""The SQLCipher engine behind the storage port (gpshare.store.port.Store)."""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, ParamSpec, TypeVar

import sqlcipher3

from gpshare.clock import Clock
from gpshare.errors import DatabaseError
from gpshare.filters import AuditFilter, RecordFilter
from gpshare.records import Addendum, AuditEvent, FollowUp, LetterMeta, Record, Review, User
from gpshare.store import audit, backup, sealed_rows
from gpshare.store.errors import VaultFormatError
from gpshare.store.port import (
    AuditEntry,
    AuditHead,
    BreakglassState,
    DashboardRows,
    DirectoryKind,
    DirectoryRow,
    DueRow,
    IndexToken,
    LeadRotation,
    ObjectWrap,
    ReadTx,
    RecordRow,
    RecordWrite,
    RememberedLogin,
    Replica,
    RoleKeyName,
    RoleKeyWrap,
    SealedAddendum,
    SealedFollowUp,
    SealedHouseholdReview,
    SealedLetter,
    SealedObject,
    SealedRecord,
    SealedReview,
    Store,
    StoredBundle,
    StoredState,
    StoredSummary,
    TokenMatch,
    WrappedKey,
    WriteTx,
)
from gpshare.store.practice_keys import PracticeKeys
from gpshare.store.sealed_rows import SealedRowState
from gpshare.store.sqlcipher import db, sealed
from gpshare.store.sqlcipher import repositories as repo
from gpshare.store.sqlcipher.row_macs import NO_MACS, SqliteRowMacs

if TYPE_CHECKING:
    from gpshare.store.keys.directory import RotationStatement, SignedEntry
    from gpshare.store.vault import Vault

P = ParamSpec("P")
# The migration that adds row_mac to the class-M tables (0010_row_mac.sql).
_ROW_MAC_SCHEMA = 10
T = TypeVar("T")


def _database_error(exc: Exception) -> DatabaseError:
    return DatabaseError(
        f"The vault's database reported a problem ({exc}). Nothing was changed by the failed "
        "step. If it happens again, ask the practice administrator to check the vault "
        "(Admin › Backups) and restore the latest backup if it is damaged."
    )


@contextlib.contextmanager
def _driver_errors() -> Iterator[None]:
    """Re-raise the driver's exceptions as the port's DatabaseError."""
    try:
        yield
    except sqlcipher3.DatabaseError as exc:
        raise _database_error(exc) from exc


def _mapped(fn: Callable[P, T]) -> Callable[P, T]:
    @functools.wraps(fn)
    def call(*args: P.args, **kwargs: P.kwargs) -> T:
        try:
            return fn(*args, **kwargs)
        except sqlcipher3.DatabaseError as exc:
            # A row-MAC trigger's refusal reaches here as a bare driver error: name the row.
            macs = getattr(args[0], "_macs", None) if args else None
            failure = macs.take_failure() if isinstance(macs, SqliteRowMacs) else None
            if failure is not None:
                raise failure from exc
            raise _database_error(exc) from exc

    return call


_C = TypeVar("_C", bound=type)


def _map_errors(cls: _C) -> _C:
    """Wrap every public method of `cls` so driver errors leave it as DatabaseError."""
    for name, value in list(vars(cls).items()):
        if not name.startswith("_") and callable(value):
            setattr(cls, name, _mapped(value))
    return cls


@_map_errors
class SqlcipherReadTx:
    """ReadTx over one connection: each method is the repositories function of that name. On
    a format-2 vault (`macs` given) every M row a read returns is checked against its MAC."""

    def __init__(
        self,
        conn: db.Connection,
        audit_key: bytes,
        legacy_key: bytes | None = None,
        macs: SqliteRowMacs | None = None,
    ) -> None:
        self._conn = conn
        self._audit_key = audit_key
        self._legacy_key = legacy_key  # a migrated vault's v1 chain key (audit.legacy_key)
        self._macs = macs

    def _checked(self, table: str, ids: Iterable[Any] | None = None) -> None:
        """RowMacError unless these rows of M table `table` match their MACs (format 2)."""
        if self._macs is not None:
            self._macs.check(self._conn, table, ids)

    def get_user(self, username: str) -> User | None:
        found = repo.get_user(self._conn, username)
        self._checked("users", [username] if found else [])
        return found

    def list_users(self) -> list[User]:
        found = repo.list_users(self._conn)
        self._checked("users", [u.username for u in found])
        return found

    def get_settings(self) -> dict[str, str]:
        found = repo.get_settings(self._conn)
        self._checked("settings", list(found))
        return found

    def get_practice_ca(self) -> WrappedKey | None:
        found = repo.get_practice_ca(self._conn)
        self._checked("practice_ca", [1] if found else [])
        return found

    def active_signing_key(self, username: str) -> tuple[int, WrappedKey] | None:
        found = repo.active_signing_key(self._conn, username)
        self._checked("signing_keys", [found[0]] if found else [])
        return found

    def get_record(self, record_id: str) -> Record | None:
        found = repo.get_record(self._conn, record_id)
        self._checked("records", [found.id] if found else [])
        return found

    def list_records(
        self, flt: RecordFilter, limit: int | None = None, offset: int = 0, *, light: bool = False
    ) -> list[Record]:
        found = repo.list_records(self._conn, flt, limit, offset, light=light)
        self._checked("records", [r.id for r in found])
        return found

    def count_records(self, flt: RecordFilter) -> int:
        return repo.count_records(self._conn, flt)

    def records_for_child(
        self, nhs: str | None, family: str | None, dob: str | None, exclude: str | None
    ) -> list[tuple[Record, str]]:
        return repo.records_for_child(self._conn, nhs, family, dob, exclude)

    def completed_records_light(
        self, statuses: Sequence[str] | None = None, record_ids: Sequence[str] | None = None
    ) -> list[Record]:
        found = repo.completed_records_light(self._conn, statuses, record_ids)
        self._checked("records", [r.id for r in found])
        return found

    def open_referrals(self, review_horizon: str, clinician: str | None = None) -> list[Record]:
        found = repo.open_referrals(self._conn, review_horizon, clinician)
        self._checked("records", [r.id for r in found])
        return found

    def records_without_links(self) -> list[Record]:
        return repo.records_without_links(self._conn)

    def linked_records(self, carers: Iterable[str], addresses: Iterable[str]) -> list[Record]:
        return repo.linked_records(self._conn, carers, addresses)

    def household_link_decisions(self, record_ids: Sequence[str]) -> dict[str, str]:
        return repo.household_link_decisions(self._conn, record_ids)

    def due_referrals(self, due_by: str, clinician: str | None = None) -> list[DueRow]:
        found = repo.due_referrals(self._conn, due_by, clinician)
        self._checked("referral_states", [r[0] for r in found])
        return found

    def referrals_with_action(
        self, action: str, due_after: str, clinician: str | None = None
    ) -> list[DueRow]:
        found = repo.referrals_with_action(self._conn, action, due_after, clinician)
        self._checked("referral_states", [r[0] for r in found])
        return found

    def overdue_counts(
        self, today_iso: str, date_from: str | None, date_to: str | None
    ) -> dict[str, int]:
        return repo.overdue_counts(self._conn, today_iso, date_from, date_to)

    def send_timings(
        self, date_from: str | None, date_to: str | None
    ) -> list[tuple[str, str | None, str | None]]:
        return repo.send_timings(self._conn, date_from, date_to)

    def dashboard_rows(
        self, date_from: str | None, date_to: str | None, *, with_timings: bool = True
    ) -> DashboardRows:
        return repo.dashboard_rows(self._conn, date_from, date_to, with_timings=with_timings)

    def addenda(self, record_id: str) -> list[Addendum]:
        found = repo.addenda(self._conn, record_id)
        self._checked("addenda", [a.id for a in found])
        return found

    def letters(self, record_id: str) -> list[LetterMeta]:
        found = repo.letters(self._conn, record_id)
        self._checked("letters", [x.id for x in found])
        return found

    def letter_pdf(self, letter_id: int) -> tuple[LetterMeta, bytes] | None:
        return repo.letter_pdf(self._conn, letter_id)

    def letter_unsigned_pdf(self, letter_id: int) -> bytes | None:
        return repo.letter_unsigned_pdf(self._conn, letter_id)

    def letter_by_hash(self, sha256: str) -> LetterMeta | None:
        found = repo.letter_by_hash(self._conn, sha256)
        self._checked("letters", [found.id] if found else [])
        return found

    def followups(self, record_ids: Iterable[str] | None = None) -> list[FollowUp]:
        found = repo.followups(self._conn, record_ids)
        self._checked("followups", [f.id for f in found])
        return found

    def reviews(self, record_id: str | None = None) -> list[Review]:
        found = repo.reviews(self._conn, record_id)
        self._checked("reviews", [r.id for r in found])
        return found

    def bundle(self, user_id: str, generation: int | None = None) -> StoredBundle | None:
        return repo.bundle(self._conn, user_id, generation)

    def directory_entries(
        self, user_id: str | None = None, kind: DirectoryKind | None = None
    ) -> list[DirectoryRow]:
        return repo.directory_entries(self._conn, user_id, kind)

    def pending_entries(self) -> list[DirectoryRow]:
        return repo.pending_entries(self._conn)

    def lead_rotations(self) -> list[LeadRotation]:
        return repo.lead_rotations(self._conn)

    def role_key_wraps(
        self, recipient: str | None = None, key_name: RoleKeyName | None = None
    ) -> list[RoleKeyWrap]:
        return repo.role_key_wraps(self._conn, recipient, key_name)

    def object_wraps_for(
        self, recipient: str, objects: Iterable[tuple[str, str]] | None = None
    ) -> list[ObjectWrap]:
        return repo.object_wraps_for(self._conn, recipient, objects)

    def remembered_logins(self, user_id: str | None = None) -> list[RememberedLogin]:
        found = repo.remembered_logins(self._conn, user_id)
        self._checked("remembered_logins", [r.id for r in found])
        return found

    def breakglass_state(self) -> BreakglassState | None:
        found = repo.breakglass_state(self._conn)
        if found is not None and self._macs is not None:
            self._checked("breakglass_acks", [found.event_seq])
        return found

    def sealed_record(self, record_id: str, recipients: Sequence[str]) -> SealedRecord | None:
        found = sealed.sealed_record(self._conn, record_id, recipients)
        self._checked("records", [record_id] if found else [])
        return found

    def sealed_records(
        self, record_ids: Sequence[str], recipients: Sequence[str]
    ) -> dict[str, SealedRecord]:
        found = sealed.sealed_records(self._conn, record_ids, recipients)
        self._checked("records", list(found))
        return found

    def summaries(self, record_ids: Sequence[str]) -> list[StoredSummary]:
        return sealed.summaries(self._conn, record_ids)

    def records_for_tokens(
        self, tokens: Sequence[IndexToken], exclude: str | None
    ) -> list[TokenMatch]:
        found = sealed.records_for_tokens(self._conn, tokens, exclude)
        self._checked("records", [m.row.id for m in found])
        return found

    def records_without_tokens(self, generation: int) -> list[RecordRow]:
        found = sealed.records_without_tokens(self._conn, generation)
        self._checked("records", [r.id for r in found])
        return found

    def sealed_addenda(self, record_id: str, recipients: Sequence[str]) -> list[SealedAddendum]:
        found = sealed.sealed_addenda(self._conn, record_id, recipients)
        self._checked("addenda", [a.id for a in found])
        return found

    def sealed_addenda_of(
        self, record_ids: Sequence[str], recipients: Sequence[str]
    ) -> dict[str, list[SealedAddendum]]:
        found = sealed.sealed_addenda_of(self._conn, record_ids, recipients)
        self._checked("addenda", [a.id for group in found.values() for a in group])
        return found

    def sealed_letters(self, record_id: str, recipients: Sequence[str]) -> list[SealedLetter]:
        found = sealed.sealed_letters(self._conn, record_id, recipients)
        self._checked("letters", [x.meta.id for x in found])
        return found

    def sealed_followups(
        self, record_ids: Sequence[str], recipients: Sequence[str]
    ) -> list[SealedFollowUp]:
        found = sealed.sealed_followups(self._conn, record_ids, recipients)
        self._checked("followups", [f.id for f in found])
        return found

    def sealed_reviews(self, record_id: str, recipients: Sequence[str]) -> list[SealedReview]:
        found = sealed.sealed_reviews(self._conn, record_id, recipients)
        self._checked("reviews", [r.id for r in found])
        return found

    def sealed_reviews_of(
        self, record_ids: Sequence[str], recipients: Sequence[str]
    ) -> dict[str, list[SealedReview]]:
        found = sealed.sealed_reviews_of(self._conn, record_ids, recipients)
        self._checked("reviews", [r.id for group in found.values() for r in group])
        return found

    def household_reviews(self, record_ids: Sequence[str]) -> list[SealedHouseholdReview]:
        found = sealed.household_reviews(self._conn, record_ids)
        self._checked("household_link_reviews", [r.id for r in found])
        return found

    def sealed_rows(self) -> list[SealedRowState]:
        # No row MACs here: the whole file is authenticated by SQLCipher's page HMAC.
        return sealed_rows.inventory(lambda q: self._conn.execute(q).fetchall())

    def stored_actions(self, record_ids: Sequence[str]) -> dict[str, str | None]:
        found = repo.stored_actions(self._conn, record_ids)
        self._checked("referral_states", list(found))
        return found

    def referral_dues(self, record_ids: Sequence[str] | None = None) -> dict[str, tuple[str, str]]:
        return repo.referral_dues(self._conn, record_ids)

    def last_draft_saved_at(self, record_id: str) -> str | None:
        return repo.last_draft_saved_at(self._conn, record_id)

    def audit_events(
        self, flt: AuditFilter, limit: int | None = None, offset: int = 0
    ) -> list[AuditEvent]:
        return repo.audit_events(self._conn, flt, limit, offset)

    def audit_head(self) -> AuditHead:
        return AuditHead(*audit.latest(self._conn))

    def audit_events_after(self, seq: int, limit: int | None = None) -> list[AuditEvent]:
        return repo.audit_events_after(self._conn, seq, limit)

    def audit_hash_at(self, seq: int) -> str | None:
        return audit.hash_at(self._conn, seq)

    def verify_audit(
        self,
        head: tuple[int, str] | None = None,
        progress: Callable[[int, int], None] | None = None,
    ) -> audit.ChainReport:
        report = audit.verify(self._conn, self._audit_key, head, progress, self._legacy_key)
        problems = self._macs.problems(self._conn) if self._macs is not None and report.ok else []
        if problems:
            # Format 2: an intact chain with a class-M row edited behind it is not intact.
            more = f" (and {len(problems) - 1} more rows)" if len(problems) > 1 else ""
            report = dataclasses.replace(report, ok=False, problem=problems[0] + more)
        return report

    def head_problem(self, head: tuple[int, str]) -> str | None:
        return audit.head_problem(self._conn, head)

    def anchor_problem(self, anchor: tuple[int, str], restore_floor: int) -> str | None:
        return audit.anchor_problem(self._conn, anchor, restore_floor)


@_map_errors
class SqlcipherWriteTx(SqlcipherReadTx):
    """WriteTx: the reads plus every repositories write, inside the caller's transaction."""

    def insert_user(self, user: User) -> None:
        repo.insert_user(self._conn, user)

    def set_user_active(self, username: str, active: bool) -> None:
        repo.set_user_active(self._conn, username, active)

    def set_must_change_password(self, username: str, value: bool) -> None:
        repo.set_must_change_password(self._conn, username, value)

    def put_settings(self, values: dict[str, str]) -> None:
        repo.put_settings(self._conn, values)

    def put_practice_ca(self, cert_pem: bytes, nonce: bytes, wrapped: bytes, created: str) -> None:
        repo.put_practice_ca(self._conn, cert_pem, nonce, wrapped, created)

    def add_signing_key(self, username: str, key: WrappedKey, source: str, created: str) -> None:
        repo.add_signing_key(self._conn, username, key, source, created)

    def replace_signing_key_wrap(self, key_id: int, nonce: bytes, wrapped: bytes) -> None:
        repo.replace_signing_key_wrap(self._conn, key_id, nonce, wrapped)

    def deactivate_signing_keys(self, username: str) -> None:
        repo.deactivate_signing_keys(self._conn, username)

    def insert_record(self, record: Record, nhs: str | None) -> None:
        repo.insert_record(self._conn, record, nhs)

    def update_draft(
        self,
        record_id: str,
        answers: dict[str, Any],
        current_step: str | None,
        updated: str,
        nhs: str | None,
    ) -> None:
        repo.update_draft(self._conn, record_id, answers, current_step, updated, nhs)

    def move_draft_to_form(
        self,
        record_id: str,
        form_version: int,
        answers: dict[str, Any],
        current_step: str | None,
        updated: str,
    ) -> None:
        repo.move_draft_to_form(self._conn, record_id, form_version, answers, current_step, updated)

    def complete_record(
        self,
        record_id: str,
        answers: dict[str, Any],
        outcome: dict[str, Any],
        completed: str,
        nhs: str | None,
    ) -> None:
        repo.complete_record(self._conn, record_id, answers, outcome, completed, nhs)

    def delete_draft(self, record_id: str) -> None:
        sealed.delete_sealed_parts(self._conn, record_id)
        repo.delete_draft(self._conn, record_id)

    def put_search_text(self, record_id: str, body: str) -> None:
        repo.put_search_text(self._conn, record_id, body)

    def put_links(self, record_id: str, carers: Iterable[str], address: str | None) -> None:
        repo.put_links(self._conn, record_id, carers, address)

    def add_household_link_review(
        self,
        record_id: str,
        other_record_id: str,
        decision: str,
        reviewer: str,
        created: str,
        note: str | None,
    ) -> None:
        repo.add_household_link_review(
            self._conn, record_id, other_record_id, decision, reviewer, created, note
        )

    def put_referral_states(self, states: Iterable[StoredState]) -> None:
        repo.put_referral_states(self._conn, states)

    def add_addendum(self, record_id: str, author: str, created: str, body: str) -> int:
        return repo.add_addendum(self._conn, record_id, author, created, body)

    def add_letter(
        self,
        record_id: str,
        created: str,
        signer: str,
        sha256: str,
        pdf: bytes,
        unsigned: bytes | None = None,
    ) -> int:
        return repo.add_letter(self._conn, record_id, created, signer, sha256, pdf, unsigned)

    def add_followup(self, fu: FollowUp) -> int:
        return repo.add_followup(self._conn, fu)

    def add_review(self, review: Review) -> int:
        return repo.add_review(self._conn, review)

    def put_bundle(self, bundle: StoredBundle) -> None:
        repo.put_bundle(self._conn, bundle)

    def add_directory_entry(self, signed: SignedEntry, created: str) -> int:
        return repo.add_directory_entry(self._conn, signed, created)

    def add_lead_rotation(self, statement: RotationStatement) -> None:
        repo.add_lead_rotation(self._conn, statement)

    def add_role_key_wraps(self, wraps: Iterable[RoleKeyWrap]) -> None:
        repo.add_role_key_wraps(self._conn, wraps)

    def add_object_wraps(self, wraps: Iterable[ObjectWrap]) -> None:
        repo.add_object_wraps(self._conn, wraps)

    def add_remembered_login(self, user_id: str, workstation: str, created: str) -> int:
        return repo.add_remembered_login(self._conn, user_id, workstation, created)

    def revoke_remembered_login(self, login_id: int, revoked: str) -> None:
        repo.revoke_remembered_login(self._conn, login_id, revoked)

    def add_breakglass_ack(self, event_seq: int, user_id: str, at: str) -> None:
        repo.add_breakglass_ack(self._conn, event_seq, user_id, at)

    def insert_sealed_record(self, write: RecordWrite) -> None:
        sealed.insert_sealed_record(self._conn, write)

    def update_sealed_draft(self, write: RecordWrite) -> None:
        sealed.update_sealed_draft(self._conn, write)

    def complete_sealed_record(self, write: RecordWrite) -> None:
        sealed.complete_sealed_record(self._conn, write)

    def put_blind_tokens(
        self, record_id: str, generation: int, tokens: Iterable[IndexToken]
    ) -> None:
        sealed.put_blind_tokens(self._conn, record_id, generation, tokens)

    def add_sealed_addendum(
        self, record_id: str, author: str, created: str, body: SealedObject
    ) -> int:
        return sealed.add_sealed_addendum(self._conn, record_id, author, created, body)

    def add_sealed_letter(
        self,
        record_id: str,
        created: str,
        signer: str,
        sha256: str,
        pdf: SealedObject,
        unsigned: SealedObject | None = None,
    ) -> int:
        return sealed.add_sealed_letter(
            self._conn, record_id, created, signer, sha256, pdf, unsigned
        )

    def add_sealed_followup(self, fu: FollowUp, note: SealedObject | None) -> int:
        return sealed.add_sealed_followup(self._conn, fu, note)

    def add_sealed_review(
        self, record_id: str, reviewer: str, created: str, body: SealedObject
    ) -> int:
        return sealed.add_sealed_review(self._conn, record_id, reviewer, created, body)

    def add_sealed_household_review(
        self,
        record_id: str,
        other_record_id: str,
        reviewer: str,
        created: str,
        generation: int,
        ct: bytes,
    ) -> int:
        return sealed.add_sealed_household_review(
            self._conn, record_id, other_record_id, reviewer, created, generation, ct
        )


@_map_errors
class SqlcipherStore:
    """Store over one SQLCipher connection (gpshare.store.port.Store)."""

    def __init__(
        self,
        vault: Vault,
        key: bytes,
        clock: Clock,
        *,
        create: bool = False,
        write_lock: threading.RLock | None = None,
    ) -> None:
        self._vault = vault
        self._key = key
        self._clock = clock
        self._audit_key = audit.audit_key(key)
        self._legacy_key = audit.legacy_key(key)
        self._conn = db.open_database(vault.db_path, key, create=create)
        # Format 2 only: the practice keys MAC every class-M row (sqlcipher/row_macs.py).
        self._mac_keys = SqliteRowMacs(key) if isinstance(key, PracticeKeys) else None
        self._macs: SqliteRowMacs | None = None  # set once the triggers are installed
        self._install_macs()
        # Shared with worker stores: one audited write at a time in this process, so the
        # chain head only ever moves forward.
        self._lock = write_lock or threading.RLock()
        self._last_head: AuditHead | None = None

    def _install_macs(self) -> None:
        # The triggers name the row_mac columns, so they wait for migration 0010.
        if self._mac_keys is not None and db.schema_version(self._conn) >= _ROW_MAC_SCHEMA:
            with _driver_errors():
                self._mac_keys.install(self._conn)
            self._macs = self._mac_keys

    @property
    def connection(self) -> db.Connection:
        """This engine's own connection, outside the port: for the store's tests and bench."""
        return self._conn

    @property
    def last_head(self) -> AuditHead:
        if self._last_head is None:
            with _driver_errors():
                self._last_head = AuditHead(*audit.latest(self._conn))
        return self._last_head

    @contextlib.contextmanager
    def read(self) -> Iterator[SqlcipherReadTx]:
        tx = SqlcipherReadTx(self._conn, self._audit_key, self._legacy_key, self._macs)
        with _driver_errors():
            if self._conn.in_transaction:  # inside this store's own write: already consistent
                yield tx
                return
            # A deferred transaction: every read in the block sees the same WAL snapshot.
            self._conn.execute("BEGIN")
            try:
                yield tx
            finally:
                if self._conn.in_transaction:
                    self._conn.execute("ROLLBACK")

    @contextlib.contextmanager
    def write(self, entry: AuditEntry) -> Iterator[SqlcipherWriteTx]:
        with self._lock, _driver_errors():
            with db.transaction(self._conn):
                yield SqlcipherWriteTx(self._conn, self._audit_key, self._legacy_key, self._macs)
                seq, digest = audit.append(
                    self._conn,
                    self._audit_key,
                    at=entry.at or self._clock.now(),
                    actor=entry.actor,
                    action=entry.action,
                    record_id=entry.record_id,
                    details=dict(entry.details),
                )
            self._last_head = AuditHead(seq, digest)

    @contextlib.contextmanager
    def maintenance(self) -> Iterator[SqlcipherWriteTx]:
        with self._lock, _driver_errors(), db.transaction(self._conn):
            yield SqlcipherWriteTx(self._conn, self._audit_key, self._legacy_key, self._macs)

    def worker(self) -> SqlcipherStore:
        return SqlcipherStore(self._vault, self._key, self._clock, write_lock=self._lock)

    def interrupt(self) -> None:
        with contextlib.suppress(sqlcipher3.Error):
            self._conn.interrupt()

    def unreachable_since(self) -> datetime | None:
        return None  # a file in a folder has no server to lose

    def checkpoint(self) -> None:
        with contextlib.suppress(sqlcipher3.Error):
            db.checkpoint(self._conn)

    def close(self) -> None:
        with contextlib.suppress(sqlcipher3.Error):
            self._conn.close()
        self._key = b""
        self._audit_key = b""
        self._legacy_key = None

    def page_problems(self) -> list[str]:
        return db.page_problems(self._conn)

    def integrity_problems(self, *, quick: bool = False) -> list[str]:
        found = db.integrity_problems(self._conn, quick=quick)
        if self._macs is not None and not quick and not found:
            found = self._macs.problems(self._conn)
        return found

    def schema_version(self) -> int:
        return db.schema_version(self._conn)

    def latest_schema_version(self) -> int:
        return int(db.LATEST_SCHEMA_VERSION)

    def pending_migrations(self) -> list[int]:
        return [version for version, _name, _sql in db.pending_migrations(self._conn)]

    def apply_migrations(self) -> list[int]:
        pending = [version for version, _name, _sql in db.pending_migrations(self._conn)]
        if (
            self._mac_keys is not None
            and _ROW_MAC_SCHEMA in pending
            and db.schema_version(self._conn) > 0
            and self._conn.execute("SELECT 1 FROM users LIMIT 1").fetchone()
        ):
            # A format-2 vault with rows but no MACs: MACing them now would vouch for whatever
            # a practice-key holder may already have edited, so it is refused, unchanged.
            raise VaultFormatError(NO_MACS)
        applied = db.apply_migrations(self._conn)
        self._install_macs()
        return applied

    def create_backup(self, when: datetime, keep: int) -> Path:
        return backup.create_backup(self._conn, self._key, self._vault, when, keep)

    def replica(self, key: bytes) -> Replica:
        # Imported here: opening a store does not load the replica (leads only need it).
        from gpshare.store.sqlcipher.replica import REPLICA_NAME, LeadReplica

        return LeadReplica(self._vault.folder / REPLICA_NAME, key)


if TYPE_CHECKING:
    # mypy checks the engine against the port's Protocols here (structural typing).
    def _conforms(store: SqlcipherStore, read: SqlcipherReadTx, write: SqlcipherWriteTx) -> None:
        _store: Store = store
        _read: ReadTx = read
        _write: WriteTx = write
