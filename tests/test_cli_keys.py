"""`gpshare init --lead` (a version-2 vault with its first lead) and `gpshare keys show /
pending / confirm`: exit codes, JSON shapes and messages."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest

from gpshare.cli import main
from gpshare.demo import add_new_user, choose_own_password
from gpshare.services import open_session
from gpshare.store import crypto
from tests.conftest import PASSWORDS


def run(capsys, monkeypatch, password: str | None, *args: str) -> tuple[int, str, str]:
    if password is not None:
        monkeypatch.setenv("GPSHARE_PASSWORD", password)
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture
def cheap_kdf(monkeypatch):
    # `init` calibrates Argon2id to about half a second; the tests need no such cost.
    monkeypatch.setattr(crypto, "calibrate", lambda *a, **k: crypto.CHEAP_TEST_KDF)


def init_v2(capsys, monkeypatch, folder: Path) -> dict[str, object]:
    monkeypatch.setenv("GPSHARE_LEAD_PASSWORD", PASSWORDS["lead"])
    code, out, err = run(
        capsys,
        monkeypatch,
        PASSWORDS["admin"],
        "init",
        "--vault",
        str(folder),
        "--practice",
        "Siân's Surgery",
        "--admin",
        "admin",
        "--lead",
        "lead",
        "--lead-name",
        "Dr Priya Natarajan",
        "--json",
    )
    assert code == 0, err
    return json.loads(out)


def test_init_with_a_lead_makes_a_version_2_vault_and_prints_both_secrets(
    tmp_path, capsys, monkeypatch, cheap_kdf
):
    info = init_v2(capsys, monkeypatch, tmp_path / "v")
    assert info["format_version"] == 2 and info["lead"] == "lead"
    recovery, breakglass = str(info["recovery_code"]), str(info["breakglass_code"])
    assert len(recovery.replace("-", "")) == 32 and len(breakglass.replace("-", "")) == 32
    header = (tmp_path / "v" / "vault.json").read_text()
    assert json.loads(header)["format_version"] == 2
    assert recovery not in header and breakglass not in header
    code, out, err = run(
        capsys,
        monkeypatch,
        PASSWORDS["lead"],
        "keys",
        "show",
        "--vault",
        str(tmp_path / "v"),
        "--user",
        "lead",
        "--json",
    )
    assert code == 0, err
    assert json.loads(out)["confirmed"] is True


def test_init_without_a_lead_makes_version_2_and_has_both_codes_typed_back(
    tmp_path, capsys, monkeypatch, cheap_kdf
):
    """`init` without --lead: a version-2 vault with no lead yet (the break-glass ceremony
    appoints the first), both secrets shown and typed back as at `init --lead`."""
    typed: list[str] = []

    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    def type_back(prompt: str) -> str:
        typed.append(prompt)
        shown = capsys.readouterr().out
        out_lines.append(shown)
        return shown.split("CODE", 1)[1].split("\n\n")[1].strip()  # the code just shown

    out_lines: list[str] = []
    monkeypatch.setattr("sys.stdin", Terminal())
    monkeypatch.setattr("builtins.input", type_back)
    monkeypatch.setenv("GPSHARE_PASSWORD", PASSWORDS["admin"])
    folder = tmp_path / "v"
    args = ["init", "--vault", str(folder), "--practice", "Mill Surgery", "--admin", "admin"]
    assert main(args) == 0
    shown = "".join(out_lines) + capsys.readouterr().out
    assert "PRACTICE RECOVERY CODE" in shown and "BREAK-GLASS CODE" in shown
    assert "no safeguarding lead yet" in shown
    assert typed == [
        "Type the practice recovery code back to confirm you have written it down: ",
        "Type the break-glass code back to confirm you have written it down: ",
    ]
    assert json.loads((folder / "vault.json").read_text())["format_version"] == 2
    monkeypatch.setattr("sys.stdin", io.StringIO())
    code, out, err = run(
        capsys, monkeypatch, PASSWORDS["admin"], "breakglass", "status",
        "--vault", str(folder), "--user", "admin", "--json",
    )  # fmt: skip
    assert code == 0, err
    assert json.loads(out)["lead_key_holders"] == []
    assert "No one holds the safeguarding lead key" in err and "break-glass ceremony" in err


def test_init_v1_makes_a_legacy_vault_and_refuses_a_lead(tmp_path, capsys, monkeypatch, cheap_kdf):
    code, out, err = run(
        capsys, monkeypatch, PASSWORDS["admin"], "init", "--vault", str(tmp_path / "v"),
        "--practice", "Mill", "--admin", "admin", "--v1", "--json",
    )  # fmt: skip
    assert code == 0, err
    info = json.loads(out)
    assert info["format_version"] == 1 and "breakglass_code" not in info
    assert json.loads((tmp_path / "v" / "vault.json").read_text())["format_version"] == 1
    code, out, err = run(
        capsys, monkeypatch, PASSWORDS["admin"], "init", "--vault", str(tmp_path / "w"),
        "--practice", "Mill", "--admin", "admin", "--v1", "--lead", "lead",
    )  # fmt: skip
    assert code == 2 and "--v1" in err and not (tmp_path / "w").exists()


def test_lead_name_without_lead_is_refused(tmp_path, capsys, monkeypatch):
    code, _out, err = run(
        capsys,
        monkeypatch,
        PASSWORDS["admin"],
        "init",
        "--vault",
        str(tmp_path / "v"),
        "--practice",
        "X",
        "--admin",
        "admin",
        "--lead-name",
        "Dr Who",
    )
    assert code == 2 and "--lead USER" in err and not (tmp_path / "v").exists()


def test_keys_pending_and_confirm(tmp_path, capsys, monkeypatch, cheap_kdf, clock):
    folder = tmp_path / "v"
    init_v2(capsys, monkeypatch, folder)
    admin = open_session(folder, "admin", PASSWORDS["admin"], clock)
    initial = add_new_user(admin, "drsmith", "Dr Alex Smith", "clinician", "1234567")
    admin.close()
    choose_own_password(folder, clock, "drsmith", initial, PASSWORDS["drsmith"])

    def keys(user: str, *args: str) -> tuple[int, str, str]:
        """`gpshare keys ARGS --vault FOLDER --user USER` with USER's password."""
        command = ["keys", *args, "--vault", str(folder), "--user", user]
        return run(capsys, monkeypatch, PASSWORDS[user], *command)

    code, out, err = keys("drsmith", "show")
    assert code == 0 and "waiting for a lead" in out
    words = out.split(":", 1)[1].strip()
    assert len(words.split()) == 6

    code, out, err = keys("drsmith", "pending")
    assert code == 1 and "Not permitted for your role" in err

    code, out, err = keys("lead", "pending", "--json")
    assert code == 0, err
    [pending] = json.loads(out)
    assert pending["username"] == "drsmith" and pending["fingerprint"] == words

    code, out, err = keys("lead", "confirm", "drsmith", "--fingerprint", "not the words at all")
    assert code == 2 and "do not match the key drsmith published" in err

    code, out, err = keys("lead", "confirm", "drsmith", "--fingerprint", words)
    assert code == 0 and "Confirmed the key of Dr Alex Smith" in out, err

    code, out, err = keys("lead", "pending")
    assert code == 0 and "No keys are waiting" in out
    code, out, err = keys("drsmith", "show", "--json")
    assert json.loads(out) == {
        "username": "drsmith",
        "key_generation": 1,
        "fingerprint": words,
        "confirmed": True,
    }


def test_keys_on_a_version_1_vault_says_so(vault_env, capsys, monkeypatch):
    code, _out, err = run(
        capsys,
        monkeypatch,
        PASSWORDS["lead"],
        "keys",
        "pending",
        "--vault",
        str(vault_env.folder),
        "--user",
        "lead",
    )
    assert code == 1 and "version 1" in err and "Traceback" not in err


def test_keys_rotate_logins_and_disabling_the_last_lead(
    vault_env_v2, capsys, monkeypatch, memory_keyring
):
    folder = str(vault_env_v2.folder)
    common = ("--vault", folder, "--json")
    # The last lead: refused without --force, with the ceremony named.
    code, out, err = run(
        capsys, monkeypatch, PASSWORDS["admin"], "user", "disable", "lead", "--user", "admin",
        "--vault", folder,
    )  # fmt: skip
    assert code != 0 and "break-glass ceremony" in err
    code, out, err = run(capsys, monkeypatch, PASSWORDS["admin"], "user", "disable", "drsmith", "--user", "admin", *common)  # fmt: skip
    assert code == 0, err
    code, out, err = run(capsys, monkeypatch, PASSWORDS["lead"], "keys", "rotate", "--user", "lead", *common)  # fmt: skip
    assert code == 0, err
    # The lead's unlock already completed the pending rotation (generation 2); this is 3.
    done = json.loads(out)
    assert done["clinical_generation"] == 3 and done["lead_generation"] is None
    assert sorted(done["holders"]) == ["drjones", "lead"]
    code, out, err = run(capsys, monkeypatch, PASSWORDS["drjones"], "keys", "rotate", "--user", "drjones", *common)  # fmt: skip
    assert code != 0 and "drjones" not in out
    # Remembered logins: listed and revoked by a lead or an admin.
    jones = open_session(vault_env_v2.folder, "drjones", PASSWORDS["drjones"], vault_env_v2.clock)
    jones.users.remember_login()
    jones.close()
    code, out, err = run(capsys, monkeypatch, PASSWORDS["admin"], "keys", "logins", "--user", "admin", *common)  # fmt: skip
    assert code == 0, err
    [login] = json.loads(out)
    assert login["username"] == "drjones" and login["revoked"] is None
    code, out, err = run(
        capsys, monkeypatch, PASSWORDS["lead"], "keys", "logins", "--revoke", str(login["id"]),
        "--user", "lead", "--vault", folder,
    )  # fmt: skip
    assert code == 0, err
    assert f"Revoked remembered login {login['id']} (drjones" in out
    code, out, err = run(capsys, monkeypatch, PASSWORDS["drjones"], "keys", "logins", "--user", "drjones", *common)  # fmt: skip
    assert code != 0
