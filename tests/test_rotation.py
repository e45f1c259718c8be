"""Vault version 2, step 5 (docs/vault-v2.md §3 "Disable + rotation by generation"): a disable
leaves a rotation pending, a lead's session completes it, and the keys held afterwards are
checked with the store modules directly (what a copy of the folder lets each user open)."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest

from gpshare.errors import NotFound, ValidationFailed
from gpshare.records import ChildSummary, Record
from gpshare.services import Session
from gpshare.services import _sealing as sealing
from gpshare.services.record_keys import BREAKGLASS_RECIPIENT, LEAD_RECIPIENT
from gpshare.services.rotation import rotation_pending
from gpshare.store import keys
from gpshare.store.keys import DirectoryAlteredError, open_bundle, unwrap_key
from gpshare.store.keys.bundle import raw_public
from gpshare.store.keys.directory import sign_rotation
from gpshare.store.port import RoleKeyWrap
from gpshare.store.sqlcipher import repositories as repo
from tests.conftest import PASSWORDS, VaultEnv
from tests.storehelp import raw_connection

PASSWORD = {**PASSWORDS, "lead2": "second-lead-password-1"}
CREATED = "2026-12-01T09:00:00+00:00"
ELLIE = {"given": "Ellie", "family": "Marsh", "nhs": "943 476 5870", "dob": "2024-03-14"}


def _record(rid: str, clinician: str, child: dict[str, str]) -> Record:
    answers = {
        "nhs_number": child["nhs"],
        "child_given_name": child["given"],
        "child_family_name": child["family"],
        "date_of_birth": child["dob"],
        "concern_narrative": "Quillwort narrative",
    }
    return Record(
        rid, clinician, "draft", "england-child-safeguarding", 2, answers, "child", None,
        CREATED, CREATED, None,
        ChildSummary(child["given"], child["family"], child["nhs"].replace(" ", ""), child["dob"]),
        clinician,
    )  # fmt: skip


def save_completed(session: Session, rid: str) -> None:
    """A sealed record by the session's user, completed (the codec with the session's keys)."""
    ring = session.keys
    assert ring is not None
    draft = _record(rid, session.user.username, ELLIE)
    first, key = sealing.seal_record(ring, draft, 0)
    done = dataclasses.replace(draft, status="completed", completed=CREATED, current_step=None)
    final, _ = sealing.seal_record(ring, done, 1, key)
    # Through the session's audited write (the header keeps the chain head).
    session._write("record_created", lambda tx: tx.insert_sealed_record(first), rid)
    session._write("record_completed", lambda tx: tx.complete_sealed_record(final), rid)


def role_wraps(session: Session, recipient: str, name: str = "clinical") -> list[RoleKeyWrap]:
    with session._read() as tx:
        return tx.role_key_wraps(recipient, name)  # type: ignore[arg-type]


def opened_generations(session: Session, username: str, name: str = "clinical") -> list[int]:
    """Which generations of a role key `username`'s own bundle opens (store modules only)."""
    vault_id = session.vault.vault_id
    with session._read() as tx:
        stored = tx.bundle(username)
        wraps = tx.role_key_wraps(username, name)  # type: ignore[arg-type]
    assert stored is not None
    own = open_bundle(stored.sealed, PASSWORD[username], vault_id, username)
    # Lead-key wraps are made for the lead-access pair (decision D2), the rest for the user key.
    private = own.lead_access if name == "lead" else own.encryption
    assert private is not None
    found = []
    for wrap in wraps:
        if wrap.recipient_generation != stored.sealed.generation:
            continue
        unwrap_key(wrap.wrap, private, wrap.binding(vault_id))
        found.append(wrap.generation)
    return sorted(found)


def events(session: Session, action: str) -> list[Any]:
    return repo.audit_events(raw_connection(session), repo.AuditFilter(action=action), limit=None)


def disable(env: VaultEnv, username: str, force: bool = False) -> None:
    admin = env.session("admin")
    try:
        admin.users.disable_user(username, force=force)
        assert username in admin.directory.rotation_pending()
    finally:
        admin.close()


def test_a_disable_leaves_a_rotation_a_lead_session_completes(vault_env_v2: VaultEnv) -> None:
    env = vault_env_v2
    smith = env.session("drsmith")
    save_completed(smith, "SG-OLD-0001")
    smith.close()
    disable(env, "drsmith")
    admin = env.session("admin")
    try:
        # Nothing is rotated by the admin (who holds no lead key): only the mark is written.
        assert admin.directory.rotation_pending() == ["drsmith"]
        assert [w.generation for w in role_wraps(admin, "drjones")] == [1]
    finally:
        admin.close()
    lead = env.session("lead")  # a typed-password lead unlock completes it
    try:
        assert lead.directory.rotation_pending() == []
        assert lead.keys is not None and lead.keys.clinical().generation == 2
        [event] = events(lead, "keys_rotated")
        assert event.actor == "lead"
        assert event.details["clinical_generation"] == 2
        assert event.details["disabled"] == ["drsmith"] and event.details["lead_generation"] is None
        assert opened_generations(lead, "drjones") == [1, 2]
        assert opened_generations(lead, "lead") == [1, 2]
        assert opened_generations(lead, "drsmith") == [1]  # the leaver keeps only what they had
        assert [w.generation for w in role_wraps(lead, "admin")] == []
        assert [w.generation for w in role_wraps(lead, BREAKGLASS_RECIPIENT)] == [1, 2]
        # drsmith's newest signed entry says disabled: nothing new is wrapped for them.
        assert lead.keys.verified_user("drsmith") is None
        assert lead.keys.verified_user("drjones") is not None
        assert not any(p.username == "drsmith" for p in lead.directory.pending())
    finally:
        lead.close()
    jones = env.session("drjones")
    try:
        assert jones.keys is not None and jones.keys.clinical().generation == 2
        save_completed(jones, "SG-NEW-0001")
        with jones._read() as tx:
            summaries = {s.record_id: s.generation for s in tx.summaries(["SG-OLD-0001", "SG-NEW-0001"])}  # fmt: skip
            assert summaries == {"SG-OLD-0001": 1, "SG-NEW-0001": 2}
            identity = keys.IndexedIdentity(nhs="9434765870")
            matches = tx.records_for_tokens(sealing.lookup_tokens(jones.keys, identity), None)
            # The old summary still opens; the child is found across both generations.
            assert {m.row.id: m.found_by.generation for m in matches} == {
                "SG-OLD-0001": 1,
                "SG-NEW-0001": 2,
            }
            assert all(sealing.confirm_match(jones.keys, m) is not None for m in matches)
    finally:
        jones.close()


def test_keys_rotate_with_nothing_pending_still_makes_a_new_generation(vault_env_v2) -> None:
    lead = vault_env_v2.session("lead")
    try:
        done = lead.directory.rotate()
        assert done.clinical.generation == 2 and done.lead is None and done.disabled == ()
        assert set(done.holders) == {"drsmith", "drjones", "lead"}
        assert lead.keys is not None and lead.keys.clinical().generation == 2
    finally:
        lead.close()


def test_a_lead_leaving_rotates_the_lead_key_and_the_remaining_lead_follows(
    vault_env_v2: VaultEnv,
) -> None:
    env = vault_env_v2
    from gpshare.demo import add_new_user, choose_own_password

    env.session("drjones").close()  # pins lead signing key 1 (trust on first grant)
    admin = env.session("admin")
    first = add_new_user(admin, "lead2", "Dr Second Lead", "lead", "1112223")
    admin.close()
    choose_own_password(env.folder, env.clock, "lead2", first, PASSWORD["lead2"])
    s = env.session("lead2", PASSWORD["lead2"])
    words = s.directory.own_key()
    s.close()
    assert words is not None
    lead = env.session("lead")
    lead.directory.confirm("lead2", words.fingerprint)
    save_completed(lead, "SG-LEAD-0001")  # wrapped for lead key generation 1
    lead.close()
    disable(env, "lead")
    second = env.session("lead2", PASSWORD["lead2"])  # rotates: lead key generation 2
    try:
        ring = second.keys
        assert ring is not None
        assert [k.generation for k in ring.lead_keys()] == [1, 2]
        assert ring.lead_recipient().generation == 2
        [event] = events(second, "keys_rotated")
        assert event.details["lead_generation"] == 2 and event.details["disabled"] == ["lead"]
        with second._read() as tx:
            rotations = tx.lead_rotations()
        assert [r.generation for r in rotations] == [1, 2]
        assert ring.pin == rotations[-1].new_key
        assert opened_generations(second, "lead2", "lead") == [1, 2]
        assert opened_generations(second, "lead", "lead") == [1]
        # An old object (wrapped for lead key g1) and a new one (g2) both open.
        save_completed(second, "SG-LEAD-0002")
        for rid in ("SG-LEAD-0001", "SG-LEAD-0002"):
            with second._read() as tx:
                sealed = tx.sealed_record(rid, [LEAD_RECIPIENT])
            assert sealed is not None
            assert sealing.open_record(ring, sealed).answers["child_given_name"] == "Ellie"
        with second._read() as tx:
            new_wraps = tx.object_wraps_for(LEAD_RECIPIENT, [("answers", "SG-LEAD-0002")])
        assert [w.recipient_generation for w in new_wraps] == [2]
    finally:
        second.close()
    # A clinician's next unlock follows the rotation statement and re-pins.
    jones = env.session("drjones")
    try:
        assert jones.keys is not None and jones.keys.pin == rotations[-1].new_key
        assert jones.keys.lead_recipient().generation == 2
        assert jones.keys.clinical().generation == 2
        pins = [e for e in events(jones, "key_pinned") if e.actor == "drjones"]
        assert len(pins) == 2  # the first grant, then the rotation followed
        with jones._read() as tx:
            stored = tx.bundle("drjones")
        assert stored is not None
        own = open_bundle(stored.sealed, PASSWORD["drjones"], jones.vault.vault_id, "drjones")
        assert own.pinned_lead_signing_key == rotations[-1].new_key  # re-sealed with the new pin
    finally:
        jones.close()


def test_a_forged_rotation_statement_is_refused(vault_env_v2: VaultEnv) -> None:
    env = vault_env_v2
    lead = env.session("lead")
    vault_id = lead.vault.vault_id
    lead.close()
    # An insider with the practice key writes a "generation 2" lead signing key of their own,
    # signed by a key that is not the pinned one.
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    attacker = Ed25519PrivateKey.generate()
    forged = sign_rotation(attacker, raw_public(attacker), vault_id, 2)
    admin = env.session("admin")
    admin._write("forgery", lambda tx: tx.add_lead_rotation(forged))
    admin.close()
    with pytest.raises(DirectoryAlteredError, match="key directory has been altered"):
        env.session("drjones")


def test_disabling_the_last_lead_needs_force_and_names_the_ceremony(vault_env_v2) -> None:
    env = vault_env_v2
    admin = env.session("admin")
    try:
        with pytest.raises(ValidationFailed, match="break-glass ceremony") as refused:
            admin.users.disable_user("lead")
        assert "only active safeguarding lead" in str(refused.value)
        assert [u.active for u in admin.users.list_users() if u.username == "lead"] == [True]
        admin.users.disable_user("lead", force=True)
        assert admin.directory.rotation_pending() == ["lead"]
        with admin._read() as tx:
            assert rotation_pending(tx) == ["lead"]
    finally:
        admin.close()


def test_a_version_1_vault_never_refuses_the_last_lead(vault_env) -> None:
    admin = vault_env.session("admin")
    try:
        admin.users.disable_user("lead")
        assert admin.directory.rotation_pending() == []
    finally:
        admin.close()


# ----- remembered logins ---------------------------------------------------------------------


def test_a_revoked_remembered_login_is_refused_at_unlock(vault_env_v2, memory_keyring) -> None:
    from gpshare.errors import PermissionDenied, RememberedLoginRevoked
    from gpshare.services import open_session_keyring

    env = vault_env_v2
    smith = env.session("drsmith")
    smith.users.remember_login()
    smith.close()
    again = open_session_keyring(env.folder, "drsmith", env.clock)  # listed, not revoked: opens
    again.close()
    admin = env.session("admin")
    try:
        [login] = admin.directory.remembered_logins()
        assert (login.username, login.revoked) == ("drsmith", None) and login.workstation
        revoked = admin.directory.revoke_login(login.id)
        assert revoked.revoked is not None
        with pytest.raises(ValidationFailed, match="already revoked"):
            admin.directory.revoke_login(login.id)
        with pytest.raises(NotFound, match="no remembered login number 99"):
            admin.directory.revoke_login(99)
        assert [e.details["login_id"] for e in events(admin, "login_revoked")] == [login.id]
    finally:
        admin.close()
    with pytest.raises(RememberedLoginRevoked, match="revoked"):
        open_session_keyring(env.folder, "drsmith", env.clock)
    smith = env.session("drsmith")
    try:
        # The refusal is audited and the slot is gone; a clinician cannot list logins.
        assert [e.details["login_id"] for e in events(smith, "login_refused")] == [login.id]
        assert not smith.vault.has_keyring_slot("drsmith")
        with pytest.raises(PermissionDenied):
            smith.directory.remembered_logins()
    finally:
        smith.close()


def test_forgetting_a_login_revokes_its_row(vault_env_v2, memory_keyring) -> None:
    env = vault_env_v2
    lead = env.session("lead")
    try:
        lead.users.remember_login()
        lead.users.forget_login()
        [login] = lead.directory.remembered_logins()
        assert login.username == "lead" and login.revoked is not None
    finally:
        lead.close()


# ----- decision D2: the lead-access pair ------------------------------------------------------


def test_a_remembered_login_cannot_unwrap_any_lead_key_wrap(vault_env_v2, memory_keyring) -> None:
    import base64

    from gpshare.services import open_session_keyring
    from gpshare.store.crypto import KdfParams
    from gpshare.store.keys import UnwrapError
    from gpshare.store.keys.bundle import SealedBundle
    from gpshare.store.vault import Vault

    env = vault_env_v2
    lead = env.session("lead")
    lead.users.remember_login()
    lead.directory.rotate()  # clinical g2: the copy's key still receives clinical wraps
    lead.close()
    remembered = open_session_keyring(env.folder, "lead", env.clock)
    try:
        vault_id = remembered.vault.vault_id
        # The keyring slot's copy of the bundle, opened as the remembered login opens it.
        copy = Vault.open(env.folder).keyring_bundle("lead")
        assert copy is not None
        sealed = SealedBundle(
            int(copy["generation"]),
            KdfParams.from_dict(copy["kdf"]),
            base64.b64decode(copy["salt"]),
            base64.b64decode(copy["blob"]),
        )
        held = open_bundle(sealed, remembered._user_secret.hex(), vault_id, "lead")
        assert held.lead_access is None  # the copy omits the lead-access pair
        with remembered._read() as tx:
            lead_wraps = tx.role_key_wraps("lead", "lead")
            entry = tx.directory_entries("lead", "user")[-1]
        assert lead_wraps and entry.lead_access_key is not None
        for wrap in lead_wraps:  # not with the personal key the copy holds
            with pytest.raises(UnwrapError):
                unwrap_key(wrap.wrap, held.encryption, wrap.binding(vault_id))
        # The clinical key still opens at clinician level (control).
        assert remembered.keys is not None and remembered.keys.clinical().generation == 2
        assert not remembered.keys.holds_lead_key
    finally:
        remembered.close()
    # The password-sealed bundle does hold the pair, and it opens every lead-key wrap.
    lead = env.session("lead")
    try:
        assert opened_generations(lead, "lead", "lead") == [1]
    finally:
        lead.close()


# ----- the practice CA for administrators only (class A, decision D4) -------------------------


def _ca_wraps(session: Session) -> list[Any]:
    """Every wrap of the practice CA, whoever it is for (store reads only)."""
    with session._read() as tx:
        return [
            w
            for name in ("admin", "drsmith", "drjones", "lead")
            for w in tx.object_wraps_for(name, [("practice-ca", "practice-ca")])
        ]


def test_only_an_administrators_key_opens_the_practice_ca(vault_env_v2) -> None:
    from gpshare import signing
    from gpshare.errors import KeyNotHeld
    from gpshare.store import keywrap
    from gpshare.store.keys import ObjectBinding, UnwrapError, open_object, unwrap_object_key

    env = vault_env_v2
    admin = env.session("admin")
    try:
        vault_id = admin.vault.vault_id
        with admin._read() as tx:
            stored = tx.get_practice_ca()
            admin_bundle = tx.bundle("admin")
            smith_bundle = tx.bundle("drsmith")
        assert stored is not None and admin_bundle is not None and smith_bundle is not None
        wraps = _ca_wraps(admin)
        assert [(w.recipient, w.recipient_generation) for w in wraps] == [("admin", 1)]
        binding = ObjectBinding(vault_id, "practice-ca", "practice-ca", "practice-ca", 0, "", "", 0)
        own = open_bundle(admin_bundle.sealed, PASSWORDS["admin"], vault_id, "admin")
        key = unwrap_object_key(wraps[0].wrap, own.encryption, wraps[0].binding(vault_id), stored.nonce)  # fmt: skip
        pem = open_object(key, stored.wrapped, binding)
        assert signing.issued_by(admin.users.signing_certificate("drsmith") or b"", stored.cert_pem)
        assert b"PRIVATE KEY" in pem
        # A clinician's key opens no CA wrap, and the practice key's old route finds nothing.
        smith = open_bundle(smith_bundle.sealed, PASSWORDS["drsmith"], vault_id, "drsmith")
        with pytest.raises(UnwrapError):
            unwrap_object_key(wraps[0].wrap, smith.encryption, wraps[0].binding(vault_id), stored.nonce)  # fmt: skip
        assert (
            keywrap.unwrap_practice_ca_key(admin.db_key, stored.nonce, stored.wrapped, vault_id)
            is None
        )
    finally:
        admin.close()
    for name in ("drsmith", "lead"):  # nor can their sessions reach it through the service
        session = env.session(name)
        try:
            with pytest.raises(KeyNotHeld, match="practice administrator"):
                session.users._ca()
        finally:
            session.close()


def test_a_later_administrator_gets_the_ca_once_a_lead_confirms_them(vault_env_v2) -> None:
    from gpshare.demo import add_new_user, choose_own_password
    from gpshare.errors import KeyNotHeld

    env = vault_env_v2
    password = "second-admin-password-1"
    admin = env.session("admin")
    first = add_new_user(admin, "admin2", "Sam Second", "admin", "")
    admin.close()
    choose_own_password(env.folder, env.clock, "admin2", first, password)
    second = env.session("admin2", password)
    try:
        own = second.directory.own_key()
        assert own is not None and not own.confirmed
        with pytest.raises(KeyNotHeld, match="safeguarding lead has confirmed"):
            second.users.add_user("drnew", "Dr New", "clinician", "new-user-password-1")
    finally:
        second.close()
    lead = env.session("lead")
    lead.directory.confirm("admin2", own.fingerprint)
    lead.close()
    admin = env.session("admin")  # the first administrator's unlock shares the CA (D4)
    try:
        [event] = events(admin, "ca_shared")
        assert event.details["with"] == ["admin2"]
    finally:
        admin.close()
    second = env.session("admin2", password)
    try:
        second.users.add_user("drnew", "Dr New", "clinician", "new-user-password-1")
        assert second.users.signing_certificate("drnew") is not None
    finally:
        second.close()
