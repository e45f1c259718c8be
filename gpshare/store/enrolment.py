"""The enrolment secret of a practice server (DESIGN §10.3 "recommended", issue #14).

A practice server's header holds every key slot, and its database every user's key bundle;
both were sealed under keys derived from a password alone, so a copy of the server (a stolen
disk, a `pg_dump`) could be attacked by guessing passwords. The enrolment secret `S` (32
random bytes) closes that: it is given to each enrolled workstation (the OS keystore, or the
file `enrolment.secret`, mode 0600, in the workstation folder) and printed for the break-glass
envelope, never stored on the server, and mixed into every password-derived key of the
practice. The server's header records only a check value (so a wrong secret is told apart
from a wrong password) and `kdf_mix`.

Two ways a slot can depend on `S` (the slot's `mix` field):
- `KDF_MIX`: its key is derived from `SHA-256(encode("gpshare/v2/enrolment", Argon2id(secret),
  S))` (the same mix as a user's key bundle), so a guess needs `S`;
- `LAYER` (a server adopted the secret later, when nobody knew the other users' passwords):
  the slot's salt and wrapped key are sealed again under `HKDF(S, "gpshare/v2/enrolment-layer")`,
  so without `S` nothing in the slot can be tried against a guess. A password slot becomes
  `KDF_MIX` at its user's next sign-in.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import hashlib
import hmac
import os
import secrets
import stat
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from gpshare.errors import EnrolmentSecretError
from gpshare.store.files import atomic_write
from gpshare.store.keys.binding import encode

KDF_MIX = "enrolment-secret-v1"
LAYER = "enrolment-layer-v1"
SECRET_BYTES = 32
FILE_NAME = "enrolment.secret"
KEYRING_SERVICE = "gpshare-enrolment"
_CHARS = 52  # 32 bytes in base32, without padding
_GROUP = 4
_ALPHABET = set("ABCDEFGHIJKLMNOPQRSTUVWXYZ234567")
_MAX_FILE = 4096

MISSING = (
    "This computer has not been given the practice's enrolment secret, so it cannot check "
    "any password for this practice server. Ask the administrator to enrol this computer "
    "(gpshare server enrol) or type the secret from the break-glass envelope "
    "(Type the enrolment secret… on the sign-in screen, or gpshare server enrolment-secret "
    "--vault DIR --type-enrolment-secret)."
)
MISMATCH = (
    "The enrolment secret this computer holds does not match the practice server's: it is "
    "another practice's, or it was mistyped. Ask the administrator to enrol this computer "
    "again (gpshare server enrol) or type the secret from the break-glass envelope. No "
    "password was tried."
)


def new_secret() -> bytes:
    """32 random bytes."""
    return secrets.token_bytes(SECRET_BYTES)


def format_secret(secret: bytes) -> str:
    """The secret as people copy it: 13 groups of 4 base32 characters, e.g. 'K7QF-2MZD-…'."""
    raw = base64.b32encode(secret).decode("ascii").rstrip("=")
    return "-".join(raw[i : i + _GROUP] for i in range(0, len(raw), _GROUP))


def parse_secret(text: str, where: str = "The enrolment secret") -> bytes:
    """The 32 bytes of a typed or filed secret (spaces, dashes and case do not matter);
    EnrolmentSecretError naming what is wrong and how to fix it."""
    cleaned = "".join(ch for ch in text.upper() if not ch.isspace() and ch != "-")
    wrong = sorted({ch for ch in cleaned if ch not in _ALPHABET})
    if wrong:
        shown = ", ".join(repr(ch) for ch in wrong[:5])
        hint = (
            " (0, 1, 8 and 9 are never used: read O, I, B and g as letters)"
            if any(ch in "0189" for ch in wrong)
            else ""
        )
        raise EnrolmentSecretError(
            f"{where} contains {shown}, which an enrolment secret never has: it is made of the "
            f"letters A–Z and the digits 2–7{hint}. Copy it again from the break-glass envelope "
            "or the enrolment.secret file.",
            "malformed",
        )
    if len(cleaned) != _CHARS:
        raise EnrolmentSecretError(
            f"{where} has {len(cleaned)} characters; an enrolment secret has {_CHARS} (13 groups "
            "of 4). Check that no group was missed or typed twice.",
            "malformed",
        )
    try:
        return base64.b32decode(cleaned + "====")
    except binascii.Error as exc:  # pragma: no cover - the checks above leave none
        raise EnrolmentSecretError(f"{where} is not readable ({exc}).", "malformed") from exc


def check_value(secret: bytes, vault_id: str) -> str:
    """What the header records: enough to tell a wrong secret from a wrong password, and
    nothing that helps find the secret (an HMAC under the secret itself)."""
    body = encode("gpshare/v2/enrolment-check", vault_id)
    return hmac.new(secret, body, hashlib.sha256).hexdigest()[:32]


def matches(secret: bytes, vault_id: str, stored: object) -> bool:
    """Whether `secret` is the one whose check value the header holds."""
    return hmac.compare_digest(check_value(secret, vault_id), str(stored))


def mix(stretched: bytes, secret: bytes) -> bytes:
    """Argon2id(password) ‖ S, reduced to one 32-byte root (a user bundle's KEK mix too)."""
    digest = hashes.Hash(hashes.SHA256())
    digest.update(encode("gpshare/v2/enrolment", stretched, secret))
    return digest.finalize()


def _layer_key(secret: bytes, vault_id: str) -> bytes:
    return HKDF(
        hashes.SHA256(), 32, vault_id.encode("utf-8"), b"gpshare/v2/enrolment-layer"
    ).derive(secret)


def seal_layer(secret: bytes, vault_id: str, slot_id: str, body: bytes) -> bytes:
    """A slot's secret fields sealed under the enrolment secret (nonce ‖ ciphertext)."""
    nonce = os.urandom(12)
    aad = encode("gpshare/v2/enrolment-layer", vault_id, slot_id)
    return nonce + AESGCM(_layer_key(secret, vault_id)).encrypt(nonce, body, aad)


def open_layer(secret: bytes, vault_id: str, slot_id: str, sealed: bytes) -> bytes | None:
    """The fields `seal_layer` sealed, or None when the secret or the slot is not theirs."""
    aad = encode("gpshare/v2/enrolment-layer", vault_id, slot_id)
    try:
        return AESGCM(_layer_key(secret, vault_id)).decrypt(sealed[:12], sealed[12:], aad)
    except (InvalidTag, ValueError):
        return None


# ----- where a workstation keeps it --------------------------------------------------------


def read_file(path: Path) -> bytes:
    """The secret in `path` (as `server enrol` writes it); EnrolmentSecretError when it
    cannot be read, others can read it, or it holds no secret."""
    path = Path(path)
    try:
        info = path.stat()
    except FileNotFoundError as exc:
        raise EnrolmentSecretError(
            f"There is no enrolment secret file at {path}. Give the enrolment.secret file "
            "'gpshare server enrol' wrote, or type the secret instead.",
            "malformed",
        ) from exc
    except OSError as exc:
        raise EnrolmentSecretError(f"Cannot read {path}: {exc.strerror}.", "malformed") from exc
    if os.name == "posix" and info.st_mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise EnrolmentSecretError(
            f"{path} can be read by other users of this computer (mode "
            f"{stat.S_IMODE(info.st_mode):04o}), so the secret may have leaked. Make it private "
            f"(chmod 600 {path}) and, if others may have copied it, ask the administrator.",
            "malformed",
        )
    if info.st_size > _MAX_FILE:
        raise EnrolmentSecretError(
            f"{path} is {info.st_size} bytes: not an enrolment secret file.", "malformed"
        )
    try:
        text = path.read_text(encoding="ascii")
    except (OSError, UnicodeDecodeError) as exc:
        raise EnrolmentSecretError(
            f"{path} is not an enrolment secret file (it is not text).", "malformed"
        ) from exc
    return parse_secret(text, f"The enrolment secret in {path}")


def write_file(path: Path, secret: bytes) -> None:
    """Write the secret to `path` (mode 0600, atomically)."""
    atomic_write(Path(path), (format_secret(secret) + "\n").encode("ascii"))
    os.chmod(path, 0o600)


def _keyring() -> object | None:
    # Imported here: gpshare.store.vault imports this module.
    from gpshare.store.vault import usable_keyring

    try:
        return usable_keyring()
    except Exception:  # no secure keystore on this computer: the folder's file is used
        return None


def load(folder: Path, vault_id: str) -> bytes | None:
    """The secret this workstation holds for `vault_id` (the OS keystore first, then
    `enrolment.secret` in `folder`), or None."""
    backend = _keyring()
    text = None
    if backend is not None:
        with contextlib.suppress(Exception):
            text = backend.get_password(KEYRING_SERVICE, vault_id)  # type: ignore[attr-defined]
    if text:
        return parse_secret(text, "The enrolment secret in this computer's keystore")
    path = Path(folder) / FILE_NAME
    if not path.exists():
        return None
    return read_file(path)


def keep(folder: Path, vault_id: str, secret: bytes) -> str:
    """Store the secret on this workstation: the OS keystore when there is a secure one, else
    `enrolment.secret` (0600) in `folder`. Returns where, in words."""
    backend = _keyring()
    if backend is not None:
        try:
            backend.set_password(  # type: ignore[attr-defined]
                KEYRING_SERVICE, vault_id, format_secret(secret)
            )
        except Exception:  # a keystore that refuses: fall back to the folder's file
            pass
        else:
            return "this computer's keystore"
    write_file(Path(folder) / FILE_NAME, secret)
    return f"{Path(folder) / FILE_NAME} (readable only by you)"


def forget(folder: Path, vault_id: str) -> None:
    """Remove this workstation's copy (after a change that stored it was not saved)."""
    backend = _keyring()
    if backend is not None:
        with contextlib.suppress(Exception):
            backend.delete_password(KEYRING_SERVICE, vault_id)  # type: ignore[attr-defined]
    (Path(folder) / FILE_NAME).unlink(missing_ok=True)
