"""Vault format 2 (docs/vault-v2.md §2): slots wrap the practice key, every use of it has its
own HKDF label, the break-glass slot opens only with its code, and the services run unchanged
on the keys a v2 unlock hands back."""

from __future__ import annotations

import hashlib
import hmac
import json
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from gpshare.services import open_session_keyring
from gpshare.services.backups import restore
from gpshare.store import anchor, audit, crypto
from gpshare.store.errors import TamperedError, WrongPasswordError
from gpshare.store.keys.errors import KeyUsageError
from gpshare.store.practice_keys import PracticeKeys
from gpshare.store.sqlcipher import db
from gpshare.store.vault import PRACTICE_KEY_FORMAT, Vault, slot_check
from tests.conftest import PASSWORDS, VaultEnv, backup_between, make_vault

LABELS = ("sqlcipher", "audit", "header-mac", "rollback-anchor", "m-row")


def _hkdf(practice: bytes, vault_id: str, label: str) -> bytes:
    """The binding table's derivation, computed here independently of gpshare."""
    return HKDF(
        algorithm=hashes.SHA256(), length=32, salt=vault_id.encode(), info=label.encode()
    ).derive(practice)


@pytest.fixture
def v2(tmp_path: Path, clock, monkeypatch) -> tuple[VaultEnv, str]:
    """The conftest practice (admin, lead, two clinicians), made through the unchanged services
    on a format-2 header; returns it and the break-glass code."""
    codes: list[str] = []

    def create_v2(folder: Path, **kwargs):  # type: ignore[no-untyped-def]
        made = Vault.create_v2(folder, **kwargs)
        codes.append(made.breakglass_code)
        return made.vault, made.keys, made.user_secret, made.recovery_code

    with monkeypatch.context() as patch:
        patch.setattr(Vault, "create", staticmethod(create_v2))
        env = make_vault(tmp_path / "v2vault", clock)
    return env, codes[0]


def _header(env: VaultEnv) -> dict:
    return json.loads((env.folder / "vault.json").read_text())


def _write_header(env: VaultEnv, header: dict) -> None:
    (env.folder / "vault.json").write_text(json.dumps(header))


def _keys(env: VaultEnv, username: str = "drsmith") -> PracticeKeys:
    unlocked = Vault.open(env.folder).unlock_with_password(username, PASSWORDS[username], env.clock)
    assert isinstance(unlocked.db_key, PracticeKeys)
    return unlocked.db_key


def test_v2_header_has_format_2_and_a_breakglass_slot(v2):
    env, _code = v2
    header = _header(env)
    assert header["format_version"] == PRACTICE_KEY_FORMAT
    types = sorted(s["type"] for s in header["slots"])
    assert types == ["breakglass", "password", "password", "password", "password", "recovery"]


def test_password_recovery_and_keyring_slots_all_open_the_practice_key(v2, memory_keyring):
    env, _code = v2
    by_password = _keys(env, "drsmith")
    assert _keys(env, "admin").practice.reveal() == by_password.practice.reveal()
    by_recovery = Vault.open(env.folder).unlock_with_recovery(env.recovery_code, env.clock)
    assert isinstance(by_recovery, PracticeKeys)
    assert by_recovery.practice.reveal() == by_password.practice.reveal()

    s = env.session("drsmith")
    s.vault.enable_keyring(s.db_key, "drsmith", s._user_secret)
    s.close()
    by_keyring = Vault.open(env.folder).unlock_with_keyring("drsmith", env.clock).db_key
    assert isinstance(by_keyring, PracticeKeys)
    assert by_keyring.practice.reveal() == by_password.practice.reveal()
    session = open_session_keyring(env.folder, "drsmith", env.clock)
    assert session.user.username == "drsmith"
    session.close()


def test_each_derived_key_has_its_own_label_and_none_is_the_practice_key(v2):
    env, _code = v2
    keys = _keys(env)
    practice = keys.practice.reveal()
    derived = {
        "sqlcipher": bytes(keys),
        "audit": keys.audit,
        "header-mac": keys.header_mac,
        "rollback-anchor": keys.anchor,
        "m-row": keys.m_row,
    }
    for label in LABELS:
        assert derived[label] == _hkdf(practice, keys.vault_id, label)
    assert len({practice, *derived.values()}) == 1 + len(LABELS)
    # Nothing in the header is the practice key or a key derived from it.
    text = (env.folder / "vault.json").read_text()
    for secret in (practice, *derived.values()):
        assert secret.hex() not in text and crypto_b64(secret) not in text
    assert "hidden" in repr(keys) and practice.hex() not in repr(keys)


def crypto_b64(data: bytes) -> str:
    import base64

    return base64.b64encode(data).decode()


def test_records_db_opens_with_the_sqlcipher_key_not_the_practice_key(v2):
    env, _code = v2
    keys = _keys(env)
    conn = db.open_database(env.folder / "records.db", bytes(keys))
    assert conn.execute("SELECT count(*) FROM users").fetchone()[0] == 4
    conn.close()
    with pytest.raises(Exception, match="(?i)not a database|damaged|cannot be opened|unlock"):
        db.open_database(env.folder / "records.db", keys.practice.reveal())


def test_services_run_unchanged_and_chain_under_the_audit_label(v2):
    env, _code = v2
    s = env.session("drsmith")
    s.assessments.start_assessment(answers={"child_given_name": "Robin"})
    s.close()
    lead = env.session("lead")
    assert lead.audit_trail.verify_audit().ok
    lead.close()
    keys = _keys(env)
    conn = db.open_database(env.folder / "records.db", bytes(keys))
    head = Vault.open(env.folder).audit_head()
    try:
        assert audit.verify(conn, _hkdf(keys.practice.reveal(), keys.vault_id, "audit"), head).ok
        # The v1 derivation from the same root does not verify: the chain uses the v2 label.
        v1_key = crypto.subkey(keys.practice.reveal(), "gpshare audit chain v1")
        assert not audit.verify(conn, v1_key, head).ok
    finally:
        conn.close()


def test_anchor_of_a_v2_vault_uses_its_own_label(v2, anchor_dir):
    env, _code = v2
    env.session("drsmith").close()
    keys = _keys(env)
    record = json.loads((anchor_dir / f"{keys.vault_id}.json").read_text())
    body = json.dumps(
        [keys.vault_id, record["seq"], record["hash"], record["restores"]], separators=(",", ":")
    ).encode()
    practice = keys.practice.reveal()
    expected = _hkdf(practice, keys.vault_id, "rollback-anchor")
    assert record["mac"] == hmac.new(expected, body, hashlib.sha256).hexdigest()
    assert anchor.read(keys.vault_id, keys) == (
        anchor.Anchor(record["seq"], record["hash"], record["restores"]),
        "",
    )
    # Neither the v1 derivation of the practice key nor of the SQLCipher key reads it.
    for v1_root in (practice, bytes(keys)):
        assert anchor.read(keys.vault_id, v1_root)[1] == "its seal does not match"


def test_breakglass_code_opens_the_breakglass_private_key(v2):
    env, code = v2
    vault = Vault.open(env.folder)
    private = vault.open_breakglass(code.lower().replace("-", " "), env.clock)
    assert private.public_key().public_bytes_raw() == vault.breakglass_public_key()
    assert private.private_bytes_raw().hex() not in (env.folder / "vault.json").read_text()


def test_nothing_but_the_breakglass_code_opens_it(v2):
    env, code = v2
    keys = _keys(env)
    wrong = [
        env.recovery_code,  # the practice recovery code unwraps the practice key only
        PASSWORDS["admin"],
        keys.practice.reveal().hex(),
        bytes(keys).hex(),
    ]
    for attempt in wrong:
        env.clock.advance(60)  # past the back-off after each failure
        with pytest.raises(WrongPasswordError, match="break-glass code"):
            Vault.open(env.folder).open_breakglass(attempt, env.clock)
    # No slot that the practice key opens holds it: every other slot unwraps to the practice key.
    assert {s["id"] for s in _header(env)["slots"] if s["type"] == "breakglass"} == {"breakglass"}
    env.clock.advance(60)
    Vault.open(env.folder).open_breakglass(code, env.clock)  # the control


def test_replaced_breakglass_slot_retires_the_old_code(v2):
    env, code = v2
    s = env.session("admin")
    before = s.vault.breakglass_public_key()
    new_code = s.vault.replace_breakglass(s.db_key)
    s.close()
    vault = Vault.open(env.folder)
    assert vault.breakglass_public_key() != before
    with pytest.raises(WrongPasswordError):
        vault.open_breakglass(code, env.clock)
    env.clock.advance(60)
    assert vault.open_breakglass(new_code, env.clock).public_key().public_bytes_raw() == (
        vault.breakglass_public_key()
    )
    env.session("drsmith").close()  # the header MAC covers the new slot


def test_swapped_breakglass_public_key_is_named(v2):
    env, code = v2
    header = _header(env)
    slot = next(s for s in header["slots"] if s["id"] == "breakglass")
    other = next(s for s in _header(env)["slots"] if s["type"] == "password")
    slot["public_key"] = crypto_b64(hashlib.sha256(other["salt"].encode()).digest())
    slot["check"] = slot_check(slot)
    _write_header(env, header)
    with pytest.raises(TamperedError, match="does not match its own public key"):
        Vault.open(env.folder).open_breakglass(code, env.clock)


def test_edited_header_is_refused_under_the_v2_mac(v2):
    env, _code = v2
    header = _header(env)
    header["practice_name"] = "Elsewhere"
    _write_header(env, header)
    with pytest.raises(TamperedError, match="changed outside gpshare"):
        env.session("drsmith")


def test_header_mac_under_the_v1_label_is_refused(v2):
    env, _code = v2
    keys = _keys(env)
    vault = Vault.open(env.folder)
    # Someone holding the practice key re-MACs the header as v1 would: still refused.
    body = {k: v for k, v in vault.header.items() if k not in ("mac", "failed_unlocks")}
    body.pop("pending_failures", None)
    canonical = json.dumps(body, sort_keys=True, separators=(",", ":")).encode()
    v1_key = crypto.subkey(keys.practice.reveal(), "gpshare header mac v1")
    vault.header["mac"] = hmac.new(v1_key, canonical, hashlib.sha256).hexdigest()
    _write_header(env, vault.header)
    with pytest.raises(TamperedError, match="changed outside gpshare"):
        env.session("drsmith")


def test_format_edited_to_1_is_refused(v2):
    env, _code = v2
    header = _header(env)
    header["format_version"] = 1
    _write_header(env, header)
    with pytest.raises(TamperedError):
        env.session("drsmith")


def test_swapped_password_slot_does_not_open(v2):
    env, _code = v2
    header = _header(env)
    vault = Vault.open(env.folder)
    smith_id, lead_id = vault.password_slot_id("drsmith"), vault.password_slot_id("lead")
    slots = {s["id"]: s for s in header["slots"]}
    # The lead's wrapped practice key moved into drsmith's slot, checksum recomputed.
    moved = {**slots[lead_id], "id": smith_id}
    moved["check"] = slot_check(moved)
    header["slots"] = [moved if s["id"] == smith_id else s for s in header["slots"]]
    _write_header(env, header)
    with pytest.raises(WrongPasswordError):
        env.session("drsmith", PASSWORDS["lead"])
    env.clock.advance(60)
    with pytest.raises(WrongPasswordError):
        env.session("drsmith")


def test_edited_slot_is_named_damaged(v2):
    env, _code = v2
    header = _header(env)
    vault = Vault.open(env.folder)
    slot = next(s for s in header["slots"] if s["id"] == vault.password_slot_id("drsmith"))
    slot["wrapped"] = crypto_b64(b"\x00" * 48)
    _write_header(env, header)
    with pytest.raises(TamperedError, match="damaged"):
        env.session("drsmith")


def test_a_v2_header_refuses_a_v1_key_and_the_reverse(v2, vault_env):
    env, _code = v2
    v2_vault = Vault.open(env.folder)
    with pytest.raises(KeyUsageError):
        v2_vault.set_password(bytes(32), "someone", "someone-password-1")
    v1_vault = Vault.open(vault_env.folder)
    assert v1_vault.format_version == 1
    with pytest.raises(KeyUsageError):
        v1_vault.set_password(_keys(env), "someone", "someone-password-1")
    with pytest.raises(KeyUsageError):
        v1_vault.replace_breakglass(bytes(32))


def test_backup_and_restore_of_a_v2_vault(v2):
    env, _code = v2
    snapshot = backup_between(env)
    restore(env.folder, snapshot, "admin", PASSWORDS["admin"], env.clock)
    s = env.session("drsmith")
    assert {r.child.given_name for r in s.assessments.list_records()} == {"Before"}
    s.close()
    lead = env.session("lead")
    assert lead.audit_trail.verify_audit().ok
    lead.close()
    assert _header(env)["format_version"] == PRACTICE_KEY_FORMAT


def test_practice_keys_are_never_pickled(v2):
    import pickle

    env, _code = v2
    with pytest.raises(TypeError, match="cannot be pickled"):
        pickle.dumps(_keys(env))


def test_practice_keys_never_show_their_bytes(v2):
    env, _code = v2
    keys = _keys(env)
    shown = [repr(keys), str(keys), f"{keys}", f"{keys!r}", repr([keys])]
    for text in shown:
        assert "hidden" in text
        for secret in (bytes(keys), keys.audit, keys.header_mac, keys.anchor):
            assert secret.hex() not in text and repr(secret)[2:-1] not in text
