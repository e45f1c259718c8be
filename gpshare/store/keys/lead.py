"""The lead key of one generation (DESIGN §10.1 "Keys"): an X25519 pair (record keys are wrapped
for its public half) and an Ed25519 pair (it signs the key directory), both derived from one
32-byte seed, so the one `role_key_wraps` row per holder and generation carries both halves."""

from __future__ import annotations

import os

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

from gpshare.store.keys.binding import KEY_BYTES, Label, Secret, derive
from gpshare.store.keys.errors import KeyUsageError


class LeadKey(Secret):
    """The seed of lead key `generation`; its pairs are HKDF(seed, label, salt = vault id)."""

    __slots__ = ("generation",)
    kind = "lead key"
    labels = frozenset({Label.LEAD_ENCRYPTION, Label.LEAD_SIGNING, Label.LEAD_DATA})

    def __init__(self, key: bytes, generation: int) -> None:
        super().__init__(key)
        if generation < 1:
            raise KeyUsageError("a lead key generation starts at 1")
        self.generation = generation

    @classmethod
    def generate_generation(cls, generation: int) -> LeadKey:
        """A fresh random lead key of `generation`."""
        return cls(os.urandom(KEY_BYTES), generation)

    def encryption(self, vault_id: str) -> X25519PrivateKey:
        """The X25519 private key record keys are wrapped for (recipient "lead")."""
        raw = derive(self, Label.LEAD_ENCRYPTION, vault_id).require(Label.LEAD_ENCRYPTION)
        return X25519PrivateKey.from_private_bytes(raw)

    def signing(self, vault_id: str) -> Ed25519PrivateKey:
        """The Ed25519 private key that signs directory entries (the grant)."""
        raw = derive(self, Label.LEAD_SIGNING, vault_id).require(Label.LEAD_SIGNING)
        return Ed25519PrivateKey.from_private_bytes(raw)

    def data_key(self, vault_id: str) -> bytes:
        """The lead data key: the 32-byte SQLCipher key of the lead's search replica
        (lead-index.db). A new lead key generation (a lead left) gives a new data key, so the
        replica is rebuilt under a key the leaver never held."""
        return derive(self, Label.LEAD_DATA, vault_id).require(Label.LEAD_DATA)

    def __repr__(self) -> str:
        return f"<LeadKey generation {self.generation} (key material hidden)>"

    __str__ = __repr__
