"""The lead's search replica in the lead's session (vault version 2; DESIGN §10.1 class L,
§10.2 "Search"; docs/vault-v2.md §1.1, §1.2 and step 6): `session.search_index`.

`lead-index.db` (gpshare/store/sqlcipher/replica.py) is opened under the *lead data key*,
on the lead's own computer whichever engine holds the records: in the vault folder of an
embedded vault, in the workstation folder of a practice server (the events and the sealed
rows then come from PostgreSQL through the port; the server holds no word or prefix token).
Nothing here depends on the engine, so the catch-up at sign-in works for both. The key is
derived from the newest lead key generation the session holds (`SessionKeys.lead_data_key`):
only a lead who typed their password reaches it, never a remembered login (D2), and a lead key
rotation (a lead left) makes a new key, so the file is rebuilt under a key the leaver never
held.

What fills it: one item per record built here from its M row, its C summary and its N text
(the answers, addenda, follow-up notes and lead reviews, opened with the lead key — on the
lead's machine only). Catch-up reads the audit events after the replica's last sequence
number: every event naming a record re-reads that record (or removes it when it is gone),
except events that change nothing a list shows (views, prints); a settings change that moves
due dates re-reads every record with a referral state. A replica whose seal no longer matches
the chain at its sequence number was made before a restore: it is deleted and rebuilt.

Lists, counts, search and the dashboard use the replica only when it is current
(`current_replica`); otherwise they take the summary path of _sealed_records, and the screens
say "Search index being rebuilt (n %)".
"""

from __future__ import annotations

import contextlib
import re
import threading
import unicodedata
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, TypeVar

from gpshare.errors import Cancelled, KeyNotHeld, ReplicaUnavailable, ServiceError
from gpshare.filters import RecordFilter
from gpshare.records import ChildSummary, Record
from gpshare.services import _sealed_objects, _sealing
from gpshare.services._base import Service
from gpshare.services._records import REFERRAL_SETTING_KEYS, _search_text
from gpshare.services._sealed_records import readers, record_of, ring
from gpshare.store import keys as k
from gpshare.store.port import (
    AuditEvent,
    ReadTx,
    RemovedRecord,
    Replica,
    ReplicaChange,
    ReplicaItem,
    SealedRecord,
)

if TYPE_CHECKING:
    from gpshare.services.session import Session

# Events that name a record but change nothing the replica holds: the record is not re-read.
# Any other event naming a record re-reads it (an action added later is safe by default).
UNCHANGED_BY = frozenset(
    {
        "record_viewed",
        "chronology_viewed",
        "letter_opened",
        "letter_printed",
        "letter_saved",
        "letter_exported",
        "letter_protected_copy",
        "letter_signing_failed",
        "permission_denied",
        "household_link_reviewed",  # class C of the pair, not of either record's row
    }
)
# Statuses of the stored referral states whose due dates the referral settings move.
OPEN_REFERRAL_STATUSES = ("completed", "sent", "acknowledged")
# Events a list's own catch-up applies on the GUI thread before it reads the replica; more
# than this and the list uses the summary path while a background catch-up runs.
INLINE_EVENTS = 500
# Records read per transaction while building items.
ITEM_PAGE = 200

_R = TypeVar("_R")


@dataclass(frozen=True)
class IndexStatus:
    """Where the lead's search index stands, for the screens."""

    state: str  # current | behind | missing | rebuilding | no_key | not_lead | v1
    done: int = 0
    total: int = 0

    @property
    def usable(self) -> bool:
        """True when lists, search and the dashboard read the replica."""
        return self.state == "current"

    @property
    def percent(self) -> int:
        return int(100 * self.done / self.total) if self.total else 0

    def message(self) -> str:
        """One line for the lead's screens; empty when the index is in use."""
        if self.state == "rebuilding":
            return f"Search index being rebuilt ({self.percent} %): search finds names, NHS numbers and references until it is ready."
        if self.state in ("missing", "behind"):
            return "Search index being rebuilt: search finds names, NHS numbers and references until it is ready."
        if self.state == "no_key":
            return (
                "Search of narratives needs the lead key: you signed in with a remembered login. "
                "Lock and sign in with your password to search narratives."
            )
        return ""


class IndexProgress:
    """A rebuild's progress, shared by a session and its worker sessions (a rebuild runs in a
    worker; the GUI thread's lists read whether it is running)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.running = False
        self.done = 0
        self.total = 0

    def start(self, total: int) -> None:
        with self._lock:
            self.running, self.done, self.total = True, 0, total

    def update(self, done: int, total: int) -> None:
        with self._lock:
            self.done, self.total = done, total

    def stop(self) -> None:
        with self._lock:
            self.running = False

    def snapshot(self) -> tuple[bool, int, int]:
        with self._lock:
            return self.running, self.done, self.total


class _Restored(Exception):
    """The replica was made before a restore (its seal is not the chain's at its seq)."""


# ----- items: M + C + N of one record (the lead's machine only) ---------------------------

# The three readers of a record's other N objects, each returning objects with text fields.
_Readers = Sequence[Callable[[], Sequence[object]]]


def _narrative(found: _Readers) -> str:
    """The record's other N text: addenda, follow-up notes and lead reviews (`found`, one
    reader each), each opened with a key this session holds (a kind of object it holds no key
    for is left out)."""
    texts: list[str] = []
    for read in found:
        try:
            objects = read()
        except KeyNotHeld:
            continue
        for obj in objects:
            texts += [
                str(getattr(obj, name))
                for name in ("body", "note", "comments", "learning")
                if getattr(obj, name, None)
            ]
    return "\n".join(texts)


def _item(
    session: Session,
    sealed: SealedRecord,
    dues: dict[str, tuple[str, str]],
    narrative: Callable[[Record], _Readers],
) -> ReplicaItem:
    """The replica item of a record read (`narrative`: the readers of its other N objects)."""
    keys = ring(session)
    due, action = dues.get(sealed.row.id, (None, None))
    try:
        record = _sealing.open_record(keys, sealed)
    except (KeyNotHeld, k.EnvelopeError):
        row = sealed.row
        record = Record(
            row.id, row.clinician, row.status, row.form_id, row.form_version, {},
            row.current_step, None, row.created, row.updated, row.completed,
            ChildSummary("", "", None, None), row.clinician_name,
        )  # fmt: skip
        if sealed.summary is not None:
            with contextlib.suppress(KeyNotHeld):
                record = record_of(row, _sealing.open_summary(keys, sealed.summary, row))
        return ReplicaItem.from_record(record, due=due, action=action)
    return ReplicaItem.from_record(
        record,
        search_text=_search_text(record.answers),
        narrative=_narrative(narrative(record)),
        due=due,
        action=action,
    )


def item_of(
    session: Session, tx: ReadTx, record_id: str, dues: dict[str, tuple[str, str]]
) -> ReplicaItem | None:
    """One record's replica item (None when it is gone), read on its own (about eight
    queries). Its answers are opened with the lead key (or, for a clinician's in-memory
    search, their own key); a record this session holds no key for (a draft sealed for its
    author only) is listed from M and C without text."""
    sealed = tx.sealed_record(record_id, readers(session))
    if sealed is None:
        return None

    def narrative(record: Record) -> _Readers:
        return [
            lambda: _sealed_objects.addenda(session, tx, record),
            lambda: _sealed_objects.followups(session, tx, record),
            lambda: _sealed_objects.reviews(session, tx, record),
        ]

    return _item(session, sealed, dues, narrative)


def _group(rows: Iterable[_R], key: Callable[[_R], str]) -> dict[str, list[_R]]:
    found: dict[str, list[_R]] = {}
    for row in rows:
        found.setdefault(key(row), []).append(row)
    return found


def page_items(
    session: Session, tx: ReadTx, record_ids: Sequence[str]
) -> list[tuple[str, ReplicaItem | None]]:
    """The items of a page of records (None for one that is gone), the same as `item_of` of
    each, read with one query per table for the whole page instead of about eight per record
    (each a round trip on a practice server). Only the v1 addenda and reviews of an embedded
    vault upgraded from version 1 are read per record, as a practice server holds none."""
    who = readers(session)
    dues = tx.referral_dues(record_ids)
    records = tx.sealed_records(record_ids, who)
    present = list(records)
    addenda = tx.sealed_addenda_of(present, who) if present else {}
    reviews = tx.sealed_reviews_of(present, who) if present else {}
    followups = _group(tx.sealed_followups(present, who) if present else [], lambda f: f.record_id)
    v1_followups = _group(tx.followups(present) if present else [], lambda f: f.record_id)

    def narrative(record: Record) -> _Readers:
        rid = record.id
        return [
            lambda: _sealed_objects.open_addenda(
                session, record, tx.addenda(rid), addenda.get(rid, [])
            ),
            lambda: _sealed_objects.open_followups(
                session, record, v1_followups.get(rid, []), followups.get(rid, [])
            ),
            lambda: _sealed_objects.open_reviews(
                session, record, tx.reviews(rid), reviews.get(rid, [])
            ),
        ]

    return [
        (rid, _item(session, records[rid], dues, narrative) if rid in records else None)
        for rid in record_ids
    ]


def items(
    session: Session, record_ids: Sequence[str], cancelled: Callable[[], bool] | None = None
) -> Iterator[ReplicaItem | RemovedRecord]:
    """Items of these records in order (RemovedRecord for one that is gone), a page per read
    transaction, each page read with one query per table (page_items)."""
    for first in range(0, len(record_ids), ITEM_PAGE):
        if cancelled and cancelled():
            raise Cancelled("The search index rebuild was cancelled; the old index was kept.")
        page = list(record_ids[first : first + ITEM_PAGE])
        with session._read() as tx:
            built = page_items(session, tx, page)
        for rid, item in built:
            yield item if item is not None else RemovedRecord(rid)


def touched(session: Session, events: Sequence[AuditEvent]) -> list[str]:
    """The records the events changed, in order of first mention: every record an event names
    (except UNCHANGED_BY actions) and, after a referral settings change, every record with an
    open referral (its due date may have moved)."""
    ids: dict[str, None] = {}
    for event in events:
        if event.record_id and event.action not in UNCHANGED_BY:
            ids[event.record_id] = None
        keys = event.details.get("keys") if event.action == "settings_changed" else None
        if isinstance(keys, list) and REFERRAL_SETTING_KEYS & set(keys):
            with session._read() as tx:
                open_ones = tx.completed_records_light(statuses=OPEN_REFERRAL_STATUSES)
                dues = tx.referral_dues()
            ids.update(dict.fromkeys(r.id for r in open_ones))
            ids.update(dict.fromkeys(dues))
    return list(ids)


# ----- the replica handle of a session ------------------------------------------------------


def _handle(session: Session) -> Replica:
    """This session's replica handle (one per thread: a worker session has its own), under the
    lead data key; KeyNotHeld without the lead key."""
    if session.keys is None:
        raise ServiceError(
            "The lead's search index belongs to vault version 2; on this version-1 vault the "
            "search index is inside records.db and needs no rebuilding."
        )
    key = ring(session).lead_data_key()
    handle = session._replica
    if handle is None or session._replica_key != key:
        if handle is not None:
            handle.close()
        handle = session.store.replica(key)
        session._replica, session._replica_key = handle, key
    return handle


def _check_chain(tx: ReadTx, replica: Replica) -> None:
    last = replica.last_head()
    if last.seq and tx.audit_hash_at(last.seq) != last.digest:
        raise _Restored()


def _apply_pending(session: Session, replica: Replica, limit: int | None) -> int | None:
    """Apply the events after the replica's seq; the number of records re-read, or None when
    more than `limit` events wait (left for a background catch-up). _Restored when the
    replica no longer lies on the chain."""
    with session._read() as tx:
        _check_chain(tx, replica)
        last = replica.last_seq()
        events = tx.audit_events_after(last, None if limit is None else limit + 1)
        if limit is not None and len(events) > limit:
            return None
        head = tx.audit_head()
    if not events:
        return 0
    ids = touched(session, events)
    changes: list[ReplicaChange] = list(items(session, ids))
    replica.apply(changes, head)
    return len(ids)


def current_replica(session: Session) -> Replica | None:
    """The replica, caught up, when this lead session can use it for lists, search and the
    dashboard; None (the caller takes the summary path) when the session holds no lead key,
    a rebuild is running, the file is missing, unreadable or made before a restore (deleted
    here, for the rebuild), or too many events wait for a catch-up on this thread."""
    if session.keys is None or session.user.role != "lead" or not session.keys.holds_lead_key:
        return None
    if session._index_progress.snapshot()[0]:
        return None
    try:
        replica = _handle(session)
        if _apply_pending(session, replica, INLINE_EVENTS) is None:
            return None
        return replica
    except _Restored:
        replica.delete()
        return None
    except (ReplicaUnavailable, KeyNotHeld):
        return None


def list_ids(replica: Replica, flt: RecordFilter, limit: int | None, offset: int) -> list[str]:
    """The ids of one page of `flt`, from the replica (the rows are then read from M + C)."""
    return [r.id for r in replica.list_records(flt, limit, offset)]


# ----- clinicians: their own records searched in memory (DESIGN §10.2) ---------------------

_WORD = re.compile(r"[^\W_]+")


def words(text: str) -> list[str]:
    """`text` cut into words as records_fts tokenises it (unicode61, diacritics removed,
    case folded), so an in-memory search matches what the v1 index and the replica match."""
    folded = "".join(
        ch for ch in unicodedata.normalize("NFKD", text) if not unicodedata.combining(ch)
    )
    return _WORD.findall(folded.casefold())


def _phrase_in(have: Sequence[str], phrase: Sequence[str]) -> bool:
    n = len(phrase)
    return any(
        list(have[i : i + n - 1]) == list(phrase[:-1]) and have[i + n - 1].startswith(phrase[-1])
        for i in range(len(have) - n + 1)
    )


def text_matches(columns: Sequence[Sequence[str]], query: str) -> bool:
    """True when every whitespace-separated term of `query` is found as records_fts finds it
    (repositories.fts_query: each term a quoted prefix phrase) in one of the `columns`."""
    for term in query.split():
        phrase = words(term)
        if phrase and not any(_phrase_in(column, phrase) for column in columns):
            return False
    return True


def own_search(session: Session, rows: Sequence[Record], query: str) -> set[str]:
    """Which of the acting clinician's own `rows` match `query`, searched in memory: each
    record's words come from its answers, addenda, follow-up notes and reviews, opened with the
    user's own key on the first search of the session and kept until lock; records named by
    an audit event since are read again."""
    cache = session._own_index
    with session._read() as tx:
        head = tx.audit_head()
        since = tx.audit_events_after(session._own_index_seq) if session._own_index_seq else []
    for rid in touched(session, since):
        cache.pop(rid, None)
    missing = [r.id for r in rows if r.id not in cache]
    for item in items(session, missing):
        if isinstance(item, ReplicaItem):
            cache[item.id] = (words(item.search_text), words(item.narrative))
    session._own_index_seq = head.seq
    return {r.id for r in rows if r.id in cache and text_matches(cache[r.id], query)}


def close(session: Session) -> None:
    """Close this session's handle (lock, close): the key goes with the session's keys."""
    if session._replica is not None:
        session._replica.close()
    session._replica, session._replica_key = None, None
    session._own_index.clear()
    session._own_index_seq = 0


class SearchIndexService(Service):
    """The lead's search index (`session.search_index`, vault version 2, leads only)."""

    def status(self) -> IndexStatus:
        """Where the index stands: current (lists use it), behind, missing, being rebuilt
        (with progress), or not usable in this session (no lead key; vault version 1)."""
        self._require("search_index")
        session = self._session
        if session.keys is None:
            return IndexStatus("v1")
        if not session.keys.holds_lead_key:
            return IndexStatus("no_key")
        running, done, total = session._index_progress.snapshot()
        if running:
            return IndexStatus("rebuilding", done, total)
        try:
            replica = _handle(session)
            with session._read() as tx:
                _check_chain(tx, replica)
                waiting = tx.audit_events_after(replica.last_seq(), 1)
        except (ReplicaUnavailable, _Restored):
            return IndexStatus("missing")
        return IndexStatus("behind" if waiting else "current")

    def catch_up(self) -> int:
        """Apply the audit events after the index's last one; the number of records re-read.
        ReplicaUnavailable when it must be rebuilt first (missing, unreadable, or made
        before a restore — that file is deleted)."""
        self._require("search_index")
        replica = _handle(self._session)
        try:
            found = _apply_pending(self._session, replica, None)
        except _Restored:
            replica.delete()
            raise ReplicaUnavailable(
                "The lead's search index was made before a restore; it has been removed. "
                "Rebuild it from the records.",
                "restored",
            ) from None
        assert found is not None
        return found

    def rebuild(
        self,
        progress: Callable[[int, int], None] | None = None,
        cancelled: Callable[[], bool] | None = None,
    ) -> int:
        """Build the index from every record beside the old one and swap it in (run it in a
        worker session: it opens every record's N with the lead key); the number of records.
        A failure or cancel leaves the old file, or none."""
        self._require("search_index")
        session = self._session
        replica = _handle(session)
        with session._read() as tx:
            head = tx.audit_head()
            ids = [r.id for r in tx.list_records(RecordFilter(), None, 0, light=True)]
        shared = session._index_progress
        shared.start(len(ids))

        def report(done: int, total: int) -> None:
            shared.update(done, total)
            if progress:
                progress(done, total)

        def built() -> Iterator[ReplicaItem]:
            for item in items(session, ids, cancelled):
                if isinstance(item, ReplicaItem):
                    yield item

        try:
            return replica.rebuild(
                built(), head, total=len(ids), progress=report, cancelled=cancelled
            )
        finally:
            shared.stop()

    def prepare(
        self,
        progress: Callable[[int, int], None] | None = None,
        cancelled: Callable[[], bool] | None = None,
    ) -> int:
        """What a lead's session runs in the background after unlock: catch up, or rebuild
        when the index is missing, unreadable or made before a restore; records written."""
        self._require("search_index")
        try:
            return self.catch_up()
        except ReplicaUnavailable:
            return self.rebuild(progress, cancelled)
