"""The audit chain: every tamper case is detected and the broken sequence number named."""

from __future__ import annotations

import json

import pytest

from gpshare.errors import PermissionDenied
from gpshare.store import audit
from tests.storehelp import raw_connection


def _raw(session):
    """The session's connection with the append-only triggers removed (an attacker with the key)."""
    conn = raw_connection(session)
    conn.execute("DROP TRIGGER audit_no_update")
    conn.execute("DROP TRIGGER audit_no_delete")
    return conn


@pytest.fixture
def lead(vault_env):
    s = vault_env.session("lead")
    for i in range(5):
        s.audit("record_viewed", f"SG-TEST-000{i}")
    yield s
    if s.is_open:
        s.close()


def test_intact_chain_verifies(lead):
    report = lead.audit_trail.verify_audit()
    assert report.ok, report.problem
    assert report.events >= 10
    assert report.summary().startswith("Audit log intact:")


def test_append_only_triggers_refuse_edits(lead):
    from gpshare.store.sqlcipher.db import DatabaseError

    with pytest.raises(DatabaseError, match="append-only"):
        raw_connection(lead).execute("UPDATE audit SET actor = 'x' WHERE seq = 1")
    with pytest.raises(DatabaseError, match="append-only"):
        raw_connection(lead).execute("DELETE FROM audit WHERE seq = 1")


def test_edited_event_is_named(lead):
    conn = _raw(lead)
    conn.execute("UPDATE audit SET actor = 'someone-else' WHERE seq = 4")
    report = audit.verify(conn, audit.audit_key(lead.db_key), lead.vault.audit_head())
    assert not report.ok and report.broken_at == 4
    assert "edited" in report.problem


def test_deleted_event_is_named(lead):
    conn = _raw(lead)
    conn.execute("DELETE FROM audit WHERE seq = 3")
    report = audit.verify(conn, audit.audit_key(lead.db_key), lead.vault.audit_head())
    assert not report.ok and report.broken_at == 3
    assert "missing" in report.problem


def test_reordered_events_are_detected(lead):
    conn = _raw(lead)
    rows = {
        r[0]: r
        for r in conn.execute(
            "SELECT seq, at, actor, action, record_id, details, prev_hash, hash FROM audit WHERE seq IN (5, 6)"
        )
    }
    conn.execute("DELETE FROM audit WHERE seq IN (5, 6)")
    for new_seq, old in ((5, rows[6]), (6, rows[5])):
        conn.execute("INSERT INTO audit VALUES (?,?,?,?,?,?,?,?)", (new_seq, *old[1:]))
    report = audit.verify(conn, audit.audit_key(lead.db_key), lead.vault.audit_head())
    assert not report.ok and report.broken_at == 5


def test_inserted_event_is_detected(lead):
    conn = _raw(lead)
    last = conn.execute("SELECT max(seq) FROM audit").fetchone()[0]
    # shift everything after 2 up by one and insert a forged event at 3
    for seq in range(last, 2, -1):
        conn.execute("UPDATE audit SET seq = ? WHERE seq = ?", (seq + 1, seq))
    conn.execute(
        "INSERT INTO audit VALUES (3, '2026-11-25T10:00:00', 'forger', 'record_viewed', NULL, '{}', ?, ?)",
        ("0" * 64, "f" * 64),
    )
    report = audit.verify(conn, audit.audit_key(lead.db_key), lead.vault.audit_head())
    assert not report.ok and report.broken_at == 3


def test_truncation_is_caught_by_the_header_head(lead):
    conn = _raw(lead)
    last = conn.execute("SELECT max(seq) FROM audit").fetchone()[0]
    conn.execute("DELETE FROM audit WHERE seq >= ?", (last - 1,))
    report = audit.verify(conn, audit.audit_key(lead.db_key), lead.vault.audit_head())
    assert not report.ok
    assert report.broken_at == last - 1
    assert "newest events were removed" in report.problem


def test_forged_chain_without_key_fails(lead):
    conn = _raw(lead)
    row = conn.execute(
        "SELECT seq, at, actor, action, record_id, details, prev_hash FROM audit WHERE seq = 2"
    ).fetchone()
    body = audit.canonical(row[0], row[1], "forger", row[3], row[4], row[5])
    forged = audit.event_hash(b"k" * 32, body, row[6])  # wrong key
    conn.execute("UPDATE audit SET actor = 'forger', hash = ? WHERE seq = 2", (forged,))
    assert audit.verify(conn, audit.audit_key(lead.db_key), lead.vault.audit_head()).broken_at == 2


def test_clinicians_cannot_read_or_verify_the_log(vault_env):
    s = vault_env.session("drsmith")
    with pytest.raises(PermissionDenied):
        s.audit_trail.verify_audit()
    with pytest.raises(PermissionDenied):
        s.audit_trail.audit_log()
    s.close()
    lead = vault_env.session("lead")
    attempts = [
        e
        for e in lead.audit_trail.audit_log()
        if e.action == "permission_denied" and e.actor == "drsmith"
    ]
    assert {e.details["attempted"] for e in attempts} == {"verify_audit", "read_audit_log"}
    lead.close()


def test_audit_details_hold_no_free_text(vault_env):
    s = vault_env.session("drsmith")
    rec = s.assessments.start_assessment(
        answers={"child_given_name": "Perpetua", "concern_narrative": "Very secret narrative"}
    )
    s.assessments.save_draft(rec.id, rec.answers, "child")
    s.close()
    lead = vault_env.session("lead")
    dump = json.dumps([e.__dict__ for e in lead.audit_trail.audit_log(limit=None)])
    assert "Perpetua" not in dump and "secret narrative" not in dump
    lead.close()


def test_header_mirrors_the_chain_head(vault_env):
    s = vault_env.session("lead")
    s.audit("record_viewed", "SG-AAAA-BBBB")
    seq, digest = audit.latest(raw_connection(s))
    assert s.vault.audit_head() == (seq, digest)
    header = json.loads((vault_env.folder / "vault.json").read_text())
    assert header["audit_head"] == {"seq": seq, "hash": digest}
    s.close()


def test_canonical_bytes_are_exactly_the_compact_json_array():
    import json
    import random

    from gpshare.store.audit import canonical

    rng = random.Random(7)
    alphabet = 'aZ09 "\\/\n\t\r\x00\x1f\x7fé€ü😀\u2028\u2029<>&'
    for _ in range(2000):

        def text() -> str:
            return "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 12)))

        args = [rng.randint(0, 10**12), text(), text(), text(), rng.choice([None, text()]), text()]
        expected = json.dumps(args, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
        assert canonical(*args) == expected
    # Other types still go through the JSON encoder.
    assert canonical(1, "a", "b", "c", None, 5) == b'[1,"a","b","c",null,5]'  # type: ignore[arg-type]
