"""Use cases: the one place for access control and audit (DESIGN §5).

Every method takes the acting user from the session, checks the role, does its work in one
transaction and appends the audit event in that same transaction. The UI and the CLI call
these methods; neither runs SQL nor decides who may do what.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import re
import secrets
import threading
import weakref
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

from gpshare import access, carry, navigator, practice_settings
from gpshare import followup as followup_mod
from gpshare.chronology import (
    ChronologyEntry,
    HouseholdLink,
    address_key,
    build_chronology,
    carer_keys,
    household_links,
)
from gpshare.clock import Clock, SystemClock, today
from gpshare.dashboard import Dashboard, build_dashboard
from gpshare.errors import (
    Cancelled,
    NotFound,
    PasswordChangeRequired,
    PermissionDenied,
    ServiceError,
    ValidationFailed,
)
from gpshare.errors import KeyringUnavailableError as KeyringUnavailableError
from gpshare.errors import LockedOutError as LockedOutError
from gpshare.filters import AuditFilter as AuditFilter
from gpshare.filters import RecordFilter as RecordFilter
from gpshare.followup import ReferralState
from gpshare.forms import Form, load_form_by_id
from gpshare.letter_template import LetterTemplate, LetterTemplateError
from gpshare.nhs_number import normalise as normalise_nhs
from gpshare.records import (
    ROLES,
    Addendum,
    AuditEvent,
    ChildSummary,
    FollowUp,
    Record,
    Review,
    User,
    new_record_id,
    parse_date,
)
from gpshare.store import anchor, audit, backup, crypto, db
from gpshare.store import repositories as repo
from gpshare.store.audit import ChainReport as ChainReport
from gpshare.store.backup import BackupInfo as BackupInfo
from gpshare.store.crypto import KdfParams
from gpshare.store.db import DatabaseError as DatabaseError
from gpshare.store.errors import (
    CorruptDatabaseError,
    NotAVaultError,
    RollbackError,
    StoreError,
    TamperedError,
    UnknownUserError,
    WrongPasswordError,
)
from gpshare.store.vault import Vault

# Names imported `X as X` above (filters, errors, BackupInfo, ChainReport, DatabaseError) are
# re-exported for the UI and CLI, which reach storage only through this module (import-linter
# contract "UI and CLI never import the store").
T = TypeVar("T")
DEFAULT_FORM_ID = "england-child-safeguarding"
# Practice settings passed to the navigator for form rules (data-dictionary-v2 "Practice
# settings"); the settings screen that edits them belongs to the settings work.
RULE_SETTINGS = ("local_authority", "appropriate_policy_document")
USERNAME_RE = re.compile(r"^[a-z0-9][a-z0-9._-]{1,31}$")
GMC_RE = re.compile(r"^\d{7}$")
MIN_PASSWORD_LENGTH = 10
MAX_PASSWORD_LENGTH = 256
MIN_PASSWORD_SCORE = 3  # zxcvbn: 3 = "safely unguessable", well beyond online guessing
DRAFT_AUDIT_COALESCE_SECONDS = 300
# Records per export page: at most 500 ids, so each page's follow-ups come from an IN (...)
# lookup on the index, never a scan of every follow-up (repositories.followups).
EXPORT_PAGE = 500
# Settings that change when a referral's next action falls due (stored states recomputed).
REFERRAL_SETTING_KEYS = frozenset({"local_closure_days", "written_confirmation_hours"})
# Free-text fields indexed for the lead's full-text search (inside the encrypted database).
SEARCH_FIELDS = (
    "child_given_name",
    "child_family_name",
    "child_other_names",
    "concern_narrative",
    "concern_opinion",
    "child_words",
    "advice_summary",
    "reasons_not_sharing",
    "support_offered",
    "refusal_reasons",
    "conclusion_statement",
    "harm_if_not_shared",
    "benefit_of_sharing",
)
DEFAULT_SETTINGS = {
    "practice_name": "",
    "practice_address": "",
    "practice_ods_code": "",
    "practice_phone": "",
    "practice_secure_email": "",
    "auto_lock_minutes": "5",
    "backup_keep": str(backup.DEFAULT_KEEP),
    "local_closure_days": "",
    "written_confirmation_hours": "24",
    **practice_settings.DEFAULTS,
}
SETTING_LABELS = {
    "practice_name": "Practice name",
    "practice_address": "Practice address",
    "practice_ods_code": "ODS code",
    "practice_phone": "Practice phone",
    "practice_secure_email": "Secure email",
    "auto_lock_minutes": "Auto-lock after (minutes)",
    "backup_keep": "Backups to keep",
    "local_closure_days": "Local closure days",
    "written_confirmation_hours": "Written confirmation deadline (hours)",
    **practice_settings.LABELS,
}


def validate_username(username: str) -> str | None:
    """Problem with a proposed username, or None."""
    if not USERNAME_RE.match(username):
        return (
            "Username must be 2–32 characters: lower-case letters, digits, '.', '_' or '-', "
            "starting with a letter or digit (e.g. 'j.smith')."
        )
    return None


def validate_password(password: str, username: str, context: Sequence[str] = ()) -> str | None:
    """Problem with a proposed password, or None.

    Besides the length, zxcvbn estimates how guessable it is (score 0–4; 3 or more is
    needed): common passwords, keyboard runs, dates, repeats and words from `context` (the
    person's name, the practice) all lower the score. The message gives its reason and tip.
    """
    if len(password) < MIN_PASSWORD_LENGTH:
        return f"Password must be at least {MIN_PASSWORD_LENGTH} characters; a short phrase is easiest to remember."
    if len(password) > MAX_PASSWORD_LENGTH:
        return f"Password must be at most {MAX_PASSWORD_LENGTH} characters."
    if any(ord(ch) < 32 or ord(ch) == 127 for ch in password):
        return "Password must not contain control characters (tabs, line breaks); type it again."
    if password.strip().lower() == username.lower():
        return "Password must not be the same as the username."
    strength = password_strength(password, [username, *context])
    if strength.score < MIN_PASSWORD_SCORE:
        reason = strength.warning or "It would be easy to guess."
        tip = strength.suggestion or "Add another word or two; uncommon words are better."
        return (
            f"Password is too easy to guess: {reason.rstrip('.')}. {tip.rstrip('.')}. "
            "A phrase of three or four unrelated words is strong and easy to remember."
        )
    return None


@dataclass(frozen=True)
class PasswordStrength:
    """zxcvbn's estimate: score 0 (guessable) to 4 (very hard), its warning and first tip."""

    score: int
    warning: str
    suggestion: str


def password_strength(password: str, context: Sequence[str] = ()) -> PasswordStrength:
    """Estimate a password's strength with zxcvbn, penalising words from `context`."""
    from zxcvbn import zxcvbn

    words = [w for text in context for w in re.split(r"[\s.@_-]+", text.lower()) if len(w) > 2]
    # zxcvbn refuses inputs over 72 characters; the first 72 decide the score anyway.
    result = zxcvbn(password[:72], user_inputs=[*words, "gpshare", "password"])
    feedback = result.get("feedback") or {}
    suggestions = feedback.get("suggestions") or []
    return PasswordStrength(
        int(result["score"]),
        str(feedback.get("warning") or ""),
        str(suggestions[0]) if suggestions else "",
    )


def one_time_password() -> str:
    """A one-time password an administrator can read out: 4 groups of 4.

    It must pass the same policy as a chosen password; a random draw almost always does,
    but a draw that happens to spell a guessable run is drawn again.
    """
    alphabet = "abcdefghjkmnpqrstuvwxyz23456789"
    while True:
        raw = "".join(secrets.choice(alphabet) for _ in range(16))
        candidate = "-".join(raw[i : i + 4] for i in range(0, 16, 4))
        if password_strength(candidate).score >= MIN_PASSWORD_SCORE:
            return candidate


@dataclass(frozen=True)
class LetterResult:
    """A signed letter as stored on its record."""

    letter_id: int
    record_id: str
    sha256: str
    pdf: bytes
    filename: str


class Session:
    """An unlocked vault for one acting user. Close it (or lock) to drop the key."""

    def __init__(
        self,
        vault: Vault,
        conn: db.Connection,
        user: User,
        db_key: bytes,
        user_secret: bytes,
        clock: Clock,
    ) -> None:
        self.vault = vault
        self._conn: db.Connection | None = conn
        self.user = user
        self._db_key: bytes | None = db_key
        self._user_secret: bytes | None = user_secret
        self.clock = clock
        self._audit_key = audit.audit_key(db_key)
        # Shared with worker sessions: one audited write at a time in this process, so the
        # chain head mirrored into vault.json only ever moves forward.
        self._write_lock = threading.RLock()
        self._owns_vault_lock = True
        self._workers: weakref.WeakSet[Session] = weakref.WeakSet()
        # True when this session was unlocked with the user's password (open_session): the
        # secret derived then may sign a letter in the same command (generate_letter(…, None)).
        self._password_unlocked = False

    # ----- plumbing -----------------------------------------------------------------------
    @property
    def conn(self) -> db.Connection:
        if self._conn is None:
            raise ServiceError("The vault is locked. Unlock it again to continue.")
        return self._conn

    @property
    def db_key(self) -> bytes:
        if self._db_key is None:
            raise ServiceError("The vault is locked. Unlock it again to continue.")
        return self._db_key

    @property
    def is_open(self) -> bool:
        return self._conn is not None

    def now_iso(self) -> str:
        return self.clock.now().isoformat(timespec="seconds")

    def close(self) -> None:
        """Drop the key and the connection (lock or quit); stops any worker sessions' queries."""
        for worker in list(self._workers):
            worker.interrupt()
        self.checkpoint()
        if self._conn is not None and self._db_key is not None:
            # Raise this computer's rollback anchor to the newest head seen (best effort).
            with contextlib.suppress(StoreError, db.DatabaseError):
                seq, digest = audit.latest(self._conn)
                number = self.vault.restore_number()
                anchor.write(self.vault.vault_id, self._db_key, seq, digest, number)
        if self._conn is not None:
            with contextlib.suppress(db.DatabaseError):
                self._conn.close()
        self._conn = None
        self._db_key = None
        self._user_secret = None
        self._audit_key = b""
        if self._owns_vault_lock:
            self.vault.lock.release()

    def checkpoint(self) -> None:
        """Copy the write-ahead log into the database file, without waiting for anyone.

        Called when the user is idle and at close, never in the save path (automatic
        checkpoints are off: db.open_database).
        """
        if self._conn is not None:
            with contextlib.suppress(db.DatabaseError):
                db.checkpoint(self._conn)

    def worker_session(self) -> Session:
        """The same user and key on a connection of its own, for one worker thread.

        SQLCipher connections are not shared between threads. Close it when the work ends
        (that closes only its connection); closing this session interrupts it.
        """
        conn = db.open_database(self.vault.db_path, self.db_key)
        worker = Session(self.vault, conn, self.user, self.db_key, b"", self.clock)
        worker._write_lock = self._write_lock
        worker._owns_vault_lock = False
        self._workers.add(worker)
        return worker

    def interrupt(self) -> None:
        """Abort the query running on this session's connection (from any thread)."""
        conn = self._conn
        if conn is not None:
            with contextlib.suppress(db.DatabaseError):
                conn.interrupt()

    def _write(
        self,
        action: str,
        work: Callable[[db.Connection], T],
        record_id: str | None = None,
        details: Mapping[str, Any] | None = None,
        actor: str | None = None,
    ) -> T:
        """Run `work` and append its audit event in one transaction; mirror the chain head."""
        conn = self.conn
        with self._write_lock:
            with db.transaction(conn):
                result = work(conn)
                seq, digest = audit.append(
                    conn,
                    self._audit_key,
                    at=self.clock.now(),
                    actor=actor or self.user.username,
                    action=action,
                    record_id=record_id,
                    details=dict(details or {}),
                )
            self.vault.set_audit_head(self.db_key, seq, digest)
        return result

    def audit(
        self, action: str, record_id: str | None = None, details: Mapping[str, Any] | None = None
    ) -> None:
        """Append a standalone audit event (views, prints, exports…)."""
        self._require("audit_event", record_id=record_id)
        self._write(action, lambda _c: None, record_id, details)

    def _require(self, action: str, *, record_id: str | None = None) -> None:
        """Allow `action` for the acting user as gpshare.access says, else audit and refuse.

        A user who still has a one-time password may only change it (or lock).
        """
        allowed = access.POLICY.get(action)
        if allowed is None:
            # Fail closed: a new service method whose action is not in the table yet.
            raise self._deny(
                action,
                record_id,
                f"Not permitted: '{action}' has no rule in the access table (gpshare/access.py).",
            )
        if self.user.must_change_password and action not in access.WHILE_PASSWORD_CHANGE_PENDING:
            self._write(
                "permission_denied",
                lambda _c: None,
                record_id,
                {"attempted": action, "role": self.user.role, "reason": "must_change_password"},
            )
            raise PasswordChangeRequired(
                "You are still using a one-time password: choose your own password before doing "
                f"anything else (run 'gpshare user passwd --user {self.user.username}', or unlock "
                "in the app, which asks for it)."
            )
        if self.user.role not in allowed:
            raise self._deny(
                action,
                record_id,
                f"Not permitted for your role ({self.user.role_title.lower()}): {action.replace('_', ' ')}. "
                "Ask a colleague with the right role.",
            )

    def _deny(self, action: str, record_id: str | None, why: str) -> PermissionDenied:
        # _write, not audit(): audit() itself is checked by _require.
        self._write(
            "permission_denied",
            lambda _c: None,
            record_id,
            {"attempted": action, "role": self.user.role},
        )
        return PermissionDenied(why)

    # ----- users and passwords ------------------------------------------------------------
    def list_users(self) -> list[User]:
        """Every user (admin), or just yourself."""
        self._require("list_users")
        if self.user.role != "admin":
            return [self.user]
        return repo.list_users(self.conn)

    def new_user_problems(
        self, username: str, full_name: str, role: str, password: str, gmc_number: str | None
    ) -> list[dict[str, str]]:
        """Every problem with a new user's details at once ({"field", "message"} each), so a
        form can show them all together. Nothing is written (admin only)."""
        self._require("add_user")
        username = username.strip()
        problems = []
        if (p := validate_username(username)) is not None:
            problems.append(("username", p))
        elif repo.get_user(self.conn, username) is not None or self.vault.is_disabled(username):
            problems.append(
                (
                    "username",
                    f"There is already a user called '{username}'. Choose another username.",
                )
            )
        if role not in ROLES:
            problems.append(("role", f"Role must be one of: {', '.join(ROLES)}."))
        if not full_name.strip() or len(full_name) > 100:
            problems.append(("name", "Enter the person's full name (up to 100 characters)."))
        gmc = (gmc_number or "").strip() or None
        if gmc is not None and not GMC_RE.match(gmc):
            problems.append(
                (
                    "gmc",
                    "A GMC number is exactly 7 digits (e.g. 1234567). Leave it empty for non-doctors.",
                )
            )
        if (p := validate_password(password, username, [full_name])) is not None:
            problems.append(("password", p))
        return [{"field": f, "message": m} for f, m in problems]

    def add_user(
        self, username: str, full_name: str, role: str, password: str, gmc_number: str | None = None
    ) -> User:
        """Create a user with an initial password (admin only); they must choose their own at
        first sign-in, so the admin who typed it can never sign or read as them."""
        self._require("add_user")
        username = username.strip()
        problems = self.new_user_problems(username, full_name, role, password, gmc_number)
        if problems:
            raise ValidationFailed("; ".join(p["message"] for p in problems), problems)
        gmc = (gmc_number or "").strip() or None
        user = User(username, full_name.strip(), role, gmc, True, True, self.now_iso())
        user_secret = self.vault.set_password(self.db_key, username, password)

        def work(conn: db.Connection) -> None:
            repo.insert_user(conn, user)
            if role in ("clinician", "lead"):
                self._issue_certificate(conn, user, user_secret)

        try:
            self._write("user_added", work, details={"username": username, "role": role})
        except Exception:
            self.vault.disable_user(self.db_key, username)  # no slot without a user row
            key = self.vault.user_key(username)
            self.vault.header["disabled_users"] = [
                u for u in self.vault.header["disabled_users"] if u != key
            ]
            self.vault.save(self.db_key)
            raise
        return user

    def _stored_ca(self) -> repo.WrappedKey:
        stored = repo.get_practice_ca(self.conn)
        if stored is None:
            raise ServiceError(
                "This vault has no practice certificate authority; restore it from a backup."
            )
        return stored

    def _ca(self) -> tuple[bytes, bytes]:
        """(key_pem, cert_pem) of the practice CA, unwrapped with the database key."""
        stored = self._stored_ca()
        key = crypto.unwrap(
            crypto.subkey(self.db_key, "practice ca key"),
            stored.nonce,
            stored.wrapped,
            f"{self.vault.vault_id}:practice-ca".encode(),
        )
        if key is None:
            raise ServiceError(
                "The practice certificate authority's key cannot be opened; restore the vault from a backup."
            )
        return key, stored.cert_pem

    def _signing_wrap_ad(self, username: str) -> bytes:
        return f"{self.vault.vault_id}:signing:{username}".encode()

    def _issue_certificate(self, conn: db.Connection, user: User, user_secret: bytes) -> None:
        from gpshare import signing

        ca_key, ca_cert = self._ca()
        issued = signing.issue_user_certificate(
            signing.KeyAndCert(ca_key, ca_cert),
            full_name=user.full_name,
            username=user.username,
            role=user.role_title,
            gmc_number=user.gmc_number,
            practice_name=self.vault.practice_name,
            now=self.clock.now(),
        )
        self._store_signing_key(
            conn, user.username, issued.key_pem, issued.cert_pem, user_secret, "issued"
        )

    def _store_signing_key(
        self,
        conn: db.Connection,
        username: str,
        key_pem: bytes,
        cert_pem: bytes,
        user_secret: bytes,
        source: str,
    ) -> None:
        nonce, wrapped = crypto.wrap(
            crypto.subkey(user_secret, "signing key"), key_pem, self._signing_wrap_ad(username)
        )
        repo.add_signing_key(
            conn, username, repo.WrappedKey(cert_pem, nonce, wrapped), source, self.now_iso()
        )

    def import_pkcs12(self, username: str, data: bytes, pkcs12_password: str) -> str:
        """Admin: give a user a signing key from a PKCS#12 file; returns their one-time password.

        The key must be wrapped with the user's own password, so the import resets it. The
        certificate must be issued by the practice CA or by an issuer included in the file;
        that issuer is then trusted when letters are signed and verified.
        """
        self._require("import_pkcs12")
        from gpshare import signing

        target = repo.get_user(self.conn, username)
        if target is None or target.role not in ("clinician", "lead"):
            raise NotFound(f"No clinician or safeguarding lead called '{username}'.")
        try:
            loaded = signing.load_pkcs12(data, pkcs12_password.encode())
            chain = signing.pkcs12_chain(data, pkcs12_password.encode())
            info = signing.certificate_info(loaded.cert_pem)
        except signing.SigningError as exc:
            raise ValidationFailed(str(exc), [{"field": "pkcs12", "message": str(exc)}]) from exc
        practice_ca = self._practice_ca_pem()
        issuer = next(
            (c for c in [practice_ca, *chain] if signing.issued_by(loaded.cert_pem, c)), None
        )
        if issuer is None:
            message = (
                "The certificate's issuer is not in the file and is not this practice's CA. "
                "Export the .p12 again including the certificate chain."
            )
            raise ValidationFailed(message, [{"field": "pkcs12", "message": message}])
        if info.not_after < self.clock.now():
            message = (
                f"This certificate expired on {info.not_after:%d %B %Y}; import a current one."
            )
            raise ValidationFailed(message, [{"field": "pkcs12", "message": message}])
        temp = one_time_password()
        before = self.vault.slots_snapshot()
        user_secret = self.vault.set_password(self.db_key, username, temp)

        def work(conn: db.Connection) -> None:
            repo.set_must_change_password(conn, username, True)
            self._store_signing_key(
                conn, username, loaded.key_pem, loaded.cert_pem, user_secret, "pkcs12"
            )
            if issuer != practice_ca:
                trusted = self.trusted_issuers()
                if issuer not in trusted:
                    repo.put_settings(
                        conn,
                        {
                            "trusted_issuers": json.dumps(
                                [p.decode("ascii") for p in [*trusted, issuer]]
                            )
                        },
                    )

        try:
            self._write(
                "pkcs12_imported",
                work,
                details={"username": username, "fingerprint": info.sha256_fingerprint},
            )
        except BaseException:
            self.vault.restore_slots(self.db_key, before)
            raise
        self.vault.forget_keyring_slot(self.db_key, username)
        return temp

    def trusted_issuers(self) -> list[bytes]:
        """Issuers of imported PKCS#12 certificates (besides the practice CA)."""
        self._require("read_certificates")
        raw = repo.get_settings(self.conn).get("trusted_issuers")
        return [p.encode("ascii") for p in json.loads(raw)] if raw else []

    def _issuer_of(self, cert_pem: bytes) -> bytes:
        from gpshare import signing

        practice_ca = self._practice_ca_pem()
        for candidate in [practice_ca, *self.trusted_issuers()]:
            if signing.issued_by(cert_pem, candidate):
                return candidate
        return practice_ca

    def disable_user(self, username: str) -> None:
        """Admin: stop a user unlocking (their slots are removed; records remain)."""
        self._require("disable_user")
        if username == self.user.username:
            raise ValidationFailed(
                "You cannot disable your own account.",
                [{"field": "username", "message": "own account"}],
            )
        target = repo.get_user(self.conn, username)
        if target is None:
            raise NotFound(f"No user called '{username}'.")
        if (
            target.role == "admin"
            and sum(1 for u in repo.list_users(self.conn) if u.role == "admin" and u.active) <= 1
        ):
            raise ValidationFailed(
                "This is the only active administrator; add another administrator first.", []
            )

        def work(conn: db.Connection) -> None:
            repo.set_user_active(conn, username, False)
            repo.deactivate_signing_keys(conn, username)

        self._write("user_disabled", work, details={"username": username})
        self.vault.disable_user(self.db_key, username)

    def reset_password(self, username: str) -> str:
        """Admin: set a one-time password the user must change at next unlock.

        The old signing key cannot be re-wrapped without the old password, so a new
        certificate is issued; letters signed with the old one still verify.
        """
        self._require("reset_password")
        target = repo.get_user(self.conn, username)
        if target is None:
            raise NotFound(f"No user called '{username}'.")
        temp = one_time_password()
        user_secret = self.vault.set_password(self.db_key, username, temp)

        def work(conn: db.Connection) -> None:
            repo.set_user_active(conn, username, True)
            repo.set_must_change_password(conn, username, True)
            if target.role in ("clinician", "lead"):
                self._issue_certificate(conn, target, user_secret)

        self._write("password_reset", work, details={"username": username})
        # A remembered login would still open the vault with the old key material.
        self.vault.forget_keyring_slot(self.db_key, username)
        return temp

    def change_password(self, old_password: str, new_password: str) -> None:
        """Change your own password: only your slot and your signing-key wrap change."""
        self._require("change_password")
        username = self.user.username
        context = [self.user.full_name, self.vault.practice_name]
        if (p := validate_password(new_password, username, context)) is not None:
            raise ValidationFailed(p, [{"field": "new_password", "message": p}])
        if new_password == old_password:
            raise ValidationFailed("Choose a new password different from the current one.", [])
        old_secret = self._verify_password(old_password)
        signing = repo.active_signing_key(self.conn, username)
        key_pem = None
        if signing is not None:
            key_pem = crypto.unwrap(
                crypto.subkey(old_secret, "signing key"),
                signing[1].nonce,
                signing[1].wrapped,
                self._signing_wrap_ad(username),
            )
        before = self.vault.slots_snapshot()
        new_secret = self.vault.set_password(self.db_key, username, new_password)

        def work(conn: db.Connection) -> None:
            repo.set_must_change_password(conn, username, False)
            if signing is not None and key_pem is not None:
                nonce, wrapped = crypto.wrap(
                    crypto.subkey(new_secret, "signing key"),
                    key_pem,
                    self._signing_wrap_ad(username),
                )
                repo.replace_signing_key_wrap(conn, signing[0], nonce, wrapped)

        try:
            self._write("password_changed", work, details={"username": username})
        except BaseException:
            # The database still wraps the signing key for the old password: keep them in step.
            self.vault.restore_slots(self.db_key, before)
            raise
        self._user_secret = new_secret
        self.vault.refresh_keyring(self.db_key, username, new_secret)
        self.user = replace(self.user, must_change_password=False)

    def verify_password(self, password: str) -> None:
        """Raise WrongPasswordError (audited) unless `password` is the acting user's."""
        self._require("verify_password")
        self._verify_password(password)

    def remember_login(self) -> None:
        """ "Remember me on this computer": a keyring slot for the acting user (audited).

        Raises KeyringUnavailableError with a plain message when no secure keyring exists.
        """
        self._require("remember_login")
        if self._user_secret is None:
            raise ServiceError("The vault is locked. Unlock it again to continue.")
        self.vault.enable_keyring(self.db_key, self.user.username, self._user_secret)
        self.audit("login_remembered", None, {"username": self.user.username})

    def forget_login(self) -> None:
        """Forget the remembered login on this computer (audited)."""
        self._require("remember_login")
        self.vault.disable_keyring(self.db_key, self.user.username)
        self.audit("login_forgotten", None, {"username": self.user.username})

    def lock(self, reason: str = "manual") -> None:
        """Audit the lock, then drop the key and the connection."""
        if self.is_open:
            with contextlib.suppress(StoreError, db.DatabaseError):
                self.audit("lock", None, {"reason": reason})
        self.close()

    def _unlock_secret(self) -> bytes:
        """The user secret derived from the password this session was unlocked with."""
        if not self._password_unlocked or not self._user_secret:
            raise ServiceError("Type your password to sign the letter.")
        return self._user_secret

    def _verify_password(self, password: str) -> bytes:
        from gpshare.store.errors import WrongPasswordError

        slot = self.vault.password_slot(self.user.username)
        opened = self.vault._open_slot(slot, password.encode("utf-8")) if slot else None
        if opened is None:
            self.audit("password_check_failed", None, {"username": self.user.username})
            raise WrongPasswordError(
                "That is not your current password. Type it again (check Caps Lock)."
            )
        return opened[1]

    # ----- settings ---------------------------------------------------------------------------
    def settings(self) -> dict[str, str]:
        """Practice settings (any unlocked user may read; letters need them)."""
        self._require("read_settings")
        values = dict(DEFAULT_SETTINGS)
        values["practice_name"] = self.vault.practice_name
        stored = repo.get_settings(self.conn)
        values.update(
            {k: v for k, v in stored.items() if k in DEFAULT_SETTINGS}
        )  # not internal flags
        return values

    def update_settings(self, changes: Mapping[str, str]) -> None:
        """Admin: change settings; each value is validated with a field-level message."""
        self._require("change_settings")
        errors = []
        clean: dict[str, str] = {}
        for key, raw in changes.items():
            value = str(raw).strip()
            label = SETTING_LABELS.get(key)
            if label is None:
                errors.append({"field": key, "message": f"'{key}' is not a setting gpshare knows."})
                continue
            if key in practice_settings.DEFAULTS:
                found = practice_settings.problem(key, value, today(self.clock))
                if found:
                    errors.append({"field": key, "message": found})
                    continue
            if key in ("auto_lock_minutes", "backup_keep", "written_confirmation_hours"):
                lo, hi = {
                    "auto_lock_minutes": (1, 60),
                    "backup_keep": (1, 100),
                    "written_confirmation_hours": (1, 168),
                }[key]
                if not value.isdigit() or not lo <= int(value) <= hi:
                    errors.append(
                        {
                            "field": key,
                            "message": f"{label} must be a whole number from {lo} to {hi}.",
                        }
                    )
                    continue
            if (
                key == "practice_ods_code"
                and value
                and not re.fullmatch(r"[A-Za-z0-9]{3,6}", value)
            ):
                errors.append(
                    {"field": key, "message": "ODS code is 3–6 letters and digits, e.g. B82005."}
                )
                continue
            if (
                key == "practice_secure_email"
                and value
                and not re.fullmatch(r"[^@\s]+@[^@\s]+\.[^@\s]+", value)
            ):
                errors.append(
                    {"field": key, "message": "Secure email must look like name@nhs.net."}
                )
                continue
            if key == "local_closure_days" and value:
                bad = [d for d in re.split(r"[,\s]+", value) if d and parse_date(d) is None]
                if bad:
                    errors.append(
                        {
                            "field": key,
                            "message": f"Closure days must be dates like 2026-12-29; not understood: {', '.join(bad)}.",
                        }
                    )
                    continue
            if len(value) > 500:
                errors.append(
                    {"field": key, "message": f"{label} is too long (500 characters at most)."}
                )
                continue
            clean[key] = value
        if errors:
            raise ValidationFailed("; ".join(e["message"] for e in errors), errors)

        def work(c: db.Connection) -> None:
            repo.put_settings(c, clean)
            if REFERRAL_SETTING_KEYS & set(clean):
                # Due dates of unacknowledged and undecided referrals depend on these.
                _store_referral_states(
                    c,
                    repo.completed_records_light(c, statuses=("completed", "sent", "acknowledged")),
                )

        self._write("settings_changed", work, details={"keys": sorted(clean)})

    # ----- forms and the navigator ----------------------------------------------------------
    def form_for(self, record: Record) -> Form:
        """The form version a record was made with."""
        self._require("read_form")
        return load_form_by_id(record.form_id, record.form_version)

    def prior_records(
        self, answers: Mapping[str, Any], exclude: str | None = None
    ) -> list[navigator.PriorRecord]:
        """Earlier completed records about the same child, for chronology prompts.

        Clinicians and leads only; audited whenever it finds any (the wizard asks on each
        change of the child's identity, and a miss discloses nothing).
        """
        self._require("assess", record_id=exclude)
        prior = self._prior_records(answers, exclude)
        if prior:
            self.audit(
                "prior_records_viewed",
                exclude,
                {"records": [p.record_id for p in prior]},
            )
        return prior

    def _prior_records(
        self, answers: Mapping[str, Any], exclude: str | None = None
    ) -> list[navigator.PriorRecord]:
        raw_nhs = answers.get("nhs_number")
        nhs = normalise_nhs(raw_nhs) if isinstance(raw_nhs, str) else None
        family = (
            answers.get("child_family_name")
            if isinstance(answers.get("child_family_name"), str)
            else None
        )
        dob = _iso_date(answers.get("date_of_birth"))
        found = repo.records_for_child(self.conn, nhs, family, dob, exclude)
        prior = []
        for rec, match in found:
            created = parse_date(rec.completed or rec.created)
            assert created is not None
            prior.append(
                navigator.PriorRecord(
                    record_id=rec.id,
                    created=created,
                    pathway=rec.pathway,
                    decision=rec.answers.get("decision"),
                    review_date=parse_date(rec.answers.get("review_date")),
                    author=rec.clinician_name or rec.clinician,
                    match=match,
                )
            )
        return prior

    def evaluate(
        self,
        form: Form,
        answers: Mapping[str, Any],
        exclude: str | None = None,
        prior: Sequence[navigator.PriorRecord] | None = None,
    ) -> navigator.Evaluation:
        """Run the navigator with today's date and the child's earlier records.

        Pass `prior` (from prior_records) while the child's identity is unchanged: the wizard
        evaluates on every keystroke and already keeps it.
        """
        self._require("assess")
        # Unaudited: the evaluation says only whether earlier records exist, not what they hold.
        found = self._prior_records(answers, exclude) if prior is None else prior
        context = navigator.Context(
            today=today(self.clock), prior_records=tuple(found), settings=self.rule_settings()
        )
        return navigator.evaluate(form, answers, context)

    def rule_settings(self) -> dict[str, str]:
        """The practice settings form rules read (RULE_SETTINGS), empty when not set."""
        self._require("read_settings")
        stored = repo.get_settings(self.conn)
        return {key: str(stored.get(key) or "") for key in RULE_SETTINGS}

    def carry_draft_forward(self, record_id: str) -> tuple[Record, list[str]]:
        """Carry an own draft made with an older form version to the newest (audited).

        Returns the draft (unchanged when it already uses the newest version) and one line
        per mapped or dropped answer, for the wizard to list on the first step it shows.
        Dropped answers go into the draft's history (carry.HISTORY_KEY), never lost.
        """
        self._require("save_draft")
        record = self._own_draft(record_id, "save_draft")
        newest = load_form_by_id(record.form_id)
        if (record.form_version, newest.version) != (1, 2):  # the only mapping there is
            return record, []
        old = self.form_for(record)
        carried = carry.carry_v1_to_v2(record.answers, old, newest)
        now = self.now_iso()
        history = list(record.answers.get(carry.HISTORY_KEY) or [])
        history += carried.history_entries(now)
        data = _json_safe({**carried.answers, carry.HISTORY_KEY: history})
        step = newest.steps[0].id

        def work(conn: db.Connection) -> None:
            repo.move_draft_to_form(conn, record_id, newest.version, data, step, now)

        self._write("draft_carried_forward", work, record_id, carried.audit_details())
        moved = repo.get_record(self.conn, record_id)
        assert moved is not None
        return moved, carry.change_lines(carried, old)

    # ----- records ------------------------------------------------------------------------------
    def start_assessment(
        self, form_id: str = DEFAULT_FORM_ID, answers: Mapping[str, Any] | None = None
    ) -> Record:
        """Create a new draft owned by the acting clinician or lead."""
        self._require("start_assessment")
        form = load_form_by_id(form_id)
        now = self.now_iso()
        data = practice_settings.prefill(
            (f.id for f in form.all_fields()), self.settings(), answers or {}
        )
        record = Record(
            new_record_id(),
            self.user.username,
            "draft",
            form.id,
            form.version,
            data,
            form.steps[0].id,
            None,
            now,
            now,
            None,
            _child(data),
            self.user.full_name,
        )
        self._write(
            "record_created",
            lambda c: repo.insert_record(c, record, _nhs(data)),
            record.id,
            {"form": form.id, "version": form.version},
        )
        return record

    def assessment_defaults(self, form_id: str = DEFAULT_FORM_ID) -> dict[str, Any]:
        """The answers a new assessment starts with (from practice settings), for the wizard to
        show before the first save; start_assessment applies the same pre-fill.

        It reveals only practice settings, which any unlocked user may read (see settings());
        starting the assessment is what start_assessment guards.
        """
        self._require("read_settings")
        form = load_form_by_id(form_id)
        return practice_settings.prefill((f.id for f in form.all_fields()), self.settings(), {})

    def _own_draft(self, record_id: str, action: str) -> Record:
        record = repo.get_record(self.conn, record_id)
        if record is None:
            raise NotFound(f"No record {record_id}.")
        if record.clinician != self.user.username:
            raise self._deny(
                action, record_id, "Not permitted: you can only change your own drafts."
            )
        if not record.is_draft:
            raise ValidationFailed(
                f"Record {record_id} is completed and cannot be changed; add an addendum instead.",
                [],
            )
        return record

    def save_draft(
        self,
        record_id: str,
        answers: Mapping[str, Any],
        current_step: str | None = None,
        *,
        autosave: bool = False,
    ) -> Record:
        """Save a draft's answers (encrypted). Autosaves are audited at most every 5 minutes."""
        self._require("save_draft")
        record = self._own_draft(record_id, "save_draft")
        data = _json_safe(answers)
        now = self.now_iso()
        step = current_step or record.current_step

        def work(conn: db.Connection) -> None:
            repo.update_draft(conn, record_id, data, step, now, _nhs(data))
            repo.put_search_text(conn, record_id, _search_text(data))

        if autosave and self._recent_draft_audit(record_id):
            with db.transaction(self.conn):
                work(self.conn)
        else:
            self._write("draft_saved", work, record_id, {"autosave": autosave, "step": step})
        return replace(record, answers=data, current_step=step, updated=now, child=_child(data))

    def _recent_draft_audit(self, record_id: str) -> bool:
        row = self.conn.execute(
            "SELECT at FROM audit WHERE record_id = ? AND action = 'draft_saved' ORDER BY seq DESC LIMIT 1",
            (record_id,),
        ).fetchone()
        if not row:
            return False
        last = datetime.fromisoformat(str(row[0]))
        return (self.clock.now() - last).total_seconds() < DRAFT_AUDIT_COALESCE_SECONDS

    def complete(
        self, record_id: str, answers: Mapping[str, Any] | None = None
    ) -> tuple[Record, navigator.Evaluation]:
        """Validate the whole form; if clean, freeze answers + form version + outcome.

        With errors the answers are kept as a draft and ValidationFailed lists them.
        """
        self._require("complete_record")
        record = self._own_draft(record_id, "complete_record")
        data = _json_safe(answers) if answers is not None else record.answers
        form = self.form_for(record)
        evaluation = self.evaluate(form, data, exclude=record_id)
        if evaluation.errors:
            self.save_draft(record_id, data, record.current_step)
            raise ValidationFailed(
                f"The assessment cannot be completed yet: {len(evaluation.errors)} item(s) need attention.",
                evaluation.errors,
            )
        cleaned = dict(evaluation.cleaned)
        if isinstance(data.get(carry.HISTORY_KEY), list):  # keep a carried draft's history
            cleaned[carry.HISTORY_KEY] = data[carry.HISTORY_KEY]
        outcome = evaluation.outcome.to_dict()
        now = self.now_iso()

        def work(conn: db.Connection) -> None:
            repo.complete_record(conn, record_id, cleaned, outcome, now, _nhs(cleaned))
            repo.put_links(conn, record_id, carer_keys(cleaned), address_key(cleaned))
            repo.put_search_text(conn, record_id, _search_text(cleaned))
            _store_referral_states(conn, repo.completed_records_light(conn, record_ids=[record_id]))

        self._write(
            "record_completed",
            work,
            record_id,
            {
                "pathway": outcome.get("pathway"),
                "consent_basis": outcome.get("consent_basis"),
                "form_version": form.version,
            },
        )
        completed = repo.get_record(self.conn, record_id)
        assert completed is not None
        return completed, evaluation

    def _readable(self, record_id: str, action: str) -> Record:
        record = repo.get_record(self.conn, record_id)
        if record is None:
            raise NotFound(
                f"No record called {record_id}. Check the reference (it looks like SG-XXXX-XXXX)."
            )
        if self.user.role == "lead" or record.clinician == self.user.username:
            return record
        raise self._deny(
            action, record_id, "Not permitted for your role: you can only open your own records."
        )

    def get_record(self, record_id: str, *, audit_view: bool = True) -> Record:
        """One record (own, or any for a lead); the view is audited."""
        self._require("view_record", record_id=record_id)
        record = self._readable(record_id, "view_record")
        if audit_view:
            self.audit("record_viewed", record_id)
        return record

    def list_records(
        self,
        flt: repo.RecordFilter | None = None,
        limit: int | None = None,
        offset: int = 0,
        *,
        light: bool = False,
    ) -> list[Record]:
        """Clinicians see their own records; leads see all. `light`: without the answers
        (enough for lists and referral states)."""
        self._require("list_records")
        flt = flt or repo.RecordFilter()
        if self.user.role != "lead":
            flt = replace(flt, clinician=self.user.username)
        return repo.list_records(self.conn, flt, limit, offset, light=light)

    def count_records(self, flt: repo.RecordFilter | None = None) -> int:
        self._require("list_records")
        flt = flt or repo.RecordFilter()
        if self.user.role != "lead":
            flt = replace(flt, clinician=self.user.username)
        return repo.count_records(self.conn, flt)

    def add_addendum(self, record_id: str, text: str) -> Addendum:
        """Append a later fact to a completed record (its author or a lead)."""
        self._require("add_addendum", record_id=record_id)
        record = self._readable(record_id, "add_addendum")
        body = text.strip()
        if record.is_draft:
            raise ValidationFailed(
                "This record is still a draft: change the draft itself instead of adding an addendum.",
                [{"field": "text", "message": "the record is a draft"}],
            )
        if not body:
            raise ValidationFailed(
                "The addendum is empty: type the new information.",
                [{"field": "text", "message": "empty"}],
            )
        if len(body) > 5000:
            raise ValidationFailed(
                f"The addendum is {len(body)} characters; 5000 is the limit. Shorten it or add two.",
                [{"field": "text", "message": "too long"}],
            )
        if any(ord(ch) < 32 and ch not in "\n\t" for ch in body):
            raise ValidationFailed(
                "The addendum contains invisible control characters (often from pasting); remove them.",
                [{"field": "text", "message": "control characters"}],
            )
        now = self.now_iso()
        addendum_id = self._write(
            "addendum_added",
            lambda c: repo.add_addendum(c, record_id, self.user.username, now, body),
            record_id,
        )
        return Addendum(addendum_id, record_id, self.user.username, now, body)

    def addenda(self, record_id: str) -> list[Addendum]:
        self._require("view_record", record_id=record_id)
        self._readable(record_id, "view_record")
        return repo.addenda(self.conn, record_id)

    # ----- letters ------------------------------------------------------------------------------
    def letter_unavailable_reason(self, record: Record) -> str | None:
        """Why a record has no letter (None when a letter can be made)."""
        self._require("view_record", record_id=record.id)
        if record.is_draft:
            return "The assessment is still a draft: complete it first; the letter is made from the completed record."
        if not record.letter_required:
            return (
                "This record's decision was not to share now (monitor and review), so there is no referral letter. "
                "If the concern grows, start a new assessment."
            )
        return None

    def practice_details(self) -> Any:
        """Letterhead details from settings."""
        self._require("read_settings")
        from gpshare.letter import PracticeDetails

        values = self.settings()
        return PracticeDetails(
            values["practice_name"],
            values["practice_address"],
            values["practice_ods_code"],
            values["practice_phone"],
            values["practice_secure_email"],
        )

    def signing_certificate(self, username: str | None = None) -> bytes | None:
        """The PEM of a user's active signing certificate, if any."""
        self._require("read_certificates")
        found = repo.active_signing_key(self.conn, username or self.user.username)
        return found[1].cert_pem if found else None

    def _letter_template(self, form: Form) -> LetterTemplate:
        """The letter template of the record's form version, or a clear error if it is broken."""
        from gpshare import letter as letter_mod

        try:
            return letter_mod.letter_template_for(form)
        except LetterTemplateError as exc:
            raise ServiceError(
                f"The letter cannot be made because its template is missing or broken ({exc}). "
                "Reinstall gpshare or ask your supplier for help."
            ) from exc

    def generate_letter(self, record_id: str, password: str | None) -> LetterResult:
        """Build and sign the referral letter with the acting user's own key.

        The password is asked again because the signing key is wrapped with it: nobody
        else, not even an administrator, can sign as this clinician. `None` reuses the key
        derivation of this session's password unlock (one command line, one password, one
        Argon2id); sessions unlocked otherwise must pass the password.
        """
        from gpshare import letter as letter_mod
        from gpshare import signing

        self._require("sign_letter", record_id=record_id)
        record = self._readable(record_id, "sign_letter")
        if record.clinician != self.user.username:
            raise self._deny(
                "sign_letter",
                record_id,
                "Not permitted: only the clinician who completed the assessment can sign its letter.",
            )
        if (reason := self.letter_unavailable_reason(record)) is not None:
            raise ValidationFailed(reason, [])
        practice = self.practice_details()
        missing = letter_mod.missing_practice_details(practice)
        if missing:
            raise ValidationFailed(
                f"The practice details for the letterhead are incomplete (missing: {', '.join(missing)}). "
                "Ask the practice administrator to fill them in under Admin › Settings.",
                [{"field": "settings", "message": m} for m in missing],
            )
        signer = self._signing_key(password)
        ca_cert = self._issuer_of(signer.cert_pem)
        form = self.form_for(record)
        evaluation = navigator.evaluate(
            form,
            record.answers,
            navigator.Context(today=parse_date(record.completed) or today(self.clock)),
        )
        now = self.clock.now()
        data = self._letter_input(
            record,
            record.answers,
            record.outcome or {},
            datetime.fromisoformat(record.completed or record.created),
            now,
            evaluation.age,
        )
        try:
            pdf = letter_mod.build_letter(data)
            signed = signing.sign_pdf(
                pdf,
                signer,
                ca_cert,
                now=now,
                reason="Safeguarding referral",
                location=practice.name,
            )
        except signing.SigningError as exc:
            self.audit("letter_signing_failed", record_id, {"reason": type(exc).__name__})
            raise ServiceError(str(exc)) from exc
        digest = hashlib.sha256(signed).hexdigest()
        created = self.now_iso()
        letter_id = self._write(
            "letter_generated",
            lambda c: repo.add_letter(
                c, record_id, created, self.user.username, digest, signed, pdf
            ),
            record_id,
            {"sha256": digest},
        )
        return LetterResult(
            letter_id, record_id, digest, signed, letter_mod.letter_filename(record_id, now)
        )

    def _letter_input(
        self,
        record: Record,
        answers: Mapping[str, Any],
        outcome: Mapping[str, Any],
        completed_at: datetime,
        signed_at: datetime,
        child_age: int | None,
    ) -> Any:
        """The letter's inputs: one place, so the preview and the signed letter cannot differ."""
        from gpshare import letter as letter_mod

        form = self.form_for(record)
        practice = self.practice_details()
        prior = [
            letter_mod.PriorConcern(
                p.created, p.pathway or "", p.decision or "", p.review_date, p.author
            )
            for p in self._prior_records(answers, exclude=record.id)
            if p.created <= (parse_date(record.completed) or p.created)
        ]
        settings = self.settings()
        return letter_mod.LetterInput(
            record_id=record.id,
            practice=practice,
            referrer=letter_mod.Referrer(
                self.user.full_name,
                self.user.role_title,
                self.user.gmc_number,
                f"{settings['practice_phone']} · {settings['practice_secure_email']}",
            ),
            answers=answers,
            outcome=outcome,
            completed_at=completed_at,
            signed_at=signed_at,
            prior_concerns=prior,
            option_label=form.option_label,
            child_age=child_age,
            template=self._letter_template(form),
        )

    def preview_letter(self, record_id: str) -> bytes:
        """The letter a draft would get if it were completed and signed now, unsigned and
        marked "Draft – not signed" on every page. Only its clinician may preview it.

        Raises ValidationFailed (with the reason) when the draft cannot be completed yet or
        needs no letter.
        """
        from gpshare import letter as letter_mod

        self._require("sign_letter", record_id=record_id)
        record = self._own_draft(record_id, "preview_letter")
        form = self.form_for(record)
        evaluation = self.evaluate(form, record.answers, exclude=record_id)
        if evaluation.errors:
            raise ValidationFailed(
                "The letter can be previewed once every item on the check page is answered.",
                evaluation.errors,
            )
        outcome = evaluation.outcome.to_dict()
        if not outcome.get("letter_required"):
            raise ValidationFailed(
                "This decision needs no referral letter, so there is nothing to preview.", []
            )
        missing = letter_mod.missing_practice_details(self.practice_details())
        if missing:
            raise ValidationFailed(
                f"The practice details for the letterhead are incomplete (missing: {', '.join(missing)}). "
                "Ask the practice administrator to fill them in under Admin › Settings.",
                [{"field": "settings", "message": m} for m in missing],
            )
        now = self.clock.now()
        # Completion stores the seconds-precise ISO time; the preview uses the same rounding.
        completed_at = datetime.fromisoformat(now.isoformat(timespec="seconds"))
        data = self._letter_input(
            record, evaluation.cleaned, outcome, completed_at, now, evaluation.age
        )
        return letter_mod.build_letter(data, draft_mark=letter_mod.DRAFT_MARK)

    def _signing_key(self, password: str | None) -> Any:
        """The acting user's signing key and certificate, unwrapped with their own password."""
        from gpshare import signing

        stored = repo.active_signing_key(self.conn, self.user.username)
        if stored is None:
            raise ServiceError(
                "You have no signing certificate yet. Ask the practice administrator to issue one "
                "(Admin › Users › Reset password issues a new certificate)."
            )
        user_secret = (
            self._verify_password(password) if password is not None else self._unlock_secret()
        )
        key_pem = crypto.unwrap(
            crypto.subkey(user_secret, "signing key"),
            stored[1].nonce,
            stored[1].wrapped,
            self._signing_wrap_ad(self.user.username),
        )
        if key_pem is None:
            raise ServiceError(
                "Your signing key cannot be opened with your password. Ask the practice "
                "administrator to issue a new certificate."
            )
        return signing.KeyAndCert(key_pem, stored[1].cert_pem)

    def protected_copy(self, letter_id: int, login_password: str, pdf_password: str) -> bytes:
        """An AES-256 password-protected, freshly signed copy of a letter for secure email.

        The PDF password is never stored. The copy is encrypted first and then signed,
        because encrypting a signed PDF would break its signature.
        """
        from gpshare import signing

        self._require("letter_protected_copy")
        if len(pdf_password) < 10:
            raise ValidationFailed(
                "The PDF password must be at least 10 characters; send it to the recipient "
                "separately (for example by phone).",
                [{"field": "pdf_password", "message": "too short"}],
            )
        if pdf_password == login_password:
            raise ValidationFailed(
                "Do not use your gpshare password as the PDF password; choose a different one.",
                [{"field": "pdf_password", "message": "same as login password"}],
            )
        found = repo.letter_pdf(self.conn, letter_id)
        if found is None:
            raise NotFound(f"No letter {letter_id}.")
        meta = found[0]
        record = self._readable(meta.record_id, "letter_protected_copy")
        if record.clinician != self.user.username:
            raise self._deny(
                "letter_protected_copy",
                record.id,
                "Not permitted: only the clinician who signed the letter can make a protected copy.",
            )
        unsigned = repo.letter_unsigned_pdf(self.conn, letter_id)
        if unsigned is None:
            raise ServiceError(
                "This letter was made by an older version without a copy for protection; "
                "generate a new letter from the record first."
            )
        signer = self._signing_key(login_password)
        ca_cert = self._issuer_of(signer.cert_pem)
        try:
            encrypted = signing.encrypt_pdf(unsigned, pdf_password.encode("utf-8"))
            signed = signing.sign_pdf(
                encrypted,
                signer,
                ca_cert,
                now=self.clock.now(),
                reason="Safeguarding referral",
                location=self.settings()["practice_name"],
                pdf_password=pdf_password.encode("utf-8"),
            )
        except signing.SigningError as exc:
            raise ServiceError(str(exc)) from exc
        self.audit(
            "letter_protected_copy",
            record.id,
            {"letter_id": letter_id, "sha256": hashlib.sha256(signed).hexdigest()},
        )
        return signed

    def _practice_ca_pem(self) -> bytes:
        """The practice CA certificate (public part)."""
        return self._stored_ca().cert_pem

    def letters(self, record_id: str) -> list[Any]:
        """The signed letters stored with a record."""
        self._require("view_record", record_id=record_id)
        self._readable(record_id, "view_record")
        return repo.letters(self.conn, record_id)

    def open_letter(self, letter_id: int) -> LetterResult:
        """A stored letter's exact signed bytes (audited)."""
        from gpshare.letter import letter_filename

        self._require("view_letter")
        found = repo.letter_pdf(self.conn, letter_id)
        if found is None:
            raise NotFound(f"No letter {letter_id}.")
        meta, pdf = found
        self._readable(meta.record_id, "view_letter")
        self.audit("letter_opened", meta.record_id, {"letter_id": letter_id})
        created = datetime.fromisoformat(meta.created)
        return LetterResult(
            meta.id, meta.record_id, meta.sha256, pdf, letter_filename(meta.record_id, created)
        )

    def record_letter_event(
        self, letter_id: int, action: str, details: Mapping[str, Any] | None = None
    ) -> None:
        """Audit a print, save, export or protected copy of a letter."""
        self._require("view_letter")
        if action not in (
            "letter_printed",
            "letter_saved",
            "letter_exported",
            "letter_protected_copy",
        ):
            raise ValueError(action)
        found = repo.letter_pdf(self.conn, letter_id)
        if found is None:
            raise NotFound(f"No letter {letter_id}.")
        self._readable(found[0].record_id, action)
        self.audit(action, found[0].record_id, {"letter_id": letter_id, **dict(details or {})})

    def save_letter(self, letter_id: int, target: Path, *, action: str = "letter_saved") -> Path:
        """Write a stored letter's signed bytes atomically (0600) and audit it."""
        from gpshare.store.files import atomic_write

        result = self.open_letter(letter_id)
        atomic_write(Path(target), result.pdf)
        self.record_letter_event(letter_id, action, {"sha256": result.sha256})
        return Path(target)

    def practice_ca_pem(self) -> bytes:
        """The practice CA certificate (public), for local authorities to trust."""
        self._require("export_ca")
        cert = self._practice_ca_pem()
        self.audit("ca_exported")
        return cert

    def verify_letter(self, pdf: bytes) -> tuple[Any, Any]:
        """(Verification against the practice CA, the stored letter whose hash matches or None)."""
        from gpshare import signing

        self._require("verify_letter")

        cert = self._practice_ca_pem()
        result = signing.verify_pdf(pdf, [cert, *self.trusted_issuers()])
        match = repo.letter_by_hash(self.conn, hashlib.sha256(pdf).hexdigest())
        self.audit(
            "letter_verified",
            match.record_id if match else None,
            {"ok": result.ok, "matched": match is not None},
        )
        return result, match

    # ----- follow-up, review, chronology, dashboard, exports (lead workspace) -----------------
    def referral_state(self, record_id: str) -> ReferralState | None:
        """The follow-up state of one record the user may read (None while it is a draft):
        lets a clinician see whether their letter is recorded as sent."""
        self._require("view_record", record_id=record_id)
        record = self._readable(record_id, "view_record")
        return self.referral_states([record]).get(record.id)

    def referral_states(self, records: Sequence[Record]) -> dict[str, ReferralState]:
        """Follow-up state of each completed record (status, next action, overdue)."""
        self._require("list_records")
        completed = _with_state_answers(self.conn, [r for r in records if r.status == "completed"])
        per = _followups_by_record(self.conn, completed)
        closures, hours = _referral_rules(self.settings())
        now = today(self.clock)
        return {
            r.id: followup_mod.referral_state(r, per.get(r.id, []), now, closures, hours)
            for r in completed
        }

    def record_followup(
        self,
        record_id: str,
        event: str,
        *,
        at: datetime | None = None,
        note: str | None = None,
        decision: str | None = None,
        details: Mapping[str, str] | None = None,
    ) -> FollowUp:
        """Record a referral follow-up event.

        Clinicians: sent/acknowledged/decision/feedback on their own records. Leads: any
        event on any record, and only they escalate or close.
        """
        self._require("record_followup", record_id=record_id)
        record = self._readable(record_id, "record_followup")
        if self.user.role != "lead" and (
            event in followup_mod.LEAD_ONLY_EVENTS or record.clinician != self.user.username
        ):
            raise self._deny(
                f"followup_{event}",
                record_id,
                "Not permitted for your role: only the practice safeguarding lead can escalate or close a "
                "referral, or record follow-up on another clinician's record.",
            )
        if record.is_draft:
            raise ValidationFailed(
                "The assessment is still a draft; complete it before recording follow-up.",
                [{"field": "record", "message": "the record is a draft"}],
            )
        state = self.referral_states([record])[record.id]
        problem = followup_mod.check_event(event, decision, state)
        if problem:
            raise ValidationFailed(problem, [{"field": "event", "message": problem}])
        when = at or self.clock.now()
        if when > self.clock.now() + timedelta(minutes=5):
            raise ValidationFailed(
                "The follow-up time is in the future; enter when it actually happened.",
                [{"field": "at", "message": "in the future"}],
            )
        if record.completed and when.isoformat() < record.completed[:19]:
            raise ValidationFailed(
                "The follow-up time is before the assessment was completed; check the date.",
                [{"field": "at", "message": "before completion"}],
            )
        details = dict(details or {})
        if event == "fgm_police_reported":
            reference = str(details.get("reference", "")).strip()
            if not reference or len(reference) > 100 or not reference.isprintable():
                raise ValidationFailed(
                    "Enter the police (101) reference for the FGM report: plain text of at most "
                    "100 characters.",
                    [{"field": "reference", "message": "the 101 reference is required"}],
                )
            details["reference"] = reference
        text = (note or "").strip() or None
        if text and (len(text) > 2000 or any(ord(ch) < 32 and ch not in "\n\t" for ch in text)):
            raise ValidationFailed(
                "The note must be plain text of at most 2000 characters.",
                [{"field": "note", "message": "invalid"}],
            )
        fu = FollowUp(
            0,
            record_id,
            event,
            when.isoformat(timespec="seconds"),
            self.user.username,
            self.now_iso(),
            decision,
            text,
            details,
        )

        def work(c: db.Connection) -> int:
            fu_id = repo.add_followup(c, fu)
            _store_referral_states(c, [record])
            return fu_id

        new_id = self._write(
            "followup_recorded",
            work,
            record_id,
            {"event": event, "decision": decision},
        )
        return replace(fu, id=new_id)

    def followups(self, record_id: str) -> list[FollowUp]:
        self._require("view_record", record_id=record_id)
        self._readable(record_id, "view_record")
        return repo.followups(self.conn, [record_id])

    def needs_action(self) -> list[followup_mod.NeedsAction]:
        """Overdue acknowledgements, missing feedback, passed review dates (lead: all; clinician: own)."""
        self._require("needs_action")
        now = today(self.clock)
        horizon = (now + timedelta(days=followup_mod.NEEDS_ACTION_HORIZON_DAYS)).isoformat()
        clinician = None if self.user.role == "lead" else self.user.username
        # The stored states (migration 0006) answer this from one covering index, earliest
        # due first — the order followup.needs_action gives (overdue ones fall due earlier).
        names = {u.username: u.full_name for u in repo.list_users(self.conn)}
        items = []
        rows = repo.due_referrals(self.conn, horizon, clinician)
        rows += repo.referrals_with_action(
            self.conn, followup_mod.DELAYED_SHARING_ACTION, horizon, clinician
        )
        for record_id, author, given, family, action, due_text in rows:
            due = date.fromisoformat(due_text)
            child = ChildSummary(given or "", family or "", None, None).display_name
            items.append(
                followup_mod.NeedsAction(
                    record_id, child, names.get(author) or author, action, due, due < now
                )
            )
        return items

    def add_review(
        self, record_id: str, verdict: str, comments: str = "", learning: str = ""
    ) -> Review:
        """Lead: 'decision reasonable' or 'needs discussion', with comments and learning (append-only)."""
        self._require("lead_review", record_id=record_id)
        record = self._readable(record_id, "lead_review")
        if record.is_draft:
            raise ValidationFailed("Only completed records can be reviewed.", [])
        if verdict not in ("reasonable", "needs_discussion"):
            raise ValidationFailed(
                "Choose 'reasonable' or 'needs_discussion'.",
                [{"field": "verdict", "message": "invalid"}],
            )
        if verdict == "needs_discussion" and not comments.strip():
            raise ValidationFailed(
                "Say what needs discussing in the comments.",
                [{"field": "comments", "message": "required"}],
            )
        for label, value in (("comments", comments), ("learning", learning)):
            if len(value) > 5000:
                raise ValidationFailed(
                    f"The {label} are too long (5000 characters at most).",
                    [{"field": label, "message": "too long"}],
                )
        review = Review(
            0,
            record_id,
            self.user.username,
            self.now_iso(),
            verdict,
            comments.strip() or None,
            learning.strip() or None,
        )
        new_id = self._write(
            "lead_review_added",
            lambda c: repo.add_review(c, review),
            record_id,
            {"verdict": verdict},
        )
        return replace(review, id=new_id)

    def reviews(self, record_id: str) -> list[Review]:
        self._require("view_record", record_id=record_id)
        self._readable(record_id, "view_record")
        return repo.reviews(self.conn, record_id)

    def record_access_log(self, record_id: str) -> list[AuditEvent]:
        """Lead: who viewed, printed, exported a record, and when."""
        self._require("record_access_log", record_id=record_id)
        return repo.audit_events(self.conn, repo.AuditFilter(record_id=record_id), limit=None)

    def child_chronology(self, record_id: str) -> tuple[list[ChronologyEntry], list[HouseholdLink]]:
        """Lead: every record for the record's child in time order, plus household links to confirm."""
        self._require("child_chronology", record_id=record_id)
        record = self._readable(record_id, "child_chronology")
        same = [record] + [
            r
            for r, _m in repo.records_for_child(
                self.conn,
                record.child.nhs_number,
                record.child.family_name,
                record.child.date_of_birth,
                record.id,
            )
        ]
        ids = [r.id for r in same]
        entries = build_chronology(
            same,
            repo.followups(self.conn, ids),
            [rv for i in ids for rv in repo.reviews(self.conn, i)],
            [a for i in ids for a in repo.addenda(self.conn, i)],
        )
        carers = {key for r in same for key in carer_keys(r.answers)}
        addresses = {address_key(r.answers) for r in same} - {""}
        others = repo.linked_records(self.conn, carers, addresses)
        self.audit("chronology_viewed", record_id, {"records": len(same)})
        decided = repo.household_link_decisions(self.conn, ids)
        links = [
            replace(link, status=decided.get(link.record.id, "to_confirm"))
            for link in household_links(same, others)
        ]
        return entries, links

    def review_household_link(
        self, record_id: str, other_record_id: str, decision: str, note: str = ""
    ) -> None:
        """Lead: confirm a suggested household link ('same_household') or reject it ('not_related')."""
        self._require("household_link_review", record_id=record_id)
        if decision not in ("same_household", "not_related"):
            raise ValidationFailed(
                "Choose 'same_household' or 'not_related'.",
                [{"field": "decision", "message": "invalid"}],
            )
        _entries, links = self.child_chronology(record_id)
        if other_record_id not in {link.record.id for link in links}:
            raise ValidationFailed(
                f"{other_record_id} is not a suggested household link of this child's records.",
                [{"field": "other_record_id", "message": "not a suggested link"}],
            )
        text = note.strip() or None
        if text and len(text) > 2000:
            raise ValidationFailed(
                "The note is too long (2000 characters at most).",
                [{"field": "note", "message": "too long"}],
            )
        now = self.now_iso()
        self._write(
            "household_link_reviewed",
            lambda c: repo.add_household_link_review(
                c, record_id, other_record_id, decision, self.user.username, now, text
            ),
            record_id,
            {"other_record_id": other_record_id, "decision": decision},
        )

    def dashboard(self, date_from: str | None = None, date_to: str | None = None) -> Dashboard:
        """Lead: monthly counts by pathway and consent basis, medians, overdue counts."""
        self._require("dashboard")
        rows = repo.dashboard_rows(self.conn, date_from, date_to, with_timings=False)
        # Overdue counts and send/acknowledge times come from the stored states (0006).
        overdue = repo.overdue_counts(self.conn, today(self.clock).isoformat(), date_from, date_to)
        timings = repo.send_timings(self.conn, date_from, date_to)
        return build_dashboard(rows.by_month_pathway, rows.by_month_consent, timings, (), overdue)

    def export_records_csv(
        self,
        target: Path,
        flt: repo.RecordFilter | None = None,
        *,
        include_narratives: bool = False,
        progress: Callable[[int, int], None] | None = None,
        cancelled: Callable[[], bool] | None = None,
    ) -> int:
        """Lead: the filtered records table as CSV (narratives only when asked); atomic, 0600, audited.

        Streamed page by page to the file; `progress(done, total)` after each page, and when
        `cancelled()` turns true the export stops, leaving no file and no audit event.
        """
        from gpshare.exports import records_csv_chunks
        from gpshare.store.files import atomic_write_chunks

        self._require("export_records")
        total = self.count_records(flt) if progress else 0

        def rows() -> Iterator[tuple[Record, ReferralState | None]]:
            # Page through the records so a practice with 100 000 of them never holds every
            # record's answers in memory at once.
            offset = 0
            # Without narratives no answers are written: light records skip their JSON.
            light = not include_narratives
            while page := self.list_records(flt, limit=EXPORT_PAGE, offset=offset, light=light):
                if cancelled and cancelled():
                    raise Cancelled("The export was cancelled; no file was written.")
                states = self.referral_states(page)
                for record in page:
                    yield record, states.get(record.id)
                offset += len(page)
                if progress:
                    progress(offset, total)

        counted = [0]
        atomic_write_chunks(Path(target), records_csv_chunks(rows(), include_narratives, counted))
        count = counted[0]
        self.audit(
            "records_exported",
            None,
            {"format": "csv", "rows": count, "narratives": include_narratives},
        )
        return count

    def export_audit_pdf(self, target: Path, flt: repo.AuditFilter | None = None) -> int:
        """Lead/admin: printable audit report with the chain status; atomic, 0600, audited."""
        from gpshare.exports import audit_report_pdf
        from gpshare.store.files import atomic_write

        self._require("export_audit")
        flt = flt or repo.AuditFilter()
        report = audit.verify(self.conn, self._audit_key, self.vault.audit_head())
        events = repo.audit_events(self.conn, flt, limit=None)
        filters = ", ".join(f"{k}={v}" for k, v in vars(flt).items() if v)
        data = audit_report_pdf(
            practice=self.settings()["practice_name"],
            generated_by=self.user.full_name,
            generated_at=self.clock.now(),
            chain_summary=report.summary(),
            chain_ok=report.ok,
            events=events,
            record_count=repo.count_records(self.conn, repo.RecordFilter()),
            filters=filters,
        )
        atomic_write(Path(target), data)
        self.audit("audit_exported", None, {"format": "pdf", "events": len(events)})
        return len(events)

    # ----- audit and backups ------------------------------------------------------------------
    def verify_audit(self, progress: Callable[[int, int], None] | None = None) -> ChainReport:
        """Lead/admin: verify the hash chain against the head mirrored in vault.json."""
        self._require("verify_audit")
        report = audit.verify(self.conn, self._audit_key, self.vault.audit_head(), progress)
        self.audit(
            "audit_verified",
            None,
            {"ok": report.ok, "events": report.events, "broken_at": report.broken_at},
        )
        return report

    def audit_log(
        self, flt: repo.AuditFilter | None = None, limit: int | None = 500, offset: int = 0
    ) -> list[AuditEvent]:
        """Lead/admin: audit events, newest first."""
        self._require("read_audit_log")
        return repo.audit_events(self.conn, flt or repo.AuditFilter(), limit, offset)

    def backup_now(self, *, automatic: bool = False) -> Path:
        """Encrypted snapshot with rotation: admins on demand; anyone's session on close."""
        self._require("backup" if not automatic else "backup_on_close")
        keep = int(self.settings().get("backup_keep", backup.DEFAULT_KEEP))
        # Audit first so the snapshot contains its own backup event and a matching head.
        self.audit("backup_created", None, {"automatic": automatic})
        try:
            return backup.create_backup(self.conn, self.db_key, self.vault, self.clock.now(), keep)
        except StoreError as exc:
            # The event above promised a backup: say in the log that none was kept.
            self.audit("backup_failed", None, {"reason": exc.__class__.__name__})
            raise

    def list_backups(self) -> list[backup.BackupInfo]:
        self._require("list_backups")
        return backup.list_backups(self.vault)


def _iso_date(value: Any) -> str | None:
    """An ISO date from what the user typed (ISO or dd/mm/yyyy), else None."""
    if not isinstance(value, str) or not value.strip():
        return None
    text = value.strip()
    parsed = parse_date(text)
    if parsed is None:
        parts = text.replace("-", "/").replace(".", "/").split("/")
        if len(parts) == 3 and all(p.isdigit() for p in parts) and len(parts[2]) == 4:
            with contextlib.suppress(ValueError):
                parsed = date(int(parts[2]), int(parts[1]), int(parts[0]))
    return parsed.isoformat() if parsed else None


def _nhs(answers: Mapping[str, Any]) -> str | None:
    raw = answers.get("nhs_number")
    return normalise_nhs(raw) if isinstance(raw, str) else None


def _child(answers: Mapping[str, Any]) -> Any:
    from gpshare.records import ChildSummary

    def text(key: str) -> str:
        value = answers.get(key)
        return value.strip() if isinstance(value, str) else ""

    return ChildSummary(
        text("child_given_name"),
        text("child_family_name"),
        _nhs(answers),
        text("date_of_birth") or None,
    )


def _search_text(answers: Mapping[str, Any]) -> str:
    return "\n".join(
        str(answers[k]) for k in SEARCH_FIELDS if isinstance(answers.get(k), str) and answers[k]
    )


def _json_safe(answers: Mapping[str, Any]) -> dict[str, Any]:
    """Reject anything that is not plain JSON data (dict/list/str/int/float/bool/None)."""

    def ok(value: Any, depth: int = 0) -> bool:
        if depth > 4:
            return False
        if value is None or isinstance(value, (str, bool, int, float)):
            return True
        if isinstance(value, list):
            return all(ok(v, depth + 1) for v in value)
        if isinstance(value, dict):
            return all(isinstance(k, str) and ok(v, depth + 1) for k, v in value.items())
        return False

    if not isinstance(answers, Mapping) or not all(isinstance(k, str) for k in answers):
        raise ValidationFailed("Answers must be a JSON object of field ids to values.", [])
    bad = [k for k, v in answers.items() if not ok(v)]
    if bad:
        raise ValidationFailed(
            f"These answers are not plain values: {', '.join(sorted(bad))}.",
            [{"field": k, "message": "not a plain JSON value"} for k in bad],
        )
    return {k: v for k, v in answers.items()}


# ----- opening and creating vaults ---------------------------------------------------------


def damaged_database(exc: Exception) -> CorruptDatabaseError:
    """Map a low-level database failure to the message a practice can act on."""
    return CorruptDatabaseError(
        f"The vault's database is damaged ({exc}). Stop using it and ask the practice administrator to "
        "restore the latest backup (Admin › Backups, or 'gpshare restore')."
    )


def _backfill_household_links(conn: db.Connection) -> None:
    """Fill record_links for records completed before migration 0003 (once, idempotent).

    The keys are normalised in Python (Unicode case folding), which SQL cannot do, so this
    runs after the SQL migration rather than inside it.
    """
    if repo.get_settings(conn).get("household_links_backfilled") == "1":
        return
    with db.transaction(conn):
        for record in repo.records_without_links(conn):
            repo.put_links(conn, record.id, carer_keys(record.answers), address_key(record.answers))
        repo.put_settings(conn, {"household_links_backfilled": "1"})


INTEGRITY_CHECK_INTERVAL = timedelta(hours=24)


def _rollback_alarm(problem: str) -> RollbackError:
    return RollbackError(
        f"This vault has been rolled back or truncated: {problem}. Nothing has been changed "
        "and nothing was written. Do not use this vault: tell the practice administrator, who "
        "can restore the latest backup ('gpshare restore --vault DIR --user ADMIN'; the "
        "current files are kept aside in replaced-<time>/ for investigation)."
    )


def _check_anchors(
    vault: Vault, conn: db.Connection, db_key: bytes
) -> list[tuple[str, dict[str, Any]]]:
    """Compare the chain with vault.json's head and this computer's anchor before any write.

    Raises RollbackError naming the missing range; returns audit notes for the session.
    """
    notes: list[tuple[str, dict[str, Any]]] = []
    problem = audit.head_problem(conn, vault.audit_head())
    if problem:
        raise _rollback_alarm(problem)
    seen, anchor_issue = anchor.read(vault.vault_id, db_key)
    if anchor_issue:
        # Whoever can edit this file can also delete it, so an invalid one is noted, not fatal.
        notes.append(("rollback_anchor_invalid", {"problem": anchor_issue}))
    if seen is not None:
        floor = vault.restore_floor(after=seen.restores)
        problem = audit.anchor_problem(conn, (seen.seq, seen.hash), floor)
        if problem:
            raise _rollback_alarm(problem)
    latest = audit.latest(conn)
    if latest != vault.audit_head():
        # Killed between the commit and the header write: the one newer event is sealed.
        vault.set_audit_head(db_key, *latest)
    return notes


def _daily_integrity_check(
    vault: Vault, conn: db.Connection, db_key: bytes, clock: Clock
) -> list[tuple[str, dict[str, Any]]]:
    """At most daily on open: check every page's HMAC; refuse a damaged database.

    Runs in the unlocking thread: a few seconds once a day on a large vault (see
    docs/reliability.md).
    """
    last = vault.integrity_checked_at()
    now = clock.now()
    if last is not None and timedelta(0) <= now - last < INTEGRITY_CHECK_INTERVAL:
        return []
    problems = db.page_problems(conn)
    if problems:
        raise CorruptDatabaseError(
            f"The vault's database failed its integrity check ({problems[0]}): some of its "
            "pages are damaged. Nothing has been changed. Stop using it and ask the practice "
            "administrator to restore the latest backup ('gpshare restore --vault DIR --user ADMIN')."
        )
    vault.set_integrity_checked(db_key, now)
    return [("integrity_checked", {"ok": True, "previous": last.isoformat() if last else None})]


def _open_checked(
    vault: Vault, db_key: bytes, clock: Clock
) -> tuple[db.Connection, list[tuple[str, dict[str, Any]]]]:
    """Open the database, check anchors and (daily) integrity, then migrate.

    Returns the connection and audit notes to append once the session exists.
    """
    conn = db.open_database(vault.db_path, db_key)
    try:
        notes = _check_anchors(vault, conn, db_key)
        notes += _daily_integrity_check(vault, conn, db_key, clock)
    except db.DatabaseError as exc:
        conn.close()
        raise damaged_database(exc) from exc
    except BaseException:
        conn.close()
        raise
    conn.close()
    return _open_connection(vault, db_key, clock), notes


def _open_vault(folder: Path) -> Vault:
    """Finish or undo an interrupted restore, then read the header."""
    backup.finish_interrupted_restore(Path(folder))
    return Vault.open(folder)


def _remember_head(session: Session) -> None:
    """Raise this computer's anchor to the chain's current head (best effort, noted if not)."""
    seq, digest = audit.latest(session.conn)
    try:
        vault = session.vault
        anchor.write(vault.vault_id, session.db_key, seq, digest, vault.restore_number())
    except StoreError:
        session.audit("rollback_anchor_unwritable", None, {"dir": "user data folder"})


def _closure_days(text: str) -> list[date]:
    """Local closure days from the setting's text (dates separated by commas or spaces)."""
    days = []
    for token in re.split(r"[,\s]+", text):
        parsed = parse_date(token) if token else None
        if parsed:
            days.append(parsed)
    return days


def _referral_rules(settings: Mapping[str, str]) -> tuple[list[date], int]:
    """(local closure days, written-confirmation hours): the settings a referral state uses."""
    closures = _closure_days(settings.get("local_closure_days", ""))
    return closures, int(settings.get("written_confirmation_hours", "24") or 24)


def _followups_by_record(
    conn: db.Connection, records: Sequence[Record]
) -> dict[str, list[FollowUp]]:
    """The follow-up events of these records, grouped by record id (one query)."""
    per: dict[str, list[FollowUp]] = {}
    for event in repo.followups(conn, [r.id for r in records]):
        per.setdefault(event.record_id, []).append(event)
    return per


_STATE_ANSWERS = ("fgm_police_report", "fgm_discovered_on", "sharing_delay_reason")


def _with_state_answers(conn: db.Connection, records: list[Record]) -> list[Record]:
    """Give light records (lists, exports: no answers) the few answers a referral state
    depends on (R4's police report, R3's delay), so the records table and the CSV export
    show the same next action as Needs action and the record view."""
    light = [r.id for r in records if not any(k in r.answers for k in _STATE_ANSWERS)]
    if not light:
        return records
    found = {r.id: r.answers for r in repo.completed_records_light(conn, record_ids=light)}
    return [
        replace(r, answers={**r.answers, **{k: found[r.id].get(k) for k in _STATE_ANSWERS}})
        if r.id in found
        else r
        for r in records
    ]


def _store_referral_states(conn: db.Connection, records: Sequence[Record]) -> None:
    """Recompute and store the referral state of these completed records (migration 0006),
    inside the caller's transaction, with the practice's closure days and deadline."""
    closures, hours = _referral_rules(repo.get_settings(conn))
    for first in range(0, len(records), EXPORT_PAGE):
        page = [r for r in records[first : first + EXPORT_PAGE] if r.status == "completed"]
        per = _followups_by_record(conn, page)
        rows = []
        for r in page:
            # Status, action and due date do not depend on today (only `overdue` does,
            # and that is compared with today when read), so any day will do here.
            state = followup_mod.referral_state(r, per.get(r.id, []), date.min, closures, hours)
            rows.append(
                repo.StoredState(
                    r,
                    state.status,
                    state.next_action,
                    state.next_due.isoformat() if state.next_due else None,
                    state.sent_at.isoformat() if state.sent_at else None,
                    state.acknowledged_at.isoformat() if state.acknowledged_at else None,
                )
            )
        repo.put_referral_states(conn, rows)


def _backfill_referral_states(conn: db.Connection) -> None:
    """Fill the stored referral states of records completed before migration 0006 (once)."""
    if repo.get_settings(conn).get("referral_states_backfilled") == "1":
        return
    with db.transaction(conn):
        _store_referral_states(conn, repo.completed_records_light(conn))
        repo.put_settings(conn, {"referral_states_backfilled": "1"})


def _open_connection(vault: Vault, db_key: bytes, clock: Clock) -> db.Connection:
    conn = db.open_database(vault.db_path, db_key)
    if db.schema_version(conn) > db.LATEST_SCHEMA_VERSION:
        conn.close()
        from gpshare.store.errors import VaultFormatError

        raise VaultFormatError(
            "This vault's database was written by a newer gpshare. Install the latest version to open it."
        )
    if db.pending_migrations(conn):
        # An encrypted snapshot before any schema change, so a failed migration loses nothing.
        snapshot = backup.create_backup(
            conn, db_key, vault, clock.now(), keep=backup.DEFAULT_KEEP + 1
        )
        try:
            db.apply_migrations(conn)
        except db.DatabaseError as exc:
            conn.close()
            raise StoreError(
                f"Updating the vault to this version of gpshare failed ({exc}); the failed step was rolled "
                f"back and a backup taken just before is in {snapshot}. Keep using the previous version "
                "and contact support."
            ) from exc
    _backfill_household_links(conn)
    _backfill_referral_states(conn)
    return conn


def create_vault(
    folder: Path,
    *,
    practice_name: str,
    admin_username: str,
    admin_full_name: str,
    admin_password: str,
    clock: Clock | None = None,
    kdf: KdfParams | None = None,
) -> tuple[Session, str]:
    """Create a vault with its first administrator and practice CA; returns (session, recovery code)."""
    from gpshare import signing

    clock = clock or SystemClock()
    problems = [
        p
        for p in (
            validate_username(admin_username),
            validate_password(admin_password, admin_username, [admin_full_name, practice_name]),
        )
        if p
    ]
    if not practice_name.strip():
        problems.append("Enter the practice name.")
    if problems:
        raise ValidationFailed(
            " ".join(problems), [{"field": "init", "message": p} for p in problems]
        )
    vault, db_key, user_secret, recovery = Vault.create(
        folder,
        practice_name=practice_name.strip(),
        admin_username=admin_username,
        admin_password=admin_password,
        clock=clock,
        kdf=kdf,
    )
    conn = db.open_database(vault.db_path, db_key, create=True)
    db.apply_migrations(conn)
    admin = User(
        admin_username,
        admin_full_name.strip() or admin_username,
        "admin",
        None,
        True,
        False,
        clock.now().isoformat(timespec="seconds"),
    )
    session = Session(vault, conn, admin, db_key, user_secret, clock)
    ca = signing.create_practice_ca(practice_name.strip(), clock.now())
    nonce, wrapped = crypto.wrap(
        crypto.subkey(db_key, "practice ca key"),
        ca.key_pem,
        f"{vault.vault_id}:practice-ca".encode(),
    )

    def work(c: db.Connection) -> None:
        repo.insert_user(c, admin)
        repo.put_practice_ca(c, ca.cert_pem, nonce, wrapped, session.now_iso())
        repo.put_settings(c, {"practice_name": practice_name.strip()})
        repo.put_settings(c, {"referral_states_backfilled": "1"})  # nothing to backfill

    session._write("vault_created", work, details={"admin": admin_username})
    return session, recovery


def open_session(folder: Path, username: str, password: str, clock: Clock | None = None) -> Session:
    """Unlock a vault with a password; failed attempts back off and are audited."""
    clock = clock or SystemClock()
    vault = _open_vault(folder)
    vault.lock.acquire()
    try:
        unlocked = vault.unlock_with_password(username, password, clock)
        session = _start_session(
            vault,
            username,
            unlocked.db_key,
            unlocked.user_secret,
            unlocked.pending_failures,
            clock,
            "unlock",
        )
        session._password_unlocked = True
        return session
    except BaseException:
        vault.lock.release()
        raise


def open_session_keyring(folder: Path, username: str, clock: Clock | None = None) -> Session:
    """Unlock with the secret remembered in this computer's keyring."""
    clock = clock or SystemClock()
    vault = _open_vault(folder)
    vault.lock.acquire()
    try:
        unlocked = vault.unlock_with_keyring(username, clock)
        return _start_session(
            vault,
            username,
            unlocked.db_key,
            unlocked.user_secret,
            unlocked.pending_failures,
            clock,
            "unlock_keyring",
        )
    except BaseException:
        vault.lock.release()
        raise


def _start_session(
    vault: Vault,
    username: str,
    db_key: bytes,
    user_secret: bytes,
    pending: list[dict[str, str]],
    clock: Clock,
    action: str,
) -> Session:
    conn, notes = _open_checked(vault, db_key, clock)
    try:
        user = repo.get_user(conn, username)
    except db.DatabaseError as exc:
        conn.close()
        raise damaged_database(exc) from exc
    if user is None or not user.active:
        conn.close()
        from gpshare.store.errors import DisabledUserError

        raise DisabledUserError(
            f"The account '{username}' is not active in this vault. Ask the practice administrator."
        )
    session = Session(vault, conn, user, db_key, user_secret, clock)
    _audit_pending(session, pending, notes)
    vault.confirm_unlock(username, clock)  # sealed by the header save of the next event
    session.audit(action)
    _remember_head(session)
    return session


def _audit_pending(
    session: Session, pending: list[dict[str, str]], notes: list[tuple[str, dict[str, Any]]]
) -> None:
    """Append the failed-unlock reports (as unauthenticated claims) and the open-time notes."""
    vault, conn = session.vault, session.conn
    known = {vault.user_key(u.username): u.username for u in repo.list_users(conn)}
    known[vault.user_key("recovery")] = "recovery code"
    for failure in pending:
        details = {
            # vault.json keeps only pseudonyms; name the user when they exist here.
            "username": known.get(str(failure.get("user_key")), "(not a user of this vault)"),
            "reason": failure.get("reason"),
            "at": failure.get("at") or None,
            # Written before anyone had the key: a report, not a sealed fact.
            "report": f"unauthenticated: claimed by workstation {failure.get('workstation')}",
        }
        if failure.get("implausible"):
            details["implausible"] = failure["implausible"]
        session.audit("unlock_failed", None, details)
    for action, details in notes:
        session.audit(action, None, details)


def recover_with_code(folder: Path, code: str, username: str, clock: Clock | None = None) -> str:
    """Practice manager: open with the recovery code and give `username` a one-time password."""
    clock = clock or SystemClock()
    vault = _open_vault(folder)
    vault.lock.acquire()
    try:
        db_key = vault.unlock_with_recovery(code, clock)
        conn, notes = _open_checked(vault, db_key, clock)
        target = repo.get_user(conn, username)
        if target is None:
            conn.close()
            raise NotFound(f"No user called '{username}' in this vault.")
        recovery_actor = User(
            "recovery-code", "Recovery code holder", "admin", None, True, False, ""
        )
        session = Session(vault, conn, recovery_actor, db_key, b"", clock)
        try:
            _audit_pending(session, vault.pending_reports(), notes)
            vault.confirm_unlock("recovery", clock)  # sealed by the reset's header save
            one_time = session.reset_password(username)
            _remember_head(session)
            return one_time
        finally:
            session.close()
    finally:
        vault.lock.release()


def backups_for_failed_unlock(folder: Path, exc: BaseException) -> list[backup.BackupInfo]:
    """The snapshots under `folder`/backups (newest first, read without unlocking) when an
    unlock failed in a way restoring one repairs: a rolled-back, damaged or truncated
    database or header, or a missing records.db / vault.json. Otherwise none."""
    if not isinstance(exc, TamperedError | CorruptDatabaseError | NotAVaultError):
        return []
    return backup.list_backups(Vault(Path(folder), {}))


def restore(
    folder: Path, snapshot: Path, username: str, password: str, clock: Clock | None = None
) -> Path:
    """Admin: check `snapshot` and replace the vault's files with it (old files kept aside).

    Works from the snapshot's own header, so it repairs a vault whose records.db or
    vault.json is missing, empty or damaged: the admin is authenticated against the
    snapshot's key slots and must be an active admin in the snapshot's database. When the
    admin's password changed since the backup, their current password is accepted if the
    live vault still opens with it (they must be an admin there), and their current slot is
    carried into the restored header. Whenever the live vault opens with the key, it must
    still count the user as an active admin.
    """
    clock = clock or SystemClock()
    folder, snapshot = Path(folder), Path(snapshot)
    if folder.is_dir():
        backup.finish_interrupted_restore(folder)  # an earlier restore killed part-way
    if not (snapshot / "vault.json").is_file() or not (snapshot / "records.db").is_file():
        raise StoreError(
            f"{snapshot} is not a complete gpshare backup (it needs records.db and vault.json). "
            "Choose a folder under backups/."
        )
    snap = Vault(snapshot, Vault.read_header(snapshot))
    try:
        db_key = snap.check_password(username, password)
        carried_slot: dict[str, Any] | None = None
    except (WrongPasswordError, UnknownUserError):
        # The admin's password may have changed since the backup: accept the current one
        # when the live vault still opens with it and the snapshot is sealed with its key.
        live = _live_slot_key(folder, username, password)
        if live is None:
            raise
        db_key, carried_slot = live
        snap.verify_mac(db_key)
    # The role is checked where the password was: the snapshot, or the live vault.
    role_conn = (
        backup.open_snapshot(snapshot, db_key)
        if carried_slot is None
        else db.open_database(folder / "records.db", db_key)
    )
    try:
        actor = repo.get_user(role_conn, username)
    finally:
        role_conn.close()
    is_admin = actor is not None and actor.active and actor.role in access.POLICY["restore"]
    # A backup remembers people who have since left or lost the role: when the live vault
    # still opens with this key, its say counts (a leaver must not roll the practice back).
    if not is_admin or _live_admin(folder, db_key, username) is False:
        live_lock = Vault(folder, {}).lock
        # Only with the lock: another process's header write would race with ours.
        with contextlib.suppress(StoreError):
            live_lock.acquire()
            try:
                _note_in_live_vault(
                    folder, db_key, clock, username, "permission_denied", {"attempted": "restore"}
                )
            finally:
                live_lock.release()
        raise PermissionDenied(
            "Not permitted for your role: only an administrator can restore a backup."
        )
    if actor is not None and actor.must_change_password:
        raise PasswordChangeRequired(
            "You are still using a one-time password: choose your own password before doing "
            f"anything else (run 'gpshare user passwd --user {username}')."
        )
    backup.check_backup(snapshot, db_key)
    folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    lock = Vault(folder, {}).lock
    lock.acquire()
    try:
        replaced = _note_in_live_vault(
            folder, db_key, clock, username, "restore_started", {"snapshot": snapshot.name}
        )
        seen, _issue = anchor.read(snap.vault_id, db_key)
        # Sealed note that this older history is deliberate, so anchors up to here accept it.
        now = clock.now()
        snap.add_restore_record(
            {
                "at": now.isoformat(),
                "snapshot": snapshot.name,
                "replaced_seq": max(replaced, seen.seq if seen else 0),
            },
            at_least=max(int(now.timestamp() * 1_000_000), (seen.restores + 1) if seen else 0),
        )
        if carried_slot is not None:
            # So the admin who restored can sign in with the password they just used.
            slot_id = str(carried_slot["id"])
            snap.header["slots"] = [
                *(s for s in snap.slots() if s.get("id") != slot_id),
                carried_slot,
            ]
        snap.seal(db_key)
        aside = backup.restore_backup(folder, snapshot, db_key, clock.now(), snap.header_bytes())
        # Record the restore in the restored vault's own chain.
        _note_in_live_vault(
            folder,
            db_key,
            clock,
            username,
            "backup_restored",
            {"snapshot": snapshot.name, "kept_aside": aside.name},
        )
    finally:
        lock.release()
    return aside


def _live_admin(folder: Path, db_key: bytes, username: str) -> bool | None:
    """Is `username` an active admin of the live vault? None when it cannot be read."""
    try:
        live = Vault.open(folder)
        live.verify_mac(db_key)
    except StoreError:
        return None
    if live.is_disabled(username):
        return False
    try:
        conn = db.open_database(live.db_path, db_key)
    except StoreError:
        return None
    try:
        user = repo.get_user(conn, username)
    except db.DatabaseError:
        return None
    finally:
        conn.close()
    return user is not None and user.active and user.role in access.POLICY["restore"]


def _live_slot_key(
    folder: Path, username: str, password: str
) -> tuple[bytes, dict[str, Any]] | None:
    """(database key, the user's password slot) from the live vault, or None if unusable."""
    try:
        live = Vault.open(folder)
        db_key = live.check_password(username, password)
    except StoreError:
        return None
    slot = live.password_slot(username)
    return (db_key, dict(slot)) if slot is not None else None


def _note_in_live_vault(
    folder: Path,
    db_key: bytes,
    clock: Clock,
    actor: str,
    action: str,
    details: dict[str, Any],
) -> int:
    """Best effort: append `action` to the live vault's chain; returns its head seq (0 if none).

    The caller holds the vault lock. The live vault may be the damaged thing being repaired, so any failure only means the
    event is not recorded there (the restored vault records the restore itself).
    """
    try:
        vault = Vault.open(folder)
        vault.verify_mac(db_key)
        conn = db.open_database(vault.db_path, db_key)
    except (StoreError, ValueError, db.DatabaseError):
        return 0
    try:
        if audit.head_problem(conn, vault.audit_head()):
            return vault.audit_head()[0]
        with db.transaction(conn):
            seq, digest = audit.append(
                conn,
                audit.audit_key(db_key),
                at=clock.now(),
                actor=actor,
                action=action,
                details=details,
            )
        vault.set_audit_head(db_key, seq, digest)
        return seq
    except (StoreError, db.DatabaseError):
        return vault.audit_head()[0]
    finally:
        conn.close()


@contextlib.contextmanager
def session_scope(
    folder: Path, username: str, password: str, clock: Clock | None = None
) -> Iterator[Session]:
    """`with session_scope(...) as s:` — opens and always closes."""
    session = open_session(folder, username, password, clock)
    try:
        yield session
    finally:
        session.close()


# ----- storage helpers for the UI and CLI --------------------------------------------------


def save_file(path: Path, data: bytes) -> None:
    """Write a file the user chose to export so a crash leaves the old file or the new, never
    half of one; raises StorageWriteError (a StoreError) with a message if it cannot."""
    from gpshare.store.files import atomic_write

    atomic_write(path, data)


def check_keyring() -> None:
    """Raise KeyringUnavailableError unless this computer has a usable, secure keyring."""
    from gpshare.store.vault import usable_keyring

    usable_keyring()


def has_remembered_login(folder: Path, username: str) -> bool:
    """Whether this computer remembers `username`'s login for the vault in `folder` (keyring
    slot); raises StoreError/OSError when the folder is not a readable vault."""
    return Vault.open(folder).has_keyring_slot(username)


def list_backups(folder: Path) -> list[BackupInfo]:
    """Complete backup snapshots of the vault in `folder`, newest first (no unlocking needed:
    used to pick a snapshot to restore)."""
    return backup.list_backups(Vault(folder, {}))
