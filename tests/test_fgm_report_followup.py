"""R4's follow-up (hazard H-05): a known FGM case whose police report is still `to_be_made`
stays on the lead's Needs action list and the author's record status, due the next working
day, until a `fgm_police_reported` event records the report; and R3's delayed sharing shows
its review date there too."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest

from gpshare.cli import main
from gpshare.errors import ValidationFailed
from tests.conftest import PASSWORDS
from tests.storehelp import raw_connection
from tests.test_form_v2_rules import answers  # the rule files, with changes


def complete(session, data):
    record = session.assessments.start_assessment(answers=data)
    return session.assessments.complete(record.id)[0]


def to_be_made():
    return answers(
        "R4-fgm-known-case-completes",
        fgm_police_report="to_be_made",
        fgm_police_report_at=None,
        fgm_police_reference=None,
    )


def fgm_items(session):
    return [n for n in session.referrals.needs_action() if n.action.startswith("Report the FGM")]


def test_r4_report_to_be_made_is_on_needs_action_until_reported(vault_env):
    # The fixed clock is Wednesday 25 November 2026; discovery on the 24th.
    s = vault_env.session("drsmith")
    record = complete(s, to_be_made())
    state = s.referrals.referral_state(record.id)
    assert state is not None and state.fgm_report_due == date(2026, 11, 26)
    assert state.next_action.startswith(
        "Report the FGM to the police (101) — the law requires it by 24 December 2026"
    )
    assert [n.record_id for n in fgm_items(s)] == [record.id]  # the author's own list
    s.close()

    lead = vault_env.session("lead")
    [item] = fgm_items(lead)
    assert item.record_id == record.id and item.overdue is False
    vault_env.clock.current = datetime(2026, 11, 27, 9, 0, tzinfo=UTC)
    [item] = fgm_items(lead)
    assert item.overdue  # the next working day has passed
    # Sending the CSC letter does not discharge the duty (a letter never replaces it).
    lead.referrals.record_followup(record.id, "sent", details={"method": "secure_email"})
    assert [n.record_id for n in fgm_items(lead)] == [record.id]
    with pytest.raises(ValidationFailed, match="FGM police report is still to be made"):
        lead.referrals.record_followup(record.id, "closed")
    lead.close()

    s = vault_env.session("drsmith")
    with pytest.raises(ValidationFailed, match="101"):
        s.referrals.record_followup(record.id, "fgm_police_reported")  # no reference
    at = datetime(2026, 11, 26, 10, 30, tzinfo=UTC)
    s.referrals.record_followup(
        record.id, "fgm_police_reported", at=at, details={"reference": " 101-2026-0042 "}
    )
    assert fgm_items(s) == []
    event = [e for e in s.referrals.followups(record.id) if e.event == "fgm_police_reported"][0]
    assert event.details == {"reference": "101-2026-0042"} and event.at.startswith("2026-11-26")
    state = s.referrals.referral_state(record.id)
    assert state.fgm_report_due is None and state.next_action == (
        "Chase acknowledgement of the referral"
    )
    with pytest.raises(ValidationFailed, match="no police report of FGM waiting"):
        s.referrals.record_followup(
            record.id, "fgm_police_reported", details={"reference": "again"}
        )
    # The stored state (migration 0006) followed the event in the same transaction.
    stored = (
        raw_connection(s)
        .execute("SELECT action FROM referral_states WHERE record_id = ?", (record.id,))
        .fetchone()
    )
    assert stored[0] == "Chase acknowledgement of the referral"
    s.close()
    lead = vault_env.session("lead")
    audited = [e.details for e in lead.lead.record_access_log(record.id)]
    assert {"event": "fgm_police_reported", "decision": None} in audited
    lead.close()


def test_r4_report_already_made_puts_nothing_on_the_list(vault_env):
    s = vault_env.session("drsmith")
    record = complete(s, answers("R4-fgm-known-case-completes"))
    assert fgm_items(s) == []
    with pytest.raises(ValidationFailed, match="no police report of FGM waiting"):
        s.referrals.record_followup(
            record.id, "fgm_police_reported", details={"reference": "101-1"}
        )
    s.close()


def test_r4_report_recorded_through_the_cli(vault_env, capsys, monkeypatch):
    s = vault_env.session("drsmith")
    record = complete(s, to_be_made())
    s.close()
    monkeypatch.setenv("GPSHARE_PASSWORD", PASSWORDS["drsmith"])
    base = ["followup", record.id, "--vault", str(vault_env.folder), "--user", "drsmith"]
    assert main([*base, "--event", "fgm_police_reported"]) != 0
    assert "101" in capsys.readouterr().err
    assert main([*base, "--event", "fgm_police_reported", "--reference", "101-77"]) == 0
    assert "Recorded 'fgm_police_reported'" in capsys.readouterr().out
    s = vault_env.session("drsmith")
    assert fgm_items(s) == []
    s.close()


def test_r3_delayed_sharing_review_date_is_on_needs_action(vault_env):
    s = vault_env.session("drsmith")
    data = answers("R3-significant-harm-delay-completes")
    assert data.get("sharing_delay_reason")
    record = complete(s, data)
    review = date.fromisoformat(data["review_date"])
    s.close()
    lead = vault_env.session("lead")
    [item] = [n for n in lead.referrals.needs_action() if n.record_id == record.id]
    assert item.action.startswith("Review the decision to delay sharing") and item.due == review
    vault_env.clock.current = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)  # the day after review
    [item] = [n for n in lead.referrals.needs_action() if n.record_id == record.id]
    assert item.overdue
    lead.close()


def test_r4_report_recorded_through_the_follow_up_dialog(vault_env, qtbot):
    from gpshare.ui.record_detail import FollowUpDialog

    s = vault_env.session("drsmith")
    record = complete(s, to_be_made())
    dialog = FollowUpDialog(s, record, s.referrals.referral_state(record.id))
    qtbot.addWidget(dialog)
    assert dialog.reference.isHidden()
    dialog.event_choice.setCurrentIndex(dialog.event_choice.findData("fgm_police_reported"))
    assert not dialog.reference.isHidden() and dialog.method.isHidden()
    dialog.save()
    assert dialog.saved is None and "101" in dialog.error.text()
    dialog.reference.setText("101-2026-0042")
    dialog.save()
    assert dialog.saved is not None and dialog.saved.details == {"reference": "101-2026-0042"}
    assert fgm_items(s) == []
    s.close()


def test_r4_next_action_agrees_in_needs_action_records_table_and_export(vault_env, qtbot, tmp_path):
    """The records table and the CSV export read light records (no answers); they must still
    show R4's police report as the next action, as Needs action and the record view do."""
    import csv

    from PySide6.QtCore import Qt

    from gpshare.ui.records_view import RecordsTableModel

    s = vault_env.session("drsmith")
    record = complete(s, to_be_made())
    s.close()
    lead = vault_env.session("lead")
    [item] = fgm_items(lead)
    expected = lead.referrals.referral_state(record.id).next_action
    assert expected.startswith("Report the FGM to the police (101)")
    assert item.action == expected

    model = RecordsTableModel(lead)
    model.reload()
    [row] = [r for r in range(model.rowCount()) if model.record_id(r) == record.id]
    tip = model.index(row, RecordsTableModel.STATUS).data(Qt.ItemDataRole.ToolTipRole)
    assert f"Next: {expected}, due" in tip

    out = tmp_path / "records.csv"
    lead.lead.export_records_csv(out)
    with out.open(encoding="utf-8-sig", newline="") as f:
        [exported] = [r for r in csv.DictReader(f) if r["record_id"] == record.id]
    assert exported["next_action"] == expected
    lead.close()


def test_a_list_reads_answers_only_for_records_whose_state_needs_them(vault_env, monkeypatch):
    """Light records get R4's answers for the FGM record only: reading every listed
    record's answers doubled the cost of a records page at 100 000 records."""
    from gpshare.filters import RecordFilter
    from gpshare.store.sqlcipher import repositories

    s = vault_env.session("drsmith")
    fgm = complete(s, to_be_made())
    # the same child again, police already told: nothing for the list to read
    other = complete(s, answers("R4-fgm-known-case-completes", prior_concerns_acknowledged=True))
    s.close()
    lead = vault_env.session("lead")
    rows = lead.assessments.list_records(RecordFilter(status="completed"), light=True)
    assert {fgm.id, other.id} <= {r.id for r in rows}

    asked: list[list[str]] = []
    real = repositories.completed_records_light

    def spy(conn, statuses=None, record_ids=None):
        asked.append(sorted(record_ids or []))
        return real(conn, statuses, record_ids)

    monkeypatch.setattr(repositories, "completed_records_light", spy)
    states = lead.referrals.referral_states(rows)
    assert asked == [[fgm.id]]
    assert states[fgm.id].next_action.startswith("Report the FGM to the police (101)")
    assert not (states[other.id].next_action or "").startswith("Report the FGM")
    lead.close()
