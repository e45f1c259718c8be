"""The practice CA key for administrators only, on a version-2 vault (docs/vault-v2.md §1
`practice_ca`, §3 "CA for admins only", decision D4; DESIGN §10.1 class A).

The CA private key PEM is sealed as an object (kind `practice-ca`) under its own object key,
which is wrapped (HPKE, purpose `object-key`) for each administrator's directory key in
`object_wraps`. The `practice_ca` row keeps its shape: `key_nonce` holds the object-key
commitment and `wrapped_key` the sealed object. It is opened only to issue a certificate, and
never cached in the session. A later administrator receives a wrap from an administrator's
session once a lead has confirmed that administrator's key.
"""

from __future__ import annotations

from collections.abc import Sequence

from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

from gpshare.errors import KeyNotHeld
from gpshare.services.keyring import SessionKeys
from gpshare.services.record_keys import Recipient
from gpshare.store.keys.binding import ObjectKey
from gpshare.store.keys.envelopes import ObjectBinding, open_object, seal_object
from gpshare.store.keys.wraps import WrapBinding, commitment, unwrap_object_key, wrap_key
from gpshare.store.port import ObjectWrap, ReadTx, WrappedKey, WriteTx

CA_KIND = "practice-ca"
CA_ID = "practice-ca"
NOT_HELD = (
    "Only a practice administrator whose key a safeguarding lead has confirmed can issue signing "
    "certificates: ask the lead to confirm your key (they compare six words with you), then "
    "sign in again so an administrator's session can share the practice CA with you."
)


# A practice server's workstation CA (TLS client certificates, gpshare.store.postgres.tls) is
# kept the same way under its own kind and id, so its key is held by administrators only too.
WORKSTATION_CA = "workstation-ca"


def _binding(vault_id: str, kind: str = CA_KIND) -> ObjectBinding:
    # The CA is no record's object: its own id stands for the record, with no author or form.
    return ObjectBinding(vault_id, kind, kind, kind, 0, "", "", 0)


def _wrap(
    key: ObjectKey, vault_id: str, recipient: Recipient, created: str, kind: str = CA_KIND
) -> ObjectWrap:
    binding = WrapBinding.for_object(vault_id, kind, kind, recipient.id, recipient.generation)
    blob = wrap_key(key, recipient.public_key, binding)
    return ObjectWrap(kind, kind, recipient.id, recipient.generation, blob, created)


def seal_ca(
    vault_id: str, key_pem: bytes, admins: Sequence[Recipient], created: str, kind: str = CA_KIND
) -> tuple[bytes, bytes, list[ObjectWrap]]:
    """(commitment, sealed CA key, wraps for `admins`) to store with put_practice_ca (or, for
    the WORKSTATION_CA kind, the server's settings) and add_object_wraps."""
    key = ObjectKey.generate()
    sealed = seal_object(key, key_pem, _binding(vault_id, kind))
    wraps = [_wrap(key, vault_id, admin, created, kind) for admin in admins]
    return commitment(vault_id, kind, key), sealed, wraps


def _object_key(
    tx: ReadTx, vault_id: str, stored: WrappedKey, user_id: str, generation: int,
    private: X25519PrivateKey, kind: str = CA_KIND,
) -> ObjectKey:  # fmt: skip
    wraps = [
        w
        for w in tx.object_wraps_for(user_id, [(kind, kind)])
        if w.recipient_generation == generation
    ]
    if not wraps:
        raise KeyNotHeld(NOT_HELD)
    wrap = wraps[-1]
    return unwrap_object_key(wrap.wrap, private, wrap.binding(vault_id), stored.nonce)


def open_ca(tx: ReadTx, keys: SessionKeys, stored: WrappedKey, kind: str = CA_KIND) -> bytes:
    """The CA private key PEM, from the session user's own wrap (KeyNotHeld when they have
    none: a clinician, a lead, or an administrator not yet confirmed and shared with)."""
    if keys.user_keys is None or keys.own_generation is None:
        raise KeyNotHeld(NOT_HELD)
    key = _object_key(
        tx, keys.vault_id, stored, keys.user_id, keys.own_generation, keys.user_keys.encryption,
        kind,
    )  # fmt: skip
    return open_object(key, stored.wrapped, _binding(keys.vault_id, kind))


def pending_shares(tx: ReadTx, keys: SessionKeys, kind: str = CA_KIND) -> list[Recipient]:
    """Every other active administrator whose newest confirmed key (verified against the pin)
    holds no wrap of the CA yet."""
    if keys.user_keys is None:
        return []
    admins = [
        u.username
        for u in tx.list_users()
        if u.role == "admin" and u.active and u.username != keys.user_id
    ]
    missing = []
    for name in admins:
        recipient = keys.verified_user(name)  # None until a lead has confirmed their key
        if recipient is None:
            continue
        held = tx.object_wraps_for(name, [(kind, kind)])
        if not any(w.recipient_generation == recipient.generation for w in held):
            missing.append(recipient)
    return missing


def share_ca(
    tx: WriteTx, keys: SessionKeys, stored: WrappedKey, to: Sequence[Recipient], created: str,
    kind: str = CA_KIND,
) -> None:  # fmt: skip
    """Wrap the CA object key (opened from the acting administrator's own wrap) for `to`."""
    if keys.user_keys is None or keys.own_generation is None:
        raise KeyNotHeld(NOT_HELD)
    key = _object_key(
        tx, keys.vault_id, stored, keys.user_id, keys.own_generation, keys.user_keys.encryption,
        kind,
    )  # fmt: skip
    tx.add_object_wraps([_wrap(key, keys.vault_id, r, created, kind) for r in to])
