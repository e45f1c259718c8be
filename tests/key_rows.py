"""One row of every vault-v2 key table (migration 0007), made with gpshare.store.keys and
written through the storage port, for the port and migration tests to read back and check."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

from gpshare.records import User
from gpshare.store import keys
from gpshare.store.crypto import CHEAP_TEST_KDF
from gpshare.store.keys.bundle import raw_public
from gpshare.store.port import (
    BREAKGLASS_EVENT,
    AuditEntry,
    ObjectWrap,
    RoleKeyWrap,
    Store,
    StoredBundle,
)

SMITH_PASSWORD = "smith-password-1"
# Who the rows are for: an author (confirmed), a newcomer (pending) and a lead.
ROLES = {"drsmith": "clinician", "drjones": "clinician", "lead": "lead"}
LEAD_KEY = "lead-key"  # the recipient id of a wrap made for the lead public key
BREAKGLASS = "breakglass"


@dataclass(frozen=True)
class KeyRows:
    """The private halves behind the stored rows, and the ids the reads need."""

    vault_id: str
    lead_signing: Ed25519PrivateKey
    next_lead_signing: Ed25519PrivateKey
    lead_encryption: X25519PrivateKey
    breakglass: X25519PrivateKey
    smith: keys.UserKeys
    jones: keys.UserKeys
    clinical: keys.ClinicalKey
    object_key: keys.ObjectKey
    commitment: bytes
    login_id: int
    breakglass_seq: int


def _ensure_users(store: Store, created: str) -> None:
    with store.maintenance() as tx:
        for username, role in ROLES.items():
            if tx.get_user(username) is None:
                tx.insert_user(User(username, username.title(), role, None, True, False, created))


def fill_key_tables(store: Store, vault_id: str, when: datetime) -> KeyRows:
    """Write a row to every key table, as the later steps of docs/vault-v2.md will.

    drsmith has an active bundle, a pending then a confirmed entry, clinical key g1, a wrap of
    record rec-1's answers key and a remembered login (revoked); drjones has a pending entry
    only; the lead key g1 has its entry, a wrap for break-glass and one rotation; one
    break-glass ceremony has one acknowledgement (its banner still shows)."""
    created = when.isoformat(timespec="seconds")
    _ensure_users(store, created)
    lead_signing, next_lead_signing = Ed25519PrivateKey.generate(), Ed25519PrivateKey.generate()
    lead_encryption, breakglass = X25519PrivateKey.generate(), X25519PrivateKey.generate()
    pin = raw_public(lead_signing)
    smith, jones = keys.UserKeys.generate(pin), keys.UserKeys.generate()
    clinical = keys.ClinicalKey.generate_generation(1)
    object_key = keys.ObjectKey.generate()

    def user_entry(username: str, user: keys.UserKeys) -> keys.UserEntry:
        return keys.UserEntry(
            vault_id, username, ROLES[username], raw_public(user.encryption), 1, True
        )

    smith_entry = user_entry("drsmith", smith)
    clinical_binding = keys.WrapBinding.for_role_key(
        keys.WrapPurpose.CLINICAL_KEY, vault_id, 1, "drsmith", 1
    )
    lead_binding = keys.WrapBinding.for_role_key(
        keys.WrapPurpose.LEAD_KEY, vault_id, 1, BREAKGLASS, 1
    )
    answers = keys.WrapBinding.for_object(vault_id, "answers", "rec-1", "drsmith", 1)
    answers_lead = keys.WrapBinding.for_object(vault_id, "answers", "rec-1", LEAD_KEY, 1)
    lead_secret = keys.binding.Secret(
        lead_encryption.private_bytes_raw()  # the lead key's X25519 private half
    )
    with store.write(AuditEntry("drsmith", "key_published")) as tx:
        tx.put_bundle(
            StoredBundle(
                "drsmith",
                "active",
                keys.seal_bundle(smith, SMITH_PASSWORD, vault_id, "drsmith", 1, CHEAP_TEST_KDF),
                created,
            )
        )
        tx.add_directory_entry(keys.SignedEntry(smith_entry, None), created)
        tx.add_directory_entry(keys.SignedEntry(user_entry("drjones", jones), None), created)
    with store.write(AuditEntry("lead", "key_confirmed")) as tx:
        tx.add_directory_entry(
            keys.sign_entry(
                keys.LeadKeyEntry(vault_id, 1, raw_public(lead_encryption)), lead_signing
            ),
            created,
        )
        tx.add_directory_entry(keys.sign_entry(smith_entry, lead_signing), created)
        tx.add_lead_rotation(
            keys.sign_rotation(lead_signing, raw_public(next_lead_signing), vault_id, 2)
        )
        tx.add_role_key_wraps(
            [
                RoleKeyWrap(
                    "clinical",
                    1,
                    "drsmith",
                    1,
                    keys.wrap_key(clinical, smith.encryption.public_key(), clinical_binding),
                ),
                RoleKeyWrap(
                    "lead",
                    1,
                    BREAKGLASS,
                    1,
                    keys.wrap_key(lead_secret, breakglass.public_key(), lead_binding),
                ),
            ]
        )
        tx.add_object_wraps(
            [
                ObjectWrap(
                    "answers",
                    "rec-1",
                    "drsmith",
                    1,
                    keys.wrap_key(object_key, smith.encryption.public_key(), answers),
                    created,
                ),
                ObjectWrap(
                    "answers",
                    "rec-1",
                    LEAD_KEY,
                    1,
                    keys.wrap_key(object_key, lead_encryption.public_key(), answers_lead),
                    created,
                ),
            ]
        )
    with store.write(AuditEntry("drsmith", "login_remembered")) as tx:
        login_id = tx.add_remembered_login("drsmith", "reception-pc", created)
    with store.write(AuditEntry("lead", "login_forgotten")) as tx:
        tx.revoke_remembered_login(login_id, created)
    with store.write(AuditEntry("admin", BREAKGLASS_EVENT, details={"grantee": "lead"})):
        pass
    seq = store.last_head.seq
    with store.write(AuditEntry("drsmith", "breakglass_acknowledged")) as tx:
        tx.add_breakglass_ack(seq, "drsmith", created)
    return KeyRows(
        vault_id,
        lead_signing,
        next_lead_signing,
        lead_encryption,
        breakglass,
        smith,
        jones,
        clinical,
        object_key,
        keys.commitment(vault_id, "rec-1", object_key),
        login_id,
        seq,
    )
