"""What sealing and opening a record needs from an unlocked vault-v2 session (DESIGN §10.1).

The session's key ring (gpshare/services/keyring.py) provides it; the record codec
(gpshare/services/_sealing.py) takes only this, so the two are built and tested apart.
Nothing here holds key material itself.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PublicKey

from gpshare.store.keys.binding import ClinicalKey, ObjectKey

# The recipient id of wraps made for the lead encryption key (its generation is the lead key
# generation); every other recipient id is a username. '#' cannot start a username
# (users.validate_username), so no user can share a recipient id with a role key — "lead" and
# "breakglass" are valid usernames, and a wrap for the user "lead" would collide with one for
# the lead key in object_wraps' primary key.
LEAD_RECIPIENT = "#lead"
# The recipient id of role-key wraps made for the break-glass key (vault.json slot).
BREAKGLASS_RECIPIENT = "#breakglass"
# The object kind of a pre-upgrade snapshot's own key (decision D3): wrapped for the lead
# and break-glass keys by the upgrade, opened by a lead to restore that snapshot.
LEGACY_BACKUP = "legacy-backup"


@dataclass(frozen=True)
class Recipient:
    """One key an object key is wrapped for: a user's (or the lead's) X25519 public key whose
    directory entry the session has verified against its pin, and that key's generation."""

    id: str
    generation: int
    public_key: X25519PublicKey


class RecordKeys(Protocol):
    """The keys a session offers the record codec."""

    @property
    def vault_id(self) -> str:
        """The vault the bindings name."""
        ...

    def clinical(self) -> ClinicalKey:
        """The newest clinical key generation this session holds, for new summaries and blind
        tokens; raises KeyNotHeld (gpshare.errors) when the user holds none yet (an unconfirmed
        or admin user)."""
        ...

    def clinical_generations(self) -> Sequence[ClinicalKey]:
        """Every live clinical generation this session holds (lookups and old summaries)."""
        ...

    def recipients(self, author: str) -> Sequence[Recipient]:
        """Whom a new object key of a record by `author` is wrapped for: the writer, the author
        (if another user) and the lead key, each only once and only when verified."""
        ...

    def open_object_key(
        self,
        object_kind: str,
        object_id: str,
        commitment: bytes,
        wraps: Sequence[tuple[str, int, bytes]],
    ) -> ObjectKey:
        """The object key from one of `wraps` ((recipient id, recipient generation, wrap) rows)
        that this session can open, checked against `commitment`; cached until lock. Raises
        KeyNotHeld when none is for this session, UnwrapError/CommitmentError when one is but
        fails."""
        ...
