"""The audit chain on a real PostgreSQL (tests/pg.py starts it): same seals as the SQLCipher
chain, append-only by GRANTs and triggers, tampering named by verify, and one gap-free chain
under 10 concurrent workstation processes."""

from __future__ import annotations

import multiprocessing
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg
import pytest
import sqlcipher3

from gpshare.store import audit
from gpshare.store.port import AuditEntry, AuditHead
from gpshare.store.postgres import audit as pg_audit
from tests import pg
from tests.pg import Cluster, add_audit_schema, append_many

KEY = audit.audit_key(b"k" * 32)
T0 = datetime(2026, 3, 1, 9, 30, tzinfo=UTC)


def _entries(n: int) -> list[AuditEntry]:
    return [
        AuditEntry(
            actor="drsmith" if i % 2 else "lead",
            action=["unlock", "record_created", "draft_saved", "letter_saved"][i % 4],
            record_id=None if i % 3 == 0 else f"rec-{i}",
            details={"n": i, "note": "ünïcode ✓", "z": [1, 2]} if i % 5 else {},
            at=T0 + timedelta(seconds=i, microseconds=i),
        )
        for i in range(n)
    ]


@pytest.fixture
def chain_db(pg_cluster: Cluster, pg_database: str) -> tuple[Cluster, str, str]:
    """A database with the audit schema: (cluster, database, workstation role)."""
    return pg_cluster, pg_database, add_audit_schema(pg_cluster, pg_database)


def _fill(dsn: str, entries: list[AuditEntry]) -> list[AuditHead]:
    with psycopg.connect(dsn) as conn:
        heads = [pg_audit.append(conn, KEY, e) for e in entries]
        conn.commit()
    return heads


def test_append_verify_round_trip(chain_db: tuple[Cluster, str, str]) -> None:
    cl, db, role = chain_db
    heads = _fill(cl.dsn(db, role), _entries(25))
    assert [h.seq for h in heads] == list(range(1, 26))
    with psycopg.connect(cl.dsn(db, role)) as conn:
        assert pg_audit.head(conn) == heads[-1]
        report = pg_audit.verify(conn, KEY)
    assert report.ok, report.problem
    assert (report.events, report.last_seq) == (25, 25)
    assert report.last_at == (T0 + timedelta(seconds=24, microseconds=24)).isoformat()


def test_empty_chain_verifies(chain_db: tuple[Cluster, str, str]) -> None:
    cl, db, role = chain_db
    with psycopg.connect(cl.dsn(db, role)) as conn:
        assert pg_audit.head(conn) == AuditHead(0, audit.GENESIS)
        assert pg_audit.verify(conn, KEY).ok


def test_same_seals_as_the_sqlcipher_chain(chain_db: tuple[Cluster, str, str]) -> None:
    cl, db, role = chain_db
    entries = _entries(30)
    pg_heads = _fill(cl.dsn(db, role), entries)
    lite = sqlcipher3.connect(":memory:")
    lite.execute(
        "CREATE TABLE audit (seq INTEGER PRIMARY KEY, at TEXT, actor TEXT, action TEXT,"
        " record_id TEXT, details TEXT, prev_hash TEXT, hash TEXT)"
    )
    lite_heads = []
    for e in entries:
        assert e.at is not None
        seq, digest = audit.append(
            lite, KEY, at=e.at, actor=e.actor, action=e.action, record_id=e.record_id,
            details=dict(e.details),
        )  # fmt: skip
        lite_heads.append(AuditHead(seq, digest))
    assert pg_heads == lite_heads
    with psycopg.connect(cl.dsn(db)) as conn:
        pg_rows = conn.execute("SELECT * FROM audit ORDER BY seq").fetchall()
    assert pg_rows == lite.execute("SELECT * FROM audit ORDER BY seq").fetchall()


def test_workstation_role_cannot_update_or_delete(chain_db: tuple[Cluster, str, str]) -> None:
    cl, db, role = chain_db
    _fill(cl.dsn(db, role), _entries(3))
    for statement in (
        "UPDATE audit SET actor = 'mallory' WHERE seq = 2",
        "DELETE FROM audit WHERE seq = 3",
        "TRUNCATE audit",
        "DELETE FROM audit_head",
    ):
        with (
            psycopg.connect(cl.dsn(db, role)) as conn,
            pytest.raises(psycopg.errors.InsufficientPrivilege, match="permission denied"),
        ):
            conn.execute(statement)
    with psycopg.connect(cl.dsn(db, role)) as conn:
        assert pg_audit.verify(conn, KEY).events == 3


@pytest.mark.parametrize(
    "statement",
    [
        "UPDATE audit SET actor = 'mallory' WHERE seq = 2",
        "DELETE FROM audit WHERE seq = 3",
        "TRUNCATE audit",
    ],
)
def test_triggers_refuse_even_the_owner(chain_db: tuple[Cluster, str, str], statement: str) -> None:
    cl, db, _ = chain_db
    _fill(cl.dsn(db), _entries(3))
    with (
        psycopg.connect(cl.dsn(db)) as conn,  # the superuser that owns the tables
        pytest.raises(psycopg.errors.InsufficientPrivilege, match="append-only"),
    ):
        conn.execute(statement)


def test_head_cannot_be_moved_back_or_skipped(chain_db: tuple[Cluster, str, str]) -> None:
    cl, db, role = chain_db
    heads = _fill(cl.dsn(db, role), _entries(3))
    for seq, digest in ((1, heads[0].digest), (5, heads[2].digest), (4, "f" * 64)):
        with (
            psycopg.connect(cl.dsn(db, role)) as conn,
            pytest.raises(psycopg.errors.IntegrityConstraintViolation, match="advance"),
        ):
            conn.execute("UPDATE audit_head SET seq = %s, hash = %s", (seq, digest))


def _tamper(cl: Cluster, db: str, *statements: str) -> None:
    """What a database administrator can do: switch the triggers off and edit rows."""
    with psycopg.connect(cl.dsn(db)) as conn:
        conn.execute("SET session_replication_role = replica")  # triggers do not fire
        for s in statements:
            conn.execute(s)
        conn.commit()


@pytest.mark.parametrize(
    ("statements", "broken_at", "words"),
    [
        (["UPDATE audit SET actor = 'mallory' WHERE seq = 4"], 4, "edited"),
        (["DELETE FROM audit WHERE seq = 4"], 4, "missing"),
        (
            [  # swap events 4 and 5, renumbered so the sequence has no gap
                "UPDATE audit SET seq = 1000 WHERE seq = 4",
                "UPDATE audit SET seq = 4 WHERE seq = 5",
                "UPDATE audit SET seq = 5 WHERE seq = 1000",
            ],
            4,
            "reordered",
        ),
        (["DELETE FROM audit WHERE seq >= 7"], 7, "newest events were removed"),
    ],
    ids=["edited", "deleted", "reordered", "truncated"],
)
def test_tampering_is_detected_and_named(
    chain_db: tuple[Cluster, str, str], statements: list[str], broken_at: int, words: str
) -> None:
    cl, db, role = chain_db
    _fill(cl.dsn(db, role), _entries(8))
    _tamper(cl, db, *statements)
    with psycopg.connect(cl.dsn(db, role)) as conn:
        report = pg_audit.verify(conn, KEY)
    assert not report.ok
    assert report.broken_at == broken_at
    assert words in report.problem
    assert f"event {broken_at}" in report.summary()


def test_ten_processes_append_at_once(chain_db: tuple[Cluster, str, str]) -> None:
    cl, db, role = chain_db
    dsn = cl.dsn(db, role)
    workers, each = 10, 50
    ctx = multiprocessing.get_context("spawn")
    with ctx.Pool(workers) as pool:
        results = pool.starmap(append_many, [(dsn, KEY, w, each) for w in range(workers)])
    assert [len(r) for r in results] == [each] * workers
    with psycopg.connect(dsn) as conn:
        seqs = [r[0] for r in conn.execute("SELECT seq FROM audit ORDER BY seq")]
        written = conn.execute("SELECT actor, record_id FROM audit").fetchall()
        report = pg_audit.verify(conn, KEY)
    assert seqs == list(range(1, workers * each + 1))  # gap-free, no duplicates
    expected = {(f"ws{w}", f"rec-{w}-{i}") for w in range(workers) for i in range(each)}
    assert len(written) == len(set(written)) and set(written) == expected  # 0 lost, 0 twice
    assert report.ok, report.problem
    assert report.events == workers * each


def test_missing_postgresql_fails_with_the_install_command(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setattr(pg, "PG_LIB", tmp_path)  # a machine without the server binaries
    with pytest.raises(RuntimeError, match=r"apt-get install postgresql"), pg.cluster():
        pass
