"""The enrolment secret of a practice server (DESIGN §10.3, gpshare/store/enrolment.py):
made by `server init`, kept on each enrolled workstation and never on the server, mixed into
every password-derived key, checked before any password is tried, adopted by a server made
without one. On a real PostgreSQL (tests/pg.py). Most tests run with no OS keystore, so each
workstation folder keeps the secret in its own `enrolment.secret` file, as separate computers
would."""

from __future__ import annotations

import base64
import io
import json
import logging
import os
from contextlib import closing
from pathlib import Path
from typing import Any

import psycopg
import pytest

from gpshare.clock import SystemClock
from gpshare.errors import EnrolmentSecretError, PermissionDenied
from gpshare.services import open_session
from gpshare.store import crypto, enrolment
from gpshare.store.keys.bundle import open_bundle
from gpshare.store.keys.errors import BundleError
from gpshare.store.postgres import header as pg_header
from gpshare.store.vault import Vault
from tests.conftest import PASSWORDS, SCENARIOS, make_vault_v2
from tests.pg import Cluster, dump_holds, pg_dump
from tests.test_pg_server import _one_practice, cli, server_init

ELLIE = "01-bruised-toddler-parents-agree"


@pytest.fixture
def cheap_kdf(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(crypto, "calibrate", lambda *a, **k: crypto.CHEAP_TEST_KDF)


@pytest.fixture
def server(pg_cluster: Cluster) -> Any:
    from tests.conftest import drop_server_database

    name = pg_cluster.new_database()
    yield pg_cluster, pg_cluster.dsn(name)
    drop_server_database(pg_cluster, name)


def server_header(dsn: str) -> dict[str, Any]:
    """The newest header as the server keeps it (what a pg_dump holds)."""
    with psycopg.connect(dsn) as conn:
        row = conn.execute(
            "SELECT body FROM vault_header ORDER BY generation DESC LIMIT 1"
        ).fetchone()
    assert row is not None
    return dict(json.loads(row[0]))


def server_bundle(dsn: str, username: str) -> Any:
    """A user's active bundle, read straight from the server's table."""
    from gpshare.store.crypto import KdfParams
    from gpshare.store.keys.bundle import SealedBundle

    with psycopg.connect(dsn) as conn:
        row = conn.execute(
            "SELECT generation, kdf, salt, blob FROM key_bundles WHERE user_id = %s "
            "AND state = 'active' ORDER BY generation DESC LIMIT 1",
            (username,),
        ).fetchone()
    assert row is not None
    return SealedBundle(
        int(row[0]), KdfParams.from_dict(json.loads(row[1])), bytes(row[2]), bytes(row[3])
    )


def secret_markers(text: str) -> list[str]:
    """The forms the secret could leak in: grouped, bare, hex and base64 of its bytes."""
    raw = enrolment.parse_secret(text)
    return [text, text.replace("-", ""), raw.hex(), base64.b64encode(raw).decode()]


def test_init_keeps_the_secret_on_this_workstation_only_and_mixes_every_slot(
    no_keyring: None, server: tuple[Cluster, str], tmp_path: Path, capsys: Any,
    monkeypatch: pytest.MonkeyPatch, cheap_kdf: None, caplog: pytest.LogCaptureFixture,
) -> None:  # fmt: skip
    caplog.set_level(logging.DEBUG)
    cl, dsn = server
    one = tmp_path / "pc"
    created = server_init(capsys, monkeypatch, dsn, one)
    text = created["enrolment_secret"]
    secret = enrolment.parse_secret(text)
    kept = one / enrolment.FILE_NAME
    assert enrolment.read_file(kept) == secret
    assert (kept.stat().st_mode & 0o777) == 0o600
    head = server_header(dsn)
    assert head["kdf_mix"] == enrolment.KDF_MIX
    assert enrolment.matches(secret, head["vault_id"], head["enrolment_secret_check"])
    assert {s["type"]: s.get("mix") for s in head["slots"]} == {
        "password": enrolment.KDF_MIX,
        "recovery": enrolment.KDF_MIX,
        "breakglass": enrolment.KDF_MIX,
    }
    # Sign in, write a record: the secret still appears nowhere but in the folder's file.
    code, _out, err = cli(
        capsys, monkeypatch, PASSWORDS["lead"], "records", "--vault", str(one), "--user", "lead",
    )  # fmt: skip
    assert code == 0, err
    dump = pg_dump(cl, dsn)
    pointer = (one / "vault.json").read_text()
    for marker in secret_markers(text):
        assert not dump_holds(dump, marker), marker
        assert marker not in pointer
        assert marker not in caplog.text
    assert sorted(p.name for p in one.iterdir() if "secret" in p.name) == [enrolment.FILE_NAME]


def test_a_dump_and_the_right_password_without_the_secret_open_no_slot_and_no_bundle(
    no_keyring: None, server: tuple[Cluster, str], tmp_path: Path, capsys: Any,
    monkeypatch: pytest.MonkeyPatch, cheap_kdf: None,
) -> None:  # fmt: skip
    _cl, dsn = server
    created = server_init(capsys, monkeypatch, dsn, tmp_path / "pc")
    secret = enrolment.parse_secret(created["enrolment_secret"])
    head = server_header(dsn)
    vault_id = head["vault_id"]
    # An attacker with the header (as in a pg_dump) and admin's real password, copied into a
    # folder with no enrolment secret: the slot is not opened, with or without the mix mark.
    attacker = Vault(tmp_path / "copy", head)
    (tmp_path / "copy").mkdir()
    slot = attacker.password_slot("admin")
    assert slot is not None
    with pytest.raises(EnrolmentSecretError):
        attacker._open_slot(slot, PASSWORDS["admin"].encode())
    params, salt, nonce, wrapped = attacker._slot_fields(slot, "admin")
    derived = crypto.derive(PASSWORDS["admin"].encode(), salt, params)
    for aad_mix in (None, enrolment.KDF_MIX):
        aad = attacker._associated_data(str(slot["id"]), params, aad_mix)
        assert crypto.unwrap(crypto.subkey(derived, "slot kek"), nonce, wrapped, aad) is None
    # Another 32-byte secret does not do either; the right one does (the control).
    attacker.enrolment_secret = enrolment.new_secret()
    attacker.header = {**head, "enrolment_secret_check": enrolment.check_value(
        attacker.enrolment_secret, vault_id)}  # fmt: skip
    assert attacker._open_slot(slot, PASSWORDS["admin"].encode()) is None
    attacker.header, attacker.enrolment_secret = head, secret
    assert attacker._open_slot(slot, PASSWORDS["admin"].encode()) is not None
    # The bundles on the server: the password alone opens neither admin's nor the lead's.
    for username in ("admin", "lead"):
        sealed = server_bundle(dsn, username)
        with pytest.raises(BundleError):
            open_bundle(sealed, PASSWORDS[username], vault_id, username)
        with pytest.raises(BundleError):
            open_bundle(sealed, PASSWORDS[username], vault_id, username, enrolment.new_secret())
        assert open_bundle(sealed, PASSWORDS[username], vault_id, username, secret) is not None


def test_without_the_secret_a_workstation_is_told_so_never_wrong_password(
    no_keyring: None, server: tuple[Cluster, str], tmp_path: Path, capsys: Any,
    monkeypatch: pytest.MonkeyPatch, cheap_kdf: None,
) -> None:  # fmt: skip
    _cl, dsn = server
    one, two = tmp_path / "pc", tmp_path / "pc2"
    server_init(capsys, monkeypatch, dsn, one)
    code, _out, err = cli(capsys, monkeypatch, None, "server", "join", "--dsn", dsn, "--vault", str(two))  # fmt: skip
    assert code == 0, err
    assert "not given the practice's enrolment secret" in err
    for password in (PASSWORDS["admin"], "not-the-password"):
        with pytest.raises(EnrolmentSecretError) as missing:
            open_session(two, "admin", password)
        assert missing.value.reason == "missing"
        told = str(missing.value).lower()
        assert "ask the administrator to enrol this computer (gpshare server enrol)" in told
        assert "type the secret from the break-glass envelope" in told
    code, _out, err = cli(capsys, monkeypatch, "not-the-password", "records", "--vault", str(two), "--user", "admin")  # fmt: skip
    assert code != 0 and "not been given the practice's enrolment secret" in err
    assert "password is not right" not in err
    # No failed attempt was counted: no password was tried.
    assert Vault.open(one).retry_after("admin", SystemClock()) == 0
    # Another practice's secret: "does not match", for the right and a wrong password alike.
    enrolment.write_file(two / enrolment.FILE_NAME, enrolment.new_secret())
    for password in (PASSWORDS["admin"], "not-the-password"):
        with pytest.raises(EnrolmentSecretError) as wrong:
            open_session(two, "admin", password)
        assert wrong.value.reason == "mismatch" and "does not match" in str(wrong.value)
    # Giving a wrong one is refused and keeps nothing; the right one (typed) is kept.
    (two / enrolment.FILE_NAME).unlink()
    monkeypatch.setattr("sys.stdin", io.StringIO("AAAA-" * 12 + "AAAA\n"))
    code, _out, err = cli(capsys, monkeypatch, None, "server", "enrolment-secret", "--vault", str(two), "--type-enrolment-secret")  # fmt: skip
    assert code != 0 and "does not match" in err
    assert not (two / enrolment.FILE_NAME).exists()
    typed = (one / enrolment.FILE_NAME).read_text().lower().replace("-", " ")
    monkeypatch.setattr("sys.stdin", io.StringIO(typed))
    code, out, err = cli(capsys, monkeypatch, None, "server", "enrolment-secret", "--vault", str(two), "--type-enrolment-secret")  # fmt: skip
    assert code == 0, err
    assert "matches the practice server's" in out
    with closing(open_session(two, "admin", PASSWORDS["admin"])) as s:
        assert s.user.role == "admin"
    with pytest.raises(Exception, match="password is not right"):
        open_session(two, "admin", "not-the-password")


def test_join_with_the_secret_from_enrol_two_workstations_one_practice(
    no_keyring: None, server: tuple[Cluster, str], tmp_path: Path, capsys: Any,
    monkeypatch: pytest.MonkeyPatch, cheap_kdf: None,
) -> None:  # fmt: skip
    cl, dsn = server
    one, two, certs = tmp_path / "reception-pc", tmp_path / "room-3-pc", tmp_path / "certs"
    created = server_init(capsys, monkeypatch, dsn, one)
    code, out, err = cli(
        capsys, monkeypatch, PASSWORDS["admin"], "server", "enrol", "--vault", str(one), "--user",
        "admin", "--workstation", "room3", "--out", str(certs), "--role", f"ws_{tmp_path.name}",
        "--json",
    )  # fmt: skip
    assert code == 0, err
    given = certs / enrolment.FILE_NAME
    assert json.loads(out)["enrolment_secret"] == str(given)
    assert (given.stat().st_mode & 0o777) == 0o600 and (certs / "client.key").exists()
    assert enrolment.read_file(given) == enrolment.parse_secret(created["enrolment_secret"])
    dbname = dsn.split("dbname=")[1].split()[0]
    login = f"pc_{dbname}"
    with psycopg.connect(cl.dsn(), autocommit=True) as conn:
        conn.execute(f'CREATE ROLE "{login}" LOGIN NOSUPERUSER IN ROLE "ws_{tmp_path.name}"')
    try:
        _one_practice(
            cl, dsn, cl.dsn(dbname, login), one, two, created, capsys, monkeypatch,
            "--enrolment-secret", str(given),
        )  # fmt: skip
    finally:
        with psycopg.connect(cl.dsn(), autocommit=True) as conn:
            conn.execute(f'DROP OWNED BY "{login}"')
            conn.execute(f'DROP ROLE "{login}"')
    assert enrolment.read_file(two / enrolment.FILE_NAME) == enrolment.read_file(given)


def test_join_refuses_a_wrong_or_badly_kept_secret_and_leaves_the_folder_empty(
    no_keyring: None, server: tuple[Cluster, str], tmp_path: Path, capsys: Any,
    monkeypatch: pytest.MonkeyPatch, cheap_kdf: None,
) -> None:  # fmt: skip
    _cl, dsn = server
    server_init(capsys, monkeypatch, dsn, tmp_path / "pc")
    other = tmp_path / "other.secret"
    enrolment.write_file(other, enrolment.new_secret())
    two = tmp_path / "pc2"
    join = ("server", "join", "--dsn", dsn, "--vault", str(two), "--enrolment-secret")
    code, _out, err = cli(capsys, monkeypatch, None, *join, str(other))
    assert code != 0 and "does not match" in err
    assert not two.exists()
    os.chmod(other, 0o644)
    code, _out, err = cli(capsys, monkeypatch, None, *join, str(other))
    assert code != 0 and "can be read by other users" in err and "chmod 600" in err
    assert not two.exists()
    other.write_text("ABCD-EFGH\n")
    os.chmod(other, 0o600)
    code, _out, err = cli(capsys, monkeypatch, None, *join, str(other))
    assert code != 0 and "has 8 characters; an enrolment secret has 52" in err
    code, _out, err = cli(capsys, monkeypatch, None, *join, str(tmp_path / "nowhere"))
    assert code != 0 and "There is no enrolment secret file" in err


def test_malformed_secrets_are_named_precisely() -> None:
    secret = enrolment.new_secret()
    text = enrolment.format_secret(secret)
    assert len(text.split("-")) == 13
    assert enrolment.parse_secret(f"  {text.lower().replace('-', ' ')} \n") == secret
    with pytest.raises(EnrolmentSecretError, match="has 51 characters; an enrolment secret has 52"):
        enrolment.parse_secret(text[:-1])
    with pytest.raises(EnrolmentSecretError, match="contains '0', '1'.*never used"):
        enrolment.parse_secret("01" + text[2:])
    with pytest.raises(EnrolmentSecretError) as error:
        enrolment.parse_secret(text[:-1] + "!")
    assert error.value.reason == "malformed" and "'!'" in str(error.value)


def legacy_practice(folder: Path, dsn: str, clock: Any, monkeypatch: pytest.MonkeyPatch) -> Any:
    """A practice made on a server as gpshare did before the enrolment secret (no kdf_mix)."""
    with monkeypatch.context() as m:
        m.setattr(pg_header, "_first_secret", lambda vault: None)
        env = make_vault_v2(folder, clock, dsn)
    assert "kdf_mix" not in server_header(dsn)
    return env


def test_an_existing_server_adopts_a_secret_and_users_keys_are_resealed_at_sign_in(
    no_keyring: None, server: tuple[Cluster, str], tmp_path: Path, capsys: Any,
    monkeypatch: pytest.MonkeyPatch, clock: Any,
) -> None:  # fmt: skip
    cl, dsn = server
    env = legacy_practice(tmp_path / "pc", dsn, clock, monkeypatch)
    one = env.folder
    code, out, err = cli(
        capsys, monkeypatch, PASSWORDS["drsmith"], "assess", "--vault", str(one), "--user",
        "drsmith", "--answers", str(SCENARIOS / f"{ELLIE}.json"), "--complete", "--json",
    )  # fmt: skip
    assert code == 0, err
    record = json.loads(out)["record_id"]
    letter = tmp_path / "letter.pdf"
    code, _out, err = cli(capsys, monkeypatch, PASSWORDS["drsmith"], "letter", record, "--vault", str(one), "--user", "drsmith", "--out", str(letter))  # fmt: skip
    assert code == 0, err
    before = server_header(dsn)
    old_bundle = server_bundle(dsn, "drjones")

    # A clinician may not; an administrator gives the server its secret.
    code, _out, err = cli(capsys, monkeypatch, PASSWORDS["drsmith"], "server", "enrolment-secret", "--vault", str(one), "--user", "drsmith")  # fmt: skip
    assert code != 0 and "Not permitted" in err
    assert "kdf_mix" not in server_header(dsn)
    code, out, err = cli(capsys, monkeypatch, PASSWORDS["admin"], "server", "enrolment-secret", "--vault", str(one), "--user", "admin")  # fmt: skip
    assert code == 0, err
    text = next(line.strip() for line in out.splitlines() if line.count("-") == 12)
    secret = enrolment.parse_secret(text)
    assert enrolment.read_file(one / enrolment.FILE_NAME) == secret
    after = server_header(dsn)
    assert after["kdf_mix"] == enrolment.KDF_MIX
    # Every slot on the server is sealed under the secret: no salt or wrapped key is left.
    assert {s["mix"] for s in after["slots"]} == {enrolment.LAYER}
    assert len(after["slots"]) == len(before["slots"])
    assert all("salt" not in s and "wrapped" not in s for s in after["slots"])
    code, _out, err = cli(capsys, monkeypatch, PASSWORDS["admin"], "server", "enrolment-secret", "--vault", str(one), "--user", "admin")  # fmt: skip
    assert code != 0 and "already has an enrolment secret" in err
    # Printed again for a new envelope, by an administrator only.
    show = ("server", "enrolment-secret", "--vault", str(one), "--show", "--json", "--user")
    code, out, err = cli(capsys, monkeypatch, PASSWORDS["admin"], *show, "admin")
    assert code == 0 and json.loads(out)["enrolment_secret"] == text, err
    code, out, err = cli(capsys, monkeypatch, PASSWORDS["lead"], *show, "lead")
    assert code != 0 and "Not permitted" in err and text not in out

    # drjones has not signed in since: the bundle is the one sealed under the password alone.
    assert server_bundle(dsn, "drjones").blob == old_bundle.blob
    with closing(open_session(one, "drjones", PASSWORDS["drjones"], clock)) as s:
        assert s.keys is not None and s.keys.confirmed
    slot = {s["id"]: s for s in server_header(dsn)["slots"]}[
        Vault(one, after).password_slot_id("drjones")
    ]
    assert slot["mix"] == enrolment.KDF_MIX
    vault_id = after["vault_id"]
    resealed = server_bundle(dsn, "drjones")
    with pytest.raises(BundleError):
        open_bundle(resealed, PASSWORDS["drjones"], vault_id, "drjones")
    assert open_bundle(resealed, PASSWORDS["drjones"], vault_id, "drjones", secret) is not None
    # Each other user signs in as before; the old letter still verifies; the chain is whole.
    for username in ("lead", "drsmith", "admin"):
        with closing(open_session(one, username, PASSWORDS[username], clock)) as s:
            assert s.user.username == username
    code, out, err = cli(capsys, monkeypatch, PASSWORDS["drsmith"], "verify-letter", str(letter), "--vault", str(one), "--user", "drsmith", "--json")  # fmt: skip
    assert code == 0, err
    assert json.loads(out)["ok"] is True
    code, out, err = cli(capsys, monkeypatch, PASSWORDS["lead"], "audit", "verify", "--vault", str(one), "--user", "lead", "--json")  # fmt: skip
    assert code == 0, err
    assert json.loads(out)["ok"] is True
    dump = pg_dump(cl, dsn)
    assert dump_holds(dump, "enrolment_secret_adopted")
    for marker in secret_markers(text):
        assert not dump_holds(dump, marker), marker


def test_the_break_glass_envelope_carries_the_secret(
    server: tuple[Cluster, str], tmp_path: Path, capsys: Any, monkeypatch: pytest.MonkeyPatch,
    clock: Any, cheap_kdf: None,
) -> None:  # fmt: skip
    # The test keyring is this computer's keystore here: the secret is kept there.
    _cl, dsn = server
    code, out, err = cli(
        capsys, monkeypatch, PASSWORDS["admin"], "server", "init", "--dsn", dsn, "--vault",
        str(tmp_path / "pc"), "--practice", "Canal Street Surgery", "--admin", "admin",
        "--lead", "lead", "--lead-name", "Dr Priya Natarajan", "--role", f"ws_{tmp_path.name}",
        GPSHARE_LEAD_PASSWORD=PASSWORDS["lead"],
    )  # fmt: skip
    assert code == 0, err
    envelope = out[out.index("BREAK-GLASS CODE") :]
    assert "ENROLMENT SECRET" in envelope
    text = next(line.strip() for line in envelope.splitlines() if line.count("-") == 12)
    vault_id = json.loads((tmp_path / "pc" / "vault.json").read_text())["vault_id"]
    assert not (tmp_path / "pc" / enrolment.FILE_NAME).exists()
    assert enrolment.load(tmp_path / "pc", vault_id) == enrolment.parse_secret(text)
    code_line = out[out.index("BREAK-GLASS CODE") :].splitlines()
    breakglass = next(line.strip() for line in code_line if line.count("-") == 7)
    # A ceremony's new envelope carries it too.
    from gpshare.demo import add_new_user, choose_own_password

    with closing(open_session(tmp_path / "pc", "admin", PASSWORDS["admin"], clock)) as admin:
        first = add_new_user(admin, "newlead", "Dr Ada Newlead", "lead", "3456789")
    choose_own_password(tmp_path / "pc", clock, "newlead", first, "newlead-password-1")
    with closing(open_session(tmp_path / "pc", "admin", PASSWORDS["admin"], clock)) as admin:
        done = admin.breakglass.ceremony(breakglass, "newlead", "the only lead is away today")
        assert done.enrolment_secret == text
        assert admin.server.enrolment_secret_text() == text
    newlead = open_session(tmp_path / "pc", "newlead", "newlead-password-1", clock)
    with closing(newlead), pytest.raises(PermissionDenied):
        newlead.server.enrolment_secret_text()


def test_a_remembered_login_also_needs_the_secret_on_this_computer(
    memory_keyring: Any, server: tuple[Cluster, str], tmp_path: Path, capsys: Any,
    monkeypatch: pytest.MonkeyPatch, cheap_kdf: None,
) -> None:  # fmt: skip
    from gpshare.services.vaults import open_session_keyring

    _cl, dsn = server
    one = tmp_path / "pc"
    created = server_init(capsys, monkeypatch, dsn, one)
    vault_id = json.loads((one / "vault.json").read_text())["vault_id"]
    # With a keystore the secret is kept there, not in the folder.
    assert (
        memory_keyring.get_password(enrolment.KEYRING_SERVICE, vault_id)
        == (created["enrolment_secret"])
    )
    assert not (one / enrolment.FILE_NAME).exists()
    with closing(open_session(one, "admin", PASSWORDS["admin"])) as s:
        s.users.remember_login()
    with closing(open_session_keyring(one, "admin")) as s:
        assert s.user.username == "admin"
    memory_keyring.delete_password(enrolment.KEYRING_SERVICE, vault_id)
    with pytest.raises(EnrolmentSecretError) as missing:
        open_session_keyring(one, "admin")
    assert missing.value.reason == "missing"
