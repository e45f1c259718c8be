"""Workstations on a practice server over real TLS (issue #14, DESIGN §10.3): a throwaway
PostgreSQL with ssl = on, a server certificate from a test CA, `ssl_ca_file` = the practice's
workstation CA and pg_hba.conf's `hostssl … cert` line as `gpshare server enrol` prints it.
Each workstation joins with sslmode=verify-full and the client certificate enrol issued, and
works through the command line; a revoked one, a certificate from another CA and a server
that is not the one named are refused."""

from __future__ import annotations

import json
import stat
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest

from gpshare.filters import AuditFilter
from gpshare.store.postgres import tls
from gpshare.store.postgres.header import resolve_dsn
from tests.conftest import PASSWORDS, drop_server_database
from tests.pg import Cluster, cluster, server_tls
from tests.test_pg_server import cheap_kdf, cli  # noqa: F401 - the fixture

REFUSED = "refused this computer's sign-in"


@pytest.fixture(scope="module")
def tls_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Cluster, Path]]:
    """A TLS cluster for this module and the server CA's certificate file."""
    ca, cert, key = server_tls("localhost")
    ca_file = tmp_path_factory.mktemp("server-ca") / "server-ca.crt"
    ca_file.write_bytes(ca)
    with cluster(tls=(cert, key)) as cl:
        yield cl, ca_file


class Server:
    """A practice made by `server init` on the TLS cluster, from the administrator's computer
    (on the server's unix socket, as its owner), and the steps a practice takes."""

    def __init__(self, cl: Cluster, ca_file: Path, db: str, tmp: Path, capsys: Any,
                 mp: Any) -> None:  # fmt: skip
        self.cl, self.server_ca, self.db, self.tmp, self.capsys, self.mp = (
            cl, ca_file, db, tmp, capsys, mp
        )  # fmt: skip
        self.admin_pc = tmp / "admin-pc"
        self.group = f"ws_{db}"

    def run(self, pc: Path, user: str | None, *args: str) -> tuple[int, str, str]:
        """`gpshare ARGS` on the computer whose folder is `pc` (its own anchor folder)."""
        extra = ("--vault", str(pc)) + (("--user", user) if user else ())
        return cli(
            self.capsys, self.mp, PASSWORDS[user] if user else None, *args, *extra,
            GPSHARE_ANCHOR_DIR=str(pc.parent / f"{pc.name}-anchors"),
        )  # fmt: skip

    def admin(self, *args: str) -> tuple[int, str, str]:
        return self.run(self.admin_pc, "admin", "server", *args)

    def enrol(self, name: str, *extra: str) -> dict[str, Any]:
        code, out, err = self.admin("enrol", "--workstation", name, "--role", self.group,
                                    *extra, "--json")  # fmt: skip
        assert code == 0, err
        return dict(json.loads(out))

    def enrol_served(self, prefix: str) -> tuple[str, Path, dict[str, Any]]:
        """Enrol a workstation with a certificate in a folder of its own and do the server
        administrator's part; (its name, that folder, enrol's answer)."""
        name = f"{prefix}_{self.db}"[:40]
        out = self.tmp / f"for-{prefix}"
        enrolled = self.enrol(name, "--out", str(out))
        self.cl.trust_workstations(enrolled["hba"], (out / "workstation-ca.crt").read_bytes())
        return name, out, enrolled

    def join(self, pc: Path, *extra: str, mode: str = "verify-full") -> tuple[int, str, str]:
        dsn = self.cl.tcp_dsn(self.db, sslmode=mode)
        return self.run(pc, None, "server", "join", "--dsn", dsn, *extra)


@pytest.fixture
def practice(
    tls_cluster: tuple[Cluster, Path], tmp_path: Path, capsys: Any,
    monkeypatch: pytest.MonkeyPatch, cheap_kdf: None,  # noqa: F811
) -> Iterator[Server]:  # fmt: skip
    cl, ca_file = tls_cluster
    db = cl.new_database()
    s = Server(cl, ca_file, db, tmp_path, capsys, monkeypatch)
    try:
        code, _out, err = cli(
            capsys, monkeypatch, PASSWORDS["admin"], "server", "init", "--dsn", cl.dsn(db),
            "--vault", str(s.admin_pc), "--practice", "Canal Street Surgery", "--admin",
            "admin", "--name", "Pat Admin", "--lead", "lead", "--lead-name",
            "Dr Priya Natarajan", "--role", s.group,
            GPSHARE_LEAD_PASSWORD=PASSWORDS["lead"],
            GPSHARE_ANCHOR_DIR=str(tmp_path / "admin-pc-anchors"),
        )  # fmt: skip
        assert code == 0, err
        yield s
    finally:
        drop_server_database(cl, db)


def test_an_enrolled_workstation_works_over_verified_tls_until_it_is_revoked(
    practice: Server,
) -> None:
    s = practice
    name, out, enrolled = s.enrol_served("reception")
    role = enrolled["role"]
    assert enrolled["hba"] == f"hostssl {s.db} +{s.group} 0.0.0.0/0 cert"
    # Four files: the certificate names the role, the key is the workstation's secret, and
    # so is the practice's enrolment secret.
    assert sorted(p.name for p in out.iterdir()) == ["client.crt", "client.key", "enrolment.secret", "workstation-ca.crt"]  # fmt: skip
    assert stat.S_IMODE((out / "client.key").stat().st_mode) == 0o600
    assert stat.S_IMODE((out / "enrolment.secret").stat().st_mode) == 0o600
    assert tls.describe((out / "client.crt").read_bytes()) == (role, enrolled["serial"])
    # The CA certificate `server ca-cert` exports is the one enrol wrote beside it.
    code, _o, err = s.admin("ca-cert", "--out", str(s.tmp / "ws-ca.crt"))
    assert code == 0, err
    assert (s.tmp / "ws-ca.crt").read_bytes() == (out / "workstation-ca.crt").read_bytes()

    pc = s.tmp / "reception-pc"
    code, joined, err = s.join(
        pc, "--server-ca", str(s.server_ca), "--client-cert", str(out / "client.crt"),
        "--client-key", str(out / "client.key"), "--enrolment-secret",
        str(out / "enrolment.secret"), "--json",
    )  # fmt: skip
    assert code == 0, err
    assert "Warning" not in err  # verify-full: nothing to warn about
    assert json.loads(joined)["practice"] == "Canal Street Surgery"
    # The folder holds its own copies, named relative to it in its DSN (the folder can move).
    pointer = json.loads((pc / "vault.json").read_text())
    assert "sslcert=client.crt" in pointer["dsn"] and "sslkey=client.key" in pointer["dsn"]
    assert "sslrootcert=server-ca.crt" in pointer["dsn"] and f"user={role}" in pointer["dsn"]
    assert stat.S_IMODE((pc / "client.key").stat().st_mode) == 0o600

    # End to end through the command line, as the role over TLS.
    code, out_text, err = s.run(pc, "lead", "server", "verify", "--json")
    assert code == 0, err
    assert json.loads(out_text)["ok"] is True
    code, out_text, err = s.run(pc, "admin", "user", "list", "--json")
    assert code == 0, err
    assert {"admin", "lead"} <= {u["username"] for u in json.loads(out_text)}
    # What the folder's DSN gets is TLS with this certificate, as the role (not a superuser).
    with psycopg.connect(resolve_dsn(pointer["dsn"], pc)) as conn:
        row = conn.execute(
            "SELECT ssl, client_dn, current_user, (SELECT rolsuper FROM pg_roles WHERE "
            "rolname = current_user) FROM pg_stat_ssl WHERE pid = pg_backend_pid()"
        ).fetchone()
    assert row == (True, f"/CN={role}", role, False)

    # Revoked: the role loses LOGIN; the certificate alone no longer gets in.
    code, out_text, err = s.admin("enrol", "--workstation", name, "--role", s.group, "--revoke", "--json")  # fmt: skip
    assert code == 0, err
    assert json.loads(out_text)["serials"] == enrolled["serial"]
    code, _o, err = s.run(pc, "lead", "records")
    assert code == 1 and REFUSED in err and "Traceback" not in err
    code, out_text, err = s.run(s.admin_pc, "admin", "audit", "log", "--json")
    assert code == 0, err
    events = {e["action"]: e["details"] for e in json.loads(out_text)}
    assert events["workstation_enrolled"]["serial"] == enrolled["serial"]
    assert events["workstation_revoked"]["serials"] == [enrolled["serial"]]
    assert "workstation_ca_created" in events


def test_a_key_made_on_the_workstation_never_leaves_it(practice: Server) -> None:
    s = practice
    name = f"room3_{s.db}"[:40]
    pc, request = s.tmp / "room-3-pc", s.tmp / "room3.csr"
    code, _o, err = s.run(pc, None, "server", "request-cert", "--workstation", name, "--out", str(request))  # fmt: skip
    assert code == 0, err
    assert stat.S_IMODE((pc / "client.key").stat().st_mode) == 0o600
    out = s.tmp / "for-room3"
    enrolled = s.enrol(name, "--csr", str(request), "--out", str(out))
    # The CSR flow gets the enrolment secret too (the workstation still has no key to carry).
    assert sorted(p.name for p in out.iterdir()) == ["client.crt", "enrolment.secret", "workstation-ca.crt"]  # fmt: skip
    s.cl.trust_workstations(enrolled["hba"], (out / "workstation-ca.crt").read_bytes())
    code, _o, err = s.join(
        pc, "--server-ca", str(s.server_ca), "--client-cert", str(out / "client.crt"),
        "--enrolment-secret", str(out / "enrolment.secret"),
    )  # fmt: skip
    assert code == 0, err
    code, _o, err = s.run(pc, "lead", "records")
    assert code == 0, err
    # A request for another workstation's name is refused before any role is made.
    other = s.tmp / "other.csr"
    code, _o, err = s.run(s.tmp / "pc-x", None, "server", "request-cert", "--workstation", "x_1", "--out", str(other))  # fmt: skip
    assert code == 0, err
    code, _o, err = s.admin("enrol", "--workstation", f"y_{s.db}"[:40], "--role", s.group,
                            "--csr", str(other), "--out", str(s.tmp / "y"))  # fmt: skip
    assert code == 1 and "is for gpshare_ws_x_1" in err
    with psycopg.connect(s.cl.dsn(s.db)) as dba:
        made = dba.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (f"gpshare_ws_y_{s.db}"[:51],))  # fmt: skip
        assert made.fetchone() is None


def test_a_certificate_from_another_ca_and_an_unverified_server_are_refused(
    practice: Server,
) -> None:
    from datetime import UTC, datetime

    s = practice
    _name, out, enrolled = s.enrol_served("desk")

    # The same role's name in a certificate from a CA the server does not trust.
    rogue_key, rogue_ca = tls.create_workstation_ca("Not The Practice", datetime.now(UTC))
    key, key_pem = tls.new_key()
    forged = tls.issue_client_cert(rogue_key, rogue_ca, enrolled["role"], key.public_key(),
                                   datetime.now(UTC))  # fmt: skip
    (s.tmp / "forged.crt").write_bytes(forged.cert_pem)
    (s.tmp / "forged.key").write_bytes(key_pem)
    (s.tmp / "forged.key").chmod(0o600)
    pc = s.tmp / "intruder-pc"
    code, _o, err = s.join(
        pc, "--server-ca", str(s.server_ca), "--client-cert", str(s.tmp / "forged.crt"),
        "--client-key", str(s.tmp / "forged.key"),
    )  # fmt: skip
    assert code == 1 and REFUSED in err and "certificate" in err, err
    assert not pc.exists()  # the refused join left nothing behind

    # A server that does not prove it is the one named (the certificate names localhost).
    dsn = (
        f"host=127.0.0.1 port={s.cl.port} dbname={s.db} sslmode=verify-full "
        f"sslrootcert={s.server_ca}"
    )
    code, _o, err = s.run(pc, None, "server", "join", "--dsn", dsn, "--client-cert",
                          str(out / "client.crt"), "--client-key", str(out / "client.key"))  # fmt: skip
    assert code == 1 and "did not prove" in err and "127.0.0.1" in err, err

    # Without verification the join works but says exactly what is at risk.
    code, _o, err = s.join(
        s.tmp / "lax-pc", "--client-cert", str(out / "client.crt"), "--client-key",
        str(out / "client.key"), mode="require",
    )  # fmt: skip
    assert code == 0, err
    assert "Warning: the server address does not verify the server (sslmode=require)" in err
    assert "whatever machine answers at localhost" in err and "sslmode=verify-full" in err


def test_the_workstation_ca_key_is_for_administrators_only(practice: Server) -> None:
    from gpshare.services import open_session
    from gpshare.services.server import stored_workstation_ca

    s = practice
    code, _o, err = s.admin("ca-cert", "--out", str(s.tmp / "ws-ca.crt"))
    assert code == 0, err
    s.mp.setenv("GPSHARE_ANCHOR_DIR", str(s.tmp / "admin-pc-anchors"))
    session = open_session(s.admin_pc, "lead", PASSWORDS["lead"])
    try:
        with session._read() as tx:
            stored = stored_workstation_ca(tx)
            assert stored is not None
            assert stored.cert_pem == (s.tmp / "ws-ca.crt").read_bytes()
            wraps = tx.object_wraps_for("lead", [("workstation-ca", "workstation-ca")])
            assert wraps == []  # sealed, and wrapped for the administrator only
            assert b"PRIVATE KEY" not in stored.wrapped
        events = session.audit_trail.audit_log(AuditFilter(action="workstation_ca_created"))
        assert [e.details["for"] for e in events] == [["admin"]]
    finally:
        session.close()
    code, _o, err = s.run(s.admin_pc, "lead", "server", "ca-cert", "--out", str(s.tmp / "x.crt"))
    assert code == 1 and "Not permitted for your role (practice safeguarding lead)" in err


@pytest.mark.parametrize("vault_engine", ["postgres"], indirect=True)
def test_a_later_administrator_gets_the_workstation_ca_once_a_lead_confirms_them(
    vault_env_v2: Any, tmp_path: Path
) -> None:
    from gpshare.demo import add_new_user, choose_own_password
    from gpshare.errors import KeyNotHeld

    env = vault_env_v2
    password = "second-admin-password-1"
    admin = env.session("admin")
    try:
        admin.server.workstation_ca_pem()  # made now, wrapped for this administrator only
        first = add_new_user(admin, "admin2", "Sam Second", "admin", "")
    finally:
        admin.close()
    choose_own_password(env.folder, env.clock, "admin2", first, password)
    second = env.session("admin2", password)
    try:
        with pytest.raises(KeyNotHeld, match="workstation certificates"):
            second.server.enrol("pc_a", group_role="g", out=tmp_path / "a")
        own = second.directory.own_key()
    finally:
        second.close()
    assert not (tmp_path / "a").exists()
    lead = env.session("lead")
    lead.directory.confirm("admin2", own.fingerprint)
    lead.close()
    admin = env.session("admin")  # the first administrator's unlock shares both CAs
    try:
        shared = admin.audit_trail.audit_log(AuditFilter(action="ca_shared"))
        assert {e.details.get("ca", "practice-ca") for e in shared} == {
            "practice-ca",
            "workstation-ca",
        }
    finally:
        admin.close()
    second = env.session("admin2", password)
    name = f"b_{tmp_path.name}"[:40]
    try:
        group = f"ws_{tmp_path.name}"[:60]  # the workstation role make_vault_v2's server has
        enrolled = second.server.enrol(name, group_role=group, out=tmp_path / "b")
        assert tls.describe((tmp_path / "b" / "client.crt").read_bytes())[0] == enrolled["role"]
    finally:
        with psycopg.connect(second.vault.dsn, autocommit=True) as conn:
            conn.execute(f'DROP ROLE IF EXISTS "gpshare_ws_{name.lower()}"')
        second.close()
