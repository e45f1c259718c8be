"""Offline attacks by an insider with a copy of a version-2 vault folder (issue #13, DESIGN
§10.1 "Offline attack tests", docs/vault-v2.md §5).

The attacker here uses the project's own store modules (vault header, SQLCipher engine, key
primitives) and what they legitimately hold: their own password and, for the admin, the
practice recovery code. They never go through gpshare.services, which would enforce the role
table; what these tests show is that the *keys* enforce it.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from gpshare.clock import FixedClock
from gpshare.store import open_store
from gpshare.store.keys import Label, UnwrapError, open_bundle, unwrap_key
from gpshare.store.keys.bundle import UserKeys
from gpshare.store.port import RoleKeyWrap, Store
from gpshare.store.practice_keys import PracticeKeys
from gpshare.store.vault import Vault
from tests.conftest import PASSWORDS, VaultEnv


@contextmanager
def insider_store(folder: Path, key: bytes, clock: FixedClock) -> Iterator[Store]:
    """The vault's database opened with the store modules and a key the insider holds."""
    store = open_store(Vault.open(folder), key, clock)
    try:
        yield store
    finally:
        store.close()


def own_bundle(store: Store, vault_id: str, username: str) -> UserKeys:
    """The insider's own key bundle, opened with their own password."""
    with store.read() as tx:
        stored = tx.bundle(username)
    assert stored is not None, f"{username} has no key bundle"
    return open_bundle(stored.sealed, PASSWORDS[username], vault_id, username)


def every_role_wrap(store: Store) -> list[RoleKeyWrap]:
    with store.read() as tx:
        wraps = tx.role_key_wraps()
    assert wraps, "the vault has no role key wraps to attack"
    return wraps


def opens(wrap: RoleKeyWrap, key: X25519PrivateKey, vault_id: str) -> bool:
    """Whether `key` opens `wrap`, under the wrap's own binding or one naming any recipient."""
    for recipient in {wrap.recipient, "admin", "drsmith", "lead", "#lead", "#breakglass"}:
        binding = wrap.binding(vault_id)
        moved = type(binding)(
            binding.purpose,
            binding.vault_id,
            binding.subject_kind,
            binding.subject_id,
            recipient,
            binding.recipient_generation,
        )
        try:
            unwrap_key(wrap.wrap, key, moved)
        except UnwrapError:
            continue
        return True
    return False


def keys_from_practice_key(practice: PracticeKeys, vault_id: str) -> list[X25519PrivateKey]:
    """Every X25519 private key an admin could make out of the practice key: the root itself,
    the SQLCipher key, and HKDF of the root under every label of the binding table (computed
    by hand, as an attacker would, without the library's label policy)."""
    root = practice.practice.reveal()
    candidates = [root, bytes(practice)]
    for label in Label:
        hkdf = HKDF(
            algorithm=hashes.SHA256(),
            length=32,
            salt=vault_id.encode("utf-8"),
            info=label.value.encode("utf-8"),
        )
        candidates.append(hkdf.derive(root))
    return [X25519PrivateKey.from_private_bytes(c) for c in candidates]


def test_admin_with_password_and_recovery_code_opens_no_clinical_or_lead_key(
    vault_env_v2: VaultEnv,
) -> None:
    env = vault_env_v2
    vault = Vault.open(env.folder)
    by_password = vault.unlock_with_password("admin", PASSWORDS["admin"], env.clock).db_key
    by_code = vault.unlock_with_recovery(env.recovery_code, env.clock)
    assert isinstance(by_password, PracticeKeys) and isinstance(by_code, PracticeKeys)
    # Both secrets reach the same practice key, which opens records.db (class M) …
    assert bytes(by_password) == bytes(by_code)
    with insider_store(env.folder, by_code, env.clock) as store:
        admin_keys = own_bundle(store, vault.vault_id, "admin")
        wraps = every_role_wrap(store)
        assert {w.key_name for w in wraps} == {"clinical", "lead"}
        attempts = [admin_keys.encryption, *keys_from_practice_key(by_code, vault.vault_id)]
        # … but nothing the admin holds opens any clinical or lead key wrap.
        for wrap in wraps:
            for key in attempts:
                assert not opens(wrap, key, vault.vault_id), (
                    f"the admin opened the {wrap.key_name} key generation {wrap.generation} "
                    f"wrapped for {wrap.recipient}"
                )


def test_a_clinicians_copy_opens_the_clinical_key_but_no_lead_key(vault_env_v2: VaultEnv) -> None:
    env = vault_env_v2
    vault = Vault.open(env.folder)
    practice = vault.unlock_with_password("drsmith", PASSWORDS["drsmith"], env.clock).db_key
    with insider_store(env.folder, practice, env.clock) as store:
        smith = own_bundle(store, vault.vault_id, "drsmith")
        wraps = every_role_wrap(store)
        mine = [w for w in wraps if w.recipient == "drsmith"]
        # Control: the clinician's own grant opens (so the attempts below are meaningful).
        assert [w.key_name for w in mine] == ["clinical"]
        assert len(unwrap_key(mine[0].wrap, smith.encryption, mine[0].binding(vault.vault_id)))
        assert opens(mine[0], smith.encryption, vault.vault_id)  # the probe can succeed
        for wrap in wraps:
            if wrap.key_name == "lead":
                assert not opens(wrap, smith.encryption, vault.vault_id)


def test_an_old_bundle_does_not_open_with_another_users_password(vault_env_v2: VaultEnv) -> None:
    env = vault_env_v2
    vault = Vault.open(env.folder)
    practice = vault.unlock_with_password("drjones", PASSWORDS["drjones"], env.clock).db_key
    with insider_store(env.folder, practice, env.clock) as store:
        with store.read() as tx:
            lead_bundle = tx.bundle("lead")
        assert lead_bundle is not None
        with pytest.raises(Exception, match="does not open"):
            open_bundle(lead_bundle.sealed, PASSWORDS["drjones"], vault.vault_id, "lead")
        # Nor does the lead's own password open it as someone else's bundle (bound to the user).
        with pytest.raises(Exception, match="does not open"):
            open_bundle(lead_bundle.sealed, PASSWORDS["lead"], vault.vault_id, "drjones")
