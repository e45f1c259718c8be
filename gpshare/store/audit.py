"""Append-only, hash-chained audit log and its verification.

hash_n = HMAC-SHA256(audit_key, canonical(event_n) || prev_hash), with audit_key derived
(HKDF) from the database key (vault format 1) or as HKDF(practice, "audit") (format 2), so
nobody without the key can forge a consistent chain, and the chain head mirrored into
vault.json exposes truncation.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import json
import json.encoder
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from gpshare.store import crypto
from gpshare.store.practice_keys import PracticeKeys
from gpshare.store.sqlcipher.db import Connection, DatabaseError

PROGRESS_EVERY = 5000  # events between verify progress reports
VERIFY_CACHE_KIB = -65536  # page cache while verifying: 64 MiB (negative = KiB)

GENESIS = "0" * 64


def audit_key(db_key: bytes) -> bytes:
    """The chain key, separate from every other use of the database (or practice) key."""
    if isinstance(db_key, PracticeKeys):
        return db_key.audit
    return crypto.subkey(db_key, "gpshare audit chain v1")


# The event a v1 → v2 migration appends (docs/vault-v2.md §4): the events before it were
# sealed under the v1 chain key, it and every later one under HKDF(practice, "audit").
MIGRATED_ACTION = "vault_migrated"
# The event that says a backup was put in place of the vault (written into the restored
# chain by backup.restore_backup, before the swap).
RESTORED_ACTION = "backup_restored"


def legacy_key(db_key: bytes) -> bytes | None:
    """A format-2 key's v1 chain key, for the events a migration copied (the practice key is
    the v1 database key); None for a v1 key."""
    if isinstance(db_key, PracticeKeys):
        return crypto.subkey(db_key.practice.reveal(), "gpshare audit chain v1")
    return None


def migrated_at(conn: Connection) -> int | None:
    """The seq of the vault_migrated event, if the vault was migrated from version 1."""
    row = conn.execute(
        "SELECT seq FROM audit WHERE action = ? ORDER BY seq LIMIT 1", (MIGRATED_ACTION,)
    ).fetchone()
    return int(row[0]) if row else None


# One encoder for every event: json.dumps with keyword arguments builds a new JSONEncoder per
# call, a fifth of verify's time. Same output bytes.
_CANONICAL = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"))
_string = json.encoder.encode_basestring  # the escaper that encoder uses (ensure_ascii=False)


def canonical(
    seq: int, at: str, actor: str, action: str, record_id: str | None, details: str
) -> bytes:
    """The exact bytes an event's hash covers: the compact JSON array of the six fields."""
    if (
        type(seq) is int
        and type(at) is type(actor) is type(action) is type(details) is str
        and (record_id is None or type(record_id) is str)
    ):
        # What _CANONICAL.encode produces for these types, built directly (~6x faster; verify
        # runs it for every event): the same string escaper, ints as repr, None as null.
        rid = "null" if record_id is None else _string(record_id)
        text = (
            f"[{seq!r},{_string(at)},{_string(actor)},{_string(action)},{rid},{_string(details)}]"
        )
        return text.encode("utf-8")
    return _CANONICAL.encode([seq, at, actor, action, record_id, details]).encode("utf-8")


def event_hash(key: bytes, body: bytes, prev_hash: str) -> str:
    return hmac.new(key, body + prev_hash.encode("ascii"), hashlib.sha256).hexdigest()


def sealer(key: bytes) -> Callable[[bytes, str], str]:
    """event_hash for many events: the keyed HMAC state is built once and copied per
    event (same digests; re-keying per event was a third of verify's HMAC time)."""
    keyed = hmac.new(key, digestmod=hashlib.sha256)

    def seal(body: bytes, prev_hash: str) -> str:
        h = keyed.copy()
        h.update(body + prev_hash.encode("ascii"))
        return h.hexdigest()

    return seal


def at_iso(at: datetime) -> str:
    """An event's time as its hash covers it (every engine stores this text)."""
    return at.isoformat(timespec="microseconds")


def details_json(details: Mapping[str, Any] | None) -> str:
    """An event's details as its hash covers them: sorted, compact JSON."""
    return json.dumps(details or {}, sort_keys=True, ensure_ascii=False, separators=(",", ":"))


def append(
    conn: Connection,
    key: bytes,
    *,
    at: datetime,
    actor: str,
    action: str,
    record_id: str | None = None,
    details: dict[str, Any] | None = None,
) -> tuple[int, str]:
    """Append one event inside the caller's transaction; returns (seq, hash).

    `details` must hold no free clinical text (ids, tokens, counts, file hashes only).
    """
    row = conn.execute("SELECT seq, hash FROM audit ORDER BY seq DESC LIMIT 1").fetchone()
    seq, prev = (int(row[0]) + 1, str(row[1])) if row else (1, GENESIS)
    at_text = at_iso(at)
    details_text = details_json(details)
    digest = event_hash(key, canonical(seq, at_text, actor, action, record_id, details_text), prev)
    conn.execute(
        "INSERT INTO audit (seq, at, actor, action, record_id, details, prev_hash, hash) VALUES (?,?,?,?,?,?,?,?)",
        (seq, at_text, actor, action, record_id, details_text, prev, digest),
    )
    return seq, digest


@dataclass(frozen=True)
class ChainReport:
    """Result of verifying the chain."""

    ok: bool
    events: int
    last_seq: int
    last_at: str | None
    broken_at: int | None
    problem: str

    def summary(self) -> str:
        """One plain line for the UI and CLI."""
        if self.ok:
            when = f", last at {self.last_at}" if self.last_at else ""
            count = f"{self.events:,}".replace(",", " ")
            return f"Audit log intact: {count} events{when}."
        if self.broken_at is None:  # the chain holds, but a row it vouches for does not
            return f"Vault check FAILED: {self.problem}"
        return f"Audit log BROKEN at event {self.broken_at}: {self.problem}"


def verify(
    conn: Connection,
    key: bytes,
    head: tuple[int, str] | None = None,
    progress: Callable[[int, int], None] | None = None,
    legacy_key: bytes | None = None,
) -> ChainReport:
    """Walk the chain; report the first sequence number that breaks it.

    `legacy_key` (a migrated vault, `legacy_key()`): the v1 chain key, which sealed every
    event before the `vault_migrated` one.

    Detects an edited event (hash mismatch), a deleted or inserted event (sequence gap or
    prev_hash mismatch), reordering, and — with the head mirrored in vault.json —
    truncation of the newest events. `progress(done, total)` is called every few thousand
    events (for a progress bar; total is the newest stored sequence number).
    """
    total = latest(conn)[0] if progress else 0
    seal = sealer(key)
    boundary = migrated_at(conn) if legacy_key is not None else None
    legacy = (boundary, sealer(legacy_key)) if boundary and legacy_key is not None else None
    # A bigger page cache for the walk (restored after): with SQLCipher's memory security
    # every recycled page is wiped, and the default 2 000-page cache made reading 1 000 000
    # events ~30 % slower.
    (cache_size,) = conn.execute("PRAGMA cache_size").fetchone()
    conn.execute(f"PRAGMA cache_size = {VERIFY_CACHE_KIB}")
    try:
        return _walk(conn, seal, head, progress, total, legacy)
    finally:
        with contextlib.suppress(DatabaseError):  # e.g. still interrupted after a cancel
            conn.execute(f"PRAGMA cache_size = {int(cache_size)}")


def _walk(
    conn: Connection,
    seal: Callable[[bytes, str], str],
    head: tuple[int, str] | None,
    progress: Callable[[int, int], None] | None,
    total: int,
    legacy: tuple[int, Callable[[bytes, str], str]] | None = None,
) -> ChainReport:
    """verify's loop over every event, oldest first."""
    cursor = conn.execute(
        "SELECT seq, at, actor, action, record_id, details, prev_hash, hash FROM audit ORDER BY seq"
    )
    return walk_rows(cursor, seal, head, progress, total, legacy)


def walk_rows(
    rows: Iterable[Any],
    seal: Callable[[bytes, str], str],
    head: tuple[int, str] | None = None,
    progress: Callable[[int, int], None] | None = None,
    total: int = 0,
    legacy: tuple[int, Callable[[bytes, str], str]] | None = None,
) -> ChainReport:
    """Check stored events, oldest first, whatever engine read them: each row is
    (seq, at, actor, action, record_id, details, prev_hash, hash). With `legacy` =
    (seq, seal), events before that seq are checked with that seal (a migrated vault)."""
    expected_seq = 1
    prev = GENESIS
    count = 0
    last_at: str | None = None
    hashes_at_head: str | None = None
    head_seq = head[0] if head else 0
    for seq, at, actor, action, record_id, details, prev_hash, digest in rows:
        if seq != expected_seq:
            return ChainReport(
                False,
                count,
                expected_seq - 1,
                last_at,
                expected_seq,
                f"event {expected_seq} is missing (next stored event is {seq}): events were deleted or renumbered.",
            )
        if prev_hash != prev:
            return ChainReport(
                False,
                count,
                seq,
                last_at,
                seq,
                "its link to the previous event does not match: an event was inserted, deleted or reordered.",
            )
        sealed_by = legacy[1] if legacy is not None and seq < legacy[0] else seal
        if sealed_by(canonical(seq, at, actor, action, record_id, details), prev) != digest:
            return ChainReport(
                False,
                count,
                seq,
                last_at,
                seq,
                "its contents do not match its seal: the event was edited after it was written.",
            )
        prev = digest
        count += 1
        if progress and not count % PROGRESS_EVERY:
            progress(count, total)
        last_at = at
        if seq == head_seq:
            hashes_at_head = digest
        expected_seq += 1
    last_seq = expected_seq - 1
    if head and head_seq > last_seq:
        return ChainReport(
            False,
            count,
            last_seq,
            last_at,
            last_seq + 1,
            f"the log ends at event {last_seq} but the vault header records event {head_seq}: the newest events were removed.",
        )
    if head and head_seq and hashes_at_head != head[1]:
        return ChainReport(
            False,
            count,
            last_seq,
            last_at,
            head_seq,
            "the event the vault header records as the latest has a different seal: the log was rewritten.",
        )
    return ChainReport(True, count, last_seq, last_at, None, "")


def latest(conn: Connection) -> tuple[int, str]:
    """(seq, hash) of the newest event, or (0, GENESIS)."""
    row = conn.execute("SELECT seq, hash FROM audit ORDER BY seq DESC LIMIT 1").fetchone()
    return (int(row[0]), str(row[1])) if row else (0, GENESIS)


def hash_at(conn: Connection, seq: int) -> str | None:
    """The stored hash of event `seq`, or None when there is no such event."""
    row = conn.execute("SELECT hash FROM audit WHERE seq = ?", (seq,)).fetchone()
    return str(row[0]) if row else None


def _missing(first: int, last: int, what: str = "missing") -> str:
    return f"event {first} is {what}" if first == last else f"events {first}–{last} are {what}"


def head_problem(conn: Connection, head: tuple[int, str]) -> str | None:
    """Compare the chain with the head sealed in vault.json before anything is appended.

    Returns None when they agree (or the chain is exactly one event ahead: a crash between
    the database commit and the header write), else a sentence naming what is missing.
    """
    head_seq, head_hash = head
    last_seq, _ = latest(conn)
    if last_seq < head_seq:
        if last_seq == 0:
            return (
                f"the audit log is empty but vault.json records {head_seq} events: "
                f"{_missing(1, head_seq)} (every event was deleted, or a blank or "
                "older records.db was put in place)"
            )
        return (
            f"the audit log ends at event {last_seq} but vault.json records event {head_seq}: "
            f"{_missing(last_seq + 1, head_seq)} (the newest events were deleted, or an "
            "older copy of records.db was put back)"
        )
    if head_seq and hash_at(conn, head_seq) != head_hash:
        return (
            f"event {head_seq} in the audit log is not the one vault.json records as the "
            "latest: the log was rewritten or records.db was replaced by a different copy"
        )
    if last_seq > head_seq + 1:
        return (
            f"vault.json records event {head_seq} but the audit log runs to event {last_seq}: "
            f"{_missing(head_seq + 1, last_seq, 'not covered by the header')} (an older "
            "vault.json was put back)"
        )
    return None


def anchor_problem(conn: Connection, anchor: tuple[int, str], restore_floor: int) -> str | None:
    """Compare the chain with the newest head this computer has seen (the second anchor).

    Catches an older records.db and vault.json put back together. History older than the
    anchor is accepted only when a sealed restore record in vault.json covers it.
    """
    seen_seq, seen_hash = anchor
    if seen_seq <= restore_floor:
        return None
    last_seq, _ = latest(conn)
    if last_seq < seen_seq:
        return (
            f"this computer has seen event {seen_seq} of this vault's audit log, but the vault "
            f"now ends at event {last_seq}: {_missing(last_seq + 1, seen_seq)} (both "
            "records.db and vault.json were replaced by an older copy)"
        )
    if hash_at(conn, seen_seq) != seen_hash:
        return (
            f"event {seen_seq} of the audit log differs from the one this computer saw: the "
            "vault's history was replaced"
        )
    return None
