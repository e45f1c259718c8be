"""The lead's index is built a page of records at a time (issue #14, "build the lead's index
from a practice server in pages"): search_index.items reads each page with one query per
table (ReadTx.sealed_records, sealed_addenda_of, sealed_reviews_of, sealed_followups) instead
of about eight queries per record, each a round trip on a practice server. The items must be
the same as the per-record path's (item_of), on both engines; on PostgreSQL the number of
queries grows with the pages, not with the records.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import psycopg
import pytest

from gpshare.filters import RecordFilter
from gpshare.services import search_index
from gpshare.store.port import ReplicaItem
from tests.conftest import VaultEnv
from tests.test_v2_search import _practice

# vault_env_v2 runs each test on an embedded vault and on a practice server (tests/conftest.py).
RUN_ON_BOTH_ENGINES = True


@pytest.fixture
def lead(vault_env_v2: VaultEnv) -> Iterator[Any]:
    """A lead's session on a practice with addenda, follow-ups, a review and drafts."""
    _practice(vault_env_v2)
    session = vault_env_v2.session("lead")
    yield session
    session.close()


def _ids(session: Any) -> list[str]:
    with session._read() as tx:
        return [r.id for r in tx.list_records(RecordFilter(), None, 0, light=True)]


def _one_by_one(session: Any, ids: list[str]) -> list[ReplicaItem | None]:
    with session._read() as tx:
        dues = tx.referral_dues(ids)
        return [search_index.item_of(session, tx, rid, dues) for rid in ids]


def test_pages_build_the_same_items_as_one_record_at_a_time(
    lead: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    ids = _ids(lead)
    old = _one_by_one(lead, ids)
    monkeypatch.setattr(search_index, "ITEM_PAGE", 7)  # several pages, the last one short
    new = list(search_index.items(lead, [*ids[:3], "SG-GONE-0000", *ids[3:]]))
    gone = new.pop(3)
    assert isinstance(gone, search_index.RemovedRecord) and gone.record_id == "SG-GONE-0000"
    assert new == old and all(isinstance(i, ReplicaItem) for i in old)
    # What the comparison covers: addenda and reviews opened, referral due dates, answers.
    narratives = "\n".join(i.narrative for i in new if isinstance(i, ReplicaItem))
    assert "Mother phoned" in narratives and "Clear reasoning." in narratives
    assert any(isinstance(i, ReplicaItem) and i.due for i in new)
    assert all(isinstance(i, ReplicaItem) and i.search_text for i in new)


def _index_rows(session: Any) -> tuple[list[tuple[Any, ...]], list[list[str]]]:
    """Every row of lead-index.db's records table, and what narrative and answer words find."""
    conn = search_index._handle(session).connection  # type: ignore[attr-defined]
    rows = [tuple(r) for r in conn.execute("SELECT * FROM records ORDER BY key")]
    found = [
        [str(r[0]) for r in conn.execute(
            "SELECT r.id FROM records_fts f JOIN records r ON r.key = f.rowid "
            "WHERE records_fts MATCH ? ORDER BY r.id", (word,),
        )]
        for word in ("phoned", "reasoning", "Ellie", "bruises")
    ]  # fmt: skip
    return rows, found


def test_the_index_built_from_pages_is_the_one_built_record_by_record(lead: Any) -> None:
    ids = _ids(lead)
    assert lead.search_index.rebuild() == len(ids)  # the page path
    paged = _index_rows(lead)
    with lead._read() as tx:
        head = tx.audit_head()
    old = [i for i in _one_by_one(lead, ids) if i is not None]
    search_index._handle(lead).rebuild(old, head)
    assert _index_rows(lead) == paged
    rows, found = paged
    assert len(rows) == len(ids) and all(found[:2])


def test_server_queries_grow_with_pages_not_with_records(
    lead: Any, vault_engine: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    if vault_engine != "postgres":
        pytest.skip("counts the queries sent to a practice server (psycopg)")
    ids = _ids(lead)
    sent: list[str] = []
    execute = psycopg.Connection.execute

    def counted(self: Any, query: Any, *args: Any, **kwargs: Any) -> Any:
        sent.append(str(query))
        return execute(self, query, *args, **kwargs)

    monkeypatch.setattr(psycopg.Connection, "execute", counted)

    def queries(page: int, record_ids: list[str]) -> int:
        monkeypatch.setattr(search_index, "ITEM_PAGE", page)
        sent.clear()
        assert len(list(search_index.items(lead, record_ids))) == len(record_ids)
        return len(sent)

    few, every = queries(len(ids), ids[:4]), queries(len(ids), ids)
    four_pages = queries(-(-len(ids) // 4), ids)
    sent.clear()
    _one_by_one(lead, ids)
    per_record = len(sent)
    assert len(ids) > 30
    # One page: a query per table (and the wraps of each), however many records it holds.
    assert every <= few + 3 and every < len(ids) / 2
    assert four_pages <= 4 * every
    assert per_record > 3 * len(ids) > 6 * every
