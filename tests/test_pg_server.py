"""`gpshare server init/join` and the services on a practice server (issue #14): two
workstation folders on one machine, one throwaway PostgreSQL (tests/pg.py), driven through
the command line as a practice would; the header's home on the server and its checks."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest

from gpshare.cli import main
from gpshare.errors import RollbackError, StoreError, TamperedError
from gpshare.filters import AuditFilter
from gpshare.services import open_session
from gpshare.store import crypto
from tests.conftest import PASSWORDS, SCENARIOS, drop_server_database
from tests.pg import Cluster, dump_holds, pg_dump

ONE_TIME = "one-time-password-9"
ELLIE = "01-bruised-toddler-parents-agree"
MONITOR = "03-low-level-concern-monitor"


@pytest.fixture
def cheap_kdf(monkeypatch: pytest.MonkeyPatch) -> None:
    # `server init` calibrates Argon2id to about half a second; the tests need no such cost.
    monkeypatch.setattr(crypto, "calibrate", lambda *a, **k: crypto.CHEAP_TEST_KDF)


@pytest.fixture
def server(pg_cluster: Cluster) -> Iterator[tuple[Cluster, str]]:
    """An empty database on the session's cluster: (cluster, its DSN)."""
    name = pg_cluster.new_database()
    yield pg_cluster, pg_cluster.dsn(name)
    drop_server_database(pg_cluster, name)


def cli(
    capsys: Any, monkeypatch: pytest.MonkeyPatch, password: str | None, *args: str, **env: str
) -> tuple[int, str, str]:
    """Run `gpshare ARGS` with the acting password (and any other GPSHARE_* variables)."""
    for name in ("GPSHARE_PASSWORD", "GPSHARE_NEW_PASSWORD"):
        monkeypatch.delenv(name, raising=False)
    if password is not None:
        monkeypatch.setenv("GPSHARE_PASSWORD", password)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def server_init(capsys: Any, monkeypatch: pytest.MonkeyPatch, dsn: str, folder: Path) -> Any:
    code, out, err = cli(
        capsys, monkeypatch, PASSWORDS["admin"], "server", "init", "--dsn", dsn,
        "--vault", str(folder), "--practice", "Canal Street Surgery", "--admin", "admin",
        "--name", "Pat Admin", "--lead", "lead", "--lead-name", "Dr Priya Natarajan",
        "--role", f"ws_{folder.parent.name}"[:60], "--json",
        GPSHARE_LEAD_PASSWORD=PASSWORDS["lead"],
    )  # fmt: skip
    assert code == 0, err
    return json.loads(out)


@pytest.fixture
def practice(
    server: tuple[Cluster, str], tmp_path: Path, capsys: Any, monkeypatch: pytest.MonkeyPatch,
    cheap_kdf: None,
) -> Path:  # fmt: skip
    """A practice made by `server init` on `server`; its first workstation folder."""
    server_init(capsys, monkeypatch, server[1], tmp_path / "pc")
    return tmp_path / "pc"


def test_two_workstations_are_one_practice(
    server: tuple[Cluster, str], tmp_path: Path, capsys: Any, monkeypatch: pytest.MonkeyPatch,
    cheap_kdf: None,
) -> None:  # fmt: skip
    cl, dsn = server
    one, two = tmp_path / "reception-pc", tmp_path / "room-3-pc"
    created = server_init(capsys, monkeypatch, dsn, one)
    dbname = dsn.split("dbname=")[1].split()[0]
    assert created["format_version"] == 2 and created["server"].endswith(dbname)
    # The second PC logs in as its own role, a member of the workstation role (least
    # privilege: no DELETE, no UPDATE of what is append-only), not as the database's owner.
    login = f"pc_{dbname}"
    with psycopg.connect(cl.dsn(), autocommit=True) as conn:
        conn.execute(f'CREATE ROLE "{login}" LOGIN NOSUPERUSER IN ROLE "ws_{tmp_path.name}"')
    try:
        _one_practice(cl, dsn, cl.dsn(dbname, login), one, two, created, capsys, monkeypatch)
    finally:
        with psycopg.connect(cl.dsn(), autocommit=True) as conn:
            conn.execute(f'DROP OWNED BY "{login}"')
            conn.execute(f'DROP ROLE "{login}"')


def _one_practice(
    cl: Cluster, dsn: str, dsn_two: str, one: Path, two: Path, created: Any, capsys: Any,
    monkeypatch: pytest.MonkeyPatch, *join_args: str,
) -> None:  # fmt: skip
    """Join `two` (with `join_args`, e.g. the enrolment secret), then a clinician on each PC
    completes a record, the lead sees both, and the server's dump holds no child's name."""
    code, out, err = cli(capsys, monkeypatch, None, "server", "join", "--dsn", dsn_two, "--vault", str(two), "--json", *join_args)  # fmt: skip
    assert code == 0, err
    assert json.loads(out)["practice"] == "Canal Street Surgery"
    for folder, url in ((one, dsn), (two, dsn_two)):
        # The workstation's vault.json names the server and holds no key, slot or password.
        pointer = json.loads((folder / "vault.json").read_text())
        assert pointer["engine"] == "postgres" and pointer["dsn"] == url
        assert "slots" not in pointer and "password" not in json.dumps(pointer)
        assert created["recovery_code"] not in json.dumps(pointer)
        assert not (folder / "records.db").exists()

    # The administrator (on the first PC) adds two clinicians; each chooses their own password
    # at their own PC, and the lead confirms their keys from either PC.
    for username, full, gmc, pc in (
        ("drsmith", "Dr Alex Smith", "1234567", two),
        ("drjones", "Dr Sam Jones", "2345678", one),
    ):
        code, _out, err = cli(
            capsys, monkeypatch, PASSWORDS["admin"], "user", "add", username, "--vault", str(one),
            "--user", "admin", "--name", full, "--role", "clinician", "--gmc", gmc,
            GPSHARE_NEW_PASSWORD=ONE_TIME,
        )  # fmt: skip
        assert code == 0, err
        code, _out, err = cli(
            capsys, monkeypatch, ONE_TIME, "user", "passwd", "--vault", str(pc), "--user",
            username, GPSHARE_NEW_PASSWORD=PASSWORDS[username],
        )  # fmt: skip
        assert code == 0, err
        code, out, err = cli(capsys, monkeypatch, PASSWORDS[username], "keys", "show", "--vault", str(pc), "--user", username, "--json")  # fmt: skip
        assert code == 0, err
        words = json.loads(out)["fingerprint"]
        lead_pc = one if pc == two else two
        code, _out, err = cli(
            capsys, monkeypatch, PASSWORDS["lead"], "keys", "confirm", username, "--vault",
            str(lead_pc), "--user", "lead", "--fingerprint", words,
        )  # fmt: skip
        assert code == 0, err

    # A clinician on each PC completes a record.
    ids = {}
    for username, pc, scenario in (("drsmith", two, ELLIE), ("drjones", one, MONITOR)):
        code, out, err = cli(
            capsys, monkeypatch, PASSWORDS[username], "assess", "--vault", str(pc), "--user",
            username, "--answers", str(SCENARIOS / f"{scenario}.json"), "--complete", "--json",
        )  # fmt: skip
        assert code == 0, err
        result = json.loads(out)
        assert result["status"] == "completed"
        ids[username] = result["record_id"]

    # The lead, on either PC, sees both; each clinician sees only their own.
    for pc in (one, two):
        code, out, err = cli(capsys, monkeypatch, PASSWORDS["lead"], "records", "--vault", str(pc), "--user", "lead", "--json")  # fmt: skip
        assert code == 0, err
        assert {r["record_id"] for r in json.loads(out)} >= set(ids.values())
    code, out, err = cli(capsys, monkeypatch, PASSWORDS["drjones"], "records", "--vault", str(one), "--user", "drjones", "--json")  # fmt: skip
    assert [r["record_id"] for r in json.loads(out)] == [ids["drjones"]]
    code, out, err = cli(capsys, monkeypatch, PASSWORDS["lead"], "show", ids["drsmith"], "--vault", str(one), "--user", "lead", "--json")  # fmt: skip
    assert code == 0, err
    assert "Ellie" in out and "Marsh" in out  # the lead opens what the clinician sealed

    code, out, err = cli(capsys, monkeypatch, PASSWORDS["lead"], "audit", "verify", "--vault", str(two), "--user", "lead", "--json")  # fmt: skip
    assert code == 0, err
    assert json.loads(out)["ok"] is True

    # What the server's administrator can copy holds no child's name and no narrative.
    dump = pg_dump(cl, dsn)
    assert b"Dr Alex Smith" in dump and ids["drsmith"].encode() in dump  # M is in the clear
    markers = ["Ellie", "Marsh", "9434765870", "943 476 5870", "coryzal", "Kayleigh"]
    monitor = json.loads((SCENARIOS / f"{MONITOR}.json").read_text())["answers"]
    markers += [monitor["child_given_name"], monitor["child_family_name"]]
    for marker in markers:
        assert not dump_holds(dump, marker), marker


def test_init_refuses_a_database_that_is_not_empty(
    server: tuple[Cluster, str], tmp_path: Path, capsys: Any, monkeypatch: pytest.MonkeyPatch,
    cheap_kdf: None,
) -> None:  # fmt: skip
    _cl, dsn = server
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("CREATE TABLE payroll (id int)")
    code, _out, err = cli(
        capsys, monkeypatch, PASSWORDS["admin"], "server", "init", "--dsn", dsn, "--vault",
        str(tmp_path / "pc"), "--practice", "X", "--admin", "admin",
    )  # fmt: skip
    assert code == 1
    assert "is not empty (1 tables: payroll)" in err and "gpshare server join" in err
    assert not (tmp_path / "pc").exists()


def test_join_refuses_a_database_that_holds_no_practice(
    server: tuple[Cluster, str], tmp_path: Path, capsys: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    _cl, dsn = server
    code, _out, err = cli(capsys, monkeypatch, None, "server", "join", "--dsn", dsn, "--vault", str(tmp_path / "pc"))  # fmt: skip
    assert code == 1 and "is not a gpshare practice server" in err
    assert not (tmp_path / "pc" / "vault.json").exists()


def test_a_dsn_with_a_password_is_refused_before_anything_is_created(
    tmp_path: Path, capsys: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    code, _out, err = cli(
        capsys, monkeypatch, PASSWORDS["admin"], "server", "init", "--dsn",
        "host=db.example dbname=gpshare user=owner password=hunter2", "--vault",
        str(tmp_path / "pc"), "--practice", "X", "--admin", "admin",
    )  # fmt: skip
    assert code == 1 and "contains a password" in err and "~/.pgpass" in err
    assert "hunter2" not in err and not (tmp_path / "pc").exists()


def test_an_unreachable_server_is_named_without_a_traceback(
    unreachable: Path, capsys: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    code, _out, err = cli(capsys, monkeypatch, PASSWORDS["lead"], "records", "--vault", str(unreachable), "--user", "lead")  # fmt: skip
    assert code == 1
    assert "Cannot reach the practice server" in err and "nowhere" in err
    assert "Traceback" not in err and "psycopg" not in err


def test_the_header_on_the_server_is_checked_against_the_chain_and_the_pin(
    server: tuple[Cluster, str], practice: Path
) -> None:
    dsn, folder = server[1], practice
    session = open_session(folder, "lead", PASSWORDS["lead"])
    generation = session.vault.generation  # type: ignore[attr-defined]
    events = session.audit_trail.audit_log(AuditFilter(action="header_saved"), limit=None)
    session.close()
    assert generation >= 1 and len(events) == generation  # every generation is in the chain
    # This workstation has seen a newer header than the server now holds: a rollback.
    pointer = json.loads((folder / "vault.json").read_text())
    assert pointer["header_generation"] == generation
    (folder / "vault.json").write_text(json.dumps({**pointer, "header_generation": generation + 1}))
    with pytest.raises(RollbackError, match="rolled back"):
        open_session(folder, "lead", PASSWORDS["lead"])
    (folder / "vault.json").write_text(json.dumps(pointer))
    # The server's administrator edits the newest header (triggers off): its hash is no
    # longer the one the chain records.
    with psycopg.connect(dsn, autocommit=True) as dba:
        dba.execute("ALTER TABLE vault_header DISABLE TRIGGER USER")
        dba.execute(
            "UPDATE vault_header SET body = replace(body, 'Canal Street', 'Canal Road'), "
            "sha256 = encode(sha256(convert_to(replace(body, 'Canal Street', 'Canal Road'), "
            "'UTF8')), 'hex') WHERE generation = %s",
            (generation,),
        )
    with pytest.raises(TamperedError, match="not the one its audit log records"):
        open_session(folder, "lead", PASSWORDS["lead"])


def test_a_header_put_back_on_the_server_and_in_vault_json_is_caught_by_the_anchor(
    server: tuple[Cluster, str], practice: Path
) -> None:
    """vault.json's header generation can be edited; this computer's sealed anchor cannot.
    A DBA who deletes the newest header (undoing a password change) and an insider who
    lowers vault.json to match are still refused: the anchor remembers the newer one."""
    dsn, folder = server[1], practice
    lead = open_session(folder, "lead", PASSWORDS["lead"])
    before = lead.vault.generation  # type: ignore[attr-defined]
    lead.users.change_password(PASSWORDS["lead"], "a-new-Passphrase-2026")
    after = lead.vault.generation  # type: ignore[attr-defined]
    lead.close()
    assert after == before + 1
    old_pointer = json.loads((folder / "vault.json").read_text())
    with psycopg.connect(dsn, autocommit=True) as dba:
        dba.execute("ALTER TABLE vault_header DISABLE TRIGGER USER")
        dba.execute("DELETE FROM vault_header WHERE generation = %s", (after,))
    (folder / "vault.json").write_text(json.dumps({**old_pointer, "header_generation": before}))
    with pytest.raises(RollbackError, match=f"header generation {before}.*generation {after}"):
        open_session(folder, "lead", PASSWORDS["lead"])  # the old password's slot is back


def test_the_workstation_role_may_not_rewrite_a_header(
    server: tuple[Cluster, str], practice: Path
) -> None:
    dsn = server[1]
    with (
        psycopg.connect(dsn, autocommit=True) as dba,
        pytest.raises(psycopg.Error, match="append-only"),
    ):
        dba.execute("UPDATE vault_header SET created = 'x'")
    with (
        psycopg.connect(dsn, autocommit=True) as dba,
        pytest.raises(psycopg.Error, match="never deleted"),
    ):
        dba.execute("DELETE FROM vault_header")
    # Saving on a folder whose header is behind the server's is refused, not merged.
    session = open_session(practice, "admin", PASSWORDS["admin"])
    try:
        stale = session.vault
        stale._generation -= 1  # type: ignore[attr-defined]
        with pytest.raises(StoreError, match="changed on another workstation"):
            stale.save(session.db_key)
    finally:
        session.close()


@pytest.fixture
def unreachable(server: tuple[Cluster, str], practice: Path, tmp_path: Path) -> Path:
    """A workstation folder whose server is not where its vault.json says (moved or down)."""
    (cl, dsn), folder = server, practice
    pointer = json.loads((folder / "vault.json").read_text())
    pointer["dsn"] = dsn.replace(str(cl.socket_dir), str(tmp_path / "nowhere"))
    (folder / "vault.json").write_text(json.dumps(pointer))
    return folder


@pytest.mark.usefixtures("quiet_dialogs")
def test_the_unlock_screen_names_an_unreachable_server(unreachable: Path, qtbot: Any) -> None:
    from gpshare.ui.unlock import UnlockWidget

    widget = UnlockWidget(None, unreachable)
    qtbot.addWidget(widget)
    widget.show()
    widget.username_edit.setText("lead")
    widget.password_edit.setText(PASSWORDS["lead"])
    widget.unlock_button.click()
    text = widget.error_text()
    assert "Cannot reach the practice server" in text and "nowhere" in text
    assert "psycopg" not in text and "damaged" not in text
    assert widget.restore_button.isHidden()  # no backup repairs a server that is down
    assert widget.password_edit.text() == ""


def test_a_connection_lost_mid_session_is_named_not_called_damage(
    server: tuple[Cluster, str], practice: Path
) -> None:
    (cl, dsn), folder = server, practice
    dbname = dsn.split("dbname=")[1].split()[0]
    session = open_session(folder, "lead", PASSWORDS["lead"])
    try:
        with psycopg.connect(cl.dsn(), autocommit=True) as dba:
            # The server restarts (or the network drops) under an open session: the next
            # step connects again before it sends anything (tests/test_pg_reconnect.py).
            ended = "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s"
            dba.execute(ended + " AND pid <> pg_backend_pid()", (dbname,))
            session.assessments.list_records()
            # Gone and staying away: named as unreachable, never as damage.
            dba.execute(f'ALTER DATABASE "{dbname}" ALLOW_CONNECTIONS false')
            dba.execute(ended + " AND pid <> pg_backend_pid()", (dbname,))
            try:
                with pytest.raises(StoreError, match="Cannot reach the practice server") as raised:
                    session.assessments.list_records()
                assert "damaged" not in str(raised.value)
            finally:
                dba.execute(f'ALTER DATABASE "{dbname}" ALLOW_CONNECTIONS true')
    finally:
        session.close()


def test_backup_on_a_server_folder_says_where_backups_are_made(
    practice: Path, capsys: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = practice
    code, _out, err = cli(capsys, monkeypatch, PASSWORDS["admin"], "backup", "--vault", str(folder), "--user", "admin")  # fmt: skip
    assert code == 1 and "backs up the database on the server" in err
    session = open_session(folder, "admin", PASSWORDS["admin"])
    try:
        # The app tries a backup at every close: on a server that leaves no audit noise.
        with pytest.raises(StoreError):
            session.backups.backup_now(automatic=True)
        logged = session.audit_trail.audit_log(AuditFilter(action="backup_created"), limit=None)
        assert logged == []
    finally:
        session.close()
    assert not (folder / "backups").exists()


def test_a_remembered_login_stays_on_its_own_workstation(
    server: tuple[Cluster, str], tmp_path: Path, capsys: Any, monkeypatch: pytest.MonkeyPatch,
    cheap_kdf: None, memory_keyring: Any,
) -> None:  # fmt: skip
    from gpshare.services.vaults import has_remembered_login, open_session_keyring

    _cl, dsn = server
    one, two = tmp_path / "pc1", tmp_path / "pc2"
    server_init(capsys, monkeypatch, dsn, one)
    assert cli(capsys, monkeypatch, None, "server", "join", "--dsn", dsn, "--vault", str(two))[0] == 0  # fmt: skip
    lead = open_session(one, "lead", PASSWORDS["lead"])
    lead.users.remember_login()
    generation = lead.vault.generation  # type: ignore[attr-defined]
    lead.close()
    # The slot (opened by a secret in this computer's keyring) is kept in this folder only:
    # the practice's header on the server is unchanged and the other PC has no such slot.
    with psycopg.connect(dsn) as conn:
        bodies = [str(r[0]) for r in conn.execute("SELECT body FROM vault_header")]
    assert all("os-keyring" not in b for b in bodies)
    assert "os-keyring" in (one / "vault.json").read_text()
    assert has_remembered_login(one, "lead") and not has_remembered_login(two, "lead")
    remembered = open_session_keyring(one, "lead")
    try:
        assert remembered.keys is not None and not remembered.keys.holds_lead_key
        assert remembered.vault.generation == generation  # type: ignore[attr-defined]
    finally:
        remembered.close()
    # Password unlocks on either PC still check the shared header's MAC.
    open_session(two, "lead", PASSWORDS["lead"]).close()
    open_session(one, "lead", PASSWORDS["lead"]).close()
