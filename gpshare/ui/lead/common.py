"""Pieces shared by the lead workspace tabs: the stylesheet, labels and colours, and the
lazily loading tab base class."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from PySide6.QtWidgets import QVBoxLayout, QWidget

from gpshare.ui.style import BLUE, LIGHT_BORDER, RED, SECONDARY_TEXT, TEXT

if TYPE_CHECKING:
    from gpshare.services import Session


WORKSPACE_QSS = f"""
QWidget#leadWorkspace {{ background: white; }}
QFrame[tile="true"] {{ background: white; border: 1px solid {LIGHT_BORDER}; border-top: 4px solid {BLUE}; }}
QFrame[tile="true"][tone="warn"] {{ border-top: 4px solid {RED}; }}
QFrame[tile="true"] QLabel {{ background: transparent; }}
QLabel[role="tilevalue"] {{ font-size: 20pt; font-weight: 600; color: {TEXT}; }}
QLabel[role="tilecaption"] {{ color: {SECONDARY_TEXT}; }}
QLabel[role="chain"] {{ font-size: 11pt; font-weight: 600; padding: 10px 12px; }}
QFrame[chart="true"] {{ background: white; border: 1px solid {LIGHT_BORDER}; }}
"""

KIND_LABELS = {
    "record": "Assessment",
    "review_due": "Review date",
    "followup": "Referral follow-up",
    "review": "Lead review",
    "addendum": "Addendum",
}
OVERDUE_WORDS = {  # status -> (one, many)
    "completed": ("letter unsent", "letters unsent"),
    "sent": ("acknowledgement", "acknowledgements"),
    "acknowledged": ("decision", "decisions"),
    "monitor": ("review", "reviews"),
}
PATHWAY_COLOURS = {
    "emergency": "#D5281B",
    "legal_duty": "#7C2855",
    "referral": "#005EB8",
    "limited_sharing": "#41B6E6",
    "early_help": "#009639",
    "monitor": "#ED8B00",
    "unknown": "#AEB7BD",
}
CONSENT_COLOURS = {
    "consent_given": "#007F3B",
    "shared_without_consent_refused": "#ED8B00",
    "shared_without_consent_not_sought": "#7C2855",
    "not_applicable": "#AEB7BD",
    "unknown": "#D8DDE0",
}
_FOLLOWUP_SUMMARY = re.compile(r"^Referral (\w+)(?: — (\w+))?$")


def _grouped(number: int) -> str:
    """12 408 (space-grouped, as the practice's audit report writes it)."""
    return f"{number:,}".replace(",", " ")


def _plural(count: int, word: str) -> str:
    return f"{count} {word}{'' if count == 1 else 's'}"


class _Tab(QWidget):
    """A workspace tab that loads its data the first time it is shown (and on demand)."""

    def __init__(self, session: Session, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.session = session
        self.loaded = False
        self.layout_ = QVBoxLayout(self)
        self.layout_.setContentsMargins(16, 14, 16, 14)
        self.layout_.setSpacing(10)

    def ensure_loaded(self) -> None:
        if not self.loaded:
            self.reload()

    def reload(self) -> None:
        self.loaded = True

    def invalidate(self) -> None:
        """The data changed: load again when next shown."""
        self.loaded = False
        if self.isVisible():
            self.reload()
