"""Blind indexes: normalisation and the per-record token set (DESIGN §10.1, "Blind indexes" and
the binding table row "blind index")."""

from __future__ import annotations

import datetime as dt
import enum
import hmac
import unicodedata
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives import hmac as crypto_hmac

from gpshare import nhs_number
from gpshare.store.keys.binding import ClinicalKey, Label, derive, encode

TOKEN_BYTES = 16  # HMAC-SHA256 truncated to 128 bits


class IndexType(enum.Enum):
    """Token types; each has its own key, HKDF(clinical_g, "bidx/<type>")."""

    NHS = Label.BIDX_NHS
    FAMILY_DOB = Label.BIDX_FAMILY_DOB
    GIVEN_DOB = Label.BIDX_GIVEN_DOB
    FAMILY_GIVEN = Label.BIDX_FAMILY_GIVEN
    POSTCODE_HOUSE = Label.BIDX_POSTCODE_HOUSE

    @property
    def tag(self) -> str:
        """The type tag hashed in front of the value ("nhs", "family|dob", …)."""
        return self.value.value.removeprefix("bidx/")


def normalise_name(text: str) -> str:
    """Unicode NFKD, drop combining marks, casefold, keep a–z: "Siân" -> "sian",
    "O'Brien-Nuñez" -> "obriennunez"."""
    decomposed = unicodedata.normalize("NFKD", text)
    stripped = "".join(ch for ch in decomposed if not unicodedata.combining(ch))
    return "".join(ch for ch in stripped.casefold() if "a" <= ch <= "z")


def normalise_code(text: str) -> str:
    """Postcode or house number: the name rule, but digits are kept ("SW1A 1AA" -> "sw1a1aa")."""
    decomposed = unicodedata.normalize("NFKD", text)
    stripped = "".join(ch for ch in decomposed if not unicodedata.combining(ch))
    return "".join(ch for ch in stripped.casefold() if "a" <= ch <= "z" or "0" <= ch <= "9")


def normalise_dob(value: dt.date | str | None) -> str:
    """Date of birth as YYYY-MM-DD, or "" when it is missing or not a real date."""
    if value is None:
        return ""
    if isinstance(value, dt.datetime):
        return value.date().isoformat()
    if isinstance(value, dt.date):
        return value.isoformat()
    try:
        return dt.date.fromisoformat(value.strip()).isoformat()
    except ValueError:
        return ""


def normalise_nhs(value: str | None) -> str:
    """The 10 digits of an NHS number whose check digit holds, else "" (no token)."""
    if not value or not nhs_number.is_valid(value):
        return ""
    return nhs_number.normalise(value) or ""


@dataclass(frozen=True)
class IndexedIdentity:
    """What a record's blind indexes are computed from (the child, their carers, the address)."""

    given: str = ""
    family: str = ""
    dob: dt.date | str | None = None
    nhs: str | None = None
    carers: Sequence[tuple[str, str]] = field(default_factory=tuple)  # (given, family)
    postcode: str = ""
    house_number: str = ""


def index_values(identity: IndexedIdentity) -> list[tuple[IndexType, tuple[str, ...]]]:
    """The normalised values a record is indexed by; a token whose parts are not all present is
    left out (an NHS number with a bad check digit gives no `nhs` token)."""
    given, family = normalise_name(identity.given), normalise_name(identity.family)
    dob, nhs = normalise_dob(identity.dob), normalise_nhs(identity.nhs)
    values: list[tuple[IndexType, tuple[str, ...]]] = [
        (IndexType.NHS, (nhs,)),
        (IndexType.FAMILY_DOB, (family, dob)),
        (IndexType.GIVEN_DOB, (given, dob)),
    ]
    for carer_given, carer_family in identity.carers:
        values.append(
            (IndexType.FAMILY_GIVEN, (normalise_name(carer_family), normalise_name(carer_given)))
        )
    values.append(
        (
            IndexType.POSTCODE_HOUSE,
            (normalise_code(identity.postcode), normalise_code(identity.house_number)),
        )
    )
    seen: set[tuple[IndexType, tuple[str, ...]]] = set()
    kept = []
    for item in values:
        if all(item[1]) and item not in seen:
            seen.add(item)
            kept.append(item)
    return kept


@dataclass(frozen=True)
class BlindToken:
    """One blind index: its type, the clinical generation it was made under, and 16 bytes."""

    type: IndexType
    generation: int
    token: bytes


def blind_index(
    clinical: ClinicalKey, vault_id: str, index_type: IndexType, parts: Sequence[str]
) -> BlindToken:
    """HMAC-SHA256(HKDF(clinical_g, "bidx/<type>"), type tag ‖ normalised value), first 128 bits."""
    label = index_type.value
    key = derive(clinical, label, vault_id).require(label)
    mac = crypto_hmac.HMAC(key, hashes.SHA256())
    mac.update(encode(index_type.tag, *parts))
    return BlindToken(index_type, clinical.generation, mac.finalize()[:TOKEN_BYTES])


def record_tokens(
    clinical: ClinicalKey, vault_id: str, identity: IndexedIdentity
) -> list[BlindToken]:
    """Every blind index of one record under one clinical generation."""
    return [blind_index(clinical, vault_id, t, parts) for t, parts in index_values(identity)]


def lookup_tokens(
    live: Iterable[ClinicalKey], vault_id: str, identity: IndexedIdentity
) -> list[BlindToken]:
    """Tokens to look a child up by, under every live clinical generation (a match is only a
    probable match, confirmed after decrypting the summary)."""
    return [token for key in live for token in record_tokens(key, vault_id, identity)]


def confirms(
    clinical: ClinicalKey, vault_id: str, identity: IndexedIdentity, found_by: BlindToken
) -> bool:
    """True when the identity decrypted from a record's summary yields the token the record was
    found by (a blind-index match is only probable until this holds)."""
    if found_by.generation != clinical.generation:
        return False
    tokens = record_tokens(clinical, vault_id, identity)
    # Check every token, not just until the first hit, so timing says nothing about which matched.
    hits = [t.type is found_by.type and same_token(t.token, found_by.token) for t in tokens]
    return any(hits)


def same_token(a: bytes, b: bytes) -> bool:
    """Constant-time comparison of two tokens."""
    return hmac.compare_digest(a, b)
