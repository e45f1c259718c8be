"""Benchmark: the lead's search on the vault-v2 replica (lead-index.db) vs plain SQLite FTS5.

Budget (DESIGN.md §10.4, docs/vault-v2.md §6): lead search on the local replica at 100 000
records < 50 ms. Each query is what the records list asks for a search: the first page of
200 light records (gpshare.store.sqlcipher.replica.list_records). The baseline is the same
function on an unencrypted copy of the same replica (`sqlcipher_export`: same schema, same
FTS5 text and tokenizer), opened with SQLCipher's own SQLite and no key, timed interleaved in
the same run (p50 and p95 of `--runs`).

Queries: one common word, a surname prefix, an NHS number (the child_nhs filter), and a word
with a pathway and a 6-month date range; also, for the lists that move to the replica in the
services round (docs/vault-v2.md §1.2), the unfiltered first page (< 300 ms) and a pathway +
6-month filter (< 100 ms).

`--rebuild` (informative; §10.2 says ~6 s at 100 000) also times a whole rebuild from sealed
records: every record's C summary (seal_summary under a clinical key) and its search text as
an N object (seal_object under its own object key) are opened and the replica is built from
them, against a loop that only opens the same ciphertexts. The object keys are held in
memory: the HPKE unwrap of each key (~0.05 ms, docs/vault-v2.md §6.1) is not included.

The replica is built once from the seed of bench/seed.py (records.db read through the
repositories, search text as the services make it) and kept with its plain copy in
$GPSHARE_BENCH_DIR/lead-<N>/ for `--reuse`, with the bench-only lead data key beside it
(fictional data only; delete the folder when done). Asserts nothing.

`--engine postgres` (issue #14): the lead's index on a practice server's workstation. A
throwaway server is seeded with `--n` sealed records as bench/pg_lead_list.py seeds it
(COPY; `--pg-reuse DIR` keeps that cluster between runs), and the workstation's
lead-index.db is built from it as the services build it (gpshare/services/search_index.items:
every record's sealed row, summary and answers read from PostgreSQL through the port and
opened with the lead's key ring; the build time is printed). The same queries are then timed
on that index against the embedded engine's index of bench/seed.py's vault of the same size,
interleaved in the same run: the budget is the same < 50 ms, the ratio shows what the server
costs a search (it should cost nothing: the search never leaves the workstation).

    .venv/bin/python bench/lead_search.py [--reuse] [--runs 21] [--n 100000] [--rebuild] [--quick] [--json PATH]
    .venv/bin/python bench/lead_search.py --engine postgres [--pg-reuse DIR] [--reuse] [--n 100000] [--quick]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import (  # noqa: E402
    BENCH_DIR,
    PASSWORDS,
    QUICK_N,
    Row,
    add_quick,
    machine,
    measure_pair,
    print_table,
    save_rows,
)

PAGE = 200
# The two queries that are not searches (DESIGN §8: first paint, filter); searches < 50 ms.
LIST_BUDGETS = {"no filter": "< 300 ms", "pathway + 6 months": "< 100 ms"}
ITEMS_PER_READ = 2000


def _items(conn: Any) -> Iterator[Any]:
    """Every record of records.db as a replica item (M + C fields, search text, notes)."""
    from gpshare.filters import RecordFilter
    from gpshare.services._records import _search_text
    from gpshare.store.port import ReplicaItem
    from gpshare.store.sqlcipher import repositories as repo

    notes: dict[str, list[str]] = defaultdict(list)
    for fu in repo.followups(conn):
        if fu.note:
            notes[fu.record_id].append(fu.note)
    for rid, body in conn.execute("SELECT record_id, body FROM addenda"):
        notes[str(rid)].append(str(body))
    for review in repo.reviews(conn):
        notes[review.record_id].extend(t for t in (review.comments, review.learning) if t)
    states = {
        str(rid): (due, action)
        for rid, due, action in conn.execute("SELECT record_id, due, action FROM referral_states")
    }
    ids = [str(r[0]) for r in conn.execute("SELECT id FROM records ORDER BY id")]
    for first in range(0, len(ids), ITEMS_PER_READ):
        page = tuple(ids[first : first + ITEMS_PER_READ])
        for record in repo.list_records(conn, RecordFilter(record_ids=page)):
            due, action = states.get(record.id, (None, None))
            yield ReplicaItem.from_record(
                record,
                search_text=_search_text(record.answers),
                narrative="\n".join(notes.get(record.id, ())),
                due=due,
                action=action,
            )


def ensure_replica(folder: Path, info: dict[str, Any], reuse: bool) -> tuple[Path, Path, bytes]:
    """(replica, plain copy, lead data key), built from the seed unless `reuse` finds them."""
    from gpshare.services import open_session
    from gpshare.store.sqlcipher import replica as replica_mod

    cache = BENCH_DIR / f"lead-{info['n']}"
    path, plain, meta = cache / "lead-index.db", cache / "lead-index-plain.db", cache / "info.json"
    wanted = {"seed": info["created"], "schema": replica_mod.SCHEMA_VERSION}
    if reuse and meta.exists() and path.exists() and plain.exists():
        stored = json.loads(meta.read_text(encoding="utf-8"))
        if {k: stored.get(k) for k in wanted} == wanted:
            print(f"reusing replica {path}")
            return path, plain, bytes.fromhex(stored["key"])
    cache.mkdir(parents=True, exist_ok=True)
    key = os.urandom(32)
    replica_mod.LeadReplica(path, key).delete()
    for stale in (plain, meta):
        stale.unlink(missing_ok=True)
    session = open_session(folder, "lead", PASSWORDS["lead"])
    try:
        conn = session.store.connection
        with session.store.read() as tx:
            head = tx.audit_head()
        replica = replica_mod.LeadReplica(path, key)
        start = time.perf_counter()
        count = replica.rebuild(_items(conn), head, total=int(info["n"]))
        print(f"built the replica ({count} records) in {time.perf_counter() - start:.1f} s")
        replica.close()
    finally:
        session.close()
    export = replica_mod.LeadReplica(path, key)
    conn = export.connection
    conn.execute(f"ATTACH DATABASE '{plain}' AS plain KEY ''")
    conn.execute("SELECT sqlcipher_export('plain')")
    conn.execute("DETACH DATABASE plain")
    export.close()
    meta.write_text(json.dumps({**wanted, "key": key.hex()}), encoding="utf-8")
    return path, plain, key


def queries(info: dict[str, Any], conn: Any) -> dict[str, Any]:
    """The filters timed: records_list.py's pathway + 6 months and common word, and more."""
    from dataclasses import replace

    from records_list import filters

    from gpshare.filters import RecordFilter

    shared = filters(info)
    by_pathway, common = shared["filter: pathway + 6 months"], shared["search: one common word"]
    row = conn.execute(
        "SELECT child_nhs FROM records WHERE child_nhs IS NOT NULL ORDER BY id LIMIT 1"
    ).fetchone()
    return {
        # Not searches: the list's first page and a filter, for the lists' move (§1.2).
        "no filter": RecordFilter(),
        "pathway + 6 months": by_pathway,
        "common word": common,
        "surname prefix": RecordFilter(search="Okaf"),
        "NHS number": RecordFilter(child_nhs=row[0] if row else "9999999999"),
        "word + pathway + 6 months": replace(by_pathway, search=common.search),
    }


def _query_rows(
    what: tuple[str, str, str],
    pages: tuple[Callable[[Any], object], Callable[[Any], object]],
    count: Callable[[Any], int],
    flts: tuple[dict[str, Any], dict[str, Any]],
    runs: int,
) -> list[Row]:
    """Each query's first page on the measured index against the baseline, interleaved:
    `what` = (operation label, measured name, baseline name), `flts` the same queries as each
    side asks them (only the NHS number they look up differs)."""
    (label, mine_name, base_name), (page, base_page), (mine, theirs) = what, pages, flts
    rows = []
    for name, flt in mine.items():
        matching = count(flt)
        a, b = measure_pair(
            f"{mine_name}: {name}",
            lambda f=flt: page(f),
            f"{base_name}: {name}",
            lambda f=theirs[name]: base_page(f),
            runs,
        )
        print(f"{a.describe()}  [{matching} matching]")
        print(b.describe())
        budget = LIST_BUDGETS.get(name, "< 50 ms")
        for stat, measured, baseline in (("p50", a.median, b.median), ("p95", a.p95, b.p95)):
            rows.append(
                Row(
                    f"{label}: {name} (first {PAGE})",
                    budget,
                    measured,
                    baseline,
                    base_name,
                    stat=stat,
                    note=f"{matching} matching" if stat == "p50" else "",
                )
            )
    return rows


def search_rows(path: Path, plain: Path, key: bytes, info: dict[str, Any], runs: int) -> list[Row]:
    import sqlcipher3

    from gpshare.store.sqlcipher import replica as replica_mod

    replica = replica_mod.LeadReplica(path, key)
    base = sqlcipher3.connect(str(plain))
    try:
        flts = queries(info, base)
        return _query_rows(
            ("lead list on the replica", "replica", "plain SQLite FTS5"),
            (
                lambda f: replica.list_records(f, PAGE),
                lambda f: replica_mod.list_records(base, f, PAGE),
            ),
            replica.count_records,
            (flts, flts),
            runs,
        )
    finally:
        replica.close()
        base.close()


def server_replica(n: int, keep: Path | None, engine_info: dict[str, Any]) -> tuple[Path, bytes]:
    """(index file, lead data key): a workstation's lead-index.db built from a server seeded
    with n sealed records (bench/pg_lead_list.py's seed), as the services build it."""
    from types import SimpleNamespace

    from pg_common import LEAD
    from pg_lead_list import _seeded

    from gpshare.filters import RecordFilter
    from gpshare.services import search_index
    from gpshare.store.port import ReplicaItem
    from gpshare.store.postgres.engine import PostgresStore
    from tests.pg import cluster

    workstation = BENCH_DIR / f"lead-pg-{n}"
    workstation.mkdir(parents=True, exist_ok=True)
    key = os.urandom(32)
    with cluster(keep_in=keep) as cl:
        dbname, material, info = _seeded(cl, n, keep)
        store = PostgresStore.connect(
            cl.dsn(dbname, info["role"]), material.practice_keys(), folder=workstation
        )
        # What search_index.items reads of a Session: the lead's key ring, who is acting, and
        # read transactions on the workstation's connection.
        session: Any = SimpleNamespace(
            keys=material.keyring().ring(LEAD, lead=True),
            user=SimpleNamespace(username=LEAD, role="lead"),
            _read=store.read,
        )
        try:
            replica = store.replica(key)
            replica.delete()
            with store.read() as tx:
                head = tx.audit_head()
                ids = [r.id for r in tx.list_records(RecordFilter(), None, 0, light=True)]
            start = time.perf_counter()
            count = replica.rebuild(
                (i for i in search_index.items(session, ids) if isinstance(i, ReplicaItem)),
                head,
                total=len(ids),
            )
            built = time.perf_counter() - start
            replica.close()
        finally:
            store.close()
    print(f"built the workstation's index from the server ({count} records) in {built:.1f} s")
    engine_info.update(server_records=count, server_build_s=round(built, 1))
    return workstation / "lead-index.db", key


def server_rows(
    path: Path, key: bytes, embedded: Path, embedded_key: bytes, info: dict[str, Any], runs: int
) -> list[Row]:
    """The queries on the server-fed index against the embedded engine's, interleaved."""
    from gpshare.store.sqlcipher import replica as replica_mod

    server = replica_mod.LeadReplica(path, key)
    local = replica_mod.LeadReplica(embedded, embedded_key)
    try:
        return _query_rows(
            (
                "lead list, server workstation's index",
                "server-fed index",
                "embedded engine's index",
            ),
            (lambda f: server.list_records(f, PAGE), lambda f: local.list_records(f, PAGE)),
            server.count_records,
            (queries(info, server.connection), queries(info, local.connection)),
            runs,
        )
    finally:
        server.close()
        local.close()


def rebuild_rows(folder: Path, key: bytes, info: dict[str, Any]) -> list[Row]:
    """A rebuild from sealed records vs opening the same ciphertexts (informative)."""
    from dataclasses import asdict, fields

    from gpshare.services import open_session
    from gpshare.store.keys import envelopes
    from gpshare.store.keys.binding import ClinicalKey, ObjectKey
    from gpshare.store.port import AuditHead, ReplicaItem
    from gpshare.store.sqlcipher import replica as replica_mod

    session = open_session(folder, "lead", PASSWORDS["lead"])
    try:
        items = list(_items(session.store.connection))
    finally:
        session.close()
    vault_id, clinical = "bench-vault", ClinicalKey.generate_generation(1)
    text_fields = ("search_text", "narrative")
    names = [f.name for f in fields(ReplicaItem)]

    def binding(item: ReplicaItem) -> envelopes.ObjectBinding:
        return envelopes.ObjectBinding(
            vault_id,
            item.id,
            "answers",
            item.id,
            1,
            item.clinician,
            item.form_id,
            item.form_version,
        )

    # Each record: its C fields as one summary, its text as one N object under its own key.
    sealed = []
    for item in items:
        values = asdict(item)
        text = {k: values.pop(k) for k in text_fields}
        summary = envelopes.seal_summary(
            clinical, json.dumps(values).encode(), envelopes.SummaryBinding(vault_id, item.id, 1)
        )
        object_key = ObjectKey.generate()
        body = envelopes.seal_object(object_key, json.dumps(text).encode(), binding(item))
        sealed.append((item.id, binding(item), summary, object_key, body))
    del items

    def opened() -> Iterator[ReplicaItem]:
        for rid, where, summary, object_key, body in sealed:
            values = json.loads(envelopes.open_summary(clinical, summary, envelopes.SummaryBinding(vault_id, rid, 1)))  # fmt: skip
            values.update(json.loads(envelopes.open_object(object_key, body, where)))
            for name in ("snomed_codes", "categories"):
                if values[name] is not None:
                    values[name] = tuple(values[name])
            yield ReplicaItem(**{n: values[n] for n in names})

    start = time.perf_counter()
    for _item in opened():
        pass
    decrypt = (time.perf_counter() - start) * 1000
    scratch = BENCH_DIR / f"lead-{info['n']}" / "rebuild"
    scratch.mkdir(parents=True, exist_ok=True)
    target = replica_mod.LeadReplica(scratch / replica_mod.REPLICA_NAME, key)
    target.delete()
    start = time.perf_counter()
    count = target.rebuild(opened(), AuditHead(1, "bench"), total=len(sealed))
    rebuild = (time.perf_counter() - start) * 1000
    target.delete()
    print(
        f"rebuild from {count} sealed records: {rebuild / 1000:.2f} s (open only {decrypt / 1000:.2f} s)"
    )
    return [
        Row(
            f"replica rebuild from {count} sealed records (summaries + N text, informative)",
            "~6 s at 100 000 (§10.2)",
            rebuild,
            decrypt,
            "open the same ciphertexts only",
            stat="once",
        )
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--reuse",
        action="store_true",
        help="reuse the seeded vault and replica in $GPSHARE_BENCH_DIR",
    )
    parser.add_argument("--runs", type=int, default=21, help="runs per query (p50 / p95)")
    parser.add_argument("--n", type=int, default=100_000, help="records in the seeded vault")
    parser.add_argument("--rebuild", action="store_true", help="also time a rebuild (informative)")
    parser.add_argument("--json", help="append the result rows to this JSON file")
    parser.add_argument(
        "--engine",
        choices=("sqlcipher", "postgres"),
        default="sqlcipher",
        help="postgres: the index of a practice server's workstation, fed from a seeded server",
    )
    parser.add_argument(
        "--pg-reuse", metavar="DIR", type=Path, help="keep the seeded PostgreSQL cluster here"
    )
    add_quick(parser)
    args = parser.parse_args()
    if args.quick:
        args.n, args.runs, args.rebuild = QUICK_N, 2, args.engine == "sqlcipher"
    from seed import ensure_seeded

    print(machine())
    folder, info, _plain = ensure_seeded(args.n, args.reuse)
    path, plain, key = ensure_replica(folder, info, args.reuse)
    if args.engine == "postgres":
        extra: dict[str, Any] = {}
        server_path, server_key = server_replica(int(info["n"]), args.pg_reuse, extra)
        rows = server_rows(server_path, server_key, path, key, info, args.runs)
        print_table(f"lead search on a server workstation's index, {info['n']} records", rows)
        save_rows(args.json, "lead_search_postgres", rows, extra)
        return
    rows = search_rows(path, plain, key, info, args.runs)
    if args.rebuild:
        rows += rebuild_rows(folder, key, info)
    print_table(f"lead search on the replica, {info['n']} records", rows)
    save_rows(args.json, "lead_search", rows)


if __name__ == "__main__":
    main()
