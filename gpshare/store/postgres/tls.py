"""TLS client certificates for a practice server's workstations (DESIGN §10.3, issue #14).

Each enrolled workstation logs in as its own database role with a client certificate whose
common name is that role (pg_hba.conf `hostssl … cert`), issued by the practice's
*workstation CA*. That CA is deliberately not the letter-signing practice CA
(gpshare.signing): the practice CA vouches to people outside the practice that a letter was
signed by one of its clinicians, while the workstation CA only tells the practice's own
PostgreSQL which computers may connect. Keeping them apart means the server's `ssl_ca_file`
trusts no clinician's signing certificate, a letter verifier trusts no workstation key, and
either can be replaced (or a workstation retired) without touching the other.

Pure x509 work with `cryptography`: nothing here touches the database or the disk.
"""

from __future__ import annotations

import datetime as _dt
from dataclasses import dataclass

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from gpshare.errors import StoreError
from gpshare.signing import self_signed_ca

# A few minutes' grace for a workstation whose clock is behind the administrator's.
_SKEW = _dt.timedelta(minutes=10)
CA_YEARS = 20
CLIENT_YEARS = 3
# The files a workstation folder holds for TLS, by the libpq option that names them; the
# folder's DSN names them relative to the folder (resolved at connect).
CLIENT_CERT, CLIENT_KEY, SERVER_CA = "client.crt", "client.key", "server-ca.crt"
FOLDER_FILES = {"sslcert": CLIENT_CERT, "sslkey": CLIENT_KEY, "sslrootcert": SERVER_CA}
# What `enrol --out` writes beside client.crt: the certificate for the server's ssl_ca_file.
WORKSTATION_CA_FILE = "workstation-ca.crt"


@dataclass(frozen=True)
class Issued:
    """A workstation's client certificate: its PEM, serial (as hex) and common name."""

    cert_pem: bytes
    serial: str
    role: str


# A workstation's key signs its side of the TLS handshake, nothing else.
_CLIENT_KEY_USAGE = x509.KeyUsage(
    digital_signature=True,
    content_commitment=False,
    key_encipherment=False,
    data_encipherment=False,
    key_agreement=False,
    key_cert_sign=False,
    crl_sign=False,
    encipher_only=False,
    decipher_only=False,
)


def new_key() -> tuple[ec.EllipticCurvePrivateKey, bytes]:
    """A fresh EC P-256 key and its unencrypted PKCS#8 PEM (libpq reads it as `sslkey`;
    the caller writes it 0600: libpq refuses a key others can read)."""
    key = ec.generate_private_key(ec.SECP256R1())
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    return key, pem


def create_workstation_ca(practice_name: str, now: _dt.datetime) -> tuple[bytes, bytes]:
    """(key PEM, certificate PEM) of a new self-signed workstation CA for the practice."""
    name = x509.Name(
        [
            x509.NameAttribute(
                NameOID.COMMON_NAME,
                f"{practice_name.strip() or 'GP practice'} gpshare workstations",
            ),
            x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, "gpshare workstation CA"),
        ]
    )
    ca = self_signed_ca(name, now, CA_YEARS)
    return ca.key_pem, ca.cert_pem


def make_csr(role: str, key: ec.EllipticCurvePrivateKey) -> bytes:
    """A certificate signing request for `role`, made on the workstation with its own key."""
    csr = (
        x509.CertificateSigningRequestBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, role)]))
        .sign(key, hashes.SHA256())
    )
    return csr.public_bytes(serialization.Encoding.PEM)


def read_csr(pem: bytes, role: str) -> ec.EllipticCurvePublicKey:
    """The public key of a request made by `gpshare server request-cert` for `role`: refused
    (StoreError saying why) when it is not a PEM request, its signature does not verify, it
    is for another workstation, or its key is not EC P-256."""
    try:
        csr = x509.load_pem_x509_csr(pem)
    except ValueError as exc:
        raise StoreError(
            "The certificate request (--csr) is not a PEM certificate signing request. Give the "
            "file 'gpshare server request-cert' wrote on the workstation."
        ) from exc
    try:
        valid = csr.is_signature_valid
    except InvalidSignature:
        valid = False
    if not valid:
        raise StoreError(
            "The certificate request (--csr) is damaged: its signature does not match its key. "
            "Make a new one on the workstation with 'gpshare server request-cert'."
        )
    names = csr.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    asked = str(names[0].value) if names else ""
    if asked != role:
        raise StoreError(
            f"The certificate request (--csr) is for {asked or 'no name'}, not for {role}: "
            "check the workstation name (--workstation) matches the one given to "
            "'gpshare server request-cert'."
        )
    public = csr.public_key()
    if not isinstance(public, ec.EllipticCurvePublicKey) or public.curve.name != "secp256r1":
        raise StoreError(
            "The certificate request (--csr) is not for an EC P-256 key. Make it with "
            "'gpshare server request-cert'."
        )
    return public


def issue_client_cert(
    ca_key_pem: bytes,
    ca_cert_pem: bytes,
    role: str,
    public_key: ec.EllipticCurvePublicKey,
    now: _dt.datetime,
) -> Issued:
    """A TLS client certificate for the database role `role` (its common name, which pg_hba
    `cert` matches against the login role), signed by the workstation CA."""
    ca_key = serialization.load_pem_private_key(ca_key_pem, password=None)
    ca_cert = x509.load_pem_x509_certificate(ca_cert_pem)
    if not isinstance(ca_key, ec.EllipticCurvePrivateKey) or ca_key.public_key() != (
        ca_cert.public_key()
    ):
        raise StoreError(
            "The practice's workstation CA key does not match its certificate; the server's "
            "settings were damaged. Ask the practice administrator."
        )
    serial = x509.random_serial_number()
    until = min(now + _dt.timedelta(days=365 * CLIENT_YEARS), ca_cert.not_valid_after_utc)
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, role)]))
        .issuer_name(ca_cert.subject)
        .public_key(public_key)
        .serial_number(serial)
        .not_valid_before(now - _SKEW)
        .not_valid_after(until)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(_CLIENT_KEY_USAGE, critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
            critical=False,
        )
        .sign(ca_key, hashes.SHA256())
    )
    return Issued(cert.public_bytes(serialization.Encoding.PEM), format(serial, "x"), role)


def describe(cert_pem: bytes) -> tuple[str, str]:
    """(common name, serial as hex) of a PEM certificate; StoreError when it is not one."""
    try:
        cert = x509.load_pem_x509_certificate(cert_pem)
    except ValueError as exc:
        raise StoreError(
            "The client certificate is not a PEM certificate: give the client.crt file "
            "'gpshare server enrol' wrote."
        ) from exc
    names = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    return (str(names[0].value) if names else ""), format(cert.serial_number, "x")


def check_pair(cert_pem: bytes, key_pem: bytes) -> None:
    """Refuse (StoreError) a client key that is not the one the certificate was issued for,
    before libpq does with a less helpful message."""
    try:
        key = serialization.load_pem_private_key(key_pem, password=None)
        cert = x509.load_pem_x509_certificate(cert_pem)
    except (ValueError, TypeError) as exc:
        raise StoreError(
            "The client key (--client-key) is not an unencrypted PEM private key: give the "
            "client.key that 'gpshare server enrol' or 'gpshare server request-cert' wrote."
        ) from exc
    if key.public_key() != cert.public_key():
        raise StoreError(
            "The client certificate (--client-cert) was not issued for this computer's key "
            "(--client-key, or client.key in the folder): give the pair that belong together."
        )
