"""The lead's search replica, lead-index.db (vault version 2, docs/vault-v2.md §1.1, step 6).

The same records are written through today's services into records.db and copied into the
replica; every list, count, filter, search page and dashboard aggregate must come out the
same from both. Then: catch-up from an audit sequence number, idempotent apply, rebuilds
that fail or are killed half-way, the wrong key, no plaintext in the file, no replica in
backups.

These compare the file with a version-1 records.db's plaintext repositories, which a practice
server does not have, so they run on the embedded engine only. The file is the same class on
a server's workstation: tests/test_store_port.py opens it through every engine, and
tests/test_pg_replica.py, test_v2_search.py and test_ui_v2_search.py run the services' side
on a server (catch-up from its chain, a restore, no plaintext in the file or the dump).
"""

from __future__ import annotations

import inspect
import os
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from gpshare.errors import Cancelled, ReplicaUnavailable
from gpshare.filters import RecordFilter
from gpshare.services import restore
from gpshare.services._records import _search_text
from gpshare.store.port import AuditEntry, AuditHead, RemovedRecord, Replica, ReplicaItem
from gpshare.store.sqlcipher import replica as replica_mod
from gpshare.store.sqlcipher import repositories as repo
from gpshare.store.sqlcipher.replica import LeadReplica
from tests.conftest import PASSWORDS, backup_between
from tests.storehelp import raw_connection
from tests.test_referral_states import answers, complete

KEY = bytes(range(32))
START = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)
# A name and words that appear nowhere else: the plaintext scan looks for them.
MARKER_FAMILY = "Quillfeather"
MARKER_NOTE = "zanzibarite"


@dataclass
class Practice:
    env: Any
    ids: list[str]
    draft_id: str


def _tick(env: Any, minutes: int) -> None:
    # Every write at its own time: records.db orders by `updated` without a tie-break.
    env.clock.current = START + timedelta(minutes=minutes)


def _seed(env: Any) -> Practice:
    """Completed records of every pathway by two clinicians over several months, follow-ups
    in several states, a lead review, an addendum, and drafts."""
    ids: list[str] = []
    by_user: dict[str, list[str]] = {}
    minute = 0
    scenarios = (
        ("01-bruised-toddler-parents-agree", {}),
        ("02-teen-sexual-health-refuses", {}),
        ("03-low-level-concern-monitor", {"review_date": "soon"}),
        ("01-bruised-toddler-parents-agree", {"child_family_name": "Marshall"}),
        ("03-low-level-concern-monitor", {"child_family_name": MARKER_FAMILY}),
        ("02-teen-sexual-health-refuses", {"child_given_name": "Jadeé"}),
    )
    for user in ("drsmith", "drjones"):
        s = env.session(user)
        for month in range(3):
            for name, changes in scenarios:
                minute += 60 * 24 * 9 if month and name.startswith("01") else 37
                _tick(env, minute)
                if changes.get("review_date") == "soon":  # a monitor review falling due
                    soon = env.clock.current.date() + timedelta(days=5)
                    changes = {"review_date": soon.isoformat()}
                ids.append(complete(s, name, **changes).id)
                by_user.setdefault(user, []).append(ids[-1])
        s.close()
    _tick(env, minute + 10)
    s = env.session("drsmith")
    # Follow-ups only exist for records that shared (a referral to chase).
    mine = [
        i
        for i in by_user["drsmith"]
        if s.assessments.get_record(i, audit_view=False).letter_required
    ]
    assert len(mine) >= 5
    for n, record_id in enumerate(mine[:5]):
        _tick(env, minute + 20 + n)
        s.referrals.record_followup(record_id, "sent")
    _tick(env, minute + 30)
    s.referrals.record_followup(mine[1], "acknowledged")
    _tick(env, minute + 31)
    s.assessments.add_addendum(mine[0], f"Mother phoned about the {MARKER_NOTE} appointment.")
    _tick(env, minute + 32)
    draft = s.assessments.start_assessment(answers=answers("01-bruised-toddler-parents-agree"))
    _tick(env, minute + 33)
    s.assessments.start_assessment(answers={"child_given_name": "Nadia", "child_family_name": "Marsden"})  # fmt: skip
    s.close()
    _tick(env, minute + 40)
    lead = env.session("lead")
    lead.referrals.add_review(mine[2], "reasonable", "Clear reasoning.")
    lead.close()
    env.clock.current = START + timedelta(days=120)
    return Practice(env, ids, draft.id)


@pytest.fixture
def practice(vault_env: Any) -> Practice:
    return _seed(vault_env)


@pytest.fixture
def lead(practice: Practice) -> Iterator[Any]:
    session = practice.env.session("lead")
    yield session
    session.close()


# ----- the replica's items, from records.db (what the services will build from M + C + N) -----


def _narrative(session: Any, record_id: str) -> str:
    conn = raw_connection(session)
    texts = [a.body for a in repo.addenda(conn, record_id)]
    texts += [f.note for f in repo.followups(conn, [record_id]) if f.note]
    texts += [t for r in repo.reviews(conn, record_id) for t in (r.comments, r.learning) if t]
    return "\n".join(texts)


def _items(session: Any, record_ids: list[str] | None = None) -> list[ReplicaItem]:
    conn = raw_connection(session)
    states = {
        str(rid): (due, action)
        for rid, due, action in conn.execute("SELECT record_id, due, action FROM referral_states")
    }
    # Today a draft enters records_fts at its first save, not when it is started.
    indexed = {
        str(rid)
        for (rid,) in conn.execute(
            "SELECT s.record_id FROM records_search s WHERE s.id IN (SELECT rowid FROM records_fts)"
        )
    }
    flt = RecordFilter(record_ids=tuple(record_ids)) if record_ids is not None else RecordFilter()
    items = []
    for r in repo.list_records(conn, flt):
        due, action = states.get(r.id, (None, None))
        search_text = _search_text(r.answers) if r.id in indexed else ""
        narrative = _narrative(session, r.id)
        items.append(
            ReplicaItem.from_record(
                r, search_text=search_text, narrative=narrative, due=due, action=action
            )
        )
    return items


def _built(session: Any, key: bytes = KEY) -> Replica:
    replica = session.store.replica(key)
    with session.store.read() as tx:
        head = tx.audit_head()
    replica.rebuild(_items(session), head)
    return replica


# Filters from the lead's screens and today's tests (test_records, test_referral_states,
# test_ui_lead): every field of RecordFilter, alone and combined, with and without search.
def _filters(practice: Practice) -> list[RecordFilter]:
    return [
        RecordFilter(),
        RecordFilter(status="draft"),
        RecordFilter(status="completed"),
        RecordFilter(clinician="drjones"),
        RecordFilter(pathway="monitor"),
        RecordFilter(consent_basis="consent_given"),
        RecordFilter(child_nhs="9434765870"),
        RecordFilter(date_from="2026-11-25", date_to="2026-12-05"),
        RecordFilter(date_to="2026-11-23"),
        RecordFilter(search="Ellie"),
        RecordFilter(search="Mars"),  # a surname prefix: Marsh, Marshall, Marsden
        RecordFilter(search="marsh ellie"),
        RecordFilter(search="grip pattern"),
        RecordFilter(search="paediatric"),
        RecordFilter(search="jadee"),  # diacritics folded as records_fts folds them
        RecordFilter(search='bruis" OR *'),  # user text never becomes FTS syntax
        RecordFilter(search="nosuchword"),
        RecordFilter(search="Mars", pathway="monitor"),
        RecordFilter(search="Ellie", clinician="drsmith", date_from="2026-11-29"),
        RecordFilter(record_ids=tuple(practice.ids[:4]) + (practice.draft_id,)),
        RecordFilter(record_ids=()),
        RecordFilter(overdue_on="2027-01-01"),
        RecordFilter(overdue_on="2027-01-01", clinician="drsmith", search="ellie"),
    ]


def test_lists_counts_search_and_dashboard_equal_records_db(practice: Practice, lead: Any) -> None:
    replica = _built(lead)
    conn = raw_connection(lead)
    checked = 0
    for flt in _filters(practice):
        expected = repo.list_records(conn, flt, light=True)
        assert replica.list_records(flt) == expected, flt
        assert replica.count_records(flt) == repo.count_records(conn, flt) == len(expected), flt
        for limit, offset in ((5, 0), (5, 5), (7, 14), (200, 0)):
            assert replica.list_records(flt, limit, offset) == repo.list_records(
                conn, flt, limit, offset, light=True
            ), (flt, limit, offset)
        checked += len(expected)
    assert checked > 100  # the table is not vacuous
    assert repo.count_records(conn, RecordFilter(overdue_on="2027-01-01")) > 0
    for span in ((None, None), ("2026-11-25", "2026-12-05"), ("2027-06-01", None)):
        assert replica.dashboard_rows(*span) == repo.dashboard_rows(
            conn, *span, with_timings=False
        ), span
    assert replica.dashboard_rows(None, None).by_month_pathway  # counted something
    replica.close()


def test_narrative_text_is_searched_in_the_replica(practice: Practice, lead: Any) -> None:
    replica = _built(lead)
    found = replica.list_records(RecordFilter(search=MARKER_NOTE))
    assert len(found) == 1 and lead.assessments.addenda(found[0].id)
    assert [r.id for r in replica.list_records(RecordFilter(search="clear reasoning"))] == [
        rv.record_id for rv in repo.reviews(raw_connection(lead)) if rv.comments
    ]
    # records.db never indexed addenda: the replica adds them without changing other answers.
    assert repo.count_records(raw_connection(lead), RecordFilter(search=MARKER_NOTE)) == 0


def test_apply_is_idempotent_and_never_goes_back(practice: Practice, lead: Any) -> None:
    replica = _built(lead)
    head = replica.last_head()
    before = replica.list_records(RecordFilter())
    item = _items(lead, [practice.ids[0]])[0]
    changed = replace(item, child_family="Renamed", updated="2027-03-01T00:00:00+00:00")
    newer = AuditHead(head.seq + 1, "f" * 64)
    assert replica.apply([changed, RemovedRecord(practice.draft_id)], newer)
    after = replica.list_records(RecordFilter())
    assert after[0].child.family_name == "Renamed" and len(after) == len(before) - 1
    # The same range again, or an older one: nothing changes.
    assert not replica.apply([item, RemovedRecord(practice.ids[1])], newer)
    assert not replica.apply([item], head)
    assert replica.list_records(RecordFilter()) == after
    assert replica.last_head() == newer and replica.last_seq() == newer.seq
    # A removal of a record the replica does not have is no error.
    assert replica.apply([RemovedRecord("SG-NONE-XXXX")], AuditHead(newer.seq + 1, "e" * 64))


def _catch_up(session: Any, replica: Replica) -> bool:
    """What the services will do: the records named by the events after the replica's seq,
    re-read (or gone), applied up to the newest event."""
    with session.store.read() as tx:
        assert tx.audit_hash_at(replica.last_seq()) == replica.last_head().digest
        events = tx.audit_events_after(replica.last_seq())
        head = tx.audit_head()
    touched = list(dict.fromkeys(e.record_id for e in events if e.record_id))
    present = {item.id: item for item in _items(session, touched)}
    changes = [present.get(rid) or RemovedRecord(rid) for rid in touched]
    return replica.apply(changes, head)


def test_catch_up_from_the_last_applied_seq(practice: Practice, vault_env: Any) -> None:
    lead = vault_env.session("lead")
    replica = _built(lead)
    seq = replica.last_seq()
    lead.close()
    s = vault_env.session("drjones")
    _tick(vault_env, 60 * 24 * 200)
    new = complete(s, "01-bruised-toddler-parents-agree", child_family_name="Latecomer").id
    _tick(vault_env, 60 * 24 * 201)
    s.referrals.record_followup(new, "sent", note="Sent by secure email to the MASH.")
    s.close()
    lead = vault_env.session("lead")
    with lead.store.write(
        AuditEntry("drsmith", "draft_deleted", record_id=practice.draft_id)
    ) as tx:
        tx.delete_draft(practice.draft_id)
    with lead.store.read() as tx:
        events = tx.audit_events_after(seq)
        assert [e.seq for e in events] == list(range(seq + 1, tx.audit_head().seq + 1))
        assert tx.audit_events_after(seq, limit=1) == events[:1]
    assert replica.count_records(RecordFilter(search="Latecomer")) == 0  # not yet
    assert _catch_up(lead, replica)
    assert replica.last_head() == lead.store.last_head
    conn = raw_connection(lead)
    for flt in (RecordFilter(), RecordFilter(search="Latecomer"), RecordFilter(status="draft")):
        assert replica.list_records(flt) == repo.list_records(conn, flt, light=True)
    assert replica.list_records(RecordFilter(search="MASH"))[0].id == new
    assert not _catch_up(lead, replica)  # caught up: nothing to apply
    lead.close()


def test_a_failed_or_cancelled_rebuild_leaves_the_previous_replica(
    practice: Practice, lead: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(replica_mod, "REBUILD_BATCH", 5)
    replica = _built(lead)
    before = replica.list_records(RecordFilter())
    items = _items(lead)

    def failing() -> Iterator[ReplicaItem]:
        yield from items[: len(items) // 2]
        raise OSError("disk full")  # a decrypt or a read failing half-way

    seen: list[tuple[int, int]] = []
    with pytest.raises(OSError, match="disk full"):
        replica.rebuild(failing(), AuditHead(999, "a" * 64), total=len(items), progress=lambda d, t: seen.append((d, t)))  # fmt: skip
    assert seen and seen[-1][0] < len(items)  # it got part of the way
    assert replica.list_records(RecordFilter()) == before
    assert replica.last_seq() < 999
    assert not LeadReplica(replica_mod_path(lead), KEY).building_path.exists()
    answers = iter([False])  # the user cancels after the first batch
    with pytest.raises(Cancelled):
        replica.rebuild(
            iter(items), AuditHead(999, "a" * 64), cancelled=lambda: next(answers, True)
        )
    assert replica.list_records(RecordFilter()) == before
    # A complete rebuild reports its progress up to the total and is used at once.
    seen.clear()
    assert replica.rebuild(items, AuditHead(999, "a" * 64), total=len(items), progress=lambda d, t: seen.append((d, t))) == len(items)  # fmt: skip
    assert seen[-1] == (len(items), len(items)) and replica.last_seq() == 999


def replica_mod_path(session: Any) -> Path:
    return Path(session.store.replica(KEY).path)


_KILLED_REBUILD = textwrap.dedent(
    """
    import os, sys
    from pathlib import Path
    from gpshare.store.port import AuditHead, ReplicaItem
    from gpshare.store.sqlcipher import replica as m

    m.REBUILD_BATCH = 10
    def items():
        for n in range(1000):
            if n == 35:
                os._exit(9)  # killed: no clean-up runs
            yield ReplicaItem(f"SG-K{n:03d}", "drsmith", "Dr Smith", "completed", "f", 2,
                              "2026-01-01", "2026-01-01", search_text="killed rebuild")
    m.LeadReplica(Path(sys.argv[1]), bytes(range(32))).rebuild(items(), AuditHead(10**6, "k"))
    """
)


def test_a_rebuild_killed_half_way_leaves_the_old_replica_and_is_cleaned_up(
    practice: Practice, lead: Any
) -> None:
    replica = _built(lead)
    before = replica.list_records(RecordFilter())
    replica.close()
    path = replica_mod_path(lead)
    done = subprocess.run([sys.executable, "-c", _KILLED_REBUILD, str(path)], check=False)
    assert done.returncode == 9
    handle = LeadReplica(path, KEY)
    assert handle.building_path.exists()  # the half-built file is left where the kill left it
    assert handle.list_records(RecordFilter()) == before
    assert handle.count_records(RecordFilter(search="killed")) == 0
    handle.rebuild(_items(lead), replica.last_head())
    assert not handle.building_path.exists()
    assert handle.list_records(RecordFilter()) == before
    # The first handle sees the swapped-in file on its next use.
    assert replica.list_records(RecordFilter()) == before
    handle.close()
    replica.close()


def test_missing_wrong_key_damaged_and_outdated_replicas_say_rebuild(
    practice: Practice, lead: Any
) -> None:
    path = replica_mod_path(lead)
    with pytest.raises(ReplicaUnavailable, match="Rebuild the replica") as missing:
        lead.store.replica(KEY).list_records(RecordFilter())
    assert missing.value.reason == "missing" and "lead-index.db" in str(missing.value)
    _built(lead).close()
    wrong = bytes(32)
    with pytest.raises(ReplicaUnavailable, match="Rebuild the replica") as bad_key:
        lead.store.replica(wrong).count_records(RecordFilter())
    assert bad_key.value.reason == "unreadable"
    assert path.exists()  # kept: the right key still opens it
    assert lead.store.replica(KEY).count_records(RecordFilter()) > 0
    # A rebuild under the new key replaces it.
    rebuilt = lead.store.replica(wrong)
    rebuilt.rebuild(_items(lead), AuditHead(1, "x"))
    assert rebuilt.count_records(RecordFilter()) > 0
    rebuilt.close()
    # Damaged: the pages are not what the key wrote.
    data = bytearray(path.read_bytes())
    data[100:4000] = os.urandom(3900)
    path.write_bytes(bytes(data))
    for name in ("-wal", "-shm"):
        Path(f"{path}{name}").unlink(missing_ok=True)
    with pytest.raises(ReplicaUnavailable) as damaged:
        lead.store.replica(wrong).list_records(RecordFilter(search="Ellie"))
    assert damaged.value.reason == "unreadable"
    path.write_bytes(b"")
    with pytest.raises(ReplicaUnavailable) as empty:
        lead.store.replica(wrong).last_seq()
    assert empty.value.reason == "unreadable"


def test_a_replica_of_another_schema_version_is_deleted_not_migrated(
    practice: Practice, lead: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    _built(lead).close()
    path = replica_mod_path(lead)
    monkeypatch.setattr(replica_mod, "SCHEMA_VERSION", replica_mod.SCHEMA_VERSION + 1)
    with pytest.raises(ReplicaUnavailable, match="another version of gpshare") as outdated:
        lead.store.replica(KEY).open()
    assert outdated.value.reason == "outdated"
    assert not path.exists()
    replica = _built(lead)  # and is rebuilt at the new version
    assert replica.count_records(RecordFilter()) > 0
    replica.delete()
    assert not path.exists()


def test_the_file_holds_no_plaintext(practice: Practice, lead: Any) -> None:
    replica = _built(lead)
    replica.apply(_items(lead, practice.ids[:3]), AuditHead(10**6, "z"))  # something in the WAL too
    assert replica.count_records(RecordFilter(search=MARKER_FAMILY)) > 0
    folder = replica_mod_path(lead).parent
    files = [p for p in folder.iterdir() if p.name.startswith("lead-index.db")]
    assert files
    for file in files:
        raw = file.read_bytes()
        for marker in (MARKER_FAMILY, MARKER_NOTE, "Ellie", "9434765870", "SQLite format 3"):
            assert marker.encode() not in raw, (file.name, marker)
            assert marker.lower().encode() not in raw, (file.name, marker)
    replica.close()


def test_backups_never_contain_the_replica(practice: Practice, vault_env: Any) -> None:
    lead = vault_env.session("lead")
    _built(lead).close()
    lead.close()
    admin = vault_env.session("admin")
    snapshot = admin.backups.backup_now()
    admin.close()
    names = {p.name for p in Path(snapshot).rglob("*")}
    assert names == {"records.db", "vault.json"}
    assert (vault_env.folder / "lead-index.db").exists()


def test_the_engine_replica_implements_the_port_protocol(lead: Any) -> None:
    replica = lead.store.replica(KEY)
    members = {n: v for n, v in vars(Replica).items() if not n.startswith("_")}
    assert members
    for name, member in members.items():
        implemented = inspect.signature(getattr(type(replica), name))
        wanted = inspect.signature(member)
        assert list(implemented.parameters) == list(wanted.parameters), name
        assert str(implemented.return_annotation) == str(wanted.return_annotation), name
    with pytest.raises(ValueError, match="32 bytes"):
        lead.store.replica(b"short")


def test_a_replica_made_before_a_restore_no_longer_matches_the_chain(vault_env: Any) -> None:
    snapshot = backup_between(vault_env)  # 'Before', the backup, then 'After'
    lead = vault_env.session("lead")
    replica = _built(lead)
    made_at = replica.last_head()
    assert "After" in {r.child.given_name for r in replica.list_records(RecordFilter())}
    replica.close()
    lead.close()
    restore(vault_env.folder, snapshot, "admin", PASSWORDS["admin"], vault_env.clock)
    lead = vault_env.session("lead")
    replica = lead.store.replica(KEY)
    # The file is still there (derived data is not restored), but its seal no longer matches
    # the chain at its seq: what the services' catch-up checks before applying.
    assert replica.last_head() == made_at
    with lead.store.read() as tx:
        assert tx.audit_hash_at(made_at.seq) != made_at.digest
    replica.rebuild(_items(lead), lead.store.last_head)
    names = {r.child.given_name for r in replica.list_records(RecordFilter())}
    assert "Before" in names and "After" not in names
    replica.close()
    lead.close()
