"""The malicious database administrator (DESIGN §10.3 "What the server cannot do undetected",
"Anti-rollback and forks", "Restore is an epoch"), on a real PostgreSQL (tests/pg.py).

The administrator owns the tables and switches the triggers off (session_replication_role =
replica); they do not hold the practice key, so they cannot MAC a row or seal an event. Each
attack is detected and named by the check responsible: the chain (reordered events), rows
against events (edited, deleted, planted rows), the workstation's sealed anchor at connect
(a rolled-back database, a fork) and the witnesses in unlock events (a fork served to a
workstation between two of its unlocks). Writes here carry the audit details the services
make (gpshare/services/_sealed_records.py, _sealed_objects.py), as the services will on the
srv.
"""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest

from gpshare.errors import StoreError
from gpshare.services import _integrity, _sealed_objects, _sealed_records
from gpshare.services import _sealing as sealing
from gpshare.store import anchor
from gpshare.store.anchor import Anchor
from gpshare.store.port import AuditEntry
from gpshare.store.postgres import integrity as pg_integrity
from gpshare.store.postgres.engine import PostgresStore
from tests.test_pg_store import Server, server  # noqa: F401 - the fixture
from tests.test_sealing import CREATED, ELLIE, OTHER, OUTCOME, Ring, _record

WORKSTATION_VAULT = str(uuid.uuid4())  # the anchor file is named by a vault id


def _complete(store: PostgresStore, ring: Ring, rid: str, child: dict[str, str]) -> None:
    """A record created, saved and completed, each write audited with its sealed row."""
    draft = _record(rid, child)
    first, key = sealing.seal_record(ring, draft, 0)
    details = _sealed_records.audit_details
    with store.write(AuditEntry(ring.user, "record_created", rid, details(first))) as tx:
        tx.insert_sealed_record(first)
    done = dataclasses.replace(
        draft, status="completed", completed=CREATED, outcome=dict(OUTCOME), current_step=None
    )
    second, _ = sealing.seal_record(ring, done, 1, key)
    with store.write(AuditEntry(ring.user, "record_completed", rid, details(second))) as tx:
        tx.complete_sealed_record(second)


def _addendum(store: PostgresStore, ring: Ring, rid: str, text: str) -> str:
    """A sealed addendum, audited with its row; its object id."""
    with store.read() as tx:
        sealed = tx.sealed_record(rid, [])
    assert sealed is not None
    body = sealing.seal_addendum(ring, sealed.row, CREATED, text)
    entry = AuditEntry(ring.user, "addendum_added", rid, _sealed_objects.audit_details(body))
    with store.write(entry) as tx:
        tx.add_sealed_addendum(rid, ring.user, CREATED, body)
    return body.object_id


@pytest.fixture
def practice(server: Server) -> Iterator[dict[str, Any]]:  # noqa: F811 - the imported fixture
    store = server.store()
    smith = server.ring("drsmith")
    _complete(store, smith, "SG-INTG-0001", ELLIE)
    _complete(store, smith, "SG-INTG-0002", OTHER)
    object_id = _addendum(store, smith, "SG-INTG-0001", "Seen again at the nursery")
    yield {"server": server, "store": store, "smith": smith, "addendum": object_id}
    store.close()


def _dba(srv: Server, *statements: str) -> None:
    """The table owner, triggers off."""
    with srv.owner() as dba:
        dba.execute("SET session_replication_role = replica")
        for statement in statements:
            dba.execute(statement)


def _verify(store: PostgresStore) -> _integrity.IntegrityReport:
    with store.read() as tx:
        return _integrity.verify(tx)


def _event_seq(store: PostgresStore, rid: str, action: str) -> int:
    with store.read() as tx:
        return next(
            e.seq for e in _integrity.all_events(tx) if e.record_id == rid and e.action == action
        )


def test_an_untouched_server_verifies(practice: dict[str, Any]) -> None:
    report = _verify(practice["store"])
    assert report.ok, report.summary()
    assert report.rows == 3


def test_an_edited_ciphertext_and_an_edited_m_row_are_named(practice: dict[str, Any]) -> None:
    srv, store = practice["server"], practice["store"]
    _dba(
        srv,
        "UPDATE records SET answers_ct = (SELECT answers_ct FROM records WHERE id = 'SG-INTG-0002')"
        " WHERE id = 'SG-INTG-0001'",
        "UPDATE records SET clinician = 'drjones' WHERE id = 'SG-INTG-0002'",
    )
    report = _verify(store)
    assert report.chain.ok
    found = {(f.row, f.check): f for f in report.findings}
    assert set(found) == {("SG-INTG-0001", "rows"), ("SG-INTG-0002", "rows")}
    done = _event_seq(store, "SG-INTG-0001", "record_completed")
    assert found[("SG-INTG-0001", "rows")].seq == done
    assert "ciphertext of answers_ct differs" in str(found[("SG-INTG-0001", "rows")])
    assert "M row MAC does not verify" in str(found[("SG-INTG-0002", "rows")])


def test_a_deleted_row_and_a_planted_row_are_named(practice: dict[str, Any]) -> None:
    srv, store, object_id = practice["server"], practice["store"], practice["addendum"]
    _dba(
        srv,
        "INSERT INTO addenda (id, record_id, author, created, object_id, body_ct, body_commit,"
        " row_mac) SELECT id + 100, 'SG-INTG-0002', author, created, 'planted', body_ct,"
        " body_commit, row_mac FROM addenda",
        f"DELETE FROM addenda WHERE object_id = '{object_id}'",
    )
    found = {(f.table, f.row): f for f in _verify(store).findings}
    assert set(found) == {("addenda", object_id), ("addenda", "planted")}
    assert found[("addenda", object_id)].seq == _event_seq(store, "SG-INTG-0001", "addendum_added")
    assert "missing from the database" in str(found[("addenda", object_id)])
    planted = str(found[("addenda", "planted")])
    assert "no audit event names it" in planted and "MAC does not verify" in planted


def test_reordered_events_break_the_chain_at_the_first_swapped_seq(
    practice: dict[str, Any],
) -> None:
    srv, store = practice["server"], practice["store"]
    _dba(
        srv,
        "UPDATE audit SET seq = 1000 WHERE seq = 3",
        "UPDATE audit SET seq = 3 WHERE seq = 4",
        "UPDATE audit SET seq = 4 WHERE seq = 1000",
    )
    report = _verify(store)
    assert not report.ok and report.chain.broken_at == 3


# ----- rollback, restore and forks --------------------------------------------------------------


def _bin(srv: Server) -> Path:
    return srv.cluster.bin


def _remember(store: PostgresStore, srv: Server) -> Anchor:
    """What the workstation keeps after a session, sealed in its folder (the anchor file)."""
    seen = _integrity.seen_now(store)
    anchor.write(WORKSTATION_VAULT, srv.practice_keys, seen.seq, seen.hash, seen.restores)
    kept, problem = anchor.read(WORKSTATION_VAULT, srv.practice_keys)
    assert kept == seen and problem == ""
    return seen


def test_a_database_rolled_back_to_an_earlier_dump_raises_the_alarm(
    practice: dict[str, Any], tmp_path: Path
) -> None:
    srv, store = practice["server"], practice["store"]
    backup = tmp_path / "earlier.dump"
    pg_integrity.dump(srv.cluster.dsn(srv.dbname), backup, _bin(srv))
    _addendum(store, practice["smith"], "SG-INTG-0002", "A second referral was made")
    seen = _remember(store, srv)
    pg_integrity.restore_dump(srv.cluster.dsn(srv.dbname), backup, _bin(srv))
    check = _integrity.on_connect(store, seen)
    assert check.restore is None and check.alarm is not None
    head = _integrity.seen_now(store)
    assert f"audit event {seen.seq} sealed {seen.hash[:12]}" in check.alarm
    assert f"its head is event {head.seq} sealed {head.hash[:12]}" in check.alarm


def test_a_restore_is_an_epoch_not_a_rollback(practice: dict[str, Any], tmp_path: Path) -> None:
    srv, store = practice["server"], practice["store"]
    backup = tmp_path / "srv.dump"
    pg_integrity.dump(srv.cluster.dsn(srv.dbname), backup, _bin(srv))
    _addendum(store, practice["smith"], "SG-INTG-0002", "Written after the backup")
    seen = _remember(store, srv)
    # The administrator restores: the old head and epoch are read first, then the dump goes
    # back and the restore is recorded in the restored chain with a higher epoch.
    with store.read() as tx:
        old, old_epoch = tx.audit_head(), _integrity.restore_epoch(tx.get_settings())
    pg_integrity.restore_dump(srv.cluster.dsn(srv.dbname), backup, _bin(srv))
    details = _integrity.record_restore(store, "drlead", old, old_epoch)
    assert details["events_lost"] == 1 and details["epoch"] == 1
    assert details["old_head"] == {"seq": seen.seq, "hash": seen.hash}
    check = _integrity.on_connect(store, seen)
    assert check.alarm is None and check.restore is not None
    assert "1 audit events recorded after that backup were lost" in _integrity.loss_notice(
        check.restore
    )
    # The workstation then remembers the new epoch; its next unlock's witness is on the chain.
    after = _remember(store, srv)
    assert after.restores == 1 and _integrity.on_connect(store, after).alarm is None
    report = _verify(store)
    assert report.ok, report.summary()
    # A copy of the old database put back later is still a rollback: the epoch moved on.
    assert _integrity.on_connect(store, dataclasses.replace(seen, restores=1)).alarm is not None


def _unlock(store: PostgresStore, user: str, seen: Anchor | None) -> None:
    """A workstation's unlock on the server: the check at connect, then the unlock event
    carrying the witness (as gpshare/services/vaults.py appends it)."""
    check = _integrity.on_connect(store, seen)
    if check.alarm:
        raise AssertionError(check.alarm)
    with store.write(AuditEntry(user, "unlock", None, _integrity.witness(seen))):
        pass


def test_a_fork_served_to_two_workstations_is_exposed(
    practice: dict[str, Any], tmp_path: Path
) -> None:
    srv, store, smith = practice["server"], practice["store"], practice["smith"]
    # The administrator copies the database: from here the server can show either history.
    copy = tmp_path / "fork.dump"
    pg_integrity.dump(srv.cluster.dsn(srv.dbname), copy, _bin(srv))
    other = srv.cluster.new_database()
    try:
        pg_integrity.restore_dump(srv.cluster.dsn(other), copy, _bin(srv))
        forked = PostgresStore.connect(srv.cluster.dsn(other, srv.role), srv.practice_keys)
        # Workstation A (drsmith) unlocks and works on the original; B (drjones) on the copy.
        _unlock(store, "drsmith", None)
        _addendum(store, smith, "SG-INTG-0001", "Only in history A")
        seen_a = _integrity.seen_now(store)
        _unlock(forked, "drjones", None)
        _addendum(forked, srv.ring("drjones"), "SG-INTG-0002", "Only in history B")
        # Served the copy at its next connect, A stops with the alarm naming both heads.
        alarm = _integrity.on_connect(forked, seen_a).alarm
        assert alarm is not None and f"audit event {seen_a.seq}" in alarm
        # Served the copy while locked (the connection switched under an open session), A's
        # unlock carries its witness into history B: the lead's verify there names it.
        with forked.write(AuditEntry("drsmith", "unlock", None, _integrity.witness(seen_a))):
            pass
        report = _verify(forked)
        [finding] = [f for f in report.findings if f.check == "witness"]
        assert f"had seen event {seen_a.seq} sealed {seen_a.hash[:12]}" in str(finding)
        assert report.chain.ok  # each history on its own is a valid chain
        forked.close()
    finally:
        srv.cluster.drop_database(other)


# ----- enrolment -------------------------------------------------------------------------------


def test_a_workstation_is_enrolled_with_its_own_role_and_revoked(practice: dict[str, Any]) -> None:
    srv = practice["server"]
    with srv.owner() as dba:
        role = pg_integrity.enrol(dba, "reception_2", srv.role)
    assert role == "gpshare_ws_reception_2"
    try:
        ws = PostgresStore.connect(srv.cluster.dsn(srv.dbname, role), srv.practice_keys)
        with ws.read() as tx:
            assert tx.sealed_record("SG-INTG-0001", []) is not None
        ws.close()
        with srv.owner() as dba:
            pg_integrity.revoke(dba, "reception_2", srv.role)
        with pytest.raises(StoreError, match="refused this computer's sign-in") as refused:
            PostgresStore.connect(srv.cluster.dsn(srv.dbname, role), srv.practice_keys)
        assert "not permitted to log in" in str(refused.value)
        assert "enrol it again" in str(refused.value)
    finally:
        with srv.owner() as dba:
            dba.execute(f'DROP ROLE IF EXISTS "{role}"')
    with (
        pytest.raises(ValueError, match="not usable"),
        psycopg.connect(srv.cluster.dsn(srv.dbname)) as dba,
    ):
        pg_integrity.enrol(dba, "front desk; DROP", srv.role)
