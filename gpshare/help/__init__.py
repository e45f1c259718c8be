"""Help shown inside the app, offline: the user guide, keyboard shortcuts, how a local
authority checks our letters, and worked examples. Plain Markdown files shipped with the
package (``user-guide.md`` is a copy of ``docs/user-guide.md``; a test keeps them equal)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

HELP_DIR = Path(__file__).resolve().parent


@dataclass(frozen=True)
class Topic:
    """One help page: its key, menu title and Markdown file."""

    key: str
    title: str
    file: str

    def text(self) -> str:
        """The page's Markdown (a short apology if the file is missing from a damaged install)."""
        try:
            return (HELP_DIR / self.file).read_text(encoding="utf-8")
        except OSError:
            return (
                f"# {self.title}\n\nThis help page is missing from this installation. "
                "Ask your practice administrator to reinstall gpshare."
            )


TOPICS: tuple[Topic, ...] = (
    Topic("guide", "User guide", "user-guide.md"),
    Topic("keyboard", "Keyboard shortcuts", "keyboard.md"),
    Topic("letter_checks", "How a local authority checks our letters", "letter-checks.md"),
    Topic("examples", "Worked examples (fictional)", "worked-examples.md"),
)


def topic(key: str) -> Topic:
    """The topic with this key (KeyError if there is none)."""
    for item in TOPICS:
        if item.key == key:
            return item
    raise KeyError(key)
