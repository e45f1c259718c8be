"""gpshare.store.keywrap: the named key wraps the services will use instead of crypto
primitives. A wrap opens only with the same secret, vault and (for signing keys) user."""

from __future__ import annotations

import os

from gpshare.store import crypto, keywrap

KEY_PEM = b"-----BEGIN PRIVATE KEY-----\nnot a real key\n-----END PRIVATE KEY-----\n"


def test_a_signing_key_unwraps_only_for_its_secret_vault_and_user() -> None:
    secret = os.urandom(32)
    nonce, wrapped = keywrap.wrap_signing_key(secret, KEY_PEM, "vault-1", "drsmith")
    assert KEY_PEM not in wrapped
    assert keywrap.unwrap_signing_key(secret, nonce, wrapped, "vault-1", "drsmith") == KEY_PEM
    assert keywrap.unwrap_signing_key(os.urandom(32), nonce, wrapped, "vault-1", "drsmith") is None
    assert keywrap.unwrap_signing_key(secret, nonce, wrapped, "vault-2", "drsmith") is None
    assert keywrap.unwrap_signing_key(secret, nonce, wrapped, "vault-1", "drjones") is None


def test_the_practice_ca_key_unwraps_only_with_its_database_key_and_vault() -> None:
    db_key = os.urandom(32)
    nonce, wrapped = keywrap.wrap_practice_ca_key(db_key, KEY_PEM, "vault-1")
    assert keywrap.unwrap_practice_ca_key(db_key, nonce, wrapped, "vault-1") == KEY_PEM
    assert keywrap.unwrap_practice_ca_key(os.urandom(32), nonce, wrapped, "vault-1") is None
    assert keywrap.unwrap_practice_ca_key(db_key, nonce, wrapped, "vault-2") is None
    # A signing-key wrap under the same secret is a different key: it does not open.
    s_nonce, s_wrapped = keywrap.wrap_signing_key(db_key, KEY_PEM, "vault-1", "admin")
    assert keywrap.unwrap_practice_ca_key(db_key, s_nonce, s_wrapped, "vault-1") is None


def test_wraps_stay_readable_by_the_derivation_existing_vaults_were_written_with() -> None:
    """Vaults already in use hold wraps made by services.py with these purposes and
    associated data; the named helpers must open them (and vice versa)."""
    secret, db_key = os.urandom(32), os.urandom(32)
    nonce, wrapped = crypto.wrap(
        crypto.subkey(secret, "signing key"), KEY_PEM, b"vault-1:signing:drsmith"
    )
    assert keywrap.unwrap_signing_key(secret, nonce, wrapped, "vault-1", "drsmith") == KEY_PEM
    nonce, wrapped = keywrap.wrap_practice_ca_key(db_key, KEY_PEM, "vault-1")
    kek = crypto.subkey(db_key, "practice ca key")
    assert crypto.unwrap(kek, nonce, wrapped, b"vault-1:practice-ca") == KEY_PEM
