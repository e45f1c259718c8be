"""Benchmark: verify the audit hash chain of 100 000 events (1 000 000 with --million).

Budget (DESIGN.md §8): audit verify of 1 000 000 events < 10 s. Baseline, in the same run:
a raw HMAC-SHA256 loop (`hmac.digest`) over exactly the bytes the chain covers (each
event's canonical JSON + the previous hash), read from the vault beforehand. A breakdown
times the parts of `audit.verify` separately (reading rows through SQLCipher, canonical
JSON, HMAC via `hmac.new(...).hexdigest()`), and a variant of verify whose canonical JSON
uses one cached `json.JSONEncoder` (byte-identical output) shows what that change saves.

The chain is written once into $GPSHARE_BENCH_DIR/audit-<N> through `audit.append` in big
transactions (in a child process) and reused with `--reuse`. Asserts nothing.

    .venv/bin/python bench/audit_verify.py [--reuse] [--million] [--runs 3] [--quick] [--json PATH]
"""

from __future__ import annotations

import argparse
import hashlib
import hmac
import json
import random
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import (  # noqa: E402
    BENCH_DIR,
    PASSWORDS,
    Row,
    Timing,
    add_quick,
    create_bench_vault,
    machine,
    print_table,
    save_rows,
    time_ms,
)

ACTIONS = [
    ("record_viewed", 30),
    ("draft_saved", 20),
    ("record_created", 10),
    ("record_completed", 10),
    ("followup_recorded", 12),
    ("letter_generated", 4),
    ("letter_printed", 4),
    ("unlock", 8),
    ("records_exported", 1),
    ("audit_verified", 1),
]
ACTORS = ["lead", "drsmith", "drjones", "admin"]
BATCH = 50_000


def chain_dir(n: int) -> Path:
    return BENCH_DIR / f"audit-{n}"


def build_chain(folder: Path, n: int) -> None:
    """A cheap-KDF vault whose audit log holds ~n events (plus the few of its creation)."""
    import shutil

    from gpshare.services import open_session
    from gpshare.store import audit
    from gpshare.store.sqlcipher import db

    if folder.exists():
        shutil.rmtree(folder)
    folder.parent.mkdir(parents=True, exist_ok=True)
    create_bench_vault(folder)
    rng = random.Random(7)
    names, weights = [a for a, _ in ACTIONS], [w for _, w in ACTIONS]
    session = open_session(folder, "admin", PASSWORDS["admin"])
    try:
        conn = session.store.connection
        key = audit.audit_key(session.db_key)
        start = datetime.now(UTC) - timedelta(days=5 * 365)
        step = timedelta(days=5 * 365) / max(n, 1)
        existing = audit.latest(conn)[0]
        for first in range(existing, n, BATCH):
            with db.transaction(conn):
                for i in range(first, min(first + BATCH, n)):
                    action = rng.choices(names, weights)[0]
                    rid = f"SG-{rng.randrange(32**4):05X}-{rng.randrange(32**4):05X}"
                    details: dict[str, object] = {}
                    if action == "draft_saved":
                        details = {"autosave": rng.random() < 0.7, "step": "concern"}
                    elif action == "record_completed":
                        details = {
                            "pathway": "referral",
                            "consent_basis": "consent_given",
                            "form_version": 1,
                        }
                    elif action == "followup_recorded":
                        details = {"event": "sent", "decision": None}
                    elif action == "letter_generated":
                        details = {"sha256": hashlib.sha256(rid.encode()).hexdigest()}
                    audit.append(
                        conn,
                        key,
                        at=start + step * i,
                        actor=rng.choice(ACTORS),
                        action=action,
                        record_id=None
                        if action in ("unlock", "records_exported", "audit_verified")
                        else rid,
                        details=details,
                    )
            print(f"  {min(first + BATCH, n):>8} / {n} events", end="\r", flush=True)
        print()
        seq, digest = audit.latest(conn)
        session.vault.set_audit_head(session.db_key, seq, digest)
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    finally:
        session.close()
    (folder.with_name(folder.name + ".json")).write_text(json.dumps({"n": n}), encoding="utf-8")


def ensure_chain(n: int, reuse: bool) -> Path:
    folder = chain_dir(n)
    info = folder.with_name(folder.name + ".json")
    if reuse and info.exists() and json.loads(info.read_text()).get("n") == n:
        print(f"reusing audit chain {folder}")
        return folder
    print(f"writing an audit chain of {n} events into {folder} …", flush=True)
    t = time.perf_counter()
    subprocess.run([sys.executable, __file__, "--build", str(n)], check=True)
    print(f"  written in {time.perf_counter() - t:.1f} s")
    return folder


_CANONICAL = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"))


def canonical_cached(seq, at, actor, action, record_id, details) -> bytes:  # type: ignore[no-untyped-def]
    """audit.canonical with one module-level encoder: the same bytes, no JSONEncoder per call."""
    return _CANONICAL.encode([seq, at, actor, action, record_id, details]).encode("utf-8")


def verify_cached_encoder(conn, key: bytes, head: tuple[int, str]) -> tuple[bool, int]:  # type: ignore[no-untyped-def]
    """audit.verify's checks with canonical_cached (the proposal in docs/performance.md)."""
    from gpshare.store.audit import GENESIS, event_hash

    expected, prev, count, at_head = 1, GENESIS, 0, None
    for seq, at, actor, action, record_id, details, prev_hash, digest in conn.execute(
        "SELECT seq, at, actor, action, record_id, details, prev_hash, hash FROM audit ORDER BY seq"
    ):
        if seq != expected or prev_hash != prev:
            return False, count
        if (
            event_hash(key, canonical_cached(seq, at, actor, action, record_id, details), prev)
            != digest
        ):
            return False, count
        prev = digest
        count += 1
        if seq == head[0]:
            at_head = digest
        expected += 1
    return at_head == head[1], count


def run(n: int, runs: int, reuse: bool, breakdown_runs: int | None = None) -> list[Row]:
    from gpshare.services import open_session
    from gpshare.store import audit

    folder = ensure_chain(n, reuse)
    session = open_session(folder, "admin", PASSWORDS["admin"])
    try:
        conn = session.store.connection
        key = audit.audit_key(session.db_key)
        head = session.vault.audit_head()

        verify = Timing(f"Session.verify_audit, {n} events")
        fast = Timing("verify with the cached encoder (proposed)")
        report, ok = None, False
        for _ in range(runs):  # interleaved, before the breakdown fills the heap
            t = time.perf_counter()
            report = session.audit_trail.verify_audit()
            verify.samples.append((time.perf_counter() - t) * 1000)
            head = session.vault.audit_head()
            t = time.perf_counter()
            ok, _count = verify_cached_encoder(conn, key, head)
            fast.samples.append((time.perf_counter() - t) * 1000)
        assert report is not None
        print(f"{verify.describe()}  → {report.summary()}")
        print(f"{fast.describe()}  → agrees with the chain: {ok}")

        parts = breakdown_runs or runs
        # The same bytes, read once (untimed), for the raw-HMAC baseline and the breakdown.
        rows: list[tuple] = []
        read = Timing("read all rows (SELECT … ORDER BY seq)")
        for _ in range(parts):
            t = time.perf_counter()
            rows = conn.execute(
                "SELECT seq, at, actor, action, record_id, details, prev_hash, hash FROM audit ORDER BY seq"
            ).fetchall()
            read.samples.append((time.perf_counter() - t) * 1000)
        canon = Timing("canonical JSON of every event")
        messages: list[bytes] = []
        for _ in range(parts):
            t = time.perf_counter()
            messages = [
                audit.canonical(s, a, ac, act, r, d) + p.encode("ascii")
                for s, a, ac, act, r, d, p, _h in rows
            ]
            canon.samples.append((time.perf_counter() - t) * 1000)
        raw = Timing("raw HMAC loop (hmac.digest)")
        new_hex = Timing("HMAC loop as verify does it (hmac.new().hexdigest())")
        for _ in range(parts):
            raw.samples.append(time_ms(lambda: [hmac.digest(key, m, "sha256") for m in messages]))
            new_hex.samples.append(
                time_ms(lambda: [hmac.new(key, m, hashlib.sha256).hexdigest() for m in messages])
            )
        cached = Timing("canonical JSON, one cached encoder (proposed)")
        for _ in range(parts):
            cached.samples.append(
                time_ms(
                    lambda: [
                        canonical_cached(s, a, ac, act, r, d)
                        for s, a, ac, act, r, d, _p, _h in rows
                    ]
                )
            )
        for t in (read, canon, cached, new_hex, raw):
            print(t.describe())
    finally:
        session.close()
    label = f"audit verify, {n:,} events".replace(",", " ")
    budget = "< 10 s" if n >= 1_000_000 else f"< {10 * n / 1_000_000:.3g} s (pro rata)"
    return [
        Row(
            label,
            budget,
            verify.median,
            raw.median,
            "raw HMAC loop",
            note=f"{report.events} events; per event {verify.median * 1000 / max(report.events, 1):.1f} µs",
        ),
        Row(
            "  of which: read rows through SQLCipher", "", read.median, raw.median, "raw HMAC loop"
        ),
        Row("  of which: canonical JSON", "", canon.median, raw.median, "raw HMAC loop"),
        Row("  of which: hmac.new().hexdigest()", "", new_hex.median, raw.median, "raw HMAC loop"),
        Row(
            "  canonical JSON, cached encoder (proposal)",
            "",
            cached.median,
            raw.median,
            "raw HMAC loop",
        ),
        Row(
            "  verify with the cached encoder (proposal)",
            budget,
            fast.median,
            raw.median,
            "raw HMAC loop",
        ),
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--reuse", action="store_true", help="reuse chains already in $GPSHARE_BENCH_DIR"
    )
    parser.add_argument("--million", action="store_true", help="also verify 1 000 000 events")
    parser.add_argument("--n", type=int, default=100_000, help="events in the default chain")
    parser.add_argument("--runs", type=int, default=3, help="verifications per size (median)")
    parser.add_argument("--json", help="append the result rows to this JSON file")
    parser.add_argument("--build", type=int, help=argparse.SUPPRESS)  # child process: write a chain
    add_quick(parser)
    args = parser.parse_args()
    if args.quick:
        args.n, args.runs, args.million = 2_000, 1, False
    if args.build:
        from seed import fast_process

        fast_process()  # data generation only; measuring processes keep the app's settings
        build_chain(chain_dir(args.build), args.build)
        return
    print(machine())
    rows = run(args.n, args.runs, args.reuse)
    if args.million:
        rows += run(1_000_000, max(1, args.runs - 1), args.reuse, breakdown_runs=1)
    print_table("audit chain verification", rows)
    save_rows(args.json, "audit_verify", rows)


if __name__ == "__main__":
    main()
