"""The assessment wizard on a vault-version-2 vault (pytest-qt, offscreen): start to complete,
with the earlier record of the same child by a colleague found through blind tokens."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from PySide6.QtCore import QPoint, Qt
from PySide6.QtWidgets import QWidget

from gpshare.ui.wizard.wizard import SUMMARY, AssessmentWizard
from tests.conftest import VaultEnv
from tests.test_ui_wizard import scenario, walk_and_fill, widget

pytestmark = pytest.mark.usefixtures("quiet_dialogs")


@pytest.fixture
def smith_v2(vault_env_v2: VaultEnv) -> Iterator[Any]:
    """Dr Smith's session on the v2 vault, after Dr Jones completed a record about Mo Rahman."""
    jones = vault_env_v2.session("drjones")
    try:
        earlier = jones.assessments.start_assessment(
            answers=scenario("03-low-level-concern-monitor")["answers"]
        )
        jones.assessments.complete(earlier.id)
    finally:
        jones.close()
    session = vault_env_v2.session("drsmith")
    yield session
    if session.is_open:
        session.close()


def test_wizard_start_to_complete_on_a_v2_vault(qtbot: Any, smith_v2: Any) -> None:
    assert smith_v2.keys is not None
    answers = scenario("03-low-level-concern-monitor")["answers"]
    wizard = AssessmentWizard(smith_v2)
    qtbot.addWidget(wizard)
    wizard.resize(1280, 800)
    wizard.show()
    qtbot.waitExposed(wizard)
    walk_and_fill(qtbot, wizard, answers, typed=False)
    # Dr Jones's record about the same child is found (tokens, confirmed by its summary).
    wizard.go_to_step("threshold")
    text = " ".join(wizard.banner_texts())
    assert "Earlier concerns are recorded for this child: 1 record" in text
    assert "Dr Sam Jones" in text
    assert "Probable match" not in text  # the same NHS number: an NHS match
    box = widget(wizard, "prior_concerns_acknowledged.yes")
    wizard.go_to_step("concern")
    qtbot.waitUntil(lambda: box.isVisible(), timeout=2000)
    qtbot.mouseClick(box, Qt.MouseButton.LeftButton, pos=QPoint(8, box.height() // 2))
    wizard.go_to_step(SUMMARY)
    complete = widget(wizard, "wizard.complete")
    assert complete.isEnabled(), wizard.evaluation.errors
    with qtbot.waitSignal(wizard.completed, timeout=2000) as done:
        qtbot.mouseClick(complete, Qt.MouseButton.LeftButton)
    record_id = done.args[0]
    assert wizard.is_finished and record_id in widget(wizard, "wizard.problem").text()
    stored = smith_v2.assessments.get_record(record_id)
    assert stored.status == "completed" and stored.outcome["pathway"] == "monitor"
    assert stored.answers["prior_concerns_acknowledged"] is True
    listed = smith_v2.views.records_page().records
    assert [r.child.given_name for r in listed] == [answers["child_given_name"]]
    assert wizard.findChild(QWidget, "wizard.chronology_banner") is not None
