"""Users, passwords, remembered logins and signing certificates (session.users)."""

from __future__ import annotations

import base64
import json
import platform
import re
import secrets
from collections.abc import Sequence
from dataclasses import dataclass, replace

from gpshare.errors import KeyNotHeld, NotFound, ServiceError, TamperedError, ValidationFailed
from gpshare.records import ROLES, User
from gpshare.services import practice_ca
from gpshare.services._base import Service
from gpshare.services.keyring import (
    SessionKeys,
    follow_pin,
    open_session_keys,
    own_row,
    pin_on_first_grant,
)
from gpshare.services.rotation import mark_disabled
from gpshare.store import keywrap
from gpshare.store.keys.bundle import SealedBundle, UserKeys, open_bundle, raw_public, seal_bundle
from gpshare.store.keys.directory import SignedEntry, UserEntry, fingerprint
from gpshare.store.keys.errors import BundleError, KeyHierarchyError
from gpshare.store.port import DirectoryRow, StoredBundle, WrappedKey, WriteTx
from gpshare.store.vault import KEYRING_SLOT_KDF, KdfParams

# Disabling the last lead (a v2 vault): said by the service, the CLI and the UI warning dialog.
LAST_LEAD_MESSAGE = (
    "{name} is the only active safeguarding lead. Once they are disabled nobody can confirm new "
    "keys or complete a key rotation, and the break-glass ceremony (the sealed break-glass code "
    "with an administrator) is then the only way to appoint a lead. Add and appoint another "
    "lead first, or confirm that you want to disable them anyway."
)
USERNAME_RE = re.compile(r"^[a-z0-9][a-z0-9._-]{1,31}$")
GMC_RE = re.compile(r"^\d{7}$")
MIN_PASSWORD_LENGTH = 10
MAX_PASSWORD_LENGTH = 256
MIN_PASSWORD_SCORE = 3  # zxcvbn: 3 = "safely unguessable", well beyond online guessing


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


class UsersService(Service):
    """Users and passwords (admin manages; everyone their own), and signing certificates."""

    def list_users(self) -> list[User]:
        """Every user (admin), or just yourself."""
        self._require("list_users")
        if self._session.user.role != "admin":
            return [self._session.user]
        with self._session._read() as tx:
            return tx.list_users()

    def _existing(self, username: str) -> bool:
        with self._session._read() as tx:
            return tx.get_user(username) is not None

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
        elif self._existing(username) or self._session.vault.is_disabled(username):
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
        user = User(username, full_name.strip(), role, gmc, True, True, self._session.now_iso())
        user_secret = self._session.vault.set_password(self._session.db_key, username, password)

        def work(tx: WriteTx) -> None:
            tx.insert_user(user)
            if role in ("clinician", "lead"):
                self._issue_certificate(tx, user, user_secret)

        try:
            self._session._write("user_added", work, details={"username": username, "role": role})
        except Exception:
            self._session.vault.disable_user(
                self._session.db_key, username
            )  # no slot without a user row
            key = self._session.vault.user_key(username)
            self._session.vault.header["disabled_users"] = [
                u for u in self._session.vault.header["disabled_users"] if u != key
            ]
            self._session.vault.save(self._session.db_key)
            raise
        return user

    def _stored_ca(self) -> WrappedKey:
        with self._session._read() as tx:
            stored = tx.get_practice_ca()
        if stored is None:
            raise ServiceError(
                "This vault has no practice certificate authority; restore it from a backup."
            )
        return stored

    def _ca(self) -> tuple[bytes, bytes]:
        """(key_pem, cert_pem) of the practice CA: unwrapped with the database key where it is
        stored that way (version 1, or a v2 header made by the v1 services), else (version 2)
        opened from the acting administrator's own wrap (class A, admins only)."""
        stored = self._stored_ca()
        key = keywrap.unwrap_practice_ca_key(
            self._session.db_key, stored.nonce, stored.wrapped, self._session.vault.vault_id
        )
        if key is not None:
            return key, stored.cert_pem
        if self._session.vault.format_version >= 2:
            keys = self._session.keys
            if keys is None:  # the recovery code holds the practice key only
                raise KeyNotHeld(practice_ca.NOT_HELD)
            with self._session._read() as tx:
                return practice_ca.open_ca(tx, keys, stored), stored.cert_pem
        raise ServiceError(
            "The practice certificate authority's key cannot be opened; restore the vault from a backup."
        )

    def _issue_certificate(
        self,
        tx: WriteTx,
        user: User,
        user_secret: bytes,
        ca: tuple[bytes, bytes] | None = None,
    ) -> None:
        from gpshare import signing

        ca_key, ca_cert = ca or self._ca()
        issued = signing.issue_user_certificate(
            signing.KeyAndCert(ca_key, ca_cert),
            full_name=user.full_name,
            username=user.username,
            role=user.role_title,
            gmc_number=user.gmc_number,
            practice_name=self._session.vault.practice_name,
            now=self._session.clock.now(),
        )
        self._store_signing_key(
            tx, user.username, issued.key_pem, issued.cert_pem, user_secret, "issued"
        )

    def _store_signing_key(
        self,
        tx: WriteTx,
        username: str,
        key_pem: bytes,
        cert_pem: bytes,
        user_secret: bytes,
        source: str,
    ) -> None:
        nonce, wrapped = keywrap.wrap_signing_key(
            user_secret, key_pem, self._session.vault.vault_id, username
        )
        tx.add_signing_key(
            username,
            WrappedKey(cert_pem, nonce, wrapped),
            source,
            self._session.now_iso(),
        )

    def import_pkcs12(self, username: str, data: bytes, pkcs12_password: str) -> str:
        """Admin: give a user a signing key from a PKCS#12 file; returns their one-time password.

        The key must be wrapped with the user's own password, so the import resets it. The
        certificate must be issued by the practice CA or by an issuer included in the file;
        that issuer is then trusted when letters are signed and verified.
        """
        self._require("import_pkcs12")
        from gpshare import signing

        with self._session._read() as tx:
            target = tx.get_user(username)
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
        if info.not_after < self._session.clock.now():
            message = (
                f"This certificate expired on {info.not_after:%d %B %Y}; import a current one."
            )
            raise ValidationFailed(message, [{"field": "pkcs12", "message": message}])
        temp = one_time_password()
        before = self._session.vault.slots_snapshot()
        user_secret = self._session.vault.set_password(self._session.db_key, username, temp)

        def work(tx: WriteTx) -> None:
            tx.set_must_change_password(username, True)
            self._store_signing_key(
                tx, username, loaded.key_pem, loaded.cert_pem, user_secret, "pkcs12"
            )
            if self._session.vault.format_version >= 2:
                # A one-time password replaces theirs, as in a reset: the old bundle goes inert.
                make_inert(tx, username)
            if issuer != practice_ca:
                trusted = self.trusted_issuers()
                if issuer not in trusted:
                    tx.put_settings(
                        {
                            "trusted_issuers": json.dumps(
                                [p.decode("ascii") for p in [*trusted, issuer]]
                            )
                        },
                    )

        try:
            self._session._write(
                "pkcs12_imported",
                work,
                details={"username": username, "fingerprint": info.sha256_fingerprint},
            )
        except BaseException:
            self._session.vault.restore_slots(self._session.db_key, before)
            raise
        self._session.vault.forget_keyring_slot(self._session.db_key, username)
        return temp

    def trusted_issuers(self) -> list[bytes]:
        """Issuers of imported PKCS#12 certificates (besides the practice CA)."""
        self._require("read_certificates")
        with self._session._read() as tx:
            raw = tx.get_settings().get("trusted_issuers")
        return [p.encode("ascii") for p in json.loads(raw)] if raw else []

    def disable_user(self, username: str, force: bool = False) -> None:
        """Admin: stop a user unlocking (their slots are removed; records remain).

        On a version-2 vault their directory entry is marked disabled and a key rotation is
        left pending for the next lead session; disabling the last active lead needs `force`
        (after that only the break-glass ceremony can appoint one)."""
        self._require("disable_user")
        if username == self._session.user.username:
            raise ValidationFailed(
                "You cannot disable your own account.",
                [{"field": "username", "message": "own account"}],
            )
        with self._session._read() as tx:
            target = tx.get_user(username)
            admins = sum(1 for u in tx.list_users() if u.role == "admin" and u.active)
            leads = sum(1 for u in tx.list_users() if u.role == "lead" and u.active)
        if target is None:
            raise NotFound(f"No user called '{username}'.")
        if target.role == "admin" and admins <= 1:
            raise ValidationFailed(
                "This is the only active administrator; add another administrator first.", []
            )
        v2 = self._session.vault.format_version >= 2
        if v2 and target.role == "lead" and target.active and leads <= 1 and not force:
            message = LAST_LEAD_MESSAGE.format(name=target.full_name)
            raise ValidationFailed(message, [{"field": "username", "message": message}])
        vault_id, now = self._session.vault.vault_id, self._session.now_iso()

        def work(tx: WriteTx) -> None:
            tx.set_user_active(username, False)
            tx.deactivate_signing_keys(username)
            if v2:
                mark_disabled(tx, vault_id, username, now)

        self._session._write("user_disabled", work, details={"username": username})
        self._session.vault.disable_user(self._session.db_key, username)

    def reset_password(self, username: str) -> str:
        """Admin: set a one-time password the user must change at next unlock.

        The old signing key cannot be re-wrapped without the old password, so a new
        certificate is issued; letters signed with the old one still verify.
        """
        self._require("reset_password")
        with self._session._read() as tx:
            target = tx.get_user(username)
        if target is None:
            raise NotFound(f"No user called '{username}'.")
        temp = one_time_password()
        user_secret = self._session.vault.set_password(self._session.db_key, username, temp)

        def work(tx: WriteTx) -> None:
            tx.set_user_active(username, True)
            tx.set_must_change_password(username, True)
            # Version 2: the recovery code opens the practice key only, never the CA (class A),
            # so a reset by its holder issues no certificate; an administrator's reset does.
            recovery_only = self._session.vault.format_version >= 2 and self._session.keys is None
            if target.role in ("clinician", "lead") and not recovery_only:
                self._issue_certificate(tx, target, user_secret)
            if self._session.vault.format_version >= 2:
                make_inert(tx, username)

        self._session._write("password_reset", work, details={"username": username})
        # A remembered login would still open the vault with the old key material.
        self._session.vault.forget_keyring_slot(self._session.db_key, username)
        return temp

    def change_password(self, old_password: str, new_password: str) -> None:
        """Change your own password: only your slot and your signing-key wrap change."""
        self._require("change_password")
        username = self._session.user.username
        context = [self._session.user.full_name, self._session.vault.practice_name]
        if (p := validate_password(new_password, username, context)) is not None:
            raise ValidationFailed(p, [{"field": "new_password", "message": p}])
        if new_password == old_password:
            raise ValidationFailed("Choose a new password different from the current one.", [])
        v2 = self._session.keys is not None
        self._reseal_credentials(old_password, new_password, v2, "password_changed")
        self._session.user = replace(self._session.user, must_change_password=False)
        if v2 and self._session.keys is not None:
            # First login after an add or a reset: the user's own client makes their keys now.
            self._session.keys.drop()
            self._session.keys = self._load_session_keys(new_password)

    def _reseal_credentials(self, old: str, new: str, v2: bool, action: str) -> None:
        """The acting user's password slot made for `new`, with their signing key re-wrapped
        and (v2) their bundle re-sealed to match, in one audited write (`action`); the slot is
        put back if the write fails, so slot and wraps never disagree."""
        username = self._session.user.username
        old_secret = self._session._verify_password(old)
        with self._session._read() as tx:
            signing = tx.active_signing_key(username)
        key_pem = None
        if signing is not None:
            key_pem = keywrap.unwrap_signing_key(
                old_secret,
                signing[1].nonce,
                signing[1].wrapped,
                self._session.vault.vault_id,
                username,
            )
        resealed = self._resealed_bundle(old, new) if v2 else None
        before = self._session.vault.slots_snapshot()
        new_secret = self._session.vault.set_password(self._session.db_key, username, new)

        def work(tx: WriteTx) -> None:
            tx.set_must_change_password(username, False)
            if resealed is not None:
                tx.put_bundle(resealed)
            if signing is not None and key_pem is not None:
                nonce, wrapped = keywrap.wrap_signing_key(
                    new_secret, key_pem, self._session.vault.vault_id, username
                )
                tx.replace_signing_key_wrap(signing[0], nonce, wrapped)

        try:
            self._session._write(action, work, details={"username": username})
        except BaseException:
            # The database still wraps the signing key for the old password: keep them in step.
            self._session.vault.restore_slots(self._session.db_key, before)
            raise
        self._session._user_secret = new_secret
        self._session.vault.refresh_keyring(self._session.db_key, username, new_secret)

    def _mix_own_slot(self, password: str) -> None:
        """At the first sign-in after the practice adopted an enrolment secret: the user's
        password slot re-made with the secret mixed into its key, their signing key re-wrapped
        and their bundle re-sealed the same way (as a password change does, same password)."""
        if self._session.user.must_change_password:
            return  # the coming password change makes the slot mixed anyway
        self._reseal_credentials(password, password, True, "enrolment_secret_resealed")

    def verify_password(self, password: str) -> None:
        """Raise WrongPasswordError (audited) unless `password` is the acting user's."""
        self._require("verify_password")
        self._session._verify_password(password)

    def remember_login(self) -> None:
        """ "Remember me on this computer": a keyring slot for the acting user (audited).

        Raises KeyringUnavailableError with a plain message when no secure keyring exists.
        """
        self._require("remember_login")
        if self._session._user_secret is None:
            raise ServiceError("The vault is locked. Unlock it again to continue.")
        self._session.vault.enable_keyring(
            self._session.db_key, self._session.user.username, self._session._user_secret
        )
        ring = self._session.keys
        if ring is not None and ring.user_keys is not None and ring.own_generation is not None:
            self._store_keyring_copy(ring.user_keys, ring.own_generation)
        username = self._session.user.username
        if ring is None:
            self._session.audit("login_remembered", None, {"username": username})
            return
        # Version 2: listed in remembered_logins, so a lead or administrator can revoke it.
        workstation, now = platform.node()[:64] or "unnamed workstation", self._session.now_iso()
        try:
            login_id = self._session._write(
                "login_remembered",
                lambda tx: tx.add_remembered_login(username, workstation, now),
                details={"username": username, "workstation": workstation},
            )
        except BaseException:
            self._session.vault.disable_keyring(self._session.db_key, username)
            raise
        self._session.vault.set_keyring_login(self._session.db_key, username, login_id)

    def forget_login(self) -> None:
        """Forget the remembered login on this computer (audited)."""
        self._require("remember_login")
        username = self._session.user.username
        login_id = self._session.vault.keyring_login(username)
        self._session.vault.disable_keyring(self._session.db_key, username)
        if self._session.keys is None or login_id is None:
            self._session.audit("login_forgotten", None, {"username": username})
            return
        now = self._session.now_iso()

        def work(tx: WriteTx) -> None:
            listed = [r for r in tx.remembered_logins(username) if r.id == login_id]
            if listed and listed[0].revoked is None:  # a lead may have revoked it already
                tx.revoke_remembered_login(login_id, now)

        self._session._write(
            "login_forgotten", work, details={"username": username, "login_id": login_id}
        )

    def signing_certificate(self, username: str | None = None) -> bytes | None:
        """The PEM of a user's active signing certificate, if any."""
        self._require("read_certificates")
        with self._session._read() as tx:
            found = tx.active_signing_key(username or self._session.user.username)
        return found[1].cert_pem if found else None

    def _practice_ca_pem(self) -> bytes:
        """The practice CA certificate (public part)."""
        return self._stored_ca().cert_pem

    # ----- vault version 2: the user's own key bundle (docs/vault-v2.md §2 step 3, §3) ------

    def _bundle_kdf(self) -> KdfParams:
        return KdfParams.from_dict(self._session.vault.header["kdf_default"])

    def _open_own_bundle(self, password: str) -> tuple[UserKeys, int] | None:
        """The user's active bundle opened with `password`, or None (none yet, or inert after
        a password reset). An active bundle that does not open with the password that has just
        opened the user's slot is refused (TamperedError), never replaced: replacing it would
        put the user back into trust on first grant for whoever swapped it."""
        username = self._session.user.username
        with self._session._read() as tx:
            stored = tx.bundle(username)
        if stored is None or stored.state != "active":
            return None
        vault = self._session.vault
        secret = vault.check_enrolment_secret()
        try:
            try:
                keys = open_bundle(stored.sealed, password, vault.vault_id, username, secret)
            except BundleError:
                if secret is None:
                    raise
                # Sealed before the practice adopted its enrolment secret: opened with the
                # password alone, then re-sealed with the secret mixed in.
                keys = open_bundle(stored.sealed, password, vault.vault_id, username)
                resealed = self._seal_own(
                    keys, password, stored.sealed.generation, self._session.now_iso()
                )
                self._session._write(
                    "enrolment_secret_resealed",
                    lambda tx: tx.put_bundle(resealed),
                    details={"username": username, "key_generation": stored.sealed.generation},
                )
        except BundleError as exc:
            generation = stored.sealed.generation
            self._session._write(
                "key_bundle_refused",
                lambda tx: None,
                details={"username": username, "key_generation": generation},
            )
            raise TamperedError(
                f"Your key bundle (generation {generation}) does not open with the password you "
                "have just signed in with, so it was changed outside gpshare. gpshare has not "
                "replaced it. Ask your practice's lead to check the vault before "
                "you carry on; an administrator can reset your password to give you new keys."
            ) from exc
        return keys, stored.sealed.generation

    def _seal_own(
        self, keys: UserKeys, password: str, generation: int, created: str
    ) -> StoredBundle:
        username = self._session.user.username
        vault = self._session.vault
        sealed = seal_bundle(
            keys,
            password,
            vault.vault_id,
            username,
            generation,
            self._bundle_kdf(),
            vault.check_enrolment_secret(),
        )
        return StoredBundle(username, "active", sealed, created)

    def _publish_keys(self, password: str) -> tuple[UserKeys, int]:
        """The user's own client makes their key pairs: a bundle sealed under `password`, a
        pending directory entry and a `key_published` event with its six words. Any older active
        bundle becomes inert. Nothing is wrapped for the new key until a lead confirms it."""
        user = self._session.user
        vault_id = self._session.vault.vault_id
        with self._session._read() as tx:
            newest = tx.bundle(user.username)
        generation = newest.sealed.generation + 1 if newest is not None else 1
        keys = UserKeys.generate(lead=user.role == "lead")
        now = self._session.now_iso()
        stored = self._seal_own(keys, password, generation, now)
        public = raw_public(keys.encryption)
        access = raw_public(keys.lead_access) if keys.lead_access is not None else None
        entry = UserEntry(vault_id, user.username, user.role, public, generation, True, access)

        def work(tx: WriteTx) -> None:
            if newest is not None and newest.state != "inert":
                tx.put_bundle(replace(newest, state="inert"))
            tx.put_bundle(stored)
            tx.add_directory_entry(SignedEntry(entry, None), now)

        self._session._write(
            "key_published",
            work,
            details={
                "username": user.username,
                "key_generation": generation,
                "fingerprint": " ".join(fingerprint(public, vault_id)),
            },
        )
        return keys, generation

    def _load_session_keys(self, password: str | None) -> SessionKeys:
        """The key ring of a v2 self._session. With the typed password: open the bundle (or, for a user
        with none, make one and publish a pending key); once a lead has confirmed the key, pin
        the lead signing key that signed it (trust on first grant) and re-seal the bundle with the
        pin. A remembered login (no password) holds no personal keys in this version."""
        user = self._session.user
        vault_id = self._session.vault.vault_id

        def directory(user_id: str) -> list[DirectoryRow]:
            with self._session._read() as tx:
                return tx.directory_entries(user_id, "user")

        keys: UserKeys | None = None
        generation: int | None = None
        if password is None and not user.must_change_password:
            # A remembered login: the keyring slot's copy of the bundle (never the lead key).
            keys, generation = self._keyring_copy() or (None, None)
        if password is not None and not user.must_change_password:
            opened = self._open_own_bundle(password)
            keys, generation = opened if opened is not None else self._publish_keys(password)
            with self._session._read() as tx:
                rotations = tx.lead_rotations()
            pin = keys.pinned_lead_signing_key
            if pin is None:
                # Trust on first grant: the lead signing key that signed the user's own entry.
                with self._session._read() as tx:
                    row = own_row(tx.directory_entries(user.username, "user"), keys)
                if row is not None and row.signature is not None:
                    pin = pin_on_first_grant(row.signed(vault_id), rotations, vault_id)
            else:
                # A lead key rotation: re-pin to the key its statement names, so the bundle no
                # longer trusts the old signing key (DirectoryAlteredError on a forged chain).
                pin = follow_pin(pin, rotations, vault_id)
            if pin is not None and pin != keys.pinned_lead_signing_key:
                keys = keys.with_pin(pin)
                stored = self._seal_own(keys, password, generation, self._session.now_iso())
                self._session._write(
                    "key_pinned",
                    lambda tx: tx.put_bundle(stored),
                    details={"username": user.username, "lead_signing_key": pin.hex()[:16]},
                )
            self._store_keyring_copy(keys, generation)
        with self._session._read() as tx:
            return open_session_keys(
                tx,
                vault_id,
                user.username,
                user.role,
                keys,
                generation,
                password is not None,
                directory,
            )

    def _store_keyring_copy(self, keys: UserKeys, generation: int) -> None:
        """Keep the remembered login's copy of the bundle current (sealed under the user
        secret its keyring slot unwraps); no copy without a remembered login."""
        session, username = self._session, self._session.user.username
        if not session.vault.has_keyring_slot(username) or not session._user_secret:
            return
        sealed = seal_bundle(
            keys.without_lead_access(),  # D2: a remembered login never holds the lead key
            session._user_secret.hex(),
            session.vault.vault_id,
            username,
            generation,
            KEYRING_SLOT_KDF,
        )
        copy = {
            "generation": generation,
            "kdf": sealed.kdf.to_dict(),
            "salt": base64.b64encode(sealed.salt).decode("ascii"),
            "blob": base64.b64encode(sealed.blob).decode("ascii"),
        }
        session.vault.set_keyring_bundle(session.db_key, username, copy)

    def _keyring_copy(self) -> tuple[UserKeys, int] | None:
        """The user's keys from the remembered login's copy, or None (none, or stale)."""
        session, username = self._session, self._session.user.username
        copy = session.vault.keyring_bundle(username)
        if copy is None or not session._user_secret:
            return None
        try:
            sealed = SealedBundle(
                int(copy["generation"]),
                KdfParams.from_dict(copy["kdf"]),
                base64.b64decode(copy["salt"]),
                base64.b64decode(copy["blob"]),
            )
            keys = open_bundle(sealed, session._user_secret.hex(), session.vault.vault_id, username)
        except (KeyError, TypeError, ValueError, BundleError, KeyHierarchyError):
            return None
        return keys, sealed.generation

    def _resealed_bundle(self, old: str, new: str) -> StoredBundle | None:
        """For a password change: the bundle `old` opens, re-sealed under `new` (keys unchanged),
        or None when `old` opens none (new keys are published after the change instead)."""
        opened = self._open_own_bundle(old)
        if opened is None:
            return None
        keys, generation = opened
        return self._seal_own(keys, new, generation, self._session.now_iso())


def make_inert(tx: WriteTx, username: str) -> None:
    """An admin reset: the user's active bundle is kept, inert (the old password still opens
    it); nothing is re-wrapped, and their next login publishes a new pending key."""
    stored = tx.bundle(username)
    if stored is not None and stored.state != "inert":
        tx.put_bundle(replace(stored, state="inert"))
