"""After the practice server comes back, and on a network that drops (issue #14, lane
pgreconnect), against a real PostgreSQL: the first step after a restart succeeds (the dead
connection is replaced before anything of the step was sent); the rollback/fork check still
runs on that reconnect; a connection cut after the server applied a COMMIT says the step may
or may not have been saved and a repeated save is refused, never stored twice; a server that
accepts and never answers costs one wait, after which steps fail at once (no new connection
attempt) until a background retry reaches it.

The misbehaving network is tests/netfault.py: a TCP front for the cluster's unix socket.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
import pytest

from gpshare.errors import (
    DatabaseError,
    SaveOutcomeUnknown,
    ServerUnreachableError,
    StaleVersionError,
    StoreError,
)
from gpshare.services import Session
from gpshare.store import offline_drafts
from gpshare.store.postgres import header
from tests.conftest import VaultEnv, drop_server_database, make_vault_v2
from tests.netfault import Proxy, proxy
from tests.pg import Cluster
from tests.test_v2_records import scenario

ELLIE = {"child_given_name": "Ellie", "child_family_name": "Marsh"}


@dataclass
class Front:
    env: VaultEnv
    net: Proxy
    cluster: Cluster
    database: str

    def session(self, username: str = "drsmith") -> Session:
        return self.env.session(username)  # type: ignore[no-any-return]

    @property
    def dsn(self) -> str:
        """The database as the cluster's superuser reaches it (not through the front)."""
        return self.cluster.dsn(self.database)

    def superuser(self) -> psycopg.Connection:
        return psycopg.connect(self.dsn, autocommit=True)


@pytest.fixture
def front(pg_cluster: Cluster, tmp_path: Path, clock: Any) -> Iterator[Front]:
    """A practice whose workstation reaches the server through the misbehaving front, with a
    DSN that sets its own connect_timeout (2 s, libpq's least): gpshare keeps it."""
    name = pg_cluster.new_database()
    try:
        with proxy(pg_cluster.socket_dir / f".s.PGSQL.{pg_cluster.port}") as net:
            dsn = net.dsn(name, pg_cluster.user, connect_timeout="2")
            yield Front(make_vault_v2(tmp_path / "pc1", clock, dsn), net, pg_cluster, name)
    finally:
        drop_server_database(pg_cluster, name)


@pytest.fixture
def practice(pg_cluster: Cluster, tmp_path: Path, clock: Any) -> Iterator[tuple[VaultEnv, str]]:
    """A practice on the cluster's own unix socket (for pg_ctl restarts), and its DSN."""
    name = pg_cluster.new_database()
    try:
        yield make_vault_v2(tmp_path / "pc1", clock, pg_cluster.dsn(name)), pg_cluster.dsn(name)
    finally:
        drop_server_database(pg_cluster, name)


def events(dsn: str, action: str, record_id: str) -> int:
    """How many `action` events of the record the server's audit log holds."""
    with psycopg.connect(dsn) as conn:
        row = conn.execute(
            "SELECT count(*) FROM audit WHERE action = %s AND record_id = %s", (action, record_id)
        ).fetchone()
    return int(row[0]) if row else 0


# ----- the options gpshare adds to the DSN -----------------------------------------------------


def test_lan_options_are_added_but_never_override_the_administrators() -> None:
    added = psycopg.conninfo.conninfo_to_dict(header.with_lan_options("host=srv dbname=gp"))
    for option, value in header.LAN_OPTIONS.items():
        assert added[option] == value
    mine = psycopg.conninfo.conninfo_to_dict(
        header.with_lan_options("host=srv dbname=gp connect_timeout=9 keepalives_idle=30")
    )
    assert mine["connect_timeout"] == "9" and mine["keepalives_idle"] == "30"
    assert mine["tcp_user_timeout"] == header.LAN_OPTIONS["tcp_user_timeout"]


def test_pgconnect_timeout_in_the_environment_is_kept(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PGCONNECT_TIMEOUT", "11")
    added = psycopg.conninfo.conninfo_to_dict(header.with_lan_options("host=srv dbname=gp"))
    assert "connect_timeout" not in added and added["keepalives"] == "1"


def test_a_wait_that_ran_out_is_told_apart_from_a_server_that_hung_up() -> None:
    # libpq's words when tcp_user_timeout or the keepalives gave up, and psycopg's own
    # connect_timeout; a server that closed the connection answered, so it is not a wait.
    assert header.timed_out(
        psycopg.OperationalError("could not receive data from server: Connection timed out")
    )
    assert header.timed_out(psycopg.errors.ConnectionTimeout("connection timeout expired"))
    assert not header.timed_out(
        psycopg.OperationalError("server closed the connection unexpectedly")
    )
    assert not header.timed_out(psycopg.OperationalError("Connection refused"))


# ----- the first step after the server is back ---------------------------------------------------


def test_the_first_step_after_a_server_restart_succeeds(
    pg_cluster: Cluster, practice: tuple[VaultEnv, str]
) -> None:
    env, dsn = practice
    s = env.session("drsmith")
    try:
        rid = s.assessments.start_assessment(answers=ELLIE).id
        pg_cluster.stop()
        pg_cluster.start()
        # A read: the dead connection is found at the step's start and replaced.
        assert [r.id for r in s.assessments.list_records()] == [rid]
        pg_cluster.stop()
        pg_cluster.start()
        # A write, straight after another restart: saved once, on the new connection.
        s.assessments.save_draft(rid, {**ELLIE, "child_family_name": "Moor"})
        assert s.assessments.get_record(rid).answers["child_family_name"] == "Moor"
        assert events(dsn, "draft_saved", rid) == 1
        assert s.unreachable_since() is None
    finally:
        s.close()


def test_a_hang_up_between_steps_is_invisible_and_writes_once(front: Front) -> None:
    s = front.session()
    try:
        rid = s.assessments.start_assessment(answers=ELLIE).id
        for surname in ("Moor", "Fell", "Dale"):
            front.net.hang_up()
            s.assessments.save_draft(rid, {**ELLIE, "child_family_name": surname})
        assert s.assessments.get_record(rid).answers["child_family_name"] == "Dale"
        assert events(front.dsn, "draft_saved", rid) == 3
    finally:
        s.close()


def test_the_reconnect_still_refuses_a_server_put_back_to_an_older_chain(front: Front) -> None:
    s = front.session()
    try:
        rid = s.assessments.start_assessment(answers=ELLIE).id
        head = s.store.last_head
        s.assessments.save_draft(rid, {**ELLIE, "child_family_name": "Moor"})
        newest = s.store.last_head
        assert newest.seq > head.seq
        # While this computer is away the server is put back to an older state: the events
        # after `head` are gone (as a restore of an older backup without `server restore`).
        with front.superuser() as dba:
            dba.execute("SET session_replication_role = replica")  # past the append-only guard
            dba.execute("DELETE FROM audit WHERE seq > %s", (head.seq,))
            dba.execute("UPDATE audit_head SET seq = %s, hash = %s", (head.seq, head.digest))
        front.net.hang_up()
        with pytest.raises(DatabaseError, match="ROLLBACK OR FORK ALARM") as raised:
            s.assessments.get_record(rid)  # the first step: the alarm, not the older data
        assert f"audit event {newest.seq}" in str(raised.value)
        with pytest.raises(DatabaseError, match="ROLLBACK OR FORK ALARM"):
            s.assessments.save_draft(rid, ELLIE)  # nor is anything written there
        # A worker of this session (a background retry, a list's worker) is refused too.
        with pytest.raises(DatabaseError, match="ROLLBACK OR FORK ALARM"):
            s.worker_session()
    finally:
        s.close()


# ----- a connection cut during COMMIT ------------------------------------------------------------


def test_a_save_cut_during_commit_says_so_and_a_retry_is_not_stored_twice(front: Front) -> None:
    s = front.session()
    try:
        rid = s.assessments.start_assessment(answers=ELLIE).id
        version = s.assessments.get_record(rid)  # opened: the next save's base
        moor = {**ELLIE, "child_family_name": "Moor"}
        front.net.cut_next_commit()
        with pytest.raises(SaveOutcomeUnknown) as raised:
            s.assessments.save_draft(rid, moor)
        assert front.net.commits_cut == 1
        text = str(raised.value)
        assert "cannot tell whether it was saved" in text and "My records" in text
        assert "psycopg" not in text and "Traceback" not in text
        # The server did apply it (the answer to COMMIT was what got lost) ...
        with front.superuser() as dba:
            row = dba.execute("SELECT version FROM records WHERE id = %s", (rid,)).fetchone()
        assert row is not None and row[0] == 2
        # ... and the user's "save again" is refused by the draft's version, not stored twice.
        with pytest.raises(StaleVersionError):
            s.assessments.save_draft(rid, moor)
        assert events(front.dsn, "draft_saved", rid) == 1
        assert version.answers["child_family_name"] == "Marsh"
        assert s.assessments.get_record(rid).answers["child_family_name"] == "Moor"
    finally:
        s.close()


def test_a_draft_cut_during_commit_goes_to_the_cache_and_is_not_saved_twice(
    front: Front,
) -> None:
    s = front.session()
    try:
        rid = s.offline.start_assessment(answers=ELLIE).record.id
        moor = {**ELLIE, "child_family_name": "Moor"}
        front.net.cut_next_commit()
        kept = s.offline.save_draft(rid, moor)  # the wizard's path: never an exception
        assert kept.offline and front.net.commits_cut == 1
        assert offline_drafts.path_for(front.env.folder, rid).exists()
        report = s.offline.flush()
        # The server already held exactly this draft: the file goes, nothing is written.
        assert report.saved == [] and report.refused == [] and report.unreachable is None
        assert not offline_drafts.path_for(front.env.folder, rid).exists()
        assert events(front.dsn, "draft_saved", rid) == 1
    finally:
        s.close()


def test_a_completion_cut_during_commit_is_not_completed_twice(front: Front) -> None:
    s = front.session()
    try:
        rid = s.assessments.start_assessment(answers=scenario("01")).id
        front.net.cut_next_commit(b"record_completed")
        with pytest.raises(SaveOutcomeUnknown, match="cannot tell whether it was saved"):
            s.assessments.complete(rid)
        with pytest.raises(StoreError):
            s.assessments.complete(rid)  # again: refused (the record is completed already)
        assert s.assessments.get_record(rid).status == "completed"
        assert events(front.dsn, "record_completed", rid) == 1
    finally:
        s.close()


# ----- a server that accepts and never answers -----------------------------------------------


def test_a_silent_server_costs_one_wait_then_steps_fail_fast_until_a_retry_reaches_it(
    front: Front,
) -> None:
    s = front.session()
    try:
        rid = s.assessments.start_assessment(answers=ELLIE).id
        front.net.silent = True  # new connections are accepted and never answered
        front.net.hang_up()
        tried = front.net.accepted
        with pytest.raises(ServerUnreachableError, match="Cannot reach the practice server"):
            s.assessments.list_records()  # waits connect_timeout for the silent server
        assert front.net.accepted == tried + 1
        since = s.unreachable_since()
        assert since is not None
        for _ in range(3):  # a screen reading several times: no new attempt, no new wait
            with pytest.raises(ServerUnreachableError, match="trying again in the background"):
                s.assessments.get_record(rid)
        assert front.net.accepted == tried + 1
        assert s.unreachable_since() == since
        # The background retry: a worker's connection, off the GUI thread.
        with pytest.raises(ServerUnreachableError):
            s.worker_session()
        assert front.net.accepted == tried + 2
        front.net.silent = False
        s.worker_session().close()  # it reaches the server: the wait ends at once
        assert s.unreachable_since() is None
        assert s.assessments.get_record(rid).answers["child_family_name"] == "Marsh"
    finally:
        s.close()


def test_the_pointer_keeps_the_dsn_as_written(front: Front) -> None:
    pointer = json.loads((front.env.folder / "vault.json").read_text())
    assert "keepalives" not in pointer["dsn"] and "connect_timeout=2" in pointer["dsn"]


def test_a_start_cut_during_commit_is_found_again_not_started_twice(front: Front) -> None:
    s = front.session()
    try:
        front.net.cut_next_commit(b"record_created")
        with pytest.raises(SaveOutcomeUnknown, match="cannot tell whether it was saved") as cut:
            s.offline.start_assessment(answers=ELLIE)  # the wizard's first save
        rid = cut.value.record_id
        assert rid is not None
        again = s.offline.start_assessment(answers=ELLIE)  # the wizard's next save
        assert again.record.id == rid and again.offline is None
        assert events(front.dsn, "record_created", rid) == 1
        with front.superuser() as dba:
            row = dba.execute("SELECT count(*) FROM records").fetchone()
        assert row is not None and row[0] == 1
        assert s.offline.start_assessment(answers=ELLIE).record.id != rid  # then new again
    finally:
        s.close()
