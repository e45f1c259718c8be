"""Benchmark: 10 workstation processes appending audit events to one PostgreSQL chain at once.

Budget (DESIGN.md §10.4, for completing assessments; this is the chain part of it): p95
< 60 ms, 0 lost or duplicated writes, chain valid. Baseline, in the same run and on the same
throwaway cluster (tests/pg.py, started as the `postgres` user when run as root): the same 10
processes each INSERTing the same row shape into a table with a serial key, without the
head lock or the HMAC — what serialising the chain costs. Each append is its own transaction
on the workstation role's own connection. The test cluster runs with fsync off, so the
figures leave out the disk flush a real server pays on every commit. Asserts nothing.

    .venv/bin/python bench/pg_append.py [--each 200] [--workers 10] [--quick] [--json PATH]
"""

from __future__ import annotations

import argparse
import multiprocessing

from common import Row, Timing, add_quick, print_table, save_rows

from gpshare.store import audit
from gpshare.store.postgres import audit as pg_audit
from tests.pg import add_audit_schema, append_many, cluster

KEY = audit.audit_key(b"b" * 32)


def _run(dsn: str, workers: int, each: int, lock_head: bool) -> Timing:
    ctx = multiprocessing.get_context("spawn")
    with ctx.Pool(workers) as pool:
        results = pool.starmap(
            append_many, [(dsn, KEY, w, each, lock_head) for w in range(workers)]
        )
    name = "chain append" if lock_head else "bare insert"
    return Timing(name, [t * 1000 for r in results for t in r])


def _counts(conn: object, table: str, workers: int, each: int) -> tuple[int, int]:
    """(lost, duplicated) writes among the rows the workers meant to write to `table`."""
    import psycopg

    assert isinstance(conn, psycopg.Connection)
    rows = conn.execute(f"SELECT actor, record_id FROM {table}").fetchall()
    wanted = {(f"ws{w}", f"rec-{w}-{i}") for w in range(workers) for i in range(each)}
    return len(wanted - set(rows)), len(rows) - len(set(rows))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", type=int, default=10)
    parser.add_argument("--each", type=int, default=200, help="appends per process")
    parser.add_argument("--json", help="append the result rows to this JSON file")
    add_quick(parser)
    args = parser.parse_args()
    each = 20 if args.quick else args.each
    import psycopg

    with cluster() as cl:
        db = cl.new_database()
        role = add_audit_schema(cl, db)
        with psycopg.connect(cl.dsn(db)) as conn:
            conn.execute(
                "CREATE TABLE audit_bare (seq bigserial PRIMARY KEY, actor text, action text,"
                " record_id text, details text, prev_hash text, hash text)"
            )
            conn.execute(f'GRANT SELECT, INSERT ON audit_bare TO "{role}"')
            conn.execute(f'GRANT USAGE ON SEQUENCE audit_bare_seq_seq TO "{role}"')
            conn.commit()
        dsn = cl.dsn(db, role)
        base = _run(dsn, args.workers, each, lock_head=False)
        chain = _run(dsn, args.workers, each, lock_head=True)
        with psycopg.connect(dsn) as conn:
            lost, dup = _counts(conn, "audit", args.workers, each)
            bare_lost, bare_dup = _counts(conn, "audit_bare", args.workers, each)
            seqs = [r[0] for r in conn.execute("SELECT seq FROM audit ORDER BY seq")]
            report = pg_audit.verify(conn, KEY)
    gap_free = seqs == list(range(1, args.workers * each + 1))
    print(f"{args.workers} processes × {each} appends, each its own transaction")
    print(base.describe())
    print(chain.describe())
    print(f"chain: lost {lost}, duplicated {dup}, seq gap-free {gap_free}, {report.summary()}")
    print(f"bare insert: lost {bare_lost}, duplicated {bare_dup}")
    rows = [
        Row(
            f"audit append, {args.workers} processes at once",
            "< 60 ms (whole complete)",
            chain.p95,
            base.p95,
            "bare INSERT, no head lock",
            stat="p95",
            note=f"lost {lost}, duplicated {dup}, gap-free {gap_free}, chain valid {report.ok}",
        )
    ]
    print_table(
        "PostgreSQL audit chain under concurrent appends" + (" (quick)" if args.quick else ""), rows
    )
    save_rows(
        args.json, "pg_append", rows, {"lost": lost, "duplicated": dup, "chain_ok": report.ok}
    )


if __name__ == "__main__":
    main()
