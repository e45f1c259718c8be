"""Practice certificates and PAdES signatures, checked with pyHanko and independently with pdfsig."""

from __future__ import annotations

import re
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from io import BytesIO
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.serialization import pkcs12
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from gpshare import signing
from gpshare.letter import build_letter
from gpshare.signing import (
    KeyAndCert,
    SigningError,
    certificate_info,
    create_practice_ca,
    export_pkcs12,
    issue_user_certificate,
    load_pkcs12,
    sign_pdf,
    verify_pdf,
)
from tests.pdftools import needs, nss_db_trusting, pdfsig
from tests.test_letter import OUTCOMES, make_input, scenario

# Real time, so pdfsig/NSS (which check validity against the wall clock) agree.
NOW = datetime.now(UTC).replace(microsecond=0)
PRACTICE = "Canal Row Medical Practice"


@pytest.fixture(scope="module")
def ca() -> KeyAndCert:
    return create_practice_ca(PRACTICE, NOW)


@pytest.fixture(scope="module")
def user(ca: KeyAndCert) -> KeyAndCert:
    return issue_user_certificate(
        ca,
        full_name="Dr Siân Evans",
        username="sevans",
        role="GP partner",
        gmc_number="7012345",
        practice_name=PRACTICE,
        now=NOW,
    )


@pytest.fixture(scope="module")
def letter() -> bytes:
    return build_letter(make_input(scenario("01")["answers"], OUTCOMES["01"]))


@pytest.fixture(scope="module")
def signed(letter: bytes, user: KeyAndCert, ca: KeyAndCert) -> bytes:
    return sign_pdf(
        letter, user, ca.cert_pem, now=NOW, reason="Safeguarding referral", location=PRACTICE
    )


def _flip_byte_in_first_signed_range(pdf: bytes) -> bytes:
    """Change one byte inside a content stream covered by the signature's first byte range."""
    match = re.search(rb"/ByteRange\s*\[\s*(\d+)\s+(\d+)", pdf)
    assert match, "no /ByteRange"
    first_end = int(match.group(1)) + int(match.group(2))
    start = pdf.index(b"stream\n", 0, first_end) + len(b"stream\n") + 20
    assert start < first_end
    changed = bytearray(pdf)
    changed[start] ^= 0x01
    return bytes(changed)


def _append_incremental_update(pdf: bytes) -> bytes:
    """A later revision that changes the document catalogue (what an editor might do)."""
    from pyhanko.pdf_utils import generic
    from pyhanko.pdf_utils.incremental_writer import IncrementalPdfFileWriter

    writer = IncrementalPdfFileWriter(BytesIO(pdf))
    writer.root["/PageMode"] = generic.NameObject("/UseOutlines")
    writer.update_root()
    out = BytesIO()
    writer.write(out)
    return out.getvalue()


# --------------------------------------------------------------------------- certificates


def test_practice_ca_is_a_ca(ca: KeyAndCert) -> None:
    cert = x509.load_pem_x509_certificate(ca.cert_pem)
    assert cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == (
        f"{PRACTICE} gpshare practice CA"
    )
    assert cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    usage = cert.extensions.get_extension_for_class(x509.KeyUsage).value
    assert usage.key_cert_sign and usage.crl_sign
    assert cert.not_valid_after_utc >= NOW + timedelta(days=365 * 20 - 1)
    assert b"BEGIN PRIVATE KEY" in ca.key_pem  # unencrypted PKCS#8: the caller wraps it


def test_user_certificate_contents(user: KeyAndCert, ca: KeyAndCert) -> None:
    cert = x509.load_pem_x509_certificate(user.cert_pem)
    cert.verify_directly_issued_by(x509.load_pem_x509_certificate(ca.cert_pem))
    subject = cert.subject
    assert subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == "Dr Siân Evans"
    assert subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)[0].value == PRACTICE
    assert subject.get_attributes_for_oid(NameOID.TITLE)[0].value == "GP partner"
    assert subject.get_attributes_for_oid(NameOID.SERIAL_NUMBER)[0].value == "GMC 7012345"
    usage = cert.extensions.get_extension_for_class(x509.KeyUsage).value
    assert usage.digital_signature and usage.content_commitment and not usage.key_cert_sign
    eku = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert ExtendedKeyUsageOID.EMAIL_PROTECTION in eku
    assert not cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca


def test_certificate_info(user: KeyAndCert) -> None:
    info = certificate_info(user.cert_pem)
    assert info.common_name == "Dr Siân Evans"
    assert info.gmc_number == "7012345"
    assert info.issuer == f"{PRACTICE} gpshare practice CA"
    assert info.not_before <= NOW < info.not_after
    assert info.not_after.year == NOW.year + 3 or info.not_after.year == NOW.year + 2
    assert re.fullmatch(r"([0-9A-F]{2}:){31}[0-9A-F]{2}", info.sha256_fingerprint)
    assert info.serial > 0


def test_user_without_gmc_number(ca: KeyAndCert) -> None:
    nurse = issue_user_certificate(
        ca,
        full_name="Łukasz Nowak",
        username="lnowak",
        role="Practice nurse",
        gmc_number=None,
        practice_name=PRACTICE,
        now=NOW,
    )
    assert certificate_info(nurse.cert_pem).gmc_number is None


def test_pkcs12_round_trip(user: KeyAndCert, ca: KeyAndCert) -> None:
    data = export_pkcs12(user, b"correct horse", ca.cert_pem)
    loaded = load_pkcs12(data, b"correct horse")
    assert loaded.cert_pem == user.cert_pem
    key = serialization.load_pem_private_key(loaded.key_pem, None)
    original = serialization.load_pem_private_key(user.key_pem, None)
    assert key.public_key() == original.public_key()


def test_pkcs12_wrong_password(user: KeyAndCert) -> None:
    data = export_pkcs12(user, b"correct horse")
    with pytest.raises(SigningError, match="password is wrong"):
        load_pkcs12(data, b"wrong")
    with pytest.raises(SigningError, match="password is wrong"):
        load_pkcs12(b"not a pkcs12 file", b"x")


def test_pkcs12_without_key(user: KeyAndCert) -> None:
    cert = x509.load_pem_x509_certificate(user.cert_pem)
    data = pkcs12.serialize_key_and_certificates(
        b"cert only", None, cert, None, serialization.BestAvailableEncryption(b"pw")
    )
    with pytest.raises(SigningError, match="no private key"):
        load_pkcs12(data, b"pw")


# --------------------------------------------------------------------------- signing errors


def test_expired_certificate_refused(ca: KeyAndCert, letter: bytes) -> None:
    old_ca = create_practice_ca(PRACTICE, datetime(2020, 1, 1, tzinfo=UTC))
    old = issue_user_certificate(
        old_ca,
        full_name="Dr A",
        username="a",
        role="GP",
        gmc_number="1234567",
        practice_name=PRACTICE,
        now=datetime(2023, 3, 3, 12, 0, tzinfo=UTC),
    )
    with pytest.raises(SigningError) as err:
        sign_pdf(
            letter,
            old,
            old_ca.cert_pem,
            now=datetime(2026, 11, 25, 10, 0, tzinfo=UTC),
            reason="r",
            location="l",
        )
    assert str(err.value) == (
        "Your signing certificate expired on 3 March 2026; ask the practice administrator "
        "to issue a new one."
    )


def test_not_yet_valid_certificate_refused(ca: KeyAndCert, user: KeyAndCert, letter: bytes) -> None:
    with pytest.raises(SigningError, match="not valid until"):
        sign_pdf(letter, user, ca.cert_pem, now=NOW - timedelta(days=2), reason="r", location="l")


def test_key_not_matching_certificate_refused(
    ca: KeyAndCert, user: KeyAndCert, letter: bytes
) -> None:
    other = issue_user_certificate(
        ca,
        full_name="Dr B",
        username="b",
        role="GP",
        gmc_number=None,
        practice_name=PRACTICE,
        now=NOW,
    )
    mixed = KeyAndCert(key_pem=other.key_pem, cert_pem=user.cert_pem)
    with pytest.raises(SigningError, match="does not match your certificate"):
        sign_pdf(letter, mixed, ca.cert_pem, now=NOW, reason="r", location="l")


def test_certificate_from_another_ca_refused(user: KeyAndCert, letter: bytes) -> None:
    other_ca = create_practice_ca("Other Surgery", NOW)
    with pytest.raises(SigningError, match="not issued by this practice"):
        sign_pdf(letter, user, other_ca.cert_pem, now=NOW, reason="r", location="l")


def test_garbage_pdf_refused(ca: KeyAndCert, user: KeyAndCert) -> None:
    with pytest.raises(SigningError, match="could not be signed"):
        sign_pdf(b"%PDF-1.4\nnonsense", user, ca.cert_pem, now=NOW, reason="r", location="l")


# --------------------------------------------------------------------------- verification


def test_signed_letter_verifies(signed: bytes, letter: bytes, ca: KeyAndCert) -> None:
    assert signed.startswith(letter)  # incremental update: the original bytes are untouched
    result = verify_pdf(signed, [ca.cert_pem])
    assert result.ok and result.intact and result.valid and result.trusted, result
    assert result.reason == ""
    assert result.signer_name == "Dr Siân Evans"
    assert result.signer_gmc == "7012345"
    assert result.signed_at is not None
    assert abs(result.signed_at - NOW) < timedelta(seconds=1)


def test_flipped_byte_is_detected(signed: bytes, ca: KeyAndCert) -> None:
    result = verify_pdf(_flip_byte_in_first_signed_range(signed), [ca.cert_pem])
    assert not result.ok and not result.intact
    assert result.reason == "The letter was altered after it was signed"


def test_other_practice_is_not_trusted(letter: bytes) -> None:
    other_ca = create_practice_ca("Other Surgery", NOW)
    stranger = issue_user_certificate(
        other_ca,
        full_name="Dr Mallory",
        username="m",
        role="GP",
        gmc_number="7654321",
        practice_name="Other Surgery",
        now=NOW,
    )
    signed_elsewhere = sign_pdf(
        letter, stranger, other_ca.cert_pem, now=NOW, reason="r", location="l"
    )
    our_ca = create_practice_ca(PRACTICE, NOW)
    result = verify_pdf(signed_elsewhere, [our_ca.cert_pem])
    assert result.intact and result.valid and not result.trusted and not result.ok
    assert result.reason == "Signed by a certificate not issued by this practice"
    assert result.signer_name == "Dr Mallory"


def test_incremental_update_after_signing_is_caught(signed: bytes, ca: KeyAndCert) -> None:
    updated = _append_incremental_update(signed)
    result = verify_pdf(updated, [ca.cert_pem])
    assert not result.ok
    assert result.reason.startswith("The letter was altered after it was signed")


def test_unsigned_and_non_pdf(letter: bytes, ca: KeyAndCert) -> None:
    assert verify_pdf(letter, [ca.cert_pem]).reason == "This PDF carries no gpshare signature"
    assert verify_pdf(b"PK\x03\x04 a zip file", [ca.cert_pem]).reason == "The file is not a PDF"
    assert not verify_pdf(b"%PDF-1.7\ngarbage", [ca.cert_pem]).ok


def test_letter_still_verifies_after_certificate_expires(letter: bytes) -> None:
    """Trust is judged at the signing time recorded in the signature."""
    old_ca = create_practice_ca(PRACTICE, datetime(2020, 1, 1, tzinfo=UTC))
    old = issue_user_certificate(
        old_ca,
        full_name="Dr Old",
        username="old",
        role="GP",
        gmc_number="1111111",
        practice_name=PRACTICE,
        now=datetime(2020, 1, 2, tzinfo=UTC),
    )
    then = datetime(2021, 6, 1, 9, 0, tzinfo=UTC)
    signed_then = sign_pdf(letter, old, old_ca.cert_pem, now=then, reason="r", location="l")
    result = verify_pdf(signed_then, [old_ca.cert_pem])
    assert result.ok, result
    assert result.signed_at == then


def test_importing_signing_does_not_import_pyhanko() -> None:
    code = (
        "import sys, gpshare.signing, gpshare.letter; "
        "print(any(m.startswith('pyhanko') for m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_document_hash_helper(signed: bytes) -> None:
    assert len(signing.document_sha256(signed)) == 64


# --------------------------------------------------------------------------- pdfsig (poppler + NSS)


@needs("pdfsig")
def test_pdfsig_reports_valid_signature(signed: bytes) -> None:
    report = pdfsig(signed)
    assert "Signature is Valid" in report, report
    assert "Total document signed" in report, report
    assert "Dr Siân Evans" in report


@needs("pdfsig", "certutil")
def test_pdfsig_trusts_practice_ca_in_nss_db(signed: bytes, ca: KeyAndCert, tmp_path: Path) -> None:
    db = nss_db_trusting(tmp_path / "nss", ca.cert_pem)
    report = pdfsig(signed, db)
    assert "Signature is Valid" in report, report
    assert "Certificate is Trusted" in report, report


@needs("pdfsig")
def test_pdfsig_detects_flipped_byte(signed: bytes) -> None:
    report = pdfsig(_flip_byte_in_first_signed_range(signed))
    assert "Signature is Valid" not in report, report
    assert "Digest Mismatch" in report or "Invalid" in report, report


@needs("pdfsig")
def test_pdfsig_sees_update_after_signing(signed: bytes) -> None:
    report = pdfsig(_append_incremental_update(signed))
    assert "Total document signed" not in report, report


@needs("pdfsig")
def test_pdfsig_reports_pades_baseline_with_sha256(signed: bytes) -> None:
    """README: letters are signed as PAdES B-B (SHA-256)."""
    report = pdfsig(signed)
    assert "ETSI.CAdES.detached" in report, report  # the PAdES baseline sub-filter
    assert "SHA-256" in report or "SHA256" in report, report
