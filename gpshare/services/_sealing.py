"""The record codec of vault version 2 (DESIGN §10.1; docs/vault-v2.md §1, §1.3).

Seals a record, and its addenda, letters, follow-up notes, lead reviews and household link
reviews, into the storage port's shapes, and opens them again. Pure: no store, no Qt; the only
keys it sees come through `RecordKeys` (the session's key ring). What goes where:
- N, each under its own object key wrapped for `keys.recipients(author)`: a record's answers
  together with the outcome's prompts, letter_required and letter title; an addendum's body;
  a letter's signed and unsigned PDF; a follow-up's note and details; a review's verdict,
  comments and learning.
- C, under HKDF(clinical_g, "summary"): the record summary (child's name, DOB and NHS number,
  date, categories, pathway, consent basis, SNOMED codes, decision, review date, author, and
  the values its blind indexes were made from), and a household review's decision and note.
- Blind tokens (C): nhs, family|dob, given|dob, one family|given per parent or carer, and
  postcode|house.
Readers take record id, version, author and form from the row asked for, never from inside a
ciphertext.
"""

from __future__ import annotations

import json
import re
import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, cast

from gpshare.errors import KeyNotHeld
from gpshare.nhs_number import normalise as normalise_nhs
from gpshare.records import Addendum, ChildSummary, FollowUp, LetterMeta, Record, Review
from gpshare.services.record_keys import RecordKeys
from gpshare.store import keys as k
from gpshare.store.keys.envelopes import HOUSEHOLD_REVIEW_KIND
from gpshare.store.port import (
    IndexToken,
    ObjectWrap,
    RecordRow,
    RecordWrite,
    SealedAddendum,
    SealedFollowUp,
    SealedHouseholdReview,
    SealedLetter,
    SealedObject,
    SealedRecord,
    SealedReview,
    StoredSummary,
    TokenMatch,
    TokenType,
)

# Object kinds: bound into each object's AAD and each wrap's `info`.
ANSWERS = "answers"
ADDENDUM = "addendum"
LETTER = "letter"
LETTER_UNSIGNED = "letter-unsigned"
FOLLOWUP_NOTE = "followup-note"
REVIEW = "review"
# Outcome keys kept in the C summary, because lists, filters and the dashboard show them; the
# rest of the outcome (prompts, letter_required, letter_title) is N, inside the answers object.
SUMMARY_OUTCOME = ("pathway", "consent_basis", "snomed_codes")
# Append-only objects are never re-sealed: their AAD carries version 0.
APPEND_ONLY_VERSION = 0

_TYPES = {t.tag: t for t in k.IndexType}
_POSTCODE = re.compile(r"\b([A-Z]{1,2}[0-9][A-Z0-9]?)\s*([0-9][A-Z]{2})\b", re.IGNORECASE)
_HOUSE_NUMBER = re.compile(r"\b([0-9]+[A-Z]?)\b", re.IGNORECASE)


@dataclass(frozen=True)
class RecordSummary:
    """A record's C summary, decrypted: what lists, chronology and lookups show without
    opening the record's answers."""

    record_id: str
    version: int
    child: ChildSummary
    date: str
    categories: tuple[str, ...]
    decision: str | None
    review_date: str | None
    author: str
    outcome: dict[str, Any] | None  # pathway, consent basis, SNOMED codes (completed only)
    identity: k.IndexedIdentity = field(default_factory=k.IndexedIdentity)

    @property
    def pathway(self) -> str | None:
        """The completed record's pathway, or None for a draft."""
        return (self.outcome or {}).get("pathway")

    @property
    def consent_basis(self) -> str | None:
        """The completed record's consent basis, or None for a draft."""
        return (self.outcome or {}).get("consent_basis")


# ----- where identity, carers and the address live in the answers -------------------------


def _text(value: Any) -> str:
    return value.strip() if isinstance(value, str) else ""


def _split_name(name: str) -> tuple[str, str]:
    """(given, family) of a full name as typed: the last word is the family name. A one-word
    name has no given name, so it yields no family|given token."""
    words = name.split()
    if len(words) < 2:
        return "", (words[0] if words else "")
    return " ".join(words[:-1]), words[-1]


def _postcode(answers: Mapping[str, Any]) -> str:
    """The `postcode` answer, else a UK-postcode-shaped part of the address."""
    typed = _text(answers.get("postcode"))
    if typed:
        return typed
    found = _POSTCODE.search(_text(answers.get("address")))
    return f"{found[1]} {found[2]}" if found else ""


def _house(address: str) -> str:
    """The house number (the first number of the address outside its postcode, "14a"), else
    the first part of the address when it has no digits (a house name, "Rose Cottage")."""
    without_postcode = _POSTCODE.sub(" ", address)
    number = _HOUSE_NUMBER.search(without_postcode)
    if number:
        return number[1]
    first = re.split(r"[,\n]", without_postcode, maxsplit=1)[0].strip()
    return first if first and not any(ch.isdigit() for ch in first) else ""


def _draft_child(answers: Mapping[str, Any]) -> ChildSummary:
    """The child of a draft with no summary, from its answers (as the summary would hold it)."""
    identity = identity_of(answers)
    nhs = normalise_nhs(identity.nhs) if identity.nhs else None
    dob = identity.dob if isinstance(identity.dob, str) else None
    return ChildSummary(identity.given, identity.family, nhs, dob)


def identity_of(answers: Mapping[str, Any]) -> k.IndexedIdentity:
    """What a record's blind indexes are made from: the child (child_given_name,
    child_family_name, date_of_birth, nhs_number), each parent or carer's name
    (parents_carers[].name) and the child's address (postcode, or the address's own, and the
    house number or name from address)."""
    carers: list[tuple[str, str]] = []
    people = answers.get("parents_carers")
    if isinstance(people, list):
        for person in people:
            if isinstance(person, dict) and _text(person.get("name")):
                carers.append(_split_name(_text(person["name"])))
    return k.IndexedIdentity(
        given=_text(answers.get("child_given_name")),
        family=_text(answers.get("child_family_name")),
        dob=_text(answers.get("date_of_birth")) or None,
        nhs=_text(answers.get("nhs_number")) or None,
        carers=tuple(carers),
        postcode=_postcode(answers),
        house_number=_house(_text(answers.get("address"))),
    )


# ----- keys, wraps and tokens ------------------------------------------------------------


def _clinical(keys: RecordKeys, generation: int) -> k.ClinicalKey:
    for key in keys.clinical_generations():
        if key.generation == generation:
            return key
    raise KeyNotHeld(
        f"This session does not hold clinical key generation {generation}, which the record "
        "summary was written under. Ask a safeguarding lead to confirm your key."
    )


def _wraps(
    keys: RecordKeys, kind: str, object_id: str, key: k.ObjectKey, author: str, created: str
) -> tuple[ObjectWrap, ...]:
    """The new object key wrapped for each recipient the session has verified."""
    wraps = []
    for recipient in keys.recipients(author):
        binding = k.WrapBinding.for_object(
            keys.vault_id, kind, object_id, recipient.id, recipient.generation
        )
        wrap = k.wrap_key(key, recipient.public_key, binding)
        wraps.append(ObjectWrap(kind, object_id, recipient.id, recipient.generation, wrap, created))
    if not wraps:
        raise KeyNotHeld(
            "Nothing was saved: there is no confirmed key to seal it for. Ask a safeguarding "
            "lead to confirm your key first."
        )
    return tuple(wraps)


def _open_key(keys: RecordKeys, sealed: SealedObject) -> k.ObjectKey:
    rows = [(w.recipient, w.recipient_generation, w.wrap) for w in sealed.wraps]
    return keys.open_object_key(sealed.kind, sealed.object_id, sealed.commitment, rows)


def port_token(token: k.BlindToken) -> IndexToken:
    """A keys.blind token in the port's shape."""
    return IndexToken(cast(TokenType, token.type.tag), token.generation, token.token)


def blind_token(token: IndexToken) -> k.BlindToken:
    """A stored token back as keys.blind's type."""
    return k.BlindToken(_TYPES[token.type], token.generation, token.token)


def lookup_tokens(keys: RecordKeys, identity: k.IndexedIdentity) -> list[IndexToken]:
    """Tokens to find a child's other records by, under every live clinical generation."""
    live = keys.clinical_generations()
    return [port_token(t) for t in k.lookup_tokens(live, keys.vault_id, identity)]


def record_tokens(keys: RecordKeys, answers: Mapping[str, Any]) -> list[IndexToken]:
    """A record's tokens under the newest clinical generation (put_blind_tokens; also to
    index a completed record under a new generation after a rotation)."""
    tokens = k.record_tokens(keys.clinical(), keys.vault_id, identity_of(answers))
    return [port_token(t) for t in tokens]


# ----- records ---------------------------------------------------------------------------


def _summary_plaintext(record: Record, identity: k.IndexedIdentity) -> bytes:
    categories = record.answers.get("categories")
    decision, review_date = record.answers.get("decision"), record.answers.get("review_date")
    outcome = record.outcome
    data = {
        "child": [
            record.child.given_name, record.child.family_name, record.child.nhs_number,
            record.child.date_of_birth,
        ],
        "date": (record.completed or record.created)[:10],
        "categories": [c for c in categories if isinstance(c, str)]
        if isinstance(categories, list)
        else [],
        "decision": decision if isinstance(decision, str) else None,
        "review_date": review_date if isinstance(review_date, str) else None,
        "author": record.clinician,
        "outcome": None
        if outcome is None
        else {key: outcome[key] for key in SUMMARY_OUTCOME if key in outcome},
        "index": {
            "given": identity.given, "family": identity.family,
            "dob": identity.dob if isinstance(identity.dob, str) else None,
            "nhs": identity.nhs, "carers": [list(c) for c in identity.carers],
            "postcode": identity.postcode, "house": identity.house_number,
        },
    }  # fmt: skip
    return json.dumps(data, ensure_ascii=False, sort_keys=True).encode("utf-8")


def _answers_plaintext(record: Record) -> bytes:
    outcome = record.outcome
    rest = (
        None
        if outcome is None
        else {key: value for key, value in outcome.items() if key not in SUMMARY_OUTCOME}
    )
    data = {"answers": record.answers, "outcome": rest}
    return json.dumps(data, ensure_ascii=False, sort_keys=True).encode("utf-8")


def _answers_binding(keys: RecordKeys, row: RecordRow) -> k.ObjectBinding:
    return k.ObjectBinding(
        keys.vault_id, row.id, ANSWERS, row.id, row.version, row.clinician, row.form_id,
        row.form_version,
    )  # fmt: skip


def seal_record(
    keys: RecordKeys, record: Record, version: int, object_key: k.ObjectKey | None = None
) -> tuple[RecordWrite, k.ObjectKey]:
    """A sealed save of `record` read at `version` (0 when new): the write (at version + 1)
    and the answers' object key, to pass back on the next save of the same record. A new key
    is made (and wrapped for `keys.recipients(author)`) only when none is given.
    A draft by an author who holds no clinical key yet (unconfirmed) is sealed with no summary
    and no tokens; completing needs the key (KeyNotHeld)."""
    try:
        clinical: k.ClinicalKey | None = keys.clinical()
    except KeyNotHeld:
        if record.status != "draft":
            raise
        clinical = None
    row = RecordRow(
        record.id, record.clinician, record.status, record.form_id, record.form_version,
        record.current_step, record.created, record.updated, record.completed, version + 1,
        record.clinician_name,
    )  # fmt: skip
    identity = identity_of(record.answers)
    key = object_key or k.ObjectKey.generate()
    wraps = (
        () if object_key else _wraps(keys, ANSWERS, record.id, key, record.clinician, row.updated)
    )
    answers = SealedObject(
        ANSWERS,
        record.id,
        k.seal_object(key, _answers_plaintext(record), _answers_binding(keys, row)),
        k.commitment(keys.vault_id, record.id, key),
        wraps,
    )
    if clinical is None:
        return RecordWrite(row, version, None, answers, ()), key
    summary_ct = k.seal_summary(
        clinical,
        _summary_plaintext(record, identity),
        k.SummaryBinding(keys.vault_id, record.id, row.version),
    )
    tokens = tuple(port_token(t) for t in k.record_tokens(clinical, keys.vault_id, identity))
    summary = StoredSummary(record.id, row.version, clinical.generation, summary_ct)
    return RecordWrite(row, version, summary, answers, tokens), key


def _summary_from(plaintext: bytes, record_id: str, version: int) -> RecordSummary:
    data = json.loads(plaintext)
    index = data["index"]
    given, family, nhs, dob = data["child"]
    return RecordSummary(
        record_id=record_id,
        version=version,
        child=ChildSummary(given, family, nhs, dob),
        date=data["date"],
        categories=tuple(data["categories"]),
        decision=data["decision"],
        review_date=data["review_date"],
        author=data["author"],
        outcome=data["outcome"],
        identity=k.IndexedIdentity(
            given=index["given"], family=index["family"], dob=index["dob"], nhs=index["nhs"],
            carers=tuple((g, f) for g, f in index["carers"]), postcode=index["postcode"],
            house_number=index["house"],
        ),
    )  # fmt: skip


def open_summary(
    keys: RecordKeys, summary: StoredSummary, row: RecordRow | None = None
) -> RecordSummary:
    """Decrypt a record's summary, bound to the record id and version of `row` when given
    (else those of the summary row asked for); EnvelopeError if it was moved or altered."""
    record_id, version = (row.id, row.version) if row else (summary.record_id, summary.version)
    clinical = _clinical(keys, summary.generation)
    plaintext = k.open_summary(
        clinical, summary.ct, k.SummaryBinding(keys.vault_id, record_id, version)
    )
    return _summary_from(plaintext, record_id, version)


def open_record(keys: RecordKeys, sealed: SealedRecord) -> Record:
    """The record as the services know it: M from the row, C from its summary, N from its
    answers object (unwrapped with one of the wraps read for this session)."""
    row = sealed.row
    if sealed.answers is None or (sealed.summary is None and row.status != "draft"):
        raise k.EnvelopeError(f"record {row.id} is not sealed (a vault version 1 row)")
    # A draft by an author who held no clinical key has no summary: its child comes from the
    # answers themselves (the author holds their object key).
    summary = None if sealed.summary is None else open_summary(keys, sealed.summary, row)
    if sealed.answers.kind != ANSWERS or sealed.answers.object_id != row.id:
        raise k.EnvelopeError(f"the answers object read for record {row.id} is another object")
    key = _open_key(keys, sealed.answers)
    data = json.loads(k.open_object(key, sealed.answers.ct, _answers_binding(keys, row)))
    outcome = None
    summary_outcome = summary.outcome if summary else None
    if summary_outcome is not None or data["outcome"] is not None:
        outcome = {**(data["outcome"] or {}), **(summary_outcome or {})}
    return Record(
        id=row.id, clinician=row.clinician, status=row.status, form_id=row.form_id,
        form_version=row.form_version, answers=data["answers"], current_step=row.current_step,
        outcome=outcome, created=row.created, updated=row.updated, completed=row.completed,
        child=summary.child if summary else _draft_child(data["answers"]),
        clinician_name=row.clinician_name,
    )  # fmt: skip


def confirm_match(keys: RecordKeys, match: TokenMatch) -> RecordSummary | None:
    """The matched record's summary when its own blind-index values yield the token it was
    found by (a confirmed match), else None (a token moved to another record, or a collision).
    The summary is bound to the matched row's id and version."""
    summary = open_summary(keys, match.summary, match.row)
    try:
        clinical = _clinical(keys, match.found_by.generation)
    except KeyNotHeld:
        return None
    found_by = blind_token(match.found_by)
    return summary if k.confirms(clinical, keys.vault_id, summary.identity, found_by) else None


# ----- addenda, letters, follow-up notes, reviews -----------------------------------------


def new_object_id() -> str:
    """A random id for an N object, made before its row exists so its AAD and wraps can name
    it (row ids are assigned by the engine on insert)."""
    return secrets.token_hex(16)


def _object_binding(
    keys: RecordKeys, record: RecordRow, kind: str, object_id: str
) -> k.ObjectBinding:
    return k.ObjectBinding(
        keys.vault_id, record.id, kind, object_id, APPEND_ONLY_VERSION, record.clinician,
        record.form_id, record.form_version,
    )  # fmt: skip


def _seal_new(
    keys: RecordKeys, record: RecordRow, kind: str, plaintext: bytes, created: str
) -> SealedObject:
    object_id, key = new_object_id(), k.ObjectKey.generate()
    ct = k.seal_object(key, plaintext, _object_binding(keys, record, kind, object_id))
    wraps = _wraps(keys, kind, object_id, key, record.clinician, created)
    return SealedObject(kind, object_id, ct, k.commitment(keys.vault_id, object_id, key), wraps)


def _open(keys: RecordKeys, record: RecordRow, sealed: SealedObject, kind: str) -> bytes:
    if sealed.kind != kind:
        raise k.EnvelopeError(f"a {sealed.kind} object was read where a {kind} was expected")
    key = _open_key(keys, sealed)
    return k.open_object(
        key, sealed.ct, _object_binding(keys, record, sealed.kind, sealed.object_id)
    )


def _json(data: Any) -> bytes:
    return json.dumps(data, ensure_ascii=False, sort_keys=True).encode("utf-8")


def seal_addendum(keys: RecordKeys, record: RecordRow, created: str, body: str) -> SealedObject:
    """An addendum's body sealed for the record's readers (add_sealed_addendum)."""
    return _seal_new(keys, record, ADDENDUM, body.encode("utf-8"), created)


def open_addendum(keys: RecordKeys, record: RecordRow, sealed: SealedAddendum) -> Addendum:
    """The addendum with its body, read for `record` (the row asked for)."""
    body = _open(keys, record, sealed.body, ADDENDUM).decode("utf-8")
    return Addendum(sealed.id, record.id, sealed.author, sealed.created, body)


def seal_letter(
    keys: RecordKeys, record: RecordRow, created: str, pdf: bytes, unsigned: bytes | None
) -> tuple[SealedObject, SealedObject | None]:
    """A letter's signed PDF and (when kept) its unsigned PDF, each its own object."""
    signed = _seal_new(keys, record, LETTER, pdf, created)
    kept = None if unsigned is None else _seal_new(keys, record, LETTER_UNSIGNED, unsigned, created)
    return signed, kept


def open_letter(
    keys: RecordKeys, record: RecordRow, sealed: SealedLetter
) -> tuple[LetterMeta, bytes, bytes | None]:
    """(meta, signed PDF, unsigned PDF or None) of a sealed letter of `record`."""
    pdf = _open(keys, record, sealed.pdf, LETTER)
    unsigned = None
    if sealed.unsigned is not None:
        unsigned = _open(keys, record, sealed.unsigned, LETTER_UNSIGNED)
    return sealed.meta, pdf, unsigned


def seal_followup_note(keys: RecordKeys, record: RecordRow, fu: FollowUp) -> SealedObject | None:
    """A follow-up's note and details sealed as one object; None when it has neither."""
    if not fu.note and not fu.details:
        return None
    plaintext = _json({"note": fu.note, "details": fu.details})
    return _seal_new(keys, record, FOLLOWUP_NOTE, plaintext, fu.recorded_at)


def open_followup(keys: RecordKeys, record: RecordRow, sealed: SealedFollowUp) -> FollowUp:
    """The follow-up event with its note and details."""
    note, details = None, {}
    if sealed.note is not None:
        data = json.loads(_open(keys, record, sealed.note, FOLLOWUP_NOTE))
        note, details = data["note"], data["details"]
    return FollowUp(
        sealed.id, record.id, sealed.event, sealed.at, sealed.recorded_by, sealed.recorded_at,
        sealed.decision, note, details,
    )  # fmt: skip


def seal_review(keys: RecordKeys, record: RecordRow, review: Review) -> SealedObject:
    """A lead review's verdict, comments and learning sealed as one object."""
    plaintext = _json(
        {"verdict": review.verdict, "comments": review.comments, "learning": review.learning}
    )
    return _seal_new(keys, record, REVIEW, plaintext, review.created)


def open_review(keys: RecordKeys, record: RecordRow, sealed: SealedReview) -> Review:
    """The lead review with its verdict, comments and learning."""
    data = json.loads(_open(keys, record, sealed.body, REVIEW))
    return Review(
        sealed.id, record.id, sealed.reviewer, sealed.created, data["verdict"],
        data["comments"], data["learning"],
    )  # fmt: skip


# ----- household link reviews (class C) ---------------------------------------------------


def _household_binding(keys: RecordKeys, record_id: str, other_record_id: str) -> k.SummaryBinding:
    return k.SummaryBinding(
        keys.vault_id, record_id, APPEND_ONLY_VERSION, HOUSEHOLD_REVIEW_KIND, other_record_id
    )


def seal_household_review(
    keys: RecordKeys, record_id: str, other_record_id: str, decision: str, note: str | None
) -> tuple[int, bytes]:
    """(clinical generation, ciphertext) of a household link review's decision and note."""
    clinical = keys.clinical()
    binding = _household_binding(keys, record_id, other_record_id)
    ct = k.seal_summary(clinical, _json({"decision": decision, "note": note}), binding)
    return clinical.generation, ct


def open_household_review(
    keys: RecordKeys, sealed: SealedHouseholdReview
) -> tuple[str, str | None]:
    """(decision, note) of a sealed household link review, bound to the pair of its row."""
    clinical = _clinical(keys, sealed.generation)
    binding = _household_binding(keys, sealed.record_id, sealed.other_record_id)
    data = json.loads(k.open_summary(clinical, sealed.ct, binding))
    return str(data["decision"]), data["note"]
