"""Symmetric envelopes of the binding table: N objects under their object key, C summaries under
HKDF(clinical_g, "summary"), and the M row MAC under HKDF(practice, "m-row")
(DESIGN §10.1, binding table rows "N object", "C summary" and "M row")."""

from __future__ import annotations

import hmac
import os
from collections.abc import Mapping
from dataclasses import dataclass

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives import hmac as crypto_hmac
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from gpshare.store.keys.binding import (
    SUITE_AES256GCM,
    ClinicalKey,
    DerivedKey,
    Field,
    Label,
    ObjectKey,
    PracticeKey,
    derive,
    encode,
    header,
    split_header,
)
from gpshare.store.keys.errors import EnvelopeError, RowMacError

NONCE_BYTES = 12
# Object keys are one per object and never rotated: their ciphertexts carry generation 0.
OBJECT_KEY_GENERATION = 0


def _seal(key: bytes, head: bytes, plaintext: bytes, aad: bytes) -> bytes:
    # A fresh random nonce every time, never a counter kept in a database (a rollback repeats it).
    nonce = os.urandom(NONCE_BYTES)
    return head + nonce + AESGCM(key).encrypt(nonce, plaintext, head + aad)


def _open(key: bytes, head: bytes, body: bytes, aad: bytes, what: str) -> bytes:
    if len(body) < NONCE_BYTES + 16:
        raise EnvelopeError(f"the {what} is truncated")
    try:
        return AESGCM(key).decrypt(body[:NONCE_BYTES], body[NONCE_BYTES:], head + aad)
    except InvalidTag:
        raise EnvelopeError(
            f"the {what} does not open with this key: it belongs to another record, object or "
            "version, or it was altered"
        ) from None


@dataclass(frozen=True)
class ObjectBinding:
    """AAD of an N object. Readers build it from the row they asked for, never from inside the
    ciphertext."""

    vault_id: str
    record_id: str
    object_kind: str
    object_id: str
    version: int
    author_id: str
    form_id: str
    form_version: int

    def aad(self) -> bytes:
        """Canonical AAD: vault id, record id, object kind, object id, version, author id,
        form id@version."""
        return encode(
            "gpshare/v2/object",
            self.vault_id,
            self.record_id,
            self.object_kind,
            self.object_id,
            self.version,
            self.author_id,
            f"{self.form_id}@{self.form_version}",
        )

    def describe(self) -> str:
        """Plain words for error messages."""
        return f"{self.object_kind} {self.object_id} (version {self.version}) of record {self.record_id}"


def seal_object(key: ObjectKey, plaintext: bytes, binding: ObjectBinding) -> bytes:
    """AES-256-GCM encryption of one N object under its own object key."""
    head = header(SUITE_AES256GCM, OBJECT_KEY_GENERATION)
    return _seal(key.reveal(), head, plaintext, binding.aad())


def open_object(key: ObjectKey, blob: bytes, binding: ObjectBinding) -> bytes:
    """Decrypt an N object; EnvelopeError if it was moved to another row or altered."""
    what = binding.describe()
    _generation, head, body = split_header(blob, what, SUITE_AES256GCM)
    return _open(key.reveal(), head, body, binding.aad(), what)


# The kinds of C object sealed under HKDF(clinical_g, "summary"): a record's summary, and a
# household link review (decision and note) between `record_id` and `subject_id`.
SUMMARY_KIND = "summary"
HOUSEHOLD_REVIEW_KIND = "household-review"


@dataclass(frozen=True)
class SummaryBinding:
    """AAD of a C object: vault id, record id, kind (`summary` by default), generation (from
    the header), version, and for any other kind the id of what else it is about."""

    vault_id: str
    record_id: str
    version: int
    kind: str = SUMMARY_KIND
    subject_id: str = ""

    def aad(self, generation: int) -> bytes:
        """Canonical AAD for the object under clinical key `generation`."""
        fields: list[Field] = [
            "gpshare/v2/summary", self.vault_id, self.record_id, self.kind, generation,
            self.version,
        ]  # fmt: skip
        # A record summary's AAD is exactly as before kinds existed, so its ciphertexts stay valid.
        if self.kind != SUMMARY_KIND:
            fields.append(self.subject_id)
        return encode(*fields)

    def describe(self) -> str:
        """Plain words for error messages."""
        if self.kind == SUMMARY_KIND:
            return f"summary of record {self.record_id} (version {self.version})"
        return f"{self.kind} of record {self.record_id} about {self.subject_id or '-'}"


def seal_summary(clinical: ClinicalKey, plaintext: bytes, binding: SummaryBinding) -> bytes:
    """AES-256-GCM encryption of a record's C summary under HKDF(clinical_g, "summary")."""
    key = derive(clinical, Label.SUMMARY, binding.vault_id).require(Label.SUMMARY)
    head = header(SUITE_AES256GCM, clinical.generation)
    return _seal(key, head, plaintext, binding.aad(clinical.generation))


def summary_generation(blob: bytes) -> int:
    """The clinical key generation a summary was written under (to pick the key to open it)."""
    generation, _head, _body = split_header(blob, "record summary", SUITE_AES256GCM)
    return generation


def open_summary(clinical: ClinicalKey, blob: bytes, binding: SummaryBinding) -> bytes:
    """Decrypt a C summary with the clinical key of the generation in its header."""
    what = binding.describe()
    generation, head, body = split_header(blob, what, SUITE_AES256GCM)
    if generation != clinical.generation:
        raise EnvelopeError(
            f"the {what} was written under clinical key generation {generation}, "
            f"not {clinical.generation}"
        )
    key = derive(clinical, Label.SUMMARY, binding.vault_id).require(Label.SUMMARY)
    return _open(key, head, body, binding.aad(generation), what)


def canonical_row(row: Mapping[str, Field | None]) -> bytes:
    """Canonical encoding of a row: its columns sorted by name, each name and value; NULL is
    encoded distinctly from any value."""
    fields: list[Field] = []
    for name in sorted(row):
        value = row[name]
        fields.append(name)
        fields.append(encode("null") if value is None else encode(value))
    return encode(*fields)


@dataclass(frozen=True)
class RowBinding:
    """Which M row a MAC is for: vault id, table, row id and row version."""

    vault_id: str
    table: str
    row_id: str | int
    version: int


def row_mac(practice: PracticeKey, where: RowBinding, row: Mapping[str, Field | None]) -> bytes:
    """HMAC-SHA256 of an M row under HKDF(practice, "m-row") over vault id, table, row id,
    version and the canonical row."""
    return keyed_row_mac(derive(practice, Label.M_ROW, where.vault_id), where, row)


def keyed_row_mac(key: DerivedKey, where: RowBinding, row: Mapping[str, Field | None]) -> bytes:
    """`row_mac` under an M row key already derived (HKDF once per session, not per row:
    a page read checks hundreds of rows)."""
    mac = crypto_hmac.HMAC(key.require(Label.M_ROW), hashes.SHA256())
    mac.update(
        encode(
            "gpshare/v2/m-row",
            where.vault_id,
            where.table,
            where.row_id,
            where.version,
            canonical_row(row),
        )
    )
    return mac.finalize()


def verify_row_mac(
    practice: PracticeKey | DerivedKey,
    where: RowBinding,
    row: Mapping[str, Field | None],
    mac: bytes,
) -> None:
    """RowMacError unless `mac` is the MAC of this row (compared with hmac.compare_digest);
    `practice` may be the M row key already derived from the practice key."""
    expected = (
        keyed_row_mac(practice, where, row)
        if isinstance(practice, DerivedKey)
        else row_mac(practice, where, row)
    )
    if not hmac.compare_digest(expected, mac):
        raise RowMacError(
            f"row {where.row_id} (version {where.version}) of table {where.table!r} does not "
            "match its MAC: it was altered (changed outside gpshare)"
        )
