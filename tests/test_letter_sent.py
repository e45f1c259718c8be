"""The clinician records that their letter was sent; the record and the lead's list follow."""

from __future__ import annotations

import json

import pytest

from gpshare.errors import PermissionDenied
from gpshare.ui import dialogs
from tests.conftest import PASSWORDS, SCENARIOS


def completed(session, name="01-bruised-toddler-parents-agree"):
    data = json.loads((SCENARIOS / f"{name}.json").read_text(encoding="utf-8"))
    draft = session.assessments.start_assessment(answers=data["answers"])
    record, _ = session.assessments.complete(draft.id)
    return record


def test_a_clinician_records_their_letter_as_sent_and_needs_action_follows(smith, vault_env):
    record = completed(smith)
    state = smith.referrals.referral_state(record.id)
    assert state is not None and state.sent_at is None
    due = [n.action for n in smith.referrals.needs_action() if n.record_id == record.id]
    assert due == ["Send the referral letter"]
    smith.referrals.record_followup(record.id, "sent", details={"method": "secure_email"})
    state = smith.referrals.referral_state(record.id)
    assert state.sent_at is not None and state.next_action != "Send the referral letter"
    smith.close()
    lead = vault_env.session("lead")
    try:
        actions = [n for n in lead.referrals.needs_action() if n.record_id == record.id]
        assert all(n.action != "Send the referral letter" for n in actions)
        assert lead.referrals.referral_state(record.id).sent_at is not None
    finally:
        lead.close()


def test_another_clinician_cannot_record_it(smith, vault_env):
    record = completed(smith)
    smith.close()
    jones = vault_env.session("drjones")
    try:
        with pytest.raises(PermissionDenied):
            jones.referrals.record_followup(record.id, "sent")
    finally:
        jones.close()


def test_record_view_offers_record_as_sent_then_shows_it(qtbot, smith):
    from gpshare.ui.my_records import RecordView
    from gpshare.ui.record_detail import FollowUpDialog

    dialogs.set_non_interactive(True)
    record = completed(smith)
    smith.letters.generate_letter(record.id, PASSWORDS["drsmith"])
    view = RecordView(smith, smith.assessments.get_record(record.id))
    qtbot.addWidget(view)
    assert "Not recorded as sent" in view.letter_status.text()
    assert not view.sent_button.isHidden()
    dialog = FollowUpDialog(smith, record, None, view, events=("sent",))
    qtbot.addWidget(dialog)
    assert dialog.event_choice.count() == 1  # a clinician is offered only "sent" here
    dialog.save()
    assert dialog.saved is not None and dialog.saved.event == "sent"
    view.show_letter_status()
    assert view.letter_status.text().startswith("Sent ")
    assert view.sent_button.isHidden()
    dialogs.reset()
