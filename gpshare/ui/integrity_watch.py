"""The lead's integrity check (DESIGN §10.3): it "runs at each lead's login, daily in the
background and on demand, with its result on the lead's dashboard" — on both engines.

`IntegrityWatch` belongs to the main window: when a safeguarding lead signs in it runs
`audit_trail.verify_integrity` (the chain, every sealed row against its event, every
workstation witness) in a worker, again every 24 hours while the app stays open, and when
asked. The result is stored by the service as an `integrity_verified` audit event (in the
chain, so a failure is never lost) and read back with `last_integrity_check`.
`IntegrityCard` shows it on the lead's dashboard: a plain line when intact, a red card naming
each problem (event or row) when not, and "Check now".
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from PySide6.QtCore import QObject, Qt, QTimer, Signal
from PySide6.QtWidgets import QFrame, QHBoxLayout, QLabel, QPushButton, QVBoxLayout, QWidget

from gpshare.errors import StoreError
from gpshare.ui.widgets import fmt_when
from gpshare.ui.worker import Task, start_in_background

if TYPE_CHECKING:
    from gpshare.services import Session
    from gpshare.services.audit import IntegrityCheck

log = logging.getLogger(__name__)

DAILY_MS = 24 * 60 * 60 * 1000
WHAT_TO_DO = (
    "Do not rely on these records until this is explained: tell the practice manager and "
    "the practice's IT supplier. Keep the server (or this vault) as it is for investigation."
)


class IntegrityWatch(QObject):
    """Runs the check for a lead's session: at `start`, daily, and on `check_now`."""

    running = Signal()
    checked = Signal(object)  # IntegrityCheck, as stored
    failed = Signal(str)  # the check itself could not run

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._session: Session | None = None
        self._task: Task | None = None
        self.last: IntegrityCheck | None = None
        self.problem: str | None = None
        self.timer = QTimer(self)
        self.timer.setInterval(DAILY_MS)
        self.timer.timeout.connect(self.check_now)

    @property
    def busy(self) -> bool:
        return self._task is not None

    def start(self, session: Session) -> None:
        """A lead signed in: check now and then daily while this session lasts."""
        self.stop()
        self._session = session
        self.timer.start()
        self.check_now()

    def stop(self) -> None:
        """Locked or signed out: stop the timer and drop any check under way."""
        self.timer.stop()
        if self._task is not None:
            self._task.context.cancel()
        self._task = None
        self._session = None
        self.last, self.problem = None, None

    def check_now(self) -> None:
        """Run the whole check in a worker (never on the GUI thread); one at a time."""
        if self._session is None or self._task is not None:
            return

        def work(worker: Session, _ctx: Any) -> IntegrityCheck | None:
            worker.audit_trail.verify_integrity()
            return worker.audit_trail.last_integrity_check()

        self._task = start_in_background(
            self._session, work, self._succeeded, self._failed, self._dropped
        )
        self.running.emit()

    def _succeeded(self, task: Task, result: Any) -> None:
        if task is not self._task:
            return
        self._task = None
        if result is None:  # the event was not found: say so rather than show nothing
            self._report("the check ran but its result was not recorded")
            return
        self.last, self.problem = result, None
        self.checked.emit(result)

    def _failed(self, task: Task, exc: Exception) -> None:
        if task is not self._task:
            return
        self._task = None
        if isinstance(exc, StoreError):
            self._report(str(exc))
        else:
            log.error("integrity check failed: %s", exc.__class__.__name__, exc_info=True)
            self._report("an unexpected problem stopped it")

    def _report(self, text: str) -> None:
        self.problem = f"The integrity check could not be completed: {text}"
        self.failed.emit(self.problem)

    def _dropped(self, task: Task) -> None:
        if task is self._task:
            self._task = None


def headline(check: IntegrityCheck, today_iso: str) -> str:
    """'Integrity checked 09:12 today: intact' (or the date), or what failed."""
    when = fmt_when(check.at)
    if check.at[:10] == today_iso:
        when = f"{when.rsplit(', ', 1)[-1]} today"
    if check.ok:
        return (
            f"Integrity checked {when}: intact — the audit chain, {check.rows} sealed rows and "
            f"{check.witnesses} workstation witnesses."
        )
    count = len(check.problems)
    return (
        f"INTEGRITY CHECK FAILED {when}: {count} problem{'s' if count != 1 else ''} found "
        f"(check by {check.actor}, audit event {check.seq})."
    )


class IntegrityCard(QFrame):
    """The result on the lead's dashboard: one line when intact, a red card when not."""

    check_requested = Signal()

    def __init__(self, session: Session, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("integrity.card")
        self._session = session
        self.failing = False
        layout = QHBoxLayout(self)
        layout.setContentsMargins(12, 8, 12, 8)
        text = QVBoxLayout()
        self.icon = QLabel()
        self.icon.setObjectName("integrity.icon")
        self.icon.hide()
        layout.addWidget(self.icon, 0, Qt.AlignmentFlag.AlignTop)
        self.headline = QLabel("The integrity of the records has not been checked yet.")
        self.headline.setObjectName("integrity.headline")
        self.headline.setWordWrap(True)
        self.headline.setTextFormat(Qt.TextFormat.PlainText)
        text.addWidget(self.headline)
        self.details = QLabel()
        self.details.setObjectName("integrity.details")
        self.details.setWordWrap(True)
        self.details.setTextFormat(Qt.TextFormat.PlainText)
        self.details.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.details.hide()
        text.addWidget(self.details)
        layout.addLayout(text, 1)
        self.check_button = QPushButton("Check &now")
        self.check_button.setObjectName("integrity.check_now")
        self.check_button.setToolTip(
            "Check the audit chain, every sealed record row and every workstation's witness now"
        )
        self.check_button.clicked.connect(self.check_requested)
        layout.addWidget(self.check_button, 0, Qt.AlignmentFlag.AlignTop)
        self._tone(False)

    def attach(self, watch: IntegrityWatch) -> None:
        """Follow `watch` (the main window's) and show what it knows now."""
        watch.running.connect(self.show_running)
        watch.checked.connect(self.show_check)
        watch.failed.connect(self.show_problem)
        self.check_requested.connect(watch.check_now)
        if watch.problem:
            self.show_problem(watch.problem)
        elif watch.last is not None:
            self.show_check(watch.last)
        if watch.busy:
            self.show_running()

    def _tone(self, failing: bool) -> None:
        self.failing = failing
        if failing:
            self.setStyleSheet(
                "#integrity\\.card { background: #fde8e8; border: 2px solid #b42318; "
                "border-radius: 6px; } #integrity\\.headline { color: #7a1212; font-weight: 700; }"
                " #integrity\\.details { color: #3d0a0a; }"
            )
            from PySide6.QtWidgets import QStyle

            icon = self.style().standardIcon(QStyle.StandardPixmap.SP_MessageBoxCritical)
            self.icon.setPixmap(icon.pixmap(32, 32))
            self.icon.show()
        else:
            self.setStyleSheet(
                "#integrity\\.card { background: #eef7f0; border: 1px solid #9cc9a8; "
                "border-radius: 6px; } #integrity\\.headline { color: #14532d; }"
            )
            self.icon.hide()

    def show_running(self) -> None:
        """A check is under way (the last result stays on show beside it)."""
        self.check_button.setEnabled(False)
        if not self.failing and self.details.isHidden():
            current = self.headline.text()
            if "checking now" not in current:
                self.headline.setText(f"{current.rstrip('.')} — checking now…")

    def show_check(self, check: IntegrityCheck) -> None:
        """Show a stored result: intact, or each problem and what to do."""
        from gpshare.clock import today

        self.check_button.setEnabled(True)
        self.headline.setText(headline(check, today(self._session.clock).isoformat()))
        self._tone(not check.ok)
        if check.ok:
            self.details.hide()
            return
        shown = check.problems[:8]
        more = len(check.problems) - len(shown)
        lines = [f"• {p}" for p in shown] + ([f"• … and {more} more"] if more > 0 else [])
        self.details.setText("\n".join([*lines, "", WHAT_TO_DO]))
        self.details.show()

    def show_problem(self, text: str) -> None:
        """The check could not run: as alarming as a failure, since nothing was proved."""
        self.check_button.setEnabled(True)
        self.headline.setText("INTEGRITY NOT CONFIRMED")
        self.details.setText(f"{text}\n\n{WHAT_TO_DO}")
        self.details.show()
        self._tone(True)
