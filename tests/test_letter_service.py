"""Signed letters end to end: services + CLI + poppler as the independent reader."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from gpshare.cli import main
from gpshare.errors import PermissionDenied, ServiceError, ValidationFailed
from gpshare.store.errors import WrongPasswordError
from tests import pdftools
from tests.conftest import PASSWORDS, SCENARIOS
from tests.storehelp import raw_connection

needs_poppler = pdftools.needs("pdftotext", "pdffonts", "pdfsig")


def scenario(name: str) -> dict:
    path = SCENARIOS / f"{name}.json"
    return json.loads(path.read_text())


def completed(session, name):
    data = scenario(name)
    rec = session.assessments.start_assessment(answers=data["answers"])
    done, _ = session.assessments.complete(rec.id)
    return done, data["expect"]


@pytest.fixture
def smith(vault_env):
    s = vault_env.session("drsmith")
    yield s
    if s.is_open:
        s.close()


@needs_poppler
@pytest.mark.parametrize(
    "name,statement",
    [
        ("01-bruised-toddler-parents-agree", "Consent given"),
        ("02-teen-sexual-health-refuses", "Consent refused"),
    ],
)
def test_scenario_letters_are_complete_signed_and_embedded(smith, tmp_path, name, statement):
    record, expect = completed(smith, name)
    result = smith.letters.generate_letter(record.id, PASSWORDS["drsmith"])
    text = pdftools.pdftotext(result.pdf)
    for wanted in expect["letter_contains"]:
        assert wanted in text, wanted
    assert record.form_version == 2  # new assessments use the newest form and its template
    for heading in (
        "Referrer",
        "Child",
        "Parents, carers and household",
        "Reasons for concern",
        "Immediate risk and safety",
        "Previous concerns",
        "Consent and information-sharing statement",
        "Informing the family",
        "What is requested",
    ):
        assert heading in text, heading
    assert "Safeguarding referral" in text  # the outcome's letter_title
    assert statement in text
    assert "Dr Alex Smith" in text and "1234567" in text
    assert "within one working day" in text
    assert [f.name for f in pdftools.pdffonts(result.pdf) if not f.embedded] == []
    sig = pdftools.pdfsig(result.pdf)
    assert "Signature is Valid" in sig
    assert "Dr Alex Smith" in sig
    stored = smith.letters.list_letters(record.id)
    assert [m.sha256 for m in stored] == [result.sha256]
    assert "9434765870" not in result.filename and "Marsh" not in result.filename


@needs_poppler
def test_tampered_letter_fails_pdfsig_and_verify_letter(
    smith, vault_env, tmp_path, capsys, monkeypatch
):
    record, _ = completed(smith, "01-bruised-toddler-parents-agree")
    result = smith.letters.generate_letter(record.id, PASSWORDS["drsmith"])
    ca = tmp_path / "ca.pem"
    ca.write_bytes(smith.practice.practice_ca_pem())
    smith.close()
    good = tmp_path / "good.pdf"
    good.write_bytes(result.pdf)
    monkeypatch.setenv("GPSHARE_PASSWORD", PASSWORDS["lead"])
    assert (
        main(
            [
                "verify-letter",
                str(good),
                "--vault",
                str(vault_env.folder),
                "--user",
                "lead",
                "--json",
            ]
        )
        == 0
    )
    out = json.loads(capsys.readouterr().out)
    assert out["ok"] and out["record_id"] == record.id and out["signer"] == "Dr Alex Smith"
    assert main(["verify-letter", str(good), "--ca", str(ca)]) == 0
    data = bytearray(result.pdf)
    index = data.find(b"stream", 200) + 20  # a byte inside the first page's compressed content
    data[index] ^= 0x01
    bad = tmp_path / "bad.pdf"
    bad.write_bytes(bytes(data))
    assert "Signature is Valid" not in pdftools.pdfsig(bytes(data))
    capsys.readouterr()
    assert (
        main(["verify-letter", str(bad), "--vault", str(vault_env.folder), "--user", "lead"]) == 1
    )
    assert "NOT VALID" in capsys.readouterr().out
    other = tmp_path / "other.pdf"
    other.write_bytes(b"%PDF-1.4 not really")
    assert main(["verify-letter", str(other), "--ca", str(ca)]) == 1
    assert main(["verify-letter", str(good)]) == 2  # says whose signatures to trust


@needs_poppler
def test_trusted_once_practice_ca_is_in_nss(smith, tmp_path):
    import shutil

    if shutil.which("certutil") is None:
        pytest.skip("libnss3-tools not installed")
    record, _ = completed(smith, "02-teen-sexual-health-refuses")
    result = smith.letters.generate_letter(record.id, PASSWORDS["drsmith"])
    nss = pdftools.nss_db_trusting(tmp_path / "nss", smith.practice.practice_ca_pem())
    out = pdftools.pdfsig(result.pdf, nss)
    assert "Signature is Valid" in out and "Certificate is Trusted" in out


def test_wrong_password_at_signing_is_refused_and_audited(smith, vault_env):
    record, _ = completed(smith, "01-bruised-toddler-parents-agree")
    with pytest.raises(WrongPasswordError, match="not your current password"):
        smith.letters.generate_letter(record.id, "wrong-password")
    assert smith.letters.list_letters(record.id) == []


def test_clinician_cannot_sign_anothers_record(smith, vault_env):
    record, _ = completed(smith, "01-bruised-toddler-parents-agree")
    smith.close()
    jones = vault_env.session("drjones")
    with pytest.raises(PermissionDenied):
        jones.letters.generate_letter(record.id, PASSWORDS["drjones"])
    jones.close()
    lead = vault_env.session("lead")
    with pytest.raises(PermissionDenied, match="only the clinician who completed"):
        lead.letters.generate_letter(record.id, PASSWORDS["lead"])
    lead.close()
    admin = vault_env.session("admin")
    with pytest.raises(PermissionDenied):
        admin.letters.generate_letter(record.id, PASSWORDS["admin"])
    admin.close()


def test_signing_key_is_unusable_without_the_users_own_password(smith):
    """Even with the database key, another user's password cannot unwrap this user's key."""
    from gpshare.store import crypto
    from gpshare.store.sqlcipher import repositories as repo

    stored = repo.active_signing_key(raw_connection(smith), "drsmith")
    assert stored is not None
    ad = f"{smith.vault.vault_id}:signing:drsmith".encode()
    assert (
        crypto.unwrap(
            crypto.subkey(smith._user_secret, "signing key"), stored[1].nonce, stored[1].wrapped, ad
        )
        is not None
    )
    assert (
        crypto.unwrap(
            crypto.subkey(smith.db_key, "signing key"), stored[1].nonce, stored[1].wrapped, ad
        )
        is None
    )


def test_no_letter_for_drafts_or_monitor_decisions(smith):
    draft = smith.assessments.start_assessment()
    with pytest.raises(ValidationFailed, match="still a draft"):
        smith.letters.generate_letter(draft.id, PASSWORDS["drsmith"])
    record, _ = completed(smith, "03-low-level-concern-monitor")
    with pytest.raises(ValidationFailed, match="not to share now"):
        smith.letters.generate_letter(record.id, PASSWORDS["drsmith"])


def test_missing_practice_details_are_named(vault_env):
    admin = vault_env.session("admin")
    admin.practice.update_settings({"practice_address": "", "practice_ods_code": ""})
    admin.close()
    s = vault_env.session("drsmith")
    record, _ = completed(s, "01-bruised-toddler-parents-agree")
    with pytest.raises(ValidationFailed, match="missing: address, ODS code"):
        s.letters.generate_letter(record.id, PASSWORDS["drsmith"])
    s.close()


def test_broken_letter_template_gives_a_clear_message(vault_env, tmp_path, monkeypatch):
    import shutil

    forms = tmp_path / "forms"
    shutil.copytree(Path(__file__).resolve().parent.parent / "forms", forms)
    monkeypatch.setenv("GPSHARE_FORMS_DIR", str(forms))
    s = vault_env.session("drsmith")
    record, _ = completed(s, "01-bruised-toddler-parents-agree")
    (forms / "england-child-safeguarding.v2.letter.toml").write_text(
        'form_id = "england-child-safeguarding"\nform_version = 2\nsections = 3\n',
        encoding="utf-8",
    )
    with pytest.raises(ServiceError, match="letter cannot be made because its template") as err:
        s.letters.generate_letter(record.id, PASSWORDS["drsmith"])
    assert "england-child-safeguarding.v2.letter.toml" in str(err.value)
    assert s.letters.list_letters(record.id) == []
    s.close()


def test_user_without_certificate_gets_a_clear_message(vault_env):
    from gpshare.store.sqlcipher import repositories as repo

    s = vault_env.session("drsmith")
    record, _ = completed(s, "01-bruised-toddler-parents-agree")
    repo.deactivate_signing_keys(raw_connection(s), "drsmith")
    with pytest.raises(ServiceError, match="no signing certificate"):
        s.letters.generate_letter(record.id, PASSWORDS["drsmith"])
    s.close()


def test_expired_certificate_is_refused_with_advice(vault_env):
    from datetime import timedelta

    s = vault_env.session("drsmith")
    record, _ = completed(s, "01-bruised-toddler-parents-agree")
    s.clock.current = s.clock.current + timedelta(days=365 * 4)
    with pytest.raises(ServiceError, match="expired"):
        s.letters.generate_letter(record.id, PASSWORDS["drsmith"])
    s.close()


def test_reset_password_issues_new_certificate_and_old_letters_still_verify(vault_env, tmp_path):
    s = vault_env.session("drsmith")
    record, _ = completed(s, "01-bruised-toddler-parents-agree")
    first = s.letters.generate_letter(record.id, PASSWORDS["drsmith"])
    s.close()
    admin = vault_env.session("admin")
    temp = admin.users.reset_password("drsmith")
    admin.close()
    s = vault_env.session("drsmith", temp)
    s.users.change_password(temp, "smith-new-password")
    second = s.letters.generate_letter(record.id, "smith-new-password")
    for result in (first, second):
        verification, match = s.letters.verify_letter(result.pdf)
        assert verification.ok and match.record_id == record.id
    s.close()


def test_letter_events_are_audited(smith, vault_env, tmp_path):
    record, _ = completed(smith, "01-bruised-toddler-parents-agree")
    result = smith.letters.generate_letter(record.id, PASSWORDS["drsmith"])
    path = smith.letters.save_letter(result.letter_id, tmp_path / "saved.pdf")
    assert path.read_bytes() == result.pdf
    assert oct(path.stat().st_mode & 0o777) == "0o600"
    smith.letters.record_letter_event(result.letter_id, "letter_printed", {"pages": 3})
    smith.close()
    lead = vault_env.session("lead")
    actions = [e.action for e in lead.audit_trail.audit_log() if e.record_id == record.id]
    assert {"letter_generated", "letter_saved", "letter_printed", "letter_opened"} <= set(actions)
    lead.close()


def test_cli_assess_with_letter_and_letter_command(vault_env, tmp_path, capsys, monkeypatch):
    path = SCENARIOS / "01-bruised-toddler-parents-agree.json"
    monkeypatch.setenv("GPSHARE_PASSWORD", PASSWORDS["drsmith"])
    out = tmp_path / "l.pdf"
    assert (
        main(
            [
                "assess",
                "--vault",
                str(vault_env.folder),
                "--user",
                "drsmith",
                "--answers",
                str(path),
                "--complete",
                "--letter",
                str(out),
                "--json",
            ]
        )
        == 0
    )
    rid = json.loads(capsys.readouterr().out)["record_id"]
    assert out.read_bytes().startswith(b"%PDF")
    again = tmp_path / "again.pdf"
    assert (
        main(
            [
                "letter",
                rid,
                "--vault",
                str(vault_env.folder),
                "--user",
                "drsmith",
                "--out",
                str(again),
            ]
        )
        == 0
    )
    assert (
        main(
            [
                "ca",
                "export",
                "--vault",
                str(vault_env.folder),
                "--user",
                "drsmith",
                "--out",
                str(tmp_path / "ca.pem"),
            ]
        )
        == 0
    )
    assert (tmp_path / "ca.pem").read_text().startswith("-----BEGIN CERTIFICATE-----")
    assert (
        main(
            [
                "letter",
                rid,
                "--vault",
                str(vault_env.folder),
                "--user",
                "drsmith",
                "--out",
                str(Path("/proc/forbidden.pdf")),
            ]
        )
        == 1
    )


@needs_poppler
def test_protected_copy_is_encrypted_and_still_validly_signed(smith, tmp_path):
    record, _ = completed(smith, "01-bruised-toddler-parents-agree")
    result = smith.letters.generate_letter(record.id, PASSWORDS["drsmith"])
    with pytest.raises(ValidationFailed, match="at least 10"):
        smith.letters.protected_copy(result.letter_id, PASSWORDS["drsmith"], "short")
    with pytest.raises(ValidationFailed, match="different"):
        smith.letters.protected_copy(result.letter_id, PASSWORDS["drsmith"], PASSWORDS["drsmith"])
    copy = smith.letters.protected_copy(result.letter_id, PASSWORDS["drsmith"], "pdf-password-123")
    path = tmp_path / "protected.pdf"
    path.write_bytes(copy)
    import subprocess

    locked = subprocess.run(["pdftotext", str(path), "-"], capture_output=True, text=True)
    assert locked.returncode != 0 and "Ellie" not in locked.stdout
    opened = subprocess.run(
        ["pdftotext", "-upw", "pdf-password-123", str(path), "-"], capture_output=True, text=True
    )
    assert "Ellie" in opened.stdout
    if pdftools.have_qpdf():
        enc = subprocess.run(
            ["qpdf", "--show-encryption", "--password=pdf-password-123", str(path)],
            capture_output=True,
            text=True,
        ).stdout
        assert "R = 6" in enc  # AES-256
    assert (
        "pdf-password-123"
        not in raw_connection(smith)
        .execute("SELECT group_concat(details) FROM audit")
        .fetchone()[0]
    )
    sig = subprocess.run(
        ["pdfsig", "-upw", "pdf-password-123", str(path)], capture_output=True, text=True
    ).stdout
    assert "Signature is Valid" in sig and "Total document signed" in sig


@needs_poppler
def test_imported_pkcs12_certificate_signs_and_verifies(vault_env, tmp_path, capsys, monkeypatch):
    from datetime import UTC, datetime

    from gpshare import signing

    now = datetime(2026, 11, 25, 9, 0, tzinfo=UTC)
    other_ca = signing.create_practice_ca("NHS Example Smartcard CA", now)
    issued = signing.issue_user_certificate(
        other_ca,
        full_name="Dr Alex Smith",
        username="drsmith",
        role="GP",
        gmc_number="1234567",
        practice_name="Canal Street Surgery",
        now=now,
    )
    p12 = signing.export_pkcs12(issued, b"p12-secret", other_ca.cert_pem)
    bare = signing.export_pkcs12(issued, b"p12-secret")
    admin = vault_env.session("admin")
    with pytest.raises(ValidationFailed, match="password is wrong"):
        admin.users.import_pkcs12("drsmith", p12, "wrong")
    with pytest.raises(ValidationFailed, match="issuer is not in the file"):
        admin.users.import_pkcs12("drsmith", bare, "p12-secret")
    admin.close()
    (tmp_path / "smith.p12").write_bytes(p12)
    monkeypatch.setenv("GPSHARE_PASSWORD", PASSWORDS["admin"])
    monkeypatch.setenv("GPSHARE_P12_PASSWORD", "p12-secret")
    assert (
        main(
            [
                "user",
                "import-p12",
                "drsmith",
                "--vault",
                str(vault_env.folder),
                "--user",
                "admin",
                "--file",
                str(tmp_path / "smith.p12"),
                "--json",
            ]
        )
        == 0
    )
    temp = json.loads(capsys.readouterr().out)["one_time_password"]
    s = vault_env.session("drsmith", temp)
    s.users.change_password(temp, "smith-after-import")
    record, _ = completed(s, "01-bruised-toddler-parents-agree")
    result = s.letters.generate_letter(record.id, "smith-after-import")
    verification, match = s.letters.verify_letter(result.pdf)
    assert verification.ok and match.record_id == record.id
    assert "Signature is Valid" in pdftools.pdfsig(result.pdf)
    assert (
        "NHS Example Smartcard CA" in signing.certificate_info(s.users.signing_certificate()).issuer
    )
    assert s.users.trusted_issuers() == [other_ca.cert_pem]
    s.close()
