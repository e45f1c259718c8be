"""Words people read: audit details without Python reprs or ISO stamps."""

from __future__ import annotations

from gpshare.ui.record_detail import audit_details


def test_audit_details_are_human_readable():
    text = audit_details(
        {
            "fields": ["nhs_number", "postcode"],
            "at": "2026-12-02T14:05:00+00:00",
            "review_date": "2026-12-09",
            "remembered": True,
            "counts": {"records": 3},
        }
    )
    assert "[" not in text and "{" not in text and "'" not in text
    assert "2 Dec 2026 14:05" in text
    assert "9 Dec 2026" in text
    assert "fields: nhs_number, postcode" in text
    assert "remembered: yes" in text
    assert "counts: records 3" in text


def test_prompts_are_gpshare_dialogs_not_bare_input_boxes(qtbot):
    from PySide6.QtWidgets import QLabel, QLineEdit

    from gpshare.ui.dialogs import PromptDialog

    dialog = PromptDialog(
        None, "Sign the referral letter", "Type your gpshare password.", secret=True
    )
    qtbot.addWidget(dialog)
    field = dialog.findChild(QLineEdit, "dialogs.prompt_value")
    assert field.echoMode() == QLineEdit.EchoMode.Password
    assert field.accessibleName() == "Password"
    headings = [w for w in dialog.findChildren(QLabel) if w.property("heading") == "h2"]
    assert [h.text() for h in headings] == ["Sign the referral letter"]
    assert dialog.ok_button.property("variant") == "primary"
