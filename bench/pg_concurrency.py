"""Benchmark: 10 workstation processes completing assessments at once on one PostgreSQL.

Budget (DESIGN.md §10.4): p95 complete < 60 ms; 0 lost or duplicated writes; chain valid.
Each process opens its own `PostgresStore` (the workstation role's connection, least
privilege) on one throwaway cluster (tests/pg.py, fsync off: the figures leave out the disk
flush a real server pays at each commit) and first starts its drafts (untimed). Then, all
together, it completes each one as the services do on a vault version 2 (no services session
runs on PostgreSQL yet): read the sealed record with the wraps for its author and the lead,
open it (one HPKE unwrap), look the child up by blind token (the earlier-records check of
completion), seal the final version with the record codec (gpshare/services/_sealing.py:
answers, C summary, blind tokens) and write it with its `record_completed` audit event
(answers commitment, SHA-256 of each ciphertext) in one transaction serialised on the chain
head. The navigator's evaluation is not included (client CPU, bench/navigator.py).
Baseline, in the same run: one process alone doing the same completes. Afterwards: completed
rows and events per process (lost / duplicated), every completed record opened with the lead
key, and the chain verified (gpshare/store/postgres/audit.py). Also, untimed: the round trips
of one complete, counted from libpq's protocol trace (PQtrace), which load does not change.
Asserts nothing.

    .venv/bin/python bench/pg_concurrency.py [--each 100] [--workers 10] [--quick] [--json PATH]
        [--dsn "host=BENCH_SERVER dbname=postgres user=SUPERUSER"]

`--dsn` runs against a server of your own instead of the throwaway cluster on this machine
(which shares its cores with the ten workstation processes, so its p95 says little about the
60 ms budget): an idle machine with 4 or more cores kept for benchmarking, reached as a
superuser (bench/pg_common.ExternalServer). The bench makes its own database and
least-privilege role there and drops both at the end; the password comes from libpq.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
from common import Row, Timing, add_quick, print_table, save_rows
from pg_common import LEAD, PracticeMaterial, RecordMaker, add_users, bench_server, completed

from gpshare.records import Record
from gpshare.services import _sealing as sealing
from gpshare.services._sealed_records import audit_details
from gpshare.store.port import AuditEntry, IndexToken, RecordWrite
from gpshare.store.postgres.engine import PostgresStore
from tests.pg import add_store_schema


def _clinician(worker: int) -> str:
    return f"drws{worker}"


def _cpu_seconds(pid: int) -> float:
    """CPU time (user + system) of a local process so far, from /proc (0 where unreadable)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        return 0.0


def _prepare(
    store: PostgresStore, ring: Any, record: Record, outcome: dict[str, Any]
) -> tuple[RecordWrite, dict[str, Any], list[IndexToken]]:
    """What a workstation does before the write: read the sealed record, open it (one
    unwrap), look the child up by blind token, seal the final version (the codec)."""
    with store.read() as tx:
        sealed = tx.sealed_record(record.id, ring.reads_as)
        assert sealed is not None and sealed.answers is not None
        opened = sealing.open_record(ring, sealed)
        tokens = sealing.record_tokens(ring, opened.answers)
        tx.records_for_tokens(tokens, exclude=record.id)
    key = ring.open_object_key(
        "answers",
        record.id,
        sealed.answers.commitment,
        [(w.recipient, w.recipient_generation, w.wrap) for w in sealed.answers.wraps],
    )
    done = completed(opened, outcome, 20)
    write, _same = sealing.seal_record(ring, done, sealed.row.version, key)
    details = {
        "pathway": outcome.get("pathway"),
        "consent_basis": outcome.get("consent_basis"),
        "form_version": done.form_version,
        **audit_details(write),
    }
    return write, details, tokens


def _start(
    dsn: str, material: PracticeMaterial, worker: int, each: int
) -> tuple[PostgresStore, Any, list[tuple[Record, dict[str, Any]]]]:
    """A workstation's connection, its clinician's key ring, and `each` drafts it started
    (untimed), with the outcomes to complete them with."""
    author = _clinician(worker)
    ring = material.keyring().ring(author)
    store = PostgresStore.connect(dsn, material.practice_keys())
    maker = RecordMaker(1000 + worker)
    created = datetime(2026, 11, 25, 9, 0, tzinfo=UTC)
    drafts = []
    for i in range(each):
        rid = f"SG-W{worker:03d}-{i:04d}"
        record, outcome = maker.draft(rid, author, created + timedelta(seconds=i))
        write, _key = sealing.seal_record(ring, record, 0)
        with store.write(AuditEntry(author, "record_created", record_id=rid)) as tx:
            tx.insert_sealed_record(write)
        drafts.append((record, outcome))
    return store, ring, drafts


def complete_many(
    dsn: str,
    material: PracticeMaterial,
    worker: int,
    each: int,
    presealed: bool,
    start: Any,
    out: Any,
) -> None:
    """One workstation process: start `each` drafts, wait for the others, complete them all;
    puts (worker, [complete ms], [write-transaction ms], wall start, wall end) on `out`.
    `presealed`: the client's crypto (open, seal) is done before the wait, and the timed part
    is the server's: the two reads a completion makes and the write transaction."""
    author = _clinician(worker)
    store, ring, drafts = _start(dsn, material, worker, each)
    ready = [_prepare(store, ring, r, o) for r, o in drafts] if presealed else []
    backend = store._conn.info.backend_pid  # the bench reads CPU times; the services never do
    start.wait()
    began = time.time()
    cpu0, server0 = time.process_time(), _cpu_seconds(backend)
    totals: list[float] = []
    writes: list[float] = []
    for i, (record, outcome) in enumerate(drafts):
        t0 = time.perf_counter()
        if presealed:
            write, details, tokens = ready[i]
            with store.read() as tx:
                tx.sealed_record(record.id, ring.reads_as)
                tx.records_for_tokens(tokens, exclude=record.id)
        else:
            write, details, _tokens = _prepare(store, ring, record, outcome)
        t1 = time.perf_counter()
        with store.write(AuditEntry(author, "record_completed", record.id, details)) as tx:
            tx.complete_sealed_record(write)
        t2 = time.perf_counter()
        totals.append((t2 - t0) * 1000)
        writes.append((t2 - t1) * 1000)
    ended = time.time()
    cpu = (
        (time.process_time() - cpu0) * 1000 / each,
        (_cpu_seconds(backend) - server0) * 1000 / each,
    )
    store.close()
    out.put((worker, totals, writes, began, ended, cpu))


def _turns(trace: Path) -> int:
    """Round trips in a libpq trace: each time the workstation, having sent, reads an answer."""
    turns, last = 0, ""
    for line in trace.read_text().splitlines():
        side = line.split("\t", 1)[0]
        if side in ("F", "B"):
            turns += side == "B" and last == "F"
            last = side
    return turns


def round_trips(dsn: str, material: PracticeMaterial, worker: int, each: int) -> tuple[float, ...]:
    """Round trips per complete (the whole of it; its write transaction alone), counted from
    libpq's trace of `each` completes by one process (the trace holds ciphertext and blind
    tokens of fictional records and is deleted)."""
    author = _clinician(worker)
    store, ring, drafts = _start(dsn, material, worker, each)
    conn = store._conn  # the bench reads the protocol; the services never do
    quiet = psycopg.pq.Trace.SUPPRESS_TIMESTAMPS
    total = writes = 0
    with tempfile.TemporaryDirectory() as tmp:
        for n, (record, outcome) in enumerate(drafts):
            whole, write_part = Path(tmp, f"{n}.trace"), Path(tmp, f"{n}w.trace")
            with whole.open("w") as out:
                conn.pgconn.trace(out.fileno())
                conn.pgconn.set_trace_flags(quiet)
                write, details, _tokens = _prepare(store, ring, record, outcome)
                conn.pgconn.untrace()
            with write_part.open("w") as out:
                conn.pgconn.trace(out.fileno())
                conn.pgconn.set_trace_flags(quiet)
                with store.write(AuditEntry(author, "record_completed", record.id, details)) as tx:
                    tx.complete_sealed_record(write)
                conn.pgconn.untrace()
            writes += _turns(write_part)
            total += _turns(whole) + _turns(write_part)
    store.close()
    return total / each, writes / each


def _run(
    dsn: str, material: PracticeMaterial, workers: list[int], each: int, presealed: bool = False
) -> tuple[Timing, Timing, float, tuple[float, ...]]:
    """Run these workers at once; (complete timing, write timing, completes per second,
    (client CPU ms, server backend CPU ms) per complete)."""
    ctx = multiprocessing.get_context("spawn")
    start, out = ctx.Barrier(len(workers)), ctx.Queue()
    procs = [
        ctx.Process(target=complete_many, args=(dsn, material, w, each, presealed, start, out))
        for w in workers
    ]
    for p in procs:
        p.start()
    results = [out.get() for _ in procs]
    for p in procs:
        p.join()
        if p.exitcode:
            raise SystemExit(f"a workstation process failed (exit code {p.exitcode})")
    label = f"{len(workers)} process{'es' if len(workers) > 1 else ''}"
    total = Timing(f"complete, {label}", [t for r in results for t in r[1]])
    write = Timing(f"write transaction, {label}", [t for r in results for t in r[2]])
    wall = max(r[4] for r in results) - min(r[3] for r in results)
    cpu = tuple(sum(r[5][i] for r in results) / len(results) for i in (0, 1))
    return total, write, len(total.samples) / wall, cpu


def _check(dsn: str, material: PracticeMaterial, workers: int, each: int) -> dict[str, Any]:
    """Lost / duplicated completes of every process (ids 0..workers-1), every record opened
    by the lead, the chain verified."""
    lead = material.keyring().ring(LEAD, lead=True)
    store = PostgresStore.connect(dsn, material.practice_keys())
    lost = duplicated = unopened = 0
    conn = store._conn  # the bench reads counts directly; the services never do
    for w in range(workers):
        author = _clinician(w)
        rows = conn.execute(
            "SELECT count(*) FROM records WHERE clinician = %s AND status = 'completed' "
            "AND version = 2",
            (author,),
        ).fetchone()
        events = conn.execute(
            "SELECT count(*), count(DISTINCT record_id) FROM audit "
            "WHERE actor = %s AND action = 'record_completed'",
            (author,),
        ).fetchone()
        assert rows is not None and events is not None
        lost += (each - int(rows[0])) + (each - int(events[1]))
        duplicated += int(events[0]) - int(events[1])
        with store.read() as tx:
            for i in range(each):
                sealed = tx.sealed_record(f"SG-W{w:03d}-{i:04d}", lead.reads_as)
                try:
                    assert sealed is not None and sealed.row.status == "completed"
                    sealing.open_record(lead, sealed)
                except Exception:  # noqa: BLE001 - counted, reported below
                    unopened += 1
    with store.read() as tx:
        report = tx.verify_audit()
    store.close()
    return {
        "lost": lost,
        "duplicated": duplicated,
        "unopened": unopened,
        "chain_ok": report.ok,
        "chain": report.summary(),
        "events": report.events,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", type=int, default=10)
    parser.add_argument("--each", type=int, default=100, help="completes per process")
    parser.add_argument("--json", help="append the result rows to this JSON file")
    parser.add_argument(
        "--dsn",
        help="a PostgreSQL server of your own (superuser; no password) instead of a local one",
    )
    add_quick(parser)
    args = parser.parse_args()
    each = 5 if args.quick else args.each
    n = 3 if args.quick else args.workers
    # Worker ids (one clinician each): whole completes, alone then n at once; then the
    # server part (presealed), alone then n at once.
    whole_alone, whole, server_alone = [0], list(range(1, n + 1)), [n + 1]
    server = list(range(n + 2, 2 * n + 2))
    traced = 2 * n + 2
    clinicians = [_clinician(w) for w in range(2 * n + 3)]
    material = PracticeMaterial.generate([*clinicians, LEAD])
    with bench_server(args.dsn) as cl:
        db = cl.new_database()
        role = add_store_schema(cl, db)
        dsn = cl.dsn(db, role)
        setup = PostgresStore.connect(dsn, material.practice_keys())
        add_users(setup, clinicians)
        setup.close()
        base, base_write, base_rate, base_cpu = _run(dsn, material, whole_alone, each)
        many, many_write, many_rate, many_cpu = _run(dsn, material, whole, each)
        s_base, _w, _r, _c = _run(dsn, material, server_alone, each, presealed=True)
        s_many, s_many_write, s_rate, _c = _run(dsn, material, server, each, presealed=True)
        checked = _check(dsn, material, 2 * n + 2, each)
        trips = round_trips(dsn, material, traced, min(each, 20))
    print(f"{n} processes × {each} completes at once; baseline: 1 process × {each}")
    for t in (base, base_write, many, many_write, s_base, s_many, s_many_write):
        print(f"  {t.describe()}, max {max(t.samples):.2f} ms")
    print(f"  throughput: {many_rate:.0f} completes/s at once, {base_rate:.0f}/s alone; "
          f"server part {s_rate:.0f}/s at once")  # fmt: skip
    print(
        f"  CPU per complete: client {base_cpu[0]:.1f} ms, server backend {base_cpu[1]:.1f} ms "
        f"alone; client {many_cpu[0]:.1f} ms, server backend {many_cpu[1]:.1f} ms at once; "
        f"{os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f}"
    )
    print(f"  round trips per complete: {trips[0]:.1f} ({trips[1]:.1f} in its write transaction)")
    print(
        f"  lost {checked['lost']}, duplicated {checked['duplicated']}, not opening with the "
        f"lead key {checked['unopened']}; {checked['chain']}"
    )
    note = (
        f"max {max(many.samples):.1f} ms; {many_rate:.0f} completes/s ({base_rate:.0f}/s alone);"
        f" lost {checked['lost']}, duplicated {checked['duplicated']}, unopened "
        f"{checked['unopened']}, chain valid {checked['chain_ok']} ({checked['events']} events);"
        f" CPU per complete alone: client {base_cpu[0]:.1f} ms + server {base_cpu[1]:.1f} ms"
    )
    where = "on this machine" if args.dsn is None else "on the --dsn server"
    rows = [
        Row(f"complete, {n} processes at once {where}", "< 60 ms p95", many.p95,
            base.p95, "1 process alone", stat="p95", note=note),
        Row(f"complete, {n} processes at once {where}", "—", many.median, base.median,
            "1 process alone", stat="median"),
        Row("— its write transaction (rows + audit event, commit)", "—", many_write.p95,
            base_write.p95, "1 process alone", stat="p95"),
        Row(f"server part (2 reads + write transaction), {n} processes at once, crypto done "
            "beforehand", "—", s_many.p95, s_base.p95, "1 process alone", stat="p95",
            note=f"max {max(s_many.samples):.1f} ms; write transaction p95 "
            f"{s_many_write.p95:.1f} ms; {s_rate:.0f} completes/s"),
    ]  # fmt: skip
    print_table("Practice server: concurrent completes" + (" (quick)" if args.quick else ""), rows)
    save_rows(
        args.json,
        "pg_concurrency",
        rows,
        {
            **checked,
            "throughput": many_rate,
            "server_throughput": s_rate,
            "cpu_alone": base_cpu,
            "cpu_at_once": many_cpu,
            "round_trips": trips,
        },
    )


if __name__ == "__main__":
    main()
