"""The command line: exit codes, JSON shapes, passwords never from argv, scenarios end to end."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from gpshare.cli import main
from tests.conftest import PASSWORDS, SCENARIOS


def run(
    capsys, monkeypatch, user: str | None, *args: str, password: str | None = None
) -> tuple[int, str, str]:
    if user:
        monkeypatch.setenv("GPSHARE_PASSWORD", password or PASSWORDS[user])
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def scenario_files() -> list[Path]:
    return sorted(SCENARIOS.glob("*.json"))


@pytest.mark.parametrize(
    "name",
    [
        "01-bruised-toddler-parents-agree",
        "02-teen-sexual-health-refuses",
        "03-low-level-concern-monitor",
        "04-bad-input",
    ],
)
def test_scenarios_through_the_cli(vault_env, capsys, monkeypatch, name):
    path = SCENARIOS / f"{name}.json"
    expect = json.loads(path.read_text())["expect"]
    code, out, err = run(
        capsys,
        monkeypatch,
        "drsmith",
        "assess",
        "--vault",
        str(vault_env.folder),
        "--user",
        "drsmith",
        "--answers",
        str(path),
        "--complete",
        "--json",
    )
    result = json.loads(out)
    assert set(result) >= {"record_id", "status", "outcome", "errors", "warnings"}
    if expect["completes"]:
        assert code == 0, result["errors"]
        assert result["status"] == "completed"
        assert result["outcome"]["pathway"] == expect["pathway"]
        assert result["outcome"]["consent_basis"] == expect["consent_basis"]
        assert result["outcome"]["letter_required"] == expect["letter_required"]
        assert set(expect.get("prompts_include", [])) <= set(result["outcome"]["prompts"])
    else:
        assert code == 2
        assert result["status"] == "invalid"
        assert set(expect["error_fields_include"]) <= {e["field"] for e in result["errors"]}
        assert all(e["message"] for e in result["errors"])
    # the record exists either way (a draft when invalid)
    code, out, _ = run(
        capsys,
        monkeypatch,
        "drsmith",
        "show",
        result["record_id"],
        "--vault",
        str(vault_env.folder),
        "--user",
        "drsmith",
        "--json",
    )
    shown = json.loads(out)
    assert shown["status"] == ("completed" if expect["completes"] else "draft")


def test_records_json_shape_and_child_filter(vault_env, capsys, monkeypatch):
    path = SCENARIOS / "03-low-level-concern-monitor.json"
    run(
        capsys,
        monkeypatch,
        "drsmith",
        "assess",
        "--vault",
        str(vault_env.folder),
        "--user",
        "drsmith",
        "--answers",
        str(path),
        "--complete",
    )
    code, out, _ = run(
        capsys,
        monkeypatch,
        "drsmith",
        "records",
        "--vault",
        str(vault_env.folder),
        "--user",
        "drsmith",
        "--child",
        "943 476 5919",
        "--json",
    )
    assert code == 0
    rows = json.loads(out)
    assert len(rows) == 1
    assert set(rows[0]) >= {"record_id", "status", "created", "clinician", "child", "outcome"}
    assert rows[0]["child"] == {
        "name": "Mohammed Rahman",
        "nhs_number": "9434765919",
        "date_of_birth": "2020-01-20",
    }
    code, out, _ = run(
        capsys,
        monkeypatch,
        "drjones",
        "records",
        "--vault",
        str(vault_env.folder),
        "--user",
        "drjones",
        "--json",
    )
    assert json.loads(out) == []  # another clinician sees none of it
    code, _, err = run(
        capsys,
        monkeypatch,
        "drsmith",
        "records",
        "--vault",
        str(vault_env.folder),
        "--user",
        "drsmith",
        "--child",
        "12345",
    )
    assert code == 2 and "--child must be a valid NHS number" in err and "10 digits" in err


def test_answers_file_problems_exit_2(vault_env, capsys, monkeypatch, tmp_path):
    bad_json = tmp_path / "bad.json"
    bad_json.write_text("{not json")
    code, _, err = run(
        capsys,
        monkeypatch,
        "drsmith",
        "assess",
        "--vault",
        str(vault_env.folder),
        "--user",
        "drsmith",
        "--answers",
        str(bad_json),
    )
    assert code == 2 and "not valid JSON" in err
    unknown = tmp_path / "unknown.json"
    unknown.write_text(
        json.dumps(
            {
                "form": "england-child-safeguarding",
                "answers": {"favourite_colour": "blue", "immediate_danger": "yes"},
            }
        )
    )
    code, out, _ = run(
        capsys,
        monkeypatch,
        "drsmith",
        "assess",
        "--vault",
        str(vault_env.folder),
        "--user",
        "drsmith",
        "--answers",
        str(unknown),
        "--json",
    )
    result = json.loads(out)
    assert code == 2 and result["status"] == "invalid"
    assert {e["field"] for e in result["errors"]} >= {"favourite_colour", "immediate_danger"}
    missing_form = tmp_path / "form.json"
    missing_form.write_text(json.dumps({"form": "no-such-form", "answers": {}}))
    code, _, err = run(
        capsys,
        monkeypatch,
        "drsmith",
        "assess",
        "--vault",
        str(vault_env.folder),
        "--user",
        "drsmith",
        "--answers",
        str(missing_form),
    )
    assert code == 2 and "no-such-form" in err
    code, _, err = run(
        capsys,
        monkeypatch,
        "drsmith",
        "assess",
        "--vault",
        str(vault_env.folder),
        "--user",
        "drsmith",
        "--answers",
        str(tmp_path / "nope.json"),
    )
    assert code == 1 and "Cannot read" in err


def test_clinician_denied_lead_commands_exit_1_and_audited(vault_env, capsys, monkeypatch):
    code, _, err = run(
        capsys,
        monkeypatch,
        "drsmith",
        "audit",
        "verify",
        "--vault",
        str(vault_env.folder),
        "--user",
        "drsmith",
    )
    assert code == 1 and "not permitted for your role" in err.lower()
    code, out, _ = run(
        capsys,
        monkeypatch,
        "lead",
        "audit",
        "log",
        "--vault",
        str(vault_env.folder),
        "--user",
        "lead",
        "--json",
        "--action",
        "permission_denied",
    )
    assert any(e["actor"] == "drsmith" for e in json.loads(out))
    code, out, _ = run(
        capsys,
        monkeypatch,
        "lead",
        "audit",
        "verify",
        "--vault",
        str(vault_env.folder),
        "--user",
        "lead",
        "--json",
    )
    assert code == 0 and json.loads(out)["ok"] is True


def test_wrong_password_and_missing_password(vault_env, capsys, monkeypatch):
    code, _, err = run(
        capsys,
        monkeypatch,
        "drsmith",
        "records",
        "--vault",
        str(vault_env.folder),
        "--user",
        "drsmith",
        password="wrong-password",
    )
    assert code == 1 and "not right" in err
    monkeypatch.delenv("GPSHARE_PASSWORD", raising=False)
    monkeypatch.setattr(sys, "stdin", io.StringIO(""))
    code = main(["records", "--vault", str(vault_env.folder), "--user", "drsmith"])
    _, err = capsys.readouterr()
    assert code == 1 and "--password-stdin" in err


def test_user_add_passwd_disable(vault_env, capsys, monkeypatch):
    monkeypatch.setenv("GPSHARE_NEW_PASSWORD", "new-user-password")
    code, out, _ = run(
        capsys,
        monkeypatch,
        "admin",
        "user",
        "add",
        "--vault",
        str(vault_env.folder),
        "--user",
        "admin",
        "drnew",
        "--role",
        "clinician",
        "--name",
        "Dr Łukasz Nowak",
        "--gmc",
        "4567890",
        "--json",
    )
    assert code == 0 and json.loads(out)["name"] == "Dr Łukasz Nowak"
    code, _, err = run(
        capsys,
        monkeypatch,
        "admin",
        "user",
        "add",
        "--vault",
        str(vault_env.folder),
        "--user",
        "admin",
        "drbad",
        "--role",
        "clinician",
        "--name",
        "Bad",
        "--gmc",
        "12",
    )
    assert code == 2 and "7 digits" in err
    code, out, _ = run(
        capsys,
        monkeypatch,
        "admin",
        "user",
        "passwd",
        "--vault",
        str(vault_env.folder),
        "--user",
        "admin",
        "drnew",
        "--json",
    )
    temp = json.loads(out)["one_time_password"]
    code, out, err = run(
        capsys,
        monkeypatch,
        "drnew",
        "records",
        "--vault",
        str(vault_env.folder),
        "--user",
        "drnew",
        password=temp,
    )
    # A one-time password only lets the user choose their own (service-layer rule).
    assert code == 1 and "gpshare user passwd --user drnew" in err
    monkeypatch.setenv("GPSHARE_NEW_PASSWORD", "nowak chosen passphrase")
    code, _, err = run(
        capsys,
        monkeypatch,
        "drnew",
        "user",
        "passwd",
        "--vault",
        str(vault_env.folder),
        "--user",
        "drnew",
        password=temp,
    )
    monkeypatch.delenv("GPSHARE_NEW_PASSWORD")
    assert code == 0, err
    code, out, err = run(
        capsys,
        monkeypatch,
        "drnew",
        "records",
        "--vault",
        str(vault_env.folder),
        "--user",
        "drnew",
        password="nowak chosen passphrase",
    )
    assert code == 0, err
    code, _, _ = run(
        capsys,
        monkeypatch,
        "admin",
        "user",
        "disable",
        "--vault",
        str(vault_env.folder),
        "--user",
        "admin",
        "drnew",
    )
    assert code == 0
    code, _, err = run(
        capsys,
        monkeypatch,
        "drnew",
        "records",
        "--vault",
        str(vault_env.folder),
        "--user",
        "drnew",
        password="nowak chosen passphrase",
    )
    assert code == 1 and "disabled" in err


def test_password_stdin(vault_env, capsys, monkeypatch):
    import io

    monkeypatch.delenv("GPSHARE_PASSWORD", raising=False)
    monkeypatch.setattr(sys, "stdin", io.StringIO(PASSWORDS["lead"] + "\n"))
    monkeypatch.setattr("gpshare.cli._stdin_lines", None)
    code = main(
        ["audit", "verify", "--vault", str(vault_env.folder), "--user", "lead", "--password-stdin"]
    )
    assert code == 0, capsys.readouterr().err


def test_addendum_and_settings(vault_env, capsys, monkeypatch):
    path = SCENARIOS / "03-low-level-concern-monitor.json"
    _, out, _ = run(
        capsys,
        monkeypatch,
        "drsmith",
        "assess",
        "--vault",
        str(vault_env.folder),
        "--user",
        "drsmith",
        "--answers",
        str(path),
        "--complete",
        "--json",
    )
    rid = json.loads(out)["record_id"]
    code, _, _ = run(
        capsys,
        monkeypatch,
        "drsmith",
        "addendum",
        rid,
        "--vault",
        str(vault_env.folder),
        "--user",
        "drsmith",
        "--text",
        "Booster given 1/12.",
    )
    assert code == 0
    _, out, _ = run(
        capsys,
        monkeypatch,
        "drsmith",
        "show",
        rid,
        "--vault",
        str(vault_env.folder),
        "--user",
        "drsmith",
        "--json",
    )
    assert json.loads(out)["addenda"][0]["text"] == "Booster given 1/12."
    code, _, err = run(
        capsys,
        monkeypatch,
        "admin",
        "settings",
        "--vault",
        str(vault_env.folder),
        "--user",
        "admin",
        "auto_lock_minutes=abc",
    )
    assert code == 2 and "whole number" in err


def test_init_prints_recovery_code_once_and_console_script_works(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("GPSHARE")}
    env["GPSHARE_PASSWORD"] = "first-admin-password"
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "gpshare",
            "init",
            "--vault",
            str(tmp_path / "v"),
            "--practice",
            "Siân's Surgery",
            "--admin",
            "pm",
            "--json",
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    info = json.loads(result.stdout)
    assert info["format_version"] == 2  # `init` makes version 2 unless --v1 says otherwise
    assert len(info["recovery_code"].replace("-", "")) == 32
    assert len(info["breakglass_code"].replace("-", "")) == 32
    header = (tmp_path / "v" / "vault.json").read_text()
    assert json.loads(header)["format_version"] == 2
    assert info["recovery_code"] not in header and info["breakglass_code"] not in header
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "gpshare",
            "init",
            "--vault",
            str(tmp_path / "v"),
            "--practice",
            "X",
            "--admin",
            "pm",
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert (
        result.returncode == 1
        and "already holds a vault" in result.stderr
        and "Traceback" not in result.stderr
    )
    result = subprocess.run(
        [sys.executable, "-m", "gpshare", "--version"], capture_output=True, text=True
    )
    assert result.returncode == 0 and "gpshare" in result.stdout
