"""Help is in the app and offline: the user guide (the same text as docs/user-guide.md), the
keyboard shortcuts, how a local authority checks our letters, and worked examples."""

from __future__ import annotations

from pathlib import Path

from gpshare.help import HELP_DIR, TOPICS
from gpshare.ui.app import MainWindow

ROOT = Path(__file__).resolve().parent.parent


def test_the_shipped_user_guide_is_docs_user_guide():
    shipped = (HELP_DIR / "user-guide.md").read_text(encoding="utf-8")
    assert shipped == (ROOT / "docs" / "user-guide.md").read_text(encoding="utf-8"), (
        "copy docs/user-guide.md to gpshare/help/user-guide.md"
    )


def test_help_pages_are_package_data():
    pyproject = (ROOT / "pyproject.toml").read_text(encoding="utf-8")
    assert '"help/*.md"' in pyproject and '"help/scenarios/*.json"' in pyproject
    for item in TOPICS:
        assert item.build is not None or (HELP_DIR / item.file).is_file(), item.file


def test_help_menu_opens_each_topic(qtbot, vault_env, clock):
    window = MainWindow(clock=clock, vault_folder=vault_env.folder)
    qtbot.addWidget(window)
    menu = next(a.menu() for a in window.menuBar().actions() if a.text() == "&Help")
    titles = [a.text() for a in menu.actions() if a.text()]
    assert titles[:4] == [t.title for t in TOPICS] and "About" in titles[-1]
    expected = {
        "guide": "gpshare user guide",
        "keyboard": "Alt+N",
        "letter_checks": "signature panel",
        "examples": "Bruised toddler",
    }
    for key, words in expected.items():
        window.help_actions[key].trigger()
        help_window = window.show_help(key)
        qtbot.addWidget(help_window)
        assert words in help_window.page.toPlainText(), key
    assert window.help_actions["guide"].shortcut().toString() == "F1"


def test_topic_titles_wrap_instead_of_scrolling_sideways(qtbot):
    from PySide6.QtCore import QRect, Qt

    from gpshare.ui.help_view import HelpWindow

    window = HelpWindow()
    qtbot.addWidget(window)
    window.topics.setMaximumWidth(150)  # narrower than the longest title in any font
    window.show()
    qtbot.waitExposed(window)
    topics = window.topics
    assert not topics.horizontalScrollBar().isVisible()
    width = topics.viewport().width()
    metrics = topics.fontMetrics()
    for row in range(topics.count()):
        item = topics.item(row)
        rect = topics.visualItemRect(item)
        assert rect.right() < width, item.text()
        needed = metrics.boundingRect(
            QRect(0, 0, rect.width(), 10_000), int(Qt.TextFlag.TextWordWrap), item.text()
        )
        assert needed.height() <= rect.height(), f"{item.text()!r} is clipped"
