"""Every wizard step fits the small screens GPs have (1024×700, 1366×768): no sideways
scrolling, no clipped button text, and the window never resizes itself.

Set GPSHARE_SCREENSHOTS=<folder> to save a PNG of every step at both sizes for a person to look
at (nothing is written otherwise).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from PySide6.QtCore import QSize
from PySide6.QtWidgets import (
    QAbstractButton,
    QApplication,
    QLabel,
    QScrollArea,
    QStackedWidget,
    QToolButton,
    QWidget,
)

from gpshare.ui import style
from gpshare.ui.app import MainWindow, install_page_modules
from gpshare.ui.wizard.wizard import SUMMARY, AssessmentWizard
from tests.conftest import PASSWORDS, SCENARIOS

SIZES = [QSize(1024, 700), QSize(1366, 768)]
# Scenario 02 walks the longest path (consent refused: the "Sharing without consent" step).
SCENARIO = "02-teen-sexual-health-refuses"


@pytest.fixture
def styled():
    """The look the application really has (Fusion, its font size and stylesheet)."""
    app = QApplication.instance()
    assert isinstance(app, QApplication)
    before = (app.styleSheet(), app.palette(), app.font(), app.style().name())
    style.apply(app)
    yield
    app.setStyleSheet(before[0])
    app.setPalette(before[1])
    app.setFont(before[2])
    app.setStyle(before[3])


pytestmark = pytest.mark.usefixtures("quiet_dialogs")


def clipped_buttons(root: QWidget) -> list[str]:
    """Visible buttons whose text is wider than the room inside them."""
    out = []
    for button in root.findChildren(QAbstractButton):
        if isinstance(button, QToolButton) and button.icon() and not button.text().strip():
            continue
        if button.metaObject().className() == "QLineEditIconButton":
            continue  # the calendar icon in a date field: its "text" is the tooltip
        text = button.text().replace("&&", "\0").replace("&", "").replace("\0", "&")
        if not button.isVisible() or not text:
            continue
        if button.hasHeightForWidth():  # a label that wraps: it must have the height it needs
            if button.height() + 1 < button.heightForWidth(button.width()):
                out.append(f"{button.objectName()}: wrapped text cut at the bottom")
            continue
        room = button.contentsRect().width()
        needed = button.fontMetrics().horizontalAdvance(text)
        if not button.icon().isNull():
            needed += button.iconSize().width() + 4
        if button.metaObject().className() in ("QRadioButton", "QCheckBox"):
            needed += 20  # the indicator
        if needed > room:
            out.append(f"{button.objectName() or text!r}: needs {needed}px, has {room}px")
    return out


def sideways(root: QWidget) -> list[str]:
    """Scroll areas whose content is wider than what they show (text cut at the right edge)."""
    out = []
    for area in root.findChildren(QScrollArea):
        inner = area.widget()
        if not area.isVisible() or inner is None:
            continue
        bar = area.horizontalScrollBar()
        if bar.isVisible() or inner.width() > area.viewport().width() + 1:
            out.append(f"{area.objectName()}: content {inner.width()} > {area.viewport().width()}")
    return out


def cut_labels(root: QWidget) -> list[str]:
    """Visible one-line labels narrower than their own text (and not eliding on purpose)."""
    out = []
    for label in root.findChildren(QLabel):
        if not label.isVisible() or label.wordWrap() or not label.text():
            continue
        if hasattr(label, "shown_text") or label.textFormat() != label.textFormat().PlainText:
            continue
        needed = label.fontMetrics().horizontalAdvance(label.text())
        if needed > label.contentsRect().width() + 1:
            out.append(f"{label.objectName() or label.text()[:30]!r}: {needed} > {label.width()}")
    return out


@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s.width()}x{s.height()}")
def test_every_step_fits_without_sideways_scrolling_or_clipped_text(
    qtbot, vault_env, clock, styled, size
):
    answers = json.loads((SCENARIOS / f"{SCENARIO}.json").read_text(encoding="utf-8"))["answers"]
    window = MainWindow(clock=clock, vault_folder=vault_env.folder)
    qtbot.addWidget(window)
    install_page_modules(window)
    window.resize(size)
    window.show()
    qtbot.waitExposed(window)
    window.start_session(vault_env.session("drsmith", PASSWORDS["drsmith"]))
    wizard = window.navigate("new_assessment")
    assert isinstance(wizard, AssessmentWizard)
    for fid, value in answers.items():  # every field the scenario shows, with its text in it
        if wizard.form is not None and wizard.form.has_field(fid):
            wizard.input_widget(fid).set_value(value)
    shots = os.environ.get("GPSHARE_SCREENSHOTS")
    order = [*wizard.evaluation.visible_steps, SUMMARY]
    assert "justification" in order
    problems: list[str] = []
    for number, step in enumerate(order, start=1):
        wizard.go_to_step(step)
        qtbot.wait(20)  # let deferred re-layouts (wrapped panels) settle, as they do on screen
        assert window.size() == size, f"the window resized itself on {step}: {window.size()}"
        found = clipped_buttons(window) + sideways(window) + cut_labels(wizard)
        stack = wizard.findChild(QStackedWidget, "wizard.stack")
        if stack is not None and stack.height() < wizard.height() // 3:
            # several prompts must not push the step's own questions off a small screen
            found.append(f"the step has {stack.height()}px of {wizard.height()}px")
        problems += [f"{step}: {p}" for p in found]
        if shots:
            folder = Path(shots)
            folder.mkdir(parents=True, exist_ok=True)
            name = f"{size.width()}x{size.height()}-{number:02d}-{step}.png"
            window.grab().save(str(folder / name))
    assert not problems, "\n".join(problems)
    window.lock()


def test_the_letter_window_fits_1024_and_does_not_grow_with_its_status(qtbot, vault_env, styled):
    from gpshare.ui.letter_view import LetterView

    session = vault_env.session("drsmith")
    answers = json.loads(
        (SCENARIOS / "01-bruised-toddler-parents-agree.json").read_text(encoding="utf-8")
    )["answers"]
    draft = session.assessments.start_assessment(answers=answers)
    session.assessments.complete(draft.id)
    view = LetterView(session, session.letters.generate_letter(draft.id, PASSWORDS["drsmith"]))
    qtbot.addWidget(view)
    view.resize(1000, 680)
    view.show()
    qtbot.waitExposed(view)
    assert view.minimumSizeHint().width() <= 1000
    before = view.size()
    view._status("Saved a copy to a folder with a very long name " * 6)
    QApplication.processEvents()
    assert view.size() == before
    assert not clipped_buttons(view), clipped_buttons(view)
    if os.environ.get("GPSHARE_SCREENSHOTS"):
        view.grab().save(str(Path(os.environ["GPSHARE_SCREENSHOTS"]) / "letter-1000.png"))
    view.close()
    session.close()
