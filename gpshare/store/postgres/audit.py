"""The audit chain on PostgreSQL: the same HMAC chain as gpshare.store.audit, one chain for
many workstations.

Appends are serialised by `SELECT … FOR UPDATE` on a one-row chain-head table inside the
caller's transaction, so sequence numbers are gap-free and in commit order (DESIGN §10.2,
§10.3). The workstation role may only INSERT and SELECT audit events; triggers refuse UPDATE,
DELETE and TRUNCATE of events even for the table's owner (GRANTs and triggers both).
"""

from __future__ import annotations

from datetime import UTC, datetime

import psycopg
from psycopg import sql

from gpshare.store import audit
from gpshare.store.audit import GENESIS, ChainReport
from gpshare.store.port import AuditEntry, AuditHead

_SCHEMA = f"""
CREATE TABLE audit (
    seq bigint PRIMARY KEY CHECK (seq > 0),
    at text NOT NULL,
    actor text NOT NULL,
    action text NOT NULL,
    record_id text,
    details text NOT NULL,
    prev_hash text NOT NULL,
    hash text NOT NULL
);
CREATE TABLE audit_head (
    one boolean PRIMARY KEY DEFAULT true CHECK (one),
    seq bigint NOT NULL,
    hash text NOT NULL
);
INSERT INTO audit_head (seq, hash) VALUES (0, '{GENESIS}');

CREATE FUNCTION audit_refuse_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'audit events are append-only: % refused on %', TG_OP, TG_TABLE_NAME
        USING ERRCODE = 'insufficient_privilege';
END $$;
CREATE TRIGGER audit_no_update_delete BEFORE UPDATE OR DELETE ON audit
    FOR EACH ROW EXECUTE FUNCTION audit_refuse_change();
CREATE TRIGGER audit_no_truncate BEFORE TRUNCATE ON audit
    FOR EACH STATEMENT EXECUTE FUNCTION audit_refuse_change();
CREATE TRIGGER audit_head_no_delete BEFORE DELETE ON audit_head
    FOR EACH ROW EXECUTE FUNCTION audit_refuse_change();
CREATE TRIGGER audit_head_no_truncate BEFORE TRUNCATE ON audit_head
    FOR EACH STATEMENT EXECUTE FUNCTION audit_refuse_change();

-- The head only ever moves one event forward, onto an event that exists with that seal.
CREATE FUNCTION audit_head_advance() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.seq <> OLD.seq + 1 OR NOT EXISTS (
        SELECT 1 FROM audit WHERE seq = NEW.seq AND hash = NEW.hash AND prev_hash = OLD.hash
    ) THEN
        RAISE EXCEPTION 'the audit head may only advance to the next stored event'
            USING ERRCODE = 'integrity_constraint_violation';
    END IF;
    RETURN NEW;
END $$;
CREATE TRIGGER audit_head_advance BEFORE UPDATE ON audit_head
    FOR EACH ROW EXECUTE FUNCTION audit_head_advance();

REVOKE ALL ON audit, audit_head FROM PUBLIC;
"""


def create_schema(conn: psycopg.Connection, workstation_role: str) -> None:
    """Create the audit tables and triggers, and grant `workstation_role` (an existing role)
    INSERT/SELECT on events and SELECT/UPDATE of the head row (FOR UPDATE needs it); the
    caller commits."""
    conn.execute(_SCHEMA)
    role = sql.Identifier(workstation_role)
    conn.execute(sql.SQL("GRANT SELECT, INSERT ON audit TO {}").format(role))
    conn.execute(sql.SQL("GRANT SELECT, UPDATE ON audit_head TO {}").format(role))


def append(conn: psycopg.Connection, key: bytes, entry: AuditEntry) -> AuditHead:
    """Append one event inside the caller's transaction; returns the new head.

    The head row stays locked until the caller commits or rolls back, so the next append
    waits and chains onto this one: the caller takes it last and commits at once (on a
    pipelined connection the INSERT and the head's UPDATE travel with the COMMIT).
    """
    # Everything that does not need the head is done before the lock is taken.
    at_text = audit.at_iso(entry.at or datetime.now(UTC))
    details_text = audit.details_json(entry.details)
    row = conn.execute("SELECT seq, hash FROM audit_head FOR UPDATE").fetchone()
    if row is None:
        raise RuntimeError("the audit_head row is missing: the schema was not created")
    seq, prev = int(row[0]) + 1, str(row[1])
    body = audit.canonical(seq, at_text, entry.actor, entry.action, entry.record_id, details_text)
    digest = audit.event_hash(key, body, prev)
    conn.execute(
        "INSERT INTO audit (seq, at, actor, action, record_id, details, prev_hash, hash)"
        " VALUES (%s, %s, %s, %s, %s, %s, %s, %s)",
        (seq, at_text, entry.actor, entry.action, entry.record_id, details_text, prev, digest),
    )
    conn.execute("UPDATE audit_head SET seq = %s, hash = %s", (seq, digest))
    return AuditHead(seq, digest)


def head(conn: psycopg.Connection) -> AuditHead:
    """The newest event as the head row records it, or AuditHead(0, GENESIS)."""
    row = conn.execute("SELECT seq, hash FROM audit_head").fetchone()
    return AuditHead(int(row[0]), str(row[1])) if row else AuditHead(0, GENESIS)


def verify(
    conn: psycopg.Connection,
    key: bytes,
    expected: AuditHead | None = None,
    legacy_key: bytes | None = None,
) -> ChainReport:
    """Walk the chain oldest first and name the first event that breaks it (the same checks
    as gpshare.store.audit.verify); `expected` is a head seen elsewhere (default: the
    server's head row), so removed newest events are named too. `legacy_key`: the v1 chain
    key that sealed the events before `vault_migrated`, when a vault upgraded from version 1
    was moved onto the server (`gpshare server migrate` copies its chain event for event)."""
    mark = expected or head(conn)
    legacy = None
    if legacy_key is not None:
        found = conn.execute(
            "SELECT seq FROM audit WHERE action = %s ORDER BY seq LIMIT 1", (audit.MIGRATED_ACTION,)
        ).fetchone()
        if found is not None:
            legacy = (int(found[0]), audit.sealer(legacy_key))
    with conn.cursor(name="audit_walk") as cur:  # server-side: the log is read in batches
        cur.itersize = 5000
        cur.execute(
            "SELECT seq, at, actor, action, record_id, details, prev_hash, hash"
            " FROM audit ORDER BY seq"
        )
        return audit.walk_rows(cur, audit.sealer(key), (mark.seq, mark.digest), legacy=legacy)
