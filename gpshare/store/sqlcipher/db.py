"""The one SQLCipher connection factory: raw key, pragmas, transactions, migrations."""

from __future__ import annotations

import contextlib
import os
import sqlite3
import sys
from collections.abc import Iterator
from importlib import resources
from pathlib import Path
from typing import TypeAlias

import sqlcipher3

from gpshare.store.errors import CorruptDatabaseError, StorageWriteError

# sqlcipher3 ships no type information; to mypy these are Any.
Connection: TypeAlias = sqlcipher3.Connection  # noqa: UP040 - runtime alias of an untyped class
DatabaseError: TypeAlias = sqlcipher3.DatabaseError  # noqa: UP040
IntegrityError = sqlcipher3.IntegrityError

_process_configured = False


def configure_process() -> None:
    """Process-wide SQLCipher settings, run once before the first key is used.

    `cipher_log_level = NONE` stops SQLCipher printing 'hmac check failed' to stderr
    when a wrong key or a damaged page is met (we report those ourselves).
    """
    global _process_configured
    if _process_configured:
        return
    conn = sqlcipher3.connect(":memory:")
    conn.execute("PRAGMA cipher_log_level = NONE")
    # Zeroes freed memory so key material and decrypted pages do not linger (DESIGN §2).
    conn.execute("PRAGMA cipher_memory_security = ON")
    conn.close()
    _process_configured = True


def _key_pragma(key: bytes) -> str:
    if len(key) != 32:
        raise ValueError("database key must be 32 bytes")
    # PRAGMA key takes no bound parameters; the literal is built only from our own hex.
    return f"PRAGMA key = \"x'{key.hex()}'\""


def open_database(path: Path, key: bytes, *, create: bool = False) -> Connection:
    """Open (or create) the encrypted database with a raw 256-bit key and verify the key."""
    configure_process()
    if create:
        _create_private(path)
    elif not path.exists():
        raise CorruptDatabaseError(
            f"The vault's database file is missing ({path.name}). Restore it from a backup "
            "(gpshare restore) or choose the right vault folder."
        )
    elif path.stat().st_size == 0:
        # SQLite would happily treat a zero-length file as a new database; never do that.
        raise CorruptDatabaseError(
            f"The vault's database file ({path.name}) is empty: its contents were lost (a failed "
            "copy, a full disk or a sync tool). Nothing has been changed. Ask the practice "
            "administrator to restore the latest backup ('gpshare restore --vault DIR --user ADMIN')."
        )
    else:
        _make_private(path)
    try:
        conn = sqlcipher3.connect(str(path), isolation_level=None, check_same_thread=False)
    except sqlcipher3.OperationalError as exc:
        raise StorageWriteError(
            f"Cannot open {path.name}: {exc}. Check the vault folder is on a readable disk."
        ) from exc
    conn.execute(_key_pragma(key))
    # Per-database settings after PRAGMA key, otherwise SQLCipher ignores them (tech-notes).
    try:
        conn.execute("SELECT count(*) FROM sqlite_master").fetchone()
        conn.execute("PRAGMA journal_mode = WAL").fetchone()
        conn.execute("PRAGMA synchronous = FULL")
        conn.execute("PRAGMA foreign_keys = ON")
        conn.execute("PRAGMA busy_timeout = 5000")
        # No checkpoint inside a commit: at 100 000 records the automatic one (every 1 000
        # WAL pages) stalled one save in ~100 for 0.2–0.7 s. The app checkpoints when the
        # user is idle and at close (checkpoint()); SQLite also does when the last
        # connection closes. Durability is unchanged: committed frames are in the fsynced WAL.
        conn.execute("PRAGMA wal_autocheckpoint = 0")
    except sqlcipher3.DatabaseError as exc:
        conn.close()
        raise CorruptDatabaseError(
            f"The vault's database ({path.name}) cannot be read with the vault key: the file "
            "is damaged, truncated or was replaced. Restore the latest backup with "
            "'gpshare restore' (your administrator can do this from Admin › Backups)."
        ) from exc
    if not create and schema_version(conn) == 0:
        conn.close()
        raise CorruptDatabaseError(
            f"The vault's database ({path.name}) holds no tables: it is not the database this "
            "vault was created with. Nothing has been changed. Ask the practice administrator "
            "to restore the latest backup ('gpshare restore --vault DIR --user ADMIN')."
        )
    return conn


def open_read_only(path: Path, key: bytes) -> Connection:
    """Open the encrypted database for reading only (SQLite's `mode=ro`): nothing in the file
    can change through this connection, which is how `gpshare server migrate` reads the vault
    it moves. Raises CorruptDatabaseError when the file is missing or the key does not open it."""
    configure_process()
    if not path.is_file() or path.stat().st_size == 0:
        raise CorruptDatabaseError(
            f"The vault's database file ({path.name}) is missing or empty. Nothing has been "
            "changed. Restore the vault from a backup first ('gpshare restore')."
        )
    # A vault closed cleanly has no write-ahead log: everything is in the file, and
    # `immutable` reads it without creating the -wal and -shm files a WAL reader would leave
    # behind. With a log present (the vault is open in this process, or was not closed),
    # `mode=ro` reads the log too.
    wal = path.with_name(path.name + "-wal")
    mode = "mode=ro" if wal.exists() else "mode=ro&immutable=1"
    try:
        conn = sqlcipher3.connect(
            f"{path.resolve().as_uri()}?{mode}", uri=True, isolation_level=None,
            check_same_thread=False,
        )  # fmt: skip
        conn.execute(_key_pragma(key))
        conn.execute("SELECT count(*) FROM sqlite_master").fetchone()
    except sqlcipher3.DatabaseError as exc:
        raise CorruptDatabaseError(
            f"The vault's database ({path.name}) cannot be read with the vault key ({exc}). "
            "Nothing has been changed. Restore the latest backup first ('gpshare restore')."
        ) from exc
    return conn


def _create_private(path: Path) -> None:
    """Create the database file empty and 0600; refuse when anything is already there."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0), 0o600)
    except FileExistsError as exc:
        raise StorageWriteError(
            f"{path} already exists; gpshare never creates a database over an existing file. "
            "Restore the vault from a backup ('gpshare restore') or choose an empty folder."
        ) from exc
    except OSError as exc:
        raise StorageWriteError(f"Cannot create {path.name}: {exc.strerror}.") from exc
    os.close(fd)


def _make_private(path: Path) -> None:
    """Vaults made before 0600 was enforced: tighten records.db on open (best effort)."""
    if sys.platform != "win32" and path.stat().st_mode & 0o077:
        with contextlib.suppress(OSError):
            os.chmod(path, 0o600)


@contextlib.contextmanager
def transaction(conn: Connection) -> Iterator[Connection]:
    """BEGIN IMMEDIATE … COMMIT, rolled back on any exception (all-or-nothing writes)."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield conn
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    else:
        try:
            conn.execute("COMMIT")
        except sqlcipher3.OperationalError as exc:
            with contextlib.suppress(sqlcipher3.Error):
                conn.execute("ROLLBACK")
            raise StorageWriteError(
                f"Could not save to the vault ({exc}). Nothing was changed. Free some disk "
                "space or check the vault folder is writable, then try again."
            ) from exc


def checkpoint(conn: Connection) -> tuple[int, int, int]:
    """PASSIVE WAL checkpoint (never waits for other connections): (busy, wal frames, copied)."""
    row = conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
    return int(row[0]), int(row[1]), int(row[2])


def page_problems(conn: Connection, schema: str = "main") -> list[str]:
    """`PRAGMA cipher_integrity_check` only: every page's HMAC, so any damaged page shows.

    About half the cost of adding `quick_check` (≈3 s per 350 MB on the 2-core test
    machine), which is why the daily check on open uses this alone.
    """
    try:
        return [str(row[0]) for row in conn.execute(f"PRAGMA {schema}.cipher_integrity_check")]
    except sqlcipher3.DatabaseError as exc:
        return [str(exc)]


def integrity_problems(conn: Connection, *, quick: bool = False, schema: str = "main") -> list[str]:
    """`PRAGMA cipher_integrity_check` plus SQLite's own check; empty when healthy.

    `quick` runs `quick_check` (every page, no index cross-check: the daily/pre-backup check).
    """
    check = "quick_check" if quick else "integrity_check"
    try:
        problems = [str(row[0]) for row in conn.execute(f"PRAGMA {schema}.cipher_integrity_check")]
        rows = [str(row[0]) for row in conn.execute(f"PRAGMA {schema}.{check}")]
    except sqlcipher3.DatabaseError as exc:
        return [str(exc)]
    if rows != ["ok"]:
        problems.extend(rows)
    return problems


def migration_files() -> list[tuple[int, str, str]]:
    """(version, name, sql) for every numbered migration, in order."""
    found: list[tuple[int, str, str]] = []
    package = resources.files("gpshare.store.sqlcipher") / "migrations"
    for entry in package.iterdir():
        name = entry.name
        if name.endswith(".sql") and name[:4].isdigit():
            found.append((int(name[:4]), name, entry.read_text(encoding="utf-8")))
    found.sort()
    return found


LATEST_SCHEMA_VERSION = max(v for v, _, _ in migration_files())


def schema_version(conn: Connection) -> int:
    """The database's migration level (PRAGMA user_version)."""
    return int(conn.execute("PRAGMA user_version").fetchone()[0])


def pending_migrations(conn: Connection) -> list[tuple[int, str, str]]:
    """Migrations newer than the database."""
    current = schema_version(conn)
    return [m for m in migration_files() if m[0] > current]


def apply_migrations(conn: Connection) -> list[int]:
    """Apply each pending migration in its own transaction together with its version bump."""
    applied: list[int] = []
    for version, _name, sql in pending_migrations(conn):
        statements = [s.strip() for s in sqlite3_split(sql) if s.strip()]
        with transaction(conn):
            for statement in statements:
                conn.execute(statement)
            conn.execute(f"PRAGMA user_version = {int(version)}")
        applied.append(version)
    return applied


def sqlite3_split(script: str) -> list[str]:
    """Split a SQL script into complete statements (handles triggers' inner semicolons)."""
    statements: list[str] = []
    current = ""
    for line in script.splitlines(keepends=True):
        if line.strip().startswith("--") and not current.strip():
            continue
        current += line
        if sqlite3.complete_statement(current):
            statements.append(current)
            current = ""
    if current.strip():
        statements.append(current)
    return statements
