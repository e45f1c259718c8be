"""Opening, creating and recovering vaults: the use cases before a session exists."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PublicKey

from gpshare.clock import Clock, SystemClock
from gpshare.errors import (
    DatabaseError,
    KeyNotHeld,
    NotFound,
    ServerUnreachableError,
    ServiceError,
    ValidationFailed,
)
from gpshare.records import User
from gpshare.services import _integrity, _offline_drafts, practice_ca
from gpshare.services._records import _backfill_household_links, _backfill_referral_states
from gpshare.services.keys import grant, words
from gpshare.services.record_keys import BREAKGLASS_RECIPIENT, Recipient
from gpshare.services.session import Session
from gpshare.services.users import GMC_RE, validate_password, validate_username
from gpshare.store import anchor, backup, keywrap, migrate_v2, open_store
from gpshare.store.enrolment import format_secret
from gpshare.store.errors import CorruptDatabaseError, RollbackError, StoreError
from gpshare.store.keys.binding import ClinicalKey
from gpshare.store.keys.bundle import UserKeys, raw_public, seal_bundle
from gpshare.store.keys.directory import (
    LeadKeyEntry,
    SignedEntry,
    UserEntry,
    sign_entry,
    sign_rotation,
)
from gpshare.store.keys.lead import LeadKey
from gpshare.store.keys.wraps import WrapBinding, WrapPurpose, wrap_key
from gpshare.store.port import RoleKeyWrap, Store, StoredBundle, WrappedKey, WriteTx
from gpshare.store.vault import KdfParams, Vault


def damaged_database(exc: Exception) -> StoreError:
    """Map a low-level database failure to the message a practice can act on (a practice
    server that cannot be reached keeps its own message: nothing is damaged)."""
    if isinstance(exc, ServerUnreachableError):
        return exc
    return CorruptDatabaseError(
        f"The vault's database is damaged ({exc}). Stop using it and ask the practice administrator to "
        "restore the latest backup (Admin › Backups, or 'gpshare restore')."
    )


INTEGRITY_CHECK_INTERVAL = timedelta(hours=24)


def _rollback_alarm(problem: str) -> RollbackError:
    return RollbackError(
        f"This vault has been rolled back or truncated: {problem}. Nothing has been changed "
        "and nothing was written. Do not use this vault: tell the practice administrator, who "
        "can restore the latest backup ('gpshare restore --vault DIR --user ADMIN'; the "
        "current files are kept aside in replaced-<time>/ for investigation)."
    )


def _check_anchors(
    vault: Vault, store: Store, db_key: bytes, notices: list[str] | None = None
) -> list[tuple[str, dict[str, Any]]]:
    """Compare the chain with vault.json's head and this computer's anchor before any write.

    Raises RollbackError naming the missing range; returns audit notes for the session. On a
    practice server, a restore since this computer's anchor adds its loss to `notices`.
    """
    notes: list[tuple[str, dict[str, Any]]] = []
    with store.read() as tx:
        problem = tx.head_problem(vault.audit_head())
    if problem:
        raise _rollback_alarm(problem)
    seen, anchor_issue = anchor.read(vault.vault_id, db_key)
    if anchor_issue:
        # Whoever can edit this file can also delete it, so an invalid one is noted, not fatal.
        notes.append(("rollback_anchor_invalid", {"problem": anchor_issue}))
    if seen is not None and vault.engine != "sqlcipher":
        # A practice server: its header generation against the newest this computer has
        # sealed (vault.json's copy can be edited), its head against this computer's,
        # restores counted by the server's MACed epoch (DESIGN §10.3), before any append.
        held = vault.generation
        if seen.header > held:
            raise RollbackError(
                f"ROLLBACK OR FORK ALARM: the practice server holds header generation {held}, "
                f"but this computer has seen generation {seen.header}. The server's header "
                "(key slots, key directory, role keys) was put back or replaced. Nothing has "
                "been written. Do not continue: tell the practice manager."
            )
        check = _integrity.on_connect(store, seen)
        if check.alarm:
            raise RollbackError(check.alarm)
        if check.restore is not None:
            notes.append(("restore_loss_shown", {"restore_seq": check.restore.seq}))
            if notices is not None:
                notices.append(_integrity.loss_notice(check.restore))
    elif seen is not None:
        floor = vault.restore_floor(after=seen.restores)
        with store.read() as tx:
            problem = tx.anchor_problem((seen.seq, seen.hash), floor)
        if problem:
            raise _rollback_alarm(problem)
    with store.read() as tx:
        head = tx.audit_head()
    latest = (head.seq, head.digest)
    if latest != vault.audit_head():
        # Killed between the commit and the header write: the one newer event is sealed.
        vault.set_audit_head(db_key, *latest)
    return notes


def _daily_integrity_check(
    vault: Vault, store: Store, db_key: bytes, clock: Clock
) -> list[tuple[str, dict[str, Any]]]:
    """At most daily on open: check every page's HMAC; refuse a damaged database.

    Runs in the unlocking thread: a few seconds once a day on a large vault (see
    docs/reliability.md).
    """
    last = vault.integrity_checked_at()
    now = clock.now()
    if last is not None and timedelta(0) <= now - last < INTEGRITY_CHECK_INTERVAL:
        return []
    problems = store.page_problems()
    if problems:
        raise CorruptDatabaseError(
            f"The vault's database failed its integrity check ({problems[0]}): some of its "
            "pages are damaged. Nothing has been changed. Stop using it and ask the practice "
            "administrator to restore the latest backup ('gpshare restore --vault DIR --user ADMIN')."
        )
    vault.set_integrity_checked(db_key, now)
    return [("integrity_checked", {"ok": True, "previous": last.isoformat() if last else None})]


def _open_checked(
    vault: Vault, db_key: bytes, clock: Clock, notices: list[str] | None = None
) -> tuple[Store, list[tuple[str, dict[str, Any]]]]:
    """Open the database, check anchors and (daily) integrity, then migrate.

    Returns the store and audit notes to append once the session exists.
    """
    store = open_store(vault, db_key, clock)
    try:
        notes = _check_anchors(vault, store, db_key, notices)
        notes += _daily_integrity_check(vault, store, db_key, clock)
    except DatabaseError as exc:
        store.close()
        raise damaged_database(exc) from exc
    except BaseException:
        store.close()
        raise
    store.close()
    return _open_store(vault, db_key, clock), notes


def _open_vault(folder: Path) -> Vault:
    """Finish or undo an interrupted restore or v1 → v2 upgrade, then read the header."""
    backup.finish_interrupted_restore(Path(folder))
    migrate_v2.finish_interrupted_migration(Path(folder))
    return Vault.open(folder)


def _remember_head(session: Session) -> None:
    """Raise this computer's anchor to the chain's current head (best effort, noted if not)."""
    with session._read() as tx:
        head = tx.audit_head()
    seq, digest = head.seq, head.digest
    vault = session.vault
    # A server counts restores in its own MACed epoch; an embedded vault in its header.
    if vault.engine != "sqlcipher":
        restores = _integrity.seen_now(session.store).restores
    else:
        restores = vault.restore_number()
    try:
        anchor.write(vault.vault_id, session.db_key, seq, digest, restores, vault.generation)
    except StoreError:
        session.audit("rollback_anchor_unwritable", None, {"dir": "user data folder"})


def _open_store(vault: Vault, db_key: bytes, clock: Clock) -> Store:
    store = open_store(vault, db_key, clock)
    if store.schema_version() > store.latest_schema_version():
        store.close()
        from gpshare.store.errors import VaultFormatError

        raise VaultFormatError(
            "This vault's database was written by a newer gpshare. Install the latest version to open it."
        )
    if store.pending_migrations():
        # An encrypted snapshot before any schema change, so a failed migration loses nothing.
        snapshot = store.create_backup(clock.now(), keep=backup.DEFAULT_KEEP + 1)
        try:
            store.apply_migrations()
        except DatabaseError as exc:
            store.close()
            raise StoreError(
                f"Updating the vault to this version of gpshare failed ({exc}); the failed step was rolled "
                f"back and a backup taken just before is in {snapshot}. Keep using the previous version "
                "and contact support."
            ) from exc
    _backfill_household_links(store)
    _backfill_referral_states(store)
    return store


def _init_problems(
    username: str, full_name: str, password: str, practice_name: str, who: str
) -> list[str]:
    problems = [
        p
        for p in (
            validate_username(username),
            validate_password(password, username, [full_name, practice_name]),
        )
        if p
    ]
    return [f"{who}: {p}" if who else p for p in problems]


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
    problems = _init_problems(admin_username, admin_full_name, admin_password, practice_name, "")
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
    store = open_store(vault, db_key, clock, create=True)
    store.apply_migrations()
    admin = User(
        admin_username,
        admin_full_name.strip() or admin_username,
        "admin",
        None,
        True,
        False,
        clock.now().isoformat(timespec="seconds"),
    )
    session = Session(vault, store, admin, db_key, user_secret, clock)
    ca = signing.create_practice_ca(practice_name.strip(), clock.now())
    nonce, wrapped = keywrap.wrap_practice_ca_key(db_key, ca.key_pem, vault.vault_id)

    def work(tx: WriteTx) -> None:
        tx.insert_user(admin)
        tx.put_practice_ca(ca.cert_pem, nonce, wrapped, session.now_iso())
        tx.put_settings({"practice_name": practice_name.strip()})
        tx.put_settings({"referral_states_backfilled": "1"})  # nothing to backfill

    session._write("vault_created", work, details={"admin": admin_username})
    return session, recovery


@dataclass(frozen=True)
class LeadAtInit:
    """The first safeguarding lead, present at `init --lead` and typing their own password."""

    username: str
    full_name: str
    password: str
    gmc_number: str | None = None


@dataclass(frozen=True)
class ServerTarget:
    """Where `server init` puts a practice: an empty PostgreSQL database (a libpq DSN without
    a password) and the name of the least-privilege role its workstations act as."""

    dsn: str
    workstation_role: str = "gpshare_workstation"

    @property
    def name(self) -> str:
        """The server as a person can name it (host, port, database; no password)."""
        from gpshare.store.postgres.header import server_name

        return server_name(self.dsn)


@dataclass(frozen=True)
class CreatedVault:
    """A new version-2 vault: the admin's session and the two secrets, each shown once."""

    session: Session
    recovery_code: str  # practice recovery code (admin custody): the practice key only
    breakglass_code: str  # break-glass code (sealed envelope): the clinical and lead keys
    # A practice server's enrolment secret, grouped for the envelope (None when embedded).
    enrolment_secret: str | None = None


def _role_wrap(key: ClinicalKey | LeadKey, recipient: bytes, vault_id: str) -> RoleKeyWrap:
    """Generation 1 of a role key wrapped for the break-glass public key."""
    from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PublicKey

    lead = isinstance(key, LeadKey)
    purpose = WrapPurpose.LEAD_KEY if lead else WrapPurpose.CLINICAL_KEY
    binding = WrapBinding.for_role_key(purpose, vault_id, key.generation, BREAKGLASS_RECIPIENT, 1)
    public = X25519PublicKey.from_public_bytes(recipient)
    blob = wrap_key(key, public, binding)
    return RoleKeyWrap(
        "lead" if lead else "clinical", key.generation, BREAKGLASS_RECIPIENT, 1, blob
    )


def create_vault_v2(
    folder: Path,
    *,
    practice_name: str,
    admin_username: str,
    admin_full_name: str,
    admin_password: str,
    lead: LeadAtInit | None = None,
    clock: Clock | None = None,
    kdf: KdfParams | None = None,
    server: ServerTarget | None = None,
) -> CreatedVault:
    """Create a version-2 vault (docs/vault-v2.md §3 "Bootstrap"): the practice key, clinical
    key g1 and lead key g1 (both wrapped for the break-glass key), the lead key's signed
    directory entry, and the admin's bundle and entry. With `lead`, the same ceremony appoints
    the first lead: their user, bundle and signed entry, and both role keys granted to them
    (the admin's entry is signed too). Without one, the admin's entry stays pending and the
    first lead is appointed later by the break-glass ceremony. With `server`, the records and
    the header live on a practice server (its empty database gets the schema first) and
    `folder` becomes its first workstation."""
    from gpshare import signing

    clock = clock or SystemClock()
    practice = practice_name.strip()
    problems = _init_problems(admin_username, admin_full_name, admin_password, practice, "")
    if not practice:
        problems.append("Enter the practice name.")
    if lead is not None:
        problems += _init_problems(
            lead.username, lead.full_name, lead.password, practice, "Safeguarding lead"
        )
        if lead.username == admin_username:
            problems.append(
                "The safeguarding lead needs their own username, not the administrator's."
            )
        if not lead.full_name.strip():
            problems.append("Enter the safeguarding lead's full name (--lead-name).")
        if lead.gmc_number and not GMC_RE.match(lead.gmc_number):
            problems.append("The safeguarding lead's GMC number must be exactly 7 digits.")
    if problems:
        raise ValidationFailed(
            " ".join(problems), [{"field": "init", "message": p} for p in problems]
        )
    if server is None:
        new = Vault.create_v2(
            folder,
            practice_name=practice,
            admin_username=admin_username,
            admin_password=admin_password,
            clock=clock,
            kdf=kdf,
        )
    else:
        # Imported here: an embedded vault never loads the server's driver.
        from gpshare.store.postgres.header import check_dsn, create_server_vault, prepare_database

        check_dsn(server.dsn)
        if (Path(folder) / "vault.json").exists():
            raise StoreError(f"{folder} already holds a vault; choose an empty folder.")
        prepare_database(server.dsn, server.workstation_role)
        new = create_server_vault(
            folder,
            server.dsn,
            practice_name=practice,
            admin_username=admin_username,
            admin_password=admin_password,
            clock=clock,
            kdf=kdf,
        )
    vault, keys, vault_id = new.vault, new.keys, new.vault.vault_id
    lead_secret = vault.set_password(keys, lead.username, lead.password) if lead else b""
    store = open_store(vault, keys, clock, create=True)
    store.apply_migrations()
    now = clock.now().isoformat(timespec="seconds")
    admin = User(
        admin_username, admin_full_name.strip() or admin_username, "admin", None, True, False, now
    )
    session = Session(vault, store, admin, keys, new.user_secret, clock)
    session._password_unlocked = True
    ca = signing.create_practice_ca(practice, clock.now())
    params = KdfParams.from_dict(vault.header["kdf_default"])
    clinical = ClinicalKey.generate_generation(1)
    lead_key = LeadKey.generate_generation(1)
    lead_signing = lead_key.signing(vault_id)
    pin = raw_public(lead_signing) if lead else None

    def member(user: User, password: str) -> tuple[StoredBundle, UserEntry]:
        own = UserKeys.generate(pin, lead=user.role == "lead")
        sealed = seal_bundle(
            own, password, vault_id, user.username, 1, params, vault.enrolment_secret
        )
        public = raw_public(own.encryption)
        access = raw_public(own.lead_access) if own.lead_access is not None else None
        entry = UserEntry(vault_id, user.username, user.role, public, 1, True, access)
        return StoredBundle(user.username, "active", sealed, now), entry

    admin_bundle, admin_entry = member(admin, admin_password)
    # Class A: the CA key sealed as an object wrapped for the admin's own new key (D4).
    admin_public = X25519PublicKey.from_public_bytes(admin_entry.public_key)
    nonce, wrapped, ca_wraps = practice_ca.seal_ca(
        vault_id, ca.key_pem, [Recipient(admin_username, 1, admin_public)], now
    )
    details: dict[str, Any] = {
        "admin": admin_username,
        "format_version": 2,
        "admin_fingerprint": words(admin_entry.public_key, vault_id),
    }
    first_lead = None
    if lead is not None:
        first_lead = User(
            lead.username, lead.full_name.strip(), "lead", lead.gmc_number or None, True, False, now
        )
        lead_bundle, lead_entry = member(first_lead, lead.password)
        details |= {
            "lead": lead.username,
            "lead_fingerprint": words(lead_entry.public_key, vault_id),
        }

    def work(tx: WriteTx) -> None:
        tx.insert_user(admin)
        tx.put_practice_ca(ca.cert_pem, nonce, wrapped, session.now_iso())
        tx.add_object_wraps(ca_wraps)
        tx.put_settings({"practice_name": practice})
        tx.put_settings({"referral_states_backfilled": "1"})  # nothing to backfill
        if server is not None:
            tx.put_settings({"household_links_backfilled": "1"})  # no v1 links on a server
        # The first lead signing key names itself (generation 1); later ones are rotations.
        tx.add_lead_rotation(sign_rotation(lead_signing, raw_public(lead_signing), vault_id, 1))
        lead_public = raw_public(lead_key.encryption(vault_id))
        tx.add_directory_entry(
            sign_entry(LeadKeyEntry(vault_id, 1, lead_public), lead_signing), now
        )
        breakglass = vault.breakglass_public_key()
        tx.add_role_key_wraps(
            [_role_wrap(clinical, breakglass, vault_id), _role_wrap(lead_key, breakglass, vault_id)]
        )
        tx.put_bundle(admin_bundle)
        if first_lead is None:
            tx.add_directory_entry(SignedEntry(admin_entry, None), now)
            return
        tx.insert_user(first_lead)
        session.users._issue_certificate(tx, first_lead, lead_secret, (ca.key_pem, ca.cert_pem))
        tx.put_bundle(lead_bundle)
        grant(tx, vault_id, lead_key, admin_entry, [], [], now)
        grant(tx, vault_id, lead_key, lead_entry, [clinical], [lead_key], now)

    try:
        session._write("vault_created", work, details=details)
        session.keys = session.users._load_session_keys(admin_password)
    except BaseException:
        session.close()
        raise
    secret = format_secret(new.enrolment_secret) if new.enrolment_secret else None
    return CreatedVault(session, new.recovery_code, new.breakglass_code, secret)


def join_server(
    folder: Path,
    dsn: str,
    *,
    client_cert: Path | None = None,
    client_key: Path | None = None,
    server_ca: Path | None = None,
    enrolment_secret: bytes | None = None,
) -> str:
    """Make `folder` another workstation of the practice on the server at `dsn` (checks it
    holds a gpshare practice; pins its id and first header); returns the practice's name.
    The TLS files given (the certificate and key from `server enrol`, the server's CA
    certificate) are copied into the folder and named in its DSN; the enrolment secret is
    checked against the practice's and kept on this computer."""
    from gpshare.store.postgres.header import check_dsn
    from gpshare.store.postgres.header import join_server as join

    check_dsn(dsn)
    given = {"sslcert": client_cert, "sslkey": client_key, "sslrootcert": server_ca}
    files = {k: Path(v) for k, v in given.items() if v is not None}
    return join(Path(folder), dsn, files, enrolment_secret).practice_name


ENROLMENT_SECRET_FILE = "enrolment.secret"  # gpshare.store.enrolment.FILE_NAME


def parse_enrolment_secret(text: str, where: str = "The enrolment secret") -> bytes:
    """A typed enrolment secret's 32 bytes (for the UI and CLI, which never import the
    store); EnrolmentSecretError naming what is wrong with it."""
    from gpshare.store import enrolment

    return enrolment.parse_secret(text, where)


def format_enrolment_secret(secret: bytes) -> str:
    """The secret as people copy it: 13 groups of 4 characters."""
    from gpshare.store import enrolment

    return enrolment.format_secret(secret)


def read_enrolment_secret_file(path: Path) -> bytes:
    """The secret in an `enrolment.secret` file; EnrolmentSecretError when it is missing,
    readable by others or holds no secret."""
    from gpshare.store import enrolment

    return enrolment.read_file(Path(path))


def needs_enrolment_secret(folder: Path) -> bool:
    """Whether the practice server `folder` points at needs an enrolment secret this computer
    does not hold (after a join without one)."""
    from gpshare.errors import EnrolmentSecretError

    vault = Vault.open(Path(folder))
    try:
        vault.check_enrolment_secret()
    except EnrolmentSecretError:
        return True
    return False


def give_enrolment_secret(folder: Path, secret: bytes) -> str:
    """Give this workstation folder the practice's enrolment secret (typed from the break-glass
    envelope, or read from the file `server enrol` wrote): checked against the server's header
    (a wrong one is refused, nothing kept), then kept in the OS keystore or the folder's
    `enrolment.secret` (0600). Returns where it was kept, in words."""
    from gpshare.errors import EnrolmentSecretError
    from gpshare.store import enrolment

    vault = Vault.open(Path(folder))
    if vault.kdf_mix is None:
        raise ServiceError(
            f"{folder} is not a workstation of a practice server that uses an enrolment secret; "
            "nothing was kept."
        )
    if not enrolment.matches(secret, vault.vault_id, vault.header.get("enrolment_secret_check")):
        raise EnrolmentSecretError(enrolment.MISMATCH, "mismatch")
    return enrolment.keep(Path(folder), vault.vault_id, secret)


def server_dsn_warning(dsn: str) -> str | None:
    """What is unsafe about how `dsn` reaches a practice server (no verification of the
    server's certificate or host name), or None."""
    from gpshare.store.postgres.header import dsn_warning

    return dsn_warning(dsn)


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
    except BaseException:
        vault.lock.release()
        raise
    return _with_keys(session, password)


def open_session_keyring(folder: Path, username: str, clock: Clock | None = None) -> Session:
    """Unlock with the secret remembered in this computer's keyring."""
    clock = clock or SystemClock()
    vault = _open_vault(folder)
    vault.lock.acquire()
    try:
        unlocked = vault.unlock_with_keyring(username, clock)
        session = _start_session(
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
    if vault.format_version >= 2:
        _check_remembered(session)
    # A remembered login never holds the lead key (D2): no typed password, no lead key.
    return _with_keys(session, None)


def _check_remembered(session: Session) -> None:
    """Version 2: refuse a keyring slot whose `remembered_logins` row is revoked or missing
    (a lead or administrator revoked it); the slot is removed and the refusal audited. A slot
    that names no row (made before logins were listed) opens as before: the check is the
    service's, since the slot itself unwraps the practice key."""
    from gpshare.errors import RememberedLoginRevoked

    username = session.user.username
    login_id = session.vault.keyring_login(username)
    if login_id is None:
        return
    with session._read() as tx:
        listed = [r for r in tx.remembered_logins(username) if r.id == login_id]
    if listed and listed[0].revoked is None:
        return
    try:
        session.audit("login_refused", None, {"username": username, "login_id": login_id})
        session.vault.forget_keyring_slot(session.db_key, username)
    finally:
        session.close()
    raise RememberedLoginRevoked(
        f"The remembered login of {username} on this computer was revoked by a safeguarding "
        "lead or the practice administrator. Sign in with your password; you can choose "
        "'Remember me' again afterwards."
    )


def _with_keys(session: Session, password: str | None) -> Session:
    """A format-2 session gets its key ring (UsersService._load_session_keys); a format-1 one none."""
    if session.vault.format_version < 2:
        return session
    try:
        if password is not None and session.vault.needs_mixed_slot(session.user.username):
            # The practice adopted an enrolment secret since this user's last sign-in.
            session.users._mix_own_slot(password)
        session.keys = session.users._load_session_keys(password)
        if session.keys.holds_lead_key and session.directory.rotation_pending():
            # A lead's typed-password unlock completes a rotation left pending by a disable.
            session.directory.rotate()
        if password is not None:
            share_practice_ca(session)  # an administrator shares the CA with confirmed admins
    except BaseException:
        session.close()
        raise
    # Drafts this user typed here while the practice server was unreachable go to it now
    # (or are listed as waiting, with why): told once, in the session's notices.
    try:
        session.notices += _offline_drafts.sign_in_notices(session)
    except StoreError as exc:
        session.notices.append(f"Drafts kept on this computer could not be checked: {exc}")
    return session


def _start_session(
    vault: Vault,
    username: str,
    db_key: bytes,
    user_secret: bytes,
    pending: list[dict[str, str]],
    clock: Clock,
    action: str,
) -> Session:
    notices: list[str] = []
    store, notes = _open_checked(vault, db_key, clock, notices)
    try:
        with store.read() as tx:
            user = tx.get_user(username)
    except DatabaseError as exc:
        store.close()
        raise damaged_database(exc) from exc
    if user is None or not user.active:
        store.close()
        from gpshare.store.errors import DisabledUserError

        raise DisabledUserError(
            f"The account '{username}' is not active in this vault. Ask the practice administrator."
        )
    session = Session(vault, store, user, db_key, user_secret, clock)
    session.notices = notices
    _audit_pending(session, pending, notes)
    vault.confirm_unlock(username, clock)  # sealed by the header save of the next event
    # The head this computer saw before (its anchor) goes into the unlock event as a witness:
    # the lead's verify checks it lies on the chain (DESIGN §10.3 "Anti-rollback and forks").
    seen, _issue = anchor.read(vault.vault_id, db_key)
    session.audit(action, None, _integrity.witness(seen))
    _remember_head(session)
    return session


def _audit_pending(
    session: Session, pending: list[dict[str, str]], notes: list[tuple[str, dict[str, Any]]]
) -> None:
    """Append the failed-unlock reports (as unauthenticated claims) and the open-time notes."""
    vault = session.vault
    with session._read() as tx:
        users = tx.list_users()
    known = {vault.user_key(u.username): u.username for u in users}
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
        store, notes = _open_checked(vault, db_key, clock)
        with store.read() as tx:
            target = tx.get_user(username)
        if target is None:
            store.close()
            raise NotFound(f"No user called '{username}' in this vault.")
        recovery_actor = User(
            "recovery-code", "Recovery code holder", "admin", None, True, False, ""
        )
        session = Session(vault, store, recovery_actor, db_key, b"", clock)
        try:
            _audit_pending(session, vault.pending_reports(), notes)
            vault.confirm_unlock("recovery", clock)  # sealed by the reset's header save
            one_time = session.users.reset_password(username)
            _remember_head(session)
            return one_time
        finally:
            session.close()
    finally:
        vault.lock.release()


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


def share_practice_ca(session: Session) -> list[str]:
    """Version 2, an administrator's typed-password session: give each other active
    administrator whose key a lead has confirmed a wrap of the practice CA (decision D4), in
    one `ca_shared` event; returns their usernames."""
    if session.keys is None or session.user.role != "admin":
        return []
    from gpshare.services.server import stored_workstation_ca

    # A practice server's workstation CA (TLS client certificates) is shared the same way.
    _share_ca(session, practice_ca.WORKSTATION_CA, stored_workstation_ca)
    return _share_ca(session, practice_ca.CA_KIND, lambda tx: tx.get_practice_ca())


def _share_ca(
    session: Session, kind: str, stored_of: Callable[[Any], WrappedKey | None]
) -> list[str]:
    keys = session.keys
    assert keys is not None
    with session._read() as tx:
        stored = stored_of(tx)
        to = practice_ca.pending_shares(tx, keys, kind) if stored is not None else []
    if stored is None or not to:
        return []
    now = session.now_iso()
    names = [r.id for r in to]
    details: dict[str, Any] = {"with": names}
    if kind != practice_ca.CA_KIND:
        details["ca"] = kind
    try:
        session._write(
            "ca_shared",
            lambda tx: practice_ca.share_ca(tx, keys, stored, to, now, kind),
            details=details,
        )
    except KeyNotHeld:
        return []  # this administrator holds no wrap either: another one shares it
    return names
