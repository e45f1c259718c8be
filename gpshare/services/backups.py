"""Backups: snapshots from a session, and restore before any session exists (session.backups)."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gpshare import access
from gpshare.clock import Clock, SystemClock
from gpshare.errors import (
    LegacyBackupRefused,
    NotFound,
    PasswordChangeRequired,
    PermissionDenied,
)
from gpshare.filters import AuditFilter
from gpshare.records import User
from gpshare.services._base import Service
from gpshare.services.record_keys import LEAD_RECIPIENT, LEGACY_BACKUP
from gpshare.store import anchor, backup, open_store
from gpshare.store.audit import MIGRATED_ACTION
from gpshare.store.backup import BackupInfo
from gpshare.store.errors import (
    CorruptDatabaseError,
    NotAVaultError,
    StoreError,
    TamperedError,
    UnknownUserError,
    WrongPasswordError,
)
from gpshare.store.port import AuditEntry, ObjectWrap, ReadTx
from gpshare.store.vault import Vault


class BackupsService(Service):
    """Encrypted snapshots of the open vault."""

    def backup_now(self, *, automatic: bool = False) -> Path:
        """Encrypted snapshot with rotation: admins on demand; anyone's session on close."""
        self._require("backup" if not automatic else "backup_on_close")
        keep = int(self._session.practice.settings().get("backup_keep", backup.DEFAULT_KEEP))
        if self._session.vault.engine != "sqlcipher":
            # A practice server is backed up on the server: its engine refuses, saying so, and
            # nothing is audited (the app tries this at every close).
            return self._session.store.create_backup(self._session.clock.now(), keep)
        # Audit first so the snapshot contains its own backup event and a matching head.
        self._session.audit("backup_created", None, {"automatic": automatic})
        try:
            return self._session.store.create_backup(self._session.clock.now(), keep)
        except StoreError as exc:
            # The event above promised a backup: say in the log that none was kept.
            self._session.audit("backup_failed", None, {"reason": exc.__class__.__name__})
            raise

    def list_backups(self) -> list[backup.BackupInfo]:
        self._require("list_backups")
        return backup.list_backups(self._session.vault)

    def open_legacy_backup(self, snapshot_name: str, admin: str) -> bytes:
        """Lead: the key of a backup taken before the upgrade to version 2 (decision D3), for
        `admin` (an active administrator) to restore it; checked against the commitment in
        the `vault_migrated` event, and audited."""
        self._require("open_legacy_backup")
        session = self._session
        if session.keys is None:
            raise NotFound("This vault was never upgraded: it keeps no pre-upgrade backups.")
        with session._read() as tx:
            user = tx.get_user(admin)
        if user is None or not user.active or user.role not in access.POLICY["restore"]:
            raise PermissionDenied(
                f"{admin} is not an active administrator of this vault: only an administrator "
                "can restore a backup."
            )
        found, wraps = legacy_backup_wraps(session._read, snapshot_name, [LEAD_RECIPIENT])
        key = session.keys.open_object_key(
            LEGACY_BACKUP,
            snapshot_name,
            found,
            [(w.recipient, w.recipient_generation, w.wrap) for w in wraps],
        )
        session.audit("legacy_backup_opened", None, {"snapshot": snapshot_name, "for": admin})
        return key.reveal()


def legacy_backup_wraps(
    read: Callable[[], AbstractContextManager[ReadTx]],
    snapshot_name: str,
    recipients: Sequence[str],
) -> tuple[bytes, list[ObjectWrap]]:
    """(The commitment the `vault_migrated` event recorded for `snapshot_name`'s legacy-backup
    key, that key's wraps for `recipients`), read through `read` (a session's `_read`);
    NotFound, naming the snapshot, when the upgrade's record does not name it (D3)."""
    with read() as tx:
        events = tx.audit_events(AuditFilter(action=MIGRATED_ACTION))
        wraps = [
            w
            for recipient in recipients
            for w in tx.object_wraps_for(recipient, [(LEGACY_BACKUP, snapshot_name)])
        ]
    committed = [e.details.get("legacy_backups", {}).get(snapshot_name) for e in events]
    found = next((c for c in committed if c), None)
    if found is None or not wraps:
        raise NotFound(
            f"{snapshot_name} is not a backup kept from before this vault's upgrade "
            "(nothing in the upgrade's record names it)."
        )
    return bytes.fromhex(str(found)), wraps


def backups_for_failed_unlock(folder: Path, exc: BaseException) -> list[backup.BackupInfo]:
    """The snapshots under `folder`/backups (newest first, read without unlocking) when an
    unlock failed in a way restoring one repairs: a rolled-back, damaged or truncated
    database or header, or a missing records.db / vault.json. Otherwise none."""
    if not isinstance(exc, TamperedError | CorruptDatabaseError | NotAVaultError):
        return []
    return backup.list_backups(Vault(Path(folder), {}))


@dataclass(frozen=True)
class LeadPresent:
    """The safeguarding lead who opens a pre-upgrade backup's key (decision D3), typing their
    own password beside the administrator who restores it."""

    username: str
    password: str


@dataclass(frozen=True)
class BreakGlassPresent:
    """The holder of the break-glass code, opening a pre-upgrade backup's key when no lead
    can (docs/vault-v2.md §4, D3): the code, typed by its holder, and why it is used (both
    recorded; the code itself never)."""

    code: str = field(repr=False)
    reason: str


def is_pre_upgrade(folder: Path, snapshot: Path) -> bool:
    """Is `snapshot` a version-1 backup kept from before this vault's upgrade to version 2
    (read without unlocking: the live header, or a version-2 snapshot beside it, says the
    vault was upgraded)?"""
    try:
        if int(Vault.read_header(snapshot).get("format_version", 1)) != 1:
            return False
    except StoreError:
        return False
    try:
        # The live header decides (a vault put back to version 1 may still keep version-2
        # snapshots from the upgrade it undid, and its own v1 snapshots are ordinary ones).
        return int(Vault.read_header(Path(folder)).get("format_version", 1)) >= 2
    except (StoreError, ValueError, TypeError):
        pass  # unreadable: a version-2 snapshot beside it says the vault was upgraded
    for other in list_backups(Path(folder)):
        with contextlib.suppress(StoreError):
            if int(Vault.read_header(other.path).get("format_version", 1)) >= 2:
                return True
    return False


def restore(
    folder: Path,
    snapshot: Path,
    username: str,
    password: str,
    clock: Clock | None = None,
) -> Path:
    """Admin: check `snapshot` and replace the vault's files with it (old files kept aside).

    Works from the snapshot's own header, so it repairs a vault whose records.db or
    vault.json is missing, empty or damaged: the admin is authenticated against the
    snapshot's key slots and must be an active admin in the snapshot's database. When the
    admin's password changed since the backup, their current password is accepted if the
    live vault still opens with it (they must be an admin there), and their current slot is
    carried into the restored header. Whenever the live vault opens with the key, it must
    still count the user as an active admin.

    A backup taken before the vault was upgraded to version 2 is refused here
    (LegacyBackupRefused, naming the command): putting it back is the explicit step
    `migrate_v2.restore_pre_upgrade`, with a lead present to open its key.
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
    if is_pre_upgrade(folder, snapshot):
        raise LegacyBackupRefused(
            f"The backup {snapshot.name} was taken before this vault was upgraded to version "
            "2. Restoring it puts the version-1 vault back: the upgrade and everything "
            "recorded since are undone (the current files are kept aside), and the vault must "
            "then be upgraded again. Only a safeguarding lead's key opens it. If that is what "
            "the practice wants, with a lead beside you run: gpshare restore --vault DIR "
            f"--user {username} --from backups/{snapshot.name} --undo-upgrade --lead LEAD "
            "(or in the app: Admin › Backups, choose this backup, Restore selected…)."
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
    actor = (
        backup.snapshot_user(snapshot, db_key, username)
        if carried_slot is None
        else _user_in(Vault(folder, {}), db_key, username, clock)
    )
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
        # The restored chain records the restore itself (appended before the swap, so a
        # restore killed after it still says so, once). The epoch lets a witness older than
        # the restore be accepted (services/_integrity).
        event = backup.RestoredEvent(
            username, {"snapshot": snapshot.name, "epoch": snap.restore_number()}
        )
        aside = backup.restore_backup(folder, snapshot, db_key, clock.now(), snap, event)
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
        user = _user_in(live, db_key, username, SystemClock())
    except StoreError:
        return None
    return user is not None and user.active and user.role in access.POLICY["restore"]


def _user_in(vault: Vault, db_key: bytes, username: str, clock: Clock) -> User | None:
    """`username` as the vault's database holds them (None if absent); raises StoreError."""
    store = open_store(vault, db_key, clock)
    try:
        with store.read() as tx:
            return tx.get_user(username)
    finally:
        store.close()


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
        store = open_store(vault, db_key, clock)
    except (StoreError, ValueError):
        return 0
    try:
        with store.read() as tx:
            if tx.head_problem(vault.audit_head()):
                return vault.audit_head()[0]
        with store.write(AuditEntry(actor, action, None, details, clock.now())):
            pass
        head = store.last_head
        vault.set_audit_head(db_key, head.seq, head.digest)
        return head.seq
    except StoreError:
        return vault.audit_head()[0]
    finally:
        store.close()


def list_backups(folder: Path) -> list[BackupInfo]:
    """Complete backup snapshots of the vault in `folder`, newest first (no unlocking needed:
    used to pick a snapshot to restore)."""
    return backup.list_backups(Vault(folder, {}))
