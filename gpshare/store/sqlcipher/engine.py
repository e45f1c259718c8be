"""The SQLCipher engine behind the storage port (gpshare.store.port.Store)."""

from __future__ import annotations

import contextlib
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
from gpshare.store.sealed_rows import SealedRowState
from gpshare.store.sqlcipher import db, sealed
from gpshare.store.sqlcipher import repositories as repo

if TYPE_CHECKING:
    from gpshare.store.keys.directory import RotationStatement, SignedEntry
    from gpshare.store.vault import Vault

P = ParamSpec("P")
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
        with _driver_errors():
            return fn(*args, **kwargs)

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
    """ReadTx over one connection: each method is the repositories function of that name."""

    def __init__(
        self, conn: db.Connection, audit_key: bytes, legacy_key: bytes | None = None
    ) -> None:
        self._conn = conn
        self._audit_key = audit_key
        self._legacy_key = legacy_key  # a migrated vault's v1 chain key (audit.legacy_key)

    def get_user(self, username: str) -> User | None:
        return repo.get_user(self._conn, username)

    def list_users(self) -> list[User]:
        return repo.list_users(self._conn)

    def get_settings(self) -> dict[str, str]:
        return repo.get_settings(self._conn)

    def get_practice_ca(self) -> WrappedKey | None:
        return repo.get_practice_ca(self._conn)

    def active_signing_key(self, username: str) -> tuple[int, WrappedKey] | None:
        return repo.active_signing_key(self._conn, username)

    def get_record(self, record_id: str) -> Record | None:
        return repo.get_record(self._conn, record_id)

    def list_records(
        self, flt: RecordFilter, limit: int | None = None, offset: int = 0, *, light: bool = False
    ) -> list[Record]:
        return repo.list_records(self._conn, flt, limit, offset, light=light)

    def count_records(self, flt: RecordFilter) -> int:
        return repo.count_records(self._conn, flt)

    def records_for_child(
        self, nhs: str | None, family: str | None, dob: str | None, exclude: str | None
    ) -> list[tuple[Record, str]]:
        return repo.records_for_child(self._conn, nhs, family, dob, exclude)

    def completed_records_light(
        self, statuses: Sequence[str] | None = None, record_ids: Sequence[str] | None = None
    ) -> list[Record]:
        return repo.completed_records_light(self._conn, statuses, record_ids)

    def open_referrals(self, review_horizon: str, clinician: str | None = None) -> list[Record]:
        return repo.open_referrals(self._conn, review_horizon, clinician)

    def records_without_links(self) -> list[Record]:
        return repo.records_without_links(self._conn)

    def linked_records(self, carers: Iterable[str], addresses: Iterable[str]) -> list[Record]:
        return repo.linked_records(self._conn, carers, addresses)

    def household_link_decisions(self, record_ids: Sequence[str]) -> dict[str, str]:
        return repo.household_link_decisions(self._conn, record_ids)

    def due_referrals(self, due_by: str, clinician: str | None = None) -> list[DueRow]:
        return repo.due_referrals(self._conn, due_by, clinician)

    def referrals_with_action(
        self, action: str, due_after: str, clinician: str | None = None
    ) -> list[DueRow]:
        return repo.referrals_with_action(self._conn, action, due_after, clinician)

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
        return repo.addenda(self._conn, record_id)

    def letters(self, record_id: str) -> list[LetterMeta]:
        return repo.letters(self._conn, record_id)

    def letter_pdf(self, letter_id: int) -> tuple[LetterMeta, bytes] | None:
        return repo.letter_pdf(self._conn, letter_id)

    def letter_unsigned_pdf(self, letter_id: int) -> bytes | None:
        return repo.letter_unsigned_pdf(self._conn, letter_id)

    def letter_by_hash(self, sha256: str) -> LetterMeta | None:
        return repo.letter_by_hash(self._conn, sha256)

    def followups(self, record_ids: Iterable[str] | None = None) -> list[FollowUp]:
        return repo.followups(self._conn, record_ids)

    def reviews(self, record_id: str | None = None) -> list[Review]:
        return repo.reviews(self._conn, record_id)

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
        return repo.remembered_logins(self._conn, user_id)

    def breakglass_state(self) -> BreakglassState | None:
        return repo.breakglass_state(self._conn)

    def sealed_record(self, record_id: str, recipients: Sequence[str]) -> SealedRecord | None:
        return sealed.sealed_record(self._conn, record_id, recipients)

    def summaries(self, record_ids: Sequence[str]) -> list[StoredSummary]:
        return sealed.summaries(self._conn, record_ids)

    def records_for_tokens(
        self, tokens: Sequence[IndexToken], exclude: str | None
    ) -> list[TokenMatch]:
        return sealed.records_for_tokens(self._conn, tokens, exclude)

    def records_without_tokens(self, generation: int) -> list[RecordRow]:
        return sealed.records_without_tokens(self._conn, generation)

    def sealed_addenda(self, record_id: str, recipients: Sequence[str]) -> list[SealedAddendum]:
        return sealed.sealed_addenda(self._conn, record_id, recipients)

    def sealed_letters(self, record_id: str, recipients: Sequence[str]) -> list[SealedLetter]:
        return sealed.sealed_letters(self._conn, record_id, recipients)

    def sealed_followups(
        self, record_ids: Sequence[str], recipients: Sequence[str]
    ) -> list[SealedFollowUp]:
        return sealed.sealed_followups(self._conn, record_ids, recipients)

    def sealed_reviews(self, record_id: str, recipients: Sequence[str]) -> list[SealedReview]:
        return sealed.sealed_reviews(self._conn, record_id, recipients)

    def household_reviews(self, record_ids: Sequence[str]) -> list[SealedHouseholdReview]:
        return sealed.household_reviews(self._conn, record_ids)

    def sealed_rows(self) -> list[SealedRowState]:
        # No row MACs here: the whole file is authenticated by SQLCipher's page HMAC.
        return sealed_rows.inventory(lambda q: self._conn.execute(q).fetchall())

    def stored_actions(self, record_ids: Sequence[str]) -> dict[str, str | None]:
        return repo.stored_actions(self._conn, record_ids)

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
        return audit.verify(self._conn, self._audit_key, head, progress, self._legacy_key)

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
        # Shared with worker stores: one audited write at a time in this process, so the
        # chain head only ever moves forward.
        self._lock = write_lock or threading.RLock()
        self._last_head: AuditHead | None = None

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
        tx = SqlcipherReadTx(self._conn, self._audit_key, self._legacy_key)
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
                yield SqlcipherWriteTx(self._conn, self._audit_key, self._legacy_key)
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
            yield SqlcipherWriteTx(self._conn, self._audit_key, self._legacy_key)

    def worker(self) -> SqlcipherStore:
        return SqlcipherStore(self._vault, self._key, self._clock, write_lock=self._lock)

    def interrupt(self) -> None:
        with contextlib.suppress(sqlcipher3.Error):
            self._conn.interrupt()

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
        return db.integrity_problems(self._conn, quick=quick)

    def schema_version(self) -> int:
        return db.schema_version(self._conn)

    def latest_schema_version(self) -> int:
        return int(db.LATEST_SCHEMA_VERSION)

    def pending_migrations(self) -> list[int]:
        return [version for version, _name, _sql in db.pending_migrations(self._conn)]

    def apply_migrations(self) -> list[int]:
        return db.apply_migrations(self._conn)

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
