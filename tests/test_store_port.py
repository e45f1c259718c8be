"""Contract tests of the storage port (gpshare.store.port), run against every engine.

Only "sqlcipher" exists today; a PostgreSQL engine is added to ENGINES and must pass the same
tests unchanged. The tests use the port's API only: no SQL, no driver types.
"""

from __future__ import annotations

import dataclasses
import inspect
import re
from collections.abc import Callable, Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from gpshare.clock import FixedClock
from gpshare.errors import DatabaseError, StoreError
from gpshare.filters import AuditFilter, RecordFilter
from gpshare.records import ChildSummary, FollowUp, Record, Review, User
from gpshare.store import open_store
from gpshare.store.audit import GENESIS
from gpshare.store.crypto import CHEAP_TEST_KDF
from gpshare.store.port import (
    AuditEntry,
    AuditHead,
    ReadTx,
    Store,
    StoredState,
    WrappedKey,
    WriteTx,
)
from gpshare.store.vault import Vault

ENGINES = ["sqlcipher"]
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
    return {"letter_id": letter_id}


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
        "last_draft_saved_at": lambda tx: tx.last_draft_saved_at("rec-1"),
        "audit_events": lambda tx: tx.audit_events(AuditFilter(action="fill")),
        "audit_head": lambda tx: tx.audit_head(),
        "verify_audit": lambda tx: tx.verify_audit(),
        "head_problem": lambda tx: tx.head_problem((0, GENESIS)),
        "anchor_problem": lambda tx: tx.anchor_problem((1, "0" * 64), 0),
    }


# Where the port hands out bytes on purpose: letters' PDFs and wrapped keys.
BYTES_ALLOWED = {"letter_pdf", "letter_unsigned_pdf", "get_practice_ca", "active_signing_key"}
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


def test_write_transactions_read_their_own_writes(engine: Opened) -> None:
    with engine.store.write(_entry("user_added")) as tx:
        tx.insert_user(_user("drsmith"))
        assert tx.get_user("drsmith") is not None
        with engine.store.read() as rtx:  # a read nested in the write sees the same work
            assert rtx.get_user("drsmith") is not None


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


def test_the_engine_implements_every_protocol_member_with_its_signature(engine: Opened) -> None:
    store = engine.store
    with store.read() as rtx:
        read_cls = type(rtx)
    with store.maintenance() as wtx:
        write_cls = type(wtx)
    pairs = ((Store, type(store)), (ReadTx, read_cls), (WriteTx, write_cls))
    names = {cls.__name__: protocol.__name__ for protocol, cls in pairs}
    for protocol, cls in pairs:
        for name, member in _members(protocol).items():
            assert hasattr(cls, name), f"{cls.__name__} lacks {protocol.__name__}.{name}"
            implemented = inspect.getattr_static(cls, name)
            assert _shape(implemented, names) == _shape(member, names), f"{cls.__name__}.{name}"


# ----- integrity, schema and lifecycle -----------------------------------------------------


def test_integrity_and_schema_checks_speak_the_port(engine: Opened) -> None:
    store = engine.store
    assert store.page_problems() == []
    assert store.integrity_problems(quick=True) == []
    assert store.schema_version() == store.latest_schema_version() > 0
    assert store.pending_migrations() == []
    assert store.apply_migrations() == []
    snapshot = store.create_backup(WHEN + timedelta(minutes=1), keep=2)
    assert (snapshot / "records.db").is_file()


def test_a_closed_store_refuses_work_with_a_port_error(engine: Opened) -> None:
    store = engine.store.worker()
    store.close()
    with pytest.raises(DatabaseError), store.read() as tx:
        tx.list_users()
    store.interrupt()  # harmless after close
    store.checkpoint()
