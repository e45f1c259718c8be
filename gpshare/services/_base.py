"""The base of every service object: a reference to the one session context."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from gpshare.records import Record
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

    def _readable(self, record_id: str, action: str) -> Record:
        """The record if the acting user may read it, else audit and refuse (the session's check)."""
        return self._session._readable(record_id, action)

    def _own_draft(self, record_id: str, action: str) -> Record:
        """The acting user's own draft, else audit and refuse (the session's check)."""
        return self._session._own_draft(record_id, action)
