"""Help shown inside the app, offline: the user guide, keyboard shortcuts, how a local
authority checks our letters, and worked examples. Plain Markdown files shipped with the
package (``user-guide.md`` is a copy of ``docs/user-guide.md``; a test keeps them equal);
the worked examples are built from the fictional scenarios in ``scenarios/`` (see
:mod:`gpshare.help.examples`)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

HELP_DIR = Path(__file__).resolve().parent


@dataclass(frozen=True)
class Topic:
    """One help page: its key, menu title and Markdown file, or the function that builds it."""

    key: str
    title: str
    file: str = ""
    build: Callable[[], str] | None = None

    def text(self) -> str:
        """The page's Markdown (a short apology if the file is missing from a damaged install)."""
        try:
            if self.build is not None:
                return self.build()
            return (HELP_DIR / self.file).read_text(encoding="utf-8")
        except (OSError, ValueError, KeyError):
            return (
                f"# {self.title}\n\nThis help page is missing from this installation. "
                "Ask your practice administrator to reinstall gpshare."
            )


def _worked_examples() -> str:
    # Imported when the page is opened: it loads the form and runs the navigator.
    from gpshare.help.examples import worked_examples_markdown

    return worked_examples_markdown()


TOPICS: tuple[Topic, ...] = (
    Topic("guide", "User guide", "user-guide.md"),
    Topic("keyboard", "Keyboard shortcuts", "keyboard.md"),
    Topic("letter_checks", "How a local authority checks our letters", "letter-checks.md"),
    Topic("examples", "Worked examples (fictional)", build=_worked_examples),
)


def topic(key: str) -> Topic:
    """The topic with this key (KeyError if there is none)."""
    for item in TOPICS:
        if item.key == key:
            return item
    raise KeyError(key)
