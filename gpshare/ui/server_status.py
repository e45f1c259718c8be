"""The main window's line while the practice server cannot be reached (issue #14).

`ServerStatus` asks the session once a second when it last found the server unreachable
(`Session.unreachable_since`, an attribute read: no database, no network on the GUI thread).
While it is away the status bar says so, non-modally ("Practice server unreachable since 10:42
— retrying…"), and a worker tries the server every `retry_ms` off the GUI thread: a worker
connection that reaches it ends the engine's back-off (gpshare/store/postgres/engine.py), so
the next step reconnects at once, and the line goes by itself. A retry that finds a server
whose audit log no longer holds what this computer saw is not "unreachable": it is reported
as an alarm and the retries stop.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from PySide6.QtCore import QObject, QTimer, Signal
from PySide6.QtWidgets import QLabel

from gpshare.errors import ServerUnreachableError, StoreError
from gpshare.ui.worker import Task, start_in_background

if TYPE_CHECKING:
    from datetime import datetime

    from gpshare.services import Session

log = logging.getLogger(__name__)

POLL_MS = 1000
# Shorter than the engine's back-off (RETRY_AFTER_SECONDS): while the server stays away the
# window's own reads keep failing at once instead of waiting for it again.
RETRY_MS = 10_000


def unreachable_text(since: datetime) -> str:
    """'Practice server unreachable since 10:42 — retrying…' (local time)."""
    # Short enough for the status bar of a small window; the assessment screen's own banner
    # says where a draft being typed is kept meanwhile.
    return f"Practice server unreachable since {since.astimezone().strftime('%H:%M')} — retrying…"


class ServerStatus(QObject):
    """Shows `label` while the session's practice server is unreachable; retries in a worker."""

    alarm = Signal(str)  # a retry reached a server that must not be used (the message)

    def __init__(
        self,
        label: QLabel,
        parent: QObject | None = None,
        *,
        poll_ms: int = POLL_MS,
        retry_ms: int = RETRY_MS,
    ) -> None:
        super().__init__(parent)
        self.label = label
        self._session: Session | None = None
        self._task: Task | None = None
        self._poll = QTimer(self)
        self._poll.setInterval(poll_ms)
        self._poll.timeout.connect(self.refresh)
        self._retry = QTimer(self)
        self._retry.setInterval(retry_ms)
        self._retry.timeout.connect(self.retry_now)
        self.retries = 0  # background attempts started (shown in tests)
        self._alarmed = False  # a retry raised the alarm: no more retries this session
        label.hide()

    def set_intervals(self, poll_ms: int, retry_ms: int) -> None:
        """How often to look at the session and to retry the server (tests shorten both)."""
        self._poll.setInterval(poll_ms)
        self._retry.setInterval(retry_ms)

    def start(self, session: Session) -> None:
        """A session opened: watch it (only a practice server's can become unreachable)."""
        self.stop()
        self._session = session
        self._poll.start()
        self.refresh()

    def stop(self) -> None:
        """Locked or signed out: stop watching and drop any retry under way."""
        self._poll.stop()
        self._retry.stop()
        if self._task is not None:
            self._task.context.cancel()
        self._task = None
        self._session = None
        self._alarmed = False
        self.label.hide()

    def refresh(self) -> None:
        """Show or clear the line from what the session knows now (no I/O)."""
        session = self._session
        since = session.unreachable_since() if session is not None else None
        if since is None:
            self.label.hide()
            self._retry.stop()
            return
        self.label.setText(unreachable_text(since))
        self.label.show()
        if not self._retry.isActive() and not self._alarmed:
            self._retry.start()

    def retry_now(self) -> None:
        """Try the server in a worker (never on the GUI thread); one attempt at a time."""
        if self._session is None or self._task is not None:
            return
        # Opening the worker session is the attempt: a new connection, checked against the
        # audit head this session saw, that tells the session's stores whether it answered.
        self.retries += 1
        self._task = start_in_background(
            self._session, lambda _worker, _ctx: None, self._done, self._failed, self._done
        )

    def _done(self, task: Task, _result: Any = None) -> None:
        if task is self._task:
            self._task = None
            self.refresh()

    def _failed(self, task: Task, exc: Exception) -> None:
        if task is not self._task:
            return
        self._task = None
        if isinstance(exc, ServerUnreachableError):
            self.refresh()  # still away: the line stays, the timer tries again
            return
        self._retry.stop()
        self._alarmed = True
        if isinstance(exc, StoreError):
            self.alarm.emit(str(exc))
        else:
            log.error("server retry failed: %s", exc.__class__.__name__, exc_info=True)
