"""Application events that UI modules subscribe to without importing one another.

A completed assessment is announced here by the wizard shell (gpshare.ui.wizard.shell) and
heard by, for example, the letter preview (gpshare.ui.letter_view). Keeping the registry in a
module that imports no screens is what keeps letter_view, my_records and the wizard shell out
of an import circle.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

# (window, wizard, record_id): typed loosely so this module imports no screens.
CompletedListener = Callable[[Any, Any, str], None]
_completed_listeners: list[CompletedListener] = []


def add_completed_listener(listener: CompletedListener) -> None:
    """Call ``listener(window, wizard, record_id)`` whenever an assessment is completed."""
    if listener not in _completed_listeners:
        _completed_listeners.append(listener)


def remove_completed_listener(listener: CompletedListener) -> None:
    """Stop calling `listener` (no error if it was not registered)."""
    if listener in _completed_listeners:
        _completed_listeners.remove(listener)


def assessment_completed(window: Any, wizard: Any, record_id: str) -> None:
    """Tell every listener that `record_id` was completed in `wizard` inside `window`."""
    for listener in list(_completed_listeners):
        listener(window, wizard, record_id)
