"""Run slow service calls off the GUI thread, with progress and a Cancel button.

A `Task` runs one function in Qt's global thread pool on a worker session (its own SQLCipher
connection: connections are not shared between threads) and reports back through queued
signals, so the window keeps repainting and answering the keyboard while a lead's
needs-action list, dashboard, export or audit verify is worked out. Cancelling sets a flag the
function can poll and interrupts the worker connection's running query.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from PySide6.QtCore import QObject, QRunnable, Qt, QThreadPool, Signal
from PySide6.QtWidgets import QHBoxLayout, QLabel, QProgressBar, QPushButton, QWidget

from gpshare.errors import Cancelled

if TYPE_CHECKING:
    from gpshare.services import Session


class TaskContext:
    """What the function running in the worker may use: progress and the cancel flag."""

    def __init__(self, task: Task) -> None:
        self._task = task
        self._cancel = threading.Event()
        self.session: Session | None = None

    def cancelled(self) -> bool:
        return self._cancel.is_set()

    def progress(self, done: int, total: int) -> None:
        """Report progress (queued to the GUI thread)."""
        self._task.signals.progress.emit(self._task, int(done), int(total))

    def cancel(self) -> None:
        self._cancel.set()
        if self.session is not None:
            self.session.interrupt()


class _Signals(QObject):
    # Each carries its task, so a superseded or cancelled task's late report is dropped.
    progress = Signal(object, int, int)
    succeeded = Signal(object, object)
    failed = Signal(object, object)
    cancelled = Signal(object)
    done = Signal(object)


_running: set[Task] = set()  # keeps each task's Python object alive while the pool runs it


class Task(QRunnable):
    """`fn(worker_session, context)` run in the thread pool; results arrive as signals."""

    def __init__(self, session: Session, fn: Callable[[Session, TaskContext], Any]) -> None:
        super().__init__()
        self.setAutoDelete(False)  # the GUI side keeps it until `done`
        self.signals = _Signals()
        self.context = TaskContext(self)
        self._session = session
        self._fn = fn
        self.thread_id: int | None = None

    def run(self) -> None:
        self.thread_id = threading.get_ident()
        worker: Session | None = None
        try:
            worker = self._session.worker_session()
            self.context.session = worker
            if self.context.cancelled():
                raise Cancelled("Cancelled.")
            result = self._fn(worker, self.context)
            if self.context.cancelled():
                raise Cancelled("Cancelled.")
        except Exception as exc:  # reported to the GUI thread, which shows it
            if self.context.cancelled() or isinstance(exc, Cancelled):
                self.signals.cancelled.emit(self)
            else:
                self.signals.failed.emit(self, exc)
        else:
            self.signals.succeeded.emit(self, result)
        finally:
            self.context.session = None
            if worker is not None:
                worker.close()
            self.signals.done.emit(self)


class TaskBar(QWidget):
    """A progress bar, a status line and a Cancel button for one background task at a time."""

    def __init__(self, name: str, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName(name)
        layout = QHBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        self.label = QLabel()
        self.label.setObjectName(f"{name}.label")
        self.bar = QProgressBar()
        self.bar.setObjectName(f"{name}.progress")
        self.bar.setAccessibleName("Progress")
        self.bar.setMaximumWidth(260)
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.setObjectName(f"{name}.cancel")
        self.cancel_button.setToolTip("Stop this; nothing is changed")
        self.cancel_button.clicked.connect(self.cancel)
        layout.addWidget(self.label, 1)
        layout.addWidget(self.bar)
        layout.addWidget(self.cancel_button)
        self.task: Task | None = None
        self._callbacks: tuple[
            Callable[[Any], None], Callable[[Exception], None], Callable[[], None]
        ]
        self.hide()

    @property
    def busy(self) -> bool:
        return self.task is not None

    def start(
        self,
        session: Session,
        text: str,
        fn: Callable[[Session, TaskContext], Any],
        on_result: Callable[[Any], None],
        on_error: Callable[[Exception], None],
        on_cancel: Callable[[], None] | None = None,
    ) -> Task:
        """Run `fn` in the pool; `on_result` / `on_error` / `on_cancel` run on the GUI thread
        (never after this bar is gone: its slots are disconnected with it)."""
        self.cancel()
        task = Task(session, fn)
        self.task = task
        self._callbacks = (on_result, on_error, on_cancel or (lambda: None))
        queued = Qt.ConnectionType.QueuedConnection
        task.signals.progress.connect(self._progress, queued)
        task.signals.succeeded.connect(self._succeeded, queued)
        task.signals.failed.connect(self._failed, queued)
        task.signals.cancelled.connect(self._cancelled, queued)
        task.signals.done.connect(_forget, queued)
        self.destroyed.connect(task.context.cancel)
        self.label.setText(text)
        self.bar.setRange(0, 0)  # busy until the first progress report
        self.show()
        _running.add(task)
        QThreadPool.globalInstance().start(task)
        return task

    def cancel(self) -> None:
        """Stop the running task (its result, if it still arrives, is dropped)."""
        if self.task is not None:
            self.task.context.cancel()
            self.task = None
            self.hide()

    def _progress(self, task: Task, done: int, total: int) -> None:
        if task is self.task and total > 0:
            self.bar.setRange(0, total)
            self.bar.setValue(min(done, total))

    def _take(self, task: Task) -> bool:
        if task is not self.task:
            return False  # cancelled or superseded: drop it
        self.task = None
        self.hide()
        return True

    def _succeeded(self, task: Task, result: Any) -> None:
        if self._take(task):
            self._callbacks[0](result)

    def _failed(self, task: Task, exc: Exception) -> None:
        if self._take(task):
            self._callbacks[1](exc)

    def _cancelled(self, task: Task) -> None:
        if self._take(task):
            self._callbacks[2]()


def _forget(task: Task) -> None:
    _running.discard(task)


def start_in_background(
    session: Session,
    fn: Callable[[Session, TaskContext], Any],
    succeeded: Callable[..., None],
    failed: Callable[..., None],
    cancelled: Callable[..., None],
) -> Task:
    """Run `fn` in the pool with no progress bar of its own (a watch, a retry); the slots get
    the task first (`succeeded(task, result)`, `failed(task, exc)`, `cancelled(task)`) and run
    on the GUI thread."""
    task = Task(session, fn)
    queued = Qt.ConnectionType.QueuedConnection
    task.signals.succeeded.connect(succeeded, queued)
    task.signals.failed.connect(failed, queued)
    task.signals.cancelled.connect(cancelled, queued)
    task.signals.done.connect(_forget, queued)
    _running.add(task)
    QThreadPool.globalInstance().start(task)
    return task
