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
from typing import TYPE_CHECKING, Any, Literal, Protocol

from gpshare.errors import DatabaseError as DatabaseError
from gpshare.filters import AuditFilter, RecordFilter
from gpshare.records import Addendum, AuditEvent, FollowUp, LetterMeta, Record, Review, User

if TYPE_CHECKING:
    from gpshare.store.audit import ChainReport
    from gpshare.store.keys.bundle import SealedBundle
    from gpshare.store.keys.directory import RotationStatement, SignedEntry
    from gpshare.store.keys.wraps import WrapBinding
    from gpshare.store.sealed_rows import SealedRowState

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


# ----- vault version 2 key tables (migration 0007, docs/vault-v2.md §1) -----------------
# The rows hold what gpshare.store.keys produces. The vault id is never stored in a row: the
# helpers that rebuild a keys type take it from the caller's session, as readers take record
# ids from the row they asked for (DESIGN §10.1). gpshare.store.keys is imported only inside
# those helpers, so opening a store does not load it.

BundleState = Literal["provisional", "active", "inert"]
DirectoryKind = Literal["user", "lead-key"]
DirectoryStatus = Literal["pending", "confirmed"]
RoleKeyName = Literal["clinical", "lead"]
# The audit action of a break-glass ceremony; two different users acknowledge it before its
# banner goes (§3).
BREAKGLASS_EVENT = "breakglass_used"
BREAKGLASS_ACKS_NEEDED = 2


@dataclass(frozen=True)
class StoredBundle:
    """A user's sealed key bundle and its state: provisional (signing key only, under a
    one-time password), active, or inert (kept after an admin reset)."""

    user_id: str
    state: BundleState
    sealed: SealedBundle
    created: str


@dataclass(frozen=True)
class DirectoryRow:
    """One key directory row: a lead-key entry (generation, public key) or a user entry (user,
    role, public key, key generation, active), confirmed (signed by the lead signing key) or
    pending (unsigned). `id` orders the rows: a user's newest confirmed row is the entry
    others wrap for; a newer pending row waits for a lead (after a first login or a reset)."""

    id: int
    kind: DirectoryKind
    user_id: str | None
    generation: int
    role: str | None
    public_key: bytes
    active: bool | None
    signature: bytes | None
    created: str
    # A lead's entry: the public half of their lead-access pair (decision D2), else None.
    lead_access_key: bytes | None = None

    @property
    def status(self) -> DirectoryStatus:
        """Pending until a lead has signed the entry."""
        return "pending" if self.signature is None else "confirmed"

    def signed(self, vault_id: str) -> SignedEntry:
        """The entry as keys.directory verifies it, for this vault."""
        from gpshare.store.keys.directory import LeadKeyEntry, SignedEntry, UserEntry

        if self.kind == "lead-key":
            return SignedEntry(
                LeadKeyEntry(vault_id, self.generation, self.public_key), self.signature
            )
        entry = UserEntry(
            vault_id,
            str(self.user_id),
            str(self.role),
            self.public_key,
            self.generation,
            bool(self.active),
            self.lead_access_key,
        )
        return SignedEntry(entry, self.signature)


@dataclass(frozen=True)
class LeadRotation:
    """A stored rotation statement: lead signing key `generation` is `new_key`, signed by the
    previous key."""

    generation: int
    previous_key: bytes
    new_key: bytes
    signature: bytes

    def statement(self, vault_id: str) -> RotationStatement:
        """The statement as keys.directory verifies it, for this vault."""
        from gpshare.store.keys.directory import RotationStatement

        return RotationStatement(
            vault_id, self.previous_key, self.new_key, self.generation, self.signature
        )


@dataclass(frozen=True)
class RoleKeyWrap:
    """Generation `generation` of the clinical or lead key, wrapped for one holder's key
    (`recipient`: a user id, or "#breakglass" (services.record_keys); `recipient_generation`: that key's generation)."""

    key_name: RoleKeyName
    generation: int
    recipient: str
    recipient_generation: int
    wrap: bytes

    def binding(self, vault_id: str) -> WrapBinding:
        """The HPKE `info` binding this wrap was made (and must be opened) with."""
        from gpshare.store.keys.wraps import WrapBinding, WrapPurpose

        purpose = WrapPurpose.CLINICAL_KEY if self.key_name == "clinical" else WrapPurpose.LEAD_KEY
        return WrapBinding.for_role_key(
            purpose, vault_id, self.generation, self.recipient, self.recipient_generation
        )


@dataclass(frozen=True)
class ObjectWrap:
    """One object key (an N object, named by kind and id) wrapped for one recipient key."""

    object_kind: str
    object_id: str
    recipient: str
    recipient_generation: int
    wrap: bytes
    created: str

    def binding(self, vault_id: str) -> WrapBinding:
        """The HPKE `info` binding this wrap was made (and must be opened) with."""
        from gpshare.store.keys.wraps import WrapBinding

        return WrapBinding.for_object(
            vault_id, self.object_kind, self.object_id, self.recipient, self.recipient_generation
        )


@dataclass(frozen=True)
class RememberedLogin:
    """A login remembered on one workstation (the secret stays in its OS keyring)."""

    id: int
    user_id: str
    workstation: str
    created: str
    revoked: str | None


@dataclass(frozen=True)
class BreakglassState:
    """The newest break-glass ceremony (its `breakglass_used` audit event) and who has
    acknowledged it, in order."""

    event_seq: int
    used_at: str
    acknowledged_by: tuple[str, ...]

    @property
    def banner(self) -> bool:
        """True until two different users have acknowledged the ceremony."""
        return len(set(self.acknowledged_by)) < BREAKGLASS_ACKS_NEEDED


# ----- vault version 2 sealed records (migration 0008, docs/vault-v2.md §1.3) ---------------
# Class M travels in the clear; C and N only as ciphertext made by the record codec
# (gpshare/services/_sealing.py). No member below carries plaintext of a child's identity, a
# summary or a narrative, so an engine (SQLCipher, or the practice server) stores only these.

# The blind-index token types (keys.blind.IndexType tags) a store accepts.
TokenType = Literal["nhs", "family|dob", "given|dob", "family|given", "postcode|house"]


@dataclass(frozen=True)
class IndexToken:
    """One blind-index token of a record: its type tag, the clinical generation it was made
    under, and its 16 bytes."""

    type: TokenType
    generation: int
    token: bytes


@dataclass(frozen=True)
class RecordRow:
    """The class M part of a record: what lists and the engine may read without any key.
    `version` is bumped by every sealed write (0 for a v1 record)."""

    id: str
    clinician: str
    status: str
    form_id: str
    form_version: int
    current_step: str | None
    created: str
    updated: str
    completed: str | None
    version: int
    clinician_name: str = ""


@dataclass(frozen=True)
class StoredSummary:
    """A record's C summary ciphertext, sealed for `version` under clinical key `generation`."""

    record_id: str
    version: int
    generation: int
    ct: bytes


@dataclass(frozen=True)
class SealedObject:
    """One N object (kind and id name it in its AAD and its wraps), its ciphertext and its
    object-key commitment. Written with the wraps of a new object key; read back with the
    wraps of the recipients asked for."""

    kind: str
    object_id: str
    ct: bytes
    commitment: bytes
    wraps: tuple[ObjectWrap, ...] = ()


@dataclass(frozen=True)
class RecordWrite:
    """A sealed save of a record: its M row at the new `row.version`, the version it was read
    at (`base_version`, 0 for a new record), the summary, the answers object (wraps only when
    its object key is new) and the record's blind tokens of the summary's generation.
    `summary` is None (and `tokens` empty) only for a draft by an author who holds no clinical
    key yet (an unconfirmed clinician): such a draft has no summary row until they do."""

    row: RecordRow
    base_version: int
    summary: StoredSummary | None
    answers: SealedObject
    tokens: tuple[IndexToken, ...]

    def check(self) -> None:
        """Refuse a write whose parts name different records or versions (a codec bug); every
        engine calls this before storing it."""
        row, summary = self.row, self.summary
        if row.version <= self.base_version:
            raise ValueError("a sealed write must raise the record's version")
        if summary is None:
            # An unconfirmed author's draft: no clinical key, so no summary and no tokens.
            if self.tokens or row.status != "draft":
                raise ValueError(
                    "only a draft may be written without a summary, and without tokens"
                )
            return
        if summary.record_id != row.id or summary.version != row.version:
            raise ValueError("a sealed record's summary must be for its own id and version")
        if any(t.generation != summary.generation for t in self.tokens):
            raise ValueError("a sealed write's tokens must be of its summary's generation")


@dataclass(frozen=True)
class SealedRecord:
    """A stored sealed record: the M row, its summary (None for a v1 row), its answers object
    with the wraps of the recipients asked for."""

    row: RecordRow
    summary: StoredSummary | None
    answers: SealedObject | None


@dataclass(frozen=True)
class TokenMatch:
    """A completed record one of the looked-up tokens found: a probable match until the
    summary confirms `found_by` (keys.blind.confirms)."""

    row: RecordRow
    summary: StoredSummary
    found_by: IndexToken


@dataclass(frozen=True)
class SealedAddendum:
    """An addendum's M row and its sealed body."""

    id: int
    record_id: str
    author: str
    created: str
    body: SealedObject


@dataclass(frozen=True)
class SealedLetter:
    """A letter's M row and its sealed signed (and, when kept, unsigned) PDF."""

    meta: LetterMeta
    pdf: SealedObject
    unsigned: SealedObject | None


@dataclass(frozen=True)
class SealedFollowUp:
    """A follow-up event's M fields (event, dates, who, decision token) and its sealed note
    and details (None when the event has neither)."""

    id: int
    record_id: str
    event: str
    at: str
    recorded_by: str
    recorded_at: str
    decision: str | None
    note: SealedObject | None


@dataclass(frozen=True)
class SealedReview:
    """A lead review's M row and its sealed verdict, comments and learning."""

    id: int
    record_id: str
    reviewer: str
    created: str
    body: SealedObject


@dataclass(frozen=True)
class SealedHouseholdReview:
    """A household link review's M row and its C decision and note, sealed under clinical key
    `generation`."""

    id: int
    record_id: str
    other_record_id: str
    reviewer: str
    created: str
    generation: int
    ct: bytes


# ----- the lead's search replica (vault version 2, DESIGN §10.1 class L, §10.2 "Search") -----


@dataclass(frozen=True)
class ReplicaItem:
    """One record as the lead's replica holds it: M fields, the decrypted C summary, and the
    text the lead searches (never an object key or ciphertext).

    `search_text` is the text today's records.db index holds (the services' SEARCH_FIELDS);
    `narrative` is the rest of the N text the lead may search (other free-text answers,
    addenda, follow-up notes, reviews). `due`/`action` are the record's stored referral
    state (M), for the "overdue only" filter. Outcome fields are kept for completed records
    only, as records.db keeps them."""

    id: str
    clinician: str
    clinician_name: str
    status: str
    form_id: str
    form_version: int
    created: str
    updated: str
    completed: str | None = None
    child_given: str | None = None
    child_family: str | None = None
    child_nhs: str | None = None
    child_dob: str | None = None
    pathway: str | None = None
    consent_basis: str | None = None
    decision: str | None = None
    review_date: str | None = None
    snomed_codes: tuple[Any, ...] | None = None
    categories: tuple[str, ...] = ()
    due: str | None = None
    action: str | None = None
    search_text: str = ""
    narrative: str = ""

    @classmethod
    def from_record(
        cls,
        record: Record,
        *,
        search_text: str = "",
        narrative: str = "",
        due: str | None = None,
        action: str | None = None,
    ) -> ReplicaItem:
        """The item of a record as the port returns it today (full or light), with its text
        and stored referral state given alongside."""
        outcome = record.outcome or {}
        decision = record.answers.get("decision")
        review = record.answers.get("review_date")
        codes = outcome.get("snomed_codes")
        categories = record.answers.get("categories")
        return cls(
            id=record.id,
            clinician=record.clinician,
            clinician_name=record.clinician_name,
            status=record.status,
            form_id=record.form_id,
            form_version=record.form_version,
            created=record.created,
            updated=record.updated,
            completed=record.completed,
            child_given=record.child.given_name or None,
            child_family=record.child.family_name or None,
            child_nhs=record.child.nhs_number,
            child_dob=record.child.date_of_birth,
            pathway=outcome.get("pathway"),
            consent_basis=outcome.get("consent_basis"),
            decision=decision if isinstance(decision, str) else None,
            review_date=review if isinstance(review, str) else None,
            snomed_codes=tuple(codes) if isinstance(codes, list) else None,
            categories=tuple(str(c) for c in categories) if isinstance(categories, list) else (),
            due=due,
            action=action,
            search_text=search_text,
            narrative=narrative,
        )


@dataclass(frozen=True)
class RemovedRecord:
    """A record no longer in the vault (a deleted draft): the replica drops its row."""

    record_id: str


ReplicaChange = ReplicaItem | RemovedRecord


class Replica(Protocol):
    """The lead's local search replica (`lead-index.db`, class L): decrypted C fields and a
    full-text index of N, under the lead data key. Derived data, caught up from the audit
    sequence number of the last event applied; never backed up. Each engine keeps one on
    the lead's computer (#14's PostgreSQL workstation too). One thread at a time: another
    thread asks the store for its own handle. Every method raises
    gpshare.errors.ReplicaUnavailable when the file is missing, unreadable with the key, or
    of another schema version (that file is deleted): the caller rebuilds."""

    def open(self) -> None:
        """Open the replica (also done by the first use); ReplicaUnavailable if it cannot."""
        ...

    def close(self) -> None:
        """Close the connection; the next use opens it again."""
        ...

    def delete(self) -> None:
        """Remove the replica's files (after a restore, or when the key is gone)."""
        ...

    def last_head(self) -> AuditHead:
        """The audit event (seq and seal) up to which changes have been applied."""
        ...

    def last_seq(self) -> int:
        """The audit sequence number of the last event applied."""
        ...

    def apply(self, changes: Iterable[ReplicaChange], head: AuditHead) -> bool:
        """Apply the changes of the events up to `head` in one transaction; False (and
        nothing changed) when the replica is already at or past `head.seq`."""
        ...

    def rebuild(
        self,
        items: Iterable[ReplicaItem],
        head: AuditHead,
        *,
        total: int | None = None,
        progress: Callable[[int, int], None] | None = None,
        cancelled: Callable[[], bool] | None = None,
    ) -> int:
        """Build a new replica from every record (as of `head`) beside the old one and swap
        it in; the number of records. A failure or a cancel leaves the old one as it was."""
        ...

    def list_records(
        self, flt: RecordFilter, limit: int | None = None, offset: int = 0
    ) -> list[Record]:
        """Light records (no answers) matching `flt`, newest change first, as
        ReadTx.list_records(..., light=True) returns them."""
        ...

    def count_records(self, flt: RecordFilter) -> int:
        """How many records match `flt`."""
        ...

    def dashboard_rows(self, date_from: str | None, date_to: str | None) -> DashboardRows:
        """Monthly counts by pathway and consent basis of records completed and created in
        the range (no timings: those come from the M referral states)."""
        ...


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

    # vault version 2 keys (migration 0007)
    def bundle(self, user_id: str, generation: int | None = None) -> StoredBundle | None:
        """The user's bundle of `generation`, or their newest one whatever its state."""
        ...

    def directory_entries(
        self, user_id: str | None = None, kind: DirectoryKind | None = None
    ) -> list[DirectoryRow]:
        """Directory rows, oldest first: all, one user's, or one kind's."""
        ...

    def pending_entries(self) -> list[DirectoryRow]:
        """For each user whose newest directory row is unsigned, that row (oldest first)."""
        ...

    def lead_rotations(self) -> list[LeadRotation]:
        """Every lead signing key rotation statement, by generation."""
        ...

    def role_key_wraps(
        self, recipient: str | None = None, key_name: RoleKeyName | None = None
    ) -> list[RoleKeyWrap]:
        """Role key wraps (all, or one recipient's, or of one key), by key, generation and
        recipient."""
        ...

    def object_wraps_for(
        self, recipient: str, objects: Iterable[tuple[str, str]] | None = None
    ) -> list[ObjectWrap]:
        """The recipient's wraps (every key generation) of these (object kind, object id)
        pairs, or of every object when `objects` is None."""
        ...

    def remembered_logins(self, user_id: str | None = None) -> list[RememberedLogin]:
        """Remembered logins, revoked ones included, oldest first (all, or one user's)."""
        ...

    def breakglass_state(self) -> BreakglassState | None:
        """The newest break-glass ceremony and its acknowledgements; None if never used."""
        ...

    # vault version 2 sealed records (migration 0008)
    def sealed_record(self, record_id: str, recipients: Sequence[str]) -> SealedRecord | None:
        """The record's M row, summary and answers object with the wraps for `recipients`."""
        ...

    def sealed_records(
        self, record_ids: Sequence[str], recipients: Sequence[str]
    ) -> dict[str, SealedRecord]:
        """`sealed_record` of a page of records by id (a missing id is left out): a query per
        table for the whole page, each row checked as strictly as one by one."""
        ...

    def summaries(self, record_ids: Sequence[str]) -> list[StoredSummary]:
        """The summaries of these records (a list page), in one query."""
        ...

    def records_for_tokens(
        self, tokens: Sequence[IndexToken], exclude: str | None
    ) -> list[TokenMatch]:
        """Completed records carrying any of these tokens (except `exclude`), oldest first,
        each with its summary and the token that found it."""
        ...

    def records_without_tokens(self, generation: int) -> list[RecordRow]:
        """Sealed completed records with no blind token of clinical key `generation` yet."""
        ...

    def sealed_addenda(self, record_id: str, recipients: Sequence[str]) -> list[SealedAddendum]:
        """The record's sealed addenda, oldest first, with the wraps for `recipients`."""
        ...

    def sealed_addenda_of(
        self, record_ids: Sequence[str], recipients: Sequence[str]
    ) -> dict[str, list[SealedAddendum]]:
        """`sealed_addenda` of a page of records, by record id (one with none is left out)."""
        ...

    def sealed_letters(self, record_id: str, recipients: Sequence[str]) -> list[SealedLetter]:
        """The record's sealed letters, oldest first, with the wraps for `recipients`."""
        ...

    def sealed_followups(
        self, record_ids: Sequence[str], recipients: Sequence[str]
    ) -> list[SealedFollowUp]:
        """Sealed follow-up events of these records in time order, notes with the wraps for
        `recipients`."""
        ...

    def sealed_reviews(self, record_id: str, recipients: Sequence[str]) -> list[SealedReview]:
        """The record's sealed lead reviews, oldest first, with the wraps for `recipients`."""
        ...

    def sealed_reviews_of(
        self, record_ids: Sequence[str], recipients: Sequence[str]
    ) -> dict[str, list[SealedReview]]:
        """`sealed_reviews` of a page of records, by record id (one with none is left out)."""
        ...

    def household_reviews(self, record_ids: Sequence[str]) -> list[SealedHouseholdReview]:
        """Sealed household link reviews made from any of these records, oldest first."""
        ...

    def sealed_rows(self) -> list[SealedRowState]:
        """Every sealed row (records with their summaries, and the object tables), with the
        SHA-256 of each ciphertext, each commitment and whether its M MAC verifies: what the
        row-against-event verify compares (gpshare/store/sealed_rows.py, DESIGN §10.3)."""
        ...

    # the audit log
    def stored_actions(self, record_ids: Sequence[str]) -> dict[str, str | None]:
        """The stored next action of each of these records that has a stored state."""
        ...

    def last_draft_saved_at(self, record_id: str) -> str | None:
        """When the record's newest draft save was audited (ISO), or None."""
        ...

    def referral_dues(self, record_ids: Sequence[str] | None = None) -> dict[str, tuple[str, str]]:
        """(due, next action) of the stored referral states that have both, of these records
        (None: every record): the lead replica's "overdue only" filter."""
        ...

    def audit_events(
        self, flt: AuditFilter, limit: int | None = None, offset: int = 0
    ) -> list[AuditEvent]: ...
    def audit_head(self) -> AuditHead:
        """The newest event, or AuditHead(0, GENESIS) for an empty log."""
        ...

    def audit_events_after(self, seq: int, limit: int | None = None) -> list[AuditEvent]:
        """Events after `seq`, oldest first (the lead replica's catch-up)."""
        ...

    def audit_hash_at(self, seq: int) -> str | None:
        """The seal of event `seq`, or None when there is none (a replica made before a
        restore stops matching)."""
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

    # vault version 2 keys (migration 0007): appended, never changed, except a bundle's
    # state and seal and a remembered login's revocation
    def put_bundle(self, bundle: StoredBundle) -> None:
        """Add a bundle generation, or store a re-sealed blob and new state for an existing
        one (its `created` stays as first stored)."""
        ...

    def add_directory_entry(self, signed: SignedEntry, created: str) -> int:
        """Append a directory row (pending when unsigned); its id."""
        ...

    def add_lead_rotation(self, statement: RotationStatement) -> None:
        """Append a lead signing key rotation statement."""
        ...

    def add_role_key_wraps(self, wraps: Iterable[RoleKeyWrap]) -> None:
        """Append role key wraps (a grant or a rotation)."""
        ...

    def add_object_wraps(self, wraps: Iterable[ObjectWrap]) -> None:
        """Append object key wraps (a write, or a lead's re-wrap on confirmation)."""
        ...

    def add_remembered_login(self, user_id: str, workstation: str, created: str) -> int:
        """Record a login remembered on a workstation; its id."""
        ...

    def revoke_remembered_login(self, login_id: int, revoked: str) -> None:
        """Mark a remembered login revoked (once)."""
        ...

    def add_breakglass_ack(self, event_seq: int, user_id: str, at: str) -> None:
        """Record a user's acknowledgement of the break-glass event `event_seq`."""
        ...

    # vault version 2 sealed records (migration 0008): no plaintext of class C or N
    def insert_sealed_record(self, write: RecordWrite) -> None:
        """Insert a new sealed draft, its summary, its answers object's wraps and tokens."""
        ...

    def update_sealed_draft(self, write: RecordWrite) -> None:
        """Store a re-sealed draft if it is still at `write.base_version`; StaleVersionError
        (nothing written) when another save got there first or it was completed."""
        ...

    def complete_sealed_record(self, write: RecordWrite) -> None:
        """Store the final seal of a draft at `write.base_version` and mark it completed;
        StaleVersionError as for update_sealed_draft."""
        ...

    def put_blind_tokens(
        self, record_id: str, generation: int, tokens: Iterable[IndexToken]
    ) -> None:
        """Replace the record's tokens of clinical key `generation` (a draft's, or add a new
        generation's for a completed record)."""
        ...

    def add_sealed_addendum(
        self, record_id: str, author: str, created: str, body: SealedObject
    ) -> int:
        """Append a sealed addendum and its wraps; its id."""
        ...

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
        ...

    def add_sealed_followup(self, fu: FollowUp, note: SealedObject | None) -> int:
        """Append a follow-up event (its M fields; `fu.note` and `fu.details` are not stored)
        with its sealed note and the note's wraps; its id."""
        ...

    def add_sealed_review(
        self, record_id: str, reviewer: str, created: str, body: SealedObject
    ) -> int:
        """Append a sealed lead review and its wraps; its id."""
        ...

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
        ...


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

    def unreachable_since(self) -> datetime | None:
        """When this store or one of its workers found its database's server unreachable,
        until one reaches it again; None while it answers (always, for a file)."""
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

    def replica(self, key: bytes) -> Replica:
        """A handle on the lead's search replica for this vault under the 32-byte lead data
        key (not opened yet; it may not exist: see Replica)."""
        ...
