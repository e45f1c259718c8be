"""The key directory in a vault-v2 practice (session.directory): pending keys, a lead's
confirmation, and the grant that both confirmation and appointment make (DESIGN §10.1 "Users,
resets and grants"; docs/vault-v2.md §3 "Lead confirms", "Bootstrap").

Only a lead grants: the role check (gpshare/access.py) refuses anyone else, and the grant needs
the lead signing key, which only a lead's password-typed session holds. Nothing is ever
wrapped for a key a lead has not confirmed.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace

from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PublicKey

from gpshare.errors import NotFound, ServiceError, ValidationFailed
from gpshare.filters import RecordFilter
from gpshare.services import rotation
from gpshare.services._base import Service
from gpshare.services.keyring import SessionKeys
from gpshare.services.record_keys import LEAD_RECIPIENT, Recipient
from gpshare.store.keys.binding import ClinicalKey, ObjectKey
from gpshare.store.keys.bundle import raw_public
from gpshare.store.keys.directory import (
    SignedEntry,
    UserEntry,
    fingerprint,
    fingerprint_matches,
    sign_entry,
    verified_lead_access_key,
    verified_recipient_key,
)
from gpshare.store.keys.lead import LeadKey
from gpshare.store.keys.wraps import WrapBinding, WrapPurpose, unwrap_key, wrap_key
from gpshare.store.port import ObjectWrap, RoleKeyName, RoleKeyWrap, WriteTx


def words(public_key: bytes, vault_id: str) -> str:
    """The six fingerprint words of a public key, as shown on both screens."""
    return " ".join(fingerprint(public_key, vault_id))


def grant(
    tx: WriteTx,
    vault_id: str,
    lead_signing: LeadKey,
    entry: UserEntry,
    clinical: Sequence[ClinicalKey],
    lead_keys: Sequence[LeadKey],
    created: str,
) -> SignedEntry:
    """Sign `entry` with the lead signing key (the grant) and wrap the clinical generations
    (and, for a lead, the lead key generations) for its key, in the caller's transaction.

    The one appointment step of a lead's confirmation, `init --lead` and (step 7) the
    break-glass ceremony."""
    signing = lead_signing.signing(vault_id)
    signed = sign_entry(entry, signing)
    # The signed entry is verified as every client will verify it before wrapping for it.
    public, generation = verified_recipient_key(
        signed, raw_public(signing), vault_id, entry.user_id
    )
    tx.add_directory_entry(signed, created)
    held: list[tuple[RoleKeyName, WrapPurpose, ClinicalKey | LeadKey, X25519PublicKey]] = [
        ("clinical", WrapPurpose.CLINICAL_KEY, key, public) for key in clinical
    ]
    if lead_keys:
        # Decision D2: the lead key goes to the lead-access pair, never the personal key a
        # remembered login's bundle copy holds (DirectoryAlteredError when none is published).
        access, _ = verified_lead_access_key(signed, raw_public(signing), vault_id, entry.user_id)
        held += [("lead", WrapPurpose.LEAD_KEY, key, access) for key in lead_keys]
    wraps = [
        RoleKeyWrap(
            name,
            key.generation,
            entry.user_id,
            generation,
            wrap_key(
                key,
                recipient,
                WrapBinding.for_role_key(
                    purpose, vault_id, key.generation, entry.user_id, generation
                ),
            ),
        )
        for name, purpose, key, recipient in held
    ]
    tx.add_role_key_wraps(wraps)
    return signed


def rewrap_objects(tx: WriteTx, keys: SessionKeys, user: Recipient, created: str) -> int:
    """Wrap for `user`'s newly confirmed key every object key of theirs the lead can open: the
    objects wrapped for an older key of theirs (a reset) and the records they authored (kept
    for the lead only after a migration). Returns how many were wrapped."""
    theirs = {(w.object_kind, w.object_id) for w in tx.object_wraps_for(user.id)}
    held = {
        (w.object_kind, w.object_id)
        for w in tx.object_wraps_for(user.id)
        if w.recipient_generation == user.generation
    }
    authored = {r.id for r in tx.list_records(RecordFilter(clinician=user.id), light=True)}
    # A migration wraps the objects of their records (addenda, letters, notes, reviews) for
    # the lead only, as it does the answers: they are theirs too.
    theirs |= _objects_of(tx, authored)
    wrapped: list[ObjectWrap] = []
    for wrap in tx.object_wraps_for(LEAD_RECIPIENT):
        subject = (wrap.object_kind, wrap.object_id)
        if subject in held or not (subject in theirs or wrap.object_id in authored):
            continue
        raw = unwrap_key(
            wrap.wrap, keys.lead_private(wrap.recipient_generation), wrap.binding(keys.vault_id)
        )
        binding = WrapBinding.for_object(
            keys.vault_id, wrap.object_kind, wrap.object_id, user.id, user.generation
        )
        blob = wrap_key(ObjectKey(raw), user.public_key, binding)
        wrapped.append(
            ObjectWrap(wrap.object_kind, wrap.object_id, user.id, user.generation, blob, created)
        )
        held.add(subject)
    tx.add_object_wraps(wrapped)
    return len(wrapped)


def _objects_of(tx: WriteTx, record_ids: set[str]) -> set[tuple[str, str]]:
    """(kind, object id) of every append-only object of these records wrapped for the lead."""
    found: set[tuple[str, str]] = set()
    lead = [LEAD_RECIPIENT]
    for record_id in sorted(record_ids):
        objects = [a.body for a in tx.sealed_addenda(record_id, lead)]
        objects += [r.body for r in tx.sealed_reviews(record_id, lead)]
        for letter in tx.sealed_letters(record_id, lead):
            objects += [letter.pdf] if letter.unsigned is None else [letter.pdf, letter.unsigned]
        found |= {(o.kind, o.object_id) for o in objects}
    for fu in tx.sealed_followups(sorted(record_ids), lead):
        if fu.note is not None:
            found.add((fu.note.kind, fu.note.object_id))
    return found


@dataclass(frozen=True)
class RememberedLoginView:
    """One remembered login as the Admin screen and `gpshare keys logins` list it."""

    id: int
    username: str
    full_name: str
    workstation: str
    created: str
    revoked: str | None


@dataclass(frozen=True)
class PendingKey:
    """A key published by a user's own client and waiting for a lead to confirm it."""

    username: str
    full_name: str
    role: str
    key_generation: int
    fingerprint: str  # six words
    published: str


@dataclass(frozen=True)
class OwnKey:
    """The acting user's current key: its fingerprint and whether a lead has confirmed it."""

    username: str
    key_generation: int
    fingerprint: str
    confirmed: bool


class KeysService(Service):
    """Pending keys and their confirmation by a lead (vault version 2 only)."""

    def _keys(self) -> SessionKeys:
        keys = self._session.keys
        if keys is None:
            raise ServiceError(
                "This vault is version 1: it has no key directory (keys are confirmed only in "
                "a version-2 vault)."
            )
        return keys

    def own_key(self) -> OwnKey | None:
        """Your own key's six fingerprint words (to read to the lead who confirms it), or None
        while you still have a one-time password."""
        self._require("read_own_key")
        keys = self._keys()
        if keys.user_keys is None or keys.own_generation is None:
            return None
        public = raw_public(keys.user_keys.encryption)
        return OwnKey(
            keys.user_id, keys.own_generation, words(public, keys.vault_id), keys.confirmed
        )

    def pending(self) -> list[PendingKey]:
        """Lead: every key waiting for confirmation, with its fingerprint."""
        self._require("confirm_key")
        keys = self._keys()
        with self._session._read() as tx:
            # A disabled mark waiting for a lead's rotation is not a key to confirm.
            rows = [r for r in tx.pending_entries() if r.active is not False]
            names = {u.username: u.full_name for u in tx.list_users()}
        return [
            PendingKey(
                str(r.user_id),
                names.get(str(r.user_id), str(r.user_id)),
                str(r.role),
                r.generation,
                words(r.public_key, keys.vault_id),
                r.created,
            )
            for r in rows
        ]

    def confirm(self, username: str, typed_words: str) -> PendingKey:
        """Lead: confirm `username`'s pending key after comparing its six words with them.

        In one transaction (one `key_confirmed` event): sign their entry, wrap every clinical
        generation (and for a lead the lead key) for it, and re-wrap their record keys. Wrong
        words write nothing."""
        self._require("confirm_key")
        keys = self._keys()
        with self._session._read() as tx:
            rows = [
                r for r in tx.pending_entries() if r.user_id == username and r.active is not False
            ]
            user = tx.get_user(username)
        if not rows:
            raise NotFound(
                f"{username} has no key waiting for confirmation (their key is confirmed already, "
                "or they have not signed in with their own password yet)."
            )
        row = rows[0]
        if user is None or not user.active:
            raise NotFound(f"{username} is not an active user of this vault.")
        found = PendingKey(
            username,
            user.full_name,
            str(row.role),
            row.generation,
            words(row.public_key, keys.vault_id),
            row.created,
        )
        if not fingerprint_matches(row.public_key, keys.vault_id, typed_words):
            message = (
                f"Those words do not match the key {username} published: nothing was confirmed. "
                f"Ask {username} to read out the six words their computer shows for their key "
                "(File › My key words, or 'gpshare keys show') and type them exactly; if they "
                "still differ, do not "
                "confirm, and tell the practice administrator."
            )
            raise ValidationFailed(message, [{"field": "fingerprint", "message": message}])
        lead_keys = keys.lead_keys()  # KeyNotHeld for a remembered-login session
        entry = UserEntry(
            keys.vault_id,
            username,
            user.role,
            row.public_key,
            row.generation,
            True,
            row.lead_access_key if user.role == "lead" else None,
        )
        clinical = keys.clinical_generations() if user.role in ("clinician", "lead") else []
        granted_lead = lead_keys if user.role == "lead" else []
        now = self._session.now_iso()
        counted: dict[str, int] = {}

        def work(tx: WriteTx) -> None:
            signed = grant(tx, keys.vault_id, lead_keys[-1], entry, clinical, granted_lead, now)
            public, generation = verified_recipient_key(
                signed, raw_public(lead_keys[-1].signing(keys.vault_id)), keys.vault_id, username
            )
            counted["objects"] = rewrap_objects(
                tx, keys, Recipient(username, generation, public), now
            )

        self._session._write(
            "key_confirmed",
            work,
            details={
                "username": username,
                "key_generation": row.generation,
                "fingerprint": found.fingerprint,
                "clinical_generations": [k.generation for k in clinical],
                "lead_generations": [k.generation for k in granted_lead],
            },
        )
        return found

    def rotation_pending(self) -> list[str]:
        """Lead or admin: the users disabled since the last key rotation (empty when none is
        pending, and always on a version-1 vault)."""
        self._require("key_rotation_state")
        if self._session.keys is None:
            return []
        with self._session._read() as tx:
            return rotation.rotation_pending(tx)

    def rotate(self) -> rotation.Rotated:
        """Lead (password typed): rotate by generation now — clinical key g+1 for every active,
        confirmed clinician and lead and the break-glass key; a new lead key too when a lead
        left. One transaction, one `keys_rotated` event."""
        self._require("rotate_keys")
        keys = self._keys()
        held = keys.lead_keys()  # KeyNotHeld for a remembered-login session, before any write
        breakglass = rotation.breakglass_recipient(self._session.vault.breakglass_public_key())
        now = self._session.now_iso()
        with self._session._read() as tx:
            details = rotation.plan_rotation(tx).details()
        done = self._session._write(
            "keys_rotated",
            lambda tx: rotation.rotate_in(tx, keys.vault_id, held, breakglass, now),
            details=details,
        )
        keys.add_rotation(done.clinical, done.lead, done.lead_signing_public)
        return done

    def remembered_logins(self) -> list[RememberedLoginView]:
        """Lead or admin: every remembered login of this vault (revoked ones too), oldest
        first (empty on a version-1 vault, which does not list them)."""
        self._require("manage_logins")
        if self._session.keys is None:
            return []
        with self._session._read() as tx:
            names = {u.username: u.full_name for u in tx.list_users()}
            rows = tx.remembered_logins()
        return [
            RememberedLoginView(
                r.id,
                r.user_id,
                names.get(r.user_id, r.user_id),
                r.workstation,
                r.created,
                r.revoked,
            )
            for r in rows
        ]

    def revoke_login(self, login_id: int) -> RememberedLoginView:
        """Lead or admin: revoke a remembered login; that workstation's keyring slot is then
        refused at unlock (the user types their password). Audited as `login_revoked`."""
        self._require("manage_logins")
        self._keys()
        found = [r for r in self.remembered_logins() if r.id == login_id]
        if not found:
            raise NotFound(
                f"There is no remembered login number {login_id}: list them with 'gpshare keys "
                "logins' (or on the Admin screen) and use a number from the list."
            )
        if found[0].revoked is not None:
            message = f"Remembered login {login_id} was already revoked on {found[0].revoked}."
            raise ValidationFailed(message, [{"field": "login", "message": message}])
        now = self._session.now_iso()
        self._session._write(
            "login_revoked",
            lambda tx: tx.revoke_remembered_login(login_id, now),
            details={"login_id": login_id, "username": found[0].username},
        )
        return replace(found[0], revoked=now)
