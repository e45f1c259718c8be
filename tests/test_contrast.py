"""The palette meets WCAG 2.2 AA: text at least 4.5:1 against its background, control edges
and the focus indicator at least 3:1 (success criteria 1.4.3 and 1.4.11), and every kind of
control has a visible focus style."""

from __future__ import annotations

import re

import pytest

from gpshare.ui import style as st
from gpshare.ui.wizard import pages as wz


def luminance(colour: str) -> float:
    """Relative luminance of a #RRGGBB colour (WCAG 2 definition)."""
    channels = [int(colour.lstrip("#")[i : i + 2], 16) / 255 for i in (0, 2, 4)]
    linear = [c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4 for c in channels]
    return 0.2126 * linear[0] + 0.7152 * linear[1] + 0.0722 * linear[2]


def ratio(a: str, b: str) -> float:
    high, low = sorted((luminance(a), luminance(b)), reverse=True)
    return (high + 0.05) / (low + 0.05)


def test_the_formula():
    assert ratio("#000000", "#FFFFFF") == pytest.approx(21.0)
    assert ratio("#FFFFFF", "#FFFFFF") == pytest.approx(1.0)


TEXT_PAIRS = {  # (foreground, background): where it is used
    "body text": (st.TEXT, st.WHITE),
    "text on grey panels": (st.TEXT, st.PALE_GREY),
    "text in info banners": (st.TEXT, st.PALE_BLUE),
    "text in error banners": (st.TEXT, st.PALE_RED),
    "text in success banners": (st.TEXT, st.PALE_GREEN),
    "text on the focus highlight": (st.TEXT, st.FOCUS),
    "hints": (st.SECONDARY_TEXT, st.WHITE),
    "hints on grey": (st.SECONDARY_TEXT, st.PALE_GREY),
    "links and step names": (st.BLUE, st.WHITE),
    "step names on the grey step list": (wz.BLUE, wz.PALE_GREY),
    "field errors": (st.RED, st.WHITE),
    "field errors on the error row": (wz.RED, "#FFF8F7"),
    "primary buttons": (st.WHITE, st.GREEN),
    "danger buttons": (st.WHITE, st.RED),
    "top bar": (st.WHITE, st.BLUE),
    "tooltips": (st.WHITE, st.TEXT),
    "selected rows": (st.WHITE, st.BLUE),
    "text in warning banners": (wz.TEXT, wz.PALE_AMBER),
    "wizard secondary text": (wz.SECONDARY, "#FFFFFF"),
}

CONTROL_PAIRS = {
    "text box border": (st.SECONDARY_TEXT, st.WHITE),
    "check box edge": (st.TEXT, st.WHITE),
    "button edge": (st.BORDER, st.WHITE),
    "button edge on grey": (st.BORDER, st.PALE_GREY),
    "ticked box": (st.BLUE, st.WHITE),
    "invalid field border": (st.RED, st.WHITE),
    "focus border on the highlight": (st.TEXT, st.FOCUS),
    "focused text box border": (st.TEXT, "#FFFDE7"),
}


@pytest.mark.parametrize("use", TEXT_PAIRS)
def test_text_contrast_is_at_least_4_5(use):
    fg, bg = TEXT_PAIRS[use]
    assert ratio(fg, bg) >= 4.5, f"{use}: {fg} on {bg} is {ratio(fg, bg):.2f}:1"


@pytest.mark.parametrize("use", CONTROL_PAIRS)
def test_control_contrast_is_at_least_3(use):
    fg, bg = CONTROL_PAIRS[use]
    assert ratio(fg, bg) >= 3.0, f"{use}: {fg} on {bg} is {ratio(fg, bg):.2f}:1"


@pytest.mark.parametrize(
    "control",
    ["QLineEdit", "QPlainTextEdit", "QComboBox", "QCheckBox", "QRadioButton", "QPushButton"],
)
def test_every_control_has_a_visible_focus_style(control):
    rules = re.findall(r"([^{}]*):focus[^{]*\{([^}]*)\}", st.STYLESHEET)
    styled = [body for selectors, body in rules if control in selectors]
    assert styled, f"no :focus rule for {control}"
    assert any(st.TEXT in body or st.FOCUS in body for body in styled)


def test_every_input_has_an_accessible_name_and_description_from_the_form(qtbot, vault_env):
    from PySide6.QtWidgets import QAbstractButton

    from gpshare.ui.wizard.wizard import AssessmentWizard

    session = vault_env.session("drsmith")
    wizard = AssessmentWizard(session)
    qtbot.addWidget(wizard)
    form = wizard.form
    assert form is not None
    for fld in form.all_fields():
        widget = wizard.input_widget(fld.id)
        assert widget.accessibleName() == fld.label, fld.id
        assert widget.accessibleDescription() == fld.help, fld.id
        for button in widget.findChildren(QAbstractButton):
            if button.objectName().startswith(f"{fld.id}."):
                assert button.accessibleName(), button.objectName()
                if fld.label not in button.accessibleName():  # an option: names its question
                    assert button.accessibleDescription().startswith(fld.label)
    session.close()
