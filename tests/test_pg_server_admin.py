"""`gpshare server backup|restore|verify|enrol` and the check at connect (issue #14, DESIGN
§10.3), end to end through `gpshare.cli.main` against a throwaway PostgreSQL: two workstation
folders, each with its own rollback anchor (its own computer), one practice server."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from gpshare.store.postgres import integrity as pg_integrity
from tests.conftest import PASSWORDS
from tests.pg import Cluster
from tests.test_pg_server import (  # noqa: F401 - the fixtures
    ONE_TIME,
    cheap_kdf,
    cli,
    practice,
    server,
)

LOSS = "was restored from a backup"


class Practice:
    """Two workstations of one server, each its own computer (its own anchor folder)."""

    def __init__(
        self, cl: Cluster, dsn: str, one: Path, two: Path, tmp: Path, capsys: Any, mp: Any
    ) -> None:
        self.cl, self.dsn, self.one, self.two, self.capsys, self.mp = cl, dsn, one, two, capsys, mp
        self.anchors = {one: tmp / "anchors-one", two: tmp / "anchors-two"}
        # Another OS user of the second computer (its own anchor), who signs in in the app.
        self.app_anchors = tmp / "anchors-app"

    def run(self, pc: Path, user: str, *args: str, **env: str) -> tuple[int, str, str]:
        """`gpshare ARGS --vault PC --user USER` on that computer."""
        return cli(
            self.capsys, self.mp, PASSWORDS[user], *args, "--vault", str(pc), "--user", user,
            **{"GPSHARE_ANCHOR_DIR": str(self.anchors[pc]), **env},
        )  # fmt: skip

    def admin(self, *args: str) -> tuple[int, str, str]:
        """`gpshare server ARGS` as the administrator on the first computer."""
        return self.run(self.one, "admin", "server", *args, "--pg-bin", str(self.cl.bin))

    def users(self, pc: Path) -> list[str]:
        code, out, err = self.run(pc, "admin", "user", "list", "--json")
        assert code == 0, err
        return [u["username"] for u in json.loads(out)]


@pytest.fixture
def two_pcs(
    practice: Path, server: tuple[Cluster, str], tmp_path: Path, capsys: Any,  # noqa: F811
    monkeypatch: pytest.MonkeyPatch,
) -> Practice:  # fmt: skip
    cl, dsn = server
    two = tmp_path / "room-3-pc"
    code, _out, err = cli(capsys, monkeypatch, None, "server", "join", "--dsn", dsn, "--vault", str(two))  # fmt: skip
    assert code == 0, err
    return Practice(cl, dsn, practice, two, tmp_path, capsys, monkeypatch)


@pytest.mark.usefixtures("quiet_dialogs")
def test_backup_then_restore_is_shown_once_on_each_workstation_and_raises_no_alarm(
    two_pcs: Practice, tmp_path: Path, qtbot: Any
) -> None:
    p = two_pcs
    assert p.run(p.two, "lead", "records")[0] == 0  # the second computer has seen the server
    backup = tmp_path / "practice.dump"
    code, out, err = p.admin("backup", "--out", str(backup))
    assert code == 0, err
    assert backup.is_file() and backup.stat().st_mode & 0o077 == 0 and str(backup) in out
    code, _out, err = p.admin("backup", "--out", str(backup))
    assert code == 1 and "already exists" in err  # never overwritten

    # Work after the backup: a new user, and the second computer sees it.
    code, _out, err = p.run(
        p.one, "admin", "user", "add", "drsmith", "--name", "Dr Alex Smith", "--role",
        "clinician", "--gmc", "1234567", GPSHARE_NEW_PASSWORD=ONE_TIME,
    )  # fmt: skip
    assert code == 0, err
    assert "drsmith" in p.users(p.two)
    app_user = dict(GPSHARE_ANCHOR_DIR=str(p.app_anchors))
    assert p.run(p.two, "lead", "records", **app_user)[0] == 0  # the app's user saw it too

    code, out, err = p.admin("restore", "--from", str(backup), "--json")
    assert code == 0, err
    restored = json.loads(out)
    assert restored["events_lost"] > 0 and restored["epoch"] == 1
    assert restored["old_head"]["seq"] > restored["restored_head"]["seq"]

    # The second computer had seen the lost events: told once, no alarm, the loss is real.
    code, out, err = p.run(p.two, "admin", "user", "list", "--json")
    assert code == 0, err
    assert err.count(LOSS) == 1 and "by admin" in err
    assert f"{restored['events_lost']} audit events" in err
    assert "ALARM" not in err
    assert "drsmith" not in [u["username"] for u in json.loads(out)]
    code, _out, err = p.run(p.two, "lead", "records")
    assert code == 0 and LOSS not in err  # once per computer, not once per user
    # The restoring computer already knows (the command said so).
    code, _out, err = p.run(p.one, "lead", "records")
    assert code == 0 and LOSS not in err and "ALARM" not in err

    # In the app: the amber band under the top bar, once; no alarm at the unlock screen.
    p.mp.setenv("GPSHARE_ANCHOR_DIR", str(p.app_anchors))
    shot = _app_unlock(qtbot, p.two, "lead")
    window, band = shot
    assert band.isVisible() and LOSS in band.text.text() and "by admin" in band.text.text()
    window.grab().save(str(_shots() / "restore-notice.png"))
    band.dismiss_button.click()
    assert not band.isVisible()
    window.lock()
    window, band = _app_unlock(qtbot, p.two, "lead")
    assert not band.isVisible()  # once
    window.lock()

    # The chain, every row and every witness (the pre-restore ones included) still verify.
    code, out, err = p.run(p.two, "lead", "server", "verify", "--json")
    assert code == 0, err
    report = json.loads(out)
    assert report["ok"] is True and report["witnesses"] >= 3
    code, out, err = p.run(p.one, "admin", "audit", "log", "--action", "backup_restored", "--json")
    assert code == 0, err
    assert [e["actor"] for e in json.loads(out)] == ["admin"]


def test_restore_refuses_a_file_that_is_not_a_gpshare_backup(
    two_pcs: Practice, tmp_path: Path
) -> None:
    p = two_pcs
    text = tmp_path / "notes.dump"
    text.write_text("not a backup\n")
    code, _out, err = p.admin("restore", "--from", str(text))
    assert code == 1
    assert "not a practice-server backup" in err and "Nothing has been changed" in err
    assert "Traceback" not in err
    code, _out, err = p.admin("restore", "--from", str(tmp_path / "missing.dump"))
    assert code == 1 and "does not exist" in err
    # A pg_dump of some other database is refused too, naming what it lacks.
    other = p.cl.new_database()
    try:
        import psycopg

        with psycopg.connect(p.cl.dsn(other), autocommit=True) as conn:
            conn.execute("CREATE TABLE payroll (id int)")
        foreign = tmp_path / "payroll.dump"
        pg_integrity.dump(p.cl.dsn(other), foreign, p.cl.bin)
    finally:
        p.cl.drop_database(other)
    code, _out, err = p.admin("restore", "--from", str(foreign))
    assert code == 1 and "not of a gpshare practice server" in err and "audit" in err
    code, out, err = p.run(p.one, "lead", "server", "verify")
    assert code == 0, err  # nothing was touched


def test_only_the_administrator_backs_up_restores_and_enrols(
    two_pcs: Practice, tmp_path: Path
) -> None:
    p = two_pcs
    for args in (
        ("backup", "--out", str(tmp_path / "x.dump")),
        ("restore", "--from", str(tmp_path / "x.dump")),
        ("enrol", "--workstation", "reception_2"),
    ):
        code, _out, err = p.run(p.one, "lead", "server", *args)
        assert code == 1, args
        assert "not permitted" in err.lower() or "administrator" in err.lower(), err
    assert not (tmp_path / "x.dump").exists()


def _shots() -> Path:
    """Where a run's renders go for a person to look at (outside the repository)."""
    import tempfile

    folder = Path(tempfile.gettempdir()) / "pgcli"
    folder.mkdir(exist_ok=True)
    return folder


def _app_unlock(qtbot: Any, folder: Path, user: str) -> tuple[Any, Any]:
    """Sign `user` in at the app's unlock screen; (the main window, its notice band)."""
    from gpshare.ui.app import MainWindow

    window = MainWindow(vault_folder=folder)
    qtbot.addWidget(window)
    window.show()
    w = window.unlock_widget
    w.folder_edit.setText(str(folder))
    w.username_edit.setText(user)
    w.password_edit.setText(PASSWORDS[user])
    w.unlock_button.click()
    assert window._session is not None, w.error_text()
    return window, window.notice_banner


@pytest.mark.usefixtures("quiet_dialogs")
def test_a_workstation_refuses_a_server_rolled_back_without_a_restore_record(
    two_pcs: Practice, tmp_path: Path, qtbot: Any
) -> None:
    p = two_pcs
    backup = tmp_path / "old.dump"
    assert p.admin("backup", "--out", str(backup))[0] == 0
    # The second computer sees newer events (sign-ins: no header save in between) ...
    for _ in range(2):
        assert p.run(p.two, "lead", "records")[0] == 0
    code, out, err = p.run(p.two, "lead", "audit", "verify", "--json")
    assert code == 0, err
    seen = json.loads(out)["last_seq"] + 1  # verifying is audited too
    # ... then the database administrator puts the old dump back, recording nothing.
    pg_integrity.restore_dump(p.dsn, backup, p.cl.bin)
    code, out, err = p.run(p.two, "lead", "records")
    assert code == 1
    assert "ROLLBACK OR FORK ALARM" in err and f"audit event {seen} sealed" in err
    assert "its head is event" in err and "Traceback" not in err
    # Nothing was appended: the alarm stays until someone acts, on every sign-in.
    assert p.run(p.two, "lead", "records")[1:] == (out, err)
    # The unlock screen stops at the same alarm.
    from gpshare.ui.unlock import UnlockWidget

    p.mp.setenv("GPSHARE_ANCHOR_DIR", str(p.anchors[p.two]))
    widget = UnlockWidget(None, p.two)
    qtbot.addWidget(widget)
    widget.resize(900, 640)
    widget.show()
    widget.username_edit.setText("lead")
    widget.password_edit.setText(PASSWORDS["lead"])
    widget.unlock_button.click()
    text = widget.error_text()
    assert "ROLLBACK OR FORK ALARM" in text and f"audit event {seen} sealed" in text
    assert widget.restore_button.isHidden()  # no local backup repairs a server
    # A red panel with both heads and what to do, not the wrong-password line (pgui).
    assert widget.alarm is not None and widget.alarm.isVisible()
    assert widget.error_label.isHidden() and "its head is event" in widget.alarm.detail.text()
    assert "Call the practice manager" in widget.alarm.action.text()
    widget.grab().save(str(_shots() / "rollback-alarm.png"))
    # The computer that never saw the newer events cannot tell (the documented limit).
    assert p.run(p.one, "lead", "records")[0] == 0


def test_enrol_prints_the_role_and_the_pg_hba_line_and_revoke_retires_it(
    two_pcs: Practice,
) -> None:
    import psycopg

    from gpshare.errors import StoreError
    from gpshare.store.postgres.engine import PostgresStore

    p = two_pcs
    dbname = p.dsn.split("dbname=")[1].split()[0]
    group = f"ws_{p.one.parent.name}"[:60]
    name = f"rec_{dbname}"[:40]
    role = f"gpshare_ws_{name}"
    try:
        code, out, err = p.admin("enrol", "--workstation", name, "--role", group)
        assert code == 1 and "--out FOLDER" in err  # enrolment issues a certificate
        certs = p.one.parent / "certs"
        code, out, err = p.admin("enrol", "--workstation", name, "--role", group, "--out", str(certs))  # fmt: skip
        assert code == 0, err
        assert f"database role {role}" in out
        assert f"hostssl {dbname} +{group} 0.0.0.0/0 cert" in out
        # The new role signs in and reads (as a member of the workstation group) ...
        with psycopg.connect(p.cl.dsn(dbname, role)) as conn:
            assert conn.execute("SELECT count(*) FROM audit").fetchone()[0] > 0  # type: ignore[index]
        code, _out, err = p.admin("enrol", "--workstation", name, "--role", group, "--out", str(certs / "again"))  # fmt: skip
        assert code == 1 and "already enrolled" in err
        assert not (certs / "again").exists()  # nothing written for a refused enrolment
        code, out, err = p.admin("enrol", "--workstation", name, "--role", group, "--revoke", "--json")  # fmt: skip
        assert code == 0, err
        assert json.loads(out)["role"] == role
        # ... and after the revoke it no longer can, told to ask for re-enrolment.
        with pytest.raises(StoreError, match="refused this computer's sign-in"):
            PostgresStore.connect(p.cl.dsn(dbname, role), None)  # type: ignore[arg-type]
        code, out, err = p.run(p.one, "admin", "audit", "log", "--json")
        actions = [e["action"] for e in json.loads(out)]
        assert "workstation_enrolled" in actions and "workstation_revoked" in actions
    finally:
        with psycopg.connect(p.cl.dsn(), autocommit=True) as conn:
            conn.execute(f'DROP ROLE IF EXISTS "{role}"')
    code, _out, err = p.admin("enrol", "--workstation", "front desk; DROP", "--role", group, "--out", str(p.one.parent / "x"))  # fmt: skip
    assert code == 1 and "not usable" in err and "letters, digits or underscores" in err


def test_server_verify_exits_non_zero_naming_an_edited_row(two_pcs: Practice) -> None:
    import psycopg

    from tests.conftest import SCENARIOS
    from tests.test_pg_server import ELLIE

    p = two_pcs
    code, out, err = p.run(
        p.two, "lead", "assess", "--answers", str(SCENARIOS / f"{ELLIE}.json"), "--complete",
        "--json",
    )  # fmt: skip
    assert code == 0, err
    rid = json.loads(out)["record_id"]
    code, out, err = p.run(p.one, "lead", "server", "verify")
    assert code == 0, err
    assert "Every sealed row matches its audit event" in out
    with psycopg.connect(p.dsn, autocommit=True) as dba:  # the DBA, triggers off
        dba.execute("SET session_replication_role = replica")
        dba.execute(
            "UPDATE records SET answers_ct = answers_ct || '\\x00'::bytea WHERE id = %s",
            (rid,),
        )
    code, out, err = p.run(p.one, "admin", "server", "verify", "--json")
    assert code == 1
    report = json.loads(out)
    assert report["ok"] is False and report["chain_ok"] is True
    assert [(f["table"], f["row"]) for f in report["findings"]] == [("records", rid)]


def test_a_clinician_is_refused_every_server_command_naming_their_role(
    two_pcs: Practice, tmp_path: Path
) -> None:
    p = two_pcs
    code, _out, err = p.run(
        p.one, "admin", "user", "add", "drsmith", "--name", "Dr Alex Smith", "--role",
        "clinician", "--gmc", "1234567", GPSHARE_NEW_PASSWORD=ONE_TIME,
    )  # fmt: skip
    assert code == 0, err
    code, _out, err = cli(
        p.capsys, p.mp, ONE_TIME, "user", "passwd", "--vault", str(p.two), "--user", "drsmith",
        GPSHARE_NEW_PASSWORD=PASSWORDS["drsmith"], GPSHARE_ANCHOR_DIR=str(p.anchors[p.two]),
    )  # fmt: skip
    assert code == 0, err
    for args in (
        ("verify",),
        ("backup", "--out", str(tmp_path / "x.dump")),
        ("restore", "--from", str(tmp_path / "x.dump")),
        ("enrol", "--workstation", "reception_9", "--out", str(tmp_path / "certs")),
        ("ca-cert", "--out", str(tmp_path / "ca.crt")),
    ):
        code, out, err = p.run(p.two, "drsmith", "server", *args, "--json")
        assert code == 1, args
        assert "Not permitted for your role (clinician)" in err and "Traceback" not in err, err
        assert json.loads(out)["ok"] is False
    for made in ("x.dump", "certs", "ca.crt"):
        assert not (tmp_path / made).exists()
    # Each refusal is in the audit trail, naming what was attempted and the role.
    code, out, err = p.run(p.one, "admin", "audit", "log", "--action", "permission_denied", "--json")  # fmt: skip
    assert code == 0, err
    denied = [e["details"] for e in json.loads(out) if e["actor"] == "drsmith"]
    assert {d["attempted"] for d in denied} == {"verify_audit", "backup", "restore", "enrol_workstation"}  # fmt: skip
    assert {d["role"] for d in denied} == {"clinician"}
