"""Migrations: forward-only, one transaction per step, pre-migration backup, committed v1 vault."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlcipher3

from gpshare.clock import FixedClock
from gpshare.filters import RecordFilter
from gpshare.records import ChildSummary, Record, Review, User
from gpshare.services import open_session
from gpshare.store import open_store
from gpshare.store.backup import list_backups
from gpshare.store.crypto import CHEAP_TEST_KDF
from gpshare.store.port import AuditEntry, Store
from gpshare.store.sqlcipher import db as dbmod
from gpshare.store.vault import Vault
from tests.key_rows import fill_key_tables
from tests.storehelp import raw_connection

FIXTURE = Path(__file__).parent / "fixtures" / "vault-v1"
FIXTURE_PASSWORD = "fixture-password-1"


@pytest.fixture
def v1_vault(tmp_path, clock):
    target = tmp_path / "v1"
    shutil.copytree(FIXTURE, target)
    return target


def test_committed_v1_vault_opens_and_verifies(v1_vault, clock):
    s = open_session(v1_vault, "lead", FIXTURE_PASSWORD, clock)
    assert dbmod.schema_version(raw_connection(s)) == dbmod.LATEST_SCHEMA_VERSION
    records = s.assessments.list_records()
    assert {r.status for r in records} == {"completed", "draft"}
    assert s.audit_trail.verify_audit().ok
    s.close()


def test_new_migration_runs_once_with_backup_first(v1_vault, clock, monkeypatch):
    extra = (
        dbmod.LATEST_SCHEMA_VERSION + 1,
        "9999_test.sql",
        "CREATE TABLE test_added (x INTEGER);\nINSERT INTO test_added VALUES (42);",
    )
    real = dbmod.migration_files
    monkeypatch.setattr(dbmod, "migration_files", lambda: [*real(), extra])
    monkeypatch.setattr(dbmod, "LATEST_SCHEMA_VERSION", extra[0])
    before = len(list_backups(Vault.open(v1_vault)))
    s = open_session(v1_vault, "lead", FIXTURE_PASSWORD, clock)
    assert dbmod.schema_version(raw_connection(s)) == extra[0]
    assert raw_connection(s).execute("SELECT x FROM test_added").fetchall() == [(42,)]
    s.close()
    assert len(list_backups(Vault.open(v1_vault))) == before + 1
    clock.advance(5)
    s = open_session(v1_vault, "lead", FIXTURE_PASSWORD, clock)  # second open: nothing pending
    assert raw_connection(s).execute("SELECT count(*) FROM test_added").fetchone()[0] == 1
    s.close()


def test_failing_migration_rolls_back_completely(v1_vault, clock, monkeypatch):
    bad = (
        dbmod.LATEST_SCHEMA_VERSION + 1,
        "9999_bad.sql",
        "CREATE TABLE half_done (x);\nINSERT INTO no_such_table VALUES (1);",
    )
    real = dbmod.migration_files
    monkeypatch.setattr(dbmod, "migration_files", lambda: [*real(), bad])
    monkeypatch.setattr(dbmod, "LATEST_SCHEMA_VERSION", bad[0])
    from gpshare.store.errors import StoreError

    with pytest.raises(StoreError, match="rolled back"):
        open_session(v1_vault, "lead", FIXTURE_PASSWORD, clock)
    monkeypatch.setattr(dbmod, "migration_files", real)
    monkeypatch.setattr(dbmod, "LATEST_SCHEMA_VERSION", real()[-1][0])
    clock.advance(5)
    s = open_session(v1_vault, "lead", FIXTURE_PASSWORD, clock)
    assert dbmod.schema_version(raw_connection(s)) == real()[-1][0]
    assert (
        raw_connection(s)
        .execute("SELECT count(*) FROM sqlite_master WHERE name = 'half_done'")
        .fetchone()[0]
        == 0
    )
    s.close()


def test_database_newer_than_this_version_is_refused(v1_vault, clock, monkeypatch):
    from gpshare.store.errors import VaultFormatError

    monkeypatch.setattr(dbmod, "LATEST_SCHEMA_VERSION", 0)
    with pytest.raises(VaultFormatError, match="newer gpshare"):
        open_session(v1_vault, "lead", FIXTURE_PASSWORD, clock)


def test_v1_fixture_is_really_schema_1_and_gets_migrated(v1_vault, clock):
    from gpshare.store.vault import Vault

    before = len(list_backups(Vault.open(v1_vault)))
    s = open_session(v1_vault, "lead", FIXTURE_PASSWORD, clock)
    columns = {row[1] for row in raw_connection(s).execute("PRAGMA table_info(letters)")}
    assert "unsigned_pdf" in columns  # added by 0002
    s.close()
    assert len(list_backups(Vault.open(v1_vault))) == before + 1  # pre-migration backup


# ----- 0007: the vault version 2 key tables (docs/vault-v2.md §7 step 1) -------------------

KEY_TABLES = (
    "key_bundles",
    "directory",
    "lead_rotations",
    "role_key_wraps",
    "object_wraps",
    "remembered_logins",
    "breakglass_acks",
)


_EVERY_MIGRATION = dbmod.migration_files()


def _up_to(version: int, monkeypatch: pytest.MonkeyPatch) -> None:
    """Make the engine know only the migrations up to `version`."""
    known = [m for m in _EVERY_MIGRATION if m[0] <= version]
    monkeypatch.setattr(dbmod, "migration_files", lambda: known)


def _table_names(vault: Vault, key: bytes) -> set[str]:
    conn = dbmod.open_database(vault.db_path, key)
    try:
        return {
            str(r[0]) for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")
        }
    finally:
        conn.close()


def test_0007_applies_on_a_vault_made_at_schema_6(tmp_path, clock, monkeypatch):
    vault, key, _secret, _recovery = Vault.create(
        tmp_path / "v6", practice_name="Schema 6 Practice", admin_username="admin",
        admin_password="admin-password-1", clock=clock, kdf=CHEAP_TEST_KDF,
    )  # fmt: skip
    store = open_store(vault, key, clock, create=True)
    try:
        _up_to(6, monkeypatch)
        assert store.apply_migrations() == [1, 2, 3, 4, 5, 6]
        with store.write(AuditEntry("admin", "user_added")) as tx:
            tx.insert_user(User("lead", "Dr Lead", "lead", None, True, False, "2026-11-25"))
            tx.put_settings({"practice_name": "Schema 6 Practice"})
        head = store.last_head
        assert not set(KEY_TABLES) & _table_names(vault, key)
        _up_to(7, monkeypatch)
        assert store.pending_migrations() == [7]
        assert store.apply_migrations() == [7]
        assert store.schema_version() == 7
        assert set(KEY_TABLES) <= _table_names(vault, key)
        with store.read() as tx:  # what was there is untouched, the chain still verifies
            assert tx.get_user("lead") is not None
            assert tx.get_settings()["practice_name"] == "Schema 6 Practice"
            assert tx.audit_head() == head and tx.verify_audit((head.seq, head.digest)).ok
        # The repositories write the newest schema (0009 adds directory.lead_access_key).
        _up_to(10_000, monkeypatch)
        store.apply_migrations()
        rows = fill_key_tables(store, vault.vault_id, clock.now())
        with store.read() as tx:
            assert [r.user_id for r in tx.pending_entries()] == ["drjones"]
            state = tx.breakglass_state()
            assert state is not None and state.event_seq == rows.breakglass_seq
    finally:
        store.close()
        vault.lock.release()


def _v1_fixture_store(v1_vault: Path, clock: FixedClock) -> tuple[Vault, bytes, Store]:
    vault = Vault.open(v1_vault)
    key = vault.unlock_with_password("lead", FIXTURE_PASSWORD, clock).db_key
    return vault, key, open_store(vault, key, clock)


def test_0007_applies_on_the_committed_v1_vault(v1_vault, clock):
    vault, _key, store = _v1_fixture_store(v1_vault, clock)
    try:
        assert store.schema_version() == 1
        applied = store.apply_migrations()
        assert applied == list(range(2, store.latest_schema_version() + 1)) and 7 in applied
        assert store.schema_version() == store.latest_schema_version() >= 7
        with store.read() as tx:
            assert tx.count_records(RecordFilter()) == 2
            assert tx.verify_audit().ok
            assert tx.bundle("lead") is None and tx.breakglass_state() is None
            assert tx.directory_entries() == [] and tx.role_key_wraps() == []
        fill_key_tables(store, vault.vault_id, clock.now())
        with store.read() as tx:
            assert tx.bundle("drsmith") is not None
            assert len(tx.object_wraps_for("drsmith")) == 1
            assert tx.verify_audit().ok
    finally:
        store.close()


@pytest.fixture
def key_tables(v1_vault: Path, clock: FixedClock) -> Iterator[sqlcipher3.Connection]:
    """The v1 fixture migrated, with a row in every key table, on a raw connection."""
    vault, key, store = _v1_fixture_store(v1_vault, clock)
    store.apply_migrations()
    fill_key_tables(store, vault.vault_id, clock.now())
    store.close()
    conn = dbmod.open_database(vault.db_path, key)
    yield conn
    conn.close()


APPEND_ONLY = {
    "directory": "key directory entries are append-only",
    "lead_rotations": "lead key rotation statements are append-only",
    "role_key_wraps": "role key wraps are append-only",
    "object_wraps": "object key wraps are append-only",
    "breakglass_acks": "break-glass acknowledgements are append-only",
}
NEVER_DELETED = {
    **APPEND_ONLY,
    "key_bundles": "key bundles are never deleted",
    "remembered_logins": "remembered logins are never deleted",
}
# A column of each table to overwrite (any value: the triggers refuse the UPDATE itself).
SOME_COLUMN = {
    "directory": "signature",
    "lead_rotations": "signature",
    "role_key_wraps": "wrap",
    "object_wraps": "wrap",
    "breakglass_acks": "at",
}


def _refused(conn: sqlcipher3.Connection, sql: str, message: str) -> None:
    with pytest.raises(sqlcipher3.IntegrityError, match=message):
        conn.execute(sql)


@pytest.mark.parametrize("table", sorted(APPEND_ONLY))
def test_append_only_key_tables_refuse_update(key_tables, table):
    _refused(key_tables, f"UPDATE {table} SET {SOME_COLUMN[table]} = x'00'", APPEND_ONLY[table])


@pytest.mark.parametrize("table", sorted(NEVER_DELETED))
def test_no_key_table_row_is_ever_deleted(key_tables, table):
    assert key_tables.execute(f"SELECT count(*) FROM {table}").fetchone()[0] > 0
    _refused(key_tables, f"DELETE FROM {table}", NEVER_DELETED[table])
    assert key_tables.execute(f"SELECT count(*) FROM {table}").fetchone()[0] > 0


def test_a_bundle_changes_state_and_seal_but_not_whose_it_is(key_tables):
    keep = "a key bundle keeps its user, generation and creation time"
    for change in ("user_id = 'drjones'", "generation = 9", "created = '2000-01-01'"):
        _refused(key_tables, f"UPDATE key_bundles SET {change}", keep)
    key_tables.execute("UPDATE key_bundles SET state = 'inert', blob = x'01', salt = x'02'")
    assert key_tables.execute("SELECT state FROM key_bundles").fetchall() == [("inert",)]
    with pytest.raises(sqlcipher3.IntegrityError, match="CHECK"):
        key_tables.execute("UPDATE key_bundles SET state = 'stolen'")


def test_a_remembered_login_is_only_ever_revoked_once(key_tables):
    once = "a remembered login can only be revoked, once"
    # The fixture's login is already revoked: not again, not undone.
    _refused(key_tables, "UPDATE remembered_logins SET revoked = '2027-01-01'", once)
    _refused(key_tables, "UPDATE remembered_logins SET revoked = NULL", once)
    key_tables.execute(
        "INSERT INTO remembered_logins (user_id, workstation, created) VALUES ('lead', 'pc-9', 'now')"
    )
    _refused(
        key_tables, "UPDATE remembered_logins SET workstation = 'pc-1' WHERE revoked IS NULL", once
    )
    key_tables.execute("UPDATE remembered_logins SET revoked = 'later' WHERE revoked IS NULL")
    assert key_tables.execute(
        "SELECT count(*) FROM remembered_logins WHERE revoked IS NULL"
    ).fetchone() == (0,)


def test_a_pending_directory_entry_has_no_signature_and_a_lead_key_entry_no_user(key_tables):
    for values in (
        "('user', 'lead', 1, 'lead', x'00', 1, x'01', 'pending', 'now')",  # signed yet pending
        "('user', 'lead', 1, 'lead', x'00', 1, NULL, 'confirmed', 'now')",  # confirmed unsigned
        "('lead-key', 'lead', 1, NULL, x'00', NULL, x'01', 'confirmed', 'now')",  # with a user
        "('lead-key', NULL, 1, NULL, x'00', NULL, NULL, 'pending', 'now')",  # unsigned lead key
        "('user', 'lead', 1, NULL, x'00', 1, NULL, 'pending', 'now')",  # a user without a role
    ):
        with pytest.raises(sqlcipher3.IntegrityError, match="CHECK"):
            key_tables.execute(
                "INSERT INTO directory (kind, user_id, generation, role, public_key, active, "
                f"signature, status, created) VALUES {values}"
            )


def test_key_lookups_are_index_searches(key_tables):
    def plan(sql: str) -> str:
        return " ".join(str(r[-1]) for r in key_tables.execute(f"EXPLAIN QUERY PLAN {sql}"))

    lookups = {
        # opening a record: one object's wrap for one reader (docs/vault-v2.md §6.1)
        "SELECT wrap FROM object_wraps WHERE object_kind = 'answers' AND object_id = 'r' "
        "AND recipient = 'u'": "object_id=?",
        "SELECT wrap FROM object_wraps WHERE recipient = 'u'": "object_wraps_recipient",
        "SELECT wrap FROM role_key_wraps WHERE recipient = 'u'": "role_key_wraps_recipient",
        "SELECT max(id) FROM directory WHERE kind = 'user' AND user_id = 'u'": "directory_user",
        "SELECT seq FROM audit WHERE action = 'breakglass_used' ORDER BY seq DESC LIMIT 1": (
            "audit_breakglass_used"
        ),
    }
    for sql, expected in lookups.items():
        found = plan(sql)
        # Through an index every time (a SCAN of the partial break-glass index reads only
        # break-glass events).
        assert "INDEX" in found and expected in found, (sql, found)


# ----- 0008: sealed records (docs/vault-v2.md §7 step 4) ----------------------------------


def test_0008_applies_on_a_vault_at_schema_7_and_keeps_every_v1_row(tmp_path, clock, monkeypatch):
    vault, key, _secret, _recovery = Vault.create(
        tmp_path / "v7", practice_name="Schema 7 Practice", admin_username="admin",
        admin_password="admin-password-1", clock=clock, kdf=CHEAP_TEST_KDF,
    )  # fmt: skip
    store = open_store(vault, key, clock, create=True)
    try:
        _up_to(7, monkeypatch)
        assert store.apply_migrations() == [1, 2, 3, 4, 5, 6, 7]
        when = clock.now().isoformat(timespec="seconds")
        with store.write(AuditEntry("lead", "v1_rows")) as tx:
            tx.insert_user(User("lead", "Dr Lead", "lead", None, True, False, when))
            tx.insert_record(
                Record("rec-1", "lead", "draft", "gmc-confidentiality", 1, {"x": 1}, None, None,
                       when, when, None, ChildSummary("", "", None, None)), None,
            )  # fmt: skip
            tx.complete_record("rec-1", {"x": 1}, {"pathway": "monitor"}, when, None)
            tx.add_review(Review(0, "rec-1", "lead", when, "reasonable", "ok", None))
            tx.add_household_link_review("rec-1", "rec-1", "not_related", "lead", when, "n")
            tx.add_addendum("rec-1", "lead", when, "later")
        head = store.last_head
        _up_to(8, monkeypatch)
        assert store.apply_migrations() == [8]
        with store.read() as tx:
            assert [r.verdict for r in tx.reviews("rec-1")] == ["reasonable"]
            assert tx.household_link_decisions(["rec-1"]) == {"rec-1": "not_related"}
            assert [a.body for a in tx.addenda("rec-1")] == ["later"]
            sealed = tx.sealed_record("rec-1", ["lead"])
            assert sealed is not None and sealed.row.version == 0
            assert sealed.summary is None and sealed.answers is None  # a v1 row
            assert tx.sealed_reviews("rec-1", ["lead"]) == [] and tx.household_reviews(["rec-1"]) == []  # fmt: skip
            assert tx.verify_audit((head.seq, head.digest)).ok
    finally:
        store.close()
        vault.lock.release()


@pytest.fixture
def sealed_tables(v1_vault: Path, clock: FixedClock) -> Iterator[sqlcipher3.Connection]:
    """The v1 fixture migrated, with a completed sealed record (stand-in ciphertexts), a sealed
    draft, and one sealed row of each other kind, on a raw connection."""
    vault, key, store = _v1_fixture_store(v1_vault, clock)
    store.apply_migrations()
    store.close()
    conn = dbmod.open_database(vault.db_path, key)
    conn.executescript(
        """
        INSERT INTO records (id, clinician, status, form_id, form_version, answers, created, updated,
            completed, version, answers_ct, answers_commit)
            VALUES ('done', 'lead', 'completed', 'f', 1, '{}', 't', 't', 't', 3, x'01', x'02'),
                   ('draft', 'lead', 'draft', 'f', 1, '{}', 't', 't', NULL, 1, x'01', x'02');
        INSERT INTO record_summaries VALUES ('done', 3, 1, x'03'), ('draft', 1, 1, x'03');
        INSERT INTO blind_index VALUES (1, 'nhs', zeroblob(16), 'done'), (1, 'nhs', zeroblob(16), 'draft');
        INSERT INTO letters (record_id, created, signer, sha256, pdf, object_id, pdf_ct, pdf_commit)
            VALUES ('done', 't', 'lead', 'ab', x'', 'l-1', x'04', x'05');
        INSERT INTO reviews (record_id, reviewer, created, object_id, body_ct, body_commit)
            VALUES ('done', 'lead', 't', 'v-1', x'06', x'07');
        """
    )
    yield conn
    conn.close()


SEALED_RULES = {
    "UPDATE records SET version = 1 WHERE id = 'draft'": "version only goes up",
    "UPDATE records SET answers_commit = x'09' WHERE id = 'draft'": "commitment never changes",
    "UPDATE record_summaries SET ct = x'09' WHERE record_id = 'done'": "completed record is never changed",  # fmt: skip
    "DELETE FROM record_summaries WHERE record_id = 'done'": "completed record is never deleted",
    "UPDATE blind_index SET record_id = 'draft'": "replaced, never edited",
    "DELETE FROM blind_index WHERE record_id = 'done'": "completed record are never deleted",
    "UPDATE letters SET pdf_ct = x'09'": "sealed copies are never changed",
    "UPDATE reviews SET body_ct = x'09'": "lead reviews are append-only",
    "DELETE FROM household_link_reviews": "household link reviews are append-only",
}


@pytest.mark.parametrize("sql", sorted(SEALED_RULES))
def test_sealed_rows_keep_their_rules(sealed_tables, sql):
    if "household" in sql:
        sealed_tables.execute(
            "INSERT INTO household_link_reviews (record_id, other_record_id, reviewer, created, "
            "generation, review_ct) VALUES ('done', 'draft', 'lead', 't', 1, x'08')"
        )
    _refused(sealed_tables, sql, SEALED_RULES[sql])


def test_a_sealed_row_holds_its_ciphertext_or_its_v1_plaintext_never_neither(sealed_tables):
    for sql in (
        # a review with neither a verdict nor a sealed body; then with both
        "INSERT INTO reviews (record_id, reviewer, created) VALUES ('done', 'lead', 't')",
        "INSERT INTO reviews (record_id, reviewer, created, verdict, object_id, body_ct, "
        "body_commit) VALUES ('done', 'lead', 't', 'reasonable', 'v-2', x'01', x'02')",
        "INSERT INTO household_link_reviews (record_id, other_record_id, reviewer, created, "
        "review_ct) VALUES ('done', 'draft', 'lead', 't', x'01')",  # no generation
        "INSERT INTO blind_index VALUES (1, 'surname', zeroblob(16), 'done')",
        "INSERT INTO blind_index VALUES (1, 'nhs', zeroblob(15), 'done')",
    ):
        with pytest.raises(sqlcipher3.IntegrityError, match="CHECK"):
            sealed_tables.execute(sql)
    # A draft's summary and tokens are replaced with each save.
    sealed_tables.execute("UPDATE record_summaries SET ct = x'0a', version = 2 WHERE record_id = 'draft'")  # fmt: skip
    sealed_tables.execute("DELETE FROM blind_index WHERE record_id = 'draft'")


def test_sealed_lookups_are_index_searches(sealed_tables):
    def plan(sql: str) -> str:
        return " ".join(str(r[-1]) for r in sealed_tables.execute(f"EXPLAIN QUERY PLAN {sql}"))

    lookups = {
        # a list page's summaries (docs/vault-v2.md §6.1)
        "SELECT ct FROM record_summaries WHERE record_id IN ('a', 'b', 'c')": "PRIMARY KEY",
        # a blind-token lookup (chronology, prior records, household links)
        "SELECT record_id FROM blind_index WHERE (type, generation, token) IN "
        "(VALUES ('nhs', 1, x'00'), ('family|dob', 1, x'01'))": "blind_index_lookup",
        # a generation's catch-up after a rotation
        "SELECT 1 FROM blind_index b WHERE b.record_id = 'done' AND b.generation = 2": (
            "PRIMARY KEY"
        ),
        # the wraps of one object for one reader
        "SELECT wrap FROM object_wraps WHERE (object_kind, object_id) IN (VALUES ('review', 'v-1')) "
        "AND recipient IN ('lead')": "object_id=?",
    }
    for sql, expected in lookups.items():
        found = plan(sql)
        assert "SEARCH" in found and expected in found, (sql, found)


# ----- 0009: the lead-access key in the directory (decision D2, docs/vault-v2.md §2) -------


def test_0009_adds_the_lead_access_column_only_for_lead_entries(tmp_path, clock):
    vault, key, _secret, _recovery = Vault.create(
        tmp_path / "v9", practice_name="Schema 9 Practice", admin_username="admin",
        admin_password="admin-password-1", clock=clock, kdf=CHEAP_TEST_KDF,
    )  # fmt: skip
    store = open_store(vault, key, clock, create=True)
    try:
        assert 9 in store.apply_migrations()
        conn = dbmod.open_database(vault.db_path, key)
        try:
            columns = [r[1] for r in conn.execute("PRAGMA table_info(directory)")]
            assert columns[-1] == "lead_access_key"
            conn.execute(
                "INSERT INTO users (username, full_name, role, active, must_change_password, "
                "created) VALUES ('drsmith', 'Dr Smith', 'clinician', 1, 0, 'x')"
            )
            with pytest.raises(Exception, match="CHECK"):
                conn.execute(
                    "INSERT INTO directory (kind, user_id, generation, role, public_key, active, "
                    "status, created, lead_access_key) VALUES ('user', 'drsmith', 1, "
                    "'clinician', zeroblob(32), 1, 'pending', 'x', zeroblob(32))"
                )
        finally:
            conn.close()
    finally:
        store.close()
        vault.lock.release()


def test_a_format_2_vault_made_before_row_macs_is_refused_unchanged(
    tmp_path: Path, clock: FixedClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    """0010 on a format-2 vault that already has rows: MACing them now would vouch for any
    edit a practice-key holder made meanwhile, so the vault is refused and left at 0009."""
    from gpshare.store.errors import VaultFormatError

    made = Vault.create_v2(
        tmp_path / "v2", practice_name="Pre-MAC Practice", admin_username="admin",
        admin_password="admin-password-1", clock=clock, kdf=CHEAP_TEST_KDF,
    )  # fmt: skip
    _up_to(9, monkeypatch)
    store = open_store(made.vault, made.keys, clock, create=True)
    try:
        assert store.apply_migrations()[-1] == 9
        with store.write(AuditEntry("admin", "user_added")) as tx:
            tx.insert_user(User("admin", "Admin", "admin", None, True, False, "2026-11-25"))
        _up_to(10_000, monkeypatch)
        with pytest.raises(VaultFormatError, match="made by a gpshare without row MACs"):
            store.apply_migrations()
        assert store.schema_version() == 9 and store.pending_migrations()[0] == 10
    finally:
        store.close()
        made.vault.lock.release()
    # A new format-2 vault gets 0010 with its first migration, before any row exists.
    fresh = Vault.create_v2(
        tmp_path / "new", practice_name="New Practice", admin_username="admin",
        admin_password="admin-password-1", clock=clock, kdf=CHEAP_TEST_KDF,
    )  # fmt: skip
    store = open_store(fresh.vault, fresh.keys, clock, create=True)
    try:
        assert 10 in store.apply_migrations()
        with store.write(AuditEntry("admin", "user_added")) as tx:
            tx.insert_user(User("admin", "Admin", "admin", None, True, False, "2026-11-25"))
        assert store.integrity_problems() == []
    finally:
        store.close()
        fresh.vault.lock.release()
