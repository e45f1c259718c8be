"""Encrypted snapshots of the vault (same cipher, same key), rotation and restore."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from gpshare.store import audit
from gpshare.store.db import Connection, integrity_problems, open_database
from gpshare.store.errors import CorruptDatabaseError, StorageWriteError, StoreError
from gpshare.store.files import describe_os_error
from gpshare.store.vault import DB_NAME, HEADER_NAME, Vault

DEFAULT_KEEP = 10


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

    The snapshot is written into a hidden temporary folder and renamed into place, so an
    interrupted backup never looks like a complete one.
    """
    target_root = vault.backup_dir
    final = target_root / _stamp(when)
    staging = target_root / f".incomplete-{_stamp(when)}"
    try:
        target_root.mkdir(mode=0o700, exist_ok=True)
        if staging.exists():
            shutil.rmtree(staging)
        staging.mkdir(mode=0o700)
        db_copy = staging / DB_NAME
        # ATTACH … KEY takes no parameters; the path is ours and quotes are doubled.
        quoted = str(db_copy).replace("'", "''")
        conn.execute(f"ATTACH DATABASE '{quoted}' AS snapshot KEY \"x'{db_key.hex()}'\"")
        try:
            conn.execute("SELECT sqlcipher_export('snapshot')")
            version = conn.execute("PRAGMA user_version").fetchone()[0]
            conn.execute(f"PRAGMA snapshot.user_version = {int(version)}")
        finally:
            conn.execute("DETACH DATABASE snapshot")
        os.chmod(db_copy, 0o600)
        shutil.copyfile(vault.header_path, staging / HEADER_NAME)
        os.chmod(staging / HEADER_NAME, 0o600)
        for item in staging.iterdir():
            with open(item, "rb") as handle:
                os.fsync(handle.fileno())
        os.replace(staging, final)
    except OSError as exc:
        with contextlib.suppress(OSError):
            shutil.rmtree(staging)
        raise StorageWriteError(describe_os_error(exc, final / DB_NAME)) from exc
    rotate(vault, keep)
    return final


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


def check_backup(snapshot: Path, db_key: bytes) -> audit.ChainReport:
    """Open a snapshot with the key, run the integrity checks and verify its audit chain.

    Raises CorruptDatabaseError if the snapshot is damaged; returns the chain report.
    """
    header_file = snapshot / HEADER_NAME
    db_file = snapshot / DB_NAME
    if not db_file.exists() or not header_file.exists():
        raise CorruptDatabaseError(
            f"{snapshot} is not a complete gpshare backup (it needs {DB_NAME} and {HEADER_NAME})."
        )
    conn = open_database(db_file, db_key)
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
        )
    finally:
        conn.close()
    if not report.ok:
        raise CorruptDatabaseError(
            f"The backup {snapshot.name} has a broken audit log ({report.summary()}). Choose another backup."
        )
    return report


def restore_backup(vault_folder: Path, snapshot: Path, db_key: bytes, when: datetime) -> Path:
    """Replace the vault's database and header with `snapshot` after checking it.

    The replaced files are kept aside in `replaced-<timestamp>/`; nothing is deleted.
    The caller must have closed its connection to the vault's database.
    """
    check_backup(snapshot, db_key)
    aside = vault_folder / f"replaced-{_stamp(when)}"
    try:
        aside.mkdir(mode=0o700)
        for name in (DB_NAME, f"{DB_NAME}-wal", f"{DB_NAME}-shm", HEADER_NAME):
            current = vault_folder / name
            if current.exists():
                os.replace(current, aside / name)
        for name in (DB_NAME, HEADER_NAME):
            tmp = vault_folder / f".{name}.restoring"
            shutil.copyfile(snapshot / name, tmp)
            os.chmod(tmp, 0o600)
            os.replace(tmp, vault_folder / name)
    except OSError as exc:
        raise StoreError(
            f"Restore stopped: {describe_os_error(exc, vault_folder / DB_NAME)} The previous files are in {aside}."
        ) from exc
    return aside
