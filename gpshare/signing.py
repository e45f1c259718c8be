"""Practice certificates and PAdES signatures on referral letters.

Each practice has its own certificate authority (created with the vault); each
clinician gets a signing certificate issued by it.  Letters are signed as PAdES
B-B (SHA-256) in an incremental update, with an invisible signature field: the
human-readable signature block is part of the page content (see ``letter.py``),
because Qt's PDF viewer does not draw signature appearances.

pyHanko costs ~0.8 s to import, so it is imported inside the functions that
need it; importing this module stays cheap.

Every ``SigningError`` message is plain English for a GP: what is wrong and what
to do about it.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import sys
import types
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.serialization import pkcs12
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric.types import (
        CertificateIssuerPrivateKeyTypes,
        PrivateKeyTypes,
    )

__all__ = [
    "CertInfo",
    "KeyAndCert",
    "SigningError",
    "Verification",
    "certificate_info",
    "create_practice_ca",
    "export_pkcs12",
    "issue_user_certificate",
    "load_pkcs12",
    "self_signed_ca",
    "sign_pdf",
    "verify_pdf",
]

#: id-kp-documentSigning (RFC 9336); cryptography has no named constant for it.
_DOCUMENT_SIGNING = x509.ObjectIdentifier("1.3.6.1.5.5.7.3.36")
#: Certificates start a little in the past so a clock a few minutes slow still works.
_CLOCK_SKEW = timedelta(minutes=5)
_FIELD_NAME = "gpshareSignature"

# Reasons shown by verify_pdf (plain English, stable so callers and tests can match them).
REASON_NOT_PDF = "The file is not a PDF"
REASON_DAMAGED = "The PDF file is damaged and cannot be checked"
REASON_NO_SIGNATURE = "This PDF carries no gpshare signature"
REASON_ALTERED = "The letter was altered after it was signed"
REASON_ADDED_AFTER = (
    "The letter was altered after it was signed: something was added to the file "
    "after the signature"
)
REASON_BAD_SIGNATURE = "The signature is damaged or was not made with the signer's key"
REASON_UNTRUSTED = "Signed by a certificate not issued by this practice"
REASON_CERT_INVALID = "Signed with a practice certificate that was not valid at the time of signing"


class SigningError(Exception):
    """A problem with certificates or signing, worded for the user."""


# pyHanko modules that exist only to reach the network, with the one name each is imported for.
_NETWORK_MODULES = {
    "pyhanko.sign.timestamps.aiohttp_client": "HTTPTimeStamper",
    "pyhanko_certvalidator.fetchers.aiohttp_fetchers": "AIOHttpFetcherBackend",
}


class _Offline:
    """Stands in for pyHanko's network clients; gpshare never fetches anything."""

    def __init__(self, *_args: object, **_kwargs: object) -> None:
        raise RuntimeError("gpshare works offline: no time-stamp server, OCSP or CRL fetching.")


def _offline_pyhanko() -> None:
    """Keep pyHanko from importing aiohttp (~0.25 s of network code an offline app never runs).

    pyhanko.sign.timestamps/__init__ imports its aiohttp time-stamp client, and the PDF
    signer imports validation.ades, which imports the aiohttp OCSP/CRL fetchers, both
    unconditionally: no choice of submodules avoids them. Registering a stand-in for those
    two modules before pyHanko is imported does. Validation runs with fetching off
    (verify_pdf), so the stand-ins are never instantiated.
    """
    for name, attribute in _NETWORK_MODULES.items():
        if name not in sys.modules:
            stub = types.ModuleType(name)
            setattr(stub, attribute, _Offline)
            sys.modules[name] = stub


@dataclass(frozen=True)
class KeyAndCert:
    """A private key (unencrypted PKCS#8 PEM; callers wrap it) and its certificate (PEM)."""

    key_pem: bytes
    cert_pem: bytes


@dataclass(frozen=True)
class CertInfo:
    """What the app shows about a certificate."""

    common_name: str
    gmc_number: str | None
    issuer: str
    not_before: datetime
    not_after: datetime
    serial: int
    sha256_fingerprint: str


@dataclass(frozen=True)
class Verification:
    """Result of checking a signed letter; ``reason`` is "" when ``ok``."""

    ok: bool
    intact: bool
    valid: bool
    trusted: bool
    signer_name: str | None
    signer_gmc: str | None
    signed_at: datetime | None
    reason: str


# --------------------------------------------------------------------------- helpers


def _aware(when: datetime) -> datetime:
    """Treat a naive datetime as UTC."""
    return when if when.tzinfo is not None else when.replace(tzinfo=UTC)


def _add_years(when: datetime, years: int) -> datetime:
    """``when`` plus whole calendar years (29 February becomes 28 February)."""
    try:
        return when.replace(year=when.year + years)
    except ValueError:
        return when.replace(year=when.year + years, day=28)


def _human_date(when: datetime) -> str:
    """E.g. "3 March 2026" (UK local date where the time zone database is available)."""
    try:
        from zoneinfo import ZoneInfo

        when = _aware(when).astimezone(ZoneInfo("Europe/London"))
    except Exception:  # tzdata missing: the UTC date is close enough
        when = _aware(when)
    return f"{when.day} {when:%B %Y}"


def _new_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def _key_pem(key: PrivateKeyTypes) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def _load_cert(cert_pem: bytes) -> x509.Certificate:
    try:
        if b"-----BEGIN" in cert_pem:
            return x509.load_pem_x509_certificate(cert_pem)
        return x509.load_der_x509_certificate(cert_pem)
    except ValueError as exc:
        raise SigningError(
            "The certificate could not be read. Ask the practice administrator to issue a new one."
        ) from exc


def _asn1_cert(cert_pem: bytes) -> Any:
    """The certificate as an asn1crypto object (what pyHanko works with)."""
    from asn1crypto import x509 as asn1_x509

    der = _load_cert(cert_pem).public_bytes(serialization.Encoding.DER)
    return asn1_x509.Certificate.load(der)


def _load_key(key_pem: bytes) -> PrivateKeyTypes:
    try:
        return serialization.load_pem_private_key(key_pem, password=None)
    except (ValueError, TypeError) as exc:
        raise SigningError(
            "Your signing key could not be read. Ask the practice administrator to "
            "issue a new certificate."
        ) from exc


def _issuer_key(key_pem: bytes) -> CertificateIssuerPrivateKeyTypes:
    key = _load_key(key_pem)
    if not isinstance(key, ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey):
        raise SigningError(
            "The practice certificate authority uses an unsupported key type. Ask the "
            "practice administrator to create a new one."
        )
    return key


def _public_der(obj: Any) -> bytes:
    return bytes(
        obj.public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )


def _key_matches(key: PrivateKeyTypes, cert: x509.Certificate) -> bool:
    return _public_der(key.public_key()) == _public_der(cert.public_key())


def _name_attr(name: x509.Name, oid: x509.ObjectIdentifier) -> str | None:
    attrs = name.get_attributes_for_oid(oid)
    if not attrs:
        return None
    value = attrs[0].value
    return value if isinstance(value, str) else value.decode("utf-8", "replace")


def _gmc_from_name(name: x509.Name) -> str | None:
    serial = _name_attr(name, NameOID.SERIAL_NUMBER)
    if serial and serial.upper().startswith("GMC"):
        return serial[3:].strip() or None
    return None


def _display_name(name: x509.Name) -> str:
    return _name_attr(name, NameOID.COMMON_NAME) or name.rfc4514_string()


# --------------------------------------------------------------------------- certificates


def create_practice_ca(practice_name: str, now: datetime, valid_years: int = 20) -> KeyAndCert:
    """Create the practice's own certificate authority (EC P-256, self-signed)."""
    practice_name = practice_name.strip()
    if not practice_name:
        raise SigningError("Enter the practice name before creating its certificate authority.")
    name = x509.Name(
        [
            x509.NameAttribute(NameOID.COMMON_NAME, f"{practice_name} gpshare practice CA"),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, practice_name),
            x509.NameAttribute(NameOID.COUNTRY_NAME, "GB"),
        ]
    )
    return self_signed_ca(name, now, valid_years)


def self_signed_ca(name: x509.Name, now: datetime, valid_years: int) -> KeyAndCert:
    """A new EC P-256 key and a self-signed CA certificate for it named `name` (CA:TRUE,
    path length 0, signing certificates and CRLs only): the practice CA, and a practice
    server's workstation CA (gpshare.store.postgres.tls)."""
    now = _aware(now)
    key = _new_key()
    ski = x509.SubjectKeyIdentifier.from_public_key(key.public_key())
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - _CLOCK_SKEW)
        .not_valid_after(_add_years(now, valid_years))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=False,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(ski, critical=False)
        .sign(key, hashes.SHA256())
    )
    return KeyAndCert(_key_pem(key), cert.public_bytes(serialization.Encoding.PEM))


def issue_user_certificate(
    ca: KeyAndCert,
    *,
    full_name: str,
    username: str,
    role: str,
    gmc_number: str | None,
    practice_name: str,
    now: datetime,
    valid_years: int = 3,
) -> KeyAndCert:
    """Issue a clinician's signing certificate from the practice CA.

    Subject: CN = full name, O = practice, title = role, UID = username and, when
    given, serialNumber = "GMC <number>" so a verifier can show the GMC number.
    The validity never outlasts the CA's.
    """
    full_name = full_name.strip()
    if not full_name:
        raise SigningError("Enter the user's full name before issuing a certificate.")
    now = _aware(now)
    ca_cert = _load_cert(ca.cert_pem)
    ca_key = _issuer_key(ca.key_pem)
    if not _key_matches(ca_key, ca_cert):
        raise SigningError(
            "The practice certificate authority's key does not match its certificate. "
            "Ask the practice administrator to restore it from a backup."
        )
    attrs = [
        x509.NameAttribute(NameOID.COMMON_NAME, full_name),
        x509.NameAttribute(NameOID.ORGANIZATION_NAME, practice_name.strip() or "GP practice"),
    ]
    if role.strip():
        attrs.append(x509.NameAttribute(NameOID.TITLE, role.strip()))
    if username.strip():
        attrs.append(x509.NameAttribute(NameOID.USER_ID, username.strip()))
    if gmc_number and gmc_number.strip():
        attrs.append(x509.NameAttribute(NameOID.SERIAL_NUMBER, f"GMC {gmc_number.strip()}"))
    attrs.append(x509.NameAttribute(NameOID.COUNTRY_NAME, "GB"))

    key = _new_key()
    not_after = min(_add_years(now, valid_years), ca_cert.not_valid_after_utc)
    cert = _user_certificate(ca_cert, ca_key, x509.Name(attrs), key.public_key(), now, not_after)
    return KeyAndCert(_key_pem(key), cert.public_bytes(serialization.Encoding.PEM))


def reissue_certificate(ca: KeyAndCert, cert_pem: bytes, now: datetime) -> bytes:
    """The same subject and public key certified by another practice CA (a v1 → v2 migration
    makes a new CA, decision D6): no private key is needed, and the expiry stays as it was
    (never past the new CA's)."""
    old = _load_cert(cert_pem)
    ca_cert = _load_cert(ca.cert_pem)
    ca_key = _issuer_key(ca.key_pem)
    not_after = min(old.not_valid_after_utc, ca_cert.not_valid_after_utc)
    public = old.public_key()
    if not isinstance(public, ec.EllipticCurvePublicKey):
        raise SigningError("Only the practice's own (elliptic-curve) certificates are re-issued.")
    cert = _user_certificate(ca_cert, ca_key, old.subject, public, _aware(now), not_after)
    return cert.public_bytes(serialization.Encoding.PEM)


def _user_certificate(
    ca_cert: x509.Certificate,
    ca_key: CertificateIssuerPrivateKeyTypes,
    subject: x509.Name,
    public: ec.EllipticCurvePublicKey,
    now: datetime,
    not_after: datetime,
) -> x509.Certificate:
    """A signing certificate for `public`, issued by the practice CA."""
    ca_ski = ca_cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
    return (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(ca_cert.subject)
        .public_key(public)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - _CLOCK_SKEW)
        .not_valid_after(not_after)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=True,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=False,
                crl_sign=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(
            x509.ExtendedKeyUsage([ExtendedKeyUsageOID.EMAIL_PROTECTION, _DOCUMENT_SIGNING]),
            critical=False,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public), False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ca_ski), False
        )
        .sign(ca_key, hashes.SHA256())
    )


def load_pkcs12(data: bytes, password: bytes) -> KeyAndCert:
    """Read a key and certificate from a .p12/.pfx file (for admins importing certificates)."""
    try:
        key, cert, _extra = pkcs12.load_key_and_certificates(data, password or None)
    except ValueError as exc:
        raise SigningError(
            "The certificate file could not be opened: the password is wrong or the file "
            "is not a .p12/.pfx certificate file. Check the password and try again."
        ) from exc
    if key is None:
        raise SigningError(
            "The certificate file contains no private key, so it cannot be used for "
            "signing. Export it again including the private key."
        )
    if cert is None:
        raise SigningError(
            "The certificate file contains a key but no certificate. Export it again "
            "including the certificate."
        )
    if not _key_matches(key, cert):
        raise SigningError(
            "The key in the certificate file does not belong to its certificate. Ask "
            "whoever issued it for a correct file."
        )
    return KeyAndCert(_key_pem(key), cert.public_bytes(serialization.Encoding.PEM))


def pkcs12_chain(data: bytes, password: bytes) -> list[bytes]:
    """PEMs of the extra (issuer) certificates inside a .p12/.pfx file."""
    try:
        _key, _cert, extra = pkcs12.load_key_and_certificates(data, password or None)
    except ValueError as exc:
        raise SigningError(
            "The certificate file could not be opened: the password is wrong."
        ) from exc
    return [c.public_bytes(serialization.Encoding.PEM) for c in extra or []]


def issued_by(cert_pem: bytes, issuer_pem: bytes) -> bool:
    """True when `issuer_pem` directly signed `cert_pem`."""
    try:
        _load_cert(cert_pem).verify_directly_issued_by(_load_cert(issuer_pem))
    except (ValueError, TypeError, InvalidSignature):
        return False
    return True


def export_pkcs12(signer: KeyAndCert, password: bytes, ca_cert_pem: bytes | None = None) -> bytes:
    """Write a key and certificate (and optionally the CA) as a password-protected .p12."""
    key = _load_key(signer.key_pem)
    if not isinstance(key, ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey):
        raise SigningError("Only RSA and elliptic-curve keys can be exported.")
    cert = _load_cert(signer.cert_pem)
    extra = [_load_cert(ca_cert_pem)] if ca_cert_pem else None
    enc: serialization.KeySerializationEncryption = (
        serialization.BestAvailableEncryption(password)
        if password
        else serialization.NoEncryption()
    )
    name = _display_name(cert.subject).encode("utf-8")
    return pkcs12.serialize_key_and_certificates(name, key, cert, extra, enc)


def certificate_info(cert_pem: bytes) -> CertInfo:
    """Summarise a certificate for display."""
    cert = _load_cert(cert_pem)
    digest = cert.fingerprint(hashes.SHA256()).hex().upper()
    return CertInfo(
        common_name=_display_name(cert.subject),
        gmc_number=_gmc_from_name(cert.subject),
        issuer=_display_name(cert.issuer),
        not_before=cert.not_valid_before_utc,
        not_after=cert.not_valid_after_utc,
        serial=cert.serial_number,
        sha256_fingerprint=":".join(digest[i : i + 2] for i in range(0, len(digest), 2)),
    )


def _check_signer(signer: KeyAndCert, ca_cert_pem: bytes, now: datetime) -> None:
    """Raise SigningError unless the certificate is usable for signing at ``now``."""
    cert = _load_cert(signer.cert_pem)
    key = _load_key(signer.key_pem)
    if now < cert.not_valid_before_utc:
        raise SigningError(
            f"Your signing certificate is not valid until "
            f"{_human_date(cert.not_valid_before_utc)}. Check this computer's date and "
            "time, or ask the practice administrator to issue a new certificate."
        )
    if now > cert.not_valid_after_utc:
        raise SigningError(
            f"Your signing certificate expired on {_human_date(cert.not_valid_after_utc)}; "
            "ask the practice administrator to issue a new one."
        )
    if not _key_matches(key, cert):
        raise SigningError(
            "Your signing key does not match your certificate, so the letter cannot be "
            "signed. Ask the practice administrator to issue a new certificate."
        )
    ca_cert = _load_cert(ca_cert_pem)
    try:
        cert.verify_directly_issued_by(ca_cert)
    except (ValueError, TypeError, InvalidSignature) as exc:
        raise SigningError(
            "Your signing certificate was not issued by this practice's certificate "
            "authority. Ask the practice administrator to issue a new one."
        ) from exc


# --------------------------------------------------------------------------- signing


def sign_pdf(
    pdf: bytes,
    signer: KeyAndCert,
    ca_cert_pem: bytes,
    *,
    now: datetime,
    reason: str,
    location: str,
    pdf_password: bytes | None = None,
) -> bytes:
    """Sign ``pdf`` as PAdES B-B (SHA-256) in an incremental update; return the signed bytes.

    The signature field is invisible; ``now`` is the signing time written into the
    signature and used to check the certificate's validity. ``pdf_password`` opens a PDF
    that :func:`encrypt_pdf` protected (encrypt first, then sign: the other order breaks
    the signature).
    """
    now = _aware(now)
    _check_signer(signer, ca_cert_pem, now)

    from io import BytesIO

    _offline_pyhanko()
    from pyhanko.keys import load_private_key_from_pemder_data
    from pyhanko.pdf_utils.incremental_writer import IncrementalPdfFileWriter
    from pyhanko.pdf_utils.misc import PdfError
    from pyhanko.sign import fields, signers
    from pyhanko.sign.general import SigningError as HankoSigningError
    from pyhanko_certvalidator.registry import SimpleCertificateStore

    class _FixedTimePdfSigner(signers.PdfSigner):
        """PdfSigner whose signing time is ``now`` rather than the wall clock."""

        def init_signing_session(self, pdf_out: Any, existing_fields_only: bool = False) -> Any:
            session = super().init_signing_session(pdf_out, existing_fields_only)
            session.system_time = now
            return session

    simple = signers.SimpleSigner(
        signing_cert=_asn1_cert(signer.cert_pem),
        signing_key=load_private_key_from_pemder_data(signer.key_pem, passphrase=None),
        cert_registry=SimpleCertificateStore.from_certs([_asn1_cert(ca_cert_pem)]),
    )
    meta = signers.PdfSignatureMetadata(
        field_name=_FIELD_NAME,
        md_algorithm="sha256",
        subfilter=fields.SigSeedSubFilter.PADES,
        reason=reason or None,
        location=location or None,
        name=_display_name(_load_cert(signer.cert_pem).subject),
    )
    pdf_signer = _FixedTimePdfSigner(
        meta, simple, new_field_spec=fields.SigFieldSpec(sig_field_name=_FIELD_NAME)
    )
    try:
        writer = IncrementalPdfFileWriter(BytesIO(pdf))
        if pdf_password is not None:
            writer.encrypt(pdf_password)
        out = pdf_signer.sign_pdf(writer)
    except (PdfError, HankoSigningError, ValueError) as exc:
        raise SigningError(
            "The letter could not be signed because the PDF could not be processed. "
            "Create the letter again; if this keeps happening, tell the practice "
            "administrator."
        ) from exc
    return bytes(out.getvalue())


def encrypt_pdf(pdf: bytes, password: bytes) -> bytes:
    """An AES-256 password-protected copy of an *unsigned* PDF (sign it afterwards)."""
    from io import BytesIO

    _offline_pyhanko()
    from pyhanko.pdf_utils.crypt import StandardSecurityHandler
    from pyhanko.pdf_utils.reader import PdfFileReader
    from pyhanko.pdf_utils.writer import copy_into_new_writer

    writer = copy_into_new_writer(PdfFileReader(BytesIO(pdf)))
    # build_from_pw defaults to AES-256 (security handler revision 6).
    writer._assign_security_handler(StandardSecurityHandler.build_from_pw(password, password))
    out = BytesIO()
    writer.write(out)
    return out.getvalue()


# --------------------------------------------------------------------------- verification


def _fail(
    reason: str,
    *,
    intact: bool = False,
    valid: bool = False,
    trusted: bool = False,
    name: str | None = None,
    gmc: str | None = None,
    signed_at: datetime | None = None,
) -> Verification:
    return Verification(False, intact, valid, trusted, name, gmc, signed_at, reason)


@contextlib.contextmanager
def _quiet_pyhanko() -> Iterator[None]:
    """Silence pyHanko's logging while validating.

    It logs every failed certification path at WARNING with a full traceback; a letter
    from another practice is an expected outcome that verify_pdf reports in words.
    """
    loggers = [logging.getLogger(name) for name in ("pyhanko", "pyhanko_certvalidator")]
    levels = [lg.level for lg in loggers]
    for lg in loggers:
        lg.setLevel(logging.CRITICAL)
    try:
        yield
    finally:
        for lg, level in zip(loggers, levels, strict=True):
            lg.setLevel(level)


def verify_pdf(pdf: bytes, trusted_ca_pems: Sequence[bytes]) -> Verification:
    """Check a signed letter: intact, valid, issued by a trusted practice CA, and unchanged since.

    Trust is evaluated at the signing time recorded in the signature, so a letter
    stays valid after the clinician's certificate expires.  Nothing is fetched
    from the network.
    """
    if not pdf.lstrip()[:5].startswith(b"%PDF-"):
        return _fail(REASON_NOT_PDF)

    from io import BytesIO

    _offline_pyhanko()
    from pyhanko.pdf_utils.reader import PdfFileReader
    from pyhanko.sign.validation import (
        KeyUsageConstraints,
        SignatureCoverageLevel,
        validate_pdf_signature,
    )
    from pyhanko_certvalidator import ValidationContext

    try:
        reader = PdfFileReader(BytesIO(pdf), strict=False)
        signatures = list(reader.embedded_regular_signatures)
    except Exception:  # any parse failure: pyHanko raises several unrelated types
        return _fail(REASON_DAMAGED)
    if not signatures:
        return _fail(REASON_NO_SIGNATURE)

    embedded = signatures[-1]
    try:
        cert = embedded.signer_cert
        subject = x509.load_der_x509_certificate(cert.dump()).subject
    except Exception:
        return _fail(REASON_BAD_SIGNATURE)
    name, gmc = _display_name(subject), _gmc_from_name(subject)
    signed_at = embedded.self_reported_timestamp

    roots: list[Any] = []
    for pem in trusted_ca_pems:
        try:
            roots.append(_asn1_cert(pem))
        except SigningError:  # an unreadable trust anchor is skipped, not fatal
            continue
    context = ValidationContext(
        trust_roots=roots,
        allow_fetching=False,
        moment=signed_at or datetime.now(UTC),
        revocation_mode="soft-fail",
    )
    try:
        # either usage is fine for an imported certificate; ours carry both
        usage = KeyUsageConstraints(
            key_usage={"digital_signature", "non_repudiation"}, match_all_key_usages=False
        )
        with _quiet_pyhanko():
            status = validate_pdf_signature(embedded, context, key_usage_settings=usage)
    except Exception:
        return _fail(REASON_BAD_SIGNATURE, name=name, gmc=gmc, signed_at=signed_at)

    intact, valid, trusted = bool(status.intact), bool(status.valid), bool(status.trusted)
    common = {"intact": intact, "valid": valid, "trusted": trusted}
    if not intact:
        return _fail(REASON_ALTERED, name=name, gmc=gmc, signed_at=signed_at, **common)
    if not valid:
        return _fail(REASON_BAD_SIGNATURE, name=name, gmc=gmc, signed_at=signed_at, **common)
    if status.coverage != SignatureCoverageLevel.ENTIRE_FILE:
        return _fail(REASON_ADDED_AFTER, name=name, gmc=gmc, signed_at=signed_at, **common)
    if not trusted:
        reason = REASON_UNTRUSTED
        if _issued_by_any(cert.dump(), trusted_ca_pems):
            reason = REASON_CERT_INVALID
        return _fail(reason, name=name, gmc=gmc, signed_at=signed_at, **common)
    return Verification(True, True, True, True, name, gmc, signed_at, "")


def _issued_by_any(cert_der: bytes, ca_pems: Sequence[bytes]) -> bool:
    """True when one of ``ca_pems`` signed the certificate (so the problem is validity, not origin)."""
    cert = x509.load_der_x509_certificate(cert_der)
    for pem in ca_pems:
        try:
            cert.verify_directly_issued_by(_load_cert(pem))
            return True
        except (SigningError, ValueError, TypeError, InvalidSignature):
            continue
    return False


def document_sha256(pdf: bytes) -> str:
    """Hex SHA-256 of the signed letter, stored on the record."""
    return hashlib.sha256(pdf).hexdigest()
