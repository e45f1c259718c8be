"""The lead works from the search replica on vault version 2 (issue #13 step 6, services half;
docs/vault-v2.md §1.1, §1.2; DESIGN §10.1 class L, §10.2 "Search").

The same practice is written into a v1 and a v2 vault; the lead's lists, filters, paging,
search and dashboard must give the same answers on both, and on v2 search also finds
narrative words (addenda, follow-up notes, reviews) that v1 never indexed. Then the replica's
life: catch-up after others' writes, an addendum and a settings change; a rebuild after a
restore and after the file is deleted; clinicians search their own records in memory and
cannot reach the replica; lists read no N once the replica is current.
"""

from __future__ import annotations

from datetime import date, timedelta
from pathlib import Path
from typing import Any

import pytest

from gpshare.errors import PermissionDenied, ReplicaUnavailable
from gpshare.filters import RecordFilter
from gpshare.records import Record
from gpshare.services import restore
from gpshare.services.search_index import IndexStatus, text_matches, words
from tests.conftest import PASSWORDS, VaultEnv, make_vault, make_vault_v2
from tests.test_replica import MARKER_FAMILY, MARKER_NOTE, _seed
from tests.test_replica import _filters as replica_filters
from tests.test_v2_records import (  # noqa: F401 - unwraps is a fixture
    ELLIE,
    NARRATIVE_WORD,
    completed,
    unwraps,
)

REPLICA = "lead-index.db"
# Each test that uses vault_env_v2 runs on an embedded vault and on a practice server, where
# lead-index.db lives in the workstation folder (tests/test_pg_replica.py: two workstations).
RUN_ON_BOTH_ENGINES = True
# Ellie's answers for a second record (of the same child, or with another name): earlier
# records of the child must be acknowledged before completing.
AGAIN = {**ELLIE, "prior_concerns_acknowledged": True}


def _shown(records: list[Record]) -> list[tuple[Any, ...]]:
    """What a list row shows, without the record id (ids differ between the two vaults)."""
    return [
        (r.created, r.status, r.child.display_name, r.child.nhs_number, r.pathway, r.clinician)
        for r in records
    ]


def _filters(practice: Any) -> list[RecordFilter]:
    """test_replica's filters (every RecordFilter field) but record ids, which differ between
    the two vaults."""
    return [f for f in replica_filters(practice) if f.record_ids is None]


def _practice(env: VaultEnv) -> Any:
    practice = _seed(env)
    # v1 indexes a draft's words at its first save, not when it is started: save each once.
    s = env.session("drsmith")
    for record in s.assessments.list_records(RecordFilter(status="draft")):
        env.clock.advance(60)  # one save a minute: lists order by `updated`
        full = s.assessments.get_record(record.id, audit_view=False)
        s.assessments.save_draft(record.id, dict(full.answers), None)
    s.close()
    return practice


@pytest.fixture
def both(
    tmp_path: Path, clock: Any, server_dsn: str | None
) -> tuple[VaultEnv, VaultEnv, list[RecordFilter]]:
    """The same practice in a v1 vault and a v2 one (embedded, or on a practice server)."""
    v1 = make_vault(tmp_path / "v1", clock)
    v2 = make_vault_v2(tmp_path / "v2", clock, server_dsn)
    filters = _filters(_practice(v1))
    _practice(v2)
    return v1, v2, filters


def test_v2_lead_lists_search_paging_and_dashboard_equal_v1(
    both: tuple[VaultEnv, VaultEnv, list[RecordFilter]],
) -> None:
    v1_env, v2_env, filters = both
    v1, v2 = v1_env.session("lead"), v2_env.session("lead")
    try:
        assert v2.search_index.status().state == "missing"
        before = [_shown(v2.assessments.list_records(f)) for f in filters]  # summary path
        assert v2.search_index.prepare() > 30
        assert v2.search_index.status() == IndexStatus("current")
        checked = 0
        for flt in filters:
            expected = v1.assessments.list_records(flt, light=True)
            assert _shown(v2.assessments.list_records(flt)) == _shown(expected), flt
            assert v2.assessments.count_records(flt) == v1.assessments.count_records(flt), flt
            for limit, offset in ((5, 0), (5, 5), (7, 14)):
                page = v1.assessments.list_records(flt, limit, offset, light=True)
                assert _shown(v2.assessments.list_records(flt, limit, offset)) == _shown(page)
            checked += len(expected)
        assert checked > 100
        # Without the replica, the lead's search found names only: narrative words, not.
        narrative = filters.index(RecordFilter(search="grip pattern"))
        assert before[narrative] == [] and checked
        for span in ((None, None), ("2026-11-25", "2026-12-05")):
            a, b = v1.lead.dashboard(*span), v2.lead.dashboard(*span)
            assert (a.by_pathway, a.by_consent, a.completed) == (
                b.by_pathway,
                b.by_consent,
                b.completed,
            )
        # v1 never indexed addenda or review comments: the replica does.
        assert v1.assessments.count_records(RecordFilter(search=MARKER_NOTE)) == 0
        found = v2.assessments.list_records(RecordFilter(search=MARKER_NOTE))
        assert len(found) == 1 and v2.assessments.addenda(found[0].id)
        assert v2.assessments.count_records(RecordFilter(search="clear reasoning")) == 1
    finally:
        v1.close()
        v2.close()


def test_lists_read_no_narrative_once_the_replica_is_current(
    vault_env_v2: VaultEnv,
    unwraps: list[tuple[str, str]],  # noqa: F811 - the fixture imported above
) -> None:
    rid = completed(vault_env_v2, "drsmith", ELLIE)
    lead = vault_env_v2.session("lead")
    try:
        lead.search_index.prepare()
        unwraps.clear()
        assert [r.id for r in lead.assessments.list_records(RecordFilter(search=NARRATIVE_WORD))] == [rid]  # fmt: skip
        assert (
            lead.views.records_page(RecordFilter(status="completed"), 50, 0, count=True).total == 1
        )
        assert lead.lead.dashboard().completed == 1
        assert unwraps == []
    finally:
        lead.close()
    # The catch-up is what opens N (on the lead's machine): one new record, its answers.
    other = completed(vault_env_v2, "drjones", {**AGAIN, "child_given_name": "Tilly"})
    lead = vault_env_v2.session("lead")
    try:
        unwraps.clear()
        assert lead.assessments.count_records(RecordFilter(search="Tilly")) == 1
        assert ("answers", other) in unwraps and all(oid == other for _k, oid in unwraps)
        unwraps.clear()
        assert lead.assessments.count_records(RecordFilter(search="Tilly")) == 1
        assert unwraps == []
    finally:
        lead.close()


def test_catch_up_after_others_writes_an_addendum_and_a_settings_change(
    vault_env_v2: VaultEnv,
) -> None:
    env = vault_env_v2
    rid = completed(env, "drsmith", ELLIE)
    lead = env.session("lead")
    lead.search_index.prepare()
    lead.close()
    # Another user's record, an addendum with a new word, a follow-up note.
    jones = env.session("drjones")
    new = jones.assessments.complete(
        jones.assessments.start_assessment(answers={**AGAIN, "child_family_name": "Latecomer"}).id
    )[0].id
    jones.close()
    smith = env.session("drsmith")
    smith.assessments.add_addendum(rid, "Health visitor mentions a xylophonist uncle.")
    smith.referrals.record_followup(rid, "sent", note="Sent to the quokkaville MASH.")
    smith.close()
    lead = env.session("lead")
    try:
        assert lead.search_index.status().state == "behind"
        assert lead.search_index.catch_up() >= 2
        search = lead.assessments.list_records
        assert [r.id for r in search(RecordFilter(search="Latecomer"))] == [new]
        assert [r.id for r in search(RecordFilter(search="xylophonist"))] == [rid]
        assert [r.id for r in search(RecordFilter(search="quokkaville"))] == [rid]
        # A settings change moves due dates: every open referral's item is sent again.
        with lead._read() as tx:
            (due, _action) = tx.referral_dues([rid])[rid]
        day_after = (date.fromisoformat(due) + timedelta(days=1)).isoformat()
        assert rid in {r.id for r in search(RecordFilter(overdue_on=day_after))}
        closed = [(date.fromisoformat(due) + timedelta(days=n)).isoformat() for n in range(-3, 9)]
        lead.close()
        admin = env.session("admin")
        admin.practice.update_settings({"local_closure_days": ", ".join(closed)})
        admin.close()
        lead = env.session("lead")
        search = lead.assessments.list_records
        with lead._read() as tx:
            (moved, _action) = tx.referral_dues([rid])[rid]
        assert moved > day_after  # the closure days pushed it past the day we ask about
        assert lead.search_index.status().state == "behind"
        assert lead.search_index.catch_up() >= 1
        assert rid not in {r.id for r in search(RecordFilter(overdue_on=day_after))}
        assert lead.search_index.catch_up() == 0  # nothing new
    finally:
        lead.close()


def test_rebuilt_after_the_file_is_deleted_and_after_a_restore(
    vault_env_v2: VaultEnv, vault_engine: str
) -> None:
    if vault_engine == "postgres":
        pytest.skip(
            "an embedded vault's backup and restore; a server restore (an epoch) and the "
            "rebuild it forces: tests/test_pg_replica.py"
        )
    env = vault_env_v2
    before = completed(env, "drsmith", {**ELLIE, "child_given_name": "Before"})
    admin = env.session("admin")
    snapshot = admin.backups.backup_now()
    admin.close()
    env.clock.advance(60)
    after = completed(env, "drsmith", {**AGAIN, "child_given_name": "After"})
    lead = env.session("lead")
    lead.search_index.prepare()
    assert {r.id for r in lead.assessments.list_records(RecordFilter(search=NARRATIVE_WORD))} == {
        before,
        after,
    }
    lead.close()
    (env.folder / REPLICA).unlink()
    lead = env.session("lead")
    assert lead.search_index.status().state == "missing"
    # While it is missing the list still answers (names from the summaries)…
    assert [r.id for r in lead.assessments.list_records(RecordFilter(search="After"))] == [after]
    with pytest.raises(ReplicaUnavailable):
        lead.search_index.catch_up()
    seen: list[tuple[int, int]] = []
    assert lead.search_index.prepare(progress=lambda d, t: seen.append((d, t))) == 2
    assert seen[-1] == (2, 2) and (env.folder / REPLICA).exists()
    lead.close()
    restore(env.folder, snapshot, "admin", PASSWORDS["admin"], env.clock)
    lead = env.session("lead")
    try:
        # Made before the restore: its seal is not the chain's any more, so it is not used.
        assert lead.search_index.status().state == "missing"
        assert lead.assessments.list_records(RecordFilter(search="After")) == []
        found = lead.assessments.list_records(RecordFilter(search="Before"))
        assert [r.id for r in found] == [before]
        lead.search_index.prepare()
        assert lead.search_index.status().state == "current"
        assert [
            r.id for r in lead.assessments.list_records(RecordFilter(search=NARRATIVE_WORD))
        ] == [before]
    finally:
        lead.close()


def test_clinicians_search_their_own_records_in_memory_and_get_no_replica(
    vault_env_v2: VaultEnv,
) -> None:
    env = vault_env_v2
    mine = completed(env, "drsmith", ELLIE)
    completed(env, "drjones", {**AGAIN, "child_family_name": MARKER_FAMILY})
    smith = env.session("drsmith")
    try:
        with pytest.raises(PermissionDenied):
            smith.search_index.status()
        with pytest.raises(PermissionDenied):
            smith.search_index.rebuild()
        search = smith.assessments.list_records
        assert [r.id for r in search(RecordFilter(search=NARRATIVE_WORD))] == [mine]
        assert search(RecordFilter(search=MARKER_FAMILY)) == []  # a colleague's record
        smith.assessments.add_addendum(mine, "Seen again with the ptarmigan toy.")
        assert [r.id for r in search(RecordFilter(search="ptarmigan"))] == [mine]
        assert smith.assessments.count_records(RecordFilter(search="ptarm")) == 1
        assert smith._own_index  # held in memory…
    finally:
        smith.close()
    assert not smith._own_index  # …and dropped on lock
    assert not (env.folder / REPLICA).exists()


def test_a_remembered_login_lead_has_no_replica_key(vault_env_v2: VaultEnv) -> None:
    lead = vault_env_v2.session("lead")
    try:
        assert lead.keys is not None
        lead.keys._lead_keys.clear()  # what a remembered login's session holds: no lead key
        status = lead.search_index.status()
        assert status.state == "no_key" and "password" in status.message()
        assert lead.assessments.list_records(RecordFilter()) == []
        assert not (vault_env_v2.folder / REPLICA).exists()
    finally:
        lead.close()


def test_the_in_memory_match_follows_records_fts() -> None:
    assert words("Siân O'Brien-Nuñez, 12b") == ["sian", "o", "brien", "nunez", "12b"]
    columns = [words("Grip-pattern bruising on the upper arm"), words("Health visitor")]
    assert text_matches(columns, "grip pattern")
    assert text_matches(columns, "grip-pat")  # a phrase, its last word a prefix
    assert text_matches(columns, "BRUIS health")  # terms may be in different columns
    assert not text_matches(columns, "pattern grip arm2")
    assert not text_matches(columns, "upper visitor-health")
    assert text_matches(columns, '" *')  # no words: no constraint


def test_replica_files_are_not_left_in_the_repository_tree(tmp_path: Path) -> None:
    # lead-index.db lives in the vault folder only (never a cache elsewhere).
    assert not list(Path(__file__).parent.rglob(REPLICA))


def test_the_lead_data_key_is_reached_only_through_the_lead_key() -> None:
    from gpshare.store.keys import ClinicalKey, KeyUsageError
    from gpshare.store.keys.binding import Label, derive
    from gpshare.store.keys.lead import LeadKey

    first, second = LeadKey.generate_generation(1), LeadKey.generate_generation(2)
    key = first.data_key("vault-a")
    assert len(key) == 32 and key == LeadKey(first.reveal(), 1).data_key("vault-a")
    assert key not in (second.data_key("vault-a"), first.data_key("vault-b"))
    assert key != first.encryption("vault-a").private_bytes_raw()
    with pytest.raises(KeyUsageError):
        derive(ClinicalKey.generate_generation(1), Label.LEAD_DATA, "vault-a")


def test_the_demo_is_version_2_and_its_lead_finds_a_record_by_a_narrative_word(
    tmp_path: Path, clock: Any
) -> None:
    from gpshare.demo import DEMO_USERS, create_demo_vault
    from gpshare.services import open_session
    from gpshare.store.crypto import CHEAP_TEST_KDF

    info = create_demo_vault(tmp_path / "demo", clock, CHEAP_TEST_KDF)
    assert info["format_version"] == 2 and info["breakglass_code"]
    lead = next(u for u in DEMO_USERS if u["role"] == "lead")
    session = open_session(tmp_path / "demo", str(lead["username"]), str(lead["password"]), clock)
    try:
        assert session.keys is not None
        session.search_index.prepare()
        found = session.assessments.list_records(RecordFilter(search="scald forearm"))
        assert len(found) == 1 and found[0].status == "completed"
        assert session.assessments.count_records(RecordFilter(search="inhaler")) == 1
        assert session.lead.dashboard().completed == 2
    finally:
        session.close()


def test_a_leads_cli_list_and_search_catch_the_index_up_first(
    vault_env_v2: VaultEnv, capsys, monkeypatch
) -> None:
    """`gpshare records [--search]` run by a lead brings the index up to date (here: builds
    it, as it is missing) before reading it, so a narrative word is found at once; a
    clinician's command never makes one."""
    import json

    from gpshare.cli import main

    env = vault_env_v2
    record_id = completed(env, "drsmith", ELLIE)
    base = ["records", "--vault", str(env.folder), "--json"]
    monkeypatch.setenv("GPSHARE_PASSWORD", PASSWORDS["drsmith"])
    assert main([*base, "--user", "drsmith", "--search", "Ellie"]) == 0
    assert [r["record_id"] for r in json.loads(capsys.readouterr().out)] == [record_id]
    assert not (env.folder / REPLICA).exists()
    monkeypatch.setenv("GPSHARE_PASSWORD", PASSWORDS["lead"])
    assert main([*base, "--user", "lead", "--search", NARRATIVE_WORD]) == 0
    out, err = capsys.readouterr()
    assert [r["record_id"] for r in json.loads(out)] == [record_id], err
    assert (env.folder / REPLICA).exists()
    # Behind: another record written since; the search catches up and finds both.
    second = completed(env, "drjones", {**AGAIN, "child_given_name": "Second"})
    assert main([*base, "--user", "lead", "--search", NARRATIVE_WORD]) == 0
    assert {r["record_id"] for r in json.loads(capsys.readouterr().out)} == {record_id, second}
