"""The PostgreSQL engine (gpshare/store/postgres/engine.py) on a real server (tests/pg.py):
sealed records and objects round trip through the record codec with a real key ring; the
workstation role connects with least privilege; a malicious database administrator's edits
are named (RowMacError for an M row, EnvelopeError for moved ciphertext); pg_dump holds no
identity or narrative; two workstations saving one draft: the second is refused, naming the
first saver, and nothing is lost."""

from __future__ import annotations

import dataclasses
import subprocess
import threading
import time
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

from gpshare.errors import DatabaseError, ReplicaUnavailable, StaleVersionError, StoreError
from gpshare.records import FollowUp, Record, Review, User
from gpshare.services import _sealing as sealing
from gpshare.store import keys
from gpshare.store.keys.binding import PracticeKey
from gpshare.store.port import AuditEntry, RoleKeyWrap
from gpshare.store.postgres.engine import PostgresStore
from gpshare.store.practice_keys import PracticeKeys
from tests.pg import Cluster, _runner, add_store_schema, drop_store_database
from tests.test_sealing import CREATED, ELLIE, NARRATIVE, OTHER, OUTCOME, Ring, _record

VAULT_ID = "vault-pg-test"
NAMES = {"drsmith": "Dr Smith", "drjones": "Dr Jones", "drlead": "Dr Lead"}


@dataclasses.dataclass
class Server:
    """A practice server database with its schema, a workstation role, the practice's keys
    and its users' X25519 keys (what tests/test_sealing.Ring needs of a practice)."""

    cluster: Cluster
    dbname: str
    role: str
    practice_keys: PracticeKeys
    users: dict[str, X25519PrivateKey]
    lead_key: X25519PrivateKey
    clinical: dict[int, keys.ClinicalKey]
    vault_id: str = VAULT_ID

    def store(self) -> PostgresStore:
        """A workstation's connection (the least-privilege role)."""
        return PostgresStore.connect(self.cluster.dsn(self.dbname, self.role), self.practice_keys)

    def owner(self) -> psycopg.Connection:
        """The database administrator's connection (superuser: may switch triggers off)."""
        return psycopg.connect(self.cluster.dsn(self.dbname), autocommit=True)

    def ring(self, user: str, lead: bool = False) -> Ring:
        return Ring(self, user, [1], lead=lead)  # type: ignore[arg-type]


@pytest.fixture
def server(pg_cluster: Cluster, pg_database: str) -> Iterator[Server]:
    role = add_store_schema(pg_cluster, pg_database)
    srv = Server(
        pg_cluster, pg_database, role, PracticeKeys(PracticeKey.generate(), VAULT_ID),
        {name: X25519PrivateKey.generate() for name in NAMES}, X25519PrivateKey.generate(),
        {1: keys.ClinicalKey.generate_generation(1)},
    )  # fmt: skip
    store = srv.store()
    with store.write(AuditEntry("admin", "users_added")) as tx:
        for username, name in NAMES.items():
            role_name = "lead" if username == "drlead" else "clinician"
            tx.insert_user(User(username, name, role_name, None, True, False, CREATED))
    store.close()
    yield srv
    drop_store_database(pg_cluster, pg_database, role)


def _save_completed(store: PostgresStore, ring: Ring, rid: str, child: dict[str, str]) -> Record:
    """A record inserted as a draft, saved once more and completed (versions 1, 2, 3)."""
    draft = _record(rid, child)
    first, key = sealing.seal_record(ring, draft, 0)
    with store.write(AuditEntry(ring.user, "record_created", record_id=rid)) as tx:
        tx.insert_sealed_record(first)
    edited = dataclasses.replace(draft, answers={**draft.answers, "child_words": "Quokkaphrase"})
    second, _ = sealing.seal_record(ring, edited, 1, key)
    with store.write(AuditEntry(ring.user, "draft_saved", record_id=rid)) as tx:
        tx.update_sealed_draft(second)
    done = dataclasses.replace(
        edited, status="completed", completed=CREATED, outcome=dict(OUTCOME), current_step=None
    )
    third, _ = sealing.seal_record(ring, done, 2, key)
    with store.write(AuditEntry(ring.user, "record_completed", record_id=rid)) as tx:
        tx.complete_sealed_record(third)
    return done


def _completed_with_addendum(server: Server, ring: Ring, rid: str, child: dict[str, str]) -> Record:
    """A completed record (as _save_completed) with one sealed addendum."""
    store = server.store()
    done = _save_completed(store, ring, rid, child)
    with store.read() as tx:
        sealed = tx.sealed_record(rid, [])
    assert sealed is not None
    body = sealing.seal_addendum(ring, sealed.row, CREATED, "Pelicanwhistle seen again")
    with store.write(AuditEntry(ring.user, "addendum_added", record_id=rid)) as tx:
        tx.add_sealed_addendum(rid, ring.user, CREATED, body)
    store.close()
    return done


def _open(store: PostgresStore, ring: Ring, rid: str) -> Record:
    with store.read() as tx:
        sealed = tx.sealed_record(rid, ring.reads_as)
    assert sealed is not None
    return sealing.open_record(ring, sealed)


def test_sealed_records_and_objects_round_trip(server: Server) -> None:
    store = server.store()
    smith, lead = server.ring("drsmith"), server.ring("drlead", lead=True)
    done = _save_completed(store, smith, "SG-PGPG-0001", ELLIE)
    _save_completed(store, smith, "SG-PGPG-0002", OTHER)
    assert _open(store, smith, "SG-PGPG-0001") == done
    assert _open(store, lead, "SG-PGPG-0001") == done
    with store.read() as tx:
        sealed = tx.sealed_record("SG-PGPG-0001", [])
        assert sealed is not None
        row = sealed.row
        assert (row.version, row.status, row.clinician_name) == (3, "completed", "Dr Smith")
        # The blind index finds the record by its child's NHS number, and only that one.
        probe = sealing.record_tokens(smith, done.answers)
        [match] = tx.records_for_tokens(probe, exclude=None)
        assert tx.records_for_tokens(probe, exclude="SG-PGPG-0001") == []
        assert tx.records_without_tokens(1) == []
    assert match.row.id == "SG-PGPG-0001"
    assert sealing.confirm_match(smith, match) is not None
    addendum = sealing.seal_addendum(smith, row, CREATED, "Pelicanwhistle seen again")
    signed, unsigned = sealing.seal_letter(smith, row, CREATED, b"%PDF signed", b"%PDF plain")
    with store.write(AuditEntry("drsmith", "objects_added", record_id=row.id)) as tx:
        addendum_id = tx.add_sealed_addendum(row.id, "drsmith", CREATED, addendum)
        tx.add_sealed_letter(row.id, CREATED, "drsmith", "ab" * 32, signed, unsigned)
    with store.read() as tx:
        [a] = tx.sealed_addenda(row.id, smith.reads_as)
        [letter] = tx.sealed_letters(row.id, lead.reads_as)
        meta = tx.letter_by_hash("ab" * 32)
        report = tx.verify_audit()
    assert sealing.open_addendum(smith, row, a).body == "Pelicanwhistle seen again"
    assert a.id == addendum_id
    assert sealing.open_letter(lead, row, letter) == (meta, b"%PDF signed", b"%PDF plain")
    # One chain: three events per record, the users' event and the objects' event.
    assert report.ok and report.events == 8 == store.last_head.seq
    fu = FollowUp(0, row.id, "sent", CREATED, "drsmith", CREATED, "accepted",
                  "Marmalade phoned", {"via": "secure email"})  # fmt: skip
    bare = FollowUp(0, row.id, "acknowledged", CREATED, "drsmith", CREATED, None, None, {})
    review = Review(0, row.id, "drlead", CREATED, "needs_discussion", "Gooseberry", "learn")
    generation, household = sealing.seal_household_review(
        lead, row.id, "SG-PGPG-0002", "same_household", "Saxophone note"
    )
    with store.write(AuditEntry("drlead", "objects_added", record_id=row.id)) as tx:
        fu_id = tx.add_sealed_followup(fu, sealing.seal_followup_note(smith, row, fu))
        bare_id = tx.add_sealed_followup(bare, None)
        review_id = tx.add_sealed_review(
            row.id, "drlead", CREATED, sealing.seal_review(lead, row, review)
        )
        tx.add_sealed_household_review(
            row.id, "SG-PGPG-0002", "drlead", CREATED, generation, household
        )
    with store.read() as tx:
        events = tx.sealed_followups([row.id], lead.reads_as)
        [r] = tx.sealed_reviews(row.id, lead.reads_as)
        [h] = tx.household_reviews([row.id])
    assert [sealing.open_followup(lead, row, e) for e in events] == [
        dataclasses.replace(fu, id=fu_id), dataclasses.replace(bare, id=bare_id)
    ]  # fmt: skip
    assert sealing.open_review(lead, row, r) == dataclasses.replace(review, id=review_id)
    assert sealing.open_household_review(lead, h) == ("same_household", "Saxophone note")
    store.close()


def test_a_failed_block_writes_neither_rows_nor_its_audit_event(server: Server) -> None:
    store = server.store()
    head = store.last_head
    with pytest.raises(RuntimeError), store.write(AuditEntry("admin", "settings_saved")) as tx:
        tx.put_settings({"practice_name": "Canal Row Surgery"})
        raise RuntimeError("the caller failed half way")
    with store.read() as tx:
        assert tx.get_settings() == {} and tx.audit_head() == head
    with store.write(AuditEntry("admin", "settings_saved")) as tx:
        tx.put_settings({"practice_name": "Canal Row Surgery"})
        tx.put_settings({"practice_name": "Heron Close Surgery"})
    with store.read() as tx:
        assert tx.get_settings() == {"practice_name": "Heron Close Surgery"}
    assert store.last_head.seq == head.seq + 1
    store.close()


def test_a_connection_without_a_workstation_folder_has_no_search_index(server: Server) -> None:
    store = server.store()  # a tool's connection, not a lead's workstation
    try:
        with pytest.raises(ReplicaUnavailable, match="workstation folder") as no_folder:
            store.replica(bytes(32)).open()
        assert no_folder.value.reason == "missing"
    finally:
        store.close()


def test_plaintext_members_refuse_clearly(server: Server) -> None:
    store = server.store()
    with pytest.raises(StoreError, match="holds no plaintext"), store.maintenance() as tx:
        tx.put_search_text("SG-PGPG-0001", "Ellie Marsh")
    with pytest.raises(StoreError, match="holds no plaintext"), store.read() as tx:
        tx.records_for_child("9434765870", "Marsh", "2015-01-01", None)
    with store.read() as tx:  # a v1 reader answers with M fields only: nothing to name
        assert tx.get_record("SG-PGPG-0001") is None
    _save_completed(store, server.ring("drsmith"), "SG-PGPG-0003", ELLIE)
    with pytest.raises(StoreError, match="keeps every row"), store.maintenance() as tx:
        tx.delete_draft("SG-PGPG-0003")
    store.close()


def test_an_m_row_edited_on_the_server_is_named(server: Server) -> None:
    store = server.store()
    _save_completed(store, server.ring("drsmith"), "SG-PGPG-0004", ELLIE)
    with server.owner() as dba:
        # The table's owner switches the triggers off and edits the row directly.
        dba.execute("SET session_replication_role = replica")
        dba.execute("UPDATE records SET clinician = 'drjones' WHERE id = 'SG-PGPG-0004'")
        dba.execute("UPDATE users SET role = 'lead' WHERE username = 'drjones'")
    with (
        pytest.raises(keys.RowMacError, match=r"row SG-PGPG-0004 .*table 'records'"),
        store.read() as tx,
    ):
        tx.sealed_record("SG-PGPG-0004", ["drsmith"])
    with (  # a page read (the lead's index build) is as strict, and names the record too
        pytest.raises(keys.RowMacError, match=r"row SG-PGPG-0004 .*table 'records'"),
        store.read() as tx,
    ):
        tx.sealed_records(["SG-PGPG-0001", "SG-PGPG-0004"], ["drsmith"])
    with (
        pytest.raises(keys.RowMacError, match=r"row drjones .*table 'users'"),
        store.read() as tx,
    ):
        tx.get_user("drjones")
    store.close()


def test_ciphertext_swapped_between_records_does_not_open(server: Server) -> None:
    store = server.store()
    smith = server.ring("drsmith")
    _save_completed(store, smith, "SG-PGPG-0005", ELLIE)
    _save_completed(store, smith, "SG-PGPG-0006", OTHER)
    with server.owner() as dba:
        dba.execute("SET session_replication_role = replica")
        dba.execute(
            "UPDATE records SET answers_ct = (SELECT answers_ct FROM records "
            "WHERE id = 'SG-PGPG-0006') WHERE id = 'SG-PGPG-0005'"
        )
        dba.execute(
            "UPDATE record_summaries SET ct = (SELECT ct FROM record_summaries "
            "WHERE record_id = 'SG-PGPG-0005') WHERE record_id = 'SG-PGPG-0006'"
        )
    for rid in ("SG-PGPG-0005", "SG-PGPG-0006"):
        with pytest.raises(keys.EnvelopeError):
            _open(store, smith, rid)
    store.close()


def test_the_workstation_role_cannot_delete_or_change_what_is_final(server: Server) -> None:
    smith = server.ring("drsmith")
    done = _completed_with_addendum(server, smith, "SG-PGPG-0007", ELLIE)
    refused = [
        "DELETE FROM records WHERE id = 'SG-PGPG-0007'",
        "DELETE FROM blind_index",
        "TRUNCATE audit",
        "UPDATE records SET updated = 'x', version = version + 1 WHERE id = 'SG-PGPG-0007'",
        "UPDATE record_summaries SET version = 9 WHERE record_id = 'SG-PGPG-0007'",
        "UPDATE addenda SET created = 'x'",
        "UPDATE audit SET actor = 'x'",
        "UPDATE object_wraps SET wrap = '\\x00'",
    ]
    for statement in refused:
        with (
            psycopg.connect(server.cluster.dsn(server.dbname, server.role)) as ws,
            pytest.raises(psycopg.errors.InsufficientPrivilege),
        ):
            ws.execute(statement.encode())
    # Through the engine, a refused change surfaces as the port's DatabaseError.
    store = server.store()
    late, _ = sealing.seal_record(smith, dataclasses.replace(done, status="draft"), 3)
    with (
        pytest.raises(StaleVersionError, match="completed since it was opened"),
        store.write(AuditEntry("drsmith", "draft_saved", record_id=done.id)) as tx,
    ):
        tx.update_sealed_draft(late)
    wrap = RoleKeyWrap("clinical", 1, "drsmith", 1, b"wrapped")
    with store.maintenance() as tx:
        tx.add_role_key_wraps([wrap])
    with pytest.raises(DatabaseError, match="refused"), store.maintenance() as tx:
        tx.add_role_key_wraps([wrap])  # a wrap is appended once, never replaced
    with store.read() as tx:
        assert tx.role_key_wraps("drsmith") == [wrap]
    store.close()


def test_pg_dump_holds_no_identity_or_narrative(server: Server) -> None:
    smith = server.ring("drsmith")
    _completed_with_addendum(server, smith, "SG-PGPG-0008", ELLIE)
    _completed_with_addendum(server, smith, "SG-PGPG-0009", OTHER)
    dump = subprocess.run(
        [str(server.cluster.bin / "pg_dump"), "-d", server.cluster.dsn(server.dbname)],
        check=True,
        capture_output=True,
        cwd=server.cluster.root,
        **_runner(server.cluster.user),  # type: ignore[arg-type]
    ).stdout
    assert b"SG-PGPG-0008" in dump and b"Dr Smith" in dump  # M is in the clear
    markers = [*ELLIE.values(), *OTHER.values(), NARRATIVE, "Quokkaphrase", "Pelicanwhistle"]
    markers += [ELLIE["nhs"].replace(" ", ""), OTHER["nhs"].replace(" ", "")]
    for marker in markers:
        # Text columns appear as text and bytea as hex in a dump: look for both.
        assert marker.encode() not in dump, marker
        assert marker.encode().hex().encode() not in dump, marker


def _until_a_save_waits_on_a_lock(server: Server) -> None:
    """Poll until some session of the workstation role is blocked on a lock (the second save
    queued behind the first): no timing threshold, only a bound on how often to look."""
    with server.owner() as dba:
        for _ in range(500):
            waiting = dba.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE usename = %s "
                "AND wait_event_type = 'Lock'",
                (server.role,),
            ).fetchone()
            if waiting and waiting[0]:
                return
            time.sleep(0.01)
    raise AssertionError("the second save never queued behind the first")


def test_two_workstations_saving_one_draft(server: Server) -> None:
    """The first save holds the row; the second waits, then is refused naming the first
    saver; the first save is what is stored, with its audit event alone."""
    smith, jones = server.ring("drsmith"), server.ring("drjones")
    one, two = server.store(), server.store()
    draft = _record("SG-PGPG-0010", ELLIE)
    first, key = sealing.seal_record(smith, draft, 0)
    with one.write(AuditEntry("drsmith", "record_created", record_id=draft.id)) as tx:
        tx.insert_sealed_record(first)
    mine = dataclasses.replace(draft, answers={**draft.answers, "child_words": "window one"})
    theirs = dataclasses.replace(draft, answers={**draft.answers, "child_words": "window two"})
    ours, _ = sealing.seal_record(smith, mine, 1, key)
    late, _ = sealing.seal_record(jones, theirs, 1, key)  # opened at the same version
    outcome: dict[str, Any] = {}
    started = threading.Event()

    def second_save() -> None:
        try:
            started.set()
            with two.write(AuditEntry("drjones", "draft_saved", record_id=draft.id)) as tx:
                tx.update_sealed_draft(late)
        except StaleVersionError as exc:
            outcome["refused"] = str(exc)

    with one.write(AuditEntry("drsmith", "draft_saved", record_id=draft.id)) as tx:
        tx.update_sealed_draft(ours)
        # The second workstation saves while the first still holds the row (uncommitted).
        worker = threading.Thread(target=second_save)
        worker.start()
        started.wait()
        _until_a_save_waits_on_a_lock(server)
    worker.join()
    assert "Dr Smith (drsmith) saved it meanwhile" in outcome["refused"]
    assert "Nothing was written" in outcome["refused"]
    assert _open(one, smith, draft.id).answers["child_words"] == "window one"
    with one.read() as tx:
        events = tx.audit_events_after(0)
    assert [(e.actor, e.action) for e in events[-2:]] == [
        ("drsmith", "record_created"),
        ("drsmith", "draft_saved"),
    ]
    one.close()
    two.close()


def test_a_bad_dsn_is_a_clear_error(server: Server) -> None:
    # The DSN is libpq's: a password, if any, comes from PGPASSWORD, ~/.pgpass or a service
    # file, never from an argument of gpshare's.
    with pytest.raises(DatabaseError, match="Cannot reach the practice server"):
        PostgresStore.connect(server.cluster.dsn("no_such_db", server.role), server.practice_keys)
