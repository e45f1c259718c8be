"""Rows against events and workstation witnesses on the embedded engine (vault version 2;
DESIGN §10.3; gpshare/services/_integrity.py). The same checks run on PostgreSQL in
tests/test_pg_integrity.py: here the attacker holds the database key and edits the SQLCipher
file directly (triggers dropped), which the chain alone does not notice."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest

from gpshare.cli import main
from gpshare.filters import AuditFilter
from gpshare.records import AuditEvent
from gpshare.services import _integrity
from gpshare.store.sealed_rows import SealedRowState
from tests.conftest import PASSWORDS, VaultEnv
from tests.storehelp import raw_connection
from tests.test_v2_records import ELLIE, scenario

ADDENDUM = "Seen again at the nursery with her aunt."


@pytest.fixture
def practice(vault_env_v2: VaultEnv) -> Iterator[dict[str, Any]]:
    """Two completed sealed records of drsmith, one with an addendum, then the lead's session."""
    smith = vault_env_v2.session("drsmith")
    try:
        ids = []
        for answers in (ELLIE, {**scenario("03"), "nhs_number": "9990000018"}):
            record = smith.assessments.start_assessment(answers=answers)
            ids.append(smith.assessments.complete(record.id)[0].id)
        smith.assessments.add_addendum(ids[0], ADDENDUM)
    finally:
        smith.close()
    lead = vault_env_v2.session("lead")
    yield {"lead": lead, "ids": ids}
    if lead.is_open:
        lead.close()


def _tamper(lead: Any, *statements: str) -> None:
    """The attacker: the database key, the triggers dropped, direct SQL."""
    conn = raw_connection(lead)
    triggers = [r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='trigger'")]
    for name in triggers:
        conn.execute(f'DROP TRIGGER "{name}"')
    for statement in statements:
        conn.execute(statement)
    conn.commit()


def test_an_untouched_vault_verifies_and_the_verify_is_audited(practice: dict[str, Any]) -> None:
    lead = practice["lead"]
    report = lead.audit_trail.verify_integrity()
    assert report.ok, report.summary()
    assert report.rows == 3  # two records and one addendum
    assert report.witnesses >= 1  # the lead's unlock carried this computer's earlier head
    [event] = lead.audit_trail.audit_log(AuditFilter(action="integrity_verified"))
    assert event.details["ok"] is True and event.details["rows"] == 3


def test_a_sealed_write_names_its_row_in_the_one_shape(practice: dict[str, Any]) -> None:
    lead, (first, _second) = practice["lead"], practice["ids"]
    events = lead.audit_trail.audit_log(AuditFilter(record_id=first))
    [added] = [e for e in events if e.action == "addendum_added"]
    [row] = added.details["sealed"]["rows"]
    assert row["table"] == "addenda" and row["version"] == 0
    assert set(row["sha256"]) == {"body_ct"} and set(row["commitment"]) == {"body_ct"}


def _findings(lead: Any) -> list[_integrity.Finding]:
    report = lead.audit_trail.verify_integrity()
    assert report.chain.ok  # the chain alone sees nothing: these are the row checks' finds
    return report.findings


def test_a_swapped_ciphertext_is_named_with_its_event(practice: dict[str, Any]) -> None:
    lead, (first, second) = practice["lead"], practice["ids"]
    _tamper(
        lead,
        f"UPDATE records SET answers_ct = (SELECT answers_ct FROM records WHERE id = '{second}')"
        f" WHERE id = '{first}'",
    )
    [finding] = _findings(lead)
    [completed] = lead.audit_trail.audit_log(
        AuditFilter(record_id=first, action="record_completed")
    )
    assert (finding.check, finding.table, finding.row) == ("rows", "records", first)
    assert finding.seq == completed.seq
    assert f"ciphertext of answers_ct differs from what event {completed.seq}" in str(finding)


def test_a_deleted_row_and_a_row_without_an_event_are_named(practice: dict[str, Any]) -> None:
    lead = practice["lead"]
    object_id = raw_connection(lead).execute("SELECT object_id FROM addenda").fetchone()[0]
    _tamper(
        lead,
        "INSERT INTO addenda (record_id, author, created, body, object_id, body_ct, body_commit)"
        " SELECT record_id, author, created, body, 'planted', body_ct, body_commit FROM addenda",
        f"DELETE FROM addenda WHERE object_id = '{object_id}'",
    )
    found = {(f.table, f.row): f for f in _findings(lead)}
    assert set(found) == {("addenda", object_id), ("addenda", "planted")}
    assert "missing from the database" in str(found[("addenda", object_id)])
    assert found[("addenda", object_id)].seq is not None
    assert "no audit event names it" in str(found[("addenda", "planted")])
    assert found[("addenda", "planted")].seq is None


def test_a_record_rolled_back_to_an_earlier_version_is_named(practice: dict[str, Any]) -> None:
    lead, (first, _second) = practice["lead"], practice["ids"]
    _tamper(lead, f"UPDATE records SET version = version - 1 WHERE id = '{first}'")
    [finding] = _findings(lead)
    assert finding.row == first and "stored at version" in str(finding)


# ----- witnesses (pure: the fork itself is served by a real server in test_pg_integrity) -------


def _event(seq: int, action: str, **details: Any) -> AuditEvent:
    return AuditEvent(seq, "2026-12-03T09:00:00+00:00", "drsmith", action, None, details)


def test_a_witness_off_the_chain_is_named_unless_a_later_epoch_restore_explains_it() -> None:
    chain = {1: "a" * 64, 2: "b" * 64}
    on = {"seq": 1, "hash": "a" * 64, "epoch": 0}
    off = {"seq": 2, "hash": "f" * 64, "epoch": 0}
    events = [_event(3, "unlock", witness=on), _event(4, "unlock", witness=off)]
    findings, checked = _integrity.witness_findings(events, chain.get)
    assert checked == 2
    [finding] = findings
    assert finding.check == "witness" and finding.seq == 4
    assert "event 2 sealed ffffffffffff" in str(finding)
    restored = [_event(3, "backup_restored", epoch=1), _event(4, "unlock", witness=off)]
    assert _integrity.witness_findings(restored, chain.get) == ([], 1)
    stale = [
        _event(3, "backup_restored", epoch=1),
        _event(4, "unlock", witness={**off, "epoch": 1}),
    ]
    assert len(_integrity.witness_findings(stale, chain.get)[0]) == 1


def test_row_findings_compare_each_column_with_the_newest_event_that_wrote_it() -> None:
    first = {
        "table": "records",
        "id": "r",
        "version": 1,
        "sha256": {"answers_ct": "1", "summary_ct": "s"},
    }
    second = {"table": "records", "id": "r", "version": 2, "sha256": {"answers_ct": "2"}}
    events = [
        _event(1, "record_created", sealed={"rows": [first]}),
        _event(2, "draft_saved", sealed={"rows": [second]}),
        _event(3, "unlock", sealed={"record": "an older shape names nothing"}),
    ]
    stored = SealedRowState("records", "r", 2, {"answers_ct": "2", "summary_ct": "s"})
    assert _integrity.row_findings(events, [stored]) == ([], 1)
    bad = SealedRowState("records", "r", 2, {"answers_ct": "2", "summary_ct": "x"}, mac_ok=False)
    findings, _ = _integrity.row_findings(events, [bad])
    assert [f.seq for f in findings] == [2, 1]  # the MAC at the newest write; the summary at 1
    assert "M row MAC does not verify" in str(findings[0])


def test_the_cli_names_each_finding_and_fails(
    practice: dict[str, Any],
    vault_env_v2: VaultEnv,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    lead, (first, _second) = practice["lead"], practice["ids"]
    argv = ["audit", "verify", "--rows", "--vault", str(vault_env_v2.folder), "--user", "lead"]
    lead.close()
    monkeypatch.setenv("GPSHARE_PASSWORD", PASSWORDS["lead"])
    assert main(argv) == 0
    assert "Every sealed row matches its audit event (3 rows)" in capsys.readouterr().out
    lead = vault_env_v2.session("lead")
    _tamper(lead, f"UPDATE records SET version = version + 1 WHERE id = '{first}'")
    lead.close()
    assert main([*argv, "--json"]) == 1
    out = json.loads(capsys.readouterr().out)
    assert out["chain_ok"] and not out["ok"]
    assert [(f["check"], f["table"], f["row"]) for f in out["findings"]] == [
        ("rows", "records", first)
    ]
