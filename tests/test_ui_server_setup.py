"""The unlock screen's practice-server dialogs (issue #14): "Create a practice on a server…"
and "Connect to a practice server…" against a throwaway PostgreSQL (tests/pg.py), driven as
a person would (pytest-qt), then signed in to with the services."""

from __future__ import annotations

import os
import threading
from pathlib import Path
from typing import Any

import pytest
from PySide6.QtWidgets import QApplication, QLineEdit

from gpshare.clock import FixedClock
from gpshare.services import open_session
from gpshare.ui import dialogs
from gpshare.ui.server_setup import CreateServerPracticeDialog, JoinServerDialog
from gpshare.ui.unlock import UnlockWidget
from tests.conftest import PASSWORDS
from tests.pg import Cluster
from tests.test_pg_server import cheap_kdf, server  # noqa: F401 - the fixtures

pytestmark = pytest.mark.usefixtures("quiet_dialogs", "cheap_kdf")


def _shot(widget: Any, name: str) -> None:
    # Screenshots for a person to look at, outside the repository, only when asked for.
    folder = os.environ.get("GPSHARE_SCREENSHOTS")
    if folder:
        Path(folder).mkdir(parents=True, exist_ok=True)
        QApplication.processEvents()  # as the event loop would before the next paint
        widget.grab().save(str(Path(folder) / name))


def fill_create(dialog: CreateServerPracticeDialog, dsn: str, folder: Path, role: str) -> None:
    dialog.dsn_edit.setText(dsn)
    dialog.folder_edit.setText(str(folder))
    dialog.role_edit.setText(role)
    dialog.practice_edit.setText("Canal Street Surgery")
    dialog.admin_edit.setText("admin")
    dialog.admin_name_edit.setText("Pat Admin")
    dialog.admin_password.setText(PASSWORDS["admin"])
    dialog.admin_repeat.setText(PASSWORDS["admin"])
    dialog.lead_check.setChecked(True)
    dialog.lead_edit.setText("lead")
    dialog.lead_name_edit.setText("Dr Priya Natarajan")
    dialog.lead_password.setText(PASSWORDS["lead"])
    dialog.lead_repeat.setText(PASSWORDS["lead"])


def create_practice(qtbot: Any, clock: FixedClock, dsn: str, folder: Path) -> dict[str, Any]:
    """Drive "Create a practice on a server…" from the unlock screen to the end."""
    widget = UnlockWidget(clock, None)
    qtbot.addWidget(widget)
    widget.resize(900, 760)
    widget.show()
    seen: dict[str, Any] = {"widget": widget}

    def run(dialog: Any) -> None:
        fill_create(dialog, dsn, folder, f"ws_{folder.parent.name}"[:60])
        _shot(dialog, "server-create-1-form.png")
        dialog.ok_button.click()
        code = dialog.findChild(QLineEdit, "create_server.code")
        qtbot.waitUntil(lambda: bool(code.text()), timeout=60000)
        seen["worker"] = dialog.worker.thread_id != threading.get_ident()
        seen["first"] = code.accessibleName()
        _shot(dialog, "server-create-2-recovery-code.png")
        dialog.reject()  # the practice exists: closing before the codes are typed is refused
        seen["closing_refused"] = dialog.isVisible() and "type back each code" in (
            dialog.error_label.text()
        )
        recovery = code.text()
        dialog.codes.typed.setText("WRONG")
        dialog.continue_button.click()
        seen["wrong"] = dialog.error_label.text()
        dialog.codes.typed.setText(recovery.lower())
        dialog.continue_button.click()
        seen["second"] = code.accessibleName()
        seen["codes"] = (recovery, code.text())
        _shot(dialog, "server-create-3-breakglass-code.png")
        dialog.codes.typed.setText(code.text())
        dialog.continue_button.click()
        # The enrolment secret goes in the same envelope: shown next, typed back too.
        seen["third"] = code.accessibleName()
        seen["secret"] = code.text()
        seen["custody"] = dialog.codes.code_label.text()
        _shot(dialog, "server-create-4-enrolment-secret.png")
        dialog.codes.typed.setText(code.text().replace("-", " "))
        dialog.continue_button.click()

    dialogs.set_next_dialog_handler(run)
    widget.create_server_button.click()
    return seen


def test_create_a_practice_on_a_server_then_sign_in_and_join_a_second_computer(
    server: tuple[Cluster, str],  # noqa: F811
    tmp_path: Path,
    qtbot: Any,
) -> None:
    cl, dsn = server
    clock = FixedClock()
    seen = create_practice(qtbot, clock, dsn, tmp_path / "pc1")
    widget: UnlockWidget = seen["widget"]
    assert seen["worker"] and seen["closing_refused"]
    assert (seen["first"], seen["second"]) == ("Practice recovery code", "Break-glass code")
    assert "not the practice recovery code" in seen["wrong"]
    recovery, breakglass = seen["codes"]
    assert recovery and breakglass and recovery != breakglass
    assert seen["third"] == "Enrolment secret" and seen["secret"].count("-") == 12
    assert "break-glass envelope" in seen["custody"]
    # The unlock screen now points at the new workstation folder, ready for the admin.
    assert widget.vault_folder == tmp_path / "pc1"
    assert widget.username_edit.text() == "admin"
    assert "Canal Street Surgery was created on the practice server" in widget.notice_label.text()
    _shot(widget, "server-create-4-unlock-notice.png")
    session = open_session(tmp_path / "pc1", "lead", PASSWORDS["lead"], clock)
    assert session.vault.engine == "postgres" and session.user.role == "lead"
    session.close()

    # A second computer: a password in the address is refused, as by `gpshare server join`.
    widget2 = UnlockWidget(clock, None)
    qtbot.addWidget(widget2)
    widget2.resize(900, 760)
    widget2.show()
    got: dict[str, Any] = {}

    def join(dialog: Any) -> None:
        dialog.ok_button.click()
        got["no_dsn"] = dialog.error_label.text()
        dialog.dsn_edit.setText(dsn + " password=hunter2")
        dialog.folder_edit.setText(str(tmp_path / "pc2"))
        dialog.ok_button.click()
        qtbot.waitUntil(lambda: dialog.error_label.isVisible(), timeout=30000)
        got["password"] = dialog.error_label.text()
        _shot(dialog, "server-join-1-password-refused.png")
        dialog.dsn_edit.setText(dsn)
        # A certificate folder without the enrolment's client.crt is named, nothing is made.
        dialog.certs_edit.setText(str(tmp_path))
        dialog.ok_button.click()
        got["certs"] = dialog.error_label.text()
        dialog.certs_edit.setText("")
        dialog.ok_button.click()
        got["busy"] = dialog.status.text()
        qtbot.waitUntil(lambda: not dialog.isVisible(), timeout=30000)

    dialogs.set_next_dialog_handler(join)
    widget2.join_button.click()
    assert "Type the practice server's address" in got["no_dsn"]
    assert "contains a password" in got["password"] and "plain text" in got["password"]
    assert "hunter2" not in (tmp_path / "pc2" / "vault.json").read_text()
    assert f"{tmp_path} holds no client.crt" in got["certs"]
    assert "Connecting" in got["busy"]
    assert widget2.vault_folder == tmp_path / "pc2"
    assert "workstation of Canal Street Surgery" in widget2.notice_label.text()
    _shot(widget2, "server-join-2-unlock-notice.png")
    session = open_session(tmp_path / "pc2", "admin", PASSWORDS["admin"], clock)
    assert session.vault.engine == "postgres"
    session.close()


def test_create_says_which_passwords_differ_and_shows_the_services_words(
    server: tuple[Cluster, str],  # noqa: F811
    tmp_path: Path,
    qtbot: Any,
) -> None:
    dialog = CreateServerPracticeDialog(FixedClock(), None)
    qtbot.addWidget(dialog)
    dialog.show()
    fill_create(dialog, server[1], tmp_path / "pc", "ws_x")
    dialog.lead_repeat.setText("something else entirely")
    dialog.ok_button.click()
    assert "two safeguarding lead passwords are different" in dialog.error_label.text()
    assert dialog.worker.thread is None  # nothing was sent
    dialog.lead_repeat.setText(PASSWORDS["lead"])
    dialog.lead_edit.setText("admin")  # the same username: the service's own check
    dialog.ok_button.click()
    qtbot.waitUntil(lambda: dialog.error_label.isVisible(), timeout=30000)
    assert "needs their own username" in dialog.error_label.text()
    assert dialog.ok_button.isEnabled() and not (tmp_path / "pc" / "vault.json").exists()
    _shot(dialog, "server-create-0-validation.png")


def test_join_names_a_server_that_holds_no_practice(
    server: tuple[Cluster, str],  # noqa: F811
    tmp_path: Path,
    qtbot: Any,
) -> None:
    dialog = JoinServerDialog(tmp_path / "pc")
    qtbot.addWidget(dialog)
    dialog.show()
    dialog.dsn_edit.setText(server[1])
    dialog.ok_button.click()
    qtbot.waitUntil(lambda: dialog.error_label.isVisible(), timeout=30000)
    assert dialog.error_label.text()  # the service's words (no practice on that database)
    assert "unexpected" not in dialog.error_label.text()
    assert dialog.result() == 0


def test_the_rollback_alarm_is_a_red_panel_not_the_wrong_password_line(qtbot: Any) -> None:
    from gpshare.errors import RollbackError, WrongPasswordError

    widget = UnlockWidget(FixedClock(), None)
    qtbot.addWidget(widget)
    widget.resize(900, 760)
    widget.show()
    heads = (
        "ROLLBACK OR FORK ALARM: this workstation has seen audit event 41 sealed 3f2a9c1b7d0e…, "
        "but the server's chain does not hold it (its head is event 37 sealed 9b1e44c0aa52…)."
    )
    widget._failed(RollbackError(heads))
    alarm = widget.alarm
    assert alarm is not None and alarm.isVisible() and widget.error_label.isHidden()
    assert alarm.detail.text() == heads and widget.error_text() == heads
    assert "STOP" in alarm.title.text() and "not a wrong password" in alarm.action.text()
    assert alarm.icon.pixmap() is not None and not alarm.icon.pixmap().isNull()
    _shot(widget, "unlock-rollback-alarm.png")
    widget._failed(WrongPasswordError("The username or password is not right."))
    assert alarm.isHidden() and widget.error_label.isVisible()
    _shot(widget, "unlock-wrong-password.png")
