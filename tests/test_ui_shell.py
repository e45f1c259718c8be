"""The desktop shell through the UI: unlock, remember me, role navigation, lock and auto-lock."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QApplication, QLabel, QLineEdit, QPushButton, QWidget

from gpshare.ui import dialogs
from gpshare.ui.app import MainWindow, nav_entries_for
from tests.conftest import PASSWORDS

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(autouse=True)
def seam():
    dialogs.reset()
    dialogs.set_non_interactive(True)
    yield
    dialogs.reset()


@pytest.fixture
def window(qtbot, vault_env, clock):
    win = MainWindow(clock=clock, vault_folder=vault_env.folder)
    qtbot.addWidget(win)
    win.show()
    win.activateWindow()
    qtbot.waitActive(win)
    return win


def unlock(window: MainWindow, username: str, password: str | None = None) -> None:
    w = window.unlock_widget
    w.folder_edit.setText(str(w.vault_folder))
    w.username_edit.setText(username)
    w.password_edit.setText(PASSWORDS[username] if password is None else password)
    w.unlock_button.click()


def child(widget: QWidget, cls: type, name: str):  # type: ignore[no-untyped-def]
    found = widget.findChild(cls, name)
    assert found is not None, name
    return found


# ----- unlock ---------------------------------------------------------------------------------
def test_unlock_screen_first_without_patient_data(window):
    assert window.is_locked
    assert window.unlock_widget.isVisible()
    assert window.windowTitle() == "gpshare"
    assert not window.lock_action.isEnabled()
    assert window.visible_nav_keys() == []


def test_unlock_with_right_password(window, qtbot):
    with qtbot.waitSignal(window.unlocked, timeout=5000) as blocker:
        unlock(window, "drsmith")
    session = blocker.args[0]
    assert window.session is session and session.is_open
    assert session.user.username == "drsmith"
    assert window.windowTitle() == "gpshare — Canal Street Surgery"
    assert not window.unlock_widget.isVisible()
    status = child(window, QLabel, "status.user").text()
    assert "Dr Alex Smith" in status and "Clinician" in status
    assert child(window, QLabel, "status.practice").text() == "Canal Street Surgery"
    assert window.unlock_widget.password_edit.text() == ""


def test_unlock_by_keyboard_only(window, qtbot):
    w = window.unlock_widget
    w.username_edit.setFocus()
    qtbot.keyClicks(w.username_edit, "lead")
    qtbot.keyClick(w.username_edit, Qt.Key.Key_Return)  # moves on to the password
    assert w.password_edit.hasFocus() or QApplication.focusWidget() is w.password_edit
    qtbot.keyClicks(w.password_edit, PASSWORDS["lead"])
    with qtbot.waitSignal(window.unlocked, timeout=5000):
        qtbot.keyClick(w.password_edit, Qt.Key.Key_Return)
    assert window.session is not None


def test_wrong_password_shows_message_and_clears_field(window):
    unlock(window, "drsmith", "not-the-password")
    w = window.unlock_widget
    assert window.is_locked
    assert w.error_text().startswith("That password is not right for this user.")
    assert "Traceback" not in w.error_text()
    assert w.password_edit.text() == ""
    assert w.username_edit.text() == "drsmith"


def test_unknown_user_message(window):
    unlock(window, "nobody", "whatever-password")
    assert "There is no user called 'nobody'" in window.unlock_widget.error_text()


def test_not_a_vault_message(window, tmp_path):
    window.unlock_widget.set_vault_folder(tmp_path / "empty")
    (tmp_path / "empty").mkdir()
    unlock(window, "drsmith")
    assert "is not a gpshare vault" in window.unlock_widget.error_text()


def test_missing_username_or_password(window):
    w = window.unlock_widget
    w.username_edit.clear()
    w.unlock_button.click()
    assert w.error_text() == "Type your username."
    w.username_edit.setText("drsmith")
    w.unlock_button.click()
    assert w.error_text() == "Type your password."


def test_locked_out_countdown(window, clock):
    w = window.unlock_widget
    unlock(window, "drsmith", "wrong-password-1")
    unlock(window, "drsmith", "wrong-password-2")  # same instant: backing off
    assert w.error_text().startswith("Too many failed attempts for 'drsmith'. Wait 1 second")
    assert w.locked_out
    assert not w.unlock_button.isEnabled()
    assert w.countdown_label.isVisible()
    assert "1 second" in w.countdown_label.text()
    clock.advance(0.5)
    w.update_lockout()
    assert not w.unlock_button.isEnabled()
    clock.advance(0.6)
    w.update_lockout()
    assert w.unlock_button.isEnabled()
    assert not w.countdown_label.isVisible()
    unlock(window, "drsmith")
    assert window.session is not None


# ----- remember me ----------------------------------------------------------------------------------
def test_remember_me_hidden_without_keyring(window, no_keyring):
    w = window.unlock_widget
    w.refresh_keyring()
    assert w.keyring_probed
    assert w.remember_check.isHidden()
    assert w.keyring_button.isHidden()


def test_remember_me_with_keyring_then_unlock_with_remembered_login(window, memory_keyring, qtbot):
    w = window.unlock_widget
    w.refresh_keyring()
    assert w.remember_check.isVisible()
    w.remember_check.setChecked(True)
    unlock(window, "drsmith")
    session = window.session
    assert session is not None
    assert session.vault.has_keyring_slot("drsmith")
    assert memory_keyring.store  # a random secret, never the password
    assert PASSWORDS["drsmith"] not in memory_keyring.store.values()
    assert window.forget_login_action.isEnabled()
    window.lock()
    w.refresh_remembered()
    assert w.keyring_button.isVisible()
    with qtbot.waitSignal(window.unlocked, timeout=5000):
        w.keyring_button.click()
    assert window.session is not None and window.session.user.username == "drsmith"


def test_remember_me_reports_refusing_keyring(window, memory_keyring):
    def refuse(*_args):
        raise RuntimeError("locked keychain")

    memory_keyring.set_password = refuse  # type: ignore[method-assign]
    w = window.unlock_widget
    w.refresh_keyring()
    w.remember_check.setChecked(True)
    unlock(window, "drsmith")
    assert window.session is not None  # carries on with the password
    shown = dialogs.last_shown("warning")
    assert shown is not None and "refused to store the secret" in shown.text


# ----- navigation per role -------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("username", "expected"),
    [
        ("drsmith", ["new_assessment", "my_records"]),
        ("lead", ["new_assessment", "my_records", "lead_workspace"]),
        ("admin", ["admin"]),
    ],
)
def test_navigation_per_role(window, username, expected):
    unlock(window, username)
    assert window.visible_nav_keys() == expected
    for key in ("new_assessment", "my_records", "lead_workspace", "admin"):
        button = window.findChild(QPushButton, f"nav.{key}")
        assert (button is not None) == (key in expected)
    # each role lands on its work: the lead on the workspace (Needs action), others first entry
    assert window.current_page_key == ("lead_workspace" if username == "lead" else expected[0])
    assert [e.key for e in nav_entries_for(window.session.user.role)] == expected


def test_clinician_cannot_navigate_to_admin(window):
    unlock(window, "drsmith")
    assert window.navigate("admin") is None
    assert window.navigate("lead_workspace") is None
    assert window.page("admin") is None


def test_nav_buttons_switch_pages_and_placeholders_have_names(window, qtbot):
    unlock(window, "lead")
    qtbot.mouseClick(window.nav_button("my_records"), Qt.MouseButton.LeftButton)
    assert window.current_page_key == "my_records"
    assert window.page_stack.currentWidget().objectName() == "page.my_records"
    qtbot.keyClick(window, Qt.Key.Key_3, Qt.KeyboardModifier.ControlModifier)
    qtbot.waitUntil(
        lambda: window.current_page_key == "lead_workspace", timeout=2000
    )  # animated click


def test_register_page_factory_recreated_after_lock(window):
    built = []

    def factory(session, win):
        assert win is window and session.is_open
        page = QLabel(f"records of {session.user.username}")
        built.append(page)
        return page

    window.register_page("my_records", factory)
    unlock(window, "drsmith")
    assert window.navigate("my_records") is built[0]
    window.lock()
    assert window.page("my_records") is None
    unlock(window, "drsmith")
    assert window.current_page_key == "my_records"  # the page shown before the lock
    assert len(built) == 2 and window.page("my_records") is built[1]


# ----- lock and auto-lock -----------------------------------------------------------------------------
def test_ctrl_l_locks(window, qtbot):
    unlock(window, "drsmith")
    session = window.session
    window.navigate("my_records")
    window.activateWindow()
    with (
        qtbot.waitSignal(window.about_to_lock, timeout=2000),
        qtbot.waitSignal(window.locked, timeout=2000),
    ):
        qtbot.keyClick(
            window.page_stack.currentWidget(), Qt.Key.Key_L, Qt.KeyboardModifier.ControlModifier
        )
    assert window.session is None
    assert not session.is_open
    with pytest.raises(Exception, match="locked"):
        _ = session.db_key
    assert window.unlock_widget.isVisible()
    assert window.unlock_widget.username_edit.text() == "drsmith"
    assert window.page("my_records") is None
    assert window.windowTitle() == "gpshare"
    assert window.visible_nav_keys() == []


def test_lock_emits_about_to_lock_while_session_open_and_restores_page(window, qtbot):
    seen = []
    window.about_to_lock.connect(
        lambda: seen.append(window.session is not None and window.session.is_open)
    )
    unlock(window, "lead")
    window.navigate("lead_workspace")
    window.lock_state["wizard"] = {"record_id": "SG-TEST-0001", "step": "child"}
    window.lock()
    assert seen == [True]
    with qtbot.waitSignal(window.unlocked, timeout=5000):
        unlock(window, "lead")
    assert window.current_page_key == "lead_workspace"
    assert window.lock_state["wizard"]["step"] == "child"


def test_different_user_after_lock_gets_fresh_state(window):
    unlock(window, "lead")
    window.navigate("lead_workspace")
    window.lock_state["wizard"] = {"record_id": "SG-TEST-0001"}
    window.lock()
    unlock(window, "drsmith")
    assert window.current_page_key == "new_assessment"
    assert window.lock_state == {}


def test_auto_lock_after_idle_time_not_before(window, clock):
    unlock(window, "drsmith")
    assert window.auto_lock_after.total_seconds() == 5 * 60
    clock.advance(5 * 60 - 1)
    assert window.check_idle() is False
    assert window.session is not None
    clock.advance(2)
    assert window.check_idle() is True
    assert window.session is None
    assert "locked itself after 5 minutes" in window.unlock_widget.notice_label.text()


def test_activity_resets_idle_timer(window, clock, qtbot):
    unlock(window, "drsmith")
    clock.advance(4 * 60)
    qtbot.keyClick(window.page_stack.currentWidget(), Qt.Key.Key_Shift)
    clock.advance(4 * 60)
    assert window.check_idle() is False
    clock.advance(61)
    assert window.check_idle() is True


def test_auto_lock_minutes_come_from_settings(window, vault_env, clock):
    admin = vault_env.session("admin")
    admin.practice.update_settings({"auto_lock_minutes": "2"})
    admin.close()
    unlock(window, "drsmith")
    clock.advance(119)
    assert not window.check_idle()
    clock.advance(2)
    assert window.check_idle()


def test_close_backs_up_and_closes_session(window, vault_env):
    unlock(window, "drsmith")
    session = window.session
    window.close()
    assert not session.is_open
    backups = [p for p in (vault_env.folder / "backups").iterdir() if not p.name.startswith(".")]
    assert len(backups) == 1


# ----- passwords -------------------------------------------------------------------------------------
def _otp_for(vault_env, username: str) -> str:
    admin = vault_env.session("admin")
    try:
        return admin.users.reset_password(username)
    finally:
        admin.close()


def test_must_change_password_before_main_window(window, vault_env, qtbot):
    otp = _otp_for(vault_env, "drsmith")
    attempts = []

    def choose(dialog):
        assert dialog.findChild(QLineEdit, "change_password.current") is None  # already typed
        new = child(dialog, QLineEdit, "change_password.new")
        repeat = child(dialog, QLineEdit, "change_password.repeat")
        ok = child(dialog, QPushButton, "change_password.ok")
        new.setText("short")
        repeat.setText("short")
        ok.click()
        attempts.append(child(dialog, QLabel, "change_password.error").text())
        new.setText("a brand new passphrase")
        repeat.setText("a different passphrase")
        ok.click()
        attempts.append(child(dialog, QLabel, "change_password.error").text())
        repeat.setText("a brand new passphrase")
        ok.click()

    dialogs.set_next_dialog_handler(choose)
    with qtbot.waitSignal(window.unlocked, timeout=5000):
        unlock(window, "drsmith", otp)
    assert attempts[0].startswith("Password must be at least 10 characters")
    assert attempts[1].startswith("The two new passwords are different")
    assert window.session is not None and not window.session.user.must_change_password
    window.lock()
    unlock(window, "drsmith", otp)
    assert window.is_locked and "not right" in window.unlock_widget.error_text()
    vault_env.clock.advance(5)
    unlock(window, "drsmith", "a brand new passphrase")
    assert window.session is not None


def test_cancelling_forced_password_change_stays_locked(window, vault_env):
    otp = _otp_for(vault_env, "drsmith")
    dialogs.set_next_dialog_handler(
        lambda d: child(d, QPushButton, "change_password.cancel").click()
    )
    unlock(window, "drsmith", otp)
    assert window.is_locked
    assert "choose your own password" in window.unlock_widget.error_text()
    # the vault lock was released: the service can open it again
    vault_env.session("admin").close()


def test_change_password_from_menu(window, vault_env):
    unlock(window, "drjones")

    def change(dialog):
        child(dialog, QLineEdit, "change_password.current").setText("wrong-current-pw")
        child(dialog, QLineEdit, "change_password.new").setText("jones new passphrase")
        child(dialog, QLineEdit, "change_password.repeat").setText("jones new passphrase")
        child(dialog, QPushButton, "change_password.ok").click()
        assert "not your current password" in child(dialog, QLabel, "change_password.error").text()
        child(dialog, QLineEdit, "change_password.current").setText(PASSWORDS["drjones"])
        child(dialog, QPushButton, "change_password.ok").click()

    dialogs.set_next_dialog_handler(change)
    window.change_password_action.trigger()
    assert dialogs.last_shown("dialog").answer == 1
    window.lock()
    unlock(window, "drjones", "jones new passphrase")
    assert window.session is not None


def test_about_goes_through_dialog_seam(window):
    window.about_action.trigger()
    shown = dialogs.last_shown("information")
    assert shown is not None and shown.title == "About gpshare"


def test_unexpected_prompt_fails_loudly_in_tests():
    with pytest.raises(dialogs.UnexpectedDialog):
        dialogs.question(None, "Sure?", "Really?")
    dialogs.set_next_answer(True)
    assert dialogs.question(None, "Sure?", "Really?") is True


# ----- start-up --------------------------------------------------------------------------------------
def _run(code_or_args: list[str], tmp_path: Path) -> subprocess.CompletedProcess[str]:
    env = dict(
        os.environ, QT_QPA_PLATFORM="offscreen", GPSHARE_VAULT=str(tmp_path / "no-vault-here")
    )
    return subprocess.run(
        [sys.executable, *code_or_args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_smoke_test_flag(tmp_path):
    result = _run(["-m", "gpshare", "--smoke-test", "--vault", str(tmp_path / "v")], tmp_path)
    assert result.returncode == 0, result.stderr
    # First the unlock screen, painted, its username field ready for typing (the start-up
    # budget, timed by bench/startup.py); then the menus' actions and the workspace, built
    # on the next turn.
    assert result.stdout.splitlines()[:2] == [
        "smoke-test: unlock screen shown",
        "smoke-test: start-up complete",
    ]
    assert not (tmp_path / "v").exists()  # the smoke test creates nothing


def test_app_options_parsed_and_qt_options_left_to_qt(capsys):
    from gpshare.ui.app import _parse, run_app

    assert _parse([]) == (None, False)
    assert _parse(["--vault", "D:/v", "--smoke-test"]) == ("D:/v", True)
    assert _parse(["-platform", "offscreen", "--vault=/srv/v"]) == ("/srv/v", False)
    assert run_app(["--vault"]) == 2  # before any window is made
    assert "--vault needs a folder" in capsys.readouterr().err


def test_unlock_form_is_painted_first_ready_for_typing(tmp_path):
    """What the start-up budget times: the unlock form itself, painted, with the username
    field focused, in the main window; built without the modules and Qt types that come
    later (the `Qt` namespace and QStyle cost ~14 and ~5 ms the first time they are named).
    The menus' actions, workspace and status bar are added in place, nothing moves."""
    code = (
        "import sys\n"
        "from pathlib import Path\n"
        "from PySide6.QtCore import QObject\n"
        "from PySide6.QtWidgets import QApplication\n"
        "from gpshare.ui import style\n"
        "app = QApplication(['gpshare', *style.FUSION_ARGS])\n"
        "style.apply(app, fusion_chosen=True)\n"
        "from gpshare.ui.app import MainWindow, unlock_screen_ready\n"
        "w = MainWindow(vault_folder=Path(sys.argv[1]), install_pages=True, defer_build=True)\n"
        "class Paints(QObject):\n"
        "    count = 0\n"
        "    def eventFilter(self, obj, event):\n"
        "        self.count += event.type() == event.Type.Paint\n"
        "        return False\n"
        "unlock = w.unlock_widget\n"
        "paints = Paints(); unlock.username_edit.installEventFilter(paints)\n"
        "late = ('gpshare.ui.dialogs', 'gpshare.ui.widgets', 'gpshare.clock', 'gpshare.help',\n"
        "        'gpshare.services', 'dataclasses', 'argparse_used')\n"
        "import PySide6.QtCore as core, PySide6.QtWidgets as widgets\n"
        "types = [n for n in ('Qt',) if n in vars(core)] + [n for n in ('QStyle',) if n in vars(widgets)]\n"
        "w.show(); app.processEvents()\n"
        "print(sorted(m for m in late if m in sys.modules), types)\n"
        "print(unlock_screen_ready(w), paints.count > 0, w.is_built)\n"
        "print([a.text() for a in w.menuBar().actions()], w.statusBar().isVisible())\n"
        "geometry = unlock.username_edit.mapTo(w, unlock.username_edit.rect().topLeft())\n"
        "size = w.size()\n"
        "w.finish_build(); app.processEvents()\n"
        "same = unlock.username_edit.mapTo(w, unlock.username_edit.rect().topLeft()) == geometry\n"
        "print(unlock_screen_ready(w), w.is_built, same, w.size() == size, w.unlock_widget is unlock)\n"
        "print(len(w.menuBar().actions()[0].menu().actions()) > 0, w.statusBar().isVisible())\n"
        "print(unlock.folder_edit.text() == sys.argv[1])\n"
    )
    result = _run(["-c", code, str(tmp_path / "v")], tmp_path)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.strip().splitlines()[-6:]
    assert lines[0] == "[] []"  # none of the later modules, no `Qt` namespace, no QStyle type
    assert lines[1] == "True True False"  # painted, username focused, not yet built
    assert lines[2] == "['&File', '&Help'] False"  # the menu bar is there from the start
    assert lines[3] == "True True True True True"  # then built in place: nothing moved
    assert lines[4] == "True False"  # the menus have their actions; no status bar while locked
    assert lines[5] == "True"


RENDER_UNLOCK = """
import sys
from pathlib import Path
from PySide6.QtWidgets import QApplication
from gpshare.ui import style
from gpshare.ui.app import MainWindow
start_up = sys.argv[2] == "start-up"
app = QApplication(["gpshare", *style.FUSION_ARGS] if start_up else ["gpshare"])
style.apply(app, fusion_chosen=start_up)
w = MainWindow(vault_folder=Path("/srv/gpshare/vault"), defer_build=start_up)
w.show()
app.processEvents()
w.grab().save(sys.argv[1])
"""


def test_unlock_screen_painted_at_start_up_looks_like_the_built_one(tmp_path):
    """The unlock screen as the start-up paints it first (Fusion chosen by argument, only the
    unlock screen built) is pixel for pixel the unlock screen of a fully built window."""
    from PySide6.QtGui import QImage

    images = []
    for way in ("start-up", "built"):
        path = tmp_path / f"{way}.png"
        result = _run(["-c", RENDER_UNLOCK, str(path), way], tmp_path)
        assert result.returncode == 0, result.stderr
        images.append(QImage(str(path)))
    assert images[0].size() == images[1].size()
    assert images[0] == images[1]


def test_nothing_heavy_imported_before_unlock_screen(tmp_path):
    code = (
        "import sys\n"
        "from PySide6.QtWidgets import QApplication\n"
        "app = QApplication([])\n"
        "from gpshare.ui.app import MainWindow\n"
        # repaint(), not processEvents(): the keyring probe is a 50 ms timer that is meant to
        # run after the first paint, and on a busy machine processEvents() can reach it.
        "w = MainWindow(vault_folder=None); w.show(); w.repaint()\n"
        "heavy = ('reportlab', 'pyhanko', 'PySide6.QtPdf', 'PySide6.QtPdfWidgets', 'gpshare.services', 'sqlcipher3')\n"
        "print(sorted(m for m in heavy if m in sys.modules))\n"
    )
    result = _run(["-c", code], tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().splitlines()[-1] == "[]"


def test_demo_vault_created_when_missing(tmp_path, monkeypatch, capsys):
    import gpshare.demo
    from gpshare.ui import app

    calls = []

    def fake(folder):
        calls.append(folder)
        return {
            "vault": str(folder),
            "recovery_code": "X",
            "users": [{"username": "drpatel", "role": "clinician", "password": "demo-gp-pass"}],
        }

    monkeypatch.setattr(gpshare.demo, "create_demo_vault", fake)
    app._create_demo_if_missing(tmp_path / "v")
    out = capsys.readouterr().out
    assert calls == [tmp_path / "v"]
    assert "drpatel" in out and "demo-gp-pass" in out
    (tmp_path / "w").mkdir()
    (tmp_path / "w" / "vault.json").write_text("{}")
    app._create_demo_if_missing(tmp_path / "w")
    assert len(calls) == 1


def test_unlock_screen_tab_order_and_accessible_names(window, memory_keyring):
    w = window.unlock_widget
    w.refresh_keyring()
    chain = [w.username_edit]
    while len(chain) < 5:
        nxt = chain[-1].nextInFocusChain()
        while not (nxt.focusPolicy() & Qt.FocusPolicy.TabFocus) or nxt.isHidden():
            nxt = nxt.nextInFocusChain()
        chain.append(nxt)
    assert chain == [
        w.username_edit,
        w.password_edit,
        w.remember_check,
        w.unlock_button,
        w.folder_edit,
    ]
    for edit in (w.username_edit, w.password_edit, w.folder_edit):
        assert edit.accessibleName()
    assert w.password_edit.echoMode() == QLineEdit.EchoMode.Password
    assert w.unlock_button.isDefault()
    assert window.lock_action.shortcut().toString() == "Ctrl+L"


def test_unlock_form_enums_set_by_name_are_the_qt_values(window):
    """The unlock form sets Qt enums by name (no `Qt` namespace before its first paint)."""
    from gpshare.ui.unlock import _set_enums

    w = window.unlock_widget
    hints = Qt.InputMethodHint
    assert w.username_edit.inputMethodHints() == (
        hints.ImhNoAutoUppercase | hints.ImhNoPredictiveText
    )
    assert w.password_edit.inputMethodHints() == (
        hints.ImhHiddenText | hints.ImhSensitiveData | hints.ImhNoPredictiveText
    )
    assert w.error_label.textFormat() == Qt.TextFormat.PlainText
    assert w.error_label.textInteractionFlags() == Qt.TextInteractionFlag.TextSelectableByMouse
    footer = next(label for label in w.findChildren(QLabel) if "OFFICIAL" in label.text())
    assert footer.alignment() == Qt.AlignmentFlag.AlignCenter
    with pytest.raises(ValueError, match="alignment"):
        _set_enums(footer, alignment="AlignMiddle")
