"""User key bundles: a user's X25519 pair (encryption) and Ed25519 pair (audit checkpoints),
plus the pinned lead signing public key, sealed under the user's password (DESIGN §10.1,
binding table row "user key bundle")."""

from __future__ import annotations

import os
from dataclasses import dataclass

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from gpshare.store.crypto import KdfParams
from gpshare.store.crypto import derive as argon2id
from gpshare.store.keys.binding import (
    KEY_BYTES,
    SUITE_AES256GCM,
    Label,
    PasswordRoot,
    decode_bytes,
    derive,
    encode,
    header,
    split_header,
)
from gpshare.store.keys.errors import BundleError, CiphertextFormatError

SALT_BYTES = 16
_RAW = serialization.Encoding.Raw
_RAW_PRIVATE = serialization.PrivateFormat.Raw
_NO_ENCRYPTION = serialization.NoEncryption()


def raw_public(key: X25519PrivateKey | Ed25519PrivateKey) -> bytes:
    """The 32 raw bytes of the public half of `key`."""
    return key.public_key().public_bytes(_RAW, serialization.PublicFormat.Raw)


@dataclass(frozen=True, repr=False)
class UserKeys:
    """A user's private keys, held only while their session is unlocked."""

    encryption: X25519PrivateKey
    audit: Ed25519PrivateKey
    pinned_lead_signing_key: bytes | None = None
    # Decision D2, leads only: the lead-access pair lead-key wraps are made for. Sealed only
    # under the password KEK; a remembered login's copy of the bundle omits it.
    lead_access: X25519PrivateKey | None = None

    @classmethod
    def generate(cls, pinned_lead_signing_key: bytes | None = None, lead: bool = False) -> UserKeys:
        """Fresh key pairs, made by the user's own client (a lead's with a lead-access pair)."""
        return cls(
            X25519PrivateKey.generate(),
            Ed25519PrivateKey.generate(),
            pinned_lead_signing_key,
            X25519PrivateKey.generate() if lead else None,
        )

    def with_pin(self, lead_signing_key: bytes) -> UserKeys:
        """The same keys with a new pinned lead signing public key (first grant or rotation)."""
        return UserKeys(self.encryption, self.audit, lead_signing_key, self.lead_access)

    def without_lead_access(self) -> UserKeys:
        """The keys a remembered login's copy holds: everything but the lead-access pair."""
        return UserKeys(self.encryption, self.audit, self.pinned_lead_signing_key)

    def __repr__(self) -> str:
        return "<UserKeys (key material hidden)>"

    __str__ = __repr__


@dataclass(frozen=True)
class SealedBundle:
    """What is stored for a bundle: its generation, the Argon2id parameters and salt, the blob."""

    generation: int
    kdf: KdfParams
    salt: bytes
    blob: bytes


def _aad(head: bytes, vault_id: str, user_id: str, generation: int, kdf: KdfParams) -> bytes:
    return head + encode(
        "gpshare/v2/bundle",
        vault_id,
        user_id,
        generation,
        kdf.memory_kib,
        kdf.iterations,
        kdf.lanes,
    )


def _kek(
    password: str, salt: bytes, kdf: KdfParams, vault_id: str, enrolment_secret: bytes | None
) -> bytes:
    stretched = argon2id(password.encode("utf-8"), salt, kdf)
    if enrolment_secret is not None:
        # Argon2id(pw) ‖ enrolment secret, reduced to one root so the KEK label stays unique.
        from gpshare.store.enrolment import mix

        stretched = mix(stretched, enrolment_secret)
    return derive(PasswordRoot(stretched), Label.USER_KEK, vault_id).require(Label.USER_KEK)


def _plaintext(keys: UserKeys) -> bytes:
    pin = keys.pinned_lead_signing_key or b""
    fields = [
        keys.encryption.private_bytes(_RAW, _RAW_PRIVATE, _NO_ENCRYPTION),
        keys.audit.private_bytes(_RAW, _RAW_PRIVATE, _NO_ENCRYPTION),
        pin,
    ]
    if keys.lead_access is not None:  # a fourth field only in a lead's bundle
        fields.append(keys.lead_access.private_bytes(_RAW, _RAW_PRIVATE, _NO_ENCRYPTION))
    return encode(*fields)


def _parse(plaintext: bytes, user_id: str) -> UserKeys:
    what = f"key bundle of {user_id}"
    try:
        fields = decode_bytes(plaintext, 4, what)
    except CiphertextFormatError:
        try:
            fields = decode_bytes(plaintext, 3, what)
        except CiphertextFormatError as error:
            raise BundleError(
                f"the {what} opened but is not a gpshare key bundle: {error}"
            ) from None
    encryption, audit, pin = fields[:3]
    access = fields[3] if len(fields) == 4 else None
    if len(encryption) != KEY_BYTES or len(audit) != KEY_BYTES:
        raise BundleError(f"the {what} opened but its keys have the wrong length")
    if access is not None and len(access) != KEY_BYTES:
        raise BundleError(f"the {what} opened but its lead-access key has the wrong length")
    return UserKeys(
        X25519PrivateKey.from_private_bytes(encryption),
        Ed25519PrivateKey.from_private_bytes(audit),
        pin or None,
        None if access is None else X25519PrivateKey.from_private_bytes(access),
    )


def seal_bundle(
    keys: UserKeys,
    password: str,
    vault_id: str,
    user_id: str,
    generation: int,
    kdf: KdfParams,
    enrolment_secret: bytes | None = None,
) -> SealedBundle:
    """Seal `keys` with AES-256-GCM under HKDF(Argon2id(pw) [‖ enrolment secret],
    "gpshare/v2/user-kek"), bound to vault id, user id and bundle generation."""
    salt = os.urandom(SALT_BYTES)
    kek = _kek(password, salt, kdf, vault_id, enrolment_secret)
    head = header(SUITE_AES256GCM, generation)
    nonce = os.urandom(12)
    sealed = AESGCM(kek).encrypt(
        nonce, _plaintext(keys), _aad(head, vault_id, user_id, generation, kdf)
    )
    return SealedBundle(generation, kdf, salt, head + nonce + sealed)


def open_bundle(
    sealed: SealedBundle,
    password: str,
    vault_id: str,
    user_id: str,
    enrolment_secret: bytes | None = None,
) -> UserKeys:
    """Open a user's bundle; BundleError for a wrong password or enrolment secret, a bundle of
    another user, vault or generation, or an altered one."""
    generation, head, body = split_header(sealed.blob, f"key bundle of {user_id}", SUITE_AES256GCM)
    if generation != sealed.generation:
        raise BundleError(
            f"the key bundle of {user_id} says generation {generation} but is stored as "
            f"generation {sealed.generation}: it was altered"
        )
    kek = _kek(password, sealed.salt, sealed.kdf, vault_id, enrolment_secret)
    try:
        plaintext = AESGCM(kek).decrypt(
            body[:12], body[12:], _aad(head, vault_id, user_id, generation, sealed.kdf)
        )
    except InvalidTag:
        raise BundleError(
            f"the key bundle of {user_id} does not open: the password (or enrolment secret) is "
            "wrong, or the bundle belongs to another user or vault, or it was altered"
        ) from None
    return _parse(plaintext, user_id)
