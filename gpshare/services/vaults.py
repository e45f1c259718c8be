"""Opening, creating and recovering vaults: the use cases before a session exists."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

from gpshare.clock import Clock, SystemClock
from gpshare.errors import DatabaseError, NotFound, ValidationFailed
from gpshare.records import User
from gpshare.services._records import _backfill_household_links, _backfill_referral_states
from gpshare.services.session import Session
from gpshare.services.users import validate_password, validate_username
from gpshare.store import anchor, backup, keywrap, open_store
from gpshare.store.errors import CorruptDatabaseError, RollbackError, StoreError
from gpshare.store.port import Store, WriteTx
from gpshare.store.vault import KdfParams, Vault


def damaged_database(exc: Exception) -> CorruptDatabaseError:
    """Map a low-level database failure to the message a practice can act on."""
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


def _check_anchors(vault: Vault, store: Store, db_key: bytes) -> list[tuple[str, dict[str, Any]]]:
    """Compare the chain with vault.json's head and this computer's anchor before any write.

    Raises RollbackError naming the missing range; returns audit notes for the session.
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
    if seen is not None:
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
    vault: Vault, db_key: bytes, clock: Clock
) -> tuple[Store, list[tuple[str, dict[str, Any]]]]:
    """Open the database, check anchors and (daily) integrity, then migrate.

    Returns the store and audit notes to append once the session exists.
    """
    store = open_store(vault, db_key, clock)
    try:
        notes = _check_anchors(vault, store, db_key)
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
    """Finish or undo an interrupted restore, then read the header."""
    backup.finish_interrupted_restore(Path(folder))
    return Vault.open(folder)


def _remember_head(session: Session) -> None:
    """Raise this computer's anchor to the chain's current head (best effort, noted if not)."""
    with session._read() as tx:
        head = tx.audit_head()
    seq, digest = head.seq, head.digest
    try:
        vault = session.vault
        anchor.write(vault.vault_id, session.db_key, seq, digest, vault.restore_number())
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
    store, notes = _open_checked(vault, db_key, clock)
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
    _audit_pending(session, pending, notes)
    vault.confirm_unlock(username, clock)  # sealed by the header save of the next event
    session.audit(action)
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
