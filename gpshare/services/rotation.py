"""Rotation by generation (docs/vault-v2.md §3 "Disable + rotation by generation", DESIGN §10.1
"Users, resets and grants").

Disabling a user marks their directory entry disabled and leaves a rotation pending; the next
lead session (at unlock, `gpshare keys rotate`, or the Lead screen) runs `rotate_in`: clinical
key g+1 wrapped for every active, confirmed clinician and lead and for the break-glass key, and,
when a lead left, a new lead key with a rotation statement signed by the old signing key.
Nothing old is re-wrapped: a leaver keeps what they could already open ("Limits"), and
remaining leads keep the old lead key generations that old objects are wrapped for.

`rotate_in` runs inside the caller's write transaction, so the step-7 break-glass ceremony can
rotate in the same transaction as its grant.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass

from gpshare.errors import KeyNotHeld
from gpshare.records import User
from gpshare.services.keyring import newest_confirmed
from gpshare.services.record_keys import BREAKGLASS_RECIPIENT, Recipient
from gpshare.store.keys.binding import ClinicalKey
from gpshare.store.keys.bundle import raw_public
from gpshare.store.keys.directory import (
    ALTERED,
    LeadKeyEntry,
    SignedEntry,
    UserEntry,
    sign_entry,
    sign_rotation,
    verified_lead_access_key,
    verified_recipient_key,
)
from gpshare.store.keys.errors import DirectoryAlteredError
from gpshare.store.keys.lead import LeadKey
from gpshare.store.keys.wraps import WrapBinding, WrapPurpose, wrap_key
from gpshare.store.port import DirectoryRow, ReadTx, RoleKeyWrap, WriteTx

# settings key (class M): JSON list of the usernames disabled since the last rotation.
PENDING_SETTING = "key_rotation_pending"


def rotation_pending(tx: ReadTx) -> list[str]:
    """The users disabled since the last rotation (empty when none is pending)."""
    raw = tx.get_settings().get(PENDING_SETTING)
    try:
        found = json.loads(raw) if raw else []
    except ValueError:
        found = []
    return [str(u) for u in found] if isinstance(found, list) else []


def mark_disabled(tx: WriteTx, vault_id: str, username: str, created: str) -> None:
    """A disable on a v2 vault: append a disabled directory entry for the user's newest key
    (unsigned: an admin holds no lead signing key; the next lead rotation signs it) and record
    the rotation as pending. A user who never published a key only joins the pending list."""
    rows = tx.directory_entries(username, "user")
    if rows:
        newest = rows[-1]
        entry = UserEntry(
            vault_id,
            username,
            str(newest.role),
            newest.public_key,
            newest.generation,
            False,
            newest.lead_access_key,
        )
        tx.add_directory_entry(SignedEntry(entry, None), created)
    pending = rotation_pending(tx)
    if username not in pending:
        tx.put_settings({PENDING_SETTING: json.dumps([*pending, username])})


def breakglass_recipient(public_key: bytes, generation: int = 1) -> Recipient:
    """The break-glass public key (vault.json) as the recipient of role-key wraps; its
    generation is 1 as at init (the step-7 ceremony passes its own)."""
    from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PublicKey

    public = X25519PublicKey.from_public_bytes(public_key)
    return Recipient(BREAKGLASS_RECIPIENT, generation, public)


@dataclass(frozen=True)
class Rotated:
    """What one rotation made: the new clinical generation, the new lead key generation (None
    when no lead left), the leavers whose disabled entries it signed, and whom it wrapped for."""

    clinical: ClinicalKey
    lead: LeadKey | None
    lead_signing_public: bytes
    disabled: tuple[str, ...]
    holders: tuple[str, ...]


@dataclass(frozen=True)
class RotationPlan:
    """What a rotation would do, read before it (its audit details are fixed before the write)."""

    users: dict[str, User]
    rows: dict[str, list[DirectoryRow]]
    leavers: list[str]
    lead_left: bool
    clinical_generation: int  # newest existing
    lead_generation: int  # newest existing

    def details(self) -> dict[str, object]:
        """The `keys_rotated` audit details (no key material)."""
        return {
            "clinical_generation": self.clinical_generation + 1,
            "lead_generation": self.lead_generation + 1 if self.lead_left else None,
            "disabled": list(self.leavers),
        }


def plan_rotation(tx: ReadTx) -> RotationPlan:
    """The leavers (inactive users still granted, or marked pending) and current generations."""
    users = {u.username: u for u in tx.list_users()}
    pending = set(rotation_pending(tx))
    rows = {name: tx.directory_entries(name, "user") for name in users}

    def still_granted(name: str) -> bool:
        confirmed = newest_confirmed(rows[name])
        return confirmed is not None and bool(confirmed.active)

    leavers = sorted(
        name
        for name, user in users.items()
        if not user.active and (name in pending or still_granted(name))
    )
    return RotationPlan(
        users,
        rows,
        leavers,
        any(users[name].role == "lead" for name in leavers),
        max((w.generation for w in tx.role_key_wraps(key_name="clinical")), default=0),
        max((w.generation for w in tx.role_key_wraps(key_name="lead")), default=0),
    )


def _role_wrap(
    name: str, key: ClinicalKey | LeadKey, recipient: Recipient, vault_id: str
) -> RoleKeyWrap:
    purpose = WrapPurpose.CLINICAL_KEY if name == "clinical" else WrapPurpose.LEAD_KEY
    binding = WrapBinding.for_role_key(
        purpose, vault_id, key.generation, recipient.id, recipient.generation
    )
    blob = wrap_key(key, recipient.public_key, binding)
    return RoleKeyWrap(
        "clinical" if name == "clinical" else "lead",
        key.generation,
        recipient.id,
        recipient.generation,
        blob,
    )


def _resign(row: DirectoryRow, vault_id: str, active: bool) -> UserEntry:
    return UserEntry(
        vault_id,
        str(row.user_id),
        str(row.role),
        row.public_key,
        row.generation,
        active,
        row.lead_access_key,
    )


def rotate_in(
    tx: WriteTx,
    vault_id: str,
    held: Sequence[LeadKey],
    breakglass: Recipient,
    created: str,
) -> Rotated:
    """Rotate by generation inside the caller's write transaction, with `held` the lead key
    generations the caller holds, oldest first (a lead's session, or the break-glass
    ceremony's), KeyNotHeld when none. The caller writes the one `keys_rotated` audit event
    (details from `plan_rotation(tx).details()`, read before the write) and, after it commits,
    gives a session the new keys with `SessionKeys.add_rotation`.

    Signs a disabled entry for each user no longer active; makes clinical key g+1 and wraps it
    for each active user whose newest confirmed entry is active and whose role is clinical, and
    for `breakglass`. When a leaver was a lead: a new lead key, a rotation statement signed by
    the old lead signing key, a new signed lead-key entry, every remaining entry re-signed with
    the new key (clients re-pin by following the statement), and the new lead key wrapped for
    each remaining lead and `breakglass`. Clears the pending mark."""
    if not held:
        raise KeyNotHeld("A key rotation needs the lead key (a lead's typed-password session).")
    plan = plan_rotation(tx)
    users, rows_by_user, leavers, lead_left = plan.users, plan.rows, plan.leavers, plan.lead_left
    signer = held[-1]
    if plan.lead_generation != signer.generation:
        raise DirectoryAlteredError(
            f"{ALTERED}: a newer lead key generation exists than this session holds"
        )
    new_lead: LeadKey | None = None
    if lead_left:
        new_lead = LeadKey.generate_generation(signer.generation + 1)
        new_signing = raw_public(new_lead.signing(vault_id))
        tx.add_lead_rotation(
            sign_rotation(signer.signing(vault_id), new_signing, vault_id, new_lead.generation)
        )
        lead_public = raw_public(new_lead.encryption(vault_id))
        tx.add_directory_entry(
            sign_entry(
                LeadKeyEntry(vault_id, new_lead.generation, lead_public),
                new_lead.signing(vault_id),
            ),
            created,
        )
        signer = new_lead
    signing = signer.signing(vault_id)
    signing_public = raw_public(signing)
    clinical = ClinicalKey.generate_generation(plan.clinical_generation + 1)
    wraps = [_role_wrap("clinical", clinical, breakglass, vault_id)]
    if new_lead is not None:
        wraps.append(_role_wrap("lead", new_lead, breakglass, vault_id))
    holders: list[str] = []
    for name in sorted(users):
        user, rows = users[name], rows_by_user[name]
        confirmed = newest_confirmed(rows)
        if not user.active:
            # A leaver's entry, or (after a lead key rotation) every disabled entry, is signed
            # by the current key so clients see "disabled", not an unverifiable entry.
            base = confirmed or (rows[-1] if rows else None)
            if base is not None and (name in leavers or lead_left):
                tx.add_directory_entry(sign_entry(_resign(base, vault_id, False), signing), created)
            continue
        if confirmed is None or not confirmed.active:
            continue
        signed = SignedEntry(_resign(confirmed, vault_id, True), confirmed.signature)
        if lead_left:
            signed = sign_entry(signed.entry, signing)
            tx.add_directory_entry(signed, created)
            if rows[-1].signature is None and rows[-1].id > confirmed.id:
                # Keep a newer pending key (after a reset) the newest row, still pending.
                tx.add_directory_entry(rows[-1].signed(vault_id), rows[-1].created)
        # Verified as every client verifies before wrapping (DirectoryAlteredError otherwise).
        public, generation = verified_recipient_key(signed, signing_public, vault_id, name)
        recipient = Recipient(name, generation, public)
        if user.role in ("clinician", "lead"):
            wraps.append(_role_wrap("clinical", clinical, recipient, vault_id))
            holders.append(name)
        if user.role == "lead" and new_lead is not None:
            # Decision D2: to the lead's lead-access pair (never their personal key).
            access, _ = verified_lead_access_key(signed, signing_public, vault_id, name)
            wraps.append(
                _role_wrap("lead", new_lead, Recipient(name, generation, access), vault_id)
            )
    tx.add_role_key_wraps(wraps)
    tx.put_settings({PENDING_SETTING: json.dumps([])})
    return Rotated(clinical, new_lead, signing_public, tuple(leavers), tuple(holders))
