"""Preview before signing: the check page shows the letter as it will be, marked as a draft,
built from the same inputs as the letter that is then signed."""

from __future__ import annotations

import json

import pytest

from gpshare.errors import PermissionDenied, ValidationFailed
from gpshare.letter import DRAFT_MARK
from tests import pdftools
from tests.conftest import PASSWORDS, SCENARIOS

needs_poppler = pdftools.needs("pdftotext")


def answers(name: str) -> dict:
    return json.loads((SCENARIOS / f"{name}.json").read_text(encoding="utf-8"))["answers"]


def without_mark(text: str) -> str:
    """The text with the draft line and the diagonal watermark (read as scattered letters, one
    fragment per line) taken out. Applied to both letters alike."""
    kept = []
    for line in text.splitlines():
        bare = line.strip()
        if not bare or DRAFT_MARK in bare or (len(bare) <= 3 and bare in DRAFT_MARK):
            continue
        for piece in (DRAFT_MARK, *DRAFT_MARK.split()):  # a fragment glued to a real line
            if len(piece) > 3:
                line = line.replace(piece, "")
        kept.append(" ".join(line.split()))
    # The diagonal mark can change the order in which pdftotext reads lines, not their text:
    # compare the lines as a multiset.
    return "\n".join(sorted(k for k in kept if k))


@needs_poppler
@pytest.mark.parametrize(
    "name", ["01-bruised-toddler-parents-agree", "02-teen-sexual-health-refuses"]
)
def test_the_preview_is_the_signed_letter_but_for_the_draft_mark(smith, name):
    draft = smith.assessments.start_assessment(answers=answers(name))
    preview = smith.letters.preview_letter(draft.id)
    preview_text = pdftools.pdftotext(preview)
    assert DRAFT_MARK in preview_text.replace("\n", " ") or DRAFT_MARK in preview_text
    smith.assessments.complete(draft.id)
    signed = smith.letters.generate_letter(draft.id, PASSWORDS["drsmith"])
    signed_text = pdftools.pdftotext(signed.pdf)
    assert DRAFT_MARK not in signed_text
    assert without_mark(preview_text) == without_mark(signed_text)


def test_no_preview_while_answers_are_missing_or_for_someone_else(smith, vault_env):
    partial = {k: v for k, v in answers("01-bruised-toddler-parents-agree").items()}
    partial.pop("concern_narrative")
    draft = smith.assessments.start_assessment(answers=partial)
    with pytest.raises(ValidationFailed, match="once every item"):
        smith.letters.preview_letter(draft.id)
    smith.close()  # one session at a time holds the vault
    jones = vault_env.session("drjones")
    try:
        with pytest.raises(PermissionDenied):
            jones.letters.preview_letter(draft.id)
    finally:
        jones.close()


def test_the_check_page_shows_the_draft_letter_before_completion(qtbot, smith):
    from gpshare.ui import dialogs
    from gpshare.ui.wizard.wizard import SUMMARY, AssessmentWizard

    dialogs.set_non_interactive(True)
    wizard = AssessmentWizard(smith)
    qtbot.addWidget(wizard)
    wizard.resize(1280, 800)
    wizard.show()
    for fid, value in answers("01-bruised-toddler-parents-agree").items():
        wizard.input_widget(fid).set_value(value)
    wizard.go_to_step(SUMMARY)
    summary = wizard._summary
    assert summary.letter_pages.count() >= 1
    assert "Ellie" in summary.letter_text and DRAFT_MARK in summary.letter_text
    dialogs.reset()
