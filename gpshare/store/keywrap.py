"""Wrapping the keys the database holds: each clinician's signing key and the practice CA key.

Named helpers over gpshare.store.crypto so the services need no crypto primitives. The
associated data binds each wrap to its vault (and user), so a wrapped key copied into another
vault or onto another user's row does not open.
"""

from __future__ import annotations

from gpshare.store import crypto

_SIGNING_PURPOSE = "signing key"
_CA_PURPOSE = "practice ca key"


def _signing_ad(vault_id: str, username: str) -> bytes:
    return f"{vault_id}:signing:{username}".encode()


def _ca_ad(vault_id: str) -> bytes:
    return f"{vault_id}:practice-ca".encode()


def wrap_signing_key(
    user_secret: bytes, key_pem: bytes, vault_id: str, username: str
) -> tuple[bytes, bytes]:
    """(nonce, wrapped) of a signing key under the user's password-derived secret."""
    kek = crypto.subkey(user_secret, _SIGNING_PURPOSE)
    return crypto.wrap(kek, key_pem, _signing_ad(vault_id, username))


def unwrap_signing_key(
    user_secret: bytes, nonce: bytes, wrapped: bytes, vault_id: str, username: str
) -> bytes | None:
    """The signing key's PEM, or None when the secret, vault or user does not match."""
    kek = crypto.subkey(user_secret, _SIGNING_PURPOSE)
    return crypto.unwrap(kek, nonce, wrapped, _signing_ad(vault_id, username))


def wrap_practice_ca_key(db_key: bytes, key_pem: bytes, vault_id: str) -> tuple[bytes, bytes]:
    """(nonce, wrapped) of the practice CA's key under a sub-key of the database key."""
    kek = crypto.subkey(db_key, _CA_PURPOSE)
    return crypto.wrap(kek, key_pem, _ca_ad(vault_id))


def unwrap_practice_ca_key(
    db_key: bytes, nonce: bytes, wrapped: bytes, vault_id: str
) -> bytes | None:
    """The practice CA key's PEM, or None when the key or the vault does not match."""
    kek = crypto.subkey(db_key, _CA_PURPOSE)
    return crypto.unwrap(kek, nonce, wrapped, _ca_ad(vault_id))
