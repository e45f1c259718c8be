"""What the practice server cannot do undetected, the PostgreSQL side (DESIGN §10.3): the
sealed-row inventory with each row's M MAC checked (a failing row is reported, not raised, so a
verify names every one), backup and restore with pg_dump, and workstation enrolment.

The audit chain itself is gpshare/store/postgres/audit.py; the comparison of rows with events,
witnesses and heads is engine-neutral and lives in the services (gpshare/services/_integrity.py).
"""

from __future__ import annotations

import subprocess
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql

from gpshare.errors import StoreError
from gpshare.store.keys.errors import RowMacError
from gpshare.store.sealed_rows import OBJECT_TABLES, RECORDS


def mac_failures(
    conn: psycopg.Connection,
    columns_of: Callable[[str], tuple[str, ...]],
    check: Callable[[str, Mapping[str, Any], bytes], None],
) -> set[tuple[str, str]]:
    """(table, id) of every sealed-table row whose M MAC fails; records are named by their id,
    object rows by their object id (as sealed_rows names them). `check(table, row, mac)`
    raises RowMacError when the MAC does not match."""
    bad = set()
    for name in (RECORDS, *OBJECT_TABLES):
        columns = columns_of(name)
        named_by = "id" if name == RECORDS else "object_id"
        query = sql.SQL("SELECT {}, row_mac FROM {}").format(
            sql.SQL(", ").join(map(sql.Identifier, columns)), sql.Identifier(name)
        )
        for r in conn.execute(query):
            row = dict(zip(columns, r, strict=False))
            try:
                check(name, row, bytes(r[-1]))
            except RowMacError:
                bad.add((name, str(row[named_by])))
    return bad


def _role(name: str) -> str:
    """A workstation's database role: `gpshare_ws_<name>` (letters, digits, underscore)."""
    clean = name.strip().lower()
    if not clean or not all(ch.isalnum() or ch == "_" for ch in clean) or len(clean) > 40:
        raise ValueError(
            f"Workstation name {name!r} is not usable: use 1–40 letters, digits or underscores "
            "(for example reception_2)."
        )
    return f"gpshare_ws_{clean}"


def workstation_role(name: str) -> str:
    """The database role `enrol` gives workstation `name` (ValueError when it is unusable)."""
    return _role(name)


def enrol(conn: psycopg.Connection, workstation: str, group_role: str) -> str:
    """Create a LOGIN role for one workstation, a member of `group_role` (which holds the
    grants), with no password: it authenticates by TLS client certificate (pg_hba `cert`) or
    whatever the practice's pg_hba.conf says. Returns the role name; the caller commits."""
    role = _role(workstation)
    conn.execute(
        sql.SQL("CREATE ROLE {} LOGIN IN ROLE {}").format(
            sql.Identifier(role), sql.Identifier(group_role)
        )
    )
    return role


def revoke(conn: psycopg.Connection, workstation: str, group_role: str) -> str:
    """Retire a workstation's role: no LOGIN, out of the group (kept, not dropped, so the audit
    trail's actors still resolve). Returns the role name; the caller commits."""
    role = _role(workstation)
    conn.execute(sql.SQL("ALTER ROLE {} NOLOGIN").format(sql.Identifier(role)))
    conn.execute(
        sql.SQL("REVOKE {} FROM {}").format(sql.Identifier(group_role), sql.Identifier(role))
    )
    return role


# ----- backup and restore (pg_dump custom format: ciphertext and MACed M rows only) -------------


def _run(argv: list[str], what: str) -> str:
    try:
        done = subprocess.run(argv, check=True, capture_output=True)
    except FileNotFoundError as exc:
        raise StoreError(
            f"{what}: {argv[0]} was not found. Install PostgreSQL's client programs "
            "(Debian: apt-get install postgresql-client) or give their folder."
        ) from exc
    except subprocess.CalledProcessError as exc:
        detail = (exc.stderr or b"").decode(errors="replace").strip().splitlines()
        raise StoreError(f"{what} failed: {detail[-1] if detail else exc}") from exc
    return done.stdout.decode(errors="replace")


def dump(dsn: str, out: Path, bindir: Path | None = None) -> None:
    """Back the server's database up to `out` with pg_dump (custom format). The password, if
    any, comes from libpq's own sources (PGPASSWORD, ~/.pgpass, a service file), never from an
    argument. Raises StoreError with pg_dump's last line when it fails."""
    program = str(bindir / "pg_dump") if bindir else "pg_dump"
    _run([program, "--format=custom", "--file", str(out), "--dbname", dsn], "The server backup")


def restore_dump(dsn: str, source: Path, bindir: Path | None = None) -> None:
    """Replace the database's contents with a pg_dump backup, in one transaction (all or
    nothing), as a role that owns the tables. Raises StoreError when it fails."""
    program = str(bindir / "pg_restore") if bindir else "pg_restore"
    argv = [program, "--clean", "--if-exists", "--single-transaction", "--dbname", dsn]
    _run([*argv, str(source)], "The server restore")


# A gpshare server's dump holds at least these tables (its chain and its practice header).
_DUMP_TABLES = ("audit", "audit_head", "vault_header", "settings", "users")


def check_dump(source: Path, bindir: Path | None = None) -> None:
    """Refuse, before anything is dropped, a file that is not a pg_dump backup of a gpshare
    practice server (pg_restore --list reads only its table of contents)."""
    if not source.is_file():
        raise StoreError(
            f"The backup file {source} does not exist. Give the file 'gpshare server backup' wrote."
        )
    program = str(bindir / "pg_restore") if bindir else "pg_restore"
    try:
        listing = _run([program, "--list", str(source)], "Reading the backup")
    except StoreError as exc:
        if "was not found" in str(exc):
            raise
        raise StoreError(
            f"{source} is not a practice-server backup (pg_restore cannot read it as a "
            "pg_dump archive). Nothing has been changed. Give a file made by "
            "'gpshare server backup'."
        ) from exc
    tables = {line.split()[-2] for line in listing.splitlines() if " TABLE public " in line}
    missing = [t for t in _DUMP_TABLES if t not in tables]
    if missing:
        raise StoreError(
            f"{source} is a PostgreSQL backup but not of a gpshare practice server (it has no "
            f"{', '.join(missing)} table). Nothing has been changed."
        )


def enrol_on(dsn: str, workstation: str, group_role: str, *, revoke_it: bool = False) -> str:
    """`enrol` (or `revoke` with revoke_it) on the server at `dsn`, as a role allowed to
    create roles, committed; returns the workstation's role. Raises StoreError naming what
    the server refused."""
    from gpshare.store.postgres.header import connect

    try:
        with connect(dsn) as conn, conn.transaction():
            if revoke_it:
                return revoke(conn, workstation, group_role)
            return enrol(conn, workstation, group_role)
    except psycopg.errors.DuplicateObject as exc:
        raise StoreError(
            f"Workstation {workstation!r} is already enrolled ({_role(workstation)}). To "
            "enrol it again after a revoke, drop that role on the server first."
        ) from exc
    except psycopg.errors.UndefinedObject as exc:
        raise StoreError(f"The server has no such role: {exc}".rstrip()) from exc
    except psycopg.Error as exc:
        raise StoreError(f"The practice server refused the enrolment: {exc}") from exc
