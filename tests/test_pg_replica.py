"""The lead's search index on a practice server's workstations (issue #14; DESIGN §10.2
"Search"): `lead-index.db` is SQLCipher in each workstation folder under the lead data key,
caught up from the server's audit chain by sequence number, with the events and the sealed
rows read from PostgreSQL through the port. Against a throwaway PostgreSQL (tests/pg.py): two
workstations of one server, each with its own index; a server restore (an epoch) forces a
rebuild; neither the index file nor the server holds the words the lead searches.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from gpshare.filters import RecordFilter
from gpshare.services import open_session
from gpshare.services.vaults import join_server
from gpshare.store.postgres.header import ServerVault
from tests.conftest import PASSWORDS, VaultEnv
from tests.pg import Cluster, dump_holds, pg_dump
from tests.test_v2_records import ELLIE, NARRATIVE_WORD, completed

REPLICA = "lead-index.db"
# Words that appear nowhere but in what drsmith writes on workstation A.
FAMILY = "Quillfeather"
ADDENDUM_WORD = "xylophonist"
AGAIN = {**ELLIE, "prior_concerns_acknowledged": True}

pytestmark = pytest.mark.parametrize("vault_engine", ["postgres"], indirect=True)


class Workstation:
    """One computer of the practice: its own folder (vault.json naming the server)."""

    def __init__(self, env: VaultEnv, folder: Path) -> None:
        self.env, self.folder = env, folder

    def session(self, username: str):  # type: ignore[no-untyped-def]
        return open_session(self.folder, username, PASSWORDS[username], self.env.clock)

    @property
    def index(self) -> Path:
        return self.folder / REPLICA


def _dsn(env: VaultEnv) -> str:
    return str(ServerVault.read_header(env.folder)["dsn"])


@pytest.fixture
def pcs(vault_env_v2: VaultEnv, tmp_path: Path) -> Iterator[tuple[Workstation, Workstation]]:
    """Workstation A (where the practice was created) and B (joined afterwards)."""
    b = tmp_path / "room-3-pc"
    join_server(b, _dsn(vault_env_v2))
    yield Workstation(vault_env_v2, vault_env_v2.folder), Workstation(vault_env_v2, b)


def _found(session, text: str) -> list[str]:  # type: ignore[no-untyped-def]
    return [r.id for r in session.assessments.list_records(RecordFilter(search=text))]


def test_records_completed_on_one_workstation_appear_in_the_leads_search_on_another(
    pcs: tuple[Workstation, Workstation],
) -> None:
    a, b = pcs
    first = completed(a.env, "drsmith", ELLIE)  # written from workstation A
    lead_b = b.session("lead")
    try:
        assert lead_b.search_index.status().state == "missing"
        assert lead_b.search_index.prepare() == 1  # built from the server's sealed rows
        assert lead_b.search_index.status().state == "current"
        assert _found(lead_b, NARRATIVE_WORD) == [first]  # a narrative word: the index
    finally:
        lead_b.close()
    assert b.index.exists() and not a.index.exists()  # on B's computer only
    smith_a = a.session("drsmith")
    try:
        second = smith_a.assessments.complete(
            smith_a.assessments.start_assessment(answers={**AGAIN, "child_family_name": FAMILY}).id
        )[0].id
        smith_a.assessments.add_addendum(first, f"Seen by a {ADDENDUM_WORD} health visitor.")
    finally:
        smith_a.close()
    lead_b = b.session("lead")
    try:
        status = lead_b.search_index.status()
        assert status.state == "behind" and status.message()
        assert lead_b.search_index.catch_up() == 2  # the two records the events named
        assert _found(lead_b, FAMILY) == [second]
        assert _found(lead_b, ADDENDUM_WORD) == [first]
        assert lead_b.assessments.count_records(RecordFilter(search=NARRATIVE_WORD)) == 2
        # Class C filters and the dashboard's counts come from the index too.
        assert lead_b.assessments.count_records(RecordFilter(pathway=_pathway(lead_b, first))) == 2
        assert lead_b.lead.dashboard().completed == 2
        assert lead_b.search_index.catch_up() == 0
    finally:
        lead_b.close()
    # The lead on workstation A has an index of their own, built there.
    lead_a = a.session("lead")
    try:
        assert lead_a.search_index.status().state == "missing"
        assert lead_a.search_index.prepare() == 2
        assert _found(lead_a, ADDENDUM_WORD) == [first]
    finally:
        lead_a.close()
    assert a.index.exists() and a.index.read_bytes() != b.index.read_bytes()


def _pathway(session, record_id: str) -> str:  # type: ignore[no-untyped-def]
    pathway = session.assessments.get_record(record_id, audit_view=False).pathway
    assert pathway
    return str(pathway)


def test_a_server_restore_forces_a_rebuild_of_each_workstations_index(
    pcs: tuple[Workstation, Workstation], pg_cluster: Cluster, tmp_path: Path
) -> None:
    a, b = pcs
    before = completed(a.env, "drsmith", {**ELLIE, "child_given_name": "Before"})
    admin = a.session("admin")
    try:
        admin.server.backup(tmp_path / "practice.dump", bindir=pg_cluster.bin)
    finally:
        admin.close()
    a.env.clock.advance(60)
    after = completed(a.env, "drsmith", {**AGAIN, "child_given_name": "After"})
    lead_b = b.session("lead")
    try:
        lead_b.search_index.prepare()
        assert set(_found(lead_b, NARRATIVE_WORD)) == {before, after}
    finally:
        lead_b.close()
    admin = a.session("admin")
    try:
        assert (
            admin.server.restore(tmp_path / "practice.dump", bindir=pg_cluster.bin)["events_lost"]
            > 0
        )
    finally:
        admin.close()
    lead_b = b.session("lead")
    try:
        # Its seal is not the restored chain's at its seq: not used, not caught up onto.
        assert lead_b.search_index.status().state == "missing"
        assert _found(lead_b, "After") == []
        assert _found(lead_b, "Before") == [before]  # the summary path meanwhile
        assert lead_b.search_index.prepare() == 1
        assert lead_b.search_index.status().state == "current"
        assert _found(lead_b, NARRATIVE_WORD) == [before]
    finally:
        lead_b.close()


def test_neither_the_index_file_nor_the_server_holds_the_searched_words(
    pcs: tuple[Workstation, Workstation], pg_cluster: Cluster
) -> None:
    a, b = pcs
    rid = completed(a.env, "drsmith", {**ELLIE, "child_family_name": FAMILY})
    lead_b = b.session("lead")
    try:
        lead_b.search_index.prepare()
        lead_b.assessments.add_addendum(rid, f"The {ADDENDUM_WORD} uncle visited.")
        assert lead_b.search_index.catch_up() == 1  # something in the index's WAL too
        assert _found(lead_b, ADDENDUM_WORD) == _found(lead_b, FAMILY) == [rid]
    finally:
        lead_b.close()
    files = [p for p in b.folder.iterdir() if p.name.startswith(REPLICA)]
    assert b.index in files
    markers = (FAMILY, ADDENDUM_WORD, NARRATIVE_WORD, ELLIE["child_given_name"], ELLIE["nhs_number"].replace(" ", ""))  # fmt: skip
    for file in files:
        raw = file.read_bytes()
        assert b"SQLite format 3" not in raw, file.name  # encrypted from the first page
        for marker in markers:
            assert marker.encode() not in raw and marker.lower().encode() not in raw, (
                file.name,
                marker,
            )
    # The server keeps ciphertext and blind tokens only: no word and no prefix of one.
    dump = pg_dump(pg_cluster, _dsn(a.env))
    for marker in markers:
        assert not dump_holds(dump, marker), marker
    assert not dump_holds(dump, ADDENDUM_WORD[:5])
