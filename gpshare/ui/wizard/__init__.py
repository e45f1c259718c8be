"""The assessment wizard (pages generated from the form) and its plug-in for the app shell."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from gpshare.ui.app import MainWindow

__all__ = ["install"]


def install(window: MainWindow) -> None:
    """Register the "new_assessment" page with the main window (My records installs its own)."""
    from gpshare.ui.wizard.shell import install as _install

    _install(window)
