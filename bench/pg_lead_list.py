"""Benchmark: the lead's records list, first page, on the practice server at 100 000 and
1 000 000 records.

Budget (DESIGN.md §10.4): < 300 ms at 100 000 records, < 500 ms at 1 000 000. Measured as the
services read a vault-version-2 list page (gpshare/services/_sealed_records.list_page): one
read transaction on the workstation role's connection with `list_records(…, light=True)`
(200 M rows, newest change first, each row's MAC checked) and `summaries` of that page, then
each summary opened with the lead's key ring (`with_summaries`, the services' own function).
Baseline, interleaved in the same run: the same first page from SQLCipher at 100 000 records
(`session.assessments.list_records(limit=200, light=True)` on bench/seed.py's vault version 1
seed, where names are columns and nothing is decrypted per row).

The server is seeded with COPY, not one INSERT per row: every record sealed by the record
codec (gpshare/services/_sealing.py) with real keys in worker processes (answers object with
its wraps for author and lead, C summary, blind tokens; 2 % drafts; 9 clinicians and the lead
over 5 years), its M row MACed as the engine MACs it, and two audit events per record
(`record_created`, `record_completed` with the commitment and ciphertext hashes) chained in
order. Then VACUUM ANALYZE, as the server's autovacuum would. The throwaway cluster runs with
fsync off and PostgreSQL's default memory settings. Asserts nothing.

    .venv/bin/python bench/pg_lead_list.py [--sizes 100000,1000000] [--runs 21]
        [--reuse DIR] [--quick] [--json PATH]

`--reuse DIR` keeps the cluster (and each seed's throwaway keys, fictional data only) in DIR
between runs; delete DIR when done. Seeding 1 000 000 records takes ~12 min on 2 busy cores.

`--dsn "host=BENCH_SERVER dbname=postgres user=SUPERUSER"` seeds and measures a server of
your own instead (an idle machine kept for benchmarking; bench/pg_common.ExternalServer): its
seeded databases and roles are dropped at the end (no --reuse); the password comes from libpq.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import random
import re
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from common import (
    PASSWORDS,
    QUICK_N,
    Row,
    add_quick,
    measure_pair,
    print_table,
    save_rows,
)
from pg_common import (
    LEAD,
    ExternalServer,
    PracticeMaterial,
    RecordMaker,
    add_users,
    bench_server,
    completed,
)

from gpshare.filters import RecordFilter
from gpshare.services import _sealing as sealing
from gpshare.services._sealed_records import audit_details, with_summaries
from gpshare.store import audit
from gpshare.store.postgres.engine import PostgresStore, m_row_mac, schema_sql
from tests.pg import Cluster, add_store_schema

PAGE = 200
BATCH = 2000  # records per worker task (one COPY per table)
SEED_VERSION = 1
CLINICIANS = [f"drlist{i}" for i in range(9)]
AUTHORS = [LEAD, *CLINICIANS]
SPAN = timedelta(days=5 * 365)
END = datetime(2026, 11, 25, 17, 0, tzinfo=UTC)
_REF = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"

# ----- seeding (worker processes) -------------------------------------------------------------

_W: dict[str, Any] = {}


def _init_worker(owner_dsn: str, material: PracticeMaterial, n: int) -> None:
    import psycopg

    practice = material.keyring()
    _W.update(
        conn=psycopg.connect(owner_dsn, autocommit=True),
        keys=material.practice_keys(),
        rings={a: practice.ring(a) for a in AUTHORS},
        n=n,
    )
    # Bulk load of rows consistent by construction: no per-row foreign-key triggers.
    _W["conn"].execute("SET session_replication_role = replica")


def _ref(i: int) -> str:
    chars = "".join(_REF[(i >> (5 * k)) & 31] for k in range(8))
    return f"SG-{chars[:4]}-{chars[4:]}"


def _seed_batch(task: tuple[int, int]) -> list[tuple[str, str, str, str, str]]:
    """Seal records start..start+count, COPY their rows; their audit events, in time order."""
    start, count = task
    rng = random.Random(start)
    maker = RecordMaker(start)
    step = SPAN / _W["n"]
    records, summaries, tokens, wraps, events = [], [], [], [], []
    for i in range(start, start + count):
        rid, author = _ref(i), rng.choice(AUTHORS)
        created = END - SPAN + step * i + step * rng.random()
        created = created.replace(microsecond=0)
        record, outcome = maker.draft(rid, author, created)
        ring = _W["rings"][author]
        draft = rng.random() < 0.02
        if draft:
            write, _key = sealing.seal_record(ring, record, 0)
        else:  # completed after a save or two: version 3
            write, _key = sealing.seal_record(
                ring, completed(record, outcome, rng.randint(8, 55)), 2
            )
        row = write.row
        m = {
            "id": rid, "clinician": author, "status": row.status, "form_id": row.form_id,
            "form_version": row.form_version, "current_step": row.current_step,
            "created": row.created, "updated": row.updated, "completed": row.completed,
            "version": row.version, "saved_by": author,
            "answers_commit": write.answers.commitment,
        }  # fmt: skip
        records.append(
            (*m.values(), write.answers.ct, m_row_mac(_W["keys"], "records", m))  # type: ignore[arg-type]
        )
        assert write.summary is not None
        s = write.summary
        summaries.append((s.record_id, s.version, s.generation, s.ct))
        tokens.extend((t.generation, t.type, t.token, rid) for t in dict.fromkeys(write.tokens))
        wraps.extend(
            (w.object_kind, w.object_id, w.recipient, w.recipient_generation, w.wrap, w.created)
            for w in write.answers.wraps
        )
        events.append(
            (audit.at_iso(created), author, "record_created", rid,
             audit.details_json({"form": row.form_id, "version": row.form_version}))
        )  # fmt: skip
        if not draft:
            details = {
                "pathway": outcome.get("pathway"), "consent_basis": outcome.get("consent_basis"),
                "form_version": row.form_version, **audit_details(write),
            }  # fmt: skip
            at = datetime.fromisoformat(str(row.completed))
            events.append(
                (audit.at_iso(at), author, "record_completed", rid, audit.details_json(details))
            )
    conn = _W["conn"]
    with conn.transaction(), conn.cursor() as cur:
        for table, columns, rows in (
            ("records", ", ".join([*m, "answers_ct", "row_mac"]), records),
            ("record_summaries", "record_id, version, generation, ct", summaries),
            ("blind_index", "generation, type, token, record_id", tokens),
            (
                "object_wraps",
                "object_kind, object_id, recipient, recipient_generation, wrap, created",
                wraps,
            ),
        ):
            with cur.copy(f"COPY {table} ({columns}) FROM STDIN".encode()) as copy:
                for r in rows:
                    copy.write_row(r)
    return sorted(events)


def _seed(
    cl: Cluster | ExternalServer, dbname: str, n: int, material: PracticeMaterial
) -> dict[str, Any]:
    """Create `dbname` with the server's schema and n sealed records (see the docstring)."""
    import psycopg

    started = time.perf_counter()
    with psycopg.connect(cl.dsn(), autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{dbname}" TEMPLATE template0')
    role = add_store_schema(cl, dbname)
    keys = material.practice_keys()
    store = PostgresStore.connect(cl.dsn(dbname, role), keys)
    add_users(store, CLINICIANS)
    head = store.last_head
    store.close()
    tasks = [(s, min(BATCH, n - s)) for s in range(0, n, BATCH)]
    ctx = multiprocessing.get_context("spawn")
    seq, prev = head.seq, head.digest
    owner = psycopg.connect(cl.dsn(dbname), autocommit=True)
    owner.execute("SET session_replication_role = replica")  # the head row moves once, below
    with ctx.Pool(2, _init_worker, (cl.dsn(dbname), material, n)) as pool:
        for done, events in enumerate(pool.imap(_seed_batch, tasks), 1):
            rows = []
            for at, actor, action, rid, details in events:
                seq += 1
                body = audit.canonical(seq, at, actor, action, rid, details)
                digest = audit.event_hash(keys.audit, body, prev)
                rows.append((seq, at, actor, action, rid, details, prev, digest))
                prev = digest
            with (
                owner.transaction(),
                owner.cursor() as cur,
                cur.copy(
                    "COPY audit (seq, at, actor, action, record_id, details, prev_hash, hash) "
                    "FROM STDIN"
                ) as copy,
            ):
                for r in rows:
                    copy.write_row(r)
            print(f"  {min(done * BATCH, n):>8} / {n} records", end="\r", flush=True)
    print()
    owner.execute("UPDATE audit_head SET seq = %s, hash = %s", (seq, prev))
    written = time.perf_counter()
    store = PostgresStore.connect(cl.dsn(dbname, role), keys)
    with store.read() as tx:
        chain = tx.verify_audit()
    store.close()
    print(f"  {chain.summary()}")
    owner.execute("VACUUM ANALYZE")
    owner.close()
    return {
        "seed_version": SEED_VERSION,
        "n": n,
        "role": role,
        "events": seq,
        "chain_ok": chain.ok,
        "seed_s": round(written - started, 1),
        "verify_and_vacuum_s": round(time.perf_counter() - written, 1),
    }


def _current_indexes(cl: Cluster | ExternalServer, dbname: str) -> None:
    """Give a reused seed every index of today's schema.sql (one line each there), so a seed
    made before an index was added measures the engine as it is now."""
    import psycopg

    with psycopg.connect(cl.dsn(dbname), autocommit=True) as conn:
        for statement in re.findall(r"^CREATE INDEX .*;$", schema_sql(), re.MULTILINE):
            conn.execute(statement.replace("CREATE INDEX", "CREATE INDEX IF NOT EXISTS", 1))
        conn.execute("ANALYZE records")


def _seeded(
    cl: Cluster | ExternalServer, n: int, keep: Path | None
) -> tuple[str, PracticeMaterial, dict[str, Any]]:
    """The database of n records (reused from `keep` when its description matches)."""
    import psycopg

    dbname = f"lead_list_{n}"
    info_path = keep / f"seed-{n}.json" if keep else None
    if info_path and info_path.exists():
        saved = json.loads(info_path.read_text())
        if saved["info"].get("seed_version") == SEED_VERSION:
            print(f"reusing the seeded server database {dbname} ({n} records)")
            material = PracticeMaterial.from_json(saved["material"])
            _current_indexes(cl, dbname)
            return dbname, material, saved["info"]
    if isinstance(cl, ExternalServer):
        dbname = f"gpshare_bench_{dbname}"  # never a name of the server's own
        cl.made.append(dbname)  # dropped, with its role, when the run ends
    with psycopg.connect(cl.dsn(), autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{dbname}" WITH (FORCE)')
        conn.execute(f'DROP ROLE IF EXISTS "ws_{dbname}"')
    material = PracticeMaterial.generate([*AUTHORS])
    print(f"seeding {n} sealed records into the server (COPY, 2 worker processes)…")
    info = _seed(cl, dbname, n, material)
    print(
        f"  seeded in {info['seed_s']} s, verify + VACUUM ANALYZE {info['verify_and_vacuum_s']} s"
    )
    if info_path:
        # Throwaway keys of fictional data, kept beside the cluster so --reuse can read it.
        info_path.write_text(json.dumps({"info": info, "material": material.to_json()}))
    return dbname, material, info


# ----- measuring ------------------------------------------------------------------------------


def _server_page(
    cl: Cluster | ExternalServer, dbname: str, info: dict[str, Any], material: PracticeMaterial
):  # type: ignore[no-untyped-def]
    """(first-page function, store) on the workstation role's connection, as the lead."""
    store = PostgresStore.connect(cl.dsn(dbname, info["role"]), material.practice_keys())
    lead = material.keyring().ring(LEAD, lead=True)
    # What with_summaries reads of a Session: its key ring and who is acting.
    session: Any = SimpleNamespace(keys=lead, user=SimpleNamespace(username=LEAD))

    def page() -> list[Any]:
        with store.read() as tx:
            rows = tx.list_records(RecordFilter(), PAGE, 0, light=True)
            return with_summaries(session, tx, rows)

    return page, store


def _explain(cl: Cluster | ExternalServer, dbname: str) -> str:
    """EXPLAIN ANALYZE of the page's M-row query (the engine's SQL), first and last lines."""
    import psycopg

    with psycopg.connect(cl.dsn(dbname), autocommit=True) as conn:
        plan = [
            r[0]
            for r in conn.execute(
                "EXPLAIN (ANALYZE, BUFFERS) SELECT id, clinician, status, form_id, form_version,"
                " current_step, created, updated, completed, version, saved_by, answers_commit,"
                " row_mac FROM records ORDER BY updated DESC, id DESC LIMIT 200 OFFSET 0"
            )
        ]
    return "\n    ".join([*plan[:4], plan[-1]])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="100000,1000000", help="record counts, comma-separated")
    parser.add_argument("--runs", type=int, default=21)
    parser.add_argument("--reuse", metavar="DIR", type=Path, help="keep the seeded cluster here")
    parser.add_argument("--json", help="append the result rows to this JSON file")
    parser.add_argument(
        "--dsn",
        help="a PostgreSQL server of your own (superuser; no password) instead of a local one",
    )
    add_quick(parser)
    args = parser.parse_args()
    if args.dsn and args.reuse:
        parser.error("--reuse keeps a local cluster; it does not apply with --dsn")
    sizes = [QUICK_N] if args.quick else [int(s) for s in args.sizes.split(",")]
    runs = 3 if args.quick else args.runs
    base_n = QUICK_N if args.quick else 100_000
    from seed import ensure_seeded

    from gpshare.services import open_session

    folder, _info, _plain = ensure_seeded(base_n, reuse=True)
    embedded = open_session(folder, LEAD, PASSWORDS[LEAD])

    def embedded_page() -> list[Any]:
        return embedded.assessments.list_records(RecordFilter(), limit=PAGE, light=True)

    rows: list[Row] = []
    extra: dict[str, Any] = {}
    try:
        with bench_server(args.dsn, args.reuse) as cl:
            for n in sizes:
                dbname, material, info = _seeded(cl, n, args.reuse)
                page, store = _server_page(cl, dbname, info, material)
                try:
                    first = page()
                    named = sum(1 for r in first if r.child.given_name)
                    print(
                        f"{n} records: first page {len(first)} rows, {named} with a decrypted name"
                    )
                    print("  " + _explain(cl, dbname))
                    server, base = measure_pair(
                        f"server first page, {n} records", page,
                        f"SQLCipher first page, {base_n} records", embedded_page, runs,
                    )  # fmt: skip
                finally:
                    store.close()
                budget = "< 300 ms" if n <= 100_000 else "< 500 ms"
                for t in (server, base):
                    print(f"  {t.describe()}")
                for stat in ("median", "p95"):
                    rows.append(
                        Row(
                            f"lead list first page (200), server, {n:_} records".replace("_", " "),
                            budget,
                            getattr(server, stat),
                            getattr(base, stat),
                            f"SQLCipher v1, {base_n} records",
                            stat=stat,
                            note=f"{named}/{len(first)} names decrypted; {info['events']} events"
                            if stat == "p95"
                            else "",
                        )
                    )
                extra[str(n)] = {k: v for k, v in info.items() if k != "role"}
    finally:
        embedded.close()
    print_table("Practice server: lead list" + (" (quick)" if args.quick else ""), rows)
    save_rows(args.json, "pg_lead_list", rows, extra)


if __name__ == "__main__":
    main()
