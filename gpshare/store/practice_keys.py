"""What unlocking a format-2 vault hands back: the keys derived from the practice key.

In a version-1 vault every slot wraps the database key, and the services pass that one value
(`db_key`) to the engine, the audit chain, the header MAC and the rollback anchor, each of
which derives its own sub-key. In version 2 the slots wrap the *practice key*, and each of
those uses has its own HKDF label (DESIGN §10.1; D7 in docs/vault-v2.md for the header MAC
and anchor). `PracticeKeys` keeps the services unchanged while they still speak `db_key`:
its bytes are the SQLCipher key, so opening the database, attaching a backup and passing it
along work as before, and the store modules that take `db_key` (`vault`, `audit`, `anchor`)
recognise it and use its derived key for their purpose instead of a v1 sub-key.
"""

from __future__ import annotations

from gpshare.store.keys.binding import DerivedKey, Label, PracticeKey, derive


class PracticeKeys(bytes):
    """The SQLCipher key (these bytes) plus the practice key's other derived keys."""

    practice: PracticeKey
    vault_id: str
    _derived: dict[Label, DerivedKey]

    def __new__(cls, practice: PracticeKey, vault_id: str) -> PracticeKeys:
        derived = {label: derive(practice, label, vault_id) for label in PracticeKey.labels}
        self = super().__new__(cls, derived[Label.SQLCIPHER].require(Label.SQLCIPHER))
        self.practice = practice
        self.vault_id = vault_id
        self._derived = derived
        return self

    def key(self, label: Label) -> bytes:
        """The key derived for `label` (KeyUsageError for a label the practice key lacks)."""
        found = self._derived.get(label)
        if found is None:
            # derive() names the refusal (a practice key does not derive that label).
            return derive(self.practice, label, self.vault_id).reveal()
        return found.require(label)

    @property
    def m_row_key(self) -> DerivedKey:
        """HKDF(practice, "m-row") as a DerivedKey, derived once at unlock (every M row read
        on a practice server checks a MAC under it)."""
        return self._derived[Label.M_ROW]

    @property
    def audit(self) -> bytes:
        """HKDF(practice, "audit"): the audit chain key."""
        return self.key(Label.AUDIT)

    @property
    def header_mac(self) -> bytes:
        """HKDF(practice, "header-mac"): the vault.json MAC key (D7)."""
        return self.key(Label.HEADER_MAC)

    @property
    def anchor(self) -> bytes:
        """HKDF(practice, "rollback-anchor"): the workstation anchor's MAC key (D7)."""
        return self.key(Label.ROLLBACK_ANCHOR)

    @property
    def m_row(self) -> bytes:
        """HKDF(practice, "m-row"): the M row MAC key (used from step 4)."""
        return self.key(Label.M_ROW)

    def __repr__(self) -> str:
        return "<PracticeKeys (key material hidden)>"

    __str__ = __repr__

    def __reduce__(self) -> str | tuple[object, ...]:
        # A pickle is plaintext on disk: keys are never pickled by accident.
        raise TypeError("practice keys cannot be pickled")
