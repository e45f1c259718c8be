"""Moving an embedded version-2 vault onto an empty practice server (`gpshare server migrate`,
Admin › "Move to a practice server…"; issue #14, DESIGN §10.2–10.4).

Everything moves as it is: the header (slots, break-glass slot, KDF defaults: the same practice
key and vault id, so every user signs in with their own password and every old letter still
verifies), every row and ciphertext, and the audit chain event for event (same seq and seals,
so `audit verify --rows` passes and witnesses and anchors keep their meaning). The store's half
(gpshare/store/postgres/move.py) says how each column is mapped.

Sequence: the target is checked (DSN without a password, a folder that holds nothing); the
source's header is opened with the admin's password and its database read-only under its
vault lock (nothing in the source folder is written); the source must pass its integrity
check, its chain and its rows-against-events verify. Then, in ONE server transaction: the
schema, every table, the header as generation 1 (`header_saved`) and `vault_moved_to_server`
naming the source vault, its head and the counts; then the verify (counts per table, every
sealed row's ciphertext hashes, commitments and version, each record's M fields, the source
chain inside the server's, every M row MAC, and the full `verify_integrity`), and only then
the commit. The workstation folder is written last; if that fails the practice is dropped
from the server again. An administrator holds no clinical key (by design), so each record's
summary and outcome are compared as ciphertext (SHA-256), not decrypted.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from gpshare.clock import Clock, SystemClock
from gpshare.errors import (
    PermissionDenied,
    StoreError,
    ValidationFailed,
    WrongPasswordError,
)
from gpshare.records import AuditEvent
from gpshare.services import _integrity
from gpshare.services.session import Session
from gpshare.store import anchor, enrolment
from gpshare.store.port import AuditEntry, AuditHead, ReadTx
from gpshare.store.practice_keys import PracticeKeys
from gpshare.store.sealed_rows import RECORDS, named_rows
from gpshare.store.vault import HEADER_NAME, PRACTICE_KEY_FORMAT, Vault

if TYPE_CHECKING:
    from gpshare.store.postgres.move import ServerFill

MOVED_ACTION = "vault_moved_to_server"
# progress(stage, done, total), the stages in order, for a progress bar
STAGES = ("check", "copy", "verify", "finish")
Progress = Callable[[str, int, int], None]
# The M fields of a record both engines return (the rest is sealed).
_RECORD_FIELDS = ("status", "clinician", "form_id", "form_version", "created", "updated")


@dataclass(frozen=True)
class Moved:
    """What the move did: the new workstation folder, the server, rows per table, and the
    source's chain head and the server's after the move."""

    folder: Path
    server: str
    practice: str
    counts: dict[str, int]
    source_head: tuple[int, str]
    head: tuple[int, str]
    enrolment_secret: str = ""  # the server's new enrolment secret, grouped (shown once)


def _refuse(problem: str) -> ValidationFailed:
    return ValidationFailed(problem, [{"field": "server migrate", "message": problem}])


def _check_target(dsn: str, folder: Path, source: Path) -> None:
    """The DSN has no password and libpq reads it; the folder is new or empty."""
    from gpshare.store.postgres.header import check_dsn

    check_dsn(dsn)
    folder = Path(folder)
    if folder.resolve() == Path(source).resolve():
        raise _refuse(
            "The new workstation folder (--vault) must not be the vault being moved "
            "(--from-vault): choose a new, empty folder."
        )
    if folder.exists() and (not folder.is_dir() or any(folder.iterdir())):
        raise _refuse(
            f"{folder} is not an empty folder. The moved practice needs a new, empty folder "
            "for this computer's workstation (it will hold only vault.json)."
        )


def _source(folder: Path) -> Vault:
    """The embedded version-2 vault in `folder` (its header only, nothing written)."""
    folder = Path(folder)
    header = Vault.read_header(folder)
    if header.get("engine") == "postgres":
        raise _refuse(f"{folder} is already a workstation of a practice server: nothing to move.")
    if int(header.get("format_version", 1)) < PRACTICE_KEY_FORMAT:
        raise _refuse(
            f"The vault in {folder} is version 1. Upgrade it first: gpshare migrate-v2 --vault "
            f"{folder} --user ADMIN, check it opens, then move it to the server."
        )
    if any(folder.glob("*.journal")):
        raise _refuse(
            f"The vault in {folder} has an unfinished restore or upgrade. Open it once in "
            "gpshare (which finishes or undoes it), then move it."
        )
    return Vault(folder, header)


def move_to_server(
    source: Path,
    dsn: str,
    folder: Path,
    username: str,
    password: str,
    *,
    workstation_role: str = "gpshare_workstation",
    progress: Progress | None = None,
    clock: Clock | None = None,
) -> Moved:
    """Move the embedded version-2 vault in `source` onto the empty database at `dsn` and make
    `folder` a workstation of it (see the module docstring). `username` must be an active
    administrator of the source and `password` theirs. The source folder is never written:
    its header is opened without recording the unlock, its database read-only, under its
    vault lock (VaultBusyError while gpshare has it open)."""
    _check_target(dsn, folder, source)
    vault = _source(Path(source))
    if vault.password_slot(username) is None or vault.is_disabled(username):
        raise PermissionDenied(
            f"'{username}' is not an active user of the vault in {source}: the move is made by "
            "one of its practice administrators, with their own password."
        )
    try:
        keys = vault.check_password(username, password)
    except WrongPasswordError as exc:
        raise WrongPasswordError(
            f"That password is not right for '{username}' in {source}. Nothing has been changed."
        ) from exc
    vault.lock.acquire()
    try:
        return _move(vault, keys, username, dsn, Path(folder), workstation_role, progress, clock)
    finally:
        vault.lock.release()


def move_session_to_server(
    session: Session,
    dsn: str,
    folder: Path,
    *,
    workstation_role: str = "gpshare_workstation",
    progress: Progress | None = None,
    clock: Clock | None = None,
) -> Moved:
    """The Admin screen's move: the vault of `session` (a signed-in administrator's, which
    holds the vault lock) onto the server, as `move_to_server` does. Run it in a worker: it
    reads through its own read-only connection, never the session's."""
    if session.user.role != "admin":
        raise PermissionDenied(
            "Only a practice administrator can move the vault to a practice server."
        )
    vault = session.vault
    if vault.engine != "sqlcipher":
        raise _refuse("This vault is already on a practice server: nothing to move.")
    _check_target(dsn, folder, vault.folder)
    _source(vault.folder)
    keys = session.db_key
    return _move(
        vault, keys, session.user.username, dsn, Path(folder), workstation_role, progress, clock
    )


def saved_by(events: Iterable[AuditEvent], users: set[str]) -> dict[str, str]:
    """Who saved each record's newest version, as the server's `saved_by` wants it: the actor
    of the last event naming the record's row (the embedded engine does not store it). A
    record no event names by a known user is left out (the store falls back to its author)."""
    found: dict[str, str] = {}
    for event in events:
        for row in named_rows(event.details):
            if row.table == RECORDS and event.actor in users:
                found[row.id] = event.actor
    return found


def _move(
    vault: Vault,
    keys: bytes,
    username: str,
    dsn: str,
    folder: Path,
    role: str,
    progress: Progress | None,
    clock: Clock | None,
) -> Moved:
    from gpshare.store.postgres.header import ServerVault, server_name
    from gpshare.store.postgres.move import EmbeddedSource, ServerFill, drop_practice

    if not isinstance(keys, PracticeKeys):
        raise _refuse("Only a version-2 vault (the practice key) can move to a server.")
    clock = clock or SystemClock()
    report = progress or (lambda stage, done, total: None)
    report("check", 0, 1)
    source = EmbeddedSource(vault.db_path, keys)
    try:
        tx = source.read()
        admin = tx.get_user(username)
        if admin is None or admin.role != "admin" or not admin.active:
            raise PermissionDenied(
                f"'{username}' is not an active practice administrator of this vault: only an "
                "administrator can move it to a practice server."
            )
        problems = source.problems()
        # This computer's anchor: a folder put back from an older copy is not moved.
        seen, _invalid = anchor.read(vault.vault_id, keys)
        if seen is not None:
            floor = vault.restore_floor(after=seen.restores)
            rolled_back = tx.anchor_problem((seen.seq, seen.hash), floor)
            if rolled_back:
                problems.append(f"it was rolled back: {rolled_back}")
        checked = _integrity.verify(tx, vault.audit_head())
        if problems or not checked.ok:
            raise StoreError(
                f"The vault in {vault.folder} did not pass its integrity check, so it was not "
                f"moved: {'; '.join(problems) or checked.summary()}. Nothing has been changed. "
                "Restore the latest good backup ('gpshare restore'), then move that."
            )
        events = _integrity.all_events(tx)
        counts = source.counts()
        users = {u.username for u in tx.list_users()}
        report("check", 1, 1)
        fill = ServerFill(dsn, keys, role)
        try:
            fill.copy(source, saved_by(events, users), report)
            header = copy.deepcopy(vault.header)
            moved = ServerVault(folder, header, ServerVault.pointer_for(dsn, header, ""))
            # The server gets an enrolment secret as `server init` gives one: every slot
            # sealed under it now, each password slot and bundle mixed at its next sign-in.
            secret = enrolment.new_secret()
            moved.adopt_enrolment_secret(keys, secret)
            fill.put_header(moved)
            last = tx.audit_head()
            details = {
                "source_vault_id": vault.vault_id,
                "source_head": {"seq": last.seq, "hash": last.digest},
                "counts": counts,
                "server": server_name(dsn),
                "enrolment_secret": "adopted",
            }
            head = fill.append(AuditEntry(username, MOVED_ACTION, None, details, clock.now()))
            _verify(fill, tx, counts, last, head, report)
            moved.verify_mac(keys)
            fill.commit()
        finally:
            fill.close()
    finally:
        source.close()
    made = not folder.exists()
    try:
        report("finish", 0, 1)
        folder.mkdir(parents=True, exist_ok=True, mode=0o700)
        moved._write_pointer()
        enrolment.keep(folder, moved.vault_id, secret)
        report("finish", 1, 1)  # inside: a cancel here still undoes the whole move
    except BaseException as exc:
        # Committed, but this computer has no folder for it: take the practice off the
        # server again (the database was empty), so the move can simply be run again.
        drop_practice(dsn, role if fill.created_role else None)
        (folder / HEADER_NAME).unlink(missing_ok=True)
        enrolment.forget(folder, moved.vault_id)
        if made and folder.is_dir() and not any(folder.iterdir()):
            folder.rmdir()
        if isinstance(exc, OSError):
            raise StoreError(
                f"The workstation folder {folder} could not be written ({exc.strerror}); the "
                "practice was taken off the server again and the vault was not changed. Choose "
                "a folder you can write to and run the move again."
            ) from exc
        raise
    return Moved(
        folder,
        server_name(dsn),
        vault.practice_name,
        counts,
        (last.seq, last.digest),
        (head.seq, head.digest),
        enrolment.format_secret(secret),
    )


def _differs(what: str) -> StoreError:
    return StoreError(
        f"The move was undone: {what}. The practice server's database was left empty and the "
        "vault was not changed."
    )


def _verify(
    fill: ServerFill,
    source: ReadTx,
    counts: Mapping[str, int],
    source_head: AuditHead,
    head: AuditHead,
    report: Progress,
) -> None:
    """Inside the fill's transaction, before it commits (see the module docstring)."""
    total = 6
    report("verify", 0, total)
    after = fill.counts()
    expected = {**counts, "audit": counts["audit"] + 2}  # + header_saved + the move
    wrong = [t for t in expected if expected[t] != after.get(t)]
    if wrong:
        shown = ", ".join(f"{t}: {expected[t]} expected, {after.get(t)} copied" for t in wrong)
        raise _differs(f"the server does not hold the same rows ({shown})")
    report("verify", 1, total)
    server = fill.read()
    here = {r.key: r for r in source.sealed_rows()}
    there = {r.key: r for r in server.sealed_rows()}
    if set(here) != set(there):
        raise _differs("the sealed rows on the server are not the vault's")
    for key, row in here.items():
        moved = there[key]
        if not moved.mac_ok or (row.version, dict(row.sha256), dict(row.commitment)) != (
            moved.version,
            dict(moved.sha256),
            dict(moved.commitment),
        ):
            raise _differs(f"row {row.label()} did not arrive as it was")
    report("verify", 2, total)
    for _records, record_id in (k for k in here if k[0] == RECORDS):
        a, b = source.get_record(record_id), server.get_record(record_id)
        if (
            a is None
            or b is None
            or any(getattr(a, f) != getattr(b, f) for f in (*_RECORD_FIELDS, "completed"))
        ):
            raise _differs(f"record {record_id} does not read back as it was")
    report("verify", 3, total)
    # Each seal covers the one before it, so the same seal at the source's head (with the
    # server's chain verified below) means every earlier event is the same too.
    if server.audit_hash_at(source_head.seq) != source_head.digest:
        raise _differs(f"audit event {source_head.seq} on the server is not the vault's")
    report("verify", 4, total)
    problems = fill.mac_problems()
    if problems:
        raise _differs(f"{len(problems)} rows' MACs do not verify ({problems[0]})")
    report("verify", 5, total)
    checked = _integrity.verify(server, (head.seq, head.digest))
    if not checked.ok:
        raise _differs(f"the server's full integrity check failed ({checked.summary()})")
    report("verify", total, total)
