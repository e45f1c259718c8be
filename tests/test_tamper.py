"""Every tamper case, one parametrised test each: detected, with a message that says what.

Each case tampers with a *closed* vault the way someone with the files would (the database
key is used only where the attacker is assumed to have it: editing the chain itself), then
either opening is refused with a specific message, or the lead's audit verification names
the broken event. `TAMPER_CASES` is counted in docs/reliability.md.
"""

from __future__ import annotations

import json
import re
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from gpshare.store import audit
from gpshare.store.errors import CorruptDatabaseError, RollbackError, TamperedError
from gpshare.store.sqlcipher import db as dbmod
from tests.conftest import VaultEnv
from tests.storehelp import raw_connection


@dataclass
class Ctx:
    """What a tamper step gets: the vault, its key (as a key-holding attacker) and a scratch dir."""

    env: VaultEnv
    key: bytes
    scratch: Path

    @property
    def db(self) -> Path:
        return self.env.folder / "records.db"

    @property
    def header(self) -> Path:
        return self.env.folder / "vault.json"

    def raw(self):  # type: ignore[no-untyped-def]
        """A connection without the append-only triggers (an attacker who has the key)."""
        conn = dbmod.open_database(self.db, self.key)
        conn.execute("DROP TRIGGER IF EXISTS audit_no_update")
        conn.execute("DROP TRIGGER IF EXISTS audit_no_delete")
        return conn

    def last_seq(self) -> int:
        conn = dbmod.open_database(self.db, self.key)
        try:
            return audit.latest(conn)[0]
        finally:
            conn.close()

    def activity(self, n: int = 3) -> None:
        """Normal use between a copy and the attack: n sessions, each with a viewed record."""
        for _ in range(n):
            self.env.clock.advance(60)
            s = self.env.session("drsmith")
            s.assessments.start_assessment(answers={"child_given_name": "Later"})
            s.close()

    def copy(self, *names: str) -> Path:
        target = self.scratch / f"copy-{len(list(self.scratch.iterdir()))}"
        target.mkdir()
        for name in names:
            shutil.copy2(self.env.folder / name, target / name)
        return target

    def put_back(self, copy: Path, *names: str) -> None:
        for suffix in ("-wal", "-shm"):
            (self.env.folder / f"records.db{suffix}").unlink(missing_ok=True)
        for name in names:
            shutil.copy2(copy / name, self.env.folder / name)

    def edit_header(self, change: Callable[[dict], None]) -> None:
        header = json.loads(self.header.read_text())
        change(header)
        self.header.write_text(json.dumps(header))

    def flip(self, offset: int) -> None:
        data = bytearray(self.db.read_bytes())
        data[offset] ^= 0xFF
        self.db.write_bytes(bytes(data))


def edit_event(c: Ctx) -> None:
    conn = c.raw()
    conn.execute("UPDATE audit SET actor = 'someone-else' WHERE seq = 4")
    conn.close()


def delete_event(c: Ctx) -> None:
    conn = c.raw()
    conn.execute("DELETE FROM audit WHERE seq = 3")
    conn.close()


def reorder_events(c: Ctx) -> None:
    conn = c.raw()
    cols = "seq, at, actor, action, record_id, details, prev_hash, hash"
    rows = {r[0]: r for r in conn.execute(f"SELECT {cols} FROM audit WHERE seq IN (5, 6)")}
    conn.execute("DELETE FROM audit WHERE seq IN (5, 6)")
    for new_seq, old in ((5, rows[6]), (6, rows[5])):
        conn.execute("INSERT INTO audit VALUES (?,?,?,?,?,?,?,?)", (new_seq, *old[1:]))
    conn.close()


def insert_event(c: Ctx) -> None:
    conn = c.raw()
    last = audit.latest(conn)[0]
    for seq in range(last, 2, -1):
        conn.execute("UPDATE audit SET seq = ? WHERE seq = ?", (seq + 1, seq))
    conn.execute(
        "INSERT INTO audit VALUES (3, '2026-11-25T10:00:00', 'forger', 'record_viewed', NULL, "
        "'{}', ?, ?)",
        ("0" * 64, "f" * 64),
    )
    conn.close()


def truncate_events(c: Ctx) -> None:
    conn = c.raw()
    last = audit.latest(conn)[0]
    conn.execute("DELETE FROM audit WHERE seq >= ?", (last - 1,))
    conn.close()


def delete_all_events(c: Ctx) -> None:
    conn = c.raw()
    conn.execute("DELETE FROM audit")
    conn.close()


def rollback_database(c: Ctx) -> None:
    old = c.copy("records.db")
    c.activity()
    c.put_back(old, "records.db")


def rollback_both_files(c: Ctx) -> None:
    old = c.copy("records.db", "vault.json")
    c.activity()
    c.put_back(old, "records.db", "vault.json")


def rollback_header(c: Ctx) -> None:
    old = c.copy("vault.json")
    c.activity()
    c.put_back(old, "vault.json")


def edit_header_field(c: Ctx) -> None:
    c.edit_header(lambda h: h.update(practice_name="Evil Surgery"))


def change_vault_id(c: Ctx) -> None:
    c.edit_header(lambda h: h.update(vault_id="00000000-0000-4000-8000-000000000000"))


def damage_key_slot(c: Ctx) -> None:
    from gpshare.store.vault import Vault

    slot_id = Vault.open(c.env.folder).password_slot_id("lead")

    def change(header: dict) -> None:
        slot = next(s for s in header["slots"] if s["id"] == slot_id)
        wrapped = slot["wrapped"]
        slot["wrapped"] = ("A" if wrapped[0] != "A" else "B") + wrapped[1:]

    c.edit_header(change)


def empty_database(c: Ctx) -> None:
    c.db.write_bytes(b"")


def delete_database(c: Ctx) -> None:
    c.db.unlink()


def flip_first_page(c: Ctx) -> None:
    c.flip(200)  # page 1, after the 16-byte salt: the key check reads it


def flip_middle_page(c: Ctx) -> None:
    size = c.db.stat().st_size
    c.flip((size // 4096 // 2) * 4096 + 300)
    c.env.clock.advance(25 * 3600)  # the next open is due a daily integrity check


def flip_last_page(c: Ctx) -> None:
    size = c.db.stat().st_size
    c.flip(size - 4096 + 300)
    c.env.clock.advance(25 * 3600)


def rollback_both_after_a_restore(c: Ctx) -> None:
    """A legitimate restore's sealed record must not excuse a later rollback."""
    from gpshare.services import restore
    from tests.conftest import PASSWORDS

    admin = c.env.session("admin")
    snapshot = admin.backups.backup_now()
    admin.close()
    c.activity(2)
    restore(c.env.folder, snapshot, "admin", PASSWORDS["admin"], c.env.clock)
    old = c.copy("records.db", "vault.json")  # taken after the restore, so it holds its record
    c.activity(2)
    c.put_back(old, "records.db", "vault.json")


@dataclass(frozen=True)
class Case:
    tamper: Callable[[Ctx], None]
    error: type[Exception] | None  # refused at open with this error, or None: found by verify
    message: str  # regex the message must contain


TAMPER_CASES: dict[str, Case] = {
    "edit event": Case(edit_event, None, r"BROKEN at event 4: .*edited"),
    "delete event": Case(delete_event, None, r"BROKEN at event 3: event 3 is missing"),
    "reorder events": Case(reorder_events, None, r"BROKEN at event 5: .*reordered"),
    # Renumbering moves the event vault.json records as the head: refused at open.
    "insert event": Case(insert_event, RollbackError, r"event \d+ in the audit log is not the one"),
    "truncate newest events": Case(
        truncate_events,
        RollbackError,
        r"ends at event \d+ but vault.json records event \d+: "
        r"events \d+–\d+ are missing",
    ),
    "delete all events": Case(
        delete_all_events, RollbackError, r"audit log is empty .*events 1–\d+ are missing"
    ),
    "rollback records.db": Case(
        rollback_database, RollbackError, r"events \d+–\d+ are missing .*older copy of records.db"
    ),
    "rollback records.db and vault.json": Case(
        rollback_both_files,
        RollbackError,
        r"this computer has seen event \d+ .*both records.db and vault.json were replaced",
    ),
    "rollback vault.json": Case(
        rollback_header, RollbackError, r"an older vault.json was put back"
    ),
    "rollback both files after a restore": Case(
        rollback_both_after_a_restore, RollbackError, r"this computer has seen event \d+"
    ),
    "edit vault.json": Case(edit_header_field, TamperedError, r"changed outside gpshare"),
    "change vault id": Case(change_vault_id, TamperedError, r"vault id .* has been changed"),
    "damage a key slot": Case(
        damage_key_slot, TamperedError, r"key slot for 'lead' .*damaged.*not a wrong password"
    ),
    "empty records.db": Case(empty_database, CorruptDatabaseError, r"is empty.*gpshare restore"),
    "delete records.db": Case(delete_database, CorruptDatabaseError, r"missing.*gpshare restore"),
    "flip bytes in page 1": Case(
        flip_first_page, CorruptDatabaseError, r"(?i)damaged.*restore the latest backup"
    ),
    "flip bytes in a middle page": Case(
        flip_middle_page, CorruptDatabaseError, r"(?i)damaged.*restore the latest backup"
    ),
    "flip bytes in the last page": Case(
        flip_last_page, CorruptDatabaseError, r"(?i)damaged.*restore the latest backup"
    ),
}


@pytest.fixture
def ctx(vault_env, tmp_path) -> Ctx:
    """A vault with some history, closed, and its key for the key-holding attacker cases."""
    s = vault_env.session("lead")
    for i in range(5):
        s.audit("record_viewed", f"SG-TEST-000{i}")
    key = s.db_key
    s.close()
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    return Ctx(vault_env, key, scratch)


@pytest.mark.parametrize("name", list(TAMPER_CASES))
def test_tamper_is_detected_and_named(ctx: Ctx, name: str) -> None:
    case = TAMPER_CASES[name]
    case.tamper(ctx)
    if case.error is not None:
        before = ctx.header.read_bytes() if ctx.header.exists() else b""
        with pytest.raises(case.error, match=case.message):
            ctx.env.session("lead")
        # Refused before anything was written: the header is exactly as the attacker left it.
        assert (ctx.header.read_bytes() if ctx.header.exists() else b"") == before
        return
    lead = ctx.env.session("lead")
    try:
        report = lead.audit_trail.verify_audit()
    finally:
        lead.close()
    assert not report.ok and report.broken_at is not None
    assert re.search(case.message, report.summary()), report.summary()


def test_rollback_alarm_says_what_to_do(ctx: Ctx) -> None:
    truncate_events(ctx)
    with pytest.raises(RollbackError) as info:
        ctx.env.session("lead")
    message = str(info.value)
    assert "Nothing has been changed" in message and "gpshare restore" in message


def test_rollback_of_both_files_goes_unseen_on_a_computer_that_never_saw_the_newer_head(
    ctx: Ctx, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The documented limit: the second anchor lives on the workstation that saw the head."""
    old = ctx.copy("records.db", "vault.json")
    monkeypatch.setenv("GPSHARE_ANCHOR_DIR", str(tmp_path / "first-computer"))
    ctx.activity()
    ctx.put_back(old, "records.db", "vault.json")
    monkeypatch.setenv("GPSHARE_ANCHOR_DIR", str(tmp_path / "second-computer"))
    ctx.env.session("lead").close()  # opens: this computer cannot know
    monkeypatch.setenv("GPSHARE_ANCHOR_DIR", str(tmp_path / "first-computer"))
    with pytest.raises(RollbackError, match="this computer has seen event"):
        ctx.env.session("lead")


def test_forged_anchor_is_noted_not_trusted(ctx: Ctx, anchor_dir: Path) -> None:
    path = next(anchor_dir.glob("*.json"))
    forged = json.loads(path.read_text())
    forged["seq"] = 10_000  # without the key the seal cannot be redone
    path.write_text(json.dumps(forged))
    lead = ctx.env.session("lead")
    try:
        events = lead.audit_trail.audit_log(limit=None)
        noted = [e for e in events if e.action == "rollback_anchor_invalid"]
        assert noted and noted[0].details["problem"] == "its seal does not match"
    finally:
        lead.close()
    assert json.loads(path.read_text())["seq"] < 10_000  # rewritten with the real head


def test_crash_between_commit_and_header_write_is_not_an_alarm(ctx: Ctx) -> None:
    """The chain one event ahead of the header is the one legitimate gap: it gets sealed."""
    from datetime import UTC, datetime

    conn = dbmod.open_database(ctx.db, ctx.key)
    with dbmod.transaction(conn):  # committed, but the process "dies" before the header write
        seq, digest = audit.append(
            conn, audit.audit_key(ctx.key), at=datetime.now(UTC), actor="lead", action="lock"
        )
    conn.close()
    assert json.loads(ctx.header.read_text())["audit_head"]["seq"] == seq - 1
    lead = ctx.env.session("lead")
    try:
        assert audit.hash_at(raw_connection(lead), seq) == digest
        assert lead.audit_trail.verify_audit().ok
    finally:
        lead.close()
