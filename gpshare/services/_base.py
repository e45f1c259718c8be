"""The base of every service object: a reference to the one session context."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from gpshare.services.session import Session


class Service:
    """A group of use cases reached from the session (``session.users``, …).

    It holds the session itself, never a copy of its key or user, so locking the session
    locks every service, and every check goes through the session's one access table.
    """

    def __init__(self, session: Session) -> None:
        self._session = session

    def _require(self, action: str, *, record_id: str | None = None) -> None:
        """Check `action` for the acting user (gpshare.access), auditing a refusal."""
        self._session._require(action, record_id=record_id)
