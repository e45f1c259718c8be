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
key, and the chain verified (gpshare/store/postgres/audit.py). Asserts nothing.

    .venv/bin/python bench/pg_concurrency.py [--each 100] [--workers 10] [--quick] [--json PATH]
"""

from __future__ import annotations

import argparse
import multiprocessing
import time
from datetime import UTC, datetime, timedelta
from typing import Any

from common import Row, Timing, add_quick, print_table, save_rows
from pg_common import LEAD, PracticeMaterial, RecordMaker, add_users, completed

from gpshare.services import _sealing as sealing
from gpshare.services._sealed_records import audit_details
from gpshare.store.port import AuditEntry
from gpshare.store.postgres.engine import PostgresStore
from tests.pg import add_store_schema, cluster


def _clinician(worker: int) -> str:
    return f"drws{worker}"


def complete_many(
    dsn: str, material: PracticeMaterial, worker: int, each: int, start: Any, out: Any
) -> None:
    """One workstation process: start `each` drafts, wait for the others, complete them all;
    puts (worker, [complete ms], [write-transaction ms], wall start, wall end) on `out`."""
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
    start.wait()
    began = time.time()
    totals: list[float] = []
    writes: list[float] = []
    for record, outcome in drafts:
        t0 = time.perf_counter()
        with store.read() as tx:
            sealed = tx.sealed_record(record.id, ring.reads_as)
            assert sealed is not None
            opened = sealing.open_record(ring, sealed)
            tx.records_for_tokens(sealing.record_tokens(ring, opened.answers), exclude=record.id)
        assert sealed.answers is not None
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
        t1 = time.perf_counter()
        with store.write(AuditEntry(author, "record_completed", record.id, details)) as tx:
            tx.complete_sealed_record(write)
        t2 = time.perf_counter()
        totals.append((t2 - t0) * 1000)
        writes.append((t2 - t1) * 1000)
    ended = time.time()
    store.close()
    out.put((worker, totals, writes, began, ended))


def _run(
    dsn: str, material: PracticeMaterial, workers: list[int], each: int
) -> tuple[Timing, Timing, float]:
    """Run these workers at once; (complete timing, write timing, completes per second)."""
    ctx = multiprocessing.get_context("spawn")
    start, out = ctx.Barrier(len(workers)), ctx.Queue()
    procs = [
        ctx.Process(target=complete_many, args=(dsn, material, w, each, start, out))
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
    return total, write, len(total.samples) / wall


def _check(dsn: str, material: PracticeMaterial, workers: int, each: int) -> dict[str, Any]:
    """Lost / duplicated completes per process, every record opened by the lead, chain."""
    lead = material.keyring().ring(LEAD, lead=True)
    store = PostgresStore.connect(dsn, material.practice_keys())
    lost = duplicated = unopened = 0
    conn = store._conn  # the bench reads counts directly; the services never do
    for w in range(workers + 1):  # the baseline process is worker `workers`
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
    events_total = report.events
    store.close()
    return {
        "lost": lost,
        "duplicated": duplicated,
        "unopened": unopened,
        "chain_ok": report.ok,
        "chain": report.summary(),
        "events": events_total,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", type=int, default=10)
    parser.add_argument("--each", type=int, default=100, help="completes per process")
    parser.add_argument("--json", help="append the result rows to this JSON file")
    add_quick(parser)
    args = parser.parse_args()
    each = 5 if args.quick else args.each
    workers = 3 if args.quick else args.workers
    clinicians = [_clinician(w) for w in range(workers + 1)]
    material = PracticeMaterial.generate([*clinicians, LEAD])
    with cluster() as cl:
        db = cl.new_database()
        role = add_store_schema(cl, db)
        dsn = cl.dsn(db, role)
        setup = PostgresStore.connect(dsn, material.practice_keys())
        add_users(setup, clinicians)
        setup.close()
        base, base_write, base_rate = _run(dsn, material, [workers], each)
        many, many_write, many_rate = _run(dsn, material, list(range(workers)), each)
        checked = _check(dsn, material, workers, each)
    print(f"{workers} processes × {each} completes at once; baseline: 1 process × {each}")
    for t in (base, base_write, many, many_write):
        print(f"  {t.describe()}, max {max(t.samples):.2f} ms")
    print(f"  throughput: {many_rate:.0f} completes/s at once, {base_rate:.0f}/s alone")
    print(
        f"  lost {checked['lost']}, duplicated {checked['duplicated']}, not opening with the "
        f"lead key {checked['unopened']}; {checked['chain']}"
    )
    note = (
        f"max {max(many.samples):.1f} ms; {many_rate:.0f} completes/s ({base_rate:.0f}/s alone);"
        f" lost {checked['lost']}, duplicated {checked['duplicated']}, unopened "
        f"{checked['unopened']}, chain valid {checked['chain_ok']} ({checked['events']} events)"
    )
    rows = [
        Row(
            f"complete, {workers} workstation processes at once",
            "< 60 ms p95",
            many.p95,
            base.p95,
            "1 process alone",
            stat="p95",
            note=note,
        ),
        Row(
            f"complete, {workers} processes at once",
            "—",
            many.median,
            base.median,
            "1 process alone",
            stat="median",
        ),
        Row(
            "— its write transaction (rows + audit event, commit)",
            "—",
            many_write.p95,
            base_write.p95,
            "1 process alone",
            stat="p95",
        ),
    ]
    print_table("Practice server: concurrent completes" + (" (quick)" if args.quick else ""), rows)
    save_rows(args.json, "pg_concurrency", rows, {**checked, "throughput": many_rate})


if __name__ == "__main__":
    main()
