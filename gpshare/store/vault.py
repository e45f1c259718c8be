"""The vault folder: header (vault.json), key slots, unlock, key wrapping and keyring slots.

The database key (32 random bytes) is never written in plaintext. Each key slot wraps it
with AES-256-GCM under a key derived from a secret (a user's password, the recovery code,
or a random secret kept in the OS keyring). The vault id, slot id and KDF parameters are the
GCM associated data, so a copied or edited slot does not open.

Format 2 (docs/vault-v2.md §2): the slots wrap the *practice key* instead, and unlocking
yields `PracticeKeys` (the SQLCipher, audit, header-MAC and anchor keys derived from it under
their own labels, never the root itself). A `breakglass` slot holds an X25519 pair whose
private half is sealed under the break-glass code only; no other secret opens it.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import hashlib
import hmac
import json
import os
import platform
import secrets
import sys
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

from gpshare.clock import Clock
from gpshare.store import crypto, enrolment
from gpshare.store.crypto import KdfParams
from gpshare.store.errors import (
    DisabledUserError,
    EnrolmentSecretError,
    KeyringUnavailableError,
    LockedOutError,
    NotAVaultError,
    StorageWriteError,
    TamperedError,
    UnknownUserError,
    VaultFormatError,
    WrongPasswordError,
)
from gpshare.store.files import VaultLock, atomic_write
from gpshare.store.keys.binding import PracticeKey
from gpshare.store.keys.errors import KeyUsageError
from gpshare.store.practice_keys import PracticeKeys

FORMAT = "gpshare-vault"
FORMAT_VERSION = 1  # what new vaults are written as (step 8 of docs/vault-v2.md makes it 2)
PRACTICE_KEY_FORMAT = 2  # slots wrap the practice key; the newest format this code reads
BREAKGLASS_SLOT = "breakglass"
HEADER_NAME = "vault.json"
DB_NAME = "records.db"
BACKUP_DIR = "backups"
# Fields outside the header MAC: they are written before anyone has unlocked (failed attempts).
# (pending_cleared_at is sealed: it bounds when an unsealed report can claim to date from.)
_UNMACED = ("mac", "failed_unlocks", "pending_failures")
BACKOFF_CAP_SECONDS = 30.0
MAX_PENDING_FAILURES = 500
RECOVERY_GROUPS = 8
# What a failed-unlock report may say; anything else in vault.json was not written by gpshare.
FAILURE_REASONS = (
    "wrong password",
    "unknown user",
    "disabled",
    "wrong recovery code",
    "wrong break-glass code",
)
# The keyring secret is 256 random bits, so a slow KDF adds nothing but start-up time.
KEYRING_SLOT_KDF = KdfParams(memory_kib=64, iterations=1, lanes=1)


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _unb64(text: object) -> bytes:
    return base64.b64decode(str(text), validate=True)


def id_check(vault_id: str) -> str:
    """A keyless check value for the vault id, so an edited id is named as such.

    Not a security control (anyone can recompute it; the header MAC is the control): it turns
    "no user called 'lead'" into "the vault id was changed" when vault.json is edited.
    """
    return hashlib.sha256(f"gpshare vault id:{vault_id}".encode()).hexdigest()[:16]


def slot_check(slot: dict[str, Any]) -> str:
    """A keyless checksum of a key slot, so a damaged slot is not reported as a wrong password."""
    body = {k: v for k, v in slot.items() if k != "check"}
    canonical = json.dumps(body, sort_keys=True, separators=(",", ":")).encode()
    return hashlib.sha256(canonical).hexdigest()[:16]


def new_recovery_code() -> str:
    """160 random bits as 8 groups of 4 base32 characters, e.g. 'K7QF-2MZD-…'."""
    raw = base64.b32encode(secrets.token_bytes(20)).decode("ascii")
    return "-".join(raw[i : i + 4] for i in range(0, 32, 4))


def normalise_recovery_code(code: str) -> str:
    """Upper-case, separators removed, so a typed code matches however it was spaced."""
    return "".join(ch for ch in code.upper() if ch.isalnum())


def _seconds(wait: float) -> str:
    whole = max(1, int(wait + 0.999))
    return "1 second" if whole == 1 else f"{whole} seconds"


def backoff_seconds(failures: int) -> float:
    """1, 2, 4, 8 … seconds after the n-th consecutive failure, capped at 30 s."""
    if failures <= 0:
        return 0.0
    # The count comes from unauthenticated vault.json: bound the exponent, not just the result.
    return float(min(BACKOFF_CAP_SECONDS, 2 ** (min(failures, 16) - 1)))


def _aware(value: object) -> datetime | None:
    """An ISO time with a zone, else None (a report's time is a claim, possibly garbage)."""
    try:
        parsed = datetime.fromisoformat(str(value))
    except ValueError:
        return None
    return parsed if parsed.tzinfo is not None else None


def had_a_vault(folder: Path) -> bool:
    """True when `folder` holds backups/ or replaced-* (so 'init' would be the wrong advice)."""
    if (folder / BACKUP_DIR).is_dir():
        return True
    return any(p.is_dir() for p in folder.glob("replaced-*"))


@dataclass(frozen=True)
class NewVault:
    """What `Vault.create_v2` yields; both codes are shown once and never stored in clear."""

    vault: Vault
    keys: PracticeKeys
    user_secret: bytes  # the admin's, as PasswordUnlock.user_secret
    recovery_code: str
    breakglass_code: str
    enrolment_secret: bytes | None = None  # a practice server's (gpshare/store/enrolment.py)


@dataclass(frozen=True)
class PasswordUnlock:
    """What a successful password unlock yields."""

    db_key: bytes  # format 2: PracticeKeys (its bytes are the SQLCipher key)
    user_secret: bytes  # per-user key material for wrapping that user's signing key
    pending_failures: list[dict[str, str]]


class Vault:
    """A vault folder. Construct with `Vault.open(folder)` or `Vault.create(...)`."""

    # Where the header and the records live: the folder itself ("sqlcipher"), or a practice
    # server ("postgres", gpshare.store.postgres.header.ServerVault).
    engine = "sqlcipher"

    def __init__(self, folder: Path, header: dict[str, Any]) -> None:
        self.folder = folder
        self.header = header
        self.lock = VaultLock(folder)
        # A practice server's enrolment secret, once this workstation's copy was checked
        # (gpshare.store.enrolment); never written into the header.
        self.enrolment_secret: bytes | None = None

    # ----- paths and simple properties -------------------------------------------------
    @property
    def header_path(self) -> Path:
        return self.folder / HEADER_NAME

    @property
    def db_path(self) -> Path:
        return self.folder / DB_NAME

    @property
    def backup_dir(self) -> Path:
        return self.folder / BACKUP_DIR

    @property
    def vault_id(self) -> str:
        return str(self.header["vault_id"])

    @property
    def format_version(self) -> int:
        return int(self.header.get("format_version", FORMAT_VERSION))

    @property
    def generation(self) -> int:
        """The practice-server header generation held: 0 here, where the header is vault.json
        itself (ServerVault counts the generations of its header on the server)."""
        return 0

    @property
    def practice_name(self) -> str:
        return str(self.header.get("practice_name", ""))

    def slots(self) -> list[dict[str, Any]]:
        # Read before the MAC can be checked: anything but a list of objects is no slot.
        slots = self.header.get("slots", [])
        return [s for s in slots if isinstance(s, dict)] if isinstance(slots, list) else []

    def user_key(self, username: str) -> str:
        """A vault-specific pseudonym for a username, so vault.json names nobody.

        Slots, failure counters and the disabled list are keyed by it; the typed username
        is hashed to find its slot.
        """
        digest = hashlib.sha256(f"gpshare-user:{self.vault_id}:{username}".encode()).hexdigest()
        return digest[:32]

    def password_slot_id(self, username: str) -> str:
        return f"password:{self.user_key(username)}"

    def keyring_slot_id(self, username: str) -> str:
        return f"keyring:{self.user_key(username)}"

    def is_disabled(self, username: str) -> bool:
        return self.user_key(username) in self.header.get("disabled_users", [])

    def password_slot(self, username: str) -> dict[str, Any] | None:
        return self._find_slot(self.password_slot_id(username))

    # ----- open and create --------------------------------------------------------------
    @staticmethod
    def read_header(folder: Path) -> dict[str, Any]:
        """Parse and sanity-check vault.json (no key needed)."""
        path = folder / HEADER_NAME
        if not folder.is_dir():
            raise NotAVaultError(
                f"{folder} is not a folder. Choose the folder that holds your vault."
            )
        if not path.exists():
            if (folder / DB_NAME).exists():
                raise NotAVaultError(
                    f"{folder} holds records.db but its vault.json is missing. Without it the "
                    "records cannot be unlocked: restore the vault from a backup "
                    "(gpshare restore --from BACKUP) or ask your administrator."
                )
            if had_a_vault(folder):
                raise NotAVaultError(
                    f"{folder} has no vault.json, but it holds backups or files kept aside by a "
                    "restore, so a vault lived here. Do not create a new vault over it: restore "
                    "the latest backup ('gpshare restore --vault DIR --user ADMIN') or ask your "
                    "administrator."
                )
            raise NotAVaultError(
                f"{folder} is not a gpshare vault (no vault.json). Choose the folder that holds "
                "your vault, or create a new one with 'gpshare init'."
            )
        try:
            header = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise TamperedError(
                f"vault.json in {folder} is unreadable ({exc.__class__.__name__}). It was damaged "
                "or edited; restore the vault from a backup."
            ) from exc
        if not isinstance(header, dict) or header.get("format") != FORMAT:
            raise NotAVaultError(f"{folder}/vault.json is not a gpshare vault header.")
        version = header.get("format_version")
        if not isinstance(version, int):
            raise TamperedError("vault.json has no valid format version; restore it from a backup.")
        if version > PRACTICE_KEY_FORMAT:
            raise VaultFormatError(
                f"This vault was written by a newer version of gpshare (vault format {version}; "
                f"this version understands up to {PRACTICE_KEY_FORMAT}). Install the latest gpshare "
                "to open it; nothing has been changed."
            )
        if not isinstance(header.get("vault_id"), str):
            raise TamperedError(
                f"{folder}/vault.json has no vault id: it was damaged or edited. Restore the "
                "vault from a backup ('gpshare restore --vault DIR --user ADMIN')."
            )
        stored_check = header.get("id_check")
        if stored_check is not None and stored_check != id_check(str(header.get("vault_id"))):
            raise TamperedError(
                f"The vault id in {folder}/vault.json has been changed, so its key slots no longer "
                "match it and nobody can unlock this vault. Nothing has been changed. Ask the "
                "practice administrator to restore the vault from a backup "
                "('gpshare restore --vault DIR --user ADMIN')."
            )
        return header

    @classmethod
    def open(cls, folder: Path) -> Vault:
        """Open an existing vault folder (not yet unlocked); a workstation folder of a
        practice server loads its header from the server."""
        folder = Path(folder)
        header = cls.read_header(folder)
        if header.get("engine") == "postgres":
            # Imported here: an embedded vault never loads the server's driver.
            from gpshare.store.postgres.header import ServerVault

            return ServerVault.from_pointer(folder, header)
        return cls(folder, header)

    @classmethod
    def create(
        cls,
        folder: Path,
        *,
        practice_name: str,
        admin_username: str,
        admin_password: str,
        clock: Clock,
        kdf: KdfParams | None = None,
    ) -> tuple[Vault, bytes, bytes, str]:
        """Make a new vault: returns (vault, db_key, admin user_secret, recovery code)."""
        vault, params = cls._new(folder, practice_name, clock, kdf, FORMAT_VERSION)
        db_key = secrets.token_bytes(32)
        user_secret, recovery = vault._first_slots(db_key, admin_username, admin_password, params)
        vault.save(db_key)
        return vault, db_key, user_secret, recovery

    @classmethod
    def create_v2(
        cls,
        folder: Path,
        *,
        practice_name: str,
        admin_username: str,
        admin_password: str,
        clock: Clock,
        kdf: KdfParams | None = None,
    ) -> NewVault:
        """Make a format-2 vault: a random practice key in the admin's password slot and the
        recovery slot, and a fresh break-glass slot. Not yet what `gpshare init` makes."""
        vault, params = cls._new(folder, practice_name, clock, kdf, PRACTICE_KEY_FORMAT)
        keys = PracticeKeys(PracticeKey.generate(), vault.vault_id)
        user_secret, recovery = vault._first_slots(keys, admin_username, admin_password, params)
        breakglass = vault._add_breakglass_slot(params)
        vault.save(keys)
        return NewVault(vault, keys, user_secret, recovery, breakglass)

    def _first_slots(
        self, db_key: bytes, admin_username: str, admin_password: str, params: KdfParams
    ) -> tuple[bytes, str]:
        """The first admin's password slot and the recovery slot: (user secret, recovery code)."""
        user_secret = self._add_password_slot(db_key, admin_username, admin_password, params)
        recovery = new_recovery_code()
        self._add_secret_slot(
            db_key, "recovery", "recovery", normalise_recovery_code(recovery).encode(), params
        )
        return user_secret, recovery

    @classmethod
    def _new(
        cls,
        folder: Path,
        practice_name: str,
        clock: Clock,
        kdf: KdfParams | None,
        format_version: int,
    ) -> tuple[Vault, KdfParams]:
        """An empty, locked vault header in a new folder (no slots yet), and its KDF."""
        folder = Path(folder)
        if (folder / HEADER_NAME).exists() or (folder / DB_NAME).exists():
            raise StorageWriteError(f"{folder} already holds a vault; choose an empty folder.")
        if had_a_vault(folder) or (folder / "restore.journal").exists():
            # A new vault here would bury the practice's real records behind an empty one.
            raise StorageWriteError(
                f"{folder} holds backups or files kept aside by a restore: a vault lived here. "
                "Restore it ('gpshare restore --vault DIR --user ADMIN') instead of creating a "
                "new one, or choose an empty folder."
            )
        try:
            folder.mkdir(parents=True, exist_ok=True, mode=0o700)
        except OSError as exc:
            raise StorageWriteError(
                f"Cannot create the vault folder {folder}: {exc.strerror}."
            ) from exc
        params = kdf or crypto.calibrate()
        vault_id = str(uuid.uuid4())
        header: dict[str, Any] = {
            "format": FORMAT,
            "format_version": format_version,
            "vault_id": vault_id,
            "id_check": id_check(vault_id),
            "created": clock.now().isoformat(),
            "practice_name": practice_name,
            "kdf_default": params.to_dict(),
            "slots": [],
            "disabled_users": [],
            "audit_head": {"seq": 0, "hash": "0" * 64},
            "failed_unlocks": {},
            "pending_failures": [],
        }
        vault = cls(folder, header)
        vault.lock.acquire()
        return vault, params

    # ----- header persistence -------------------------------------------------------------
    def _mac(self, db_key: bytes) -> str:
        body = {k: v for k, v in self.header.items() if k not in _UNMACED}
        canonical = json.dumps(body, sort_keys=True, separators=(",", ":")).encode()
        if isinstance(db_key, PracticeKeys):
            # Format 2: HKDF(practice, "header-mac"); a v1 key (or a header whose format was
            # edited) computes a different MAC, so the mismatch is refused as tampering.
            mac_key = db_key.header_mac
        else:
            mac_key = crypto.subkey(db_key, "gpshare header mac v1")
        return hmac.new(mac_key, canonical, hashlib.sha256).hexdigest()

    def verify_mac(self, db_key: bytes) -> None:
        """Raise TamperedError when vault.json was edited outside gpshare."""
        stored = str(self.header.get("mac", ""))
        if not hmac.compare_digest(stored, self._mac(db_key)):
            raise TamperedError(
                "vault.json has been changed outside gpshare (its integrity check failed). "
                "Do not use this vault: tell your practice administrator, who can restore the "
                "latest backup with 'gpshare restore'."
            )

    def save(self, db_key: bytes) -> None:
        """Re-MAC and atomically write vault.json (0600).

        Also (re)writes the keyless id check and slot checksums, so vaults made before they
        existed gain them at their next keyed save.
        """
        self.seal(db_key)
        self._write()

    def seal(self, db_key: bytes) -> None:
        """Refresh the keyless checks and the MAC in memory (see `save`)."""
        self.header["id_check"] = id_check(self.vault_id)
        for slot in self.header.get("slots", []):
            slot["check"] = slot_check(slot)
        self.header["mac"] = self._mac(db_key)

    def header_bytes(self) -> bytes:
        """vault.json as written to disk."""
        return json.dumps(self.header, indent=2, sort_keys=True).encode("utf-8")

    def _write(self) -> None:
        atomic_write(self.header_path, self.header_bytes())

    def reload(self) -> None:
        """Re-read the header from disk (after another process changed failure counters)."""
        self.header = self.read_header(self.folder)

    # ----- slots ----------------------------------------------------------------------------
    def _associated_data(self, slot_id: str, params: KdfParams, mix: str | None = None) -> bytes:
        body: dict[str, Any] = {"vault": self.vault_id, "slot": slot_id, "kdf": params.to_dict()}
        if mix == enrolment.KDF_MIX:
            body["mix"] = mix  # a mixed slot stripped of its mark does not open
        return json.dumps(body, sort_keys=True).encode()

    # ----- the enrolment secret (practice server, gpshare/store/enrolment.py) ---------------
    @property
    def kdf_mix(self) -> str | None:
        """`enrolment.KDF_MIX` when the practice's password-derived keys need the enrolment
        secret; None for an embedded vault or a server that has not adopted one."""
        mix = self.header.get("kdf_mix")
        return str(mix) if mix else None

    def check_enrolment_secret(self) -> bytes | None:
        """The enrolment secret this workstation holds, checked against the header's check
        value before any password is tried; None when the practice needs none.
        EnrolmentSecretError: "missing" (not given to this computer) or "mismatch"."""
        if self.kdf_mix is None:
            return None
        secret = self.enrolment_secret or enrolment.load(self.folder, self.vault_id)
        if secret is None:
            raise EnrolmentSecretError(enrolment.MISSING, "missing")
        if not enrolment.matches(secret, self.vault_id, self.header.get("enrolment_secret_check")):
            raise EnrolmentSecretError(enrolment.MISMATCH, "mismatch")
        self.enrolment_secret = secret
        return secret

    def adopt_enrolment_secret(self, db_key: bytes, secret: bytes) -> int:
        """Make every shared slot depend on `secret` (an existing server, docs: "The enrolment
        secret"): the header gains `kdf_mix` and the check value, and each slot not yet mixed
        has its salt and wrapped key sealed under the secret (`enrolment.LAYER`); a password
        slot is re-made mixed at its user's next sign-in. In memory: the caller saves.
        Returns how many slots were sealed."""
        if self.kdf_mix is not None:
            raise KeyUsageError("this practice already has an enrolment secret")
        self.header["kdf_mix"] = enrolment.KDF_MIX
        self.header["enrolment_secret_check"] = enrolment.check_value(secret, self.vault_id)
        self.enrolment_secret = secret
        sealed = 0
        for slot in self.slots():
            if slot.get("type") == "os-keyring" or slot.get("mix"):
                continue  # remembered logins stay on their own computer
            fields = {k: slot.pop(k) for k in ("salt", "nonce", "wrapped")}
            body = json.dumps(fields, sort_keys=True).encode()
            slot["layer"] = _b64(enrolment.seal_layer(secret, self.vault_id, str(slot["id"]), body))
            slot["mix"] = enrolment.LAYER
            slot.pop("check", None)
            sealed += 1
        return sealed

    def needs_mixed_slot(self, username: str) -> bool:
        """Whether `username`'s password slot is still only sealed under the secret (made
        before the practice adopted it): their next sign-in re-makes it mixed."""
        slot = self.password_slot(username)
        return slot is not None and slot.get("mix") == enrolment.LAYER

    def _stretch(self, secret: bytes, salt: bytes, params: KdfParams, mix: str | None) -> bytes:
        """Argon2id of a slot's secret, mixed with the enrolment secret for a mixed slot."""
        derived = crypto.derive(secret, salt, params)
        if mix != enrolment.KDF_MIX:
            return derived
        held = self.check_enrolment_secret()
        if held is None:  # a mixed slot in a header without kdf_mix: edited
            raise TamperedError(
                "A key slot needs the practice's enrolment secret but the header does not say "
                "so: it was edited. Tell the practice administrator."
            )
        return enrolment.mix(derived, held)

    def _new_slot_mix(self) -> str | None:
        return enrolment.KDF_MIX if self.kdf_mix is not None else None

    def _add_secret_slot(
        self,
        db_key: bytes,
        slot_id: str,
        slot_type: str,
        secret: bytes,
        params: KdfParams,
    ) -> bytes:
        salt = os.urandom(16)
        # A remembered login's slot is local and opened by a random keystore secret: unmixed.
        mix = self._new_slot_mix() if slot_type != "os-keyring" else None
        derived = self._stretch(secret, salt, params, mix)
        kek = crypto.subkey(derived, "slot kek")
        nonce, wrapped = crypto.wrap(
            kek, self._slot_payload(db_key), self._associated_data(slot_id, params, mix)
        )
        slot: dict[str, Any] = {
            "id": slot_id,
            "type": slot_type,
            "kdf": params.to_dict(),
            "salt": _b64(salt),
            "nonce": _b64(nonce),
            "wrapped": _b64(wrapped),
        }
        if mix:
            slot["mix"] = mix
        self.header["slots"] = [s for s in self.slots() if s.get("id") != slot_id] + [slot]
        return crypto.subkey(derived, "user secret")

    def _slot_payload(self, db_key: bytes) -> bytes:
        """What a slot wraps: the database key (format 1) or the practice key (format 2)."""
        if self.format_version >= PRACTICE_KEY_FORMAT:
            if not isinstance(db_key, PracticeKeys):
                raise KeyUsageError("a format-2 vault's slots wrap the practice key")
            return db_key.practice.reveal()
        if isinstance(db_key, PracticeKeys):
            raise KeyUsageError("a format-1 vault's slots wrap its database key")
        return db_key

    def _unlocked(self, payload: bytes) -> bytes:
        """What an opened slot hands back: the database key, or the practice keys (format 2)."""
        if self.format_version < PRACTICE_KEY_FORMAT:
            return payload
        try:
            return PracticeKeys(PracticeKey(payload), self.vault_id)
        except KeyUsageError as exc:
            raise TamperedError(
                "A key slot in vault.json holds no valid practice key: it was damaged or edited. "
                "Restore the vault from a backup ('gpshare restore --vault DIR --user ADMIN')."
            ) from exc

    def _add_password_slot(
        self, db_key: bytes, username: str, password: str, params: KdfParams
    ) -> bytes:
        return self._add_secret_slot(
            db_key, self.password_slot_id(username), "password", password.encode("utf-8"), params
        )

    def set_password(self, db_key: bytes, username: str, password: str) -> bytes:
        """Create or re-wrap `username`'s password slot; returns their new user secret.

        Only that slot changes: the database is not re-keyed for a password change.
        """
        params = KdfParams.from_dict(
            self.header.get("kdf_default", crypto.PRODUCTION_FLOOR.to_dict())
        )
        secret = self._add_password_slot(db_key, username, password, params)
        self.header["disabled_users"] = [
            u for u in self.header.get("disabled_users", []) if u != self.user_key(username)
        ]
        self.save(db_key)
        return secret

    def disable_user(self, db_key: bytes, username: str) -> None:
        """Remove every key slot of `username` so they cannot unlock at all."""
        own = {self.password_slot_id(username), self.keyring_slot_id(username)}
        self.header["slots"] = [s for s in self.slots() if s.get("id") not in own]
        disabled = set(self.header.get("disabled_users", []))
        disabled.add(self.user_key(username))
        self.header["disabled_users"] = sorted(disabled)
        self.save(db_key)

    def _find_slot(self, slot_id: str) -> dict[str, Any] | None:
        for slot in self.slots():
            if slot.get("id") == slot_id:
                return slot
        return None

    def _open_slot(
        self, slot: dict[str, Any], secret: bytes, whose: str = "this user"
    ) -> tuple[bytes, bytes] | None:
        params, salt, nonce, wrapped = self._slot_fields(slot, whose)
        mix = slot.get("mix")
        derived = self._stretch(secret, salt, params, mix)
        db_key = crypto.unwrap(
            crypto.subkey(derived, "slot kek"),
            nonce,
            wrapped,
            self._associated_data(str(slot["id"]), params, mix),
        )
        if db_key is None:
            return None
        return self._unlocked(db_key), crypto.subkey(derived, "user secret")

    def _slot_fields(
        self, slot: dict[str, Any], whose: str
    ) -> tuple[KdfParams, bytes, bytes, bytes]:
        """(KDF, salt, nonce, wrapped) of a slot; TamperedError when it is damaged."""
        stored = slot.get("check")
        if stored is not None and stored != slot_check(slot):
            raise TamperedError(
                f"The key slot for {whose} in vault.json is damaged (its checksum does not match), "
                "so the password cannot be checked: this is not a wrong password. Ask the practice "
                "administrator to restore vault.json from a backup ('gpshare restore') or to "
                "reset your password."
            )
        try:
            params = KdfParams.from_dict(slot["kdf"])
            fields = self._unlayered(slot) if slot.get("mix") == enrolment.LAYER else slot
            salt, nonce, wrapped = (
                _unb64(fields["salt"]),
                _unb64(fields["nonce"]),
                _unb64(fields["wrapped"]),
            )
        except (KeyError, ValueError, TypeError, binascii.Error) as exc:
            raise TamperedError(
                f"Key slot '{slot.get('id')}' in vault.json is damaged. Restore the vault from a backup."
            ) from exc
        return params, salt, nonce, wrapped

    def _unlayered(self, slot: dict[str, Any]) -> dict[str, Any]:
        """The salt, nonce and wrapped key of a slot sealed under the enrolment secret."""
        secret = self.check_enrolment_secret()
        if secret is None:
            raise TamperedError(
                f"Key slot '{slot.get('id')}' needs the practice's enrolment secret but the "
                "header does not say so: it was edited. Tell the practice administrator."
            )
        body = enrolment.open_layer(secret, self.vault_id, str(slot["id"]), _unb64(slot["layer"]))
        if body is None:
            raise TamperedError(
                f"Key slot '{slot.get('id')}' does not open with the practice's enrolment secret "
                "although the secret matches the header: the slot was edited. Tell the practice "
                "administrator."
            )
        fields = json.loads(body)
        if not isinstance(fields, dict):
            raise ValueError("not a slot")
        return fields

    # ----- unlock -----------------------------------------------------------------------
    def _failures(self) -> dict[str, Any]:
        """The failure counters, reset when vault.json holds something else (unauthenticated)."""
        failures = self.header.get("failed_unlocks")
        if not isinstance(failures, dict):
            failures = self.header["failed_unlocks"] = {}
        return failures

    def _failure_entry(self, username: str) -> tuple[int, datetime | None]:
        """(count, last) for `username`; anything malformed reads as no failures."""
        entry = self._failures().get(self.user_key(username))
        if not isinstance(entry, dict):
            return 0, None
        try:
            count = max(0, int(entry.get("count", 0)))
        except (TypeError, ValueError):
            return 0, None
        return count, _aware(entry.get("last"))

    def retry_after(self, username: str, clock: Clock) -> float:
        """Seconds `username` must still wait after recent failures (0 when free to try)."""
        count, last = self._failure_entry(username)
        if not count or last is None:
            return 0.0
        wait_until = last + timedelta(seconds=backoff_seconds(count))
        return max(0.0, (wait_until - clock.now()).total_seconds())

    def _record_failure(self, username: str, reason: str, clock: Clock) -> None:
        count, _last = self._failure_entry(username)
        self._failures()[self.user_key(username)] = {
            "count": count + 1,
            "last": clock.now().isoformat(),
        }
        if not isinstance(self.header.get("pending_failures"), list):
            self.header["pending_failures"] = []
        pending = self.header.setdefault("pending_failures", [])
        # The attempted name is kept only as its pseudonym; services resolve known users.
        pending.append(
            {
                "at": clock.now().isoformat(),
                "user_key": self.user_key(username),
                "reason": reason,
                # A claim, not a proof: whoever edits vault.json can write any name here.
                "workstation": platform.node()[:64],
            }
        )
        del pending[:-MAX_PENDING_FAILURES]
        self._write()  # not MAC-able (no key), hence outside the MAC

    def pending_reports(self) -> list[dict[str, str]]:
        """The failed-unlock reports waiting in vault.json, cleaned for the audit log.

        They were written before anyone had the key, so they cannot be authenticated: anyone
        who can edit vault.json can add or remove them. Fields are reduced to known shapes
        (a reason gpshare writes, an ISO time, a pseudonym) so nothing else reaches the log,
        and a report dated before the last sealed clear-out is flagged as implausible.
        """
        cleared = _aware(self.header.get("pending_cleared_at"))
        reports: list[dict[str, str]] = []
        raw = self.header.get("pending_failures", [])
        for item in raw[-MAX_PENDING_FAILURES:] if isinstance(raw, list) else []:
            if not isinstance(item, dict):
                continue
            reason = str(item.get("reason", ""))
            at = _aware(item.get("at"))
            at_ok = at.isoformat() if at else ""
            user_key = str(item.get("user_key", ""))
            workstation = "".join(
                ch for ch in str(item.get("workstation", ""))[:64] if ch.isalnum() or ch in "._-"
            )
            report = {
                "at": at_ok,
                "user_key": user_key if len(user_key) == 32 and user_key.isalnum() else "",
                "reason": reason if reason in FAILURE_REASONS else "unrecognised reason",
                "workstation": workstation or "unnamed workstation",
            }
            if cleared and at and at < cleared:
                report["implausible"] = "dated before the last sealed clear-out of reports"
            reports.append(report)
        return reports

    def confirm_unlock(self, username: str, clock: Clock) -> None:
        """After a session has started: clear the failure reports and `username`'s counter.

        In memory only: the next keyed save (the session's first audit event) writes it.
        Kept apart from the unlock itself, so a vault refused after unlock (rollback,
        damage) keeps its reports for the next successful unlock.
        """
        self.header["pending_failures"] = []
        self._failures().pop(self.user_key(username), None)
        self.header["pending_cleared_at"] = clock.now().isoformat()

    def _check_backoff(self, username: str, clock: Clock) -> None:
        wait = self.retry_after(username, clock)
        if wait > 0:
            raise LockedOutError(
                f"Too many failed attempts for '{username}'. Wait {_seconds(wait)} before trying again.",
                wait,
            )

    def unlock_with_password(self, username: str, password: str, clock: Clock) -> PasswordUnlock:
        """Derive the key from `password` and open `username`'s slot (on a practice server
        with an enrolment secret, only once this computer's copy of it was checked)."""
        self.reload()
        self.check_enrolment_secret()
        self._check_backoff(username, clock)
        if self.is_disabled(username):
            self._record_failure(username, "disabled", clock)
            raise DisabledUserError(
                f"The account '{username}' has been disabled. Ask the practice administrator "
                "if you need access again."
            )
        slot = self.password_slot(username)
        if slot is None and not any(s.get("type") == "password" for s in self.slots()):
            raise TamperedError(
                "vault.json holds no usable key slots, so nobody can unlock this vault: it was "
                "damaged or edited. Ask the practice administrator to restore it from a backup "
                "('gpshare restore --vault DIR --user ADMIN')."
            )
        if slot is None:
            self._record_failure(username, "unknown user", clock)
            raise UnknownUserError(
                f"There is no user called '{username}' in this vault. Check the spelling of your "
                "username, or ask the practice administrator to add you."
            )
        opened = self._open_slot(slot, password.encode("utf-8"), f"'{username}'")
        if opened is None:
            self._record_failure(username, "wrong password", clock)
            raise WrongPasswordError(
                "That password is not right for this user. Check Caps Lock and try again; "
                "after repeated failures you will have to wait a little longer each time."
            )
        db_key, user_secret = opened
        self.verify_mac(db_key)
        return PasswordUnlock(db_key, user_secret, self.pending_reports())

    def check_password(self, username: str, password: str) -> bytes:
        """Open `username`'s slot and verify the header MAC without writing anything.

        Used on a backup's own header (restore), which must stay exactly as it was.
        """
        slot = self.password_slot(username)
        if slot is None:
            raise UnknownUserError(
                f"There is no user called '{username}' in this backup. Restore as an "
                "administrator who existed when the backup was taken."
            )
        opened = self._open_slot(slot, password.encode("utf-8"), f"'{username}'")
        if opened is None:
            raise WrongPasswordError(
                f"That password does not open this backup for '{username}'. Use the password "
                "that user had when the backup was taken."
            )
        self.verify_mac(opened[0])
        return opened[0]

    def unlock_with_recovery(self, code: str, clock: Clock) -> bytes:
        """Open the vault with the printed recovery code (practice manager)."""
        self.reload()
        self.check_enrolment_secret()
        self._check_backoff("recovery", clock)
        slot = self._find_slot("recovery")
        if slot is None:
            raise TamperedError(
                "This vault has no recovery slot; restore vault.json from a backup."
            )
        opened = self._open_slot(slot, normalise_recovery_code(code).encode(), "the recovery code")
        if opened is None:
            self._record_failure("recovery", "wrong recovery code", clock)
            raise WrongPasswordError(
                "That recovery code does not open this vault. Type it exactly as printed "
                "(spaces and dashes do not matter)."
            )
        self.verify_mac(opened[0])
        return opened[0]

    # ----- break-glass slot (format 2) ----------------------------------------------------

    def _add_breakglass_slot(self, params: KdfParams) -> str:
        """A new X25519 pair whose private half only the returned break-glass code opens."""
        if self.format_version < PRACTICE_KEY_FORMAT:
            raise KeyUsageError("only a format-2 vault has a break-glass slot")
        code = new_recovery_code()
        private = X25519PrivateKey.generate()
        public = private.public_key().public_bytes_raw()
        salt = os.urandom(16)
        mix = self._new_slot_mix()
        derived = self._stretch(normalise_recovery_code(code).encode(), salt, params, mix)
        nonce, wrapped = crypto.wrap(
            crypto.subkey(derived, "breakglass kek"),
            private.private_bytes_raw(),
            self._associated_data(BREAKGLASS_SLOT, params, mix),
        )
        slot: dict[str, Any] = {
            "id": BREAKGLASS_SLOT,
            "type": "breakglass",
            "kdf": params.to_dict(),
            "salt": _b64(salt),
            "nonce": _b64(nonce),
            "wrapped": _b64(wrapped),
            "public_key": _b64(public),
        }
        if mix:
            slot["mix"] = mix
        self.header["slots"] = [s for s in self.slots() if s.get("id") != BREAKGLASS_SLOT] + [slot]
        return code

    def staged_v2(self) -> tuple[Vault, str]:
        """A v1 → v2 migration's header, in memory only (docs/vault-v2.md §4): a copy of this
        format-1 header as format 2 with a new break-glass slot; returns (it, the break-glass
        code). Every slot stays valid: a v1 slot wraps the database key, which becomes the
        practice key. The caller seals it with the practice keys and writes its bytes."""
        if self.format_version >= PRACTICE_KEY_FORMAT:
            raise KeyUsageError("this vault is already format 2")
        staged = Vault(self.folder, json.loads(json.dumps(self.header)))
        staged.header["format_version"] = PRACTICE_KEY_FORMAT
        params = KdfParams.from_dict(
            self.header.get("kdf_default", crypto.PRODUCTION_FLOOR.to_dict())
        )
        return staged, staged._add_breakglass_slot(params)

    def breakglass_public_key(self) -> bytes:
        """The break-glass X25519 public key (the `breakglass` recipient of role-key wraps)."""
        slot = self._find_slot(BREAKGLASS_SLOT)
        try:
            public = _unb64(slot["public_key"]) if slot is not None else b""
        except (KeyError, ValueError, TypeError, binascii.Error):
            public = b""
        if len(public) != 32:
            raise TamperedError(
                "vault.json has no usable break-glass slot: it was damaged or edited. Restore "
                "vault.json from a backup ('gpshare restore --vault DIR --user ADMIN')."
            )
        return public

    def replace_breakglass(self, db_key: bytes) -> str:
        """A new break-glass pair and code (each ceremony); the old code opens nothing after."""
        params = KdfParams.from_dict(
            self.header.get("kdf_default", crypto.PRODUCTION_FLOOR.to_dict())
        )
        code = self._add_breakglass_slot(params)
        self.save(db_key)
        return code

    def stage_breakglass(self) -> str:
        """A new break-glass pair and code in memory only: the caller's next keyed save (the
        ceremony's audit event) writes it, so a failed ceremony keeps the old code."""
        params = KdfParams.from_dict(
            self.header.get("kdf_default", crypto.PRODUCTION_FLOOR.to_dict())
        )
        return self._add_breakglass_slot(params)

    def open_breakglass(self, code: str, clock: Clock) -> X25519PrivateKey:
        """The break-glass private key, opened with the break-glass code and nothing else.

        Failures back off and are reported like the recovery code's.
        """
        self.reload()
        self.check_enrolment_secret()
        self._check_backoff(BREAKGLASS_SLOT, clock)
        public = self.breakglass_public_key()
        slot = self._find_slot(BREAKGLASS_SLOT)
        assert slot is not None  # breakglass_public_key found it
        params, salt, nonce, wrapped = self._slot_fields(slot, "the break-glass code")
        mix = slot.get("mix")
        derived = self._stretch(normalise_recovery_code(code).encode(), salt, params, mix)
        raw = crypto.unwrap(
            crypto.subkey(derived, "breakglass kek"),
            nonce,
            wrapped,
            self._associated_data(BREAKGLASS_SLOT, params, mix),
        )
        if raw is None:
            self._record_failure(BREAKGLASS_SLOT, "wrong break-glass code", clock)
            raise WrongPasswordError(
                "That break-glass code does not open this vault's break-glass slot. Type it "
                "exactly as printed in the sealed envelope (spaces and dashes do not matter)."
            )
        private = X25519PrivateKey.from_private_bytes(raw)
        # The public half is checked against the private one, so a swapped public key (which
        # would receive role-key wraps nobody can open with the code) is named, not used.
        if private.public_key().public_bytes_raw() != public:
            raise TamperedError(
                "The break-glass slot in vault.json does not match its own public key: it was "
                "edited. Do not use it; restore vault.json from a backup."
            )
        return private

    # ----- OS keyring ("remember me on this computer") ------------------------------------
    def keyring_service(self) -> str:
        return f"gpshare:{self.vault_id}"

    def has_keyring_slot(self, username: str) -> bool:
        return self._find_slot(self.keyring_slot_id(username)) is not None

    def enable_keyring(self, db_key: bytes, username: str, user_secret: bytes) -> None:
        """Store a random secret in the OS keyring and add a slot it opens.

        The keyring secret also wraps the user's secret, so signing still needs only them.
        """
        backend = usable_keyring()
        secret = secrets.token_urlsafe(32)
        try:
            backend.set_password(self.keyring_service(), username, secret)
        except Exception as exc:  # any backend failure: say so, never fall back to plaintext
            raise KeyringUnavailableError(
                f"This computer's keyring refused to store the secret ({exc.__class__.__name__}). "
                "You will need to type your password each time."
            ) from exc
        params = KEYRING_SLOT_KDF
        slot_id = self.keyring_slot_id(username)
        self._add_secret_slot(db_key, slot_id, "os-keyring", secret.encode(), params)
        # Wrap the user's secret too, so "remember me" also unlocks their signing key.
        kek = crypto.subkey(hashlib.sha256(secret.encode()).digest(), "keyring user secret")
        nonce, wrapped = crypto.wrap(
            kek, user_secret, self._associated_data(slot_id + ":user", params)
        )
        slot = self._find_slot(slot_id)
        assert slot is not None
        slot["user_nonce"], slot["user_wrapped"] = _b64(nonce), _b64(wrapped)
        self.save(db_key)

    def refresh_keyring(self, db_key: bytes, username: str, user_secret: bytes) -> bool:
        """After a password change: re-wrap the remembered login's copy of the user secret.

        Returns False (and forgets the login) when the keyring secret is no longer there.
        """
        slot = self._find_slot(self.keyring_slot_id(username))
        if slot is None:
            return False
        try:
            secret = usable_keyring().get_password(self.keyring_service(), username)
        except Exception:  # no backend now: forget the login rather than keep a stale one
            secret = None
        if not secret:
            self.forget_keyring_slot(db_key, username)
            return False
        params = KdfParams.from_dict(slot["kdf"])
        kek = crypto.subkey(hashlib.sha256(secret.encode()).digest(), "keyring user secret")
        nonce, wrapped = crypto.wrap(
            kek, user_secret, self._associated_data(str(slot["id"]) + ":user", params)
        )
        slot["user_nonce"], slot["user_wrapped"] = _b64(nonce), _b64(wrapped)
        self.header["slots"] = [s if s.get("id") != slot["id"] else slot for s in self.slots()]
        self.save(db_key)
        return True

    def set_keyring_bundle(self, db_key: bytes, username: str, copy: dict[str, Any]) -> None:
        """Format 2: keep the remembered login's sealed copy of the user's key bundle (never
        the lead key) in their keyring slot; it goes when the slot goes."""
        slot = self._find_slot(self.keyring_slot_id(username))
        if slot is None:
            return
        slot["bundle"] = copy
        self.save(db_key)

    def keyring_bundle(self, username: str) -> dict[str, Any] | None:
        """The sealed bundle copy in `username`'s keyring slot, if there is one."""
        slot = self._find_slot(self.keyring_slot_id(username))
        copy = slot.get("bundle") if slot is not None else None
        return copy if isinstance(copy, dict) else None

    def set_keyring_login(self, db_key: bytes, username: str, login_id: int) -> None:
        """Format 2: the `remembered_logins` row (id) listing this slot, checked at unlock."""
        slot = self._find_slot(self.keyring_slot_id(username))
        if slot is None:
            return
        slot["login_id"] = login_id
        self.save(db_key)

    def keyring_login(self, username: str) -> int | None:
        """The `remembered_logins` id of `username`'s keyring slot, if it names one."""
        slot = self._find_slot(self.keyring_slot_id(username))
        found = slot.get("login_id") if slot is not None else None
        return found if isinstance(found, int) and not isinstance(found, bool) else None

    def forget_keyring_slot(self, db_key: bytes, username: str) -> None:
        """Remove the remembered-login slot (the OS keyring entry may be on another computer)."""
        self.header["slots"] = [
            s for s in self.slots() if s.get("id") != self.keyring_slot_id(username)
        ]
        self.save(db_key)

    def slots_snapshot(self) -> list[dict[str, Any]]:
        """A copy of the slots, to put back if a change that follows fails."""
        return json.loads(json.dumps(self.slots()))

    def restore_slots(self, db_key: bytes, snapshot: list[dict[str, Any]]) -> None:
        self.header["slots"] = snapshot
        self.save(db_key)

    def disable_keyring(self, db_key: bytes, username: str) -> None:
        """Forget this computer: remove the slot and the keyring entry."""
        self.header["slots"] = [
            s for s in self.slots() if s.get("id") != self.keyring_slot_id(username)
        ]
        self.save(db_key)
        # Nothing stored or no backend: the slot is gone, which is what counts.
        with contextlib.suppress(Exception):
            usable_keyring().delete_password(self.keyring_service(), username)

    def unlock_with_keyring(self, username: str, clock: Clock) -> PasswordUnlock:
        """Unlock using the secret remembered in the OS keyring (on a practice server with an
        enrolment secret, only on a computer that holds it, as for a password)."""
        self.reload()
        self.check_enrolment_secret()
        if self.is_disabled(username):
            raise DisabledUserError(f"The account '{username}' has been disabled.")
        slot = self._find_slot(self.keyring_slot_id(username))
        if slot is None:
            raise UnknownUserError(
                f"This computer does not remember '{username}'. Type your password."
            )
        backend = usable_keyring()
        secret = backend.get_password(self.keyring_service(), username)
        if not secret:
            raise WrongPasswordError(
                "The remembered secret is no longer in this computer's keyring; type your password."
            )
        opened = self._open_slot(slot, secret.encode())
        if opened is None:
            raise WrongPasswordError("The remembered secret no longer matches; type your password.")
        db_key = opened[0]
        params = KdfParams.from_dict(slot["kdf"])
        kek = crypto.subkey(hashlib.sha256(secret.encode()).digest(), "keyring user secret")
        user_secret = crypto.unwrap(
            kek,
            _unb64(slot["user_nonce"]),
            _unb64(slot["user_wrapped"]),
            self._associated_data(str(slot["id"]) + ":user", params),
        )
        if user_secret is None:
            raise TamperedError("The remembered-login slot is damaged; type your password.")
        self.verify_mac(db_key)
        return PasswordUnlock(db_key, user_secret, self.pending_reports())

    # ----- audit head mirror --------------------------------------------------------------
    def audit_head(self) -> tuple[int, str]:
        head = self.header.get("audit_head", {})
        return int(head.get("seq", 0)), str(head.get("hash", "0" * 64))

    def set_audit_head(self, db_key: bytes, seq: int, hash_hex: str) -> None:
        self.header["audit_head"] = {"seq": seq, "hash": hash_hex}
        self.save(db_key)

    def restore_number(self) -> int:
        """The number of the newest sealed restore record (0 when never restored)."""
        numbers = [0]
        for item in self.header.get("restores", []):
            with contextlib.suppress(KeyError, TypeError, ValueError):
                numbers.append(int(item["n"]))
        return max(numbers)

    def restore_floor(self, after: int) -> int:
        """The highest audit seq that restores numbered above `after` deliberately replaced.

        A computer whose anchor (taken when it had seen restore number `after`) is at or
        below it accepts the older, restored history; a copy taken after that restore
        gains nothing from it.
        """
        floors = [0]
        for item in self.header.get("restores", []):
            with contextlib.suppress(KeyError, TypeError, ValueError):
                if int(item["n"]) > after:
                    floors.append(int(item["replaced_seq"]))
        return max(floors)

    def add_restore_record(self, entry: dict[str, Any], at_least: int) -> None:
        """Add a restore record in memory (`seal` or `save` seals it).

        Its number must exceed every restore number any computer has seen, including ones
        in a newer vault.json this backup never saw, so callers pass the restore time in
        microseconds (and any number known) as `at_least`.
        """
        numbered = {**entry, "n": max(self.restore_number() + 1, at_least)}
        self.header["restores"] = [*self.header.get("restores", []), numbered][-50:]

    def integrity_checked_at(self) -> datetime | None:
        """When the database's pages were last checked (sealed in the header), if ever."""
        text = self.header.get("integrity_checked_at")
        try:
            return datetime.fromisoformat(str(text)) if text else None
        except ValueError:
            return None

    def set_integrity_checked(self, db_key: bytes, when: datetime) -> None:
        self.header["integrity_checked_at"] = when.isoformat()
        self.save(db_key)


_platform_keyring_chosen = False


def usable_keyring() -> Any:
    """The configured keyring backend, or KeyringUnavailableError when none is usable.

    On headless Linux keyring falls back to the 'fail' backend; we say so plainly and the
    user types their password instead — never a plaintext file, never 'wrong password'.
    """
    try:
        import keyring
        from keyring.backends import fail
    except ImportError as exc:  # pragma: no cover - keyring is a dependency
        raise KeyringUnavailableError("The keyring library is not installed.") from exc
    global _platform_keyring_chosen
    if getattr(sys, "frozen", False) and not _platform_keyring_chosen:
        # The installed app: keyring's entry-point discovery is unreliable when frozen, so name
        # the platform's backend (gpshare.keyring_select); none found -> no keyring at all.
        from gpshare.keyring_select import install_backend

        if install_backend() is None:
            keyring.set_keyring(fail.Keyring())
        _platform_keyring_chosen = True
    backend = keyring.get_keyring()
    priority = getattr(backend, "priority", 0)
    name = type(backend).__module__
    if (
        isinstance(backend, fail.Keyring)
        or "plaintext" in name.lower()
        or (isinstance(priority, (int, float)) and priority <= 0)
    ):
        raise KeyringUnavailableError(
            "No secure keyring is available on this computer, so gpshare cannot remember your "
            "login. Type your password each time (your data is unaffected)."
        )
    return backend
