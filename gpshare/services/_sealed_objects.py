"""A record's other N objects on a vault-version-2 vault (docs/vault-v2.md §1, §1.2; DESIGN
§10.1, §10.3): the services' side of the record codec (gpshare/services/_sealing.py) for
addenda, letters, follow-up notes, lead reviews (N, each under its own object key wrapped for
`keys.recipients(author)`) and household link reviews (C, under the clinical key).

Only used when `session.keys is not None`. Writers return the sealed objects and the audit
details of their write (the object-key commitment and the SHA-256 of each ciphertext, §10.3);
the service appends the write and its event in one transaction as on v1. Readers open objects
only for one record the acting user may read (record view, letter view/save/print, follow-up
history, review view); the `m_*` readers give lists and the chronology the class M parts only,
without any unwrap.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any

from gpshare.errors import KeyNotHeld
from gpshare.records import Addendum, FollowUp, LetterMeta, Record, Review
from gpshare.services import _sealing
from gpshare.services.keyring import SessionKeys
from gpshare.services.record_keys import LEAD_RECIPIENT
from gpshare.store.port import ReadTx, RecordRow, SealedObject

if TYPE_CHECKING:
    from gpshare.services.session import Session


def ring(session: Session) -> SessionKeys:
    """The session's key ring (only called on a v2 vault)."""
    assert session.keys is not None
    return session.keys


def readers(session: Session) -> list[str]:
    """Recipient ids whose wraps a read asks for: the user's own and the lead key's (the ring
    opens the latter only when it holds the lead key)."""
    return [session.user.username, LEAD_RECIPIENT]


def row_of(record: Record) -> RecordRow:
    """The M row an append-only object of `record` is bound to (record id, author, form and
    form version; append-only objects bind version 0, so the row's version is not used)."""
    return RecordRow(
        record.id, record.clinician, record.status, record.form_id, record.form_version,
        record.current_step, record.created, record.updated, record.completed, 0,
        record.clinician_name,
    )  # fmt: skip


def audit_details(*objects: SealedObject | None) -> dict[str, Any]:
    """What the audit event of a sealed write carries (DESIGN §10.3), per object kind: its id,
    the object-key commitment, the SHA-256 of its ciphertext and whom its key was wrapped for."""
    return {
        "sealed": {
            o.kind: {
                "object_id": o.object_id,
                "commitment": o.commitment.hex(),
                "sha256": hashlib.sha256(o.ct).hexdigest(),
                "wraps": sorted(f"{w.recipient}@{w.recipient_generation}" for w in o.wraps),
            }
            for o in objects
            if o is not None
        }
    }


def opened(session: Session, record: Record) -> Record:
    """`record` (from `session._readable`, which has checked access) with its answers: on a v2
    vault a sealed row is opened here. A seam: once `_readable` returns the opened record on v2
    (the v2records branch) this only re-reads the row (the ring caches the object key), and
    callers may drop it."""
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
    keys, row = ring(session), row_of(record)
    sealed = tx.sealed_addenda(record.id, readers(session))
    return _by_id(tx.addenda(record.id), (_sealing.open_addendum(keys, row, a) for a in sealed))


def followups(session: Session, tx: ReadTx, record: Record) -> list[FollowUp]:
    """The record's follow-up events, oldest first, with their notes and details opened."""
    keys, row = ring(session), row_of(record)
    sealed = {
        s.id: _sealing.open_followup(keys, row, s)
        for s in tx.sealed_followups([record.id], readers(session))
    }
    # The v1 reader returns sealed rows too, without their note: the opened ones replace them.
    events = [sealed.get(f.id, f) for f in tx.followups([record.id])]
    return sorted(events, key=lambda f: (f.at, f.id))


def reviews(session: Session, tx: ReadTx, record: Record) -> list[Review]:
    """The record's lead reviews with their verdicts, comments and learning opened."""
    keys, row = ring(session), row_of(record)
    sealed = tx.sealed_reviews(record.id, readers(session))
    return _by_id(tx.reviews(record.id), (_sealing.open_review(keys, row, r) for r in sealed))


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


# ----- class M only: lists and the chronology (never an unwrap) ---------------------------


def m_addenda(tx: ReadTx, record_ids: Iterable[str]) -> list[Addendum]:
    """Addenda of these records as events (who, when): v1 rows as stored, sealed ones without
    their body, which is read only when the record is opened."""
    found: list[Addendum] = []
    for rid in record_ids:
        found += tx.addenda(rid)
        found += [
            Addendum(a.id, a.record_id, a.author, a.created, "") for a in tx.sealed_addenda(rid, ())
        ]
    return found


def m_reviews(tx: ReadTx, record_ids: Iterable[str]) -> list[Review]:
    """Lead reviews of these records as events: sealed ones have no verdict here (it is N)."""
    found: list[Review] = []
    for rid in record_ids:
        found += tx.reviews(rid)
        found += [
            Review(r.id, r.record_id, r.reviewer, r.created, "", None, None)
            for r in tx.sealed_reviews(rid, ())
        ]
    return found


def household_decisions(session: Session, tx: ReadTx, record_ids: Sequence[str]) -> dict[str, str]:
    """Latest household link decision per other record over reviews made from `record_ids`:
    v1 rows and sealed ones (class C, opened with the clinical key), the newest review last."""
    keys = ring(session)
    latest: dict[str, tuple[int, str]] = {}
    for sealed in tx.household_reviews(record_ids):
        decision, _note = _sealing.open_household_review(keys, sealed)
        latest[sealed.other_record_id] = (sealed.id, decision)
    decided = {other: decision for other, (_id, decision) in latest.items()}
    # A vault written by the v2 services has no v1 rows; any there are (none are made on v2)
    # count only where no sealed review decided.
    for other, decision in tx.household_link_decisions(list(record_ids)).items():
        decided.setdefault(other, decision)
    return decided
