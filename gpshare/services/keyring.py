"""The keys an unlocked vault-v2 session holds (docs/vault-v2.md §2, DESIGN §10.1 "Keys" and
"The key directory").

`SessionKeys` is what the record codec sees (it implements `RecordKeys`): the user's own key
pairs, the clinical key generations granted to them, the lead encryption public key verified
against the pin in their bundle, the lead key itself only for a lead who typed their password
in this session, and the object keys opened so far. `drop()` forgets all of it (lock, close).
Every public key something is wrapped for is verified against the pin first; an entry that
fails is refused with DirectoryAlteredError and never used.
"""

from __future__ import annotations

import hmac
from collections.abc import Callable, Iterable, Mapping, Sequence

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

from gpshare.errors import KeyNotHeld
from gpshare.services.record_keys import LEAD_RECIPIENT, Recipient
from gpshare.store.keys.binding import ClinicalKey, ObjectKey
from gpshare.store.keys.bundle import UserKeys, raw_public
from gpshare.store.keys.directory import (
    ALTERED,
    SignedEntry,
    verified_lead_key,
    verified_recipient_key,
    verify_entry,
    verify_rotation,
)
from gpshare.store.keys.errors import DirectoryAlteredError, RecipientDisabledError
from gpshare.store.keys.lead import LeadKey
from gpshare.store.keys.wraps import WrapBinding, unwrap_key, unwrap_object_key
from gpshare.store.port import DirectoryRow, LeadRotation, ReadTx, RoleKeyWrap

# One user's directory rows, oldest first (the session reads them from its store).
DirectoryLookup = Callable[[str], Sequence[DirectoryRow]]


def newest_confirmed(rows: Iterable[DirectoryRow]) -> DirectoryRow | None:
    """The newest signed user row of `rows` (the entry others wrap for), if any."""
    found = None
    for row in rows:
        if row.kind == "user" and row.signature is not None:
            found = row
    return found


def own_row(rows: Iterable[DirectoryRow], keys: UserKeys) -> DirectoryRow | None:
    """The newest row publishing `keys`' encryption public key: confirmed if a lead signed one."""
    public = raw_public(keys.encryption)
    mine = [r for r in rows if r.kind == "user" and hmac.compare_digest(r.public_key, public)]
    signed = [r for r in mine if r.signature is not None]
    found = signed or mine
    return found[-1] if found else None


def lead_signing_keys(rotations: Sequence[LeadRotation], vault_id: str) -> list[bytes]:
    """Every lead signing public key, oldest first: the first statement names its own key
    (made at init), each later one is verified against the one before it."""
    chain: list[bytes] = []
    for stored in rotations:
        statement = stored.statement(vault_id)
        current = chain[-1] if chain else statement.previous_key
        chain.append(verify_rotation(statement, current, vault_id))
    return chain


def pin_on_first_grant(
    signed: SignedEntry, rotations: Sequence[LeadRotation], vault_id: str
) -> bytes:
    """Trust on first grant: the lead signing public key that signed the user's own entry,
    from the rotation statements. (Whoever could write the database before that first grant
    could have put their own key there; docs/vault-v2.md §3 says so.)"""
    for key in reversed(lead_signing_keys(rotations, vault_id)):
        try:
            verify_entry(signed, key, vault_id)
        except DirectoryAlteredError:
            continue
        return key
    raise DirectoryAlteredError(
        f"{ALTERED}: {signed.entry.describe()} is not signed by any lead signing key of this vault"
    )


class SessionKeys:
    """The key ring of one unlocked v2 session (implements record_keys.RecordKeys)."""

    def __init__(
        self,
        vault_id: str,
        user_id: str,
        user_keys: UserKeys | None,
        own_generation: int | None,
        confirmed: bool,
        clinical: Mapping[int, ClinicalKey],
        lead_public: Recipient | None,
        lead_keys: Mapping[int, LeadKey],
        directory: DirectoryLookup,
        lead_problem: str | None = None,
    ) -> None:
        self._vault_id = vault_id
        self.user_id = user_id
        self.user_keys = user_keys
        self.own_generation = own_generation
        self.confirmed = confirmed
        self._clinical = dict(clinical)
        self._lead_public = lead_public
        self._lead_keys = dict(lead_keys)
        self._directory: DirectoryLookup | None = directory
        self._lead_problem = lead_problem
        self._object_keys: dict[tuple[str, str], ObjectKey] = {}

    @property
    def vault_id(self) -> str:
        """The vault the bindings name."""
        return self._vault_id

    @property
    def pin(self) -> bytes | None:
        """The lead signing public key pinned in the user's bundle (None before the first grant)."""
        return self.user_keys.pinned_lead_signing_key if self.user_keys else None

    @property
    def holds_lead_key(self) -> bool:
        """True only for a lead whose session typed their password."""
        return bool(self._lead_keys)

    def clinical(self) -> ClinicalKey:
        """The newest clinical generation held; KeyNotHeld when none is."""
        if not self._clinical:
            raise KeyNotHeld(
                "You do not hold the clinical key yet: a safeguarding lead must confirm your key "
                "(they compare the six words under File › My key words, or 'gpshare keys show', with you) before you can do this."
            )
        return self._clinical[max(self._clinical)]

    def clinical_generations(self) -> Sequence[ClinicalKey]:
        """Every clinical generation held, oldest first."""
        return [self._clinical[g] for g in sorted(self._clinical)]

    def lead_keys(self) -> Sequence[LeadKey]:
        """Every lead key generation held, oldest first (KeyNotHeld when none)."""
        if not self._lead_keys:
            raise KeyNotHeld(
                "This needs the lead key, which a session holds only for a safeguarding lead "
                "who typed their password (not a remembered login). Lock and sign in with your "
                "password."
            )
        return [self._lead_keys[g] for g in sorted(self._lead_keys)]

    def lead_data_key(self) -> bytes:
        """The key of the lead's search replica (DESIGN §10.1 class L), from the newest lead
        key generation held: KeyNotHeld without the lead key (a remembered login never has it,
        D2), so such a session cannot open the replica either."""
        return self.lead_keys()[-1].data_key(self._vault_id)

    def lead_signing(self) -> Ed25519PrivateKey:
        """The newest lead signing key (signs directory entries: the grant)."""
        return self.lead_keys()[-1].signing(self._vault_id)

    def own_recipient(self) -> Recipient:
        """The user's own key, as a recipient of what they write."""
        if self.user_keys is None or self.own_generation is None:
            raise KeyNotHeld(
                "Your keys are not made yet: choose your own password first (the one-time "
                "password cannot hold them)."
            )
        public = self.user_keys.encryption.public_key()
        return Recipient(self.user_id, self.own_generation, public)

    def _lookup(self, user_id: str) -> Sequence[DirectoryRow]:
        if self._directory is None:
            raise KeyNotHeld("The vault is locked. Unlock it again to continue.")
        return self._directory(user_id)

    def verified_user(self, user_id: str) -> Recipient | None:
        """`user_id`'s newest confirmed key, verified against the pin; None when they have no
        confirmed entry or are disabled; DirectoryAlteredError when the entry fails."""
        pin = self.pin
        if pin is None:
            return None
        rows = self._lookup(user_id)
        if rows and rows[-1].active is False:
            # Disabled (the mark may still wait for a lead's signature): never wrap for them.
            return None
        row = newest_confirmed(rows)
        if row is None:
            return None
        try:
            public, generation = verified_recipient_key(
                row.signed(self._vault_id), pin, self._vault_id, user_id
            )
        except RecipientDisabledError:
            return None
        return Recipient(user_id, generation, public)

    def lead_recipient(self) -> Recipient:
        """The current lead encryption public key, verified against the pin at unlock."""
        if self._lead_public is None:
            raise DirectoryAlteredError(
                self._lead_problem or f"{ALTERED}: there is no lead key entry to wrap for"
            )
        return self._lead_public

    def recipients(self, author: str) -> Sequence[Recipient]:
        """The writer, the author (another user whose entry is confirmed and verifies) and the
        lead key; a writer whose own key is not confirmed yet (no pin) wraps for themself only."""
        writer = self.own_recipient()
        if not self.confirmed or self.pin is None:
            return [writer]
        found = [writer]
        if author != self.user_id:
            other = self.verified_user(author)
            if other is not None:
                found.append(other)
        found.append(self.lead_recipient())
        return found

    def open_object_key(
        self,
        object_kind: str,
        object_id: str,
        commitment: bytes,
        wraps: Sequence[tuple[str, int, bytes]],
    ) -> ObjectKey:
        """The object key from a wrap this session can open, checked against `commitment` and
        cached until lock."""
        cached = self._object_keys.get((object_kind, object_id))
        if cached is not None:
            return cached
        for recipient, generation, blob in wraps:
            private = self._private_for(recipient, generation)
            if private is None:
                continue
            binding = WrapBinding.for_object(
                self._vault_id, object_kind, object_id, recipient, generation
            )
            key = unwrap_object_key(blob, private, binding, commitment)
            self._object_keys[(object_kind, object_id)] = key
            return key
        raise KeyNotHeld(
            f"You do not hold a key for this {object_kind}: it was not shared with your key "
            "(a lead can open it, and re-shares it when they confirm your key)."
        )

    def remember_object_key(self, object_kind: str, object_id: str, key: ObjectKey) -> None:
        """Cache an object key this session just made (a new record's answers) until lock, so
        its next save re-seals under it without an unwrap."""
        self._object_keys[(object_kind, object_id)] = key

    def _private_for(self, recipient: str, generation: int) -> X25519PrivateKey | None:
        if (
            recipient == self.user_id
            and generation == self.own_generation
            and self.user_keys is not None
        ):
            return self.user_keys.encryption
        if recipient == LEAD_RECIPIENT and generation in self._lead_keys:
            return self._lead_keys[generation].encryption(self._vault_id)
        return None

    def lead_private(self, generation: int) -> X25519PrivateKey:
        """The lead X25519 private key of `generation` (a lead's re-wrap on confirmation)."""
        if generation not in self._lead_keys:
            self.lead_keys()  # raises KeyNotHeld when none is held at all
            raise KeyNotHeld(f"This session does not hold lead key generation {generation}.")
        return self._lead_keys[generation].encryption(self._vault_id)

    def add_rotation(
        self, clinical: ClinicalKey, lead: LeadKey | None, lead_signing_public: bytes
    ) -> None:
        """After a rotation this session made commits: hold clinical key g+1 (and the new lead
        key) and follow the rotation to its new pin in memory (the bundle is re-sealed with it
        at the next password unlock)."""
        self._clinical[clinical.generation] = clinical
        if lead is not None:
            self._lead_keys[lead.generation] = lead
            public = lead.encryption(self._vault_id).public_key()
            self._lead_public = Recipient(LEAD_RECIPIENT, lead.generation, public)
        if self.user_keys is not None:
            self.user_keys = self.user_keys.with_pin(lead_signing_public)

    def drop(self) -> None:
        """Forget every key (lock or close): dropped, not wiped (DESIGN "Limits")."""
        self.user_keys = None
        self.own_generation = None
        self.confirmed = False
        self._clinical.clear()
        self._lead_keys.clear()
        self._object_keys.clear()
        self._lead_public = None
        self._directory = None


def follow_pin(pin: bytes, rotations: Sequence[LeadRotation], vault_id: str) -> bytes:
    """The newest lead signing public key reachable from `pin` through the rotation statements,
    each verified against the key before it; DirectoryAlteredError when the pin is not in the
    chain or a later statement is not signed by its predecessor (a forged rotation)."""
    start = None
    for index, stored in enumerate(rotations):
        if hmac.compare_digest(stored.new_key, pin):
            start = index
    if start is None:
        raise DirectoryAlteredError(
            f"{ALTERED}: the lead signing key pinned in your key bundle is not among the vault's "
            "lead signing keys"
        )
    current = pin
    for stored in rotations[start + 1 :]:
        current = verify_rotation(stored.statement(vault_id), current, vault_id)
    return current


def _unwrapped_role_keys(
    wraps: Sequence[RoleKeyWrap], private: X25519PrivateKey, vault_id: str
) -> list[tuple[int, bytes]]:
    return [(w.generation, unwrap_key(w.wrap, private, w.binding(vault_id))) for w in wraps]


def open_session_keys(
    tx: ReadTx,
    vault_id: str,
    user_id: str,
    role: str,
    user_keys: UserKeys | None,
    own_generation: int | None,
    password_typed: bool,
    directory: DirectoryLookup,
) -> SessionKeys:
    """The key ring of a session: after the user's own entry verifies against their pin, the
    clinical generations wrapped for their key, the verified lead encryption key, and (a lead
    with a typed password only) the lead key generations."""

    unconfirmed = SessionKeys(
        vault_id, user_id, user_keys, own_generation, False, {}, None, {}, directory
    )
    if user_keys is None or own_generation is None:
        return unconfirmed
    user_rows = tx.directory_entries(user_id, "user")
    row = own_row(user_rows, user_keys)
    pin = user_keys.pinned_lead_signing_key
    confirmed = newest_confirmed(user_rows)
    swapped = confirmed is not None and confirmed.generation == own_generation and confirmed != row
    if swapped or (pin is not None and (row is None or row.signature is None)):
        # The pin is set only once a lead has signed this very key: its signed entry is gone.
        raise DirectoryAlteredError(
            f"{ALTERED}: the confirmed entry of {user_id} (key generation {own_generation}) no "
            "longer holds their key"
        )
    if row is None or row.signature is None or pin is None:
        return unconfirmed
    # Follow lead key rotations from the pin (each statement signed by the key before it).
    followed = follow_pin(pin, tx.lead_rotations(), vault_id)
    if followed != pin:
        user_keys, pin = user_keys.with_pin(followed), followed
    # Raises DirectoryAlteredError when the user's own entry does not verify: nothing is used.
    verified_recipient_key(row.signed(vault_id), pin, vault_id, user_id)
    lead_public, problem = None, None
    lead_rows = tx.directory_entries(None, "lead-key")
    if lead_rows:
        newest = max(lead_rows, key=lambda r: (r.generation, r.id))
        try:
            public = verified_lead_key(newest.signed(vault_id), pin, vault_id, newest.generation)
            lead_public = Recipient(LEAD_RECIPIENT, newest.generation, public)
        except DirectoryAlteredError as exc:
            problem = str(exc)
    mine = [w for w in tx.role_key_wraps(user_id) if w.recipient_generation == own_generation]
    clinical: dict[int, ClinicalKey] = {}
    lead_keys: dict[int, LeadKey] = {}
    if role in ("clinician", "lead"):
        wraps = [w for w in mine if w.key_name == "clinical"]
        for generation, raw in _unwrapped_role_keys(wraps, user_keys.encryption, vault_id):
            clinical[generation] = ClinicalKey(raw, generation)
    if role == "lead" and password_typed and user_keys.lead_access is not None:
        # Decision D2: lead-key wraps are for the lead-access pair, which only the bundle
        # opened with the typed password holds (a remembered login's copy omits it).
        wraps = [w for w in mine if w.key_name == "lead"]
        for generation, raw in _unwrapped_role_keys(wraps, user_keys.lead_access, vault_id):
            lead_keys[generation] = LeadKey(raw, generation)
    return SessionKeys(
        vault_id,
        user_id,
        user_keys,
        own_generation,
        True,
        clinical,
        lead_public,
        lead_keys,
        directory,
        problem,
    )
