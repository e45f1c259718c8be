"""Contract tests of the storage port (gpshare.store.port), run against every engine.

"sqlcipher" runs every test; "postgres" (the practice server engine, issue #14) runs them
unchanged too, except the few of v1 plaintext or SQLCipher-only members (PG_SKIPS, each with
its reason). The
tests use the port's API only: no SQL, no driver types.
"""

from __future__ import annotations

import contextlib
import dataclasses
import inspect
import re
from collections.abc import Callable, Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any, cast

import pytest

from gpshare.clock import FixedClock
from gpshare.errors import DatabaseError, ReplicaUnavailable, StoreError
from gpshare.filters import AuditFilter, RecordFilter
from gpshare.records import ChildSummary, FollowUp, Record, Review, User
from gpshare.store import keys, open_store, sealed_rows
from gpshare.store.audit import GENESIS
from gpshare.store.crypto import CHEAP_TEST_KDF
from gpshare.store.keys.bundle import raw_public
from gpshare.store.port import (
    AuditEntry,
    AuditHead,
    IndexToken,
    ObjectWrap,
    ReadTx,
    RecordRow,
    RecordWrite,
    ReplicaItem,
    SealedObject,
    Store,
    StoredBundle,
    StoredState,
    StoredSummary,
    WrappedKey,
    WriteTx,
)
from gpshare.store.vault import Vault
from tests.key_rows import BREAKGLASS, LEAD_KEY, SMITH_PASSWORD, KeyRows, fill_key_tables

# "sqlcipher-v2": the embedded engine holding a format-2 vault's practice keys, so every M row
# it writes carries a row MAC that its reads check (gpshare/store/sqlcipher/row_macs.py).
ENGINES = ["sqlcipher", "sqlcipher-v2", "postgres"]
# Tests the PostgreSQL engine (vault version 2 shapes only) skips, and why.
PG_SKIPS = {
    "test_reads_return_domain_types_only": "it reads the v1 plaintext members",
    "test_fill_writes_through_every_write_member": "it writes the v1 plaintext members",
    "test_every_write_member_leaves_rows_that_pass_the_full_integrity_check": (
        "it writes v1 plaintext members; the server checks each row's MAC on every read "
        "(tests/test_pg_store.py)"
    ),
}
# The v1 members that would store or return plaintext: the server refuses them (StoreError).
PG_REFUSED = {
    "records_for_child", "open_referrals", "records_without_links", "linked_records",
    "insert_record", "update_draft", "move_draft_to_form", "complete_record",
    "put_search_text", "put_links", "add_household_link_review", "add_addendum", "add_letter",
    "add_followup", "add_review",
}  # fmt: skip
WHEN = datetime(2026, 11, 25, 10, 0, tzinfo=UTC)
NHS = "9434765919"


@dataclasses.dataclass
class Opened:
    store: Store
    vault: Vault
    key: bytes
    clock: FixedClock


@pytest.fixture(params=ENGINES)
def engine(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Opened]:
    """A new, migrated, empty store of the engine under test."""
    clock = FixedClock(WHEN)
    if request.param == "postgres":
        yield from _postgres(request, tmp_path, clock)
        return
    if request.param == "sqlcipher-v2":
        made = Vault.create_v2(
            tmp_path / "vault", practice_name="Port Test Practice", admin_username="admin",
            admin_password="admin-password-1", clock=clock, kdf=CHEAP_TEST_KDF,
        )  # fmt: skip
        vault, key = made.vault, made.keys
    else:
        vault, key, _secret, _recovery = Vault.create(
            tmp_path / "vault",
            practice_name="Port Test Practice",
            admin_username="admin",
            admin_password="admin-password-1",
            clock=clock,
            kdf=CHEAP_TEST_KDF,
        )
    store = open_store(vault, key, clock, create=True)
    store.apply_migrations()
    try:
        yield Opened(store, vault, key, clock)
    finally:
        store.close()
        vault.lock.release()


def _postgres(
    request: pytest.FixtureRequest, tmp_path: Path, clock: FixedClock
) -> Iterator[Opened]:
    """The practice server engine on a fresh database of the session's cluster (tests/pg.py);
    the vault supplies the practice keys, as a format-2 vault's unlock would."""
    from gpshare.store.keys.binding import PracticeKey
    from gpshare.store.postgres.engine import PostgresStore
    from gpshare.store.practice_keys import PracticeKeys
    from tests.pg import add_store_schema, drop_store_database

    why = PG_SKIPS.get(request.node.originalname)
    if why:
        pytest.skip(f"PostgreSQL engine: {why}")
    cluster = request.getfixturevalue("pg_cluster")
    dbname = cluster.new_database()
    role = add_store_schema(cluster, dbname)
    vault, _key, _secret, _recovery = Vault.create(
        tmp_path / "vault", practice_name="Port Test Practice", admin_username="admin",
        admin_password="admin-password-1", clock=clock, kdf=CHEAP_TEST_KDF,
    )  # fmt: skip
    keys_ = PracticeKeys(PracticeKey.generate(), vault.vault_id)
    store = PostgresStore.connect(cluster.dsn(dbname, role), keys_, clock, folder=vault.folder)
    try:
        yield Opened(store, vault, bytes(keys_), clock)  # type: ignore[arg-type]
    finally:
        store.close()
        vault.lock.release()
        drop_store_database(cluster, dbname, role)


def _user(username: str, role: str = "clinician") -> User:
    return User(username, f"Dr {username.title()}", role, "7654321", True, False, WHEN.isoformat())


def _entry(action: str, **details: Any) -> AuditEntry:
    return AuditEntry(actor="admin", action=action, details=details)


def _events(store: Store) -> list[str]:
    with store.read() as tx:
        return [e.action for e in tx.audit_events(AuditFilter())]


# ----- the write transaction and its audit event ------------------------------------------


def test_a_write_commits_its_work_and_its_audit_event_together(engine: Opened) -> None:
    store = engine.store
    with store.write(_entry("user_added", username="drsmith")) as tx:
        tx.insert_user(_user("drsmith"))
    with store.read() as rtx:
        assert rtx.get_user("drsmith") == _user("drsmith")
        newest = rtx.audit_events(AuditFilter(), limit=1)[0]
        head = rtx.audit_head()
        report = rtx.verify_audit((head.seq, head.digest))
    assert (newest.actor, newest.action, newest.details) == (
        "admin",
        "user_added",
        {"username": "drsmith"},
    )
    assert newest.at.startswith(WHEN.isoformat()[:19])  # stamped by the store's clock
    assert store.last_head == head == AuditHead(newest.seq, head.digest)
    assert report.ok, report.summary()
    # Committed for everyone, not only for this connection.
    other = store.worker()
    try:
        with other.read() as otx:
            assert otx.get_user("drsmith") is not None
            assert otx.audit_head() == head
    finally:
        other.close()


def _one_user(opened: Opened) -> tuple[Store, AuditHead]:
    """The store with drsmith added (one audited write), and its head after that write."""
    with opened.store.write(_entry("user_added", username="drsmith")) as tx:
        tx.insert_user(_user("drsmith"))
    return opened.store, opened.store.last_head


def _assert_unchanged(store: Store, before: AuditHead) -> None:
    """No setting written, no event appended since `before`."""
    with store.read() as rtx:
        assert "practice_name" not in rtx.get_settings()
        assert rtx.audit_head() == before
    assert store.last_head == before
    assert _events(store) == ["user_added"]


def test_an_exception_in_the_work_rolls_back_the_rows_and_the_audit_event(
    engine: Opened,
) -> None:
    store, before = _one_user(engine)
    entry = _entry("user_added", username="drjones")
    with pytest.raises(RuntimeError, match="stop"), store.write(entry) as tx:
        tx.insert_user(_user("drjones"))
        tx.put_settings({"practice_name": "Changed"})
        raise RuntimeError("stop")
    with store.read() as rtx:
        assert rtx.get_user("drjones") is None
    _assert_unchanged(store, before)


def test_an_engine_failure_in_the_work_is_a_port_error_and_rolls_back_both(
    engine: Opened,
) -> None:
    store, before = _one_user(engine)
    entry = _entry("user_added", username="drsmith")
    with pytest.raises(DatabaseError) as caught, store.write(entry) as tx:
        tx.put_settings({"practice_name": "Changed"})
        tx.insert_user(_user("drsmith"))  # the same username twice
    # The services catch the port's error, never the driver's.
    assert type(caught.value) is DatabaseError and isinstance(caught.value, StoreError)
    assert "vault's database" in str(caught.value)
    _assert_unchanged(store, before)


def test_the_head_advances_by_exactly_one_per_write(engine: Opened) -> None:
    store = engine.store
    start = store.last_head
    assert start == AuditHead(0, GENESIS)
    digests = set()
    for n in range(1, 4):
        engine.clock.advance(60)
        with store.write(AuditEntry("admin", "settings_changed", details={"n": n})) as tx:
            tx.put_settings({"n": str(n)})
        assert store.last_head.seq == start.seq + n
        digests.add(store.last_head.digest)
        with store.read() as rtx:
            assert rtx.audit_head() == store.last_head
    assert len(digests) == 3
    # A write with no rows still appends its one event (views, prints, exports).
    with store.write(AuditEntry("admin", "record_viewed", record_id=None)):
        pass
    assert store.last_head.seq == start.seq + 4


def test_maintenance_writes_append_no_audit_event(engine: Opened) -> None:
    store = engine.store
    with store.maintenance() as tx:
        tx.put_settings({"referral_states_backfilled": "1"})
    with store.read() as rtx:
        assert rtx.get_settings()["referral_states_backfilled"] == "1"
        assert rtx.audit_head() == AuditHead(0, GENESIS)


# ----- reads -----------------------------------------------------------------------------


def test_reads_inside_one_read_block_see_one_snapshot(engine: Opened) -> None:
    store = engine.store
    with store.write(_entry("user_added")) as tx:
        tx.insert_user(_user("drsmith"))
    writer = store.worker()
    try:
        with store.read() as rtx:
            first = rtx.list_users()
            with writer.write(_entry("user_added")) as wtx:  # commits meanwhile, elsewhere
                wtx.insert_user(_user("drjones"))
            assert rtx.list_users() == first
            assert rtx.get_user("drjones") is None
            assert rtx.audit_head().seq == 1
        with store.read() as rtx:
            assert {u.username for u in rtx.list_users()} == {"drsmith", "drjones"}
            assert rtx.audit_head() == writer.last_head
    finally:
        writer.close()


def _fill(opened: Opened) -> dict[str, Any]:
    """One of everything the port stores; returns the ids the reads need."""
    store = opened.store
    created = WHEN.isoformat(timespec="seconds")
    answers = {
        "child_given_name": "Amy",
        "child_family_name": "Example",
        "date_of_birth": "2015-01-02",
        "decision": "refer",
        "review_date": "2026-12-20",
    }
    draft = Record(
        "rec-1", "drsmith", "draft", "gmc-confidentiality", 2, answers, "child", None,
        created, created, None, ChildSummary("Amy", "Example", NHS, "2015-01-02"),
    )  # fmt: skip
    outcome = {"pathway": "refer_csc", "consent_basis": "consent_given", "letter_required": True}
    with store.write(_entry("fill")) as tx:
        tx.insert_user(_user("drsmith"))
        tx.insert_user(_user("lead", "lead"))
        tx.put_settings({"practice_name": "Port Test Practice"})
        tx.put_practice_ca(b"-----CA-----", b"n" * 12, b"w" * 40, created)
        tx.add_signing_key("drsmith", WrappedKey(b"-----CERT-----", b"m" * 12, b"v" * 40), "issued", created)  # fmt: skip
        tx.insert_record(draft, NHS)
        tx.update_draft("rec-1", answers, "decision", created, NHS)
        tx.complete_record("rec-1", answers, outcome, created, NHS)
        tx.put_search_text("rec-1", "Amy Example")
        tx.put_links("rec-1", ["carer-key"], "address-key")
        tx.add_household_link_review("rec-1", "rec-1", "not_related", "lead", created, None)
        tx.add_addendum("rec-1", "drsmith", created, "Seen again.")
        letter_id = tx.add_letter("rec-1", created, "drsmith", "ab" * 32, b"%PDF-signed", b"%PDF-unsigned")  # fmt: skip
        tx.add_followup(FollowUp(0, "rec-1", "sent", created, "drsmith", created, None, None, {"via": "email"}))  # fmt: skip
        tx.add_review(Review(0, "rec-1", "lead", created, "reasonable", None, None))
        record = tx.get_record("rec-1")
        assert record is not None
        tx.put_referral_states([StoredState(record, "sent", "chase", "2026-11-20", created, None)])
    with store.write(AuditEntry("drsmith", "draft_saved", record_id="rec-1")):
        pass  # what last_draft_saved_at finds
    fill_key_tables(store, opened.vault.vault_id, WHEN)
    _fill_sealed(store, created)
    return {"letter_id": letter_id}


def _sealed_object(kind: str, object_id: str, n: int, created: str) -> SealedObject:
    """Stand-in ciphertexts (the port stores bytes; the codec's are tested in test_sealing)."""
    wrap = ObjectWrap(kind, object_id, "drsmith", 1, bytes([n]) * 40, created)
    return SealedObject(kind, object_id, bytes([n]) * 30, bytes([n]) * 32, (wrap,))


def _sealed_write(version: int, created: str, status: str = "draft") -> RecordWrite:
    row = RecordRow(
        "rec-2", "drsmith", status, "gmc-confidentiality", 2, None, created, created,
        created if status == "completed" else None, version,
    )  # fmt: skip
    # One object key for the record's life: its commitment is the same at every version.
    answers = dataclasses.replace(
        _sealed_object("answers", "rec-2", version, created), commitment=b"k" * 32
    )
    summary = StoredSummary("rec-2", version, 1, bytes([version]) * 40)
    tokens = (IndexToken("nhs", 1, b"t" * 16), IndexToken("family|given", 1, b"c" * 16))
    return RecordWrite(
        row, version - 1, summary, answers if version == 1 else dataclasses.replace(answers, wraps=()), tokens
    )  # fmt: skip


def _add_addendum_and_letter(tx: WriteTx, created: str) -> None:
    """rec-2's sealed addendum (a-1) and letter (l-1, with its unsigned copy l-2)."""
    tx.add_sealed_addendum("rec-2", "drsmith", created, _sealed_object("addendum", "a-1", 4, created))  # fmt: skip
    tx.add_sealed_letter(
        "rec-2", created, "drsmith", "ef" * 32, _sealed_object("letter", "l-1", 5, created),
        _sealed_object("letter-unsigned", "l-2", 6, created),
    )  # fmt: skip


def _fill_sealed(store: Store, created: str) -> None:
    """A sealed record (rec-2) with one of each sealed object, through every sealed writer."""
    with store.write(_entry("sealed")) as tx:
        tx.insert_sealed_record(_sealed_write(1, created))
        tx.update_sealed_draft(_sealed_write(2, created))
        tx.complete_sealed_record(_sealed_write(3, created, "completed"))
        tx.put_blind_tokens("rec-2", 2, [IndexToken("nhs", 2, b"u" * 16)])
        _add_addendum_and_letter(tx, created)
        tx.add_sealed_followup(
            FollowUp(0, "rec-2", "sent", created, "drsmith", created, None, None, {}),
            _sealed_object("followup-note", "f-1", 7, created),
        )
        tx.add_sealed_review("rec-2", "lead", created, _sealed_object("review", "v-1", 8, created))
        tx.add_sealed_household_review("rec-2", "rec-1", "lead", created, 1, b"h" * 40)


def _read_calls(ids: dict[str, Any]) -> dict[str, Callable[[ReadTx], Any]]:
    """One call of every ReadTx member, with arguments that find what _fill stored."""
    day = WHEN.date().isoformat()
    return {
        "get_user": lambda tx: tx.get_user("drsmith"),
        "list_users": lambda tx: tx.list_users(),
        "get_settings": lambda tx: tx.get_settings(),
        "get_practice_ca": lambda tx: tx.get_practice_ca(),
        "active_signing_key": lambda tx: tx.active_signing_key("drsmith"),
        "get_record": lambda tx: tx.get_record("rec-1"),
        "list_records": lambda tx: (
            tx.list_records(RecordFilter(), limit=10, light=True)
            + tx.list_records(RecordFilter(search="amy"))
        ),
        "count_records": lambda tx: tx.count_records(RecordFilter(status="completed")),
        "records_for_child": lambda tx: tx.records_for_child(NHS, "example", "2015-01-02", None),
        "completed_records_light": lambda tx: tx.completed_records_light(),
        "open_referrals": lambda tx: tx.open_referrals("2027-01-01"),
        "records_without_links": lambda tx: tx.records_without_links(),
        "linked_records": lambda tx: tx.linked_records(["carer-key"], []),
        "household_link_decisions": lambda tx: tx.household_link_decisions(["rec-1"]),
        "due_referrals": lambda tx: tx.due_referrals("2026-12-31"),
        "referrals_with_action": lambda tx: tx.referrals_with_action("chase", "2026-01-01"),
        "overdue_counts": lambda tx: tx.overdue_counts("2026-12-31", None, None),
        "send_timings": lambda tx: tx.send_timings(day, day),
        "dashboard_rows": lambda tx: tx.dashboard_rows(None, None),
        "addenda": lambda tx: tx.addenda("rec-1"),
        "letters": lambda tx: tx.letters("rec-1"),
        "letter_pdf": lambda tx: tx.letter_pdf(ids["letter_id"]),
        "letter_unsigned_pdf": lambda tx: tx.letter_unsigned_pdf(ids["letter_id"]),
        "letter_by_hash": lambda tx: tx.letter_by_hash("ab" * 32),
        "followups": lambda tx: tx.followups(["rec-1"]),
        "reviews": lambda tx: tx.reviews("rec-1"),
        "bundle": lambda tx: tx.bundle("drsmith"),
        "directory_entries": lambda tx: tx.directory_entries(),
        "pending_entries": lambda tx: tx.pending_entries(),
        "lead_rotations": lambda tx: tx.lead_rotations(),
        "role_key_wraps": lambda tx: tx.role_key_wraps("drsmith"),
        "object_wraps_for": lambda tx: tx.object_wraps_for("drsmith", [("answers", "rec-1")]),
        "remembered_logins": lambda tx: tx.remembered_logins("drsmith"),
        "breakglass_state": lambda tx: tx.breakglass_state(),
        "sealed_record": lambda tx: tx.sealed_record("rec-2", ["drsmith"]),
        "sealed_records": lambda tx: tx.sealed_records(["rec-2", "rec-none"], ["drsmith"]),
        "summaries": lambda tx: tx.summaries(["rec-2", "rec-1"]),
        "records_for_tokens": lambda tx: tx.records_for_tokens(
            [IndexToken("nhs", 1, b"t" * 16)], None
        ),
        "records_without_tokens": lambda tx: tx.records_without_tokens(3),
        "sealed_addenda": lambda tx: tx.sealed_addenda("rec-2", ["drsmith"]),
        "sealed_addenda_of": lambda tx: tx.sealed_addenda_of(["rec-2", "rec-1"], ["drsmith"]),
        "sealed_letters": lambda tx: tx.sealed_letters("rec-2", ["drsmith"]),
        "sealed_followups": lambda tx: tx.sealed_followups(["rec-2"], ["drsmith"]),
        "sealed_reviews": lambda tx: tx.sealed_reviews("rec-2", ["drsmith"]),
        "sealed_reviews_of": lambda tx: tx.sealed_reviews_of(["rec-2", "rec-1"], ["drsmith"]),
        "household_reviews": lambda tx: tx.household_reviews(["rec-2"]),
        "sealed_rows": lambda tx: tx.sealed_rows(),
        "last_draft_saved_at": lambda tx: tx.last_draft_saved_at("rec-1"),
        "stored_actions": lambda tx: tx.stored_actions(["rec-1", "rec-none"]),
        "referral_dues": lambda tx: tx.referral_dues(["rec-1", "rec-none"]),
        "audit_events": lambda tx: tx.audit_events(AuditFilter(action="fill")),
        "audit_head": lambda tx: tx.audit_head(),
        "audit_events_after": lambda tx: tx.audit_events_after(1, limit=1),
        "audit_hash_at": lambda tx: tx.audit_hash_at(1),
        "verify_audit": lambda tx: tx.verify_audit(),
        "head_problem": lambda tx: tx.head_problem((0, GENESIS)),
        "anchor_problem": lambda tx: tx.anchor_problem((1, "0" * 64), 0),
    }


# Where the port hands out bytes on purpose: letters' PDFs, wrapped keys, and the key tables'
# ciphertexts, public keys and signatures.
BYTES_ALLOWED = {
    "letter_pdf",
    "letter_unsigned_pdf",
    "get_practice_ca",
    "active_signing_key",
    "bundle",
    "directory_entries",
    "pending_entries",
    "lead_rotations",
    "role_key_wraps",
    "object_wraps_for",
    # vault version 2 sealed records: ciphertexts, commitments, tokens, wraps
    "sealed_record",
    "sealed_records",
    "summaries",
    "records_for_tokens",
    "sealed_addenda",
    "sealed_addenda_of",
    "sealed_letters",
    "sealed_followups",
    "sealed_reviews",
    "sealed_reviews_of",
    "household_reviews",
}
PLAIN = (str, int, float, bool, type(None), datetime, date)


def _leaks(value: Any, allow_bytes: bool, path: str = "") -> Iterator[str]:
    """Everything in `value` that is not a domain type, a port dataclass or plain data."""
    if isinstance(value, PLAIN):
        return
    if type(value) is bytes:
        if not allow_bytes:
            yield f"{path}: bytes"
        return
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        if not type(value).__module__.startswith("gpshare."):
            yield f"{path}: {type(value).__module__}.{type(value).__name__}"
        for f in dataclasses.fields(value):
            yield from _leaks(getattr(value, f.name), allow_bytes, f"{path}.{f.name}")
        return
    if type(value) in (list, tuple):
        for i, item in enumerate(value):
            yield from _leaks(item, allow_bytes, f"{path}[{i}]")
        return
    if type(value) is dict:
        for k, v in value.items():
            yield from _leaks(k, allow_bytes, f"{path}.key")
            yield from _leaks(v, allow_bytes, f"{path}[{k!r}]")
        return
    yield f"{path}: {type(value).__module__}.{type(value).__name__}"  # a Row, memoryview…


def test_reads_return_domain_types_only(engine: Opened) -> None:
    ids = _fill(engine)
    calls = _read_calls(ids)
    members = _members(ReadTx)
    assert set(calls) == set(members), "add a call for every ReadTx member"
    with engine.store.read() as tx:
        results = {name: call(tx) for name, call in calls.items()}
    for name, value in results.items():
        leaks = list(_leaks(value, name in BYTES_ALLOWED, name))
        assert not leaks, leaks
        # Every read found what _fill stored (so the check above saw real values).
        assert value not in (None, [], {}) or name in ("head_problem", "records_without_links")
    assert isinstance(results["get_record"], Record) and results["get_record"].status == "completed"
    assert results["letter_pdf"][1] == b"%PDF-signed"
    assert results["due_referrals"] == [("rec-1", "drsmith", "Amy", "Example", "chase", "2026-11-20")]  # fmt: skip
    assert results["verify_audit"].ok
    assert results["anchor_problem"] is not None  # a head this chain never had
    sealed = results["sealed_record"]
    assert (sealed.row.version, sealed.row.status, sealed.answers.ct) == (
        3,
        "completed",
        b"\x03" * 30,
    )
    assert [w.recipient for w in sealed.answers.wraps] == ["drsmith"]  # wrapped once, at insert
    assert [s.record_id for s in results["summaries"]] == ["rec-2"]  # rec-1 is a v1 record
    [match] = results["records_for_tokens"]
    assert (match.row.id, match.summary.version, match.found_by.type) == ("rec-2", 3, "nhs")
    assert [r.id for r in results["records_without_tokens"]] == ["rec-2"]  # none of generation 3
    assert [e.note.object_id for e in results["sealed_followups"] if e.note] == ["f-1"]
    # The sealed rows stay out of the v1 readers, which would show them as plaintext.
    assert [a.record_id for a in results["addenda"]] == ["rec-1"]
    assert [r.record_id for r in results["reviews"]] == ["rec-1"]


class _Recording:
    """The store, with the names of the WriteTx members called in its writes noted."""

    def __init__(self, store: Store) -> None:
        self._store = store
        self.called: set[str] = set()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._store, name)

    @contextlib.contextmanager
    def write(self, entry: AuditEntry) -> Iterator[Any]:
        with self._store.write(entry) as tx:
            yield _Noting(tx, self.called)

    @contextlib.contextmanager
    def maintenance(self) -> Iterator[Any]:
        with self._store.maintenance() as tx:
            yield _Noting(tx, self.called)


class _Noting:
    def __init__(self, tx: WriteTx, called: set[str]) -> None:
        self._tx, self._called = tx, called

    def __getattr__(self, name: str) -> Any:
        self._called.add(name)
        return getattr(self._tx, name)


# Writes _fill leaves out because they would undo or hide what the reads check.
NOT_IN_FILL = {
    "set_user_active",
    "set_must_change_password",
    "replace_signing_key_wrap",
    "deactivate_signing_keys",
    "move_draft_to_form",
    "delete_draft",
}


def test_fill_writes_through_every_write_member(engine: Opened) -> None:
    recording = _Recording(engine.store)
    _fill(dataclasses.replace(engine, store=cast(Store, recording)))
    writes = set(_members(WriteTx)) - set(_members(ReadTx))
    assert writes - recording.called == NOT_IN_FILL, "call every new WriteTx member in _fill"


def test_every_write_member_leaves_rows_that_pass_the_full_integrity_check(
    engine: Opened,
) -> None:
    """Format 2: each M row a write member inserts or changes carries its row MAC (the full
    check verifies every row of every M table); the in-place updates _fill leaves out too."""
    _fill(engine)
    with engine.store.write(_entry("user_disabled")) as tx:
        [key_id, _key] = tx.active_signing_key("drsmith") or (0, None)
        tx.replace_signing_key_wrap(key_id, b"n" * 12, b"w" * 40)
        tx.deactivate_signing_keys("drsmith")
        tx.set_user_active("drsmith", False)
        tx.set_must_change_password("drsmith", True)
    assert engine.store.integrity_problems() == []
    with engine.store.read() as tx:  # and the reads that check MACs accept them
        assert tx.get_user("drsmith") is not None and tx.list_users()
        assert tx.get_settings() and tx.sealed_record("rec-2", ["drsmith"]) is not None


def test_write_transactions_read_their_own_writes(engine: Opened) -> None:
    with engine.store.write(_entry("user_added")) as tx:
        tx.insert_user(_user("drsmith"))
        assert tx.get_user("drsmith") is not None
        with engine.store.read() as rtx:  # a read nested in the write sees the same work
            assert rtx.get_user("drsmith") is not None


# ----- vault version 2 key tables (migration 0007) ----------------------------------------


@pytest.fixture
def key_rows(engine: Opened) -> KeyRows:
    return fill_key_tables(engine.store, engine.vault.vault_id, WHEN)


def test_bundles_and_the_directory_round_trip_and_still_verify(
    engine: Opened, key_rows: KeyRows
) -> None:
    vault_id, pin = key_rows.vault_id, raw_public(key_rows.lead_signing)
    with engine.store.read() as tx:
        stored = tx.bundle("drsmith")
        rows = tx.directory_entries()
        smith_rows = tx.directory_entries(user_id="drsmith")
        lead_rows = tx.directory_entries(kind="lead-key")
        pending = tx.pending_entries()
        rotations = tx.lead_rotations()
    assert stored is not None and (stored.user_id, stored.state) == ("drsmith", "active")
    opened = keys.open_bundle(stored.sealed, SMITH_PASSWORD, vault_id, "drsmith")
    assert raw_public(opened.encryption) == raw_public(key_rows.smith.encryption)
    assert opened.pinned_lead_signing_key == pin
    # Appended, never changed: drsmith's pending row is still there under the confirmed one.
    assert [r.kind for r in rows] == ["user", "user", "lead-key", "user"]
    assert [r.status for r in smith_rows] == ["pending", "confirmed"]
    assert [r.id for r in rows] == sorted(r.id for r in rows)
    public, generation = keys.verified_recipient_key(
        smith_rows[-1].signed(vault_id), pin, vault_id, "drsmith"
    )
    assert public.public_bytes_raw() == raw_public(key_rows.smith.encryption)
    assert generation == 1
    lead_public = keys.verified_lead_key(lead_rows[0].signed(vault_id), pin, vault_id, 1)
    assert lead_public.public_bytes_raw() == raw_public(key_rows.lead_encryption)
    # Only drjones waits for a lead; their row is unsigned and so never usable.
    assert [(r.user_id, r.status, r.signature) for r in pending] == [("drjones", "pending", None)]
    with pytest.raises(keys.DirectoryAlteredError, match="not signed by a lead"):
        keys.verify_entry(pending[0].signed(vault_id), pin, vault_id)
    assert len(rotations) == 1
    new_pin = keys.verify_rotation(rotations[0].statement(vault_id), pin, vault_id)
    assert new_pin == raw_public(key_rows.next_lead_signing)


def test_wraps_round_trip_and_open_with_the_binding_of_their_row(
    engine: Opened, key_rows: KeyRows
) -> None:
    vault_id = key_rows.vault_id
    with engine.store.read() as tx:
        smith_roles = tx.role_key_wraps("drsmith")
        lead_key_wraps = tx.role_key_wraps(key_name="lead")
        every_role_wrap = tx.role_key_wraps()
        smith_objects = tx.object_wraps_for("drsmith", [("answers", "rec-1")])
        lead_objects = tx.object_wraps_for(LEAD_KEY)
        nothing = tx.object_wraps_for("drsmith", [("addendum", "rec-1")])
    assert len(every_role_wrap) == 2 and nothing == []
    [clinical] = smith_roles
    assert (clinical.key_name, clinical.generation, clinical.recipient_generation) == (
        "clinical", 1, 1
    )  # fmt: skip
    opened = keys.unwrap_key(clinical.wrap, key_rows.smith.encryption, clinical.binding(vault_id))
    assert opened == key_rows.clinical.reveal()
    [lead] = lead_key_wraps
    assert lead.recipient == BREAKGLASS
    assert keys.unwrap_key(lead.wrap, key_rows.breakglass, lead.binding(vault_id)) == (
        key_rows.lead_encryption.private_bytes_raw()
    )
    for wraps, private in (
        (smith_objects, key_rows.smith.encryption),
        (lead_objects, key_rows.lead_encryption),
    ):
        [wrap] = wraps
        key = keys.unwrap_object_key(
            wrap.wrap, private, wrap.binding(vault_id), key_rows.commitment
        )
        assert key.reveal() == key_rows.object_key.reveal()
    # A row's binding is its own: another recipient's key does not open it.
    with pytest.raises(keys.UnwrapError):
        keys.unwrap_key(clinical.wrap, key_rows.jones.encryption, clinical.binding(vault_id))


def test_object_wraps_are_found_by_kind_and_id_in_any_number(engine: Opened) -> None:
    created = WHEN.isoformat()
    # More pairs than one query takes (250), for two recipients and two kinds with equal ids.
    wraps = [
        ObjectWrap(kind, f"obj-{n}", recipient, 1, bytes([n % 256]) * 40, created)
        for n in range(300)
        for kind in ("answers", "addendum")
        for recipient in ("drsmith", "drjones")
    ]
    with engine.store.write(_entry("wraps_added")) as tx:
        tx.add_object_wraps(wraps)
    wanted = [("addendum", f"obj-{n}") for n in range(0, 300, 1)] + [("answers", "obj-7")]
    with engine.store.read() as tx:
        found = tx.object_wraps_for("drsmith", [*wanted, ("answers", "obj-7"), ("letter", "x")])
        every = tx.object_wraps_for("drjones")
    assert {(w.object_kind, w.object_id) for w in found} == set(wanted)
    assert len(found) == 301 and {w.recipient for w in found} == {"drsmith"}
    assert set(found) <= set(wraps)
    assert len(every) == 600 and {w.recipient for w in every} == {"drjones"}


def test_a_bundle_is_resealed_in_place_and_a_new_generation_is_its_own_row(
    engine: Opened, key_rows: KeyRows
) -> None:
    vault_id, user = key_rows.vault_id, key_rows.smith
    later = (WHEN + timedelta(days=1)).isoformat(timespec="seconds")
    with engine.store.read() as tx:
        first = tx.bundle("drsmith")
    assert first is not None
    resealed = keys.seal_bundle(user, "new-password-1", vault_id, "drsmith", 1, CHEAP_TEST_KDF)
    with engine.store.write(_entry("password_changed")) as tx:
        tx.put_bundle(StoredBundle("drsmith", "inert", resealed, later))
    with engine.store.read() as tx:
        again = tx.bundle("drsmith")
    assert again == StoredBundle("drsmith", "inert", resealed, first.created)  # created kept
    keys.open_bundle(again.sealed, "new-password-1", vault_id, "drsmith")
    second = keys.seal_bundle(user, "third-password", vault_id, "drsmith", 2, CHEAP_TEST_KDF)
    with engine.store.write(_entry("key_published")) as tx:
        tx.put_bundle(StoredBundle("drsmith", "active", second, later))
    with engine.store.read() as tx:
        newest, old, none = tx.bundle("drsmith"), tx.bundle("drsmith", 1), tx.bundle("drjones")
    assert newest == StoredBundle("drsmith", "active", second, later)
    assert old == again and none is None


def test_remembered_logins_are_listed_and_revoked_once(engine: Opened, key_rows: KeyRows) -> None:
    with engine.store.write(_entry("login_remembered")) as tx:
        other = tx.add_remembered_login("drjones", "consulting-room-2", WHEN.isoformat())
    with engine.store.read() as tx:
        smith, every = tx.remembered_logins("drsmith"), tx.remembered_logins()
    assert [(r.id, r.workstation, r.revoked is not None) for r in smith] == [
        (key_rows.login_id, "reception-pc", True)
    ]
    assert [r.id for r in every] == [key_rows.login_id, other]
    again = _entry("login_forgotten")
    with (
        pytest.raises(DatabaseError, match="can only be revoked, once"),
        engine.store.write(again) as tx,
    ):
        tx.revoke_remembered_login(key_rows.login_id, WHEN.isoformat())


def test_breakglass_banner_stays_until_two_different_users_acknowledge(
    engine: Opened, key_rows: KeyRows
) -> None:
    store, seq = engine.store, key_rows.breakglass_seq
    with store.read() as tx:
        state = tx.breakglass_state()
    assert state is not None and state.banner
    assert (state.event_seq, state.acknowledged_by) == (seq, ("drsmith",))
    ack = _entry("breakglass_acknowledged")
    # The same user twice does not count twice; an ack names a break-glass event.
    with pytest.raises(DatabaseError, match="(?i)unique"), store.write(ack) as tx:
        tx.add_breakglass_ack(seq, "drsmith", WHEN.isoformat())
    wrong = "must name a breakglass_used audit event"
    with pytest.raises(DatabaseError, match=wrong), store.write(ack) as tx:
        tx.add_breakglass_ack(seq - 1, "lead", WHEN.isoformat())
    with store.write(_entry("breakglass_acknowledged")) as tx:
        tx.add_breakglass_ack(seq, "lead", WHEN.isoformat())
    with store.read() as tx:
        state = tx.breakglass_state()
    assert state is not None and not state.banner
    assert state.acknowledged_by == ("drsmith", "lead")
    # A new ceremony raises the banner again.
    with store.write(_entry("breakglass_used")):
        pass
    with store.read() as tx:
        state = tx.breakglass_state()
    assert state is not None and state.banner
    assert (state.event_seq, state.acknowledged_by) == (store.last_head.seq, ())


def test_new_key_tables_are_empty_until_written(engine: Opened) -> None:
    with engine.store.read() as tx:
        assert tx.bundle("drsmith") is None
        assert tx.breakglass_state() is None
        assert tx.directory_entries() == tx.pending_entries() == []
        assert tx.lead_rotations() == [] and tx.role_key_wraps() == []
        assert tx.object_wraps_for("drsmith") == [] and tx.remembered_logins() == []


def _sealed_draft(rid: str, clinician: str, when: str) -> RecordWrite:
    """A new sealed draft `rid` by `clinician`, created and last changed at `when`."""
    row = RecordRow(rid, clinician, "draft", "gmc-confidentiality", 2, None, when, when, None, 1)
    answers = _sealed_object("answers", rid, 1, when)
    return RecordWrite(row, 0, StoredSummary(rid, 1, 1, b"s" * 40), answers, ())


def test_sealed_records_list_as_light_m_rows_newest_change_first(engine: Opened) -> None:
    """The lead list's page on a v2 vault: M rows only (no child, no answers), newest change
    first, M filters applied by the engine; the services add the page's summaries."""
    store = engine.store
    with store.write(_entry("users_added")) as tx:
        tx.insert_user(_user("drsmith"))
        tx.insert_user(_user("drjones"))
    days = {"rec-a": "2026-11-01", "rec-b": "2026-11-03", "rec-c": "2026-11-02"}
    with store.write(AuditEntry("drsmith", "sealed")) as tx:
        for rid, day in days.items():
            author = "drjones" if rid == "rec-c" else "drsmith"
            tx.insert_sealed_record(_sealed_draft(rid, author, f"{day}T10:00:00+00:00"))
    with store.read() as tx:
        page = tx.list_records(RecordFilter(), limit=2, light=True)
        rest = tx.list_records(RecordFilter(), limit=2, offset=2, light=True)
        smith = tx.list_records(RecordFilter(clinician="drsmith"), light=True)
        ranged = tx.list_records(
            RecordFilter(date_from="2026-11-02", date_to="2026-11-02"), light=True
        )
        counted = tx.count_records(RecordFilter(clinician="drsmith", status="draft"))
    assert [r.id for r in page] == ["rec-b", "rec-c"] and [r.id for r in rest] == ["rec-a"]
    assert [r.id for r in smith] == ["rec-b", "rec-a"] and counted == 2
    assert [r.id for r in ranged] == ["rec-c"]
    first = page[0]
    assert (first.clinician_name, first.status, first.child.given_name) == (
        "Dr Drsmith", "draft", ""
    )  # fmt: skip
    assert first.answers.get("concern_narrative") is None


def test_page_reads_return_what_the_per_record_reads_return_grouped_by_record(
    engine: Opened,
) -> None:
    """sealed_records / sealed_addenda_of / sealed_reviews_of (the lead index build reads a
    page of records with them): the same rows, wraps and order as one record at a time, by
    record id, an id that is gone or has none left out, more ids than one SQL chunk."""
    store = engine.store
    created = WHEN.isoformat(timespec="seconds")
    with store.write(_entry("users_added")) as tx:
        tx.insert_user(_user("drsmith"))
        tx.insert_user(_user("lead", "lead"))
    with store.write(AuditEntry("drsmith", "sealed")) as tx:
        tx.insert_sealed_record(_sealed_write(1, created))
        tx.update_sealed_draft(_sealed_write(2, created))
        tx.complete_sealed_record(_sealed_write(3, created, "completed"))
        _add_addendum_and_letter(tx, created)
        tx.add_sealed_review("rec-2", "lead", created, _sealed_object("review", "v-1", 8, created))
    many = [f"rec-p{n:03}" for n in range(260)]  # over the embedded engine's 250 ids a query
    with store.write(AuditEntry("drsmith", "sealed")) as tx:
        for rid in many:
            tx.insert_sealed_record(_sealed_draft(rid, "drsmith", created))
        for n, rid in enumerate(many[-2:]):
            for name in (f"a-p{n}", f"a-q{n}"):
                body = _sealed_object("addendum", name, 9, created)
                tx.add_sealed_addendum(rid, "drsmith", created, body)
        tx.add_sealed_review(many[0], "lead", created, _sealed_object("review", "v-p", 10, created))
    ids = ["rec-2", "rec-gone", *many]
    who = ["drsmith", "lead"]
    with store.read() as tx:
        records = tx.sealed_records(ids, who)
        addenda = tx.sealed_addenda_of(ids, who)
        reviews = tx.sealed_reviews_of(ids, who)
        one_by_one = {rid: tx.sealed_record(rid, who) for rid in ids}
        addenda_each = {rid: tx.sealed_addenda(rid, who) for rid in ids}
        reviews_each = {rid: tx.sealed_reviews(rid, who) for rid in ids}
        assert tx.sealed_records([], who) == {} and tx.sealed_addenda_of([], who) == {}
    assert set(records) == set(ids) - {"rec-gone"}
    assert records == {rid: r for rid, r in one_by_one.items() if r is not None}
    assert records["rec-2"].answers is not None and records["rec-2"].answers.wraps
    assert records["rec-2"].summary == StoredSummary("rec-2", 3, 1, bytes([3]) * 40)
    assert addenda == {rid: a for rid, a in addenda_each.items() if a}
    assert set(addenda) == {"rec-2", *many[-2:]} and len(addenda[many[-1]]) == 2
    assert [a.body.object_id for a in addenda[many[-1]]] == ["a-p1", "a-q1"]
    assert reviews == {rid: r for rid, r in reviews_each.items() if r}
    assert set(reviews) == {"rec-2", many[0]}


# ----- the engine conforms to the Protocols ----------------------------------------------


def _members(protocol: type) -> dict[str, Any]:
    """Public members a Protocol declares (its own and its Protocol bases')."""
    found: dict[str, Any] = {}
    for klass in reversed(protocol.__mro__):
        if klass in (object,) or not getattr(klass, "_is_protocol", False):
            continue
        for name, value in vars(klass).items():
            if not name.startswith("_"):
                found[name] = value
    return found


def _plain(annotation: Any, names: dict[str, str]) -> str:
    """An annotation as text without module prefixes (`audit.ChainReport` -> `ChainReport`)."""
    text = annotation if isinstance(annotation, str) else inspect.formatannotation(annotation)
    text = re.sub(r"\b[A-Za-z_][A-Za-z0-9_]*\.", "", text).replace(" ", "")
    return re.sub(r"\b[A-Za-z_][A-Za-z0-9_]*\b", lambda m: names.get(m[0], m[0]), text)


def _shape(member: Any, names: dict[str, str]) -> tuple[Any, ...]:
    """Parameters and return annotation; engine class names read as their Protocols' and a
    generator context manager's Iterator[X] as AbstractContextManager[X]."""
    if isinstance(member, property):
        return ("property", _plain(inspect.signature(member.fget).return_annotation, names))
    sig = inspect.signature(member)
    params = tuple(
        (p.name, p.kind, p.default, _plain(p.annotation, names)) for p in sig.parameters.values()
    )
    returns = _plain(sig.return_annotation, names)
    if inspect.isgeneratorfunction(inspect.unwrap(member)):
        returns = re.sub(r"^Iterator\[", "AbstractContextManager[", returns)
    return params, returns


def test_sealed_rows_name_every_sealed_row_with_its_hashes_and_commitments(
    engine: Opened,
) -> None:
    """What the row-against-event verify compares (gpshare/store/sealed_rows.py): records at
    their stored version with both ciphertexts, object rows by their object id; every MAC
    verifies on an untouched store."""
    store, created = engine.store, WHEN.isoformat(timespec="seconds")
    with store.write(_entry("users")) as tx:
        tx.insert_user(_user("drsmith"))
        tx.insert_user(_user("lead", "lead"))
    with store.write(AuditEntry("drsmith", "sealed")) as tx:
        tx.insert_sealed_record(_sealed_write(1, created))
        tx.update_sealed_draft(_sealed_write(2, created))
        _add_addendum_and_letter(tx, created)
        tx.add_sealed_followup(
            FollowUp(0, "rec-2", "sent", created, "drsmith", created, None, None, {}), None
        )  # a follow-up without a note holds no ciphertext: not a sealed row
        tx.add_sealed_review("rec-2", "lead", created, _sealed_object("review", "v-1", 8, created))
    with store.read() as tx:
        rows = {r.key: r for r in tx.sealed_rows()}
    assert set(rows) == {
        ("records", "rec-2"), ("addenda", "a-1"), ("letters", "l-1"), ("reviews", "v-1")
    }  # fmt: skip
    record = rows[("records", "rec-2")]
    assert record.version == 2 and record.mac_ok
    assert record.sha256 == {
        "answers_ct": sealed_rows.digest(bytes([2]) * 30),
        "summary_ct": sealed_rows.digest(bytes([2]) * 40),
    }
    assert record.commitment == {"answers_ct": (b"k" * 32).hex()}
    letter = rows[("letters", "l-1")]
    assert letter.sha256 == {
        "pdf_ct": sealed_rows.digest(bytes([5]) * 30),
        "unsigned_ct": sealed_rows.digest(bytes([6]) * 30),
    }
    assert letter.commitment == {"pdf_ct": (bytes([5]) * 32).hex(), "unsigned_ct": (bytes([6]) * 32).hex()}  # fmt: skip
    assert rows[("addenda", "a-1")].sha256 == {"body_ct": sealed_rows.digest(bytes([4]) * 30)}
    assert all(r.mac_ok and r.version == 0 for k, r in rows.items() if k[0] != "records")


def test_the_engine_implements_every_protocol_member_with_its_signature(
    engine: Opened, request: pytest.FixtureRequest
) -> None:
    store = engine.store
    server = request.node.callspec.params["engine"] == "postgres"
    with store.read() as rtx:
        read_cls = type(rtx)
    with store.maintenance() as wtx:
        write_cls = type(wtx)
        for name in PG_REFUSED if server else ():
            # A v1 plaintext member on a server is a clear refusal, never a missing method.
            with pytest.raises(StoreError, match="no plaintext"):
                getattr(wtx, name)
    pairs = ((Store, type(store)), (ReadTx, read_cls), (WriteTx, write_cls))
    names = {cls.__name__: protocol.__name__ for protocol, cls in pairs}
    for protocol, cls in pairs:
        for name, member in _members(protocol).items():
            if server and name in PG_REFUSED:
                continue
            assert hasattr(cls, name), f"{cls.__name__} lacks {protocol.__name__}.{name}"
            implemented = inspect.getattr_static(cls, name)
            assert _shape(implemented, names) == _shape(member, names), f"{cls.__name__}.{name}"


def test_a_store_that_reaches_its_database_is_not_unreachable(engine: Opened) -> None:
    store = engine.store
    with store.read() as tx:
        tx.audit_head()
    assert store.unreachable_since() is None
    worker = store.worker()
    try:
        with worker.read() as tx:
            tx.audit_head()
        assert worker.unreachable_since() is None and store.unreachable_since() is None
    finally:
        worker.close()


# ----- integrity, schema and lifecycle -----------------------------------------------------


def test_integrity_and_schema_checks_speak_the_port(
    engine: Opened, request: pytest.FixtureRequest
) -> None:
    store = engine.store
    assert store.page_problems() == []
    assert store.integrity_problems(quick=True) == []
    assert store.schema_version() == store.latest_schema_version() > 0
    assert store.pending_migrations() == []
    assert store.apply_migrations() == []
    if request.node.callspec.params["engine"] == "postgres":
        # A server is backed up on the server (pg_dump), never from a workstation.
        with pytest.raises(StoreError, match="backs up the database on the server"):
            store.create_backup(WHEN + timedelta(minutes=1), keep=2)
        return
    snapshot = store.create_backup(WHEN + timedelta(minutes=1), keep=2)
    assert (snapshot / "records.db").is_file()


def test_the_replica_lives_on_this_computer_in_the_vault_or_workstation_folder(
    engine: Opened,
) -> None:
    # A practice server's workstation keeps the same SQLCipher file in its own folder (the
    # fixture opens the server with the vault folder as its workstation folder).
    store, key = engine.store, b"k" * 32
    replica = store.replica(key)
    with pytest.raises(ReplicaUnavailable) as missing:
        replica.last_seq()
    assert missing.value.reason == "missing"
    with store.read() as tx:
        head = tx.audit_head()
    item = ReplicaItem("SG-PORT-0001", "drsmith", "Dr Smith", "completed", "f", 2, WHEN.isoformat(), WHEN.isoformat(), search_text="port replica")  # fmt: skip
    assert replica.rebuild([item], head) == 1
    assert [r.id for r in replica.list_records(RecordFilter(search="replica"))] == [item.id]
    assert replica.last_head() == head
    assert (engine.vault.folder / "lead-index.db").is_file()
    replica.close()


def test_ca_signing_keys_and_referral_states_round_trip_beside_sealed_records(
    engine: Opened,
) -> None:
    store, created = engine.store, WHEN.isoformat()
    ca = WrappedKey(b"-----CA-----", b"n" * 12, b"w" * 40)
    with store.write(_entry("setup")) as tx:
        tx.insert_user(_user("admin", "admin"))
        tx.insert_user(_user("drsmith"))
        tx.insert_user(_user("lead", "lead"))
        tx.put_practice_ca(ca.cert_pem, ca.nonce, ca.wrapped, created)
        tx.add_signing_key("drsmith", WrappedKey(b"-----CERT 1-----", b"a" * 12, b"b" * 40), "issued", created)  # fmt: skip
        tx.add_signing_key("drsmith", WrappedKey(b"-----CERT 2-----", b"c" * 12, b"d" * 40), "pkcs12", created)  # fmt: skip
    with store.write(_entry("sealed")) as tx:
        tx.insert_sealed_record(_sealed_write(1, created))
    with store.write(AuditEntry("drsmith", "draft_saved", record_id="rec-2")) as tx:
        tx.complete_sealed_record(_sealed_write(2, created, "completed"))
    with store.write(_entry("states")) as tx:
        [record] = tx.completed_records_light(record_ids=["rec-2"])
        tx.put_referral_states([StoredState(record, "sent", "chase", "2026-11-20", created, None)])
        # A second state of the same record replaces the first.
        tx.put_referral_states([StoredState(record, "sent", "chase", "2026-11-21", created, None)])
    with store.read() as tx:
        assert tx.get_practice_ca() == ca
        found = tx.active_signing_key("drsmith")
        assert found is not None and found[1].cert_pem == b"-----CERT 2-----"
        due = tx.due_referrals("2026-12-31")
        assert [(r[0], r[1], r[4], r[5]) for r in due] == [("rec-2", "drsmith", "chase", "2026-11-21")]  # fmt: skip
        assert tx.due_referrals("2026-12-31", "drjones") == []
        assert tx.due_referrals("2026-11-01") == []
        assert tx.referrals_with_action("chase", "2026-11-01") == due
        assert tx.overdue_counts("2026-12-31", None, None) == {"sent": 1}
        assert tx.overdue_counts("2026-11-21", None, None) == {}
        assert tx.send_timings(None, None) == [(created, created, None)]
        assert tx.dashboard_rows(None, None, with_timings=False).timings == []
        assert tx.stored_actions(["rec-2", "rec-none"]) == {"rec-2": "chase"}
        assert tx.referral_dues(["rec-2", "rec-none"]) == {"rec-2": ("2026-11-21", "chase")}
        assert tx.referral_dues() == {"rec-2": ("2026-11-21", "chase")}
        assert tx.last_draft_saved_at("rec-2") is not None
        assert tx.last_draft_saved_at("rec-none") is None
        head = tx.audit_head()
        assert tx.head_problem((head.seq, head.digest)) is None
        assert "event" in str(tx.head_problem((head.seq + 3, head.digest)))
        assert tx.anchor_problem((head.seq, head.digest), 0) is None
        assert tx.anchor_problem((head.seq + 3, head.digest), 0) is not None
        assert tx.anchor_problem((head.seq + 3, head.digest), head.seq + 3) is None
    key_id = found[0]
    with store.write(_entry("rewrapped")) as tx:
        tx.replace_signing_key_wrap(key_id, b"p" * 12, b"q" * 40)
    with store.read() as tx:
        assert tx.active_signing_key("drsmith") == (
            key_id, WrappedKey(b"-----CERT 2-----", b"p" * 12, b"q" * 40)
        )  # fmt: skip
    with store.write(_entry("disabled")) as tx:
        tx.deactivate_signing_keys("drsmith")
    with store.read() as tx:
        assert tx.active_signing_key("drsmith") is None


def test_a_closed_store_refuses_work_with_a_port_error(engine: Opened) -> None:
    store = engine.store.worker()
    store.close()
    with pytest.raises(DatabaseError), store.read() as tx:
        tx.list_users()
    store.interrupt()  # harmless after close
    store.checkpoint()
