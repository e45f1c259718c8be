"""Encrypted snapshots of the vault (same cipher, same key), rotation and restore."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from gpshare.records import User
from gpshare.store import audit
from gpshare.store.errors import (
    CorruptDatabaseError,
    StorageWriteError,
    StoreError,
    VaultBusyError,
)
from gpshare.store.files import VaultLock, atomic_write, describe_os_error, fsync_dir
from gpshare.store.sqlcipher.db import (
    Connection,
    integrity_problems,
    open_database,
    page_problems,
    transaction,
)
from gpshare.store.sqlcipher.repositories import get_user
from gpshare.store.vault import DB_NAME, HEADER_NAME, Vault

DEFAULT_KEEP = 10
# Files only a version-2 vault has beside its database: the lead's search index (derived,
# rebuilt from the records). Set aside when a pre-upgrade backup puts version 1 back.
VERSION_2_LOCAL_FILES = ("lead-index.db", "lead-index.db-wal", "lead-index.db-shm")


@dataclass(frozen=True)
class BackupInfo:
    """One snapshot folder under backups/."""

    path: Path
    created: datetime
    size_bytes: int


def _stamp(when: datetime) -> str:
    return when.strftime("%Y%m%dT%H%M%S%fZ")


def create_backup(
    conn: Connection, db_key: bytes, vault: Vault, when: datetime, keep: int = DEFAULT_KEEP
) -> Path:
    """Snapshot the open database and header into backups/<timestamp>/ and rotate.

    The live database is integrity-checked first and the copy before it is renamed into
    place, so a damaged database never enters the rotation and never pushes a good snapshot
    out. The snapshot is written into a hidden temporary folder and renamed into place, so an
    interrupted backup never looks like a complete one (and is cleared by the next backup).
    The caller holds the vault lock.
    """
    problems = integrity_problems(conn, quick=True)
    if problems:
        raise CorruptDatabaseError(
            f"The vault's database failed its integrity check ({problems[0]}), so no backup was "
            "taken: a damaged copy must not replace good backups. Stop using this vault and ask "
            "the practice administrator to restore the latest backup ('gpshare restore')."
        )
    target_root = vault.backup_dir
    final = target_root / _stamp(when)
    staging = target_root / f".incomplete-{_stamp(when)}"
    try:
        target_root.mkdir(mode=0o700, exist_ok=True)
        clean_incomplete(vault)
        staging.mkdir(mode=0o700)
        db_copy = staging / DB_NAME
        # The live database passed quick_check; the copy's pages are what can differ.
        copy_problems = export_copy(conn, db_copy, db_key)
        if copy_problems:
            shutil.rmtree(staging, ignore_errors=True)
            raise CorruptDatabaseError(
                f"The backup copy failed its integrity check ({copy_problems[0]}), so it was "
                "discarded and the existing backups were kept. Check the disk holding the vault "
                "and try again."
            )
        os.chmod(db_copy, 0o600)
        shutil.copyfile(vault.header_path, staging / HEADER_NAME)
        os.chmod(staging / HEADER_NAME, 0o600)
        for item in staging.iterdir():
            with open(item, "rb") as handle:
                os.fsync(handle.fileno())
        os.replace(staging, final)
        fsync_dir(target_root)
    except OSError as exc:
        with contextlib.suppress(OSError):
            shutil.rmtree(staging)
        raise StorageWriteError(describe_os_error(exc, final / DB_NAME)) from exc
    rotate(vault, keep)
    return final


def export_copy(conn: Connection, target: Path, key: bytes) -> list[str]:
    """Write a fresh copy of `conn`'s database into the new file `target` (0600), encrypted
    under `key`, and return the copy's page problems (empty when it is sound).

    A fresh file, not a copy of the pages: free pages of the source never reach it. Used for
    snapshots (same key) and by the v1 → v2 migration to rekey old snapshots (another key).
    """
    os.close(os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
    # ATTACH … KEY takes no parameters; the path is ours and quotes are doubled.
    quoted = str(target).replace("'", "''")
    conn.execute(f"ATTACH DATABASE '{quoted}' AS snapshot KEY \"x'{key.hex()}'\"")
    try:
        conn.execute("SELECT sqlcipher_export('snapshot')")
        version = conn.execute("PRAGMA user_version").fetchone()[0]
        conn.execute(f"PRAGMA snapshot.user_version = {int(version)}")
        return page_problems(conn, schema="snapshot")
    finally:
        conn.execute("DETACH DATABASE snapshot")


def clean_incomplete(vault: Vault) -> list[str]:
    """Remove `.incomplete-*` folders left by killed backups; returns their names.

    Only called with the vault lock held, so no other backup of this vault is running.
    A symlink is unlinked, never followed.
    """
    removed: list[str] = []
    if not vault.backup_dir.is_dir():
        return removed
    for entry in vault.backup_dir.iterdir():
        if not entry.name.startswith(".incomplete-"):
            continue
        with contextlib.suppress(OSError):
            if entry.is_symlink() or not entry.is_dir():
                entry.unlink()
            else:
                shutil.rmtree(entry)
            removed.append(entry.name)
    return removed


def list_backups(vault: Vault) -> list[BackupInfo]:
    """Complete snapshots, newest first."""
    found: list[BackupInfo] = []
    if not vault.backup_dir.is_dir():
        return found
    for entry in vault.backup_dir.iterdir():
        if entry.name.startswith(".") or not (entry / DB_NAME).exists():
            continue
        try:
            created = datetime.strptime(entry.name, "%Y%m%dT%H%M%S%fZ")
        except ValueError:
            continue
        size = sum(f.stat().st_size for f in entry.iterdir())
        found.append(BackupInfo(entry, created, size))
    found.sort(key=lambda b: b.created, reverse=True)
    return found


def rotate(vault: Vault, keep: int) -> None:
    """Delete all but the newest `keep` snapshots."""
    for old in list_backups(vault)[max(1, keep) :]:
        shutil.rmtree(old.path, ignore_errors=True)


def open_snapshot(snapshot: Path, db_key: bytes) -> Connection:
    """Open a snapshot's database; a failure is blamed on the snapshot, not the live vault."""
    try:
        return open_database(snapshot / DB_NAME, db_key)
    except CorruptDatabaseError as exc:
        raise CorruptDatabaseError(
            f"The backup {snapshot.name} is damaged or is not a backup of this vault (its "
            f"{DB_NAME} cannot be read with this vault's key). The live vault has not been "
            "changed. Choose another backup with --from."
        ) from exc


def snapshot_user(snapshot: Path, db_key: bytes, username: str) -> User | None:
    """`username` as the snapshot's database holds them (None if absent): the restore's
    role check, made without opening a store on a folder that is not a live vault."""
    # Here, not at the top: the engine imports this module.
    from gpshare.store.sqlcipher.engine import _driver_errors

    conn = open_snapshot(snapshot, db_key)
    try:
        with _driver_errors():
            return get_user(conn, username)
    finally:
        conn.close()


def check_backup(snapshot: Path, db_key: bytes, open_key: bytes | None = None) -> audit.ChainReport:
    """Open a snapshot with the key, run the integrity checks and verify its audit chain.

    `open_key`: the key the snapshot's database is under when it is not `db_key` (a
    pre-upgrade snapshot under its legacy-backup key, decision D3); its chain is still sealed
    under `db_key`. Raises CorruptDatabaseError if the snapshot is damaged; returns the chain
    report.
    """
    header_file = snapshot / HEADER_NAME
    db_file = snapshot / DB_NAME
    if not db_file.exists() or not header_file.exists():
        raise CorruptDatabaseError(
            f"{snapshot} is not a complete gpshare backup (it needs {DB_NAME} and {HEADER_NAME})."
        )
    conn = open_snapshot(snapshot, open_key or db_key)
    try:
        problems = integrity_problems(conn)
        if problems:
            raise CorruptDatabaseError(
                f"The backup {snapshot.name} is damaged: {problems[0]}. Choose an older backup."
            )
        header = json.loads(header_file.read_text(encoding="utf-8"))
        head = header.get("audit_head", {})
        report = audit.verify(
            conn,
            audit.audit_key(db_key),
            (int(head.get("seq", 0)), str(head.get("hash", audit.GENESIS))),
            legacy_key=audit.legacy_key(db_key),
        )
    finally:
        conn.close()
    if not report.ok:
        raise CorruptDatabaseError(
            f"The backup {snapshot.name} has a broken audit log ({report.summary()}). Choose another backup."
        )
    return report


@dataclass(frozen=True)
class RestoredEvent:
    """The `backup_restored` event a restore writes into the restored chain: who restored,
    and what (the restore adds `kept_aside`, the folder the replaced files went to)."""

    actor: str
    details: Mapping[str, Any]


def restore_backup(
    vault_folder: Path,
    snapshot: Path,
    db_key: bytes,
    when: datetime,
    header: Vault,
    event: RestoredEvent,
    source_key: bytes | None = None,
    also_aside: Sequence[str] = (),
) -> Path:
    """Replace the vault's database and header with `snapshot` after checking it.

    `header` is the snapshot's header as it should be installed (with its restore record);
    it is sealed here, with the head of the restored chain. The swap is crash-safe: both
    files are copied in under temporary names, the `backup_restored` event (`event`) is
    appended to the copied database, both are fsynced, a journal then marks the swap as
    committed, and the live files are moved into `replaced-<timestamp>/` (nothing is
    deleted) before the new ones are renamed in. A restore killed part-way is rolled back
    (before the journal says "swapping") or forward (after) by `finish_interrupted_restore`
    on the next start; either way the restored chain holds its `backup_restored` event
    exactly once, since the event travels with the files it describes. The caller holds
    the lock.

    `source_key`: the snapshot's database is under this key (a pre-upgrade snapshot, D3) and
    is written afresh under `db_key` rather than copied. `also_aside`: other files of the
    folder that the restored vault must not find (from VERSION_2_LOCAL_FILES; moved aside
    with the swap, so a roll forward moves them too).
    """
    check_backup(snapshot, db_key, source_key)
    aside = vault_folder / f"replaced-{_stamp(when)}"
    journal = vault_folder / JOURNAL_NAME
    incoming = vault_folder / f".{DB_NAME}.restoring"
    try:
        vault_folder.mkdir(parents=True, exist_ok=True, mode=0o700)
        entry = {
            "snapshot": snapshot.name,
            "aside": aside.name,
            "also_aside": [n for n in also_aside if n in VERSION_2_LOCAL_FILES],
        }
        atomic_write(journal, json.dumps({**entry, "state": "copying"}).encode())
        if source_key is None:
            _copy_synced(snapshot / DB_NAME, incoming)
        else:
            _export_synced(snapshot, source_key, incoming, db_key)
        seq, digest = _append_restored(incoming, db_key, header, when, event, aside.name)
        header.header["audit_head"] = {"seq": seq, "hash": digest}
        header.seal(db_key)
        atomic_write(vault_folder / f".{HEADER_NAME}.restoring", header.header_bytes())
        fsync_dir(vault_folder)
        # From here on the new files are complete: a crash rolls forward.
        atomic_write(journal, json.dumps({**entry, "state": "swapping"}).encode())
        _roll_forward(vault_folder, aside, entry["also_aside"])
        journal.unlink()
        fsync_dir(vault_folder)
    except (OSError, StorageWriteError) as exc:
        reason = (
            describe_os_error(exc, vault_folder / DB_NAME) if isinstance(exc, OSError) else str(exc)
        )
        raise StoreError(
            f"Restore stopped: {reason} It will be finished or undone the next time the vault "
            f"is opened; any replaced files are in {aside}."
        ) from exc
    return aside


JOURNAL_NAME = "restore.journal"
_SWAPPED = (DB_NAME, HEADER_NAME)
_STALE = (f"{DB_NAME}-wal", f"{DB_NAME}-shm")
# What a copy being prepared can leave beside itself (SQLite's rollback journal or WAL).
_LEFTOVERS = ("", "-journal", "-wal", "-shm")


def _append_restored(
    incoming: Path,
    db_key: bytes,
    header: Vault,
    when: datetime,
    event: RestoredEvent,
    aside_name: str,
) -> tuple[int, str]:
    """Append `event` (backup_restored, with `kept_aside`) to the copied database before
    the swap, so the restored chain says the restore happened whenever its files are in
    place; returns the new head. The copy is left as one fsynced file (no WAL)."""
    from gpshare.store.sqlcipher.engine import _driver_errors

    conn = open_database(incoming, db_key)
    try:
        with _driver_errors():
            problem = audit.head_problem(conn, header.audit_head())
            if problem:
                raise CorruptDatabaseError(
                    f"The backup's audit log does not match its vault.json ({problem}). The "
                    "live vault has not been changed. Choose another backup."
                )
            with transaction(conn):
                head = audit.append(
                    conn,
                    audit.audit_key(db_key),
                    at=when,
                    actor=event.actor,
                    action=audit.RESTORED_ACTION,
                    details={**event.details, "kept_aside": aside_name},
                )
            # Back to a rollback journal: the write-ahead log is folded into the file and
            # removed, so the one file renamed into place holds the event.
            conn.execute("PRAGMA journal_mode = DELETE").fetchone()
    finally:
        conn.close()
    with open(incoming, "rb") as handle:
        os.fsync(handle.fileno())
    return head


def _copy_synced(source: Path, target: Path) -> None:
    fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as out, open(source, "rb") as src:
        shutil.copyfileobj(src, out, 1024 * 1024)
        out.flush()
        os.fsync(out.fileno())


def reencrypt_snapshot(snapshot: Path, source_key: bytes, target: Path, key: bytes) -> list[str]:
    """The snapshot's database (under `source_key`) written afresh into `target` under `key`
    and fsynced (a stale `target` is replaced); the copy's page problems, empty when sound.
    The upgrade's rekey of old snapshots (D3) and the restore of one (the reverse)."""
    from gpshare.store.sqlcipher.engine import _driver_errors

    for leftover in (target, target.with_name(f"{target.name}-journal")):
        with contextlib.suppress(FileNotFoundError):
            leftover.unlink()
    conn = open_snapshot(snapshot, source_key)
    try:
        with _driver_errors():
            problems = export_copy(conn, target, key)
    finally:
        conn.close()
    with open(target, "rb") as handle:
        os.fsync(handle.fileno())
    return problems


def _export_synced(snapshot: Path, source_key: bytes, target: Path, key: bytes) -> None:
    """The snapshot's database written afresh into `target` under `key` (page-checked)."""
    problems = reencrypt_snapshot(snapshot, source_key, target, key)
    if problems:
        raise CorruptDatabaseError(
            f"The backup {snapshot.name} could not be re-encrypted ({problems[0]}). The live "
            "vault has not been changed."
        )


def _set_aside(current: Path, aside: Path) -> None:
    target = aside / current.name
    n = 1
    while target.exists():  # never overwrite something already kept aside
        target = aside / f"{current.name}.{n}"
        n += 1
    os.replace(current, target)


def _roll_forward(folder: Path, aside: Path, also_aside: Sequence[str] = ()) -> None:
    """Idempotent second half of a restore: live files aside, restored files in (and the
    files `also_aside` names, which the restored vault must not find, aside too)."""
    aside.mkdir(mode=0o700, exist_ok=True)
    # The old WAL must go first: replayed onto the restored database it would corrupt it.
    for name in _STALE:
        if (folder / name).exists():
            _set_aside(folder / name, aside)
    for name in _SWAPPED:
        incoming = folder / f".{name}.restoring"
        if not incoming.exists():
            continue  # already swapped in before the interruption
        if (folder / name).exists():
            _set_aside(folder / name, aside)
        os.replace(incoming, folder / name)
    for name in also_aside:
        if (folder / name).exists():
            _set_aside(folder / name, aside)
    fsync_dir(aside)
    fsync_dir(folder)


def finish_interrupted_restore(folder: Path) -> str | None:
    """On start-up: complete or undo a restore that was killed; returns what was done.

    Skipped while another process holds the vault lock (that restore may still be running).
    """
    journal = folder / JOURNAL_NAME

    def finish() -> str:
        try:
            data = json.loads(journal.read_text(encoding="utf-8"))
            state, aside_name = str(data["state"]), str(data["aside"])
            # The journal is not authenticated: only the known version-2 files are moved.
            listed = data.get("also_aside", [])
            also = [n for n in VERSION_2_LOCAL_FILES if isinstance(listed, list) and n in listed]
        except (OSError, ValueError, KeyError, TypeError):
            state, aside_name, also = "copying", "", []  # a torn journal predates "swapping"
        aside_ok = aside_name.startswith("replaced-") and "/" not in aside_name
        if state == "swapping" and aside_ok and "\\" not in aside_name:
            # The restored database already holds its backup_restored event (restore_backup).
            _roll_forward(folder, folder / aside_name, also)
            done = "finished"
        else:
            for name in _SWAPPED:
                for suffix in _LEFTOVERS:
                    with contextlib.suppress(FileNotFoundError):
                        (folder / f".{name}.restoring{suffix}").unlink()
            done = "undone"
        journal.unlink()
        fsync_dir(folder)
        return done

    return finish_journalled(folder, journal, finish)


def finish_journalled(folder: Path, journal: Path, finish: Callable[[], str]) -> str | None:
    """Run `finish` (roll an interrupted restore or upgrade back or forward; returns what it
    did) under the vault lock when `journal` exists. Skipped while another process holds the
    lock: that restore or upgrade may still be running."""
    if not journal.exists():
        return None
    lock = VaultLock(folder)
    try:
        lock.acquire()
    except (VaultBusyError, StorageWriteError):
        return None
    try:
        if not journal.exists():
            return None
        return finish()
    finally:
        lock.release()
