"""The storage port: the typed interface the services use (DESIGN §10.2, issue #12).

An engine (gpshare.store.sqlcipher today, PostgreSQL later) implements `Store`. Everything
that crosses this port is a domain type (gpshare.records, gpshare.filters), one of the small
dataclasses below, or plain str/int/bytes/datetime: no connection, cursor, row or pragma.
Reads happen in `Store.read()`; every change happens in `Store.write(entry)`, which appends
`entry` to the hash-chained audit log in the same transaction (both commit, or neither).
Failures of the engine surface as gpshare.errors types (`DatabaseError` for anything the
engine cannot classify), never as the driver's own exceptions.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from gpshare.errors import DatabaseError as DatabaseError
from gpshare.filters import AuditFilter, RecordFilter
from gpshare.records import Addendum, AuditEvent, FollowUp, LetterMeta, Record, Review, User

if TYPE_CHECKING:
    from gpshare.store.audit import ChainReport

# One due-referral row: (record id, clinician, child given, child family, action, due).
DueRow = tuple[str, str, str, str, str, str]


@dataclass(frozen=True)
class WrappedKey:
    """A certificate with its private key wrapped (AES-GCM) for storage."""

    cert_pem: bytes
    nonce: bytes
    wrapped: bytes


@dataclass(frozen=True)
class DashboardRows:
    """Aggregates the dashboard needs, computed by the engine."""

    by_month_pathway: list[tuple[str, str, int]]
    by_month_consent: list[tuple[str, str, int]]
    timings: list[tuple[str, str | None, str | None]]  # completed, first sent, first acknowledged


@dataclass(frozen=True)
class StoredState:
    """What the store keeps of one completed record's referral state (ISO text times)."""

    record: Record
    status: str
    action: str | None
    due: str | None
    sent_at: str | None
    acknowledged_at: str | None


@dataclass(frozen=True)
class AuditEntry:
    """The audit event a write appends: no free clinical text in `details`.

    `at` defaults to the store's clock when the write commits.
    """

    actor: str
    action: str
    record_id: str | None = None
    details: Mapping[str, Any] = field(default_factory=dict)
    at: datetime | None = None


@dataclass(frozen=True)
class AuditHead:
    """The newest audit event: its sequence number and seal (mirrored into vault.json)."""

    seq: int
    digest: str


class ReadTx(Protocol):
    """Reads inside one consistent snapshot (one per repositories read, same names)."""

    # users, settings, keys
    def get_user(self, username: str) -> User | None: ...
    def list_users(self) -> list[User]: ...
    def get_settings(self) -> dict[str, str]: ...
    def get_practice_ca(self) -> WrappedKey | None: ...
    def active_signing_key(self, username: str) -> tuple[int, WrappedKey] | None: ...

    # records
    def get_record(self, record_id: str) -> Record | None: ...
    def list_records(
        self, flt: RecordFilter, limit: int | None = None, offset: int = 0, *, light: bool = False
    ) -> list[Record]: ...
    def count_records(self, flt: RecordFilter) -> int: ...
    def records_for_child(
        self, nhs: str | None, family: str | None, dob: str | None, exclude: str | None
    ) -> list[tuple[Record, str]]: ...
    def completed_records_light(
        self, statuses: Sequence[str] | None = None, record_ids: Sequence[str] | None = None
    ) -> list[Record]: ...
    def open_referrals(self, review_horizon: str, clinician: str | None = None) -> list[Record]: ...
    def records_without_links(self) -> list[Record]: ...
    def linked_records(self, carers: Iterable[str], addresses: Iterable[str]) -> list[Record]: ...
    def household_link_decisions(self, record_ids: Sequence[str]) -> dict[str, str]: ...

    # referral states and the dashboard
    def due_referrals(self, due_by: str, clinician: str | None = None) -> list[DueRow]: ...
    def referrals_with_action(
        self, action: str, due_after: str, clinician: str | None = None
    ) -> list[DueRow]: ...
    def overdue_counts(
        self, today_iso: str, date_from: str | None, date_to: str | None
    ) -> dict[str, int]: ...
    def send_timings(
        self, date_from: str | None, date_to: str | None
    ) -> list[tuple[str, str | None, str | None]]: ...
    def dashboard_rows(
        self, date_from: str | None, date_to: str | None, *, with_timings: bool = True
    ) -> DashboardRows: ...

    # addenda, letters, follow-ups, reviews
    def addenda(self, record_id: str) -> list[Addendum]: ...
    def letters(self, record_id: str) -> list[LetterMeta]: ...
    def letter_pdf(self, letter_id: int) -> tuple[LetterMeta, bytes] | None: ...
    def letter_unsigned_pdf(self, letter_id: int) -> bytes | None: ...
    def letter_by_hash(self, sha256: str) -> LetterMeta | None: ...
    def followups(self, record_ids: Iterable[str] | None = None) -> list[FollowUp]: ...
    def reviews(self, record_id: str | None = None) -> list[Review]: ...

    # the audit log
    def last_draft_saved_at(self, record_id: str) -> str | None:
        """When the record's newest draft save was audited (ISO), or None."""
        ...

    def audit_events(
        self, flt: AuditFilter, limit: int | None = None, offset: int = 0
    ) -> list[AuditEvent]: ...
    def audit_head(self) -> AuditHead:
        """The newest event, or AuditHead(0, GENESIS) for an empty log."""
        ...

    def verify_audit(
        self,
        head: tuple[int, str] | None = None,
        progress: Callable[[int, int], None] | None = None,
    ) -> ChainReport:
        """Walk the whole chain (against vault.json's `head` when given)."""
        ...

    def head_problem(self, head: tuple[int, str]) -> str | None:
        """Why the chain disagrees with vault.json's head, or None (see audit.head_problem)."""
        ...

    def anchor_problem(self, anchor: tuple[int, str], restore_floor: int) -> str | None:
        """Why the chain disagrees with this computer's rollback anchor, or None."""
        ...


class WriteTx(ReadTx, Protocol):
    """Reads and writes inside one write transaction."""

    def insert_user(self, user: User) -> None: ...
    def set_user_active(self, username: str, active: bool) -> None: ...
    def set_must_change_password(self, username: str, value: bool) -> None: ...
    def put_settings(self, values: dict[str, str]) -> None: ...
    def put_practice_ca(
        self, cert_pem: bytes, nonce: bytes, wrapped: bytes, created: str
    ) -> None: ...
    def add_signing_key(
        self, username: str, key: WrappedKey, source: str, created: str
    ) -> None: ...
    def replace_signing_key_wrap(self, key_id: int, nonce: bytes, wrapped: bytes) -> None: ...
    def deactivate_signing_keys(self, username: str) -> None: ...
    def insert_record(self, record: Record, nhs: str | None) -> None: ...
    def update_draft(
        self,
        record_id: str,
        answers: dict[str, Any],
        current_step: str | None,
        updated: str,
        nhs: str | None,
    ) -> None: ...
    def move_draft_to_form(
        self,
        record_id: str,
        form_version: int,
        answers: dict[str, Any],
        current_step: str | None,
        updated: str,
    ) -> None: ...
    def complete_record(
        self,
        record_id: str,
        answers: dict[str, Any],
        outcome: dict[str, Any],
        completed: str,
        nhs: str | None,
    ) -> None: ...
    def delete_draft(self, record_id: str) -> None: ...
    def put_search_text(self, record_id: str, body: str) -> None: ...
    def put_links(self, record_id: str, carers: Iterable[str], address: str | None) -> None: ...
    def add_household_link_review(
        self,
        record_id: str,
        other_record_id: str,
        decision: str,
        reviewer: str,
        created: str,
        note: str | None,
    ) -> None: ...
    def put_referral_states(self, states: Iterable[StoredState]) -> None: ...
    def add_addendum(self, record_id: str, author: str, created: str, body: str) -> int: ...
    def add_letter(
        self,
        record_id: str,
        created: str,
        signer: str,
        sha256: str,
        pdf: bytes,
        unsigned: bytes | None = None,
    ) -> int: ...
    def add_followup(self, fu: FollowUp) -> int: ...
    def add_review(self, review: Review) -> int: ...


class Store(Protocol):
    """One open database (an engine). Not shared between threads: use `worker()`."""

    @property
    def last_head(self) -> AuditHead:
        """The head after the last committed write (to mirror into vault.json)."""
        ...

    def read(self) -> AbstractContextManager[ReadTx]:
        """A read-only snapshot for the `with` block."""
        ...

    def write(self, entry: AuditEntry) -> AbstractContextManager[WriteTx]:
        """Run the block's writes and append `entry` in one transaction (both or neither);
        `last_head` is the new head afterwards. Not inside a `read()` block of this store."""
        ...

    def maintenance(self) -> AbstractContextManager[WriteTx]:
        """An unaudited write transaction: backfills at open (after migrations), and an
        autosave coalesced into the draft's last audited save."""
        ...

    def worker(self) -> Store:
        """The same database on a new connection, for another thread (writes serialised)."""
        ...

    def interrupt(self) -> None:
        """Abort the query running on this store (from any thread)."""
        ...

    def checkpoint(self) -> None:
        """Fold committed work into the main file when the user is idle (best effort)."""
        ...

    def close(self) -> None:
        """Close the connection; the store is unusable afterwards."""
        ...

    # integrity, schema and snapshots, run by the services at open and in backups
    def page_problems(self) -> list[str]:
        """Damaged pages (every page's MAC); empty when healthy."""
        ...

    def integrity_problems(self, *, quick: bool = False) -> list[str]:
        """Page MACs plus the engine's own consistency check; empty when healthy."""
        ...

    def schema_version(self) -> int:
        """The database's migration level."""
        ...

    def latest_schema_version(self) -> int:
        """The newest migration level this gpshare knows."""
        ...

    def pending_migrations(self) -> list[int]:
        """Migration levels newer than the database, in order."""
        ...

    def apply_migrations(self) -> list[int]:
        """Apply every pending migration, each in its own transaction; the levels applied."""
        ...

    def create_backup(self, when: datetime, keep: int) -> Path:
        """An encrypted snapshot of the database and header in the vault's backups folder."""
        ...
