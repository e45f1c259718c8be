"""HPKE wraps of object keys and role keys, and the object-key commitment
(DESIGN §10.1, binding table rows "wrap of an object key or role key" and
"object-key commitment")."""

from __future__ import annotations

import enum
import hashlib
import hmac
from dataclasses import dataclass

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey

from gpshare.store.keys.binding import (
    HPKE_SUITE,
    KEY_BYTES,
    SUITE_HPKE_X25519_SHA256_AES256GCM,
    ObjectKey,
    Secret,
    encode,
    header,
    split_header,
)
from gpshare.store.keys.errors import CommitmentError, KeyUsageError, UnwrapError

COMMIT_LABEL = "gpshare/v2/commit"
_WRAP_CONTEXT = "gpshare/v2/wrap"


class WrapPurpose(enum.Enum):
    """What a wrap carries: bound into `info`, so a wrap made for one purpose opens for no other."""

    OBJECT_KEY = "object-key"
    CLINICAL_KEY = "clinical-key"
    LEAD_KEY = "lead-key"


@dataclass(frozen=True)
class WrapBinding:
    """The `info` fields of one wrap: purpose, vault id, subject (object kind and id, or key name
    and generation), recipient id and the recipient key's generation."""

    purpose: WrapPurpose
    vault_id: str
    subject_kind: str
    subject_id: str | int
    recipient_id: str
    recipient_generation: int

    @classmethod
    def for_object(
        cls,
        vault_id: str,
        object_kind: str,
        object_id: str,
        recipient_id: str,
        recipient_generation: int,
    ) -> WrapBinding:
        """Binding for an object key wrapped for one recipient key."""
        return cls(
            WrapPurpose.OBJECT_KEY,
            vault_id,
            object_kind,
            object_id,
            recipient_id,
            recipient_generation,
        )

    @classmethod
    def for_role_key(
        cls,
        purpose: WrapPurpose,
        vault_id: str,
        key_generation: int,
        recipient_id: str,
        recipient_generation: int,
    ) -> WrapBinding:
        """Binding for generation `key_generation` of the clinical key or the lead key."""
        if purpose is WrapPurpose.OBJECT_KEY:
            raise KeyUsageError("an object key is wrapped with WrapBinding.for_object")
        name = "clinical" if purpose is WrapPurpose.CLINICAL_KEY else "lead"
        return cls(purpose, vault_id, name, key_generation, recipient_id, recipient_generation)

    def info(self, head: bytes) -> bytes:
        """Canonical HPKE `info`: the ciphertext header plus every field of the binding."""
        return encode(
            _WRAP_CONTEXT,
            head,
            self.purpose.value,
            self.vault_id,
            self.subject_kind,
            self.subject_id,
            self.recipient_id,
            self.recipient_generation,
        )

    def describe(self) -> str:
        """Plain words for error messages (ids only, never key material)."""
        return (
            f"the {self.purpose.value} wrap of {self.subject_kind} {self.subject_id} "
            f"for {self.recipient_id} (key generation {self.recipient_generation})"
        )


def wrap_key(key: Secret, recipient: X25519PublicKey, binding: WrapBinding) -> bytes:
    """HPKE Base wrap of `key` for `recipient`, bound to `binding` in `info`.

    The caller must have verified the recipient's key directory entry first
    (directory.verified_recipient_key)."""
    head = header(SUITE_HPKE_X25519_SHA256_AES256GCM, binding.recipient_generation)
    return head + HPKE_SUITE.encrypt(key.reveal(), recipient, info=binding.info(head))


def unwrap_key(blob: bytes, recipient: X25519PrivateKey, binding: WrapBinding) -> bytes:
    """Open a wrap with the recipient's private key and the binding of the row asked for.

    Raises UnwrapError when the wrap was made for another record, recipient, purpose, generation
    or vault, or was altered."""
    generation, head, body = split_header(
        blob, binding.describe(), SUITE_HPKE_X25519_SHA256_AES256GCM
    )
    if generation != binding.recipient_generation:
        raise UnwrapError(
            f"{binding.describe()} was made for recipient key generation {generation}"
        )
    try:
        key = HPKE_SUITE.decrypt(body, recipient, info=binding.info(head))
    except (InvalidTag, ValueError):
        raise UnwrapError(
            f"{binding.describe()} does not open: it was made for another record, recipient, "
            "purpose, key generation or vault, or it was altered"
        ) from None
    if len(key) != KEY_BYTES:
        raise UnwrapError(f"{binding.describe()} does not hold a {KEY_BYTES}-byte key")
    return key


def commitment(vault_id: str, object_id: str, key: ObjectKey) -> bytes:
    """SHA-256 commitment H("gpshare/v2/commit" ‖ vault id ‖ object id ‖ object key), stored in M
    and in the audit event (AES-GCM is not key-committing)."""
    return hashlib.sha256(encode(COMMIT_LABEL, vault_id, object_id, key.reveal())).digest()


def unwrap_object_key(
    blob: bytes,
    recipient: X25519PrivateKey,
    binding: WrapBinding,
    expected_commitment: bytes,
) -> ObjectKey:
    """Unwrap an object key and check it against the commitment stored for the object."""
    if binding.purpose is not WrapPurpose.OBJECT_KEY:
        raise KeyUsageError(f"{binding.describe()} is not an object-key wrap")
    key = ObjectKey(unwrap_key(blob, recipient, binding))
    found = commitment(binding.vault_id, str(binding.subject_id), key)
    if not hmac.compare_digest(found, expected_commitment):
        raise CommitmentError(
            f"the key unwrapped from {binding.describe()} does not match the object's stored "
            "commitment: the wrap or the commitment was altered"
        )
    return key
