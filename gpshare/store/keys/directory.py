"""The signed, pinned key directory: lead encryption key entries and user entries signed with
the lead signing key, rotation statements, and the 6-word fingerprint a lead compares
(DESIGN §10.1, "The key directory" and binding table row "directory entry")."""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PublicKey

from gpshare.store.keys.binding import KEY_BYTES, Field, encode
from gpshare.store.keys.errors import DirectoryAlteredError, KeyUsageError, RecipientDisabledError
from gpshare.store.keys.pgp_words import word_for

ALTERED = "the practice's key directory has been altered"
FINGERPRINT_WORDS = 6
ROLES = frozenset({"clinician", "lead", "admin"})


@dataclass(frozen=True)
class LeadKeyEntry:
    """Directory entry for one generation of the lead encryption (X25519) public key."""

    vault_id: str
    generation: int
    public_key: bytes

    def signed_bytes(self) -> bytes:
        """Canonical bytes the lead signing key signs."""
        return encode("gpshare/v2/dir/lead-key", self.vault_id, self.generation, self.public_key)

    def describe(self) -> str:
        """Plain words for messages."""
        return f"the lead key entry (generation {self.generation})"


@dataclass(frozen=True)
class UserEntry:
    """Directory entry for one user's X25519 public key; the lead's signature is the grant."""

    vault_id: str
    user_id: str
    role: str
    public_key: bytes
    key_generation: int
    active: bool
    # Decision D2: a lead's lead-access X25519 public key, the recipient of lead-key wraps.
    lead_access_key: bytes | None = None

    def signed_bytes(self) -> bytes:
        """Canonical bytes the lead signing key signs (the lead-access key only when present,
        so entries without one sign exactly as before)."""
        fields: tuple[Field, ...] = (
            "gpshare/v2/dir/user",
            self.vault_id,
            self.user_id,
            self.role,
            self.public_key,
            self.key_generation,
            "active" if self.active else "disabled",
        )
        if self.lead_access_key is not None:
            fields = (*fields, "lead-access", self.lead_access_key)
        return encode(*fields)

    def describe(self) -> str:
        """Plain words for messages."""
        return f"the entry of {self.user_id} (key generation {self.key_generation})"


Entry = LeadKeyEntry | UserEntry


@dataclass(frozen=True)
class SignedEntry:
    """An entry and the lead's Ed25519 signature over its canonical bytes (None = pending)."""

    entry: Entry
    signature: bytes | None


@dataclass(frozen=True)
class RotationStatement:
    """ "The lead signing key of this vault is now `new_key`", signed by the previous key."""

    vault_id: str
    previous_key: bytes
    new_key: bytes
    generation: int
    signature: bytes

    @staticmethod
    def signed_bytes_for(
        vault_id: str, previous_key: bytes, new_key: bytes, generation: int
    ) -> bytes:
        """Canonical bytes the previous lead signing key signs."""
        return encode("gpshare/v2/dir/rotation", vault_id, previous_key, new_key, generation)


def _public_bytes(key: Ed25519PrivateKey | Ed25519PublicKey) -> bytes:
    public = key.public_key() if isinstance(key, Ed25519PrivateKey) else key
    return public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def _check_entry(entry: Entry) -> None:
    if len(entry.public_key) != KEY_BYTES:
        raise KeyUsageError(f"{entry.describe()} does not hold a {KEY_BYTES}-byte public key")
    if isinstance(entry, UserEntry) and entry.role not in ROLES:
        raise KeyUsageError(f"{entry.describe()} has an unknown role {entry.role!r}")
    if (
        isinstance(entry, UserEntry)
        and entry.lead_access_key is not None
        and (entry.role != "lead" or len(entry.lead_access_key) != KEY_BYTES)
    ):
        raise KeyUsageError(f"{entry.describe()} has a lead-access key but is not a lead's")


def sign_entry(entry: Entry, lead_signing: Ed25519PrivateKey) -> SignedEntry:
    """Sign a directory entry with the lead signing key (for a user entry: grant it)."""
    _check_entry(entry)
    return SignedEntry(entry, lead_signing.sign(entry.signed_bytes()))


def verify_entry(signed: SignedEntry, pinned_lead_key: bytes, vault_id: str) -> Entry:
    """The entry, if it belongs to this vault and its signature verifies against the pinned lead
    signing public key; otherwise DirectoryAlteredError (the entry is never used)."""
    entry = signed.entry
    if entry.vault_id != vault_id:
        raise DirectoryAlteredError(f"{ALTERED}: {entry.describe()} belongs to another vault")
    if signed.signature is None:
        raise DirectoryAlteredError(
            f"{ALTERED}: {entry.describe()} is not signed by a lead (it may be pending "
            "confirmation) and cannot be used"
        )
    try:
        Ed25519PublicKey.from_public_bytes(pinned_lead_key).verify(
            signed.signature, entry.signed_bytes()
        )
    except (InvalidSignature, ValueError):
        raise DirectoryAlteredError(
            f"{ALTERED}: the signature on {entry.describe()} does not verify against the "
            "pinned lead signing key"
        ) from None
    return entry


def verified_recipient_key(
    signed: SignedEntry, pinned_lead_key: bytes, vault_id: str, user_id: str
) -> tuple[X25519PublicKey, int]:
    """The X25519 public key (and its generation) to wrap for `user_id`, only after the entry
    verifies against the pin and says the user is active."""
    entry = verify_entry(signed, pinned_lead_key, vault_id)
    if not isinstance(entry, UserEntry) or entry.user_id != user_id:
        raise DirectoryAlteredError(f"{ALTERED}: the entry found for {user_id} is not theirs")
    if not entry.active:
        raise RecipientDisabledError(
            f"{user_id} is disabled in the key directory: nothing is wrapped for them"
        )
    return X25519PublicKey.from_public_bytes(entry.public_key), entry.key_generation


def verified_lead_access_key(
    signed: SignedEntry, pinned_lead_key: bytes, vault_id: str, user_id: str
) -> tuple[X25519PublicKey, int]:
    """A lead's lead-access public key (decision D2: the recipient of lead-key wraps) and their
    key generation, only after the entry verifies, is active and is a lead's with that key."""
    verified_recipient_key(signed, pinned_lead_key, vault_id, user_id)
    entry = signed.entry
    if not isinstance(entry, UserEntry) or entry.lead_access_key is None:
        raise DirectoryAlteredError(
            f"{ALTERED}: {entry.describe()} publishes no lead-access key, so the lead key cannot "
            "be wrapped for it"
        )
    return X25519PublicKey.from_public_bytes(entry.lead_access_key), entry.key_generation


def verified_lead_key(
    signed: SignedEntry, pinned_lead_key: bytes, vault_id: str, generation: int
) -> X25519PublicKey:
    """The lead encryption public key of `generation`, only after its entry verifies."""
    entry = verify_entry(signed, pinned_lead_key, vault_id)
    if not isinstance(entry, LeadKeyEntry) or entry.generation != generation:
        raise DirectoryAlteredError(
            f"{ALTERED}: the entry found for lead key generation {generation} is not that entry"
        )
    return X25519PublicKey.from_public_bytes(entry.public_key)


def sign_rotation(
    previous: Ed25519PrivateKey, new_key: bytes, vault_id: str, generation: int
) -> RotationStatement:
    """A rotation statement for lead signing key `generation`, signed by the previous key."""
    if len(new_key) != KEY_BYTES:
        raise KeyUsageError(f"the new lead signing key must be {KEY_BYTES} bytes")
    previous_key = _public_bytes(previous)
    message = RotationStatement.signed_bytes_for(vault_id, previous_key, new_key, generation)
    return RotationStatement(vault_id, previous_key, new_key, generation, previous.sign(message))


def verify_rotation(statement: RotationStatement, pinned_lead_key: bytes, vault_id: str) -> bytes:
    """The new lead signing public key to pin, if `statement` names the pinned key as the previous
    one and is signed by it; otherwise DirectoryAlteredError."""
    if statement.vault_id != vault_id:
        raise DirectoryAlteredError(f"{ALTERED}: the rotation statement belongs to another vault")
    if not hmac.compare_digest(statement.previous_key, pinned_lead_key):
        raise DirectoryAlteredError(
            f"{ALTERED}: the rotation statement (generation {statement.generation}) does not "
            "start from the pinned lead signing key"
        )
    message = RotationStatement.signed_bytes_for(
        vault_id, statement.previous_key, statement.new_key, statement.generation
    )
    try:
        Ed25519PublicKey.from_public_bytes(pinned_lead_key).verify(statement.signature, message)
    except (InvalidSignature, ValueError):
        raise DirectoryAlteredError(
            f"{ALTERED}: the rotation statement (generation {statement.generation}) is not "
            "signed by the previous lead signing key"
        ) from None
    return statement.new_key


def fingerprint(public_key: bytes, vault_id: str) -> list[str]:
    """Six words (PGP word list) from SHA-256 over the vault id and a public key, for a lead and
    a user to compare on both screens."""
    digest = hashlib.sha256(encode("gpshare/v2/fingerprint", vault_id, public_key)).digest()
    return [word_for(byte, i) for i, byte in enumerate(digest[:FINGERPRINT_WORDS])]


def fingerprint_matches(public_key: bytes, vault_id: str, typed: str) -> bool:
    """True when `typed` (words separated by spaces or hyphens, any case) is the fingerprint."""
    expected = " ".join(fingerprint(public_key, vault_id)).casefold()
    given = " ".join(typed.replace("-", " ").split()).casefold()
    return hmac.compare_digest(expected.encode(), given.encode())
