"""Canonical encoding, key derivation and the ciphertext header shared by every row of the
binding table (DESIGN §10.1, "Binding table")."""

from __future__ import annotations

import enum
import os
import struct
from typing import ClassVar, Self

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.hpke import AEAD, KDF, KEM, Suite
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from gpshare.store.keys.errors import CiphertextFormatError, KeyUsageError

KEY_BYTES = 32

# The one HPKE suite of the binding table's "wrap" row: DHKEM(X25519, HKDF-SHA256), HKDF-SHA256,
# AES-256-GCM, Base mode (cryptography's single-shot Suite is Base mode).
HPKE_SUITE = Suite(KEM.X25519, KDF.HKDF_SHA256, AEAD.AES_256_GCM)

Field = str | int | bytes


def encode(*fields: Field) -> bytes:
    """Canonical, length-prefixed encoding of binding fields.

    Each field is a type tag (s = UTF-8 text, i = signed 64-bit integer, b = bytes), a 4-byte
    big-endian length and the value, so no two different field lists encode alike. Every AAD,
    HPKE `info`, MAC input, commitment and signed directory entry is built with this.
    """
    out = bytearray()
    for field in fields:
        # bool is an int subclass: refuse it so True and 1 cannot be confused.
        if isinstance(field, bool):
            raise TypeError("binding fields are text, integers or bytes, not booleans")
        if isinstance(field, str):
            tag, value = b"s", field.encode("utf-8")
        elif isinstance(field, int):
            tag, value = b"i", field.to_bytes(8, "big", signed=True)
        elif isinstance(field, bytes | bytearray | memoryview):
            tag, value = b"b", bytes(field)
        else:
            raise TypeError(f"a binding field cannot be a {type(field).__name__}")
        out += tag + struct.pack(">I", len(value)) + value
    return bytes(out)


def decode_bytes(blob: bytes, count: int, what: str) -> list[bytes]:
    """The `count` byte-string fields of `blob` (made by `encode` from bytes fields only);
    CiphertextFormatError naming `what` if it is anything else."""
    fields: list[bytes] = []
    offset = 0
    while offset < len(blob):
        if blob[offset : offset + 1] != b"b" or offset + 5 > len(blob):
            raise CiphertextFormatError(f"the {what} is not in the expected format")
        (length,) = struct.unpack_from(">I", blob, offset + 1)
        end = offset + 5 + length
        if end > len(blob):
            raise CiphertextFormatError(f"the {what} is truncated")
        fields.append(blob[offset + 5 : end])
        offset = end
    if len(fields) != count:
        raise CiphertextFormatError(f"the {what} has {len(fields)} fields, expected {count}")
    return fields


class Label(enum.Enum):
    """HKDF labels of the binding table ("key" column); each derived key has exactly one."""

    USER_KEK = "gpshare/v2/user-kek"
    SQLCIPHER = "sqlcipher"
    M_ROW = "m-row"
    AUDIT = "audit"
    SUMMARY = "summary"
    BIDX_NHS = "bidx/nhs"
    BIDX_FAMILY_DOB = "bidx/family|dob"
    BIDX_GIVEN_DOB = "bidx/given|dob"
    BIDX_FAMILY_GIVEN = "bidx/family|given"
    BIDX_POSTCODE_HOUSE = "bidx/postcode|house"
    # Decision D7 (docs/vault-v2.md): two practice-key uses the binding table does not list.
    HEADER_MAC = "header-mac"
    ROLLBACK_ANCHOR = "rollback-anchor"
    # The lead key's two pairs (DESIGN §10.1 "Keys") come from one seed per generation, so one
    # role-key wrap carries both; each pair has its own label (keys/lead.py).
    LEAD_ENCRYPTION = "lead/x25519"
    LEAD_SIGNING = "lead/ed25519"
    # The lead data key (DESIGN §10.1 class L): the SQLCipher key of the lead's search replica,
    # lead-index.db. Derived from the lead key seed, so exactly the holders of that lead key
    # generation reach it ("wrapped like the lead private key"); outside the binding table like
    # the two labels above.
    LEAD_DATA = "lead/data"


class Secret:
    """32 bytes of key material whose repr and str never show the bytes."""

    __slots__ = ("_key",)
    kind: ClassVar[str] = "key"
    labels: ClassVar[frozenset[Label]] = frozenset()

    def __init__(self, key: bytes) -> None:
        if not isinstance(key, bytes) or len(key) != KEY_BYTES:
            raise KeyUsageError(f"the {self.kind} must be exactly {KEY_BYTES} bytes")
        self._key = key

    @classmethod
    def generate(cls) -> Self:
        """A fresh random key from os.urandom."""
        return cls(os.urandom(KEY_BYTES))

    def reveal(self) -> bytes:
        """The raw bytes, for the primitive that uses them; never log or format them."""
        return self._key

    def __repr__(self) -> str:
        return f"<{type(self).__name__} (key material hidden)>"

    __str__ = __repr__

    def __reduce__(self) -> str | tuple[object, ...]:
        # Keys are not pickled by accident (a pickle is plaintext on disk).
        raise TypeError(f"a {self.kind} cannot be pickled")


class PracticeKey(Secret):
    """The practice root (class M): derives the SQLCipher, row-MAC and audit keys, and (D7) the
    vault.json MAC and rollback-anchor keys."""

    __slots__ = ()
    kind = "practice key"
    labels = frozenset(
        {Label.SQLCIPHER, Label.M_ROW, Label.AUDIT, Label.HEADER_MAC, Label.ROLLBACK_ANCHOR}
    )


class ClinicalKey(Secret):
    """Clinical key of one generation (class C): derives the summary and blind-index keys."""

    __slots__ = ("generation",)
    kind = "clinical key"
    labels = frozenset(
        {
            Label.SUMMARY,
            Label.BIDX_NHS,
            Label.BIDX_FAMILY_DOB,
            Label.BIDX_GIVEN_DOB,
            Label.BIDX_FAMILY_GIVEN,
            Label.BIDX_POSTCODE_HOUSE,
        }
    )

    def __init__(self, key: bytes, generation: int) -> None:
        super().__init__(key)
        if generation < 1:
            raise KeyUsageError("a clinical key generation starts at 1")
        self.generation = generation

    @classmethod
    def generate(cls) -> Self:
        """Refused: a clinical key always has a generation (use generate_generation)."""
        raise KeyUsageError("a clinical key needs a generation: use generate_generation(g)")

    @classmethod
    def generate_generation(cls, generation: int) -> ClinicalKey:
        """A fresh random clinical key of `generation`."""
        return cls(os.urandom(KEY_BYTES), generation)

    def __repr__(self) -> str:
        return f"<ClinicalKey generation {self.generation} (key material hidden)>"

    __str__ = __repr__


class ObjectKey(Secret):
    """The random key of one N object (answers, an addendum, a note, a letter body)."""

    __slots__ = ()
    kind = "object key"


class PasswordRoot(Secret):
    """Argon2id(password) [‖ enrolment secret], reduced to 32 bytes: derives the user KEK only."""

    __slots__ = ()
    kind = "password-derived key"
    labels = frozenset({Label.USER_KEK})


class DerivedKey(Secret):
    """A key derived from a root for one label; it is used for that label's purpose only."""

    __slots__ = ("label",)
    kind = "derived key"

    def __init__(self, key: bytes, label: Label) -> None:
        super().__init__(key)
        self.label = label

    def require(self, label: Label) -> bytes:
        """The bytes, if this key was derived for `label`; otherwise KeyUsageError."""
        if self.label is not label:
            raise KeyUsageError(
                f"a key derived for {self.label.value!r} cannot be used for {label.value!r}"
            )
        return self.reveal()

    def __repr__(self) -> str:
        return f"<DerivedKey {self.label.value!r} (key material hidden)>"

    __str__ = __repr__


def derive(root: Secret, label: Label, vault_id: str) -> DerivedKey:
    """HKDF-SHA256(root, salt = vault id, info = label) for a label the root may derive.

    The binding table fixes which root derives which label; asking a root for any other label
    raises KeyUsageError, so no key serves two purposes.
    """
    if label not in root.labels:
        raise KeyUsageError(f"a {root.kind} does not derive the {label.value!r} key")
    if not vault_id:
        raise KeyUsageError("the vault id (the HKDF salt) is empty")
    hkdf = HKDF(
        algorithm=hashes.SHA256(),
        length=KEY_BYTES,
        salt=vault_id.encode("utf-8"),
        info=label.value.encode("utf-8"),
    )
    return DerivedKey(hkdf.derive(root.reveal()), label)


# Ciphertext header: format byte, suite id, key generation (unsigned 32-bit, big-endian).
FORMAT_V2 = 0x02
SUITE_AES256GCM = 0x01
SUITE_HPKE_X25519_SHA256_AES256GCM = 0x02
_HEADER = struct.Struct(">BBI")
HEADER_BYTES = _HEADER.size
_KNOWN_SUITES = {SUITE_AES256GCM, SUITE_HPKE_X25519_SHA256_AES256GCM}


def header(suite: int, generation: int) -> bytes:
    """The header every ciphertext starts with; it is also bound into the AAD or `info`."""
    if suite not in _KNOWN_SUITES:
        raise CiphertextFormatError(f"unknown suite id {suite}")
    if not 0 <= generation < 2**32:
        raise KeyUsageError(f"key generation {generation} is out of range")
    return _HEADER.pack(FORMAT_V2, suite, generation)


def split_header(blob: bytes, what: str, suite: int) -> tuple[int, bytes, bytes]:
    """(generation, header bytes, body) of `blob`; CiphertextFormatError names `what` when the
    format byte or suite is not the expected one."""
    if len(blob) < HEADER_BYTES:
        raise CiphertextFormatError(f"the {what} is too short to be a gpshare ciphertext")
    fmt, found_suite, generation = _HEADER.unpack_from(blob)
    if fmt != FORMAT_V2:
        raise CiphertextFormatError(f"the {what} has format {fmt}, not {FORMAT_V2}")
    if found_suite != suite:
        raise CiphertextFormatError(f"the {what} uses suite {found_suite}, expected {suite}")
    return generation, blob[:HEADER_BYTES], blob[HEADER_BYTES:]
