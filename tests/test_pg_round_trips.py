"""How a complete talks to the practice server (gpshare/store/postgres/engine.py): the round
trips it takes, read from libpq's own protocol trace (PQtrace), and what it changes.

A round trip is a turn of the conversation: the workstation sends, then waits for the server's
answer. The counts are what the engine sends, not times, so load cannot make them flaky. The
write transaction holds the audit chain's head lock from its third round trip to its commit in
the fourth; the event's INSERT, the head's UPDATE and the COMMIT travel together. Blind tokens a
save keeps are not rewritten (no superseded-then-revived churn)."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import psycopg
import pytest

from gpshare.services import _sealing as sealing
from gpshare.store.port import AuditEntry, RecordWrite
from gpshare.store.postgres.engine import PostgresStore
from tests import test_pg_store
from tests.test_pg_store import Server
from tests.test_sealing import CREATED, ELLIE, OTHER, OUTCOME, Ring, _record

server = test_pg_store.server  # the same fixture: a practice server with three users


@contextmanager
def _traced(store: PostgresStore, path: Path) -> Iterator[Callable[[], list[list[str]]]]:
    """Trace the store's connection into `path`; the callable returns the conversation as
    round trips, each the statements the workstation sent in it (the text of every Parse and
    simple Query message; a statement already prepared on this connection shows no text)."""
    conn = store._conn  # the test reads the protocol; the services never do
    with path.open("w") as out:
        conn.pgconn.trace(out.fileno())
        conn.pgconn.set_trace_flags(psycopg.pq.Trace.SUPPRESS_TIMESTAMPS)
        try:
            yield lambda: _round_trips(path)
        finally:
            conn.pgconn.untrace()


def _round_trips(path: Path) -> list[list[str]]:
    trips: list[list[str]] = []
    answered = True
    for line in path.read_text().splitlines():
        fields = line.split("\t")
        if len(fields) < 3:
            continue
        if fields[0] == "F":
            if answered:
                trips.append([])
                answered = False
            # Parse: "name" "text" and parameter types; Query: "text". The text is traced
            # with its own double quotes unescaped ("records"), so it ends at the last quote.
            content = "\t".join(fields[3:]).strip()
            if fields[2] == "Parse":
                text = content.split('" "', 1)[1]
                trips[-1].append(text[: text.rindex('"')])
            elif fields[2] == "Query":
                trips[-1].append(content[1 : content.rindex('"')])
        elif fields[0] == "B":
            answered = True
    return trips


def _draft(store: PostgresStore, ring: Ring, rid: str) -> tuple[RecordWrite, bytes]:
    """A sealed draft on the server; its write and its answers' object key."""
    first, key = sealing.seal_record(ring, _record(rid, ELLIE), 0)
    with store.write(AuditEntry(ring.user, "record_created", record_id=rid)) as tx:
        tx.insert_sealed_record(first)
    return first, key


def test_a_complete_takes_nine_round_trips_and_holds_the_head_for_two(
    server: Server,
    tmp_path: Path,
) -> None:
    ring = server.ring("drsmith")
    store = server.store()
    _draft(store, ring, "SG-RT-1")
    # A fresh connection: every statement is parsed (named in the trace) on first use.
    store.close()
    store = server.store()
    with _traced(store, tmp_path / "read.trace") as trips:
        with store.read() as tx:
            sealed = tx.sealed_record("SG-RT-1", ring.reads_as)
            assert sealed is not None
            opened = sealing.open_record(ring, sealed)
            assert (
                tx.records_for_tokens(sealing.record_tokens(ring, opened.answers), "SG-RT-1") == []
            )
        read = trips()
    # BEGIN (its isolation in the same statement); records, wraps and summaries together; the
    # author's name; the blind-token lookup (nothing found: no record read); COMMIT.
    assert len(read) == 5, read
    assert read[0] == ["BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY"]
    assert len(read[1]) == 3 and "FROM records" in read[1][0] and "object_wraps" in read[1][1]
    assert "FROM users WHERE username = ANY" in read[2][0]
    assert "blind_index" in read[3][0]
    assert read[4] == ["COMMIT"]

    assert sealed.answers is not None
    key = ring.open_object_key(
        "answers", "SG-RT-1", sealed.answers.commitment,
        [(w.recipient, w.recipient_generation, w.wrap) for w in sealed.answers.wraps],
    )  # fmt: skip
    done = dataclasses.replace(
        opened, status="completed", completed=CREATED, outcome=dict(OUTCOME), current_step=None
    )
    final, _ = sealing.seal_record(ring, done, sealed.row.version, key)
    with _traced(store, tmp_path / "write.trace") as trips:
        with store.write(AuditEntry("drsmith", "record_completed", record_id="SG-RT-1")) as tx:
            tx.complete_sealed_record(final)
        write = trips()
    assert len(write) == 4, write
    assert write[0] == ["BEGIN"]
    assert len(write[1]) == 1 and write[1][0].endswith("FOR UPDATE") and "records" in write[1][0]
    # The rows go with the head lock, which is taken last …
    assert any("record_summaries" in s for s in write[2])
    assert any("blind_index" in s for s in write[2])
    assert any(s.startswith('UPDATE "records"') for s in write[2])
    assert write[2][-1] == "SELECT seq, hash FROM audit_head FOR UPDATE"
    # … and the event goes with the commit.
    assert write[3][0].startswith("INSERT INTO audit ")
    assert write[3][1].startswith("UPDATE audit_head")
    assert write[3][2] == "COMMIT"
    with store.read() as tx:
        row = tx.sealed_record("SG-RT-1", [])
        assert row is not None and row.row.status == "completed"
        assert tx.verify_audit().ok
        assert tx.audit_head() == store.last_head
    store.close()


def _tokens(srv: Server, rid: str) -> dict[tuple[str, bytes], tuple[bool, str]]:
    """The record's token rows as the server holds them: superseded, and the row version
    (xmin changes whenever the row is written)."""
    with srv.owner() as conn:
        return {
            (r[0], bytes(r[1])): (bool(r[2]), str(r[3]))
            for r in conn.execute(
                "SELECT type, token, superseded, xmin::text FROM blind_index WHERE record_id = %s",
                (rid,),
            )
        }


def test_a_save_rewrites_only_the_blind_tokens_that_changed(server: Server) -> None:
    ring = server.ring("drsmith")
    store = server.store()
    first, key = _draft(store, ring, "SG-RT-2")
    before = _tokens(server, "SG-RT-2")
    assert before and not any(s for s, _ in before.values())

    # The same child: no token row is written at all.
    same, _ = sealing.seal_record(ring, _record("SG-RT-2", ELLIE), 1, key)
    with store.write(AuditEntry("drsmith", "draft_saved", record_id="SG-RT-2")) as tx:
        tx.update_sealed_draft(same)
    assert _tokens(server, "SG-RT-2") == before

    # Another child: the old tokens are superseded (kept, never deleted), the new ones live.
    other, _ = sealing.seal_record(ring, _record("SG-RT-2", OTHER), 2, key)
    with store.write(AuditEntry("drsmith", "draft_saved", record_id="SG-RT-2")) as tx:
        tx.update_sealed_draft(other)
    moved = _tokens(server, "SG-RT-2")
    live = {t for t, (superseded, _) in moved.items() if not superseded}
    assert live == {(t.type, t.token) for t in other.tokens}
    assert all(moved[t][0] for t in before if t not in live)

    # Back to the first child: its tokens are revived, not inserted again.
    back, _ = sealing.seal_record(ring, _record("SG-RT-2", ELLIE), 3, key)
    with store.write(AuditEntry("drsmith", "draft_saved", record_id="SG-RT-2")) as tx:
        tx.update_sealed_draft(back)
    after = _tokens(server, "SG-RT-2")
    assert set(after) == set(moved)
    assert {t for t, (s, _) in after.items() if not s} == {(t.type, t.token) for t in back.tokens}
    with store.read() as tx:
        found = tx.records_for_tokens(back.tokens, exclude=None)
        assert found == []  # a draft is never an earlier record
    store.close()


def test_a_read_inside_a_pipelined_write_is_that_write(server: Server) -> None:
    """A read() opened in a write() — before or after its first statement — reads in the
    write's transaction, so what it saw and what it wrote stand or fall together."""
    ring = server.ring("drsmith")
    store = server.store()
    first, _key = sealing.seal_record(ring, _record("SG-RT-3", ELLIE), 0)
    with (
        pytest.raises(RuntimeError, match="stop"),
        store.write(AuditEntry("drsmith", "record_created", record_id="SG-RT-3")) as tx,
    ):
        with store.read() as before:
            assert before.sealed_record("SG-RT-3", []) is None
        tx.insert_sealed_record(first)
        with store.read() as inside:
            assert inside.sealed_record("SG-RT-3", []) is not None
        raise RuntimeError("stop")
    with store.read() as tx2:
        assert tx2.sealed_record("SG-RT-3", []) is None
        assert tx2.audit_head() == store.last_head
    # The connection is usable after the rollback, and a write commits as usual.
    with store.write(AuditEntry("drsmith", "record_created", record_id="SG-RT-3")) as tx:
        tx.insert_sealed_record(first)
    with store.read() as tx2:
        assert tx2.sealed_record("SG-RT-3", []) is not None
    store.close()
