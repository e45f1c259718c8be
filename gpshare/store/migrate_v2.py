"""Vault v1 → v2 in place, the files' half (docs/vault-v2.md §4): the fresh database the
services fill, the legacy-backup rekey (decision D3), the journal and the swap.

Journalled like `backup.restore_backup`: `migrate.journal` says `backup` (the pre-migration
snapshot is being taken), `building` (`.records.db.migrating`, the rekeyed snapshot copies and
`.vault.json.migrating` are being written) or `swapping` (all of them are complete and
fsynced). `finish_interrupted_migration` undoes a migration stopped before `swapping` (the new
files are deleted, the v1 vault is as it was) and finishes one stopped after it.
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gpshare.store import audit
from gpshare.store.backup import (
    finish_journalled,
    list_backups,
    reencrypt_snapshot,
)
from gpshare.store.errors import CorruptDatabaseError, StorageWriteError, StoreError
from gpshare.store.files import atomic_write, describe_os_error, fsync_dir
from gpshare.store.port import AuditEntry, AuditHead, WriteTx
from gpshare.store.practice_keys import PracticeKeys
from gpshare.store.sqlcipher import db
from gpshare.store.sqlcipher.engine import SqlcipherWriteTx, _driver_errors
from gpshare.store.sqlcipher.row_macs import SqliteRowMacs
from gpshare.store.vault import DB_NAME, HEADER_NAME, Vault

JOURNAL_NAME = "migrate.journal"
MIGRATING_DB = f".{DB_NAME}.migrating"
MIGRATING_HEADER = f".{HEADER_NAME}.migrating"
REKEYED_DB = f".{DB_NAME}.rekeyed"  # in each backups/<snapshot>/ until the swap
STATES = ("backup", "building", "swapping")
# Class M tables copied row for row (the audit chain event for event); every other table is
# rebuilt through the v2 writers or left empty (record_links, search text: plaintext lookups).
_PLAIN_TABLES = ("users", "settings", "audit")
_COUNTED = (
    "users", "records", "addenda", "letters", "followups", "reviews", "household_link_reviews",
    "referral_states", "signing_keys", "audit",
)  # fmt: skip


def write_journal(folder: Path, state: str) -> None:
    """Record the migration's state (fsynced; `swapping` commits it)."""
    if state not in STATES:
        raise ValueError(f"unknown migration state {state}")
    atomic_write(folder / JOURNAL_NAME, json.dumps({"state": state}).encode())


def in_progress(folder: Path) -> bool:
    """Whether a migration of this folder was started and not finished or undone."""
    return (folder / JOURNAL_NAME).exists()


@dataclass(frozen=True)
class HouseholdReviewRow:
    """A v1 household link review as stored (its decision and note in the clear)."""

    record_id: str
    other_record_id: str
    decision: str
    reviewer: str
    created: str
    note: str | None


class MigrationTarget:
    """`.records.db.migrating`: a fresh SQLCipher file under HKDF(practice, "sqlcipher") with
    every migration applied, the v1 database attached read-only as `v1` for the plain copies."""

    def __init__(self, folder: Path, keys: PracticeKeys, v1_key: bytes) -> None:
        self.folder = folder
        self.path = folder / MIGRATING_DB
        self._audit_key = audit.audit_key(keys)
        discard_building(folder)
        self._conn = db.open_database(self.path, keys, create=True)
        try:
            with _driver_errors():
                db.apply_migrations(self._conn)
                # Format 2: every class-M row gets its MAC as it is copied or sealed (the
                # connection's TEMP triggers), so the upgraded file opens like any v2 vault.
                self._macs = SqliteRowMacs(keys)
                self._macs.install(self._conn)
                quoted = str(folder / DB_NAME).replace("'", "''")
                # ATTACH … KEY takes no parameters; the path is ours and quotes are doubled.
                self._conn.execute(f"ATTACH DATABASE '{quoted}' AS v1 KEY \"x'{v1_key.hex()}'\"")
        except BaseException:
            self.close()
            raise

    def copy_plain(self, certificates: Mapping[int, str]) -> None:
        """Users, settings and the audit chain copied as they are (hashes unchanged), and the
        signing key rows with each certificate in `certificates` (by row id) re-issued."""
        with _driver_errors(), db.transaction(self._conn):
            for table in _PLAIN_TABLES:
                # v1's own columns, named: the v2 table has more (row_mac, filled by trigger).
                columns = ", ".join(
                    str(c[1]) for c in self._conn.execute(f"PRAGMA v1.table_info({table})")
                )
                self._conn.execute(
                    f"INSERT INTO main.{table} ({columns}) SELECT {columns} FROM v1.{table}"
                )
            rows = self._conn.execute(
                "SELECT id, username, cert_pem, key_nonce, wrapped_key, source, active, created "
                "FROM v1.signing_keys ORDER BY id"
            ).fetchall()
            self._conn.executemany(
                "INSERT INTO main.signing_keys (id, username, cert_pem, key_nonce, wrapped_key, "
                "source, active, created) VALUES (?,?,?,?,?,?,?,?)",
                [(r[0], r[1], certificates.get(int(r[0]), r[2]), *r[3:]) for r in rows],
            )

    def signing_certificates(self) -> list[tuple[int, str, str]]:
        """(row id, source, certificate PEM) of every v1 signing key row."""
        with _driver_errors():
            rows = self._conn.execute(
                "SELECT id, source, cert_pem FROM v1.signing_keys ORDER BY id"
            ).fetchall()
        return [(int(r[0]), str(r[1]), str(r[2])) for r in rows]

    def record_ids(self) -> list[str]:
        """Every v1 record id, oldest first."""
        with _driver_errors():
            rows = self._conn.execute("SELECT id FROM v1.records ORDER BY created, id").fetchall()
        return [str(r[0]) for r in rows]

    def household_reviews(self) -> list[HouseholdReviewRow]:
        """Every v1 household link review, in the order written."""
        with _driver_errors():
            rows = self._conn.execute(
                "SELECT record_id, other_record_id, decision, reviewer, created, note "
                "FROM v1.household_link_reviews ORDER BY id"
            ).fetchall()
        return [HouseholdReviewRow(*(str(v) if v is not None else None for v in r)) for r in rows]  # type: ignore[arg-type]

    def copy_referral_states(self) -> None:
        """The referral states (M) without the child's names (class C: in the summaries)."""
        with _driver_errors(), db.transaction(self._conn):
            self._conn.execute(
                "INSERT INTO main.referral_states (record_id, status, action, due, sent_at, "
                "acknowledged_at, clinician, child_given, child_family, created, completed) "
                "SELECT record_id, status, action, due, sent_at, acknowledged_at, clinician, "
                "NULL, NULL, created, completed FROM v1.referral_states"
            )

    @contextlib.contextmanager
    def write(self) -> Iterator[WriteTx]:
        """One transaction on the new file, no audit event (the chain is copied, then closed
        by `append`)."""
        with _driver_errors(), db.transaction(self._conn):
            yield SqlcipherWriteTx(self._conn, self._audit_key, None, self._macs)

    def append(self, entry: AuditEntry) -> AuditHead:
        """Append one event under the v2 chain key (the migration's own `vault_migrated`)."""
        with _driver_errors(), db.transaction(self._conn):
            seq, digest = audit.append(
                self._conn,
                self._audit_key,
                at=entry.at,  # type: ignore[arg-type]
                actor=entry.actor,
                action=entry.action,
                record_id=entry.record_id,
                details=dict(entry.details),
            )
        return AuditHead(seq, digest)

    def counts(self, schema: str = "main") -> dict[str, int]:
        """Rows per table of the new file (`main`) or the v1 one (`v1`)."""
        if schema not in ("main", "v1"):
            raise ValueError(schema)
        with _driver_errors():
            return {
                t: int(self._conn.execute(f"SELECT count(*) FROM {schema}.{t}").fetchone()[0])
                for t in _COUNTED
            }

    def ids(self, table: str, schema: str = "main") -> list[int]:
        """Row ids of an append-only table (addenda, letters, followups, reviews)."""
        if table not in ("addenda", "letters", "followups", "reviews") or schema not in (
            "main",
            "v1",
        ):
            raise ValueError(table)
        with _driver_errors():
            rows = self._conn.execute(f"SELECT id FROM {schema}.{table} ORDER BY id").fetchall()
        return [int(r[0]) for r in rows]

    def verify_chain(self, head: tuple[int, str], legacy_key: bytes) -> audit.ChainReport:
        """The new file's chain: v1 seals up to `vault_migrated`, v2 from it, up to `head`."""
        with _driver_errors():
            return audit.verify(self._conn, self._audit_key, head, legacy_key=legacy_key)

    def finish(self) -> None:
        """Check every page, detach v1, checkpoint and close: the file is complete on disk."""
        with _driver_errors():
            self._conn.execute("DETACH DATABASE v1")
            problems = db.integrity_problems(self._conn)
            if problems:
                raise CorruptDatabaseError(
                    f"The migrated database failed its integrity check ({problems[0]}); the "
                    "migration was undone and the vault is unchanged."
                )
            self._conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        self.close()
        with open(self.path, "rb") as handle:
            os.fsync(handle.fileno())

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self._conn.close()


def rekey_snapshots(vault: Vault, v1_key: bytes, keys: Mapping[str, bytes]) -> list[str]:
    """Decision D3: a fresh copy of each snapshot's database under its legacy-backup key
    (`keys`, by snapshot name) as `backups/<name>/.records.db.rekeyed`; the swap moves each
    over the snapshot's records.db. Returns the snapshot names."""
    done = []
    for info in list_backups(vault):
        if info.path.name not in keys:
            continue  # not under the v1 key (see snapshot_names): left as it is
        key = keys[info.path.name]
        problems = reencrypt_snapshot(info.path, v1_key, info.path / REKEYED_DB, key)
        if problems:
            raise CorruptDatabaseError(
                f"The backup {info.path.name} could not be re-encrypted ({problems[0]}); the "
                "migration was undone and the vault is unchanged."
            )
        done.append(info.path.name)
    return done


def snapshot_names(vault: Vault, v1_key: bytes | None = None) -> list[str]:
    """The complete snapshots in backups/, newest first; with `v1_key`, only those still
    under it. A vault put back to version 1 from a pre-upgrade backup and upgraded again
    also holds version-2 snapshots and snapshots an earlier upgrade re-encrypted: neither
    opens with the v1 key, and neither is re-encrypted again."""
    names = []
    for info in list_backups(vault):
        if v1_key is not None:
            try:
                header = json.loads((info.path / HEADER_NAME).read_text(encoding="utf-8"))
                if int(header.get("format_version", 1)) != 1:
                    continue
                db.open_database(info.path / DB_NAME, v1_key).close()
            except (OSError, ValueError, TypeError, AttributeError, StoreError):
                continue
        names.append(info.path.name)
    return names


def stage_header(folder: Path, header_bytes: bytes) -> None:
    """The v2 vault.json, complete and fsynced, beside the live one until the swap."""
    atomic_write(folder / MIGRATING_HEADER, header_bytes)
    fsync_dir(folder)


def discard_building(folder: Path) -> None:
    """Undo: delete every file a migration writes before `swapping` (the v1 files stay)."""
    for name in (MIGRATING_DB, f"{MIGRATING_DB}-wal", f"{MIGRATING_DB}-shm", MIGRATING_HEADER):
        with contextlib.suppress(FileNotFoundError):
            (folder / name).unlink()
    backups = folder / "backups"
    if backups.is_dir():
        for snapshot in backups.iterdir():
            with contextlib.suppress(FileNotFoundError, NotADirectoryError):
                (snapshot / REKEYED_DB).unlink()


def _roll_forward(folder: Path) -> None:
    """Idempotent: rekeyed snapshots, the new database and header in; the old database (and
    its WAL, which must never be replayed onto the new file) deleted."""
    backups = folder / "backups"
    if backups.is_dir():
        for snapshot in backups.iterdir():
            if (snapshot / REKEYED_DB).exists():
                os.replace(snapshot / REKEYED_DB, snapshot / DB_NAME)
                fsync_dir(snapshot)
    for name in (f"{DB_NAME}-wal", f"{DB_NAME}-shm"):
        with contextlib.suppress(FileNotFoundError):
            (folder / name).unlink()
    if (folder / MIGRATING_DB).exists():
        # Replacing deletes the v1 file (keeping it would defeat D3); deletion is not wiping.
        os.replace(folder / MIGRATING_DB, folder / DB_NAME)
    if (folder / MIGRATING_HEADER).exists():
        os.replace(folder / MIGRATING_HEADER, folder / HEADER_NAME)
    fsync_dir(folder)


def swap(folder: Path) -> None:
    """Commit (journal `swapping`) and move the new files in; the journal goes last."""
    try:
        write_journal(folder, "swapping")
        _roll_forward(folder)
        (folder / JOURNAL_NAME).unlink()
        fsync_dir(folder)
    except OSError as exc:
        raise StorageWriteError(
            f"The upgrade stopped while swapping in the new files: "
            f"{describe_os_error(exc, folder / DB_NAME)} It will be finished the next time "
            "the vault is opened."
        ) from exc


def undo(folder: Path) -> None:
    """Roll back a migration stopped before `swapping`; the journal goes last."""
    discard_building(folder)
    with contextlib.suppress(FileNotFoundError):
        (folder / JOURNAL_NAME).unlink()
    fsync_dir(folder)


def finish_interrupted_migration(folder: Path) -> str | None:
    """On start-up: finish (journal `swapping`) or undo (any earlier or torn state) a
    migration that was killed; returns what was done. Skipped while another process holds the
    vault lock (that migration may still be running)."""
    journal = folder / JOURNAL_NAME

    def finish() -> str:
        try:
            data: Any = json.loads(journal.read_text(encoding="utf-8"))
            state = str(data["state"])
        except (OSError, ValueError, KeyError, TypeError):
            state = "backup"  # a torn journal predates "swapping": undo
        if state == "swapping":
            _roll_forward(folder)
            journal.unlink()
            fsync_dir(folder)
            return "finished"
        undo(folder)
        return "undone"

    return finish_journalled(folder, journal, finish)
