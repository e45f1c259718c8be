"""The enrolment secret in the app (DESIGN §10.3): the unlock screen names a missing or
wrong secret (never "wrong password") and lets it be typed, "Connect to a practice server…"
takes it from the certificate folder or typed, and Admin › Practice server gives a server made
without one its secret. Against a throwaway PostgreSQL (tests/pg.py), with no OS keystore, so
each folder keeps the secret in its own file as separate computers would."""

from __future__ import annotations

import json
import os
from contextlib import closing
from pathlib import Path
from typing import Any

import psycopg
import pytest

from gpshare.clock import FixedClock
from gpshare.services import open_session
from gpshare.store import enrolment
from gpshare.ui import dialogs
from gpshare.ui.server_setup import EnrolmentSecretDialog, JoinServerDialog
from gpshare.ui.unlock import UnlockWidget
from tests.conftest import PASSWORDS
from tests.pg import Cluster
from tests.test_pg_enrolment_secret import legacy_practice, server_header
from tests.test_pg_server import cheap_kdf, server, server_init  # noqa: F401 - the fixtures
from tests.test_ui_server_admin import _shot, _tab, _wait

pytestmark = pytest.mark.usefixtures("quiet_dialogs", "cheap_kdf", "no_keyring")


@pytest.fixture
def first_pc(
    server: tuple[Cluster, str],  # noqa: F811
    tmp_path: Path,
    capsys: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> tuple[str, Path, dict[str, Any]]:
    """`server init` on an empty database: (its DSN, the first workstation, init's answer)."""
    _cl, dsn = server
    one = tmp_path / "pc"
    return dsn, one, server_init(capsys, monkeypatch, dsn, one)


def _unlock(qtbot: Any, folder: Path) -> UnlockWidget:
    widget = UnlockWidget(FixedClock(), None)
    qtbot.addWidget(widget)
    widget.resize(900, 860)
    widget.show()
    widget.set_vault_folder(folder)
    return widget


def test_a_computer_without_the_secret_is_told_so_and_can_type_it(
    first_pc: tuple[str, Path, dict[str, Any]], tmp_path: Path, qtbot: Any
) -> None:
    dsn, one, created = first_pc
    two = tmp_path / "pc2"
    join = JoinServerDialog(two)
    qtbot.addWidget(join)
    join.show()
    join.dsn_edit.setText(dsn)
    join.secret_edit.setText("ABCD-EFGH")
    join.ok_button.click()
    assert "has 8 characters; an enrolment secret has 52" in join.error_label.text()
    assert join.worker.thread is None  # refused before anything was sent
    _shot(join, "secret-1-join-malformed.png")
    join.secret_edit.clear()
    join.ok_button.click()  # joined without it: the sign-in asks for it
    qtbot.waitUntil(lambda: join.result() != 0, timeout=30000)
    widget = _unlock(qtbot, two)
    widget.username_edit.setText("admin")
    widget.password_edit.setText("not-the-password")
    widget.attempt_unlock()
    told = widget.error_label.text()
    assert "not been given the practice's enrolment secret" in told
    assert "gpshare server enrol" in told and "password is not right" not in told
    assert widget.secret_button.isVisible()
    _shot(widget, "secret-2-unlock-missing.png")

    got: dict[str, Any] = {}

    def give(dialog: EnrolmentSecretDialog) -> None:
        dialog.secret_edit.setText("0" * 52)
        dialog.ok_button.click()
        got["malformed"] = dialog.error_label.text()
        dialog.secret_edit.setText(enrolment.format_secret(enrolment.new_secret()))
        dialog.ok_button.click()
        qtbot.waitUntil(lambda: dialog.error_label.isVisible(), timeout=30000)
        got["mismatch"] = dialog.error_label.text()
        _shot(dialog, "secret-3-dialog-mismatch.png")
        dialogs.set_next_answer(one / enrolment.FILE_NAME)  # "Use a file…"
        dialog.file_button.click()
        got["from_file"] = dialog.secret_edit.text()
        dialog.ok_button.click()
        qtbot.waitUntil(lambda: not dialog.isVisible(), timeout=30000)

    dialogs.set_next_dialog_handler(give)
    widget.secret_button.click()
    assert "'0'" in got["malformed"] and "never used" in got["malformed"]
    assert "does not match" in got["mismatch"]
    assert got["from_file"] == created["enrolment_secret"]
    assert "matches the practice server's" in widget.notice_label.text()
    assert not widget.secret_button.isVisible()
    _shot(widget, "secret-4-unlock-kept.png")
    assert enrolment.read_file(two / enrolment.FILE_NAME) == enrolment.read_file(
        one / enrolment.FILE_NAME
    )
    with closing(open_session(two, "admin", PASSWORDS["admin"])) as s:
        assert s.user.role == "admin"


def test_connect_takes_the_secret_from_the_certificate_folder(
    first_pc: tuple[str, Path, dict[str, Any]], tmp_path: Path, qtbot: Any
) -> None:
    dsn, one, _created = first_pc
    two, certs = tmp_path / "pc2", tmp_path / "certs"
    certs.mkdir()
    # As the enrolment wrote it beside the certificate (here without one: a local server).
    enrolment.write_file(certs / enrolment.FILE_NAME, enrolment.read_file(one / "enrolment.secret"))
    (certs / "client.crt").write_text("")  # the folder check only looks for the file
    join = JoinServerDialog(two)
    qtbot.addWidget(join)
    join.show()
    join.dsn_edit.setText(dsn)
    join.certs_edit.setText(str(certs))
    os.chmod(certs / enrolment.FILE_NAME, 0o644)
    join.ok_button.click()
    assert "can be read by other users" in join.error_label.text()
    _shot(join, "secret-5-join-permissions.png")
    # Typed, it is taken instead of the folder's file (and the empty client.crt is not used).
    join.certs_edit.clear()
    join.secret_edit.setText((one / enrolment.FILE_NAME).read_text().strip())
    join.ok_button.click()
    qtbot.waitUntil(lambda: join.result() != 0, timeout=30000)
    assert (two / enrolment.FILE_NAME).exists()
    with closing(open_session(two, "lead", PASSWORDS["lead"])) as s:
        assert s.user.role == "lead"


@pytest.mark.parametrize("vault_engine", ["postgres"], indirect=True)
def test_the_admin_tab_gives_a_server_made_without_one_its_secret(
    server_dsn: str, tmp_path: Path, qtbot: Any, clock: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    env = legacy_practice(tmp_path / "vault", server_dsn, clock, monkeypatch)
    admin = env.session("admin")
    view, tab = _tab(qtbot, admin)
    assert tab.secret_button.isVisible()
    _shot(view, "secret-6-admin-before.png")
    dialogs.set_next_answer(True)
    tab.secret_button.click()
    asked = dialogs.last_shown("question")
    assert asked is not None and "break-glass envelope" in asked.text
    _wait(qtbot, tab)
    shown = tab.secret_field.text()
    assert tab.secret_field.isVisible() and shown.count("-") == 12
    assert not tab.secret_button.isVisible()
    _shot(view, "secret-7-admin-adopted.png")
    assert server_header(server_dsn)["kdf_mix"] == enrolment.KDF_MIX
    assert enrolment.format_secret(enrolment.read_file(env.folder / "enrolment.secret")) == shown
    admin.close()
    with closing(open_session(env.folder, "drsmith", PASSWORDS["drsmith"], clock)) as s:
        assert s.keys is not None
    with psycopg.connect(server_dsn) as conn:
        actions = [r[0] for r in conn.execute("SELECT action FROM audit ORDER BY seq")]
    assert "enrolment_secret_adopted" in actions and "enrolment_secret_resealed" in actions
    assert json.dumps(server_header(server_dsn)).count(shown) == 0


@pytest.mark.parametrize("vault_engine", ["postgres"], indirect=True)
def test_the_break_glass_dialog_puts_the_secret_in_the_new_envelope(
    vault_env_v2: Any, qtbot: Any
) -> None:
    from gpshare.ui.breakglass import BreakglassDialog
    from tests.test_breakglass import REASON, add_lead

    env = vault_env_v2
    add_lead(env)
    held = enrolment.format_secret(enrolment.read_file(env.folder / enrolment.FILE_NAME))
    with closing(env.session("admin")) as admin:
        dialog = BreakglassDialog(admin)
        qtbot.addWidget(dialog)
        dialog.show()
        dialog.grantee.setCurrentIndex(dialog.grantee.findData("newlead"))
        dialog.reason.setPlainText(REASON)
        dialog.code.setText(env.breakglass_code)
        dialog.ok_button.click()
        assert dialog.pages.currentIndex() == 1
        assert dialog.envelope_secret.isVisible() and held in dialog.envelope_secret.text()
        assert "same envelope" in dialog.envelope_secret.text()
        _shot(dialog, "secret-8-breakglass-envelope.png")
        dialog.typed_back.setText(dialog.new_code.text())
        dialog.done_button.click()
