"""A record's other N objects on a vault-version-2 vault (docs/vault-v2.md §1, §1.2; DESIGN
§10.1, §10.3): the services' side of the record codec (gpshare/services/_sealing.py) for
addenda, letters, follow-up notes, lead reviews (N, each under its own object key wrapped for
`keys.recipients(author)`) and household link reviews (C, under the clinical key).

Only used when `session.keys is not None`. Writers return the sealed objects and the audit
details of their write (the object-key commitment and the SHA-256 of each ciphertext, §10.3);
the service appends the write and its event in one transaction as on v1. Readers open objects
only for one record the acting user may read (record view, letter view/save/print, follow-up
history, review view); lists and the chronology read the class M parts only
(_sealed_records.chronology), without any unwrap.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from gpshare.errors import KeyNotHeld
from gpshare.records import Addendum, FollowUp, LetterMeta, Record, Review
from gpshare.services import _sealing
from gpshare.services._sealed_records import readers, ring
from gpshare.store import sealed_rows
from gpshare.store.port import (
    ReadTx,
    RecordRow,
    SealedAddendum,
    SealedFollowUp,
    SealedObject,
    SealedReview,
)

if TYPE_CHECKING:
    from gpshare.services.session import Session


def row_of(record: Record) -> RecordRow:
    """The M row an append-only object of `record` is bound to (record id, author, form and
    form version; append-only objects bind version 0, so the row's version is not used)."""
    return RecordRow(
        record.id, record.clinician, record.status, record.form_id, record.form_version,
        record.current_step, record.created, record.updated, record.completed, 0,
        record.clinician_name,
    )  # fmt: skip


# Which row and column each object kind is stored in (gpshare/store/sealed_rows.py names rows
# by their object id; a letter's unsigned copy shares the signed copy's row).
_STORED_IN = {
    _sealing.ADDENDUM: (sealed_rows.ADDENDA, "body_ct"),
    _sealing.LETTER: (sealed_rows.LETTERS, "pdf_ct"),
    _sealing.LETTER_UNSIGNED: (sealed_rows.LETTERS, "unsigned_ct"),
    _sealing.FOLLOWUP_NOTE: (sealed_rows.FOLLOWUPS, "note_ct"),
    _sealing.REVIEW: (sealed_rows.REVIEWS, "body_ct"),
}


def audit_details(*objects: SealedObject | None) -> dict[str, Any]:
    """What the audit event of a sealed write carries (DESIGN §10.3, one shape with records:
    gpshare/store/sealed_rows.py): the row the objects were written to, with the SHA-256 of
    each ciphertext, each object-key commitment and whom the keys were wrapped for. The
    objects of one call share one row (a letter and its unsigned copy)."""
    present = [o for o in objects if o is not None]
    if not present:
        return {}
    table = _STORED_IN[present[0].kind][0]
    cts, commitments, wraps = {}, {}, set()
    for o in present:
        column = _STORED_IN[o.kind][1]
        cts[column] = o.ct
        commitments[column] = o.commitment
        wraps |= {f"{w.recipient}@{w.recipient_generation}" for w in o.wraps}
    entry = sealed_rows.row_entry(table, present[0].object_id, 0, cts, commitments, wraps)
    return sealed_rows.sealed_details(entry)


def opened(session: Session, record: Record) -> Record:
    """A listed (light) `record` whose reader was checked by the caller, opened with its answers:
    on a v2 vault a sealed row is opened here (one unwrap, cached until lock)."""
    if session.keys is None:
        return record
    with session._read() as tx:
        sealed = tx.sealed_record(record.id, readers(session))
    if sealed is None or sealed.answers is None:
        return record  # a row written by the v1 path
    return _sealing.open_record(ring(session), sealed)


def for_export(session: Session, record: Record) -> Record | None:
    """A listed record opened for a CSV export with narratives (the acting lead checked by the
    caller), or None when this session holds no key for its answers (a draft its author
    sealed for themself only, before their key was confirmed)."""
    try:
        return opened(session, record)
    except KeyNotHeld:
        return None


# ----- readers for one record the user may read (unwraps) --------------------------------


def _by_id(v1: Iterable[Any], opened: Iterable[Any]) -> list[Any]:
    """v1 rows as stored and sealed rows opened, in the order they were added."""
    return sorted([*v1, *opened], key=lambda item: item.id)


def addenda(session: Session, tx: ReadTx, record: Record) -> list[Addendum]:
    """The record's addenda with their bodies: v1 rows as stored, sealed ones opened."""
    sealed = tx.sealed_addenda(record.id, readers(session))
    return open_addenda(session, record, tx.addenda(record.id), sealed)


def open_addenda(
    session: Session, record: Record, v1: Iterable[Addendum], sealed: Iterable[SealedAddendum]
) -> list[Addendum]:
    """`addenda` from rows already read (a page of records read at once: search_index)."""
    keys, row = ring(session), row_of(record)
    return _by_id(v1, (_sealing.open_addendum(keys, row, a) for a in sealed))


def followups(session: Session, tx: ReadTx, record: Record) -> list[FollowUp]:
    """The record's follow-up events, oldest first, with their notes and details opened."""
    sealed = tx.sealed_followups([record.id], readers(session))
    return open_followups(session, record, tx.followups([record.id]), sealed)


def open_followups(
    session: Session, record: Record, v1: Iterable[FollowUp], sealed: Iterable[SealedFollowUp]
) -> list[FollowUp]:
    """`followups` from rows already read (`v1`: the v1 reader's rows of the record)."""
    keys, row = ring(session), row_of(record)
    opened = {s.id: _sealing.open_followup(keys, row, s) for s in sealed}
    # The v1 reader returns sealed rows too, without their note: the opened ones replace them.
    events = [opened.get(f.id, f) for f in v1]
    return sorted(events, key=lambda f: (f.at, f.id))


def reviews(session: Session, tx: ReadTx, record: Record) -> list[Review]:
    """The record's lead reviews with their verdicts, comments and learning opened."""
    sealed = tx.sealed_reviews(record.id, readers(session))
    return open_reviews(session, record, tx.reviews(record.id), sealed)


def open_reviews(
    session: Session, record: Record, v1: Iterable[Review], sealed: Iterable[SealedReview]
) -> list[Review]:
    """`reviews` from rows already read (a page of records read at once: search_index)."""
    keys, row = ring(session), row_of(record)
    return _by_id(v1, (_sealing.open_review(keys, row, r) for r in sealed))


def letter_pdfs(
    session: Session, tx: ReadTx, record: Record, meta: LetterMeta
) -> tuple[bytes, bytes | None] | None:
    """A sealed letter's (signed PDF, unsigned PDF or None when none was kept), opened; None
    when the letter is a v1 row (its bytes are read as stored)."""
    for letter in tx.sealed_letters(record.id, readers(session)):
        if letter.meta.id == meta.id:
            _meta, pdf, kept = _sealing.open_letter(ring(session), row_of(record), letter)
            return pdf, kept
    return None
