"""Shared by the practice-server benchmarks (pg_concurrency.py, pg_lead_list.py): a practice's
keys as plain bytes (so workstation processes can rebuild them), the server's schema and
users on a throwaway cluster (tests/pg.py), and realistic fictional records sealed by the
record codec (gpshare/services/_sealing.py) with a real key ring (tests/test_sealing.Ring, as
tests/test_pg_store.py uses it).

Fictional data and throwaway keys only: the key bytes travel to child processes through
multiprocessing's pipe, which a real workstation would never do.
"""

from __future__ import annotations

import contextlib
import os
import random
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

from gpshare.forms import load_form_by_id
from gpshare.records import ChildSummary, Record, User
from gpshare.services import DEFAULT_FORM_ID
from gpshare.store import keys
from gpshare.store.keys.binding import PracticeKey
from gpshare.store.port import AuditEntry
from gpshare.store.postgres.engine import PostgresStore
from gpshare.store.practice_keys import PracticeKeys

LEAD = "lead"
CREATED = "2026-11-25T10:00:00+00:00"


@dataclass
class PracticeMaterial:
    """A practice's keys as raw bytes: the practice root, each user's X25519 key, the lead key
    and clinical key generation 1. Picklable, unlike the key objects themselves."""

    vault_id: str
    practice: bytes
    users: dict[str, bytes]
    lead_key: bytes
    clinical: bytes

    @classmethod
    def generate(cls, usernames: list[str]) -> PracticeMaterial:
        """Fresh random keys for these users (the lead included)."""

        def raw() -> bytes:
            return X25519PrivateKey.generate().private_bytes_raw()

        return cls(
            "vault-pg-bench",
            PracticeKey.generate().reveal(),
            {u: raw() for u in usernames},
            raw(),
            keys.ClinicalKey.generate_generation(1).reveal(),
        )

    def to_json(self) -> dict[str, Any]:
        """The keys as hex (bench/pg_lead_list.py keeps a seed's throwaway keys for --reuse)."""
        return {
            "vault_id": self.vault_id, "practice": self.practice.hex(),
            "users": {u: b.hex() for u, b in self.users.items()},
            "lead_key": self.lead_key.hex(), "clinical": self.clinical.hex(),
        }  # fmt: skip

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> PracticeMaterial:
        """The keys to_json wrote."""
        return cls(
            data["vault_id"], bytes.fromhex(data["practice"]),
            {u: bytes.fromhex(b) for u, b in data["users"].items()},
            bytes.fromhex(data["lead_key"]), bytes.fromhex(data["clinical"]),
        )  # fmt: skip

    def practice_keys(self) -> PracticeKeys:
        """What a v2 unlock hands the engine: the practice key and vault id."""
        return PracticeKeys(PracticeKey(self.practice), self.vault_id)

    def keyring(self) -> _Practice:
        """The key objects tests/test_sealing.Ring reads."""
        return _Practice(
            self.vault_id,
            {u: X25519PrivateKey.from_private_bytes(b) for u, b in self.users.items()},
            X25519PrivateKey.from_private_bytes(self.lead_key),
            {1: keys.ClinicalKey(self.clinical, 1)},
        )


@dataclass
class _Practice:
    vault_id: str
    users: dict[str, X25519PrivateKey]
    lead_key: X25519PrivateKey
    clinical: dict[int, keys.ClinicalKey] = field(default_factory=dict)

    def ring(self, user: str, lead: bool = False) -> Any:
        """A real RecordKeys for `user` (and the lead key when `lead`)."""
        from tests.test_sealing import Ring

        return Ring(self, user, [1], lead=lead)  # type: ignore[arg-type]


def add_users(store: PostgresStore, clinicians: list[str]) -> None:
    """The lead and these clinicians, as users of the server (one audited write)."""
    with store.write(AuditEntry("admin", "users_added")) as tx:
        tx.insert_user(User(LEAD, "Dr Priya Natarajan", "lead", "7654321", True, False, CREATED))
        for i, name in enumerate(clinicians):
            full = f"Dr {name.title()}"
            tx.insert_user(User(name, full, "clinician", f"{1000000 + i}", True, False, CREATED))


class RecordMaker:
    """Realistic fictional records from bench/seed.py's navigator-validated templates."""

    def __init__(self, seed: int) -> None:
        from seed import _templates

        self.rng = random.Random(seed)
        self.templates = _templates()
        self.weights = [t[3] for t in self.templates]
        self.form = load_form_by_id(DEFAULT_FORM_ID)

    def draft(self, rid: str, author: str, created: datetime) -> tuple[Record, dict[str, Any]]:
        """A draft with a whole form's answers, and the outcome its completion carries."""
        from seed import _answers

        _name, cleaned, outcome, _w = self.rng.choices(self.templates, self.weights)[0]
        answers = _answers(cleaned, self.rng, created)
        when = created.isoformat(timespec="seconds")
        child = ChildSummary(
            answers.get("child_given_name", ""),
            answers.get("child_family_name", ""),
            answers.get("nhs_number"),
            answers.get("date_of_birth"),
        )
        record = Record(
            rid, author, "draft", self.form.id, self.form.version, answers,
            self.form.steps[0].id, None, when, when, None, child,
        )  # fmt: skip
        return record, outcome


def completed(record: Record, outcome: dict[str, Any], minutes: int) -> Record:
    """`record` completed `minutes` after it was created."""
    when = datetime.fromisoformat(record.created) + timedelta(minutes=minutes)
    at = when.isoformat(timespec="seconds")
    return replace(
        record, status="completed", outcome=dict(outcome), current_step=None, updated=at,
        completed=at,
    )  # fmt: skip


class ExternalServer:
    """A PostgreSQL server of the user's own (`--dsn`, e.g. an idle machine with 4 or more
    cores), in place of the throwaway cluster: the same `dsn`, `new_database` and
    `drop_database` as tests/pg.Cluster, so the benchmarks' seeding runs unchanged.

    The DSN's role must be a superuser of a server kept for benchmarking: the bench creates
    its own databases and workstation roles there and drops them when it ends. The workstation
    processes connect with that login and act as the least-privilege role (`options=-c
    role=…`: a role the bench creates has no password to log in with). The password, if any,
    comes from libpq (~/.pgpass, PGPASSWORD), never from the DSN."""

    def __init__(self, dsn: str) -> None:
        from psycopg.conninfo import conninfo_to_dict

        if "password" in conninfo_to_dict(dsn):
            raise SystemExit("--dsn must not hold a password: libpq reads ~/.pgpass or PGPASSWORD")
        self.base = dsn
        self.made: list[str] = []

    def dsn(self, dbname: str = "postgres", user: str | None = None) -> str:
        """The server's DSN for `dbname`, acting as `user` when given."""
        from psycopg.conninfo import make_conninfo

        extra = {"options": f"-c role={user}"} if user else {}
        return make_conninfo(self.base, dbname=dbname, **extra)

    def new_database(self) -> str:
        """An empty database for this run (dropped by drop_all)."""
        import psycopg

        name = f"gpshare_bench_{os.getpid()}_{len(self.made)}"
        with psycopg.connect(self.dsn(), autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}" TEMPLATE template0')
        self.made.append(name)
        return name

    def drop_database(self, name: str) -> None:
        import psycopg

        with psycopg.connect(self.dsn(), autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    def drop_role(self, role: str) -> None:
        import psycopg

        with psycopg.connect(self.dsn(), autocommit=True) as conn:
            conn.execute(f'DROP ROLE IF EXISTS "{role}"')


@contextlib.contextmanager
def bench_server(dsn: str | None, keep: Path | None = None) -> Iterator[Any]:
    """The throwaway cluster (tests/pg.py; kept in `keep` for --reuse), or with `dsn` the
    user's own server (ExternalServer), whose databases this run made are dropped at the end."""
    from tests.pg import cluster

    if dsn is None:
        with cluster(keep_in=keep) as cl:
            yield cl
        return
    external = ExternalServer(dsn)
    try:
        yield external
    finally:
        for name in external.made:
            external.drop_database(name)
            external.drop_role(f"ws_{name}")
