"""Security fixes at the CLI and service layer: narratives kept out of argv, one-time passwords
enforced outside the Qt unlock screen, password strength, and clean failure messages."""

from __future__ import annotations

import io
import json
import sys
from pathlib import Path

import pytest
from PySide6.QtWidgets import QLabel, QLineEdit, QPushButton

from gpshare import services
from gpshare.cli import main
from gpshare.errors import ValidationFailed
from gpshare.store.crypto import CHEAP_TEST_KDF
from tests.conftest import PASSWORDS, SCENARIOS


def run(capsys, monkeypatch, user, *args, password=None, stdin=None):
    if user:
        monkeypatch.setenv("GPSHARE_PASSWORD", password or PASSWORDS[user])
    if stdin is not None:
        monkeypatch.setattr(sys, "stdin", io.StringIO(stdin))
        monkeypatch.setattr("gpshare.cli._stdin_lines", None)
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture
def completed_referral(vault_env) -> str:
    data = json.loads((SCENARIOS / "01-bruised-toddler-parents-agree.json").read_text())
    s = vault_env.session("drsmith")
    record = s.assessments.start_assessment(answers=data["answers"])
    done, _ = s.assessments.complete(record.id)
    s.close()
    return done.id


def addenda_of(vault_env, record_id):
    s = vault_env.session("drsmith")
    try:
        return [a.body for a in s.assessments.addenda(record_id)]
    finally:
        s.close()


# ----- 1. clinical text out of argv -------------------------------------------------------------
def test_addendum_from_file_has_no_warning(
    vault_env, completed_referral, tmp_path, capsys, monkeypatch
):
    text = tmp_path / "addendum.txt"
    text.write_text("Mother phoned: child seen at A&E.\nSocial worker informed.", encoding="utf-8")
    v = str(vault_env.folder)
    code, out, err = run(
        capsys, monkeypatch, "drsmith", "addendum", completed_referral, "--vault", v,
        "--user", "drsmith", "--text-file", str(text), "--json",
    )  # fmt: skip
    assert code == 0, err
    assert "warning" not in err
    assert json.loads(out)["addendum_id"]
    assert addenda_of(vault_env, completed_referral) == [text.read_text(encoding="utf-8")]


def test_addendum_from_stdin_after_the_password_line(
    vault_env, completed_referral, capsys, monkeypatch
):
    monkeypatch.delenv("GPSHARE_PASSWORD", raising=False)
    code, _, err = run(
        capsys, monkeypatch, None, "addendum", completed_referral, "--vault", str(vault_env.folder),
        "--user", "drsmith", "--password-stdin", "--text-file", "-",
        stdin=f"{PASSWORDS['drsmith']}\nFirst line of the fact.\nSecond line.\n",
    )  # fmt: skip
    assert code == 0, err
    assert addenda_of(vault_env, completed_referral) == ["First line of the fact.\nSecond line."]


def test_addendum_text_in_argv_still_works_with_a_warning(
    vault_env, completed_referral, capsys, monkeypatch
):
    code, _, err = run(
        capsys, monkeypatch, "drsmith", "addendum", completed_referral, "--vault",
        str(vault_env.folder), "--user", "drsmith", "--text", "Seen again today.",
    )  # fmt: skip
    assert code == 0
    assert "warning: --text puts clinical text on the command line" in err
    assert "--text-file" in err
    assert addenda_of(vault_env, completed_referral) == ["Seen again today."]


def test_addendum_text_and_file_together_is_refused(
    vault_env, completed_referral, tmp_path, capsys, monkeypatch
):
    (tmp_path / "t.txt").write_text("x")
    code, _, err = run(
        capsys, monkeypatch, "drsmith", "addendum", completed_referral, "--vault",
        str(vault_env.folder), "--user", "drsmith", "--text", "a", "--text-file", str(tmp_path / "t.txt"),
    )  # fmt: skip
    assert code == 2 and "not allowed with argument" in err
    assert addenda_of(vault_env, completed_referral) == []


def test_followup_note_from_file_and_from_argv(
    vault_env, completed_referral, tmp_path, capsys, monkeypatch
):
    note = tmp_path / "note.txt"
    note.write_text("Sent to the front door by secure email.", encoding="utf-8")
    v = str(vault_env.folder)
    code, _, err = run(
        capsys, monkeypatch, "drsmith", "followup", completed_referral, "--vault", v,
        "--user", "drsmith", "--event", "sent", "--note-file", str(note),
    )  # fmt: skip
    assert code == 0, err
    assert "warning" not in err
    code, _, err = run(
        capsys, monkeypatch, "drsmith", "followup", completed_referral, "--vault", v,
        "--user", "drsmith", "--event", "acknowledged", "--note", "Duty worker rang back.",
    )  # fmt: skip
    assert code == 0, err
    assert "warning: --note puts clinical text on the command line" in err
    s = vault_env.session("drsmith")
    notes = [f.note for f in s.referrals.followups(completed_referral)]
    s.close()
    assert notes == ["Sent to the front door by secure email.", "Duty worker rang back."]


# ----- 2. one-time passwords are enforced in the service layer ----------------------------------
def test_recovered_one_time_password_cannot_sign_through_the_cli(
    vault_env, completed_referral, tmp_path, capsys, monkeypatch
):
    monkeypatch.setenv("GPSHARE_RECOVERY_CODE", vault_env.recovery_code)
    code, out, err = run(
        capsys, monkeypatch, None, "recover", "--vault", str(vault_env.folder),
        "--reset-user", "drsmith", "--json",
    )  # fmt: skip
    assert code == 0, err
    temp = json.loads(out)["one_time_password"]
    assert services.validate_password(temp, "drsmith") is None  # passes the policy too
    out_pdf = tmp_path / "letter.pdf"
    code, _, err = run(
        capsys, monkeypatch, "drsmith", "letter", completed_referral, "--vault",
        str(vault_env.folder), "--user", "drsmith", "--out", str(out_pdf), password=temp,
    )  # fmt: skip
    assert code == 1
    assert "one-time password" in err and "gpshare user passwd --user drsmith" in err
    assert "Traceback" not in err
    assert not out_pdf.exists()
    lead = vault_env.session("lead")
    assert lead.letters.list_letters(completed_referral) == []
    refused = [e for e in lead.audit_trail.audit_log() if e.action == "permission_denied"]
    lead.close()
    assert refused[0].actor == "drsmith"
    assert refused[0].details == {
        "attempted": "sign_letter",
        "role": "clinician",
        "reason": "must_change_password",
    }


# ----- 4. password policy --------------------------------------------------------------------------
@pytest.mark.parametrize(
    "weak", ["1234567890", "password12", "qwertyuiop", "drsmith2026!", "aaaaaaaaaaaa"]
)
def test_weak_passwords_fail_with_a_reason(weak):
    problem = services.validate_password(weak, "drsmith", ["Dr Alex Smith"])
    assert problem is not None and problem.startswith("Password is too easy to guess: ")
    assert "three or four unrelated words" in problem


@pytest.mark.parametrize(
    "strong", ["smith-password-1", "fresh orchard lantern", "Tuba!Copper-Meadow"]
)
def test_strong_passwords_pass(strong):
    assert services.validate_password(strong, "drsmith", ["Dr Alex Smith"]) is None


def test_one_time_passwords_pass_the_policy():
    assert all(
        services.validate_password(services.one_time_password(), "x") is None for _ in range(50)
    )


def test_policy_applies_to_init_add_and_change(vault_env, tmp_path, clock):
    with pytest.raises(ValidationFailed, match="too easy to guess"):
        services.create_vault(
            tmp_path / "v2", practice_name="Mill Surgery", admin_username="boss",
            admin_full_name="Boss", admin_password="password12", clock=clock, kdf=CHEAP_TEST_KDF,
        )  # fmt: skip
    assert not (tmp_path / "v2" / "vault.json").exists()
    admin = vault_env.session("admin")
    with pytest.raises(ValidationFailed) as info:
        admin.users.add_user("drnew", "Dr New Person", "clinician", "1234567890")
    assert [e["field"] for e in info.value.errors] == ["password"]
    assert "drnew" not in [u.username for u in admin.users.list_users()]
    admin.close()
    s = vault_env.session("drsmith")
    with pytest.raises(ValidationFailed, match="too easy to guess") as info:
        s.users.change_password(PASSWORDS["drsmith"], "alexsmith1")
    assert info.value.errors[0]["field"] == "new_password"
    s.close()
    vault_env.session("drsmith").close()  # the old password still works


def test_cli_weak_passwords_exit_2_with_the_reason(vault_env, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("GPSHARE_NEW_PASSWORD", "password12")
    code, _, err = run(
        capsys, monkeypatch, "admin", "user", "add", "--vault", str(vault_env.folder), "--user",
        "admin", "drnew", "--role", "clinician", "--name", "Dr New",
    )  # fmt: skip
    assert code == 2 and "password: Password is too easy to guess" in err
    monkeypatch.setenv("GPSHARE_PASSWORD", "1234567890")
    code, out, err = (
        main(
            [
                "init",
                "--vault",
                str(tmp_path / "v3"),
                "--practice",
                "Mill",
                "--admin",
                "boss",
                "--json",
            ]
        ),
        *capsys.readouterr(),
    )
    assert code == 2 and "too easy to guess" in err and "Traceback" not in err
    assert json.loads(out)["ok"] is False


# ----- 5. smaller fixes -----------------------------------------------------------------------------
def test_rejected_complete_says_which_draft_was_kept(vault_env, capsys, monkeypatch):
    path = SCENARIOS / "04-bad-input.json"
    v = str(vault_env.folder)
    code, out, err = run(
        capsys, monkeypatch, "drsmith", "assess", "--vault", v, "--user", "drsmith",
        "--answers", str(path), "--complete",
    )  # fmt: skip
    assert code == 2
    draft = out.split()[1].rstrip(":")
    assert f"kept as draft {draft}" in err and "open it in the app" in err
    code, out, _ = run(
        capsys, monkeypatch, "drsmith", "assess", "--vault", v, "--user", "drsmith",
        "--answers", str(path), "--complete", "--json",
    )  # fmt: skip
    result = json.loads(out)
    assert result["draft_kept"] == result["record_id"]
    assert f"kept as draft {result['record_id']}" in result["message"]
    s = vault_env.session("drsmith")
    assert s.assessments.get_record(result["record_id"]).is_draft
    s.close()


def test_answers_without_form_key_exit_2(vault_env, tmp_path, capsys, monkeypatch):
    path = tmp_path / "answers.json"
    path.write_text(json.dumps({"answers": {"child_given_name": "Ava"}}))
    code, out, err = run(
        capsys, monkeypatch, "drsmith", "assess", "--vault", str(vault_env.folder), "--user",
        "drsmith", "--answers", str(path), "--json",
    )  # fmt: skip
    assert code == 2 and 'has no "form"' in err
    assert json.loads(out)["errors"][0]["field"] == "form"
    s = vault_env.session("drsmith")
    assert s.assessments.list_records() == []
    s.close()


@pytest.fixture
def signed_letter(vault_env, completed_referral, tmp_path) -> Path:
    s = vault_env.session("drsmith")
    result = s.letters.generate_letter(completed_referral, PASSWORDS["drsmith"])
    s.close()
    path = tmp_path / "letter.pdf"
    path.write_bytes(result.pdf)
    return path


def test_verify_letter_against_another_practices_ca_is_clean(
    signed_letter, tmp_path, clock, capsys
):
    other, _ = services.create_vault(
        tmp_path / "other", practice_name="Other Surgery", admin_username="admin",
        admin_full_name="Other Admin", admin_password=PASSWORDS["admin"], clock=clock,
        kdf=CHEAP_TEST_KDF,
    )  # fmt: skip
    ca = tmp_path / "other-ca.pem"
    ca.write_bytes(other.practice.practice_ca_pem())
    other.close()
    code = main(["verify-letter", str(signed_letter), "--ca", str(ca)])
    out, err = capsys.readouterr()
    assert code == 1
    assert out.startswith("NOT VALID: ") and "not issued by this practice" in out
    assert err == ""  # no pyHanko tracebacks


@pytest.mark.parametrize("content", [b"hello, not a certificate\n", b"", b"\x00\xff" * 40])
def test_verify_letter_with_a_garbage_ca_file(signed_letter, tmp_path, capsys, content):
    ca = tmp_path / "ca.pem"
    ca.write_bytes(content)
    code = main(["verify-letter", str(signed_letter), "--ca", str(ca), "--json"])
    out, err = capsys.readouterr()
    assert code == 2
    assert "is not a certificate" in err and "Traceback" not in err
    assert json.loads(out)["errors"][0]["field"] == "ca"


# ----- the Qt dialogs show the policy's message --------------------------------------------------
def test_change_password_dialog_shows_the_strength_reason(qtbot, vault_env):
    from gpshare.ui.unlock import ChangePasswordDialog

    s = vault_env.session("drsmith")
    dialog = ChangePasswordDialog(s, current_password=PASSWORDS["drsmith"], forced=True)
    qtbot.addWidget(dialog)
    dialog.findChild(QLineEdit, "change_password.new").setText("1234567890")
    dialog.findChild(QLineEdit, "change_password.repeat").setText("1234567890")
    dialog.findChild(QPushButton, "change_password.ok").click()
    message = dialog.findChild(QLabel, "change_password.error").text()
    assert message.startswith("Password is too easy to guess: This is a top-100 common password")
    s.close()


def test_add_user_dialog_shows_the_strength_reason(qtbot, vault_env):
    from gpshare.ui.admin_view import AddUserDialog

    admin = vault_env.session("admin")
    dialog = AddUserDialog(admin)
    qtbot.addWidget(dialog)
    dialog.findChild(QLineEdit, "add_user.username").setText("drnew")
    dialog.findChild(QLineEdit, "add_user.full_name").setText("Dr New")
    dialog.findChild(QLineEdit, "add_user.password").setText("password12")
    dialog.findChild(QLineEdit, "add_user.password_repeat").setText("password12")
    dialog.findChild(QPushButton, "add_user.ok").click()
    assert dialog.field_error("password").startswith("Password is too easy to guess")
    assert dialog.created is None
    admin.close()
