"""Every message box, file dialog and input prompt goes through here (the UI's test seam).

Like KeePassXC's ``MessageBox::setNextAnswer``: tests queue the answer the next prompt should
give, and in *non-interactive* mode nothing modal is ever shown — messages are recorded in
:func:`history`, and a prompt without a queued answer raises :class:`UnexpectedDialog`
instead of blocking the test run forever.

Custom dialogs (add user, change password…) are run with :func:`exec_dialog`; a test queues a
handler with :func:`set_next_dialog_handler` that fills the dialog's widgets (found by
``objectName``) and clicks its buttons, exactly as a user would.

Messages passed here must never contain patient data beyond what the screen already shows.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from PySide6.QtCore import Qt
from PySide6.QtGui import QGuiApplication
from PySide6.QtWidgets import (
    QDialog,
    QDialogButtonBox,
    QFileDialog,
    QLabel,
    QLineEdit,
    QMessageBox,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

__all__ = [
    "Shown",
    "UnexpectedDialog",
    "error",
    "exec_dialog",
    "get_existing_directory",
    "get_open_file",
    "get_password",
    "get_save_file",
    "get_text",
    "history",
    "information",
    "last_shown",
    "question",
    "reset",
    "set_next_answer",
    "set_next_dialog_handler",
    "set_non_interactive",
    "show_one_time_password",
    "warning",
]


class UnexpectedDialog(AssertionError):
    """A prompt appeared in non-interactive mode with no answer queued for it."""


@dataclass
class Shown:
    """One message or prompt, as recorded for tests."""

    kind: str  # information, warning, error, question, text, password, directory, open_file, save_file, one_time_password, dialog
    title: str
    text: str
    answer: Any = None
    extra: dict[str, Any] = field(default_factory=dict)


class _Seam:
    def __init__(self) -> None:
        self.answers: deque[Any] = deque()
        self.handlers: deque[Callable[[QDialog], Any]] = deque()
        self.history: list[Shown] = []
        self.non_interactive = False


_seam = _Seam()
_NO_ANSWER = object()


# ----- test controls -----------------------------------------------------------------------
def set_next_answer(answer: Any) -> None:
    """Queue the answer for the next prompt (question → bool, text/password → str or None,
    file/directory → path or None). Answers are consumed in order."""
    _seam.answers.append(answer)


def set_next_dialog_handler(handler: Callable[[QDialog], Any]) -> None:
    """Queue a function that drives the next dialog run with :func:`exec_dialog`.

    The dialog is shown (non-modally) before the handler runs; whatever the handler leaves
    as ``dialog.result()`` is what :func:`exec_dialog` returns. If the handler leaves the
    dialog open (e.g. validation failed), it is rejected afterwards.
    """
    _seam.handlers.append(handler)


def set_non_interactive(enabled: bool) -> None:
    """Record messages instead of showing them; fail on prompts without a queued answer."""
    _seam.non_interactive = enabled


def history() -> list[Shown]:
    """Everything shown (or answered) since the last :func:`reset`."""
    return list(_seam.history)


def last_shown(kind: str | None = None) -> Shown | None:
    """The most recent message/prompt, optionally of one kind."""
    for item in reversed(_seam.history):
        if kind is None or item.kind == kind:
            return item
    return None


def reset() -> None:
    """Forget queued answers/handlers and the history; leave non-interactive mode."""
    _seam.answers.clear()
    _seam.handlers.clear()
    _seam.history.clear()
    _seam.non_interactive = False


def _queued(kind: str, title: str, text: str) -> Any:
    if _seam.answers:
        answer = _seam.answers.popleft()
        _seam.history.append(Shown(kind, title, text, answer))
        return answer
    if _seam.non_interactive:
        _seam.history.append(Shown(kind, title, text, None))
        raise UnexpectedDialog(
            f"Unexpected {kind} prompt with no queued answer: {title!r}: {text!r}"
        )
    return _NO_ANSWER


# ----- messages ------------------------------------------------------------------------------
def _message(
    kind: str,
    icon: QMessageBox.Icon,
    parent: QWidget | None,
    title: str,
    text: str,
    detail: str | None,
) -> None:
    if _seam.non_interactive:
        _seam.history.append(Shown(kind, title, text, None, {"detail": detail} if detail else {}))
        return
    _seam.history.append(Shown(kind, title, text))
    box = QMessageBox(icon, title, text, QMessageBox.StandardButton.Ok, parent)
    box.setObjectName(f"dialogs.{kind}")
    box.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
    if detail:
        box.setInformativeText(detail)
    box.exec()


def information(parent: QWidget | None, title: str, text: str, detail: str | None = None) -> None:
    """A plain notice with an OK button."""
    _message("information", QMessageBox.Icon.Information, parent, title, text, detail)


def warning(parent: QWidget | None, title: str, text: str, detail: str | None = None) -> None:
    """Something the user should know about, but nothing failed."""
    _message("warning", QMessageBox.Icon.Warning, parent, title, text, detail)


def error(parent: QWidget | None, title: str, text: str, detail: str | None = None) -> None:
    """Something failed; `text` is the plain-English message (``str(exc)``), never a traceback."""
    _message("error", QMessageBox.Icon.Critical, parent, title, text, detail)


def question(
    parent: QWidget | None,
    title: str,
    text: str,
    *,
    yes: str = "Yes",
    no: str = "Cancel",
    default_yes: bool = False,
    destructive: bool = False,
) -> bool:
    """Ask to confirm; True when the user chose `yes`. The safe answer is the default."""
    answer = _queued("question", title, text)
    if answer is not _NO_ANSWER:
        return bool(answer)
    _seam.history.append(Shown("question", title, text))
    box = QMessageBox(
        QMessageBox.Icon.Warning if destructive else QMessageBox.Icon.Question,
        title,
        text,
        QMessageBox.StandardButton.NoButton,
        parent,
    )
    box.setObjectName("dialogs.question")
    yes_button = box.addButton(yes, QMessageBox.ButtonRole.AcceptRole)
    no_button = box.addButton(no, QMessageBox.ButtonRole.RejectRole)
    box.setDefaultButton(yes_button if default_yes else no_button)
    box.setEscapeButton(no_button)
    box.exec()
    result = box.clickedButton() is yes_button
    _seam.history[-1].answer = result
    return result


# ----- input prompts ----------------------------------------------------------------------------
class PromptDialog(QDialog):
    """One value to type, in the gpshare look: a heading, the explanation wrapped at a
    readable width, the box (hidden characters for a password) and OK / Cancel."""

    def __init__(
        self,
        parent: QWidget | None,
        title: str,
        label: str,
        *,
        secret: bool = False,
        text: str = "",
        ok_text: str = "OK",
    ) -> None:
        super().__init__(parent)
        self.setObjectName("dialogs.password" if secret else "dialogs.text")
        self.setWindowTitle(title)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(20, 18, 20, 16)
        layout.setSpacing(10)
        heading = QLabel(title)
        heading.setTextFormat(Qt.TextFormat.PlainText)
        heading.setProperty("heading", "h2")
        heading.setWordWrap(True)
        layout.addWidget(heading)
        body = QLabel(label)
        body.setTextFormat(Qt.TextFormat.PlainText)
        body.setWordWrap(True)
        body.setObjectName("dialogs.prompt_text")
        layout.addWidget(body)
        self.field = QLineEdit(text)
        self.field.setObjectName("dialogs.prompt_value")
        self.field.setAccessibleName("Password" if secret else title)
        self.field.setAccessibleDescription(label)
        if secret:
            self.field.setEchoMode(QLineEdit.EchoMode.Password)
        body.setBuddy(self.field)
        layout.addWidget(self.field)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Cancel)
        self.ok_button = buttons.addButton(ok_text, QDialogButtonBox.ButtonRole.AcceptRole)
        self.ok_button.setObjectName("dialogs.prompt_ok")
        self.ok_button.setProperty("variant", "primary")
        self.ok_button.setDefault(True)
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)
        layout.addWidget(buttons)
        # Wrapped text needs its width before its height is known: fix the width, then size.
        body.setMinimumWidth(440)
        heading.setMinimumWidth(440)
        layout.setSizeConstraint(QVBoxLayout.SizeConstraint.SetMinimumSize)
        self.field.setFocus()

    def value(self) -> str:
        return self.field.text()


def get_text(parent: QWidget | None, title: str, label: str, *, text: str = "") -> str | None:
    """One line of text, or None when cancelled."""
    answer = _queued("text", title, label)
    if answer is not _NO_ANSWER:
        return None if answer is None else str(answer)
    dialog = PromptDialog(parent, title, label, text=text)
    ok = dialog.exec() == QDialog.DialogCode.Accepted
    value = dialog.value()
    _seam.history.append(Shown("text", title, label, value if ok else None))
    return value if ok else None


def get_password(
    parent: QWidget | None, title: str, label: str, *, ok_text: str = "OK"
) -> str | None:
    """A password (hidden as it is typed), or None when cancelled. Never recorded."""
    answer = _queued("password", title, label)
    if answer is not _NO_ANSWER:
        _seam.history[-1].answer = "<hidden>"
        return None if answer is None else str(answer)
    dialog = PromptDialog(parent, title, label, secret=True, ok_text=ok_text)
    ok = dialog.exec() == QDialog.DialogCode.Accepted
    value = dialog.value()
    dialog.field.clear()
    _seam.history.append(Shown("password", title, label, "<hidden>" if ok else None))
    return value if ok else None


def _path_answer(answer: Any) -> Path | None:
    return None if answer is None or answer == "" else Path(answer)


def get_existing_directory(
    parent: QWidget | None, title: str, start: Path | str | None = None
) -> Path | None:
    """A folder chosen by the user, or None."""
    answer = _queued("directory", title, str(start or ""))
    if answer is not _NO_ANSWER:
        return _path_answer(answer)
    chosen = QFileDialog.getExistingDirectory(parent, title, str(start or ""))
    _seam.history.append(Shown("directory", title, str(start or ""), chosen or None))
    return _path_answer(chosen)


def get_open_file(
    parent: QWidget | None, title: str, start: Path | str | None = None, filter: str = ""
) -> Path | None:
    """An existing file chosen by the user, or None."""
    answer = _queued("open_file", title, str(start or ""))
    if answer is not _NO_ANSWER:
        return _path_answer(answer)
    chosen, _ = QFileDialog.getOpenFileName(parent, title, str(start or ""), filter)
    _seam.history.append(Shown("open_file", title, str(start or ""), chosen or None))
    return _path_answer(chosen)


def get_save_file(
    parent: QWidget | None, title: str, start: Path | str | None = None, filter: str = ""
) -> Path | None:
    """Where to save a file, or None. The platform dialog confirms overwriting."""
    answer = _queued("save_file", title, str(start or ""))
    if answer is not _NO_ANSWER:
        return _path_answer(answer)
    chosen, _ = QFileDialog.getSaveFileName(parent, title, str(start or ""), filter)
    _seam.history.append(Shown("save_file", title, str(start or ""), chosen or None))
    return _path_answer(chosen)


# ----- one-time password ------------------------------------------------------------------------
class OneTimePasswordDialog(QDialog):
    """Shows a one-time password once, large and selectable, with a Copy button."""

    def __init__(self, username: str, password: str, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("dialogs.one_time_password")
        self.setWindowTitle("One-time password")
        layout = QVBoxLayout(self)
        intro = QLabel(
            f"Give this one-time password to <b>{_escape(username)}</b> in person or by phone. "
            "They must choose their own password when they next unlock.<br>"
            "It is shown only once: gpshare does not keep a readable copy."
        )
        intro.setWordWrap(True)
        layout.addWidget(intro)
        self.password_field = QLineEdit(password)
        self.password_field.setObjectName("one_time_password.value")
        self.password_field.setReadOnly(True)
        self.password_field.setProperty("secret", True)
        self.password_field.setAccessibleName("One-time password")
        layout.addWidget(self.password_field)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Close)
        copy = QPushButton("&Copy")
        copy.setObjectName("one_time_password.copy")
        buttons.addButton(copy, QDialogButtonBox.ButtonRole.ActionRole)
        copy.clicked.connect(lambda: QGuiApplication.clipboard().setText(password))
        buttons.rejected.connect(self.reject)
        layout.addWidget(buttons)
        self.resize(460, self.sizeHint().height())


def _escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def show_one_time_password(parent: QWidget | None, username: str, password: str) -> None:
    """Show a reset password to the administrator (recorded for tests in non-interactive mode)."""
    if _seam.non_interactive:
        _seam.history.append(Shown("one_time_password", "One-time password", username, password))
        return
    _seam.history.append(Shown("one_time_password", "One-time password", username, "<shown>"))
    OneTimePasswordDialog(username, password, parent).exec()


# ----- custom dialogs ---------------------------------------------------------------------------------
def exec_dialog(dialog: QDialog) -> int:
    """Run a dialog modally (or through a queued test handler); returns ``dialog.result()``."""
    if _seam.handlers:
        handler = _seam.handlers.popleft()
        _seam.history.append(Shown("dialog", dialog.windowTitle(), dialog.objectName()))
        dialog.show()
        handler(dialog)
        if dialog.isVisible():
            dialog.reject()
        result = int(dialog.result())
        _seam.history[-1].answer = result
        return result
    if _seam.non_interactive:
        _seam.history.append(Shown("dialog", dialog.windowTitle(), dialog.objectName()))
        raise UnexpectedDialog(
            f"Unexpected dialog with no queued handler: {dialog.windowTitle()!r}"
        )
    _seam.history.append(Shown("dialog", dialog.windowTitle(), dialog.objectName()))
    result = int(dialog.exec())
    _seam.history[-1].answer = result
    return result
