"""Shared fixtures: offscreen Qt, a fresh vault per test with a cheap KDF, a fixed clock and an
in-memory keyring."""

from __future__ import annotations

import os

# Must be set before any Qt import, or pytest-qt aborts the whole run without a display.
os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

# PySide6 6.12 on CPython 3.11 leaks references to None/True (see gpshare/ui/qt_refcount_guard):
# importing gpshare.ui applies the workaround before any test touches Qt.
from collections.abc import Iterator  # noqa: E402
from dataclasses import dataclass  # noqa: E402
from datetime import UTC, datetime  # noqa: E402
from pathlib import Path  # noqa: E402

import keyring  # noqa: E402
import pytest  # noqa: E402
from keyring.backend import KeyringBackend  # noqa: E402

import gpshare.ui  # noqa: E402,F401
from gpshare.clock import FixedClock  # noqa: E402
from gpshare.store.crypto import CHEAP_TEST_KDF  # noqa: E402
from tests.pg import Cluster, cluster  # noqa: E402

FIXTURES = Path(__file__).resolve().parent / "fixtures"
# New assessments use the newest form (v2): tests that create records use the v2 scenarios.
SCENARIOS = FIXTURES / "scenarios" / "v2"
SCENARIOS_V1 = FIXTURES / "scenarios"
PASSWORDS = {
    "admin": "admin-password-1",
    "lead": "lead-password-1",
    "drsmith": "smith-password-1",
    "drjones": "jones-password-1",
}


class MemoryKeyring(KeyringBackend):
    """A keyring backend that keeps secrets in a dict (tests only)."""

    priority = 10  # type: ignore[assignment]

    def __init__(self) -> None:
        super().__init__()
        self.store: dict[tuple[str, str], str] = {}

    def get_password(self, service: str, username: str) -> str | None:
        return self.store.get((service, username))

    def set_password(self, service: str, username: str, password: str) -> None:
        self.store[(service, username)] = password

    def delete_password(self, service: str, username: str) -> None:
        self.store.pop((service, username), None)


@pytest.fixture(autouse=True)
def anchor_dir(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Each test's own rollback-anchor folder (never the real per-user data folder)."""
    folder = tmp_path_factory.mktemp("anchors")
    monkeypatch.setenv("GPSHARE_ANCHOR_DIR", str(folder))
    return folder


@pytest.fixture
def memory_keyring() -> Iterator[MemoryKeyring]:
    previous = keyring.get_keyring()
    backend = MemoryKeyring()
    keyring.set_keyring(backend)
    try:
        yield backend
    finally:
        keyring.set_keyring(previous)


@pytest.fixture
def no_keyring() -> Iterator[None]:
    from keyring.backends import fail

    previous = keyring.get_keyring()
    keyring.set_keyring(fail.Keyring())
    try:
        yield
    finally:
        keyring.set_keyring(previous)


@pytest.fixture
def clock() -> FixedClock:
    return FixedClock(datetime(2026, 11, 25, 10, 0, tzinfo=UTC))


@dataclass
class VaultEnv:
    """A fresh practice vault with an admin, a lead and two clinicians."""

    folder: Path
    clock: FixedClock
    recovery_code: str
    breakglass_code: str = ""  # version-2 vaults only

    def session(self, username: str, password: str | None = None):  # type: ignore[no-untyped-def]
        from gpshare.services import open_session

        return open_session(self.folder, username, password or PASSWORDS[username], self.clock)


def make_vault(folder: Path, clock: FixedClock) -> VaultEnv:
    from gpshare.demo import add_new_user, choose_own_password
    from gpshare.services import create_vault

    admin, recovery = create_vault(
        folder,
        practice_name="Canal Street Surgery",
        admin_username="admin",
        admin_full_name="Pat Admin",
        admin_password=PASSWORDS["admin"],
        clock=clock,
        kdf=CHEAP_TEST_KDF,
    )
    admin.practice.update_settings(
        {
            "practice_address": "1 Canal Street, Leeds LS1 1AA",
            "practice_ods_code": "B86001",
            "practice_phone": "0113 496 0000",
            "practice_secure_email": "canal.safeguarding@nhs.net",
        }
    )
    initial: dict[str, str] = {}
    initial["lead"] = add_new_user(admin, "lead", "Dr Priya Natarajan", "lead", "7654321")
    initial["drsmith"] = add_new_user(admin, "drsmith", "Dr Alex Smith", "clinician", "1234567")
    initial["drjones"] = add_new_user(admin, "drjones", "Dr Sam Jones", "clinician", "2345678")
    admin.close()
    for username, first in initial.items():  # each chooses their own, as new users must
        choose_own_password(folder, clock, username, first, PASSWORDS[username])
    return VaultEnv(folder, clock, recovery)


def make_vault_v2(folder: Path, clock: FixedClock, dsn: str | None = None) -> VaultEnv:
    """The same practice as make_vault, as a version-2 vault (docs/vault-v2.md): the lead is
    appointed at init (`init --lead`), the clinicians choose their own passwords (their clients
    publish their keys) and the lead confirms each one's six words. With `dsn` (an empty
    PostgreSQL database) the practice lives on that server and `folder` is a workstation."""
    from gpshare.demo import add_new_user, choose_own_password
    from gpshare.services import LeadAtInit, create_vault_v2, open_session
    from gpshare.services.vaults import ServerTarget

    created = create_vault_v2(
        folder,
        practice_name="Canal Street Surgery",
        admin_username="admin",
        admin_full_name="Pat Admin",
        admin_password=PASSWORDS["admin"],
        lead=LeadAtInit("lead", "Dr Priya Natarajan", PASSWORDS["lead"], "7654321"),
        clock=clock,
        kdf=CHEAP_TEST_KDF,
        server=ServerTarget(dsn, f"ws_{folder.parent.name}"[:60]) if dsn else None,
    )
    admin = created.session
    admin.practice.update_settings(
        {
            "practice_address": "1 Canal Street, Leeds LS1 1AA",
            "practice_ods_code": "B86001",
            "practice_phone": "0113 496 0000",
            "practice_secure_email": "canal.safeguarding@nhs.net",
        }
    )
    initial = {
        "drsmith": add_new_user(admin, "drsmith", "Dr Alex Smith", "clinician", "1234567"),
        "drjones": add_new_user(admin, "drjones", "Dr Sam Jones", "clinician", "2345678"),
    }
    admin.close()
    words: dict[str, str] = {}
    for username, first in initial.items():
        choose_own_password(folder, clock, username, first, PASSWORDS[username])
        user = open_session(folder, username, PASSWORDS[username], clock)
        try:
            own = user.directory.own_key()
            assert own is not None
            words[username] = own.fingerprint
        finally:
            user.close()
    lead = open_session(folder, "lead", PASSWORDS["lead"], clock)
    try:
        for username, typed in words.items():
            lead.directory.confirm(username, typed)
    finally:
        lead.close()
    return VaultEnv(folder, clock, created.recovery_code, created.breakglass_code)


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """A module that sets `RUN_ON_BOTH_ENGINES = True` runs each test that uses vault_env_v2
    (or server_dsn) on an embedded vault and on a throwaway practice server (issue #14)."""
    if "vault_engine" in metafunc.fixturenames and getattr(
        metafunc.module, "RUN_ON_BOTH_ENGINES", False
    ):
        metafunc.parametrize("vault_engine", ["sqlcipher", "postgres"], indirect=True)


@pytest.fixture
def vault_engine(request: pytest.FixtureRequest) -> str:
    """Where vault_env_v2's practice lives: "sqlcipher" (embedded) unless a module marks
    itself RUN_ON_BOTH_ENGINES, when "postgres" (a throwaway practice server) runs too."""
    return str(getattr(request, "param", "sqlcipher"))


@pytest.fixture
def server_dsn(vault_engine: str, request: pytest.FixtureRequest) -> Iterator[str | None]:
    """None on the embedded engine; with `vault_engine` "postgres", the DSN of an empty
    database in the session's cluster (one cluster per run, a database per test) for a
    practice server to be created in, dropped with its workstation roles afterwards."""
    if vault_engine != "postgres":
        yield None
        return
    cl: Cluster = request.getfixturevalue("pg_cluster")
    name = cl.new_database()
    try:
        yield cl.dsn(name)
    finally:
        drop_server_database(cl, name)


@pytest.fixture
def vault_env_v2(tmp_path: Path, clock: FixedClock, server_dsn: str | None) -> VaultEnv:
    """make_vault_v2: admin, lead, drsmith and drjones, every key confirmed (on a throwaway
    practice server's database when `vault_engine` is "postgres")."""
    return make_vault_v2(tmp_path / "vault", clock, server_dsn)


def drop_server_database(cl: Cluster, name: str) -> None:
    """Drop a practice server's database and the workstation roles `server init` made."""
    import psycopg

    cl.drop_database(name)
    with psycopg.connect(cl.dsn(), autocommit=True) as conn:
        for (role,) in conn.execute(
            "SELECT rolname FROM pg_roles WHERE rolname LIKE 'ws\\_%' AND NOT rolcanlogin"
        ).fetchall():
            conn.execute(f'DROP ROLE IF EXISTS "{role}"')


@pytest.fixture
def vault_env(tmp_path: Path, clock: FixedClock) -> VaultEnv:
    return make_vault(tmp_path / "vault", clock)


@pytest.fixture
def with_backup(vault_env: VaultEnv) -> tuple[VaultEnv, Path]:
    """A vault with one record ('Before'), a backup of it, then a newer record ('After')."""
    return vault_env, backup_between(vault_env)


def backup_between(vault_env: VaultEnv) -> Path:
    """Record 'Before', back it up, then record 'After'; returns the snapshot."""
    s = vault_env.session("drsmith")
    s.assessments.start_assessment(answers={"child_given_name": "Before"})
    s.close()
    admin = vault_env.session("admin")
    snapshot = admin.backups.backup_now()
    admin.close()
    vault_env.clock.advance(60)
    s = vault_env.session("drsmith")
    s.assessments.start_assessment(answers={"child_given_name": "After"})
    s.close()
    return snapshot


@pytest.fixture
def quiet_dialogs():
    """Dialogs answer from a queue and never block (use with ``usefixtures``)."""
    from gpshare.ui import dialogs

    dialogs.reset()
    dialogs.set_non_interactive(True)
    yield
    dialogs.reset()


@pytest.fixture
def smith(vault_env):
    """Dr Smith's open session (a clinician), closed afterwards if the test did not."""
    session = vault_env.session("drsmith")
    yield session
    if session.is_open:
        session.close()


# A real PostgreSQL for the practice-server tests (tests/pg.py): started once per session,
# only when a test asks for it; each test gets its own database.
@pytest.fixture(scope="session")
def pg_cluster() -> Iterator[Cluster]:
    with cluster() as cl:
        yield cl


@pytest.fixture
def pg_database(pg_cluster: Cluster) -> Iterator[str]:
    """The name of an empty database in the session's cluster, dropped after the test."""
    name = pg_cluster.new_database()
    yield name
    pg_cluster.drop_database(name)
